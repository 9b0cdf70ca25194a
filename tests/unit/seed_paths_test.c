/* seed: the error paths and edge cases of the snapshot, the hand-off, the install, the swap and
 * the worker (issue 11): a database without a store, a blocked or over-long scratch directory, a
 * local copy that shrinks, logs/ that disagree with the store (another database, a generation not
 * holding L, a damaged closed generation, a removed one), install options and announcements that
 * are refused, a damaged install directory, the two-rename swap. Each asserts the error code, that
 * the message names the thing and the place, and that nothing durable is lost. */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mount.h>

#include "layout/layout.h"
#include "seed/seed_int.h"
#include "seed/session.h"
#include "seed_test_util.h"

#define CHUNK (16u * 1024u)

/* An active database with closed generations (16 KiB each) and a current log, closed again. */
static void active_db_sized(env_t *e, int ntx, size_t vlen)
{
    ls_db_options_t o = db_opts(16 * 1024);
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(e->db, &o, &db), 0, "%s", ls_db_open_error());
    cr_assert_eq(commit_range(db, 0, ntx, 3, vlen), 0);
    cr_assert_eq(ls_db_close(db), 0);
}

static void active_db(env_t *e, int ntx)
{
    active_db_sized(e, ntx, 500);
}

static void gen_ends(const char *logs, uint64_t gen, ls_layout_ends_t *x)
{
    char p[PATHSZ];
    ls_h_gen_path(p, sizeof(p), logs, 1, gen);
    char err[512] = "";
    cr_assert_eq(ls_layout_read_ends(p, x, err, sizeof(err)), 0, "%s", err);
}

/* ---- snapshot ------------------------------------------------------------------------------ */

Test(seed_paths, snapshot_options_refused)
{
    ls_seed_snapshot_t *s = (void *) 1;
    char err[512] = "";
    cr_assert_eq(ls_seed_snapshot_new(NULL, &s, err, sizeof(err)), LS_EINVAL);
    cr_assert_null(s);
    LS_H_ASSERT_HAS(err, "no database directory");
    ls_seed_snapshot_options_t o = {.db_dir = ""};
    cr_assert_eq(ls_seed_snapshot_new(&o, &s, err, sizeof(err)), LS_EINVAL);

    /* a database directory that leaves no room for seed-tmp/snap-<pid>-<n>/data.mdb */
    char *longdir = malloc(LS__SEED_PATH_MAX);
    memset(longdir, 'd', LS__SEED_PATH_MAX - 40);
    longdir[0] = '/';
    longdir[LS__SEED_PATH_MAX - 40] = '\0';
    o.db_dir = longdir;
    err[0] = '\0';
    cr_assert_eq(ls_seed_snapshot_new(&o, &s, err, sizeof(err)), LS_EINVAL);
    LS_H_ASSERT_HAS(err, "too long");
    memset(longdir, 'd', LS__SEED_PATH_MAX - 1);
    longdir[0] = '/';
    longdir[LS__SEED_PATH_MAX - 1] = '\0';
    cr_assert_eq(ls_seed_snapshot_cleanup(longdir), LS_EINVAL);
    free(longdir);

    env_t e;
    env_init(&e, "seedpaths");
    char prefix[LS_GEN_PREFIX_MAX + 8];
    memset(prefix, 'P', sizeof(prefix) - 1);
    prefix[sizeof(prefix) - 1] = '\0';
    o = (ls_seed_snapshot_options_t){.db_dir = e.db, .prefix = prefix};
    err[0] = '\0';
    cr_assert_eq(ls_seed_snapshot_new(&o, &s, err, sizeof(err)), LS_EINVAL);
    LS_H_ASSERT_HAS(err, "prefix too long");
    env_free(&e);
}

/* A database directory with logs/ but no store/: LS_ENOENT naming the store; no scratch copy
 * stays behind. */
Test(seed_paths, snapshot_of_directory_without_store)
{
    env_t e;
    env_init(&e, "seedpaths");
    char p[PATHSZ];
    snprintf(p, sizeof(p), "%s/logs", e.db);
    cr_assert_eq(ls_mkdir_p(p), 0);
    ls_seed_snapshot_options_t o = {.db_dir = e.db};
    ls_seed_snapshot_t *s = NULL;
    char err[1024] = "";
    int rc = ls_seed_snapshot_new(&o, &s, err, sizeof(err));
    cr_assert_eq(rc, LS_ENOENT, "%s (%s)", ls_err_name(rc), err);
    cr_assert_null(s);
    snprintf(p, sizeof(p), "%s/store", e.db);
    LS_H_ASSERT_HAS(err, p);
    LS_H_ASSERT_HAS(err, "cannot open for the snapshot");
    snprintf(p, sizeof(p), "%s/seed-tmp", e.db);
    cr_assert_leq(ls_h_dir_entries(p), 0, "the failed snapshot left its scratch copy in %s", p);
    env_free(&e);
}

