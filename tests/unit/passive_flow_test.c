/* engine/passive: generations received through the copy's real receiver, the acknowledgements
 * and credit that go back, each ask-again path (damaged in transit, damaged in inspection, a
 * gap) with its rate limit, a seed's hold, the credit window, RESUME after a restart with the
 * replayed positions, and the status figures on the fake clock. */
#include "passive_test_util.h"

Test(passive_flow, generations_are_acknowledged_and_credit_goes_back)
{
    pt_t t;
    pt_setup(&t);
    pt_connect(&t);
    pt_skip(&t);
    chain_t ch;
    chain_build(&ch, 2, 8, 60);
    pt_ship(&t, &ch, 1, 700, NULL);
    pt_wait(&t, LS_FRAME_INSPECTED, 1);
    cr_assert_eq(pt_next(&t, LS_FRAME_DURABLE)->generation, 1);
    cr_assert_eq(pt_next(&t, LS_FRAME_INSPECTED)->generation, 1);
    pt_ship(&t, &ch, 2, 700, NULL);
    pt_wait(&t, LS_FRAME_INSPECTED, 2);
    uint64_t db = 0, conn = 0;
    for (int i = 0; i < t.nframes; i++)
        if (t.frames[i].type == LS_FRAME_CREDIT)
            *(t.frames[i].conn_wide ? &conn : &db) += t.frames[i].bytes;
    uint64_t sent = ch.len[1] + ch.len[2];
    cr_assert_gt(db, 0, "per-database grants");
    cr_assert_leq(db, sent);
    cr_assert_eq(ls_credit_rx_outstanding(t.credit, t.idx), PT_DBW - (sent - db),
                 "what was granted back is what the source may send again");
    (void) conn;
    /* figures: positions with the fake clock's times, throughput, the source's view */
    ls_frame_t f = {.type = LS_FRAME_COPY_STATE};
    f.copy_state.last_generated = 5;
    f.copy_state.last_generated_ns = t.now - 3 * PT_SEC;
    f.copy_state.queue_bytes = 12345;
    f.copy_state.queue_oldest_ns = t.now - 4 * PT_SEC;
    ls_passive_clock_offset(t.m, 0);
    ls_passive_on_frame(t.m, &f, t.now);
    ls_status_copy_t c = {0};
    ls_passive_status(t.m, t.now, &c);
    cr_assert_str_eq(c.state, "Healthy");
    cr_assert_eq(c.last_copied.gen, 2);
    cr_assert_eq(c.last_copied.time_ns, t.now);
    cr_assert_eq(c.last_inspected.gen, 2);
    cr_assert_eq(c.last_generated.gen, 5);
    cr_assert_eq(c.copy_queue, 3);
    cr_assert_eq(c.copy_queue_bytes, 12345);
    cr_assert_eq(c.copy_lag_ns, 4 * PT_SEC);
    cr_assert_eq(c.replay_queue, 2, "no replayer: both wait");
    cr_assert_eq(c.replay_queue_bytes, sent);
    cr_assert_eq(c.throughput_bps, (double) sent / 60.0);
    ls_passive_status(t.m, t.now + 61 * PT_SEC, &c);
    cr_assert_eq(c.throughput_bps, 0.0, "a minute later nothing is counted");
    chain_free(&ch);
    pt_teardown(&t);
}

