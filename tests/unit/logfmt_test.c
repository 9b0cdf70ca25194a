/* logfmt: encoders, ls_gen_scan's verdicts (bit flips, truncation, lineage, records), names. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/core.h"
#include "genbuild.h"
#include "harness.h"

/* A small generation: 42, first LSN 100, two transactions (PUT, DEL, COMMIT; PUT, COMMIT). */
static ls_h_gen_t *small_gen(bool close)
{
    ls_h_gen_spec_t spec;
    ls_h_gen_spec_default(&spec, 42, 100);
    ls_h_gen_t *g = ls_h_gen_new(&spec);
    ls_h_gen_put(g, "alpha", 5, "hello", 5);
    ls_h_gen_del(g, "beta", 4);
    ls_h_gen_commit(g);
    ls_h_gen_put(g, "\x01\x02", 2, "", 0);
    ls_h_gen_commit(g);
    if (close) ls_h_gen_close(g);
    return g;
}

static int scan(const uint8_t *b, size_t n, const ls_gen_expect_t *ex, ls_gen_info_t *in,
                ls_gen_verdict_t *v)
{
    return ls_gen_scan(b, n, ex, NULL, NULL, in, v);
}

typedef struct {
    ls_record_t r[16];
    uint8_t data[16][64];
    int n;
} seen_t;

static int collect(void *ctx, const ls_record_t *r)
{
    seen_t *s = ctx;
    cr_assert_lt(s->n, 16);
    s->r[s->n] = *r;
    cr_assert_leq(r->key_len + r->value_len, 64);
    memcpy(s->data[s->n], r->key, r->key_len);
    memcpy(s->data[s->n] + r->key_len, r->value, r->value_len);
    s->n++;
    return 0;
}

Test(logfmt, round_trip_every_record_type)
{
    ls_h_gen_t *g = small_gen(true);
    size_t len;
    const uint8_t *b = ls_h_gen_bytes(g, &len);
    seen_t seen = {0};
    ls_gen_info_t in;
    ls_gen_verdict_t v;
    cr_assert_eq(ls_gen_scan(b, len, NULL, collect, &seen, &in, &v), 0, "%s", v.msg);
    cr_assert_eq(seen.n, 5);
    const uint8_t types[] = {LS_REC_PUT, LS_REC_DEL, LS_REC_COMMIT, LS_REC_PUT, LS_REC_COMMIT};
    const uint64_t txids[] = {1, 1, 1, 2, 2};
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(seen.r[i].type, types[i], "record %d", i);
        cr_assert_eq(seen.r[i].lsn, 100 + (uint64_t) i);
        cr_assert_eq(seen.r[i].txid, txids[i]);
    }
    cr_assert_eq(seen.r[0].key_len, 5);
    cr_assert_eq(seen.r[0].value_len, 5);
    cr_assert_arr_eq(seen.data[0], "alphahello", 10);
    cr_assert_eq(seen.r[1].key_len, 4);
    cr_assert_eq(seen.r[1].value_len, 0);
    cr_assert_arr_eq(seen.data[1], "beta", 4);
    cr_assert_eq(seen.r[2].key_len + seen.r[2].value_len, 0);
    cr_assert_arr_eq(seen.data[3], "\x01\x02", 2);
    cr_assert(in.header_ok && in.closed);
    cr_assert_eq(in.header.generation, 42);
    cr_assert_eq(in.header.epoch, 1);
    cr_assert_eq(in.header.first_lsn, 100);
    cr_assert_eq(in.header.create_ns, LS_H_GEN_CREATE_NS);
    cr_assert_eq(in.record_count, 5);
    cr_assert_eq(in.commit_count, 2);
    cr_assert_eq(in.last_lsn, 104);
    cr_assert_eq(in.last_txid, 2);
    cr_assert_eq(in.commit_end, len - LS_GEN_TRAILER_SIZE);
    cr_assert_eq(in.trailer.record_count, 5);
    cr_assert_eq(in.trailer.last_lsn, 104);
    cr_assert_eq(in.trailer.payload_len, len - LS_GEN_HEADER_SIZE - LS_GEN_TRAILER_SIZE);
    cr_assert_eq(in.trailer.close_ns, LS_H_GEN_CLOSE_NS);
    uint8_t d[32];
    ls_sha256(b, len - LS_GEN_TRAILER_SIZE, d);
    cr_assert_arr_eq(in.digest, d, 32, "digest is SHA-256 of header + records");
    cr_assert_arr_eq(in.digest, ls_h_gen_digest(g), 32);
    ls_h_gen_free(g);
}

