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
 * with only its own fields, one at a time, and its result is read in the after-work callback. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/netpath.h"
#include "node/node_int.h"
#include "seed/seed.h"
#include "seed/session.h"
#include "node/resync_int.h"

static void act(struct node_rsi *r);
static void next_job(struct node_rsi *r);

/* ---- the pool ------------------------------------------------------------------------------- */
static int open_none(void *ctx, ls_copy_t **out, char *err, size_t errlen)
{
    (void) ctx, (void) err, (void) errlen;
    *out = NULL; /* the loop opens the copy (ls__node_resync_open_copy) */
    return 0;
}

/* Renames from to to durably when from exists (true); err set on failure. */
static bool keep_aside(const char *from, const char *to, char *err, size_t errlen)
{
    if (access(from, F_OK) != 0) return false;
    if (rename(from, to) != 0) {
        snprintf(err, errlen, "cannot rename %.250s to %.250s: %s", from, to, strerror(errno));
        return false;
    }
    char parent[LS_CFG_PATH_MAX + 16];
    snprintf(parent, sizeof(parent), "%s", to);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) *slash = '\0';
    ls_fsync_dir(parent);
    return true;
}

void ls__rsi_recover_diverged(const char *db_dir, const char *name)
{
    char kept[LS_CFG_PATH_MAX + 16], in[LS_CFG_PATH_MAX + 16], err[600] = "";
    snprintf(kept, sizeof(kept), "%s.diverged", db_dir);
    snprintf(in, sizeof(in), "%s/diverged", db_dir);
    if (access(in, F_OK) == 0) {
        if (access(kept, F_OK) == 0)
            LS_LOGW("resync",
                    "%s: both %s and %s exist: the generations set aside by an interrupted "
                    "resync stay in %s (never deleted); move them into %s by hand",
                    name, in, kept, kept, in);
        return;
    }
    if (keep_aside(kept, in, err, sizeof(err)))
        LS_LOGI("resync",
                "%s: the diverged generations set aside by an interrupted resync are "
                "back in %s",
                name, in);
    else if (err[0])
        LS_LOGE("resync", "%s: %s (the diverged generations stay in %s)", name, err, kept);
}

static void run_job(uv_work_t *w)
{
    struct node_rsi *r = w->data;
    rjob_t *j = r->cur;
    const char *dir = r->db->cfg->path;
    r->jrc = 0;
    r->jerr[0] = 0;
    switch (j->kind) {
    case J_DEMOTE:
        r->jrc = ls_role_demote(dir, LS_GEN_PREFIX_DEFAULT, r->theirs, r->ntheirs, r->new_epoch,
                                r->new_active, &r->rep, r->jerr, sizeof(r->jerr));
        if (r->jrc == LS_EDIVERGED) {
            /* Nothing tells where the histories split (the new active no longer holds any
             * generation number this node holds): every local generation is set aside, and a
             * full seed replaces the store. */
            snprintf(r->full_why, sizeof(r->full_why), "%s", r->jerr);
            r->jerr[0] = 0;
            r->jrc = ls_role_move_aside(dir, LS_GEN_PREFIX_DEFAULT, 0, r->new_epoch, &r->rep.moved,
                                        r->jerr, sizeof(r->jerr));
            r->full = r->jrc == 0;
            break;
        }
        if (r->jrc == 0 && !r->rep.split.found) {
            /* Every generation this node still holds diverged (moved aside): the split lies
             * before its oldest one (log removal took the generations in common), where the
             * new active's chain cannot confirm it: a full seed, as above. */
            snprintf(r->full_why, sizeof(r->full_why),
                     "every generation %s still holds diverged from %s's chain (those in "
                     "common were removed here): the split cannot be confirmed",
                     r->db->cfg->name, r->follows);
            r->full = true;
            break;
        }
        if (r->jrc == 0)
            r->jrc = ls_seed_resync_keys(dir, LS_GEN_PREFIX_DEFAULT, r->new_epoch, &r->keys,
                                         &r->keys_len, &r->nkeys, r->jerr, sizeof(r->jerr));
        break;
    case J_BEGIN: {
        ls_seed_install_options_t o = {
            .copy_dir = dir, .prefix = LS_GEN_PREFIX_DEFAULT, .copy_failed = true};
        r->jrc = ls_seed_install_begin(&o, &r->info, &r->install, r->jerr, sizeof(r->jerr));
        break;
    }
    case J_DATA:
        if (!r->install) break;
        r->jrc =
            ls_seed_install_data(r->install, j->offset, j->data, j->len, r->jerr, sizeof(r->jerr));
        if (r->jrc == 0) r->done = ls_seed_install_done(r->install);
        break;
    case J_END:
        if (r->install)
            r->jrc = ls_seed_install_end(r->install, j->digest, r->jerr, sizeof(r->jerr));
        break;
    case J_SWAP: {
        ls_copy_t *none = NULL;
        r->swapped = false;
        /* A full seed replaces the directory: the role file (copy, following the new active)
         * goes into the new one first, so the rename that swaps the store in swaps the role in
         * too; and the diverged generations wait beside it (a crash leaves them there: the next
         * start puts them back, ls__rsi_recover_diverged). */
        const char *nd = r->install ? ls_seed_install_new_dir(r->install) : NULL;
        if (nd && (r->jrc = ls_role_save(nd, &r->new_role, r->jerr, sizeof(r->jerr))) != 0) break;
        char kept[LS_CFG_PATH_MAX + 16], in[LS_CFG_PATH_MAX + 16];
        snprintf(kept, sizeof(kept), "%s.diverged", dir);
        snprintf(in, sizeof(in), "%s/diverged", dir);
        bool aside = !r->info.resync && keep_aside(in, kept, r->jerr, sizeof(r->jerr));
        if (r->jerr[0]) {
            r->jrc = LS_EIO;
            break;
        }
        LS_FAULT("resync.before_swap"); /* tests: a crash (full seed: diverged/ set aside) */
        r->jrc = ls_seed_copy_swap(&none, &r->install, dir, open_none, NULL, &r->swapped, r->jerr,
                                   sizeof(r->jerr));
        LS_FAULT("resync.after_swap"); /* tests: a crash before the role file (and diverged/) */
        if (aside) {
            char e2[600] = "";
            keep_aside(kept, in, e2, sizeof(e2));
            if (e2[0]) LS_LOGE("resync", "%s (the diverged generations are in %s)", e2, kept);
        }
        break;
    }
    case J_ABORT:
        break;
    }
    if (r->jrc || j->kind == J_ABORT) {
        ls_seed_install_free(r->install); /* removes what was written beside the copy */
        r->install = NULL;
    }
}

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
    int rc = ls_role_save(db->cfg->path, &st, err, sizeof(err));
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

