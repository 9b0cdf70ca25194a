/* The replication networks of a link (netpath.h, docs/NETWORKS.md): engine/netpolicy decides,
 * this file feeds it the link's events and carries out its actions with the loop, the transport
 * and the file system (the pin in <data_dir>/network-pin.<target>); status and the command. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/netpath.h"

_Static_assert(LS_CFG_MAX_NETS <= LS_NETPOLICY_MAX_NETS, "the policy holds every network");
_Static_assert(NODE_REASON_MAX == LS_NETPOLICY_TEXT_MAX, "reasons pass through unchanged");

#define MS 1000000ull /* ns per ms */

static ls_netpolicy_now_t now(void)
{
    return (ls_netpolicy_now_t){.mono = ls_mono_ns(), .wall = ls_now_ns()};
}

/* ---- carrying out the policy's actions ------------------------------------------------------ */
static void run(link_t *l, const ls_netpolicy_out_t *out, ls_conn_t **adopt, int *chosen);

static void on_tick(uv_timer_t *t)
{
    link_t *l = t->data;
    if (l->node->stopping || !l->sel) return;
    ls_netpolicy_out_t out;
    ls_netpolicy_tick(l->sel->pol, now(), &out);
    run(l, &out, NULL, NULL);
}

/* One timer, for the policy's next deadline (it may fire a little early: the policy then asks
 * for the same deadline again). */
static void arm(link_t *l)
{
    struct node_netsel *ns = l->sel;
    uint64_t d = ls_netpolicy_deadline(ns->pol), t = ls_mono_ns();
    if (!d || l->node->stopping) {
        uv_timer_stop(&ns->tick);
        return;
    }
    uv_timer_start(&ns->tick, on_tick, d > t ? (d - t + MS - 1) / MS : 0, 0);
}

static void start_probe(link_t *l, int j)
{
    struct node_netsel *ns = l->sel;
    int rc = ls__node_link_connect(l, j, &ns->probe[j]);
    if (!rc) return;
    ns->probe[j] = NULL;
    char why[NODE_REASON_MAX];
    snprintf(why, sizeof(why), "probe cannot connect: %s", ls_strerror(rc));
    ls_netpolicy_out_t out;
    ls_netpolicy_probe_down(ns->pol, now(), j, why, &out);
    run(l, &out, NULL, NULL);
}

static void close_probe(struct node_netsel *ns, int j)
{
    if (ns->probe[j]) ls_conn_close(ns->probe[j]); /* its on_close no longer finds it */
    ns->probe[j] = NULL;
}

/* Takes the ready probe over j: it becomes the data connection. */
static ls_conn_t *take_probe(struct node_netsel *ns, int j)
{
    ls_conn_t *c = ns->probe[j];
    LS_ASSERT(c != NULL);
    ns->probe[j] = NULL;
    return c;
}

/* Carries out out's actions in order. CONNECT and ADOPT only come from _kick: *chosen (and
 * *adopt) say which network. Actions may report events of their own (a probe that cannot
 * start, a switch that reconnects): those run nested, and the timer is armed last. */
static void run(link_t *l, const ls_netpolicy_out_t *out, ls_conn_t **adopt, int *chosen)
{
    struct node_netsel *ns = l->sel;
    for (int i = 0; i < out->n; i++) {
        const ls_netpolicy_action_t *a = &out->act[i];
        switch (a->kind) {
        case LS_NETPOLICY_CONNECT:
            *chosen = a->net;
            break;
        case LS_NETPOLICY_ADOPT:
            *chosen = a->net;
            *adopt = take_probe(ns, a->net);
            break;
        case LS_NETPOLICY_SWITCH:
            ls__node_link_switch(l, a->net, a->adopt ? take_probe(ns, a->net) : NULL, a->text);
            break;
        case LS_NETPOLICY_PROBE:
            start_probe(l, a->net);
            break;
        case LS_NETPOLICY_CLOSE_PROBE:
            close_probe(ns, a->net);
            break;
        case LS_NETPOLICY_LOG:
            ls_log(a->level, "link", "%s: %s", l->cfg->name, a->text);
            break;
        case LS_NETPOLICY_ALL_DOWN: /* the caller asks ls__node_np_errors() */
        case LS_NETPOLICY_SAVE_PIN: /* only from _pin: the command saves it */
            break;
        }
    }
    if (l->sel) arm(l);
}

