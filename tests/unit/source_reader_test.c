/* source: the pipelined reader: order, waits, release as soon as handed out, bounded memory,
 * oversized and damaged generations, verification, gaps and broken chains (helpers in
 * source_test_util.h). */
#include "source_test_util.h"

/* ---- pipelined reader ---------------------------------------------------------------------- */
Test(source, reader_delivers_in_order_and_waits_for_new_generations)
{
    chain_t *c = chain_new();
    add_gens(c, 10, 1);
    ls_source_t *s = open_src(c);
    int notes = 0;
    ls_reader_t *r = NULL;
    cr_assert_eq(ls_reader_start(s, 3, NULL, notify, &notes, &r), 0);
    const ls_gen_buf_t *g;
    for (uint64_t want = 3; want <= 10; want++)
        take(c, r, want);
    wait_reader(r, waiting_gen, 11);
    cr_assert_eq(ls_reader_next(r, &g), LS_EBUSY);
    add_gens(c, 2, 1);
    rescan(s); /* wakes the thread */
    for (uint64_t want = 11; want <= 12; want++)
        take(c, r, want);
    cr_assert_geq(__atomic_load_n(&notes, __ATOMIC_SEQ_CST), 10);
    ls_reader_stats_t st;
    ls_reader_stats(r, &st);
    cr_assert_eq(st.delivered, 10);
    cr_assert_eq(st.buffered_gens, 0);
    cr_assert_eq(st.buffered_bytes, 0);
    cr_assert_leq(st.peak_gens, 2, "default bound of 2 generations");
    ls_reader_stop(r);
    ls_source_free(s);
    chain_free(c);
}

/* A consumer that takes and releases each generation the moment it is told (here inside the
 * notify callback, on the reader's own thread: the tightest race there is). A generation read
 * whole in one piece is handed out complete; the reader must not touch it after handing it out
 * (it did: ASan found a write to a released one in the demote test). */
typedef struct {
    pthread_mutex_t mu; /* the callback and the test's own first call */
    ls_reader_t *r;
    int taken;
    uint64_t last;
} eager_t;

static void eager(void *ctx)
{
    eager_t *e = ctx;
    const ls_gen_buf_t *g;
    pthread_mutex_lock(&e->mu);
    while (e->r && ls_reader_next(e->r, &g) == 0) {
        if (g->generation == e->last + 1 && ls_gen_buf_avail(g) == g->size) e->last++;
        ls_reader_release(e->r, g);
        __atomic_add_fetch(&e->taken, 1, __ATOMIC_SEQ_CST);
    }
    pthread_mutex_unlock(&e->mu);
}

static bool eager_done(void *ctx)
{
    return __atomic_load_n(&((eager_t *) ctx)->taken, __ATOMIC_SEQ_CST) >= 20;
}

Test(source, a_generation_released_as_soon_as_it_is_handed_out)
{
    chain_t *c = chain_new();
    add_gens(c, 20, 1);
    ls_source_t *s = open_src(c);
    static eager_t e; /* read by the reader's thread from the first callback on */
    e = (eager_t){.mu = PTHREAD_MUTEX_INITIALIZER};
    ls_reader_t *r = NULL;
    pthread_mutex_lock(&e.mu);
    cr_assert_eq(ls_reader_start(s, 1, NULL, eager, &e, &r), 0);
    e.r = r;
    pthread_mutex_unlock(&e.mu);
    eager(&e); /* what was handed out before e.r was set */
    cr_assert(ls_h_wait_for(eager_done, &e, 10000), "took %d of 20", e.taken);
    cr_assert_eq(e.last, 20, "in order and whole");
    ls_reader_stop(r);
    ls_source_free(s);
    chain_free(c);
}

