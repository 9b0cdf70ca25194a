/*
 * readerbench: what the active's reader thread costs per MiB, verifying records only (the
 * default) or FULL (SHA-256 too; docs/SOURCE.md, "What the active verifies").
 *
 *   readerbench DB_DIR [ROUNDS [records|full]]
 *
 * Reads every closed generation of DB_DIR/logs through engine/source's pipelined reader, as the
 * active does for one target, ROUNDS times per mode (default 5), alternating records and FULL
 * (or only the mode named).
 * The main thread only waits on a condition variable and releases each generation once it is
 * verified whole, so the process's CPU time is the reader thread's. Prints, per round, the wall
 * time and the CPU time per MiB (getrusage), then the medians. Under `valgrind --tool=callgrind`
 * (`readerbench DB_DIR 1 records`, then `... full`: one process per mode, since callgrind counts
 * a thread started after another ended under the same thread number) the instruction counts are
 * exact. Make DB_DIR with `logship load`.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/core.h"
#include "source/source.h"

#define MAXROUNDS 50

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int notes; /* notify calls not yet looked at */
} waiter_t;

static void notify(void *ctx)
{
    waiter_t *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->notes++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

static void wait_note(waiter_t *w)
{
    pthread_mutex_lock(&w->mu);
    while (!w->notes)
        pthread_cond_wait(&w->cond, &w->mu);
    w->notes = 0;
    pthread_mutex_unlock(&w->mu);
}

static uint64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
           (uint64_t) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

/* One pass over generations first..last; returns 0 and the bytes read, or -1. */
static int pass(ls_source_t *src, uint64_t first, uint64_t last, ls_reader_verify_t verify,
                uint64_t *bytes, uint64_t *hashed)
{
    waiter_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    ls_reader_options_t o = {.verify = verify};
    ls_reader_t *r = NULL;
    if (ls_reader_start(src, first, &o, notify, &w, &r) != 0) return -1;
    *bytes = 0;
    for (uint64_t g = first; g <= last;) {
        const ls_gen_buf_t *b;
        int rc = ls_reader_next(r, &b);
        if (rc == LS_EBUSY) {
            wait_note(&w);
            continue;
        }
        if (rc != 0) {
            fprintf(stderr, "readerbench: %s\n", ls_reader_error(r));
            ls_reader_stop(r);
            return -1;
        }
        while (ls_gen_buf_avail(b) < b->size)
            wait_note(&w);
        *bytes += b->size;
        ls_reader_release(r, b);
        g++;
    }
    ls_reader_stats_t st;
    ls_reader_stats(r, &st);
    *hashed = st.hashed;
    ls_reader_stop(r);
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t) n, sizeof(*v), cmp_d);
    return v[n / 2];
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4 ||
        (argc == 4 && strcmp(argv[3], "records") && strcmp(argv[3], "full"))) {
        fprintf(stderr, "usage: readerbench DB_DIR [ROUNDS [records|full]]\n");
        return 2;
    }
    int rounds = argc >= 3 ? atoi(argv[2]) : 5;
    int only = argc == 4 ? !strcmp(argv[3], "full") : -1; /* -1: both */
    if (rounds < 1 || rounds > MAXROUNDS) {
        fprintf(stderr, "readerbench: ROUNDS must be 1..%d\n", MAXROUNDS);
        return 2;
    }
    ls_source_options_t so = {.db_dir = argv[1]};
    ls_source_t *src = NULL;
    char err[LS_SOURCE_ERRLEN];
    if (ls_source_open(&so, &src, err, sizeof(err)) != 0) {
        fprintf(stderr, "readerbench: %s\n", err);
        return 1;
    }
    ls_source_view_t v;
    ls_source_view(src, &v);
    if (!v.count) {
        fprintf(stderr, "readerbench: no closed generation in %s/logs\n", argv[1]);
        return 1;
    }
    static const char *names[] = {"records", "full"};
    double cpu[2][MAXROUNDS], wall[2][MAXROUNDS];
    uint64_t bytes = 0, hashed = 0;
    for (int i = 0; i < rounds; i++) {
        for (int m = 0; m < 2; m++) {
            if (only >= 0 && m != only) continue;
            uint64_t c0 = cpu_ns(), t0 = ls_mono_ns();
            if (pass(src, v.oldest, v.newest, m ? LS_READER_VERIFY_FULL : LS_READER_VERIFY_RECORDS,
                     &bytes, &hashed) != 0)
                return 1;
            double mib = (double) bytes / (1024.0 * 1024.0);
            cpu[m][i] = (double) (cpu_ns() - c0) / 1e6 / mib;
            wall[m][i] = (double) (ls_mono_ns() - t0) / 1e6 / mib;
            printf("round %d %-7s %llu generations, %.1f MiB, %llu hashed: cpu %.3f ms/MiB, "
                   "wall %.3f ms/MiB\n",
                   i + 1, names[m], (unsigned long long) v.count, mib, (unsigned long long) hashed,
                   cpu[m][i], wall[m][i]);
        }
    }
    for (int m = 0; m < 2; m++)
        if (only < 0 || m == only)
            printf("median %-7s cpu %.3f ms/MiB, wall %.3f ms/MiB\n", names[m],
                   median(cpu[m], rounds), median(wall[m], rounds));
    ls_source_free(src);
    return 0;
}
