/*
 * Power cuts under load (docs/POWERCUT.md). Each node's data directory is a cutfs mount
 * (tests/harness/cutfs/cutfs.c): data is durable only once fsynced, directory entries only once
 * their directory is fsynced. The active (`logship load` writing with --ack-log, and node-a's
 * daemon) and the passive (node-b's daemon: receiver, inspector, replayer, seed install, log
 * removal) run a paced workload; at random moments one host, the other or both lose power: every
 * process on the host is killed with SIGKILL, the filesystem drops what was not durable (keeping
 * some unsynced writes, out of order or torn), is mounted again with a cold page cache, and the
 * host restarts. After each cut:
 *   - the active's store holds every commit `logship load` acknowledged: each id of its --ack-log
 *     has its marker key txn/<id>, checked with mdb_dump (tools/ack-check.sh);
 *   - every generation the passive acknowledged durable is still in its inspect/ or logs/ and
 *     intact (`logship dump` verdict ok), or already in its store; the store holds at least every
 *     generation acknowledged replayed-synced (what lets the active remove its logs);
 *   - the copy store's meta record counts each generation applied once
 *     (digest_generation - applied_generations stays what it was, except across a seed);
 *   - recovery never fails: the writer opens, both daemons start and no copy goes Failed.
 * At the end the copy converges and equals the active by mdb_dump.
 *
 * LS_POWERCUT_CUTS=N (default 4: the short run of `make test`; `make powercut CUTS=N`) sets the
 * number of cuts, LS_TEST_SEED the random seed (printed). Needs root and /dev/fuse: otherwise
 * the test says `skipped: <reason>` (a failure when CI is set).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemons.h"
#include "harness.h"
#include "store/store.h"

#define CUTFS LS_BIN_DIR "/../tests/cutfs"
#define LOAD_ARGS                                                                                  \
    "--transactions 100000000 --records-per-txn 20 --value-size 300 --key-space 20000 "            \
    "--threads 2 --rate 120 --target-size 131072"

static ls_h_pair_t pair;
static pid_t fs_pid[2];   /* cutfs of each node (0: not mounted) */
static char mnt[2][600];  /* mount points: the nodes' data directories */
static char img[2][600];  /* cutfs images (outside the mounts) */
static char ack_log[600]; /* acknowledged commits */
static pid_t seed_pid;    /* a `logship seed` in flight (0: none) */
static bool seeded;       /* a seed ran since the passive was last checked */
static unsigned rng_seed;
static int findings;
static int gens_checked; /* generations found intact on the passive after a cut */
static int dup_inspect; /* files a cut left in inspect/ though already moved to logs/ or replayed */
static int seeds_cut;   /* seeds a cut interrupted */
static char first_finding[1024];

static void finding(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "powercut: FINDING: %s\n", msg);
    if (!findings++) snprintf(first_finding, sizeof(first_finding), "%s", msg);
}

