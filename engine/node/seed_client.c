/* The seed client: the passive side of `logship seed` (docs/SEED.md, "The daemon").
 *
 * The command arrives on the control socket ("seed", seed_cmd.c); the copy goes Seeding and stops
 * being shipped to: RE_OFFER HOLD on a version-2 ship connection from the source (PROTOCOL.md),
 * which drops its GEN frames meanwhile; a version-1 source is made to reconnect and finds it
 * refused with "being seeded". The protocol is engine/seed's client session (ls_seed_client_t);
 * this file is its adapter: the connection (over the first network of [source NAME], or the one
 * named; zstd on the connection's worker, off the loop), the session's actions carried out (CREDIT
 * frames, install steps queued to the copy's receiver thread, close, swap), the copy's state and
 * reason.
 *
 * The swap: once the stream verified, the loop stops using the open ls_copy_t (p->copy = NULL)
 * and the receiver thread, which owns its own pointer to it (engine/copy/receiver.h: a RUN
 * item is given that pointer), closes it, swaps the
 * new copy in and opens it again (ls_seed_copy_swap_open); the loop takes the new one and sends
 * RE_OFFER REPLACED + RESUME(N) for this database alone, while the thread removes the replaced
 * copy (ls_seed_copy_finish). A seed that fails leaves the old copy as
 * it was (reopened if it had been closed) and the copy's reason says why.
 *
 * Threading: the loop owns everything but `install` (receiver thread) and the fields under mu,
 * which the receiver thread fills and signals through sc->wake (ls_node_wake_t, wake.c). A seed
 * object lives until the next seed of the copy replaces it or the node stops, so status can show
 * the last result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/seed_client_int.h"

#define SEED_SWAP  0x4e /* item steps past LS_FRAME_SEED_END: swap the verified copy in */
#define SEED_ABORT 0x4f /* ... drop the install */
#define SEED_DATA_BUF                                                                              \
    0x50 /* ... SEED_DATA whose chunk is in sc->buf[k], k the item's data (a uint32_t) */
#define SEEDC_BUF_MIN (256u * 1024u) /* a chunk buffer's least size: the server's chunk */

/* ---- receiver thread ------------------------------------------------------------------------- */
static void fail_thread(struct node_seedc *sc, int rc, const char *msg)
{
    pthread_mutex_lock(&sc->mu);
    if (!sc->code) {
        sc->code = rc;
        snprintf(sc->msg, sizeof(sc->msg), "%s", msg[0] ? msg : ls_strerror(rc));
    }
    pthread_mutex_unlock(&sc->mu);
}

static int reopen(void *ctx, ls_copy_t **out, char *err, size_t errlen)
{
    return ls__node_pcopy_copy_open(ctx, out, err, errlen);
}

/* The copy closes, swaps the verified new one in, and reopens itself, on this thread. */
static void swap(struct node_seedc *sc, pcopy_t *p, ls_copy_t **copy)
{
    char err[NODE_REASON_MAX] = "";
    bool swapped = false;
    int rc = ls_seed_copy_swap_open(copy, &sc->install, p->cfg->path, reopen, p, &swapped, err,
                                    sizeof(err));
    ls_status_op_t op = {0};
    if (swapped && sc->manual_resume) {
        op.suspended = true;
        op.since_ns = ls_now_ns();
        snprintf(op.comment, sizeof(op.comment),
                 "seeded with --manual-resume: resume with `logship resume %s %s`", p->cfg->name,
                 p->source);
        if (ls__node_opstate_save(p->op_path, &op) != 0)
            LS_LOGE("seed", "%s: cannot keep the copy suspended in %s", p->cfg->name, p->op_path);
    }
    if (rc) fail_thread(sc, rc, err);
    pthread_mutex_lock(&sc->mu);
    sc->installed = true;
    sc->swapped = swapped;
    sc->new_copy = *copy; /* this thread's from now on; the loop gets it in end_swap */
    sc->op = op;
    pthread_mutex_unlock(&sc->mu);
}