Test(logfmt, header_layout_and_decode)
{
    ls_gen_header_t h = {.epoch = 7, .generation = 0x2a, .first_lsn = 9, .create_ns = 5};
    memset(h.dbid, 0xab, sizeof(h.dbid));
    memset(h.prev_digest, 0xcd, sizeof(h.prev_digest));
    uint8_t b[LS_GEN_HEADER_SIZE];
    ls_gen_header_encode(&h, b);
    cr_assert_arr_eq(b, LS_GEN_MAGIC, 8);
    cr_assert_eq(ls_get16(b + 8), 1);
    cr_assert_eq(ls_get16(b + 10), 128);
    cr_assert_eq(ls_get32(b + 32), 7);
    cr_assert_eq(ls_get64(b + 40), 0x2a);
    cr_assert_eq(ls_get32(b + 124), ls_cksum32(b, 124, 0));
    ls_gen_header_t out;
    cr_assert_eq(ls_gen_header_decode(b, sizeof(b), &out), 0);
    cr_assert_eq(memcmp(&out, &h, sizeof(h)), 0);
    cr_assert_eq(ls_gen_header_decode(b, 127, &out), LS_ETRUNCATED);
    /* Fields that a valid checksum does not excuse. */
    struct {
        size_t off;
        uint8_t val;
        int code;
    } cases[] = {{0, 'X', LS_EBADMAGIC},  {8, 2, LS_EBADVERSION}, {10, 64, LS_EBADVERSION},
                 {12, 1, LS_EBADVERSION}, {36, 1, LS_ECORRUPT},   {100, 1, LS_ECORRUPT},
                 {32 + 0, 0, LS_ECORRUPT}};
    for (size_t i = 0; i < LS_ARRAY_SIZE(cases); i++) {
        uint8_t c[LS_GEN_HEADER_SIZE];
        memcpy(c, b, sizeof(c));
        c[cases[i].off] = cases[i].val;
        ls_put32(c + 124, ls_cksum32(c, 124, 0));
        cr_assert_eq(ls_gen_header_decode(c, sizeof(c), &out), cases[i].code, "case %zu", i);
    }
    h.generation = 0;
    ls_gen_header_encode(&h, b);
    cr_assert_eq(ls_gen_header_decode(b, sizeof(b), &out), LS_ECORRUPT, "generation 0");
}

/* The structure a byte belongs to: 0 for the header, the record's or the trailer's offset. */
static size_t owner(const ls_h_gen_t *g, size_t len, size_t pos)
{
    if (pos < LS_GEN_HEADER_SIZE) return 0;
    if (pos >= len - LS_GEN_TRAILER_SIZE) return len - LS_GEN_TRAILER_SIZE;
    size_t o = LS_GEN_HEADER_SIZE;
    for (size_t i = 0; i < ls_h_gen_count(g) && ls_h_gen_offset(g, i) <= pos; i++)
        o = ls_h_gen_offset(g, i);
    return o;
}

Test(logfmt, every_single_bit_flip_is_detected_at_its_structure)
{
    ls_h_gen_t *g = small_gen(true);
    size_t len;
    uint8_t *b = ls_h_gen_copy(g, &len);
    for (size_t pos = 0; pos < len; pos++) {
        for (int bit = 0; bit < 8; bit++) {
            b[pos] ^= (uint8_t) (1u << bit);
            ls_gen_verdict_t v;
            int rc = scan(b, len, NULL, NULL, &v);
            b[pos] ^= (uint8_t) (1u << bit);
            size_t want = owner(g, len, pos);
            cr_assert_neq(rc, 0, "flip of bit %d at %zu undetected", bit, pos);
            cr_assert_eq(rc, v.code);
            cr_assert_eq(v.offset, want, "flip at %zu: offset %llu, want %zu (%s)", pos,
                         (unsigned long long) v.offset, want, v.msg);
            bool data =
                pos >= want + LS_REC_HEADER_SIZE && want > 0 && want < len - LS_GEN_TRAILER_SIZE;
            if (data) cr_assert_eq(rc, LS_ERECCKSUM, "flip in key/value at %zu: %s", pos, v.msg);
        }
    }
    free(b);
    ls_h_gen_free(g);
}

