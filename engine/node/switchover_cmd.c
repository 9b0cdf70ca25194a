/* The active's switchover commands (docs/ACTIVATION.md, "Planned switchover", step 1):
 * "switchover" refused at once unless the database is active here and NODE's copy is connected,
 * Healthy and speaks version 5, then the hold queued (switchover_hold.c); "switchover_status"
 * the running or last one's report. The rest of the switchover: switchover.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/switchover_int.h"
#include "node/resync_switchover_int.h"

static bool sw_running(const struct node_sw *w)
{
    return w && w->state < SW_DONE;
}

const char *ls__node_switchover_state(const node_db_t *d)
{
    return d->sw ? ls__sw_state_name(d->sw->state) : NULL;
}

static int refuse(ls_node_t *n, node_db_t *db, const char *to, shipper_t **out, char *err,
                  size_t errlen)
{
    const char *name = db->cfg->name, *self = n->cfg->node_name;
    const ls_role_state_t *r = &db->role;
    if (sw_running(db->sw))
        return ls_errf(err, errlen, LS_EBUSY, "a switchover of %s is under way already", name);
    if (r->role != LS_ROLE_ACTIVE || !db->active || db->active->retired || db->active->fenced)
        return ls_errf(err, errlen, LS_ESTATE,
                       "switchover of %s refused: %s is not active on %s (it is %s, epoch %u%s%s); "
                       "run it on the active",
                       name, name, self, ls_role_kind_name(r->role), r->epoch,
                       r->follows[0] ? ", following " : "", r->follows);
    if (!strcmp(to, self))
        return ls_errf(err, errlen, LS_ESTATE, "switchover of %s refused: %s is the active already",
                       name, self);
    char set[LS_CFG_MAX_COPIES][LS_CFG_NAME_MAX], list[LS_CFG_MAX_COPIES * (LS_CFG_NAME_MAX + 2)];
    int count = ls_config_copy_set(n->cfg, db->cfg, set);
    bool member = false;
    size_t len = 0;
    list[0] = '\0';
    for (int i = 0; i < count; i++) {
        member = member || !strcmp(set[i], to);
        len += (size_t) snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", set[i]);
    }
    if (!member)
        return ls_errf(err, errlen, LS_ESTATE,
                       "switchover of %s refused: %s is not in its copy set (%s)", name, to, list);
    active_t *a = db->active;
    shipper_t *s = NULL;
    for (int i = 0; i < a->nshippers; i++)
        if (!strcmp(a->shippers[i].link->cfg->name, to)) s = &a->shippers[i];
    if (!s)
        return ls_errf(err, errlen, LS_ESTATE,
                       "switchover of %s refused: %s ships nothing to %s (no section says how to "
                       "reach it)",
                       name, self, to);
    ls_ship_state_t st = ls_ship_state(s->m);
    if (st != LS_SHIP_HEALTHY || !s->link->conn || !s->link->ready)
        return ls_errf(err, errlen, LS_ESTATE,
                       "switchover of %s refused: %s's copy is %s%s (%s); it must be connected "
                       "and Healthy",
                       name, to, ls_ship_state_name(st),
                       s->link->conn && s->link->ready ? ", not connected" : "",
                       ls_ship_reason(s->m));
    if (s->link->version < LS_PROTO_VERSION_SWITCHOVER)
        return ls_errf(err, errlen, LS_ESTATE,
                       "switchover of %s refused: %s speaks protocol version %u on its "
                       "connection; switchover needs %u",
                       name, to, (unsigned) s->link->version,
                       (unsigned) LS_PROTO_VERSION_SWITCHOVER);
    if (!a->src || !a->have_dbid)
        return ls_errf(err, errlen, LS_ESTATE,
                       "switchover of %s refused: nothing of it was written yet", name);
    if (a->removing || a->seed_snapshots)
        return ls_errf(err, errlen, LS_EBUSY,
                       "switchover of %s: a %s is under way; try again in a moment", name,
                       a->removing ? "log removal" : "seed");
    *out = s;
    return 0;
}

static void status_json(const struct node_sw *w, cJSON *resp)
{
    cJSON_AddStringToObject(resp, "database", w->db->cfg->name);
    cJSON_AddStringToObject(resp, "to", w->to);
    cJSON_AddStringToObject(resp, "state", ls__sw_state_name(w->state));
    cJSON_AddStringToObject(resp, "message", w->message);
    ls_status_json_add_u64(resp, "timeout_ms", w->timeout_ms);
    ls_status_json_add_u64(resp, "start_time_ns", w->start_ns);
    ls_status_json_add_u64(resp, "end_time_ns", w->end_ns);
    ls_status_json_add_u64(resp, "held_ms", ls__sw_held_ms(w));
    ls_status_json_add_u64(resp, "last_generation", w->last_gen);
    ls_status_json_add_u64(resp, "last_lsn", w->last_lsn);
    ls_status_json_add_u64(resp, "epoch", w->new_epoch);
    ls_status_json_add_u64(resp, "first_generation", w->first_generation);
    cJSON_AddBoolToObject(resp, "daemon_closed_log", w->self_closed);
}

/* The database's switchover record, emptied for a new one: the last one's timer is kept (stopped),
 * since a libuv handle once initialised is only closed, not forgotten. */
