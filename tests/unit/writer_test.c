/*
 * writer: rolls at the target size, the generation chain, transactions never spanning
 * generations, oversized transactions, identity, a damaged history, map growth, idle roll,
 * close, checkpoints, one handle at a time.
 * Group commit against a replay of the logs: writer_group_test.c; crash recovery:
 * writer_crash_test.c.
 */

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

Test(writer, rolls_at_target_size_and_chains_generations)
{
    char *dir = ls_h_tmpdir("writer");
    ls_db_t *db = open_sized(dir, 4096);
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
    ls_h_rmtree_free(dir);
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
    ls_db_t *db = open_sized(dir, 2048);
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
    ls_h_rmtree_free(dir);
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
    ls_h_rmtree_free(dir);
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
    ls_h_rmtree_free(dir);
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
    ls_h_rmtree_free(a);
    ls_h_rmtree_free(b);
}

typedef struct {
    ls_db_t *db;      /* database read from */
    atomic_bool stop; /* set when the writer is done */
    uint64_t reads;   /* successful reads */
    int bad;          /* reads that returned a wrong value */
} reader_t;

static void *reader(void *arg)
{
    reader_t *r = arg;
    while (!atomic_load(&r->stop)) {
        void *v;
        size_t len;
        if (ls_db_get(r->db, "k0-0", 4, &v, &len) != 0) continue;
        if (strcmp(v, "v0-0") != 0) r->bad++;
        r->reads++;
        free(v);
    }
    return NULL;
}

Test(writer, map_full_grows_the_store_while_readers_read)
{
    char *dir = ls_h_tmpdir("writer");
    ls_db_options_t o = quiet_opts();
    o.map_size = 128 * 1024;
    ls_db_t *db = open_db(dir, &o);
    cr_assert_eq(commit_tx(db, 0, 10, 2000), 0);
    reader_t r = {.db = db};
    pthread_t th;
    pthread_create(&th, NULL, reader, &r);
    for (int i = 1; i < 100; i++) /* 100 x 10 x 2 KB = 2 MB, 16x the initial map */
        cr_assert_eq(commit_tx(db, i, 10, 2000), 0, "tx %d: %s", i, ls_db_errmsg(db));
    atomic_store(&r.stop, true);
    pthread_join(th, NULL);
    cr_assert_gt(r.reads, 0);
    cr_assert_eq(r.bad, 0);
    for (int i = 0; i < 100; i += 9)
        cr_assert(has_tx(db, i, 9));
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree_free(dir);
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
    ls_h_rmtree_free(dir);
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
    /* The new current log holds only a header: created, or the prepared next log (prep.c:
     * zeros after the header up to the prepared size) when it was ready. */
    ls_gen_expect_t ex = {.allow_open = true};
    ls_gen_info_t in;
    ls_gen_verdict_t v;
    cr_assert_eq(ls_gen_scan_file(cur, &ex, NULL, NULL, &in, &v), 0);
    cr_assert(in.header_ok && in.record_count == 0, "the new current log holds only a header");
    off_t size = file_size(cur), prepared = (LS_GEN_DEFAULT_SIZE + 4095) / 4096 * 4096;
    cr_assert(size == LS_GEN_HEADER_SIZE || size == prepared, "size %lld", (long long) size);
    db = open_db(dir, &o);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.checkpoint_lsn, 3);
    cr_assert_eq(s.recovered_records, 0);
    cr_assert_eq(s.truncated_bytes, 0, "a prepared log's zeros are not a torn tail");
    cr_assert_eq(ls_db_close(db), 0);
    cr_assert_eq(list_gens(dir, g, 4), 1, "closing with an empty log adds nothing");
    ls_h_rmtree_free(dir);
}

Test(writer, a_database_is_opened_by_one_handle_at_a_time)
{
    char *dir = ls_h_tmpdir("writer");
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = open_db(dir, &o), *db2 = NULL;
    cr_assert_eq(ls_db_open(dir, &o, &db2), LS_EBUSY);
    cr_assert_null(db2);
    cr_assert(ls_h_contains(ls_db_open_error(), "open already"), "%s", ls_db_open_error());
    cr_assert_eq(ls_db_close(db), 0);
    db = open_db(dir, &o);
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree_free(dir);
}

Test(writer, a_newer_epoch_in_history_starts_with_the_next_generation)
{
    char *dir = ls_h_tmpdir("writer");
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = open_db(dir, &o);
    cr_assert_eq(commit_tx(db, 0, 2, 8), 0);
    cr_assert_eq(ls_db_close(db), 0); /* generation 1 closed, the current log is generation 2 */
    char hist[PATHLEN];
    snprintf(hist, sizeof(hist), "%s/logs/history", dir);
    FILE *f = fopen(hist, "a");
    fprintf(f, "2 2\n"); /* what an activation records */
    fclose(f);
    db = open_db(dir, &o);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.epoch, 2);
    cr_assert_eq(s.current_generation, 2);
    cr_assert_eq(commit_tx(db, 1, 2, 8), 0);
    cr_assert_eq(ls_db_close(db), 0);
    char name[PATHLEN];
    snprintf(name, sizeof(name), "%s/logs/E00-00000002-0000000000000002.log", dir);
    cr_assert_gt(file_size(name), 0, "generation 2 closed in epoch 2");
    db = open_db(dir, &o); /* the chain holds across the epoch change */
    cr_assert(has_tx(db, 0, 1) && has_tx(db, 1, 1));
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree_free(dir);
}

