/* Suspend and resume (the operator's commands) and COPY_STATE, on both sides of a copy.
 *
 * Active side: a suspended shipper stops its reader and ignores RESUME; it tells the target in
 * COPY_STATE (with the comment), which shows the copy Suspended too. On resume it says so in
 * COPY_STATE and the target answers with a fresh RESUME, from which shipping continues.
 * Passive side: a full suspension pauses replay and tells the source to stop shipping; a
 * replay-only suspension pauses replay while receiving goes on. Either side keeps its operator's
 * decision in a state file (opstate.c) so that it survives restarts.
 * COPY_STATE from the source also carries the figures the passive cannot see for itself
 * (newest generation, copy queue), which the passive shows as its own. */
#include <stdio.h>
#include <string.h>

#include "daemon.h"

static bool shipper_suspended(const shipper_t *s)
{
    return s->op.suspended || s->peer_op.suspended;
}

void ld_shipper_load_op(shipper_t *s)
{
    snprintf(s->op_path, sizeof(s->op_path), "%s/copy-%s.state", s->db->cfg->path,
             s->link->cfg->name);
    ld_opstate_load(s->op_path, &s->op);
    if (s->op.suspended)
        ld_shipper_set_state(s, CS_SUSPENDED, "suspended by the operator: %s", s->op.comment);
}

void ld_shipper_send_state(shipper_t *s, bool force)
{
    link_t *l = s->link;
    if (!l->conn || !l->ready || !s->accepted || !s->db->src) return;
    ls_frame_t f = {.type = LS_FRAME_COPY_STATE};
    ls_proto_copy_state_t *cs = &f.copy_state;
    char err[LS_SOURCE_ERRLEN];
    ls_source_queue_t q = {0};
    ls_source_last_closed(s->db->src, &cs->last_generated, &cs->last_generated_ns, err,
                          sizeof(err));
    ls_source_queue(s->db->src, s->durable.gen, &q, err, sizeof(err));
    if (!force && cs->last_generated == s->cs_sent_gen && s->durable.gen == s->cs_sent_durable)
        return;
    memcpy(cs->dbid, s->db->dbid, LS_DBID_LEN);
    cs->flags = s->op.suspended ? LS_COPY_SUSPENDED : 0;
    cs->since_ns = s->op.since_ns;
    cs->queue_count = LS_MIN(q.count, cs->last_generated);
    cs->queue_bytes = q.bytes;
    cs->queue_oldest_ns = q.oldest_close_ns;
    cs->comment = ls_proto_str(s->op.comment);
    if (ld_send(l->conn, &f) == 0) {
        s->cs_sent_gen = cs->last_generated;
        s->cs_sent_durable = s->durable.gen;
    }
}

static void copy_op(ld_opstate_t *dst, const ls_proto_copy_state_t *cs)
{
    dst->suspended = cs->flags & LS_COPY_SUSPENDED;
    dst->replay_suspended = cs->flags & LS_COPY_REPLAY_SUSPENDED;
    dst->since_ns = cs->since_ns;
    snprintf(dst->comment, sizeof(dst->comment), "%.*s", (int) cs->comment.len, cs->comment.ptr);
}

void ld_shipper_on_copy_state(shipper_t *s, const ls_proto_copy_state_t *cs)
{
    bool was = s->peer_op.suspended;
    copy_op(&s->peer_op, cs);
    if (s->peer_op.suspended && !was) {
        ld_shipper_pause(s);
        if (!s->op.suspended)
            ld_shipper_set_state(s, CS_SUSPENDED, "suspended on %s: %s", s->link->cfg->name,
                                 s->peer_op.comment);
    } else if (!s->peer_op.suspended && was && !s->op.suspended) {
        ld_shipper_set_state(s, CS_INITIALIZING, "resumed on %s, waiting for its position",
                             s->link->cfg->name);
    }
}

