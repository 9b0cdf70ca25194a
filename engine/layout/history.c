/*
 * layout: logs/history, the one reader (engine/source's view, engine/role's activation).
 *
 * Format: one "EPOCH FIRST_GENERATION" line per epoch, decimal, separated by blanks; blank lines
 * and lines starting with '#' are ignored. Epochs strictly increase; first generations never
 * decrease (an epoch that closed nothing is followed by one starting at the same generation).
 * A malformed line is an LS_ECONFIG error naming "<path>:<line>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "layout/layout.h"

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
static const char *parse_line(const char *line, const ls_layout_hist_t *prev, ls_layout_hist_t *h)
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

int ls_layout_history_parse(const char *path, char *buf, ls_layout_hist_t **out, size_t *n,
                            char *err, size_t errlen)
{
    ls_layout_hist_t *arr = NULL;
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
                ls_layout_hist_t *a = realloc(arr, cap * sizeof(*a));
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

int ls_layout_history_read(const char *path, ls_layout_hist_t **out, size_t *n, char *err,
                           size_t errlen)
{
    *out = NULL;
    *n = 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = ls_read_file(path, LS_LAYOUT_HISTORY_MAX, &buf, &len);
    if (rc) return ls_errf(err, errlen, rc, "cannot read %s: %s", path, ls_strerror(rc));
    char *text = realloc(buf, len + 1);
    if (!text) {
        free(buf);
        return ls_errf(err, errlen, LS_ENOMEM, "%s: out of memory", path);
    }
    text[len] = '\0';
    if (memchr(text, '\0', len)) {
        free(text);
        return ls_errf(err, errlen, LS_ECONFIG, "%s: contains a NUL byte (not a text file)", path);
    }
    rc = ls_layout_history_parse(path, text, out, n, err, errlen);
    free(text);
    return rc;
}

uint32_t ls_layout_history_epoch_at(const ls_layout_hist_t *h, size_t n, uint64_t g)
{
    uint32_t e = 0;
    for (size_t i = 0; i < n; i++)
        if (h[i].first_gen <= g && h[i].epoch > e) e = h[i].epoch;
    return e;
}

int ls_layout_history_learn(ls_layout_hist_t *h, size_t *n, size_t cap, uint32_t epoch, uint64_t g)
{
    if (epoch == 0 || g == 0) return LS_EINVAL;
    size_t i = 0;
    while (i < *n && h[i].epoch < epoch)
        i++;
    if (i < *n && h[i].epoch == epoch) {
        if (g < h[i].first_gen) h[i].first_gen = g;
        return 0;
    }
    if (*n == cap) {
        if (i == 0) return 0;                     /* older than everything kept: nothing to learn */
        memmove(h, h + 1, (*n - 1) * sizeof(*h)); /* forget the oldest line */
        i--;
        (*n)--;
    }
    memmove(h + i + 1, h + i, (*n - i) * sizeof(*h));
    h[i] = (ls_layout_hist_t){.epoch = epoch, .first_gen = g};
    (*n)++;
    return 0;
}
