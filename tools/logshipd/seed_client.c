/* The seed client: the passive side of `logship seed` (docs/SEED.md, "The daemon").
 *
 * The command arrives on the control socket ("seed"); the copy goes Seeding and stops being
 * shipped to: RE_OFFER HOLD on a version-2 ship connection from the source (PROTOCOL.md), which
 * drops its GEN frames meanwhile; a version-1 source is made to reconnect and finds it refused
 * with "being seeded". We connect to the source over the first network of its [source NAME] section
 * (or the one named), say HELLO with purpose SEED, and feed SEED_BEGIN / SEED_DATA / SEED_END to
 * the copy's receiver thread, which runs ls_seed_install_* beside the copy. Once the stream
 * verified, the loop stops using the open ls_copy_t (p->copy = NULL) and asks the receiver thread,
 * which owns its own pointer to it (p->rx_copy), to close it, swap the new copy in
 * (ls_seed_install_commit), and open and start the new one; the loop takes that one
 * and sends RE_OFFER REPLACED + RESUME(N) for this database alone (a version-1 source is made
 * to reconnect once more). A seed that fails leaves the old copy as it was
 * (it is reopened if it had been closed) and the copy's reason says why.
 *
 * Threading: the loop owns everything but `install` (receiver thread) and the fields under mu,
 * which the receiver thread fills and signals with uv_async_send. A seed object lives until the
 * next seed of the copy replaces it or the daemon stops, so status can show the last result.
 * The control commands, status and start-up recovery are in seed_cmd.c. */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "seed_client_int.h"

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
    LS_FAULT("seed.client.swap"); /* tests: "sleep:MS" holds the swap between its two halves */
    ls_copy_close(p->rx_copy);    /* stops its replayer and checkpoints */
    p->rx_copy = NULL;
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
    p->rx_copy = nc; /* this thread's from now on; the loop gets it in end_swap */
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
    /* The wake-up goes out before the count is seen released: the loop frees a seed only once
     * it finds outstanding 0 under mu (seed_cmd.c), so sc must not be touched after unlocking. */
    pthread_mutex_lock(&sc->mu);
    sc->outstanding--;
    LS_FAULT("seed.client.item_done"); /* tests: "sleep:MS" between the count and the wake-up */
    uv_async_send(&sc->async);
    pthread_mutex_unlock(&sc->mu);
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

/* Tells the copy's source that the copy changed (PROTOCOL.md, RE_OFFER): on a version-2 ship
 * connection that carries it (attached, or refused in WELCOME while it was being seeded) one
 * RE_OFFER for this database; without HOLD the copy is (re)attached, which sends its RESUME. The
 * other databases of the connection are not touched. A version-1 source is asked the old way: a
 * connection-wide ERROR with a transient code, after which it reconnects and offers every
 * database again (closing from here would look like a failed network to it). */
void ld__seedc_reoffer(pcopy_t *p, uint32_t flags, const char *why)
{
    char msg[LD_REASON_MAX];
    snprintf(msg, sizeof(msg), "copy %s %s", p->cfg->name, why);
    for (peer_t *q = p->node->peers; q; q = q->next) {
        if (q->seed || !q->welcomed || strcmp(q->name, p->cfg->source)) continue;
        int i = q->nidx - 1;
        while (i >= 0 && q->by_idx[i] != p && q->seeding[i] != p)
            i--;
        if (q->version >= LS_PROTO_VERSION_REOFFER) {
            if (i < 0) continue; /* this connection does not carry the database */
            LS_LOGI("seed", "%s: RE_OFFER%s%s to %s (%s)", p->cfg->name,
                    flags & LS_REOFFER_HOLD ? " HOLD" : "",
                    flags & LS_REOFFER_REPLACED ? " REPLACED" : "", q->name, why);
            ls_frame_t f = {.type = LS_FRAME_RE_OFFER};
            memcpy(f.re_offer.dbid, q->dbids[i], LS_DBID_LEN);
            f.re_offer.flags = flags;
            f.re_offer.reason = ls_proto_str(msg);
            if (ld_send(q->conn, &f) != 0) continue; /* closing: the next HELLO offers it */
            if (flags & LS_REOFFER_HOLD) continue;
            q->seeding[i] = NULL;
            q->by_idx[i] = p;
            ld_pcopy_attach(p, q, i); /* RESUME: the source plans this database anew */
            continue;
        }
        LS_LOGI("seed",
                "%s: asking %s (protocol version %u) to connect again so that it offers %s "
                "anew (%s)",
                p->cfg->name, q->name, (unsigned) q->version, p->cfg->name, why);
        ls_frame_t f = {.type = LS_FRAME_ERROR};
        f.error.code = LS_EBUSY;
        char msg1[LD_REASON_MAX + 32];
        snprintf(msg1, sizeof(msg1), "%s: connect again to offer it", msg);
        f.error.message = ls_proto_str(msg1);
        if (ld_send(q->conn, &f) != 0) ls_conn_close(q->conn);
    }
}

