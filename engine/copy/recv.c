/*
 * The receive path (receiver thread): bytes of the next wanted generation into inspect/<name>.part,
 * and, over the same bytes while they are in hand, the whole inspection in one pass: SHA-256 of
 * header + records (compared with the sender's and with the trailer), the generation walk
 * (ls_gen_stream: header, expectations, every record checksum and field, the trailer against the
 * records; records may straddle chunks) and the file's XXH3-128 seal that replay compares instead
 * of checking the records again. Then fdatasync, rename out of .part and directory fsync before
 * durable(N); the verdict is already known, so the inspection ends with the move into logs/ (or
 * the ask-again) without reading the file back. ENOSPC anywhere drops the .part and puts the copy
 * in DISK_FULL: nothing durable is touched, and a later recv_begin of the same generation retries.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "copy/copy_int.h"

/* Closes and deletes the .part; the receive is over. */
static void drop_part(ls_copy_t *c)
{
    ls__copy_rx_t *rx = &c->rx;
    if (rx->growing) (void) ls_prealloc_grown(c->pool, true); /* waited for, or not done */
    if (rx->grow_sync) (void) ls_prealloc_grow_synced(c->pool);
    rx->growing = rx->grow_sync = false;
    if (rx->fd >= 0) {
        close(rx->fd);
        unlink(rx->part);
        if (rx->linked) ls__copy_shadow_cut(c); /* the tail written into the shadow's file */
    }
    rx->fd = -1;
    rx->active = false;
    c->shf.ex_lent = false; /* the stream no longer reads the shadow's expectations */
    __atomic_store_n(&c->rx_open, false, __ATOMIC_RELAXED);
    ls_sha256_free(rx->sha);
    rx->sha = NULL;
}

/* Frees what the receiver keeps between generations (at close). */
void ls__copy_rx_free(ls_copy_t *c)
{
    ls_gen_stream_free(c->rx.stream);
    ls_seal_free(c->rx.seal);
    c->rx.stream = NULL;
    c->rx.seal = NULL;
}

/* An I/O error of the receive path: drops the .part; ENOSPC makes the copy DISK_FULL. */
static int io_failed(ls_copy_t *c, int rc, const char *what, char *err, size_t errlen)
{
    ls__copy_rx_t *rx = &c->rx;
    char reason[512];
    ls_msgf(reason, sizeof(reason),
            "copy %s: %s inspect/%s failed: %s; the partial file was dropped and generation %llu "
            "will be received again%s",
            c->dir, what, rx->name, ls_strerror(rc), (unsigned long long) rx->generation,
            rc == LS_ENOSPC ? " when space returns" : "");
    ls_msgf(err, errlen, "%s", reason);
    drop_part(c);
    ls__copy_flush_durable(c, NULL, 0); /* earlier generations are reported before the state */
    if (rc != LS_ENOSPC) return rc;
    pthread_mutex_lock(&c->mu);
    bool changed = ls__copy_set_state(c, LS_COPY_DISK_FULL, reason);
    pthread_mutex_unlock(&c->mu);
    if (changed) ls__copy_emit(c, LS_COPY_EV_STATE, 0, 0, LS_COPY_DISK_FULL, reason);
    return rc;
}

/* Whether gen may be received now (mu held); why is set when not. */
static bool wanted(ls_copy_t *c, uint32_t epoch, uint64_t gen, char *why, size_t len)
{
    if (c->state == LS_COPY_FAILED) {
        ls_msgf(why, len, "copy %s is failed: %s", c->dir, c->reason);
        return false;
    }
    if (gen != c->held_gen + 1 || epoch < c->held_epoch) {
        ls_msgf(why, len,
                "copy %s wants generation %llu (epoch %u or later), not generation %llu of "
                "epoch %u",
                c->dir, (unsigned long long) c->held_gen + 1, c->held_epoch,
                (unsigned long long) gen, epoch);
        return false;
    }
    return true;
}

/* The .part: a preallocated file when one is ready (its blocks allocated, written and synced:
 * overwritten in place, docs/COPY.md), grown to the announced size by the pool's thread while the
 * first bytes arrive (or, rarely, cut to it), so that the fdatasync at the end finds only data to
 * flush; else a bare one (empty, created by the pool's thread: written as a new file, without
 * the inode's allocation on this thread); else a new file. Either way that fdatasync alone makes
 * the bytes and the size durable. */
