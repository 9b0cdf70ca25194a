/*
 * lb: the pieces of logship-bench (bench/logship-bench.c drives them).
 *
 * util.c      processes (spawned and stopped by pid), clocks, statistics, files, the daemons'
 *             status over the control socket, /proc figures (VmHWM, CPU time)
 * daemons.c   a pair of logshipd (active + passive) in a scratch directory: configs, start,
 *             warm-up, the drop-in of pre-generated generations, the per-generation monitor
 *             (inotify on the passive's inspect/ for durable, status polling for replayed)
 * rawcopy.c   baseline (a): a minimal sender + receiver over one loopback TCP connection
 * rsync.c     baseline (b): rsync through an rsync daemon on 127.0.0.1
 * lmdbapply.c baseline (c): the same records applied to LMDB in batches (MDB_NOMETASYNC)
 * wan.c       two network namespaces joined by a veth pair shaped with tc netem
 * report.c    results: the table for people, results.json, the gnuplot chart
 * writer.c    the writer row: `logship load` against the LMDB apply of the same records
 * compare.c   --compare OLD.json: each figure's change against an earlier results.json
 * pg.c        PostgreSQL 15: a primary and one streaming standby on loopback, pgbench runs
 * commitlat.c commit latency: logship's commit path against PostgreSQL's (issue 15)
 *
 * Threading: everything runs on the main thread except the monitor and the raw-copy receiver,
 * which own their state until joined. Every process started is recorded and stopped by pid.
 */
#ifndef LB_H
#define LB_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define LB_MAXRUNS 16
#define LB_PATH    4096

/* ---- util.c ------------------------------------------------------------------------------ */
/* Starts argv[0] (a path) with stdout and stderr appended to log (or /dev/null when NULL).
 * Returns the pid (recorded for lb_stop_all) or -1. */
pid_t lb_spawn(char *const argv[], const char *log);
/* SIGTERM, then SIGKILL after timeout_ms; reaps. Returns the exit status (waitpid form) or -1. */
int lb_stop(pid_t pid, int timeout_ms);
void lb_stop_all(void); /* every process still recorded */
/* false (and *pid set to 0, the process reaped) once *pid has exited */
bool lb_alive(pid_t *pid);
/* Runs argv to completion (output to log or /dev/null); returns its exit code or -1. */
int lb_run(char *const argv[], const char *log);
int lb_wait(pid_t pid); /* waits for an lb_spawn'ed process: its exit code or -1 */
int lb_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* system(), quiet */

/* snprintf into a path buffer; a path cut short shows up as a failed open, not a warning. */
/* Formats the variadic arguments after fmt into the array buf, in a function taking (fmt, ...). */
#define LB_FORMAT(buf, fmt)                                                                        \
    do {                                                                                           \
        va_list ap_;                                                                               \
        va_start(ap_, fmt);                                                                        \
        vsnprintf(buf, sizeof(buf), fmt, ap_);                                                     \
        va_end(ap_);                                                                               \
    } while (0)
void lb_fmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

void lb_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* "== ..." */

uint64_t lb_mono_ns(void);
uint64_t lb_now_ns(void); /* UTC ns */
void lb_sleep_ns(uint64_t ns);
void lb_sleep_until_mono(uint64_t mono_ns);

/* Statistics over a copy of v[0, n): median, min, max, percentile p (0..100, nearest rank). */
double lb_median(const double *v, size_t n);
double lb_min(const double *v, size_t n);
double lb_max(const double *v, size_t n);
double lb_pct(const double *v, size_t n, double p);

int lb_copy_file(const char *from, const char *to, bool sync); /* 0 or -1 */
int lb_rm_rf(const char *path);
int lb_free_port(void);
uint64_t lb_file_size(const char *path);

