/* seed: a passive killed at every phase of an install (fault points in forked children), then
 * ls_seed_recover: the old copy is intact or the new one complete, and a new seed succeeds. The
 * test process hits no fault point before its last fork (LS_FAULTS is read once per process). */
#include "seed_test_util.h"

#define CHUNK (16u * 1024u)

/* The fault points exist only in test builds (LS_FAULTS=ON). */
#ifdef LS_FAULTS_ENABLED
#define NEED_FAULTS() ((void) 0)
#else
#define NEED_FAULTS() cr_skip_test("fault points are not compiled in (LS_FAULTS=OFF)")
#endif

/* Child: the active with A, a first seed (the old copy), then B committed. */
static void setup(void *ctx)
{
    const env_t *e = ctx;
    ls_db_options_t o = db_opts(16 * 1024);
    ls_db_t *db = NULL;
    LS_H_CHILD_CHECK(ls_db_open(e->db, &o, &db) == 0);
    LS_H_CHILD_CHECK(commit_range(db, 0, 30, 3, 500) == 0);
    ls_seed_install_options_t io = {.copy_dir = e->copy};
    char err[1024] = "";
    int rc = seed_run(e->db, &io, CHUNK, -1, NULL, err, sizeof(err));
    if (rc) fprintf(stderr, "child: first seed: %s\n", err);
    LS_H_CHILD_CHECK(rc == 0);
    LS_H_CHILD_CHECK(commit_range(db, 30, 80, 3, 500) == 0);
    LS_H_CHILD_CHECK(ls_db_close(db) == 0);
}

/* Child: a seed replacing the old copy, expected to die at its fault point. */
static void reseed(void *ctx)
{
    const env_t *e = ctx;
    ls_seed_install_options_t io = {.copy_dir = e->copy, .delete_existing = true};
    char err[1024] = "";
    int rc = seed_run(e->db, &io, CHUNK, -1, NULL, err, sizeof(err));
    fprintf(stderr, "child: the seed returned %s (%s) instead of dying\n", ls_err_name(rc), err);
    _exit(4);
}

/* The active's last LSN, from its store (the database is closed). */
static uint64_t active_lsn(const env_t *e)
{
    char p[PATHSZ];
    snprintf(p, sizeof(p), "%s/store", e->db);
    ls_store_meta_t m;
    cr_assert_eq(ls_store_peek_meta(p, &m, NULL, 0), 0);
    return m.lsn;
}

static void crash_at(const char *faults, bool new_wins, ls_seed_recover_t want)
{
    NEED_FAULTS();
    env_t e;
    env_init(&e, "seedcrash");
    cr_assert_eq(ls_h_in_child(setup, &e, NULL), 0, "setup");
    char before[65], after[65];
    tree_hash(e.copy, before);
    cr_assert_eq(ls_h_in_child(reseed, &e, faults), LS_FAULT_EXIT_CODE, "died at %s", faults);

    ls_seed_recover_t what;
    char err[1024] = "";
    int rc = ls_seed_recover(e.copy, &what, err, sizeof(err));
    cr_assert_eq(rc, 0, "recover: %s (%s)", ls_err_name(rc), err);
    cr_assert_eq(what, want, "recovery did %d, expected %d", what, want);
    assert_no_leftovers(e.copy);
    char cs[PATHSZ];
    snprintf(cs, sizeof(cs), "%s/store", e.copy);
    if (new_wins) {
        ls_store_meta_t m;
        store_meta(cs, &m);
        cr_assert_eq(m.lsn, active_lsn(&e), "the new copy is complete");
        assert_copy_equals_active(e.db, e.copy);
    } else {
        tree_hash(e.copy, after);
        cr_assert_str_eq(before, after, "the old copy is byte-identical");
    }
    cr_assert_eq(ls_seed_recover(e.copy, &what, err, sizeof(err)), 0);
    cr_assert_eq(what, LS_SEED_RECOVER_NOTHING, "a second recovery finds nothing");

    ls_seed_install_options_t io = {.copy_dir = e.copy, .delete_existing = true};
    rc = seed_run(e.db, &io, CHUNK, -1, NULL, err, sizeof(err));
    cr_assert_eq(rc, 0, "a new seed succeeds: %s (%s)", ls_err_name(rc), err);
    assert_copy_equals_active(e.db, e.copy);
    assert_no_leftovers(e.copy);
    env_free(&e);
}

Test(seed_crash, half_way_through_the_data_keeps_the_old_copy)
{
    crash_at("seed.install.half_data=exit", false, LS_SEED_RECOVER_REMOVED);
}

