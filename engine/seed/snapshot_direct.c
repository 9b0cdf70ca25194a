/* A seed snapshot's direct mode (docs/SEED.md "Streaming from the compaction"; snapshot.c's
 * comment says why and how): the compacting copy written into a pipe by a thread of its own,
 * the two read transactions lined up, the size read from the copy's meta page, the stream read
 * from the pipe, and the spill of its rest to the local copy when the link is slow. */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "seed/snapshot_int.h"
#include "store/meta_int.h"

/* The most a direct snapshot retries when a commit slipped in before the copy began. */
#define DIRECT_TRIES 4

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
int ls__snap_direct_end(ls_seed_snapshot_t *s, bool abandon)
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
uint64_t ls__snap_meta_size(const uint8_t *page, uint32_t psize)
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

/* A try's first step: the store's environment, its meta database and a read transaction
 * (*txn) with the meta record (*m, zeroed when the store has none) and the page size (*st).
 * Returns an LS_E code when the try ends here (err says why, nothing is held), else 0 with *lrc
 * an LMDB code when it fails further on (0: go on). */
static int begin_at_meta(ls_seed_snapshot_t *s, const char *store, ls_store_meta_t *m,
                         MDB_txn **txn, MDB_stat *st, int *lrc, char *err, size_t errlen)
{
    ls_store_env_options_t eo = {.readonly = true};
    char msg[512] = "";
    int rc = ls_store_env_acquire(store, &eo, &s->env, msg, sizeof(msg));
    if (rc) {
        ls_msgf(err, errlen, "store %s: cannot open for the snapshot: %s", store, msg);
        return rc == LS_ENOENT ? LS_ENOENT : LS_ESTORE;
    }
    MDB_dbi dbi;
    MDB_val k = {.mv_size = sizeof(META_KEY) - 1, .mv_data = (void *) META_KEY}, v;
    int drc = ls_store_env_dbi(s->env, "meta", false, &dbi); /* MDB_NOTFOUND: an empty store */
    ls_store_env_rdlock(s->env);
    if (drc != 0 && drc != MDB_NOTFOUND) {
        ls_msgf(err, errlen, "store %s: cannot open its meta database: %s", store,
                mdb_strerror(drc));
        ls__snap_direct_end(s, true);
        return LS_ESTORE;
    }
    rc = ls_store_env_txn_begin(s->env, MDB_RDONLY, txn);
    if (rc == 0) rc = mdb_env_stat(ls_store_env_mdb(s->env), st);
    memset(m, 0, sizeof(*m));
    if (rc == 0 && drc == 0) {
        int g = mdb_get(*txn, dbi, &k, &v);
        if (g == 0 && ls_store_meta_decode(&v, m) != 0) {
            if (*txn) mdb_txn_abort(*txn);
            *txn = NULL;
            ls__snap_direct_end(s, true);
            return ls_errf(err, errlen, LS_ECORRUPT, "store %s: malformed meta record (%zu bytes)",
                           store, v.mv_size);
        } else if (g != 0 && g != MDB_NOTFOUND) {
            rc = g;
        }
    }
    *lrc = rc;
    return 0;
}

/* The copy thread started, writing the compacted copy into a new pipe. 0 or an errno. */
static int start_copy(ls_seed_snapshot_t *s)
{
    int fds[2] = {-1, -1};
    if (pipe2(fds, O_CLOEXEC) != 0) return errno;
    s->pipe_rd = fds[0];
    s->pipe_wr = fds[1];
    (void) fcntl(fds[0], F_SETPIPE_SZ, 1 << 20); /* fewer wake-ups; the default 64 KiB works */
    s->copy_rc = 0;
    if (pthread_create(&s->thr, NULL, copy_main, s) != 0) {
        close(fds[0]);
        close(fds[1]);
        s->pipe_rd = s->pipe_wr = -1;
        return ENOMEM;
    }
    s->thr_live = true;
    return 0;
}

/* The copy's first two pages read from the pipe (by then its read transaction has begun), then
 * whether it reads at the same snapshot as *txn (id mine) and how large it is. Where the try
 * ends here (*again: a commit slipped in between or the map grew; *unusable: the meta page is not
 * laid out as ls__snap_meta_size reads it; or an error), *txn is aborted first and the copy
 * ended. Returns 0 or an LMDB code, an errno or an LS_E code from reading the pipe. */
