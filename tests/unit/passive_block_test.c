/* engine/passive: block mode's BLOCK frames through the copy's real receiver into the shadow,
 * BLOCK_ACK with the durable offset and LSN, the credit given back, the closed generation that
 * ends the shadow, a seed's hold and the credit window; GEN_TAIL: the closed generation finished
 * from the shadow, or asked again whole when the shadow lacks its head. */
#include "passive_test_util.h"

/* The source's BLOCK frames for bytes [from, to) of generation g's open log (its closed bytes
 * without the trailer), in chunks of chunk bytes; the last carries lsn. */
static int pt_block(pt_t *t, const chain_t *ch, int g, size_t from, size_t to, size_t chunk,
                    uint64_t lsn)
{
    for (size_t off = from; off < to; off += chunk) {
        ls_frame_t f = {.type = LS_FRAME_BLOCK};
        memcpy(f.block.dbid, t->dbid, LS_DBID_LEN);
        f.block.epoch = 1;
        f.block.generation = (uint64_t) g;
        f.block.offset = off;
        f.block.len = (uint32_t) LS_MIN(chunk, to - off);
        f.block.durable_lsn = off + f.block.len == to ? lsn : 0;
        f.block.data = ch->buf[g] + off;
        int rc = ls_passive_on_frame(t->m, &f, t->now);
        if (rc) return rc;
    }
    return 0;
}

/* Waiting for a BLOCK_ACK of offset bytes or more, of generation gen (0: any). */
typedef struct {
    pt_t *t;
    uint64_t gen, offset;
} acked_t;

static bool acked(void *ctx)
{
    acked_t *a = ctx;
    ls_passive_poll(a->t->m, a->t->now);
    for (int i = 0; i < a->t->nframes; i++) {
        const pt_frame_t *fr = &a->t->frames[i];
        if (fr->type == LS_FRAME_BLOCK_ACK && (a->gen == 0 || fr->generation == a->gen) &&
            fr->bytes >= a->offset)
            return true;
    }
    return false;
}

static uint64_t credit_back(pt_t *t)
{
    uint64_t n = 0;
    for (int i = 0; i < t->nframes; i++)
        if (t->frames[i].type == LS_FRAME_CREDIT && !t->frames[i].conn_wide)
            n += t->frames[i].bytes;
    return n;
}

/* A connected pair whose copy holds generations 1 and 2 of ch, durable. */
static void two_held(pt_t *t, chain_t *ch)
{
    pt_setup(t);
    pt_connect(t);
    pt_ship(t, ch, 1, 1000, NULL);
    pt_wait(t, LS_FRAME_DURABLE, 1);
    pt_ship(t, ch, 2, 1000, NULL);
    pt_wait(t, LS_FRAME_DURABLE, 2);
}

Test(passive_block, blocks_fill_the_shadow_and_are_acknowledged)
{
    pt_t t;
    chain_t ch;
    chain_build(&ch, 3, 3, 60); /* about 1 KiB each: within the window of the tests */
    two_held(&t, &ch);
    ls_passive_poll(t.m, t.now);
    uint64_t before = credit_back(&t);
    size_t open = ch.len[3] - LS_GEN_TRAILER_SIZE;
    cr_assert_lt(open, PT_DBW);
    cr_assert_eq(pt_block(&t, &ch, 3, 0, open, 300, 4242), 0);
    acked_t a = {&t, 0, open};
    cr_assert(ls_h_wait_for(acked, &a, 10000), "BLOCK_ACK of %zu bytes", open);
    pt_frame_t *last = NULL;
    for (int i = 0; i < t.nframes; i++)
        if (t.frames[i].type == LS_FRAME_BLOCK_ACK) last = &t.frames[i];
    cr_assert_eq(last->generation, 3);
    cr_assert_eq(last->bytes, open);
    cr_assert_eq(last->lsn, 4242);
    cr_assert_leq(credit_back(&t) - before, open, "no more credit than BLOCK bytes");
    ls_status_copy_t c;
    memset(&c, 0, sizeof(c));
    ls_passive_status(t.m, t.now, &c);
    cr_assert_eq(c.block_generation, 3);
    cr_assert_eq(c.block_offset, open);
    cr_assert_eq(c.block_durable_lsn, 4242);
    cr_assert_eq(count_files(t.dir, "shadow"), 1);
    pt_ship(&t, &ch, 3, 1000, NULL); /* the roll: the closed generation, whole */
    pt_wait(&t, LS_FRAME_DURABLE, 3);
    cr_assert_eq(count_files(t.dir, "shadow"), 0, "the shadow went once 3 was held");
    char path[4200];
    gen_path(path, sizeof(path), t.dir, "logs", 3, "");
    size_t len = 0;
    uint8_t *b = ls_h_read_file(path, &len);
    cr_assert(b && len == ch.len[3]);
    cr_assert_arr_eq(b, ch.buf[3], len);
    free(b);
    pt_teardown(&t);
    chain_free(&ch);
}

