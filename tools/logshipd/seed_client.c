/* The seed client: the passive side of `logship seed` (docs/SEED.md, "The daemon").
 *
 * The command arrives on the control socket ("seed"); the copy goes Seeding and stops being
 * shipped to (its ship connection from the source is closed once, and the source's next HELLO
 * finds it refused with "being seeded"; the other databases on that connection reconnect at
 * once). We connect to the source over the first network of its [source NAME] section (or the
 * one named), say HELLO with purpose SEED, and feed SEED_BEGIN / SEED_DATA / SEED_END to the
 * copy's receiver thread, which runs ls_seed_install_* beside the copy. Once the stream
 * verified, the loop hands the open ls_copy_t to the receiver thread, which closes it, swaps the
 * new copy in (ls_seed_install_commit), and opens and starts the new one; the loop takes it back
 * and closes the ship connections from the source once more, so that the source offers the
 * database again and the copy answers RESUME(N). A seed that fails leaves the old copy as it was
 * (it is reopened if it had been closed) and the copy's reason says why.
 *
 * Threading: the loop owns everything but `install` (receiver thread) and the fields under mu,
 * which the receiver thread fills and signals with uv_async_send. A seed object lives until the
 * next seed of the copy replaces it or the daemon stops, so status can show the last result. */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon.h"
#include "zwork.h"
#include "seed/seed.h"

typedef enum {
    SC_CONNECTING = 1, /* connecting / handshake */
    SC_SNAPSHOT,       /* accepted: the source takes its snapshot */
    SC_RECEIVING,      /* SEED_DATA arriving */
    SC_INSTALLING,     /* verified: swapping the new copy in */
    SC_DONE,           /* installed */
    SC_FAILED          /* see error */
} sc_state_t;

static const char *state_names[] = {"",           "connecting", "snapshot", "receiving",
                                    "installing", "done",       "failed"};

struct ld_seedc {
    node_t *node;
    pcopy_t *p;
    uint64_t id; /* seed number on this node: `logship seed` follows it */
    sc_state_t state;
    char error[LD_REASON_MAX]; /* why it failed */
    const ls_cfg_target_t *src;
    int net;                /* network in use (index in src->nets) */
    bool net_fixed;         /* --network: no other network is tried */
    bool replace;           /* the install may replace what the copy holds */
    bool manual_resume;     /* leave the copy Suspended */
    ls_conn_t *conn;        /* the seed connection; NULL once closed */
    struct ld_zwork *zw;    /* with compression: frames pass it, in order, to be decompressed */
    bool zpaused;           /* reading paused: the worker holds LD_ZRX_MAX bytes or more */
    ls_conn_stats_t cstats; /* the connection's figures when it closed */
    bool welcomed;
    ls_credit_rx_t *credit;
    ls_seed_info_t info; /* from SEED_BEGIN */
    bool begun;          /* SEED_BEGIN received */
    ls_seed_progress_t prog;
    uint64_t start_ns, end_ns;        /* UTC ns */
    copy_state_t saved_state;         /* the copy's state before the seed ... */
    char saved_reason[LD_REASON_MAX]; /* ... and its reason */
    ls_copy_t *old_copy;              /* handed to the receiver thread for the swap */
    uv_async_t async;                 /* receiver thread -> loop */
    /* receiver thread only */
    ls_seed_install_t *install;
    /* receiver thread <-> loop, under mu */
    pthread_mutex_t mu;
    int outstanding;         /* items pushed and not processed */
    uint64_t consumed;       /* bytes written whose credit is not yet returned */
    uint64_t done;           /* bytes written */
    bool verified;           /* ls_seed_install_end succeeded */
    bool installed;          /* the swap step ran: new_copy is what is open now */
    bool taken;              /* loop: new_copy became the pcopy's copy */
    ls_copy_t *new_copy;     /* the copy opened after the swap (NULL: it could not open) */
    bool swapped;            /* the new copy is in place */
    ld_opstate_t op;         /* manual resume: the suspension written */
    int code;                /* first failure on the receiver thread ... */
    char msg[LD_REASON_MAX]; /* ... and why */
};

static uint64_t next_id = 1;

/* ---- receiver thread ------------------------------------------------------------------------- */
static void fail_thread(struct ld_seedc *sc, int rc, const char *msg)
{
    pthread_mutex_lock(&sc->mu);
    if (!sc->code) {
        sc->code = rc;
        snprintf(sc->msg, sizeof(sc->msg), "%s", msg[0] ? msg : ls_strerror(rc));
    }
    pthread_mutex_unlock(&sc->mu);
}

