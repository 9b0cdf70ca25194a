/*
 * writer crash recovery: a torn tail at every byte of the last transaction, tails of zeros, random
 * bytes and stale records, kills at the roll, commit and apply fault points (between the two
 * stages of the pipeline, with durable batches across rolls waiting for the applier), sticky
 * failure of the log and of the store. The store rebuilt from the logs and kill -9 under
 * concurrent commits: writer_rebuild_test.c.
 * Crashes are simulated in a forked child (writer_util.h) that _exit()s or dies at a fault point.
 */

#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <logship/db.h>

#include "core/core.h"
#include "harness.h"
#include "writer_util.h"

static void read_pos(const char *dir, long long *pos)
{
    char p[PATHLEN];
    snprintf(p, sizeof(p), "%s.pos", dir);
    FILE *f = fopen(p, "r");
    cr_assert_not_null(f);
    cr_assert_eq(fscanf(f, "%lld", pos), 1);
    fclose(f);
    unlink(p);
}

Test(writer, torn_tail_at_every_byte_of_the_last_transaction_recovers_to_the_last_commit)
{
    char *tmpl = ls_h_tmpdir("writer-tmpl");
    /* The child dies after writing its 6th transaction, before the fsync and the store apply. */
    int st = in_child("writer.commit.after_write=exit@6", child_commit, tmpl, 6);
    cr_assert_eq(st, LS_FAULT_EXIT_CODE);
    long long pos;
    read_pos(tmpl, &pos);
    char cur[PATHLEN];
    cur_path(tmpl, cur);
    long long end = file_size(cur);
    cr_assert_eq(end - pos, 3 * 32 + 2 * (4 + 8), "two puts and a COMMIT: %lld", end - pos);
    char *work = ls_h_tmpdir("writer-work");
    char cmd[3 * PATHLEN];
    for (long long cut = pos; cut <= end; cut++) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s && cp -a %s %s", work, tmpl, work);
        cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 10000), 0);
        cur_path(work, cur);
        cr_assert_eq(truncate(cur, (off_t) cut), 0);
        ls_db_t *db = open_sized(work, 0);
        ls_db_stats_t s;
        ls_db_stats(db, &s);
        for (int i = 0; i < 5; i++)
            cr_assert(has_tx(db, i, 0) && has_tx(db, i, 1), "cut %lld: tx %d present", cut, i);
        bool complete = cut == end;
        cr_assert_eq(has_tx(db, 5, 0), complete, "cut %lld: last tx iff complete", cut);
        cr_assert_eq(has_tx(db, 5, 1), complete, "cut %lld", cut);
        cr_assert_eq(s.last_lsn, complete ? 18u : 15u, "cut %lld", cut);
        cr_assert_eq(s.truncated_bytes, complete ? 0u : (uint64_t) (cut - pos), "cut %lld", cut);
        cr_assert_eq(s.recovered_records, complete ? 3u : 0u, "cut %lld", cut);
        cr_assert_eq(file_size(cur), complete ? end : pos, "cut %lld: tail removed", cut);
        cr_assert_eq(commit_tx(db, 100, 1, 8), 0, "cut %lld: commits continue", cut);
        cr_assert_eq(ls_db_close(db), 0);
    }
    ls_h_rmtree_free(work);
    ls_h_rmtree_free(tmpl);
}

/* Appends a tail to the current log of a crashed database and checks recovery removes it. */
static void check_tail(const uint8_t *tail, size_t len)
{
    char *dir = ls_h_tmpdir("writer");
    cr_assert_eq(in_child(NULL, child_commit, dir, 4), 0);
    long long pos;
    read_pos(dir, &pos);
    char cur[PATHLEN];
    cur_path(dir, cur);
    off_t before = file_size(cur);
    int fd = open(cur, O_WRONLY | O_APPEND);
    cr_assert_eq(write(fd, tail, len), (ssize_t) len);
    close(fd);
    ls_db_t *db = open_sized(dir, 0);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.truncated_bytes, len);
    cr_assert_eq(s.last_lsn, 12);
    cr_assert_eq(file_size(cur), before, "tail removed");
    for (int i = 0; i < 4; i++)
        cr_assert(has_tx(db, i, 0) && has_tx(db, i, 1));
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree_free(dir);
}

