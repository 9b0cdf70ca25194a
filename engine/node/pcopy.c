/* A passive copy in the node: engine/copy with its receiver thread (engine/copy/receiver.h),
 * whose events the loop polls on one wake-up (wake.c), and the copy's protocol machine
 * (engine/passive), whose frames go to the connection serving the copy and whose actions are
 * carried out here: log a state change, keep the operator's decision (<copy>.state) and the
 * ask-again counters (<copy>.counters). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "node/node_int.h"

copy_state_t ls__node_pcopy_state(const pcopy_t *p)
{
    return ls_passive_state(p->m);
}

const char *ls__node_pcopy_reason(const pcopy_t *p)
{
    return ls_passive_reason(p->m);
}

/* ---- the machine's callbacks ---------------------------------------------------------------- */
static int send_frame(void *ctx, const ls_frame_t *f)
{
    pcopy_t *p = ctx;
    return p->peer ? ls__node_send(p->peer->conn, f) : LS_ESTATE;
}

static int act(void *ctx, const ls_passive_action_t *a)
{
    pcopy_t *p = ctx;
    int rc = 0;
    switch (a->kind) {
    case LS_PASSIVE_ACT_STATE:
        ls_log(a->state == CS_FAILED || a->state == CS_DIVERGED ? LS_LOG_ERROR : LS_LOG_INFO,
               "copy", "%s <- %s: %s -> %s (%s)", p->cfg->name, p->source,
               ls__node_state_name(a->prev), ls__node_state_name(a->state), a->reason);
        break;
    case LS_PASSIVE_ACT_SAVE_OP:
        rc = ls__node_opstate_save(p->op_path, a->op);
        break;
    case LS_PASSIVE_ACT_SAVE_COUNTERS:
        rc = ls__node_counters_save(p->kept_path, a->counters);
        break;
    case LS_PASSIVE_ACT_LOG:
        LS_LOGI("copy", "%s <- %s: %s", p->cfg->name, p->source, a->reason);
        break;
    }
    return rc;
}

static bool held(void *ctx)
{
    return ls__node_seed_client_busy(ctx, NULL, 0);
}

static void on_async(void *data)
{
    pcopy_t *p = data;
    ls_passive_poll(p->m, ls_now_ns());
}

static void notify(void *ctx)
{
    ls__node_wake_send(ctx); /* any thread */
}

/* ---- lifecycle ------------------------------------------------------------------------------ */
/* Opens and starts the engine/copy of p with its options (at start, and after a seed's swap on
 * the receiver thread); its events go to p's receiver queue. */
int ls__node_pcopy_copy_open(pcopy_t *p, ls_copy_t **out, char *err, size_t errlen)
{
    ls_copy_options_t o = {.dir = p->cfg->path,
                           .keep_logs = (uint32_t) p->cfg->keep_logs,
                           .replay_lag_ms = p->cfg->replay_lag_ms,
                           .event_cb = ls_copy_rx_event_cb,
                           .event_ctx = p->rx};
    int rc = ls_copy_open(&o, out, err, errlen);
    if (rc == 0) rc = ls_copy_start(*out);
    if (rc) {
        ls_copy_close(*out);
        *out = NULL;
    }
    return rc;
}

/* The machine with the operator's decision and the counters kept beside the copy. */
static void new_machine(pcopy_t *p)
{
    ls_passive_options_t mo = {.database = p->cfg->name,
                               .source = p->source,
                               .send_cb = send_frame,
                               .action_cb = act,
                               .held_cb = held,
                               .ctx = p,
                               .rx = p->rx};
    snprintf(p->kept_path, sizeof(p->kept_path), "%s.counters", p->cfg->path);
    ls__node_counters_load(p->kept_path, &mo.counters);
    snprintf(p->op_path, sizeof(p->op_path), "%s.state", p->cfg->path);
    ls__node_opstate_load(p->op_path, &mo.op);
    p->m = ls_passive_new(&mo, ls_now_ns());
    LS_CHECK(p->m != NULL);
}

int ls__node_pcopy_reserve(ls_node_t *n, pcopy_t *p, const char *name, char *err, size_t errlen)
{
    if (p->async) return 0;
    ls_node_wake_t *w = malloc(sizeof(*w));
    LS_CHECK(w != NULL);
    /* "node.copy_wake": a copy's wake-up refused as at RLIMIT_NOFILE (tests at the limit) */
    int wrc = LS_FAULT("node.copy_wake") ? EMFILE : ls__node_wake_init(n->loop, w, on_async, p);
    if (wrc != 0) {
        free(w);
        return ls_errf(err, errlen, ls_err_from_errno(wrc),
                       "cannot open the copy %s: cannot make its receiver's wake-up: %s", name,
                       strerror(wrc));
    }
    p->async = w; /* async_closed still says the slot's last copy closed its own */
    return 0;
}

static void free_wake(void *data)
{
    free(data);
}

void ls__node_pcopy_unreserve(pcopy_t *p)
{
    ls_node_wake_t *w = p->async;
    if (!w) return;
    p->async = NULL; /* the slot may be reserved again at once: w frees itself */
    p->async_closed = true;
    w->data = w;
    ls__node_wake_close(w, free_wake);
}

