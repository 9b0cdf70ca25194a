/*
 * transport, offload_compression: a connection's zstd worker (de)compresses chunk bodies while
 * the loop only moves bytes. Over real loopback sockets (plaintext with checksums, so every frame
 * is also checked end to end): order kept under interleaved compressible and small frames,
 * flow control through the worker, pause and resume of reading with frames held for the worker,
 * and closes with bodies still with the worker. Conditions are waited for with a deadline.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "harness.h"
#include "proto/proto.h"
#include "transport/transport.h"

#define MS 1000000ull

typedef struct {
    ls_conn_t *c;       /* NULL once closed */
    bool ready, closed; /* callbacks seen */
    int status;         /* on_close status */
    char msg[LS_CONN_MSG_MAX];
    ls_conn_stats_t final; /* stats at close */
    /* receiver */
    uint64_t next;         /* sequence number expected next */
    uint64_t pause_at;     /* pause reading once this many frames arrived (0: never) */
    uint64_t while_paused; /* frames delivered while paused: must stay 0 */
    bool paused;           /* we paused */
    uint64_t close_at;     /* close from on_frame once this many frames arrived (0: never) */
    uint64_t zframes;      /* frames that crossed compressed (wire_len < body) */
    /* sender */
    uint64_t seq, count; /* next sequence number to send, how many in all */
    uint64_t refused;    /* LS_EBUSY answers */
    uint8_t *buf, *want; /* scratch */
} end_t;

typedef struct {
    uv_loop_t loop;
    uv_timer_t tick;
    ls_listener_t *l;
    end_t srv, cli;
} fx_t;

/* Frame seq: its type and body are a function of seq. 0 mod 4: 200 KiB of log lines (goes to the
 * worker, shrinks); 1: 40 bytes (too small to compress, another type); 2: 4 KiB of noise (to
 * the worker, does not shrink, sent plain); 3: 1 KiB of log lines. */
static uint8_t gen(uint64_t seq, uint8_t *buf, size_t *len)
{
    static const size_t sizes[] = {200 * 1024, 40, 4096, 1024};
    *len = sizes[seq % 4];
    uint64_t r = seq * 0x9e3779b97f4a7c15ull + 1;
    size_t off = 8;
    ls_put64(buf, seq);
    while (off < *len) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        char line[128];
        int n = seq % 4 == 2 ? 8
                             : snprintf(line, sizeof(line),
                                        "2026-12-04T20:%02u:%02u INFO [ship] db=%u gen=%u "
                                        "sent %u bytes\n",
                                        (unsigned) (r % 60), (unsigned) (r >> 8) % 60,
                                        (unsigned) (r >> 16) % 8, (unsigned) (r >> 20) % 999,
                                        (unsigned) (r >> 30) % 65536);
        if (seq % 4 == 2) memcpy(line, &r, 8);
        size_t k = LS_MIN((size_t) n, *len - off);
        memcpy(buf + off, line, k);
        off += k;
    }
    return seq % 4 == 1 ? LS_FRAME_CREDIT : LS_FRAME_GEN_DATA;
}

static void send_some(end_t *e)
{
    while (e->c && e->ready && e->seq < e->count) {
        size_t len;
        uint8_t type = gen(e->seq, e->buf, &len);
        int rc = ls_conn_send(e->c, type, e->buf, len);
        if (rc == LS_EBUSY) {
            e->refused++;
            return;
        }
        if (rc == LS_ECLOSED) return; /* we closed it: on_close follows */
        cr_assert_eq(rc, 0, "send: %s", ls_strerror(rc));
        e->seq++;
    }
}

static void on_ready(ls_conn_t *c)
{
    end_t *e = ls_conn_data(c);
    e->ready = true;
    cr_assert_eq(ls_conn_set_compression(c, 1), 0);
}

static void on_frame(ls_conn_t *c, const ls_conn_frame_t *f)
{
    end_t *e = ls_conn_data(c);
    if (e->paused) e->while_paused++;
    size_t len;
    uint8_t type = gen(e->next, e->want, &len);
    cr_assert_eq(ls_get64(f->body), e->next, "frame %llu arrived when %llu was due",
                 (unsigned long long) ls_get64(f->body), (unsigned long long) e->next);
    cr_assert_eq(f->type, type);
    cr_assert_eq(f->flags, 0, "decompressed by the transport");
    cr_assert_eq(f->body_len, len);
    cr_assert_eq(memcmp(f->body, e->want, len), 0, "frame %llu's bytes",
                 (unsigned long long) e->next);
    if (f->wire_len < f->body_len) e->zframes++;
    e->next++;
    if (e->close_at && e->next == e->close_at) ls_conn_close(c);
    if (e->pause_at && e->next == e->pause_at) {
        ls_conn_pause(c);
        e->paused = true;
    }
}

static void on_drain(ls_conn_t *c)
{
    send_some(ls_conn_data(c));
}

