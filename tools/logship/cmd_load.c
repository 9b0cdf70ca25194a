/*
 * `logship load DIR ...`: writes a deterministic workload through the public API (db.h).
 *
 * T threads share the transactions; thread t draws everything from its own generator seeded
 * with seed + t, so a run is reproducible for a given (seed, threads) (the interleaving of the
 * threads' commits, and so the LSN order, is not). Keys are "k%012u" drawn uniformly from the
 * key space. Values look like structured application log lines: field=value tokens from a fixed
 * vocabulary, numbers, and a share of random hex/alphanumeric tokens (ids, hashes) that sets the
 * compressibility: the default (--compressibility 3) compresses about 3x with zstd -1, as the
 * log-like data measured in reference/machine-limits.md (tests/unit/load_test.c checks it).
 * --rate paces the whole run at that many transactions per second.
 *
 * --pregenerate draws every key and value before the clock starts (each thread into a buffer of
 * its own, the same draws in the same order, so the same workload), so that the figures measure
 * the writer, not the generator: the threads start committing together once all are ready.
 * Either way "until closed" is the time from the first commit to ls_db_close()'s return (the
 * store holds every commit and is checkpointed); "elapsed" ends when the last commit returned.
 *
 * --ack-log FILE records what the writer acknowledged (docs/WRITER.md, "logship load"), so that
 * any store can be checked with mdb_dump alone: each transaction gets an id "<run>-<n>" and also
 * puts the marker key "txn/<id>" (value: the XXH3-64 of the transaction's keys and values, in
 * hex); once its commit returned 0, the line "<id>\n" is appended to FILE with one write()
 * (O_APPEND, so lines of concurrent threads never interleave). <run> numbers the runs against a
 * database: the run counter key "logship-load/run" is read, incremented and committed before the
 * first transaction (it travels with the database, so a run on a copy activated later goes on
 * counting); <n> counts the run's transactions from 1 across all threads. Ids are therefore
 * unique across restarts, crashes and activations of the same database. FILE belongs outside the
 * filesystem under test; it is not fsynced.
 *
 * --sync LEVEL (local, remote_durable, remote_applied) [--sync-copies N] [--sync-timeout MS]
 * commits with that commit level (docs/BLOCKMODE.md "Synchronous commit"): a commit returns once
 * N copies hold it (as the local daemon publishes their positions), or once MS passed (then the
 * writer logs a WARN on stderr and goes on degraded until the copies catch up). With --ack-log,
 * an id is written only after that return.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include <logship/db.h>

#include "cmds.h"
#include "core/core.h"
#include "load.h"

#define KEY_MAX 32 /* bytes of a key ("k" and at least 12 digits of a uint64) */

typedef struct {
    ls_db_t *db;      /* shared database */
    load_opts_t *o;   /* options (and the run's transaction counter) */
    uint64_t id;      /* thread number */
    uint64_t count;   /* transactions this thread commits */
    uint64_t rng;     /* generator state */
    uint64_t records; /* records committed */
    uint64_t bytes;   /* key + value bytes committed */
    int rc;           /* first error */
} worker_t;

static const char *FIELDS[] = {"level",  "svc",    "user",  "op",     "status", "latency_ms",
                               "region", "host",   "path",  "method", "bytes",  "session",
                               "msg",    "tenant", "retry", "cache",  "shard",  "version"};
static const char *WORDS[] = {"INFO",
                              "WARN",
                              "ERROR",
                              "DEBUG",
                              "checkout",
                              "cart",
                              "payment",
                              "login",
                              "logout",
                              "search",
                              "GET",
                              "POST",
                              "PUT",
                              "DELETE",
                              "/api/v1/orders",
                              "/api/v1/users",
                              "/api/v2/cart",
                              "eu-west-1",
                              "us-east-2",
                              "ap-south-1",
                              "hit",
                              "miss",
                              "ok",
                              "timeout",
                              "accepted",
                              "rejected",
                              "\"request completed\"",
                              "\"cache miss for session\"",
                              "\"upstream slow\"",
                              "\"retrying after backoff\"",
                              "true",
                              "false",
                              "web-01",
                              "web-02",
                              "db-primary",
                              "db-replica",
                              "v1.4.2",
                              "v1.5.0"};

