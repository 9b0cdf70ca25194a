/* ship: epochs and fencing (ship.h, DEMOTED; proto/PROTOCOL.md, EPOCH). The database on disk is
 * in epoch 1 (generations E00-00000001-*, no history); the scripted target announces newer
 * epochs in each of the ways a peer can, and the machine must stop shipping for good, tell the
 * target, and ask the caller to fence the writer with the new active's name. */
#include "ship_test_util.h"

static void epoch_frame(uint32_t epoch, uint64_t first, const char *active)
{
    ls_frame_t f = {.type = LS_FRAME_EPOCH};
    f.epoch.epoch = epoch;
    f.epoch.first_generation = first;
    f.epoch.active = ls_proto_str(active);
    reply(&f);
}

/* Fenced: nothing but the fence is ever sent again, whatever the target or the operator do. */
static void stays_fenced(ls_ship_state_t st)
{
    int starts = W.reader_starts;
    resume_at(1, NULL);
    ls_ship_tick(W.m, W.now + 10 * SEC);
    cr_assert_eq(ls_ship_send_chunk(W.m, CHUNK, W.now), 0);
    cr_assert_eq(ls_ship_resume(W.m, W.now), 0, "the operator's resume is saved ...");
    cr_assert_eq(ls_ship_state(W.m), st, "... but does not unfence");
    expect_nothing();
    ls_ship_disconnected(W.m, false, "connection reset", W.now);
    cr_assert_eq(ls_ship_state(W.m), st);
    connect_accepted(0); /* the next connection: the target is told at once, nothing else */
    sent_t *e = expect(LS_FRAME_ERROR);
    cr_assert_eq(e->code, LS_EFENCED);
    resume_at(1, NULL);
    expect_nothing();
    cr_assert_eq(W.reader_starts, starts, "no reader starts once fenced");
    cr_assert_eq(ls_ship_state(W.m), st);
}

Test(ship_epoch, an_epoch_frame_naming_a_newer_epoch_fences_the_old_active, .init = setup_attached,
     .fini = teardown_world)
{
    ship_from(1);
    pump_until_sent();
    cr_assert_eq(expect(LS_FRAME_GEN_BEGIN)->gen, 1);
    take_data(1, 0, CHUNK); /* in the middle of generation 1 */
    int stops = W.reader_stops;
    epoch_frame(2, 4, "node-b");
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_DEMOTED, "%s", ls_ship_reason(W.m));
    cr_assert_eq(W.fences, 1);
    cr_assert_eq(W.fence_epoch, 2);
    cr_assert_str_eq(W.fence_active, "node-b");
    cr_assert(strstr(W.fence_reason, "node-b became active for db1 in epoch 2") &&
                  strstr(W.fence_reason, "this node's epoch is 1") &&
                  strstr(W.fence_reason, "refuses commits"),
              "%s", W.fence_reason);
    cr_assert_eq(W.reader_stops, stops + 1, "shipping stopped at once");
    sent_t *e = expect(LS_FRAME_ERROR);
    cr_assert_eq(e->code, LS_EFENCED);
    cr_assert(strstr(e->text, "node-b"), "%s", e->text);
    uint32_t epoch = 0;
    const char *active = NULL;
    cr_assert(ls_ship_fenced(W.m, &epoch, &active));
    cr_assert(epoch == 2 && strcmp(active, "node-b") == 0);
    cr_assert_str_eq(status().state, "Demoted");
    epoch_frame(2, 4, "node-b"); /* told again: nothing new */
    cr_assert_eq(W.fences, 1);
    expect_nothing();
    stays_fenced(LS_SHIP_DEMOTED);
}

Test(ship_epoch, an_epoch_frame_of_this_nodes_epoch_or_older_changes_nothing,
     .init = setup_attached, .fini = teardown_world)
{
    ship_from(1);
    epoch_frame(1, 1, "node-a"); /* a copy in step */
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_HEALTHY);
    take_gen(1);
    ls_ship_learn_epoch(W.m, 1, "", W.now);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_HEALTHY);
    cr_assert_eq(W.fences, 0);
    cr_assert_not(ls_ship_fenced(W.m, NULL, NULL));
    take_gen(2);
}

Test(ship_epoch, a_resume_at_a_newer_epoch_fences_even_from_a_version_2_target,
     .init = setup_attached, .fini = teardown_world)
{
    connect_accepted(0);
    expect(LS_FRAME_COPY_STATE);
    /* No EPOCH frame (an older target): its RESUME says it holds generation 2 of epoch 2. */
    ls_frame_t f = {.type = LS_FRAME_RESUME};
    f.resume.epoch = 2;
    f.resume.next_generation = 3;
    memcpy(f.resume.last_digest, W.digest[2], LS_DIGEST_SIZE);
    reply(&f);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_DEMOTED, "%s", ls_ship_reason(W.m));
    cr_assert_eq(W.fences, 1);
    cr_assert_eq(W.fence_epoch, 2);
    cr_assert_str_eq(W.fence_active, "", "the new active's name is not known");
    cr_assert(strstr(ls_ship_reason(W.m), "target tgt holds epoch 2 of db1") &&
                  strstr(ls_ship_reason(W.m), "newer than this active's epoch 1"),
              "%s", ls_ship_reason(W.m));
    cr_assert_eq(expect(LS_FRAME_ERROR)->code, LS_EFENCED);
    /* The name arrives later (an EPOCH on another connection): ls_ship_fenced() says it, the
     * reason too; the caller is not asked to fence twice. */
    ls_ship_learn_epoch(W.m, 2, "node-b", W.now);
    cr_assert_eq(W.fences, 1);
    const char *active = NULL;
    cr_assert(ls_ship_fenced(W.m, NULL, &active));
    cr_assert_str_eq(active, "node-b");
    cr_assert(strstr(ls_ship_reason(W.m), "node-b became active"), "%s", ls_ship_reason(W.m));
    expect_nothing();
    stays_fenced(LS_SHIP_DEMOTED);
}