/* One step of the install (a RUN item of the copy's receiver): copy is the thread's pointer. */
static void run_step(void *ctx, ls_copy_t **copy, ls_copy_item_t *it)
{
    struct node_seedc *sc = ctx;
    pcopy_t *p = sc->p;
    char err[NODE_REASON_MAX] = "";
    int rc = 0;
    if (it->sub == LS_FRAME_SEED_BEGIN) {
        ls_seed_install_options_t o = {.copy_dir = p->cfg->path, .delete_existing = sc->replace};
        rc = ls_seed_install_begin(&o, &sc->info, &sc->install, err, sizeof(err));
    } else if (it->sub == LS_FRAME_SEED_DATA || it->sub == SEED_DATA_BUF) {
        const uint8_t *data = it->data;
        uint32_t len = it->len, k = NODE_SEEDC_BUFS;
        if (it->sub == SEED_DATA_BUF) {
            memcpy(&k, it->data, sizeof(k));
            pthread_mutex_lock(&sc->mu);
            data = sc->buf[k];
            len = sc->buf_len[k];
            pthread_mutex_unlock(&sc->mu);
        }
        if (sc->install)
            rc = ls_seed_install_data(sc->install, it->offset, data, len, err, sizeof(err));
        pthread_mutex_lock(&sc->mu);
        if (k < NODE_SEEDC_BUFS) sc->buf_busy[k] = false; /* the loop's again */
        if (sc->install) {
            sc->consumed += len;
            if (!rc) sc->done = ls_seed_install_done(sc->install);
        }
        pthread_mutex_unlock(&sc->mu);
    } else if (it->sub == LS_FRAME_SEED_END && sc->install) {
        rc = ls_seed_install_end(sc->install, it->digest, err, sizeof(err));
        pthread_mutex_lock(&sc->mu);
        sc->verified = rc == 0;
        pthread_mutex_unlock(&sc->mu);
        ls__node_seedc_bufs_free(sc, false); /* the stream is over */
    } else if (it->sub == SEED_SWAP) {
        swap(sc, p, copy);
        /* The loop takes the new copy now (end_swap: installed); the replaced copy is removed
         * after, off the way to it (sc lives: this item is still outstanding). */
        pthread_mutex_lock(&sc->mu);
        ls__node_wake_send(&sc->wake);
        pthread_mutex_unlock(&sc->mu);
        ls_seed_copy_finish(&sc->install, p->cfg->path);
    }
    if (rc || it->sub == SEED_ABORT) {
        LS_FAULT("seed.client.abort");     /* tests: "sleep:MS" before the partial copy goes */
        ls_seed_install_free(sc->install); /* removes the partial new copy */
        sc->install = NULL;
        ls__node_seedc_bufs_free(sc, false);
    }
    /* The failure is told only now: the loop may run an earlier item's wake-up at any time and
     * report it, and the partial new copy must be gone by then (with its writeback under way,
     * removing it takes a while). */
    if (rc) fail_thread(sc, rc, err);
    /* The wake-up goes out before the count is seen released: the loop frees a seed only once
     * it finds outstanding 0 under mu (seed_cmd.c), so sc must not be touched after unlocking. */
    pthread_mutex_lock(&sc->mu);
    sc->outstanding--;
    LS_FAULT("seed.client.item_done"); /* tests: "sleep:MS" between the count and the wake-up */
    ls__node_wake_send(&sc->wake);
    pthread_mutex_unlock(&sc->mu);
}

/* ---- loop: helpers --------------------------------------------------------------------------- */
static void push(struct node_seedc *sc, ls_copy_item_t *it)
{
    pthread_mutex_lock(&sc->mu);
    sc->outstanding++;
    pthread_mutex_unlock(&sc->mu);
    ls_copy_rx_push(sc->p->rx, it);
}

