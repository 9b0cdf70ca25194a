/*
 * source: the pipelined generation reader. One pthread per reader (not libuv's pool: a read and
 * hash of a large generation must not delay the loop's other work) reads the next generations
 * ahead of the network and verifies each with ls_gen_scan's checks over the whole file: header,
 * record checksums, trailer, digest, and the chain (prev_digest = the digest of the one before,
 * first LSN = its last LSN + 1, same database id, epoch as its name says).
 *
 * Memory: before reading a generation the thread reserves its size; it waits while the
 * generations read and not yet released would exceed max_gens or max_bytes (a generation larger
 * than max_bytes is read only when nothing else is buffered). So at most
 * max(max_bytes, one generation) bytes are held, whatever the backlog.
 *
 * Streaming: a generation is read in pieces of READ_PIECE bytes, each fed to the incremental
 * scanner (ls_gen_stream_*, the same checks as ls_gen_scan) while it is in cache, and handed out
 * once its first piece passed; its avail grows piece by piece and reaches its size only when the
 * whole file passed (the last piece is held back until then), so GEN_END, which carries the
 * digest, can only follow a verified generation. One that fails part way is aborted by ship.
 *
 * A generation that is not closed yet is waited for: ls_source_rescan() wakes the thread when a
 * newer generation appears. One that is missing while a later one exists, removed, unreadable or
 * damaged stops the reader with the reason; it is never verified whole (never handed out when
 * its first piece fails).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "layout/layout.h"
#include "source/source_int.h"

#define DEFAULT_MAX_GENS  2u
#define DEFAULT_MAX_BYTES (8ull << 20)
#define LOCATE_WAIT       1              /* locate(): the generation is not closed yet */
#define READ_PIECE        (256u * 1024u) /* bytes read and verified before they may be sent */

typedef struct rgen {
    ls_gen_buf_t buf;       /* what ls_reader_next hands out; first, so &buf is the node */
    uint8_t *data;          /* the file's bytes (buf.bytes) */
    _Atomic uint64_t avail; /* bytes read and verified so far (buf.avail points here) */
    bool filling;           /* under r->mu: published, the thread still reads into data */
    bool released;          /* under r->mu: released while filling: the thread frees it */
    struct rgen *next;      /* next in the ready queue or the handed-out list */
} rgen_t;

struct ls_reader {
    ls_source_t *src;                    /* the directory view (outlives the reader) */
    pthread_t thread;                    /* the reading thread */
    pthread_mutex_t mu;                  /* guards the fields below it */
    pthread_cond_t cond;                 /* space freed, directory changed, or stop */
    ls__src_waiter_t waiter;             /* registration with src for directory changes */
    ls_gen_stream_t *scan;               /* the incremental verifier (the thread's) */
    ls_reader_notify_cb cb;              /* called on the thread: ready or failed */
    void *ctx;                           /* cb's argument */
    uint32_t max_gens;                   /* bound on buffered generations */
    uint64_t max_bytes;                  /* bound on buffered bytes */
    bool have_prev;                      /* prev_digest below is the expected chain */
    uint8_t prev_digest[LS_DIGEST_SIZE]; /* digest the next generation's header must carry */
    uint64_t prev_last_lsn;              /* last LSN of the previous generation (0: unknown) */
    bool have_dbid;                      /* dbid below is known */
    uint8_t dbid[LS_DBID_LEN];           /* database id of the first generation read */
    bool stop;                           /* ls_reader_stop() was called */
    bool dirty;                          /* the directory changed since the thread last looked */
    rgen_t *head, *tail;                 /* ready queue, in generation order */
    rgen_t *out;                         /* handed out, not yet released */
    ls_reader_stats_t st;                /* figures; st.error is the sticky failure */
    char errmsg[LS_SOURCE_ERRLEN];       /* why the reader stopped */
};

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
    uint8_t *data = malloc(size ? size : 1);
    if (!n || !data) {
        free(n);
        free(data);
        unreserve(r, size);
        rc =
            ls_errf(r->errmsg, sizeof(r->errmsg), LS_ENOMEM, "cannot read %s: out of memory", path);
        goto fail;
    }
    n->data = data;
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
 * loop; filling: the thread goes on reading into it. */
static void publish(ls_reader_t *r, rgen_t *n, bool filling)
{
    n->buf.ready_ns = ls_mono_ns();
    pthread_mutex_lock(&r->mu);
    n->filling = filling;
    if (r->tail)
        r->tail->next = n;
    else
        r->head = n;
    r->tail = n;
    pthread_mutex_unlock(&r->mu);
    r->cb(r->ctx);
}

/* The thread is done with n (it failed, or the reader stops): freed when not published, still
 * queued (never handed out) or released meanwhile; when handed out it stays, short of its size,
 * until ship releases it. */
static void withdraw(ls_reader_t *r, rgen_t *n, bool published)
{
    bool queued = false;
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
    }
    pthread_mutex_unlock(&r->mu);
    if (!published || queued) {
        free(n->data);
        free(n);
    }
}

