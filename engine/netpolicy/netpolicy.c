/* The replication networks' state machine (netpolicy.h, docs/NETWORKS.md): failover in order of
 * preference, probes of the preferred networks, failback after the settle time with hysteresis,
 * the operator's pin. No I/O, no clock: every event brings its time, every decision leaves as an
 * action. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netpolicy_int.h"

/* ---- helpers -------------------------------------------------------------------------------- */
static ls_netpolicy_action_t *push(ls_netpolicy_out_t *out, ls_netpolicy_kind_t kind, int net)
{
    LS_CHECK(out->n < LS_NETPOLICY_MAX_ACTIONS);
    ls_netpolicy_action_t *a = &out->act[out->n++];
    a->kind = kind;
    a->net = net;
    a->adopt = false;
    a->level = LS_LOG_INFO;
    a->text[0] = '\0';
    return a;
}

static void say(ls_netpolicy_out_t *out, ls_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(ls_netpolicy_out_t *out, ls_log_level_t level, const char *fmt, ...)
{
    ls_netpolicy_action_t *a = push(out, LS_NETPOLICY_LOG, -1);
    a->level = level;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->text, sizeof(a->text), fmt, ap);
    va_end(ap);
}

static void copy_text(char *dst, const char *src)
{
    snprintf(dst, LS_NETPOLICY_TEXT_MAX, "%s", src);
}

static uint64_t probe_interval_ns(const ls_netpolicy_t *p)
{
    return LS_MAX(p->probe_min_ms, LS_MIN(p->probe_max_ms, p->settle_ms / 2)) * NP_MS;
}

static void set_error(ls_netpolicy_net_t *n, ls_netpolicy_now_t now, const char *why)
{
    copy_text(n->last_error, why);
    n->last_error_ns = now.wall;
    n->failures++;
}

static void close_probe(ls_netpolicy_net_t *n, int j, ls_netpolicy_out_t *out)
{
    if (!n->probe) return;
    push(out, LS_NETPOLICY_CLOSE_PROBE, j);
    n->probe = false;
    n->probe_ready = false;
    if (n->state == LS_NETPOLICY_PROBING || n->state == LS_NETPOLICY_SETTLING)
        n->state = LS_NETPOLICY_UNUSED;
}

static bool tried(const ls_netpolicy_t *p, int j)
{
    return p->tried & (1u << j);
}

/* The copies leave j (on purpose or not): failures it has lived down stay forgotten. */
static void leave(ls_netpolicy_t *p, ls_netpolicy_net_t *n, uint64_t now)
{
    n->penalty = ls__netpolicy_penalty(p, n, now);
    n->in_use_since = 0;
}

/* The data connection goes over j from now on (connecting). */
static void attempt(ls_netpolicy_t *p, int j)
{
    p->cur = j;
    p->ready = false;
    p->nets[j].state = LS_NETPOLICY_CONNECTING;
}

/* Leaves the data connection (if any) because of why, for j: adopting its ready probe, or
 * (adopt false) with a _kick to follow. */
static void switch_to(ls_netpolicy_t *p, ls_netpolicy_now_t now, int j, bool adopt, const char *why,
                      ls_netpolicy_out_t *out)
{
    if (p->cur >= 0) {
        ls_netpolicy_net_t *old = &p->nets[p->cur];
        leave(p, old, now.mono);
        copy_text(old->left_reason, why);
        old->left_ns = now.wall;
        old->state = LS_NETPOLICY_UNUSED;
    }
    copy_text(p->why, why);
    ls_netpolicy_action_t *a = push(out, LS_NETPOLICY_SWITCH, j);
    a->adopt = adopt;
    copy_text(a->text, why);
    p->cur = -1;
    p->ready = false;
    if (adopt) {
        LS_ASSERT(p->nets[j].probe_ready);
        p->nets[j].probe = p->nets[j].probe_ready = false;
        attempt(p, j);
    }
}

static void min_deadline(uint64_t *d, uint64_t t)
{
    if (!*d || t < *d) *d = t;
}

/* Brings the probes in line with where the copies are, fails back when a preferred network
 * settled, and computes the next deadline. Probes are wanted while the copies ship (WELCOME) over
 * a network that is not the first, for every network before it, unless pinned. While the link
 * reconnects, a ready probe is kept (_kick may adopt it), others are closed. */
