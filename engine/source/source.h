/*
 * source: the active side's view of its own log directory, for the copier. No sockets, no loop.
 *
 * What it gives the copier (docs/SOURCE.md has the rules in full):
 *  - a directory view: the closed generations in <db>/logs/ (a sorted array, refreshed by
 *    ls_source_rescan(), which only lists the directory) and <db>/logs/history (read-only here);
 *    the current log (<prefix>.log) is never read: only closed generations ship;
 *  - the resume / divergence check (ls_source_plan()) run when a target says where it stands;
 *  - a pipelined reader (ls_reader_*): a thread of its own that reads and verifies the next
 *    generations while the previous one is on the wire, with bounded memory; a generation is
 *    handed out as soon as its first piece passed the checks, and grows as it is verified;
 *  - the log removal rule (ls_source_removable(), ls_source_remove_upto()): nothing else
 *    deletes a log on the active;
 *  - the figures for lag accounting (ls_source_last_closed(), ls_source_queue()).
 * Headers and trailers are read lazily (a 128-byte and a 96-byte pread) and cached per generation.
 *
 * Lifecycle: ls_source_open() -> ls_source_rescan() after each fs event and on a timer (fs events
 * can be lost) -> plans, readers, figures, removal ... -> stop every reader -> ls_source_free().
 *
 * Threading: every ls_source_* function is thread-safe (one mutex guards the array and the
 * caches; it is held during the small preads of a lazy load, not during removal's unlinks).
 * The daemon calls rescan, plan and the figures from its loop thread; ls_source_remove_upto()
 * unlinks and fsyncs the directory, so call it off the loop. A reader's thread reads and hashes
 * generations; its notify_cb runs on that thread. ls_reader_next/release/stats/stop may be
 * called from any one thread (the loop's).
 */
#ifndef LS_SOURCE_H
#define LS_SOURCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <logship/error.h>
#include <logship/logfmt.h>

typedef struct ls_source ls_source_t;
typedef struct ls_reader ls_reader_t;

#define LS_SOURCE_ERRLEN 512 /* a comfortable size for the err buffers below */

/* ---- directory view ---------------------------------------------------------------------- */

typedef struct {
    const char *db_dir; /* database directory; the logs are in <db_dir>/logs */
    const char *prefix; /* log file prefix; NULL or "" means "E00" */
} ls_source_options_t;

/* Opens the view of <db_dir>/logs and scans it once. *out is owned by the caller until
 * ls_source_free(). Errors: LS_EINVAL (bad prefix), LS_ENOENT (no logs directory), LS_ECONFIG
 * (malformed history line, message "<path>:<line>: ..."), LS_ELINEAGE (a file's epoch disagrees
 * with the history), LS_ECORRUPT (two files for one generation), LS_EIO. err gets the message. */
int ls_source_open(const ls_source_options_t *opts, ls_source_t **out, char *err, size_t errlen);
/* Frees the view. Every reader must have been stopped. NULL is a no-op. */
void ls_source_free(ls_source_t *src);

/* Lists the directory again and re-reads the history when its size or mtime changed; keeps the
 * cached headers and trailers of generations still there and wakes readers waiting for a new
 * generation. Errors as ls_source_open(); on error the previous view stays in place. */
int ls_source_rescan(ls_source_t *src, char *err, size_t errlen);

/* An fs event named name in logs/: when it is a closed generation of our prefix that exists
 * and is exactly the next after the newest in the view (epoch as the history says), it is
 * appended without listing the directory and waiting readers are woken: 0. 0 too when it is in
 * the view already, or when it is not a generation name of our prefix nor "history" (the
 * current log, <prefix>.next, .part files, foreign files: the view holds none of them). 1 for
 * a history event or a generation that is anything else (gone, a gap, another epoch ...): the
 * caller rescans. An error (malformed history) keeps the view. */
int ls_source_add(ls_source_t *src, const char *name, char *err, size_t errlen);

typedef struct {
    uint64_t count;       /* closed generations held */
    uint64_t oldest;      /* lowest generation held, 0 when none */
    uint64_t newest;      /* highest generation held (the last closed one), 0 when none */
    uint32_t epoch;       /* current epoch: the highest of the history and the file names */
    uint32_t history_len; /* entries in logs/history (0: absent, "1 1" implied) */
} ls_source_view_t;