Test(writer, a_damaged_history_is_refused_naming_the_file_and_line)
{
    char *dir = ls_h_tmpdir("writer");
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = open_db(dir, &o);
    cr_assert_eq(ls_db_close(db), 0);
    char hist[PATHLEN];
    snprintf(hist, sizeof(hist), "%s/logs/history", dir);
    FILE *f = fopen(hist, "a");
    fprintf(f, "# an activation\n1 3\n"); /* the epoch does not increase */
    fclose(f);
    cr_assert_eq(ls_db_open(dir, &o, &db), LS_ECORRUPT);
    const char *msg = ls_db_open_error();
    cr_assert(ls_h_contains(msg, "history:3:") && ls_h_contains(msg, "epoch does not increase"),
              "%s", msg);
    f = fopen(hist, "w");
    fprintf(f, "# nothing but a comment\n");
    fclose(f);
    cr_assert_eq(ls_db_open(dir, &o, &db), LS_ECORRUPT);
    cr_assert(ls_h_contains(ls_db_open_error(), "holds no epoch"), "%s", ls_db_open_error());
    ls_h_rmtree_free(dir);
}

static bool checkpointed(void *ctx)
{
    ls_db_stats_t s;
    ls_db_stats(ctx, &s);
    return s.checkpoint_lsn == s.last_lsn;
}

Test(writer, applier_checkpoints_every_checkpoint_ms)
{
    char *dir = ls_h_tmpdir("writer");
    ls_db_options_t o = {.no_idle_roll = true, .checkpoint_ms = 100};
    ls_db_t *db = open_db(dir, &o);
    cr_assert_eq(commit_tx(db, 0, 2, 8), 0);
    cr_assert(ls_h_wait_for(checkpointed, db, 5000), "checkpointed within 5 s");
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.checkpoint_lsn, 3);
    cr_assert_eq(commit_tx(db, 1, 2, 8), 0);
    cr_assert(ls_h_wait_for(checkpointed, db, 5000), "and again after more commits");
    cr_assert_eq(ls_db_checkpoint(db), 0);
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree_free(dir);
}

/* ---- the pipeline: the applier merges durable batches ------------------------------------ */

Test(writer, durable_batches_behind_the_applier_merge_into_one_store_transaction_across_rolls,
     .timeout = 60)
{
    /* The applier applies transaction 0, then is held until the test lets it go on; the flusher
     * meanwhile makes transactions 1-5 durable, one batch and one roll each, and acknowledges
     * them. */
    char *dir = ls_h_tmpdir("writer");
    char *hold = ls_h_tmpdir("hold");
    char go[PATHLEN], faults[PATHLEN + 64];
    snprintf(go, sizeof(go), "%s/go", hold);
    snprintf(faults, sizeof(faults), "writer.apply.after=hold:%s@1", go);
    setenv("LS_FAULTS", faults, 1);
    ls_db_options_t o = quiet_opts();
    o.target_size = 1024; /* one transaction (~700 bytes) per generation */
    ls_db_t *db = open_db(dir, &o);
    stagger_t s[6];
    cr_assert(commit_staggered(db, s, 6, 10000), "each commit durable while the applier waits");
    for (int i = 0; i < 6; i++) {
        pthread_join(s[i].th, NULL);
        cr_assert_eq(s[i].rc, 0, "commit %d acknowledged once durable", i);
        cr_assert(has_tx(db, i, 0) && has_tx(db, i, 1), "tx %d visible once acknowledged", i);
    }
    ls_db_stats_t st;
    ls_db_stats(db, &st);
    cr_assert_eq(st.commits, 6);
    cr_assert_eq(st.batches, 6);
    cr_assert_eq(st.last_lsn, 18);
    cr_assert_lt(st.applied_lsn, 18, "the store is behind: the overlay serves the reads");
    cr_assert_geq(st.generations_closed, 4, "the log rolled ahead of the applier");
    cr_assert_eq(ls_h_write_file(go, "go", 2), 0, "the applier let go");
    cr_assert(wait_applied(db, 10000));
    ls_db_stats(db, &st);
    cr_assert_eq(st.applies, 2, "transaction 0, then 1-5 merged into one store transaction");
    cr_assert_eq(st.overlay_keys, 0, "trimmed once applied");
    cr_assert_eq(st.unapplied_bytes, 0);
    uint64_t gen = st.current_generation;
    cr_assert_eq(ls_db_close(db), 0);

    /* The meta record is the last batch's: the generation holding lsn 18 and the digest of the
     * one before it, not the position of any batch merged before it. */
    char store[PATHLEN];
    snprintf(store, sizeof(store), "%s/store", dir);
    ls_store_meta_t m;
    cr_assert_eq(ls_store_peek_meta(store, &m, NULL, 0), 0);
    cr_assert_eq(m.lsn, 18);
    cr_assert_eq(m.txid, 6);
    cr_assert_eq(m.generation, gen);
    cr_assert_eq(m.digest_generation, gen - 1);
    genfile_t g[16];
    int n = list_gens(dir, g, 16);
    cr_assert_geq(n, (int) gen);
    ls_gen_info_t info;
    ls_gen_verdict_t v;
    cr_assert_eq(g[gen - 2].gen, gen - 1);
    cr_assert_eq(ls_gen_scan_file(g[gen - 2].name, NULL, NULL, NULL, &info, &v), 0, "%s", v.msg);
    cr_assert_eq(memcmp(m.digest, info.digest, LS_DIGEST_SIZE), 0, "digest of generation %llu",
                 (unsigned long long) gen - 1);
    ls_h_rmtree_free(dir);
    ls_h_rmtree_free(hold);
}
