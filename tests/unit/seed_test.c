/* seed: snapshot + install round trip, the hand-off to engine/copy, verification, refusal, an
 * empty database. Big stores, progress, a running writer and the compaction's stream:
 * seed_stream_test.c; two seeds at once: seed_concurrent_test.c; crashes: seed_crash_test.c. */

#include <criterion/criterion.h>

#include "seed_converge_util.h"

/* The copy's store meta names L, N and the digest of N-1, and its data is the active's. */
static void round_trip(bool direct)
{
    seed_direct = direct;
    env_t e;
    env_init(&e, "seed");
    ls_db_options_t o = db_opts(32 * 1024);
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(e.db, &o, &db), 0, "%s", ls_db_open_error());
    cr_assert_eq(commit_range(db, 0, 60, 3, 700), 0);
    cr_assert(wait_applied(db, 10000), "the store holds every commit (the snapshot reads it)");
    ls_db_stats_t st;
    ls_db_stats(db, &st);
    cr_assert_gt(st.last_closed, 2, "several generations closed");
    cr_assert_gt(st.current_generation, st.last_closed, "the current log is open");

    ls_seed_info_t info;
    seed_ok(&e, CHUNK, &info);
    cr_assert_eq(ls_db_close(db), 0);

    uint8_t prev[LS_DIGEST_SIZE];
    gen_digest(e.db, st.current_generation - 1, prev);
    cr_assert_eq(info.last_lsn, st.last_lsn, "L is the last LSN");
    cr_assert_eq(info.generation, st.current_generation, "N is the open generation");
    cr_assert_eq(info.epoch, 1);
    cr_assert_arr_eq(info.prev_digest, prev, LS_DIGEST_SIZE, "digest of N-1");
    cr_assert_arr_eq(info.dbid, st.dbid, LS_DBID_LEN);

    char cs[PATHSZ];
    snprintf(cs, sizeof(cs), "%s/store", e.copy);
    ls_store_meta_t m;
    store_meta(cs, &m);
    cr_assert_eq(m.lsn, st.last_lsn);
    cr_assert_eq(m.txid, st.last_txid);
    cr_assert_eq(m.generation, st.current_generation);
    cr_assert_eq(m.digest_generation, st.current_generation - 1);
    cr_assert_arr_eq(m.digest, prev, LS_DIGEST_SIZE);
    cr_assert_eq(m.checkpoint_lsn, st.last_lsn);
    cr_assert_eq(m.applied_generations, 0);
    assert_copy_equals_active(e.db, e.copy);
    assert_no_leftovers(e.copy);
    char tmp[PATHSZ];
    snprintf(tmp, sizeof(tmp), "%s/seed-tmp", e.db);
    struct dirent **ents;
    int n = scandir(tmp, &ents, NULL, NULL);
    for (int i = 0; i < n; i++)
        free(ents[i]);
    if (n >= 0) free(ents);
    cr_assert_leq(n, 2, "the local snapshot copy was removed from %s", tmp);
    env_free(&e);
}

Test(seed, round_trip_copy_equals_active_and_meta_names_handoff)
{
    round_trip(false);
}

/* Streamed from the compacting copy, checked by XXH3-128 (LS_FEAT_SEEDXXH negotiated). */
Test(seed, round_trip_with_the_xxh3_check)
{
    seed_xxh = true;
    round_trip(true);
}

/* The same, streamed from the compacting copy (no local copy). */
Test(seed, round_trip_streamed_from_the_compaction)
{
    round_trip(true);
}

/* Snapshot while the current log holds committed transactions after L; more are committed in the
 * same generation before it closes: they arrive and nothing is applied twice. */
Test(seed, handoff_inside_open_generation_loses_nothing)
{
    env_t e;
    env_init(&e, "seed");
    ls_db_options_t o = db_opts(32 * 1024);
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(e.db, &o, &db), 0, "%s", ls_db_open_error());
    cr_assert_eq(commit_range(db, 0, 50, 3, 600), 0, "A: several generations");
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(commit_range(db, 50, 53, 2, 100), 0, "A: the open generation's first part");
    cr_assert(wait_applied(db, 10000), "the store holds every commit (the snapshot reads it)");
    cr_assert_eq(ls_db_checkpoint(db), 0);
    ls_db_stats_t s1;
    ls_db_stats(db, &s1);

    ls_seed_info_t info;
    seed_ok(&e, CHUNK, &info);
    cr_assert_eq(info.last_lsn, s1.last_lsn);
    cr_assert_eq(info.generation, s1.current_generation);

    cr_assert_eq(commit_range(db, 53, 57, 2, 100), 0, "B: after L, same generation");
    ls_db_stats_t s2;
    ls_db_stats(db, &s2);
    cr_assert_eq(s2.current_generation, s1.current_generation, "B went into generation N");
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(commit_range(db, 57, 90, 3, 600), 0, "C: later generations, deletes of A's");
    cr_assert_eq(ls_db_close(db), 0); /* rolls the last one */
    uint8_t prev[LS_DIGEST_SIZE];
    gen_digest(e.db, info.generation - 1, prev);
    cr_assert_arr_eq(info.prev_digest, prev, LS_DIGEST_SIZE);

    ls_db_stats_t s3 = reopened_stats(e.db, &o);
    converge(&e, &info, s3.last_closed, s3.last_lsn);
    env_free(&e);
}

