/*
 * The flusher: stage 1 of the commit pipeline and the one sequencer (group commit).
 *
 * Each pass takes every transaction queued since the last one (first waiting, while the overlay
 * holds overlay_max bytes of log or more, for the applier to make room: backpressure), and with
 * log_mu held:
 *   1. for each transaction in queue order: roll first when it would push the current log past
 *      target_size (a transaction never spans generations), assign dense LSNs and the next txid,
 *      encode its records and a COMMIT record into the batch buffer;
 *   2. appends the buffer to the current log (one pwrite), feeds the running digest;
 *      fault point writer.commit.after_write;
 *   3. fdatasyncs the log once for the whole batch; fault point writer.commit.after_fsync;
 *   4. notes the position the batch ends at (generation holding its last LSN, the digest of the
 *      generation before it), taken now: a later roll must not change what the batch's meta says;
 *   5. adds the batch's writes to the overlay: readable from now on;
 * then, log_mu released, acknowledges the batch (its committers' ls_txn_commit return 0: durable
 * and visible; with synchronous commit the syncer tells them once copies hold it, sync.c) and
 * hands it with its position to the applier (applier.c), which applies it to the
 * store and frees it. The flusher goes on with the next batch meanwhile. Between batches it rolls
 * an idle current log. Any failure in 1-3 fails the database stickily (never retry an fsync) and
 * the batch's committers get the error at once; batches handed over before the failure are
 * durable and still applied.
 *
 * A lone committer leads (ls__flush_lead, since 2026-12-05): one that finds no other committer
 * inside a commit, the queue empty, no batch being written and room in the overlay takes its
 * own transaction as a batch and runs the
 * same steps in its thread (as PostgreSQL's backend flushes its own WAL): no hand-over to this
 * thread and back. `flushing` (under mu) keeps one batch in flight at a time, so batches are
 * written and handed over in queue order whoever writes them; the flusher takes what queued
 * meanwhile once the leader is done.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "writer/writer_int.h"

#define FENCE_TICK_NS (100ull * 1000000ull) /* the idle flusher looks at the control page */
#define FLUSH_BYTES   (4u * 1024 * 1024)    /* append the batch buffer beyond this */

void ls__db_position(ls_db_t *db, ls_store_meta_t *m)
{
    *m = (ls_store_meta_t){0};
    memcpy(m->dbid, db->dbid, LS_DBID_LEN);
    m->epoch = db->epoch;
    m->generation = db->gen;
    m->lsn = db->last_lsn;
    m->txid = db->last_txid;
    m->digest_generation = db->gen - 1;
    memcpy(m->digest, db->prev_digest, LS_DIGEST_SIZE);
}

static int buf_reserve(ls_db_t *db, size_t need)
{
    if (need <= db->buf_cap) return 0;
    size_t n = db->buf_cap ? db->buf_cap : 64 * 1024;
    while (n < need)
        n *= 2;
    uint8_t *p = realloc(db->buf, n);
    if (!p) return LS_ENOMEM;
    db->buf = p;
    db->buf_cap = n;
    return 0;
}

/* Appends buf[0, len) to the current log and the running digest. */
static int append(ls_db_t *db, size_t len)
{
    if (len == 0) return 0;
    int rc = ls_pwrite_full(db->fd, db->buf, len, (off_t) db->log_size);
    if (rc) return rc;
    ls_sha256_update(db->sha, db->buf, len);
    db->log_size += len;
    db->last_append_ns = ls_mono_ns();
    return 0;
}

/* Encodes t at db->buf + *len with the next LSNs and txid. */
static void encode_txn(ls_db_t *db, ls_txn_t *t, size_t *len)
{
    uint64_t seed = ls_gen_seed(db->dbid, db->epoch, db->gen);
    uint64_t txid = ++db->last_txid;
    t->first_lsn = db->last_lsn + 1;
    for (size_t i = 0; i <= t->nops; i++) {
        ls_record_t r = {.type = LS_REC_COMMIT, .lsn = ++db->last_lsn, .txid = txid};
        if (i < t->nops) {
            const ls__op_t *op = &t->ops[i];
            r.type = op->type;
            r.key = t->arena + op->off;
            r.key_len = op->key_len;
            r.value = r.key + op->key_len;
            r.value_len = op->value_len;
        }
        *len += ls_record_encode(&r, seed, db->buf + *len);
    }
    db->gen_records += t->nops + 1;
}