Test(logfmt, record_checksum_message_names_offset_and_values)
{
    ls_h_gen_t *g = small_gen(true);
    size_t len;
    uint8_t *b = ls_h_gen_copy(g, &len);
    size_t off = ls_h_gen_offset(g, 1);
    uint32_t stored = ls_get32(b + off) ^ 1;
    ls_put32(b + off, stored);
    ls_gen_verdict_t v;
    cr_assert_eq(scan(b, len, NULL, NULL, &v), LS_ERECCKSUM);
    char want[128];
    snprintf(want, sizeof(want),
             "record at offset %zu: checksum mismatch (stored 0x%08x, computed 0x%08x)", off,
             stored, stored ^ 1);
    cr_assert_str_eq(v.msg, want);
    free(b);
    ls_h_gen_free(g);
}

Test(logfmt, truncation_at_every_length)
{
    ls_h_gen_t *g = small_gen(true);
    size_t len;
    const uint8_t *b = ls_h_gen_bytes(g, &len);
    /* Ends of the whole transactions: after record 2 (first COMMIT) and record 4. */
    size_t end1 = ls_h_gen_offset(g, 3), end2 = len - LS_GEN_TRAILER_SIZE;
    ls_gen_expect_t open = {.allow_open = true};
    for (size_t n = 0; n < len; n++) {
        ls_gen_info_t in;
        ls_gen_verdict_t v;
        int rc = scan(b, n, NULL, &in, &v);
        cr_assert(rc == LS_ETRUNCATED || rc == LS_ENOTRAILER, "length %zu: %s", n, v.msg);
        if (rc == LS_ENOTRAILER) cr_assert_eq(v.offset, n);
        rc = scan(b, n, &open, &in, &v);
        if (n < LS_GEN_HEADER_SIZE) {
            cr_assert_eq(rc, LS_ETRUNCATED, "a torn header is an error even for an open log");
            continue;
        }
        cr_assert_eq(rc, 0, "open scan of %zu bytes: %s", n, v.msg);
        cr_assert(!in.closed);
        size_t want = n >= end2 ? end2 : n >= end1 ? end1 : LS_GEN_HEADER_SIZE;
        cr_assert_eq(in.commit_end, want, "length %zu: commit_end %llu, want %zu", n,
                     (unsigned long long) in.commit_end, want);
        cr_assert_eq(in.commit_lsn, want == end2 ? 104 : want == end1 ? 102 : 99);
        cr_assert_eq(in.last_txid, want == end2 ? 2 : want == end1 ? 1 : 0);
        cr_assert_leq(in.commit_end, in.valid_end);
        cr_assert_leq(in.valid_end, n);
    }
    ls_gen_info_t in;
    cr_assert_eq(scan(b, len, &open, &in, NULL), 0);
    cr_assert(in.closed, "a closed generation scanned as open is reported closed");
    ls_h_gen_free(g);
}

