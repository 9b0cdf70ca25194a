/*
 * The applier: stage 2 of the commit pipeline. It applies the batches the flusher made durable
 * (and already acknowledged: their writes are readable through the overlay) to the store, in LSN
 * order; it also checkpoints the store on its timer.
 *
 * Each pass first lets durable batches gather while more are coming (gather(), gather.h's rule:
 * until a quarter of overlay_max of log waits, or for GATHER_LONG_NS, or the commits pause for
 * GATHER_IDLE_NS, or a checkpoint call or close; at a remote commit level with few committers
 * waiting an idle flusher ends it), then takes
 * EVERY durable batch queued (the flusher chains them in LSN order) with the position after the
 * last one; when the flusher is writing a batch at that moment, the applier first waits for that
 * one (at most one log fsync, never for a later batch: bounded) so it joins this apply. Then,
 * with store_mu held:
 *   fault point writer.apply.before ("fail" stands for a failed store transaction; "sleep:MS"
 *   holds the applier, which the overlay tests use);
 *   one ls_store_apply for all of them: their puts and deletes sorted by key, only the last one
 *   of each key (keysort.c: the same final state, LMDB's B-tree walked in order; in LSN order
 *   when the sort has no memory), and the meta record of the last batch (generation holding
 *   its last LSN, the digest of the generation before it, both noted by the flusher when that
 *   batch was durable), in the same LMDB write transaction;
 *   fault point writer.apply.after;
 * then trims the overlay of the keys whose latest write it applied, frees the transactions and
 * wakes a flusher waiting for overlay space (backpressure). Committers no longer wait for the
 * store, so batches pile up while an apply runs and the next pass merges them all: one LMDB
 * commit (and one data.mdb fdatasync) for every log fsync of that time, up to overlay_max bytes
 * of log, as the replayer groups generations.
 *
 * Merged batches may straddle rolls: the meta written is the last batch's, which names the
 * generation holding the last applied LSN, so the record never claims a generation whose data is
 * missing; the generations before it are closed and durable already (a roll only follows a
 * durable batch), so recovery replays from the meta LSN whatever the store lacks, however far
 * rolls ran ahead of the applier.
 *
 * A failed apply fails the database stickily (LS_ESTORE or the like): the store can no longer
 * follow the log in order, so nothing more is applied and every later commit gets the error; the
 * transactions concerned were acknowledged (durable in the log), stay readable through the
 * overlay until close, and the next open replays them.
 */
#include <time.h>

#include "writer/gather.h"
#include "writer/writer_int.h"

#define MAX_WAIT_NS (3600ull * 1000000000ull) /* longest timed wait of the applier */

static int put_or_del(ls_store_txn_t *st, const ls_txn_t *t, const ls__op_t *op)
{
    const uint8_t *key = t->arena + op->off;
    return op->type == LS_REC_PUT
               ? ls_store_put(st, key, op->key_len, key + op->key_len, op->value_len)
               : ls_store_del(st, key, op->key_len);
}

/* The chain in LSN order (when the key sort had no memory). */
static int apply_cb(void *ctx, ls_store_txn_t *st)
{
    for (const ls_txn_t *t = ctx; t; t = t->next) {
        for (size_t i = 0; i < t->nops; i++) {
            int rc = put_or_del(st, t, &t->ops[i]);
            if (rc) return rc;
        }
    }
    return 0;
}

/* The chain in key order, the last operation of each key (keysort.c): the same final state. */
static int apply_sorted_cb(void *ctx, ls_store_txn_t *st)
{
    const ls__keysort_t *ks = ctx;
    for (size_t i = 0; i < ks->n; i++) {
        int rc = put_or_del(st, ks->ops[i].t, &ks->ops[i].t->ops[ks->ops[i].op]);
        if (rc) return rc;
    }
    return 0;
}

/* The store's writeback paced (docs/WRITER.md "The store's writeback in pieces"): a sorted chain
 * is applied in pieces of consecutive keys, one store transaction each, so that each commit's
 * fdatasync puts about PIECE_TARGET_NS of writes into the device queue instead of the whole
 * apply's tens of MB at once (every log and shadow fdatasync issued meanwhile waits behind
 * them). Only the last piece writes the new position: a crash between pieces leaves later writes
 * in the store under the old position, which replay from that position makes whole again (last
 * write wins: store.h's idempotent replay). Readers read the overlay first, which holds every
 * key of the chain until the whole chain is applied (finish()), so no reader sees a piece. The
 * piece's operation count adapts to the measured time of a full piece within
 * [PIECE_MIN, PIECE_MAX]: random keys dirty a leaf each, keys in order share leaves. Only while
 * the applier is mostly idle (its last apply took under a quarter of the time from its start to
 * this take) and the overlay under half full: in a bulk load the applier's commits are the
 * writer's throughput (the writer row) and a piece costs a commit and an fdatasync more, so a
 * busy applier (and the first apply, with no history) applies the chain in one transaction as
 * before. */