static bool rx_idle(void *ctx)
{
    return ls_copy_rx_idle(ctx);
}

/* The index of the first frame of type with generation gen (offset >= bytes for BLOCK_ACK), or
 * -1. */
static int frame_at(const pt_t *t, uint8_t type, uint64_t gen, uint64_t bytes)
{
    for (int i = 0; i < t->nframes; i++)
        if (t->frames[i].type == type && t->frames[i].generation == gen &&
            (type != LS_FRAME_BLOCK_ACK || t->frames[i].bytes >= bytes))
            return i;
    return -1;
}

/* With inline_sync_ns (the daemon's loop), a small BLOCK batch that arrives while the receiver
 * thread is idle is written and synced by the loop itself in ls_passive_poll: its BLOCK_ACK is
 * sent when that call returns and the thread took nothing. A frame of a closed generation pushed
 * behind held BLOCKs sends them to the thread first, in order: their BLOCK_ACK goes before the
 * generation's DURABLE. The first BLOCK of a generation (the shadow made) is the thread's. */
Test(passive_block, small_blocks_run_on_the_loop_while_the_receiver_is_idle)
{
    pt_t t;
    chain_t ch;
    chain_build(&ch, 3, 3, 60);
    pt_inline_sync_ns = UINT64_MAX; /* whatever this disk's fdatasync takes */
    two_held(&t, &ch);
    size_t open = ch.len[3] - LS_GEN_TRAILER_SIZE, a = open / 3, b = 2 * open / 3;
    cr_assert_eq(pt_block(&t, &ch, 3, 0, a, 300, 11), 0);
    acked_t ack = {&t, 3, a};
    cr_assert(ls_h_wait_for(acked, &ack, 10000), "BLOCK_ACK of %zu bytes", a);
    cr_assert(ls_h_wait_for(rx_idle, t.rx, 10000), "the receiver thread went idle");
    cr_assert_eq(pt_block(&t, &ch, 3, a, b, 100, 22), 0);
    cr_assert(ls_copy_rx_run_held(t.rx), "held for the loop, run here");
    ls_passive_poll(t.m, t.now); /* the events run_held queued */
    ls_copy_rx_held_done(t.rx);
    int i = frame_at(&t, LS_FRAME_BLOCK_ACK, 3, b);
    cr_assert_geq(i, 0, "acknowledged in the poll, by the loop itself");
    cr_assert_eq(t.frames[i].bytes, b);
    cr_assert_eq(t.frames[i].lsn, 22);
    cr_assert(ls_copy_rx_idle(t.rx), "the receiver thread took nothing");
    char path[4200];
    gen_path(path, sizeof(path), t.dir, "shadow", 3, "");
    size_t len = 0;
    uint8_t *buf = ls_h_read_file(path, &len);
    cr_assert(buf && len == b, "the shadow holds %zu bytes, want %zu", len, b);
    cr_assert_arr_eq(buf, ch.buf[3], len);
    free(buf);
    /* Held, then the closed generation behind them without a poll in between. */
    cr_assert_eq(pt_block(&t, &ch, 3, b, open, 100, 33), 0);
    pt_ship(&t, &ch, 3, 1000, NULL);
    pt_wait(&t, LS_FRAME_DURABLE, 3);
    ls_passive_poll(t.m, t.now);
    int acked_open = frame_at(&t, LS_FRAME_BLOCK_ACK, 3, open);
    cr_assert_geq(acked_open, 0, "the held BLOCKs were written");
    cr_assert_lt(acked_open, frame_at(&t, LS_FRAME_DURABLE, 3, 0), "before the closed file");
    gen_path(path, sizeof(path), t.dir, "logs", 3, "");
    buf = ls_h_read_file(path, &len);
    cr_assert(buf && len == ch.len[3]);
    cr_assert_arr_eq(buf, ch.buf[3], len);
    free(buf);
    cr_assert_eq(count_files(t.dir, "shadow"), 0, "the shadow went once 3 was held");
    pt_teardown(&t);
    chain_free(&ch);
}