Test(source, reader_memory_stays_bounded_with_a_backlog)
{
    chain_t *c = chain_new();
    for (int i = 0; i < 100; i++)
        add_gen(c, 1, 4, 4096); /* ~16.6 KiB each */
    ls_source_t *s = open_src(c);
    int notes = 0;
    /* Bound by count: 3 generations. */
    ls_reader_options_t o = {.max_gens = 3, .max_bytes = 1u << 20};
    ls_reader_t *r = NULL;
    cr_assert_eq(ls_reader_start(s, 1, &o, notify, &notes, &r), 0);
    wait_reader(r, waiting_space, 0);
    ls_reader_stats_t st;
    ls_reader_stats(r, &st);
    cr_assert_eq(st.buffered_gens, 3);
    cr_assert_eq(st.read, 3);
    cr_assert_eq(st.buffered_bytes, c->size[1] + c->size[2] + c->size[3]);
    ls_reader_stop(r); /* frees what was never consumed */

    /* Bound by bytes: room for two and a half generations, consumer holds what it takes. */
    o = (ls_reader_options_t){.max_gens = 100, .max_bytes = c->size[1] * 5 / 2};
    cr_assert_eq(ls_reader_start(s, 1, &o, notify, &notes, &r), 0);
    wait_reader(r, waiting_space, 0);
    ls_reader_stats(r, &st);
    cr_assert_eq(st.buffered_gens, 2);
    cr_assert_leq(st.buffered_bytes, o.max_bytes);
    const ls_gen_buf_t *held[2];
    cr_assert_eq(next_gen(r, &held[0]), 0);
    cr_assert_eq(next_gen(r, &held[1]), 0);
    ls_reader_stats(r, &st);
    cr_assert_eq(st.buffered_gens, 2, "handed out but not released still counts");
    cr_assert_eq(st.read, 2);
    ls_reader_release(r, held[1]); /* any order */
    ls_reader_release(r, held[0]);
    for (uint64_t want = 3; want <= 100; want++) {
        const ls_gen_buf_t *g;
        cr_assert_eq(next_gen(r, &g), 0, "%s", ls_reader_error(r));
        cr_assert_eq(g->generation, want);
        cr_assert_eq(memcmp(g->digest, c->digest[want], LS_DIGEST_SIZE), 0);
        ls_reader_release(r, g);
    }
    ls_reader_stats(r, &st);
    cr_assert_leq(st.peak_bytes, o.max_bytes);
    cr_assert_leq(st.peak_gens, 2);
    cr_assert_eq(st.read, 100);
    ls_reader_stop(r);
    ls_source_free(s);
    chain_free(c);
}

Test(source, reader_reads_an_oversized_generation_alone)
{
    chain_t *c = chain_new();
    add_gens(c, 4, 1);
    ls_source_t *s = open_src(c);
    int notes = 0;
    ls_reader_options_t o = {.max_gens = 10, .max_bytes = 100}; /* smaller than any generation */
    ls_reader_t *r = NULL;
    cr_assert_eq(ls_reader_start(s, 1, &o, notify, &notes, &r), 0);
    for (uint64_t want = 1; want <= 4; want++) {
        const ls_gen_buf_t *g;
        cr_assert_eq(next_gen(r, &g), 0, "%s", ls_reader_error(r));
        cr_assert_eq(g->generation, want);
        if (want < 4) wait_reader(r, waiting_space, 0);
        ls_reader_stats_t st;
        ls_reader_stats(r, &st);
        cr_assert_eq(st.buffered_gens, 1, "one at a time");
        ls_reader_release(r, g);
    }
    ls_reader_stats_t st;
    ls_reader_stats(r, &st);
    cr_assert_eq(st.peak_gens, 1);
    cr_assert_eq(st.peak_bytes, c->size[1]);
    cr_assert_geq(__atomic_load_n(&notes, __ATOMIC_SEQ_CST), 4);
    ls_reader_stop(r);
    ls_source_free(s);
    chain_free(c);
}

Test(source, reader_stops_on_a_damaged_generation)
{
    chain_t *c = chain_new();
    add_gens(c, 5, 1);
    damage(c, 3, LS_GEN_HEADER_SIZE + 40, 0x01); /* inside the first record */
    ls_source_t *s = open_src(c);
    int notes = 0;
    ls_reader_t *r = NULL;
    ls_reader_options_t o = {.max_gens = 8};
    cr_assert_eq(ls_reader_start(s, 1, &o, notify, &notes, &r), 0);
    wait_reader(r, failed, 0);
    const ls_gen_buf_t *g;
    for (uint64_t want = 1; want <= 2; want++) {
        cr_assert_eq(ls_reader_next(r, &g), 0, "the good ones before it are delivered");
        expect_gen(c, g, want);
        ls_reader_release(r, g);
    }
    int rc = ls_reader_next(r, &g);
    cr_assert_eq(rc, LS_ERECCKSUM, "%s", ls_err_name(rc));
    cr_assert(ls_h_contains(ls_reader_error(r), "generation 3"), "%s", ls_reader_error(r));
    cr_assert(ls_h_contains(ls_reader_error(r), "not shipped"), "%s", ls_reader_error(r));
    cr_assert_eq(ls_reader_next(r, &g), LS_ERECCKSUM, "sticky");
    ls_reader_stats_t st;
    ls_reader_stats(r, &st);
    cr_assert_eq(st.delivered, 2);
    cr_assert_eq(st.read, 2);
    cr_assert_eq(st.buffered_bytes, 0);
    ls_reader_stop(r);
    ls_source_free(s);
    chain_free(c);
}

static bool verified_cond(void *ctx)
{
    const ls_gen_buf_t *g = ctx;
    return ls_gen_buf_avail(g) == g->size;
}

