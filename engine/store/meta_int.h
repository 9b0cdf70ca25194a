/* store internals shared by store.c, store_aux.c and view.c: the handles, the meta record's
 * encoding and the mapping of LMDB codes. Not part of the module's API (store.h). */
#ifndef LS_STORE_META_INT_H
#define LS_STORE_META_INT_H

#include <lmdb.h>
#include <pthread.h>

#include "store/env.h"
#include "store/store.h"

#define DEFAULT_MAP_SIZE (64ull * 1024 * 1024)
#define META_KEY         "meta"
#define META_VERSION     1
#define META_SIZE        128 /* encoded meta record, see meta_encode */
#define META_SIZE_V2     104 /* the record before shadow_end and shadow_seal were added */
#define META_SIZE_V1     96  /* the record before applied_generations was added */

struct ls_store {
    ls_store_env_t *shared;  /* the process's environment of this path (store/env.h) */
    MDB_env *env;            /* its LMDB handle */
    MDB_dbi data;            /* "data": user keys */
    MDB_dbi meta_dbi;        /* "meta": the meta record */
    pthread_mutex_t meta_mu; /* guards meta */
    ls_store_meta_t meta;    /* copy of the last committed meta record */
    uint64_t map_grows;      /* times the map was grown since open */
    char path[4096];         /* environment directory, for messages */
};

struct ls_store_txn {
    ls_store_t *store; /* owner */
    MDB_txn *txn;      /* the LMDB write transaction */
    MDB_cursor *cur;   /* on "data", opened by the first put/del: a put whose key falls in the
                          leaf page of the previous one is placed without a search from the root
                          (keys applied in order are several times faster) */
    bool map_full;     /* a put/del hit MDB_MAP_FULL: retry after growing even if fn hides it */
    int nmaps;         /* mappings of data.mdb found by the first release (-1: none yet); the
                          map cannot move while the transaction runs (the env's read lock) */
    uintptr_t map_lo[4], map_hi[4]; /* their address ranges */
    uint32_t writes;                /* puts and deletes so far (RELEASE_WRITES) */
};

/* Maps an LMDB (or errno) code to an LS_E* code; MDB_MAP_FULL is passed through for retry. */
int ls_store_map_rc(int rc);
/* Encodes m into the META_SIZE bytes of out. */
void ls_store_meta_encode(const ls_store_meta_t *m, uint8_t out[META_SIZE]);
/* Decodes a meta record (either version); LS_ECORRUPT if it is malformed. */
int ls_store_meta_decode(const MDB_val *v, ls_store_meta_t *m);

#endif
