/* The incremental resync of an old active, the daemon's half (docs/ACTIVATION.md, "Incremental
 * resync"; the protocol is engine/seed's client session with .resync, PROTOCOL.md §10).
 *
 * `logship resync DB` on a node whose database is Diverged (generations written after the split)
 * retires the database's fenced ship machines, connects to the new active (the [target] or
 * [source] section of the node its role file follows) with a seed HELLO offering LS_FEAT_RESYNC,
 * asks for the new active's chain from its own oldest closed generation, and once the chain is
 * here (LS_SEED_CLI_SPLIT) demotes with it (ls_role_demote: the generations after the split are
 * moved into <db>/diverged/<epoch>/, never deleted), collects the keys they touched
 * (ls_seed_resync_keys) and asks for those. The new active answers with the current values of
 * those keys and of its own since the split (RESYNC_BEGIN + SEED_DATA), or falls back to a full
 * seed (SEED_BEGIN, replacing the directory: copy_failed). The install's steps and the swap run
 * one at a time on libuv's pool, in order (the directory is no copy yet: there is no receiver
 * thread); then the role file says copy, following the new active, and the database opens as a
 * copy that the new active ships to from the hand-off generation.
 *
 * The command answers at once; "resync_status" follows it (the CLI polls it). With
 * `[database] auto_resync = true` the housekeeping timer starts it for a demoted or diverged
 * database, again NODE_RSI_RETRY_NS after a failure.
 *
 * Threading: the loop owns everything; a job (disk work: demote, install, swap) runs on the pool
 * with only its own fields, one at a time, and its result is read in the after-work callback.
 *
 * Here: the job queue, the seed client's actions and the outcome; the jobs themselves are
 * resync_job.c's, the connection to the new active resync_conn.c's, the commands resync_cmd.c's
 * (the state they share: resync_int.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/node_int.h"
#include "node/resync_switchover_int.h"
#include "seed/seed.h"
#include "seed/session.h"
#include "node/resync_int.h"

static void next_job(struct node_rsi *r);

/* ---- the loop: outcome ---------------------------------------------------------------------- */

/* A failed resync leaves the database as it was before: an old active, its ship machines fenced
 * (Demoted, or Diverged when the demote moved generations aside), now saying why the resync
 * failed; `logship resync` (or auto_resync) may run again. */
static void fall_back(struct node_rsi *r)
{
    node_db_t *db = r->db;
    char err[600];
    ls_role_state_t st;
    if (ls_role_load(db->cfg->path, LS_ROLE_ACTIVE, &st, err, sizeof(err)) != 0) {
        LS_LOGE("resync", "%s: %s", db->cfg->name, err);
        return;
    }
    if (st.role == LS_ROLE_COPY || st.role == LS_ROLE_ACTIVE) return; /* not an old active */
    char base[LS_ROLE_REASON_MAX + 1];
    snprintf(base, sizeof(base), "%s", st.reason[0] ? st.reason : ls_role_kind_name(st.role));
    snprintf(st.reason, sizeof(st.reason), "%.200s; the last resync from %.64s failed: %.200s",
             base, r->follows, r->message);
    db->role = st; /* status shows it; the role file keeps its own reason */
    for (int i = 0; db->active && i < db->active->nshippers; i++)
        ls_ship_fence(db->active->shippers[i].m, st.epoch, st.follows, st.role == LS_ROLE_DIVERGED,
                      st.reason, ls_now_ns());
}

static void finish_failed(struct node_rsi *r, const char *why)
{
    if (r->finished) return;
    r->finished = true;
    r->ok = false;
    r->end_ns = ls_now_ns();
    snprintf(r->message, sizeof(r->message), "incremental resync of %s from %s failed: %.1500s",
             r->db->cfg->name, r->follows, why);
    LS_LOGE("resync", "%s", r->message);
    fall_back(r);
}

