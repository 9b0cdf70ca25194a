/*
 * Helpers shared by seed_test.c and seed_crash_test.c: active databases built with the real
 * writer, a whole seed (snapshot -> chunks -> install) in one call, store and directory
 * comparisons (ls_store_iterate, mdb_dump, a hash of every file of a tree), running a body in a
 * forked child with LS_FAULTS armed (the parent must not hit a fault point before forking: the
 * variable is read once per process). Static functions: each test program includes this once.
 */
#ifndef LS_SEED_TEST_UTIL_H
#define LS_SEED_TEST_UTIL_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <logship/db.h>

#include "core/core.h"
#include "db_wait.h"
#include "genbuild.h"
#include "harness.h"
#include "seed/seed.h"
#include "store/store.h"

#define UTIL   static __attribute__((unused))
#define PATHSZ 2048
#define ENVSZ  1024 /* paths of env_t: room for suffixes in PATHSZ */

/* Scratch layout of one test: <base>/db (active) and <base>/copies/c1 (the passive copy). */
typedef struct {
    char *base;       /* the test's directory */
    char db[ENVSZ];   /* the active database */
    char copy[ENVSZ]; /* the copy */
} env_t;

UTIL void env_init(env_t *e, const char *tag)
{
    e->base = ls_h_tmpdir(tag);
    snprintf(e->db, sizeof(e->db), "%s/db", e->base);
    snprintf(e->copy, sizeof(e->copy), "%s/copies/c1", e->base);
}

UTIL void env_free(env_t *e)
{
    ls_h_rmtree_free(e->base);
}

UTIL ls_db_options_t db_opts(uint64_t target_size)
{
    return (ls_db_options_t){.no_idle_roll = true,
                             .checkpoint_ms = 3600000,
                             .target_size = target_size,
                             .map_size = 256u << 20};
}

/* Commits transaction i: nput puts of "k<i % keys>-<j>" (vlen bytes) and, every fifth, a delete
 * of an older key. Returns ls_txn_commit's code. */
UTIL int commit_n(ls_db_t *db, int i, int nput, size_t vlen, int keys)
{
    ls_txn_t *t;
    if (ls_txn_begin(db, &t) != 0) return LS_EIO;
    char *val = malloc(vlen + 32);
    uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t) (i + 1);
    for (int j = 0; j < nput; j++) {
        char key[48];
        int n = snprintf(key, sizeof(key), "k%05d-%d", i % keys, j);
        for (size_t b = 0; b < vlen; b += 8) { /* xorshift: values that do not repeat */
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            memcpy(val + b, &x, LS_MIN(8, vlen - b));
        }
        int tn = snprintf(val, vlen + 32, "v%d-%d", i, j);
        ls_txn_put(t, key, (size_t) n, val, LS_MAX(vlen, (size_t) tn));
    }
    if (i % 5 == 4) {
        char key[48];
        int n = snprintf(key, sizeof(key), "k%05d-0", (i / 2) % keys);
        ls_txn_del(t, key, (size_t) n);
    }
    free(val);
    return ls_txn_commit(t);
}

/* Commits transactions from..to-1 (nput puts of vlen bytes each). */
UTIL int commit_range(ls_db_t *db, int from, int to, int nput, size_t vlen)
{
    for (int i = from; i < to; i++) {
        int rc = commit_n(db, i, nput, vlen, 1000);
        if (rc) return rc;
    }
    return 0;
}

/* A whole seed from db into the install options' copy: snapshot, stream in chunks of chunk
 * bytes (corrupting byte `corrupt` of the stream when it is not -1), end, commit. *info (may be
 * NULL) receives the snapshot's figures. Returns the first failing call's code, err set. */
/* seed_run's snapshots stream from the compacting copy (ls_seed_snapshot_options_t.direct). */
static __attribute__((unused)) bool seed_direct;
/* seed_run's stream check is XXH3-128 (ls_seed_snapshot_options_t.xxh; the install follows the
 * snapshot's info), else SHA-256 as with a peer without LS_FEAT_SEEDXXH. */
static __attribute__((unused)) bool seed_xxh;

