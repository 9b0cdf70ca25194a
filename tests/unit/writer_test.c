/*
 * writer: rolls, the generation chain, oversized transactions, crash recovery (torn tails at
 * every byte, garbage tails, kills at the fault points), group commit against a replay of the
 * logs, identity, map growth, idle roll, close.
 *
 * Crashes are simulated in a forked child: it arms LS_FAULTS before its first fault point (the
 * parent never hits one before forking) or simply _exit()s without closing.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <logship/db.h>

#include "core/core.h"
#include "harness.h"
#include "store/store.h"

#define PATHLEN 1400

static ls_db_options_t quiet_opts(void)
{
    return (ls_db_options_t){.no_idle_roll = true, .checkpoint_ms = 3600000};
}

static ls_db_t *open_db(const char *dir, const ls_db_options_t *o)
{
    ls_db_t *db = NULL;
    int rc = ls_db_open(dir, o, &db);
    cr_assert_eq(rc, 0, "open %s: %s (%s)", dir, ls_db_open_error(), ls_strerror(rc));
    return db;
}

/* Commits transaction i: nrec puts of "k<i>-<j>" = value of vlen bytes. */
static int commit_tx(ls_db_t *db, int i, int nrec, size_t vlen)
{
    ls_txn_t *t;
    cr_assert_eq(ls_txn_begin(db, &t), 0);
    char *val = malloc(vlen + 1);
    for (int j = 0; j < nrec; j++) {
        char key[48];
        int n = snprintf(key, sizeof(key), "k%d-%d", i, j);
        memset(val, 'a' + (i + j) % 26, vlen);
        snprintf(val, vlen + 1, "v%d-%d", i, j);
        cr_assert_eq(ls_txn_put(t, key, (size_t) n, val, vlen), 0);
    }
    free(val);
    return ls_txn_commit(t);
}

static bool has_tx(ls_db_t *db, int i, int j)
{
    char key[48], want[48];
    int n = snprintf(key, sizeof(key), "k%d-%d", i, j);
    snprintf(want, sizeof(want), "v%d-%d", i, j);
    void *v = NULL;
    size_t len = 0;
    int rc = ls_db_get(db, key, (size_t) n, &v, &len);
    bool ok = rc == 0 && !strcmp(v, want);
    free(v);
    return ok;
}

typedef struct {
    char name[PATHLEN]; /* path */
    uint64_t gen;       /* generation number */
} genfile_t;

/* Closed generations of dir, sorted; returns the count. */
static int list_gens(const char *dir, genfile_t *out, int max)
{
    char logs[PATHLEN - 300];
    snprintf(logs, sizeof(logs), "%s/logs", dir);
    DIR *d = opendir(logs);
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < max;) {
        uint32_t ep;
        uint64_t g;
        if (ls_gen_name_parse(e->d_name, "E00", &ep, &g) != 0) continue;
        snprintf(out[n].name, PATHLEN, "%s/%s", logs, e->d_name);
        out[n++].gen = g;
    }
    closedir(d);
    for (int i = 0; i < n; i++) /* insertion sort by generation */
        for (int j = i; j > 0 && out[j].gen < out[j - 1].gen; j--) {
            genfile_t tmp = out[j];
            out[j] = out[j - 1];
            out[j - 1] = tmp;
        }
    return n;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void cur_path(const char *dir, char *out)
{
    snprintf(out, PATHLEN, "%s/logs/E00.log", dir);
}

/* Runs body(dir, arg) in a forked child with LS_FAULTS=faults; returns its exit status. */
static int in_child(const char *faults, void (*body)(const char *, int), const char *dir, int arg)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (faults) setenv("LS_FAULTS", faults, 1);
        body(dir, arg);
        _exit(0); /* a crash: no ls_db_close */
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Child: commits n small transactions (3 records each); before the last one writes the current
 * log's size to <dir>.pos. */
static void child_commit(const char *dir, int n)
{
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = NULL;
    if (ls_db_open(dir, &o, &db)) _exit(3);
    for (int i = 0; i < n; i++) {
        if (i == n - 1) {
            char p[PATHLEN], c[PATHLEN];
            snprintf(p, sizeof(p), "%s.pos", dir);
            cur_path(dir, c);
            FILE *f = fopen(p, "w");
            fprintf(f, "%lld\n", (long long) file_size(c));
            fclose(f);
        }
        if (commit_tx(db, i, 2, 8)) _exit(4);
    }
}

