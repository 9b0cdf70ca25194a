/* `logship switchover DB --to NODE` in the node (docs/ACTIVATION.md, "Planned switchover"): a
 * planned, lossless hand-over of an active database to a copy, under load.
 *
 * On the active (the control commands "switchover" and "switchover_status"):
 *   1. refused at once unless DB is active here, NODE is another member of its copy set, and
 *      NODE's copy is connected over a version-5 connection and Healthy;
 *   2. the hold (libuv pool): the control page's fence with the hold flag (ctlpage.h), naming
 *      NODE and epoch E+1. The application's writer refuses commits with LS_EFENCED, closes its
 *      current log when it holds records and acknowledges the hold in the page (last generation
 *      N, last LSN). With no writer (<db>/lock free), the daemon opens the database itself
 *      before setting the hold (ls_db_open takes the lock, its recovery finishes a log a dead
 *      writer left) and closes it under the hold: the same close, acknowledged the same way;
 *   3. wait (a timer on the loop) until NODE's copy reports N replayed; on a timeout or any
 *      failure the hold is cleared (the writer accepts commits again) and the reason reported;
 *   4. SWITCHOVER to NODE on the ship connection; NODE checks it holds and replayed exactly N
 *      (LSN), activates through activate.c (ls_role_activate, max_loss 0) and answers with
 *      SWITCHOVER_DONE. From the moment SWITCHOVER is sent the hold is never cleared by a
 *      timeout (NODE may have activated): only NODE's refusal clears it;
 *   5. this node becomes NODE's copy as `logship resync` makes a Demoted one (resync.c): role
 *      file copy in epoch E+1 following NODE, once the application closed the database (its
 *      lock free: its applier is done with the store), the empty open log removed, the copy
 *      opened on the directory; the hold becomes a plain fence.
 *
 * Here: steps 3 to 5 on the loop. Step 2 (the hold, on the pool) and an interrupted switchover's
 * hold at start: switchover_hold.c; the commands and their refusals: switchover_cmd.c; the state
 * they share: switchover_int.h. On NODE: switchover_peer.c. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/switchover_int.h"
#include "node/resync_switchover_int.h"
#include "node/switchover_wait.h"

const char *ls__sw_state_name(sw_state_t s)
{
    static const char *names[] = {"holding", "shipping", "asking", "closing",
                                  "done",    "refused",  "failed"};
    return names[s];
}

uint64_t ls__sw_held_ms(const struct node_sw *w)
{
    uint64_t end = w->released_ns ? w->released_ns : ls_now_ns();
    return w->held_ns && end > w->held_ns ? (end - w->held_ns) / 1000000 : 0;
}

static void stop_timer(struct node_sw *w)
{
    if (w->timer_init && !uv_is_closing((uv_handle_t *) &w->timer)) uv_timer_stop(&w->timer);
}

static void end(struct node_sw *w, sw_state_t st)
{
    w->state = st;
    w->end_ns = ls_now_ns();
    stop_timer(w);
    ls_ctlpage_close(w->ctl);
    w->ctl = NULL;
    if (w->db->active) w->db->active->switching = false;
    ls_log(st == SW_DONE ? LS_LOG_INFO : LS_LOG_ERROR, "switchover", "%s", w->message);
}

/* Before SWITCHOVER went out, or NODE refused it: the hold is cleared, commits resume. */
static void undo(struct node_sw *w, sw_state_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void undo(struct node_sw *w, sw_state_t st, const char *fmt, ...)
{
    char why[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    char e[600] = "";
    w->released_ns = ls_now_ns();
    if (w->ctl && ls_ctlpage_fenced(w->ctl) && !ls_ctlpage_held(w->ctl)) {
        /* A newer epoch fenced it meanwhile (epoch.c): that fence stays. */
        ls_msgf(w->message, sizeof(w->message),
                "switchover of %s to %s failed: %s; %s was fenced by a newer epoch meanwhile "
                "(see logship status): it stays fenced",
                w->db->cfg->name, w->to, why, w->db->cfg->name);
        end(w, SW_FAILED);
        return;
    }
    int rc = w->ctl ? ls_ctlpage_clear_fence(w->ctl, e, sizeof(e)) : 0;
    if (rc)
        ls_msgf(w->message, sizeof(w->message),
                "switchover of %s to %s %s: %s; CANNOT clear the hold (%s): the writer refuses "
                "commits until it is cleared",
                w->db->cfg->name, w->to, st == SW_REFUSED ? "refused" : "failed", why, e);
    else
        ls_msgf(w->message, sizeof(w->message),
                "switchover of %s to %s %s: %s; the hold is undone: %s is active on %s again "
                "and accepts commits (held %" PRIu64 " ms)",
                w->db->cfg->name, w->to, st == SW_REFUSED ? "refused" : "failed", why,
                w->db->cfg->name, w->node->cfg->node_name, ls__sw_held_ms(w));
    end(w, st);
}

/* ---- step 5: this node becomes NODE's copy -------------------------------------------------- */
/* Records db as a copy of w->to in the new epoch, and fences the control page. */
static int save_copy_role(struct node_sw *w, ls_role_state_t *st, char *e, size_t elen)
{
    /* Saved again: an EPOCH from NODE may have recorded it demoted meanwhile (epoch.c). */
    *st = w->db->role;
    st->role = LS_ROLE_COPY;
    st->epoch = w->new_epoch;
    st->since_ns = ls_now_ns();
    memset(&st->loss, 0, sizeof(st->loss));
    snprintf(st->follows, sizeof(st->follows), "%s", w->to);
    snprintf(st->reason, sizeof(st->reason),
             "switched over to %.64s by logship switchover on %.64s: %.64s is active in epoch %u "
             "from generation %" PRIu64,
             w->to, w->node->cfg->node_name, w->to, w->new_epoch, w->first_generation);
    int rc = ls_role_save(w->db->cfg->path, st, e, elen);
    if (rc == 0 && w->ctl) rc = ls_ctlpage_set_fence(w->ctl, w->new_epoch, w->to, e, elen);
    return rc;
}

static void become_copy(struct node_sw *w)
{
    ls_node_t *n = w->node;
    node_db_t *db = w->db;
    if (!ls__sw_writer_gone(db->cfg->path)) return; /* the application still has it open: later */
    char e[900];
    /* The open log the writer started after the last generation holds nothing (held). */
    uint64_t gen = 0;
    int64_t records = ls__node_open_log_records(db->cfg->path, &gen);
    if (records > 0) { /* cannot happen under the hold; never removed */
        ls_msgf(w->message, sizeof(w->message),
                "%s was handed over to %s, but its open generation %" PRIu64 " holds %" PRId64
                " record(s) written after the hold: it stays fenced; run logship resync",
                db->cfg->name, w->to, gen, records);
        end(w, SW_FAILED);
        return;
    }
    if (records == 0) {
        char cur[LS_CFG_PATH_MAX + 32];
        snprintf(cur, sizeof(cur), "%s/logs/%s.log", db->cfg->path, LS_GEN_PREFIX_DEFAULT);
        unlink(cur);
    }
    int rc = ls__node_resync_reserve(n, db, e, sizeof(e));
    if (rc == LS_ENOMEM) {
        ls_msgf(w->message, sizeof(w->message),
                "%s was handed over to %s, but this daemon has no room for another copy: "
                "restart it (it then runs as %s's copy)",
                db->cfg->name, w->to, w->to);
        end(w, SW_FAILED);
        return;
    }
    if (rc) { /* out of descriptors: tried again at the next tick, as for a writer still open */
        if (!w->wake_warned) LS_LOGW("switchover", "%s: its copy waits: %s", db->cfg->name, e);
        w->wake_warned = true;
        ls_msgf(w->message, sizeof(w->message),
                "%s is active on %s in epoch %u; %s becomes its copy once it can open it: %s",
                db->cfg->name, w->to, w->new_epoch, n->cfg->node_name, e);
        return;
    }
    ls_role_state_t st;
    if (save_copy_role(w, &st, e, sizeof(e))) {
        ls__node_resync_unreserve(n, db);
        ls_msgf(w->message, sizeof(w->message),
                "%s was handed over to %s, but this node cannot record it: %s", db->cfg->name,
                w->to, e);
        end(w, SW_FAILED);
        return;
    }
    db->role = st;
    ls_copy_resume_t at = {0};
    ls__node_resync_open_copy(n, db, w->to, &at);
    ls_msgf(w->message, sizeof(w->message),
            "switched %s over to %s: handed over generations up to %" PRIu64 " (last LSN %" PRIu64
            "), nothing lost; %s is active in epoch %u from generation %" PRIu64
            "; commits held for %" PRIu64 " ms%s; %s on %s is now a copy of %s",
            db->cfg->name, w->to, w->last_gen, w->last_lsn, w->to, w->new_epoch,
            w->first_generation, ls__sw_held_ms(w),
            w->self_closed ? " (no writer had it open: the daemon closed its log)" : "",
            db->cfg->name, n->cfg->node_name, w->to);
    end(w, SW_DONE);
}

/* NODE is active in new_epoch from first on (its answer, or its EPOCH after a lost answer). */
static void handed_over(struct node_sw *w, uint32_t new_epoch, uint64_t first)
{
    w->new_epoch = new_epoch;
    w->first_generation = first;
    w->released_ns = ls_now_ns();
    w->state = SW_CLOSING;
    /* Recorded at once: a restart before the copy opens runs it as NODE's copy. */
    ls_role_state_t st = w->db->role;
    st.role = LS_ROLE_COPY;
    st.epoch = new_epoch;
    st.since_ns = ls_now_ns();
    memset(&st.loss, 0, sizeof(st.loss));
    snprintf(st.follows, sizeof(st.follows), "%s", w->to);
    snprintf(st.reason, sizeof(st.reason),
             "switched over to %.64s by logship switchover on %.64s (epoch %u)", w->to,
             w->node->cfg->node_name, new_epoch);
    char e[600];
    if (ls_role_save(w->db->cfg->path, &st, e, sizeof(e)) != 0)
        LS_LOGE("switchover", "%s: %s", w->db->cfg->name, e);
    ls_msgf(w->message, sizeof(w->message),
            "%s is active on %s in epoch %u; %s becomes its copy once the application here "
            "closed the database",
            w->db->cfg->name, w->to, new_epoch, w->node->cfg->node_name);
    LS_LOGI("switchover", "%s", w->message);
    become_copy(w);
}

/* ---- steps 3 and 4 on the loop --------------------------------------------------------------- */
static void ask(struct node_sw *w, link_t *l)
{
    active_t *a = w->db->active;
    ls_frame_t f = {.type = LS_FRAME_SWITCHOVER};
    memcpy(f.switchover.dbid, a->dbid, LS_DBID_LEN);
    f.switchover.epoch = w->new_epoch;
    f.switchover.last_generation = w->last_gen;
    f.switchover.last_lsn = w->last_lsn;
    f.switchover.last_close_ns = w->last_close_ns;
    char e[600];
    int rc = ls_ctlpage_set_asked(w->ctl, e, sizeof(e)); /* durable before it goes out */
    if (rc) {
        undo(w, SW_FAILED, "cannot record the request in the control page: %s", e);
        return;
    }
    rc = ls__node_link_send(l, w->s, &f);
    if (rc) {
        undo(w, SW_FAILED, "cannot send SWITCHOVER to %s: %s", w->to, ls_strerror(rc));
        return;
    }
    w->asked_conn = l->conn;
    w->state = SW_ASKING;
    w->deadline = ls_mono_ns() + SW_ANSWER_GRACE_MS * 1000000ull;
    LS_LOGI("switchover",
            "%s: %s replayed generation %" PRIu64 " (LSN %" PRIu64 "): asking it to activate",
            w->db->cfg->name, w->to, w->last_gen, w->last_lsn);
}

/* What shipping() does once ls_node_switchover_wait has decided. */
static void act_on(struct node_sw *w, link_t *l, ls_ship_state_t ms, ls_node_sw_next_t verdict)
{
    switch (verdict) {
    case LS_NODE_SW_WAIT:
        break;
    case LS_NODE_SW_ASK:
        ask(w, l);
        break;
    case LS_NODE_SW_NOTHING:
        undo(w, SW_REFUSED, "%s has no closed generation: nothing to hand over", w->db->cfg->name);
        break;
    case LS_NODE_SW_COPY_LOST:
        undo(w, SW_FAILED, "%s's copy became %s (%s)", w->to, ls_ship_state_name(ms),
             ls_ship_reason(w->s->m));
        break;
    case LS_NODE_SW_OLD_PROTOCOL:
        undo(w, SW_REFUSED, "%s speaks protocol version %u on its connection; switchover needs %u",
             w->to, (unsigned) l->version, (unsigned) LS_PROTO_VERSION_SWITCHOVER);
        break;
    case LS_NODE_SW_NO_CLOSE:
        undo(w, SW_FAILED,
             "timed out after %" PRIu64
             " ms: the application's writer did not close its current log (a writer that "
             "died with the database open leaves its log to the next open)",
             w->timeout_ms);
        break;
    case LS_NODE_SW_NOT_REPLAYED:
        undo(w, SW_FAILED,
             "timed out after %" PRIu64 " ms: %s replayed up to generation %" PRIu64 " of %" PRIu64
             " (copy %s)",
             w->timeout_ms, w->to, w->replayed, w->last_gen, ls_ship_state_name(ms));
        break;
    }
}

static void shipping(struct node_sw *w)
{
    active_t *a = w->db->active;
    link_t *l = w->s->link;
    uint64_t mono = ls_mono_ns(), now = ls_now_ns();
    if (!w->acked && ls_ctlpage_hold_acked(w->ctl, &w->last_gen, &w->last_lsn)) {
        w->acked = true;
        LS_LOGI("switchover",
                "%s: the writer holds (last generation %" PRIu64 ", LSN %" PRIu64
                "): shipping it to %s",
                w->db->cfg->name, w->last_gen, w->last_lsn, w->to);
    }
    ls_ship_state_t ms = ls_ship_state(w->s->m);
    if (w->acked && w->last_gen && ls_node_switchover_copy_usable(ms)) {
        if (mono - w->kick_mono >= SW_RESCAN_MS * 1000000ull) { /* the last generation, seen */
            w->kick_mono = mono;
            ls__node_active_poll(a);
            ls__node_link_kick(l);
        }
        ls_status_copy_t c;
        memset(&c, 0, sizeof(c));
        ls_ship_status(w->s->m, now, &c);
        w->replayed = c.last_replayed.gen;
        if (c.last_generated.gen == w->last_gen) w->last_close_ns = c.last_generated.time_ns;
    }
    ls_node_sw_seen_t seen = {.acked = w->acked,
                              .last_gen = w->last_gen,
                              .ship = ms,
                              .replayed = w->replayed,
                              .ready = l->conn && l->ready,
                              .version = l->version,
                              .expired = mono >= w->deadline};
    act_on(w, l, ms, ls_node_switchover_wait(&seen));
}

static void on_timer(uv_timer_t *t)
{
    struct node_sw *w = t->data;
    if (w->node->stopping) return;
    switch (w->state) {
    case SW_SHIPPING:
        shipping(w);
        break;
    case SW_ASKING: {
        active_t *a = w->db->active;
        uint32_t ep = 0;
        const char *who = NULL;
        /* The answer was lost, but NODE's EPOCH fenced this node: it is active. */
        if (a && a->fenced && ls_ship_fenced(w->s->m, &ep, &who) && ep >= w->new_epoch && who &&
            !strcmp(who, w->to)) {
            handed_over(w, ep, a->newer_first ? a->newer_first : w->last_gen + 1);
        } else if (ls_mono_ns() >= w->deadline) {
            w->released_ns = ls_now_ns();
            ls_msgf(w->message, sizeof(w->message),
                    "switchover of %s to %s: SWITCHOVER was sent but no answer came within %d "
                    "s; %s stays held (fenced) here, since %s may have activated: run logship "
                    "status on %s; if it is active, run logship resync %s here",
                    w->db->cfg->name, w->to, SW_ANSWER_GRACE_MS / 1000, w->db->cfg->name, w->to,
                    w->to, w->db->cfg->name);
            end(w, SW_FAILED);
        }
        break;
    }
    case SW_CLOSING:
        become_copy(w);
        break;
    default:
        break;
    }
}

void ls__sw_hold_done(uv_work_t *work, int status)
{
    (void) status;
    struct node_sw *w = work->data;
    if (w->node->stopping) {
        undo(w, SW_FAILED, "the daemon stops");
        return;
    }
    if (w->rc) {
        w->released_ns = ls_now_ns();
        ls_msgf(w->message, sizeof(w->message), "switchover of %s to %s failed: %s",
                w->db->cfg->name, w->to, w->err);
        end(w, w->rc == LS_ESTATE ? SW_REFUSED : SW_FAILED);
        return;
    }
    w->state = SW_SHIPPING;
    w->deadline = ls_mono_ns() + w->timeout_ms * 1000000ull;
    ls_msgf(w->message, sizeof(w->message),
            "%s held on %s%s: waiting for %s to replay the last generation", w->db->cfg->name,
            w->node->cfg->node_name,
            w->self_closed ? " (no writer had it open: the daemon closed its log)" : "", w->to);
    LS_LOGI("switchover", "%s", w->message);
    if (!w->timer_init) {
        uv_timer_init(w->node->loop, &w->timer);
        w->timer.data = w;
        w->timer_init = true;
    }
    uv_timer_start(&w->timer, on_timer, 0, SW_POLL_MS);
}

void ls__node_switchover_done(link_t *l, const ls_proto_switchover_done_t *d)
{
    ls_node_t *n = l->node;
    for (int i = 0; i < n->ndbs; i++) {
        struct node_sw *w = n->dbs[i].sw;
        if (!w || w->state != SW_ASKING || w->s->link != l || !w->db->active ||
            memcmp(w->db->active->dbid, d->dbid, LS_DBID_LEN))
            continue;
        if (d->code) {
            undo(w, SW_REFUSED, "%s answered: %.*s", w->to, (int) d->message.len, d->message.ptr);
            /* A failed activation there stopped and reopened its copy, which this connection
             * no longer serves: it reconnects and offers the database again. */
            if (l->conn) ls_conn_close(l->conn);
            return;
        }
        LS_LOGI("switchover", "%s answered: %.*s", w->to, (int) d->message.len, d->message.ptr);
        handed_over(w, d->epoch, d->first_generation);
        return;
    }
    LS_LOGW("switchover", "%s sent SWITCHOVER_DONE for no switchover under way: ignored",
            l->cfg->name);
}

bool ls__node_switchover_expects(const node_db_t *d, const char *who)
{
    const struct node_sw *w = d->sw;
    return w && (w->state == SW_ASKING || w->state == SW_CLOSING) && !strcmp(w->to, who);
}

/* ---- lifecycle ----------------------------------------------------------------------------- */
static void timer_closed(uv_handle_t *h)
{
    struct node_sw *w = h->data;
    w->timer_closed = true;
}

void ls__node_switchover_stop(ls_node_t *n)
{
    for (int i = 0; i < n->ndbs; i++) {
        struct node_sw *w = n->dbs[i].sw;
        if (!w) continue;
        if (w->state == SW_SHIPPING) undo(w, SW_FAILED, "the daemon stops");
        if (w->timer_init && !uv_is_closing((uv_handle_t *) &w->timer))
            uv_close((uv_handle_t *) &w->timer, timer_closed);
    }
}

void ls__node_switchover_free(node_db_t *d)
{
    if (d->sw) ls_ctlpage_close(d->sw->ctl);
    free(d->sw);
    d->sw = NULL;
}
