/* The old active's return with real daemons (issue 12, docs/ACTIVATION.md "Epochs on the wire",
 * "logship resync"): node-a active for db1, node-b its copy ([peer node-a], copies on node-b);
 * node-a's daemon killed with SIGKILL, `logship activate db1` on node-b, the application writes
 * on node-b, then node-a's daemon restarts with its unchanged configuration.
 *   - lossless cycle: node-a learns of epoch 2 from node-b (EPOCH), shows Demoted naming node-b
 *     (status, JSON and the table), its writer refuses commits (LS_EFENCED naming node-b), a
 *     restart keeps it so;
 *     `logship resync db1` makes it a copy of node-b without a restart, resuming at the
 *     generation epoch 2 began with (nothing else moves); node-b ships to it; both stores are
 *     equal by mdb_dump and every --ack-log marker is in node-a's store (tools/ack-check.sh).
 *   - diverged: node-a's application wrote generations after node-a's daemon died and before
 *     the activation: on return node-a shows Diverged, node-b accepted none of those old-epoch
 *     generations (none on its disk) (its incremental resync: resync_test.c).
 *   - a copy whose history moved on refuses older epochs from its source: node-a, resynced as a
 *     copy of node-b and restarted (its epochs read from its directory), is offered epoch 1 by
 *     a scripted source playing node-b: its EPOCH and its GEN_BEGIN of the generation after the
 *     split are refused with LS_EFENCED, and nothing of that generation is written. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <logship/error.h>

#include "daemons.h"
#include "harness.h"
#include "scripted.h"
#include "status/status.h"

static ls_h_pair_t pair;
static ls_h_sp_t *sp;

static void fini(void)
{
    ls_h_sp_close(sp);
    sp = NULL;
    ls_h_pair_fini(&pair);
}

TestSuite(demote, .fini = fini, .timeout = 120);

static uint64_t kill_a_and_activate_b(void)
{
    ls_h_node_kill(&pair, LS_H_A);
    return ls_h_activate(&pair, LS_H_B, 2);
}

/* The newest generation of epoch in node's logs/ and inspect/ (0: none). */
static uint64_t newest_of(int node, unsigned epoch)
{
    char cmd[1500], *out = NULL;
    snprintf(cmd, sizeof(cmd),
             "ls %s/logs %s/inspect 2>/dev/null | sed -n 's/^E00-%08x-\\([0-9a-f]*\\).*/\\1/p' "
             "| while read g; do echo $((0x$g)); done | sort -n | tail -1",
             pair.db[node], pair.db[node], epoch);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 5000), 0);
    uint64_t g = strtoull(out ? out : "0", NULL, 10);
    free(out);
    return g;
}

/* `logship resync db1` on node-a makes it a copy of node-b resuming at first (epoch 2's first
 * generation), and node-b ships to it until caught up. */
static void resync_a(uint64_t first)
{
    char *out, *err, want[200];
    int rc = ls_h_logship(&pair, "resync", LS_H_A, "", &out, &err);
    cr_assert_eq(rc, 0, "resync failed (%d): %s%s", rc, out, err);
    snprintf(want, sizeof(want),
             "is now a copy of node-b (epoch 2): it resumes at generation %" PRIu64, first);
    cr_assert(ls_h_contains(out, want), "%s (want: %s)", out, want);
    free(out);
    free(err);
    cr_assert(ls_h_wait_b_caught_up(&pair, 30000), "node-b did not ship to node-a");
}

