/*
 * The incremental resync (docs/SEED.md, "Incremental resync"; PROTOCOL.md §10, "Resync").
 *
 * Server (ls__seed_resync_write, on the snapshot worker's thread): logs/ must hold every
 * generation after the split, the first of them chained to the split's digest (else a full
 * seed: *fallback). Under one LMDB read transaction (ls_store_view_*: a consistent snapshot at
 * the meta's LSN L) it scans the generations after the split for the keys they touched (records
 * up to L are in the log before they are in the store), adds the client's keys, and writes one
 * entry per key, in key order: its value at L, or a delete when absent. The stream is a local
 * file the worker then reads in chunks, so the read transaction lives only as long as this.
 *
 * Client (ls__seed_resync_apply, from ls_seed_install_commit and ls_seed_recover): the verified
 * stream in <copy>/resync/ with its READY marker (the hand-off figures) is applied to the store
 * in one write transaction with the hand-off meta record; then the directory goes.
 *
 * Entry: u8 op (1 put, 2 delete), u16 key length (1..LS_KEY_MAX), key, for a put u32 value
 * length and the value.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layout/layout.h"
#include "seed/seed_int.h"
#include "seed/session.h"

#define OP_PUT 1
#define OP_DEL 2

/* Checks that logs/ holds every generation after the split up to G, the one holding L (the
 * closed ones are listed in l; G may be the current log), and that they continue the split's
 * digest. */
static int check_logs(const char *logs, const char *prefix, const ls_layout_list_t *l,
                      const ls_store_meta_t *m, const ls_seed_resync_req_t *rq,
                      ls_seed_info_t *info, bool *fallback, char *err, size_t errlen)
{
    uint64_t S = rq->split_generation, G = m->generation;
    char path[LS__SEED_PATH_MAX + 300], cur_path[LS__SEED_PATH_MAX + 300];
    ls_layout_ends_t x, cur;
    snprintf(cur_path, sizeof(cur_path), "%s/%s.log", logs, prefix);
    bool have_cur = l->has_current && ls_layout_read_ends(cur_path, &cur, NULL, 0) == 0;
    for (uint64_t g = S + 1; g <= G; g++) {
        if (ls_layout_find(l, g) >= 0 || (have_cur && cur.h.generation == g)) continue;
        snprintf(info->fallback, sizeof(info->fallback),
                 "generation %" PRIu64 " after the split %" PRIu64 " is no longer held here", g, S);
        *fallback = true;
        return 0;
    }
    /* the first generation after the split carries the split's digest; or the split itself */
    ssize_t i = ls_layout_find(l, S + 1);
    int rc = 0;
    bool have = false;
    if (i >= 0) {
        ls_layout_path(path, sizeof(path), logs, prefix, l->gens[i].epoch, S + 1, NULL);
        rc = ls_layout_read_ends(path, &x, err, errlen);
        have = rc == 0;
    } else if (have_cur && cur.h.generation == S + 1) {
        x = cur;
        have = true;
    }
    if (rc) return rc;
    if (have) {
        if (memcmp(x.h.prev_digest, rq->split_digest, LS_DIGEST_SIZE) != 0)
            return ls_errf(err, errlen, LS_ELINEAGE,
                           "%s: the split generation %" PRIu64 " you name is not ours (its "
                           "digest differs from the one generation %" PRIu64 " chains to)",
                           logs, S, S + 1);
        return 0;
    }
    if ((i = ls_layout_find(l, S)) >= 0) {
        ls_layout_path(path, sizeof(path), logs, prefix, l->gens[i].epoch, S, NULL);
        if ((rc = ls_layout_read_ends(path, &x, err, errlen))) return rc;
        if (!x.closed || l->gens[i].epoch != rq->split_epoch ||
            memcmp(x.t.digest, rq->split_digest, LS_DIGEST_SIZE) != 0)
            return ls_errf(err, errlen, LS_ELINEAGE,
                           "%s: the split generation %" PRIu64 " you name is not ours (epoch "
                           "or digest differ)",
                           logs, S);
        return 0;
    }
    snprintf(info->fallback, sizeof(info->fallback),
             "neither the split generation %" PRIu64 " nor the one after it is held here", S);
    *fallback = true;
    return 0;
}

