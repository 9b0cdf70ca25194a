/*
 * Helpers shared by the store tests (store_test.c, store_resident_test.c): two database
 * identities, a callback that puts a range of keys (struct puts) and opening a store that must
 * open. Static functions: each test program includes this once.
 */
#ifndef LS_STORE_TEST_UTIL_H
#define LS_STORE_TEST_UTIL_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "store/store.h"

/* helpers a test program may leave unused */
#define UTIL static __attribute__((unused))

UTIL const uint8_t ID_A[LS_DBID_LEN] = {0xaa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
UTIL const uint8_t ID_B[LS_DBID_LEN] = {0xbb, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

struct puts {
    int first, count;  /* keys k<first> .. k<first+count-1> */
    size_t value_size; /* bytes per value */
    int calls;         /* times the apply callback ran */
    int fail_at;       /* return LS_EINVAL at this key index (-1: never) */
};

UTIL int put_range(void *ctx, ls_store_txn_t *txn)
{
    struct puts *p = ctx;
    p->calls++;
    char *val = malloc(p->value_size + 1);
    memset(val, 'v', p->value_size);
    int rc = 0;
    for (int i = 0; i < p->count && rc == 0; i++) {
        if (i == p->fail_at) {
            rc = LS_EINVAL;
            break;
        }
        char key[32];
        int n = snprintf(key, sizeof(key), "k%08d", p->first + i);
        snprintf(val, p->value_size + 1, "value-%d-", p->first + i);
        rc = ls_store_put(txn, key, (size_t) n, val, p->value_size);
    }
    free(val);
    return rc;
}

UTIL ls_store_t *open_store(const char *dir, const uint8_t *id, uint64_t map_size)
{
    ls_store_options_t o = {.create = true, .dbid = id, .map_size = map_size};
    ls_store_t *s = NULL;
    char err[256] = "";
    int rc = ls_store_open(dir, &o, &s, err, sizeof(err));
    cr_assert_eq(rc, 0, "open %s: %s", dir, err);
    return s;
}

#endif
