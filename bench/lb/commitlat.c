/*
 * Commit latency (issue 15, its first part): logship's commit path at the `local` level against
 * PostgreSQL 15 (pg.c: a primary and one streaming standby on loopback) with synchronous_commit
 * = local, on (remote flush) and remote_apply, at 1, 8 and 32 writer threads (pgbench clients).
 * Every transaction commits LB_COMMIT_ROWS puts of LB_COMMIT_VAL_LEN-byte values under
 * LB_COMMIT_KEY_LEN-byte keys, drawn from LB_COMMIT_KEYS keys, on both sides; both run for the
 * same time per cell, in the same round, under the same scratch directory (one disk).
 * logship's remote levels (remote_durable, remote_applied; docs/BLOCKMODE.md "Synchronous
 * commit") run against a pair of real daemons on loopback (daemons.c, plaintext as PostgreSQL's
 * replication connection here): node-a's daemon ships the database the bench writes to node-b in
 * block mode and publishes node-b's acknowledged positions in the control page; the writer's
 * commits wait for them. A warm-up first brings the copy into block mode. A cell in which any
 * wait timed out (sync_timeout_ms 5000: the copy did not answer, the commits went on
 * asynchronously) is not recorded: its figures would be those of `local`.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <logship/db.h>

#include "lb.h"

#define PG_BIN "/usr/lib/postgresql/15/bin"

static const int THREADS[] = {1, 8, 32};
#define NTHREADS (int) (sizeof(THREADS) / sizeof(THREADS[0]))
static const char *const PG_LEVELS[] = {"local", "on", "remote_apply"};
#define NLEVELS 3

void lb_lat_add(lb_lat_t *l, double ms)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        double *v = realloc(l->v, cap * sizeof(*v));
        if (!v) return; /* the figure then lacks this sample */
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = ms;
}

