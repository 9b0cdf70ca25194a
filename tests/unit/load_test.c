/* `logship load`: argument errors, the workload it writes, and how its values compress. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <logship/db.h>

#include "harness.h"

/* Runs `logship load ARGS...`; returns the exit status, stderr in *err (malloc'd). */
static int load(char **err, char **out, const char *a1, const char *a2, const char *a3,
                const char *a4)
{
    char *argv[] = {(char *) ls_h_bin("logship"),
                    "load",
                    (char *) a1,
                    (char *) a2,
                    (char *) a3,
                    (char *) a4,
                    NULL};
    return ls_h_run(argv, out, err, 60000);
}

static void expect_usage_error(const char *needle, const char *a1, const char *a2, const char *a3)
{
    char *err = NULL;
    int st = load(&err, NULL, a1, a2, a3, NULL);
    cr_assert_eq(st, 2, "exit 2 for %s %s %s (stderr: %s)", a1, a2 ? a2 : "", a3 ? a3 : "", err);
    cr_assert(ls_h_contains(err, needle), "stderr names '%s': %s", needle, err);
    cr_assert(ls_h_contains(err, "usage: logship load"), "%s", err);
    free(err);
}

Test(load, bad_arguments_are_clear_errors)
{
    expect_usage_error("missing DIR", NULL, NULL, NULL);
    expect_usage_error("unknown option '--frobnicate'", "/tmp/x", "--frobnicate", NULL);
    expect_usage_error("--transactions: 'ten' is not a valid number", "/tmp/x", "--transactions",
                       "ten");
    expect_usage_error("--threads must be 1..1024 (got 0)", "/tmp/x", "--threads", "0");
    expect_usage_error("--seed needs a value", "/tmp/x", "--seed", NULL);
    expect_usage_error("--value-size: '-5' is not a valid number", "/tmp/x", "--value-size", "-5");
    expect_usage_error("--rate: '3x' is not a valid number", "/tmp/x", "--rate", "3x");
    expect_usage_error("--target-size must be 4096..67108864 bytes (got 100)", "/tmp/x",
                       "--target-size", "100");
    expect_usage_error("--sync: 'remote' is not a commit level", "/tmp/x", "--sync", "remote");
    expect_usage_error("--sync-copies and --sync-timeout need --sync", "/tmp/x", "--sync-copies",
                       "2");
    expect_usage_error("--sync-copies must be 1..8", "/tmp/x", "--sync-copies", "9");
}

/* No daemon publishes copies' positions: the first batch waits out the timeout, is acknowledged,
 * and the run goes on degraded, saying so (WARN on stderr, the report's sync line). */
Test(load, sync_without_a_copy_degrades_after_the_timeout_and_says_so, .timeout = 60)
{
    char *dir = ls_h_tmpdir("load-sync"), *err = NULL, *out = NULL;
    char *argv[] = {(char *) ls_h_bin("logship"),
                    "load",
                    dir,
                    "--transactions",
                    "100",
                    "--sync",
                    "remote_applied",
                    "--sync-timeout",
                    "50",
                    NULL};
    cr_assert_eq(ls_h_run(argv, &out, &err, 60000), 0, "%s", err);
    cr_assert(ls_h_contains(err, "synchronous commit degraded: lsn"), "%s", err);
    cr_assert(ls_h_contains(out, "transactions:       100"), "%s", out);
    /* the batches queued behind the first when it timed out waited too (released with it) */
    cr_assert(ls_h_contains(out, "sync:               remote_applied, 1 copy, timeout 50 ms: "),
              "%s", out);
    cr_assert(ls_h_contains(out, " batches waited, 1 timed out, 1 switches, degraded at the end"),
              "%s", out);
    free(out);
    free(err);
    ls_h_rmtree_free(dir);
}

Test(load, target_size_sets_the_generation_size, .timeout = 60)
{
    char *dir = ls_h_tmpdir("load-ts"), *err = NULL, cmd[1200], *out = NULL;
    char *argv[] = {(char *) ls_h_bin("logship"),
                    "load",
                    dir,
                    "--transactions",
                    "400",
                    "--target-size",
                    "65536",
                    NULL};
    cr_assert_eq(ls_h_run(argv, NULL, &err, 60000), 0, "%s", err);
    free(err);
    /* Every closed generation is at most the target plus one transaction (4 records of ~260 B). */
    snprintf(cmd, sizeof(cmd),
             "n=0; for f in %s/logs/E00-*.log; do s=$(stat -c %%s $f); n=$((n+1)); "
             "[ $s -le 67584 ] || { echo big $f $s; exit 1; }; done; echo $n",
             dir);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 10000), 0, "%s", out);
    cr_assert_geq(atoi(out), 5, "several generations of 64 KiB: %s", out);
    free(out);
    ls_h_rmtree_free(dir);
}