/* Closes the old copy, swaps the verified new one in, opens what is then in place. */
static void swap(struct ld_seedc *sc, pcopy_t *p)
{
    char err[LD_REASON_MAX] = "", err2[LD_REASON_MAX] = "";
    ls_copy_close(sc->old_copy); /* stops its replayer and checkpoints */
    int rc = ls_seed_install_commit(sc->install, err, sizeof(err));
    ls_seed_install_free(sc->install);
    sc->install = NULL;
    bool swapped = rc == 0;
    if (rc) { /* the marker may be durable: recovery finishes the swap, or undoes it */
        ls_seed_recover_t what = LS_SEED_RECOVER_NOTHING;
        if (ls_seed_recover(p->cfg->path, &what, err2, sizeof(err2)) == 0)
            swapped = what == LS_SEED_RECOVER_FINISHED;
        fail_thread(sc, rc, err);
    }
    ld_opstate_t op = {0};
    if (swapped && sc->manual_resume) {
        op.suspended = true;
        op.since_ns = ls_now_ns();
        snprintf(op.comment, sizeof(op.comment),
                 "seeded with --manual-resume: resume with "
                 "`logship resume %s %s`",
                 p->cfg->name, p->cfg->source);
        if (ld_opstate_save(p->op_path, &op) != 0)
            LS_LOGE("seed", "%s: cannot keep the copy suspended in %s", p->cfg->name, p->op_path);
    }
    ls_copy_t *nc = NULL;
    int orc = ld_pcopy_copy_open(p, &nc, err2, sizeof(err2));
    pthread_mutex_lock(&sc->mu);
    sc->installed = true;
    sc->swapped = swapped;
    sc->new_copy = nc;
    sc->op = op;
    if (orc && !sc->code) {
        sc->code = orc;
        snprintf(sc->msg, sizeof(sc->msg), "cannot open the copy after the seed: %.400s",
                 err2[0] ? err2 : ls_strerror(orc));
    }
    pthread_mutex_unlock(&sc->mu);
}

bool ld_seed_client_item(pcopy_t *p, ritem_t *it)
{
    if (it->type < LS_FRAME_SEED_BEGIN || it->type > LD_SEED_ABORT) return false;
    struct ld_seedc *sc = p->seed;
    char err[LD_REASON_MAX] = "";
    int rc = 0;
    if (it->type == LS_FRAME_SEED_BEGIN) {
        ls_seed_install_options_t o = {.copy_dir = p->cfg->path, .delete_existing = sc->replace};
        rc = ls_seed_install_begin(&o, &sc->info, &sc->install, err, sizeof(err));
    } else if (it->type == LS_FRAME_SEED_DATA && sc->install) {
        rc = ls_seed_install_data(sc->install, it->offset, it->data, it->len, err, sizeof(err));
        pthread_mutex_lock(&sc->mu);
        sc->consumed += it->len;
        if (!rc) sc->done = ls_seed_install_done(sc->install);
        pthread_mutex_unlock(&sc->mu);
    } else if (it->type == LS_FRAME_SEED_END && sc->install) {
        rc = ls_seed_install_end(sc->install, it->digest, err, sizeof(err));
        pthread_mutex_lock(&sc->mu);
        sc->verified = rc == 0;
        pthread_mutex_unlock(&sc->mu);
    } else if (it->type == LD_SEED_SWAP) {
        swap(sc, p);
    }
    if (rc) fail_thread(sc, rc, err);
    if (rc || it->type == LD_SEED_ABORT) {
        ls_seed_install_free(sc->install); /* removes the partial new copy */
        sc->install = NULL;
    }
    pthread_mutex_lock(&sc->mu);
    sc->outstanding--;
    pthread_mutex_unlock(&sc->mu);
    uv_async_send(&sc->async);
    return true;
}

/* ---- loop: helpers --------------------------------------------------------------------------- */
static void push(struct ld_seedc *sc, ritem_t *it)
{
    pthread_mutex_lock(&sc->mu);
    sc->outstanding++;
    pthread_mutex_unlock(&sc->mu);
    ld_pcopy_push(sc->p, it);
}

static void push_type(struct ld_seedc *sc, uint8_t type)
{
    ritem_t *it = calloc(1, sizeof(*it));
    LS_CHECK(it != NULL);
    it->type = type;
    push(sc, it);
}

/* Asks the copy's source to end its ship connections and say HELLO again, so that it finds the
 * copy refused (seeding) or accepted (seeded); the other databases they carry reconnect too. A
 * connection-wide ERROR with a transient code makes the source close and reconnect on the same
 * network after its back-off; closing from here would look like a failed network to it. */
static void cycle_ship_connections(pcopy_t *p, const char *why)
{
    char msg[LD_REASON_MAX];
    snprintf(msg, sizeof(msg), "copy %s %s: connect again to offer it", p->cfg->name, why);
    for (peer_t *q = p->node->peers; q; q = q->next) {
        if (q->seed || !q->welcomed || strcmp(q->name, p->cfg->source)) continue;
        LS_LOGI("seed", "%s: asking %s to connect again so that it offers %s anew (%s)",
                p->cfg->name, q->name, p->cfg->name, why);
        ls_frame_t f = {.type = LS_FRAME_ERROR};
        f.error.code = LS_EBUSY;
        f.error.message = ls_proto_str(msg);
        if (ld_send(q->conn, &f) != 0) ls_conn_close(q->conn);
    }
}

