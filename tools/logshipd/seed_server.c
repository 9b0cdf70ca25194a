/* The seed server: the active side of `logship seed` (docs/SEED.md, "The daemon").
 *
 * A passive node connects to one of this node's [listen] addresses and says HELLO with purpose
 * SEED for one database (peer.c hands the connection here). We check that the database is active
 * here and that the node is one of its targets, answer WELCOME, and start a worker thread of the
 * session's own: it takes the snapshot (ls_seed_snapshot_new: a local compacted copy, seconds to
 * minutes, never on the loop) and reads it in chunks into a short queue. The loop sends
 * SEED_BEGIN, then SEED_DATA within the credit the client granted in its HELLO, then SEED_END,
 * and waits for the client to close.
 *
 * Log retention: from the moment the seed is accepted the target's shipper holds seed_needs = 1
 * (nothing may be removed while the snapshot is taken), then N (the generation the copy will ask
 * for). A seed that ends before its stream went out releases it; one whose stream went out whole
 * keeps N until the target reports replayed-synced past N (its old positions are forgotten then:
 * the copy was replaced).
 *
 * Threading: the worker touches only the snapshot and the fields under mu; everything else runs
 * on the loop. The session is freed once its connection closed and its worker ended. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "zwork.h"
#include "seed/seed.h"

#define SS_AHEAD    8  /* chunks the worker reads ahead of the socket (LD_CHUNK each) */
#define SS_RETRY_MS 20 /* the socket was full: try again after this */

typedef struct chunk {
    struct chunk *next;
    uint64_t offset; /* stream offset of data[0] */
    size_t len;      /* bytes in data */
    size_t sent;     /* bytes of it sent */
    bool counted;    /* added to the credit ledger's backlog */
    uint8_t data[];
} chunk_t;

struct ld_seeds {
    node_t *node;
    peer_t *peer;    /* NULL once the connection closed */
    active_t *db;    /* the database seeded */
    shipper_t *ship; /* the (database, client node) shipper: its log retention */
    char client[LS_PROTO_NODE_MAX + 1];
    ls_credit_tx_t *credit; /* the client's windows */
    struct ld_zwork *zw;    /* with compression: compresses SEED_DATA bodies off the loop */
    uv_async_t async;       /* worker -> loop */
    uv_timer_t retry;       /* socket full */
    int handles;            /* handles not yet closed */
    pthread_t thread;
    bool thread_started;
    bool begin_sent, end_sent, failed;
    bool snapshotting; /* counted in db->seed_snapshots: the store is open for the snapshot */
    uint64_t sent;     /* stream bytes sent */
    uint64_t start_ns; /* monotonic, when accepted */
    /* shared with the worker, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;                      /* the loop wants the worker gone */
    bool info_ready;                /* info is valid */
    ls_seed_info_t info;            /* what SEED_BEGIN says */
    chunk_t *head, *tail;           /* read, not yet sent */
    int nchunks;                    /* in the queue */
    bool end_ready;                 /* every byte was read: digest is valid */
    uint8_t digest[LS_DIGEST_SIZE]; /* SHA-256 of the stream */
    int code;                       /* the worker failed: LS_E* ... */
    char msg[LD_REASON_MAX];        /* ... and why */
    bool exited;                    /* the worker returned */
};