int ls__node_pcopy_open(ls_node_t *n, pcopy_t *p, const ls_cfg_database_t *cfg, const char *source,
                        char *err, size_t errlen)
{
    /* The copy's receiver cannot run without its wake-up: made first (unless reserved), so that
     * out of descriptors p is left as it was (a retired slot stays retired) and the caller's
     * operation fails, not the daemon. */
    int rc = ls__node_pcopy_reserve(n, p, cfg->name, err, errlen);
    if (rc) return rc;
    ls_node_wake_t *w = p->async;
    struct node_seedc *seed = p->seed; /* a retired slot's last seed: its figures are kept */
    ls_passive_free(p->m);             /* a retired slot's (NULL in a new one) */
    ls_copy_rx_free(p->rx);
    memset(p, 0, sizeof(*p));
    p->async = w;
    p->seed = seed;
    p->node = n;
    p->cfg = cfg;
    snprintf(p->source, sizeof(p->source), "%s", source);
    ls__node_announced_load(p);
    /* A small BLOCK batch while the receiver thread is idle is written and synced on the loop:
     * no hand-off to that thread and back on a synchronous commit's path (docs/ARCHITECTURE.md,
     * the threads). */
    ls_copy_rx_options_t ro = {.name = cfg->name,
                               .notify_cb = notify,
                               .notify_ctx = p->async,
                               .inline_sync_ns = LS_COPY_SHADOW_QUICK_NS};
    p->rx = ls_copy_rx_new(&ro);
    LS_CHECK(p->rx != NULL);
    new_machine(p);
    ls__node_pcopy_epochs(p); /* generations of an older epoch than its history are refused */
    char cerr[512] = "", why[NODE_REASON_MAX];
    rc = ls__node_pcopy_copy_open(p, &p->copy, cerr, sizeof(cerr));
    /* The node keeps serving its other databases: a copy that cannot open shows Failed. */
    snprintf(why, sizeof(why), "cannot open the copy in %.200s: %.280s", cfg->path,
             cerr[0] ? cerr : ls_strerror(rc));
    ls_passive_start(p->m, p->copy, why, ls_now_ns());
    if (rc) return 0;
    ls__node_announced_made(p);
    if (ls_copy_rx_start(p->rx, p->copy) != 0) {
        NODE_SET_STATE(p, CS_FAILED, "cannot start the receiver thread");
        return 0;
    }
    p->rx_started = true;
    return 0;
}

void ls__node_pcopy_attach(pcopy_t *p, peer_t *peer, int idx)
{
    p->peer = peer; /* a newer connection takes over: the machine detaches the older first */
    ls_passive_connected(p->m, peer->credit, idx, peer->dbids[idx], peer->id, ls_now_ns());
    ls_passive_apply_asked(p->m, peer->apply);
}

void ls__node_pcopy_detach(pcopy_t *p)
{
    if (!p->peer) return;
    char seed[NODE_REASON_MAX - 64] = "";
    ls__node_seed_client_failed_lately(p, seed, sizeof(seed));
    ls_passive_disconnected(p->m, seed, ls_now_ns());
    p->peer = NULL;
}

/* The back-off after a transient ERROR; while the disk is full, ask again for the wanted
 * generation once there is room for it. */
void ls__node_pcopy_housekeep(pcopy_t *p)
{
    ls__node_announced_save(p, true);
    ls_passive_tick(p->m, ls_now_ns());
    if (!ls_passive_disk_full(p->m) || !p->peer) return;
    struct statvfs vfs;
    char dir[LS_CFG_PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "%s/inspect", p->cfg->path); /* may be another filesystem */
    if (statvfs(dir, &vfs) != 0 && statvfs(p->cfg->path, &vfs) != 0) return;
    uint64_t avail = (uint64_t) vfs.f_bavail * vfs.f_frsize;
    uint64_t need = LS_MAX(p->cfg->target_size * 2, (uint64_t) 2 << 20);
    if (avail >= need) ls_passive_space_available(p->m, ls_now_ns());
}

static void on_async_closed(void *data)
{
    pcopy_t *p = data;
    free(p->async);
    p->async = NULL;
    p->async_closed = true;
}

void ls__node_pcopy_close(pcopy_t *p, bool keep_wake)
{
    /* The receiver thread's copy is the open one (the loop's is NULL during a seed's swap, and
     * the same object otherwise). */
    ls_copy_t *rxc = ls_copy_rx_stop(p->rx);
    p->rx_started = false;
    ls_passive_set_copy(p->m, NULL, NULL);
    ls_copy_close(rxc ? rxc : p->copy); /* stops the replayer, checkpoints */
    p->copy = NULL; /* p->rx and p->m are freed with the node: a late push is dropped */
    ls__node_announced_save(p, true);
    ls__node_announced_close(p);
    /* Kept: the slot stays reserved for an open in place (ls__node_pcopy_unreserve ends it). */
    if (!keep_wake) ls__node_wake_close(p->async, on_async_closed);
}
