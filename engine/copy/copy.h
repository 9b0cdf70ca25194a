/*
 * copy: the passive side's disk pipeline for one copy (database, source). No networking.
 *
 * Bytes of a generation arrive (GEN_BEGIN / GEN_DATA / GEN_END frames, decoded by the daemon) and
 * go through three directories, each move a rename after an fsync (docs/COPY.md):
 *
 *   <dir>/inspect/<name>.part   being received, and inspected on the way: SHA-256 of header +
 *                               records, each record's checksum as it arrives, the file's seal
 *   <dir>/inspect/<name>        fsynced and renamed, inspection failed (then deleted): durable(N)
 *   <dir>/logs/<name>           inspected (checksums, trailer, digest, chain): the .part is
 *                               fsynced and renamed here directly: durable(N), inspected(N)
 *   <dir>/store/                the copy store; replayed(N), then replayed-synced(N) after a sync
 *   <dir>/pool/ready-<n>        preallocated files a .part or a shadow is taken from
 *                               (copy/prealloc.h)
 *
 * Position after a restart comes from the directories and the store's meta record only (no
 * journal): .part files are deleted, complete files left in inspect/ are inspected again, logs/
 * holds the inspected chain past the store's position, and the resume point is the first
 * generation not held.
 *
 * Lifecycle: ls_copy_open() -> ls_copy_start() (the replayer thread) -> receive calls and
 * ls_copy_pause_replay() / ls_copy_stats() / ls_copy_resume_point() / ls_copy_shadow_durable() at
 * any time -> ls_copy_stop()
 * -> ls_copy_close(). Without ls_copy_start() generations are received and inspected but never
 * replayed (tests use that; the daemon always starts it).
 *
 * Threading:
 *  - ls_copy_recv_begin/data/end/abort belong to ONE receiver thread at a time (copy/receiver.h
 *    runs one per copy). They do the file I/O and the inspection on that thread.
 *  - the replayer is a thread of this module (not libuv's pool): it reads logs/, compares each
 *    file with the seal taken when it was inspected (no record checksum or digest computed
 *    again: docs/COPY.md, "Which check runs where"), applies it to the store and checkpoints.
 *  - ls_copy_stats, ls_copy_state, ls_copy_resume_point and ls_copy_pause_replay may be called
 *    from any thread; they only take the copy's mutex.
 *  - the event callback runs on the receiver thread (DURABLE, INSPECTED, ASK_AGAIN after a failed
 *    inspection, STATE for a full disk or Failed) or on the replayer thread (REPLAYED,
 *    REPLAYED_SYNCED, APPLIED, ASK_AGAIN for a file damaged in logs/, STATE); never with the copy's
 * mutex held, so it may call ls_copy_stats(). It must not block for long: marshal to the loop.
 *    ls_copy_open() reports nothing through it (the resume point says where the copy stands).
 *
 * States: HEALTHY; DISK_FULL (transient: set by ENOSPC on the receive path or in the store, left
 * by the next generation made durable or the next batch applied); FAILED (the same generation
 * failed inspection max_inspect_failures times in a row, a generation of another database
 * arrived, or the store failed: receiving is refused and replay halts until
 * ls_copy_clear_failed()). States are not persisted: a restart starts HEALTHY and tries again.
 * Fault points (test builds): copy.recv.before_rename, copy.recv.write_enospc (a write of the
 * receive path fails with ENOSPC: DISK_FULL), copy.replay.before_commit (inside the store
 * transaction), copy.replay.after_commit, copy.shadow.before_commit / after_commit (the shadow's
 * early apply), copy.shadow_close.after_trailer / after_rename (ls_copy_shadow_close).
 *
 * Block mode: <dir>/shadow/ holds the open generation's shadow; the replayer applies its complete
 * transactions early (the store's meta then lies inside the open generation, with the seal of
 * the bytes applied, checked when the closed generation replays: a mismatch is FAILED). See
 * ls_copy_shadow_durable and docs/BLOCKMODE.md "Shadow replay and activation".
 */
#ifndef LS_COPY_H
#define LS_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <logship/logfmt.h>

#include "store/store.h"

