/*
 * transport over real loopback sockets: the plaintext checksum and TLS records damaged or cut on
 * the way (through a proxy thread), and heartbeat death of a stopped peer process (helpers in
 * transport_test_util.h).
 */
#include "transport_test_util.h"

/* ---- plaintext checksum ------------------------------------------------------------------ */
typedef struct {
    int lfd;      /* listening socket */
    int port;     /* its port */
    int dst_port; /* server to forward to */
    long flip_at; /* client -> server byte offset to corrupt, -1: none */
    int record;   /* TLS: client -> server record (from 0) to damage in its middle, -1: none */
    bool cut;     /* cut the stream there (then close both ends) instead of flipping a byte */
    /* the proxy's parse of the client's TLS records */
    int rec_i;          /* record at hand */
    int hdr_got;        /* bytes of its 5-byte header seen */
    uint8_t hdr[5];     /* the header */
    long body_len, pos; /* its body length, bytes of it seen */
    pthread_t th;       /* forwarding thread */
} proxy_t;

/* Damages the client's bytes (n in buf, the stream from off) as p asks; returns how many to
 * forward (fewer when the stream is cut there). */
static size_t damage(proxy_t *p, char *buf, size_t n, long off)
{
    if (p->record < 0) {
        if (p->flip_at < off || p->flip_at >= off + (long) n) return n;
        if (p->cut) return (size_t) (p->flip_at - off);
        buf[p->flip_at - off] ^= 0x40;
        return n;
    }
    for (size_t i = 0; i < n; i++) {
        if (p->hdr_got < 5) {
            p->hdr[p->hdr_got++] = (uint8_t) buf[i];
            if (p->hdr_got == 5) {
                p->body_len = (long) ((unsigned) p->hdr[3] << 8 | p->hdr[4]);
                p->pos = 0;
            }
            continue;
        }
        if (p->rec_i == p->record && p->pos == p->body_len / 2) {
            if (p->cut) return i;
            buf[i] ^= 0x40;
        }
        if (++p->pos == p->body_len) {
            p->hdr_got = 0;
            p->rec_i++;
        }
    }
    return n;
}

static bool write_all(int fd, const char *b, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w <= 0) return false;
        b += w;
        n -= (size_t) w;
    }
    return true;
}

static void *proxy_main(void *arg)
{
    proxy_t *p = arg;
    int a = accept(p->lfd, NULL, NULL), b = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t) p->dst_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (a < 0 || connect(b, (struct sockaddr *) &sa, sizeof(sa)) != 0) goto out;
    static __thread char buf[65536];
    long off = 0;
    for (;;) {
        struct pollfd fds[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
        if (poll(fds, 2, 20000) <= 0) break;
        if (fds[0].revents) {
            ssize_t n = read(a, buf, sizeof(buf));
            if (n <= 0) break;
            size_t fwd = damage(p, buf, (size_t) n, off);
            off += n;
            if (!write_all(b, buf, fwd) || fwd < (size_t) n) break;
        }
        if (fds[1].revents) {
            ssize_t n = read(b, buf, sizeof(buf));
            if (n <= 0 || !write_all(a, buf, (size_t) n)) break;
        }
    }
out:
    if (a >= 0) close(a);
    close(b);
    return NULL;
}

static void proxy_start(proxy_t *p, int dst_port, long flip_at)
{
    memset(p, 0, sizeof(*p));
    p->record = -1;
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(p->lfd, (struct sockaddr *) &sa, sizeof(sa)), 0);
    cr_assert_eq(listen(p->lfd, 1), 0);
    socklen_t n = sizeof(sa);
    getsockname(p->lfd, (struct sockaddr *) &sa, &n);
    p->port = ntohs(sa.sin_port);
    p->dst_port = dst_port;
    p->flip_at = flip_at;
    cr_assert_eq(pthread_create(&p->th, NULL, proxy_main, p), 0);
}

static void proxy_stop(proxy_t *p)
{
    pthread_join(p->th, NULL);
    close(p->lfd);
}

