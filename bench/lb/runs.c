/*
 * The measurements. Every one works on the same master set of generations (made once by
 * `logship load`), so logship and the baselines move the same bytes: throughput figures ship
 * generations 2..tput_gens (generation 1 warms each daemon pair up: connection, store open).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "lb.h"

#define MB 1e6

static uint64_t bytes_of(const lb_ctx_t *c, uint64_t first, uint64_t last)
{
    uint64_t b = 0;
    char path[LB_PATH + 300];
    for (uint64_t g = first; g <= last; g++) {
        snprintf(path, sizeof(path), "%s/%s", c->set, c->gens[g - 1]);
        b += lb_file_size(path);
    }
    return b;
}

/* Seconds a run of gens generations may take before it counts as stalled (loaded machine: ~2 MB/s
 * of 1 MiB generations, plus a minute). */
static double deadline(uint64_t gens)
{
    return 60 + 0.5 * (double) gens;
}

/* A directory of hard links to generations first..last (for rsync). */
static void subset(const lb_ctx_t *c, const char *dir, uint64_t first, uint64_t last)
{
    char from[LB_PATH + 300], to[LB_PATH + 300];
    ls_mkdir_p(dir);
    for (uint64_t g = first; g <= last; g++) {
        snprintf(from, sizeof(from), "%s/%s", c->set, c->gens[g - 1]);
        snprintf(to, sizeof(to), "%s/%s", dir, c->gens[g - 1]);
        if (link(from, to) < 0) perror(to);
    }
}

/* p50, p99, max of (to - from) in ms over generations first..last that have both. */
static void lat(const uint64_t *from, const uint64_t *to, uint64_t first, uint64_t last,
                double out[3])
{
    size_t n = 0;
    double *v = calloc(last - first + 1, sizeof(double));
    for (uint64_t g = first; v && g <= last; g++)
        if (from[g] && to[g]) v[n++] = ((double) to[g] - (double) from[g]) / 1e6;
    out[0] = lb_pct(v, n, 50);
    out[1] = lb_pct(v, n, 99);
    out[2] = lb_max(v, n);
    free(v);
}

void lb_run_raw(lb_ctx_t *c)
{
    double tput[LB_MAXRUNS], p99[LB_MAXRUNS], pick[LB_MAXRUNS];
    char dst[LB_PATH + 32];
    uint64_t n = c->tput_gens - 1, ns = c->steady_gens - 1;
    lb_progress("baseline (a) raw copy: %d x %lu files back to back, then %lu at %.0f/s", c->runs,
                (unsigned long) n, (unsigned long) ns, c->steady_rate);
    for (int r = 0; r < c->runs; r++) {
        lb_raw_t x;
        snprintf(dst, sizeof(dst), "%s/raw", c->tmp);
        lb_rm_rf(dst);
        if (lb_rawcopy(c->set, &c->gens[1], n, dst, 0, &x) == 0)
            tput[r] = (double) x.bytes / MB / x.seconds;
        free(x.lat_ms);
        lb_rm_rf(dst);
        if (lb_rawcopy(c->set, &c->gens[1], ns, dst, c->steady_rate, &x) == 0)
            p99[r] = lb_pct(x.lat_ms, x.n, 99);
        free(x.lat_ms);
        lb_rm_rf(dst);
        /* idle: 3 files, 4 per second, each alone on an idle system; the median of the three */
        if (lb_rawcopy(c->set, &c->gens[1], 3, dst, 4, &x) == 0) pick[r] = lb_median(x.lat_ms, x.n);
        free(x.lat_ms);
        lb_rm_rf(dst);
    }
    char name[96];
    lb_result_add("raw copy (a): files durable", "MB/s", tput, c->runs);
    snprintf(name, sizeof(name), "raw copy (a): per-file p99 @ %.0f/s", c->steady_rate);
    lb_result_add(name, "ms", p99, c->runs);
    lb_result_add("raw copy (a): pick up 1 file (idle)", "ms", pick, c->runs);
}

