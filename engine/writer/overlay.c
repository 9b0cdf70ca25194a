/*
 * The overlay: committed (durable) writes the store does not hold yet, so ls_db_get() sees every
 * acknowledged commit while the applier is behind.
 *
 * An open-addressing hash table (linear probing, backward-shift deletion: no tombstones) from a
 * key to its latest durable operation: its LSN and, for a put, its value. Keys and values are
 * borrowed from the arenas of the transactions holding them; the applier frees a transaction
 * only after trimming the entries its apply made redundant, and an entry always points at the
 * transaction with the entry's LSN, the latest for that key, so no entry outlives its bytes.
 *
 * Threading: `lock` is a leaf rwlock (no other lock is taken while holding it). The flusher
 * inserts (write lock) after a batch's fdatasync and before acknowledging it; the applier trims
 * (write lock) after its store transaction committed; readers look up under the read lock and
 * copy the value out before releasing it.
 */
#include <stdlib.h>

#include "writer/writer_int.h"

#define MIN_CAP 1024u

typedef struct ls__ov_entry {
    const uint8_t *key; /* borrowed from a transaction's arena; NULL: empty slot */
    const uint8_t *val; /* borrowed; NULL for a delete */
    uint64_t hash;      /* ls_hash64 of the key */
    uint64_t lsn;       /* LSN of the operation */
    uint32_t key_len;   /* bytes */
    uint32_t val_len;   /* bytes (0 for a delete) */
} ls__ov_entry_t;

int ls__ov_init(ls__overlay_t *ov)
{
    *ov = (ls__overlay_t){0};
    return pthread_rwlock_init(&ov->lock, NULL) ? LS_ENOMEM : 0;
}

void ls__ov_destroy(ls__overlay_t *ov)
{
    free(ov->slots);
    pthread_rwlock_destroy(&ov->lock);
}

static uint64_t key_hash(const void *key, size_t len)
{
    return ls_hash64(key, len, 0x6f7665726c6179ull); /* "overlay" */
}

/* The slot holding key, or the empty slot where it would go. */
static size_t find(const ls__overlay_t *ov, uint64_t h, const void *key, uint32_t len)
{
    size_t mask = ov->cap - 1, i = (size_t) h & mask;
    for (;; i = (i + 1) & mask) {
        const ls__ov_entry_t *e = &ov->slots[i];
        if (!e->key) return i;
        if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0) return i;
    }
}

/* Rehashes into a table of cap slots (write lock held). */
static int rehash(ls__overlay_t *ov, size_t cap)
{
    ls__ov_entry_t *old = ov->slots;
    size_t old_cap = ov->cap;
    ov->slots = calloc(cap, sizeof(*ov->slots));
    if (!ov->slots) {
        ov->slots = old;
        return LS_ENOMEM;
    }
    ov->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key) ov->slots[find(ov, old[i].hash, old[i].key, old[i].key_len)] = old[i];
    free(old);
    return 0;
}

/* Makes room for n more keys at a load factor of at most 1/2 (write lock held). */
static int reserve(ls__overlay_t *ov, size_t n)
{
    size_t cap = ov->cap ? ov->cap : MIN_CAP;
    while ((ov->count + n) * 2 > cap)
        cap *= 2;
    return cap == ov->cap ? 0 : rehash(ov, cap);
}

static void put_op(ls__overlay_t *ov, const ls_txn_t *t, size_t i)
{
    const ls__op_t *op = &t->ops[i];
    const uint8_t *key = t->arena + op->off;
    uint64_t h = key_hash(key, op->key_len);
    ls__ov_entry_t *e = &ov->slots[find(ov, h, key, op->key_len)];
    if (!e->key) ov->count++;
    *e = (ls__ov_entry_t){.key = key,
                          .val = op->type == LS_REC_PUT ? key + op->key_len : NULL,
                          .hash = h,
                          .lsn = t->first_lsn + i,
                          .key_len = op->key_len,
                          .val_len = op->value_len};
}

int ls__ov_insert(ls__overlay_t *ov, const ls_txn_t *batch)
{
    size_t n = 0;
    for (const ls_txn_t *t = batch; t; t = t->next)
        n += t->nops;
    pthread_rwlock_wrlock(&ov->lock);
    int rc = reserve(ov, n);
    for (const ls_txn_t *t = batch; rc == 0 && t; t = t->next)
        for (size_t i = 0; i < t->nops; i++)
            put_op(ov, t, i); /* in LSN order: the latest operation of a key wins */
    pthread_rwlock_unlock(&ov->lock);
    return rc;
}

/* Empties slot i and shifts the entries of its probe run back (write lock held). */
static void remove_at(ls__overlay_t *ov, size_t i)
{
    size_t mask = ov->cap - 1;
    for (size_t j = (i + 1) & mask; ov->slots[j].key; j = (j + 1) & mask) {
        size_t home = (size_t) ov->slots[j].hash & mask;
        /* j's entry may move to i when its home is not in the cyclic range (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays) continue;
        ov->slots[i] = ov->slots[j];
        i = j;
    }
    ov->slots[i] = (ls__ov_entry_t){0};
    ov->count--;
}

size_t ls__ov_trim(ls__overlay_t *ov, const ls_txn_t *chain, uint64_t applied_lsn)
{
    size_t removed = 0;
    pthread_rwlock_wrlock(&ov->lock);
    for (const ls_txn_t *t = chain; ov->count && t; t = t->next) {
        for (size_t i = 0; i < t->nops; i++) {
            const ls__op_t *op = &t->ops[i];
            const uint8_t *key = t->arena + op->off;
            size_t s = find(ov, key_hash(key, op->key_len), key, op->key_len);
            /* A later write of the key (not applied yet) stays. */
            if (ov->slots[s].key && ov->slots[s].lsn <= applied_lsn) {
                remove_at(ov, s);
                removed++;
            }
        }
    }
    /* Gives back the memory of a burst: a quarter of the table once it is 1/8 full (still at
     * most half full after), never below MIN_CAP. Without memory it stays as it is. */
    if (ov->cap > MIN_CAP && ov->count * 8 < ov->cap) {
        size_t cap = ov->cap / 4 < MIN_CAP ? MIN_CAP : ov->cap / 4;
        (void) rehash(ov, cap);
    }
    pthread_rwlock_unlock(&ov->lock);
    return removed;
}

int ls__ov_get(ls__overlay_t *ov, const void *key, size_t key_len, void **val, size_t *val_len)
{
    if (key_len == 0 || key_len > LS_KEY_MAX) return LS_EINVAL;
    uint64_t h = key_hash(key, key_len);
    int rc = 1;
    pthread_rwlock_rdlock(&ov->lock);
    if (ov->count) {
        const ls__ov_entry_t *e = &ov->slots[find(ov, h, key, (uint32_t) key_len)];
        if (e->key && !e->val) {
            rc = LS_ENOENT; /* deleted by a commit the store does not hold yet */
        } else if (e->key) {
            uint8_t *p = malloc((size_t) e->val_len + 1);
            rc = p ? 0 : LS_ENOMEM;
            if (p) {
                memcpy(p, e->val, e->val_len);
                p[e->val_len] = 0;
                *val = p;
                *val_len = e->val_len;
            }
        }
    }
    pthread_rwlock_unlock(&ov->lock);
    return rc;
}

size_t ls__ov_count(ls__overlay_t *ov)
{
    pthread_rwlock_rdlock(&ov->lock);
    size_t n = ov->count;
    pthread_rwlock_unlock(&ov->lock);
    return n;
}
