/* Activation of a passive copy in the running node (docs/ACTIVATION.md): the control commands
 * "activate" and "activate_status". What the source last announced (COPY_STATE), kept with the
 * copy so that an activation after a restart of this daemon knows it, is announced.c's.
 *
 *   activate DB  refused while the old active answers (the connection serving the copy is alive,
 *                or a connect to one of its networks succeeds) unless forced; then the copy is
 *                stopped (receiver and replayer closed), ls_role_activate runs on the libuv pool
 *                with what the source last announced, and on success the database runs as the
 *                active of the new epoch, shipping to the rest of its copy set, without a restart.
 *                A refused or failed activation opens the copy again.
 *
 * The command answers at once; `logship activate` follows with "activate_status" until the
 * activation is over (the replay of what is durable may take a while). */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "node/node_int.h"

#define PROBE_TIMEOUT_MS 1000 /* a connect to one of the old active's networks */
#define ACT_MSG_MAX      2048

typedef enum { ACT_PROBING, ACT_ACTIVATING, ACT_DONE, ACT_REFUSED, ACT_FAILED } act_state_t;

static const char *act_state_name(act_state_t s)
{
    static const char *names[] = {"probing", "activating", "done", "refused", "failed"};
    return names[s];
}

struct node_act {
    ls_node_t *node;
    node_db_t *db;
    act_state_t state;
    uint64_t max_loss;
    bool force;
    char source[LS_CFG_NAME_MAX]; /* the old active */
    uv_work_t work;
    /* probe: the old active's networks (off the loop) */
    ls_cfg_network_t nets[LS_CFG_MAX_NETS];
    int nnets;
    char answered[LS_CFG_ADDR_MAX + LS_CFG_NAME_MAX + 16]; /* "" none, else what answered */
    /* activation (off the loop) */
    ls_role_announced_t announced;
    ls_role_activate_report_t report;
    int rc;
    char err[1024];
    char message[ACT_MSG_MAX];
    uint64_t start_ns, end_ns;
    /* a planned activation (switchover.c): no probe, the serving connection kept open (the
     * answer goes back on it), the reason given, end called once it is over */
    bool planned;
    char reason[LS_ROLE_REASON_MAX + 1];
    ls__node_act_end_cb end;
    void *end_ctx;
};

/* ---- the activation ------------------------------------------------------------------------- */
/* Off the loop: does any network of the old active accept a connection? */
static void probe_work(uv_work_t *w)
{
    struct node_act *a = w->data;
    for (int i = 0; i < a->nnets && !a->answered[0]; i++) {
        const ls_cfg_network_t *nw = &a->nets[i];
        char port[8];
        snprintf(port, sizeof(port), "%u", nw->remote.port);
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
        if (getaddrinfo(nw->remote.host, port, &hints, &res) != 0) continue;
        for (struct addrinfo *ai = res; ai && !a->answered[0]; ai = ai->ai_next) {
            int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) continue;
            int ok = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
            if (!ok && errno == EINPROGRESS) {
                struct pollfd pf = {.fd = fd, .events = POLLOUT};
                int e = 0;
                socklen_t el = sizeof(e);
                ok = poll(&pf, 1, PROBE_TIMEOUT_MS) == 1 &&
                     getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) == 0 && e == 0;
            }
            close(fd);
            if (ok)
                snprintf(a->answered, sizeof(a->answered), "%s:%u (network %s)", nw->remote.host,
                         nw->remote.port, nw->name);
        }
        freeaddrinfo(res);
    }
}

static void activate_work(uv_work_t *w)
{
    struct node_act *a = w->data;
    char reason[LS_ROLE_REASON_MAX + 1];
    if (a->planned)
        snprintf(reason, sizeof(reason), "%s", a->reason);
    else
        snprintf(reason, sizeof(reason), "activated by the operator on %s (was a copy of %s%s)",
                 a->node->cfg->node_name, a->source, a->force ? ", --force" : "");
    ls_role_activate_options_t o = {.prefix = LS_GEN_PREFIX_DEFAULT,
                                    .max_loss = a->max_loss,
                                    .announced = a->announced,
                                    .reason = reason};
    a->rc = ls_role_activate(a->db->cfg->path, &o, &a->report, a->err, sizeof(a->err));
}

