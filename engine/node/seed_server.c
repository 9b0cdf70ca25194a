/* The seed server: the active side of `logship seed` (docs/SEED.md, "The daemon").
 *
 * A passive node connects to one of this node's [listen] addresses and says HELLO with purpose
 * SEED for one database (peer.c hands the connection here). We check that the database is active
 * here and that the node is one of its targets, answer WELCOME, and start engine/seed's snapshot
 * worker (ls_seed_worker_t: the snapshot and its reads on a thread of its own, never the loop).
 * engine/seed's server session (ls_seed_server_t) turns the worker's events and the client's
 * CREDIT into SEED_BEGIN, SEED_DATA, SEED_END or ERROR; this file is the adapter: it moves the
 * worker's events to the session and the session's frames to the connection (whose zstd worker
 * compresses SEED_DATA when compression was agreed), and keeps the log retention.
 *
 * Log retention: from the moment the seed is accepted the target's shipping machine holds 1
 * (nothing may be removed while the snapshot is taken), then N (the generation the copy will ask
 * for). A seed that ends before its stream went out releases it; one whose stream went out whole
 * keeps N until the target reports replayed-synced past N (its old positions are forgotten then:
 * the copy was replaced).
 *
 * Incremental resync (docs/ACTIVATION.md): a seed HELLO offering LS_FEAT_RESYNC at version >= 4
 * is accepted with it; the session then waits for the client's requests: its CHAIN_REQ is
 * answered from this node's closed generations (ls_seed_chain, trailers only, on the loop) and
 * its epoch (ls_role_epoch_info), its RESYNC starts the worker with the keys asked.
 *
 * Threading: everything here runs on the loop; the worker's thread only calls notify. The session
 * is freed once its connection closed and its worker ended. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/node_int.h"
#include "seed/session.h"

#define SS_RETRY_MS 20 /* the socket was full: try again after this */

struct node_seeds {
    ls_node_t *node;
    peer_t *peer;    /* NULL once the connection closed */
    active_t *db;    /* the database seeded */
    shipper_t *ship; /* the (database, client node) shipper: its log retention */
    char client[LS_PROTO_NODE_MAX + 1];
    ls_seed_server_t *ss; /* the protocol (engine/seed) */
    ls_seed_worker_t *w;  /* the snapshot thread (engine/seed); NULL until started */
    ls_node_wake_t wake;  /* worker -> loop (wake.c) */
    uv_timer_t retry;     /* socket full, or a log removal peeking at the store */
    int handles;          /* handles not yet closed */
    bool snapshotting;    /* counted in db->seed_snapshots: the store is open for the snapshot */
    bool resync;          /* LS_FEAT_RESYNC accepted: the worker waits for the client's RESYNC */
    bool xxh;             /* LS_FEAT_SEEDXXH accepted: the stream's check is XXH3-128 */
    bool resync_asked;    /* ... which came: resync_req is the worker's */
    ls_seed_resync_req_t resync_req; /* its keys borrowed from ss (the worker copies them) */
    uint64_t start_ns;               /* monotonic, when accepted */
};

static void notify(void *ctx)
{
    struct node_seeds *s = ctx;
    ls__node_wake_send(&s->wake);
}

static void release(void *ctx, void *data)
{
    struct node_seeds *s = ctx;
    ls_seed_worker_release(s->w, data);
}

static void handle_closed(struct node_seeds *s)
{
    if (--s->handles > 0) return;
    free(s);
}

static void on_retry_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

static void on_wake_closed(void *data)
{
    handle_closed(data);
}

/* The worker is done with the store's environment (it returned from ls_seed_snapshot_new). */
static void snapshot_over(struct node_seeds *s)
{
    if (!s->snapshotting) return;
    s->snapshotting = false;
    s->db->seed_snapshots--;
}

