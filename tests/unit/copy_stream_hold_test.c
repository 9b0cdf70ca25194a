/* copy: a lazy copy in block mode holds its closed generations while the open one's shadow
 * streams (engine/copy/replay.c, stream_hold; docs/BLOCKMODE.md "The copy's replay held while the
 * shadow streams"): one store commit for the generations of up to a second instead of one each,
 * replayed once the shadow's reports pause or the first has waited the second. */
#include <unistd.h>

#include "shadow_test_util.h"

static void setup(void)
{
    shadow_fixture_init("copyhold");
}

TestSuite(copy_stream_hold, .init = setup, .fini = shadow_fixture_fini);

static uint64_t last_replayed(ls_copy_t *c)
{
    ls_copy_stats_t s;
    ls_copy_stats(c, &s);
    cr_assert_eq(s.state, LS_COPY_HEALTHY, "%s", s.reason);
    return s.last_replayed;
}

/* The shadow of generation 3 reports (no bytes past its header: nothing to apply early) every
 * 10 ms for ms; returns the longest gap between two reports, ns. */
static uint64_t stream(ls_copy_t *c, uint64_t ms, want_t *until)
{
    uint64_t t0 = ls_mono_ns(), last = t0, gap = 0;
    for (uint64_t now = t0; now - t0 < ms * 1000000ull; now = ls_mono_ns()) {
        ls_copy_shadow_durable(c, 1, 3, LS_GEN_HEADER_SIZE, LSN);
        gap = LS_MAX(gap, now - last);
        last = now;
        if (until && reached(until)) break;
        usleep(10000);
    }
    return gap;
}

Test(copy_stream_hold, lazy_copy_holds_closed_generations_while_the_shadow_streams, .timeout = 60)
{
    ls_copy_t *c = copy_open(dir, NULL);
    ls_copy_shadow_apply_eager(c, false);
    cr_assert_eq(ls_copy_start(c), 0);
    send_range(c, &ch, 1, 1);
    want_t r = {c, 1, 0}; /* copy_test_util.h: replayed up to r.replayed */
    cr_assert(ls_h_wait_for(reached, &r, 20000), "no stream: generation 1 replayed at once");
    ls_copy_shadow_durable(c, 1, 3, LS_GEN_HEADER_SIZE, LSN);
    uint64_t t0 = ls_mono_ns();
    send_range(c, &ch, 2, 2);
    uint64_t gap = stream(c, 300, NULL);
    if (gap < 50000000ull) /* a test thread stalled 50 ms or more may let the stream look quiet */
        cr_assert_eq(last_replayed(c), 1, "generation 2 held while the shadow streams");
    r.replayed = 2;
    stream(c, 10000, &r); /* the reports go on: the hold ends after a second */
    cr_assert(reached(&r), "generation 2 replayed while the stream went on");
    cr_assert_eq(last_replayed(c), 2);
    cr_assert_lt(ls_mono_ns() - t0, 5000000000ull);
    ls_copy_close(c);
}

Test(copy_stream_hold, an_eager_copy_replays_at_once_while_the_shadow_streams, .timeout = 60)
{
    ls_copy_t *c = copy_open(dir, NULL);
    cr_assert_eq(ls_copy_start(c), 0); /* eager: a commit waits for the applied position */
    send_range(c, &ch, 1, 2);
    want_t r = {c, 2, 0};
    stream(c, 10000, &r);
    cr_assert(reached(&r));
    cr_assert_eq(last_replayed(c), 2);
    ls_copy_close(c);
}

/* Generation 2 received while generation 3's .part opens behind it (its fsync into logs/ left
 * pending meanwhile, as the receiver does for generations back to back), then made durable;
 * generation 3 stays open. */
static void arrive_2_with_3_open(ls_copy_t *c)
{
    char err[1024] = "";
    ls_copy_recv_defer(c, true);
    cr_assert_eq(send_gen(c, &ch, 2), 0);
    ls_copy_recv_defer(c, false);
    cr_assert_eq(ls_copy_recv_begin(c, 1, 3, ch.len[3], LS_H_GEN_CLOSE_NS, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(ls_copy_recv_data(c, 3, 0, ch.buf[3], 100, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ls_copy_recv_flush(c, err, sizeof(err)), 0, "%s", err);
}

/* The rest of generation 3. */
static void finish_3(ls_copy_t *c)
{
    char err[1024] = "";
    cr_assert_eq(ls_copy_recv_data(c, 3, 100, ch.buf[3] + 100, ch.len[3] - 100, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(ls_copy_recv_end(c, 3, ch.digest[3], err, sizeof(err)), 0, "%s", err);
}

/* Ship first, replay after (replay.c, arrival_hold): a lazy copy replays nothing while a backlog
 * arrives (a .part open behind what is queued), for at most a second after the head was queued. */
Test(copy_stream_hold, lazy_copy_replays_nothing_while_a_backlog_arrives, .timeout = 60)
{
    ls_copy_t *c = copy_open(dir, NULL);
    ls_copy_shadow_apply_eager(c, false);
    cr_assert_eq(ls_copy_start(c), 0);
    send_range(c, &ch, 1, 1);
    want_t r = {c, 1, 0};
    cr_assert(ls_h_wait_for(reached, &r, 20000), "a lone generation replayed at once");
    uint64_t t0 = ls_mono_ns();
    arrive_2_with_3_open(c);
    usleep(300000);
    if (ls_mono_ns() - t0 < 900000000ull) /* a test thread stalled 0.9 s may see the bound end */
        cr_assert_eq(last_replayed(c), 1, "generation 2 held while generation 3 arrives");
    r.replayed = 2;
    cr_assert(ls_h_wait_for(reached, &r, 20000), "generation 2 replayed after the bound");
    cr_assert_geq(ls_mono_ns() - t0, 900000000ull, "held about a second");
    finish_3(c);
    r.replayed = 3;
    cr_assert(ls_h_wait_for(reached, &r, 20000));
    ls_copy_close(c);
}

Test(copy_stream_hold, an_eager_copy_replays_while_a_backlog_arrives, .timeout = 60)
{
    ls_copy_t *c = copy_open(dir, NULL); /* eager: a commit waits for the applied position */
    cr_assert_eq(ls_copy_start(c), 0);
    send_range(c, &ch, 1, 1);
    uint64_t t0 = ls_mono_ns();
    arrive_2_with_3_open(c);
    want_t r = {c, 2, 0};
    cr_assert(ls_h_wait_for(reached, &r, 20000));
    cr_assert_lt(ls_mono_ns() - t0, 900000000ull, "generation 2 replayed at once");
    finish_3(c);
    r.replayed = 3;
    cr_assert(ls_h_wait_for(reached, &r, 20000));
    ls_copy_close(c);
}
