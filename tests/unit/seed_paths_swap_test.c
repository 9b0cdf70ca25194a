/* seed: the error paths of the swap, recovery and the worker (issue 11): the two-rename swap, a
 * damaged install directory, a failed snapshot or read reported by the worker, the worker one
 * chunk ahead. Each asserts the error code, that the message names the thing and the place, and
 * that nothing durable is lost. Helpers in seed_paths_test_util.h. */
#include "seed_paths_test_util.h"

/* ---- swap and recovery --------------------------------------------------------------------- */

/* Where the file system refuses RENAME_EXCHANGE (fault point seed.install.no_exchange, armed in
 * this test's own process): two renames, and the copy equals the active. */
Test(seed_paths, swap_by_two_renames_when_exchange_is_refused)
{
#ifndef LS_FAULTS_ENABLED
    cr_fail("fault points are not compiled in (LS_FAULTS=OFF)");
#endif
    setenv("LS_FAULTS", "seed.install.no_exchange=fail", 1);
    env_t e;
    env_init(&e, "seedpaths");
    ls_db_options_t o = db_opts(16 * 1024);
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(e.db, &o, &db), 0, "%s", ls_db_open_error());
    cr_assert_eq(commit_range(db, 0, 20, 3, 500), 0);
    seed_ok(&e, CHUNK, NULL);
    cr_assert_eq(commit_range(db, 20, 50, 3, 500), 0);
    cr_assert_eq(ls_db_close(db), 0);
    ls_seed_install_options_t io = {.copy_dir = e.copy, .delete_existing = true};
    char err[1024] = "";
    cr_assert_eq(seed_run(e.db, &io, CHUNK, -1, NULL, err, sizeof(err)), 0, "%s", err);
    assert_no_leftovers(e.copy);
    assert_copy_equals_active_by(e.db, e.copy, false);
    unsetenv("LS_FAULTS");
    env_free(&e);
}

