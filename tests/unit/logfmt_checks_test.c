/* logfmt: ls_gen_scan's checks of each record type's fields, unknown flags and bad trailers,
 * the trailer's own decode, garbage and oversize lengths (no crash), the callback stopping the
 * scan, names (round trip, malformed ones refused), ls_gen_scan_file naming its path. Split
 * from logfmt_test.c; builders in logfmt_test_util.h. */

#include <criterion/criterion.h>

#include "logfmt_test_util.h"

Test(logfmt, record_fields_are_checked_per_type)
{
    ls_gen_verdict_t v;
    static uint8_t big[LS_KEY_MAX + 1];
    ls_record_t cases[][2] = {
        {{.type = 9, .lsn = 1, .txid = 1, K("a")}},
        {{.type = LS_REC_PUT, .lsn = 1, .txid = 1}},
        {{.type = LS_REC_PUT, .lsn = 1, .txid = 1, .key = big, .key_len = sizeof(big)}},
        {{.type = LS_REC_DEL, .lsn = 1, .txid = 1}},
        {{.type = LS_REC_DEL, .lsn = 1, .txid = 1, K("a"), .value = big, .value_len = 1}},
        {{.type = LS_REC_COMMIT, .lsn = 1, .txid = 1, K("a")}},
        {{.type = LS_REC_COMMIT, .lsn = 1, .txid = 1, .value = big, .value_len = 3}},
    };
    for (size_t i = 0; i < LS_ARRAY_SIZE(cases); i++) {
        cases[i][1] = (ls_record_t){.type = LS_REC_COMMIT, .lsn = 2, .txid = 1};
        cr_assert_eq(scan_raw(cases[i], 2, 0, &v), LS_EBADRECORD, "case %zu: %s", i, v.msg);
    }
    ls_record_t max[] = {
        {.type = LS_REC_PUT, .lsn = 1, .txid = 1, .key = big, .key_len = LS_KEY_MAX},
        {.type = LS_REC_COMMIT, .lsn = 2, .txid = 1}};
    cr_assert_eq(scan_raw(max, 2, 0, &v), 0, "a key of LS_KEY_MAX bytes is valid: %s", v.msg);
}

Test(logfmt, unknown_flags_and_bad_trailers_are_rejected)
{
    ls_h_gen_t *g = small_gen(true);
    size_t len;
    uint8_t *b = ls_h_gen_copy(g, &len);
    uint64_t seed = ls_h_gen_seed(g);
    size_t r0 = ls_h_gen_offset(g, 0), t = len - LS_GEN_TRAILER_SIZE;
    ls_gen_verdict_t v;
    b[r0 + 9] = 1;
    reseal(b, r0, ls_get32(b + r0 + 4), seed);
    cr_assert_eq(scan(b, len, NULL, NULL, &v), LS_EBADRECORD);
    cr_assert(ls_h_contains(v.msg, "flags"), "%s", v.msg);
    free(b);
    /* Trailer count, then trailing bytes, then a trailer that ends nothing. */
    b = ls_h_gen_copy(g, &len);
    ls_put64(b + t + 16, 4);
    reseal(b, t, LS_GEN_TRAILER_SIZE, seed);
    cr_assert_eq(scan(b, len, NULL, NULL, &v), LS_EBADTRAILER);
    cr_assert_eq(v.offset, t);
    free(b);
    b = ls_h_gen_copy(g, &len);
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, b, len);
    longer[len] = 0;
    cr_assert_eq(scan(longer, len + 1, NULL, NULL, &v), LS_EBADTRAILER, "bytes after trailer");
    cr_assert(ls_h_contains(v.msg, "1 bytes follow"), "%s", v.msg);
    free(longer);
    /* A trailer with a valid checksum but a wrong magic. */
    b[t + 80] ^= 1;
    reseal(b, t, LS_GEN_TRAILER_SIZE, seed);
    cr_assert_eq(scan(b, len, NULL, NULL, &v), LS_EBADTRAILER);
    cr_assert(ls_h_contains(v.msg, "malformed"), "%s", v.msg);
    b[t + 80] ^= 1;
    /* A forged digest with a valid trailer checksum is a digest error. */
    b[t + 48] ^= 1;
    reseal(b, t, LS_GEN_TRAILER_SIZE, seed);
    cr_assert_eq(scan(b, len, NULL, NULL, &v), LS_EDIGEST);
    cr_assert_eq(v.offset, t);
    free(b);
    ls_h_gen_free(g);
}