void lb_lat_free(lb_lat_t *l)
{
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* ---- logship's side ---------------------------------------------------------------------- */

typedef struct {
    ls_db_t *db;
    pthread_barrier_t *go;
    uint64_t deadline_ns; /* set by the main thread before the barrier */
    uint64_t seed;
    lb_lat_t lat;    /* this thread's commit latencies, ms */
    uint64_t end_ns; /* when its last commit returned */
    int err;         /* first commit error */
} writer_t;

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The 16-byte key of key number k (the same numbers as the pgbench script's). */
static void key_of(uint64_t k, uint8_t *key)
{
    uint64_t s = k;
    for (int i = 0; i < LB_COMMIT_KEY_LEN; i += 8) {
        uint64_t x = splitmix(&s);
        memcpy(key + i, &x, 8);
    }
}

static void *writer_main(void *arg)
{
    writer_t *w = arg;
    uint8_t key[LB_COMMIT_KEY_LEN], val[LB_COMMIT_VAL_LEN + 8];
    uint64_t rng = w->seed;
    pthread_barrier_wait(w->go);
    while (lb_mono_ns() < w->deadline_ns) {
        uint64_t t0 = lb_mono_ns();
        ls_txn_t *txn = NULL;
        int rc = ls_txn_begin(w->db, &txn);
        for (int r = 0; rc == 0 && r < LB_COMMIT_ROWS; r++) {
            /* row r from its own part of the key space, as in the pgbench script */
            uint64_t third = LB_COMMIT_KEYS / 3;
            key_of((uint64_t) r * third + splitmix(&rng) % third, key);
            for (int i = 0; i < LB_COMMIT_VAL_LEN; i += 8) {
                uint64_t x = splitmix(&rng);
                memcpy(val + i, &x, 8);
            }
            rc = ls_txn_put(txn, key, sizeof(key), val, LB_COMMIT_VAL_LEN);
        }
        if (rc == 0) {
            rc = ls_txn_commit(txn);
        } else {
            ls_txn_abort(txn);
        }
        if (rc != 0) {
            w->err = rc;
            break;
        }
        uint64_t t1 = lb_mono_ns();
        lb_lat_add(&w->lat, (double) (t1 - t0) / 1e6);
        w->end_ns = t1;
    }
    return NULL;
}

/* threads writers commit into the database in dir (fresh: removed before and after) with opts
 * for secs; all latencies into out, the database's figures at the end into st. */
static int logship_cell(const char *dir, const ls_db_options_t *opts, bool fresh, int threads,
                        double secs, lb_lat_t *out, ls_db_stats_t *st)
{
    memset(out, 0, sizeof(*out));
    if (fresh) lb_rm_rf(dir);
    ls_db_t *db = NULL;
    if (ls_db_open(dir, opts, &db) != 0) {
        fprintf(stderr, "logship-bench: open %s: %s\n", dir, ls_db_open_error());
        return -1;
    }
    writer_t *w = calloc((size_t) threads, sizeof(*w));
    pthread_t *tid = calloc((size_t) threads, sizeof(*tid));
    pthread_barrier_t go;
    int started = 0, rc = 0;
    if (!w || !tid || pthread_barrier_init(&go, NULL, (unsigned) threads + 1) != 0) {
        free(w);
        free(tid);
        ls_db_close(db);
        return -1;
    }
    for (int i = 0; i < threads; i++) {
        w[i] = (writer_t){.db = db, .go = &go, .seed = 42 + (uint64_t) i};
        if (pthread_create(&tid[i], NULL, writer_main, &w[i]) != 0) break;
        started++;
    }
    if (started < threads) { /* cannot happen short of resource exhaustion: release and fail */
        fprintf(stderr, "logship-bench: only %d of %d writer threads started\n", started, threads);
        exit(1);
    }
    uint64_t start = lb_mono_ns();
    for (int i = 0; i < threads; i++)
        w[i].deadline_ns = start + (uint64_t) (secs * 1e9);
    pthread_barrier_wait(&go);
    uint64_t end = start;
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        if (w[i].err && !rc) {
            fprintf(stderr, "logship-bench: commit failed: %s\n", ls_db_errmsg(db));
            rc = -1;
        }
        if (w[i].end_ns > end) end = w[i].end_ns;
        for (size_t k = 0; k < w[i].lat.n; k++)
            lb_lat_add(out, w[i].lat.v[k]);
        lb_lat_free(&w[i].lat);
    }
    pthread_barrier_destroy(&go);
    free(w);
    free(tid);
    ls_db_stats(db, st);
    if (ls_db_close(db) != 0) rc = -1;
    if (fresh) lb_rm_rf(dir);
    out->rate = end > start ? (double) out->n / ((double) (end - start) / 1e9) : 0;
    return rc == 0 && out->n > 0 ? 0 : -1;
}

/* ---- logship's remote levels: a pair of daemons around the database -------------------- */

static void add_cell(const char *who, int threads, const lb_lat_t *l);

static const char *const LS_LEVELS[] = {"local", "remote_durable", "remote_applied"};

/* Starts node-a and node-b with nothing to ship, writes a little into node-a's db1 (path into
 * db) and keeps committing until node-a ships it to node-b in block mode. 0, or -1 with why. */
static int sync_pair_start(const lb_ctx_t *c, lb_pair_t *p, char *db, size_t dblen, char *why,
                           size_t whylen)
{
    char dir[LB_PATH + 16];
    lb_fmt(dir, sizeof(dir), "%s/syncpair", c->tmp);
    lb_rm_rf(dir);
    lb_pair_cfg_t cfg = {.empty = true};
    if (lb_pair_start(p, dir, c->bin, c->certs, NULL, &cfg) != 0) {
        snprintf(why, whylen, "the daemons did not start (see %.300s/node-*.log)", dir);
        return -1;
    }
    lb_fmt(db, dblen, "%s/node-a/db1", dir);
    ls_db_t *h = NULL;
    ls_db_options_t o = {0};
    if (ls_db_open(db, &o, &h) != 0) {
        snprintf(why, whylen, "open %.300s: %.300s", db, ls_db_open_error());
        return -1;
    }
    lb_status_t st = {0};
    int rc = -1;
    for (uint64_t end = lb_mono_ns() + 60000000000ull, n = 0; lb_mono_ns() < end; n++) {
        ls_txn_t *t = NULL;
        uint8_t key[LB_COMMIT_KEY_LEN], val[LB_COMMIT_VAL_LEN] = {0};
        key_of(n, key);
        if (ls_txn_begin(h, &t) || ls_txn_put(t, key, sizeof(key), val, sizeof(val)) ||
            ls_txn_commit(t)) {
            snprintf(why, whylen, "warm-up commit: %.300s", ls_db_errmsg(h));
            break;
        }
        if (n == 100) ls_db_roll(h); /* a closed generation: the copy starts following */
        if (n % 50 == 0 && lb_status(p->sock_a, &st) == 0 && st.block) {
            rc = 0;
            break;
        }
        lb_sleep_ns(2000000);
    }
    if (rc && !why[0])
        snprintf(why, whylen,
                 "node-a never shipped to node-b in block mode within 60 s (copy state "
                 "'%s'; see %.300s/node-*.log)",
                 st.state, dir);
    ls_db_close(h);
    return rc;
}

/* One cell of a remote level: recorded only when no wait timed out. */
static void sync_cell(const char *db, int level, int threads, double secs)
{
    ls_db_options_t o = {.commit_level = (ls_db_commit_level_t) level, .sync_timeout_ms = 5000};
    lb_lat_t l;
    ls_db_stats_t st = {0};
    char who[64];
    snprintf(who, sizeof(who), "logship %s", LS_LEVELS[level]);
    if (logship_cell(db, &o, false, threads, secs, &l, &st) != 0)
        fprintf(stderr, "logship-bench: %s cell (%d threads) failed\n", who, threads);
    else if (st.sync_timeouts || st.sync_waits == 0)
        lb_note("%s, %d threads: not recorded: %llu of %llu batches waited 5 s for the copy in "
                "vain (synchronous commit degraded)",
                who, threads, (unsigned long long) st.sync_timeouts,
                (unsigned long long) st.sync_waits);
    else
        add_cell(who, threads, &l);
    lb_lat_free(&l);
}

/* ---- the runs and the table -------------------------------------------------------------- */

static void name(char *buf, size_t len, const char *who, int threads, const char *what)
{
    snprintf(buf, len, "commit, %d thr: %s, %s", threads, who, what);
}

/* Adds the three figures of one cell (commits/s, p50, p99). */
static void add_cell(const char *who, int threads, const lb_lat_t *l)
{
    char n[96];
    double v;
    name(n, sizeof(n), who, threads, "commits/s");
    lb_result_add(n, "commits/s", &l->rate, 1);
    v = lb_pct(l->v, l->n, 50);
    name(n, sizeof(n), who, threads, "p50");
    lb_result_add(n, "ms", &v, 1);
    v = lb_pct(l->v, l->n, 99);
    name(n, sizeof(n), who, threads, "p99");
    lb_result_add(n, "ms", &v, 1);
}

static double secs_per_cell(const lb_ctx_t *c)
{
    return c->quick ? 3 : 6;
}

void lb_run_commit(lb_ctx_t *c, lb_pg_t *pg)
{
    double secs = secs_per_cell(c);
    int rounds = c->quick ? 1 : 2;
    char why[LB_PATH + 128], pgdir[LB_PATH + 16], dbdir[LB_PATH + 16];
    snprintf(pgdir, sizeof(pgdir), "%s/pg", c->tmp);
    snprintf(dbdir, sizeof(dbdir), "%s/commitdb", c->tmp);
    lb_progress("commit latency: logship local vs PostgreSQL 15 (primary + streaming standby), "
                "%d puts of %d-byte values per transaction, %.0f s per cell, %d round(s)",
                LB_COMMIT_ROWS, LB_COMMIT_VAL_LEN, secs, rounds);
    chmod(c->tmp, 0711); /* PostgreSQL may run as nobody: it must reach pg/ */
    bool have_pg = lb_pg_start(pg, PG_BIN, pgdir, why, sizeof(why)) == 0;
    if (!have_pg) {
        lb_skip("PostgreSQL commit latency", why);
        lb_pg_stop(pg);
    }
    for (int r = 0; r < rounds; r++) {
        for (int t = 0; t < NTHREADS; t++) {
            lb_lat_t l;
            ls_db_options_t local = {0};
            ls_db_stats_t st;
            if (logship_cell(dbdir, &local, true, THREADS[t], secs, &l, &st) == 0)
                add_cell("logship local", THREADS[t], &l);
            else
                fprintf(stderr, "logship-bench: logship commit cell (%d threads) failed\n",
                        THREADS[t]);
            lb_lat_free(&l);
            for (int k = 0; have_pg && k < NLEVELS; k++) {
                char who[64];
                snprintf(who, sizeof(who), "PostgreSQL %s", PG_LEVELS[k]);
                if (lb_pg_bench(pg, PG_LEVELS[k], THREADS[t], secs, &l) == 0) {
                    add_cell(who, THREADS[t], &l);
                    if (l.failed)
                        lb_note("%s, %d clients: %lu failed transactions", who, THREADS[t],
                                (unsigned long) l.failed);
                } else {
                    fprintf(stderr,
                            "logship-bench: pgbench %s, %d clients failed (see %s/"
                            "pgbench.out)\n",
                            PG_LEVELS[k], THREADS[t], pg->dir);
                }
                lb_lat_free(&l);
            }
        }
    }
    lb_pg_stop(pg);
    lb_pair_t pair;
    char syncdb[LB_PATH + 32];
    why[0] = '\0';
    if (sync_pair_start(c, &pair, syncdb, sizeof(syncdb), why, sizeof(why)) != 0) {
        lb_skip("logship remote_durable, remote_applied", why);
    } else {
        lb_progress("commit latency: logship remote_durable and remote_applied against a copy "
                    "in block mode (node-a -> node-b on loopback)");
        for (int r = 0; r < rounds; r++)
            for (int t = 0; t < NTHREADS; t++)
                for (int k = 1; k < 3; k++)
                    sync_cell(syncdb, k, THREADS[t], secs);
    }
    lb_pair_stop(&pair);
    char n[96], b[96];
    for (int t = 0; t < NTHREADS; t++) {
        name(n, sizeof(n), "logship local", THREADS[t], "commits/s");
        name(b, sizeof(b), "PostgreSQL local", THREADS[t], "commits/s");
        lb_result_cmp(lb_result_find(n), b, LB_T_MIN, 1.0, "issue 15: >= PostgreSQL's");
        name(n, sizeof(n), "logship local", THREADS[t], "p50");
        name(b, sizeof(b), "PostgreSQL local", THREADS[t], "p50");
        lb_result_cmp(lb_result_find(n), b, LB_T_NONE, 0, NULL);
        name(n, sizeof(n), "logship local", THREADS[t], "p99");
        name(b, sizeof(b), "PostgreSQL local", THREADS[t], "p99");
        lb_result_cmp(lb_result_find(n), b, LB_T_MAX, 1.0, "issue 15: <= PostgreSQL's");
    }
    static const char *const PAIRS[][2] = {{"logship remote_durable", "PostgreSQL on"},
                                           {"logship remote_applied", "PostgreSQL remote_apply"}};
    for (int k = 0; k < 2; k++)
        for (int t = 0; t < NTHREADS; t++) {
            name(n, sizeof(n), PAIRS[k][0], THREADS[t], "commits/s");
            name(b, sizeof(b), PAIRS[k][1], THREADS[t], "commits/s");
            lb_result_cmp(lb_result_find(n), b, LB_T_MIN, 1.0, "issue 15: >= PostgreSQL's");
            name(n, sizeof(n), PAIRS[k][0], THREADS[t], "p99");
            name(b, sizeof(b), PAIRS[k][1], THREADS[t], "p99");
            lb_result_cmp(lb_result_find(n), b, LB_T_MAX, 1.0, "issue 15: <= PostgreSQL's");
        }
}

static void cell_text(char *buf, size_t len, const char *who, int threads)
{
    char n[96];
    double v[3];
    const char *what[] = {"commits/s", "p50", "p99"};
    for (int i = 0; i < 3; i++) {
        name(n, sizeof(n), who, threads, what[i]);
        const lb_result_t *r = lb_result_find(n);
        if (!r) {
            snprintf(buf, len, "%-28s", "not measured");
            return;
        }
        v[i] = lb_median(r->v, (size_t) r->runs);
    }
    snprintf(buf, len, "%9.0f %8.2f %9.2f", v[0], v[1], v[2]);
}

void lb_commit_table(void)
{
    char n[96];
    name(n, sizeof(n), "logship local", THREADS[0], "commits/s");
    const lb_result_t *any = lb_result_find(n);
    if (!any) return;
    printf("\ncommit latency (issue 15): %d puts (%d-byte keys, %d-byte values) per transaction, "
           "medians over %d round(s); ms\n",
           LB_COMMIT_ROWS, LB_COMMIT_KEY_LEN, LB_COMMIT_VAL_LEN, any->runs);
    printf("%-20s | %-28s | %-28s | %-12s | %s\n", "", "logship", "PostgreSQL", "PG's",
           "logship / PostgreSQL");
    printf("%-15s %4s | %9s %8s %9s | %9s %8s %9s | %-12s | %7s %7s\n", "level", "thr", "commits/s",
           "p50", "p99", "commits/s", "p50", "p99", "level", "c/s", "p99");
    for (int i = 0; i < 110; i++)
        putchar('-');
    putchar('\n');
    static const struct {
        const char *level, *ls, *pg;
    } ROWS[] = {{"local", "logship local", "PostgreSQL local"},
                {"remote_durable", "logship remote_durable", "PostgreSQL on"},
                {"remote_applied", "logship remote_applied", "PostgreSQL remote_apply"}};
    for (int k = 0; k < NLEVELS; k++) {
        for (int t = 0; t < NTHREADS; t++) {
            char ls[64], pg[64], ratio[48] = "";
            if (ROWS[k].ls)
                cell_text(ls, sizeof(ls), ROWS[k].ls, THREADS[t]);
            else
                snprintf(ls, sizeof(ls), "%-28s", "not built yet");
            cell_text(pg, sizeof(pg), ROWS[k].pg, THREADS[t]);
            if (ROWS[k].ls) {
                const char *w[] = {"commits/s", "p99"};
                double q[2] = {0, 0};
                for (int i = 0; i < 2; i++) {
                    char a[96], b[96];
                    name(a, sizeof(a), ROWS[k].ls, THREADS[t], w[i]);
                    name(b, sizeof(b), ROWS[k].pg, THREADS[t], w[i]);
                    const lb_result_t *x = lb_result_find(a), *y = lb_result_find(b);
                    if (x && y)
                        q[i] =
                            lb_median(x->v, (size_t) x->runs) / lb_median(y->v, (size_t) y->runs);
                }
                if (q[0] > 0) snprintf(ratio, sizeof(ratio), "%6.2fx %6.2fx", q[0], q[1]);
            }
            printf("%-15s %4d | %-28s | %-28s | %-12s | %s\n", ROWS[k].level, THREADS[t], ls, pg,
                   ROWS[k].pg + strlen("PostgreSQL "), ratio);
        }
    }
}
