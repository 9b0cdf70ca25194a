/* `logship resync DB` in the node (docs/ACTIVATION.md): an old active that was fenced by a newer
 * epoch (role demoted) is rebuilt as a copy of the new active without a restart: its ship
 * machines stop for good (the active retired), the role file says copy, following the new
 * active, and a copy opens on the same directory. The copy's position is the store's (the last
 * generation the old writer applied and closed, engine/copy/position.c), so the new active ships
 * from the generation after the split, where its epoch began: nothing moves when nothing
 * diverged. A diverged node is refused (incremental resync is not built); so is a demoted one
 * whose open log holds commits never shipped (they are after the split).
 *
 * The command runs on the loop and answers when done: two small durable writes (the role file,
 * and moving an empty open log aside) and the copy's open. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/node_int.h"
#include "node/resync_switchover_int.h"

/* The shippers of a leave their links; a link whose connection offered a is closed (it
 * reconnects with a HELLO without it). The machines stay allocated until the node is freed
 * (a link's late pump may still name them; fenced, they send nothing). */
void ls__node_resync_retire(active_t *a)
{
    ls__node_active_close(a);
    a->retired = true;
    for (int i = 0; i < a->nshippers; i++) {
        shipper_t *s = &a->shippers[i];
        link_t *l = s->link;
        for (int j = 0; j < l->nshippers; j++)
            if (l->shippers[j] == s) {
                memmove(&l->shippers[j], &l->shippers[j + 1],
                        (size_t) (l->nshippers - j - 1) * sizeof(*l->shippers));
                l->nshippers--;
                break;
            }
        for (int j = 0; j < l->nidx; j++)
            if (l->by_idx[j] == s && l->conn) ls_conn_close(l->conn);
    }
}

/* A copy slot for db: its own retired one (an earlier activation), else a free one; NULL when
 * none is left. */
static pcopy_t *copy_slot(ls_node_t *n, node_db_t *db)
{
    for (int i = 0; i < n->ncopies; i++) {
        pcopy_t *p = &n->copies[i];
        if (p->cfg == db->cfg && p->retired && p->async_closed) return p;
    }
    return n->ncopies < n->cfg->ndatabases + 1 ? &n->copies[n->ncopies] : NULL;
}

/* The open log of an old active: commits in it were never shipped (LS_EDIVERGED), else it is
 * moved aside (empty: it would be the first generation of the new epoch). */
static int open_log(node_db_t *db, uint64_t *records, char *err, size_t errlen)
{
    ls_role_diverged_t rep;
    ls_role_link_t *links = NULL;
    size_t nl = 0;
    *records = 0;
    int rc = ls_role_chain(db->cfg->path, LS_GEN_PREFIX_DEFAULT, &links, &nl, err, errlen);
    if (rc) return rc;
    uint64_t last = nl ? links[nl - 1].generation : 0;
    free(links);
    rc = ls_role_move_aside(db->cfg->path, LS_GEN_PREFIX_DEFAULT, last, db->role.epoch, &rep, err,
                            errlen);
    if (rc == 0 && rep.records) {
        *records = rep.records;
        return ls_errf(err, errlen, LS_EDIVERGED,
                       "its open generation %llu holds %llu record(s) never shipped to %s (moved "
                       "aside into %s)",
                       (unsigned long long) rep.first_generation, (unsigned long long) rep.records,
                       db->role.follows, rep.dest);
    }
    if (rc) return rc;
    /* An open log without records (the writer rolled and stopped): the new active's epoch
     * begins at its number, it holds nothing, and a copy holds no open log. */
    char cur[LS_CFG_PATH_MAX + 32];
    uint64_t gen;
    snprintf(cur, sizeof(cur), "%s/logs/%s.log", db->cfg->path, LS_GEN_PREFIX_DEFAULT);
    if (ls__node_open_log_records(db->cfg->path, &gen) == 0) unlink(cur);
    return 0;
}

static int refuse(ls_node_t *n, node_db_t *db, char *err, size_t errlen)
{
    const ls_role_state_t *r = &db->role;
    const char *name = db->cfg->name, *self = n->cfg->node_name;
    switch (r->role) {
    case LS_ROLE_ACTIVE:
        return ls_errf(err, errlen, LS_ESTATE,
                       "resync of %s refused: %s is the active on %s (epoch %u); resync rebuilds "
                       "an old active (demoted) as a copy of the new one",
                       name, name, self, r->epoch);
    case LS_ROLE_COPY:
        return ls_errf(err, errlen, LS_ESTATE,
                       "resync of %s refused: %s is a copy on %s already, following %s (epoch %u)",
                       name, name, self, r->follows[0] ? r->follows : db->cfg->source, r->epoch);
    case LS_ROLE_DIVERGED: /* the incremental resync (resync_inc.c) */
    case LS_ROLE_DEMOTED:
        break;
    }
    if (!r->follows[0])
        return ls_errf(err, errlen, LS_ESTATE,
                       "resync of %s refused: %s/role names no new active to follow", name,
                       db->cfg->path);
    if (db->copy)
        return ls_errf(err, errlen, LS_ESTATE, "resync of %s: it runs as a copy here already",
                       name);
    return 0;
}

/* The log of db has a generation after the split (why): its role becomes DIVERGED, recorded,
 * and its shippers fenced, for the incremental resync. */
