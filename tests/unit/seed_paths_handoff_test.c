/* seed: the error paths of the hand-off and the install (issue 11): logs/ that disagree with the
 * store (another database, a generation not holding L, a damaged closed generation, a removed
 * one, none closed yet, an open log without a header), install options and announcements that
 * are refused, a copy that cannot be created, a meta not naming the announced LSN. Each asserts
 * the error code, that the message names the thing and the place, and that nothing durable is
 * lost. Helpers in seed_paths_test_util.h. */
#include "seed_paths_test_util.h"

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