/* Child: commits n transactions then rolls. */
static void child_commit_roll(const char *dir, int n)
{
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = NULL;
    if (ls_db_open(dir, &o, &db)) _exit(3);
    for (int i = 0; i < n; i++)
        if (commit_tx(db, i, 2, 8)) _exit(4);
    ls_db_roll(db);
    _exit(5); /* the fault point should have ended us */
}

Test(writer, rolls_at_target_size_and_chains_generations)
{
    char *dir = ls_h_tmpdir("writer");
    ls_db_options_t o = quiet_opts();
    o.target_size = 4096;
    ls_db_t *db = open_db(dir, &o);
    for (int i = 0; i < 200; i++)
        cr_assert_eq(commit_tx(db, i, 2, 40), 0);
    ls_db_stats_t st;
    ls_db_stats(db, &st);
    cr_assert_gt(st.generations_closed, 5);
    cr_assert_eq(st.last_lsn, 600);
    cr_assert_eq(ls_db_close(db), 0);

    genfile_t g[64];
    int n = list_gens(dir, g, 64);
    cr_assert_gt(n, 5);
    uint8_t prev[LS_DIGEST_SIZE] = {0};
    uint64_t next_lsn = 1;
    for (int i = 0; i < n; i++) {
        cr_assert_eq(g[i].gen, (uint64_t) i + 1, "generations numbered without gaps");
        cr_assert_leq(file_size(g[i].name), 4096, "%s exceeds the target", g[i].name);
        ls_gen_expect_t ex = {.generation = g[i].gen, .first_lsn = next_lsn, .prev_digest = prev};
        ls_gen_info_t info;
        ls_gen_verdict_t v;
        cr_assert_eq(ls_gen_scan_file(g[i].name, &ex, NULL, NULL, &info, &v), 0, "%s: %s",
                     g[i].name, v.msg);
        cr_assert(info.closed);
        memcpy(prev, info.digest, LS_DIGEST_SIZE);
        next_lsn = info.last_lsn + 1;
    }
    cr_assert_eq(next_lsn, 601);
    ls_h_rmtree(dir);
    free(dir);
}

typedef struct {
    uint64_t first_txid; /* txid of the first record of this generation */
    uint64_t last_txid;  /* txid of the last record */
    bool first_seen;     /* first_txid set */
    uint64_t commits;    /* COMMIT records */
} txids_t;

static int note_txids(void *ctx, const ls_record_t *r)
{
    txids_t *t = ctx;
    if (!t->first_seen) t->first_txid = r->txid;
    t->first_seen = true;
    t->last_txid = r->txid;
    if (r->type == LS_REC_COMMIT) t->commits++;
    return 0;
}

Test(writer, no_transaction_spans_generations)
{
    char *dir = ls_h_tmpdir("writer");
    ls_db_options_t o = quiet_opts();
    o.target_size = 2048;
    ls_db_t *db = open_db(dir, &o);
    for (int i = 0; i < 120; i++) /* transactions of varying size, 1..7 records */
        cr_assert_eq(commit_tx(db, i, 1 + i % 7, 30), 0);
    cr_assert_eq(ls_db_close(db), 0);
    genfile_t g[128];
    int n = list_gens(dir, g, 128);
    cr_assert_gt(n, 10);
    uint64_t prev_last = 0, commits = 0;
    for (int i = 0; i < n; i++) {
        txids_t t = {0};
        ls_gen_verdict_t v;
        ls_gen_info_t info;
        cr_assert_eq(ls_gen_scan_file(g[i].name, NULL, note_txids, &t, &info, &v), 0, "%s", v.msg);
        cr_assert(info.closed, "%s has a valid trailer (it never ends inside a transaction)",
                  g[i].name);
        cr_assert_gt(t.first_txid, prev_last, "%s starts with a new transaction", g[i].name);
        cr_assert_eq(info.last_txid, t.last_txid, "%s ends with a COMMIT", g[i].name);
        prev_last = t.last_txid;
        commits += t.commits;
    }
    cr_assert_eq(commits, 120);
    ls_h_rmtree(dir);
    free(dir);
}