Test(logfmt, expectations_are_checked)
{
    ls_h_gen_spec_t spec;
    ls_h_gen_spec_default(&spec, 1, 1);
    static const ls_h_op_t ops[] = {{LS_REC_PUT, "k", "v"}};
    const ls_h_txn_t txn = {ops, 1};
    uint8_t d1[32], d2[32];
    size_t len1, len2;
    uint8_t *g1 = ls_h_gen_build(&spec, &txn, 1, &len1, d1);
    spec.generation = 2;
    spec.first_lsn = 3;
    spec.prev_digest = d1;
    spec.first_txid = 2;
    uint8_t *g2 = ls_h_gen_build(&spec, &txn, 1, &len2, d2);
    ls_gen_verdict_t v;
    ls_gen_expect_t ex = {
        .dbid = spec.dbid, .epoch = 1, .generation = 2, .first_lsn = 3, .prev_digest = d1};
    cr_assert_eq(scan(g2, len2, &ex, NULL, &v), 0, "%s", v.msg);
    uint8_t other[16] = {9};
    ls_gen_expect_t bad = ex;
    bad.dbid = other;
    cr_assert_eq(scan(g2, len2, &bad, NULL, &v), LS_EDBID);
    cr_assert(ls_h_contains(v.msg, "database id 000102"), "%s", v.msg);
    bad = ex;
    bad.prev_digest = d2;
    cr_assert_eq(scan(g2, len2, &bad, NULL, &v), LS_ELINEAGE, "chain must hold");
    cr_assert_eq(v.offset, 0);
    bad = ex;
    bad.generation = 3;
    cr_assert_eq(scan(g2, len2, &bad, NULL, &v), LS_EGAP);
    cr_assert(ls_h_contains(v.msg, "generation 2, expected 3"), "%s", v.msg);
    bad = ex;
    bad.epoch = 2;
    cr_assert_eq(scan(g2, len2, &bad, NULL, &v), LS_ELINEAGE);
    bad = ex;
    bad.first_lsn = 4;
    cr_assert_eq(scan(g2, len2, &bad, NULL, &v), LS_ELSNORDER);
    bad = ex;
    bad.known_digest = d2;
    cr_assert_eq(scan(g2, len2, &bad, NULL, &v), 0, "known digest is used instead of hashing");
    bad.known_digest = d1;
    cr_assert_eq(scan(g2, len2, &bad, NULL, &v), LS_EDIGEST);
    cr_assert_eq(v.offset, len2 - LS_GEN_TRAILER_SIZE);
    ls_gen_expect_t ex1 = {.generation = 1};
    cr_assert_eq(scan(g1, len1, &ex1, NULL, &v), 0);
    free(g1);
    free(g2);
}

Test(logfmt, record_from_another_generation_is_rejected)
{
    ls_h_gen_spec_t spec;
    ls_h_gen_spec_default(&spec, 42, 100);
    ls_h_gen_t *g = ls_h_gen_new(&spec);
    ls_h_gen_put(g, "a", 1, "x", 1);
    ls_h_gen_commit(g);
    /* Same LSN and txid that would follow, but sealed with generation 41's seed. */
    ls_record_t stale = {.type = LS_REC_PUT,
                         .lsn = 102,
                         .txid = 2,
                         .key = (const uint8_t *) "b",
                         .key_len = 1,
                         .value = (const uint8_t *) "y",
                         .value_len = 1};
    size_t off = ls_h_gen_offset(g, 1) + LS_REC_HEADER_SIZE;
    ls_h_gen_raw(g, &stale, ls_gen_seed(spec.dbid, 1, 41));
    ls_record_t commit = {.type = LS_REC_COMMIT, .lsn = 103, .txid = 2};
    ls_h_gen_raw(g, &commit, 0);
    ls_h_gen_close(g);
    size_t len;
    const uint8_t *b = ls_h_gen_bytes(g, &len);
    ls_gen_verdict_t v;
    ls_gen_info_t in;
    cr_assert_eq(scan(b, len, NULL, NULL, &v), LS_ERECCKSUM);
    cr_assert_eq(v.offset, off);
    ls_gen_expect_t open = {.allow_open = true};
    cr_assert_eq(scan(b, len, &open, &in, &v), 0);
    cr_assert_eq(in.valid_end, off, "an open log ends at the stale record");
    cr_assert_eq(in.commit_end, off);
    ls_h_gen_free(g);
}

Test(logfmt, transaction_open_at_trailer_is_rejected)
{
    ls_h_gen_spec_t spec;
    ls_h_gen_spec_default(&spec, 5, 10);
    ls_h_gen_t *g = ls_h_gen_new(&spec);
    ls_h_gen_put(g, "a", 1, "x", 1);
    ls_h_gen_commit(g);
    ls_h_gen_put(g, "b", 1, "y", 1);
    ls_h_gen_close(g);
    size_t len;
    const uint8_t *b = ls_h_gen_bytes(g, &len);
    ls_gen_verdict_t v;
    cr_assert_eq(scan(b, len, NULL, NULL, &v), LS_EBADTRAILER);
    cr_assert_eq(v.offset, len - LS_GEN_TRAILER_SIZE);
    cr_assert(ls_h_contains(v.msg, "generation ends inside transaction 2"), "%s", v.msg);
    ls_h_gen_free(g);
}

