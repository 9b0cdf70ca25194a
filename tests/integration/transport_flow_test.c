/*
 * transport over real loopback sockets: compression (on the loop and off it) and flow control (a
 * fast sender against a paused reader, a paused reader not declared dead, the socket options)
 * (helpers in transport_test_util.h).
 */
#include "transport_test_util.h"

/* ---- compression ----------------------------------------------------------------------- */
typedef struct {
    uint64_t wire_cli_rx, wire_srv_rx; /* bytes read from the socket by each side */
    uint64_t hash_c2s, hash_s2c;       /* hashes of what each side received */
} xfer_t;

static void exchange(int level, xfer_t *x)
{
    fx_t fx;
    fx_init(&fx);
    make_certs(&fx);
    fx.srv.zstd_level = fx.cli.zstd_level = level;
    tls_pair_ready(&fx);
    fx.cli.frame = fx.srv.frame = 256 * 1024;
    fx.cli.to_send = fx.srv.to_send = 4 * MiB;
    cr_assert(run_until(&fx, exchanged, 20000), "level %d: srv '%s' cli '%s'", level, fx.srv.msg,
              fx.cli.msg);
    cr_assert_eq(fx.srv.hash, fx.cli.sent_hash, "level %d: client -> server identical", level);
    cr_assert_eq(fx.cli.hash, fx.srv.sent_hash, "level %d: server -> client identical", level);
    ls_conn_stats_t a, b;
    ls_conn_stats(fx.cli.c, &a);
    ls_conn_stats(fx.srv.c, &b);
    x->wire_cli_rx = a.wire_bytes_received;
    x->wire_srv_rx = b.wire_bytes_received;
    x->hash_c2s = fx.srv.hash;
    x->hash_s2c = fx.cli.hash;
    fx_fini(&fx);
}

Test(transport, compressed_and_plain_streams_carry_the_same_bytes, .timeout = 60)
{
    xfer_t plain, z;
    exchange(0, &plain);
    exchange(1, &z);
    fprintf(stderr, "compression: server read %llu bytes plain, %llu with zstd level 1\n",
            (unsigned long long) plain.wire_srv_rx, (unsigned long long) z.wire_srv_rx);
    cr_assert_eq(plain.hash_c2s, z.hash_c2s, "same bytes client -> server");
    cr_assert_eq(plain.hash_s2c, z.hash_s2c, "same bytes server -> client");
    cr_assert_gt(plain.wire_srv_rx, 4 * MiB, "uncompressed: at least the payload crossed");
    cr_assert_lt(z.wire_srv_rx * 2, plain.wire_srv_rx, "compressed: %llu vs %llu bytes",
                 (unsigned long long) z.wire_srv_rx, (unsigned long long) plain.wire_srv_rx);
    cr_assert_lt(z.wire_cli_rx * 2, plain.wire_cli_rx, "compressed: %llu vs %llu bytes",
                 (unsigned long long) z.wire_cli_rx, (unsigned long long) plain.wire_cli_rx);
}

Test(transport, compressed_frame_before_negotiation_is_refused, .timeout = 30)
{
    fx_t fx;
    fx_init(&fx);
    ls_conn_opts_t so = base_opts(), co = base_opts();
    so.insecure_plaintext = co.insecure_plaintext = true;
    fx.cli.zstd_level = 3; /* the client compresses, the server never agreed */
    start_pair(&fx, so, co);
    cr_assert(run_until(&fx, both_ready, 5000));
    fx.cli.frame = 65536;
    fx.cli.to_send = 65536;
    cr_assert(run_until(&fx, both_closed, 5000));
    cr_assert_eq(fx.srv.status, LS_EPROTO, "%s", fx.srv.msg);
    cr_assert(ls_h_contains(fx.srv.msg, "before compression was negotiated"), "%s", fx.srv.msg);
    cr_assert_eq(fx.srv.frames, 0);
    fx_fini(&fx);
}

/* The off-loop path: the client compresses bodies itself and sends them with ls_conn_send_raw;
 * the server takes them still compressed (deliver_compressed) and decompresses them itself. The
 * server's own sends go the normal way. Same bytes both ways. */