void ls_source_view(ls_source_t *src, ls_source_view_t *out);
/* Epoch of generation g: from its file name when held, else from the history. 0 when unknown. */
uint32_t ls_source_epoch_of(ls_source_t *src, uint64_t g);
/* Whether generation g is held; fills *epoch when so (epoch may be NULL). */
bool ls_source_has(ls_source_t *src, uint64_t g, uint32_t *epoch);

/* ---- resume / divergence ------------------------------------------------------------------ */

/* Where a target stands, as it says in its resume message. */
typedef struct {
    uint32_t epoch;                 /* epoch of the generation next - 1 it holds (0: none held) */
    uint64_t next;                  /* next generation wanted, >= 1 */
    uint8_t digest[LS_DIGEST_SIZE]; /* digest of generation next - 1 it holds; zeros when none */
    uint64_t last_lsn;              /* last LSN it holds (0: none) */
} ls_resume_t;

typedef struct {
    uint64_t first;   /* first generation to ship: the target's next */
    uint64_t newest;  /* newest closed generation here when planned (0: none yet) */
    uint64_t ready;   /* generations that can ship now: newest - first + 1, or 0 */
    uint32_t epoch;   /* our epoch of generation first - 1 (0 when first is 1) */
    bool newer_epoch; /* LS_EDIVERGED because the target is at an epoch newer than ours: this node
                         should stop writing and become a passive of it (fencing) */
    bool need_seed;   /* LS_EGAP because what the target needs was removed here */
} ls_ship_plan_t;

/* Checks the target's position against our chain and says where shipping starts.
 * 0: ship from out->first (out->ready generations now, the rest as they close).
 * LS_EDIVERGED: the target's digest or epoch of next - 1 differs from ours, or it claims
 *   generations never written here; the copy must go Diverged (never be overwritten).
 * LS_EGAP: a generation the target needs is missing here: removed (out->need_seed, "the copy
 *   needs a seed") or a hole between next and the newest (message names the missing one).
 * LS_EPROTO: a position that cannot be (next 0, a digest with nothing held).
 * LS_ECORRUPT / LS_EIO: a header or trailer here could not be read (message names the file).
 * err always says why (names the generation, both digests as hex prefixes). */
int ls_source_plan(ls_source_t *src, const ls_resume_t *r, ls_ship_plan_t *out, char *err,
                   size_t errlen);

/* ---- figures for lag accounting ------------------------------------------------------------ */

/* The last closed generation and its close time from its trailer (0, 0 when none). */
int ls_source_last_closed(ls_source_t *src, uint64_t *gen, uint64_t *close_ns, char *err,
                          size_t errlen);

typedef struct {
    uint64_t count;           /* closed generations held after the given one */
    uint64_t bytes;           /* their total size in bytes (whole files) */
    uint64_t oldest_close_ns; /* close time of the first of them; 0 when none (copy lag = now -
                                 this when count > 0) */
} ls_source_queue_t;

/* Copy queue after generation `after` (the target's last durable generation). */
int ls_source_queue(ls_source_t *src, uint64_t after, ls_source_queue_t *out, char *err,
                    size_t errlen);

/* ---- log removal ---------------------------------------------------------------------------- */

#define LS_SOURCE_DEFAULT_MAX_LOG_BYTES (8ull << 30) /* 8 GiB held for lagging targets */
#define LS_SOURCE_NO_CAP                UINT64_MAX   /* max_log_bytes: hold for targets forever */

typedef struct {
    const uint64_t *target_synced; /* per target: highest generation replayed-synced there (0:
                                      none); a target that is gone keeps its last known value */
    size_t ntargets;               /* entries in target_synced (0: no targets) */
    uint64_t checkpoint_lsn;       /* the active store is synced up to this LSN */
    uint64_t seed_needs;           /* lowest generation a seed in progress needs (0: no seed) */
    uint64_t truncation_lag_ns;    /* keep a generation until close_ns + this <= now_ns */
    uint64_t now_ns;               /* wall clock, UTC ns (0: ls_now_ns()) */
    uint64_t max_log_bytes;        /* cap on bytes held only for targets; 0 means
                                      LS_SOURCE_DEFAULT_MAX_LOG_BYTES, LS_SOURCE_NO_CAP none */
} ls_removal_input_t;