Test(writer, tail_of_zeros_is_removed)
{
    uint8_t z[4096] = {0};
    check_tail(z, sizeof(z));
}

Test(writer, tail_of_random_bytes_is_removed)
{
    uint8_t r[3000];
    srand(7);
    for (size_t i = 0; i < sizeof(r); i++)
        r[i] = (uint8_t) rand();
    check_tail(r, sizeof(r));
}

/* Records that would be valid at the end of the current log (generation 2: right database,
 * next LSN, next txid) but sealed with the seed of generation 1, as a recycled file would hold. */
static size_t stale_records(const char *dir, uint8_t *out)
{
    char cur[PATHLEN];
    cur_path(dir, cur);
    size_t n = 0;
    uint8_t *buf = ls_h_read_file(cur, &n);
    ls_gen_header_t h;
    cr_assert_eq(ls_gen_header_decode(buf, n, &h), 0);
    free(buf);
    cr_assert_eq(h.generation, 2);
    uint64_t seed = ls_gen_seed(h.dbid, h.epoch, 1);
    const char *k = "k9-0", *v = "stale!!!";
    ls_record_t r = {.type = LS_REC_PUT,
                     .lsn = h.first_lsn,
                     .txid = 6,
                     .key = (const uint8_t *) k,
                     .key_len = 4,
                     .value = (const uint8_t *) v,
                     .value_len = 8};
    size_t len = ls_record_encode(&r, seed, out);
    r = (ls_record_t){.type = LS_REC_COMMIT, .lsn = h.first_lsn + 1, .txid = 6};
    return len + ls_record_encode(&r, seed, out + len);
}

Test(writer, tail_of_records_from_an_older_generation_is_removed)
{
    char *dir = ls_h_tmpdir("writer");
    /* No prepared next log: the new current log is created, its records appended after the
     * header (writer_roll_test.c covers the prepared one). */
    cr_assert_eq(in_child("writer.prep.before=fail", child_commit_roll, dir, 5), 5,
                 "committed, rolled, crashed");
    uint8_t tail[256];
    size_t len = stale_records(dir, tail);
    char cur[PATHLEN];
    cur_path(dir, cur);
    int fd = open(cur, O_WRONLY | O_APPEND);
    cr_assert_eq(write(fd, tail, len), (ssize_t) len);
    close(fd);
    ls_db_t *db = open_sized(dir, 0);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.truncated_bytes, len, "the stale records never validate");
    cr_assert_eq(s.last_lsn, 15);
    cr_assert_eq(file_size(cur), LS_GEN_HEADER_SIZE);
    void *v;
    size_t vl;
    cr_assert_eq(ls_db_get(db, "k9-0", 4, &v, &vl), LS_ENOENT);
    cr_assert(has_tx(db, 4, 1));
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree_free(dir);
}

Test(writer, kill_between_rename_and_directory_fsync_recovers)
{
    char *dir = ls_h_tmpdir("writer");
    cr_assert_eq(in_child("writer.roll.after_rename=exit", child_commit_roll, dir, 5),
                 LS_FAULT_EXIT_CODE);
    ls_db_t *db = open_sized(dir, 0);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.last_closed, 1);
    cr_assert_eq(s.current_generation, 2, "the next current log was created");
    cr_assert_eq(s.last_lsn, 15);
    for (int i = 0; i < 5; i++)
        cr_assert(has_tx(db, i, 0) && has_tx(db, i, 1));
    cr_assert_eq(commit_tx(db, 7, 1, 8), 0);
    cr_assert_eq(ls_db_close(db), 0);
    genfile_t g[8];
    cr_assert_eq(list_gens(dir, g, 8), 2);
    ls_h_rmtree_free(dir);
}

Test(writer, kill_after_trailer_before_rename_finishes_the_close)
{
    char *dir = ls_h_tmpdir("writer");
    cr_assert_eq(in_child("writer.roll.after_trailer=exit", child_commit_roll, dir, 5),
                 LS_FAULT_EXIT_CODE);
    genfile_t g[8];
    cr_assert_eq(list_gens(dir, g, 8), 0, "not renamed yet");
    ls_db_t *db = open_sized(dir, 0);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.last_closed, 1);
    cr_assert_eq(s.last_lsn, 15);
    cr_assert(has_tx(db, 4, 1));
    cr_assert_eq(ls_db_close(db), 0);
    cr_assert_eq(list_gens(dir, g, 8), 1, "the recovered close renamed it");
    ls_h_rmtree_free(dir);
}

