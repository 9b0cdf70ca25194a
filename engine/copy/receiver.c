/* The receiver thread of a copy and its two queues (receiver.h): the work the loop pushes and
 * the events the loop polls, both core/workq (growing: the work is bounded by the sender's credit
 * window, the events by the work and the replayer's progress). */
#include "copy/receiver.h"
#include "copy/receiver_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "core/workq.h"

/* it's header reset for a new item of len bytes in a room of cap (the data bytes are not
 * zeroed: every caller fills them; a GEN_DATA item is 256 KiB, and zeroing it was a second pass
 * over each byte on the loop: 9 % of its perf samples). */
static ls_copy_item_t *item_init(ls_copy_item_t *it, ls_copy_item_kind_t kind, uint32_t len,
                                 uint32_t cap)
{
    memset(it, 0, sizeof(*it));
    it->kind = kind;
    it->len = len;
    it->cap = cap;
    return it;
}

ls_copy_item_t *ls_copy_item_new(ls_copy_item_kind_t kind, uint32_t len)
{
    ls_copy_item_t *it = malloc(sizeof(*it) + len);
    LS_CHECK(it != NULL);
    return item_init(it, kind, len, len);
}

ls_copy_item_t *ls_copy_rx_item_new(ls_copy_rx_t *rx, ls_copy_item_kind_t kind, uint32_t len)
{
    if (kind != LS_COPY_ITEM_DATA || len > LS_COPY_RX_SPARE_LEN) return ls_copy_item_new(kind, len);
    pthread_mutex_lock(&rx->spare_mu);
    ls_copy_item_t *it = rx->spares ? rx->spare[--rx->spares] : NULL;
    pthread_mutex_unlock(&rx->spare_mu);
    if (!it) it = ls_copy_item_new(kind, LS_COPY_RX_SPARE_LEN);
    return item_init(it, kind, len, LS_COPY_RX_SPARE_LEN);
}

/* An item the thread has run: kept as a spare when it is one of ls_copy_rx_item_new's and
 * fewer than LS_COPY_RX_SPARES are kept, else freed. */
static void item_done(ls_copy_rx_t *rx, ls_copy_item_t *it)
{
    if (it->cap == LS_COPY_RX_SPARE_LEN) {
        pthread_mutex_lock(&rx->spare_mu);
        bool kept = rx->spares < LS_COPY_RX_SPARES;
        if (kept) rx->spare[rx->spares++] = it;
        pthread_mutex_unlock(&rx->spare_mu);
        if (kept) return;
    }
    free(it);
}

/* Set on the loop while it runs held BLOCK items: it polls their events right after, so they
 * need no wake-up of its own (another thread's event still wakes it). */
static __thread bool running_held;

void ls__copy_rx_notify(void *arg)
{
    ls_copy_rx_t *rx = arg;
    if (rx->notify_cb && !running_held) rx->notify_cb(rx->notify_ctx);
}

ls_copy_rx_t *ls_copy_rx_new(const ls_copy_rx_options_t *opts)
{
    ls_copy_rx_t *rx = calloc(1, sizeof(*rx));
    if (!rx) return NULL;
    snprintf(rx->name, sizeof(rx->name), "%s", opts->name ? opts->name : "copy");
    rx->notify_cb = opts->notify_cb;
    rx->notify_ctx = opts->notify_ctx;
    rx->inline_sync_ns = opts->inline_sync_ns;
    rx->held_last = NULL;
    rx->events = ls_workq_new_growing(64, ls__copy_rx_notify, rx);
    if (!rx->events) {
        free(rx);
        return NULL;
    }
    pthread_mutex_init(&rx->spare_mu, NULL);
    return rx;
}

static void post(ls_copy_rx_t *rx, const ls_copy_rx_event_t *ev)
{
    ls_copy_rx_event_t *e = malloc(sizeof(*e));
    LS_CHECK(e != NULL);
    *e = *ev;
    ls_workq_msg_t m = {.ptr = e, .len = sizeof(*e)};
    LS_CHECK(ls_workq_push(rx->events, &m) == 0); /* growing, never closed before free */
}

void ls_copy_rx_event_cb(void *ctx, const ls_copy_event_t *ev)
{
    ls_copy_rx_event_t e = {
        .kind = (int) ev->kind, .generation = ev->generation, .lsn = ev->lsn, .code = ev->code};
    snprintf(e.message, sizeof(e.message), "%s", ev->message ? ev->message : "");
    post(ctx, &e);
}