typedef struct {
    uint64_t upto;              /* highest generation that may be deleted now (0: none) */
    uint64_t others_upto;       /* the same ignoring targets (checkpoint, seed, lag, newest) */
    uint64_t held_bytes;        /* bytes of generations held only for targets (before the cap) */
    bool warning;               /* held_bytes reached 3/4 of the cap (of the default cap when
                                   LS_SOURCE_NO_CAP): tell the operator */
    bool capped;                /* the cap moved upto past some target's position */
    size_t cut_targets;         /* targets whose synced position is now below upto: they will
                                   need a seed (LS_EGAP at their next plan) */
    uint64_t cut_target_lowest; /* the lowest such target's synced generation */
    char msg[256];              /* the warning or the cap's action, "" when neither */
} ls_removal_t;

/* Applies the removal rule (docs/SOURCE.md): generation g may be deleted only when every target
 * has replayed-synced it, the store's checkpoint covers its last LSN, no seed needs it, its
 * close time is older than the truncation lag, and it is not the newest closed generation. The
 * cap may override the targets (only them), oldest first. Reads trailers lazily. */
int ls_source_removable(ls_source_t *src, const ls_removal_input_t *in, ls_removal_t *out,
                        char *err, size_t errlen);

/* Deletes every held generation <= gen, oldest first, then fsyncs the directory. The entries
 * leave the view before the unlinks, which run without the lock; until they are done every
 * rescan keeps those generations out of the view, so removal and rescan never disagree (a file
 * that fails to unlink comes back at the first rescan after the removal). Removals run one at a
 * time. Refuses (LS_EINVAL) to delete the newest closed generation. Returns the number of files
 * removed, or a negative LS_E* code (what was removed before the failure stays removed). */
int ls_source_remove_upto(ls_source_t *src, uint64_t gen, char *err, size_t errlen);

/* ---- pipelined reader ---------------------------------------------------------------------- */

/* How much of each generation the reader checks before the last of it may go (GEN_END). */
typedef enum {
    LS_READER_VERIFY_RECORDS = 0, /* the default: header, every record checksum and field, the
                                     trailer (checksum, counts, magic) and the chain (dbid, epoch,
                                     first LSN, prev_digest against the previous generation's
                                     trailer digest); the digest is the trailer's, not recomputed:
                                     the target computes it and asks again on a mismatch */
    LS_READER_VERIFY_FULL = 1     /* the same and the SHA-256 of header + records against the
                                     trailer's digest (as before 2026-12-05) */
} ls_reader_verify_t;

typedef struct {
    uint32_t max_gens;          /* generations buffered at most (read, not released); 2 */
    uint64_t max_bytes;         /* bytes buffered at most; 8 MiB. A generation larger than this
                                   is read alone, when nothing else is buffered */
    const uint8_t *prev_digest; /* digest the first generation's header must carry (the
                                   target's, checked by the plan); NULL: ours of first - 1 when
                                   held, else unchecked */
    ls_reader_verify_t verify;  /* LS_READER_VERIFY_RECORDS (0) or _FULL */
    uint64_t full_gen;          /* this generation is verified FULL whatever verify says (0:
                                   none): one a target asked again for after damage */
} ls_reader_options_t;

/* A generation handed out to ship, possibly while it is still being read and verified
 * ("stream while verifying"). Owned by the reader; valid until ls_reader_release() or
 * ls_reader_stop().
 *
 * avail NULL: the whole generation is read and verified. Otherwise *avail (load it with
 * ls_gen_buf_avail()) is how many leading bytes are read and passed the checks so far; it only
 * grows, and reaches size only once the whole file passed the reader's checks (chain, records,
 * trailer; the digest too when verified FULL): only then are last_lsn and digest valid. A
 * generation that fails part way never reaches size: ls_reader_next() then returns the error
 * (the copy aborts the generation; the target, which checks the digest itself, never makes it
 * durable). epoch, generation, size,
 * first_lsn and close_ns are valid from the start (close_ns from the trailer, read first, and
 * checked again at the end). */
