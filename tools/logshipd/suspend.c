/* Suspend and resume (the operator's commands), and COPY_STATE on the passive side.
 *
 * Active side: the command goes to the copy's shipping machine (engine/ship), which persists
 * the decision, stops or allows shipping and tells the target in COPY_STATE.
 * Passive side: a full suspension pauses replay and tells the source to stop shipping; a
 * replay-only suspension pauses replay while receiving goes on. Either side keeps its operator's
 * decision in a state file (opstate.c) so that it survives restarts.
 * COPY_STATE from the source also carries the figures the passive cannot see for itself
 * (newest generation, copy queue), which the passive shows as its own. */
#include <stdio.h>
#include <string.h>

#include "daemon.h"

static void copy_op(ld_opstate_t *dst, const ls_proto_copy_state_t *cs)
{
    dst->suspended = cs->flags & LS_COPY_SUSPENDED;
    dst->replay_suspended = cs->flags & LS_COPY_REPLAY_SUSPENDED;
    dst->since_ns = cs->since_ns;
    snprintf(dst->comment, sizeof(dst->comment), "%.*s", (int) cs->comment.len, cs->comment.ptr);
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
    int rc =
        suspend ? ls_ship_suspend(s->m, comment, ls_now_ns()) : ls_ship_resume(s->m, ls_now_ns());
    if (rc) {
        snprintf(msg, msglen, "cannot save the copy's state in %.300s: %s", s->op_path,
                 ls_strerror(rc));
        return rc;
    }
    ld_link_pump(s->link);
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
