/*
 * Block mode on the copy: crashes at the fault points leave a store that finishes the same, and
 * activation closes the shadow as the last generation of the old epoch (what lies beyond it
 * counted as possibly lost; a crash while closing finished by a rerun; a refused activation
 * leaves the shadow). Helpers in copy_shadow_test_util.h.
 */
#include "copy_shadow_test_util.h"

/* ---- crashes (forked children; the parent hits no fault point before forking) ------------ */

/* The active: generation 1 with 8 transactions durable when the shadow is taken, 3 more, closed;
 * <cp>.pos holds "size lsn" of the shadow. */
static void prepare_shadow(void *arg)
{
    fx_t *f = arg;
    ls_db_t *db = open_db(f->act);
    commit_n(db, 0, 8);
    ls_ctl_durable_t d = durable_of(f->act);
    shadow_write(f, 1, 1, d.offset);
    commit_n(db, 8, 3);
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(ls_db_close(db), 0);
    write_pos(f, &d);
}

/* Opens the copy (the closed generation 1 names the database), reports the shadow and waits:
 * a fault point ends the process. */
static void apply_body(void *arg)
{
    fx_t *f = arg;
    uint64_t size, lsn;
    read_pos(f, &size, &lsn);
    char closed[PATHLEN];
    gen_path(closed, sizeof(closed), f->act, 1, 1);
    snprintf(f->cur, sizeof(f->cur), "%s", closed); /* copy_with reads its header */
    ls_copy_t *c = copy_with(f, 0);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, 1, 1, size, lsn);
    wait_applied(c, lsn);
    ls_copy_close(c);
}

Test(copy_shadow, crash_before_or_after_the_early_commit_finishes_the_same, .timeout = 120)
{
    fx_t f;
    fx_init(&f);
    cr_assert_eq(run_child(prepare_shadow, &f, NULL), 0);
    cr_assert_eq(run_child(apply_body, &f, "copy.shadow.before_commit=exit"), LS_FAULT_EXIT_CODE);
    cr_assert_eq(run_child(apply_body, &f, "copy.shadow.after_commit=exit"), LS_FAULT_EXIT_CODE);
    uint64_t size, lsn;
    read_pos(&f, &size, &lsn);
    gen_path(f.cur, sizeof(f.cur), f.act, 1, 1);
    ls_copy_t *c = copy_with(&f, 0);
    ls_copy_stats_t s;
    ls_copy_stats(c, &s);
    cr_assert_eq(s.applied_lsn, lsn, "the second child's commit is in the store");
    cr_assert_eq(s.last_replayed, 0);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, 1, 1, size, lsn); /* again: walked, proof checked, nothing new */
    replay_closed(&f, c, 1);
    ls_copy_stats(c, &s);
    cr_assert_eq(s.state, LS_COPY_HEALTHY, "%s", s.reason);
    expect_same_store(&f, c);
    ls_copy_close(c);
    fx_free(&f);
}

Test(copy_shadow, activation_closes_the_shadow_as_the_last_generation, .timeout = 120)
{
    fx_t f;
    fx_init(&f);
    cr_assert_eq(run_child(prepare_activation, &f, NULL), 0);
    uint64_t size, lsn;
    read_pos(&f, &size, &lsn);
    ls_role_activate_report_t r;
    activate_gen3(&f, lsn, &r);
    cr_assert(r.shadow_dropped > 0, "the torn fifth transaction was cut");
    cr_assert(r.lossless);
    cr_assert_eq(r.loss.open_generation, 0, "everything announced of generation 3 is here");
    cr_assert_eq(r.loss.open_held_lsn, lsn);
    expect_activated(&f, &r, lsn);
    fx_free(&f);
}

Test(copy_shadow, activation_counts_what_is_beyond_the_shadow_as_possibly_lost, .timeout = 120)
{
    fx_t f;
    fx_init(&f);
    cr_assert_eq(run_child(prepare_activation, &f, NULL), 0);
    uint64_t size, lsn;
    read_pos(&f, &size, &lsn);
    ls_role_activate_report_t r;
    activate_gen3(&f, lsn + 3, &r);
    cr_assert(r.lossless, "no closed generation lost");
    cr_assert_eq(r.loss.open_generation, 3);
    cr_assert_eq(r.loss.open_held_lsn, lsn);
    cr_assert_eq(r.loss.open_lsn, lsn + 3);
    ls_role_state_t st;
    char err[1024] = "";
    cr_assert_eq(ls_role_load(f.cp, LS_ROLE_COPY, &st, err, sizeof(err)), 0, "%s", err);
    cr_assert(st.loss.open_held_lsn == lsn && st.loss.open_lsn == lsn + 3, "kept in the role file");
    expect_activated(&f, &r, lsn);
    fx_free(&f);
}

Test(copy_shadow, activation_crashed_while_closing_the_shadow_is_finished_by_a_rerun,
     .timeout = 120)
{
    fx_t f;
    fx_init(&f);
    cr_assert_eq(run_child(prepare_activation, &f, NULL), 0);
    cr_assert_eq(run_child(activate_body, &f, "copy.shadow_close.after_trailer=exit"),
                 LS_FAULT_EXIT_CODE);
    cr_assert_eq(run_child(activate_body, &f, "copy.shadow_close.after_rename=exit"),
                 LS_FAULT_EXIT_CODE);
    uint64_t size, lsn;
    read_pos(&f, &size, &lsn);
    ls_role_activate_report_t r;
    char err[1024] = "";
    cr_assert_eq(ls_role_activate(f.cp, NULL, &r, err, sizeof(err)), 0, "%s", err);
    expect_activated(&f, &r, lsn);
    fx_free(&f);
}

Test(copy_shadow, refused_activation_leaves_the_shadow_then_counts_its_generation_lost,
     .timeout = 120)
{
    fx_t f;
    fx_init(&f);
    cr_assert_eq(run_child(prepare_activation, &f, NULL), 0);
    uint64_t size, lsn;
    read_pos(&f, &size, &lsn);
    /* the old active closed generation 3 (at its close): the shadow holds only its beginning */
    ls_role_activate_options_t o = {
        .announced = {.last_generation = 3, .last_close_ns = close_time(f.act, 1, 3)}};
    ls_role_activate_report_t r;
    char err[1024] = "";
    cr_assert_eq(ls_role_activate(f.cp, &o, &r, err, sizeof(err)), LS_ESTATE);
    cr_assert(ls_h_contains(err, "would lose 1 generations") && ls_h_contains(err, "3..3"), "%s",
              err);
    char shadow[PATHLEN], p3[PATHLEN];
    shadow_file(f.cp, 1, 3, shadow, sizeof(shadow));
    gen_path(p3, sizeof(p3), f.cp, 1, 3);
    struct stat st;
    cr_assert(stat(shadow, &st) == 0 && stat(p3, &st) != 0, "refused: the shadow is untouched");
    o.max_loss = 1;
    cr_assert_eq(ls_role_activate(f.cp, &o, &r, err, sizeof(err)), 0, "%s", err);
    cr_assert(!r.lossless);
    cr_assert(r.loss.first_generation == 3 && r.loss.last_generation == 3 &&
                  r.loss.generations == 1,
              "generation 3 counted lost: only its first part is here");
    expect_activated(&f, &r, lsn);
    fx_free(&f);
}

/* Re-encodes a record with another generation's seed (the shadow of a new epoch). */