bool ld__seedc_finished(const struct ld_seedc *sc)
{
    return sc->state == SC_DONE || sc->state == SC_FAILED;
}

/* The seed is over without a new copy: the copy is as it was, and shipping resumes. */
static void fail(struct ld_seedc *sc, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct ld_seedc *sc, int code, const char *fmt, ...)
{
    if (ld__seedc_finished(sc) || sc->state == SC_INSTALLING) return;
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
    ld__seedc_reoffer(p, 0, "was not seeded");
}

/* ---- loop: the connection -------------------------------------------------------------------- */
static uint32_t offered_features(const struct ld_seedc *sc)
{
    return (sc->node->cfg->plaintext ? LS_FEAT_CKSUM : 0) |
           (sc->src->compression_level > 0 ? LS_FEAT_ZSTD : 0);
}

static void send_hello(struct ld_seedc *sc)
{
    pcopy_t *p = sc->p;
    const ls_config_t *c = sc->node->cfg;
    ls_frame_t f = {.type = LS_FRAME_HELLO};
    ls_proto_hello_t *h = &f.hello;
    h->version_min = LS_PROTO_VERSION_MIN;
    h->version_max = LS_PROTO_VERSION_MAX;
    h->purpose = LS_PURPOSE_SEED;
    h->features = offered_features(sc);
    if (h->features & LS_FEAT_ZSTD) h->zstd_level = (int8_t) sc->src->compression_level;
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
    ls_proto_hello_t h = {.version_min = LS_PROTO_VERSION_MIN,
                          .version_max = LS_PROTO_VERSION_MAX,
                          .features = offered_features(sc),
                          .db_count = 1};
    char msg[LD_REASON_MAX - 64];
    if (ls_proto_welcome_check(&h, w, false, msg, sizeof(msg)) != 0) {
        fail(sc, LS_EPROTO, "%s broke the protocol: %s", sc->src->name, msg);
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
        int level = ls_proto_zstd_level(w->zstd_level);
        if (!sc->zw) sc->zw = ld_zwork_start(sc->node->loop, level, on_zdone, sc);
        if (!sc->zw || ls_conn_set_compression(sc->conn, level) != 0) {
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
        if (ld__seedc_connect(sc) == 0) return;
    }
    if (sc->state < SC_INSTALLING)
        fail(sc, status ? status : LS_ECONNRESET, "connection to %s lost: %s", sc->src->name,
             status ? msg : "closed");
}

int ld__seedc_connect(struct ld_seedc *sc)
{
    const ls_cfg_network_t *net = &sc->src->nets[sc->net];
    ls_conn_opts_t o;
    ld_conn_opts(sc->node, &o, ld_node_cert_name(sc->node, sc->src->name, false),
                 sc->src->heartbeat_interval_ms, sc->src->heartbeat_timeout_ms);
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
    /* The loop leaves the copy alone until end_swap; the receiver thread, which owns its own
     * pointer to it (rx_copy), closes it and opens the new one in order with whatever else it
     * is given meanwhile (a late abort from a connection that still served the copy). */
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
    ld__seedc_reoffer(p, swapped ? LS_REOFFER_REPLACED : 0,
                      swapped ? "was seeded" : "was not seeded");
}

void ld__seedc_on_async(uv_async_t *a)
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
    if (consumed && !ld__seedc_finished(sc)) return_credit(sc, consumed);
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
