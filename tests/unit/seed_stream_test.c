/* seed: bounded memory on a 100 MiB store, the progress output, a snapshot under a running
 * writer (local copy and streamed), and the stream from the compaction (snapshot_direct.c)
 * byte for byte and abandoned half way. Split from seed_test.c (round trips, hand-off,
 * refusals); helpers in seed_converge_util.h. */

#include <criterion/criterion.h>

#include "seed_converge_util.h"

/* Peak resident set size of this process, bytes (VmHWM). */
static uint64_t vm_hwm(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t kb = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %lu kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb * 1024;
}

/* Resets VmHWM to the current RSS (Linux >= 4.0); false when not allowed. */
static bool reset_hwm(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY);
    bool ok = fd >= 0 && write(fd, "5", 1) == 1;
    if (fd >= 0) close(fd);
    return ok;
}

static void build_big(void *ctx)
{
    const char *dir = ctx;
    ls_db_options_t o = db_opts(0);
    ls_db_t *db = NULL;
    LS_H_CHILD_CHECK(ls_db_open(dir, &o, &db) == 0);
    LS_H_CHILD_CHECK(commit_range(db, 0, 110, 15, 64 * 1024) == 0); /* ~103 MiB of values */
    LS_H_CHILD_CHECK(ls_db_close(db) == 0);
}

/* A >= 100 MiB store streams through fixed chunks: the peak RSS of streaming and installing
 * grows by far less than the store. The local copy's pages touched through LMDB's map (file
 * pages, counted in RSS) are excluded by resetting the high-water mark after the snapshot. */