Test(logfmt, empty_generation_is_valid)
{
    ls_h_gen_spec_t spec;
    ls_h_gen_spec_default(&spec, 3, 50);
    ls_h_gen_t *g = ls_h_gen_new(&spec);
    ls_h_gen_close(g);
    size_t len;
    const uint8_t *b = ls_h_gen_bytes(g, &len);
    ls_gen_info_t in;
    cr_assert_eq(len, LS_GEN_HEADER_SIZE + LS_GEN_TRAILER_SIZE);
    cr_assert_eq(scan(b, len, NULL, &in, NULL), 0);
    cr_assert_eq(in.record_count, 0);
    cr_assert_eq(in.last_lsn, 49);
    ls_h_gen_free(g);
}

/* Builds generation 7 (first LSN 1) from raw records, closes it and scans it; *bad gets the
 * offset of record `expect_bad`. */
static int scan_raw(const ls_record_t *recs, size_t n, size_t expect_bad, ls_gen_verdict_t *v)
{
    ls_h_gen_spec_t spec;
    ls_h_gen_spec_default(&spec, 7, 1);
    ls_h_gen_t *g = ls_h_gen_new(&spec);
    for (size_t i = 0; i < n; i++)
        ls_h_gen_raw(g, &recs[i], 0);
    ls_h_gen_close(g);
    size_t len;
    const uint8_t *b = ls_h_gen_bytes(g, &len);
    int rc = scan(b, len, NULL, NULL, v);
    if (rc) cr_assert_eq(v->offset, ls_h_gen_offset(g, expect_bad), "%s", v->msg);
    ls_h_gen_free(g);
    return rc;
}

#define K(s) .key = (const uint8_t *) (s), .key_len = sizeof(s) - 1

Test(logfmt, lsn_and_txid_rules)
{
    ls_gen_verdict_t v;
    ls_record_t ok[] = {{.type = LS_REC_PUT, .lsn = 1, .txid = 5, K("a")},
                        {.type = LS_REC_COMMIT, .lsn = 2, .txid = 5},
                        {.type = LS_REC_COMMIT, .lsn = 3, .txid = 9}};
    cr_assert_eq(scan_raw(ok, 3, 0, &v), 0, "%s", v.msg);
    ls_record_t gap[] = {{.type = LS_REC_PUT, .lsn = 1, .txid = 1, K("a")},
                         {.type = LS_REC_COMMIT, .lsn = 3, .txid = 1}};
    cr_assert_eq(scan_raw(gap, 2, 1, &v), LS_ELSNORDER);
    cr_assert(ls_h_contains(v.msg, "lsn 3, expected 2"), "%s", v.msg);
    ls_record_t first[] = {{.type = LS_REC_COMMIT, .lsn = 2, .txid = 1}};
    cr_assert_eq(scan_raw(first, 1, 0, &v), LS_ELSNORDER, "first LSN must be the header's");
    ls_record_t mixed[] = {{.type = LS_REC_PUT, .lsn = 1, .txid = 1, K("a")},
                           {.type = LS_REC_PUT, .lsn = 2, .txid = 2, K("b")},
                           {.type = LS_REC_COMMIT, .lsn = 3, .txid = 2}};
    cr_assert_eq(scan_raw(mixed, 3, 1, &v), LS_EBADRECORD, "txid changes inside a transaction");
    ls_record_t back[] = {{.type = LS_REC_COMMIT, .lsn = 1, .txid = 4},
                          {.type = LS_REC_COMMIT, .lsn = 2, .txid = 4}};
    cr_assert_eq(scan_raw(back, 2, 1, &v), LS_EBADRECORD, "txid must increase");
    ls_record_t zero[] = {{.type = LS_REC_COMMIT, .lsn = 1, .txid = 0}};
    cr_assert_eq(scan_raw(zero, 1, 0, &v), LS_EBADRECORD, "txid 0 is never valid");
}

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

/* Rewrites the checksum of the record (or trailer) at off after its bytes were edited. */
static void reseal(uint8_t *b, size_t off, size_t n, uint64_t seed)
{
    ls_put32(b + off, ls_cksum32(b + off + 4, n - 4, seed));
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
    snprintf(path, sizeof(path), "%s/E00-00000001-000000000000002a.log", dir);
    ls_h_gen_t *g = small_gen(true);
    size_t len;
    const uint8_t *b = ls_h_gen_bytes(g, &len);
    cr_assert_eq(ls_h_write_file(path, b, len), 0);
    ls_gen_info_t in;
    ls_gen_verdict_t v;
    cr_assert_eq(ls_gen_scan_file(path, NULL, NULL, NULL, &in, &v), 0, "%s", v.msg);
    cr_assert_eq(in.record_count, 5);
    snprintf(path, sizeof(path), "%s/missing.log", dir);
    cr_assert_eq(ls_gen_scan_file(path, NULL, NULL, NULL, &in, &v), LS_ENOENT);
    cr_assert(ls_h_contains(v.msg, path), "%s", v.msg);
    ls_h_gen_free(g);
    ls_h_rmtree(dir);
    free(dir);
}