static bool stopping(ls_reader_t *r)
{
    pthread_mutex_lock(&r->mu);
    bool stop = r->stop;
    pthread_mutex_unlock(&r->mu);
    return stop;
}

/* Reads generation g (epoch from its name) at path piece by piece through the incremental
 * scanner (ls_gen_scan's checks: header, record checksums, trailer, digest, chain) and hands it
 * out after its first piece passed, so the first bytes go out while the rest is read and hashed.
 * 0 (verified whole), 1 (stopping) or an error (errmsg). */
static int read_verify(ls_reader_t *r, uint64_t g, uint32_t epoch, const char *path)
{
    int fd = -1;
    rgen_t *n = NULL;
    int rc = open_gen(r, path, &fd, &n);
    if (rc) return rc;
    bool published = false;
    ls_layout_ends_t x;
    char err[LS_SOURCE_ERRLEN];
    if ((rc = ls_layout_read_ends_fd(fd, path, &x, err, sizeof(err)))) {
        ls_errf(r->errmsg, sizeof(r->errmsg), rc, "generation %llu (%s) not shipped: %s",
                (unsigned long long) g, path, err);
        goto fail;
    }
    n->buf.epoch = x.h.epoch;
    n->buf.generation = g;
    n->buf.first_lsn = x.h.first_lsn;
    n->buf.close_ns = x.closed ? x.t.close_ns : 0;
    ls_gen_expect_t ex = {
        .dbid = r->have_dbid ? r->dbid : NULL,
        .epoch = epoch,
        .generation = g,
        .first_lsn = r->have_prev && r->prev_last_lsn ? r->prev_last_lsn + 1 : 0,
        .prev_digest = r->have_prev ? r->prev_digest : NULL,
    };
    ls_gen_stream_begin(r->scan, &ex, 0);
    ls_gen_verdict_t v = {0};
    for (uint64_t off = 0; off < n->buf.size;) {
        size_t len = (size_t) LS_MIN((uint64_t) READ_PIECE, n->buf.size - off);
        ssize_t got = ls_pread_full(fd, n->data + off, len, (off_t) off);
        if (got != (ssize_t) len) {
            rc = got < 0 ? (int) got : LS_ECORRUPT;
            ls_errf(r->errmsg, sizeof(r->errmsg), rc, "cannot read %s: %s", path,
                    got < 0 ? ls_strerror(rc) : "it changed size while being read");
            goto fail;
        }
        if (ls_gen_stream_feed(r->scan, n->data + off, len, NULL, NULL) != 0) {
            rc = ls_gen_stream_end(r->scan, NULL, &v);
            ls_errf(r->errmsg, sizeof(r->errmsg), rc,
                    "generation %llu (%s) failed verification, not shipped: %s",
                    (unsigned long long) g, path, v.msg);
            goto fail;
        }
        off += len;
        if (off == n->buf.size) break; /* the last piece is sent once the whole file passed */
        atomic_store_explicit(&n->avail, off, memory_order_release);
        if (!published) {
            publish(r, n, true);
            published = true;
        } else {
            r->cb(r->ctx);
        }
        if (stopping(r)) {
            rc = 1;
            goto fail;
        }
    }
    ls_gen_info_t info;
    if ((rc = ls_gen_stream_end(r->scan, &info, &v))) {
        ls_errf(r->errmsg, sizeof(r->errmsg), rc,
                "generation %llu (%s) failed verification, not shipped: %s", (unsigned long long) g,
                path, v.msg);
        goto fail;
    }
    if (info.trailer.close_ns != n->buf.close_ns) {
        rc = ls_errf(r->errmsg, sizeof(r->errmsg), LS_ECORRUPT,
                     "generation %llu (%s) changed while being read, not shipped",
                     (unsigned long long) g, path);
        goto fail;
    }
    close(fd);
    n->buf.last_lsn = info.trailer.last_lsn;
    memcpy(n->buf.digest, info.digest, LS_DIGEST_SIZE);
    memcpy(r->prev_digest, info.digest, LS_DIGEST_SIZE);
    r->prev_last_lsn = info.trailer.last_lsn;
    r->have_prev = true;
    memcpy(r->dbid, info.header.dbid, LS_DBID_LEN);
    r->have_dbid = true;
    atomic_store_explicit(&n->avail, n->buf.size, memory_order_release);
    if (!published) { /* read whole in one piece: handed out complete, n is ship's from then on
                         (it may be released and freed at once: nothing here touches it after) */
        pthread_mutex_lock(&r->mu);
        r->st.read++;
        r->st.next = g + 1;
        pthread_mutex_unlock(&r->mu);
        publish(r, n, false);
        return 0;
    }
    bool gone = false;
    pthread_mutex_lock(&r->mu);
    r->st.read++;
    r->st.next = g + 1;
    n->filling = false;
    if (n->released) { /* released while it was filling (ship stopped the reader) */
        r->st.buffered_gens--;
        r->st.buffered_bytes -= n->buf.size;
        pthread_cond_broadcast(&r->cond);
        gone = true;
    }
    pthread_mutex_unlock(&r->mu);
    if (gone) {
        free(n->data);
        free(n);
    } else {
        r->cb(r->ctx);
    }
    return 0;
fail:
    close(fd);
    withdraw(r, n, published);
    return rc;
}

