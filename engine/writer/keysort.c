/*
 * keysort: the applier's operations in key order (LMDB's order: bytes, then the shorter first).
 *
 * LMDB inserts keys in order several times faster than in random order (each put descends to
 * the leaf the previous one dirtied: reference/machine-limits.md §5), so the applier applies a
 * merged chain of batches sorted by key instead of in LSN order. One store transaction holds the
 * whole chain, so only the final state of each key matters: the sort is stable (a key's
 * operations stay in LSN order) and only the LAST operation of each key is applied, which is the
 * one the log replay would leave (last write wins). Readers never see the store mid-transaction.
 *
 * A stable bottom-up merge sort over 32-byte entries carrying the key's first 16 bytes as two
 * big-endian integers (most comparisons end there); the entry and scratch arrays are reused
 * between applies (first touches of fresh memory are slow here).
 */
#include <stdlib.h>

#include "writer/writer_int.h"

/* Up to 8 bytes of p (n of them) as a big-endian integer, zero-padded on the right. */
static uint64_t load_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < 8; i++)
        v = v << 8 | (i < n ? p[i] : 0);
    return v;
}

static const uint8_t *key_of(const ls__keyop_t *e, size_t *len)
{
    const ls__op_t *op = &e->t->ops[e->op];
    *len = op->key_len;
    return e->t->arena + op->off;
}

/* <0, 0 (the same key), >0 in LMDB's default order (memcmp, then the shorter first). */
static int cmp(const ls__keyop_t *a, const ls__keyop_t *b)
{
    if (a->k0 != b->k0) return a->k0 < b->k0 ? -1 : 1;
    if (a->k1 != b->k1) return a->k1 < b->k1 ? -1 : 1;
    size_t la, lb;
    const uint8_t *ka = key_of(a, &la), *kb = key_of(b, &lb);
    size_t m = la < lb ? la : lb;
    if (m > 16) {
        int c = memcmp(ka + 16, kb + 16, m - 16);
        if (c) return c;
    }
    return la == lb ? 0 : la < lb ? -1 : 1;
}

static int reserve(ls__keysort_t *ks, size_t n)
{
    if (n <= ks->cap) return 0;
    size_t c = ks->cap ? ks->cap : 4096;
    while (c < n)
        c *= 2;
    ls__keyop_t *a = realloc(ks->ops, c * sizeof(*a));
    if (!a) return LS_ENOMEM;
    ks->ops = a;
    ls__keyop_t *b = realloc(ks->tmp, c * sizeof(*b));
    if (!b) return LS_ENOMEM;
    ks->tmp = b;
    ks->cap = c;
    return 0;
}

int ls__keysort_chain(ls__keysort_t *ks, const ls_txn_t *chain)
{
    size_t n = 0;
    for (const ls_txn_t *t = chain; t; t = t->next)
        n += t->nops;
    ks->n = 0;
    int rc = reserve(ks, n);
    if (rc) return rc;
    ls__keyop_t *a = ks->ops, *b = ks->tmp;
    for (const ls_txn_t *t = chain; t; t = t->next) {
        for (size_t i = 0; i < t->nops; i++) {
            const ls__op_t *op = &t->ops[i];
            const uint8_t *k = t->arena + op->off;
            ls__keyop_t *e = &a[ks->n++];
            e->k0 = load_be(k, op->key_len);
            e->k1 = op->key_len > 8 ? load_be(k + 8, op->key_len - 8) : 0;
            e->t = t;
            e->op = (uint32_t) i;
        }
    }
    /* Bottom-up merge sort: runs of w merged into runs of 2w; stable (left wins ties). */
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = LS_MIN(lo + w, n), hi = LS_MIN(lo + 2 * w, n), i = lo, j = mid, o = lo;
            while (i < mid && j < hi)
                b[o++] = cmp(&a[j], &a[i]) < 0 ? a[j++] : a[i++];
            while (i < mid)
                b[o++] = a[i++];
            while (j < hi)
                b[o++] = a[j++];
        }
        ls__keyop_t *s = a;
        a = b;
        b = s;
    }
    ks->ops = a;
    ks->tmp = b;
    /* Keep the last operation of each key (the latest LSN: the sort kept LSN order). */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && cmp(&a[i], &a[i + 1]) == 0) continue;
        a[m++] = a[i];
    }
    ks->n = m;
    return 0;
}

void ls__keysort_free(ls__keysort_t *ks)
{
    free(ks->ops);
    free(ks->tmp);
    *ks = (ls__keysort_t){0};
}
