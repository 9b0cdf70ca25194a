/*
 * The active side of a seed: a consistent local copy of the store, then a chunked reader.
 *
 * Why copy locally first (rather than stream under a read transaction): an LMDB read transaction
 * pins every page of its snapshot, so the writer cannot reuse them; held for a whole network
 * stream (hours for a large store on a slow link) the live map would grow by everything written
 * meanwhile, up to MDB_MAP_FULL. mdb_env_copy2(MDB_CP_COMPACT) holds its read transaction only
 * for the local copy (disk speed), writes no free pages, and needs no writer lock (the plain
 * copy takes the writer mutex briefly). The cost: disk space about the live data size under
 * <db>/seed-tmp/ for the duration of the seed, and one extra sequential write and read of it.
 * The copy is not fsynced: it is temporary, a crash loses it with the seed.
 *
 * Direct mode (options.direct, docs/SEED.md "Streaming from the compaction"): the compacting copy
 * writes into a pipe (mdb_env_copyfd2 on a thread of its own) and the stream is read from it, so
 * the local copy is no longer on the critical path. The read transaction then lives as long as
 * the stream: the caller (the worker) watches the rate the stream is taken at and, once the pin
 * would last too long (a slow link), calls ls_seed_snapshot_spill, which writes the rest of the
 * compaction to the local copy at disk speed and ends the read transaction; the stream goes on
 * from that file. SEED_BEGIN needs L and the size before the first byte: L is read under a read
 * transaction of our own begun before the copy's; the two name the same snapshot when the copy's
 * reader slot (mdb_reader_list, once it wrote its first page) shows our transaction id, or, when
 * the slot cannot be found, when no commit happened since ours; else the copy is abandoned and
 * taken again. The size is in the copy's meta page (its first two pages).
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "seed/seed_int.h"
#include "store/env.h"
#include "store/meta_int.h"

struct ls_seed_snapshot {
    char dir[LS__SEED_PATH_MAX]; /* <db>/seed-tmp/<unique>: the local copy's environment */
    ls_seed_info_t info;         /* what it holds */
    int fd;                      /* <dir>/data.mdb, read only; -1 when closed */
    ls_sha256_t *sha;            /* running SHA-256 of the bytes read so far */
    uint64_t offset;             /* next stream offset */
    size_t chunk_max;            /* largest chunk returned, bytes */
    int failed;                  /* sticky error of the reader (0: none) */
    /* direct mode: the stream comes from the compacting copy through a pipe */
    bool direct;             /* reading the pipe (false once spilled or finished) */
    bool spilled;            /* the rest of the stream was written to <dir>/data.mdb: read there,
                                already hashed */
    ls_store_env_t *env;     /* held, shared lock taken, while the copy runs */
    int pipe_rd, pipe_wr;    /* the pipe (-1: closed); pipe_wr belongs to the copy thread */
    pthread_t thr;           /* runs mdb_env_copyfd2 */
    bool thr_live;           /* not joined yet */
    int copy_rc;             /* its LMDB code (valid once joined) */
    uint8_t head[2 * 65536]; /* the first two pages, read to learn the size */
    size_t head_len;         /* bytes in head */
};

/* The most a direct snapshot retries when a commit slipped in before the copy began. */
#define DIRECT_TRIES 4

static atomic_uint snap_counter; /* makes local copy names unique within the process */

/* Refuses the copy when the file system holding it has less room than the live pages. */
static int check_space(MDB_env *env, const char *dir, char *err, size_t errlen)
{
    MDB_envinfo ei;
    MDB_stat st;
    struct statvfs vf;
    if (mdb_env_info(env, &ei) != 0 || mdb_env_stat(env, &st) != 0 || statvfs(dir, &vf) != 0)
        return 0; /* cannot tell: the copy itself will report ENOSPC */
    uint64_t need = ((uint64_t) ei.me_last_pgno + 1) * st.ms_psize;
    uint64_t avail = (uint64_t) vf.f_bavail * vf.f_frsize;
    if (avail >= need) return 0;
    ls_msgf(err, errlen,
            "%s: %llu bytes free, the local snapshot copy needs up to %llu: free space "
            "on the active or seed later",
            dir, (unsigned long long) avail, (unsigned long long) need);
    return LS_ENOSPC;
}