/* L is the last record of closed generation G, which retention already removed: the hand-off
 * moves to G + 1 (it starts at L + 1). */
Test(seed, handoff_after_removed_generation_starts_at_next)
{
    env_t e;
    env_init(&e, "seed");
    ls_db_options_t o = db_opts(32 * 1024);
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(e.db, &o, &db), 0, "%s", ls_db_open_error());
    cr_assert_eq(commit_range(db, 0, 30, 3, 600), 0);
    cr_assert_eq(ls_db_roll(db), 0);
    /* Retention removes only generations the store holds (the snapshot reads the store). */
    cr_assert(wait_applied(db, 10000), "the store holds every commit");
    ls_db_stats_t s1;
    ls_db_stats(db, &s1);
    uint8_t dg[LS_DIGEST_SIZE];
    gen_digest(e.db, s1.last_closed, dg);
    char name[LS_GEN_NAME_MAX], path[PATHSZ];
    ls_gen_name(name, sizeof(name), "E00", 1, s1.last_closed);
    snprintf(path, sizeof(path), "%s/logs/%s", e.db, name);
    cr_assert_eq(unlink(path), 0, "retention removed generation %llu",
                 (unsigned long long) s1.last_closed);

    ls_seed_info_t info;
    seed_ok(&e, CHUNK, &info);
    cr_assert_eq(info.generation, s1.last_closed + 1);
    cr_assert_arr_eq(info.prev_digest, dg, LS_DIGEST_SIZE);
    cr_assert_eq(commit_range(db, 30, 45, 3, 600), 0);
    cr_assert_eq(ls_db_close(db), 0);
    ls_db_stats_t s3 = reopened_stats(e.db, &o);
    converge(&e, &info, s3.last_closed, s3.last_lsn);
    env_free(&e);
}

/* Builds an old copy by a first seed, then commits more (in this process). */
static void old_copy(env_t *e, ls_db_t **db)
{
    ls_db_options_t o = db_opts(0);
    cr_assert_eq(ls_db_open(e->db, &o, db), 0, "%s", ls_db_open_error());
    cr_assert_eq(commit_range(*db, 0, 20, 3, 500), 0);
    cr_assert(wait_applied(*db, 10000), "the store holds every commit (the snapshot reads it)");
    seed_ok(e, CHUNK, NULL);
    cr_assert_eq(commit_range(*db, 20, 40, 3, 500), 0);
    cr_assert(wait_applied(*db, 10000), "the store holds every commit (the snapshot reads it)");
}

/* One flipped bit of the stream fails the check, XXH3-128 (xxh) or SHA-256 (a peer without
 * LS_FEAT_SEEDXXH); the message names the algorithm and both values. */
static void corrupted_byte(bool xxh)
{
    env_t e;
    env_init(&e, "seed");
    seed_xxh = xxh;
    ls_db_t *db;
    old_copy(&e, &db);
    char before[65], after[65];
    tree_hash(e.copy, before);
    ls_seed_install_options_t io = {.copy_dir = e.copy, .delete_existing = true};
    char err[1024] = "";
    int rc = seed_run(e.db, &io, CHUNK, 5000, NULL, err, sizeof(err));
    cr_assert_eq(rc, LS_EDIGEST, "got %s (%s)", ls_err_name(rc), err);
    cr_assert(ls_h_contains(err, xxh ? "seed stream XXH3-128 mismatch: got "
                                     : "seed stream SHA-256 mismatch: got ") &&
                  ls_h_contains(err, ", SEED_END says "),
              "the message says why: %s", err);
    /* the values as long as the algorithm's: 32 hex digits for XXH3-128, 64 for SHA-256 */
    const char *got = strstr(err, "got ") + 4;
    cr_assert_eq(strcspn(got, ","), xxh ? 32u : 64u, "%s", err);
    tree_hash(e.copy, after);
    cr_assert_str_eq(before, after, "the old copy is byte-identical");
    assert_no_leftovers(e.copy);
    rc = seed_run(e.db, &io, CHUNK, -1, NULL, err, sizeof(err));
    cr_assert_eq(rc, 0, "a new seed succeeds: %s", err);
    cr_assert_eq(ls_db_close(db), 0);
    assert_copy_equals_active(e.db, e.copy);
    env_free(&e);
}

