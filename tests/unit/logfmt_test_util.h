/* Helpers shared by the logfmt tests (logfmt_test.c, logfmt_checks_test.c, logfmt_dump_test.c):
 * a small generation built with the harness, scans of a buffer or of raw records, a record
 * resealed after an edit. Static: each test program includes this once. */
#ifndef LS_LOGFMT_TEST_UTIL_H
#define LS_LOGFMT_TEST_UTIL_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/core.h"
#include "genbuild.h"
#include "harness.h"

#define K(s) .key = (const uint8_t *) (s), .key_len = sizeof(s) - 1

/* helpers a test program may leave unused */
#ifndef UTIL
#define UTIL static __attribute__((unused))
#endif

/* A small generation: 42, first LSN 100, two transactions (PUT, DEL, COMMIT; PUT, COMMIT). */
UTIL ls_h_gen_t *small_gen(bool close)
{
    ls_h_gen_t *g = ls_h_gen_default(42, 100);
    ls_h_gen_put(g, "alpha", 5, "hello", 5);
    ls_h_gen_del(g, "beta", 4);
    ls_h_gen_commit(g);
    ls_h_gen_put(g, "\x01\x02", 2, "", 0);
    ls_h_gen_commit(g);
    if (close) ls_h_gen_close(g);
    return g;
}

UTIL int scan(const uint8_t *b, size_t n, const ls_gen_expect_t *ex, ls_gen_info_t *in,
              ls_gen_verdict_t *v)
{
    return ls_gen_scan(b, n, ex, NULL, NULL, in, v);
}

/* Builds generation 7 (first LSN 1) from raw records, closes it and scans it; *bad gets the
 * offset of record `expect_bad`. */
UTIL int scan_raw(const ls_record_t *recs, size_t n, size_t expect_bad, ls_gen_verdict_t *v)
{
    ls_h_gen_t *g = ls_h_gen_default(7, 1);
    for (size_t i = 0; i < n; i++)
        ls_h_gen_raw(g, &recs[i], 0);
    ls_h_gen_close(g);
    size_t len;
    const uint8_t *b = ls_h_gen_bytes(g, &len);
    int rc = scan(b, len, NULL, NULL, v);
    if (rc) cr_assert_eq(v->offset, ls_h_gen_offset(g, expect_bad), "%s", v->msg);
    ls_h_gen_free(g);
    return rc;
}

/* Rewrites the checksum of the record (or trailer) at off after its bytes were edited. */
UTIL void reseal(uint8_t *b, size_t off, size_t n, uint64_t seed)
{
    ls_put32(b + off, ls_cksum32(b + off + 4, n - 4, seed));
}

/* A generation of about size bytes: PUTs of 160-byte values, a COMMIT every fourth. */
UTIL ls_h_gen_t *gen_of(size_t size)
{
    ls_h_gen_t *g = ls_h_gen_default(9, 1000);
    uint8_t val[160];
    char key[32];
    size_t len = 0;
    for (int i = 0; len + 4096 < size; i++) {
        memset(val, (uint8_t) i, sizeof(val));
        int kl = snprintf(key, sizeof(key), "user:%08d", i);
        ls_h_gen_put(g, key, (size_t) kl, val, sizeof(val));
        if (i % 4 == 3) ls_h_gen_commit(g);
        ls_h_gen_bytes(g, &len);
    }
    ls_h_gen_commit(g);
    ls_h_gen_close(g);
    return g;
}

/* small_gen(true) written to dir/name (its path in path): a valid generation file. */
UTIL ls_h_gen_t *small_gen_file(const char *dir, const char *name, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, name);
    ls_h_gen_t *g = small_gen(true);
    size_t len;
    const uint8_t *b = ls_h_gen_bytes(g, &len);
    cr_assert_eq(ls_h_write_file(path, b, len), 0);
    return g;
}

#endif
