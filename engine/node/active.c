/* An active database: its log directory watched (fs events plus a periodic rescan, since events
 * can be lost), its source view, and the shippers to each of its targets. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/node_int.h"

void ls__node_active_init(ls_node_t *n, active_t *a, const ls_cfg_database_t *cfg,
                          char to[][LS_CFG_NAME_MAX], int count)
{
    memset(a, 0, sizeof(*a));
    a->node = n;
    a->cfg = cfg;
    snprintf(a->logs, sizeof(a->logs), "%s/logs", cfg->path);
    a->shippers = calloc((size_t) count + 1, sizeof(shipper_t));
    LS_CHECK(a->shippers != NULL);
    for (int i = 0; i < count; i++) {
        int werr;
        link_t *l = ls__node_link_for(n, to[i], &werr);
        if (!l && werr) { /* an activation made its links first (activate.c): at start only */
            LS_LOGE("active",
                    "database %s: cannot make the link to %s: cannot make its wake-up: %s: not "
                    "shipped there until the daemon restarts",
                    cfg->name, to[i], strerror(werr));
            continue;
        }
        if (!l) { /* the configuration names it in 'copies' without a section: checked there */
            LS_LOGE("active",
                    "database %s: no [peer %s] section says how to reach %s: not "
                    "shipped there",
                    cfg->name, to[i], to[i]);
            continue;
        }
        shipper_t *s = &a->shippers[a->nshippers++];
        ls__node_shipper_init(s, a, l);
        ls__node_link_add(l, s);
        if (l->conn) ls_conn_close(l->conn); /* its HELLO did not name this database */
    }
}

/* Reads and validates the header of the generation file at path. */
static bool read_header(const char *path, ls_gen_header_t *h)
{
    uint8_t hdr[LS_GEN_HEADER_SIZE];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = ls_pread_full(fd, hdr, sizeof(hdr), 0);
    close(fd);
    return n == (ssize_t) sizeof(hdr) && ls_gen_header_decode(hdr, sizeof(hdr), h) == 0;
}

/* The database id, from the current log's header or else the oldest closed generation's. */
static bool read_dbid(active_t *a)
{
    char path[LS_CFG_PATH_MAX + 64];
    ls_gen_header_t h;
    snprintf(path, sizeof(path), "%s/E00.log", a->logs);
    bool ok = read_header(path, &h);
    ls_source_view_t v;
    ls_source_view(a->src, &v);
    uint32_t epoch = 0;
    if (!ok && v.count > 0 && ls_source_has(a->src, v.oldest, &epoch)) {
        char name[LS_GEN_NAME_MAX];
        ls_gen_name(name, sizeof(name), LS_GEN_PREFIX_DEFAULT, epoch, v.oldest);
        snprintf(path, sizeof(path), "%s/%s", a->logs, name);
        ok = read_header(path, &h);
    }
    if (ok) memcpy(a->dbid, h.dbid, LS_DBID_LEN);
    return ok;
}

static void poll_rest(active_t *a);

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    (void) status;
    active_t *a = h->data;
    /* Each append to the current log is an event: nothing for the closed generations, and
     * block mode follows the log through the control page. Not worth a rescan of logs/ on the
     * loop per group-commit batch once the id is known and the block watcher runs. */
    bool cur = filename && !strcmp(filename, LS_GEN_PREFIX_DEFAULT ".log");
    if (events == UV_CHANGE && cur && a->have_dbid && a->bw) return;
    /* A closed generation's name (the writer's rename of the current log, a link): the next
     * one is added alone, without listing logs/ (docs/SOURCE.md, "Directory view"), so the
     * reader starts on it at once. Names the view never holds (the current log, whose rename
     * also names the generation in the same batch of events; <prefix>.next; .part files)
     * change nothing. The history, anything else, and the timer rescan the whole directory. */
    char err[LS_SOURCE_ERRLEN];
    int rc = 1;
    if (filename && a->src && a->have_dbid && !a->node->stopping && !a->fenced && !a->retired)
        rc = ls_source_add(a->src, filename, err, sizeof(err));
    if (rc == 1)
        ls__node_active_poll(a);
    else if (rc)
        LS_LOGE("active", "database %s: %s", a->cfg->name, err);
    else
        poll_rest(a);
}

static void start_watch(active_t *a)
{
    uv_fs_event_init(a->node->loop, &a->watch);
    a->watch.data = a;
    if (uv_fs_event_start(&a->watch, on_fs_event, a->logs, 0) == 0) {
        a->watching = true;
    } else {
        LS_LOGW("active", "database %s: no fs events on %s, relying on the %d ms rescan",
                a->cfg->name, a->logs, NODE_RESCAN_MS);
        uv_close((uv_handle_t *) &a->watch, NULL);
    }
}

