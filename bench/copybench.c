/*
 * copybench: the passive copy pipeline (engine/copy) alone, without daemons or network, for
 * profiling the receive path and the replayer (perf record, heaptrack) on a real workload.
 *
 *   copybench LOGS_DIR COPY_DIR [--hold | --serial] [--chunk BYTES] [--batch N]
 *             [--batch-bytes BYTES] [--no-group] [--idle MS] [--hashed] [--receiver US]
 *
 * LOGS_DIR holds closed generations (e.g. `logship load DIR ...`'s DIR/logs). Every generation
 * found there, from 1 on, is received into a fresh copy at COPY_DIR (which must not exist) on
 * this thread in chunks of --chunk bytes (256 KiB, the wire's frame), as the receiver thread
 * would, while the replayer runs (--hold: not started; --serial: paused until all are received,
 * to time the replay alone). As the receiver thread with a backlog queued, it lets recv_end leave
 * the fsync of logs/ to one for up to 8 generations (ls_copy_recv_defer; --no-group: one per
 * generation, as with nothing queued). Prints the time until the last one is durable, until it is
 * replayed and synced, and the process's VmHWM and peak RssAnon. --idle MS: each generation
 * is received alone, MS ms after the one before (its file already in memory), as a pick-up on
 * an idle copy; prints the median and p90 of the time from recv_begin to recv_end's return
 * (written, hashed, inspected, synced, moved into logs/ and that fsynced) and of the time in its
 * recv_data calls alone (written, hashed, inspected: the CPU part). Always printed: the
 * receiving thread's own CPU time in the ls_copy_recv_* calls (its thread clock: the file reads
 * are not in it), the figure to compare on a loaded machine. --hashed: each generation's SHA-256
 * is computed before its recv_begin, outside the timers, and the chunks go through
 * ls_copy_recv_data_hashed / ls_copy_recv_end_hashed, as the receiver thread takes them from the
 * daemon's loop (copy/receiver.c hashes on the pushing thread): the receiver thread's share.
 * --receiver US: through the daemon's hand-off instead, a receiver thread (copy/receiver.h) fed
 * from this thread as the loop feeds it, each generation alone (--idle MS, 100 by default) in the
 * active's pieces (64 KiB, 256 KiB ..., the last 64 KiB), piece k pushed at begin + k * US
 * microseconds (the wire's pace; at most as fast as this thread copies and pushes, as the loop);
 * prints the median and p90 of the time from the last push (GEN_END) to DURABLE and from
 * GEN_BEGIN to DURABLE: the pick-up's part on the passive that the two threads share.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "copy/copy.h"
#include "copy/receiver.h"
#include "core/core.h"

#define GENS_MAX 4096

static uint64_t g_synced;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;

static void on_event(void *ctx, const ls_copy_event_t *ev)
{
    (void) ctx;
    if (ev->kind != LS_COPY_EV_REPLAYED_SYNCED) return;
    pthread_mutex_lock(&g_mu);
    if (ev->generation > g_synced) g_synced = ev->generation;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static double now_s(void)
{
    return (double) ls_mono_ns() / 1e9;
}

/* This thread's CPU time, s. */
static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* kB value of a /proc/self/status field, 0 when absent. */
static long status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') v = strtol(line + n + 1, NULL, 10);
    if (f) fclose(f);
    return v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

static volatile long g_peak_anon, g_peak_file;
static volatile int g_done;

static void *sampler(void *arg)
{
    (void) arg;
    while (!g_done) {
        long a = status_kib("RssAnon");
        if (a > g_peak_anon) g_peak_anon = a;
        long f = status_kib("RssFile");
        if (f > g_peak_file) g_peak_file = f;
        usleep(10000);
    }
    return NULL;
}

/* --receiver: the receiver thread's events wake this thread. */
static pthread_mutex_t r_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t r_cv = PTHREAD_COND_INITIALIZER;
static int r_flag;

static void r_notify(void *arg)
{
    (void) arg;
    pthread_mutex_lock(&r_mu);
    r_flag = 1;
    pthread_cond_signal(&r_cv);
    pthread_mutex_unlock(&r_mu);
}

