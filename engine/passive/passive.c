/* The passive machine: lifecycle, states, the connection serving the copy, RESUME, frames in
 * (passive.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passive/passive_int.h"

const char *ls_passive_state_name(ls_passive_state_t s)
{
    static const char *names[] = {"Initializing", "Healthy", "Disconnected", "Suspended",
                                  "Seeding",      "Failed",  "Diverged",     "DiskFull"};
    return (unsigned) s < LS_ARRAY_SIZE(names) ? names[s] : "Unknown";
}

ls_passive_t *ls_passive_new(const ls_passive_options_t *opts, uint64_t now)
{
    (void) now;
    ls_passive_t *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    m->o = *opts;
    snprintf(m->database, sizeof(m->database), "%s", opts->database ? opts->database : "");
    snprintf(m->source, sizeof(m->source), "%s", opts->source ? opts->source : "");
    m->op = opts->op;
    m->counters = opts->counters;
    m->idx = -1;
    snprintf(m->reason, sizeof(m->reason), "not started");
    return m;
}

void ls_passive_free(ls_passive_t *m)
{
    free(m);
}

/* ---- helpers (shared with events.c and op.c) ------------------------------------------------ */
void ls__passive_send(ls_passive_t *m, ls_frame_t *f)
{
    m->o.send_cb(m->o.ctx, f);
}

