/* engine/role: activation of a copy (the next epoch chained to its last generation, the open
 * generation after one held but not announced, a lossy one refused then accepted within
 * max_loss, a durable file left in inspect/ replayed), a crash after the history line finished
 * by a rerun, a fenced database that neither rolls nor closes its log, a damaged control page
 * refused. Split from role_test.c; helpers in role_test_util.h. */

#include <criterion/criterion.h>
#include <errno.h>
#include <sys/stat.h>

#include "role_test_util.h"

/* ---- activation ---- */

/* An active of 3 generations of 5 records, generations 1..3 shipped to cp, which is activated
 * with the old active having announced generation `announced` last. */
static void activate_three(const char *act, const char *cp, uint64_t announced,
                           ls_role_activate_report_t *r)
{
    build_active(act, 3, 5);
    ship(act, cp, 1, 3);
    ls_role_activate_options_t o = {.announced = {.last_generation = announced,
                                                  .last_close_ns = close_time(act, 1, announced)}};
    char err[1024] = "";
    cr_assert_eq(ls_role_activate(cp, &o, r, err, sizeof(err)), 0, "%s", err);
}

Test(role, activated_copy_opens_in_the_next_epoch_chained_to_its_last_generation, .timeout = 60)
{
    char *act = ls_h_tmpdir("act"), *cp = ls_h_tmpdir("copy");
    ls_role_activate_report_t r;
    char err[1024] = "";
    activate_three(act, cp, 3, &r);
    cr_assert(r.lossless);
    cr_assert_eq(r.old_epoch, 1);
    cr_assert_eq(r.new_epoch, 2);
    cr_assert_eq(r.last_generation, 3);
    cr_assert_eq(r.first_generation, 4);
    cr_assert_eq(r.last_lsn, 30, "15 puts and 15 commits");
    cr_assert_eq(r.loss.generations, 0);
    cr_assert_eq(r.loss.open_generation, 4);
    size_t hl = 0;
    char hist[PATHLEN];
    snprintf(hist, sizeof(hist), "%s/logs/history", cp);
    char *h = (char *) ls_h_read_file(hist, &hl);
    cr_assert_not_null(h);
    cr_assert(hl == 8 && memcmp(h, "1 1\n2 4\n", 8) == 0, "history: %.*s", (int) hl, h);
    free(h);
    ls_role_state_t st;
    cr_assert_eq(ls_role_load(cp, LS_ROLE_COPY, &st, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(st.role, LS_ROLE_ACTIVE);
    cr_assert_eq(st.epoch, 2);

    ls_db_t *db = open_db(cp);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.epoch, 2);
    cr_assert_eq(s.current_generation, 4);
    cr_assert_eq(s.last_lsn, 30);
    cr_assert_eq(put1(db, "new", "after activation"), 0);
    cr_assert_eq(ls_db_close(db), 0);

    /* generation 4 of epoch 2, chained to generation 3's digest */
    char p3[PATHLEN], p4[PATHLEN];
    gen_path(p3, sizeof(p3), cp, 1, 3);
    gen_path(p4, sizeof(p4), cp, 2, 4);
    ls_layout_ends_t e3;
    cr_assert_eq(ls_layout_read_ends(p3, &e3, NULL, 0), 0);
    ls_gen_expect_t ex = {.epoch = 2,
                          .generation = 4,
                          .first_lsn = 31,
                          .prev_digest = e3.t.digest,
                          .dbid = e3.h.dbid};
    ls_gen_info_t info;
    ls_gen_verdict_t v;
    cr_assert_eq(ls_gen_scan_file(p4, &ex, NULL, NULL, &info, &v), 0, "%s", v.msg);
    cr_assert(info.closed);
    cr_assert_eq(info.record_count, 2);

    db = open_db(cp);
    ls_db_stats(db, &s);
    cr_assert_eq(s.epoch, 2);
    cr_assert_eq(s.current_generation, 5);
    for (int g = 1; g <= 3; g++)
        for (int t = 0; t < 5; t++) {
            char k[32], val[32];
            snprintf(k, sizeof(k), "k%d-%d", g, t);
            snprintf(val, sizeof(val), "v%d-%d", g, t);
            expect_value(db, k, val);
        }
    expect_value(db, "new", "after activation");
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree_free(act);
    ls_h_rmtree_free(cp);
}

/* The copy holds a generation the old active had not announced yet (its COPY_STATE lagged the
 * shipping when it died): its open generation is the one after the last held, not the one after
 * the last announced. */
Test(role, open_generation_follows_a_generation_held_but_not_announced, .timeout = 60)
{
    char *act = ls_h_tmpdir("act"), *cp = ls_h_tmpdir("copy");
    ls_role_activate_report_t r;
    activate_three(act, cp, 2, &r);
    cr_assert(r.lossless);
    cr_assert_eq(r.last_generation, 3);
    cr_assert_eq(r.loss.generations, 0);
    cr_assert_eq(r.loss.open_generation, 4, "generation 3 is held: the open one is 4");
    ls_h_rmtree_free(act);
    ls_h_rmtree_free(cp);
}

Test(role, lossy_activation_is_refused_then_accepted_within_max_loss, .timeout = 60)
{
    char *act = ls_h_tmpdir("act"), *cp = ls_h_tmpdir("copy");
    build_active(act, 5, 3);
    ship(act, cp, 1, 2);
    char p[PATHLEN];
    size_t l3 = 0, l4 = 0, l5 = 0;
    gen_path(p, sizeof(p), act, 1, 3);
    free(ls_h_read_file(p, &l3));
    gen_path(p, sizeof(p), act, 1, 4);
    free(ls_h_read_file(p, &l4));
    gen_path(p, sizeof(p), act, 1, 5);
    free(ls_h_read_file(p, &l5));
    uint64_t c2 = close_time(act, 1, 2), c5 = close_time(act, 1, 5);
    ls_role_activate_options_t o = {
        .max_loss = 2,
        .announced = {.last_generation = 5, .last_close_ns = c5, .missing_bytes = l3 + l4 + l5}};
    ls_role_activate_report_t r;
    char err[1024] = "";
    cr_assert_eq(ls_role_activate(cp, &o, &r, err, sizeof(err)), LS_ESTATE);
    cr_assert(ls_h_contains(err, "would lose 3 generations (more than the 2 allowed)"), "%s", err);
    cr_assert(ls_h_contains(err, "generations 3..5"), "%s", err);
    cr_assert(ls_h_contains(err, "--max-loss 3"), "%s", err);
    char hist[PATHLEN];
    snprintf(hist, sizeof(hist), "%s/logs/history", cp);
    struct stat sb;
    cr_assert_neq(stat(hist, &sb), 0, "nothing recorded by a refused activation");

    o.max_loss = 3;
    cr_assert_eq(ls_role_activate(cp, &o, &r, err, sizeof(err)), 0, "%s", err);
    cr_assert_not(r.lossless);
    cr_assert_eq(r.new_epoch, 2);
    cr_assert_eq(r.first_generation, 3);
    cr_assert_eq(r.loss.first_generation, 3);
    cr_assert_eq(r.loss.last_generation, 5);
    cr_assert_eq(r.loss.generations, 3);
    cr_assert_eq(r.loss.bytes, l3 + l4 + l5);
    cr_assert_eq(r.loss.from_ns, c2);
    cr_assert_eq(r.loss.to_ns, c5);
    cr_assert_eq(r.loss.open_generation, 6);
    ls_role_state_t st;
    cr_assert_eq(ls_role_load(cp, LS_ROLE_COPY, &st, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(st.role, LS_ROLE_ACTIVE);
    cr_assert_eq(memcmp(&st.loss, &r.loss, sizeof(r.loss)), 0, "status keeps the loss");
    cr_assert(ls_h_contains(st.reason, "3 generations lost (3..5)"), "%s", st.reason);

    ls_db_t *db = open_db(cp);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.epoch, 2);
    cr_assert_eq(s.current_generation, 3, "generation 3 of epoch 2 replaces the lost one");
    expect_value(db, "k2-2", "v2-2");
    void *v;
    size_t vl;
    cr_assert_eq(ls_db_get(db, "k3-0", 4, &v, &vl), LS_ENOENT, "lost");
    cr_assert_eq(ls_db_close(db), 0);
    /* a second activation of an active is refused */
    cr_assert_eq(ls_role_activate(cp, &o, &r, err, sizeof(err)), LS_ESTATE);
    cr_assert(ls_h_contains(err, "is active in epoch 2, not a copy"), "%s", err);
    ls_h_rmtree_free(act);
    ls_h_rmtree_free(cp);
}

static int run_child(void (*body)(void *), void *arg, const char *faults)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (faults) setenv("LS_FAULTS", faults, 1); /* before this process's first fault point */
        body(arg);
        _exit(0);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void prepare_copy(void *arg)
{
    char **dirs = arg;
    build_active(dirs[0], 3, 2);
    ship(dirs[0], dirs[1], 1, 3);
}

static void activate_body(void *arg)
{
    char **dirs = arg;
    ls_role_activate_report_t r;
    char err[1024];
    _exit(ls_role_activate(dirs[1], NULL, &r, err, sizeof(err)) == 0 ? 0 : 1);
}

Test(role, activation_crashed_after_the_history_line_is_finished_by_a_rerun, .timeout = 60)
{
    char *dirs[2] = {ls_h_tmpdir("act"), ls_h_tmpdir("copy")};
    cr_assert_eq(run_child(prepare_copy, dirs, NULL), 0);
    cr_assert_eq(run_child(activate_body, dirs, "role.activate.after_history=exit"),
                 LS_FAULT_EXIT_CODE);
    ls_role_state_t st;
    char err[1024] = "";
    cr_assert_eq(ls_role_load(dirs[1], LS_ROLE_COPY, &st, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(st.role, LS_ROLE_COPY, "no role file yet: still a copy");
    uint32_t he;
    uint64_t hg;
    cr_assert_eq(ls_role_history_last(dirs[1], &he, &hg, err, sizeof(err)), 0, "%s", err);
    cr_assert(he == 2 && hg == 4, "the history line is there: %u %" PRIu64, he, hg);
    ls_role_activate_report_t r;
    cr_assert_eq(ls_role_activate(dirs[1], NULL, &r, err, sizeof(err)), 0, "%s", err);
    cr_assert(r.resumed);
    cr_assert_eq(r.new_epoch, 2, "the same epoch, not a third one");
    cr_assert_eq(ls_role_history_last(dirs[1], &he, &hg, err, sizeof(err)), 0, "%s", err);
    cr_assert(he == 2 && hg == 4, "no second line: %u %" PRIu64, he, hg);
    ls_db_t *db = open_db(dirs[1]);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.epoch, 2);
    cr_assert_eq(s.current_generation, 4);
    expect_value(db, "k3-1", "v3-1");
    cr_assert_eq(ls_db_close(db), 0);
    for (int i = 0; i < 2; i++) {
        ls_h_rmtree(dirs[i]);
        free(dirs[i]);
    }
}

Test(role, fenced_database_neither_rolls_nor_closes_its_log)
{
    char *dir = ls_h_tmpdir("fence");
    ls_db_t *db = open_db(dir);
    cr_assert_eq(put1(db, "a", "1"), 0);
    char err[512] = "";
    cr_assert_eq(ls_role_fence(dir, 2, "node-b", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ls_db_roll(db), LS_EFENCED);
    cr_assert_eq(ls_db_close(db), LS_EFENCED);
    char logs[PATHLEN];
    snprintf(logs, sizeof(logs), "%s/logs", dir);
    ls_layout_list_t l;
    cr_assert_eq(ls_layout_list(logs, NULL, &l, NULL, 0), 0);
    cr_assert_eq(l.ngens, 0, "the open log stays open: nothing written after the fence");
    cr_assert(l.has_current);
    ls_layout_list_free(&l);
    ls_h_rmtree_free(dir);
}

Test(role, activation_replays_a_durable_file_left_in_inspect, .timeout = 60)
{
    char *act = ls_h_tmpdir("act"), *cp = ls_h_tmpdir("copy");
    build_active(act, 3, 2);
    ship(act, cp, 1, 2);
    /* generation 3 received and durable, not inspected yet (the receiver died before) */
    char src[PATHLEN], dst[PATHLEN], in[PATHLEN];
    gen_path(src, sizeof(src), act, 1, 3);
    snprintf(in, sizeof(in), "%s/inspect", cp);
    cr_assert_eq(ls_layout_path(dst, sizeof(dst), in, NULL, 1, 3, NULL), 0);
    size_t len = 0;
    uint8_t *buf = ls_h_read_file(src, &len);
    cr_assert_eq(ls_h_write_file(dst, buf, len), 0);
    free(buf);
    /* the copy's pool of preallocated .part files, with a file in it */
    char pool[PATHLEN], pooled[PATHLEN + 16];
    snprintf(pool, sizeof(pool), "%s/pool", cp);
    cr_assert(mkdir(pool, 0755) == 0 || errno == EEXIST);
    snprintf(pooled, sizeof(pooled), "%s/ready-9", pool);
    cr_assert_eq(ls_h_write_file(pooled, "zeros", 5), 0);
    ls_role_activate_options_t o = {
        .announced = {.last_generation = 3, .last_close_ns = close_time(act, 1, 3)}};
    ls_role_activate_report_t r;
    char err[1024] = "";
    cr_assert_eq(ls_role_activate(cp, &o, &r, err, sizeof(err)), 0, "%s", err);
    cr_assert(r.lossless, "generation 3 was durable here");
    cr_assert_eq(r.last_generation, 3);
    struct stat st;
    cr_assert_neq(stat(dst, &st), 0, "inspect/ emptied");
    cr_assert_neq(stat(pool, &st), 0, "pool/ removed");
    ls_db_t *db = open_db(cp);
    expect_value(db, "k3-1", "v3-1");
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.current_generation, 4);
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree_free(act);
    ls_h_rmtree_free(cp);
}

Test(role, damaged_control_page_is_refused_naming_the_file)
{
    char *dir = ls_h_tmpdir("ctl");
    ls_db_t *db = open_db(dir);
    cr_assert_eq(ls_db_close(db), 0);
    char path[PATHLEN];
    snprintf(path, sizeof(path), "%s/control", dir);
    size_t len = 0;
    uint8_t *page = ls_h_read_file(path, &len);
    cr_assert_eq(len, LS_CTL_SIZE);
    page[0] ^= 0xff;
    cr_assert_eq(ls_h_write_file(path, page, len), 0);
    ls_db_options_t o = quiet();
    cr_assert_eq(ls_db_open(dir, &o, &db), LS_ECORRUPT);
    cr_assert(ls_h_contains(ls_db_open_error(), "control: bad magic at offset 0"), "%s",
              ls_db_open_error());
    cr_assert_eq(ls_h_write_file(path, page, 100), 0);
    cr_assert_eq(ls_db_open(dir, &o, &db), LS_ECORRUPT);
    cr_assert(ls_h_contains(ls_db_open_error(), "is not 4096 bytes long"), "%s",
              ls_db_open_error());
    free(page);
    ls_h_rmtree_free(dir);
}