#define PIECE_MIN       256u
#define PIECE_MAX       (1u << 20)
#define PIECE_TARGET_NS 2000000ull

typedef struct {
    const ls__keysort_t *ks;
    size_t lo, hi; /* ks->ops[lo, hi) */
} piece_t;

static int apply_piece_cb(void *ctx, ls_store_txn_t *st)
{
    const piece_t *p = ctx;
    for (size_t i = p->lo; i < p->hi; i++) {
        int rc = put_or_del(st, p->ks->ops[i].t, &p->ks->ops[i].t->ops[p->ks->ops[i].op]);
        if (rc) return rc;
    }
    return 0;
}

static void piece_adapt(ls_db_t *db, uint64_t ns)
{
    if (ns < PIECE_TARGET_NS / 2 && db->piece_ops < PIECE_MAX) db->piece_ops *= 2;
    if (ns > PIECE_TARGET_NS * 2 && db->piece_ops > PIECE_MIN) db->piece_ops /= 2;
}

/* The sorted chain in pieces, the last one with the new position m, the others with the
 * store's current one (cur). An empty sort still writes m. */
static int apply_pieces(ls_db_t *db, const ls_store_meta_t *cur, const ls_store_meta_t *m)
{
    if (db->piece_ops < PIECE_MIN) db->piece_ops = PIECE_MIN;
    for (size_t lo = 0;;) {
        size_t n = db->piece_ops, hi = db->ks.n - lo <= n ? db->ks.n : lo + n;
        piece_t p = {.ks = &db->ks, .lo = lo, .hi = hi};
        uint64_t t0 = ls_mono_ns();
        bool last = hi == db->ks.n;
        if (!last && LS_FAULT("writer.apply.piece")) return LS_ESTORE;
        int rc = ls_store_apply(db->store, apply_piece_cb, &p, last ? m : cur);
        if (rc || last) return rc;
        db->pieces++;
        piece_adapt(db, ls_mono_ns() - t0);
        lo = hi;
    }
}

/* Applies the chain with the position pos (store_mu held): sorted, in pieces when pace (the
 * store keeps up) or in one store transaction; unsorted (the sort had no memory), in one. */
static int apply_chain(ls_db_t *db, ls_txn_t *chain, const ls_store_meta_t *pos, bool pace)
{
    if (db->store_failed) return db->store_failed;
    ls_store_meta_t m, cur;
    ls_store_meta(db->store, &m); /* keeps checkpoint_lsn and applied_generations */
    cur = m;
    memcpy(m.dbid, pos->dbid, LS_DBID_LEN);
    m.epoch = pos->epoch;
    m.generation = pos->generation;
    m.lsn = pos->lsn;
    m.txid = pos->txid;
    m.digest_generation = pos->digest_generation;
    memcpy(m.digest, pos->digest, LS_DIGEST_SIZE);
    bool sorted = ls__keysort_chain(&db->ks, chain) == 0;
    int rc = LS_FAULT("writer.apply.before") ? LS_ESTORE
             : sorted && pace                ? apply_pieces(db, &cur, &m)
             : sorted ? ls_store_apply(db->store, apply_sorted_cb, &db->ks, &m)
                      : ls_store_apply(db->store, apply_cb, chain, &m);
    if (rc) {
        db->store_failed = rc;
        ls__db_fail(db, rc,
                    "store apply up to lsn %llu (generation %llu) failed; the log holds it, "
                    "reopen replays it",
                    (unsigned long long) pos->lsn, (unsigned long long) pos->generation);
        return rc;
    }
    LS_FAULT("writer.apply.after");
    return 0;
}

/* Periodic checkpoint (store_mu held). Returns the next deadline (monotonic ns). */
static uint64_t timers(ls_db_t *db)
{
    pthread_mutex_lock(&db->mu);
    bool failed = db->failed != 0;
    pthread_mutex_unlock(&db->mu);
    uint64_t now = ls_mono_ns(), next = now + MAX_WAIT_NS;
    if (failed) return next;
    uint64_t ckpt = db->opts.checkpoint_ms * 1000000ull;
    ls_store_meta_t m;
    ls_store_meta(db->store, &m);
    if (m.lsn <= m.checkpoint_lsn) return next;
    if (now - db->last_ckpt_ns < ckpt) return db->last_ckpt_ns + ckpt;
    int rc = ls__checkpoint(db);
    if (rc) ls__db_fail(db, rc, "store checkpoint failed");
    return next;
}

