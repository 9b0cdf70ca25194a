/* The LMDB store with its meta record (see store.h for the flags and the threading rule). */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "core/core.h"
#include "store/env.h"
#include "store/meta_int.h"
#include "store/store.h"

static int meta_put(MDB_txn *txn, MDB_dbi dbi, const ls_store_meta_t *m)
{
    uint8_t buf[META_SIZE];
    ls_store_meta_encode(m, buf);
    MDB_val k = {sizeof(META_KEY) - 1, (void *) META_KEY}, v = {META_SIZE, buf};
    return mdb_put(txn, dbi, &k, &v, 0);
}

/* Begins a transaction under the environment's shared lock (held by the caller), adopting a map
 * grown by another process (MDB_MAP_RESIZED). */
static int txn_begin(ls_store_t *s, unsigned flags, MDB_txn **txn)
{
    return ls_store_env_txn_begin(s->shared, flags, txn);
}

static uint64_t map_size_of(ls_store_t *s)
{
    return ls_store_env_map_size(s->shared);
}

/* Doubles the map. No transaction of ours may be active: the environment's lock is taken
 * exclusively (it waits for every transaction of the process on it, a seed's copy too). */
static int grow_map(ls_store_t *s)
{
    uint64_t size = map_size_of(s), now = 0;
    int rc = ls_store_env_grow(s->shared, size * 2, &now);
    if (rc == 0) s->map_grows++;
    if (rc == 0)
        LS_LOGI("store", "map of %s full: grown from %llu to %llu bytes", s->path,
                (unsigned long long) size, (unsigned long long) now);
    return rc;
}

/* Reads (or writes, for a new store) the meta record in txn; 0, an LMDB code, or an LS_E* code
 * with err set. */
static int load_meta(ls_store_t *s, MDB_txn *txn, const uint8_t *dbid, char *err, size_t errlen)
{
    MDB_val k = {sizeof(META_KEY) - 1, (void *) META_KEY}, v;
    int rc = mdb_get(txn, s->meta_dbi, &k, &v);
    if (rc == MDB_NOTFOUND) { /* a new store: written below when an id is given */
        memset(&s->meta, 0, sizeof(s->meta));
        rc = 0;
    } else if (rc == 0 && ls_store_meta_decode(&v, &s->meta) != 0) {
        ls_msgf(err, errlen, "store %s: meta record malformed (%zu bytes)", s->path, v.mv_size);
        return LS_ECORRUPT;
    }
    if (rc) return rc;
    static const uint8_t zero[LS_DBID_LEN];
    bool has_id = memcmp(s->meta.dbid, zero, LS_DBID_LEN) != 0;
    if (dbid && has_id && memcmp(s->meta.dbid, dbid, LS_DBID_LEN) != 0) {
        char have[2 * LS_DBID_LEN + 1], want[2 * LS_DBID_LEN + 1];
        ls_hex(s->meta.dbid, LS_DBID_LEN, have);
        ls_hex(dbid, LS_DBID_LEN, want);
        ls_msgf(err, errlen, "store %s belongs to database %s, not to database %s", s->path, have,
                want);
        return LS_EDBID;
    }
    if (!has_id && dbid) { /* a new store, or one without identity, adopts it */
        memcpy(s->meta.dbid, dbid, LS_DBID_LEN);
        rc = meta_put(txn, s->meta_dbi, &s->meta);
    }
    return rc;
}

typedef struct {
    ls_store_t *s;       /* the store being opened */
    const uint8_t *dbid; /* expected or adopted id, may be NULL */
    char *err;           /* message buffer */
    size_t errlen;       /* its size */
    const MDB_dbi *dbis; /* "data" and "meta", filled before the callback runs */
} load_ctx_t;

static int load_meta_cb(void *ctx, MDB_txn *txn)
{
    load_ctx_t *c = ctx;
    c->s->data = c->dbis[0];
    c->s->meta_dbi = c->dbis[1];
    return load_meta(c->s, txn, c->dbid, c->err, c->errlen);
}

/* Opens the two named databases and loads the meta record: in the transaction that opens the
 * databases when this process had not opened them yet (one commit for a new store), else in a
 * write transaction of its own. */
