/*
 * status: the status model (DESIGN.md "Copy states and lag accounting"). One struct per copy
 * holds every figure `logship status` shows; a node struct holds the copies. Two pure renderers
 * turn the same structs into the JSON document of the control socket (docs/STATUS.md) and into
 * the Prometheus text exposition format, so the two cannot disagree. The daemon only fills the
 * structs from its objects.
 *
 * Figures are kept as integers in their natural unit (generations, bytes, nanoseconds): the
 * renderers convert (seconds for Prometheus, the documented JSON units). 64-bit integers are
 * written exactly, digit for digit, in both outputs (cJSON would print them as doubles and lose
 * the last digits of a nanosecond time); ls_status_json_parse() reads them back exactly.
 *
 * Also here: the copy's counters that survive restarts (ls_status_counters_t), kept in a small
 * file beside the copy's other state files.
 *
 * Lifecycle: the caller owns every struct (zero-initialise, fill, render, free its copies array).
 * Threading: no shared state; every function may run on any thread.
 */
#ifndef LS_STATUS_H
#define LS_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define LS_STATUS_NAME_MAX 64  /* node, database and network names, bytes */
#define LS_STATUS_ADDR_MAX 160 /* "host:port", bytes */
#define LS_STATUS_TEXT_MAX 512 /* reasons, comments, errors, bytes */
#define LS_STATUS_NETS_MAX 8   /* replication networks per target */

/* A lag histogram (lag.c): counts since start in log-linear buckets, LS_STATUS_LAG_SUB to each
 * power of two from 2^MIN_LOG2 to 2^MAX_LOG2 ns, bucket 0 below and the last above; a value read
 * back as its bucket's upper bound is at most 1/16 high. */
#define LS_STATUS_LAG_SUB      16
#define LS_STATUS_LAG_MIN_LOG2 10
#define LS_STATUS_LAG_MAX_LOG2 36
#define LS_STATUS_LAG_BUCKETS                                                                      \
    (2 + (LS_STATUS_LAG_MAX_LOG2 - LS_STATUS_LAG_MIN_LOG2) * LS_STATUS_LAG_SUB)
size_t ls_status_lag_bucket(uint64_t ns);
uint64_t ls_status_lag_lower(size_t i); /* the bucket's bounds, ns: lower <= v < upper */
uint64_t ls_status_lag_upper(size_t i); /* UINT64_MAX for the last */
/* The p-th percentile (0 < p <= 100) of counts[LS_STATUS_LAG_BUCKETS] as the upper bound of its
 * bucket (0 when empty). */
uint64_t ls_status_lag_percentile(const uint64_t *counts, double p);

typedef enum { LS_STATUS_ACTIVE = 0, LS_STATUS_PASSIVE } ls_status_role_t;

/* A position in the log and when it was reached. */
typedef struct {
    uint64_t gen;     /* generation (0: none yet) */
    uint64_t time_ns; /* when it was reached, UTC ns (0: not known) */
} ls_status_pos_t;

/* One replication network of an active copy's target (docs/NETWORKS.md). */
typedef struct {
    char name[LS_STATUS_NAME_MAX];        /* the network's name in the configuration */
    char remote[LS_STATUS_ADDR_MAX];      /* "host:port" it connects to */
    char bind[LS_STATUS_ADDR_MAX];        /* local address it binds ("" any) */
    const char *state;                    /* "unused", "in-use", "down", ... (static string) */
    char last_error[LS_STATUS_TEXT_MAX];  /* last failure on it ("" none) */
    uint64_t last_error_time_ns;          /* when, UTC ns (0: never) */
    char left_reason[LS_STATUS_TEXT_MAX]; /* why the copy last left it ("" never) */
    uint64_t left_time_ns;                /* when, UTC ns (0: never) */
    uint64_t failures;                    /* failed connections and probes since start */
    uint64_t settle_ns;                   /* settle time before failback to it, ns */
    uint64_t up_ns;                       /* how long its probe has been up, ns (0: no probe) */
} ls_status_net_t;

