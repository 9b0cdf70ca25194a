/*
 * Closing the current log and creating the next one, and the store checkpoint.
 *
 * A roll, in this order (each step durable before the next, so a crash between any two leaves
 * a state recovery finishes; see recover.c):
 *   trailer appended, fdatasync            -> fault point writer.roll.after_trailer
 *   rename <prefix>.log -> closed name     -> fault point writer.roll.after_rename
 *   fsync of logs/                            (the generation is now durable and closed)
 *   new <prefix>.log with its header (generation+1, first LSN, prev_digest = digest just
 *   closed), fsync of logs/; the header itself becomes durable with the first batch's
 *   fdatasync (a crash before leaves it torn at creation: recovery creates it again)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "writer/writer_int.h"

int ls__log_create(ls_db_t *db, uint64_t gen, uint64_t first_lsn,
                   const uint8_t prev_digest[LS_DIGEST_SIZE])
{
    ls_gen_header_t h = {.epoch = db->epoch, .generation = gen, .first_lsn = first_lsn};
    memcpy(h.dbid, db->dbid, LS_DBID_LEN);
    memcpy(h.prev_digest, prev_digest, LS_DIGEST_SIZE);
    h.create_ns = ls_now_ns();
    uint8_t hdr[LS_GEN_HEADER_SIZE];
    ls_gen_header_encode(&h, hdr);
    if (!db->sha && !(db->sha = ls_sha256_new())) return LS_ENOMEM;
    if (db->fd >= 0) close(db->fd);
    db->fd = open(db->cur_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (db->fd < 0) return ls_err_from_errno(errno);
    /* No fsync of the header alone: the first batch's fdatasync makes it durable with the
     * batch, before anything in this log is acknowledged. A crash before that leaves a header
     * torn at creation, which recovery recreates (settle_current). The directory entry is made
     * durable now, so the name never points at the closed generation's old inode. */
    int rc = ls_write_full(db->fd, hdr, sizeof(hdr));
    if (rc == 0) rc = ls_fsync_dir(db->logs);
    if (rc) return rc;
    ls_sha256_reset(db->sha);
    ls_sha256_update(db->sha, hdr, sizeof(hdr));
    db->gen = gen;
    db->gen_first_lsn = first_lsn;
    db->gen_records = 0;
    db->log_size = LS_GEN_HEADER_SIZE;
    memcpy(db->prev_digest, prev_digest, LS_DIGEST_SIZE);
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
    int rc = ls_pwrite_full(db->fd, trl, sizeof(trl), (off_t) db->log_size);
    if (rc == 0) rc = ls_fdatasync(db->fd);
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
    return ls__log_create(db, db->gen + 1, db->last_lsn + 1, digest);
}

int ls__checkpoint(ls_db_t *db)
{
    uint64_t lsn = 0;
    int rc = ls_store_checkpoint(db->store, &lsn);
    db->last_ckpt_ns = ls_mono_ns();
    return rc;
}
