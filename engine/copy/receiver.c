/* The receiver thread of a copy and its two queues (receiver.h). One mutex guards both queues;
 * the notify callback is called after it is released. */
#include "copy/receiver.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

typedef struct rx_ev {
    struct rx_ev *next;
    ls_copy_rx_event_t ev;
} rx_ev_t;

struct ls_copy_rx {
    char name[128];            /* the copy's, for log lines */
    void (*notify_cb)(void *); /* see ls_copy_rx_options_t */
    void *notify_ctx;
    pthread_t thread;
    bool started;                /* the thread runs (until stop) */
    bool stop;                   /* (mu) the thread ends at its next item */
    pthread_mutex_t mu;          /* guards the queues and stop */
    pthread_cond_t cv;           /* work queued or stop */
    ls_copy_item_t *head, *tail; /* (mu) work, bounded by the sender's credit window */
    rx_ev_t *ev_head, *ev_tail;  /* (mu) events for the loop */
    ls_copy_t *copy;             /* the thread's copy once started (the thread alone) */
    uint64_t skip_gen;           /* the thread's: drop the frames of this generation */
};

ls_copy_item_t *ls_copy_item_new(ls_copy_item_kind_t kind, uint32_t len)
{
    ls_copy_item_t *it = calloc(1, sizeof(*it) + len);
    LS_CHECK(it != NULL);
    it->kind = kind;
    it->len = len;
    return it;
}

ls_copy_rx_t *ls_copy_rx_new(const ls_copy_rx_options_t *opts)
{
    ls_copy_rx_t *rx = calloc(1, sizeof(*rx));
    if (!rx) return NULL;
    snprintf(rx->name, sizeof(rx->name), "%s", opts->name ? opts->name : "copy");
    rx->notify_cb = opts->notify_cb;
    rx->notify_ctx = opts->notify_ctx;
    pthread_mutex_init(&rx->mu, NULL);
    pthread_cond_init(&rx->cv, NULL);
    return rx;
}

static void post(ls_copy_rx_t *rx, const ls_copy_rx_event_t *ev)
{
    rx_ev_t *e = malloc(sizeof(*e));
    LS_CHECK(e != NULL);
    e->next = NULL;
    e->ev = *ev;
    pthread_mutex_lock(&rx->mu);
    if (rx->ev_tail)
        rx->ev_tail->next = e;
    else
        rx->ev_head = e;
    rx->ev_tail = e;
    pthread_mutex_unlock(&rx->mu);
    if (rx->notify_cb) rx->notify_cb(rx->notify_ctx);
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
    pthread_mutex_lock(&rx->mu);
    rx_ev_t *e = rx->ev_head;
    if (e) {
        rx->ev_head = e->next;
        if (!rx->ev_head) rx->ev_tail = NULL;
    }
    pthread_mutex_unlock(&rx->mu);
    if (!e) return false;
    *out = e->ev;
    free(e);
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
        rc = ls_copy_recv_begin(copy, it->epoch, it->generation, it->size, it->close_ns, err,
                                sizeof(err));
        if (rc == LS_ESTATE) behind(rx, copy, it);
    } else if (it->generation == rx->skip_gen) {
        return;
    } else if (it->kind == LS_COPY_ITEM_DATA) {
        if (LS_FAULT("receiver.flip_bit") && it->len) it->data[it->len / 2] ^= 0x10;
        rc = ls_copy_recv_data(copy, it->generation, it->offset, it->data, it->len, err,
                               sizeof(err));
    } else {
        rc = ls_copy_recv_end(copy, it->generation, it->digest, err, sizeof(err));
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
    if (it->kind == LS_COPY_ITEM_DATA) {
        ls_copy_rx_event_t e = {
            .kind = LS_COPY_RX_EV_CONSUMED, .consumed = it->len, .tag = it->tag};
        post(rx, &e);
    }
}

static void *receiver_main(void *arg)
{
    ls_copy_rx_t *rx = arg;
    pthread_mutex_lock(&rx->mu);
    for (;;) {
        while (!rx->head && !rx->stop)
            pthread_cond_wait(&rx->cv, &rx->mu);
        if (rx->stop) break;
        ls_copy_item_t *it = rx->head;
        rx->head = it->next;
        if (!rx->head) rx->tail = NULL;
        pthread_mutex_unlock(&rx->mu);
        run_item(rx, it);
        free(it);
        pthread_mutex_lock(&rx->mu);
    }
    pthread_mutex_unlock(&rx->mu);
    return NULL;
}

int ls_copy_rx_start(ls_copy_rx_t *rx, ls_copy_t *copy)
{
    if (rx->started) return LS_ESTATE;
    rx->copy = copy; /* before the thread starts: from then on its own */
    rx->stop = false;
    if (pthread_create(&rx->thread, NULL, receiver_main, rx) != 0) {
        rx->copy = NULL;
        return LS_ENOMEM;
    }
    rx->started = true;
    return 0;
}

void ls_copy_rx_push(ls_copy_rx_t *rx, ls_copy_item_t *it)
{
    it->next = NULL;
    pthread_mutex_lock(&rx->mu);
    if (!rx->started) {
        pthread_mutex_unlock(&rx->mu);
        free(it);
        return;
    }
    if (rx->tail)
        rx->tail->next = it;
    else
        rx->head = it;
    rx->tail = it;
    pthread_cond_signal(&rx->cv);
    pthread_mutex_unlock(&rx->mu);
}

ls_copy_t *ls_copy_rx_stop(ls_copy_rx_t *rx)
{
    if (!rx->started) return NULL;
    pthread_mutex_lock(&rx->mu);
    rx->stop = true;
    pthread_cond_signal(&rx->cv);
    pthread_mutex_unlock(&rx->mu);
    pthread_join(rx->thread, NULL);
    pthread_mutex_lock(&rx->mu);
    rx->started = false;
    while (rx->head) {
        ls_copy_item_t *it = rx->head;
        rx->head = it->next;
        free(it);
    }
    rx->tail = NULL;
    pthread_mutex_unlock(&rx->mu);
    ls_copy_t *copy = rx->copy;
    rx->copy = NULL;
    return copy;
}

void ls_copy_rx_free(ls_copy_rx_t *rx)
{
    if (!rx) return;
    ls_copy_close(ls_copy_rx_stop(rx));
    ls_copy_rx_event_t e;
    while (ls_copy_rx_poll(rx, &e)) {}
    pthread_mutex_destroy(&rx->mu);
    pthread_cond_destroy(&rx->cv);
    free(rx);
}
