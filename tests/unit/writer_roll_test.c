/*
 * Rolls and crashes: the header of a new current log is not synced by itself (the first batch's
 * fdatasync makes it durable), so a power cut may leave it torn; recovery creates it again. The
 * next log prepared ahead (zeros, prep.c): taken by the roll, its zeros not mistaken for data or
 * a torn tail, a kill at each of its steps recovered.
 */
#include <fcntl.h>

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
    /* No prepared next log (below for that one): set before this process reads the fault
     * points (at its first open), so the children inherit it. */
    setenv("LS_FAULTS", "writer.prep.before=fail", 1);
    for (off_t cut = 0; cut < LS_GEN_HEADER_SIZE; cut += 37) {
        char *dir = ls_h_tmpdir("writer");
        cr_assert_eq(in_child(NULL, child_roll_then_crash, dir, 0), 0);
        char cur[PATHLEN];
        cur_path(dir, cur);
        cr_assert_eq(file_size(cur), LS_GEN_HEADER_SIZE);
        cr_assert_eq(truncate(cur, cut), 0);
        ls_db_t *db = open_sized(dir, 0);
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
        ls_h_rmtree_free(dir);
    }
}

/* ---- the next log prepared ahead (prep.c): zeros, renamed in at the roll ----------------- */

#define TARGET 65536 /* target_size: the prepared logs have this size (a multiple of 4 KiB) */

static ls_db_options_t prep_opts(void)
{
    ls_db_options_t o = quiet_opts();
    o.target_size = TARGET;
    return o;
}

static bool prepared(void *ctx)
{
    ls_db_stats_t s;
    ls_db_stats(ctx, &s);
    return s.next_prepared == 1;
}

/* Child: 3 transactions, a roll once the next log is prepared (it must take it), n more
 * transactions into it, then a crash. */
static void child_prepared_roll(const char *dir, int n)
{
    ls_db_options_t o = prep_opts();
    ls_db_t *db = NULL;
    if (ls_db_open(dir, &o, &db)) _exit(3);
    for (int i = 0; i < 3; i++)
        if (commit_tx(db, i, 2, 8)) _exit(4);
    if (!ls_h_wait_for(prepared, db, 10000)) _exit(6);
    if (ls_db_roll(db)) _exit(5);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    if (s.prepared_rolls != 1) _exit(7);
    for (int i = 3; i < 3 + n; i++)
        if (commit_tx(db, i, 2, 8)) _exit(4);
    _exit(0);
}

/* The closed generation at path verifies as closed: it ends at its trailer. */
static void assert_closed(const char *path)
{
    ls_gen_expect_t ex = {0};
    ls_gen_info_t in;
    ls_gen_verdict_t v;
    cr_assert_eq(ls_gen_scan_file(path, &ex, NULL, NULL, &in, &v), 0, "%s: %s", path, v.msg);
    cr_assert(in.closed, "%s", path);
}

/* Opens dir, checks transactions 0..ntx-1 (and tx 100 + k for k < more: earlier calls' commits)
 * and that commits continue (tx 100 + more), closes; returns the stats taken at open. */
static ls_db_stats_t reopen_check(const char *dir, int ntx, int more)
{
    ls_db_options_t o = prep_opts();
    ls_db_t *db = open_db(dir, &o);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.last_lsn, 3u * (uint64_t) (ntx + more));
    for (int i = 0; i < ntx; i++)
        cr_assert(has_tx(db, i, 0) && has_tx(db, i, 1), "tx %d", i);
    for (int k = 0; k < more; k++)
        cr_assert(has_tx(db, 100 + k, 1), "tx %d", 100 + k);
    cr_assert_eq(commit_tx(db, 100 + more, 2, 8), 0, "commits continue");
    cr_assert_eq(ls_db_close(db), 0);
    return s;
}

Test(writer, a_prepared_next_log_takes_the_roll_and_its_zeros_are_not_a_torn_tail)
{
    char *dir = ls_h_tmpdir("writer");
    cr_assert_eq(in_child(NULL, child_prepared_roll, dir, 2), 0);
    char cur[PATHLEN];
    cur_path(dir, cur);
    cr_assert_eq(file_size(cur), TARGET, "the current log is the prepared file");
    genfile_t g[4];
    cr_assert_eq(list_gens(dir, g, 4), 1);
    assert_closed(g[0].name);
    ls_db_stats_t s = reopen_check(dir, 5, 0);
    cr_assert_eq(s.current_generation, 2);
    cr_assert_eq(s.truncated_bytes, 0, "zeros after the last COMMIT are preallocation");
    cr_assert_eq(list_gens(dir, g, 4), 2, "close rolled generation 2");
    assert_closed(g[1].name); /* cut to its records before the trailer */
    s = reopen_check(dir, 5, 1);
    cr_assert_eq(s.truncated_bytes, 0, "a clean close leaves nothing torn");
    ls_h_rmtree_free(dir);
}