UTIL int seed_run(const char *db, const ls_seed_install_options_t *io, size_t chunk,
                  long long corrupt, ls_seed_info_t *info, char *err, size_t errlen)
{
    ls_seed_snapshot_options_t so = {.db_dir = db, .direct = seed_direct, .xxh = seed_xxh};
    ls_seed_snapshot_t *s = NULL;
    ls_seed_install_t *in = NULL;
    int rc = ls_seed_snapshot_new(&so, &s, err, errlen);
    if (rc) return rc;
    if (info) *info = *ls_seed_snapshot_info(s);
    rc = ls_seed_install_begin(io, ls_seed_snapshot_info(s), &in, err, errlen);
    uint8_t *buf = malloc(chunk);
    for (;;) {
        uint64_t off;
        size_t n;
        if (rc || (rc = ls_seed_snapshot_read(s, buf, chunk, &off, &n)) || n == 0) break;
        if (corrupt >= 0 && (uint64_t) corrupt >= off && (uint64_t) corrupt < off + n)
            buf[corrupt - (long long) off] ^= 0x01;
        rc = ls_seed_install_data(in, off, buf, n, err, errlen);
    }
    free(buf);
    uint8_t digest[LS_DIGEST_SIZE];
    if (rc == 0) rc = ls_seed_snapshot_digest(s, digest);
    if (rc == 0) rc = ls_seed_install_end(in, digest, err, errlen);
    if (rc == 0) rc = ls_seed_install_commit(in, err, errlen);
    ls_seed_install_free(in);
    ls_seed_snapshot_free(s);
    return rc;
}

/* A whole seed of e's database into its copy, a new directory (seed_run in chunks of chunk
 * bytes, nothing corrupted), asserted to succeed; *info (may be NULL): the snapshot's figures. */
UTIL void seed_ok(const env_t *e, size_t chunk, ls_seed_info_t *info)
{
    ls_seed_install_options_t io = {.copy_dir = e->copy};
    char err[1024] = "";
    int rc = seed_run(e->db, &io, chunk, -1, info, err, sizeof(err));
    cr_assert_eq(rc, 0, "seed into %s: %s (%s)", e->copy, ls_err_name(rc), err);
}

/* The meta record of the store in dir. */
UTIL void store_meta(const char *dir, ls_store_meta_t *m)
{
    char err[512] = "";
    cr_assert_eq(ls_store_peek_meta(dir, m, err, sizeof(err)), 0, "%s", err);
}

/* SHA-256 (hex) of `mdb_dump -s data dir` after its header (the map size differs between
 * environments), computed by sha256sum so a large store never sits in memory. */
UTIL char *mdb_dump_digest(const char *dir)
{
    char cmd[PATHSZ + 128], *out = NULL, *errs = NULL;
    snprintf(cmd, sizeof(cmd),
             "set -o pipefail; mdb_dump -s data '%s' | sed '1,/^HEADER=END$/d' | sha256sum", dir);
    char *argv[] = {"/bin/bash", "-c", cmd, NULL};
    int st = ls_h_run(argv, &out, &errs, 120000);
    cr_assert_eq(st, 0, "mdb_dump -s data %s: %s", dir, errs ? errs : "");
    free(errs);
    cr_assert_geq(strlen(out), 64, "sha256sum output: %s", out);
    out[64] = '\0';
    return out;
}

/* SHA-256 (hex) of every key and value of the store in dir, in key order (ls_store_iterate);
 * *entries (may be NULL) the number of keys. */
static int hash_cb(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    void **a = ctx;
    uint64_t lens[2] = {kl, vl};
    ls_sha256_update(a[0], lens, sizeof(lens));
    ls_sha256_update(a[0], k, kl);
    ls_sha256_update(a[0], v, vl);
    (*(uint64_t *) a[1])++;
    return 0;
}

UTIL void store_digest(const char *dir, char out[2 * LS_DIGEST_SIZE + 1], uint64_t *entries)
{
    ls_store_t *s = NULL;
    char err[512] = "";
    ls_store_options_t o = {0};
    int rc = ls_store_open(dir, &o, &s, err, sizeof(err));
    cr_assert_eq(rc, 0, "open store %s: %s", dir, err);
    uint64_t n = 0;
    void *a[2] = {ls_sha256_new(), &n};
    cr_assert_eq(ls_store_iterate(s, hash_cb, a), 0);
    ls_store_close(s);
    uint8_t d[LS_DIGEST_SIZE];
    ls_sha256_final(a[0], d);
    ls_sha256_free(a[0]);
    ls_hex(d, LS_DIGEST_SIZE, out);
    if (entries) *entries = n;
}

