/*
 * The passive side of a seed: the stream is written beside the copy, in <copy>.seed-new/
 * (store/data.mdb, empty inspect/ and logs/), hashed as it arrives, verified whole, then the new
 * store is opened, checked and given the hand-off meta record:
 *
 *   dbid, epoch N's, generation N, lsn L, txid (the snapshot's), digest_generation N-1,
 *   digest = digest of N-1, checkpoint_lsn L, applied_generations 0
 *
 * so engine/copy's position logic holds N-1 as the last complete generation, asks for N, checks
 * that N starts at or before L + 1 and replays only its records with LSN > L (replay skips
 * LSN <= meta.lsn per record). An empty snapshot (L = 0) keeps generation and
 * digest_generation 0: the copy asks for generation 1. The old copy is not opened, read or
 * written here; swap.c installs the new one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "seed/seed_int.h"

/* Writeback of the received bytes is started every INSTALL_FLUSH bytes (sync_file_range, which
 * does not wait), so the fdatasync at the end finds little left to write. */
#define INSTALL_FLUSH (4u << 20)

typedef enum {
    ST_RECEIVING = 0, /* chunks arriving */
    ST_VERIFIED,      /* end succeeded: the new copy is complete and checked */
    ST_COMMITTED      /* swapped in */
} stage_t;

struct ls_seed_install {
    ls__seed_paths_t p;                     /* <copy> and its siblings */
    char store_dir[LS__SEED_PATH_MAX + 16]; /* <copy>.seed-new/store */
    ls_seed_info_t info;                    /* the announced stream */
    uint64_t map_size;  /* map size to open the new store with, bytes (0: file's) */
    int fd;             /* <copy>.seed-new/store/data.mdb; -1 when closed */
    ls__seed_sum_t sum; /* running check of the bytes received (info.xxh: XXH3-128) */
    uint64_t got;       /* bytes received (contiguous from 0) */
    uint64_t flushed;   /* writeback started up to here (sync_file_range) */
    stage_t stage;      /* where the install stands */
    int failed;         /* sticky error (0: none) */
    bool created;       /* we created <copy>.seed-new (free removes it) */
    bool finished;      /* committed, and the replaced copy and the marker removed */
    /* an incremental resync (info.resync): the stream goes to <copy>/resync/ */
    bool resync;
    char prefix[LS_GEN_PREFIX_MAX + 1];
    char rdir[LS__SEED_PATH_MAX + 16];    /* <copy>/resync */
    char rmarker[LS__SEED_PATH_MAX + 32]; /* <copy>/resync/READY */
    char rstream[LS__SEED_PATH_MAX + 32]; /* <copy>/resync/stream */
};

/* What makes a copy "hold data": a store file or any generation file. */
static bool holds_data(const ls__seed_paths_t *p, char *what, size_t len)
{
    char path[LS__SEED_PATH_MAX + 32];
    struct stat st;
    snprintf(path, sizeof(path), "%s/store/data.mdb", p->copy);
    if (stat(path, &st) == 0 && st.st_size > 0) {
        ls_msgf(what, len, "a store of %lld bytes", (long long) st.st_size);
        return true;
    }
    const char *sub[] = {"logs", "inspect"};
    for (size_t i = 0; i < LS_ARRAY_SIZE(sub); i++) {
        snprintf(path, sizeof(path), "%s/%s", p->copy, sub[i]);
        if (ls__seed_dir_nonempty(path)) {
            ls_msgf(what, len, "generation files in %s/", sub[i]);
            return true;
        }
    }
    return false;
}

bool ls_seed_copy_holds_data(const char *copy_dir, char *what, size_t len)
{
    ls__seed_paths_t p;
    return ls__seed_paths(copy_dir, &p) == 0 && holds_data(&p, what, len);
}

/* Checks the options, the announced stream and what lies around the copy. */
/* The largest snapshot stream accepted, bytes (1 PiB): far beyond any LMDB store here, and small
 * enough that the space and map-size sums on total_bytes cannot wrap. */
#define SEED_TOTAL_MAX (1ull << 50)

