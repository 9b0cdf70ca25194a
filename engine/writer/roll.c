/*
 * Closing the current log and creating the next one, and the store checkpoint.
 *
 * A roll, in this order (each step durable before the next, so a crash between any two leaves
 * a state recovery finishes; see recover.c):
 *   trailer appended (a preallocated log is first cut to its records), fdatasync
 *                                          -> fault point writer.roll.after_trailer
 *   rename <prefix>.log -> closed name     -> fault point writer.roll.after_rename
 *   fsync of logs/                            (the generation is now durable and closed)
 *   the next <prefix>.log, with its header (generation+1, first LSN, prev_digest = digest just
 *   closed), either
 *     - the file prep.c prepared (zeros, durable): renamed over <prefix>.log
 *       (fault point writer.roll.after_next_rename), fsync of logs/, header written; or
 *     - when none is ready: created with the header, fsync of logs/;
 *   the header itself becomes durable with the first batch's fdatasync (a crash before leaves
 *   it torn or zeros: recovery creates the log again).
 * The directory is fsynced between the two renames, not once for both: on a filesystem that
 * does not order directory updates (ext4 without a journal, as on this machine, writes the
 * directory's blocks back in any order) the second rename could reach the disk without the
 * first, and the closed generation would be lost under the current log's name.
 *
 * That is ls__roll (ls_db_roll, the idle roll, a switchover's hold, close, recovery). The
 * flusher's roll by size, when a next log is prepared, is ls__roll_begin: it writes the trailer
 * (not synced) and the next header into the prepared file, makes that file the current log and
 * posts the rest (trailer fdatasync, then the same renames and fsyncs, with the same fault
 * points) to the prep thread, so the batches after the roll are written and fdatasynced into
 * <prefix>.next meanwhile. Those batches are held (ls__roll_hold): nobody is told and nothing is
 * visible or handed to the applier until the trailer is durable (ls__roll_settle): from then on
 * the closed generation survives a crash (recovery finishes its rename) and so does the next
 * one, renamed in by recovery from <prefix>.next when its header follows it (recover.c). Block
 * mode's position names <prefix>.log: it is published only once the renames are done. One roll
 * at a time: a roll waits for the previous one's steps.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "writer/writer_int.h"

/* The header of generation gen into hdr; the running digest restarted with it. */
static int make_header(ls_db_t *db, uint64_t gen, uint64_t first_lsn,
                       const uint8_t prev_digest[LS_DIGEST_SIZE], uint8_t hdr[LS_GEN_HEADER_SIZE])
{
    ls_gen_header_t h = {.epoch = db->epoch, .generation = gen, .first_lsn = first_lsn};
    memcpy(h.dbid, db->dbid, LS_DBID_LEN);
    memcpy(h.prev_digest, prev_digest, LS_DIGEST_SIZE);
    h.create_ns = ls_now_ns();
    ls_gen_header_encode(&h, hdr);
    if (!db->sha && !(db->sha = ls_sha256_new())) return LS_ENOMEM;
    ls_sha256_reset(db->sha);
    ls_sha256_update(db->sha, hdr, LS_GEN_HEADER_SIZE);
    return 0;
}

/* The db's current log is now generation gen, holding its header. */
static void started(ls_db_t *db, uint64_t gen, uint64_t first_lsn,
                    const uint8_t prev_digest[LS_DIGEST_SIZE])
{
    db->gen = gen;
    db->gen_first_lsn = first_lsn;
    db->gen_records = 0;
    db->log_size = LS_GEN_HEADER_SIZE;
    memcpy(db->prev_digest, prev_digest, LS_DIGEST_SIZE);
}