Test(transport, compression_can_run_off_the_loop, .timeout = 30)
{
    fx_t fx;
    fx_init(&fx);
    make_certs(&fx);
    fx.srv.zstd_level = fx.cli.zstd_level = 1;
    fx.cli.send_raw = true;
    fx.cli.zb = ls_zbody_new(1);
    fx.srv.zb = ls_zbody_new(1);
    fx.cli.zbuf = malloc(LS_FRAME_MAX_BODY);
    fx.srv.zbuf = malloc(LS_FRAME_MAX_BODY);
    cr_assert_null(ls_zbody_new(0), "level 0 is not a level");
    ls_tls_ctx_t *srv_ctx = ctx(&fx, "ca1", "ca1", "target");
    ls_conn_opts_t so = base_opts(), co = base_opts();
    so.tls = srv_ctx;
    so.peer_name = "source";
    so.deliver_compressed = true;
    co.tls = ctx(&fx, "ca1", "ca1", "source");
    co.peer_name = "target";
    start_pair(&fx, so, co);
    ls_tls_ctx_free(srv_ctx);
    ls_tls_ctx_free(co.tls);
    cr_assert(run_until(&fx, both_ready, 10000));
    fx.cli.frame = fx.srv.frame = 256 * 1024;
    fx.cli.to_send = fx.srv.to_send = 2 * MiB;
    cr_assert(run_until(&fx, exchanged, 20000), "srv '%s' cli '%s'", fx.srv.msg, fx.cli.msg);
    cr_assert_eq(fx.srv.hash, fx.cli.sent_hash, "client -> server identical");
    cr_assert_eq(fx.cli.hash, fx.srv.sent_hash, "server -> client identical");
    cr_assert_eq(fx.srv.zframes, 8, "the server got every chunk still compressed");
    cr_assert_eq(fx.cli.zframes, 0, "the client got them decompressed by the transport");
    ls_conn_stats_t st;
    ls_conn_stats(fx.srv.c, &st);
    cr_assert_lt(st.wire_bytes_received, MiB, "the client's chunks crossed compressed");
    fx_fini(&fx);
}

/* ---- flow control ---------------------------------------------------------------------- */
static bool offered_100(fx_t *fx)
{
    return fx->cli.offered >= 100ull * MiB && fx->cli.refused >= 50;
}
static bool all_100_received(fx_t *fx)
{
    return fx->srv.bytes == 100ull * MiB;
}

static uint64_t hb_mark; /* frames_sent when the sender got blocked */
static bool heartbeats_left(fx_t *fx)
{
    ls_conn_stats_t st;
    ls_conn_stats(fx->cli.c, &st);
    return st.frames_sent >= hb_mark + 3;
}

Test(transport, fast_sender_to_paused_reader_keeps_memory_bounded, .timeout = 60)
{
    fx_t fx;
    fx_init(&fx);
    make_certs(&fx);
    fx.srv.pause_on_ready = true;
    tls_pair_ready(&fx);
    size_t rss0 = rss_bytes();
    fx.rss_max = rss0;
    const uint32_t frame = 256 * 1024;
    const size_t hwm = LS_CONN_SEND_HWM_DEFAULT;
    const size_t frame_wire = frame + LS_FRAME_HEADER_SIZE + 1024; /* + TLS record overhead */
    fx.cli.frame = frame;
    fx.cli.to_send = 100ull * MiB;
    /* the sender keeps offering (every tick) while the reader does not read */
    cr_assert(run_until(&fx, offered_100, 20000), "offered %llu",
              (unsigned long long) fx.cli.offered);
    ls_conn_stats_t st;
    ls_conn_stats(fx.cli.c, &st);
    cr_assert_leq(st.send_queued_max, hwm + frame_wire, "queued %zu > hwm %zu + one frame",
                  st.send_queued_max, hwm);
    cr_assert_lt(fx.cli.sent, 40ull * MiB, "only hwm + socket buffers accepted: %llu",
                 (unsigned long long) fx.cli.sent);
    cr_assert_eq(fx.srv.frames, 0, "paused: nothing delivered");
    cr_assert(fx.cli.ready && fx.srv.ready, "nobody declared dead while paused");
    /* heartbeats still leave, ahead of the frames waiting in the frame queue (white box) */
    cr_assert_gt(fx.cli.c->pending_bytes, 0, "frames are waiting in the frame queue");
    hb_mark = st.frames_sent;
    cr_assert(run_until(&fx, heartbeats_left, 5000), "no heartbeat got past the backlog");
    /* then the reader reads: everything arrives, in order, and the bound held throughout */
    ls_conn_resume(fx.srv.c);
    uint64_t t0 = ls_mono_ns(), b0 = fx.srv.bytes;
    cr_assert(run_until(&fx, all_100_received, 30000), "received %llu",
              (unsigned long long) fx.srv.bytes);
    fprintf(stderr, "flow control: after resume %.0f MB/s through TLS (both ends on one loop)\n",
            (double) (fx.srv.bytes - b0) * 1e3 / (double) (ls_mono_ns() - t0));
    cr_assert_eq(fx.srv.hash, fx.cli.sent_hash);
    ls_conn_stats(fx.cli.c, &st);
    cr_assert_leq(st.send_queued_max, hwm + frame_wire);
    fprintf(stderr,
            "flow control: %llu MiB offered, queued max %zu bytes (hwm %zu), RSS +%zu KiB\n",
            (unsigned long long) (fx.cli.offered / MiB), st.send_queued_max, hwm,
            (fx.rss_max - rss0) / 1024);
#ifndef __SANITIZE_ADDRESS__ /* ASan's quarantine keeps freed memory resident: counters only */
    cr_assert_lt(fx.rss_max - rss0, 64ull * MiB, "RSS grew by %zu bytes", fx.rss_max - rss0);
#endif
    fx_fini(&fx);
}

