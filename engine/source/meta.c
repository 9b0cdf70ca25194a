/*
 * source: lazy header + trailer loads, and the figures for lag accounting.
 *
 * A load costs one open, one fstat and two preads (128 + 96 bytes, ls_layout_read_ends_fd); the
 * result is cached in the directory entry until the file leaves the view. The trailer is
 * validated by ls_gen_trailer_decode() (checksum, magic, reserved fields) and its payload length
 * must match the file size. The digest stored there is not recomputed here (that needs the whole
 * file); the reader verifies it before anything ships.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "layout/layout.h"
#include "source/source_int.h"

static int check_header(ls_source_t *src, const ls__src_gen_t *e, const ls_gen_header_t *h,
                        const char *path, char *err, size_t errlen)
{
    if (h->epoch != e->epoch || h->generation != e->generation)
        return ls_errf(err, errlen, LS_ECORRUPT,
                       "%s: header says epoch %u generation %llu, not what its name says", path,
                       h->epoch, (unsigned long long) h->generation);
    if (src->have_dbid && memcmp(src->dbid, h->dbid, LS_DBID_LEN) != 0) {
        char a[2 * LS_DBID_LEN + 1], b[2 * LS_DBID_LEN + 1];
        ls_hex(h->dbid, LS_DBID_LEN, a);
        ls_hex(src->dbid, LS_DBID_LEN, b);
        return ls_errf(err, errlen, LS_EDBID,
                       "%s: database id %s, but the other generations here carry %s", path, a, b);
    }
    return 0;
}

/* Reads (engine/layout) header and trailer from fd and checks what needs no view: the size and
 * the trailer. No lock needed. */
static int read_fd(int fd, const char *path, ls_layout_ends_t *x, char *err, size_t errlen)
{
    int rc = ls_layout_read_ends_fd(fd, path, x, err, errlen);
    if (rc) return rc;
    if (x->size < LS_GEN_HEADER_SIZE + LS_GEN_TRAILER_SIZE || x->size > LS_GEN_HARD_CAP)
        return ls_errf(err, errlen, LS_ECORRUPT, "%s: size %llu is not that of a closed generation",
                       path, (unsigned long long) x->size);
    return 0;
}

/* Checks what read_fd read against e and the view, and caches it in e (src->mu held). */
static int apply(ls_source_t *src, ls__src_gen_t *e, const ls_layout_ends_t *x, const char *path,
                 char *err, size_t errlen)
{
    int rc = check_header(src, e, &x->h, path, err, errlen);
    if (rc) return rc;
    if (!x->closed)
        return ls_errf(err, errlen, LS_ECORRUPT,
                       "%s: no valid trailer at offset %llu: not a closed generation", path,
                       (unsigned long long) (x->size - LS_GEN_TRAILER_SIZE));
    if (!src->have_dbid) {
        memcpy(src->dbid, x->h.dbid, LS_DBID_LEN);
        src->have_dbid = true;
    }
    e->size = x->size;
    e->first_lsn = x->h.first_lsn;
    e->last_lsn = x->t.last_lsn;
    e->close_ns = x->t.close_ns;
    memcpy(e->prev_digest, x->h.prev_digest, LS_DIGEST_SIZE);
    memcpy(e->digest, x->t.digest, LS_DIGEST_SIZE);
    e->loaded = true;
    return 0;
}

/* Opens path and reads its ends (read_fd). */
static int read_path(const char *path, ls_layout_ends_t *x, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ls_errf(err, errlen, ls_err_from_errno(errno),
                       "cannot open %s: %s (removed behind the view?)", path, strerror(errno));
    int rc = read_fd(fd, path, x, err, errlen);
    close(fd);
    return rc;
}

int ls__src_load(ls_source_t *src, size_t i, char *err, size_t errlen)
{
    ls__src_gen_t *e = &src->gens[i];
    if (e->loaded) return 0;
    char path[PATH_MAX];
    ls__src_path(src, e->epoch, e->generation, path, sizeof(path));
    ls_layout_ends_t x;
    int rc = read_path(path, &x, err, errlen);
    return rc ? rc : apply(src, e, &x, path, err, errlen);
}

/* The newest generation's trailer is read without the lock (COPY_STATE asks for it as soon as
 * the generation appears, while the reader's locate() wants the lock to start on it), then
 * checked and cached under it when the entry is still there; when it left the view meanwhile,
 * the new newest is loaded under the lock as before. */
int ls_source_last_closed(ls_source_t *src, uint64_t *gen, uint64_t *close_ns, char *err,
                          size_t errlen)
{
    *gen = 0;
    *close_ns = 0;
    pthread_mutex_lock(&src->mu);
    ls_layout_ends_t x;
    int rc = 0;
    if (src->ngens && !src->gens[src->ngens - 1].loaded) {
        ls__src_gen_t e = src->gens[src->ngens - 1];
        char path[PATH_MAX];
        ls__src_path(src, e.epoch, e.generation, path, sizeof(path));
        pthread_mutex_unlock(&src->mu);
        rc = read_path(path, &x, err, errlen);
        pthread_mutex_lock(&src->mu);
        ssize_t i = ls__src_find(src, e.generation);
        if (i >= 0 && src->gens[i].epoch == e.epoch && !src->gens[i].loaded)
            rc = rc ? rc : apply(src, &src->gens[i], &x, path, err, errlen);
        else
            rc = 0; /* gone, replaced or loaded meanwhile: as found below */
    }
    if (!rc && src->ngens) {
        rc = ls__src_load(src, src->ngens - 1, err, errlen);
        if (!rc) {
            *gen = src->gens[src->ngens - 1].generation;
            *close_ns = src->gens[src->ngens - 1].close_ns;
        }
    }
    pthread_mutex_unlock(&src->mu);
    return rc;
}

int ls_source_queue(ls_source_t *src, uint64_t after, ls_source_queue_t *out, char *err,
                    size_t errlen)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&src->mu);
    int rc = 0;
    size_t first = ls__src_upper(src, after);
    for (size_t i = first; i < src->ngens; i++) {
        if ((rc = ls__src_load(src, i, err, errlen))) break;
        if (i == first) out->oldest_close_ns = src->gens[i].close_ns;
        out->count++;
        out->bytes += src->gens[i].size;
    }
    pthread_mutex_unlock(&src->mu);
    if (rc) memset(out, 0, sizeof(*out));
    return rc;
}
