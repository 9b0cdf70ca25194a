/* Block mode on the active side (docs/BLOCKMODE.md): a watcher thread per active database
 * sleeps on the writer's durable position in the control page's channel
 * (ls_ctlpage_wait_durable, with a timeout, woken at stop) and wakes the loop (ls_node_wake_t,
 * wake.c: libuv's uv_async_t would have the woken loop spin on the watcher's busy mark); the
 * loop reads the position and gives it to each target's machine (engine/ship), which decides
 * what to stream. The bytes are read here, on the loop, from logs/<prefix>.log through a
 * descriptor whose header was checked to name the generation asked for (the machine asks only
 * for bytes published as durable; they are in the page cache: a pread of at most a chunk). The
 * copies' positions the targets acknowledge are published back into the page for synchronous
 * commit.
 *
 * The doorbell (ctlpage.h, docs/BLOCKMODE.md "The doorbell"): when the writer rings
 * <db>/doorbell (it says so in the page), the loop polls the FIFO and takes the position
 * itself, without the watcher's hop: after each hand-on it arms the bell and reads the position
 * once more. The watcher then leaves the futex (the writer would wake it for nothing) and only
 * re-reads the position every second; it goes back to the futex when the writer that publishes
 * is not the one that rings (a writer built before the doorbell, or none). */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <logship/db.h>

#include "node/node_int.h"
#include "writer/ctlpage.h"

#define BW_WAIT_NS (1000ull * 1000000ull) /* the watcher re-reads at least this often */

struct node_bw {
    active_t *a;
    ls_ctlpage_t *page;  /* <db>/control: the active's mapping (ls__node_active_ctl), borrowed */
    pthread_t thread;    /* the watcher */
    bool running;        /* thread started, not joined */
    atomic_bool stop;    /* the watcher ends */
    ls_node_wake_t wake; /* the watcher's wake-up of the loop */
    bool wake_open;      /* wake initialised, not closed */
    int bell;            /* <db>/doorbell, polled by the loop (-1: none) */
    uv_poll_t bell_poll;
    bool bell_open;           /* bell_poll initialised, not closed */
    pthread_mutex_t idle_mu;  /* the watcher's sleep while the writer rings ... */
    pthread_cond_t idle_cond; /* ... signalled at stop and when the loop sees it stopped ringing */
    int fd;                   /* logs/<prefix>.log as opened for reads (-1: none) */
    uint32_t fd_epoch;        /* the header's epoch ... */
    uint64_t fd_gen;          /* ... and generation */
    uint32_t last_seq;        /* the loop: the sequence last handed on */
    ls_ctl_copy_t pub[LS_CTL_COPIES_MAX]; /* the loop: the copies' positions last published */
    uint32_t npub;                        /* how many (UINT32_MAX: none yet) */
};

/* The writer that published the position rings the bell: the watcher keeps off the futex. */
static bool rung(const struct node_bw *bw, const ls_ctl_durable_t *d)
{
    return bw->bell >= 0 && d->pid != 0 && ls_ctlpage_bell(bw->page) == d->pid;
}

/* The watcher's sleep while the writer rings: a second, or until the loop sees that it stopped
 * (the check under the mutex the loop signals with: no signal is lost) or the node stops. */
static void idle_wait(struct node_bw *bw)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t) (BW_WAIT_NS / 1000000000ull);
    ls_ctl_durable_t d;
    pthread_mutex_lock(&bw->idle_mu);
    ls_ctlpage_read_durable(bw->page, &d);
    if (!atomic_load(&bw->stop) && rung(bw, &d))
        pthread_cond_timedwait(&bw->idle_cond, &bw->idle_mu, &ts);
    pthread_mutex_unlock(&bw->idle_mu);
}

static void *watch_main(void *arg)
{
    struct node_bw *bw = arg;
    ls_ctl_durable_t d;
    uint32_t seq = ls_ctlpage_read_durable(bw->page, &d);
    ls__node_wake_send(&bw->wake);
    while (!atomic_load(&bw->stop)) {
        if (rung(bw, &d))
            idle_wait(bw); /* the loop is rung; a re-read a second in case a ring was lost */
        else
            ls_ctlpage_wait_durable(bw->page, seq, BW_WAIT_NS); /* a timeout only re-reads */
        uint32_t now = ls_ctlpage_read_durable(bw->page, &d);
        if (now != seq) {
            seq = now;
            ls__node_wake_send(&bw->wake);
        }
    }
    return NULL;
}