/* <db>/seed-tmp is a file: the scratch directory cannot be created; the store is untouched. */
Test(seed_paths, snapshot_scratch_directory_blocked)
{
    env_t e;
    env_init(&e, "seedpaths");
    active_db(&e, 20);
    char p[PATHSZ], store[PATHSZ], before[65], after[65];
    snprintf(store, sizeof(store), "%s/store", e.db);
    tree_hash(store, before);
    snprintf(p, sizeof(p), "%s/seed-tmp", e.db);
    cr_assert_eq(ls_h_write_file(p, "x", 1), 0);
    ls_seed_snapshot_options_t o = {.db_dir = e.db};
    ls_seed_snapshot_t *s = NULL;
    char err[1024] = "";
    int rc = ls_seed_snapshot_new(&o, &s, err, sizeof(err));
    cr_assert_neq(rc, 0);
    cr_assert_null(s);
    LS_H_ASSERT_HAS(err, p);
    LS_H_ASSERT_HAS(err, "cannot create");
    tree_hash(store, after);
    cr_assert_str_eq(before, after, "the store is untouched");
    /* start-up cleanup removes it, then a snapshot works */
    cr_assert_eq(ls_seed_snapshot_cleanup(e.db), 0);
    cr_assert(access(p, F_OK) != 0);
    cr_assert_eq(ls_seed_snapshot_new(&o, &s, err, sizeof(err)), 0, "%s", err);
    ls_seed_snapshot_free(s);
    env_free(&e);
}

/* Leftovers of a crashed snapshot (nested) are removed by ls_seed_snapshot_cleanup. */
Test(seed_paths, cleanup_removes_crashed_snapshot_leftovers)
{
    env_t e;
    env_init(&e, "seedpaths");
    char p[PATHSZ];
    snprintf(p, sizeof(p), "%s/seed-tmp/snap-1-0/deeper/still", e.db);
    cr_assert_eq(ls_mkdir_p(p), 0);
    snprintf(p, sizeof(p), "%s/seed-tmp/snap-1-0/data.mdb", e.db);
    cr_assert_eq(ls_h_write_file(p, "leftover", 8), 0);
    snprintf(p, sizeof(p), "%s/seed-tmp/snap-1-0/deeper/still/f", e.db);
    cr_assert_eq(ls_h_write_file(p, "leftover", 8), 0);
    cr_assert_eq(ls_seed_snapshot_cleanup(e.db), 0);
    snprintf(p, sizeof(p), "%s/seed-tmp", e.db);
    cr_assert(access(p, F_OK) != 0, "%s removed", p);
    cr_assert_eq(ls_seed_snapshot_cleanup(e.db), 0, "nothing left: still 0");
    env_free(&e);
}

/* A store the writer never applied to (no meta record) and a logs/ without generation 1: the
 * hand-off cannot find where the copy would resume: LS_EGAP naming logs/ and generation 1. */
Test(seed_paths, snapshot_of_unapplied_store_without_logs_is_a_gap)
{
    env_t e;
    env_init(&e, "seedpaths");
    char store[PATHSZ], logs[PATHSZ];
    snprintf(store, sizeof(store), "%s/store", e.db);
    snprintf(logs, sizeof(logs), "%s/logs", e.db);
    cr_assert_eq(ls_mkdir_p(store), 0);
    cr_assert_eq(ls_mkdir_p(logs), 0);
    ls_store_options_t so = {.map_size = 8u << 20, .create = true};
    ls_store_t *st = NULL;
    char err[1024] = "";
    cr_assert_eq(ls_store_open(store, &so, &st, err, sizeof(err)), 0, "%s", err);
    ls_store_close(st);
    ls_store_meta_t m;
    cr_assert_eq(ls_store_peek_meta(store, &m, NULL, 0), LS_ENOENT, "no meta record yet");

    ls_seed_snapshot_options_t o = {.db_dir = e.db};
    ls_seed_snapshot_t *s = NULL;
    int rc = ls_seed_snapshot_new(&o, &s, err, sizeof(err));
    cr_assert_eq(rc, LS_EGAP, "%s (%s)", ls_err_name(rc), err);
    LS_H_ASSERT_HAS(err, logs);
    LS_H_ASSERT_HAS(err, "generation 1 ");
    snprintf(store, sizeof(store), "%s/seed-tmp", e.db);
    cr_assert_leq(ls_h_dir_entries(store), 0, "no scratch copy left");
    env_free(&e);
}

/* The local copy shrinks under the reader: LS_EIO (never fewer bytes sent), then sticky
 * LS_ESTATE; the digest is refused. */
