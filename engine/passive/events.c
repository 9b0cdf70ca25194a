/* The passive machine's inputs from the copy (its receiver's events, polled on the caller's
 * thread): acknowledgements to the source, ask-again with its rate limit, the receive credit
 * given back, the copy's own state, and the throughput window. */
#include <stdio.h>
#include <string.h>

#include "passive/passive_int.h"

/* ---- frames out ----------------------------------------------------------------------------- */
void ls__passive_grant(ls_passive_t *m, uint64_t bytes)
{
    uint64_t conn_grant = 0;
    uint64_t grant = ls_credit_rx_consumed(m->credit, m->idx, bytes, &conn_grant);
    ls_frame_t f = {.type = LS_FRAME_CREDIT};
    if (grant) {
        memcpy(f.credit.dbid, m->dbid, LS_DBID_LEN);
        f.credit.bytes = (uint32_t) grant;
        ls__passive_send(m, &f);
    }
    if (conn_grant) {
        memset(f.credit.dbid, 0, LS_DBID_LEN);
        f.credit.bytes = (uint32_t) conn_grant;
        ls__passive_send(m, &f);
    }
}

/* DURABLE / INSPECTED / REPLAYED / REPLAYED_SYNCED. While a seed holds the copy the old copy's
 * positions must not reach the source: a REPLAYED_SYNCED past N would release the logs the
 * seeded copy needs. */
static void send_ack(ls_passive_t *m, uint8_t type, uint64_t gen, uint64_t lsn)
{
    if (!m->connected || ls__passive_held(m)) return;
    ls_frame_t f = {.type = type};
    if (type == LS_FRAME_REPLAYED || type == LS_FRAME_REPLAYED_SYNCED) {
        memcpy(f.replayed.dbid, m->dbid, LS_DBID_LEN);
        f.replayed.generation = gen;
        f.replayed.lsn = lsn;
    } else {
        memcpy(f.durable.dbid, m->dbid, LS_DBID_LEN);
        f.durable.generation = gen;
    }
    ls__passive_send(m, &f);
}

/* BLOCK_ACK: the shadow's durable position (m->block), with what the store holds (the shadow's
 * transactions applied early count: engine/copy's applied_lsn). */
static void send_block_ack(ls_passive_t *m)
{
    if (!m->connected || ls__passive_held(m) || !m->block.generation) return;
    ls_frame_t f = {.type = LS_FRAME_BLOCK_ACK};
    memcpy(f.block_ack.dbid, m->dbid, LS_DBID_LEN);
    f.block_ack.epoch = m->block.epoch;
    f.block_ack.generation = m->block.generation;
    f.block_ack.offset = m->block.offset;
    f.block_ack.durable_lsn = m->block.lsn;
    if (m->copy) {
        ls_copy_stats_t st;
        ls_copy_stats(m->copy, &st);
        f.block_ack.applied_lsn = st.applied_lsn;
    }
    ls__passive_send(m, &f);
}

static void send_ask_again(ls_passive_t *m, uint64_t gen, int code, const char *msg)
{
    ls_status_counters_ask(&m->counters, code);
    ls_passive_action_t a = {.kind = LS_PASSIVE_ACT_SAVE_COUNTERS,
                             .state = m->state,
                             .prev = m->state,
                             .reason = msg,
                             .counters = &m->counters};
    m->o.action_cb(m->o.ctx, &a);
    if (!m->connected) return;
    ls_frame_t f = {.type = LS_FRAME_ASK_AGAIN};
    memcpy(f.ask_again.dbid, m->dbid, LS_DBID_LEN);
    f.ask_again.generation = gen;
    f.ask_again.code = code;
    f.ask_again.message = ls_proto_str(msg);
    ls__passive_send(m, &f);
}

/* Asks the source to resend from the generation the copy wants, at most once per generation
 * every LS_PASSIVE_ASK_SPACING_NS. */
static void ask_for_wanted(ls_passive_t *m, int code, const char *why, uint64_t now)
{
    if (!m->connected || !m->copy) return;
    ls_copy_resume_t r;
    ls_copy_resume_point(m->copy, &r);
    if (r.next_generation == m->asked_gen && now - m->asked_ns < LS_PASSIVE_ASK_SPACING_NS) return;
    m->asked_gen = r.next_generation;
    m->asked_ns = now;
    ls__passive_act(m, LS_PASSIVE_ACT_LOG, "%s: asking %s again from generation %llu (%s)",
                    m->database, m->source, (unsigned long long) r.next_generation, why);
    send_ask_again(m, r.next_generation, code, why);
}