/* The loop: the newest durable position to every machine, then the links send. */
static void hand_on(struct node_bw *bw, const ls_ctl_durable_t *dp)
{
    active_t *a = bw->a;
    if (a->node->stopping || a->fenced || a->retired || !a->have_dbid) return;
    ls_ctl_durable_t d = *dp;
    if (d.generation == 0 || d.epoch == 0) return; /* no writer ever published */
    ls_ship_durable_t sd = {.epoch = d.epoch,
                            .generation = d.generation,
                            .offset = d.offset,
                            .lsn = d.lsn,
                            .time_ns = d.time_ns};
    /* Whether a commit waits for the copies' applied positions: only then do they apply their
     * shadows early (COPY_STATE's LS_COPY_APPLY, sent ahead of the BLOCKs that carry it). */
    ls_ctl_sync_t sy;
    ls_ctlpage_read_sync(bw->page, &sy);
    bool applied =
        d.pid != 0 && sy.state != LS_CTL_SYNC_OFF && sy.level == LS_COMMIT_REMOTE_APPLIED;
    uint64_t now = ls_now_ns();
    for (int i = 0; i < a->nshippers; i++) {
        ls_ship_block_apply_wanted(a->shippers[i].m, applied);
        ls_ship_block_durable(a->shippers[i].m, &sd, now);
    }
    for (int i = 0; i < a->nshippers; i++)
        ls__node_link_pump(a->shippers[i].link);
}

/* Hands the position on; with a doorbell, arms it and reads the position once more (a
 * publication between the read and the arming rang nothing): again while it moved, twice at most
 * in one go (the loop serves the others), then through the wake-up. */
static void take_durable(struct node_bw *bw)
{
    ls_ctl_durable_t d;
    bw->last_seq = ls_ctlpage_read_durable(bw->page, &d);
    for (int pass = 0;; pass++) {
        hand_on(bw, &d);
        if (bw->bell < 0 || bw->a->node->stopping) return;
        bool was_rung = rung(bw, &d);
        ls_ctlpage_arm_bell(bw->page, true);
        uint32_t seq = ls_ctlpage_read_durable(bw->page, &d);
        if (was_rung && !rung(bw, &d)) { /* the writer stopped ringing: the watcher to the futex */
            pthread_mutex_lock(&bw->idle_mu);
            pthread_cond_signal(&bw->idle_cond);
            pthread_mutex_unlock(&bw->idle_mu);
        }
        if (seq == bw->last_seq) return;
        if (pass == 2) {
            ls__node_wake_send(&bw->wake);
            return;
        }
        bw->last_seq = seq;
    }
}

static void on_durable(void *data)
{
    take_durable(data);
}

static void on_bell(uv_poll_t *h, int status, int events)
{
    struct node_bw *bw = h->data;
    (void) events;
    if (status < 0) return; /* an error on a FIFO: the watcher's re-read still runs */
    ls_ctlpage_bell_drain(bw->bell);
    take_durable(bw);
}

void ls__node_bw_start(active_t *a)
{
    if (a->bw || a->node->stopping) return;
    char err[256];
    if (ls__node_active_ctl(a, err, sizeof(err)) != 0)
        return; /* no writer opened the database yet: the next poll tries again */
    struct node_bw *bw = calloc(1, sizeof(*bw));
    LS_CHECK(bw != NULL);
    bw->a = a;
    bw->page = a->ctl; /* borrowed: active_free closes it after this is freed */
    bw->fd = -1;
    bw->npub = UINT32_MAX;
    pthread_mutex_init(&bw->idle_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&bw->idle_cond, &ca);
    pthread_condattr_destroy(&ca);
    int wrc = ls__node_wake_init(a->node->loop, &bw->wake, on_durable, bw);
    if (wrc != 0) { /* out of descriptors: file mode meanwhile, the next poll tries again */
        if (!a->bw_warned)
            LS_LOGW("active",
                    "database %s: no block mode yet: cannot make the watcher's "
                    "wake-up: %s",
                    a->cfg->name, strerror(wrc));
        a->bw_warned = true;
        pthread_cond_destroy(&bw->idle_cond);
        pthread_mutex_destroy(&bw->idle_mu);
        free(bw);
        return;
    }
    bw->wake_open = true;
    /* "node.doorbell": a daemon without it (the writer is never asked to ring) */
    bw->bell = LS_FAULT("node.doorbell") ? -1 : ls_ctlpage_bell_open(a->cfg->path);
    if (bw->bell >= 0 && uv_poll_init(a->node->loop, &bw->bell_poll, bw->bell) == 0) {
        bw->bell_poll.data = bw;
        bw->bell_open = true;
        uv_poll_start(&bw->bell_poll, UV_READABLE, on_bell);
    } else if (bw->bell >= 0) {
        close(bw->bell);
        bw->bell = -1;
    }
    a->bw = bw;
    if (pthread_create(&bw->thread, NULL, watch_main, bw) != 0) {
        LS_LOGW("active", "database %s: no block mode: cannot start the watcher thread",
                a->cfg->name);
        return;
    }
    bw->running = true;
    LS_LOGD("active", "database %s: watching the writer's durable position", a->cfg->name);
}