Test(logfmt, trailer_decode_validates_without_the_records)
{
    ls_h_gen_t *g = small_gen(true);
    size_t len;
    uint8_t *b = ls_h_gen_copy(g, &len);
    uint8_t *t = b + len - LS_GEN_TRAILER_SIZE;
    uint64_t seed = ls_h_gen_seed(g);
    ls_gen_trailer_t tr;
    cr_assert_eq(ls_gen_trailer_decode(t, LS_GEN_TRAILER_SIZE, seed, &tr), 0);
    cr_assert_eq(tr.record_count, 5);
    cr_assert_eq(tr.last_lsn, 104);
    cr_assert_eq(tr.payload_len, len - LS_GEN_HEADER_SIZE - LS_GEN_TRAILER_SIZE);
    cr_assert_eq(tr.close_ns, LS_H_GEN_CLOSE_NS);
    cr_assert_arr_eq(tr.digest, ls_h_gen_digest(g), LS_DIGEST_SIZE);
    cr_assert_eq(ls_gen_trailer_decode(t, LS_GEN_TRAILER_SIZE - 1, seed, &tr), LS_ETRUNCATED);
    cr_assert_eq(ls_gen_trailer_decode(t, LS_GEN_TRAILER_SIZE, seed + 1, &tr), LS_EBADTRAILER,
                 "another generation's seed");
    t[88] = 1;
    reseal(b, len - LS_GEN_TRAILER_SIZE, LS_GEN_TRAILER_SIZE, seed);
    cr_assert_eq(ls_gen_trailer_decode(t, LS_GEN_TRAILER_SIZE, seed, &tr), LS_EBADTRAILER,
                 "reserved field");
    free(b);
    ls_h_gen_free(g);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

Test(logfmt, garbage_and_oversize_lengths_do_not_crash)
{
    ls_h_gen_t *g = small_gen(false);
    size_t hlen;
    const uint8_t *h = ls_h_gen_bytes(g, &hlen);
    uint8_t *b = malloc(4096);
    memcpy(b, h, LS_GEN_HEADER_SIZE);
    uint32_t lens[] = {0, 1, 31, 33, 0xffffffffu, LS_GEN_HARD_CAP + 1u, 4096, 0x80000000u};
    ls_gen_verdict_t v;
    ls_gen_expect_t open = {.allow_open = true};
    for (size_t i = 0; i < LS_ARRAY_SIZE(lens); i++) {
        memset(b + LS_GEN_HEADER_SIZE, 0, 64);
        ls_put32(b + LS_GEN_HEADER_SIZE + 4, lens[i]);
        ls_put16(b + LS_GEN_HEADER_SIZE + 10, 0xffff);
        ls_put32(b + LS_GEN_HEADER_SIZE + 12, 0xffffffffu);
        b[LS_GEN_HEADER_SIZE + 8] = LS_REC_PUT;
        int rc = scan(b, LS_GEN_HEADER_SIZE + 64, NULL, NULL, &v);
        cr_assert(rc == LS_EBADRECORD || rc == LS_ETRUNCATED, "length %u: %s", lens[i], v.msg);
        cr_assert_eq(v.offset, LS_GEN_HEADER_SIZE);
    }
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = LS_GEN_HEADER_SIZE + rng() % 1024;
        for (size_t i = LS_GEN_HEADER_SIZE; i < n; i++)
            b[i] = (uint8_t) rng();
        if (iter & 1) b[LS_GEN_HEADER_SIZE + 8] = LS_REC_TRAILER;
        /* Exact-sized heap copy so that any over-read would hit the allocator's guard (ASan). */
        uint8_t *c = malloc(n);
        memcpy(c, b, n);
        cr_assert_neq(scan(c, n, NULL, NULL, &v), 0);
        cr_assert_eq(scan(c, n, &open, NULL, &v), 0);
        free(c);
    }
    free(b);
    ls_h_gen_free(g);
}