static bool srv_got_all(fx_t *fx)
{
    return fx->srv.bytes == 10 * 65536 || fx->srv.closed;
}

/* ---- TLS records damaged or cut on the way ------------------------------------------- */
/* A TLS pair through the proxy, which damages client record `record` (cut: cuts the stream in
 * its middle); the client sends 10 frames of 64 KiB once ready. */
static void tls_through_proxy(fx_t *fx, proxy_t *p, int record, bool cut)
{
    fx_init(fx);
    make_certs(fx);
    ls_tls_ctx_t *sctx = ctx(fx, "ca1", "ca1", "target"), *cctx = ctx(fx, "ca1", "ca1", "source");
    ls_conn_opts_t so = base_opts(), co = base_opts();
    so.tls = sctx;
    so.peer_name = "source";
    co.tls = cctx;
    co.peer_name = "target";
    cr_assert_eq(ls_listener_start(&fx->loop, "127.0.0.1", 0, &so, on_accept, fx, &fx->l), 0);
    proxy_start(p, ls_listener_port(fx->l), -1);
    p->record = record;
    p->cut = cut;
    co.data = &fx->cli;
    cr_assert_eq(ls_conn_connect(&fx->loop, "127.0.0.1", p->port, &co, &fx->cli.c), 0);
    ls_tls_ctx_free(sctx);
    ls_tls_ctx_free(cctx);
    cr_assert(run_until(fx, both_ready, 10000), "handshake: srv '%s' cli '%s'", fx->srv.msg,
              fx->cli.msg);
    cr_assert(ls_conn_is_tls(fx->cli.c));
    fx->cli.frame = 65536;
    fx->cli.to_send = 10 * 65536;
    fx->cli.cut_expected = record >= 0;
    cr_assert(run_until(fx, srv_got_all, 10000));
}

/* Record 20 of the client: well past its handshake flight (ClientHello, ChangeCipherSpec,
 * Certificate, CertificateVerify, Finished) and the first heartbeat, inside the data frames. */
#define DAMAGED_RECORD 20

Test(transport, tls_damaged_or_cut_record_is_a_clear_error, .timeout = 60)
{
    fx_t fx;
    proxy_t p;
    tls_through_proxy(&fx, &p, -1, false); /* control: the same path without damage */
    cr_assert_eq(fx.srv.frames, 10, "%s", fx.srv.msg);
    cr_assert_eq(fx.srv.hash, fx.cli.sent_hash);
    fx_fini(&fx);
    proxy_stop(&p);

    tls_through_proxy(&fx, &p, DAMAGED_RECORD, false); /* one byte flipped in a record */
    cr_assert(run_until(&fx, both_closed, 10000));
    cr_assert_eq(fx.srv.status, LS_ETLS, "%s (%s)", fx.srv.msg, ls_err_name(fx.srv.status));
    cr_assert(ls_h_contains(fx.srv.msg, "TLS read with 127.0.0.1:"), "%s", fx.srv.msg);
    cr_assert(ls_h_contains(fx.srv.msg, "bad record mac"), "%s", fx.srv.msg);
    cr_assert_lt(fx.srv.frames, 10, "the damaged frame was not delivered");
    fx_fini(&fx);
    proxy_stop(&p);

    tls_through_proxy(&fx, &p, DAMAGED_RECORD, true); /* the stream ends inside a record */
    cr_assert(run_until(&fx, both_closed, 10000));
    cr_assert_eq(fx.srv.status, LS_ECONNRESET, "%s (%s)", fx.srv.msg, ls_err_name(fx.srv.status));
    cr_assert(ls_h_contains(fx.srv.msg, "closed the connection in the middle of a TLS record"),
              "%s", fx.srv.msg);
    cr_assert_lt(fx.srv.frames, 10);
    fx_fini(&fx);
    proxy_stop(&p);
}