static void finish(struct node_act *a, act_state_t st)
{
    a->state = st;
    a->end_ns = ls_now_ns();
    ls_log(st == ACT_DONE ? LS_LOG_INFO : LS_LOG_ERROR, "activate", "%s", a->message);
    if (a->end)
        a->end(a->db, a->end_ctx,
               st == ACT_DONE ? 0
               : a->rc        ? a->rc
                              : LS_ESTATE,
               &a->report, a->message);
    a->end = NULL;
}

/* The copy runs again (a refused or failed activation): in place, the same slot, its last
 * seed's figures and handles kept. Its wake-up was kept by stop_copy: this open needs no new
 * descriptor for it, so it cannot fail for want of one. */
static void reopen_copy(struct node_act *a)
{
    pcopy_t *p = a->db->copy;
    char err[256];
    if (ls__node_pcopy_open(a->node, p, a->db->cfg, a->source, err, sizeof(err)) != 0)
        LS_LOGE("activate", "%s: the copy cannot be opened again before a restart: %s",
                p->cfg->name, err); /* cannot happen: reserved */
}

static void describe(struct node_act *a, char *out, size_t len)
{
    const ls_role_activate_report_t *r = &a->report;
    const ls_role_loss_t *l = &r->loss;
    size_t n = (size_t) snprintf(
        out, len,
        "activated %s on %s: epoch %u starts at generation %" PRIu64 " (generations up to %" PRIu64
        " replayed, last LSN %" PRIu64 ")%s; ",
        a->db->cfg->name, a->node->cfg->node_name, r->new_epoch, r->first_generation,
        r->last_generation, r->last_lsn, r->resumed ? ", finishing an interrupted activation" : "");
    if (n >= len) return;
    if (r->lossless)
        n += (size_t) snprintf(
            out + n, len - n, "lossless: every generation %s announced (up to %" PRIu64 ") is here",
            a->source, a->announced.last_generation);
    else
        n += (size_t) snprintf(out + n, len - n,
                               "may have lost generations %" PRIu64 "..%" PRIu64 " (%" PRIu64
                               " generations, %" PRIu64 " bytes, commits made between %" PRIu64
                               " and %" PRIu64 " ns since 1970 UTC)",
                               l->first_generation, l->last_generation, l->generations, l->bytes,
                               l->from_ns, l->to_ns);
    if (n < len && r->shadow_generation)
        n += (size_t) snprintf(out + n, len - n,
                               "; generation %" PRIu64 " closed from its block-mode shadow up to "
                               "LSN %" PRIu64 " (%" PRIu64 " bytes after its last commit dropped)",
                               r->shadow_generation, r->shadow_last_lsn, r->shadow_dropped);
    if (n < len && l->open_generation && l->open_held_lsn)
        snprintf(out + n, len - n,
                 "; commits in %s's open generation %" PRIu64 " after LSN %" PRIu64
                 " (it announced up to %" PRIu64 ", 0: unknown) were never shipped and are not "
                 "here",
                 a->source, l->open_generation, l->open_held_lsn, l->open_lsn);
    else if (n < len && l->open_generation)
        snprintf(out + n, len - n,
                 "; commits in %s's open generation %" PRIu64
                 " (and in any later generation it closed without announcing it) were never "
                 "shipped and are not here",
                 a->source, l->open_generation);
}