void ld_pcopy_load_op(pcopy_t *p)
{
    snprintf(p->op_path, sizeof(p->op_path), "%s.state", p->cfg->path);
    ld_opstate_load(p->op_path, &p->op);
    if (p->copy && (p->op.suspended || p->op.replay_suspended)) ls_copy_pause_replay(p->copy, true);
    if (p->op.suspended)
        ld_pcopy_set_state(p, CS_SUSPENDED, "suspended by the operator: %s", p->op.comment);
}

void ld_pcopy_send_state(pcopy_t *p)
{
    if (!p->peer) return;
    ls_frame_t f = {.type = LS_FRAME_COPY_STATE};
    ls_proto_copy_state_t *cs = &f.copy_state;
    memcpy(cs->dbid, p->peer->dbids[p->idx], LS_DBID_LEN);
    cs->flags = (p->op.suspended ? LS_COPY_SUSPENDED : 0) |
                (p->op.replay_suspended ? LS_COPY_REPLAY_SUSPENDED : 0);
    cs->since_ns = p->op.since_ns;
    cs->comment = ls_proto_str(p->op.comment);
    ld_send(p->peer->conn, &f);
}

void ld_pcopy_on_copy_state(pcopy_t *p, const ls_proto_copy_state_t *cs)
{
    bool was = p->src_suspended_seen;
    copy_op(&p->src.op, cs);
    p->src.last_generated = cs->last_generated;
    p->src.last_generated_ns = cs->last_generated_ns;
    p->src.queue_count = cs->queue_count;
    p->src.queue_bytes = cs->queue_bytes;
    p->src.queue_oldest_ns = cs->queue_oldest_ns;
    if (p->peer) {
        ls_conn_stats_t st;
        ls_conn_stats(p->peer->conn, &st);
        p->src.clock_offset_ns = st.clock_offset_ns;
    }
    p->src_suspended_seen = p->src.op.suspended;
    if (p->op.suspended || p->state == CS_FAILED || p->state == CS_DIVERGED) return;
    if (p->src.op.suspended && !was) {
        ld_pcopy_set_state(p, CS_SUSPENDED, "suspended on %s: %s", p->cfg->source,
                           p->src.op.comment);
    } else if (!p->src.op.suspended && was) {
        ld_pcopy_set_state(p, ld_pcopy_running_state(p), "resumed on %s", p->cfg->source);
        ld_pcopy_send_position(p); /* the source waits for our position to ship again */
    }
}

/* ---- the commands ------------------------------------------------------------------------- */
static void set_op(ld_opstate_t *op, bool suspend, bool replay_only, const char *comment)
{
    if (suspend) {
        if (replay_only)
            op->replay_suspended = true;
        else
            op->suspended = true;
        snprintf(op->comment, sizeof(op->comment), "%s", comment ? comment : "");
        op->since_ns = ls_now_ns();
    } else if (replay_only) {
        op->replay_suspended = false;
    } else {
        memset(op, 0, sizeof(*op));
    }
    if (!op->suspended && !op->replay_suspended) memset(op, 0, sizeof(*op));
}

static int active_cmd(shipper_t *s, bool suspend, bool replay_only, const char *comment, char *msg,
                      size_t msglen)
{
    if (replay_only) {
        snprintf(msg, msglen, "--replay-only applies to a passive copy; %s ships to %s",
                 s->db->cfg->name, s->link->cfg->name);
        return LS_EINVAL;
    }
    set_op(&s->op, suspend, false, comment);
    int rc = ld_opstate_save(s->op_path, &s->op);
    if (rc) {
        snprintf(msg, msglen, "cannot save the copy's state in %.300s: %s", s->op_path,
                 ls_strerror(rc));
        return rc;
    }
    if (suspend) {
        ld_shipper_pause(s);
        ld_shipper_set_state(s, CS_SUSPENDED, "suspended by the operator: %s", s->op.comment);
    } else if (!shipper_suspended(s)) {
        ld_shipper_set_state(s, s->link->ready ? CS_INITIALIZING : CS_DISCONNECTED,
                             "resumed by the operator");
    }
    ld_shipper_send_state(s, true);
    snprintf(msg, msglen, "%s -> %s %s", s->db->cfg->name, s->link->cfg->name,
             suspend ? "suspended" : "resumed");
    return 0;
}

