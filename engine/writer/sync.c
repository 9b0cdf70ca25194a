/*
 * Synchronous commit (docs/BLOCKMODE.md "Synchronous commit"): the syncer, a third stage beside
 * the flusher.
 *
 * With commit_level remote_durable or remote_applied (and the state sync) a committer waits on
 * the copies' futex in the control page from the moment it queued its transaction (w->page), not
 * on db->done. The flusher makes the batch durable and does not tell its committers: it queues
 * them here (ls__sync_enqueue, each with the batch's last LSN and the time it became durable)
 * and goes on with the next batch at once, so batches keep being made durable while earlier ones
 * wait for their copies (pipelining); no wake-up of the committers at that point. Each committer
 * watches its copies itself (ls__sync_wait): it reads the copies' positions the daemon publishes
 * (ctlpage.h), takes the sync_copies-th highest (durable_lsn for remote_durable, applied_lsn for
 * remote_applied), and once that reached its batch tells every queued committer whose batch it
 * reached: 0 (several batches at once when they piled up). Otherwise it sleeps in
 * ls_ctlpage_wait_copies (woken by the daemon's publish): the daemon's publication wakes the
 * committers directly, no thread in between; one sleep per publication, never a system call per
 * commit on the flusher's path. The flusher checks the copies once per batch it queues (they
 * may have answered before it got there: it tells the batch then) and wakes the futex when it
 * tells such a committer anything itself (a failure, or degraded meanwhile).
 *
 * The syncer thread is off that path: it wakes at least every POLL_NS (or the timeout, if
 * shorter) and at the oldest batch's deadline, for the timeout, the fence and close. Timeout:
 * once the oldest queued batch has waited sync_timeout_ms, every queued committer is told 0
 * (durable locally), the state becomes degraded, published with a reason naming the copies'
 * positions, and later batches are acknowledged at once (ls__sync_wanted is false) until
 * sync_copies copies hold the durable LSN (the syncer, degraded, sleeps on the copies' futex and
 * checks at each publication): then the state is sync again. Each change is counted, published
 * and logged (WARN, then INFO). A timeout of 0 waits forever. Fence: checked at each wake-up
 * (at least every POLL_NS while committers wait): the database fails with LS_EFENCED and so does
 * every waiting commit the copies do not hold. Close: ls__sync_stop ends every wait with
 * LS_ECLOSED (0 for those the copies hold by then). Whatever the syncer tells a committer it
 * follows with ls_ctlpage_wake_copies, which moves the copies' sequence on: a committer that
 * read the sequence under mu before its outcome was set does not sleep on it.
 *
 * Threading: the queue and the state under mu; the sleeps on the copies' futex are taken
 * without it. The syncer is the only publisher of the sync state while it runs (open and close
 * publish before it starts and after it ended).
 */
#include <stdio.h>
#include <stdlib.h>

#include "writer/writer_int.h"

#define POLL_NS (100ull * 1000000ull)  /* longest sleep while committers wait: the fence's */
#define IDLE_NS (1000ull * 1000000ull) /* longest sleep while degraded and nobody waits */

enum { NO_CHANGE, DEGRADED, BACK_TO_SYNC };

bool ls__sync_wanted(const ls_db_t *db)
{
    return db->opts.commit_level != LS_COMMIT_LOCAL && db->sync.state == LS_CTL_SYNC_SYNC &&
           !db->sync_stopping;
}

void ls__sync_enqueue(ls_db_t *db, ls__commit_wait_t *w, uint64_t lsn, uint64_t now)
{
    w->lsn = lsn;
    w->durable_ns = now;
    w->next = NULL;
    if (db->stail) {
        db->stail->next = w;
    } else {
        db->shead = w;
        db->snew = true;
    }
    db->stail = w;
}

void ls__sync_init(ls_db_t *db, ls__commit_wait_t *w)
{
    w->page = ls__sync_wanted(db) && db->ctl;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
}

void ls__sync_fini(ls__commit_wait_t *w)
{
    pthread_cond_destroy(&w->cv);
}

bool ls__sync_told(ls__commit_wait_t *w)
{
    if (w->page || w->lsn) pthread_cond_signal(&w->cv);
    return w->page || w->lsn;
}

