/*
 * Divergence (role.h, docs/ACTIVATION.md "Divergence"): this node's chain of closed generations,
 * the split point against the new active's chain, and moving the generations after it aside
 * into <db>/diverged/<epoch>/ with a report of what they hold. Nothing is ever deleted.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "core/core.h"
#include "layout/layout.h"
#include "role/logs.h"
#include "role/role.h"

#define DIRLEN 4200

int ls__role_list_logs(const char *dir, const char *prefix, char *logs, size_t logslen,
                       ls_layout_list_t *l, char *err, size_t errlen)
{
    snprintf(logs, logslen, "%.4000s/logs", dir);
    ls_layout_options_t lo = {.prefix = prefix, .order = LS_LAYOUT_BY_GENERATION};
    return ls_layout_list(logs, &lo, l, err, errlen);
}

int ls__role_read_closed(const char *logs, const char *prefix, const ls_layout_gen_t *g, char *path,
                         size_t pathlen, ls_layout_ends_t *x, char *err, size_t errlen)
{
    ls_layout_path(path, pathlen, logs, prefix, g->epoch, g->generation, NULL);
    int rc = ls_layout_read_ends(path, x, err, errlen);
    if (rc == 0 && !x->closed)
        rc = ls_errf(err, errlen, LS_ECORRUPT, "%s has no valid trailer", path);
    return rc;
}

int ls_role_chain(const char *dir, const char *prefix, ls_role_link_t **links, size_t *n, char *err,
                  size_t errlen)
{
    char logs[DIRLEN], path[DIRLEN + 64];
    *links = NULL;
    *n = 0;
    ls_layout_list_t l;
    int rc = ls__role_list_logs(dir, prefix, logs, sizeof(logs), &l, err, errlen);
    if (rc) return rc;
    ls_role_link_t *out = calloc(l.ngens ? l.ngens : 1, sizeof(*out));
    if (!out) rc = LS_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; rc == 0 && i < l.ngens; i++) {
        ls_layout_ends_t x;
        rc = ls__role_read_closed(logs, prefix, &l.gens[i], path, sizeof(path), &x, err, errlen);
        if (rc) break;
        out[k] = (ls_role_link_t){.epoch = l.gens[i].epoch, .generation = l.gens[i].generation};
        memcpy(out[k++].digest, x.t.digest, LS_DIGEST_SIZE);
    }
    ls_layout_list_free(&l);
    if (rc) {
        free(out);
        return rc;
    }
    *links = out;
    *n = k;
    return 0;
}

/* Index of generation g in theirs (sorted by generation; the last when several), or -1. */
static ssize_t find_gen(const ls_role_link_t *t, size_t n, uint64_t g)
{
    size_t lo = 0, hi = n;
    while (lo < hi) { /* first index with generation > g */
        size_t mid = lo + (hi - lo) / 2;
        if (t[mid].generation <= g)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && t[lo - 1].generation == g ? (ssize_t) lo - 1 : -1;
}

void ls_role_find_split(const ls_role_link_t *mine, size_t nmine, const ls_role_link_t *theirs,
                        size_t ntheirs, ls_role_split_t *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = nmine; i-- > 0;) {
        ssize_t j = find_gen(theirs, ntheirs, mine[i].generation);
        if (j < 0) continue; /* not held there (removed, or never written there) */
        out->overlap = true;
        if (theirs[j].epoch == mine[i].epoch &&
            memcmp(theirs[j].digest, mine[i].digest, LS_DIGEST_SIZE) == 0) {
            out->found = true; /* the digest chain: everything before it is the same too */
            out->split = mine[i].generation;
            out->diverged = nmine - 1 - i;
            return;
        }
    }
    out->diverged = out->overlap ? nmine : 0;
}

/* ---- moving aside ---- */

typedef struct {
    ls_role_diverged_t *rep;
    uint8_t **keys;    /* each: 2-byte length, then the key; malloc'd */
    size_t nkeys, cap; /* used and allocated */
    int rc;            /* LS_ENOMEM once an allocation failed */
} collect_t;

static int collect(void *ctx, const ls_record_t *r)
{
    collect_t *c = ctx;
    ls_role_diverged_t *rep = c->rep;
    rep->records++;
    if (rep->first_lsn == 0 || r->lsn < rep->first_lsn) rep->first_lsn = r->lsn;
    rep->last_lsn = LS_MAX(rep->last_lsn, r->lsn);
    if (r->type != LS_REC_PUT && r->type != LS_REC_DEL) return 0;
    if (c->nkeys == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        uint8_t **k = realloc(c->keys, cap * sizeof(*k));
        if (!k) return c->rc = LS_ENOMEM;
        c->keys = k;
        c->cap = cap;
    }
    uint8_t *k = malloc(2 + r->key_len);
    if (!k) return c->rc = LS_ENOMEM;
    ls_put16(k, (uint16_t) r->key_len);
    memcpy(k + 2, r->key, r->key_len);
    c->keys[c->nkeys++] = k;
    return 0;
}

static int key_cmp(const void *a, const void *b)
{
    const uint8_t *x = *(const uint8_t *const *) a, *y = *(const uint8_t *const *) b;
    size_t lx = ls_get16(x), ly = ls_get16(y);
    int c = memcmp(x + 2, y + 2, LS_MIN(lx, ly));
    return c ? c : (lx > ly) - (lx < ly);
}

