/*
 * netpolicy: which replication network a link uses (docs/NETWORKS.md), as a state machine that
 * does no I/O and reads no clock. Ordered networks; failover to the next one when the data
 * connection fails; background probes of the preferred networks while a less preferred one
 * carries the copies; failback once a probe has stayed up for the settle time, longer for a
 * network that keeps failing (hysteresis: the settle time doubles per recent failure, and the
 * failures are forgotten); the operator's pin; per-network state, last error and left reason;
 * the switch count; the resend counters.
 *
 * Events in, actions out. The caller (the daemon's link) reports what happened, each event with
 * the time (ls_netpolicy_now_t: monotonic ns for durations, wall ns for what status shows), and
 * carries out the actions the event returns, in order, in an ls_netpolicy_out_t:
 *
 *   event                        actions it may return
 *   _kick (needs a connection)   CLOSE_PROBE, then CONNECT or ADOPT, or ALL_DOWN
 *   _welcome, _failed, _closed,  LOG, PROBE, CLOSE_PROBE, SWITCH (a failback, adopting the
 *   _probe_up, _probe_down, _tick  probe; CLOSE_PROBE may follow it)
 *   _pin                         SAVE_PIN (only)
 *   _pin_saved                   LOG, CLOSE_PROBE, SWITCH, PROBE (after a release)
 *
 * The policy assumes every action it returns is carried out (a probe it asks for is under way
 * from then on); a failure comes back as an event (_probe_down for a probe that cannot start,
 * _failed for a data connection, _pin_saved(false) for a pin that could not be written). An
 * event may be reported while the caller still carries out the actions of an earlier one.
 * After each event the caller arms one timer for ls_netpolicy_deadline() and reports _tick when
 * it fires; ticking early or late is harmless.
 *
 * Lifecycle: _new, then events, then _free (NULL is a no-op). The caller keeps the connections
 * (data and probes, by network index) and the pin file; the policy keeps everything else.
 * Threading: none; one policy belongs to the thread of its link (the loop thread).
 */
#ifndef LS_NETPOLICY_H
#define LS_NETPOLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

#define LS_NETPOLICY_MAX_NETS    8   /* networks per link */
#define LS_NETPOLICY_NAME_MAX    64  /* a network's name, with its NUL */
#define LS_NETPOLICY_TEXT_MAX    512 /* an error, a reason, a log line, with its NUL */
#define LS_NETPOLICY_MAX_ACTIONS (2 * LS_NETPOLICY_MAX_NETS + 4) /* per event */

typedef struct ls_netpolicy ls_netpolicy_t;

typedef struct {
    int nnets;                /* networks, 1 .. LS_NETPOLICY_MAX_NETS */
    const char *const *names; /* their names, in order of preference (copied) */
    uint64_t settle_ms;       /* a probe must stay up this long before failback; 0: 10000 */
    uint64_t probe_min_ms;    /* failed probes are retried every settle_ms / 2, at least ... */
    uint64_t probe_max_ms;    /* ... and at most this (ms); 0: 500 and 5000 */
    unsigned penalty_max;     /* failures counted for the hysteresis (x16 at 5); 0: 5 */
    unsigned forget;          /* failures are forgotten once the network carried the copies
                                 this many settle times without failing; 0: 8 */
    const char *pin;          /* network pinned at start (a name); NULL, "" or unknown: none */
} ls_netpolicy_opts_t;

/* The time of an event. */
typedef struct {
    uint64_t mono; /* monotonic ns: durations, deadlines */
    uint64_t wall; /* UTC ns since the epoch: the times status shows */
} ls_netpolicy_now_t;

typedef enum {
    LS_NETPOLICY_UNUSED = 0, /* not needed now, or never tried */
    LS_NETPOLICY_CONNECTING, /* the data connection is being set up over it */
    LS_NETPOLICY_IN_USE,     /* carries the copies */
    LS_NETPOLICY_DOWN,       /* its last connection or probe failed: last_error says why */
    LS_NETPOLICY_PROBING,    /* a probe connection is being set up */
    LS_NETPOLICY_SETTLING,   /* a probe is up: failback once up for the settle time */
} ls_netpolicy_state_t;