static bool mounted(int node)
{
    struct stat a, b;
    char parent[700];
    snprintf(parent, sizeof(parent), "%s/..", mnt[node]);
    return stat(mnt[node], &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

static void fs_start(int node)
{
    char seed[32], log[700];
    snprintf(seed, sizeof(seed), "%u", (unsigned) rand());
    snprintf(log, sizeof(log), "%s/cutfs-%d.log", pair.dir, node);
    char *argv[] = {CUTFS, mnt[node], img[node], seed, NULL};
    fs_pid[node] = ls_h_spawn(argv, log, NULL);
    cr_assert_gt(fs_pid[node], 0);
    for (int i = 0; i < 2000 && !mounted(node); i++) {
        if (ls_h_wait(fs_pid[node], 5) >= 0) {
            fs_pid[node] = 0;
            cr_assert_fail("cutfs %s exited at start (see %s)", mnt[node], log);
        }
    }
    cr_assert(mounted(node), "cutfs did not mount %s", mnt[node]);
}

/* sig: SIGUSR1 cuts, SIGTERM shuts down cleanly. Waits for the unmount. */
static void fs_stop(int node, int sig)
{
    if (fs_pid[node] <= 0) return;
    kill(fs_pid[node], sig);
    int rc = ls_h_wait(fs_pid[node], 30000);
    if (rc < 0) {
        kill(fs_pid[node], SIGKILL);
        ls_h_wait(fs_pid[node], 5000);
    }
    fs_pid[node] = 0;
    if (mounted(node)) {
        char cmd[1400];
        snprintf(cmd, sizeof(cmd), "umount -l %s", mnt[node]);
        ls_h_sh(cmd, NULL, NULL, 10000);
    }
    if (rc != 0) {
        char log[700];
        size_t len = 0;
        snprintf(log, sizeof(log), "%s/cutfs-%d.log", pair.dir, node);
        char *text = (char *) ls_h_read_file(log, &len);
        char shown[4001];
        snprintf(shown, sizeof(shown), "%.*s", (int) (len < 4000 ? len : 4000), text ? text : "");
        free(text);
        cr_assert_fail("cutfs %s ended with status %d; its log:\n%s", mnt[node], rc, shown);
    }
}

static void fini(void)
{
    for (int n = 0; n < 2; n++)
        if (pair.pid[n] > 0) ls_h_node_kill(&pair, n);
    if (pair.load > 0) kill(pair.load, SIGKILL), ls_h_wait(pair.load, 10000), pair.load = 0;
    if (seed_pid > 0) kill(seed_pid, SIGKILL), ls_h_wait(seed_pid, 10000), seed_pid = 0;
    for (int n = 0; n < 2; n++) {
        if (fs_pid[n] > 0) {
            kill(fs_pid[n], SIGTERM);
            if (ls_h_wait(fs_pid[n], 20000) < 0)
                kill(fs_pid[n], SIGKILL), ls_h_wait(fs_pid[n], 5000);
            fs_pid[n] = 0;
        }
        if (pair.dir && mounted(n)) {
            char cmd[1400];
            snprintf(cmd, sizeof(cmd), "umount -l %s", mnt[n]);
            ls_h_sh(cmd, NULL, NULL, 10000);
        }
    }
    if (pair.dir) ls_h_pair_fini(&pair);
}

TestSuite(powercut, .fini = fini);

/* Root and /dev/fuse, and cutfs built: otherwise say why (a failure under CI). */
static bool can_run(void)
{
    const char *why = NULL;
    int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (geteuid() != 0)
        why = "the power-cut test needs root to mount its FUSE filesystem";
    else if (fd < 0)
        why = "the power-cut test needs /dev/fuse";
    else if (access(CUTFS, X_OK) != 0)
        why = "cutfs was not built (install libfuse3-dev and reconfigure)";
    if (fd >= 0) close(fd);
    if (!why) return true;
    if (getenv("CI")) cr_assert_fail("%s, and CI must run it", why);
    fprintf(stderr, "skipped: %s\n", why);
    cr_skip_test("skipped: %s", why);
    return false;
}

static void load_start(int run)
{
    char args[1024];
    snprintf(args, sizeof(args), "%s --seed %d --ack-log %s", LOAD_ARGS, 1000 * run + 1, ack_log);
    ls_h_load_start(&pair, args);
}

/* Every id of the ack log has its marker txn/<id> in the active store, as LMDB's own mdb_dump
 * shows it (tools/ack-check.sh), and no id appears twice. */
static void check_acked(const char *when)
{
    char cmd[2000], *out = NULL, *err = NULL;
    if (access(ack_log, F_OK) != 0) return; /* no writer opened it yet */
    snprintf(cmd, sizeof(cmd), "sh %s/tools/ack-check.sh %s/store %s", LS_SOURCE_DIR,
             pair.db[LS_H_A], ack_log);
    int rc = ls_h_sh(cmd, &out, &err, 120000);
    if (rc != 0)
        finding("%s: the ack log does not check against the active store (exit %d):\n%s%s", when,
                rc, out ? out : "", err ? err : "");
    free(out);
    free(err);
}

/* The writer's recovery on what the cut left: open and close, as the application would. */
static void recover_active(const char *when)
{
    char cmd[1024], *err = NULL;
    snprintf(cmd, sizeof(cmd), "%s load %s --transactions 0", ls_h_bin("logship"), pair.db[LS_H_A]);
    int rc = ls_h_sh(cmd, NULL, &err, 120000);
    if (rc != 0) finding("%s: the writer's recovery failed (%d): %s", when, rc, err ? err : "");
    free(err);
}

typedef struct {
    double durable;         /* last generation acknowledged durable by the passive */
    double replayed_synced; /* last generation acknowledged replayed and synced */
} acked_t;

static acked_t acked_now(void)
{
    acked_t a = {0, 0};
    for (int n = 0; n < 2; n++) {
        cJSON *st = pair.pid[n] > 0 ? ls_h_status(&pair, n) : NULL;
        if (!st) continue;
        const char *state = ls_h_str(st, "state");
        if (!strcmp(state, "Failed") || !strcmp(state, "Diverged"))
            finding("before a cut: node-%c's copy is %s: %s", "ab"[n], state,
                    ls_h_str(st, "reason"));
        double c = ls_h_num(st, "last_copied"), r = ls_h_num(st, "last_replayed_synced");
        if (c > a.durable) a.durable = c;
        if (n == LS_H_A && r > a.replayed_synced) a.replayed_synced = r;
        cJSON_Delete(st);
    }
    return a;
}

static bool gen_intact(uint64_t g)
{
    static const char *dirs[] = {"logs", "inspect"};
    for (int d = 0; d < 2; d++) {
        char path[900], cmd[1200];
        snprintf(path, sizeof(path), "%s/%s/E00-00000001-%016llx.log", pair.db[LS_H_B], dirs[d],
                 (unsigned long long) g);
        if (access(path, F_OK) != 0) continue;
        snprintf(cmd, sizeof(cmd), "%s dump %s", ls_h_bin("logship"), path);
        if (ls_h_sh(cmd, NULL, NULL, 30000) == 0) return ++gens_checked > 0;
    }
    return false;
}

/* A rename from inspect/ to logs/ is durable in logs/ once logs/ is synced, and in inspect/
 * only once inspect/ is: a cut in between leaves the file in both (cutfs's model). Counted, to
 * show the restart meets that case. */
static void count_duplicates(uint64_t replayed)
{
    char dir[700];
    snprintf(dir, sizeof(dir), "%s/inspect", pair.db[LS_H_B]);
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        unsigned long long g;
        char path[1400];
        if (sscanf(e->d_name, "E00-00000001-%16llx.log", &g) != 1 || strstr(e->d_name, ".part"))
            continue;
        snprintf(path, sizeof(path), "%s/logs/%s", pair.db[LS_H_B], e->d_name);
        if (g <= replayed || access(path, F_OK) == 0) dup_inspect++;
    }
    if (d) closedir(d);
}

/* Unsynced writes cutfs persisted at the cuts (whole or torn), from its logs. */
static int persisted_writes(void)
{
    int total = 0;
    for (int n = 0; n < 2; n++) {
        char path[700];
        snprintf(path, sizeof(path), "%s/cutfs-%d.log", pair.dir, n);
        size_t len;
        char *log = (char *) ls_h_read_file(path, &len);
        for (char *p = log; p && (p = strstr(p, "cut ")); p++) {
            int kept, torn;
            char *paren = strchr(p, '(');
            if (paren &&
                sscanf(paren, "(%d unsynced writes kept whole, %d torn", &kept, &torn) == 2)
                total += kept + torn;
        }
        free(log);
    }
    return total;
}

static long long applied_delta = -1; /* digest_generation - applied_generations; -1: unknown */

/* What the passive holds after a cut, before its daemon restarts. */
static void check_passive(const char *when, acked_t a)
{
    bool seeding = seeded;
    seeded = seed_pid > 0;
    char store[700], err[512];
    snprintf(store, sizeof(store), "%s/store", pair.db[LS_H_B]);
    ls_store_meta_t m = {0};
    int rc = ls_store_peek_meta(store, &m, err, sizeof(err));
    if (rc && a.replayed_synced > 0 && !seeding)
        finding("%s: the copy store cannot be read after the cut: %s", when, err);
    if (seeding) { /* a seed may have replaced the copy: the earlier positions do not apply */
        applied_delta = -1;
        return;
    }
    if ((double) m.digest_generation < a.replayed_synced)
        finding("%s: the copy store holds generation %llu, but %.0f was acknowledged "
                "replayed-synced",
                when, (unsigned long long) m.digest_generation, a.replayed_synced);
    count_duplicates(m.digest_generation);
    for (uint64_t g = m.digest_generation + 1; (double) g <= a.durable; g++)
        if (!gen_intact(g))
            finding("%s: generation %llu was acknowledged durable (up to %.0f) but is neither "
                    "intact in inspect/ or logs/ nor in the store (at %llu)",
                    when, (unsigned long long) g, a.durable,
                    (unsigned long long) m.digest_generation);
    if (rc == 0) {
        long long d = (long long) m.digest_generation - (long long) m.applied_generations;
        if (applied_delta >= 0 && d != applied_delta)
            finding("%s: the copy applied %llu generations for generation %llu: one was applied "
                    "twice or skipped (offset %lld, was %lld)",
                    when, (unsigned long long) m.applied_generations,
                    (unsigned long long) m.digest_generation, d, applied_delta);
        applied_delta = d;
    }
}

static bool node_up(int node, const char *when)
{
    ls_h_node_start(&pair, node, NULL); /* asserts that it starts */
    cJSON *st = ls_h_status(&pair, node);
    bool failed = st && (!strcmp(ls_h_str(st, "state"), "Failed") ||
                         !strcmp(ls_h_str(st, "state"), "Diverged"));
    if (failed)
        finding("%s: node-%c's copy is %s after restart: %s", when, "ab"[node],
                ls_h_str(st, "state"), ls_h_str(st, "reason"));
    cJSON_Delete(st);
    return !failed;
}

static void cut_host(int node)
{
    if (node == LS_H_A && pair.load > 0)
        kill(pair.load, SIGKILL), ls_h_wait(pair.load, 10000), pair.load = 0;
    if (node == LS_H_B && seed_pid > 0)
        seeds_cut++, kill(seed_pid, SIGKILL), ls_h_wait(seed_pid, 10000), seed_pid = 0;
    ls_h_node_kill(&pair, node);
    fs_stop(node, SIGUSR1);
}

Test(powercut, cuts_lose_nothing_acknowledged)
{
    if (!can_run()) return;
    int cuts = getenv("LS_POWERCUT_CUTS") ? atoi(getenv("LS_POWERCUT_CUTS")) : 4;
    rng_seed = (unsigned) time(NULL) ^ (unsigned) getpid();
    if (getenv("LS_TEST_SEED")) rng_seed = (unsigned) strtoul(getenv("LS_TEST_SEED"), NULL, 10);
    fprintf(stderr, "powercut: %d cuts, seed %u (rerun with LS_TEST_SEED=%u)\n", cuts, rng_seed,
            rng_seed);
    srand(rng_seed);
    /* Small generations (128 KiB, about six a second) so that a cut often lands in a roll, a
     * transfer, an inspection or a removal; replay held back a second so that generations wait
     * durable and unreplayed in the passive's logs/ when the cut comes. */
    ls_h_pair_init(&pair, "powercut",
                   &(ls_h_pair_opts_t){
                       .plaintext = true, .seedable = true, .b_db_extra = "replay_lag = 1s\n"});
    snprintf(ack_log, sizeof(ack_log), "%s/acked", pair.dir);
    for (int n = 0; n < 2; n++) {
        snprintf(mnt[n], sizeof(mnt[n]), "%s/node-%c", pair.dir, "ab"[n]);
        snprintf(img[n], sizeof(img[n]), "%s/node-%c.img", pair.dir, "ab"[n]);
        cr_assert_eq(mkdir(mnt[n], 0700), 0);
        fs_start(n);
    }
    ls_h_node_start(&pair, LS_H_B, NULL);
    ls_h_node_start(&pair, LS_H_A, NULL);
    int runs = 0, seeds = 0, cut_count[3] = {0, 0, 0};
    load_start(runs++);
    uint64_t t0 = (uint64_t) time(NULL);
    for (int i = 1; i <= cuts; i++) {
        char when[64];
        snprintf(when, sizeof(when), "cut %d", i);
        useconds_t wait = (useconds_t) (300000 + rand() % 1500000);
        if (seed_pid == 0 && rand() % 8 == 0) { /* a seed in flight when the cut comes */
            seed_pid = ls_h_seed_start(&pair, "--delete-existing");
            seeded = true;
            seeds++;
            wait = (useconds_t) (rand() % 600000); /* a seed takes about half a second here */
        }
        usleep(wait);
        if (seed_pid > 0 && ls_h_wait(seed_pid, 0) >= 0)
            seed_pid = 0; /* finished (or refused): either way it is over */
        if (pair.load > 0 && ls_h_wait(pair.load, 0) >= 0) { /* the writer must not stop */
            finding("%s: logship load exited by itself (see %s/load.log)", when, pair.dir);
            pair.load = 0;
        }
        int victim = rand() % 3; /* 0: node-a, 1: node-b, 2: both */
        cut_count[victim]++;
        acked_t a = acked_now();
        if (victim != LS_H_B) cut_host(LS_H_A);
        if (victim != LS_H_A) cut_host(LS_H_B);
        for (int n = 0; n < 2; n++)
            if (!fs_pid[n]) fs_start(n);
        if (victim != LS_H_A) {
            check_passive(when, a);
            if (!node_up(LS_H_B, when)) break;
        }
        if (victim != LS_H_B) {
            recover_active(when);
            check_acked(when);
            if (!node_up(LS_H_A, when)) break;
            load_start(runs++);
        }
        if (findings) break;
    }
    /* The end: the writer stops (its close rolls the last log), the copy converges. */
    if (pair.load > 0) kill(pair.load, SIGKILL), ls_h_wait(pair.load, 10000), pair.load = 0;
    if (seed_pid > 0) ls_h_wait(seed_pid, 120000), seed_pid = 0;
    recover_active("end");
    check_acked("end");
    bool converged = ls_h_wait_caught_up(&pair, 180000);
    if (!converged) finding("end: the copy did not converge");
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_stop(&pair, LS_H_B);
    check_passive("end", (acked_t){0, 0});
    if (converged && !ls_h_stores_equal(&pair))
        finding("end: the copy differs from the active (mdb_dump)");
    size_t len = 0;
    char *log = (char *) ls_h_read_file(ack_log, &len);
    int acked = 0;
    for (size_t k = 0; log && k < len; k++)
        acked += log[k] == '\n';
    free(log);
    fprintf(
        stderr,
        "powercut: %d cuts (node-a %d, node-b %d, both %d), %d seeds, %d writer runs, %d "
        "acknowledged commits checked, %d unreplayed durable generations checked, %d unsynced "
        "writes persisted, %d seeds cut, %d files left in inspect/ after their move, %llu s, seed "
        "%u: %d findings%s%s\n",
        cut_count[0] + cut_count[1] + cut_count[2], cut_count[0], cut_count[1], cut_count[2], seeds,
        runs, acked, gens_checked, persisted_writes(), seeds_cut, dup_inspect,
        (unsigned long long) ((uint64_t) time(NULL) - t0), rng_seed, findings,
        findings ? "; first: " : "", findings ? first_finding : "");
    if (findings) ls_h_pair_logs(&pair);
    cr_assert_eq(findings, 0, "%d findings; first: %s", findings, first_finding);
}

/* Mounts cutfs on node-a's directory only (the tests of single fixes). */
static void mount_a(const char *tag)
{
    ls_h_pair_init(&pair, tag, &(ls_h_pair_opts_t){.plaintext = true});
    snprintf(mnt[LS_H_A], sizeof(mnt[0]), "%s/node-a", pair.dir);
    snprintf(img[LS_H_A], sizeof(img[0]), "%s/node-a.img", pair.dir);
    cr_assert_eq(mkdir(mnt[LS_H_A], 0700), 0);
    fs_start(LS_H_A);
}

/* LMDB creates data.mdb without syncing its directory: the store must do it, or a cut after
 * many checkpointed commits (and the removal of the logs they came from) loses them all. */
Test(powercut, a_new_store_survives_a_cut)
{
    if (!can_run()) return;
    mount_a("powercut-store");
    char cmd[1400];
    snprintf(cmd, sizeof(cmd), "%s load %s --transactions 50 --threads 1", ls_h_bin("logship"),
             pair.db[LS_H_A]);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 60000), 0);
    fs_stop(LS_H_A, SIGUSR1);
    fs_start(LS_H_A);
    char store[700], err[512];
    snprintf(store, sizeof(store), "%s/store", pair.db[LS_H_A]);
    ls_store_meta_t m;
    cr_assert_eq(ls_store_peek_meta(store, &m, err, sizeof(err)), 0, "after the cut: %s", err);
    /* The close synced the store (its checkpoint): the commits are there. The record of that
     * checkpoint LSN is a later transaction whose meta page LMDB does not sync (MDB_NOMETASYNC)
     * and may be lost, which is harmless: it only ever claims less than was synced. */
    cr_assert_eq(m.lsn, 250, "the 50 transactions of 4 records and a COMMIT each survive the cut");
}
