/* The control socket's commands and the status document (docs/STATUS.md has the schema). Every
 * figure is computed here, on the loop, from the source view, the copies' own counters and the
 * positions the peers acknowledged: nothing is estimated. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"

static double age_s(uint64_t then_ns, uint64_t now_ns)
{
    return then_ns && now_ns > then_ns ? (double) (now_ns - then_ns) / 1e9 : 0.0;
}

static void add_pos(cJSON *o, const char *name, uint64_t gen, uint64_t when_ns)
{
    char key[64];
    cJSON_AddNumberToObject(o, name, (double) gen);
    snprintf(key, sizeof(key), "%s_time_ns", name);
    cJSON_AddNumberToObject(o, key, (double) when_ns);
}

/* The fields every copy has, on both sides (docs/STATUS.md). */
static cJSON *copy_object(cJSON *arr, const char *db, const char *role, const char *source,
                          const char *target, copy_state_t st, const char *reason,
                          const ld_opstate_t *op)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "database", db);
    cJSON_AddStringToObject(o, "role", role);
    cJSON_AddStringToObject(o, "source", source);
    cJSON_AddStringToObject(o, "target", target);
    cJSON_AddStringToObject(o, "state", ld_state_name(st));
    cJSON_AddStringToObject(o, "reason", reason);
    cJSON_AddStringToObject(o, "comment", op->comment);
    cJSON_AddNumberToObject(o, "suspended_since_ns", (double) op->since_ns);
    cJSON_AddBoolToObject(o, "replay_suspended", op->replay_suspended);
    cJSON_AddItemToArray(arr, o);
    return o;
}

static void active_copy(cJSON *arr, shipper_t *s, uint64_t now)
{
    link_t *l = s->link;
    const ld_opstate_t *op = s->op.suspended ? &s->op : &s->peer_op;
    cJSON *o = copy_object(arr, s->db->cfg->name, "active", l->node->cfg->node_name, l->cfg->name,
                           s->state, s->reason, op);
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
    add_pos(o, "last_generated", gen, close_ns);
    add_pos(o, "last_copied", s->durable.gen, s->durable.when_ns);
    add_pos(o, "last_inspected", s->inspected.gen, s->inspected.when_ns);
    add_pos(o, "last_replayed", s->replayed.gen, s->replayed.when_ns);
    add_pos(o, "last_replayed_synced", s->synced.gen, s->synced.when_ns);
    cJSON_AddNumberToObject(o, "copy_queue", (double) cq.count);
    cJSON_AddNumberToObject(o, "copy_queue_bytes", (double) cq.bytes);
    /* Durable on the target, not replayed: what follows replayed, less the copy queue. */
    cJSON_AddNumberToObject(o, "replay_queue", (double) (rq.count - cq.count));
    cJSON_AddNumberToObject(o, "replay_queue_bytes", (double) (rq.bytes - cq.bytes));
    cJSON_AddNumberToObject(o, "copy_lag_s", cq.count ? age_s(cq.oldest_close_ns, now) : 0);
    cJSON_AddNumberToObject(o, "replay_lag_s", rq.count ? age_s(rq.oldest_close_ns, now) : 0);
    cJSON_AddNumberToObject(o, "throughput_bps", ld_rate_per_s(&s->rate));
    cJSON_AddNumberToObject(o, "sent_generations", (double) s->sent_gens);
    cJSON_AddNumberToObject(o, "sent_bytes", (double) s->sent_bytes);
    cJSON_AddNumberToObject(o, "ask_agains", (double) s->ask_agains);
    cJSON_AddNumberToObject(o, "inspection_failures", (double) s->inspection_failures);
    ls_conn_stats_t cs = {0};
    if (l->conn) ls_conn_stats(l->conn, &cs);
    cJSON_AddNumberToObject(o, "rtt_ms", (double) cs.rtt_smoothed_ns / 1e6);
    cJSON_AddNumberToObject(o, "rtt_last_ms", (double) cs.rtt_last_ns / 1e6);
    /* the connection's (every database on it): bytes on the socket vs frame bytes before zstd */
    cJSON_AddNumberToObject(o, "wire_bytes_sent", (double) cs.wire_bytes_sent);
    cJSON_AddNumberToObject(o, "frame_bytes_sent", (double) cs.bytes_sent);
    cJSON_AddNumberToObject(o, "zstd_loop_calls", (double) cs.zstd_loop_calls);
    cJSON_AddNumberToObject(o, "removed_generations", (double) s->db->removed);
    cJSON_AddStringToObject(o, "last_error", l->last_error);
    ld_link_status(s, o);
}