/* Frees the session once both its connection and its worker are gone. */
static void maybe_free(struct node_seeds *s)
{
    bool exited = !s->w || ls_seed_worker_exited(s->w);
    if (exited) snapshot_over(s);
    if (s->peer || !exited || s->handles != 2) return;
    ls_seed_server_free(s->ss); /* gives its chunks back to the worker: first */
    s->ss = NULL;
    ls_seed_worker_free(s->w);
    s->w = NULL;
    ls__node_wake_close(&s->wake, on_wake_closed);
    uv_close((uv_handle_t *) &s->retry, on_retry_closed);
}

static void on_retry(uv_timer_t *t);

/* One SEED_DATA, sent from where the chunk lies (the transport copies it). */
static int send_data(struct node_seeds *s, const ls_frame_t *f)
{
    uint8_t head[64];
    ssize_t hn = ls_frame_encode_head(f, head, sizeof(head));
    LS_CHECK(hn > LS_FRAME_HEADER_SIZE);
    struct iovec iov[2] = {{head + LS_FRAME_HEADER_SIZE, (size_t) hn - LS_FRAME_HEADER_SIZE},
                           {(void *) f->seed_data.data, f->seed_data.len}};
    return ls_conn_sendv(s->peer->conn, LS_FRAME_SEED_DATA, iov, 2);
}

/* What the node does once a frame went out: log retention and the log. */
static void after_sent(struct node_seeds *s, uint8_t type)
{
    const ls_seed_info_t *info = ls_seed_server_info(s->ss);
    shipper_t *sh = s->ship;
    if (type == LS_FRAME_RESYNC_BEGIN) {
        ls_ship_seed_hold(sh->m, info->generation);
        LS_LOGI("seed",
                "%s -> %s: incremental resync from generation %llu: %llu key(s), %llu bytes "
                "(the store holds %llu); the copy will ask for generation %llu",
                s->db->cfg->name, s->client, (unsigned long long) info->split_generation,
                (unsigned long long) info->keys, (unsigned long long) info->total_bytes,
                (unsigned long long) info->store_bytes, (unsigned long long) info->generation);
    } else if (type == LS_FRAME_SEED_BEGIN) {
        ls_ship_seed_hold(sh->m, info->generation);
        if (info->fallback[0])
            LS_LOGW("seed", "%s -> %s: resync asked, a full seed taken: %s", s->db->cfg->name,
                    s->client, info->fallback);
        LS_LOGI("seed",
                "%s -> %s: snapshot of %llu bytes (lsn %llu); the copy will ask for generation "
                "%llu",
                s->db->cfg->name, s->client, (unsigned long long) info->total_bytes,
                (unsigned long long) info->last_lsn, (unsigned long long) info->generation);
    } else if (type == LS_FRAME_SEED_END) {
        /* The copy is being replaced: what the target said about the old one no longer holds. */
        ls_ship_seed_sent(sh->m);
        LS_LOGI("seed",
                "%s -> %s: %llu bytes sent in %.1f s; generation %llu and later are kept until "
                "the copy has replayed them",
                s->db->cfg->name, s->client, (unsigned long long) ls_seed_server_bytes_sent(s->ss),
                (double) (ls_mono_ns() - s->start_ns) / 1e9,
                (unsigned long long) ls_ship_seed_needs(sh->m));
    } else if (type == LS_FRAME_ERROR) {
        LS_LOGE("seed", "%s -> %s: %s", s->db->cfg->name, s->client,
                ls_seed_server_error(s->ss, NULL)); /* the client fails the seed and closes */
    }
}

/* Sends what the session has, as credit and the socket allow. */
static void pump(struct node_seeds *s)
{
    ls_frame_t f;
    while (s->peer && ls_seed_server_next(s->ss, &f)) {
        int rc = f.type == LS_FRAME_SEED_DATA ? send_data(s, &f) : ls__node_send(s->peer->conn, &f);
        if (rc == LS_EBUSY) uv_timer_start(&s->retry, on_retry, SS_RETRY_MS, 0);
        if (rc) return; /* full: the timer; else closing: on_close follows */
        ls_seed_server_sent(s->ss);
        after_sent(s, f.type);
    }
}

static void start_worker(struct node_seeds *s);

