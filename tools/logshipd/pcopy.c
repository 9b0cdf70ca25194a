/* A passive copy in the daemon: engine/copy with its receiver thread (engine/copy/receiver.h),
 * whose events the loop polls on one uv_async and answers with frames to the source. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "daemon.h"

copy_state_t ld_pcopy_running_state(const pcopy_t *p)
{
    return p->peer ? CS_HEALTHY : CS_DISCONNECTED;
}

void ld_pcopy_set_state(pcopy_t *p, copy_state_t st, const char *fmt, ...)
{
    char reason[LD_REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (p->state != st)
        ls_log(st == CS_FAILED || st == CS_DIVERGED ? LS_LOG_ERROR : LS_LOG_INFO, "copy",
               "%s <- %s: %s -> %s (%s)", p->cfg->name, p->cfg->source, ld_state_name(p->state),
               ld_state_name(st), reason);
    p->state = st;
    snprintf(p->reason, sizeof(p->reason), "%s", reason);
}

void ld_pcopy_on_error(pcopy_t *p, int code, const ls_proto_str_t *msg)
{
    const char *src = p->peer ? p->peer->name : p->cfg->source;
    if (code == LS_EDIVERGED) {
        ld_pcopy_set_state(p, CS_DIVERGED, "source %s: %.*s", src, (int) msg->len, msg->ptr);
    } else if (ls_err_is_transient(code)) {
        /* The source stopped shipping it on this connection; nothing is wrong with the copy. A
         * state the operator or a worse failure set stays. */
        if (p->state == CS_HEALTHY || p->state == CS_INITIALIZING || p->state == CS_DISCONNECTED) {
            p->again_ms = p->again_ms ? LS_MIN(p->again_ms * 2, LD_AGAIN_MAX_MS) : LD_AGAIN_MIN_MS;
            p->again_ns = ls_mono_ns() + (uint64_t) p->again_ms * 1000000;
            ld_pcopy_set_state(p, CS_DISCONNECTED, "source %s: %.*s (%s: asking again in %u s)",
                               src, (int) msg->len, msg->ptr, ls_err_name(code),
                               p->again_ms / 1000);
        } else
            LS_LOGW("copy", "%s <- %s: %.*s (%s)", p->cfg->name, src, (int) msg->len, msg->ptr,
                    ls_err_name(code));
    } else {
        ld_pcopy_set_state(p, CS_FAILED, "source %s: %.*s (%s)", src, (int) msg->len, msg->ptr,
                           ls_err_name(code));
    }
}

bool ld_pcopy_clear_failed(pcopy_t *p, char *why, size_t whylen)
{
    if (!p->copy) {
        snprintf(why, whylen, "copy %s is not open (%.300s): restart the daemon or reseed it",
                 p->cfg->name, p->reason);
        return false;
    }
    ls_copy_clear_failed(p->copy);
    ld_pcopy_set_state(p, p->op.suspended ? CS_SUSPENDED : ld_pcopy_running_state(p),
                       "resumed by the operator (it was Failed: %.300s)", p->reason);
    return true;
}

/* ---- events from the receiver thread and the replayer (engine/copy/receiver.h) ---------- */
static void send_gen_frame(pcopy_t *p, uint8_t type, uint64_t gen, uint64_t lsn)
{
    /* While a seed holds the copy (RE_OFFER HOLD) the old copy's positions must not reach the
     * source: a REPLAYED_SYNCED past N would release the logs the seeded copy needs. */
    if (!p->peer || ld_seed_client_busy(p, NULL, 0)) return;
    ls_frame_t f = {.type = type};
    const uint8_t *id = p->peer->dbids[p->idx];
    if (type == LS_FRAME_REPLAYED || type == LS_FRAME_REPLAYED_SYNCED) {
        memcpy(f.replayed.dbid, id, LS_DBID_LEN);
        f.replayed.generation = gen;
        f.replayed.lsn = lsn;
    } else {
        memcpy(f.durable.dbid, id, LS_DBID_LEN);
        f.durable.generation = gen;
    }
    ld_send(p->peer->conn, &f);
}

