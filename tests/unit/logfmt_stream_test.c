/* logfmt: ls_gen_stream_* fed in pieces gives ls_gen_scan's verdicts and figures, and counts the
 * checks it computes (each record checksum once, each digested byte once). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/core.h"
#include "genbuild.h"
#include "harness.h"
#include "logfmt_test_util.h"

static int count_cb(void *ctx, const ls_record_t *r)
{
    uint64_t *sum = ctx;
    *sum += r->lsn;
    for (uint32_t i = 0; i < r->value_len; i++)
        *sum += r->value[i];
    return 0;
}

/* Feeds b in pieces cycling through sizes; returns ls_gen_stream_end's result. */
static int feed_pieces(ls_gen_stream_t *st, const ls_gen_expect_t *ex, unsigned flags,
                       const uint8_t *b, size_t len, const size_t *sizes, size_t nsizes,
                       uint64_t *sum, ls_gen_info_t *in, ls_gen_verdict_t *v)
{
    ls_gen_stream_begin(st, ex, flags);
    for (size_t off = 0, i = 0; off < len; i++) {
        size_t n = LS_MIN(sizes[i % nsizes], len - off);
        ls_gen_stream_feed(st, b + off, n, count_cb, sum);
        off += n;
    }
    return ls_gen_stream_end(st, in, v);
}

static const size_t SIZES[] = {1, 7, 31, 32, 33, 95, 96, 97, 4096, 65537, 300, 128};

Test(logfmt_stream, pieces_of_any_size_give_the_scan_s_figures_and_count_each_check_once)
{
    ls_h_gen_t *g = gen_of(LS_GEN_DEFAULT_SIZE);
    size_t len;
    const uint8_t *b = ls_h_gen_bytes(g, &len);
    ls_gen_stream_t *st = ls_gen_stream_new();
    cr_assert_not_null(st);
    uint64_t sum1 = 0, sum2 = 0;
    ls_gen_info_t i1, i2;
    ls_gen_verdict_t v1, v2;
    cr_assert_eq(ls_gen_scan(b, len, NULL, count_cb, &sum1, &i1, &v1), 0, "%s", v1.msg);
    cr_assert_eq(feed_pieces(st, NULL, 0, b, len, SIZES, LS_ARRAY_SIZE(SIZES), &sum2, &i2, &v2), 0,
                 "%s", v2.msg);
    cr_assert_eq(sum1, sum2, "the same records, in order, with the same bytes");
    cr_assert(i2.closed);
    cr_assert_eq(i2.record_count, ls_h_gen_count(g));
    cr_assert_arr_eq(i2.digest, ls_h_gen_digest(g), LS_DIGEST_SIZE);
    cr_assert_eq(i2.record_checksums, ls_h_gen_count(g), "each record checksum once");
    cr_assert_eq(i2.hashed, len - LS_GEN_TRAILER_SIZE, "each byte before the trailer hashed once");
    cr_assert_eq(i1.record_checksums, i2.record_checksums);

    /* Trusted with the digest known: the same walk, no checksum, nothing hashed. */
    ls_gen_expect_t ex = {.known_digest = ls_h_gen_digest(g)};
    uint64_t sum3 = 0;
    cr_assert_eq(feed_pieces(st, &ex, LS_GEN_STREAM_TRUSTED, b, len, SIZES + 3, 5, &sum3, &i2, &v2),
                 0, "%s", v2.msg);
    cr_assert_eq(sum3, sum1);
    cr_assert_eq(i2.record_checksums, 0);
    cr_assert_eq(i2.hashed, 0);
    cr_assert_eq(i2.last_lsn, i1.last_lsn);
    ls_gen_stream_free(st);
    ls_h_gen_free(g);
}