Test(passive_block, held_blocks_are_dropped_and_the_window_is_enforced)
{
    pt_t t;
    chain_t ch;
    chain_build(&ch, 1, 20, 200);
    cr_assert_gt(ch.len[1], 3 * PT_DBW);
    pt_setup(&t);
    pt_connect(&t);
    t.held = true; /* a seed holds the copy */
    cr_assert_eq(pt_block(&t, &ch, 1, 0, 3 * PT_DBW, 512, 7), 0,
                 "three windows' worth: the credit of each came back at once");
    ls_passive_poll(t.m, t.now);
    cr_assert_eq(pt_count(&t, LS_FRAME_BLOCK_ACK), 0);
    cr_assert_gt(credit_back(&t), 2 * PT_DBW, "dropped, their credit given back");
    cr_assert_leq(count_files(t.dir, "shadow"), 0, "nothing written");
    t.held = false;
    /* More than the window outstanding: a protocol error (the daemon closes). */
    static uint8_t big[PT_DBW + 1];
    ls_frame_t f = {.type = LS_FRAME_BLOCK};
    memcpy(f.block.dbid, t.dbid, LS_DBID_LEN);
    f.block.epoch = 1;
    f.block.generation = 1;
    f.block.data = big;
    f.block.len = sizeof(big);
    cr_assert_eq(ls_passive_on_frame(t.m, &f, t.now), LS_EPROTO);
    pt_teardown(&t);
    chain_free(&ch);
}

/* GEN_TAIL of generation g from start, its GEN_DATA from there and GEN_END. */
static void pt_tail(pt_t *t, const chain_t *ch, int g, size_t start, size_t chunk)
{
    pt_ship_from(t, ch, g, LS_FRAME_GEN_TAIL, start, chunk, NULL);
}

static void logs_equal(pt_t *t, const chain_t *ch, int g)
{
    char path[4200];
    gen_path(path, sizeof(path), t->dir, "logs", g, "");
    size_t len = 0;
    uint8_t *b = ls_h_read_file(path, &len);
    cr_assert(b && len == ch->len[g], "generation %d in logs/", g);
    cr_assert_arr_eq(b, ch->buf[g], len);
    free(b);
}

Test(passive_block, gen_tail_finishes_from_the_shadow_or_asks_again_whole)
{
    pt_t t;
    chain_t ch;
    chain_build(&ch, 4, 3, 60);
    pt_setup(&t);
    pt_connect(&t);
    for (int g = 1; g <= 2; g++) {
        pt_ship(&t, &ch, g, 1000, NULL);
        pt_wait(&t, LS_FRAME_DURABLE, (uint64_t) g);
    }
    /* 3: streamed but for its last 100 bytes; the closed file finished from the shadow */
    size_t part = ch.len[3] - LS_GEN_TRAILER_SIZE - 100;
    cr_assert_eq(pt_block(&t, &ch, 3, 0, part, 300, 77), 0);
    acked_t a = {&t, 0, part};
    cr_assert(ls_h_wait_for(acked, &a, 10000), "BLOCK_ACK of %zu bytes", part);
    uint64_t before = credit_back(&t);
    pt_tail(&t, &ch, 3, part, 64);
    pt_wait(&t, LS_FRAME_DURABLE, 3);
    logs_equal(&t, &ch, 3);
    cr_assert_eq(count_files(t.dir, "shadow"), 0, "the shadow went once 3 was held");
    ls_passive_poll(t.m, t.now);
    cr_assert_leq(credit_back(&t) - before, ch.len[3] - part, "credit for the tail only");
    /* 4: its shadow holds 500 bytes but GEN_TAIL starts at 900: asked again, then whole */
    cr_assert_eq(pt_block(&t, &ch, 4, 0, 500, 500, 88), 0);
    a = (acked_t){&t, 0, 500};
    cr_assert(ls_h_wait_for(acked, &a, 10000), "BLOCK_ACK of 500 bytes");
    pt_tail(&t, &ch, 4, 900, 1000);
    pt_wait(&t, LS_FRAME_ASK_AGAIN, 4);
    pt_frame_t *ask = NULL;
    for (int i = 0; i < t.nframes; i++)
        if (t.frames[i].type == LS_FRAME_ASK_AGAIN) ask = &t.frames[i];
    cr_assert_eq(ask->code, LS_EGAP);
    cr_assert_eq(ls_passive_state(t.m), LS_PASSIVE_HEALTHY, "a short shadow fails nothing");
    pt_ship(&t, &ch, 4, 1000, NULL);
    pt_wait(&t, LS_FRAME_DURABLE, 4);
    logs_equal(&t, &ch, 4);
    pt_teardown(&t);
    chain_free(&ch);
}