static void plan(ls_netpolicy_t *p, ls_netpolicy_now_t now, ls_netpolicy_out_t *out)
{
    int cur = p->ready ? p->cur : -1, best = -1;
    uint64_t deadline = 0;
    for (int j = 0; j < p->nnets; j++) {
        ls_netpolicy_net_t *n = &p->nets[j];
        bool wanted = p->pinned < 0 && cur > 0 && j < cur;
        if (!wanted) {
            if (n->probe && (cur >= 0 || !n->probe_ready)) close_probe(n, j, out);
            continue;
        }
        if (!n->probe && now.mono >= n->next_probe) {
            push(out, LS_NETPOLICY_PROBE, j);
            n->probe = true;
            n->state = LS_NETPOLICY_PROBING;
            n->next_probe = now.mono + probe_interval_ns(p);
        }
        if (!n->probe) {
            min_deadline(&deadline, n->next_probe);
        } else if (n->probe_ready) {
            uint64_t due = n->healthy_since + ls__netpolicy_settle_ms(p, n, now.mono) * NP_MS;
            if (now.mono >= due && best < 0) best = j;
            if (now.mono < due) min_deadline(&deadline, due);
        }
    }
    p->deadline = deadline;
    if (best < 0) return;
    char why[LS_NETPOLICY_TEXT_MAX];
    snprintf(why, sizeof(why), "failback to network %s: up for %.1f s", p->nets[best].name,
             (double) (now.mono - p->nets[best].healthy_since) / 1e9);
    switch_to(p, now, best, true, why, out);
    plan(p, now, out); /* not ready now: no second failback */
}

/* ---- lifecycle ------------------------------------------------------------------------------ */
int ls_netpolicy_new(const ls_netpolicy_opts_t *o, ls_netpolicy_t **out)
{
    *out = NULL;
    if (o->nnets < 1 || o->nnets > LS_NETPOLICY_MAX_NETS || !o->names) return LS_EINVAL;
    for (int j = 0; j < o->nnets; j++)
        if (!o->names[j] || !o->names[j][0] || strlen(o->names[j]) >= LS_NETPOLICY_NAME_MAX)
            return LS_EINVAL;
    ls_netpolicy_t *p = calloc(1, sizeof(*p));
    if (!p) return LS_ENOMEM;
    p->nnets = o->nnets;
    for (int j = 0; j < o->nnets; j++)
        snprintf(p->nets[j].name, sizeof(p->nets[j].name), "%s", o->names[j]);
    p->settle_ms = o->settle_ms ? o->settle_ms : 10000;
    p->probe_min_ms = o->probe_min_ms ? o->probe_min_ms : 500;
    p->probe_max_ms = o->probe_max_ms ? o->probe_max_ms : 5000;
    p->penalty_max = o->penalty_max ? o->penalty_max : 5;
    p->forget = o->forget ? o->forget : 8;
    p->cur = p->shipped_on = -1;
    p->pinned = o->pin ? ls_netpolicy_find(p, o->pin) : -1;
    *out = p;
    return 0;
}

void ls_netpolicy_free(ls_netpolicy_t *p)
{
    if (!p) return;
    free(p->res);
    free(p);
}

/* ---- the data connection -------------------------------------------------------------------- */
void ls_netpolicy_kick(ls_netpolicy_t *p, ls_netpolicy_now_t now, ls_netpolicy_out_t *out)
{
    out->n = 0;
    LS_ASSERT(p->cur < 0);
    plan(p, now, out); /* no connection: only ready probes stay */
    int j = -1;
    if (p->pinned >= 0) {
        if (!tried(p, p->pinned)) j = p->pinned;
    } else {
        for (int k = 0; k < p->nnets && j < 0; k++) /* a probe that is up: the best evidence */
            if (p->nets[k].probe_ready && !tried(p, k)) j = k;
        for (int k = 0; k < p->nnets && j < 0; k++)
            if (!tried(p, k)) j = k;
    }
    if (j < 0) {
        p->tried = 0; /* the next round starts over from the preferred network */
        ls_netpolicy_action_t *a = push(out, LS_NETPOLICY_ALL_DOWN, -1);
        ls_netpolicy_errors(p, a->text, sizeof(a->text));
        return;
    }
    ls_netpolicy_net_t *n = &p->nets[j];
    if (n->probe_ready) {
        n->probe = n->probe_ready = false;
        push(out, LS_NETPOLICY_ADOPT, j);
    } else {
        LS_ASSERT(!n->probe); /* plan() closed the probes that had not answered */
        push(out, LS_NETPOLICY_CONNECT, j);
    }
    attempt(p, j);
}

void ls_netpolicy_welcome(ls_netpolicy_t *p, ls_netpolicy_now_t now, ls_netpolicy_out_t *out)
{
    out->n = 0;
    LS_ASSERT(p->cur >= 0);
    int cur = p->cur;
    p->ready = true;
    p->nets[cur].state = LS_NETPOLICY_IN_USE;
    p->nets[cur].in_use_since = now.mono;
    p->tried = 0;
    if (p->shipped_on >= 0 && p->shipped_on != cur) {
        p->switches++;
        p->last_switch_ns = now.wall;
        snprintf(p->last_switch, sizeof(p->last_switch), "from %s to %s: %.370s",
                 p->nets[p->shipped_on].name, p->nets[cur].name,
                 p->why[0] ? p->why : "reconnected");
        say(out, cur > p->shipped_on ? LS_LOG_WARN : LS_LOG_INFO,
            "switched network %.460s (switch %llu)", p->last_switch,
            (unsigned long long) p->switches);
    }
    p->shipped_on = cur;
    p->why[0] = '\0';
    plan(p, now, out);
}