static void on_close(ls_conn_t *c, int status, const char *msg)
{
    end_t *e = ls_conn_data(c);
    e->closed = true;
    e->status = status;
    snprintf(e->msg, sizeof(e->msg), "%s", msg);
    ls_conn_stats(c, &e->final);
    e->c = NULL;
}

static void on_accept(ls_listener_t *l, ls_conn_t *c)
{
    fx_t *fx = ls_listener_data(l);
    fx->srv.c = c;
    ls_conn_set_data(c, &fx->srv);
}

static void tick_cb(uv_timer_t *t)
{
    fx_t *fx = t->data;
    send_some(&fx->cli);
}

static void fx_start(fx_t *fx, bool offload)
{
    signal(SIGPIPE, SIG_IGN);
    memset(fx, 0, sizeof(*fx));
    cr_assert_eq(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->tick);
    fx->tick.data = fx;
    uv_timer_start(&fx->tick, tick_cb, 1, 1);
    end_t *ends[] = {&fx->srv, &fx->cli};
    for (int i = 0; i < 2; i++) {
        ends[i]->buf = malloc(LS_FRAME_MAX_BODY);
        ends[i]->want = malloc(LS_FRAME_MAX_BODY);
    }
    ls_conn_opts_t o = {.insecure_plaintext = true,
                        .on_ready = on_ready,
                        .on_frame = on_frame,
                        .on_drain = on_drain,
                        .on_close = on_close,
                        .heartbeat_ms = 100,
                        .dead_ms = 3000,
                        .send_hwm = 2u * 1024 * 1024,
                        .offload_compression = offload};
    cr_assert_eq(ls_listener_start(&fx->loop, "127.0.0.1", 0, &o, on_accept, fx, &fx->l), 0);
    o.data = &fx->cli;
    cr_assert_eq(ls_conn_connect(&fx->loop, "127.0.0.1", ls_listener_port(fx->l), &o, &fx->cli.c),
                 0);
}

static void fx_fini(fx_t *fx)
{
    if (fx->cli.c) ls_conn_close(fx->cli.c);
    if (fx->srv.c) ls_conn_close(fx->srv.c);
    if (fx->l) ls_listener_close(fx->l, NULL);
    uv_close((uv_handle_t *) &fx->tick, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&fx->loop), 0, "every handle closed, the workers' too");
    free(fx->srv.buf);
    free(fx->srv.want);
    free(fx->cli.buf);
    free(fx->cli.want);
}

