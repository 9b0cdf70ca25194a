/* The process's registry of LMDB environments (see env.h for why and the rules). */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "store/env.h"

#define MAX_DBIS 4 /* named databases per environment ("data", "meta" today) */

struct ls_store_env {
    MDB_env *env;                 /* the one environment of this data.mdb in the process */
    dev_t dev;                    /* device of data.mdb */
    ino_t ino;                    /* inode of data.mdb */
    bool writable;                /* opened without MDB_RDONLY */
    unsigned refs;                /* acquire() minus release(); guarded by reg_mu */
    pthread_rwlock_t lock;        /* shared by transactions, exclusive while the map changes */
    pthread_mutex_t dbi_mu;       /* one mdb_dbi_open at a time; guards the cache below */
    char dbi_names[MAX_DBIS][16]; /* named databases opened */
    MDB_dbi dbis[MAX_DBIS];       /* their handles */
    int ndbis;                    /* entries used */
    char path[4096];              /* directory of the first opener, for messages */
    _Atomic uint64_t checked_ns;  /* ls_mono_ns() of the last stale reader check (reader_check) */
    struct ls_store_env *next;    /* registry list; guarded by reg_mu */
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER; /* guards the list and refs */
static ls_store_env_t *reg_head;                           /* open environments */

static ls_store_env_t *find(const struct stat *st)
{
    for (ls_store_env_t *e = reg_head; e; e = e->next)
        if (e->dev == st->st_dev && e->ino == st->st_ino) return e;
    return NULL;
}

/* A process killed inside a read transaction (a daemon's seed snapshot, an operator's mdb_dump)
 * leaves its slot in the lock file's reader table, and LMDB then keeps every page freed since
 * that snapshot: while another process holds the environment open (the application's writer
 * beside a daemon killed with kill -9), the file grows by each commit's churn until the map is
 * full. LMDB clears such slots only when asked: at the open of a writable environment and then,
 * while it is written, at most once a second before a write transaction (one lock-file probe
 * per reader's pid). */
#define READER_CHECK_NS 1000000000ull

static void reader_check(ls_store_env_t *e)
{
    int dead = 0;
    int rc = mdb_reader_check(e->env, &dead);
    if (rc)
        LS_LOGW("store", "%s: cannot check the reader table for dead processes: %s", e->path,
                mdb_strerror(rc));
    else if (dead > 0)
        LS_LOGW("store",
                "%s: cleared %d reader slot%s of dead processes (killed inside a read "
                "transaction): their snapshots no longer keep freed pages from reuse",
                e->path, dead, dead == 1 ? "" : "s");
}

static void reader_check_due(ls_store_env_t *e)
{
    uint64_t now = ls_mono_ns(), last = atomic_load_explicit(&e->checked_ns, memory_order_relaxed);
    if (now - last < READER_CHECK_NS) return;
    if (atomic_compare_exchange_strong(&e->checked_ns, &last, now)) reader_check(e);
}

/* Opens a new environment in path; reg_mu held (two first openers never race). */
static int open_new(const char *path, const char *file, const ls_store_env_options_t *o,
                    ls_store_env_t **out, char *err, size_t errlen)
{
    ls_store_env_t *e = calloc(1, sizeof(*e));
    if (!e) return LS_ENOMEM;
    snprintf(e->path, sizeof(e->path), "%s", path);
    /* Writable whenever the files allow it, so that a writer arriving later can share it. */
    e->writable = access(file, F_OK) != 0 ? !o->readonly : access(file, W_OK) == 0;
    unsigned flags = MDB_NOTLS | (e->writable ? MDB_NOMETASYNC : MDB_RDONLY);
    int rc = mdb_env_create(&e->env);
    if (rc == 0) rc = mdb_env_set_maxdbs(e->env, MAX_DBIS);
    if (rc == 0 && o->map_size) rc = mdb_env_set_mapsize(e->env, (size_t) o->map_size);
    if (rc == 0) rc = mdb_env_open(e->env, path, flags, 0600);
    struct stat st;
    mdb_filehandle_t fd;
    if (rc == 0 && (rc = mdb_env_get_fd(e->env, &fd)) == 0 && fstat(fd, &st) != 0) rc = errno;
    if (rc) {
        ls_msgf(err, errlen, "store %s: cannot open LMDB environment: %s", path, mdb_strerror(rc));
        if (e->env) mdb_env_close(e->env);
        free(e);
        if (rc == ENOENT) return LS_ENOENT;
        if (rc == ENOMEM) return LS_ENOMEM;
        return rc > 0 ? ls_err_from_errno(rc) : LS_ESTORE;
    }
    e->dev = st.st_dev;
    e->ino = st.st_ino;
    e->refs = 1;
    if (e->writable) {
        atomic_store(&e->checked_ns, ls_mono_ns());
        reader_check(e);
    }
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&e->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&e->dbi_mu, NULL);
    e->next = reg_head;
    reg_head = e;
    *out = e;
    return 0;
}

