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
void ls__copy_rx_drop(ls_copy_t *c)
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
int ls__copy_rx_io_failed(ls_copy_t *c, int rc, const char *what, char *err, size_t errlen)
{
    ls__copy_rx_t *rx = &c->rx;
    char reason[512];
    ls_msgf(reason, sizeof(reason),
            "copy %s: %s inspect/%s failed: %s; the partial file was dropped and generation %llu "
            "will be received again%s",
            c->dir, what, rx->name, ls_strerror(rc), (unsigned long long) rx->generation,
            rc == LS_ENOSPC ? " when space returns" : "");
    ls_msgf(err, errlen, "%s", reason);
    ls__copy_rx_drop(c);
    ls__copy_flush_durable(c, NULL, 0); /* earlier generations are reported before the state */
    if (rc != LS_ENOSPC) return rc;
    pthread_mutex_lock(&c->mu);
    bool changed = ls__copy_set_state(c, LS_COPY_DISK_FULL, reason);
    pthread_mutex_unlock(&c->mu);
    if (changed) ls__copy_emit(c, LS_COPY_EV_STATE, 0, 0, LS_COPY_DISK_FULL, reason);
    return rc;
}

/* Whether gen may be received now (mu held); why is set when not. */
bool ls__copy_rx_wanted(ls_copy_t *c, uint32_t epoch, uint64_t gen, char *why, size_t len)
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
    bool ok = ls__copy_rx_wanted(c, epoch, gen, why, sizeof(why));
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
    if ((rc = open_part(c, size))) return ls__copy_rx_io_failed(c, rc, "creating", err, errlen);
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
    ls__copy_rx_drop(c);
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
    bool ok = ls__copy_rx_wanted(c, rx->epoch, gen, why, sizeof(why));
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
        ls__copy_rx_drop(c);
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
    if (rc) return ls__copy_rx_io_failed(c, rc, "writing", err, errlen);
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

void ls_copy_recv_abort(ls_copy_t *c)
{
    if (c->rx.active || c->rx.sha) ls__copy_rx_drop(c);
}