static bool finished(const struct ld_seedc *sc)
{
    return sc->state == SC_DONE || sc->state == SC_FAILED;
}

/* The seed is over without a new copy: the copy is as it was, and shipping resumes. */
static void fail(struct ld_seedc *sc, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct ld_seedc *sc, int code, const char *fmt, ...)
{
    if (finished(sc) || sc->state == SC_INSTALLING) return;
    pcopy_t *p = sc->p;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sc->error, sizeof(sc->error), fmt, ap);
    va_end(ap);
    (void) code;
    sc->state = SC_FAILED;
    sc->end_ns = ls_now_ns();
    if (sc->conn) ls_conn_close(sc->conn);
    push_type(sc, LD_SEED_ABORT);
    LS_LOGE("seed", "%s: seed from %s failed: %s", p->cfg->name, sc->src->name, sc->error);
    ld_pcopy_set_state(p, sc->saved_state, "seed from %s failed (the copy is as it was): %.400s",
                       sc->src->name, sc->error);
    cycle_ship_connections(p, "was not seeded");
}

/* ---- loop: the connection -------------------------------------------------------------------- */
static void send_hello(struct ld_seedc *sc)
{
    pcopy_t *p = sc->p;
    const ls_config_t *c = sc->node->cfg;
    ls_frame_t f = {.type = LS_FRAME_HELLO};
    ls_proto_hello_t *h = &f.hello;
    h->version_min = LS_PROTO_VERSION_MIN;
    h->version_max = LS_PROTO_VERSION_MAX;
    h->purpose = LS_PURPOSE_SEED;
    h->features = c->plaintext ? LS_FEAT_CKSUM : 0;
    if (sc->src->compression_level > 0) {
        h->features |= LS_FEAT_ZSTD;
        h->zstd_level = (int8_t) sc->src->compression_level;
    }
    h->db_window = (uint32_t) c->receive_window;
    h->conn_window = (uint32_t) c->receive_window;
    h->node = ls_proto_str(c->node_name);
    h->db_count = 1;
    ls_store_t *st = p->copy ? ls_copy_store(p->copy) : NULL;
    if (st) { /* a copy that knows its database asks for that one; a new one for the name */
        ls_store_meta_t m;
        ls_store_meta(st, &m);
        memcpy(h->dbs[0].dbid, m.dbid, LS_DBID_LEN);
    }
    h->dbs[0].name = ls_proto_str(p->cfg->name);
    if (ld_send(sc->conn, &f) != 0) ls_conn_close(sc->conn);
}

static void on_ready(ls_conn_t *c)
{
    struct ld_seedc *sc = ls_conn_data(c);
    if (!sc) return; /* the daemon is stopping */
    LS_LOGI("seed", "%s: connected to %s over network %s (%s)%s", sc->p->cfg->name, sc->src->name,
            sc->src->nets[sc->net].name, ls_conn_peer(c), ls_conn_is_tls(c) ? ", TLS" : "");
    send_hello(sc);
}

static void on_zdone(ld_zwork_t *w);

static void on_welcome(struct ld_seedc *sc, const ls_proto_welcome_t *w)
{
    if (w->db_count != 1) {
        fail(sc, LS_EPROTO, "%s answered for %u databases, 1 was asked", sc->src->name,
             w->db_count);
        return;
    }
    if (w->dbs[0].status != LS_DB_ACCEPTED) {
        fail(sc, w->dbs[0].code, "refused by %s: %.*s", sc->src->name, (int) w->dbs[0].reason.len,
             w->dbs[0].reason.ptr);
        return;
    }
    sc->welcomed = true;
    if (w->features & LS_FEAT_ZSTD) {
        /* SEED_DATA reaches us compressed (deliver_compressed): a worker decompresses it off the
         * loop, every later frame passing it in order. */
        if (!sc->zw) sc->zw = ld_zwork_start(sc->node->loop, w->zstd_level, on_zdone, sc);
        if (!sc->zw || ls_conn_set_compression(sc->conn, w->zstd_level) != 0) {
            fail(sc, LS_ENOMEM, "cannot start decompression: out of memory");
            return;
        }
    }
    sc->state = SC_SNAPSHOT;
    ld_pcopy_set_state(sc->p, CS_SEEDING, "seeding from %s: %s takes a snapshot", sc->src->name,
                       sc->src->name);
}