Test(passive_flow, replayed_positions_go_out_and_come_back_in_resume)
{
    pt_t t;
    pt_setup_op(&t, true, NULL);
    ls_passive_start(t.m, t.copy, NULL, t.now);
    pt_connect(&t);
    pt_skip(&t);
    chain_t ch;
    chain_build(&ch, 2, 4, 30);
    pt_ship(&t, &ch, 1, 4096, NULL);
    pt_ship(&t, &ch, 2, 4096, NULL);
    pt_wait(&t, LS_FRAME_REPLAYED_SYNCED, 2);
    cr_assert_gt(pt_count(&t, LS_FRAME_REPLAYED), 0);
    ls_status_copy_t c = {0};
    ls_passive_status(t.m, t.now, &c);
    cr_assert_eq(c.last_replayed.gen, 2);
    cr_assert_eq(c.last_replayed_lsn, ch.last_lsn[2]);
    /* admission: the database the store holds, not another */
    char why[512];
    ls_store_meta_t meta;
    ls_store_meta(ls_copy_store(t.copy), &meta);
    cr_assert_eq(ls_passive_admit(t.m, meta.dbid, why, sizeof(why), t.now), 0);
    uint8_t other[LS_DBID_LEN];
    memcpy(other, meta.dbid, sizeof(other));
    other[0] ^= 0xff;
    cr_assert_eq(ls_passive_admit(t.m, other, why, sizeof(why), t.now), LS_EDBID);
    cr_assert(strstr(why, "copy db1 belongs to database "), "%s", why);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_FAILED);
    cr_assert_str_eq(ls_passive_reason(t.m), why);
    char msg[512];
    cr_assert_eq(ls_passive_command(t.m, false, false, NULL, msg, sizeof(msg), t.now), 0);
    pt_skip(&t);
    /* a new connection: RESUME from 3 with the positions the store holds */
    ls_passive_disconnected(t.m, NULL, t.now);
    pt_skip(&t);
    pt_connect(&t);
    pt_take(&t, LS_FRAME_COPY_STATE);
    pt_frame_t *r = pt_take(&t, LS_FRAME_RESUME);
    cr_assert_eq(r->generation, 3);
    cr_assert_eq(r->lsn, ch.last_lsn[2]);
    cr_assert_eq(pt_take(&t, LS_FRAME_REPLAYED)->generation, 2);
    cr_assert_eq(pt_take(&t, LS_FRAME_REPLAYED_SYNCED)->generation, 2);
    chain_free(&ch);
    pt_teardown(&t);
}

Test(passive_flow, damaged_in_transit_is_asked_again_and_counted)
{
    pt_t t;
    pt_setup(&t);
    pt_connect(&t);
    pt_skip(&t);
    chain_t ch;
    chain_build(&ch, 1, 4, 30);
    uint8_t wrong[LS_DIGEST_SIZE];
    memcpy(wrong, ch.digest[1], sizeof(wrong));
    wrong[0] ^= 1;
    pt_ship(&t, &ch, 1, 1000, wrong);
    pt_wait(&t, LS_FRAME_ASK_AGAIN, 1);
    pt_frame_t *a = pt_next(&t, LS_FRAME_ASK_AGAIN);
    cr_assert_eq(a->generation, 1);
    cr_assert_neq(a->code, 0);
    cr_assert_eq(t.saves_counters, 1);
    cr_assert_eq(t.saved_counters.ask_agains, 1);
    pt_ship(&t, &ch, 1, 1000, NULL); /* resent whole */
    pt_wait(&t, LS_FRAME_INSPECTED, 1);
    ls_status_copy_t c = {0};
    ls_passive_status(t.m, t.now, &c);
    cr_assert_eq(c.kept.ask_agains, 1);
    chain_free(&ch);
    pt_teardown(&t);
}

Test(passive_flow, damaged_in_inspection_is_asked_again_and_counted_as_such)
{
    pt_t t;
    pt_setup(&t);
    pt_connect(&t);
    pt_skip(&t);
    pt_event(&t, LS_COPY_EV_ASK_AGAIN, 4, LS_ERECCKSUM, "record 3 of generation 4: bad checksum");
    pt_frame_t *a = pt_take(&t, LS_FRAME_ASK_AGAIN);
    cr_assert_eq(a->generation, 4);
    cr_assert_eq(a->code, LS_ERECCKSUM);
    cr_assert_str_eq(a->text, "record 3 of generation 4: bad checksum");
    cr_assert_eq(t.saved_counters.inspection_failures, 1);
    /* not connected: counted, not sent */
    ls_passive_disconnected(t.m, NULL, t.now);
    pt_skip(&t);
    pt_event(&t, LS_COPY_EV_ASK_AGAIN, 4, LS_ERECCKSUM, "again");
    pt_none(&t);
    cr_assert_eq(t.saved_counters.ask_agains, 2);
    pt_teardown(&t);
}