void ls_netpolicy_failed(ls_netpolicy_t *p, ls_netpolicy_now_t now, const char *why,
                         ls_netpolicy_out_t *out)
{
    out->n = 0;
    LS_ASSERT(p->cur >= 0);
    int j = p->cur;
    ls_netpolicy_net_t *n = &p->nets[j];
    set_error(n, now, why);
    n->next_probe = now.mono + probe_interval_ns(p);
    p->tried |= 1u << j;
    if (p->ready) {
        leave(p, n, now.mono);
        n->penalty = LS_MIN(n->penalty + 1, p->penalty_max);
        n->penalty_mono = now.mono;
        snprintf(n->left_reason, sizeof(n->left_reason), "failed: %.490s", why);
        n->left_ns = now.wall;
        snprintf(p->why, sizeof(p->why), "network %s failed: %.420s", n->name, why);
    }
    n->state = LS_NETPOLICY_DOWN;
    p->cur = -1;
    p->ready = false;
    plan(p, now, out);
}

void ls_netpolicy_closed(ls_netpolicy_t *p, ls_netpolicy_now_t now, ls_netpolicy_out_t *out)
{
    out->n = 0;
    if (p->cur >= 0) {
        leave(p, &p->nets[p->cur], now.mono);
        p->nets[p->cur].state = LS_NETPOLICY_UNUSED;
    }
    p->cur = -1;
    p->ready = false;
    plan(p, now, out);
}

/* ---- probes --------------------------------------------------------------------------------- */
void ls_netpolicy_probe_up(ls_netpolicy_t *p, ls_netpolicy_now_t now, int j,
                           ls_netpolicy_out_t *out)
{
    out->n = 0;
    LS_ASSERT(j >= 0 && j < p->nnets);
    ls_netpolicy_net_t *n = &p->nets[j];
    if (!n->probe || n->probe_ready) return;
    n->probe_ready = true;
    n->healthy_since = now.mono;
    n->state = LS_NETPOLICY_SETTLING;
    say(out, LS_LOG_INFO, "network %s answers: failback after %.1f s if it stays up", n->name,
        (double) ls__netpolicy_settle_ms(p, n, now.mono) / 1e3);
    plan(p, now, out);
}

void ls_netpolicy_probe_down(ls_netpolicy_t *p, ls_netpolicy_now_t now, int j, const char *why,
                             ls_netpolicy_out_t *out)
{
    out->n = 0;
    LS_ASSERT(j >= 0 && j < p->nnets);
    ls_netpolicy_net_t *n = &p->nets[j];
    if (!n->probe) return;
    n->probe = n->probe_ready = false;
    n->state = LS_NETPOLICY_DOWN;
    set_error(n, now, why ? why : "probe closed");
    n->next_probe = now.mono + probe_interval_ns(p);
    plan(p, now, out);
}

void ls_netpolicy_tick(ls_netpolicy_t *p, ls_netpolicy_now_t now, ls_netpolicy_out_t *out)
{
    out->n = 0;
    plan(p, now, out);
}

/* ---- the operator's pin --------------------------------------------------------------------- */
int ls_netpolicy_pin(ls_netpolicy_t *p, int net, ls_netpolicy_out_t *out)
{
    out->n = 0;
    if (net < -1 || net >= p->nnets) return LS_EINVAL;
    p->pin_asked = net;
    p->pin_saving = true;
    push(out, LS_NETPOLICY_SAVE_PIN, net);
    return 0;
}

void ls_netpolicy_pin_saved(ls_netpolicy_t *p, ls_netpolicy_now_t now, bool ok,
                            ls_netpolicy_out_t *out)
{
    out->n = 0;
    if (!p->pin_saving) return;
    p->pin_saving = false;
    if (!ok) return;
    int j = p->pinned = p->pin_asked;
    if (j < 0) {
        say(out, LS_LOG_INFO, "network pin released by the operator");
    } else {
        const char *name = p->nets[j].name;
        say(out, LS_LOG_INFO, "pinned to network %s by the operator", name);
        for (int k = 0; k < p->nnets; k++)
            if (k != j) close_probe(&p->nets[k], k, out);
        p->tried = 0;
        if (p->cur != j) {
            char why[LS_NETPOLICY_TEXT_MAX];
            snprintf(why, sizeof(why), "pinned to network %s by the operator", name);
            switch_to(p, now, j, p->nets[j].probe_ready, why, out);
        }
    }
    plan(p, now, out);
}
