/* Epochs on the wire in the node (docs/ACTIVATION.md, "Epochs on the wire"; proto/PROTOCOL.md,
 * EPOCH): what this node announces for each database after the handshake, where a peer's EPOCH
 * goes, and what an old active does once one of its ship machines learned of a newer epoch:
 * the directory fenced (engine/role: the writer refuses commits, the role file says demoted or
 * diverged, following the new active), the database's other machines stopped, nothing offered
 * or removed any more. The decisions are engine/ship's, engine/passive's and engine/role's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/node_int.h"
#include "node/resync_switchover_int.h"

static ls_role_kind_t initial_role(const ls_cfg_database_t *d)
{
    return d->role == LS_CFG_ACTIVE ? LS_ROLE_ACTIVE : LS_ROLE_COPY;
}

static const ls_cfg_database_t *db_cfg(ls_node_t *n, const char *name)
{
    node_db_t *d = ls__node_db(n, name);
    return d ? d->cfg : NULL;
}

void ls__node_epoch_send(ls_node_t *n, ls_conn_t *conn, const uint8_t *dbid, const char *name)
{
    const ls_cfg_database_t *d = db_cfg(n, name);
    if (!d) return; /* not configured here: nothing to say about it */
    ls_role_epoch_info_t info;
    char err[600];
    int rc = ls_role_epoch_info(d->path, LS_GEN_PREFIX_DEFAULT, initial_role(d), n->cfg->node_name,
                                &info, err, sizeof(err));
    if (rc) {
        LS_LOGE("epoch", "database %s: no EPOCH sent: %s", name, err);
        return;
    }
    ls_frame_t f = {.type = LS_FRAME_EPOCH};
    memcpy(f.epoch.dbid, dbid, LS_DBID_LEN);
    f.epoch.epoch = info.epoch ? info.epoch : 1;
    f.epoch.first_generation = info.first_generation;
    f.epoch.active = ls_proto_str(info.active);
    LS_LOGD("epoch", "database %s: EPOCH %u (from generation %llu, activated by %s) to %s", name,
            f.epoch.epoch, (unsigned long long) info.first_generation,
            info.active[0] ? info.active : "?", ls_conn_peer(conn));
    ls__node_send(conn, &f);
}

void ls__node_epoch_note(active_t *a, const ls_proto_epoch_t *e)
{
    node_db_t *d = ls__node_db(a->node, a->cfg->name);
    if (d && e->epoch > d->role.epoch && e->first_generation) a->newer_first = e->first_generation;
}

void ls__node_epoch_learn(ls_node_t *n, const ls_proto_epoch_t *e)
{
    char who[LS_PROTO_NODE_MAX + 1];
    snprintf(who, sizeof(who), "%.*s", (int) e->active.len, e->active.ptr);
    for (int i = 0; i < n->nactives; i++) {
        active_t *a = &n->actives[i];
        if (a->retired || !a->have_dbid || memcmp(a->dbid, e->dbid, LS_DBID_LEN)) continue;
        ls__node_epoch_note(a, e);
        for (int j = 0; j < a->nshippers; j++)
            ls_ship_learn_epoch(a->shippers[j].m, e->epoch, who, ls_now_ns());
    }
}

/* Local generations after the split: closed ones numbered from the newer epoch's first
 * generation with an older epoch, and the open log when it holds records (never shipped). */
static uint64_t after_split(const active_t *a, uint32_t epoch, uint64_t *first, uint64_t *last)
{
    uint64_t count = 0;
    *first = *last = 0;
    if (!a->newer_first) return 0; /* not known: the new active's plan decides at a resync */
    ls_role_link_t *links = NULL;
    size_t nl = 0;
    char err[300];
    if (ls_role_chain(a->cfg->path, LS_GEN_PREFIX_DEFAULT, &links, &nl, err, sizeof(err)) == 0)
        for (size_t i = 0; i < nl; i++)
            if (links[i].generation >= a->newer_first && links[i].epoch < epoch) {
                if (!count) *first = links[i].generation;
                *last = links[i].generation;
                count++;
            }
    free(links);
    uint64_t gen = 0;
    if (ls__node_open_log_records(a->cfg->path, &gen) > 0 && gen >= a->newer_first) {
        if (!count) *first = gen;
        *last = gen;
        count++;
    }
    return count;
}

int64_t ls__node_open_log_records(const char *dir, uint64_t *gen)
{
    char cur[LS_CFG_PATH_MAX + 32];
    snprintf(cur, sizeof(cur), "%s/logs/%s.log", dir, LS_GEN_PREFIX_DEFAULT);
    ls_gen_info_t in;
    ls_gen_expect_t ex = {.allow_open = true};
    ls_gen_verdict_t v;
    *gen = 0;
    if (access(cur, F_OK) != 0) return -1;
    if (ls_gen_scan_file(cur, &ex, NULL, NULL, &in, &v) != 0 || !in.header_ok) return -1;
    *gen = in.header.generation;
    return (int64_t) in.record_count;
}