static int open_part(ls_copy_t *c, uint64_t size)
{
    ls__copy_rx_t *rx = &c->rx;
    uint64_t have = 0;
    ls_prealloc_size(c->pool, size); /* files made from now on are a little shorter */
    if (ls_prealloc_take(c->pool, rx->part, &rx->fd, &have) == 0) {
        if (LS_FAULT("copy.recv.after_take")) return LS_EIO; /* tests: a recycled .part */
        if (have == 0) { /* a bare file: nothing to grow or cut */
        } else if (have < size) {
            ls_prealloc_grow_ahead(c->pool, rx->fd, have, size);
            rx->growing = true;
            rx->grow_from = have;
        } else if (have > size) { /* a generation shorter than the last 8: cut (slow) */
            if (ftruncate(rx->fd, (off_t) size) != 0) return ls_err_from_errno(errno);
            ls_prealloc_sync_ahead(c->pool, rx->fd);
        }
        return 0;
    }
    rx->fd = open(rx->part, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    return rx->fd < 0 ? ls_err_from_errno(errno) : 0;
}

int ls__copy_rx_begin(ls_copy_t *c, uint32_t epoch, uint64_t gen, uint64_t size, char *err,
                      size_t errlen)
{
    ls__copy_rx_t *rx = &c->rx;
    char why[768];
    if (rx->active) {
        ls_msgf(err, errlen, "copy %s: generation %llu is still being received", c->dir,
                (unsigned long long) rx->generation);
        return LS_ESTATE;
    }
    pthread_mutex_lock(&c->mu);
    bool ok = wanted(c, epoch, gen, why, sizeof(why));
    pthread_mutex_unlock(&c->mu);
    if (!ok) {
        ls_msgf(err, errlen, "%s", why);
        return LS_ESTATE;
    }
    if (size > LS_GEN_HARD_CAP || size < LS_GEN_HEADER_SIZE + LS_GEN_TRAILER_SIZE) {
        ls_msgf(err, errlen, "copy %s: generation %llu announced with %llu bytes (allowed %d..%u)",
                c->dir, (unsigned long long) gen, (unsigned long long) size,
                LS_GEN_HEADER_SIZE + LS_GEN_TRAILER_SIZE, LS_GEN_HARD_CAP);
        return size > LS_GEN_HARD_CAP ? LS_ETOOBIG : LS_EINVAL;
    }
    ls_gen_stream_t *stream = rx->stream;
    ls_seal_t *seal = rx->seal;
    *rx = (ls__copy_rx_t){
        .epoch = epoch, .generation = gen, .size = size, .fd = -1, .stream = stream, .seal = seal};
    ls_gen_name(rx->name, sizeof(rx->name), c->prefix, epoch, gen);
    ls_msgf(rx->part, sizeof(rx->part), "%s/%s.part", c->inspect_dir, rx->name);
    if ((!rx->stream && !(rx->stream = ls_gen_stream_new())) ||
        (!rx->seal && !(rx->seal = ls_seal_new())) || !(rx->sha = ls_sha256_new()))
        return LS_ENOMEM;
    /* What the generation must be: fixed now, re-checked against the held chain at the move */
    pthread_mutex_lock(&c->mu);
    ls__copy_expect(c, epoch, gen, &rx->x);
    pthread_mutex_unlock(&c->mu);
    rx->ex = (ls_gen_expect_t){.dbid = rx->x.check_dbid ? rx->x.dbid : NULL,
                               .epoch = epoch,
                               .generation = gen,
                               .first_lsn = rx->x.first_lsn,
                               .prev_digest = rx->x.prev,
                               .known_digest = rx->digest};
    ls_gen_stream_begin(rx->stream, &rx->ex, 0);
    ls_seal_reset(rx->seal);
    return 0;
}

void ls__copy_rx_opened(ls_copy_t *c)
{
    c->rx.active = true;
    __atomic_store_n(&c->rx_open, true, __ATOMIC_RELAXED);
    __atomic_store_n(&c->rx_activity_ns, ls_mono_ns(), __ATOMIC_RELAXED);
}

int ls_copy_recv_begin(ls_copy_t *c, uint32_t epoch, uint64_t gen, uint64_t size, uint64_t close_ns,
                       char *err, size_t errlen)
{
    (void) close_ns; /* informational: the trailer's close time is authoritative */
    int rc = ls__copy_rx_begin(c, epoch, gen, size, err, errlen);
    if (rc) return rc;
    if ((rc = open_part(c, size))) return io_failed(c, rc, "creating", err, errlen);
    ls__copy_rx_opened(c);
    return 0;
}

/* Checks the header's database id as soon as the stream has validated the header. */
int ls__copy_rx_check_header(ls_copy_t *c, char *err, size_t errlen)
{
    ls_gen_header_t h;
    if (!ls_gen_stream_header(c->rx.stream, &h))
        return 0; /* damaged in transit: the inspection will say so and ask again */
    pthread_mutex_lock(&c->mu);
    bool other = c->have_dbid && memcmp(h.dbid, c->dbid, LS_DBID_LEN) != 0;
    char reason[512] = "", have[2 * LS_DBID_LEN + 1], got[2 * LS_DBID_LEN + 1];
    if (other) {
        ls_hex(c->dbid, LS_DBID_LEN, have);
        ls_hex(h.dbid, LS_DBID_LEN, got);
        ls_msgf(reason, sizeof(reason),
                "copy %s belongs to database %s but generation %llu names database %s: check "
                "the source configured for this copy",
                c->dir, have, (unsigned long long) c->rx.generation, got);
    }
    bool changed = other && ls__copy_set_state(c, LS_COPY_FAILED, reason);
    pthread_mutex_unlock(&c->mu);
    if (!other) return 0;
    ls_msgf(err, errlen, "%s", reason);
    drop_part(c);
    ls__copy_flush_durable(c, NULL, 0);
    if (changed) ls__copy_emit(c, LS_COPY_EV_STATE, 0, 0, LS_COPY_FAILED, reason);
    return LS_EDBID;
}

static int absorb(ls_copy_t *c, uint64_t offset, const void *data, size_t len, bool hashed,
                  char *err, size_t errlen);

/* recv_data; hashed: the caller has put the bytes into its own SHA-256 (every byte of the
 * generation comes one way or the other, never both: recv_end_hashed then takes its digest). */
static int recv_data(ls_copy_t *c, uint64_t gen, uint64_t offset, const void *data, size_t len,
                     bool hashed, char *err, size_t errlen)
{
    ls__copy_rx_t *rx = &c->rx;
    char why[768] = "";
    if (!rx->active || rx->generation != gen) {
        ls_msgf(err, errlen, "copy %s: generation %llu is not being received", c->dir,
                (unsigned long long) gen);
        return LS_ESTATE;
    }
    pthread_mutex_lock(&c->mu);
    bool ok = wanted(c, rx->epoch, gen, why, sizeof(why));
    pthread_mutex_unlock(&c->mu);
    if (ok && (offset != rx->got || len > rx->size - rx->got)) {
        ls_msgf(why, sizeof(why),
                "copy %s: generation %llu: %zu bytes at offset %llu, expected offset %llu of "
                "%llu",
                c->dir, (unsigned long long) gen, len, (unsigned long long) offset,
                (unsigned long long) rx->got, (unsigned long long) rx->size);
        ok = false;
    }
    if (ok && (hashed ? rx->by_caller != rx->got : rx->by_caller != 0)) {
        ls_msgf(why, sizeof(why),
                "copy %s: generation %llu: bytes at offset %llu hashed %s, the %llu before "
                "them %s",
                c->dir, (unsigned long long) gen, (unsigned long long) offset,
                hashed ? "by the caller" : "here", (unsigned long long) rx->got,
                hashed ? "here" : "by the caller");
        ok = false;
    }
    if (!ok) {
        ls_msgf(err, errlen, "%s", why);
        drop_part(c);
        return LS_ESTATE;
    }
    int rc = 0;
    if (rx->growing && offset + len > rx->grow_from) { /* the pool file's grown part */
        rx->growing = false;
        rc = ls_prealloc_grown(c->pool, false); /* its zeros written; its sync may still run */
        rx->grow_sync = rc == 0;
    }
    if (rc == 0)
        rc = LS_FAULT("copy.recv.write_enospc") ? LS_ENOSPC /* tests: a full disk */
                                                : ls_pwrite_full(rx->fd, data, len, (off_t) offset);
    if (rc) return io_failed(c, rc, "writing", err, errlen);
    /* Start the chunk's writeback now (it is not waited for): the disk writes while the next
     * chunks are hashed and inspected, and recv_end's fdatasync, which alone makes the file
     * durable, finds most of it written already. */
    (void) sync_file_range(rx->fd, (off_t) offset, (off_t) len, SYNC_FILE_RANGE_WRITE);
    return absorb(c, offset, data, len, hashed, err, errlen);
}

int ls_copy_recv_data(ls_copy_t *c, uint64_t gen, uint64_t offset, const void *data, size_t len,
                      char *err, size_t errlen)
{
    return recv_data(c, gen, offset, data, len, false, err, errlen);
}

int ls_copy_recv_data_hashed(ls_copy_t *c, uint64_t gen, uint64_t offset, const void *data,
                             size_t len, char *err, size_t errlen)
{
    return recv_data(c, gen, offset, data, len, true, err, errlen);
}

int ls__copy_rx_absorb(ls_copy_t *c, uint64_t offset, const void *data, size_t len, char *err,
                       size_t errlen)
{
    return absorb(c, offset, data, len, false, err, errlen);
}

static int absorb(ls_copy_t *c, uint64_t offset, const void *data, size_t len, bool hashed,
                  char *err, size_t errlen)
{
    ls__copy_rx_t *rx = &c->rx;
    uint64_t hash_end = rx->size - LS_GEN_TRAILER_SIZE;
    if (hashed)
        rx->by_caller += len;
    else if (offset < hash_end)
        ls_sha256_update(rx->sha, data, (size_t) LS_MIN((uint64_t) len, hash_end - offset));
    ls_seal_update(rx->seal, data, len);
    /* a failure sticks in the stream and is the inspection's verdict at the end */
    ls_gen_stream_feed(rx->stream, data, len, NULL, NULL);
    rx->got += len;
    __atomic_store_n(&c->rx_activity_ns, ls_mono_ns(), __ATOMIC_RELAXED);
    if (offset < LS_GEN_HEADER_SIZE && rx->got >= LS_GEN_HEADER_SIZE)
        return ls__copy_rx_check_header(c, err, errlen);
    return 0;
}

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
    if (rc) return io_failed(c, rc, "syncing", err, errlen);
    if (LS_FAULT("copy.recv.before_rename"))
        return io_failed(c, LS_EIO, "renaming (fault point)", err, errlen);
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
    if (rc) return io_failed(c, rc, "syncing", err, errlen);
    if (LS_FAULT("copy.recv.before_rename"))
        return io_failed(c, LS_EIO, "renaming (fault point)", err, errlen);
    if (rename(rx->part, to) != 0)
        return io_failed(c, ls_err_from_errno(errno), "renaming", err, errlen);
    close(rx->fd);
    rx->fd = -1;
    if ((rc = ls_fsync_dir(c->inspect_dir))) {
        unlink(to); /* not known durable: never report it */
        rx->active = false;
        return io_failed(c, rc, "syncing the directory of", err, errlen);
    }
    return 0;
}

