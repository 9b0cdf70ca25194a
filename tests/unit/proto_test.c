/*
 * proto: every frame round-trips; every truncation, oversized length, trailing byte, unknown
 * type, flag and bad value is refused with a message naming the frame, field and offset; the
 * decoder reads nothing past its input and allocates nothing; version negotiation. Samples and
 * comparisons in proto_test_util.h; the fuzz seed corpus and the later frames' own checks in
 * proto_frames_test.c.
 */
#include "proto_test_util.h"

Test(proto, every_type_round_trips)
{
    static ls_frame_t f, g;
    char err[256];
    for (size_t i = 0; i < sizeof(all_types); i++) {
        size_t len;
        uint8_t *buf = encode_sample(all_types[i], &f, &len);
        int rc = ls_frame_decode(buf, len, &g, err, sizeof(err));
        cr_assert_eq(rc, 0, "%s: %s", ls_frame_type_name(all_types[i]), err);
        frame_eq(&f, &g);
        cr_assert_str_neq(ls_frame_type_name(all_types[i]), "UNKNOWN");
        free(buf);
    }
}

Test(proto, every_truncation_is_refused)
{
    static ls_frame_t f, g;
    char err[256];
    for (size_t i = 0; i < sizeof(all_types); i++) {
        size_t len;
        uint8_t *buf = encode_sample(all_types[i], &f, &len);
        const char *name = ls_frame_type_name(all_types[i]);
        for (size_t n = 0; n < len; n++) { /* the whole frame cut short */
            err[0] = 0;
            cr_assert_eq(ls_frame_decode(buf, n, &g, err, sizeof(err)), LS_EFRAMETRUNC,
                         "%s cut at %zu", name, n);
            cr_assert(strlen(err) > 0);
        }
        ls_frame_header_t h;
        cr_assert_eq(ls_frame_header_decode(buf, len, &h), 0);
        for (uint32_t n = 0; n < h.body_len; n++) { /* a body whose header agrees, cut short */
            ls_frame_header_t cut = {n, h.type, 0};
            err[0] = 0;
            int rc =
                ls_frame_decode_body(&cut, buf + LS_FRAME_HEADER_SIZE, n, &g, err, sizeof(err));
            cr_assert_eq(rc, LS_EFRAMETRUNC, "%s body cut at %u: %d %s", name, n, rc, err);
            cr_assert(ls_h_contains(err, name) && ls_h_contains(err, "offset"), "%s", err);
        }
        free(buf);
    }
}

/* 8 bytes at the very end of a readable page, followed by an inaccessible one: any read past
 * them faults. */
