/* The commands of the incremental resync (resync_inc.c has the resync itself): start it for a
 * Diverged database, show it ("resync_status"), start it by itself (auto_resync), stop and free
 * it with the node. Loop thread only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/resync_int.h"
#include "node/resync_switchover_int.h"

static uint64_t next_id = 1;

/* ---- commands ------------------------------------------------------------------------------- */
static void rsi_free(struct node_rsi *r)
{
    if (!r) return;
    ls_seed_client_free(r->cs);
    while (r->head) {
        rjob_t *j = r->head;
        r->head = j->next;
        free(j);
    }
    ls_seed_install_free(r->install);
    free(r->theirs);
    free(r->keys);
    free(r);
}

static bool rsi_idle(const struct node_rsi *r)
{
    return r->finished && !r->cur && !r->head && !r->conn;
}

static void describe(const struct node_rsi *r, cJSON *o)
{
    cJSON_AddNumberToObject(o, "id", (double) r->id);
    cJSON_AddStringToObject(o, "database", r->db->cfg->name);
    cJSON_AddStringToObject(o, "from", r->follows);
    cJSON_AddStringToObject(o, "state", !r->finished ? "running" : r->ok ? "done" : "failed");
    cJSON_AddStringToObject(o, "session", ls_seed_client_state_name(ls_seed_client_state(r->cs)));
    cJSON_AddStringToObject(o, "message", r->message);
    cJSON_AddBoolToObject(o, "incremental", r->info.resync);
    cJSON_AddStringToObject(o, "fallback", r->info.fallback[0] ? r->info.fallback : r->full_why);
    cJSON_AddNumberToObject(o, "bytes_moved", (double) r->info.total_bytes);
    cJSON_AddNumberToObject(o, "store_bytes", (double) r->info.store_bytes);
    cJSON_AddNumberToObject(o, "keys", (double) r->info.keys);
    cJSON_AddNumberToObject(o, "split_generation", (double) r->rep.split.split);
    ls_conn_stats_t cs = r->cstats;
    if (r->conn) ls_conn_stats(r->conn, &cs);
    cJSON_AddNumberToObject(o, "wire_bytes_received", (double) cs.wire_bytes_received);
    const ls_role_diverged_t *m = &r->rep.moved;
    cJSON *d = cJSON_AddObjectToObject(o, "diverged");
    cJSON_AddNumberToObject(d, "generations", (double) m->generations);
    cJSON_AddNumberToObject(d, "first_generation", (double) m->first_generation);
    cJSON_AddNumberToObject(d, "last_generation", (double) m->last_generation);
    cJSON_AddNumberToObject(d, "records", (double) m->records);
    cJSON_AddNumberToObject(d, "keys", (double) m->keys);
    cJSON_AddStringToObject(d, "dest", m->dest);
    cJSON *k = cJSON_AddArrayToObject(d, "key_list");
    for (uint64_t i = 0; i < m->keys && i < LS_ROLE_KEYS_LISTED; i++)
        cJSON_AddItemToArray(k, cJSON_CreateString(m->key[i]));
}