static int admit(const ls_seed_install_options_t *o, const ls_seed_info_t *info,
                 const ls__seed_paths_t *p, char *err, size_t errlen)
{
    static const uint8_t zero[LS_DBID_LEN];
    char what[128];
    struct statvfs vf;
    if (memcmp(info->dbid, zero, LS_DBID_LEN) == 0 || info->total_bytes == 0 ||
        (info->last_lsn && (info->generation == 0 || info->epoch == 0))) {
        ls_msgf(err, errlen, "seed of %s: the announced snapshot is malformed", p->copy);
        return LS_EINVAL;
    }
    if (o->dbid && memcmp(o->dbid, info->dbid, LS_DBID_LEN) != 0) {
        ls_msgf(err, errlen, "seed of %s: the snapshot is of another database", p->copy);
        return LS_EDBID;
    }
    if (ls__seed_exists(p->new_dir) || ls__seed_exists(p->old_dir) ||
        ls__seed_exists(p->copy_marker)) {
        ls_msgf(err, errlen,
                "seed of %s: another seed of this copy is under way or was interrupted "
                "(%s or %s exists; the daemon's start-up recovery finishes or removes it)",
                p->copy, p->new_dir, p->old_dir);
        return LS_EBUSY;
    }
    if (holds_data(p, what, sizeof(what)) && !o->delete_existing && !o->copy_failed) {
        ls_msgf(err, errlen,
                "copy %s already holds %s: a seed would replace it; seed with "
                "--delete-existing (delete_existing) to do so, or only once the copy is "
                "Failed or Diverged",
                p->copy, what);
        return LS_EEXIST;
    }
    if (info->total_bytes > SEED_TOTAL_MAX) { /* the sums below must not wrap */
        ls_msgf(err, errlen,
                "seed of %s: %llu bytes announced, more than a snapshot may hold (%llu)", p->copy,
                (unsigned long long) info->total_bytes, (unsigned long long) SEED_TOTAL_MAX);
        return LS_ETOOBIG;
    }
    if (o->max_bytes && info->total_bytes > o->max_bytes) {
        ls_msgf(err, errlen, "seed of %s: %llu bytes announced, more than the %llu allowed",
                p->copy, (unsigned long long) info->total_bytes, (unsigned long long) o->max_bytes);
        return LS_ETOOBIG;
    }
    if (statvfs(p->parent, &vf) == 0 &&
        (uint64_t) vf.f_bavail * vf.f_frsize < info->total_bytes + (1u << 20)) {
        ls_msgf(err, errlen, "seed of %s: %llu bytes free in %s, the snapshot needs %llu", p->copy,
                (unsigned long long) vf.f_bavail * vf.f_frsize, p->parent,
                (unsigned long long) info->total_bytes);
        return LS_ENOSPC;
    }
    return 0;
}

/* Creates <copy>.seed-new with store/, inspect/, logs/ and the empty data file. */
static int create_new(ls_seed_install_t *in, char *err, size_t errlen)
{
    int rc = ls_mkdir_p(in->p.parent);
    if (rc == 0 && mkdir(in->p.new_dir, 0700) != 0)
        rc = errno == EEXIST ? LS_EBUSY : ls_err_from_errno(errno);
    if (rc) {
        ls_msgf(err, errlen, "%s: cannot create: %s", in->p.new_dir, ls_strerror(rc));
        return rc;
    }
    in->created = true;
    const char *sub[] = {"/store", "/inspect", "/logs"};
    char path[LS__SEED_PATH_MAX + 32];
    for (size_t i = 0; rc == 0 && i < LS_ARRAY_SIZE(sub); i++) {
        snprintf(path, sizeof(path), "%s%s", in->p.new_dir, sub[i]);
        if (mkdir(path, 0700) != 0) rc = ls_err_from_errno(errno);
    }
    snprintf(path, sizeof(path), "%s/data.mdb", in->store_dir);
    if (rc == 0) in->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (rc == 0 && in->fd < 0) rc = ls_err_from_errno(errno);
    if (rc == 0) rc = ls_fsync_dir(in->p.new_dir);
    if (rc == 0) rc = ls_fsync_dir(in->p.parent);
    if (rc) ls_msgf(err, errlen, "%s: cannot prepare: %s", in->p.new_dir, ls_strerror(rc));
    return rc;
}

