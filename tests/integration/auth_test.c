/* One rule for who may ship and who may seed (issue 13, defect 5; docs/CONFIG.md, peer_name):
 * with `[target node-b] peer_name = real-b` on node-a, node-b is the holder of a certificate for
 * real-b. The seed server used to admit whoever held a certificate named like the section
 * (node-b) and to refuse the real target; now both shipping and seeding ask for real-b. */
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

TestSuite(auth, .fini = fini, .timeout = 150);

/* A TLS pair whose node-a knows node-b by the certificate name real-b; node-b presents the
 * certificate named cert ("node-b": the section's name; "real-b": the right one). */
static void pair_with_peer_name(const char *tag, const char *cert)
{
    ls_h_pair_init(&pair, tag,
                   &(ls_h_pair_opts_t){.seedable = true, .a_target_extra = "peer_name = real-b\n"});
    char cmd[1600];
    snprintf(cmd, sizeof(cmd), "%s certs %s/certs --node real-b", ls_h_bin("logship"), pair.dir);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 30000), 0, "logship certs --node real-b");
    if (strcmp(cert, "node-b")) { /* node-b's configuration names the other certificate */
        snprintf(cmd, sizeof(cmd), "sed -i 's|certs/node-b\\.|certs/%s.|' %s", cert,
                 pair.conf[LS_H_B]);
        cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 5000), 0);
    }
    ls_h_load(&pair, "--transactions 100 --records-per-txn 10 --value-size 400 --seed 41");
    ls_h_node_start(&pair, LS_H_A, NULL);
    ls_h_node_start(&pair, LS_H_B, NULL);
}

Test(auth, a_certificate_named_like_the_section_is_refused_a_seed)
{
    pair_with_peer_name("auth-wrong", "node-b");
    char *out = NULL, *err = NULL;
    int rc = ls_h_seed(&pair, NULL, &out, &err, 60000);
    cr_assert_neq(rc, 0, "node-b's certificate is not real-b's, yet it was seeded: %s %s", out,
                  err);
    cr_assert(ls_h_contains(err, "real-b") && ls_h_contains(err, "certificate"),
              "the refusal names the certificate wanted: %s %s", out, err);
    free(out);
    free(err);
    char path[700];
    snprintf(path, sizeof(path), "%s/store/data.mdb", pair.db[LS_H_B]);
    size_t len = 0;
    uint8_t *data = ls_h_read_file(path, &len);
    cr_assert(!data || len == 0, "no snapshot reached node-b");
    free(data);
    /* Shipping asks for the same name: node-b gets nothing that way either. */
    cJSON *b = ls_h_status(&pair, LS_H_B);
    cr_assert_leq(ls_h_num(b, "last_replayed"), 0);
    cJSON_Delete(b);
}

Test(auth, the_peer_name_certificate_ships_and_seeds)
{
    pair_with_peer_name("auth-right", "real-b");
    cr_assert(ls_h_wait_caught_up(&pair, 60000), "shipping to real-b");
    char *out = NULL, *err = NULL;
    int rc = ls_h_seed(&pair, "--delete-existing", &out, &err, 60000);
    cr_assert_eq(rc, 0, "the real target is seeded: %s %s", out, err);
    free(out);
    free(err);
    ls_h_load(&pair, "--transactions 30 --records-per-txn 10 --value-size 400 --seed 42");
    cr_assert(ls_h_wait_caught_up(&pair, 60000));
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_stop(&pair, LS_H_B);
    cr_assert(ls_h_stores_equal(&pair));
}
