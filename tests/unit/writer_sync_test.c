/*
 * Synchronous commit (engine/writer/sync.c, docs/BLOCKMODE.md "Synchronous commit"). A fake
 * daemon, the test with its own mapping of <dir>/control (ls_ctlpage_open, as the daemon's),
 * publishes the copies' positions: commits wait until sync_copies copies hold their batch
 * (durable_lsn, or applied_lsn for remote_applied), the flusher goes on meanwhile, a timeout
 * degrades (visible in ls_ctlpage_read_sync, commits return 0) until the copies catch up, and a
 * fence or close ends a wait that would last forever.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "writer/ctlpage.h"
#include "writer_util.h"

#define DEADLINE_MS 20000 /* a condition the test waits for: far beyond any real wait */

static ls_db_options_t sync_opts(ls_db_commit_level_t level, uint32_t copies, uint64_t timeout_ms)
{
    ls_db_options_t o = quiet_opts();
    o.commit_level = level;
    o.sync_copies = copies;
    o.sync_timeout_ms = timeout_ms;
    return o;
}

/* The fake daemon's mapping of the control page (the writer created it at open). */
static ls_ctlpage_t *daemon_page(const char *dir)
{
    char err[512] = "";
    ls_ctlpage_t *p = NULL;
    cr_assert_eq(ls_ctlpage_open(dir, false, &p, err, sizeof(err)), 0, "%s", err);
    return p;
}

static void publish(ls_ctlpage_t *p, uint32_t n, const uint64_t *durable, const uint64_t *applied)
{
    ls_ctl_copy_t c[LS_CTL_COPIES_MAX] = {0};
    for (uint32_t i = 0; i < n; i++)
        c[i] = (ls_ctl_copy_t){.durable_lsn = durable[i],
                               .applied_lsn = applied ? applied[i] : 0,
                               .time_ns = ls_now_ns(),
                               .flags = LS_CTL_COPY_LINKED | LS_CTL_COPY_BLOCK,
                               .id = i + 1};
    ls_ctlpage_publish_copies(p, c, n);
}

static ls_db_stats_t stats(ls_db_t *db)
{
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    return s;
}

/* A committer on its own thread: commit_tx(i), then done. */
typedef struct {
    ls_db_t *db;
    int i;
    int rc;
    atomic_bool done;
    pthread_t th;
} committer_t;

static void *commit_main(void *arg)
{
    committer_t *c = arg;
    c->rc = commit_tx(c->db, c->i, 1, 16);
    atomic_store(&c->done, true);
    return NULL;
}

static void start_commit(committer_t *c, ls_db_t *db, int i)
{
    c->db = db;
    c->i = i;
    c->rc = 1;
    atomic_store(&c->done, false);
    cr_assert_eq(pthread_create(&c->th, NULL, commit_main, c), 0);
}

static int join_commit(committer_t *c)
{
    pthread_join(c->th, NULL);
    return c->rc;
}

/* Waits until the database counts `waits` batches that waited for copies (the committer's batch
 * is durable and queued for the syncer). */
static void wait_sync_waits(ls_db_t *db, uint64_t waits)
{
    for (uint64_t end = ls_mono_ns() + DEADLINE_MS * 1000000ull; stats(db).sync_waits < waits;) {
        cr_assert(ls_mono_ns() < end, "no batch waited for copies (sync_waits %llu, want %llu)",
                  (unsigned long long) stats(db).sync_waits, (unsigned long long) waits);
        usleep(1000);
    }
}

static ls_ctl_sync_t wait_state(ls_ctlpage_t *p, uint32_t state)
{
    ls_ctl_sync_t s;
    for (uint64_t end = ls_mono_ns() + DEADLINE_MS * 1000000ull;;) {
        ls_ctlpage_read_sync(p, &s);
        if (s.state == state) return s;
        cr_assert(ls_mono_ns() < end, "sync state %u, want %u", s.state, state);
        usleep(1000);
    }
}

/* A database at level with copies and timeout_ms in its own directory, and the fake daemon's
 * mapping of its control page. */
typedef struct {
    char *dir;
    ls_db_options_t o;
    ls_db_t *db;
    ls_ctlpage_t *p;
} fixture_t;

static void fx_open(fixture_t *f, const char *name, ls_db_commit_level_t level, uint32_t copies,
                    uint64_t timeout_ms)
{
    f->dir = ls_h_tmpdir(name);
    f->o = sync_opts(level, copies, timeout_ms);
    f->db = open_db(f->dir, &f->o);
    f->p = daemon_page(f->dir);
}

