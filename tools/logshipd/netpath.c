/* The replication networks of a link (netpath.h, docs/NETWORKS.md): failover in order of
 * preference, probes of the preferred networks, failback after the settle time with hysteresis,
 * the operator's pin (kept durably in <data_dir>/network-pin.<target>), status and counters. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "netpath.h"

#define MS 1000000ull /* ns per ms */

static const char *state_name(np_state_t s)
{
    static const char *names[] = {"unused", "connecting", "in_use", "down", "probing", "settling"};
    return (unsigned) s < LS_ARRAY_SIZE(names) ? names[s] : "unknown";
}

static uint64_t probe_interval_ms(const link_t *l)
{
    return LS_MAX(NP_PROBE_MIN_MS, LS_MIN(NP_PROBE_MAX_MS, l->cfg->settle_ms / 2));
}

/* Recent failures of net while it carried the copy (0 once forgotten). */
static unsigned penalty(const link_t *l, const np_net_t *n, uint64_t now)
{
    if (!n->penalty || now - n->penalty_mono > NP_FORGET * l->cfg->settle_ms * MS) return 0;
    return n->penalty;
}

/* How long a probe must stay up before failback: settle_time, doubled for each recent failure
 * after the first (hysteresis: a flapping network earns an ever longer wait). */
static uint64_t settle_ms(const link_t *l, const np_net_t *n, uint64_t now)
{
    unsigned p = penalty(l, n, now);
    return l->cfg->settle_ms << (p > 1 ? p - 1 : 0);
}

static int find_net(const link_t *l, const char *name)
{
    for (int i = 0; i < l->cfg->nnets; i++)
        if (!strcmp(l->cfg->nets[i].name, name)) return i;
    return -1;
}

static void set_error(np_net_t *n, const char *why)
{
    snprintf(n->last_error, sizeof(n->last_error), "%s", why);
    n->last_error_ns = ls_now_ns();
    n->failures++;
}

static void close_probe(np_net_t *n)
{
    if (n->probe) ls_conn_close(n->probe); /* its on_close no longer finds it */
    n->probe = NULL;
    n->probe_ready = false;
    if (n->state == NP_PROBING || n->state == NP_SETTLING) n->state = NP_UNUSED;
}

/* ---- the pin ------------------------------------------------------------------------------- */
static void load_pin(link_t *l)
{
    struct ld_netsel *ns = l->sel;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = ls_read_file(ns->pin_path, 256, &buf, &len);
    if (rc == LS_ENOENT) return;
    if (rc) {
        LS_LOGW("link", "%s: cannot read the network pin %s: %s (not pinned)", l->cfg->name,
                ns->pin_path, ls_strerror(rc));
        return;
    }
    char name[LS_CFG_NAME_MAX] = "";
    snprintf(name, sizeof(name), "%.*s", (int) strcspn((char *) buf, "\n"), (char *) buf);
    free(buf);
    ns->pinned = find_net(l, name);
    if (ns->pinned < 0)
        LS_LOGW("link", "%s: pinned network '%s' (%s) is not configured: pin ignored", l->cfg->name,
                name, ns->pin_path);
    else
        LS_LOGI("link", "%s: pinned to network %s by the operator (%s)", l->cfg->name, name,
                ns->pin_path);
}

static int save_pin(link_t *l, char *err, size_t errlen)
{
    struct ld_netsel *ns = l->sel;
    int rc;
    if (ns->pinned < 0) {
        if (unlink(ns->pin_path) == 0)
            rc = ls_fsync_dir(l->node->cfg->data_dir);
        else
            rc = errno == ENOENT ? 0 : ls_err_from_errno(errno); /* no pin: nothing to undo */
    } else {
        char text[LS_CFG_NAME_MAX + 2];
        int n = snprintf(text, sizeof(text), "%s\n", l->cfg->nets[ns->pinned].name);
        rc = ls_mkdir_p(l->node->cfg->data_dir);
        if (!rc) rc = ls_write_file_durable(ns->pin_path, text, (size_t) n);
    }
    if (rc) snprintf(err, errlen, "cannot write %s: %s", ns->pin_path, ls_strerror(rc));
    return rc;
}

