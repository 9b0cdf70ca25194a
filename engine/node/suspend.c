/* Suspend and resume (the operator's commands), both sides.
 *
 * Active side: the command goes to the copy's shipping machine (engine/ship), which persists
 * the decision, stops or allows shipping and tells the target in COPY_STATE.
 * Passive side: to the copy's machine (engine/passive): a full suspension pauses replay and
 * tells the source to stop shipping; a replay-only suspension pauses replay while receiving goes
 * on; a resume also clears Failed. Either side keeps its operator's decision in a state file
 * (opstate.c) so that it survives restarts. */
#include <stdio.h>
#include <string.h>

#include "node/node_int.h"

/* ---- the commands ------------------------------------------------------------------------- */
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
    ls__node_link_pump(s->link);
    snprintf(msg, msglen, "%s -> %s %s", s->db->cfg->name, s->link->cfg->name,
             suspend ? "suspended" : "resumed");
    return 0;
}

static int passive_cmd(pcopy_t *p, bool suspend, bool replay_only, const char *comment, char *msg,
                       size_t msglen)
{
    int rc = ls_passive_command(p->m, suspend, replay_only, comment, msg, msglen, ls_now_ns());
    if (rc)
        snprintf(msg, msglen, "cannot save the copy's state in %.300s: %s", p->op_path,
                 ls_strerror(rc));
    return rc;
}

int ls__node_cmd_suspend(ls_node_t *n, const cJSON *req, bool suspend, cJSON *resp, char *err,
                         size_t errlen)
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
        if (!p->retired && !strcmp(p->cfg->name, db->valuestring) &&
            !strcmp(p->source, peer->valuestring))
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
