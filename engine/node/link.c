/* A link: the connection from this node to one target, carrying every database shipped there
 * (one HELLO lists them all), with a per-database credit window. Which replication network it
 * goes over, failover, probes and failback are netpath.c's (docs/NETWORKS.md): this file runs the
 * connection it is given and reports how it ended. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/netpath.h"
#include "node/resync_switchover_int.h"

static void on_wake(void *data)
{
    ls__node_link_pump(data);
}

static void on_retry(uv_timer_t *t)
{
    link_t *l = t->data;
    ls__node_link_kick(l);
}

int ls__node_link_init(ls_node_t *n, link_t *l, const ls_cfg_target_t *cfg)
{
    memset(l, 0, sizeof(*l));
    int wrc = ls__node_wake_init(n->loop, &l->wake, on_wake, l);
    if (wrc != 0) return wrc; /* out of descriptors: nothing made, l not counted */
    l->node = n;
    l->cfg = cfg;
    l->backoff_ms = NODE_BACKOFF_MIN;
    uv_timer_init(n->loop, &l->retry);
    l->retry.data = l;
    ls__node_np_init(l);
    return 0;
}

link_t *ls__node_link_for(ls_node_t *n, const char *name, int *werr)
{
    *werr = 0;
    for (int i = 0; i < n->nlinks; i++)
        if (!strcmp(n->links[i].cfg->name, name)) return &n->links[i];
    const ls_cfg_target_t *t = ls_config_peer(n->cfg, name);
    if (!t || n->nlinks == n->links_cap) return NULL;
    *werr = ls__node_link_init(n, &n->links[n->nlinks], t);
    return *werr ? NULL : &n->links[n->nlinks++];
}

void ls__node_link_add(link_t *l, shipper_t *s)
{
    l->shippers = realloc(l->shippers, (size_t) (l->nshippers + 1) * sizeof(*l->shippers));
    LS_CHECK(l->shippers != NULL);
    l->shippers[l->nshippers++] = s;
}

static void schedule_retry(link_t *l)
{
    if (l->node->stopping) return;
    uv_timer_start(&l->retry, on_retry, l->backoff_ms, 0);
    l->backoff_ms = LS_MIN(l->backoff_ms * 2, NODE_BACKOFF_MAX);
}

static uint32_t offered_features(const link_t *l)
{
    return (l->node->cfg->plaintext ? LS_FEAT_CKSUM : 0) |
           (l->cfg->compression_level > 0 ? LS_FEAT_ZSTD : 0) | LS_FEAT_BLOCK | LS_FEAT_TAIL |
           LS_FEAT_NEXT | LS_FEAT_APPLY;
}

static void send_hello(link_t *l)
{
    ls_frame_t f = {.type = LS_FRAME_HELLO};
    ls_proto_hello_t *h = &f.hello;
    h->version_min = LS_PROTO_VERSION_MIN;
    h->version_max = LS_PROTO_VERSION_MAX;
    h->purpose = LS_PURPOSE_SHIP;
    h->features = offered_features(l);
    if (h->features & LS_FEAT_ZSTD) h->zstd_level = (int8_t) l->cfg->compression_level;
    h->node = ls_proto_str(l->node->cfg->node_name);
    free(l->by_idx);
    l->by_idx = calloc((size_t) l->nshippers + 1, sizeof(*l->by_idx));
    LS_CHECK(l->by_idx != NULL);
    l->nidx = 0;
    l->rr = 0;
    for (int i = 0; i < l->nshippers && h->db_count < LS_PROTO_DB_MAX; i++) {
        shipper_t *s = l->shippers[i];
        if (!s->db->have_dbid || s->db->fenced) continue; /* an old active offers nothing */
        memcpy(h->dbs[h->db_count].dbid, s->db->dbid, LS_DBID_LEN);
        h->dbs[h->db_count].name = ls_proto_str(s->db->cfg->name);
        l->by_idx[l->nidx++] = s;
        h->db_count++;
    }
    int rc = ls__node_send(l->conn, &f);
    if (rc) ls_conn_close(l->conn);
}

/* The data connection is ready (connected now, or a probe taken over): say HELLO. */
static void data_ready(link_t *l)
{
    ls_conn_t *c = l->conn;
    LS_LOGI("link", "connected to %s over network %s (%s)%s", l->cfg->name,
            l->cfg->nets[l->net].name, ls_conn_peer(c), ls_conn_is_tls(c) ? ", TLS" : "");
    send_hello(l);
}

