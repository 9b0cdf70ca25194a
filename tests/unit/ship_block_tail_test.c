/* ship: block mode with the scripted target and the fake clock, after a roll: with GEN_TAIL the
 * closed generation starts where the target's shadow ends (what this connection streamed or the
 * target acknowledged on it) and goes whole once asked again; with NEXT the next generation
 * streams early, without it it waits for the closed ones' durable; COPY_STATE says when a commit
 * waits for the applied position (LS_FEAT_APPLY). Split from ship_block_test.c; helpers in
 * ship_block_test_util.h. */

#include <criterion/criterion.h>

#include "ship_block_test_util.h"

/* The closed generation 4 after its stream: its last position published (the writer publishes
 * after each batch's fdatasync, before the roll), then generation 4 rolled. Published after the
 * rescan, the position would race the reader thread: had it loaded generation 4 by the tick, the
 * machine rightly sent GEN_TAIL from the old position at once (a flake of the test, not of the
 * machine). */
static void roll_gen4(uint64_t last)
{
    publish(last, W.next_lsn - 1);
    rescan(&W);
    ls_ship_tick(W.m, W.now);
    skip_states();
}

/* Block mode with GEN_TAIL allowed, generation 4 open and streamed from 0 to upto. */
static void stream_gen4_with_tail(uint64_t upto)
{
    caught_up(0);
    ls_ship_block_tail_allow(W.m, true);
    open_gen4();
    publish(upto, W.next_lsn - 2);
    take_block(0, upto);
}

/* The closed generation g after its GEN_TAIL: the tail from off, its GEN_DATA to the end and its
 * GEN_END (take_gen's counterpart). */
static void take_tail(uint64_t g, uint64_t off)
{
    pump_until_sent();
    sent_t *t = expect(LS_FRAME_GEN_TAIL);
    cr_assert_eq(t->gen, g);
    cr_assert_eq(t->size, W.size[g]);
    cr_assert_eq(t->off, off, "GEN_DATA of %llu from where its stream ended",
                 (unsigned long long) g);
    take_data(g, off, W.size[g]);
    pump_until_sent();
    cr_assert_eq(expect(LS_FRAME_GEN_END)->gen, g);
}

/* DURABLE of g from the target: block mode goes on. */
static void durable_in_block_mode(uint64_t g)
{
    ack(LS_FRAME_DURABLE, g);
    skip_states();
    cr_assert_eq(ls_ship_mode(W.m), LS_SHIP_MODE_BLOCK, "%s", W.mode_reason);
}

Test(ship_block, gen_tail_sends_only_what_the_shadow_lacks, .init = setup_block,
     .fini = teardown_world)
{
    stream_gen4_with_tail(2000);
    roll_gen4(3000);
    for (int i = 0; i < 20; i++) /* the reader has generation 4 soon; the stream goes first */
        ls_ship_pump(W.m, W.now);
    cr_assert(!pending() || W.q[W.head].type != LS_FRAME_GEN_TAIL,
              "GEN_TAIL before the published bytes were streamed");
    take_block(2000, 3000);
    uint64_t before = status().sent_bytes; /* GEN_DATA bytes: the GEN_TAIL frame adds none */
    take_tail(4, 3000);
    cr_assert_eq(status().sent_bytes - before, W.size[4] - 3000, "only the tail travelled");
    expect_nothing();
    /* The target could not finish it from its shadow: asked again, it goes whole. */
    ask_again(4, LS_EGAP);
    take_gen(4);
    durable_in_block_mode(4);
}

Test(ship_block, gen_tail_starts_at_what_the_target_acknowledged_on_this_connection,
     .init = setup_block, .fini = teardown_world)
{
    stream_gen4_with_tail(1000);
    block_ack(4, 2500, W.next_lsn - 2); /* its shadow held more from an earlier connection */
    roll_gen4(1000);
    take_tail(4, 2500);
}

Test(ship_block, gen_tail_forgets_an_acknowledgement_of_an_earlier_connection, .init = setup_block,
     .fini = teardown_world)
{
    stream_gen4_with_tail(1000);
    block_ack(4, 1000, W.next_lsn - 2);
    ls_ship_disconnected(W.m, false, "reset by peer", W.now);
    connect_accepted(0);
    ls_ship_block_allow(W.m, true, W.now);
    ls_ship_block_tail_allow(W.m, true);
    expect(LS_FRAME_COPY_STATE);
    resume_at(4, W.digest[3]);
    rescan(&W); /* rolled before anything was streamed on this connection */
    ls_ship_tick(W.m, W.now);
    skip_states();
    take_gen(4); /* the shadow may be gone with the target's restart: whole */
}

Test(ship_block, no_gen_tail_without_the_feature, .init = setup_block, .fini = teardown_world)
{
    caught_up(0);
    ls_ship_block_tail_allow(W.m, true);
    ls_ship_block_allow(W.m, false, W.now); /* a tail needs block mode */
    ls_ship_block_tail_allow(W.m, true);
    ls_ship_block_allow(W.m, true, W.now);
    skip_states();
    open_gen4();
    publish(2000, W.next_lsn - 2);
    take_block(0, 2000);
    rescan(&W);
    ls_ship_tick(W.m, W.now);
    skip_states();
    take_gen(4);
}