/* A resync: the copy's store must be there, no seed or resync of it under way. */
static int admit_resync(const ls_seed_install_options_t *o, const ls_seed_info_t *info,
                        ls_seed_install_t *in, char *err, size_t errlen)
{
    static const uint8_t zero[LS_DBID_LEN];
    const ls__seed_paths_t *p = &in->p;
    char path[LS__SEED_PATH_MAX + 32];
    if (memcmp(info->dbid, zero, LS_DBID_LEN) == 0 || info->generation == 0 || info->epoch == 0)
        return ls_errf(err, errlen, LS_EINVAL, "resync of %s: the announced stream is malformed",
                       p->copy);
    if (o->dbid && memcmp(o->dbid, info->dbid, LS_DBID_LEN) != 0)
        return ls_errf(err, errlen, LS_EDBID, "resync of %s: the stream is of another database",
                       p->copy);
    if (info->total_bytes > SEED_TOTAL_MAX || (o->max_bytes && info->total_bytes > o->max_bytes))
        return ls_errf(err, errlen, LS_ETOOBIG, "resync of %s: %llu bytes announced, too many",
                       p->copy, (unsigned long long) info->total_bytes);
    struct statvfs vf;
    if (statvfs(p->copy, &vf) == 0 &&
        (uint64_t) vf.f_bavail * vf.f_frsize < info->total_bytes + (1u << 20))
        return ls_errf(err, errlen, LS_ENOSPC,
                       "resync of %s: %llu bytes free there, the stream needs %llu", p->copy,
                       (unsigned long long) vf.f_bavail * vf.f_frsize,
                       (unsigned long long) info->total_bytes);
    snprintf(path, sizeof(path), "%s/store/data.mdb", p->copy);
    if (!ls__seed_exists(path))
        return ls_errf(err, errlen, LS_ENOENT,
                       "resync of %s: it has no store to resync (%s): seed it instead", p->copy,
                       path);
    if (ls__seed_exists(in->rdir) || ls__seed_exists(p->new_dir) || ls__seed_exists(p->old_dir) ||
        ls__seed_exists(p->copy_marker))
        return ls_errf(err, errlen, LS_EBUSY,
                       "resync of %s: a seed or resync of this copy is under way or was "
                       "interrupted (%s or %s exists; the daemon's start-up recovery finishes "
                       "or removes it)",
                       p->copy, in->rdir, p->new_dir);
    return 0;
}