/* ---- probes and failback ------------------------------------------------------------------- */
static void start_probe(link_t *l, int j, uint64_t now)
{
    np_net_t *n = &l->sel->nets[j];
    n->next_probe = now + probe_interval_ms(l) * MS;
    int rc = ld__link_connect(l, j, &n->probe);
    if (rc) {
        char why[LD_REASON_MAX];
        snprintf(why, sizeof(why), "probe cannot connect: %s",
                 rc < 0 && rc > -4096 ? uv_strerror(rc) : ls_strerror(rc));
        set_error(n, why);
        n->state = NP_DOWN;
        return;
    }
    n->state = NP_PROBING;
}

bool ld__np_probe_ready(link_t *l, ls_conn_t *c)
{
    if (!l->sel) return false; /* stopping */
    for (int j = 0; j < l->cfg->nnets; j++) {
        np_net_t *n = &l->sel->nets[j];
        if (n->probe != c) continue;
        n->probe_ready = true;
        n->healthy_since = ls_mono_ns();
        n->state = NP_SETTLING;
        LS_LOGI("link", "%s: network %s answers (probe %s): failback after %.1f s if it stays up",
                l->cfg->name, l->cfg->nets[j].name, ls_conn_peer(c),
                (double) settle_ms(l, n, n->healthy_since) / 1e3);
        return true;
    }
    return false;
}

void ld__np_probe_closed(link_t *l, ls_conn_t *c, int status, const char *msg)
{
    if (!l->sel) return; /* stopping: ld__np_close() closed the probes */
    for (int j = 0; j < l->cfg->nnets; j++) {
        np_net_t *n = &l->sel->nets[j];
        if (n->probe != c) continue;
        n->probe = NULL;
        n->probe_ready = false;
        n->state = NP_DOWN;
        set_error(n, status ? msg : "probe closed");
        n->next_probe = ls_mono_ns() + probe_interval_ms(l) * MS;
        LS_LOGD("link", "%s: probe over network %s ended: %s", l->cfg->name, l->cfg->nets[j].name,
                msg);
        return;
    }
}

/* Every tick: probes the networks preferred to the one in use, and fails back to the best one
 * whose probe has stayed up for its settle time. */
static void on_tick(uv_timer_t *t)
{
    link_t *l = t->data;
    struct ld_netsel *ns = l->sel;
    if (l->node->stopping) return;
    uint64_t now = ls_mono_ns();
    int cur = l->ready ? l->net : -1, best = -1;
    for (int j = 0; j < l->cfg->nnets; j++) {
        np_net_t *n = &ns->nets[j];
        bool wanted = ns->pinned < 0 && cur > 0 && j < cur;
        if (!wanted) {
            /* While reconnecting a ready probe may be adopted (ld__np_choose); else no probes. */
            if (n->probe && (cur >= 0 || !n->probe_ready)) close_probe(n);
            continue;
        }
        if (!n->probe && now >= n->next_probe) start_probe(l, j, now);
        if (best < 0 && n->probe_ready && now - n->healthy_since >= settle_ms(l, n, now) * MS)
            best = j;
    }
    if (best < 0) return;
    np_net_t *n = &ns->nets[best];
    char why[LD_REASON_MAX];
    snprintf(why, sizeof(why), "failback to network %s: up for %.1f s", l->cfg->nets[best].name,
             (double) (now - n->healthy_since) / 1e9);
    snprintf(ns->why, sizeof(ns->why), "%s", why);
    ls_conn_t *c = n->probe;
    n->probe = NULL;
    n->probe_ready = false;
    ld__link_switch(l, best, c, why);
}

static void on_tick_closed(uv_handle_t *h)
{
    struct ld_netsel *ns = h->data;
    free(ns->res);
    free(ns);
}

