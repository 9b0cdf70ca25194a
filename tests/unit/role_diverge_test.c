/*
 * engine/role's divergence: the split point against the new active's chain, moving the later
 * generations aside, and demotion of an old active (fence, then the move once it closed).
 */
#include "role_test_util.h"

static ls_role_link_t *chain_of(const char *dir, size_t *n)
{
    ls_role_link_t *l = NULL;
    char err[512] = "";
    cr_assert_eq(ls_role_chain(dir, NULL, &l, n, err, sizeof(err)), 0, "%s", err);
    return l;
}

/* The new active's chain: mine up to split, then its own generations split+1..last (epoch 2,
 * other digests). */
static ls_role_link_t *their_chain(const ls_role_link_t *mine, size_t nmine, uint64_t split,
                                   uint64_t last, size_t *n)
{
    ls_role_link_t *t = calloc(last + 1, sizeof(*t));
    *n = 0;
    for (size_t i = 0; i < nmine && mine[i].generation <= split; i++)
        t[(*n)++] = mine[i];
    for (uint64_t g = split + 1; g <= last; g++) {
        t[*n] = (ls_role_link_t){.epoch = 2, .generation = g};
        memset(t[*n].digest, 0xa0 + (int) g, LS_DIGEST_SIZE);
        (*n)++;
    }
    return t;
}

Test(role_diverge, split_point_is_the_last_generation_with_the_same_digest)
{
    char *dir = ls_h_tmpdir("div");
    build_active(dir, 6, 2);
    size_t n = 0, nt = 0;
    ls_role_link_t *mine = chain_of(dir, &n);
    cr_assert_eq(n, 6);
    for (uint64_t split = 1; split <= 6; split++) {
        ls_role_link_t *t = their_chain(mine, n, split, 9, &nt);
        ls_role_split_t s;
        ls_role_find_split(mine, n, t, nt, &s);
        cr_assert(s.found && s.overlap, "split %" PRIu64, split);
        cr_assert_eq(s.split, split);
        cr_assert_eq(s.diverged, 6 - split, "split %" PRIu64, split);
        free(t);
    }
    /* theirs shorter than mine, same digests: mine went on alone after their last (Diverged) */
    ls_role_split_t s;
    ls_role_find_split(mine, n, mine, 4, &s);
    cr_assert(s.found);
    cr_assert_eq(s.split, 4);
    cr_assert_eq(s.diverged, 2);
    /* nothing common: every generation diverged */
    ls_role_link_t *t = their_chain(mine, n, 0, 8, &nt);
    ls_role_find_split(mine, n, t, nt, &s);
    cr_assert(!s.found && s.overlap);
    cr_assert_eq(s.diverged, 6);
    free(t);
    /* no common generation number: nothing can be told */
    ls_role_link_t far = {.epoch = 3, .generation = 40};
    ls_role_find_split(mine, n, &far, 1, &s);
    cr_assert(!s.found && !s.overlap);
    cr_assert_eq(s.diverged, 0);
    free(mine);
    ls_h_rmtree_free(dir);
}

static bool exists(const char *dir, const char *sub, uint32_t e, uint64_t g)
{
    char d[PATHLEN], p[PATHLEN];
    snprintf(d, sizeof(d), "%s/%s", dir, sub);
    cr_assert_eq(ls_layout_path(p, sizeof(p), d, NULL, e, g, NULL), 0);
    struct stat st;
    return stat(p, &st) == 0;
}