void lb_run_rsync(lb_ctx_t *c)
{
    lb_rsyncd_t d;
    char dir[LB_PATH + 32], src[LB_PATH + 32];
    snprintf(dir, sizeof(dir), "%s/rsyncd", c->tmp);
    ls_mkdir_p(dir);
    if (lb_rsyncd_start(&d, dir) != 0) {
        lb_skip("rsync baseline (b)", "the rsync daemon did not start (rsync installed?)");
        return;
    }
    uint64_t bytes = bytes_of(c, 2, c->tput_gens);
    lb_progress("baseline (b) rsync daemon on 127.0.0.1:%d: whole dir (%lu files), with and "
                "without --fsync; one new file",
                d.port, (unsigned long) (c->tput_gens - 1));
    snprintf(src, sizeof(src), "%s/rsync-src", c->tmp);
    subset(c, src, 2, c->tput_gens);
    double v[2][LB_MAXRUNS], pick[2][LB_MAXRUNS];
    for (int f = 0; f < 2; f++)
        for (int r = 0; r < c->runs; r++) {
            lb_rm_rf(d.dst);
            ls_mkdir_p(d.dst);
            sync();
            double s = lb_rsync(&d, src, f);
            v[f][r] = s > 0 ? (double) bytes / MB / s : 0;
        }
    /* one new file into an up-to-date destination; each run adds the next generation */
    uint64_t next = c->tput_gens + 1;
    lb_rsync(&d, src, false);
    for (int r = 0; r < c->runs; r++)
        for (int f = 0; f < 2 && next <= c->ngens; f++, next++) {
            subset(c, src, next, next);
            sync();
            pick[f][r] = lb_rsync(&d, src, f) * 1e3;
        }
    lb_rsyncd_stop(&d);
    lb_rm_rf(src);
    lb_rm_rf(dir);
    lb_result_add("rsync daemon (b): whole dir", "MB/s", v[0], c->runs);
    lb_result_add("rsync daemon (b): whole dir --fsync", "MB/s", v[1], c->runs);
    lb_result_add("rsync daemon (b): pick up 1 new file", "ms", pick[0], c->runs);
    lb_result_add("rsync daemon (b): pick up 1 new file --fsync", "ms", pick[1], c->runs);
}

void lb_run_lmdb(lb_ctx_t *c)
{
    double v[LB_MAXRUNS];
    char dir[LB_PATH + 32];
    uint64_t recs = 0, bytes = bytes_of(c, 2, c->tput_gens);
    lb_progress("baseline (c) LMDB apply: %lu generations, 16 per transaction, MDB_NOMETASYNC",
                (unsigned long) (c->tput_gens - 1));
    for (int r = 0; r < c->runs; r++) {
        snprintf(dir, sizeof(dir), "%s/lmdb", c->tmp);
        lb_rm_rf(dir);
        double s = lb_lmdb_apply(c->set, &c->gens[1], c->tput_gens - 1, dir, 16, &recs);
        v[r] = s > 0 ? (double) bytes / MB / s : 0;
        lb_rm_rf(dir);
    }
    lb_result_add("LMDB apply (c): 16 gens/txn, of log", "MB/s", v, c->runs);
    lb_note("LMDB apply (c): %lu PUT/DEL records, %.1f MB of log per run", (unsigned long) recs,
            (double) bytes / MB);
}