static int open_dbs(ls_store_t *s, const uint8_t *dbid, char *err, size_t errlen)
{
    static const char *const names[] = {"data", "meta"};
    MDB_dbi dbis[2];
    MDB_txn *txn = NULL;
    load_ctx_t lc = {s, dbid, err, errlen, dbis};
    bool loaded = false;
    int rc = ls_store_env_dbis(s->shared, names, 2, true, dbis, load_meta_cb, &lc, &loaded);
    if (rc == 0) {
        s->data = dbis[0];
        s->meta_dbi = dbis[1];
    }
    if (rc == 0 && !loaded) {
        ls_store_env_rdlock(s->shared);
        rc = txn_begin(s, 0, &txn);
        if (rc == 0) rc = load_meta(s, txn, dbid, err, errlen);
        if (rc == 0) {
            rc = mdb_txn_commit(txn);
        } else if (txn) {
            mdb_txn_abort(txn);
        }
        ls_store_env_unlock(s->shared);
    }
    if (rc == 0 || rc == LS_ECORRUPT || rc == LS_EDBID) return rc;
    ls_msgf(err, errlen, "store %s: %s", s->path, mdb_strerror(rc));
    return ls_store_map_rc(rc) == MDB_MAP_FULL ? LS_ESTORE : ls_store_map_rc(rc);
}