Test(passive_flow, a_gap_is_asked_again_once_per_generation_every_two_seconds)
{
    pt_t t;
    pt_setup(&t);
    pt_connect(&t);
    pt_skip(&t);
    chain_t ch;
    chain_build(&ch, 3, 2, 20);
    pt_ship(&t, &ch, 3, 4096, NULL); /* wants 1 */
    pt_wait(&t, LS_FRAME_ASK_AGAIN, 1);
    pt_frame_t *a = pt_next(&t, LS_FRAME_ASK_AGAIN);
    cr_assert_eq(a->generation, 1);
    cr_assert_eq(a->code, LS_EGAP);
    cr_assert_str_eq(a->text, "got generation 3, want 1");
    cr_assert_eq(t.saved_counters.inspection_failures, 0, "a gap is not damage");
    pt_skip(&t);
    t.now += PT_SEC;
    pt_event(&t, LS_COPY_RX_EV_BEHIND, 3, 0, "got generation 3, want 1");
    pt_none(&t);
    t.now += PT_SEC;
    pt_event(&t, LS_COPY_RX_EV_BEHIND, 3, 0, "got generation 3, want 1");
    cr_assert_eq(pt_take(&t, LS_FRAME_ASK_AGAIN)->generation, 1, "2 s later: again");
    chain_free(&ch);
    pt_teardown(&t);
}

Test(passive_flow, a_seeds_hold_drops_frames_gives_credit_back_and_says_nothing)
{
    pt_t t;
    pt_setup(&t);
    pt_connect(&t);
    pt_skip(&t);
    t.held = true;
    chain_t ch;
    chain_build(&ch, 1, 8, 60);
    pt_ship(&t, &ch, 1, 1500, NULL);
    /* all consumed at once: what is not granted yet is under a quarter window (batching) */
    cr_assert_gt(ls_credit_rx_outstanding(t.credit, t.idx), PT_DBW - PT_DBW / 4);
    cr_assert_gt(pt_count(&t, LS_FRAME_CREDIT), 0);
    pt_skip(&t);
    pt_event(&t, LS_COPY_EV_DURABLE, 1, 0, NULL);
    pt_event(&t, LS_COPY_EV_REPLAYED_SYNCED, 1, 0, NULL);
    ls_passive_send_position(t.m, t.now);
    pt_none(&t);
    t.held = false;
    ls_passive_send_position(t.m, t.now);
    pt_take(&t, LS_FRAME_COPY_STATE);
    cr_assert_eq(pt_take(&t, LS_FRAME_RESUME)->generation, 1, "nothing was received");
    chain_free(&ch);
    pt_teardown(&t);
}

Test(passive_flow, data_beyond_the_window_is_a_protocol_error)
{
    pt_t t;
    pt_setup(&t);
    static uint8_t big[PT_DBW + 1];
    ls_frame_t f = {.type = LS_FRAME_GEN_DATA};
    f.gen_data.generation = 1;
    f.gen_data.len = sizeof(big);
    f.gen_data.data = big;
    cr_assert_eq(ls_passive_on_frame(t.m, &f, t.now), 0, "not connected: ignored");
    pt_connect(&t);
    cr_assert_eq(ls_passive_on_frame(t.m, &f, t.now), LS_EPROTO);
    ls_frame_t h = {.type = LS_FRAME_HEARTBEAT};
    cr_assert_eq(ls_passive_on_frame(t.m, &h, t.now), 0, "others are ignored");
    pt_teardown(&t);
}

