/*
 * The snapshot worker (session.h): one thread per seed on the active, never the event loop's.
 * It takes the snapshot (ls_seed_snapshot_new: a local compacted copy, seconds to minutes), then
 * reads it in chunks into a queue bounded by `ahead` chunks not yet released, and ends with the
 * stream's digest. The loop polls the queue after notify; it owns every chunk it polled until it
 * releases it. The snapshot copy is removed when the thread returns.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/workq.h"
#include "seed/seed_int.h"
#include "seed/session.h"

#define WORKER_CHUNK     (256u * 1024u)
#define WORKER_AHEAD     8
#define WORKER_AHEAD_MAX 64    /* spare buffers kept at most */
#define WORKER_PIN       2000u /* ms: the default longest read transaction of a direct stream */
#define WORKER_LOOK      100u  /* ms: the least time the rate is observed before it decides */

struct ls_seed_worker {
    char db_dir[LS__SEED_PATH_MAX];
    size_t chunk;
    unsigned ahead;
    void (*notify)(void *ctx);
    void *ctx;
    pthread_t thread;
    ls_workq_t *events; /* events not yet polled (growing: at most `ahead` chunks and 3 others) */
    pthread_mutex_t mu; /* guards what follows */
    pthread_cond_t cv;
    unsigned held; /* chunks read and not released */
    bool stop;     /* the loop wants the thread gone */
    bool exited;   /* the thread returned */
    bool resync;   /* rq holds a resync request (keys: its own copy) */
    bool direct;   /* stream from the compacting copy */
    bool xxh;      /* the check is XXH3-128 */
    unsigned pin_ms;
    uint64_t released;             /* chunks released (taken by the connection) */
    void *spare[WORKER_AHEAD_MAX]; /* released chunk buffers kept for the next reads */
    unsigned nspare;
    ls_seed_resync_req_t rq;
    uint8_t *keys;
};

/* Queues ev (copied); returns false when the loop asked to stop. */
static bool post(ls_seed_worker_t *w, const ls_seed_wev_t *ev)
{
    ls_seed_wev_t *e = malloc(sizeof(*e));
    pthread_mutex_lock(&w->mu);
    bool stop = w->stop || !e;
    if (!stop && ev->kind == LS_SEED_WEV_CHUNK) w->held++;
    pthread_mutex_unlock(&w->mu);
    if (!stop) {
        *e = *ev;
        ls_workq_msg_t m = {.type = (int) ev->kind, .ptr = e, .len = sizeof(*e)};
        stop = ls_workq_push(w->events, &m) != 0;
    }
    if (stop) {
        free(ev->data);
        free(e);
        return false;
    }
    return true;
}

/* A direct stream taken too slowly: true when, at the rate the chunks were taken since t0, the
 * read transaction would live past pin_ms (called with mu held, the queue full). */
static bool spill_due(const ls_seed_worker_t *w, uint64_t t0, uint64_t total)
{
    uint64_t ms = (ls_mono_ns() - t0) / 1000000u, taken = w->released * w->chunk;
    if (ms >= w->pin_ms) return true;
    if (ms < WORKER_LOOK) return false;
    if (taken == 0 || taken >= total) return taken == 0;
    return ms + (total - taken) * ms / taken > w->pin_ms;
}