static void on_begin(struct ld_seedc *sc, const ls_proto_seed_begin_t *b)
{
    if (sc->begun || sc->state != SC_SNAPSHOT) {
        fail(sc, LS_EPROTO, "%s sent a second SEED_BEGIN", sc->src->name);
        return;
    }
    sc->begun = true;
    memcpy(sc->info.dbid, b->dbid, LS_DBID_LEN);
    sc->info.total_bytes = b->total_bytes;
    sc->info.last_lsn = b->last_lsn;
    sc->info.generation = b->generation;
    memcpy(sc->info.prev_digest, b->prev_digest, LS_DIGEST_SIZE);
    sc->info.epoch = b->epoch;
    ls_seed_progress_init(&sc->prog, b->total_bytes, ls_mono_ns());
    sc->state = SC_RECEIVING;
    ld_pcopy_set_state(sc->p, CS_SEEDING, "seeding from %s: receiving %llu bytes", sc->src->name,
                       (unsigned long long) b->total_bytes);
    push_type(sc, LS_FRAME_SEED_BEGIN);
}

static void on_data(struct ld_seedc *sc, const ls_proto_seed_data_t *d)
{
    if (sc->state != SC_RECEIVING) {
        fail(sc, LS_EPROTO, "%s sent SEED_DATA out of turn", sc->src->name);
        return;
    }
    if (ls_credit_rx_received(sc->credit, 0, d->len) != 0) {
        fail(sc, LS_EPROTO, "%s ignored the credit window", sc->src->name);
        return;
    }
    ritem_t *it = calloc(1, sizeof(*it) + d->len);
    LS_CHECK(it != NULL);
    it->type = LS_FRAME_SEED_DATA;
    it->offset = d->offset;
    it->len = d->len;
    memcpy(it->data, d->data, d->len);
    push(sc, it);
}

static void on_end(struct ld_seedc *sc, const ls_proto_seed_end_t *e)
{
    if (sc->state != SC_RECEIVING) {
        fail(sc, LS_EPROTO, "%s sent SEED_END out of turn", sc->src->name);
        return;
    }
    ritem_t *it = calloc(1, sizeof(*it));
    LS_CHECK(it != NULL);
    it->type = LS_FRAME_SEED_END;
    memcpy(it->digest, e->digest, LS_DIGEST_SIZE);
    push(sc, it);
}

/* One frame (header + plain body) from the connection, in its order. */
static void dispatch(struct ld_seedc *sc, const uint8_t *bytes, size_t len)
{
    ls_frame_t f;
    char err[256];
    if (ls_frame_decode(bytes, len, &f, err, sizeof(err))) {
        fail(sc, LS_EPROTO, "bad frame from %s: %s", sc->src->name, err);
        return;
    }
    if (f.type == LS_FRAME_ERROR) {
        fail(sc, f.error.code, "%s: %.*s", sc->src->name, (int) f.error.message.len,
             f.error.message.ptr);
    } else if (!sc->welcomed) {
        if (f.type == LS_FRAME_WELCOME)
            on_welcome(sc, &f.welcome);
        else
            fail(sc, LS_EPROTO, "%s sent %s before WELCOME", sc->src->name,
                 ls_frame_type_name(f.type));
    } else if (f.type == LS_FRAME_SEED_BEGIN) {
        on_begin(sc, &f.seed_begin);
    } else if (f.type == LS_FRAME_SEED_DATA) {
        on_data(sc, &f.seed_data);
    } else if (f.type == LS_FRAME_SEED_END) {
        on_end(sc, &f.seed_end);
    } else {
        LS_LOGW("seed", "%s sent an unexpected %s on a seed connection", sc->src->name,
                ls_frame_type_name(f.type));
    }
}

/* Frames the worker is done with, in order; reading resumes once it holds less. */
static void on_zdone(ld_zwork_t *w)
{
    struct ld_seedc *sc = ld_zwork_data(w);
    ld_zjob_t *j;
    while (sc->conn && (j = ld_zwork_pop(w))) {
        if (j->rc) {
            fail(sc, LS_ECORRUPT, "compressed %s frame from %s: %s", ls_frame_type_name(j->type),
                 sc->src->name,
                 j->rc == LS_EFRAMETOOBIG ? "decompresses beyond the frame limit"
                                          : "not a valid zstd frame");
            ld_zjob_free(j);
            return; /* on_close stops the worker and drops the rest */
        }
        dispatch(sc, j->out ? j->out : j->in, j->out ? j->out_len : j->in_len);
        ld_zjob_free(j);
    }
    if (sc->conn && sc->zpaused && ld_zwork_bytes(w) <= LD_ZRX_MAX / 2) {
        sc->zpaused = false;
        ls_conn_resume(sc->conn);
    }
}

static void on_frame(ls_conn_t *c, const ls_conn_frame_t *fr)
{
    struct ld_seedc *sc = ls_conn_data(c);
    if (!sc) return;
    size_t len = LS_FRAME_HEADER_SIZE + fr->body_len;
    bool z = (fr->flags & LS_FRAME_FLAG_ZSTD) != 0;
    if (!sc->zw) {
        if (z)
            fail(sc, LS_EPROTO, "%s sent a compressed %s before compression was agreed",
                 sc->src->name, ls_frame_type_name(fr->type));
        else
            dispatch(sc, fr->bytes, len);
        return;
    }
    /* The credit window bounds what an honest source sends; the pause bounds the rest. */
    ld_zjob_t *j = ld_zjob_new(z ? LD_ZJOB_INFLATE : LD_ZJOB_PASS, fr->type, len);
    memcpy(j->in, fr->bytes, len);
    ld_zwork_push(sc->zw, j);
    if (!sc->zpaused && ld_zwork_bytes(sc->zw) >= LD_ZRX_MAX) {
        sc->zpaused = true;
        ls_conn_pause(c);
    }
}

