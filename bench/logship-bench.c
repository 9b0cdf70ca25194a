/*
 * logship-bench: how fast logship ships and replays on this machine, how close that is to the
 * machine's limit, and how it compares with what an operator would use instead (issue 8;
 * bench/README.md says how every figure is measured).
 *
 *   logship-bench [--quick] [--out DIR] [--keep] [--runs N] [--only PART]
 *
 * It generates one workload with `logship load` (daemons stopped; values that compress about 3x
 * with zstd -1) into a master set of generations, then measures on those same bytes: the three
 * baselines (raw copy, rsync daemon, LMDB apply), the real daemons on loopback (plain, zstd,
 * TLS, TLS + zstd) end to end, latency at a steady rate and at saturation, picking up one
 * generation, peak RSS at backlog B and 10 x B, and a WAN case in network namespaces. Prints a
 * table, writes DIR/results.json and DIR/chart.png. Every process it starts it stops by pid;
 * its scratch directory (under $TMPDIR or /tmp) is removed at the end unless --keep.
 * A measurement, not a test: the targets are reported, never asserted.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "lb/lb.h"

static lb_ctx_t ctx;
static bool keep;
static const char
    *only; /* --only PART[,PART...]: those parts alone (the workload is made anyway) */
static const char *compare; /* --compare OLD.json: each figure's change against that run */
static const char *configs; /* --configs KEY[,KEY...]: the logship part's configurations */

/* Whether part is in the comma-separated list. */
static bool listed(const char *list, const char *part)
{
    size_t n = strlen(part);
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t) (comma - p) : strlen(p);
        if (len == n && !strncmp(p, part, n)) return true;
        if (!comma) break;
        p = comma + 1;
    }
    return false;
}

/* --only takes one part or a comma-separated list ("raw,pickup": a part with its baseline). */
static bool want(const char *part)
{
    return !only || listed(only, part);
}
static char wan_a[32], wan_b[32];
static lb_pg_t pg; /* PostgreSQL for the commit-latency cells */

static void cleanup(void)
{
    lb_stop_all();
    lb_pg_stop_all();
    if (wan_a[0]) lb_wan_down(wan_a, wan_b);
    if (!ctx.tmp[0]) return;
    if (keep)
        printf("kept: %s\n", ctx.tmp);
    else
        lb_rm_rf(ctx.tmp);
    ctx.tmp[0] = 0;
}

static void on_signal(int sig)
{
    (void) sig;
    exit(130); /* runs cleanup(): stops the daemons by pid, removes the scratch directory */
}

static int usage(const char *msg)
{
    if (msg) fprintf(stderr, "logship-bench: %s\n", msg);
    fprintf(stderr,
            "usage: logship-bench [--quick] [--out DIR] [--keep] [--runs N] [--only PART[,PART]] "
            "[--compare OLD.json] [--configs KEY[,KEY]]\n"
            "  PART: raw rsync lmdb writer logship steady pickup rss seed wan commit blocklag\n"
            "  KEY (the logship part's configurations; default all but tls-held): plain zstd tls\n"
            "       tls+zstd held tls-held\n");
    return 2;
}

static void sizes(lb_ctx_t *c)
{
    /* quick: under a minute; default: a few minutes (see bench/README.md) */
    if (!c->runs) c->runs = c->quick ? 3 : 5;
    c->tput_gens = c->quick ? 33 : 161;
    c->steady_gens = c->quick ? 31 : 121;
    c->steady_rate = 20;
    c->backlog = c->quick ? 6 : 20;
    c->wan_gens = c->quick ? 9 : 33;
}

