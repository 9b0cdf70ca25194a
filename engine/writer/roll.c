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

/* Appends the trailer and syncs; *digest receives the generation's digest. */
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
    if (rc == 0) rc = ls_fdatasync(db->fd);
    db->cur_alloc = 0;
    return rc;
}

int ls__roll(ls_db_t *db)
{
    if (db->fd < 0 || db->log_size <= LS_GEN_HEADER_SIZE) return 0;
    uint8_t digest[LS_DIGEST_SIZE];
    int rc = write_trailer(db, digest);
    if (rc) return rc;
    LS_FAULT("writer.roll.after_trailer");
    close(db->fd);
    db->fd = -1;
    char name[LS_GEN_NAME_MAX], path[LS__PATH_MAX + 16 + LS_GEN_NAME_MAX];
    rc = ls_gen_name(name, sizeof(name), db->prefix, db->epoch, db->gen);
    if (rc) return rc;
    snprintf(path, sizeof(path), "%s/%s", db->logs, name);
    if (rename(db->cur_path, path) != 0) return ls_err_from_errno(errno);
    LS_FAULT("writer.roll.after_rename");
    if ((rc = ls_fsync_dir(db->logs)) != 0) return rc;
    db->last_closed = db->gen;
    db->stats.generations_closed++;
    LS_LOGD("writer", "closed %s (%llu records, last lsn %llu)", name,
            (unsigned long long) db->gen_records, (unsigned long long) db->last_lsn);
    int nfd = ls__prep_take(db);
    rc = nfd >= 0 ? log_from_prepared(db, nfd, db->gen + 1, db->last_lsn + 1, digest)
                  : ls__log_create(db, db->gen + 1, db->last_lsn + 1, digest);
    if (rc == 0) ls__db_publish(db, 0, true); /* the new generation: nothing durable in it yet */
    return rc;
}

int ls__checkpoint(ls_db_t *db)
{
    uint64_t lsn = 0;
    int rc = ls_store_checkpoint(db->store, &lsn);
    db->last_ckpt_ns = ls_mono_ns();
    return rc;
}