/* One network as the policy sees it (read-only for the caller). */
typedef struct {
    char name[LS_NETPOLICY_NAME_MAX];        /* as configured ("repl") */
    ls_netpolicy_state_t state;              /* as status shows it */
    char last_error[LS_NETPOLICY_TEXT_MAX];  /* last failure on it ("" none) */
    uint64_t last_error_ns;                  /* when, wall ns */
    char left_reason[LS_NETPOLICY_TEXT_MAX]; /* why the copies last left it ("" never) */
    uint64_t left_ns;                        /* when, wall ns */
    uint64_t failures;                       /* failed connections and probes since start */
    unsigned penalty;       /* failures while it carried the copies, the recent ones */
    uint64_t penalty_mono;  /* the last of them, monotonic ns */
    uint64_t in_use_since;  /* monotonic ns of the WELCOME over it (while in_use) */
    bool probe;             /* a probe over it is under way (the caller holds it) */
    bool probe_ready;       /* ... and answered */
    uint64_t healthy_since; /* monotonic ns since which that probe is up */
    uint64_t next_probe;    /* monotonic ns before which no probe starts */
} ls_netpolicy_net_t;

typedef enum {
    LS_NETPOLICY_CONNECT = 1, /* start the data connection over net */
    LS_NETPOLICY_ADOPT,       /* the ready probe over net becomes the data connection */
    LS_NETPOLICY_SWITCH,      /* close the data connection (if any) because of text, then: adopt
                                 set, the ready probe over net becomes the data connection; else
                                 report _kick when a connection is wanted */
    LS_NETPOLICY_PROBE,       /* start a probe over net: report _probe_up / _probe_down */
    LS_NETPOLICY_CLOSE_PROBE, /* close the probe over net; report nothing more about it */
    LS_NETPOLICY_ALL_DOWN,    /* every network failed in this round (text: their errors): back
                                 off, then _kick again (the next round starts over) */
    LS_NETPOLICY_SAVE_PIN,    /* write the pin durably (net; -1: remove it), then _pin_saved */
    LS_NETPOLICY_LOG,         /* log text at level */
} ls_netpolicy_kind_t;

typedef struct {
    ls_netpolicy_kind_t kind;         /* what to do */
    int net;                          /* the network acted on (-1: none) */
    bool adopt;                       /* SWITCH: take the probe over net */
    ls_log_level_t level;             /* LOG */
    char text[LS_NETPOLICY_TEXT_MAX]; /* SWITCH: why; ALL_DOWN: errors; LOG: the line */
} ls_netpolicy_action_t;

/* What an event asks of the caller; the event functions clear it first. */
typedef struct {
    int n;                                               /* actions, in order */
    ls_netpolicy_action_t act[LS_NETPOLICY_MAX_ACTIONS]; /* carry out act[0] .. act[n-1] */
} ls_netpolicy_out_t;

/* ---- lifecycle ---------------------------------------------------------------------------- */
/* A policy for opts->nnets networks, none tried yet. 0, LS_EINVAL (no networks, too many, or a
 * name missing or too long), LS_ENOMEM. */
int ls_netpolicy_new(const ls_netpolicy_opts_t *opts, ls_netpolicy_t **out);
void ls_netpolicy_free(ls_netpolicy_t *p);

/* ---- events ------------------------------------------------------------------------------- */
/* The caller wants a data connection (it has none): the pin if not failed in this round, else a
 * ready probe (ADOPT), else the first network in order not failed in this round (CONNECT); the
 * chosen network is `connecting` from now on. ALL_DOWN when none is left. */
void ls_netpolicy_kick(ls_netpolicy_t *p, ls_netpolicy_now_t now, ls_netpolicy_out_t *out);
/* The data connection got its WELCOME: its network carries the copies (a switch is counted and
 * logged when it differs from the last one that did). */
void ls_netpolicy_welcome(ls_netpolicy_t *p, ls_netpolicy_now_t now, ls_netpolicy_out_t *out);
/* The data connection failed (a connect error, a reset, a heartbeat timeout): its network is
 * `down` with why (borrowed), and is skipped until the round ends. Then _kick for the next. */
