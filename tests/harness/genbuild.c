/* genbuild: in-memory generation builder for tests (see genbuild.h). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "genbuild.h"

struct ls_h_gen {
    ls_h_gen_spec_t spec;
    uint64_t seed;
    uint8_t *buf;
    size_t len, cap;
    size_t *offs; /* record offsets */
    size_t nrec, offcap;
    uint64_t next_lsn;
    uint64_t txid; /* txid of the open transaction, or of the last one */
    bool in_txn;   /* records since the last COMMIT */
    size_t commit_end;
    bool closed;
    uint8_t digest[LS_DIGEST_SIZE];
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    cr_assert_not_null(q, "genbuild: out of memory");
    return q;
}

void ls_h_gen_spec_default(ls_h_gen_spec_t *spec, uint64_t generation, uint64_t first_lsn)
{
    memset(spec, 0, sizeof(*spec));
    for (int i = 0; i < LS_DBID_LEN; i++)
        spec->dbid[i] = (uint8_t) i;
    spec->epoch = 1;
    spec->generation = generation;
    spec->first_lsn = first_lsn;
}

ls_h_gen_t *ls_h_gen_default(uint64_t generation, uint64_t first_lsn)
{
    ls_h_gen_spec_t spec;
    ls_h_gen_spec_default(&spec, generation, first_lsn);
    return ls_h_gen_new(&spec);
}

static uint8_t *reserve(ls_h_gen_t *g, size_t n)
{
    if (g->len + n > g->cap) {
        g->cap = LS_MAX(g->cap * 2, g->len + n);
        g->buf = xrealloc(g->buf, g->cap);
    }
    uint8_t *p = g->buf + g->len;
    g->len += n;
    return p;
}

ls_h_gen_t *ls_h_gen_new(const ls_h_gen_spec_t *spec)
{
    ls_h_gen_t *g = calloc(1, sizeof(*g));
    cr_assert_not_null(g);
    g->spec = *spec;
    g->seed = ls_gen_seed(spec->dbid, spec->epoch, spec->generation);
    g->next_lsn = spec->first_lsn;
    g->txid = spec->first_txid ? spec->first_txid - 1 : 0;
    ls_gen_header_t h = {.epoch = spec->epoch,
                         .generation = spec->generation,
                         .first_lsn = spec->first_lsn,
                         .create_ns = LS_H_GEN_CREATE_NS};
    memcpy(h.dbid, spec->dbid, LS_DBID_LEN);
    if (spec->prev_digest) memcpy(h.prev_digest, spec->prev_digest, LS_DIGEST_SIZE);
    ls_gen_header_encode(&h, reserve(g, LS_GEN_HEADER_SIZE));
    g->commit_end = g->len;
    return g;
}

void ls_h_gen_free(ls_h_gen_t *g)
{
    if (!g) return;
    free(g->buf);
    free(g->offs);
    free(g);
}

void ls_h_gen_raw(ls_h_gen_t *g, const ls_record_t *r, uint64_t seed)
{
    cr_assert(!g->closed, "genbuild: record appended after the trailer");
    if (g->nrec == g->offcap) {
        g->offcap = g->offcap ? g->offcap * 2 : 64;
        g->offs = xrealloc(g->offs, g->offcap * sizeof(*g->offs));
    }
    g->offs[g->nrec++] = g->len;
    size_t n = ls_record_size(r->key_len, r->value_len);
    ls_record_encode(r, seed ? seed : g->seed, reserve(g, n));
    g->next_lsn = r->lsn + 1;
    g->txid = r->txid;
    g->in_txn = r->type != LS_REC_COMMIT;
    if (!g->in_txn) g->commit_end = g->len;
}

static void append(ls_h_gen_t *g, uint8_t type, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
    cr_assert(type == LS_REC_COMMIT || (klen >= 1 && klen <= LS_KEY_MAX),
              "genbuild: key length %zu out of range", klen);
    ls_record_t r = {.type = type,
                     .lsn = g->next_lsn,
                     .txid = g->in_txn ? g->txid : g->txid + 1,
                     .key = key,
                     .key_len = (uint32_t) klen,
                     .value = val,
                     .value_len = (uint32_t) vlen};
    ls_h_gen_raw(g, &r, 0);
}

void ls_h_gen_put(ls_h_gen_t *g, const void *key, size_t key_len, const void *val, size_t val_len)
{
    append(g, LS_REC_PUT, key, key_len, val, val_len);
}

void ls_h_gen_del(ls_h_gen_t *g, const void *key, size_t key_len)
{
    append(g, LS_REC_DEL, key, key_len, NULL, 0);
}

