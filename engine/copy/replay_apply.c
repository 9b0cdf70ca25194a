/*
 * Applying a replay batch: the verified generations are parsed by ls_gen_stream in trusted mode
 * (structure only: the seal proved the bytes are the ones inspected) before the transaction into
 * a list of operations sorted by key (stable), of which only the last of each key is applied,
 * with the meta record, in ONE ls_store_apply: the same final state as every record in LSN
 * order, LMDB's B-tree walked in order. Records with LSN <= meta.lsn are skipped (idempotent; the
 * seed hand-off; the records the block-mode shadow applied early).
 */
#include <endian.h>
#include <stdlib.h>

#include "copy/replay_int.h"

#define YIELD_OPS 1024u /* the yield is re-evaluated every this many operations */
#define PREFETCH                                                                                   \
    16u /* operations ahead in key order: the op fetched, half as far ahead                        \
           its key and value (random places in the chunk's buffer) */

/* The sort key of o: its bytes [lcp, lcp + 16) as two big-endian words, zero padded. */
static inline skey_t sort_key(const op_t *o, size_t lcp, uint32_t seq)
{
    uint8_t w[16] = {0};
    uint64_t k0, k1;
    if (o->key_len > lcp) memcpy(w, o->key + lcp, LS_MIN((size_t) o->key_len - lcp, sizeof(w)));
    memcpy(&k0, w, 8);
    memcpy(&k1, w + 8, 8);
    return (skey_t){.k0 = be64toh(k0),
                    .k1 = be64toh(k1),
                    .seq = seq,
                    .len = o->key_len << 1 | (o->key_len > lcp + 16)};
}

/* Collects a record of the batch (past base_lsn) as an operation to sort. */
static int collect_record(void *ctx, const ls_record_t *r)
{
    batch_t *b = ctx;
    if (r->lsn <= b->base_lsn || (r->type != LS_REC_PUT && r->type != LS_REC_DEL))
        return 0; /* COMMIT: the transaction's end; the batch commits as one */
    if (b->nops == b->ops_cap) {
        size_t cap = b->ops_cap ? b->ops_cap * 2 : 4096;
        op_t *ops = realloc(b->ops, cap * sizeof(*ops));
        if (ops) b->ops = ops;
        skey_t *keys = ops ? realloc(b->keys, cap * sizeof(*keys)) : NULL;
        if (!keys) return LS_ENOMEM;
        b->keys = keys;
        b->ops_cap = cap;
    }
    op_t *o = &b->ops[b->nops];
    *o = (op_t){.key = r->key,
                .value = r->value,
                .key_len = r->key_len,
                .value_len = r->value_len,
                .type = r->type};
    /* While the key is in cache: the common prefix so far and the sort key as if it stays
     * empty (sort_batch builds them again when it is not). */
    if (b->nops == 0) {
        b->lcp = o->key_len;
    } else if (b->lcp) {
        size_t n = LS_MIN(b->lcp, (size_t) o->key_len), j = 0;
        while (j < n && o->key[j] == b->ops[0].key[j])
            j++;
        b->lcp = j;
    }
    b->keys[b->nops] = sort_key(o, 0, (uint32_t) b->nops);
    b->nops++;
    return 0;
}

/* Applies a record directly, in LSN order (when there was no memory to sort). */
static int apply_record(void *ctx, const ls_record_t *r)
{
    void **a = ctx;
    batch_t *b = a[0];
    ls_store_txn_t *txn = a[1];
    if (r->lsn <= b->base_lsn) return 0;
    b->txn_ops++;
    if (r->type == LS_REC_PUT) return ls_store_put(txn, r->key, r->key_len, r->value, r->value_len);
    if (r->type == LS_REC_DEL) return ls_store_del(txn, r->key, r->key_len);
    return 0;
}

/* LMDB's key order (bytes, then length), then the batch's order: a total order (seq is unique),
 * so any sort gives the stable result. Every key of the batch starts with the same lcp bytes,
 * then k0 and k1: comparing them first is comparing those bytes. */
