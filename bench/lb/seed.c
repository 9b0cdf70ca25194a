/*
 * Seeding throughput against a plain copy of the same store file over the same kind of socket.
 *
 * The active of a fresh pair gets the workload's store (data.mdb copied) and only the tail of its
 * log (the last two closed generations, the current log, history), so the passive cannot be
 * built by shipping from generation 1 and needs a seed. `logship seed db1 --delete-existing`
 * against the passive's daemon runs to its exit 0 (the copy installed); the time is the daemon's
 * own (seed_status: start_time_ns to end_time_ns: compacting snapshot on the active, stream,
 * install), as the command polls only every 200 ms. The figure is MB/s of the compacted store
 * (the bytes streamed). Baseline: that same compacted file (made here with mdb_env_copy2
 * MDB_CP_COMPACT) sent by the raw copy (lb/rawcopy.c: loopback TCP, write, fdatasync, rename,
 * directory fsync).
 *
 * Same conditions for both (2026-12-05): the rounds alternate which side goes first; before each
 * timed operation the scratch file system is synced (syncfs), so no fdatasync waits behind
 * writeback left by earlier parts or the previous round. Each source as in practice: the seed's
 * store is a live one (in the page cache: just copied in), the compacted file as mdb_env_copy2
 * leaves it (written with O_DIRECT: not in the page cache; dropped before each raw round). The
 * figures are the medians of the rounds; the raw copy from the page cache is a diagnostic.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <lmdb.h>

#include "control/control.h"

#include "core/core.h"
#include "lb.h"

/* The compacted copy of the workload's store in dir/data.mdb; its size, or 0. */
static uint64_t compact_copy(const lb_ctx_t *c, const char *dir)
{
    char store[LB_PATH + 16], path[LB_PATH + 16];
    lb_fmt(store, sizeof(store), "%s/../store", c->set);
    MDB_env *env;
    if (ls_mkdir_p(dir) || mdb_env_create(&env)) return 0;
    mdb_env_set_maxdbs(env, 4);
    int rc = mdb_env_open(env, store, MDB_RDONLY | MDB_NOTLS, 0600);
    if (rc == 0) rc = mdb_env_copy2(env, dir, MDB_CP_COMPACT);
    mdb_env_close(env);
    lb_fmt(path, sizeof(path), "%s/data.mdb", dir);
    return rc == 0 ? lb_file_size(path) : 0;
}

/* The daemon's own start and end of the last seed (seed_status), in seconds; 0 when unknown.
 * Finer than the command's wall time, which polls every 200 ms. */
static double seed_secs(const char *sock)
{
    char *resp = NULL, err[256];
    double secs = 0;
    if (ls_control_call(sock, "{\"cmd\":\"seed_status\",\"database\":\"db1\"}", 2000, &resp, err,
                        sizeof(err)) != 0)
        return 0;
    cJSON *j = cJSON_Parse(resp);
    free(resp);
    const cJSON *a = cJSON_GetObjectItem(j, "start_time_ns"),
                *b = cJSON_GetObjectItem(j, "end_time_ns");
    if (cJSON_IsNumber(a) && cJSON_IsNumber(b) && b->valuedouble > a->valuedouble &&
        a->valuedouble > 0)
        secs = (b->valuedouble - a->valuedouble) / 1e9;
    cJSON_Delete(j);
    return secs;
}

/* Runs argv with a deadline; returns its exit code, or -1 (killed by pid at the deadline). */
static int run_timeout(char *const argv[], const char *log, double secs)
{
    pid_t pid = lb_spawn(argv, log);
    if (pid < 0) return -1;
    uint64_t end = lb_mono_ns() + (uint64_t) (secs * 1e9);
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) break;
        if (lb_mono_ns() > end) {
            lb_stop(pid, 2000);
            return -1;
        }
        lb_sleep_ns(2000000);
    }
    lb_stop(pid, 0); /* reaped already: only forgets the pid */
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Puts the file in the page cache (cached) or takes it out, as mdb_env_copy2 leaves it: it
 * writes with O_DIRECT, so an operator's copy of a compacted file reads it from the disk. */
static int cache_state(const char *path, bool cached)
{
    static char buf[1 << 20];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = 0;
    if (cached) {
        while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
            ;
    } else if (fdatasync(fd) < 0 || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0) {
        n = -1;
    }
    close(fd);
    return n == 0 ? 0 : -1;
}

/* Writes back whatever is dirty on the scratch file system (earlier parts, the previous round,
 * the pair's set-up) before a timed operation, so that neither side's fdatasync waits behind
 * writeback it did not cause. */