static void activate_done(uv_work_t *w, int status)
{
    (void) status;
    struct node_act *a = w->data;
    ls_node_t *n = a->node;
    node_db_t *db = a->db;
    if (a->rc) {
        snprintf(a->message, sizeof(a->message), "%s", a->err);
        finish(a, a->rc == LS_ESTATE ? ACT_REFUSED : ACT_FAILED);
        if (!n->stopping)
            reopen_copy(a);
        else
            ls__node_pcopy_unreserve(db->copy);
        return;
    }
    ls__node_pcopy_unreserve(db->copy); /* the copy's slot stays retired */
    char err[600];
    if (ls_role_load(db->cfg->path, LS_ROLE_ACTIVE, &db->role, err, sizeof(err)) != 0)
        LS_LOGE("activate", "%s: %s", db->cfg->name, err);
    describe(a, a->message, sizeof(a->message));
    finish(a, ACT_DONE);
    if (n->stopping) return; /* the next start runs it as active */
    char set[LS_CFG_MAX_COPIES][LS_CFG_NAME_MAX], to[LS_CFG_MAX_COPIES][LS_CFG_NAME_MAX];
    int count = ls_config_copy_set(n->cfg, db->cfg, set), nto = 0;
    for (int i = 0; i < count; i++)
        if (strcmp(set[i], n->cfg->node_name)) memcpy(to[nto++], set[i], LS_CFG_NAME_MAX);
    db->active = &n->actives[n->nactives++]; /* room for every database (start_databases) */
    ls__node_active_init(n, db->active, db->cfg, to, nto);
    ls__node_active_poll(db->active);
}

/* The copy stops: its connection (if the old active still ships, under --force) is closed and
 * the copy's receiver and replayer with it; the slot is retired until the activation ends. */
static void stop_copy(struct node_act *a)
{
    pcopy_t *p = a->db->copy;
    peer_t *serving = a->planned ? NULL : p->peer; /* planned: the answer goes back on it */
    ls__node_pcopy_detach(p);
    for (peer_t *q = a->node->peers; q; q = q->next)
        for (int i = 0; i < q->nidx; i++)
            if (q->by_idx[i] == p) q->by_idx[i] = NULL;
    if (serving) ls_conn_close(serving->conn);
    ls__node_pcopy_close(p, true); /* its wake-up kept for reopen_copy */
    p->retired = true;
}

static void probe_done(uv_work_t *w, int status)
{
    (void) status;
    struct node_act *a = w->data;
    if (a->node->stopping) {
        snprintf(a->message, sizeof(a->message), "activation of %s abandoned: the daemon stops",
                 a->db->cfg->name);
        finish(a, ACT_FAILED);
        return;
    }
    if (a->answered[0] && !a->force) {
        snprintf(a->message, sizeof(a->message),
                 "activation of %s refused: the active %s still answers (a connect to %s "
                 "succeeded); stop it first, or rerun with --force if it can no longer write",
                 a->db->cfg->name, a->source, a->answered);
        finish(a, ACT_REFUSED);
        return;
    }
    if (a->answered[0])
        LS_LOGW("activate", "%s: %s still answers at %s: activating anyway (--force)",
                a->db->cfg->name, a->source, a->answered);
    a->announced = a->db->copy->announced;
    stop_copy(a);
    a->state = ACT_ACTIVATING;
    LS_LOGI("activate",
            "%s: copy stopped; activating (%s last announced generation %" PRIu64 ", %" PRIu64
            " bytes not held here; at most %" PRIu64 " generations may be lost)",
            a->db->cfg->name, a->source, a->announced.last_generation, a->announced.missing_bytes,
            a->max_loss);
    if (uv_queue_work(a->node->loop, &a->work, activate_work, activate_done) != 0) {
        snprintf(a->message, sizeof(a->message), "activation of %s: cannot queue the work",
                 a->db->cfg->name);
        finish(a, ACT_FAILED);
        reopen_copy(a);
    }
}

static bool running(const struct node_act *a)
{
    return a && (a->state == ACT_PROBING || a->state == ACT_ACTIVATING);
}

/* The links to the rest of db's copy set, made now (idle: a link connects once it has something
 * to ship) rather than by ls__node_active_init after the activation: out of descriptors for a
 * link's wake-up, the activation is refused before the copy stops or anything is written. */
static int make_links(ls_node_t *n, node_db_t *db, char *err, size_t errlen)
{
    char set[LS_CFG_MAX_COPIES][LS_CFG_NAME_MAX];
    int count = ls_config_copy_set(n->cfg, db->cfg, set);
    for (int i = 0; i < count; i++) {
        int werr = 0;
        if (!strcmp(set[i], n->cfg->node_name) || ls__node_link_for(n, set[i], &werr) || !werr)
            continue;
        return ls_errf(err, errlen, ls_err_from_errno(werr),
                       "activation of %s refused: cannot make the link to %s: cannot make its "
                       "wake-up: %s; the copy runs on, try again once descriptors are free",
                       db->cfg->name, set[i], strerror(werr));
    }
    return 0;
}

