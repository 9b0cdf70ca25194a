/*
 * netpath: the replication networks of one link (docs/NETWORKS.md). link.c owns the data
 * connection and its frames; netpath.c decides which network it goes over: the state and last
 * error of every network, failover to the next one, background probes of the preferred ones,
 * failback once a probe has stayed healthy for the settle time (longer after repeated failures:
 * the hysteresis), the operator's pin, and the resend counters.
 *
 * Lifecycle: ld__np_init() from ld_link_init(), ld__np_close() from ld_link_close(). Every
 * connection of a link, data or probe, runs link.c's callbacks; those hand a connection that is
 * not the link's data connection to ld__np_probe_ready() / ld__np_probe_closed().
 *
 * Threading: the loop thread only, like the rest of the link.
 */
#ifndef LS_LOGSHIPD_NETPATH_H
#define LS_LOGSHIPD_NETPATH_H

#include "daemon.h"

#define NP_PROBE_MIN_MS 500 /* probe interval bounds; the interval is settle_time / 2 */
#define NP_PROBE_MAX_MS 5000
#define NP_PENALTY_MAX  5 /* failures counted: the settle time doubles from the second, x16 */
#define NP_FORGET       8 /* a network's failures are forgotten after this many settle times */

typedef enum {
    NP_UNUSED = 0, /* not needed now, or never tried */
    NP_CONNECTING, /* the data connection is being set up over it */
    NP_IN_USE,     /* carries the copy */
    NP_DOWN,       /* its last connection or probe failed: last_error says why */
    NP_PROBING,    /* a probe connection is being set up */
    NP_SETTLING,   /* a probe is connected: failback once it stayed healthy for the settle time */
} np_state_t;

typedef struct {
    np_state_t state;
    char last_error[LD_REASON_MAX];  /* last failure on this network ("" none) */
    uint64_t last_error_ns;          /* when, UTC ns */
    char left_reason[LD_REASON_MAX]; /* why the copy last left this network ("" never) */
    uint64_t left_ns;                /* when, UTC ns */
    uint64_t failures;               /* failed connections and probes since start */
    unsigned penalty;                /* failures while carrying the copy, recent ones */
    uint64_t penalty_mono;           /* the last of them, monotonic ns */
    ls_conn_t *probe;                /* background probe connection (NULL: none) */
    bool probe_ready;                /* its handshake completed */
    uint64_t healthy_since;          /* monotonic ns since which the probe has been up */
    uint64_t next_probe;             /* monotonic ns before which no probe starts */
} np_net_t;

/* Where a shipper's stream has been: GEN_DATA below that point is sent again. */
typedef struct {
    uint64_t hi_gen, hi_off; /* furthest (generation, end offset) ever sent */
    uint64_t resent;         /* GEN_DATA bytes sent again below that point since start */
} np_resend_t;

struct ld_netsel {
    np_net_t nets[LS_CFG_MAX_NETS]; /* as l->cfg->nets */
    int pinned;                     /* the operator's pin (index), -1: none */
    char pin_path[LS_CFG_PATH_MAX + LS_CFG_NAME_MAX + 16]; /* where the pin is kept */
    uint32_t tried;                  /* networks that failed since the last WELCOME (bits) */
    int shipped_on;                  /* network of the last WELCOME, -1: none yet */
    uint64_t switches;               /* times the copy moved to another network */
    char why[LD_REASON_MAX];         /* why the link left its last network (logged at switch) */
    char last_switch[LD_REASON_MAX]; /* the last switch, as logged ("" none) */
    uint64_t last_switch_ns;         /* when, UTC ns */
    uv_timer_t tick;                 /* probes and failback checks */
    np_resend_t *res;                /* per l->shippers index */
    int nres;
};

/* netpath.c */
void ld__np_init(link_t *l);
void ld__np_close(link_t *l);
/* The network for the next data connection: the pin, else a ready probe (*adopt set: take its
 * connection), else the first network in order that has not failed since the last WELCOME.
 * -1 when every candidate failed (the caller backs off; the next round starts over). */
int ld__np_choose(link_t *l, ls_conn_t **adopt);
void ld__np_attempt(link_t *l, int net); /* a data connection is being set up over net */
void ld__np_welcome(link_t *l);          /* WELCOME over l->net: the copy uses it */
/* The data connection over net failed (connect, reset, heartbeat timeout): why is kept. */
void ld__np_failed(link_t *l, int net, const char *why);
void ld__np_left(link_t *l, int net, const char *why); /* left it on purpose (switch, pin) */
/* "repl: <last error>; public: <last error>" into out. */
void ld__np_errors(link_t *l, char *out, size_t outlen);
bool ld__np_probe_ready(link_t *l, ls_conn_t *c); /* false: c is not a probe of l */
void ld__np_probe_closed(link_t *l, ls_conn_t *c, int status, const char *msg);
/* GEN_DATA of s went out: generation gen, offset off, len bytes (counts what is resent). */
void ld__np_sent(link_t *l, shipper_t *s, uint64_t gen, uint64_t off, uint64_t len);

/* link.c */
/* Starts a connection over network net with the link's callbacks. 0 or an error (no callback). */
int ld__link_connect(link_t *l, int net, ls_conn_t **out);
/* Moves the link to network net: the current data connection (if any) is closed with why, and
 * conn (a ready probe over net) becomes the data connection, or, when conn is NULL, a new one is
 * started. */
void ld__link_switch(link_t *l, int net, ls_conn_t *conn, const char *why);

#endif
