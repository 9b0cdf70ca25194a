/*
 * ship: the shipping state machine of one (active database, target) pair (DESIGN.md "Wire
 * protocol", "Copy states and lag accounting"). It does no I/O of its own and knows neither the
 * event loop nor the daemon: frames from the target, connection events, reader events, credit,
 * the operator's decisions and clock ticks go in, each with the time `now` (wall clock, UTC ns,
 * injected so that tests drive it with a fake clock; it is recorded where status shows a time:
 * acknowledged positions, the throughput window, the start of a suspension); frames to send and
 * actions come out through the two callbacks of ls_ship_options_t.
 *
 * What lives here: the resume plan and divergence check (engine/source's ls_source_plan), the
 * pipelined reader's buffers framed as GEN_BEGIN / GEN_DATA chunks / GEN_END, the per-database
 * credit window, ask-again (restart from N once the generation in flight is done), suspension
 * on either side (COPY_STATE both ways; the operator's own decision is persisted through an
 * action), the hold a seed of this target puts on the logs, the target's acknowledged positions
 * and the copy's state with its reason, and the status figures (ls_ship_status).
 *
 * What does not: the connection (HELLO/WELCOME, networks, zstd workers, the connection-wide
 * credit window and the round-robin between databases belong to the daemon's link, which calls
 * ls_ship_send_chunk() on each database in turn).
 *
 * States (ls_ship_state_t) and their transitions:
 *   INITIALIZING  created: "waiting for the database to exist"; after WELCOME accepted it:
 *                 waiting for the target's RESUME; after a resume on either side
 *   DISCONNECTED  database ready but no connection, a connection ended, every network failed,
 *                 the target refused the database (any code but LS_EDBID), or a transient
 *                 code in the target's ERROR or from the plan (the target asks again)
 *   HEALTHY       RESUME planned: shipping from the target's next generation
 *   SUSPENDED     this operator's suspension (persisted) or the target's (its COPY_STATE)
 *   FAILED        the source view could not be opened, the target refused another database
 *                 (LS_EDBID), the target's ERROR (not transient), the plan or the reader
 *                 failed (gap, damage, removed log): the reason says which
 *   DIVERGED      the plan's divergence check failed, or the target said LS_EDIVERGED
 *   SEEDING       the target holds the database while it seeds its copy (RE_OFFER with HOLD);
 *                 the next RE_OFFER offers it anew (INITIALIZING, waiting for its RESUME)
 *   DEMOTED       fenced: this node is an old active of the database. It learned of a newer
 *                 epoch from the target (its EPOCH frame, a RESUME at a newer epoch, an ERROR or
 *                 a WELCOME refusal with LS_EFENCED) or from the caller (ls_ship_learn_epoch,
 *                 ls_ship_fence). The STATE action entering it has `fence` set, with the new
 *                 epoch and active: the caller fences the writer and demotes the directory
 *                 (engine/role), then calls ls_ship_fence() with the outcome (DIVERGED when
 *                 generations were moved aside).
 * FAILED and DIVERGED survive disconnection; the next accepted WELCOME starts over. A fenced
 * machine (DEMOTED, or DIVERGED by ls_ship_fence) never leaves that state and never ships again.
 *
 * Lifecycle: ls_ship_new() -> ls_ship_attach() once the database's source view exists ->
 * ls_ship_connected() per WELCOME ... frames, credit, ls_ship_pump()/ls_ship_send_chunk() ...
 * ls_ship_disconnected() -> ... -> ls_ship_free() (stops the reader; the source must outlive
 * the machine's reader, so free machines before ls_source_free()).
 *
 * Threading: one thread (the daemon's loop) calls every function of a machine. The reader it
 * starts runs a thread of its own whose only contact is notify_cb (see ls_reader_notify_cb).
 */
#ifndef LS_SHIP_H
#define LS_SHIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"
#include "source/source.h"
#include "status/status.h"

#define LS_SHIP_REASON_MAX 512 /* a state's reason, bytes with the NUL */

typedef struct ls_ship ls_ship_t;

