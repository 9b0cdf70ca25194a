/* copy: the shadow of the active's open generation, written by block mode's BLOCK frames (see
 * copy.h, "block mode", and docs/BLOCKMODE.md). The shadow only ever holds bytes the active made
 * durable, in order; what is acknowledged was fdatasynced first. The closed generation is
 * received as any other (recv.c), its head possibly taken from the shadow (GEN_TAIL,
 * shadow_tail.c: the .part a hard link of the shadow's file, the head's checks run as its bytes
 * were acknowledged, or read back; a copy where no link can be made), and the shadow deleted once
 * it is held: the whole file is checked against the trailer and the sender's digest, so a shadow
 * that is behind, torn or wrong cannot make it differ from the active's. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy/copy_int.h"

/* Closes the shadow; unlink_it: deletes it too, made durable when sync_dir (a deletion that is
 * not durable may be undone by a crash: harmless for the shadow of a held generation, which the
 * next stream deletes again, or when a create and its fsync of shadow/ follow at once). */
static bool forget(ls_copy_t *c, bool unlink_it, bool sync_dir)
{
    bool removed = false;
    if (c->shf.fd >= 0) close(c->shf.fd);
    if (unlink_it && c->shf.generation) {
        removed = unlink(c->shf.path) == 0;
        if (sync_dir) ls_fsync_dir(c->shadow_dir);
    }
    c->shf.fd = -1;
    c->shf.generation = c->shf.size = c->shf.lsn = c->shf.synced = c->shf.synced_lsn = 0;
    c->shf.prepared = 0;
    c->shf.epoch = 0;
    c->shf.path[0] = '\0';
    c->shf.hashing = c->shf.dir_unsynced = false;
    return removed;
}

void ls__copy_shadow_close(ls_copy_t *c)
{
    if (c->shf.fd >= 0) close(c->shf.fd);
    c->shf.fd = -1;
    c->shf.hashing = false;
    ls_sha256_free(c->shf.sha);
    ls_seal_free(c->shf.seal);
    ls_gen_stream_free(c->shf.stream);
    c->shf.sha = NULL;
    c->shf.seal = NULL;
    c->shf.stream = NULL;
}

/* A new shadow of (epoch, gen): the closed generation's checks start at byte 0, against what the
 * held chain says it must be (the same expectations recv_begin fixes; compared again at GEN_TAIL).
 * Not while a receive still reads the expectations of the last one. */
static void hash_start(ls_copy_t *c, uint32_t epoch, uint64_t gen)
{
    ls__copy_shfile_t *f = &c->shf;
    f->hashing = false;
    if (f->ex_lent || (!f->stream && !(f->stream = ls_gen_stream_new())) ||
        (!f->seal && !(f->seal = ls_seal_new())) || (!f->sha && !(f->sha = ls_sha256_new())))
        return; /* GEN_TAIL reads the head back instead */
    pthread_mutex_lock(&c->mu);
    ls__copy_expect(c, epoch, gen, &f->x);
    pthread_mutex_unlock(&c->mu);
    f->ex = (ls_gen_expect_t){.dbid = f->x.check_dbid ? f->x.dbid : NULL,
                              .epoch = epoch,
                              .generation = gen,
                              .first_lsn = f->x.first_lsn,
                              .prev_digest = f->x.prev,
                              .known_digest = c->rx.digest};
    ls_sha256_reset(f->sha);
    ls_seal_reset(f->seal);
    ls_gen_stream_begin(f->stream, &f->ex, 0);
    f->hashed = 0;
    f->hashing = true;
}

/* Feeds the shadow's bytes [hashed, size) to its checks (read back from the page cache, after
 * the acknowledgement: not in series before it). A shadow is always below the trailer. */