/* Plain pair through the proxy; the client sends 10 frames of 64 KiB. */
static void plain_through_proxy(fx_t *fx, proxy_t *p, long flip_at, bool cut)
{
    fx_init(fx);
    ls_conn_opts_t so = base_opts(), co = base_opts();
    so.insecure_plaintext = co.insecure_plaintext = true;
    cr_assert_eq(ls_listener_start(&fx->loop, "127.0.0.1", 0, &so, on_accept, fx, &fx->l), 0);
    proxy_start(p, ls_listener_port(fx->l), flip_at);
    p->cut = cut;
    co.data = &fx->cli;
    cr_assert_eq(ls_conn_connect(&fx->loop, "127.0.0.1", p->port, &co, &fx->cli.c), 0);
    cr_assert(run_until(fx, both_ready, 10000));
    cr_assert(!ls_conn_is_tls(fx->cli.c));
    fx->cli.frame = 65536;
    fx->cli.to_send = 10 * 65536;
    fx->cli.cut_expected = flip_at >= 0;
    cr_assert(run_until(fx, srv_got_all, 10000));
}

Test(transport, plaintext_checksum_catches_a_flipped_byte, .timeout = 30)
{
    fx_t fx;
    proxy_t p;
    plain_through_proxy(&fx, &p, -1, false); /* control: the same path without damage */
    cr_assert_eq(fx.srv.frames, 10);
    cr_assert_eq(fx.srv.hash, fx.cli.sent_hash);
    fx_fini(&fx);
    proxy_stop(&p);

    plain_through_proxy(&fx, &p, 5000, false); /* inside the first data frame (after a heartbeat) */
    cr_assert(run_until(&fx, both_closed, 10000));
    cr_assert_eq(fx.srv.status, LS_ECORRUPT, "%s (%s)", fx.srv.msg, ls_err_name(fx.srv.status));
    cr_assert(ls_h_contains(fx.srv.msg, "checksum mismatch"), "%s", fx.srv.msg);
    cr_assert(ls_h_contains(fx.srv.msg, "GEN_DATA"), "%s", fx.srv.msg);
    cr_assert_eq(fx.srv.frames, 0, "the damaged frame was not delivered");
    fx_fini(&fx);
    proxy_stop(&p);
}

Test(transport, plaintext_stream_cut_inside_a_frame_says_so, .timeout = 30)
{
    fx_t fx;
    proxy_t p;
    plain_through_proxy(&fx, &p, 3 * 65536, true); /* inside the third data frame */
    cr_assert(run_until(&fx, both_closed, 10000));
    cr_assert_eq(fx.srv.status, LS_ECONNRESET, "%s (%s)", fx.srv.msg, ls_err_name(fx.srv.status));
    cr_assert(ls_h_contains(fx.srv.msg, "closed the connection in the middle of a frame"), "%s",
              fx.srv.msg);
    cr_assert_eq(fx.srv.frames, 2, "the frames before the cut arrived");
    fx_fini(&fx);
    proxy_stop(&p);
}

/* ---- heartbeat death ------------------------------------------------------------------- */
static void child_frame(ls_conn_t *c, const ls_conn_frame_t *f)
{
    (void) c;
    (void) f;
}
static void child_close(ls_conn_t *c, int status, const char *msg)
{
    (void) c;
    (void) status;
    (void) msg;
}

/* The peer: its own process and loop, plain TCP, heartbeats every 100 ms. */
static void peer_main(int wfd)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    ls_conn_opts_t o = {.insecure_plaintext = true,
                        .heartbeat_ms = 100,
                        .dead_ms = 60000,
                        .on_frame = child_frame,
                        .on_close = child_close};
    ls_listener_t *l;
    if (ls_listener_start(&loop, "127.0.0.1", 0, &o, NULL, NULL, &l) != 0) _exit(1);
    int port = ls_listener_port(l);
    if (write(wfd, &port, sizeof(port)) != sizeof(port)) _exit(1);
    close(wfd);
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(0);
}

static bool got_heartbeats(fx_t *fx)
{
    ls_conn_stats_t st;
    if (!fx->cli.c) return true;
    ls_conn_stats(fx->cli.c, &st);
    return st.frames_received >= 3;
}

