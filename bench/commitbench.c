/*
 * commitbench: group commit through the public API (db.h). For 1, 2, 4, 8 and 16 threads, each
 * thread commits small transactions (one 16-byte key, 100-byte value) back to back for a fixed
 * time into a fresh database; prints commits/s, fsync batches (log fdatasyncs), commits per batch,
 * store applies (LMDB write transactions of the applier: fewer than batches when it merged
 * durable batches), commit latency (mean) and the gain over one thread.
 *
 *   commitbench [--seconds S] [--dir BASE] [--threads T] [--records K] [--value-size B]
 *               [--random-keys N] [--sync-copy US]
 *
 * Defaults: 3 s, $TMPDIR or /tmp, every thread count, 1 record of 100 bytes, per-thread cyclic
 * keys. --random-keys N draws the keys uniformly from N ("k%012u", as `logship load` does), so
 * the store apply touches random pages: `--threads 8 --records 50 --value-size 400
 * --random-keys 100000` is the `logship load` workload of docs/WRITER.md, with the applies shown.
 * --sync-copy US commits with commit_level remote_durable (waiting forever) against a fake copy
 * in this process: a thread that follows the writer's durable position in the control page and
 * publishes each one as held by a copy US microseconds later (a copy's round trip), acks in
 * flight overlapping as a real copy's do; the figures then show what the wait for copies costs
 * the writer (docs/BLOCKMODE.md "Synchronous commit": batches go on being made durable while
 * earlier ones wait).
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
#include "writer/ctlpage.h"

typedef struct {
    int records;          /* records per transaction */
    size_t value_size;    /* bytes per value */
    uint64_t random_keys; /* key space of uniform random keys; 0: per-thread cyclic keys */
    long sync_copy_us;    /* remote_durable against a fake copy this slow, us; -1: local */
} workload_t;

typedef struct {
    const workload_t *wl; /* what to commit */
    ls_db_t *db;          /* shared database */
    int id;               /* thread number */
    atomic_bool *stop;    /* set when the time is up */
    uint64_t commits;     /* transactions committed */
    uint64_t busy_ns;     /* time spent inside ls_txn_commit */
    int rc;               /* first error */
} worker_t;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void *worker(void *arg)
{
    worker_t *w = arg;
    const workload_t *wl = w->wl;
    char *val = malloc(wl->value_size ? wl->value_size : 1);
    if (!val) {
        w->rc = LS_ENOMEM;
        return NULL;
    }
    memset(val, 'x', wl->value_size);
    uint64_t rng = (uint64_t) w->id + 1, n = 0;
    while (!atomic_load(w->stop)) {
        ls_txn_t *t;
        if ((w->rc = ls_txn_begin(w->db, &t)) != 0) break;
        for (int i = 0; i < wl->records; i++, n++) {
            char key[32];
            if (wl->random_keys)
                snprintf(key, sizeof(key), "k%012" PRIu64, splitmix64(&rng) % wl->random_keys);
            else
                snprintf(key, sizeof(key), "t%02d-%012" PRIu64, w->id, n % 100000);
            ls_txn_put(t, key, strlen(key), val, wl->value_size);
        }
        uint64_t t0 = ls_mono_ns();
        if ((w->rc = ls_txn_commit(t)) != 0) break;
        w->busy_ns += ls_mono_ns() - t0;
        w->commits++;
    }
    free(val);
    return NULL;
}

/* The fake copy of --sync-copy: durable positions seen, each published held `delay_ns` later. */
#define FAKE_RING 256
typedef struct {
    ls_ctlpage_t *page;      /* its own mapping of <dir>/control */
    uint64_t delay_ns;       /* the copy's round trip */
    atomic_bool stop;        /* set at the end of the run */
    uint64_t lsn[FAKE_RING]; /* durable positions not yet acknowledged ... */
    uint64_t due[FAKE_RING]; /* ... and when they are (monotonic ns) */
    unsigned head, tail;     /* ring indexes */
} fake_copy_t;

static void *fake_copy_main(void *arg)
{
    fake_copy_t *f = arg;
    uint64_t seen = 0;
    while (!atomic_load(&f->stop)) {
        ls_ctl_durable_t d;
        uint32_t seq = ls_ctlpage_read_durable(f->page, &d);
        uint64_t now = ls_mono_ns();
        if (d.lsn > seen && f->tail - f->head < FAKE_RING) {
            f->lsn[f->tail % FAKE_RING] = d.lsn;
            f->due[f->tail % FAKE_RING] = now + f->delay_ns;
            f->tail++;
            seen = d.lsn;
        }
        uint64_t held = 0;
        while (f->head != f->tail && f->due[f->head % FAKE_RING] <= now)
            held = f->lsn[f->head++ % FAKE_RING];
        if (held) {
            ls_ctl_copy_t c = {.durable_lsn = held,
                               .applied_lsn = held,
                               .time_ns = ls_now_ns(),
                               .flags = LS_CTL_COPY_LINKED | LS_CTL_COPY_BLOCK,
                               .id = 1};
            ls_ctlpage_publish_copies(f->page, &c, 1);
        }
        uint64_t wait = f->head != f->tail
                            ? f->due[f->head % FAKE_RING] - LS_MIN(now, f->due[f->head % FAKE_RING])
                            : 10000000;
        ls_ctlpage_wait_durable(f->page, seq, wait ? wait : 1);
    }
    return NULL;
}