static void sleep_until(double t)
{
    double d;
    while ((d = t - now_s()) > 0)
        if (d > 0.0002) usleep((useconds_t) ((d - 0.0001) * 1e6));
}

/* Generations 1..n through a receiver thread, each alone after idle_ms, pieces paced pace_us
 * apart; prints END->durable and BEGIN->durable. 0 or 1. */
static int via_receiver(ls_copy_options_t *o, char **path, const uint32_t *epoch, uint64_t n,
                        long idle_ms, long pace_us)
{
    static double last[GENS_MAX + 1], whole[GENS_MAX + 1];
    ls_copy_rx_options_t ro = {.name = "copybench", .notify_cb = r_notify};
    ls_copy_rx_t *rx = ls_copy_rx_new(&ro);
    char err[512];
    ls_copy_t *c = NULL;
    o->event_cb = ls_copy_rx_event_cb;
    o->event_ctx = rx;
    if (!rx || ls_copy_open(o, &c, err, sizeof(err)) != 0 || ls_copy_rx_start(rx, c) != 0) {
        fprintf(stderr, "copybench: %s\n", rx ? err : "out of memory");
        return 1;
    }
    for (uint64_t g = 1; g <= n; g++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        if (ls_read_file(path[g], LS_GEN_HARD_CAP, &buf, &len) || len < LS_GEN_TRAILER_SIZE) {
            fprintf(stderr, "copybench: cannot read %s\n", path[g]);
            return 1;
        }
        uint8_t digest[LS_DIGEST_LEN]; /* the sender's */
        ls_sha256_t *h = ls_sha256_new();
        ls_sha256_update(h, buf, len - LS_GEN_TRAILER_SIZE);
        ls_sha256_final(h, digest);
        ls_sha256_free(h);
        usleep((useconds_t) (idle_ms < 0 ? 100 : idle_ms) * 1000);
        double t0 = now_s();
        ls_copy_item_t *it = ls_copy_item_new(LS_COPY_ITEM_BEGIN, 0);
        it->epoch = epoch[g];
        it->generation = g;
        it->size = len;
        ls_copy_rx_push(rx, it);
        size_t off = 0;
        for (int k = 0; off < len; k++) {
            size_t want = off == 0 || len - off <= 64 * 1024 ? 64 * 1024 : 256 * 1024;
            size_t piece = LS_MIN(want, len - off);
            if (off + piece < len && len - off - piece < 64 * 1024) piece = len - off - 64 * 1024;
            if (piece == 0) piece = len - off;
            sleep_until(t0 + (double) k * (double) pace_us / 1e6);
            it = ls_copy_rx_item_new(rx, LS_COPY_ITEM_DATA, (uint32_t) piece);
            it->generation = g;
            it->offset = off;
            memcpy(it->data, buf + off, piece);
            ls_copy_rx_push(rx, it);
            off += piece;
        }
        it = ls_copy_item_new(LS_COPY_ITEM_END, 0);
        it->generation = g;
        memcpy(it->digest, digest, LS_DIGEST_LEN);
        double te = now_s();
        ls_copy_rx_push(rx, it);
        bool durable = false;
        while (!durable) {
            ls_copy_rx_event_t ev;
            while (ls_copy_rx_poll(rx, &ev)) {
                if (ev.kind == LS_COPY_EV_DURABLE && ev.generation == g) durable = true;
                if (ev.kind == LS_COPY_EV_ASK_AGAIN || ev.kind == LS_COPY_RX_EV_BEHIND) {
                    fprintf(stderr, "copybench: generation %llu: %s\n", (unsigned long long) g,
                            ev.message);
                    return 1;
                }
            }
            if (durable) break;
            pthread_mutex_lock(&r_mu);
            while (!r_flag)
                pthread_cond_wait(&r_cv, &r_mu);
            r_flag = 0;
            pthread_mutex_unlock(&r_mu);
        }
        double t1 = now_s();
        last[g] = t1 - te;
        whole[g] = t1 - t0;
        free(buf);
    }
    ls_copy_rx_free(rx);
    qsort(last + 1, n, sizeof(last[0]), cmp_double);
    qsort(whole + 1, n, sizeof(whole[0]), cmp_double);
    printf("through the receiver thread, pieces %ld us apart: GEN_END pushed to DURABLE median "
           "%.3f ms, p90 %.3f ms; GEN_BEGIN to DURABLE median %.3f ms, p90 %.3f ms\n",
           pace_us, last[1 + (n - 1) / 2] * 1e3, last[1 + (n - 1) * 9 / 10] * 1e3,
           whole[1 + (n - 1) / 2] * 1e3, whole[1 + (n - 1) * 9 / 10] * 1e3);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(
            stderr,
            "usage: copybench LOGS_DIR COPY_DIR [--hold | --serial] [--chunk BYTES] [--batch N] "
            "[--batch-bytes BYTES] [--no-group] [--idle MS] [--hashed] [--receiver US]\n");
        return 2;
    }
    const char *logs = argv[1], *dir = argv[2];
    bool hold = false, serial = false, group = true, hashed = false;
    size_t chunk = 256 * 1024;
    long idle_ms = -1, pace_us = -1;
    ls_copy_options_t o = {.dir = dir, .event_cb = on_event};
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--hold") == 0)
            hold = true;
        else if (strcmp(argv[i], "--no-group") == 0)
            group = false;
        else if (strcmp(argv[i], "--hashed") == 0)
            hashed = true;
        else if (strcmp(argv[i], "--serial") == 0)
            serial = true;
        else if (strcmp(argv[i], "--chunk") == 0 && i + 1 < argc)
            chunk = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--receiver") == 0 && i + 1 < argc)
            pace_us = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--idle") == 0 && i + 1 < argc)
            idle_ms = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            o.batch_generations = (uint32_t) strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--batch-bytes") == 0 && i + 1 < argc)
            o.batch_bytes = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "copybench: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (chunk == 0) chunk = 1;
    if (access(dir, F_OK) == 0) {
        fprintf(stderr, "copybench: %s exists: give a fresh directory\n", dir);
        return 2;
    }
    /* the generations, 1..n, by name */
    static char *path[GENS_MAX + 1];
    static uint32_t epoch[GENS_MAX + 1];
    uint64_t n = 0;
    DIR *d = opendir(logs);
    if (!d) {
        fprintf(stderr, "copybench: cannot open %s\n", logs);
        return 1;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        uint32_t ep;
        uint64_t g;
        if (ls_gen_name_parse(de->d_name, LS_GEN_PREFIX_DEFAULT, &ep, &g) != 0) continue;
        if (g == 0 || g > GENS_MAX) continue;
        size_t len = strlen(logs) + strlen(de->d_name) + 2;
        path[g] = malloc(len);
        snprintf(path[g], len, "%s/%s", logs, de->d_name);
        epoch[g] = ep;
    }
    closedir(d);
    while (n < GENS_MAX && path[n + 1])
        n++;
    if (n == 0) {
        fprintf(stderr, "copybench: no generations in %s\n", logs);
        return 1;
    }
    if (pace_us >= 0) return via_receiver(&o, path, epoch, n, idle_ms, pace_us);
    char err[512];
    ls_copy_t *c = NULL;
    int rc = ls_copy_open(&o, &c, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "copybench: %s\n", err);
        return 1;
    }
    pthread_t th;
    pthread_create(&th, NULL, sampler, NULL);
    if (serial) ls_copy_pause_replay(c, true);
    if (!hold) ls_copy_start(c);
    uint64_t bytes = 0;
    static double took[GENS_MAX + 1], data_took[GENS_MAX + 1];
    double t0 = now_s(), idle_s = 0, cpu_s = 0; /* cpu_s: this thread's in ls_copy_recv_* */
    for (uint64_t g = 1; g <= n; g++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        if ((rc = ls_read_file(path[g], LS_GEN_HARD_CAP, &buf, &len))) {
            fprintf(stderr, "copybench: cannot read %s\n", path[g]);
            return 1;
        }
        if (idle_ms >= 0) {
            double s = now_s();
            usleep((useconds_t) idle_ms * 1000);
            idle_s += now_s() - s;
        }
        uint8_t digest[LS_DIGEST_LEN];
        if (hashed && len >= LS_GEN_TRAILER_SIZE) { /* the loop's share, not timed */
            ls_sha256_t *h = ls_sha256_new();
            ls_sha256_update(h, buf, len - LS_GEN_TRAILER_SIZE);
            ls_sha256_final(h, digest);
            ls_sha256_free(h);
        }
        double tg = now_s(), cg = thread_cpu_s();
        rc = ls_copy_recv_begin(c, epoch[g], g, len, 0, err, sizeof(err));
        double td = now_s();
        for (size_t off = 0; rc == 0 && off < len; off += chunk)
            rc = (hashed ? ls_copy_recv_data_hashed : ls_copy_recv_data)(
                c, g, off, buf + off, LS_MIN(chunk, len - off), err, sizeof(err));
        data_took[g] = now_s() - td;
        ls_copy_recv_defer(c, group && idle_ms < 0 && g < n); /* a backlog: the next is queued */
        if (rc == 0)
            rc = hashed ? ls_copy_recv_end_hashed(c, g, NULL, digest, err, sizeof(err))
                        : ls_copy_recv_end(c, g, NULL, err, sizeof(err));
        took[g] = now_s() - tg;
        cpu_s += thread_cpu_s() - cg;
        free(buf);
        if (rc) {
            fprintf(stderr, "copybench: generation %llu: %s\n", (unsigned long long) g, err);
            return 1;
        }
        bytes += len;
    }
    double t_durable = now_s() - t0 - idle_s, t_synced = 0;
    if (serial) {
        t0 = now_s();
        ls_copy_pause_replay(c, false);
    }
    if (!hold) {
        pthread_mutex_lock(&g_mu);
        while (g_synced < n)
            pthread_cond_wait(&g_cv, &g_mu);
        pthread_mutex_unlock(&g_mu);
        t_synced = now_s() - t0;
    }
    g_done = 1;
    pthread_join(th, NULL);
    ls_copy_stats_t st;
    ls_copy_stats(c, &st);
    printf("generations %llu, %.1f MB\n", (unsigned long long) n, (double) bytes / 1e6);
    printf("received+inspected: %.3f s (%.1f MB/s); the receiving thread's CPU in "
           "ls_copy_recv_*: %.3f s, %.3f ms per MiB\n",
           t_durable, (double) bytes / 1e6 / t_durable, cpu_s,
           cpu_s * 1e3 / ((double) bytes / 1048576.0));
    if (idle_ms >= 0) {
        qsort(took + 1, n, sizeof(took[0]), cmp_double);
        qsort(data_took + 1, n, sizeof(data_took[0]), cmp_double);
        printf("one generation alone, begin to durable: median %.3f ms, p90 %.3f ms; its chunks "
               "(recv_data calls): median %.3f ms, p90 %.3f ms\n",
               took[1 + (n - 1) / 2] * 1e3, took[1 + (n - 1) * 9 / 10] * 1e3,
               data_took[1 + (n - 1) / 2] * 1e3, data_took[1 + (n - 1) * 9 / 10] * 1e3);
    }
    if (!hold)
        printf("%s %.3f s (%.1f MB/s), %llu store transactions, %llu yields to the receiver\n",
               serial ? "then replayed+synced:" : "replayed+synced:", t_synced,
               (double) bytes / 1e6 / t_synced, (unsigned long long) st.replay_txns,
               (unsigned long long) st.replay_yields);
    printf("VmHWM %.1f MiB, peak RssAnon %.1f MiB, peak RssFile %.1f MiB; now RssAnon %.1f MiB, "
           "RssFile %.1f MiB\n",
           (double) status_kib("VmHWM") / 1024.0, (double) g_peak_anon / 1024.0,
           (double) g_peak_file / 1024.0, (double) status_kib("RssAnon") / 1024.0,
           (double) status_kib("RssFile") / 1024.0);
    ls_copy_close(c);
    for (uint64_t g = 1; g <= n; g++)
        free(path[g]);
    return 0;
}