typedef struct ls_copy ls_copy_t;

typedef enum {
    LS_COPY_HEALTHY = 0,   /* receiving and replaying normally */
    LS_COPY_DISK_FULL = 1, /* the last write hit ENOSPC: nothing durable harmed, retry later */
    LS_COPY_FAILED = 2     /* too many failed inspections or a store error: see the reason */
} ls_copy_state_t;

typedef enum {
    LS_COPY_EV_DURABLE = 1,     /* generation fsynced and renamed out of .part */
    LS_COPY_EV_INSPECTED,       /* generation inspected and moved into logs/ */
    LS_COPY_EV_ASK_AGAIN,       /* resend from generation on (code and message say why) */
    LS_COPY_EV_REPLAYED,        /* the store holds generation (committed, not yet synced) */
    LS_COPY_EV_REPLAYED_SYNCED, /* the store has been synced with generation applied */
    LS_COPY_EV_STATE,           /* the state changed: code is the new ls_copy_state_t */
    LS_COPY_EV_APPLIED          /* block mode: the store applied the open generation's shadow up
                                   to lsn (complete transactions, not yet synced; bytes it carried
                                   are durable: from the replayer, or from the thread reporting
                                   them durable); generation is the open one (docs/BLOCKMODE.md) */
} ls_copy_event_kind_t;

typedef struct {
    ls_copy_event_kind_t kind; /* what happened */
    uint64_t generation;       /* the generation concerned (0 for STATE) */
    uint64_t lsn;              /* REPLAYED/REPLAYED_SYNCED/APPLIED: last LSN applied; else 0 */
    int code;                  /* ASK_AGAIN: the LS_E* reason; STATE: the new state */
    const char *message;       /* ASK_AGAIN/STATE: the reason; borrowed for the call, or "" */
} ls_copy_event_t;

/* Called on the receiver or replayer thread (see above). ev is borrowed for the call. */
typedef void (*ls_copy_event_cb)(void *ctx, const ls_copy_event_t *ev);

/* Zero means the default for every field except dir. Strings are copied at open. */
typedef struct {
    const char *dir;               /* the copy's directory (created when absent); required */
    const char *prefix;            /* generation file name prefix; "E00" */
    const uint8_t *dbid;           /* expected database id (LS_DBID_LEN bytes) or NULL: adopt the
                                      store's, else the first generation's */
    uint32_t keep_logs;            /* replayed-synced generations kept in logs/; 8 */
    uint64_t replay_lag_ms;        /* apply a generation only this long after its close time */
    uint32_t max_inspect_failures; /* consecutive failures of one generation before Failed; 3 */
    uint64_t map_size;             /* initial LMDB map size of the store, bytes; 64 MiB, raised to
                                      twice an existing data.mdb */
    uint64_t checkpoint_ms;        /* sync the store at most this often (and when idle: nothing
                                      to apply, the receiver quiet for 100 ms); 1000 */
    uint32_t batch_generations;    /* at most this many generations per store transaction;
                                       64 (capped at 64); read, checked and sorted 16 at a time */
    uint64_t batch_bytes;          /* at most about this many bytes of log per transaction;
                                      64 MiB (one generation is always allowed); read 32 MiB at
                                      a time, at most */
    uint32_t batch_pages;          /* a transaction takes no further chunk once it may have
                                      dirtied this many store pages (LMDB keeps a heap copy of
                                      each: the bound of that memory), estimated as the fewer of
                                      its operations and the tree's pages at its start + 1 per 8
                                      operations; 65536 (256 MiB of 4 KiB pages) */
    int prealloc_files;            /* preallocated files kept ready in <dir>/pool for .part
                                      files and block mode's shadows (made in the background,
                                      docs/COPY.md); 8; negative: none */
    ls_copy_event_cb event_cb;     /* NULL: no events */
    void *event_ctx;               /* passed to event_cb */
} ls_copy_options_t;

/* Where the copy stands: what the daemon sends in RESUME. */
typedef struct {
    uint32_t epoch;                 /* epoch of the last generation held; 0 when none */
    uint64_t next_generation;       /* first generation not held (wanted next) */
    uint8_t digest[LS_DIGEST_SIZE]; /* digest of next_generation-1 (zeros when none) */
    uint64_t last_lsn;              /* last LSN held (0 when none or unknown) */
} ls_copy_resume_t;