Test(seed, big_store_streams_with_bounded_memory, .timeout = 120)
{
    env_t e;
    env_init(&e, "seed");
    cr_assert_eq(ls_h_in_child(build_big, e.db, NULL), 0, "active built");
    ls_seed_snapshot_options_t so = {.db_dir = e.db};
    ls_seed_snapshot_t *s = NULL;
    char err[1024] = "";
    uint64_t t0 = ls_mono_ns();
    cr_assert_eq(ls_seed_snapshot_new(&so, &s, err, sizeof(err)), 0, "%s", err);
    const ls_seed_info_t *info = ls_seed_snapshot_info(s);
    cr_assert_geq(info->total_bytes, 100ull << 20, "store of %llu bytes",
                  (unsigned long long) info->total_bytes);
    bool measured = reset_hwm();
    uint64_t base = vm_hwm();
    ls_seed_install_options_t io = {.copy_dir = e.copy};
    ls_seed_install_t *in = NULL;
    cr_assert_eq(ls_seed_install_begin(&io, info, &in, err, sizeof(err)), 0, "%s", err);
    uint8_t *buf = malloc(1 << 20);
    uint64_t off;
    size_t n;
    ls_seed_progress_t p;
    ls_seed_progress_init(&p, info->total_bytes, ls_mono_ns());
    while (ls_seed_snapshot_read(s, buf, 1 << 20, &off, &n) == 0 && n > 0) {
        cr_assert_eq(ls_seed_install_data(in, off, buf, n, err, sizeof(err)), 0, "%s", err);
        ls_seed_progress_update(&p, ls_seed_install_done(in), ls_mono_ns());
    }
    free(buf);
    uint8_t d[LS_DIGEST_SIZE];
    cr_assert_eq(ls_seed_snapshot_digest(s, d), 0);
    cr_assert_eq(ls_seed_install_end(in, d, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ls_seed_install_commit(in, err, sizeof(err)), 0, "%s", err);
    ls_seed_install_free(in);
    uint64_t grew = vm_hwm() - base, total = info->total_bytes;
    cr_log_info("seeded %llu bytes in %.2f s; peak RSS grew by %llu KiB while streaming",
                (unsigned long long) total, (double) (ls_mono_ns() - t0) / 1e9,
                (unsigned long long) grew / 1024);
    ls_seed_snapshot_free(s);
#if defined(__SANITIZE_ADDRESS__)
    measured = false; /* ASan's shadow memory and quarantine, not the stream */
#endif
    if (measured)
        cr_assert_lt(grew, total / 8, "peak RSS grew by %llu bytes", (unsigned long long) grew);
    cr_assert_eq(ls_seed_progress_percent(&p), 100);
    assert_copy_equals_active_by(e.db, e.copy, false); /* mdb_dump: in the smaller tests */
    env_free(&e);
}

Test(seed, progress_bar_on_tty_and_plain_lines_otherwise)
{
    const uint64_t s = 1000000000ull, total = 100ull << 20;
    ls_seed_progress_t p;
    ls_seed_progress_init(&p, total, 5 * s);
    cr_assert_eq(ls_seed_progress_eta(&p), -1, "unknown before any rate");
    ls_seed_progress_update(&p, 10ull << 20, 6 * s);
    cr_assert_eq(ls_seed_progress_percent(&p), 10);
    cr_assert_float_eq(p.rate, 10.0 * (1 << 20), 1.0, "10 MiB/s");
    cr_assert_float_eq(ls_seed_progress_eta(&p), 9.0, 0.01);
    char line[256];
    ls_seed_progress_format(&p, true, line, sizeof(line));
    cr_assert(ls_h_contains(line, "[###......"), "%s", line);
    cr_assert(ls_h_contains(line, " 10%"), "%s", line);
    cr_assert(ls_h_contains(line, "10.0 MiB/s  00:09 left"), "%s", line);
    ls_seed_progress_format(&p, false, line, sizeof(line));
    cr_assert_str_eq(line, "seed 10% 10485760/104857600 bytes 10.0 MiB/s 9 s left");

    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    cr_assert(ls_seed_progress_print(&p, f, false, 10, false), "the first line");
    cr_assert_not(ls_seed_progress_print(&p, f, false, 10, false), "nothing new");
    ls_seed_progress_update(&p, 15ull << 20, 7 * s);
    cr_assert_not(ls_seed_progress_print(&p, f, false, 10, false), "same tenth, too soon");
    ls_seed_progress_update(&p, 21ull << 20, 8 * s);
    cr_assert(ls_seed_progress_print(&p, f, false, 10, false), "a new tenth");
    ls_seed_progress_update(&p, 22ull << 20, 19 * s);
    cr_assert(ls_seed_progress_print(&p, f, false, 10, false), "interval passed");
    ls_seed_progress_update(&p, total, 20 * s);
    cr_assert(ls_seed_progress_print(&p, f, true, 0, true), "final bar");
    fclose(f);
    cr_assert(ls_h_contains(out, "seed 21% "), "%s", out);
    cr_assert(ls_h_contains(out, "\r[##############################] 100%"), "%s", out);
    cr_assert_eq(out[len - 1], '\n', "the final bar ends its line");
    free(out);
    cr_assert_eq(ls_seed_progress_eta(&p), 0);
}

/* A writer committing without pause (small generations: frequent rolls) while the snapshot is
 * taken and streamed. */
typedef struct {
    ls_db_t *db;      /* the active */
    atomic_bool stop; /* asks the writer thread to finish */
    atomic_int next;  /* next transaction number */
    int rc;           /* first commit error */
} load_t;

static void *load_main(void *arg)
{
    load_t *l = arg;
    while (!atomic_load(&l->stop) && l->rc == 0)
        l->rc = commit_n(l->db, atomic_fetch_add(&l->next, 1), 2, 300, 500);
    return NULL;
}

static bool load_past(void *ctx)
{
    void **a = ctx;
    return atomic_load(&((load_t *) a[0])->next) >= *(int *) a[1];
}

static void load_wait(load_t *l, int n)
{
    void *a[2] = {l, &n};
    cr_assert(ls_h_wait_for(load_past, a, 20000), "the writer reached transaction %d", n);
}

static void running_writer(bool direct)
{
    seed_direct = direct;
    env_t e;
    env_init(&e, "seed");
    ls_db_options_t o = db_opts(8 * 1024);
    load_t l = {.rc = 0};
    cr_assert_eq(ls_db_open(e.db, &o, &l.db), 0, "%s", ls_db_open_error());
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, load_main, &l), 0);
    load_wait(&l, 100);
    ls_seed_install_options_t io = {.copy_dir = e.copy};
    ls_seed_info_t info;
    char err[1024] = "";
    int rc = seed_run(e.db, &io, 4096, -1, &info, err, sizeof(err));
    load_wait(&l, atomic_load(&l.next) + 100);
    atomic_store(&l.stop, true);
    pthread_join(t, NULL);
    cr_assert_eq(rc, 0, "seed under load: %s (%s)", ls_err_name(rc), err);
    cr_assert_eq(l.rc, 0, "the writer never stopped");
    cr_assert_eq(ls_db_close(l.db), 0);
    ls_db_stats_t s3 = reopened_stats(e.db, &o);
    cr_assert_gt(s3.last_closed, info.generation + 3, "generations closed after the snapshot");
    converge(&e, &info, s3.last_closed, s3.last_lsn);
    env_free(&e);
}