Test(passive_flow, credit_of_an_older_connection_is_not_granted)
{
    pt_t t;
    pt_setup(&t);
    pt_connect(&t);
    pt_skip(&t);
    ls_copy_rx_event_t e = {.kind = LS_COPY_RX_EV_CONSUMED, .consumed = PT_DBW, .tag = 99};
    ls_passive_on_event(t.m, &e, t.now);
    pt_none(&t);
    e.tag = 1;
    cr_assert_eq(ls_credit_rx_received(t.credit, t.idx, PT_DBW), 0);
    ls_passive_on_event(t.m, &e, t.now);
    pt_frame_t *c = pt_take(&t, LS_FRAME_CREDIT);
    cr_assert(!c->conn_wide);
    cr_assert_eq(c->bytes, PT_DBW);
    pt_teardown(&t);
}

Test(passive_flow, without_a_receiver_frames_are_dropped_and_credit_returned)
{
    pt_t t;
    pt_setup(&t);
    ls_passive_free(t.m);
    ls_passive_options_t mo = {
        .database = "db1", .source = "node-a", .send_cb = pt_send, .action_cb = pt_act, .ctx = &t};
    t.m = ls_passive_new(&mo, t.now);
    ls_passive_start(t.m, t.copy, NULL, t.now);
    pt_connect(&t);
    pt_skip(&t);
    chain_t ch;
    chain_build(&ch, 1, 8, 60);
    pt_ship(&t, &ch, 1, 2048, NULL);
    cr_assert_gt(ls_credit_rx_outstanding(t.credit, t.idx), PT_DBW - PT_DBW / 4);
    ls_passive_poll(t.m, t.now); /* nothing to poll */
    ls_passive_disconnected(t.m, NULL, t.now);
    chain_free(&ch);
    pt_teardown(&t);
}

/* Every byte sent was consumed (what is left ungranted is under a quarter window). */
static bool credit_back(void *ctx)
{
    pt_t *t = ctx;
    ls_passive_poll(t->m, t->now);
    return ls_credit_rx_outstanding(t->credit, t->idx) > PT_DBW - PT_DBW / 4;
}

Test(passive_flow, a_full_disk_on_the_receive_path_waits_for_space_then_resumes)
{
    setenv("LS_FAULTS", "copy.recv.write_enospc=fail@2", 1);
    pt_t t;
    pt_setup(&t);
    pt_connect(&t);
    pt_skip(&t);
    chain_t ch;
    chain_build(&ch, 1, 8, 60);
    pt_ship(&t, &ch, 1, 1024, NULL);
    ls_copy_stats_t st;
    for (int i = 0; i < 1000 && pt_state(&t) != LS_PASSIVE_DISK_FULL; i++) {
        usleep(10000);
        ls_passive_poll(t.m, t.now);
    }
    cr_assert_eq(pt_state(&t), LS_PASSIVE_DISK_FULL, "%s", ls_passive_reason(t.m));
    cr_assert(strstr(ls_passive_reason(t.m), "when space returns"), "%s", ls_passive_reason(t.m));
    cr_assert(ls_passive_disk_full(t.m));
    ls_copy_stats(t.copy, &st);
    cr_assert_eq(st.last_durable, 0, "nothing durable");
    cr_assert(ls_h_wait_for(credit_back, &t, 10000), "the dropped bytes' credit came back");
    ls_passive_space_available(t.m, t.now);
    pt_frame_t *a = pt_next(&t, LS_FRAME_ASK_AGAIN);
    cr_assert_not_null(a);
    cr_assert_eq(a->generation, 1);
    cr_assert_eq(a->code, LS_ENOSPC);
    pt_ship(&t, &ch, 1, 1024, NULL); /* the source resends it: the fault fired once */
    pt_wait(&t, LS_FRAME_DURABLE, 1);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_HEALTHY);
    cr_assert_str_eq(ls_passive_reason(t.m), "receiving again");
    chain_free(&ch);
    pt_teardown(&t);
}
