/* A shipper: one (active database, target) pair. It checks the target's position against our
 * chain (engine/source's plan), runs a pipelined reader from there, frames each generation as
 * GEN_BEGIN / GEN_DATA... / GEN_END, and keeps the target's acknowledged positions. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"

void ld_shipper_set_state(shipper_t *s, copy_state_t st, const char *fmt, ...)
{
    char reason[LD_REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (s->state != st) { /* transitions are logged with their cause */
        ls_log(st == CS_FAILED || st == CS_DIVERGED ? LS_LOG_ERROR : LS_LOG_INFO, "copy",
               "%s -> %s: %s -> %s (%s)", s->db->cfg->name, s->link->cfg->name,
               ld_state_name(s->state), ld_state_name(st), reason);
    }
    s->state = st;
    snprintf(s->reason, sizeof(s->reason), "%s", reason);
}

static void stop_reader(shipper_t *s)
{
    /* A generation abandoned half-way: its unsent bytes leave the credit ledger's backlog, or
     * the link would pick this database for data it no longer has. */
    if (s->cur && s->begun && s->link->credit && s->idx >= 0)
        ls_credit_tx_backlog_drop(s->link->credit, s->idx);
    s->begun = false;
    if (s->cur && s->reader) ls_reader_release(s->reader, s->cur);
    s->cur = NULL;
    s->cur_off = 0;
    ls_reader_stop(s->reader);
    s->reader = NULL;
    s->shipping = false;
}

void ld_shipper_reset(shipper_t *s, copy_state_t state, const char *reason)
{
    stop_reader(s);
    s->accepted = false;
    s->begun = false;
    s->restart_from = 0;
    memset(&s->peer_op, 0, sizeof(s->peer_op)); /* the target says again when it connects */
    if (s->op.suspended) state = CS_SUSPENDED, reason = "suspended by the operator";
    if (s->state != CS_FAILED && s->state != CS_DIVERGED)
        ld_shipper_set_state(s, state, "%s", reason);
}

void ld_shipper_load_kept(shipper_t *s)
{
    snprintf(s->kept_path, sizeof(s->kept_path), "%s/copy-%s.counters", s->db->cfg->path,
             s->link->cfg->name);
    int rc = ls_status_counters_load(s->kept_path, &s->kept);
    if (rc) LS_LOGW("copy", "%s: counting from 0: %s", s->kept_path, ls_strerror(rc));
}

void ld_shipper_pause(shipper_t *s)
{
    stop_reader(s);
    s->begun = false;
    s->restart_from = 0;
}

static void notify(void *ctx)
{
    link_t *l = ctx;
    uv_async_send(&l->wake);
}

static int start_reader(shipper_t *s, uint64_t first, const uint8_t *prev_digest)
{
    ls_reader_options_t o = {.prev_digest = prev_digest};
    int rc = ls_reader_start(s->db->src, first, &o, notify, s->link, &s->reader);
    if (rc) {
        ld_shipper_set_state(s, CS_FAILED, "cannot start the log reader: %s", ls_strerror(rc));
        return rc;
    }
    s->shipping = true;
    s->next = first;
    return 0;
}

/* Tells the target why this copy stopped (it shows the same state). */
static void send_error(shipper_t *s, int code)
{
    ls_frame_t f = {.type = LS_FRAME_ERROR};
    memcpy(f.error.dbid, s->db->dbid, LS_DBID_LEN);
    f.error.code = code;
    f.error.message = ls_proto_str(s->reason);
    if (s->link->conn) ld_send(s->link->conn, &f);
}