void ls__node_epoch_fence(active_t *a, shipper_t *from, uint32_t epoch, const char *who)
{
    if (a->fenced) return; /* the first machine to learn it did this */
    ls_node_t *n = a->node;
    node_db_t *d = ls__node_db(n, a->cfg->name);
    char err[700];
    a->fenced = true;
    if (!epoch) { /* learned from an ERROR or a refusal: the number is not known */
        ls_role_epoch_info_t info;
        epoch = ls_role_epoch_info(a->cfg->path, LS_GEN_PREFIX_DEFAULT, LS_ROLE_ACTIVE,
                                   n->cfg->node_name, &info, err, sizeof(err)) == 0
                    ? info.epoch + 1
                    : (d ? d->role.epoch + 1 : 2);
    }
    /* A switchover that asked `who` to activate holds the database already and records the
     * role itself (switchover.c): the hold stays, so its writer's close still finishes. */
    bool planned = d && ls__node_switchover_expects(d, who);
    int rc = planned ? 0 : ls_role_fence(a->cfg->path, epoch, who, err, sizeof(err));
    if (rc)
        LS_LOGE("epoch",
                "database %s: CANNOT FENCE %s (the writer may still commit): %s; its shipping "
                "stopped",
                a->cfg->name, a->cfg->path, err);
    else
        LS_LOGW("epoch",
                "database %s: fenced: %s is active in epoch %u; this node ships it no more and "
                "its writer refuses commits (LS_EFENCED)",
                a->cfg->name, who[0] ? who : "another node", epoch);
    uint64_t first, last, diverged = rc ? 0 : after_split(a, epoch, &first, &last);
    char reason[LS_ROLE_REASON_MAX + 1] = "";
    if (diverged) {
        snprintf(reason, sizeof(reason),
                 "diverged: %llu generation(s) after the split (generations %llu..%llu, written "
                 "here after %s's epoch %u began at generation %llu) are not on %s; nothing was "
                 "moved aside",
                 (unsigned long long) diverged, (unsigned long long) first,
                 (unsigned long long) last, who[0] ? who : "another node", epoch,
                 (unsigned long long) a->newer_first, who[0] ? who : "the new active");
        ls_role_state_t st;
        if (ls_role_load(a->cfg->path, LS_ROLE_ACTIVE, &st, err, sizeof(err)) == 0) {
            st.role = LS_ROLE_DIVERGED;
            snprintf(st.reason, sizeof(st.reason), "%s", reason);
            st.since_ns = ls_now_ns();
            rc = ls_role_save(a->cfg->path, &st, err, sizeof(err));
        }
        if (rc) LS_LOGE("epoch", "database %s: %s", a->cfg->name, err);
        LS_LOGE("epoch", "database %s: %s", a->cfg->name, reason);
    }
    for (int i = 0; i < a->nshippers; i++)
        if (diverged || &a->shippers[i] != from)
            ls_ship_fence(a->shippers[i].m, epoch, who, diverged > 0, diverged ? reason : NULL,
                          ls_now_ns());
    if (d && ls_role_load(a->cfg->path, LS_ROLE_ACTIVE, &d->role, err, sizeof(err)) != 0)
        LS_LOGE("epoch", "database %s: %s", a->cfg->name, err);
}

void ls__node_epoch_fenced_at_start(active_t *a, const ls_role_state_t *r)
{
    a->fenced = true;
    bool diverged = r->role == LS_ROLE_DIVERGED;
    for (int i = 0; i < a->nshippers; i++)
        ls_ship_fence(a->shippers[i].m, r->epoch, r->follows, diverged,
                      diverged && r->reason[0] ? r->reason : NULL, ls_now_ns());
}

void ls__node_pcopy_epochs(pcopy_t *p)
{
    ls_layout_hist_t *h = NULL;
    size_t nh = 0;
    ls_role_epoch_info_t info;
    char err[600];
    int rc = ls_role_known_epochs(p->cfg->path, LS_GEN_PREFIX_DEFAULT, &h, &nh, err, sizeof(err));
    if (rc == 0)
        rc = ls_role_epoch_info(p->cfg->path, LS_GEN_PREFIX_DEFAULT, LS_ROLE_COPY,
                                p->node->cfg->node_name, &info, err, sizeof(err));
    if (rc == 0)
        ls_passive_set_epochs(p->m, h, nh, info.active);
    else
        LS_LOGE("epoch", "copy %s: its history is not known (%s): epochs are learned from %s only",
                p->cfg->name, err, p->source);
    free(h);
}

bool ls__node_epoch_refusal(ls_node_t *n, const char *name, char *why, size_t whylen)
{
    node_db_t *d = ls__node_db(n, name);
    if (!d || d->role.role == LS_ROLE_COPY) return false;
    if (d->role.role == LS_ROLE_ACTIVE)
        snprintf(why, whylen, "database %s is active here on %s in epoch %u", name,
                 n->cfg->node_name, d->role.epoch);
    else
        snprintf(why, whylen, "database %s is %s here on %s (fenced by %s in epoch %u)", name,
                 ls_role_kind_name(d->role.role), n->cfg->node_name,
                 d->role.follows[0] ? d->role.follows : "another node", d->role.epoch);
    return true;
}
