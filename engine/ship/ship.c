/* ship: lifecycle, states, the target's frames and the operator's decisions (see ship.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ship/ship_int.h"

const char *ls_ship_state_name(ls_ship_state_t s)
{
    static const char *names[] = {"Initializing", "Healthy",  "Disconnected", "Suspended",
                                  "Failed",       "Diverged", "Seeding",      "Demoted"};
    return (size_t) s < LS_ARRAY_SIZE(names) ? names[s] : "Unknown";
}

static int act(ls_ship_t *m, ls_ship_action_t a)
{
    return m->o.action_cb(m->o.ctx, &a);
}

void ls__ship_set_state(ls_ship_t *m, ls_ship_state_t st, const char *fmt, ...)
{
    char reason[LS_SHIP_REASON_MAX]; /* formatted apart: an argument may be m->reason itself */
    if (m->fenced && st != LS_SHIP_DEMOTED && st != LS_SHIP_DIVERGED)
        return; /* fenced for good: what else happens does not show */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    memcpy(m->reason, reason, sizeof(reason));
    ls_ship_state_t prev = m->state;
    m->state = st;
    if (prev != st)
        act(m, (ls_ship_action_t){
                   .kind = LS_SHIP_ACT_STATE, .state = st, .prev = prev, .reason = m->reason});
    if (prev != st) ls__ship_block_check(m, 0 /* the switch time: the next input's */);
}

bool ls__ship_suspended(const ls_ship_t *m)
{
    return m->o.op.suspended || m->peer_op.suspended;
}

ls_ship_t *ls_ship_new(const ls_ship_options_t *opts, uint64_t now)
{
    (void) now; /* every input takes the time (ship.h); states keep no time of their own */
    LS_ASSERT(opts->send_cb && opts->action_cb);
    ls_ship_t *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    m->o = *opts;
    m->kept = opts->counters;
    m->window = m->credit = LS_PROTO_DB_WINDOW_DEFAULT;
    m->state = LS_SHIP_INITIALIZING;
    snprintf(m->reason, sizeof(m->reason), "waiting for the database to exist");
    if (m->o.op.suspended)
        ls__ship_set_state(m, LS_SHIP_SUSPENDED, "suspended by the operator: %s", m->o.op.comment);
    return m;
}

void ls_ship_free(ls_ship_t *m)
{
    if (!m) return;
    ls__ship_reader_stop(m);
    free(m->blk.buf);
    free(m);
}

/* Forgets the connection: no reader, nothing due, the target's suspension unknown. */
static void drop(ls_ship_t *m)
{
    ls__ship_reader_stop(m);
    m->connected = m->accepted = false;
    m->restart_from = 0;
    m->cs_due = false;
    m->err_due = 0;
    memset(&m->peer_op, 0, sizeof(m->peer_op)); /* the target says again when it connects */
    ls__ship_block_forget(m);
}

/* Back to waiting; FAILED and DIVERGED stay. */
static void reset(ls_ship_t *m, ls_ship_state_t st, const char *reason)
{
    drop(m);
    if (m->state == LS_SHIP_FAILED || m->state == LS_SHIP_DIVERGED) return;
    if (m->o.op.suspended)
        ls__ship_set_state(m, LS_SHIP_SUSPENDED, "suspended by the operator: %s", m->o.op.comment);
    else
        ls__ship_set_state(m, st, "%s", reason);
}

void ls_ship_attach(ls_ship_t *m, ls_source_t *src, const uint8_t dbid[LS_DBID_LEN], uint64_t now)
{
    m->src = src;
    memcpy(m->dbid, dbid, LS_DBID_LEN);
    (void) now;
    reset(m, LS_SHIP_DISCONNECTED, "not connected yet");
}

void ls_ship_source_failed(ls_ship_t *m, const char *msg, uint64_t now)
{
    (void) now;
    ls__ship_set_state(m, LS_SHIP_FAILED, "%s", msg);
}

