/* core/workq: the bounded producer/consumer queue, with two real threads. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/core.h"
#include "core/workq.h"

#define N 20000

typedef struct {
    ls_workq_t *q;
    int pushed; /* producer: messages pushed */
    int rc;     /* producer: last return */
} prod_t;

static void *producer(void *arg)
{
    prod_t *p = arg;
    for (int i = 0; i < N; i++) {
        ls_workq_msg_t m = {.type = i % 3, .ptr = (void *) (uintptr_t) i, .len = (size_t) i};
        p->rc = ls_workq_push_wait(p->q, &m);
        if (p->rc) return NULL;
        p->pushed++;
    }
    ls_workq_close(p->q);
    return NULL;
}

Test(workq, two_threads_keep_order_within_the_bound)
{
    ls_workq_t *q = ls_workq_new(4, NULL, NULL);
    cr_assert_not_null(q);
    prod_t p = {.q = q};
    pthread_t t;
    pthread_create(&t, NULL, producer, &p);
    ls_workq_msg_t m;
    int next = 0, rc;
    while ((rc = ls_workq_pop_wait(q, &m)) == 1) {
        cr_assert_leq(ls_workq_len(q), 4);
        cr_assert_eq(m.len, (size_t) next, "message %zu arrived when %d was due", m.len, next);
        cr_assert_eq(m.type, next % 3);
        cr_assert_eq((uintptr_t) m.ptr, (uintptr_t) next);
        next++;
    }
    cr_assert_eq(rc, LS_ECLOSED);
    cr_assert_eq(next, N);
    pthread_join(t, NULL);
    cr_assert_eq(p.rc, 0);
    ls_workq_free(q, NULL, NULL);
}

Test(workq, full_queue_refuses_without_queuing)
{
    ls_workq_t *q = ls_workq_new(2, NULL, NULL);
    ls_workq_msg_t m = {.type = 1};
    cr_assert_eq(ls_workq_push(q, &m), 0);
    cr_assert_eq(ls_workq_push(q, &m), 0);
    cr_assert_eq(ls_workq_push(q, &m), LS_EBUSY);
    cr_assert_eq(ls_workq_len(q), 2);
    cr_assert_eq(ls_workq_pop(q, &m), 1);
    cr_assert_eq(ls_workq_push(q, &m), 0);
    cr_assert_eq(ls_workq_len(q), 2);
    cr_assert_eq(ls_workq_pop(q, &m), 1);
    cr_assert_eq(ls_workq_pop(q, &m), 1);
    cr_assert_eq(ls_workq_pop(q, &m), 0, "empty and open: nothing, no error");
    cr_assert_null(ls_workq_new(0, NULL, NULL));
    ls_workq_free(q, NULL, NULL);
}

static atomic_int wakes;
static void on_wake(void *arg)
{
    (void) arg;
    atomic_fetch_add(&wakes, 1);
}

Test(workq, wake_once_per_empty_to_nonempty_and_at_close)
{
    atomic_store(&wakes, 0);
    ls_workq_t *q = ls_workq_new(8, on_wake, NULL);
    ls_workq_msg_t m = {0};
    ls_workq_push(q, &m);
    ls_workq_push(q, &m);
    cr_assert_eq(atomic_load(&wakes), 1, "the second push found a message: no second wake-up");
    while (ls_workq_pop(q, &m) == 1) {}
    ls_workq_push(q, &m);
    cr_assert_eq(atomic_load(&wakes), 2);
    ls_workq_close(q);
    cr_assert_eq(atomic_load(&wakes), 3, "close wakes the consumer");
    ls_workq_close(q);
    cr_assert_eq(atomic_load(&wakes), 3, "close is idempotent");
    cr_assert_eq(ls_workq_push(q, &m), LS_ECLOSED);
    cr_assert_eq(ls_workq_pop(q, &m), 1, "close lets the consumer drain");
    cr_assert_eq(ls_workq_pop(q, &m), LS_ECLOSED);
    ls_workq_free(q, NULL, NULL);
}

static void drop(const ls_workq_msg_t *m, void *arg)
{
    int *seen = arg;
    cr_assert_eq(m->len, (size_t) *seen, "dropped in order");
    free(m->ptr);
    (*seen)++;
}

