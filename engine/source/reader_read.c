/*
 * source: the reader thread's work on one generation (reader.c runs the thread and hands the
 * generations out): where it is, the memory reserved for it, and the piece-by-piece read through
 * the incremental verifier that streams it out once its first piece passed (see reader.c's
 * "Memory" and "Streaming").
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "layout/layout.h"
#include "source/source_int.h"

#define READ_PIECE (256u * 1024u) /* bytes read and verified before they may be sent */
/* The first piece and the last are shorter: the first goes out (GEN_BEGIN with it) after less
 * reading and hashing, and the last, held back until the whole file passed, leaves less for the
 * target to write, hash and sync after the active is done (docs/SOURCE.md, "Piece sizes"). */
#define END_PIECE (64u * 1024u)

/* The length of the piece at off of a file of size bytes. */
static size_t piece_len(uint64_t off, uint64_t size)
{
    uint64_t rest = size - off, last = LS_MIN(size, (uint64_t) END_PIECE);
    if (rest <= last) return (size_t) rest;
    return (size_t) LS_MIN(off == 0 ? (uint64_t) END_PIECE : (uint64_t) READ_PIECE, rest - last);
}

/* Where generation g is. 0: *epoch and *path filled; LOCATE_WAIT; or an error (errmsg). */
static int locate(ls_reader_t *r, uint64_t g, uint32_t *epoch, char *path, size_t pathlen)
{
    ls_source_t *src = r->src;
    char *err = r->errmsg;
    int rc = 0;
    pthread_mutex_lock(&src->mu);
    ssize_t i = ls__src_find(src, g);
    if (i >= 0) {
        *epoch = src->gens[i].epoch;
        ls__src_path(src, *epoch, g, path, pathlen);
        ssize_t p = g > 1 && !r->have_prev ? ls__src_find(src, g - 1) : -1;
        if (p >= 0 && ls__src_load(src, (size_t) p, NULL, 0) == 0) {
            memcpy(r->prev_digest, src->gens[p].digest, LS_DIGEST_SIZE);
            r->prev_last_lsn = src->gens[p].last_lsn;
            r->have_prev = true;
        }
    } else if (src->ngens && g < src->gens[0].generation) {
        rc = ls_errf(err, sizeof(r->errmsg), LS_EGAP,
                     "generation %llu was removed on the active (oldest held: %llu): the "
                     "copy needs a seed",
                     (unsigned long long) g, (unsigned long long) src->gens[0].generation);
    } else if (src->ngens && g < src->gens[src->ngens - 1].generation) {
        rc = ls_errf(err, sizeof(r->errmsg), LS_EGAP,
                     "generation %llu is missing on the active while %llu exists: never "
                     "skipped; restore the file or reseed the copy",
                     (unsigned long long) g,
                     (unsigned long long) src->gens[src->ngens - 1].generation);
    } else {
        rc = LOCATE_WAIT;
    }
    pthread_mutex_unlock(&src->mu);
    return rc;
}