static int connect_net(struct ld_seedc *sc);

static void on_close(ls_conn_t *c, int status, const char *msg)
{
    struct ld_seedc *sc = ls_conn_data(c);
    if (!sc) return;
    ls_conn_stats(c, &sc->cstats);
    sc->conn = NULL;
    ld_zwork_stop(sc->zw); /* drops the frames it held */
    sc->zw = NULL;
    sc->zpaused = false;
    if (sc->state == SC_CONNECTING && !sc->welcomed && !sc->net_fixed &&
        sc->net + 1 < sc->src->nnets && !sc->node->stopping) {
        LS_LOGW("seed", "%s: network %s to %s: %s; trying network %s", sc->p->cfg->name,
                sc->src->nets[sc->net].name, sc->src->name, msg, sc->src->nets[sc->net + 1].name);
        sc->net++;
        if (connect_net(sc) == 0) return;
    }
    if (sc->state < SC_INSTALLING)
        fail(sc, status ? status : LS_ECONNRESET, "connection to %s lost: %s", sc->src->name,
             status ? msg : "closed");
}

static int connect_net(struct ld_seedc *sc)
{
    const ls_cfg_network_t *net = &sc->src->nets[sc->net];
    ls_conn_opts_t o;
    ld_conn_opts(sc->node, &o, sc->src->peer_name, sc->src->heartbeat_interval_ms,
                 sc->src->heartbeat_timeout_ms);
    o.bind_addr = net->bind[0] ? net->bind : NULL;
    o.on_ready = on_ready;
    o.on_frame = on_frame;
    o.on_close = on_close;
    o.deliver_compressed = true; /* on_zdone: decompressed on a worker */
    o.data = sc;
    int rc = ls_conn_connect(sc->node->loop, net->remote.host, net->remote.port, &o, &sc->conn);
    if (rc) {
        sc->conn = NULL;
        fail(sc, rc, "cannot connect to %s over network %s (%s:%u): %s", sc->src->name, net->name,
             net->remote.host, net->remote.port,
             rc < 0 && rc > -4096 ? uv_strerror(rc) : ls_strerror(rc));
    }
    return rc;
}

/* ---- loop: events from the receiver thread --------------------------------------------------- */
static void return_credit(struct ld_seedc *sc, uint64_t consumed)
{
    uint64_t conn_grant = 0;
    uint64_t grant = ls_credit_rx_consumed(sc->credit, 0, consumed, &conn_grant);
    ls_frame_t f = {.type = LS_FRAME_CREDIT};
    if (grant && sc->conn) {
        memcpy(f.credit.dbid, sc->info.dbid, LS_DBID_LEN);
        f.credit.bytes = (uint32_t) grant;
        ld_send(sc->conn, &f);
    }
    if (conn_grant && sc->conn) {
        memset(f.credit.dbid, 0, LS_DBID_LEN);
        f.credit.bytes = (uint32_t) conn_grant;
        ld_send(sc->conn, &f);
    }
}

/* Verified: the loop gives the open copy to the receiver thread, which swaps and reopens. */
static void start_swap(struct ld_seedc *sc)
{
    pcopy_t *p = sc->p;
    sc->state = SC_INSTALLING;
    if (sc->conn) ls_conn_close(sc->conn); /* the stream is complete: tells the source */
    /* Not attached (refused while seeding), so nothing but the swap uses the copy now. */
    sc->old_copy = p->copy;
    p->copy = NULL;
    ld_pcopy_set_state(p, CS_SEEDING, "seeded from %s: installing the new copy", sc->src->name);
    push_type(sc, LD_SEED_SWAP);
}

