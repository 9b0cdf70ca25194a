/*
 * Rolls and crashes: the header of a new current log is not synced by itself (the first batch's
 * fdatasync makes it durable), so a power cut may leave it torn; recovery creates it again.
 */
#include "writer_util.h"

/* ---- the header of a new current log is made durable by its first batch ------------------ */

/* Child: 3 transactions, a roll (the new current log holds only its header, never synced by
 * itself), then a crash. */
static void child_roll_then_crash(const char *dir, int n)
{
    (void) n;
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = NULL;
    if (ls_db_open(dir, &o, &db)) _exit(3);
    for (int i = 0; i < 3; i++)
        if (commit_tx(db, i, 2, 8)) _exit(4);
    _exit(ls_db_roll(db) == 0 ? 0 : 5);
}

Test(writer, a_new_current_log_whose_header_was_lost_is_created_again)
{
    /* A power cut after the roll's directory fsync may keep the name of the new current log but
     * not its header (no fsync of its own): every cut of the header is recreated at open. */
    for (off_t cut = 0; cut < LS_GEN_HEADER_SIZE; cut += 37) {
        char *dir = ls_h_tmpdir("writer");
        cr_assert_eq(in_child(NULL, child_roll_then_crash, dir, 0), 0);
        char cur[PATHLEN];
        cur_path(dir, cur);
        cr_assert_eq(file_size(cur), LS_GEN_HEADER_SIZE);
        cr_assert_eq(truncate(cur, cut), 0);
        ls_db_options_t o = quiet_opts();
        ls_db_t *db = open_db(dir, &o);
        ls_db_stats_t s;
        ls_db_stats(db, &s);
        cr_assert_eq(s.current_generation, 2, "cut %lld", (long long) cut);
        cr_assert_eq(s.last_lsn, 9);
        for (int i = 0; i < 3; i++)
            cr_assert(has_tx(db, i, 0) && has_tx(db, i, 1), "cut %lld: tx %d", (long long) cut, i);
        cr_assert_eq(commit_tx(db, 3, 2, 8), 0, "commits continue");
        cr_assert_eq(ls_db_close(db), 0);
        genfile_t g[4];
        cr_assert_eq(list_gens(dir, g, 4), 2, "generation 2 closed after generation 1");
        ls_h_rmtree(dir);
        free(dir);
    }
}
