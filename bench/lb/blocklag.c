/*
 * Block mode's lag (issue 15): how long after a commit batch is durable on the active it is
 * durable on the copy, at about 20 MB/s of log on loopback. A pair of real daemons starts empty;
 * `logship load` writes db1 on node-a at a paced rate (LB_BL_TPS transactions of LB_BL_ROWS puts
 * of LB_BL_VAL bytes: about 20 MB/s of log, the writer's default 1 MiB generations). The daemon
 * measures each batch: the writer's publish time (the control page's channel, time_ns, right
 * after the batch's fdatasync) to the BLOCK_ACK's arrival on the active (after the copy's
 * fdatasync of its shadow). The measured window is the steady stream: one `logship load` runs
 * LB_BL_EDGE_MS longer at each end than the window, and status is read at the window's two ends;
 * the percentiles are those of every batch between the reads, from the difference of the daemon's
 * lag histogram (status "block_lag_hist", counts since its start, buckets 1/16 of a power of two
 * wide, each read as its upper bound). Neither the writer's start or end nor the warm-up is in
 * it, and all of the window's batches are (until 2026-12-06 the rows were status's own p50/p99,
 * of the last 1024 batches of a run that included the writer's start: about its last second).
 * Baseline: none here
 * (PostgreSQL's write -> flush lag of a streaming standby would be the one; pg.c does not measure
 * it yet).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb.h"

#define LB_BL_TPS     2000 /* transactions per second, all writer threads */
#define LB_BL_ROWS    10   /* puts per transaction */
#define LB_BL_VAL     1000 /* value bytes */
#define LB_BL_EDGE_MS 500  /* the load runs this much before and after the measured window */

/* The bytes of the closed generations in logs (and their number into *count, when given). */
static uint64_t log_bytes(const char *logs, uint64_t *count)
{
    uint64_t sum = 0;
    char **names = NULL;
    size_t n = 0;
    if (lb_list_gens(logs, &names, &n) != 0) return 0;
    for (size_t i = 0; i < n; i++) {
        char f[2 * LB_PATH];
        snprintf(f, sizeof(f), "%s/%s", logs, names[i]);
        sum += lb_file_size(f);
        free(names[i]);
    }
    free(names);
    if (count) *count = n;
    return sum;
}

/* Warm-up done: the copy is in block mode and has measured a batch. */
static bool streaming(const char *sock, lb_status_t *st)
{
    uint64_t end = lb_mono_ns() + 15000000000ull;
    while (lb_mono_ns() < end) {
        if (lb_status(sock, st) == 0 && st->block && st->block_lag_samples > 0) return true;
        lb_sleep_ns(20000000);
    }
    return false;
}

/* One measured window (the top of this file): the load runs (its transactions are the window's
 * ntx and an edge at each end), status is read LB_BL_EDGE_MS after its start and ntx
 * transactions later, with the closed generations of logs at both reads. */
typedef struct {
    lb_status_t st0, st1, end; /* at the window's ends, and once the load exited */
    uint64_t g0, g1, b_end;    /* closed generations at each read; closed bytes at the end */
    double secs;               /* between the reads */
} window_t;

static int window(char *const load[], const char *log, const char *sock, const char *logs, int ntx,
                  window_t *w)
{
    pid_t pid = lb_spawn(load, log);
    if (pid < 0) return -1;
    uint64_t start = lb_mono_ns(), edge = LB_BL_EDGE_MS * 1000000ull;
    uint64_t until = start + edge + (uint64_t) ntx * 1000000000ull / LB_BL_TPS;
    lb_sleep_ns(edge);
    int rc = lb_status(sock, &w->st0);
    (void) log_bytes(logs, &w->g0);
    uint64_t t0 = lb_mono_ns();
    if (until > t0) lb_sleep_ns(until - t0);
    if (rc == 0) rc = lb_status(sock, &w->st1);
    w->secs = (double) (lb_mono_ns() - t0) / 1e9;
    (void) log_bytes(logs, &w->g1);
    int exit = lb_wait(pid);
    if (rc == 0) rc = lb_status(sock, &w->end);
    w->b_end = log_bytes(logs, NULL);
    return rc ? rc : exit;
}