Test(writer, oversized_transaction_gets_its_own_generation_and_beyond_cap_is_refused)
{
    char *dir = ls_h_tmpdir("writer");
    ls_db_options_t o = quiet_opts();
    o.target_size = 4096;
    o.max_generation = 64 * 1024;
    ls_db_t *db = open_db(dir, &o);
    cr_assert_eq(commit_tx(db, 0, 2, 100), 0);
    cr_assert_eq(commit_tx(db, 1, 20, 1000), 0); /* ~20 KB: oversized but within the cap */
    cr_assert_eq(commit_tx(db, 2, 2, 100), 0);
    ls_db_stats_t before, after;
    ls_db_stats(db, &before);
    cr_assert_eq(commit_tx(db, 3, 70, 1000), LS_ETOOBIG); /* ~70 KB: beyond the cap */
    ls_db_stats(db, &after);
    cr_assert_eq(after.last_lsn, before.last_lsn, "nothing written");
    cr_assert_eq(after.last_txid, before.last_txid);
    cr_assert(!has_tx(db, 3, 0));
    cr_assert_eq(commit_tx(db, 4, 2, 100), 0, "the database is still healthy");
    cr_assert_eq(ls_db_close(db), 0);

    genfile_t g[16];
    int n = list_gens(dir, g, 16);
    cr_assert_eq(n, 3, "tx0 | oversized tx1 | tx2+tx4");
    cr_assert_gt(file_size(g[1].name), 4096);
    cr_assert_leq(file_size(g[1].name), 64 * 1024);
    txids_t t = {0};
    cr_assert_eq(ls_gen_scan_file(g[1].name, NULL, note_txids, &t, NULL, NULL), 0);
    cr_assert_eq(t.commits, 1, "the oversized transaction is alone in its generation");
    ls_h_rmtree(dir);
    free(dir);
}

static void read_pos(const char *dir, long long *pos)
{
    char p[PATHLEN];
    snprintf(p, sizeof(p), "%s.pos", dir);
    FILE *f = fopen(p, "r");
    cr_assert_not_null(f);
    cr_assert_eq(fscanf(f, "%lld", pos), 1);
    fclose(f);
    unlink(p);
}

Test(writer, torn_tail_at_every_byte_of_the_last_transaction_recovers_to_the_last_commit)
{
    char *tmpl = ls_h_tmpdir("writer-tmpl");
    /* The child dies after writing its 6th transaction, before the fsync and the store apply. */
    int st = in_child("writer.commit.after_write=exit@6", child_commit, tmpl, 6);
    cr_assert_eq(st, LS_FAULT_EXIT_CODE);
    long long pos;
    read_pos(tmpl, &pos);
    char cur[PATHLEN];
    cur_path(tmpl, cur);
    long long end = file_size(cur);
    cr_assert_eq(end - pos, 3 * 32 + 2 * (4 + 8), "two puts and a COMMIT: %lld", end - pos);
    char *work = ls_h_tmpdir("writer-work");
    char cmd[3 * PATHLEN];
    for (long long cut = pos; cut <= end; cut++) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s && cp -a %s %s", work, tmpl, work);
        cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 10000), 0);
        cur_path(work, cur);
        cr_assert_eq(truncate(cur, (off_t) cut), 0);
        ls_db_options_t o = quiet_opts();
        ls_db_t *db = open_db(work, &o);
        ls_db_stats_t s;
        ls_db_stats(db, &s);
        for (int i = 0; i < 5; i++)
            cr_assert(has_tx(db, i, 0) && has_tx(db, i, 1), "cut %lld: tx %d present", cut, i);
        bool complete = cut == end;
        cr_assert_eq(has_tx(db, 5, 0), complete, "cut %lld: last tx iff complete", cut);
        cr_assert_eq(has_tx(db, 5, 1), complete, "cut %lld", cut);
        cr_assert_eq(s.last_lsn, complete ? 18u : 15u, "cut %lld", cut);
        cr_assert_eq(s.truncated_bytes, complete ? 0u : (uint64_t) (cut - pos), "cut %lld", cut);
        cr_assert_eq(s.recovered_records, complete ? 3u : 0u, "cut %lld", cut);
        cr_assert_eq(file_size(cur), complete ? end : pos, "cut %lld: tail removed", cut);
        cr_assert_eq(commit_tx(db, 100, 1, 8), 0, "cut %lld: commits continue", cut);
        cr_assert_eq(ls_db_close(db), 0);
    }
    ls_h_rmtree(work);
    ls_h_rmtree(tmpl);
    free(work);
    free(tmpl);
}