void ls_ship_connected(ls_ship_t *m, const ls_proto_db_result_t *r, uint32_t db_window,
                       uint64_t now)
{
    drop(m);
    m->connected = true;
    m->accepted = r->status == LS_DB_ACCEPTED;
    m->window = m->credit = db_window ? db_window : LS_PROTO_DB_WINDOW_DEFAULT;
    if (m->fenced) { /* an old active: the target must not wait for it */
        if (m->accepted) ls__ship_fail(m, LS_EFENCED);
        return;
    }
    if (!m->accepted && r->code == LS_EFENCED) {
        ls__ship_fence_by(m, 0, NULL, false, now, "fenced: %.64s refused %.64s: %.*s", m->o.target,
                          m->o.database, (int) LS_MIN(r->reason.len, 300), r->reason.ptr);
        return;
    }
    if (m->accepted && m->o.op.suspended) {
        ls__ship_set_state(m, LS_SHIP_SUSPENDED, "suspended by the operator: %s", m->o.op.comment);
    } else if (m->accepted) {
        ls__ship_set_state(m, LS_SHIP_INITIALIZING, "connected, waiting for the target's position");
    } else {
        ls__ship_set_state(m, r->code == LS_EDBID ? LS_SHIP_FAILED : LS_SHIP_DISCONNECTED,
                           "refused by %s: %.*s", m->o.target, (int) r->reason.len, r->reason.ptr);
        return;
    }
    ls__ship_send_state(m, true);
}

void ls_ship_disconnected(ls_ship_t *m, bool switching, const char *reason, uint64_t now)
{
    (void) now;
    reset(m, switching ? LS_SHIP_INITIALIZING : LS_SHIP_DISCONNECTED, reason);
    ls__ship_block_check(m, now);
}

/* The state an error code leaves the copy in (PROTOCOL.md, ERROR): a transient code means
 * Disconnected (the target asks again after a back-off), a divergence Diverged, anything else
 * Failed. */
static ls_ship_state_t state_for(int code)
{
    if (code == LS_EDIVERGED) return LS_SHIP_DIVERGED;
    return ls_err_is_transient(code) ? LS_SHIP_DISCONNECTED : LS_SHIP_FAILED;
}

/* The target says where it stands: check it against our chain, then ship from there. */
static void on_resume(ls_ship_t *m, const ls_proto_resume_t *r, uint64_t now)
{
    if (m->fenced || ls__ship_suspended(m) || !m->src) return; /* resumed later: re-sent */
    ls_resume_t res = {.epoch = r->epoch, .next = r->next_generation, .last_lsn = r->last_lsn};
    memcpy(res.digest, r->last_digest, LS_DIGEST_SIZE);
    ls_ship_plan_t plan;
    char err[LS_SOURCE_ERRLEN];
    ls__ship_reader_stop(m);
    m->restart_from = 0;
    int rc = ls_source_plan(m->src, &res, &plan, err, sizeof(err));
    if (rc == 0) {
        rc =
            ls__ship_reader_start(m, plan.first, r->next_generation > 1 ? r->last_digest : NULL, 0);
        if (rc == 0) {
            m->blk.held = r->next_generation - 1; /* block mode's queue until DURABLE says */
            ls__ship_set_state(m, LS_SHIP_HEALTHY, "shipping from generation %llu",
                               (unsigned long long) plan.first);
            return;
        }
    } else if (plan.newer_epoch) {
        /* The target holds generations of a newer epoch: another copy was activated. */
        ls__ship_fence_by(m, r->epoch, NULL, true, now,
                          "fenced: target %.64s holds epoch %u of %.64s: %.300s", m->o.target,
                          r->epoch, m->o.database, err);
        return;
    } else {
        ls__ship_set_state(m, state_for(rc), "%s", err);
    }
    ls__ship_fail(m, rc);
}

/* PROTOCOL.md, RE_OFFER: the target's copy of this database changed (a seed): only this
 * database stops and is planned again, the others on the connection go on. The link passes it
 * on only from a connection of version LS_PROTO_VERSION_REOFFER or later. */
