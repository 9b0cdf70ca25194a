/*
 * offload: a connection's zstd worker (ls_conn_opts_t.offload_compression), so that the loop
 * never compresses or decompresses a chunk body.
 *
 * One thread per connection, started when compression is turned on, and two ls_workq_t: jobs
 * (loop -> worker, the worker blocks on it) and results (worker -> loop, its wake-up is the
 * connection's uv_async). A job points at a frame the loop keeps in order in one of two lists:
 *   - send: the frame queue (send.c). A compressible body is queued LS__Z_WAIT; the frames behind
 *     it queue too (send_or_queue sees a non-empty queue) and ls__send_flush() stops at a frame
 *     whose body is not back yet. They all count in send_queued, so send_hwm bounds them.
 *   - receive: rxhold. A compressed frame is copied there for the worker, and every frame after
 *     it joins the list until the list is empty again; ls__off_deliver() hands them to on_frame
 *     in order, as long as the application does not pause. Reading stops while the list holds
 *     LS__OFF_RX_MAX bytes and restarts at half.
 * At most LS__OFF_DEPTH bodies each way are with the worker; the rest wait (LS__Z_WAIT) behind a
 * cursor. While a frame is LS__Z_BUSY only the worker touches its buffers and result fields; the
 * queues' lock hands them back.
 *
 * Lifecycle: ls__off_start (set_compression) -> jobs -> ls__off_stop (at close: cancels both
 * queues, joins the thread, which finishes the body at hand, ~3 ms for 1 MiB; the conn then
 * closes off_async) -> ls__off_free (with the connection: frees held frames and the queues; the
 * frame queue and its bodies are send.c's).
 *
 * Threading: everything here runs on the loop thread except worker() and what it calls.
 */
#include <pthread.h>
#include <stdlib.h>

#include "core/workq.h"
#include "transport/internal.h"

enum { JOB_COMPRESS = 1, JOB_INFLATE };

struct ls__rxent {
    struct ls__rxent *next; /* next held frame */
    ls__zstate_t zstate;    /* LS__Z_NONE: delivered as copied; else for the worker */
    int zrc;                /* worker: 0, LS_ECORRUPT, LS_EFRAMETOOBIG, LS_ENOMEM */
    uint8_t *out;           /* worker: header + decompressed body (owned) */
    size_t out_len;         /* bytes in out */
    uint8_t type;           /* frame type */
    uint8_t flags;          /* header flags as received */
    uint64_t seq;           /* its sequence number */
    uint32_t wire_len;      /* bytes it took on the wire */
    size_t len;             /* bytes in in (header + body as received) */
    uint8_t in[];           /* the frame as received */
};

struct ls__off {
    pthread_t thread;           /* the worker */
    ls_workq_t *jobs;           /* loop -> worker */
    ls_workq_t *done;           /* worker -> loop */
    int level;                  /* worker: its codec's level */
    int tx_level;               /* loop: the level the last compression job asked for */
    ls_zbody_t *z;              /* worker: codec */
    uint8_t *scratch;           /* worker: header + LS_FRAME_MAX_BODY */
    struct ls__pframe *tx_next; /* first frame queued LS__Z_WAIT (NULL: none) */
    struct ls__rxent *rx_next;  /* first held frame LS__Z_WAIT (NULL: none) */
    unsigned tx_busy, rx_busy;  /* jobs with the worker, each way */
    bool rx_stopped;            /* reading stopped: rxhold reached LS__OFF_RX_MAX */
};

/* ---- worker thread ------------------------------------------------------------------------ */
static void compress_job(struct ls__off *o, struct ls__pframe *p, int level)
{
    if (level != o->level) {
        ls_zbody_t *z = ls_zbody_new(level);
        if (!z) {
            p->zrc = LS_ENOMEM;
            return;
        }
        ls_zbody_free(o->z);
        o->z = z;
        o->level = level;
    }
    p->zbody = malloc(p->len);
    if (!p->zbody) {
        p->zrc = LS_ENOMEM;
        return;
    }
    /* cap len - 1: kept only when it shrinks, else sent as it is */
    p->zrc = ls_zbody_compress(o->z, p->body, p->len, p->zbody, p->len - 1, &p->zlen);
    if (p->zrc || !p->zlen) {
        free(p->zbody);
        p->zbody = NULL;
        p->zlen = 0;
    }
}