void ls__copy_shadow_hash_more(ls_copy_t *c)
{
    ls__copy_shfile_t *f = &c->shf;
    uint8_t buf[64 * 1024];
    while (f->hashing && f->hashed < f->size) {
        size_t n = (size_t) LS_MIN((uint64_t) sizeof(buf), f->size - f->hashed);
        if (pread(f->fd, buf, n, (off_t) f->hashed) != (ssize_t) n) {
            f->hashing = false; /* GEN_TAIL reads the head back and says what is wrong */
            return;
        }
        ls_sha256_update(f->sha, buf, n);
        ls_seal_update(f->seal, buf, n);
        ls_gen_stream_feed(f->stream, buf, n, NULL, NULL); /* a failure sticks: the verdict */
        f->hashed += n;
    }
}

void ls__copy_shadow_cut(ls_copy_t *c)
{
    if (c->shf.fd >= 0 && c->shf.generation == c->rx.generation && c->shf.epoch == c->rx.epoch &&
        ftruncate(c->shf.fd, (off_t) c->shf.size) != 0)
        LS_LOGW("copy", "%s: cannot cut the shadow %s back to %llu bytes: %s", c->dir, c->shf.path,
                (unsigned long long) c->shf.size, strerror(errno));
}

/* The generation the shadow may be of: the one after the last held, and the held epoch. */
static void wanted(ls_copy_t *c, uint64_t *gen, uint32_t *epoch, bool *failed)
{
    pthread_mutex_lock(&c->mu);
    *gen = c->held_gen + 1;
    *epoch = c->held_epoch;
    *failed = c->state == LS_COPY_FAILED;
    pthread_mutex_unlock(&c->mu);
}

/* Takes path as the shadow of (epoch, gen) when its bytes are a valid open generation of this
 * copy's chain: cut to the last COMMIT (a torn tail after a crash) and synced (always). False: it
 * is not (the caller replaces it). */
static bool adopt(ls_copy_t *c, const char *path, uint32_t epoch, uint64_t gen)
{
    ls_gen_expect_t x = {.epoch = epoch, .generation = gen, .allow_open = true};
    pthread_mutex_lock(&c->mu);
    uint8_t prev[LS_DIGEST_SIZE], dbid[LS_DBID_LEN];
    bool have_dbid = c->have_dbid, have_prev = c->held_gen > 0;
    memcpy(prev, c->held_digest, sizeof(prev));
    memcpy(dbid, c->dbid, sizeof(dbid));
    pthread_mutex_unlock(&c->mu);
    if (have_dbid) x.dbid = dbid;
    if (have_prev) x.prev_digest = prev;
    ls_gen_info_t info;
    ls_gen_verdict_t v;
    memset(&info, 0, sizeof(info));
    /* A shadow may have grown the closed generation's tail and trailer (its file was the .part
     * of GEN_TAIL, ls_copy_recv_begin_tail) before a crash: cut to its last COMMIT like a torn
     * tail, it is again the open generation's bytes. */
    if (ls_gen_scan_file(path, &x, NULL, NULL, &info, &v) != 0 || !info.header_ok) {
        LS_LOGI("copy", "%s: shadow %s replaced: %s", c->dir, path,
                v.msg[0] ? v.msg : "not an open generation");
        return false;
    }
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    bool ok = fstat(fd, &st) == 0;
    if (ok && (uint64_t) st.st_size > info.commit_end) /* a torn or unfinished tail */
        ok = ftruncate(fd, (off_t) info.commit_end) == 0;
    /* Synced even when nothing was cut: a daemon killed between a batch's write and its
     * fdatasync left bytes in the page cache only, which count as durable from here on (the
     * RESUME offset, BLOCK_ACK). */
    if (ok) ok = !LS_FAULT("copy.shadow.adopt_sync") && ls_fdatasync(fd) == 0;
    if (!ok) {
        close(fd);
        return false;
    }
    c->shf.fd = fd;
    c->shf.epoch = epoch;
    c->shf.generation = gen;
    c->shf.size = c->shf.synced = info.commit_end;
    c->shf.lsn = c->shf.synced_lsn = info.commit_lsn;
    ls_msgf(c->shf.path, sizeof(c->shf.path), "%s", path);
    LS_LOGI("copy", "%s: shadow of generation %llu taken up again: %llu bytes through LSN %llu",
            c->dir, (unsigned long long) gen, (unsigned long long) c->shf.size,
            (unsigned long long) c->shf.lsn);
    return true;
}