Test(writer, trailer_torn_at_every_byte_leaves_the_generation_open_and_intact)
{
    char *tmpl = ls_h_tmpdir("writer-tmpl");
    cr_assert_eq(in_child("writer.roll.after_trailer=exit", child_commit_roll, tmpl, 5),
                 LS_FAULT_EXIT_CODE);
    char cur[PATHLEN], cmd[3 * PATHLEN];
    cur_path(tmpl, cur);
    long long end = file_size(cur), records_end = end - LS_GEN_TRAILER_SIZE;
    char *work = ls_h_tmpdir("writer-work");
    for (long long cut = records_end; cut < end; cut++) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s && cp -a %s %s", work, tmpl, work);
        cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 10000), 0);
        cur_path(work, cur);
        cr_assert_eq(truncate(cur, (off_t) cut), 0);
        ls_db_t *db = open_sized(work, 0);
        ls_db_stats_t s;
        ls_db_stats(db, &s);
        cr_assert_eq(s.current_generation, 1, "cut %lld: still open", cut);
        cr_assert_eq(s.last_lsn, 15, "cut %lld", cut);
        cr_assert_eq(s.truncated_bytes, (uint64_t) (cut - records_end), "cut %lld", cut);
        cr_assert(has_tx(db, 4, 1), "cut %lld", cut);
        cr_assert_eq(ls_db_close(db), 0, "cut %lld: closes (rolls) cleanly", cut);
        genfile_t g[4];
        cr_assert_eq(list_gens(work, g, 4), 1, "cut %lld", cut);
    }
    ls_h_rmtree_free(work);
    ls_h_rmtree_free(tmpl);
}

Test(writer, kill_after_log_fsync_before_store_apply_recovers_from_the_log)
{
    char *dir = ls_h_tmpdir("writer");
    cr_assert_eq(in_child("writer.commit.after_fsync=exit@3", child_commit, dir, 5),
                 LS_FAULT_EXIT_CODE);
    ls_db_t *db = open_sized(dir, 0);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.recovered_records, 3, "the durable transaction was replayed");
    cr_assert_eq(s.last_lsn, 9);
    cr_assert(has_tx(db, 2, 0) && has_tx(db, 2, 1));
    cr_assert(!has_tx(db, 3, 0));
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree_free(dir);
}

/* Child: commits n transactions (each applied before the next), then waits for the fault point
 * of the applier to end it: no commit follows the last one. */
static void child_commit_and_wait(const char *dir, int n)
{
    child_commit(dir, n);
    for (;;)
        pause();
}

Test(writer, kill_after_store_apply_keeps_the_applied_transaction)
{
    char *dir = ls_h_tmpdir("writer");
    cr_assert_eq(in_child("writer.apply.after=exit@3", child_commit_and_wait, dir, 3),
                 LS_FAULT_EXIT_CODE);
    ls_db_t *db = open_sized(dir, 0);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.recovered_records, 0, "the store held it already (%llu replayed)",
                 (unsigned long long) s.recovered_records);
    cr_assert_eq(s.last_lsn, 9);
    cr_assert(has_tx(db, 2, 0) && has_tx(db, 2, 1));
    cr_assert(!has_tx(db, 3, 0));
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree_free(dir);
}

/* Child: transaction 0 is applied, then the applier waits while 1-5 become durable (one batch and
 * one roll each); the merged apply of 1-5 is killed before it starts. */
static void child_merge_killed(const char *dir, int n)
{
    (void) n;
    ls_db_options_t o = quiet_opts();
    o.target_size = 1024;
    ls_db_t *db = NULL;
    if (ls_db_open(dir, &o, &db)) _exit(3);
    stagger_t s[6];
    if (!commit_staggered(db, s, 6, 2000)) _exit(4);
    for (int i = 0; i < 6; i++) /* acknowledged: durable, in the overlay */
        pthread_join(s[i].th, NULL);
    for (;;)
        pause();
}