/* Figures for lag accounting and tests. */
typedef struct {
    ls_copy_state_t state;        /* current state */
    char reason[512];             /* why DISK_FULL or FAILED ("" when healthy) */
    bool replay_paused;           /* the operator suspended replay */
    uint64_t last_durable;        /* last generation durable (fsynced out of .part) */
    uint64_t last_inspected;      /* last generation inspected (held) */
    uint64_t last_replayed;       /* last generation applied completely to the store */
    uint64_t last_replayed_lsn;   /* the store's last applied LSN */
    uint64_t applied_lsn;         /* the same: what BLOCK_ACK sends as applied (inside the open
                                     generation once its shadow was applied early) */
    uint64_t shadow_generation;   /* block mode: the open generation's shadow reported durable
                                     (0: none since open) */
    uint64_t shadow_size;         /* its durable bytes, as last reported */
    uint64_t shadow_durable_lsn;  /* the LSN those bytes end at, as reported */
    uint64_t shadow_applied_lsn;  /* last LSN applied early from it (0: none) */
    uint64_t shadow_applies;      /* store transactions applying a shadow, since open */
    bool shadow_lazy;             /* applied early only when the stream is quiet (no commit
                                     waits for the applied position: ls_copy_shadow_apply_eager) */
    uint64_t last_synced;         /* last generation applied before the last store sync */
    uint64_t inspect_queue;       /* generations durable in inspect/ not yet inspected */
    uint64_t inspect_queue_bytes; /* their bytes */
    uint64_t replay_queue;        /* generations in logs/ waiting for replay */
    uint64_t replay_queue_bytes;  /* their bytes */
    uint64_t inspect_failures;    /* failed inspections since open (receive and replay) */
    uint64_t ask_agains;          /* ASK_AGAIN events since open */
    uint64_t applied_generations; /* generations ever applied to the store (its meta) */
    uint64_t replay_txns;         /* store transactions committed by the replayer since open */
    uint64_t checkpoints;         /* store syncs since open */
    /* Checks computed since open, on any thread (docs/COPY.md, "Which check runs where"). Each
     * record of a received generation has its checksum computed once (while receiving) and each
     * generation its digest once; replay computes neither, it compares the file's seal. */
    uint64_t record_checksums; /* record checksums computed (receiving; re-checks after open) */
    uint64_t digests;          /* generation digests (SHA-256) computed */
    uint64_t digest_bytes;     /* bytes fed to SHA-256 */
    uint64_t seals;            /* whole-file XXH3-128 seals computed (receiving; after open) */
    uint64_t seal_checks;      /* seals verified by the replayer, one per file read */
    uint64_t seal_bytes;       /* bytes fed to XXH3-128 (seals and their checks) */
    uint64_t logs_syncs;       /* fsyncs of logs/ that made inspected generations durable (one
                                  for several while the receiver defers: ls_copy_recv_defer) */
    uint64_t replay_yields;    /* times the replayer yielded to the busy receiver (nice 19;
                                  docs/COPY.md "Replay") */
} ls_copy_stats_t;

/* Opens (creating when absent) the copy in opts->dir and works out its position (see above).
 * *out is owned by the caller until ls_copy_close(). err (errlen bytes) receives a message.
 * Errors: LS_EINVAL (no dir, bad prefix), LS_EDBID (the store or a held generation belongs to
 * another database: the message names both ids), LS_ECORRUPT/LS_ESTORE (store), LS_EIO,
 * LS_ENOSPC, LS_ENOMEM. */
int ls_copy_open(const ls_copy_options_t *opts, ls_copy_t **out, char *err, size_t errlen);
/* Stops the replayer if running, drops a half-received .part, closes the store (a checkpoint is
 * taken first so the store is durable). NULL: no-op. */
void ls_copy_close(ls_copy_t *copy);

/* Starts / stops the replayer thread. Stop waits for the batch in progress, then checkpoints.
 * ls_copy_start returns 0, LS_ESTATE (already running) or LS_ENOMEM. */