void ls_h_gen_commit(ls_h_gen_t *g)
{
    append(g, LS_REC_COMMIT, NULL, 0, NULL, 0);
}

void ls_h_gen_close(ls_h_gen_t *g)
{
    cr_assert(!g->closed, "genbuild: closed twice");
    ls_sha256(g->buf, g->len, g->digest);
    ls_gen_trailer_t t = {.record_count = g->nrec,
                          .last_lsn = g->next_lsn - 1,
                          .payload_len = g->len - LS_GEN_HEADER_SIZE,
                          .close_ns = LS_H_GEN_CLOSE_NS};
    memcpy(t.digest, g->digest, LS_DIGEST_SIZE);
    ls_gen_trailer_encode(&t, g->seed, reserve(g, LS_GEN_TRAILER_SIZE));
    g->closed = true;
}

const uint8_t *ls_h_gen_bytes(const ls_h_gen_t *g, size_t *len)
{
    *len = g->len;
    return g->buf;
}

uint8_t *ls_h_gen_copy(const ls_h_gen_t *g, size_t *len)
{
    uint8_t *p = xrealloc(NULL, g->len);
    memcpy(p, g->buf, g->len);
    *len = g->len;
    return p;
}

size_t ls_h_gen_count(const ls_h_gen_t *g)
{
    return g->nrec;
}

size_t ls_h_gen_offset(const ls_h_gen_t *g, size_t i)
{
    cr_assert_lt(i, g->nrec);
    return g->offs[i];
}

size_t ls_h_gen_commit_end(const ls_h_gen_t *g)
{
    return g->commit_end;
}

const uint8_t *ls_h_gen_digest(const ls_h_gen_t *g)
{
    return g->digest;
}

uint64_t ls_h_gen_seed(const ls_h_gen_t *g)
{
    return g->seed;
}

size_t ls_h_gen_change_resealed(uint8_t *bytes, size_t len, size_t rec, uint8_t mask)
{
    ls_gen_header_t h;
    cr_assert_eq(ls_gen_header_decode(bytes, len, &h), 0, "genbuild: not a generation");
    uint64_t seed = ls_gen_seed(h.dbid, h.epoch, h.generation);
    size_t off = LS_GEN_HEADER_SIZE;
    for (size_t i = 0;; i++) {
        cr_assert_leq(off + LS_REC_HEADER_SIZE, len, "genbuild: no record %zu", rec);
        uint8_t *u = bytes + off;
        cr_assert_neq(u[8], LS_REC_TRAILER, "genbuild: no record %zu", rec); /* the type byte */
        uint32_t total = ls_get32(u + 4), klen = ls_get16(u + 10), vlen = ls_get32(u + 12);
        cr_assert(total >= LS_REC_HEADER_SIZE && off + total <= len, "genbuild: bad record");
        if (i < rec) {
            off += total;
            continue;
        }
        cr_assert_gt(vlen, 0, "genbuild: record %zu has no value", rec);
        size_t at = off + LS_REC_HEADER_SIZE + klen;
        bytes[at] ^= mask;
        ls_put32(u, ls_cksum32(u + 4, total - 4, seed)); /* the checksum, over the rest */
        return at;
    }
}

uint8_t *ls_h_gen_build(const ls_h_gen_spec_t *spec, const ls_h_txn_t *txns, size_t ntxns,
                        size_t *len, uint8_t digest[LS_DIGEST_SIZE])
{
    ls_h_gen_t *g = ls_h_gen_new(spec);
    for (size_t t = 0; t < ntxns; t++) {
        for (size_t i = 0; i < txns[t].n; i++) {
            const ls_h_op_t *op = &txns[t].ops[i];
            if (op->type == LS_REC_DEL)
                ls_h_gen_del(g, op->key, strlen(op->key));
            else
                ls_h_gen_put(g, op->key, strlen(op->key), op->value,
                             op->value ? strlen(op->value) : 0);
        }
        ls_h_gen_commit(g);
    }
    ls_h_gen_close(g);
    uint8_t *out = ls_h_gen_copy(g, len);
    if (digest) memcpy(digest, g->digest, LS_DIGEST_SIZE);
    ls_h_gen_free(g);
    return out;
}

void ls_h_gen_path(char *out, size_t len, const char *dir, uint32_t epoch, uint64_t gen)
{
    char name[LS_GEN_NAME_MAX];
    cr_assert_eq(ls_gen_name(name, sizeof(name), LS_GEN_PREFIX_DEFAULT, epoch, gen), 0,
                 "generation %llu of epoch %u: no name", (unsigned long long) gen, epoch);
    int n = snprintf(out, len, "%s/%s", dir, name);
    cr_assert(n > 0 && (size_t) n < len, "%s/%s: path too long", dir, name);
}