Test(ship_epoch, the_targets_fenced_error_or_welcome_refusal_fences, .init = setup_attached,
     .fini = teardown_world)
{
    ship_from(1);
    pump_until_sent(); /* the reader is a thread: take what it readied, so nothing is left */
    cr_assert_eq(expect(LS_FRAME_GEN_BEGIN)->gen, 1);
    ls_frame_t f = {.type = LS_FRAME_ERROR};
    f.error.code = LS_EFENCED;
    f.error.message = ls_proto_str("database db1: source node-a announces epoch 1, but this "
                                   "copy's history moved on to epoch 2");
    reply(&f);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_DEMOTED);
    cr_assert_eq(W.fences, 1);
    cr_assert(strstr(ls_ship_reason(W.m), "moved on to epoch 2"), "%s", ls_ship_reason(W.m));
    expect_nothing(); /* the target said so: no ERROR back */
    teardown_world();

    setup_attached();
    ls_proto_db_result_t r = {.status = LS_DB_REFUSED, .code = LS_EFENCED};
    r.reason = ls_proto_str("db1 is active here in epoch 2");
    ls_ship_connected(W.m, &r, 0, W.now);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_DEMOTED);
    cr_assert_eq(W.fences, 1);
    cr_assert(strstr(ls_ship_reason(W.m), "tgt refused db1: db1 is active here in epoch 2"), "%s",
              ls_ship_reason(W.m));
    expect_nothing();
}

/* The caller's own fence: at a restart whose role file says demoted or diverged, and with
 * ls_role_demote's outcome. No action asks to fence again. */
Test(ship_epoch, the_callers_fence_holds_across_connections, .init = setup_attached,
     .fini = teardown_world)
{
    ls_ship_fence(W.m, 2, "node-b", true, NULL, W.now);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_DIVERGED);
    cr_assert_eq(W.fences, 0);
    cr_assert(strstr(ls_ship_reason(W.m), "diverged: node-b is active for db1 in epoch 2"), "%s",
              ls_ship_reason(W.m));
    stays_fenced(LS_SHIP_DIVERGED);
    ls_ship_fence(W.m, 2, NULL, false, "demoted: nothing diverged", W.now);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_DEMOTED);
    cr_assert_str_eq(ls_ship_reason(W.m), "demoted: nothing diverged");
    const char *active = NULL;
    cr_assert(ls_ship_fenced(W.m, NULL, &active));
    cr_assert_str_eq(active, "node-b", "the name learned first is kept");
}

/* News after the fence (a newer epoch, a name) is kept for ls_ship_fenced() but leaves the state
 * and reason the caller set: a second peer's EPOCH once turned a Diverged old active back into
 * Demoted in status (the demote test's flake). */
Test(ship_epoch, later_news_keeps_the_callers_diverged_state, .init = setup_attached,
     .fini = teardown_world)
{
    ls_ship_fence(W.m, 2, NULL, true, "diverged: 3 generations moved aside", W.now);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_DIVERGED);
    epoch_frame(3, 9, "node-c"); /* a newer epoch, with a name */
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_DIVERGED, "%s", ls_ship_reason(W.m));
    cr_assert_str_eq(ls_ship_reason(W.m), "diverged: 3 generations moved aside");
    cr_assert_eq(W.fences, 0, "no second request to fence the writer");
    uint32_t epoch = 0;
    const char *active = NULL;
    cr_assert(ls_ship_fenced(W.m, &epoch, &active));
    cr_assert(epoch == 3 && strcmp(active, "node-c") == 0, "the news is kept: %u %s", epoch,
              active);
}

/* The usual return of an old active: the copy followed the new active further than this node
 * ever wrote. That is a newer epoch first (fenced), not a divergence of the copy. */
Test(ship_epoch, a_target_ahead_in_a_newer_epoch_fences_rather_than_diverges,
     .init = setup_attached, .fini = teardown_world)
{
    connect_accepted(0);
    expect(LS_FRAME_COPY_STATE);
    ls_frame_t f = {.type = LS_FRAME_RESUME};
    f.resume.epoch = 2;
    f.resume.next_generation = 9; /* this node wrote 1..3 */
    memset(f.resume.last_digest, 0x5a, LS_DIGEST_SIZE);
    reply(&f);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_DEMOTED, "%s", ls_ship_reason(W.m));
    cr_assert_eq(W.fence_epoch, 2);
    cr_assert_eq(expect(LS_FRAME_ERROR)->code, LS_EFENCED);
}