/* Appends a tail to the current log of a crashed database and checks recovery removes it. */
static void check_tail(const uint8_t *tail, size_t len)
{
    char *dir = ls_h_tmpdir("writer");
    cr_assert_eq(in_child(NULL, child_commit, dir, 4), 0);
    long long pos;
    read_pos(dir, &pos);
    char cur[PATHLEN];
    cur_path(dir, cur);
    off_t before = file_size(cur);
    int fd = open(cur, O_WRONLY | O_APPEND);
    cr_assert_eq(write(fd, tail, len), (ssize_t) len);
    close(fd);
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = open_db(dir, &o);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.truncated_bytes, len);
    cr_assert_eq(s.last_lsn, 12);
    cr_assert_eq(file_size(cur), before, "tail removed");
    for (int i = 0; i < 4; i++)
        cr_assert(has_tx(db, i, 0) && has_tx(db, i, 1));
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree(dir);
    free(dir);
}

Test(writer, tail_of_zeros_is_removed)
{
    uint8_t z[4096] = {0};
    check_tail(z, sizeof(z));
}

Test(writer, tail_of_random_bytes_is_removed)
{
    uint8_t r[3000];
    srand(7);
    for (size_t i = 0; i < sizeof(r); i++)
        r[i] = (uint8_t) rand();
    check_tail(r, sizeof(r));
}

Test(writer, tail_of_records_from_another_generation_is_removed)
{
    /* Records that would be valid right here (next LSN, next txid) but sealed with the seed of
     * an older generation, as a recycled file would hold. */
    uint8_t dbid[LS_DBID_LEN] = {1, 2, 3};
    uint64_t seed = ls_gen_seed(dbid, 1, 1);
    uint8_t tail[512];
    size_t len = 0;
    const char *k = "k9-0", *v = "stale!!!";
    ls_record_t r = {.type = LS_REC_PUT,
                     .lsn = 13,
                     .txid = 5,
                     .key = (const uint8_t *) k,
                     .key_len = 4,
                     .value = (const uint8_t *) v,
                     .value_len = 8};
    len += ls_record_encode(&r, seed, tail + len);
    r = (ls_record_t){.type = LS_REC_COMMIT, .lsn = 14, .txid = 5};
    len += ls_record_encode(&r, seed, tail + len);
    check_tail(tail, len);
}

Test(writer, kill_between_rename_and_directory_fsync_recovers)
{
    char *dir = ls_h_tmpdir("writer");
    cr_assert_eq(in_child("writer.roll.after_rename=exit", child_commit_roll, dir, 5),
                 LS_FAULT_EXIT_CODE);
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = open_db(dir, &o);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.last_closed, 1);
    cr_assert_eq(s.current_generation, 2, "the next current log was created");
    cr_assert_eq(s.last_lsn, 15);
    for (int i = 0; i < 5; i++)
        cr_assert(has_tx(db, i, 0) && has_tx(db, i, 1));
    cr_assert_eq(commit_tx(db, 7, 1, 8), 0);
    cr_assert_eq(ls_db_close(db), 0);
    genfile_t g[8];
    cr_assert_eq(list_gens(dir, g, 8), 2);
    ls_h_rmtree(dir);
    free(dir);
}

