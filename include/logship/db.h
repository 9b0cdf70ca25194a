/*
 * db: the active side's embedded API. An application opens a database directory, commits
 * transactions of puts and deletes, and logship writes them as log generations (logfmt.h) and
 * applies them to the active store (LMDB named database "data").
 *
 *   <dir>/logs/E00.log                       the current log (open)
 *   <dir>/logs/E00-<epoch>-<generation>.log  closed generations
 *   <dir>/logs/history                       epoch -> first generation of that epoch
 *   <dir>/store/                             LMDB environment: "data" (user) and "meta" (engine)
 *   <dir>/lock                               flock'ed while a handle has the database open
 *
 * Commit path, a two-stage pipeline: one flusher thread is the sequencer. It takes every
 * transaction queued since its last pass (group commit), assigns LSNs in queue order, appends
 * their records and COMMIT records to the current log, fdatasyncs once, adds the batch's writes to
 * an in-memory overlay and acknowledges it: ls_txn_commit() returns once the transaction is
 * durable in the log, and from then on every ls_db_get() sees it. An applier thread applies the
 * durable batches to the store behind, in LSN order, every batch waiting merged into one LMDB
 * write transaction (with the meta record), and trims the overlay of what the store now holds.
 * The store is not on the durability path: it is synced at checkpoints; recovery replays the log
 * from the store's meta LSN, so a crash loses no acknowledged commit.
 * Synchronous commit (commit_level, docs/BLOCKMODE.md): a commit also waits until sync_copies
 * copies hold its batch, as the local daemon publishes their positions in <dir>/control; one
 * wait per batch, the next batches being made durable meanwhile; after sync_timeout_ms the
 * commits go on without waiting (degraded, shown by the daemon) until the copies catch up.
 * Memory: the overlay holds at most opts.overlay_max bytes of log (plus the batch being written):
 * beyond that the next batch waits for the applier (backpressure), so commits then run at the
 * store's speed.
 *
 * Isolation: transactions buffer blind writes (no read-your-writes inside a transaction);
 * ls_db_get() reads committed state (read committed): the overlay first (the latest durable put
 * or delete of the key), then the store. A commit becomes visible once durable and before its
 * ls_txn_commit() returns; a read that begins after a commit returned sees it (or a later write
 * of the key). Concurrent transactions touching the same key are ordered by commit: the one
 * committed later (higher LSN) wins. No conflict detection. Readers of the store itself (a seed
 * snapshot, ls_store_* in another process) see only the applied part, up to its meta LSN.
 *
 * Lifecycle: ls_db_open() -> ls_txn_begin()/put/del/commit|abort ... -> ls_db_close().
 * Threading: an ls_db_t may be used from many threads at once; an ls_txn_t from one at a time.
 * Errors: a failed log write or fsync, or a failed store apply, makes the database fail
 * stickily (every later commit returns the same error, like PostgreSQL after a failed fsync):
 * close and reopen to recover.
 */
#ifndef LOGSHIP_DB_H
#define LOGSHIP_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <logship/error.h>
#include <logship/logfmt.h>

typedef struct ls_db ls_db_t;
typedef struct ls_txn ls_txn_t;

/* When ls_txn_commit returns (docs/BLOCKMODE.md "Synchronous commit"). */
typedef enum {
    LS_COMMIT_LOCAL = 0,          /* once durable in the local log (the default) */
    LS_COMMIT_REMOTE_DURABLE = 1, /* and once sync_copies copies hold its batch durably */
    LS_COMMIT_REMOTE_APPLIED = 2, /* and once sync_copies copies' stores hold its batch */
} ls_db_commit_level_t;

/* Zero means the default for every field. */
typedef struct {
    uint64_t target_size;    /* roll the current log before it would exceed this; 1 MiB */
    uint64_t max_generation; /* hard cap for one generation (oversized txn); 64 MiB,
                                at most LS_GEN_HARD_CAP */
    uint64_t idle_roll_ms;   /* roll a non-empty current log idle this long; 5000 */
    bool no_idle_roll;       /* never roll on idle (tests) */
    uint64_t map_size;       /* initial LMDB map size, bytes; 64 MiB; grows when full */
    uint64_t checkpoint_ms;  /* sync the store at least this often; 10000 */
    const char *prefix;      /* log file prefix; "E00" */
    bool no_create;          /* fail with LS_ENOENT instead of creating a new database */
    uint64_t overlay_max;    /* log bytes acknowledged but not yet applied to the store beyond
                                which the next batch waits for the applier; 64 MiB */
    /* Synchronous commit: the copies' positions come from the daemon through <dir>/control. */
    ls_db_commit_level_t commit_level; /* LS_COMMIT_LOCAL (default) or a remote level */
    uint32_t sync_copies;              /* copies a commit waits for, 1..8; default 1 */
    uint64_t sync_timeout_ms; /* a batch waits this long for its copies, then it is acknowledged
                                 and synchronous commit is degraded until the copies catch up;
                                 0 (the default, as PostgreSQL's synchronous_commit): wait
                                 forever (a fence or ls_db_close still end the wait); at most
                                 3600000 */
} ls_db_options_t;