bool ls_copy_rx_poll(ls_copy_rx_t *rx, ls_copy_rx_event_t *out)
{
    ls_workq_msg_t m;
    if (ls_workq_pop(rx->events, &m) != 1) return false;
    *out = *(ls_copy_rx_event_t *) m.ptr;
    free(m.ptr);
    return true;
}

/* A GEN_BEGIN the copy refused: when it is past the generation wanted, the loop asks again. */
static void behind(ls_copy_rx_t *rx, ls_copy_t *copy, const ls_copy_item_t *it)
{
    ls_copy_resume_t r;
    ls_copy_resume_point(copy, &r);
    if (it->generation <= r.next_generation) return;
    ls_copy_rx_event_t e = {.kind = LS_COPY_RX_EV_BEHIND, .generation = it->generation};
    snprintf(e.message, sizeof(e.message), "got generation %llu, want %llu",
             (unsigned long long) it->generation, (unsigned long long) r.next_generation);
    post(rx, &e);
}

/* The CONSUMED event of a data item: its credit goes back to the connection that sent it. */
static void consumed(ls_copy_rx_t *rx, const ls_copy_item_t *it)
{
    ls_copy_rx_event_t e = {.kind = LS_COPY_RX_EV_CONSUMED, .consumed = it->len, .tag = it->tag};
    post(rx, &e);
}

/* The credit of the BLOCK items of one batch, given back after the acknowledgement is posted
 * (one wake-up of the loop for both): a run of items of the same connection tag. */
typedef struct {
    uint64_t tag;
    uint64_t len;
} credit_run_t;

static void credit_flush(ls_copy_rx_t *rx, credit_run_t *cr)
{
    if (!cr->len) return;
    ls_copy_rx_event_t e = {.kind = LS_COPY_RX_EV_CONSUMED, .consumed = cr->len, .tag = cr->tag};
    post(rx, &e);
    cr->len = 0;
}

static void shadow_append(ls_copy_rx_t *rx, ls_copy_t *copy, const ls_copy_item_t *it,
                          credit_run_t *cr)
{
    char err[512] = "";
    int rc = ls_copy_shadow_append(copy, it->epoch, it->generation, it->offset, it->data, it->len,
                                   it->lsn, err, sizeof(err));
    if (rc) /* refusals are worth a debug line only: the closed generation comes whole anyway */
        ls_log(rc == LS_ESTATE ? LS_LOG_DEBUG : LS_LOG_WARN, "receiver", "%s: %s", rx->name, err);
    if (cr->len && cr->tag != it->tag) credit_flush(rx, cr);
    cr->tag = it->tag;
    cr->len += it->len;
}

/* The end of a batch of BLOCK items appended: one fdatasync for all of them and one BLOCK event
 * (the acknowledgement), then the credit, then the replayer is told (ls_copy_shadow_report; not
 * when report is non-NULL: *report says whether the caller must): nothing but the fdatasync
 * between the bytes and their acknowledgement. */
static void shadow_commit(ls_copy_rx_t *rx, ls_copy_t *copy, credit_run_t *cr, bool *report)
{
    char err[512] = "";
    /* A closed generation taken before these BLOCKs may have had its fsync of logs/ deferred (a
     * whole generation was queued behind it): it is made durable first, so that no BLOCK_ACK of
     * the next generation goes out while an earlier one could still be lost (a no-op otherwise;
     * block mode streams the next generation right behind the closed one's GEN_END). */
    if (ls_copy_recv_flush(copy, err, sizeof(err)) != 0) {
        ls_log(LS_LOG_WARN, "receiver", "%s: %s", rx->name, err);
        credit_flush(rx, cr);
        return; /* no acknowledgement now: the next batch syncs the shadow */
    }
    ls_copy_shadow_t sh;
    bool due = false;
    /* An eager replayer applies the bytes now, its store transaction carrying them: the
     * shadow's fdatasync below runs beside the store's, not before it. */
    ls_copy_shadow_report_written(copy);
    if (ls_copy_shadow_sync_deferred(copy, &sh, &due, err, sizeof(err)) != 0)
        ls_log(LS_LOG_WARN, "receiver", "%s: %s", rx->name, err);
    else if (sh.generation) {
        ls_copy_rx_event_t e = {.kind = LS_COPY_RX_EV_BLOCK,
                                .generation = sh.generation,
                                .epoch = sh.epoch,
                                .offset = sh.size,
                                .lsn = sh.durable_lsn};
        post(rx, &e);
    }
    credit_flush(rx, cr);
    if (report)
        *report = due;
    else if (due)
        ls_copy_shadow_report(copy);
}