int ls_store_open(const char *path, const ls_store_options_t *opts, ls_store_t **out, char *err,
                  size_t errlen)
{
    static const ls_store_options_t defaults;
    const ls_store_options_t *o = opts ? opts : &defaults;
    *out = NULL;
    char file[4200];
    snprintf(file, sizeof(file), "%s/data.mdb", path);
    struct stat st;
    if (!o->create && stat(file, &st) != 0) {
        ls_msgf(err, errlen, "store %s: no LMDB environment there", path);
        return LS_ENOENT;
    }
    int rc = o->create ? ls_mkdir_p(path) : 0;
    if (rc) {
        ls_msgf(err, errlen, "store %s: cannot create directory: %s", path, ls_strerror(rc));
        return rc;
    }
    ls_store_t *s = calloc(1, sizeof(*s));
    if (!s) return LS_ENOMEM;
    snprintf(s->path, sizeof(s->path), "%s", path);
    pthread_mutex_init(&s->meta_mu, NULL);
    ls_store_env_options_t eo = {.map_size = o->map_size ? o->map_size : DEFAULT_MAP_SIZE};
    rc = ls_store_env_acquire(path, &eo, &s->shared, err, errlen);
    if (rc == 0) {
        s->env = ls_store_env_mdb(s->shared);
        rc = open_dbs(s, o->dbid, err, errlen);
    }
    /* mdb_env_open creates data.mdb and lock.mdb but never syncs their directory: until it is,
     * a power cut may take data.mdb's entry, and every commit in it, away. */
    if (rc == 0 && o->create && (rc = ls_fsync_dir(path)) != 0)
        ls_msgf(err, errlen, "store %s: cannot sync the directory: %s", path, ls_strerror(rc));
    if (rc) {
        ls_store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void ls_store_close(ls_store_t *s)
{
    if (!s) return;
    ls_store_env_release(s->shared);
    pthread_mutex_destroy(&s->meta_mu);
    free(s);
}

/* One attempt: begin, fn, meta, commit. Returns MDB_MAP_FULL when the map must grow. */
static int apply_once(ls_store_t *s, ls_store_apply_fn fn, void *ctx, const ls_store_meta_t *meta)
{
    ls_store_txn_t t = {.store = s, .nmaps = -1};
    ls_store_env_rdlock(s->shared);
    int rc = txn_begin(s, 0, &t.txn);
    if (rc) {
        ls_store_env_unlock(s->shared);
        LS_LOGE("store", "%s: cannot begin a write transaction: %s", s->path, mdb_strerror(rc));
        return ls_store_map_rc(rc);
    }
    rc = fn(ctx, &t);
    if (t.cur) mdb_cursor_close(t.cur);
    if (rc == 0 && !t.map_full) rc = ls_store_map_rc(meta_put(t.txn, s->meta_dbi, meta));
    if (rc == 0 && !t.map_full) {
        int crc = mdb_txn_commit(t.txn);
        if (crc) LS_LOGE("store", "%s: commit failed: %s", s->path, mdb_strerror(crc));
        rc = ls_store_map_rc(crc);
    } else {
        mdb_txn_abort(t.txn);
    }
    ls_store_env_unlock(s->shared);
    return t.map_full ? MDB_MAP_FULL : rc;
}

int ls_store_apply(ls_store_t *s, ls_store_apply_fn fn, void *ctx, const ls_store_meta_t *meta)
{
    static const uint8_t none[LS_DBID_LEN];
    /* The meta must describe this store's database (a store without identity takes the id). */
    LS_CHECK(memcmp(meta->dbid, s->meta.dbid, LS_DBID_LEN) == 0 ||
             memcmp(s->meta.dbid, none, LS_DBID_LEN) == 0);
    for (;;) {
        int rc = apply_once(s, fn, ctx, meta);
        if (rc == MDB_MAP_FULL) {
            rc = grow_map(s);
            if (rc == 0) continue;
            LS_LOGE("store", "%s: cannot grow the map: %s", s->path, mdb_strerror(rc));
            return ls_store_map_rc(rc);
        }
        if (rc) return rc;
        pthread_mutex_lock(&s->meta_mu);
        s->meta = *meta;
        pthread_mutex_unlock(&s->meta_mu);
        return 0;
    }
}

/* After every RELEASE_WRITES puts and deletes of a transaction, the map pages it has read are
 * released (ls_store_txn_release_pages), whoever applies it: the replayer, the shadow's early
 * apply, a resync. A write reads its leaf from the map once before LMDB copies it, and the
 * kernel may map neighbouring page-cache pages with it: in the passive daemon the map's resident
 * pages rose by up to ~17 MiB at once between releases every 1,024 operations (its peak RSS,
 * bench/README.md "Issue 14's passive memory"); every 256 writes costs ~10 % more minor faults
 * and one madvise per 256 writes. */
#define RELEASE_WRITES 256u

static void count_write(ls_store_txn_t *t)
{
    if (++t->writes % RELEASE_WRITES == 0) ls_store_txn_release_pages(t);
}

int ls_store_put(ls_store_txn_t *t, const void *key, size_t key_len, const void *val,
                 size_t val_len)
{
    if (key_len == 0 || key_len > LS_KEY_MAX) return LS_EINVAL;
    MDB_val k = {key_len, (void *) key}, v = {val_len, (void *) val};
    int rc = t->cur ? 0 : mdb_cursor_open(t->txn, t->store->data, &t->cur);
    if (rc == 0) rc = mdb_cursor_put(t->cur, &k, &v, 0);
    if (rc == MDB_MAP_FULL) t->map_full = true;
    if (rc == 0) count_write(t);
    return ls_store_map_rc(rc);
}

int ls_store_del(ls_store_txn_t *t, const void *key, size_t key_len)
{
    if (key_len == 0 || key_len > LS_KEY_MAX) return LS_EINVAL;
    MDB_val k = {key_len, (void *) key}, v;
    int rc = t->cur ? 0 : mdb_cursor_open(t->txn, t->store->data, &t->cur);
    if (rc == 0) rc = mdb_cursor_get(t->cur, &k, &v, MDB_SET);
    if (rc == 0) rc = mdb_cursor_del(t->cur, 0);
    if (rc == 0 || rc == MDB_NOTFOUND) count_write(t);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc == MDB_MAP_FULL) t->map_full = true;
    return ls_store_map_rc(rc);
}

int ls_store_get(ls_store_t *s, const void *key, size_t key_len, void **val, size_t *val_len)
{
    *val = NULL;
    *val_len = 0;
    if (key_len == 0 || key_len > LS_KEY_MAX) return LS_EINVAL;
    MDB_txn *txn;
    ls_store_env_rdlock(s->shared);
    int rc = txn_begin(s, MDB_RDONLY, &txn);
    if (rc) goto out;
    MDB_val k = {key_len, (void *) key}, v;
    rc = mdb_get(txn, s->data, &k, &v);
    if (rc == 0) {
        *val = malloc(v.mv_size + 1);
        if (*val) {
            memcpy(*val, v.mv_data, v.mv_size);
            ((uint8_t *) *val)[v.mv_size] = 0;
            *val_len = v.mv_size;
        }
    }
    mdb_txn_abort(txn);
out:
    ls_store_env_unlock(s->shared);
    if (rc == MDB_NOTFOUND) return LS_ENOENT;
    if (rc == 0 && !*val) return LS_ENOMEM;
    return ls_store_map_rc(rc);
}

int ls_store_iterate(ls_store_t *s, ls_store_iter_fn fn, void *ctx)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    ls_store_env_rdlock(s->shared);
    int rc = txn_begin(s, MDB_RDONLY, &txn);
    if (rc == 0) rc = mdb_cursor_open(txn, s->data, &cur);
    if (rc) goto out;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        int urc = fn(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
        if (urc) {
            if (cur) mdb_cursor_close(cur);
            mdb_txn_abort(txn);
            ls_store_env_unlock(s->shared);
            return urc;
        }
    }
    if (rc == MDB_NOTFOUND) rc = 0;
out:
    if (cur) mdb_cursor_close(cur);
    if (txn) mdb_txn_abort(txn);
    ls_store_env_unlock(s->shared);
    return rc == MDB_MAP_FULL ? LS_ESTORE : ls_store_map_rc(rc);
}

void ls_store_meta(ls_store_t *s, ls_store_meta_t *out)
{
    pthread_mutex_lock(&s->meta_mu);
    *out = s->meta;
    pthread_mutex_unlock(&s->meta_mu);
}

int ls_store_sync(ls_store_t *s)
{
    ls_store_env_rdlock(s->shared);
    int rc = mdb_env_sync(s->env, 1);
    ls_store_env_unlock(s->shared);
    if (rc) LS_LOGE("store", "%s: sync failed: %s", s->path, mdb_strerror(rc));
    return rc == 0 ? 0 : rc == MDB_MAP_FULL ? LS_ESTORE : ls_store_map_rc(rc);
}

