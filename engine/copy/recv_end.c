/*
 * The end of a received generation (receiver thread; recv.c receives its bytes): the digest and
 * the inspection's verdict, then fdatasync of the .part, its rename out of .part and the fsync of
 * the directory, batched over the generations received back to back (ls_copy_recv_defer), before
 * durable(N) and inspected(N) are reported; a generation that fails is asked again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "copy/copy_int.h"

/* The .part's fdatasync: first the growth's, if the pool's thread still runs it (its error is
 * this file's: the pool syncs a duplicate of the descriptor, so the error would not be reported
 * again here), then the receiver's own, which makes every byte and the size durable. */
static int fdatasync_part(ls_copy_t *c)
{
    ls__copy_rx_t *rx = &c->rx;
    int rc = 0;
    if (rx->grow_sync) {
        rx->grow_sync = false;
        rc = ls_prealloc_grow_synced(c->pool);
    }
    return rc ? rc : ls_fdatasync(rx->fd);
}

/* fdatasync and close of the .part, which stays for the move into logs/. */
static int sync_part(ls_copy_t *c, char *err, size_t errlen)
{
    ls__copy_rx_t *rx = &c->rx;
    int rc = fdatasync_part(c);
    if (rc) return ls__copy_rx_io_failed(c, rc, "syncing", err, errlen);
    if (LS_FAULT("copy.recv.before_rename"))
        return ls__copy_rx_io_failed(c, LS_EIO, "renaming (fault point)", err, errlen);
    close(rx->fd);
    rx->fd = -1;
    return 0;
}

/* fdatasync, rename out of .part, directory fsync: the generation is durable. */
static int make_durable(ls_copy_t *c, char *err, size_t errlen)
{
    ls__copy_rx_t *rx = &c->rx;
    char to[LS__COPY_PATH_MAX];
    ls_msgf(to, sizeof(to), "%s/%s", c->inspect_dir, rx->name);
    int rc = fdatasync_part(c);
    if (rc) return ls__copy_rx_io_failed(c, rc, "syncing", err, errlen);
    if (LS_FAULT("copy.recv.before_rename"))
        return ls__copy_rx_io_failed(c, LS_EIO, "renaming (fault point)", err, errlen);
    if (rename(rx->part, to) != 0)
        return ls__copy_rx_io_failed(c, ls_err_from_errno(errno), "renaming", err, errlen);
    close(rx->fd);
    rx->fd = -1;
    if ((rc = ls_fsync_dir(c->inspect_dir))) {
        unlink(to); /* not known durable: never report it */
        rx->active = false;
        return ls__copy_rx_io_failed(c, rc, "syncing the directory of", err, errlen);
    }
    return 0;
}

/* Whether the generation being received may end as gen (every byte received, the caller's
 * digest there when the caller hashed, still wanted); else the receive is dropped, LS_ESTATE. */
static int may_end(ls_copy_t *c, uint64_t gen, const uint8_t *hashed, char *err, size_t errlen)
{
    ls__copy_rx_t *rx = &c->rx;
    if (!rx->active || rx->generation != gen || rx->got != rx->size) {
        ls_msgf(err, errlen, "copy %s: generation %llu cannot end: %llu of %llu bytes received",
                c->dir, (unsigned long long) gen, (unsigned long long) rx->got,
                (unsigned long long) rx->size);
        if (rx->active) ls__copy_rx_drop(c);
        return LS_ESTATE;
    }
    if (rx->by_caller && !hashed) {
        ls_msgf(err, errlen,
                "copy %s: generation %llu cannot end: its bytes were hashed by the caller, "
                "whose digest did not come",
                c->dir, (unsigned long long) gen);
        ls__copy_rx_drop(c);
        return LS_ESTATE;
    }
    char why[768];
    pthread_mutex_lock(&c->mu);
    bool ok = ls__copy_rx_wanted(c, rx->epoch, gen, why, sizeof(why));
    pthread_mutex_unlock(&c->mu);
    if (!ok) { /* an earlier generation was asked again meanwhile */
        ls_msgf(err, errlen, "%s", why);
        ls__copy_rx_drop(c);
        return LS_ESTATE;
    }
    return 0;
}

