/*
 * The applier's gathering rule (gather.h): long or short, and when a gather ends. Pure: no locks,
 * no clock of its own.
 */
#include "writer/gather.h"

static void go_long(ls__gather_t *g, uint64_t now)
{
    g->lng = true;
    g->last = now; /* the pause is counted from here */
    g->few_since = 0;
}

void ls__gather_begin(ls__gather_t *g, bool local, const ls__gather_look_t *look, uint64_t now)
{
    *g = (ls__gather_t){.local = local, .start = now, .last = now, .seen = look->handed};
    if (local || look->committers >= GATHER_MANY) go_long(g, now);
}

/* A remote level's shape (hysteresis): false once a long gather saw few committers too long. */
static bool remote_shape(ls__gather_t *g, const ls__gather_look_t *look, uint64_t now)
{
    if (!g->lng) {
        if (look->committers >= GATHER_MANY) go_long(g, now);
        return true;
    }
    if (look->committers > GATHER_FEW) {
        g->few_since = 0;
        return true;
    }
    if (!g->few_since) g->few_since = now;
    return now - g->few_since < GATHER_FEW_NS;
}

bool ls__gather_next(ls__gather_t *g, const ls__gather_look_t *look, uint64_t now, uint64_t *wake)
{
    if (!g->local && !remote_shape(g, look, now)) return false;
    uint64_t until = g->start + (g->lng ? GATHER_LONG_NS : GATHER_SHORT_NS);
    if (now >= until) return false;
    bool coming = look->busy || (g->lng && look->handed != g->seen);
    if (coming) {
        g->seen = look->handed;
        g->last = now;
    } else if (!g->lng || now - g->last >= GATHER_IDLE_NS) {
        return false; /* short: nothing coming; long: the commits paused */
    }
    /* A batch queued or being written signals the caller once handed over. */
    *wake = look->busy ? until : g->last + GATHER_IDLE_NS;
    if (*wake > until) *wake = until;
    if (g->few_since && g->few_since + GATHER_FEW_NS < *wake) *wake = g->few_since + GATHER_FEW_NS;
    return true;
}
