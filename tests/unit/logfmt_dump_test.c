/* logfmt: `logship dump` of valid, damaged and open generations and its usage errors; a 1 MiB
 * generation's digest across hash batches; oversize input and allocation failure as errors.
 * Split from logfmt_test.c; builders in logfmt_test_util.h. */

#include <criterion/criterion.h>

#include "logfmt_test_util.h"

/* ---- logship dump ------------------------------------------------------------------------ */

static int dump(const char *a1, const char *a2, char **out, char **err)
{
    char *argv[] = {(char *) ls_h_bin("logship"), "dump", (char *) a1, (char *) a2, NULL};
    return ls_h_run(argv, out, err, 10000);
}

Test(logfmt, dump_valid_generation)
{
    char *dir = ls_h_tmpdir("dump");
    char path[1024];
    ls_h_gen_t *g = small_gen_file(dir, "E00-00000001-000000000000002a.log", path, sizeof(path));
    char *out, *err;
    cr_assert_eq(dump(path, "--records", &out, &err), 0, "%s%s", out, err);
    cr_assert(ls_h_contains(out, "verdict: ok"), "%s", out);
    cr_assert(ls_h_contains(out, "record count: 5"), "%s", out);
    cr_assert(ls_h_contains(out, "generation:     42"), "%s", out);
    cr_assert(ls_h_contains(out, "database id:    000102030405060708090a0b0c0d0e0f"), "%s", out);
    cr_assert(ls_h_contains(out, "created:        2026-11-18T11:06:40.000000000Z"), "%s", out);
    cr_assert(ls_h_contains(out, "offset 128: PUT    lsn 100 txid 1 key \"alpha\" value 5 bytes"),
              "%s", out);
    cr_assert(ls_h_contains(out, "key 0x0102"), "%s", out);
    cr_assert(ls_h_contains(out, "COMMIT lsn 104 txid 2"), "%s", out);
    free(out);
    free(err);
    cr_assert_eq(dump(path, NULL, &out, &err), 0);
    cr_assert(!ls_h_contains(out, "offset 128:"), "records are listed only with --records");
    free(out);
    free(err);
    ls_h_gen_free(g);
    ls_h_rmtree_free(dir);
}

Test(logfmt, dump_damaged_and_open_generations)
{
    char *dir = ls_h_tmpdir("dump");
    char path[1024];
    snprintf(path, sizeof(path), "%s/bad.log", dir);
    ls_h_gen_t *g = small_gen(true);
    size_t len;
    uint8_t *b = ls_h_gen_copy(g, &len);
    size_t off = ls_h_gen_offset(g, 3);
    b[off + LS_REC_HEADER_SIZE] ^= 0x10;
    cr_assert_eq(ls_h_write_file(path, b, len), 0);
    char *out, *err, want[128];
    cr_assert_eq(dump(path, NULL, &out, &err), 1);
    snprintf(want, sizeof(want), "verdict: LS_ERECCKSUM: record at offset %zu: checksum", off);
    cr_assert(ls_h_contains(out, want), "%s", out);
    free(out);
    free(err);
    /* An open log: no trailer, exit 1, and where its last whole transaction ends. */
    cr_assert_eq(ls_h_write_file(path, b, off), 0);
    cr_assert_eq(dump(path, NULL, &out, &err), 1);
    cr_assert(ls_h_contains(out, "trailer: missing"), "%s", out);
    cr_assert(ls_h_contains(out, "verdict: LS_ENOTRAILER"), "%s", out);
    snprintf(want, sizeof(want), "ends at offset %zu", off);
    cr_assert(ls_h_contains(out, want), "%s", out);
    free(out);
    free(err);
    free(b);
    ls_h_gen_free(g);
    ls_h_rmtree_free(dir);
}

Test(logfmt, dump_usage_errors)
{
    char *out, *err;
    cr_assert_eq(dump("/nonexistent/E00.log", NULL, &out, &err), 1);
    cr_assert(ls_h_contains(err, "cannot read '/nonexistent/E00.log'"), "%s", err);
    free(out);
    free(err);
    char *argv[] = {(char *) ls_h_bin("logship"), "dump", NULL};
    cr_assert_eq(ls_h_run(argv, &out, &err, 10000), 2);
    cr_assert(ls_h_contains(err, "missing FILE"), "%s", err);
    free(out);
    free(err);
    cr_assert_eq(dump("x.log", "--bogus", &out, &err), 2);
    cr_assert(ls_h_contains(err, "unknown option '--bogus'"), "%s", err);
    free(out);
    free(err);
    cr_assert_eq(dump("x.log", "y.log", &out, &err), 2);
    cr_assert(ls_h_contains(err, "unexpected argument 'y.log'"), "%s", err);
    free(out);
    free(err);
}

Test(logfmt, one_mib_generation_digest_spans_hash_batches)
{
    ls_h_gen_t *g = gen_of(LS_GEN_DEFAULT_SIZE);
    size_t len;
    const uint8_t *b = ls_h_gen_bytes(g, &len);
    ls_gen_info_t in;
    ls_gen_verdict_t v;
    cr_assert_eq(scan(b, len, NULL, &in, &v), 0, "%s", v.msg);
    cr_assert_eq(in.record_count, ls_h_gen_count(g));
    cr_assert_arr_eq(in.digest, ls_h_gen_digest(g), LS_DIGEST_SIZE);
    /* A flip deep inside (past the first hash batch) in a record whose checksum is resealed:
     * only the digest can catch it. */
    uint8_t *c = ls_h_gen_copy(g, &len);
    size_t i = ls_h_gen_count(g) / 2, off = ls_h_gen_offset(g, i);
    uint32_t n = ls_get32(c + off + 4);
    c[off + n - 1] ^= 0x80;
    reseal(c, off, n, ls_h_gen_seed(g));
    cr_assert_eq(scan(c, len, NULL, &in, &v), LS_EDIGEST, "%s", v.msg);
    free(c);
    ls_h_gen_free(g);
}

Test(logfmt, oversize_input_and_allocation_failure_are_errors)
{
    /* Never touched: the size check comes first, so the pages are never faulted in. */
    uint8_t *huge = malloc((size_t) LS_GEN_HARD_CAP + 1);
    cr_assert_not_null(huge);
    ls_gen_verdict_t v;
    cr_assert_eq(scan(huge, (size_t) LS_GEN_HARD_CAP + 1, NULL, NULL, &v), LS_ETOOBIG);
    free(huge);
    char *dir = ls_h_tmpdir("logfmt");
    char path[1024];
    snprintf(path, sizeof(path), "%s/sparse.log", dir);
    cr_assert_eq(ls_h_write_file(path, "", 0), 0);
    cr_assert_eq(truncate(path, (off_t) LS_GEN_HARD_CAP + 1), 0);
    cr_assert_eq(ls_gen_scan_file(path, NULL, NULL, NULL, NULL, &v), LS_ETOOBIG);
    cr_assert(ls_h_contains(v.msg, path), "%s", v.msg);
    ls_h_rmtree_free(dir);
#ifdef LS_FAULTS_ENABLED
    ls_h_gen_t *g = small_gen(true);
    size_t len;
    const uint8_t *b = ls_h_gen_bytes(g, &len);
    setenv("LS_FAULTS", "logfmt.digest_alloc=fail", 1);
    cr_assert_eq(scan(b, len, NULL, NULL, &v), LS_ENOMEM);
    ls_h_gen_free(g);
#endif
}
