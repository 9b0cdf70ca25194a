/*
 * role: what a database directory is on this node (active, copy, demoted, diverged) and in
 * which epoch, as state the engine owns in the directory, and the operations that change it:
 * activating a copy (a new epoch recorded in logs/history), fencing an old active, finding where
 * two histories split and moving the diverged generations aside. docs/ACTIVATION.md has the
 * states, the files, each step and what a crash at each step leaves.
 *
 *   <db>/role                  the role file (text, written durably: tmp, fsync, rename, fsync)
 *   <db>/control               the control page the writer reads (engine/writer/ctlpage.h)
 *   <db>/logs/history          "EPOCH FIRST_GENERATION" lines (the writer and the source read it)
 *   <db>/diverged/<epoch>/     generations written here after the split with that epoch
 *
 * Layer 3: uses store, layout, logfmt, copy and the writer's control page; no loop, no network,
 * never prints (messages go to err). The daemon and the command line (next steps) call it.
 *
 * Lifecycle: every call is self-contained (opens, works, closes). ls_role_activate() opens the
 * copy through engine/copy to replay what is durable: the caller must not hold that copy open
 * (stop shipping to it first), and no writer may have the directory open.
 * Threading: no shared state; calls on different directories may run on any threads at once.
 */
#ifndef LS_ROLE_H
#define LS_ROLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <logship/logfmt.h>

#include "layout/layout.h"

#define LS_ROLE_NAME_MAX   255 /* node names, bytes */
#define LS_ROLE_REASON_MAX 511 /* reasons, bytes */

typedef enum {
    LS_ROLE_ACTIVE = 1,   /* this node writes the database (the application opens it) */
    LS_ROLE_COPY = 2,     /* a passive copy, replaying what an active ships */
    LS_ROLE_DEMOTED = 3,  /* an old active fenced by a newer epoch; nothing diverged */
    LS_ROLE_DIVERGED = 4, /* an old active whose later generations were moved aside */
} ls_role_kind_t;

/* What the old active last announced about its log, and what an activation may lose. */
typedef struct {
    uint64_t first_generation; /* first generation possibly lost (0: none lost) */
    uint64_t last_generation;  /* last generation lost (closed at the old active) */
    uint64_t generations;      /* closed generations lost: last - first + 1, or 0 */
    uint64_t bytes;            /* their bytes, as the old active announced them */
    uint64_t from_ns;          /* commits lost were made after this time (close of the last
                                  generation held here), ns since 1970 UTC */
    uint64_t to_ns;            /* ... up to the close of the last announced generation */
    uint64_t open_generation;  /* the old active's open generation, possibly holding commits
                                  never shipped: the later of the last announced and the last
                                  held, + 1); 0 when block mode brought all of it that was
                                  announced */
    uint64_t open_held_lsn;    /* block mode: that generation is held here up to this LSN (its
                                  shadow closed by the activation); only later commits may be
                                  lost. 0: nothing of it held */
    uint64_t open_lsn;         /* the old active's last durable LSN in it, as announced (0:
                                  unknown) */
} ls_role_loss_t;

/* The role file's content. */
typedef struct {
    ls_role_kind_t role;                 /* current role */
    uint32_t epoch;                      /* the epoch this node knows as current */
    char follows[LS_ROLE_NAME_MAX + 1];  /* the active this node follows or was fenced by ("") */
    uint64_t since_ns;                   /* when the role was taken, ns since 1970 UTC */
    char reason[LS_ROLE_REASON_MAX + 1]; /* why (operator's words or the engine's) */
    ls_role_loss_t loss;                 /* what the activation that made this epoch may have
                                            lost (zeros: lossless or not an activation) */
} ls_role_state_t;

/* "active", "copy", "demoted", "diverged" (static). */
const char *ls_role_kind_name(ls_role_kind_t kind);

/* Loads <dir>/role. Absent: the role the configuration gives (initial), since 0, epoch from
 * logs/history's last line, else from the newest generation in logs/, else 1. Errors:
 * LS_ECONFIG for a malformed file (err names "<dir>/role:<line>" and the field), LS_EIO. */
int ls_role_load(const char *dir, ls_role_kind_t initial, ls_role_state_t *out, char *err,
                 size_t errlen);
/* The same from the role file's text[0..len) already in memory (no I/O), named name in messages
 * ("NAME:LINE: reason"); ls_role_load reads the file and calls it. A NUL byte is refused. */
int ls_role_parse(const char *name, const char *text, size_t len, ls_role_state_t *out, char *err,
                  size_t errlen);