static void on_ready(ls_conn_t *c);
static void on_frame(ls_conn_t *c, const ls_conn_frame_t *fr);
static void on_close(ls_conn_t *c, int status, const char *msg);

/* The network the shipper's link to the new active would use (netpath.c: its pin, else the
 * network in use), else the first in the configured order. */
static int first_net(const struct node_rsi *r)
{
    const ls_node_t *n = r->node;
    for (int i = 0; i < n->nlinks; i++) {
        const link_t *l = &n->links[i];
        if (strcmp(l->cfg->name, r->src->name) || !l->sel || !l->sel->pol) continue;
        int net = ls_netpolicy_pinned(l->sel->pol);
        if (net < 0) net = ls_netpolicy_current(l->sel->pol);
        if (net >= 0 && net < r->src->nnets) return net;
    }
    return 0;
}

/* The connection to the new active for r->cs over network r->net. */
static int connect_net(struct node_rsi *r)
{
    ls_node_t *n = r->node;
    ls_conn_opts_t cb = {
        .on_ready = on_ready, .on_frame = on_frame, .on_close = on_close, .data = r};
    bool target = ls_config_target(n->cfg, r->follows) != NULL;
    int rc = ls__node_connect(n, r->src, r->net, target, &cb, &r->conn);
    if (rc) r->conn = NULL;
    return rc;
}

/* Before the WELCOME, a failed network gives way to the next in order (from the one first_net
 * chose, wrapping), as the shipper's links and the seed client do; true when one is being tried. */
static bool next_net(struct node_rsi *r, const char *why)
{
    while (r->nets_tried < r->src->nnets && !r->node->stopping &&
           ls_seed_client_state(r->cs) == LS_SEED_CLI_CONNECTING &&
           !ls_seed_client_welcomed(r->cs)) {
        int prev = r->net;
        r->net = (r->net + 1) % r->src->nnets;
        r->nets_tried++;
        LS_LOGW("resync", "%s: network %s to %s: %s; trying network %s", r->db->cfg->name,
                r->src->nets[prev].name, r->follows, why, r->src->nets[r->net].name);
        snprintf(r->message, sizeof(r->message), "connecting to %s over network %s", r->follows,
                 r->src->nets[r->net].name);
        int rc = connect_net(r);
        if (rc == 0) return true;
        why = ls_strerror(rc);
    }
    return false;
}

/* Opens the connection to the new active for r->cs: its networks in order, from first_net. */
void ls__rsi_connect_src(struct node_rsi *r)
{
    r->net = first_net(r);
    r->nets_tried = 1;
    snprintf(r->message, sizeof(r->message), "connecting to %s over network %s", r->follows,
             r->src->nets[r->net].name);
    int rc = connect_net(r);
    if (rc == 0 || next_net(r, ls_strerror(rc))) return;
    const ls_cfg_network_t *nw = &r->src->nets[r->net];
    ls_seed_client_fail(r->cs, rc ? rc : LS_EIO,
                        "cannot connect to %s over network %s (%s:%u) or any other: %s", r->follows,
                        nw->name, nw->remote.host, nw->remote.port, ls_strerror(rc ? rc : LS_EIO));
    act(r);
}