int ls_copy_start(ls_copy_t *copy);
void ls_copy_stop(ls_copy_t *copy);
/* The operator's replay-only suspend: receiving and inspection go on, nothing is applied. */
void ls_copy_pause_replay(ls_copy_t *copy, bool paused);
/* Leaves FAILED (the operator's resume): clears the failure count and the reason. */
void ls_copy_clear_failed(ls_copy_t *copy);

void ls_copy_resume_point(ls_copy_t *copy, ls_copy_resume_t *out);
/* The current state; reason (may be NULL) receives the reason ("" when healthy). */
ls_copy_state_t ls_copy_state(ls_copy_t *copy, char *reason, size_t reason_len);
void ls_copy_stats(ls_copy_t *copy, ls_copy_stats_t *out);
/* The copy store, for reading (ls_store_get/iterate/meta); NULL until the database id is known.
 * Borrowed, valid until ls_copy_close(). */
ls_store_t *ls_copy_store(ls_copy_t *copy);

/* Block mode (docs/BLOCKMODE.md): the receiver keeps the open generation's shadow,
 * <dir>/shadow/<ls_gen_name(prefix, epoch, generation)>, bytes [0, n) of the active's current log.
 *
 * ls_copy_shadow_durable: the receiver made bytes [0, size) of the shadow of (epoch, generation)
 * durable (fdatasync); they end at durable_lsn. Records it and wakes the replayer (eager, below),
 * which applies the shadow's complete transactions early unless replay is lagged (replay_lag_ms),
 * paused or the copy FAILED; each applied step is reported by LS_COPY_EV_APPLIED. Cheap: takes the
 * copy's mutex briefly, no I/O. Any thread. A report for another generation than the one the copy
 * wants next is kept but applies nothing until the copy has replayed up to it. */
void ls_copy_shadow_durable(ls_copy_t *copy, uint32_t epoch, uint64_t generation, uint64_t size,
                            uint64_t durable_lsn);
/* Whether a commit waits for this copy's applied position (synchronous commit at
 * remote_applied): eager (the default after open, and what a source that cannot say gets) applies
 * the shadow early at each report; lazy applies it only once the reports were quiet for 100 ms
 * (the writer idle), so under a steady stream the shadow's transactions are applied from the
 * closed generation and the store's commits and syncs stay off the shadow's disk. Any thread. */
void ls_copy_shadow_apply_eager(ls_copy_t *copy, bool eager);
/* The receiver wrote bytes [0, size) of the shadow of (epoch, generation), not yet made durable
 * (called before its fdatasync, which runs meanwhile). An eager copy (ls_copy_shadow_apply_eager)
 * may apply their complete transactions at once: the store transaction then also carries the
 * bytes past the durable end reported (at most 1 MiB past it), so that the store's one fdatasync
 * makes them durable with the applied state, and ls_copy_open writes them back into a shadow
 * that lost them (docs/BLOCKMODE.md "The store carries the shadow's unsynced bytes"). Lazy: a
 * no-op. Any thread. */
void ls_copy_shadow_written(ls_copy_t *copy, uint32_t epoch, uint64_t generation, uint64_t size);
/* The shadow's path for (epoch, generation) into out (outlen bytes): <dir>/shadow/<name>. The
 * directory exists once the copy is open. 0, or LS_EINVAL (out too small). */
int ls_copy_shadow_path(ls_copy_t *copy, uint32_t epoch, uint64_t generation, char *out,
                        size_t outlen);

/* What ls_copy_shadow_close did. */
typedef struct {
    uint32_t epoch;      /* the closed generation's epoch */
    uint64_t generation; /* the generation closed from the shadow; 0: none (no shadow of the
                            generation wanted next, or no complete transaction in it) */
    uint64_t first_lsn;  /* its first LSN */
    uint64_t last_lsn;   /* its last LSN (a COMMIT) */
    uint64_t bytes;      /* the closed file's size, trailer included */
    uint64_t dropped;    /* bytes after the last COMMIT cut off (an incomplete transaction or a
                            torn tail) */
} ls_copy_shadow_closed_t;
/* (also reported when no shadow is left but <dir>/shadow/closed says the last generation held
 * was closed from one: a rerun after a crash) */

