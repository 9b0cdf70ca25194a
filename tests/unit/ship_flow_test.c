/* ship: ask-again on every path, the credit window, a full socket, disconnection mid-generation,
 * the seed's hold on the logs and the status figures under a fake clock (ship_test.c has the
 * states, the plan and suspension). */
#include "ship_test_util.h"

Test(ship_flow, damaged_in_transit_resends_after_the_generation_in_flight, .init = setup_attached,
     .fini = teardown_world)
{
    ship_from(1);
    take_gen(1);
    pump_until_sent();
    cr_assert_eq(expect(LS_FRAME_GEN_BEGIN)->gen, 2);
    take_data(2, 0, W.size[2] / 2);
    ask_again(2, LS_EDIGEST); /* what GEN_END's digest mismatch makes the target say: the
                                 active's file passes its FULL verification, so 2 goes again */
    cr_assert_eq(W.counter_saves, 1);
    cr_assert_eq(W.counters.ask_agains, 1);
    cr_assert_eq(W.counters.inspection_failures, 1);
    expect_nothing();
    take_data(2, W.size[2] / 2, W.size[2]); /* generation 2 is finished first ... */
    cr_assert_eq(expect(LS_FRAME_GEN_END)->gen, 2);
    take_gen(2); /* ... then sent again, and what follows */
    take_gen(3);
    cr_assert_eq(W.reader_starts, 2);
    cr_assert_eq(status().kept.ask_agains, 1);
}

/* A record changed on the active's disk and its checksum redone: only the digest tells. The
 * reader checks records, trailer and chain but not the digest (docs/SOURCE.md, "What the active
 * verifies"), so generation 2 goes whole, GEN_END with its trailer's digest; the target's digest
 * of the bytes differs and it asks again (LS_EDIGEST). The active verifies 2 FULL before sending
 * it again, finds its own file damaged and fails the copy as for any damaged generation: ERROR
 * with the reader's code and reason, nothing of 2 sent again. */
Test(ship_flow, damaged_and_resealed_on_the_active_fails_the_copy_when_asked_again,
     .init = setup_attached, .fini = teardown_world)
{
    char path[PATH_MAX];
    gen_file(&W, 2, path, sizeof(path));
    ls_h_gen_change_resealed(W.bytes[2], W.size[2], 1, 0x20); /* what take_data compares */
    cr_assert_eq(ls_h_write_file(path, W.bytes[2], W.size[2]), 0);
    ship_from(1);
    take_gen(1);
    take_gen(2); /* on_send checks GEN_END's digest: W.digest[2], the trailer's */
    pump_until_sent();
    cr_assert_eq(expect(LS_FRAME_GEN_BEGIN)->gen, 3);
    ask_again(2, LS_EDIGEST);
    take_data(3, 0, W.size[3]); /* the generation in flight is finished first */
    cr_assert_eq(expect(LS_FRAME_GEN_END)->gen, 3);
    pump_until_sent();
    sent_t *e = expect(LS_FRAME_ERROR);
    cr_assert_eq(e->code, LS_EDIGEST, "%s", ls_err_name(e->code));
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_FAILED);
    cr_assert_str_eq(e->text, ls_ship_reason(W.m));
    cr_assert(strstr(e->text, "generation 2") && strstr(e->text, "not shipped") &&
                  strstr(e->text, "digest mismatch"),
              "%s", e->text);
    cr_assert_eq(W.reader_starts, 2);
    ls_ship_pump(W.m, W.now);
    expect_nothing();
}

Test(ship_flow, damaged_in_inspection_resends_at_once, .init = setup_attached,
     .fini = teardown_world)
{
    ship_from(1);
    for (uint64_t g = 1; g <= 3; g++)
        take_gen(g);
    ask_again(1, LS_ERECCKSUM);
    cr_assert_eq(W.counters.inspection_failures, 1);
    for (uint64_t g = 1; g <= 3; g++)
        take_gen(g);
    cr_assert_eq(status().sent_generations, 6);
}

Test(ship_flow, a_gap_resends_from_the_generation_wanted, .init = setup_attached,
     .fini = teardown_world)
{
    ship_from(1);
    take_gen(1);
    take_gen(2);
    pump_until_sent();
    cr_assert_eq(expect(LS_FRAME_GEN_BEGIN)->gen, 3);
    ask_again(2, LS_EGAP); /* the target lost 2 and got GEN_BEGIN 3 */
    cr_assert_eq(W.counters.ask_agains, 1);
    cr_assert_eq(W.counters.inspection_failures, 0, "a gap is no inspection failure");
    take_data(3, 0, W.size[3]);
    cr_assert_eq(expect(LS_FRAME_GEN_END)->gen, 3);
    take_gen(2);
    take_gen(3);
}

