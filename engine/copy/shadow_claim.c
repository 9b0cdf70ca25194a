/* copy: at open, block mode's shadows taken in place from the pool get their name in shadow/ back
 * (docs/BLOCKMODE.md, "The shadow in place"). A shadow made from a ready pool file keeps the
 * file's durable name pool/ready-<n> and gets shadow/<name> as a link that is never synced, so
 * after a crash the shadow may be named in pool/ only, or in both. Before the pool opens (it
 * would count every ready-<n> as ready and hand it out to be overwritten), each ready file is
 * read: one whose header and records are an open generation of this copy's chain past the held
 * one is a shadow and goes to shadow/ (a link, shadow/ fsynced, then the pool name unlinked and
 * pool/ fsynced: at every step the file has a durable name); of two files of one generation the
 * one with more complete transactions stays. A ready file that is not a shadow but has another
 * name too (a held generation's log, or a shadow's old name) leaves the pool: its bytes are that
 * file's. Everything else is an ordinary pool file (zeros, a pruned log's old bytes, a shadow
 * whose header never reached the disk). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy/copy_int.h"

/* The end of the complete transactions of path as the shadow of (epoch, gen), or 0 when it is
 * not one (the take-up's expectations, as adopt in shadow.c). */
static uint64_t shadow_end(ls_copy_t *c, const char *path, uint32_t epoch, uint64_t gen)
{
    ls_gen_expect_t x = {.epoch = epoch, .generation = gen, .allow_open = true};
    uint8_t prev[LS_DIGEST_SIZE], dbid[LS_DBID_LEN];
    pthread_mutex_lock(&c->mu);
    bool have_dbid = c->have_dbid, have_prev = c->held_gen > 0;
    memcpy(prev, c->held_digest, sizeof(prev));
    memcpy(dbid, c->dbid, sizeof(dbid));
    pthread_mutex_unlock(&c->mu);
    if (have_dbid) x.dbid = dbid;
    if (have_prev) x.prev_digest = prev;
    ls_gen_info_t info;
    ls_gen_verdict_t v;
    memset(&info, 0, sizeof(info));
    if (ls_gen_scan_file(path, &x, NULL, NULL, &info, &v) != 0 || !info.header_ok) return 0;
    return LS_MAX(info.commit_end, (uint64_t) LS_GEN_HEADER_SIZE);
}

/* The header of the file at path when it names a generation past the held one: *epoch, *gen. */
static bool names_open_gen(ls_copy_t *c, const char *path, uint32_t *epoch, uint64_t *gen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    uint8_t buf[LS_GEN_HEADER_SIZE];
    ssize_t n = pread(fd, buf, sizeof(buf), 0);
    close(fd);
    ls_gen_header_t h;
    if (n != (ssize_t) sizeof(buf) || ls_gen_header_decode(buf, sizeof(buf), &h) != 0) return false;
    pthread_mutex_lock(&c->mu);
    bool ok =
        h.generation > c->held_gen && (!c->have_dbid || !memcmp(h.dbid, c->dbid, LS_DBID_LEN));
    pthread_mutex_unlock(&c->mu);
    *epoch = h.epoch;
    *gen = h.generation;
    return ok;
}

/* The pool file at path, a shadow of (epoch, gen) with complete bytes up to end: named dst in
 * shadow/ (durably) unless a better one is there. True: the pool's name may go; false: it stays
 * (an error, logged). */
static bool claim_one(ls_copy_t *c, const char *path, const char *dst, uint32_t epoch, uint64_t gen,
                      uint64_t end)
{
    struct stat ps, ds;
    if (stat(path, &ps) != 0) return false;
    if (stat(dst, &ds) == 0 && !(ds.st_dev == ps.st_dev && ds.st_ino == ps.st_ino)) {
        uint64_t other = shadow_end(c, dst, epoch, gen);
        LS_LOGW("copy",
                "%s: two shadows of generation %llu: %s (%llu bytes complete) and %s (%llu)"
                "; the %s one is kept",
                c->dir, (unsigned long long) gen, path, (unsigned long long) end, dst,
                (unsigned long long) other, end > other ? "first" : "second");
        if (end <= other) return true; /* the pool's copy goes */
        if (unlink(dst) != 0) return false;
    }
    if (stat(dst, &ds) != 0 && link(path, dst) != 0) {
        LS_LOGW("copy", "%s: cannot link the shadow %s as %s: %s", c->dir, path, dst,
                strerror(errno));
        return false;
    }
    if (ls_fsync_dir(c->shadow_dir) != 0) return false; /* before the pool's name goes */
    LS_LOGI("copy", "%s: the shadow of generation %llu (epoch %u) found in the pool as %s", c->dir,
            (unsigned long long) gen, epoch, path);
    return true;
}

int ls__copy_shadow_claim(ls_copy_t *c, char *err, size_t errlen)
{
    DIR *d = opendir(c->pool_dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        return ls_errf(err, errlen, LS_EIO, "copy %s: cannot list %s: %s", c->dir, c->pool_dir,
                       strerror(errno));
    }
    bool removed = false;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        unsigned long long n;
        char extra;
        if (sscanf(e->d_name, "ready-%llu%c", &n, &extra) != 1) continue;
        char path[LS__COPY_PATH_MAX + 300], dst[LS__COPY_PATH_MAX];
        ls_msgf(path, sizeof(path), "%s/%s", c->pool_dir, e->d_name);
        uint32_t epoch = 0;
        uint64_t gen = 0, end = 0;
        if (names_open_gen(c, path, &epoch, &gen)) end = shadow_end(c, path, epoch, gen);
        if (end) {
            ls__copy_path(c, dst, c->shadow_dir, epoch, gen);
            if (!claim_one(c, path, dst, epoch, gen, end)) continue;
        } else {
            struct stat st;
            if (stat(path, &st) != 0 || st.st_nlink <= 1) continue; /* a pool file */
            LS_LOGI("copy", "%s: the pool file %s has another name: it leaves the pool", c->dir,
                    path);
        }
        if (unlink(path) == 0) removed = true;
    }
    closedir(d);
    int rc = removed ? ls_fsync_dir(c->pool_dir) : 0;
    if (rc)
        return ls_errf(err, errlen, rc, "copy %s: cannot sync %s: %s", c->dir, c->pool_dir,
                       ls_strerror(rc));
    return 0;
}
