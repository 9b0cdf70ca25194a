/* The meta record's codec, the LMDB code mapping, and the reads that open a store by path
 * without an ls_store_t: ls_store_peek_meta and the read views (see store.h). */
#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>

#include "core/core.h"
#include "store/env.h"
#include "store/meta_int.h"
#include "store/store.h"

/* Maps an LMDB (or errno) code to an LS_E* code; MDB_MAP_FULL is passed through for retry. */
int ls_store_map_rc(int rc)
{
    if (rc == 0 || rc == MDB_MAP_FULL) return rc;
    if (rc == ENOMEM) return LS_ENOMEM;
    if (rc == ENOSPC) return LS_ENOSPC;
    if (rc > 0) return ls_err_from_errno(rc);
    return LS_ESTORE;
}

void ls_store_meta_encode(const ls_store_meta_t *m, uint8_t out[META_SIZE])
{
    memset(out, 0, META_SIZE);
    ls_put32(out, META_VERSION);
    ls_put32(out + 4, m->epoch);
    memcpy(out + 8, m->dbid, LS_DBID_LEN);
    ls_put64(out + 24, m->generation);
    ls_put64(out + 32, m->lsn);
    ls_put64(out + 40, m->txid);
    ls_put64(out + 48, m->digest_generation);
    memcpy(out + 56, m->digest, LS_DIGEST_SIZE);
    ls_put64(out + 88, m->checkpoint_lsn);
    ls_put64(out + 96, m->applied_generations);
    ls_put64(out + 104, m->shadow_end);
    memcpy(out + 112, m->shadow_seal, sizeof(m->shadow_seal));
}

int ls_store_meta_decode(const MDB_val *v, ls_store_meta_t *m)
{
    const uint8_t *p = v->mv_data;
    /* Shorter records (before applied_generations, before the shadow fields) decode with those 0.
     */
    if ((v->mv_size != META_SIZE && v->mv_size != META_SIZE_V2 && v->mv_size != META_SIZE_V1) ||
        ls_get32(p) != META_VERSION)
        return LS_ECORRUPT;
    m->epoch = ls_get32(p + 4);
    memcpy(m->dbid, p + 8, LS_DBID_LEN);
    m->generation = ls_get64(p + 24);
    m->lsn = ls_get64(p + 32);
    m->txid = ls_get64(p + 40);
    m->digest_generation = ls_get64(p + 48);
    memcpy(m->digest, p + 56, LS_DIGEST_SIZE);
    m->checkpoint_lsn = ls_get64(p + 88);
    m->applied_generations = v->mv_size >= META_SIZE_V2 ? ls_get64(p + 96) : 0;
    m->shadow_end = v->mv_size == META_SIZE ? ls_get64(p + 104) : 0;
    memset(m->shadow_seal, 0, sizeof(m->shadow_seal));
    if (v->mv_size == META_SIZE) memcpy(m->shadow_seal, p + 112, sizeof(m->shadow_seal));
    return 0;
}

int ls_store_peek_meta(const char *path, ls_store_meta_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    ls_store_env_t *e = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_val k = {.mv_size = sizeof(META_KEY) - 1, .mv_data = (void *) META_KEY}, v;
    /* The process's environment of path (the writer's, a snapshot's): never a second one. */
    ls_store_env_options_t eo = {.readonly = true};
    int rc = ls_store_env_acquire(path, &eo, &e, err, errlen);
    if (rc) return rc;
    rc = ls_store_env_dbi(e, "meta", false, &dbi);
    ls_store_env_rdlock(e);
    if (rc == 0) rc = ls_store_env_txn_begin(e, MDB_RDONLY, &txn);
    if (rc == 0) rc = mdb_get(txn, dbi, &k, &v);
    if (rc == 0 && ls_store_meta_decode(&v, out) != 0) {
        ls_msgf(err, errlen, "store %s: malformed meta record (%zu bytes)", path, v.mv_size);
        rc = LS_ECORRUPT;
    } else if (rc) {
        ls_msgf(err, errlen, "store %s: cannot read the meta record: %s", path, mdb_strerror(rc));
        rc = rc == ENOENT || rc == MDB_NOTFOUND ? LS_ENOENT : ls_store_map_rc(rc);
    }
    if (txn) mdb_txn_abort(txn);
    ls_store_env_unlock(e);
    ls_store_env_release(e);
    return rc;
}

/* ---- a consistent read view (the incremental resync reads its keys from one) ---- */

struct ls_store_view {
    ls_store_env_t *e;
    MDB_txn *txn;
    MDB_dbi data;
};

int ls_store_view_open(const char *path, ls_store_view_t **out, ls_store_meta_t *meta, char *err,
                       size_t errlen)
{
    *out = NULL;
    memset(meta, 0, sizeof(*meta));
    ls_store_view_t *v = calloc(1, sizeof(*v));
    if (!v) return LS_ENOMEM;
    static const char *const names[] = {"data", "meta"};
    MDB_dbi dbis[2];
    MDB_val k = {.mv_size = sizeof(META_KEY) - 1, .mv_data = (void *) META_KEY}, val;
    ls_store_env_options_t eo = {.readonly = true};
    int rc = ls_store_env_acquire(path, &eo, &v->e, err, errlen);
    if (rc) {
        free(v);
        return rc;
    }
    rc = ls_store_env_dbis(v->e, names, 2, false, dbis, NULL, NULL, NULL);
    ls_store_env_rdlock(v->e); /* held while the view lives: the map is not remapped under it */
    if (rc == 0) rc = ls_store_env_txn_begin(v->e, MDB_RDONLY, &v->txn);
    if (rc == 0) rc = mdb_get(v->txn, dbis[1], &k, &val);
    bool have_meta = rc == 0;
    if (rc == MDB_NOTFOUND && v->txn) rc = 0; /* no meta record yet: an empty store */
    if (rc) {
        ls_msgf(err, errlen, "store %s: cannot open a read view: %s", path, mdb_strerror(rc));
        rc = rc == MDB_NOTFOUND ? LS_ENOENT : ls_store_map_rc(rc);
    } else if (have_meta && ls_store_meta_decode(&val, meta) != 0) {
        ls_msgf(err, errlen, "store %s: malformed meta record (%zu bytes)", path, val.mv_size);
        rc = LS_ECORRUPT;
    }
    v->data = dbis[0];
    if (rc) {
        ls_store_view_close(v);
        return rc;
    }
    *out = v;
    return 0;
}

int ls_store_view_get(ls_store_view_t *v, const void *key, size_t key_len, const void **val,
                      size_t *val_len)
{
    MDB_val k = {.mv_size = key_len, .mv_data = (void *) key}, d;
    int rc = mdb_get(v->txn, v->data, &k, &d);
    if (rc == MDB_NOTFOUND) return LS_ENOENT;
    if (rc) return ls_store_map_rc(rc);
    *val = d.mv_data;
    *val_len = d.mv_size;
    return 0;
}

void ls_store_view_close(ls_store_view_t *v)
{
    if (!v) return;
    if (v->txn) mdb_txn_abort(v->txn);
    ls_store_env_unlock(v->e);
    ls_store_env_release(v->e);
    free(v);
}