ls_seed_client_options_t ls__rsi_client_options(const struct node_rsi *r, bool resync,
                                                uint64_t from)
{
    const ls_node_t *n = r->node;
    return (ls_seed_client_options_t){.source = r->follows,
                                      .features =
                                          (n->cfg->plaintext ? LS_FEAT_CKSUM : 0) |
                                          (r->src->compression_level > 0 ? LS_FEAT_ZSTD : 0),
                                      .zstd_level = (int8_t) r->src->compression_level,
                                      .window = (uint32_t) n->cfg->receive_window,
                                      .resync = resync,
                                      .chain_from = from};
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
            const ls_role_diverged_t *m = &r->rep.moved;
            ls_role_state_t st; /* what ls_role_demote recorded, for status */
            char e2[600];
            if (ls_role_load(r->db->cfg->path, LS_ROLE_ACTIVE, &st, e2, sizeof(e2)) == 0)
                r->db->role = st;
            LS_LOGI("resync",
                    "%s: split at generation %llu; %llu generation(s) moved aside (%llu records, "
                    "%llu keys)%s%s; asking %s for %llu key(s)",
                    r->db->cfg->name, (unsigned long long) r->rep.split.split,
                    (unsigned long long) m->generations, (unsigned long long) m->records,
                    (unsigned long long) m->keys, m->generations ? " into " : "",
                    m->generations ? m->dest : "", r->follows, (unsigned long long) r->nkeys);
            snprintf(r->message, sizeof(r->message),
                     "split at generation %llu: asking %s for %llu key(s)",
                     (unsigned long long) r->rep.split.split, r->follows,
                     (unsigned long long) r->nkeys);
            int rc = ls_seed_client_resync(r->cs, r->rep.split.split, r->keys, r->keys_len);
            if (rc)
                ls_seed_client_fail(r->cs, rc, "the split (generation %llu) is not in %s's chain",
                                    (unsigned long long) r->rep.split.split, r->follows);
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
    act(r);
    next_job(r);
}

static void next_job(struct node_rsi *r)
{
    if (r->cur || !r->head) return;
    r->cur = r->head;
    r->head = r->head->next;
    if (!r->head) r->tail = NULL;
    r->work.data = r;
    LS_CHECK(uv_queue_work(r->node->loop, &r->work, run_job, after_job) == 0);
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

static void act(struct node_rsi *r)
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

/* ---- the loop: the connection ------------------------------------------------------------- */
static void on_ready(ls_conn_t *c)
{
    struct node_rsi *r = ls_conn_data(c);
    if (!r) return;
    LS_LOGI("resync", "%s: connected to %s over network %s (%s)", r->db->cfg->name, r->follows,
            r->src->nets[r->net].name, ls_conn_peer(c));
    static ls_frame_t f; /* large; the loop is single-threaded */
    uint8_t dbid[LS_DBID_LEN] = {0};
    char path[LS_CFG_PATH_MAX + 8], err[256];
    ls_store_meta_t m;
    snprintf(path, sizeof(path), "%s/store", r->db->cfg->path);
    if (ls_store_peek_meta(path, &m, err, sizeof(err)) == 0) memcpy(dbid, m.dbid, LS_DBID_LEN);
    ls_seed_client_hello(r->cs, r->node->cfg->node_name, r->db->cfg->name, dbid, &f);
    snprintf(r->message, sizeof(r->message), "asking %s for its chain", r->follows);
    if (ls__node_send(r->conn, &f) != 0) ls_conn_close(r->conn);
}

static void on_frame(ls_conn_t *c, const ls_conn_frame_t *fr)
{
    struct node_rsi *r = ls_conn_data(c);
    if (!r) return;
    static ls_frame_t f;
    char err[256];
    if (ls_frame_decode(fr->bytes, LS_FRAME_HEADER_SIZE + fr->body_len, &f, err, sizeof(err)))
        ls_seed_client_fail(r->cs, LS_EPROTO, "bad frame from %s: %s", r->follows, err);
    else
        ls_seed_client_frame(r->cs, &f, ls_mono_ns());
    act(r);
}

static void on_close(ls_conn_t *c, int status, const char *msg)
{
    struct node_rsi *r = ls_conn_data(c);
    if (!r) return;
    ls_conn_stats(c, &r->cstats);
    r->conn = NULL;
    if (next_net(r, msg)) return;
    ls_seed_client_closed(r->cs, status, msg);
    act(r);
}