/* A reader paused for several heartbeat timeouts is not a dead peer on either side: its own
 * deadline is suspended, the sender still hears its heartbeats, and the kernel's
 * TCP_USER_TIMEOUT (2 x dead_ms) does not fire while the paused side acknowledges probes. */
static bool paused_long_enough(fx_t *fx)
{
    return fx->cli.closed || fx->srv.closed;
}

Test(transport, paused_reader_is_not_declared_dead, .timeout = 30)
{
    fx_t fx;
    fx_init(&fx);
    ls_conn_opts_t so = base_opts(), co = base_opts();
    so.insecure_plaintext = co.insecure_plaintext = true;
    so.dead_ms = co.dead_ms = 400;
    so.send_hwm = co.send_hwm = 1 * MiB;
    fx.srv.pause_on_ready = true;
    start_pair(&fx, so, co);
    cr_assert(run_until(&fx, both_ready, 5000));
    fx.cli.frame = 65536;
    fx.cli.to_send = 64ull * MiB; /* far more than the socket buffers hold */
    cr_assert(!run_until(&fx, paused_long_enough, 3000), "closed while paused: srv '%s' cli '%s'",
              fx.srv.msg, fx.cli.msg);
    cr_assert_gt(fx.cli.refused, 0, "the sender was held back");
    cr_assert_eq(fx.srv.frames, 0);
    ls_conn_resume(fx.srv.c);
    cr_assert(run_until(&fx, exchanged, 20000), "received %llu of %llu",
              (unsigned long long) fx.srv.bytes, (unsigned long long) fx.cli.sent);
    cr_assert_eq(fx.srv.hash, fx.cli.sent_hash);
    fx_fini(&fx);
}

/* The belt under the heartbeats, and the kernel's low-water mark that keeps heartbeats from
 * queuing behind megabytes of unsent data: checked on the socket itself (white box). Their
 * firing needs packet loss (netem), which these tests do not have. */
static int sockopt(ls_conn_t *c, int level, int name)
{
    uv_os_fd_t fd;
    cr_assert_eq(uv_fileno((uv_handle_t *) &c->tcp, &fd), 0);
    int v = -1;
    socklen_t n = sizeof(v);
    cr_assert_eq(getsockopt(fd, level, name, &v, &n), 0);
    return v;
}

Test(transport, keepalive_user_timeout_and_lowat_are_set, .timeout = 30)
{
    fx_t fx;
    fx_init(&fx);
    ls_conn_opts_t so = base_opts(), co = base_opts();
    so.insecure_plaintext = co.insecure_plaintext = true;
    co.dead_ms = 4000;
    co.tcp_user_timeout_ms = 1; /* raised to 2 x dead_ms */
    start_pair(&fx, so, co);
    cr_assert(run_until(&fx, both_ready, 5000));
    cr_assert_eq(sockopt(fx.cli.c, SOL_SOCKET, SO_KEEPALIVE), 1);
    cr_assert_eq(sockopt(fx.cli.c, IPPROTO_TCP, TCP_KEEPIDLE), 4);
    cr_assert_eq(sockopt(fx.cli.c, IPPROTO_TCP, TCP_USER_TIMEOUT), 8000);
    cr_assert_eq(sockopt(fx.srv.c, IPPROTO_TCP, TCP_USER_TIMEOUT), LS_CONN_USER_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(sockopt(fx.srv.c, IPPROTO_TCP, TCP_NOTSENT_LOWAT), LS__NOTSENT_LOWAT);
    cr_assert_eq(sockopt(fx.srv.c, IPPROTO_TCP, TCP_NODELAY), 1);
    fx_fini(&fx);
}