/* A passive copy's seed, the running one or the last one (docs/SEED.md). */
typedef struct {
    bool present;                     /* a seed ran since the daemon started */
    uint64_t id;                      /* the seed's number in this daemon */
    const char *state;                /* "connecting", "snapshot", ... (static string) */
    char from[LS_STATUS_NAME_MAX];    /* the source node */
    char network[LS_STATUS_NAME_MAX]; /* the network it came over */
    uint64_t bytes_done;              /* snapshot bytes received */
    uint64_t bytes_total;             /* snapshot bytes in all (0: not known yet) */
    double percent;                   /* of bytes_total received, 0..100 */
    double rate_bps;                  /* bytes per second, recent */
    double eta_s;                     /* seconds left at that rate */
    uint64_t generation;              /* N: the generation holding the snapshot's last LSN */
    uint64_t lsn;                     /* L: the snapshot's last LSN */
    bool manual_resume;               /* shipping waits for the operator after the swap */
    uint64_t start_time_ns;           /* UTC ns */
    uint64_t end_time_ns;             /* UTC ns (0: running) */
    char error[LS_STATUS_TEXT_MAX];   /* why it failed ("" none) */
    uint64_t wire_bytes_received;     /* on its connection, bytes */
    uint64_t zstd_loop_calls;         /* decompressions run on the loop (not the worker) */
} ls_status_seed_t;

/* An operator's decision about a copy (either side's), kept across restarts by the caller
 * (engine/ship's ls_ship_op_t and engine/passive's are this). */
#define LS_STATUS_COMMENT_MAX 257 /* the operator's comment with its NUL (the protocol's 256) */
typedef struct {
    bool suspended;                      /* shipping suspended (and replay, on a passive) */
    bool replay_suspended;               /* passive only: replay suspended, receiving goes on */
    char comment[LS_STATUS_COMMENT_MAX]; /* the operator's words */
    uint64_t since_ns;                   /* when, UTC ns (0: not suspended) */
} ls_status_op_t;

/* Throughput over the last minute: bytes in each of the last 60 seconds (ls_status_rate_*).
 * Zero-initialised is empty. */
typedef struct {
    uint64_t bucket[60]; /* bytes in each second */
    uint64_t second;     /* the second (UTC) bucket[second % 60] holds */
} ls_status_rate_t;

/* Counters kept with the copy: they survive restarts (ls_status_counters_load/_save). */
typedef struct {
    uint64_t ask_agains;          /* ASK_AGAIN frames, received (active) or sent (passive) */
    uint64_t inspection_failures; /* of those, the ones a failed inspection caused */
} ls_status_counters_t;

/* Every figure of one copy. Fields marked "active" or "passive" are filled, and rendered, on
 * that side only. */
