/* ship: block mode's decisions with the scripted target and the fake clock (docs/BLOCKMODE.md):
 * when the copy enters and leaves block mode, which bytes of the open generation go out (only
 * what the writer published as durable, within the credit window, never while a closed
 * generation is in flight), the durable LSN each BLOCK carries, the lag measured from the
 * writer's publish time to the BLOCK_ACK, and the figures; with GEN_TAIL the closed generation
 * starts where the target's shadow ends (what this connection streamed or the target
 * acknowledged on it) and goes whole once asked again. The machine reads nothing itself:
 * block_read below serves the open generation from memory. */
#include "ship_test_util.h"

#define MS 1000000ull

static int64_t block_read(void *ctx, uint32_t epoch, uint64_t gen, uint64_t off, uint8_t *buf,
                          size_t len)
{
    world_t *w = ctx;
    w->reads++;
    if (!w->open_log || epoch != w->open_epoch || gen != w->open_gen) return LS_ESTATE;
    cr_assert_leq(off + len, w->open_len, "asked past the open log");
    memcpy(buf, w->open_log + off, len);
    return (int64_t) len;
}

static void setup_block(void)
{
    ls_ship_options_t o = options();
    o.block_read = block_read;
    setup_world(3, &o);
    attach();
}

/* Generation 4 written to logs/ (closed, not rescanned yet): its bytes are the open log's. */
static void open_gen4(void)
{
    add_gen(&W, 6, 700);
    W.open_log = W.bytes[4];
    W.open_len = W.size[4];
    W.open_epoch = 1;
    W.open_gen = 4;
}

static void publish(uint64_t offset, uint64_t lsn)
{
    ls_ship_durable_t d = {
        .epoch = 1, .generation = W.open_gen, .offset = offset, .lsn = lsn, .time_ns = W.now};
    ls_ship_block_durable(W.m, &d, W.now);
}

/* Takes BLOCK frames up to `upto`, checking them against the open log. */
static void take_block(uint64_t from, uint64_t upto)
{
    uint64_t off = from;
    while (off < upto) {
        int64_t n = ls_ship_send_chunk(W.m, CHUNK, W.now);
        cr_assert_gt(n, 0, "no BLOCK at %llu", (unsigned long long) off);
        sent_t *b = expect(LS_FRAME_BLOCK);
        cr_assert_eq(b->gen, W.open_gen);
        cr_assert_eq(b->epoch, W.open_epoch);
        cr_assert_eq(b->off, off);
        cr_assert_eq(memcmp(b->data, W.open_log + off, b->len), 0);
        off += b->len;
    }
    cr_assert_eq(off, upto);
}

/* The COPY_STATE frames at the head of the queue (what changed for the target's figures). */
static void skip_states(void)
{
    while (pending() && W.q[W.head].type == LS_FRAME_COPY_STATE)
        expect(LS_FRAME_COPY_STATE);
}

static void block_ack(uint64_t gen, uint64_t offset, uint64_t lsn)
{
    ls_frame_t f = {.type = LS_FRAME_BLOCK_ACK};
    f.block_ack = (ls_proto_block_ack_t){
        .epoch = 1, .generation = gen, .offset = offset, .durable_lsn = lsn, .applied_lsn = lsn};
    reply(&f);
}

/* Connected with block mode, generations 1..3 sent and durable: block mode. */
static void caught_up(uint32_t window)
{
    connect_accepted(window);
    ls_ship_block_allow(W.m, true, W.now);
    ls_ship_block_next_allow(W.m, true);
    expect(LS_FRAME_COPY_STATE);
    resume_at(1, NULL);
    cr_assert_eq(ls_ship_mode(W.m), LS_SHIP_MODE_FILE, "a queue of 3: file mode");
    for (uint64_t g = 1; g <= 3; g++)
        take_gen(g);
    ack(LS_FRAME_DURABLE, 3);
    skip_states();
    cr_assert_eq(ls_ship_mode(W.m), LS_SHIP_MODE_BLOCK, "%s", W.mode_reason);
    cr_assert(strstr(W.mode_reason, "caught up"), "%s", W.mode_reason);
}

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