/* Deletes the shadows in shadow/ other than keep (a name, or NULL) whose generation is <= upto;
 * files that are not named as generations (the activation's marker) stay. sync_dir: as forget. */
static bool delete_shadows(ls_copy_t *c, const char *keep, uint64_t upto, bool sync_dir)
{
    DIR *d = opendir(c->shadow_dir);
    if (!d) return false;
    bool removed = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint32_t epoch;
        uint64_t gen;
        if (ls_gen_name_parse(e->d_name, c->prefix, &epoch, &gen) != 0 || gen > upto ||
            (keep && !strcmp(e->d_name, keep)))
            continue;
        char path[LS__COPY_PATH_MAX];
        ls_msgf(path, sizeof(path), "%s/%s", c->shadow_dir, e->d_name);
        LS_LOGI("copy", "%s: shadow %s deleted (%s)", c->dir, e->d_name,
                keep ? "block mode streams another generation now" : "its generation is held");
        unlink(path);
        removed = true;
    }
    closedir(d);
    if (removed && sync_dir) ls_fsync_dir(c->shadow_dir);
    return removed;
}

/* The new shadow's file at shf.path: a file of the copy's pool when one is ready (its blocks
 * allocated, written and synced: the BLOCKs below its size overwrite them, so a batch's
 * fdatasync writes data only, with no block allocation or size change to commit; docs/BLOCKMODE.md
 * "The shadow over prepared blocks"), else a bare one of the pool, else a new file. The pool file
 * keeps its size: the valid bytes are shf.size, never the file's size (zeros, or a recycled log's
 * old bytes, lie past them: the take-up after a crash finds the end by the records' checksums and
 * LSNs, GEN_TAIL cuts the file to the closed size, the activation's scan stops at them). Its name
 * comes by rename; the first fdatasync's fsync of shadow/ makes it durable (dir_unsynced). */