/* What the role file says once the new store is in place: a copy, following the new active. */
static void copy_role(struct node_rsi *r, ls_role_state_t *st)
{
    *st = r->db->role;
    st->role = LS_ROLE_COPY;
    st->epoch = r->new_epoch > st->epoch ? r->new_epoch : st->epoch;
    snprintf(st->follows, sizeof(st->follows), "%s", r->follows);
    st->since_ns = ls_now_ns();
    memset(&st->loss, 0, sizeof(st->loss));
    const ls_seed_info_t *in = &r->info;
    snprintf(st->reason, sizeof(st->reason),
             "rebuilt as a copy of %.64s by logship resync on %.64s (%s, from generation %llu)",
             r->follows, r->node->cfg->node_name, in->resync ? "incremental" : "full seed",
             (unsigned long long) (in->resync ? in->split_generation : in->generation));
}

/* The new store is in place: the role file says copy, and the database opens as one. */
static void finish_swapped(struct node_rsi *r)
{
    ls_node_t *n = r->node;
    node_db_t *db = r->db;
    ls_role_state_t st = r->new_role;
    const ls_seed_info_t *in = &r->info;
    char err[900];
    /* The copy's slot first: out of descriptors it fails as a role file that cannot be saved
     * does, before it (the database stays an old active; `logship resync` runs again). */
    int rc = ls__node_resync_reserve(n, db, err, sizeof(err));
    if (rc == 0) {
        rc = ls_role_save(db->cfg->path, &st, err, sizeof(err));
        if (rc) ls__node_resync_unreserve(n, db);
    }
    if (rc) {
        finish_failed(r, err);
        return;
    }
    db->role = st;
    ls_copy_resume_t at = {0};
    ls__node_resync_open_copy(n, db, r->follows, &at);
    r->finished = true;
    r->ok = true;
    r->end_ns = ls_now_ns();
    char moved[1200] = "nothing diverged";
    const ls_role_diverged_t *m = &r->rep.moved;
    if (m->generations)
        snprintf(moved, sizeof(moved),
                 "%llu diverged generation(s) %llu..%llu (%llu records, %llu keys) moved aside "
                 "into %.900s",
                 (unsigned long long) m->generations, (unsigned long long) m->first_generation,
                 (unsigned long long) m->last_generation, (unsigned long long) m->records,
                 (unsigned long long) m->keys, m->dest);
    if (in->resync)
        snprintf(r->message, sizeof(r->message),
                 "%s on %s is now a copy of %s (epoch %u): incremental resync from generation "
                 "%llu moved %llu bytes (%llu keys) against the store's %llu bytes; %s; it "
                 "resumes at generation %llu",
                 db->cfg->name, n->cfg->node_name, r->follows, st.epoch,
                 (unsigned long long) in->split_generation, (unsigned long long) in->total_bytes,
                 (unsigned long long) in->keys, (unsigned long long) in->store_bytes, moved,
                 (unsigned long long) at.next_generation);
    else
        snprintf(r->message, sizeof(r->message),
                 "%s on %s is now a copy of %s (epoch %u): fell back to a full seed (%s): %llu "
                 "bytes moved; %s; it resumes at generation %llu",
                 db->cfg->name, n->cfg->node_name, r->follows, st.epoch,
                 in->fallback[0]  ? in->fallback
                 : r->full_why[0] ? r->full_why
                                  : "the new active did not take the resync",
                 (unsigned long long) in->total_bytes, moved,
                 (unsigned long long) at.next_generation);
    LS_LOGI("resync", "%s", r->message);
}