static void send_ask_again(pcopy_t *p, uint64_t gen, int code, const char *msg)
{
    ld_status_count_ask(&p->kept, p->kept_path, code);
    if (!p->peer) return;
    ls_frame_t f = {.type = LS_FRAME_ASK_AGAIN};
    memcpy(f.ask_again.dbid, p->peer->dbids[p->idx], LS_DBID_LEN);
    f.ask_again.generation = gen;
    f.ask_again.code = code;
    f.ask_again.message = ls_proto_str(msg);
    ld_send(p->peer->conn, &f);
}

static void send_error(pcopy_t *p, int code)
{
    if (!p->peer) return;
    ls_frame_t f = {.type = LS_FRAME_ERROR};
    memcpy(f.error.dbid, p->peer->dbids[p->idx], LS_DBID_LEN);
    f.error.code = code;
    f.error.message = ls_proto_str(p->reason);
    ld_send(p->peer->conn, &f);
}

static void return_credit(pcopy_t *p, const ls_copy_rx_event_t *e)
{
    if (!p->peer || p->peer->id != e->tag) return; /* bytes of an older connection */
    uint64_t conn_grant = 0;
    uint64_t grant = ls_credit_rx_consumed(p->peer->credit, p->idx, e->consumed, &conn_grant);
    ls_frame_t f = {.type = LS_FRAME_CREDIT};
    if (grant) {
        memcpy(f.credit.dbid, p->peer->dbids[p->idx], LS_DBID_LEN);
        f.credit.bytes = (uint32_t) grant;
        ld_send(p->peer->conn, &f);
    }
    if (conn_grant) {
        memset(f.credit.dbid, 0, LS_DBID_LEN);
        f.credit.bytes = (uint32_t) conn_grant;
        ld_send(p->peer->conn, &f);
    }
}

static void on_state_event(pcopy_t *p, const ls_copy_rx_event_t *e)
{
    if (e->code == LS_COPY_DISK_FULL) {
        p->diskfull = true;
        ld_pcopy_set_state(p, CS_DISK_FULL, "%s", e->message);
    } else if (e->code == LS_COPY_FAILED) {
        ld_pcopy_set_state(p, CS_FAILED, "%s", e->message);
        send_error(p, LS_ESTATE);
    }
    /* Healthy again only on real progress: the next DURABLE (handle_event). */
}

/* Asks the source to resend from the generation this copy wants, at most once per generation
 * every LD_ASK_SPACING_NS, and not while the disk is full (housekeeping asks when there is
 * room again). */
static void ask_for_wanted(pcopy_t *p, int code, const char *why)
{
    if (!p->peer || !p->copy) return;
    ls_copy_resume_t r;
    ls_copy_resume_point(p->copy, &r);
    uint64_t now = ls_mono_ns();
    if (r.next_generation == p->asked_gen && now - p->asked_ns < LD_ASK_SPACING_NS) return;
    p->asked_gen = r.next_generation;
    p->asked_ns = now;
    LS_LOGI("copy", "%s: asking %s again from generation %llu (%s)", p->cfg->name, p->peer->name,
            (unsigned long long) r.next_generation, why);
    send_ask_again(p, r.next_generation, code, why);
}

static void handle_event(pcopy_t *p, const ls_copy_rx_event_t *e)
{
    switch (e->kind) {
    case LS_COPY_RX_EV_CONSUMED:
        ld_rate_add(&p->rate, e->consumed);
        return_credit(p, e);
        break;
    case LS_COPY_EV_DURABLE:
        p->again_ms = 0; /* progress: the next transient ERROR backs off from the start */
        if (p->diskfull || (p->state == CS_DISCONNECTED && p->peer)) {
            p->diskfull = false; /* or the source, after a transient ERROR, ships again */
            ld_pcopy_set_state(p, ld_pcopy_running_state(p), "receiving again");
        }
        ld_pos_advance(&p->durable, e->generation, 0);
        send_gen_frame(p, LS_FRAME_DURABLE, e->generation, 0);
        break;
    case LS_COPY_EV_INSPECTED:
        ld_pos_advance(&p->inspected, e->generation, 0);
        send_gen_frame(p, LS_FRAME_INSPECTED, e->generation, 0);
        break;
    case LS_COPY_EV_REPLAYED:
        ld_pos_advance(&p->replayed, e->generation, e->lsn);
        send_gen_frame(p, LS_FRAME_REPLAYED, e->generation, e->lsn);
        break;
    case LS_COPY_EV_REPLAYED_SYNCED:
        send_gen_frame(p, LS_FRAME_REPLAYED_SYNCED, e->generation, e->lsn);
        break;
    case LS_COPY_EV_ASK_AGAIN:
        send_ask_again(p, e->generation, e->code, e->message);
        break;
    case LS_COPY_EV_STATE:
        on_state_event(p, e);
        break;
    case LS_COPY_RX_EV_BEHIND:
        if (!p->diskfull && p->state != CS_FAILED && p->state != CS_DIVERGED)
            ask_for_wanted(p, LS_EGAP, e->message);
        break;
    }
}

