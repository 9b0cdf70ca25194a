/* seed: snapshot + install round trip, the hand-off to engine/copy, verification, refusal,
 * bounded memory on a 100 MiB store, an empty database, progress. Crashes: seed_crash_test.c. */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>

#include <signal.h>
#include <sys/prctl.h>

#include "copy/copy.h"
#include "store/env.h"

#include "seed_test_util.h"

#define CHUNK (64u * 1024u)

/* The copy's store meta names L, N and the digest of N-1, and its data is the active's. */
static void round_trip(bool direct)
{
    seed_direct = direct;
    env_t e;
    env_init(&e, "seed");
    ls_db_options_t o = db_opts(32 * 1024);
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(e.db, &o, &db), 0, "%s", ls_db_open_error());
    cr_assert_eq(commit_range(db, 0, 60, 3, 700), 0);
    cr_assert(wait_applied(db, 10000), "the store holds every commit (the snapshot reads it)");
    ls_db_stats_t st;
    ls_db_stats(db, &st);
    cr_assert_gt(st.last_closed, 2, "several generations closed");
    cr_assert_gt(st.current_generation, st.last_closed, "the current log is open");

    ls_seed_info_t info;
    seed_ok(&e, CHUNK, &info);
    cr_assert_eq(ls_db_close(db), 0);

    uint8_t prev[LS_DIGEST_SIZE];
    gen_digest(e.db, st.current_generation - 1, prev);
    cr_assert_eq(info.last_lsn, st.last_lsn, "L is the last LSN");
    cr_assert_eq(info.generation, st.current_generation, "N is the open generation");
    cr_assert_eq(info.epoch, 1);
    cr_assert_arr_eq(info.prev_digest, prev, LS_DIGEST_SIZE, "digest of N-1");
    cr_assert_arr_eq(info.dbid, st.dbid, LS_DBID_LEN);

    char cs[PATHSZ];
    snprintf(cs, sizeof(cs), "%s/store", e.copy);
    ls_store_meta_t m;
    store_meta(cs, &m);
    cr_assert_eq(m.lsn, st.last_lsn);
    cr_assert_eq(m.txid, st.last_txid);
    cr_assert_eq(m.generation, st.current_generation);
    cr_assert_eq(m.digest_generation, st.current_generation - 1);
    cr_assert_arr_eq(m.digest, prev, LS_DIGEST_SIZE);
    cr_assert_eq(m.checkpoint_lsn, st.last_lsn);
    cr_assert_eq(m.applied_generations, 0);
    assert_copy_equals_active(e.db, e.copy);
    assert_no_leftovers(e.copy);
    char tmp[PATHSZ];
    snprintf(tmp, sizeof(tmp), "%s/seed-tmp", e.db);
    struct dirent **ents;
    int n = scandir(tmp, &ents, NULL, NULL);
    for (int i = 0; i < n; i++)
        free(ents[i]);
    if (n >= 0) free(ents);
    cr_assert_leq(n, 2, "the local snapshot copy was removed from %s", tmp);
    env_free(&e);
}

Test(seed, round_trip_copy_equals_active_and_meta_names_handoff)
{
    round_trip(false);
}

/* Streamed from the compacting copy, checked by XXH3-128 (LS_FEAT_SEEDXXH negotiated). */
Test(seed, round_trip_with_the_xxh3_check)
{
    seed_xxh = true;
    round_trip(true);
}

/* The same, streamed from the compacting copy (no local copy). */
Test(seed, round_trip_streamed_from_the_compaction)
{
    round_trip(true);
}