/* What the resync client asked (docs/ACTIVATION.md, "Incremental resync"): its chain, read from
 * the trailers of this node's closed generations (small reads, on the loop), or the resync
 * itself, which the worker takes from the store. */
static void serve_requests(struct node_seeds *s)
{
    ls_seed_server_req_t rq;
    while (ls_seed_server_request(s->ss, &rq)) {
        if (rq.kind == LS_SEED_REQ_RESYNC) {
            s->resync_req = rq.resync;
            s->resync_asked = true;
            LS_LOGI("seed", "%s -> %s: resync asked from generation %llu (%zu bytes of keys%s)",
                    s->db->cfg->name, s->client, (unsigned long long) rq.resync.split_generation,
                    rq.resync.keys_len, rq.resync.too_many ? ", too many: a full seed" : "");
            continue;
        }
        const char *dir = s->db->cfg->path, *self = s->node->cfg->node_name;
        ls_proto_link_t *links = NULL;
        size_t n = 0;
        ls_role_epoch_info_t info;
        char err[NODE_REASON_MAX];
        int rc = ls_seed_chain(dir, LS_GEN_PREFIX_DEFAULT, rq.from, LS_PROTO_CHAIN_MAX, &links, &n,
                               err, sizeof(err));
        if (rc == 0)
            rc = ls_role_epoch_info(dir, LS_GEN_PREFIX_DEFAULT, LS_ROLE_ACTIVE, self, &info, err,
                                    sizeof(err));
        if (rc == 0) rc = ls_seed_server_chain(s->ss, info.epoch, info.active, links, n);
        free(links);
        if (rc) {
            LS_LOGE("seed", "%s -> %s: cannot answer the chain asked: %s: closing",
                    s->db->cfg->name, s->client, err);
            if (s->peer) ls_conn_close(s->peer->conn);
            return;
        }
        LS_LOGI("seed", "%s -> %s: chain from generation %llu: %zu generation(s), epoch %u of %s",
                s->db->cfg->name, s->client, (unsigned long long) rq.from, n, info.epoch,
                info.active);
    }
}

static void step(struct node_seeds *s)
{
    if (!s->peer) return;
    if (!s->w) {
        if (s->resync && !s->resync_asked) {
            serve_requests(s);
            pump(s);
        }
        if (!s->resync || s->resync_asked) start_worker(s);
        return;
    }
    ls_seed_wev_t ev;
    while (ls_seed_worker_poll(s->w, &ev)) {
        /* a stream from the compaction keeps the store open until its end */
        if ((ev.kind == LS_SEED_WEV_INFO && !ev.store_open) || ev.kind == LS_SEED_WEV_END ||
            ev.kind == LS_SEED_WEV_FAIL)
            snapshot_over(s);
        ls_seed_server_feed(s->ss, &ev);
    }
    pump(s);
}

static void on_wake(void *data)
{
    struct node_seeds *s = data;
    step(s);
    maybe_free(s);
}

static void on_retry(uv_timer_t *t)
{
    step(t->data);
}

/* Answers HELLO with a WELCOME of one entry; returns the shipper when accepted. */
static shipper_t *admit(peer_t *p, const ls_proto_hello_t *h, active_t **db, int *code, char *why,
                        size_t whylen)
{
    ls_node_t *n = p->node;
    static const uint8_t zero[LS_DBID_LEN];
    char name[LS_PROTO_DBNAME_MAX + 1];
    snprintf(name, sizeof(name), "%.*s", (int) h->dbs[0].name.len, h->dbs[0].name.ptr);
    *db = NULL;
    for (int i = 0; i < n->nactives; i++)
        if (!strcmp(n->actives[i].cfg->name, name)) *db = &n->actives[i];
    active_t *a = *db;
    *code = LS_ENOENT;
    if (!a) {
        snprintf(why, whylen, "node %s holds no active database %s to seed from", n->cfg->node_name,
                 name);
        return NULL;
    }
    if (!a->have_dbid) {
        *code = LS_ESTATE;
        snprintf(why, whylen, "database %s on %s has no log yet: nothing to seed from", name,
                 n->cfg->node_name);
        return NULL;
    }
    if (memcmp(h->dbs[0].dbid, zero, LS_DBID_LEN) && memcmp(h->dbs[0].dbid, a->dbid, LS_DBID_LEN)) {
        *code = LS_EDBID;
        snprintf(why, whylen, "the copy on %s belongs to another database than %s here", p->name,
                 name);
        return NULL;
    }
    for (int i = 0; i < a->nshippers; i++) {
        shipper_t *sh = &a->shippers[i];
        if (strcmp(sh->link->cfg->name, p->name)) continue;
        if (ls_ship_seed_busy(sh->m)) {
            *code = LS_EBUSY;
            snprintf(why, whylen, "a seed of %s for %s is already under way", name, p->name);
            return NULL;
        }
        *code = 0;
        return sh;
    }
    snprintf(why, whylen, "%s is not a target of %s on %s: only a target may be seeded", p->name,
             name, n->cfg->node_name);
    return NULL;
}

