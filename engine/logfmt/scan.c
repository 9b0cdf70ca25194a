/*
 * ls_gen_scan: validation of a generation held in memory, in one pass.
 *
 * Every length read from the bytes is bounded by what is left of the buffer before it is used;
 * the digest is fed in 64 KiB batches as records are validated, so the buffer is read once while
 * it is still in cache. Nothing here logs or exits: the first problem goes into the verdict.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/core.h"
#include "logfmt/internal.h"

#define HASH_BATCH  (64u * 1024u) /* bytes fed to SHA-256 per update */
#define SCAN_IS_TRL 1             /* scan_record(): the bytes at off are a trailer */

typedef struct {
    const uint8_t *buf;
    size_t len;
    const ls_gen_expect_t *ex;
    ls_gen_info_t *info;
    ls_gen_verdict_t *v;
    uint64_t seed;    /* per-record checksum seed of this generation */
    ls_sha256_t *sha; /* running digest; NULL when expect->known_digest is used */
    size_t hashed;    /* bytes [0, hashed) fed to sha */
    bool in_txn;      /* records seen since the last COMMIT */
    uint64_t txn;     /* txid of the open transaction when in_txn */
} scan_t;

__attribute__((format(printf, 4, 5))) static int fail(scan_t *s, int code, uint64_t off,
                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->v->msg, sizeof(s->v->msg), fmt, ap);
    va_end(ap);
    s->v->code = code;
    s->v->offset = off;
    return code;
}

static void hash_upto(scan_t *s, size_t end)
{
    if (s->sha && end > s->hashed) {
        ls_sha256_update(s->sha, s->buf + s->hashed, end - s->hashed);
        s->hashed = end;
    }
}

static int check_expect(scan_t *s)
{
    const ls_gen_expect_t *ex = s->ex;
    const ls_gen_header_t *h = &s->info->header;
    char a[2 * LS_DIGEST_SIZE + 1], b[2 * LS_DIGEST_SIZE + 1];
    if (ex->dbid && memcmp(ex->dbid, h->dbid, LS_DBID_LEN) != 0) {
        ls_hex(h->dbid, LS_DBID_LEN, a);
        ls_hex(ex->dbid, LS_DBID_LEN, b);
        return fail(s, LS_EDBID, 0, "header at offset 0: database id %s, expected %s", a, b);
    }
    if (ex->epoch && ex->epoch != h->epoch)
        return fail(s, LS_ELINEAGE, 0, "header at offset 0: epoch %u, expected %u", h->epoch,
                    ex->epoch);
    if (ex->generation && ex->generation != h->generation)
        return fail(s, LS_EGAP, 0, "header at offset 0: generation %llu, expected %llu",
                    (unsigned long long) h->generation, (unsigned long long) ex->generation);
    if (ex->first_lsn && ex->first_lsn != h->first_lsn)
        return fail(s, LS_ELSNORDER, 0, "header at offset 0: first lsn %llu, expected %llu",
                    (unsigned long long) h->first_lsn, (unsigned long long) ex->first_lsn);
    if (ex->prev_digest && memcmp(ex->prev_digest, h->prev_digest, LS_DIGEST_SIZE) != 0) {
        ls_hex(h->prev_digest, 8, a);
        ls_hex(ex->prev_digest, 8, b);
        return fail(s, LS_ELINEAGE, 0,
                    "header at offset 0: prev digest %s..., expected %s... (generation %llu does "
                    "not chain to the previous one)",
                    a, b, (unsigned long long) h->generation);
    }
    return 0;
}

