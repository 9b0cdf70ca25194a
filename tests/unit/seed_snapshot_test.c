/* seed: the size of a compacted LMDB copy read from its meta page (engine/seed/snapshot_direct.c,
 * ls__snap_meta_size), which a streamed snapshot announces in SEED_BEGIN before its first byte:
 * checked against a real compacted copy of this LMDB, and refused (0) for pages that are not
 * its meta page. Streaming itself: seed_test.c. */
#include <criterion/criterion.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "seed/snapshot_int.h"

typedef struct {
    char *tmp;
    uint8_t *file; /* the compacted copy's data.mdb */
    size_t len;
    uint32_t psize;
} copy_t;

/* A store of n keys with values of vlen bytes, compacted into <tmp>/copy/data.mdb. */
static void compacted_copy(copy_t *c, int n, size_t vlen)
{
    c->tmp = ls_h_tmpdir("seed_snapshot");
    char src[1024], dst[1024], file[1100];
    snprintf(src, sizeof(src), "%s/store", c->tmp);
    snprintf(dst, sizeof(dst), "%s/copy", c->tmp);
    cr_assert_eq(mkdir(src, 0700), 0);
    cr_assert_eq(mkdir(dst, 0700), 0);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_mapsize(env, 64u << 20), 0);
    cr_assert_eq(mdb_env_open(env, src, 0, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    uint8_t *value = malloc(vlen);
    cr_assert_not_null(value);
    for (int i = 0; i < n; i++) {
        char key[32];
        memset(value, i & 0xff, vlen);
        MDB_val k = {.mv_size = (size_t) snprintf(key, sizeof(key), "key-%06d", i), .mv_data = key};
        MDB_val v = {.mv_size = vlen, .mv_data = value};
        cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    }
    free(value);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    MDB_stat st;
    cr_assert_eq(mdb_env_stat(env, &st), 0);
    c->psize = st.ms_psize;
    cr_assert_eq(mdb_env_copy2(env, dst, MDB_CP_COMPACT), 0);
    mdb_env_close(env);
    snprintf(file, sizeof(file), "%s/data.mdb", dst);
    c->file = ls_h_read_file(file, &c->len);
    cr_assert_not_null(c->file, "%s", file);
    cr_assert_geq(c->len, 2 * (size_t) c->psize);
}

static void copy_free(copy_t *c)
{
    free(c->file);
    ls_h_rmtree_free(c->tmp);
}

Test(seed_snapshot, meta_page_names_the_compacted_copy_size)
{
    const int sizes[][2] = {{0, 0}, {10, 100}, {500, 3000}, {2000, 200}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        copy_t c;
        compacted_copy(&c, sizes[i][0], (size_t) sizes[i][1]);
        uint64_t size = ls__snap_meta_size(c.file + c.psize, c.psize);
        cr_assert_eq(size, c.len, "%d keys of %d bytes: meta page says %llu, the copy is %zu",
                     sizes[i][0], sizes[i][1], (unsigned long long) size, c.len);
        copy_free(&c);
    }
}

Test(seed_snapshot, a_page_that_is_not_the_meta_page_gives_zero)
{
    copy_t c;
    compacted_copy(&c, 100, 500);
    uint8_t *meta = malloc(c.psize);
    cr_assert_not_null(meta);
    /* another page size than the copy's */
    cr_assert_eq(ls__snap_meta_size(c.file + c.psize, c.psize * 2), 0);
    /* the magic damaged */
    memcpy(meta, c.file + c.psize, c.psize);
    meta[16] ^= 0x01;
    cr_assert_eq(ls__snap_meta_size(meta, c.psize), 0);
    /* another format version */
    memcpy(meta, c.file + c.psize, c.psize);
    meta[20] = 2;
    cr_assert_eq(ls__snap_meta_size(meta, c.psize), 0);
    /* a last page number of 0, and one past any real store */
    memcpy(meta, c.file + c.psize, c.psize);
    memset(meta + 16 + 120, 0, 8);
    cr_assert_eq(ls__snap_meta_size(meta, c.psize), 0);
    memset(meta + 16 + 120, 0xff, 8);
    cr_assert_eq(ls__snap_meta_size(meta, c.psize), 0);
    /* zeros, and a data page of the copy */
    memset(meta, 0, c.psize);
    cr_assert_eq(ls__snap_meta_size(meta, c.psize), 0);
    if (c.len >= 3 * (size_t) c.psize)
        cr_assert_eq(ls__snap_meta_size(c.file + 2 * (size_t) c.psize, c.psize), 0);
    free(meta);
    copy_free(&c);
}