static void on_hello(peer_t *p, const ls_proto_hello_t *h)
{
    ls_node_t *n = p->node;
    char msg[NODE_REASON_MAX];
    ls_proto_choice_t choice;
    if (!ls__node_hello_admit(p, h, &choice, "seed")) return;
    active_t *a;
    int code;
    shipper_t *sh = admit(p, h, &a, &code, msg, sizeof(msg));
    static ls_frame_t w; /* large; the loop is single-threaded */
    ls__node_welcome(n, &w, &choice, 1);
    memcpy(w.welcome.dbs[0].dbid, a && a->have_dbid ? a->dbid : h->dbs[0].dbid, LS_DBID_LEN);
    w.welcome.dbs[0].status = sh ? LS_DB_ACCEPTED : LS_DB_REFUSED;
    w.welcome.dbs[0].code = code;
    w.welcome.dbs[0].reason = ls_proto_str(sh ? "" : msg);
    if (!sh) LS_LOGW("seed", "seed refused: %s", msg);
    int rc = ls__node_send(p->conn, &w);
    p->welcomed = true;
    if (!sh) return; /* the client closes after reading the refusal */
    if (rc) {
        ls_conn_close(p->conn);
        return;
    }
    if ((choice.features & LS_FEAT_ZSTD) &&
        ls_conn_set_compression(p->conn, choice.zstd_level) != 0) { /* its zstd worker */
        LS_LOGE("seed", "%s: cannot start compression: out of memory", p->name);
        ls_conn_close(p->conn);
        return;
    }
    struct node_seeds *s = calloc(1, sizeof(*s));
    LS_CHECK(s != NULL);
    int wrc = ls__node_wake_init(n->loop, &s->wake, on_wake, s);
    if (wrc != 0) { /* out of descriptors: this seed fails, the daemon serves on */
        LS_LOGE("seed", "%s: cannot serve the seed of %s: cannot make its wake-up: %s", p->name,
                a->cfg->name, strerror(wrc));
        free(s);
        ls_conn_close(p->conn);
        return;
    }
    s->node = n;
    s->peer = p;
    s->db = a;
    s->ship = sh;
    snprintf(s->client, sizeof(s->client), "%s", p->name);
    s->resync = (choice.features & LS_FEAT_RESYNC) != 0;
    s->xxh = (choice.features & LS_FEAT_SEEDXXH) != 0;
    ls_seed_server_options_t so = {.db_window = h->db_window,
                                   .conn_window = h->conn_window,
                                   .chunk_max = NODE_CHUNK,
                                   .release = release,
                                   .release_ctx = s,
                                   .resync = s->resync};
    LS_CHECK(ls_seed_server_new(&so, a->dbid, &s->ss) == 0);
    s->start_ns = ls_mono_ns();
    uv_timer_init(n->loop, &s->retry);
    s->retry.data = s;
    s->handles = 2;
    p->seed = s;
    ls_ship_seed_hold(sh->m, 0); /* nothing is removed while the snapshot is taken */
    LS_LOGI("seed", "%s asks for %s of %s (%s%s)%s", p->name,
            s->resync ? "an incremental resync" : "a seed", a->cfg->name, ls_conn_peer(p->conn),
            ls_conn_is_tls(p->conn) ? ", TLS" : ", plaintext",
            s->resync ? ": waiting for its chain request" : ": taking a snapshot");
    if (!s->resync) start_worker(s);
}

