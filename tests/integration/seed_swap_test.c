/* The seed's swap and the copy pointer (issue 13, defect 6): the loop cleared the copy pointer when
 * it handed the old copy to the receiver thread, which read that pointer without a lock; a late
 * abort (the connection that served the copy ending) processed between the two halves of the
 * swap dereferenced NULL. A scripted node-a stays attached to the copy through the seed (it
 * ignores the request to connect again) and leaves while the fault point seed.client.swap holds
 * the swap. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "daemons.h"
#include "harness.h"
#include "scripted.h"

static ls_h_pair_t pair;
static ls_h_sp_t *sp;

static void fini(void)
{
    ls_h_sp_close(sp);
    sp = NULL;
    ls_h_pair_fini(&pair);
}

TestSuite(seed_swap, .fini = fini, .timeout = 150);

static const char *seed_state(void)
{
    static char s[64];
    cJSON *j = ls_h_seed_status(&pair);
    const cJSON *v = j ? cJSON_GetObjectItem(j, "state") : NULL;
    snprintf(s, sizeof(s), "%s", cJSON_IsString(v) ? v->valuestring : "");
    cJSON_Delete(j);
    return s;
}

Test(seed_swap, a_late_abort_between_the_halves_of_the_swap_is_harmless)
{
    ls_h_pair_init(&pair, "seed-swap-abort",
                   &(ls_h_pair_opts_t){.plaintext = true, .seedable = true});
    char *b_env[] = {"LS_FAULTS=seed.client.swap=sleep:2000", NULL};
    ls_h_node_start(&pair, LS_H_B, b_env);
    ls_h_node_start(&pair, LS_H_A, NULL);
    ls_h_load(&pair, "--transactions 200 --records-per-txn 10 --value-size 400 --seed 51");
    cr_assert(ls_h_wait_caught_up(&pair, 60000));
    /* The scripted node-a takes the copy over (the newer connection wins). */
    const char *names[] = {"db1"};
    uint8_t ids[1][LS_PROTO_DBID_LEN];
    ls_h_logs_dbid(pair.db[LS_H_A], "E00-*.log", ids[0]);
    static ls_frame_t f;
    ls_h_sp_hello(&f, "node-a", 1, names, (const uint8_t(*)[LS_PROTO_DBID_LEN]) ids);
    sp = ls_h_sp_connect(pair.port);
    ls_h_sp_send(sp, &f);
    const ls_frame_t *w = ls_h_sp_expect(sp, LS_FRAME_WELCOME, 10000);
    cr_assert(w && w->welcome.dbs[0].status == LS_DB_ACCEPTED);
    cr_assert_not_null(ls_h_sp_expect(sp, LS_FRAME_RESUME, 5000));
    /* The seed: the scripted node-a ignores the ERROR asking it to connect again. */
    pid_t seed = ls_h_seed_start(&pair, "--delete-existing");
    bool installing = false;
    for (int i = 0; i < 600 && !installing; i++) {
        installing = !strcmp(seed_state(), "installing");
        if (!installing) ls_h_sp_idle(sp, 50);
    }
    cr_assert(installing, "the seed reached its swap (state %s)", seed_state());
    cr_assert(!ls_h_sp_is_closed(sp), "the scripted node-a was still attached");
    ls_h_sp_close(sp); /* the late abort, while seed.client.swap holds the swap */
    sp = NULL;
    int rc = ls_h_wait(seed, 60000);
    cr_assert_eq(ls_h_wait(pair.pid[LS_H_B], 0), -1, "node-b died in the swap (see %s)",
                 pair.log[LS_H_B]);
    cr_assert_eq(rc, 0, "logship seed (see %s/seed.log)", pair.dir);
    ls_h_load(&pair, "--transactions 30 --records-per-txn 10 --value-size 400 --seed 52");
    cr_assert(ls_h_wait_caught_up(&pair, 60000), "the seeded copy ships again");
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_stop(&pair, LS_H_B);
    cr_assert(ls_h_stores_equal(&pair));
}