Test(seed_paths, snapshot_copy_shrinking_fails_the_reader)
{
    env_t e;
    env_init(&e, "seedpaths");
    active_db(&e, 30);
    ls_seed_snapshot_options_t o = {.db_dir = e.db, .chunk_max = 4096};
    ls_seed_snapshot_t *s = NULL;
    char err[1024] = "";
    cr_assert_eq(ls_seed_snapshot_new(&o, &s, err, sizeof(err)), 0, "%s", err);
    uint64_t total = ls_seed_snapshot_info(s)->total_bytes;
    cr_assert_gt(total, 3 * 4096);
    char tmp[PATHSZ], p[PATHSZ + 300];
    snprintf(tmp, sizeof(tmp), "%s/seed-tmp", e.db);
    DIR *d = opendir(tmp);
    cr_assert_not_null(d);
    struct dirent *de;
    p[0] = '\0';
    while ((de = readdir(d)) != NULL)
        if (!strncmp(de->d_name, "snap-", 5))
            snprintf(p, sizeof(p), "%s/%s/data.mdb", tmp, de->d_name);
    closedir(d);
    cr_assert(p[0], "the local copy is under %s", tmp);
    uint8_t buf[4096], dg[LS_DIGEST_SIZE];
    uint64_t off;
    size_t n;
    cr_assert_eq(ls_seed_snapshot_read(s, buf, sizeof(buf), &off, &n), 0);
    cr_assert_eq(n, 4096);
    cr_assert_eq(truncate(p, 6000), 0);
    cr_assert_eq(ls_seed_snapshot_read(s, buf, sizeof(buf), &off, &n), LS_EIO);
    cr_assert_eq(off, 4096);
    cr_assert_eq(n, 0, "no short chunk handed out");
    cr_assert_eq(ls_seed_snapshot_read(s, buf, sizeof(buf), &off, &n), LS_ESTATE);
    cr_assert_eq(ls_seed_snapshot_digest(s, dg), LS_ESTATE);
    ls_seed_snapshot_free(s);
    cr_assert_leq(ls_h_dir_entries(tmp), 0, "free removes the local copy");
    env_free(&e);
}

/* Bytes the files under dir occupy (allocated blocks). */
static uint64_t tree_bytes(const char *dir)
{
    char cmd[PATHSZ + 64], *out = NULL;
    snprintf(cmd, sizeof(cmd), "du -s -B1 '%s' | cut -f1", dir);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 30000), 0);
    uint64_t n = strtoull(out, NULL, 10);
    free(out);
    return n;
}

/* gcov's data of a forked child is written at exit(), which a child here never calls. */
extern void __gcov_dump(void) __attribute__((weak));

/* SHA-256 (hex) of one file's bytes. */
static void file_hash(const char *path, char out[2 * LS_DIGEST_SIZE + 1])
{
    size_t len = 0;
    uint8_t *b = ls_h_read_file(path, &len), d[LS_DIGEST_SIZE];
    ls_sha256_t *h = ls_sha256_new();
    if (b) ls_sha256_update(h, b, len);
    ls_sha256_final(h, d);
    ls_sha256_free(h);
    free(b);
    ls_hex(d, LS_DIGEST_SIZE, out);
}

/* Child: enters a mount namespace of its own (an unprivileged user namespace mapping us to root
 * when not root), with private propagation, so its mounts vanish with it. */
static void private_mounts(void)
{
    if (geteuid() == 0) {
        LS_H_CHILD_CHECK(unshare(CLONE_NEWNS) == 0);
    } else { /* an unprivileged user namespace maps us to root in it */
        uid_t uid = geteuid();
        gid_t gid = getegid();
        LS_H_CHILD_CHECK(unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0);
        char map[64];
        int n = snprintf(map, sizeof(map), "0 %u 1\n", (unsigned) uid);
        LS_H_CHILD_CHECK(ls_h_write_file("/proc/self/uid_map", map, (size_t) n) == 0);
        LS_H_CHILD_CHECK(ls_h_write_file("/proc/self/setgroups", "deny", 4) == 0);
        n = snprintf(map, sizeof(map), "0 %u 1\n", (unsigned) gid);
        LS_H_CHILD_CHECK(ls_h_write_file("/proc/self/gid_map", map, (size_t) n) == 0);
    }
    LS_H_CHILD_CHECK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
}

typedef struct {
    env_t *e;
    uint64_t fs_bytes; /* size of the tmpfs */
} tiny_t;

/* Child: in a mount namespace of its own, a tmpfs of fs_bytes at <base>/fs holding a copy of the
 * database; a snapshot of it. Writes "<rc>\n<message>\n<data.mdb hash before>\n<after>" to
 * <base>/result. */