/* Waits for the directory to change. false when stopping. */
static bool wait_dir(ls_reader_t *r)
{
    pthread_mutex_lock(&r->mu);
    r->st.waiting_gen = true;
    while (!r->dirty && !r->stop)
        pthread_cond_wait(&r->cond, &r->mu);
    r->st.waiting_gen = false;
    bool ok = !r->stop;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

/* Reads generation g: 0 verified, LOCATE_WAIT, 1 stopping, or an error. */
static int step(ls_reader_t *r, uint64_t g)
{
    uint32_t epoch = 0;
    char path[PATH_MAX];
    int rc = locate(r, g, &epoch, path, sizeof(path));
    if (rc) return rc;
    return read_verify(r, g, epoch, path);
}

static void *reader_main(void *arg)
{
    ls_reader_t *r = arg;
    for (uint64_t g = r->st.next;;) {
        pthread_mutex_lock(&r->mu);
        r->dirty = false;
        bool stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        if (stop) break;
        int rc = step(r, g);
        if (rc == 0) {
            g++;
        } else if (rc == LOCATE_WAIT) {
            if (!wait_dir(r)) break;
        } else if (rc == 1) {
            break;
        } else {
            pthread_mutex_lock(&r->mu);
            r->st.error = rc;
            pthread_mutex_unlock(&r->mu);
            r->cb(r->ctx);
            break;
        }
    }
    return NULL;
}

int ls_reader_start(ls_source_t *src, uint64_t first, const ls_reader_options_t *opts,
                    ls_reader_notify_cb notify_cb, void *ctx, ls_reader_t **out)
{
    static const ls_reader_options_t defaults;
    if (!opts) opts = &defaults;
    if (!src || first == 0 || !notify_cb || !out) return LS_EINVAL;
    ls_reader_t *r = calloc(1, sizeof(*r));
    if (!r) return LS_ENOMEM;
    if (!(r->scan = ls_gen_stream_new())) {
        free(r);
        return LS_ENOMEM;
    }
    r->src = src;
    r->cb = notify_cb;
    r->ctx = ctx;
    r->max_gens = opts->max_gens ? opts->max_gens : DEFAULT_MAX_GENS;
    r->max_bytes = opts->max_bytes ? opts->max_bytes : DEFAULT_MAX_BYTES;
    if (opts->prev_digest) {
        memcpy(r->prev_digest, opts->prev_digest, LS_DIGEST_SIZE);
        r->have_prev = true;
    }
    r->st.next = first;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->waiter = (ls__src_waiter_t){.mu = &r->mu, .cond = &r->cond, .dirty = &r->dirty};
    ls__src_watch(src, &r->waiter);
    int err = pthread_create(&r->thread, NULL, reader_main, r);
    if (err) {
        ls__src_unwatch(src, &r->waiter);
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->mu);
        ls_gen_stream_free(r->scan);
        free(r);
        return ls_err_from_errno(err);
    }
    *out = r;
    return 0;
}

int ls_reader_next(ls_reader_t *r, const ls_gen_buf_t **gen)
{
    pthread_mutex_lock(&r->mu);
    int rc = LS_EBUSY;
    rgen_t *n = r->head;
    if (n) {
        r->head = n->next;
        if (!r->head) r->tail = NULL;
        n->next = r->out;
        r->out = n;
        r->st.delivered++;
        *gen = &n->buf;
        rc = 0;
    } else if (r->st.error) {
        rc = r->st.error;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void ls_reader_release(ls_reader_t *r, const ls_gen_buf_t *gen)
{
    rgen_t *n = NULL;
    pthread_mutex_lock(&r->mu);
    for (rgen_t **p = &r->out; *p; p = &(*p)->next) {
        if (&(*p)->buf == gen) {
            n = *p;
            *p = n->next;
            break;
        }
    }
    LS_CHECK(n != NULL); /* releasing what was not handed out would corrupt the accounting */
    if (n->filling) {    /* the thread still reads into it: it frees it when done */
        n->released = true;
        pthread_mutex_unlock(&r->mu);
        return;
    }
    r->st.buffered_gens--;
    r->st.buffered_bytes -= n->buf.size;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
    free(n->data);
    free(n);
}

const char *ls_reader_error(ls_reader_t *r)
{
    pthread_mutex_lock(&r->mu);
    const char *m = r->st.error ? r->errmsg : "";
    pthread_mutex_unlock(&r->mu);
    return m;
}

void ls_reader_stats(ls_reader_t *r, ls_reader_stats_t *out)
{
    pthread_mutex_lock(&r->mu);
    *out = r->st;
    pthread_mutex_unlock(&r->mu);
}

static void free_list(rgen_t *n)
{
    while (n) {
        rgen_t *next = n->next;
        free(n->data);
        free(n);
        n = next;
    }
}

void ls_reader_stop(ls_reader_t *r)
{
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    ls__src_unwatch(r->src, &r->waiter);
    free_list(r->head);
    free_list(r->out);
    ls_gen_stream_free(r->scan);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
