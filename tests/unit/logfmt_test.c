/* logfmt: encoders, ls_gen_scan's verdicts (bit flips, truncation, lineage, transactions, LSN
 * and txid rules). Per-type record checks, flags and trailers, garbage, the scan's callback,
 * names and ls_gen_scan_file: logfmt_checks_test.c; `logship dump` and sizes:
 * logfmt_dump_test.c; shared builders: logfmt_test_util.h. */

#include <criterion/criterion.h>

#include "logfmt_test_util.h"

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
    ls_h_gen_t *g = ls_h_gen_default(5, 10);
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
    ls_h_gen_t *g = ls_h_gen_default(3, 50);
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