/* Writes <dir>/role durably (tmp, fsync, rename, directory fsync). */
int ls_role_save(const char *dir, const ls_role_state_t *st, char *err, size_t errlen);

/* The last epoch of <dir>/logs/history and the first generation it starts at (*epoch 0 when
 * the file is absent). Errors: LS_ECONFIG naming the file and line. */
int ls_role_history_last(const char *dir, uint32_t *epoch, uint64_t *first_gen, char *err,
                         size_t errlen);

/* ---- epochs on the wire (epoch.c) ---- */

#define LS_ROLE_EPOCHS_MAX 64 /* epochs a known history keeps (the newest) */

/* What <dir> knows of its epochs: the lines of logs/history merged with the epochs of the
 * generation names in logs/ and inspect/ (each epoch's first generation is the lowest one known
 * for it), sorted by epoch, the newest LS_ROLE_EPOCHS_MAX kept. *out is malloc'd (the caller
 * frees it; NULL when *n is 0). Errors: LS_ECONFIG (malformed history, naming the line),
 * LS_EINVAL (bad prefix), LS_EIO, LS_ENOMEM. */
int ls_role_known_epochs(const char *dir, const char *prefix, ls_layout_hist_t **out, size_t *n,
                         char *err, size_t errlen);

/* The newest epoch a directory knows and who activated it: what this node announces in EPOCH
 * frames (proto/PROTOCOL.md) and checks a peer's against. */
typedef struct {
    ls_role_kind_t role;               /* the role file's role (initial when absent) */
    uint32_t epoch;                    /* newest of the role file's epoch and the known epochs */
    uint64_t first_generation;         /* its first generation (0: not known here, e.g. a node
                                          fenced by an epoch it holds nothing of) */
    char active[LS_ROLE_NAME_MAX + 1]; /* who activated it: self for an active, else the role
                                          file's follows ("" when not known) */
} ls_role_epoch_info_t;

/* Fills *out from <dir>/role (ls_role_load with `initial`) and ls_role_known_epochs(); self is
 * this node's name (borrowed). Errors: those two calls'. */
int ls_role_epoch_info(const char *dir, const char *prefix, ls_role_kind_t initial,
                       const char *self, ls_role_epoch_info_t *out, char *err, size_t errlen);

/* Fences an old active: sets the control page's fence (its writer refuses commits from its
 * next batch, naming new_active) and records role demoted, epoch, follows new_active. */
int ls_role_fence(const char *dir, uint32_t epoch, const char *new_active, char *err,
                  size_t errlen);

/* ---- activation ---- */

typedef struct {
    uint64_t last_generation; /* last generation the old active announced closed (0: unknown:
                                 then the last one held here is taken as the last) */
    uint64_t last_close_ns;   /* its close time */
    uint64_t missing_bytes;   /* bytes of the announced generations after the last held here
                                 (the copy queue in bytes the old active last reported) */
    uint64_t open_generation; /* block mode: the old active's open generation it last streamed
                                 (0: unknown) */
    uint64_t open_lsn;        /* the last durable LSN it announced in it (0: unknown) */
} ls_role_announced_t;

typedef struct {
    const char *prefix;            /* generation file prefix; "E00" */
    uint64_t max_loss;             /* closed generations that may be lost; 0: lossless only */
    ls_role_announced_t announced; /* what the old active last announced */
    const char *reason;            /* recorded in the role file; NULL: the engine's words */
    uint64_t replay_timeout_ms;    /* bound on the replay of what is durable; 600000 */
} ls_role_activate_options_t;

typedef struct {
    uint32_t old_epoch;         /* epoch of the last generation held */
    uint32_t new_epoch;         /* the epoch started */
    uint64_t last_generation;   /* last generation held and replayed */
    uint64_t last_lsn;          /* the store's last LSN */
    uint64_t first_generation;  /* the new epoch's first generation: last_generation + 1 */
    bool lossless;              /* every generation the old active announced is here */
    ls_role_loss_t loss;        /* what may be lost (also kept in the role file) */
    bool resumed;               /* an earlier activation had recorded the epoch: finished it */
    uint64_t shadow_generation; /* block mode: the old open generation closed from the copy's
                                   shadow as the last one of the old epoch (0: none) */
    uint64_t shadow_last_lsn;   /* its last LSN */
    uint64_t shadow_dropped;    /* bytes of it after its last COMMIT, dropped */
} ls_role_activate_report_t;

