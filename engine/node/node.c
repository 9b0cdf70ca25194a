/* The node: start and stop, its timers, frame sending, connecting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/node_int.h"
#include "node/resync_switchover_int.h"

const char *ls__node_state_name(copy_state_t s)
{
    static const char *names[] = {"Initializing", "Healthy", "Disconnected", "Suspended",
                                  "Seeding",      "Failed",  "Diverged",     "DiskFull"};
    return (unsigned) s < LS_ARRAY_SIZE(names) ? names[s] : "Unknown";
}

int ls__node_send(ls_conn_t *conn, const ls_frame_t *f)
{
    ssize_t size = ls_frame_size(f);
    if (size < 0) return (int) size;
    uint8_t stackbuf[4096];
    uint8_t *buf = (size_t) size <= sizeof(stackbuf) ? stackbuf : malloc((size_t) size);
    if (!buf) return LS_ENOMEM;
    ssize_t n = ls_frame_encode(f, buf, (size_t) size);
    int rc = n < 0 ? (int) n
                   : ls_conn_send(conn, f->type, buf + LS_FRAME_HEADER_SIZE,
                                  (size_t) n - LS_FRAME_HEADER_SIZE);
    if (buf != stackbuf) free(buf);
    return rc;
}

static void conn_opts(const ls_node_t *n, ls_conn_opts_t *o, const char *peer_name,
                      uint64_t heartbeat_ms, uint64_t dead_ms)
{
    memset(o, 0, sizeof(*o));
    o->tls = n->tls;
    o->insecure_plaintext = n->cfg->plaintext;
    o->peer_name = n->cfg->plaintext ? NULL : peer_name;
    o->heartbeat_ms = (uint32_t) heartbeat_ms;
    o->dead_ms = (uint32_t) dead_ms;
    o->offload_compression = true; /* zstd on the connection's worker, never on the loop */
}

const uint8_t *ls__node_frame_dbid(const ls_frame_t *f, bool to_source)
{
    bool gen = f->type == LS_FRAME_GEN_BEGIN || f->type == LS_FRAME_GEN_DATA ||
               f->type == LS_FRAME_GEN_END || f->type == LS_FRAME_BLOCK ||
               f->type == LS_FRAME_GEN_TAIL; /* source -> target */
    bool either =
        f->type == LS_FRAME_ERROR || f->type == LS_FRAME_COPY_STATE || f->type == LS_FRAME_EPOCH;
    if (!either && gen == to_source) return NULL; /* the other way */
    switch (f->type) {
    case LS_FRAME_ERROR:
        return f->error.dbid;
    case LS_FRAME_COPY_STATE:
        return f->copy_state.dbid;
    case LS_FRAME_EPOCH:
        return f->epoch.dbid;
    case LS_FRAME_GEN_BEGIN:
    case LS_FRAME_GEN_TAIL:
        return f->gen_begin.dbid;
    case LS_FRAME_GEN_DATA:
        return f->gen_data.dbid;
    case LS_FRAME_GEN_END:
        return f->gen_end.dbid;
    case LS_FRAME_BLOCK:
        return f->block.dbid;
    case LS_FRAME_BLOCK_ACK:
        return f->block_ack.dbid;
    case LS_FRAME_RESUME:
        return f->resume.dbid;
    case LS_FRAME_CREDIT:
        return f->credit.dbid;
    case LS_FRAME_RE_OFFER:
        return f->re_offer.dbid;
    case LS_FRAME_DURABLE:
        return f->durable.dbid;
    case LS_FRAME_INSPECTED:
        return f->inspected.dbid;
    case LS_FRAME_REPLAYED:
        return f->replayed.dbid;
    case LS_FRAME_REPLAYED_SYNCED:
        return f->replayed_synced.dbid;
    case LS_FRAME_ASK_AGAIN:
        return f->ask_again.dbid;
    default:
        return NULL;
    }
}

void ls_node_listen_opts(ls_node_t *n, ls_conn_opts_t *o)
{
    /* Any certificate chaining to our CA is accepted; the HELLO's node name is then checked
     * against the certificate (peer.c). */
    conn_opts(n, o, NULL, n->cfg->heartbeat_interval_ms, LS_PROTO_HEARTBEAT_TIMEOUT_MS);
    o->on_frame = ls__node_peer_on_frame;
    o->on_close = ls__node_peer_on_close;
}

int ls__node_connect(ls_node_t *n, const ls_cfg_target_t *t, int net, bool target,
                     const ls_conn_opts_t *cb, ls_conn_t **out)
{
    const ls_cfg_network_t *nw = &t->nets[net];
    ls_conn_opts_t o;
    conn_opts(n, &o, ls_node_cert_name(n->cfg, t->name, target), t->heartbeat_interval_ms,
              t->heartbeat_timeout_ms);
    o.bind_addr = nw->bind[0] ? nw->bind : NULL;
    o.on_ready = cb->on_ready;
    o.on_frame = cb->on_frame;
    o.on_drain = cb->on_drain;
    o.on_close = cb->on_close;
    o.data = cb->data;
    if (cb->send_hwm) o.send_hwm = cb->send_hwm;
    int rc = ls_conn_connect(n->loop, nw->remote.host, nw->remote.port, &o, out);
    if (rc) *out = NULL;
    return rc;
}