Test(passive_block, the_next_generation_streams_right_behind_the_closed_ones_end)
{
    pt_t t;
    chain_t ch;
    chain_build(&ch, 5, 3, 60);
    pt_setup(&t);
    pt_connect(&t);
    pt_ship(&t, &ch, 1, 1000, NULL);
    pt_wait(&t, LS_FRAME_DURABLE, 1);
    /* 2 streamed, finished from its shadow, and 3's BLOCKs right behind its GEN_END, before any
     * DURABLE of 2: taken in order, so 3's shadow follows 2 once 2 is held */
    size_t open2 = ch.len[2] - LS_GEN_TRAILER_SIZE;
    cr_assert_eq(pt_block(&t, &ch, 2, 0, open2, 300, 20), 0);
    pt_tail(&t, &ch, 2, open2, 1000);
    size_t part3 = ch.len[3] - LS_GEN_TRAILER_SIZE - 50;
    cr_assert_eq(pt_block(&t, &ch, 3, 0, part3, 300, 30), 0);
    acked_t a = {&t, 3, part3};
    cr_assert(ls_h_wait_for(acked, &a, 10000), "BLOCK_ACK of 3's %zu bytes", part3);
    pt_wait(&t, LS_FRAME_DURABLE, 2);
    cr_assert_lt(frame_at(&t, LS_FRAME_DURABLE, 2, 0), frame_at(&t, LS_FRAME_BLOCK_ACK, 3, part3),
                 "2 durable before 3's bytes are acknowledged");
    logs_equal(&t, &ch, 2);
    cr_assert_eq(count_files(t.dir, "shadow"), 1, "3's shadow alone");
    /* 4 arrives whole, with 5's BLOCKs and 5 whole queued behind it: 4's fsync of logs/ may be
     * deferred (a whole generation queued behind it), but never past an acknowledgement of 5 */
    pt_tail(&t, &ch, 3, part3, 1000);
    pt_ship(&t, &ch, 4, 1000, NULL);
    size_t part5 = 400;
    cr_assert_eq(pt_block(&t, &ch, 5, 0, part5, 400, 50), 0);
    pt_ship(&t, &ch, 5, 1000, NULL);
    pt_wait(&t, LS_FRAME_DURABLE, 5);
    ls_passive_poll(t.m, t.now);
    int ack5 = frame_at(&t, LS_FRAME_BLOCK_ACK, 5, part5);
    if (ack5 >= 0)
        cr_assert_lt(frame_at(&t, LS_FRAME_DURABLE, 4, 0), ack5,
                     "4 durable before 5's bytes are acknowledged");
    for (int g = 3; g <= 5; g++)
        logs_equal(&t, &ch, g);
    cr_assert_eq(count_files(t.dir, "shadow"), 0);
    pt_teardown(&t);
    chain_free(&ch);
}

static bool lazy(ls_copy_t *c)
{
    ls_copy_stats_t s;
    ls_copy_stats(c, &s);
    return s.shadow_lazy;
}

static void copy_state(pt_t *t, uint32_t flags)
{
    ls_frame_t f = {.type = LS_FRAME_COPY_STATE};
    memcpy(f.copy_state.dbid, t->dbid, LS_DBID_LEN);
    f.copy_state.flags = flags;
    cr_assert_eq(ls_passive_on_frame(t->m, &f, t->now), 0);
}

/* LS_FEAT_APPLY: the copy applies its shadow early at each report only while the source's
 * COPY_STATE says LS_COPY_APPLY (a commit waits for the applied position); a connection without
 * the feature gets the eager apply, as a source that cannot say expects. */
Test(passive_block, the_source_says_when_the_shadow_is_applied_early)
{
    pt_t t;
    pt_setup(&t);
    cr_assert(!lazy(t.copy), "eager after open");
    pt_connect(&t);
    ls_passive_apply_asked(t.m, true);
    cr_assert(lazy(t.copy), "the source can say: lazy until it does");
    copy_state(&t, LS_COPY_APPLY);
    cr_assert(!lazy(t.copy), "a commit waits for the applied position");
    copy_state(&t, 0);
    cr_assert(lazy(t.copy));
    copy_state(&t, LS_COPY_APPLY);
    pt_connect_tag(&t, 2); /* a new connection without the feature */
    ls_passive_apply_asked(t.m, false);
    cr_assert(!lazy(t.copy));
    copy_state(&t, 0); /* means nothing there */
    cr_assert(!lazy(t.copy));
    pt_teardown(&t);
}