/* One configuration: target (generation size, bytes; 0: the writer's default). With a target,
 * the measured run is cut to what fits in one generation with the warm-up (at most 3 s: 6000
 * transactions are 62 MB of log), so that nothing rolls while it runs. */
static void blocklag(lb_ctx_t *c, const char *label, uint64_t target, bool hold_replay)
{
    double p50[LB_MAXRUNS], p99[LB_MAXRUNS], mx[LB_MAXRUNS], mbs[LB_MAXRUNS], share[LB_MAXRUNS],
        batches[LB_MAXRUNS], per[LB_MAXRUNS], rolls[LB_MAXRUNS];
    int ok = 0, secs = c->quick ? 4 : 8;
    int ntx = LB_BL_TPS * secs;
    int edge = LB_BL_TPS * LB_BL_EDGE_MS / 1000; /* transactions at each end */
    if (target) {
        uint64_t fit = (target - target / 16) / (LB_BL_ROWS * (LB_BL_VAL + 64)) - LB_BL_TPS / 4 -
                       2 * (uint64_t) edge;
        if (fit < (uint64_t) ntx) ntx = (int) fit;
    }
    int runs = c->runs > 3 ? 3 : c->runs; /* a pair and a paced load each: enough for a p99 */
    lb_progress("block mode%s: commit durable -> durable on the copy at %d tx/s of %d x %d B "
                "(~%.0f MB/s of log), %d runs of %d transactions",
                label, LB_BL_TPS, LB_BL_ROWS, LB_BL_VAL,
                (double) LB_BL_TPS * LB_BL_ROWS * (LB_BL_VAL + 40) / 1e6, runs, ntx);
    for (int r = 0; r < runs; r++) {
        lb_pair_t p;
        lb_pair_cfg_t cfg = {.empty = true, .hold_replay = hold_replay};
        char dir[LB_PATH + 64], db[LB_PATH + 96], log[LB_PATH + 96], exe[LB_PATH + 16];
        char tx[32], rate[32], rows[16], val[16], tsz[32];
        snprintf(dir, sizeof(dir), "%s/pair-blocklag-%d", c->tmp, r);
        if (lb_pair_start(&p, dir, c->bin, c->certs, c->set, &cfg) != 0) continue;
        snprintf(db, sizeof(db), "%s/node-a/db1", dir);
        snprintf(log, sizeof(log), "%s/load.log", dir);
        snprintf(exe, sizeof(exe), "%s/logship", c->bin);
        snprintf(tx, sizeof(tx), "%d", ntx);
        snprintf(rate, sizeof(rate), "%d", LB_BL_TPS);
        snprintf(rows, sizeof(rows), "%d", LB_BL_ROWS);
        snprintf(val, sizeof(val), "%d", LB_BL_VAL);
        snprintf(tsz, sizeof(tsz), "%llu", (unsigned long long) target);
        char *load[] = {exe,  "load",
                        db,   "--transactions",
                        tx,   "--rate",
                        rate, "--threads",
                        "4",  "--records-per-txn",
                        rows, "--value-size",
                        val,  target ? "--target-size" : NULL,
                        tsz,  NULL};
        /* Warm-up: the database made and the copy streaming, so that the measured run's batches
         * do not include the first catch-up of the open generation from byte 0. */
        char logs[LB_PATH + 128];
        snprintf(logs, sizeof(logs), "%s/logs", db);
        lb_status_t st0;
        window_t w;
        snprintf(tx, sizeof(tx), "%d", LB_BL_TPS / 4);
        int rc = lb_run(load, log);
        if (rc == 0 && !streaming(p.sock_a, &st0)) rc = -1;
        snprintf(tx, sizeof(tx), "%d", ntx + 2 * edge);
        if (rc == 0) rc = window(load, log, p.sock_a, logs, ntx, &w);
        if (rc == 0 && lb_lag_between(&w.st0, &w.st1, 50, NULL) >= 0) {
            const lb_status_t *a = &w.st0, *b = &w.st1;
            uint64_t nb = 0;
            p50[ok] = lb_lag_between(a, b, 50, &nb);
            p99[ok] = lb_lag_between(a, b, 99, NULL);
            mx[ok] = lb_lag_between(a, b, 100, NULL);
            batches[ok] = (double) nb;
            /* the log written, as the bytes shipped (BLOCK and GEN_DATA) in the window: the open
             * generation's bytes are not in logs/ */
            uint64_t shipped = b->sent_bytes + b->block_bytes - a->sent_bytes - a->block_bytes;
            mbs[ok] = w.secs > 0 ? (double) shipped / 1e6 / w.secs : 0;
            rolls[ok] = (double) (w.g1 - w.g0);
            uint64_t sent = w.end.sent_bytes + w.end.block_bytes;
            share[ok] = sent ? 100.0 * (double) w.end.block_bytes / (double) sent : 0;
            /* over the pair's life, once the load exited: every closed byte crossed once is 1;
             * the open generation's streamed bytes add a little (not in logs/ yet) */
            per[ok] = w.b_end ? (double) sent / (double) w.b_end : 0;
            ok++;
        } else {
            fprintf(stderr, "logship-bench: block lag run %d: %s (see %s)\n", r + 1,
                    rc ? "logship load failed" : "no block-mode lag measured", dir);
        }
        lb_pair_stop(&p);
        lb_rm_rf(dir);
    }
    char n[96];
    if (!ok) {
        snprintf(n, sizeof(n), "block mode lag%s", label);
        lb_skip(n, "no run measured it");
        return;
    }
    snprintf(n, sizeof(n), "block mode%s: commit durable -> copy durable p99", label);
    lb_result_t *r = lb_result_add(n, "ms", p99, ok);
    lb_result_cmp(r, "", LB_T_ABS_MAX, 2.0, "<= 2 ms on loopback at ~20 MB/s (issue 15)");
    snprintf(n, sizeof(n), "block mode%s: commit durable -> copy durable p50", label);
    lb_result_add(n, "ms", p50, ok);
    snprintf(n, sizeof(n), "block mode%s: commit durable -> copy durable max", label);
    lb_result_add(n, "ms", mx, ok);
    snprintf(n, sizeof(n), "block mode%s: log rate written", label);
    lb_result_add(n, "MB/s", mbs, ok);
    snprintf(n, sizeof(n), "block mode%s: BLOCK share of bytes sent", label);
    lb_result_add(n, "%", share, ok);
    snprintf(n, sizeof(n), "block mode%s: bytes sent (BLOCK + GEN_DATA) per closed log byte",
             label);
    lb_result_add(n, "x", per, ok);
    snprintf(n, sizeof(n), "block mode%s: batches in the measured window", label);
    lb_result_add(n, "", batches, ok);
    snprintf(n, sizeof(n), "block mode%s: rolls in the measured window", label);
    lb_result_add(n, "", rolls, ok);
}

void lb_run_blocklag(lb_ctx_t *c)
{
    blocklag(c, "", 0, false);
    /* The same with the copy's replay held back: each closed generation's replay commits a store
     * transaction whose fdatasync (about 9 ms here) shares the disk with the shadow's, so this
     * row tells the roll's hand-off from the replay's I/O (bench/README.md, 2026-12-06). */
    blocklag(c, " (replay held)", 0, true);
    /* The same with 64 MiB generations: no roll while it runs, so no closed generation to wait
     * for (the stream of the next generation waits until the closed one is durable); and with
     * the copy's replay held back (no early apply, no store syncs on the copy's disk). */
    blocklag(c, " (no roll)", 64u << 20, false);
    blocklag(c, " (no roll, replay held)", 64u << 20, true);
}