/* Waits until a chunk may be read; 0, or a spill's error. Called with mu held. */
static int wait_room(ls_seed_worker_t *w, ls_seed_snapshot_t *snap, uint64_t t0)
{
    while (w->held >= w->ahead && !w->stop) {
        if (!ls_seed_snapshot_direct(snap)) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        if (spill_due(w, t0, ls_seed_snapshot_info(snap)->total_bytes)) {
            char err[LS_SEED_MSG_MAX] = "";
            pthread_mutex_unlock(&w->mu);
            uint64_t t = ls_mono_ns();
            int rc = ls_seed_snapshot_spill(snap, err, sizeof(err));
            if (rc == 0)
                LS_LOGI("seed",
                        "%s: the stream is taken too slowly to keep the store's read "
                        "transaction: the rest spilled to a local copy in %llu ms",
                        w->db_dir, (unsigned long long) ((ls_mono_ns() - t) / 1000000u));
            else if (rc == LS_ENOSPC)
                LS_LOGW("seed", "%s", err);
            pthread_mutex_lock(&w->mu);
            if (rc && rc != LS_ENOSPC) return rc;
            if (rc == LS_ENOSPC) w->pin_ms = UINT32_MAX; /* keep streaming: ask once only */
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L; /* look at the rate again in 20 ms */
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
    return 0;
}

/* Reads the stream; 0 at its end (END posted) or when told to stop. */
static int stream(ls_seed_worker_t *w, ls_seed_snapshot_t *snap, ls_seed_wev_t *fail)
{
    uint64_t t0 = ls_mono_ns();
    for (;;) {
        pthread_mutex_lock(&w->mu);
        int wrc = wait_room(w, snap, t0);
        bool stop = w->stop;
        pthread_mutex_unlock(&w->mu);
        if (wrc) {
            snprintf(fail->msg, sizeof(fail->msg), "cannot spill the snapshot: %s",
                     ls_strerror(wrc));
            return wrc;
        }
        if (stop) return 0;
        LS_FAULT("seed.server.chunk"); /* tests: "sleep:MS" paces the stream */
        pthread_mutex_lock(&w->mu);
        void *buf = w->nspare ? w->spare[--w->nspare] : NULL;
        pthread_mutex_unlock(&w->mu);
        ls_seed_wev_t ev = {.kind = LS_SEED_WEV_CHUNK, .data = buf ? buf : malloc(w->chunk)};
        if (!ev.data) {
            snprintf(fail->msg, sizeof(fail->msg), "out of memory");
            return LS_ENOMEM;
        }
        int rc = ls_seed_snapshot_read(snap, ev.data, w->chunk, &ev.offset, &ev.len);
        if (rc) {
            free(ev.data);
            snprintf(fail->msg, sizeof(fail->msg), "cannot read the snapshot: %s", ls_strerror(rc));
            return rc;
        }
        if (ev.len == 0) {
            free(ev.data);
            ls_seed_wev_t end = {.kind = LS_SEED_WEV_END};
            rc = ls_seed_snapshot_digest(snap, end.digest);
            if (rc == 0) post(w, &end);
            return rc;
        }
        if (!post(w, &ev)) return 0;
    }
}

static void *worker_main(void *arg)
{
    ls_seed_worker_t *w = arg;
    ls_seed_wev_t fail = {.kind = LS_SEED_WEV_FAIL};
    ls_seed_snapshot_t *snap = NULL;
    LS_FAULT("seed.snapshot.before"); /* tests: "sleep:MS" lets a writer commit meanwhile */
    ls_seed_snapshot_options_t o = {.db_dir = w->db_dir,
                                    .chunk_max = w->chunk,
                                    .resync = w->resync ? &w->rq : NULL,
                                    .direct = w->direct,
                                    .xxh = w->xxh};
    int rc = ls_seed_snapshot_new(&o, &snap, fail.msg, sizeof(fail.msg));
    if (rc == 0) {
        ls_seed_wev_t info = {.kind = LS_SEED_WEV_INFO,
                              .info = *ls_seed_snapshot_info(snap),
                              .store_open = ls_seed_snapshot_direct(snap)};
        if (post(w, &info)) rc = stream(w, snap, &fail);
    }
    ls_seed_snapshot_free(snap); /* removes the local copy */
    if (rc) {
        fail.code = rc;
        if (!fail.msg[0]) snprintf(fail.msg, sizeof(fail.msg), "%s", ls_strerror(rc));
        post(w, &fail);
    }
    pthread_mutex_lock(&w->mu);
    w->exited = true;
    pthread_mutex_unlock(&w->mu);
    ls_workq_close(w->events); /* the loop polls what is left, then learns the thread is gone */
    return NULL;
}

static void wake(void *arg)
{
    ls_seed_worker_t *w = arg;
    w->notify(w->ctx);
}

static void drop(const ls_workq_msg_t *m, void *arg)
{
    (void) arg;
    ls_seed_wev_t *e = m->ptr;
    free(e->data);
    free(e);
}

int ls_seed_worker_start(const ls_seed_worker_options_t *o, ls_seed_worker_t **out)
{
    *out = NULL;
    if (!o || !o->db_dir || !o->notify || strlen(o->db_dir) >= LS__SEED_PATH_MAX) return LS_EINVAL;
    ls_seed_worker_t *w = calloc(1, sizeof(*w));
    if (!w) return LS_ENOMEM;
    snprintf(w->db_dir, sizeof(w->db_dir), "%s", o->db_dir);
    w->chunk = o->chunk ? LS_MIN(o->chunk, LS__SEED_CHUNK) : WORKER_CHUNK;
    w->ahead = o->ahead ? o->ahead : WORKER_AHEAD;
    w->direct = o->direct;
    w->xxh = o->xxh;
    w->pin_ms = o->pin_ms ? o->pin_ms : WORKER_PIN;
    w->notify = o->notify;
    w->ctx = o->ctx;
    if (o->resync) {
        w->resync = true;
        w->rq = *o->resync;
        w->keys = o->resync->keys_len ? malloc(o->resync->keys_len) : NULL;
        if (o->resync->keys_len && !w->keys) {
            free(w);
            return LS_ENOMEM;
        }
        if (w->keys) memcpy(w->keys, o->resync->keys, o->resync->keys_len);
        w->rq.keys = w->keys;
    }
    w->events = ls_workq_new_growing(w->ahead + 4, wake, w);
    if (!w->events) {
        free(w->keys);
        free(w);
        return LS_ENOMEM;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        ls_workq_free(w->events, NULL, NULL);
        free(w->keys);
        free(w);
        return LS_ENOMEM;
    }
    *out = w;
    return 0;
}

bool ls_seed_worker_poll(ls_seed_worker_t *w, ls_seed_wev_t *ev)
{
    ls_workq_msg_t m;
    if (ls_workq_pop(w->events, &m) != 1) return false;
    *ev = *(ls_seed_wev_t *) m.ptr;
    free(m.ptr);
    return true;
}

void ls_seed_worker_release(ls_seed_worker_t *w, void *data)
{
    if (!data) return;
    pthread_mutex_lock(&w->mu);
    if (w->nspare < LS_MIN(w->ahead, WORKER_AHEAD_MAX)) /* reused: no fresh pages per chunk */
        w->spare[w->nspare++] = data;
    else
        free(data);
    if (w->held) w->held--;
    w->released++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void ls_seed_worker_stop(ls_seed_worker_t *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

bool ls_seed_worker_exited(ls_seed_worker_t *w)
{
    pthread_mutex_lock(&w->mu);
    bool exited = w->exited;
    pthread_mutex_unlock(&w->mu);
    return exited;
}

void ls_seed_worker_free(ls_seed_worker_t *w)
{
    if (!w) return;
    ls_seed_worker_stop(w);
    pthread_join(w->thread, NULL);
    ls_workq_free(w->events, drop, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    while (w->nspare)
        free(w->spare[--w->nspare]);
    free(w->keys);
    free(w);
}
