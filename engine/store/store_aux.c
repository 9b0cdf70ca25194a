/* The store's side records: small named values kept in the "meta" database beside the meta
 * record, written in a write transaction with the user's puts (the copy's carry of the shadow's
 * unsynced bytes, engine/copy/shadow_carry.c). See store.h. */
#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "store/env.h"
#include "store/meta_int.h"
#include "store/store.h"

static bool aux_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    return n > 0 && n <= 32 && strcmp(name, META_KEY) != 0;
}

int ls_store_aux_put(ls_store_txn_t *t, const char *name, const void *val, size_t len)
{
    if (!aux_name_ok(name)) return LS_EINVAL;
    MDB_val k = {strlen(name), (void *) name}, v = {len, (void *) val};
    int rc = mdb_put(t->txn, t->store->meta_dbi, &k, &v, 0);
    if (rc == MDB_MAP_FULL) t->map_full = true;
    return ls_store_map_rc(rc);
}

int ls_store_aux_del(ls_store_txn_t *t, const char *name)
{
    if (!aux_name_ok(name)) return LS_EINVAL;
    MDB_val k = {strlen(name), (void *) name};
    int rc = mdb_del(t->txn, t->store->meta_dbi, &k, NULL);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc == MDB_MAP_FULL) t->map_full = true;
    return ls_store_map_rc(rc);
}

int ls_store_aux_get(ls_store_t *s, const char *name, void **val, size_t *len)
{
    *val = NULL;
    *len = 0;
    if (!aux_name_ok(name)) return LS_EINVAL;
    MDB_txn *txn;
    ls_store_env_rdlock(s->shared);
    int rc = ls_store_env_txn_begin(s->shared, MDB_RDONLY, &txn);
    if (rc == 0) {
        MDB_val k = {strlen(name), (void *) name}, v;
        rc = mdb_get(txn, s->meta_dbi, &k, &v);
        if (rc == 0 && v.mv_size) {
            *val = malloc(v.mv_size);
            if (*val) {
                memcpy(*val, v.mv_data, v.mv_size);
                *len = v.mv_size;
            } else {
                rc = ENOMEM;
            }
        }
        mdb_txn_abort(txn);
    }
    ls_store_env_unlock(s->shared);
    if (rc == MDB_NOTFOUND) return LS_ENOENT;
    if (rc == ENOMEM) return LS_ENOMEM;
    return ls_store_map_rc(rc);
}
