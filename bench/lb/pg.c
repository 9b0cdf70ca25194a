/*
 * PostgreSQL 15 as a primary with one streaming standby on loopback, for the commit-latency
 * comparison (issue 15; bench/README.md, "Commit latency against PostgreSQL").
 *
 * Everything lives in one scratch directory: primary/, standby/, the Unix sockets, the servers'
 * logs, the pgbench script and its per-transaction logs. initdb refuses to run as root, so when
 * the harness is root every PostgreSQL program runs as nobody through setpriv, the directory
 * chowned to it. The servers are started by pg_ctl (they detach), so they are stopped by the pid
 * in postmaster.pid: `pg_ctl stop -m fast`, then SIGQUIT and SIGKILL to that pid if it lives on.
 * lb_pg_stop_all() (from the harness's exit path, also on SIGINT/SIGTERM) stops whatever runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lb.h"

#define ARGMAX 40

static lb_pg_t *live; /* the cluster lb_pg_stop_all() stops */

/* Runs a PostgreSQL program (name in pg->bin) with args (NULL-terminated), as pg's user, with
 * PGOPTIONS = opts when not NULL; output to log. Returns the exit code or -1. */
static int pg_run(const lb_pg_t *pg, const char *log, const char *opts, const char *prog,
                  const char *const *args)
{
    char *argv[ARGMAX], uid[32], gid[32], home[LB_PATH + 8], env_opts[128], exe[LB_PATH + 32];
    int n = 0;
    if (pg->drop) {
        snprintf(uid, sizeof(uid), "--reuid=%d", (int) pg->uid);
        snprintf(gid, sizeof(gid), "--regid=%d", (int) pg->gid);
        argv[n++] = "setpriv";
        argv[n++] = uid;
        argv[n++] = gid;
        argv[n++] = "--clear-groups";
        argv[n++] = "--";
    }
    snprintf(home, sizeof(home), "HOME=%s", pg->dir);
    snprintf(env_opts, sizeof(env_opts), "PGOPTIONS=%s", opts ? opts : "");
    snprintf(exe, sizeof(exe), "%s/%s", pg->bin, prog);
    argv[n++] = "env";
    argv[n++] = home;
    argv[n++] = env_opts;
    argv[n++] = exe;
    for (int i = 0; args[i] && n < ARGMAX - 1; i++)
        argv[n++] = (char *) args[i];
    argv[n] = NULL;
    return lb_run(argv, log);
}

/* The postmaster's pid from DATA/postmaster.pid, 0 when absent. */
static pid_t postmaster_pid(const char *data)
{
    char path[LB_PATH + 32];
    long pid = 0;
    snprintf(path, sizeof(path), "%s/postmaster.pid", data);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    if (fscanf(f, "%ld", &pid) != 1) pid = 0;
    fclose(f);
    return (pid_t) pid;
}

