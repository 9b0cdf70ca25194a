/* A peer: a connection accepted from a source node. Its HELLO names the databases it ships; each
 * is matched with a configured passive copy of that source and answered in WELCOME; the frames
 * of each database then go to its copy's machine (engine/passive), which tells the source where
 * the copy stands (RESUME), answers, and feeds the GEN frames to the copy's receiver thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/node_int.h"
#include "node/resync_switchover_int.h"

void ls_node_accept(ls_listener_t *l, ls_conn_t *conn)
{
    ls_node_t *n = ls_listener_data(l);
    peer_t *p = calloc(1, sizeof(*p));
    if (!p) {
        ls_conn_close(conn);
        return;
    }
    p->node = n;
    p->conn = conn;
    p->id = n->next_conn_id++;
    p->next = n->peers;
    n->peers = p;
    ls_conn_set_data(conn, p);
}

static void unlink_peer(peer_t *p)
{
    for (peer_t **pp = &p->node->peers; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            return;
        }
}

void ls__node_peer_on_close(ls_conn_t *conn, int status, const char *msg)
{
    peer_t *p = ls_conn_data(conn);
    if (!p) return;
    ls__node_seed_server_close(p);
    if (status && p->name[0]) LS_LOGW("peer", "connection from %s ended: %s", p->name, msg);
    for (int i = 0; i < p->nidx; i++)
        if (p->by_idx[i] && p->by_idx[i]->peer == p) ls__node_pcopy_detach(p->by_idx[i]);
    unlink_peer(p);
    ls_credit_rx_free(p->credit);
    free(p->by_idx);
    free(p->seeding);
    free(p->dbids);
    free(p);
}

/* Matches one database of the HELLO with a passive copy; NULL with the reason when refused. */
static pcopy_t *match(peer_t *p, const ls_proto_db_t *d, pcopy_t **seeding, int *code, char *why,
                      size_t whylen)
{
    ls_node_t *n = p->node;
    char name[LS_PROTO_DBNAME_MAX + 1];
    snprintf(name, sizeof(name), "%.*s", (int) d->name.len, d->name.ptr);
    for (int i = 0; i < n->ncopies; i++) {
        pcopy_t *c = &n->copies[i];
        if (c->retired || strcmp(c->cfg->name, name) || strcmp(c->source, p->name)) continue;
        if (ls__node_seed_client_busy(c, why, whylen)) {
            *code = LS_ESTATE;
            *seeding = c; /* version 2: a RE_OFFER takes it back after the seed */
            return NULL;
        }
        *code = ls_passive_admit(c->m, d->dbid, why, whylen, ls_now_ns());
        return *code ? NULL : c;
    }
    if (ls__node_epoch_refusal(n, name, why, whylen)) { /* its EPOCH follows the WELCOME */
        *code = LS_ESTATE;
        return NULL;
    }
    *code = LS_ENOENT;
    snprintf(why, whylen, "node %s holds no passive copy of %s from %s", n->cfg->node_name, name,
             p->name);
    return NULL;
}

/* The earlier HELLO entry naming the same database as entry i (by name or by id), or -1: frames
 * and credit are keyed by the database id, so a second entry would share the first's copy and
 * credit window under another index (PROTOCOL.md, WELCOME: LS_EEXIST). */
static int duplicate_of(const ls_proto_hello_t *h, int i)
{
    const ls_proto_db_t *d = &h->dbs[i];
    for (int j = 0; j < i; j++) {
        const ls_proto_db_t *e = &h->dbs[j];
        if ((e->name.len == d->name.len &&
             (!d->name.len || !memcmp(e->name.ptr, d->name.ptr, d->name.len))) ||
            !memcmp(e->dbid, d->dbid, LS_DBID_LEN))
            return j;
    }
    return -1;
}

static bool carries(const void *ctx, const char *name)
{
    return ls_conn_peer_matches(ctx, name);
}

bool ls__node_hello_admit(peer_t *p, const ls_proto_hello_t *h, ls_proto_choice_t *choice,
                          const char *component)
{
    ls_frame_t refusal;
    char msg[256];
    ls_node_peer_cert_t cert = {.addr = ls_conn_peer(p->conn), .carries = carries, .ctx = p->conn};
    snprintf(p->name, sizeof(p->name), "%.*s", (int) h->node.len, h->node.ptr);
    int rc = ls_node_hello_admit(p->node->cfg, &cert, h, choice, &refusal, msg, sizeof(msg));
    if (rc == 0) return true;
    if (rc == LS_EAUTH)
        LS_LOGE(component, "%s: refused", msg);
    else
        LS_LOGE(component, "%s: %s", p->name, msg);
    ls__node_send(p->conn, &refusal);
    ls_conn_close(p->conn);
    return false;
}