/* ---- the worker ------------------------------------------------------------------------------ */
static void *worker_main(void *arg)
{
    struct ld_seeds *s = arg;
    char err[LD_REASON_MAX] = "";
    ls_seed_snapshot_t *snap = NULL;
    LS_FAULT("seed.snapshot.before"); /* tests: "sleep:MS" lets a writer commit meanwhile */
    ls_seed_snapshot_options_t o = {.db_dir = s->db->cfg->path, .chunk_max = LD_CHUNK};
    int rc = ls_seed_snapshot_new(&o, &snap, err, sizeof(err));
    pthread_mutex_lock(&s->mu);
    if (rc == 0) {
        s->info = *ls_seed_snapshot_info(snap);
        s->info_ready = true;
    }
    pthread_mutex_unlock(&s->mu);
    uv_async_send(&s->async);
    while (rc == 0) {
        pthread_mutex_lock(&s->mu);
        while (s->nchunks >= SS_AHEAD && !s->stop)
            pthread_cond_wait(&s->cv, &s->mu);
        bool stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop) break;
        LS_FAULT("seed.server.chunk"); /* tests: "sleep:MS" paces the stream */
        chunk_t *c = malloc(sizeof(*c) + LD_CHUNK);
        if (!c) {
            rc = LS_ENOMEM;
            snprintf(err, sizeof(err), "out of memory");
            break;
        }
        memset(c, 0, sizeof(*c));
        rc = ls_seed_snapshot_read(snap, c->data, LD_CHUNK, &c->offset, &c->len);
        if (rc || c->len == 0) {
            free(c);
            if (rc) snprintf(err, sizeof(err), "cannot read the snapshot: %s", ls_strerror(rc));
            pthread_mutex_lock(&s->mu);
            if (!rc) s->end_ready = ls_seed_snapshot_digest(snap, s->digest) == 0;
            pthread_mutex_unlock(&s->mu);
            break;
        }
        pthread_mutex_lock(&s->mu);
        if (s->tail)
            s->tail->next = c;
        else
            s->head = c;
        s->tail = c;
        s->nchunks++;
        pthread_mutex_unlock(&s->mu);
        uv_async_send(&s->async);
    }
    ls_seed_snapshot_free(snap); /* removes the local copy */
    pthread_mutex_lock(&s->mu);
    if (rc) {
        s->code = rc;
        snprintf(s->msg, sizeof(s->msg), "%s", err[0] ? err : ls_strerror(rc));
    }
    s->exited = true;
    pthread_mutex_unlock(&s->mu);
    uv_async_send(&s->async);
    return NULL;
}