/* Closes the database (if the test has not) expecting close_rc, then the page and the directory. */
static void fx_close(fixture_t *f, int close_rc)
{
    if (f->db) cr_assert_eq(ls_db_close(f->db), close_rc);
    ls_ctlpage_close(f->p);
    ls_h_rmtree_free(f->dir);
}

/* Starts c committing tx i and waits until the database counts `waits` batches that waited for
 * copies; returns the last LSN then (that of c's batch). */
static uint64_t start_waiting(committer_t *c, ls_db_t *db, int i, uint64_t waits)
{
    start_commit(c, db, i);
    wait_sync_waits(db, waits);
    return stats(db).last_lsn;
}

Test(writer_sync, options_are_checked_with_a_clear_error)
{
    char *dir = ls_h_tmpdir("wsync-opts");
    ls_db_t *db = NULL;
    ls_db_options_t o = sync_opts((ls_db_commit_level_t) 7, 1, 0);
    cr_assert_eq(ls_db_open(dir, &o, &db), LS_EINVAL);
    cr_assert(strstr(ls_db_open_error(), "commit_level 7"), "%s", ls_db_open_error());
    o = sync_opts(LS_COMMIT_REMOTE_DURABLE, LS_CTL_COPIES_MAX + 1, 0);
    cr_assert_eq(ls_db_open(dir, &o, &db), LS_EINVAL);
    cr_assert(strstr(ls_db_open_error(), "sync_copies 9"), "%s", ls_db_open_error());
    o = sync_opts(LS_COMMIT_REMOTE_DURABLE, 1, 3600001);
    cr_assert_eq(ls_db_open(dir, &o, &db), LS_EINVAL);
    cr_assert(strstr(ls_db_open_error(), "sync_timeout_ms 3600001"), "%s", ls_db_open_error());
    cr_assert_null(db);

    o = sync_opts(LS_COMMIT_LOCAL, 0, 0); /* local: off, nothing waits */
    db = open_db(dir, &o);
    ls_ctlpage_t *p = daemon_page(dir);
    ls_ctl_sync_t s;
    ls_ctlpage_read_sync(p, &s);
    cr_assert_eq(s.state, LS_CTL_SYNC_OFF);
    cr_assert_eq(commit_tx(db, 1, 1, 16), 0, "no copy needed");
    cr_assert_eq(stats(db).sync_waits, 0);
    cr_assert_eq(ls_db_close(db), 0);
    ls_ctlpage_close(p);
    ls_h_rmtree_free(dir);
}

Test(writer_sync, a_commit_waits_until_a_copy_holds_its_batch)
{
    fixture_t f;
    fx_open(&f, "wsync-wait", LS_COMMIT_REMOTE_DURABLE, 0, 0); /* 1 copy, forever */
    ls_ctl_sync_t s;
    ls_ctlpage_read_sync(f.p, &s);
    cr_assert_eq(s.state, LS_CTL_SYNC_SYNC);
    cr_assert_eq(s.level, LS_COMMIT_REMOTE_DURABLE);
    cr_assert_eq(s.copies, 1);

    committer_t c;
    uint64_t lsn = start_waiting(&c, f.db, 1, 1);
    cr_assert(has_tx(f.db, 1, 0), "durable and visible while it waits for the copy");
    publish(f.p, 1, (uint64_t[]){lsn - 1}, NULL);
    cr_assert_not(atomic_load(&c.done), "a copy short of the batch's last LSN does not end it");
    publish(f.p, 1, (uint64_t[]){lsn}, NULL);
    cr_assert_eq(join_commit(&c), 0);
    ls_db_stats_t st = stats(f.db);
    cr_assert_eq(st.commits, 1);
    cr_assert_eq(st.sync_timeouts, 0);
    cr_assert_eq(ls_db_close(f.db), 0);
    f.db = NULL;
    ls_ctlpage_read_sync(f.p, &s);
    cr_assert_eq(s.state, LS_CTL_SYNC_OFF, "closed: off");
    fx_close(&f, 0);
}

Test(writer_sync, the_nth_copy_decides)
{
    fixture_t f;
    fx_open(&f, "wsync-nth", LS_COMMIT_REMOTE_DURABLE, 2, 0);
    committer_t c;
    uint64_t lsn = start_waiting(&c, f.db, 1, 1);
    publish(f.p, 1, (uint64_t[]){lsn + 5}, NULL);
    cr_assert_not(atomic_load(&c.done), "one copy of two");
    publish(f.p, 3, (uint64_t[]){lsn, 0, lsn - 1}, NULL);
    cr_assert_not(atomic_load(&c.done), "the second highest is short");
    publish(f.p, 3, (uint64_t[]){0, lsn + 2, lsn}, NULL);
    cr_assert_eq(join_commit(&c), 0, "two copies of three hold it");
    fx_close(&f, 0);
}