/* ---- logship dump ------------------------------------------------------------------------ */

static int dump(const char *a1, const char *a2, char **out, char **err)
{
    char *argv[] = {(char *) ls_h_bin("logship"), "dump", (char *) a1, (char *) a2, NULL};
    return ls_h_run(argv, out, err, 10000);
}

Test(logfmt, dump_valid_generation)
{
    char *dir = ls_h_tmpdir("dump");
    char path[1024];
    snprintf(path, sizeof(path), "%s/E00-00000001-000000000000002a.log", dir);
    ls_h_gen_t *g = small_gen(true);
    size_t len;
    const uint8_t *b = ls_h_gen_bytes(g, &len);
    cr_assert_eq(ls_h_write_file(path, b, len), 0);
    char *out, *err;
    cr_assert_eq(dump(path, "--records", &out, &err), 0, "%s%s", out, err);
    cr_assert(ls_h_contains(out, "verdict: ok"), "%s", out);
    cr_assert(ls_h_contains(out, "record count: 5"), "%s", out);
    cr_assert(ls_h_contains(out, "generation:     42"), "%s", out);
    cr_assert(ls_h_contains(out, "database id:    000102030405060708090a0b0c0d0e0f"), "%s", out);
    cr_assert(ls_h_contains(out, "created:        2026-11-18T11:06:40.000000000Z"), "%s", out);
    cr_assert(ls_h_contains(out, "offset 128: PUT    lsn 100 txid 1 key \"alpha\" value 5 bytes"),
              "%s", out);
    cr_assert(ls_h_contains(out, "key 0x0102"), "%s", out);
    cr_assert(ls_h_contains(out, "COMMIT lsn 104 txid 2"), "%s", out);
    free(out);
    free(err);
    cr_assert_eq(dump(path, NULL, &out, &err), 0);
    cr_assert(!ls_h_contains(out, "offset 128:"), "records are listed only with --records");
    free(out);
    free(err);
    ls_h_gen_free(g);
    ls_h_rmtree(dir);
    free(dir);
}

Test(logfmt, dump_damaged_and_open_generations)
{
    char *dir = ls_h_tmpdir("dump");
    char path[1024];
    snprintf(path, sizeof(path), "%s/bad.log", dir);
    ls_h_gen_t *g = small_gen(true);
    size_t len;
    uint8_t *b = ls_h_gen_copy(g, &len);
    size_t off = ls_h_gen_offset(g, 3);
    b[off + LS_REC_HEADER_SIZE] ^= 0x10;
    cr_assert_eq(ls_h_write_file(path, b, len), 0);
    char *out, *err, want[128];
    cr_assert_eq(dump(path, NULL, &out, &err), 1);
    snprintf(want, sizeof(want), "verdict: LS_ERECCKSUM: record at offset %zu: checksum", off);
    cr_assert(ls_h_contains(out, want), "%s", out);
    free(out);
    free(err);
    /* An open log: no trailer, exit 1, and where its last whole transaction ends. */
    cr_assert_eq(ls_h_write_file(path, b, off), 0);
    cr_assert_eq(dump(path, NULL, &out, &err), 1);
    cr_assert(ls_h_contains(out, "trailer: missing"), "%s", out);
    cr_assert(ls_h_contains(out, "verdict: LS_ENOTRAILER"), "%s", out);
    snprintf(want, sizeof(want), "ends at offset %zu", off);
    cr_assert(ls_h_contains(out, want), "%s", out);
    free(out);
    free(err);
    free(b);
    ls_h_gen_free(g);
    ls_h_rmtree(dir);
    free(dir);
}