/* The resync connection is given up for a full seed (its generations were set aside). */
static void full_seed(struct node_rsi *r)
{
    const ls_role_diverged_t *m = &r->rep.moved;
    LS_LOGW("resync",
            "%s: %s: %llu local generation(s) set aside into %s; falling back to a full seed "
            "from %s",
            r->db->cfg->name, r->full_why, (unsigned long long) m->generations, m->dest,
            r->follows);
    if (r->conn) {
        ls_conn_set_data(r->conn, NULL);
        ls_conn_close(r->conn);
        r->conn = NULL;
    }
    ls_seed_client_free(r->cs);
    ls_seed_client_options_t co = ls__rsi_client_options(r, false, 0);
    LS_CHECK(ls_seed_client_new(&co, &r->cs) == 0);
    snprintf(r->message, sizeof(r->message), "falling back to a full seed from %s", r->follows);
    ls__rsi_connect_src(r);
}

/* After the demotion: the role it recorded taken for status, the split logged, and the new
 * active asked for the keys written since the split. */
static void ask_for_keys(struct node_rsi *r)
{
    const ls_role_diverged_t *m = &r->rep.moved;
    ls_role_state_t st; /* what ls_role_demote recorded, for status */
    char e2[600];
    if (ls_role_load(r->db->cfg->path, LS_ROLE_ACTIVE, &st, e2, sizeof(e2)) == 0) r->db->role = st;
    LS_LOGI("resync",
            "%s: split at generation %llu; %llu generation(s) moved aside (%llu records, "
            "%llu keys)%s%s; asking %s for %llu key(s)",
            r->db->cfg->name, (unsigned long long) r->rep.split.split,
            (unsigned long long) m->generations, (unsigned long long) m->records,
            (unsigned long long) m->keys, m->generations ? " into " : "",
            m->generations ? m->dest : "", r->follows, (unsigned long long) r->nkeys);
    snprintf(r->message, sizeof(r->message), "split at generation %llu: asking %s for %llu key(s)",
             (unsigned long long) r->rep.split.split, r->follows, (unsigned long long) r->nkeys);
    int rc = ls_seed_client_resync(r->cs, r->rep.split.split, r->keys, r->keys_len);
    if (rc)
        ls_seed_client_fail(r->cs, rc, "the split (generation %llu) is not in %s's chain",
                            (unsigned long long) r->rep.split.split, r->follows);
}

static void after_job(uv_work_t *w, int status)
{
    (void) status;
    struct node_rsi *r = w->data;
    rjob_t *j = r->cur;
    r->cur = NULL;
    if (r->node->stopping) { /* ls__node_resync_inc_stop closed the connection */
        free(j);
        return;
    }
    switch (j->kind) {
    case J_DEMOTE:
        free(r->theirs);
        r->theirs = NULL;
        if (r->jrc) {
            ls_seed_client_fail(r->cs, r->jrc, "%s", r->jerr);
        } else if (r->full) {
            free(j);
            full_seed(r);
            return;
        } else {
            ask_for_keys(r);
        }
        free(r->keys);
        r->keys = NULL;
        break;
    case J_BEGIN:
    case J_DATA:
        if (r->jrc)
            ls_seed_client_failed(r->cs, r->jrc, r->jerr);
        else if (j->kind == J_DATA)
            ls_seed_client_consumed(r->cs, j->len, r->done, ls_mono_ns());
        break;
    case J_END:
        if (r->jrc)
            ls_seed_client_failed(r->cs, r->jrc, r->jerr);
        else
            ls_seed_client_verified(r->cs);
        break;
    case J_SWAP:
        ls_seed_client_swapped(r->cs, r->swapped, r->jerr[0] ? r->jerr : "not swapped");
        if (r->swapped)
            finish_swapped(r);
        else
            finish_failed(r, r->jerr[0] ? r->jerr : "the new store was not swapped in");
        break;
    case J_ABORT:
        break;
    }
    free(j);
    ls__rsi_act(r);
    next_job(r);
}

static void next_job(struct node_rsi *r)
{
    if (r->cur || !r->head) return;
    r->cur = r->head;
    r->head = r->head->next;
    if (!r->head) r->tail = NULL;
    r->work.data = r;
    LS_CHECK(uv_queue_work(r->node->loop, &r->work, ls__rsi_run_job, after_job) == 0);
}