typedef struct {
    /* identity and state */
    char database[LS_STATUS_NAME_MAX]; /* the database copied */
    ls_status_role_t role;             /* which side this node is on */
    char source[LS_STATUS_NAME_MAX];   /* the active node */
    char target[LS_STATUS_NAME_MAX];   /* the passive node */
    const char *state;                 /* "Healthy", ... (static string) */
    char reason[LS_STATUS_TEXT_MAX];   /* why it is in that state */
    char comment[LS_STATUS_TEXT_MAX];  /* the operator's comment on a suspension */
    uint64_t suspended_since_ns;       /* when the suspension began, UTC ns (0: none) */
    bool replay_suspended;             /* passive: replay suspended, copying goes on */
    /* the connection */
    char network[LS_STATUS_ADDR_MAX]; /* active: network in use; passive: source address */
    bool tls;                         /* TLS protects it */
    uint64_t rtt_ns;                  /* smoothed heartbeat round trip, ns */
    uint64_t rtt_last_ns;             /* active: the last round trip, ns */
    int64_t clock_offset_ns;          /* passive: source clock minus ours, ns */
    /* positions, each with its time */
    ls_status_pos_t last_generated;       /* newest closed generation on the active (its close
                                             time, from its trailer) */
    ls_status_pos_t last_copied;          /* durable on the passive */
    ls_status_pos_t last_inspected;       /* inspected on the passive */
    ls_status_pos_t last_replayed;        /* applied to the copy store */
    ls_status_pos_t last_replayed_synced; /* applied before the copy store's last sync */
    uint64_t last_replayed_lsn;           /* passive: the copy store's last LSN */
    /* queues and lags */
    uint64_t copy_queue;         /* generations closed, not yet durable on the passive */
    uint64_t copy_queue_bytes;   /* their bytes */
    uint64_t replay_queue;       /* generations durable, not yet replayed */
    uint64_t replay_queue_bytes; /* their bytes */
    uint64_t copy_lag_ns;        /* age of the oldest not durable, ns (0: none) */
    uint64_t replay_lag_ns;      /* age of the oldest not replayed, ns (0: none) */
    double throughput_bps;       /* bytes made durable per second, last minute */
    /* block mode (active side, docs/BLOCKMODE.md) */
    const char *mode;                     /* "file" or "block" (static; NULL: not shown) */
    uint64_t mode_block;                  /* 1 in block mode, else 0 (the metric) */
    uint64_t mode_switches;               /* switches between the modes since start */
    char mode_reason[LS_STATUS_TEXT_MAX]; /* why the last switch ("" none) */
    uint64_t mode_switch_time_ns;         /* when, UTC ns (0: never) */
    uint64_t block_bytes;                 /* BLOCK bytes sent since start */
    uint64_t block_generation;            /* the open generation the target's shadow holds */
    uint64_t block_offset;                /* its bytes durable on the target (BLOCK_ACK) */
    uint64_t block_durable_lsn;           /* the copy holds every record up to it durably */
    uint64_t block_applied_lsn;           /* its store holds every record up to it */
    bool block_apply_eager;     /* passive: the shadow is applied early at each acknowledgement (a
                                   commit waits for the applied position, or the source cannot say);
                                   false: only once the stream is quiet (docs/BLOCKMODE.md) */
    uint64_t block_lag_samples; /* commits' lags measured since start */
    uint64_t block_lag_p50_ns;  /* commit durable on the active -> on the copy, ns, */
    uint64_t block_lag_p99_ns;  /* over the last 1024 batches */
    uint64_t block_lag_max_ns;
    uint64_t block_lag_hist[LS_STATUS_LAG_BUCKETS]; /* all of them since start (lag.c) */
    uint64_t block_lag_sum_ns;                      /* ... and their sum */
    /* counters */
    ls_status_counters_t kept;    /* survive restarts */
    uint64_t sent_generations;    /* active: generations sent in full since start */
    uint64_t sent_bytes;          /* active: GEN_DATA bytes sent since start */
    uint64_t wire_bytes_sent;     /* active: connection bytes on the socket since start */
    uint64_t connections;         /* active: connections to the target made since start */
    uint64_t frame_bytes_sent;    /* active: connection frame bytes before zstd */
    uint64_t wire_bytes_received; /* passive: connection bytes on the socket */
    uint64_t zstd_loop_calls;     /* zstd calls run on the loop, not the worker */
    uint64_t removed_generations; /* active: logs removed since start */
    uint64_t applied_generations; /* passive: ever applied to the copy store (meta) */
    uint64_t replay_transactions; /* passive: store transactions since start */
    /* active: the replication networks (docs/NETWORKS.md) */
    char last_error[LS_STATUS_TEXT_MAX];      /* why the last connection ended */
    bool have_networks;                       /* the network fields below are filled */
    char network_pinned[LS_STATUS_NAME_MAX];  /* the operator's pin ("" none) */
    uint64_t network_switches;                /* times the copy changed network since start */
    char last_switch[LS_STATUS_TEXT_MAX];     /* the last switch, as logged */
    uint64_t last_switch_time_ns;             /* when, UTC ns */
    uint64_t resent_bytes;                    /* GEN_DATA bytes sent again since start */
    ls_status_net_t nets[LS_STATUS_NETS_MAX]; /* as configured for the target, in order */
    int nnets;                                /* entries of nets filled */
    /* passive: the seed */
    ls_status_seed_t seed; /* present once `logship seed` ran since the start */
} ls_status_copy_t;

/* A database's role on this node (its role file, engine/role) and what the activation that made
 * its epoch may have lost (docs/ACTIVATION.md). */
typedef struct {
    char database[LS_STATUS_NAME_MAX]; /* the database */
    const char *role;                  /* "active", "copy", "demoted", "diverged" (static) */
    uint32_t epoch;                    /* the epoch this node knows as current */
    char follows[LS_STATUS_NAME_MAX];  /* the active it follows or was fenced by ("" none) */
    uint64_t since_ns;                 /* when the role was taken, UTC ns (0: by configuration) */
    char reason[LS_STATUS_TEXT_MAX];   /* why */
    const char *activation;            /* this daemon's last activation of it: "probing",
                                          "activating", "done", "refused", "failed" or NULL */
    const char *switchover;            /* this daemon's last switchover of it (switchover.c):
                                          "holding" ... "done", "refused", "failed" or NULL */
    uint64_t loss_generations;         /* closed generations possibly lost (0: none) */
    uint64_t loss_first_generation;    /* their range (0, 0: none) */
    uint64_t loss_last_generation;
    uint64_t loss_bytes;      /* their bytes, as the old active announced them */
    uint64_t loss_from_ns;    /* commits lost were made after this (UTC ns) ... */
    uint64_t loss_to_ns;      /* ... and up to this */
    uint64_t open_generation; /* the old active's open generation, never shipped (0: none) */
    /* synchronous commit as the database's writer runs it (docs/BLOCKMODE.md), active only */
    const char *sync_state;               /* "off", "sync", "degraded"; NULL: not active */
    const char *sync_level;               /* "local", "remote_durable", "remote_applied" */
    uint32_t sync_copies;                 /* copies a commit waits for (0: local) */
    uint32_t sync_switches;               /* sync <-> degraded since the writer opened */
    uint64_t sync_since_ns;               /* when the state last changed, UTC ns (0: never) */
    char sync_reason[LS_STATUS_TEXT_MAX]; /* why degraded ("" otherwise) */
} ls_status_db_t;

