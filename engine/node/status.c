/* The control socket's commands, and the node's side of the status model (engine/status):
 * every figure is taken here, on the loop, from the source view, the copies' own counters and the
 * positions the peers acknowledged, into one ls_status_copy_t per copy; engine/status renders
 * them as the JSON document (docs/STATUS.md) and for Prometheus (the daemon's metrics.c). Nothing
 * is estimated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/node_int.h"
#include "node/resync_switchover_int.h"
#include "layout/layout.h"

static uint64_t age_ns(uint64_t then_ns, uint64_t now_ns)
{
    return then_ns && now_ns > then_ns ? now_ns - then_ns : 0;
}

#define COPY_STR(dst, src) snprintf((dst), sizeof(dst), "%s", (src))

/* An active copy: its machine's figures (engine/ship), then the connection's. */
static void active_copy(ls_status_copy_t *c, shipper_t *s, uint64_t now)
{
    link_t *l = s->link;
    COPY_STR(c->database, s->db->cfg->name);
    c->role = LS_STATUS_ACTIVE;
    COPY_STR(c->source, l->node->cfg->node_name);
    COPY_STR(c->target, l->cfg->name);
    ls_ship_status(s->m, now, c);
    COPY_STR(c->network, l->ready ? l->cfg->nets[l->net].name : "");
    c->tls = l->conn && ls_conn_is_tls(l->conn);
    ls_conn_stats_t cs = {0};
    if (l->conn) ls_conn_stats(l->conn, &cs);
    c->rtt_ns = cs.rtt_smoothed_ns;
    c->rtt_last_ns = cs.rtt_last_ns;
    /* the connection's (every database on it): bytes on the socket vs frame bytes before zstd */
    c->wire_bytes_sent = cs.wire_bytes_sent;
    c->frame_bytes_sent = cs.bytes_sent;
    c->zstd_loop_calls = cs.zstd_loop_calls;
    c->connections = l->connects;
    c->removed_generations = s->db->removed;
    COPY_STR(c->last_error, l->last_error);
    ls__node_link_status(s, c);
}

/* Close time of a generation held by a passive copy (in logs/ or inspect/), 0 if not held. */
static uint64_t held_close_ns(const pcopy_t *p, uint64_t gen)
{
    static const char *dirs[] = {"logs", "inspect"};
    for (size_t d = 0; d < LS_ARRAY_SIZE(dirs); d++) {
        char dir[LS_CFG_PATH_MAX + 16], path[LS_CFG_PATH_MAX + 300];
        snprintf(dir, sizeof(dir), "%s/%s", p->cfg->path, dirs[d]);
        ls_layout_list_t list;
        if (ls_layout_list(dir, NULL, &list, NULL, 0) != 0) continue;
        ssize_t i = ls_layout_find(&list, gen);
        int rc = i < 0
                     ? LS_ENOENT
                     : ls_layout_path(path, sizeof(path), dir, NULL, list.gens[i].epoch, gen, NULL);
        ls_layout_list_free(&list);
        if (rc) continue;
        ls_layout_ends_t x;
        return ls_layout_read_ends(path, &x, NULL, 0) == 0 && x.closed ? x.t.close_ns : 0;
    }
    return 0;
}

static void passive_copy(ls_status_copy_t *c, pcopy_t *p, uint64_t now)
{
    COPY_STR(c->database, p->cfg->name);
    c->role = LS_STATUS_PASSIVE;
    COPY_STR(c->source, p->source);
    COPY_STR(c->target, p->node->cfg->node_name);
    ls_passive_status(p->m, now, c);
    /* The replay lag needs the close time of the oldest generation not replayed, on the
     * source's clock, estimated as ours plus the offset its heartbeats measured. */
    uint64_t oldest = c->replay_queue ? held_close_ns(p, c->last_replayed.gen + 1) : 0;
    c->replay_lag_ns = oldest ? age_ns(oldest, (uint64_t) ((int64_t) now + c->clock_offset_ns)) : 0;
    COPY_STR(c->network, p->peer ? ls_conn_peer(p->peer->conn) : "");
    c->tls = p->peer && ls_conn_is_tls(p->peer->conn);
    ls_conn_stats_t cs = {0};
    if (p->peer) ls_conn_stats(p->peer->conn, &cs);
    c->rtt_ns = cs.rtt_smoothed_ns;
    c->wire_bytes_received = cs.wire_bytes_received;
    c->zstd_loop_calls = cs.zstd_loop_calls;
    ls__node_seed_client_status(p, &c->seed); /* once a seed was asked */
}