/* The daemon's status (`{"cmd":"status"}` on its control socket): copies[0]'s fields. */
#define LB_LAG_MAX 512 /* buckets of a lag histogram read from status */
typedef struct {
    bool ok;                                   /* the daemon answered */
    char state[32];                            /* copy state */
    uint64_t copied;                           /* last generation durable on the target */
    uint64_t copied_ns;                        /* when the active learned it (UTC ns) */
    uint64_t replayed;                         /* last generation replayed */
    uint64_t replayed_ns;                      /* when the active learned it (UTC ns) */
    uint64_t sent_bytes;                       /* bytes sent (compressed when compression is on) */
    uint64_t generated;                        /* last closed generation on the active */
    bool block;                                /* block mode (docs/BLOCKMODE.md) */
    uint64_t block_bytes;                      /* BLOCK bytes sent */
    uint64_t block_lag_samples;                /* commit batches measured */
    double block_lag_p50_ms, block_lag_p99_ms; /* commit durable on the active -> on the */
    double block_lag_max_ms;                   /* copy, over the daemon's last 1024 */
    uint64_t mode_switches;                    /* file <-> block */
    int lag_n;                                 /* the daemon's lag histogram since its start: */
    double lag_lower[LB_LAG_MAX];              /* ... each non-empty bucket's bounds, ns */
    double lag_upper[LB_LAG_MAX];              /* ... (0: unbounded) */
    double lag_count[LB_LAG_MAX];              /* ... and count ("block_lag_hist") */
} lb_status_t;
int lb_status(const char *sock, lb_status_t *st); /* 0 or -1 */
/* The p-th percentile, ms, of the block-mode lags measured between two status reads (the
 * difference of their histograms: every batch between them, not the daemon's last 1024), as the
 * upper bound of its bucket (at most 1/16 high); -1 when none. *n: the batches counted. */
double lb_lag_between(const lb_status_t *before, const lb_status_t *after, double p, uint64_t *n);

uint64_t lb_vmhwm_kib(pid_t pid);                   /* peak RSS, KiB (0 when unknown) */
uint64_t lb_proc_kib(pid_t pid, const char *field); /* "RssAnon:" etc. of /proc/PID/status */
/* bytes_acked of the established TCP connections to 127.0.0.1:port (ss -ti), 0 when none. */
uint64_t lb_wire_bytes(int port);
double lb_cpu_s(pid_t pid); /* user + system CPU seconds so far */

/* ---- daemons.c --------------------------------------------------------------------------- */
typedef struct {
    bool tls;            /* TLS 1.3 with mutual certificates (else insecure_plaintext) */
    int zstd;            /* compression level, 0: off */
    const char *netns_a; /* run the active in this network namespace (NULL: none) */
    const char *netns_b; /* the passive's */
    const char *addr_b;  /* the passive's listening address; NULL: 127.0.0.1 */
    bool hold_replay;    /* passive replay_lag = 1h: ship only (runs wait for durable) */
    double shape_mbit;   /* > 0: connect through a user-space shaper (shaper.c) */
    int shape_rtt_ms;    /* its round trip */
    bool empty;          /* no generation dropped: a writer (`logship load`) makes the database */
    bool seed_store;     /* the active gets the workload's store and only its log's tail, and no
                            warm-up generation: for `logship seed` (seed.c) */
} lb_pair_cfg_t;

typedef struct lb_shaper lb_shaper_t;
/* Relays 127.0.0.1:<its port> to 127.0.0.1:target_port through an emulated link. */
lb_shaper_t *lb_shaper_start(int target_port, double mbit, int rtt_ms);
int lb_shaper_port(const lb_shaper_t *s);
void lb_shaper_stop(lb_shaper_t *s); /* NULL: no-op */