/* Sends closed generation g of the active's logs to the copy in chunks. */
static void feed(ls_copy_t *c, const char *db, uint64_t g)
{
    char name[LS_GEN_NAME_MAX], path[PATHSZ], err[1024] = "";
    ls_gen_name(name, sizeof(name), "E00", 1, g);
    snprintf(path, sizeof(path), "%s/logs/%s", db, name);
    size_t len = 0;
    uint8_t *buf = ls_h_read_file(path, &len);
    cr_assert_not_null(buf, "%s", path);
    int rc = ls_copy_recv_begin(c, 1, g, len, 0, err, sizeof(err));
    for (size_t off = 0; rc == 0 && off < len; off += 4000)
        rc = ls_copy_recv_data(c, g, off, buf + off, LS_MIN(4000, len - off), err, sizeof(err));
    if (rc == 0) rc = ls_copy_recv_end(c, g, NULL, err, sizeof(err));
    cr_assert_eq(rc, 0, "generation %llu: %s (%s)", (unsigned long long) g, ls_err_name(rc), err);
    free(buf);
}

static bool replayed_to(void *ctx)
{
    void **a = ctx;
    ls_copy_stats_t st;
    ls_copy_stats(a[0], &st);
    return st.last_replayed >= *(uint64_t *) a[1];
}

/* The database's figures as its next user finds them: opened again (options o) and closed. */
static ls_db_stats_t reopened_stats(const char *dir, const ls_db_options_t *o)
{
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(dir, o, &db), 0, "%s", ls_db_open_error());
    ls_db_stats_t st;
    ls_db_stats(db, &st);
    cr_assert_eq(ls_db_close(db), 0);
    return st;
}

/* Opens the seeded copy, feeds N..last, replays, and checks the result against the active. */
static void converge(const env_t *e, const ls_seed_info_t *info, uint64_t last, uint64_t lsn)
{
    ls_copy_options_t co = {.dir = e->copy, .dbid = info->dbid};
    ls_copy_t *c = NULL;
    char err[1024] = "";
    cr_assert_eq(ls_copy_open(&co, &c, err, sizeof(err)), 0, "%s", err);
    ls_copy_resume_t r;
    ls_copy_resume_point(c, &r);
    cr_assert_eq(r.next_generation, info->generation, "the copy asks for N");
    cr_assert_arr_eq(r.digest, info->prev_digest, LS_DIGEST_SIZE, "and holds N-1's digest");
    for (uint64_t g = info->generation; g <= last; g++)
        feed(c, e->db, g);
    cr_assert_eq(ls_copy_start(c), 0);
    void *a[2] = {c, &last};
    cr_assert(ls_h_wait_for(replayed_to, a, 10000), "replayed through %llu",
              (unsigned long long) last);
    ls_copy_stats_t st;
    ls_copy_stats(c, &st);
    cr_assert_eq(st.applied_generations, last - info->generation + 1, "each applied once");
    cr_assert_eq(st.last_replayed_lsn, lsn, "through the active's last LSN");
    cr_assert_eq(st.state, LS_COPY_HEALTHY);
    ls_copy_close(c);
    assert_copy_equals_active(e->db, e->copy);
}

/* Snapshot while the current log holds committed transactions after L; more are committed in the
 * same generation before it closes: they arrive and nothing is applied twice. */
Test(seed, handoff_inside_open_generation_loses_nothing)
{
    env_t e;
    env_init(&e, "seed");
    ls_db_options_t o = db_opts(32 * 1024);
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(e.db, &o, &db), 0, "%s", ls_db_open_error());
    cr_assert_eq(commit_range(db, 0, 50, 3, 600), 0, "A: several generations");
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(commit_range(db, 50, 53, 2, 100), 0, "A: the open generation's first part");
    cr_assert(wait_applied(db, 10000), "the store holds every commit (the snapshot reads it)");
    cr_assert_eq(ls_db_checkpoint(db), 0);
    ls_db_stats_t s1;
    ls_db_stats(db, &s1);

    ls_seed_info_t info;
    seed_ok(&e, CHUNK, &info);
    cr_assert_eq(info.last_lsn, s1.last_lsn);
    cr_assert_eq(info.generation, s1.current_generation);

    cr_assert_eq(commit_range(db, 53, 57, 2, 100), 0, "B: after L, same generation");
    ls_db_stats_t s2;
    ls_db_stats(db, &s2);
    cr_assert_eq(s2.current_generation, s1.current_generation, "B went into generation N");
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(commit_range(db, 57, 90, 3, 600), 0, "C: later generations, deletes of A's");
    cr_assert_eq(ls_db_close(db), 0); /* rolls the last one */
    uint8_t prev[LS_DIGEST_SIZE];
    gen_digest(e.db, info.generation - 1, prev);
    cr_assert_arr_eq(info.prev_digest, prev, LS_DIGEST_SIZE);

    ls_db_stats_t s3 = reopened_stats(e.db, &o);
    converge(&e, &info, s3.last_closed, s3.last_lsn);
    env_free(&e);
}