Test(writer, kill_after_trailer_before_rename_finishes_the_close)
{
    char *dir = ls_h_tmpdir("writer");
    cr_assert_eq(in_child("writer.roll.after_trailer=exit", child_commit_roll, dir, 5),
                 LS_FAULT_EXIT_CODE);
    genfile_t g[8];
    cr_assert_eq(list_gens(dir, g, 8), 0, "not renamed yet");
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = open_db(dir, &o);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.last_closed, 1);
    cr_assert_eq(s.last_lsn, 15);
    cr_assert(has_tx(db, 4, 1));
    cr_assert_eq(ls_db_close(db), 0);
    cr_assert_eq(list_gens(dir, g, 8), 1, "the recovered close renamed it");
    ls_h_rmtree(dir);
    free(dir);
}

Test(writer, kill_after_log_fsync_before_store_apply_recovers_from_the_log)
{
    char *dir = ls_h_tmpdir("writer");
    cr_assert_eq(in_child("writer.commit.after_fsync=exit@3", child_commit, dir, 5),
                 LS_FAULT_EXIT_CODE);
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = open_db(dir, &o);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.recovered_records, 3, "the durable transaction was replayed");
    cr_assert_eq(s.last_lsn, 9);
    cr_assert(has_tx(db, 2, 0) && has_tx(db, 2, 1));
    cr_assert(!has_tx(db, 3, 0));
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree(dir);
    free(dir);
}

/* Child: commit 1 succeeds, commit 2 fails (fault), commit 3 must get the same error. */
static void child_sticky(const char *dir, int n)
{
    (void) n;
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = NULL;
    if (ls_db_open(dir, &o, &db)) _exit(3);
    if (commit_tx(db, 0, 1, 8) != 0) _exit(4);
    if (commit_tx(db, 1, 1, 8) != LS_EIO) _exit(5);
    if (commit_tx(db, 2, 1, 8) != LS_EIO) _exit(6);
    if (ls_db_roll(db) != LS_EIO) _exit(7);
    if (!ls_h_contains(ls_db_errmsg(db), "fdatasync")) _exit(8);
    _exit(ls_db_close(db) == LS_EIO ? 0 : 9);
}

Test(writer, failed_log_sync_fails_the_database_stickily)
{
    char *dir = ls_h_tmpdir("writer");
    cr_assert_eq(in_child("writer.commit.after_write=fail@2", child_sticky, dir, 0), 0);
    ls_h_rmtree(dir);
    free(dir);
}

/* ---- group commit against a replay of the logs ------------------------------------------ */

typedef struct {
    ls_db_t *db; /* shared database */
    int id;      /* thread number */
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    unsigned seed = (unsigned) w->id * 7919u + 1;
    for (int i = 0; i < 150; i++) {
        ls_txn_t *t;
        if (ls_txn_begin(w->db, &t)) return (void *) 1;
        for (int j = 0; j < 3; j++) {
            char key[16], val[64];
            int kn = snprintf(key, sizeof(key), "key%03d", rand_r(&seed) % 200);
            int vn = snprintf(val, sizeof(val), "t%d-i%d-j%d", w->id, i, j);
            if (rand_r(&seed) % 5 == 0)
                ls_txn_del(t, key, (size_t) kn);
            else
                ls_txn_put(t, key, (size_t) kn, val, (size_t) vn);
        }
        if (ls_txn_commit(t)) return (void *) 2;
    }
    return NULL;
}

typedef struct {
    ls_record_t *ops; /* pending records of the open transaction */
    size_t n;         /* entries in ops */
    ls_store_t *into; /* the scratch store */
    uint64_t last;    /* last LSN seen */
} replay_t;

static int apply_ops(void *ctx, ls_store_txn_t *st)
{
    replay_t *r = ctx;
    for (size_t i = 0; i < r->n; i++) {
        const ls_record_t *x = &r->ops[i];
        int rc = x->type == LS_REC_PUT
                     ? ls_store_put(st, x->key, x->key_len, x->value, x->value_len)
                     : ls_store_del(st, x->key, x->key_len);
        if (rc) return rc;
    }
    return 0;
}

static int replay_rec(void *ctx, const ls_record_t *rec)
{
    replay_t *r = ctx;
    cr_assert_eq(rec->lsn, r->last + 1, "LSNs dense across generations");
    r->last = rec->lsn;
    if (rec->type != LS_REC_COMMIT) {
        r->ops[r->n++] = *rec;
        return 0;
    }
    ls_store_meta_t m;
    ls_store_meta(r->into, &m);
    m.lsn = rec->lsn;
    cr_assert_eq(ls_store_apply(r->into, apply_ops, r, &m), 0);
    r->n = 0;
    return 0;
}