/* Refusals decided at once: the database, its role, a seed, the connection serving the copy,
 * the links it will ship over. */
static int check(ls_node_t *n, node_db_t *db, bool force, char *err, size_t errlen)
{
    const ls_role_state_t *r = &db->role;
    if (running(db->act)) {
        snprintf(err, errlen, "%s is being activated already (logship status shows it)",
                 db->cfg->name);
        return LS_EBUSY;
    }
    if (r->role == LS_ROLE_ACTIVE) {
        snprintf(err, errlen, "%s is already the active on %s (epoch %u)", db->cfg->name,
                 n->cfg->node_name, r->epoch);
        return LS_ESTATE;
    }
    if (r->role != LS_ROLE_COPY || !db->copy || db->copy->retired) {
        snprintf(err, errlen,
                 "%s is %s on %s (epoch %u): only a copy can be activated; rebuild it as a copy "
                 "first",
                 db->cfg->name, ls_role_kind_name(r->role), n->cfg->node_name, r->epoch);
        return LS_ESTATE;
    }
    if (n->nactives >= n->actives_cap) {
        snprintf(err, errlen,
                 "%s cannot be activated again in this daemon (%d activations since it started): "
                 "restart it",
                 db->cfg->name, n->nactives);
        return LS_EBUSY;
    }
    pcopy_t *p = db->copy;
    char why[NODE_REASON_MAX];
    if (ls__node_seed_client_busy(p, why, sizeof(why))) {
        snprintf(err, errlen, "%s cannot be activated during a seed: %s", db->cfg->name, why);
        return LS_EBUSY;
    }
    if (p->peer && !force) {
        ls_conn_stats_t st;
        ls_conn_stats(p->peer->conn, &st);
        uint64_t now = ls_mono_ns(), ago = now > st.last_rx_mono_ns ? now - st.last_rx_mono_ns : 0;
        snprintf(err, errlen,
                 "activation of %s refused: the active %s still answers (its connection %s "
                 "serving this copy is alive, last heard %" PRIu64
                 " ms ago); stop it first, or rerun with --force if it can no longer write",
                 db->cfg->name, p->source, ls_conn_peer(p->peer->conn), ago / 1000000);
        return LS_ESTATE;
    }
    return make_links(n, db, err, errlen);
}

static void report_json(const struct node_act *a, cJSON *resp)
{
    const ls_role_activate_report_t *r = &a->report;
    cJSON_AddStringToObject(resp, "database", a->db->cfg->name);
    cJSON_AddStringToObject(resp, "state", act_state_name(a->state));
    cJSON_AddStringToObject(resp, "message", a->message);
    cJSON_AddStringToObject(resp, "from", a->source);
    cJSON_AddBoolToObject(resp, "force", a->force);
    ls_status_json_add_u64(resp, "max_loss", a->max_loss);
    ls_status_json_add_u64(resp, "start_time_ns", a->start_ns);
    ls_status_json_add_u64(resp, "end_time_ns", a->end_ns);
    if (a->state != ACT_DONE) return;
    cJSON_AddBoolToObject(resp, "lossless", r->lossless);
    ls_status_json_add_u64(resp, "epoch", r->new_epoch);
    ls_status_json_add_u64(resp, "first_generation", r->first_generation);
    ls_status_json_add_u64(resp, "last_generation", r->last_generation);
    ls_status_json_add_u64(resp, "last_lsn", r->last_lsn);
    ls_status_json_add_u64(resp, "shadow_generation", r->shadow_generation);
    ls_status_json_add_u64(resp, "shadow_last_lsn", r->shadow_last_lsn);
    cJSON *l = cJSON_AddObjectToObject(resp, "loss");
    if (!l) return;
    ls_status_json_add_loss(l, r->loss.generations, r->loss.first_generation,
                            r->loss.last_generation, r->loss.bytes, r->loss.from_ns, r->loss.to_ns,
                            r->loss.open_generation);
    ls_status_json_add_u64(l, "open_held_lsn", r->loss.open_held_lsn);
    ls_status_json_add_u64(l, "open_lsn", r->loss.open_lsn);
}