static void on_async(uv_async_t *a)
{
    pcopy_t *p = a->data;
    ls_copy_rx_event_t e;
    while (ls_copy_rx_poll(p->rx, &e))
        handle_event(p, &e);
}

static void notify(void *ctx)
{
    uv_async_send(ctx); /* any thread */
}

/* ---- lifecycle ------------------------------------------------------------------------------ */
/* Opens and starts the engine/copy of p with its options (at start, and after a seed's swap on
 * the receiver thread); its events go to p's receiver queue. */
int ld_pcopy_copy_open(pcopy_t *p, ls_copy_t **out, char *err, size_t errlen)
{
    ls_copy_options_t o = {.dir = p->cfg->path,
                           .keep_logs = (uint32_t) p->cfg->keep_logs,
                           .replay_lag_ms = p->cfg->replay_lag_ms,
                           .event_cb = ls_copy_rx_event_cb,
                           .event_ctx = p->rx};
    int rc = ls_copy_open(&o, out, err, errlen);
    if (rc == 0) rc = ls_copy_start(*out);
    if (rc) {
        ls_copy_close(*out);
        *out = NULL;
    }
    return rc;
}

int ld_pcopy_open(node_t *n, pcopy_t *p, const ls_cfg_database_t *cfg)
{
    memset(p, 0, sizeof(*p));
    p->node = n;
    p->cfg = cfg;
    p->idx = -1;
    snprintf(p->kept_path, sizeof(p->kept_path), "%s.counters", cfg->path);
    int kept = ls_status_counters_load(p->kept_path, &p->kept);
    if (kept) LS_LOGW("copy", "%s: counting from 0: %s", p->kept_path, ls_strerror(kept));
    uv_async_init(n->loop, &p->async, on_async);
    p->async.data = p;
    ls_copy_rx_options_t ro = {.name = cfg->name, .notify_cb = notify, .notify_ctx = &p->async};
    p->rx = ls_copy_rx_new(&ro);
    LS_CHECK(p->rx != NULL);
    char err[512] = "";
    int rc = ld_pcopy_copy_open(p, &p->copy, err, sizeof(err));
    if (rc) {
        /* The daemon keeps serving its other databases: this copy shows Failed with why. */
        ld_pcopy_set_state(p, CS_FAILED, "cannot open the copy in %s: %s", cfg->path,
                           err[0] ? err : ls_strerror(rc));
        return 0;
    }
    char reason[256];
    if (ls_copy_state(p->copy, reason, sizeof(reason)) == LS_COPY_FAILED)
        ld_pcopy_set_state(p, CS_FAILED, "%s", reason);
    else
        ld_pcopy_set_state(p, CS_DISCONNECTED, "waiting for %s to connect", cfg->source);
    ld_pcopy_load_op(p); /* after the default state: a suspension shows */
    if (ls_copy_rx_start(p->rx, p->copy) != 0) {
        ld_pcopy_set_state(p, CS_FAILED, "cannot start the receiver thread");
        return 0;
    }
    p->rx_started = true;
    return 0;
}