/* Finds the mappings of the store's data.mdb (env read lock held; at most LS_ARRAY_SIZE(lo)).
 * LMDB does not say where its map is (mdb_env_info's address is only set with MDB_FIXEDMAP):
 * they are found by device and inode in /proc/self/maps. */
static int find_maps(ls_store_t *s, uintptr_t *lo, uintptr_t *hi, int max)
{
    mdb_filehandle_t fd;
    struct stat st;
    FILE *f = NULL;
    if (mdb_env_get_fd(s->env, &fd) == 0 && fstat(fd, &st) == 0) f = fopen("/proc/self/maps", "re");
    char line[512];
    int n = 0;
    while (f && n < max && fgets(line, sizeof(line), f)) {
        unsigned long a, b, ino;
        unsigned maj, min;
        if (sscanf(line, "%lx-%lx %*s %*s %x:%x %lu", &a, &b, &maj, &min, &ino) == 5 &&
            ino == (unsigned long) st.st_ino && maj == major(st.st_dev) &&
            min == minor(st.st_dev) && b > a) {
            lo[n] = a;
            hi[n++] = b;
        }
    }
    if (f) fclose(f);
    return n;
}

/* madvise(MADV_DONTNEED) over the ranges found. */
static void release_maps(const uintptr_t *lo, const uintptr_t *hi, int n)
{
    for (int i = 0; i < n; i++)
        (void) madvise((void *) lo[i], hi[i] - lo[i], MADV_DONTNEED);
}

void ls_store_release_pages(ls_store_t *s)
{
    uintptr_t lo[4], hi[4];
    ls_store_env_rdlock(s->shared); /* the map is not moved meanwhile */
    release_maps(lo, hi, find_maps(s, lo, hi, 4));
    ls_store_env_unlock(s->shared);
}

void ls_store_txn_release_pages(ls_store_txn_t *t)
{
    /* inside ls_store_apply: the env's read lock is held, so the ranges stay right */
    if (t->nmaps < 0) t->nmaps = find_maps(t->store, t->map_lo, t->map_hi, 4);
    release_maps(t->map_lo, t->map_hi, t->nmaps);
}

/* Records checkpoint_lsn = lsn in the meta record, read and written under the writer lock so a
 * concurrent apply's position is never overwritten with an older one. */
static int record_checkpoint(ls_store_t *s, uint64_t lsn)
{
    MDB_txn *txn;
    ls_store_meta_t m;
    ls_store_env_rdlock(s->shared);
    int rc = txn_begin(s, 0, &txn);
    if (rc) goto out;
    MDB_val k = {sizeof(META_KEY) - 1, (void *) META_KEY}, v;
    rc = mdb_get(txn, s->meta_dbi, &k, &v);
    if (rc == 0 && ls_store_meta_decode(&v, &m) != 0) rc = LS_ECORRUPT;
    if (rc == 0 && m.checkpoint_lsn < lsn) {
        m.checkpoint_lsn = lsn;
        rc = meta_put(txn, s->meta_dbi, &m);
    }
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
        if (rc == 0) {
            pthread_mutex_lock(&s->meta_mu);
            if (s->meta.checkpoint_lsn < lsn) s->meta.checkpoint_lsn = lsn;
            pthread_mutex_unlock(&s->meta_mu);
        }
    } else {
        mdb_txn_abort(txn);
    }
out:
    ls_store_env_unlock(s->shared);
    if (rc == LS_ECORRUPT) return rc;
    return rc == MDB_NOTFOUND || rc == MDB_MAP_FULL ? LS_ESTORE : ls_store_map_rc(rc);
}

int ls_store_checkpoint(ls_store_t *s, uint64_t *lsn)
{
    ls_store_meta_t m;
    ls_store_meta(s, &m);
    int rc = ls_store_sync(s);
    if (rc) return rc;
    if (m.checkpoint_lsn < m.lsn && (rc = record_checkpoint(s, m.lsn))) return rc;
    if (lsn) *lsn = m.lsn;
    return 0;
}

int ls_store_stats(ls_store_t *s, ls_store_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    MDB_txn *txn;
    ls_store_env_rdlock(s->shared);
    out->map_size = map_size_of(s);
    out->map_grows = s->map_grows;
    int rc = txn_begin(s, MDB_RDONLY, &txn);
    if (rc == 0) {
        MDB_stat st;
        rc = mdb_stat(txn, s->data, &st);
        if (rc == 0) {
            out->entries = st.ms_entries;
            out->pages = st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
        }
        mdb_txn_abort(txn);
    }
    ls_store_env_unlock(s->shared);
    return ls_store_map_rc(rc);
}