typedef enum {
    LS_SHIP_INITIALIZING = 0,
    LS_SHIP_HEALTHY,
    LS_SHIP_DISCONNECTED,
    LS_SHIP_SUSPENDED,
    LS_SHIP_FAILED,
    LS_SHIP_DIVERGED,
    LS_SHIP_SEEDING,
    LS_SHIP_DEMOTED /* fenced by a newer epoch (shown "Demoted") */
} ls_ship_state_t;

/* "Initializing", "Healthy", ... as status shows them (static storage). */
const char *ls_ship_state_name(ls_ship_state_t s);

/* An operator's decision about a copy (either side's), kept across restarts by the caller. */
typedef ls_status_op_t ls_ship_op_t;

/* What comes out besides frames. */
typedef enum {
    LS_SHIP_ACT_STATE = 1,     /* the state changed: state, prev, reason (log it) */
    LS_SHIP_ACT_SAVE_OP,       /* persist op (the operator's decision); a failure is returned */
    LS_SHIP_ACT_SAVE_COUNTERS, /* persist counters (an ASK_AGAIN was counted; msg says what) */
    LS_SHIP_ACT_READER_START,  /* the reader (re)started at generation gen */
    LS_SHIP_ACT_READER_STOP,   /* the reader stopped (gen: the next it would have read) */
    LS_SHIP_ACT_SEED_RELEASED, /* a seeded copy synced past gen: the seed's hold is gone */
    LS_SHIP_ACT_MODE           /* block mode: the copy switched to mode, reason says why (log it) */
} ls_ship_act_kind_t;

/* How the copy is shipped (docs/BLOCKMODE.md): closed generations only, or also the open one as
 * it becomes durable on the active. */
typedef enum {
    LS_SHIP_MODE_FILE = 0, /* closed generations (GEN_BEGIN / GEN_DATA / GEN_END) */
    LS_SHIP_MODE_BLOCK     /* and the open generation's durable bytes (BLOCK) */
} ls_ship_mode_t;

/* "file", "block" (static storage). */
const char *ls_ship_mode_name(ls_ship_mode_t mode);

typedef struct {
    ls_ship_act_kind_t kind;
    ls_ship_state_t state, prev;          /* STATE: new and previous state */
    const char *reason;                   /* STATE: why; others: what happened (log line) */
    const ls_ship_op_t *op;               /* SAVE_OP */
    const ls_status_counters_t *counters; /* SAVE_COUNTERS */
    uint64_t gen;                         /* READER_*, SEED_RELEASED */
    bool fence;          /* STATE into DEMOTED: this node was just fenced (learned of a newer
                            epoch): fence the writer and demote the directory (ship.h, DEMOTED) */
    uint32_t epoch;      /* STATE with fence: the newer epoch (0: not known, e.g. an ERROR) */
    const char *active;  /* STATE with fence: the new active's name ("" when not known) */
    ls_ship_mode_t mode; /* MODE: the new mode */
} ls_ship_action_t;

/* Sends one frame to the target (borrowed: GEN_DATA's bytes point into the reader's buffer and
 * are valid during the call only). Returns 0, or LS_EBUSY when it cannot go now (socket full, or
 * a GEN_BEGIN / GEN_END that must wait for earlier chunks): the machine tries again at the next
 * ls_ship_pump(). Other codes: the frame was dropped (the connection is closing). */
typedef int (*ls_ship_send_cb)(void *ctx, const ls_frame_t *f);
/* Runs an action (borrowed during the call). Returns 0, or an error for SAVE_OP (then the
 * operator's command fails and nothing changes). */
typedef int (*ls_ship_action_cb)(void *ctx, const ls_ship_action_t *a);

/* The pipelined reader the machine consumes (engine/source's by default). */
typedef struct {
    /* Starts reading at first with opts (prev_digest, verify, full_gen as ls_reader_start's;
     * borrowed for the call). 0 or an error. */
    int (*start)(void *ctx, ls_source_t *src, uint64_t first, const ls_reader_options_t *opts,
                 void **reader);
    int (*next)(void *reader, const ls_gen_buf_t **gen);    /* as ls_reader_next */
    void (*release)(void *reader, const ls_gen_buf_t *gen); /* as ls_reader_release */
    const char *(*error)(void *reader);                     /* as ls_reader_error */
    void (*stop)(void *reader);                             /* as ls_reader_stop */
} ls_ship_reader_ops_t;

