/* The passive machine and the operators: this one's suspend and resume (persisted through an
 * action), COPY_STATE both ways (the source's suspension and figures), and the status figures.
 * A full suspension pauses replay and tells the source to stop shipping; a replay-only one
 * pauses replay while receiving goes on. */
#include <stdio.h>
#include <string.h>

#include "passive/passive_int.h"

void ls__passive_send_state(ls_passive_t *m)
{
    if (!m->connected) return;
    ls_frame_t f = {.type = LS_FRAME_COPY_STATE};
    ls_proto_copy_state_t *cs = &f.copy_state;
    memcpy(cs->dbid, m->dbid, LS_DBID_LEN);
    cs->flags = (m->op.suspended ? LS_COPY_SUSPENDED : 0) |
                (m->op.replay_suspended ? LS_COPY_REPLAY_SUSPENDED : 0);
    cs->since_ns = m->op.since_ns;
    cs->comment = ls_proto_str(m->op.comment);
    ls__passive_send(m, &f);
}

void ls__passive_on_copy_state(ls_passive_t *m, const ls_proto_copy_state_t *cs, uint64_t now)
{
    bool was = m->src_suspended_seen;
    ls_status_op_t *op = &m->src.op;
    op->suspended = cs->flags & LS_COPY_SUSPENDED;
    op->replay_suspended = cs->flags & LS_COPY_REPLAY_SUSPENDED;
    op->since_ns = cs->since_ns;
    snprintf(op->comment, sizeof(op->comment), "%.*s", (int) cs->comment.len, cs->comment.ptr);
    m->src.last_generated = cs->last_generated;
    m->src.last_generated_ns = cs->last_generated_ns;
    m->src.queue_bytes = cs->queue_bytes;
    m->src.queue_oldest_ns = cs->queue_oldest_ns;
    m->src_suspended_seen = op->suspended;
    bool wanted = (cs->flags & LS_COPY_APPLY) != 0;
    if (wanted != m->apply_wanted) {
        m->apply_wanted = wanted;
        ls__passive_apply_early(m);
    }
    if (m->op.suspended || m->state == LS_PASSIVE_FAILED || m->state == LS_PASSIVE_DIVERGED) return;
    if (op->suspended && !was) {
        ls_passive_set_state(m, LS_PASSIVE_SUSPENDED, now, "suspended on %s: %s", m->source,
                             op->comment);
    } else if (!op->suspended && was) {
        ls_passive_set_state(m, ls__passive_running(m), now, "resumed on %s", m->source);
        ls_passive_send_position(m, now); /* the source waits for our position to ship again */
    }
}

/* ---- the operator's commands ---------------------------------------------------------------- */
static void set_op(ls_status_op_t *op, bool suspend, bool replay_only, const char *comment,
                   uint64_t now)
{
    if (suspend) {
        if (replay_only)
            op->replay_suspended = true;
        else
            op->suspended = true;
        snprintf(op->comment, sizeof(op->comment), "%s", comment ? comment : "");
        op->since_ns = now;
    } else if (replay_only) {
        op->replay_suspended = false;
    }
    if (!suspend && !replay_only) op->suspended = op->replay_suspended = false;
    if (!op->suspended && !op->replay_suspended) memset(op, 0, sizeof(*op));
}

/* The operator's resume of a FAILED copy (Exchange's Resume-StorageGroupCopy): false with why
 * when no copy is open. */
static bool clear_failed(ls_passive_t *m, char *why, size_t whylen, uint64_t now)
{
    if (!m->copy) {
        snprintf(why, whylen, "copy %s is not open (%.300s): restart the daemon or reseed it",
                 m->database, m->reason);
        return false;
    }
    ls_copy_clear_failed(m->copy);
    char was[LS_PASSIVE_REASON_MAX];
    snprintf(was, sizeof(was), "%s", m->reason);
    ls_passive_set_state(m, m->op.suspended ? LS_PASSIVE_SUSPENDED : ls__passive_running(m), now,
                         "resumed by the operator (it was Failed: %.300s)", was);
    return true;
}

