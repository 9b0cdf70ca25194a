/* zwork: a zstd worker thread (see zwork.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "proto/proto.h"
#include "transport/transport.h"
#include "zwork.h"

struct ld_zwork {
    pthread_t thread;    /* the worker */
    pthread_mutex_t mu;  /* guards the queue and stop */
    pthread_cond_t cv;   /* work arrived, or stop */
    ld_zjob_t *head;     /* jobs in push order: done ones first (up to next) */
    ld_zjob_t *tail;     /* last job */
    ld_zjob_t *next;     /* first job not done yet (NULL: all done) */
    size_t njobs;        /* jobs in the queue */
    size_t bytes;        /* their input bytes */
    bool stop;           /* the thread must end */
    ls_zbody_t *z;       /* codec, worker thread only */
    uint8_t *scratch;    /* worker: header + LS_FRAME_MAX_BODY for inflating */
    uv_async_t async;    /* worker -> loop: jobs done */
    ld_zwork_cb done_cb; /* on the loop */
    void *data;          /* user pointer */
};

ld_zjob_t *ld_zjob_new(ld_zjob_kind_t kind, uint8_t type, size_t in_len)
{
    ld_zjob_t *j = calloc(1, sizeof(*j));
    LS_CHECK(j != NULL);
    j->kind = kind;
    j->type = type;
    j->in = malloc(in_len ? in_len : 1);
    LS_CHECK(j->in != NULL);
    j->in_len = in_len;
    return j;
}

void ld_zjob_free(ld_zjob_t *j)
{
    if (!j) return;
    free(j->in);
    free(j->out);
    free(j);
}

static void run(ld_zwork_t *w, ld_zjob_t *j)
{
    if (j->kind == LD_ZJOB_COMPRESS) {
        /* Always a zstd frame, even when it does not shrink (a few bytes more): the loop sends
         * it as it is and never compresses. */
        size_t cap = j->in_len + (j->in_len >> 7) + 1024;
        j->out = malloc(cap);
        if (!j->out) {
            j->rc = LS_ENOMEM;
            return;
        }
        j->rc = ls_zbody_compress(w->z, j->in, j->in_len, j->out, cap, &j->out_len);
        if (!j->rc && !j->out_len) j->rc = LS_ECOMPRESS;
    } else if (j->kind == LD_ZJOB_INFLATE) {
        size_t dlen = 0;
        j->rc = ls_zbody_decompress(w->z, j->in + LS_FRAME_HEADER_SIZE,
                                    j->in_len - LS_FRAME_HEADER_SIZE,
                                    w->scratch + LS_FRAME_HEADER_SIZE, LS_FRAME_MAX_BODY, &dlen);
        if (j->rc) return;
        ls_frame_header_t h = {.body_len = (uint32_t) dlen, .type = j->type, .flags = 0};
        ls_frame_header_encode(&h, w->scratch);
        j->out_len = LS_FRAME_HEADER_SIZE + dlen;
        j->out = malloc(j->out_len);
        if (!j->out) {
            j->rc = LS_ENOMEM;
            return;
        }
        memcpy(j->out, w->scratch, j->out_len);
    }
}

static void *worker(void *arg)
{
    ld_zwork_t *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && !w->next)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stop) break;
        ld_zjob_t *j = w->next;
        pthread_mutex_unlock(&w->mu);
        run(w, j); /* j stays in the queue: only stop frees it, after joining */
        pthread_mutex_lock(&w->mu);
        w->next = j->next;
        uv_async_send(&w->async);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void on_async(uv_async_t *a)
{
    ld_zwork_t *w = a->data;
    w->done_cb(w);
}

ld_zwork_t *ld_zwork_start(uv_loop_t *loop, int level, ld_zwork_cb done_cb, void *data)
{
    ld_zwork_t *w = calloc(1, sizeof(*w));
    if (!w) return NULL;
    w->z = ls_zbody_new(level);
    w->scratch = malloc(LS_FRAME_HEADER_SIZE + LS_FRAME_MAX_BODY);
    if (!w->z || !w->scratch) goto fail;
    w->done_cb = done_cb;
    w->data = data;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, worker, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        goto fail;
    }
    uv_async_init(loop, &w->async, on_async);
    w->async.data = w;
    return w;
fail:
    ls_zbody_free(w->z);
    free(w->scratch);
    free(w);
    return NULL;
}

void ld_zwork_push(ld_zwork_t *w, ld_zjob_t *j)
{
    j->next = NULL;
    pthread_mutex_lock(&w->mu);
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    if (!w->next) w->next = j;
    w->njobs++;
    w->bytes += j->in_len;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

ld_zjob_t *ld_zwork_peek(ld_zwork_t *w)
{
    pthread_mutex_lock(&w->mu);
    ld_zjob_t *j = w->head && w->head != w->next ? w->head : NULL;
    pthread_mutex_unlock(&w->mu);
    return j;
}

ld_zjob_t *ld_zwork_pop(ld_zwork_t *w)
{
    pthread_mutex_lock(&w->mu);
    ld_zjob_t *j = w->head;
    if (!j || j == w->next) {
        pthread_mutex_unlock(&w->mu);
        return NULL;
    }
    w->head = j->next;
    if (!w->head) w->tail = NULL;
    w->njobs--;
    w->bytes -= j->in_len;
    pthread_mutex_unlock(&w->mu);
    j->next = NULL;
    return j;
}

size_t ld_zwork_jobs(ld_zwork_t *w)
{
    pthread_mutex_lock(&w->mu);
    size_t n = w->njobs;
    pthread_mutex_unlock(&w->mu);
    return n;
}

size_t ld_zwork_bytes(ld_zwork_t *w)
{
    pthread_mutex_lock(&w->mu);
    size_t n = w->bytes;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void *ld_zwork_data(ld_zwork_t *w)
{
    return w->data;
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

void ld_zwork_stop(ld_zwork_t *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    while (w->head) {
        ld_zjob_t *j = w->head;
        w->head = j->next;
        ld_zjob_free(j);
    }
    ls_zbody_free(w->z);
    free(w->scratch);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    uv_close((uv_handle_t *) &w->async, on_closed);
}