void ls__node_active_poll(active_t *a)
{
    if (a->node->stopping || a->fenced || a->retired) return; /* an old active reads nothing */
    char err[LS_SOURCE_ERRLEN];
    if (!a->src) {
        if (access(a->logs, F_OK) != 0) return; /* not created yet: the writer makes it */
        ls_source_options_t o = {.db_dir = a->cfg->path};
        if (ls_source_open(&o, &a->src, err, sizeof(err)) != 0) {
            for (int i = 0; i < a->nshippers; i++)
                ls_ship_source_failed(a->shippers[i].m, err, ls_now_ns());
            return;
        }
        start_watch(a);
    } else if (ls_source_rescan(a->src, err, sizeof(err)) != 0) {
        LS_LOGE("active", "database %s: %s", a->cfg->name, err);
        return;
    }
    if (!a->have_dbid && read_dbid(a)) {
        a->have_dbid = true;
        char hex[2 * LS_DBID_LEN + 1];
        ls_hex(a->dbid, LS_DBID_LEN, hex);
        LS_LOGI("active", "database %s (id %s) is ready to ship", a->cfg->name, hex);
        for (int i = 0; i < a->nshippers; i++)
            ls_ship_attach(a->shippers[i].m, a->src, a->dbid, ls_now_ns());
    }
    if (!a->have_dbid) return;
    poll_rest(a);
}

/* What follows a look at logs/: block mode, and each shipper told. */
static void poll_rest(active_t *a)
{
    ls__node_bw_start(a); /* block mode, once the writer made the control page */
    for (int i = 0; i < a->nshippers; i++) {
        ls__node_link_kick(a->shippers[i].link);
        ls_ship_tick(a->shippers[i].m, ls_now_ns()); /* the target's view of our newest */
        ls__node_link_pump(a->shippers[i].link);
    }
}

void ls__node_active_close(active_t *a)
{
    ls__node_bw_stop(a);
    for (int i = 0; i < a->nshippers; i++)
        ls_ship_disconnected(a->shippers[i].m, false, "daemon stopping", ls_now_ns());
    if (a->watching) uv_close((uv_handle_t *) &a->watch, NULL);
    a->watching = false;
}

void ls__node_active_free(active_t *a)
{
    for (int i = 0; i < a->nshippers; i++) /* their readers first: they read the source */
        ls_ship_free(a->shippers[i].m);
    ls_source_free(a->src);
    ls__node_bw_free(a); /* its thread joined: the page is no longer read */
    free(a->shippers);
    ls_ctlpage_close(a->ctl);
    a->ctl = NULL;
}

int ls__node_active_ctl(active_t *a, char *err, size_t errlen)
{
    return a->ctl ? 0 : ls_ctlpage_open(a->cfg->path, false, &a->ctl, err, errlen);
}

/* ---- log removal ---------------------------------------------------------------------------- */
/* Off the loop: reads the active store's checkpoint, applies engine/source's removal rule with
 * the targets' replayed-synced positions copied on the loop, and deletes what it allows. */
static void removal_work(uv_work_t *w)
{
    active_t *a = w->data;
    char store[LS_CFG_PATH_MAX + 8], err[LS_SOURCE_ERRLEN];
    snprintf(store, sizeof(store), "%s/store", a->cfg->path);
    ls_store_meta_t m;
    a->removal_msg[0] = '\0';
    if (ls_store_peek_meta(store, &m, err, sizeof(err)) != 0) return; /* no checkpoint: keep */
    ls_removal_input_t in = {.target_synced = a->removal_synced,
                             .ntargets = (size_t) a->nshippers,
                             .checkpoint_lsn = m.checkpoint_lsn,
                             .seed_needs = a->removal_seed_needs,
                             .truncation_lag_ns = a->cfg->truncation_lag_ms * 1000000ull,
                             .max_log_bytes = a->cfg->max_log_bytes};
    ls_removal_t out;
    if (ls_source_removable(a->src, &in, &out, err, sizeof(err)) != 0) {
        snprintf(a->removal_msg, sizeof(a->removal_msg), "%.250s", err);
        return;
    }
    if (out.msg[0]) snprintf(a->removal_msg, sizeof(a->removal_msg), "%s", out.msg);
    if (out.upto == 0) return;
    int n = ls_source_remove_upto(a->src, out.upto, err, sizeof(err));
    if (n > 0)
        a->removed += (uint64_t) n;
    else if (n < 0)
        snprintf(a->removal_msg, sizeof(a->removal_msg), "%.250s", err);
}

static void removal_done(uv_work_t *w, int status)
{
    (void) status;
    active_t *a = w->data;
    a->removing = false;
    if (a->removal_msg[0] && !a->removal_warned)
        LS_LOGW("active", "database %s: %s", a->cfg->name, a->removal_msg);
    a->removal_warned = a->removal_msg[0] != '\0';
}

void ls__node_active_housekeep(active_t *a)
{
    if (!a->src || a->removing || a->node->stopping || a->fenced || a->retired || a->switching)
        return;
    if (a->seed_snapshots) return; /* LMDB's locks are per process: no peek during a snapshot */
    for (int i = 0; i < a->nshippers && i < LS_CFG_MAX_NETS; i++)
        a->removal_synced[i] = ls_ship_synced(a->shippers[i].m); /* 0 until the target said */
    a->removal_seed_needs = ls__node_seed_needs(a);              /* a seed keeps what it needs */
    a->removal.data = a;
    if (uv_queue_work(a->node->loop, &a->removal, removal_work, removal_done) == 0)
        a->removing = true;
}