/* ---- the pin -------------------------------------------------------------------------------- */
/* The pinned network's name as kept at pin_path ("" when none or unreadable). */
static void load_pin(link_t *l, char *name, size_t len)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    name[0] = '\0';
    int rc = ls_read_file(l->sel->pin_path, 256, &buf, &n);
    if (rc == LS_ENOENT) return;
    if (rc) {
        LS_LOGW("link", "%s: cannot read the network pin %s: %s (not pinned)", l->cfg->name,
                l->sel->pin_path, ls_strerror(rc));
        return;
    }
    snprintf(name, len, "%.*s", (int) strcspn((char *) buf, "\n"), (char *) buf);
    free(buf);
}

/* Writes the pin (net) durably, or removes it (net < 0). */
static int save_pin(link_t *l, int net, char *err, size_t errlen)
{
    struct node_netsel *ns = l->sel;
    int rc;
    if (net < 0) {
        if (unlink(ns->pin_path) == 0)
            rc = ls_fsync_dir(l->node->cfg->data_dir);
        else
            rc = errno == ENOENT ? 0 : ls_err_from_errno(errno); /* no pin: nothing to undo */
    } else {
        char text[LS_CFG_NAME_MAX + 2];
        int n = snprintf(text, sizeof(text), "%s\n", l->cfg->nets[net].name);
        rc = ls_mkdir_p(l->node->cfg->data_dir);
        if (!rc) rc = ls_write_file_durable(ns->pin_path, text, (size_t) n);
    }
    if (rc) snprintf(err, errlen, "cannot write %s: %s", ns->pin_path, ls_strerror(rc));
    return rc;
}