static int create_resync(ls_seed_install_t *in, char *err, size_t errlen)
{
    int rc = mkdir(in->rdir, 0700) == 0 ? 0 : errno == EEXIST ? LS_EBUSY : ls_err_from_errno(errno);
    if (rc == 0) in->created = true;
    if (rc == 0) {
        in->fd = open(in->rstream, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (in->fd < 0) rc = ls_err_from_errno(errno);
    }
    if (rc == 0) rc = ls_fsync_dir(in->rdir);
    if (rc == 0) rc = ls_fsync_dir(in->p.copy);
    if (rc) ls_msgf(err, errlen, "%s: cannot prepare: %s", in->rdir, ls_strerror(rc));
    return rc;
}

int ls_seed_install_begin(const ls_seed_install_options_t *o, const ls_seed_info_t *info,
                          ls_seed_install_t **out, char *err, size_t errlen)
{
    *out = NULL;
    ls_seed_install_t *in = calloc(1, sizeof(*in));
    if (!in) return LS_ENOMEM;
    in->fd = -1;
    int rc = o && info ? ls__seed_paths(o->copy_dir, &in->p) : LS_EINVAL;
    if (rc) ls_msgf(err, errlen, "seed: no or too long copy directory");
    if (rc == 0 && info->resync) {
        in->resync = true;
        in->info = *info;
        snprintf(in->prefix, sizeof(in->prefix), "%.*s", LS_GEN_PREFIX_MAX,
                 o->prefix && *o->prefix ? o->prefix : LS_GEN_PREFIX_DEFAULT);
        snprintf(in->rdir, sizeof(in->rdir), "%s/%s", in->p.copy, LS__RESYNC_DIR);
        snprintf(in->rmarker, sizeof(in->rmarker), "%s/%s", in->rdir, LS__RESYNC_READY);
        snprintf(in->rstream, sizeof(in->rstream), "%s/%s", in->rdir, LS__RESYNC_STREAM);
        snprintf(in->store_dir, sizeof(in->store_dir), "%s", in->rdir); /* what end syncs */
        rc = ls__seed_sum_init(&in->sum, info->xxh);
        if (rc == 0) rc = admit_resync(o, info, in, err, errlen);
        if (rc == 0) rc = create_resync(in, err, errlen);
        if (rc) {
            ls_seed_install_free(in);
            return rc;
        }
        LS_LOGI("seed", "%s: receiving a resync of %llu keys (%llu bytes, lsn %llu) into %s",
                in->p.copy, (unsigned long long) info->keys, (unsigned long long) info->total_bytes,
                (unsigned long long) info->last_lsn, in->rdir);
        *out = in;
        return 0;
    }
    if (rc == 0) rc = admit(o, info, &in->p, err, errlen);
    if (rc == 0) {
        in->info = *info;
        in->map_size = o->store_map_mb << 20;
        snprintf(in->store_dir, sizeof(in->store_dir), "%s/store", in->p.new_dir);
        rc = ls__seed_sum_init(&in->sum, info->xxh);
        if (rc == 0) rc = create_new(in, err, errlen);
    }
    if (rc) {
        ls_seed_install_free(in);
        return rc;
    }
    LS_LOGI("seed", "%s: receiving a snapshot of %llu bytes (lsn %llu, generation %llu) into %s",
            in->p.copy, (unsigned long long) info->total_bytes, (unsigned long long) info->last_lsn,
            (unsigned long long) info->generation, in->p.new_dir);
    *out = in;
    return 0;
}

int ls_seed_install_data(ls_seed_install_t *in, uint64_t offset, const void *data, size_t len,
                         char *err, size_t errlen)
{
    if (in->failed || in->stage != ST_RECEIVING) return LS_ESTATE;
    int rc = 0;
    if (offset != in->got || len == 0 || len > in->info.total_bytes - in->got) {
        ls_msgf(err, errlen,
                "seed of %s: chunk at offset %llu of %zu bytes, expected offset %llu and at "
                "most %llu bytes",
                in->p.copy, (unsigned long long) offset, len, (unsigned long long) in->got,
                (unsigned long long) (in->info.total_bytes - in->got));
        rc = LS_EPROTO;
    } else if ((rc = ls_pwrite_full(in->fd, data, len, (off_t) offset)) != 0) {
        ls_msgf(err, errlen, "%s/data.mdb: write at %llu failed: %s", in->store_dir,
                (unsigned long long) offset, ls_strerror(rc));
    }
    if (rc) return in->failed = rc;
    ls__seed_sum_update(&in->sum, data, len);
    uint64_t before = in->got, half = in->info.total_bytes / 2;
    in->got += len;
    if (in->got - in->flushed >= INSTALL_FLUSH) { /* the disk works while the stream goes on */
        (void) sync_file_range(in->fd, (off_t) in->flushed, (off_t) (in->got - in->flushed),
                               SYNC_FILE_RANGE_WRITE);
        in->flushed = in->got;
    }
    if (before < half && in->got >= half) LS_FAULT("seed.install.half_data");
    return 0;
}

uint64_t ls_seed_install_done(const ls_seed_install_t *in)
{
    return in->got;
}

const char *ls_seed_install_new_dir(const ls_seed_install_t *in)
{
    return in->resync ? NULL : in->p.new_dir;
}

static int noop_apply(void *ctx, ls_store_txn_t *txn)
{
    (void) ctx;
    (void) txn;
    return 0;
}

/* Opens the new store, checks it holds L, writes the hand-off meta record and syncs. */
static int prepare_store(ls_seed_install_t *in, char *err, size_t errlen)
{
    const ls_seed_info_t *i = &in->info;
    /* room past the compacted file, so the meta update (and the first replays) need no growth */
    uint64_t room = i->total_bytes + i->total_bytes / 2 + (64u << 20);
    ls_store_options_t so = {.map_size = LS_MAX(in->map_size, room), .dbid = i->dbid};
    ls_store_t *s = NULL;
    int rc = ls_store_open(in->store_dir, &so, &s, err, errlen);
    if (rc) return rc;
    ls_store_meta_t m;
    ls_store_meta(s, &m);
    if (m.lsn != i->last_lsn) {
        ls_msgf(err, errlen, "%s: the snapshot's meta names lsn %llu, the seed announced %llu",
                in->store_dir, (unsigned long long) m.lsn, (unsigned long long) i->last_lsn);
        rc = LS_ECORRUPT;
    }
    ls_store_meta_t nm = {
        .epoch = i->epoch, .lsn = i->last_lsn, .txid = m.txid, .checkpoint_lsn = i->last_lsn};
    memcpy(nm.dbid, i->dbid, LS_DBID_LEN);
    if (i->last_lsn) {
        nm.generation = i->generation;
        nm.digest_generation = i->generation - 1;
        memcpy(nm.digest, i->prev_digest, LS_DIGEST_SIZE);
    }
    if (rc == 0 && (rc = ls_store_apply(s, noop_apply, NULL, &nm)) != 0)
        ls_msgf(err, errlen, "%s: cannot write the hand-off meta record: %s", in->store_dir,
                ls_strerror(rc));
    if (rc == 0 && (rc = ls_store_sync(s)) != 0)
        ls_msgf(err, errlen, "%s: cannot sync: %s", in->store_dir, ls_strerror(rc));
    ls_store_close(s);
    return rc;
}

/* Size and digest of the whole stream, then the data made durable (a resync's stream) or left
 * to prepare_store's sync (a store). */
static int verify_stream(ls_seed_install_t *in, const uint8_t digest[LS_DIGEST_SIZE], char *err,
                         size_t errlen)
{
    uint8_t got[LS_DIGEST_SIZE];
    char a[2 * LS_DIGEST_SIZE + 1], b[2 * LS_DIGEST_SIZE + 1];
    if (in->got != in->info.total_bytes) {
        ls_msgf(err, errlen, "seed of %s: stream ended at %llu of %llu bytes", in->p.copy,
                (unsigned long long) in->got, (unsigned long long) in->info.total_bytes);
        return LS_ETRUNCATED;
    }
    ls__seed_sum_peek(&in->sum, got);
    if (memcmp(got, digest, LS_DIGEST_SIZE) != 0) {
        ls__seed_sum_hex(&in->sum, got, a);
        ls__seed_sum_hex(&in->sum, digest, b);
        const char *alg = ls__seed_sum_name(&in->sum);
        ls_msgf(err, errlen,
                "seed of %s: seed stream %s mismatch: got %s, SEED_END says %s: "
                "nothing installed",
                in->p.copy, alg, a, b);
        return LS_EDIGEST;
    }
    /* A store's data is made durable by prepare_store's LMDB commit and sync (an fdatasync of
     * the whole file, after the hand-off meta record): one flush instead of two. */
    int rc = in->resync ? ls_fdatasync(in->fd) : 0;
    if (close(in->fd) != 0 && rc == 0) rc = LS_EIO;
    in->fd = -1;
    if (rc == 0) rc = ls_fsync_dir(in->store_dir);
    if (rc) ls_msgf(err, errlen, "%s: cannot sync: %s", in->store_dir, ls_strerror(rc));
    return rc;
}

int ls_seed_install_end(ls_seed_install_t *in, const uint8_t digest[LS_DIGEST_SIZE], char *err,
                        size_t errlen)
{
    if (in->failed || in->stage != ST_RECEIVING) return LS_ESTATE;
    int rc = verify_stream(in, digest, err, errlen);
    uint64_t keys = 0;
    if (rc == 0 && in->resync) { /* every entry well formed, as many as announced */
        rc = ls__seed_resync_walk(in->rstream, NULL, &keys, err, errlen);
        if (rc == 0 && keys != in->info.keys)
            rc = ls_errf(err, errlen, LS_ECORRUPT, "%s: %llu entries, %llu announced", in->rstream,
                         (unsigned long long) keys, (unsigned long long) in->info.keys);
    } else if (rc == 0) {
        rc = prepare_store(in, err, errlen);
    }
    if (rc) return in->failed = rc;
    in->stage = ST_VERIFIED;
    return 0;
}

/* A resync's commit: the marker with the hand-off figures, then the one-transaction apply. */
static int commit_resync(ls_seed_install_t *in, char *err, size_t errlen)
{
    char text[512];
    int n = ls__seed_resync_ready_text(&in->info, text, sizeof(text));
    int rc = ls_write_file_durable(in->rmarker, text, (size_t) n);
    if (rc) {
        ls_msgf(err, errlen, "%s: cannot write: %s", in->rmarker, ls_strerror(rc));
        return in->failed = rc;
    }
    LS_FAULT("seed.resync.before_apply");
    rc = ls__seed_resync_apply(in->p.copy, in->prefix, err, errlen);
    if (rc) return in->failed = rc; /* ls_seed_recover applies it again: the marker is durable */
    in->stage = ST_COMMITTED;
    return 0;
}

int ls_seed_install_swap(ls_seed_install_t *in, char *err, size_t errlen)
{
    if (in->failed || in->stage != ST_VERIFIED) return LS_ESTATE;
    if (in->resync) { /* applied in place: nothing replaced is left to remove */
        int rc = commit_resync(in, err, errlen);
        in->finished = rc == 0;
        return rc;
    }
    char summary[256], hex[2 * LS_DBID_LEN + 1];
    ls_hex(in->info.dbid, LS_DBID_LEN, hex);
    int n = snprintf(
        summary, sizeof(summary), "database %s\nlsn %llu\ngeneration %llu\nepoch %u\nbytes %llu\n",
        hex, (unsigned long long) in->info.last_lsn, (unsigned long long) in->info.generation,
        in->info.epoch, (unsigned long long) in->info.total_bytes);
    int rc = ls_write_file_durable(in->p.new_marker, summary, (size_t) n);
    if (rc) {
        ls_msgf(err, errlen, "%s: cannot write: %s", in->p.new_marker, ls_strerror(rc));
        return in->failed = rc;
    }
    LS_FAULT("seed.install.before_swap");
    rc = ls__seed_swap(&in->p, err, errlen);
    if (rc) return in->failed = rc; /* ls_seed_recover finishes it: the marker is durable */
    in->stage = ST_COMMITTED;
    LS_FAULT("seed.install.after_swap");
    return 0;
}

int ls_seed_install_finish(ls_seed_install_t *in, char *err, size_t errlen)
{
    if (in->failed || in->stage != ST_COMMITTED) return LS_ESTATE;
    if (in->finished) return 0;
    int rc = ls__seed_finish(&in->p, err, errlen);
    if (rc) return in->failed = rc;
    in->finished = true;
    LS_LOGI("seed", "%s: installed the snapshot (lsn %llu); the copy asks for generation %llu",
            in->p.copy, (unsigned long long) in->info.last_lsn,
            (unsigned long long) in->info.generation);
    return 0;
}

int ls_seed_install_commit(ls_seed_install_t *in, char *err, size_t errlen)
{
    int rc = ls_seed_install_swap(in, err, errlen);
    return rc ? rc : ls_seed_install_finish(in, err, errlen);
}

void ls_seed_install_free(ls_seed_install_t *in)
{
    if (!in) return;
    if (in->fd >= 0) close(in->fd);
    ls__seed_sum_free(&in->sum);
    if (in->resync) { /* not committed and not marked: the partial stream goes */
        if (in->created && in->stage != ST_COMMITTED && !ls__seed_exists(in->rmarker) &&
            (ls__seed_rmtree(in->rdir) != 0 || ls_fsync_dir(in->p.copy) != 0))
            LS_LOGW("seed", "%s: cannot remove the unfinished resync", in->rdir);
        free(in);
        return;
    }
    /* not committed and the swap not decided: remove the partial new copy */
    if (in->created && in->stage != ST_COMMITTED && !ls__seed_exists(in->p.new_marker)) {
        if (ls__seed_rmtree(in->p.new_dir) != 0 || ls_fsync_dir(in->p.parent) != 0)
            LS_LOGW("seed", "%s: cannot remove the unfinished new copy", in->p.new_dir);
    }
    free(in);
}
