/*
 * workq: a FIFO of typed messages from producer threads to one consumer thread, with a wake-up
 * for the consumer (the primitive behind every hand-off between the loop and a worker). Bounded
 * (ls_workq_new: a full queue refuses or makes the producer wait), or growing
 * (ls_workq_new_growing) for a queue whose producers are bounded by other means (a credit
 * window, a count of chunks not yet released): it doubles its ring when full.
 *
 * A message is small and copied in and out: a type chosen by the caller, a pointer and a length.
 * What the pointer points at belongs to whoever holds the message: the producer gives it up with
 * a successful push, the consumer takes it with the pop (the queue's lock orders the two, so the
 * consumer sees everything the producer wrote before the push).
 *
 * Waking the consumer:
 *   - a thread consumer blocks in ls_workq_pop_wait(): no callback needed (wake may be NULL);
 *   - an event loop consumer passes wake, which the queue calls from the producer's thread after
 *     a push that found the queue empty (and at close); map it to uv_async_send(). The consumer
 *     then pops with ls_workq_pop() until it says empty: one wake-up covers every message pushed
 *     before the pop that emptied the queue.
 * A producer that finds a bounded queue full either keeps the message (ls_workq_push: LS_EBUSY)
 * or blocks for room (ls_workq_push_wait, for worker threads; never on a loop). A growing queue
 * never waits: a push fails only when memory runs out (LS_ENOMEM) or after close.
 *
 * Lifecycle: ls_workq_new() -> pushes and pops -> either ls_workq_close() (no more pushes; the
 * consumer drains what is queued, then pops say LS_ECLOSED) or ls_workq_cancel() (no more pushes
 * and pops say LS_ECLOSED at once: what is queued stays) -> join the other thread ->
 * ls_workq_free(), which hands each message still queued to the drop callback, in order.
 *
 * Threading: push* from any threads (the lock orders producers), pop* from the consumer, close,
 * cancel and len from any of them;
 * new and free from one thread while no other uses the queue. wake runs on the pushing thread
 * with no lock held.
 */
#ifndef LS_CORE_WORKQ_H
#define LS_CORE_WORKQ_H

#include <stddef.h>

typedef struct {
    int type;   /* the caller's message type */
    void *ptr;  /* payload; owned by whoever holds the message */
    size_t len; /* payload bytes, or any number the caller likes */
} ls_workq_msg_t;

typedef struct ls_workq ls_workq_t;
typedef void (*ls_workq_wake_cb)(void *arg);
typedef void (*ls_workq_drop_cb)(const ls_workq_msg_t *m, void *arg);

/* A queue of at most cap (>= 1) messages; wake may be NULL. NULL: cap 0 or out of memory. */
ls_workq_t *ls_workq_new(size_t cap, ls_workq_wake_cb wake, void *wake_arg);
/* A queue that starts with room for initial messages (0: 16) and doubles when full. */
ls_workq_t *ls_workq_new_growing(size_t initial, ls_workq_wake_cb wake, void *wake_arg);
/* Queues a copy of *m. 0; LS_EBUSY when full (nothing queued); LS_ECLOSED after close/cancel;
 * LS_ENOMEM when a growing queue cannot grow. */
int ls_workq_push(ls_workq_t *q, const ls_workq_msg_t *m);
/* Same, waiting for room instead of LS_EBUSY. 0 or LS_ECLOSED (also when closed while waiting). */
int ls_workq_push_wait(ls_workq_t *q, const ls_workq_msg_t *m);
/* The oldest message into *out: 1; 0 when empty; LS_ECLOSED when closed and drained, or
 * cancelled. */
int ls_workq_pop(ls_workq_t *q, ls_workq_msg_t *out);
/* Same, waiting while empty and open: 1 or LS_ECLOSED. */
int ls_workq_pop_wait(ls_workq_t *q, ls_workq_msg_t *out);
void ls_workq_close(ls_workq_t *q);  /* no more pushes; pops drain; waiters wake; idempotent */
void ls_workq_cancel(ls_workq_t *q); /* no more pushes or pops; waiters wake; idempotent */
size_t ls_workq_len(ls_workq_t *q);  /* messages queued now */
/* Frees the queue, first passing each message left to drop (may be NULL) in FIFO order. NULL is a
 * no-op. */
void ls_workq_free(ls_workq_t *q, ls_workq_drop_cb drop, void *arg);

#endif