static uint64_t nth_position(const ls_db_t *db, const ls_ctl_copy_t *c, uint32_t n);
static bool release(ls_db_t *db, uint64_t upto, bool rest, int rc);

void ls__sync_batch_queued(ls_db_t *db)
{
    db->sync_waits++;
    /* The copies may hold it already (the daemon shipped it and heard back before the flusher
     * got here): their publication then woke nobody who knew; told here. */
    ls_ctl_copy_t c[LS_CTL_COPIES_MAX];
    uint32_t n = 0;
    ls_ctlpage_read_copies(db->ctl, c, &n);
    bool told = release(db, nth_position(db, c, n), false, 0);
    if (db->snew && db->shead) /* a new head: it takes the watch (it may sleep on its cv) */
        pthread_cond_signal(&db->shead->cv);
    db->snew = false;
    if (told) ls_ctlpage_wake_copies(db->ctl);
    pthread_cond_broadcast(&db->done); /* those queued while degraded wait on the copies now */
}

/* The sync_copies-th highest position of the copies (durable or applied by the level); 0 when
 * fewer copies than that are published. */
static uint64_t nth_position(const ls_db_t *db, const ls_ctl_copy_t *c, uint32_t n)
{
    uint32_t want = db->opts.sync_copies;
    if (n < want) return 0;
    uint64_t pos[LS_CTL_COPIES_MAX];
    for (uint32_t i = 0; i < n; i++)
        pos[i] =
            db->opts.commit_level == LS_COMMIT_REMOTE_APPLIED ? c[i].applied_lsn : c[i].durable_lsn;
    for (uint32_t i = 0; i < want; i++) /* the first want places, highest first */
        for (uint32_t j = i + 1; j < n; j++)
            if (pos[j] > pos[i]) {
                uint64_t x = pos[i];
                pos[i] = pos[j];
                pos[j] = x;
            }
    return pos[want - 1];
}

/* Tells the queued committers (mu held): 0 to those whose batch the copies hold (lsn <= upto),
 * and when rest is true rc to every other one. Whether it told any: the syncer then wakes the
 * sleepers (ls_ctlpage_wake_copies, mu released); a committer releasing others does not need to,
 * the publication that woke it woke them. */
static bool release(ls_db_t *db, uint64_t upto, bool rest, int rc)
{
    bool any = false;
    while (db->shead && (rest || db->shead->lsn <= upto)) {
        ls__commit_wait_t *w = db->shead;
        db->shead = w->next; /* before done: the committer may leave once mu is released */
        w->rc = w->lsn <= upto ? 0 : rc;
        if (w->rc == 0) db->commits++;
        w->done = true;
        pthread_cond_signal(&w->cv); /* when it sleeps on it */
        any = true;
    }
    if (!db->shead) db->stail = NULL;
    if (any && db->shead) pthread_cond_signal(&db->shead->cv); /* the new head: the watch */
    return any;
}

/* Publishes the state (mu held, or no syncer running). */
static void publish(ls_db_t *db, uint32_t state, const char *reason)
{
    if ((db->sync.state == LS_CTL_SYNC_SYNC && state == LS_CTL_SYNC_DEGRADED) ||
        (db->sync.state == LS_CTL_SYNC_DEGRADED && state == LS_CTL_SYNC_SYNC))
        db->sync.switches++;
    db->sync.state = state;
    db->sync.since_ns = ls_now_ns();
    snprintf(db->sync.reason, sizeof(db->sync.reason), "%s", reason);
    if (db->ctl) ls_ctlpage_publish_sync(db->ctl, &db->sync);
}

static const char *level_name(const ls_db_t *db)
{
    return db->opts.commit_level == LS_COMMIT_REMOTE_APPLIED ? "applied" : "durable";
}

