/*
 * A pair of real daemons for integration tests: node-a (active for db1) and node-b (passive for
 * db1) on loopback, each in its own directory under one scratch directory, TLS with throw-away
 * certificates from `logship certs` (or plaintext when asked). Every process it starts it stops
 * by pid (ls_h_pair_fini kills what is still running). Conditions are waited for with deadlines
 * through the daemons' control sockets, never with fixed sleeps.
 *
 *   <dir>/node-a/db1/{logs,store}              the active database (written by `logship load`)
 *   <dir>/node-b/db1/{inspect,logs,store}      the passive copy
 */
#ifndef LS_TEST_DAEMONS_H
#define LS_TEST_DAEMONS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

enum { LS_H_A = 0, LS_H_B = 1 };

typedef struct {
    bool plaintext;             /* insecure_plaintext = true instead of TLS */
    const char *a_db_extra;     /* extra lines in node-a's [database db1] */
    const char *b_db_extra;     /* extra lines in node-b's [database db1] */
    const char *a_target_extra; /* extra lines in node-a's [target node-b] */
    const char *a_node_extra;   /* extra lines in node-a's [node] */
    const char *b_node_extra;   /* extra lines in node-b's [node] */
    bool seedable;              /* node-a listens too (aport) and node-b names that address in a
                                   [source node-a] section, so `logship seed` can run */
} ls_h_pair_opts_t;

typedef struct {
    char *dir;         /* scratch directory */
    int port;          /* node-b's listen port */
    int aport;         /* node-a's listen port (seedable pairs), else 0 */
    char conf[2][512]; /* configuration files */
    char sock[2][512]; /* control sockets */
    char log[2][512];  /* daemon logs (stderr) */
    char db[2][512];   /* db1's directory on each node */
    pid_t pid[2];      /* running daemons (0: none) */
    pid_t load;        /* a background `logship load` (0: none) */
} ls_h_pair_t;

/* Creates the scratch directory, certificates and both configuration files. */
void ls_h_pair_init(ls_h_pair_t *p, const char *tag, const ls_h_pair_opts_t *o);
/* Kills whatever still runs (by pid) and removes the scratch directory (kept when LS_KEEP is
 * set in the environment). */
void ls_h_pair_fini(ls_h_pair_t *p);

/* Starts a node's daemon with extra environment entries ("K=V", NULL-terminated, may be NULL);
 * waits until its control socket answers. */
void ls_h_node_start(ls_h_pair_t *p, int node, char *const env[]);
/* The same with the command line given (argv[0] a path; e.g. logshipd under `ip netns exec`);
 * where ("" or " in NS") ends the failure messages. */
void ls_h_node_start_argv(ls_h_pair_t *p, int node, char *const argv[], char *const env[],
                          const char *where);
/* SIGTERM and wait: asserts a clean exit (status 0) within 20 s. */
void ls_h_node_stop(ls_h_pair_t *p, int node);
/* SIGKILL and reap. */
void ls_h_node_kill(ls_h_pair_t *p, int node);

/* `logship load <node-a db1> ARGS` to completion (asserts success), or in the background. */
void ls_h_load(ls_h_pair_t *p, const char *args);
void ls_h_load_start(ls_h_pair_t *p, const char *args);
void ls_h_load_wait(ls_h_pair_t *p); /* asserts success */
/* A background `logship load` (pid) ended on its own, refused with LS_EFENCED naming
 * new_active (asserted from its output in errlog). */
void ls_h_load_fenced(pid_t pid, const char *errlog, const char *new_active);
/* A background `logship load` on node's db1 that runs until its commits fail (a fence): paced at
 * 1500 transactions/s, 2 threads, generations of 64 KiB, the given --seed (load's default: 1),
 * acknowledged ids in acklog, its output in errlog. Its pid (asserted started): the caller
 * waits for it (ls_h_load_fenced) or kills it. */
pid_t ls_h_load_until_fenced(ls_h_pair_t *p, int node, const char *acklog, const char *errlog,
                             int seed);