static void record_diverged(node_db_t *db, const char *follows, const char *why)
{
    ls_role_state_t st = db->role;
    st.role = LS_ROLE_DIVERGED;
    st.since_ns = ls_now_ns();
    snprintf(st.reason, sizeof(st.reason), "diverged: 1 generation after the split (%.400s)", why);
    char e2[600];
    if (ls_role_save(db->cfg->path, &st, e2, sizeof(e2)) == 0) db->role = st;
    for (int i = 0; db->active && i < db->active->nshippers; i++)
        ls_ship_fence(db->active->shippers[i].m, st.epoch, follows, true, st.reason, ls_now_ns());
    db->role.role = LS_ROLE_DIVERGED;
    LS_LOGW("resync", "%s: %s: incremental resync", db->cfg->name, why);
}

int ls__node_resync_cmd(ls_node_t *n, const cJSON *req, cJSON *resp, char *err, size_t errlen)
{
    int rc = 0;
    node_db_t *db = ls__node_db_of(n, req, "resync", &rc, err, errlen);
    if (!db) return rc;
    rc = refuse(n, db, err, errlen);
    if (rc) {
        LS_LOGW("resync", "%s", err);
        return rc;
    }
    /* Diverged (generations after the split), or an earlier incremental resync retired it:
     * the incremental resync from the split (resync_inc.c). */
    if (db->role.role == LS_ROLE_DIVERGED || !db->active)
        return ls__node_resync_inc_start(n, db, resp, err, errlen);
    char why[900], follows[LS_ROLE_NAME_MAX + 1];
    snprintf(follows, sizeof(follows), "%s", db->role.follows);
    uint64_t records = 0;
    rc = open_log(db, &records, why, sizeof(why));
    if (rc == LS_EDIVERGED) { /* recorded; the incremental resync brings it back */
        record_diverged(db, follows, why);
        return ls__node_resync_inc_start(n, db, resp, err, errlen);
    }
    if (rc) {
        snprintf(err, errlen, "resync of %s failed: %s", db->cfg->name, why);
        return rc;
    }
    rc = ls__node_resync_reserve(n, db, why, sizeof(why));
    if (rc) { /* nothing saved yet: it may run again */
        snprintf(err, errlen, "resync of %s: %s", db->cfg->name, why);
        LS_LOGW("resync", "%s", err);
        return rc;
    }
    ls_role_state_t st = db->role;
    st.role = LS_ROLE_COPY;
    st.since_ns = ls_now_ns();
    memset(&st.loss, 0, sizeof(st.loss));
    snprintf(st.reason, sizeof(st.reason),
             "rebuilt as a copy of %.64s by logship resync on %.64s (was demoted: %.64s is "
             "active in epoch %u)",
             follows, n->cfg->node_name, follows, st.epoch);
    rc = ls_role_save(db->cfg->path, &st, why, sizeof(why));
    if (rc) {
        ls__node_resync_unreserve(n, db);
        snprintf(err, errlen, "resync of %s failed: %s", db->cfg->name, why);
        return rc;
    }
    db->role = st;
    ls_copy_resume_t at = {0};
    ls__node_resync_open_copy(n, db, follows, &at);
    snprintf(why, sizeof(why),
             "%s on %s is now a copy of %s (epoch %u): it resumes at generation %llu; %s ships to "
             "it from there",
             db->cfg->name, n->cfg->node_name, follows, st.epoch,
             (unsigned long long) at.next_generation, follows);
    LS_LOGI("resync", "%s", why);
    cJSON_AddStringToObject(resp, "message", why);
    return 0;
}

void ls__node_resync_open_copy(ls_node_t *n, node_db_t *db, const char *follows,
                               ls_copy_resume_t *at)
{
    if (db->active) ls__node_resync_retire(db->active);
    db->active = NULL;
    pcopy_t *p = copy_slot(n, db);
    LS_CHECK(p != NULL); /* reserved by the caller */
    char err[256];
    /* Its own slot retired by an activation is opened again in place; a new one is counted. */
    LS_CHECK(ls__node_pcopy_open(n, p, db->cfg, follows, err, sizeof(err)) == 0); /* reserved */
    if (p == &n->copies[n->ncopies]) n->ncopies++;
    db->copy = p;
    /* The new active's connection refused the database: closed, it offers it again. */
    for (peer_t *q = n->peers; q; q = q->next)
        if (!q->seed && !strcmp(q->name, follows)) ls_conn_close(q->conn);
    if (p->copy) ls_copy_resume_point(p->copy, at);
}

bool ls__node_resync_has_slot(ls_node_t *n, node_db_t *db)
{
    return copy_slot(n, db) != NULL;
}

int ls__node_resync_reserve(ls_node_t *n, node_db_t *db, char *err, size_t errlen)
{
    pcopy_t *p = copy_slot(n, db);
    if (!p)
        return ls_errf(err, errlen, LS_ENOMEM,
                       "no room for another copy of %s in this daemon: restart it", db->cfg->name);
    return ls__node_pcopy_reserve(n, p, db->cfg->name, err, errlen);
}

void ls__node_resync_unreserve(ls_node_t *n, node_db_t *db)
{
    pcopy_t *p = copy_slot(n, db);
    if (p) ls__node_pcopy_unreserve(p);
}
