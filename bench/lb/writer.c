/*
 * The writer row: `logship load --pregenerate` into a fresh database (the application's commit
 * path through db.h: group commit into the log, acknowledged once durable, applied to the store
 * behind), MB/s of log over the tool's own "until closed" time: from the first commit (every
 * record drawn before, as the LMDB apply's records are parsed before its clock) to
 * ls_db_close()'s return (the store has caught up with every commit and been checkpointed),
 * against the LMDB apply of the same records measured in the same round: the closed generations
 * that run wrote, applied by lb_lmdb_apply (16 per write transaction, MDB_NOMETASYNC, one sync at
 * the end) into a fresh environment. A second figure (diagnostic) keeps the whole process, start
 * to exit, generation included.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lb.h"

#define MB 1e6

/* Runs `logship load --pregenerate` into dir; returns seconds (process start to exit) or -1,
 * and in *closed its own "until closed" seconds (first commit to the close's return). */
static double load(const lb_ctx_t *c, const char *dir, const char *txns, const char *log,
                   double *closed)
{
    char exe[LB_PATH + 16];
    snprintf(exe, sizeof(exe), "%s/logship", c->bin);
    char *argv[] = {
        exe,   "load",      (char *) dir, "--transactions", (char *) txns, "--records-per-txn",
        "400", "--threads", "16",         "--seed",         "42",          "--pregenerate",
        NULL};
    uint64_t t0 = lb_mono_ns();
    if (lb_run(argv, log) != 0) return -1;
    double secs = (double) (lb_mono_ns() - t0) / 1e9;
    *closed = -1;
    FILE *f = fopen(log, "r"); /* the rounds append to it: the last such line is this run's */
    char line[256];
    double v;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "until closed: %lf", &v) == 1) *closed = v;
    if (f) fclose(f);
    return *closed > 0 ? secs : -1;
}

/* Bytes of the closed generations in logs (names from lb_list_gens). */
static uint64_t gens_bytes(const char *logs, char **names, size_t n)
{
    uint64_t b = 0;
    char path[LB_PATH + 300];
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", logs, names[i]);
        b += lb_file_size(path);
    }
    return b;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

void lb_run_writer(lb_ctx_t *c)
{
    double w[LB_MAXRUNS], a[LB_MAXRUNS], wp[LB_MAXRUNS];
    int ok = 0;
    uint64_t bytes = 0, recs = 0;
    /* 400 records of ~245 bytes: ~10 transactions per 1 MiB generation */
    const char *txns = c->quick ? "320" : "1000";
    lb_progress("writer: logship load --transactions %s --records-per-txn 400 --threads 16 "
                "--pregenerate, fresh database; then the LMDB apply of the same records",
                txns);
    for (int r = 0; r < c->runs; r++) {
        char dir[LB_PATH + 32], logs[LB_PATH + 40], lmdb[LB_PATH + 32], log[LB_PATH + 32];
        snprintf(dir, sizeof(dir), "%s/writer", c->tmp);
        snprintf(logs, sizeof(logs), "%s/logs", dir);
        snprintf(lmdb, sizeof(lmdb), "%s/writer-lmdb", c->tmp);
        snprintf(log, sizeof(log), "%s/writer.txt", c->tmp);
        lb_rm_rf(dir);
        lb_rm_rf(lmdb);
        sync();
        double closed = 0, secs = load(c, dir, txns, log, &closed);
        char **names = NULL;
        size_t n = 0;
        if (secs <= 0 || lb_list_gens(logs, &names, &n) != 0 || n == 0) {
            fprintf(stderr, "logship-bench: writer run %d failed (see %s)\n", r + 1, log);
            free_names(names, n);
            continue;
        }
        bytes = gens_bytes(logs, names, n);
        sync();
        double as = lb_lmdb_apply(logs, names, n, lmdb, 16, &recs);
        free_names(names, n);
        lb_rm_rf(dir);
        lb_rm_rf(lmdb);
        if (as <= 0) continue;
        w[ok] = (double) bytes / MB / closed;
        wp[ok] = (double) bytes / MB / secs;
        a[ok++] = (double) bytes / MB / as;
    }
    if (!ok) {
        lb_skip("writer", "every `logship load` run failed");
        return;
    }
    lb_result_add("LMDB apply of the writer's records, of log", "MB/s", a, ok);
    lb_result_t *r = lb_result_add("writer: first commit to closed, of log", "MB/s", w, ok);
    lb_result_cmp(r, "LMDB apply of the writer's records, of log", LB_T_MIN, 0.7,
                  "issue 14: >= 0.7x the LMDB apply");
    r = lb_result_add("writer: whole process, generator included, of log", "MB/s", wp, ok);
    lb_result_cmp(r, "LMDB apply of the writer's records, of log", LB_T_NONE, 0, "");
    lb_note("writer: %.1f MB of log, %lu PUT/DEL records per run; MB/s from the first commit "
            "(records drawn before: --pregenerate) to the close's return (the store caught up "
            "and checkpointed); the whole process (start to exit, records drawn) as a diagnostic",
            (double) bytes / MB, (unsigned long) recs);
}