static void tiny_fs_snapshot(void *ctx)
{
    const tiny_t *t = ctx;
    char fs[PATHSZ], db[PATHSZ + 8], store[PATHSZ + 32], res[PATHSZ], cmd[3 * PATHSZ];
    snprintf(fs, sizeof(fs), "%s/fs", t->e->base);
    snprintf(db, sizeof(db), "%s/db", fs);
    snprintf(store, sizeof(store), "%s/store/data.mdb", db);
    snprintf(res, sizeof(res), "%s/result", t->e->base);
    LS_H_CHILD_CHECK(mkdir(fs, 0700) == 0);
    private_mounts();
    char opt[64];
    snprintf(opt, sizeof(opt), "size=%llu", (unsigned long long) t->fs_bytes);
    LS_H_CHILD_CHECK(mount("tmpfs", fs, "tmpfs", 0, opt) == 0);
    snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", t->e->db, db);
    LS_H_CHILD_CHECK(system(cmd) == 0);
    char before[65], after[65], err[1024] = "";
    file_hash(store, before);
    ls_seed_snapshot_options_t o = {.db_dir = db};
    ls_seed_snapshot_t *s = NULL;
    int rc = ls_seed_snapshot_new(&o, &s, err, sizeof(err));
    ls_seed_snapshot_free(s);
    file_hash(store, after);
    snprintf(cmd, sizeof(cmd), "%s/seed-tmp", db);
    LS_H_CHILD_CHECK(ls_h_dir_entries(cmd) <= 0); /* no scratch copy left */
    char out[2048];
    int n = snprintf(out, sizeof(out), "%d\n%s\n%s\n%s\n", rc, err, before, after);
    LS_H_CHILD_CHECK(ls_h_write_file(res, out, (size_t) n) == 0);
    if (__gcov_dump) __gcov_dump();
}

/* A database on a file system with less room than its live pages: the snapshot is refused up
 * front with LS_ENOSPC giving both figures; the store is untouched and no scratch copy stays. */
Test(seed_paths, snapshot_on_full_file_system_is_refused_up_front)
{
    env_t e;
    env_init(&e, "seedpaths");
    active_db_sized(&e, 300, 2000);
    char p[PATHSZ];
    snprintf(p, sizeof(p), "%s/store/data.mdb", e.db);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    uint64_t store = (uint64_t) st.st_size, all = tree_bytes(e.db);
    cr_assert_gt(store, 1u << 20);
    /* the copy fits, with half the store's size to spare */
    tiny_t t = {&e, ((all + store / 2) / 4096 + 16) * 4096};
    cr_assert_eq(ls_h_in_child(tiny_fs_snapshot, &t, NULL), 0);
    snprintf(p, sizeof(p), "%s/result", e.base);
    size_t len = 0;
    char *r = (char *) ls_h_read_file(p, &len);
    cr_assert_not_null(r);
    char *msg = strchr(r, '\n'), *h1 = msg ? strchr(msg + 1, '\n') : NULL;
    char *h2 = h1 ? strchr(h1 + 1, '\n') : NULL;
    cr_assert(msg && h1 && h2, "result: %s", r);
    *msg++ = *h1++ = *h2++ = '\0';
    h2[64] = '\0';
    cr_assert_eq(atoi(r), LS_ENOSPC, "%s (%s)", ls_err_name(atoi(r)), msg);
    snprintf(p, sizeof(p), "%s/fs/db/seed-tmp/snap-", e.base);
    LS_H_ASSERT_HAS(msg, p);
    LS_H_ASSERT_HAS(msg, "bytes free, the local snapshot copy needs up to");
    cr_assert(!strncmp(h1, h2, 64), "the store is untouched");
    free(r);
    env_free(&e);
}

/* Child: the snapshot's own scratch directory (<db>/seed-tmp/snap-<pid>-0: the first snapshot
 * of this process) is a read-only file system holding a file, and <db>/seed-tmp/busy an empty
 * mount point. Writes "<snapshot rc>\n<message>\n<cleanup rc>\n<cleanup rc after umount>\n<hash
 * before>\n<after>" to <base>/result. */
static void read_only_scratch(void *ctx)
{
    const env_t *e = ctx;
    char snap[PATHSZ], busy[PATHSZ], file[PATHSZ + 16], store[PATHSZ], res[PATHSZ];
    snprintf(snap, sizeof(snap), "%s/seed-tmp/snap-%ld-0", e->db, (long) getpid());
    snprintf(busy, sizeof(busy), "%s/seed-tmp/busy", e->db);
    snprintf(file, sizeof(file), "%s/leftover", snap);
    snprintf(store, sizeof(store), "%s/store/data.mdb", e->db);
    snprintf(res, sizeof(res), "%s/result", e->base);
    LS_H_CHILD_CHECK(ls_mkdir_p(snap) == 0 && ls_mkdir_p(busy) == 0);
    private_mounts();
    LS_H_CHILD_CHECK(mount("tmpfs", snap, "tmpfs", 0, "size=1m") == 0);
    LS_H_CHILD_CHECK(ls_h_write_file(file, "x", 1) == 0);
    LS_H_CHILD_CHECK(mount(NULL, snap, NULL, MS_REMOUNT | MS_RDONLY, NULL) == 0);
    LS_H_CHILD_CHECK(mount("tmpfs", busy, "tmpfs", 0, "size=1m") == 0);
    char before[65], after[65], err[1024] = "";
    file_hash(store, before);
    ls_seed_snapshot_options_t o = {.db_dir = e->db};
    ls_seed_snapshot_t *s = NULL;
    int rc = ls_seed_snapshot_new(&o, &s, err, sizeof(err));
    ls_seed_snapshot_free(s);
    int clean = ls_seed_snapshot_cleanup(e->db);
    LS_H_CHILD_CHECK(umount(snap) == 0 && umount(busy) == 0);
    int clean2 = ls_seed_snapshot_cleanup(e->db);
    file_hash(store, after);
    char out[2048];
    int n = snprintf(out, sizeof(out), "%d\n%s\n%d\n%d\n%s\n%s\n", rc, err, clean, clean2, before,
                     after);
    LS_H_CHILD_CHECK(ls_h_write_file(res, out, (size_t) n) == 0);
    if (__gcov_dump) __gcov_dump();
}