static void on_re_offer(ls_ship_t *m, const ls_proto_re_offer_t *r)
{
    ls__ship_reader_stop(m);
    m->restart_from = 0;
    if (r->flags & LS_REOFFER_REPLACED) { /* what the target said about the old copy is void */
        m->durable = m->inspected = m->replayed = m->synced = (ship_pos_t){0};
        m->blk.held = 0;
        m->blk.ack_ns = 0;
    }
    if (r->flags & LS_REOFFER_HOLD) {
        ls__ship_set_state(m, LS_SHIP_SEEDING, "target %s: %.*s", m->o.target,
                           (int) LS_MIN(r->reason.len, 400), r->reason.ptr);
        return;
    }
    m->accepted = true; /* also an entry WELCOME refused while the copy was being seeded */
    if (m->o.op.suspended)
        ls__ship_set_state(m, LS_SHIP_SUSPENDED, "suspended by the operator: %s", m->o.op.comment);
    else
        ls__ship_set_state(m, LS_SHIP_INITIALIZING,
                           "target %s offers it anew (%.*s): waiting for its position", m->o.target,
                           (int) LS_MIN(r->reason.len, 400), r->reason.ptr);
    ls__ship_send_state(m, true);
}

static void on_ask_again(ls_ship_t *m, const ls_proto_ask_again_t *a, uint64_t now)
{
    char msg[LS_SHIP_REASON_MAX];
    ls_status_counters_ask(&m->kept, a->code);
    snprintf(msg, sizeof(msg), "%s asks again from generation %llu: %.*s", m->o.target,
             (unsigned long long) a->generation, (int) LS_MIN(a->message.len, 400), a->message.ptr);
    act(m,
        (ls_ship_action_t){.kind = LS_SHIP_ACT_SAVE_COUNTERS, .counters = &m->kept, .reason = msg});
    if (!m->reader) return;
    /* The generation in flight is finished first (the target drops it), then the reader
     * restarts from the generation asked for (ls_ship_pump). */
    m->restart_from = a->generation;
    if (ls_status_ask_is_damage(a->code)) /* verified FULL before it goes again (send.c) */
        m->restart_full = a->generation;
    else if (m->restart_full < a->generation) /* a damaged one asked earlier is re-read too */
        m->restart_full = 0;
    m->blk.no_tail_gen = a->generation; /* it goes whole: its shadow could not finish it */
    if (m->blk.gen > a->generation)  /* streamed before the target held this one: refused there */
        m->blk.gen = m->blk.off = 0; /* it streams again from byte 0 once this one is resent */
    ls_ship_pump(m, now);
}

static void on_copy_state(ls_ship_t *m, const ls_proto_copy_state_t *cs)
{
    bool was = m->peer_op.suspended;
    ls_ship_op_t *p = &m->peer_op;
    p->suspended = cs->flags & LS_COPY_SUSPENDED;
    p->replay_suspended = cs->flags & LS_COPY_REPLAY_SUSPENDED;
    p->since_ns = cs->since_ns;
    snprintf(p->comment, sizeof(p->comment), "%.*s", (int) cs->comment.len, cs->comment.ptr);
    if (p->suspended && !was) {
        ls__ship_reader_stop(m);
        m->restart_from = 0;
        if (!m->o.op.suspended)
            ls__ship_set_state(m, LS_SHIP_SUSPENDED, "suspended on %s: %s", m->o.target,
                               p->comment);
    } else if (!p->suspended && was && !m->o.op.suspended) {
        ls__ship_set_state(m, LS_SHIP_INITIALIZING, "resumed on %s, waiting for its position",
                           m->o.target);
    }
}

static void on_durable(ls_ship_t *m, uint64_t gen, uint64_t now)
{
    uint64_t before = m->durable.gen;
    ls__ship_advance(&m->durable, gen, 0, now);
    ls_source_queue_t q, rest;
    char err[LS_SOURCE_ERRLEN];
    /* Throughput: the bytes of the generations that became durable. */
    if (m->durable.gen > before && m->src &&
        ls_source_queue(m->src, before, &q, err, sizeof(err)) == 0 &&
        ls_source_queue(m->src, m->durable.gen, &rest, err, sizeof(err)) == 0)
        ls_status_rate_add(&m->rate, q.bytes - rest.bytes, now);
    ls__ship_block_durable_gen(m, gen, now);
    ls__ship_send_state(m, false);
}