Test(seed_paths, recover_refusals_and_damaged_install_directory)
{
    char err[1024] = "";
    ls_seed_recover_t w = LS_SEED_RECOVER_FINISHED;
    cr_assert_eq(ls_seed_recover("", &w, err, sizeof(err)), LS_EINVAL);
    LS_H_ASSERT_HAS(err, "copy directory");
    cr_assert_eq(ls_seed_recover("/", NULL, err, sizeof(err)), LS_EINVAL);

    env_t e;
    env_init(&e, "seedpaths");
    char p[PATHSZ + 32], slash[PATHSZ + 8];
    snprintf(p, sizeof(p), "%s/store", e.copy);
    cr_assert_eq(ls_mkdir_p(p), 0);
    snprintf(p, sizeof(p), "%s/store/data.mdb", e.copy);
    cr_assert_eq(ls_h_write_file(p, "old", 3), 0);
    /* nothing to do, the copy given with trailing slashes */
    snprintf(slash, sizeof(slash), "%s//", e.copy);
    cr_assert_eq(ls_seed_recover(slash, &w, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(w, LS_SEED_RECOVER_NOTHING);

    /* <copy> and <copy>.seed-old with no marker: no install leaves that */
    snprintf(p, sizeof(p), "%s.seed-old", e.copy);
    cr_assert_eq(ls_mkdir_p(p), 0);
    int rc = ls_seed_recover(e.copy, &w, err, sizeof(err));
    cr_assert_eq(rc, LS_ESTATE, "%s (%s)", ls_err_name(rc), err);
    LS_H_ASSERT_HAS(err, e.copy);
    LS_H_ASSERT_HAS(err, p);
    LS_H_ASSERT_HAS(err, "by hand");
    cr_assert(access(p, F_OK) == 0, "both kept");
    snprintf(p, sizeof(p), "%s/store/data.mdb", e.copy);
    cr_assert(access(p, F_OK) == 0, "both kept");
    snprintf(p, sizeof(p), "%s.seed-old", e.copy);
    cr_assert_eq(rmdir(p), 0);

    /* the marker inside <copy> is a non-empty directory: it cannot be removed */
    snprintf(p, sizeof(p), "%s/SEED-READY/x", e.copy);
    cr_assert_eq(ls_mkdir_p(p), 0);
    rc = ls_seed_recover(e.copy, &w, err, sizeof(err));
    cr_assert_neq(rc, 0);
    snprintf(p, sizeof(p), "%s/SEED-READY", e.copy);
    LS_H_ASSERT_HAS(err, p);
    LS_H_ASSERT_HAS(err, "cannot remove");
    snprintf(p, sizeof(p), "%s/store/data.mdb", e.copy);
    size_t len = 0;
    uint8_t *d = ls_h_read_file(p, &len);
    cr_assert(d && len == 3 && !memcmp(d, "old", 3), "the copy's data is kept");
    free(d);
    env_free(&e);
}

/* ---- worker -------------------------------------------------------------------------------- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
} wake_t;

static void on_wake(void *ctx)
{
    wake_t *k = ctx;
    pthread_mutex_lock(&k->mu);
    k->n++;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

/* The next event; waits for notify when none is queued. */
static ls_seed_wev_t next_event(ls_seed_worker_t *w, wake_t *k)
{
    ls_seed_wev_t ev;
    for (;;) {
        pthread_mutex_lock(&k->mu);
        int seen = k->n;
        pthread_mutex_unlock(&k->mu);
        if (ls_seed_worker_poll(w, &ev)) return ev;
        pthread_mutex_lock(&k->mu);
        while (k->n == seen)
            pthread_cond_wait(&k->cv, &k->mu);
        pthread_mutex_unlock(&k->mu);
    }
}

Test(seed_paths, worker_reports_a_failed_snapshot)
{
    env_t e;
    env_init(&e, "seedpaths");
    char p[PATHSZ];
    snprintf(p, sizeof(p), "%s/logs", e.db);
    cr_assert_eq(ls_mkdir_p(p), 0);
    wake_t k = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    ls_seed_worker_t *w = NULL;
    ls_seed_worker_options_t o = {.db_dir = e.db};
    cr_assert_eq(ls_seed_worker_start(&o, &w), LS_EINVAL, "no notify");
    o.notify = on_wake;
    o.ctx = &k;
    cr_assert_eq(ls_seed_worker_start(&o, &w), 0);
    ls_seed_wev_t ev = next_event(w, &k);
    cr_assert_eq(ev.kind, LS_SEED_WEV_FAIL);
    cr_assert_eq(ev.code, LS_ENOENT, "%s", ls_err_name(ev.code));
    snprintf(p, sizeof(p), "%s/store", e.db);
    LS_H_ASSERT_HAS(ev.msg, p);
    ls_seed_worker_free(w);
    env_free(&e);
}

/* An active database (30 transactions) in e and a worker streaming it in 4 KiB chunks, one
 * ahead, waking k. */
static ls_seed_worker_t *worker_one_ahead(env_t *e, wake_t *k)
{
    env_init(e, "seedpaths");
    active_db(e, 30);
    ls_seed_worker_t *w = NULL;
    ls_seed_worker_options_t o = {
        .db_dir = e->db, .chunk = 4096, .ahead = 1, .notify = on_wake, .ctx = k};
    cr_assert_eq(ls_seed_worker_start(&o, &w), 0);
    return w;
}

/* With one chunk ahead, the worker waits for each release; every byte arrives in order and the
 * digest matches the bytes. */
Test(seed_paths, worker_one_chunk_ahead_streams_everything)
{
    env_t e;
    wake_t k = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    ls_seed_worker_t *w = worker_one_ahead(&e, &k);
    ls_seed_wev_t ev = next_event(w, &k);
    cr_assert_eq(ev.kind, LS_SEED_WEV_INFO);
    uint64_t total = ev.info.total_bytes, got = 0;
    ls_sha256_t *sha = ls_sha256_new();
    for (;;) {
        ev = next_event(w, &k);
        if (ev.kind != LS_SEED_WEV_CHUNK) break;
        cr_assert_eq(ev.offset, got);
        cr_assert_leq(ev.len, 4096);
        ls_sha256_update(sha, ev.data, ev.len);
        got += ev.len;
        usleep(1000); /* let the worker reach its wait for the release */
        ls_seed_worker_release(w, ev.data);
    }
    cr_assert_eq(ev.kind, LS_SEED_WEV_END);
    cr_assert_eq(got, total);
    uint8_t dg[LS_DIGEST_SIZE];
    ls_sha256_peek(sha, dg);
    cr_assert_arr_eq(dg, ev.digest, LS_DIGEST_SIZE);
    ls_sha256_free(sha);
    ls_seed_worker_free(w);
    char p[PATHSZ];
    snprintf(p, sizeof(p), "%s/seed-tmp", e.db);
    cr_assert_leq(ls_h_dir_entries(p), 0, "the snapshot copy is removed");
    env_free(&e);
}

/* The local copy is cut while the worker waits for a release: the next read fails, the worker
 * posts FAIL naming the read (LS_EIO) and nothing after it. */
Test(seed_paths, worker_reports_a_failed_read)
{
    env_t e;
    wake_t k = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    ls_seed_worker_t *w = worker_one_ahead(&e, &k);
    ls_seed_wev_t ev = next_event(w, &k);
    cr_assert_eq(ev.kind, LS_SEED_WEV_INFO);
    ev = next_event(w, &k);
    cr_assert_eq(ev.kind, LS_SEED_WEV_CHUNK);
    cr_assert_eq(ev.offset, 0);
    /* one chunk held: the worker waits for its release before reading on */
    char tmp[PATHSZ], p[PATHSZ + 300] = "";
    snprintf(tmp, sizeof(tmp), "%s/seed-tmp", e.db);
    DIR *d = opendir(tmp);
    cr_assert_not_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (!strncmp(de->d_name, "snap-", 5))
            snprintf(p, sizeof(p), "%s/%s/data.mdb", tmp, de->d_name);
    closedir(d);
    cr_assert(p[0], "the worker's local copy is under %s", tmp);
    cr_assert_eq(truncate(p, 4096), 0);
    ls_seed_worker_release(w, ev.data);
    ev = next_event(w, &k);
    cr_assert_eq(ev.kind, LS_SEED_WEV_FAIL);
    cr_assert_eq(ev.code, LS_EIO, "%s", ls_err_name(ev.code));
    LS_H_ASSERT_HAS(ev.msg, "cannot read the snapshot");
    while (!ls_seed_worker_exited(w))
        usleep(1000);
    cr_assert_not(ls_seed_worker_poll(w, &ev), "nothing follows FAIL");
    ls_seed_worker_free(w);
    cr_assert_leq(ls_h_dir_entries(tmp), 0, "the snapshot copy is removed");
    env_free(&e);
}
