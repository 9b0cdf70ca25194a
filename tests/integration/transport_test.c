/*
 * transport over real loopback sockets: mutual TLS and its refusals, compression, flow control,
 * the plaintext checksum, and heartbeat death of a stopped peer process.
 *
 * Each test runs its own libuv loop; conditions are waited for with a deadline (run_until), never
 * with a fixed sleep. Certificates are made at test time in a scratch directory, with the
 * `logship certs` command for the main CA and the C API for the foreign one.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/core.h"
#include "harness.h"
#include "proto/proto.h"
#include "transport/certs.h"
#include "transport/internal.h" /* white box: the socket options test */
#include "transport/transport.h"

#define MiB (1024u * 1024u)
#define MS  1000000ull

typedef struct side {
    ls_conn_t *c;              /* the connection, NULL once closed */
    bool ready;                /* on_ready ran */
    bool closed;               /* on_close ran */
    int status;                /* on_close status */
    char msg[LS_CONN_MSG_MAX]; /* on_close message */
    ls_conn_stats_t final;     /* stats at close */
    bool pause_on_ready;       /* pause reading as soon as ready */
    int zstd_level;            /* compression to turn on at ready (0: none) */
    uint64_t frames;           /* data frames received */
    uint64_t bytes;            /* body bytes received */
    uint64_t hash;             /* running hash of bodies received */
    /* sender */
    uint64_t to_send;   /* body bytes still to send */
    uint32_t frame;     /* body bytes per frame */
    uint64_t sent;      /* body bytes accepted by ls_conn_send */
    uint64_t sent_hash; /* running hash of bodies accepted */
    uint64_t offered;   /* body bytes offered, refusals included */
    uint64_t refused;   /* LS_EBUSY answers */
    uint64_t rng;       /* log-line generator state */
    uint8_t *buf;       /* body scratch */
    bool send_raw;      /* compress bodies here (as a worker would) and use ls_conn_send_raw */
    ls_zbody_t *zb;     /* codec for send_raw and for frames delivered compressed */
    uint8_t *zbuf;      /* compressed / decompressed scratch */
    uint64_t zframes;   /* frames delivered still compressed */
    bool cut_expected;  /* the stream gets damaged on the way: a send may find it closed */
    bool pieces;        /* send each body in pieces of uneven sizes (ls_conn_sendv) */
    uint64_t nsends;    /* frames sent, rotates the pieces' sizes */
} side_t;

typedef struct {
    uv_loop_t loop;   /* the test's loop */
    uv_timer_t tick;  /* 1 ms: drives senders, bounds run_until's waits */
    char *dir;        /* scratch directory with the certificates */
    ls_listener_t *l; /* server */
    side_t srv, cli;  /* both ends */
    size_t rss_max;   /* highest RSS seen by tick, bytes */
} fx_t;

/* ---- helpers --------------------------------------------------------------------------- */
static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2) res = 0;
        fclose(f);
    }
    return res * (size_t) sysconf(_SC_PAGESIZE);
}