static void inflate_job(struct ls__off *o, struct ls__rxent *e)
{
    size_t dlen = 0;
    e->zrc = ls_zbody_decompress(o->z, e->in + LS_FRAME_HEADER_SIZE, e->len - LS_FRAME_HEADER_SIZE,
                                 o->scratch + LS_FRAME_HEADER_SIZE, LS_FRAME_MAX_BODY, &dlen);
    if (e->zrc) return;
    ls_frame_header_t h = {.body_len = (uint32_t) dlen, .type = e->type, .flags = 0};
    ls_frame_header_encode(&h, o->scratch);
    e->out_len = LS_FRAME_HEADER_SIZE + dlen;
    e->out = malloc(e->out_len);
    if (!e->out) {
        e->zrc = LS_ENOMEM;
        return;
    }
    memcpy(e->out, o->scratch, e->out_len);
}

static void *worker(void *arg)
{
    struct ls__off *o = arg;
    ls_workq_msg_t m;
    while (ls_workq_pop_wait(o->jobs, &m) == 1) {
        if (m.type == JOB_COMPRESS)
            compress_job(o, m.ptr, (int) m.len);
        else
            inflate_job(o, m.ptr);
        if (ls_workq_push_wait(o->done, &m) != 0) break; /* cancelled: the conn is closing */
    }
    return NULL;
}

/* ---- loop side ---------------------------------------------------------------------------- */
static void wake(void *arg)
{
    uv_async_send(arg);
}

/* Gives the worker what waits, up to LS__OFF_DEPTH each way. */
static void submit(ls_conn_t *c)
{
    struct ls__off *o = c->off;
    if (!o->jobs) return; /* stopped: the connection is closing */
    while (o->tx_next && o->tx_busy < LS__OFF_DEPTH) {
        struct ls__pframe *p = o->tx_next;
        if (c->zstd_level) o->tx_level = c->zstd_level; /* else turned off since: as queued */
        ls_workq_msg_t m = {.type = JOB_COMPRESS, .ptr = p, .len = (size_t) o->tx_level};
        p->zstate = LS__Z_BUSY;
        LS_CHECK(ls_workq_push(o->jobs, &m) == 0); /* room: at most 2 x depth jobs */
        o->tx_busy++;
        do
            p = p->next;
        while (p && p->zstate != LS__Z_WAIT);
        o->tx_next = p;
    }
    while (o->rx_next && o->rx_busy < LS__OFF_DEPTH) {
        struct ls__rxent *e = o->rx_next;
        ls_workq_msg_t m = {.type = JOB_INFLATE, .ptr = e};
        e->zstate = LS__Z_BUSY;
        LS_CHECK(ls_workq_push(o->jobs, &m) == 0);
        o->rx_busy++;
        do
            e = e->next;
        while (e && e->zstate != LS__Z_WAIT);
        o->rx_next = e;
    }
}

static void on_async(uv_async_t *a)
{
    ls_conn_t *c = a->data;
    if (c->state == LS__CONN_CLOSING || !c->off) return;
    struct ls__off *o = c->off;
    ls_workq_msg_t m;
    while (ls_workq_pop(o->done, &m) == 1) {
        c->stats.zstd_offload_calls++;
        if (m.type == JOB_COMPRESS) {
            ((struct ls__pframe *) m.ptr)->zstate = LS__Z_DONE;
            o->tx_busy--;
        } else {
            ((struct ls__rxent *) m.ptr)->zstate = LS__Z_DONE;
            o->rx_busy--;
        }
    }
    submit(c);
    ls__send_flush(c);
    if (c->state != LS__CONN_CLOSING) ls__conn_pump(c); /* delivers, reads again if it can */
}

int ls__off_start(ls_conn_t *c)
{
    if (c->off) return 0;
    struct ls__off *o = calloc(1, sizeof(*o));
    if (!o) return LS_ENOMEM;
    o->level = o->tx_level = c->zstd_level;
    o->z = ls_zbody_new(o->level);
    o->scratch = malloc(LS_FRAME_HEADER_SIZE + LS_FRAME_MAX_BODY);
    o->jobs = ls_workq_new(2 * LS__OFF_DEPTH, NULL, NULL);
    o->done = ls_workq_new(2 * LS__OFF_DEPTH, wake, &c->off_async);
    if (!o->z || !o->scratch || !o->jobs || !o->done ||
        pthread_create(&o->thread, NULL, worker, o) != 0) {
        ls_zbody_free(o->z);
        free(o->scratch);
        ls_workq_free(o->jobs, NULL, NULL);
        ls_workq_free(o->done, NULL, NULL);
        free(o);
        return LS_ENOMEM;
    }
    uv_async_init(c->loop, &c->off_async, on_async);
    c->off_async.data = c;
    c->open_handles++;
    c->off = o;
    return 0;
}