/* ---- the loop -------------------------------------------------------------------------------- */
static void on_handle_closed(uv_handle_t *h)
{
    struct ld_seeds *s = h->data;
    if (--s->handles > 0) return;
    while (s->head) {
        chunk_t *c = s->head;
        s->head = c->next;
        free(c);
    }
    ls_credit_tx_free(s->credit);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

/* The worker is done with the store's environment (it returned from ls_seed_snapshot_new). */
static void snapshot_over(struct ld_seeds *s)
{
    if (!s->snapshotting) return;
    s->snapshotting = false;
    s->db->seed_snapshots--;
}

/* Frees the session once both its connection and its worker are gone. */
static void maybe_free(struct ld_seeds *s)
{
    pthread_mutex_lock(&s->mu);
    bool exited = s->exited;
    pthread_mutex_unlock(&s->mu);
    if (exited) snapshot_over(s);
    if (s->peer || (s->thread_started && !exited) || s->handles != 2) return;
    if (s->thread_started) pthread_join(s->thread, NULL);
    s->thread_started = false;
    uv_close((uv_handle_t *) &s->async, on_handle_closed);
    uv_close((uv_handle_t *) &s->retry, on_handle_closed);
}

static void send_error(struct ld_seeds *s, int code, const char *msg)
{
    ls_frame_t f = {.type = LS_FRAME_ERROR};
    memcpy(f.error.dbid, s->db->dbid, LS_DBID_LEN);
    f.error.code = code;
    f.error.message = ls_proto_str(msg);
    if (s->peer) ld_send(s->peer->conn, &f);
}

static void send_begin(struct ld_seeds *s)
{
    ls_frame_t f = {.type = LS_FRAME_SEED_BEGIN};
    ls_proto_seed_begin_t *b = &f.seed_begin;
    memcpy(b->dbid, s->info.dbid, LS_DBID_LEN);
    b->total_bytes = s->info.total_bytes;
    b->last_lsn = s->info.last_lsn;
    b->generation = s->info.generation;
    memcpy(b->prev_digest, s->info.prev_digest, LS_DIGEST_SIZE);
    b->epoch = s->info.epoch;
    if (ld_send(s->peer->conn, &f) != 0) return; /* closing: on_close follows */
    s->begin_sent = true;
    ls_ship_seed_hold(s->ship->m, s->info.generation);
    LS_LOGI("seed",
            "%s -> %s: snapshot of %llu bytes (lsn %llu); the copy will ask for "
            "generation %llu",
            s->db->cfg->name, s->client, (unsigned long long) s->info.total_bytes,
            (unsigned long long) s->info.last_lsn, (unsigned long long) s->info.generation);
}

static void on_retry(uv_timer_t *t);

/* Sends the bodies the zstd worker compressed, in order; false when the socket is full (the
 * retry timer runs) or the connection is closing. */
static bool zflush(struct ld_seeds *s)
{
    ld_zjob_t *j;
    while ((j = ld_zwork_peek(s->zw))) {
        if (j->rc) {
            LS_LOGE("seed", "%s -> %s: compressing a chunk failed: %s", s->db->cfg->name, s->client,
                    ls_strerror(j->rc));
            ls_conn_close(s->peer->conn);
            return false;
        }
        int rc = ls_conn_send_raw(s->peer->conn, j->type, j->out, j->out_len);
        if (rc == LS_EBUSY) uv_timer_start(&s->retry, on_retry, SS_RETRY_MS, 0);
        if (rc) return false;
        ld_zjob_free(ld_zwork_pop(s->zw));
    }
    return true;
}

/* One SEED_DATA: its body to the zstd worker when compression runs there (copied: the chunk is
 * freed once taken whole), else to the transport. */
static int send_data(struct ld_seeds *s, const struct iovec *iov)
{
    if (!s->zw) return ls_conn_sendv(s->peer->conn, LS_FRAME_SEED_DATA, iov, 2);
    ld_zjob_t *j =
        ld_zjob_new(LD_ZJOB_COMPRESS, LS_FRAME_SEED_DATA, iov[0].iov_len + iov[1].iov_len);
    memcpy(j->in, iov[0].iov_base, iov[0].iov_len);
    memcpy(j->in + iov[0].iov_len, iov[1].iov_base, iov[1].iov_len);
    ld_zwork_push(s->zw, j);
    return 0;
}

/* Sends what credit and the socket allow; SEED_END once the whole stream went out. With
 * compression the chunks pass the zstd worker (LD_ZQ_MAX at a time) and go out in order. */
static void pump(struct ld_seeds *s)
{
    if (!s->peer || !s->begin_sent || s->end_sent || s->failed) return;
    if (s->zw && !zflush(s)) return;
    pthread_mutex_lock(&s->mu);
    for (chunk_t *c = s->head; c; c = c->next)
        if (!c->counted) {
            c->counted = true;
            ls_credit_tx_backlog_add(s->credit, 0, c->len);
        }
    pthread_mutex_unlock(&s->mu);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        chunk_t *c = s->head;
        pthread_mutex_unlock(&s->mu);
        if (!c) return; /* step() sends SEED_END once the worker read everything */
        if (s->zw && ld_zwork_jobs(s->zw) >= LD_ZQ_MAX) return; /* on_zdone steps again */
        int db;
        uint64_t len;
        if (ls_credit_tx_next(s->credit, LD_CHUNK, &db, &len)) return; /* waits for CREDIT */
        len = LS_MIN(len, c->len - c->sent);
        ls_frame_t f = {.type = LS_FRAME_SEED_DATA};
        f.seed_data.offset = c->offset + c->sent;
        f.seed_data.data = c->data + c->sent;
        f.seed_data.len = (uint32_t) len;
        uint8_t head[64];
        ssize_t hn = ls_frame_encode_head(&f, head, sizeof(head));
        LS_CHECK(hn > LS_FRAME_HEADER_SIZE);
        struct iovec iov[2] = {{head + LS_FRAME_HEADER_SIZE, (size_t) hn - LS_FRAME_HEADER_SIZE},
                               {(void *) f.seed_data.data, len}};
        int rc = send_data(s, iov);
        if (rc == LS_EBUSY) {
            uv_timer_start(&s->retry, on_retry, SS_RETRY_MS, 0);
            return;
        }
        if (rc) return; /* closing: on_close follows */
        LS_CHECK(ls_credit_tx_sent(s->credit, db, len) == 0);
        c->sent += len;
        s->sent += len;
        if (c->sent < c->len) continue;
        pthread_mutex_lock(&s->mu);
        s->head = c->next;
        if (!s->head) s->tail = NULL;
        s->nchunks--;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        free(c);
    }
}