Test(writer, kill_with_durable_batches_across_rolls_waiting_for_the_applier_replays_them,
     .timeout = 60)
{
    char *dir = ls_h_tmpdir("writer");
    /* The applier sleeps long enough for 1-5 to become durable one by one even on a loaded
     * machine (each is committed once the one before is durable): 2.5 s was not always. */
    cr_assert_eq(in_child("writer.apply.after=sleep:6000@1,writer.apply.before=exit@2",
                          child_merge_killed, dir, 0),
                 LS_FAULT_EXIT_CODE);
    genfile_t g[16];
    cr_assert_geq(list_gens(dir, g, 16), 4, "the log rolled ahead of the applier");
    ls_db_t *db = open_sized(dir, 0);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.recovered_records, 15, "transactions 1-5 replayed from closed generations");
    cr_assert_eq(s.last_lsn, 18);
    for (int i = 0; i < 6; i++)
        cr_assert(has_tx(db, i, 0) && has_tx(db, i, 1), "tx %d", i);
    cr_assert_eq(commit_tx(db, 6, 1, 8), 0, "commits continue");
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree_free(dir);
}

/* Child: commit 1 succeeds, commit 2 fails (fault), commit 3 must get the same error. */
static void child_sticky(const char *dir, int n)
{
    (void) n;
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = NULL;
    if (ls_db_open(dir, &o, &db)) _exit(3);
    if (commit_tx(db, 0, 1, 8) != 0) _exit(4);
    if (commit_tx(db, 1, 1, 8) != LS_EIO) _exit(5);
    if (commit_tx(db, 2, 1, 8) != LS_EIO) _exit(6);
    if (ls_db_roll(db) != LS_EIO) _exit(7);
    if (!ls_h_contains(ls_db_errmsg(db), "fdatasync")) _exit(8);
    _exit(ls_db_close(db) == LS_EIO ? 0 : 9);
}

Test(writer, failed_log_sync_fails_the_database_stickily)
{
    char *dir = ls_h_tmpdir("writer");
    cr_assert_eq(in_child("writer.commit.after_write=fail@2", child_sticky, dir, 0), 0);
    ls_h_rmtree_free(dir);
}

/* True once the database has failed (its message is set), false after timeout_ms. */
static bool wait_failed(ls_db_t *db, int timeout_ms)
{
    for (uint64_t end = ls_mono_ns() + (uint64_t) timeout_ms * 1000000u; ls_mono_ns() < end;) {
        if (ls_db_errmsg(db)[0]) return true;
        usleep(1000);
    }
    return false;
}

/* Child: commit 0 is acknowledged (durable), then its store apply fails (fault): commit 1, a
 * roll, a checkpoint and the close get LS_ESTORE, and reads still see commit 0 (the overlay keeps
 * what the store could not take). */
static void child_store_sticky(const char *dir, int n)
{
    (void) n;
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = NULL;
    if (ls_db_open(dir, &o, &db)) _exit(3);
    if (commit_tx(db, 0, 1, 8) != 0) _exit(4);
    if (!wait_failed(db, 10000)) _exit(5);
    if (!has_tx(db, 0, 0)) _exit(11);
    if (commit_tx(db, 1, 1, 8) != LS_ESTORE) _exit(6);
    if (ls_db_roll(db) != LS_ESTORE) _exit(7);
    if (ls_db_checkpoint(db) != LS_ESTORE) _exit(8);
    if (!ls_h_contains(ls_db_errmsg(db), "store apply")) _exit(9);
    _exit(ls_db_close(db) == LS_ESTORE ? 0 : 10);
}

Test(writer, failed_store_apply_fails_the_database_stickily_and_reopen_replays)
{
    char *dir = ls_h_tmpdir("writer");
    cr_assert_eq(in_child("writer.apply.before=fail@1", child_store_sticky, dir, 0), 0);
    ls_db_t *db = open_sized(dir, 0);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert(has_tx(db, 0, 0), "acknowledged, never applied: replayed from the log");
    cr_assert_eq(s.recovered_records, 2);
    cr_assert(!has_tx(db, 1, 0), "refused before anything was written");
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree_free(dir);
}