/* The WELCOME's answer r for entry i of HELLO h, with why (which r points into) if refused. */
static void answer_db(peer_t *p, const ls_proto_hello_t *h, int i, ls_proto_db_result_t *r,
                      char *why, size_t whylen)
{
    memcpy(r->dbid, h->dbs[i].dbid, LS_DBID_LEN);
    memcpy(p->dbids[i], h->dbs[i].dbid, LS_DBID_LEN);
    LS_CHECK(ls_credit_rx_db_add(p->credit) == i);
    why[0] = '\0';
    int dup = duplicate_of(h, i);
    pcopy_t *c = NULL;
    if (dup >= 0) {
        r->code = LS_EEXIST;
        snprintf(why, whylen,
                 "HELLO from %s names database %.*s twice (entries %d and %d): entry %d refused",
                 p->name, (int) h->dbs[i].name.len, h->dbs[i].name.ptr, dup + 1, i + 1, i + 1);
    } else {
        c = match(p, &h->dbs[i], &p->seeding[i], &r->code, why, whylen);
    }
    r->status = c ? LS_DB_ACCEPTED : LS_DB_REFUSED;
    r->code = c ? 0 : r->code;
    r->reason = ls_proto_str(why);
    if (!c) LS_LOGW("peer", "%s", why);
    p->by_idx[i] = c;
}

static void on_hello(peer_t *p, const ls_proto_hello_t *h)
{
    ls_node_t *n = p->node;
    ls_proto_choice_t choice;
    if (!ls__node_hello_admit(p, h, &choice, "peer")) return;
    uint64_t dbw = n->cfg->receive_window, connw = LS_MAX(dbw * 4, LS_PROTO_CONN_WINDOW_DEFAULT);
    p->credit = ls_credit_rx_new(dbw, connw);
    p->by_idx = calloc((size_t) h->db_count + 1, sizeof(*p->by_idx));
    p->seeding = calloc((size_t) h->db_count + 1, sizeof(*p->seeding));
    p->dbids = calloc((size_t) h->db_count + 1, LS_DBID_LEN);
    LS_CHECK(p->credit && p->by_idx && p->seeding && p->dbids);
    p->nidx = h->db_count;
    p->version = choice.version;
    p->block = (choice.features & LS_FEAT_BLOCK) != 0;
    p->tail = (choice.features & LS_FEAT_TAIL) != 0;
    p->apply = (choice.features & LS_FEAT_APPLY) != 0;
    static ls_frame_t w; /* large (256 answers); the loop is single-threaded */
    static char why[LS_PROTO_DB_MAX][LS_PROTO_REASON_MAX];
    ls__node_welcome(n, &w, &choice, h->db_count);
    w.welcome.db_window = (uint32_t) dbw;
    w.welcome.conn_window = (uint32_t) connw;
    for (int i = 0; i < h->db_count; i++)
        answer_db(p, h, i, &w.welcome.dbs[i], why[i], sizeof(why[i]));
    if (ls__node_send(p->conn, &w) != 0) {
        ls_conn_close(p->conn);
        return;
    }
    p->welcomed = true;
    if (choice.features & LS_FEAT_ZSTD) {
        /* The connection's zstd worker decompresses chunks, in order (offload_compression). */
        if (ls_conn_set_compression(p->conn, choice.zstd_level) != 0) {
            LS_LOGE("peer", "%s: cannot start decompression: out of memory", p->name);
            ls_conn_close(p->conn);
            return;
        }
    }
    /* Version 3: what this node knows of each database offered, accepted or refused, before any
     * other frame of it (an old active learns it was fenced; a copy that is behind is simply
     * shipped to). */
    for (int i = 0; i < h->db_count && choice.version >= LS_PROTO_VERSION_EPOCH; i++) {
        if (duplicate_of(h, i) >= 0) continue;
        char name[LS_PROTO_DBNAME_MAX + 1];
        snprintf(name, sizeof(name), "%.*s", (int) h->dbs[i].name.len, h->dbs[i].name.ptr);
        ls__node_epoch_send(n, p->conn, h->dbs[i].dbid, name);
    }
    LS_LOGI("peer", "%s connected from %s%s, %u database(s)", p->name, ls_conn_peer(p->conn),
            ls_conn_is_tls(p->conn) ? " (TLS)" : " (plaintext)", h->db_count);
    for (int i = 0; i < p->nidx; i++)
        if (p->by_idx[i]) ls__node_pcopy_attach(p->by_idx[i], p, i);
}

static int index_of(peer_t *p, const uint8_t *dbid)
{
    for (int i = 0; i < p->nidx; i++)
        if (!memcmp(p->dbids[i], dbid, LS_DBID_LEN)) return p->by_idx[i] ? i : -1;
    return -1;
}

