/*
 * The fixture shared by the shadow tests (copy_shadow_write_test.c, copy_shadow_pool_test.c): a
 * directory and a chain of 4 generations of 6 transactions, generation 3 standing for the active's
 * open log. Static: each test program includes this once.
 */
#ifndef LS_SHADOW_TEST_UTIL_H
#define LS_SHADOW_TEST_UTIL_H

#include "copy_test_util.h"

#define LSN 1000 /* a durable LSN the tests pass along */

static char *dir;
static chain_t ch;

/* The suite's .init: a directory named after name, the chain built. */
static inline void shadow_fixture_init(const char *name)
{
    dir = ls_h_tmpdir(name);
    chain_build(&ch, 4, 6, 200); /* 4 generations of 6 transactions: several KiB each */
}

/* The suite's .fini. */
static inline void shadow_fixture_fini(void)
{
    chain_free(&ch);
    ls_h_rmtree_free(dir);
}

/* Generation 3 as the active's open log: its bytes without the trailer. */
static inline size_t open_len(void)
{
    return ch.len[3] - LS_GEN_TRAILER_SIZE;
}

/* The end of the last complete transaction in the first n bytes of generation 3. */
static inline size_t commit_end_within(size_t n)
{
    ls_gen_expect_t x = {.allow_open = true};
    ls_gen_info_t info;
    ls_gen_verdict_t v;
    cr_assert_eq(ls_gen_scan(ch.buf[3], n, &x, NULL, NULL, &info, &v), 0, "%s", v.msg);
    return (size_t) info.commit_end;
}

/* logs/ holds generation 3, the active's file byte for byte (nothing of a longer file behind). */
static inline void logs_hold_gen3(void)
{
    char path[4200];
    gen_path(path, sizeof(path), dir, "logs", 3, "");
    size_t len = 0;
    uint8_t *b = ls_h_read_file(path, &len);
    cr_assert(b);
    cr_assert_eq(len, ch.len[3]);
    cr_assert_arr_eq(b, ch.buf[3], len);
    free(b);
}

#endif