/* L is the last record of closed generation G, which retention already removed: the hand-off
 * moves to G + 1 (it starts at L + 1). */
Test(seed, handoff_after_removed_generation_starts_at_next)
{
    env_t e;
    env_init(&e, "seed");
    ls_db_options_t o = db_opts(32 * 1024);
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(e.db, &o, &db), 0, "%s", ls_db_open_error());
    cr_assert_eq(commit_range(db, 0, 30, 3, 600), 0);
    cr_assert_eq(ls_db_roll(db), 0);
    /* Retention removes only generations the store holds (the snapshot reads the store). */
    cr_assert(wait_applied(db, 10000), "the store holds every commit");
    ls_db_stats_t s1;
    ls_db_stats(db, &s1);
    uint8_t dg[LS_DIGEST_SIZE];
    gen_digest(e.db, s1.last_closed, dg);
    char name[LS_GEN_NAME_MAX], path[PATHSZ];
    ls_gen_name(name, sizeof(name), "E00", 1, s1.last_closed);
    snprintf(path, sizeof(path), "%s/logs/%s", e.db, name);
    cr_assert_eq(unlink(path), 0, "retention removed generation %llu",
                 (unsigned long long) s1.last_closed);

    ls_seed_info_t info;
    seed_ok(&e, CHUNK, &info);
    cr_assert_eq(info.generation, s1.last_closed + 1);
    cr_assert_arr_eq(info.prev_digest, dg, LS_DIGEST_SIZE);
    cr_assert_eq(commit_range(db, 30, 45, 3, 600), 0);
    cr_assert_eq(ls_db_close(db), 0);
    ls_db_stats_t s3 = reopened_stats(e.db, &o);
    converge(&e, &info, s3.last_closed, s3.last_lsn);
    env_free(&e);
}

/* Builds an old copy by a first seed, then commits more (in this process). */
static void old_copy(env_t *e, ls_db_t **db)
{
    ls_db_options_t o = db_opts(0);
    cr_assert_eq(ls_db_open(e->db, &o, db), 0, "%s", ls_db_open_error());
    cr_assert_eq(commit_range(*db, 0, 20, 3, 500), 0);
    cr_assert(wait_applied(*db, 10000), "the store holds every commit (the snapshot reads it)");
    seed_ok(e, CHUNK, NULL);
    cr_assert_eq(commit_range(*db, 20, 40, 3, 500), 0);
    cr_assert(wait_applied(*db, 10000), "the store holds every commit (the snapshot reads it)");
}

/* One flipped bit of the stream fails the check, XXH3-128 (xxh) or SHA-256 (a peer without
 * LS_FEAT_SEEDXXH); the message names the algorithm and both values. */