Test(load, writes_the_workload_it_reports, .timeout = 60)
{
    char *dir = ls_h_tmpdir("load");
    char db[600];
    snprintf(db, sizeof(db), "%s/db", dir);
    char *out = NULL, *err = NULL;
    char *argv[] = {(char *) ls_h_bin("logship"),
                    "load",
                    db,
                    "--transactions",
                    "300",
                    "--records-per-txn",
                    "3",
                    "--threads",
                    "3",
                    "--key-space",
                    "50",
                    NULL};
    int st = ls_h_run(argv, &out, &err, 60000);
    cr_assert_eq(st, 0, "stderr: %s", err);
    cr_assert(ls_h_contains(out, "transactions:       300"), "%s", out);
    cr_assert(ls_h_contains(out, "records:            900"), "%s", out);
    cr_assert(ls_h_contains(out, "fsync batches:"), "%s", out);
    cr_assert(ls_h_contains(out, "commits/s:"), "%s", out);
    ls_db_t *h;
    ls_db_options_t o = {.no_create = true, .no_idle_roll = true};
    cr_assert_eq(ls_db_open(db, &o, &h), 0, "%s", ls_db_open_error());
    ls_db_stats_t s;
    ls_db_stats(h, &s);
    cr_assert_eq(s.last_txid, 300);
    cr_assert_eq(s.last_lsn, 1200);
    void *v;
    size_t len;
    int found = 0;
    for (unsigned k = 0; k < 50; k++) {
        char key[32];
        snprintf(key, sizeof(key), "k%012u", k);
        if (ls_db_get(h, key, 13, &v, &len) == 0) {
            cr_assert_eq(len, 200, "default value size");
            found++;
            free(v);
        }
    }
    cr_assert_gt(found, 40, "keys drawn from the key space");
    cr_assert_eq(ls_db_close(h), 0);
    free(out);
    free(err);
    ls_h_rmtree_free(dir);
}

/* zstd -1 ratio of the closed generations a default run writes. */
static double ratio_of_run(const char *extra_flag, const char *extra_val)
{
    char *dir = ls_h_tmpdir("load");
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "%s load %s/db --transactions 2000 --threads 8 %s %s >/dev/null && "
             "cat %s/db/logs/E00-* | wc -c && cat %s/db/logs/E00-* | zstd -1 -c | wc -c",
             ls_h_bin("logship"), dir, extra_flag, extra_val, dir, dir);
    char *out = NULL, *err = NULL;
    cr_assert_eq(ls_h_sh(cmd, &out, &err, 60000), 0, "%s", err);
    double raw = 0, packed = 0;
    cr_assert_eq(sscanf(out, "%lf %lf", &raw, &packed), 2, "%s", out);
    cr_assert_gt(packed, 0);
    free(out);
    free(err);
    ls_h_rmtree_free(dir);
    return raw / packed;
}

Test(load, logs_compress_about_3x_with_zstd_1, .timeout = 60)
{
    double r = ratio_of_run("", "");
    cr_assert(r >= 2.5 && r <= 3.8, "zstd -1 ratio %.2f outside 2.5-3.8", r);
    double lo = ratio_of_run("--compressibility", "2");
    double hi = ratio_of_run("--compressibility", "5");
    cr_assert_lt(lo, r, "--compressibility 2 compresses less (%.2f vs %.2f)", lo, r);
    cr_assert_gt(hi, r, "--compressibility 5 compresses more (%.2f vs %.2f)", hi, r);
}

Test(load, rate_paces_the_run)
{
    char *dir = ls_h_tmpdir("load");
    char db[600];
    snprintf(db, sizeof(db), "%s/db", dir);
    char *out = NULL, *err = NULL;
    char *argv[] = {(char *) ls_h_bin("logship"),
                    "load",
                    db,
                    "--transactions",
                    "30",
                    "--rate",
                    "100",
                    "--threads",
                    "2",
                    NULL};
    cr_assert_eq(ls_h_run(argv, &out, &err, 60000), 0, "%s", err);
    const char *e = strstr(out, "elapsed:");
    cr_assert_not_null(e, "%s", out);
    double secs = 0;
    cr_assert_eq(sscanf(e, "elapsed: %lf", &secs), 1);
    cr_assert_geq(secs, 0.25, "30 transactions at 100/s take about 0.3 s, took %.3f", secs);
    cr_assert_lt(secs, 5.0);
    free(out);
    free(err);
    ls_h_rmtree_free(dir);
}

/* `logship load DB --transactions 120 --threads 3 --ack-log ACK`, asserting success. */
static void load_acked(const char *db, const char *ack)
{
    char *err = NULL;
    char *argv[] = {(char *) ls_h_bin("logship"),
                    "load",
                    (char *) db,
                    "--transactions",
                    "120",
                    "--threads",
                    "3",
                    "--ack-log",
                    (char *) ack,
                    NULL};
    cr_assert_eq(ls_h_run(argv, NULL, &err, 60000), 0, "%s", err);
    free(err);
}