/* Block mode's read: len bytes at offset off of the active's open generation (epoch,
 * generation) into buf (the caller's I/O: the machine never reads). The machine asks only for
 * bytes the writer published as durable. Returns the bytes read (1..len), or a negative error:
 * LS_ESTATE when the current log is no longer that generation (it rolled: the closed file goes
 * in file mode), another code when it cannot be read. */
typedef int64_t (*ls_ship_block_read_cb)(void *ctx, uint32_t epoch, uint64_t generation,
                                         uint64_t off, uint8_t *buf, size_t len);

/* The writer's durable position, as the control page's channel publishes it. */
typedef struct {
    uint32_t epoch;      /* epoch of the open generation */
    uint64_t generation; /* the open generation (the current log) */
    uint64_t offset;     /* bytes [0, offset) of it are durable on the active */
    uint64_t lsn;        /* last durable LSN */
    uint64_t time_ns;    /* when the writer published it, UTC ns (the lag's start) */
} ls_ship_durable_t;

typedef struct {
    const char *database;          /* its name, for reasons (borrowed for the machine's life) */
    const char *target;            /* the target's name, likewise */
    ls_ship_send_cb send_cb;       /* frames out (required) */
    ls_ship_action_cb action_cb;   /* actions out (required) */
    void *ctx;                     /* for both */
    ls_reader_notify_cb notify_cb; /* a reader has a generation ready: call ls_ship_pump() */
    void *notify_ctx;              /* for notify_cb */
    const ls_ship_reader_ops_t *reader; /* NULL: engine/source's ls_reader_* */
    void *reader_ctx;                   /* for reader->start */
    ls_ship_op_t op;                    /* this operator's decision, as loaded */
    ls_status_counters_t counters;      /* the copy's kept counters, as loaded */
    ls_ship_block_read_cb block_read;   /* block mode's reads (ctx); NULL: file mode only */
    ls_reader_verify_t verify;          /* what the reader checks of each generation (0:
                                           records, the default; a generation asked again
                                           after damage is always verified FULL) */
} ls_ship_options_t;

/* New machine in INITIALIZING (SUSPENDED when opts->op says so). Copies opts. NULL when out of
 * memory. */
ls_ship_t *ls_ship_new(const ls_ship_options_t *opts, uint64_t now);
/* Stops the reader and frees; NULL is a no-op. */
void ls_ship_free(ls_ship_t *m);

/* ---- inputs ---------------------------------------------------------------------------------
 * Each may send frames and run actions before it returns. */

/* The database's source view (borrowed: it must outlive the machine) and id are known: the
 * copy waits for a connection (DISCONNECTED). */
void ls_ship_attach(ls_ship_t *m, ls_source_t *src, const uint8_t dbid[LS_DBID_LEN], uint64_t now);
/* The source view could not be opened: FAILED with msg. */
void ls_ship_source_failed(ls_ship_t *m, const char *msg, uint64_t now);

/* The target's WELCOME answered for this database (r is its entry); db_window is the WELCOME's
 * per-database credit window (0: LS_PROTO_DB_WINDOW_DEFAULT). */
void ls_ship_connected(ls_ship_t *m, const ls_proto_db_result_t *r, uint32_t db_window,
                       uint64_t now);
/* The connection ended, or could not be made (reason says why): the reader stops, the target's
 * suspension is forgotten (it says again), DISCONNECTED (or INITIALIZING when switching: a
 * switch to another network is under way), unless FAILED or DIVERGED. */
void ls_ship_disconnected(ls_ship_t *m, bool switching, const char *reason, uint64_t now);

/* A frame from the target for this database: RESUME, DURABLE, INSPECTED, REPLAYED,
 * REPLAYED_SYNCED, ASK_AGAIN, COPY_STATE, RE_OFFER, EPOCH (ls_ship_learn_epoch), ERROR (others
 * are ignored). Borrowed. EPOCH must be passed also for a database WELCOME refused. */
