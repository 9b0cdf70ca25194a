/* Kill -9 of the whole active host, then activation of the copy (issue 15, "How it is checked";
 * docs/BLOCKMODE.md "Host kills"). Each kill is one cycle on a fresh pair of real daemons on
 * loopback: node-a active, node-b its copy; a first `logship load` creates db1 and the copy
 * catches up; then `logship load --ack-log F` (with `--sync remote_durable`, waiting forever, or
 * without --sync: block mode alone) commits; once node-a shows the copy in block mode and F holds
 * an acknowledged id, a random delay; then the load and node-a's daemon are killed with SIGKILL
 * back to back (the application and the daemon of one host); `logship activate db1` on node-b;
 * every id in F is looked up as its marker key `txn/<id>` in node-b's store (mdb_dump, and
 * tools/ack-check.sh must agree).
 *   - remote_durable, remote_applied: activation lossless (no --max-loss) and no acknowledged id
 *     missing;
 *   - block mode alone: activation with --max-loss as needed; the missing ids are counted per kill
 *     and must be the newest acknowledged ones (the copy holds a prefix of the active's history).
 * LS_HOSTKILL_KILLS=N kills per mode (default 3: the short run of `make test`; `make hostkill
 * KILLS=N`); LS_HOSTKILL_SEED=S fixes the seed (printed); kill k uses the seed S+k for its delay
 * and its workload, so `LS_HOSTKILL_SEED=S+k LS_HOSTKILL_KILLS=1` replays its delay.
 * LS_HOSTKILL_GEN_SIZE=B sets the load's --target-size (default 32768, a roll about every 100
 * transactions). One line per kill and a summary per mode on stderr; LS_HOSTKILL_OUT=FILE appends
 * them to FILE as well. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "daemons.h"
#include "harness.h"

static ls_h_pair_t pair;
static bool pair_live;

static void fini(void)
{
    if (pair_live) ls_h_pair_fini(&pair);
    pair_live = false;
}

TestSuite(hostkill, .fini = fini, .timeout = 0);

enum { THREADS = 4, MAX_DELAY_MS = 1000, MAX_MISSING = 4096 };

typedef struct {
    const char *name; /* "remote_durable", "remote_applied" or "block" */
    const char *sync; /* load arguments for the commit level */
    bool lossless;    /* activation without --max-loss; nothing acknowledged may be missing */
} hk_mode_t;

/* One kill's outcome. */
typedef struct {
    unsigned seed;
    int delay_ms;
    char mode_at_kill[16]; /* node-a's view of the copy just before the kill */
    double block_lsn;      /* the copy's durable LSN as node-a last heard it */
    char sync[16];         /* db1's synchronous commit state on node-a then ("" none) */
    int acked;             /* distinct ids in the ack log */
    int missing;           /* of them, without a marker in node-b's store */
    int tail_span;         /* the missing ids lie within the last tail_span lines of the log */
    int lost_generations;  /* from the activation's report */
    bool lossless;         /* the activation reported lossless */
    bool refused;          /* remote_durable: refused without --max-loss (see one_kill) */
    char refusal[1024];    /* its message */
    bool shadow;           /* it closed a block-mode shadow of the open generation (else the copy
                              held none: the kill came after a roll, before the new generation's
                              first blocks) */
    char report[1024];     /* the activation's message */
} kill_t;

static void out_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out_line(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
    const char *path = getenv("LS_HOSTKILL_OUT");
    FILE *f = path && *path ? fopen(path, "a") : NULL;
    if (f) fprintf(f, "%s\n", line), fclose(f);
}

/* splitmix64: consecutive seeds give unrelated delays */
static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Lines of the ack log (ids), in the order they were acknowledged; *n receives their count. */
static char **read_acks(const char *path, int *n)
{
    size_t len = 0;
    char *b = (char *) ls_h_read_file(path, &len);
    *n = 0;
    if (!b) return NULL;
    char **ids = calloc(len / 2 + 1, sizeof(*ids));
    cr_assert_not_null(ids);
    for (char *p = b, *save = NULL, *t; (t = strtok_r(p, "\n", &save)); p = NULL) {
        ids[*n] = strdup(t);
        cr_assert_not_null(ids[*n]);
        (*n)++;
    }
    free(b);
    return ids;
}

