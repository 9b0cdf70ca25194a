/* Divergence made by a network partition (issue 12): node-a (active for db1) and node-b (its
 * copy) in two network namespaces joined by one veth link. Both daemons keep running; the link
 * goes down on both sides; node-a's application goes on writing (generations node-b never gets),
 * node-b is activated once it no longer hears node-a, and written to. The link comes back: node-a
 * learns of epoch 2, shows Diverged naming node-b, and `logship resync` rebuilds it incrementally
 * as a copy of node-b (its generations after the split moved aside into diverged/2); the stores
 * end equal by mdb_dump and every commit acknowledged before the partition and on node-b is in
 * node-a's store. Needs root and iproute2 (netns.h). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemons.h"
#include "harness.h"
#include "netns.h"

static ls_h_pair_t pair;
static ls_h_netns_t nn;

static void fini(void)
{
    if (pair.dir) ls_h_pair_fini(&pair);
    ls_h_netns_fini(&nn);
}

TestSuite(partition, .fini = fini, .timeout = 90);

/* One configuration per node: each listens on its end of the link and reaches the other over
 * it; node-b names node-a in a [peer] section used both ways (activation, shipping back). */
static void write_conf(int node)
{
    const char *me = node == LS_H_A ? "node-a" : "node-b";
    int other = node == LS_H_A ? LS_H_B : LS_H_A;
    FILE *f = fopen(pair.conf[node], "w");
    cr_assert_not_null(f);
    fprintf(f,
            "[node]\nname = %s\ndata_dir = %s/%s\ncontrol_socket = %s\n"
            "[tls]\ninsecure_plaintext = true\n[listen]\naddress = %s:7401\n",
            me, pair.dir, me, pair.sock[node], nn.addr[0][node]);
    fprintf(f, "[%s %s]\nnetwork = repl %s:7401 bind=%s\n", node == LS_H_A ? "target" : "peer",
            node == LS_H_A ? "node-b" : "node-a", nn.addr[0][other], nn.addr[0][node]);
    fprintf(f, "heartbeat_interval = 200ms\nheartbeat_timeout = 1000ms\n");
    if (node == LS_H_A)
        /* its generations stay (no log removal): the split is one it still holds, so the
         * resync is incremental (without them: a full seed, resync_test.c) */
        fprintf(f, "[database db1]\nrole = active\ntargets = node-b\ntruncation_lag = 1h\n");
    else
        fprintf(f, "[database db1]\nrole = passive\nsource = node-a\ncopies = node-a, node-b\n");
    fclose(f);
}

static void partition(bool down)
{
    ls_h_netns_set(&nn, 0, LS_H_A, !down);
    ls_h_netns_set(&nn, 0, LS_H_B, !down);
}

/* `logship activate db1` on node-b, which succeeds once node-b no longer hears node-a (its
 * connection timed out and a connect fails); tried again until then. */
static bool activated(void *ctx)
{
    char *out, *err;
    int rc = ls_h_logship(&pair, "activate", LS_H_B, "", &out, &err);
    if (rc == 0) fprintf(stderr, "logship activate printed:\n%s", out);
    if (rc != 0) *(int *) ctx += 1;
    free(out);
    free(err);
    return rc == 0;
}

Test(partition, an_old_active_cut_off_diverges_and_resyncs_as_a_copy)
{
    if (!ls_h_netns_usable("the partition test")) return;
    static const char *const links[] = {"repl"};
    ls_h_netns_init(&nn, 1, links);
    ls_h_pair_opts_t o = {.plaintext = true};
    ls_h_pair_init(&pair, "partition", &o);
    write_conf(LS_H_A);
    write_conf(LS_H_B);
    ls_h_netns_node_start(&nn, &pair, LS_H_B);
    ls_h_netns_node_start(&nn, &pair, LS_H_A);

    char ack1[700], acka[700], ackb[700], args[1000];
    snprintf(ack1, sizeof(ack1), "%s/ack1.log", pair.dir);
    snprintf(acka, sizeof(acka), "%s/acka.log", pair.dir);
    snprintf(ackb, sizeof(ackb), "%s/ackb.log", pair.dir);
    snprintf(args, sizeof(args), "--transactions 600 --target-size 65536 --ack-log %s", ack1);
    ls_h_load_ok(&pair, LS_H_A, args);
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy did not catch up");

    partition(true);
    /* node-a's daemon runs on, cut off: what its application writes now never reaches node-b */
    snprintf(args, sizeof(args),
             "--transactions 60 --seed 5 --threads 1 --target-size 65536 --ack-log %s", acka);
    ls_h_load_ok(&pair, LS_H_A, args);
    cr_assert(ls_h_wait_state(&pair, LS_H_B, "Disconnected", 10000),
              "node-b still hears node-a across the partition");
    int refused = 0;
    cr_assert(ls_h_wait_for(activated, &refused, 30000), "node-b was never activated");
    fprintf(stderr, "activation refused %d time(s) first\n", refused);
    snprintf(args, sizeof(args),
             "--transactions 60 --seed 8 --threads 1 --target-size 65536 --ack-log %s", ackb);
    ls_h_load_ok(&pair, LS_H_B, args);

    partition(false);
    cr_assert(ls_h_wait_db_role(&pair, LS_H_A, "diverged"),
              "node-a did not find its divergence once the link was back");
    cJSON *st = ls_h_status(&pair, LS_H_A);
    cr_assert_str_eq(ls_h_jstr(ls_h_db1_of(st), "follows"), "node-b");
    cJSON_Delete(st);
    /* its writer is fenced: the application is refused, naming node-b */
    char *out, *err;
    int rc = ls_h_load_on(&pair, LS_H_A, "--transactions 10 --seed 99", &err);
    cr_assert_neq(rc, 0, "node-a's writer still commits");
    cr_assert(ls_h_contains(err, "node-b"), "%s", err);
    free(err);

    rc = ls_h_logship(&pair, "resync", LS_H_A, "", &out, &err);
    cr_assert_eq(rc, 0, "resync failed (%d): %s%s", rc, out, err);
    fprintf(stderr, "logship resync printed:\n%s", out);
    cr_assert(ls_h_contains(out, "is now a copy of node-b (epoch 2): incremental resync"), "%s",
              out);
    free(out);
    free(err);
    char cmd[1500];
    snprintf(cmd, sizeof(cmd), "ls %s/diverged/2 | grep -q '^E00-00000001-'", pair.db[LS_H_A]);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 5000), 0, "no epoch-1 generation in diverged/2");
    cr_assert(ls_h_wait_b_caught_up(&pair, 30000), "node-b did not ship to node-a");
    cr_assert(ls_h_stores_equal(&pair), "the stores differ after the resync");
    ls_h_ack_check(&pair, LS_H_A, ack1);
    ls_h_ack_check(&pair, LS_H_A, ackb);
}