static void corrupted_byte(bool xxh)
{
    env_t e;
    env_init(&e, "seed");
    seed_xxh = xxh;
    ls_db_t *db;
    old_copy(&e, &db);
    char before[65], after[65];
    tree_hash(e.copy, before);
    ls_seed_install_options_t io = {.copy_dir = e.copy, .delete_existing = true};
    char err[1024] = "";
    int rc = seed_run(e.db, &io, CHUNK, 5000, NULL, err, sizeof(err));
    cr_assert_eq(rc, LS_EDIGEST, "got %s (%s)", ls_err_name(rc), err);
    cr_assert(ls_h_contains(err, xxh ? "seed stream XXH3-128 mismatch: got "
                                     : "seed stream SHA-256 mismatch: got ") &&
                  ls_h_contains(err, ", SEED_END says "),
              "the message says why: %s", err);
    /* the values as long as the algorithm's: 32 hex digits for XXH3-128, 64 for SHA-256 */
    const char *got = strstr(err, "got ") + 4;
    cr_assert_eq(strcspn(got, ","), xxh ? 32u : 64u, "%s", err);
    tree_hash(e.copy, after);
    cr_assert_str_eq(before, after, "the old copy is byte-identical");
    assert_no_leftovers(e.copy);
    rc = seed_run(e.db, &io, CHUNK, -1, NULL, err, sizeof(err));
    cr_assert_eq(rc, 0, "a new seed succeeds: %s", err);
    cr_assert_eq(ls_db_close(db), 0);
    assert_copy_equals_active(e.db, e.copy);
    env_free(&e);
}

Test(seed, corrupted_byte_fails_verification_and_installs_nothing)
{
    corrupted_byte(false);
}

Test(seed, corrupted_byte_fails_the_xxh3_check_and_installs_nothing)
{
    corrupted_byte(true);
}

Test(seed, refuses_existing_copy_without_delete_existing)
{
    env_t e;
    env_init(&e, "seed");
    ls_db_t *db;
    old_copy(&e, &db);
    char before[65], after[65];
    tree_hash(e.copy, before);
    ls_seed_install_options_t io = {.copy_dir = e.copy};
    char err[1024] = "";
    int rc = seed_run(e.db, &io, CHUNK, -1, NULL, err, sizeof(err));
    cr_assert_eq(rc, LS_EEXIST, "got %s (%s)", ls_err_name(rc), err);
    cr_assert(ls_h_contains(err, "already holds a store"), "says why: %s", err);
    cr_assert(ls_h_contains(err, "--delete-existing"), "says what to do: %s", err);
    tree_hash(e.copy, after);
    cr_assert_str_eq(before, after);
    assert_no_leftovers(e.copy);
    io.copy_failed = true; /* a Failed or Diverged copy may be replaced */
    rc = seed_run(e.db, &io, CHUNK, -1, NULL, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(ls_db_close(db), 0);
    assert_copy_equals_active(e.db, e.copy);
    env_free(&e);
}

Test(seed, chunk_out_of_order_or_past_total_is_refused)
{
    env_t e;
    env_init(&e, "seed");
    ls_db_options_t o = db_opts(0);
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(e.db, &o, &db), 0, "%s", ls_db_open_error());
    cr_assert_eq(commit_range(db, 0, 5, 2, 100), 0);
    ls_seed_snapshot_options_t so = {.db_dir = e.db};
    ls_seed_snapshot_t *s = NULL;
    char err[1024] = "";
    cr_assert_eq(ls_seed_snapshot_new(&so, &s, err, sizeof(err)), 0, "%s", err);
    ls_seed_install_options_t io = {.copy_dir = e.copy};
    ls_seed_install_t *in = NULL;
    cr_assert_eq(ls_seed_install_begin(&io, ls_seed_snapshot_info(s), &in, err, sizeof(err)), 0);
    uint8_t b[16] = {0};
    cr_assert_eq(ls_seed_install_data(in, 8, b, sizeof(b), err, sizeof(err)), LS_EPROTO);
    cr_assert(ls_h_contains(err, "expected offset 0"), "%s", err);
    cr_assert_eq(ls_seed_install_data(in, 0, b, sizeof(b), err, sizeof(err)), LS_ESTATE,
                 "errors are sticky");
    ls_seed_install_free(in);
    assert_no_leftovers(e.copy);
    uint64_t total = ls_seed_snapshot_info(s)->total_bytes;
    cr_assert_eq(ls_seed_install_begin(&io, ls_seed_snapshot_info(s), &in, err, sizeof(err)), 0);
    uint8_t *big = calloc(1, total + 1);
    cr_assert_eq(ls_seed_install_data(in, 0, big, total + 1, err, sizeof(err)), LS_EPROTO);
    ls_seed_install_free(in);
    cr_assert_eq(ls_seed_install_begin(&io, ls_seed_snapshot_info(s), &in, err, sizeof(err)), 0);
    cr_assert_eq(ls_seed_install_data(in, 0, big, total - 1, err, sizeof(err)), 0);
    uint8_t d[LS_DIGEST_SIZE] = {0};
    cr_assert_eq(ls_seed_install_end(in, d, err, sizeof(err)), LS_ETRUNCATED, "%s", err);
    ls_seed_install_free(in);
    free(big);
    assert_no_leftovers(e.copy);
    ls_seed_snapshot_free(s);
    cr_assert_eq(ls_db_close(db), 0);
    env_free(&e);
}