/* The server's keys: those its generations after the split touched. */
static int server_keys(ls__keyset_t *ks, const char *logs, const char *prefix,
                       const ls_layout_list_t *l, uint64_t split)
{
    char path[LS__SEED_PATH_MAX + 300];
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < l->ngens; i++) {
        if (l->gens[i].generation <= split) continue;
        ls_layout_path(path, sizeof(path), logs, prefix, l->gens[i].epoch, l->gens[i].generation,
                       NULL);
        rc = ls__keyset_scan(ks, path, false);
    }
    if (rc == 0) { /* the current log, read after the view opened: holds every record <= L */
        snprintf(path, sizeof(path), "%s/%s.log", logs, prefix);
        if (ls__seed_exists(path)) rc = ls__keyset_scan(ks, path, true);
    }
    return rc;
}

static int write_entries(FILE *f, ls_store_view_t *v, const ls__keyset_t *ks)
{
    for (size_t i = 0; i < ks->n; i++) {
        const uint8_t *k = ks->k[i];
        size_t kl = LS__KEY_LEN(k);
        const void *val = NULL;
        size_t vl = 0;
        int rc = ls_store_view_get(v, k + 2, kl, &val, &vl);
        if (rc && rc != LS_ENOENT) return rc;
        uint8_t h[3] = {rc == 0 ? OP_PUT : OP_DEL, (uint8_t) kl, (uint8_t) (kl >> 8)};
        uint8_t l4[4];
        ls_put32(l4, (uint32_t) vl);
        if (fwrite(h, 1, 3, f) != 3 || fwrite(k + 2, 1, kl, f) != kl) return LS_EIO;
        if (rc == 0 && (fwrite(l4, 1, 4, f) != 4 || (vl && fwrite(val, 1, vl, f) != vl)))
            return LS_EIO;
    }
    return 0;
}

int ls__seed_resync_write(const char *db_dir, const char *prefix, const ls_seed_resync_req_t *rq,
                          const char *out_path, ls_seed_info_t *info, bool *fallback, char *err,
                          size_t errlen)
{
    char logs[LS__SEED_PATH_MAX], store[LS__SEED_PATH_MAX];
    *fallback = false;
    snprintf(logs, sizeof(logs), "%.4000s/logs", db_dir);
    snprintf(store, sizeof(store), "%.4000s/store", db_dir);
    if (rq->too_many) {
        snprintf(info->fallback, sizeof(info->fallback),
                 "the old active touched more keys than a resync takes");
        *fallback = true;
        return 0;
    }
    ls_store_view_t *v = NULL;
    ls_store_meta_t m;
    ls_layout_options_t lo = {.prefix = prefix, .order = LS_LAYOUT_BY_GENERATION};
    ls_layout_list_t l = {0};
    ls__keyset_t ks = {0};
    FILE *f = NULL;
    /* the view first: whatever the logs hold from here on includes every record <= L */
    int rc = ls_store_view_open(store, &v, &m, err, errlen);
    if (rc == 0) rc = ls_layout_list(logs, &lo, &l, err, errlen);
    if (rc == 0) rc = check_logs(logs, prefix, &l, &m, rq, info, fallback, err, errlen);
    if (rc == 0 && !*fallback) rc = ls__seed_handoff(logs, prefix, &m, info, err, errlen);
    if (rc == 0 && !*fallback) {
        rc = server_keys(&ks, logs, prefix, &l, rq->split_generation);
        if (rc == 0 && ls__keyset_add_seq(&ks, rq->keys, rq->keys_len) == LS_EPROTO)
            rc = ls_errf(err, errlen, LS_EPROTO, "the resync request's keys are not whole");
        if (rc == 0) rc = ks.rc;
        if (rc == 0) ls__keyset_finish(&ks);
        if (rc == 0 && !(f = fopen(out_path, "wxe")))
            rc = ls_errf(err, errlen, ls_err_from_errno(errno), "%s: cannot create: %s", out_path,
                         strerror(errno));
        if (rc == 0 && (rc = write_entries(f, v, &ks)) != 0)
            ls_msgf(err, errlen, "%s: cannot write the resync stream: %s", out_path,
                    ls_strerror(rc));
        if (f && fclose(f) != 0 && rc == 0)
            rc = ls_errf(err, errlen, LS_EIO, "%s: cannot write", out_path);
    }
    ls_store_view_close(v); /* the read transaction ends here */
    ls_layout_list_free(&l);
    struct stat st;
    if (rc == 0 && !*fallback) {
        info->resync = true;
        info->split_generation = rq->split_generation;
        info->keys = ks.n;
        snprintf(store, sizeof(store), "%.4000s/store/data.mdb", db_dir);
        info->store_bytes = stat(store, &st) == 0 ? (uint64_t) st.st_size : 0;
    }
    if (rc == LS_ENOMEM && err && !err[0]) ls_msgf(err, errlen, "resync: out of memory");
    ls__keyset_free(&ks);
    return rc;
}

