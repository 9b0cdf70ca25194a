/*
 * Baseline (c): the raw LMDB apply of the same records, with the copy store's crash guarantee:
 * MDB_NOMETASYNC (each commit syncs the data pages, the meta page is synced by the next commit
 * or checkpoint: atomic and consistent after a crash, may lose the last batch, which logs/ still
 * holds), one write transaction per batch of generations carrying a meta record, one
 * mdb_env_sync at the end (the checkpoint). The files are read and parsed (ls_gen_scan, digest
 * checked) before the clock starts, so the figure is LMDB alone: what the replayer pays for
 * reading and verifying is its own overhead against it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>
#include <logship/logfmt.h>

#include "core/core.h"
#include "lb.h"

typedef struct {
    uint8_t type;        /* LS_REC_PUT or LS_REC_DEL */
    uint32_t klen, vlen; /* bytes */
    const uint8_t *key;  /* into the file's buffer */
    const uint8_t *val;  /* into the file's buffer */
} rec_t;

typedef struct {
    rec_t *r;   /* records, in log order */
    size_t n;   /* used */
    size_t cap; /* allocated */
} recs_t;

static int collect(void *ctx, const ls_record_t *r)
{
    recs_t *rs = ctx;
    if (r->type != LS_REC_PUT && r->type != LS_REC_DEL) return 0;
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 65536;
        rs->r = realloc(rs->r, rs->cap * sizeof(rec_t));
        if (!rs->r) return LS_ENOMEM;
    }
    rs->r[rs->n++] = (rec_t){r->type, r->key_len, r->value_len, r->key, r->value};
    return 0;
}

static int apply_batch(MDB_env *env, MDB_dbi data, MDB_dbi meta, const recs_t *rs, size_t from,
                       size_t to, uint64_t gen)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(env, NULL, 0, &txn);
    for (size_t i = from; rc == 0 && i < to; i++) {
        MDB_val k = {rs->r[i].klen, (void *) rs->r[i].key},
                v = {rs->r[i].vlen, (void *) rs->r[i].val};
        rc = rs->r[i].type == LS_REC_PUT ? mdb_put(txn, data, &k, &v, 0)
                                         : mdb_del(txn, data, &k, NULL);
        if (rc == MDB_NOTFOUND) rc = 0;
    }
    uint8_t m[64] = {0};
    ls_put64(m, gen);
    MDB_val mk = {4, "meta"}, mv = {sizeof(m), m};
    if (rc == 0) rc = mdb_put(txn, meta, &mk, &mv, 0);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

double lb_lmdb_apply(const char *src, char **files, size_t n, const char *dir, int batch,
                     uint64_t *records)
{
    recs_t rs = {0};
    size_t *ends = calloc(n + 1, sizeof(size_t)); /* records before file i+1 */
    uint8_t **bufs = calloc(n + 1, sizeof(uint8_t *));
    double secs = -1;
    MDB_env *env = NULL;
    if (!ends || !bufs || ls_mkdir_p(dir)) goto out;
    for (size_t i = 0; i < n; i++) {
        char path[LB_PATH + 300];
        size_t len;
        ls_gen_info_t info;
        ls_gen_verdict_t v;
        snprintf(path, sizeof(path), "%s/%s", src, files[i]);
        if (ls_read_file(path, LS_GEN_HARD_CAP, &bufs[i], &len)) goto out;
        if (ls_gen_scan(bufs[i], len, NULL, collect, &rs, &info, &v) != 0) goto out;
        ends[i] = rs.n;
    }
    *records = rs.n;
    uint64_t t0 = lb_mono_ns();
    MDB_txn *txn;
    MDB_dbi data, meta;
    int rc = mdb_env_create(&env);
    if (rc == 0) rc = mdb_env_set_mapsize(env, 8ull << 30);
    if (rc == 0) rc = mdb_env_set_maxdbs(env, 2);
    if (rc == 0) rc = mdb_env_open(env, dir, MDB_NOMETASYNC | MDB_NOTLS, 0600);
    if (rc == 0) rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc == 0) {
        if ((rc = mdb_dbi_open(txn, "data", MDB_CREATE, &data)) == 0)
            rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &meta);
        rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
    }
    for (size_t i = 0; rc == 0 && i < n; i += (size_t) batch) {
        size_t last = i + (size_t) batch < n ? i + (size_t) batch : n;
        rc = apply_batch(env, data, meta, &rs, i ? ends[i - 1] : 0, ends[last - 1], last);
    }
    if (rc == 0) rc = mdb_env_sync(env, 1);
    if (rc == 0)
        secs = (double) (lb_mono_ns() - t0) / 1e9;
    else
        fprintf(stderr, "logship-bench: lmdb apply: %s\n", mdb_strerror(rc));
out:
    if (env) mdb_env_close(env);
    for (size_t i = 0; bufs && i < n; i++)
        free(bufs[i]);
    free(bufs);
    free(ends);
    free(rs.r);
    return secs;
}