typedef struct {
    char dir[LB_PATH];       /* the pair's scratch directory */
    char logs_a[LB_PATH];    /* active's logs/ */
    char insp_b[LB_PATH];    /* passive's inspect/ */
    char sock_a[LB_PATH];    /* active's control socket */
    char sock_b[LB_PATH];    /* passive's control socket */
    pid_t pid_a, pid_b;      /* the daemons */
    double cpu_a, cpu_b;     /* CPU seconds at the last lb_pair_cpu() */
    int port;                /* the passive's listening port */
    bool hold_replay;        /* replay held back: wait for durable, not replayed */
    bool sync_after;         /* lb_pair_ship fsyncs logs/ after the run, not in each drop */
    uint64_t anon_a, anon_b; /* peak RssAnon seen by the monitor, KiB (sampled every ~20 ms) */
    lb_shaper_t *shaper;     /* or NULL */
    int pool_ready;          /* ready files in the passive's pool when the backlog was dropped */
    int pool_bare;           /* its bare (empty) files then */
} lb_pair_t;

/* Per-generation times of one run, indexed by generation number. */
typedef struct {
    uint64_t ngen;         /* generations 1..ngen are tracked */
    uint64_t *closed_ns;   /* dropped into the active's logs/ (UTC ns) */
    uint64_t *durable_ns;  /* appeared under its final name in the passive's inspect/ */
    uint64_t *replayed_ns; /* the active learned replayed(N) (status, polled every 10 ms) */
} lb_times_t;

/* Makes a pair under dir, the generations staged in stage/ (names as in logs/). Certificates
 * come from certs (made once by `logship certs`). Starts both daemons, drops generation 1 and
 * waits until it is replayed (connection and store opened), so later figures exclude start-up. */
int lb_pair_start(lb_pair_t *p, const char *dir, const char *bin, const char *certs,
                  const char *stage, const lb_pair_cfg_t *cfg);
void lb_pair_stop(lb_pair_t *p); /* stops both daemons by pid */

/* Drops generations first..last from stage/ into the active's logs/ (rename + dir fsync each),
 * at rate generations per second (0: all at once), with the monitor recording t. Waits until
 * last is replayed or timeout_s passes. Returns 0, or -1 on timeout. */
int lb_pair_ship(lb_pair_t *p, const char *stage, uint64_t first, uint64_t last, double rate,
                 double timeout_s, lb_times_t *t);
void lb_times_init(lb_times_t *t, uint64_t ngen);
void lb_times_free(lb_times_t *t);
void lb_pair_cpu(lb_pair_t *p); /* refreshes cpu_a and cpu_b */

/* Stages generation files: the sorted closed names of src_logs (at most max). */
int lb_list_gens(const char *logs, char ***names, size_t *n);

/* ---- rawcopy.c --------------------------------------------------------------------------- */
typedef struct {
    double seconds; /* first byte sent to the last file renamed + dir fsynced */
    uint64_t bytes; /* file bytes */
    double *lat_ms; /* per-file: send start -> renamed on the receiver (n entries) */
    size_t n;       /* files */
} lb_raw_t;
/* Sends files[0, n) from src to dst over one loopback TCP connection; the receiver writes,
 * fsyncs, renames and fsyncs the directory per file. rate 0: back to back (throughput); else
 * one file at a time at that rate, waiting for each ack (latency). Returns 0 or -1. */
int lb_rawcopy(const char *src, char **files, size_t n, const char *dst, double rate, lb_raw_t *r);

/* ---- rsync.c ----------------------------------------------------------------------------- */
typedef struct {
    pid_t pid;         /* the rsync daemon */
    int port;          /* its port on 127.0.0.1 */
    char dst[LB_PATH]; /* the module's directory */
} lb_rsyncd_t;
int lb_rsyncd_start(lb_rsyncd_t *d, const char *dir);
void lb_rsyncd_stop(lb_rsyncd_t *d);
/* rsync -a [--fsync] src/ to the daemon's module; returns seconds, or -1 on failure. */
double lb_rsync(lb_rsyncd_t *d, const char *src, bool fsync);