Test(demote, old_active_returns_demoted_then_resyncs_as_a_copy)
{
    ls_h_pair_start_peers(&pair, "demote-cycle", NULL, NULL);
    char ack1[700], ack2[700], args[1000];
    snprintf(ack1, sizeof(ack1), "%s/ack1.log", pair.dir);
    snprintf(ack2, sizeof(ack2), "%s/ack2.log", pair.dir);
    snprintf(args, sizeof(args), "--transactions 1500 --threads 2 --target-size 65536 --ack-log %s",
             ack1);
    ls_h_load_ok(&pair, LS_H_A,
                 args); /* it ends with a roll: its last generation is closed and shipped */
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy did not catch up");
    uint64_t first = kill_a_and_activate_b();
    snprintf(args, sizeof(args), "--transactions 300 --seed 77 --target-size 65536 --ack-log %s",
             ack2);
    ls_h_load_ok(&pair, LS_H_B, args); /* the application writes on the new active */

    /* node-a's daemon returns with its unchanged configuration: fenced by node-b's epoch. */
    ls_h_node_start(&pair, LS_H_A, NULL);
    cr_assert(ls_h_wait_role(&pair, LS_H_A, "demoted", "Demoted"),
              "node-a did not learn of epoch 2");
    cJSON *st = ls_h_status(&pair, LS_H_A);
    const cJSON *d = ls_h_db1_of(st);
    cr_assert_str_eq(ls_h_jstr(d, "follows"), "node-b");
    cr_assert_eq(ls_status_json_u64(d, "epoch"), 2);
    cr_assert(ls_h_contains(ls_h_str(st, "reason"), "node-b"), "%s", ls_h_str(st, "reason"));
    cJSON_Delete(st);
    char cmd[1200], *out, *err;
    snprintf(cmd, sizeof(cmd), "%s status -c %s", ls_h_bin("logship"), pair.conf[LS_H_A]);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 10000), 0);
    cr_assert(ls_h_contains(out, "Demoted") && ls_h_contains(out, "node-b"), "%s", out);
    free(out);

    /* Its writer refuses commits, naming the new active. */
    int rc = ls_h_load_on(&pair, LS_H_A, "--transactions 10 --seed 99", &err);
    cr_assert_neq(rc, 0, "a fenced database accepted commits");
    cr_assert(ls_h_contains(err, "fenced") && ls_h_contains(err, "node-b"), "%s", err);
    free(err);

    /* A restart keeps it demoted (the role file): its machine is fenced at once, nothing is
     * offered. */
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_start(&pair, LS_H_A, NULL);
    cr_assert(ls_h_wait_role(&pair, LS_H_A, "demoted", "Demoted"),
              "node-a is not demoted after a restart");

    /* Rebuilt as a copy of node-b, without a restart, from where epoch 2 began. */
    resync_a(first);
    st = ls_h_status(&pair, LS_H_A);
    d = ls_h_db1_of(st);
    cr_assert_str_eq(ls_h_jstr(d, "role"), "copy");
    cr_assert_str_eq(ls_h_jstr(d, "follows"), "node-b");
    cr_assert_str_eq(ls_h_str(st, "source"), "node-b");
    cJSON_Delete(st);
    cr_assert(ls_h_stores_equal(&pair), "the stores differ after the resync");
    ls_h_ack_check(&pair, LS_H_A, ack1);
    ls_h_ack_check(&pair, LS_H_A, ack2);

    /* Nothing of epoch 1 after the split on node-a; epoch 2 from its first generation on. */
    cr_assert_lt(newest_of(LS_H_A, 1), first, "node-a holds epoch-1 generations after the split");
    cr_assert_geq(newest_of(LS_H_A, 2), first, "node-a holds no generation of epoch 2");

    /* The copy survives a restart of node-a's daemon (the role file says copy of node-b). */
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_start(&pair, LS_H_A, NULL);
    cr_assert(ls_h_wait_role(&pair, LS_H_A, "copy", "Healthy"),
              "node-a is no copy after a restart");
    rc = ls_h_logship(&pair, "resync", LS_H_A, "", &out, &err);
    cr_assert_eq(rc, 1, "%s%s", out, err);
    cr_assert(ls_h_contains(err, "is a copy on node-a already, following node-b"), "%s", err);
    free(out);
    free(err);
}

/* Out of descriptors for the copy's wake-up (fault point node.copy_wake, its first hit: as at
 * RLIMIT_NOFILE), `logship resync` fails naming the copy and the reason before the role file is
 * written: node-a stays demoted, its daemon runs on, and the same command then works. */
Test(demote, resync_out_of_descriptors_fails_cleanly_and_runs_again)
{
    ls_h_pair_start_peers(&pair, "demote-emfile", NULL, NULL);
    ls_h_load_ok(&pair, LS_H_A, "--transactions 200 --target-size 65536");
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy did not catch up");
    uint64_t first = kill_a_and_activate_b();
    char *env[] = {"LS_FAULTS=node.copy_wake=fail@1", NULL};
    ls_h_node_start(&pair, LS_H_A, env);
    cr_assert(ls_h_wait_role(&pair, LS_H_A, "demoted", "Demoted"),
              "node-a did not learn of epoch 2");
    char *out, *err;
    int rc = ls_h_logship(&pair, "resync", LS_H_A, "", &out, &err);
    cr_assert_eq(rc, 1, "%s%s", out, err);
    cr_assert(ls_h_contains(err, "resync of db1: cannot open the copy db1: cannot make its "
                                 "receiver's wake-up: Too many open files"),
              "%s", err);
    free(out);
    free(err);
    cJSON *st = ls_h_status(&pair, LS_H_A);
    cr_assert_not_null(st, "node-a's daemon stopped");
    cr_assert_str_eq(ls_h_jstr(ls_h_db1_of(st), "role"), "demoted", "the role file is unchanged");
    cJSON_Delete(st);
    resync_a(first);
    cr_assert(ls_h_stores_equal(&pair), "the stores differ after the resync");
}

