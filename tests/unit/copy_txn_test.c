/* copy: a replay transaction spans the ready queue, a chunk (16 generations) read, checked and
 * applied at a time: one commit for a backlog, bounded by batch_generations; a file damaged in a
 * later chunk ends the transaction before it; batch_pages ends it after a chunk; a map grown
 * meanwhile reruns it from the queue's head. docs/COPY.md, "Replay". */
#include "copy_test_util.h"

#define BACKLOG 40 /* generations: more than two chunks */

/* A copy opened with o (its dir set here), BACKLOG generations received while no replayer runs,
 * then started; waits until every one is replayed and synced. */
static void replay_backlog(copy_fix_t *f, ls_copy_options_t *o)
{
    o->dir = f->dir;
    f->c = copy_open_opts(o);
    send_range(f->c, &f->ch, 1, BACKLOG);
    fix_start_replay(f, BACKLOG);
}

Test(copy_txn, a_backlog_is_applied_in_one_transaction_a_chunk_at_a_time)
{
    copy_fix_t f;
    fix_init(&f, "copytxn", BACKLOG, 4, 30);
    ls_copy_options_t o = {0};
    replay_backlog(&f, &o);
    ls_copy_stats_t st;
    ls_copy_stats(f.c, &st);
    cr_assert_eq(st.replay_txns, 1, "%llu transactions for %d generations",
                 (unsigned long long) st.replay_txns, BACKLOG);
    cr_assert_eq(st.applied_generations, BACKLOG);
    cr_assert_eq(st.seal_checks, BACKLOG, "each file read and checked once");
    cr_assert_eq(st.last_replayed_lsn, f.ch.last_lsn[BACKLOG]);
    ls_copy_close(f.c);
    fix_fini(&f);
}

Test(copy_txn, batch_generations_bounds_the_transaction_across_chunks)
{
    copy_fix_t f;
    fix_init(&f, "copytxn", BACKLOG, 4, 30);
    ls_copy_options_t o = {.batch_generations = 24};
    replay_backlog(&f, &o);
    ls_copy_stats_t st;
    ls_copy_stats(f.c, &st);
    cr_assert_eq(st.replay_txns, 2, "24 + 16 generations: %llu transactions",
                 (unsigned long long) st.replay_txns);
    cr_assert_eq(st.applied_generations, BACKLOG);
    ls_copy_close(f.c);
    fix_fini(&f);
}

Test(copy_txn, batch_pages_ends_the_transaction_after_the_chunk_that_reaches_it)
{
    copy_fix_t f;
    fix_init(&f, "copytxn", BACKLOG, 4, 30);
    ls_copy_options_t o = {.batch_pages = 1}; /* any chunk may have dirtied a page */
    replay_backlog(&f, &o);
    ls_copy_stats_t st;
    ls_copy_stats(f.c, &st);
    cr_assert_eq(st.replay_txns, 3, "16 + 16 + 8 generations: %llu transactions",
                 (unsigned long long) st.replay_txns);
    cr_assert_eq(st.applied_generations, BACKLOG);
    ls_store_stats_t ss;
    cr_assert_eq(ls_store_stats(ls_copy_store(f.c), &ss), 0);
    cr_assert_gt(ss.pages, 0, "the store's data pages are counted");
    ls_copy_close(f.c);
    fix_fini(&f);
}

Test(copy_txn, a_file_damaged_in_a_later_chunk_commits_those_before_it_and_is_asked_again)
{
    copy_fix_t f;
    fix_init(&f, "copytxn", BACKLOG, 4, 30);
    fix_start(&f, true, true);
    send_range(f.c, &f.ch, 1, BACKLOG);
    ls_copy_stats_t st;
    damaged_stops_replay(&f, 20, &st); /* 20: in the second chunk (17..32) */
    cr_assert_eq(st.replay_txns, 1, "1..19 committed together");
    cr_assert_eq(st.seal_checks, 20, "1..20 read and checked, nothing after");
    cr_assert(!file_exists(f.dir, "logs", 20) && !file_exists(f.dir, "logs", BACKLOG));
    ls_copy_resume_t r;
    ls_copy_resume_point(f.c, &r);
    cr_assert_eq(r.next_generation, 20);
    cr_assert_arr_eq(r.digest, f.ch.digest[19], 32);
    fix_catch_up(&f, 20, BACKLOG); /* asked again: received once more, then applied */
    ls_copy_stats(f.c, &st);
    cr_assert_eq(st.applied_generations, BACKLOG);
    ls_copy_close(f.c);
    fix_fini(&f);
}

Test(copy_txn, a_map_grown_during_the_transaction_reruns_it_from_the_queue_head)
{
    copy_fix_t f;
    fix_init(&f, "copytxn", BACKLOG, 4, 1500); /* values of 1500 bytes: a store of ~100 pages */
    ls_copy_options_t o = {.map_size = 64 * 1024};
    replay_backlog(&f, &o);
    ls_store_stats_t ss;
    cr_assert_eq(ls_store_stats(ls_copy_store(f.c), &ss), 0);
    cr_assert_gt(ss.map_grows, 0, "the 64 KiB map was grown");
    ls_copy_stats_t st;
    ls_copy_stats(f.c, &st);
    cr_assert_eq(st.applied_generations, BACKLOG, "each generation counted once");
    cr_assert_eq(st.last_replayed_lsn, f.ch.last_lsn[BACKLOG]);
    cr_assert_gt(st.seal_checks, BACKLOG, "files read again by the rerun: %llu checks",
                 (unsigned long long) st.seal_checks);
    ls_copy_close(f.c);
    fix_fini(&f);
}