/* ---- lmdbapply.c ------------------------------------------------------------------------- */
/* Applies the records of files[0, n) (in src) to a fresh LMDB environment in dir, batch
 * generations per write transaction with a meta record, MDB_NOMETASYNC, one mdb_env_sync at the
 * end. The files are read and parsed before the clock starts. Returns seconds or -1. */
double lb_lmdb_apply(const char *src, char **files, size_t n, const char *dir, int batch,
                     uint64_t *records);

/* ---- wan.c ------------------------------------------------------------------------------- */
/* Creates namespaces a and b joined by a veth pair (10.77.0.1 / 10.77.0.2), each side shaped
 * with netem (rate mbit, delay rtt_ms/2). Returns 0, or -1 with the reason in why. */
int lb_wan_up(const char *a, const char *b, int mbit, int rtt_ms, char *why, size_t whylen);
void lb_wan_down(const char *a, const char *b);

/* ---- report.c ---------------------------------------------------------------------------- */
typedef enum {
    LB_T_NONE = 0, /* no target */
    LB_T_MIN,      /* ratio (value / baseline) must be >= target */
    LB_T_MAX,      /* ratio must be <= target */
    LB_T_ABS_MAX   /* value must be <= target (absolute) */
} lb_target_kind_t;

typedef struct {
    char name[96];         /* measurement */
    char unit[16];         /* MB/s, ms, MiB, ... */
    double v[LB_MAXRUNS];  /* one value per run */
    int runs;              /* values in v */
    char baseline[96];     /* name of the measurement compared with, "" for none */
    lb_target_kind_t kind; /* how the target reads */
    double target;         /* see kind */
    char note[160];        /* what the target is, for the table */
} lb_result_t;

lb_result_t *lb_result_add(const char *name, const char *unit, const double *v, int runs);
lb_result_t *lb_result_find(const char *name);
int lb_result_count(void);              /* results added so far */
const lb_result_t *lb_result_at(int i); /* 0 <= i < lb_result_count(), in the order added */
/* Sets r's baseline (by name) and target. */
void lb_result_cmp(lb_result_t *r, const char *baseline, lb_target_kind_t kind, double target,
                   const char *note);
void lb_skip(const char *what, const char *why); /* a clear "skipped:" line, kept for the table */
void lb_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the table, writes results.json and (when gnuplot exists) chart.png into out. The
 * latency series (steady run) and the throughput bars are written as .dat files beside. */
int lb_report(const char *out, const lb_times_t *steady, const char *gnuplot_title);

/* ---- runs.c: the measurements, each adding its results --------------------------------- */
typedef struct {
    bool quick;           /* --quick sizes */
    int runs;             /* repetitions of each figure */
    char bin[LB_PATH];    /* directory of logshipd and logship */
    char tmp[LB_PATH];    /* scratch root */
    char certs[LB_PATH];  /* CA and node certificates */
    char set[LB_PATH];    /* the master set: generations + history (a logs/ directory) */
    char **gens;          /* sorted closed names in set */
    size_t ngens;         /* how many */
    uint64_t gen_bytes;   /* average generation size, bytes */
    uint64_t tput_gens;   /* throughput runs ship generations 2..tput_gens */
    uint64_t steady_gens; /* steady runs ship 2..steady_gens */
    double steady_rate;   /* generations per second in the steady runs */
    uint64_t backlog;     /* B for the RSS figure (10 x B too) */
    uint64_t wan_gens;    /* WAN runs ship 2..wan_gens */
    lb_times_t steady;    /* per-generation times of the last steady run (for the chart) */
} lb_ctx_t;

void lb_run_raw(lb_ctx_t *c);
void lb_run_rsync(lb_ctx_t *c);
void lb_run_lmdb(lb_ctx_t *c);
void lb_run_logship(lb_ctx_t *c, const char *label, const lb_pair_cfg_t *cfg);
void lb_run_steady(lb_ctx_t *c);
void lb_run_pickup(lb_ctx_t *c);
void lb_run_rss(lb_ctx_t *c);
void lb_run_wan(lb_ctx_t *c);
void lb_run_seed(lb_ctx_t *c); /* seed.c */
void lb_run_writer(
    lb_ctx_t *c); /* writer.c: `logship load` against the LMDB apply of its records */