static void empty_database(bool direct)
{
    seed_direct = direct;
    env_t e;
    env_init(&e, "seed");
    ls_db_options_t o = db_opts(0);
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(e.db, &o, &db), 0, "%s", ls_db_open_error());
    ls_seed_info_t info;
    seed_ok(&e, CHUNK, &info);
    cr_assert_eq(info.last_lsn, 0);
    cr_assert_eq(info.generation, 1);
    cr_assert_eq(commit_range(db, 0, 10, 2, 300), 0);
    cr_assert_eq(ls_db_close(db), 0);
    ls_db_stats_t s3 = reopened_stats(e.db, &o);
    converge(&e, &info, s3.last_closed, s3.last_lsn);
    env_free(&e);
}

Test(seed, empty_database_hands_off_at_generation_one)
{
    empty_database(false);
}

Test(seed, empty_database_streamed_from_the_compaction)
{
    empty_database(true);
}

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

/* ---- two seeds of one database at once (issue 13, defect 1) --------------------------------- */

/* A writer in another process (the application) rewrites the store without pause: its first
 * transaction writes RACE_KEYS keys, each later one rewrites one window of RACE_WINDOW keys and
 * the window's marker "w<n>" with a new counter. A consistent snapshot therefore holds every key,
 * each carrying its window marker's counter. */
#define RACE_KEYS   200000
#define RACE_WINDOW 5000
#define RACE_VLEN   400

typedef struct {
    uint64_t counter; /* this transaction's number */
} race_txn_t;

static int race_put(void *ctx, ls_store_txn_t *t)
{
    uint64_t c = ((race_txn_t *) ctx)->counter;
    uint8_t v[RACE_VLEN];
    memset(v, 0xab, sizeof(v));
    ls_put64(v, c);
    int nw = RACE_KEYS / RACE_WINDOW;
    int from = c == 1 ? 0 : (int) (c % (uint64_t) nw) * RACE_WINDOW;
    int to = c == 1 ? RACE_KEYS : from + RACE_WINDOW;
    for (int i = from; i < to; i++) {
        char k[16];
        int n = snprintf(k, sizeof(k), "k%06d", i), rc;
        if ((rc = ls_store_put(t, k, (size_t) n, v, sizeof(v)))) return rc;
        if (i % RACE_WINDOW == 0) {
            n = snprintf(k, sizeof(k), "w%03d", i / RACE_WINDOW);
            if ((rc = ls_store_put(t, k, (size_t) n, v, 8))) return rc;
        }
    }
    return 0;
}

/* The writer process: never returns; writes one byte to ready after its first transaction. */
static void race_writer(const char *store, int ready)
{
    ls_store_options_t o = {.map_size = 1ull << 30};
    ls_store_t *s = NULL;
    char err[512] = "";
    LS_H_CHILD_CHECK(ls_store_open(store, &o, &s, err, sizeof(err)) == 0);
    ls_store_meta_t m;
    ls_store_meta(s, &m); /* the position stays the writer's: only data changes */
    for (race_txn_t t = {.counter = 1};; t.counter++) {
        LS_H_CHILD_CHECK(ls_store_apply(s, race_put, &t, &m) == 0);
        if (t.counter == 1) LS_H_CHILD_CHECK(write(ready, "r", 1) == 1);
    }
}