/* The local copy cannot be written (a read-only scratch directory): LS_ESTORE naming the store and
 * the directory; start-up cleanup reports what it cannot remove and, once it can, removes it all;
 * the store is untouched. */
Test(seed_paths, snapshot_into_read_only_scratch_fails_and_cleanup_reports_it)
{
    env_t e;
    env_init(&e, "seedpaths");
    active_db(&e, 20);
    cr_assert_eq(ls_h_in_child(read_only_scratch, &e, NULL), 0);
    char p[PATHSZ];
    snprintf(p, sizeof(p), "%s/result", e.base);
    size_t len = 0;
    char *r = (char *) ls_h_read_file(p, &len), *f[6];
    cr_assert_not_null(r);
    f[0] = r;
    for (int i = 1; i < 6; i++) {
        f[i] = strchr(f[i - 1], '\n');
        cr_assert_not_null(f[i], "result: %s", r);
        *f[i]++ = '\0';
    }
    f[5][64] = '\0';
    cr_assert_eq(atoi(f[0]), LS_ESTORE, "%s (%s)", ls_err_name(atoi(f[0])), f[1]);
    snprintf(p, sizeof(p), "%s/store", e.db);
    LS_H_ASSERT_HAS(f[1], p);
    snprintf(p, sizeof(p), "%s/seed-tmp/snap-", e.db);
    LS_H_ASSERT_HAS(f[1], p);
    LS_H_ASSERT_HAS(f[1], "copy into");
    cr_assert_neq(atoi(f[2]), 0, "cleanup cannot remove a read-only file system's file");
    cr_assert_eq(atoi(f[3]), 0, "cleanup succeeds once it can");
    snprintf(p, sizeof(p), "%s/seed-tmp", e.db);
    cr_assert(access(p, F_OK) != 0, "%s removed", p);
    cr_assert_str_eq(f[4], f[5], "the store is untouched");
    free(r);
    env_free(&e);
}

/* ---- hand-off ------------------------------------------------------------------------------ */

/* A hand-off test: a closed database with generations 1.. closed, its store's meta, its logs/
 * with generation 1's path and ends, and the last hand-off's answer. */
typedef struct {
    env_t e;
    ls_store_meta_t m;   /* the store's meta record */
    char logs[PATHSZ];   /* <db>/logs */
    char g1[PATHSZ];     /* closed generation 1 there */
    ls_layout_ends_t x1; /* ... its header and trailer */
    ls_seed_info_t info; /* the last hand-off's answer */
    char err[1024];      /* ... its message */
} handoff_t;

static void handoff_init(handoff_t *h)
{
    memset(h, 0, sizeof(*h));
    env_init(&h->e, "seedpaths");
    active_db(&h->e, 60);
    char store[PATHSZ];
    snprintf(store, sizeof(store), "%s/store", h->e.db);
    store_meta(store, &h->m);
    snprintf(h->logs, sizeof(h->logs), "%s/logs", h->e.db);
    cr_assert_geq(h->m.generation, 3, "generations 1 and 2 are closed");
    ls_h_gen_path(h->g1, sizeof(h->g1), h->logs, 1, 1);
    gen_ends(h->logs, 1, &h->x1);
}

/* ls__seed_handoff with the store's meta m (the test's variation of h->m). */
static int handoff(handoff_t *h, const ls_store_meta_t *m)
{
    h->err[0] = '\0';
    return ls__seed_handoff(h->logs, "E00", m, &h->info, h->err, sizeof(h->err));
}

Test(seed_paths, handoff_against_logs_of_another_database)
{
    handoff_t h;
    handoff_init(&h);
    cr_assert_eq(handoff(&h, &h.m), 0, "%s", h.err);
    cr_assert_eq(h.info.generation, h.m.generation);
    cr_assert_eq(h.info.last_lsn, h.m.lsn);

    ls_store_meta_t other = h.m;
    other.dbid[0] ^= 0x01;
    int rc = handoff(&h, &other);
    cr_assert_eq(rc, LS_EDBID, "%s (%s)", ls_err_name(rc), h.err);
    LS_H_ASSERT_HAS(h.err, h.logs);
    LS_H_ASSERT_HAS(h.err, "another database");
    env_free(&h.e);
}

