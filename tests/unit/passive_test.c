/* engine/passive: states and their transitions, RESUME, the source's ERROR (transient with its
 * back-off, fatal, divergence), the operator's resume clearing Failed, suspension on both sides,
 * a full disk, the copy's failure, a seed's hold, on a fake clock with a scripted source. */
#include "passive_test_util.h"

Test(passive, connect_sends_copy_state_then_resume_from_the_copy)
{
    pt_t t;
    pt_setup(&t);
    cr_assert_str_eq(ls_passive_reason(t.m), "waiting for node-a to connect");
    char why[64] = "";
    cr_assert_eq(ls_passive_admit(t.m, t.dbid, why, sizeof(why), t.now), 0, "a new copy adopts");
    cr_assert(!ls_passive_is_connected(t.m));
    pt_connect(&t);
    cr_assert(ls_passive_is_connected(t.m));
    cr_assert_eq(pt_state(&t), LS_PASSIVE_HEALTHY);
    cr_assert_str_eq(ls_passive_reason(t.m), "receiving from node-a");
    cr_assert_eq(pt_take(&t, LS_FRAME_COPY_STATE)->flags, 0);
    cr_assert_eq(pt_take(&t, LS_FRAME_RESUME)->generation, 1, "an empty copy wants 1");
    pt_none(&t);
    ls_passive_disconnected(t.m, "the seed failed", t.now);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_DISCONNECTED);
    cr_assert_str_eq(ls_passive_reason(t.m), "node-a disconnected; the seed failed");
    ls_passive_disconnected(t.m, NULL, t.now); /* twice: nothing */
    pt_connect(&t);
    pt_connect(&t); /* the same connection again (a seed's RE_OFFER): no detach */
    cr_assert_eq(t.nstates, 4, "D, H, D, H");
    pt_connect_tag(&t, 2); /* a newer connection takes over: detached first */
    cr_assert_eq(pt_state(&t), LS_PASSIVE_HEALTHY);
    cr_assert_eq(pt_count(&t, LS_FRAME_RESUME), 4);
    cr_assert_eq(t.nstates, 6, "D, H, D, H, D, H: every change once, none repeated");
    pt_teardown(&t);
}

Test(passive, a_copy_that_cannot_open_is_failed_and_says_so)
{
    pt_t t;
    pt_setup_op(&t, false, NULL);
    ls_passive_start(t.m, NULL, "cannot open the copy in /x: LS_EIO", t.now);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_FAILED);
    char why[512];
    cr_assert_eq(ls_passive_admit(t.m, t.dbid, why, sizeof(why), t.now), LS_ESTATE);
    cr_assert_str_eq(why, "copy db1 cannot be opened: cannot open the copy in /x: LS_EIO");
    cr_assert_null(ls_passive_copy(t.m));
    pt_connect(&t);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_FAILED, "Failed survives a connection");
    pt_take(&t, LS_FRAME_COPY_STATE);
    pt_frame_t *e = pt_take(&t, LS_FRAME_ERROR);
    cr_assert_eq(e->code, LS_ESTATE);
    cr_assert_str_eq(e->text, "cannot open the copy in /x: LS_EIO");
    char msg[512];
    cr_assert_eq(ls_passive_command(t.m, false, false, NULL, msg, sizeof(msg), t.now), 0);
    cr_assert(strstr(msg, "still Failed: copy db1 is not open"), "%s", msg);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_FAILED);
    pt_teardown(&t);
}

