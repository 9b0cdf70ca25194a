/*
 * The inspector's conclusions: a generation checked against the held chain (database id, epoch,
 * generation, first LSN = previous last LSN + 1, prev_digest = digest of the one before, every
 * record checksum, the trailer, the digest) moves into logs/ (rename + fsync of logs/) and is
 * queued for replay with the facts its check established (counts, LSNs, digest, and the file's
 * XXH3-128 seal, which replay compares instead of checking the records again). A failure deletes
 * the file and asks again; repeated failures of one generation make it FAILED.
 *
 * The check itself runs where the bytes are: while receiving (recv.c feeds ls_gen_stream as the
 * chunks arrive, then calls ls__copy_conclude), or over a file read back after a restart
 * (ls__copy_inspect for inspect/, ls__copy_check_buf for logs/).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "copy/copy_int.h"

void ls__copy_expect(ls_copy_t *c, uint32_t epoch, uint64_t gen, ls__copy_expect_t *x)
{
    memset(x, 0, sizeof(*x));
    x->check_dbid = c->have_dbid;
    memcpy(x->dbid, c->dbid, LS_DBID_LEN);
    x->epoch = epoch;
    x->generation = gen;
    x->first_lsn = c->held_gen && c->held_lsn ? c->held_lsn + 1 : 0;
    memcpy(x->prev, c->held_digest, LS_DIGEST_SIZE);
    const ls_store_meta_t *m = &c->meta;
    if (c->held_gen == m->digest_generation && m->generation == gen && m->lsn) x->seed_lsn = m->lsn;
}

void ls__copy_hold(ls_copy_t *c, const ls__copy_entry_t *e)
{
    c->held_gen = e->generation;
    c->held_epoch = e->epoch;
    memcpy(c->held_digest, e->digest, LS_DIGEST_SIZE);
    c->held_lsn = e->last_lsn;
}

int ls__copy_entry_from(const ls__copy_expect_t *x, const ls_gen_info_t *info, size_t len,
                        const uint8_t seal[LS_SEAL_LEN], ls__copy_entry_t *e, char *msg,
                        size_t msglen)
{
    if (x->seed_lsn && info->header.first_lsn > x->seed_lsn + 1) {
        ls_msgf(msg, msglen,
                "generation %llu starts at lsn %llu but the seeded store holds only through "
                "lsn %llu",
                (unsigned long long) x->generation, (unsigned long long) info->header.first_lsn,
                (unsigned long long) x->seed_lsn);
        return LS_EGAP;
    }
    e->epoch = info->header.epoch;
    e->generation = info->header.generation;
    e->size = len;
    e->first_lsn = info->header.first_lsn;
    e->last_lsn = info->trailer.last_lsn;
    e->close_ns = info->trailer.close_ns;
    e->last_txid = info->last_txid;
    memcpy(e->prev_digest, info->header.prev_digest, LS_DIGEST_SIZE);
    memcpy(e->digest, info->trailer.digest, LS_DIGEST_SIZE);
    memcpy(e->seal, seal, LS_SEAL_LEN);
    return 0;
}

int ls__copy_check_buf(ls_copy_t *c, ls__copy_expect_t *x, const uint8_t *buf, size_t len,
                       bool trust_trailer, ls__copy_entry_t *e, char *msg, size_t msglen)
{
    ls_gen_expect_t ex = {.dbid = x->check_dbid ? x->dbid : NULL,
                          .epoch = x->epoch,
                          .generation = x->generation,
                          .first_lsn = x->first_lsn,
                          .prev_digest = x->prev,
                          .known_digest = x->has_known ? x->known : NULL};
    /* Trusting the trailer: its digest field is the known digest. The scan still checks the
     * trailer's checksum and that it ends the file, so nothing is decoded twice. */
    if (trust_trailer && len >= LS_GEN_HEADER_SIZE + LS_GEN_TRAILER_SIZE)
        ex.known_digest = buf + len - LS_GEN_TRAILER_SIZE + LS__COPY_TRL_DIGEST;
    ls_gen_info_t info;
    ls_gen_verdict_t v;
    int rc = ls_gen_scan(buf, len, &ex, NULL, NULL, &info, &v);
    LS__COPY_COUNT(c, record_checksums, info.record_checksums);
    if (info.hashed) {
        LS__COPY_COUNT(c, digests, 1);
        LS__COPY_COUNT(c, digest_bytes, info.hashed);
    }
    if (info.header_ok) memcpy(x->header_dbid, info.header.dbid, LS_DBID_LEN);
    if (rc) {
        ls_msgf(msg, msglen, "generation %llu: %s", (unsigned long long) x->generation, v.msg);
        return rc;
    }
    uint8_t seal[LS_SEAL_LEN];
    ls_seal(buf, len, seal); /* the buffer is still in cache */
    LS__COPY_COUNT(c, seals, 1);
    LS__COPY_COUNT(c, seal_bytes, len);
    return ls__copy_entry_from(x, &info, len, seal, e, msg, msglen);
}

/* Moves the inspected file into logs/ and makes it held (mu held). defer: the fsync of logs/ is
 * left to ls__copy_flush_durable (the replayer applies nothing from e on until then). */