static ls_copy_item_t *item(struct node_seedc *sc, int step, uint32_t len)
{
    ls_copy_item_t *it = ls_copy_item_new(LS_COPY_ITEM_RUN, len);
    it->sub = step;
    it->run = run_step;
    it->run_ctx = sc;
    return it;
}

/* A SEED_DATA item: the chunk copied into one of sc's buffers, reused from chunk to chunk (the
 * item carries the buffer's index), or, with every buffer queued, into the item itself. */
static ls_copy_item_t *data_item(struct node_seedc *sc, const void *data, uint32_t len)
{
    uint32_t k = NODE_SEEDC_BUFS, empty = NODE_SEEDC_BUFS;
    bool none = LS_FAULT("seed.client.buf"); /* tests: "fail" as if every buffer were queued */
    pthread_mutex_lock(&sc->mu);
    for (uint32_t i = 0; i < NODE_SEEDC_BUFS && k == NODE_SEEDC_BUFS && !none; i++) {
        if (!sc->buf[i] && empty == NODE_SEEDC_BUFS)
            empty = i;
        else if (sc->buf[i] && !sc->buf_busy[i] && sc->buf_cap[i] >= len)
            k = i;
    }
    if (k == NODE_SEEDC_BUFS && empty < NODE_SEEDC_BUFS && !none) {
        uint32_t cap = LS_MAX(len, SEEDC_BUF_MIN);
        if ((sc->buf[empty] = malloc(cap)) != NULL) {
            sc->buf_cap[empty] = cap;
            k = empty;
        }
    }
    if (k < NODE_SEEDC_BUFS) {
        sc->buf_busy[k] = true; /* the receiver thread frees none that is busy */
        sc->buf_len[k] = len;
    }
    pthread_mutex_unlock(&sc->mu);
    if (k == NODE_SEEDC_BUFS) {
        ls_copy_item_t *it = item(sc, LS_FRAME_SEED_DATA, len);
        memcpy(it->data, data, len);
        return it;
    }
    memcpy(sc->buf[k], data, len);
    ls_copy_item_t *it = item(sc, SEED_DATA_BUF, sizeof(k));
    memcpy(it->data, &k, sizeof(k));
    return it;
}

void ls__node_seedc_bufs_free(struct node_seedc *sc, bool all)
{
    pthread_mutex_lock(&sc->mu);
    for (uint32_t i = 0; i < NODE_SEEDC_BUFS; i++) {
        if (!sc->buf[i] || (sc->buf_busy[i] && !all)) continue;
        free(sc->buf[i]);
        sc->buf[i] = NULL;
        sc->buf_busy[i] = false;
    }
    pthread_mutex_unlock(&sc->mu);
}

/* Tells the copy's source that the copy changed (PROTOCOL.md, RE_OFFER): on a version-2 ship
 * connection that carries it (attached, or refused in WELCOME while it was being seeded) one
 * RE_OFFER for this database; without HOLD the copy is (re)attached, which sends its RESUME. The
 * other databases of the connection are not touched. A version-1 source is asked the old way: a
 * connection-wide ERROR with a transient code, after which it reconnects and offers every
 * database again (closing from here would look like a failed network to it). */
void ls__node_seedc_reoffer(pcopy_t *p, uint32_t flags, const char *why)
{
    char msg[NODE_REASON_MAX];
    snprintf(msg, sizeof(msg), "copy %s %s", p->cfg->name, why);
    for (peer_t *q = p->node->peers; q; q = q->next) {
        if (q->seed || !q->welcomed || strcmp(q->name, p->source)) continue;
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
            if (ls__node_send(q->conn, &f) != 0) continue; /* closing: the next HELLO offers it */
            if (flags & LS_REOFFER_HOLD) continue;
            q->seeding[i] = NULL;
            q->by_idx[i] = p;
            ls__node_pcopy_attach(p, q, i); /* RESUME: the source plans this database anew */
            continue;
        }
        LS_LOGI("seed",
                "%s: asking %s (protocol version %u) to connect again so that it offers %s "
                "anew (%s)",
                p->cfg->name, q->name, (unsigned) q->version, p->cfg->name, why);
        ls_frame_t f = {.type = LS_FRAME_ERROR};
        f.error.code = LS_EBUSY;
        char msg1[NODE_REASON_MAX + 32];
        snprintf(msg1, sizeof(msg1), "%s: connect again to offer it", msg);
        f.error.message = ls_proto_str(msg1);
        if (ls__node_send(q->conn, &f) != 0) ls_conn_close(q->conn);
    }
}