typedef struct {
    double commits_per_s; /* throughput */
    uint64_t commits;     /* transactions */
    uint64_t batches;     /* log fdatasyncs */
    uint64_t applies;     /* store write transactions */
    double latency_us;    /* mean commit latency */
    uint64_t sync_waits;  /* batches that waited for the (fake) copy */
} result_t;

static int run(const char *base, const workload_t *wl, int threads, double seconds, result_t *r)
{
    char dir[4096], err[512] = "";
    snprintf(dir, sizeof(dir), "%s/commitbench-%d-%d", base, (int) getpid(), threads);
    ls_db_options_t o = {.no_idle_roll = true};
    if (wl->sync_copy_us >= 0) o.commit_level = LS_COMMIT_REMOTE_DURABLE;
    ls_db_t *db;
    if (ls_db_open(dir, &o, &db) != 0) {
        fprintf(stderr, "commitbench: %s\n", ls_db_open_error());
        return 1;
    }
    fake_copy_t *fake = NULL;
    pthread_t fake_th;
    if (wl->sync_copy_us >= 0) {
        fake = calloc(1, sizeof(*fake));
        if (!fake || ls_ctlpage_open(dir, false, &fake->page, err, sizeof(err)) != 0) {
            fprintf(stderr, "commitbench: the fake copy: %s\n", err);
            return 1;
        }
        fake->delay_ns = (uint64_t) wl->sync_copy_us * 1000u;
        pthread_create(&fake_th, NULL, fake_copy_main, fake);
    }
    atomic_bool stop = false;
    worker_t w[16];
    pthread_t th[16];
    for (int i = 0; i < threads; i++) {
        w[i] = (worker_t){.wl = wl, .db = db, .id = i, .stop = &stop};
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
    r->applies = s.applies;
    r->commits_per_s = (double) r->commits / secs;
    r->latency_us = r->commits ? (double) busy / (double) r->commits / 1e3 : 0;
    r->sync_waits = s.sync_waits;
    ls_db_close(db);
    if (fake) {
        atomic_store(&fake->stop, true);
        pthread_join(fake_th, NULL);
        ls_ctlpage_close(fake->page);
        free(fake);
    }
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "commitbench: could not remove %s\n", dir);
    if (rc) fprintf(stderr, "commitbench: commit failed: %s\n", ls_strerror(rc));
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    ls_log_set_handler(ls_log_stderr, NULL); /* the library prints nothing by itself */
    double seconds = 3;
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    workload_t wl = {.records = 1, .value_size = 100, .sync_copy_us = -1};
    int only = 0;
    for (int i = 1; i < argc; i += 2) { /* every option takes one value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v && !strcmp(a, "--seconds")) {
            seconds = atof(v);
        } else if (v && !strcmp(a, "--dir")) {
            base = v;
        } else if (v && !strcmp(a, "--threads")) {
            only = atoi(v);
        } else if (v && !strcmp(a, "--records")) {
            wl.records = atoi(v);
        } else if (v && !strcmp(a, "--value-size")) {
            wl.value_size = (size_t) strtoull(v, NULL, 10);
        } else if (v && !strcmp(a, "--random-keys")) {
            wl.random_keys = strtoull(v, NULL, 10);
        } else if (v && !strcmp(a, "--sync-copy")) {
            wl.sync_copy_us = atol(v);
        } else {
            fprintf(stderr, "usage: commitbench [--seconds S] [--dir BASE] [--threads 1..16] "
                            "[--records K] [--value-size B] [--random-keys N] [--sync-copy US]\n");
            return 2;
        }
    }
    if (seconds <= 0) seconds = 3;
    if (only < 0 || only > 16 || wl.records < 1 || wl.value_size > 1024 * 1024) {
        fprintf(stderr, "commitbench: --threads must be 1..16, --records >= 1, --value-size <= 1 "
                        "MiB\n");
        return 2;
    }
    static const int all[] = {1, 2, 4, 8, 16};
    int counts[LS_ARRAY_SIZE(all)];
    size_t ncounts = 0;
    for (size_t i = 0; i < LS_ARRAY_SIZE(all); i++)
        if (!only || all[i] == only) counts[ncounts++] = all[i];
    if (ncounts == 0) counts[ncounts++] = only;
    double base_rate = 0;
    printf("%-8s %12s %10s %10s %14s %10s %14s %8s %10s\n", "threads", "commits/s", "commits",
           "batches", "commits/batch", "applies", "latency_us", "gain", "syncwaits");
    for (size_t i = 0; i < ncounts; i++) {
        result_t r;
        if (run(base, &wl, counts[i], seconds, &r)) return 1;
        if (i == 0) base_rate = r.commits_per_s;
        printf("%-8d %12.0f %10" PRIu64 " %10" PRIu64 " %14.2f %10" PRIu64
               " %14.1f %7.2fx %10" PRIu64 "\n",
               counts[i], r.commits_per_s, r.commits, r.batches,
               r.batches ? (double) r.commits / (double) r.batches : 0.0, r.applies, r.latency_us,
               base_rate > 0 ? r.commits_per_s / base_rate : 0.0, r.sync_waits);
        fflush(stdout);
    }
    return 0;
}