static void on_resume(shipper_t *s, const ls_proto_resume_t *r)
{
    if (s->op.suspended || s->peer_op.suspended) return; /* resumed later: the target re-sends */
    ls_resume_t res = {.epoch = r->epoch, .next = r->next_generation, .last_lsn = r->last_lsn};
    memcpy(res.digest, r->last_digest, LS_DIGEST_SIZE);
    ls_ship_plan_t plan;
    char err[LS_SOURCE_ERRLEN];
    stop_reader(s);
    int rc = ls_source_plan(s->db->src, &res, &plan, err, sizeof(err));
    if (rc == LS_EDIVERGED) {
        ld_shipper_set_state(s, CS_DIVERGED, "%s", err);
    } else if (rc && ls_err_is_transient(rc)) { /* the target asks again after a back-off */
        ld_shipper_set_state(s, CS_DISCONNECTED, "%s", err);
    } else if (rc) {
        ld_shipper_set_state(s, CS_FAILED, "%s", err);
    } else if (start_reader(s, plan.first, r->next_generation > 1 ? r->last_digest : NULL) == 0) {
        ld_shipper_set_state(s, CS_HEALTHY, "shipping from generation %llu",
                             (unsigned long long) plan.first);
        return;
    }
    send_error(s, rc ? rc : LS_EIO);
}

static void on_ask_again(shipper_t *s, const ls_proto_ask_again_t *a)
{
    ld_status_count_ask(&s->kept, s->kept_path, a->code);
    LS_LOGW("copy", "%s -> %s: target asks again from generation %llu: %.*s", s->db->cfg->name,
            s->link->cfg->name, (unsigned long long) a->generation, (int) a->message.len,
            a->message.ptr);
    if (!s->shipping) return;
    /* The generation in flight is finished first (the target drops it), then the reader restarts
     * from the generation asked for. */
    s->restart_from = a->generation;
    if (!s->cur) ld_shipper_fill(s);
}

/* PROTOCOL.md, RE_OFFER: the target's copy of this database changed (a seed): only it is planned
 * anew; the connection and its other databases go on. */
static void on_re_offer(shipper_t *s, const ls_proto_re_offer_t *r)
{
    if (s->link->version < LS_PROTO_VERSION_REOFFER) {
        LS_LOGW("copy", "%s -> %s: RE_OFFER on a version %u connection ignored", s->db->cfg->name,
                s->link->cfg->name, (unsigned) s->link->version);
        return;
    }
    stop_reader(s);
    s->restart_from = 0;
    if (r->flags & LS_REOFFER_REPLACED) /* what the target said about the old copy is void */
        s->durable = s->inspected = s->replayed = s->synced = (ld_pos_t){0};
    if (r->flags & LS_REOFFER_HOLD) {
        ld_shipper_set_state(s, CS_SEEDING, "target %s: %.*s", s->link->cfg->name,
                             (int) r->reason.len, r->reason.ptr);
        return;
    }
    s->accepted = true; /* also an entry WELCOME refused while the copy was being seeded */
    ld_shipper_set_state(s, s->op.suspended ? CS_SUSPENDED : CS_INITIALIZING,
                         "target %s offers it anew (%.*s): waiting for its position",
                         s->link->cfg->name, (int) r->reason.len, r->reason.ptr);
    ld_shipper_send_state(s, true);
}