static void end_swap(struct ld_seedc *sc)
{
    pcopy_t *p = sc->p;
    pthread_mutex_lock(&sc->mu);
    p->copy = sc->new_copy;
    sc->taken = true;
    bool swapped = sc->swapped;
    ld_opstate_t op = sc->op;
    char msg[LD_REASON_MAX];
    snprintf(msg, sizeof(msg), "%s", sc->msg);
    pthread_mutex_unlock(&sc->mu);
    sc->end_ns = ls_now_ns();
    sc->state = swapped && p->copy ? SC_DONE : SC_FAILED;
    if (sc->state == SC_FAILED) snprintf(sc->error, sizeof(sc->error), "%s", msg);
    if (op.suspended) p->op = op;
    if (p->copy && (p->op.suspended || p->op.replay_suspended)) ls_copy_pause_replay(p->copy, true);
    if (!p->copy) {
        ld_pcopy_set_state(p, CS_FAILED, "%s", msg);
    } else if (!swapped) {
        ld_pcopy_set_state(p, sc->saved_state,
                           "seed from %s failed (the copy is as it was): %.400s", sc->src->name,
                           msg);
    } else if (p->op.suspended) {
        ld_pcopy_set_state(p, CS_SUSPENDED, "suspended by the operator: %s", p->op.comment);
    } else {
        ld_pcopy_set_state(p, CS_DISCONNECTED,
                           "seeded from %s (generation %llu, lsn %llu): "
                           "waiting for it to connect",
                           sc->src->name, (unsigned long long) sc->info.generation,
                           (unsigned long long) sc->info.last_lsn);
    }
    if (swapped)
        LS_LOGI("seed", "%s: seeded from %s in %.1f s: the copy asks for generation %llu",
                p->cfg->name, sc->src->name, (double) (sc->end_ns - sc->start_ns) / 1e9,
                (unsigned long long) sc->info.generation);
    else
        LS_LOGE("seed", "%s: seed from %s failed: %s", p->cfg->name, sc->src->name, msg);
    cycle_ship_connections(p, swapped ? "was seeded" : "was not seeded");
}

static void on_async(uv_async_t *a)
{
    struct ld_seedc *sc = a->data;
    pthread_mutex_lock(&sc->mu);
    uint64_t consumed = sc->consumed, done = sc->done;
    sc->consumed = 0;
    bool verified = sc->verified, installed = sc->installed && !sc->taken;
    sc->verified = false;
    int code = sc->code;
    char msg[LD_REASON_MAX];
    snprintf(msg, sizeof(msg), "%s", sc->msg);
    pthread_mutex_unlock(&sc->mu);
    if (consumed && !finished(sc)) return_credit(sc, consumed);
    if (sc->begun) ls_seed_progress_update(&sc->prog, done, ls_mono_ns());
    if (sc->state == SC_RECEIVING)
        ld_pcopy_set_state(sc->p, CS_SEEDING, "seeding from %s: %u%% (%llu of %llu bytes)",
                           sc->src->name, ls_seed_progress_percent(&sc->prog),
                           (unsigned long long) done, (unsigned long long) sc->info.total_bytes);
    if (installed) {
        end_swap(sc);
    } else if (code && sc->state != SC_INSTALLING) {
        fail(sc, code, "%s", msg);
    } else if (verified && sc->state == SC_RECEIVING) {
        start_swap(sc);
    }
}

/* ---- loop: commands -------------------------------------------------------------------------- */
static void on_async_closed(uv_handle_t *h)
{
    struct ld_seedc *sc = h->data;
    ls_credit_rx_free(sc->credit);
    pthread_mutex_destroy(&sc->mu);
    free(sc);
}

/* What makes a copy "hold data" (as ls_seed_install_begin judges it: a store file, or a file in
 * logs/ or inspect/). Only looks: the store is never opened. */
static bool holds_data(const char *copy, char *what, size_t len)
{
    char path[LS_CFG_PATH_MAX + 32];
    struct stat st;
    snprintf(path, sizeof(path), "%s/store/data.mdb", copy);
    if (stat(path, &st) == 0 && st.st_size > 0) {
        snprintf(what, len, "a store of %lld bytes", (long long) st.st_size);
        return true;
    }
    const char *sub[] = {"logs", "inspect"};
    for (size_t i = 0; i < LS_ARRAY_SIZE(sub); i++) {
        snprintf(path, sizeof(path), "%s/%s", copy, sub[i]);
        DIR *d = opendir(path);
        bool any = false;
        for (struct dirent *e; d && !any && (e = readdir(d));)
            any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
        if (d) closedir(d);
        if (any) {
            snprintf(what, len, "generation files in %s/", sub[i]);
            return true;
        }
    }
    return false;
}

