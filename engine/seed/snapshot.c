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
 * taken again. The size is in the copy's meta page (its first two pages). Direct mode's code is
 * snapshot_direct.c's; the object they share: snapshot_int.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "seed/snapshot_int.h"

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
    return ls__seed_sum_init(&s->sum, s->xxh);
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
        if ((rc = ls__snap_direct_start(s, store, &m, &fallback, err, errlen))) return rc;
        if (s->direct) {
            rc = ls__seed_sum_init(&s->sum, s->xxh);
            if (rc == 0) rc = ls__seed_handoff(logs, prefix, &m, &s->info, err, errlen);
            if (rc) ls__snap_direct_end(s, true);
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
    s->xxh = opts->xxh;
    uint64_t t0 = ls_mono_ns();
    int rc = take(s, opts, err, errlen);
    s->info.xxh = s->xxh;
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
        if (s->direct && (s->failed = ls__snap_direct_finish(s)) != 0) return s->failed;
        return 0;
    }
    if (s->direct) {
        if ((s->failed = ls__snap_direct_read(s, buf, n)) != 0) return s->failed;
    } else {
        ssize_t got = ls_pread_full(s->fd, buf, n, (off_t) s->offset);
        if (got != (ssize_t) n) {
            s->failed = got < 0 ? (int) got : LS_EIO; /* the local copy shrank: never send less */
            return s->failed;
        }
    }
    if (!s->spilled) ls__seed_sum_update(&s->sum, buf, n); /* a spill hashed what it wrote */
    if (LS_FAULT("seed.snapshot.corrupt")) ((uint8_t *) buf)[n / 2] ^= 0x5a;
    s->offset += n;
    *len = n;
    return 0;
}

int ls_seed_snapshot_digest(const ls_seed_snapshot_t *s, uint8_t out[LS_DIGEST_SIZE])
{
    if (s->failed || s->offset != s->info.total_bytes || s->direct) return LS_ESTATE;
    ls__seed_sum_peek(&s->sum, out);
    return 0;
}

void ls_seed_snapshot_free(ls_seed_snapshot_t *s)
{
    if (!s) return;
    if (s->env) ls__snap_direct_end(s, true);
    if (s->fd >= 0) close(s->fd);
    ls__seed_sum_free(&s->sum);
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