/* Writes the master set: `logship load` into a fresh database, daemons stopped. */
static int generate(lb_ctx_t *c)
{
    uint64_t want = c->backlog * 10 + 2;
    if (want < c->tput_gens + (uint64_t) c->runs * 2 + 2)
        want = c->tput_gens + (uint64_t) c->runs * 2 + 2;
    char db[LB_PATH + 16], exe[LB_PATH + 16], txns[32], log[LB_PATH + 16];
    snprintf(db, sizeof(db), "%s/load/db1", c->tmp);
    snprintf(exe, sizeof(exe), "%s/logship", c->bin);
    snprintf(log, sizeof(log), "%s/load.txt", c->tmp);
    /* 400 records of ~245 bytes per transaction: 10 transactions per 1 MiB generation */
    snprintf(txns, sizeof(txns), "%lu", (unsigned long) (want + 1) * 10);
    char *argv[] = {exe,   "load",      db,   "--transactions", txns, "--records-per-txn",
                    "400", "--threads", "16", "--seed",         "42", NULL};
    printf("== workload: logship load %s --transactions %s --records-per-txn 400 --threads 16 "
           "(values compress ~3x with zstd -1)\n",
           db, txns);
    fflush(stdout);
    uint64_t t0 = lb_mono_ns();
    if (lb_run(argv, log) != 0) {
        fprintf(stderr, "logship-bench: logship load failed (see %s)\n", log);
        return -1;
    }
    double secs = (double) (lb_mono_ns() - t0) / 1e9;
    lb_fmt(c->set, sizeof(c->set), "%s/logs", db);
    if (lb_list_gens(c->set, &c->gens, &c->ngens) || c->ngens < 8) return -1;
    uint64_t total = 0;
    char path[LB_PATH + 300];
    for (size_t i = 0; i < c->ngens; i++) {
        snprintf(path, sizeof(path), "%s/%s", c->set, c->gens[i]);
        total += lb_file_size(path);
    }
    c->gen_bytes = total / c->ngens;
    double mbps = (double) total / 1e6 / secs;
    lb_result_add("workload: logship load (writer, for reference)", "MB/s", &mbps, 1);
    lb_note("workload: %zu generations, %.1f MB, %.1f s with logship load (average %.0f bytes "
            "per generation)",
            c->ngens, (double) total / 1e6, secs, (double) c->gen_bytes);
    if (c->tput_gens > c->ngens - 2) c->tput_gens = c->ngens - 2;
    if (c->steady_gens > c->ngens) c->steady_gens = c->ngens;
    if (c->wan_gens > c->ngens) c->wan_gens = c->ngens;
    sync();
    return 0;
}

static int find_bin(lb_ctx_t *c)
{
    char self[LB_PATH];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) return -1;
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (slash) *slash = 0;
    snprintf(c->bin, sizeof(c->bin), "%s", self);
    char exe[LB_PATH + 16];
    snprintf(exe, sizeof(exe), "%s/logshipd", c->bin);
    if (access(exe, X_OK) != 0) {
        fprintf(stderr, "logship-bench: %s not found (build logshipd first)\n", exe);
        return -1;
    }
    return 0;
}

static bool has_seed(const lb_ctx_t *c)
{
    char cmd[LB_PATH + 64];
    snprintf(cmd, sizeof(cmd), "'%s/logship' --help 2>&1 | grep -qE '^ +seed '", c->bin);
    return lb_sh("%s", cmd) == 0;
}