Test(seed, snapshot_under_running_writer_converges)
{
    running_writer(false);
}

/* The writer commits without pause: the streamed copy and the meta record read beside it must be
 * the same snapshot (or the snapshot falls back to the local copy): the install checks L. */
Test(seed, streamed_snapshot_under_running_writer_converges)
{
    running_writer(true);
}

/* ---- streaming from the compaction (snapshot_direct.c) ------------------------------------ */

/* The whole stream of a snapshot of db into a malloc'd buffer (*len bytes), its digest and info;
 * spill_at: call ls_seed_snapshot_spill once that many bytes were read (0: never). */
static uint8_t *read_stream(const char *db, bool direct, uint64_t spill_at, size_t *len,
                            uint8_t digest[LS_DIGEST_SIZE], ls_seed_info_t *info)
{
    ls_seed_snapshot_options_t so = {.db_dir = db, .direct = direct};
    ls_seed_snapshot_t *s = NULL;
    char err[1024] = "", dir[PATHSZ];
    int rc = ls_seed_snapshot_new(&so, &s, err, sizeof(err));
    cr_assert_eq(rc, 0, "snapshot: %s (%s)", ls_err_name(rc), err);
    *info = *ls_seed_snapshot_info(s);
    cr_assert_eq(ls_seed_snapshot_direct(s), direct, "streaming from the compaction: %d", direct);
    /* the local copy is made only by the default mode (or a spill) */
    snprintf(dir, sizeof(dir), "%s/seed-tmp", db);
    char *out = NULL, cmd[PATHSZ + 64];
    snprintf(cmd, sizeof(cmd), "find '%s' -name data.mdb | wc -l", dir);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 10000), 0);
    cr_assert_eq(atoi(out), direct ? 0 : 1, "local copies: %s", out);
    free(out);
    uint8_t *buf = malloc(info->total_bytes);
    size_t got = 0;
    bool spilled = false;
    for (;;) {
        if (spill_at && !spilled && got >= spill_at) {
            rc = ls_seed_snapshot_spill(s, err, sizeof(err));
            cr_assert_eq(rc, 0, "spill: %s (%s)", ls_err_name(rc), err);
            cr_assert_not(ls_seed_snapshot_direct(s), "the store is released by the spill");
            spilled = true;
        }
        uint64_t off;
        size_t n;
        if (got < info->total_bytes)
            cr_assert_eq(ls_seed_snapshot_digest(s, digest), LS_ESTATE, "no digest before the end");
        rc = ls_seed_snapshot_read(s, buf + got, 4096 * 3 + 100, &off, &n);
        cr_assert_eq(rc, 0, "read at %zu: %s", got, ls_err_name(rc));
        if (n == 0) break;
        cr_assert_eq(off, got, "contiguous");
        got += n;
        cr_assert_leq(got, info->total_bytes);
    }
    cr_assert_eq(got, info->total_bytes, "the announced size is the stream's");
    cr_assert_not(ls_seed_snapshot_direct(s), "the copy ended with the stream");
    cr_assert_eq(ls_seed_snapshot_digest(s, digest), 0);
    ls_seed_snapshot_free(s);
    cr_assert_eq(ls_store_env_count(), 0, "the store's environment closed");
    *len = got;
    return buf;
}