void ls_netpolicy_failed(ls_netpolicy_t *p, ls_netpolicy_now_t now, const char *why,
                         ls_netpolicy_out_t *out);
/* The data connection ended without a network failure (the caller closed it after a protocol
 * error): its network is not marked down. */
void ls_netpolicy_closed(ls_netpolicy_t *p, ls_netpolicy_now_t now, ls_netpolicy_out_t *out);
/* The probe over net answered (its handshake completed); the settle time starts. */
void ls_netpolicy_probe_up(ls_netpolicy_t *p, ls_netpolicy_now_t now, int net,
                           ls_netpolicy_out_t *out);
/* The probe over net failed or closed (why, borrowed; NULL: "probe closed"): the network is
 * `down` and probed again after the probe interval. */
void ls_netpolicy_probe_down(ls_netpolicy_t *p, ls_netpolicy_now_t now, int net, const char *why,
                             ls_netpolicy_out_t *out);
/* Time passed: starts the probes that are due, fails back to the best settled network. */
void ls_netpolicy_tick(ls_netpolicy_t *p, ls_netpolicy_now_t now, ls_netpolicy_out_t *out);
/* The operator pins net (-1: releases the pin): asks for SAVE_PIN and waits for _pin_saved
 * before anything changes. 0, or LS_EINVAL for a network out of range. */
int ls_netpolicy_pin(ls_netpolicy_t *p, int net, ls_netpolicy_out_t *out);
/* The pin of the last _pin was written (ok) or could not be (nothing changes). A pin moves the
 * copies at once (no settle time) and stops failover and probes; a release lets the copies fail
 * back after the usual settle time. */
void ls_netpolicy_pin_saved(ls_netpolicy_t *p, ls_netpolicy_now_t now, bool ok,
                            ls_netpolicy_out_t *out);
/* GEN_DATA of stream (an index the caller chooses, e.g. per database) went out: generation
 * gen, offset off, len bytes. What lies below the furthest point ever sent counts as resent. */
void ls_netpolicy_sent(ls_netpolicy_t *p, int stream, uint64_t gen, uint64_t off, uint64_t len);

/* ---- queries ------------------------------------------------------------------------------ */
int ls_netpolicy_nnets(const ls_netpolicy_t *p);
/* Network j (0 <= j < nnets), valid until _free. */
const ls_netpolicy_net_t *ls_netpolicy_net(const ls_netpolicy_t *p, int j);
int ls_netpolicy_find(const ls_netpolicy_t *p, const char *name); /* index, or -1 */
int ls_netpolicy_pinned(const ls_netpolicy_t *p);                 /* the pin, or -1 */
/* Network of the data connection (connecting or in use), -1: none. */
int ls_netpolicy_current(const ls_netpolicy_t *p);
/* Monotonic ns of the next _tick that may change something, 0: none needed. */
uint64_t ls_netpolicy_deadline(const ls_netpolicy_t *p);
uint64_t ls_netpolicy_switches(const ls_netpolicy_t *p); /* times the copies moved */
/* The last switch, "from repl to public: <why>" ("" none), and its wall time (NULL: not asked). */
const char *ls_netpolicy_last_switch(const ls_netpolicy_t *p, uint64_t *wall_ns);
/* How long a probe of j must stay up before failback at now (ms), with the hysteresis. */
uint64_t ls_netpolicy_settle_ms(const ls_netpolicy_t *p, int j, uint64_t now_mono);
/* How long the probe of j has been up at now (ns; 0 when none is). */
uint64_t ls_netpolicy_up_ns(const ls_netpolicy_t *p, int j, uint64_t now_mono);
/* "repl: <last error>; public: <last error>" (only the pinned one, marked, while pinned). */
void ls_netpolicy_errors(const ls_netpolicy_t *p, char *buf, size_t len);
uint64_t ls_netpolicy_resent(const ls_netpolicy_t *p, int stream); /* bytes sent again */
const char *ls_netpolicy_state_name(ls_netpolicy_state_t s);

#endif