static inline int key_cmp(const batch_t *b, const skey_t *x, const skey_t *y)
{
    if (x->k0 != y->k0) return x->k0 < y->k0 ? -1 : 1;
    if (x->k1 != y->k1) return x->k1 < y->k1 ? -1 : 1;
    if (x->len & y->len & 1) {
        size_t from = b->lcp + 16, n = LS_MIN(x->len, y->len) >> 1;
        int c = memcmp(b->ops[x->seq].key + from, b->ops[y->seq].key + from, n - from);
        if (c) return c;
    }
    if (x->len >> 1 != y->len >> 1) return x->len >> 1 < y->len >> 1 ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static inline void key_swap(skey_t *x, skey_t *y)
{
    skey_t t = *x;
    *x = *y;
    *y = t;
}

/* Heapsort of k[0, n): the fallback that bounds the quicksort below at O(n log n). */
static void heap_sort(const batch_t *b, skey_t *k, size_t n)
{
    for (size_t i = n / 2; n > 1;) {
        size_t root = i > 0 ? --i : (key_swap(&k[0], &k[--n]), 0);
        for (size_t child; (child = 2 * root + 1) < n; root = child) {
            if (child + 1 < n && key_cmp(b, &k[child], &k[child + 1]) < 0) child++;
            if (key_cmp(b, &k[root], &k[child]) >= 0) break;
            key_swap(&k[root], &k[child]);
        }
    }
}

/* Introsort of k[0, n): median-of-three quicksort on the smaller side, insertion sort for short
 * runs, heapsort when the depth budget is spent. In place (no buffer the size of the batch, as
 * qsort's merge sort takes), and the comparison inlined. */
static void sort_keys(const batch_t *b, skey_t *k, size_t n, unsigned depth)
{
    while (n > 16) {
        if (depth-- == 0) {
            heap_sort(b, k, n);
            return;
        }
        size_t mid = n / 2;
        if (key_cmp(b, &k[mid], &k[0]) < 0) key_swap(&k[mid], &k[0]);
        if (key_cmp(b, &k[n - 1], &k[0]) < 0) key_swap(&k[n - 1], &k[0]);
        if (key_cmp(b, &k[n - 1], &k[mid]) < 0) key_swap(&k[n - 1], &k[mid]);
        skey_t pivot = k[mid]; /* k[0] <= pivot <= k[n - 1]: sentinels for the scans */
        size_t i = 0, j = n - 1;
        for (;;) {
            while (key_cmp(b, &k[++i], &pivot) < 0) {}
            while (key_cmp(b, &pivot, &k[--j]) < 0) {}
            if (i >= j) break;
            key_swap(&k[i], &k[j]);
        }
        /* [0, j] <= pivot <= [j + 1, n) */
        if (j + 1 < n - j - 1) {
            sort_keys(b, k, j + 1, depth);
            k += j + 1;
            n -= j + 1;
        } else {
            sort_keys(b, k + j + 1, n - j - 1, depth);
            n = j + 1;
        }
    }
    for (size_t i = 1; i < n; i++) {
        skey_t t = k[i];
        size_t j = i;
        for (; j > 0 && key_cmp(b, &t, &k[j - 1]) < 0; j--)
            k[j] = k[j - 1];
        k[j] = t;
    }
}

/* Parses every verified generation of the batch (trusted: structure only) and collects its
 * operations (cb collect_record) or applies them (cb apply_record). */
static int parse_batch(batch_t *b, ls_record_cb cb, void *ctx)
{
    for (size_t i = 0; i < b->ok; i++) {
        /* The bytes are the ones inspected (their seal matched): structure only, no checksum; the
         * trailer must still carry the inspected digest and the header the inspected chain. The
         * whole file is fed at once, so every record points into b->buf[i]. */
        const ls__copy_entry_t *e = &b->e[i];
        ls_gen_expect_t ex = {.epoch = e->epoch,
                              .generation = e->generation,
                              .prev_digest = e->prev_digest,
                              .known_digest = e->digest};
        ls_gen_info_t info;
        ls_gen_verdict_t v;
        ls_gen_stream_begin(b->st, &ex, LS_GEN_STREAM_TRUSTED);
        int rc = ls_gen_stream_feed(b->st, b->buf[i], b->len[i], cb, ctx);
        if (rc == 0) rc = ls_gen_stream_end(b->st, &info, &v);
        if (rc) return rc;
        LS__COPY_COUNT(b->c, record_checksums, info.record_checksums); /* 0: trusted */
    }
    return 0;
}

/* Parses the chunk into b->ops, sorted by key (stable). False when there was no memory (the
 * chunk is then applied in LSN order) or on a parse error (kept in *rc). */
static bool sort_batch(batch_t *b, int *rc)
{
    b->nops = 0;
    *rc = parse_batch(b, collect_record, b);
    b->ops_failed = *rc == LS_ENOMEM;
    if (b->ops_failed) *rc = 0;
    if (*rc || b->ops_failed) return false;
    if (b->nops == 0) b->lcp = 0;
    for (size_t i = 0; b->lcp && i < b->nops; i++) /* a common prefix: past it */
        b->keys[i] = sort_key(&b->ops[i], b->lcp, (uint32_t) i);
    unsigned depth = 0;
    for (size_t n = b->nops; n > 1; n >>= 1)
        depth += 2;
    sort_keys(b, b->keys, b->nops, depth);
    return true;
}

/* The chunk's records past b->base_lsn into the transaction: in key order, only the last write
 * of each key (the same final state as every record in LSN order, since the transaction commits
 * as one), or, without memory for the sorted list, every record in order. */
static int apply_chunk(batch_t *b, ls_store_txn_t *txn)
{
    int rc = 0;
    ls__copy_replay_yield(b, true);
    if (!sort_batch(b, &rc) && rc == 0) {
        void *a[2] = {b, txn};
        rc = parse_batch(b, apply_record, a);
    } else {
        for (size_t i = 0; rc == 0 && i < b->nops; i++) {
            const skey_t *k = &b->keys[i];
            if (i + PREFETCH < b->nops) __builtin_prefetch(&b->ops[k[PREFETCH].seq]);
            if (i + PREFETCH / 2 < b->nops) {
                const op_t *p = &b->ops[k[PREFETCH / 2].seq];
                __builtin_prefetch(p->key);
                __builtin_prefetch(p->value);
            }
            const op_t *o = &b->ops[k->seq];
            if (i + 1 < b->nops && k->k0 == k[1].k0 && k->k1 == k[1].k1 && k->len == k[1].len &&
                (!(k->len & 1) || memcmp(o->key, b->ops[k[1].seq].key, o->key_len) == 0))
                continue; /* a later write of the same key follows */
            rc = o->type == LS_REC_PUT
                     ? ls_store_put(txn, o->key, o->key_len, o->value, o->value_len)
                     : ls_store_del(txn, o->key, o->key_len);
            b->txn_ops++;
            if (i % YIELD_OPS == YIELD_OPS - 1) ls__copy_replay_yield(b, true);
        }
    }
    return rc;
}

/* The meta record after the chunk's verified prefix: its last generation's position and digest,
 * the highest txid, applied_generations + b->ok; records up to the position before are skipped
 * (b->base_lsn). */
static void meta_add(batch_t *b, ls_store_meta_t *nm)
{
    const ls__copy_entry_t *last = &b->e[b->ok - 1];
    b->base_lsn = nm->lsn;
    nm->epoch = last->epoch;
    nm->generation = last->generation;
    nm->digest_generation = last->generation;
    memcpy(nm->digest, last->digest, LS_DIGEST_SIZE);
    nm->shadow_end = 0; /* generation applied completely: no early-apply proof left */
    memset(nm->shadow_seal, 0, sizeof(nm->shadow_seal));
    nm->lsn = LS_MAX(nm->lsn, last->last_lsn);
    for (size_t i = 0; i < b->ok; i++)
        nm->txid = LS_MAX(nm->txid, b->e[i].last_txid);
    nm->applied_generations += b->ok;
}

/* Reads and checks the chunk in b->e against the position *nm; a generation that fails is
 * recorded (b->dmg_*): the transaction ends before it. */
static void verify_chunk(ls_copy_t *c, batch_t *b, const ls_store_meta_t *nm)
{
    ls__copy_replay_yield(b, true);
    int rc = ls__copy_replay_verify(c, b, nm, b->dmg_msg, sizeof(b->dmg_msg));
    if (rc) {
        b->dmg_rc = rc;
        b->dmg_gen = b->e[b->ok].generation;
    }
}

/* The store callback: the chunk read, then while more generations are ready (and none failed
 * its check), the next chunk read into the same buffer and applied in the same transaction; b->nm
 * (the meta ls_store_apply writes after this returns) follows each chunk applied. Re-runnable:
 * after MDB_MAP_FULL the store calls it again with a new transaction, and it starts over from the
 * queue's head, reading the files again (checked again: a new read). */
static int apply_fn(void *ctx, ls_store_txn_t *txn)
{
    batch_t *b = ctx;
    if (b->attempts++ > 0) {
        b->done = 0;
        b->txn_ops = 0;
        b->done_bytes = 0;
        b->dmg_rc = 0;
        *b->nm = b->base;
        ls__copy_replay_yield(b, false); /* ls__copy_replay_next takes mu */
        if (ls__copy_replay_next(b->c, b) == 0) return 0;
        verify_chunk(b->c, b, b->nm);
    }
    while (b->ok) {
        meta_add(b, b->nm);
        int rc = apply_chunk(b, txn);
        if (rc) return rc;
        b->done += b->ok;
        for (size_t i = 0; i < b->ok; i++)
            b->done_bytes += b->e[i].size;
        if (b->dmg_rc) break; /* commit what was verified before it */
        if (LS_MIN(b->txn_ops, b->tree_pages + b->txn_ops / 8) >= b->c->o.batch_pages)
            break; /* as many pages dirty as LMDB should hold copies of: commit */
        ls__copy_replay_yield(b, false); /* ls__copy_replay_next takes mu */
        if (ls__copy_replay_next(b->c, b) == 0) break;
        verify_chunk(b->c, b, b->nm);
    }
    if (LS_FAULT("copy.replay.before_commit")) return LS_EIO;
    return 0;
}

/* A store error: DISK_FULL (retried) or FAILED (mu not held). */
static void store_failed(ls_copy_t *c, const batch_t *b, int rc)
{
    char reason[512];
    ls_msgf(
        reason, sizeof(reason), "copy %s: applying generations %llu..%llu to the store failed: %s",
        c->dir, (unsigned long long) b->first_gen,
        (unsigned long long) (b->first_gen + b->done + (b->ok ? b->ok - 1 : 0)), ls_strerror(rc));
    ls__copy_store_failed(c, rc, reason);
}

int ls__copy_replay_apply(ls_copy_t *c, batch_t *b, ls_store_meta_t *nm)
{
    b->base = *nm;
    b->nm = nm;
    b->first_gen = b->e[0].generation;
    b->attempts = 0;
    b->done = 0;
    b->done_bytes = 0;
    b->txn_ops = 0;
    ls_store_stats_t ss;
    b->tree_pages = ls_store_stats(c->store, &ss) == 0 ? ss.pages : 0;
    int rc = ls_store_apply(c->store, apply_fn, b, nm);
    ls__copy_replay_yield(b, false); /* before store_failed takes mu */
    if (rc) {
        store_failed(c, b, rc);
        b->done = 0; /* nothing of it was committed */
        return rc;
    }
    LS_FAULT("copy.replay.after_commit");
    ls_store_release_pages(c->store);
    return 0;
}
