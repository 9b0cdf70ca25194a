/* ship: states, the resume plan and divergence, the target's errors and refusals, the reader
 * (ship_suspend_test.c has suspension on either side, ship_flow_test.c ask-again, credit,
 * disconnection, the seed's hold and the figures). */

#include <criterion/criterion.h>

#include "ship_test_util.h"

Test(ship, starts_initializing_then_waits_for_a_connection, .fini = teardown_world)
{
    setup_world(2, NULL);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_INITIALIZING);
    cr_assert(strstr(ls_ship_reason(W.m), "waiting for the database"));
    cr_assert_eq(ls_ship_pump(W.m, W.now), 0);
    ls_ship_tick(W.m, W.now);
    cr_assert_eq(ls_ship_credit(W.m, 10), LS_ESTATE);
    attach();
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_DISCONNECTED);
    cr_assert_str_eq(ls_ship_reason(W.m), "not connected yet");
    cr_assert_eq(W.nstates, 1);
    expect_nothing();
    cr_assert_str_eq(status().state, "Disconnected");
}

Test(ship, state_names)
{
    const char *want[] = {"Initializing", "Healthy",  "Disconnected", "Suspended",
                          "Failed",       "Diverged", "Seeding",      "Demoted"};
    for (int s = 0; s < 8; s++)
        cr_assert_str_eq(ls_ship_state_name((ls_ship_state_t) s), want[s]);
    cr_assert_str_eq(ls_ship_state_name((ls_ship_state_t) 42), "Unknown");
    ls_ship_free(NULL);
}

Test(ship, a_source_that_cannot_open_fails_the_copy, .fini = teardown_world)
{
    setup_world(1, NULL);
    ls_ship_source_failed(W.m, "logs/history:3: malformed line", W.now);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_FAILED);
    cr_assert_str_eq(ls_ship_reason(W.m), "logs/history:3: malformed line");
}

Test(ship, ships_every_generation_from_the_targets_position, .init = setup_attached,
     .fini = teardown_world)
{
    ship_from(1);
    cr_assert_str_eq(ls_ship_reason(W.m), "shipping from generation 1");
    for (uint64_t g = 1; g <= 3; g++)
        take_gen(g);
    ls_ship_pump(W.m, W.now);
    expect_nothing();
    ls_status_copy_t c = status();
    cr_assert_eq(c.sent_generations, 3);
    cr_assert_eq(c.sent_bytes, W.size[1] + W.size[2] + W.size[3]);
    cr_assert_eq(c.copy_queue, 3);
    W.now += 5 * SEC;
    ack(LS_FRAME_DURABLE, 3);
    sent_t *cs = expect(LS_FRAME_COPY_STATE); /* the copy queue changed */
    cr_assert_eq(cs->queue_count, 0);
    cr_assert_eq(cs->last_generated, 3);
    ack(LS_FRAME_INSPECTED, 3);
    ack(LS_FRAME_REPLAYED, 2);
    ack(LS_FRAME_REPLAYED_SYNCED, 2);
    W.now += SEC;
    ack(LS_FRAME_DURABLE, 1); /* late: changes nothing */
    expect_nothing();
    c = status();
    cr_assert_eq(c.last_copied.gen, 3);
    cr_assert_eq(c.last_copied.time_ns, T0 + 5 * SEC);
    cr_assert_eq(c.last_inspected.gen, 3);
    cr_assert_eq(c.last_replayed.gen, 2);
    cr_assert_eq(c.last_replayed_synced.gen, 2);
    cr_assert_eq(ls_ship_synced(W.m), 2);
    cr_assert_eq(c.copy_queue, 0);
    cr_assert_eq(c.replay_queue, 1);
    cr_assert_eq(c.replay_queue_bytes, W.size[3]);
    cr_assert_str_eq(c.state, "Healthy");
}

Test(ship, resumes_after_what_the_target_holds, .init = setup_attached, .fini = teardown_world)
{
    ship_from(3);
    cr_assert_str_eq(ls_ship_reason(W.m), "shipping from generation 3");
    take_gen(3);
    ls_ship_pump(W.m, W.now);
    expect_nothing();
    cr_assert_eq(W.reader_starts, 1);
}

Test(ship, a_generation_ships_once_it_is_closed, .init = setup_attached, .fini = teardown_world)
{
    ship_from(1);
    for (uint64_t g = 1; g <= 3; g++)
        take_gen(g);
    add_gen(&W, 2, 100);
    rescan(&W); /* wakes the reader waiting for generation 4 */
    take_gen(4);
    ls_ship_tick(W.m, W.now);
    cr_assert_eq(expect(LS_FRAME_COPY_STATE)->last_generated, 4);
}