int ls__node_resync_inc_start(ls_node_t *n, node_db_t *db, cJSON *resp, char *err, size_t errlen)
{
    const char *follows = db->role.follows, *name = db->cfg->name;
    if (db->rsi && !rsi_idle(db->rsi))
        return ls_errf(err, errlen, LS_EBUSY, "a resync of %s from %s is under way (%s)", name,
                       db->rsi->follows, db->rsi->message);
    const ls_cfg_target_t *src = ls_config_peer(n->cfg, follows);
    if (!src)
        return ls_errf(err, errlen, LS_ECONFIG,
                       "resync of %s: %s has no [target %s] or [source %s] section saying how "
                       "to reach the new active %s",
                       name, n->cfg->path, follows, follows, follows);
    if (!ls__node_resync_has_slot(n, db))
        return ls_errf(err, errlen, LS_ENOMEM,
                       "resync of %s: no room for another copy in this daemon: restart it", name);
    rsi_free(db->rsi);
    struct node_rsi *r = calloc(1, sizeof(*r));
    LS_CHECK(r != NULL);
    db->rsi = r;
    r->node = n;
    r->db = db;
    r->id = next_id++;
    r->src = src;
    snprintf(r->follows, sizeof(r->follows), "%s", follows);
    r->start_ns = ls_now_ns();
    /* chain_from: this node's oldest closed generation (1 when none) */
    ls_role_link_t *mine = NULL;
    size_t nm = 0;
    char e2[512];
    uint64_t from = 1;
    if (ls_role_chain(db->cfg->path, LS_GEN_PREFIX_DEFAULT, &mine, &nm, e2, sizeof(e2)) == 0 && nm)
        from = mine[0].generation;
    free(mine);
    ls_seed_client_options_t co = ls__rsi_client_options(r, true, from);
    LS_CHECK(ls_seed_client_new(&co, &r->cs) == 0);
    /* Its ship machines stay, fenced (they ship, read and remove nothing), until the new store
     * is in place (ls__node_resync_open_copy retires them); a failed resync leaves them showing
     * why (fall_back in resync_inc.c), and `logship resync` may run again. */
    if (db->active) db->active->fenced = true;
    LS_LOGI("resync", "%s: incremental resync from %s (%s), its chain asked from generation %llu",
            name, follows, db->role.reason[0] ? db->role.reason : "demoted",
            (unsigned long long) from);
    ls__rsi_connect_src(r);
    if (resp) {
        describe(r, resp);
        cJSON_AddBoolToObject(resp, "follow", true); /* the CLI polls resync_status */
    }
    return 0;
}

int ls__node_resync_status_cmd(ls_node_t *n, const cJSON *req, cJSON *resp, char *err,
                               size_t errlen)
{
    int rc = 0;
    node_db_t *db = ls__node_db_of(n, req, "resync_status", &rc, err, errlen);
    if (!db) return rc;
    if (!db->rsi)
        return ls_errf(err, errlen, LS_ENOENT,
                       "no incremental resync of %s since the daemon started", db->cfg->name);
    describe(db->rsi, resp);
    return 0;
}

void ls__node_resync_auto(ls_node_t *n)
{
    for (int i = 0; i < n->ndbs && !n->stopping; i++) {
        node_db_t *db = &n->dbs[i];
        if (!db->cfg->auto_resync || db->copy) continue;
        if (db->role.role != LS_ROLE_DEMOTED && db->role.role != LS_ROLE_DIVERGED) continue;
        if (!db->role.follows[0]) continue;
        struct node_rsi *r = db->rsi;
        if (r && (!rsi_idle(r) || ls_now_ns() - r->end_ns < NODE_RSI_RETRY_NS)) continue;
        cJSON *resp = cJSON_CreateObject();
        cJSON *req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "database", db->cfg->name);
        char err[1024];
        LS_LOGI("resync", "%s is %s (auto_resync = true): resyncing from %s", db->cfg->name,
                ls_role_kind_name(db->role.role), db->role.follows);
        if (ls__node_resync_cmd(n, req, resp, err, sizeof(err)) != 0)
            LS_LOGW("resync", "%s: auto_resync: %s", db->cfg->name, err);
        cJSON_Delete(req);
        cJSON_Delete(resp);
    }
}

void ls__node_resync_inc_stop(ls_node_t *n)
{
    for (int i = 0; i < n->ndbs; i++) {
        struct node_rsi *r = n->dbs[i].rsi;
        if (!r) continue;
        if (r->conn) {
            ls_conn_set_data(r->conn, NULL);
            ls_conn_close(r->conn);
            r->conn = NULL;
        }
    }
}

void ls__node_resync_inc_free(node_db_t *db)
{
    rsi_free(db->rsi); /* its last job ended with the loop */
    db->rsi = NULL;
}
