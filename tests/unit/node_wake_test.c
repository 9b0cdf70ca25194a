/* node: the loop's wake-up from other threads (engine/node/wake.c, ls_node_wake_t): sends before
 * the loop runs are run once and the callback sees everything published before them; a sender
 * thread's every publication is seen; the close runs its callback and closes the eventfd; out of
 * descriptors, the init says so and leaves nothing open. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "harness.h"
#include "node/node_int.h"

typedef struct {
    atomic_uint_fast64_t published; /* the senders' data */
    uint64_t seen;                  /* the last value the callback read */
    int runs;                       /* callback runs */
    int closed;                     /* closed-callback runs */
} ctx_t;

static void on_wake(void *data)
{
    ctx_t *c = data;
    c->seen = atomic_load(&c->published);
    c->runs++;
}

static void on_closed(void *data)
{
    ((ctx_t *) data)->closed++;
}

/* Runs the loop until the callback saw want (or 10 s passed). */
static void run_until(uv_loop_t *loop, ctx_t *c, uint64_t want)
{
    uint64_t end = ls_now_ns() + 10000000000ull;
    while (c->seen < want && ls_now_ns() < end)
        uv_run(loop, UV_RUN_NOWAIT);
}

Test(node_wake, sends_before_the_loop_runs_are_run_once)
{
    uv_loop_t loop;
    ctx_t c = {0};
    ls_node_wake_t w;
    cr_assert_eq(uv_loop_init(&loop), 0);
    ls__node_wake_init(&loop, &w, on_wake, &c);
    for (int i = 0; i < 1000; i++) {
        atomic_fetch_add(&c.published, 1);
        ls__node_wake_send(&w);
    }
    run_until(&loop, &c, 1000);
    cr_assert_eq(c.seen, 1000);
    cr_assert_eq(c.runs, 1, "one run for the sends made before it");
    ls__node_wake_send(&w); /* after the run: written again */
    run_until(&loop, &c, 1000);
    uv_run(&loop, UV_RUN_NOWAIT);
    cr_assert_eq(c.runs, 2);
    int fd = w.fd;
    ls__node_wake_close(&w, on_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(c.closed, 1);
    cr_assert(fcntl(fd, F_GETFD) < 0, "the eventfd is closed with the handle");
    cr_assert_eq(uv_loop_close(&loop), 0);
}

typedef struct {
    ctx_t *c;
    ls_node_wake_t *w;
    uint64_t n;
} sender_t;

static void *sender_main(void *arg)
{
    sender_t *s = arg;
    for (uint64_t i = 0; i < s->n; i++) {
        atomic_fetch_add(&s->c->published, 1);
        ls__node_wake_send(s->w);
        if (i % 64 == 0) usleep(10);
    }
    return NULL;
}

/* A sender thread publishing while the loop runs: its last publication is always seen (no send
 * lost between the loop's clearing of the flag and the callback). */
Test(node_wake, a_sender_threads_last_publication_is_seen)
{
    uv_loop_t loop;
    ctx_t c = {0};
    ls_node_wake_t w;
    cr_assert_eq(uv_loop_init(&loop), 0);
    ls__node_wake_init(&loop, &w, on_wake, &c);
    sender_t s = {.c = &c, .w = &w, .n = 20000};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, sender_main, &s), 0);
    run_until(&loop, &c, s.n);
    pthread_join(th, NULL);
    cr_assert_eq(c.seen, s.n);
    cr_assert(c.runs >= 1 && (uint64_t) c.runs <= s.n);
    ls__node_wake_close(&w, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

/* Out of descriptors (RLIMIT_NOFILE at the next free one): the init returns EMFILE instead of
 * stopping the process, and a later init once a descriptor is free works (Criterion runs each
 * test in its own process, so the limit does not outlive it). */
Test(node_wake, out_of_descriptors_the_init_fails_cleanly)
{
    uv_loop_t loop;
    ctx_t c = {0};
    ls_node_wake_t w;
    cr_assert_eq(uv_loop_init(&loop), 0);
    int next = dup(0);
    cr_assert(next >= 0);
    close(next); /* the lowest free descriptor: the limit makes it the first refused */
    uint64_t old;
    cr_assert(ls_h_fd_limit(0, 0, &old));
    cr_assert_eq(ls__node_wake_init(&loop, &w, on_wake, &c), EMFILE);
    cr_assert(ls_h_fd_unlimit(0, old));
    cr_assert_eq(fcntl(next, F_GETFD), -1, "nothing was left open");
    cr_assert_eq(ls__node_wake_init(&loop, &w, on_wake, &c), 0);
    atomic_store(&c.published, 1);
    ls__node_wake_send(&w);
    run_until(&loop, &c, 1);
    cr_assert_eq(c.seen, 1);
    ls__node_wake_close(&w, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
}