Test(ship_block, the_next_generation_streams_again_from_0_after_an_ask_again, .init = setup_block,
     .fini = teardown_world)
{
    stream_gen4_with_tail(2000);
    roll_gen4(2000);
    take_tail(4, 2000);
    W.open_log = W.bytes[4];
    W.open_gen = 5;
    publish(900, W.next_lsn);
    take_block(0, 900); /* streamed before 4 is held */
    /* The target failed 4 (it refused the BLOCKs of 5 that followed): 4 goes whole, and 5
     * streams again from byte 0 only once 4's GEN_END went out again. */
    ask_again(4, LS_EGAP);
    publish(1000, W.next_lsn + 1);
    /* No BLOCK while 4 is resent: every chunk until its GEN_END is its GEN_DATA (take_data).
     * Not a chunk of 0 bytes right after ASK_AGAIN: when the restarted reader thread already had
     * 4 as ASK_AGAIN pumped, its GEN_BEGIN went out and that chunk is 4's first GEN_DATA. */
    take_gen(4);
    take_block(0, 1000);
    durable_in_block_mode(4);
}

Test(ship_block, the_next_generation_streamed_early_finishes_before_its_tail_without_durable,
     .init = setup_block, .fini = teardown_world)
{
    stream_gen4_with_tail(2000);
    roll_gen4(2000);
    take_tail(4, 2000);
    /* Generation 5 streams before 4 is held, then rolls too, still before DURABLE of 4: what
     * was published of 5 goes first, then its GEN_TAIL from there (no wait for DURABLE). */
    add_gen(&W, 6, 700); /* generation 5's bytes */
    W.open_log = W.bytes[5];
    W.open_len = W.size[5];
    W.open_gen = 5;
    publish(1500, W.next_lsn);
    take_block(0, 1500);
    publish(2500, W.next_lsn + 1); /* its last position before it rolled */
    rescan(&W);
    ls_ship_tick(W.m, W.now);
    skip_states();
    take_block(1500, 2500);
    take_tail(5, 2500);
    durable_in_block_mode(5);
}

Test(ship_block, without_next_the_next_generation_waits_for_the_closed_ones_durable,
     .init = setup_block, .fini = teardown_world)
{
    caught_up(0);
    ls_ship_block_next_allow(W.m, false); /* a target without LS_FEAT_NEXT */
    open_gen4();
    publish(500, W.next_lsn - 2);
    take_block(0, 500);
    roll_gen4(500);
    pump_until_sent();
    cr_assert_eq(expect(LS_FRAME_GEN_BEGIN)->gen, 4);
    take_data(4, 0, W.size[4]);
    pump_until_sent();
    cr_assert_eq(expect(LS_FRAME_GEN_END)->gen, 4);
    W.open_log = W.bytes[4];
    W.open_gen = 5;
    publish(700, W.next_lsn + 1);
    /* an older target may acknowledge 5 before 4 is durable: nothing of 5 before DURABLE(4) */
    cr_assert_eq(ls_ship_send_chunk(W.m, CHUNK, W.now), 0, "a BLOCK of 5 before DURABLE of 4");
    expect_nothing();
    ack(LS_FRAME_DURABLE, 4);
    skip_states();
    take_block(0, 700);
    cr_assert_eq(ls_ship_mode(W.m), LS_SHIP_MODE_BLOCK, "%s", W.mode_reason);
}

/* LS_FEAT_APPLY: COPY_STATE says LS_COPY_APPLY while a commit waits for the applied position, and
 * goes out when that changes, ahead of the BLOCKs of the position it was read with. */
Test(ship_block, copy_state_says_when_a_commit_waits_for_the_applied_position, .init = setup_block,
     .fini = teardown_world)
{
    caught_up(0);
    ls_ship_block_apply_allow(W.m, true);
    expect_nothing(); /* nothing wanted, nothing said yet (the COPY_STATE sent said 0) */
    open_gen4();
    ls_ship_block_apply_wanted(W.m, true);
    cr_assert_eq(expect(LS_FRAME_COPY_STATE)->flags, LS_COPY_APPLY);
    publish(1000, W.next_lsn - 3);
    take_block(0, 1000);
    ls_ship_block_apply_wanted(W.m, true); /* unchanged: nothing more */
    publish(2000, W.next_lsn - 2);
    take_block(1000, 2000);
    expect_nothing();
    ls_ship_block_apply_wanted(W.m, false);
    cr_assert_eq(expect(LS_FRAME_COPY_STATE)->flags, 0u);
    expect_nothing();
}

Test(ship_block, no_apply_flag_without_the_feature, .init = setup_block, .fini = teardown_world)
{
    caught_up(0);
    ls_ship_block_apply_allow(W.m, false);
    open_gen4();
    ls_ship_block_apply_wanted(W.m, true);
    publish(1000, W.next_lsn - 3);
    take_block(0, 1000);
    expect_nothing();
    W.now += 2000 * MS;
    ls_ship_tick(W.m, W.now); /* a COPY_STATE for any other reason carries no LS_COPY_APPLY */
    while (pending())
        cr_assert_eq(expect(LS_FRAME_COPY_STATE)->flags & LS_COPY_APPLY, 0u);
}

/* A connection that negotiates it while a commit already waits says so at once. */
Test(ship_block, apply_wanted_before_the_connection_is_said_at_its_start, .init = setup_block,
     .fini = teardown_world)
{
    ls_ship_block_apply_wanted(W.m, true); /* not connected: nothing to say it on */
    caught_up(0);
    ls_ship_block_apply_allow(W.m, true);
    cr_assert_eq(expect(LS_FRAME_COPY_STATE)->flags, LS_COPY_APPLY);
    expect_nothing();
}