/* After an apply: trims the overlay of what the store holds now and frees the transactions;
 * after a failed one keeps them (the overlay still serves their writes) until close. */
static void finish(ls_db_t *db, ls_txn_t *chain, const ls_store_meta_t *pos, int rc)
{
    uint64_t bytes = 0;
    ls_txn_t *tail = chain;
    for (;; tail = tail->next) {
        bytes += tail->log_bytes;
        if (!tail->next) break;
    }
    if (rc == 0) {
        ls__ov_trim(&db->ov, chain, pos->lsn);
        for (ls_txn_t *t = chain, *next; t; t = next) {
            next = t->next;
            ls_txn_abort(t);
        }
    }
    pthread_mutex_lock(&db->mu);
    if (rc == 0) {
        db->applies++;
        db->unapplied -= bytes;
    } else {
        tail->next = db->dead;
        db->dead = chain;
    }
    pthread_cond_broadcast(&db->space);
    pthread_mutex_unlock(&db->mu);
}

/* Lets durable batches gather before an apply (mu held, ahead non-empty), by gather.h's rule:
 * long (level local, or a remote level while many committers wait) or short (a remote level with
 * few), until a quarter of overlay_max bytes of log are waiting (backpressure starts at all of
 * it), or ls_db_checkpoint, close or a failure. Readers meanwhile read the overlay. */
static ls__gather_look_t look(const ls_db_t *db)
{
    return (ls__gather_look_t){.busy = db->qhead || db->handed < db->taken,
                               .handed = db->handed,
                               .committers = db->committers};
}

static void gather(ls_db_t *db)
{
    ls__gather_t g;
    ls__gather_look_t l = look(db);
    uint64_t now = ls_mono_ns(), wake;
    ls__gather_begin(&g, db->opts.commit_level == LS_COMMIT_LOCAL, &l, now);
    while (db->unapplied < db->opts.overlay_max / 4 && !db->apply_stopping && !db->failed &&
           !db->flush_waiters && ls__gather_next(&g, &l, now, &wake)) {
        ls_cond_wait_until(&db->applyq, &db->mu, wake); /* signalled at each hand-over */
        now = ls_mono_ns();
        l = look(db);
    }
}

static void wait_until(ls_db_t *db, uint64_t deadline)
{
    while (!db->ahead && !db->apply_stopping && ls_mono_ns() < deadline) {
        ls_cond_wait_until(&db->applyq, &db->mu, deadline);
    }
}

void *ls__applier_main(void *arg)
{
    ls_db_t *db = arg;
    pthread_mutex_lock(&db->store_mu);
    uint64_t deadline = timers(db);
    pthread_mutex_unlock(&db->store_mu);
    uint64_t took = 0, busy = UINT64_MAX; /* the last take (monotonic ns) and its apply's time */
    for (;;) {
        pthread_mutex_lock(&db->mu);
        wait_until(db, deadline);
        if (db->ahead) gather(db);
        /* The batch the flusher is writing now (at most that one: the wait is bounded by one
         * log fsync) joins this apply. */
        for (uint64_t want = db->taken; db->ahead && db->handed < want;)
            pthread_cond_wait(&db->applyq, &db->mu);
        ls_txn_t *chain = db->ahead;
        ls_store_meta_t pos = db->apos;
        uint64_t now = ls_mono_ns();
        bool pace = busy < (now - took) / 4 && db->unapplied < db->opts.overlay_max / 2;
        bool stop = db->apply_stopping; /* set only once the flusher has exited */
        db->ahead = db->atail = NULL;
        pthread_mutex_unlock(&db->mu);

        pthread_mutex_lock(&db->store_mu);
        int rc = chain ? apply_chain(db, chain, &pos, pace) : 0;
        deadline = timers(db);
        pthread_mutex_unlock(&db->store_mu);

        if (chain) {
            took = now;
            busy = ls_mono_ns() - now;
            finish(db, chain, &pos, rc);
        }
        if (stop && !chain) break;
    }
    return NULL;
}

void ls__applier_flush(ls_db_t *db)
{
    pthread_mutex_lock(&db->log_mu);
    uint64_t target = db->last_lsn; /* durable: the flusher holds log_mu across a batch */
    pthread_mutex_unlock(&db->log_mu);
    pthread_mutex_lock(&db->mu);
    db->flush_waiters++;
    pthread_cond_signal(&db->applyq); /* out of gather() */
    for (;;) {
        ls_store_meta_t m;
        ls_store_meta(db->store, &m);
        if (m.lsn >= target || db->failed || !db->applier_running) break;
        pthread_cond_wait(&db->space, &db->mu); /* broadcast after every apply */
    }
    db->flush_waiters--;
    pthread_mutex_unlock(&db->mu);
}
