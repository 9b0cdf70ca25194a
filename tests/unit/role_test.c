/*
 * engine/role and the writer's fence: the role file, the control page's fence (set from
 * another process while commits run). Activation of a copy and a crash during it:
 * role_activate_test.c.
 */

#include <criterion/criterion.h>
#include <errno.h>
#include <sys/stat.h>

#include "role_test_util.h"

/* ---- the role file ---- */

Test(role, missing_file_means_the_configured_role_and_the_history_epoch)
{
    char *dir = ls_h_tmpdir("role");
    ls_role_state_t st;
    char err[512] = "";
    cr_assert_eq(ls_role_load(dir, LS_ROLE_COPY, &st, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(st.role, LS_ROLE_COPY);
    cr_assert_eq(st.epoch, 1);
    char logs[PATHLEN];
    snprintf(logs, sizeof(logs), "%s/logs", dir);
    mkdir(logs, 0700);
    write_text(dir, "logs/history", "1 1\n3 17\n");
    cr_assert_eq(ls_role_load(dir, LS_ROLE_ACTIVE, &st, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(st.role, LS_ROLE_ACTIVE);
    cr_assert_eq(st.epoch, 3);
    ls_h_rmtree_free(dir);
}

Test(role, saved_state_survives_and_reads_back_exactly)
{
    char *dir = ls_h_tmpdir("role");
    ls_role_state_t st = {.role = LS_ROLE_DIVERGED, .epoch = 7, .since_ns = 1234567890123ull};
    snprintf(st.follows, sizeof(st.follows), "node-b");
    snprintf(st.reason, sizeof(st.reason), "fenced by node-b\nwith a newline");
    st.loss = (ls_role_loss_t){5, 9, 5, 123456, 1000, 2000, 10, 4321, 4400};
    char err[512] = "";
    cr_assert_eq(ls_role_save(dir, &st, err, sizeof(err)), 0, "%s", err);
    ls_role_state_t back;
    cr_assert_eq(ls_role_load(dir, LS_ROLE_COPY, &back, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(back.role, LS_ROLE_DIVERGED);
    cr_assert_eq(back.epoch, 7);
    cr_assert_eq(back.since_ns, 1234567890123ull);
    cr_assert_str_eq(back.follows, "node-b");
    cr_assert_str_eq(back.reason, "fenced by node-b with a newline");
    cr_assert_eq(memcmp(&back.loss, &st.loss, sizeof(st.loss)), 0);
    ls_h_rmtree_free(dir);
}

Test(role, malformed_file_names_the_file_line_and_field)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"role active\nepoch 0\n", "role:2: epoch must be"},
        {"role leader\nepoch 2\n", "role:1: role must be active, copy, demoted or diverged"},
        {"# c\nrole copy\nepoch 2\ncolour blue\n", "role:4: unknown key"},
        {"role copy\n", "the epoch line is missing"},
        {"epoch 3\nloss 1 2 3\n", "role:2: loss needs seven numbers"},
    };
    char *dir = ls_h_tmpdir("role");
    for (size_t i = 0; i < LS_ARRAY_SIZE(cases); i++) {
        write_text(dir, "role", cases[i].text);
        ls_role_state_t st;
        char err[512] = "";
        cr_assert_eq(ls_role_load(dir, LS_ROLE_COPY, &st, err, sizeof(err)), LS_ECONFIG, "case %zu",
                     i);
        cr_assert(ls_h_contains(err, cases[i].want), "case %zu: %s", i, err);
        cr_assert(ls_h_contains(err, dir), "names the file: %s", err);
    }
    ls_h_rmtree_free(dir);
}

/* ---- the fence ---- */

Test(role, fenced_database_fails_commits_stickily_naming_the_new_active)
{
    char *dir = ls_h_tmpdir("fence");
    ls_db_t *db = open_db(dir);
    cr_assert_eq(put1(db, "a", "1"), 0);
    char err[512] = "";
    cr_assert_eq(ls_role_fence(dir, 2, "node-b", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(put1(db, "b", "2"), LS_EFENCED);
    cr_assert(ls_h_contains(ls_db_errmsg(db), "node-b became active in epoch 2"), "%s",
              ls_db_errmsg(db));
    cr_assert_eq(put1(db, "c", "3"), LS_EFENCED, "sticky");
    void *v;
    size_t vl;
    cr_assert_eq(ls_db_get(db, "b", 1, &v, &vl), LS_ENOENT, "nothing written after the fence");
    cr_assert_eq(ls_db_close(db), LS_EFENCED);
    ls_role_state_t st;
    cr_assert_eq(ls_role_load(dir, LS_ROLE_ACTIVE, &st, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(st.role, LS_ROLE_DEMOTED);
    cr_assert_eq(st.epoch, 2);
    cr_assert_str_eq(st.follows, "node-b");
    ls_h_rmtree_free(dir);
}

Test(role, fenced_directory_refuses_to_open)
{
    char *dir = ls_h_tmpdir("fence");
    ls_db_t *db = open_db(dir);
    cr_assert_eq(put1(db, "a", "1"), 0);
    cr_assert_eq(ls_db_close(db), 0);
    char err[512] = "";
    cr_assert_eq(ls_role_fence(dir, 4, "node-c", err, sizeof(err)), 0, "%s", err);
    ls_db_options_t o = quiet();
    cr_assert_eq(ls_db_open(dir, &o, &db), LS_EFENCED);
    cr_assert_null(db);
    cr_assert(ls_h_contains(ls_db_open_error(), "node-c became active in epoch 4"), "%s",
              ls_db_open_error());
    ls_h_rmtree_free(dir);
}

typedef struct {
    ls_db_t *db;
    int id;
    int ok;     /* commits that returned 0 */
    int fenced; /* commits that returned LS_EFENCED */
    int other;  /* any other result */
} committer_t;

static void *commit_loop(void *arg)
{
    committer_t *c = arg;
    for (int i = 0; i < 100000 && c->fenced == 0 && c->other == 0; i++) {
        char key[32];
        snprintf(key, sizeof(key), "t%d-%d", c->id, i);
        int rc = put1(c->db, key, "x");
        if (rc == 0)
            c->ok++;
        else if (rc == LS_EFENCED)
            c->fenced++;
        else
            c->other++;
    }
    return NULL;
}

static bool enough_commits(void *ctx)
{
    ls_db_stats_t s;
    ls_db_stats(ctx, &s);
    return s.commits >= 50;
}

Test(role, fence_set_by_another_process_stops_running_commits, .timeout = 60)
{
    char *dir = ls_h_tmpdir("fence");
    ls_db_t *db = open_db(dir);
    committer_t c[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (committer_t){.db = db, .id = i};
        cr_assert_eq(pthread_create(&th[i], NULL, commit_loop, &c[i]), 0);
    }
    cr_assert(ls_h_wait_for(enough_commits, db, 30000), "commits are running");
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) { /* another process, as the daemon would be: only the control page */
        char err[512] = "";
        ls_ctlpage_t *ctl = NULL;
        int rc = ls_ctlpage_open(dir, false, &ctl, err, sizeof(err));
        if (rc == 0) rc = ls_ctlpage_set_fence(ctl, 3, "node-far", err, sizeof(err));
        ls_ctlpage_close(ctl);
        _exit(rc == 0 ? 0 : 1);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(c[i].other, 0);
        cr_assert_eq(c[i].fenced, 1, "committer %d stopped by the fence", i);
    }
    cr_assert(ls_h_contains(ls_db_errmsg(db), "node-far"), "%s", ls_db_errmsg(db));
    /* every acknowledged commit is there, none after the fence */
    int ok = c[0].ok + c[1].ok + c[2].ok + c[3].ok;
    cr_assert_eq((uint64_t) ok, s.commits);
    ls_db_close(db);
    ls_h_rmtree_free(dir);
}