/* ---- client: apply ---- */

/* The READY marker: the hand-off figures, one "name value" per line. */
int ls__seed_resync_ready_text(const ls_seed_info_t *i, char *out, size_t outlen)
{
    char id[2 * LS_DBID_LEN + 1], dg[2 * LS_DIGEST_SIZE + 1];
    ls_hex(i->dbid, LS_DBID_LEN, id);
    ls_hex(i->prev_digest, LS_DIGEST_SIZE, dg);
    return snprintf(out, outlen,
                    "database %s\nlsn %" PRIu64 "\ngeneration %" PRIu64 "\nepoch %" PRIu32
                    "\ntxid %" PRIu64 "\nprev_digest %s\nkeys %" PRIu64 "\nbytes %" PRIu64 "\n",
                    id, i->last_lsn, i->generation, i->epoch, i->txid, dg, i->keys, i->total_bytes);
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
        out[i] = (uint8_t) v;
    }
    return strlen(s) == 2 * n ? 0 : -1;
}

static int read_ready(const char *path, ls_seed_info_t *i, char *err, size_t errlen)
{
    memset(i, 0, sizeof(*i));
    FILE *f = fopen(path, "re");
    if (!f)
        return ls_errf(err, errlen, ls_err_from_errno(errno), "%s: cannot read: %s", path,
                       strerror(errno));
    char id[64] = "", dg[80] = "";
    int n = fscanf(f,
                   "database %63s lsn %" SCNu64 " generation %" SCNu64 " epoch %" SCNu32
                   " txid %" SCNu64 " prev_digest %79s keys %" SCNu64 " bytes %" SCNu64,
                   id, &i->last_lsn, &i->generation, &i->epoch, &i->txid, dg, &i->keys,
                   &i->total_bytes);
    fclose(f);
    if (n != 8 || unhex(id, i->dbid, LS_DBID_LEN) || unhex(dg, i->prev_digest, LS_DIGEST_SIZE))
        return ls_errf(err, errlen, LS_ECORRUPT, "%s: malformed resync marker", path);
    i->resync = true;
    return 0;
}

/* Reads the stream's entries; with txn, applies them. Re-runnable (the apply callback). */
typedef struct {
    const char *path;
    uint64_t keys; /* entries found */
    char *err;
    size_t errlen;
} walk_t;