bool ls__node_seedc_finished(const struct node_seedc *sc)
{
    return ls_seed_client_finished(sc->cs);
}

/* The seed is over without a new copy: the copy is as it was, and shipping resumes. */
static void on_failed(struct node_seedc *sc)
{
    pcopy_t *p = sc->p;
    const char *why = ls_seed_client_error(sc->cs, NULL);
    snprintf(sc->error, sizeof(sc->error), "%s", why);
    sc->end_ns = ls_now_ns();
    LS_LOGE("seed", "%s: seed from %s failed: %s", p->cfg->name, sc->src->name, sc->error);
    NODE_SET_STATE(p, sc->saved_state, "seed from %s failed (the copy is as it was): %.400s",
                   sc->src->name, sc->error);
    ls__node_seedc_reoffer(p, 0, "was not seeded");
}

/* Verified: the loop gives the open copy to the receiver thread, which swaps and reopens. */
static void start_swap(struct node_seedc *sc)
{
    pcopy_t *p = sc->p;
    /* The loop leaves the copy alone until end_swap; the receiver thread, which owns its own
     * pointer to it, closes it and opens the new one in order with whatever else it
     * is given meanwhile (a late abort from a connection that still served the copy). */
    p->copy = NULL;
    ls_passive_set_copy(p->m, NULL, NULL);
    NODE_SET_STATE(p, CS_SEEDING, "seeded from %s: installing the new copy", sc->src->name);
    push(sc, item(sc, SEED_SWAP, 0));
}

/* Compression agreed in WELCOME: the connection's zstd worker decompresses SEED_DATA, in order
 * (offload_compression). */
static void start_zstd(struct node_seedc *sc, int level)
{
    if (!sc->conn || ls_conn_set_compression(sc->conn, level) != 0)
        ls_seed_client_fail(sc->cs, LS_ENOMEM, "cannot start decompression: out of memory");
}

/* One action of the session. */
static void act_one(struct node_seedc *sc, const ls_seed_act_t *a)
{
    ls_copy_item_t *it;
    switch (a->kind) {
    case LS_SEED_ACT_SEND:
        if (sc->conn) ls__node_send(sc->conn, &a->frame);
        break;
    case LS_SEED_ACT_INSTALL_BEGIN:
        sc->info = *a->info; /* read by the receiver thread once it takes the item */
        push(sc, item(sc, LS_FRAME_SEED_BEGIN, 0));
        break;
    case LS_SEED_ACT_INSTALL_DATA:
        it = data_item(sc, a->data, a->len);
        it->offset = a->offset;
        push(sc, it);
        break;
    case LS_SEED_ACT_INSTALL_END:
        it = item(sc, LS_FRAME_SEED_END, 0);
        memcpy(it->digest, a->digest, LS_DIGEST_SIZE);
        push(sc, it);
        break;
    case LS_SEED_ACT_SWAP:
        start_swap(sc);
        break;
    case LS_SEED_ACT_ABORT:
        push(sc, item(sc, SEED_ABORT, 0));
        break;
    case LS_SEED_ACT_CLOSE:
        if (sc->conn) ls_conn_close(sc->conn);
        break;
    case LS_SEED_ACT_ZSTD:
        start_zstd(sc, a->zstd_level);
        break;
    }
}