/* Activation (engine/role): the shadow of the generation the copy wants next becomes that closed
 * generation: cut after its last COMMIT, a trailer with its digest written, fdatasynced, renamed
 * into logs/ and queued for replay (ls_copy_start replays it). Shadows of other generations are
 * deleted. dry_run: only says what it would close (out), changing nothing (an activation that may
 * still be refused for its loss must leave the shadow as it is). Call after ls_copy_open and
 * before ls_copy_start, with nothing being received. Safe to rerun after a crash at any step.
 * 0 (out filled; out->generation 0 when there is nothing to close), LS_ESTATE (replayer running
 * or a receive open), the scanner's code when the shadow does not chain to the held generations
 * (err names the file: remove it to activate without it), LS_EIO, LS_ENOSPC. */
int ls_copy_shadow_close(ls_copy_t *copy, bool dry_run, ls_copy_shadow_closed_t *out, char *err,
                         size_t errlen);

/* Receiving (the receiver thread). Each returns 0 or an error with a message in err.
 *
 * recv_begin: starts generation `generation` of `epoch`, `size` bytes in all, closed at close_ns
 * (informational: the trailer's close time is what replay lag uses). Refused with LS_ESTATE
 * unless it is the next wanted generation, its epoch is not older than the last held, the copy
 * is not FAILED and nothing else is being received; LS_ETOOBIG beyond LS_GEN_HARD_CAP or below
 * a header + trailer; LS_ENOSPC/LS_EIO creating the .part (state DISK_FULL for ENOSPC). */
int ls_copy_recv_begin(ls_copy_t *copy, uint32_t epoch, uint64_t generation, uint64_t size,
                       uint64_t close_ns, char *err, size_t errlen);
/* Writes len bytes at offset (must be exactly the bytes received so far: contiguous), hashes
 * them and inspects them (records may straddle calls; a failure is reported by recv_end). Borrows
 * data. LS_ESTATE (no such receive, offset not contiguous, past size, or the generation is no
 * longer wanted because an earlier one was asked again), LS_EDBID (the header names another
 * database: the copy goes FAILED), LS_ENOSPC (DISK_FULL; the .part is dropped), LS_EIO. After any
 * error the receive is over (begin again). */
int ls_copy_recv_data(ls_copy_t *copy, uint64_t generation, uint64_t offset, const void *data,
                      size_t len, char *err, size_t errlen);
/* As recv_data, but the caller has hashed the bytes: the SHA-256 of the generation's bytes
 * below the trailer, in order from offset 0, is the caller's running hash (copy/receiver.c: the
 * loop, as it moves the bytes out of the socket's buffer). Every chunk of a generation comes one
 * way or the other (LS_ESTATE otherwise), and one received this way ends with recv_end_hashed. */
int ls_copy_recv_data_hashed(ls_copy_t *copy, uint64_t generation, uint64_t offset,
                             const void *data, size_t len, char *err, size_t errlen);
/* Completes the generation: size reached, digest compared with sender_digest (may be NULL),
 * fdatasync; then the inspection's verdict, established while receiving (the file is not read
 * back): passed, the .part is renamed into logs/ and logs/ fsynced -> DURABLE, INSPECTED
 * (replayer woken; while ls_copy_recv_defer is set the fsync and the two events may be left
 * pending for a later one, see below); failed, renamed out of .part and inspect/ fsynced ->
 * DURABLE, then deleted -> ASK_AGAIN (FAILED after max_inspect_failures). Returns 0 when the
 * generation was inspected; the inspection's LS_E* code when it failed (an ASK_AGAIN was reported);
 * LS_ESTATE, LS_ENOSPC, LS_EIO as above. */
int ls_copy_recv_end(ls_copy_t *copy, uint64_t generation, const uint8_t *sender_digest, char *err,
                     size_t errlen);
/* As recv_end, for a generation received by recv_data_hashed: digest is the caller's SHA-256 of
 * those bytes, checked against sender_digest and the trailer exactly as recv_end checks its own
 * (ignored when the bytes were hashed here). */
