/*
 * passive: the passive side's protocol for one copy (database, source node), as a state machine
 * without I/O (DESIGN.md "Wire protocol", "Copy states and lag accounting"); the counterpart of
 * engine/ship. Frames from the source, connection events, the copy's events (polled from its
 * receiver, engine/copy/receiver.h), the operator's commands and clock ticks go in, each with
 * `now` (wall clock, UTC ns, injected so that tests run it on a fake clock); frames go out
 * through send_cb and actions through action_cb.
 *
 * What lives here: the copy's state with its reason; RESUME (where the copy stands, from
 * engine/copy) once a connection serves it, with the replayed positions; the acknowledgements
 * DURABLE / INSPECTED / REPLAYED / REPLAYED_SYNCED from the copy's events; ASK_AGAIN (from the
 * copy, or for a GEN_BEGIN past the generation wanted, or once space returns after a full disk),
 * at most one per generation every LS_PASSIVE_ASK_SPACING_NS, counted in the kept counters; the
 * source's ERROR (LS_EDIVERGED: DIVERGED; transient: DISCONNECTED, then RESUME again after a
 * back-off of 2 s doubling to 60 s, restarting once a generation is made durable; other codes:
 * FAILED until the operator's resume); COPY_STATE both ways (the source's suspension and its
 * figures; this operator's suspension, persisted through an action); the per-database receive
 * credit (engine/transport/credit.h's rx ledger of the connection: GEN_DATA beyond the window is
 * a protocol error, consumed bytes are granted back in CREDIT frames); GEN frames handed to the
 * copy's receiver as items; the status figures (ls_passive_status).
 *
 * What does not: the connection (HELLO admission, the refusal of duplicates, routing frames by
 * index, RE_OFFER), the receiver thread and the copy's opening (the caller owns both, and a
 * seed's swap replaces the copy: ls_passive_set_copy), disk space measurement (the caller says
 * when space returned: ls_passive_space_available), persistence (actions).
 *
 * States (ls_passive_state_t) and their transitions:
 *   INITIALIZING  not started
 *   DISCONNECTED  started, no connection; a connection ended; a transient ERROR of the source
 *                 (asking again after the back-off)
 *   HEALTHY       a connection serves it (at connect, at the next DURABLE after a transient
 *                 ERROR or a full disk, at a resume on either side, after the back-off)
 *   SUSPENDED     this operator's suspension (persisted) or the source's (its COPY_STATE)
 *   SEEDING       set by the caller's seed (ls_passive_set_state); the seed sets what follows
 *   FAILED        the copy could not be opened, the copy failed (inspection, store), the
 *                 source's ERROR with a fatal code; left by the operator's resume
 *   DIVERGED      the source's ERROR LS_EDIVERGED
 *   DISK_FULL     the copy hit ENOSPC: left by the next DURABLE
 * FAILED and DIVERGED survive disconnection; a suspension is shown over the others but FAILED
 * and DIVERGED.
 *
 * Lifecycle: ls_passive_new() -> ls_passive_start(copy) -> per connection ls_passive_connected()
 * ... ls_passive_on_frame(), ls_passive_poll() after the receiver's notify, ls_passive_tick()
 * on a timer ... ls_passive_disconnected() -> ... -> ls_passive_free() (the caller then stops its
 * receiver and closes the copy).
 *
 * Threading: one thread (the daemon's loop) calls every function of a machine.
 */
#ifndef LS_PASSIVE_H
#define LS_PASSIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "copy/copy.h"
#include "copy/receiver.h"
#include "layout/layout.h"
#include "proto/proto.h"
#include "status/status.h"
#include "transport/credit.h"

#define LS_PASSIVE_REASON_MAX     512             /* a state's reason, bytes with the NUL */
#define LS_PASSIVE_ASK_SPACING_NS (2000000000ull) /* one ASK_AGAIN per generation per 2 s */
#define LS_PASSIVE_AGAIN_MIN_MS   2000            /* back-off after a transient ERROR ... */
#define LS_PASSIVE_AGAIN_MAX_MS   60000           /* ... doubling up to this */
#define LS_PASSIVE_EPOCHS_MAX     64              /* epochs of the history kept (the newest) */

typedef struct ls_passive ls_passive_t;

/* The same values as the daemon's states of a copy, and status's names. */
typedef enum {
    LS_PASSIVE_INITIALIZING = 0,
    LS_PASSIVE_HEALTHY,
    LS_PASSIVE_DISCONNECTED,
    LS_PASSIVE_SUSPENDED,
    LS_PASSIVE_SEEDING,
    LS_PASSIVE_FAILED,
    LS_PASSIVE_DIVERGED,
    LS_PASSIVE_DISK_FULL
} ls_passive_state_t;