/* node's view of the copy: its mode, durable LSN and db1's synchronous commit state. */
static bool node_mode(int node, char *mode, size_t len, double *lsn, char *sync, size_t slen)
{
    cJSON *st = ls_h_status(&pair, node);
    if (!st) return false;
    snprintf(mode, len, "%s", ls_h_str(st, "mode"));
    if (lsn) *lsn = ls_h_num(st, "block_durable_lsn");
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(st, "databases"))
    {
        const cJSON *sy = cJSON_GetObjectItem(d, "sync");
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(d, "database"));
        const char *state = cJSON_GetStringValue(cJSON_GetObjectItem(sy, "state"));
        if (sync && name && state && !strcmp(name, "db1")) snprintf(sync, slen, "%s", state);
    }
    cJSON_Delete(st);
    return true;
}

/* node-a shows the copy in block mode, the load has acknowledged something, and, for a remote
 * level, the daemon shows db1's synchronous commit state as sync (it looks once a second). */
typedef struct {
    const char *ack;
    bool want_sync;
} ready_t;

static bool ready(void *ctx)
{
    const ready_t *r = ctx;
    char mode[16], sync[16] = "";
    size_t len = 0;
    uint8_t *b = ls_h_read_file(r->ack, &len);
    free(b);
    return len > 0 && node_mode(LS_H_A, mode, sizeof(mode), NULL, sync, sizeof(sync)) &&
           !strcmp(mode, "block") && (!r->want_sync || !strcmp(sync, "sync"));
}

/* `logship activate db1 ARGS` on node-b. The kill closed node-a's sockets, but node-b may not have
 * read the end of its connection yet: a refusal because node-a "still answers" is retried. */
static int activate(const char *args, char **out, char **err)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s activate db1 %s -c %s", ls_h_bin("logship"), args,
             pair.conf[LS_H_B]);
    int rc = 1;
    for (int i = 0; i < 100; i++) {
        *out = *err = NULL;
        rc = ls_h_sh(cmd, out, err, 60000);
        if (rc != 1 || !ls_h_contains(*err, "still answers")) return rc;
        free(*out), free(*err);
        usleep(50000);
    }
    *out = *err = NULL;
    return ls_h_sh(cmd, out, err, 60000);
}

/* Marker keys of node-b's store, by mdb_dump (one " txn/<id>" line each, sorted), into path. */
static void dump_markers(const char *path)
{
    char cmd[3000];
    snprintf(cmd, sizeof(cmd), "mdb_dump -p -s data %s/store | grep '^ txn/' | sort -u > %s",
             pair.db[LS_H_B], path);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 60000), 0, "mdb_dump of node-b's store failed");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Counts the ack log's ids without a marker in node-b's store; checks that tools/ack-check.sh
 * agrees (exit 0 exactly when none is missing). */