static const char *str_arg(const cJSON *req, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(req, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

static void describe(const struct ld_seedc *sc, cJSON *o)
{
    cJSON_AddNumberToObject(o, "id", (double) sc->id);
    cJSON_AddStringToObject(o, "state", state_names[sc->state]);
    cJSON_AddStringToObject(o, "from", sc->src->name);
    cJSON_AddStringToObject(o, "network", sc->src->nets[sc->net].name);
    cJSON_AddNumberToObject(o, "bytes_done", (double) sc->prog.done);
    cJSON_AddNumberToObject(o, "bytes_total", (double) sc->info.total_bytes);
    cJSON_AddNumberToObject(o, "percent", sc->begun ? ls_seed_progress_percent(&sc->prog) : 0);
    cJSON_AddNumberToObject(o, "rate_bps", sc->prog.rate);
    cJSON_AddNumberToObject(o, "eta_s", ls_seed_progress_eta(&sc->prog));
    cJSON_AddNumberToObject(o, "generation", (double) sc->info.generation);
    cJSON_AddNumberToObject(o, "lsn", (double) sc->info.last_lsn);
    cJSON_AddBoolToObject(o, "manual_resume", sc->manual_resume);
    cJSON_AddNumberToObject(o, "start_time_ns", (double) sc->start_ns);
    cJSON_AddNumberToObject(o, "end_time_ns", (double) sc->end_ns);
    cJSON_AddStringToObject(o, "error", sc->error);
}

/* Checks a "seed" request against the copy and the configuration; *srcp and *net on success. */
static int check(node_t *n, pcopy_t *p, const cJSON *req, const ls_cfg_target_t **srcp, int *net,
                 bool *replace, char *err, size_t errlen)
{
    const char *from = str_arg(req, "from"), *netname = str_arg(req, "network");
    bool del = cJSON_IsTrue(cJSON_GetObjectItem(req, "delete_existing"));
    if (from && strcmp(from, p->cfg->source)) {
        snprintf(err, errlen,
                 "copy %s on %s copies from %s: it can only be seeded from there, not from %s",
                 p->cfg->name, n->cfg->node_name, p->cfg->source, from);
        return LS_EINVAL;
    }
    const ls_cfg_target_t *src = ls_config_source(n->cfg, p->cfg->source);
    if (!src) {
        snprintf(err, errlen,
                 "%s has no [source %s] section: add one with 'network = NAME HOST:PORT' (an "
                 "address %s listens on) to seed from it",
                 n->cfg->path, p->cfg->source, p->cfg->source);
        return LS_ECONFIG;
    }
    *net = 0;
    if (netname) {
        *net = -1;
        for (int i = 0; i < src->nnets; i++)
            if (!strcmp(src->nets[i].name, netname)) *net = i;
        if (*net < 0) {
            snprintf(err, errlen, "[source %s] has no network %s (it has %s%s%s)", src->name,
                     netname, src->nets[0].name, src->nnets > 1 ? ", " : "",
                     src->nnets > 1 ? src->nets[1].name : "");
            return LS_EINVAL;
        }
    }
    if (p->seed && !finished(p->seed)) {
        snprintf(err, errlen, "a seed of %s from %s is under way (%s)", p->cfg->name,
                 p->seed->src->name, state_names[p->seed->state]);
        return LS_EBUSY;
    }
    if (!p->thread_started) {
        snprintf(err, errlen, "copy %s has no receiver running (%s)", p->cfg->name, p->reason);
        return LS_ESTATE;
    }
    char what[128];
    bool failed = p->state == CS_FAILED || p->state == CS_DIVERGED;
    if (!del && !failed && holds_data(p->cfg->path, what, sizeof(what))) {
        snprintf(err, errlen,
                 "copy %s (%s) already holds %s and is %s: a seed would replace it; run the seed "
                 "with --delete-existing to do so (a Failed or Diverged copy needs no such "
                 "flag)",
                 p->cfg->name, p->cfg->path, what, ld_state_name(p->state));
        return LS_EEXIST;
    }
    *srcp = src;
    *replace = true; /* decided here, against the copy as the operator saw it */
    return 0;
}

static pcopy_t *find_copy(node_t *n, const char *db, char *err, size_t errlen)
{
    for (int i = 0; db && i < n->ncopies; i++)
        if (!strcmp(n->copies[i].cfg->name, db)) return &n->copies[i];
    if (!db)
        snprintf(err, errlen, "which database? (\"database\" is missing)");
    else
        snprintf(err, errlen, "node %s holds no passive copy of %s", n->cfg->node_name, db);
    return NULL;
}

int ld_seed_client_cmd(node_t *n, const cJSON *req, bool status_only, cJSON *resp, char *err,
                       size_t errlen)
{
    pcopy_t *p = find_copy(n, str_arg(req, "database"), err, errlen);
    if (!p) return LS_ENOENT;
    if (status_only) {
        if (!p->seed) {
            snprintf(err, errlen, "no seed of %s since the daemon started", p->cfg->name);
            return LS_ENOENT;
        }
        describe(p->seed, resp);
        cJSON_AddStringToObject(resp, "copy_state", ld_state_name(p->state));
        cJSON_AddStringToObject(resp, "reason", p->reason);
        return 0;
    }
    const ls_cfg_target_t *src;
    int net;
    bool replace;
    int rc = check(n, p, req, &src, &net, &replace, err, errlen);
    if (rc) return rc;
    struct ld_seedc *old = p->seed;
    if (old) {
        pthread_mutex_lock(&old->mu);
        bool idle = old->outstanding == 0;
        pthread_mutex_unlock(&old->mu);
        if (!idle || old->conn) {
            snprintf(err, errlen, "the last seed of %s is still winding down: try again",
                     p->cfg->name);
            return LS_EBUSY;
        }
        uv_close((uv_handle_t *) &old->async, on_async_closed);
    }
    struct ld_seedc *sc = calloc(1, sizeof(*sc));
    LS_CHECK(sc != NULL);
    sc->node = n;
    sc->p = p;
    sc->id = next_id++;
    sc->state = SC_CONNECTING;
    sc->src = src;
    sc->net = net;
    sc->net_fixed = str_arg(req, "network") != NULL;
    sc->replace = replace;
    sc->manual_resume = cJSON_IsTrue(cJSON_GetObjectItem(req, "manual_resume"));
    sc->start_ns = ls_now_ns();
    sc->saved_state = p->state == CS_SEEDING ? CS_DISCONNECTED : p->state;
    snprintf(sc->saved_reason, sizeof(sc->saved_reason), "%s", p->reason);
    sc->credit = ls_credit_rx_new(n->cfg->receive_window, n->cfg->receive_window);
    LS_CHECK(sc->credit && ls_credit_rx_db_add(sc->credit) == 0);
    pthread_mutex_init(&sc->mu, NULL);
    uv_async_init(n->loop, &sc->async, on_async);
    sc->async.data = sc;
    p->seed = sc;
    ld_pcopy_set_state(p, CS_SEEDING, "seeding from %s over network %s: connecting", src->name,
                       src->nets[net].name);
    LS_LOGI("seed", "%s: seed from %s asked%s%s", p->cfg->name, src->name,
            cJSON_IsTrue(cJSON_GetObjectItem(req, "delete_existing")) ? " (--delete-existing)" : "",
            sc->manual_resume ? " (--manual-resume)" : "");
    if (p->peer) cycle_ship_connections(p, "is being seeded");
    connect_net(sc); /* a failure is the seed's: status and seed_status say why */
    describe(sc, resp);
    char msg[256];
    snprintf(msg, sizeof(msg), "seeding %s from %s over network %s", p->cfg->name, src->name,
             src->nets[sc->net].name);
    cJSON_AddStringToObject(resp, "message", msg);
    return 0;
}

bool ld_seed_client_busy(pcopy_t *p, char *why, size_t whylen)
{
    struct ld_seedc *sc = p->seed;
    if (!sc || finished(sc)) return false;
    snprintf(why, whylen, "copy %s is being seeded from %s (%s)", p->cfg->name, sc->src->name,
             state_names[sc->state]);
    return true;
}

void ld_seed_client_status(pcopy_t *p, cJSON *o)
{
    if (!p->seed) return;
    cJSON_AddNumberToObject(o, "seed_percent",
                            p->seed->begun ? ls_seed_progress_percent(&p->seed->prog) : 0);
    cJSON *so = cJSON_AddObjectToObject(o, "seed");
    describe(p->seed, so);
    ls_conn_stats_t cs = p->seed->cstats;
    if (p->seed->conn) ls_conn_stats(p->seed->conn, &cs);
    cJSON_AddNumberToObject(so, "wire_bytes_received", (double) cs.wire_bytes_received);
    cJSON_AddNumberToObject(so, "zstd_loop_calls", (double) cs.zstd_loop_calls);
}

void ld_seed_recover(const ls_cfg_database_t *d)
{
    char err[LD_REASON_MAX] = "";
    if (d->role == LS_ROLE_ACTIVE) {
        if (ls_seed_snapshot_cleanup(d->path) != 0)
            LS_LOGW("seed", "%s: cannot remove leftover snapshots in %s/seed-tmp", d->name,
                    d->path);
        return;
    }
    ls_seed_recover_t what = LS_SEED_RECOVER_NOTHING;
    int rc = ls_seed_recover(d->path, &what, err, sizeof(err));
    if (rc)
        LS_LOGE("seed", "%s: %s", d->name, err);
    else if (what != LS_SEED_RECOVER_NOTHING)
        LS_LOGI("seed", "%s: an interrupted seed was %s", d->name,
                what == LS_SEED_RECOVER_FINISHED ? "finished: the new copy is in place"
                : what == LS_SEED_RECOVER_UNDONE ? "undone: the old copy is back"
                                                 : "removed: the old copy stands");
}

void ld_seed_client_stop(node_t *n)
{
    for (int i = 0; i < n->ncopies; i++) {
        pcopy_t *p = &n->copies[i];
        struct ld_seedc *sc = p->seed;
        if (!sc) continue;
        p->seed = NULL;
        /* The receiver thread has been joined: what it left is ours to put away. */
        ls_seed_install_free(sc->install);
        if (!sc->installed) ls_copy_close(sc->old_copy); /* the swap never ran */
        if (sc->installed && !sc->taken) ls_copy_close(sc->new_copy);
        ld_zwork_stop(sc->zw);
        sc->zw = NULL;
        if (sc->conn) {
            ls_conn_set_data(sc->conn, NULL);
            ls_conn_close(sc->conn);
        }
        uv_close((uv_handle_t *) &sc->async, on_async_closed);
    }
}
