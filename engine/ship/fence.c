/* ship: epochs and fencing (see ship.h, DEMOTED). An active that learns of a newer epoch for its
 * database is an old active: another copy was activated. It stops shipping at once and for good,
 * tells the target, and asks the caller (the STATE action with `fence` set) to fence its writer
 * (LS_EFENCED from the next commit batch) and demote the directory (engine/role). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ship/ship_int.h"

/* This node's epoch for the database: the source view's (0 before the view is attached). */
static uint32_t our_epoch(ls_ship_t *m)
{
    if (!m->src) return 0;
    ls_source_view_t v;
    ls_source_view(m->src, &v);
    return v.epoch;
}

/* Stops shipping for good and records the newest epoch (and active) heard of. */
static void mark_fenced(ls_ship_t *m, uint32_t epoch, const char *active)
{
    ls__ship_reader_stop(m);
    m->restart_from = 0;
    m->cs_due = false;
    m->fenced = true;
    if (epoch > m->fence_epoch) m->fence_epoch = epoch;
    if (active && active[0]) snprintf(m->fence_active, sizeof(m->fence_active), "%s", active);
}

void ls__ship_fence_by(ls_ship_t *m, uint32_t epoch, const char *active, bool tell, uint64_t now,
                       const char *fmt, ...)
{
    (void) now;
    bool first = !m->fenced;
    if (!first && epoch <= m->fence_epoch && (!active || !active[0] || m->fence_active[0]))
        return; /* nothing new */
    mark_fenced(m, epoch, active);
    /* Later news (the name, a newer epoch) updates ls_ship_fenced()'s answer and a Demoted
     * reason, never the state: DIVERGED, which only the caller sets (ls_ship_fence), stays
     * (turning it back into DEMOTED here was a race between two peers' EPOCH frames). */
    if (!first && m->state != LS_SHIP_DEMOTED) return;
    ls_ship_state_t prev = m->state;
    m->state = LS_SHIP_DEMOTED;
    va_list ap;
    va_start(ap, fmt);
    ls_vmsgf(m->reason, sizeof(m->reason), fmt, ap); /* an argument may be the old reason */
    va_end(ap);
    if (!first) return; /* the caller was asked to fence, the target told, already */
    m->o.action_cb(m->o.ctx, &(ls_ship_action_t){.kind = LS_SHIP_ACT_STATE,
                                                 .state = m->state,
                                                 .prev = prev,
                                                 .reason = m->reason,
                                                 .fence = true,
                                                 .epoch = m->fence_epoch,
                                                 .active = m->fence_active});
    if (tell && m->connected && m->accepted) ls__ship_fail(m, LS_EFENCED);
}

void ls_ship_learn_epoch(ls_ship_t *m, uint32_t epoch, const char *active, uint64_t now)
{
    uint32_t ours = our_epoch(m);
    if (!ours || epoch <= ours) return; /* not newer: the peer is behind or in step */
    const char *who = active && active[0] ? active : "another node";
    ls__ship_fence_by(m, epoch, active, true, now,
                      "fenced: %.64s became active for %.64s in epoch %u (this node's epoch is "
                      "%u; learned from %.64s): this node ships it no more and its writer "
                      "refuses commits",
                      who, m->o.database, epoch, ours, m->o.target);
}

void ls_ship_fence(ls_ship_t *m, uint32_t epoch, const char *active, bool diverged,
                   const char *reason, uint64_t now)
{
    (void) now;
    mark_fenced(m, epoch, active);
    const char *who = m->fence_active[0] ? m->fence_active : "another node";
    if (reason)
        ls__ship_set_state(m, diverged ? LS_SHIP_DIVERGED : LS_SHIP_DEMOTED, "%s", reason);
    else
        ls__ship_set_state(m, diverged ? LS_SHIP_DIVERGED : LS_SHIP_DEMOTED,
                           "%s: %.64s is active for %.64s in epoch %u; this node ships it no "
                           "more",
                           diverged ? "diverged" : "demoted", who, m->o.database, m->fence_epoch);
}

bool ls_ship_fenced(const ls_ship_t *m, uint32_t *epoch, const char **active)
{
    if (m->fenced) {
        if (epoch) *epoch = m->fence_epoch;
        if (active) *active = m->fence_active;
    }
    return m->fenced;
}
