/*
 * store/env: one LMDB environment per store directory per process, shared by every user.
 *
 * LMDB forbids opening one environment twice in a process: mdb_env_close() clears every reader
 * slot of the calling pid in the lock file and drops the process's fcntl locks on it, so closing
 * a second MDB_env on <db>/store makes the read transactions of the first one vanish while they
 * run (a seed snapshot copying, a status read), and a writer then reuses their pages (seen:
 * MDB_INCOMPATIBLE, SIGSEGV inside mdb_env_copy2, a hang, a corrupt copy). Every mdb_env_open in
 * engine/ therefore goes through this registry: the writer's and the replayer's store, the
 * seed snapshots of several targets, ls_store_peek_meta (status, removal) all share one MDB_env.
 *
 * Identity: the device and inode of <path>/data.mdb, which the open environment keeps open (so
 * the inode cannot be reused while it is registered). A path renamed or swapped (a seed's swap)
 * names another environment; two spellings of one directory (symlinks, "a/../a") name the same.
 *
 * Flags: always MDB_NOTLS (read transactions are not tied to a thread), MDB_NOMETASYNC for
 * commits (see store.h). The environment is opened for writing whenever the files allow it, even
 * for a reader, so that a writer arriving later can share it; it is opened MDB_RDONLY only when
 * the files are not writable by this process, and then a later opener that wants to write gets
 * LS_EBUSY with a message (a clear error rather than a second environment).
 * Map size: the first opener's size (0: the size recorded in the environment); a later opener
 * asking for more grows the shared map to it (never shrinks it).
 *
 * Transactions and the map: mdb_env_set_mapsize() needs no transaction of this process active on
 * the environment. So every transaction on a shared environment is run between
 * ls_store_env_rdlock() and ls_store_env_unlock(), and the map is only changed through
 * ls_store_env_grow() / ls_store_env_txn_begin() (MDB_MAP_RESIZED), which take the lock
 * exclusively. Named databases are opened through ls_store_env_dbi() (LMDB allows one
 * mdb_dbi_open at a time per process).
 *
 * Lifecycle: ls_store_env_acquire() -> ... -> ls_store_env_release(); the last release closes
 * the environment. Threading: every function is thread-safe; a transaction belongs to the thread
 * that began it (write transactions), read transactions may move (MDB_NOTLS).
 */
#ifndef LS_STORE_ENV_H
#define LS_STORE_ENV_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ls_store_env ls_store_env_t;

/* Zero means the default for every field. */
typedef struct {
    bool readonly;     /* the caller only reads: an environment absent at path is LS_ENOENT
                          (never created) */
    uint64_t map_size; /* bytes; 0: the size recorded in the environment (10 MiB, LMDB's
                          default, for a new one). More than the shared map grows it */
} ls_store_env_options_t;

/* Returns the process's environment of directory path, opening it on first use (a writer's
 * first use creates data.mdb in an existing directory). *out is a reference owned by the caller
 * until ls_store_env_release(). err (may be NULL) names the path on failure.
 * Errors: LS_ENOENT (no directory, or readonly and no environment there), LS_EBUSY (write access
 * asked of an environment this process could only open read-only), LS_ESTORE (LMDB refused),
 * LS_ENOMEM, LS_EIO. */
int ls_store_env_acquire(const char *path, const ls_store_env_options_t *opts, ls_store_env_t **out,
                         char *err, size_t errlen);
/* Drops a reference; the last one closes the environment (every transaction of the caller must
 * be finished). NULL is a no-op. */
void ls_store_env_release(ls_store_env_t *env);

/* The LMDB handle, valid until the caller's release. */
MDB_env *ls_store_env_mdb(ls_store_env_t *env);
/* The directory it was first opened by (for messages). */
const char *ls_store_env_path(ls_store_env_t *env);
/* True when shared environment is open for writing. */
bool ls_store_env_writable(ls_store_env_t *env);

/* Shared lock around every transaction on the environment (see above). Not recursive. */
void ls_store_env_rdlock(ls_store_env_t *env);
void ls_store_env_unlock(ls_store_env_t *env);
/* mdb_txn_begin with the shared lock held, adopting a map grown by another process
 * (MDB_MAP_RESIZED: the lock is dropped and retaken exclusively around the resize, so the
 * caller must hold no transaction of its own). Returns an LMDB code. */
int ls_store_env_txn_begin(ls_store_env_t *env, unsigned flags, MDB_txn **txn);
/* Grows the map to at least size bytes (0: adopt the size recorded in the environment), under
 * the exclusive lock: call it without the shared lock and without a transaction. Returns an
 * LMDB code; *now (may be NULL) receives the map size after it. */
int ls_store_env_grow(ls_store_env_t *env, uint64_t size, uint64_t *now);
/* The current map size, bytes. */
uint64_t ls_store_env_map_size(ls_store_env_t *env);

/* Opens (create: creating it, which needs a writable environment) the named database name and
 * caches the handle for every user. Call without the shared lock. Returns an LMDB code
 * (MDB_NOTFOUND: absent and !create). */
int ls_store_env_dbi(ls_store_env_t *env, const char *name, bool create, MDB_dbi *out);
/* Runs inside the transaction that opened named databases; a non-zero return aborts it. */
typedef int (*ls_store_env_txn_fn)(void *ctx, MDB_txn *txn);
/* The same for n names at once, in one transaction (out: n handles). When that transaction is
 * needed (a name not opened yet in this process) and fn is not NULL, fn runs in it before the
 * commit and *ran (may be NULL) is set: a new store then takes one commit. */
int ls_store_env_dbis(ls_store_env_t *env, const char *const *names, size_t n, bool create,
                      MDB_dbi *out, ls_store_env_txn_fn fn, void *ctx, bool *ran);

/* Environments open in this process (for tests and status). */
size_t ls_store_env_count(void);

#endif