Test(writer_sync, remote_applied_waits_for_the_applied_lsn)
{
    fixture_t f;
    fx_open(&f, "wsync-applied", LS_COMMIT_REMOTE_APPLIED, 1, 0);
    committer_t c;
    uint64_t lsn = start_waiting(&c, f.db, 1, 1);
    publish(f.p, 1, (uint64_t[]){lsn}, (uint64_t[]){lsn - 1});
    cr_assert_not(atomic_load(&c.done), "durable on the copy is not applied");
    publish(f.p, 1, (uint64_t[]){lsn}, (uint64_t[]){lsn});
    cr_assert_eq(join_commit(&c), 0);
    fx_close(&f, 0);
}

Test(writer_sync, the_flusher_goes_on_while_a_batch_waits)
{
    fixture_t f;
    fx_open(&f, "wsync-pipe", LS_COMMIT_REMOTE_DURABLE, 1, 0);
    committer_t a, b;
    uint64_t lsn_a = start_waiting(&a, f.db, 1, 1);
    uint64_t lsn_b =
        start_waiting(&b, f.db, 2, 2); /* b's batch made durable while a's still waits */
    cr_assert_gt(lsn_b, lsn_a);
    cr_assert_not(atomic_load(&a.done));
    publish(f.p, 1, (uint64_t[]){lsn_a}, NULL);
    cr_assert_eq(join_commit(&a), 0);
    cr_assert_not(atomic_load(&b.done), "b's batch is not held yet");
    publish(f.p, 1, (uint64_t[]){lsn_b}, NULL);
    cr_assert_eq(join_commit(&b), 0);
    fx_close(&f, 0);
}

Test(writer_sync, a_timeout_degrades_then_the_copies_bring_it_back_to_sync)
{
    fixture_t f;
    fx_open(&f, "wsync-degrade", LS_COMMIT_REMOTE_DURABLE, 1, 50);
    /* no daemon has published anything: the first batch times out, acknowledged */
    cr_assert_eq(commit_tx(f.db, 1, 1, 16), 0);
    ls_ctl_sync_t s;
    ls_ctlpage_read_sync(f.p, &s);
    cr_assert_eq(s.state, LS_CTL_SYNC_DEGRADED);
    cr_assert_eq(s.switches, 1);
    cr_assert_gt(s.since_ns, 0);
    cr_assert(strstr(s.reason, "not durable on 1 copy within 50 ms"), "%s", s.reason);
    cr_assert(strstr(s.reason, "no copy position published"), "%s", s.reason);
    ls_db_stats_t st = stats(f.db);
    cr_assert_eq(st.sync_timeouts, 1);
    cr_assert_eq(st.sync_state, LS_CTL_SYNC_DEGRADED);

    /* degraded: later batches are acknowledged without waiting */
    for (int i = 2; i <= 5; i++)
        cr_assert_eq(commit_tx(f.db, i, 1, 16), 0);
    cr_assert_eq(stats(f.db).sync_waits, 1, "no batch waited while degraded");

    /* a copy that is behind is named in the reason, and does not bring it back */
    uint64_t lsn = stats(f.db).last_lsn;
    publish(f.p, 2, (uint64_t[]){lsn - 3, 0}, NULL);
    ls_ctlpage_read_sync(f.p, &s);
    cr_assert_eq(s.state, LS_CTL_SYNC_DEGRADED);

    /* the copy catches up with the durable LSN: sync again, and batches wait again */
    publish(f.p, 2, (uint64_t[]){lsn, 0}, NULL);
    s = wait_state(f.p, LS_CTL_SYNC_SYNC);
    cr_assert_eq(s.switches, 2);
    cr_assert_str_empty(s.reason);
    committer_t c;
    uint64_t lsn6 = start_waiting(&c, f.db, 6, 2);
    publish(f.p, 2, (uint64_t[]){lsn6, 0}, NULL);
    cr_assert_eq(join_commit(&c), 0);
    cr_assert_eq(stats(f.db).sync_timeouts, 1);

    /* the copy falls behind again: a timeout whose reason names its position */
    cr_assert_eq(commit_tx(f.db, 7, 1, 16), 0);
    s = wait_state(f.p, LS_CTL_SYNC_DEGRADED);
    cr_assert_eq(s.switches, 3);
    char want[64];
    snprintf(want, sizeof(want), "#1 %llu/0", (unsigned long long) lsn6);
    cr_assert(strstr(s.reason, want), "'%s' names copy 1 at %s", s.reason, want);
    cr_assert(strstr(s.reason, "#2 0/0"), "%s", s.reason);
    cr_assert_eq(stats(f.db).commits, 7);
    fx_close(&f, 0);
}