typedef struct {
    uint8_t dbid[LS_DBID_LEN];   /* database id */
    uint32_t epoch;              /* current epoch */
    uint64_t current_generation; /* generation number of the current (open) log */
    uint64_t last_closed;        /* last closed generation, 0 when none */
    uint64_t last_lsn;           /* last LSN assigned and durable */
    uint64_t last_txid;          /* last transaction number committed */
    uint64_t checkpoint_lsn;     /* store synced up to this LSN */
    uint64_t commits;            /* transactions committed since open */
    uint64_t batches;            /* group-commit batches (log fdatasyncs) since open */
    uint64_t applies;            /* store write transactions of the commit path since open
                                    (< batches when durable batches were merged) */
    uint64_t generations_closed; /* generations closed since open */
    uint64_t recovered_records;  /* records replayed into the store at open */
    uint64_t truncated_bytes;    /* torn tail bytes removed from the current log at open */
    uint64_t applied_lsn;        /* last LSN the store holds (<= last_lsn) */
    uint64_t unapplied_bytes;    /* log bytes acknowledged, not yet in the store (the overlay) */
    uint64_t overlay_keys;       /* keys in the overlay */
    uint64_t overlay_waits;      /* batches that waited for the applier (overlay_max reached) */
    uint64_t prepared_rolls;     /* rolls that took a next log prepared ahead (zero-filled) */
    uint64_t next_prepared;      /* 1 while a prepared next log waits for the roll, else 0 */
    uint64_t sync_waits;         /* batches whose committers waited for copies (one wait each) */
    uint64_t sync_timeouts;      /* of those, the ones that timed out (synchronous commit
                                    degraded) */
    uint32_t sync_state;         /* 0 off (local), 1 sync, 2 degraded (ctlpage.h's states) */
    uint32_t sync_switches;      /* changes between sync and degraded since open */
    uint64_t led_batches;        /* of batches, those a lone committer wrote in its own thread
                                    (no other commit queued, none being written) */
} ls_db_stats_t;

/* Opens (or creates) the database at dir; runs crash recovery. *out owned by the caller until
 * ls_db_close(). Errors: LS_ENOENT (no_create), LS_EDBID (store of another database),
 * LS_ECORRUPT (a closed generation or the store is damaged), LS_EIO, LS_EBUSY (open already, in
 * this or another process), LS_EFENCED (another node became active: the message names it;
 * docs/ACTIVATION.md). ls_db_open_error() gives the message of the last failed open on this
 * thread. */
int ls_db_open(const char *dir, const ls_db_options_t *opts, ls_db_t **out);
const char *ls_db_open_error(void);

/* Closes the database: waits for queued commits (those waiting for copies are told LS_ECLOSED
 * at once: close never waits for copies), rolls a non-empty current log (so nothing sits
 * unshipped), checkpoints the store, frees db. Returns the first error met. NULL is a no-op. */
int ls_db_close(ls_db_t *db);

/* Message describing the database's last error ("" when none). Valid until the next call. */
const char *ls_db_errmsg(ls_db_t *db);
int ls_db_stats(ls_db_t *db, ls_db_stats_t *out);

/* Transactions. Keys are 1..LS_KEY_MAX bytes. put/del copy their arguments. */
int ls_txn_begin(ls_db_t *db, ls_txn_t **out);
int ls_txn_put(ls_txn_t *txn, const void *key, size_t key_len, const void *val, size_t val_len);
int ls_txn_del(ls_txn_t *txn, const void *key, size_t key_len);
/* Commits txn (takes ownership: it is freed by the database). 0: durable in the log and visible
 * to ls_db_get() (the store applies it later); with a remote commit_level also held by
 * sync_copies copies, or their wait timed out (synchronous commit degraded: the daemon's status
 * and a WARN log say so). LS_ETOOBIG: larger than max_generation, nothing written. LS_EFENCED:
 * another node became active (the daemon set the fence of <dir>/control); ls_db_errmsg() names
 * it; sticky; also for a commit waiting for copies when the fence comes (durable locally, maybe
 * not on the new active). LS_ECLOSED: ls_db_close() ran meanwhile (a commit waiting for copies:
 * durable locally, not confirmed by them). Other errors: the database has failed (see above).
 * An empty transaction commits nothing and returns 0. May wait for the applier when the overlay
 * is full (overlay_max). */
int ls_txn_commit(ls_txn_t *txn);
void ls_txn_abort(ls_txn_t *txn); /* frees txn; NULL is a no-op */

/* Reads the committed value of key into a malloc'd buffer (*val owned by the caller): the
 * overlay's, else the store's. LS_ENOENT when absent or deleted. */
int ls_db_get(ls_db_t *db, const void *key, size_t key_len, void **val, size_t *val_len);

/* Closes the current log now if it holds any record (returns 0 and does nothing when empty). */
int ls_db_roll(ls_db_t *db);
/* Lets the store take every commit durable at the call (the applier may be gathering them),
 * then syncs it and records the checkpoint LSN (commits acknowledged meanwhile go to a later
 * checkpoint; the log holds them). */
int ls_db_checkpoint(ls_db_t *db);

#endif
