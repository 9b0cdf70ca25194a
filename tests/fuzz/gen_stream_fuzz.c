/*
 * libFuzzer target for ls_gen_stream_*: the first input byte chooses how the rest is cut into
 * pieces (sizes 1..256 from a small generator, or one byte at a time); the rest is fed piece by
 * piece and must give exactly what ls_gen_scan gives for the whole buffer, closed and open: the
 * same return, verdict (code, offset, message), walk figures, digest, and the same records handed
 * to the callback. A valid closed generation must also pass when fed as trusted (no checksums)
 * with its digest given, with the same figures.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <logship/logfmt.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    uint64_t n;   /* records seen */
    uint64_t sum; /* over every byte handed out, positions mixed in */
} seen_t;

static int seen_cb(void *ctx, const ls_record_t *r)
{
    seen_t *s = ctx;
    s->n++;
    s->sum = s->sum * 31 + r->lsn + r->txid * 7 + r->type;
    for (uint32_t i = 0; i < r->key_len; i++) /* touches every byte: ASan sees an over-read */
        s->sum = s->sum * 131 + r->key[i];
    for (uint32_t i = 0; i < r->value_len; i++)
        s->sum = s->sum * 137 + r->value[i];
    return 0;
}

static void same_info(const ls_gen_info_t *a, const ls_gen_info_t *b)
{
    if (a->header_ok != b->header_ok || a->closed != b->closed ||
        a->record_count != b->record_count || a->last_lsn != b->last_lsn ||
        a->valid_end != b->valid_end || a->commit_end != b->commit_end ||
        a->commit_lsn != b->commit_lsn || a->commit_count != b->commit_count ||
        a->last_txid != b->last_txid || memcmp(a->digest, b->digest, LS_DIGEST_SIZE) != 0)
        abort();
    if (a->closed && memcmp(&a->trailer, &b->trailer, sizeof(a->trailer)) != 0) abort();
}

/* Feeds data in pieces chosen by mode; returns ls_gen_stream_end's result. */
static int feed(ls_gen_stream_t *st, const ls_gen_expect_t *ex, unsigned flags, uint8_t mode,
                const uint8_t *data, size_t size, seen_t *seen, ls_gen_info_t *in,
                ls_gen_verdict_t *v)
{
    ls_gen_stream_begin(st, ex, flags);
    uint32_t x = mode | 0x100u;
    for (size_t off = 0; off < size;) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        size_t n = mode == 0xff ? 1 : 1 + x % 256;
        if (n > size - off) n = size - off;
        /* An exact-sized heap copy per piece: reading past a piece is an ASan error. */
        uint8_t *piece = malloc(n);
        memcpy(piece, data + off, n);
        ls_gen_stream_feed(st, piece, n, seen_cb, seen);
        free(piece);
        off += n;
    }
    return ls_gen_stream_end(st, in, v);
}

static void compare(ls_gen_stream_t *st, const ls_gen_expect_t *ex, uint8_t mode,
                    const uint8_t *data, size_t size)
{
    seen_t s1 = {0}, s2 = {0};
    ls_gen_info_t i1, i2;
    ls_gen_verdict_t v1, v2;
    int r1 = ls_gen_scan(data, size, ex, seen_cb, &s1, &i1, &v1);
    int r2 = feed(st, ex, 0, mode, data, size, &s2, &i2, &v2);
    if (r1 != r2 || v1.code != v2.code || v1.offset != v2.offset || strcmp(v1.msg, v2.msg) != 0)
        abort();
    if (s1.n != s2.n || s1.sum != s2.sum) abort();
    same_info(&i1, &i2);
    if (i1.record_checksums != i2.record_checksums) abort();
    if (r1 != 0 || !i1.closed) return;
    /* Trusted, digest known: same walk, no checksum computed, nothing hashed. */
    ls_gen_expect_t tx = ex ? *ex : (ls_gen_expect_t){0};
    tx.known_digest = i1.digest;
    seen_t s3 = {0};
    int r3 = feed(st, &tx, LS_GEN_STREAM_TRUSTED, mode, data, size, &s3, &i2, &v2);
    if (r3 != 0 || s3.n != s1.n || s3.sum != s1.sum) abort();
    same_info(&i1, &i2);
    if (i2.record_checksums != 0 || i2.hashed != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    ls_gen_stream_t *st = ls_gen_stream_new();
    if (!st) abort();
    ls_gen_expect_t open = {.allow_open = true};
    compare(st, NULL, mode, data, size);
    compare(st, &open, mode, data, size);
    ls_gen_stream_free(st);
    return 0;
}