/* BLOCK items: this one and every BLOCK queued behind it are written, then shadow_commit: a copy
 * that falls behind catches up in fewer syncs. Returns the first other item taken meanwhile (the
 * caller runs it next), or NULL; *taken counts the items taken from the queue. */
static ls_copy_item_t *shadow_batch(ls_copy_rx_t *rx, ls_copy_item_t *first, uint64_t *taken)
{
    ls_copy_t *copy = rx->copy;
    ls_copy_item_t *next = NULL;
    credit_run_t cr = {0};
    if (copy) shadow_append(rx, copy, first, &cr);
    ls_workq_msg_t m;
    while (ls_workq_pop(rx->work, &m) == 1) {
        ls_copy_item_t *it = m.ptr;
        ++*taken;
        if (it->kind != LS_COPY_ITEM_BLOCK) {
            next = it;
            break;
        }
        if (copy) shadow_append(rx, copy, it, &cr);
        free(it);
    }
    if (copy) shadow_commit(rx, copy, &cr, NULL);
    return next;
}

/* One GEN item on the thread's copy. A failed step drops the rest of its generation. */
static void receive(ls_copy_rx_t *rx, ls_copy_item_t *it)
{
    char err[512] = "";
    int rc = 0;
    ls_copy_t *copy = rx->copy;
    if (!copy) return; /* a seed's swap could not reopen it: the copy is Failed */
    if (it->kind == LS_COPY_ITEM_ABORT || it->kind == LS_COPY_ITEM_BEGIN) {
        ls_copy_recv_abort(copy); /* a new BEGIN abandons any half-received generation */
        rx->skip_gen = 0;
        if (it->kind == LS_COPY_ITEM_ABORT) return;
        rx->tail_gen = 0;
        if (it->offset) /* GEN_TAIL: the head from the shadow, checked as received */
            rc = ls_copy_recv_begin_tail(copy, it->epoch, it->generation, it->size, it->close_ns,
                                         it->offset, err, sizeof(err));
        else
            rc = ls_copy_recv_begin(copy, it->epoch, it->generation, it->size, it->close_ns, err,
                                    sizeof(err));
        if (rc == LS_ESTATE) behind(rx, copy, it);
        if (rc == 0 && it->offset) rx->tail_gen = it->generation;
    } else if (it->generation == rx->skip_gen) {
        return;
    } else if (it->kind == LS_COPY_ITEM_DATA) {
        rc = it->hashed ? ls_copy_recv_data_hashed(copy, it->generation, it->offset, it->data,
                                                   it->len, err, sizeof(err))
                        : ls_copy_recv_data(copy, it->generation, it->offset, it->data, it->len,
                                            err, sizeof(err));
    } else {
        /* a whole generation queued behind: one fsync of logs/ for the generations received
         * back to back (not merely the first bytes of the next: its END may be far off) */
        /* Never for the shadow's generation: its shadow is dropped once the closed file is
         * held, and the file's name must be durable in logs/ before what BLOCK_ACK promised
         * goes (a crash in between would leave neither). */
        ls_copy_shadow_t sh;
        ls_copy_shadow_info(copy, &sh);
        ls_copy_recv_defer(copy, __atomic_load_n(&rx->ends, __ATOMIC_RELAXED) > 0 &&
                                     sh.generation != it->generation);
        rc = ls_copy_recv_end_hashed(copy, it->generation, it->digest, it->hashed ? it->hash : NULL,
                                     err, sizeof(err));
        if (rc == 0) ls_copy_shadow_drop(copy, it->generation); /* held whole now */
        /* Its head came from a shadow that is not the active's log: that shadow goes (the
         * generation comes whole; a new stream starts a new shadow). */
        else if (rx->tail_gen == it->generation && rc != LS_ENOSPC && rc != LS_EIO)
            ls_copy_shadow_drop(copy, it->generation);
        rx->tail_gen = 0;
        if (rc && rc != LS_ESTATE && rc != LS_ENOSPC && rc != LS_EIO) rc = 0; /* ASK_AGAIN sent */
    }
    if (rc) {
        rx->skip_gen = it->generation;
        ls_log(rc == LS_ESTATE ? LS_LOG_DEBUG : LS_LOG_WARN, "receiver", "%s generation %llu: %s",
               rx->name, (unsigned long long) it->generation, err);
    }
}

static void run_item(ls_copy_rx_t *rx, ls_copy_item_t *it)
{
    if (it->kind == LS_COPY_ITEM_RUN) {
        it->run(it->run_ctx, &rx->copy, it);
        return;
    }
    receive(rx, it);
    if (it->kind == LS_COPY_ITEM_DATA) consumed(rx, it);
}