/* The store names closed generation 1 but an lsn past its end. */
Test(seed_paths, handoff_generation_not_holding_the_lsn_is_corrupt)
{
    handoff_t h;
    handoff_init(&h);
    ls_store_meta_t bad = h.m;
    bad.generation = 1;
    bad.lsn = h.x1.t.last_lsn + 1;
    int rc = handoff(&h, &bad);
    cr_assert_eq(rc, LS_ECORRUPT, "%s (%s)", ls_err_name(rc), h.err);
    LS_H_ASSERT_HAS(h.err, h.g1);
    LS_H_ASSERT_HAS(h.err, "does not hold");
    char want[64];
    snprintf(want, sizeof(want), "last lsn %llu", (unsigned long long) bad.lsn);
    LS_H_ASSERT_HAS(h.err, want);
    env_free(&h.e);
}

/* The store's digest of N-1 differs from N's header prev_digest: LS_ELINEAGE. */
Test(seed_paths, handoff_prev_digest_mismatch_is_lineage)
{
    handoff_t h;
    handoff_init(&h);
    ls_store_meta_t bad = h.m;
    bad.digest_generation = h.m.generation - 1;
    gen_digest(h.e.db, h.m.generation - 1, bad.digest);
    cr_assert_eq(handoff(&h, &bad), 0, "the true digest of %llu passes: %s",
                 (unsigned long long) (h.m.generation - 1), h.err);
    bad.digest[3] ^= 0x40;
    int rc = handoff(&h, &bad);
    cr_assert_eq(rc, LS_ELINEAGE, "%s (%s)", ls_err_name(rc), h.err);
    LS_H_ASSERT_HAS(h.err, h.logs);
    LS_H_ASSERT_HAS(h.err, "prev_digest differs");
    env_free(&h.e);
}

/* A closed generation cut short: its trailer is gone. */
Test(seed_paths, handoff_damaged_closed_generation_names_the_file)
{
    handoff_t h;
    handoff_init(&h);
    cr_assert_eq(truncate(h.g1, (off_t) (h.x1.size / 2)), 0);
    ls_store_meta_t at1 = h.m;
    at1.generation = 1;
    at1.lsn = h.x1.h.first_lsn;
    cr_assert_neq(handoff(&h, &at1), 0);
    LS_H_ASSERT_HAS(h.err, h.g1);
    LS_H_ASSERT_HAS(h.err, "cannot read its header and trailer");
    env_free(&h.e);
}

/* L is generation 1's last record and generation 1 was removed; generation 2 is closed (the
 * current log is a later one): the hand-off moves to 2. When 2 does not start at L + 1 either,
 * nothing holds L: LS_EGAP. */
Test(seed_paths, handoff_removed_generation_next_closed)
{
    handoff_t h;
    handoff_init(&h);
    ls_layout_ends_t x2;
    gen_ends(h.logs, 2, &x2);
    cr_assert_eq(unlink(h.g1), 0);
    ls_store_meta_t at1 = h.m;
    at1.generation = 1;
    at1.lsn = h.x1.t.last_lsn;
    at1.digest_generation = 0;
    int rc = handoff(&h, &at1);
    cr_assert_eq(rc, 0, "%s (%s)", ls_err_name(rc), h.err);
    cr_assert_eq(h.info.generation, 2);
    cr_assert_eq(h.info.last_lsn, h.x1.t.last_lsn);
    cr_assert_arr_eq(h.info.prev_digest, x2.h.prev_digest, LS_DIGEST_SIZE);

    at1.lsn = h.x1.t.last_lsn - 1; /* generation 2 does not follow it */
    rc = handoff(&h, &at1);
    cr_assert_eq(rc, LS_EGAP, "%s (%s)", ls_err_name(rc), h.err);
    LS_H_ASSERT_HAS(h.err, h.logs);
    LS_H_ASSERT_HAS(h.err, "generation 1 ");
    env_free(&h.e);
}