Test(passive, transient_error_backs_off_and_asks_again)
{
    pt_t t;
    pt_setup(&t);
    pt_connect(&t);
    pt_skip(&t);
    ls_frame_t f = {.type = LS_FRAME_ERROR};
    f.error.code = LS_EBUSY;
    f.error.message = ls_proto_str("reader restarting");
    ls_passive_on_frame(t.m, &f, t.now);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_DISCONNECTED);
    cr_assert(strstr(ls_passive_reason(t.m), "asking again in 2 s"), "%s", ls_passive_reason(t.m));
    t.now += PT_SEC;
    ls_passive_tick(t.m, t.now);
    pt_none(&t);
    t.now += PT_SEC;
    ls_passive_tick(t.m, t.now);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_HEALTHY);
    cr_assert(strstr(ls_passive_reason(t.m), "asking node-a again (it said: source node-a"));
    pt_take(&t, LS_FRAME_COPY_STATE);
    pt_take(&t, LS_FRAME_RESUME);
    /* again: the back-off doubles, up to 60 s */
    uint32_t want[] = {4, 8, 16, 32, 60, 60};
    for (size_t i = 0; i < LS_ARRAY_SIZE(want); i++) {
        ls_passive_on_frame(t.m, &f, t.now);
        char s[64];
        snprintf(s, sizeof(s), "asking again in %u s", want[i]);
        cr_assert(strstr(ls_passive_reason(t.m), s), "%s: %s", s, ls_passive_reason(t.m));
    }
    /* progress starts it again, and a DURABLE after the ERROR means the source ships again */
    pt_event(&t, LS_COPY_EV_DURABLE, 1, 0, NULL);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_HEALTHY);
    cr_assert_str_eq(ls_passive_reason(t.m), "receiving again");
    ls_passive_on_frame(t.m, &f, t.now);
    cr_assert(strstr(ls_passive_reason(t.m), "asking again in 2 s"));
    /* the next connection is the asking again: the timer does nothing after it */
    ls_passive_disconnected(t.m, NULL, t.now);
    pt_connect(&t);
    pt_skip(&t);
    t.now += 10 * PT_SEC;
    ls_passive_tick(t.m, t.now);
    pt_none(&t);
    pt_teardown(&t);
}

Test(passive, transient_error_leaves_a_state_the_operator_set)
{
    pt_t t;
    pt_setup(&t);
    pt_connect(&t);
    char msg[512];
    cr_assert_eq(ls_passive_command(t.m, true, false, "maintenance", msg, sizeof(msg), t.now), 0);
    ls_frame_t f = {.type = LS_FRAME_ERROR};
    f.error.code = LS_ETIMEDOUT;
    f.error.message = ls_proto_str("slow");
    int logs = t.logs;
    ls_passive_on_frame(t.m, &f, t.now);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_SUSPENDED);
    cr_assert_eq(t.logs, logs + 1, "logged only");
    pt_teardown(&t);
}

Test(passive, fatal_error_fails_until_the_operator_resumes)
{
    pt_t t;
    pt_setup(&t);
    pt_connect(&t);
    pt_skip(&t);
    ls_frame_t f = {.type = LS_FRAME_ERROR};
    f.error.code = LS_EGAP;
    f.error.message = ls_proto_str("generation 3 was removed");
    ls_passive_on_frame(t.m, &f, t.now);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_FAILED);
    cr_assert_str_eq(ls_passive_reason(t.m), "source node-a: generation 3 was removed (LS_EGAP)");
    ls_passive_disconnected(t.m, NULL, t.now);
    pt_connect(&t);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_FAILED, "Failed survives reconnection");
    pt_take(&t, LS_FRAME_COPY_STATE);
    cr_assert_eq(pt_take(&t, LS_FRAME_ERROR)->code, LS_ESTATE, "no RESUME while Failed");
    t.now += 100 * PT_SEC;
    ls_passive_tick(t.m, t.now);
    pt_none(&t);
    char msg[512];
    cr_assert_eq(ls_passive_command(t.m, false, false, NULL, msg, sizeof(msg), t.now), 0);
    cr_assert_str_eq(msg, "db1 <- node-a resumed (Failed cleared)");
    cr_assert_eq(pt_state(&t), LS_PASSIVE_HEALTHY);
    cr_assert(strstr(ls_passive_reason(t.m), "resumed by the operator (it was Failed: source"));
    pt_take(&t, LS_FRAME_COPY_STATE);
    pt_take(&t, LS_FRAME_COPY_STATE);
    cr_assert_eq(pt_take(&t, LS_FRAME_RESUME)->generation, 1);
    pt_teardown(&t);
}

