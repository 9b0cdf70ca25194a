/* A planned switchover's hold (docs/ACTIVATION.md, "Planned switchover", step 2) on the libuv
 * pool: the control page's fence with the hold flag, naming NODE and epoch E+1; with no writer
 * the daemon opens the database and closes it under the hold, so its current log is closed and
 * acknowledged the same way. At start, the hold an interrupted switchover left (released when
 * NODE was not asked yet). The loop's side: switchover.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <unistd.h>

#include <logship/db.h>

#include "node/switchover_int.h"
#include "node/resync_switchover_int.h"

/* <dir>/lock free: no writer has the database open (flock taken and released at once). */
bool ls__sw_writer_gone(const char *dir)
{
    char path[LS_CFG_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/lock", dir);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT;
    bool free_ = flock(fd, LOCK_EX | LOCK_NB) == 0;
    close(fd); /* releases it */
    return free_;
}

/* Opens the control page of dir for a hold: an interrupted switchover's hold is taken over, a
 * fence refused. */
static int hold_open(struct node_sw *w, const char *dir)
{
    int rc = ls_ctlpage_open(dir, true, &w->ctl, w->err, sizeof(w->err));
    if (rc) return rc;
    if (ls_ctlpage_held(w->ctl)) { /* an interrupted switchover's: its copy is still Healthy */
        char e[600];
        LS_LOGW("switchover", "%s: taking over the hold an interrupted switchover left", dir);
        if (ls_ctlpage_clear_fence(w->ctl, e, sizeof(e)) != 0)
            return ls_errf(w->err, sizeof(w->err), LS_EIO, "%s", e);
    }
    if (ls_ctlpage_fenced(w->ctl)) {
        ls_ctl_fence_t f;
        ls_ctlpage_fence(w->ctl, &f);
        return ls_errf(w->err, sizeof(w->err), LS_ESTATE, "%s is fenced already (%s, epoch %u)",
                       dir, f.name, f.epoch);
    }
    return 0;
}

void ls__sw_hold_work(uv_work_t *work)
{
    struct node_sw *w = work->data;
    const char *dir = w->db->cfg->path;
    if ((w->rc = hold_open(w, dir)) != 0) return;
    for (int i = 0; i < SW_OPEN_TRIES; i++) {
        ls_db_t *wdb = NULL;
        ls_db_options_t o = {.no_create = true};
        int rc = ls_db_open(dir, &o, &wdb);
        if (rc != 0 && rc != LS_EBUSY) {
            w->rc = ls_errf(w->err, sizeof(w->err), rc,
                            "no writer has %s open, and the daemon cannot open it to close its "
                            "current log: %s",
                            dir, ls_db_open_error());
            return;
        }
        w->rc = ls_ctlpage_set_hold(w->ctl, w->new_epoch, w->to, w->err, sizeof(w->err));
        w->held_ns = ls_now_ns();
        if (rc == 0) { /* the daemon is the writer: its close under the hold closes the log */
            int crc = ls_db_close(wdb);
            if (w->rc) return;
            if (crc) {
                char e[600];
                ls_ctlpage_clear_fence(w->ctl, e, sizeof(e));
                w->rc = ls_errf(w->err, sizeof(w->err), crc,
                                "closing the current log of %s failed: %s", dir, ls_strerror(crc));
                return;
            }
            w->self_closed = true;
            return;
        }
        if (w->rc) return;
        /* A writer had it open. It acknowledges at its next batch, its idle tick or its close;
         * unless it closed before the hold was set: then nobody would. */
        uint64_t g, l;
        if (ls_ctlpage_hold_acked(w->ctl, &g, &l) || !ls__sw_writer_gone(dir)) return;
        if (ls_ctlpage_hold_acked(w->ctl, &g, &l)) return;
        char e[600];
        if ((w->rc = ls_ctlpage_clear_fence(w->ctl, e, sizeof(e))) != 0) {
            snprintf(w->err, sizeof(w->err), "%s", e);
            return;
        }
        w->held_ns = 0;
    }
    w->rc = ls_errf(w->err, sizeof(w->err), LS_EBUSY,
                    "the application opened and closed %s %d times while the hold was being set",
                    dir, SW_OPEN_TRIES);
}

void ls__node_switchover_recover(ls_node_t *n, node_db_t *db)
{
    (void) n;
    ls_ctlpage_t *p = NULL;
    char e[600];
    if (ls_ctlpage_open(db->cfg->path, false, &p, e, sizeof(e)) != 0) return; /* none: no hold */
    uint32_t flags = ls_ctlpage_flags(p);
    ls_ctl_fence_t f;
    ls_ctlpage_fence(p, &f);
    if ((flags & LS_CTL_HOLD) && !(flags & LS_CTL_ASKED)) {
        if (ls_ctlpage_clear_fence(p, e, sizeof(e)) == 0)
            LS_LOGW("switchover",
                    "%s: a switchover to %s was interrupted before %s was asked to activate: its "
                    "hold is released, %s accepts commits here again",
                    db->cfg->name, f.name, f.name, db->cfg->name);
        else
            LS_LOGE("switchover", "%s: cannot release an interrupted switchover's hold: %s",
                    db->cfg->name, e);
    } else if (flags & LS_CTL_HOLD) {
        LS_LOGW("switchover",
                "%s: a switchover to %s was interrupted after %s was asked to activate: the "
                "database stays held (commits refused): if %s is active in epoch %u, its EPOCH "
                "fences this node; if not, run logship switchover again (it takes the hold over)",
                db->cfg->name, f.name, f.name, f.name, f.epoch);
    }
    ls_ctlpage_close(p);
}