/* Copies the environment in store into dir/data.mdb, compacted, under one read transaction.
 * The environment is the process's one for that path (store/env.h), shared with the writer when
 * it runs here, with status, and with the snapshots of other targets taken at the same time: a
 * second MDB_env on the path would, when closed, drop every reader slot of the process and let
 * the writer reuse the pages another snapshot is still copying. mdb_env_copy2 with
 * MDB_CP_COMPACT only needs a read transaction, so concurrent copies on one environment are
 * fine. The shared lock is held during the copy: the map is never remapped under it. */
static int copy_env(const char *store, const char *dir, char *err, size_t errlen)
{
    ls_store_env_t *e = NULL;
    /* Map size 0 adopts the size the writer recorded; readonly never creates a store. */
    ls_store_env_options_t eo = {.readonly = true};
    char msg[512] = "";
    int rc = ls_store_env_acquire(store, &eo, &e, msg, sizeof(msg));
    if (rc) {
        ls_msgf(err, errlen, "store %s: cannot open for the snapshot: %s", store, msg);
        return rc == LS_ENOENT ? LS_ENOENT : LS_ESTORE;
    }
    MDB_env *env = ls_store_env_mdb(e);
    ls_store_env_rdlock(e);
    int lrc = check_space(env, dir, err, errlen);
    for (int tries = 0; lrc == 0 && tries < 8; tries++) {
        rc = mdb_env_copy2(env, dir, MDB_CP_COMPACT);
        if (rc != MDB_MAP_RESIZED) break;
        /* the writer grew the map meanwhile: drop the partial copy, adopt the size, again */
        char file[LS__SEED_PATH_MAX + 16];
        snprintf(file, sizeof(file), "%s/data.mdb", dir);
        unlink(file);
        ls_store_env_unlock(e);
        ls_store_env_grow(e, 0, NULL);
        ls_store_env_rdlock(e);
    }
    ls_store_env_unlock(e);
    ls_store_env_release(e);
    if (lrc) return lrc;
    if (rc) {
        ls_msgf(err, errlen, "store %s: copy into %s failed: %s", store, dir, mdb_strerror(rc));
        return rc == ENOSPC ? LS_ENOSPC : LS_ESTORE;
    }
    return 0;
}

/* ---- direct mode ---------------------------------------------------------------------------- */

static void *copy_main(void *arg)
{
    ls_seed_snapshot_t *s = arg;
    sigset_t set; /* a closed reader must give EPIPE, not kill the process (LMDB's writer thread
                     inherits this mask) */
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    s->copy_rc = mdb_env_copyfd2(ls_store_env_mdb(s->env), s->pipe_wr, MDB_CP_COMPACT);
    close(s->pipe_wr);
    return NULL;
}

/* Ends the copy thread (closing the pipe first when abandoning it), then the shared lock and the
 * environment. Returns the copy's LMDB code. */
static int direct_end(ls_seed_snapshot_t *s, bool abandon)
{
    if (abandon && s->pipe_rd >= 0) {
        close(s->pipe_rd);
        s->pipe_rd = -1;
    }
    if (s->thr_live) {
        pthread_join(s->thr, NULL);
        s->thr_live = false;
    }
    if (s->pipe_rd >= 0) close(s->pipe_rd);
    s->pipe_rd = -1;
    if (s->env) {
        ls_store_env_unlock(s->env);
        ls_store_env_release(s->env);
        s->env = NULL;
    }
    s->direct = false;
    return s->copy_rc;
}

/* The size of the compacted copy from its meta page 1 (0: not a meta page). LMDB's layout:
 * a 16-byte page header, then magic, version, address, mapsize, two MDB_db of 48 bytes whose
 * first u32 of the first is the page size, last_pg. */
static uint64_t head_size(const uint8_t *page, uint32_t psize)
{
    const uint8_t *m = page + 16;
    uint32_t magic, version, ps;
    uint64_t last;
    memcpy(&magic, m, 4);
    memcpy(&version, m + 4, 4);
    memcpy(&ps, m + 24, 4);
    memcpy(&last, m + 120, 8);
    if (magic != 0xBEEFC0DEu || version != 1 || ps != psize || last < 1 || last > (1ull << 40))
        return 0;
    return (last + 1) * psize;
}

/* mdb_reader_list's lines ("pid thread txnid"): the transaction id of the copy thread's reader. */
typedef struct {
    size_t tid; /* the copy thread */
    long pid;   /* this process */
    size_t txn; /* its transaction id, 0 until found */
} reader_find_t;

static int reader_line(const char *msg, void *ctx)
{
    reader_find_t *f = ctx;
    long pid;
    size_t tid, txn;
    if (sscanf(msg, "%ld %zx %zu", &pid, &tid, &txn) == 3 && pid == f->pid && tid == f->tid)
        f->txn = txn;
    return 0;
}

