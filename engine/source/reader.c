/*
 * source: the pipelined generation reader. One pthread per reader (not libuv's pool: a read and
 * hash of a large generation must not delay the loop's other work) reads the next generations
 * ahead of the network and verifies each with ls_gen_scan's checks over the whole file: header,
 * record checksums, trailer, and the chain (prev_digest = the digest of the one before, first
 * LSN = its last LSN + 1, same database id, epoch as its name says). The SHA-256 of the payload
 * is computed and compared with the trailer's only when verifying FULL (opts.verify, or the one
 * generation opts.full_gen: a target asked again for it after damage); by default the digest
 * is the trailer's, which the target checks against the bytes it received (docs/SOURCE.md,
 * "What the active verifies").
 *
 * Memory: before reading a generation the thread reserves its size; it waits while the
 * generations read and not yet released would exceed max_gens or max_bytes (a generation larger
 * than max_bytes is read only when nothing else is buffered). So at most
 * max(max_bytes, one generation) bytes are held, whatever the backlog. The buffer of a released
 * generation is kept as a spare for the next one (only while it and the buffered bytes fit
 * max_bytes; the next generation takes it, or frees it when it is too small): a backlog reads
 * into memory already mapped instead of a fresh malloc of a generation's size per generation,
 * which glibc gives back to the kernel at its free (page faults and zeroed pages every time).
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

static void *reader_main(void *arg)
{
    ls_reader_t *r = arg;
    for (uint64_t g = r->st.next;;) {
        pthread_mutex_lock(&r->mu);
        r->dirty = false;
        bool stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        if (stop) break;
        int rc = ls__reader_step(r, g);
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
    r->verify = opts->verify;
    r->full_gen = opts->full_gen;
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
    uint8_t *gone = ls__reader_drop_locked(r, n);
    pthread_mutex_unlock(&r->mu);
    free(gone);
}

uint8_t *ls__reader_drop_locked(ls_reader_t *r, rgen_t *n)
{
    uint8_t *gone = n->data;
    /* kept only while it and what is buffered fit max_bytes, so the bound above still holds */
    if (!r->stop && n->cap > r->spare_cap && r->st.buffered_bytes + n->cap <= r->max_bytes) {
        gone = r->spare;
        r->spare = n->data;
        r->spare_cap = n->cap;
    }
    free(n);
    return gone;
}

uint8_t *ls__reader_buffer(ls_reader_t *r, size_t size, size_t *cap)
{
    pthread_mutex_lock(&r->mu);
    uint8_t *b = r->spare;
    size_t c = r->spare_cap;
    r->spare = NULL;
    r->spare_cap = 0;
    pthread_mutex_unlock(&r->mu);
    if (b && c >= size) {
        *cap = c;
        return b;
    }
    free(b); /* too small: not held beside the new one */
    *cap = size;
    return malloc(size);
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
    free(r->spare);
    ls_gen_stream_free(r->scan);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