void ls_passive_space_available(ls_passive_t *m, uint64_t now)
{
    if (m->diskfull) ask_for_wanted(m, LS_ENOSPC, "disk space available again", now);
}

bool ls_passive_disk_full(const ls_passive_t *m)
{
    return m->diskfull;
}

/* ---- events --------------------------------------------------------------------------------- */
static void on_state(ls_passive_t *m, const ls_copy_rx_event_t *e, uint64_t now)
{
    if (e->code == LS_COPY_DISK_FULL) {
        m->diskfull = true;
        ls_passive_set_state(m, LS_PASSIVE_DISK_FULL, now, "%s", e->message);
    } else if (e->code == LS_COPY_FAILED) {
        ls_passive_set_state(m, LS_PASSIVE_FAILED, now, "%s", e->message);
        ls__passive_send_error(m, LS_ESTATE);
    }
    /* Healthy again only on real progress: the next DURABLE. */
}

static void advance(ls__passive_pos_t *pos, uint64_t gen, uint64_t now)
{
    if (gen < pos->gen) return; /* a late acknowledgement changes nothing */
    pos->gen = gen;
    pos->when_ns = now;
}

static void on_durable(ls_passive_t *m, uint64_t gen, uint64_t now)
{
    m->again_ms = 0; /* progress: the next transient ERROR backs off from the start */
    if (m->diskfull || (m->state == LS_PASSIVE_DISCONNECTED && m->connected)) {
        m->diskfull = false; /* or the source, after a transient ERROR, ships again */
        if (m->state == LS_PASSIVE_DISK_FULL || m->state == LS_PASSIVE_DISCONNECTED)
            ls_passive_set_state(m, ls__passive_running(m), now, "receiving again");
    }
    advance(&m->durable, gen, now);
    send_ack(m, LS_FRAME_DURABLE, gen, 0);
}

void ls_passive_on_event(ls_passive_t *m, const ls_copy_rx_event_t *e, uint64_t now)
{
    switch (e->kind) {
    case LS_COPY_RX_EV_CONSUMED:
        ls_status_rate_add(&m->rate, e->consumed, now);
        if (m->connected && e->tag == m->tag) ls__passive_grant(m, e->consumed);
        break;
    case LS_COPY_EV_DURABLE:
        on_durable(m, e->generation, now);
        break;
    case LS_COPY_EV_INSPECTED:
        advance(&m->inspected, e->generation, now);
        send_ack(m, LS_FRAME_INSPECTED, e->generation, 0);
        break;
    case LS_COPY_EV_REPLAYED:
        advance(&m->replayed, e->generation, now);
        send_ack(m, LS_FRAME_REPLAYED, e->generation, e->lsn);
        break;
    case LS_COPY_EV_REPLAYED_SYNCED:
        send_ack(m, LS_FRAME_REPLAYED_SYNCED, e->generation, e->lsn);
        break;
    case LS_COPY_EV_ASK_AGAIN:
        send_ask_again(m, e->generation, e->code, e->message);
        break;
    case LS_COPY_EV_STATE:
        on_state(m, e, now);
        break;
    case LS_COPY_RX_EV_BLOCK:
        m->block = (ls__passive_block_t){e->epoch, e->generation, e->offset, e->lsn, now};
        send_block_ack(m);
        break;
    case LS_COPY_EV_APPLIED: /* the shadow applied early: remote_applied commits wait on it */
        send_block_ack(m);
        break;
    case LS_COPY_RX_EV_BEHIND:
        if (!m->diskfull && m->state != LS_PASSIVE_FAILED && m->state != LS_PASSIVE_DIVERGED)
            ask_for_wanted(m, LS_EGAP, e->message, now);
        break;
    }
}

void ls_passive_poll(ls_passive_t *m, uint64_t now)
{
    ls_copy_rx_event_t e;
    bool held = m->o.rx && ls_copy_rx_run_held(m->o.rx); /* BLOCKs written here */
    while (m->o.rx && ls_copy_rx_poll(m->o.rx, &e))
        ls_passive_on_event(m, &e, now);
    if (held) ls_copy_rx_held_done(m->o.rx); /* after their BLOCK_ACK went */
}