/* A key, printable: bytes outside 0x20..0x7e as \xNN, cut to fit. */
static void printable(const uint8_t *k, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < outlen; i++)
        o += (size_t) (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '\\'
                           ? snprintf(out + o, outlen - o, "%c", k[i])
                           : snprintf(out + o, outlen - o, "\\x%02x", k[i]));
    out[o] = '\0';
}

/* Distinct keys counted and the first LS_ROLE_KEYS_LISTED (in key order) named. */
static void finish_keys(collect_t *c)
{
    if (c->nkeys) qsort(c->keys, c->nkeys, sizeof(*c->keys), key_cmp); /* none: no array */
    for (size_t i = 0; i < c->nkeys; i++) {
        if (i > 0 && key_cmp(&c->keys[i - 1], &c->keys[i]) == 0) continue;
        if (c->rep->keys < LS_ROLE_KEYS_LISTED)
            printable(c->keys[i] + 2, ls_get16(c->keys[i]), c->rep->key[c->rep->keys],
                      sizeof(c->rep->key[0]));
        c->rep->keys++;
    }
    for (size_t i = 0; i < c->nkeys; i++)
        free(c->keys[i]);
    free(c->keys);
}

/* Scans one file into the report (a damaged file is still moved: its records up to the damage
 * are counted) and renames it into dest. */
static int move_one(const char *src, const char *dest_dir, const char *name, bool open_log,
                    collect_t *c, char *err, size_t errlen)
{
    ls_gen_expect_t ex = {.allow_open = open_log};
    ls_gen_info_t info;
    ls_gen_verdict_t v;
    memset(&info, 0, sizeof(info));
    ls_gen_scan_file(src, &ex, collect, c, &info, &v);
    if (c->rc) return ls_errf(err, errlen, c->rc, "%s: out of memory collecting keys", src);
    ls_role_diverged_t *rep = c->rep;
    uint64_t g = info.header_ok ? info.header.generation : 0;
    if (info.header_ok) {
        if (rep->from_ns == 0 || info.header.create_ns < rep->from_ns)
            rep->from_ns = info.header.create_ns;
        if (rep->first_generation == 0 || g < rep->first_generation) rep->first_generation = g;
        rep->last_generation = LS_MAX(rep->last_generation, g);
    }
    struct stat st;
    uint64_t end = info.closed           ? info.trailer.close_ns
                   : stat(src, &st) == 0 ? (uint64_t) st.st_mtim.tv_sec * 1000000000ull +
                                               (uint64_t) st.st_mtim.tv_nsec
                                         : 0;
    rep->to_ns = LS_MAX(rep->to_ns, end);
    char dst[DIRLEN + 300];
    snprintf(dst, sizeof(dst), "%s/%.255s", dest_dir, name);
    if (rename(src, dst) != 0)
        return ls_errf(err, errlen, ls_err_from_errno(errno), "cannot move %s to %s: %s", src, dst,
                       strerror(errno));
    rep->generations++;
    return 0;
}

int ls_role_move_aside(const char *dir, const char *prefix, uint64_t split, uint32_t new_epoch,
                       ls_role_diverged_t *rep, char *err, size_t errlen)
{
    const char *pf = prefix && *prefix ? prefix : LS_GEN_PREFIX_DEFAULT;
    char logs[DIRLEN], src[DIRLEN + 300], name[LS_GEN_NAME_MAX];
    memset(rep, 0, sizeof(*rep));
    snprintf(rep->dest, sizeof(rep->dest), "%.4000s/diverged/%" PRIu32, dir, new_epoch);
    ls_layout_list_t l;
    int rc = ls__role_list_logs(dir, pf, logs, sizeof(logs), &l, err, errlen);
    if (rc) return rc;
    collect_t c = {.rep = rep};
    bool made = false;
    for (size_t i = 0; rc == 0 && i <= l.ngens; i++) {
        bool cur = i == l.ngens;
        if (cur) { /* the open log: diverged when it holds records after the split */
            ls_gen_info_t in;
            ls_gen_expect_t ex = {.allow_open = true};
            ls_gen_verdict_t v;
            snprintf(name, sizeof(name), "%s.log", pf);
            snprintf(src, sizeof(src), "%s/%s", logs, name);
            if (!l.has_current || ls_gen_scan_file(src, &ex, NULL, NULL, &in, &v) != 0 ||
                !in.header_ok || in.record_count == 0 || in.header.generation <= split)
                continue;
        } else {
            if (l.gens[i].generation <= split) continue;
            ls_gen_name(name, sizeof(name), pf, l.gens[i].epoch, l.gens[i].generation);
            snprintf(src, sizeof(src), "%s/%s", logs, name);
        }
        if (!made && (rc = ls_mkdir_p(rep->dest)) != 0) {
            rc = ls_errf(err, errlen, rc, "cannot create %s: %s", rep->dest, ls_strerror(rc));
            break;
        }
        made = true;
        rc = move_one(src, rep->dest, name, cur, &c, err, errlen);
    }
    ls_layout_list_free(&l);
    finish_keys(&c);
    if (made && rc == 0 && ((rc = ls_fsync_dir(rep->dest)) || (rc = ls_fsync_dir(logs))))
        ls_errf(err, errlen, rc, "cannot sync %s or %s: %s", rep->dest, logs, ls_strerror(rc));
    return rc;
}