Test(transport, stopped_peer_is_declared_dead_within_the_timeout, .timeout = 30)
{
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(pfd[0]);
        peer_main(pfd[1]);
    }
    close(pfd[1]);
    int port = 0;
    struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
    cr_assert_eq(poll(&pf, 1, 10000), 1, "peer started");
    cr_assert_eq(read(pfd[0], &port, sizeof(port)), (ssize_t) sizeof(port));
    close(pfd[0]);

    const uint32_t hb_ms = 100, dead_ms = 1000;
    fx_t fx;
    fx_init(&fx);
    ls_conn_opts_t co = base_opts();
    co.insecure_plaintext = true;
    co.heartbeat_ms = hb_ms;
    co.dead_ms = dead_ms;
    co.data = &fx.cli;
    cr_assert_eq(ls_conn_connect(&fx.loop, "127.0.0.1", port, &co, &fx.cli.c), 0);
    cr_assert(run_until(&fx, got_heartbeats, 10000), "%s", fx.cli.msg);
    /* alive well past the timeout while the peer answers */
    uint64_t alive_until = now_ms() + 2 * dead_ms;
    while (now_ms() < alive_until && !fx.cli.closed)
        uv_run(&fx.loop, UV_RUN_ONCE);
    cr_assert(!fx.cli.closed, "declared dead while the peer answers: %s", fx.cli.msg);

    ls_h_kill(pid, SIGSTOP);
    uint64_t t_stop = ls_mono_ns();
    bool died = run_until(&fx, cli_closed, 10000);
    uint64_t t_dead = ls_mono_ns();
    ls_h_kill(pid, SIGCONT);
    ls_h_kill(pid, SIGKILL);
    ls_h_wait(pid, 5000);
    cr_assert(died, "never declared dead");
    cr_assert_eq(fx.cli.status, LS_ETIMEDOUT, "%s", fx.cli.msg);
    cr_assert(ls_h_contains(fx.cli.msg, "declared dead"), "%s", fx.cli.msg);
    uint64_t since_stop = (t_dead - t_stop) / MS,
             since_last = (t_dead - fx.cli.final.last_rx_mono_ns) / MS;
    fprintf(stderr, "heartbeat: dead %llu ms after SIGSTOP, %llu ms after the last bytes\n",
            (unsigned long long) since_stop, (unsigned long long) since_last);
    cr_assert_geq(since_last, dead_ms, "dead after %llu ms of silence, before the timeout",
                  (unsigned long long) since_last);
    /* Not sooner than the silence allows (above); and by the heartbeat timeout, not by some
     * later failure: well before 3 timeouts even on a loaded machine. (A bound against the
     * SIGSTOP itself flaked: a starved peer's last heartbeat can precede it by more than hb_ms.) */
    cr_assert_leq(since_stop, 3 * dead_ms, "%llu ms after SIGSTOP, timeout %u ms",
                  (unsigned long long) since_stop, dead_ms);
    fx_fini(&fx);
}

Test(transport, connect_refused_is_reported_through_on_close, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx);
    ls_conn_opts_t so = base_opts(), co = base_opts();
    so.insecure_plaintext = co.insecure_plaintext = true;
    cr_assert_eq(ls_listener_start(&fx.loop, "127.0.0.1", 0, &so, on_accept, &fx, &fx.l), 0);
    int port = ls_listener_port(fx.l);
    ls_listener_close(fx.l, NULL);
    fx.l = NULL;
    uv_run(&fx.loop, UV_RUN_NOWAIT);
    co.data = &fx.cli;
    co.bind_addr = "127.0.0.1";
    cr_assert_eq(ls_conn_connect(&fx.loop, "127.0.0.1", port, &co, &fx.cli.c), 0);
    cr_assert(run_until(&fx, cli_closed, 5000));
    cr_assert_eq(fx.cli.status, LS_ECONNREFUSED, "%s", fx.cli.msg);
    fx_fini(&fx);
}