static void on_ready(ls_conn_t *c)
{
    link_t *l = ls_conn_data(c);
    if (c == l->conn)
        data_ready(l);
    else if (!ls__node_np_probe_ready(l, c))
        ls_conn_close(c); /* a connection the link no longer wants */
}

/* The WELCOME answers the HELLO sent (PROTOCOL.md): else the connection is closed and the
 * copies show why. */
static bool welcome_ok(link_t *l, const ls_proto_welcome_t *w)
{
    static ls_proto_hello_t h; /* what send_hello said (256 entries); the loop is one thread */
    char msg[NODE_REASON_MAX - 64];
    memset(&h, 0, sizeof(h));
    h.version_min = LS_PROTO_VERSION_MIN;
    h.version_max = LS_PROTO_VERSION_MAX;
    h.features = offered_features(l);
    h.db_count = (uint16_t) l->nidx;
    for (int i = 0; i < l->nidx; i++) {
        memcpy(h.dbs[i].dbid, l->by_idx[i]->db->dbid, LS_DBID_LEN);
        h.dbs[i].name = ls_proto_str(l->by_idx[i]->db->cfg->name);
    }
    int rc = ls_proto_welcome_check(&h, w, true, msg, sizeof(msg));
    if (rc == 0 && (w->features & LS_FEAT_ZSTD) &&
        ls_conn_set_compression(l->conn, ls_proto_zstd_level(w->zstd_level)) != 0) {
        snprintf(msg, sizeof(msg), "WELCOME names zstd level %d, which zstd does not have",
                 w->zstd_level);
        rc = LS_EPROTO;
    }
    if (rc == 0) return true;
    snprintf(l->last_error, sizeof(l->last_error), "%s broke the protocol: %.400s", l->cfg->name,
             msg);
    LS_LOGE("link", "%s: closing", l->last_error);
    ls_conn_close(l->conn);
    return false;
}

static void on_welcome(link_t *l, const ls_proto_welcome_t *w)
{
    if (!welcome_ok(l, w)) return;
    l->ready = true;
    l->backoff_ms = NODE_BACKOFF_MIN;
    l->connects++;
    l->version = w->version;
    ls__node_np_welcome(l);
    /* The receiver's windows: the connection's here, each database's in its machine. */
    l->conn_window = l->conn_credit =
        w->conn_window ? w->conn_window : LS_PROTO_CONN_WINDOW_DEFAULT;
    /* Version 3: what this node knows of each database's epochs, before any other frame of it
     * (the target's EPOCH may fence a machine: ls_ship_on_frame). */
    for (int i = 0; i < l->nidx && l->version >= LS_PROTO_VERSION_EPOCH; i++)
        ls__node_epoch_send(l->node, l->conn, l->by_idx[i]->db->dbid, l->by_idx[i]->db->cfg->name);
    bool block = l->version >= LS_PROTO_VERSION_BLOCK && (w->features & LS_FEAT_BLOCK);
    for (int i = 0; i < l->nidx; i++) {
        ls_ship_connected(l->by_idx[i]->m, &w->dbs[i], w->db_window, ls_now_ns());
        ls_ship_block_allow(l->by_idx[i]->m, block, ls_now_ns());
        ls_ship_block_tail_allow(l->by_idx[i]->m, block && (w->features & LS_FEAT_TAIL));
        ls_ship_block_next_allow(l->by_idx[i]->m, block && (w->features & LS_FEAT_NEXT));
        ls_ship_block_apply_allow(l->by_idx[i]->m, block && (w->features & LS_FEAT_APPLY));
    }
}

static shipper_t *shipper_for(link_t *l, const uint8_t *dbid)
{
    for (int i = 0; i < l->nidx; i++)
        if (!memcmp(l->by_idx[i]->db->dbid, dbid, LS_DBID_LEN)) return l->by_idx[i];
    return NULL;
}

static bool zero_id(const uint8_t *id)
{
    static const uint8_t z[LS_DBID_LEN];
    return memcmp(id, z, LS_DBID_LEN) == 0;
}

