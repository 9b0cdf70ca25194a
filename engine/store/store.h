/*
 * store: an LMDB environment holding a database's applied state, used by the active writer and by
 * the passive replayer alike.
 *
 * Two named LMDB databases: "data" (the user's keys and values) and "meta" (one record, key
 * "meta", describing what the data holds: the database id and the applied position). The meta
 * record is written in the SAME LMDB write transaction as the data it describes
 * (ls_store_apply), so a crash can never leave data without its position or the reverse, and
 * replay that skips records with LSN <= meta.lsn is idempotent.
 *
 * Environment flags, and why:
 *  - MDB_NOMETASYNC: each commit fdatasyncs the data pages but not the meta page, so a crash may
 *    lose the last commit(s) (the meta page falls back to the previous one) but never corrupts:
 *    copy-on-write pages are durable before any meta page points at them, and the next commit's
 *    sync makes the previous meta durable. The log is the durable record; recovery replays what
 *    the store lost. MDB_NOSYNC is refused: it orders nothing, so after a power loss the meta page
 *    can point at data pages that never reached the disk (a corrupt store).
 *    ls_store_sync() (a checkpoint) makes everything durable.
 *  - MDB_NOTLS: read transactions are not tied to a thread's slot, so any thread may read.
 *  - map size: configured, and doubled whenever a write transaction hits MDB_MAP_FULL (the
 *    transaction is aborted, the map grown, the apply callback run again). MAP_FULL is never fatal.
 *    MDB_MAP_RESIZED (another process grew the map) is answered by adopting the new size.
 *    Resizing needs no transaction active in this process: a read-write lock keeps readers
 *    (ls_store_get, ls_store_iterate) out while the map is grown.
 *
 * One environment per path per process: ls_store_open() and ls_store_peek_meta() take the
 * process's environment of the path from store/env.h (as do seed snapshots), so any number of
 * stores, peeks and snapshots of one path may be open at once; closing one never disturbs the
 * others' transactions, and the last one closes the environment. The map size is shared: a
 * later ls_store_open() asking for more grows it.
 *
 * Lifecycle: ls_store_open() -> ls_store_apply()/ls_store_get()/ls_store_sync() ... ->
 * ls_store_close().
 * Threading: one writer at a time (ls_store_apply, ls_store_checkpoint serialise on LMDB's writer
 * lock; an LMDB write transaction is begun and committed inside one call, on one thread); any
 * number of concurrent readers.
 */
#ifndef LS_STORE_H
#define LS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <logship/logfmt.h>

typedef struct ls_store ls_store_t;
typedef struct ls_store_txn ls_store_txn_t;

/* The applied position, kept in the meta database. */
typedef struct {
    uint8_t dbid[LS_DBID_LEN];      /* database id; zeros when the store has no identity yet */
    uint32_t epoch;                 /* epoch of the generation holding lsn (the copy's early
                                       apply of a shadow keeps digest_generation's) */
    uint64_t generation;            /* generation holding the last applied record (0: none) */
    uint64_t lsn;                   /* last applied LSN, always a COMMIT record (0: none) */
    uint64_t txid;                  /* txid of the last applied transaction (0: none) */
    uint64_t digest_generation;     /* last generation applied completely (0: none) */
    uint8_t digest[LS_DIGEST_SIZE]; /* digest of digest_generation (zeros when none) */
    uint64_t checkpoint_lsn;        /* the store was synced with at least this LSN applied */
    uint64_t applied_generations;   /* generations applied so far (the replayer counts them in the
                                       same transaction; 0 in a record written before it existed) */
    uint64_t shadow_end;            /* block mode: bytes [0, shadow_end) of `generation`, up to the
                                       COMMIT of lsn, were applied from its shadow before it closed
                                       (0: none; engine/copy/shadow_apply.c) */
    uint8_t shadow_seal[16];        /* XXH3-128 of those bytes: the closed generation must have
                                       the same (zeros when shadow_end is 0) */
} ls_store_meta_t;

/* Zero means the default for every field. */
typedef struct {
    uint64_t map_size;   /* initial LMDB map size, bytes; 64 MiB. Grows when full */
    bool create;         /* create the directory and environment when absent */
    const uint8_t *dbid; /* LS_DBID_LEN bytes or NULL. A store without identity adopts it
                            (written at open); a store of another database is refused */
} ls_store_options_t;

/* Opens the LMDB environment in directory path. *out owned by the caller until ls_store_close().
 * err (errlen bytes, may be NULL) receives a message naming the path and values on failure.
 * Errors: LS_ENOENT (absent and !create), LS_EDBID (store of another database: the message names
 * both ids), LS_ECORRUPT (meta record malformed), LS_ESTORE (other LMDB failure), LS_ENOMEM. */
int ls_store_open(const char *path, const ls_store_options_t *opts, ls_store_t **out, char *err,
                  size_t errlen);
/* Closes the environment (no sync: call ls_store_sync first to make it durable). NULL: no-op. */
void ls_store_close(ls_store_t *store);

/* Called by ls_store_apply inside the write transaction. Must be re-runnable: after MDB_MAP_FULL
 * the transaction is aborted, the map grown and fn called again from the start. Returns 0 or an
 * error (from ls_store_put/del, or its own), which aborts the transaction. */
typedef int (*ls_store_apply_fn)(void *ctx, ls_store_txn_t *txn);

/* Runs fn in one write transaction, writes *meta (its dbid must be the store's, or the store has
 * none yet and takes it) in the same transaction and commits. Borrows meta. On success the cached
 * meta is updated.
 * Errors: fn's error, LS_ESTORE (LMDB failure; the transaction was aborted, nothing applied). */