void ld_pcopy_send_position(pcopy_t *p)
{
    if (!p->peer || ld_seed_client_busy(p, NULL, 0)) return; /* the seed's RE_OFFER says it */
    ld_pcopy_send_state(p);
    if (p->op.suspended) return; /* no RESUME: the source ships nothing until we resume */
    if (p->state == CS_FAILED || p->state == CS_DIVERGED) {
        send_error(p, p->state == CS_DIVERGED ? LS_EDIVERGED : LS_ESTATE);
        return;
    }
    ls_copy_resume_t r;
    ls_copy_resume_point(p->copy, &r);
    ls_frame_t f = {.type = LS_FRAME_RESUME};
    memcpy(f.resume.dbid, p->peer->dbids[p->idx], LS_DBID_LEN);
    f.resume.epoch = r.epoch;
    f.resume.next_generation = r.next_generation;
    memcpy(f.resume.last_digest, r.digest, LS_DIGEST_SIZE);
    f.resume.last_lsn = r.last_lsn;
    ld_send(p->peer->conn, &f);
    ls_copy_stats_t st;
    ls_copy_stats(p->copy, &st);
    if (st.last_replayed)
        send_gen_frame(p, LS_FRAME_REPLAYED, st.last_replayed, st.last_replayed_lsn);
    if (st.last_synced) send_gen_frame(p, LS_FRAME_REPLAYED_SYNCED, st.last_synced, 0);
}

void ld_pcopy_attach(pcopy_t *p, peer_t *peer, int idx)
{
    if (p->peer && p->peer != peer) ld_pcopy_detach(p); /* a newer connection takes over */
    p->peer = peer;
    p->idx = idx;
    p->again_ns = 0; /* the RESUME below is the asking again */
    if ((p->state == CS_DISCONNECTED || p->state == CS_INITIALIZING) && !p->op.suspended)
        ld_pcopy_set_state(p, CS_HEALTHY, "receiving from %s", peer->name);
    ld_pcopy_send_position(p);
}

void ld_pcopy_detach(pcopy_t *p)
{
    if (!p->peer) return;
    p->peer = NULL;
    p->idx = -1;
    p->again_ns = 0;
    p->src_suspended_seen = false; /* the source says again when it reconnects */
    memset(&p->src.op, 0, sizeof(p->src.op));
    if (p->rx_started) /* after ld_pcopy_close the receiver is gone: nothing to abort */
        ls_copy_rx_push(p->rx, ls_copy_item_new(LS_COPY_ITEM_ABORT, 0));
    char seed[LD_REASON_MAX - 64] = "";
    if (p->state == CS_HEALTHY && ld_seed_client_failed_lately(p, seed, sizeof(seed)))
        ld_pcopy_set_state(p, CS_DISCONNECTED, "%s disconnected; %s", p->cfg->source, seed);
    else if (p->state == CS_HEALTHY)
        ld_pcopy_set_state(p, CS_DISCONNECTED, "%s disconnected", p->cfg->source);
}

/* After a transient ERROR from the source, the back-off over: a new RESUME, from which the source
 * plans again (it stopped the database on this connection, as after a suspension). */
static void ask_source_again(pcopy_t *p)
{
    if (!p->again_ns || !p->peer || ls_mono_ns() < p->again_ns) return;
    p->again_ns = 0;
    if (p->state != CS_DISCONNECTED || p->op.suspended) return; /* something else took over */
    ld_pcopy_set_state(p, ld_pcopy_running_state(p), "asking %s again (it said: %.300s)",
                       p->peer->name, p->reason);
    ld_pcopy_send_position(p);
}

/* While the disk is full, ask again for the wanted generation once there is room for it. */
void ld_pcopy_housekeep(pcopy_t *p)
{
    ask_source_again(p);
    if (!p->diskfull || !p->peer) return;
    struct statvfs vfs;
    char dir[LS_CFG_PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "%s/inspect", p->cfg->path); /* may be another filesystem */
    if (statvfs(dir, &vfs) != 0 && statvfs(p->cfg->path, &vfs) != 0) return;
    uint64_t avail = (uint64_t) vfs.f_bavail * vfs.f_frsize;
    uint64_t need = LS_MAX(p->cfg->target_size * 2, (uint64_t) 2 << 20);
    if (avail >= need) ask_for_wanted(p, LS_ENOSPC, "disk space available again");
}

void ld_pcopy_close(pcopy_t *p)
{
    /* The receiver thread's copy is the open one (the loop's is NULL during a seed's swap, and
     * the same object otherwise). */
    ls_copy_t *rxc = ls_copy_rx_stop(p->rx);
    p->rx_started = false;
    ls_copy_close(rxc ? rxc : p->copy); /* stops the replayer, checkpoints */
    p->copy = NULL;                     /* p->rx is freed with the node: a late push is dropped */
    uv_close((uv_handle_t *) &p->async, NULL);
}
