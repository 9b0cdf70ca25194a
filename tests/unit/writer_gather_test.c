/*
 * The applier's gathering rule (engine/writer/gather.h) with a fake clock: long at level local
 * and while many committers wait at a remote level, short for a lone committer there, with
 * hysteresis between the two.
 */
#include <criterion/criterion.h>

#include "writer/gather.h"

#define MS    1000000ull
#define T0    (1000ull * MS) /* the fake clock's start */
#define NEVER 0

/* A look: a batch queued or being written (busy), handed batches so far, committers inside. */
static ls__gather_look_t at(bool busy, uint64_t handed, unsigned committers)
{
    return (ls__gather_look_t){.busy = busy, .handed = handed, .committers = committers};
}

/* Looks every step ns from now with a batch handed over at each, committers inside, until the
 * rule says apply; returns when (NEVER: not before limit). */
static uint64_t steady(ls__gather_t *g, uint64_t now, uint64_t step, unsigned committers,
                       uint64_t limit)
{
    uint64_t wake, handed = 100;
    for (; now < limit; now += step) {
        ls__gather_look_t l = at(false, ++handed, committers);
        if (!ls__gather_next(g, &l, now, &wake)) return now;
        cr_assert_leq(wake, g->start + GATHER_LONG_NS, "never sleeps past the bound");
    }
    return NEVER;
}

Test(writer_gather, a_lone_committer_at_a_remote_level_applies_once_nothing_is_coming)
{
    ls__gather_t g;
    ls__gather_look_t l = at(true, 1, 1);
    uint64_t wake;
    ls__gather_begin(&g, false, &l, T0);
    cr_assert_not(g.lng);
    cr_assert(ls__gather_next(&g, &l, T0, &wake), "a batch is being written: it joins");
    cr_assert_eq(wake, T0 + GATHER_SHORT_NS);
    l = at(false, 2, 1);
    cr_assert_not(ls__gather_next(&g, &l, T0 + MS / 2, &wake), "nothing coming: apply");
}

Test(writer_gather, a_short_gather_ends_at_its_bound_while_batches_keep_coming)
{
    ls__gather_t g;
    ls__gather_look_t l = at(true, 1, 2);
    ls__gather_begin(&g, false, &l, T0);
    uint64_t wake, now = T0;
    for (; ls__gather_next(&g, &l, now, &wake); now += MS)
        l = at(true, l.handed + 1, 2);
    cr_assert_eq(now, T0 + GATHER_SHORT_NS);
}

Test(writer_gather, many_committers_at_a_remote_level_gather_for_the_long_bound)
{
    ls__gather_t g;
    ls__gather_look_t l = at(false, 1, GATHER_MANY);
    ls__gather_begin(&g, false, &l, T0);
    cr_assert(g.lng);
    /* a batch every millisecond, the flusher idle between them (its committers wait for copies) */
    cr_assert_eq(steady(&g, T0 + MS, MS, 8, T0 + 2000 * MS), T0 + GATHER_LONG_NS);
}

Test(writer_gather, a_long_gather_ends_when_the_commits_pause)
{
    ls__gather_t g;
    ls__gather_look_t l = at(false, 1, 8);
    uint64_t wake;
    ls__gather_begin(&g, false, &l, T0);
    l = at(false, 2, 8);
    cr_assert(ls__gather_next(&g, &l, T0 + MS, &wake));
    cr_assert_eq(wake, T0 + MS + GATHER_IDLE_NS, "looks again when a pause would end it");
    cr_assert(ls__gather_next(&g, &l, T0 + 2 * MS, &wake), "no batch for 1 ms: goes on");
    cr_assert_not(ls__gather_next(&g, &l, T0 + MS + GATHER_IDLE_NS, &wake), "paused: apply");
}

Test(writer_gather, a_long_gather_ends_once_few_committers_wait_long_enough)
{
    ls__gather_t g;
    ls__gather_look_t l = at(false, 1, 8);
    uint64_t wake;
    ls__gather_begin(&g, false, &l, T0);
    /* one look with a lone committer, then many again: a moment, not a change of load */
    l = at(false, 2, 1);
    cr_assert(ls__gather_next(&g, &l, T0 + MS, &wake));
    cr_assert_eq(wake, T0 + MS + GATHER_IDLE_NS);
    l = at(false, 3, 6);
    cr_assert(ls__gather_next(&g, &l, T0 + 2 * MS, &wake));
    cr_assert_eq(g.few_since, 0);
    /* then a lone committer at every look: apply GATHER_FEW_NS after the first such look */
    uint64_t first = T0 + 3 * MS;
    cr_assert_eq(steady(&g, first, MS, GATHER_FEW, T0 + 2000 * MS), first + GATHER_FEW_NS);
}

Test(writer_gather, a_short_gather_turns_long_when_committers_pile_up)
{
    ls__gather_t g;
    ls__gather_look_t l = at(true, 1, 1);
    uint64_t wake;
    ls__gather_begin(&g, false, &l, T0);
    cr_assert_not(g.lng);
    l = at(true, 2, 2);
    cr_assert(ls__gather_next(&g, &l, T0 + MS, &wake));
    cr_assert_not(g.lng, "two committers: still short");
    l = at(true, 3, GATHER_MANY);
    cr_assert(ls__gather_next(&g, &l, T0 + 2 * MS, &wake));
    cr_assert(g.lng);
    cr_assert_eq(wake, T0 + GATHER_LONG_NS, "the long bound from the gather's start");
    cr_assert_eq(steady(&g, T0 + 3 * MS, MS, 4, T0 + 2000 * MS), T0 + GATHER_LONG_NS);
}

Test(writer_gather, level_local_gathers_long_whatever_the_committers)
{
    ls__gather_t g;
    ls__gather_look_t l = at(false, 1, 1);
    uint64_t wake;
    ls__gather_begin(&g, true, &l, T0);
    cr_assert(g.lng);
    cr_assert_eq(steady(&g, T0 + MS, MS, 1, T0 + 2000 * MS), T0 + GATHER_LONG_NS,
                 "a lone committer at local: batches keep coming, no few-committer end");
    ls__gather_begin(&g, true, &l, T0);
    cr_assert(ls__gather_next(&g, &l, T0 + MS, &wake));
    cr_assert_not(ls__gather_next(&g, &l, T0 + GATHER_IDLE_NS, &wake), "paused 2 ms: apply");
}