void ls_ship_on_frame(ls_ship_t *m, const ls_frame_t *f, uint64_t now);
/* A CREDIT frame for this database. LS_EPROTO when it exceeds the window (close the
 * connection), LS_ESTATE when not connected. */
int ls_ship_credit(ls_ship_t *m, uint64_t bytes);

/* The operator suspends (comment borrowed) or resumes shipping. The decision is persisted first
 * (LS_SHIP_ACT_SAVE_OP): when that fails its error is returned and nothing changes. */
int ls_ship_suspend(ls_ship_t *m, const char *comment, uint64_t now);
int ls_ship_resume(ls_ship_t *m, uint64_t now);

/* Sends what can go now except data: a pending COPY_STATE or ERROR, GEN_END of a generation
 * whose data went out, GEN_BEGIN of the next one the reader has ready, a restart asked for.
 * Returns 0, or LS_EBUSY when send_cb said so. Call after a reader's notify_cb, a drained socket,
 * or any input. */
int ls_ship_pump(ls_ship_t *m, uint64_t now);
/* Sends one GEN_DATA chunk of at most max_len bytes, within this database's credit, then pumps.
 * Returns the chunk's bytes (> 0), 0 when nothing can go (no data begun, no credit), or LS_EBUSY
 * when the socket is full. */
int64_t ls_ship_send_chunk(ls_ship_t *m, uint64_t max_len, uint64_t now);
/* Timer tick: COPY_STATE to the target when the source's newest generation or the copy queue
 * changed since the last one, and a pump. */
void ls_ship_tick(ls_ship_t *m, uint64_t now);

/* ---- epochs and fencing (proto/PROTOCOL.md, EPOCH) -------------------------------------------
 * The machine's own epoch is the source view's (ls_source_view: the highest of logs/history and
 * the generation names). */

/* A peer says `epoch` is the newest it knows for this database, activated by `active` (borrowed;
 * NULL or "": not known): an EPOCH frame on any connection (as client or server), or the caller's
 * own reading. Newer than this node's epoch: fenced (DEMOTED, the STATE action with fence set),
 * the reader stopped and the target told (ERROR LS_EFENCED). Otherwise nothing. */
void ls_ship_learn_epoch(ls_ship_t *m, uint32_t epoch, const char *active, uint64_t now);
/* Puts the machine in its fenced state without an action (the caller already fenced): at start
 * when the role file says demoted or diverged, or with ls_role_demote's outcome. diverged: shown
 * DIVERGED, else DEMOTED; reason (borrowed; NULL: the machine's words) names the new active. */
void ls_ship_fence(ls_ship_t *m, uint32_t epoch, const char *active, bool diverged,
                   const char *reason, uint64_t now);
/* Whether the machine is fenced; fills the epoch (0: not known) and the new active ("": not
 * known; valid while the machine is) when it is (both may be NULL). */
bool ls_ship_fenced(const ls_ship_t *m, uint32_t *epoch, const char **active);

/* ---- block mode (docs/BLOCKMODE.md) ----------------------------------------------------------
 * While the target holds every closed generation (no copy queue) the copy is in block mode: the
 * open generation's bytes go out as BLOCK frames as the writer makes them durable, within the
 * same credit windows as GEN_DATA (ls_ship_send_chunk sends them when no closed generation is
 * being sent), and the target acknowledges them with BLOCK_ACK (ls_ship_on_frame). A roll closes
 * the streamed generation; its closed file then goes as in file mode, but only the tail the
 * target's shadow lacks when the connection has GEN_TAIL (the target checks it whole and drops
 * its shadow) while the copy stays in block mode, and the next generation streams once that
 * file's GEN_END went out (the target takes its frames in order). When a generation closes while
 * an earlier one is still not durable on the target (a copy queue of 2; not when the earlier
 * one's GEN_END went out and the new one is the one streamed after it), the copy falls back to
 * file mode; back to block once the queue is empty. Each switch is a MODE action. */

