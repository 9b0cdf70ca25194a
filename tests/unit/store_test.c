/* store: LMDB with the meta record in the same transaction, identity check, map growth. */
#include <criterion/criterion.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/core.h"
#include "harness.h"
#include "store/env.h"
#include "store/store.h"

#include "store_test_util.h"

Test(store, put_get_and_meta_commit_together)
{
    char *dir = ls_h_tmpdir("store");
    ls_store_t *s = open_store(dir, ID_A, 0);
    ls_store_meta_t m;
    ls_store_meta(s, &m);
    cr_assert_arr_eq(m.dbid, ID_A, LS_DBID_LEN);
    cr_assert_eq(m.lsn, 0);
    m.lsn = 42;
    m.txid = 7;
    m.generation = 3;
    m.epoch = 1;
    struct puts p = {.first = 0, .count = 100, .value_size = 20, .fail_at = -1};
    cr_assert_eq(ls_store_apply(s, put_range, &p, &m), 0);
    void *v;
    size_t len;
    cr_assert_eq(ls_store_get(s, "k00000042", 9, &v, &len), 0);
    cr_assert_eq(len, 20);
    cr_assert(!strncmp(v, "value-42-", 9));
    free(v);
    cr_assert_eq(ls_store_get(s, "nope", 4, &v, &len), LS_ENOENT);

    /* A failing callback aborts everything: neither data nor meta change. */
    ls_store_meta_t m2 = m;
    m2.lsn = 99;
    struct puts bad = {.first = 1000, .count = 10, .value_size = 8, .fail_at = 5};
    cr_assert_eq(ls_store_apply(s, put_range, &bad, &m2), LS_EINVAL);
    cr_assert_eq(ls_store_get(s, "k00001000", 9, &v, &len), LS_ENOENT);
    ls_store_close(s);

    s = open_store(dir, ID_A, 0);
    ls_store_meta(s, &m2);
    cr_assert_eq(m2.lsn, 42, "meta persisted with the data, the failed apply left no trace");
    cr_assert_eq(m2.txid, 7);
    cr_assert_eq(m2.generation, 3);
    ls_store_stats_t st;
    cr_assert_eq(ls_store_stats(s, &st), 0);
    cr_assert_eq(st.entries, 100);
    ls_store_close(s);
    ls_h_rmtree_free(dir);
}

Test(store, refuses_store_of_another_database)
{
    char *dir = ls_h_tmpdir("store");
    ls_store_close(open_store(dir, ID_A, 0));
    ls_store_options_t o = {.dbid = ID_B};
    ls_store_t *s = NULL;
    char err[256] = "";
    cr_assert_eq(ls_store_open(dir, &o, &s, err, sizeof(err)), LS_EDBID);
    cr_assert_null(s);
    cr_assert(ls_h_contains(err, "aa0102030405060708090a0b0c0d0e0f"), "names the store's id: %s",
              err);
    cr_assert(ls_h_contains(err, "bb0102030405060708090a0b0c0d0e0f"), "names the expected: %s",
              err);
    /* Opening without an expectation reads the identity. */
    o.dbid = NULL;
    cr_assert_eq(ls_store_open(dir, &o, &s, err, sizeof(err)), 0);
    ls_store_meta_t m;
    ls_store_meta(s, &m);
    cr_assert_arr_eq(m.dbid, ID_A, LS_DBID_LEN);
    ls_store_close(s);
    ls_h_rmtree_free(dir);
}

Test(store, missing_store_without_create_is_enoent)
{
    char *dir = ls_h_tmpdir("store");
    char sub[600];
    snprintf(sub, sizeof(sub), "%s/none", dir);
    ls_store_options_t o = {0};
    ls_store_t *s = NULL;
    char err[256] = "";
    cr_assert_eq(ls_store_open(sub, &o, &s, err, sizeof(err)), LS_ENOENT);
    cr_assert(ls_h_contains(err, sub), "%s", err);
    ls_h_rmtree_free(dir);
}