/* No generation closed yet: L is in the current log, generation 1, whose predecessor is none. */
Test(seed_paths, handoff_with_no_generation_closed_yet)
{
    env_t e;
    env_init(&e, "seedpaths");
    ls_db_options_t o = db_opts(64u << 20);
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(e.db, &o, &db), 0, "%s", ls_db_open_error());
    cr_assert_eq(commit_range(db, 0, 10, 3, 100), 0);
    cr_assert_eq(ls_db_close(db), 0);
    char store[PATHSZ], logs[PATHSZ], err[1024] = "";
    snprintf(store, sizeof(store), "%s/store", e.db);
    snprintf(logs, sizeof(logs), "%s/logs", e.db);
    ls_store_meta_t m;
    store_meta(store, &m);
    cr_assert_eq(m.generation, 1);
    cr_assert_gt(m.lsn, 0);
    ls_seed_info_t info;
    cr_assert_eq(ls__seed_handoff(logs, "E00", &m, &info, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(info.generation, 1);
    cr_assert_eq(info.epoch, 1);
    cr_assert_eq(info.last_lsn, m.lsn);
    static const uint8_t zero[LS_DIGEST_SIZE];
    cr_assert_arr_eq(info.prev_digest, zero, LS_DIGEST_SIZE, "no generation before 1");
    cr_assert_arr_eq(info.dbid, m.dbid, LS_DBID_LEN);
    env_free(&e);
}

/* A database with no commit yet: the hand-off is the current log, generation 1; while that log
 * is shorter than a header (being created, or cut), it is retried as a roll in progress, then
 * LS_EGAP names logs/ and generation 1. */
Test(seed_paths, handoff_open_log_without_a_header_is_a_gap)
{
    env_t e;
    env_init(&e, "seedpaths");
    ls_db_options_t o = db_opts(0);
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(e.db, &o, &db), 0, "%s", ls_db_open_error());
    cr_assert_eq(ls_db_close(db), 0);
    char store[PATHSZ], logs[PATHSZ], cur[PATHSZ + 16], err[1024] = "";
    snprintf(store, sizeof(store), "%s/store", e.db);
    snprintf(logs, sizeof(logs), "%s/logs", e.db);
    ls_store_meta_t m;
    if (ls_store_peek_meta(store, &m, NULL, 0) != 0) memset(&m, 0, sizeof(m));
    cr_assert_eq(m.lsn, 0, "nothing committed");
    ls_seed_info_t info;
    cr_assert_eq(ls__seed_handoff(logs, "E00", &m, &info, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(info.generation, 1);
    snprintf(cur, sizeof(cur), "%s/E00.log", logs);
    cr_assert_eq(truncate(cur, 10), 0);
    int rc = ls__seed_handoff(logs, "E00", &m, &info, err, sizeof(err));
    cr_assert_eq(rc, LS_EGAP, "%s (%s)", ls_err_name(rc), err);
    LS_H_ASSERT_HAS(err, logs);
    LS_H_ASSERT_HAS(err, "generation 1 holding the snapshot's last lsn 0");
    env_free(&e);
}

/* ---- install ------------------------------------------------------------------------------- */

static ls_seed_info_t some_info(void)
{
    ls_seed_info_t i = {.total_bytes = 8192, .last_lsn = 10, .generation = 2, .epoch = 1};
    memset(i.dbid, 0xab, LS_DBID_LEN);
    return i;
}

Test(seed_paths, install_refuses_bad_announcements_and_options)
{
    env_t e;
    env_init(&e, "seedpaths");
    ls_seed_install_options_t o = {.copy_dir = e.copy};
    ls_seed_install_t *in = NULL;
    char err[1024] = "";
    ls_seed_info_t i = some_info();

    cr_assert_eq(ls_seed_install_begin(NULL, &i, &in, err, sizeof(err)), LS_EINVAL);
    ls_seed_install_options_t none = {0};
    cr_assert_eq(ls_seed_install_begin(&none, &i, &in, err, sizeof(err)), LS_EINVAL);
    LS_H_ASSERT_HAS(err, "copy directory");

    ls_seed_info_t bad = i;
    bad.generation = 0; /* data (lsn 10) without a generation */
    cr_assert_eq(ls_seed_install_begin(&o, &bad, &in, err, sizeof(err)), LS_EINVAL);
    LS_H_ASSERT_HAS(err, e.copy);
    LS_H_ASSERT_HAS(err, "malformed");
    bad = i;
    bad.total_bytes = 0;
    cr_assert_eq(ls_seed_install_begin(&o, &bad, &in, err, sizeof(err)), LS_EINVAL);

    uint8_t other[LS_DBID_LEN];
    memset(other, 0xcd, sizeof(other));
    o.dbid = other;
    cr_assert_eq(ls_seed_install_begin(&o, &i, &in, err, sizeof(err)), LS_EDBID);
    LS_H_ASSERT_HAS(err, "another database");
    o.dbid = i.dbid;

    o.max_bytes = 4096;
    cr_assert_eq(ls_seed_install_begin(&o, &i, &in, err, sizeof(err)), LS_ETOOBIG);
    LS_H_ASSERT_HAS(err, e.copy);
    LS_H_ASSERT_HAS(err, "8192 bytes announced, more than the 4096 allowed");
    o.max_bytes = 0;

    bad = i;
    bad.total_bytes = 1ull << 51;
    cr_assert_eq(ls_seed_install_begin(&o, &bad, &in, err, sizeof(err)), LS_ETOOBIG);
    cr_assert_null(in);
    char p[PATHSZ];
    snprintf(p, sizeof(p), "%s.seed-new", e.copy);
    cr_assert(access(p, F_OK) != 0, "nothing created for a refused seed");
    env_free(&e);
}

/* A copy with generation files in logs/ (and no store) holds data; a seed under way is busy. */
Test(seed_paths, install_refuses_copy_with_logs_and_a_second_seed)
{
    env_t e;
    env_init(&e, "seedpaths");
    char p[PATHSZ], what[128] = "";
    snprintf(p, sizeof(p), "%s/logs", e.copy);
    cr_assert_eq(ls_mkdir_p(p), 0);
    cr_assert_not(ls_seed_copy_holds_data(e.copy, what, sizeof(what)), "empty logs/: no data");
    snprintf(p, sizeof(p), "%s/logs/E00-1-1.log", e.copy);
    cr_assert_eq(ls_h_write_file(p, "generation", 10), 0);
    cr_assert(ls_seed_copy_holds_data(e.copy, what, sizeof(what)));
    cr_assert_str_eq(what, "generation files in logs/");

    ls_seed_install_options_t o = {.copy_dir = e.copy};
    ls_seed_install_t *in = NULL, *in2 = NULL;
    char err[1024] = "";
    ls_seed_info_t i = some_info();
    cr_assert_eq(ls_seed_install_begin(&o, &i, &in, err, sizeof(err)), LS_EEXIST);
    LS_H_ASSERT_HAS(err, e.copy);
    LS_H_ASSERT_HAS(err, "generation files in logs/");
    LS_H_ASSERT_HAS(err, "--delete-existing");

    o.delete_existing = true;
    cr_assert_eq(ls_seed_install_begin(&o, &i, &in, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ls_seed_install_begin(&o, &i, &in2, err, sizeof(err)), LS_EBUSY);
    cr_assert_null(in2);
    snprintf(p, sizeof(p), "%s.seed-new", e.copy);
    LS_H_ASSERT_HAS(err, p);
    LS_H_ASSERT_HAS(err, "under way or was interrupted");
    ls_seed_install_free(in);
    cr_assert(access(p, F_OK) != 0, "the unfinished new copy is removed");
    snprintf(p, sizeof(p), "%s/logs/E00-1-1.log", e.copy);
    cr_assert(access(p, F_OK) == 0, "the old copy's file is kept");
    env_free(&e);
}

/* The copy's parent is a file: <copy>.seed-new cannot be created. */
Test(seed_paths, install_new_copy_cannot_be_created)
{
    env_t e;
    env_init(&e, "seedpaths");
    char parent[PATHSZ], copy[PATHSZ + 8];
    snprintf(parent, sizeof(parent), "%s/copies", e.base);
    cr_assert_eq(ls_h_write_file(parent, "file", 4), 0);
    snprintf(copy, sizeof(copy), "%s/c1", parent);
    ls_seed_install_options_t o = {.copy_dir = copy};
    ls_seed_install_t *in = NULL;
    char err[1024] = "";
    ls_seed_info_t i = some_info();
    int rc = ls_seed_install_begin(&o, &i, &in, err, sizeof(err));
    cr_assert_neq(rc, 0);
    cr_assert_null(in);
    LS_H_ASSERT_HAS(err, copy);
    LS_H_ASSERT_HAS(err, "cannot create");
    env_free(&e);
}

/* A stream whose meta names another lsn than announced: LS_ECORRUPT naming the new store; the
 * old copy stands. */
Test(seed_paths, install_meta_not_naming_the_announced_lsn)
{
    env_t e;
    env_init(&e, "seedpaths");
    active_db(&e, 20);
    seed_ok(&e, CHUNK, NULL);
    char err[1024] = "";
    char old[65], now[65];
    tree_hash(e.copy, old);

    ls_seed_snapshot_options_t so = {.db_dir = e.db};
    ls_seed_snapshot_t *s = NULL;
    cr_assert_eq(ls_seed_snapshot_new(&so, &s, err, sizeof(err)), 0, "%s", err);
    ls_seed_info_t info = *ls_seed_snapshot_info(s);
    info.last_lsn += 5;
    ls_seed_install_options_t io = {.copy_dir = e.copy, .delete_existing = true};
    ls_seed_install_t *in = NULL;
    cr_assert_eq(ls_seed_install_begin(&io, &info, &in, err, sizeof(err)), 0, "%s", err);
    uint8_t buf[CHUNK], dg[LS_DIGEST_SIZE];
    for (;;) {
        uint64_t off;
        size_t n;
        cr_assert_eq(ls_seed_snapshot_read(s, buf, sizeof(buf), &off, &n), 0);
        if (n == 0) break;
        cr_assert_eq(ls_seed_install_data(in, off, buf, n, err, sizeof(err)), 0, "%s", err);
    }
    cr_assert_eq(ls_seed_snapshot_digest(s, dg), 0);
    int rc = ls_seed_install_end(in, dg, err, sizeof(err));
    cr_assert_eq(rc, LS_ECORRUPT, "%s (%s)", ls_err_name(rc), err);
    char p[PATHSZ];
    snprintf(p, sizeof(p), "%s.seed-new/store", e.copy);
    LS_H_ASSERT_HAS(err, p);
    LS_H_ASSERT_HAS(err, "meta names lsn");
    cr_assert_eq(ls_seed_install_commit(in, err, sizeof(err)), LS_ESTATE, "sticky");
    ls_seed_install_free(in);
    ls_seed_snapshot_free(s);
    tree_hash(e.copy, now);
    cr_assert_str_eq(old, now, "the old copy is untouched");
    assert_no_leftovers(e.copy);
    env_free(&e);
}

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