Test(ship, divergence_at_resume_marks_the_copy_diverged, .init = setup_attached,
     .fini = teardown_world)
{
    connect_accepted(0);
    expect(LS_FRAME_COPY_STATE);
    uint8_t other[LS_DIGEST_SIZE];
    memset(other, 0x5a, sizeof(other));
    resume_at(3, other); /* the target's generation 2 is not ours */
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_DIVERGED);
    sent_t *e = expect(LS_FRAME_ERROR);
    cr_assert_eq(e->code, LS_EDIVERGED);
    cr_assert_str_eq(e->text, ls_ship_reason(W.m));
    cr_assert_eq(W.reader_starts, 0);
    ls_ship_disconnected(W.m, false, "connection reset", W.now);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_DIVERGED, "Diverged survives disconnection");
    connect_accepted(0); /* the next accepted WELCOME starts over */
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_INITIALIZING);
}

Test(ship, a_removed_generation_fails_the_copy_with_a_gap, .init = setup_attached,
     .fini = teardown_world)
{
    char path[PATH_MAX];
    gen_file(&W, 1, path, sizeof(path));
    cr_assert_eq(unlink(path), 0);
    rescan(&W);
    connect_accepted(0);
    expect(LS_FRAME_COPY_STATE);
    resume_at(1, NULL);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_FAILED);
    cr_assert_eq(expect(LS_FRAME_ERROR)->code, LS_EGAP);
}

Test(ship, refusals_by_the_target, .init = setup_attached, .fini = teardown_world)
{
    ls_proto_db_result_t r = {
        .status = LS_DB_REFUSED, .code = LS_EDBID, .reason = ls_proto_str("another database")};
    ls_ship_connected(W.m, &r, 0, W.now);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_FAILED);
    cr_assert_str_eq(ls_ship_reason(W.m), "refused by tgt: another database");
    resume_at(1, NULL); /* not accepted: ignored */
    r.code = LS_EBUSY;
    r.reason = ls_proto_str("being seeded");
    ls_ship_connected(W.m, &r, 0, W.now);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_DISCONNECTED);
    cr_assert_str_eq(ls_ship_reason(W.m), "refused by tgt: being seeded");
    expect_nothing();
    cr_assert_eq(W.reader_starts, 0);
}

Test(ship, the_targets_error_fails_or_diverges_the_copy, .init = setup_attached,
     .fini = teardown_world)
{
    ship_from(1);
    pump_until_sent();
    expect(LS_FRAME_GEN_BEGIN);
    ls_frame_t f = {.type = LS_FRAME_ERROR};
    f.error.code = LS_EGAP;
    f.error.message = ls_proto_str("generation 2 missing");
    reply(&f);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_FAILED);
    cr_assert_str_eq(ls_ship_reason(W.m), "target tgt: generation 2 missing");
    cr_assert_eq(ls_ship_send_chunk(W.m, CHUNK, W.now), 0);
    ls_ship_pump(W.m, W.now);
    expect_nothing();
    connect_accepted(0);
    expect(LS_FRAME_COPY_STATE);
    f.error.code = LS_EDIVERGED;
    reply(&f);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_DIVERGED);
    f.type = LS_FRAME_GEN_DATA; /* not a frame for a source: ignored */
    reply(&f);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_DIVERGED);
}

Test(ship, a_transient_error_from_the_target_only_disconnects_the_copy, .init = setup_attached,
     .fini = teardown_world)
{
    ship_from(1);
    pump_until_sent();
    expect(LS_FRAME_GEN_BEGIN);
    ls_frame_t f = {.type = LS_FRAME_ERROR};
    f.error.code = LS_ENOSPC; /* the target's disk is full: it asks again once it has space */
    f.error.message = ls_proto_str("no space left in inspect/");
    reply(&f);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_DISCONNECTED, "a transient code is not Failed: %s",
                 ls_ship_state_name(ls_ship_state(W.m)));
    cr_assert_str_eq(ls_ship_reason(W.m), "target tgt: no space left in inspect/");
    ship_from(1); /* its next RESUME ships again, no operator needed */
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_HEALTHY);
}