Test(store, map_full_grows_the_map_and_reruns_the_callback)
{
    char *dir = ls_h_tmpdir("store");
    ls_store_t *s = open_store(dir, ID_A, 256 * 1024); /* 64 pages */
    ls_store_meta_t m;
    ls_store_meta(s, &m);
    m.lsn = 1;
    /* 4 MiB of values in one transaction: far beyond the 256 KiB map. */
    struct puts p = {.first = 0, .count = 4096, .value_size = 1024, .fail_at = -1};
    cr_assert_eq(ls_store_apply(s, put_range, &p, &m), 0);
    cr_assert_gt(p.calls, 1, "the callback ran again after the map grew");
    ls_store_stats_t st;
    cr_assert_eq(ls_store_stats(s, &st), 0);
    cr_assert_gt(st.map_grows, 0);
    cr_assert_gt(st.map_size, 4u * 1024 * 1024);
    cr_assert_eq(st.entries, 4096);
    ls_store_close(s);
    ls_h_rmtree_free(dir);
}

Test(store, checkpoint_records_the_synced_lsn)
{
    char *dir = ls_h_tmpdir("store");
    ls_store_t *s = open_store(dir, ID_A, 0);
    ls_store_meta_t m;
    ls_store_meta(s, &m);
    m.lsn = 10;
    struct puts p = {.first = 0, .count = 5, .value_size = 8, .fail_at = -1};
    cr_assert_eq(ls_store_apply(s, put_range, &p, &m), 0);
    uint64_t lsn = 0;
    cr_assert_eq(ls_store_checkpoint(s, &lsn), 0);
    cr_assert_eq(lsn, 10);
    ls_store_close(s);
    s = open_store(dir, ID_A, 0);
    ls_store_meta(s, &m);
    cr_assert_eq(m.checkpoint_lsn, 10);
    cr_assert_eq(m.lsn, 10);
    ls_store_close(s);
    ls_h_rmtree_free(dir);
}

static int count_keys(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    (void) k;
    (void) v;
    cr_assert_eq(kl, 9);
    cr_assert_eq(vl, 8);
    (*(int *) ctx)++;
    return 0;
}

Test(store, iterate_walks_all_keys)
{
    char *dir = ls_h_tmpdir("store");
    ls_store_t *s = open_store(dir, ID_A, 0);
    ls_store_meta_t m;
    ls_store_meta(s, &m);
    struct puts p = {.first = 0, .count = 300, .value_size = 8, .fail_at = -1};
    cr_assert_eq(ls_store_apply(s, put_range, &p, &m), 0);
    int n = 0;
    cr_assert_eq(ls_store_iterate(s, count_keys, &n), 0);
    cr_assert_eq(n, 300);
    ls_store_close(s);
    ls_h_rmtree_free(dir);
}

