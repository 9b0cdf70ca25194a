/*
 * netpath: the replication networks of one link (docs/NETWORKS.md). The decisions (which
 * network, failover, probes, failback after the settle time with hysteresis, the pin, the resend
 * counters) are engine/netpolicy's, a state machine without I/O; this file is its adapter in the
 * node: it feeds the policy the link's events with the time, and carries out its actions with
 * the loop (one timer for the policy's deadline), the transport (probe connections, over the
 * network's bind address) and the file system (the pin, kept durably in
 * <data_dir>/network-pin.<target>). It also answers the "network" control command and adds the
 * network fields to a copy's status. link.c owns the data connection and its frames.
 *
 * Lifecycle: ls__node_np_init() from ls__node_link_init(), ls__node_np_close() from
 * ls__node_link_close() (after which every ls__node_np_ call is a no-op). Every connection of a
 * link, data or probe, runs link.c's callbacks; those hand a connection that is not the link's data
 * connection to ls__node_np_probe_ready() / ls__node_np_probe_closed().
 *
 * Threading: the loop thread only, like the rest of the link.
 */
#ifndef LS_NODE_NETPATH_H
#define LS_NODE_NETPATH_H

#include "node/node_int.h"
#include "netpolicy/netpolicy.h"

struct node_netsel {
    ls_netpolicy_t *pol;                                   /* the decisions */
    ls_conn_t *probe[LS_CFG_MAX_NETS];                     /* probe connections, by network */
    char pin_path[LS_CFG_PATH_MAX + LS_CFG_NAME_MAX + 16]; /* where the pin is kept */
    uv_timer_t tick;                                       /* fires at the policy's deadline */
};

/* netpath.c */
void ls__node_np_init(link_t *l);
void ls__node_np_close(link_t *l);
/* The network for the next data connection (the link has none): the pin, else a ready probe
 * (*adopt set: take its connection), else the first network in order that has not failed in this
 * round; from now on the data connection is being set up over it. -1 when every candidate failed
 * (the caller backs off; the next round starts over). */
int ls__node_np_choose(link_t *l, ls_conn_t **adopt);
void ls__node_np_welcome(link_t *l); /* WELCOME over l->net: the copies use it */
/* The data connection over net failed (connect, reset, heartbeat timeout): why is kept. */
void ls__node_np_failed(link_t *l, int net, const char *why);
void ls__node_np_closed(
    link_t *l); /* the link closed the data connection (not a network failure) */
/* "repl: <last error>; public: <last error>" into out. */
void ls__node_np_errors(link_t *l, char *out, size_t outlen);
bool ls__node_np_probe_ready(link_t *l, ls_conn_t *c); /* false: c is not a probe of l */
void ls__node_np_probe_closed(link_t *l, ls_conn_t *c, int status, const char *msg);
/* GEN_DATA of s went out: generation gen, offset off, len bytes (counts what is resent). */
void ls__node_np_sent(link_t *l, shipper_t *s, uint64_t gen, uint64_t off, uint64_t len);

/* link.c */
/* Starts a connection over network net with the link's callbacks. 0 or an error (no callback). */
int ls__node_link_connect(link_t *l, int net, ls_conn_t **out);
/* Moves the link to network net: the current data connection (if any) is closed with why, and
 * conn (a ready probe over net) becomes the data connection, or, when conn is NULL, a new one is
 * started. */
void ls__node_link_switch(link_t *l, int net, ls_conn_t *conn, const char *why);

#endif