/* ---- commitlat.c, pg.c: commit latency (issue 15) -------------------------------------- */
/* The transaction both sides commit: LB_COMMIT_ROWS puts (insert or update) of
 * LB_COMMIT_VAL_LEN-byte values under LB_COMMIT_KEY_LEN-byte keys; row r's key is drawn from
 * the r-th third of LB_COMMIT_KEYS key numbers (so PostgreSQL's rows lock in one order). */
#define LB_COMMIT_ROWS    3
#define LB_COMMIT_KEY_LEN 16
#define LB_COMMIT_VAL_LEN 100
#define LB_COMMIT_KEYS    999999

typedef struct {
    double *v;       /* per-transaction latencies, ms */
    size_t n, cap;   /* used, allocated */
    double rate;     /* commits per second */
    uint64_t failed; /* transactions pgbench logged as failed or skipped */
} lb_lat_t;
void lb_lat_add(lb_lat_t *l, double ms);
void lb_lat_free(lb_lat_t *l);

typedef struct {
    char bin[LB_PATH];     /* PostgreSQL's programs */
    char dir[LB_PATH];     /* scratch: primary/, standby/, sockets, logs, the pgbench script */
    char primary[LB_PATH]; /* the primary's data directory */
    char standby[LB_PATH]; /* the standby's */
    int port_p, port_s;    /* their ports on 127.0.0.1 (Unix sockets in dir) */
    pid_t pid_p, pid_s;    /* their postmasters (postmaster.pid), 0 when stopped */
    bool drop;             /* run PostgreSQL's programs as uid/gid (the harness is root) */
    uid_t uid;             /* nobody's */
    gid_t gid;
} lb_pg_t;
/* initdb, the primary (synchronous_standby_names '*'), the table kv, pg_basebackup -R, the
 * standby; waits until it streams as the synchronous standby. 0, or -1 with the reason in why
 * (what was started is then still recorded: call lb_pg_stop). */
int lb_pg_start(lb_pg_t *pg, const char *bin, const char *dir, char *why, size_t whylen);
void lb_pg_stop(lb_pg_t *pg); /* pg_ctl stop -m fast, then signals by pid; NULL: no-op */
void lb_pg_stop_all(void);    /* the cluster started last, if still running (exit path) */
/* pgbench, clients connections, secs seconds, synchronous_commit = level: tps and every
 * transaction's latency (its -l log) into out (owned by the caller: lb_lat_free). 0 or -1. */
int lb_pg_bench(lb_pg_t *pg, const char *level, int clients, double secs, lb_lat_t *out);
/* The cells (1, 8, 32 threads): logship local, PostgreSQL local, on, remote_apply. */
void lb_run_commit(lb_ctx_t *c, lb_pg_t *pg);
/* blocklag.c: block mode's lag, commit durable on the active -> durable on the copy, with a
 * writer at about 20 MB/s of log (issue 15: p99 <= 2 ms on loopback). */
void lb_run_blocklag(lb_ctx_t *c);
void lb_commit_table(void); /* the side-by-side table (after lb_report) */

/* ---- compare.c --------------------------------------------------------------------------- */
/* Reads an earlier results.json (before this run overwrites it): a malloc'd NUL-terminated copy,
 * or NULL (with a message) when it cannot be read or is not a results array. */
char *lb_compare_load(const char *old_path);
/* Prints each figure of this run against the same figure of old_json (read from old_path):
 * medians, change in percent, better or worse, whether inside the old min-max. 0 or -1. */
int lb_compare(const char *old_path, const char *old_json);

#endif
