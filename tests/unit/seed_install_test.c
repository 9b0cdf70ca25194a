/* The seed install's admission of the announced stream (issue 13, defect 2): a total_bytes near
 * 2^64 must not wrap the free-space and map-size sums into something small and be admitted. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/core.h"
#include "harness.h"
#include "seed/seed.h"

Test(seed_install, total_bytes_near_the_top_of_u64_is_refused_without_wrapping)
{
    char *base = ls_h_tmpdir("seed-install");
    cr_assert_not_null(base);
    char copy[1024];
    snprintf(copy, sizeof(copy), "%s/c1", base);
    ls_seed_info_t info = {
        .total_bytes = UINT64_MAX - 100, .last_lsn = 10, .generation = 2, .epoch = 1};
    memset(info.dbid, 0x42, LS_DBID_LEN);
    ls_seed_install_options_t o = {.copy_dir = copy};
    ls_seed_install_t *in = NULL;
    char err[512] = "";
    int rc = ls_seed_install_begin(&o, &info, &in, err, sizeof(err));
    cr_assert_eq(rc, LS_ETOOBIG, "rc %d (%s): %s", rc, ls_err_name(rc), err);
    cr_assert_null(in);
    cr_assert(ls_h_contains(err, "18446744073709551515"), "the message names the figure: %s", err);
    /* Just past what the sums allow, and a size that merely exceeds the disk. */
    info.total_bytes = (1ull << 50) + 1;
    cr_assert_eq(ls_seed_install_begin(&o, &info, &in, err, sizeof(err)), LS_ETOOBIG, "%s", err);
    info.total_bytes = 1ull << 49;
    cr_assert_eq(ls_seed_install_begin(&o, &info, &in, err, sizeof(err)), LS_ENOSPC, "%s", err);
    cr_assert_null(in);
    ls_h_rmtree_free(base);
}
