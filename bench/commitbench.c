/*
 * commitbench: group commit through the public API (db.h). For 1, 2, 4, 8 and 16 threads, each
 * thread commits small transactions (one 16-byte key, 100-byte value) back to back for a fixed
 * time into a fresh database; prints commits/s, fsync batches (log fdatasyncs), commits per batch,
 * commit latency (mean) and the gain over one thread.
 *
 *   commitbench [--seconds S] [--dir BASE]      (defaults: 3 s, $TMPDIR or /tmp)
 *
 * A measurement, not a test: nothing is asserted.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <logship/db.h>

#include "core/core.h"

typedef struct {
    ls_db_t *db;       /* shared database */
    int id;            /* thread number */
    atomic_bool *stop; /* set when the time is up */
    uint64_t commits;  /* transactions committed */
    uint64_t busy_ns;  /* time spent inside ls_txn_commit */
    int rc;            /* first error */
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    char val[100];
    memset(val, 'x', sizeof(val));
    while (!atomic_load(w->stop)) {
        char key[17];
        snprintf(key, sizeof(key), "t%02d-%012" PRIu64, w->id, w->commits % 100000);
        ls_txn_t *t;
        if ((w->rc = ls_txn_begin(w->db, &t)) != 0) break;
        ls_txn_put(t, key, 16, val, sizeof(val));
        uint64_t t0 = ls_mono_ns();
        if ((w->rc = ls_txn_commit(t)) != 0) break;
        w->busy_ns += ls_mono_ns() - t0;
        w->commits++;
    }
    return NULL;
}

typedef struct {
    double commits_per_s; /* throughput */
    uint64_t commits;     /* transactions */
    uint64_t batches;     /* log fdatasyncs */
    double latency_us;    /* mean commit latency */
} result_t;

static int run(const char *base, int threads, double seconds, result_t *r)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/commitbench-%d-%d", base, (int) getpid(), threads);
    ls_db_options_t o = {.no_idle_roll = true};
    ls_db_t *db;
    if (ls_db_open(dir, &o, &db) != 0) {
        fprintf(stderr, "commitbench: %s\n", ls_db_open_error());
        return 1;
    }
    atomic_bool stop = false;
    worker_t w[16];
    pthread_t th[16];
    for (int i = 0; i < threads; i++) {
        w[i] = (worker_t){.db = db, .id = i, .stop = &stop};
        pthread_create(&th[i], NULL, worker, &w[i]);
    }
    uint64_t t0 = ls_mono_ns();
    usleep((useconds_t) (seconds * 1e6));
    atomic_store(&stop, true);
    uint64_t busy = 0;
    int rc = 0;
    memset(r, 0, sizeof(*r));
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        r->commits += w[i].commits;
        busy += w[i].busy_ns;
        if (w[i].rc) rc = w[i].rc;
    }
    double secs = (double) (ls_mono_ns() - t0) / 1e9;
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    r->batches = s.batches;
    r->commits_per_s = (double) r->commits / secs;
    r->latency_us = r->commits ? (double) busy / (double) r->commits / 1e3 : 0;
    ls_db_close(db);
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "commitbench: could not remove %s\n", dir);
    if (rc) fprintf(stderr, "commitbench: commit failed: %s\n", ls_strerror(rc));
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    double seconds = 3;
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
            base = argv[++i];
        } else {
            fprintf(stderr, "usage: commitbench [--seconds S] [--dir BASE]\n");
            return 2;
        }
    }
    if (seconds <= 0) seconds = 3;
    static const int counts[] = {1, 2, 4, 8, 16};
    double base_rate = 0;
    printf("%-8s %12s %10s %10s %14s %14s %8s\n", "threads", "commits/s", "commits", "batches",
           "commits/batch", "latency_us", "gain");
    for (size_t i = 0; i < LS_ARRAY_SIZE(counts); i++) {
        result_t r;
        if (run(base, counts[i], seconds, &r)) return 1;
        if (i == 0) base_rate = r.commits_per_s;
        printf("%-8d %12.0f %10" PRIu64 " %10" PRIu64 " %14.2f %14.1f %7.2fx\n", counts[i],
               r.commits_per_s, r.commits, r.batches,
               r.batches ? (double) r.commits / (double) r.batches : 0.0, r.latency_us,
               base_rate > 0 ? r.commits_per_s / base_rate : 0.0);
        fflush(stdout);
    }
    return 0;
}
