/* workq: a message queue between threads (see workq.h). A ring of cap messages under one mutex
 * (so any number of producers may push); one condition variable wakes whichever side waits (only
 * one side can: the queue cannot be both full and empty). A growing queue doubles its ring when
 * full instead. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/core.h"
#include "core/workq.h"

struct ls_workq {
    pthread_mutex_t mu;    /* guards everything below */
    pthread_cond_t cv;     /* a message arrived, room appeared, or closed */
    ls_workq_wake_cb wake; /* the consumer's wake-up, or NULL */
    void *wake_arg;        /* its argument */
    size_t cap;            /* ring slots */
    bool grows;            /* doubles the ring when full (ls_workq_new_growing) */
    size_t head;           /* oldest message */
    size_t len;            /* messages queued */
    bool closed;           /* no more pushes */
    bool cancelled;        /* no more pops either */
    ls_workq_msg_t *ring;  /* cap slots */
};

ls_workq_t *ls_workq_new(size_t cap, ls_workq_wake_cb wake, void *wake_arg)
{
    if (cap == 0) return NULL;
    ls_workq_t *q = calloc(1, sizeof(*q));
    if (!q) return NULL;
    q->ring = calloc(cap, sizeof(q->ring[0]));
    if (!q->ring) {
        free(q);
        return NULL;
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->wake = wake;
    q->wake_arg = wake_arg;
    q->cap = cap;
    return q;
}

ls_workq_t *ls_workq_new_growing(size_t initial, ls_workq_wake_cb wake, void *wake_arg)
{
    ls_workq_t *q = ls_workq_new(initial ? initial : 16, wake, wake_arg);
    if (q) q->grows = true;
    return q;
}

/* Under the lock: a ring twice as large, the messages in order from slot 0. */
static int grow(ls_workq_t *q)
{
    if (q->cap > SIZE_MAX / 2 / sizeof(q->ring[0])) return LS_ENOMEM;
    ls_workq_msg_t *ring = calloc(q->cap * 2, sizeof(ring[0]));
    if (!ring) return LS_ENOMEM;
    for (size_t i = 0; i < q->len; i++)
        ring[i] = q->ring[(q->head + i) % q->cap];
    free(q->ring);
    q->ring = ring;
    q->head = 0;
    q->cap *= 2;
    return 0;
}

/* Under the lock: appends *m when open and not full; sets *was_empty. The caller signals cv
 * once the lock is released (a waiter woken under it would only block on the lock). */
static int put(ls_workq_t *q, const ls_workq_msg_t *m, bool wait, bool *was_empty)
{
    while (wait && !q->grows && !q->closed && q->len == q->cap)
        pthread_cond_wait(&q->cv, &q->mu);
    if (q->closed) return LS_ECLOSED;
    if (q->len == q->cap && q->grows) {
        int rc = grow(q);
        if (rc) return rc;
    }
    if (q->len == q->cap) return LS_EBUSY;
    *was_empty = q->len == 0;
    q->ring[(q->head + q->len) % q->cap] = *m;
    q->len++;
    return 0;
}

static int push(ls_workq_t *q, const ls_workq_msg_t *m, bool wait)
{
    bool was_empty = false;
    pthread_mutex_lock(&q->mu);
    int rc = put(q, m, wait, &was_empty);
    pthread_mutex_unlock(&q->mu);
    if (rc == 0) pthread_cond_signal(&q->cv);
    if (rc == 0 && was_empty && q->wake) q->wake(q->wake_arg);
    return rc;
}

int ls_workq_push(ls_workq_t *q, const ls_workq_msg_t *m)
{
    return push(q, m, false);
}

int ls_workq_push_wait(ls_workq_t *q, const ls_workq_msg_t *m)
{
    return push(q, m, true);
}

static int pop(ls_workq_t *q, ls_workq_msg_t *out, bool wait)
{
    pthread_mutex_lock(&q->mu);
    while (wait && !q->closed && q->len == 0)
        pthread_cond_wait(&q->cv, &q->mu);
    int rc = 1;
    if (q->cancelled || (q->closed && q->len == 0)) {
        rc = LS_ECLOSED;
    } else if (q->len == 0) {
        rc = 0;
    } else {
        *out = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->len--;
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int ls_workq_pop(ls_workq_t *q, ls_workq_msg_t *out)
{
    return pop(q, out, false);
}

int ls_workq_pop_wait(ls_workq_t *q, ls_workq_msg_t *out)
{
    return pop(q, out, true);
}

static void shut(ls_workq_t *q, bool cancel)
{
    pthread_mutex_lock(&q->mu);
    bool was = q->closed;
    q->closed = true;
    if (cancel) q->cancelled = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    if (!was && q->wake) q->wake(q->wake_arg); /* a loop consumer learns it is over */
}

void ls_workq_close(ls_workq_t *q)
{
    shut(q, false);
}

void ls_workq_cancel(ls_workq_t *q)
{
    shut(q, true);
}

size_t ls_workq_len(ls_workq_t *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = q->len;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void ls_workq_free(ls_workq_t *q, ls_workq_drop_cb drop, void *arg)
{
    if (!q) return;
    for (size_t i = 0; i < q->len; i++)
        if (drop) drop(&q->ring[(q->head + i) % q->cap], arg);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q->ring);
    free(q);
}