/* The digest of generation gen differs from the sender's: the receive is dropped, the pending
 * generations reported, the generation asked again (FAILED after too many); LS_EDIGEST. */
static int digest_differs(ls_copy_t *c, uint64_t gen, char *err, size_t errlen)
{
    ls__copy_rx_t *rx = &c->rx;
    char msg[256];
    if (rx->head)
        ls_msgf(msg, sizeof(msg),
                "generation %llu: digest differs from the sender's: bytes [0, %llu) from the "
                "shadow and the rest received are not the active's file",
                (unsigned long long) gen, (unsigned long long) rx->head);
    else
        ls_msgf(msg, sizeof(msg),
                "generation %llu: digest of the bytes received differs from "
                "the sender's (damaged in transit)",
                (unsigned long long) gen);
    ls_msgf(err, errlen, "copy %s: %s", c->dir, msg);
    ls__copy_rx_drop(c);
    ls__copy_flush_durable(c, NULL, 0); /* the pending ones are reported first */
    pthread_mutex_lock(&c->mu);
    bool failed = ls__copy_count_failure(c, gen, msg);
    char reason[512];
    ls_msgf(reason, sizeof(reason), "%s", c->reason);
    pthread_mutex_unlock(&c->mu);
    ls__copy_emit(c, LS_COPY_EV_ASK_AGAIN, gen, 0, LS_EDIGEST, msg);
    if (failed) ls__copy_emit(c, LS_COPY_EV_STATE, 0, 0, LS_COPY_FAILED, reason);
    return LS_EDIGEST;
}

/* recv_end; hashed: the caller's SHA-256 of the bytes it passed to recv_data_hashed (NULL: the
 * bytes were hashed here). */
static int recv_end(ls_copy_t *c, uint64_t gen, const uint8_t *sender_digest, const uint8_t *hashed,
                    char *err, size_t errlen)
{
    ls__copy_rx_t *rx = &c->rx;
    int rc = may_end(c, gen, hashed, err, errlen);
    if (rc) return rc;
    uint8_t *digest = rx->digest; /* the stream's known digest */
    if (rx->by_caller) /* == size: every byte came hashed by the caller (recv_data_hashed) */
        memcpy(digest, hashed, LS_DIGEST_SIZE);
    else
        ls_sha256_final(rx->sha, digest);
    LS__COPY_COUNT(c, digests, 1);
    LS__COPY_COUNT(c, digest_bytes, rx->size - LS_GEN_TRAILER_SIZE);
    if (sender_digest && memcmp(sender_digest, digest, LS_DIGEST_SIZE) != 0)
        return digest_differs(c, gen, err, errlen);
    /* the inspection's verdict, from the pass over the bytes as they arrived */
    ls_gen_info_t info;
    ls_gen_verdict_t v;
    int vrc = ls_gen_stream_end(rx->stream, &info, &v);
    LS__COPY_COUNT(c, record_checksums, info.record_checksums);
    uint8_t seal[LS_SEAL_LEN];
    ls_seal_final(rx->seal, seal);
    LS__COPY_COUNT(c, seals, 1);
    LS__COPY_COUNT(c, seal_bytes, rx->size);
    char msg[512] = "";
    ls__copy_entry_t e = {0};
    if (vrc)
        ls_msgf(msg, sizeof(msg), "generation %llu: %s", (unsigned long long) gen, v.msg);
    else
        vrc = ls__copy_entry_from(&rx->x, &info, rx->size, seal, &e, msg, sizeof(msg));
    uint32_t epoch = rx->epoch;
    char part[LS__COPY_PATH_MAX];
    ls_msgf(part, sizeof(part), "%s", rx->part);
    /* Inspected: the .part goes straight into logs/, one rename and one directory fsync (shared
     * with the generations queued behind it while the receiver defers), and durable(N) and
     * inspected(N) follow that fsync. Failed: the pending ones are reported first; made durable in
     * inspect/ as received, then deleted and asked again. */
    if (vrc && c->npend) ls__copy_flush_durable(c, NULL, 0);
    rc = vrc == 0 ? sync_part(c, err, errlen) : make_durable(c, err, errlen);
    if (rc) return rc;
    ls__copy_rx_drop(
        c); /* fd already closed (the .part renamed, or kept for the move): frees the hash */
    __atomic_store_n(&c->rx_activity_ns, ls_mono_ns(), __ATOMIC_RELAXED);
    if (vrc == 0)
        return ls__copy_conclude(c, epoch, gen, 0, &e, info.header.dbid, msg, part, err, errlen);
    ls__copy_durable(c, gen);
    return ls__copy_conclude(c, epoch, gen, vrc, &e, info.header.dbid, msg, NULL, err, errlen);
}

