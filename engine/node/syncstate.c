/* Synchronous commit as an active database's writer runs it (docs/BLOCKMODE.md "Synchronous
 * commit"): on the housekeeping tick the node reads the sync state the writer publishes in the
 * database's control page (engine/writer/ctlpage.h, mapped here once the database exists), logs
 * each switch (WARN when it degraded, with the writer's reason; INFO back to sync) and fills the
 * status model's sync fields from the last read. One seqlock read a second: no system call. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "node/node_int.h"

static const char *state_name(uint32_t s)
{
    return s == LS_CTL_SYNC_SYNC ? "sync" : s == LS_CTL_SYNC_DEGRADED ? "degraded" : "off";
}

static const char *level_name(uint32_t l)
{
    return l == 1 ? "remote_durable" : l == 2 ? "remote_applied" : "local";
}

/* Whether a writer has the database open: its pid in the durable area, still alive. */
static bool writer_open(const ls_ctlpage_t *p)
{
    ls_ctl_durable_t d;
    ls_ctlpage_read_durable(p, &d);
    return d.pid && (kill((pid_t) d.pid, 0) == 0 || errno == EPERM);
}

void ls__node_sync_poll(active_t *a)
{
    if (a->retired) return;
    if (!a->ctl) {
        char err[512] = "";
        int rc = ls__node_active_ctl(a, err, sizeof(err));
        if (rc && rc != LS_ENOENT && !a->sync_warned) /* absent: no writer opened it yet */
            LS_LOGW("node", "database %s: cannot read synchronous commit's state: %s", a->cfg->name,
                    err);
        a->sync_warned = rc != 0 && rc != LS_ENOENT;
        if (rc) return;
    }
    ls_ctl_sync_t s;
    ls_ctlpage_read_sync(a->ctl, &s);
    if (!writer_open(a->ctl)) s.state = LS_CTL_SYNC_OFF; /* a writer killed: stale */
    const ls_ctl_sync_t *was = &a->sync;
    bool moved = s.state != was->state || s.switches != was->switches;
    if (moved && s.state == LS_CTL_SYNC_DEGRADED)
        LS_LOGW("node",
                "database %s: synchronous commit (%s, %u cop%s) degraded: commits no longer wait "
                "for copies: %s",
                a->cfg->name, level_name(s.level), s.copies, s.copies == 1 ? "y" : "ies", s.reason);
    else if (moved && s.state == LS_CTL_SYNC_SYNC && was->state == LS_CTL_SYNC_DEGRADED)
        LS_LOGI("node", "database %s: synchronous commit back to sync (%u switches)", a->cfg->name,
                s.switches);
    else if (moved && s.state == LS_CTL_SYNC_SYNC && s.switches > was->switches + 1)
        LS_LOGW("node",
                "database %s: synchronous commit degraded and came back to sync between two "
                "looks (%u switches)",
                a->cfg->name, s.switches);
    a->sync = s;
}

void ls__node_sync_status(const active_t *a, ls_status_db_t *o)
{
    const ls_ctl_sync_t *s = &a->sync;
    o->sync_state = state_name(s->state);
    o->sync_level = level_name(s->level);
    o->sync_copies = s->copies;
    o->sync_switches = s->switches;
    o->sync_since_ns = s->since_ns;
    snprintf(o->sync_reason, sizeof(o->sync_reason), "%s", s->reason);
}