static void send_end(struct ld_seeds *s)
{
    ls_frame_t f = {.type = LS_FRAME_SEED_END};
    memcpy(f.seed_end.digest, s->digest, LS_DIGEST_SIZE);
    if (ld_send(s->peer->conn, &f) != 0) return;
    s->end_sent = true;
    /* The copy is being replaced: what the target said about the old one no longer holds. */
    shipper_t *sh = s->ship;
    ls_ship_seed_sent(sh->m);
    double secs = (double) (ls_mono_ns() - s->start_ns) / 1e9;
    LS_LOGI("seed",
            "%s -> %s: %llu bytes sent in %.1f s; generation %llu and later are kept "
            "until the copy has replayed them",
            s->db->cfg->name, s->client, (unsigned long long) s->sent, secs,
            (unsigned long long) ls_ship_seed_needs(sh->m));
}

static void start_worker(struct ld_seeds *s);

static void step(struct ld_seeds *s)
{
    if (!s->peer || s->failed) return;
    if (!s->thread_started) {
        start_worker(s);
        return;
    }
    pthread_mutex_lock(&s->mu);
    bool info = s->info_ready, end;
    int code = s->code;
    char msg[LD_REASON_MAX];
    snprintf(msg, sizeof(msg), "%s", s->msg);
    pthread_mutex_unlock(&s->mu);
    if (info || code) snapshot_over(s);
    if (code) {
        s->failed = true;
        LS_LOGE("seed", "%s -> %s: %s", s->db->cfg->name, s->client, msg);
        send_error(s, code, msg); /* the client fails the seed and closes */
        return;
    }
    if (info && !s->begin_sent) send_begin(s);
    pump(s);
    pthread_mutex_lock(&s->mu);
    end = s->end_ready && !s->head && (!s->zw || !ld_zwork_jobs(s->zw));
    pthread_mutex_unlock(&s->mu);
    if (end && s->begin_sent && !s->end_sent && s->peer) send_end(s);
}

static void on_async(uv_async_t *a)
{
    struct ld_seeds *s = a->data;
    step(s);
    maybe_free(s);
}

static void on_retry(uv_timer_t *t)
{
    step(t->data);
}

static void on_zdone(ld_zwork_t *w)
{
    step(ld_zwork_data(w));
}

/* Answers HELLO with a WELCOME of one entry; returns the shipper when accepted. */
static shipper_t *admit(peer_t *p, const ls_proto_hello_t *h, active_t **db, int *code, char *why,
                        size_t whylen)
{
    node_t *n = p->node;
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
    node_t *n = p->node;
    char msg[LD_REASON_MAX];
    ls_proto_choice_t choice;
    if (!ld_hello_admit(p, h, &choice, "seed")) return;
    active_t *a;
    int code;
    shipper_t *sh = admit(p, h, &a, &code, msg, sizeof(msg));
    static ls_frame_t w; /* large; the loop is single-threaded */
    memset(&w, 0, sizeof(w));
    w.type = LS_FRAME_WELCOME;
    w.welcome.version = choice.version;
    w.welcome.features = choice.features;
    w.welcome.zstd_level = choice.zstd_level;
    w.welcome.node = ls_proto_str(n->cfg->node_name);
    w.welcome.db_count = 1;
    memcpy(w.welcome.dbs[0].dbid, a && a->have_dbid ? a->dbid : h->dbs[0].dbid, LS_DBID_LEN);
    w.welcome.dbs[0].status = sh ? LS_DB_ACCEPTED : LS_DB_REFUSED;
    w.welcome.dbs[0].code = code;
    w.welcome.dbs[0].reason = ls_proto_str(sh ? "" : msg);
    if (!sh) LS_LOGW("seed", "seed refused: %s", msg);
    int rc = ld_send(p->conn, &w);
    p->welcomed = true;
    if (!sh) return; /* the client closes after reading the refusal */
    if (rc) {
        ls_conn_close(p->conn);
        return;
    }
    if (choice.features & LS_FEAT_ZSTD) ls_conn_set_compression(p->conn, choice.zstd_level);
    struct ld_seeds *s = calloc(1, sizeof(*s));
    LS_CHECK(s != NULL);
    if (choice.features & LS_FEAT_ZSTD) { /* NULL (out of memory): the transport compresses */
        s->zw = ld_zwork_start(n->loop, choice.zstd_level, on_zdone, s);
        if (!s->zw) LS_LOGW("seed", "no zstd worker (out of memory): compressing on the loop");
    }
    s->node = n;
    s->peer = p;
    s->db = a;
    s->ship = sh;
    snprintf(s->client, sizeof(s->client), "%s", p->name);
    s->credit = ls_credit_tx_new(h->db_window, h->conn_window);
    LS_CHECK(s->credit && ls_credit_tx_db_add(s->credit) == 0);
    s->start_ns = ls_mono_ns();
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    uv_async_init(n->loop, &s->async, on_async);
    uv_timer_init(n->loop, &s->retry);
    s->async.data = s->retry.data = s;
    s->handles = 2;
    p->seed = s;
    ls_ship_seed_hold(sh->m, 0); /* nothing is removed while the snapshot is taken */
    LS_LOGI("seed", "%s asks for a seed of %s (%s%s): taking a snapshot", p->name, a->cfg->name,
            ls_conn_peer(p->conn), ls_conn_is_tls(p->conn) ? ", TLS" : ", plaintext");
    start_worker(s);
}

