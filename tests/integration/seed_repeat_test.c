/* `logship seed` repeated quickly (issue 13, defect 7): the receiver thread released a seed's
 * count of outstanding items under the lock and sent its wake-up after unlocking, so the next
 * `logship seed` could free the seed object in between and the wake-up touched freed memory
 * (run this test from the SANITIZE=1 build too, where it shows reliably). The fault point
 * seed.client.item_done holds the receiver thread at that place. Every seed here is refused by
 * the source (db1 has no log there yet), so each ends at once and the next follows. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemons.h"
#include "harness.h"

static ls_h_pair_t pair;

static void fini(void)
{
    ls_h_pair_fini(&pair);
}

TestSuite(seed_repeat, .fini = fini, .timeout = 150);

Test(seed_repeat, quickly_repeated_seeds_never_touch_a_freed_seed)
{
    ls_h_pair_init(&pair, "seed-repeat", &(ls_h_pair_opts_t){.plaintext = true, .seedable = true});
    /* libuv, which reads the freed seed in uv_async_send, is not instrumented: under ASan, freed
     * memory is zeroed so that such a read finds a NULL loop and the daemon dies of it. */
    char *b_env[] = {"LS_FAULTS=seed.client.item_done=sleep:300",
                     "ASAN_OPTIONS=max_free_fill_size=65536:free_fill_byte=0", NULL};
    ls_h_node_start(&pair, LS_H_A, NULL);
    ls_h_node_start(&pair, LS_H_B, b_env);
    int refused = 0, busy = 0;
    for (int i = 0; i < 12; i++) {
        char *out = NULL, *err = NULL;
        int rc = ls_h_seed(&pair, NULL, &out, &err, 30000);
        cr_assert_eq(ls_h_wait(pair.pid[LS_H_B], 0), -1, "node-b died after seed %d (see %s)", i,
                     pair.log[LS_H_B]);
        cr_assert_eq(rc, 1, "seed %d: %s %s", i, out, err);
        if (ls_h_contains(err, "winding down"))
            busy++;
        else if (ls_h_contains(err, "no log yet"))
            refused++;
        else
            cr_assert_fail("seed %d failed for another reason: %s %s", i, out, err);
        free(out);
        free(err);
    }
    cr_assert_gt(refused, 0);
    fprintf(stderr, "seed_repeat: %d refused by the source, %d while the last wound down\n",
            refused, busy);
    cJSON *b = ls_h_status(&pair, LS_H_B);
    cr_assert_not_null(b, "node-b answers");
    cJSON_Delete(b);
    ls_h_node_stop(&pair, LS_H_B);
    ls_h_node_stop(&pair, LS_H_A);
}