/* e: a closed database of 200 transactions of 4 puts of 900 bytes (~700 KiB: the pipe of a
 * streamed compaction fills), all in its store. */
static void quiescent_store(env_t *e)
{
    env_init(e, "seed");
    ls_db_options_t o = db_opts(32 * 1024);
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(e->db, &o, &db), 0, "%s", ls_db_open_error());
    cr_assert_eq(commit_range(db, 0, 200, 4, 900), 0);
    cr_assert(wait_applied(db, 10000));
    cr_assert_eq(ls_db_close(db), 0);
}

/* A quiescent store: the stream from the compaction is the local copy, byte for byte, with the
 * same figures; spilled half-way, too. The digest is the SHA-256 of the bytes. */
Test(seed, streamed_compaction_is_the_local_copy_byte_for_byte)
{
    env_t e;
    quiescent_store(&e);
    size_t la, lb, lc;
    uint8_t da[LS_DIGEST_SIZE], db_[LS_DIGEST_SIZE], dc[LS_DIGEST_SIZE], want[LS_DIGEST_SIZE];
    ls_seed_info_t ia, ib, ic;
    uint8_t *a = read_stream(e.db, false, 0, &la, da, &ia);
    uint8_t *b = read_stream(e.db, true, 0, &lb, db_, &ib);
    uint8_t *c = read_stream(e.db, true, la / 3 + 5, &lc, dc, &ic);
    cr_assert_gt(la, 512 * 1024);
    cr_assert_eq(lb, la, "sizes: direct %zu, local %zu", lb, la);
    cr_assert_eq(lc, la, "sizes: spilled %zu, local %zu", lc, la);
    cr_assert_eq(memcmp(a, b, la), 0, "the same bytes");
    cr_assert_eq(memcmp(a, c, la), 0, "the same bytes after a spill");
    ls_sha256(a, la, want); /* what SEED_END carries */
    cr_assert_arr_eq(da, want, LS_DIGEST_SIZE);
    cr_assert_arr_eq(db_, want, LS_DIGEST_SIZE);
    cr_assert_arr_eq(dc, want, LS_DIGEST_SIZE);
    cr_assert_eq(ib.last_lsn, ia.last_lsn);
    cr_assert_eq(ib.generation, ia.generation);
    cr_assert_arr_eq(ib.prev_digest, ia.prev_digest, LS_DIGEST_SIZE);
    cr_assert_eq(ic.last_lsn, ia.last_lsn);
    free(a);
    free(b);
    free(c);
    env_free(&e);
}

/* Abandoned half-way (the connection closed): the copy thread ends, nothing is left behind and
 * the store's environment is closed. */
Test(seed, streamed_compaction_abandoned_half_way_cleans_up)
{
    env_t e;
    quiescent_store(&e);
    ls_seed_snapshot_options_t so = {.db_dir = e.db, .direct = true};
    ls_seed_snapshot_t *s = NULL;
    char err[1024] = "";
    cr_assert_eq(ls_seed_snapshot_new(&so, &s, err, sizeof(err)), 0, "%s", err);
    uint8_t buf[8192];
    uint64_t off;
    size_t n;
    cr_assert_eq(ls_seed_snapshot_read(s, buf, sizeof(buf), &off, &n), 0);
    cr_assert_eq(n, sizeof(buf));
    ls_seed_snapshot_free(s);
    cr_assert_eq(ls_store_env_count(), 0);
    char cmd[PATHSZ + 64], *out = NULL;
    snprintf(cmd, sizeof(cmd), "find '%s/seed-tmp' -mindepth 1 | wc -l", e.db);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 10000), 0);
    cr_assert_eq(atoi(out), 0, "nothing left in seed-tmp/: %s", out);
    free(out);
    env_free(&e);
}