static void *receiver_main(void *arg)
{
    ls_copy_rx_t *rx = arg;
    ls_workq_msg_t m;
    char err[512];
    while (ls_workq_pop_wait(rx->work, &m) == 1) { /* LS_ECLOSED: stopped */
        ls_copy_item_t *it = m.ptr;
        uint64_t taken = 1;
        while (it && it->kind == LS_COPY_ITEM_BLOCK) {
            ls_copy_item_t *next = shadow_batch(rx, it, &taken);
            free(it);
            it = next;
        }
        if (it) {
            if (it->kind == LS_COPY_ITEM_END) __atomic_fetch_sub(&rx->ends, 1, __ATOMIC_RELAXED);
            if (it->kind == LS_COPY_ITEM_RUN && rx->copy) /* a seed's step may close the copy */
                ls_copy_recv_flush(rx->copy, err, sizeof(err));
            run_item(rx, it);
            item_done(rx, it);
        }
        /* no whole generation queued any more: the pending ones are made durable now */
        if (rx->copy && __atomic_load_n(&rx->ends, __ATOMIC_RELAXED) == 0 &&
            ls_copy_recv_flush(rx->copy, err, sizeof(err)))
            LS_LOGW("receiver", "%s: %s", rx->name, err);
        __atomic_fetch_add(&rx->done, taken, __ATOMIC_RELEASE); /* last: the copy is the loop's */
    }
    if (rx->copy) ls_copy_recv_flush(rx->copy, err, sizeof(err));
    return NULL;
}

static void drop_item(const ls_workq_msg_t *m, void *arg)
{
    (void) arg;
    free(m->ptr);
}

int ls_copy_rx_start(ls_copy_rx_t *rx, ls_copy_t *copy)
{
    if (rx->started) return LS_ESTATE;
    rx->work = ls_workq_new_growing(256, NULL, NULL);
    if (!rx->work) return LS_ENOMEM;
    rx->copy = copy; /* before the thread starts: from then on its own */
    rx->ends = 0;    /* END items dropped by an earlier stop are not queued */
    rx->pushed = rx->done = 0;
    if (pthread_create(&rx->thread, NULL, receiver_main, rx) != 0) {
        rx->copy = NULL;
        ls_workq_free(rx->work, NULL, NULL);
        rx->work = NULL;
        return LS_ENOMEM;
    }
    rx->started = true;
    return 0;
}

bool ls_copy_rx_run_held(ls_copy_rx_t *rx)
{
    if (!rx->held) return false;
    ls_copy_item_t *it = rx->held;
    rx->held = NULL;
    rx->held_last = NULL;
    rx->held_bytes = 0;
    /* Nothing was pushed since they were held (a push releases them into the queue first), so
     * the thread is still idle: the copy is this thread's until the next push. */
    LS_CHECK(ls_copy_rx_idle(rx));
    credit_run_t cr = {0};
    running_held = true;
    while (it) {
        ls_copy_item_t *next = it->link;
        if (rx->copy) shadow_append(rx, rx->copy, it, &cr);
        free(it);
        it = next;
    }
    if (rx->copy) shadow_commit(rx, rx->copy, &cr, &rx->held_report);
    running_held = false;
    return true;
}

void ls_copy_rx_held_done(ls_copy_rx_t *rx)
{
    if (rx->held_report && rx->copy) ls_copy_shadow_report(rx->copy);
    rx->held_report = false;
}

ls_copy_t *ls_copy_rx_stop(ls_copy_rx_t *rx)
{
    for (ls_copy_item_t *it = rx->held, *next; it; it = next) { /* dropped, as queued ones */
        next = it->link;
        free(it);
    }
    rx->held = NULL;
    rx->held_last = NULL;
    rx->held_bytes = 0;
    if (!rx->started) return NULL;
    ls_workq_cancel(rx->work); /* the thread ends at its next item */
    pthread_join(rx->thread, NULL);
    rx->started = false;
    ls_workq_free(rx->work, drop_item, NULL); /* the items not done */
    rx->work = NULL;
    ls_copy_t *copy = rx->copy;
    rx->copy = NULL;
    return copy;
}

void ls_copy_rx_free(ls_copy_rx_t *rx)
{
    if (!rx) return;
    ls_copy_close(ls_copy_rx_stop(rx));
    ls_workq_free(rx->events, drop_item, NULL);
    ls_sha256_free(rx->sha);
    while (rx->spares)
        free(rx->spare[--rx->spares]);
    pthread_mutex_destroy(&rx->spare_mu);
    free(rx);
}