typedef struct {
    const char *db;       /* the active database */
    char out[PATHSZ];     /* directory the stream is written into (data.mdb) */
    int delay_ms;         /* start this late */
    bool direct;          /* stream from the compacting copy */
    int rc;               /* first failure */
    char err[1024];       /* its message */
    uint64_t total_bytes; /* stream size */
} race_snap_t;

/* One seed's active side: the snapshot, streamed into out/data.mdb. */
static void *race_snapshot(void *arg)
{
    race_snap_t *r = arg;
    usleep((useconds_t) r->delay_ms * 1000u);
    ls_seed_snapshot_options_t so = {.db_dir = r->db, .direct = r->direct};
    ls_seed_snapshot_t *s = NULL;
    r->rc = ls_seed_snapshot_new(&so, &s, r->err, sizeof(r->err));
    if (r->rc) return NULL;
    r->total_bytes = ls_seed_snapshot_info(s)->total_bytes;
    char file[PATHSZ + 16];
    snprintf(file, sizeof(file), "%s/data.mdb", r->out);
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    static __thread uint8_t buf[CHUNK];
    for (;;) {
        uint64_t off;
        size_t n;
        if (fd < 0 || (r->rc = ls_seed_snapshot_read(s, buf, sizeof(buf), &off, &n)) || n == 0)
            break;
        if (pwrite(fd, buf, n, (off_t) off) != (ssize_t) n) r->rc = LS_EIO;
    }
    if (fd < 0) r->rc = LS_EIO;
    if (fd >= 0) close(fd);
    ls_seed_snapshot_free(s);
    return NULL;
}

typedef struct {
    uint64_t win[RACE_KEYS / RACE_WINDOW]; /* the markers' counters */
    uint64_t keys;                         /* "k" keys seen */
    uint64_t bad;                          /* keys whose counter is not their marker's */
} race_check_t;

static int race_marker(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    race_check_t *c = ctx;
    const char *key = k;
    if (kl == 4 && key[0] == 'w' && vl == 8)
        c->win[atoi((char[4]){key[1], key[2], key[3], 0})] = ls_get64(v);
    return 0;
}

static int race_value(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    race_check_t *c = ctx;
    const char *key = k;
    if (kl != 7 || key[0] != 'k') return 0;
    char num[8] = {0};
    memcpy(num, key + 1, 6);
    int i = atoi(num);
    c->keys++;
    if (vl != RACE_VLEN || i >= RACE_KEYS || ls_get64(v) != c->win[i / RACE_WINDOW]) c->bad++;
    return 0;
}

/* Opens the streamed copy and checks it; returns a description of what is wrong, or NULL. */
static char *race_check(const char *dir)
{
    static __thread char why[PATHSZ + 1024];
    ls_store_t *s = NULL;
    char err[512] = "";
    ls_store_options_t o = {0};
    int rc = ls_store_open(dir, &o, &s, err, sizeof(err));
    race_check_t c = {0};
    if (rc == 0) rc = ls_store_iterate(s, race_marker, &c);
    if (rc == 0) rc = ls_store_iterate(s, race_value, &c);
    ls_store_close(s);
    if (rc) {
        snprintf(why, sizeof(why), "%s: %s %s", dir, ls_err_name(rc), err);
        return why;
    }
    if (c.keys == RACE_KEYS && c.bad == 0) return NULL;
    snprintf(why, sizeof(why), "%s: %llu keys of %d, %llu carry another transaction's counter", dir,
             (unsigned long long) c.keys, RACE_KEYS, (unsigned long long) c.bad);
    return why;
}

