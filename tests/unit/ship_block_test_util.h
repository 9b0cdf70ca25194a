/* Helpers shared by the block-mode ship tests (ship_block_test.c, ship_block_tail_test.c): the
 * open generation served from memory (block_read), the writer's publication, BLOCK frames
 * taken and acknowledged, a copy caught up in block mode. Static: each test program includes
 * this once. */
#ifndef LS_SHIP_BLOCK_TEST_UTIL_H
#define LS_SHIP_BLOCK_TEST_UTIL_H

#include <criterion/criterion.h>
#include "ship_test_util.h"

#define MS 1000000ull

/* helpers a test program may leave unused */
#ifndef UTIL
#define UTIL static __attribute__((unused))
#endif

UTIL int64_t block_read(void *ctx, uint32_t epoch, uint64_t gen, uint64_t off, uint8_t *buf,
                        size_t len)
{
    world_t *w = ctx;
    w->reads++;
    if (!w->open_log || epoch != w->open_epoch || gen != w->open_gen) return LS_ESTATE;
    cr_assert_leq(off + len, w->open_len, "asked past the open log");
    memcpy(buf, w->open_log + off, len);
    return (int64_t) len;
}

UTIL void setup_block(void)
{
    ls_ship_options_t o = options();
    o.block_read = block_read;
    setup_world(3, &o);
    attach();
}

/* Generation 4 written to logs/ (closed, not rescanned yet): its bytes are the open log's. */
UTIL void open_gen4(void)
{
    add_gen(&W, 6, 700);
    W.open_log = W.bytes[4];
    W.open_len = W.size[4];
    W.open_epoch = 1;
    W.open_gen = 4;
}

UTIL void publish(uint64_t offset, uint64_t lsn)
{
    ls_ship_durable_t d = {
        .epoch = 1, .generation = W.open_gen, .offset = offset, .lsn = lsn, .time_ns = W.now};
    ls_ship_block_durable(W.m, &d, W.now);
}

/* Takes BLOCK frames up to `upto`, checking them against the open log. */
UTIL void take_block(uint64_t from, uint64_t upto)
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
UTIL void skip_states(void)
{
    while (pending() && W.q[W.head].type == LS_FRAME_COPY_STATE)
        expect(LS_FRAME_COPY_STATE);
}

UTIL void block_ack(uint64_t gen, uint64_t offset, uint64_t lsn)
{
    ls_frame_t f = {.type = LS_FRAME_BLOCK_ACK};
    f.block_ack = (ls_proto_block_ack_t){
        .epoch = 1, .generation = gen, .offset = offset, .durable_lsn = lsn, .applied_lsn = lsn};
    reply(&f);
}

/* Connected with block mode, generations 1..3 sent and durable: block mode. */
UTIL void caught_up(uint32_t window)
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

#endif