int ls_copy_recv_end_hashed(ls_copy_t *copy, uint64_t generation, const uint8_t *sender_digest,
                            const uint8_t *digest, char *err, size_t errlen);
/* Drops a half-received .part (connection lost). No-op when nothing is being received. */
void ls_copy_recv_abort(ls_copy_t *copy);
/* Group durability (the receiver thread, which knows what is queued behind: copy/receiver.c sets
 * it when another generation's END is already queued, and flushes when none is): while defer is
 * set, recv_end of an inspected generation renames it into logs/ (held, queued) but leaves the
 * fsync of logs/ and its DURABLE and INSPECTED events pending, up to 8 generations, so that one
 * fsync covers the generations received back to back; the replayer applies none of them meanwhile.
 * ls_copy_recv_flush (call it when nothing more is queued), the 8th, a failed inspection and
 * ls_copy_close do the fsync and report them in order. Returns 0 or the fsync's error (the
 * pending generations are then deleted and asked again, as a failed move into logs/). */
void ls_copy_recv_defer(ls_copy_t *copy, bool defer);
int ls_copy_recv_flush(ls_copy_t *copy, char *err, size_t errlen);

/* ---- block mode: the receiver's side of the shadow (docs/BLOCKMODE.md) ------------------------
 * <dir>/shadow/<name>, <name> the generation's name in logs/: begins with exactly bytes [0, size)
 * of the active's open generation, which only grows by BLOCK frames in order and is fdatasynced
 * before it is acknowledged (the file may be longer: a file of the pool overwritten in place,
 * zeros or a pruned log's old bytes past size, never taken for data). At most one: the generation
 * after the last held. The first BLOCK after an open takes up the file an earlier run left (cut to
 * its last complete transaction: a torn tail after a crash) and deletes shadows of any other
 * generation or epoch; ls_copy_open only writes back into it the bytes the store carries for it
 * (ls_copy_shadow_written: an eager early apply of bytes not yet synced) where the file is short
 * of them or differs (an activation closes it: ls_copy_shadow_close). The shadow is deleted once
 * its generation is held (ls_copy_shadow_drop after the closed file, inspected whole as any other).
 * The closed file may take its head from the shadow (ls_copy_recv_begin_tail, GEN_TAIL: the .part a
 * hard link of it; ls_copy_recv_from_shadow copies it instead): the whole file is checked against
 * its trailer and the sender's digest, so a shadow that differs from the active's log is caught and
 * the generation asked again whole. Receiver thread only, like ls_copy_recv_*. Fault points (test
 * builds): copy.shadow.before_fsync, copy.shadow.after_fsync. */
typedef struct {
    uint32_t epoch;       /* the shadow's epoch */
    uint64_t generation;  /* its generation (0: no shadow) */
    uint64_t size;        /* bytes durable in it */
    uint64_t durable_lsn; /* last LSN complete in them (0: none known) */
} ls_copy_shadow_t;

/* Writes the BLOCK bytes data[0, len) found at offset of the open generation (epoch,
 * generation), fdatasyncs, calls ls_copy_shadow_durable and fills *out (what the shadow now holds,
 * to acknowledge). Bytes it already holds are not written again; a shadow of another generation
 * or epoch is replaced. LS_ESTATE: not the generation after the last held, an older epoch, or a
 * gap (offset past the shadow's size; err says which); LS_ENOSPC, LS_EIO: the shadow is dropped.
 * Borrows data. */
int ls_copy_shadow_write(ls_copy_t *copy, uint32_t epoch, uint64_t generation, uint64_t offset,
                         const void *data, size_t len, uint64_t durable_lsn, ls_copy_shadow_t *out,
                         char *err, size_t errlen);
/* ls_copy_shadow_write in two steps, so that the receiver syncs once for every BLOCK queued:
 * append writes (same refusals, no fdatasync); sync fdatasyncs what was appended, calls
 * ls_copy_shadow_durable and fills *out (generation 0: no shadow; an error drops the shadow). */
int ls_copy_shadow_append(ls_copy_t *copy, uint32_t epoch, uint64_t generation, uint64_t offset,
                          const void *data, size_t len, uint64_t durable_lsn, char *err,
                          size_t errlen);