/* Pins net (-1: releases): saved first, then the copies move. */
static int pin(link_t *l, int net, char *err, size_t errlen)
{
    ls_netpolicy_t *pol = l->sel->pol;
    ls_netpolicy_out_t out;
    LS_CHECK(ls_netpolicy_pin(pol, net, &out) == 0);
    LS_ASSERT(out.n == 1 && out.act[0].kind == LS_NETPOLICY_SAVE_PIN);
    int rc = save_pin(l, out.act[0].net, err, errlen);
    ls_netpolicy_pin_saved(pol, now(), rc == 0, &out);
    run(l, &out, NULL, NULL);
    return rc;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */
void ls__node_np_init(link_t *l)
{
    struct node_netsel *ns = calloc(1, sizeof(*ns));
    LS_CHECK(ns != NULL);
    l->sel = ns;
    snprintf(ns->pin_path, sizeof(ns->pin_path), "%s/network-pin.%s", l->node->cfg->data_dir,
             l->cfg->name);
    const char *names[LS_CFG_MAX_NETS];
    for (int j = 0; j < l->cfg->nnets; j++)
        names[j] = l->cfg->nets[j].name;
    char pinned[LS_CFG_NAME_MAX];
    load_pin(l, pinned, sizeof(pinned));
    ls_netpolicy_opts_t o = {
        .nnets = l->cfg->nnets, .names = names, .settle_ms = l->cfg->settle_ms, .pin = pinned};
    LS_CHECK(ls_netpolicy_new(&o, &ns->pol) == 0); /* the config checked the networks */
    if (pinned[0] && ls_netpolicy_pinned(ns->pol) < 0)
        LS_LOGW("link", "%s: pinned network '%s' (%s) is not configured: pin ignored", l->cfg->name,
                pinned, ns->pin_path);
    else if (pinned[0])
        LS_LOGI("link", "%s: pinned to network %s by the operator (%s)", l->cfg->name, pinned,
                ns->pin_path);
    uv_timer_init(l->node->loop, &ns->tick);
    ns->tick.data = l;
}

static void on_tick_closed(uv_handle_t *h)
{
    struct node_netsel *ns = h->data;
    ls_netpolicy_free(ns->pol);
    free(ns);
}

void ls__node_np_close(link_t *l)
{
    struct node_netsel *ns = l->sel;
    for (int j = 0; j < l->cfg->nnets; j++)
        close_probe(ns, j);
    uv_timer_stop(&ns->tick);
    ns->tick.data = ns;
    uv_close((uv_handle_t *) &ns->tick, on_tick_closed);
    l->sel = NULL;
}

/* ---- the link's events ---------------------------------------------------------------------- */
int ls__node_np_choose(link_t *l, ls_conn_t **adopt)
{
    int net = -1;
    *adopt = NULL;
    if (!l->sel) return -1;
    ls_netpolicy_out_t out;
    ls_netpolicy_kick(l->sel->pol, now(), &out);
    run(l, &out, adopt, &net);
    return net;
}

void ls__node_np_welcome(link_t *l)
{
    if (!l->sel) return;
    ls_netpolicy_out_t out;
    ls_netpolicy_welcome(l->sel->pol, now(), &out);
    run(l, &out, NULL, NULL);
}

void ls__node_np_failed(link_t *l, int net, const char *why)
{
    if (!l->sel) return;
    LS_ASSERT(net == ls_netpolicy_current(l->sel->pol));
    ls_netpolicy_out_t out;
    ls_netpolicy_failed(l->sel->pol, now(), why, &out);
    run(l, &out, NULL, NULL);
}

void ls__node_np_closed(link_t *l)
{
    if (!l->sel) return;
    ls_netpolicy_out_t out;
    ls_netpolicy_closed(l->sel->pol, now(), &out);
    run(l, &out, NULL, NULL);
}

void ls__node_np_errors(link_t *l, char *out, size_t outlen)
{
    if (l->sel)
        ls_netpolicy_errors(l->sel->pol, out, outlen);
    else
        snprintf(out, outlen, "stopping");
}

static int probe_net(link_t *l, ls_conn_t *c)
{
    for (int j = 0; l->sel && c && j < l->cfg->nnets; j++)
        if (l->sel->probe[j] == c) return j;
    return -1;
}

bool ls__node_np_probe_ready(link_t *l, ls_conn_t *c)
{
    int j = probe_net(l, c);
    if (j < 0) return false; /* stopping, or not a probe of ours */
    LS_LOGD("link", "%s: probe over network %s is up (%s)", l->cfg->name, l->cfg->nets[j].name,
            ls_conn_peer(c));
    ls_netpolicy_out_t out;
    ls_netpolicy_probe_up(l->sel->pol, now(), j, &out);
    run(l, &out, NULL, NULL);
    return true;
}

void ls__node_np_probe_closed(link_t *l, ls_conn_t *c, int status, const char *msg)
{
    int j = probe_net(l, c);
    if (j < 0) return; /* stopping, a probe we closed, or a data connection the link left */
    l->sel->probe[j] = NULL;
    LS_LOGD("link", "%s: probe over network %s ended: %s", l->cfg->name, l->cfg->nets[j].name, msg);
    ls_netpolicy_out_t out;
    ls_netpolicy_probe_down(l->sel->pol, now(), j, status ? msg : NULL, &out);
    run(l, &out, NULL, NULL);
}

static int shipper_index(const link_t *l, const shipper_t *s)
{
    for (int i = 0; i < l->nshippers; i++)
        if (l->shippers[i] == s) return i;
    return -1;
}

void ls__node_np_sent(link_t *l, shipper_t *s, uint64_t gen, uint64_t off, uint64_t len)
{
    int i = shipper_index(l, s);
    if (l->sel && i >= 0) ls_netpolicy_sent(l->sel->pol, i, gen, off, len);
}

/* ---- status and the operator's command ----------------------------------------------------- */
/* Each network's figures into nets (at least LS_STATUS_NETS_MAX); returns how many. */
static int nets_status(link_t *l, ls_status_net_t *nets)
{
    const ls_netpolicy_t *pol = l->sel->pol;
    uint64_t t = ls_mono_ns();
    int j;
    for (j = 0; j < l->cfg->nnets && j < LS_STATUS_NETS_MAX; j++) {
        const ls_cfg_network_t *cf = &l->cfg->nets[j];
        const ls_netpolicy_net_t *n = ls_netpolicy_net(pol, j);
        ls_status_net_t *o = &nets[j];
        snprintf(o->name, sizeof(o->name), "%s", cf->name);
        snprintf(o->remote, sizeof(o->remote), "%s:%u", cf->remote.host, cf->remote.port);
        snprintf(o->bind, sizeof(o->bind), "%s", cf->bind);
        o->state = ls_netpolicy_state_name(n->state);
        snprintf(o->last_error, sizeof(o->last_error), "%s", n->last_error);
        o->last_error_time_ns = n->last_error_ns;
        snprintf(o->left_reason, sizeof(o->left_reason), "%s", n->left_reason);
        o->left_time_ns = n->left_ns;
        o->failures = n->failures;
        o->settle_ns = ls_netpolicy_settle_ms(pol, j, t) * MS;
        o->up_ns = ls_netpolicy_up_ns(pol, j, t);
    }
    return j;
}

static const char *pinned_name(const link_t *l)
{
    int j = ls_netpolicy_pinned(l->sel->pol);
    return j >= 0 ? l->cfg->nets[j].name : "";
}

void ls__node_link_status(shipper_t *s, ls_status_copy_t *c)
{
    link_t *l = s->link;
    if (!l->sel) return;
    const ls_netpolicy_t *pol = l->sel->pol;
    c->have_networks = true;
    c->resent_bytes = ls_netpolicy_resent(pol, shipper_index(l, s));
    snprintf(c->network_pinned, sizeof(c->network_pinned), "%s", pinned_name(l));
    c->network_switches = ls_netpolicy_switches(pol);
    snprintf(c->last_switch, sizeof(c->last_switch), "%s",
             ls_netpolicy_last_switch(pol, &c->last_switch_time_ns));
    c->nnets = nets_status(l, c->nets);
}

static link_t *find_link(ls_node_t *n, const char *name)
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
int ls__node_link_command(ls_node_t *n, const cJSON *req, cJSON *resp, char *err, size_t errlen)
{
    const char *target = req_str(req, "target"), *action = req_str(req, "action");
    link_t *l = target ? find_link(n, target) : NULL;
    if (!l || !l->sel) {
        snprintf(err, errlen, "node %s ships to no target '%s'", n->cfg->node_name,
                 target ? target : "");
        return LS_ENOENT;
    }
    char msg[NODE_REASON_MAX];
    if (!action || !strcmp(action, "show")) {
        snprintf(msg, sizeof(msg), "%s: network %s%s", l->cfg->name,
                 l->ready ? l->cfg->nets[l->net].name : "none (disconnected)",
                 pinned_name(l)[0] ? " (pinned)" : "");
    } else if (!strcmp(action, "pin")) {
        const char *net = req_str(req, "network");
        int j = net ? ls_netpolicy_find(l->sel->pol, net) : -1;
        if (j < 0) {
            snprintf(err, errlen, "target %s has no network '%s'", l->cfg->name, net ? net : "");
            return LS_ENOENT;
        }
        int rc = pin(l, j, err, errlen);
        if (rc) return rc;
        snprintf(msg, sizeof(msg), "%s: pinned to network %s (kept across restarts)", l->cfg->name,
                 net);
    } else if (!strcmp(action, "release")) {
        int rc = pin(l, -1, err, errlen);
        if (rc) return rc;
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
    cJSON_AddStringToObject(resp, "network_pinned", pinned_name(l));
    cJSON_AddNumberToObject(resp, "network_switches", (double) ls_netpolicy_switches(l->sel->pol));
    ls_status_net_t *nets = calloc(LS_STATUS_NETS_MAX, sizeof(*nets));
    if (!nets) return LS_ENOMEM;
    cJSON_AddItemToObject(resp, "networks", ls_status_networks_to_json(nets, nets_status(l, nets)));
    free(nets);
    return 0;
}