/* The node's status document (NULL when the daemon does not answer). Free with cJSON_Delete. */
cJSON *ls_h_status(ls_h_pair_t *p, int node);
/* A field of db1's copy in a status document: number (-1 when absent) or string ("" absent). */
double ls_h_num(const cJSON *st, const char *field);
const char *ls_h_str(const cJSON *st, const char *field);
/* Polls node's status until field == value (numbers) within timeout_ms. */
bool ls_h_wait_num(ls_h_pair_t *p, int node, const char *field, double value, int timeout_ms);
bool ls_h_wait_state(ls_h_pair_t *p, int node, const char *state, int timeout_ms);
/* The copy has caught up: last_generated > 0 on the active node, and both nodes report it
 * replayed; prints the daemons' logs when it does not happen. ls_h_wait_caught_up: node-a the
 * active, node-b the copy. */
bool ls_h_wait_copy_caught_up(ls_h_pair_t *p, int active, int copy, int timeout_ms);
bool ls_h_wait_caught_up(ls_h_pair_t *p, int timeout_ms);

/* Compares db1's "data" on both nodes with LMDB's own mdb_dump; true when identical. */
bool ls_h_stores_equal(ls_h_pair_t *p);
/* True when db1's data on node equals a dump taken earlier with ls_h_dump_store. */
bool ls_h_store_matches_dump(ls_h_pair_t *p, int node, const char *dump);
/* Writes an mdb_dump of db1's data on node into path (the map size line left out). */
void ls_h_dump_store(ls_h_pair_t *p, int node, const char *path);

/* `logship seed db1 ARGS -c <node-b's config>` to completion: exit status, output captured. */
int ls_h_seed(ls_h_pair_t *p, const char *args, char **out, char **err, int timeout_ms);
/* The same in the background (output in <dir>/seed.log); returns its pid. */
pid_t ls_h_seed_start(ls_h_pair_t *p, const char *args);
/* node-b's "seed_status" answer for db1 (NULL when it does not answer). cJSON_Delete it. */
cJSON *ls_h_seed_status(ls_h_pair_t *p);
/* Waits until node-b's seed of db1 has received at least percent of its stream. */
bool ls_h_wait_seed_percent(ls_h_pair_t *p, double percent, int timeout_ms);

/* ---- activation and resync (issue 12): helpers shared by activate, demote, resync and
 * hostfail tests ---- */

/* ls_h_pair_init with node-b configured for activation (one [peer node-a] section used both
 * ways; b_db_extra, NULL: "copies = node-a, node-b"), plaintext and seedable, then both daemons
 * started. a_db_extra: extra lines in node-a's [database db1] (may be NULL). */
void ls_h_pair_start_peers(ls_h_pair_t *p, const char *tag, const char *a_db_extra,
                           const char *b_db_extra);
/* `logship CMD db1 ARGS -c <node's config>`: exit status, output captured (*out, *err: free). */
int ls_h_logship(ls_h_pair_t *p, const char *cmd, int node, const char *args, char **out,
                 char **err);
/* `logship activate db1` on node, asserted to succeed and to start epoch `epoch`: the first
 * generation of that epoch, from its output ("epoch E starts at generation F"). */
uint64_t ls_h_activate(ls_h_pair_t *p, int node, unsigned epoch);
/* `logship load <node's db1> ARGS` to completion: exit status, stderr in *err (free it). */
int ls_h_load_on(ls_h_pair_t *p, int node, const char *args, char **err);
/* The same, asserting success. */
void ls_h_load_ok(ls_h_pair_t *p, int node, const char *args);
/* A string member of a JSON object ("" when absent or not a string). */
const char *ls_h_jstr(const cJSON *o, const char *k);
/* db1's entry in the "databases" array of a status document (NULL: none). */
const cJSON *ls_h_db1_of(const cJSON *st);
/* Waits (20 s) until db1's role in "databases" is role and its copy state in "copies" is state;
 * prints the daemons' logs when it does not happen. */
bool ls_h_wait_role(ls_h_pair_t *p, int node, const char *role, const char *state);
/* Waits (20 s) until db1's role in "databases" is role (the role file's, as the node runs it). */
bool ls_h_wait_db_role(ls_h_pair_t *p, int node, const char *role);
/* Waits until node-b, the new active, has shipped and node-a replayed everything node-b closed;
 * prints the daemons' logs when it does not happen. */
bool ls_h_wait_b_caught_up(ls_h_pair_t *p, int timeout_ms);
/* tools/ack-check.sh on node's db1 store against an --ack-log file: asserts every id's marker. */
void ls_h_ack_check(ls_h_pair_t *p, int node, const char *acklog);

/* Prints the tail of both daemon logs to stderr (for failing tests). */
void ls_h_pair_logs(ls_h_pair_t *p);

#endif
