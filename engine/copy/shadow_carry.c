/*
 * Block mode on the copy: the shadow's bytes carried by the store (docs/BLOCKMODE.md "The store
 * carries the shadow's unsynced bytes").
 *
 * An eager early apply (a commit waits at remote_applied) may apply shadow bytes the receiver
 * wrote but has not yet reported durable: its store transaction then also writes the record
 * LS__COPY_CARRY_KEY, bytes [from, end) of the shadow (from: the durable end reported, end: the
 * transaction's shadow_end), so the store's one fdatasync makes the bytes and the applied state
 * durable together, whatever the shadow's own fdatasync (in parallel, on the receiver's thread)
 * has done. A crash (power cut) may then leave a store whose shadow_end is past what the shadow
 * file holds: ls__copy_shadow_restore, at open, writes the carried bytes back into the shadow
 * where it is shorter or differs and fdatasyncs it, before the receiver, the early apply or an
 * activation reads it. The store never claims what the shadow cannot give.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy/copy_int.h"

#define CARRY_MAGIC 0x4c534331u /* "LSC1" */

void ls__copy_carry_head(uint8_t *out, uint32_t epoch, uint64_t gen, uint64_t from, uint64_t end)
{
    ls_put32(out, CARRY_MAGIC);
    ls_put32(out + 4, epoch);
    ls_put64(out + 8, gen);
    ls_put64(out + 16, from);
    ls_put64(out + 24, end);
}

/* Writes bytes [from, from + len) into the shadow at path when it is shorter or differs there,
 * then fdatasyncs it. A file shorter than from is left (its durable head is gone: the closed
 * generation decides, checked against the store's seal). */
static int rewrite(ls_copy_t *c, const char *path, uint64_t from, const uint8_t *bytes, size_t len,
                   char *err, size_t errlen)
{
    bool create = from == 0 && access(path, F_OK) != 0;
    int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
    if (fd < 0 && errno == ENOENT) {
        LS_LOGW("copy",
                "%s: the shadow %s is gone: the %zu bytes the store carries at %llu are "
                "not written back (the closed generation is checked against the store)",
                c->dir, path, len, (unsigned long long) from);
        return 0;
    }
    if (fd < 0)
        return ls_errf(err, errlen, ls_err_from_errno(errno),
                       "copy %s: cannot open the shadow %s: %s", c->dir, path, strerror(errno));
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? 0 : ls_err_from_errno(errno);
    if (rc == 0 && (uint64_t) st.st_size < from) {
        LS_LOGW("copy",
                "%s: the shadow %s holds %llu bytes, less than the %llu the store carries "
                "bytes from: left as it is",
                c->dir, path, (unsigned long long) st.st_size, (unsigned long long) from);
        close(fd);
        return 0;
    }
    uint8_t *have = rc == 0 ? malloc(len ? len : 1) : NULL;
    if (rc == 0 && !have) rc = LS_ENOMEM;
    ssize_t got = rc == 0 ? ls_pread_full(fd, have, len, (off_t) from) : 0;
    if (rc == 0 && got < 0) rc = (int) got;
    bool same = rc == 0 && (size_t) got == len && memcmp(have, bytes, len) == 0;
    free(have);
    if (rc == 0 && !same) {
        rc = LS_FAULT("copy.shadow.before_restore") ? LS_EIO
                                                    : ls_pwrite_full(fd, bytes, len, (off_t) from);
        if (rc == 0)
            LS_LOGI("copy", "%s: the shadow %s was %s at [%llu, %llu): written back from the store",
                    c->dir, path, got < (ssize_t) len ? "short" : "different",
                    (unsigned long long) from, (unsigned long long) (from + len));
    }
    if (rc == 0) rc = ls_fdatasync(fd);
    close(fd);
    if (rc == 0 && create) rc = ls_fsync_dir(c->shadow_dir);
    if (rc)
        return ls_errf(
            err, errlen, rc,
            "copy %s: cannot write the store's carried bytes back into the shadow %s: %s", c->dir,
            path, ls_strerror(rc));
    return 0;
}

int ls__copy_shadow_restore(ls_copy_t *c, char *err, size_t errlen)
{
    if (!c->store) return 0;
    void *val = NULL;
    size_t len = 0;
    int rc = ls_store_aux_get(c->store, LS__COPY_CARRY_KEY, &val, &len);
    if (rc == LS_ENOENT) return 0;
    if (rc)
        return ls_errf(err, errlen, rc, "copy %s: cannot read the store's record %s: %s", c->dir,
                       LS__COPY_CARRY_KEY, ls_strerror(rc));
    c->sh.carried = true;
    const uint8_t *p = val;
    uint64_t gen = 0, from = 0, end = 0;
    uint32_t epoch = 0;
    if (len >= LS__COPY_CARRY_HEAD) {
        epoch = ls_get32(p + 4);
        gen = ls_get64(p + 8);
        from = ls_get64(p + 16);
        end = ls_get64(p + 24);
    }
    if (len < LS__COPY_CARRY_HEAD || ls_get32(p) != CARRY_MAGIC || from > end ||
        end - from != len - LS__COPY_CARRY_HEAD) {
        free(val);
        return ls_errf(err, errlen, LS_ECORRUPT,
                       "copy %s: the store's record %s is malformed (%zu bytes): reseed this copy",
                       c->dir, LS__COPY_CARRY_KEY, len);
    }
    const ls_store_meta_t *m = &c->meta;
    /* Only the carry of the generation the store applied early and no closed file holds yet
     * counts; any other is stale (the next early apply removes it). */
    if (from == end || m->generation != gen || m->digest_generation == gen || m->shadow_end < end ||
        c->held_gen >= gen) {
        free(val);
        return 0;
    }
    char path[LS__COPY_PATH_MAX];
    ls__copy_path(c, path, c->shadow_dir, epoch, gen);
    rc = rewrite(c, path, from, p + LS__COPY_CARRY_HEAD, (size_t) (end - from), err, errlen);
    free(val);
    return rc;
}