typedef struct {
    char **keys, **vals; /* dumped pairs */
    size_t n;            /* entries */
} dump_t;

static int dump_kv(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    dump_t *d = ctx;
    d->keys = realloc(d->keys, (d->n + 1) * sizeof(char *));
    d->vals = realloc(d->vals, (d->n + 1) * sizeof(char *));
    d->keys[d->n] = strndup(k, kl);
    d->vals[d->n] = strndup(v, vl);
    d->n++;
    return 0;
}

Test(writer, concurrent_commits_store_equals_a_replay_of_the_logs, .timeout = 60)
{
    char *dir = ls_h_tmpdir("writer");
    ls_db_options_t o = quiet_opts();
    o.target_size = 8192;
    ls_db_t *db = open_db(dir, &o);
    pthread_t th[6];
    worker_t w[6];
    for (int i = 0; i < 6; i++) {
        w[i] = (worker_t){db, i};
        pthread_create(&th[i], NULL, worker, &w[i]);
    }
    for (int i = 0; i < 6; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        cr_assert_null(ret, "worker %d failed", i);
    }
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.commits, 900);
    cr_assert_leq(s.batches, s.commits);
    cr_assert_eq(ls_db_close(db), 0); /* rolls: every record is in a closed generation */

    char scratch[PATHLEN], storedir[PATHLEN];
    snprintf(scratch, sizeof(scratch), "%s/scratch", dir);
    snprintf(storedir, sizeof(storedir), "%s/store", dir);
    ls_store_options_t so = {.create = true};
    replay_t r = {.ops = calloc(16, sizeof(ls_record_t))};
    cr_assert_eq(ls_store_open(scratch, &so, &r.into, NULL, 0), 0);
    genfile_t g[512];
    int n = list_gens(dir, g, 512);
    cr_assert_gt(n, 3);
    for (int i = 0; i < n; i++) {
        ls_gen_verdict_t v;
        cr_assert_eq(ls_gen_scan_file(g[i].name, NULL, replay_rec, &r, NULL, &v), 0, "%s", v.msg);
    }
    cr_assert_eq(r.last, 900 * 4);
    ls_store_t *active;
    so.create = false;
    cr_assert_eq(ls_store_open(storedir, &so, &active, NULL, 0), 0);
    dump_t a = {0}, b = {0};
    cr_assert_eq(ls_store_iterate(active, dump_kv, &a), 0);
    cr_assert_eq(ls_store_iterate(r.into, dump_kv, &b), 0);
    cr_assert_gt(a.n, 100);
    cr_assert_eq(a.n, b.n, "same key count: active %zu, replay %zu", a.n, b.n);
    for (size_t i = 0; i < a.n; i++) {
        cr_assert_str_eq(a.keys[i], b.keys[i]);
        cr_assert_str_eq(a.vals[i], b.vals[i], "key %s", a.keys[i]);
    }
    ls_store_meta_t m;
    ls_store_meta(active, &m);
    cr_assert_eq(m.lsn, 3600);
    ls_store_close(active);
    ls_store_close(r.into);
    ls_h_rmtree(dir);
    free(dir);
}

/* ---- identity, map, idle roll, close ---------------------------------------------------- */

Test(writer, reopening_keeps_the_database_id)
{
    char *dir = ls_h_tmpdir("writer");
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = open_db(dir, &o);
    ls_db_stats_t a, b;
    ls_db_stats(db, &a);
    static const uint8_t zero[LS_DBID_LEN];
    cr_assert_neq(memcmp(a.dbid, zero, LS_DBID_LEN), 0, "a random id");
    cr_assert_eq(commit_tx(db, 0, 1, 8), 0);
    cr_assert_eq(ls_db_close(db), 0);
    db = open_db(dir, &o);
    ls_db_stats(db, &b);
    cr_assert_arr_eq(a.dbid, b.dbid, LS_DBID_LEN);
    cr_assert_eq(b.epoch, 1);
    cr_assert(has_tx(db, 0, 0));
    cr_assert_eq(ls_db_close(db), 0);
    o.no_create = true;
    char none[PATHLEN];
    snprintf(none, sizeof(none), "%s/none", dir);
    cr_assert_eq(ls_db_open(none, &o, &db), LS_ENOENT);
    cr_assert(ls_h_contains(ls_db_open_error(), "history"), "%s", ls_db_open_error());
    ls_h_rmtree(dir);
    free(dir);
}