void lb_run_logship(lb_ctx_t *c, const char *label, const lb_pair_cfg_t *cfg)
{
    double dur[LB_MAXRUNS], rep[LB_MAXRUNS], ld[3][LB_MAXRUNS], lr[3][LB_MAXRUNS];
    double cpua[LB_MAXRUNS], cpub[LB_MAXRUNS], wire[LB_MAXRUNS];
    double pool[2][LB_MAXRUNS]; /* ready, bare files in the passive's pool at the drop */
    uint64_t T = c->tput_gens, bytes = bytes_of(c, 2, T);
    int ok = 0;
    lb_progress("logship %s: %d runs, backlog of %lu generations (%.0f MB) dropped at once", label,
                c->runs, (unsigned long) (T - 1), (double) bytes / MB);
    for (int r = 0; r < c->runs; r++) {
        lb_pair_t p;
        char dir[LB_PATH + 64];
        static int seq;
        snprintf(dir, sizeof(dir), "%s/pair-%d", c->tmp, seq++);
        if (lb_pair_start(&p, dir, c->bin, c->certs, c->set, cfg) != 0) continue;
        lb_times_t t;
        lb_times_init(&t, T);
        uint64_t w0 = lb_wire_bytes(p.port), w1;
        lb_pair_cpu(&p);
        double a0 = p.cpu_a, b0 = p.cpu_b;
        if (lb_pair_ship(&p, c->set, 2, T, 0, deadline(T), &t) == 0) {
            lb_pair_cpu(&p);
            w1 = lb_wire_bytes(p.port);
            uint64_t dend = 0;
            for (uint64_t g = 2; g <= T; g++)
                if (t.durable_ns[g] > dend) dend = t.durable_ns[g];
            dur[ok] = (double) bytes / MB / ((double) (dend - t.closed_ns[2]) / 1e9);
            rep[ok] = t.replayed_ns[T] ? (double) bytes / MB /
                                             ((double) (t.replayed_ns[T] - t.closed_ns[2]) / 1e9)
                                       : 0; /* replay held back */
            double l[3];
            lat(t.closed_ns, t.durable_ns, 2, T, l);
            for (int k = 0; k < 3; k++)
                ld[k][ok] = l[k];
            lat(t.closed_ns, t.replayed_ns, 2, T, l);
            for (int k = 0; k < 3; k++)
                lr[k][ok] = l[k];
            cpua[ok] = (p.cpu_a - a0) * 1e3 / ((double) bytes / 1048576.0);
            cpub[ok] = (p.cpu_b - b0) * 1e3 / ((double) bytes / 1048576.0);
            wire[ok] = w1 > w0 ? (double) bytes / (double) (w1 - w0) : 0;
            pool[0][ok] = p.pool_ready;
            pool[1][ok] = p.pool_bare;
            ok++;
        }
        lb_times_free(&t);
        lb_pair_stop(&p);
        lb_rm_rf(dir);
    }
    if (!ok) {
        lb_skip(label, "no run completed (daemon logs were in the scratch directory)");
        return;
    }
    char n[96];
    bool plain = !strcmp(label, "plain"), held = cfg->hold_replay;
    snprintf(n, sizeof(n), "logship %s: closed->durable", label);
    lb_result_t *r = lb_result_add(n, "MB/s", dur, ok);
    if (plain)
        lb_result_cmp(r, "raw copy (a): files durable", LB_T_MIN, 0.9, ">=0.9x raw copy");
    else if (!strcmp(label, "tls"))
        lb_result_cmp(r, "raw copy (a): files durable", LB_T_MIN, 0.8, ">=0.8x raw copy");
    else
        lb_result_cmp(r, "raw copy (a): files durable", LB_T_NONE, 0, "");
    snprintf(n, sizeof(n), "logship %s: pool at the drop, ready", label);
    lb_result_add(n, "files", pool[0], ok);
    snprintf(n, sizeof(n), "logship %s: pool at the drop, bare", label);
    lb_result_add(n, "files", pool[1], ok);
    if (held) {
        snprintf(n, sizeof(n), "logship %s: closed->durable p99", label);
        lb_result_add(n, "ms", ld[1], ok);
        snprintf(n, sizeof(n), "logship %s: active CPU per MiB", label);
        lb_result_add(n, "ms", cpua, ok);
        snprintf(n, sizeof(n), "logship %s: passive CPU per MiB", label);
        lb_result_add(n, "ms", cpub, ok);
        return;
    }
    if (plain) {
        snprintf(n, sizeof(n), "logship %s: closed->durable (vs rsync --fsync)", label);
        lb_result_cmp(lb_result_add(n, "MB/s", dur, ok), "rsync daemon (b): whole dir --fsync",
                      LB_T_MIN, 1.5, ">=1.5x rsync --fsync");
        snprintf(n, sizeof(n), "logship %s: closed->durable (vs rsync)", label);
        lb_result_cmp(lb_result_add(n, "MB/s", dur, ok), "rsync daemon (b): whole dir", LB_T_NONE,
                      0, "");
    }
    snprintf(n, sizeof(n), "logship %s: closed->replayed", label);
    lb_result_cmp(lb_result_add(n, "MB/s", rep, ok), "LMDB apply (c): 16 gens/txn, of log",
                  plain ? LB_T_MIN : LB_T_NONE, 1.0, ">=1.0x LMDB apply");
    static const char *K[3] = {"p50", "p99", "max"};
    for (int k = plain ? 0 : 1; k < (plain ? 3 : 2); k++) {
        snprintf(n, sizeof(n), "logship %s: saturated, closed->durable %s", label, K[k]);
        lb_result_add(n, "ms", ld[k], ok);
        snprintf(n, sizeof(n), "logship %s: saturated, closed->replayed %s", label, K[k]);
        lb_result_add(n, "ms", lr[k], ok);
    }
    snprintf(n, sizeof(n), "logship %s: active CPU per MiB", label);
    lb_result_add(n, "ms", cpua, ok);
    snprintf(n, sizeof(n), "logship %s: passive CPU per MiB", label);
    lb_result_add(n, "ms", cpub, ok);
    if (cfg->zstd) {
        snprintf(n, sizeof(n), "logship %s: file bytes / wire bytes", label);
        lb_result_add(n, "x", wire, ok);
    }
}