/* Carries out the session's actions, then shows what its state became. */
static void act(struct node_seedc *sc)
{
    ls_seed_act_t a;
    while (ls_seed_client_action(sc->cs, &a))
        act_one(sc, &a);
    ls_seed_client_state_t st = ls_seed_client_state(sc->cs), was = sc->shown;
    if (st == was) return;
    sc->shown = st;
    ls_seed_client_figures_t fig;
    if (st == LS_SEED_CLI_SNAPSHOT) {
        NODE_SET_STATE(sc->p, CS_SEEDING, "seeding from %s: %s takes a snapshot", sc->src->name,
                       sc->src->name);
    } else if (st == LS_SEED_CLI_RECEIVING) {
        ls_seed_client_figures(sc->cs, &fig);
        NODE_SET_STATE(sc->p, CS_SEEDING, "seeding from %s: receiving %llu bytes", sc->src->name,
                       (unsigned long long) fig.info.total_bytes);
    } else if (st == LS_SEED_CLI_FAILED && was != LS_SEED_CLI_INSTALLING) {
        on_failed(sc); /* a failed swap is end_swap's */
    }
}

/* ---- loop: the connection -------------------------------------------------------------------- */
static void on_ready(ls_conn_t *c)
{
    struct node_seedc *sc = ls_conn_data(c);
    if (!sc) return; /* the node is stopping */
    LS_LOGI("seed", "%s: connected to %s over network %s (%s)%s", sc->p->cfg->name, sc->src->name,
            sc->src->nets[sc->net].name, ls_conn_peer(c), ls_conn_is_tls(c) ? ", TLS" : "");
    static ls_frame_t f; /* large; the loop is single-threaded */
    uint8_t dbid[LS_DBID_LEN] = {0};
    ls_store_t *st = sc->p->copy ? ls_copy_store(sc->p->copy) : NULL;
    if (st) { /* a copy that knows its database asks for that one; a new one for the name */
        ls_store_meta_t m;
        ls_store_meta(st, &m);
        memcpy(dbid, m.dbid, LS_DBID_LEN);
    }
    ls_seed_client_hello(sc->cs, sc->node->cfg->node_name, sc->p->cfg->name, dbid, &f);
    if (ls__node_send(sc->conn, &f) != 0) ls_conn_close(sc->conn);
}

/* One frame (header + plain body) from the connection, in its order. */
static void dispatch(struct node_seedc *sc, const uint8_t *bytes, size_t len)
{
    static ls_frame_t f;
    char err[256];
    if (ls_frame_decode(bytes, len, &f, err, sizeof(err)))
        ls_seed_client_fail(sc->cs, LS_EPROTO, "bad frame from %s: %s", sc->src->name, err);
    else
        ls_seed_client_frame(sc->cs, &f, ls_mono_ns());
    act(sc);
}

static void on_frame(ls_conn_t *c, const ls_conn_frame_t *fr)
{
    struct node_seedc *sc = ls_conn_data(c);
    if (sc) dispatch(sc, fr->bytes, LS_FRAME_HEADER_SIZE + fr->body_len);
}

static void on_close(ls_conn_t *c, int status, const char *msg)
{
    struct node_seedc *sc = ls_conn_data(c);
    if (!sc) return;
    ls_conn_stats(c, &sc->cstats);
    sc->conn = NULL;
    if (ls_seed_client_state(sc->cs) == LS_SEED_CLI_CONNECTING &&
        !ls_seed_client_welcomed(sc->cs) && !sc->net_fixed && sc->net + 1 < sc->src->nnets &&
        !sc->node->stopping) {
        LS_LOGW("seed", "%s: network %s to %s: %s; trying network %s", sc->p->cfg->name,
                sc->src->nets[sc->net].name, sc->src->name, msg, sc->src->nets[sc->net + 1].name);
        sc->net++;
        if (ls__node_seedc_connect(sc) == 0) return;
    }
    ls_seed_client_closed(sc->cs, status, msg);
    act(sc);
}