/* Rewrites the meta record as the 96-byte record written before applied_generations existed. */
static void write_short_meta(const char *dir, const uint8_t *id, uint64_t lsn)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 4), 0);
    cr_assert_eq(mdb_env_open(env, dir, 0, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    uint8_t rec[96] = {0};
    ls_put32(rec, 1);
    ls_put32(rec + 4, 2);
    memcpy(rec + 8, id, LS_DBID_LEN);
    ls_put64(rec + 32, lsn);
    MDB_val k = {4, (void *) "meta"}, v = {sizeof(rec), rec};
    cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

Test(store, applied_generations_round_trips_and_old_record_reads_as_zero)
{
    char *dir = ls_h_tmpdir("store");
    ls_store_t *s = open_store(dir, ID_A, 0);
    ls_store_meta_t m;
    ls_store_meta(s, &m);
    cr_assert_eq(m.applied_generations, 0);
    m.applied_generations = 41;
    m.lsn = 5;
    struct puts p = {.first = 0, .count = 3, .value_size = 8, .fail_at = -1};
    cr_assert_eq(ls_store_apply(s, put_range, &p, &m), 0);
    cr_assert_eq(ls_store_checkpoint(s, NULL), 0);
    ls_store_close(s);
    s = open_store(dir, ID_A, 0);
    ls_store_meta(s, &m);
    cr_assert_eq(m.applied_generations, 41, "kept across a checkpoint and a reopen");
    cr_assert_eq(m.checkpoint_lsn, 5);
    ls_store_close(s);

    write_short_meta(dir, ID_A, 77);
    s = open_store(dir, ID_A, 0);
    ls_store_meta(s, &m);
    cr_assert_eq(m.lsn, 77, "the 96-byte record still decodes");
    cr_assert_eq(m.epoch, 2);
    cr_assert_eq(m.applied_generations, 0);
    ls_store_close(s);
    ls_h_rmtree_free(dir);
}

Test(store, map_grown_by_another_process_is_adopted)
{
    char *dir = ls_h_tmpdir("store");
    ls_store_t *s = open_store(dir, ID_A, 256 * 1024);
    ls_store_meta_t m;
    ls_store_meta(s, &m);
    struct puts p = {.first = 0, .count = 10, .value_size = 100, .fail_at = -1};
    cr_assert_eq(ls_store_apply(s, put_range, &p, &m), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) { /* another process (its own environment handle) fills far beyond the map */
        ls_store_t *c = NULL;
        ls_store_options_t o = {.dbid = ID_A, .map_size = 256 * 1024};
        if (ls_store_open(dir, &o, &c, NULL, 0)) _exit(3);
        struct puts big = {.first = 1000, .count = 4096, .value_size = 1024, .fail_at = -1};
        ls_store_meta_t cm;
        ls_store_meta(c, &cm);
        cm.lsn = 2;
        _exit(ls_store_apply(c, put_range, &big, &cm) == 0 ? 0 : 4);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
    void *v;
    size_t len;
    cr_assert_eq(ls_store_get(s, "k00005000", 9, &v, &len), 0, "read after MDB_MAP_RESIZED");
    cr_assert_eq(len, 1024);
    free(v);
    ls_store_stats_t stats;
    cr_assert_eq(ls_store_stats(s, &stats), 0);
    cr_assert_geq(stats.map_size, 4u * 1024 * 1024, "the new size was adopted");
    p.first = 20;
    ls_store_meta(s, &m);
    m.lsn = 3;
    cr_assert_eq(ls_store_apply(s, put_range, &p, &m), 0, "and writing works");
    ls_store_close(s);
    ls_h_rmtree_free(dir);
}

/* ---- one environment per path per process (issue 11, issue 13 defect 1) ------------------- */

Test(store, every_user_of_a_path_shares_one_environment)
{
    char *dir = ls_h_tmpdir("store");
    char link[1100], sub[1100];
    snprintf(sub, sizeof(sub), "%s/s", dir);
    snprintf(link, sizeof(link), "%s/alias", dir);
    cr_assert_eq(ls_store_env_count(), 0);
    ls_store_t *a = open_store(sub, ID_A, 0);
    cr_assert_eq(symlink("s", link), 0);
    ls_store_t *b = open_store(link, ID_A, 0); /* another spelling of the same directory */
    cr_assert_eq(ls_store_env_count(), 1, "the writer and a second user share one MDB_env");
    struct puts p = {.first = 0, .count = 10, .value_size = 16, .fail_at = -1};
    ls_store_meta_t m = {0};
    memcpy(m.dbid, ID_A, LS_DBID_LEN);
    m.lsn = 7;
    cr_assert_eq(ls_store_apply(a, put_range, &p, &m), 0);
    ls_store_meta_t got;
    char err[256] = "";
    cr_assert_eq(ls_store_peek_meta(link, &got, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(got.lsn, 7);
    cr_assert_eq(ls_store_env_count(), 1, "status's peek used the same environment");
    ls_store_close(a);
    void *v;
    size_t vl;
    cr_assert_eq(ls_store_get(b, "k00000003", 9, &v, &vl), 0, "still open for the other user");
    free(v);
    ls_store_close(b);
    cr_assert_eq(ls_store_env_count(), 0, "the last release closed it");
    cr_assert_eq(ls_store_peek_meta(dir, &got, err, sizeof(err)), LS_ENOENT, "no store there");
    cr_assert_eq(ls_store_env_count(), 0, "a reader never creates an environment");
    ls_h_rmtree_free(dir);
}

/* What broke two seeds at once: releasing one user's handle must leave another user's read
 * transaction in the reader table (LMDB's mdb_env_close clears every slot of the process). */
Test(store, releasing_one_user_keeps_another_users_reader_slot)
{
    char *dir = ls_h_tmpdir("store");
    ls_store_t *s = open_store(dir, ID_A, 0);
    ls_store_close(s);
    ls_store_env_options_t ro = {.readonly = true};
    ls_store_env_t *e1 = NULL, *e2 = NULL;
    char err[256] = "";
    cr_assert_eq(ls_store_env_acquire(dir, &ro, &e1, err, sizeof(err)), 0, "%s", err);
    MDB_txn *txn;
    ls_store_env_rdlock(e1);
    cr_assert_eq(ls_store_env_txn_begin(e1, MDB_RDONLY, &txn), 0);
    cr_assert_eq(ls_h_reader_slots(ls_store_env_mdb(e1)), 1);
    cr_assert_eq(ls_store_env_acquire(dir, &ro, &e2, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(e1, e2, "a second snapshot of the path gets the same environment");
    ls_store_env_release(e2);
    cr_assert_eq(ls_h_reader_slots(ls_store_env_mdb(e1)), 1,
                 "the first user's read transaction survives");
    mdb_txn_abort(txn);
    ls_store_env_unlock(e1);
    ls_store_env_release(e1);
    cr_assert_eq(ls_store_env_count(), 0);
    ls_h_rmtree_free(dir);
}

/* A later user asking for a larger map grows the shared one; a smaller request never shrinks
 * it. */
Test(store, a_larger_map_request_grows_the_shared_map)
{
    char *dir = ls_h_tmpdir("store");
    ls_store_t *a = open_store(dir, ID_A, 8u << 20);
    ls_store_stats_t st;
    cr_assert_eq(ls_store_stats(a, &st), 0);
    cr_assert_eq(st.map_size, 8u << 20);
    ls_store_t *b = open_store(dir, ID_A, 32u << 20);
    cr_assert_eq(ls_store_stats(a, &st), 0);
    cr_assert_eq(st.map_size, 32u << 20, "grown for both users");
    ls_store_t *c = open_store(dir, ID_A, 4u << 20);
    cr_assert_eq(ls_store_stats(c, &st), 0);
    cr_assert_eq(st.map_size, 32u << 20, "never shrunk");
    ls_store_t *d = NULL;
    ls_store_options_t o = {.dbid = ID_B};
    char err[256] = "";
    cr_assert_eq(ls_store_open(dir, &o, &d, err, sizeof(err)), LS_EDBID, "identity still checked");
    ls_store_close(c);
    ls_store_close(b);
    ls_store_close(a);
    cr_assert_eq(ls_store_env_count(), 0);
    ls_h_rmtree_free(dir);
}

/* The side records of the meta database: committed with the transaction, absent from the data. */
struct aux {
    const char *name; /* record */
    const char *val;  /* NULL: delete it */
    int rc;           /* what the put or delete returned */
};

static int aux_cb(void *ctx, ls_store_txn_t *txn)
{
    struct aux *a = ctx;
    a->rc = a->val ? ls_store_aux_put(txn, a->name, a->val, strlen(a->val))
                   : ls_store_aux_del(txn, a->name);
    return a->rc == LS_EINVAL ? 0 : a->rc;
}

Test(store, side_records_commit_with_the_transaction_and_stay_out_of_the_data)
{
    char *dir = ls_h_tmpdir("store");
    ls_store_t *s = open_store(dir, ID_A, 0);
    ls_store_meta_t m;
    ls_store_meta(s, &m);
    void *v = NULL;
    size_t n = 0;
    cr_assert_eq(ls_store_aux_get(s, "carry", &v, &n), LS_ENOENT);
    struct aux a = {"carry", "bytes carried", 0};
    m.lsn = 5;
    cr_assert_eq(ls_store_apply(s, aux_cb, &a, &m), 0);
    cr_assert_eq(ls_store_aux_get(s, "carry", &v, &n), 0);
    cr_assert(n == 13 && memcmp(v, "bytes carried", 13) == 0);
    free(v);
    int keys = 0;
    cr_assert_eq(ls_store_iterate(s, count_keys, &keys), 0);
    cr_assert_eq(keys, 0, "not a data key");
    struct aux bad = {"meta", "x", 0}, none = {"", "x", 0};
    cr_assert_eq(ls_store_apply(s, aux_cb, &bad, &m), 0);
    cr_assert_eq(bad.rc, LS_EINVAL, "the meta record is not a side record");
    cr_assert_eq(ls_store_apply(s, aux_cb, &none, &m), 0);
    cr_assert_eq(none.rc, LS_EINVAL);
    cr_assert_eq(ls_store_aux_get(s, "meta", &v, &n), LS_EINVAL);
    ls_store_close(s);
    s = open_store(dir, ID_A, 0); /* durable with its transaction */
    cr_assert_eq(ls_store_aux_get(s, "carry", &v, &n), 0);
    free(v);
    struct aux del = {"carry", NULL, 0};
    cr_assert_eq(ls_store_apply(s, aux_cb, &del, &m), 0);
    cr_assert_eq(ls_store_aux_get(s, "carry", &v, &n), LS_ENOENT);
    cr_assert_eq(ls_store_apply(s, aux_cb, &del, &m), 0, "deleting an absent record is no error");
    ls_store_close(s);
    ls_h_rmtree_free(dir);
}