/* The daemon's status and removal read the active store's meta record meanwhile. */
typedef struct {
    const char *store; /* <db>/store */
    atomic_bool stop;  /* asks the thread to finish */
    int reads;         /* meta records read */
    int rc;            /* first failure */
} race_status_t;

static void *race_status(void *arg)
{
    race_status_t *st = arg;
    while (!atomic_load(&st->stop) && st->rc == 0) {
        ls_store_meta_t m;
        st->rc = ls_store_peek_meta(st->store, &m, NULL, 0);
        st->reads++;
        usleep(2000);
    }
    return NULL;
}

Test(seed, two_snapshots_of_one_store_at_once_are_consistent, .timeout = 240)
{
    env_t e;
    env_init(&e, "seed");
    ls_db_options_t o = db_opts(1 << 20);
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(e.db, &o, &db), 0, "%s", ls_db_open_error());
    cr_assert_eq(commit_range(db, 0, 4, 2, 100), 0);
    cr_assert_eq(ls_db_close(db), 0);
    char store[PATHSZ];
    snprintf(store, sizeof(store), "%s/store", e.db);
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    fflush(NULL);
    pid_t w = fork();
    cr_assert_geq(w, 0);
    if (w == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion must not leave it writing */
        if (getppid() == 1) _exit(3);
        close(ready[0]);
        race_writer(store, ready[1]);
    }
    close(ready[1]);
    char b;
    cr_assert_eq(read(ready[0], &b, 1), 1, "the writer's first transaction");
    close(ready[0]);

    /* A solo snapshot gives the copy time; the second snapshot then starts half of it late, so
     * the first one finishes (and closes what it opened) while the second is still copying. */
    race_snap_t solo = {.db = e.db};
    snprintf(solo.out, sizeof(solo.out), "%s/solo", e.base);
    cr_assert_eq(mkdir(solo.out, 0700), 0);
    uint64_t t0 = ls_mono_ns();
    race_snapshot(&solo);
    int copy_ms = (int) ((ls_mono_ns() - t0) / 1000000u);
    cr_assert_eq(solo.rc, 0, "%s", solo.err);
    char *why = race_check(solo.out);
    cr_assert_null(why, "a single snapshot: %s", why);

    race_status_t st = {.store = store};
    pthread_t status;
    cr_assert_eq(pthread_create(&status, NULL, race_status, &st), 0);
    uint64_t deadline = ls_mono_ns() + 30 * 1000000000ull;
    int rounds = 0;
    for (; rounds < 6 && (rounds < 2 || ls_mono_ns() < deadline); rounds++) {
        /* the second one streams from the compaction on odd rounds */
        race_snap_t r[2] = {
            {.db = e.db},
            {.db = e.db, .delay_ms = copy_ms * (rounds % 4) / 8, .direct = rounds % 2 == 1}};
        pthread_t t[2];
        for (int i = 0; i < 2; i++) {
            snprintf(r[i].out, sizeof(r[i].out), "%s/round%d-%c", e.base, rounds, 'a' + i);
            cr_assert_eq(mkdir(r[i].out, 0700), 0);
            cr_assert_eq(pthread_create(&t[i], NULL, race_snapshot, &r[i]), 0);
        }
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        for (int i = 0; i < 2; i++) {
            cr_assert_eq(r[i].rc, 0, "round %d, snapshot %d: %s (%s)", rounds, i,
                         ls_err_name(r[i].rc), r[i].err);
            why = race_check(r[i].out);
            cr_assert_null(why, "round %d, snapshot %d: %s", rounds, i, why);
            ls_h_rmtree(r[i].out);
        }
    }
    kill(w, SIGKILL);
    waitpid(w, NULL, 0);
    atomic_store(&st.stop, true); /* its peeks hold an environment while they run */
    pthread_join(status, NULL);
    cr_assert_eq(st.rc, 0, "the meta record read beside the snapshots (%d reads): %s", st.reads,
                 ls_err_name(st.rc));
    cr_assert_eq(ls_store_env_count(), 0, "every environment closed with its last user");
    env_free(&e);
}