Test(passive, divergence_is_kept_and_told)
{
    pt_t t;
    pt_setup(&t);
    pt_connect(&t);
    pt_skip(&t);
    ls_frame_t f = {.type = LS_FRAME_ERROR};
    f.error.code = LS_EDIVERGED;
    f.error.message = ls_proto_str("digest of 4 differs");
    ls_passive_on_frame(t.m, &f, t.now);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_DIVERGED);
    ls_frame_t cs = {.type = LS_FRAME_COPY_STATE};
    cs.copy_state.flags = LS_COPY_SUSPENDED;
    ls_passive_on_frame(t.m, &cs, t.now);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_DIVERGED, "the source's suspension does not hide it");
    ls_passive_disconnected(t.m, NULL, t.now);
    pt_connect(&t);
    pt_take(&t, LS_FRAME_COPY_STATE);
    cr_assert_eq(pt_take(&t, LS_FRAME_ERROR)->code, LS_EDIVERGED);
    pt_teardown(&t);
}

Test(passive, operator_suspension_is_saved_stops_shipping_and_replay)
{
    pt_t t;
    pt_setup(&t);
    pt_connect(&t);
    pt_skip(&t);
    char msg[512];
    t.save_rc = LS_EIO;
    cr_assert_eq(ls_passive_command(t.m, true, false, "disk swap", msg, sizeof(msg), t.now),
                 LS_EIO);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_HEALTHY, "a failed save changes nothing");
    cr_assert(!ls_passive_op(t.m)->suspended);
    pt_none(&t);
    t.save_rc = 0;
    cr_assert_eq(ls_passive_command(t.m, true, false, "disk swap", msg, sizeof(msg), t.now), 0);
    cr_assert_str_eq(msg, "db1 <- node-a suspended");
    cr_assert(t.saved_op.suspended);
    cr_assert_str_eq(t.saved_op.comment, "disk swap");
    cr_assert_eq(t.saved_op.since_ns, t.now);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_SUSPENDED);
    pt_frame_t *cs = pt_take(&t, LS_FRAME_COPY_STATE);
    cr_assert_eq(cs->flags, LS_COPY_SUSPENDED);
    cr_assert_str_eq(cs->text, "disk swap");
    pt_none(&t);
    ls_copy_stats_t st;
    ls_copy_stats(t.copy, &st);
    cr_assert(st.replay_paused);
    /* reconnecting while suspended: COPY_STATE and no RESUME */
    ls_passive_disconnected(t.m, NULL, t.now);
    pt_connect(&t);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_SUSPENDED);
    cr_assert_eq(pt_take(&t, LS_FRAME_COPY_STATE)->flags, LS_COPY_SUSPENDED);
    pt_none(&t);
    cr_assert_eq(ls_passive_command(t.m, false, false, NULL, msg, sizeof(msg), t.now), 0);
    cr_assert_str_eq(msg, "db1 <- node-a resumed");
    cr_assert_eq(pt_state(&t), LS_PASSIVE_HEALTHY);
    cr_assert(!t.saved_op.suspended && !t.saved_op.since_ns, "cleared on disk too");
    cr_assert_eq(pt_take(&t, LS_FRAME_COPY_STATE)->flags, 0);
    pt_take(&t, LS_FRAME_COPY_STATE);
    pt_take(&t, LS_FRAME_RESUME);
    ls_copy_stats(t.copy, &st);
    cr_assert(!st.replay_paused);
    pt_teardown(&t);
}

