/*
 * Block mode on the copy: the receiver's reports of the shadow (written, durable) and the
 * acknowledgement of what the early apply committed (docs/BLOCKMODE.md, "The store carries the
 * shadow's unsynced bytes", "The acknowledgement").
 *
 * The receiver's thread calls ls_copy_shadow_written before a batch's fdatasync (only an eager
 * copy uses it: the step may apply and carry those bytes) and ls_copy_shadow_durable after it;
 * both record the position under the copy's mutex and wake the replayer. The replayer calls
 * ls__copy_shadow_committed after each early-apply transaction: a step that carried bytes the
 * shadow has not reported durable is acknowledged as applied only once they are (the store's
 * commit leaves its own meta page unsynced, MDB_NOMETASYNC) or once the store commits again.
 */
#include "copy/copy_int.h"

void ls_copy_shadow_durable(ls_copy_t *c, uint32_t epoch, uint64_t generation, uint64_t size,
                            uint64_t durable_lsn)
{
    pthread_mutex_lock(&c->mu);
    c->sh.epoch = epoch;
    c->sh.generation = generation;
    c->sh.size = size;
    c->sh.durable_lsn = durable_lsn;
    /* a step that carried these bytes is durable now: acknowledged as applied */
    uint64_t released = 0;
    if (c->sh.pend_lsn && c->sh.pend_epoch == epoch && c->sh.pend_gen == generation &&
        size >= c->sh.pend_end) {
        if (c->meta.lsn == c->sh.pend_lsn && c->meta.generation == generation)
            released = c->sh.pend_lsn;
        c->sh.pend_lsn = 0;
    }
    c->sh.reports++;
    c->sh.report_ns = ls_mono_ns(); /* the idle checkpoint waits until reports are quiet */
    /* Lazy: nothing is applied while reports come, so the replayer is not woken for each (it
     * looks again by itself: the quiet time it waits for, or its idle wait). */
    bool wake = !c->sh.lazy;
    pthread_mutex_unlock(&c->mu);
    /* Woken after the unlock (it re-reads the report under mu): woken under the lock it would
     * run at once into the mutex still held, block on it and be woken a second time. */
    if (wake) pthread_cond_broadcast(&c->cv);
    if (released) ls__copy_emit(c, LS_COPY_EV_APPLIED, generation, released, 0, "");
}

void ls_copy_shadow_written(ls_copy_t *c, uint32_t epoch, uint64_t generation, uint64_t size)
{
    pthread_mutex_lock(&c->mu);
    bool wake = !c->sh.lazy; /* lazy: nothing is applied while the stream runs anyway */
    if (wake) {
        if (c->sh.generation != generation || c->sh.epoch != epoch) {
            c->sh.epoch = epoch; /* a new shadow: nothing of it reported durable yet */
            c->sh.generation = generation;
            c->sh.size = c->sh.durable_lsn = 0;
        }
        if (c->sh.w_generation != generation || c->sh.w_epoch != epoch || size > c->sh.w_size)
            c->sh.w_size = size;
        c->sh.w_epoch = epoch;
        c->sh.w_generation = generation;
        c->sh.reports++;
        c->sh.report_ns = ls_mono_ns();
    }
    pthread_mutex_unlock(&c->mu);
    if (wake) pthread_cond_broadcast(&c->cv);
}

void ls__copy_shadow_committed(ls_copy_t *c, uint32_t epoch, const ls_store_meta_t *was,
                               const ls_store_meta_t *nm, bool carried)
{
    uint64_t gen = nm->generation;
    pthread_mutex_lock(&c->mu);
    /* This commit's fdatasync made the store's previous commit durable (its meta page): a step
     * left pending is acknowledged now; this one at once unless it carried bytes the shadow has
     * not reported durable since. */
    bool moved = c->sh.pend_lsn != 0;
    c->sh.pend_lsn = 0;
    if (carried &&
        !(c->sh.epoch == epoch && c->sh.generation == gen && c->sh.size >= nm->shadow_end)) {
        c->sh.pend_lsn = nm->lsn;
        c->sh.pend_gen = gen;
        c->sh.pend_epoch = epoch;
        c->sh.pend_end = nm->shadow_end;
        c->sh.ack_lsn = was->lsn;
    } else {
        moved = true;
    }
    bool pending = c->sh.pend_lsn != 0;
    c->meta = *nm;
    c->sh.applied_lsn = nm->lsn;
    c->sh.applies++;
    c->replay_txns++;
    bool healthy = c->state == LS_COPY_DISK_FULL && ls__copy_set_state(c, LS_COPY_HEALTHY, "");
    pthread_mutex_unlock(&c->mu);
    c->dirty = true;
    if (healthy) ls__copy_emit(c, LS_COPY_EV_STATE, 0, 0, LS_COPY_HEALTHY, "");
    if (moved) ls__copy_emit(c, LS_COPY_EV_APPLIED, gen, pending ? was->lsn : nm->lsn, 0, "");
}