int main(int argc, char **argv)
{
    ls_log_set_handler(ls_log_stderr, NULL); /* the library prints nothing by itself */
    const char *out = "build/bench";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            ctx.quick = true;
        else if (!strcmp(argv[i], "--keep"))
            keep = true;
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--compare") && i + 1 < argc)
            compare = argv[++i];
        else if (!strcmp(argv[i], "--configs") && i + 1 < argc)
            configs = argv[++i];
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            ctx.runs = atoi(argv[++i]);
            if (ctx.runs < 1 || ctx.runs > LB_MAXRUNS / 2) return usage("--runs must be 1..8");
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            return usage(NULL), 0;
        } else
            return usage("unknown argument");
    }
    sizes(&ctx);
    char *old_json = compare ? lb_compare_load(compare) : NULL;
    if (compare && !old_json) return 1;
    if (find_bin(&ctx) || ls_mkdir_p(out)) return 1;
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(ctx.tmp, sizeof(ctx.tmp), "%s/logship-bench-XXXXXX", base);
    if (!mkdtemp(ctx.tmp)) {
        fprintf(stderr, "logship-bench: mkdtemp %s: %s\n", ctx.tmp, strerror(errno));
        return 1;
    }
    atexit(cleanup);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    uint64_t t0 = lb_mono_ns();
    printf("logship-bench%s: scratch %s, %d runs per figure\n", ctx.quick ? " --quick" : "",
           ctx.tmp, ctx.runs);
    lb_fmt(ctx.certs, sizeof(ctx.certs), "%s/certs", ctx.tmp);
    char exe[LB_PATH + 16];
    snprintf(exe, sizeof(exe), "%s/logship", ctx.bin);
    char *certs[] = {exe, "certs", ctx.certs, "--ca", "--node", "node-a", "--node", "node-b", NULL};
    if (lb_run(certs, NULL) != 0 || generate(&ctx) != 0) {
        fprintf(stderr, "logship-bench: setting up the workload failed\n");
        return 1;
    }
    /* extra: run only when --configs names it */
    static const struct {
        const char *key, *label;
        bool extra;
        lb_pair_cfg_t cfg;
    } CONFIGS[] = {{"plain", "plain", false, {0}},
                   {"zstd", "zstd", false, {.zstd = 1}},
                   {"tls", "tls", false, {.tls = true}},
                   {"tls+zstd", "tls+zstd", false, {.tls = true, .zstd = 1}},
                   {"held", "plain, replay held back", false, {.hold_replay = true}},
                   {"tls-held", "tls, replay held back", true, {.tls = true, .hold_replay = true}}};
    /* Rounds: each round measures every baseline and configuration once, so slow drift of this
     * shared machine (noise of +-20-40 %, reference/machine-limits.md) hits all of them alike;
     * the figures are the medians over the rounds. */
    int runs = ctx.runs;
    ctx.runs = 1;
    for (int r = 0; r < runs; r++) {
        printf("== round %d of %d\n", r + 1, runs);
        if (want("raw")) lb_run_raw(&ctx);
        if (want("rsync")) lb_run_rsync(&ctx);
        if (want("lmdb")) lb_run_lmdb(&ctx);
        if (want("writer")) lb_run_writer(&ctx);
        for (size_t i = 0; want("logship") && i < sizeof(CONFIGS) / sizeof(CONFIGS[0]); i++)
            if (configs ? listed(configs, CONFIGS[i].key) : !CONFIGS[i].extra)
                lb_run_logship(&ctx, CONFIGS[i].label, &CONFIGS[i].cfg);
        if (want("steady")) lb_run_steady(&ctx);
        if (want("pickup")) lb_run_pickup(&ctx);
    }
    ctx.runs = runs;
    if (want("rss")) lb_run_rss(&ctx);
    if (!has_seed(&ctx)) lb_skip("seeding", "seeding not built yet (no `logship seed`)");
    if (want("seed") && has_seed(&ctx)) lb_run_seed(&ctx); /* its rounds alternated inside */
    snprintf(wan_a, sizeof(wan_a), "lsb-a-%d", (int) getpid());
    snprintf(wan_b, sizeof(wan_b), "lsb-b-%d", (int) getpid());
    if (want("wan")) lb_run_wan(&ctx);
    wan_a[0] = 0;
    if (want("commit")) lb_run_commit(&ctx, &pg);
    if (want("blocklag")) lb_run_blocklag(&ctx);
    char title[160];
    snprintf(title, sizeof(title), "logship-bench%s, %d runs, %.0f s", ctx.quick ? " --quick" : "",
             ctx.runs, (double) (lb_mono_ns() - t0) / 1e9);
    lb_note("total time %.0f s", (double) (lb_mono_ns() - t0) / 1e9);
    int rc = lb_report(out, &ctx.steady, title);
    lb_commit_table();
    if (old_json && lb_compare(compare, old_json) != 0) rc = 1;
    free(old_json);
    lb_times_free(&ctx.steady);
    for (size_t i = 0; i < ctx.ngens; i++)
        free(ctx.gens[i]);
    free(ctx.gens);
    return rc ? 1 : 0;
}