/* A job at the end of the queue, whole before it may start (offset: J_DATA; digest: J_END). */
static void queue(struct node_rsi *r, job_kind_t kind, const uint8_t *data, uint32_t len,
                  uint64_t offset, const uint8_t *digest)
{
    rjob_t *j = calloc(1, sizeof(*j) + len);
    LS_CHECK(j != NULL);
    j->kind = kind;
    j->len = len;
    j->offset = offset;
    if (len) memcpy(j->data, data, len);
    if (digest) memcpy(j->digest, digest, LS_DIGEST_SIZE);
    if (r->tail)
        r->tail->next = j;
    else
        r->head = j;
    r->tail = j;
    next_job(r);
}

/* The chain is here: demote with it (on the pool). */
static void split(struct node_rsi *r)
{
    const ls_proto_link_t *pl;
    size_t n;
    uint32_t epoch;
    const char *active;
    ls_seed_client_chain(r->cs, &pl, &n, &epoch, &active);
    r->theirs = calloc(n ? n : 1, sizeof(*r->theirs));
    LS_CHECK(r->theirs != NULL);
    for (size_t i = 0; i < n; i++) {
        r->theirs[i] = (ls_role_link_t){.epoch = pl[i].epoch, .generation = pl[i].generation};
        memcpy(r->theirs[i].digest, pl[i].digest, LS_DIGEST_SIZE);
    }
    r->ntheirs = n;
    r->new_epoch = epoch;
    snprintf(r->new_active, sizeof(r->new_active), "%s", active && active[0] ? active : r->follows);
    snprintf(r->message, sizeof(r->message),
             "%s's chain received (%zu generations, epoch %u): finding the split", r->follows, n,
             epoch);
    r->demote_queued = true;
    queue(r, J_DEMOTE, NULL, 0, 0, NULL);
}

void ls__rsi_act(struct node_rsi *r)
{
    ls_seed_act_t a;
    while (ls_seed_client_action(r->cs, &a)) {
        switch (a.kind) {
        case LS_SEED_ACT_SEND:
            if (r->conn) ls__node_send(r->conn, &a.frame);
            break;
        case LS_SEED_ACT_INSTALL_BEGIN:
            r->info = *a.info;
            snprintf(r->message, sizeof(r->message), "receiving %llu bytes from %s (%s)",
                     (unsigned long long) a.info->total_bytes, r->follows,
                     a.info->resync ? "incremental" : "full seed");
            queue(r, J_BEGIN, NULL, 0, 0, NULL);
            break;
        case LS_SEED_ACT_INSTALL_DATA:
            queue(r, J_DATA, a.data, a.len, a.offset, NULL);
            break;
        case LS_SEED_ACT_INSTALL_END:
            queue(r, J_END, NULL, 0, 0, a.digest);
            break;
        case LS_SEED_ACT_SWAP:
            copy_role(r, &r->new_role);
            queue(r, J_SWAP, NULL, 0, 0, NULL);
            break;
        case LS_SEED_ACT_ABORT:
            queue(r, J_ABORT, NULL, 0, 0, NULL);
            break;
        case LS_SEED_ACT_CLOSE:
            if (r->conn) ls_conn_close(r->conn);
            break;
        case LS_SEED_ACT_ZSTD:
            if (!r->conn || ls_conn_set_compression(r->conn, a.zstd_level) != 0)
                ls_seed_client_fail(r->cs, LS_ENOMEM, "cannot start decompression");
            break;
        }
    }
    ls_seed_client_state_t st = ls_seed_client_state(r->cs);
    if (st == LS_SEED_CLI_SPLIT && !r->demote_queued) split(r);
    if (st == LS_SEED_CLI_FAILED) finish_failed(r, ls_seed_client_error(r->cs, NULL));
}
