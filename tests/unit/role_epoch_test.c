/* engine/role's epochs as a node announces and checks them (role.h, "epochs on the wire") and
 * engine/layout's pure history helpers they rest on. */
#include "role_test_util.h"

static void touch(const char *dir, const char *sub, const char *name)
{
    char path[PATHLEN];
    snprintf(path, sizeof(path), "%s/%s", dir, sub);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
    cr_assert_eq(ls_h_write_file(path, "x", 1), 0);
}

Test(role_epoch, layout_history_epoch_at_and_learn)
{
    ls_layout_hist_t h[3] = {{1, 1}, {2, 4}};
    size_t n = 2;
    cr_assert_eq(ls_layout_history_epoch_at(h, n, 3), 1);
    cr_assert_eq(ls_layout_history_epoch_at(h, n, 4), 2);
    cr_assert_eq(ls_layout_history_epoch_at(h, n, 99), 2);
    cr_assert_eq(ls_layout_history_epoch_at(h + 1, 1, 3), 0, "no line covers generation 3");
    cr_assert_eq(ls_layout_history_learn(h, &n, 3, 2, 3), 0);
    cr_assert(n == 2 && h[1].first_gen == 3, "a known epoch starts earlier");
    cr_assert_eq(ls_layout_history_learn(h, &n, 3, 2, 9), 0);
    cr_assert_eq(h[1].first_gen, 3, "never later");
    cr_assert_eq(ls_layout_history_learn(h, &n, 3, 4, 7), 0);
    cr_assert(n == 3 && h[2].epoch == 4 && h[2].first_gen == 7);
    cr_assert_eq(ls_layout_history_learn(h, &n, 3, 3, 5), 0, "full: the oldest line goes");
    cr_assert(n == 3 && h[0].epoch == 2 && h[1].epoch == 3 && h[2].epoch == 4);
    cr_assert_eq(ls_layout_history_learn(h, &n, 3, 1, 1), 0, "older than all kept: ignored");
    cr_assert(n == 3 && h[0].epoch == 2);
    cr_assert_eq(ls_layout_history_learn(h, &n, 3, 0, 1), LS_EINVAL);
    cr_assert_eq(ls_layout_history_learn(h, &n, 3, 5, 0), LS_EINVAL);
}

/* A copy has no history: its epochs come from the names it holds, received or being received. */
Test(role_epoch, known_epochs_merge_the_history_and_the_names)
{
    char *dir = ls_h_tmpdir("role-epoch");
    char err[256] = "";
    ls_layout_hist_t *h = NULL;
    size_t n = 9;
    cr_assert_eq(ls_role_known_epochs(dir, NULL, &h, &n, err, sizeof(err)), 0, "%s", err);
    cr_assert(n == 0 && h == NULL, "an empty directory knows nothing");
    touch(dir, "logs", "E00-00000001-0000000000000001.log");
    touch(dir, "logs", "E00-00000001-0000000000000002.log");
    touch(dir, "logs", "E00-00000002-0000000000000003.log");
    touch(dir, "inspect", "E00-00000003-0000000000000006.log.part");
    touch(dir, "logs", "E00.log");
    cr_assert_eq(ls_role_known_epochs(dir, NULL, &h, &n, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(n, 3);
    cr_assert(h[0].epoch == 1 && h[0].first_gen == 1 && h[1].epoch == 2 && h[1].first_gen == 3 &&
              h[2].epoch == 3 && h[2].first_gen == 6);
    free(h);
    char path[PATHLEN];
    snprintf(path, sizeof(path), "%s/logs/history", dir);
    const char *hist = "1 1\n2 3\n4 8\n";
    cr_assert_eq(ls_h_write_file(path, hist, strlen(hist)), 0);
    cr_assert_eq(ls_role_known_epochs(dir, NULL, &h, &n, err, sizeof(err)), 0, "%s", err);
    cr_assert(n == 4 && h[3].epoch == 4 && h[3].first_gen == 8 && h[2].epoch == 3);
    free(h);
    cr_assert_eq(ls_h_write_file(path, "1 1\nx\n", 6), 0);
    cr_assert_eq(ls_role_known_epochs(dir, NULL, &h, &n, err, sizeof(err)), LS_ECONFIG);
    cr_assert(ls_h_contains(err, "logs/history:2"), "%s", err);
    ls_h_rmtree_free(dir);
}

Test(role_epoch, epoch_info_names_who_activated_the_newest_epoch)
{
    char *dir = ls_h_tmpdir("role-epoch");
    char err[256] = "";
    ls_role_epoch_info_t info;
    touch(dir, "logs", "E00-00000001-0000000000000001.log");
    cr_assert_eq(ls_role_epoch_info(dir, NULL, LS_ROLE_ACTIVE, "node-a", &info, err, sizeof(err)),
                 0, "%s", err);
    cr_assert(info.role == LS_ROLE_ACTIVE && info.epoch == 1 && info.first_generation == 1);
    cr_assert_str_eq(info.active, "node-a", "an active announces itself");
    cr_assert_eq(ls_role_epoch_info(dir, NULL, LS_ROLE_COPY, "node-c", &info, err, sizeof(err)), 0);
    cr_assert_str_eq(info.active, "", "a copy without a role file does not know");
    /* An old active fenced by epoch 2, of which it holds nothing. */
    ls_role_state_t st = {.role = LS_ROLE_DEMOTED, .epoch = 2};
    snprintf(st.follows, sizeof(st.follows), "node-b");
    cr_assert_eq(ls_role_save(dir, &st, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ls_role_epoch_info(dir, NULL, LS_ROLE_ACTIVE, "node-a", &info, err, sizeof(err)),
                 0);
    cr_assert(info.role == LS_ROLE_DEMOTED && info.epoch == 2 && info.first_generation == 0);
    cr_assert_str_eq(info.active, "node-b");
    ls_h_rmtree_free(dir);
}