/* A frame for one database (by its id) goes to its copy's machine (engine/passive), when this
 * connection serves that copy. */
static void to_copy(peer_t *p, const ls_frame_t *f, const uint8_t *dbid)
{
    int i = index_of(p, dbid);
    pcopy_t *c = i >= 0 ? p->by_idx[i] : NULL;
    if (f->type == LS_FRAME_EPOCH && p->version < LS_PROTO_VERSION_EPOCH) {
        LS_LOGE("peer", "%s sent EPOCH on a version %u connection: closing", p->name,
                (unsigned) p->version);
        ls_conn_close(p->conn);
        return;
    }
    if (f->type == LS_FRAME_BLOCK && !p->block) {
        LS_LOGE("peer", "%s sent BLOCK on a connection without block mode: closing", p->name);
        ls_conn_close(p->conn);
        return;
    }
    if (f->type == LS_FRAME_GEN_TAIL && !p->tail) {
        LS_LOGE("peer", "%s sent GEN_TAIL on a connection without it: closing", p->name);
        ls_conn_close(p->conn);
        return;
    }
    if (f->type == LS_FRAME_EPOCH && !c) { /* a database this node may ship: its machines */
        ls__node_epoch_learn(p->node, &f->epoch);
        return;
    }
    if (!c || c->peer != p) {
        if (f->type == LS_FRAME_ERROR)
            LS_LOGE("peer", "%s: %.*s", p->name, (int) f->error.message.len, f->error.message.ptr);
        else if (f->type != LS_FRAME_COPY_STATE)
            LS_LOGW("peer", "%s sent %s for a database it may not ship here", p->name,
                    ls_frame_type_name(f->type));
        return;
    }
    if (f->type == LS_FRAME_COPY_STATE) {
        ls__node_announced_set(c, &f->copy_state);
        ls_conn_stats_t st;
        ls_conn_stats(p->conn, &st);
        ls_passive_clock_offset(c->m, st.clock_offset_ns);
    }
    if (f->type == LS_FRAME_BLOCK) /* the old active's open generation, as far as it streamed it */
        ls__node_announced_block(c, f->block.generation, f->block.durable_lsn);
    if (ls_passive_on_frame(c->m, f, ls_now_ns()) == LS_EPROTO) {
        LS_LOGE("peer", "%s ignored the credit window for %s: closing", p->name, c->cfg->name);
        ls_conn_close(p->conn);
    }
}

/* One frame (header + plain body) from the connection, in its order. */
static void dispatch(peer_t *p, ls_conn_t *conn, const uint8_t *bytes, size_t len)
{
    ls_frame_t f;
    char err[256];
    if (ls_frame_decode(bytes, len, &f, err, sizeof(err))) {
        LS_LOGE("peer", "bad frame from %s: %s", ls_conn_peer(conn), err);
        ls_conn_close(conn);
        return;
    }
    if (p->seed ||
        (!p->welcomed && f.type == LS_FRAME_HELLO && f.hello.purpose == LS_PURPOSE_SEED)) {
        ls__node_seed_server_frame(p, &f); /* a seed connection (seed_server.c) */
        return;
    }
    if (!p->welcomed) {
        if (f.type == LS_FRAME_HELLO && f.hello.purpose == LS_PURPOSE_SHIP) {
            on_hello(p, &f.hello);
        } else {
            LS_LOGE("peer", "%s sent %s before HELLO: closing", ls_conn_peer(conn),
                    ls_frame_type_name(f.type));
            ls_conn_close(conn);
        }
        return;
    }
    if (f.type == LS_FRAME_SWITCHOVER) { /* switchover.c */
        if (p->version < LS_PROTO_VERSION_SWITCHOVER) {
            LS_LOGE("peer", "%s sent SWITCHOVER on a version %u connection: closing", p->name,
                    (unsigned) p->version);
            ls_conn_close(conn);
        } else {
            ls__node_switchover_frame(p, &f.switchover);
        }
        return;
    }
    const uint8_t *id = ls__node_frame_dbid(&f, false);
    if (id)
        to_copy(p, &f, id);
    else
        LS_LOGW("peer", "%s sent an unexpected %s frame", p->name, ls_frame_type_name(f.type));
}

void ls__node_peer_on_frame(ls_conn_t *conn, const ls_conn_frame_t *fr)
{
    dispatch(ls_conn_data(conn), conn, fr->bytes, LS_FRAME_HEADER_SIZE + fr->body_len);
}

void ls__node_peer_close_all(ls_node_t *n)
{
    for (peer_t *p = n->peers; p; p = p->next)
        ls_conn_close(p->conn);
}