static int check_lengths(scan_t *s, size_t off, const uint8_t *p, size_t rem)
{
    uint32_t total = ls_get32(p + LS__REC_LEN);
    uint32_t klen = ls_get16(p + LS__REC_KEY_LEN);
    uint32_t vlen = ls_get32(p + LS__REC_VALUE_LEN);
    if (total < LS_REC_HEADER_SIZE || total > LS_GEN_HARD_CAP)
        return fail(s, LS_EBADRECORD, off, "record at offset %zu: length %u out of range", off,
                    total);
    if ((uint64_t) LS_REC_HEADER_SIZE + klen + vlen != total)
        return fail(s, LS_EBADRECORD, off,
                    "record at offset %zu: length %u is not 32 + key %u + value %u", off, total,
                    klen, vlen);
    if (total > rem)
        return fail(s, LS_ETRUNCATED, off,
                    "record at offset %zu: truncated (length %u, %zu bytes left)", off, total, rem);
    uint32_t stored = ls_get32(p + LS__REC_CKSUM);
    uint32_t computed = ls_cksum32(p + 4, total - 4, s->seed);
    if (stored != computed)
        return fail(s, LS_ERECCKSUM, off,
                    "record at offset %zu: checksum mismatch (stored 0x%08x, computed 0x%08x)", off,
                    stored, computed);
    return 0;
}

static int check_fields(scan_t *s, size_t off, const ls_record_t *r, uint8_t flags)
{
    bool keyed = r->key_len >= 1 && r->key_len <= LS_KEY_MAX;
    if (flags != 0)
        return fail(s, LS_EBADRECORD, off, "record at offset %zu: unknown flags 0x%02x", off,
                    flags);
    if (r->type != LS_REC_PUT && r->type != LS_REC_DEL && r->type != LS_REC_COMMIT)
        return fail(s, LS_EBADRECORD, off, "record at offset %zu: unknown type 0x%02x", off,
                    r->type);
    if ((r->type == LS_REC_PUT && !keyed) || (r->type == LS_REC_DEL && !keyed) ||
        (r->type == LS_REC_COMMIT && r->key_len != 0))
        return fail(s, LS_EBADRECORD, off,
                    "record at offset %zu: key length %u invalid for type %u", off, r->key_len,
                    r->type);
    if ((r->type == LS_REC_DEL || r->type == LS_REC_COMMIT) && r->value_len != 0)
        return fail(s, LS_EBADRECORD, off,
                    "record at offset %zu: value length %u invalid for type %u", off, r->value_len,
                    r->type);
    uint64_t want = s->info->last_lsn + 1;
    if (r->lsn != want)
        return fail(s, LS_ELSNORDER, off, "record at offset %zu: lsn %llu, expected %llu", off,
                    (unsigned long long) r->lsn, (unsigned long long) want);
    if (s->in_txn && r->txid != s->txn)
        return fail(s, LS_EBADRECORD, off,
                    "record at offset %zu: txid %llu inside transaction %llu", off,
                    (unsigned long long) r->txid, (unsigned long long) s->txn);
    if (!s->in_txn && r->txid <= s->info->last_txid)
        return fail(s, LS_EBADRECORD, off,
                    "record at offset %zu: txid %llu not after the last committed txid %llu", off,
                    (unsigned long long) r->txid, (unsigned long long) s->info->last_txid);
    return 0;
}

/* Validates the record at off into r and *size; SCAN_IS_TRL when the bytes are a trailer. */
static int scan_record(scan_t *s, size_t off, ls_record_t *r, size_t *size)
{
    const uint8_t *p = s->buf + off;
    size_t rem = s->len - off;
    if (rem < LS_REC_HEADER_SIZE)
        return fail(s, LS_ETRUNCATED, off,
                    "record at offset %zu: truncated header (%zu of %d bytes)", off, rem,
                    LS_REC_HEADER_SIZE);
    if (p[LS__REC_TYPE] == LS_REC_TRAILER) return SCAN_IS_TRL;
    int rc = check_lengths(s, off, p, rem);
    if (rc) return rc;
    r->type = p[LS__REC_TYPE];
    r->key_len = ls_get16(p + LS__REC_KEY_LEN);
    r->value_len = ls_get32(p + LS__REC_VALUE_LEN);
    r->lsn = ls_get64(p + LS__REC_LSN);
    r->txid = ls_get64(p + LS__REC_TXID);
    r->key = p + LS_REC_HEADER_SIZE;
    r->value = r->key + r->key_len;
    *size = ls_record_size(r->key_len, r->value_len);
    return check_fields(s, off, r, p[LS__REC_FLAGS]);
}