void ls__off_stop(ls_conn_t *c)
{
    struct ls__off *o = c->off;
    if (!o || !o->jobs) return;
    ls_workq_cancel(o->jobs);
    ls_workq_cancel(o->done);
    pthread_join(o->thread, NULL);
    ls_workq_free(o->jobs, NULL, NULL); /* pointers into the lists, freed with them */
    ls_workq_free(o->done, NULL, NULL);
    o->jobs = o->done = NULL;
    ls_zbody_free(o->z);
    free(o->scratch);
    o->z = NULL;
    o->scratch = NULL;
}

void ls__off_free(ls_conn_t *c)
{
    ls__off_stop(c);
    while (c->rxhold) {
        struct ls__rxent *e = c->rxhold;
        c->rxhold = e->next;
        free(e->out);
        free(e);
    }
    free(c->off);
    c->off = NULL;
}

void ls__off_tx_add(ls_conn_t *c, struct ls__pframe *p)
{
    if (!c->off->tx_next) c->off->tx_next = p;
    submit(c);
}

int ls__off_rx_add(ls_conn_t *c, const ls_conn_frame_t *f, bool compressed)
{
    size_t len = LS_FRAME_HEADER_SIZE + f->body_len;
    struct ls__rxent *e = malloc(sizeof(*e) + len);
    if (!e) return ls__conn_fail(c, LS_ENOMEM, "out of memory holding a %zu-byte frame", len);
    memset(e, 0, sizeof(*e));
    memcpy(e->in, f->bytes, len);
    e->len = len;
    e->type = f->type;
    e->flags = f->flags;
    e->seq = f->seq;
    e->wire_len = f->wire_len;
    e->zstate = compressed ? LS__Z_WAIT : LS__Z_NONE;
    if (c->rxhold_tail)
        c->rxhold_tail->next = e;
    else
        c->rxhold = e;
    c->rxhold_tail = e;
    c->rxhold_bytes += len;
    if (compressed && !c->off->rx_next) c->off->rx_next = e;
    submit(c);
    return 0;
}

/* Hands the oldest held frame (done) to on_frame and frees it. */
static void deliver_one(ls_conn_t *c, struct ls__rxent *e)
{
    c->rxhold = e->next;
    if (!c->rxhold) c->rxhold_tail = NULL;
    c->rxhold_bytes -= e->len;
    bool z = e->zstate == LS__Z_DONE;
    ls_conn_frame_t f = {.type = e->type,
                         .flags = z ? 0 : e->flags,
                         .bytes = z ? e->out : e->in,
                         .seq = e->seq,
                         .wire_len = e->wire_len};
    f.body_len = (uint32_t) ((z ? e->out_len : e->len) - LS_FRAME_HEADER_SIZE);
    f.body = f.bytes + LS_FRAME_HEADER_SIZE;
    c->stats.bytes_received += LS_FRAME_HEADER_SIZE + f.body_len;
    c->opts.on_frame(c, &f);
    free(e->out);
    free(e);
}

void ls__off_deliver(ls_conn_t *c)
{
    while (c->rxhold && c->state == LS__CONN_READY && !c->paused) {
        struct ls__rxent *e = c->rxhold;
        if (e->zstate == LS__Z_WAIT || e->zstate == LS__Z_BUSY) return;
        if (e->zstate == LS__Z_DONE && e->zrc) {
            ls__conn_fail(c, e->zrc, "frame %llu (%s) from %s: compressed body: %s",
                          (unsigned long long) e->seq, ls_frame_type_name(e->type), c->peer,
                          e->zrc == LS_EFRAMETOOBIG ? "decompresses beyond the frame limit"
                          : e->zrc == LS_ENOMEM     ? "out of memory"
                                                    : "not a valid zstd frame");
            return;
        }
        deliver_one(c, e);
    }
}

bool ls__off_rx_full(ls_conn_t *c)
{
    struct ls__off *o = c->off;
    if (!o) return false;
    if (c->rxhold_bytes >= LS__OFF_RX_MAX)
        o->rx_stopped = true;
    else if (c->rxhold_bytes <= LS__OFF_RX_MAX / 2)
        o->rx_stopped = false;
    return o->rx_stopped;
}