/* A frame for one database of the connection (f carries its id), handed to its shipper. false
 * when the link is done with it: the frame was refused (closed) or names no database here. */
static bool on_db_frame(link_t *l, const ls_frame_t *f)
{
    const uint8_t *id = ls__node_frame_dbid(f, true);
    shipper_t *s = id ? shipper_for(l, id) : NULL;
    if (!s) {
        LS_LOGW("link", "%s sent %s for a database not on this connection", l->cfg->name,
                ls_frame_type_name(f->type));
        return false;
    }
    if (f->type == LS_FRAME_EPOCH && l->version < LS_PROTO_VERSION_EPOCH) {
        LS_LOGE("link", "%s sent EPOCH on a version %u connection: closing", l->cfg->name,
                (unsigned) l->version);
        ls_conn_close(l->conn);
        return false;
    }
    if (f->type == LS_FRAME_EPOCH) ls__node_epoch_note(s->db, &f->epoch);
    if (f->type == LS_FRAME_RE_OFFER && l->version < LS_PROTO_VERSION_REOFFER) {
        LS_LOGW("link", "%s sent RE_OFFER on a version %u connection: ignored", l->cfg->name,
                (unsigned) l->version);
    } else if (f->type == LS_FRAME_BLOCK_ACK && l->version < LS_PROTO_VERSION_BLOCK) {
        LS_LOGE("link", "%s sent BLOCK_ACK on a version %u connection: closing", l->cfg->name,
                (unsigned) l->version);
        ls_conn_close(l->conn);
        return false;
    } else if (f->type != LS_FRAME_CREDIT) {
        ls_ship_on_frame(s->m, f, ls_now_ns());
        /* Synchronous commit waits on what the copies hold (the control page). */
        if (f->type == LS_FRAME_BLOCK_ACK || f->type == LS_FRAME_DURABLE ||
            f->type == LS_FRAME_REPLAYED)
            ls__node_bw_publish_copies(s->db);
    } else if (ls_ship_credit(s->m, f->credit.bytes)) {
        LS_LOGE("link", "%s granted %s credit it never received", l->cfg->name, s->db->cfg->name);
        ls_conn_close(l->conn);
        return false;
    }
    return true;
}

static void on_frame(ls_conn_t *c, const ls_conn_frame_t *fr)
{
    link_t *l = ls_conn_data(c);
    ls_frame_t f;
    char err[256];
    if (c != l->conn) { /* a probe: the target says nothing before HELLO */
        LS_LOGD("link", "%s sent %s on a probe connection: ignored", l->cfg->name,
                ls_frame_type_name(fr->type));
        return;
    }
    if (ls_frame_decode(fr->bytes, LS_FRAME_HEADER_SIZE + fr->body_len, &f, err, sizeof(err))) {
        LS_LOGE("link", "bad frame from %s: %s", l->cfg->name, err);
        ls_conn_close(c);
        return;
    }
    if (f.type == LS_FRAME_WELCOME && !l->ready) {
        on_welcome(l, &f.welcome);
    } else if (f.type == LS_FRAME_ERROR && zero_id(f.error.dbid)) {
        /* Not a network failure: on_close retries the same network after the backoff. A
         * transient code (a seed asking us to come back) is no error worth shouting about. */
        snprintf(l->last_error, sizeof(l->last_error), "%s refused the connection: %.*s",
                 l->cfg->name, (int) f.error.message.len, f.error.message.ptr);
        ls_log(ls_err_is_transient(f.error.code) ? LS_LOG_INFO : LS_LOG_ERROR, "link", "%s (%s)",
               l->last_error, ls_err_name(f.error.code));
        ls_conn_close(c);
        return;
    } else if (!l->ready) {
        LS_LOGE("link", "%s sent %s before WELCOME", l->cfg->name, ls_frame_type_name(f.type));
        ls_conn_close(c);
        return;
    } else if (f.type == LS_FRAME_SWITCHOVER_DONE) { /* switchover.c */
        if (l->version < LS_PROTO_VERSION_SWITCHOVER) {
            LS_LOGE("link", "%s sent SWITCHOVER_DONE on a version %u connection: closing",
                    l->cfg->name, (unsigned) l->version);
            ls_conn_close(c);
            return;
        }
        ls__node_switchover_done(l, &f.switchover_done);
        return;
    } else if (f.type == LS_FRAME_CREDIT && zero_id(f.credit.dbid)) {
        if (f.credit.bytes > l->conn_window - l->conn_credit) { /* never received */
            LS_LOGE("link", "%s granted connection credit it never received", l->cfg->name);
            ls_conn_close(c);
            return;
        }
        l->conn_credit += f.credit.bytes;
    } else if (!on_db_frame(l, &f)) {
        return;
    }
    ls__node_link_pump(l);
}