Test(writer, store_of_another_database_is_refused)
{
    char *a = ls_h_tmpdir("writer-a"), *b = ls_h_tmpdir("writer-b");
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = open_db(a, &o);
    ls_db_stats_t sa, sb;
    ls_db_stats(db, &sa);
    cr_assert_eq(ls_db_close(db), 0);
    db = open_db(b, &o);
    ls_db_stats(db, &sb);
    cr_assert_eq(ls_db_close(db), 0);
    char cmd[3 * PATHLEN];
    snprintf(cmd, sizeof(cmd), "rm -rf %s/store && cp -a %s/store %s/store", a, b, a);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 10000), 0);
    cr_assert_eq(ls_db_open(a, &o, &db), LS_EDBID);
    char ha[33], hb[33];
    ls_hex(sa.dbid, LS_DBID_LEN, ha);
    ls_hex(sb.dbid, LS_DBID_LEN, hb);
    const char *msg = ls_db_open_error();
    cr_assert(ls_h_contains(msg, ha) && ls_h_contains(msg, hb), "names both ids: %s", msg);
    ls_h_rmtree(a);
    ls_h_rmtree(b);
    free(a);
    free(b);
}

Test(writer, map_full_grows_the_store)
{
    char *dir = ls_h_tmpdir("writer");
    ls_db_options_t o = quiet_opts();
    o.map_size = 128 * 1024;
    ls_db_t *db = open_db(dir, &o);
    for (int i = 0; i < 100; i++) /* 100 x 10 x 2 KB = 2 MB, 16x the initial map */
        cr_assert_eq(commit_tx(db, i, 10, 2000), 0, "tx %d: %s", i, ls_db_errmsg(db));
    for (int i = 0; i < 100; i += 9)
        cr_assert(has_tx(db, i, 9));
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree(dir);
    free(dir);
}

static bool rolled(void *ctx)
{
    ls_db_stats_t s;
    ls_db_stats(ctx, &s);
    return s.generations_closed >= 1;
}

Test(writer, idle_current_log_is_rolled_after_idle_roll_ms)
{
    char *dir = ls_h_tmpdir("writer");
    ls_db_options_t o = {.idle_roll_ms = 150};
    ls_db_t *db = open_db(dir, &o);
    cr_assert_eq(commit_tx(db, 0, 1, 8), 0);
    uint64_t t0 = ls_mono_ns();
    cr_assert(ls_h_wait_for(rolled, db, 5000), "rolled within 5 s");
    cr_assert_geq(ls_mono_ns() - t0, 100 * 1000000ull, "not before it was idle");
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.current_generation, 2);
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree(dir);
    free(dir);
}

Test(writer, close_rolls_a_non_empty_log_and_checkpoints)
{
    char *dir = ls_h_tmpdir("writer");
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = open_db(dir, &o);
    cr_assert_eq(ls_db_roll(db), 0, "rolling an empty log does nothing");
    cr_assert_eq(commit_tx(db, 0, 2, 8), 0);
    cr_assert_eq(ls_db_close(db), 0);
    genfile_t g[4];
    cr_assert_eq(list_gens(dir, g, 4), 1);
    char cur[PATHLEN];
    cur_path(dir, cur);
    cr_assert_eq(file_size(cur), LS_GEN_HEADER_SIZE, "the new current log holds only a header");
    db = open_db(dir, &o);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.checkpoint_lsn, 3);
    cr_assert_eq(s.recovered_records, 0);
    cr_assert_eq(ls_db_close(db), 0);
    cr_assert_eq(list_gens(dir, g, 4), 1, "closing with an empty log adds nothing");
    ls_h_rmtree(dir);
    free(dir);
}
