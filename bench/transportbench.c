/*
 * transportbench: the transport alone over loopback, the way the daemons use it for GEN_DATA:
 * frames of one 1 MiB chunk (+ 16 bytes of fields) sent as fast as send_hwm allows, TLS 1.3 with
 * mutual authentication or plain TCP with checksums. Sender and receiver run on their own loop
 * threads in one process, so the figure is the stream's own cost on two cores (no disk, no
 * copy store). Prints MB/s and each side's CPU per MiB (its thread's clock).
 *
 *   transportbench [tls|plain] [MiB] [rounds]     (defaults: tls 256 5)
 *
 * The certificates are made with the C API in a scratch directory, removed at the end.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "core/core.h"
#include "proto/proto.h"
#include "transport/certs.h"
#include "transport/transport.h"

#define CHUNK (1024u * 1024u + 16u) /* one GEN_DATA body: fields + 1 MiB */

typedef struct {
    uv_loop_t loop;
    uv_async_t stop;
    ls_conn_t *conn;
    ls_listener_t *listener;
    uint64_t cpu_start_ns, cpu_end_ns;
} side_t;

static ls_tls_ctx_t *g_tls_a, *g_tls_b; /* sender node-a, receiver node-b */
static bool g_plain;
static uint64_t g_frames; /* frames to send */
static uint64_t g_sent, g_recv;
static uint64_t g_t0, g_t1;
static uint8_t *g_body;
static side_t g_snd, g_rcv;
static int g_port;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static bool g_listening;

static uint64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static void pump(ls_conn_t *c)
{
    while (g_sent < g_frames) {
        int rc = ls_conn_send(c, LS_FRAME_GEN_DATA, g_body, CHUNK);
        if (rc == LS_EBUSY) return;
        if (rc) {
            fprintf(stderr, "transportbench: send: %s\n", ls_err_name(rc));
            exit(1);
        }
        g_sent++;
    }
}

static void snd_ready(ls_conn_t *c)
{
    g_snd.cpu_start_ns = now_ns(CLOCK_THREAD_CPUTIME_ID);
    g_t0 = now_ns(CLOCK_MONOTONIC);
    pump(c);
}

static void snd_frame(ls_conn_t *c, const ls_conn_frame_t *f)
{
    (void) f; /* the receiver's "done" */
    g_snd.cpu_end_ns = now_ns(CLOCK_THREAD_CPUTIME_ID);
    ls_conn_close(c);
}

static void snd_close(ls_conn_t *c, int status, const char *msg)
{
    (void) c;
    if (status) fprintf(stderr, "transportbench: sender closed: %s\n", msg);
}

static void rcv_ready(ls_conn_t *c)
{
    (void) c;
    g_rcv.cpu_start_ns = now_ns(CLOCK_THREAD_CPUTIME_ID);
}

static void rcv_frame(ls_conn_t *c, const ls_conn_frame_t *f)
{
    if (f->type != LS_FRAME_GEN_DATA || f->body_len != CHUNK) {
        fprintf(stderr, "transportbench: unexpected frame (type %u, %u bytes)\n", f->type,
                f->body_len);
        exit(1);
    }
    if (++g_recv == g_frames) {
        g_t1 = now_ns(CLOCK_MONOTONIC);
        g_rcv.cpu_end_ns = now_ns(CLOCK_THREAD_CPUTIME_ID);
        uint8_t done = 1;
        ls_conn_send(c, LS_FRAME_CREDIT, &done, 1);
    }
}

static void rcv_close(ls_conn_t *c, int status, const char *msg)
{
    (void) c;
    if (status && status != LS_ECONNRESET) fprintf(stderr, "transportbench: receiver: %s\n", msg);
    ls_listener_close(g_rcv.listener, NULL);
    uv_close((uv_handle_t *) &g_rcv.stop, NULL);
}

static void rcv_accept(ls_listener_t *l, ls_conn_t *c)
{
    (void) l;
    g_rcv.conn = c;
}

static ls_conn_opts_t opts(bool client)
{
    ls_conn_opts_t o = {.tls = g_plain ? NULL : (client ? g_tls_a : g_tls_b),
                        .insecure_plaintext = g_plain,
                        .peer_name = g_plain ? NULL : (client ? "node-b" : "node-a"),
                        .on_ready = client ? snd_ready : rcv_ready,
                        .on_frame = client ? snd_frame : rcv_frame,
                        .on_drain = client ? pump : NULL,
                        .on_close = client ? snd_close : rcv_close};
    return o;
}

static void *rcv_main(void *arg)
{
    (void) arg;
    ls_conn_opts_t o = opts(false);
    int rc = ls_listener_start(&g_rcv.loop, "127.0.0.1", 0, &o, rcv_accept, NULL, &g_rcv.listener);
    if (rc) {
        fprintf(stderr, "transportbench: listen: %s\n", ls_err_name(rc));
        exit(1);
    }
    pthread_mutex_lock(&g_mu);
    g_port = ls_listener_port(g_rcv.listener);
    g_listening = true;
    pthread_cond_signal(&g_cv);
    pthread_mutex_unlock(&g_mu);
    uv_run(&g_rcv.loop, UV_RUN_DEFAULT);
    return NULL;
}