Test(logfmt_stream, damage_and_truncation_get_the_scan_s_verdict_in_pieces)
{
    ls_h_gen_t *g = gen_of(24 * 1024);
    size_t len;
    uint8_t *c = ls_h_gen_copy(g, &len);
    ls_gen_stream_t *st = ls_gen_stream_new();
    ls_gen_expect_t open = {.allow_open = true};
    const ls_gen_expect_t *modes[] = {NULL, &open};
    static const size_t pieces[] = {3, 40, 1000};
    /* Flip one bit at a spread of positions, then cut at a spread of lengths. */
    for (size_t pos = 0; pos < len; pos += 97) {
        for (int m = 0; m < 2; m++) {
            c[pos] ^= 0x10;
            size_t cut = pos % 3 == 0 ? len : pos + 1;
            uint64_t s1 = 0, s2 = 0;
            ls_gen_info_t i1, i2;
            ls_gen_verdict_t v1, v2;
            int r1 = ls_gen_scan(c, cut, modes[m], count_cb, &s1, &i1, &v1);
            int r2 = feed_pieces(st, modes[m], 0, c, cut, pieces + pos % 3, 1, &s2, &i2, &v2);
            c[pos] ^= 0x10;
            cr_assert_eq(r1, r2, "flip at %zu, cut at %zu: %s / %s", pos, cut, v1.msg, v2.msg);
            cr_assert_eq(v1.code, v2.code);
            cr_assert_eq(v1.offset, v2.offset);
            cr_assert_str_eq(v1.msg, v2.msg);
            cr_assert_eq(s1, s2);
            cr_assert_eq(i1.valid_end, i2.valid_end);
            cr_assert_eq(i1.commit_end, i2.commit_end);
            if (m == 0) cr_assert_neq(r1, 0, "a flip or a cut is always caught");
        }
    }
    /* Bytes after the trailer, fed separately. */
    ls_gen_verdict_t v;
    ls_gen_stream_begin(st, NULL, 0);
    cr_assert_eq(ls_gen_stream_feed(st, c, len, NULL, NULL), 0);
    cr_assert_eq(ls_gen_stream_feed(st, (const uint8_t *) "xy", 2, NULL, NULL), 0);
    cr_assert_eq(ls_gen_stream_end(st, NULL, &v), LS_EBADTRAILER);
    cr_assert(ls_h_contains(v.msg, "2 bytes follow it"), "%s", v.msg);
    ls_gen_stream_free(st);
    ls_gen_stream_free(NULL);
    free(c);
    ls_h_gen_free(g);
}

Test(logfmt_stream, a_record_larger_than_many_pieces_is_assembled_and_its_buffer_released)
{
    ls_h_gen_t *g = ls_h_gen_default(3, 1);
    size_t big = 3u * 1024 * 1024 + 17;
    uint8_t *val = malloc(big);
    for (size_t i = 0; i < big; i++)
        val[i] = (uint8_t) (i * 7);
    ls_h_gen_put(g, "big", 3, val, big);
    ls_h_gen_commit(g);
    ls_h_gen_close(g);
    size_t len;
    const uint8_t *b = ls_h_gen_bytes(g, &len);
    ls_gen_stream_t *st = ls_gen_stream_new();
    static const size_t piece[] = {65536};
    uint64_t s1 = 0, s2 = 0;
    ls_gen_info_t in;
    ls_gen_verdict_t v;
    cr_assert_eq(ls_gen_scan(b, len, NULL, count_cb, &s1, NULL, NULL), 0);
    cr_assert_eq(feed_pieces(st, NULL, 0, b, len, piece, 1, &s2, &in, &v), 0, "%s", v.msg);
    cr_assert_eq(s1, s2);
    cr_assert_eq(in.record_checksums, 2);
    cr_assert_arr_eq(in.digest, ls_h_gen_digest(g), LS_DIGEST_SIZE);
    /* The next generation on the same stream starts clean (the large buffer is let go). */
    ls_h_gen_t *g2 = gen_of(8192);
    const uint8_t *b2 = ls_h_gen_bytes(g2, &len);
    cr_assert_eq(feed_pieces(st, NULL, 0, b2, len, SIZES, LS_ARRAY_SIZE(SIZES), &s2, &in, &v), 0,
                 "%s", v.msg);
    cr_assert_eq(in.record_count, ls_h_gen_count(g2));
    ls_gen_stream_free(st);
    ls_h_gen_free(g2);
    ls_h_gen_free(g);
    free(val);
}