Test(ship, a_re_offer_holds_only_this_database_and_plans_it_again, .init = setup_attached,
     .fini = teardown_world)
{
    ship_from(1);
    take_gen(1);
    ack(LS_FRAME_DURABLE, 1);
    cr_assert_eq(status().last_copied.gen, 1);
    /* Generation 2 in flight when the target starts a seed. Its GEN_BEGIN went out right behind
     * GEN_END of 1 when the reader thread had it by then, else after the COPY_STATE the durable
     * ack sent: the reader's pace, not the machine's order. */
    if (pending() && W.q[W.head].type != LS_FRAME_GEN_BEGIN) expect(LS_FRAME_COPY_STATE);
    pump_until_sent();
    expect(LS_FRAME_GEN_BEGIN);

    ls_frame_t f = {.type = LS_FRAME_RE_OFFER};
    f.re_offer.flags = LS_REOFFER_HOLD;
    f.re_offer.reason = ls_proto_str("being seeded");
    reply(&f);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_SEEDING, "%s", ls_ship_reason(W.m));
    cr_assert_str_eq(ls_ship_reason(W.m), "target tgt: being seeded");
    cr_assert_eq(ls_ship_send_chunk(W.m, CHUNK, W.now), 0, "nothing of the held database goes out");
    ls_ship_pump(W.m, W.now);
    while (pending()) /* at most the COPY_STATE the durable ack made due: no GEN frame */
        expect(LS_FRAME_COPY_STATE);

    f.re_offer.flags = LS_REOFFER_REPLACED;
    f.re_offer.reason = ls_proto_str("was seeded");
    reply(&f);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_INITIALIZING);
    cr_assert_eq(status().last_copied.gen, 0, "the replaced copy's positions are forgotten");
    expect(LS_FRAME_COPY_STATE);
    resume_at(2, W.digest[1]); /* the seeded copy asks for the generation holding its snapshot */
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_HEALTHY, "%s", ls_ship_reason(W.m));
    take_gen(2);
}

Test(ship, a_damaged_generation_on_disk_fails_the_copy, .init = setup_attached,
     .fini = teardown_world)
{
    char path[PATH_MAX];
    gen_file(&W, 2, path, sizeof(path));
    W.bytes[2][W.size[2] / 2] ^= 0xff; /* one byte of a record */
    cr_assert_eq(ls_h_write_file(path, W.bytes[2], W.size[2]), 0);
    W.bytes[2][W.size[2] / 2] ^= 0xff;
    ship_from(1);
    take_gen(1);
    pump_until_sent();
    sent_t *e = expect(LS_FRAME_ERROR);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_FAILED);
    cr_assert_str_eq(e->text, ls_ship_reason(W.m));
    cr_assert_neq(e->code, 0);
    cr_assert_eq(W.reader_stops, 1);
}

/* ---- a reader given by the caller ------------------------------------------------------------ */
typedef struct {
    int start_rc;   /* what start answers */
    int calls;      /* next calls */
    ls_gen_buf_t g; /* the one generation it has */
    int released, stopped;
    _Atomic uint64_t avail;    /* streaming: bytes of g verified so far (g.avail points here) */
    int fail_code;             /* streaming: the reader failed on g with this code (0: not) */
    int starts;                /* start calls */
    ls_reader_verify_t verify; /* the last start's options */
    uint64_t full_gen;
} fake_reader_t;

static fake_reader_t FR;

static int fr_start(void *ctx, ls_source_t *src, uint64_t first, const ls_reader_options_t *opts,
                    void **out)
{
    (void) src;
    fake_reader_t *r = ctx;
    cr_assert_eq(first, 1);
    r->starts++;
    r->calls = 0;
    r->verify = opts->verify;
    r->full_gen = opts->full_gen;
    *out = r;
    return r->start_rc;
}

static int fr_next(void *rd, const ls_gen_buf_t **g)
{
    fake_reader_t *r = rd;
    if (r->fail_code && r->calls >= 3) return r->fail_code; /* failed on g, handed out */
    if (++r->calls != 3) return LS_EBUSY;                   /* ready at the third call only */
    *g = &r->g;
    return 0;
}

static void fr_release(void *rd, const ls_gen_buf_t *g)
{
    cr_assert_eq(g, &((fake_reader_t *) rd)->g);
    ((fake_reader_t *) rd)->released++;
}

static const char *fr_error(void *rd)
{
    return ((fake_reader_t *) rd)->fail_code ? "generation 1 failed verification" : "";
}

static void fr_stop(void *rd)
{
    ((fake_reader_t *) rd)->stopped++;
}

static const ls_ship_reader_ops_t fake_ops = {fr_start, fr_next, fr_release, fr_error, fr_stop};

static void setup_fake_verify(int start_rc, ls_reader_verify_t verify)
{
    memset(&FR, 0, sizeof(FR));
    FR.start_rc = start_rc;
    ls_ship_options_t o = options();
    o.verify = verify;
    o.reader = &fake_ops;
    o.reader_ctx = &FR;
    setup_world(1, &o);
    FR.g = (ls_gen_buf_t){.epoch = 1, .generation = 1, .bytes = W.bytes[1], .size = W.size[1]};
    memcpy(FR.g.digest, W.digest[1], LS_DIGEST_SIZE);
    attach();
}

static void setup_fake(int start_rc)
{
    setup_fake_verify(start_rc, LS_READER_VERIFY_RECORDS);
}