void ld__np_init(link_t *l)
{
    struct ld_netsel *ns = calloc(1, sizeof(*ns));
    LS_CHECK(ns != NULL);
    l->sel = ns;
    ns->pinned = -1;
    ns->shipped_on = -1;
    snprintf(ns->pin_path, sizeof(ns->pin_path), "%s/network-pin.%s", l->node->cfg->data_dir,
             l->cfg->name);
    uint64_t tick = LS_MAX(50, LS_MIN(500, l->cfg->heartbeat_interval_ms));
    uv_timer_init(l->node->loop, &ns->tick);
    ns->tick.data = l;
    uv_timer_start(&ns->tick, on_tick, tick, tick);
    load_pin(l);
}

void ld__np_close(link_t *l)
{
    struct ld_netsel *ns = l->sel;
    for (int j = 0; j < l->cfg->nnets; j++)
        close_probe(&ns->nets[j]);
    uv_timer_stop(&ns->tick);
    ns->tick.data = ns;
    uv_close((uv_handle_t *) &ns->tick, on_tick_closed);
    l->sel = NULL;
}

/* ---- failover ------------------------------------------------------------------------------ */
int ld__np_choose(link_t *l, ls_conn_t **adopt)
{
    struct ld_netsel *ns = l->sel;
    *adopt = NULL;
    if (ns->pinned >= 0) {
        if (!(ns->tried & (1u << ns->pinned))) {
            np_net_t *n = &ns->nets[ns->pinned];
            if (n->probe_ready) *adopt = n->probe, n->probe = NULL, n->probe_ready = false;
            return ns->pinned;
        }
    } else {
        for (int j = 0; j < l->cfg->nnets; j++) { /* a probe that is up is the best evidence */
            np_net_t *n = &ns->nets[j];
            if (n->probe_ready && !(ns->tried & (1u << j))) {
                *adopt = n->probe;
                n->probe = NULL;
                n->probe_ready = false;
                return j;
            }
        }
        for (int j = 0; j < l->cfg->nnets; j++)
            if (!(ns->tried & (1u << j))) return j;
    }
    ns->tried = 0; /* the next round starts over from the preferred network */
    return -1;
}

void ld__np_attempt(link_t *l, int net)
{
    np_net_t *n = &l->sel->nets[net];
    if (n->probe) close_probe(n);
    n->state = NP_CONNECTING;
}

void ld__np_welcome(link_t *l)
{
    struct ld_netsel *ns = l->sel;
    ns->nets[l->net].state = NP_IN_USE;
    ns->tried = 0;
    if (ns->shipped_on >= 0 && ns->shipped_on != l->net) {
        ns->switches++;
        ns->last_switch_ns = ls_now_ns();
        snprintf(ns->last_switch, sizeof(ns->last_switch), "from %s to %s: %.380s",
                 l->cfg->nets[ns->shipped_on].name, l->cfg->nets[l->net].name,
                 ns->why[0] ? ns->why : "reconnected");
        ls_log(l->net > ns->shipped_on ? LS_LOG_WARN : LS_LOG_INFO, "link",
               "%s: switched network %s (switch %llu)", l->cfg->name, ns->last_switch,
               (unsigned long long) ns->switches);
    }
    ns->shipped_on = l->net;
    ns->why[0] = '\0';
}

void ld__np_failed(link_t *l, int net, const char *why)
{
    struct ld_netsel *ns = l->sel;
    np_net_t *n = &ns->nets[net];
    uint64_t now = ls_mono_ns();
    bool was_in_use = n->state == NP_IN_USE;
    set_error(n, why);
    n->state = NP_DOWN;
    n->next_probe = now + probe_interval_ms(l) * MS;
    ns->tried |= 1u << net;
    if (!was_in_use) return;
    n->penalty = LS_MIN(penalty(l, n, now) + 1, NP_PENALTY_MAX);
    n->penalty_mono = now;
    snprintf(n->left_reason, sizeof(n->left_reason), "failed: %s", why);
    n->left_ns = ls_now_ns();
    snprintf(ns->why, sizeof(ns->why), "network %s failed: %s", l->cfg->nets[net].name, why);
}