static uint64_t xs(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Fills buf with len bytes of log-like lines. */
static void log_lines(uint64_t *rng, uint8_t *buf, size_t len)
{
    static const char *lvl[] = {"INFO ", "DEBUG", "WARN "};
    size_t off = 0;
    while (off < len) {
        char line[200];
        uint64_t r = xs(rng);
        int n = snprintf(
            line, sizeof(line),
            "2026-11-21T20:%02u:%02u.%06uZ %s [copier] db=db-%02u gen=%llu shipped "
            "%u bytes to target-%u in %u.%03u ms lsn=%llu\n",
            (unsigned) (r % 60), (unsigned) (r >> 8) % 60, (unsigned) (r >> 16) % 1000000,
            lvl[(r >> 40) % 3], (unsigned) (r >> 42) % 16, (unsigned long long) (r >> 20) % 100000,
            (unsigned) (r >> 24) % 1048576, (unsigned) (r >> 50) % 4, (unsigned) (r >> 33) % 40,
            (unsigned) (r >> 3) % 1000, (unsigned long long) (r >> 12));
        size_t k = LS_MIN((size_t) n, len - off);
        memcpy(buf + off, line, k);
        off += k;
    }
}

static void send_some(side_t *s)
{
    while (s->c && s->ready && s->to_send > 0) {
        uint32_t len = (uint32_t) LS_MIN((uint64_t) s->frame, s->to_send);
        log_lines(&s->rng, s->buf, len);
        s->offered += len;
        int rc;
        if (s->send_raw) {
            size_t zlen;
            cr_assert_eq(ls_zbody_compress(s->zb, s->buf, len, s->zbuf, LS_FRAME_MAX_BODY, &zlen),
                         0);
            cr_assert_gt(zlen, 0);
            rc = ls_conn_send_raw(s->c, LS_FRAME_GEN_DATA, s->zbuf, zlen);
        } else if (s->pieces) { /* around and across TLS record boundaries (16 KiB) */
            static const size_t sizes[] = {1, 16371, 5, 16384, 0, 40000, 3, 16383, 70000, 12};
            struct iovec iov[32];
            int n = 0;
            for (size_t off = 0, k = s->nsends++; off < len && n < 31; k++, n++) {
                size_t piece = LS_MIN(sizes[k % 10], len - off);
                iov[n] = (struct iovec){s->buf + off, piece};
                off += piece;
                if (off < len && n == 30) iov[++n] = (struct iovec){s->buf + off, len - off};
            }
            rc = ls_conn_sendv(s->c, LS_FRAME_GEN_DATA, iov, n);
        } else {
            rc = ls_conn_send(s->c, LS_FRAME_GEN_DATA, s->buf, len);
        }
        if (rc == LS_EBUSY) {
            s->refused++;
            return;
        }
        if (s->cut_expected && (rc == LS_ECONNRESET || rc == LS_ECLOSED)) return;
        cr_assert_eq(rc, 0, "send: %s", ls_strerror(rc));
        s->sent += len;
        s->sent_hash = ls_hash64(s->buf, len, s->sent_hash);
        s->to_send -= len;
    }
}

static void on_ready(ls_conn_t *c)
{
    side_t *s = ls_conn_data(c);
    s->ready = true;
    if (s->zstd_level) cr_assert_eq(ls_conn_set_compression(c, s->zstd_level), 0);
    if (s->pause_on_ready) ls_conn_pause(c);
}

static void on_frame(ls_conn_t *c, const ls_conn_frame_t *f)
{
    side_t *s = ls_conn_data(c);
    cr_assert_eq(f->type, LS_FRAME_GEN_DATA);
    cr_assert_eq(ls_get32(f->bytes), f->body_len, "header rewritten to the decoded body");
    const uint8_t *body = f->body;
    size_t len = f->body_len;
    if (f->flags & LS_FRAME_FLAG_ZSTD) { /* deliver_compressed: decompress "off the loop" */
        cr_assert_not_null(s->zb, "compressed frame without deliver_compressed");
        cr_assert_eq(
            ls_zbody_decompress(s->zb, f->body, f->body_len, s->zbuf, LS_FRAME_MAX_BODY, &len), 0);
        body = s->zbuf;
        s->zframes++;
    }
    s->frames++;
    s->bytes += len;
    s->hash = ls_hash64(body, len, s->hash);
}

static void on_drain(ls_conn_t *c)
{
    send_some(ls_conn_data(c));
}

static void on_close(ls_conn_t *c, int status, const char *msg)
{
    side_t *s = ls_conn_data(c);
    s->closed = true;
    s->status = status;
    snprintf(s->msg, sizeof(s->msg), "%s", msg);
    ls_conn_stats(c, &s->final);
    s->c = NULL;
}

static void on_accept(ls_listener_t *l, ls_conn_t *c)
{
    fx_t *fx = ls_listener_data(l);
    cr_assert_null(fx->srv.c, "one connection per test");
    fx->srv.c = c;
    ls_conn_set_data(c, &fx->srv);
}

static void tick_cb(uv_timer_t *t)
{
    fx_t *fx = t->data;
    send_some(&fx->cli);
    send_some(&fx->srv);
    size_t r = rss_bytes();
    if (r > fx->rss_max) fx->rss_max = r;
}

static void fx_init(fx_t *fx)
{
    signal(SIGPIPE, SIG_IGN); /* as logshipd does: libuv writes with write(2) */
    memset(fx, 0, sizeof(*fx));
    cr_assert_eq(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->tick);
    fx->tick.data = fx;
    uv_timer_start(&fx->tick, tick_cb, 1, 1);
    fx->srv.buf = malloc(LS_FRAME_MAX_BODY);
    fx->cli.buf = malloc(LS_FRAME_MAX_BODY);
    fx->srv.rng = 0x9e3779b97f4a7c15ull;
    fx->cli.rng = 0xdeadbeefcafef00dull;
}

static uint64_t now_ms(void)
{
    return ls_mono_ns() / MS;
}

static bool run_until(fx_t *fx, bool (*cond)(fx_t *), int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t) timeout_ms;
    while (!cond(fx)) {
        if (now_ms() > end) return false;
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    return true;
}

static bool both_ready(fx_t *fx)
{
    return fx->srv.ready && fx->cli.ready;
}
static bool both_closed(fx_t *fx)
{
    return fx->srv.closed && fx->cli.closed;
}
static bool cli_closed(fx_t *fx)
{
    return fx->cli.closed;
}

/* Closes what is open, lets the loop finish every handle, checks none is left. */
static void fx_fini(fx_t *fx)
{
    if (fx->cli.c) ls_conn_close(fx->cli.c);
    if (fx->srv.c) ls_conn_close(fx->srv.c);
    if (fx->l) ls_listener_close(fx->l, NULL);
    uv_close((uv_handle_t *) &fx->tick, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&fx->loop), 0, "every handle closed");
    free(fx->srv.buf);
    free(fx->cli.buf);
    free(fx->srv.zbuf);
    free(fx->cli.zbuf);
    ls_zbody_free(fx->srv.zb);
    ls_zbody_free(fx->cli.zb);
    if (fx->dir) ls_h_rmtree(fx->dir);
    free(fx->dir);
}