Test(ship, a_reader_that_cannot_start_fails_the_copy, .fini = teardown_world)
{
    setup_fake(LS_ENOMEM);
    connect_accepted(0);
    expect(LS_FRAME_COPY_STATE);
    resume_at(1, NULL);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_FAILED);
    cr_assert(strstr(ls_ship_reason(W.m), "cannot start the log reader"));
    cr_assert_eq(expect(LS_FRAME_ERROR)->code, LS_ENOMEM);
}

Test(ship, consumes_the_reader_it_is_given, .fini = teardown_world)
{
    setup_fake(0);
    ship_from(1);
    ls_ship_pump(W.m, W.now); /* nothing ready at first */
    expect_nothing();
    take_gen(1);
    cr_assert_eq(FR.released, 1);
    ls_ship_free(W.m);
    W.m = NULL;
    cr_assert_eq(FR.stopped, 1);
}

/* The reader checks what the options say (records by default); a generation asked again after
 * damage is verified FULL (its SHA-256 too) before it goes again; one asked again for a gap or
 * a full disk is not. */
Test(ship, an_ask_again_for_damage_verifies_that_generation_full, .fini = teardown_world)
{
    setup_fake(0);
    ship_from(1);
    cr_assert_eq(FR.starts, 1);
    cr_assert_eq(FR.verify, LS_READER_VERIFY_RECORDS);
    cr_assert_eq(FR.full_gen, 0);
    take_gen(1);
    ask_again(1, LS_EDIGEST);
    take_gen(1);
    cr_assert_eq(FR.starts, 2);
    cr_assert_eq(FR.full_gen, 1, "asked again after damage: verified FULL");
    ask_again(1, LS_ERECCKSUM);
    take_gen(1);
    cr_assert_eq(FR.full_gen, 1);
    ask_again(1, LS_EGAP);
    take_gen(1);
    cr_assert_eq(FR.starts, 4);
    cr_assert_eq(FR.full_gen, 0, "a gap is no damage");
}

Test(ship, source_verify_full_is_passed_to_the_reader, .fini = teardown_world)
{
    setup_fake_verify(0, LS_READER_VERIFY_FULL);
    ship_from(1);
    cr_assert_eq(FR.verify, LS_READER_VERIFY_FULL);
    take_gen(1);
}

/* Stream while verifying: a generation handed out while the reader still verifies it goes out
 * as far as it is verified, and GEN_END (the digest) only once all of it is. */
Test(ship, a_generation_being_verified_ships_as_far_as_it_is_verified, .fini = teardown_world)
{
    setup_fake(0);
    uint64_t size = W.size[1], part = size / 3;
    atomic_store(&FR.avail, part);
    FR.g.avail = &FR.avail;
    ship_from(1);
    pump_until_sent();
    cr_assert_eq(expect(LS_FRAME_GEN_BEGIN)->size, size);
    take_data(1, 0, part);
    cr_assert_eq(ls_ship_send_chunk(W.m, CHUNK, W.now), 0, "nothing beyond what is verified");
    ls_ship_pump(W.m, W.now);
    expect_nothing();
    atomic_store(&FR.avail, size - 1); /* the reader holds the last piece back until the end */
    ls_ship_pump(W.m, W.now);
    take_data(1, part, size - 1);
    ls_ship_pump(W.m, W.now);
    expect_nothing(); /* no GEN_END before the whole generation is verified */
    atomic_store(&FR.avail, size);
    take_data(1, size - 1, size);
    cr_assert_eq(expect(LS_FRAME_GEN_END)->gen, 1);
    cr_assert_eq(FR.released, 1);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_HEALTHY, "%s", ls_ship_reason(W.m));
}

Test(ship, a_late_mismatch_aborts_the_generation_and_fails_the_copy, .fini = teardown_world)
{
    setup_fake(0);
    uint64_t size = W.size[1], part = size / 2;
    atomic_store(&FR.avail, part);
    FR.g.avail = &FR.avail;
    ship_from(1);
    pump_until_sent();
    expect(LS_FRAME_GEN_BEGIN);
    take_data(1, 0, part);
    FR.fail_code = LS_ERECCKSUM; /* the reader found a damaged record past what went out */
    ls_ship_pump(W.m, W.now);
    sent_t *e = expect(LS_FRAME_ERROR); /* and no GEN_END: the target never keeps it */
    cr_assert_eq(e->code, LS_ERECCKSUM);
    expect_nothing();
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_FAILED);
    cr_assert(strstr(ls_ship_reason(W.m), "failed verification"), "%s", ls_ship_reason(W.m));
    cr_assert_eq(FR.released, 1);
    cr_assert_eq(FR.stopped, 1);
}