/* A record changed and its checksum redone: damage only the digest sees (docs/SOURCE.md, "What
 * the active verifies"). By default the reader ships it, with its trailer's digest and nothing
 * hashed (the target computes the digest and asks again); verifying FULL, or that one generation
 * (full_gen: what ship asks after a target asked again for damage), finds it and stops there as
 * for any damaged generation. */
Test(source, reader_checks_the_digest_only_when_verifying_full)
{
    chain_t *c = chain_new();
    add_gens(c, 5, 1);
    char path[PATH_MAX];
    gen_path(c, 3, path, sizeof(path));
    size_t len;
    uint8_t *b = ls_h_read_file(path, &len);
    cr_assert_not_null(b);
    ls_h_gen_change_resealed(b, len, 0, 0x01);
    cr_assert_eq(ls_h_write_file(path, b, len), 0);
    ls_source_t *s = open_src(c);
    int notes = 0;
    ls_reader_t *r = NULL;
    const ls_gen_buf_t *g;
    ls_reader_stats_t st;

    cr_assert_eq(ls_reader_start(s, 1, NULL, notify, &notes, &r), 0);
    for (uint64_t want = 1; want <= 5; want++) {
        cr_assert_eq(next_gen(r, &g), 0, "%s", ls_reader_error(r));
        cr_assert(ls_h_wait_for(verified_cond, (void *) g, 10000));
        cr_assert_eq(g->generation, want);
        cr_assert_eq(memcmp(g->digest, c->digest[want], LS_DIGEST_SIZE), 0, "the trailer's");
        if (want == 3) cr_assert_eq(memcmp(g->bytes, b, len), 0, "the changed bytes go");
        ls_reader_release(r, g);
    }
    ls_reader_stats(r, &st);
    cr_assert_eq(st.read, 5);
    cr_assert_eq(st.hashed, 0, "no SHA-256 by default");
    ls_reader_stop(r);

    ls_reader_options_t o = {.verify = LS_READER_VERIFY_FULL, .max_gens = 8};
    cr_assert_eq(ls_reader_start(s, 1, &o, notify, &notes, &r), 0);
    wait_reader(r, failed, 0);
    for (uint64_t want = 1; want <= 2; want++)
        take(c, r, want);
    int rc = ls_reader_next(r, &g);
    cr_assert_eq(rc, LS_EDIGEST, "%s", ls_err_name(rc));
    const char *why = ls_reader_error(r);
    cr_assert(ls_h_contains(why, "generation 3") && ls_h_contains(why, "not shipped") &&
                  ls_h_contains(why, "digest mismatch"),
              "%s", why);
    ls_reader_stats(r, &st);
    cr_assert_eq(st.hashed, 2);
    ls_reader_stop(r);

    o = (ls_reader_options_t){.full_gen = 3}; /* asked again for 3 after damage */
    cr_assert_eq(ls_reader_start(s, 3, &o, notify, &notes, &r), 0);
    cr_assert_eq(next_gen(r, &g), LS_EDIGEST, "%s", ls_reader_error(r));
    cr_assert(ls_h_contains(ls_reader_error(r), "generation 3"), "%s", ls_reader_error(r));
    ls_reader_stop(r);

    o = (ls_reader_options_t){.full_gen = 4}; /* an intact one: hashed, and only that one */
    cr_assert_eq(ls_reader_start(s, 4, &o, notify, &notes, &r), 0);
    take(c, r, 4);
    take(c, r, 5);
    ls_reader_stats(r, &st);
    cr_assert_eq(st.hashed, 1);
    ls_reader_stop(r);
    free(b);
    ls_source_free(s);
    chain_free(c);
}

/* Stream while verifying: a generation larger than one read piece is handed out after its first
 * piece passed, grows as a prefix of the file, and is complete (digest and all) at its size. */
Test(source, reader_hands_out_a_large_generation_while_verifying_it)
{
    chain_t *c = chain_new();
    add_gen(c, 1, 900, 1000); /* ~0.9 MB: several pieces */
    add_gens(c, 1, 1);
    cr_assert_gt(c->size[1], 3 * 256 * 1024);
    ls_source_t *s = open_src(c);
    int notes = 0;
    ls_reader_t *r = NULL;
    cr_assert_eq(ls_reader_start(s, 1, NULL, notify, &notes, &r), 0);
    const ls_gen_buf_t *g;
    cr_assert_eq(next_gen(r, &g), 0, "%s", ls_reader_error(r));
    cr_assert_eq(g->generation, 1);
    cr_assert_eq(g->size, c->size[1]);
    cr_assert_eq(g->close_ns, BASE_NS + SEC, "known before the bytes: GEN_BEGIN carries it");
    uint64_t seen = ls_gen_buf_avail(g);
    cr_assert_gt(seen, 0);
    char path[PATH_MAX];
    gen_path(c, 1, path, sizeof(path));
    size_t len;
    uint8_t *disk = ls_h_read_file(path, &len);
    cr_assert_eq(memcmp(disk, g->bytes, seen), 0, "what is available is the file's prefix");
    free(disk);
    cr_assert(ls_h_wait_for(verified_cond, (void *) g, 10000), "never verified whole");
    expect_gen(c, g, 1);
    ls_reader_release(r, g);
    take(c, r, 2);
    ls_reader_stop(r);
    ls_source_free(s);
    chain_free(c);
}