/* Turns the copy in dir into the active of a new epoch: replays everything durable (inspect/ and
 * logs/) into the copy store through engine/copy, counts the block-mode shadow of the open
 * generation as the last generation of the old epoch (its complete transactions may have been
 * acknowledged), computes the loss against `announced`, refuses beyond max_loss (the shadow left
 * as it is), closes the shadow into logs/ and replays it (ls_copy_shadow_close), then appends
 * "E+1 last+1" to logs/history durably, empties
 * inspect/, clears a stale fence and writes the role file (active, E+1). ls_db_open() on dir
 * then writes generation last+1 of epoch E+1 chained to last's digest. Idempotent: rerun after
 * a crash it finishes an activation whose history line is written.
 * Errors: LS_ESTATE (not a copy, too much loss: err says how many and how to accept it; the
 * copy is FAILED or the replay did not finish), LS_ENOENT (no generation held), LS_ETIMEDOUT,
 * LS_EIO and the copy's errors. */
int ls_role_activate(const char *dir, const ls_role_activate_options_t *opts,
                     ls_role_activate_report_t *report, char *err, size_t errlen);

/* ---- divergence ---- */

/* One closed generation of a chain. */
typedef struct {
    uint32_t epoch;                 /* epoch from its name */
    uint64_t generation;            /* generation number */
    uint8_t digest[LS_DIGEST_SIZE]; /* its trailer digest */
} ls_role_link_t;

/* The closed generations in <dir>/logs, sorted by generation (*links malloc'd, caller frees). */
int ls_role_chain(const char *dir, const char *prefix, ls_role_link_t **links, size_t *n, char *err,
                  size_t errlen);

typedef struct {
    bool found;      /* a generation held on both sides with the same digest */
    uint64_t split;  /* the last such generation (0 when !found) */
    bool overlap;    /* both sides hold at least one common generation number */
    size_t diverged; /* local generations after the split */
} ls_role_split_t;

/* Pure: the split point of two chains sorted by generation (mine: this node's; theirs: the new
 * active's). Walking mine from its newest generation back, the first generation theirs holds
 * with the same epoch and digest is the split (the digest chain makes everything before it the
 * same); a common generation number with another digest is past the split. Not found with
 * overlap: every local generation diverged. Not found without overlap: the chains share no
 * generation number, nothing can be told (diverged 0: a reseed decides). */
void ls_role_find_split(const ls_role_link_t *mine, size_t nmine, const ls_role_link_t *theirs,
                        size_t ntheirs, ls_role_split_t *out);

#define LS_ROLE_KEYS_LISTED 16 /* keys named in a divergence report */

typedef struct {
    uint64_t generations; /* files moved aside (closed generations, plus the open log) */
    uint64_t first_generation, last_generation; /* their range */
    uint64_t first_lsn, last_lsn;               /* LSN range of their records (0, 0: none) */
    uint64_t from_ns, to_ns;                    /* creation of the first .. close (or last
                                                   modification) of the last */
    uint64_t records;                           /* records in them, COMMITs included */
    uint64_t keys;                              /* distinct keys touched */
    char key[LS_ROLE_KEYS_LISTED][64];          /* the first keys touched, printable (escaped) */
    char dest[4200];                            /* the directory they are in now */
} ls_role_diverged_t;

/* Moves every generation after `split` (and the current log, whose records are after it) from
 * <dir>/logs into <dir>/diverged/<new_epoch>/: rename, then fsync of both directories. Never
 * deletes. Reports what was moved, scanning each file's records through logfmt. */
int ls_role_move_aside(const char *dir, const char *prefix, uint64_t split, uint32_t new_epoch,
                       ls_role_diverged_t *report, char *err, size_t errlen);

/* What ls_role_demote did. */
typedef struct {
    ls_role_split_t split;    /* where the histories split */
    ls_role_diverged_t moved; /* what was moved aside (generations 0: Demoted) */
    ls_role_kind_t role;      /* LS_ROLE_DEMOTED or LS_ROLE_DIVERGED, as recorded */
} ls_role_demote_report_t;

/* An old active that learned of epoch new_epoch at new_active (theirs: its chain, sorted by
 * generation): fences the directory (its writer refuses commits from its next batch), then,
 * holding <dir>/lock, finds the split, moves the later generations aside and records the role
 * (diverged when something was moved, else demoted) following new_active.
 * Errors: LS_EBUSY (fenced and recorded demoted, but the application still has the database
 * open: nothing moved yet; call again once it closed), LS_EDIVERGED (no generation number in
 * common: nothing can be told, recorded diverged, a reseed is needed), and those of the calls
 * above. */
int ls_role_demote(const char *dir, const char *prefix, const ls_role_link_t *theirs,
                   size_t ntheirs, uint32_t new_epoch, const char *new_active,
                   ls_role_demote_report_t *report, char *err, size_t errlen);

#endif