static int read_head(ls_seed_snapshot_t *s, MDB_txn **txn, size_t mine, uint32_t psize, bool *again,
                     bool *unusable)
{
    size_t want = 2 * (size_t) psize, theirs;
    MDB_envinfo ei;
    ssize_t got = ls_read_full(s->pipe_rd, s->head, want);
    if (got != (ssize_t) want) {
        if (*txn) mdb_txn_abort(*txn); /* before the environment may close */
        *txn = NULL;
        int crc = ls__snap_direct_end(s, true);
        if (crc == MDB_MAP_RESIZED) { /* the writer grew the map: adopt it, again */
            *again = true;
            return 0;
        }
        return crc ? crc : got < 0 ? (int) got : EIO;
    }
    if ((theirs = copy_txnid(s)) != 0 ? theirs != mine
                                      : mdb_env_info(ls_store_env_mdb(s->env), &ei) == 0 &&
                                            (size_t) ei.me_last_txnid != mine) {
        if (*txn) mdb_txn_abort(*txn);
        *txn = NULL;
        ls__snap_direct_end(s, true); /* a commit came between the two transactions */
        *again = true;
        return 0;
    }
    if (!(s->info.total_bytes = ls__snap_meta_size(s->head + psize, psize))) {
        if (*txn) mdb_txn_abort(*txn); /* not the layout read here (another LMDB build) */
        *txn = NULL;
        ls__snap_direct_end(s, true);
        *unusable = true;
        return 0;
    }
    s->head_len = want;
    return 0;
}

/* A failed try's end: the copy ended, rc (an LMDB code or an errno, or a negative LS_E code
 * from reading the pipe) said in err and returned as an LS_E code. */
static int try_failed(ls_seed_snapshot_t *s, const char *store, int rc, char *err, size_t errlen)
{
    if (s->env) ls__snap_direct_end(s, true);
    bool ls = rc <= LS_EIO; /* our codes lie below LMDB's */
    int code = ls ? rc : rc == ENOSPC ? LS_ENOSPC : rc == ENOMEM ? LS_ENOMEM : LS_ESTORE;
    return ls_errf(err, errlen, code, "store %s: cannot stream a compacting copy: %s", store,
                   ls ? ls_strerror(rc) : mdb_strerror(rc));
}

/* One try: a read transaction for the meta record, the copy started into the pipe, its first two
 * pages read. *again: a commit slipped in between (or the map grew): try again. *unusable: the
 * meta page is not laid out as ls__snap_meta_size reads it: take the local copy. */
static int direct_try(ls_seed_snapshot_t *s, const char *store, ls_store_meta_t *m, bool *again,
                      bool *unusable, char *err, size_t errlen)
{
    *again = *unusable = false;
    MDB_txn *txn = NULL;
    MDB_stat st;
    int rc = 0;
    int end = begin_at_meta(s, store, m, &txn, &st, &rc, err, errlen);
    if (end) return end;
    size_t mine = txn ? mdb_txn_id(txn) : 0;
    if (rc == 0 && (st.ms_psize < 512 || st.ms_psize > sizeof(s->head) / 2)) rc = MDB_INCOMPATIBLE;
    if (rc == 0) rc = start_copy(s);
    if (rc == 0) rc = read_head(s, &txn, mine, st.ms_psize, again, unusable);
    if (txn) mdb_txn_abort(txn); /* the copy's own transaction pins the same snapshot */
    if (*again || *unusable) return 0;
    if (rc) return try_failed(s, store, rc, err, errlen);
    s->direct = true;
    return 0;
}

/* Starts the compacting copy into the pipe; *m: the snapshot's meta record. *fallback: could not
 * line up the two transactions, or read the copy's size: the caller takes the local copy. */
int ls__snap_direct_start(ls_seed_snapshot_t *s, const char *store, ls_store_meta_t *m,
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
int ls__snap_direct_read(ls_seed_snapshot_t *s, uint8_t *buf, size_t n)
{
    size_t from_head = 0;
    if (s->offset < s->head_len) {
        from_head = (size_t) LS_MIN((uint64_t) n, s->head_len - s->offset);
        memcpy(buf, s->head + s->offset, from_head);
    }
    if (from_head == n) return 0;
    ssize_t got = ls_read_full(s->pipe_rd, buf + from_head, n - from_head);
    if (got == (ssize_t) (n - from_head)) return 0;
    int crc = ls__snap_direct_end(s, true);
    return crc == ENOSPC ? LS_ENOSPC : crc ? LS_ESTORE : got < 0 ? (int) got : LS_EIO;
}

/* At the stream's end: the copy finished well and wrote nothing more. */
int ls__snap_direct_finish(ls_seed_snapshot_t *s)
{
    uint8_t extra;
    ssize_t more = ls_read_full(s->pipe_rd, &extra, 1);
    int crc = ls__snap_direct_end(s, more != 0);
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
        rc = buf ? ls__snap_direct_read(s, buf, n) : LS_ENOMEM;
        s->offset = save;
        if (rc == 0) ls__seed_sum_update(&s->sum, buf, n);
        if (rc == 0) rc = ls_pwrite_full(fd, buf, n, (off_t) off);
        off += n;
    }
    free(buf);
    if (rc == 0) rc = ls__snap_direct_finish(s);
    if (rc) {
        close(fd);
        if (s->env) ls__snap_direct_end(s, true);
        s->failed = rc;
        return ls_errf(err, errlen, rc, "%s: cannot write the rest of the snapshot: %s", file,
                       ls_strerror(rc));
    }
    s->fd = fd;
    s->spilled = true;
    return 0;
}