static void on_drain(ls_conn_t *c)
{
    link_t *l = ls_conn_data(c);
    if (c == l->conn) ls__node_link_pump(l);
}

/* Forgets the data connection (already closing or to be closed by the caller); switching: to
 * another network at once. */
static void drop_conn(link_t *l, bool switching, const char *reason)
{
    l->conn = NULL;
    l->ready = false;
    l->conn_credit = 0;
    for (int i = 0; i < l->nshippers; i++)
        ls_ship_disconnected(l->shippers[i]->m, switching, reason, ls_now_ns());
}

static void on_close(ls_conn_t *c, int status, const char *msg)
{
    link_t *l = ls_conn_data(c);
    if (c != l->conn) { /* a probe, or a data connection the link already left */
        ls__node_np_probe_closed(l, c, status, msg);
        return;
    }
    if (status) snprintf(l->last_error, sizeof(l->last_error), "%s", msg);
    drop_conn(l, false, l->last_error[0] ? l->last_error : "connection closed");
    if (l->node->stopping) return;
    if (status) {
        /* The network failed: the next one at once (ls__node_link_kick); the target resumes from
         * its RESUME position on the new connection. */
        LS_LOGW("link", "connection to %s over network %s ended: %s", l->cfg->name,
                l->cfg->nets[l->net].name, msg);
        ls__node_np_failed(l, l->net, msg);
        ls__node_link_kick(l);
    } else {
        ls__node_np_closed(l);
        schedule_retry(l); /* we closed it (a protocol error): same network, after a pause */
    }
}

int ls__node_link_connect(link_t *l, int net, ls_conn_t **out)
{
    ls_conn_opts_t cb = {.on_ready = on_ready,
                         .on_frame = on_frame,
                         .on_drain = on_drain,
                         .on_close = on_close,
                         .data = l,
                         .send_hwm = l->cfg->compression_level > 0 ? 0 : NODE_LINK_SEND_HWM};
    return ls__node_connect(l->node, l->cfg, net, true, &cb, out);
}

static bool anything_to_ship(link_t *l)
{
    for (int i = 0; i < l->nshippers; i++)
        if (l->shippers[i]->db->have_dbid && !l->shippers[i]->db->fenced) return true;
    return false;
}

/* Every network failed in this round: the copies say so, network by network; retry later. */
static void all_down(link_t *l)
{
    char errs[NODE_REASON_MAX];
    ls__node_np_errors(l, errs, sizeof(errs));
    snprintf(l->last_error, sizeof(l->last_error), "no network reaches %s: %.400s", l->cfg->name,
             errs);
    for (int i = 0; i < l->nshippers; i++) {
        ls_ship_t *m = l->shippers[i]->m;
        if (ls_ship_state(m) == LS_SHIP_DISCONNECTED || ls_ship_state(m) == LS_SHIP_INITIALIZING)
            ls_ship_disconnected(m, false, l->last_error, ls_now_ns());
    }
    schedule_retry(l);
}

void ls__node_link_kick(link_t *l)
{
    if (l->conn || l->node->stopping || uv_is_active((uv_handle_t *) &l->retry)) return;
    if (!anything_to_ship(l)) return;
    for (;;) {
        ls_conn_t *adopt = NULL;
        int net = ls__node_np_choose(l, &adopt);
        if (net < 0) {
            all_down(l);
            return;
        }
        l->net = net;
        if (adopt) { /* a probe over net is up: it becomes the data connection */
            l->conn = adopt;
            data_ready(l);
            return;
        }
        int rc = ls__node_link_connect(l, net, &l->conn);
        if (!rc) return;
        const ls_cfg_network_t *nw = &l->cfg->nets[net];
        snprintf(l->last_error, sizeof(l->last_error), "cannot connect to %s:%u: %s",
                 nw->remote.host, nw->remote.port, ls_strerror(rc));
        ls__node_np_failed(l, net, l->last_error);
    }
}