/* Waits until size bytes fit the bounds, then reserves them. false when stopping. */
static bool reserve(ls_reader_t *r, uint64_t size)
{
    pthread_mutex_lock(&r->mu);
    while (!r->stop && r->st.buffered_gens != 0 &&
           (r->st.buffered_gens >= r->max_gens || r->st.buffered_bytes + size > r->max_bytes)) {
        r->st.waiting_space = true;
        pthread_cond_wait(&r->cond, &r->mu);
    }
    r->st.waiting_space = false;
    bool ok = !r->stop;
    if (ok) {
        r->st.buffered_gens++;
        r->st.buffered_bytes += size;
        r->st.peak_gens = LS_MAX(r->st.peak_gens, r->st.buffered_gens);
        r->st.peak_bytes = LS_MAX(r->st.peak_bytes, r->st.buffered_bytes);
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

static void unreserve(ls_reader_t *r, uint64_t size)
{
    pthread_mutex_lock(&r->mu);
    r->st.buffered_gens--;
    r->st.buffered_bytes -= size;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

/* Opens path, reserves its size and allocates the node. 1 when stopping. */
static int open_gen(ls_reader_t *r, const char *path, int *fdp, rgen_t **out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ls_errf(r->errmsg, sizeof(r->errmsg), ls_err_from_errno(errno), "cannot open %s: %s",
                       path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = ls_errf(r->errmsg, sizeof(r->errmsg), ls_err_from_errno(errno), "cannot stat %s: %s",
                     path, strerror(errno));
        goto fail;
    }
    uint64_t size = (uint64_t) st.st_size;
    if (size > LS_GEN_HARD_CAP) {
        rc = ls_errf(r->errmsg, sizeof(r->errmsg), LS_ETOOBIG,
                     "%s: %llu bytes, larger than the cap of %u", path, (unsigned long long) size,
                     LS_GEN_HARD_CAP);
        goto fail;
    }
    if (!reserve(r, size)) {
        rc = 1;
        goto fail;
    }
    rgen_t *n = calloc(1, sizeof(*n));
    size_t cap = 0;
    uint8_t *data = n ? ls__reader_buffer(r, size ? size : 1, &cap) : NULL;
    if (!n || !data) {
        free(n);
        unreserve(r, size);
        rc =
            ls_errf(r->errmsg, sizeof(r->errmsg), LS_ENOMEM, "cannot read %s: out of memory", path);
        goto fail;
    }
    n->data = data;
    n->cap = cap;
    n->buf.bytes = data;
    n->buf.size = size;
    n->buf.avail = &n->avail;
    *fdp = fd;
    *out = n;
    return 0;
fail:
    close(fd);
    return rc;
}

/* Puts n at the end of the ready queue (its first bytes verified, or all of it) and tells the
 * loop; filling: the thread goes on reading into it. Whether the queue was empty before (the
 * loop had taken everything: it waits for n). */
static bool publish(ls_reader_t *r, rgen_t *n, bool filling)
{
    n->buf.ready_ns = ls_mono_ns();
    pthread_mutex_lock(&r->mu);
    n->filling = filling;
    bool was_empty = !r->head;
    if (r->tail)
        r->tail->next = n;
    else
        r->head = n;
    r->tail = n;
    pthread_mutex_unlock(&r->mu);
    r->cb(r->ctx);
    return was_empty;
}

/* The thread is done with n (it failed, or the reader stops): freed when not published, still
 * queued (never handed out) or released meanwhile; when handed out it stays, short of its size,
 * until ship releases it. */
static void withdraw(ls_reader_t *r, rgen_t *n, bool published)
{
    bool queued = false;
    uint8_t *gone = NULL;
    pthread_mutex_lock(&r->mu);
    n->filling = false;
    if (published && n->released) {
        queued = true; /* not in any list any more: only its bytes to give back */
    } else if (published) {
        rgen_t *prev = NULL;
        for (rgen_t *q = r->head; q; prev = q, q = q->next) {
            if (q != n) continue;
            if (prev)
                prev->next = n->next;
            else
                r->head = n->next;
            if (r->tail == n) r->tail = prev;
            queued = true;
            break;
        }
    }
    if (!published || queued) {
        r->st.buffered_gens--;
        r->st.buffered_bytes -= n->buf.size;
        pthread_cond_broadcast(&r->cond);
        gone = ls__reader_drop_locked(r, n);
    }
    pthread_mutex_unlock(&r->mu);
    free(gone);
}

static bool stopping(ls_reader_t *r)
{
    pthread_mutex_lock(&r->mu);
    bool stop = r->stop;
    pthread_mutex_unlock(&r->mu);
    return stop;
}

/* The header and trailer of generation g at path (open as fd) into n's description. 0 or an
 * error (errmsg). */
static int read_ends(ls_reader_t *r, rgen_t *n, int fd, uint64_t g, const char *path)
{
    ls_layout_ends_t x;
    char err[LS_SOURCE_ERRLEN];
    int rc = ls_layout_read_ends_fd(fd, path, &x, err, sizeof(err));
    if (rc) {
        ls_errf(r->errmsg, sizeof(r->errmsg), rc, "generation %llu (%s) not shipped: %s",
                (unsigned long long) g, path, err);
        return rc;
    }
    n->buf.epoch = x.h.epoch;
    n->buf.generation = g;
    n->buf.first_lsn = x.h.first_lsn;
    n->buf.close_ns = x.closed ? x.t.close_ns : 0;
    r->have_trl = x.closed;
    if (x.closed) memcpy(r->trl_digest, x.t.digest, LS_DIGEST_SIZE);
    return 0;
}

/* What this reader expects of generation g (epoch from its name): the chain it continues. */
static ls_gen_expect_t expected(const ls_reader_t *r, uint64_t g, uint32_t epoch)
{
    return (ls_gen_expect_t){
        .dbid = r->have_dbid ? r->dbid : NULL,
        .epoch = epoch,
        .generation = g,
        .first_lsn = r->have_prev && r->prev_last_lsn ? r->prev_last_lsn + 1 : 0,
        .prev_digest = r->have_prev ? r->prev_digest : NULL,
    };
}

/* Reads n's bytes piece by piece through the incremental scanner (begun by the caller),
 * publishing n after its first piece passed (*published) and every later piece but the last.
 * 0 (every piece passed: the verdict is ls_gen_stream_end's), 1 (stopping) or an error
 * (errmsg). */
static int read_pieces(ls_reader_t *r, rgen_t *n, int fd, uint64_t g, const char *path,
                       bool *published)
{
    for (uint64_t off = 0; off < n->buf.size;) {
        size_t len = piece_len(off, n->buf.size);
        ssize_t got = ls_pread_full(fd, n->data + off, len, (off_t) off);
        if (got != (ssize_t) len) {
            int rc = got < 0 ? (int) got : LS_ECORRUPT;
            ls_errf(r->errmsg, sizeof(r->errmsg), rc, "cannot read %s: %s", path,
                    got < 0 ? ls_strerror(rc) : "it changed size while being read");
            return rc;
        }
        if (ls_gen_stream_feed(r->scan, n->data + off, len, NULL, NULL) != 0) {
            ls_gen_verdict_t v = {0};
            int rc = ls_gen_stream_end(r->scan, NULL, &v);
            ls_errf(r->errmsg, sizeof(r->errmsg), rc,
                    "generation %llu (%s) failed verification, not shipped: %s",
                    (unsigned long long) g, path, v.msg);
            return rc;
        }
        off += len;
        if (off == n->buf.size) break; /* the last piece is sent once the whole file passed */
        atomic_store_explicit(&n->avail, off, memory_order_release);
        if (!*published) {
            /* Nothing else was queued: the loop waits for this first piece (a pick-up), and its
             * wake-up often lands on this thread's CPU, where it waited for the rest of the
             * file's reads while the other CPU idled (bench/README.md, "Picking up one
             * generation", pickup3): it gets the CPU now, once per generation. With nothing
             * else runnable here this returns at once; a reader ahead of the loop never yields. */
            if (publish(r, n, true)) sched_yield();
            *published = true;
        } else {
            r->cb(r->ctx);
        }
        if (stopping(r)) return 1;
    }
    return 0;
}

/* The scanner's verdict on the whole of generation g (*info), and its trailer still the one
 * read first. full: the digest was computed (else the trailer's, as read first, was the known
 * digest: a mismatch means the trailer changed since). 0 or an error (errmsg). */
static int verdict(ls_reader_t *r, const rgen_t *n, uint64_t g, const char *path, bool full,
                   ls_gen_info_t *info)
{
    ls_gen_verdict_t v = {0};
    int rc = ls_gen_stream_end(r->scan, info, &v);
    bool changed = rc == LS_EDIGEST && !full; /* the trailer is not the one read first */
    if (rc && !changed) {
        ls_errf(r->errmsg, sizeof(r->errmsg), rc,
                "generation %llu (%s) failed verification, not shipped: %s", (unsigned long long) g,
                path, v.msg);
        return rc;
    }
    if (changed || info->trailer.close_ns != n->buf.close_ns)
        return ls_errf(r->errmsg, sizeof(r->errmsg), LS_ECORRUPT,
                       "generation %llu (%s) changed while being read, not shipped",
                       (unsigned long long) g, path);
    return 0;
}

/* Generation g verified whole: counted, and n handed out complete (published now, or finished
 * when it already was; freed when ship released it meanwhile). */
static void hand_over(ls_reader_t *r, rgen_t *n, uint64_t g, bool published)
{
    atomic_store_explicit(&n->avail, n->buf.size, memory_order_release);
    if (!published) { /* read whole in one piece: handed out complete, n is ship's from then on
                         (it may be released and freed at once: nothing here touches it after) */
        pthread_mutex_lock(&r->mu);
        r->st.read++;
        r->st.next = g + 1;
        pthread_mutex_unlock(&r->mu);
        publish(r, n, false);
        return;
    }
    bool gone = false;
    uint8_t *drop = NULL;
    pthread_mutex_lock(&r->mu);
    r->st.read++;
    r->st.next = g + 1;
    n->filling = false;
    if (n->released) { /* released while it was filling (ship stopped the reader) */
        r->st.buffered_gens--;
        r->st.buffered_bytes -= n->buf.size;
        pthread_cond_broadcast(&r->cond);
        drop = ls__reader_drop_locked(r, n);
        gone = true;
    }
    pthread_mutex_unlock(&r->mu);
    free(drop);
    if (!gone) r->cb(r->ctx);
}

/* Reads generation g (epoch from its name) at path piece by piece through the incremental
 * scanner (ls_gen_scan's checks: header, record checksums, trailer, chain; the digest when
 * verifying FULL) and hands it out after its first piece passed, so the first bytes go out
 * while the rest is read and checked.
 * 0 (verified whole), 1 (stopping) or an error (errmsg). */
static int read_verify(ls_reader_t *r, uint64_t g, uint32_t epoch, const char *path)
{
    int fd = -1;
    rgen_t *n = NULL;
    int rc = open_gen(r, path, &fd, &n);
    if (rc) return rc;
    bool published = false;
    ls_gen_info_t info;
    if ((rc = read_ends(r, n, fd, g, path))) goto fail;
    ls_gen_expect_t ex = expected(r, g, epoch); /* the scanner borrows it until its end */
    /* RECORDS: the trailer's digest (as read first) is taken as known, so the scanner checks
     * everything but hashes nothing; without a trailer the scan fails whatever is known. */
    bool full = r->verify == LS_READER_VERIFY_FULL || g == r->full_gen || !r->have_trl;
    if (!full) ex.known_digest = r->trl_digest;
    ls_gen_stream_begin(r->scan, &ex, 0);
    if ((rc = read_pieces(r, n, fd, g, path, &published)) ||
        (rc = verdict(r, n, g, path, full, &info)))
        goto fail;
    close(fd);
    n->buf.last_lsn = info.trailer.last_lsn;
    memcpy(n->buf.digest, info.digest, LS_DIGEST_SIZE);
    memcpy(r->prev_digest, info.digest, LS_DIGEST_SIZE); /* the chain the next one continues */
    r->prev_last_lsn = info.trailer.last_lsn;
    r->have_prev = true;
    memcpy(r->dbid, info.header.dbid, LS_DBID_LEN);
    r->have_dbid = true;
    if (full) {
        pthread_mutex_lock(&r->mu);
        r->st.hashed++;
        pthread_mutex_unlock(&r->mu);
    }
    hand_over(r, n, g, published);
    return 0;
fail:
    close(fd);
    withdraw(r, n, published);
    return rc;
}

/* Reads generation g: 0 verified, LOCATE_WAIT, 1 stopping, or an error. */
int ls__reader_step(ls_reader_t *r, uint64_t g)
{
    uint32_t epoch = 0;
    char path[PATH_MAX];
    int rc = locate(r, g, &epoch, path, sizeof(path));
    if (rc) return rc;
    return read_verify(r, g, epoch, path);
}