Test(seed, corrupted_byte_fails_verification_and_installs_nothing)
{
    corrupted_byte(false);
}

Test(seed, corrupted_byte_fails_the_xxh3_check_and_installs_nothing)
{
    corrupted_byte(true);
}

Test(seed, refuses_existing_copy_without_delete_existing)
{
    env_t e;
    env_init(&e, "seed");
    ls_db_t *db;
    old_copy(&e, &db);
    char before[65], after[65];
    tree_hash(e.copy, before);
    ls_seed_install_options_t io = {.copy_dir = e.copy};
    char err[1024] = "";
    int rc = seed_run(e.db, &io, CHUNK, -1, NULL, err, sizeof(err));
    cr_assert_eq(rc, LS_EEXIST, "got %s (%s)", ls_err_name(rc), err);
    cr_assert(ls_h_contains(err, "already holds a store"), "says why: %s", err);
    cr_assert(ls_h_contains(err, "--delete-existing"), "says what to do: %s", err);
    tree_hash(e.copy, after);
    cr_assert_str_eq(before, after);
    assert_no_leftovers(e.copy);
    io.copy_failed = true; /* a Failed or Diverged copy may be replaced */
    rc = seed_run(e.db, &io, CHUNK, -1, NULL, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(ls_db_close(db), 0);
    assert_copy_equals_active(e.db, e.copy);
    env_free(&e);
}

Test(seed, chunk_out_of_order_or_past_total_is_refused)
{
    env_t e;
    env_init(&e, "seed");
    ls_db_options_t o = db_opts(0);
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(e.db, &o, &db), 0, "%s", ls_db_open_error());
    cr_assert_eq(commit_range(db, 0, 5, 2, 100), 0);
    ls_seed_snapshot_options_t so = {.db_dir = e.db};
    ls_seed_snapshot_t *s = NULL;
    char err[1024] = "";
    cr_assert_eq(ls_seed_snapshot_new(&so, &s, err, sizeof(err)), 0, "%s", err);
    ls_seed_install_options_t io = {.copy_dir = e.copy};
    ls_seed_install_t *in = NULL;
    cr_assert_eq(ls_seed_install_begin(&io, ls_seed_snapshot_info(s), &in, err, sizeof(err)), 0);
    uint8_t b[16] = {0};
    cr_assert_eq(ls_seed_install_data(in, 8, b, sizeof(b), err, sizeof(err)), LS_EPROTO);
    cr_assert(ls_h_contains(err, "expected offset 0"), "%s", err);
    cr_assert_eq(ls_seed_install_data(in, 0, b, sizeof(b), err, sizeof(err)), LS_ESTATE,
                 "errors are sticky");
    ls_seed_install_free(in);
    assert_no_leftovers(e.copy);
    uint64_t total = ls_seed_snapshot_info(s)->total_bytes;
    cr_assert_eq(ls_seed_install_begin(&io, ls_seed_snapshot_info(s), &in, err, sizeof(err)), 0);
    uint8_t *big = calloc(1, total + 1);
    cr_assert_eq(ls_seed_install_data(in, 0, big, total + 1, err, sizeof(err)), LS_EPROTO);
    ls_seed_install_free(in);
    cr_assert_eq(ls_seed_install_begin(&io, ls_seed_snapshot_info(s), &in, err, sizeof(err)), 0);
    cr_assert_eq(ls_seed_install_data(in, 0, big, total - 1, err, sizeof(err)), 0);
    uint8_t d[LS_DIGEST_SIZE] = {0};
    cr_assert_eq(ls_seed_install_end(in, d, err, sizeof(err)), LS_ETRUNCATED, "%s", err);
    ls_seed_install_free(in);
    free(big);
    assert_no_leftovers(e.copy);
    ls_seed_snapshot_free(s);
    cr_assert_eq(ls_db_close(db), 0);
    env_free(&e);
}

static void empty_database(bool direct)
{
    seed_direct = direct;
    env_t e;
    env_init(&e, "seed");
    ls_db_options_t o = db_opts(0);
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(e.db, &o, &db), 0, "%s", ls_db_open_error());
    ls_seed_info_t info;
    seed_ok(&e, CHUNK, &info);
    cr_assert_eq(info.last_lsn, 0);
    cr_assert_eq(info.generation, 1);
    cr_assert_eq(commit_range(db, 0, 10, 2, 300), 0);
    cr_assert_eq(ls_db_close(db), 0);
    ls_db_stats_t s3 = reopened_stats(e.db, &o);
    converge(&e, &info, s3.last_closed, s3.last_lsn);
    env_free(&e);
}

Test(seed, empty_database_hands_off_at_generation_one)
{
    empty_database(false);
}

Test(seed, empty_database_streamed_from_the_compaction)
{
    empty_database(true);
}
