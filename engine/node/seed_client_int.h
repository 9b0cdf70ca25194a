/* seed client internals shared by seed_client.c (the adapter of engine/seed's client session:
 * the connection, the receiver thread's install and swap) and seed_cmd.c (the control commands,
 * status and start-up recovery). See seed_client.c. */
#ifndef LS_NODE_SEED_CLIENT_INT_H
#define LS_NODE_SEED_CLIENT_INT_H

#include "node/node_int.h"
#include "seed/seed.h"
#include "seed/session.h"

#define NODE_SEEDC_BUFS 64 /* chunk buffers at most (the default 4 MiB window holds 16) */

struct node_seedc {
    ls_node_t *node;
    pcopy_t *p;
    uint64_t id;                  /* seed number on this node: `logship seed` follows it */
    ls_seed_client_t *cs;         /* the protocol (engine/seed) */
    ls_seed_client_state_t shown; /* the session's state the copy's state reflects */
    char error[NODE_REASON_MAX];  /* why it failed */
    const ls_cfg_target_t *src;
    int net;                   /* network in use (index in src->nets) */
    bool net_fixed;            /* --network: no other network is tried */
    bool replace;              /* the install may replace what the copy holds */
    bool manual_resume;        /* leave the copy Suspended */
    ls_conn_t *conn;           /* the seed connection; NULL once closed */
    ls_conn_stats_t cstats;    /* the connection's figures when it closed */
    ls_seed_info_t info;       /* from SEED_BEGIN: the receiver thread's install reads it */
    uint64_t start_ns, end_ns; /* UTC ns */
    copy_state_t saved_state;  /* the copy's state before the seed ... */
    char saved_reason[NODE_REASON_MAX]; /* ... and its reason */
    ls_node_wake_t wake;                /* receiver thread -> loop (wake.c) */
    /* receiver thread only */
    ls_seed_install_t *install;
    /* receiver thread <-> loop, under mu */
    pthread_mutex_t mu;
    int outstanding;           /* items pushed and not processed */
    uint64_t consumed;         /* bytes written whose credit is not yet returned */
    uint64_t done;             /* bytes written */
    bool verified;             /* ls_seed_install_end succeeded */
    bool installed;            /* the swap step ran: new_copy is what is open now */
    bool taken;                /* loop: new_copy became the pcopy's copy */
    ls_copy_t *new_copy;       /* the copy opened after the swap (NULL: it could not open) */
    bool swapped;              /* the new copy is in place */
    ls_status_op_t op;         /* manual resume: the suspension written */
    int code;                  /* first failure on the receiver thread ... */
    char msg[NODE_REASON_MAX]; /* ... and why */
    /* SEED_DATA buffers, reused chunk after chunk instead of a fresh item per chunk (whose pages
     * the loop faulted in and zero-filled as it copied the chunk in); under mu */
    uint8_t *buf[NODE_SEEDC_BUFS];
    uint32_t buf_cap[NODE_SEEDC_BUFS];
    uint32_t buf_len[NODE_SEEDC_BUFS]; /* the chunk it holds */
    bool buf_busy[NODE_SEEDC_BUFS];    /* queued to the receiver thread */
};

/* seed_client.c */
bool ls__node_seedc_finished(const struct node_seedc *sc); /* done or failed */
int ls__node_seedc_connect(struct node_seedc *sc);         /* over sc->net; 0 or an error */
/* Tells the copy's source it changed: RE_OFFER with flags (LS_REOFFER_*) on a version-2 ship
 * connection, else a connection-wide ERROR that makes a version-1 source reconnect. */
void ls__node_seedc_reoffer(pcopy_t *p, uint32_t flags, const char *why);
void ls__node_seedc_on_wake(void *data); /* the receiver thread's events, on the loop (sc) */
void ls__node_seedc_bufs_free(struct node_seedc *sc, bool all); /* the idle (all: every) buffer */

#endif