int ls_passive_command(ls_passive_t *m, bool suspend, bool replay_only, const char *comment,
                       char *msg, size_t msglen, uint64_t now)
{
    ls_status_op_t op = m->op;
    set_op(&op, suspend, replay_only, comment, now);
    ls_passive_action_t a = {
        .kind = LS_PASSIVE_ACT_SAVE_OP, .state = m->state, .prev = m->state, .op = &op};
    int rc = m->o.action_cb(m->o.ctx, &a);
    if (rc) {
        snprintf(msg, msglen, "cannot save the copy's state: %s", ls_strerror(rc));
        return rc;
    }
    bool was_suspended = m->op.suspended, cleared = false;
    char why[LS_PASSIVE_REASON_MAX] = "";
    m->op = op;
    if (m->copy) ls_copy_pause_replay(m->copy, op.suspended || op.replay_suspended);
    if (op.suspended) {
        ls_passive_set_state(m, LS_PASSIVE_SUSPENDED, now, "suspended by the operator: %s",
                             op.comment);
    } else if (was_suspended && m->state == LS_PASSIVE_SUSPENDED && !m->src.op.suspended) {
        ls_passive_set_state(m, ls__passive_running(m), now, "resumed by the operator");
    } else if (!suspend && !replay_only && m->state == LS_PASSIVE_FAILED) {
        cleared = clear_failed(m, why, sizeof(why), now);
    }
    ls__passive_send_state(m);
    if ((was_suspended && !op.suspended) || cleared) ls_passive_send_position(m, now);
    snprintf(msg, msglen, "%s <- %s %s%s%s%.280s", m->database, m->source,
             replay_only ? "replay " : "", suspend ? "suspended" : "resumed",
             cleared  ? " (Failed cleared)"
             : why[0] ? "; still Failed: "
                      : "",
             why);
    return 0;
}

/* ---- figures -------------------------------------------------------------------------------- */
static uint64_t age_ns(uint64_t then_ns, uint64_t now_ns)
{
    return then_ns && now_ns > then_ns ? now_ns - then_ns : 0;
}

void ls_passive_status(ls_passive_t *m, uint64_t now, ls_status_copy_t *c)
{
    const ls_status_op_t *op = m->op.suspended || m->op.replay_suspended ? &m->op : &m->src.op;
    c->state = ls_passive_state_name(m->state);
    snprintf(c->reason, sizeof(c->reason), "%s", m->reason);
    snprintf(c->comment, sizeof(c->comment), "%s", op->comment);
    c->suspended_since_ns = op->since_ns;
    c->replay_suspended = op->replay_suspended;
    ls_copy_stats_t st = {0};
    if (m->copy) ls_copy_stats(m->copy, &st);
    /* The source's clock, estimated: ours plus the offset its heartbeats measured. */
    uint64_t src_now = (uint64_t) ((int64_t) now + m->clock_offset_ns);
    uint64_t last_gen = m->src.last_generated;
    uint64_t copyq = last_gen > st.last_durable ? last_gen - st.last_durable : 0;
    uint64_t replq = st.last_durable > st.last_replayed ? st.last_durable - st.last_replayed : 0;
    c->last_generated = (ls_status_pos_t){last_gen, m->src.last_generated_ns};
    c->last_copied = (ls_status_pos_t){st.last_durable, m->durable.when_ns};
    c->last_inspected = (ls_status_pos_t){st.last_inspected, m->inspected.when_ns};
    c->last_replayed = (ls_status_pos_t){st.last_replayed, m->replayed.when_ns};
    c->last_replayed_synced = (ls_status_pos_t){st.last_synced, 0};
    c->last_replayed_lsn = st.last_replayed_lsn;
    c->copy_queue = copyq;
    c->copy_queue_bytes = copyq ? m->src.queue_bytes : 0;
    c->replay_queue = replq;
    c->replay_queue_bytes = st.inspect_queue_bytes + st.replay_queue_bytes;
    c->copy_lag_ns = copyq ? age_ns(m->src.queue_oldest_ns, src_now) : 0;
    c->throughput_bps = ls_status_rate_per_s(&m->rate, now);
    c->kept = m->counters;
    c->applied_generations = st.applied_generations;
    c->replay_transactions = st.replay_txns;
    c->clock_offset_ns = m->clock_offset_ns;
    if (m->block.generation > st.last_durable) { /* the shadow of the open generation */
        c->block_generation = m->block.generation;
        c->block_offset = m->block.offset;
        c->block_durable_lsn = m->block.lsn;
    }
    c->block_applied_lsn = st.last_replayed_lsn;
    c->block_apply_eager = !st.shadow_lazy;
}
