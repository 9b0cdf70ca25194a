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
 * Entries of 32 bytes carry the key's first 16 bytes as two big-endian integers. When few of
 * those 16 byte positions vary across the chain (keys with a common prefix, such as counters
 * or ids in text: the writer row's "k%012u" vary in 5), a stable LSD radix sort on the varying
 * positions alone (one counting pass each, after one pass that finds them), then a stable
 * merge sort (full comparison) of each run sharing the 16-byte prefix whose keys may still
 * differ (longer than 16 bytes, or different lengths); otherwise (random binary keys vary in
 * all 16) a stable bottom-up merge sort, where most comparisons end at the prefix. Only
 * stability and equal keys ending up adjacent matter for the store's content (the last write
 * of each key is kept); the order is LMDB's for its speed. The entry and scratch arrays are
 * reused between applies (first touches of fresh memory are slow here).
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

/* Stable merge sort of a[lo, hi) by cmp, b[lo, hi) as scratch; the result in a. */
static void merge_range(ls__keyop_t *a, ls__keyop_t *b, size_t lo, size_t hi)
{
    size_t n = hi - lo;
    ls__keyop_t *src = a + lo, *dst = b + lo;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t l = 0; l < n; l += 2 * w) {
            size_t mid = LS_MIN(l + w, n), h = LS_MIN(l + 2 * w, n), i = l, j = mid, o = l;
            while (i < mid && j < h)
                dst[o++] = cmp(&src[j], &src[i]) < 0 ? src[j++] : src[i++];
            while (i < mid)
                dst[o++] = src[i++];
            while (j < h)
                dst[o++] = src[j++];
        }
        ls__keyop_t *s = src;
        src = dst;
        dst = s;
    }
    if (src != a + lo) memcpy(a + lo, src, n * sizeof(*a));
}

/* Byte p of e's 16-byte prefix (0: the first). */
static unsigned prefix_byte(const ls__keyop_t *e, unsigned p)
{
    uint64_t w = p < 8 ? e->k0 : e->k1;
    return (unsigned) (w >> (56 - 8 * (p % 8))) & 0xff;
}

#define RADIX_MIN 512 /* fewer entries: the merge sort */

/* Sorts a[0, n) (scratch b) by the 16-byte prefix when few of its bytes vary, then each run of
 * equal prefixes by the full key; false (nothing done) when the merge sort is the cheaper. */
static bool radix_sort(ls__keysort_t *ks, size_t n)
{
    static __thread uint32_t hist[16][256];
    ls__keyop_t *a = ks->ops, *b = ks->tmp;
    memset(hist, 0, sizeof(hist));
    for (size_t i = 0; i < n; i++)
        for (unsigned p = 0; p < 16; p++)
            hist[p][prefix_byte(&a[i], p)]++;
    unsigned vary[16], nvary = 0, log2n = 0;
    for (size_t m = n; m > 1; m >>= 1)
        log2n++;
    for (unsigned p = 0; p < 16; p++)
        if (hist[p][prefix_byte(&a[0], p)] != n) vary[nvary++] = p;
    if (nvary >= log2n) return false;
    for (unsigned v = nvary; v-- > 0;) { /* least significant first: LSD, stable */
        uint32_t *h = hist[vary[v]], sum = 0;
        for (unsigned c = 0; c < 256; c++) {
            uint32_t k = h[c];
            h[c] = sum;
            sum += k;
        }
        for (size_t i = 0; i < n; i++)
            b[h[prefix_byte(&a[i], vary[v])]++] = a[i];
        ls__keyop_t *s = a;
        a = b;
        b = s;
    }
    ks->ops = a;
    ks->tmp = b;
    for (size_t lo = 0, hi; lo < n; lo = hi) { /* runs of one prefix: the full key decides */
        bool differ = false;
        size_t len0, len;
        key_of(&a[lo], &len0);
        for (hi = lo + 1; hi < n && a[hi].k0 == a[lo].k0 && a[hi].k1 == a[lo].k1; hi++) {
            key_of(&a[hi], &len);
            differ = differ || len != len0 || len > 16;
        }
        if (differ) merge_range(a, b, lo, hi);
    }
    return true;
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
    if (n < RADIX_MIN || !radix_sort(ks, n)) merge_range(a, b, 0, n);
    a = ks->ops;
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