int ls_store_env_acquire(const char *path, const ls_store_env_options_t *opts, ls_store_env_t **out,
                         char *err, size_t errlen)
{
    static const ls_store_env_options_t defaults;
    const ls_store_env_options_t *o = opts ? opts : &defaults;
    *out = NULL;
    char file[4200];
    if ((size_t) snprintf(file, sizeof(file), "%s/data.mdb", path) >= sizeof(file)) {
        ls_msgf(err, errlen, "store %s: path too long", path);
        return LS_EINVAL;
    }
    struct stat st;
    pthread_mutex_lock(&reg_mu);
    ls_store_env_t *e = NULL;
    int rc = 0;
    if (stat(file, &st) == 0) {
        e = find(&st);
    } else if (o->readonly) {
        ls_msgf(err, errlen, "store %s: no LMDB environment there", path);
        rc = LS_ENOENT;
    }
    if (rc == 0 && e && !o->readonly && !e->writable) {
        ls_msgf(err, errlen,
                "store %s: this process could only open it read-only (no write permission on "
                "data.mdb) and a second environment on it is not allowed: fix the permissions",
                path);
        rc = LS_EBUSY;
    }
    if (rc == 0 && e) e->refs++;
    if (rc == 0 && !e) rc = open_new(path, file, o, &e, err, errlen);
    pthread_mutex_unlock(&reg_mu);
    if (rc) return rc;
    if (o->map_size && ls_store_env_map_size(e) < o->map_size) {
        rc = ls_store_env_grow(e, o->map_size, NULL);
        if (rc) {
            ls_msgf(err, errlen, "store %s: cannot grow the shared map to %llu bytes: %s", path,
                    (unsigned long long) o->map_size, mdb_strerror(rc));
            ls_store_env_release(e);
            return LS_ESTORE;
        }
    }
    *out = e;
    return 0;
}

void ls_store_env_release(ls_store_env_t *e)
{
    if (!e) return;
    pthread_mutex_lock(&reg_mu);
    LS_CHECK(e->refs > 0);
    bool last = --e->refs == 0;
    if (last) {
        for (ls_store_env_t **p = &reg_head; *p; p = &(*p)->next) {
            if (*p == e) {
                *p = e->next;
                break;
            }
        }
        /* Under reg_mu: a new opener of this path waits until the old environment is closed,
         * so two never exist at once. */
        mdb_env_close(e->env);
    }
    pthread_mutex_unlock(&reg_mu);
    if (!last) return;
    pthread_rwlock_destroy(&e->lock);
    pthread_mutex_destroy(&e->dbi_mu);
    free(e);
}

MDB_env *ls_store_env_mdb(ls_store_env_t *e)
{
    return e->env;
}

const char *ls_store_env_path(ls_store_env_t *e)
{
    return e->path;
}

bool ls_store_env_writable(ls_store_env_t *e)
{
    return e->writable;
}

void ls_store_env_rdlock(ls_store_env_t *e)
{
    pthread_rwlock_rdlock(&e->lock);
}

void ls_store_env_unlock(ls_store_env_t *e)
{
    pthread_rwlock_unlock(&e->lock);
}