int ls_store_apply(ls_store_t *store, ls_store_apply_fn fn, void *ctx, const ls_store_meta_t *meta);
/* Inside fn only. Keys are 1..LS_KEY_MAX bytes. Return 0, LS_EINVAL, or MDB_MAP_FULL (pass it
 * back from fn; ls_store_apply then grows the map and retries) or LS_ESTORE. Deleting an absent
 * key is not an error. */
int ls_store_put(ls_store_txn_t *txn, const void *key, size_t key_len, const void *val,
                 size_t val_len);
int ls_store_del(ls_store_txn_t *txn, const void *key, size_t key_len);

/* Side records kept in the "meta" database beside the meta record, written in the same
 * transaction as the data (inside fn only), so they are durable exactly when it is: name is 1..32
 * bytes other than "meta" (LS_EINVAL). engine/copy keeps the shadow's carried bytes there
 * (docs/BLOCKMODE.md "The store carries the shadow's unsynced bytes"). len 0 stores an empty
 * value; ls_store_aux_del removes the record (absent: not an error). Same returns as
 * ls_store_put. */
int ls_store_aux_put(ls_store_txn_t *txn, const char *name, const void *val, size_t len);
int ls_store_aux_del(ls_store_txn_t *txn, const char *name);
/* The committed value of side record name into a malloc'd buffer (*val owned by the caller, NULL
 * for an empty value). LS_ENOENT when absent, LS_EINVAL for a bad name. */
int ls_store_aux_get(ls_store_t *store, const char *name, void **val, size_t *len);

/* Copies the value of key into a malloc'd buffer (*val owned by the caller; NUL-terminated for
 * convenience, *val_len excludes it). LS_ENOENT when absent. */
int ls_store_get(ls_store_t *store, const void *key, size_t key_len, void **val, size_t *val_len);

/* Calls fn for every data key in key order under one read transaction (borrowed pointers valid
 * during the call). A non-zero return stops the walk and is returned. */
typedef int (*ls_store_iter_fn)(void *ctx, const void *key, size_t key_len, const void *val,
                                size_t val_len);
int ls_store_iterate(ls_store_t *store, ls_store_iter_fn fn, void *ctx);

/* The current meta record (a copy of the last committed one). */
void ls_store_meta(ls_store_t *store, ls_store_meta_t *out);

/* Forces everything committed to disk (mdb_env_sync(force)). LS_ESTORE/LS_EIO on failure. */
int ls_store_sync(ls_store_t *store);
/* A checkpoint: syncs, then records checkpoint_lsn = the lsn applied before the sync (in meta).
 * On success *lsn (may be NULL) holds that checkpoint LSN. */
int ls_store_checkpoint(ls_store_t *store, uint64_t *lsn);

/* Reads the meta record of the store at path under a read transaction on the process's
 * environment of the path (another process, the application's writer, may hold it open; a
 * store of this process shares it): the daemon learns the active store's checkpoint LSN this
 * way. Never creates a store. LS_ENOENT when there is no store or no meta record yet; err names
 * the path. */
int ls_store_peek_meta(const char *path, ls_store_meta_t *out, char *err, size_t errlen);

/* Drops this process's mapping of the store's pages (madvise MADV_DONTNEED over LMDB's read-only
 * shared map): they stay in the page cache, and the next access maps them again (a minor fault).
 * Bounds the resident set of a process that walks a large store, which the map otherwise keeps
 * mapped (and counted in its RSS) until it exits. Nothing changes for any reader or writer. */
void ls_store_release_pages(ls_store_t *store);
/* The same inside an apply callback: the pages the transaction has read so far are mapped again
 * when touched again. ls_store_put and ls_store_del call it every 256 writes of a transaction. Its
 * dirty pages are LMDB's own copies, or with MDB_WRITEMAP pages of the shared file map: dropping
 * those mappings keeps their data in the page cache (still dirty, so the commit's msync writes
 * them), and LMDB's pointers into the map stay valid. */
void ls_store_txn_release_pages(ls_store_txn_t *txn);

/* A consistent read view of the store at path: one LMDB read transaction on the process's
 * environment of the path (another process, the writer, may hold it open), with the meta record
 * read in it (*meta: zeros when the store has none yet), so every value read through the view
 * is the store's state at meta->lsn. Keep it short: a read transaction pins its pages (the
 * writer cannot reuse them) and the view holds the environment's shared lock (no map growth in
 * this process meanwhile). LS_ENOENT (no store), LS_ECORRUPT, LS_ESTORE. */
typedef struct ls_store_view ls_store_view_t;
int ls_store_view_open(const char *path, ls_store_view_t **out, ls_store_meta_t *meta, char *err,
                       size_t errlen);
/* The value of key in the view: *val points into the map, valid until ls_store_view_close.
 * 0, LS_ENOENT (absent), LS_ESTORE. */
int ls_store_view_get(ls_store_view_t *v, const void *key, size_t key_len, const void **val,
                      size_t *val_len);
void ls_store_view_close(ls_store_view_t *v); /* NULL: no-op */

/* Figures for tests and status. */
typedef struct {
    uint64_t map_size;  /* current map size, bytes */
    uint64_t map_grows; /* times the map was grown after MDB_MAP_FULL since open */
    uint64_t entries;   /* keys in "data" */
    uint64_t pages;     /* pages of "data": branch, leaf and overflow */
} ls_store_stats_t;
int ls_store_stats(ls_store_t *store, ls_store_stats_t *out);

#endif
