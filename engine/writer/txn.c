/*
 * Transactions: buffered blind writes, handed to the flusher at commit, acknowledged once durable
 * in the log (readable through the overlay from then on) and freed by the applier once applied.
 * A transaction's operations live in one arena; the flusher encodes them straight from it (no
 * copy per record) and the overlay points into it until the store holds them.
 */
#include <stdlib.h>

#include "writer/writer_int.h"

int ls_txn_begin(ls_db_t *db, ls_txn_t **out)
{
    *out = NULL;
    ls_txn_t *t = calloc(1, sizeof(*t));
    if (!t) return LS_ENOMEM;
    t->db = db;
    t->log_bytes = ls_record_size(0, 0); /* the COMMIT record */
    *out = t;
    return 0;
}

void ls_txn_abort(ls_txn_t *t)
{
    if (!t) return;
    free(t->ops);
    free(t->arena);
    free(t);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q) return LS_ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

static int add_op(ls_txn_t *t, uint8_t type, const void *key, size_t key_len, const void *val,
                  size_t val_len)
{
    if (!key || key_len == 0 || key_len > LS_KEY_MAX) return LS_EINVAL;
    if (val_len > LS_GEN_HARD_CAP || (val_len && !val)) return LS_EINVAL;
    int rc = grow((void **) &t->ops, &t->cap_ops, t->nops + 1, sizeof(ls__op_t));
    if (rc == 0) rc = grow((void **) &t->arena, &t->arena_cap, t->arena_len + key_len + val_len, 1);
    if (rc) return rc;
    ls__op_t *op = &t->ops[t->nops++];
    op->type = type;
    op->key_len = (uint32_t) key_len;
    op->value_len = (uint32_t) val_len;
    op->off = t->arena_len;
    memcpy(t->arena + t->arena_len, key, key_len);
    if (val_len) memcpy(t->arena + t->arena_len + key_len, val, val_len);
    t->arena_len += key_len + val_len;
    t->log_bytes += ls_record_size(op->key_len, op->value_len);
    return 0;
}

int ls_txn_put(ls_txn_t *t, const void *key, size_t key_len, const void *val, size_t val_len)
{
    return add_op(t, LS_REC_PUT, key, key_len, val, val_len);
}

int ls_txn_del(ls_txn_t *t, const void *key, size_t key_len)
{
    return add_op(t, LS_REC_DEL, key, key_len, NULL, 0);
}

/* Queues t and waits until the flusher made it durable (and visible through the overlay) or
 * failed it; a lone committer (no other committer inside a commit, the queue empty, no batch
 * being written) writes it itself (ls__flush_lead). From the queue on, t belongs to the pipeline:
 * the applier frees it once applied. */
int ls_txn_commit(ls_txn_t *t)
{
    ls_db_t *db = t->db;
    ls__commit_wait_t w = {0};
    int rc = 0;
    if (t->nops == 0) goto out;
    if (LS_GEN_HEADER_SIZE + t->log_bytes + LS_GEN_TRAILER_SIZE > db->opts.max_generation) {
        rc = LS_ETOOBIG;
        goto out;
    }
    pthread_mutex_lock(&db->mu);
    if (db->failed) {
        rc = db->failed;
    } else if (db->stopping) {
        rc = LS_ECLOSED;
    } else {
        t->waiter = &w;
        ls__sync_init(db, &w); /* a remote level: woken by its copies, not the flusher */
        bool local = db->opts.commit_level == LS_COMMIT_LOCAL;
        db->committers++;
        if (db->qtail)
            db->qtail->next = t;
        else
            db->qhead = t;
        db->qtail = t;
        if (db->committers == 1 && db->qhead == t && !db->flushing &&
            db->unapplied < db->opts.overlay_max) {
            /* Alone, nothing being written: it writes its batch itself (flusher.c). Only when
             * no other committer is inside a commit: with several, the next ones would queue
             * behind the leader's fdatasync and then wait for the flusher to wake, where the
             * flusher takes them right after its own sync (docs/WRITER.md, measured) */
            db->qhead = db->qtail = NULL;
            db->taken++;
            db->flushing = true;
            pthread_mutex_unlock(&db->mu);
            ls__flush_lead(db, t);
            pthread_mutex_lock(&db->mu);
        } else if (!db->flushing) {
            pthread_cond_signal(&db->wake); /* else the writer of that batch takes it next */
        }
        while (!w.done) {
            if (w.page || w.lsn) /* it watches its copies itself (sync.c) */
                ls__sync_wait(db, &w);
            else /* level local: its own condition variable, signalled for its batch alone */
                pthread_cond_wait(local ? &w.cv : &db->done, &db->mu);
        }
        t = NULL; /* the pipeline's now */
        rc = w.rc;
        ls__sync_fini(&w);
        if (--db->committers == 0 && db->stopping) pthread_cond_broadcast(&db->done); /* close */
    }
    pthread_mutex_unlock(&db->mu);
out:
    ls_txn_abort(t);
    return rc;
}
