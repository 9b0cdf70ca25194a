/*
 * Seeding throughput against a plain copy of the same store file over the same kind of socket.
 *
 * The active of a fresh pair gets the workload's store (data.mdb copied) and only the tail of its
 * log (the last two closed generations, the current log, history), so the passive cannot be
 * built by shipping from generation 1 and needs a seed. `logship seed db1 --delete-existing`
 * against the passive's daemon runs to its exit 0 (the copy installed); the time is the daemon's
 * own (seed_status: start_time_ns to end_time_ns: local compacting snapshot on the active, stream,
 * install), as the command polls only every 200 ms. The figure is MB/s of the compacted store
 * (the bytes streamed). Baseline: that same compacted file (made here with mdb_env_copy2
 * MDB_CP_COMPACT) sent by the raw copy (lb/rawcopy.c: loopback TCP, write, fdatasync, rename,
 * directory fsync).
 */
#include <errno.h>
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

void lb_run_seed(lb_ctx_t *c)
{
    char dir[LB_PATH + 32], snap[LB_PATH + 32], log[LB_PATH + 48], conf[LB_PATH + 48];
    char exe[LB_PATH + 16];
    lb_fmt(snap, sizeof(snap), "%s/seed-snap", c->tmp);
    lb_rm_rf(snap); /* mdb_env_copy2 wants a directory without data.mdb */
    uint64_t size = compact_copy(c, snap);
    if (!size) {
        lb_skip("seeding", "cannot make a compacted copy of the workload's store");
        return;
    }
    lb_progress("seeding: logship seed of a %.1f MB store (compacted) vs the raw copy of that "
                "file",
                (double) size / 1e6);
    /* baseline: the same file over the raw copy */
    char *files[] = {"data.mdb"};
    lb_raw_t x;
    char dst[LB_PATH + 32];
    lb_fmt(dst, sizeof(dst), "%s/seed-raw", c->tmp);
    lb_rm_rf(dst);
    if (lb_rawcopy(snap, files, 1, dst, 0, &x) == 0) {
        double v = (double) size / 1e6 / x.seconds;
        lb_result_add("raw copy (a): the compacted store file", "MB/s", &v, 1);
    }
    free(x.lat_ms);
    lb_rm_rf(dst);
    /* logship seed */
    static int seq;
    lb_fmt(dir, sizeof(dir), "%s/pair-seed-%d", c->tmp, seq++);
    lb_pair_t p;
    lb_pair_cfg_t cfg = {.seed_store = 1};
    if (lb_pair_start(&p, dir, c->bin, c->certs, c->set, &cfg) != 0) {
        lb_skip("seeding", "the daemon pair for the seed did not start");
        return;
    }
    lb_fmt(exe, sizeof(exe), "%s/logship", c->bin);
    lb_fmt(conf, sizeof(conf), "%s/node-b.conf", dir);
    lb_fmt(log, sizeof(log), "%s/seed.log", c->tmp);
    char *argv[] = {exe, "seed", "db1", "--delete-existing", "-c", conf, NULL};
    double cpu_a = lb_cpu_s(p.pid_a), cpu_b = lb_cpu_s(p.pid_b);
    uint64_t t0 = lb_mono_ns();
    int rc = run_timeout(argv, log, 120);
    cpu_a = (lb_cpu_s(p.pid_a) - cpu_a) * 1e3; /* CPU of the seed, ms: steadier than the time */
    cpu_b = (lb_cpu_s(p.pid_b) - cpu_b) * 1e3; /* on a loaded machine */
    double secs = (double) (lb_mono_ns() - t0) / 1e9, own = rc == 0 ? seed_secs(p.sock_b) : 0;
    if (own > 0) secs = own;
    double hwm_a = (double) lb_vmhwm_kib(p.pid_a) / 1024,
           hwm_b = (double) lb_vmhwm_kib(p.pid_b) / 1024;
    lb_pair_stop(&p);
    if (rc != 0) {
        char why[LB_PATH + 96];
        lb_fmt(why, sizeof(why), "`logship seed` exited %d (its output: %s, kept with --keep)", rc,
               log);
        lb_skip("seeding", why);
        lb_rm_rf(dir);
        return;
    }
    lb_rm_rf(dir);
    double v = (double) size / 1e6 / secs;
    lb_result_cmp(lb_result_add("logship seed: store snapshot -> installed", "MB/s", &v, 1),
                  "raw copy (a): the compacted store file", LB_T_NONE, 0, "");
    lb_result_add("logship seed: CPU active", "ms", &cpu_a, 1);
    lb_result_add("logship seed: CPU passive", "ms", &cpu_b, 1);
    lb_result_add("logship seed: peak RSS active", "MiB", &hwm_a, 1);
    lb_result_add("logship seed: peak RSS passive", "MiB", &hwm_b, 1);
}