uint64_t ls_store_env_map_size(ls_store_env_t *e)
{
    MDB_envinfo info;
    mdb_env_info(e->env, &info);
    return (uint64_t) info.me_mapsize;
}

int ls_store_env_grow(ls_store_env_t *e, uint64_t size, uint64_t *now)
{
    pthread_rwlock_wrlock(&e->lock);
    int rc = 0;
    if (size == 0 || ls_store_env_map_size(e) < size)
        rc = mdb_env_set_mapsize(e->env, (size_t) size);
    if (now) *now = ls_store_env_map_size(e);
    pthread_rwlock_unlock(&e->lock);
    return rc;
}

int ls_store_env_txn_begin(ls_store_env_t *e, unsigned flags, MDB_txn **txn)
{
    if (!(flags & MDB_RDONLY) && e->writable) reader_check_due(e);
    for (int tries = 0;; tries++) {
        int rc = mdb_txn_begin(e->env, NULL, flags, txn);
        if (rc != MDB_MAP_RESIZED || tries > 3) return rc;
        LS_LOGI("store", "%s: map grown by another process, adopting its size", e->path);
        pthread_rwlock_unlock(&e->lock);
        rc = ls_store_env_grow(e, 0, NULL);
        pthread_rwlock_rdlock(&e->lock);
        if (rc) return rc;
    }
}

/* The cached handle of name, or -1. dbi_mu held. */
static int cached(const ls_store_env_t *e, const char *name)
{
    for (int i = 0; i < e->ndbis; i++)
        if (!strcmp(e->dbi_names[i], name)) return i;
    return -1;
}

int ls_store_env_dbis(ls_store_env_t *e, const char *const *names, size_t n, bool create,
                      MDB_dbi *out, ls_store_env_txn_fn fn, void *ctx, bool *ran)
{
    if (ran) *ran = false;
    pthread_mutex_lock(&e->dbi_mu);
    size_t missing = 0;
    for (size_t i = 0; i < n; i++) {
        LS_ASSERT(strlen(names[i]) < sizeof(e->dbi_names[0]));
        int c = cached(e, names[i]);
        if (c >= 0)
            out[i] = e->dbis[c];
        else
            missing++;
    }
    int rc = missing == 0 ? 0 : e->ndbis + (int) missing <= MAX_DBIS ? 0 : MDB_DBS_FULL;
    if (missing == 0 || rc) {
        pthread_mutex_unlock(&e->dbi_mu);
        return rc;
    }
    /* One transaction opens every missing name (one commit, one sync for a new store). */
    MDB_txn *txn = NULL;
    pthread_rwlock_rdlock(&e->lock);
    rc = ls_store_env_txn_begin(e, create ? 0 : MDB_RDONLY, &txn);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (cached(e, names[i]) < 0)
            rc = mdb_dbi_open(txn, names[i], create ? MDB_CREATE : 0, &out[i]);
    if (rc == 0 && fn) {
        rc = fn(ctx, txn);
        if (ran) *ran = true;
    }
    if (rc == 0) { /* a committed transaction keeps the handles for every later one */
        rc = mdb_txn_commit(txn);
    } else if (txn) {
        mdb_txn_abort(txn);
    }
    pthread_rwlock_unlock(&e->lock);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (cached(e, names[i]) >= 0) continue;
        snprintf(e->dbi_names[e->ndbis], sizeof(e->dbi_names[0]), "%s", names[i]);
        e->dbis[e->ndbis++] = out[i];
    }
    pthread_mutex_unlock(&e->dbi_mu);
    return rc;
}

int ls_store_env_dbi(ls_store_env_t *e, const char *name, bool create, MDB_dbi *out)
{
    return ls_store_env_dbis(e, &name, 1, create, out, NULL, NULL, NULL);
}

size_t ls_store_env_count(void)
{
    pthread_mutex_lock(&reg_mu);
    size_t n = 0;
    for (ls_store_env_t *e = reg_head; e; e = e->next)
        n++;
    pthread_mutex_unlock(&reg_mu);
    return n;
}