static struct node_sw *sw_fresh(node_db_t *db)
{
    struct node_sw *w = db->sw ? db->sw : calloc(1, sizeof(*w));
    if (!w) return NULL;
    if (w->timer_init && !w->timer_closed) {
        uv_timer_t keep = w->timer;
        memset(w, 0, sizeof(*w));
        w->timer = keep;
        w->timer_init = true;
    } else {
        memset(w, 0, sizeof(*w));
    }
    w->timer.data = w;
    return w;
}

int ls__node_switchover_cmd(ls_node_t *n, const cJSON *req, bool status_only, cJSON *resp,
                            char *err, size_t errlen)
{
    const char *cmd = status_only ? "switchover_status" : "switchover";
    int rc = 0;
    node_db_t *db = ls__node_db_of(n, req, cmd, &rc, err, errlen);
    if (!db) return rc;
    if (status_only) {
        if (!db->sw) {
            snprintf(err, errlen, "no switchover of %s since the daemon started", db->cfg->name);
            return LS_ENOENT;
        }
        status_json(db->sw, resp);
        return 0;
    }
    const cJSON *jto = cJSON_GetObjectItem(req, "to");
    if (!cJSON_IsString(jto) || !jto->valuestring[0]) {
        snprintf(err, errlen, "switchover needs a string field \"to\" (the node to activate)");
        return LS_EINVAL;
    }
    uint64_t timeout_ms = ls_status_json_u64(req, "timeout_ms");
    shipper_t *s = NULL;
    rc = refuse(n, db, jto->valuestring, &s, err, errlen);
    if (rc) {
        LS_LOGW("switchover", "%s", err);
        return rc;
    }
    struct node_sw *w = sw_fresh(db);
    if (!w) return LS_ENOMEM;
    db->sw = w;
    w->node = n;
    w->db = db;
    w->s = s;
    snprintf(w->to, sizeof(w->to), "%s", jto->valuestring);
    w->timeout_ms = timeout_ms ? timeout_ms : SW_TIMEOUT_MS_DEFAULT;
    w->start_ns = ls_now_ns();
    w->epoch = db->role.epoch;
    w->new_epoch = db->role.epoch + 1;
    w->work.data = w;
    w->state = SW_HOLDING;
    db->active->switching = true;
    if (uv_queue_work(n->loop, &w->work, ls__sw_hold_work, ls__sw_hold_done) != 0) {
        db->active->switching = false;
        w->state = SW_FAILED;
        snprintf(err, errlen, "cannot queue the switchover's work");
        return LS_ENOMEM;
    }
    ls_msgf(w->message, sizeof(w->message),
            "switching %s over from %s to %s: holding commits (epoch %u ends here)", db->cfg->name,
            n->cfg->node_name, w->to, w->epoch);
    LS_LOGI("switchover", "%s", w->message);
    cJSON_AddStringToObject(resp, "message", w->message);
    return 0;
}
