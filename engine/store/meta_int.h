/* store internals shared by store.c and view.c: the meta record's encoding and the mapping of
 * LMDB codes. Not part of the module's API (store.h). */
#ifndef LS_STORE_META_INT_H
#define LS_STORE_META_INT_H

#include <lmdb.h>

#include "store/store.h"

#define DEFAULT_MAP_SIZE (64ull * 1024 * 1024)
#define META_KEY         "meta"
#define META_VERSION     1
#define META_SIZE        128 /* encoded meta record, see meta_encode */
#define META_SIZE_V2     104 /* the record before shadow_end and shadow_seal were added */
#define META_SIZE_V1     96  /* the record before applied_generations was added */

/* Maps an LMDB (or errno) code to an LS_E* code; MDB_MAP_FULL is passed through for retry. */
int ls_store_map_rc(int rc);
/* Encodes m into the META_SIZE bytes of out. */
void ls_store_meta_encode(const ls_store_meta_t *m, uint8_t out[META_SIZE]);
/* Decodes a meta record (either version); LS_ECORRUPT if it is malformed. */
int ls_store_meta_decode(const MDB_val *v, ls_store_meta_t *m);

#endif