/* Steps 1-2: encodes and appends every transaction of the batch, rolling where needed. */
static int write_batch(ls_db_t *db, ls_txn_t *batch)
{
    size_t len = 0;
    for (ls_txn_t *t = batch; t; t = t->next) {
        uint64_t pending = db->log_size + len;
        if (pending > LS_GEN_HEADER_SIZE &&
            pending + t->log_bytes + LS_GEN_TRAILER_SIZE > db->opts.target_size) {
            int rc = append(db, len);
            if (rc == 0) rc = ls__roll(db);
            if (rc) return rc;
            len = 0;
        }
        if (len >= FLUSH_BYTES) { /* bounds the buffer whatever the batch size */
            int rc = append(db, len);
            if (rc) return rc;
            len = 0;
        }
        int rc = buf_reserve(db, len + t->log_bytes);
        if (rc) return rc;
        encode_txn(db, t, &len);
    }
    return append(db, len);
}

/* Steps 1-4 for one batch, log_mu held; *pos receives the position after it, *durable whether
 * the batch is in the log (also when the overlay then failed). */
static int commit_batch(ls_db_t *db, ls_txn_t *batch, ls_store_meta_t *pos, bool *durable)
{
    *durable = false;
    pthread_mutex_lock(&db->mu);
    int rc = db->failed;
    pthread_mutex_unlock(&db->mu);
    if (rc == 0) rc = ls__db_check_fence(db); /* one shared-memory load when not fenced */
    if (rc) return rc;
    if ((rc = write_batch(db, batch)) != 0) {
        ls__db_fail(db, rc, "cannot append to %s (generation %llu)", db->cur_path,
                    (unsigned long long) db->gen);
        return rc;
    }
    /* "fail" at this point stands for a failed fdatasync (the sticky-failure test). */
    rc = LS_FAULT("writer.commit.after_write") ? LS_EIO : ls_fdatasync(db->fd);
    if (rc) {
        ls__db_fail(db, rc, "fdatasync of %s failed (generation %llu)", db->cur_path,
                    (unsigned long long) db->gen);
        return rc;
    }
    LS_FAULT("writer.commit.after_fsync");
    ls__db_publish(db, db->log_size, true); /* block mode may ship these bytes now */
    ls__db_position(db, pos);
    db->stats.batches++;
    /* Durable: visible to readers from now on, before anyone is told. */
    if ((rc = ls__ov_insert(&db->ov, batch)) != 0) {
        ls__db_fail(db, rc, "no memory for the overlay of a durable batch up to lsn %llu",
                    (unsigned long long) pos->lsn);
        *durable = true; /* the applier applies it still: the store follows the log */
        return rc;
    }
    *durable = true;
    return 0;
}

/* Tells the batch's committers rc (mu held), or, with synchronous commit, queues them to wait
 * for their copies (sync.c), told once the copies hold the batch ending at lsn: the flusher
 * goes on with the next batch meanwhile. */
static void acknowledge(ls_db_t *db, ls_txn_t *batch, int rc, uint64_t lsn)
{
    bool wait = rc == 0 && ls__sync_wanted(db), page = false;
    bool local = db->opts.commit_level == LS_COMMIT_LOCAL;
    uint64_t now = wait ? ls_mono_ns() : 0;
    for (ls_txn_t *t = batch; t; t = t->next) {
        if (wait) {
            ls__sync_enqueue(db, t->waiter, lsn, now);
        } else {
            t->waiter->rc = rc;
            t->waiter->done = true;
            /* Level local: each committer sleeps on its own condition variable, so a batch wakes
             * its committers alone, not every waiting one (8-32 threads on 2 CPUs). */
            if (local) pthread_cond_signal(&t->waiter->cv);
            page |= ls__sync_told(t->waiter);
            if (rc == 0) db->commits++;
        }
        t->waiter = NULL;
    }
    if (wait) {
        ls__sync_batch_queued(db);
    } else {
        if (!local) pthread_cond_broadcast(&db->done);
        if (page) ls_ctlpage_wake_copies(db->ctl); /* they sleep on the copies' futex */
    }
}

/* Acknowledges a durable batch and hands it to the applier, or fails its transactions with rc
 * (mu held). A durable batch goes to the applier even when its acknowledgement failed (the
 * overlay had no memory): the store follows the log in order. */