Test(seed_crash, before_the_swap_finishes_the_verified_copy)
{
    crash_at("seed.install.before_swap=exit", true, LS_SEED_RECOVER_FINISHED);
}

Test(seed_crash, after_the_exchange_finishes)
{
    crash_at("seed.install.after_swap=exit", true, LS_SEED_RECOVER_FINISHED);
}

Test(seed_crash, between_the_two_renames_finishes)
{
    crash_at("seed.install.no_exchange=fail,seed.install.between_renames=exit", true,
             LS_SEED_RECOVER_FINISHED);
}

Test(seed_crash, after_the_second_rename_finishes)
{
    crash_at("seed.install.no_exchange=fail,seed.install.after_swap=exit", true,
             LS_SEED_RECOVER_FINISHED);
}

/* Child: a seed whose stream the snapshot's fault point corrupts; exits 42 on LS_EDIGEST. */
static void corrupt_reseed(void *ctx)
{
    const env_t *e = ctx;
    ls_seed_install_options_t io = {.copy_dir = e->copy, .delete_existing = true};
    char err[1024] = "";
    int rc = seed_run(e->db, &io, CHUNK, -1, NULL, err, sizeof(err));
    _exit(rc == LS_EDIGEST && ls_h_contains(err, "nothing installed") ? 42 : 5);
}

Test(seed_crash, snapshot_fault_point_corrupts_the_stream)
{
    NEED_FAULTS();
    env_t e;
    env_init(&e, "seedcrash");
    cr_assert_eq(ls_h_in_child(setup, &e, NULL), 0, "setup");
    char before[65], after[65];
    tree_hash(e.copy, before);
    cr_assert_eq(ls_h_in_child(corrupt_reseed, &e, "seed.snapshot.corrupt=fail@2"), 42);
    tree_hash(e.copy, after);
    cr_assert_str_eq(before, after, "the old copy is byte-identical");
    assert_no_leftovers(e.copy);
    env_free(&e);
}

/* A first seed (no copy yet) interrupted before its rename: the new copy goes in. */
static void first_seed(void *ctx)
{
    const env_t *e = ctx;
    ls_db_options_t o = db_opts(16 * 1024);
    ls_db_t *db = NULL;
    LS_H_CHILD_CHECK(ls_db_open(e->db, &o, &db) == 0);
    LS_H_CHILD_CHECK(commit_range(db, 0, 30, 3, 500) == 0);
    LS_H_CHILD_CHECK(ls_db_close(db) == 0);
    ls_seed_install_options_t io = {.copy_dir = e->copy};
    char err[1024] = "";
    seed_run(e->db, &io, CHUNK, -1, NULL, err, sizeof(err));
    _exit(4);
}

Test(seed_crash, first_seed_before_its_rename_finishes)
{
    NEED_FAULTS();
    env_t e;
    env_init(&e, "seedcrash");
    cr_assert_eq(ls_h_in_child(first_seed, &e, "seed.install.before_swap=exit"),
                 LS_FAULT_EXIT_CODE);
    cr_assert(access(e.copy, F_OK) != 0, "no copy yet");
    ls_seed_recover_t what;
    char err[1024] = "";
    cr_assert_eq(ls_seed_recover(e.copy, &what, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(what, LS_SEED_RECOVER_FINISHED);
    assert_no_leftovers(e.copy);
    assert_copy_equals_active(e.db, e.copy);
    env_free(&e);
}

/* Old copy renamed away, new one never marked ready (only by hand: an install marks it before
 * any rename): recovery puts the old copy back, byte-identical. */
Test(seed_crash, old_copy_renamed_away_without_ready_new_is_put_back)
{
    env_t e;
    env_init(&e, "seedcrash");
    cr_assert_eq(ls_h_in_child(setup, &e, NULL), 0, "setup");
    char before[65], after[65], p[PATHSZ + 32];
    tree_hash(e.copy, before);
    snprintf(p, sizeof(p), "%s.seed-old", e.copy);
    cr_assert_eq(rename(e.copy, p), 0);
    snprintf(p, sizeof(p), "%s.seed-new/store", e.copy);
    cr_assert_eq(ls_mkdir_p(p), 0);
    ls_seed_recover_t what;
    char err[1024] = "";
    cr_assert_eq(ls_seed_recover(e.copy, &what, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(what, LS_SEED_RECOVER_UNDONE);
    assert_no_leftovers(e.copy);
    tree_hash(e.copy, after);
    cr_assert_str_eq(before, after);
    env_free(&e);
}