/* The transaction id the copy reads at (0: cannot tell). */
static size_t copy_txnid(ls_seed_snapshot_t *s)
{
    reader_find_t f = {.tid = (size_t) s->thr, .pid = (long) getpid()};
    mdb_reader_list(ls_store_env_mdb(s->env), reader_line, &f);
    return f.txn;
}

/* One try: a read transaction for the meta record, the copy started into the pipe, its first two
 * pages read. *again: a commit slipped in between (or the map grew): try again. *unusable: the
 * meta page is not laid out as head_size reads it: take the local copy. */
static int direct_try(ls_seed_snapshot_t *s, const char *store, ls_store_meta_t *m, bool *again,
                      bool *unusable, char *err, size_t errlen)
{
    *again = *unusable = false;
    ls_store_env_options_t eo = {.readonly = true};
    char msg[512] = "";
    int rc = ls_store_env_acquire(store, &eo, &s->env, msg, sizeof(msg));
    if (rc) {
        ls_msgf(err, errlen, "store %s: cannot open for the snapshot: %s", store, msg);
        return rc == LS_ENOENT ? LS_ENOENT : LS_ESTORE;
    }
    MDB_env *env = ls_store_env_mdb(s->env);
    MDB_dbi dbi;
    MDB_txn *txn = NULL;
    MDB_stat st;
    MDB_envinfo ei;
    MDB_val k = {.mv_size = sizeof(META_KEY) - 1, .mv_data = (void *) META_KEY}, v;
    int drc = ls_store_env_dbi(s->env, "meta", false, &dbi); /* MDB_NOTFOUND: an empty store */
    ls_store_env_rdlock(s->env);
    if (drc != 0 && drc != MDB_NOTFOUND) {
        ls_msgf(err, errlen, "store %s: cannot open its meta database: %s", store,
                mdb_strerror(drc));
        direct_end(s, true);
        return LS_ESTORE;
    }
    rc = ls_store_env_txn_begin(s->env, MDB_RDONLY, &txn);
    if (rc == 0) rc = mdb_env_stat(env, &st);
    memset(m, 0, sizeof(*m));
    if (rc == 0 && drc == 0) {
        int g = mdb_get(txn, dbi, &k, &v);
        if (g == 0 && ls_store_meta_decode(&v, m) != 0) {
            if (txn) mdb_txn_abort(txn);
            direct_end(s, true);
            return ls_errf(err, errlen, LS_ECORRUPT, "store %s: malformed meta record (%zu bytes)",
                           store, v.mv_size);
        } else if (g != 0 && g != MDB_NOTFOUND) {
            rc = g;
        }
    }
    size_t mine = txn ? mdb_txn_id(txn) : 0, theirs = 0;
    int fds[2] = {-1, -1};
    if (rc == 0 && (st.ms_psize < 512 || st.ms_psize > sizeof(s->head) / 2)) rc = MDB_INCOMPATIBLE;
    if (rc == 0 && pipe2(fds, O_CLOEXEC) != 0) rc = errno;
    if (rc == 0) {
        s->pipe_rd = fds[0];
        s->pipe_wr = fds[1];
        (void) fcntl(fds[0], F_SETPIPE_SZ, 1 << 20); /* fewer wake-ups; the default 64 KiB works */
        s->copy_rc = 0;
        if (pthread_create(&s->thr, NULL, copy_main, s) != 0) {
            close(fds[0]);
            close(fds[1]);
            s->pipe_rd = s->pipe_wr = -1;
            rc = ENOMEM;
        } else {
            s->thr_live = true;
        }
    }
    if (rc == 0) { /* its first two pages: the copy's read transaction has begun */
        size_t want = 2 * (size_t) st.ms_psize;
        ssize_t got = ls_read_full(s->pipe_rd, s->head, want);
        if (got != (ssize_t) want) {
            if (txn) mdb_txn_abort(txn); /* before the environment may close */
            txn = NULL;
            int crc = direct_end(s, true);
            if (crc == MDB_MAP_RESIZED) { /* the writer grew the map: adopt it, again */
                *again = true;
                return 0;
            }
            rc = crc ? crc : got < 0 ? (int) got : EIO;
        } else if ((theirs = copy_txnid(s)) != 0
                       ? theirs != mine
                       : mdb_env_info(env, &ei) == 0 && (size_t) ei.me_last_txnid != mine) {
            if (txn) mdb_txn_abort(txn);
            direct_end(s, true); /* a commit came between the two transactions */
            *again = true;
            return 0;
        } else if (!(s->info.total_bytes = head_size(s->head + st.ms_psize, st.ms_psize))) {
            if (txn) mdb_txn_abort(txn); /* not the layout read here (another LMDB build) */
            direct_end(s, true);
            *unusable = true;
            return 0;
        } else {
            s->head_len = want;
        }
    }
    if (txn) mdb_txn_abort(txn); /* the copy's own transaction pins the same snapshot */
    if (rc) { /* an LMDB code or an errno, or a negative LS_E code from reading the pipe */
        if (s->env) direct_end(s, true);
        bool ls = rc <= LS_EIO; /* our codes lie below LMDB's */
        int code = ls ? rc : rc == ENOSPC ? LS_ENOSPC : rc == ENOMEM ? LS_ENOMEM : LS_ESTORE;
        return ls_errf(err, errlen, code, "store %s: cannot stream a compacting copy: %s", store,
                       ls ? ls_strerror(rc) : mdb_strerror(rc));
    }
    s->direct = true;
    return 0;
}