void ls__passive_act(ls_passive_t *m, ls_passive_act_kind_t kind, const char *fmt, ...)
{
    char line[LS_PASSIVE_REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    ls_passive_action_t a = {.kind = kind, .state = m->state, .prev = m->state, .reason = line};
    m->o.action_cb(m->o.ctx, &a);
}

ls_passive_state_t ls__passive_running(const ls_passive_t *m)
{
    return m->connected ? LS_PASSIVE_HEALTHY : LS_PASSIVE_DISCONNECTED;
}

bool ls__passive_held(ls_passive_t *m)
{
    return m->o.held_cb && m->o.held_cb(m->o.ctx);
}

void ls__passive_send_error(ls_passive_t *m, int code)
{
    if (!m->connected) return;
    ls_frame_t f = {.type = LS_FRAME_ERROR};
    memcpy(f.error.dbid, m->dbid, LS_DBID_LEN);
    f.error.code = code;
    f.error.message = ls_proto_str(m->reason);
    ls__passive_send(m, &f);
}

void ls_passive_set_state(ls_passive_t *m, ls_passive_state_t st, uint64_t now, const char *fmt,
                          ...)
{
    (void) now;
    va_list ap;
    va_start(ap, fmt);
    ls_vmsgf(m->reason, sizeof(m->reason), fmt, ap);
    va_end(ap);
    ls_passive_state_t prev = m->state;
    m->state = st;
    if (prev == st) return;
    ls_passive_action_t a = {
        .kind = LS_PASSIVE_ACT_STATE, .state = st, .prev = prev, .reason = m->reason};
    m->o.action_cb(m->o.ctx, &a);
}

/* ---- the copy ------------------------------------------------------------------------------- */
static void pause_replay(ls_passive_t *m)
{
    if (m->copy && (m->op.suspended || m->op.replay_suspended)) ls_copy_pause_replay(m->copy, true);
}

void ls__passive_apply_early(ls_passive_t *m)
{
    if (m->copy) ls_copy_shadow_apply_eager(m->copy, !m->apply_asked || m->apply_wanted);
}

void ls_passive_start(ls_passive_t *m, ls_copy_t *copy, const char *why, uint64_t now)
{
    m->copy = copy;
    char reason[LS_PASSIVE_REASON_MAX];
    if (!copy)
        ls_passive_set_state(m, LS_PASSIVE_FAILED, now, "%s", why ? why : "the copy is not open");
    else if (ls_copy_state(copy, reason, sizeof(reason)) == LS_COPY_FAILED)
        ls_passive_set_state(m, LS_PASSIVE_FAILED, now, "%s", reason);
    else
        ls_passive_set_state(m, LS_PASSIVE_DISCONNECTED, now, "waiting for %s to connect",
                             m->source);
    pause_replay(m);
    ls__passive_apply_early(m);
    if (m->op.suspended)
        ls_passive_set_state(m, LS_PASSIVE_SUSPENDED, now, "suspended by the operator: %s",
                             m->op.comment);
}

void ls_passive_set_copy(ls_passive_t *m, ls_copy_t *copy, const ls_status_op_t *op)
{
    m->copy = copy;
    if (op) m->op = *op;
    pause_replay(m);
    ls__passive_apply_early(m);
}

/* ---- the connection ------------------------------------------------------------------------- */
static void send_replayed(ls_passive_t *m, uint8_t type, uint64_t gen, uint64_t lsn)
{
    ls_frame_t f = {.type = type};
    memcpy(f.replayed.dbid, m->dbid, LS_DBID_LEN);
    f.replayed.generation = gen;
    f.replayed.lsn = lsn;
    ls__passive_send(m, &f);
}

void ls_passive_send_position(ls_passive_t *m, uint64_t now)
{
    (void) now;
    if (!m->connected || ls__passive_held(m)) return; /* a seed's RE_OFFER says it */
    ls__passive_send_state(m);
    if (m->op.suspended) return; /* no RESUME: the source ships nothing until we resume */
    if (m->state == LS_PASSIVE_FAILED || m->state == LS_PASSIVE_DIVERGED || !m->copy) {
        ls__passive_send_error(m, m->state == LS_PASSIVE_DIVERGED ? LS_EDIVERGED : LS_ESTATE);
        return;
    }
    ls_copy_resume_t r;
    ls_copy_resume_point(m->copy, &r);
    ls_frame_t f = {.type = LS_FRAME_RESUME};
    memcpy(f.resume.dbid, m->dbid, LS_DBID_LEN);
    f.resume.epoch = r.epoch;
    f.resume.next_generation = r.next_generation;
    memcpy(f.resume.last_digest, r.digest, LS_DIGEST_SIZE);
    f.resume.last_lsn = r.last_lsn;
    ls__passive_send(m, &f);
    ls_copy_stats_t st;
    ls_copy_stats(m->copy, &st);
    if (st.last_replayed)
        send_replayed(m, LS_FRAME_REPLAYED, st.last_replayed, st.last_replayed_lsn);
    if (st.last_synced) send_replayed(m, LS_FRAME_REPLAYED_SYNCED, st.last_synced, 0);
}

int ls_passive_admit(ls_passive_t *m, const uint8_t dbid[LS_DBID_LEN], char *why, size_t whylen,
                     uint64_t now)
{
    if (!m->copy) {
        snprintf(why, whylen, "copy %s cannot be opened: %.160s", m->database, m->reason);
        return LS_ESTATE;
    }
    ls_store_t *st = ls_copy_store(m->copy);
    ls_store_meta_t meta;
    if (!st) return 0; /* a new copy adopts the first database it is given */
    ls_store_meta(st, &meta);
    if (!memcmp(meta.dbid, dbid, LS_DBID_LEN)) return 0;
    char a[2 * LS_DBID_LEN + 1], b[2 * LS_DBID_LEN + 1];
    ls_hex(meta.dbid, LS_DBID_LEN, a);
    ls_hex(dbid, LS_DBID_LEN, b);
    snprintf(why, whylen,
             "copy %s belongs to database %s, the source ships %s: refused (reseed the copy to "
             "replace it)",
             m->database, a, b);
    ls_passive_set_state(m, LS_PASSIVE_FAILED, now, "%s", why);
    return LS_EDBID;
}

void ls_passive_connected(ls_passive_t *m, ls_credit_rx_t *credit, int idx,
                          const uint8_t dbid[LS_DBID_LEN], uint64_t tag, uint64_t now)
{
    if (m->connected && m->tag != tag) /* a newer connection takes over */
        ls_passive_disconnected(m, NULL, now);
    m->connected = true;
    m->credit = credit;
    m->idx = idx;
    memcpy(m->dbid, dbid, LS_DBID_LEN);
    m->tag = tag;
    m->again_ns = 0; /* the RESUME below is the asking again */
    m->refused_gen = 0;
    if ((m->state == LS_PASSIVE_DISCONNECTED || m->state == LS_PASSIVE_INITIALIZING) &&
        !m->op.suspended)
        ls_passive_set_state(m, LS_PASSIVE_HEALTHY, now, "receiving from %s", m->source);
    ls_passive_send_position(m, now);
}

void ls_passive_disconnected(ls_passive_t *m, const char *note, uint64_t now)
{
    if (!m->connected) return;
    m->connected = false;
    m->credit = NULL;
    m->idx = -1;
    m->again_ns = 0;
    m->src_suspended_seen = false; /* the source says again when it reconnects */
    memset(&m->src.op, 0, sizeof(m->src.op));
    if (m->o.rx) ls_copy_rx_push(m->o.rx, ls_copy_item_new(LS_COPY_ITEM_ABORT, 0));
    if (m->state == LS_PASSIVE_HEALTHY)
        ls_passive_set_state(m, LS_PASSIVE_DISCONNECTED, now, "%s disconnected%s%s", m->source,
                             note && note[0] ? "; " : "", note ? note : "");
}

void ls_passive_apply_asked(ls_passive_t *m, bool asked)
{
    m->apply_asked = asked;
    m->apply_wanted = false; /* until the source's COPY_STATE says otherwise */
    ls__passive_apply_early(m);
}

bool ls_passive_is_connected(const ls_passive_t *m)
{
    return m->connected;
}

/* ---- frames in ------------------------------------------------------------------------------ */
static void on_error(ls_passive_t *m, int code, const ls_proto_str_t *msg, uint64_t now)
{
    if (code == LS_EFENCED) {
        /* The source learned of a newer epoch: it is an old active and ships this database no
         * more. The copy is fine; it waits for the new active. */
        m->again_ns = 0;
        if (m->state != LS_PASSIVE_FAILED && m->state != LS_PASSIVE_DIVERGED)
            ls_passive_set_state(m, LS_PASSIVE_DISCONNECTED, now, "source %s was fenced: %.*s",
                                 m->source, (int) msg->len, msg->ptr);
    } else if (code == LS_EDIVERGED) {
        ls_passive_set_state(m, LS_PASSIVE_DIVERGED, now, "source %s: %.*s", m->source,
                             (int) msg->len, msg->ptr);
    } else if (ls_err_is_transient(code)) {
        /* The source stopped shipping it on this connection; nothing is wrong with the copy. A
         * state the operator or a worse failure set stays. */
        if (m->state == LS_PASSIVE_HEALTHY || m->state == LS_PASSIVE_INITIALIZING ||
            m->state == LS_PASSIVE_DISCONNECTED) {
            m->again_ms = m->again_ms ? LS_MIN(m->again_ms * 2, LS_PASSIVE_AGAIN_MAX_MS)
                                      : LS_PASSIVE_AGAIN_MIN_MS;
            m->again_ns = now + (uint64_t) m->again_ms * 1000000;
            ls_passive_set_state(m, LS_PASSIVE_DISCONNECTED, now,
                                 "source %s: %.*s (%s: asking again in %u s)", m->source,
                                 (int) msg->len, msg->ptr, ls_err_name(code), m->again_ms / 1000);
        } else {
            ls__passive_act(m, LS_PASSIVE_ACT_LOG, "source %s: %.*s (%s)", m->source,
                            (int) msg->len, msg->ptr, ls_err_name(code));
        }
    } else {
        ls_passive_set_state(m, LS_PASSIVE_FAILED, now, "source %s: %.*s (%s)", m->source,
                             (int) msg->len, msg->ptr, ls_err_name(code));
    }
}

/* GEN_BEGIN / GEN_DATA / GEN_END become items of the copy's receiver; held, they are dropped
 * (GEN_DATA's credit given back). */
static int on_gen(ls_passive_t *m, const ls_frame_t *f, uint64_t now)
{
    bool held = ls__passive_held(m);
    ls_copy_item_t *it;
    if (f->type == LS_FRAME_GEN_DATA) {
        if (ls_credit_rx_received(m->credit, m->idx, f->gen_data.len) != 0) return LS_EPROTO;
        if (held || !m->o.rx || (m->refused_gen && f->gen_data.generation == m->refused_gen)) {
            ls__passive_grant(m, f->gen_data.len);
            return 0;
        }
        it = ls_copy_rx_item_new(m->o.rx, LS_COPY_ITEM_DATA, f->gen_data.len);
        it->generation = f->gen_data.generation;
        it->offset = f->gen_data.offset;
        memcpy(it->data, f->gen_data.data, f->gen_data.len);
    } else if (held || !m->o.rx) {
        return 0;
    } else if (f->type == LS_FRAME_GEN_END && m->refused_gen == f->gen_end.generation) {
        return 0; /* its GEN_BEGIN was refused (epoch.c) */
    } else if (f->type == LS_FRAME_GEN_BEGIN || f->type == LS_FRAME_GEN_TAIL) {
        if (ls__passive_gen_refused(m, &f->gen_begin, now)) return 0;
        it = ls_copy_item_new(LS_COPY_ITEM_BEGIN, 0);
        it->epoch = f->gen_begin.epoch;
        it->generation = f->gen_begin.generation;
        it->size = f->gen_begin.size;
        it->close_ns = f->gen_begin.close_ns;
        it->offset = f->gen_begin.start; /* GEN_TAIL: [0, start) from the shadow */
    } else {
        it = ls_copy_item_new(LS_COPY_ITEM_END, 0);
        it->generation = f->gen_end.generation;
        memcpy(it->digest, f->gen_end.digest, LS_DIGEST_SIZE);
    }
    it->tag = m->tag; /* credit goes back to this connection only */
    ls_copy_rx_push(m->o.rx, it);
    return 0;
}

/* BLOCK (block mode): the shadow's bytes go to the receiver like GEN_DATA, within the same
 * credit; held, or of an epoch older than the newest known, they are dropped with their credit
 * given back. */
static int on_block(ls_passive_t *m, const ls_proto_block_t *b)
{
    if (ls_credit_rx_received(m->credit, m->idx, b->len) != 0) return LS_EPROTO;
    if (ls__passive_held(m) || !m->o.rx || b->epoch < ls_passive_epoch(m) ||
        m->state == LS_PASSIVE_FAILED || m->state == LS_PASSIVE_DIVERGED) {
        ls__passive_grant(m, b->len);
        return 0;
    }
    ls_copy_item_t *it = ls_copy_item_new(LS_COPY_ITEM_BLOCK, b->len);
    it->epoch = b->epoch;
    it->generation = b->generation;
    it->offset = b->offset;
    it->lsn = b->durable_lsn;
    memcpy(it->data, b->data, b->len);
    it->tag = m->tag;
    ls_copy_rx_push(m->o.rx, it);
    return 0;
}

int ls_passive_on_frame(ls_passive_t *m, const ls_frame_t *f, uint64_t now)
{
    if (!m->connected) return 0;
    switch (f->type) {
    case LS_FRAME_BLOCK:
        return on_block(m, &f->block);
    case LS_FRAME_GEN_BEGIN:
    case LS_FRAME_GEN_TAIL:
    case LS_FRAME_GEN_DATA:
    case LS_FRAME_GEN_END:
        return on_gen(m, f, now);
    case LS_FRAME_EPOCH:
        ls__passive_on_epoch(m, &f->epoch, now);
        return 0;
    case LS_FRAME_COPY_STATE:
        ls__passive_on_copy_state(m, &f->copy_state, now);
        return 0;
    case LS_FRAME_ERROR:
        on_error(m, f->error.code, &f->error.message, now);
        return 0;
    default:
        return 0;
    }
}

void ls_passive_clock_offset(ls_passive_t *m, int64_t offset_ns)
{
    m->clock_offset_ns = offset_ns;
}

/* After a transient ERROR from the source, the back-off over: a new RESUME, from which the source
 * plans again (it stopped the database on this connection, as after a suspension). */
void ls_passive_tick(ls_passive_t *m, uint64_t now)
{
    if (!m->again_ns || !m->connected || now < m->again_ns) return;
    m->again_ns = 0;
    if (m->state != LS_PASSIVE_DISCONNECTED || m->op.suspended) return; /* something else did */
    char was[LS_PASSIVE_REASON_MAX];
    snprintf(was, sizeof(was), "%s", m->reason);
    ls_passive_set_state(m, ls__passive_running(m), now, "asking %s again (it said: %.300s)",
                         m->source, was);
    ls_passive_send_position(m, now);
}

ls_passive_state_t ls_passive_state(const ls_passive_t *m)
{
    return m->state;
}

const char *ls_passive_reason(const ls_passive_t *m)
{
    return m->reason;
}

const ls_status_op_t *ls_passive_op(const ls_passive_t *m)
{
    return &m->op;
}

ls_copy_t *ls_passive_copy(const ls_passive_t *m)
{
    return m->copy;
}
