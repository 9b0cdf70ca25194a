/*
 * The generation walk, incremental: ls_gen_stream_* takes the bytes of a generation in pieces of
 * any size and applies ls_gen_scan's checks in ls_gen_scan's order; ls_gen_scan (scan.c) is one
 * feed of it, so the two cannot disagree.
 *
 * A unit (the header, a record, the trailer) that lies inside one piece is checked in place; one
 * that straddles pieces is assembled in `carry` first. Every length read from the bytes is bounded
 * before it is used, and carry grows only with bytes that actually arrived. The digest is fed in
 * runs of validated bytes (at most 64 KiB, at least once per feed) so that it reads them while
 * they are in cache. Nothing here logs or exits: the first problem goes into the verdict.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "logfmt/internal.h"

#define HASH_BATCH (64u * 1024u)   /* bytes fed to SHA-256 per update, at most */
#define CARRY_MIN  256u            /* first allocation of carry */
#define CARRY_KEEP (1024u * 1024u) /* carry kept across begins up to this size */

enum { P_HEADER = 0, P_BODY = 1, P_DONE = 2 };

typedef struct ls_gen_stream stream_t;

__attribute__((format(printf, 4, 5))) static int fail(stream_t *s, int code, uint64_t off,
                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->v.msg, sizeof(s->v.msg), fmt, ap);
    va_end(ap);
    s->v.code = code;
    s->v.offset = off;
    return code;
}

static bool trusted(const stream_t *s)
{
    return (s->flags & LS_GEN_STREAM_TRUSTED) != 0;
}

static void hash_flush(stream_t *s)
{
    if (s->hashing && s->run_len) {
        ls_sha256_update(s->sha, s->run, s->run_len);
        s->info.hashed += s->run_len;
    }
    s->run_len = 0;
}

/* Queues validated bytes for the digest; adjacent spans of one feed are hashed together. */
static void hash_add(stream_t *s, const uint8_t *p, size_t n)
{
    if (!s->hashing) return;
    if (s->run_len && s->run + s->run_len == p) {
        s->run_len += n;
    } else {
        hash_flush(s);
        s->run = p;
        s->run_len = n;
    }
    if (s->run_len >= HASH_BATCH) hash_flush(s);
}

