/* ship: block mode's decisions with the scripted target and the fake clock (docs/BLOCKMODE.md):
 * when the copy enters and leaves block mode, which bytes of the open generation go out (only
 * what the writer published as durable, within the credit window, never while a closed
 * generation is in flight), the durable LSN each BLOCK carries, the lag measured from the
 * writer's publish time to the BLOCK_ACK, and the figures. GEN_TAIL, the next generation
 * streamed early and the applied position: ship_block_tail_test.c. The machine reads nothing
 * itself: block_read (ship_block_test_util.h) serves the open generation from memory. */

#include <criterion/criterion.h>

#include "ship_block_test_util.h"

Test(ship_block, streams_only_durable_bytes_and_measures_the_lag, .init = setup_block,
     .fini = teardown_world)
{
    caught_up(0);
    open_gen4();
    expect_nothing();
    cr_assert_eq(ls_ship_send_chunk(W.m, CHUNK, W.now), 0, "nothing published: nothing sent");
    uint64_t first = 2500, lsn4 = W.next_lsn;
    publish(first, lsn4 - 3);
    take_block(0, first);
    cr_assert_eq(W.q[W.head - 1].lsn, lsn4 - 3, "the last chunk carries the position's LSN");
    cr_assert_eq(ls_ship_send_chunk(W.m, CHUNK, W.now), 0, "never past the published offset");
    W.now += 2 * MS;
    publish(W.size[4] - 100, lsn4);
    take_block(first, W.size[4] - 100);
    W.now += 1 * MS;
    block_ack(4, first, lsn4 - 3); /* the first position: published 3 ms ago */
    ls_status_copy_t c = status();
    cr_assert_str_eq(c.mode, "block");
    cr_assert_eq(c.mode_switches, 1);
    cr_assert_eq(c.block_lag_samples, 1);
    cr_assert_eq(c.block_lag_p99_ns, 3 * MS);
    cr_assert_eq(c.block_bytes, W.size[4] - 100);
    cr_assert_eq(c.block_generation, 4);
    cr_assert_eq(c.block_offset, first);
    uint64_t dl = 0, al = 0;
    ls_ship_copy_lsns(W.m, &dl, &al);
    cr_assert_eq(dl, lsn4 - 3);
    W.now += 1 * MS;
    block_ack(4, W.size[4] - 100, lsn4);
    c = status();
    cr_assert_eq(c.block_lag_samples, 2);
    cr_assert_eq(c.block_lag_p50_ns, 2 * MS, "the second: published 2 ms before its ack");
    cr_assert_eq(c.block_lag_hist[ls_status_lag_bucket(2 * MS)], 1, "both in the histogram");
    cr_assert_eq(c.block_lag_hist[ls_status_lag_bucket(3 * MS)], 1);
    cr_assert_eq(c.block_lag_max_ns, 3 * MS);
    block_ack(4, first, lsn4 - 3); /* late: changes nothing */
    cr_assert_eq(status().block_offset, W.size[4] - 100);
}

Test(ship_block, the_credit_window_bounds_blocks_too, .init = setup_block, .fini = teardown_world)
{
    caught_up(0);
    open_gen4();
    /* Take the whole window with the open log, then nothing until CREDIT. */
    uint64_t window = LS_PROTO_DB_WINDOW_DEFAULT;
    cr_assert_gt(W.size[4], CHUNK);
    publish(W.size[4], W.next_lsn);
    uint64_t sent_before = ls_ship_credit_left(W.m);
    take_block(0, W.size[4]);
    cr_assert_eq(ls_ship_credit_left(W.m), sent_before - W.size[4]);
    cr_assert_eq(ls_ship_credit(W.m, W.size[4]), 0);
    cr_assert_eq(ls_ship_credit_left(W.m), sent_before);
    cr_assert_leq(sent_before, window);
}

Test(ship_block, a_small_window_stops_the_stream_until_credit, .init = setup_block,
     .fini = teardown_world)
{
    /* A window of 1500 bytes: the three closed generations need credit grants too. */
    connect_accepted(1500);
    ls_ship_block_allow(W.m, true, W.now);
    expect(LS_FRAME_COPY_STATE);
    resume_at(4, W.digest[3]);
    cr_assert_eq(ls_ship_mode(W.m), LS_SHIP_MODE_BLOCK, "RESUME says it holds 1..3");
    open_gen4();
    publish(W.size[4], W.next_lsn);
    cr_assert_eq(ls_ship_send_chunk(W.m, CHUNK, W.now), CHUNK);
    cr_assert_eq(ls_ship_send_chunk(W.m, CHUNK, W.now), 500);
    cr_assert_eq(ls_ship_send_chunk(W.m, CHUNK, W.now), 0, "the window is used up");
    expect(LS_FRAME_BLOCK);
    expect(LS_FRAME_BLOCK);
    cr_assert_eq(ls_ship_credit(W.m, 1500), 0);
    take_block(1500, 3000);
}