/* Accounts a valid record ending at end. */
static void account(scan_t *s, const ls_record_t *r, size_t end)
{
    ls_gen_info_t *in = s->info;
    in->record_count++;
    in->last_lsn = r->lsn;
    in->valid_end = end;
    if (r->type == LS_REC_COMMIT) {
        s->in_txn = false;
        in->commit_end = end;
        in->commit_lsn = r->lsn;
        in->commit_count++;
        in->last_txid = r->txid;
    } else {
        s->in_txn = true;
        s->txn = r->txid;
    }
    if (end - s->hashed >= HASH_BATCH) hash_upto(s, end);
}

static int check_trailer_fields(scan_t *s, size_t off, const uint8_t *p, ls_gen_trailer_t *t)
{
    int rc = ls__logfmt_trailer_check(p, off, s->seed, t, s->v->msg, sizeof(s->v->msg));
    if (rc) { /* the message is already in the verdict */
        s->v->code = rc;
        s->v->offset = off;
        return rc;
    }
    const ls_gen_info_t *in = s->info;
    uint64_t count = t->record_count, last = t->last_lsn, payload = t->payload_len;
    if (count != in->record_count || last != in->last_lsn || payload != off - LS_GEN_HEADER_SIZE)
        return fail(s, LS_EBADTRAILER, off,
                    "trailer at offset %zu: says %llu records, last lsn %llu, payload %llu; "
                    "found %llu, %llu, %zu",
                    off, (unsigned long long) count, (unsigned long long) last,
                    (unsigned long long) payload, (unsigned long long) in->record_count,
                    (unsigned long long) in->last_lsn, off - LS_GEN_HEADER_SIZE);
    if (s->len - off != LS_GEN_TRAILER_SIZE)
        return fail(s, LS_EBADTRAILER, off, "trailer at offset %zu: %zu bytes follow it", off,
                    s->len - off - LS_GEN_TRAILER_SIZE);
    if (s->in_txn)
        return fail(s, LS_EBADTRAILER, off,
                    "trailer at offset %zu: generation ends inside transaction %llu", off,
                    (unsigned long long) s->txn);
    return 0;
}

static int scan_trailer(scan_t *s, size_t off)
{
    const uint8_t *p = s->buf + off;
    if (s->len - off < LS_GEN_TRAILER_SIZE)
        return fail(s, LS_ETRUNCATED, off, "trailer at offset %zu: truncated (%zu of %d bytes)",
                    off, s->len - off, LS_GEN_TRAILER_SIZE);
    ls_gen_trailer_t t;
    int rc = check_trailer_fields(s, off, p, &t);
    if (rc) return rc;
    uint8_t digest[LS_DIGEST_SIZE];
    if (s->ex->known_digest) {
        memcpy(digest, s->ex->known_digest, LS_DIGEST_SIZE);
    } else {
        hash_upto(s, off);
        ls_sha256_final(s->sha, digest);
    }
    if (memcmp(digest, p + LS__TRL_DIGEST, LS_DIGEST_SIZE) != 0) {
        char a[17], b[17];
        ls_hex(p + LS__TRL_DIGEST, 8, a);
        ls_hex(digest, 8, b);
        return fail(s, LS_EDIGEST, off,
                    "trailer at offset %zu: digest mismatch (stored %s..., computed %s...)", off, a,
                    b);
    }
    ls_gen_info_t *in = s->info;
    in->trailer = t;
    memcpy(in->digest, digest, LS_DIGEST_SIZE);
    in->closed = true;
    return 0;
}