int ls_copy_recv_end(ls_copy_t *c, uint64_t gen, const uint8_t *sender_digest, char *err,
                     size_t errlen)
{
    return recv_end(c, gen, sender_digest, NULL, err, errlen);
}

int ls_copy_recv_end_hashed(ls_copy_t *c, uint64_t gen, const uint8_t *sender_digest,
                            const uint8_t *digest, char *err, size_t errlen)
{
    return recv_end(c, gen, sender_digest, digest, err, errlen);
}

int ls__copy_flush_durable(ls_copy_t *c, char *err, size_t errlen)
{
    if (!c->npend) return 0;
    int rc = ls_fsync_dir(c->logs_dir);
    LS__COPY_COUNT(c, logs_syncs, 1);
    size_t n = c->npend;
    uint64_t first = c->pend[0].generation;
    c->npend = 0;
    char why[512] = "";
    bool failed = false, full = false;
    pthread_mutex_lock(&c->mu);
    if (rc) c->unsynced_gen = 0;
    if (rc && first <= c->held_gen) {
        ls_msgf(why, sizeof(why),
                "copy %s: syncing logs/ after moving generations %llu..%llu into it failed: %s; "
                "they were deleted and will be received again",
                c->dir, (unsigned long long) first, (unsigned long long) c->pend[n - 1].generation,
                ls_strerror(rc));
        ls__copy_rollback(c, first); /* deletes them, the held chain back to first - 1 */
        if (rc == LS_ENOSPC) {
            full = ls__copy_set_state(c, LS_COPY_DISK_FULL, why);
            c->ask_agains++;
        } else {
            failed = ls__copy_count_failure(c, first, why);
        }
    }
    uint64_t held = c->held_gen;
    ls_copy_state_t st = c->state;
    char reason[512];
    ls_msgf(reason, sizeof(reason), "%s", c->reason);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (rc) {
        if (err) ls_msgf(err, errlen, "%s", why);
        if (why[0]) ls__copy_emit(c, LS_COPY_EV_ASK_AGAIN, first, 0, rc, why);
        if (failed || full) ls__copy_emit(c, LS_COPY_EV_STATE, 0, 0, (int) st, reason);
        return rc;
    }
    for (size_t i = 0; i < n && c->pend[i].generation <= held; i++) {
        ls__copy_durable(c, c->pend[i].generation);
        if (!c->quiet)
            ls__copy_emit(c, LS_COPY_EV_INSPECTED, c->pend[i].generation, c->pend[i].lsn, 0, "");
    }
    pthread_mutex_lock(&c->mu); /* reported: the replayer may take them now (after, so that
                                   replayed(N) never precedes durable(N)) */
    c->unsynced_gen = 0;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

void ls_copy_recv_defer(ls_copy_t *c, bool defer)
{
    c->rx_defer = defer;
}

int ls_copy_recv_flush(ls_copy_t *c, char *err, size_t errlen)
{
    return ls__copy_flush_durable(c, err, errlen);
}

void ls__copy_durable(ls_copy_t *c, uint64_t gen)
{
    pthread_mutex_lock(&c->mu);
    c->durable_gen = gen;
    bool recovered = c->state == LS_COPY_DISK_FULL && ls__copy_set_state(c, LS_COPY_HEALTHY, "");
    pthread_mutex_unlock(&c->mu);
    if (recovered) ls__copy_emit(c, LS_COPY_EV_STATE, 0, 0, LS_COPY_HEALTHY, "");
    ls__copy_emit(c, LS_COPY_EV_DURABLE, gen, 0, 0, "");
}