static bool run_until(fx_t *fx, bool (*cond)(fx_t *), int timeout_ms)
{
    uint64_t end = ls_mono_ns() / MS + (uint64_t) timeout_ms;
    while (!cond(fx)) {
        if (ls_mono_ns() / MS > end) return false;
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    return true;
}

static bool both_ready(fx_t *fx)
{
    return fx->srv.ready && fx->cli.ready;
}
static bool all_arrived(fx_t *fx)
{
    return fx->srv.next == fx->cli.count || fx->srv.closed;
}
static bool both_closed(fx_t *fx)
{
    return fx->srv.closed && fx->cli.closed;
}

/* Interleaved frames cross in order and intact; the worker does every body, the loop none. */
Test(transport_offload, order_kept_and_the_loop_never_runs_zstd, .timeout = 60)
{
    fx_t fx;
    fx_start(&fx, true);
    cr_assert(run_until(&fx, both_ready, 5000));
    fx.cli.count = 400; /* 100 x 200 KiB, 100 x 4 KiB noise, 100 x 1 KiB, 100 small */
    cr_assert(run_until(&fx, all_arrived, 30000), "srv '%s' cli '%s'", fx.srv.msg, fx.cli.msg);
    cr_assert_eq(fx.srv.next, 400, "every frame arrived, in order (checked one by one)");
    cr_assert_eq(fx.srv.zframes, 200, "the log-line bodies crossed compressed, the noise plain");
    ls_conn_stats_t cs, ss;
    ls_conn_stats(fx.cli.c, &cs);
    ls_conn_stats(fx.srv.c, &ss);
    cr_assert_eq(cs.zstd_loop_calls, 0, "the sender's loop compressed nothing");
    cr_assert_eq(ss.zstd_loop_calls, 0, "the receiver's loop decompressed nothing");
    cr_assert_eq(cs.zstd_offload_calls, 300, "every body of 512 bytes or more went to the worker");
    cr_assert_eq(ss.zstd_offload_calls, 200, "every compressed body came back through it");
    cr_assert_gt(fx.cli.refused, 0, "the sender met the high-water mark");
    cr_assert_leq(cs.send_queued_max, 2u * 1024 * 1024 + 200 * 1024 + 1024,
                  "frames with the worker count against send_hwm: %zu", cs.send_queued_max);
    fx_fini(&fx);
}

/* The same exchange without the option runs zstd on the loop: the counter measures something. */
Test(transport_offload, without_the_option_the_loop_does_it, .timeout = 30)
{
    fx_t fx;
    fx_start(&fx, false);
    cr_assert(run_until(&fx, both_ready, 5000));
    fx.cli.count = 40;
    cr_assert(run_until(&fx, all_arrived, 10000));
    cr_assert_eq(fx.srv.next, 40);
    ls_conn_stats_t cs, ss;
    ls_conn_stats(fx.cli.c, &cs);
    ls_conn_stats(fx.srv.c, &ss);
    cr_assert_eq(cs.zstd_loop_calls, 30);
    cr_assert_eq(ss.zstd_loop_calls, 20);
    cr_assert_eq(cs.zstd_offload_calls + ss.zstd_offload_calls, 0);
    fx_fini(&fx);
}

static uint64_t t_paused;
static bool paused_and_blocked(fx_t *fx)
{
    return fx->srv.paused && fx->cli.refused >= 20;
}
static bool paused_past_deadline(fx_t *fx)
{
    return ls_mono_ns() / MS > t_paused + 3500 || fx->srv.closed;
}

/* Pausing stops delivery at once even with frames held for the worker, the sender is held back,
 * the paused reader is not declared dead, and resuming delivers the rest in order. */
Test(transport_offload, pause_and_resume_with_frames_held_for_the_worker, .timeout = 60)
{
    fx_t fx;
    fx_start(&fx, true);
    cr_assert(run_until(&fx, both_ready, 5000));
    fx.srv.pause_at = 50;
    fx.cli.count = 400;
    cr_assert(run_until(&fx, paused_and_blocked, 20000), "srv '%s'", fx.srv.msg);
    t_paused = ls_mono_ns() / MS;
    cr_assert(run_until(&fx, paused_past_deadline, 10000));
    cr_assert_not(fx.srv.closed, "paused longer than dead_ms, yet alive: %s", fx.srv.msg);
    cr_assert_eq(fx.srv.while_paused, 0, "nothing delivered after the pause");
    cr_assert_eq(fx.srv.next, 50);
    ls_conn_stats_t ss;
    ls_conn_stats(fx.srv.c, &ss);
    cr_assert_lt(ss.wire_bytes_received, 10u * 1024 * 1024, "reading stopped: %llu of ~20 MiB read",
                 (unsigned long long) ss.wire_bytes_received);
    fx.srv.paused = false;
    ls_conn_resume(fx.srv.c);
    cr_assert(run_until(&fx, all_arrived, 30000), "srv '%s'", fx.srv.msg);
    cr_assert_eq(fx.srv.next, 400, "the rest arrived, in order");
    ls_conn_stats(fx.srv.c, &ss);
    cr_assert_eq(ss.zstd_loop_calls, 0);
    fx_fini(&fx);
}

static bool cli_blocked(fx_t *fx)
{
    return fx->cli.refused > 0;
}

/* The sender closes while bodies are with its worker or waiting for it: they are dropped, the
 * close completes (every handle, the worker's wake-up included), and the receiver saw a prefix
 * of the stream in order. Run under ASan, nothing leaks. */
Test(transport_offload, close_with_bodies_with_the_sender_worker, .timeout = 30)
{
    fx_t fx;
    fx_start(&fx, true);
    cr_assert(run_until(&fx, both_ready, 5000));
    fx.cli.count = 400;
    cr_assert(run_until(&fx, cli_blocked, 10000));
    ls_conn_stats_t cs;
    ls_conn_stats(fx.cli.c, &cs);
    cr_assert_gt(cs.send_queued, 1024 * 1024, "frames queued behind the worker");
    ls_conn_close(fx.cli.c);
    cr_assert(run_until(&fx, both_closed, 10000));
    cr_assert_eq(fx.cli.status, 0, "%s", fx.cli.msg);
    cr_assert_lt(fx.srv.next, 400, "the queued frames were dropped");
    cr_assert_eq(fx.cli.final.zstd_loop_calls, 0);
    fx_fini(&fx);
}

/* The receiver closes from on_frame while later frames are held for its worker: nothing more is
 * delivered, and the close completes. */
Test(transport_offload, close_from_on_frame_with_frames_held, .timeout = 30)
{
    fx_t fx;
    fx_start(&fx, true);
    cr_assert(run_until(&fx, both_ready, 5000));
    fx.srv.close_at = 21;
    fx.cli.count = 400;
    cr_assert(run_until(&fx, both_closed, 20000), "srv '%s' cli '%s'", fx.srv.msg, fx.cli.msg);
    cr_assert_eq(fx.srv.status, 0, "%s", fx.srv.msg);
    cr_assert_eq(fx.srv.next, 21, "no frame after the close");
    cr_assert_gt(fx.srv.final.frames_received, 22, "later frames had arrived and were held");
    fx_fini(&fx);
}
