/* What the policy shows (netpolicy.h): per-network figures, the hysteresis, the errors of a
 * round, and the resend counters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netpolicy_int.h"

unsigned ls__netpolicy_penalty(const ls_netpolicy_t *p, const ls_netpolicy_net_t *n, uint64_t now)
{
    bool trusted = n->state == LS_NETPOLICY_IN_USE &&
                   now - n->in_use_since >= p->forget * p->settle_ms * NP_MS;
    return trusted ? 0 : n->penalty;
}

/* settle_time, doubled for each recent failure after the first (a flapping network earns an
 * ever longer wait). */
uint64_t ls__netpolicy_settle_ms(const ls_netpolicy_t *p, const ls_netpolicy_net_t *n, uint64_t now)
{
    unsigned pen = ls__netpolicy_penalty(p, n, now);
    return p->settle_ms << (pen > 1 ? pen - 1 : 0);
}

int ls_netpolicy_nnets(const ls_netpolicy_t *p)
{
    return p->nnets;
}

const ls_netpolicy_net_t *ls_netpolicy_net(const ls_netpolicy_t *p, int j)
{
    LS_ASSERT(j >= 0 && j < p->nnets);
    return &p->nets[j];
}

int ls_netpolicy_find(const ls_netpolicy_t *p, const char *name)
{
    for (int j = 0; j < p->nnets; j++)
        if (!strcmp(p->nets[j].name, name)) return j;
    return -1;
}

int ls_netpolicy_pinned(const ls_netpolicy_t *p)
{
    return p->pinned;
}

int ls_netpolicy_current(const ls_netpolicy_t *p)
{
    return p->cur;
}

uint64_t ls_netpolicy_deadline(const ls_netpolicy_t *p)
{
    return p->deadline;
}

uint64_t ls_netpolicy_switches(const ls_netpolicy_t *p)
{
    return p->switches;
}

const char *ls_netpolicy_last_switch(const ls_netpolicy_t *p, uint64_t *wall_ns)
{
    if (wall_ns) *wall_ns = p->last_switch_ns;
    return p->last_switch;
}

uint64_t ls_netpolicy_settle_ms(const ls_netpolicy_t *p, int j, uint64_t now_mono)
{
    return ls__netpolicy_settle_ms(p, ls_netpolicy_net(p, j), now_mono);
}

uint64_t ls_netpolicy_up_ns(const ls_netpolicy_t *p, int j, uint64_t now_mono)
{
    const ls_netpolicy_net_t *n = ls_netpolicy_net(p, j);
    return n->probe_ready && now_mono > n->healthy_since ? now_mono - n->healthy_since : 0;
}

void ls_netpolicy_errors(const ls_netpolicy_t *p, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int j = 0; j < p->nnets && off < len; j++) {
        const ls_netpolicy_net_t *n = &p->nets[j];
        if (p->pinned >= 0 && j != p->pinned) continue;
        int w = snprintf(buf + off, len - off, "%s%s: %s", off ? "; " : "", n->name,
                         n->last_error[0] ? n->last_error : "not tried");
        off += w > 0 ? (size_t) w : 0;
    }
    if (p->pinned >= 0 && off < len) snprintf(buf + off, len - off, " (pinned by the operator)");
}

const char *ls_netpolicy_state_name(ls_netpolicy_state_t s)
{
    static const char *names[] = {"unused", "connecting", "in_use", "down", "probing", "settling"};
    return (unsigned) s < LS_ARRAY_SIZE(names) ? names[s] : "unknown";
}

/* ---- resend counters ------------------------------------------------------------------------ */
void ls_netpolicy_sent(ls_netpolicy_t *p, int stream, uint64_t gen, uint64_t off, uint64_t len)
{
    LS_ASSERT(stream >= 0);
    if (stream >= p->nres) {
        int n = LS_MAX(stream + 1, 2 * p->nres);
        np_resend_t *r = realloc(p->res, (size_t) n * sizeof(*r));
        LS_CHECK(r != NULL);
        memset(r + p->nres, 0, (size_t) (n - p->nres) * sizeof(*r));
        p->res = r;
        p->nres = n;
    }
    np_resend_t *r = &p->res[stream];
    uint64_t end = off + len;
    if (gen < r->hi_gen) {
        r->resent += len;
    } else if (gen == r->hi_gen) {
        if (off < r->hi_off) r->resent += LS_MIN(end, r->hi_off) - off;
        r->hi_off = LS_MAX(r->hi_off, end);
    } else {
        r->hi_gen = gen;
        r->hi_off = end;
    }
}

uint64_t ls_netpolicy_resent(const ls_netpolicy_t *p, int stream)
{
    return stream >= 0 && stream < p->nres ? p->res[stream].resent : 0;
}
