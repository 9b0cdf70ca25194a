/* ship: suspension on either side: the operator's, persisted and told to the target (a failed
 * save changes nothing; loaded at start it holds across connections), and the target's, which
 * stops shipping until it resumes. Split from ship_test.c; helpers in ship_test_util.h. */

#include <criterion/criterion.h>

#include "ship_test_util.h"

/* ---- suspension ------------------------------------------------------------------------------ */
Test(ship, the_operators_suspension_is_persisted_and_told_to_the_target, .init = setup_attached,
     .fini = teardown_world)
{
    ship_from(1);
    take_gen(1);
    W.now += SEC;
    cr_assert_eq(ls_ship_suspend(W.m, "maintenance", W.now), 0);
    cr_assert_eq(W.saves, 1);
    cr_assert(W.saved.suspended);
    cr_assert_str_eq(W.saved.comment, "maintenance");
    cr_assert_eq(W.saved.since_ns, W.now);
    cr_assert(ls_ship_op(W.m)->suspended);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_SUSPENDED);
    cr_assert_str_eq(ls_ship_reason(W.m), "suspended by the operator: maintenance");
    while (pending() && W.q[W.head].type != LS_FRAME_COPY_STATE) /* GEN_BEGIN 2 went out */
        W.head++;
    sent_t *cs = expect(LS_FRAME_COPY_STATE);
    cr_assert_eq(cs->flags, LS_COPY_SUSPENDED);
    cr_assert_str_eq(cs->text, "maintenance");
    resume_at(2, W.digest[1]); /* ignored while suspended */
    ls_ship_pump(W.m, W.now);
    expect_nothing();
    ls_status_copy_t c = status();
    cr_assert_str_eq(c.comment, "maintenance");
    cr_assert_eq(c.suspended_since_ns, W.now);
    cr_assert_eq(ls_ship_resume(W.m, W.now), 0);
    cr_assert(!W.saved.suspended);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_INITIALIZING);
    cr_assert_str_eq(ls_ship_reason(W.m), "resumed by the operator");
    cr_assert_eq(expect(LS_FRAME_COPY_STATE)->flags, 0);
    resume_at(2, W.digest[1]); /* the target answers the resume with its position */
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_HEALTHY);
    take_gen(2);
}

Test(ship, a_failed_save_changes_nothing, .init = setup_attached, .fini = teardown_world)
{
    ship_from(1);
    W.save_rc = LS_EIO;
    cr_assert_eq(ls_ship_suspend(W.m, "x", W.now), LS_EIO);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_HEALTHY);
    cr_assert(!ls_ship_op(W.m)->suspended);
    cr_assert_eq(ls_ship_resume(W.m, W.now), LS_EIO);
    ls_ship_pump(W.m, W.now);
    cr_assert_eq(W.reader_stops, 0);
    take_gen(1);
}

Test(ship, a_suspension_loaded_at_start_holds_across_connections, .fini = teardown_world)
{
    ls_ship_options_t o = options();
    o.op.suspended = true;
    snprintf(o.op.comment, sizeof(o.op.comment), "kept");
    setup_world(2, &o);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_SUSPENDED);
    attach();
    cr_assert_str_eq(ls_ship_reason(W.m), "suspended by the operator: kept");
    connect_accepted(0);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_SUSPENDED);
    cr_assert_eq(expect(LS_FRAME_COPY_STATE)->flags, LS_COPY_SUSPENDED);
    resume_at(1, NULL);
    cr_assert_eq(W.reader_starts, 0);
    ls_ship_disconnected(W.m, false, "connection reset", W.now);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_SUSPENDED);
    cr_assert_eq(ls_ship_resume(W.m, W.now), 0);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_DISCONNECTED, "not connected: Disconnected");
}

Test(ship, the_targets_suspension_stops_shipping_until_it_resumes, .init = setup_attached,
     .fini = teardown_world)
{
    ship_from(1);
    pump_until_sent();
    expect(LS_FRAME_GEN_BEGIN);
    copy_state(true, "disk swap");
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_SUSPENDED);
    cr_assert_str_eq(ls_ship_reason(W.m), "suspended on tgt: disk swap");
    cr_assert_eq(W.reader_stops, 1);
    cr_assert_str_eq(status().comment, "disk swap");
    resume_at(1, NULL);
    cr_assert_eq(W.reader_starts, 1, "RESUME is ignored while the target is suspended");
    /* this operator suspends and resumes meanwhile: still the target's suspension */
    cr_assert_eq(ls_ship_suspend(W.m, "mine", W.now), 0);
    cr_assert_str_eq(ls_ship_reason(W.m), "suspended by the operator: mine");
    cr_assert_eq(ls_ship_resume(W.m, W.now), 0);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_SUSPENDED);
    cr_assert_str_eq(ls_ship_reason(W.m), "suspended on tgt: disk swap");
    copy_state(false, "");
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_INITIALIZING);
    cr_assert_str_eq(ls_ship_reason(W.m), "resumed on tgt, waiting for its position");
    resume_at(1, NULL);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_HEALTHY);
    /* The COPY_STATEs of the operator's commands; GEN_BEGIN of 1 may follow them already (the
     * reader thread had it when RESUME pumped): take_gen takes it. */
    while (pending() && W.q[W.head].type == LS_FRAME_COPY_STATE)
        expect(LS_FRAME_COPY_STATE);
    take_gen(1);
}
