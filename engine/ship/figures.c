/* ship: the target's positions, throughput, the status figures and the seed's hold on the logs
 * (see ship.h). Every time comes from the injected clock. */
#include <stdio.h>
#include <string.h>

#include "ship/ship_int.h"

#define SEC 1000000000ull

void ls__ship_advance(ship_pos_t *p, uint64_t gen, uint64_t lsn, uint64_t now)
{
    if (gen < p->gen) return; /* a late acknowledgement changes nothing */
    p->gen = gen;
    p->lsn = lsn;
    p->when_ns = now;
}

static uint64_t age_ns(uint64_t then_ns, uint64_t now_ns)
{
    return then_ns && now_ns > then_ns ? now_ns - then_ns : 0;
}

static ls_status_pos_t pos(const ship_pos_t *p)
{
    return (ls_status_pos_t){p->gen, p->when_ns};
}

void ls_ship_status(ls_ship_t *m, uint64_t now, ls_status_copy_t *c)
{
    const ls_ship_op_t *op = m->o.op.suspended ? &m->o.op : &m->peer_op;
    c->state = ls_ship_state_name(m->state);
    snprintf(c->reason, sizeof(c->reason), "%s", m->reason);
    snprintf(c->comment, sizeof(c->comment), "%s", op->comment);
    c->suspended_since_ns = op->since_ns;
    c->replay_suspended = op->replay_suspended;
    uint64_t gen = 0, close_ns = 0;
    ls_source_queue_t cq = {0}, rq = {0};
    char err[LS_SOURCE_ERRLEN];
    if (m->src) {
        ls_source_last_closed(m->src, &gen, &close_ns, err, sizeof(err));
        ls_source_queue(m->src, m->durable.gen, &cq, err, sizeof(err));
        ls_source_queue(m->src, m->replayed.gen, &rq, err, sizeof(err));
    }
    c->last_generated = (ls_status_pos_t){gen, close_ns};
    c->last_copied = pos(&m->durable);
    c->last_inspected = pos(&m->inspected);
    c->last_replayed = pos(&m->replayed);
    c->last_replayed_synced = pos(&m->synced);
    c->copy_queue = cq.count;
    c->copy_queue_bytes = cq.bytes;
    /* Durable on the target, not replayed: what follows replayed, less the copy queue. */
    c->replay_queue = rq.count > cq.count ? rq.count - cq.count : 0;
    c->replay_queue_bytes = rq.bytes > cq.bytes ? rq.bytes - cq.bytes : 0;
    c->copy_lag_ns = cq.count ? age_ns(cq.oldest_close_ns, now) : 0;
    c->replay_lag_ns = rq.count ? age_ns(rq.oldest_close_ns, now) : 0;
    c->throughput_bps = ls_status_rate_per_s(&m->rate, now);
    c->kept = m->kept;
    c->sent_generations = m->sent_gens;
    c->sent_bytes = m->sent_bytes;
    ls__ship_block_status(m, c);
}

ls_ship_state_t ls_ship_state(const ls_ship_t *m)
{
    return m->state;
}

const char *ls_ship_reason(const ls_ship_t *m)
{
    return m->reason;
}

const ls_ship_op_t *ls_ship_op(const ls_ship_t *m)
{
    return &m->o.op;
}

uint64_t ls_ship_synced(const ls_ship_t *m)
{
    return m->synced.gen;
}

uint64_t ls_ship_credit_left(const ls_ship_t *m)
{
    return m->credit;
}

/* ---- the seed's hold ----------------------------------------------------------------------------
 */
void ls_ship_seed_hold(ls_ship_t *m, uint64_t gen)
{
    if (gen <= 1) m->seed_sent = false; /* a new seed: everything held while it snapshots */
    m->seed_needs = LS_MAX(gen, 1);
}

void ls_ship_seed_sent(ls_ship_t *m)
{
    /* The copy is being replaced: what the target said about the old one no longer holds. */
    m->durable = m->inspected = m->replayed = m->synced = (ship_pos_t){0};
    m->seed_sent = true;
}

void ls_ship_seed_abort(ls_ship_t *m)
{
    m->seed_needs = 0;
    m->seed_sent = false;
}

bool ls_ship_seed_busy(const ls_ship_t *m)
{
    return m->seed_needs && !m->seed_sent;
}

uint64_t ls_ship_seed_needs(ls_ship_t *m)
{
    if (m->seed_needs && m->seed_sent && m->synced.gen >= m->seed_needs) {
        char msg[128];
        snprintf(msg, sizeof(msg), "the seeded copy replayed generation %llu: no longer kept",
                 (unsigned long long) m->synced.gen);
        m->o.action_cb(m->o.ctx, &(ls_ship_action_t){.kind = LS_SHIP_ACT_SEED_RELEASED,
                                                     .gen = m->synced.gen,
                                                     .reason = msg});
        m->seed_needs = 0;
        m->seed_sent = false;
    }
    return m->seed_needs;
}