static void check_acks(const char *ack, kill_t *k)
{
    char markers[700];
    snprintf(markers, sizeof(markers), "%s/markers", pair.dir);
    dump_markers(markers);
    size_t mlen = 0;
    char *m = (char *) ls_h_read_file(markers, &mlen);
    cr_assert(m || mlen == 0);
    int nm = 0, cap = 1024;
    char **have = malloc(sizeof(*have) * (size_t) cap);
    cr_assert_not_null(have);
    for (char *p = m, *save = NULL, *t; m && (t = strtok_r(p, "\n", &save)); p = NULL) {
        if (strncmp(t, " txn/", 5)) continue;
        if (nm == cap) have = realloc(have, sizeof(*have) * (size_t) (cap *= 2));
        cr_assert_not_null(have);
        have[nm++] = t + 5;
    }
    qsort(have, (size_t) nm, sizeof(*have), cmp_str);

    int n = 0;
    char **ids = read_acks(ack, &n);
    k->acked = n;
    k->missing = 0;
    k->tail_span = 0;
    for (int i = 0; i < n; i++) {
        if (bsearch(&ids[i], have, (size_t) nm, sizeof(*have), cmp_str)) continue;
        k->missing++;
        if (k->tail_span < n - i) k->tail_span = n - i;
    }
    for (int i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    free(have);
    free(m);

    char cmd[2000], *chk = NULL;
    snprintf(cmd, sizeof(cmd), "sh %s/tools/ack-check.sh %s/store %s", LS_SOURCE_DIR,
             pair.db[LS_H_B], ack);
    int rc = ls_h_sh(cmd, &chk, NULL, 60000);
    cr_assert_eq(rc, k->missing ? 1 : 0, "tools/ack-check.sh (%d) disagrees with %d missing: %s",
                 rc, k->missing, chk);
    free(chk);
}

/* --rate of the load: LS_HOSTKILL_RATE transactions per second (default 500; 0: unpaced). */
static const char *rate_arg(void)
{
    static char arg[64];
    const char *r = getenv("LS_HOSTKILL_RATE");
    double tps = r && *r ? atof(r) : 500;
    if (tps > 0)
        snprintf(arg, sizeof(arg), "--rate %.0f", tps);
    else
        arg[0] = 0;
    return arg;
}

static void one_kill(const hk_mode_t *m, unsigned seed, kill_t *k)
{
    memset(k, 0, sizeof(*k));
    k->seed = seed;
    uint64_t s = seed;
    k->delay_ms = (int) (next_rand(&s) % (MAX_DELAY_MS + 1));

    /* Small generations (32 KiB, a roll about every 100 transactions) so that kills also land at
     * a roll, when a closed generation and the next one's first blocks are on their way. */
    ls_h_pair_opts_t o = {.plaintext = true, .seedable = true};
    ls_h_pair_init(&pair, "hostkill", &o);
    pair_live = true;
    ls_h_node_start(&pair, LS_H_A, NULL);
    ls_h_node_start(&pair, LS_H_B, NULL);
    ls_h_load(&pair, "--transactions 20 --target-size 65536"); /* db1 exists: the copy follows */
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy never caught up");

    char ack[600], args[1600];
    snprintf(ack, sizeof(ack), "%s/ack.log", pair.dir);
    snprintf(args, sizeof(args),
             "%s %s --transactions 1000000 --threads %d --records-per-txn 2 "
             "--value-size 100 --target-size %s --seed %u --ack-log %s",
             m->sync, rate_arg(), THREADS,
             getenv("LS_HOSTKILL_GEN_SIZE") ? getenv("LS_HOSTKILL_GEN_SIZE") : "32768", seed, ack);
    ls_h_load_start(&pair, args);
    ready_t r = {ack, m->lossless};
    if (!ls_h_wait_for(ready, &r, 30000)) ls_h_pair_logs(&pair);
    cr_assert(ls_h_wait_for(ready, &r, 1),
              "kill %u: no acknowledged commit with the copy in block mode%s", seed,
              m->lossless ? " and synchronous commit in sync" : "");
    usleep((useconds_t) k->delay_ms * 1000);
    if (!node_mode(LS_H_A, k->mode_at_kill, sizeof(k->mode_at_kill), &k->block_lsn, k->sync,
                   sizeof(k->sync)))
        snprintf(k->mode_at_kill, sizeof(k->mode_at_kill), "?");
    /* remote_durable waits forever: its state cannot have degraded */
    if (m->lossless)
        cr_assert_str_eq(k->sync, "sync", "kill %u: synchronous commit is %s at the kill", seed,
                         k->sync);

    /* The host dies: the application and its daemon, back to back. */
    cr_assert_gt(pair.load, 0, "the load ended before the kill");
    cr_assert_eq(kill(pair.load, SIGKILL), 0);
    cr_assert_eq(kill(pair.pid[LS_H_A], SIGKILL), 0);
    int lrc = ls_h_wait(pair.load, 10000);
    pair.load = 0;
    cr_assert_eq(lrc, 128 + SIGKILL, "the load had stopped before the kill (status %d)", lrc);
    ls_h_node_kill(&pair, LS_H_A);

    char *out, *err;
    int rc = activate(m->lossless ? "" : "--max-loss 1000", &out, &err);
    if (rc == 1 && m->lossless && ls_h_contains(err, "would lose 1 generations (more than the 0")) {
        /* The kill came after node-a announced its open generation closed (the roll), before
         * the closed file reached node-b, which holds that generation's shadow: activation
         * counts it as partly lost (the announcement carries no LSN to compare the shadow
         * with), though every commit the copy acknowledged is in the shadow. Accepted with
         * --max-loss 1; then it must be the shadow's generation and nothing acknowledged may be
         * missing. */
        k->refused = true;
        snprintf(k->refusal, sizeof(k->refusal), "%s", err);
        for (char *c = k->refusal; *c; c++)
            if (*c == '\n') *c = ' ';
        free(out), free(err);
        rc = activate("--max-loss 1", &out, &err);
    }
    if (rc != 0) {
        ls_h_pair_logs(&pair);
        setenv("LS_KEEP", "1", 1); /* the scratch directory is kept (its path printed) */
    }
    cr_assert_eq(rc, 0, "kill %u (%s, %d ms): activate failed (%d): %s%s", seed, m->name,
                 k->delay_ms, rc, out, err);
    cr_assert(ls_h_contains(out, "activated db1 on node-b"), "%s", out);
    k->lossless = ls_h_contains(out, "lossless:");
    k->shadow = ls_h_contains(out, "closed from its block-mode shadow");
    const char *lost = strstr(out, "may have lost generations");
    const char *paren = lost ? strstr(lost, " (") : NULL;
    k->lost_generations = paren ? atoi(paren + 2) : 0;
    if (k->refused) {
        unsigned long long from = 0, to = 0, sg = 0;
        const char *sh = strstr(out, "; generation ");
        cr_assert(lost && sscanf(lost, "may have lost generations %llu..%llu", &from, &to) == 2,
                  "kill %u: %s", seed, out);
        cr_assert(sh && sscanf(sh, "; generation %llu closed from its block-mode shadow", &sg) == 1,
                  "kill %u: a refusal without a shadow: %s", seed, out);
        cr_assert(from == to && to == sg,
                  "kill %u: the generation counted lost is not the shadow's: %s", seed, out);
    }
    /* the daemon's message: the output's last line */
    size_t ol = strlen(out);
    while (ol && out[ol - 1] == '\n')
        out[--ol] = 0;
    const char *last = strrchr(out, '\n');
    snprintf(k->report, sizeof(k->report), "%s", last ? last + 1 : out);
    free(out);
    free(err);

    check_acks(ack, k);
    out_line("hostkill %s seed %u delay %d ms: copy %s (durable lsn %.0f) at the kill; %d acked, "
             "%d missing (within the last %d); activation %s (%d generations lost, %s): %s",
             m->name, seed, k->delay_ms, k->mode_at_kill, k->block_lsn, k->acked, k->missing,
             k->tail_span, k->lossless ? "lossless" : "lossy", k->lost_generations,
             k->shadow ? "shadow closed" : "no shadow", k->report);
    if (k->refused) out_line("hostkill %s seed %u: first refused: %s", m->name, seed, k->refusal);
    if (m->lossless) {
        if (k->missing || (!k->lossless && !k->refused)) {
            char keep[1200];
            snprintf(keep, sizeof(keep), "%s", pair.dir);
            setenv("LS_KEEP", "1", 1);
            cr_assert_eq(k->missing, 0,
                         "kill %u (%s, %d ms): %d of %d acknowledged commits missing on node-b "
                         "(scratch kept in %s)",
                         seed, m->name, k->delay_ms, k->missing, k->acked, keep);
            cr_assert(k->lossless, "kill %u: the activation was not lossless: %s (kept in %s)",
                      seed, k->report, keep);
        }
    } else {
        /* What is missing is the newest of what was acknowledged: ids are appended in commit
         * order give or take the other threads' commits of the same moment. */
        cr_assert_leq(k->tail_span, k->missing + THREADS,
                      "kill %u: an acknowledged commit older than the %d newest is missing (the "
                      "missing ids lie within the last %d of %d)",
                      seed, k->missing + THREADS, k->tail_span, k->acked);
    }
    cr_assert_gt(k->acked, 0);
    ls_h_pair_fini(&pair);
    pair_live = false;
}

static void run_mode(const hk_mode_t *m)
{
    int kills = getenv("LS_HOSTKILL_KILLS") ? atoi(getenv("LS_HOSTKILL_KILLS")) : 3;
    cr_assert_gt(kills, 0, "LS_HOSTKILL_KILLS must be at least 1");
    unsigned seed = (unsigned) time(NULL) ^ ((unsigned) getpid() << 8);
    if (getenv("LS_HOSTKILL_SEED")) seed = (unsigned) strtoul(getenv("LS_HOSTKILL_SEED"), NULL, 10);
    out_line("hostkill %s: %d kills, seed %u (rerun with LS_HOSTKILL_SEED=%u), load %s", m->name,
             kills, seed, seed, *rate_arg() ? rate_arg() : "unpaced");
    int *hist[2] = {calloc(MAX_MISSING + 2, sizeof(int)), calloc(MAX_MISSING + 2, sizeof(int))};
    cr_assert(hist[0] && hist[1]);
    int kills_of[2] = {0, 0};
    long acked = 0, missing = 0, lossless = 0, in_block = 0, refused = 0;
    int worst = 0;
    uint64_t t0 = ls_mono_ns();
    for (int i = 0; i < kills; i++) {
        kill_t k;
        one_kill(m, seed + (unsigned) i, &k);
        acked += k.acked;
        missing += k.missing;
        lossless += k.lossless;
        refused += k.refused;
        in_block += !strcmp(k.mode_at_kill, "block");
        hist[k.shadow][k.missing > MAX_MISSING ? MAX_MISSING + 1 : k.missing]++;
        kills_of[k.shadow]++;
        if (k.missing > worst) worst = k.missing;
    }
    char dist[2][2048];
    for (int sh = 0; sh < 2; sh++) {
        size_t n = 0;
        dist[sh][0] = 0;
        for (int v = 0; v <= MAX_MISSING + 1 && n < sizeof(dist[sh]) - 32; v++)
            if (hist[sh][v])
                n += (size_t) snprintf(dist[sh] + n, sizeof(dist[sh]) - n, "%s%s%d: %d",
                                       n ? ", " : "", v > MAX_MISSING ? ">" : "",
                                       v > MAX_MISSING ? MAX_MISSING : v, hist[sh][v]);
    }
    out_line("hostkill %s summary: %d kills in %.0f s (seed %u, load %s), copy in block mode at "
             "%ld; %ld acknowledged, %ld lost, worst %d per kill; %ld activations lossless, %ld "
             "refused without --max-loss 1 (a closed generation announced, its shadow held); lost "
             "per kill (missing: kills) with a shadow of the open generation (%d kills) {%s}, "
             "without one (kill after a roll, %d kills) {%s}",
             m->name, kills, (double) (ls_mono_ns() - t0) / 1e9, seed,
             *rate_arg() ? rate_arg() : "unpaced", in_block, acked, missing, worst, lossless,
             refused, kills_of[1], dist[1], kills_of[0], dist[0]);
    free(hist[0]);
    free(hist[1]);
    if (m->lossless) cr_assert_eq(missing, 0);
}

Test(hostkill, remote_durable_loses_no_acknowledged_commit)
{
    static const hk_mode_t m = {"remote_durable", "--sync remote_durable", true};
    run_mode(&m);
}

/* remote_applied: the copy applies the shadow's bytes as they are written, its store
 * transactions carrying those not yet synced (docs/BLOCKMODE.md "The store carries the shadow's
 * unsynced bytes"): still nothing acknowledged may be missing. */
Test(hostkill, remote_applied_loses_no_acknowledged_commit)
{
    static const hk_mode_t m = {"remote_applied", "--sync remote_applied", true};
    run_mode(&m);
}

Test(hostkill, block_mode_alone_loses_only_the_newest_commits)
{
    static const hk_mode_t m = {"block", "", false};
    run_mode(&m);
}
