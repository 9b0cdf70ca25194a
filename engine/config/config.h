/*
 * config: the daemon's INI configuration file into option structs (through libinih).
 *
 * Every key is documented in docs/CONFIG.md with its default. An unknown section or key, a bad
 * value, a line too long or a missing required key is rejected with "FILE:LINE: reason" (or
 * "FILE: reason" for a missing key, naming the section). Nothing else reads the file: modules
 * receive the structs below (no global configuration).
 *
 * Lifecycle: ls_config_load() -> use -> ls_config_free(). Threading: a loaded config is
 * immutable and may be read from any thread.
 */
#ifndef LS_CONFIG_H
#define LS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <logship/error.h>

#define LS_CFG_NAME_MAX   64 /* node, database, target and network names */
#define LS_CFG_PATH_MAX   1024
#define LS_CFG_ADDR_MAX   128 /* "host:port" */
#define LS_CFG_MAX_NETS   8   /* replication networks per target */
#define LS_CFG_MAX_LISTEN 8   /* listen addresses of a node */

typedef struct {
    char host[LS_CFG_ADDR_MAX]; /* numeric address or host name */
    uint16_t port;              /* TCP port; 0 = any (tests) */
} ls_cfg_addr_t;

typedef struct {
    char name[LS_CFG_NAME_MAX]; /* network name ("repl", "public") */
    ls_cfg_addr_t remote;       /* the target's address on this network */
    char bind[LS_CFG_ADDR_MAX]; /* local address to bind (pins a NIC); "" = any */
} ls_cfg_network_t;

typedef struct {
    char name[LS_CFG_NAME_MAX];             /* the peer node's name */
    char peer_name[LS_CFG_NAME_MAX];        /* name its certificate must carry; default = name */
    ls_cfg_network_t nets[LS_CFG_MAX_NETS]; /* in order of preference */
    int nnets;                              /* networks configured, >= 1 */
    int compression_level;                  /* zstd level; 0 = compression off (default) */
    uint64_t heartbeat_interval_ms;         /* default 1000 */
    uint64_t heartbeat_timeout_ms;          /* default 5000 */
    uint64_t settle_ms;                     /* a preferred network must stay healthy this long
                                               before failback; default 10000 */
} ls_cfg_target_t;

/* The role the configuration gives a database: only its initial role, since activation makes
 * roles state the engine owns (<db>/role, engine/role). */
typedef enum { LS_CFG_ACTIVE = 1, LS_CFG_PASSIVE = 2 } ls_cfg_role_t;

#define LS_CFG_MAX_COPIES 9 /* members of a database's copy set, this node included */

/* max_log_bytes: the default cap, and "no cap" (the same values as engine/source's
 * LS_SOURCE_DEFAULT_MAX_LOG_BYTES and LS_SOURCE_NO_CAP, which the daemon passes through). */
#define LS_CFG_DEFAULT_MAX_LOG_BYTES (8ull << 30)
#define LS_CFG_NO_CAP                UINT64_MAX

typedef struct {
    char name[LS_CFG_NAME_MAX]; /* database name (directory name under data_dir) */
    ls_cfg_role_t role;         /* initial role on this node: active or passive */
    char path[LS_CFG_PATH_MAX]; /* database directory; default <data_dir>/<name> */
    char targets[LS_CFG_MAX_NETS][LS_CFG_NAME_MAX]; /* active: [target] sections shipped to */
    int ntargets;                                   /* active: >= 1 */
    char source[LS_CFG_NAME_MAX];                   /* passive: the node it copies from */
    char copies[LS_CFG_MAX_COPIES]
               [LS_CFG_NAME_MAX]; /* the copy set, this node included, in
                                     the file's order (0: see ls_config_copy_set) */
    int ncopies;
    uint64_t target_size;       /* generation target size, bytes; default 1 MiB */
    uint64_t replay_lag_ms;     /* passive: delay replay this long; default 0 */
    uint64_t keep_logs;         /* passive: replayed generations kept; default 8 */
    uint64_t truncation_lag_ms; /* active: keep logs at least this long; default 0 */
    uint64_t max_log_bytes;     /* active: bytes of logs held only for lagging targets
                                   before the oldest are removed (those targets then need a
                                   seed); default LS_CFG_DEFAULT_MAX_LOG_BYTES; LS_CFG_NO_CAP
                                   ("none" or 0 in the file): held for them forever */
    bool auto_resync;           /* an old active found demoted or diverged resyncs itself from
                                   the new active (logship resync); default false */
    bool source_verify_full;    /* active: source_verify = full: the reader computes each
                                   generation's SHA-256 before it ships; default records
                                   (false): the targets check the digest (docs/SOURCE.md) */
} ls_cfg_database_t;