void ls__node_welcome(const ls_node_t *n, ls_frame_t *w, const ls_proto_choice_t *choice,
                      uint16_t count)
{
    memset(w, 0, sizeof(*w));
    w->type = LS_FRAME_WELCOME;
    w->welcome.version = choice->version;
    w->welcome.features = choice->features;
    w->welcome.zstd_level = choice->zstd_level;
    w->welcome.node = ls_proto_str(n->cfg->node_name);
    w->welcome.db_count = count;
}

static void on_rescan(uv_timer_t *t)
{
    ls_node_t *n = t->data;
    for (int i = 0; i < n->nactives; i++)
        ls__node_active_poll(&n->actives[i]);
}

static void on_housekeep(uv_timer_t *t)
{
    ls_node_t *n = t->data;
    for (int i = 0; i < n->ncopies; i++)
        if (!n->copies[i].retired) ls__node_pcopy_housekeep(&n->copies[i]);
    for (int i = 0; i < n->nactives; i++) {
        ls__node_active_housekeep(&n->actives[i]);
        ls__node_sync_poll(&n->actives[i]);
    }
    ls__node_resync_auto(n);
}

/* db runs as active: its ship machines to every other member of its copy set. */
static void run_active(ls_node_t *n, node_db_t *db)
{
    char set[LS_CFG_MAX_COPIES][LS_CFG_NAME_MAX], to[LS_CFG_MAX_COPIES][LS_CFG_NAME_MAX];
    int count = ls_config_copy_set(n->cfg, db->cfg, set), nto = 0;
    for (int i = 0; i < count; i++)
        if (strcmp(set[i], n->cfg->node_name)) memcpy(to[nto++], set[i], LS_CFG_NAME_MAX);
    db->active = &n->actives[n->nactives++];
    ls__node_active_init(n, db->active, db->cfg, to, nto);
}

/* Runs database d as its role says: active (shipping to the rest of its copy set), a copy
 * (following the role file's active, else the configured source), or an old active (demoted or
 * diverged: its ship machines fenced for good, shipping nothing, until `logship resync`). */
static int run_database(ls_node_t *n, node_db_t *db, char *err, size_t errlen)
{
    const ls_cfg_database_t *d = db->cfg;
    ls_role_kind_t initial = d->role == LS_CFG_ACTIVE ? LS_ROLE_ACTIVE : LS_ROLE_COPY;
    char why[600];
    int rc = ls_role_load(d->path, initial, &db->role, why, sizeof(why));
    if (rc) {
        snprintf(err, errlen, "database %s: %s", d->name, why);
        return rc;
    }
    ls__node_seed_recover(d, db->role.role == LS_ROLE_ACTIVE);
    if (db->role.role != LS_ROLE_ACTIVE) {
        /* An interrupted resync: the seed's recovery may have put a new copy (with its own
         * role file) in place, and a full-seed fall-back may have left diverged/ beside it. */
        ls__rsi_recover_diverged(d->path, d->name);
        if ((rc = ls_role_load(d->path, initial, &db->role, why, sizeof(why))) != 0) {
            snprintf(err, errlen, "database %s: %s", d->name, why);
            return rc;
        }
    }
    if (db->role.role == LS_ROLE_ACTIVE) {
        ls__node_switchover_recover(n, db);
        run_active(n, db);
        return 0;
    }
    if (db->role.role != LS_ROLE_COPY) {
        /* An old active: its machines exist (status shows them Demoted or Diverged, naming the
         * new active) but are fenced for good; nothing is offered, read or removed. */
        LS_LOGW("node",
                "database %s is %s (epoch %u, following %s): neither shipped nor copied "
                "until it is rebuilt as a copy (logship resync, docs/ACTIVATION.md)",
                d->name, ls_role_kind_name(db->role.role), db->role.epoch,
                db->role.follows[0] ? db->role.follows : "?");
        run_active(n, db);
        ls__node_epoch_fenced_at_start(db->active, &db->role);
        return 0;
    }
    const char *source = db->role.follows[0] ? db->role.follows : d->source;
    if (!source[0]) {
        snprintf(err, errlen,
                 "database %s: %s/role says copy but names no active to follow, and the "
                 "configuration gives no 'source'",
                 d->name, d->path);
        return LS_ECONFIG;
    }
    rc = ls__node_pcopy_open(n, &n->copies[n->ncopies], d, source, err, errlen);
    if (rc) return rc; /* out of descriptors: the daemon does not start */
    db->copy = &n->copies[n->ncopies++];
    return 0;
}

