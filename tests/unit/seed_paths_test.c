/* seed: the error paths and edge cases of the snapshot (issue 11): refused options, a database
 * without a store, a blocked or over-long scratch directory, crashed leftovers, a store not
 * applied without logs, a local copy that shrinks, a full or read-only file system. Each asserts
 * the error code, that the message names the thing and the place, and that nothing durable is
 * lost. Helpers in seed_paths_test_util.h; the hand-off and the install in
 * seed_paths_handoff_test.c, the swap, recovery and the worker in seed_paths_swap_test.c. */
#include "seed_paths_test_util.h"

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