/* Starts the compacting copy into the pipe; *m: the snapshot's meta record. *fallback: could not
 * line up the two transactions, or read the copy's size: the caller takes the local copy. */
static int direct_start(ls_seed_snapshot_t *s, const char *store, ls_store_meta_t *m,
                        bool *fallback, char *err, size_t errlen)
{
    *fallback = false;
    for (int tries = 0; tries < DIRECT_TRIES; tries++) {
        bool again = false, unusable = false;
        int rc = direct_try(s, store, m, &again, &unusable, err, errlen);
        if (unusable) break;
        if (rc || !again) return rc;
        /* adopt a grown map (no transaction, no lock held), then again */
        ls_store_env_t *e = NULL;
        ls_store_env_options_t eo = {.readonly = true};
        if (ls_store_env_acquire(store, &eo, &e, NULL, 0) == 0) {
            ls_store_env_grow(e, 0, NULL);
            ls_store_env_release(e);
        }
    }
    *fallback = true;
    return 0;
}

/* Reads n stream bytes of the direct copy into buf (the head first). */
static int direct_read(ls_seed_snapshot_t *s, uint8_t *buf, size_t n)
{
    size_t from_head = 0;
    if (s->offset < s->head_len) {
        from_head = (size_t) LS_MIN((uint64_t) n, s->head_len - s->offset);
        memcpy(buf, s->head + s->offset, from_head);
    }
    if (from_head == n) return 0;
    ssize_t got = ls_read_full(s->pipe_rd, buf + from_head, n - from_head);
    if (got == (ssize_t) (n - from_head)) return 0;
    int crc = direct_end(s, true);
    return crc == ENOSPC ? LS_ENOSPC : crc ? LS_ESTORE : got < 0 ? (int) got : LS_EIO;
}

/* At the stream's end: the copy finished well and wrote nothing more. */
static int direct_finish(ls_seed_snapshot_t *s)
{
    uint8_t extra;
    ssize_t more = ls_read_full(s->pipe_rd, &extra, 1);
    int crc = direct_end(s, more != 0);
    if (more != 0) return LS_ECORRUPT; /* longer than its meta page said */
    return crc ? LS_ESTORE : 0;
}

bool ls_seed_snapshot_direct(const ls_seed_snapshot_t *s)
{
    return s->direct;
}

int ls_seed_snapshot_spill(ls_seed_snapshot_t *s, char *err, size_t errlen)
{
    if (!s->direct || s->failed) return s->failed ? LS_ESTATE : 0;
    uint64_t left = s->info.total_bytes - s->offset;
    struct statvfs vf;
    if (statvfs(s->dir, &vf) == 0 && (uint64_t) vf.f_bavail * vf.f_frsize < left + (1u << 20))
        return ls_errf(err, errlen, LS_ENOSPC,
                       "%s: %llu bytes free, the rest of the snapshot needs %llu: streaming it "
                       "from the compaction",
                       s->dir, (unsigned long long) vf.f_bavail * vf.f_frsize,
                       (unsigned long long) left);
    char file[LS__SEED_PATH_MAX + 16];
    snprintf(file, sizeof(file), "%s/data.mdb", s->dir);
    int fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), rc = 0;
    if (fd < 0) {
        rc = ls_err_from_errno(errno);
        return ls_errf(err, errlen, rc, "%s: cannot create: %s", file, ls_strerror(rc));
    }
    size_t cap = 1u << 20;
    uint8_t *buf = malloc(cap);
    uint64_t off = s->offset;
    while (rc == 0 && off < s->info.total_bytes) { /* stream offsets: the file has a hole first */
        size_t n = (size_t) LS_MIN((uint64_t) cap, s->info.total_bytes - off);
        uint64_t save = s->offset;
        s->offset = off; /* direct_read serves the head by s->offset */
        rc = buf ? direct_read(s, buf, n) : LS_ENOMEM;
        s->offset = save;
        if (rc == 0) ls_sha256_update(s->sha, buf, n);
        if (rc == 0) rc = ls_pwrite_full(fd, buf, n, (off_t) off);
        off += n;
    }
    free(buf);
    if (rc == 0) rc = direct_finish(s);
    if (rc) {
        close(fd);
        if (s->env) direct_end(s, true);
        s->failed = rc;
        return ls_errf(err, errlen, rc, "%s: cannot write the rest of the snapshot: %s", file,
                       ls_strerror(rc));
    }
    s->fd = fd;
    s->spilled = true;
    return 0;
}