static int start_databases(ls_node_t *n, char *err, size_t errlen)
{
    const ls_config_t *c = n->cfg;
    n->links_cap = c->ntargets + c->nsources + 1;
    n->links = calloc((size_t) n->links_cap, sizeof(link_t));
    /* Each activation in this run takes a slot (a retired one stays: links may still name its
     * machines): room for NODE_ACTIVATIONS of each database, switchovers back and forth. */
    n->actives_cap = c->ndatabases * NODE_ACTIVATIONS + 1;
    n->actives = calloc((size_t) n->actives_cap, sizeof(active_t));
    n->copies = calloc((size_t) c->ndatabases + 1, sizeof(pcopy_t));
    n->dbs = calloc((size_t) c->ndatabases + 1, sizeof(node_db_t));
    if (!n->links || !n->actives || !n->copies || !n->dbs) return LS_ENOMEM;
    for (int i = 0; i < c->ntargets; i++) {
        int wrc = ls__node_link_init(n, &n->links[n->nlinks], &c->targets[i]);
        if (wrc)
            return ls_errf(err, errlen, ls_err_from_errno(wrc),
                           "the link to %s: cannot make its wake-up: %s", c->targets[i].name,
                           strerror(wrc));
        n->nlinks++;
    }
    for (int i = 0; i < c->ndatabases; i++) {
        node_db_t *db = &n->dbs[n->ndbs++];
        db->cfg = &c->databases[i];
        int rc = run_database(n, db, err, errlen);
        if (rc) return rc;
    }
    for (int i = 0; i < n->nactives; i++)
        ls__node_active_poll(&n->actives[i]);
    return 0;
}

node_db_t *ls__node_db(ls_node_t *n, const char *name)
{
    for (int i = 0; i < n->ndbs; i++)
        if (!strcmp(n->dbs[i].cfg->name, name)) return &n->dbs[i];
    return NULL;
}

node_db_t *ls__node_db_of(ls_node_t *n, const cJSON *req, const char *cmd, int *rc, char *err,
                          size_t errlen)
{
    const cJSON *jdb = cJSON_GetObjectItem(req, "database");
    if (!cJSON_IsString(jdb)) {
        *rc = ls_errf(err, errlen, LS_EINVAL, "%s needs a string field \"database\"", cmd);
        return NULL;
    }
    node_db_t *db = ls__node_db(n, jdb->valuestring);
    if (!db)
        *rc = ls_errf(err, errlen, LS_ENOENT, "node %s has no database %s", n->cfg->node_name,
                      jdb->valuestring);
    return db;
}

ls_node_t *ls_node_new(const ls_node_options_t *o)
{
    ls_node_t *n = calloc(1, sizeof(*n));
    if (!n) return NULL;
    n->loop = o->loop;
    n->cfg = o->cfg;
    n->tls = o->tls;
    n->next_conn_id = 1;
    n->start_ns = ls_now_ns();
    return n;
}

int ls_node_start(ls_node_t *n, char *err, size_t errlen)
{
    uv_timer_init(n->loop, &n->rescan);
    uv_timer_init(n->loop, &n->housekeep);
    n->rescan.data = n->housekeep.data = n;
    n->timers = true;
    int rc = start_databases(n, err, errlen);
    if (rc) return rc;
    uv_timer_start(&n->rescan, on_rescan, NODE_RESCAN_MS, NODE_RESCAN_MS);
    uv_timer_start(&n->housekeep, on_housekeep, NODE_HOUSEKEEP_MS, NODE_HOUSEKEEP_MS);
    LS_LOGI("node", "node %s started: %d active, %d passive database(s), %d target(s)",
            n->cfg->node_name, n->nactives, n->ncopies, n->nlinks);
    return 0;
}

void ls_node_stop(ls_node_t *n)
{
    if (n->stopping) return;
    n->stopping = true;
    if (n->timers) {
        uv_close((uv_handle_t *) &n->rescan, NULL);
        uv_close((uv_handle_t *) &n->housekeep, NULL);
    }
    /* Readers first: their threads wake the links (ls_node_wake_t). */
    for (int i = 0; i < n->nactives; i++)
        ls__node_active_close(&n->actives[i]);
    for (int i = 0; i < n->nlinks; i++)
        ls__node_link_close(&n->links[i]);
    ls__node_peer_close_all(n);
    for (int i = 0; i < n->ncopies; i++)
        if (!n->copies[i].retired) ls__node_pcopy_close(&n->copies[i], false);
    ls__node_seed_client_stop(n); /* after the receiver threads ended */
    ls__node_switchover_stop(n);
    ls__node_resync_inc_stop(n);
}

void ls_node_free(ls_node_t *n)
{
    if (!n) return;
    for (int i = 0; i < n->nactives; i++)
        ls__node_active_free(&n->actives[i]);
    for (int i = 0; i < n->nlinks; i++) {
        free(n->links[i].shippers);
        free(n->links[i].by_idx);
    }
    for (int i = 0; i < n->ncopies; i++) {
        ls_passive_free(n->copies[i].m);
        ls_copy_rx_free(n->copies[i].rx); /* stopped by ls__node_pcopy_close */
    }
    for (int i = 0; i < n->ndbs; i++) {
        ls__node_activate_free(&n->dbs[i]);
        ls__node_resync_inc_free(&n->dbs[i]);
        ls__node_switchover_free(&n->dbs[i]);
    }
    free(n->dbs);
    free(n->actives);
    free(n->links);
    free(n->copies);
    free(n);
}
