/* The seed client's control commands ("seed", "seed_status"), its part of the status document,
 * and start-up recovery of half-done seeds (docs/SEED.md, "The daemon"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/seed_client_int.h"

static uint64_t next_id = 1;

static const char *state_name(const struct node_seedc *sc)
{
    return ls_seed_client_state_name(ls_seed_client_state(sc->cs));
}

/* ---- loop: commands -------------------------------------------------------------------------- */
static void on_wake_closed(void *data)
{
    struct node_seedc *sc = data;
    ls_seed_client_free(sc->cs);
    ls__node_seedc_bufs_free(sc, true);
    pthread_mutex_destroy(&sc->mu);
    free(sc);
}

static const char *str_arg(const cJSON *req, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(req, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* A failed seed shows as "aborting" until the receiver thread has taken every item pushed, the
 * abort among them: only then is the partial new copy (<copy>.seed-new) gone, and "failed" says
 * so to `logship seed`, which stops polling at it. */
static void fill(struct node_seedc *sc, ls_status_seed_t *o)
{
    ls_seed_client_figures_t fig;
    ls_seed_client_figures(sc->cs, &fig);
    pthread_mutex_lock(&sc->mu);
    bool busy = sc->outstanding > 0;
    pthread_mutex_unlock(&sc->mu);
    o->present = true;
    o->id = sc->id;
    o->state =
        fig.state == LS_SEED_CLI_FAILED && busy ? "aborting" : ls_seed_client_state_name(fig.state);
    snprintf(o->from, sizeof(o->from), "%s", sc->src->name);
    snprintf(o->network, sizeof(o->network), "%s", sc->src->nets[sc->net].name);
    o->bytes_done = fig.prog.done;
    o->bytes_total = fig.info.total_bytes;
    o->percent = fig.begun ? ls_seed_progress_percent(&fig.prog) : 0;
    o->rate_bps = fig.prog.rate;
    o->eta_s = ls_seed_progress_eta(&fig.prog);
    o->generation = fig.info.generation;
    o->lsn = fig.info.last_lsn;
    o->manual_resume = sc->manual_resume;
    o->start_time_ns = sc->start_ns;
    o->end_time_ns = sc->end_ns;
    snprintf(o->error, sizeof(o->error), "%s", sc->error);
}

static void describe(struct node_seedc *sc, cJSON *o)
{
    ls_status_seed_t st = {0};
    fill(sc, &st);
    ls_status_seed_to_json(&st, o);
}

/* Checks a "seed" request against the copy and the configuration; *srcp and *net on success. */
static int check(ls_node_t *n, pcopy_t *p, const cJSON *req, const ls_cfg_target_t **srcp, int *net,
                 bool *replace, char *err, size_t errlen)
{
    const char *from = str_arg(req, "from"), *netname = str_arg(req, "network");
    bool del = cJSON_IsTrue(cJSON_GetObjectItem(req, "delete_existing"));
    if (from && strcmp(from, p->source)) {
        snprintf(err, errlen,
                 "copy %s on %s copies from %s: it can only be seeded from there, not from %s",
                 p->cfg->name, n->cfg->node_name, p->source, from);
        return LS_EINVAL;
    }
    const ls_cfg_target_t *src = ls_config_source(n->cfg, p->source);
    if (!src) {
        snprintf(err, errlen,
                 "%s has no [source %s] section: add one with 'network = NAME HOST:PORT' (an "
                 "address %s listens on) to seed from it",
                 n->cfg->path, p->source, p->source);
        return LS_ECONFIG;
    }
    *net = 0;
    if (netname) {
        *net = -1;
        for (int i = 0; i < src->nnets; i++)
            if (!strcmp(src->nets[i].name, netname)) *net = i;
        if (*net < 0) {
            snprintf(err, errlen, "[source %s] has no network %s (it has %s%s%s)", src->name,
                     netname, src->nets[0].name, src->nnets > 1 ? ", " : "",
                     src->nnets > 1 ? src->nets[1].name : "");
            return LS_EINVAL;
        }
    }
    if (p->seed && !ls__node_seedc_finished(p->seed)) {
        snprintf(err, errlen, "a seed of %s from %s is under way (%s)", p->cfg->name,
                 p->seed->src->name, state_name(p->seed));
        return LS_EBUSY;
    }
    if (!p->rx_started) {
        snprintf(err, errlen, "copy %s has no receiver running (%s)", p->cfg->name,
                 ls__node_pcopy_reason(p));
        return LS_ESTATE;
    }
    char what[128];
    bool failed = ls__node_pcopy_state(p) == CS_FAILED || ls__node_pcopy_state(p) == CS_DIVERGED;
    if (!del && !failed && ls_seed_copy_holds_data(p->cfg->path, what, sizeof(what))) {
        snprintf(err, errlen,
                 "copy %s (%s) already holds %s and is %s: a seed would replace it; run the seed "
                 "with --delete-existing to do so (a Failed or Diverged copy needs no such "
                 "flag)",
                 p->cfg->name, p->cfg->path, what, ls__node_state_name(ls__node_pcopy_state(p)));
        return LS_EEXIST;
    }
    *srcp = src;
    *replace = true; /* decided here, against the copy as the operator saw it */
    return 0;
}

static pcopy_t *find_copy(ls_node_t *n, const char *db, char *err, size_t errlen)
{
    for (int i = 0; db && i < n->ncopies; i++)
        if (!n->copies[i].retired && !strcmp(n->copies[i].cfg->name, db)) return &n->copies[i];
    if (!db)
        snprintf(err, errlen, "which database? (\"database\" is missing)");
    else
        snprintf(err, errlen, "node %s holds no passive copy of %s", n->cfg->node_name, db);
    return NULL;
}

/* `seed --status`: the last seed of p since the daemon started. */
static int seed_status(pcopy_t *p, cJSON *resp, char *err, size_t errlen)
{
    if (!p->seed) {
        snprintf(err, errlen, "no seed of %s since the daemon started", p->cfg->name);
        return LS_ENOENT;
    }
    describe(p->seed, resp);
    cJSON_AddStringToObject(resp, "copy_state", ls__node_state_name(ls__node_pcopy_state(p)));
    cJSON_AddStringToObject(resp, "reason", ls__node_pcopy_reason(p));
    return 0;
}

/* Closes p's last seed if it has wound down; LS_EBUSY if it has not. */
static int retire_old(pcopy_t *p, char *err, size_t errlen)
{
    struct node_seedc *old = p->seed;
    if (!old) return 0;
    pthread_mutex_lock(&old->mu);
    bool idle = old->outstanding == 0;
    pthread_mutex_unlock(&old->mu);
    if (!idle || old->conn) {
        snprintf(err, errlen, "the last seed of %s is still winding down: try again", p->cfg->name);
        return LS_EBUSY;
    }
    ls__node_wake_close(&old->wake, on_wake_closed);
    return 0;
}

/* A new seed client of p from src over network net, as req asks; NULL with the errno in *werr
 * when its wake-up cannot be made (out of descriptors). */
static struct node_seedc *seedc_new(ls_node_t *n, pcopy_t *p, const cJSON *req,
                                    const ls_cfg_target_t *src, int net, bool replace, int *werr)
{
    struct node_seedc *sc = calloc(1, sizeof(*sc));
    LS_CHECK(sc != NULL);
    *werr = ls__node_wake_init(n->loop, &sc->wake, ls__node_seedc_on_wake, sc);
    if (*werr != 0) {
        free(sc);
        return NULL;
    }
    sc->node = n;
    sc->p = p;
    sc->id = next_id++;
    sc->src = src;
    sc->net = net;
    sc->net_fixed = str_arg(req, "network") != NULL;
    sc->replace = replace;
    sc->manual_resume = cJSON_IsTrue(cJSON_GetObjectItem(req, "manual_resume"));
    sc->start_ns = ls_now_ns();
    sc->saved_state =
        ls__node_pcopy_state(p) == CS_SEEDING ? CS_DISCONNECTED : ls__node_pcopy_state(p);
    snprintf(sc->saved_reason, sizeof(sc->saved_reason), "%s", ls__node_pcopy_reason(p));
    ls_seed_client_options_t co = {.source = src->name,
                                   .features = (n->cfg->plaintext ? LS_FEAT_CKSUM : 0) |
                                               (src->compression_level > 0 ? LS_FEAT_ZSTD : 0),
                                   .zstd_level = (int8_t) src->compression_level,
                                   .window = (uint32_t) n->cfg->receive_window};
    LS_CHECK(ls_seed_client_new(&co, &sc->cs) == 0);
    sc->shown = ls_seed_client_state(sc->cs);
    pthread_mutex_init(&sc->mu, NULL);
    return sc;
}

int ls__node_seed_client_cmd(ls_node_t *n, const cJSON *req, bool status_only, cJSON *resp,
                             char *err, size_t errlen)
{
    pcopy_t *p = find_copy(n, str_arg(req, "database"), err, errlen);
    if (!p) return LS_ENOENT;
    if (status_only) return seed_status(p, resp, err, errlen);
    const ls_cfg_target_t *src;
    int net;
    bool replace;
    int rc = check(n, p, req, &src, &net, &replace, err, errlen);
    if (rc == 0) rc = retire_old(p, err, errlen);
    if (rc) return rc;
    int werr;
    struct node_seedc *sc = seedc_new(n, p, req, src, net, replace, &werr);
    if (!sc) {
        snprintf(err, errlen, "cannot seed %s now: cannot make the seed's wake-up: %s",
                 p->cfg->name, strerror(werr));
        return ls_err_from_errno(werr);
    }
    p->seed = sc;
    NODE_SET_STATE(p, CS_SEEDING, "seeding from %s over network %s: connecting", src->name,
                   src->nets[net].name);
    LS_LOGI("seed", "%s: seed from %s asked%s%s", p->cfg->name, src->name,
            cJSON_IsTrue(cJSON_GetObjectItem(req, "delete_existing")) ? " (--delete-existing)" : "",
            sc->manual_resume ? " (--manual-resume)" : "");
    if (p->peer) ls__node_seedc_reoffer(p, LS_REOFFER_HOLD, "is being seeded");
    ls__node_seedc_connect(sc); /* a failure is the seed's: status and seed_status say why */
    describe(sc, resp);
    char msg[256];
    snprintf(msg, sizeof(msg), "seeding %s from %s over network %s", p->cfg->name, src->name,
             src->nets[sc->net].name);
    cJSON_AddStringToObject(resp, "message", msg);
    return 0;
}

bool ls__node_seed_client_busy(pcopy_t *p, char *why, size_t whylen)
{
    struct node_seedc *sc = p->seed;
    if (!sc || ls__node_seedc_finished(sc)) return false;
    snprintf(why, whylen, "copy %s is being seeded from %s (%s)", p->cfg->name, sc->src->name,
             state_name(sc));
    return true;
}

bool ls__node_seed_client_failed_lately(pcopy_t *p, char *why, size_t whylen)
{
    struct node_seedc *sc = p->seed;
    if (!sc || ls_seed_client_state(sc->cs) != LS_SEED_CLI_FAILED ||
        ls_now_ns() - sc->end_ns > NODE_SEED_NOTE_NS)
        return false;
    snprintf(why, whylen, "the last seed from %s failed: %s", sc->src->name, sc->error);
    return true;
}

void ls__node_seed_client_status(pcopy_t *p, ls_status_seed_t *o)
{
    if (!p->seed) return;
    fill(p->seed, o);
    ls_conn_stats_t cs = p->seed->cstats;
    if (p->seed->conn) ls_conn_stats(p->seed->conn, &cs);
    o->wire_bytes_received = cs.wire_bytes_received;
    o->zstd_loop_calls = cs.zstd_loop_calls;
}

void ls__node_seed_recover(const ls_cfg_database_t *d, bool active)
{
    char err[NODE_REASON_MAX] = "";
    if (active) {
        if (ls_seed_snapshot_cleanup(d->path) != 0)
            LS_LOGW("seed", "%s: cannot remove leftover snapshots in %s/seed-tmp", d->name,
                    d->path);
        return;
    }
    ls_seed_recover_t what = LS_SEED_RECOVER_NOTHING;
    int rc = ls_seed_recover(d->path, &what, err, sizeof(err));
    if (rc)
        LS_LOGE("seed", "%s: %s", d->name, err);
    else if (what != LS_SEED_RECOVER_NOTHING)
        LS_LOGI("seed", "%s: an interrupted seed was %s", d->name,
                what == LS_SEED_RECOVER_FINISHED ? "finished: the new copy is in place"
                : what == LS_SEED_RECOVER_UNDONE ? "undone: the old copy is back"
                                                 : "removed: the old copy stands");
}

void ls__node_seed_client_stop(ls_node_t *n)
{
    for (int i = 0; i < n->ncopies; i++) {
        pcopy_t *p = &n->copies[i];
        struct node_seedc *sc = p->seed;
        if (!sc) continue;
        p->seed = NULL;
        /* The receiver thread has been joined: what it left is ours to put away (its copy,
         * old or new, was closed with the pcopy). */
        ls_seed_install_free(sc->install);
        if (sc->conn) {
            ls_conn_set_data(sc->conn, NULL);
            ls_conn_close(sc->conn);
        }
        ls__node_wake_close(&sc->wake, on_wake_closed);
    }
}