Test(logfmt, dump_usage_errors)
{
    char *out, *err;
    cr_assert_eq(dump("/nonexistent/E00.log", NULL, &out, &err), 1);
    cr_assert(ls_h_contains(err, "cannot read '/nonexistent/E00.log'"), "%s", err);
    free(out);
    free(err);
    char *argv[] = {(char *) ls_h_bin("logship"), "dump", NULL};
    cr_assert_eq(ls_h_run(argv, &out, &err, 10000), 2);
    cr_assert(ls_h_contains(err, "missing FILE"), "%s", err);
    free(out);
    free(err);
    cr_assert_eq(dump("x.log", "--bogus", &out, &err), 2);
    cr_assert(ls_h_contains(err, "unknown option '--bogus'"), "%s", err);
    free(out);
    free(err);
    cr_assert_eq(dump("x.log", "y.log", &out, &err), 2);
    cr_assert(ls_h_contains(err, "unexpected argument 'y.log'"), "%s", err);
    free(out);
    free(err);
}

Test(logfmt, one_mib_generation_digest_spans_hash_batches)
{
    ls_h_gen_spec_t spec;
    ls_h_gen_spec_default(&spec, 9, 1000);
    ls_h_gen_t *g = ls_h_gen_new(&spec);
    uint8_t val[160];
    char key[32];
    size_t len = 0;
    for (int i = 0; len < LS_GEN_DEFAULT_SIZE - 4096; i++) {
        memset(val, (uint8_t) i, sizeof(val));
        int kl = snprintf(key, sizeof(key), "user:%08d", i);
        ls_h_gen_put(g, key, (size_t) kl, val, sizeof(val));
        if (i % 4 == 3) ls_h_gen_commit(g);
        ls_h_gen_bytes(g, &len);
    }
    ls_h_gen_commit(g);
    ls_h_gen_close(g);
    const uint8_t *b = ls_h_gen_bytes(g, &len);
    ls_gen_info_t in;
    ls_gen_verdict_t v;
    cr_assert_eq(scan(b, len, NULL, &in, &v), 0, "%s", v.msg);
    cr_assert_eq(in.record_count, ls_h_gen_count(g));
    cr_assert_arr_eq(in.digest, ls_h_gen_digest(g), LS_DIGEST_SIZE);
    /* A flip deep inside (past the first hash batch) in a record whose checksum is resealed:
     * only the digest can catch it. */
    uint8_t *c = ls_h_gen_copy(g, &len);
    size_t i = ls_h_gen_count(g) / 2, off = ls_h_gen_offset(g, i);
    uint32_t n = ls_get32(c + off + 4);
    c[off + n - 1] ^= 0x80;
    reseal(c, off, n, ls_h_gen_seed(g));
    cr_assert_eq(scan(c, len, NULL, &in, &v), LS_EDIGEST, "%s", v.msg);
    free(c);
    ls_h_gen_free(g);
}

Test(logfmt, oversize_input_and_allocation_failure_are_errors)
{
    /* Never touched: the size check comes first, so the pages are never faulted in. */
    uint8_t *huge = malloc((size_t) LS_GEN_HARD_CAP + 1);
    cr_assert_not_null(huge);
    ls_gen_verdict_t v;
    cr_assert_eq(scan(huge, (size_t) LS_GEN_HARD_CAP + 1, NULL, NULL, &v), LS_ETOOBIG);
    free(huge);
    char *dir = ls_h_tmpdir("logfmt");
    char path[1024];
    snprintf(path, sizeof(path), "%s/sparse.log", dir);
    cr_assert_eq(ls_h_write_file(path, "", 0), 0);
    cr_assert_eq(truncate(path, (off_t) LS_GEN_HARD_CAP + 1), 0);
    cr_assert_eq(ls_gen_scan_file(path, NULL, NULL, NULL, NULL, &v), LS_ETOOBIG);
    cr_assert(ls_h_contains(v.msg, path), "%s", v.msg);
    ls_h_rmtree(dir);
    free(dir);
#ifdef LS_FAULTS_ENABLED
    ls_h_gen_t *g = small_gen(true);
    size_t len;
    const uint8_t *b = ls_h_gen_bytes(g, &len);
    setenv("LS_FAULTS", "logfmt.digest_alloc=fail", 1);
    cr_assert_eq(scan(b, len, NULL, NULL, &v), LS_ENOMEM);
    ls_h_gen_free(g);
#endif
}