int ls__log_create(ls_db_t *db, uint64_t gen, uint64_t first_lsn,
                   const uint8_t prev_digest[LS_DIGEST_SIZE])
{
    uint8_t hdr[LS_GEN_HEADER_SIZE];
    int rc = make_header(db, gen, first_lsn, prev_digest, hdr);
    if (rc) return rc;
    if (db->fd >= 0) close(db->fd);
    db->cur_alloc = 0;
    db->fd = open(db->cur_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (db->fd < 0) return ls_err_from_errno(errno);
    /* No fsync of the header alone: the first batch's fdatasync makes it durable with the
     * batch, before anything in this log is acknowledged. A crash before that leaves a header
     * torn at creation, which recovery recreates (settle_current). The directory entry is made
     * durable now, so the name never points at the closed generation's old inode. */
    rc = ls_write_full(db->fd, hdr, sizeof(hdr));
    if (rc == 0) rc = ls_fsync_dir(db->logs);
    if (rc) return rc;
    started(db, gen, first_lsn, prev_digest);
    return 0;
}

/* Makes the prepared file nfd (prep.c) the current log of generation gen: renamed over
 * <prefix>.log, logs/ fsynced (as for a created one), then the header written in place. */
static int log_from_prepared(ls_db_t *db, int nfd, uint64_t gen, uint64_t first_lsn,
                             const uint8_t prev_digest[LS_DIGEST_SIZE])
{
    uint8_t hdr[LS_GEN_HEADER_SIZE];
    int rc = make_header(db, gen, first_lsn, prev_digest, hdr);
    if (rc == 0 && rename(db->next_path, db->cur_path) != 0) rc = ls_err_from_errno(errno);
    if (rc) {
        close(nfd);
        return rc;
    }
    LS_FAULT("writer.roll.after_next_rename");
    ls__prep_again(db); /* the name is free: the thread may make the following one */
    if (db->fd >= 0) close(db->fd);
    db->fd = nfd;
    db->cur_alloc = ls__prep_size(db);
    rc = ls_fsync_dir(db->logs);
    if (rc == 0) rc = ls_pwrite_full(db->fd, hdr, sizeof(hdr), 0);
    if (rc) return rc;
    started(db, gen, first_lsn, prev_digest);
    db->stats.prepared_rolls++;
    return 0;
}

/* Appends the trailer (not synced); *digest receives the generation's digest. */
static int write_trailer(ls_db_t *db, uint8_t digest[LS_DIGEST_SIZE])
{
    ls_gen_trailer_t t = {
        .record_count = db->gen_records,
        .last_lsn = db->last_lsn,
        .payload_len = db->log_size - LS_GEN_HEADER_SIZE,
        .close_ns = ls_now_ns(),
    };
    ls_sha256_peek(db->sha, t.digest);
    memcpy(digest, t.digest, LS_DIGEST_SIZE);
    uint8_t trl[LS_GEN_TRAILER_SIZE];
    ls_gen_trailer_encode(&t, ls_gen_seed(db->dbid, db->epoch, db->gen), trl);
    int rc = 0;
    /* A preallocated log is cut to its records first: a closed generation ends at its trailer. */
    if (db->cur_alloc > db->log_size && ftruncate(db->fd, (off_t) db->log_size) != 0)
        rc = ls_err_from_errno(errno);
    if (rc == 0) rc = ls_pwrite_full(db->fd, trl, sizeof(trl), (off_t) db->log_size);
    db->cur_alloc = 0;
    return rc;
}

/* The closed name of the current log into path. */
static int closed_path(ls_db_t *db, char *path, size_t len)
{
    char name[LS_GEN_NAME_MAX];
    int rc = ls_gen_name(name, sizeof(name), db->prefix, db->epoch, db->gen);
    if (rc == 0) snprintf(path, len, "%s/%s", db->logs, name);
    return rc;
}

int ls__roll(ls_db_t *db)
{
    int rc = ls__roll_settle(db, true);
    if (rc) return rc;
    if (db->fd < 0 || db->log_size <= LS_GEN_HEADER_SIZE) return 0;
    uint8_t digest[LS_DIGEST_SIZE];
    rc = write_trailer(db, digest);
    if (rc == 0) rc = ls_fdatasync(db->fd);
    if (rc) return rc;
    LS_FAULT("writer.roll.after_trailer");
    close(db->fd);
    db->fd = -1;
    char path[sizeof(db->roll_path)];
    if ((rc = closed_path(db, path, sizeof(path))) != 0) return rc;
    if (rename(db->cur_path, path) != 0) return ls_err_from_errno(errno);
    LS_FAULT("writer.roll.after_rename");
    if ((rc = ls_fsync_dir(db->logs)) != 0) return rc;
    db->last_closed = db->gen;
    db->stats.generations_closed++;
    LS_LOGD("writer", "closed %s (%llu records, last lsn %llu)", path,
            (unsigned long long) db->gen_records, (unsigned long long) db->last_lsn);
    int nfd = ls__prep_take(db);
    rc = nfd >= 0 ? log_from_prepared(db, nfd, db->gen + 1, db->last_lsn + 1, digest)
                  : ls__log_create(db, db->gen + 1, db->last_lsn + 1, digest);
    if (rc == 0) ls__db_publish(db, 0, true); /* the new generation: nothing durable in it yet */
    return rc;
}

int ls__roll_begin(ls_db_t *db)
{
    int rc = ls__roll_settle(db, true); /* one roll at a time */
    if (rc) return rc;
    int nfd = ls__prep_take(db);
    if (nfd < 0) return ls__roll(db); /* nothing prepared: every step here */
    uint8_t digest[LS_DIGEST_SIZE], hdr[LS_GEN_HEADER_SIZE];
    char path[sizeof(db->roll_path)];
    rc = write_trailer(db, digest);
    if (rc == 0) rc = closed_path(db, path, sizeof(path));
    if (rc == 0) rc = make_header(db, db->gen + 1, db->last_lsn + 1, digest, hdr);
    /* The header goes into the prepared file before its rename: nothing in it is told to anyone
     * or visible before the rename is durable (the batches are held), and a crash before leaves
     * records under <prefix>.next, which recovery ignores and the next preparation overwrites. */
    if (rc == 0) rc = ls_pwrite_full(nfd, hdr, sizeof(hdr), 0);
    if (rc) {
        close(nfd);
        return rc;
    }
    pthread_mutex_lock(&db->mu);
    db->roll_pending = true;
    db->roll_synced = false;
    db->roll_done = false;
    db->roll_rc = 0;
    db->roll_fd = db->fd;
    db->roll_gen = db->gen;
    snprintf(db->roll_path, sizeof(db->roll_path), "%s", path);
    pthread_cond_signal(&db->prepq);
    pthread_mutex_unlock(&db->mu);
    db->fd = nfd;
    db->cur_alloc = ls__prep_size(db);
    started(db, db->gen + 1, db->last_lsn + 1, digest);
    db->stats.prepared_rolls++;
    return 0;
}

int ls__roll_close_steps(ls_db_t *db, int fd, const char *path)
{
    int rc = ls_fdatasync(fd);
    close(fd);
    if (rc) return rc;
    /* The generation is closed: recovery finishes the renames from here, and adopts the next
     * log from <prefix>.next (recover.c), so the batches held behind the roll may go now. */
    pthread_mutex_lock(&db->mu);
    db->roll_synced = true;
    db->flusher_poke = true;
    pthread_cond_signal(&db->wake);
    pthread_mutex_unlock(&db->mu);
    LS_FAULT("writer.roll.after_trailer");
    if (rename(db->cur_path, path) != 0) return ls_err_from_errno(errno);
    LS_FAULT("writer.roll.after_rename");
    if ((rc = ls_fsync_dir(db->logs)) != 0) return rc; /* closed and durable */
    if (rename(db->next_path, db->cur_path) != 0) return ls_err_from_errno(errno);
    LS_FAULT("writer.roll.after_next_rename");
    return ls_fsync_dir(db->logs);
}

void ls__roll_hold(ls_db_t *db, ls_txn_t *batch)
{
    batch->bnext = NULL;
    if (db->held_tail)
        db->held_tail->bnext = batch;
    else
        db->held = batch;
    db->held_tail = batch;
}

/* Block mode's position: at once, or once the running roll renamed the next log in (the
 * daemon reads <prefix>.log). */
static void publish(ls_db_t *db, uint64_t gen, uint64_t off, uint64_t lsn, bool renamed)
{
    if (renamed) {
        ls__db_publish_at(db, gen, off, lsn);
        return;
    }
    db->pub_deferred = true;
    db->pub_gen = gen;
    db->pub_off = off;
    db->pub_lsn = lsn;
}

/* A held batch becomes visible and goes to the flusher to be told and handed over. */
static void release(ls_db_t *db, ls_txn_t *b, int roll_rc, bool renamed)
{
    if (roll_rc) {
        b->brc = roll_rc; /* its generation's predecessor never closed: never told as done */
        b->bdurable = false;
    } else if (b->brc == 0 && b->bdurable) {
        publish(db, b->bgen, b->boff, b->bpos.lsn, renamed);
        int rc = ls__ov_insert(&db->ov, b);
        if (rc) {
            ls__db_fail(db, rc, "no memory for the overlay of a durable batch up to lsn %llu",
                        (unsigned long long) b->bpos.lsn);
            b->brc = rc; /* the applier applies it still: the store follows the log */
        }
    }
    b->bnext = NULL;
    if (db->released_tail)
        db->released_tail->bnext = b;
    else
        db->released = b;
    db->released_tail = b;
}

int ls__roll_settle(ls_db_t *db, bool wait)
{
    int rc = 0, held_rc = 0;
    bool finished = false, pending = false;
    pthread_mutex_lock(&db->mu);
    if (db->roll_pending) {
        while (wait && !db->roll_done)
            pthread_cond_wait(&db->rolled, &db->mu);
        if (!db->roll_synced && !db->roll_done) {
            pthread_mutex_unlock(&db->mu);
            return 0; /* the held batches wait for the trailer */
        }
        if (db->roll_done) {
            db->roll_pending = false;
            finished = true;
            rc = db->roll_rc;
            if (rc == 0) {
                db->last_closed = db->roll_gen;
                db->stats.generations_closed++;
                LS_LOGD("writer", "closed %s", db->roll_path);
            }
        }
        /* A failure after the trailer's fdatasync leaves the held batches recoverable. */
        held_rc = db->roll_synced ? 0 : rc;
        pending = db->roll_pending;
    }
    pthread_mutex_unlock(&db->mu);
    if (finished && rc == 0) {
        /* The new generation under its name, nothing published in it yet; then the latest
         * position its batches reached meanwhile. */
        ls__db_publish_at(db, db->gen, 0, db->gen_first_lsn - 1);
        if (db->pub_deferred) ls__db_publish_at(db, db->pub_gen, db->pub_off, db->pub_lsn);
        db->pub_deferred = false;
    }
    if (!db->held) return rc;
    for (ls_txn_t *b = db->held, *next; b; b = next) {
        next = b->bnext;
        release(db, b, held_rc, !pending);
    }
    db->held = db->held_tail = NULL;
    pthread_mutex_lock(&db->mu);
    db->flusher_poke = true;
    pthread_cond_signal(&db->wake);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int ls__checkpoint(ls_db_t *db)
{
    uint64_t lsn = 0;
    int rc = ls_store_checkpoint(db->store, &lsn);
    db->last_ckpt_ns = ls_mono_ns();
    return rc;
}