Test(ship_block, a_roll_ships_the_closed_file_and_block_mode_goes_on, .init = setup_block,
     .fini = teardown_world)
{
    caught_up(0);
    open_gen4();
    publish(2000, W.next_lsn - 2);
    take_block(0, 2000);
    rescan(&W); /* generation 4 closed: a queue of 1, the one streamed */
    ls_ship_tick(W.m, W.now);
    if (pending() && W.q[W.head].type == LS_FRAME_COPY_STATE) expect(LS_FRAME_COPY_STATE);
    cr_assert_eq(ls_ship_mode(W.m), LS_SHIP_MODE_BLOCK, "%s", W.mode_reason);
    publish(3000, W.next_lsn - 1); /* the last position of 4 before it rolled */
    pump_until_sent();
    cr_assert_eq(expect(LS_FRAME_GEN_BEGIN)->gen, 4);
    take_block(2000, 3000); /* first: its commits would wait for the whole file otherwise */
    uint64_t open_gen = W.open_gen;
    W.open_gen = 5; /* the next open generation: not streamed while 4's file goes */
    publish(700, W.next_lsn);
    W.open_gen = open_gen;
    take_data(4, 0, W.size[4]);
    pump_until_sent();
    cr_assert_eq(expect(LS_FRAME_GEN_END)->gen, 4);
    /* Generation 5 streams from 0 once GEN_END of 4 went out, before the target says it holds
     * 4: the target takes its frames in order. */
    W.open_log = W.bytes[4]; /* any bytes: the test only checks they are the open log's */
    W.open_gen = 5;
    take_block(0, 700);
    publish(1200, W.next_lsn + 1);
    take_block(700, 1200);
    expect_nothing();
    ack(LS_FRAME_DURABLE, 4);
    skip_states();
    publish(1500, W.next_lsn + 2);
    take_block(1200, 1500);
    cr_assert_eq(status().mode_switches, 1, "a roll is no switch");
}

Test(ship_block, falls_back_to_file_mode_when_behind_and_returns_once_caught_up,
     .init = setup_block, .fini = teardown_world)
{
    caught_up(0);
    add_gen(&W, 2, 100);
    add_gen(&W, 2, 100);
    rescan(&W); /* 4 and 5 closed, neither durable on the target: a queue of 2 */
    ls_ship_tick(W.m, W.now);
    cr_assert_eq(ls_ship_mode(W.m), LS_SHIP_MODE_FILE);
    cr_assert(strstr(W.mode_reason, "fell behind: 2 closed generations"), "%s", W.mode_reason);
    W.open_log = W.bytes[5];
    W.open_len = W.size[5];
    W.open_epoch = 1;
    W.open_gen = 6;
    publish(W.open_len / 2, W.next_lsn);
    skip_states();
    take_gen(4);
    take_gen(5);
    expect_nothing();
    ack(LS_FRAME_DURABLE, 5);
    cr_assert_eq(ls_ship_mode(W.m), LS_SHIP_MODE_BLOCK, "%s", W.mode_reason);
    ls_status_copy_t c = status();
    cr_assert_eq(c.mode_switches, 3);
    cr_assert(strstr(c.mode_reason, "caught up"), "%s", c.mode_reason);
    cr_assert_eq(c.mode_switch_time_ns, W.now);
    publish(W.open_len, W.next_lsn);
    skip_states();
    take_block(0, W.open_len);
}

Test(ship_block, a_rolled_log_stalls_the_stream_and_a_new_connection_starts_over,
     .init = setup_block, .fini = teardown_world)
{
    caught_up(0);
    open_gen4();
    publish(800, 5);
    W.open_gen = 9; /* the current log names another generation now: the read refuses */
    int reads = W.reads;
    cr_assert_eq(ls_ship_send_chunk(W.m, CHUNK, W.now), 0);
    cr_assert_eq(ls_ship_send_chunk(W.m, CHUNK, W.now), 0);
    cr_assert_eq(W.reads, reads + 1, "stalled: no read again for that generation");
    expect_nothing();
    ls_ship_disconnected(W.m, false, "reset by peer", W.now);
    cr_assert_eq(ls_ship_mode(W.m), LS_SHIP_MODE_FILE);
    cr_assert_str_eq(W.mode_reason, "not connected");
    W.open_gen = 4;
    connect_accepted(0);
    ls_ship_block_allow(W.m, true, W.now);
    expect(LS_FRAME_COPY_STATE);
    resume_at(4, W.digest[3]);
    cr_assert_eq(ls_ship_mode(W.m), LS_SHIP_MODE_BLOCK);
    take_block(0, 800);
}

Test(ship_block, no_block_mode_without_the_feature_or_the_reader, .init = setup_block,
     .fini = teardown_world)
{
    connect_accepted(0);
    expect(LS_FRAME_COPY_STATE);
    resume_at(4, W.digest[3]);
    cr_assert_eq(ls_ship_mode(W.m), LS_SHIP_MODE_FILE, "the connection did not offer it");
    open_gen4();
    publish(900, 3);
    cr_assert_eq(ls_ship_send_chunk(W.m, CHUNK, W.now), 0);
    cr_assert_eq(W.reads, 0);
    cr_assert_eq(W.modes, 0, "never switched");
    cr_assert_str_eq(status().mode, "file");
}