/* Out of descriptors when a switchover makes node-a a copy (fault point node.copy_wake, its
 * first hit): the copy waits as for a writer still open, said once, and the next poll opens it;
 * the switchover ends done, node-a a copy of node-b, its daemon alive. */
Test(demote, switchover_out_of_descriptors_waits_then_becomes_a_copy)
{
    ls_h_pair_start_peers(&pair, "demote-sw-emfile", NULL, NULL);
    ls_h_node_stop(&pair, LS_H_A);
    char *env[] = {"LS_FAULTS=node.copy_wake=fail@1", NULL};
    ls_h_node_start(&pair, LS_H_A, env);
    ls_h_load_ok(&pair, LS_H_A, "--transactions 200 --target-size 65536");
    cr_assert(ls_h_wait_role(&pair, LS_H_A, "active", "Healthy"), "node-a does not ship");
    char *out, *err, cmd[1200];
    int rc = ls_h_logship(&pair, "switchover", LS_H_A, "--to node-b", &out, &err);
    cr_assert_eq(rc, 0, "switchover failed (%d): %s%s", rc, out, err);
    cr_assert(ls_h_contains(out, "db1 on node-a is now a copy of node-b"), "%s", out);
    free(out);
    free(err);
    cr_assert(ls_h_wait_role(&pair, LS_H_A, "copy", "Healthy"), "node-a is no copy of node-b");
    snprintf(cmd, sizeof(cmd),
             "grep -c \"its copy waits: cannot open the copy db1: cannot make its receiver's "
             "wake-up: Too many open files\" %s",
             pair.log[LS_H_A]);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 5000), 0, "the wait was not logged");
    cr_assert_eq(atoi(out), 1, "said once: %s", out);
    free(out);
}

Test(demote, diverged_old_active_is_refused_and_its_generations_stay_out)
{
    ls_h_pair_start_peers(&pair, "demote-diverged", NULL, NULL);
    ls_h_load_ok(&pair, LS_H_A, "--transactions 600 --target-size 65536");
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy did not catch up");
    /* node-a's daemon dies; its application goes on writing: generations node-b never gets. */
    ls_h_node_kill(&pair, LS_H_A);
    ls_h_load_ok(&pair, LS_H_A, "--transactions 600 --seed 5 --target-size 65536");
    uint64_t first = ls_h_activate(&pair, LS_H_B, 2);
    ls_h_load_ok(&pair, LS_H_B, "--transactions 100 --seed 8 --target-size 65536");

    ls_h_node_start(&pair, LS_H_A, NULL);
    cr_assert(ls_h_wait_role(&pair, LS_H_A, "diverged", "Diverged"),
              "node-a did not find its divergence");
    cJSON *st = ls_h_status(&pair, LS_H_A);
    const cJSON *d = ls_h_db1_of(st);
    cr_assert_str_eq(ls_h_jstr(d, "follows"), "node-b");
    cr_assert(ls_h_contains(ls_h_jstr(d, "reason"), "generation(s) after the split"), "%s",
              ls_h_jstr(d, "reason"));
    cJSON_Delete(st);

    /* node-b accepted none of node-a's generations of epoch 1 from the split on. */
    uint64_t last_old = newest_of(LS_H_B, 1);
    cr_assert_lt(last_old, first,
                 "node-b holds epoch-1 generation %" PRIu64 " (epoch 2 from %" PRIu64 ")", last_old,
                 first);
    cr_assert_geq(newest_of(LS_H_A, 1), first, "node-a wrote no generation after the split");

    char *err;
    int rc = ls_h_load_on(&pair, LS_H_A, "--transactions 10 --seed 99", &err);
    cr_assert_neq(rc, 0, "a fenced database accepted commits");
    cr_assert(ls_h_contains(err, "node-b"), "%s", err);
    free(err);
    /* `logship resync` of a diverged node: tests/integration/resync_test.c. */
}

