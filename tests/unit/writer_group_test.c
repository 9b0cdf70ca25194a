/* writer: group commit against a replay of the logs: concurrent committers' store equals a
 * replay of the generations they wrote (the applier merging durable batches across rolls), and
 * a lone committer writes its own batch. Split from writer_test.c; helpers in writer_util.h. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <logship/db.h>

#include "core/core.h"
#include "harness.h"
#include "store/store.h"
#include "writer_util.h"

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

static void dump_free(dump_t *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->keys[i]);
        free(d->vals[i]);
    }
    free(d->keys);
    free(d->vals);
}

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
    ls_db_t *db = open_sized(dir, 8192);
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
    cr_assert_leq(s.applies, s.batches, "the applier merges batches, never splits one");
    cr_assert_leq(s.led_batches, s.batches, "lone committers and the flusher share the batches");
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
    dump_free(&a);
    dump_free(&b);
    free(r.ops);
    ls_store_close(active);
    ls_store_close(r.into);
    ls_h_rmtree_free(dir);
}

/* A lone committer (nothing queued, nothing being written) writes its batch in its own thread:
 * one thread committing one transaction at a time leads every batch, across rolls, and each is
 * durable and readable when its commit returns. */
Test(writer, a_lone_committer_writes_its_own_batch)
{
    char *dir = ls_h_tmpdir("writer");
    ls_db_t *db = open_sized(dir, 8192);
    ls_db_stats_t s;
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(commit_tx(db, i, 3, 100), 0);
        cr_assert(has_tx(db, i, 2), "transaction %d readable when its commit returned", i);
        cr_assert_eq(ls_db_stats(db, &s), 0);
        cr_assert_eq(s.last_lsn, (uint64_t) (i + 1) * 4, "dense LSNs (3 puts and a COMMIT)");
    }
    cr_assert_eq(s.batches, 100);
    cr_assert_eq(s.led_batches, 100, "every batch written by its committer (%llu)",
                 (unsigned long long) s.led_batches);
    cr_assert_gt(s.generations_closed, 3, "rolls on the way");
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree_free(dir);
}