void ls__node_bw_stop(active_t *a)
{
    struct node_bw *bw = a->bw;
    if (!bw) return;
    if (bw->running) {
        atomic_store(&bw->stop, true);
        ls_ctlpage_wake_durable(bw->page);
        pthread_mutex_lock(&bw->idle_mu);
        pthread_cond_signal(&bw->idle_cond);
        pthread_mutex_unlock(&bw->idle_mu);
        pthread_join(bw->thread, NULL);
        bw->running = false;
    }
    if (bw->wake_open) ls__node_wake_close(&bw->wake, NULL); /* the watcher was joined */
    bw->wake_open = false;
    if (bw->bell_open) {
        ls_ctlpage_arm_bell(bw->page, false); /* the writer rings no one */
        uv_close((uv_handle_t *) &bw->bell_poll, NULL);
    }
    bw->bell_open = false;
    if (bw->fd >= 0) close(bw->fd);
    bw->fd = -1;
}

void ls__node_bw_free(active_t *a)
{
    struct node_bw *bw = a->bw;
    if (!bw) return;
    ls__node_bw_stop(a);                /* already stopped by the node's close: a no-op */
    if (bw->bell >= 0) close(bw->bell); /* after its poll handle's close, ended by now */
    pthread_cond_destroy(&bw->idle_cond);
    pthread_mutex_destroy(&bw->idle_mu);
    free(bw);
    a->bw = NULL;
}

/* Opens the current log for the generation the machine streams: its header must name it. */
static int open_current(struct node_bw *bw, uint32_t epoch, uint64_t generation)
{
    if (bw->fd >= 0 && bw->fd_epoch == epoch && bw->fd_gen == generation) return 0;
    if (bw->fd >= 0) close(bw->fd);
    bw->fd = -1;
    char path[LS_CFG_PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s.log", bw->a->logs, LS_GEN_PREFIX_DEFAULT);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return LS_ESTATE;
    uint8_t hdr[LS_GEN_HEADER_SIZE];
    ls_gen_header_t h;
    if (ls_pread_full(fd, hdr, sizeof(hdr), 0) != (ssize_t) sizeof(hdr) ||
        ls_gen_header_decode(hdr, sizeof(hdr), &h) != 0 || h.generation != generation ||
        h.epoch != epoch) {
        close(fd); /* rolled already (or not yet written): that generation goes as a file */
        return LS_ESTATE;
    }
    bw->fd = fd; /* kept across the roll's rename: it still reads that generation */
    bw->fd_epoch = epoch;
    bw->fd_gen = generation;
    return 0;
}

int64_t ls__node_bw_read(active_t *a, uint32_t epoch, uint64_t generation, uint64_t off,
                         uint8_t *buf, size_t len)
{
    struct node_bw *bw = a->bw;
    if (!bw) return LS_ESTATE;
    int rc = open_current(bw, epoch, generation);
    if (rc) return rc;
    ssize_t n = ls_pread_full(bw->fd, buf, len, off);
    if (n <= 0) {
        LS_LOGW("active",
                "database %s: cannot read %zu bytes at %llu of the current log "
                "(generation %llu) for block mode",
                a->cfg->name, len, (unsigned long long) off, (unsigned long long) generation);
        return LS_EIO;
    }
    return n;
}

void ls__node_bw_publish_copies(active_t *a)
{
    if (!a->bw) return;
    ls_ctl_copy_t c[LS_CTL_COPIES_MAX];
    uint32_t n = 0;
    uint64_t now = ls_now_ns();
    for (int i = 0; i < a->nshippers && n < LS_CTL_COPIES_MAX; i++, n++) {
        ls_ship_t *m = a->shippers[i].m;
        memset(&c[n], 0, sizeof(c[n]));
        ls_ship_copy_lsns(m, &c[n].durable_lsn, &c[n].applied_lsn);
        c[n].time_ns = now;
        c[n].id = (uint32_t) i + 1;
        if (ls_ship_state(m) == LS_SHIP_HEALTHY) c[n].flags |= LS_CTL_COPY_LINKED;
        if (ls_ship_mode(m) == LS_SHIP_MODE_BLOCK) c[n].flags |= LS_CTL_COPY_BLOCK;
    }
    /* Nothing new (an acknowledgement that moved neither position): no publication, which
     * would wake every committer waiting for its copies for nothing. A change only of the
     * position the writer's commit level does not wait for is published without a wake. */
    struct node_bw *bw = a->bw;
    bool same = bw->npub == n, durable_moved = false, applied_moved = false;
    for (uint32_t i = 0; same && i < n; i++) {
        same = c[i].flags == bw->pub[i].flags && c[i].id == bw->pub[i].id;
        durable_moved |= c[i].durable_lsn != bw->pub[i].durable_lsn;
        applied_moved |= c[i].applied_lsn != bw->pub[i].applied_lsn;
    }
    if (same && !durable_moved && !applied_moved) return;
    ls_ctl_sync_t sy;
    ls_ctlpage_read_sync(bw->page, &sy);
    bool quiet = same && ((sy.level == LS_COMMIT_REMOTE_DURABLE && !durable_moved) ||
                          (sy.level == LS_COMMIT_REMOTE_APPLIED && !applied_moved));
    memcpy(bw->pub, c, n * sizeof(c[0]));
    bw->npub = n;
    if (quiet)
        ls_ctlpage_publish_copies_quiet(bw->page, c, n);
    else
        ls_ctlpage_publish_copies(bw->page, c, n);
}