void ld__np_left(link_t *l, int net, const char *why)
{
    np_net_t *n = &l->sel->nets[net];
    snprintf(n->left_reason, sizeof(n->left_reason), "%s", why);
    n->left_ns = ls_now_ns();
    n->state = NP_UNUSED;
    snprintf(l->sel->why, sizeof(l->sel->why), "%s", why);
}

void ld__np_errors(link_t *l, char *out, size_t outlen)
{
    size_t off = 0;
    out[0] = '\0';
    for (int j = 0; j < l->cfg->nnets && off < outlen; j++) {
        const np_net_t *n = &l->sel->nets[j];
        if (l->sel->pinned >= 0 && j != l->sel->pinned) continue;
        int w = snprintf(out + off, outlen - off, "%s%s: %s", off ? "; " : "", l->cfg->nets[j].name,
                         n->last_error[0] ? n->last_error : "not tried");
        off += w > 0 ? (size_t) w : 0;
    }
    if (l->sel->pinned >= 0 && off < outlen)
        snprintf(out + off, outlen - off, " (pinned by the operator)");
}

void ld__np_sent(link_t *l, shipper_t *s, uint64_t gen, uint64_t off, uint64_t len)
{
    struct ld_netsel *ns = l->sel;
    int i = 0;
    while (i < l->nshippers && l->shippers[i] != s)
        i++;
    if (i == l->nshippers) return;
    if (i >= ns->nres) {
        ns->res = realloc(ns->res, (size_t) l->nshippers * sizeof(*ns->res));
        LS_CHECK(ns->res != NULL);
        memset(ns->res + ns->nres, 0, (size_t) (l->nshippers - ns->nres) * sizeof(*ns->res));
        ns->nres = l->nshippers;
    }
    np_resend_t *r = &ns->res[i];
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

/* ---- status and the operator's command ----------------------------------------------------- */
/* Each network's figures into nets (at least LS_STATUS_NETS_MAX); returns how many. */
static int nets_status(link_t *l, ls_status_net_t *nets)
{
    struct ld_netsel *ns = l->sel;
    uint64_t now = ls_mono_ns();
    int j;
    for (j = 0; j < l->cfg->nnets && j < LS_STATUS_NETS_MAX; j++) {
        const ls_cfg_network_t *cf = &l->cfg->nets[j];
        const np_net_t *n = &ns->nets[j];
        ls_status_net_t *o = &nets[j];
        snprintf(o->name, sizeof(o->name), "%s", cf->name);
        snprintf(o->remote, sizeof(o->remote), "%s:%u", cf->remote.host, cf->remote.port);
        snprintf(o->bind, sizeof(o->bind), "%s", cf->bind);
        o->state = state_name(n->state);
        snprintf(o->last_error, sizeof(o->last_error), "%s", n->last_error);
        o->last_error_time_ns = n->last_error_ns;
        snprintf(o->left_reason, sizeof(o->left_reason), "%s", n->left_reason);
        o->left_time_ns = n->left_ns;
        o->failures = n->failures;
        o->settle_ns = settle_ms(l, n, now) * MS;
        o->up_ns = n->probe_ready ? now - n->healthy_since : 0;
    }
    return j;
}

void ld_link_status(shipper_t *s, ls_status_copy_t *c)
{
    link_t *l = s->link;
    struct ld_netsel *ns = l->sel;
    if (!ns) return;
    c->have_networks = true;
    for (int i = 0; i < ns->nres && i < l->nshippers; i++)
        if (l->shippers[i] == s) c->resent_bytes = ns->res[i].resent;
    snprintf(c->network_pinned, sizeof(c->network_pinned), "%s",
             ns->pinned >= 0 ? l->cfg->nets[ns->pinned].name : "");
    c->network_switches = ns->switches;
    snprintf(c->last_switch, sizeof(c->last_switch), "%s", ns->last_switch);
    c->last_switch_time_ns = ns->last_switch_ns;
    c->nnets = nets_status(l, c->nets);
}

static link_t *find_link(node_t *n, const char *name)
{
    for (int i = 0; i < n->nlinks; i++)
        if (!strcmp(n->links[i].cfg->name, name)) return &n->links[i];
    return NULL;
}

static const char *req_str(const cJSON *req, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(req, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* {"cmd":"network","target":T,"action":"pin","network":N} | "release" | "show" */
int ld_link_command(node_t *n, const cJSON *req, cJSON *resp, char *err, size_t errlen)
{
    const char *target = req_str(req, "target"), *action = req_str(req, "action");
    link_t *l = target ? find_link(n, target) : NULL;
    if (!l) {
        snprintf(err, errlen, "node %s ships to no target '%s'", n->cfg->node_name,
                 target ? target : "");
        return LS_ENOENT;
    }
    struct ld_netsel *ns = l->sel;
    char msg[LD_REASON_MAX];
    if (!action || !strcmp(action, "show")) {
        snprintf(msg, sizeof(msg), "%s: network %s%s", l->cfg->name,
                 l->ready ? l->cfg->nets[l->net].name : "none (disconnected)",
                 ns->pinned >= 0 ? " (pinned)" : "");
    } else if (!strcmp(action, "pin")) {
        const char *net = req_str(req, "network");
        int j = net ? find_net(l, net) : -1;
        if (j < 0) {
            snprintf(err, errlen, "target %s has no network '%s'", l->cfg->name, net ? net : "");
            return LS_ENOENT;
        }
        int was = ns->pinned;
        ns->pinned = j;
        int rc = save_pin(l, err, errlen);
        if (rc) {
            ns->pinned = was;
            return rc;
        }
        LS_LOGI("link", "%s: pinned to network %s by the operator", l->cfg->name, net);
        for (int k = 0; k < l->cfg->nnets; k++)
            if (k != j) close_probe(&ns->nets[k]);
        ns->tried = 0;
        if (!l->conn || l->net != j) {
            char why[LD_REASON_MAX];
            snprintf(why, sizeof(why), "pinned to network %s by the operator", net);
            np_net_t *p = &ns->nets[j];
            ls_conn_t *c = p->probe_ready ? p->probe : NULL;
            if (c) p->probe = NULL, p->probe_ready = false;
            ld__link_switch(l, j, c, why);
        }
        snprintf(msg, sizeof(msg), "%s: pinned to network %s (kept across restarts)", l->cfg->name,
                 net);
    } else if (!strcmp(action, "release")) {
        ns->pinned = -1;
        int rc = save_pin(l, err, errlen);
        if (rc) return rc;
        LS_LOGI("link", "%s: network pin released by the operator", l->cfg->name);
        snprintf(msg, sizeof(msg),
                 "%s: released; the preferred network is used again once it stays up for the "
                 "settle time",
                 l->cfg->name);
    } else {
        snprintf(err, errlen, "unknown network action '%s' (pin, release or show)", action);
        return LS_EINVAL;
    }
    cJSON_AddStringToObject(resp, "message", msg);
    cJSON_AddStringToObject(resp, "target", l->cfg->name);
    cJSON_AddStringToObject(resp, "network", l->ready ? l->cfg->nets[l->net].name : "");
    cJSON_AddStringToObject(resp, "network_pinned",
                            ns->pinned >= 0 ? l->cfg->nets[ns->pinned].name : "");
    cJSON_AddNumberToObject(resp, "network_switches", (double) ns->switches);
    ls_status_net_t *nets = calloc(LS_STATUS_NETS_MAX, sizeof(*nets));
    if (!nets) return LS_ENOMEM;
    cJSON_AddItemToObject(resp, "networks", ls_status_networks_to_json(nets, nets_status(l, nets)));
    free(nets);
    return 0;
}