static void run_round(double *mbs, double *snd_ms, double *rcv_ms)
{
    memset(&g_snd, 0, sizeof(g_snd));
    memset(&g_rcv, 0, sizeof(g_rcv));
    g_sent = g_recv = 0;
    g_listening = false;
    uv_loop_init(&g_snd.loop);
    uv_loop_init(&g_rcv.loop);
    uv_async_init(&g_rcv.loop, &g_rcv.stop, NULL);
    pthread_t t;
    pthread_create(&t, NULL, rcv_main, NULL);
    pthread_mutex_lock(&g_mu);
    while (!g_listening)
        pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
    ls_conn_opts_t o = opts(true);
    int rc = ls_conn_connect(&g_snd.loop, "127.0.0.1", g_port, &o, &g_snd.conn);
    if (rc) {
        fprintf(stderr, "transportbench: connect: %s\n", ls_err_name(rc));
        exit(1);
    }
    uv_run(&g_snd.loop, UV_RUN_DEFAULT);
    pthread_join(t, NULL);
    uv_loop_close(&g_snd.loop);
    uv_loop_close(&g_rcv.loop);
    if (g_recv != g_frames) {
        fprintf(stderr, "transportbench: %llu of %llu frames arrived\n",
                (unsigned long long) g_recv, (unsigned long long) g_frames);
        exit(1);
    }
    double mib = (double) g_frames * CHUNK / (1024.0 * 1024.0);
    *mbs = (double) g_frames * CHUNK / ((double) (g_t1 - g_t0) / 1e9) / 1e6;
    *snd_ms = (double) (g_snd.cpu_end_ns - g_snd.cpu_start_ns) / 1e6 / mib;
    *rcv_ms = (double) (g_rcv.cpu_end_ns - g_rcv.cpu_start_ns) / 1e6 / mib;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "tls";
    unsigned mib = argc > 2 ? (unsigned) atoi(argv[2]) : 256;
    int rounds = argc > 3 ? atoi(argv[3]) : 5;
    if ((strcmp(mode, "tls") && strcmp(mode, "plain")) || mib == 0 || rounds < 1 || rounds > 50) {
        fprintf(stderr, "usage: transportbench [tls|plain] [MiB] [rounds]\n");
        return 2;
    }
    g_plain = !strcmp(mode, "plain");
    g_frames = mib;
    g_body = malloc(CHUNK);
    for (size_t i = 0; i < CHUNK; i++)
        g_body[i] = (uint8_t) (i * 2654435761u >> 13);
    char dir[] = "/tmp/transportbench-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char err[512], ca[600], crt[600], key[600];
    if (!g_plain) {
        if (ls_certs_make_ca(dir, err, sizeof(err)) ||
            ls_certs_make_node(dir, "node-a", err, sizeof(err)) ||
            ls_certs_make_node(dir, "node-b", err, sizeof(err))) {
            fprintf(stderr, "transportbench: certs: %s\n", err);
            return 1;
        }
        snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
        snprintf(crt, sizeof(crt), "%s/node-a.pem", dir);
        snprintf(key, sizeof(key), "%s/node-a.key", dir);
    }
    double mbs[50], sms[50], rms[50];
    if (!g_plain) {
        char crtb[600], keyb[600];
        snprintf(crtb, sizeof(crtb), "%s/node-b.pem", dir);
        snprintf(keyb, sizeof(keyb), "%s/node-b.key", dir);
        ls_tls_opts_t oa = {.ca_file = ca, .cert_file = crt, .key_file = key};
        ls_tls_opts_t ob = {.ca_file = ca, .cert_file = crtb, .key_file = keyb};
        if (ls_tls_ctx_new(&oa, &g_tls_a, err, sizeof(err)) ||
            ls_tls_ctx_new(&ob, &g_tls_b, err, sizeof(err))) {
            fprintf(stderr, "transportbench: TLS context: %s\n", err);
            return 1;
        }
    }
    for (int r = 0; r < rounds; r++) {
        run_round(&mbs[r], &sms[r], &rms[r]);
        printf("round %d: %s %u MiB: %.0f MB/s, sender %.3f ms CPU/MiB, receiver %.3f ms "
               "CPU/MiB\n",
               r + 1, mode, mib, mbs[r], sms[r], rms[r]);
        fflush(stdout);
    }
    ls_tls_ctx_free(g_tls_a);
    ls_tls_ctx_free(g_tls_b);
    qsort(mbs, (size_t) rounds, sizeof(double), cmp);
    qsort(sms, (size_t) rounds, sizeof(double), cmp);
    qsort(rms, (size_t) rounds, sizeof(double), cmp);
    printf("median: %s %.0f MB/s (%.0f-%.0f), sender %.3f ms CPU/MiB, receiver %.3f ms CPU/MiB\n",
           mode, mbs[rounds / 2], mbs[0], mbs[rounds - 1], sms[rounds / 2], rms[rounds / 2]);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "transportbench: could not remove %s\n", dir);
    free(g_body);
    return 0;
}
