/* The control socket's commands: the status document (docs/STATUS.md has the schema). */
#include <stdio.h>
#include <string.h>

#include "daemon.h"

static double secs_since(uint64_t ns, uint64_t now)
{
    return ns && now > ns ? (double) (now - ns) / 1e9 : 0.0;
}

static void add_pos(cJSON *o, const char *name, const ld_pos_t *p)
{
    char key[64];
    cJSON_AddNumberToObject(o, name, (double) p->gen);
    snprintf(key, sizeof(key), "%s_time_ns", name);
    cJSON_AddNumberToObject(o, key, (double) p->when_ns);
}

static void active_copy(cJSON *arr, shipper_t *s)
{
    cJSON *o = cJSON_CreateObject();
    uint64_t now = ls_now_ns();
    link_t *l = s->link;
    cJSON_AddStringToObject(o, "database", s->db->cfg->name);
    cJSON_AddStringToObject(o, "role", "active");
    cJSON_AddStringToObject(o, "source", l->node->cfg->node_name);
    cJSON_AddStringToObject(o, "target", l->cfg->name);
    cJSON_AddStringToObject(o, "state", ld_state_name(s->state));
    cJSON_AddStringToObject(o, "reason", s->reason);
    cJSON_AddStringToObject(o, "comment", "");
    cJSON_AddStringToObject(o, "network", l->ready ? l->cfg->nets[l->net].name : "");
    cJSON_AddBoolToObject(o, "tls", l->conn && ls_conn_is_tls(l->conn));
    uint64_t gen = 0, close_ns = 0;
    ls_source_queue_t cq = {0}, rq = {0};
    char err[LS_SOURCE_ERRLEN];
    if (s->db->src) {
        ls_source_last_closed(s->db->src, &gen, &close_ns, err, sizeof(err));
        ls_source_queue(s->db->src, s->durable.gen, &cq, err, sizeof(err));
        ls_source_queue(s->db->src, s->replayed.gen, &rq, err, sizeof(err));
    }
    cJSON_AddNumberToObject(o, "last_generated", (double) gen);
    cJSON_AddNumberToObject(o, "last_generated_time_ns", (double) close_ns);
    add_pos(o, "last_copied", &s->durable);
    add_pos(o, "last_inspected", &s->inspected);
    add_pos(o, "last_replayed", &s->replayed);
    add_pos(o, "last_replayed_synced", &s->synced);
    cJSON_AddNumberToObject(o, "copy_queue", (double) cq.count);
    cJSON_AddNumberToObject(o, "copy_queue_bytes", (double) cq.bytes);
    /* Durable on the target but not replayed: generations after replayed, less the copy queue. */
    cJSON_AddNumberToObject(o, "replay_queue", (double) (rq.count - cq.count));
    cJSON_AddNumberToObject(o, "replay_queue_bytes", (double) (rq.bytes - cq.bytes));
    cJSON_AddNumberToObject(o, "copy_lag_s", cq.count ? secs_since(cq.oldest_close_ns, now) : 0);
    cJSON_AddNumberToObject(o, "replay_lag_s", rq.count ? secs_since(rq.oldest_close_ns, now) : 0);
    cJSON_AddNumberToObject(o, "sent_generations", (double) s->sent_gens);
    cJSON_AddNumberToObject(o, "sent_bytes", (double) s->sent_bytes);
    cJSON_AddNumberToObject(o, "ask_agains", (double) s->ask_agains);
    if (l->conn) {
        ls_conn_stats_t cs;
        ls_conn_stats(l->conn, &cs);
        cJSON_AddNumberToObject(o, "rtt_ms", (double) cs.rtt_smoothed_ns / 1e6);
    }
    cJSON_AddStringToObject(o, "last_error", l->last_error);
    cJSON_AddItemToArray(arr, o);
}

static void passive_copy(cJSON *arr, pcopy_t *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "database", p->cfg->name);
    cJSON_AddStringToObject(o, "role", "passive");
    cJSON_AddStringToObject(o, "source", p->cfg->source);
    cJSON_AddStringToObject(o, "target", p->node->cfg->node_name);
    cJSON_AddStringToObject(o, "state", ld_state_name(p->state));
    cJSON_AddStringToObject(o, "reason", p->reason);
    cJSON_AddStringToObject(o, "comment", "");
    cJSON_AddBoolToObject(o, "tls", p->peer && ls_conn_is_tls(p->peer->conn));
    if (p->copy) {
        ls_copy_stats_t st;
        ls_copy_stats(p->copy, &st);
        cJSON_AddNumberToObject(o, "last_copied", (double) st.last_durable);
        cJSON_AddNumberToObject(o, "last_inspected", (double) st.last_inspected);
        cJSON_AddNumberToObject(o, "last_replayed", (double) st.last_replayed);
        cJSON_AddNumberToObject(o, "last_replayed_lsn", (double) st.last_replayed_lsn);
        cJSON_AddNumberToObject(o, "last_replayed_synced", (double) st.last_synced);
        cJSON_AddNumberToObject(o, "replay_queue", (double) (st.inspect_queue + st.replay_queue));
        cJSON_AddNumberToObject(o, "replay_queue_bytes",
                                (double) (st.inspect_queue_bytes + st.replay_queue_bytes));
        cJSON_AddNumberToObject(o, "inspection_failures", (double) st.inspect_failures);
        cJSON_AddNumberToObject(o, "ask_agains", (double) st.ask_agains);
        cJSON_AddNumberToObject(o, "applied_generations", (double) st.applied_generations);
        cJSON_AddNumberToObject(o, "replay_transactions", (double) st.replay_txns);
        cJSON_AddBoolToObject(o, "replay_paused", st.replay_paused);
    }
    cJSON_AddItemToArray(arr, o);
}

int ld_control_handler(void *ctx, const cJSON *req, cJSON *resp, char *err, size_t errlen)
{
    node_t *n = ctx;
    const char *cmd = cJSON_GetObjectItem(req, "cmd")->valuestring;
    if (strcmp(cmd, "status") != 0) {
        snprintf(err, errlen, "unknown command '%s' (this daemon answers: status)", cmd);
        return LS_EINVAL;
    }
    cJSON_AddStringToObject(resp, "node", n->cfg->node_name);
    cJSON_AddBoolToObject(resp, "plaintext", n->cfg->plaintext);
    cJSON *arr = cJSON_AddArrayToObject(resp, "copies");
    for (int i = 0; i < n->nactives; i++)
        for (int j = 0; j < n->actives[i].nshippers; j++)
            active_copy(arr, &n->actives[i].shippers[j]);
    for (int i = 0; i < n->ncopies; i++)
        passive_copy(arr, &n->copies[i]);
    return 0;
}