static int check_expect(stream_t *s)
{
    const ls_gen_expect_t *ex = s->ex;
    const ls_gen_header_t *h = &s->info.header;
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

static int do_header(stream_t *s, const uint8_t *u)
{
    ls_gen_info_t *in = &s->info;
    s->fatal = true; /* a bad header or expectation is never a torn tail */
    int rc = ls__logfmt_header_check(u, LS_GEN_HEADER_SIZE, !trusted(s), &in->header, s->v.msg,
                                     sizeof(s->v.msg));
    if (rc) {
        s->v.code = rc;
        s->v.offset = 0;
        return rc;
    }
    in->header_ok = true;
    in->last_lsn = in->commit_lsn = in->header.first_lsn - 1;
    in->valid_end = in->commit_end = LS_GEN_HEADER_SIZE;
    s->seed = ls_gen_seed(in->header.dbid, in->header.epoch, in->header.generation);
    if ((rc = check_expect(s))) return rc;
    if (!s->ex->known_digest && !trusted(s)) {
        if (LS_FAULT("logfmt.digest_alloc") || (!s->sha && !(s->sha = ls_sha256_new())))
            return fail(s, LS_ENOMEM, 0, "out of memory allocating the digest state");
        ls_sha256_reset(s->sha);
        s->hashing = true;
    }
    s->fatal = false;
    hash_add(s, u, LS_GEN_HEADER_SIZE);
    s->off = LS_GEN_HEADER_SIZE;
    s->phase = P_BODY;
    return 0;
}

/* Bytes the unit at s->off needs in all, judged from its first `have` bytes at u. */
static int unit_need(stream_t *s, const uint8_t *u, size_t have, size_t *need)
{
    if (s->phase == P_HEADER) {
        *need = LS_GEN_HEADER_SIZE;
        return 0;
    }
    if (have < LS_REC_HEADER_SIZE || u[LS__REC_TYPE] == LS_REC_TRAILER) {
        *need = have < LS_REC_HEADER_SIZE ? LS_REC_HEADER_SIZE : LS_GEN_TRAILER_SIZE;
        return 0;
    }
    unsigned long long off = s->off;
    uint32_t total = ls_get32(u + LS__REC_LEN);
    uint32_t klen = ls_get16(u + LS__REC_KEY_LEN);
    uint32_t vlen = ls_get32(u + LS__REC_VALUE_LEN);
    if (total < LS_REC_HEADER_SIZE || total > LS_GEN_HARD_CAP)
        return fail(s, LS_EBADRECORD, off, "record at offset %llu: length %u out of range", off,
                    total);
    if ((uint64_t) LS_REC_HEADER_SIZE + klen + vlen != total)
        return fail(s, LS_EBADRECORD, off,
                    "record at offset %llu: length %u is not 32 + key %u + value %u", off, total,
                    klen, vlen);
    *need = total;
    return 0;
}

static int check_fields(stream_t *s, unsigned long long off, const ls_record_t *r, uint8_t flags)
{
    bool keyed = r->key_len >= 1 && r->key_len <= LS_KEY_MAX;
    if (flags != 0)
        return fail(s, LS_EBADRECORD, off, "record at offset %llu: unknown flags 0x%02x", off,
                    flags);
    if (r->type != LS_REC_PUT && r->type != LS_REC_DEL && r->type != LS_REC_COMMIT)
        return fail(s, LS_EBADRECORD, off, "record at offset %llu: unknown type 0x%02x", off,
                    r->type);
    if ((r->type == LS_REC_PUT && !keyed) || (r->type == LS_REC_DEL && !keyed) ||
        (r->type == LS_REC_COMMIT && r->key_len != 0))
        return fail(s, LS_EBADRECORD, off,
                    "record at offset %llu: key length %u invalid for type %u", off, r->key_len,
                    r->type);
    if ((r->type == LS_REC_DEL || r->type == LS_REC_COMMIT) && r->value_len != 0)
        return fail(s, LS_EBADRECORD, off,
                    "record at offset %llu: value length %u invalid for type %u", off, r->value_len,
                    r->type);
    uint64_t want = s->info.last_lsn + 1;
    if (r->lsn != want)
        return fail(s, LS_ELSNORDER, off, "record at offset %llu: lsn %llu, expected %llu", off,
                    (unsigned long long) r->lsn, (unsigned long long) want);
    if (s->in_txn && r->txid != s->txn)
        return fail(s, LS_EBADRECORD, off,
                    "record at offset %llu: txid %llu inside transaction %llu", off,
                    (unsigned long long) r->txid, (unsigned long long) s->txn);
    if (!s->in_txn && r->txid <= s->info.last_txid)
        return fail(s, LS_EBADRECORD, off,
                    "record at offset %llu: txid %llu not after the last committed txid %llu", off,
                    (unsigned long long) r->txid, (unsigned long long) s->info.last_txid);
    return 0;
}

/* Accounts a valid record ending at end. */
static void account(stream_t *s, const ls_record_t *r, uint64_t end)
{
    ls_gen_info_t *in = &s->info;
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
}

/* The record of n bytes at u (its lengths already checked). */
static int do_record(stream_t *s, const uint8_t *u, size_t n, ls_record_cb cb, void *ctx)
{
    unsigned long long off = s->off;
    if (!trusted(s)) {
        uint32_t stored = ls_get32(u + LS__REC_CKSUM);
        uint32_t computed = ls_cksum32(u + 4, n - 4, s->seed);
        s->info.record_checksums++;
        if (stored != computed)
            return fail(s, LS_ERECCKSUM, off,
                        "record at offset %llu: checksum mismatch (stored 0x%08x, computed "
                        "0x%08x)",
                        off, stored, computed);
    }
    ls_record_t r = {.type = u[LS__REC_TYPE],
                     .key_len = ls_get16(u + LS__REC_KEY_LEN),
                     .value_len = ls_get32(u + LS__REC_VALUE_LEN),
                     .lsn = ls_get64(u + LS__REC_LSN),
                     .txid = ls_get64(u + LS__REC_TXID),
                     .key = u + LS_REC_HEADER_SIZE};
    r.value = r.key + r.key_len;
    int rc = check_fields(s, off, &r, u[LS__REC_FLAGS]);
    if (rc) return rc;
    s->off += n;
    account(s, &r, s->off);
    hash_add(s, u, n);
    if (cb && (rc = cb(ctx, &r)) != 0) s->cbrc = rc;
    return rc;
}

/* The trailer's own fields and its counts against the walk; the rest waits for the end. */
static int do_trailer(stream_t *s, const uint8_t *u)
{
    unsigned long long off = s->off;
    ls_gen_trailer_t *t = &s->trl;
    int rc = ls__logfmt_trailer_check(u, off, s->seed, !trusted(s), t, s->v.msg, sizeof(s->v.msg));
    if (rc) {
        s->v.code = rc;
        s->v.offset = off;
        return rc;
    }
    const ls_gen_info_t *in = &s->info;
    uint64_t count = t->record_count, last = t->last_lsn, payload = t->payload_len;
    if (count != in->record_count || last != in->last_lsn || payload != off - LS_GEN_HEADER_SIZE)
        return fail(s, LS_EBADTRAILER, off,
                    "trailer at offset %llu: says %llu records, last lsn %llu, payload %llu; "
                    "found %llu, %llu, %llu",
                    off, (unsigned long long) count, (unsigned long long) last,
                    (unsigned long long) payload, (unsigned long long) in->record_count,
                    (unsigned long long) in->last_lsn, off - LS_GEN_HEADER_SIZE);
    s->trl_off = off;
    s->off += LS_GEN_TRAILER_SIZE;
    s->phase = P_DONE;
    return 0;
}

static int do_unit(stream_t *s, const uint8_t *u, size_t n, ls_record_cb cb, void *ctx)
{
    if (s->phase == P_HEADER) return do_header(s, u);
    if (u[LS__REC_TYPE] == LS_REC_TRAILER) return do_trailer(s, u);
    return do_record(s, u, n, cb, ctx);
}

static int carry_append(stream_t *s, const uint8_t *p, size_t n)
{
    if (s->carry_len + n > s->carry_cap) {
        size_t cap = s->carry_cap ? s->carry_cap : CARRY_MIN;
        while (cap < s->carry_len + n)
            cap *= 2;
        uint8_t *c = realloc(s->carry, cap);
        if (!c) {
            s->fatal = true;
            return fail(s, LS_ENOMEM, s->off, "out of memory assembling the unit at offset %llu",
                        (unsigned long long) s->off);
        }
        s->carry = c;
        s->carry_cap = cap;
    }
    memcpy(s->carry + s->carry_len, p, n);
    s->carry_len += n;
    return 0;
}

/* Completes the unit begun in carry from *p (advancing it); 0 with *n == 0 while incomplete. */
static int feed_carry(stream_t *s, const uint8_t **p, size_t *n, ls_record_cb cb, void *ctx)
{
    size_t need = 0;
    for (;;) {
        int rc = unit_need(s, s->carry, s->carry_len, &need);
        if (rc) return rc;
        if (s->carry_len >= need) break;
        if (*n == 0) return 0;
        size_t take = LS_MIN(need - s->carry_len, *n);
        if ((rc = carry_append(s, *p, take))) return rc;
        *p += take;
        *n -= take;
    }
    int rc = do_unit(s, s->carry, need, cb, ctx);
    hash_flush(s); /* before carry is overwritten */
    s->carry_len = 0;
    return rc;
}

ls_gen_stream_t *ls_gen_stream_new(void)
{
    return calloc(1, sizeof(stream_t));
}

void ls__gen_stream_release(stream_t *s)
{
    ls_sha256_free(s->sha);
    free(s->carry);
}

void ls_gen_stream_free(ls_gen_stream_t *s)
{
    if (!s) return;
    ls__gen_stream_release(s);
    free(s);
}

void ls__gen_stream_init(stream_t *s, const ls_gen_expect_t *expect, unsigned flags)
{
    memset(s, 0, sizeof(*s));
    ls_gen_stream_begin(s, expect, flags);
}

void ls_gen_stream_begin(ls_gen_stream_t *s, const ls_gen_expect_t *expect, unsigned flags)
{
    static const ls_gen_expect_t none;
    ls_sha256_t *sha = s->sha;
    if (s->carry_cap > CARRY_KEEP) { /* one huge record must not stay allocated for ever */
        free(s->carry);
        s->carry = NULL;
        s->carry_cap = 0;
    }
    uint8_t *carry = s->carry;
    size_t cap = s->carry_cap;
    memset(s, 0, sizeof(*s));
    s->sha = sha;
    s->carry = carry;
    s->carry_cap = cap;
    s->ex = expect ? expect : &none;
    s->flags = flags;
}

int ls_gen_stream_feed(ls_gen_stream_t *s, const uint8_t *p, size_t n, ls_record_cb cb, void *ctx)
{
    if (s->cbrc) return s->cbrc;
    if (s->v.code) return s->v.code;
    s->fed += n;
    if (s->fed > LS_GEN_HARD_CAP) {
        s->fatal = true;
        return fail(s, LS_ETOOBIG, LS_GEN_HARD_CAP,
                    "generation of at least %llu bytes exceeds the cap of %u",
                    (unsigned long long) s->fed, LS_GEN_HARD_CAP);
    }
    int rc = 0;
    while (rc == 0 && n > 0) {
        if (s->phase == P_DONE) {
            s->after += n;
            break;
        }
        if (s->carry_len) {
            rc = feed_carry(s, &p, &n, cb, ctx);
            continue;
        }
        size_t need = 0;
        if ((rc = unit_need(s, p, n, &need))) break;
        if (n < need) {
            rc = carry_append(s, p, n);
            break;
        }
        rc = do_unit(s, p, need, cb, ctx);
        p += need;
        n -= need;
    }
    hash_flush(s); /* the caller's bytes are borrowed for this call only */
    return rc;
}

bool ls_gen_stream_header(const ls_gen_stream_t *s, ls_gen_header_t *out)
{
    if (s->info.header_ok && out) *out = s->info.header;
    return s->info.header_ok;
}

/* No more bytes: what is missing, what follows the trailer, the open transaction, the digest. */
static void finish(stream_t *s)
{
    unsigned long long off = s->off, have = s->carry_len;
    if (s->phase == P_HEADER) {
        s->fatal = true;
        s->v.code =
            ls__logfmt_header_check(s->carry, s->carry_len, true, NULL, s->v.msg, sizeof(s->v.msg));
        return;
    }
    if (s->phase == P_BODY) {
        if (have == 0)
            fail(s, LS_ENOTRAILER, off, "no trailer at offset %llu (after %llu records)", off,
                 (unsigned long long) s->info.record_count);
        else if (have < LS_REC_HEADER_SIZE)
            fail(s, LS_ETRUNCATED, off,
                 "record at offset %llu: truncated header (%llu of %d bytes)", off, have,
                 LS_REC_HEADER_SIZE);
        else if (s->carry[LS__REC_TYPE] == LS_REC_TRAILER)
            fail(s, LS_ETRUNCATED, off, "trailer at offset %llu: truncated (%llu of %d bytes)", off,
                 have, LS_GEN_TRAILER_SIZE);
        else
            fail(s, LS_ETRUNCATED, off,
                 "record at offset %llu: truncated (length %u, %llu bytes left)", off,
                 ls_get32(s->carry + LS__REC_LEN), have);
        return;
    }
    unsigned long long t = s->trl_off;
    if (s->after) {
        fail(s, LS_EBADTRAILER, t, "trailer at offset %llu: %llu bytes follow it", t,
             (unsigned long long) s->after);
        return;
    }
    if (s->in_txn) {
        fail(s, LS_EBADTRAILER, t,
             "trailer at offset %llu: generation ends inside transaction %llu", t,
             (unsigned long long) s->txn);
        return;
    }
    uint8_t digest[LS_DIGEST_SIZE];
    if (s->ex->known_digest) {
        memcpy(digest, s->ex->known_digest, LS_DIGEST_SIZE);
    } else if (s->hashing) {
        hash_flush(s);
        ls_sha256_final(s->sha, digest);
    } else { /* trusted without a known digest: the trailer's, unchecked */
        memcpy(digest, s->trl.digest, LS_DIGEST_SIZE);
    }
    if (memcmp(digest, s->trl.digest, LS_DIGEST_SIZE) != 0) {
        char a[17], b[17];
        ls_hex(s->trl.digest, 8, a);
        ls_hex(digest, 8, b);
        fail(s, LS_EDIGEST, t,
             "trailer at offset %llu: digest mismatch (stored %s..., computed %s...)", t, a, b);
        return;
    }
    s->info.trailer = s->trl;
    memcpy(s->info.digest, digest, LS_DIGEST_SIZE);
    s->info.closed = true;
}

int ls_gen_stream_end(ls_gen_stream_t *s, ls_gen_info_t *info, ls_gen_verdict_t *verdict)
{
    if (!s->cbrc && !s->v.code) finish(s);
    int rc = s->cbrc ? s->cbrc : s->v.code;
    if (!s->cbrc && rc && s->ex->allow_open && !s->fatal) {
        /* A torn or open tail: msg and offset say where and why the walk stopped. */
        s->v.code = 0;
        rc = 0;
    }
    if (info) *info = s->info;
    if (verdict) *verdict = s->v;
    return rc;
}
