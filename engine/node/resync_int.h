/* The incremental resync's state, shared by resync_inc.c (the job queue, the seed client's
 * actions, the outcome), resync_job.c (the jobs on the pool), resync_conn.c (the connection to
 * the new active) and resync_cmd.c (the commands that start, show and stop it). Internal to
 * engine/node. */
#ifndef LS_NODE_RESYNC_INT_H
#define LS_NODE_RESYNC_INT_H

#include "node/node_int.h"
#include "seed/seed.h"
#include "seed/session.h"

#define NODE_RSI_RETRY_NS (5ull * 1000000000ull) /* auto_resync: again after a failure */

typedef enum { J_DEMOTE = 1, J_BEGIN, J_DATA, J_END, J_SWAP, J_ABORT } job_kind_t;

typedef struct rjob {
    struct rjob *next;
    job_kind_t kind;
    uint64_t offset;
    uint32_t len;
    uint8_t digest[LS_DIGEST_SIZE];
    uint8_t data[]; /* J_DATA: len bytes */
} rjob_t;

struct node_rsi {
    ls_node_t *node;
    node_db_t *db;
    uint64_t id;
    const ls_cfg_target_t *src; /* how the new active is reached */
    int net;                    /* the network of the connection (index into src->nets) */
    int nets_tried;             /* networks tried since the connection was asked for */
    char follows[LS_ROLE_NAME_MAX + 1];
    ls_seed_client_t *cs;
    ls_conn_t *conn;
    ls_conn_stats_t cstats;
    uint64_t start_ns, end_ns; /* UTC ns */
    bool finished;             /* the outcome is final (ok or error) */
    bool ok;
    char message[4096]; /* the outcome, or what it does now */
    /* jobs: a queue, one on the pool at a time */
    rjob_t *head, *tail, *cur;
    uv_work_t work;
    bool demote_queued;
    bool full;           /* no generation in common: a full seed on a second connection */
    char full_why[1024]; /* ... why */
    /* the current job's inputs and results (the pool thread touches only these) */
    ls_role_link_t *theirs;
    size_t ntheirs;
    uint32_t new_epoch;
    char new_active[LS_ROLE_NAME_MAX + 1];
    ls_role_demote_report_t rep;
    uint8_t *keys;
    size_t keys_len;
    uint64_t nkeys;
    ls_seed_info_t info; /* from the session's INSTALL_BEGIN */
    ls_seed_install_t *install;
    uint64_t done;
    bool swapped;
    ls_role_state_t new_role; /* the role file once swapped: copy, following the new active */
    int jrc;
    char jerr[1024];
};

/* Carries out r->cs's actions: frames sent, jobs queued, the outcome (resync_inc.c). */
void ls__rsi_act(struct node_rsi *r);
/* The job r->cur, on the pool: only the job's fields of r (resync_job.c). */
void ls__rsi_run_job(uv_work_t *w);
/* Opens the connection to the new active for r->cs (resync_conn.c). */
void ls__rsi_connect_src(struct node_rsi *r);
/* The seed client's options of r: a resync (chain from `from`) or a full seed. */
ls_seed_client_options_t ls__rsi_client_options(const struct node_rsi *r, bool resync,
                                                uint64_t from);

#endif
