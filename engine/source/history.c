/*
 * source: logs/history, read-only here (activation appends a line), parsed by engine/layout
 * (history.c there has the format). An absent file means "1 1".
 * The file is re-read only when its inode, size or mtime changed, so a rescan stays cheap.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "core/core.h"
#include "source/source_int.h"

static int64_t mtime_ns(const struct stat *st)
{
    return (int64_t) st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

int ls__src_hist_refresh(ls_source_t *src, char *err, size_t errlen)
{
    struct stat st;
    if (stat(src->hist_path, &st) != 0) {
        if (errno != ENOENT)
            return ls_errf(err, errlen, ls_err_from_errno(errno), "cannot stat %s: %s",
                           src->hist_path, strerror(errno));
        free(src->hist);
        src->hist = NULL;
        src->nhist = 0;
        src->hist_seen = false;
        return 0;
    }
    if (src->hist_seen && (uint64_t) st.st_size == src->hist_size &&
        mtime_ns(&st) == src->hist_mtime_ns && (uint64_t) st.st_ino == src->hist_ino)
        return 0;
    ls__src_hist_t *arr = NULL;
    size_t n = 0;
    int rc = ls_layout_history_read(src->hist_path, &arr, &n, err, errlen);
    if (rc) return rc;
    free(src->hist);
    src->hist = arr;
    src->nhist = n;
    src->hist_seen = true;
    src->hist_size = (uint64_t) st.st_size;
    src->hist_mtime_ns = mtime_ns(&st);
    src->hist_ino = (uint64_t) st.st_ino;
    return 0;
}

uint32_t ls__src_hist_epoch(const ls_source_t *src, uint64_t g)
{
    if (src->nhist == 0) return g >= 1 ? 1 : 0;
    uint32_t e = 0;
    for (size_t i = 0; i < src->nhist && src->hist[i].first_gen <= g; i++)
        e = src->hist[i].epoch;
    return e;
}