/* db's activation record, cleared (the last one's slot reused) and started now; NULL: no memory. */
static struct node_act *new_act(ls_node_t *n, node_db_t *db)
{
    struct node_act *a = db->act ? db->act : calloc(1, sizeof(*a));
    if (!a) return NULL;
    memset(a, 0, sizeof(*a));
    db->act = a;
    a->node = n;
    a->db = db;
    a->start_ns = ls_now_ns();
    a->work.data = a;
    snprintf(a->source, sizeof(a->source), "%s", db->copy->source);
    return a;
}

int ls__node_activate_cmd(ls_node_t *n, const cJSON *req, bool status_only, cJSON *resp, char *err,
                          size_t errlen)
{
    int rc = 0;
    node_db_t *db =
        ls__node_db_of(n, req, status_only ? "activate_status" : "activate", &rc, err, errlen);
    if (!db) return rc;
    if (status_only) {
        if (!db->act) {
            snprintf(err, errlen, "no activation of %s since the daemon started", db->cfg->name);
            return LS_ENOENT;
        }
        report_json(db->act, resp);
        return 0;
    }
    bool force = cJSON_IsTrue(cJSON_GetObjectItem(req, "force"));
    uint64_t max_loss = ls_status_json_u64(req, "max_loss");
    rc = check(n, db, force, err, errlen);
    if (rc) {
        LS_LOGW("activate", "%s", err);
        return rc;
    }
    struct node_act *a = new_act(n, db);
    if (!a) return LS_ENOMEM;
    a->force = force;
    a->max_loss = max_loss;
    const ls_cfg_target_t *t = ls_config_peer(n->cfg, a->source);
    for (int i = 0; t && i < t->nnets; i++)
        a->nets[a->nnets++] = t->nets[i];
    a->state = ACT_PROBING;
    if (uv_queue_work(n->loop, &a->work, probe_work, probe_done) != 0) {
        a->state = ACT_FAILED;
        snprintf(err, errlen, "cannot queue the activation's work");
        return LS_ENOMEM;
    }
    snprintf(a->message, sizeof(a->message), "activating %s on %s (copy of %s)%s", db->cfg->name,
             n->cfg->node_name, a->source,
             t ? "" : "; no section says how to reach the old active: no connect is tried");
    LS_LOGI("activate", "%s", a->message);
    cJSON_AddStringToObject(resp, "message", a->message);
    return 0;
}

int ls__node_activate_planned(ls_node_t *n, node_db_t *db, const ls_role_announced_t *announced,
                              const char *reason, ls__node_act_end_cb end, void *ctx, char *err,
                              size_t errlen)
{
    int rc = check(n, db, true, err, errlen);
    if (rc) return rc;
    struct node_act *a = new_act(n, db);
    if (!a) return LS_ENOMEM;
    a->planned = true;
    a->force = true;
    a->announced = *announced;
    snprintf(a->reason, sizeof(a->reason), "%s", reason);
    stop_copy(a);
    a->state = ACT_ACTIVATING;
    snprintf(a->message, sizeof(a->message), "activating %s on %s (%s)", db->cfg->name,
             n->cfg->node_name, reason);
    LS_LOGI("activate", "%s", a->message);
    if (uv_queue_work(n->loop, &a->work, activate_work, activate_done) != 0) {
        snprintf(a->message, sizeof(a->message), "activation of %s: cannot queue the work",
                 db->cfg->name);
        finish(a, ACT_FAILED);
        reopen_copy(a);
        return 0; /* end was called */
    }
    a->end = end;
    a->end_ctx = ctx;
    return 0;
}

const char *ls__node_activation_state(const node_db_t *d)
{
    return d->act ? act_state_name(d->act->state) : NULL;
}

void ls__node_activate_free(node_db_t *d)
{
    free(d->act);
    d->act = NULL;
}