Test(passive, replay_only_suspension_keeps_receiving)
{
    pt_t t;
    pt_setup(&t);
    pt_connect(&t);
    pt_skip(&t);
    char msg[512];
    cr_assert_eq(ls_passive_command(t.m, true, true, "look first", msg, sizeof(msg), t.now), 0);
    cr_assert_str_eq(msg, "db1 <- node-a replay suspended");
    cr_assert_eq(pt_state(&t), LS_PASSIVE_HEALTHY);
    cr_assert_eq(pt_take(&t, LS_FRAME_COPY_STATE)->flags, LS_COPY_REPLAY_SUSPENDED);
    pt_none(&t);
    ls_copy_stats_t st;
    ls_copy_stats(t.copy, &st);
    cr_assert(st.replay_paused);
    ls_status_copy_t c = {0};
    ls_passive_status(t.m, t.now, &c);
    cr_assert(c.replay_suspended);
    cr_assert_str_eq(c.comment, "look first");
    cr_assert_eq(ls_passive_command(t.m, false, true, NULL, msg, sizeof(msg), t.now), 0);
    cr_assert_str_eq(msg, "db1 <- node-a replay resumed");
    cr_assert(!ls_passive_op(t.m)->replay_suspended);
    ls_copy_stats(t.copy, &st);
    cr_assert(!st.replay_paused);
    pt_teardown(&t);
}

Test(passive, a_suspension_loaded_at_start_shows_and_pauses_replay)
{
    pt_t t;
    ls_status_op_t op = {.suspended = true, .comment = "from before", .since_ns = 5};
    pt_setup_op(&t, false, &op);
    ls_passive_start(t.m, t.copy, NULL, t.now);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_SUSPENDED);
    cr_assert_str_eq(ls_passive_reason(t.m), "suspended by the operator: from before");
    ls_copy_stats_t st;
    ls_copy_stats(t.copy, &st);
    cr_assert(st.replay_paused);
    pt_connect(&t);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_SUSPENDED);
    pt_teardown(&t);
}

Test(passive, source_suspension_and_resume)
{
    pt_t t;
    pt_setup(&t);
    pt_connect(&t);
    pt_skip(&t);
    ls_frame_t f = {.type = LS_FRAME_COPY_STATE};
    f.copy_state.flags = LS_COPY_SUSPENDED;
    f.copy_state.since_ns = t.now - 7;
    f.copy_state.comment = ls_proto_str("upgrade");
    f.copy_state.last_generated = 9;
    ls_passive_on_frame(t.m, &f, t.now);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_SUSPENDED);
    cr_assert_str_eq(ls_passive_reason(t.m), "suspended on node-a: upgrade");
    ls_status_copy_t c = {0};
    ls_passive_status(t.m, t.now, &c);
    cr_assert_str_eq(c.comment, "upgrade", "the source's comment shows");
    cr_assert_eq(c.suspended_since_ns, t.now - 7);
    ls_passive_on_frame(t.m, &f, t.now); /* said again: no change */
    pt_none(&t);
    f.copy_state.flags = 0;
    ls_passive_on_frame(t.m, &f, t.now);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_HEALTHY);
    cr_assert_str_eq(ls_passive_reason(t.m), "resumed on node-a");
    pt_take(&t, LS_FRAME_COPY_STATE);
    pt_take(&t, LS_FRAME_RESUME);
    /* suspended again, then disconnected: forgotten, the source says again */
    f.copy_state.flags = LS_COPY_SUSPENDED;
    ls_passive_on_frame(t.m, &f, t.now);
    ls_passive_disconnected(t.m, NULL, t.now);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_SUSPENDED, "shown until it says otherwise");
    memset(&c, 0, sizeof(c));
    ls_passive_status(t.m, t.now, &c);
    cr_assert_str_eq(c.comment, "");
    /* this operator's suspension wins over the source's resume */
    pt_connect(&t);
    char msg[256];
    cr_assert_eq(ls_passive_command(t.m, true, false, "mine", msg, sizeof(msg), t.now), 0);
    f.copy_state.flags = LS_COPY_SUSPENDED;
    ls_passive_on_frame(t.m, &f, t.now);
    f.copy_state.flags = 0;
    ls_passive_on_frame(t.m, &f, t.now);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_SUSPENDED);
    cr_assert_str_eq(ls_passive_reason(t.m), "suspended by the operator: mine");
    pt_teardown(&t);
}