static ls_conn_opts_t base_opts(void)
{
    ls_conn_opts_t o = {.on_ready = on_ready,
                        .on_frame = on_frame,
                        .on_drain = on_drain,
                        .on_close = on_close,
                        .heartbeat_ms = 100,
                        .dead_ms = 3000};
    return o;
}

static void start_pair(fx_t *fx, ls_conn_opts_t so, ls_conn_opts_t co)
{
    cr_assert_eq(ls_listener_start(&fx->loop, "127.0.0.1", 0, &so, on_accept, fx, &fx->l), 0);
    cr_assert_gt(ls_listener_port(fx->l), 0, "port 0 is read back");
    co.data = &fx->cli;
    int rc = ls_conn_connect(&fx->loop, "127.0.0.1", ls_listener_port(fx->l), &co, &fx->cli.c);
    cr_assert_eq(rc, 0, "connect: %s", ls_strerror(rc));
}

/* ---- certificates ---------------------------------------------------------------------- */
/* dir/ca1: source, target, mallory (the `logship certs` command); dir/ca2: source (C API). */
static void make_certs(fx_t *fx)
{
    fx->dir = ls_h_tmpdir("transport");
    char ca1[1024], ca2[1024], err[512];
    snprintf(ca1, sizeof(ca1), "%s/ca1", fx->dir);
    snprintf(ca2, sizeof(ca2), "%s/ca2", fx->dir);
    char *argv[] = {(char *) ls_h_bin("logship"),
                    "certs",
                    ca1,
                    "--ca",
                    "--node",
                    "source",
                    "--node",
                    "target",
                    "--node",
                    "mallory",
                    NULL};
    char *out = NULL, *errs = NULL;
    int st = ls_h_run(argv, &out, &errs, 20000);
    cr_assert_eq(st, 0, "logship certs: %s", errs);
    free(out);
    free(errs);
    cr_assert_eq(ls_certs_make_ca(ca2, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ls_certs_make_node(ca2, "source", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ls_certs_make_node(ca2, "source", err, sizeof(err)), LS_EEXIST);
    cr_assert_eq(ls_certs_make_node(ca2, "bad name!", err, sizeof(err)), LS_EINVAL);
}

/* A context trusting ca_dir's CA and presenting cert_dir/name (name NULL: no certificate). */
static ls_tls_ctx_t *ctx(fx_t *fx, const char *ca_dir, const char *cert_dir, const char *name)
{
    char ca[1024], crt[1024], key[1024], err[512];
    snprintf(ca, sizeof(ca), "%s/%s/ca.pem", fx->dir, ca_dir);
    snprintf(crt, sizeof(crt), "%s/%s/%s.pem", fx->dir, cert_dir, name ? name : "");
    snprintf(key, sizeof(key), "%s/%s/%s.key", fx->dir, cert_dir, name ? name : "");
    ls_tls_opts_t o = {.ca_file = ca, .cert_file = name ? crt : NULL, .key_file = key};
    ls_tls_ctx_t *t = NULL;
    int rc = ls_tls_ctx_new(&o, &t, err, sizeof(err));
    cr_assert_eq(rc, 0, "tls ctx: %s", err);
    return t;
}

/* Starts a TLS pair: server "target" expecting "source"; client as given expecting target. */
static void tls_pair(fx_t *fx, ls_tls_ctx_t *cli_ctx, const char *srv_expects)
{
    ls_tls_ctx_t *srv_ctx = ctx(fx, "ca1", "ca1", "target");
    ls_conn_opts_t so = base_opts(), co = base_opts();
    so.tls = srv_ctx;
    so.peer_name = srv_expects;
    co.tls = cli_ctx;
    co.peer_name = "target";
    start_pair(fx, so, co);
    ls_tls_ctx_free(srv_ctx); /* connections and listener keep their own references */
    ls_tls_ctx_free(cli_ctx);
}

/* The usual pair: both ends under ca1, the client "source", the server "target"; returns once
 * both are ready (what the test set in fx->cli and fx->srv before applies). */
static void tls_pair_ready(fx_t *fx)
{
    tls_pair(fx, ctx(fx, "ca1", "ca1", "source"), "source");
    cr_assert(run_until(fx, both_ready, 10000), "handshake: srv '%s' cli '%s'", fx->srv.msg,
              fx->cli.msg);
}

/* ---- log capture, to check that refusals are logged ------------------------------------- */
/* What the transport logs, through the library's log handler (logship/log.h): the lines are
 * kept in memory while a capture runs. */
typedef struct {
    pthread_mutex_t mu;
    char *text; /* every message, one per line */
    size_t len;
} cap_t;

static void cap_log(void *ctx, ls_log_level_t level, const char *component, const char *msg)
{
    cap_t *cap = ctx;
    pthread_mutex_lock(&cap->mu);
    size_t add = strlen(component) + strlen(msg) + 16;
    cap->text = realloc(cap->text, cap->len + add);
    cr_assert_not_null(cap->text);
    cap->len += (size_t) snprintf(cap->text + cap->len, add, "%s [%s] %s\n",
                                  ls_log_level_name(level), component, msg);
    pthread_mutex_unlock(&cap->mu);
}

static void cap_start(cap_t *cap)
{
    memset(cap, 0, sizeof(*cap));
    pthread_mutex_init(&cap->mu, NULL);
    cap->text = calloc(1, 1);
    ls_log_set_handler(cap_log, cap);
}

/* Stops capturing; returns the text (the caller frees it). */
static char *cap_stop(cap_t *cap)
{
    ls_log_set_handler(NULL, NULL);
    pthread_mutex_destroy(&cap->mu);
    return cap->text;
}

/* ---- TLS ----------------------------------------------------------------------------------- */
static bool exchanged(fx_t *fx)
{
    return fx->srv.bytes == fx->cli.sent && fx->cli.bytes == fx->srv.sent && fx->cli.to_send == 0 &&
           fx->srv.to_send == 0;
}
static bool rtt_known(fx_t *fx)
{
    ls_conn_stats_t a, b;
    ls_conn_stats(fx->cli.c, &a);
    ls_conn_stats(fx->srv.c, &b);
    return a.rtt_last_ns > 0 && b.rtt_last_ns > 0;
}

Test(transport, mutual_tls_frames_flow_both_ways, .timeout = 30)
{
    fx_t fx;
    fx_init(&fx);
    make_certs(&fx);
    tls_pair_ready(&fx);
    cr_assert(ls_conn_is_tls(fx.cli.c) && ls_conn_is_tls(fx.srv.c));
    cr_assert_str_eq(ls_conn_peer_name(fx.cli.c), "target");
    cr_assert_str_eq(ls_conn_peer_name(fx.srv.c), "source");
    cr_assert(ls_h_contains(ls_conn_peer(fx.srv.c), "127.0.0.1:"));
    /* our preference, AES-128-GCM (docs/TLS.md, "Suite"), on both ends */
    cr_assert_str_eq(SSL_CIPHER_standard_name(SSL_get_current_cipher(fx.cli.c->ssl)),
                     "TLS_AES_128_GCM_SHA256");
    cr_assert_str_eq(SSL_CIPHER_standard_name(SSL_get_current_cipher(fx.srv.c->ssl)),
                     "TLS_AES_128_GCM_SHA256");
    fx.cli.frame = fx.srv.frame = 70000;
    fx.cli.to_send = fx.srv.to_send = 3 * MiB;
    cr_assert(run_until(&fx, exchanged, 20000), "exchange: %llu/%llu %llu/%llu",
              (unsigned long long) fx.srv.bytes, (unsigned long long) fx.cli.sent,
              (unsigned long long) fx.cli.bytes, (unsigned long long) fx.srv.sent);
    cr_assert_eq(fx.srv.hash, fx.cli.sent_hash, "client -> server bytes identical");
    cr_assert_eq(fx.cli.hash, fx.srv.sent_hash, "server -> client bytes identical");
    cr_assert(run_until(&fx, rtt_known, 5000), "heartbeats measure the round trip");
    ls_conn_stats_t st;
    ls_conn_stats(fx.cli.c, &st);
    cr_assert_lt(st.rtt_smoothed_ns, 1000 * MS, "loopback RTT is small");
    cr_assert_lt(llabs(st.clock_offset_ns), (long long) (100 * MS), "same clock: offset %lld ns",
                 (long long) st.clock_offset_ns);
    ls_conn_close(fx.cli.c);
    cr_assert(run_until(&fx, both_closed, 5000));
    cr_assert_eq(fx.cli.status, 0);
    cr_assert_eq(fx.srv.status, LS_ECONNRESET, "the server sees the client leave: %s", fx.srv.msg);
    fx_fini(&fx);
}

/* Frames handed over in pieces of uneven sizes, around and across TLS record boundaries, arrive
 * whole and in order (sent at once, gathered into tx; or queued, copied into the frame queue). */
Test(transport, tls_frames_from_pieces, .timeout = 30)
{
    fx_t fx;
    fx_init(&fx);
    make_certs(&fx);
    tls_pair_ready(&fx);
    fx.cli.pieces = fx.srv.pieces = true;
    fx.cli.frame = 200001; /* the last frame is shorter: every rotation of the sizes is seen */
    fx.srv.frame = 16384;
    fx.cli.to_send = 6 * MiB;
    fx.srv.to_send = 1 * MiB;
    cr_assert(run_until(&fx, exchanged, 20000), "exchange: %llu/%llu %llu/%llu",
              (unsigned long long) fx.srv.bytes, (unsigned long long) fx.cli.sent,
              (unsigned long long) fx.cli.bytes, (unsigned long long) fx.srv.sent);
    cr_assert_eq(fx.srv.hash, fx.cli.sent_hash, "client -> server bytes identical");
    cr_assert_eq(fx.cli.hash, fx.srv.sent_hash, "server -> client bytes identical");
    cr_assert_eq(fx.srv.frames, (6 * MiB + 200000) / 200001, "one frame per send");
    ls_conn_close(fx.cli.c);
    cr_assert(run_until(&fx, both_closed, 5000));
    fx_fini(&fx);
}

/* A peer that offers only AES-256-GCM (OpenSSL's default first choice) or only ChaCha20-Poly1305
 * still connects: the other suites stay allowed. */
static void other_suite(const char *suite)
{
    fx_t fx;
    fx_init(&fx);
    make_certs(&fx);
    ls_tls_ctx_t *cli = ctx(&fx, "ca1", "ca1", "source");
    cr_assert_eq(SSL_CTX_set_ciphersuites(cli->ssl_ctx, suite), 1);
    tls_pair(&fx, cli, "source");
    cr_assert(run_until(&fx, both_ready, 10000), "handshake: srv '%s' cli '%s'", fx.srv.msg,
              fx.cli.msg);
    cr_assert_str_eq(SSL_CIPHER_standard_name(SSL_get_current_cipher(fx.srv.c->ssl)), suite);
    fx.cli.frame = fx.srv.frame = 70000;
    fx.cli.to_send = fx.srv.to_send = 1 * MiB;
    cr_assert(run_until(&fx, exchanged, 20000), "exchange with %s", suite);
    cr_assert_eq(fx.srv.hash, fx.cli.sent_hash, "client -> server bytes identical");
    cr_assert_eq(fx.cli.hash, fx.srv.sent_hash, "server -> client bytes identical");
    ls_conn_close(fx.cli.c);
    cr_assert(run_until(&fx, both_closed, 5000));
    fx_fini(&fx);
}

Test(transport, tls_other_suites_allowed, .timeout = 30)
{
    other_suite("TLS_AES_256_GCM_SHA384");
    other_suite("TLS_CHACHA20_POLY1305_SHA256");
}

/* Runs a pair whose client presents cli_ctx; expects the server (and the client) to refuse. */
static void expect_refusal(fx_t *fx, ls_tls_ctx_t *cli_ctx, const char *srv_expects,
                           const char *srv_reason)
{
    cap_t cap;
    cap_start(&cap);
    tls_pair(fx, cli_ctx, srv_expects);
    bool done = run_until(fx, both_closed, 10000);
    char *log = cap_stop(&cap);
    cr_assert(done, "both sides close: srv '%s' cli '%s'", fx->srv.msg, fx->cli.msg);
    cr_assert(!fx->cli.ready, "the refused client never became ready");
    cr_assert(!fx->srv.ready, "the server never accepted it");
    cr_assert_eq(fx->srv.status, LS_EAUTH, "server: %s (%s)", fx->srv.msg,
                 ls_err_name(fx->srv.status));
    cr_assert(ls_h_contains(fx->srv.msg, srv_reason), "server reason: %s", fx->srv.msg);
    cr_assert(ls_h_contains(fx->srv.msg, "127.0.0.1:"), "names the peer: %s", fx->srv.msg);
    cr_assert(fx->cli.status == LS_EAUTH || fx->cli.status == LS_ECONNRESET, "client: %s",
              fx->cli.msg);
    cr_assert(ls_h_contains(log, srv_reason), "logged: %s", log);
    free(log);
}

Test(transport, refuses_certificate_from_another_ca, .timeout = 30)
{
    fx_t fx;
    fx_init(&fx);
    make_certs(&fx);
    /* trusts ca1 (so it would accept the server) but presents a ca2 certificate */
    expect_refusal(&fx, ctx(&fx, "ca1", "ca2", "source"), "source", "unable to get local issuer");
    cr_assert(ls_h_contains(fx.cli.msg, "refused us"), "client learns why: %s", fx.cli.msg);
    fx_fini(&fx);
}

Test(transport, refuses_peer_without_certificate, .timeout = 30)
{
    fx_t fx;
    fx_init(&fx);
    make_certs(&fx);
    expect_refusal(&fx, ctx(&fx, "ca1", "ca1", NULL), "source", "presented no certificate");
    fx_fini(&fx);
}

Test(transport, refuses_certificate_with_wrong_name, .timeout = 30)
{
    fx_t fx;
    fx_init(&fx);
    make_certs(&fx);
    expect_refusal(&fx, ctx(&fx, "ca1", "ca1", "mallory"), "source", "ostname mismatch");
    fx_fini(&fx);
}

/* A listener that serves many sources defers the name to the HELLO: it takes any certificate
 * of its CA (the layer above then checks the announced name), and still refuses other CAs. */
Test(transport, listener_without_expected_name_still_requires_its_ca, .timeout = 30)
{
    fx_t fx;
    fx_init(&fx);
    make_certs(&fx);
    tls_pair(&fx, ctx(&fx, "ca1", "ca1", "mallory"), NULL);
    cr_assert(run_until(&fx, both_ready, 10000), "srv '%s' cli '%s'", fx.srv.msg, fx.cli.msg);
    cr_assert_null(ls_conn_peer_name(fx.srv.c), "no name was checked yet");
    cr_assert(ls_conn_peer_matches(fx.srv.c, "mallory"), "the name HELLO would announce");
    cr_assert(!ls_conn_peer_matches(fx.srv.c, "source"), "a name the certificate lacks");
    cr_assert(!ls_conn_peer_matches(fx.srv.c, "mallor"));
    cr_assert(ls_conn_is_tls(fx.srv.c));
    fx_fini(&fx);

    fx_init(&fx);
    make_certs(&fx);
    expect_refusal(&fx, ctx(&fx, "ca1", "ca2", "source"), NULL, "unable to get local issuer");
    fx_fini(&fx);
}

Test(transport, client_refuses_server_with_wrong_name, .timeout = 30)
{
    fx_t fx;
    fx_init(&fx);
    make_certs(&fx);
    ls_tls_ctx_t *srv_ctx = ctx(&fx, "ca1", "ca1", "mallory");
    ls_tls_ctx_t *cli_ctx = ctx(&fx, "ca1", "ca1", "source");
    ls_conn_opts_t so = base_opts(), co = base_opts();
    so.tls = srv_ctx;
    so.peer_name = "source";
    co.tls = cli_ctx;
    co.peer_name = "target";
    start_pair(&fx, so, co);
    ls_tls_ctx_free(srv_ctx);
    ls_tls_ctx_free(cli_ctx);
    cr_assert(run_until(&fx, both_closed, 10000));
    cr_assert(!fx.cli.ready);
    cr_assert_eq(fx.cli.status, LS_EAUTH, "client: %s", fx.cli.msg);
    cr_assert(ls_h_contains(fx.cli.msg, "ostname mismatch"), "%s", fx.cli.msg);
    cr_assert(ls_h_contains(fx.cli.msg, "expected target"), "%s", fx.cli.msg);
    fx_fini(&fx);
}

/* A misconfiguration: a TLS client against a plaintext listener. Both sides fail with a reason
 * instead of hanging or misreading bytes. */
Test(transport, tls_client_against_plaintext_server_fails_cleanly, .timeout = 30)
{
    fx_t fx;
    fx_init(&fx);
    make_certs(&fx);
    ls_conn_opts_t so = base_opts(), co = base_opts();
    so.insecure_plaintext = true;
    co.tls = ctx(&fx, "ca1", "ca1", "source");
    co.peer_name = "target";
    start_pair(&fx, so, co);
    ls_tls_ctx_free(co.tls);
    cr_assert(run_until(&fx, both_closed, 10000), "srv '%s' cli '%s'", fx.srv.msg, fx.cli.msg);
    cr_assert(!fx.cli.ready);
    cr_assert(fx.srv.status == LS_EPROTO || fx.srv.status == LS_EFRAMETOOBIG ||
                  fx.srv.status == LS_ECONNRESET,
              "server: %s (%s)", fx.srv.msg, ls_err_name(fx.srv.status));
    cr_assert(fx.cli.status == LS_ETLS || fx.cli.status == LS_ECONNRESET, "client: %s (%s)",
              fx.cli.msg, ls_err_name(fx.cli.status));
    fx_fini(&fx);
}

Test(transport, plaintext_only_when_asked_for, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx);
    ls_conn_opts_t o = base_opts();
    ls_conn_t *c = NULL;
    cr_assert_eq(ls_conn_connect(&fx.loop, "127.0.0.1", 9, &o, &c), LS_EINVAL,
                 "neither TLS nor insecure_plaintext");
    o.insecure_plaintext = true;
    cr_assert_eq(ls_conn_connect(&fx.loop, "not-an-ip", 9, &o, &c), LS_EINVAL);
    cr_assert_null(c, "a failed call hands nothing out");
    fx_fini(&fx);
}

Test(transport, address_errors_are_logship_codes_with_their_own_words, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx);
    ls_conn_opts_t o = base_opts();
    o.insecure_plaintext = true;
    ls_listener_t *a = NULL, *b = NULL;
    cr_assert_eq(ls_listener_start(&fx.loop, "127.0.0.1", 0, &o, NULL, NULL, &a), 0);
    int rc = ls_listener_start(&fx.loop, "127.0.0.1", ls_listener_port(a), &o, NULL, NULL, &b);
    cr_assert_eq(rc, LS_EADDRINUSE, "a second listener on the port: %s", ls_err_name(rc));
    cr_assert_str_eq(ls_strerror(rc), "address already in use");
    cr_assert(ls_err_is_transient(rc), "the port may be freed: retrying can succeed");
    /* 192.0.2.1 (TEST-NET-1) is on no interface of this host: binding to it is refused at once,
     * no packet is sent. */
    o.bind_addr = "192.0.2.1";
    ls_conn_t *c = NULL;
    rc = ls_conn_connect(&fx.loop, "127.0.0.1", ls_listener_port(a), &o, &c);
    cr_assert_eq(rc, LS_EADDRNOTAVAIL, "bind to a foreign address: %s", ls_err_name(rc));
    cr_assert_null(c, "a failed call hands nothing out");
    ls_listener_close(a, NULL);
    fx_fini(&fx);
}

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