static void hand_over(ls_db_t *db, ls_txn_t *batch, const ls_store_meta_t *pos, int rc,
                      bool durable)
{
    db->handed++;
    pthread_cond_signal(&db->applyq); /* an applier waiting for this batch goes on */
    if (durable) db->durable_lsn = pos->lsn;
    acknowledge(db, batch, rc, pos->lsn);
    if (!durable) {
        for (ls_txn_t *t = batch, *next; t; t = next) {
            next = t->next;
            ls_txn_abort(t);
        }
        return;
    }
    ls_txn_t *tail = batch;
    for (;; tail = tail->next) {
        db->unapplied += tail->log_bytes;
        if (!tail->next) break;
    }
    if (db->atail)
        db->atail->next = batch;
    else
        db->ahead = batch;
    db->atail = tail;
    db->apos = *pos;
}

/* Backpressure (mu held): while the overlay holds overlay_max bytes of log or more, the next
 * batch waits for the applier to trim it. Not when failed: nothing would trim it. */
static void wait_for_space(ls_db_t *db)
{
    if (db->qhead && db->unapplied >= db->opts.overlay_max && !db->failed) db->space_waits++;
    while (db->qhead && db->unapplied >= db->opts.overlay_max && !db->failed)
        pthread_cond_wait(&db->space, &db->mu);
}

/* Idle roll, log_mu held. Returns the next deadline (monotonic ns). */
static uint64_t timers(ls_db_t *db)
{
    pthread_mutex_lock(&db->mu);
    bool failed = db->failed != 0;
    pthread_mutex_unlock(&db->mu);
    /* A switchover's hold is seen here too when no commit comes (its check closes the log). */
    bool held = db->ctl && ls_ctlpage_held(db->ctl);
    if (!failed && (held || db->log_size > LS_GEN_HEADER_SIZE) && ls__db_check_fence(db))
        failed = true;
    uint64_t now = ls_mono_ns(), next = now + FENCE_TICK_NS;
    if (failed || db->opts.no_idle_roll || db->log_size <= LS_GEN_HEADER_SIZE) return next;
    uint64_t idle = db->opts.idle_roll_ms * 1000000ull;
    if (now - db->last_append_ns < idle) return LS_MIN(db->last_append_ns + idle, next);
    int rc = ls__roll(db);
    if (rc)
        ls__db_fail(db, rc, "idle roll of generation %llu failed", (unsigned long long) db->gen);
    return next;
}

/* The flusher waits while there is nothing to take (the queue empty, or a batch a committer
 * leads being written: the queue waits for it, batches are handed over in order), and, once
 * stopping, until the last led batch is handed over. */
static void wait_until(ls_db_t *db, uint64_t deadline)
{
    while ((!db->qhead || db->flushing) && !(db->stopping && !db->flushing) &&
           ls_mono_ns() < deadline) {
        ls_cond_wait_until(&db->wake, &db->mu, deadline);
    }
}

void ls__flush_lead(ls_db_t *db, ls_txn_t *batch)
{
    ls_store_meta_t pos = {0};
    bool durable = false;
    pthread_mutex_lock(&db->log_mu);
    int rc = commit_batch(db, batch, &pos, &durable);
    pthread_mutex_unlock(&db->log_mu);
    pthread_mutex_lock(&db->mu);
    hand_over(db, batch, &pos, rc, durable);
    db->flushing = false;
    db->led++;
    if (db->qhead || db->stopping) pthread_cond_signal(&db->wake); /* queued meanwhile */
    pthread_mutex_unlock(&db->mu);
}

void *ls__flusher_main(void *arg)
{
    ls_db_t *db = arg;
    pthread_mutex_lock(&db->log_mu);
    uint64_t deadline = timers(db);
    pthread_mutex_unlock(&db->log_mu);
    for (;;) {
        pthread_mutex_lock(&db->mu);
        wait_until(db, deadline);
        wait_for_space(db);
        ls_txn_t *batch = NULL;
        bool stop = db->stopping && !db->flushing && !db->qhead;
        if (!db->flushing) { /* else a committer leads a batch: the queue waits for it */
            batch = db->qhead;
            db->qhead = db->qtail = NULL;
        }
        if (batch) {
            db->taken++;
            db->flushing = true;
        }
        pthread_mutex_unlock(&db->mu);

        ls_store_meta_t pos = {0};
        bool durable = false;
        pthread_mutex_lock(&db->log_mu);
        int rc = batch ? commit_batch(db, batch, &pos, &durable) : 0;
        deadline = timers(db);
        pthread_mutex_unlock(&db->log_mu);

        if (batch) {
            pthread_mutex_lock(&db->mu);
            hand_over(db, batch, &pos, rc, durable);
            db->flushing = false;
            pthread_mutex_unlock(&db->mu);
        }
        if (stop) break;
    }
    return NULL;
}