Test(ship_flow, an_ask_while_not_shipping_is_only_counted, .init = setup_attached,
     .fini = teardown_world)
{
    connect_accepted(0);
    expect(LS_FRAME_COPY_STATE);
    ask_again(1, LS_ENOSPC);
    cr_assert_eq(W.counters.ask_agains, 1);
    cr_assert_eq(W.counters.inspection_failures, 0);
    cr_assert_eq(W.reader_starts, 0);
    expect_nothing();
}

Test(ship_flow, the_credit_window_bounds_data_and_grants_reopen_it, .init = setup_attached,
     .fini = teardown_world)
{
    connect_accepted(1500);
    expect(LS_FRAME_COPY_STATE);
    resume_at(1, NULL);
    pump_until_sent();
    expect(LS_FRAME_GEN_BEGIN);
    cr_assert_eq(ls_ship_send_chunk(W.m, CHUNK, W.now), 1000);
    cr_assert_eq(ls_ship_send_chunk(W.m, CHUNK, W.now), 500);
    cr_assert_eq(ls_ship_credit_left(W.m), 0);
    cr_assert_eq(ls_ship_send_chunk(W.m, CHUNK, W.now), 0, "credit exhausted");
    W.head = W.tail;
    cr_assert_eq(ls_ship_credit(W.m, 1501), LS_EPROTO, "more than the window");
    cr_assert_eq(ls_ship_credit(W.m, 1000), 0);
    cr_assert_eq(ls_ship_credit(W.m, 501), LS_EPROTO);
    cr_assert_eq(ls_ship_credit(W.m, 500), 0);
    cr_assert_eq(ls_ship_credit_left(W.m), 1500);
    cr_assert_lt(W.size[1], 3000, "the rest of generation 1 fits the grants");
    take_data(1, 1500, W.size[1]);
    pump_until_sent();
    expect(LS_FRAME_GEN_END);
}

Test(ship_flow, a_full_socket_loses_nothing, .init = setup_attached, .fini = teardown_world)
{
    connect_accepted(0);
    expect(LS_FRAME_COPY_STATE);
    W.busy = 1;
    resume_at(1, NULL);
    for (int i = 0; i < 5000 && W.busy; i++) /* the reader is a thread: wait for the refusal */
        if (ls_ship_pump(W.m, W.now) == 0) nanosleep(&(struct timespec){0, 1000000}, NULL);
    cr_assert_eq(W.busy, 0);
    expect_nothing();
    pump_until_sent();
    cr_assert_eq(expect(LS_FRAME_GEN_BEGIN)->gen, 1);
    W.busy = 1;
    cr_assert_eq(ls_ship_send_chunk(W.m, CHUNK, W.now), LS_EBUSY);
    expect_nothing();
    take_data(1, 0, W.size[1]);
    pump_until_sent();
    expect(LS_FRAME_GEN_END);
    W.busy = 1; /* a COPY_STATE refused goes out at the next pump */
    cr_assert_eq(ls_ship_suspend(W.m, "later", W.now), 0);
    W.head = W.tail;
    cr_assert_eq(ls_ship_pump(W.m, W.now), 0);
    cr_assert_eq(expect(LS_FRAME_COPY_STATE)->flags, LS_COPY_SUSPENDED);
    cr_assert_eq(ls_ship_resume(W.m, W.now), 0);
    expect(LS_FRAME_COPY_STATE);
    W.busy = 2; /* an ERROR refused likewise, and it holds back what follows */
    uint8_t other[LS_DIGEST_SIZE] = {1};
    resume_at(2, other);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_DIVERGED);
    expect_nothing();
    cr_assert_eq(ls_ship_pump(W.m, W.now), 0);
    cr_assert_eq(expect(LS_FRAME_ERROR)->code, LS_EDIVERGED);
}

Test(ship_flow, a_connection_lost_mid_generation_resumes_from_the_targets_position,
     .init = setup_attached, .fini = teardown_world)
{
    ship_from(1);
    take_gen(1);
    pump_until_sent();
    cr_assert_eq(expect(LS_FRAME_GEN_BEGIN)->gen, 2);
    take_data(2, 0, CHUNK);
    ls_ship_disconnected(W.m, false, "connection reset by peer", W.now);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_DISCONNECTED);
    cr_assert_str_eq(ls_ship_reason(W.m), "connection reset by peer");
    cr_assert_eq(W.reader_stops, 1);
    cr_assert_eq(ls_ship_send_chunk(W.m, CHUNK, W.now), 0);
    cr_assert_eq(ls_ship_pump(W.m, W.now), 0);
    expect_nothing();
    ship_from(2); /* generation 1 is durable there: the target wants 2 */
    cr_assert_str_eq(ls_ship_reason(W.m), "shipping from generation 2");
    take_gen(2); /* from its first byte again */
    take_gen(3);
    ls_ship_disconnected(W.m, true, "moving to network b", W.now);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_INITIALIZING, "a switch is under way");
}