Test(demote, a_copy_whose_history_moved_on_refuses_older_epochs)
{
    ls_h_pair_start_peers(&pair, "demote-refuse", NULL, NULL);
    ls_h_load_ok(&pair, LS_H_A, "--transactions 400 --target-size 65536");
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy did not catch up");
    uint64_t first = kill_a_and_activate_b();
    ls_h_load_ok(&pair, LS_H_B, "--transactions 100 --seed 3 --target-size 65536");
    ls_h_node_start(&pair, LS_H_A, NULL);
    cr_assert(ls_h_wait_role(&pair, LS_H_A, "demoted", "Demoted"),
              "node-a did not learn of epoch 2");
    char *out, *err;
    int rc = ls_h_logship(&pair, "resync", LS_H_A, "", &out, &err);
    cr_assert_eq(rc, 0, "resync failed (%d): %s%s", rc, out, err);
    free(out);
    free(err);
    cr_assert(ls_h_wait_b_caught_up(&pair, 30000), "node-b did not ship to node-a");
    uint64_t held = newest_of(LS_H_A, 2);
    cr_assert_geq(held, first);

    /* node-b gone, node-a restarted: what it knows of epoch 2 comes from its directory. */
    ls_h_node_kill(&pair, LS_H_B);
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_start(&pair, LS_H_A, NULL);
    uint8_t id[LS_PROTO_DBID_LEN];
    ls_h_logs_dbid(pair.db[LS_H_A], "E00-00000002-*", id);

    /* An old active of epoch 1 (scripted, named node-b) offers db1 at version 3. */
    const char *names[] = {"db1"};
    static ls_frame_t f;
    ls_h_sp_hello(&f, "node-b", 1, names, (const uint8_t(*)[LS_PROTO_DBID_LEN]) id);
    f.hello.version_max = LS_PROTO_VERSION_EPOCH;
    sp = ls_h_sp_connect(pair.aport);
    ls_h_sp_send(sp, &f);
    const ls_frame_t *g = ls_h_sp_expect(sp, LS_FRAME_WELCOME, 10000);
    cr_assert_not_null(g, "no WELCOME");
    cr_assert_eq(g->welcome.dbs[0].status, LS_DB_ACCEPTED, "node-a copies db1 from node-b");
    g = ls_h_sp_expect(sp, LS_FRAME_EPOCH, 5000);
    cr_assert_not_null(g, "no EPOCH from node-a");
    cr_assert_eq(g->epoch.epoch, 2, "node-a knows epoch 2 from its directory");
    g = ls_h_sp_expect(sp, LS_FRAME_RESUME, 5000);
    cr_assert_not_null(g, "no RESUME");
    uint64_t next = g->resume.next_generation;
    cr_assert_eq(next, held + 1);

    /* Its generation after the split, of epoch 1: refused, nothing written. */
    memset(&f, 0, sizeof(f));
    f.type = LS_FRAME_GEN_BEGIN;
    memcpy(f.gen_begin.dbid, id, LS_PROTO_DBID_LEN);
    f.gen_begin.epoch = 1;
    f.gen_begin.generation = next;
    f.gen_begin.size = 4096;
    f.gen_begin.close_ns = 1;
    ls_h_sp_send(sp, &f);
    g = ls_h_sp_expect(sp, LS_FRAME_ERROR, 5000);
    cr_assert_not_null(g, "the old-epoch GEN_BEGIN was not refused");
    cr_assert_eq(g->error.code, LS_EFENCED);
    char msg[600];
    snprintf(msg, sizeof(msg), "%.*s", (int) g->error.message.len, g->error.message.ptr);
    cr_assert(ls_h_contains(msg, "of epoch 1 from node-b refused") &&
                  ls_h_contains(msg, "generations of an older epoch are never accepted"),
              "%s", msg);
    cr_assert_eq(newest_of(LS_H_A, 1) < first, true, "nothing of epoch 1 after the split");
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "ls %s/inspect | grep -c . || true", pair.db[LS_H_A]);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 5000), 0);
    cr_assert_eq(atoi(out), 0, "inspect/ holds %s", out);
    free(out);

    /* Its EPOCH of epoch 1: refused the same way. */
    memset(&f, 0, sizeof(f));
    f.type = LS_FRAME_EPOCH;
    memcpy(f.epoch.dbid, id, LS_PROTO_DBID_LEN);
    f.epoch.epoch = 1;
    f.epoch.first_generation = 1;
    f.epoch.active = ls_proto_str("node-b");
    ls_h_sp_send(sp, &f);
    g = ls_h_sp_expect(sp, LS_FRAME_ERROR, 5000);
    cr_assert_not_null(g, "the older EPOCH was not refused");
    cr_assert_eq(g->error.code, LS_EFENCED);
    snprintf(msg, sizeof(msg), "%.*s", (int) g->error.message.len, g->error.message.ptr);
    cr_assert(ls_h_contains(msg, "announces epoch 1"), "%s", msg);
}
