/* engine/passive: block mode's BLOCK frames through the copy's real receiver into the shadow,
 * BLOCK_ACK with the durable offset and LSN, the credit given back, the closed generation that
 * ends the shadow, a seed's hold and the credit window. */
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

typedef struct {
    pt_t *t;
    uint64_t offset;
} acked_t;

static bool acked(void *ctx)
{
    acked_t *a = ctx;
    ls_passive_poll(a->t->m, a->t->now);
    for (int i = 0; i < a->t->nframes; i++)
        if (a->t->frames[i].type == LS_FRAME_BLOCK_ACK && a->t->frames[i].bytes >= a->offset)
            return true;
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

Test(passive_block, blocks_fill_the_shadow_and_are_acknowledged)
{
    pt_t t;
    chain_t ch;
    chain_build(&ch, 3, 3, 60); /* about 1 KiB each: within the window of the tests */
    pt_setup(&t);
    pt_connect(&t);
    pt_ship(&t, &ch, 1, 1000, NULL);
    pt_wait(&t, LS_FRAME_DURABLE, 1);
    pt_ship(&t, &ch, 2, 1000, NULL);
    pt_wait(&t, LS_FRAME_DURABLE, 2);
    ls_passive_poll(t.m, t.now);
    uint64_t before = credit_back(&t);
    size_t open = ch.len[3] - LS_GEN_TRAILER_SIZE;
    cr_assert_lt(open, PT_DBW);
    cr_assert_eq(pt_block(&t, &ch, 3, 0, open, 300, 4242), 0);
    acked_t a = {&t, open};
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