/* Starts the snapshot, once no log removal is peeking at the store: LMDB's locks are per process,
 * and an environment closed elsewhere in the process would drop the snapshot's reader lock. */
static void start_worker(struct ld_seeds *s)
{
    if (s->db->removing) {
        uv_timer_start(&s->retry, on_retry, SS_RETRY_MS, 0);
        return;
    }
    s->db->seed_snapshots++;
    s->snapshotting = true;
    if (pthread_create(&s->thread, NULL, worker_main, s) != 0) {
        snapshot_over(s);
        s->failed = true;
        LS_LOGE("seed", "%s -> %s: cannot start the snapshot thread", s->db->cfg->name, s->client);
        send_error(s, LS_ENOMEM, "cannot start the snapshot thread");
        return;
    }
    s->thread_started = true;
}

void ld_seed_server_frame(peer_t *p, const ls_frame_t *f)
{
    struct ld_seeds *s = p->seed;
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
    static const uint8_t zero[LS_DBID_LEN];
    if (f->type == LS_FRAME_CREDIT) {
        int rc = !memcmp(f->credit.dbid, zero, LS_DBID_LEN)
                     ? ls_credit_tx_grant_conn(s->credit, f->credit.bytes)
                     : ls_credit_tx_grant(s->credit, 0, f->credit.bytes);
        if (rc) {
            LS_LOGE("seed", "%s granted credit it never received: closing", p->name);
            ls_conn_close(p->conn);
            return;
        }
        step(s);
    } else if (f->type == LS_FRAME_ERROR) {
        LS_LOGW("seed", "%s -> %s: the client gave up: %.*s", s->db->cfg->name, p->name,
                (int) f->error.message.len, f->error.message.ptr);
        ls_conn_close(p->conn);
    } else {
        LS_LOGW("seed", "%s sent an unexpected %s on a seed connection", p->name,
                ls_frame_type_name(f->type));
    }
}

void ld_seed_server_close(peer_t *p)
{
    struct ld_seeds *s = p->seed;
    if (!s) return;
    p->seed = NULL;
    s->peer = NULL;
    uv_timer_stop(&s->retry);
    ld_zwork_stop(s->zw); /* drops what it held */
    s->zw = NULL;
    if (!s->end_sent) {
        ls_ship_seed_abort(s->ship->m); /* the seed did not go out: it needs nothing */
        LS_LOGW("seed", "%s -> %s: seed connection ended after %llu bytes", s->db->cfg->name,
                s->client, (unsigned long long) s->sent);
    } else {
        ls_conn_stats_t cs;
        ls_conn_stats(p->conn, &cs);
        LS_LOGI("seed",
                "%s -> %s: seed connection closed by the client (%llu bytes on the wire, "
                "%llu chunk bodies compressed on the loop)",
                s->db->cfg->name, s->client, (unsigned long long) cs.wire_bytes_sent,
                (unsigned long long) cs.zstd_loop_calls);
    }
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    maybe_free(s);
}

uint64_t ld_seed_needs(active_t *a)
{
    uint64_t need = 0;
    for (int i = 0; i < a->nshippers; i++) { /* each releases a hold its target synced past */
        uint64_t n = ls_ship_seed_needs(a->shippers[i].m);
        if (n && (!need || n < need)) need = n;
    }
    return need;
}