/* Close time of a generation held by a passive copy (in logs/ or inspect/), 0 if not held. */
static uint64_t held_close_ns(const pcopy_t *p, uint64_t gen)
{
    static const char *dirs[] = {"logs", "inspect"};
    for (size_t d = 0; d < LS_ARRAY_SIZE(dirs); d++) {
        char path[LS_CFG_PATH_MAX + 300];
        snprintf(path, sizeof(path), "%s/%s", p->cfg->path, dirs[d]);
        DIR *dir = opendir(path);
        struct dirent *e;
        uint32_t epoch;
        uint64_t g;
        while (dir && (e = readdir(dir)))
            if (ls_gen_name_parse(e->d_name, LS_GEN_PREFIX_DEFAULT, &epoch, &g) == 0 && g == gen)
                break;
        if (!dir) continue;
        if (!e) {
            closedir(dir);
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s/%s", p->cfg->path, dirs[d], e->d_name);
        closedir(dir);
        uint8_t hdr[LS_GEN_HEADER_SIZE], trl[LS_GEN_TRAILER_SIZE];
        ls_gen_header_t h;
        ls_gen_trailer_t t;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return 0;
        off_t size = lseek(fd, 0, SEEK_END);
        bool ok = size >= (off_t) sizeof(trl) &&
                  ls_pread_full(fd, hdr, sizeof(hdr), 0) == (ssize_t) sizeof(hdr) &&
                  ls_pread_full(fd, trl, sizeof(trl), size - (off_t) sizeof(trl)) ==
                      (ssize_t) sizeof(trl) &&
                  ls_gen_header_decode(hdr, sizeof(hdr), &h) == 0 &&
                  ls_gen_trailer_decode(trl, sizeof(trl),
                                        ls_gen_seed(h.dbid, h.epoch, h.generation), &t) == 0;
        close(fd);
        return ok ? t.close_ns : 0;
    }
    return 0;
}

static void passive_copy(cJSON *arr, pcopy_t *p, uint64_t now)
{
    const ld_opstate_t *op = p->op.suspended || p->op.replay_suspended ? &p->op : &p->src.op;
    cJSON *o = copy_object(arr, p->cfg->name, "passive", p->cfg->source, p->node->cfg->node_name,
                           p->state, p->reason, op);
    cJSON_AddStringToObject(o, "network", p->peer ? ls_conn_peer(p->peer->conn) : "");
    cJSON_AddBoolToObject(o, "tls", p->peer && ls_conn_is_tls(p->peer->conn));
    ls_copy_stats_t st = {0};
    if (p->copy) ls_copy_stats(p->copy, &st);
    /* The source's clock, estimated: ours plus the offset its heartbeats measured. */
    uint64_t src_now = (uint64_t) ((int64_t) now + p->src.clock_offset_ns);
    uint64_t copyq =
        p->src.last_generated > st.last_durable ? p->src.last_generated - st.last_durable : 0;
    uint64_t replq = st.last_durable > st.last_replayed ? st.last_durable - st.last_replayed : 0;
    add_pos(o, "last_generated", p->src.last_generated, p->src.last_generated_ns);
    add_pos(o, "last_copied", st.last_durable, p->durable.when_ns);
    add_pos(o, "last_inspected", st.last_inspected, p->inspected.when_ns);
    add_pos(o, "last_replayed", st.last_replayed, p->replayed.when_ns);
    add_pos(o, "last_replayed_synced", st.last_synced, 0);
    cJSON_AddNumberToObject(o, "last_replayed_lsn", (double) st.last_replayed_lsn);
    cJSON_AddNumberToObject(o, "copy_queue", (double) copyq);
    cJSON_AddNumberToObject(o, "copy_queue_bytes", copyq ? (double) p->src.queue_bytes : 0);
    cJSON_AddNumberToObject(o, "replay_queue", (double) replq);
    cJSON_AddNumberToObject(o, "replay_queue_bytes",
                            (double) (st.inspect_queue_bytes + st.replay_queue_bytes));
    cJSON_AddNumberToObject(o, "copy_lag_s", copyq ? age_s(p->src.queue_oldest_ns, src_now) : 0);
    uint64_t oldest = replq ? held_close_ns(p, st.last_replayed + 1) : 0;
    cJSON_AddNumberToObject(o, "replay_lag_s", oldest ? age_s(oldest, src_now) : 0);
    cJSON_AddNumberToObject(o, "throughput_bps", ld_rate_per_s(&p->rate));
    cJSON_AddNumberToObject(o, "inspection_failures", (double) st.inspect_failures);
    cJSON_AddNumberToObject(o, "ask_agains", (double) st.ask_agains);
    cJSON_AddNumberToObject(o, "applied_generations", (double) st.applied_generations);
    cJSON_AddNumberToObject(o, "replay_transactions", (double) st.replay_txns);
    ls_conn_stats_t cs = {0};
    if (p->peer) ls_conn_stats(p->peer->conn, &cs);
    cJSON_AddNumberToObject(o, "rtt_ms", (double) cs.rtt_smoothed_ns / 1e6);
    cJSON_AddNumberToObject(o, "wire_bytes_received", (double) cs.wire_bytes_received);
    cJSON_AddNumberToObject(o, "zstd_loop_calls", (double) cs.zstd_loop_calls);
    cJSON_AddNumberToObject(o, "clock_offset_ms", (double) p->src.clock_offset_ns / 1e6);
    ld_seed_client_status(p, o); /* "seed_percent" and "seed" once a seed was asked */
}

void ld_status_build(node_t *n, cJSON *resp)
{
    uint64_t now = ls_now_ns();
    cJSON_AddStringToObject(resp, "node", n->cfg->node_name);
    cJSON_AddBoolToObject(resp, "plaintext", n->cfg->plaintext);
    cJSON_AddNumberToObject(resp, "time_ns", (double) now);
    cJSON *arr = cJSON_AddArrayToObject(resp, "copies");
    for (int i = 0; i < n->nactives; i++)
        for (int j = 0; j < n->actives[i].nshippers; j++)
            active_copy(arr, &n->actives[i].shippers[j], now);
    for (int i = 0; i < n->ncopies; i++)
        passive_copy(arr, &n->copies[i], now);
}

int ld_control_handler(void *ctx, const cJSON *req, cJSON *resp, char *err, size_t errlen)
{
    node_t *n = ctx;
    const char *cmd = cJSON_GetObjectItem(req, "cmd")->valuestring;
    if (!strcmp(cmd, "status")) {
        ld_status_build(n, resp);
        return 0;
    }
    if (!strcmp(cmd, "suspend") || !strcmp(cmd, "resume"))
        return ld_cmd_suspend(n, req, !strcmp(cmd, "suspend"), resp, err, errlen);
    if (!strcmp(cmd, "network")) return ld_link_command(n, req, resp, err, errlen);
    if (!strcmp(cmd, "seed") || !strcmp(cmd, "seed_status"))
        return ld_seed_client_cmd(n, req, !strcmp(cmd, "seed_status"), resp, err, errlen);
    snprintf(err, errlen,
             "unknown command '%s' (this daemon answers: status, suspend, resume, network, seed, "
             "seed_status)",
             cmd);
    return LS_EINVAL;
}
