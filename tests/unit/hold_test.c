/*
 * A planned switchover's hold as the writer sees it (engine/writer, ctlpage.h LS_CTL_HOLD): the
 * control page's fence with the hold flag refuses commits with LS_EFENCED naming the node that
 * becomes active, closes a current log holding records (at the next batch, or at the idle tick
 * when no commit comes) and acknowledges the hold with the last generation and LSN; unlike a
 * fence it is not sticky: once cleared, commits are accepted again. A close under the hold
 * records the last generation as applied completely in the store's position.
 */
#include "role_test_util.h"

#include "store/store.h"

static size_t closed_gens(const char *dir, bool *current)
{
    char logs[PATHLEN];
    snprintf(logs, sizeof(logs), "%s/logs", dir);
    ls_layout_list_t l;
    cr_assert_eq(ls_layout_list(logs, NULL, &l, NULL, 0), 0);
    size_t n = l.ngens;
    *current = l.has_current;
    ls_layout_list_free(&l);
    return n;
}

static ls_ctlpage_t *hold(const char *dir)
{
    ls_ctlpage_t *p = NULL;
    char err[512] = "";
    cr_assert_eq(ls_ctlpage_open(dir, false, &p, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ls_ctlpage_set_hold(p, 2, "node-b", err, sizeof(err)), 0, "%s", err);
    cr_assert(ls_ctlpage_held(p) && ls_ctlpage_fenced(p) == 2);
    return p;
}

Test(hold, next_batch_closes_the_log_refuses_and_clearing_resumes_commits)
{
    char *dir = ls_h_tmpdir("hold");
    ls_db_t *db = open_db(dir);
    cr_assert_eq(put1(db, "a", "1"), 0);
    cr_assert_eq(put1(db, "b", "2"), 0);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    uint64_t lsn = s.last_lsn, g0 = s.current_generation;
    ls_ctlpage_t *p = hold(dir);
    cr_assert_eq(put1(db, "c", "3"), LS_EFENCED);
    cr_assert(ls_h_contains(ls_db_errmsg(db), "is fenced: node-b becomes the active in epoch 2"),
              "%s", ls_db_errmsg(db));
    uint64_t gen = 0, alsn = 0;
    cr_assert(ls_ctlpage_hold_acked(p, &gen, &alsn), "the writer acknowledged the hold");
    cr_assert_eq(gen, g0, "the log holding a and b was closed");
    cr_assert_eq(alsn, lsn);
    bool cur;
    cr_assert_eq(closed_gens(dir, &cur), 1);
    cr_assert_eq(put1(db, "d", "4"), LS_EFENCED, "refused while held");
    void *v;
    size_t vl;
    cr_assert_eq(ls_db_get(db, "c", 1, &v, &vl), LS_ENOENT, "nothing written in the hold");
    /* The hold undone: commits go on, in the next generation. */
    char err[512] = "";
    cr_assert_eq(ls_ctlpage_clear_fence(p, err, sizeof(err)), 0, "%s", err);
    cr_assert(!ls_ctlpage_held(p) && !ls_ctlpage_hold_acked(p, &gen, &alsn));
    cr_assert_eq(put1(db, "e", "5"), 0, "%s", ls_db_errmsg(db));
    ls_db_stats(db, &s);
    cr_assert_eq(s.current_generation, g0 + 1);
    cr_assert_eq(ls_db_close(db), 0);
    ls_ctlpage_close(p);
    ls_h_rmtree_free(dir);
}

static bool acked(void *ctx)
{
    uint64_t g, l;
    return ls_ctlpage_hold_acked(ctx, &g, &l);
}

Test(hold, idle_writer_closes_its_log_on_its_tick_and_its_close_marks_it_applied)
{
    char *dir = ls_h_tmpdir("hold");
    ls_db_t *db = open_db(dir);
    cr_assert_eq(put1(db, "a", "1"), 0);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    uint64_t g0 = s.current_generation;
    ls_ctlpage_t *p = hold(dir);
    cr_assert(ls_h_wait_for(acked, p, 10000), "no commit came: the idle tick did not see the hold");
    uint64_t gen = 0, lsn = 0;
    cr_assert(ls_ctlpage_hold_acked(p, &gen, &lsn));
    cr_assert_eq(gen, g0);
    bool cur;
    cr_assert_eq(closed_gens(dir, &cur), 1);
    /* Open refused while held, naming the node that becomes active. */
    ls_db_t *other = NULL;
    cr_assert_eq(ls_db_close(db), 0, "a close under the hold is clean");
    cr_assert_eq(ls_db_open(dir, NULL, &other), LS_EFENCED);
    cr_assert(ls_h_contains(ls_db_open_error(), "node-b becomes the active"), "%s",
              ls_db_open_error());
    char store[PATHLEN], err[512] = "";
    snprintf(store, sizeof(store), "%s/store", dir);
    ls_store_meta_t m;
    cr_assert_eq(ls_store_peek_meta(store, &m, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(m.digest_generation, g0, "the closed generation is recorded as applied");
    cr_assert_eq(m.lsn, lsn);
    ls_ctlpage_close(p);
    ls_h_rmtree_free(dir);
}