/* tools/ack-check.sh STORE ACK: exit status, stdout in *out. */
static int ack_check(const char *db, const char *ack, char **out)
{
    char store[700];
    snprintf(store, sizeof(store), "%s/store", db);
    char *argv[] = {"/bin/sh", LS_SOURCE_DIR "/tools/ack-check.sh", store, (char *) ack, NULL};
    return ls_h_run(argv, out, NULL, 60000);
}

/* --ack-log: one id per acknowledged commit, "<run>-<n>", unique across runs against the same
 * database (the run counter key), each with its marker txn/<id> in the store as mdb_dump shows
 * it (tools/ack-check.sh); the checker notices an id without its marker. */
Test(load, ack_log_ids_have_markers_by_mdb_dump, .timeout = 60)
{
    char *dir = ls_h_tmpdir("load-ack"), ack[600], db[600], cmd[2000], *out = NULL;
    snprintf(ack, sizeof(ack), "%s/acked", dir);
    snprintf(db, sizeof(db), "%s/db", dir);
    load_acked(db, ack);
    load_acked(db, ack); /* a restart against the same database */

    size_t len;
    char *log = (char *) ls_h_read_file(ack, &len);
    cr_assert_not_null(log);
    int lines = 0, run1 = 0, run2 = 0;
    for (char *save = NULL, *l = strtok_r(log, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        unsigned long long run, n;
        char end;
        cr_assert_eq(sscanf(l, "%llu-%llu%c", &run, &n, &end), 2, "line '%s' is <run>-<n>", l);
        cr_assert(n >= 1 && n <= 120, "line '%s'", l);
        run1 += run == 1, run2 += run == 2;
        lines++;
    }
    free(log);
    cr_assert_eq(lines, 240, "one line per commit");
    cr_assert_eq(run1, 120, "the first run is run 1");
    cr_assert_eq(run2, 120, "the restart is run 2");

    cr_assert_eq(ack_check(db, ack, &out), 0, "%s", out);
    cr_assert(ls_h_contains(out, "240 acknowledged ids, every marker present (240 markers"), "%s",
              out);
    free(out);

    /* The checker notices: an id the store has no marker for, and an id written twice. */
    snprintf(cmd, sizeof(cmd), "head -n 1 %s >> %s && echo 3-1 >> %s", ack, ack, ack);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 10000), 0);
    cr_assert_eq(ack_check(db, ack, &out), 1, "%s", out);
    cr_assert(ls_h_contains(out, "acknowledged id 3-1 (line 242"), "%s", out);
    cr_assert(ls_h_contains(out, "appears more than once"), "%s", out);
    cr_assert(ls_h_contains(out, "1 of 242 acknowledged ids missing from the store, 1 repeated"),
              "%s", out);
    free(out);
    ls_h_rmtree_free(dir);
}

/* `logship load DB --transactions 40 --records-per-txn 25 --threads 1 [--pregenerate]`: its
 * stdout (malloc'd). */
static char *load_one_thread(const char *db, bool pregenerate)
{
    char *out = NULL, *err = NULL;
    char *argv[] = {(char *) ls_h_bin("logship"),
                    "load",
                    (char *) db,
                    "--transactions",
                    "40",
                    "--records-per-txn",
                    "25",
                    "--threads",
                    "1",
                    pregenerate ? "--pregenerate" : NULL,
                    NULL};
    cr_assert_eq(ls_h_run(argv, &out, &err, 60000), 0, "%s", err);
    free(err);
    return out;
}

/* --pregenerate draws the same records (in the same order) before the clock: with one thread the
 * store holds the same keys and values, byte for byte as mdb_dump shows them; both runs report
 * the time until the close returned. */
Test(load, pregenerate_writes_the_same_workload, .timeout = 60)
{
    char *dir = ls_h_tmpdir("load-pre"), a[600], b[600], cmd[2000];
    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/b", dir);
    char *oa = load_one_thread(a, false), *ob = load_one_thread(b, true);
    cr_assert(ls_h_contains(oa, "records drawn meanwhile"), "%s", oa);
    cr_assert(ls_h_contains(ob, "records drawn before"), "%s", ob);
    double secs = 0;
    const char *u = strstr(ob, "until closed:");
    cr_assert(u && sscanf(u, "until closed: %lf", &secs) == 1 && secs > 0, "%s", ob);
    free(oa);
    free(ob);
    snprintf(cmd, sizeof(cmd),
             "mdb_dump -p -s data %s/store > %s/a.dump && mdb_dump -p -s data %s/store > %s/b.dump"
             " && test $(grep -c . %s/a.dump) -gt 1000 && cmp %s/a.dump %s/b.dump",
             a, dir, b, dir, dir, dir, dir);
    char *out = NULL, *err = NULL;
    cr_assert_eq(ls_h_sh(cmd, &out, &err, 30000), 0, "%s %s", out, err);
    free(out);
    free(err);
    ls_h_rmtree_free(dir);
}