void ls__node_link_switch(link_t *l, int net, ls_conn_t *conn, const char *why)
{
    if (l->conn) {
        ls_conn_t *old = l->conn;
        drop_conn(l, true, why);
        ls_conn_close(old); /* its on_close finds it is no longer l->conn */
    }
    uv_timer_stop(&l->retry);
    l->backoff_ms = NODE_BACKOFF_MIN;
    l->net = net;
    if (conn) {
        l->conn = conn;
        data_ready(l);
    } else {
        ls__node_link_kick(l);
    }
}

static int idx_of(link_t *l, const shipper_t *s)
{
    for (int i = 0; i < l->nidx; i++)
        if (l->by_idx[i] == s) return i;
    return -1;
}

/* One BLOCK chunk, likewise. */
static int send_block(link_t *l, const ls_frame_t *f)
{
    uint8_t head[128];
    ssize_t hn = ls_frame_encode_head(f, head, sizeof(head));
    LS_CHECK(hn > LS_FRAME_HEADER_SIZE);
    size_t fields = (size_t) hn - LS_FRAME_HEADER_SIZE;
    struct iovec iov[2] = {{head + LS_FRAME_HEADER_SIZE, fields},
                           {(void *) f->block.data, f->block.len}};
    return ls_conn_sendv(l->conn, LS_FRAME_BLOCK, iov, 2);
}

/* One GEN_DATA chunk of database i, sent from where it lies (the transport copies it and, with
 * compression, has its zstd worker compress it, in order). */
static int send_data(link_t *l, int i, const ls_frame_t *f)
{
    const ls_proto_gen_data_t *d = &f->gen_data;
    uint8_t head[128];
    ssize_t hn = ls_frame_encode_head(f, head, sizeof(head));
    LS_CHECK(hn > LS_FRAME_HEADER_SIZE);
    size_t fields = (size_t) hn - LS_FRAME_HEADER_SIZE;
    struct iovec iov[2] = {{head + LS_FRAME_HEADER_SIZE, fields}, {(void *) d->data, d->len}};
    int rc = ls_conn_sendv(l->conn, LS_FRAME_GEN_DATA, iov, 2);
    if (rc == 0) ls__node_np_sent(l, l->by_idx[i], d->generation, d->offset, d->len);
    return rc;
}

int ls__node_link_send(link_t *l, shipper_t *s, const ls_frame_t *f)
{
    if (!l->conn || !l->ready) return LS_ECLOSED;
    int i = idx_of(l, s);
    if (i < 0) return LS_ECLOSED; /* not on this connection */
    if (f->type == LS_FRAME_GEN_DATA) return send_data(l, i, f);
    if (f->type == LS_FRAME_BLOCK) return send_block(l, f);
    return ls__node_send(l->conn, f);
}

/* Sends as much as credit and the socket allow: each database's machine sends its GEN_BEGIN /
 * GEN_END and control frames, then GEN_DATA chunks go round-robin between databases, one per
 * turn, within the connection's credit (each machine keeps its database's). */
void ls__node_link_pump(link_t *l)
{
    if (!l->conn || !l->ready) return;
    uint64_t now = ls_now_ns();
    for (int i = 0; i < l->nidx && l->conn; i++)
        ls_ship_pump(l->by_idx[i]->m, now); /* LS_EBUSY: the chunk loop finds out too */
    bool progress = true;
    while (progress) {
        progress = false;
        for (int k = 0; k < l->nidx; k++) {
            if (!l->conn || !l->conn_credit) return;
            shipper_t *s = l->by_idx[l->rr];
            l->rr = (l->rr + 1) % l->nidx;
            int64_t n = ls_ship_send_chunk(s->m, LS_MIN(NODE_CHUNK, l->conn_credit), now);
            if (n < 0) return; /* socket full (on_drain pumps again) or closing */
            if (n > 0) {
                l->conn_credit -= (uint64_t) n;
                progress = true;
            }
        }
    }
}

void ls__node_link_close(link_t *l)
{
    uv_timer_stop(&l->retry);
    uv_close((uv_handle_t *) &l->retry, NULL);
    ls__node_wake_close(&l->wake, NULL);
    ls__node_np_close(l);
    if (l->conn) ls_conn_close(l->conn);
}
