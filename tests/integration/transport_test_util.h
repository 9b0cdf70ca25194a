/*
 * Helpers shared by the transport tests over real loopback sockets (transport_test.c: mutual TLS
 * and its refusals; transport_flow_test.c: compression and flow control; transport_damage_test.c:
 * the plaintext checksum, damaged TLS records and heartbeat death of a stopped peer process): the
 * two-sided fixture (fx_t) with its libuv loop, callbacks and run_until, the certificates, and the
 * log capture. Static functions: each test program includes this once.
 *
 * Each test runs its own libuv loop; conditions are waited for with a deadline (run_until), never
 * with a fixed sleep. Certificates are made at test time in a scratch directory, with the
 * `logship certs` command for the main CA and the C API for the foreign one.
 */
#ifndef LS_TRANSPORT_TEST_UTIL_H
#define LS_TRANSPORT_TEST_UTIL_H

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

/* helpers a test program may leave unused */
#define UTIL static __attribute__((unused))

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
UTIL size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2) res = 0;
        fclose(f);
    }
    return res * (size_t) sysconf(_SC_PAGESIZE);
}

UTIL uint64_t xs(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Fills buf with len bytes of log-like lines. */
UTIL void log_lines(uint64_t *rng, uint8_t *buf, size_t len)
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

UTIL void send_some(side_t *s)
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

UTIL void on_ready(ls_conn_t *c)
{
    side_t *s = ls_conn_data(c);
    s->ready = true;
    if (s->zstd_level) cr_assert_eq(ls_conn_set_compression(c, s->zstd_level), 0);
    if (s->pause_on_ready) ls_conn_pause(c);
}

UTIL void on_frame(ls_conn_t *c, const ls_conn_frame_t *f)
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

UTIL void on_drain(ls_conn_t *c)
{
    send_some(ls_conn_data(c));
}

UTIL void on_close(ls_conn_t *c, int status, const char *msg)
{
    side_t *s = ls_conn_data(c);
    s->closed = true;
    s->status = status;
    snprintf(s->msg, sizeof(s->msg), "%s", msg);
    ls_conn_stats(c, &s->final);
    s->c = NULL;
}

UTIL void on_accept(ls_listener_t *l, ls_conn_t *c)
{
    fx_t *fx = ls_listener_data(l);
    cr_assert_null(fx->srv.c, "one connection per test");
    fx->srv.c = c;
    ls_conn_set_data(c, &fx->srv);
}

UTIL void tick_cb(uv_timer_t *t)
{
    fx_t *fx = t->data;
    send_some(&fx->cli);
    send_some(&fx->srv);
    size_t r = rss_bytes();
    if (r > fx->rss_max) fx->rss_max = r;
}

UTIL void fx_init(fx_t *fx)
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

UTIL uint64_t now_ms(void)
{
    return ls_mono_ns() / MS;
}

UTIL bool run_until(fx_t *fx, bool (*cond)(fx_t *), int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t) timeout_ms;
    while (!cond(fx)) {
        if (now_ms() > end) return false;
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    return true;
}

UTIL bool both_ready(fx_t *fx)
{
    return fx->srv.ready && fx->cli.ready;
}
UTIL bool both_closed(fx_t *fx)
{
    return fx->srv.closed && fx->cli.closed;
}
UTIL bool cli_closed(fx_t *fx)
{
    return fx->cli.closed;
}

/* Closes what is open, lets the loop finish every handle, checks none is left. */
UTIL void fx_fini(fx_t *fx)
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

UTIL ls_conn_opts_t base_opts(void)
{
    ls_conn_opts_t o = {.on_ready = on_ready,
                        .on_frame = on_frame,
                        .on_drain = on_drain,
                        .on_close = on_close,
                        .heartbeat_ms = 100,
                        .dead_ms = 3000};
    return o;
}

UTIL void start_pair(fx_t *fx, ls_conn_opts_t so, ls_conn_opts_t co)
{
    cr_assert_eq(ls_listener_start(&fx->loop, "127.0.0.1", 0, &so, on_accept, fx, &fx->l), 0);
    cr_assert_gt(ls_listener_port(fx->l), 0, "port 0 is read back");
    co.data = &fx->cli;
    int rc = ls_conn_connect(&fx->loop, "127.0.0.1", ls_listener_port(fx->l), &co, &fx->cli.c);
    cr_assert_eq(rc, 0, "connect: %s", ls_strerror(rc));
}

/* ---- certificates ---------------------------------------------------------------------- */
/* dir/ca1: source, target, mallory (the `logship certs` command); dir/ca2: source (C API). */
UTIL void make_certs(fx_t *fx)
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
UTIL ls_tls_ctx_t *ctx(fx_t *fx, const char *ca_dir, const char *cert_dir, const char *name)
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
UTIL void tls_pair(fx_t *fx, ls_tls_ctx_t *cli_ctx, const char *srv_expects)
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
UTIL void tls_pair_ready(fx_t *fx)
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

UTIL void cap_log(void *ctx, ls_log_level_t level, const char *component, const char *msg)
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

UTIL void cap_start(cap_t *cap)
{
    memset(cap, 0, sizeof(*cap));
    pthread_mutex_init(&cap->mu, NULL);
    cap->text = calloc(1, 1);
    ls_log_set_handler(cap_log, cap);
}

/* Stops capturing; returns the text (the caller frees it). */
UTIL char *cap_stop(cap_t *cap)
{
    ls_log_set_handler(NULL, NULL);
    pthread_mutex_destroy(&cap->mu);
    return cap->text;
}

UTIL bool exchanged(fx_t *fx)
{
    return fx->srv.bytes == fx->cli.sent && fx->cli.bytes == fx->srv.sent && fx->cli.to_send == 0 &&
           fx->srv.to_send == 0;
}

#endif