static int stop_at_second(void *ctx, const ls_record_t *r)
{
    (void) r;
    return ++*(int *) ctx == 2 ? 7 : 0;
}

Test(logfmt, callback_return_stops_the_scan)
{
    ls_h_gen_t *g = small_gen(true);
    size_t len;
    const uint8_t *b = ls_h_gen_bytes(g, &len);
    int calls = 0;
    ls_gen_verdict_t v;
    ls_gen_info_t in;
    cr_assert_eq(ls_gen_scan(b, len, NULL, stop_at_second, &calls, &in, &v), 7);
    cr_assert_eq(calls, 2);
    cr_assert_eq(v.code, 0);
    cr_assert_eq(in.record_count, 2);
    ls_h_gen_free(g);
}

Test(logfmt, names_round_trip_and_malformed_names_are_rejected)
{
    char name[LS_GEN_NAME_MAX];
    cr_assert_eq(ls_gen_name(name, sizeof(name), "E00", 1, 42), 0);
    cr_assert_str_eq(name, "E00-00000001-000000000000002a.log");
    uint32_t e;
    uint64_t gen;
    cr_assert_eq(ls_gen_name_parse(name, "E00", &e, &gen), 0);
    cr_assert_eq(e, 1);
    cr_assert_eq(gen, 42);
    cr_assert_eq(ls_gen_name(name, sizeof(name), "PREFIX0123456789", 0xffffffffu, UINT64_MAX), 0);
    cr_assert_eq(ls_gen_name_parse(name, "PREFIX0123456789", &e, &gen), 0);
    cr_assert_eq(e, 0xffffffffu);
    cr_assert_eq(gen, UINT64_MAX);
    const char *bad[] = {
        "E00-00000001-000000000000002A.log", /* uppercase hex */
        "E00-00000001-00000000000002a.log",  /* 15 digits */
        "E00-0000001-000000000000002a.log",  /* 7 digits */
        "E01-00000001-000000000000002a.log", /* other prefix */
        "E00-00000001-000000000000002a.lo",
        "E00-00000001-000000000000002a.log.part",
        "E00_00000001-000000000000002a.log",
        "E00-00000001_000000000000002a.log",
        "E00-0000000g-000000000000002a.log",
        "E00.log",
        "",
        "xE00-00000001-000000000000002a.log",
    };
    for (size_t i = 0; i < LS_ARRAY_SIZE(bad); i++)
        cr_assert_eq(ls_gen_name_parse(bad[i], "E00", &e, &gen), LS_EINVAL, "%s", bad[i]);
    cr_assert_eq(ls_gen_name(name, sizeof(name), "E-0", 1, 1), LS_EINVAL);
    cr_assert_eq(ls_gen_name(name, sizeof(name), "a/b", 1, 1), LS_EINVAL);
    cr_assert_eq(ls_gen_name(name, sizeof(name), "", 1, 1), LS_EINVAL);
    cr_assert_eq(ls_gen_name(name, sizeof(name), "PREFIX01234567890", 1, 1), LS_EINVAL);
    cr_assert_eq(ls_gen_name(name, 10, "E00", 1, 1), LS_EINVAL, "buffer too small");
}

Test(logfmt, scan_file_reads_and_names_the_path)
{
    char *dir = ls_h_tmpdir("logfmt");
    char path[1024];
    ls_h_gen_t *g = small_gen_file(dir, "E00-00000001-000000000000002a.log", path, sizeof(path));
    ls_gen_info_t in;
    ls_gen_verdict_t v;
    cr_assert_eq(ls_gen_scan_file(path, NULL, NULL, NULL, &in, &v), 0, "%s", v.msg);
    cr_assert_eq(in.record_count, 5);
    snprintf(path, sizeof(path), "%s/missing.log", dir);
    cr_assert_eq(ls_gen_scan_file(path, NULL, NULL, NULL, &in, &v), LS_ENOENT);
    cr_assert(ls_h_contains(v.msg, path), "%s", v.msg);
    ls_h_gen_free(g);
    ls_h_rmtree_free(dir);
}