/* "Initializing", "Healthy", ... "DiskFull" as status shows them (static storage). */
const char *ls_passive_state_name(ls_passive_state_t s);

typedef enum {
    LS_PASSIVE_ACT_STATE = 1,     /* the state changed: state, prev, reason (log it) */
    LS_PASSIVE_ACT_SAVE_OP,       /* persist op (this operator's decision); a failure is returned */
    LS_PASSIVE_ACT_SAVE_COUNTERS, /* persist counters (an ASK_AGAIN was counted) */
    LS_PASSIVE_ACT_LOG            /* worth a log line (reason): an ASK_AGAIN, a source's note */
} ls_passive_act_kind_t;

typedef struct {
    ls_passive_act_kind_t kind;
    ls_passive_state_t state, prev;       /* STATE: new and previous state */
    const char *reason;                   /* STATE: why; LOG: the line */
    const ls_status_op_t *op;             /* SAVE_OP */
    const ls_status_counters_t *counters; /* SAVE_COUNTERS */
} ls_passive_action_t;

/* Sends one frame to the source (borrowed for the call); its result is not looked at: a frame
 * that cannot go is lost with the connection, and the source plans again from RESUME. */
typedef int (*ls_passive_send_cb)(void *ctx, const ls_frame_t *f);
/* Runs an action (borrowed for the call). 0, or an error for SAVE_OP (the command fails). */
typedef int (*ls_passive_action_cb)(void *ctx, const ls_passive_action_t *a);
/* True while a seed holds the copy (RE_OFFER HOLD): no acknowledgement or RESUME goes out (a
 * position of the old copy must not release logs the seeded one needs) and GEN frames are
 * dropped, their credit given back. */
typedef bool (*ls_passive_held_cb)(void *ctx);

typedef struct {
    const char *database;           /* its name (borrowed for the machine's life) */
    const char *source;             /* the source node's name, likewise */
    ls_passive_send_cb send_cb;     /* frames out (required) */
    ls_passive_action_cb action_cb; /* actions out (required) */
    ls_passive_held_cb held_cb;     /* NULL: never held */
    void *ctx;                      /* for the three callbacks */
    ls_copy_rx_t *rx;               /* the copy's receiver: GEN frames become its items, its
                                       events are polled (borrowed; NULL: frames dropped) */
    ls_status_op_t op;              /* this operator's decision, as loaded */
    ls_status_counters_t counters;  /* the copy's kept counters, as loaded */
} ls_passive_options_t;

/* New machine in INITIALIZING. Copies opts. NULL when out of memory. */
ls_passive_t *ls_passive_new(const ls_passive_options_t *opts, uint64_t now);
void ls_passive_free(ls_passive_t *m); /* NULL: no-op */

/* The copy is open (copy, borrowed until replaced) or could not be (copy NULL, why says so:
 * FAILED). DISCONNECTED waiting for the source, FAILED when the copy is, SUSPENDED when the
 * operator's decision says so (replay paused). */
void ls_passive_start(ls_passive_t *m, ls_copy_t *copy, const char *why, uint64_t now);
/* A seed's swap: the copy the machine uses from now on (NULL while swapping or when the new one
 * could not open); op, when not NULL, is the operator's decision the seed wrote. Replay is
 * paused on the new copy when a suspension says so. No state change (the seed sets it). */
void ls_passive_set_copy(ls_passive_t *m, ls_copy_t *copy, const ls_status_op_t *op);
/* Sets the state (the seed's states and their ends); fmt as printf. */
void ls_passive_set_state(ls_passive_t *m, ls_passive_state_t st, uint64_t now, const char *fmt,
                          ...) __attribute__((format(printf, 4, 5)));

/* A connection serves the copy: credit is its rx ledger (borrowed until ls_passive_disconnected)
 * and idx the database's index in it and in HELLO, dbid its id, tag the connection's (items and
 * credit returns of an older connection are told apart). Another connection already attached
 * is detached first; the same one again (a seed's RE_OFFER) is not. HEALTHY unless something else
 * holds; COPY_STATE, then RESUME and the replayed positions (or ERROR for a FAILED or DIVERGED
 * copy, nothing while suspended). */
void ls_passive_connected(ls_passive_t *m, ls_credit_rx_t *credit, int idx,
                          const uint8_t dbid[LS_DBID_LEN], uint64_t tag, uint64_t now);
/* Whether the current connection negotiated LS_FEAT_APPLY: the source says in its COPY_STATE
 * (LS_COPY_APPLY) whether a commit waits for the copy's applied position, and the copy applies its
 * shadow early at each report only then (ls_copy_shadow_apply_eager); without it, always. Call
 * after ls_passive_connected. */
