/* `logship switchover` on NODE, the copy asked to become the active (docs/ACTIVATION.md,
 * "Planned switchover"; the active's side is switchover.c): SWITCHOVER (peer.c) for a copy this
 * connection serves -> the checks (a Healthy copy holding and having replayed exactly the
 * announced last generation and LSN), the planned activation (activate.c, max_loss 0),
 * SWITCHOVER_DONE on the same connection. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/node_int.h"
#include "node/resync_switchover_int.h"

struct sw_answer {
    ls_node_t *node;
    uint64_t peer_id; /* the connection SWITCHOVER came on */
    uint8_t dbid[LS_DBID_LEN];
};

static void answer(ls_node_t *n, uint64_t peer_id, const uint8_t *dbid, int code, uint32_t epoch,
                   uint64_t first, const char *msg)
{
    peer_t *p = n->peers;
    while (p && p->id != peer_id)
        p = p->next;
    if (!p || !p->conn) {
        LS_LOGW("switchover",
                "the connection SWITCHOVER came on is gone: its sender learns the outcome from "
                "the EPOCH exchange (%s)",
                msg);
        return;
    }
    ls_frame_t f = {.type = LS_FRAME_SWITCHOVER_DONE};
    memcpy(f.switchover_done.dbid, dbid, LS_DBID_LEN);
    f.switchover_done.code = code;
    f.switchover_done.epoch = code ? 0 : epoch;
    f.switchover_done.first_generation = code ? 0 : first;
    f.switchover_done.message.ptr = msg;
    f.switchover_done.message.len = LS_MIN(strlen(msg), (size_t) LS_PROTO_MSG_MAX);
    int rc = ls__node_send(p->conn, &f);
    if (rc) LS_LOGW("switchover", "cannot answer SWITCHOVER: %s", ls_strerror(rc));
}

static void activated(node_db_t *db, void *ctx, int rc, const ls_role_activate_report_t *r,
                      const char *message)
{
    (void) db;
    struct sw_answer *s = ctx;
    answer(s->node, s->peer_id, s->dbid, rc ? (rc < 0 ? rc : LS_ESTATE) : 0, r->new_epoch,
           r->first_generation, message);
    free(s);
}

/* The database a SWITCHOVER frame names, if this copy of it can take over losslessly: a healthy
 * copy holding and having replayed exactly the announced last generation. Else NULL and why. */
static node_db_t *switchover_db(peer_t *p, const ls_proto_switchover_t *f, char *why, size_t whylen)
{
    ls_node_t *n = p->node;
    pcopy_t *c = NULL;
    for (int i = 0; i < p->nidx && !c; i++)
        if (!memcmp(p->dbids[i], f->dbid, LS_DBID_LEN)) c = p->by_idx[i];
    node_db_t *db = c && c->peer == p && !c->retired ? ls__node_db(n, c->cfg->name) : NULL;
    if (!db) {
        ls_msgf(why, whylen,
                "switchover refused by %s: this connection from %s serves no copy of that "
                "database here",
                n->cfg->node_name, p->name);
        return NULL;
    }
    const char *name = db->cfg->name, *self = n->cfg->node_name;
    if (db->role.role != LS_ROLE_COPY || !c->copy) {
        ls_msgf(why, whylen, "switchover of %s refused by %s: it is %s here, not a copy", name,
                self, ls_role_kind_name(db->role.role));
        return NULL;
    }
    ls_copy_stats_t st;
    ls_copy_stats(c->copy, &st);
    if (st.state != LS_COPY_HEALTHY) {
        ls_msgf(why, whylen, "switchover of %s refused by %s: its copy is not healthy (%s)", name,
                self, st.reason);
        return NULL;
    }
    /* Lossless: exactly the announced last generation, held, inspected and replayed. */
    if (st.last_replayed != f->last_generation || st.last_durable != f->last_generation ||
        st.inspect_queue || st.replay_queue ||
        (f->last_lsn && st.last_replayed_lsn != f->last_lsn)) {
        ls_msgf(why, whylen,
                "switchover of %s refused by %s: %s announced generation %" PRIu64 " (LSN %" PRIu64
                ") as its last, this copy holds up to %" PRIu64 " and replayed up to %" PRIu64
                " (LSN %" PRIu64 "); not exactly the same",
                name, self, p->name, f->last_generation, f->last_lsn, st.last_durable,
                st.last_replayed, st.last_replayed_lsn);
        return NULL;
    }
    return db;
}

void ls__node_switchover_frame(peer_t *p, const ls_proto_switchover_t *f)
{
    ls_node_t *n = p->node;
    char why[1200];
    int code = LS_ESTATE;
    node_db_t *db = switchover_db(p, f, why, sizeof(why));
    if (!db) goto refused;
    const char *name = db->cfg->name;
    struct sw_answer *s = calloc(1, sizeof(*s));
    if (!s) {
        code = LS_ENOMEM;
        ls_msgf(why, sizeof(why), "switchover of %s: no memory", name);
        goto refused;
    }
    s->node = n;
    s->peer_id = p->id;
    memcpy(s->dbid, f->dbid, LS_DBID_LEN);
    ls_role_announced_t ann = {.last_generation = f->last_generation,
                               .last_close_ns = f->last_close_ns};
    char reason[LS_ROLE_REASON_MAX + 1];
    snprintf(reason, sizeof(reason),
             "activated by a planned switchover from %.64s (logship switchover on %.64s): "
             "generations up to %" PRIu64 " replayed, nothing lost",
             p->name, p->name, f->last_generation);
    int rc = ls__node_activate_planned(n, db, &ann, reason, activated, s, why, sizeof(why));
    if (rc) {
        free(s);
        code = rc;
        goto refused;
    }
    return;
refused:
    LS_LOGW("switchover", "%s", why);
    answer(n, p->id, f->dbid, code < 0 ? code : LS_ESTATE, 0, 0, why);
}