Test(writer_sync, a_fence_ends_a_wait_forever_with_efenced)
{
    fixture_t f;
    fx_open(&f, "wsync-fence", LS_COMMIT_REMOTE_DURABLE, 1, 0);
    committer_t c;
    start_commit(&c, f.db, 1);
    wait_sync_waits(f.db, 1);
    char err[512] = "";
    cr_assert_eq(ls_ctlpage_set_fence(f.p, 2, "node-b", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(join_commit(&c), LS_EFENCED);
    cr_assert(strstr(ls_db_errmsg(f.db), "node-b"), "%s", ls_db_errmsg(f.db));
    cr_assert_eq(commit_tx(f.db, 2, 1, 16), LS_EFENCED, "sticky");
    fx_close(&f, LS_EFENCED);
}

Test(writer_sync, close_ends_a_wait_forever_with_eclosed)
{
    fixture_t f;
    fx_open(&f, "wsync-close", LS_COMMIT_REMOTE_DURABLE, 1, 0);
    committer_t c;
    start_commit(&c, f.db, 1);
    wait_sync_waits(f.db, 1);
    cr_assert_eq(ls_db_close(f.db), 0, "the log is fine: close succeeds");
    cr_assert_eq(join_commit(&c), LS_ECLOSED, "durable locally, not confirmed by a copy");
    f.db = open_db(f.dir, &f.o);
    cr_assert(has_tx(f.db, 1, 0), "it was durable");
    fx_close(&f, 0);
}

/* The fake daemon of the test below: follows the writer's durable position and publishes that a
 * copy holds it, as block mode's acknowledgements would. */
typedef struct {
    ls_ctlpage_t *p;
    atomic_bool stop;
    uint64_t publishes;
} follower_t;

static void *follow_main(void *arg)
{
    follower_t *f = arg;
    ls_ctl_durable_t d;
    while (!atomic_load(&f->stop)) {
        uint32_t seq = ls_ctlpage_read_durable(f->p, &d);
        publish(f->p, 1, (uint64_t[]){d.lsn}, (uint64_t[]){d.lsn});
        f->publishes++;
        ls_ctlpage_wait_durable(f->p, seq, 50 * 1000000ull);
    }
    return NULL;
}

typedef struct {
    ls_db_t *db;
    int base, n, failures;
} worker_t;

static void *work_main(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < w->n; i++)
        if (commit_tx(w->db, w->base + i, 2, 32) != 0) w->failures++;
    return NULL;
}

/* threads committers at level against the follower: every commit told 0, one wait per batch,
 * grouped. With many of them one committer watches the copies and the others are told by it. */
static void many_committers(ls_db_commit_level_t level, int threads)
{
    fixture_t fx;
    fx_open(&fx, "wsync-many", level, 1, 0);
    follower_t f = {.p = fx.p};
    pthread_t ft;
    cr_assert_eq(pthread_create(&ft, NULL, follow_main, &f), 0);
    enum { THREADS_MAX = 32, EACH = 60 };
    cr_assert_leq(threads, THREADS_MAX);
    worker_t w[THREADS_MAX];
    pthread_t th[THREADS_MAX];
    for (int i = 0; i < threads; i++) {
        w[i] = (worker_t){.db = fx.db, .base = i * 1000, .n = EACH};
        cr_assert_eq(pthread_create(&th[i], NULL, work_main, &w[i]), 0);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(w[i].failures, 0);
    }
    ls_db_stats_t st = stats(fx.db);
    cr_assert_eq(st.commits, (uint64_t) threads * EACH);
    cr_assert_eq(st.sync_timeouts, 0);
    cr_assert_eq(st.sync_waits, st.batches, "one wait per batch (%llu batches)",
                 (unsigned long long) st.batches);
    cr_assert_lt(st.batches, st.commits, "commits grouped: %llu batches for %llu commits",
                 (unsigned long long) st.batches, (unsigned long long) st.commits);
    atomic_store(&f.stop, true);
    pthread_join(ft, NULL);
    cr_assert_gt(f.publishes, 0);
    cr_assert_eq(ls_db_close(fx.db), 0);
    ls_db_options_t local = quiet_opts();
    fx.db = open_db(fx.dir, &local);
    for (int i = 0; i < threads; i++)
        cr_assert(has_tx(fx.db, i * 1000 + EACH - 1, 1), "thread %d's last commit", i);
    fx_close(&fx, 0);
}

Test(writer_sync, many_committers_wait_once_per_batch)
{
    many_committers(LS_COMMIT_REMOTE_APPLIED, 8);
}

Test(writer_sync, thirty_two_committers_at_remote_durable)
{
    many_committers(LS_COMMIT_REMOTE_DURABLE, 32);
}