static int passive_cmd(pcopy_t *p, bool suspend, bool replay_only, const char *comment, char *msg,
                       size_t msglen)
{
    bool was_suspended = p->op.suspended, cleared = false;
    char why[400] = "";
    set_op(&p->op, suspend, replay_only, comment);
    int rc = ld_opstate_save(p->op_path, &p->op);
    if (rc) {
        snprintf(msg, msglen, "cannot save the copy's state in %.300s: %s", p->op_path,
                 ls_strerror(rc));
        return rc;
    }
    if (p->copy) ls_copy_pause_replay(p->copy, p->op.suspended || p->op.replay_suspended);
    if (p->op.suspended) {
        ld_pcopy_set_state(p, CS_SUSPENDED, "suspended by the operator: %s", p->op.comment);
    } else if (was_suspended && p->state == CS_SUSPENDED && !p->src.op.suspended) {
        ld_pcopy_set_state(p, ld_pcopy_running_state(p), "resumed by the operator");
    } else if (!suspend && !replay_only && p->state == CS_FAILED) {
        /* `logship resume` is also how an operator clears Failed (Exchange's
         * Resume-StorageGroupCopy): the copy asks its source again from where it stands. */
        cleared = ld_pcopy_clear_failed(p, why, sizeof(why));
    }
    ld_pcopy_send_state(p);
    if ((was_suspended && !p->op.suspended) || cleared) ld_pcopy_send_position(p);
    snprintf(msg, msglen, "%s <- %s %s%s%s%.280s", p->cfg->name, p->cfg->source,
             replay_only ? "replay " : "", suspend ? "suspended" : "resumed",
             cleared  ? " (Failed cleared)"
             : why[0] ? "; still Failed: "
                      : "",
             why);
    return 0;
}

int ld_cmd_suspend(node_t *n, const cJSON *req, bool suspend, cJSON *resp, char *err, size_t errlen)
{
    const cJSON *db = cJSON_GetObjectItem(req, "database"),
                *peer = cJSON_GetObjectItem(req, "peer");
    const cJSON *comment = cJSON_GetObjectItem(req, "comment");
    bool replay_only = cJSON_IsTrue(cJSON_GetObjectItem(req, "replay_only"));
    if (!cJSON_IsString(db) || !cJSON_IsString(peer)) {
        snprintf(err, errlen, "%s needs string fields \"database\" and \"peer\"",
                 suspend ? "suspend" : "resume");
        return LS_EINVAL;
    }
    const char *c = cJSON_IsString(comment) ? comment->valuestring : "";
    if (strlen(c) > LS_PROTO_REASON_MAX) {
        snprintf(err, errlen, "comment too long (%zu bytes, at most %d)", strlen(c),
                 LS_PROTO_REASON_MAX);
        return LS_EINVAL;
    }
    char msg[512];
    int rc = LS_ENOENT;
    for (int i = 0; i < n->nactives && rc == LS_ENOENT; i++)
        for (int j = 0; j < n->actives[i].nshippers; j++) {
            shipper_t *s = &n->actives[i].shippers[j];
            if (!strcmp(s->db->cfg->name, db->valuestring) &&
                !strcmp(s->link->cfg->name, peer->valuestring)) {
                rc = active_cmd(s, suspend, replay_only, c, msg, sizeof(msg));
                break;
            }
        }
    for (int i = 0; i < n->ncopies && rc == LS_ENOENT; i++) {
        pcopy_t *p = &n->copies[i];
        if (!strcmp(p->cfg->name, db->valuestring) && !strcmp(p->cfg->source, peer->valuestring))
            rc = passive_cmd(p, suspend, replay_only, c, msg, sizeof(msg));
    }
    if (rc == LS_ENOENT)
        snprintf(msg, sizeof(msg), "node %s has no copy of %s with %s (see 'logship status')",
                 n->cfg->node_name, db->valuestring, peer->valuestring);
    if (rc) {
        snprintf(err, errlen, "%s", msg);
        return rc;
    }
    LS_LOGI("control", "%s", msg);
    cJSON_AddStringToObject(resp, "message", msg);
    return 0;
}