Test(writer, a_torn_or_stale_tail_in_a_prepared_log_is_cut_with_its_zeros)
{
    char *dir = ls_h_tmpdir("writer");
    cr_assert_eq(in_child(NULL, child_prepared_roll, dir, 2), 0);
    char cur[PATHLEN];
    cur_path(dir, cur);
    ls_gen_expect_t ex = {.allow_open = true};
    ls_gen_info_t in;
    ls_gen_verdict_t v;
    cr_assert_eq(ls_gen_scan_file(cur, &ex, NULL, NULL, &in, &v), 0);
    cr_assert_eq(in.record_count, 6);
    /* Bytes after the last COMMIT that are not zeros: a batch written but never synced. */
    uint8_t junk[100];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t) (i * 37 + 1);
    int fd = open(cur, O_WRONLY);
    cr_assert_eq(pwrite(fd, junk, sizeof(junk), (off_t) in.commit_end), (ssize_t) sizeof(junk));
    close(fd);
    ls_db_stats_t s = reopen_check(dir, 5, 0);
    cr_assert_eq(s.truncated_bytes, TARGET - in.commit_end, "the junk and the zeros after it");
    ls_h_rmtree_free(dir);
}

Test(writer, a_prepared_log_whose_header_was_lost_is_created_again)
{
    /* The roll writes the header into the prepared file without a sync of its own: a power cut
     * may leave zeros (or part of it) where it goes, the file keeping its size. */
    for (off_t cut = 0; cut < LS_GEN_HEADER_SIZE; cut += 37) {
        char *dir = ls_h_tmpdir("writer");
        cr_assert_eq(in_child(NULL, child_prepared_roll, dir, 0), 0);
        char cur[PATHLEN];
        cur_path(dir, cur);
        uint8_t z[LS_GEN_HEADER_SIZE] = {0};
        int fd = open(cur, O_WRONLY);
        cr_assert_eq(pwrite(fd, z, (size_t) (LS_GEN_HEADER_SIZE - cut), cut),
                     LS_GEN_HEADER_SIZE - cut);
        close(fd);
        ls_db_stats_t s = reopen_check(dir, 3, 0);
        cr_assert_eq(s.current_generation, 2, "cut %lld", (long long) cut);
        genfile_t g[4];
        cr_assert_eq(list_gens(dir, g, 4), 2, "generation 2 closed after generation 1");
        ls_h_rmtree_free(dir);
    }
}

Test(writer, kill_after_renaming_the_prepared_log_recovers_with_or_without_the_rename)
{
    char *dir = ls_h_tmpdir("writer");
    cr_assert_eq(in_child("writer.roll.after_next_rename=exit", child_prepared_roll, dir, 2),
                 LS_FAULT_EXIT_CODE);
    char *lost = ls_h_tmpdir("writer-lost");
    char cmd[3 * PATHLEN];
    snprintf(cmd, sizeof(cmd), "rm -rf %s && cp -a %s %s && mv %s/logs/E00.log %s/logs/E00.next",
             lost, dir, lost, lost, lost);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 10000), 0);
    /* dir: renamed (zeros under the current log's name); lost: the rename did not persist. */
    const char *dirs[2] = {dir, lost};
    for (int i = 0; i < 2; i++) {
        ls_db_stats_t s = reopen_check(dirs[i], 3, 0);
        cr_assert_eq(s.current_generation, 2, "%s", dirs[i]);
        genfile_t g[4];
        cr_assert_eq(list_gens(dirs[i], g, 4), 2, "%s", dirs[i]);
        ls_h_rmtree(dirs[i]);
    }
    free(dir);
    free(lost);
}

/* Child: commits until the prep thread's fault point ends the process. */
static void child_commit_while_preparing(const char *dir, int n)
{
    (void) n;
    ls_db_options_t o = prep_opts();
    ls_db_t *db = NULL;
    if (ls_db_open(dir, &o, &db)) _exit(3);
    for (int i = 0; i < 100000; i++)
        if (commit_tx(db, i, 2, 8)) _exit(4);
    _exit(5);
}

Test(writer, kill_while_preparing_the_next_log_leaves_nothing_to_recover)
{
    char *dir = ls_h_tmpdir("writer");
    cr_assert_eq(in_child("writer.prep.after_fill=exit", child_commit_while_preparing, dir, 0),
                 LS_FAULT_EXIT_CODE);
    ls_db_options_t o = prep_opts();
    ls_db_t *db = open_db(dir, &o);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.current_generation, 1);
    cr_assert_eq(s.truncated_bytes, 0);
    cr_assert(ls_h_wait_for(prepared, db, 10000), "the next log is prepared again");
    cr_assert_eq(commit_tx(db, 0, 2, 8), 0);
    cr_assert_eq(ls_db_roll(db), 0);
    ls_db_stats(db, &s);
    cr_assert_eq(s.prepared_rolls, 1);
    cr_assert_eq(ls_db_close(db), 0);
    genfile_t g[4];
    cr_assert_eq(list_gens(dir, g, 4), 1);
    assert_closed(g[0].name);
    ls_h_rmtree_free(dir);
}