/* Opens the local copy (name: data.mdb, or the resync's stream) for reading and fills the size. */
static int open_copy(ls_seed_snapshot_t *s, const char *name, char *err, size_t errlen)
{
    char file[LS__SEED_PATH_MAX + 16];
    snprintf(file, sizeof(file), "%s/%s", s->dir, name);
    struct stat st;
    s->fd = open(file, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0 || fstat(s->fd, &st) != 0) {
        int rc = ls_err_from_errno(errno);
        ls_msgf(err, errlen, "%s: cannot open: %s", file, strerror(errno));
        return rc;
    }
    s->info.total_bytes = (uint64_t) st.st_size;
    s->sha = ls_sha256_new();
    return s->sha ? 0 : LS_ENOMEM;
}

static int take(ls_seed_snapshot_t *s, const ls_seed_snapshot_options_t *o, char *err,
                size_t errlen)
{
    char store[LS__SEED_PATH_MAX], logs[LS__SEED_PATH_MAX];
    const char *prefix = o->prefix ? o->prefix : LS_GEN_PREFIX_DEFAULT;
    snprintf(store, sizeof(store), "%s/store", o->db_dir);
    snprintf(logs, sizeof(logs), "%s/logs", o->db_dir);
    int n = snprintf(s->dir, sizeof(s->dir), "%s/%s/snap-%ld-%u", o->db_dir, LS__SEED_TMP,
                     (long) getpid(), atomic_fetch_add(&snap_counter, 1));
    if (n < 0 || (size_t) n + 64 >= sizeof(s->dir) || strlen(prefix) > LS_GEN_PREFIX_MAX) {
        ls_msgf(err, errlen, "database directory or prefix too long");
        return LS_EINVAL;
    }
    ls__seed_rmtree(s->dir); /* a leftover of a process with our pid */
    int rc = ls_mkdir_p(s->dir);
    if (rc) {
        ls_msgf(err, errlen, "%s: cannot create: %s", s->dir, ls_strerror(rc));
        return rc;
    }
    if (o->resync) { /* an incremental resync: the key stream, unless a full seed is needed */
        char file[LS__SEED_PATH_MAX + 16];
        bool fallback = false;
        snprintf(file, sizeof(file), "%s/%s", s->dir, LS__RESYNC_STREAM);
        rc = ls__seed_resync_write(o->db_dir, prefix, o->resync, file, &s->info, &fallback, err,
                                   errlen);
        if (rc || !fallback) return rc ? rc : open_copy(s, LS__RESYNC_STREAM, err, errlen);
        LS_LOGI("seed", "%s: resync from generation %llu: a full seed instead: %s", o->db_dir,
                (unsigned long long) o->resync->split_generation, s->info.fallback);
    }
    ls_store_meta_t m;
    if (o->direct && !o->resync) {
        bool fallback = false;
        if ((rc = direct_start(s, store, &m, &fallback, err, errlen))) return rc;
        if (s->direct) {
            s->sha = ls_sha256_new();
            rc = s->sha ? ls__seed_handoff(logs, prefix, &m, &s->info, err, errlen) : LS_ENOMEM;
            if (rc) direct_end(s, true);
            return rc;
        }
        LS_LOGI("seed",
                "%s: cannot stream from the compaction (the store kept committing while the "
                "copy began, or its meta page is not the expected layout): a local copy instead",
                o->db_dir);
    }
    if ((rc = copy_env(store, s->dir, err, errlen))) return rc;
    rc = ls_store_peek_meta(s->dir, &m, err, errlen);
    if (rc == LS_ENOENT) { /* a store the writer never applied to: empty */
        memset(&m, 0, sizeof(m));
        rc = 0;
    }
    if (rc == 0) rc = ls__seed_handoff(logs, prefix, &m, &s->info, err, errlen);
    if (rc == 0) rc = open_copy(s, "data.mdb", err, errlen);
    return rc;
}