/* Digest of every file under dir (relative names and contents, in name order), as hex. */
static void tree_hash_into(ls_sha256_t *h, const char *dir, const char *rel)
{
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        const char *nm = ents[i]->d_name;
        char path[PATHSZ], r[PATHSZ];
        if (strcmp(nm, ".") && strcmp(nm, "..")) {
            snprintf(path, sizeof(path), "%s/%s", dir, nm);
            snprintf(r, sizeof(r), "%s/%s", rel, nm);
            struct stat st;
            lstat(path, &st);
            ls_sha256_update(h, r, strlen(r) + 1);
            if (S_ISDIR(st.st_mode)) {
                tree_hash_into(h, path, r);
            } else {
                size_t len = 0;
                uint8_t *b = ls_h_read_file(path, &len);
                ls_sha256_update(h, b ? b : (const uint8_t *) "", len);
                free(b);
            }
        }
        free(ents[i]);
    }
    if (n >= 0) free(ents);
}

UTIL void tree_hash(const char *dir, char out[2 * LS_DIGEST_SIZE + 1])
{
    ls_sha256_t *h = ls_sha256_new();
    tree_hash_into(h, dir, "");
    uint8_t d[LS_DIGEST_SIZE];
    ls_sha256_final(h, d);
    ls_sha256_free(h);
    ls_hex(d, LS_DIGEST_SIZE, out);
}

/* Digest of closed generation gen of epoch 1 in db/logs (its trailer's, checked by a scan). */
UTIL void gen_digest(const char *db, uint64_t gen, uint8_t out[LS_DIGEST_SIZE])
{
    char name[LS_GEN_NAME_MAX], path[PATHSZ];
    ls_gen_name(name, sizeof(name), "E00", 1, gen);
    snprintf(path, sizeof(path), "%s/logs/%s", db, name);
    ls_gen_expect_t ex = {0};
    ls_gen_info_t gi;
    ls_gen_verdict_t v;
    cr_assert_eq(ls_gen_scan_file(path, &ex, NULL, NULL, &gi, &v), 0, "%s: %s", path, v.msg);
    memcpy(out, gi.trailer.digest, LS_DIGEST_SIZE);
}

/* No seed leftovers beside or inside the copy. */
UTIL void assert_no_leftovers(const char *copy)
{
    char p[PATHSZ + 32];
    const char *sfx[] = {".seed-new", ".seed-old", "/SEED-READY"};
    for (size_t i = 0; i < LS_ARRAY_SIZE(sfx); i++) {
        snprintf(p, sizeof(p), "%s%s", copy, sfx[i]);
        cr_assert(access(p, F_OK) != 0, "%s left behind", p);
    }
}

/* The active's data and the copy's must be equal, key by key and (with dump) by mdb_dump. */
UTIL void assert_copy_equals_active_by(const char *db, const char *copy, bool dump)
{
    char a[PATHSZ], c[PATHSZ], ha[65], hc[65];
    snprintf(a, sizeof(a), "%s/store", db);
    snprintf(c, sizeof(c), "%s/store", copy);
    uint64_t na, nc;
    store_digest(a, ha, &na);
    store_digest(c, hc, &nc);
    cr_assert_gt(na, 0, "the active holds data");
    cr_assert_eq(na, nc, "as many keys in the copy (%llu) as in the active (%llu)",
                 (unsigned long long) nc, (unsigned long long) na);
    cr_assert_str_eq(ha, hc, "copy data equals the active's, key by key");
    if (!dump) return;
    char *da = mdb_dump_digest(a), *dc = mdb_dump_digest(c);
    cr_assert_str_eq(da, dc, "mdb_dump -s data outputs are equal");
    free(da);
    free(dc);
}

UTIL void assert_copy_equals_active(const char *db, const char *copy)
{
    assert_copy_equals_active_by(db, copy, true);
}

#endif