static bool pid_alive(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

static void stop_server(lb_pg_t *pg, const char *data, pid_t *pid)
{
    if (*pid <= 0) return;
    char log[LB_PATH + 32];
    snprintf(log, sizeof(log), "%s/pg_ctl.log", pg->dir);
    const char *args[] = {"-D", data, "-m", "fast", "-w", "-t", "20", "stop", NULL};
    pg_run(pg, log, NULL, "pg_ctl", args);
    /* pg_ctl failed or timed out: immediate shutdown, then SIGKILL, by pid */
    for (int sig = 0; sig < 2 && pid_alive(*pid); sig++) {
        kill(*pid, sig == 0 ? SIGQUIT : SIGKILL);
        for (int i = 0; i < 150 && pid_alive(*pid); i++)
            lb_sleep_ns(20000000);
    }
    *pid = 0;
}

void lb_pg_stop(lb_pg_t *pg)
{
    if (!pg) return;
    stop_server(pg, pg->standby, &pg->pid_s);
    stop_server(pg, pg->primary, &pg->pid_p);
    if (live == pg) live = NULL;
}

void lb_pg_stop_all(void)
{
    lb_pg_stop(live);
}

/* psql -XAtq -c sql on the primary; the first line of output into out. 0 or -1. Local commit:
 * the table is made before the synchronous standby exists. */
static int query(const lb_pg_t *pg, const char *sql, char *out, size_t outlen)
{
    char port[16], log[LB_PATH + 32];
    snprintf(port, sizeof(port), "%d", pg->port_p);
    snprintf(log, sizeof(log), "%s/psql.out", pg->dir);
    unlink(log);
    const char *args[] = {"-XAtq",    "-h", pg->dir,    "-p", port, "-U",
                          "postgres", "-d", "postgres", "-c", sql,  NULL};
    if (pg_run(pg, log, "-c synchronous_commit=local", "psql", args) != 0) return -1;
    FILE *f = fopen(log, "r");
    if (!f) return -1;
    if (!fgets(out, (int) outlen, f)) out[0] = 0;
    fclose(f);
    out[strcspn(out, "\n")] = 0;
    return 0;
}

/* Returns -1 with the reason (a format and its arguments) in why. */
#define FAIL(...) (snprintf(why, whylen, __VA_ARGS__), -1)

/* Starts the server of data on port (socket directory pg->dir), records its pid. */
static int start_server(lb_pg_t *pg, const char *data, const char *name, int port, pid_t *pid)
{
    char opts[LB_PATH + 64], log[LB_PATH + 32], out[LB_PATH + 32];
    snprintf(opts, sizeof(opts), "-p %d -k %s", port, pg->dir);
    snprintf(log, sizeof(log), "%s/%s.log", pg->dir, name);
    snprintf(out, sizeof(out), "%s/pg_ctl.log", pg->dir);
    const char *args[] = {"-D", data, "-l", log, "-w", "-t", "60", "-o", opts, "start", NULL};
    int rc = pg_run(pg, out, NULL, "pg_ctl", args);
    *pid = postmaster_pid(data);
    return rc == 0 && *pid > 0 ? 0 : -1;
}

/* The primary's settings: loopback only, a synchronous standby named (whichever connects: the
 * level is chosen per session with synchronous_commit), fsync and the WAL left at their
 * defaults (fsync on, wal_sync_method fdatasync, full_page_writes on). */
static int configure(const lb_pg_t *pg)
{
    char path[LB_PATH + 32];
    snprintf(path, sizeof(path), "%s/postgresql.conf", pg->primary);
    FILE *f = fopen(path, "a");
    if (!f) return -1;
    fprintf(f, "\n# logship-bench (bench/lb/pg.c)\n"
               "listen_addresses = '127.0.0.1'\n"
               "fsync = on\n"
               "synchronous_standby_names = '*'\n");
    return fclose(f);
}

int lb_pg_start(lb_pg_t *pg, const char *bin, const char *dir, char *why, size_t whylen)
{
    memset(pg, 0, sizeof(*pg));
    snprintf(pg->bin, sizeof(pg->bin), "%s", bin);
    snprintf(pg->dir, sizeof(pg->dir), "%s", dir);
    snprintf(pg->primary, sizeof(pg->primary), "%s/primary", dir);
    snprintf(pg->standby, sizeof(pg->standby), "%s/standby", dir);
    char exe[LB_PATH + 32];
    snprintf(exe, sizeof(exe), "%s/pgbench", bin);
    if (access(exe, X_OK) != 0)
        return FAIL("%s not found (tools/deps.sh bench installs postgresql-15)", exe);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) return FAIL("cannot create %s", dir);
    if (geteuid() == 0) { /* initdb refuses root */
        struct passwd *pw = getpwnam("nobody");
        if (!pw) return FAIL("running as root and no user nobody to run PostgreSQL");
        pg->drop = true;
        pg->uid = pw->pw_uid;
        pg->gid = pw->pw_gid;
        if (chown(dir, pg->uid, pg->gid) != 0) return FAIL("cannot chown %s", dir);
    }
    live = pg;
    char log[LB_PATH + 32], port[16];
    snprintf(log, sizeof(log), "%s/setup.log", dir);
    const char *init[] = {"-D", pg->primary, "-U",         "postgres",  "--auth=trust",
                          "-E", "UTF8",      "--locale=C", "--no-sync", NULL};
    if (pg_run(pg, log, NULL, "initdb", init) != 0 || configure(pg) != 0)
        return FAIL("initdb failed (see %s)", log);
    pg->port_p = lb_free_port();
    if (start_server(pg, pg->primary, "primary", pg->port_p, &pg->pid_p) != 0)
        return FAIL("the primary did not start (see %s/primary.log)", dir);
    char out[256];
    if (query(pg, "CREATE TABLE kv (key bytea PRIMARY KEY, value bytea NOT NULL)", out,
              sizeof(out)) != 0)
        return FAIL("creating the table failed (see %s/psql.out)", dir);
    /* the standby connects over TCP to 127.0.0.1 (primary_conninfo written by -R) */
    snprintf(port, sizeof(port), "%d", pg->port_p);
    const char *bb[] = {"-h",        "127.0.0.1", "-p", port,     "-U", "postgres", "-D",
                        pg->standby, "-R",        "-X", "stream", "-c", "fast",     NULL};
    if (pg_run(pg, log, NULL, "pg_basebackup", bb) != 0)
        return FAIL("pg_basebackup failed (see %s)", log);
    pg->port_s = lb_free_port();
    if (start_server(pg, pg->standby, "standby", pg->port_s, &pg->pid_s) != 0)
        return FAIL("the standby did not start (see %s/standby.log)", dir);
    for (int i = 0; i < 300; i++) { /* 30 s */
        if (query(pg,
                  "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' "
                  "AND sync_state = 'sync'",
                  out, sizeof(out)) == 0 &&
            !strcmp(out, "1"))
            return 0;
        lb_sleep_ns(100000000);
    }
    return FAIL("the standby is not streaming as synchronous (see %s/standby.log)", dir);
}