int ls__seed_resync_walk(const char *path, ls_store_txn_t *txn, uint64_t *keys, char *err,
                         size_t errlen)
{
    *keys = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ls_errf(err, errlen, ls_err_from_errno(errno), "%s: cannot open: %s", path,
                       strerror(errno));
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return LS_ENOMEM;
    }
    uint8_t h[4], key[LS_KEY_MAX];
    uint8_t *val = NULL;
    size_t cap = 0;
    int rc = 0;
    uint64_t off = 0;
    for (;;) {
        size_t got = fread(h, 1, 3, f);
        if (got == 0 && feof(f)) break;
        size_t kl = got == 3 ? (size_t) h[1] | (size_t) h[2] << 8 : 0;
        uint8_t op = h[0];
        bool ok = got == 3 && (op == OP_PUT || op == OP_DEL) && kl >= 1 && kl <= LS_KEY_MAX &&
                  fread(key, 1, kl, f) == kl;
        uint32_t vl = 0;
        if (ok && op == OP_PUT) {
            ok = fread(h, 1, 4, f) == 4;
            vl = ok ? ls_get32(h) : 0;
            if (ok && vl > cap) {
                uint8_t *nv = realloc(val, vl);
                if (!nv) {
                    rc = LS_ENOMEM;
                    break;
                }
                val = nv;
                cap = vl;
            }
            ok = ok && (vl == 0 || fread(val, 1, vl, f) == vl);
        }
        if (!ok) {
            rc = ls_errf(err, errlen, LS_ECORRUPT,
                         "%s: entry %" PRIu64 " at offset %" PRIu64 " is malformed or cut short",
                         path, *keys, off);
            break;
        }
        LS_FAULT("seed.resync.entry"); /* tests: "exit@N" crashes in the middle of applying */
        if (txn) {
            rc = op == OP_PUT ? ls_store_put(txn, key, kl, val, vl) : ls_store_del(txn, key, kl);
            if (rc) break;
        }
        (*keys)++;
        off += 3 + kl + (op == OP_PUT ? 4 + vl : 0);
    }
    free(val);
    fclose(f);
    return rc;
}

static int apply_fn(void *ctx, ls_store_txn_t *txn)
{
    walk_t *w = ctx;
    return ls__seed_resync_walk(w->path, txn, &w->keys, w->err, w->errlen);
}

/* An empty current log left in logs/ (generation after the split, never written) would be
 * taken for this node's own open log: it goes. One holding records is refused. */
static int drop_current(const char *copy, const char *prefix, char *err, size_t errlen)
{
    char path[LS__SEED_PATH_MAX + 300];
    snprintf(path, sizeof(path), "%.4000s/logs/%s.log", copy, prefix);
    if (!ls__seed_exists(path)) return 0;
    ls_gen_expect_t ex = {.allow_open = true};
    ls_gen_info_t in;
    ls_gen_verdict_t v;
    memset(&in, 0, sizeof(in));
    ls_gen_scan_file(path, &ex, NULL, NULL, &in, &v);
    if (in.record_count)
        return ls_errf(err, errlen, LS_ESTATE,
                       "%s holds %" PRIu64 " records: move the diverged generations aside "
                       "first (ls_role_demote)",
                       path, in.record_count);
    if (unlink(path) != 0)
        return ls_errf(err, errlen, ls_err_from_errno(errno), "%s: cannot remove: %s", path,
                       strerror(errno));
    snprintf(path, sizeof(path), "%.4000s/logs", copy);
    return ls_fsync_dir(path);
}

