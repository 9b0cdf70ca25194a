/*
 * source: logs/history, read-only here (the writer appends a line at each activation).
 *
 * Format: one "EPOCH FIRST_GENERATION" line per epoch, decimal, separated by blanks; blank lines
 * and lines starting with '#' are ignored. Epochs strictly increase; first generations never
 * decrease (an epoch that closed nothing is followed by one starting at the same generation).
 * An absent file means "1 1". A malformed line is an LS_ECONFIG error naming "<path>:<line>".
 * The file is re-read only when its inode, size or mtime changed, so a rescan stays cheap.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "core/core.h"
#include "source/source_int.h"

#define HIST_MAX_BYTES (1u << 20) /* a history of a million bytes is not a history */

/* Parses one decimal number at *p (no sign), advancing *p. */
static bool parse_num(const char **p, uint64_t max, uint64_t *out)
{
    const char *s = *p;
    if (*s < '0' || *s > '9') return false;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        uint64_t d = (uint64_t) (*s - '0');
        if (v > (max - d) / 10) return false;
        v = v * 10 + d;
    }
    *p = s;
    *out = v;
    return true;
}

static const char *skip_blank(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r')
        s++;
    return s;
}

/* Parses one line (NUL-terminated, no newline) into *h. Returns NULL, or what is wrong. */
static const char *parse_line(const char *line, const ls__src_hist_t *prev, ls__src_hist_t *h)
{
    const char *p = skip_blank(line);
    uint64_t e, g;
    if (!parse_num(&p, UINT32_MAX, &e)) return "expected an epoch number";
    if (*p != ' ' && *p != '\t') return "expected a blank after the epoch";
    p = skip_blank(p);
    if (!parse_num(&p, UINT64_MAX, &g)) return "expected a first generation number";
    if (*skip_blank(p) != '\0') return "unexpected text after the first generation";
    if (e == 0) return "epoch 0 is not valid (epochs start at 1)";
    if (g == 0) return "generation 0 is not valid (generations start at 1)";
    if (prev && e <= prev->epoch) return "epoch does not increase";
    if (prev && g < prev->first_gen) return "first generation decreases";
    h->epoch = (uint32_t) e;
    h->first_gen = g;
    return NULL;
}

/* Parses buf (NUL-terminated) into a new array. */
static int parse(const char *path, char *buf, ls__src_hist_t **out, size_t *n, char *err,
                 size_t errlen)
{
    ls__src_hist_t *arr = NULL;
    size_t cnt = 0, cap = 0;
    int lineno = 0;
    for (char *line = buf; line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        lineno++;
        const char *s = skip_blank(line);
        if (*s && *s != '#') {
            if (cnt == cap) {
                cap = cap ? cap * 2 : 8;
                ls__src_hist_t *a = realloc(arr, cap * sizeof(*a));
                if (!a) {
                    free(arr);
                    return ls_errf(err, errlen, LS_ENOMEM, "%s: out of memory", path);
                }
                arr = a;
            }
            const char *why = parse_line(line, cnt ? &arr[cnt - 1] : NULL, &arr[cnt]);
            if (why) {
                free(arr);
                return ls_errf(err, errlen, LS_ECONFIG,
                               "%s:%d: %s in \"%.64s\" (expected \"EPOCH FIRST_GENERATION\")", path,
                               lineno, why, line);
            }
            cnt++;
        }
        line = nl ? nl + 1 : NULL;
    }
    *out = arr;
    *n = cnt;
    return 0;
}

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
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = ls_read_file(src->hist_path, HIST_MAX_BYTES, &buf, &len);
    if (rc) return ls_errf(err, errlen, rc, "cannot read %s: %s", src->hist_path, ls_strerror(rc));
    char *text = realloc(buf, len + 1);
    if (!text) {
        free(buf);
        return ls_errf(err, errlen, LS_ENOMEM, "%s: out of memory", src->hist_path);
    }
    text[len] = '\0';
    if (memchr(text, '\0', len)) {
        free(text);
        return ls_errf(err, errlen, LS_ECONFIG, "%s: contains a NUL byte (not a text file)",
                       src->hist_path);
    }
    ls__src_hist_t *arr = NULL;
    size_t n = 0;
    rc = parse(src->hist_path, text, &arr, &n, err, errlen);
    free(text);
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