static int promote(ls_copy_t *c, const char *from, const ls__copy_entry_t *e, const uint8_t *dbid,
                   bool defer, char *err, size_t errlen)
{
    char to[LS__COPY_PATH_MAX];
    ls__copy_path(c, to, c->logs_dir, e->epoch, e->generation);
    if (c->held_gen + 1 != e->generation || memcmp(c->held_digest, e->prev_digest, 32) != 0) {
        ls_msgf(err, errlen, "generation %llu no longer follows the held chain (now at %llu)",
                (unsigned long long) e->generation, (unsigned long long) c->held_gen);
        return LS_ESTATE; /* the replayer rolled back meanwhile and already asked again */
    }
    int rc = 0;
    if (!c->have_dbid) {
        memcpy(c->dbid, dbid, LS_DBID_LEN);
        c->have_dbid = true;
        if ((rc = ls__copy_open_store(c, err, errlen))) {
            c->have_dbid = false;
            return rc;
        }
    }
    /* Only the destination is synced: once logs/<name> is durable, a crash can at worst bring the
     * old inspect/<name> back beside it, and restart deletes inspect/ files at or below the held
     * generation (docs/COPY.md, "The move into logs/"). The next receive syncs inspect/ anyway. */
    if (rename(from, to) != 0) rc = ls_err_from_errno(errno);
    if (rc == 0 && !defer) rc = ls_fsync_dir(c->logs_dir);
    if (rc == 0) rc = ls__copy_queue_push(c, e);
    if (rc) {
        ls_msgf(err, errlen, "cannot move %s into logs/: %s", from, ls_strerror(rc));
        unlink(to);
        return rc;
    }
    ls__copy_hold(c, e);
    if (defer && (!c->unsynced_gen || e->generation < c->unsynced_gen)) /* (a rollback) */
        c->unsynced_gen = e->generation;
    if (c->fail_gen <= e->generation) c->fail_count = 0;
    pthread_cond_broadcast(&c->cv);
    return 0;
}

/* A failed inspection (mu not held): delete, count, ask again. */
static int fail_inspection(ls_copy_t *c, const char *path, uint64_t gen, int rc, const char *why)
{
    unlink(path);
    ls_fsync_dir(c->inspect_dir);
    pthread_mutex_lock(&c->mu);
    bool failed = false, full = false;
    if (rc == LS_ENOSPC) {
        char reason[512];
        ls_msgf(reason, sizeof(reason), "copy %s: no space left inspecting generation %llu: %s",
                c->dir, (unsigned long long) gen, why);
        full = ls__copy_set_state(c, LS_COPY_DISK_FULL, reason);
        c->ask_agains++;
    } else if (rc != LS_ESTATE) {
        failed = ls__copy_count_failure(c, gen, why);
    }
    ls_copy_state_t st = c->state;
    char reason[512];
    ls_msgf(reason, sizeof(reason), "%s", c->reason);
    c->rx_inspecting = false;
    bool quiet = c->quiet;
    pthread_mutex_unlock(&c->mu);
    if (quiet) return rc;
    if (rc != LS_ESTATE) ls__copy_emit(c, LS_COPY_EV_ASK_AGAIN, gen, 0, rc, why);
    if (failed || full) ls__copy_emit(c, LS_COPY_EV_STATE, 0, 0, (int) st, reason);
    return rc;
}

int ls__copy_conclude(ls_copy_t *c, uint32_t epoch, uint64_t gen, int rc, const ls__copy_entry_t *e,
                      const uint8_t *header_dbid, const char *msg, const char *from, char *err,
                      size_t errlen)
{
    char path[LS__COPY_PATH_MAX], why[512];
    if (from)
        ls_msgf(path, sizeof(path), "%s", from);
    else
        ls__copy_path(c, path, c->inspect_dir, epoch, gen);
    ls_msgf(why, sizeof(why), "%s", msg);
    if (rc == 0) {
        pthread_mutex_lock(&c->mu);
        rc = promote(c, path, e, header_dbid, from != NULL, why, sizeof(why));
        if (rc == 0) c->rx_inspecting = false;
        pthread_mutex_unlock(&c->mu);
    }
    if (rc) {
        ls_msgf(err, errlen, "copy %s: inspection of generation %llu failed: %s", c->dir,
                (unsigned long long) gen, why);
        return fail_inspection(c, path, gen, rc, why);
    }
    if (from) { /* the .part went straight into logs/: durable with the fsync of logs/ */
        c->pend[c->npend].generation = gen;
        c->pend[c->npend++].lsn = e->last_lsn;
        if (c->rx_defer && c->npend < LS__COPY_PEND_MAX) return 0;
        return ls__copy_flush_durable(c, err, errlen);
    }
    LS__COPY_COUNT(c, logs_syncs, 1);
    if (!c->quiet) ls__copy_emit(c, LS_COPY_EV_INSPECTED, gen, e->last_lsn, 0, "");
    return 0;
}

int ls__copy_inspect(ls_copy_t *c, uint32_t epoch, uint64_t gen, const uint8_t *known_digest,
                     char *err, size_t errlen)
{
    char path[LS__COPY_PATH_MAX], msg[512] = "";
    ls__copy_path(c, path, c->inspect_dir, epoch, gen);
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = ls_read_file(path, LS_GEN_HARD_CAP, &buf, &len);
    if (rc) ls_msgf(msg, sizeof(msg), "cannot read %s: %s", path, ls_strerror(rc));
    ls__copy_expect_t x;
    pthread_mutex_lock(&c->mu);
    ls__copy_expect(c, epoch, gen, &x);
    c->rx_inspecting = true;
    c->rx_bytes_done = len;
    pthread_mutex_unlock(&c->mu);
    if (known_digest) {
        x.has_known = true;
        memcpy(x.known, known_digest, LS_DIGEST_SIZE);
    }
    ls__copy_entry_t e = {0};
    if (rc == 0) rc = ls__copy_check_buf(c, &x, buf, len, false, &e, msg, sizeof(msg));
    free(buf);
    return ls__copy_conclude(c, epoch, gen, rc, &e, x.header_dbid, msg, NULL, err, errlen);
}