int ls__node_seedc_connect(struct node_seedc *sc)
{
    const ls_cfg_network_t *net = &sc->src->nets[sc->net];
    ls_conn_opts_t cb = {
        .on_ready = on_ready, .on_frame = on_frame, .on_close = on_close, .data = sc};
    int rc = ls__node_connect(sc->node, sc->src, sc->net, false, &cb, &sc->conn);
    if (rc) {
        ls_seed_client_fail(sc->cs, rc, "cannot connect to %s over network %s (%s:%u): %s",
                            sc->src->name, net->name, net->remote.host, net->remote.port,
                            ls_strerror(rc));
        act(sc);
    }
    return rc;
}

/* ---- loop: events from the receiver thread --------------------------------------------------- */
static void end_swap(struct node_seedc *sc)
{
    pcopy_t *p = sc->p;
    pthread_mutex_lock(&sc->mu);
    p->copy = sc->new_copy;
    sc->taken = true;
    bool swapped = sc->swapped;
    ls_status_op_t op = sc->op;
    char msg[NODE_REASON_MAX];
    snprintf(msg, sizeof(msg), "%s", sc->msg);
    pthread_mutex_unlock(&sc->mu);
    sc->end_ns = ls_now_ns();
    bool ok = swapped && p->copy; /* in place and open */
    ls_seed_client_swapped(sc->cs, ok, msg[0] ? msg : "the new copy cannot be opened");
    sc->shown = ls_seed_client_state(sc->cs);
    if (!ok) snprintf(sc->error, sizeof(sc->error), "%s", ls_seed_client_error(sc->cs, NULL));
    ls_passive_set_copy(p->m, p->copy, op.suspended ? &op : NULL); /* pauses replay if suspended */
    const ls_status_op_t *cur = ls_passive_op(p->m);
    if (!p->copy) {
        NODE_SET_STATE(p, CS_FAILED, "%s", msg);
    } else if (!swapped) {
        NODE_SET_STATE(p, sc->saved_state, "seed from %s failed (the copy is as it was): %.400s",
                       sc->src->name, msg);
    } else if (cur->suspended) {
        NODE_SET_STATE(p, CS_SUSPENDED, "suspended by the operator: %s", cur->comment);
    } else {
        NODE_SET_STATE(p, CS_DISCONNECTED,
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
    ls__node_seedc_reoffer(p, swapped ? LS_REOFFER_REPLACED : 0,
                           swapped ? "was seeded" : "was not seeded");
}

void ls__node_seedc_on_wake(void *data)
{
    struct node_seedc *sc = data;
    pthread_mutex_lock(&sc->mu);
    uint64_t consumed = sc->consumed, done = sc->done;
    sc->consumed = 0;
    bool verified = sc->verified, installed = sc->installed && !sc->taken;
    sc->verified = false;
    int code = sc->code;
    char msg[NODE_REASON_MAX];
    snprintf(msg, sizeof(msg), "%s", sc->msg);
    pthread_mutex_unlock(&sc->mu);
    ls_seed_client_consumed(sc->cs, consumed, done, ls_mono_ns());
    ls_seed_client_figures_t fig;
    ls_seed_client_figures(sc->cs, &fig);
    if (fig.state == LS_SEED_CLI_RECEIVING)
        NODE_SET_STATE(sc->p, CS_SEEDING, "seeding from %s: %u%% (%llu of %llu bytes)",
                       sc->src->name, ls_seed_progress_percent(&fig.prog),
                       (unsigned long long) done, (unsigned long long) fig.info.total_bytes);
    if (installed) {
        act(sc);
        end_swap(sc);
        return;
    }
    if (code)
        ls_seed_client_failed(sc->cs, code, msg);
    else if (verified)
        ls_seed_client_verified(sc->cs);
    act(sc);
}
