/*
 * A loop's wake-up from another thread (ls_node_wake_t, node_int.h): an eventfd the loop polls and
 * a pending flag, without libuv's uv_async_t. uv_async_send marks its handle busy around the
 * eventfd write, and the loop, once woken, spins on that mark and calls sched_yield() until the
 * sender has cleared it (libuv 1.44, uv__async_spin). Where the woken loop runs on the sender's
 * CPU (2 vCPUs, a wake-up placed on the waker's CPU) it preempts the sender right after its
 * write, before the mark is cleared: the loop yields back, and the sender — a reader with the
 * rest of a generation to read and verify, the receiver with a piece to write — keeps that CPU
 * for up to 0.5 ms while the loop, with frames to send, waits (bench/README.md, "Picking up one
 * generation", 2026-12-05, second wip/pickup session). Here the sender's last shared step is the
 * write itself: the loop, whenever it runs, has nothing of the sender's to wait for.
 */
#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "node/node_int.h"

static void on_readable(uv_poll_t *h, int status, int events)
{
    ls_node_wake_t *w = h->data;
    uint64_t v;
    (void) status;
    (void) events;
    while (read(w->fd, &v, sizeof(v)) < 0 && errno == EINTR) {}
    /* Cleared before the callback, by an exchange (it reads the senders' last store): whatever
     * a sender published before finding the flag set is seen by this callback, and a sender
     * that finds it clear from now on writes again. */
    (void) atomic_exchange(&w->pending, 0);
    w->cb(w->data);
}

int ls__node_wake_init(uv_loop_t *loop, ls_node_wake_t *w, void (*cb)(void *), void *data)
{
    w->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->fd < 0) return errno;
    atomic_init(&w->pending, 0);
    w->cb = cb;
    w->data = data;
    w->closed = NULL;
    int rc = uv_poll_init(loop, &w->poll, w->fd);
    if (rc != 0) {
        close(w->fd);
        w->fd = -1;
        return -rc; /* libuv's codes are negated errnos */
    }
    w->poll.data = w;
    LS_CHECK(uv_poll_start(&w->poll, UV_READABLE, on_readable) == 0); /* only EINVAL/EEXIST */
    return 0;
}

void ls__node_wake_send(ls_node_wake_t *w)
{
    if (atomic_exchange(&w->pending, 1) != 0) return; /* the loop has not run it yet */
    uint64_t one = 1;
    while (write(w->fd, &one, sizeof(one)) < 0 && errno == EINTR) {}
}

static void on_closed(uv_handle_t *h)
{
    ls_node_wake_t *w = h->data;
    close(w->fd);
    w->fd = -1;
    if (w->closed) w->closed(w->data);
}

void ls__node_wake_close(ls_node_wake_t *w, void (*closed)(void *data))
{
    w->closed = closed;
    uv_close((uv_handle_t *) &w->poll, on_closed);
}