/* Why the oldest batch gave up: its LSN, what it waited for, the copies' positions. */
static void timeout_reason(const ls_db_t *db, const ls_ctl_copy_t *c, uint32_t n, char *out,
                           size_t len)
{
    uint32_t want = db->opts.sync_copies;
    size_t o =
        (size_t) snprintf(out, len, "lsn %llu not %s on %u cop%s within %llu ms; ",
                          (unsigned long long) db->shead->lsn, level_name(db), want,
                          want == 1 ? "y" : "ies", (unsigned long long) db->opts.sync_timeout_ms);
    if (n == 0) {
        snprintf(out + o, len - o, "no copy position published (daemon down or no copy linked)");
        return;
    }
    o += (size_t) snprintf(out + o, len - o, "copies (durable/applied lsn):");
    for (uint32_t i = 0; i < n && o < len; i++)
        o += (size_t) snprintf(out + o, len - o, " #%u %llu/%llu%s", c[i].id,
                               (unsigned long long) c[i].durable_lsn,
                               (unsigned long long) c[i].applied_lsn,
                               c[i].flags & LS_CTL_COPY_LINKED ? "" : " unlinked");
}

/* One look at the copies (mu held): tells the committers they hold, degrades on a timeout,
 * comes back to sync once they hold the durable LSN. msg receives what to log, *told whether
 * any committer was told. */
static int step(ls_db_t *db, const ls_ctl_copy_t *c, uint32_t n, bool fenced, char *msg, size_t len,
                bool *told)
{
    uint64_t pos = nth_position(db, c, n);
    if (fenced) {
        *told = release(db, pos, true, LS_EFENCED);
        return NO_CHANGE;
    }
    *told = release(db, pos, false, 0);
    if (db->sync.state == LS_CTL_SYNC_DEGRADED) {
        if (pos < db->durable_lsn) return NO_CHANGE;
        publish(db, LS_CTL_SYNC_SYNC, "");
        snprintf(msg, len, "%u cop%s hold%s the durable lsn %llu (%s)", db->opts.sync_copies,
                 db->opts.sync_copies == 1 ? "y" : "ies", db->opts.sync_copies == 1 ? "s" : "",
                 (unsigned long long) db->durable_lsn, level_name(db));
        return BACK_TO_SYNC;
    }
    uint64_t timeout = db->opts.sync_timeout_ms * 1000000ull;
    if (!db->shead || !timeout || ls_mono_ns() - db->shead->durable_ns < timeout) return NO_CHANGE;
    char reason[LS_CTL_REASON_MAX + 1];
    timeout_reason(db, c, n, reason, sizeof(reason));
    *told = release(db, pos, true, 0) || *told; /* durable locally: acknowledged, asynchronously */
    db->sync_timeouts++;
    publish(db, LS_CTL_SYNC_DEGRADED, reason);
    snprintf(msg, len, "%s", reason);
    return DEGRADED;
}

/* How long to sleep until the next look (mu held). Degraded and nobody waiting: IDLE_NS (the
 * publications wake it). In sync: at most POLL_NS, the oldest batch's deadline, and with nobody
 * queued the timeout (a batch queued meanwhile does not wake the syncer: its deadline is seen
 * within the timeout, at most POLL_NS late). */
static uint64_t sleep_ns(const ls_db_t *db)
{
    uint64_t timeout = db->opts.sync_timeout_ms * 1000000ull, now = ls_mono_ns();
    if (!db->shead)
        return db->sync.state == LS_CTL_SYNC_DEGRADED ? IDLE_NS
               : timeout                              ? LS_MIN(timeout, POLL_NS)
                                                      : POLL_NS;
    if (!timeout) return POLL_NS;
    uint64_t end = db->shead->durable_ns + timeout;
    return end <= now ? 1 : LS_MIN(end - now, POLL_NS);
}

void ls__sync_wait(ls_db_t *db, ls__commit_wait_t *w)
{
    ls_ctl_copy_t c[LS_CTL_COPIES_MAX];
    uint32_t n = 0;
    /* The sequence before done is looked at: whatever sets done later moves it on. */
    uint32_t seq = ls_ctlpage_read_copies(db->ctl, c, &n);
    if (w->done) return;
    uint64_t pos = nth_position(db, c, n);
    if (w->lsn && pos >= w->lsn) {
        release(db, pos, false, 0); /* this one and every earlier batch */
        return;
    }
    /* One committer watches the copies' futex: the oldest queued (or, with none queued, those
     * whose batch is being made durable); the others sleep on their own cv until release()
     * tells them or makes them the oldest: a publication wakes one thread, not all. */
    if (w->lsn ? db->shead == w : !db->shead) {
        pthread_mutex_unlock(&db->mu);
        ls_ctlpage_wait_copies(db->ctl, seq, POLL_NS);
        pthread_mutex_lock(&db->mu);
    } else {
        ls_cond_wait_until(&w->cv, &db->mu, ls_mono_ns() + POLL_NS);
    }
}