void lb_run_steady(lb_ctx_t *c)
{
    double ld[3][LB_MAXRUNS], lr[3][LB_MAXRUNS];
    uint64_t S = c->steady_gens;
    int ok = 0;
    lb_progress("logship plain at a steady %.0f generations/s (%.0f MB/s): %d runs of %lu",
                c->steady_rate, c->steady_rate * (double) c->gen_bytes / MB, c->runs,
                (unsigned long) (S - 1));
    for (int r = 0; r < c->runs; r++) {
        lb_pair_t p;
        lb_pair_cfg_t cfg = {0};
        char dir[LB_PATH + 64];
        snprintf(dir, sizeof(dir), "%s/pair-steady-%d", c->tmp, r);
        if (lb_pair_start(&p, dir, c->bin, c->certs, c->set, &cfg) != 0) continue;
        lb_times_free(&c->steady);
        lb_times_init(&c->steady, S);
        if (lb_pair_ship(&p, c->set, 2, S, c->steady_rate,
                         deadline(S) + (double) S / c->steady_rate, &c->steady) == 0) {
            double l[3];
            lat(c->steady.closed_ns, c->steady.durable_ns, 2, S, l);
            for (int k = 0; k < 3; k++)
                ld[k][ok] = l[k];
            lat(c->steady.closed_ns, c->steady.replayed_ns, 2, S, l);
            for (int k = 0; k < 3; k++)
                lr[k][ok] = l[k];
            ok++;
        }
        lb_pair_stop(&p);
        lb_rm_rf(dir);
    }
    static const char *K[3] = {"p50", "p99", "max"};
    char n[96], base[96];
    snprintf(base, sizeof(base), "raw copy (a): per-file p99 @ %.0f/s", c->steady_rate);
    for (int k = 0; ok && k < 3; k++) {
        snprintf(n, sizeof(n), "logship plain @ %.0f/s: closed->durable %s", c->steady_rate, K[k]);
        lb_result_t *r = lb_result_add(n, "ms", ld[k], ok);
        if (k == 1) lb_result_cmp(r, base, LB_T_MAX, 1.5, "<=1.5x raw per-file p99");
        snprintf(n, sizeof(n), "logship plain @ %.0f/s: closed->replayed %s", c->steady_rate, K[k]);
        lb_result_add(n, "ms", lr[k], ok);
    }
}

