/*
 * The key sets of the incremental resync: the keys an old active's diverged generations touched
 * (ls_seed_resync_keys, the client's side) and the keys the new active's generations after the
 * split touched (resync.c, the server's side), scanned from generation files with logfmt.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "layout/layout.h"
#include "proto/proto.h"
#include "seed/seed_int.h"

int ls__keyset_add(ls__keyset_t *ks, const void *key, size_t len)
{
    if (ks->rc) return ks->rc;
    if (ks->n == ks->cap) {
        size_t cap = ks->cap ? ks->cap * 2 : 256;
        uint8_t **k = realloc(ks->k, cap * sizeof(*k));
        if (!k) return ks->rc = LS_ENOMEM;
        ks->k = k;
        ks->cap = cap;
    }
    uint8_t *k = malloc(2 + len);
    if (!k) return ks->rc = LS_ENOMEM;
    ls_put16(k, (uint16_t) len);
    memcpy(k + 2, key, len);
    ks->k[ks->n++] = k;
    return 0;
}

int ls__keyset_add_seq(ls__keyset_t *ks, const uint8_t *seq, size_t len)
{
    size_t off = 0, n;
    const uint8_t *k;
    while (ls_proto_resync_key(seq, len, &off, &k, &n))
        if (ls__keyset_add(ks, k, n)) return ks->rc;
    return off == len ? 0 : LS_EPROTO;
}

static int scan_cb(void *ctx, const ls_record_t *r)
{
    ls__keyset_t *ks = ctx;
    if ((r->type != LS_REC_PUT && r->type != LS_REC_DEL) || r->lsn <= ks->after) return 0;
    return ls__keyset_add(ks, r->key, r->key_len);
}

int ls__keyset_scan(ls__keyset_t *ks, const char *path, bool open_log)
{
    ls_gen_expect_t ex = {.allow_open = open_log};
    ls_gen_info_t info;
    ls_gen_verdict_t v;
    ls_gen_scan_file(path, &ex, scan_cb, ks, &info, &v); /* damaged: counted up to the damage */
    return ks->rc;
}

static int key_cmp(const void *a, const void *b)
{
    const uint8_t *x = *(const uint8_t *const *) a, *y = *(const uint8_t *const *) b;
    size_t lx = LS__KEY_LEN(x), ly = LS__KEY_LEN(y);
    int c = memcmp(x + 2, y + 2, LS_MIN(lx, ly));
    return c ? c : (lx > ly) - (lx < ly);
}

void ls__keyset_finish(ls__keyset_t *ks)
{
    if (!ks->n) return;
    qsort(ks->k, ks->n, sizeof(*ks->k), key_cmp);
    size_t o = 1;
    for (size_t i = 1; i < ks->n; i++) {
        if (key_cmp(&ks->k[o - 1], &ks->k[i]) == 0)
            free(ks->k[i]);
        else
            ks->k[o++] = ks->k[i];
    }
    ks->n = o;
}

void ls__keyset_free(ls__keyset_t *ks)
{
    for (size_t i = 0; i < ks->n; i++)
        free(ks->k[i]);
    free(ks->k);
    memset(ks, 0, sizeof(*ks));
}

/* Every file in dir (the diverged generations, the open log among them). */
static int scan_dir(ls__keyset_t *ks, const char *dir, const char *prefix, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 0; /* nothing diverged */
        return ls_errf(err, errlen, ls_err_from_errno(errno), "%s: cannot list: %s", dir,
                       strerror(errno));
    }
    char open_name[LS_GEN_NAME_MAX + 8], path[LS__SEED_PATH_MAX + 300];
    snprintf(open_name, sizeof(open_name), "%s.log", prefix);
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof(path), "%.4000s/%.255s", dir, de->d_name);
        rc = ls__keyset_scan(ks, path, strcmp(de->d_name, open_name) == 0);
    }
    closedir(d);
    return rc;
}

int ls_seed_resync_keys(const char *dir, const char *prefix, uint32_t epoch, uint8_t **keys,
                        size_t *keys_len, uint64_t *count, char *err, size_t errlen)
{
    const char *pf = prefix && *prefix ? prefix : LS_GEN_PREFIX_DEFAULT;
    *keys = NULL;
    *keys_len = 0;
    *count = 0;
    char path[LS__SEED_PATH_MAX + 300], logs[LS__SEED_PATH_MAX];
    ls__keyset_t ks = {0};
    snprintf(path, sizeof(path), "%.4000s/diverged/%u", dir, (unsigned) epoch);
    int rc = scan_dir(&ks, path, pf, err, errlen);
    /* records in logs/ the store may lack (it applies after the log is durable) */
    ls_store_meta_t m;
    snprintf(path, sizeof(path), "%.4000s/store", dir);
    if (rc == 0 && ls_store_peek_meta(path, &m, NULL, 0) != 0) memset(&m, 0, sizeof(m));
    ks.after = m.lsn;
    snprintf(logs, sizeof(logs), "%.4000s/logs", dir);
    ls_layout_options_t lo = {.prefix = pf, .order = LS_LAYOUT_BY_GENERATION};
    ls_layout_list_t l;
    if (rc == 0 && (rc = ls_layout_list(logs, &lo, &l, err, errlen)) == 0) {
        for (size_t i = 0; rc == 0 && i < l.ngens; i++) {
            ls_layout_path(path, sizeof(path), logs, pf, l.gens[i].epoch, l.gens[i].generation,
                           NULL);
            ls_layout_ends_t x;
            if (ls_layout_read_ends(path, &x, NULL, 0) == 0 && x.closed && x.t.last_lsn <= m.lsn)
                continue; /* wholly in the store */
            rc = ls__keyset_scan(&ks, path, false);
        }
        if (rc == 0 && l.has_current) {
            snprintf(path, sizeof(path), "%s/%s.log", logs, pf);
            rc = ls__keyset_scan(&ks, path, true);
        }
        ls_layout_list_free(&l);
    } else if (rc == LS_ENOENT) {
        rc = 0;
    }
    if (rc == 0) ls__keyset_finish(&ks);
    size_t total = 0;
    for (size_t i = 0; rc == 0 && i < ks.n; i++)
        total += 2 + LS__KEY_LEN(ks.k[i]);
    uint8_t *out = rc == 0 && total ? malloc(total) : NULL;
    if (rc == 0 && total && !out) rc = LS_ENOMEM;
    size_t o = 0;
    for (size_t i = 0; out && i < ks.n; i++) {
        size_t n = 2 + LS__KEY_LEN(ks.k[i]);
        memcpy(out + o, ks.k[i], n);
        o += n;
    }
    if (rc == LS_ENOMEM && err && !err[0]) ls_msgf(err, errlen, "%s: out of memory", dir);
    if (rc == 0) {
        *keys = out;
        *keys_len = total;
        *count = ks.n;
    }
    ls__keyset_free(&ks);
    return rc;
}