static uint64_t next_rand(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Share of random tokens giving about ratio r with zstd -1: interpolated in a table measured on
 * this generator (200-byte values, `zstd -1`, 4 MB sample). Ratios beyond the table are clamped:
 * the reachable range is about 1.6x (all random tokens) to 4.0x (none). */
static double noise_for(double r)
{
    static const double T[][2] = {{4.02, 0.0},  {3.47, 0.05}, {3.11, 0.10},
                                  {2.83, 0.15}, {2.63, 0.20}, {2.33, 0.30},
                                  {1.97, 0.50}, {1.69, 0.80}, {1.60, 1.0}};
    if (r >= T[0][0]) return 0.0;
    for (size_t i = 1; i < LS_ARRAY_SIZE(T); i++)
        if (r >= T[i][0])
            return T[i][1] + (T[i - 1][1] - T[i][1]) * (r - T[i][0]) / (T[i - 1][0] - T[i][0]);
    return 1.0;
}

/* Appends the NUL-terminated s at tok + *n (the formatting of make_value without printf: the
 * generator's own CPU is not the writer's). */
static void put_str(char *tok, int *n, const char *s)
{
    while (*s)
        tok[(*n)++] = *s++;
}

/* Appends v in decimal at tok + *n, at least width digits (zero-padded). */
static void put_uint(char *tok, int *n, uint64_t v, int width)
{
    char d[24];
    int k = 0;
    do {
        d[k++] = (char) ('0' + v % 10);
        v /= 10;
    } while (v || k < width);
    while (k)
        tok[(*n)++] = d[--k];
}

/* Fills out[0, len) with log-like text. */
static void make_value(uint64_t *rng, double noise, char *out, size_t len)
{
    static const char ALNUM[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    size_t n = 0;
    char tok[96];
    while (n < len) {
        uint64_t r = next_rand(rng);
        int tl = 0;
        put_str(tok, &tl, FIELDS[r % LS_ARRAY_SIZE(FIELDS)]);
        tok[tl++] = '=';
        if ((double) ((r >> 8) & 0xffff) / 65536.0 < noise) {
            for (int i = 0; i < 16; i++)
                tok[tl++] = ALNUM[next_rand(rng) % (sizeof(ALNUM) - 1)];
        } else if ((r >> 24) % 4 == 0) {
            put_uint(tok, &tl, (r >> 32) % 1000, 1);
        } else {
            put_str(tok, &tl, WORDS[(r >> 32) % LS_ARRAY_SIZE(WORDS)]);
        }
        tok[tl++] = ' ';
        size_t take = LS_MIN((size_t) tl, len - n);
        memcpy(out + n, tok, take);
        n += take;
    }
}

static void pace(const load_opts_t *o, uint64_t start_ns, uint64_t done)
{
    if (o->rate <= 0) return;
    double per_thread = o->rate / (double) o->threads;
    uint64_t due = start_ns + (uint64_t) ((double) done / per_thread * 1e9);
    uint64_t now = ls_mono_ns();
    if (due <= now) return;
    struct timespec ts = {(time_t) ((due - now) / 1000000000ull),
                          (long) ((due - now) % 1000000000ull)};
    nanosleep(&ts, NULL);
}

/* The key holding the number of the last run with --ack-log against the database. */
#define RUN_KEY "logship-load/run"

/* Reads the run counter, commits it plus one (durably, before any marker) into *run. */
static int start_run(ls_db_t *db, uint64_t *run)
{
    void *v = NULL;
    size_t vn = 0;
    uint64_t prev = 0;
    int rc = ls_db_get(db, RUN_KEY, strlen(RUN_KEY), &v, &vn);
    if (rc == 0) {
        char text[24];
        char *end = NULL;
        snprintf(text, sizeof(text), "%.*s", (int) LS_MIN(vn, sizeof(text) - 1), (char *) v);
        errno = 0;
        prev = strtoull(text, &end, 10);
        if (vn == 0 || vn >= sizeof(text) || *end || errno) {
            fprintf(stderr, "logship load: the run counter key %s holds '%s', not a number\n",
                    RUN_KEY, text);
            free(v);
            return LS_ECORRUPT;
        }
    } else if (rc != LS_ENOENT) {
        return rc;
    }
    free(v);
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRIu64, prev + 1);
    ls_txn_t *t;
    if ((rc = ls_txn_begin(db, &t)) != 0) return rc;
    if ((rc = ls_txn_put(t, RUN_KEY, strlen(RUN_KEY), num, (size_t) n)) != 0) {
        ls_txn_abort(t);
        return rc;
    }
    if ((rc = ls_txn_commit(t)) == 0) *run = prev + 1;
    return rc;
}

/* Draws the next record: key into key (KEY_MAX bytes; its length into *kn), value into val. */
static void make_record(worker_t *w, double noise, char *key, int *kn, char *val)
{
    *kn = 0;
    key[(*kn)++] = 'k';
    put_uint(key, kn, next_rand(&w->rng) % w->o->key_space, 12);
    make_value(&w->rng, noise, val, w->o->value_size);
}

/* --pregenerate: draws all of w's records into one buffer (per record: the key's length, the
 * key in KEY_MAX bytes, the value), tells the main thread, waits for the start. NULL when out of
 * memory (w->rc set); the thread waits for the start anyway. */
static char *pregenerate(worker_t *w, double noise)
{
    load_opts_t *o = w->o;
    size_t rec = 1 + KEY_MAX + o->value_size, n = (size_t) (w->count * o->records);
    char *pre = n && rec <= SIZE_MAX / n ? malloc(n * rec) : NULL;
    for (size_t i = 0; pre && i < n; i++) {
        char *p = pre + i * rec;
        int kn;
        make_record(w, noise, p + 1, &kn, p + 1 + KEY_MAX);
        p[0] = (char) kn;
    }
    if (!pre && n) w->rc = LS_ENOMEM;
    pthread_mutex_lock(&o->mu);
    o->ready++;
    pthread_cond_broadcast(&o->cond);
    while (!o->go)
        pthread_cond_wait(&o->cond, &o->mu);
    pthread_mutex_unlock(&o->mu);
    return pre;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    load_opts_t *o = w->o;
    double noise = noise_for(o->compressibility);
    char *val = malloc(o->value_size + 1);
    char *pre = o->pregenerate ? pregenerate(w, noise) : NULL;
    size_t rec = 1 + KEY_MAX + o->value_size, at = 0;
    uint64_t start = ls_mono_ns();
    for (uint64_t i = 0; i < w->count && val && w->rc == 0; i++) {
        pace(o, start, i);
        ls_txn_t *t;
        if ((w->rc = ls_txn_begin(w->db, &t)) != 0) break;
        XXH3_state_t *h = o->ack_fd >= 0 ? XXH3_createState() : NULL;
        if (h) XXH3_64bits_reset(h);
        for (uint64_t j = 0; j < o->records && w->rc == 0; j++) {
            char keybuf[KEY_MAX];
            const char *key = keybuf, *value = val;
            int kn;
            if (pre) {
                const char *p = pre + rec * at++;
                kn = p[0];
                key = p + 1;
                value = p + 1 + KEY_MAX;
            } else {
                make_record(w, noise, keybuf, &kn, val);
            }
            w->rc = ls_txn_put(t, key, (size_t) kn, value, o->value_size);
            w->bytes += (uint64_t) kn + o->value_size;
            if (h)
                XXH3_64bits_update(h, key, (size_t) kn),
                    XXH3_64bits_update(h, value, o->value_size);
        }
        char line[64];
        int ln = 0;
        if (h && w->rc == 0) {
            uint64_t n = atomic_fetch_add(&o->next_txn, 1) + 1;
            char mk[64], hex[24];
            ln = snprintf(line, sizeof(line), "%" PRIu64 "-%" PRIu64 "\n", o->run, n);
            int mn = snprintf(mk, sizeof(mk), "txn/%.*s", ln - 1, line);
            snprintf(hex, sizeof(hex), "%016" PRIx64, (uint64_t) XXH3_64bits_digest(h));
            w->rc = ls_txn_put(t, mk, (size_t) mn, hex, 16);
        }
        XXH3_freeState(h);
        if (w->rc) {
            ls_txn_abort(t);
            break;
        }
        if ((w->rc = ls_txn_commit(t)) == 0) {
            w->records += o->records;
            if (ln && write(o->ack_fd, line, (size_t) ln) != ln) w->rc = ls_err_from_errno(errno);
        }
    }
    if (!val) w->rc = LS_ENOMEM;
    free(val);
    free(pre);
    return NULL;
}

/* The ack log opened, dir's database opened and, with an ack log, a run started in it. 0, or 1
 * with the reason printed (nothing left open). */
static int open_target(load_opts_t *o, const char *dir, ls_db_t **db)
{
    int rc;
    if (o->ack_log &&
        (o->ack_fd = open(o->ack_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0) {
        fprintf(stderr, "logship load: cannot open the ack log %s: %s\n", o->ack_log,
                strerror(errno));
        return 1;
    }
    ls_db_options_t dbo = {.target_size = o->target_size,
                           .commit_level = o->level,
                           .sync_copies = (uint32_t) o->sync_copies,
                           .sync_timeout_ms = o->sync_timeout_ms};
    if ((rc = ls_db_open(dir, &dbo, db)) != 0) {
        fprintf(stderr, "logship load: %s\n", ls_db_open_error());
        if (o->ack_fd >= 0) close(o->ack_fd);
        return 1;
    }
    if (o->ack_fd >= 0 && (rc = start_run(*db, &o->run)) != 0) {
        fprintf(stderr, "logship load: cannot start a run of %s: %s (%s)\n", dir, ls_strerror(rc),
                ls_db_errmsg(*db));
        ls_db_close(*db);
        close(o->ack_fd);
        return 1;
    }
    return 0;
}

/* The transactions shared out between o->threads workers (w, th: o->threads each, NULL when
 * out of memory) that run to their end; *t0 the clock's start (once every worker drew its
 * records, when pregenerated). The first error of a worker or of starting one, else 0;
 * *records and *bytes: what the workers committed. */
static int run_workers(load_opts_t *o, ls_db_t *db, worker_t *w, pthread_t *th, uint64_t *t0,
                       uint64_t *records, uint64_t *bytes)
{
    int rc = 0;
    uint64_t started = 0;
    *t0 = ls_mono_ns();
    for (uint64_t i = 0; w && th && i < o->threads; i++) {
        w[i] =
            (worker_t){.db = db,
                       .o = o,
                       .id = i,
                       .rng = o->seed + i,
                       .count = o->transactions / o->threads + (i < o->transactions % o->threads)};
        int err = pthread_create(&th[i], NULL, worker_main, &w[i]);
        if (err) {
            rc = ls_err_from_errno(err);
            break;
        }
        started++;
    }
    if (o->pregenerate) { /* the clock starts once every thread drew its records */
        pthread_mutex_lock(&o->mu);
        while (o->ready < started)
            pthread_cond_wait(&o->cond, &o->mu);
        o->go = true;
        pthread_cond_broadcast(&o->cond);
        pthread_mutex_unlock(&o->mu);
        *t0 = ls_mono_ns();
    }
    for (uint64_t i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        *records += w[i].records;
        *bytes += w[i].bytes;
        if (w[i].rc && !rc) rc = w[i].rc;
    }
    return rc;
}

int ls_cmd_load(int argc, char **argv)
{
    load_opts_t o;
    const char *dir;
    ls_db_t *db;
    int rc = ls_load_parse_args(argc, argv, &o, &dir);
    if (rc) return rc;
    if (open_target(&o, dir, &db)) return 1;
    worker_t *w = calloc(o.threads, sizeof(*w));
    pthread_t *th = calloc(o.threads, sizeof(*th));
    pthread_mutex_init(&o.mu, NULL);
    pthread_cond_init(&o.cond, NULL);
    uint64_t t0, records = 0, bytes = 0;
    rc = run_workers(&o, db, w, th, &t0, &records, &bytes);
    double secs = (double) (ls_mono_ns() - t0) / 1e9;
    if (!w || !th) rc = LS_ENOMEM;
    if (rc == 0) rc = ls_db_roll(db); /* so the report counts the last generation */
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    if (rc) fprintf(stderr, "logship load: %s (%s)\n", ls_strerror(rc), ls_db_errmsg(db));
    int crc = ls_db_close(db);
    double closed_secs = (double) (ls_mono_ns() - t0) / 1e9;
    if (!rc && crc) fprintf(stderr, "logship load: close: %s\n", ls_strerror(crc));
    ls_load_report(&o, &s, records, bytes, secs, closed_secs);
    pthread_cond_destroy(&o.cond);
    pthread_mutex_destroy(&o.mu);
    free(w);
    free(th);
    if (o.ack_fd >= 0) close(o.ack_fd);
    return rc || crc ? 1 : 0;
}