int ls_seed_snapshot_new(const ls_seed_snapshot_options_t *opts, ls_seed_snapshot_t **out,
                         char *err, size_t errlen)
{
    *out = NULL;
    if (!opts || !opts->db_dir || !*opts->db_dir) {
        ls_msgf(err, errlen, "seed snapshot: no database directory");
        return LS_EINVAL;
    }
    ls_seed_snapshot_t *s = calloc(1, sizeof(*s));
    if (!s) return LS_ENOMEM;
    s->fd = s->pipe_rd = s->pipe_wr = -1;
    s->chunk_max =
        opts->chunk_max && opts->chunk_max < LS__SEED_CHUNK ? opts->chunk_max : LS__SEED_CHUNK;
    uint64_t t0 = ls_mono_ns();
    int rc = take(s, opts, err, errlen);
    if (rc) {
        ls_seed_snapshot_free(s);
        return rc;
    }
    char hex[2 * LS_DBID_LEN + 1];
    ls_hex(s->info.dbid, LS_DBID_LEN, hex);
    LS_LOGI("seed",
            "snapshot of %s (database %s): %llu bytes, lsn %llu in generation %llu "
            "(epoch %u), %s in %llu ms",
            opts->db_dir, hex, (unsigned long long) s->info.total_bytes,
            (unsigned long long) s->info.last_lsn, (unsigned long long) s->info.generation,
            s->info.epoch, s->direct ? "streaming from the compaction, started" : "copied",
            (unsigned long long) ((ls_mono_ns() - t0) / 1000000u));
    *out = s;
    return 0;
}

const ls_seed_info_t *ls_seed_snapshot_info(const ls_seed_snapshot_t *snap)
{
    return &snap->info;
}

int ls_seed_snapshot_read(ls_seed_snapshot_t *s, void *buf, size_t cap, uint64_t *offset,
                          size_t *len)
{
    *offset = s->offset;
    *len = 0;
    if (s->failed) return LS_ESTATE;
    size_t n =
        (size_t) LS_MIN((uint64_t) LS_MIN(cap, s->chunk_max), s->info.total_bytes - s->offset);
    if (n == 0) {
        if (s->direct && (s->failed = direct_finish(s)) != 0) return s->failed;
        return 0;
    }
    if (s->direct) {
        if ((s->failed = direct_read(s, buf, n)) != 0) return s->failed;
    } else {
        ssize_t got = ls_pread_full(s->fd, buf, n, (off_t) s->offset);
        if (got != (ssize_t) n) {
            s->failed = got < 0 ? (int) got : LS_EIO; /* the local copy shrank: never send less */
            return s->failed;
        }
    }
    if (!s->spilled) ls_sha256_update(s->sha, buf, n); /* a spill hashed what it wrote */
    if (LS_FAULT("seed.snapshot.corrupt")) ((uint8_t *) buf)[n / 2] ^= 0x5a;
    s->offset += n;
    *len = n;
    return 0;
}

int ls_seed_snapshot_digest(const ls_seed_snapshot_t *s, uint8_t out[LS_DIGEST_SIZE])
{
    if (s->failed || s->offset != s->info.total_bytes || s->direct) return LS_ESTATE;
    ls_sha256_peek(s->sha, out);
    return 0;
}

void ls_seed_snapshot_free(ls_seed_snapshot_t *s)
{
    if (!s) return;
    if (s->env) direct_end(s, true);
    if (s->fd >= 0) close(s->fd);
    ls_sha256_free(s->sha);
    if (s->dir[0] && ls__seed_rmtree(s->dir) != 0)
        LS_LOGW("seed", "%s: cannot remove the local snapshot copy", s->dir);
    free(s);
}

int ls_seed_snapshot_cleanup(const char *db_dir)
{
    char dir[LS__SEED_PATH_MAX];
    int n = snprintf(dir, sizeof(dir), "%s/%s", db_dir, LS__SEED_TMP);
    if (n < 0 || (size_t) n >= sizeof(dir)) return LS_EINVAL;
    return ls__seed_rmtree(dir);
}