Test(passive, disk_full_waits_then_asks_again_when_space_returns)
{
    pt_t t;
    pt_setup(&t);
    pt_connect(&t);
    pt_skip(&t);
    pt_event(&t, LS_COPY_EV_STATE, 0, LS_COPY_DISK_FULL, "no space left writing generation 1");
    cr_assert_eq(pt_state(&t), LS_PASSIVE_DISK_FULL);
    cr_assert(ls_passive_disk_full(t.m));
    pt_event(&t, LS_COPY_RX_EV_BEHIND, 2, 0, "got generation 2, want 1");
    pt_none(&t); /* no asking while the disk is full */
    ls_passive_space_available(t.m, t.now);
    pt_frame_t *a = pt_take(&t, LS_FRAME_ASK_AGAIN);
    cr_assert_eq(a->generation, 1);
    cr_assert_eq(a->code, LS_ENOSPC);
    cr_assert_str_eq(a->text, "disk space available again");
    cr_assert_eq(t.saved_counters.ask_agains, 1);
    cr_assert_eq(t.saved_counters.inspection_failures, 0, "a full disk is not damage");
    ls_passive_space_available(t.m, t.now + PT_SEC); /* within 2 s: not again */
    pt_none(&t);
    pt_event(&t, LS_COPY_EV_DURABLE, 1, 0, NULL);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_HEALTHY);
    cr_assert(!ls_passive_disk_full(t.m));
    cr_assert_eq(pt_take(&t, LS_FRAME_DURABLE)->generation, 1);
    ls_passive_space_available(t.m, t.now); /* not full: nothing */
    pt_none(&t);
    pt_teardown(&t);
}

Test(passive, the_copys_failure_is_failed_and_told)
{
    pt_t t;
    pt_setup(&t);
    pt_connect(&t);
    pt_skip(&t);
    pt_event(&t, LS_COPY_EV_STATE, 0, LS_COPY_HEALTHY, ""); /* nothing */
    cr_assert_eq(pt_state(&t), LS_PASSIVE_HEALTHY);
    pt_event(&t, LS_COPY_EV_STATE, 0, LS_COPY_FAILED, "generation 4 failed inspection 3 times");
    cr_assert_eq(pt_state(&t), LS_PASSIVE_FAILED);
    pt_frame_t *e = pt_take(&t, LS_FRAME_ERROR);
    cr_assert_eq(e->code, LS_ESTATE);
    cr_assert_str_eq(e->text, "generation 4 failed inspection 3 times");
    pt_event(&t, LS_COPY_RX_EV_BEHIND, 5, 0, "got generation 5, want 4");
    pt_none(&t); /* Failed: no asking */
    pt_teardown(&t);
}

Test(passive, state_names_and_the_seeds_calls)
{
    cr_assert_str_eq(ls_passive_state_name(LS_PASSIVE_DISK_FULL), "DiskFull");
    cr_assert_str_eq(ls_passive_state_name(LS_PASSIVE_SEEDING), "Seeding");
    cr_assert_str_eq(ls_passive_state_name((ls_passive_state_t) 42), "Unknown");
    pt_t t;
    pt_setup(&t);
    ls_passive_set_state(t.m, LS_PASSIVE_SEEDING, t.now, "seeding from %s", "node-a");
    cr_assert_eq(pt_state(&t), LS_PASSIVE_SEEDING);
    cr_assert_str_eq(ls_passive_reason(t.m), "seeding from node-a");
    ls_passive_set_copy(t.m, NULL, NULL); /* the swap */
    cr_assert_null(ls_passive_copy(t.m));
    ls_status_op_t op = {.suspended = true, .comment = "seeded with --manual-resume"};
    ls_passive_set_copy(t.m, t.copy, &op);
    cr_assert_eq(ls_passive_copy(t.m), t.copy);
    cr_assert(ls_passive_op(t.m)->suspended);
    ls_copy_stats_t st;
    ls_copy_stats(t.copy, &st);
    cr_assert(st.replay_paused);
    ls_passive_free(NULL);
    pt_teardown(&t);
}