void ls_passive_apply_asked(ls_passive_t *m, bool asked);
/* May a connection shipping database dbid serve this copy? 0; LS_ESTATE when the copy is not
 * open; LS_EDBID when the copy's store belongs to another database (then FAILED, with both ids).
 * why (whylen bytes) receives the refusal, for WELCOME. */
int ls_passive_admit(ls_passive_t *m, const uint8_t dbid[LS_DBID_LEN], char *why, size_t whylen,
                     uint64_t now);
/* The connection ended: a receive in progress is aborted, the source's suspension forgotten,
 * HEALTHY becomes DISCONNECTED (note, when not NULL, is added to the reason). */
void ls_passive_disconnected(ls_passive_t *m, const char *note, uint64_t now);
bool ls_passive_is_connected(const ls_passive_t *m);
/* COPY_STATE, then RESUME and the replayed positions, as at connection (a seed's RE_OFFER). */
void ls_passive_send_position(ls_passive_t *m, uint64_t now);

/* A frame from the source for this database: GEN_BEGIN / GEN_DATA / GEN_END (to the receiver),
 * COPY_STATE, EPOCH, ERROR (LS_EFENCED: the source was fenced, it ships no more: DISCONNECTED
 * without asking again); others are ignored. Borrowed. 0, or LS_EPROTO when GEN_DATA exceeds the
 * credit window (close the connection). */
int ls_passive_on_frame(ls_passive_t *m, const ls_frame_t *f, uint64_t now);
/* ---- epochs (proto/PROTOCOL.md, EPOCH) ------------------------------------------------------
 * What the copy knows of its database's history: h (n lines, borrowed, copied; the newest
 * LS_PASSIVE_EPOCHS_MAX kept) from engine/role's ls_role_known_epochs() of the copy's directory,
 * and who activated the newest epoch (active, "" when not known: ls_role_epoch_info()). Call
 * after ls_passive_new() and whenever the directory's history changes. The machine also learns
 * from the source: the newer epochs its EPOCH and GEN_BEGIN frames carry.
 * From then on an EPOCH frame announcing an epoch older than the newest known, and a GEN_BEGIN
 * whose epoch is older than the one its generation belongs to (ls_layout_history_epoch_at), are
 * refused: ERROR(LS_EFENCED) to the source naming the database, both epochs and the generation,
 * the state DISCONNECTED with that reason, the generation's GEN_DATA / GEN_END dropped. */
void ls_passive_set_epochs(ls_passive_t *m, const ls_layout_hist_t *h, size_t n,
                           const char *active);
uint32_t ls_passive_epoch(const ls_passive_t *m); /* the newest epoch known (0: none) */

/* The source's clock minus ours (heartbeats), as the caller measures it: status adds it. */
void ls_passive_clock_offset(ls_passive_t *m, int64_t offset_ns);
/* Runs the BLOCK items the receiver held for this thread (ls_copy_rx_run_held: written and
 * synced here while the receiver thread is idle), then handles every event queued by the
 * receiver (engine/copy/receiver.h) in order. */
void ls_passive_poll(ls_passive_t *m, uint64_t now);
/* Handles one such event (what ls_passive_poll does for each). */
void ls_passive_on_event(ls_passive_t *m, const ls_copy_rx_event_t *e, uint64_t now);
/* Timer: after a transient ERROR, the back-off over, RESUME again. */
void ls_passive_tick(ls_passive_t *m, uint64_t now);
/* DISK_FULL: there is room again (the caller measured): ask for the wanted generation. */
void ls_passive_space_available(ls_passive_t *m, uint64_t now);
bool ls_passive_disk_full(const ls_passive_t *m);

/* The operator's `logship suspend` / `resume` [--replay-only] on this copy: persisted first
 * (LS_PASSIVE_ACT_SAVE_OP: its error is returned and nothing changes); replay paused or not; a
 * full suspension stops shipping (COPY_STATE tells the source); a resume also clears FAILED
 * (when the copy is open) and sends the position again. msg receives the answer. */
int ls_passive_command(ls_passive_t *m, bool suspend, bool replay_only, const char *comment,
                       char *msg, size_t msglen, uint64_t now);

/* ---- figures ----------------------------------------------------------------------------- */
ls_passive_state_t ls_passive_state(const ls_passive_t *m);
const char *ls_passive_reason(const ls_passive_t *m);
const ls_status_op_t *ls_passive_op(const ls_passive_t *m); /* this operator's decision */
ls_copy_t *ls_passive_copy(const ls_passive_t *m);          /* the copy in use, or NULL */
/* Fills state, reason, suspension, positions with their times, queues, copy lag, throughput,
 * counters and the copy's figures; leaves names, the connection, the replay lag (it needs the
 * close time of a held file) and the seed to the caller. */
void ls_passive_status(ls_passive_t *m, uint64_t now, ls_status_copy_t *c);

#endif