Test(role_diverge, generations_after_the_split_are_moved_aside_and_reported, .timeout = 60)
{
    char *dir = ls_h_tmpdir("div");
    build_active(dir, 5, 2); /* generation g: k<g>-0, k<g>-1; 4 records each, LSNs 4g-3..4g */
    pid_t pid = fork(); /* a writer that dies with two commits in its open log (generation 6) */
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        ls_db_options_t o = quiet();
        ls_db_t *db = NULL;
        if (ls_db_open(dir, &o, &db) || put1(db, "open-a", "1") || put1(db, "open-b", "2"))
            _exit(1);
        _exit(0);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    size_t n = 0, nt = 0;
    ls_role_link_t *mine = chain_of(dir, &n);
    ls_role_link_t *t = their_chain(mine, n, 3, 7, &nt);
    ls_role_split_t s;
    ls_role_find_split(mine, n, t, nt, &s);
    cr_assert(s.found);
    cr_assert_eq(s.split, 3);
    ls_role_diverged_t rep;
    char err[1024] = "";
    cr_assert_eq(ls_role_move_aside(dir, NULL, s.split, 2, &rep, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rep.generations, 3, "generations 4, 5 and the open log (6)");
    cr_assert_eq(rep.first_generation, 4);
    cr_assert_eq(rep.last_generation, 6);
    cr_assert_eq(rep.first_lsn, 13);
    cr_assert_eq(rep.last_lsn, 24);
    cr_assert_eq(rep.records, 12);
    cr_assert_eq(rep.keys, 6);
    cr_assert_str_eq(rep.key[0], "k4-0");
    cr_assert_str_eq(rep.key[3], "k5-1");
    cr_assert_str_eq(rep.key[4], "open-a");
    cr_assert(rep.from_ns > 0 && rep.to_ns >= rep.from_ns);
    cr_assert(ls_h_contains(rep.dest, "/diverged/2"), "%s", rep.dest);
    for (uint64_t g = 1; g <= 3; g++)
        cr_assert(exists(dir, "logs", 1, g), "generation %" PRIu64 " stays", g);
    for (uint64_t g = 4; g <= 5; g++) {
        cr_assert_not(exists(dir, "logs", 1, g));
        cr_assert(exists(dir, "diverged/2", 1, g), "generation %" PRIu64 " kept aside", g);
    }
    char p[PATHLEN];
    struct stat st;
    snprintf(p, sizeof(p), "%s/diverged/2/E00.log", dir);
    cr_assert_eq(stat(p, &st), 0, "the open log kept aside");
    snprintf(p, sizeof(p), "%s/logs/E00.log", dir);
    cr_assert_neq(stat(p, &st), 0);
    free(t);
    free(mine);
    ls_h_rmtree_free(dir);
}

Test(role_diverge, nothing_diverged_moves_nothing_and_everything_diverged_moves_all, .timeout = 60)
{
    char *dir = ls_h_tmpdir("div");
    build_active(dir, 4, 1);
    size_t n = 0, nt = 0;
    ls_role_link_t *mine = chain_of(dir, &n);
    /* the new active holds all of ours and went on: Demoted, nothing moved */
    ls_role_link_t *t = their_chain(mine, n, 4, 6, &nt);
    ls_role_split_t s;
    ls_role_find_split(mine, n, t, nt, &s);
    cr_assert(s.found);
    cr_assert_eq(s.split, 4);
    cr_assert_eq(s.diverged, 0);
    ls_role_diverged_t rep;
    char err[1024] = "";
    cr_assert_eq(ls_role_move_aside(dir, NULL, s.split, 2, &rep, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rep.generations, 0);
    cr_assert_eq(rep.keys, 0);
    char p[PATHLEN];
    struct stat st;
    snprintf(p, sizeof(p), "%s/diverged", dir);
    cr_assert_neq(stat(p, &st), 0, "no diverged/ when nothing diverged");
    free(t);
    /* a chain with nothing in common: all four moved */
    t = their_chain(mine, n, 0, 5, &nt);
    ls_role_find_split(mine, n, t, nt, &s);
    cr_assert(!s.found && s.overlap);
    cr_assert_eq(ls_role_move_aside(dir, NULL, s.split, 3, &rep, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rep.generations, 4);
    cr_assert_eq(rep.first_generation, 1);
    cr_assert_eq(rep.last_generation, 4);
    cr_assert_eq(rep.first_lsn, 1);
    cr_assert_eq(rep.last_lsn, 8);
    cr_assert_eq(rep.keys, 4);
    for (uint64_t g = 1; g <= 4; g++)
        cr_assert(exists(dir, "diverged/3", 1, g));
    free(t);
    free(mine);
    ls_h_rmtree_free(dir);
}

Test(role_diverge, demote_fences_waits_for_the_application_then_moves_aside, .timeout = 60)
{
    char *dir = ls_h_tmpdir("dem");
    build_active(dir, 4, 1);
    size_t n = 0, nt = 0;
    ls_role_link_t *mine = chain_of(dir, &n);
    ls_role_link_t *t = their_chain(mine, n, 2, 5, &nt);
    ls_db_t *db = open_db(dir); /* the application still has it open */
    ls_role_demote_report_t r;
    char err[1024] = "";
    cr_assert_eq(ls_role_demote(dir, NULL, t, nt, 2, "node-b", &r, err, sizeof(err)), LS_EBUSY);
    cr_assert(ls_h_contains(err, "still has it open"), "%s", err);
    cr_assert_eq(put1(db, "late", "x"), LS_EFENCED);
    cr_assert(ls_h_contains(ls_db_errmsg(db), "node-b"), "%s", ls_db_errmsg(db));
    ls_db_close(db);
    cr_assert_eq(ls_role_demote(dir, NULL, t, nt, 2, "node-b", &r, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(r.role, LS_ROLE_DIVERGED);
    cr_assert_eq(r.split.split, 2);
    cr_assert_eq(r.moved.generations, 2);
    ls_role_state_t st;
    cr_assert_eq(ls_role_load(dir, LS_ROLE_ACTIVE, &st, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(st.role, LS_ROLE_DIVERGED);
    cr_assert_eq(st.epoch, 2);
    cr_assert_str_eq(st.follows, "node-b");
    cr_assert(ls_h_contains(st.reason, "generations 3..4"), "%s", st.reason);
    ls_db_options_t o = quiet();
    cr_assert_eq(ls_db_open(dir, &o, &db), LS_EFENCED, "still fenced");
    /* run again (as after a crash before the role file): nothing left to move, still diverged */
    cr_assert_eq(ls_role_demote(dir, NULL, t, nt, 2, "node-b", &r, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(r.moved.generations, 0);
    cr_assert_eq(r.role, LS_ROLE_DIVERGED);
    cr_assert_eq(ls_role_load(dir, LS_ROLE_ACTIVE, &st, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(st.role, LS_ROLE_DIVERGED);
    cr_assert(ls_h_contains(st.reason, "moved aside by an earlier run"), "%s", st.reason);
    free(t);
    free(mine);
    ls_h_rmtree_free(dir);
}