typedef struct {
    char path[LS_CFG_PATH_MAX];           /* the file loaded */
    char node_name[LS_CFG_NAME_MAX];      /* [node] name, required */
    char data_dir[LS_CFG_PATH_MAX];       /* [node] data_dir, required */
    char control_socket[LS_CFG_PATH_MAX]; /* default <data_dir>/logshipd.sock */
    char metrics_listen[LS_CFG_ADDR_MAX]; /* "host:port" or "" (off, default) */
    char log_level[16];                   /* error|warn|info|debug; default info */
    uint64_t heartbeat_interval_ms; /* heartbeat period on the replication connections this node
                                       accepts (as a passive), ms; default 1000 */
    uint64_t receive_window;        /* bytes in flight per database this node accepts as a receiver
                                       (announced in WELCOME); default 4 MiB */
    char tls_ca[LS_CFG_PATH_MAX];   /* [tls] ca, cert, key: required unless plaintext */
    char tls_cert[LS_CFG_PATH_MAX];
    char tls_key[LS_CFG_PATH_MAX];
    bool plaintext;                          /* [tls] insecure_plaintext = true */
    ls_cfg_addr_t listen[LS_CFG_MAX_LISTEN]; /* [listen] address (repeatable) */
    int nlisten;
    ls_cfg_target_t *targets; /* [target NAME] sections */
    int ntargets;
    ls_cfg_database_t *databases; /* [database NAME] sections */
    int ndatabases;
    ls_cfg_target_t *sources; /* [source NAME] sections: how to reach a node this node copies
                                 from (seeding connects to it); same keys as [target NAME]. A
                                 [peer NAME] section is both a [target NAME] and a [source NAME] */
    int nsources;
} ls_config_t;

/* Loads and validates path. On error returns LS_ECONFIG (or LS_ENOENT/LS_EIO for the file) and
 * writes "FILE:LINE: reason" into err. *out is owned by the caller (ls_config_free). */
int ls_config_load(const char *path, ls_config_t **out, char *err, size_t errlen);
/* The same from text[0..len) already in memory, named name in messages ("NAME:LINE: reason"), as
 * if it were the file name (the fuzz target's entry point; no I/O). */
int ls_config_parse(const char *name, const char *text, size_t len, ls_config_t **out, char *err,
                    size_t errlen);
void ls_config_free(ls_config_t *cfg); /* NULL is a no-op */

const ls_cfg_target_t *ls_config_target(const ls_config_t *cfg, const char *name);
const ls_cfg_database_t *ls_config_database(const ls_config_t *cfg, const char *name);
/* The [source NAME] section, or NULL when there is none. */
const ls_cfg_target_t *ls_config_source(const ls_config_t *cfg, const char *name);

/* Any section that says how to reach node name: [target NAME] (or [peer NAME]), else [source
 * NAME]; NULL when there is none. */
const ls_cfg_target_t *ls_config_peer(const ls_config_t *cfg, const char *name);
/* The copy set of d: its 'copies' list when given, else this node, its source and its targets
 * (each once, in that order). Writes up to LS_CFG_MAX_COPIES names into out; returns how many. */
int ls_config_copy_set(const ls_config_t *cfg, const ls_cfg_database_t *d,
                       char out[][LS_CFG_NAME_MAX]);

/* Value parsers shared with the command line (0 or LS_EINVAL). Sizes take B/KiB/MiB/GiB
 * suffixes (and plain bytes), durations ms/s/m/h (plain = seconds). */
int ls_parse_size(const char *s, uint64_t *out);
int ls_parse_duration_ms(const char *s, uint64_t *out);
int ls_parse_addr(const char *s, ls_cfg_addr_t *out);

#endif