void lb_run_pickup(lb_ctx_t *c)
{
    lb_pair_t p;
    lb_pair_cfg_t cfg = {0};
    char dir[LB_PATH + 64];
    int k = c->runs * 2 > LB_MAXRUNS ? LB_MAXRUNS : c->runs * 2, ok = 0;
    double d[LB_MAXRUNS], rp[LB_MAXRUNS];
    lb_progress("logship plain: pick up one new generation on an idle system, %d times", k);
    snprintf(dir, sizeof(dir), "%s/pair-pickup", c->tmp);
    if (lb_pair_start(&p, dir, c->bin, c->certs, c->set, &cfg) != 0) return;
    /* The link's fsync of the active's logs/ after the generation is durable on the copy, not
     * inside the measured window: the raw copy's pick-up has no sync on its source side (its
     * files are durable already, as the master set's are), and this one is a journal commit
     * running while the copy writes and syncs (bench/README.md, "Pick up one generation"). */
    p.sync_after = true;
    lb_times_t t;
    lb_times_init(&t, (uint64_t) k + 1);
    for (uint64_t g = 2; g <= (uint64_t) k + 1; g++) {
        lb_sleep_ns(300000000); /* idle: the previous one long replayed and synced */
        if (lb_pair_ship(&p, c->set, g, g, 0, 60, &t) != 0) break;
        d[ok] = ((double) t.durable_ns[g] - (double) t.closed_ns[g]) / 1e6;
        rp[ok++] = ((double) t.replayed_ns[g] - (double) t.closed_ns[g]) / 1e6;
    }
    lb_times_free(&t);
    lb_pair_stop(&p);
    lb_rm_rf(dir);
    if (!ok) return;
    lb_result_t *r = lb_result_add("logship plain: pick up 1 gen (idle), ->durable", "ms", d, ok);
    lb_result_cmp(r, "rsync daemon (b): pick up 1 new file", LB_T_MAX, 1.0 / 30,
                  "<=1/30 of rsync: 30x faster");
    r = lb_result_add("logship plain: pick up 1 gen (idle) (vs raw)", "ms", d, ok);
    lb_result_cmp(r, "raw copy (a): pick up 1 file (idle)", LB_T_MAX, 1.3, "<=1.3x raw copy");
    r = lb_result_add("logship plain: pick up 1 gen (vs rsync --fsync)", "ms", d, ok);
    lb_result_cmp(r, "rsync daemon (b): pick up 1 new file --fsync", LB_T_NONE, 0, "");
    lb_result_add("logship plain: pick up 1 gen (idle), ->replayed", "ms", rp, ok);
}

void lb_run_rss(lb_ctx_t *c)
{
    uint64_t B[2] = {c->backlog, c->backlog * 10};
    double hwm[2][2], anon[2][2] = {{0, 0}, {0, 0}};
    for (int i = 0; i < 2; i++) {
        lb_pair_t p;
        lb_pair_cfg_t cfg = {0};
        char dir[LB_PATH + 64];
        if (B[i] + 1 > c->ngens) B[i] = c->ngens - 1;
        lb_progress("peak RSS (VmHWM) with a backlog of %lu generations", (unsigned long) B[i]);
        snprintf(dir, sizeof(dir), "%s/pair-rss-%d", c->tmp, i);
        hwm[i][0] = hwm[i][1] = 0;
        if (lb_pair_start(&p, dir, c->bin, c->certs, c->set, &cfg) != 0) continue;
        lb_times_t t;
        lb_times_init(&t, B[i] + 1);
        if (lb_pair_ship(&p, c->set, 2, B[i] + 1, 0, deadline(B[i]), &t) == 0) {
            hwm[i][0] = (double) lb_vmhwm_kib(p.pid_a) / 1024.0;
            hwm[i][1] = (double) lb_vmhwm_kib(p.pid_b) / 1024.0;
            anon[i][0] = (double) p.anon_a / 1024.0;
            anon[i][1] = (double) p.anon_b / 1024.0;
        }
        lb_times_free(&t);
        lb_pair_stop(&p);
        lb_rm_rf(dir);
    }
    static const char *who[2] = {"active", "passive"};
    char n[96], nb[96];
    for (int w = 0; w < 2; w++) {
        snprintf(nb, sizeof(nb), "peak RSS %s, backlog B=%lu gens", who[w], (unsigned long) B[0]);
        lb_result_cmp(lb_result_add(nb, "MiB", &hwm[0][w], 1), NULL, LB_T_ABS_MAX, 64, "<64 MiB");
        snprintf(n, sizeof(n), "peak RSS %s, backlog 10B=%lu gens", who[w], (unsigned long) B[1]);
        lb_result_cmp(lb_result_add(n, "MiB", &hwm[1][w], 1), NULL, LB_T_ABS_MAX, 64, "<64 MiB");
        snprintf(n, sizeof(n), "peak RSS %s, 10B (vs B: flat)", who[w]);
        lb_result_cmp(lb_result_add(n, "MiB", &hwm[1][w], 1), nb, LB_T_MAX, 1.2,
                      "flat: <=1.2x at 10x the backlog");
        snprintf(nb, sizeof(nb), "peak RssAnon %s (heap), backlog B", who[w]);
        lb_result_add(nb, "MiB", &anon[0][w], 1);
        snprintf(n, sizeof(n), "peak RssAnon %s (heap), 10B (vs B)", who[w]);
        lb_result_cmp(lb_result_add(n, "MiB", &anon[1][w], 1), nb, LB_T_NONE, 0, "");
    }
}