static void *syncer_main(void *arg)
{
    ls_db_t *db = arg;
    ls_ctl_copy_t c[LS_CTL_COPIES_MAX];
    uint32_t n = 0;
    bool fence_told = false; /* the database failed with the fence once: not again */
    pthread_mutex_lock(&db->mu);
    while (!db->sync_stopping) {
        pthread_mutex_unlock(&db->mu);
        uint32_t seq = ls_ctlpage_read_copies(db->ctl, c, &n);
        bool fenced = ls_ctlpage_fenced(db->ctl) != 0;
        if (fenced && !fence_told) /* fails the database, naming the new active */
            fence_told = ls__db_check_fence(db) != 0;
        char msg[LS_CTL_REASON_MAX + 64] = "";
        bool told = false;
        pthread_mutex_lock(&db->mu);
        int change = step(db, c, n, fenced, msg, sizeof(msg), &told);
        uint64_t sleep = sleep_ns(db);
        bool degraded = db->sync.state == LS_CTL_SYNC_DEGRADED;
        bool stop = db->sync_stopping; /* checked after seq was read: its wake moved seq on */
        pthread_mutex_unlock(&db->mu);
        if (told) ls_ctlpage_wake_copies(db->ctl); /* the committers told may sleep on it */
        if (change == DEGRADED)
            LS_LOGW("writer", "%s: synchronous commit degraded: %s", db->dir, msg);
        else if (change == BACK_TO_SYNC)
            LS_LOGI("writer", "%s: synchronous commit back to sync: %s", db->dir, msg);
        /* Degraded: the copies' publications tell when they caught up. In sync the committers
         * watch them themselves: the syncer only keeps time. */
        if (!stop && degraded) ls_ctlpage_wait_copies(db->ctl, seq, sleep);
        pthread_mutex_lock(&db->mu);
        if (!stop && !degraded && !db->sync_stopping)
            ls_cond_wait_until(&db->syncq, &db->mu, ls_mono_ns() + sleep);
    }
    pthread_mutex_unlock(&db->mu);
    ls_ctlpage_read_copies(db->ctl, c, &n); /* a last look: what the copies hold gets 0 */
    pthread_mutex_lock(&db->mu);
    release(db, nth_position(db, c, n), true, LS_ECLOSED);
    pthread_mutex_unlock(&db->mu);
    ls_ctlpage_wake_copies(db->ctl);
    return NULL;
}

int ls__sync_start(ls_db_t *db)
{
    bool remote = db->opts.commit_level != LS_COMMIT_LOCAL;
    db->durable_lsn = db->last_lsn; /* recovered: durable */
    db->sync = (ls_ctl_sync_t){.level = (uint32_t) db->opts.commit_level,
                               .copies = remote ? db->opts.sync_copies : 0};
    publish(db, remote ? LS_CTL_SYNC_SYNC : LS_CTL_SYNC_OFF, "");
    if (!remote) return 0;
    int rc = pthread_create(&db->syncer, NULL, syncer_main, db);
    if (rc) return ls_err_from_errno(rc);
    db->syncer_running = true;
    return 0;
}

void ls__sync_stop(ls_db_t *db)
{
    pthread_mutex_lock(&db->mu);
    db->sync_stopping = true;
    pthread_cond_signal(&db->syncq);
    pthread_mutex_unlock(&db->mu);
    if (db->syncer_running) {
        ls_ctlpage_wake_copies(db->ctl); /* out of its futex sleep now */
        pthread_join(db->syncer, NULL);
        db->syncer_running = false;
    }
    pthread_mutex_lock(&db->mu);
    if (db->ctl && db->sync.state != LS_CTL_SYNC_OFF) publish(db, LS_CTL_SYNC_OFF, "");
    pthread_mutex_unlock(&db->mu);
}