/* Ship releases the generation it is sending when it stops the reader, possibly while the
 * reader's thread still reads into it: the thread frees it once done (under ASan a free too
 * early is a use after free), and the reader stops promptly. */
Test(source, releasing_a_generation_still_being_verified_then_stopping_is_safe)
{
    chain_t *c = chain_new();
    add_gen(c, 1, 6000, 1000); /* ~6 MB: many pieces */
    ls_source_t *s = open_src(c);
    for (int round = 0; round < 3; round++) {
        int notes = 0;
        ls_reader_t *r = NULL;
        cr_assert_eq(ls_reader_start(s, 1, NULL, notify, &notes, &r), 0);
        const ls_gen_buf_t *g;
        cr_assert_eq(next_gen(r, &g), 0, "%s", ls_reader_error(r));
        cr_assert_eq(g->generation, 1);
        uint64_t seen = ls_gen_buf_avail(g);
        cr_assert(seen > 0 && seen <= g->size);
        ls_reader_release(r, g);
        ls_reader_stop(r);
    }
    ls_source_free(s);
    chain_free(c);
}

/* Damage past the first piece: the reader fails there; a generation it had queued but not
 * handed out is withdrawn (never delivered); the good one before it is. */
Test(source, reader_withdraws_a_generation_damaged_past_its_first_piece)
{
    chain_t *c = chain_new();
    add_gens(c, 1, 1);
    add_gen(c, 1, 900, 1000);
    damage(c, 2, -(long) (LS_GEN_TRAILER_SIZE + 500), 0x01); /* inside the last record */
    ls_source_t *s = open_src(c);
    int notes = 0;
    ls_reader_t *r = NULL;
    ls_reader_options_t o = {.max_gens = 8};
    cr_assert_eq(ls_reader_start(s, 1, &o, notify, &notes, &r), 0);
    wait_reader(r, failed, 0);
    const ls_gen_buf_t *g;
    cr_assert_eq(ls_reader_next(r, &g), 0);
    expect_gen(c, g, 1);
    ls_reader_release(r, g);
    int rc = ls_reader_next(r, &g);
    cr_assert_eq(rc, LS_ERECCKSUM, "%s", ls_err_name(rc));
    cr_assert(ls_h_contains(ls_reader_error(r), "generation 2"), "%s", ls_reader_error(r));
    ls_reader_stats_t st;
    ls_reader_stats(r, &st);
    cr_assert_eq(st.delivered, 1);
    cr_assert_eq(st.buffered_bytes, 0, "the damaged one's bytes are given back");
    ls_reader_stop(r);
    ls_source_free(s);
    chain_free(c);
}

Test(source, reader_stops_at_a_gap_and_on_a_broken_chain)
{
    chain_t *c = chain_new();
    add_gens(c, 5, 1);
    char path[PATH_MAX];
    gen_path(c, 3, path, sizeof(path));
    cr_assert_eq(unlink(path), 0);
    ls_source_t *s = open_src(c);
    int notes = 0;
    ls_reader_t *r = NULL;
    cr_assert_eq(ls_reader_start(s, 1, NULL, notify, &notes, &r), 0);
    const ls_gen_buf_t *g;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(next_gen(r, &g), 0, "%s", ls_reader_error(r));
        ls_reader_release(r, g);
    }
    cr_assert_eq(next_gen(r, &g), LS_EGAP);
    cr_assert(ls_h_contains(ls_reader_error(r), "generation 3 is missing"), "%s",
              ls_reader_error(r));
    ls_reader_stop(r);

    /* The target's digest (from the plan) must be what generation 4 chains to. */
    uint8_t wrong[LS_DIGEST_SIZE] = {1};
    ls_reader_options_t o = {.prev_digest = wrong};
    cr_assert_eq(ls_reader_start(s, 4, &o, notify, &notes, &r), 0);
    cr_assert_eq(next_gen(r, &g), LS_ELINEAGE);
    cr_assert(ls_h_contains(ls_reader_error(r), "generation 4"), "%s", ls_reader_error(r));
    ls_reader_stop(r);
    ls_source_free(s);
    chain_free(c);
}