/* The node and its copies. */
typedef struct {
    char node[LS_STATUS_NAME_MAX]; /* this node's name */
    bool plaintext;                /* the node runs without TLS */
    uint64_t time_ns;              /* when the figures were taken, UTC ns */
    uint64_t start_time_ns;        /* when the daemon started, UTC ns */
    ls_status_copy_t *copies;      /* every copy: actives first (borrowed) */
    size_t ncopies;                /* entries of copies */
    ls_status_db_t *databases;     /* every configured database's role (borrowed) */
    size_t ndatabases;             /* entries of databases */
} ls_status_node_t;

/* ---- renderers ------------------------------------------------------------------------------ */
/* Adds the status document's members (node, plaintext, time_ns, start_time_ns, copies,
 * databases) to obj,
 * an object. Borrows n. Returns 0 or LS_ENOMEM. */
int ls_status_to_json(const ls_status_node_t *n, cJSON *obj);
/* Adds a seed's members to obj (the "seed" object of a copy; also the seed_status command). */
void ls_status_seed_to_json(const ls_status_seed_t *s, cJSON *obj);
/* A "networks" array of count networks (also the network command's answer). Returns a new item
 * owned by the caller, or NULL when out of memory. */
cJSON *ls_status_networks_to_json(const ls_status_net_t *nets, int count);
/* The Prometheus text exposition format (version 0.0.4) of n: base units (seconds, bytes),
 * HELP and TYPE for every family, counters ending in _total. Returns a malloc'd string owned by
 * the caller, or NULL when out of memory. */
char *ls_status_to_prometheus(const ls_status_node_t *n);

/* ---- exact 64-bit integers in cJSON ---------------------------------------------------------- */
/* Adds v to obj under key as an exact JSON integer (a raw cJSON item). Returns the item or NULL
 * (out of memory). */
cJSON *ls_status_json_add_u64(cJSON *obj, const char *key, uint64_t v);
/* Adds what an activation may have lost to obj (a "loss" object: status's for each database,
 * activate_status's report): generations, first_generation, last_generation, bytes, from_ns,
 * to_ns, open_generation. */
void ls_status_json_add_loss(cJSON *obj, uint64_t generations, uint64_t first_generation,
                             uint64_t last_generation, uint64_t bytes, uint64_t from_ns,
                             uint64_t to_ns, uint64_t open_generation);
/* Parses text (borrowed) like cJSON_Parse, but integers are kept exactly: every integer number
 * that a double cannot hold becomes a raw item with its digits (cJSON_Print writes it back
 * unchanged). Returns a tree owned by the caller, or NULL when text is not JSON. */
cJSON *ls_status_json_parse(const char *text);
/* The member key of obj as an exact unsigned integer (a number or a raw integer item), 0 when
 * absent or not one. */
uint64_t ls_status_json_u64(const cJSON *obj, const char *key);
/* The member key of obj as a double (numbers and raw integers), 0 when absent. */
double ls_status_json_num(const cJSON *obj, const char *key);

/* ---- counters kept with the copy --------------------------------------------------------------
 */
/* Reads the counters at path (a small JSON file). Absent: all zero, 0. Returns 0, LS_ECORRUPT
 * (not our format: *out stays zero), LS_EIO. */
int ls_status_counters_load(const char *path, ls_status_counters_t *out);
/* The same from the file's text[0..len) already in memory (no I/O; a NUL byte is LS_ECORRUPT). */
int ls_status_counters_parse(const char *text, size_t len, ls_status_counters_t *out);
/* Writes them to path durably (temporary file, fsync, rename, directory fsync). 0 or LS_E*. */
int ls_status_counters_save(const char *path, const ls_status_counters_t *c);
/* Counts one ASK_AGAIN with the code it gave (an LS_E* code): every one is an ask-again, and it
 * is an inspection failure unless it asked for lack of space or because of a gap. */
void ls_status_counters_ask(ls_status_counters_t *c, int code);
/* Whether an ASK_AGAIN with this code reports damage (an inspection failure: a digest, a record,
 * the chain ...) rather than a gap or a full disk. */
bool ls_status_ask_is_damage(int code);

/* Adds bytes at now (UTC ns) to the last minute's figure. */
void ls_status_rate_add(ls_status_rate_t *r, uint64_t bytes, uint64_t now);
/* Bytes per second over the last minute, at now (UTC ns). A clock that went back clears it. */
double ls_status_rate_per_s(ls_status_rate_t *r, uint64_t now);

#endif