static uint8_t *guarded8(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    uint8_t *p =
        mmap(NULL, (size_t) pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(p != MAP_FAILED);
    cr_assert_eq(mprotect(p + pg, (size_t) pg, PROT_NONE), 0);
    return p + pg - 8;
}

Test(proto, huge_body_len_refused_without_reading_or_allocating)
{
    static ls_frame_t g;
    char err[256];
    uint8_t *h = guarded8();
    ls_frame_header_t hdr = {0xffffffffu, LS_FRAME_GEN_DATA, 0};
    ls_frame_header_encode(&hdr, h);
    struct mallinfo2 before = mallinfo2();
    int rc = ls_frame_decode(h, 8, &g, err, sizeof(err));
    struct mallinfo2 after = mallinfo2();
    cr_assert_eq(rc, LS_EFRAMETOOBIG);
    cr_assert_eq(before.uordblks, after.uordblks, "the decoder allocated");
    cr_assert(ls_h_contains(err, "GEN_DATA") && ls_h_contains(err, "4294967295"), "%s", err);
    ls_put32(h, LS_FRAME_MAX_BODY + 1);
    cr_assert_eq(ls_frame_header_decode(h, 8, &hdr), LS_EFRAMETOOBIG);
    ls_put32(h, LS_FRAME_MAX_BODY); /* allowed size, but only the header is here */
    cr_assert_eq(ls_frame_decode(h, 8, &g, err, sizeof(err)), LS_EFRAMETRUNC);
    cr_assert(ls_h_contains(err, "truncated GEN_DATA"), "%s", err);
}

/* Decodes a body given as bytes; returns the code and leaves the message in err. */
static int decode_raw(uint8_t type, const uint8_t *body, size_t len, char *err, size_t errlen)
{
    static ls_frame_t g;
    uint8_t *buf = malloc(len + LS_FRAME_HEADER_SIZE);
    ls_frame_header_t h = {(uint32_t) len, type, 0};
    ls_frame_header_encode(&h, buf);
    memcpy(buf + LS_FRAME_HEADER_SIZE, body, len);
    err[0] = 0;
    int rc = ls_frame_decode(buf, len + LS_FRAME_HEADER_SIZE, &g, err, errlen);
    free(buf);
    return rc;
}

Test(proto, oversized_strings_lists_and_chunks_refused)
{
    char err[256];
    uint8_t *body = calloc(1, LS_FRAME_MAX_BODY);
    /* ERROR: dbid 16, code -31030, message of 1025 bytes all present */
    ls_put32(body + 16, (uint32_t) LS_EPROTO);
    ls_put16(body + 20, LS_PROTO_MSG_MAX + 1);
    memset(body + 22, 'x', LS_PROTO_MSG_MAX + 1);
    cr_assert_eq(decode_raw(LS_FRAME_ERROR, body, 22 + LS_PROTO_MSG_MAX + 1, err, 256), LS_EPROTO);
    cr_assert(ls_h_contains(err, "ERROR: field 'message' at offset 20: length 1025"), "%s", err);
    /* a string length of 60000 in a 30-byte body: the bound is checked before the bytes */
    ls_put16(body + 20, 60000);
    cr_assert_eq(decode_raw(LS_FRAME_ERROR, body, 30, err, 256), LS_EPROTO);
    /* GEN_DATA: a chunk one byte over the maximum, all present */
    memset(body, 0, 64);
    ls_put64(body + 16, 1);
    ls_put32(body + 32, LS_FRAME_CHUNK_MAX + 1);
    cr_assert_eq(decode_raw(LS_FRAME_GEN_DATA, body, 36 + LS_FRAME_CHUNK_MAX + 1, err, 256),
                 LS_EPROTO);
    cr_assert(ls_h_contains(err, "GEN_DATA: field 'len' at offset 32"), "%s", err);
    ls_put32(body + 32, 1000); /* claims 1000, carries 100 */
    cr_assert_eq(decode_raw(LS_FRAME_GEN_DATA, body, 136, err, 256), LS_EFRAMETRUNC);
    /* HELLO: 257 databases */
    static ls_frame_t f;
    size_t len;
    uint8_t *buf = encode_sample(LS_FRAME_HELLO, &f, &len);
    size_t count_off = 22 + 2 + f.hello.node.len; /* magic..conn_window, node */
    ls_put16(buf + LS_FRAME_HEADER_SIZE + count_off, LS_PROTO_DB_MAX + 1);
    cr_assert_eq(decode_raw(LS_FRAME_HELLO, buf + 8, len - 8, err, 256), LS_EPROTO);
    cr_assert(ls_h_contains(err, "'db_count' at offset 30: 257 databases"), "%s", err);
    free(buf);
    free(body);
}

Test(proto, encoder_refuses_out_of_bounds_structs)
{
    static ls_frame_t f;
    static char big[LS_PROTO_MSG_MAX + 2];
    memset(big, 'n', sizeof(big) - 1);
    sample(LS_FRAME_HELLO, &f);
    f.hello.node = (ls_proto_str_t){big, LS_PROTO_NODE_MAX + 1};
    cr_assert_eq(ls_frame_size(&f), LS_EINVAL);
    sample(LS_FRAME_HELLO, &f);
    f.hello.dbs[2].name = (ls_proto_str_t){big, LS_PROTO_DBNAME_MAX + 1};
    cr_assert_eq(ls_frame_size(&f), LS_EINVAL);
    f.hello.dbs[2].name = (ls_proto_str_t){"a\0b", 3};
    cr_assert_eq(ls_frame_size(&f), LS_EINVAL);
    sample(LS_FRAME_HELLO, &f);
    f.hello.db_count = LS_PROTO_DB_MAX + 1;
    cr_assert_eq(ls_frame_size(&f), LS_EINVAL);
    sample(LS_FRAME_WELCOME, &f);
    f.welcome.db_window = LS_PROTO_WINDOW_MAX + 1;
    cr_assert_eq(ls_frame_size(&f), LS_EINVAL);
    sample(LS_FRAME_ERROR, &f);
    f.error.message = (ls_proto_str_t){big, LS_PROTO_MSG_MAX + 1};
    cr_assert_eq(ls_frame_size(&f), LS_EINVAL);
    f.error.message = (ls_proto_str_t){big, LS_PROTO_MSG_MAX};
    cr_assert_gt(ls_frame_size(&f), 0);
    sample(LS_FRAME_GEN_DATA, &f);
    f.gen_data.len = LS_FRAME_CHUNK_MAX + 1;
    cr_assert_eq(ls_frame_size(&f), LS_EINVAL);
    f.gen_data.len = 0;
    cr_assert_eq(ls_frame_size(&f), LS_EINVAL);
    f.type = 0x2f;
    cr_assert_eq(ls_frame_size(&f), LS_EINVAL);
}

Test(proto, trailing_bytes_refused)
{
    static ls_frame_t f, g;
    char err[256];
    for (size_t i = 0; i < sizeof(all_types); i++) {
        size_t len;
        uint8_t *buf = encode_sample(all_types[i], &f, &len);
        buf = realloc(buf, len + 1);
        buf[len] = 0;
        /* bytes after the frame the header describes */
        cr_assert_eq(ls_frame_decode(buf, len + 1, &g, err, sizeof(err)), LS_EPROTO);
        cr_assert(ls_h_contains(err, "trailing"), "%s", err);
        /* a body longer than its fields, with a header that agrees */
        ls_put32(buf, ls_get32(buf) + 1);
        cr_assert_eq(ls_frame_decode(buf, len + 1, &g, err, sizeof(err)), LS_EPROTO, "%s",
                     ls_frame_type_name(all_types[i]));
        cr_assert(ls_h_contains(err, "trailing") && ls_h_contains(err, "offset"), "%s", err);
        free(buf);
    }
}

Test(proto, unknown_types_flags_and_reserved_refused)
{
    static ls_frame_t g;
    char err[256];
    uint8_t buf[8];
    ls_frame_header_t h;
    const uint8_t unknown[] = {0x00, 0x05, 0x0f, 0x19, 0x25, 0x36, 0x45, 0x50, 0xff};
    for (size_t i = 0; i < sizeof(unknown); i++) {
        ls_frame_header_t u = {0, unknown[i], 0};
        ls_frame_header_encode(&u, buf);
        cr_assert_eq(ls_frame_header_decode(buf, 8, &h), LS_EPROTO);
        cr_assert_eq(ls_frame_decode(buf, 8, &g, err, sizeof(err)), LS_EPROTO);
        cr_assert(ls_h_contains(err, "unknown frame type"), "%s", err);
        cr_assert_str_eq(ls_frame_type_name(unknown[i]), "UNKNOWN");
    }
    ls_frame_header_t hb = {32, LS_FRAME_HEARTBEAT, 0x80};
    ls_frame_header_encode(&hb, buf);
    cr_assert_eq(ls_frame_header_decode(buf, 8, &h), LS_EPROTO);
    hb.flags = LS_FRAME_FLAG_ZSTD; /* known to the header, refused by the body decoder */
    ls_frame_header_encode(&hb, buf);
    cr_assert_eq(ls_frame_header_decode(buf, 8, &h), 0);
    uint8_t body[32] = {0};
    cr_assert_eq(ls_frame_decode_body(&h, body, 32, &g, err, sizeof(err)), LS_EPROTO);
    cr_assert(ls_h_contains(err, "decompress"), "%s", err);
    hb.flags = 0x80;
    ls_frame_header_encode(&hb, buf);
    cr_assert_eq(ls_frame_decode(buf, 8, &g, err, sizeof(err)), LS_EPROTO);
    cr_assert(ls_h_contains(err, "unknown flags 0x80 at offset 5"), "%s", err);
    hb.flags = 0;
    ls_frame_header_encode(&hb, buf);
    buf[7] = 1;
    cr_assert_eq(ls_frame_decode(buf, 8, &g, err, sizeof(err)), LS_EPROTO);
    cr_assert(ls_h_contains(err, "reserved 0x0100 at offset 6"), "%s", err);
    /* the body decoder checks what the header decoder would have */
    ls_frame_header_t bad = {0, 0x99, 0}, h32 = {32, LS_FRAME_HEARTBEAT, 0};
    cr_assert_eq(ls_frame_decode_body(&bad, body, 0, &g, err, sizeof(err)), LS_EPROTO);
    cr_assert(ls_h_contains(err, "unknown frame type 0x99"), "%s", err);
    cr_assert_eq(ls_frame_decode_body(&h32, body, 31, &g, err, sizeof(err)), LS_EFRAMETRUNC);
    cr_assert(ls_h_contains(err, "HEARTBEAT: body of 31 bytes but header says 32"), "%s", err);
}

/* Decodes sample(type) after patching one body byte range. */
static int decode_patched(uint8_t type, size_t off, const void *bytes, size_t n, char *err)
{
    static ls_frame_t f, g;
    size_t len;
    uint8_t *buf = encode_sample(type, &f, &len);
    memcpy(buf + LS_FRAME_HEADER_SIZE + off, bytes, n);
    err[0] = 0;
    int rc = ls_frame_decode(buf, len, &g, err, 256);
    free(buf);
    return rc;
}

Test(proto, bad_values_refused_with_field_and_offset)
{
    char err[256];
    const uint8_t zero8[8] = {0}, three = 3, pos[4] = {1, 0, 0, 0}, nul = 0;
    cr_assert_eq(decode_patched(LS_FRAME_HELLO, 0, "LSHQ", 4, err), LS_EBADMAGIC);
    cr_assert(ls_h_contains(err, "HELLO: field 'magic' at offset 0"), "%s", err);
    cr_assert_eq(decode_patched(LS_FRAME_HELLO, 4, zero8, 2, err), LS_EPROTO);
    const uint8_t big_window[4] = {1, 0, 0, 0x40}; /* 2^30 + 1 */
    cr_assert_eq(decode_patched(LS_FRAME_HELLO, 18, big_window, 4, err), LS_EPROTO);
    cr_assert(ls_h_contains(err, "'conn_window' at offset 18"), "%s", err);
    cr_assert_eq(decode_patched(LS_FRAME_HELLO, 8, &three, 1, err), LS_EPROTO);
    cr_assert(ls_h_contains(err, "'purpose' at offset 8"), "%s", err);
    cr_assert_eq(decode_patched(LS_FRAME_HELLO, 24, &nul, 1, err), LS_EPROTO); /* NUL in node */
    cr_assert(ls_h_contains(err, "'node' at offset 22"), "%s", err);
    cr_assert_eq(decode_patched(LS_FRAME_ERROR, 16, pos, 4, err), LS_EPROTO);
    cr_assert(ls_h_contains(err, "ERROR: field 'code' at offset 16"), "%s", err);
    cr_assert_eq(decode_patched(LS_FRAME_GEN_BEGIN, 20, zero8, 8, err), LS_EPROTO);
    cr_assert(ls_h_contains(err, "'generation' at offset 20"), "%s", err);
    cr_assert_eq(decode_patched(LS_FRAME_CREDIT, 16, zero8, 4, err), LS_EPROTO);
    cr_assert_eq(decode_patched(LS_FRAME_RESUME, 20, zero8, 8, err), LS_EPROTO);
    cr_assert_eq(decode_patched(LS_FRAME_SEED_BEGIN, 72, zero8, 4, err), LS_EPROTO);
    cr_assert(ls_h_contains(err, "'epoch' at offset 72"), "%s", err);
    cr_assert_eq(decode_patched(LS_FRAME_WELCOME, 25 + 16, &three, 1, err), LS_EPROTO);
    cr_assert(ls_h_contains(err, "'dbs[].status' at offset 41"), "%s", err);
}

Test(proto, seed_hello_must_name_one_database)
{
    static ls_frame_t f;
    sample(LS_FRAME_HELLO, &f);
    f.hello.purpose = LS_PURPOSE_SEED;
    cr_assert_eq(ls_frame_size(&f), LS_EINVAL);
    f.hello.db_count = 1;
    cr_assert_gt(ls_frame_size(&f), 0);
}

Test(proto, encode_head_leaves_the_chunk_to_the_caller)
{
    static ls_frame_t f;
    size_t len;
    uint8_t *full = encode_sample(LS_FRAME_GEN_DATA, &f, &len);
    uint8_t head[64];
    ssize_t n = ls_frame_encode_head(&f, head, sizeof(head));
    cr_assert_eq(n, (ssize_t) (len - f.gen_data.len));
    cr_assert_arr_eq(head, full, (size_t) n);
    cr_assert_arr_eq(full + n, f.gen_data.data, f.gen_data.len);
    for (size_t cap = 0; cap < len; cap++) /* every too-small buffer is refused */
        cr_assert_eq(ls_frame_encode(&f, full, cap), LS_ETOOBIG);
    sample(LS_FRAME_SEED_DATA, &f);
    cr_assert_eq(ls_frame_encode_head(&f, head, sizeof(head)), ls_frame_size(&f) - f.seed_data.len);
    sample(LS_FRAME_CREDIT, &f);
    cr_assert_eq(ls_frame_encode_head(&f, head, sizeof(head)), ls_frame_size(&f));
    free(full);
}

Test(proto, unsupported_version_gets_a_clear_error_frame)
{
    static ls_frame_t f, err_frame, g;
    char msg[LS_PROTO_MSG_MAX], err[256];
    ls_proto_choice_t choice;
    ls_proto_offer_t ours = {0};
    sample(LS_FRAME_HELLO, &f);
    f.hello.version_min = 6;
    f.hello.version_max = 7;
    int rc = ls_proto_negotiate(&f.hello, &ours, &choice, &err_frame, msg, sizeof(msg));
    cr_assert_eq(rc, LS_EUNSUPPORTED);
    cr_assert_eq(err_frame.type, LS_FRAME_ERROR);
    cr_assert_eq(err_frame.error.code, LS_EUNSUPPORTED);
    cr_assert_str_eq(msg, "unsupported protocol version 6..7 (this node speaks 1..5)");
    uint8_t buf[2048];
    ssize_t n = ls_frame_encode(&err_frame, buf, sizeof(buf));
    cr_assert_gt(n, 0);
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), 0, "%s", err);
    frame_eq(&err_frame, &g);
}

Test(proto, negotiation_picks_highest_common_version_and_feature_subset)
{
    static ls_frame_t f;
    ls_proto_choice_t c;
    sample(LS_FRAME_HELLO, &f); /* 1..3, zstd level -3, cksum, an unknown bit */
    ls_proto_offer_t ours = {.version_min = 1, .version_max = 2, .features = LS_FEAT_ZSTD};
    cr_assert_eq(ls_proto_negotiate(&f.hello, &ours, &c, NULL, NULL, 0), 0);
    cr_assert_eq(c.version, 2);
    cr_assert_eq(c.features, LS_FEAT_ZSTD);
    cr_assert_eq(c.zstd_level, -3);
    f.hello.zstd_level = 19;
    ours.zstd_level_max = 3;
    cr_assert_eq(ls_proto_negotiate(&f.hello, &ours, &c, NULL, NULL, 0), 0);
    cr_assert_eq(c.zstd_level, 3);
    ours.features = LS_FEAT_CKSUM;
    cr_assert_eq(ls_proto_negotiate(&f.hello, &ours, &c, NULL, NULL, 0), 0);
    cr_assert(c.features == LS_FEAT_CKSUM && c.zstd_level == 0);
}