void ls_ship_on_frame(ls_ship_t *m, const ls_frame_t *f, uint64_t now)
{
    switch (f->type) {
    case LS_FRAME_RESUME:
        if (m->accepted) on_resume(m, &f->resume, now);
        break;
    case LS_FRAME_DURABLE:
        on_durable(m, f->durable.generation, now);
        break;
    case LS_FRAME_INSPECTED:
        ls__ship_advance(&m->inspected, f->inspected.generation, 0, now);
        break;
    case LS_FRAME_REPLAYED:
        ls__ship_advance(&m->replayed, f->replayed.generation, f->replayed.lsn, now);
        break;
    case LS_FRAME_REPLAYED_SYNCED:
        ls__ship_advance(&m->synced, f->replayed_synced.generation, f->replayed_synced.lsn, now);
        break;
    case LS_FRAME_BLOCK_ACK:
        ls__ship_block_ack(m, &f->block_ack, now);
        break;
    case LS_FRAME_ASK_AGAIN:
        on_ask_again(m, &f->ask_again, now);
        break;
    case LS_FRAME_COPY_STATE:
        on_copy_state(m, &f->copy_state);
        break;
    case LS_FRAME_RE_OFFER:
        on_re_offer(m, &f->re_offer);
        break;
    case LS_FRAME_EPOCH: {
        char who[LS_PROTO_NODE_MAX + 1];
        snprintf(who, sizeof(who), "%.*s", (int) f->epoch.active.len, f->epoch.active.ptr);
        ls_ship_learn_epoch(m, f->epoch.epoch, who, now);
        break;
    }
    case LS_FRAME_ERROR:
        if (f->error.code == LS_EFENCED) { /* the target refuses this node as an old active */
            ls__ship_fence_by(m, 0, NULL, false, now, "fenced: target %.64s: %.*s", m->o.target,
                              (int) LS_MIN(f->error.message.len, 400), f->error.message.ptr);
            break;
        }
        ls__ship_reader_stop(m);
        m->restart_from = 0;
        ls__ship_set_state(m, state_for(f->error.code), "target %s: %.*s", m->o.target,
                           (int) f->error.message.len, f->error.message.ptr);
        break;
    default:
        break; /* not for a source: the caller logs it */
    }
    ls_ship_pump(m, now);
}

int ls_ship_credit(ls_ship_t *m, uint64_t bytes)
{
    if (!m->connected) return LS_ESTATE;
    if (bytes > m->window - m->credit) return LS_EPROTO;
    m->credit += bytes;
    return 0;
}

/* The operator's decision, persisted before it takes effect. */
static int set_op(ls_ship_t *m, bool suspend, const char *comment, uint64_t now)
{
    ls_ship_op_t op = {0};
    if (suspend) {
        op.suspended = true;
        snprintf(op.comment, sizeof(op.comment), "%s", comment ? comment : "");
        op.since_ns = now;
    }
    int rc = act(m, (ls_ship_action_t){.kind = LS_SHIP_ACT_SAVE_OP, .op = &op});
    if (rc == 0) m->o.op = op;
    return rc;
}

int ls_ship_suspend(ls_ship_t *m, const char *comment, uint64_t now)
{
    int rc = set_op(m, true, comment, now);
    if (rc) return rc;
    ls__ship_reader_stop(m);
    m->restart_from = 0;
    ls__ship_set_state(m, LS_SHIP_SUSPENDED, "suspended by the operator: %s", m->o.op.comment);
    ls__ship_send_state(m, true);
    return 0;
}

int ls_ship_resume(ls_ship_t *m, uint64_t now)
{
    int rc = set_op(m, false, NULL, now);
    if (rc) return rc;
    if (m->peer_op.suspended) /* still suspended, by the target's operator now */
        ls__ship_set_state(m, LS_SHIP_SUSPENDED, "suspended on %s: %s", m->o.target,
                           m->peer_op.comment);
    else if (m->state == LS_SHIP_SUSPENDED)
        ls__ship_set_state(m, m->connected ? LS_SHIP_INITIALIZING : LS_SHIP_DISCONNECTED,
                           "resumed by the operator");
    ls__ship_send_state(m, true);
    return 0;
}