Test(ship_flow, a_seed_holds_the_logs_until_the_copy_synced_past_it, .init = setup_attached,
     .fini = teardown_world)
{
    ship_from(1);
    ack(LS_FRAME_REPLAYED_SYNCED, 1);
    cr_assert_eq(ls_ship_seed_needs(W.m), 0);
    ls_ship_seed_hold(W.m, 0); /* a seed asked: everything held while it snapshots */
    cr_assert(ls_ship_seed_busy(W.m));
    cr_assert_eq(ls_ship_seed_needs(W.m), 1);
    ls_ship_seed_hold(W.m, 3); /* the snapshot holds generation 3's last LSN */
    cr_assert_eq(ls_ship_seed_needs(W.m), 3);
    ls_ship_seed_sent(W.m);
    cr_assert(!ls_ship_seed_busy(W.m));
    cr_assert_eq(ls_ship_synced(W.m), 0, "the old copy's positions are forgotten");
    cr_assert_eq(status().last_copied.gen, 0);
    ack(LS_FRAME_REPLAYED_SYNCED, 2);
    cr_assert_eq(ls_ship_seed_needs(W.m), 3);
    ack(LS_FRAME_REPLAYED_SYNCED, 3);
    cr_assert_eq(ls_ship_seed_needs(W.m), 0);
    cr_assert_eq(W.released, 1);
    ls_ship_seed_hold(W.m, 0);
    ls_ship_seed_abort(W.m); /* the seed ended before its stream went out */
    cr_assert_eq(ls_ship_seed_needs(W.m), 0);
    cr_assert(!ls_ship_seed_busy(W.m));
}

Test(ship_flow, figures_follow_the_fake_clock, .init = setup_attached, .fini = teardown_world)
{
    ship_from(1);
    for (uint64_t g = 1; g <= 3; g++)
        take_gen(g);
    W.now += 10 * SEC;
    ack(LS_FRAME_DURABLE, 2);
    ack(LS_FRAME_REPLAYED, 1);
    ls_status_copy_t c = status();
    cr_assert_eq(c.last_copied.gen, 2);
    cr_assert_eq(c.last_copied.time_ns, W.now);
    cr_assert_eq(c.last_generated.gen, 3);
    cr_assert_eq(c.last_generated.time_ns, LS_H_GEN_CLOSE_NS);
    cr_assert_eq(c.copy_queue, 1);
    cr_assert_eq(c.copy_queue_bytes, W.size[3]);
    cr_assert_eq(c.copy_lag_ns, W.now - LS_H_GEN_CLOSE_NS);
    cr_assert_eq(c.replay_queue, 1);
    cr_assert_eq(c.replay_queue_bytes, W.size[2]);
    cr_assert_eq(c.replay_lag_ns, W.now - LS_H_GEN_CLOSE_NS);
    cr_assert_float_eq(c.throughput_bps, (double) (W.size[1] + W.size[2]) / 60.0, 1e-9);
    W.now += 30 * SEC;
    ack(LS_FRAME_DURABLE, 3);
    c = status();
    cr_assert_eq(c.copy_queue, 0);
    cr_assert_eq(c.copy_lag_ns, 0);
    cr_assert_float_eq(c.throughput_bps, (double) (W.size[1] + W.size[2] + W.size[3]) / 60.0, 1e-9);
    W.now += 61 * SEC; /* a minute later: nothing in the last minute */
    cr_assert_float_eq(status().throughput_bps, 0.0, 1e-9);
}

Test(ship_flow, a_tick_tells_the_target_only_what_changed, .init = setup_attached,
     .fini = teardown_world)
{
    ls_ship_tick(W.m, W.now); /* not connected: nothing */
    connect_accepted(0);
    sent_t *cs = expect(LS_FRAME_COPY_STATE);
    cr_assert_eq(cs->last_generated, 3);
    cr_assert_eq(cs->queue_count, 3);
    ls_ship_tick(W.m, W.now);
    expect_nothing();
    add_gen(&W, 1, 10);
    rescan(&W);
    ls_ship_tick(W.m, W.now);
    cr_assert_eq(expect(LS_FRAME_COPY_STATE)->last_generated, 4);
    ls_ship_tick(W.m, W.now);
    expect_nothing();
}