static void database(ls_status_db_t *o, const node_db_t *d)
{
    const ls_role_state_t *r = &d->role;
    COPY_STR(o->database, d->cfg->name);
    o->role = ls_role_kind_name(r->role);
    o->epoch = r->epoch;
    snprintf(o->follows, sizeof(o->follows), "%.*s", (int) sizeof(o->follows) - 1, r->follows);
    o->since_ns = r->since_ns;
    COPY_STR(o->reason, r->reason);
    o->activation = ls__node_activation_state(d);
    o->switchover = ls__node_switchover_state(d);
    o->loss_generations = r->loss.generations;
    o->loss_first_generation = r->loss.first_generation;
    o->loss_last_generation = r->loss.last_generation;
    o->loss_bytes = r->loss.bytes;
    o->loss_from_ns = r->loss.from_ns;
    o->loss_to_ns = r->loss.to_ns;
    o->open_generation = r->loss.open_generation;
    if (d->active && !d->active->retired && r->role == LS_ROLE_ACTIVE)
        ls__node_sync_status(d->active, o);
}

int ls_node_status_fill(ls_node_t *n, ls_status_node_t *out)
{
    uint64_t now = ls_now_ns();
    memset(out, 0, sizeof(*out));
    COPY_STR(out->node, n->cfg->node_name);
    out->plaintext = n->cfg->plaintext;
    out->time_ns = now;
    out->start_time_ns = n->start_ns;
    size_t count = (size_t) n->ncopies;
    for (int i = 0; i < n->nactives; i++)
        count += (size_t) n->actives[i].nshippers;
    out->copies = calloc(count ? count : 1, sizeof(*out->copies));
    out->databases = calloc((size_t) n->ndbs + 1, sizeof(*out->databases));
    if (!out->copies || !out->databases) return LS_ENOMEM;
    for (int i = 0; i < n->ndbs; i++)
        database(&out->databases[out->ndatabases++], &n->dbs[i]);
    for (int i = 0; i < n->nactives; i++)
        for (int j = 0; j < n->actives[i].nshippers && !n->actives[i].retired; j++)
            active_copy(&out->copies[out->ncopies++], &n->actives[i].shippers[j], now);
    for (int i = 0; i < n->ncopies; i++)
        if (!n->copies[i].retired) passive_copy(&out->copies[out->ncopies++], &n->copies[i], now);
    return 0;
}

static int status_cmd(ls_node_t *n, cJSON *resp)
{
    ls_status_node_t st;
    int rc = ls_node_status_fill(n, &st);
    if (rc == 0) rc = ls_status_to_json(&st, resp);
    free(st.copies);
    free(st.databases);
    return rc;
}

int ls_node_control(void *ctx, const cJSON *req, cJSON *resp, char *err, size_t errlen)
{
    ls_node_t *n = ctx;
    /* Case-sensitive, as the server checked it is a string: cJSON_GetObjectItem would take the
     * first member of any case, e.g. the number of {"CMD": 1, "cmd": "status"} (fuzzed). */
    const char *cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd")->valuestring;
    if (!strcmp(cmd, "status")) return status_cmd(n, resp);
    if (!strcmp(cmd, "suspend") || !strcmp(cmd, "resume"))
        return ls__node_cmd_suspend(n, req, !strcmp(cmd, "suspend"), resp, err, errlen);
    if (!strcmp(cmd, "network")) return ls__node_link_command(n, req, resp, err, errlen);
    if (!strcmp(cmd, "resync")) return ls__node_resync_cmd(n, req, resp, err, errlen);
    if (!strcmp(cmd, "resync_status")) return ls__node_resync_status_cmd(n, req, resp, err, errlen);
    if (!strcmp(cmd, "activate") || !strcmp(cmd, "activate_status"))
        return ls__node_activate_cmd(n, req, !strcmp(cmd, "activate_status"), resp, err, errlen);
    if (!strcmp(cmd, "switchover") || !strcmp(cmd, "switchover_status"))
        return ls__node_switchover_cmd(n, req, !strcmp(cmd, "switchover_status"), resp, err,
                                       errlen);
    if (!strcmp(cmd, "seed") || !strcmp(cmd, "seed_status"))
        return ls__node_seed_client_cmd(n, req, !strcmp(cmd, "seed_status"), resp, err, errlen);
    snprintf(err, errlen,
             "unknown command '%s' (this daemon answers: status, suspend, resume, network, seed, "
             "seed_status, activate, activate_status, resync, resync_status, switchover, "
             "switchover_status)",
             cmd);
    return LS_EINVAL;
}