static int make_file(ls_copy_t *c)
{
    int fd = -1;
    uint64_t have = 0;
    c->shf.prepared = 0;
    if (ls_prealloc_take(c->pool, c->shf.path, &fd, &have) == 0) {
        close(fd); /* opened write-only; the shadow is read back too */
        c->shf.fd = open(c->shf.path, O_RDWR | O_CLOEXEC);
        if (c->shf.fd >= 0) {
            c->shf.prepared = have;
            return 0;
        }
        unlink(c->shf.path);
    }
    c->shf.fd = open(c->shf.path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    return c->shf.fd >= 0 ? 0 : errno == ENOSPC ? LS_ENOSPC : LS_EIO;
}

/* Opens the shadow of (epoch, gen): the one open already, the file left by an earlier run (cut
 * to its last transaction), or a new one; any shadow of another generation or epoch goes (it
 * can never be finished: its closed generation comes whole). The deletions are made durable by
 * the new shadow's fsync of shadow/, one for all (at a roll: the held generation's shadow goes,
 * the next one's comes: one fsync of shadow/ for both), done right after the first fdatasync of
 * its bytes and before their acknowledgement (dir_unsynced); when an earlier run's shadow is
 * taken up instead, shadow/ is synced for them alone, at once. */
int ls__copy_shadow_open(ls_copy_t *c, uint32_t epoch, uint64_t gen, char *err, size_t errlen)
{
    if (c->shf.generation == gen && c->shf.epoch == epoch && c->shf.fd >= 0) return 0;
    bool removed = forget(c, true, false);
    char name[LS_GEN_NAME_MAX], path[LS__COPY_PATH_MAX];
    int rc = ls_mkdir_p(c->shadow_dir);
    if (rc == 0) rc = ls_gen_name(name, sizeof(name), c->prefix, epoch, gen);
    if (rc == 0) {
        removed |= delete_shadows(c, name, UINT64_MAX, false);
        ls_msgf(path, sizeof(path), "%s/%s", c->shadow_dir, name);
        if (access(path, F_OK) == 0 && adopt(c, path, epoch, gen)) {
            if (removed) ls_fsync_dir(c->shadow_dir);
            return 0;
        }
        ls_msgf(c->shf.path, sizeof(c->shf.path), "%s", path);
        rc = make_file(c);
    }
    if (rc) {
        ls_msgf(err, errlen, "copy %s: cannot create the shadow of generation %llu: %s", c->dir,
                (unsigned long long) gen, ls_strerror(rc));
        forget(c, false, false);
        return rc;
    }
    c->shf.epoch = epoch;
    c->shf.generation = gen;
    c->shf.size = c->shf.lsn = c->shf.synced = c->shf.synced_lsn = 0;
    c->shf.dir_unsynced = true; /* synced after the file's first fdatasync, before its ack */
    hash_start(c, epoch, gen);
    return 0;
}

int ls_copy_shadow_append(ls_copy_t *c, uint32_t epoch, uint64_t gen, uint64_t offset,
                          const void *data, size_t len, uint64_t durable_lsn, char *err,
                          size_t errlen)
{
    uint64_t want;
    uint32_t held_epoch;
    bool failed;
    wanted(c, &want, &held_epoch, &failed);
    if (failed || gen != want || epoch < held_epoch) {
        ls_msgf(err, errlen,
                "copy %s: BLOCK of generation %llu (epoch %u) refused: the copy %s generation "
                "%llu of epoch %u or later",
                c->dir, (unsigned long long) gen, epoch, failed ? "failed; it wanted" : "wants",
                (unsigned long long) want, held_epoch);
        return LS_ESTATE;
    }
    int rc = ls__copy_shadow_open(c, epoch, gen, err, errlen);
    if (rc) return rc;
    if (offset > c->shf.size) {
        ls_msgf(err, errlen,
                "copy %s: BLOCK at offset %llu of generation %llu leaves a gap: the shadow holds "
                "%llu bytes",
                c->dir, (unsigned long long) offset, (unsigned long long) gen,
                (unsigned long long) c->shf.size);
        return LS_ESTATE;
    }
    if (offset + len > c->shf.size) { /* what it holds already is not written again */
        size_t skip = (size_t) (c->shf.size - offset);
        rc = ls_pwrite_full(c->shf.fd, (const uint8_t *) data + skip, len - skip,
                            (off_t) c->shf.size);
        if (rc) {
            ls_msgf(err, errlen, "copy %s: cannot write the shadow %s at %llu: %s", c->dir,
                    c->shf.path, (unsigned long long) c->shf.size, ls_strerror(rc));
            forget(c, true, true); /* the closed generation comes whole anyway */
            return rc;
        }
        c->shf.size = offset + len;
    }
    if (durable_lsn > c->shf.lsn) c->shf.lsn = durable_lsn;
    return 0;
}

int ls_copy_shadow_sync_deferred(ls_copy_t *c, ls_copy_shadow_t *out, bool *due, char *err,
                                 size_t errlen)
{
    *due = false;
    if (c->shf.generation && c->shf.size > c->shf.synced) {
        uint64_t t0 = ls_mono_ns();
        int rc = LS_FAULT("copy.shadow.before_fsync") ? LS_EIO : ls_fdatasync(c->shf.fd);
        c->shf.sync_end_ns = ls_mono_ns();
        c->shf.sync_ns = c->shf.sync_end_ns - t0;
        if (rc) {
            ls_msgf(err, errlen, "copy %s: cannot sync the shadow %s: %s", c->dir, c->shf.path,
                    ls_strerror(rc));
            forget(c, true, true);
            ls_copy_shadow_info(c, out);
            return rc;
        }
        /* A new shadow's name (and the deletions its creation made) become durable here, after
         * its bytes and before anything is acknowledged: on a journaling file system the first
         * fdatasync has committed them already, so this costs no second journal commit. */
        if (c->shf.dir_unsynced && (rc = ls_fsync_dir(c->shadow_dir)) != 0) {
            ls_msgf(err, errlen, "copy %s: cannot sync the directory of the shadow %s: %s", c->dir,
                    c->shf.path, ls_strerror(rc));
            forget(c, true, true);
            ls_copy_shadow_info(c, out);
            return rc;
        }
        c->shf.dir_unsynced = false;
        c->shf.synced = c->shf.size;
        c->shf.synced_lsn = c->shf.lsn;
        LS_FAULT("copy.shadow.after_fsync");
        *due = true;
    }
    if (c->shf.generation && c->shf.size == c->shf.synced && c->shf.lsn > c->shf.synced_lsn)
        c->shf.synced_lsn = c->shf.lsn; /* bytes durable already: a later position in them */
    ls_copy_shadow_info(c, out);
    return 0;
}

bool ls_copy_shadow_quick(ls_copy_t *c, uint32_t epoch, uint64_t gen, uint64_t offset, size_t len,
                          uint64_t sync_ns)
{
    const ls__copy_shfile_t *f = &c->shf;
    if (f->fd < 0 || f->generation != gen || f->epoch != epoch || f->dir_unsynced ||
        offset > f->size || len > LS_COPY_SHADOW_QUICK_MAX || f->sync_ns >= sync_ns)
        return false;
    /* BLOCKs that come faster than a sync takes are better taken by the receiver thread, which
     * syncs while the loop goes on reading (and acknowledging): only a BLOCK that finds the last
     * sync over for at least as long as it took. */
    return sync_ns == UINT64_MAX || ls_mono_ns() - f->sync_end_ns >= f->sync_ns;
}

void ls_copy_shadow_report(ls_copy_t *c)
{
    if (c->shf.generation && c->shf.synced)
        ls_copy_shadow_durable(c, c->shf.epoch, c->shf.generation, c->shf.synced,
                               c->shf.synced_lsn);
    ls__copy_shadow_hash_more(c);
}

void ls_copy_shadow_report_written(ls_copy_t *c)
{
    if (c->shf.generation && c->shf.size > c->shf.synced)
        ls_copy_shadow_written(c, c->shf.epoch, c->shf.generation, c->shf.size);
}

int ls_copy_shadow_sync(ls_copy_t *c, ls_copy_shadow_t *out, char *err, size_t errlen)
{
    bool due = false;
    int rc = ls_copy_shadow_sync_deferred(c, out, &due, err, errlen);
    if (due) ls_copy_shadow_report(c);
    return rc;
}

int ls_copy_shadow_write(ls_copy_t *c, uint32_t epoch, uint64_t gen, uint64_t offset,
                         const void *data, size_t len, uint64_t durable_lsn, ls_copy_shadow_t *out,
                         char *err, size_t errlen)
{
    int rc = ls_copy_shadow_append(c, epoch, gen, offset, data, len, durable_lsn, err, errlen);
    if (rc) return rc;
    return ls_copy_shadow_sync(c, out, err, errlen);
}

void ls_copy_shadow_drop(ls_copy_t *c, uint64_t upto)
{
    /* Held generations' shadows: their deletion need not be durable (a crash that undoes it
     * leaves a shadow of a held generation, which the next stream deletes again), so the roll's
     * hand-off does not wait for an fsync of shadow/ here. A shadow dropped because it is not the
     * active's log (its generation not held) is deleted durably. */
    pthread_mutex_lock(&c->mu);
    bool held = c->held_gen >= upto;
    pthread_mutex_unlock(&c->mu);
    if (c->shf.generation && c->shf.generation <= upto) forget(c, true, !held);
    delete_shadows(c, NULL, upto, !held); /* one left by an earlier run (a crash before its drop) */
}

void ls_copy_shadow_info(ls_copy_t *c, ls_copy_shadow_t *out)
{
    out->epoch = c->shf.epoch;
    out->generation = c->shf.generation;
    out->size = c->shf.synced;
    out->durable_lsn = c->shf.synced_lsn;
}