void ld_shipper_on_frame(shipper_t *s, const ls_frame_t *f)
{
    switch (f->type) {
    case LS_FRAME_RESUME:
        if (s->accepted) on_resume(s, &f->resume);
        break;
    case LS_FRAME_DURABLE: {
        uint64_t before = s->durable.gen;
        ld_pos_advance(&s->durable, f->durable.generation, 0);
        ls_source_queue_t q;
        char err[LS_SOURCE_ERRLEN];
        /* Throughput: the bytes of the generations that became durable. */
        if (s->durable.gen > before && s->db->src &&
            ls_source_queue(s->db->src, before, &q, err, sizeof(err)) == 0) {
            ls_source_queue_t rest;
            if (ls_source_queue(s->db->src, s->durable.gen, &rest, err, sizeof(err)) == 0)
                ld_rate_add(&s->rate, q.bytes - rest.bytes);
        }
        ld_shipper_send_state(s, false);
        break;
    }
    case LS_FRAME_INSPECTED:
        ld_pos_advance(&s->inspected, f->inspected.generation, 0);
        break;
    case LS_FRAME_REPLAYED:
        ld_pos_advance(&s->replayed, f->replayed.generation, f->replayed.lsn);
        break;
    case LS_FRAME_REPLAYED_SYNCED:
        ld_pos_advance(&s->synced, f->replayed_synced.generation, f->replayed_synced.lsn);
        break;
    case LS_FRAME_ASK_AGAIN:
        on_ask_again(s, &f->ask_again);
        break;
    case LS_FRAME_COPY_STATE:
        ld_shipper_on_copy_state(s, &f->copy_state);
        break;
    case LS_FRAME_RE_OFFER:
        on_re_offer(s, &f->re_offer);
        break;
    case LS_FRAME_ERROR: /* PROTOCOL.md, ERROR: a transient code means Disconnected */
        stop_reader(s);
        ld_shipper_set_state(s,
                             f->error.code == LS_EDIVERGED        ? CS_DIVERGED
                             : ls_err_is_transient(f->error.code) ? CS_DISCONNECTED
                                                                  : CS_FAILED,
                             "target %s: %.*s", s->link->cfg->name, (int) f->error.message.len,
                             f->error.message.ptr);
        break;
    default:
        LS_LOGW("copy", "%s -> %s: unexpected %s frame ignored", s->db->cfg->name,
                s->link->cfg->name, ls_frame_type_name(f->type));
    }
}

static int send_begin(shipper_t *s)
{
    ls_frame_t f = {.type = LS_FRAME_GEN_BEGIN};
    memcpy(f.gen_begin.dbid, s->db->dbid, LS_DBID_LEN);
    f.gen_begin.epoch = s->cur->epoch;
    f.gen_begin.generation = s->cur->generation;
    f.gen_begin.size = s->cur->size;
    f.gen_begin.close_ns = s->cur->close_ns;
    int rc = ld_send(s->link->conn, &f);
    if (rc) return rc;
    s->begun = true;
    ls_credit_tx_backlog_add(s->link->credit, s->idx, s->cur->size);
    return 0;
}

static int send_end(shipper_t *s)
{
    ls_frame_t f = {.type = LS_FRAME_GEN_END};
    memcpy(f.gen_end.dbid, s->db->dbid, LS_DBID_LEN);
    f.gen_end.generation = s->cur->generation;
    memcpy(f.gen_end.digest, s->cur->digest, LS_DIGEST_SIZE);
    int rc = ld_send(s->link->conn, &f);
    if (rc) return rc;
    s->next = s->cur->generation + 1;
    s->sent_gens++;
    ls_reader_release(s->reader, s->cur);
    s->cur = NULL;
    s->begun = false;
    return 0;
}

/* Keeps one generation in flight: takes it from the reader and sends GEN_BEGIN; sends GEN_END
 * once all its data went out. Returns LS_EBUSY when the socket is full (on_drain resumes). */
int ld_shipper_fill(shipper_t *s)
{
    while (s->shipping && s->link->ready) {
        if (!s->cur && s->restart_from) {
            uint64_t from = s->restart_from;
            stop_reader(s);
            s->restart_from = 0;
            if (start_reader(s, from, NULL)) return 0;
        }
        if (!s->cur) {
            int rc = ls_reader_next(s->reader, &s->cur);
            if (rc == LS_EBUSY) {
                s->cur = NULL;
                return 0;
            }
            if (rc) {
                s->cur = NULL;
                ld_shipper_set_state(s, CS_FAILED, "%s", ls_reader_error(s->reader));
                stop_reader(s);
                send_error(s, rc);
                return 0;
            }
            s->cur_off = 0;
            s->begun = false;
        }
        /* Chunks still with the link's zstd worker go out first: a GEN_END or a new GEN_BEGIN
         * must not overtake them. The worker's completion fills again. */
        if (s->zinflight && (!s->begun || s->cur_off >= s->cur->size)) return 0;
        int rc = 0;
        if (!s->begun) rc = send_begin(s);
        if (rc) return rc;
        if (s->cur_off < s->cur->size) return 0; /* the link pump sends the data */
        rc = send_end(s);
        if (rc) return rc;
    }
    return 0;
}