static void settle(const lb_ctx_t *c)
{
    int fd = open(c->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    syncfs(fd);
    close(fd);
}

/* One raw copy of snap/data.mdb, its source in the page cache or not; MB/s, or 0. */
static double raw_round(const lb_ctx_t *c, const char *snap, uint64_t size, bool cached)
{
    char *files[] = {"data.mdb"};
    char dst[LB_PATH + 32], file[LB_PATH + 48];
    lb_raw_t x;
    lb_fmt(dst, sizeof(dst), "%s/seed-raw", c->tmp);
    lb_fmt(file, sizeof(file), "%s/data.mdb", snap);
    lb_rm_rf(dst);
    if (cache_state(file, cached)) return 0;
    settle(c);
    double v = lb_rawcopy(snap, files, 1, dst, 0, &x) == 0 ? (double) size / 1e6 / x.seconds : 0;
    free(x.lat_ms);
    lb_rm_rf(dst);
    return v;
}

typedef struct {
    double mbs, cpu_a, cpu_b, hwm_a, hwm_b; /* MB/s, ms, ms, MiB, MiB */
} seed_fig_t;

/* One seed on a fresh pair; 0, or -1 (skipped, said). */
static int seed_round(const lb_ctx_t *c, uint64_t size, seed_fig_t *f)
{
    static int seq;
    char dir[LB_PATH + 32], log[LB_PATH + 48], conf[LB_PATH + 48], exe[LB_PATH + 16];
    lb_fmt(dir, sizeof(dir), "%s/pair-seed-%d", c->tmp, seq++);
    lb_pair_t p;
    lb_pair_cfg_t cfg = {.seed_store = 1};
    if (lb_pair_start(&p, dir, c->bin, c->certs, c->set, &cfg) != 0) {
        lb_skip("seeding", "the daemon pair for the seed did not start");
        return -1;
    }
    lb_fmt(exe, sizeof(exe), "%s/logship", c->bin);
    lb_fmt(conf, sizeof(conf), "%s/node-b.conf", dir);
    lb_fmt(log, sizeof(log), "%s/seed.log", c->tmp);
    char *argv[] = {exe, "seed", "db1", "--delete-existing", "-c", conf, NULL};
    settle(c);
    double cpu_a = lb_cpu_s(p.pid_a), cpu_b = lb_cpu_s(p.pid_b);
    uint64_t t0 = lb_mono_ns();
    int rc = run_timeout(argv, log, 120);
    f->cpu_a = (lb_cpu_s(p.pid_a) - cpu_a) * 1e3; /* CPU of the seed, ms: steadier than the */
    f->cpu_b = (lb_cpu_s(p.pid_b) - cpu_b) * 1e3; /* time on a loaded machine */
    double secs = (double) (lb_mono_ns() - t0) / 1e9, own = rc == 0 ? seed_secs(p.sock_b) : 0;
    if (own > 0) secs = own;
    f->hwm_a = (double) lb_vmhwm_kib(p.pid_a) / 1024;
    f->hwm_b = (double) lb_vmhwm_kib(p.pid_b) / 1024;
    lb_pair_stop(&p);
    lb_rm_rf(dir);
    if (rc != 0) {
        char why[LB_PATH + 96];
        lb_fmt(why, sizeof(why), "`logship seed` exited %d (its output: %s, kept with --keep)", rc,
               log);
        lb_skip("seeding", why);
        return -1;
    }
    f->mbs = (double) size / 1e6 / secs;
    return 0;
}

void lb_run_seed(lb_ctx_t *c)
{
    char snap[LB_PATH + 32];
    lb_fmt(snap, sizeof(snap), "%s/seed-snap", c->tmp);
    lb_rm_rf(snap); /* mdb_env_copy2 wants a directory without data.mdb */
    uint64_t size = compact_copy(c, snap);
    if (!size) {
        lb_skip("seeding", "cannot make a compacted copy of the workload's store");
        return;
    }
    lb_progress("seeding: logship seed of a %.1f MB store (compacted) vs the raw copy of that "
                "file, %d rounds alternated",
                (double) size / 1e6, c->runs);
    /* Rounds alternate which side goes first (raw, seed; seed, raw; ...), each timed operation
     * after a settle(): the row is the medians. The raw copy reads the compacted file as
     * mdb_env_copy2 leaves it (not in the page cache), the seed a live store (in it); the same
     * copy from the page cache is a diagnostic beside. */
    double raw[LB_MAXRUNS], warm[LB_MAXRUNS], mbs[LB_MAXRUNS], cpu_a[LB_MAXRUNS];
    double cpu_b[LB_MAXRUNS], hwm_a[LB_MAXRUNS], hwm_b[LB_MAXRUNS], pair[LB_MAXRUNS];
    int n = 0, nraw = 0, npair = 0, nwarm = 0;
    for (int r = 0; r < c->runs && r < LB_MAXRUNS; r++) {
        seed_fig_t f;
        double x = r % 2 ? 0 : raw_round(c, snap, size, false);
        if (seed_round(c, size, &f)) break;
        if (r % 2) x = raw_round(c, snap, size, false);
        double w = raw_round(c, snap, size, true);
        if (w > 0) warm[nwarm++] = w;
        if (x > 0) {
            raw[nraw++] = x;
            pair[npair++] = f.mbs / x;
        }
        mbs[n] = f.mbs, cpu_a[n] = f.cpu_a, cpu_b[n] = f.cpu_b, hwm_a[n] = f.hwm_a;
        hwm_b[n++] = f.hwm_b;
        lb_progress("seeding round %d (%s first): raw copy %.0f MB/s, seed %.0f MB/s (%.2fx); "
                    "raw copy from the page cache %.0f MB/s",
                    r + 1, r % 2 ? "seed" : "raw", x, f.mbs, x > 0 ? f.mbs / x : 0, w);
    }
    lb_rm_rf(snap);
    if (nraw) lb_result_add("raw copy (a): the compacted store file", "MB/s", raw, nraw);
    if (nwarm) lb_result_add("raw copy (a): the compacted file, cached", "MB/s", warm, nwarm);
    if (!n) return;
    lb_result_cmp(lb_result_add("logship seed: store snapshot -> installed", "MB/s", mbs, n),
                  "raw copy (a): the compacted store file", LB_T_MIN, 0.9, ">=0.9x raw copy");
    /* the same ratio round by round (the two sides a second or two apart): drift of the load
     * between rounds cancels out; a diagnostic beside the row */
    if (npair) lb_result_add("logship seed / raw copy, same round", "x rate", pair, npair);
    lb_result_add("logship seed: CPU active", "ms", cpu_a, n);
    lb_result_add("logship seed: CPU passive", "ms", cpu_b, n);
    lb_result_add("logship seed: peak RSS active", "MiB", hwm_a, n);
    lb_result_add("logship seed: peak RSS passive", "MiB", hwm_b, n);
}