/* recv_end; hashed: the caller's SHA-256 of the bytes it passed to recv_data_hashed (NULL: the
 * bytes were hashed here). */
static int recv_end(ls_copy_t *c, uint64_t gen, const uint8_t *sender_digest, const uint8_t *hashed,
                    char *err, size_t errlen)
{
    ls__copy_rx_t *rx = &c->rx;
    if (!rx->active || rx->generation != gen || rx->got != rx->size) {
        ls_msgf(err, errlen, "copy %s: generation %llu cannot end: %llu of %llu bytes received",
                c->dir, (unsigned long long) gen, (unsigned long long) rx->got,
                (unsigned long long) rx->size);
        if (rx->active) drop_part(c);
        return LS_ESTATE;
    }
    if (rx->by_caller && !hashed) {
        ls_msgf(err, errlen,
                "copy %s: generation %llu cannot end: its bytes were hashed by the caller, "
                "whose digest did not come",
                c->dir, (unsigned long long) gen);
        drop_part(c);
        return LS_ESTATE;
    }
    char why[768];
    pthread_mutex_lock(&c->mu);
    bool ok = wanted(c, rx->epoch, gen, why, sizeof(why));
    pthread_mutex_unlock(&c->mu);
    if (!ok) { /* an earlier generation was asked again meanwhile */
        ls_msgf(err, errlen, "%s", why);
        drop_part(c);
        return LS_ESTATE;
    }
    uint8_t *digest = rx->digest; /* the stream's known digest */
    if (rx->by_caller) /* == size: every byte came hashed by the caller (recv_data_hashed) */
        memcpy(digest, hashed, LS_DIGEST_SIZE);
    else
        ls_sha256_final(rx->sha, digest);
    LS__COPY_COUNT(c, digests, 1);
    LS__COPY_COUNT(c, digest_bytes, rx->size - LS_GEN_TRAILER_SIZE);
    if (sender_digest && memcmp(sender_digest, digest, LS_DIGEST_SIZE) != 0) {
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
        drop_part(c);
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
    int rc = vrc == 0 ? sync_part(c, err, errlen) : make_durable(c, err, errlen);
    if (rc) return rc;
    drop_part(c); /* fd already closed (the .part renamed, or kept for the move): frees the hash */
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

void ls_copy_recv_abort(ls_copy_t *c)
{
    if (c->rx.active || c->rx.sha) drop_part(c);
}