int ls_copy_shadow_sync(ls_copy_t *copy, ls_copy_shadow_t *out, char *err, size_t errlen);
/* ls_copy_shadow_sync without its call to ls_copy_shadow_durable: *due says whether bytes were
 * made durable, and the caller then calls ls_copy_shadow_report (the same call) once it posted
 * the acknowledgement, so that the replayer's wake-up is not in series before it. */
int ls_copy_shadow_sync_deferred(ls_copy_t *copy, ls_copy_shadow_t *out, bool *due, char *err,
                                 size_t errlen);
void ls_copy_shadow_report(ls_copy_t *copy);
/* ls_copy_shadow_written for the bytes the shadow holds past its synced end (none: a no-op):
 * called between ls_copy_shadow_append and the fdatasync. */
void ls_copy_shadow_report_written(ls_copy_t *copy);
/* Whether a BLOCK of (epoch, generation) at offset, len bytes, appends to the open shadow with no
 * other disk work than its write and one fdatasync: the shadow is open for that generation and
 * epoch, its name durable, offset not past its size, len at most LS_COPY_SHADOW_QUICK_MAX, its
 * last fdatasync took less than sync_ns (the daemon: LS_COPY_SHADOW_QUICK_NS) and ended at least
 * as long ago as it took (BLOCKs that come faster go to the receiver thread; UINT64_MAX: not
 * asked, for tests). The receiver then lets the loop run it (copy/receiver.h,
 * ls_copy_rx_run_held). Receiver thread only, or while it is idle. */
#define LS_COPY_SHADOW_QUICK_MAX (64u * 1024)
#define LS_COPY_SHADOW_QUICK_NS  (2ull * 1000000ull)
bool ls_copy_shadow_quick(ls_copy_t *copy, uint32_t epoch, uint64_t generation, uint64_t offset,
                          size_t len, uint64_t sync_ns);
/* Deletes the shadows of generations <= upto (the closed one is held), the one open included. */
void ls_copy_shadow_drop(ls_copy_t *copy, uint64_t upto);
/* What the shadow holds (generation 0: none). */
void ls_copy_shadow_info(ls_copy_t *copy, ls_copy_shadow_t *out);
/* GEN_TAIL: right after ls_copy_recv_begin of the shadow's generation, bytes [0, start) of the
 * .part are copied from the shadow (taking up the file an earlier run left, as a BLOCK does)
 * through ls_copy_recv_data: written, hashed and inspected exactly as received bytes, so that
 * recv_end checks the whole generation (SHA-256 against the trailer and the sender's digest, the
 * stream inspection, the seal) as for one received whole. GEN_DATA go on from start. When the
 * shadow does not hold [0, start) (another generation, fewer bytes, unreadable) the receive is
 * dropped and ASK_AGAIN (LS_EGAP) reported: the source sends the generation whole. Returns 0,
 * LS_EGAP (asked again), or ls_copy_recv_data's codes. Receiver thread only.
 * Fault point (test builds): copy.tail.after_head (the head copied, nothing of the tail yet). */
int ls_copy_recv_from_shadow(ls_copy_t *copy, uint64_t start, char *err, size_t errlen);
/* GEN_TAIL in one call, what the receiver uses: ls_copy_recv_begin and the head from the shadow,
 * with inspect/<name>.part a hard link of the shadow's file instead of a copy (its head is read
 * back and checked exactly as received bytes, but neither written nor synced again; the tail then
 * goes into that same file, so the shadow may grow the closed generation's tail and trailer until
 * the move into logs/, and is cut back when the receive is dropped). Falls back to the copy
 * (recv_begin + recv_from_shadow) when no link can be made. Same refusals and returns as those
 * two: LS_ESTATE, LS_EGAP (asked again whole), ls_copy_recv_data's codes. Receiver thread only.
 * Fault point (test builds): copy.tail.after_head. */
int ls_copy_recv_begin_tail(ls_copy_t *copy, uint32_t epoch, uint64_t generation, uint64_t size,
                            uint64_t close_ns, uint64_t start, char *err, size_t errlen);

#endif