typedef struct {
    uint32_t epoch;                 /* epoch from its header */
    uint64_t generation;            /* generation number */
    const uint8_t *bytes;           /* the whole file (the first *avail bytes while streaming) */
    size_t size;                    /* bytes */
    uint64_t first_lsn;             /* first LSN in it */
    uint64_t last_lsn;              /* last LSN in it (once verified) */
    uint64_t close_ns;              /* close time from the trailer, UTC ns */
    uint8_t digest[LS_DIGEST_SIZE]; /* its trailer's SHA-256 digest (once verified; recomputed
                                       and compared only when verified FULL) */
    uint64_t ready_ns;              /* monotonic time it was handed to the queue */
    const _Atomic uint64_t *avail;  /* see above; NULL: complete */
} ls_gen_buf_t;

/* Bytes of g that may be sent now; size once g is verified whole. */
static inline uint64_t ls_gen_buf_avail(const ls_gen_buf_t *g)
{
    return g->avail ? atomic_load_explicit(g->avail, memory_order_acquire) : g->size;
}

typedef struct {
    uint32_t buffered_gens;  /* read and not released (queued + handed out) */
    uint64_t buffered_bytes; /* their total size, bytes */
    uint32_t peak_gens;      /* highest buffered_gens seen */
    uint64_t peak_bytes;     /* highest buffered_bytes seen */
    uint64_t read;           /* generations read and verified */
    uint64_t hashed;         /* of those, verified FULL (their SHA-256 computed) */
    uint64_t delivered;      /* generations handed out by ls_reader_next */
    uint64_t next;           /* next generation the thread will read */
    bool waiting_space;      /* the thread waits for a release (bounds reached) */
    bool waiting_gen;        /* the thread waits for generation `next` to be closed */
    int error;               /* 0, or why the reader stopped */
} ls_reader_stats_t;

/* Called on the reader's thread when a generation becomes ready, grows, or the reader fails. Must
 * not block nor call ls_reader_stop(); a wake-up of the loop is the intended body (the daemon's
 * ls_node_wake_t, engine/node/wake.c). */
typedef void (*ls_reader_notify_cb)(void *ctx);

/* Starts a reader thread from generation first (which the plan approved). *out is owned by the
 * caller until ls_reader_stop(). src must outlive it. Errors: LS_EINVAL, LS_ENOMEM, LS_EIO
 * (thread creation); on error no thread runs and notify_cb is never called. */
int ls_reader_start(ls_source_t *src, uint64_t first, const ls_reader_options_t *opts,
                    ls_reader_notify_cb notify_cb, void *ctx, ls_reader_t **out);
/* Non-blocking. 0: *gen is the next generation in order (borrowed until release), possibly
 * still growing (ls_gen_buf_avail()). LS_EBUSY: none ready yet. Otherwise the error that stopped
 * the reader, once every generation before it was handed out (ls_reader_error() says why: a
 * damaged, missing or removed generation, which is never verified whole: one that failed
 * after it was handed out stays short of its size). While a handed-out generation grows, the
 * next call returns LS_EBUSY, or the error when that generation failed. */
int ls_reader_next(ls_reader_t *r, const ls_gen_buf_t **gen);
/* Frees a generation handed out by ls_reader_next (any order); makes room for the thread. One
 * still being read (short of its size) may be released too (ship does when it stops the
 * reader): the thread stops filling it and frees it itself. */
void ls_reader_release(ls_reader_t *r, const ls_gen_buf_t *gen);
/* Why the reader stopped ("" while healthy); valid until ls_reader_stop(). */
const char *ls_reader_error(ls_reader_t *r);
void ls_reader_stats(ls_reader_t *r, ls_reader_stats_t *out);
/* Stops and joins the thread and frees everything, including generations not released.
 * NULL is a no-op. */
void ls_reader_stop(ls_reader_t *r);

#endif