static void *blocked_pusher(void *arg)
{
    ls_workq_t *q = arg;
    ls_workq_msg_t m = {.ptr = NULL, .len = 99};
    return (void *) (intptr_t) ls_workq_push_wait(q, &m);
}

static void *blocked_popper(void *arg)
{
    ls_workq_t *q = arg;
    ls_workq_msg_t m;
    return (void *) (intptr_t) ls_workq_pop_wait(q, &m);
}

Test(workq, cancel_with_items_pending_wakes_both_sides_and_drops_the_rest)
{
    ls_workq_t *q = ls_workq_new(3, NULL, NULL);
    for (int i = 0; i < 3; i++) {
        ls_workq_msg_t m = {.type = 7, .ptr = malloc(16), .len = (size_t) i};
        cr_assert_eq(ls_workq_push(q, &m), 0);
    }
    pthread_t t;
    pthread_create(&t, NULL, blocked_pusher, q); /* full: waits for room */
    ls_workq_cancel(q);
    void *ret;
    pthread_join(t, &ret);
    cr_assert_eq((intptr_t) ret, LS_ECLOSED, "a producer waiting for room is released");
    ls_workq_msg_t m;
    cr_assert_eq(ls_workq_pop(q, &m), LS_ECLOSED, "cancelled: nothing more comes out");
    cr_assert_eq(ls_workq_len(q), 3);
    int seen = 0;
    ls_workq_free(q, drop, &seen);
    cr_assert_eq(seen, 3);

    q = ls_workq_new(1, NULL, NULL);
    pthread_create(&t, NULL, blocked_popper, q); /* empty: waits for a message */
    ls_workq_cancel(q);
    pthread_join(t, &ret);
    cr_assert_eq((intptr_t) ret, LS_ECLOSED, "a consumer waiting on an empty queue is released");
    ls_workq_free(q, NULL, NULL);
}

static void *two_producers_half(void *arg)
{
    prod_t *p = arg;
    for (int i = 0; i < N / 2; i++) {
        ls_workq_msg_t m = {.type = p->pushed & 1, .ptr = p, .len = (size_t) i};
        p->rc = ls_workq_push(p->q, &m);
        if (p->rc) return NULL;
        p->pushed++;
    }
    return NULL;
}

Test(workq, growing_queue_takes_everything_in_order_from_two_producers)
{
    ls_workq_t *q = ls_workq_new_growing(2, NULL, NULL);
    cr_assert_not_null(q);
    /* one thread first, nobody popping: the ring grows from 2 to hold all of it, in order */
    for (int i = 0; i < N; i++) {
        ls_workq_msg_t m = {.len = (size_t) i};
        cr_assert_eq(ls_workq_push(q, &m), 0, "push %d into a growing queue", i);
    }
    cr_assert_eq(ls_workq_len(q), (size_t) N);
    ls_workq_msg_t m;
    for (int i = 0; i < N / 2; i++) {
        cr_assert_eq(ls_workq_pop(q, &m), 1);
        cr_assert_eq(m.len, (size_t) i);
    }
    /* two producers at once while half is still queued: each one's messages keep their order */
    prod_t a = {.q = q}, b = {.q = q};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, two_producers_half, &a);
    pthread_create(&tb, NULL, two_producers_half, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    cr_assert_eq(a.rc, 0);
    cr_assert_eq(b.rc, 0);
    for (int i = N / 2; i < N; i++) {
        cr_assert_eq(ls_workq_pop(q, &m), 1);
        cr_assert_eq(m.len, (size_t) i, "the old messages come first");
    }
    size_t next_a = 0, next_b = 0;
    while (ls_workq_pop(q, &m) == 1) {
        size_t *next = m.ptr == &a ? &next_a : &next_b;
        cr_assert_eq(m.len, *next, "producer %c out of order", m.ptr == &a ? 'a' : 'b');
        (*next)++;
    }
    cr_assert_eq(next_a, (size_t) N / 2);
    cr_assert_eq(next_b, (size_t) N / 2);
    ls_workq_close(q);
    ls_workq_msg_t late = {0};
    cr_assert_eq(ls_workq_push(q, &late), LS_ECLOSED);
    ls_workq_free(q, NULL, NULL);
}