int ls__seed_resync_apply(const char *copy, const char *prefix, char *err, size_t errlen)
{
    const char *pf = prefix && *prefix ? prefix : LS_GEN_PREFIX_DEFAULT;
    char dir[LS__SEED_PATH_MAX], marker[LS__SEED_PATH_MAX + 32], stream[LS__SEED_PATH_MAX + 32],
        store_dir[LS__SEED_PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%.4000s/%s", copy, LS__RESYNC_DIR);
    snprintf(marker, sizeof(marker), "%s/%s", dir, LS__RESYNC_READY);
    snprintf(stream, sizeof(stream), "%s/%s", dir, LS__RESYNC_STREAM);
    snprintf(store_dir, sizeof(store_dir), "%.4000s/store", copy);
    ls_seed_info_t i;
    int rc = read_ready(marker, &i, err, errlen);
    if (rc) return rc;
    ls_store_t *s = NULL;
    ls_store_options_t so = {.dbid = i.dbid};
    if ((rc = ls_store_open(store_dir, &so, &s, err, errlen))) return rc;
    ls_store_meta_t nm = {.epoch = i.epoch,
                          .generation = i.generation,
                          .lsn = i.last_lsn,
                          .txid = i.txid,
                          .digest_generation = i.generation - 1,
                          .checkpoint_lsn = i.last_lsn};
    memcpy(nm.dbid, i.dbid, LS_DBID_LEN);
    memcpy(nm.digest, i.prev_digest, LS_DIGEST_SIZE);
    walk_t w = {.path = stream, .err = err, .errlen = errlen};
    rc = ls_store_apply(s, apply_fn, &w, &nm); /* one transaction: all of it or nothing */
    if (rc == 0 && w.keys != i.keys)
        rc = ls_errf(err, errlen, LS_ECORRUPT, "%s: %" PRIu64 " entries, the marker says %" PRIu64,
                     stream, w.keys, i.keys);
    if (rc == 0 && (rc = ls_store_sync(s)) != 0)
        ls_msgf(err, errlen, "%s: cannot sync: %s", store_dir, ls_strerror(rc));
    ls_store_close(s);
    LS_FAULT("seed.resync.after_apply"); /* tests: the store holds it, the marker still there */
    if (rc == 0) rc = drop_current(copy, pf, err, errlen);
    char inspect[LS__SEED_PATH_MAX + 32];
    snprintf(inspect, sizeof(inspect), "%.4000s/inspect", copy);
    if (rc == 0 && mkdir(inspect, 0700) != 0 && errno != EEXIST)
        rc = ls_errf(err, errlen, ls_err_from_errno(errno), "%s: cannot create: %s", inspect,
                     strerror(errno));
    if (rc == 0 && (rc = ls__seed_rmtree(dir)) == 0) rc = ls_fsync_dir(copy);
    if (rc == 0)
        LS_LOGI("seed",
                "%s: resync applied: %" PRIu64 " keys at lsn %" PRIu64
                "; the copy asks for generation %" PRIu64,
                copy, i.keys, i.last_lsn, i.generation);
    return rc;
}

/* ---- the chain a resync client asks for ---- */

int ls_seed_chain(const char *db_dir, const char *prefix, uint64_t from, size_t max,
                  ls_proto_link_t **links, size_t *n, char *err, size_t errlen)
{
    const char *pf = prefix && *prefix ? prefix : LS_GEN_PREFIX_DEFAULT;
    char logs[LS__SEED_PATH_MAX], path[LS__SEED_PATH_MAX + 300];
    *links = NULL;
    *n = 0;
    snprintf(logs, sizeof(logs), "%.4000s/logs", db_dir);
    ls_layout_options_t lo = {.prefix = pf, .order = LS_LAYOUT_BY_GENERATION};
    ls_layout_list_t l;
    int rc = ls_layout_list(logs, &lo, &l, err, errlen);
    if (rc) return rc;
    ls_proto_link_t *out = calloc(LS_MAX(LS_MIN(l.ngens, max), 1), sizeof(*out));
    size_t k = 0;
    if (!out) rc = LS_ENOMEM;
    for (size_t i = 0; rc == 0 && i < l.ngens && k < max; i++) {
        if (l.gens[i].generation < from) continue;
        ls_layout_path(path, sizeof(path), logs, pf, l.gens[i].epoch, l.gens[i].generation, NULL);
        ls_layout_ends_t x;
        rc = ls_layout_read_ends(path, &x, err, errlen);
        if (rc == 0 && !x.closed)
            rc = ls_errf(err, errlen, LS_ECORRUPT, "%s has no valid trailer", path);
        if (rc) break;
        out[k] = (ls_proto_link_t){.epoch = l.gens[i].epoch, .generation = l.gens[i].generation};
        memcpy(out[k++].digest, x.t.digest, LS_DIGEST_SIZE);
    }
    ls_layout_list_free(&l);
    if (rc || k == 0) {
        free(out);
        return rc;
    }
    *links = out;
    *n = k;
    return 0;
}