/* Whether the current connection negotiated block mode (LS_FEAT_BLOCK at version >= 5). Call
 * after ls_ship_connected (which forgets it). */
void ls_ship_block_allow(ls_ship_t *m, bool allowed, uint64_t now);
/* Whether the current connection negotiated GEN_TAIL (LS_FEAT_TAIL with block mode): a closed
 * generation whose head was streamed to the target (BLOCK) or acknowledged by it (BLOCK_ACK) on
 * this connection starts with GEN_TAIL at that offset and only its tail goes as GEN_DATA. A
 * target that cannot finish it from its shadow asks again: that generation then goes whole. Call
 * after ls_ship_block_allow. */
void ls_ship_block_tail_allow(ls_ship_t *m, bool allowed);
/* Whether the current connection negotiated LS_FEAT_NEXT (with block mode): the target makes
 * every closed generation it took durable before it acknowledges a later BLOCK, so the next
 * generation streams right after the closed one's GEN_END instead of after its DURABLE. Call
 * after ls_ship_block_allow. */
void ls_ship_block_next_allow(ls_ship_t *m, bool allowed);
/* Whether the current connection negotiated LS_FEAT_APPLY (with block mode): COPY_STATE carries
 * LS_COPY_APPLY while a commit waits for the copy's applied position, and the target applies its
 * shadow early only then. Call after ls_ship_block_allow. */
void ls_ship_block_apply_allow(ls_ship_t *m, bool allowed);
/* Whether a commit waits for the copies' applied positions (the writer's commit level is
 * remote_applied). Call before ls_ship_block_durable with the position it read with: a change
 * goes out in COPY_STATE at once (when the connection has LS_FEAT_APPLY), ahead of the BLOCKs. */
void ls_ship_block_apply_wanted(ls_ship_t *m, bool wanted);
/* The writer published a new durable position (borrowed): bytes to stream, and the start of
 * the lag figures of the commits in it. */
void ls_ship_block_durable(ls_ship_t *m, const ls_ship_durable_t *d, uint64_t now);
ls_ship_mode_t ls_ship_mode(const ls_ship_t *m);
/* What the copy holds, as the target last said (BLOCK_ACK, DURABLE, REPLAYED): every record up
 * to *durable_lsn durably, up to *applied_lsn in its store (0: not known). */
void ls_ship_copy_lsns(const ls_ship_t *m, uint64_t *durable_lsn, uint64_t *applied_lsn);

/* ---- seeding ---------------------------------------------------------------------------------
 * A seed of this target holds the logs it needs (docs/SEED.md): from its start all of them, then
 * generation gen on; once its stream went out the hold stays until the target reports
 * replayed-synced past gen. */
void ls_ship_seed_hold(ls_ship_t *m, uint64_t gen); /* gen 0: hold everything (1) */
/* The seed's stream went out whole: the target's positions of the old copy are forgotten. */
void ls_ship_seed_sent(ls_ship_t *m);
void ls_ship_seed_abort(ls_ship_t *m);      /* the seed ended before its stream went out */
bool ls_ship_seed_busy(const ls_ship_t *m); /* a seed is under way (not sent yet) */
/* Lowest generation the seed needs (0: none); releases a hold the target synced past
 * (LS_SHIP_ACT_SEED_RELEASED). */
uint64_t ls_ship_seed_needs(ls_ship_t *m);

/* ---- figures ----------------------------------------------------------------------------------
 */
ls_ship_state_t ls_ship_state(const ls_ship_t *m);
const char *ls_ship_reason(const ls_ship_t *m);
const ls_ship_op_t *ls_ship_op(const ls_ship_t *m); /* this operator's decision */
uint64_t ls_ship_synced(const ls_ship_t *m);        /* replayed-synced on the target (0: none) */
uint64_t ls_ship_credit_left(const ls_ship_t *m);   /* bytes this database may send now */
/* Fills the copy's state, reason, suspension, positions with their times, queues, lags,
 * throughput and counters; leaves names, connection and network fields to the caller. */
void ls_ship_status(ls_ship_t *m, uint64_t now, ls_status_copy_t *c);

#endif