/* Latencies (µs, third field) of pgbench's per-transaction logs prefix.*; removes them. */
static int read_logs(const char *prefix, lb_lat_t *out)
{
    char pat[LB_PATH + 8], line[256];
    snprintf(pat, sizeof(pat), "%s.*", prefix);
    glob_t g;
    if (glob(pat, 0, NULL, &g) != 0) return -1;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        FILE *f = fopen(g.gl_pathv[i], "r");
        if (!f) continue;
        while (fgets(line, sizeof(line), f)) {
            double us;
            if (sscanf(line, "%*d %*d %lf", &us) == 1)
                lb_lat_add(out, us / 1000.0);
            else
                out->failed++; /* "failed" or "skipped" in the time field */
        }
        fclose(f);
        unlink(g.gl_pathv[i]);
    }
    globfree(&g);
    return 0;
}

int lb_pg_bench(lb_pg_t *pg, const char *level, int clients, double secs, lb_lat_t *out)
{
    char script[LB_PATH + 32], prefix[LB_PATH + 32], lp[LB_PATH + 48], log[LB_PATH + 32];
    snprintf(script, sizeof(script), "%s/commit.sql", pg->dir);
    snprintf(prefix, sizeof(prefix), "%s/txlog", pg->dir);
    snprintf(lp, sizeof(lp), "--log-prefix=%s", prefix);
    snprintf(log, sizeof(log), "%s/pgbench.out", pg->dir);
    /* One statement, three rows, autocommit: one round trip per transaction. Each key comes from
     * its own third of the key space, so the rows of every transaction are locked in the same
     * order (no deadlocks) and never twice in one statement. */
    FILE *f = fopen(script, "w");
    if (!f) return -1;
    fprintf(f,
            "\\set a random(0, %d)\n\\set b random(%d, %d)\n\\set c random(%d, %d)\n"
            "\\set r random(0, 2000000000)\n"
            "INSERT INTO kv (key, value) VALUES ",
            LB_COMMIT_KEYS / 3 - 1, LB_COMMIT_KEYS / 3, 2 * (LB_COMMIT_KEYS / 3) - 1,
            2 * (LB_COMMIT_KEYS / 3), LB_COMMIT_KEYS - 1);
    const char *k[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        fprintf(f,
                "%s(substr(sha256(int8send(:%s)), 1, %d), "
                "substr(sha512(int8send(:r + %d)) || sha512(int8send(:%s)), 1, %d))",
                i ? ", " : "", k[i], LB_COMMIT_KEY_LEN, i, k[i], LB_COMMIT_VAL_LEN);
    fprintf(f, " ON CONFLICT (key) DO UPDATE SET value = excluded.value;\n");
    if (fclose(f) != 0) return -1;
    char port[16], c[16], j[16], t[16], opts[64];
    snprintf(port, sizeof(port), "%d", pg->port_p);
    snprintf(c, sizeof(c), "%d", clients);
    snprintf(j, sizeof(j), "%d", clients < 2 ? clients : 2);
    snprintf(t, sizeof(t), "%d", (int) (secs + 0.5));
    snprintf(opts, sizeof(opts), "-c synchronous_commit=%s", level);
    const char *args[] = {"-n", "-h",       pg->dir, "-p", port, "-U",       "postgres",
                          "-M", "prepared", "-c",    c,    "-j", j,          "-T",
                          t,    "-f",       script,  "-l", lp,   "postgres", NULL};
    unlink(log);
    memset(out, 0, sizeof(*out));
    if (pg_run(pg, log, opts, "pgbench", args) != 0) {
        read_logs(prefix, out);
        return -1;
    }
    char line[512];
    if (!(f = fopen(log, "r"))) return -1;
    while (fgets(line, sizeof(line), f)) {
        double tps;
        if (sscanf(line, "tps = %lf (without initial connection time)", &tps) == 1) out->rate = tps;
    }
    fclose(f);
    if (read_logs(prefix, out) != 0 || out->n == 0 || out->rate <= 0) return -1;
    return 0;
}