static int scan_header(scan_t *s)
{
    ls_gen_info_t *in = s->info;
    int rc = ls__logfmt_header_check(s->buf, s->len, &in->header, s->v->msg, sizeof(s->v->msg));
    if (rc) {
        s->v->code = rc;
        s->v->offset = 0;
        return rc;
    }
    in->header_ok = true;
    in->last_lsn = in->commit_lsn = in->header.first_lsn - 1;
    in->valid_end = in->commit_end = LS_GEN_HEADER_SIZE;
    s->seed = ls_gen_seed(in->header.dbid, in->header.epoch, in->header.generation);
    return check_expect(s);
}

/* Walks records then the trailer. Returns the verdict code; a callback's non-zero return stops
 * the walk and is stored in *cbrc. */
static int walk(scan_t *s, ls_record_cb cb, void *ctx, int *cbrc)
{
    size_t off = LS_GEN_HEADER_SIZE;
    for (;;) {
        if (off == s->len)
            return fail(s, LS_ENOTRAILER, off, "no trailer at offset %zu (after %llu records)", off,
                        (unsigned long long) s->info->record_count);
        ls_record_t r;
        size_t n = 0;
        int rc = scan_record(s, off, &r, &n);
        if (rc == SCAN_IS_TRL) return scan_trailer(s, off);
        if (rc) return rc;
        off += n;
        account(s, &r, off);
        if (cb && (*cbrc = cb(ctx, &r)) != 0) return 0;
    }
}

int ls_gen_scan(const uint8_t *buf, size_t len, const ls_gen_expect_t *expect, ls_record_cb cb,
                void *ctx, ls_gen_info_t *info, ls_gen_verdict_t *verdict)
{
    static const ls_gen_expect_t none;
    ls_gen_info_t info_tmp;
    ls_gen_verdict_t v_tmp;
    scan_t s = {
        .buf = buf,
        .len = len,
        .ex = expect ? expect : &none,
        .info = info ? info : &info_tmp,
        .v = verdict ? verdict : &v_tmp,
    };
    memset(s.info, 0, sizeof(*s.info));
    memset(s.v, 0, sizeof(*s.v));
    if (len > LS_GEN_HARD_CAP)
        return fail(&s, LS_ETOOBIG, LS_GEN_HARD_CAP,
                    "generation of %zu bytes exceeds the cap of %u", len, LS_GEN_HARD_CAP);
    int rc = scan_header(&s);
    if (rc) return rc;
    if (!s.ex->known_digest && (LS_FAULT("logfmt.digest_alloc") || !(s.sha = ls_sha256_new())))
        return fail(&s, LS_ENOMEM, 0, "out of memory allocating the digest state");
    int cbrc = 0;
    rc = walk(&s, cb, ctx, &cbrc);
    ls_sha256_free(s.sha);
    if (cbrc) return cbrc;
    if (rc && s.ex->allow_open) {
        /* A torn or open tail: msg and offset say where and why the walk stopped. */
        s.v->code = 0;
        rc = 0;
    }
    return rc;
}

int ls_gen_scan_file(const char *path, const ls_gen_expect_t *expect, ls_record_cb cb, void *ctx,
                     ls_gen_info_t *info, ls_gen_verdict_t *verdict)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = ls_read_file(path, LS_GEN_HARD_CAP, &buf, &len);
    if (rc) {
        ls_gen_verdict_t v_tmp;
        ls_gen_verdict_t *v = verdict ? verdict : &v_tmp;
        if (info) memset(info, 0, sizeof(*info));
        memset(v, 0, sizeof(*v));
        v->code = rc;
        if (rc == LS_ETOOBIG)
            snprintf(v->msg, sizeof(v->msg), "cannot read %s: larger than the cap of %u bytes",
                     path, LS_GEN_HARD_CAP);
        else
            snprintf(v->msg, sizeof(v->msg), "cannot read %s: %s", path, ls_strerror(rc));
        return rc;
    }
    rc = ls_gen_scan(buf, len, expect, cb, ctx, info, verdict);
    free(buf);
    return rc;
}