/* Starts the snapshot, once no log removal is peeking at the store: LMDB's locks are per process,
 * and an environment closed elsewhere in the process would drop the snapshot's reader lock. */
static void start_worker(struct node_seeds *s)
{
    if (ls_seed_server_state(s->ss) == LS_SEED_SRV_FAILED) return;
    if (s->db->removing) {
        uv_timer_start(&s->retry, on_retry, SS_RETRY_MS, 0);
        return;
    }
    s->db->seed_snapshots++;
    s->snapshotting = true;
    ls_seed_worker_options_t o = {.db_dir = s->db->cfg->path,
                                  .chunk = NODE_CHUNK,
                                  .notify = notify,
                                  .ctx = s,
                                  .resync = s->resync ? &s->resync_req : NULL,
                                  .direct = true,
                                  .xxh = s->xxh};
    if (ls_seed_worker_start(&o, &s->w) != 0) {
        snapshot_over(s);
        ls_seed_wev_t ev = {.kind = LS_SEED_WEV_FAIL, .code = LS_ENOMEM};
        snprintf(ev.msg, sizeof(ev.msg), "cannot start the snapshot thread");
        ls_seed_server_feed(s->ss, &ev);
        pump(s);
    }
}

void ls__node_seed_server_frame(peer_t *p, const ls_frame_t *f)
{
    struct node_seeds *s = p->seed;
    if (!p->welcomed) {
        on_hello(p, &f->hello);
        return;
    }
    if (!s) { /* refused: only the client's close is expected */
        LS_LOGW("seed", "%s sent %s after a refused seed: closing", p->name,
                ls_frame_type_name(f->type));
        ls_conn_close(p->conn);
        return;
    }
    if (f->type == LS_FRAME_HEARTBEAT) return;
    char err[NODE_REASON_MAX];
    int rc = ls_seed_server_frame(s->ss, f, err, sizeof(err));
    if (rc == 0) {
        step(s);
        return;
    }
    ls_log(rc == LS_ECLOSED ? LS_LOG_WARN : LS_LOG_ERROR, "seed", "%s -> %s: %s: closing",
           s->db->cfg->name, p->name, err);
    ls_conn_close(p->conn);
}

void ls__node_seed_server_close(peer_t *p)
{
    struct node_seeds *s = p->seed;
    if (!s) return;
    p->seed = NULL;
    s->peer = NULL;
    uv_timer_stop(&s->retry);
    if (ls_seed_server_state(s->ss) != LS_SEED_SRV_ENDED) {
        ls_ship_seed_abort(s->ship->m); /* the seed did not go out: it needs nothing */
        LS_LOGW("seed", "%s -> %s: seed connection ended after %llu bytes", s->db->cfg->name,
                s->client, (unsigned long long) ls_seed_server_bytes_sent(s->ss));
    } else {
        ls_conn_stats_t cs;
        ls_conn_stats(p->conn, &cs);
        LS_LOGI("seed",
                "%s -> %s: seed connection closed by the client (%llu bytes on the wire, "
                "%llu chunk bodies compressed on the loop)",
                s->db->cfg->name, s->client, (unsigned long long) cs.wire_bytes_sent,
                (unsigned long long) cs.zstd_loop_calls);
    }
    ls_seed_worker_stop(s->w);
    maybe_free(s);
}

uint64_t ls__node_seed_needs(active_t *a)
{
    uint64_t need = 0;
    for (int i = 0; i < a->nshippers; i++) { /* each releases a hold its target synced past */
        uint64_t n = ls_ship_seed_needs(a->shippers[i].m);
        if (n && (!need || n < need)) need = n;
    }
    return need;
}
