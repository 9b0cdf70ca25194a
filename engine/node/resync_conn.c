/* The incremental resync's connection to the new active (resync_inc.c says the whole): the
 * network the shipper's link would use first, the next one in order before the WELCOME, the
 * seed client's options, and the frames in and out of r->cs. On the loop. */
#include <stdio.h>
#include <string.h>

#include "node/netpath.h"
#include "node/resync_int.h"

static void on_ready(ls_conn_t *c);
static void on_frame(ls_conn_t *c, const ls_conn_frame_t *fr);
static void on_close(ls_conn_t *c, int status, const char *msg);

/* The network the shipper's link to the new active would use (netpath.c: its pin, else the
 * network in use), else the first in the configured order. */
static int first_net(const struct node_rsi *r)
{
    const ls_node_t *n = r->node;
    for (int i = 0; i < n->nlinks; i++) {
        const link_t *l = &n->links[i];
        if (strcmp(l->cfg->name, r->src->name) || !l->sel || !l->sel->pol) continue;
        int net = ls_netpolicy_pinned(l->sel->pol);
        if (net < 0) net = ls_netpolicy_current(l->sel->pol);
        if (net >= 0 && net < r->src->nnets) return net;
    }
    return 0;
}

/* The connection to the new active for r->cs over network r->net. */
static int connect_net(struct node_rsi *r)
{
    ls_node_t *n = r->node;
    ls_conn_opts_t cb = {
        .on_ready = on_ready, .on_frame = on_frame, .on_close = on_close, .data = r};
    bool target = ls_config_target(n->cfg, r->follows) != NULL;
    int rc = ls__node_connect(n, r->src, r->net, target, &cb, &r->conn);
    if (rc) r->conn = NULL;
    return rc;
}

/* Before the WELCOME, a failed network gives way to the next in order (from the one first_net
 * chose, wrapping), as the shipper's links and the seed client do; true when one is being tried. */
static bool next_net(struct node_rsi *r, const char *why)
{
    while (r->nets_tried < r->src->nnets && !r->node->stopping &&
           ls_seed_client_state(r->cs) == LS_SEED_CLI_CONNECTING &&
           !ls_seed_client_welcomed(r->cs)) {
        int prev = r->net;
        r->net = (r->net + 1) % r->src->nnets;
        r->nets_tried++;
        LS_LOGW("resync", "%s: network %s to %s: %s; trying network %s", r->db->cfg->name,
                r->src->nets[prev].name, r->follows, why, r->src->nets[r->net].name);
        snprintf(r->message, sizeof(r->message), "connecting to %s over network %s", r->follows,
                 r->src->nets[r->net].name);
        int rc = connect_net(r);
        if (rc == 0) return true;
        why = ls_strerror(rc);
    }
    return false;
}

/* Opens the connection to the new active for r->cs: its networks in order, from first_net. */
void ls__rsi_connect_src(struct node_rsi *r)
{
    r->net = first_net(r);
    r->nets_tried = 1;
    snprintf(r->message, sizeof(r->message), "connecting to %s over network %s", r->follows,
             r->src->nets[r->net].name);
    int rc = connect_net(r);
    if (rc == 0 || next_net(r, ls_strerror(rc))) return;
    const ls_cfg_network_t *nw = &r->src->nets[r->net];
    ls_seed_client_fail(r->cs, rc ? rc : LS_EIO,
                        "cannot connect to %s over network %s (%s:%u) or any other: %s", r->follows,
                        nw->name, nw->remote.host, nw->remote.port, ls_strerror(rc ? rc : LS_EIO));
    ls__rsi_act(r);
}

ls_seed_client_options_t ls__rsi_client_options(const struct node_rsi *r, bool resync,
                                                uint64_t from)
{
    const ls_node_t *n = r->node;
    return (ls_seed_client_options_t){.source = r->follows,
                                      .features =
                                          (n->cfg->plaintext ? LS_FEAT_CKSUM : 0) |
                                          (r->src->compression_level > 0 ? LS_FEAT_ZSTD : 0),
                                      .zstd_level = (int8_t) r->src->compression_level,
                                      .window = (uint32_t) n->cfg->receive_window,
                                      .resync = resync,
                                      .chain_from = from};
}

static void on_ready(ls_conn_t *c)
{
    struct node_rsi *r = ls_conn_data(c);
    if (!r) return;
    LS_LOGI("resync", "%s: connected to %s over network %s (%s)", r->db->cfg->name, r->follows,
            r->src->nets[r->net].name, ls_conn_peer(c));
    static ls_frame_t f; /* large; the loop is single-threaded */
    uint8_t dbid[LS_DBID_LEN] = {0};
    char path[LS_CFG_PATH_MAX + 8], err[256];
    ls_store_meta_t m;
    snprintf(path, sizeof(path), "%s/store", r->db->cfg->path);
    if (ls_store_peek_meta(path, &m, err, sizeof(err)) == 0) memcpy(dbid, m.dbid, LS_DBID_LEN);
    ls_seed_client_hello(r->cs, r->node->cfg->node_name, r->db->cfg->name, dbid, &f);
    snprintf(r->message, sizeof(r->message), "asking %s for its chain", r->follows);
    if (ls__node_send(r->conn, &f) != 0) ls_conn_close(r->conn);
}

static void on_frame(ls_conn_t *c, const ls_conn_frame_t *fr)
{
    struct node_rsi *r = ls_conn_data(c);
    if (!r) return;
    static ls_frame_t f;
    char err[256];
    if (ls_frame_decode(fr->bytes, LS_FRAME_HEADER_SIZE + fr->body_len, &f, err, sizeof(err)))
        ls_seed_client_fail(r->cs, LS_EPROTO, "bad frame from %s: %s", r->follows, err);
    else
        ls_seed_client_frame(r->cs, &f, ls_mono_ns());
    ls__rsi_act(r);
}

static void on_close(ls_conn_t *c, int status, const char *msg)
{
    struct node_rsi *r = ls_conn_data(c);
    if (!r) return;
    ls_conn_stats(c, &r->cstats);
    r->conn = NULL;
    if (next_net(r, msg)) return;
    ls_seed_client_closed(r->cs, status, msg);
    ls__rsi_act(r);
}