/* WAN runs without and with zstd:1 over the link base describes; results named after what. */
static void wan_runs(lb_ctx_t *c, const char *what, const lb_pair_cfg_t *base)
{
    uint64_t W = c->wan_gens, bytes = bytes_of(c, 2, W);
    int runs = c->quick ? 2 : 3;
    double v[2][LB_MAXRUNS];
    int ok[2] = {0, 0};
    lb_progress("%s: %lu generations (%.0f MB), %d runs without and with zstd:1", what,
                (unsigned long) (W - 1), (double) bytes / MB, runs);
    for (int z = 0; z < 2; z++)
        for (int r = 0; r < runs; r++) {
            lb_pair_t p;
            lb_pair_cfg_t cfg = *base;
            cfg.zstd = z;
            char dir[LB_PATH + 64];
            snprintf(dir, sizeof(dir), "%s/pair-wan-%d-%d", c->tmp, z, r);
            if (lb_pair_start(&p, dir, c->bin, c->certs, c->set, &cfg) != 0) continue;
            lb_times_t t;
            lb_times_init(&t, W);
            if (lb_pair_ship(&p, c->set, 2, W, 0, deadline(W) * 4, &t) == 0) {
                uint64_t dend = 0;
                for (uint64_t g = 2; g <= W; g++)
                    if (t.durable_ns[g] > dend) dend = t.durable_ns[g];
                v[z][ok[z]++] = (double) bytes / MB / ((double) (dend - t.closed_ns[2]) / 1e9);
            }
            lb_times_free(&t);
            lb_pair_stop(&p);
            lb_rm_rf(dir);
        }
    char n0[96], n1[96];
    snprintf(n0, sizeof(n0), "%s: plain, ->durable", what);
    snprintf(n1, sizeof(n1), "%s: zstd:1, ->durable", what);
    if (ok[0]) lb_result_add(n0, "MB/s", v[0], ok[0]);
    if (ok[1])
        lb_result_cmp(lb_result_add(n1, "MB/s", v[1], ok[1]), n0, LB_T_MIN, 2.5,
                      ">=2.5x without zstd");
}

void lb_run_wan(lb_ctx_t *c)
{
    char a[32], b[32], why[256];
    snprintf(a, sizeof(a), "lsb-a-%d", (int) getpid());
    snprintf(b, sizeof(b), "lsb-b-%d", (int) getpid());
    if (lb_wan_up(a, b, 100, 20, why, sizeof(why)) == 0) {
        lb_pair_cfg_t cfg = {.netns_a = a, .netns_b = b, .addr_b = "10.77.0.2"};
        wan_runs(c, "WAN netns 100Mbit/20ms", &cfg);
        lb_wan_down(a, b);
        return;
    }
    lb_skip("WAN case in network namespaces (veth + tc netem 100 Mbit/s, 20 ms RTT)", why);
    lb_note("WAN case measured instead through the harness's user-space link shaper on "
            "loopback (bench/lb/shaper.c: 100 Mbit/s each way, 10 ms one-way delay, "
            "BDP + 256 KiB queue)");
    lb_pair_cfg_t cfg = {.shape_mbit = 100, .shape_rtt_ms = 20};
    wan_runs(c, "WAN shaper 100Mbit/20ms", &cfg);
}
