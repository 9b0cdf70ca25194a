/* The incremental resync of a diverged old active with real daemons (issue 12,
 * docs/ACTIVATION.md "Incremental resync"): node-a active for db1 ships a store of several MB to
 * node-b; node-a's daemon is killed with SIGKILL while its application goes on writing
 * (`logship load --ack-log`): generations node-b never receives. node-b is activated and written
 * to; node-a's daemon returns, is fenced (Diverged, naming node-b), and `logship resync db1` on
 * node-a moves its diverged generations aside into <db>/diverged/2/ (they stay there), fetches
 * from node-b only the keys either side touched after the split (far fewer bytes than the store:
 * both printed), and leaves node-a a copy of node-b that node-b ships to: the stores are equal by
 * mdb_dump and every marker acknowledged on node-b is in node-a's store. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include <logship/error.h>

#include "core/core.h"
#include "daemons.h"
#include "harness.h"
#include "status/status.h"

static ls_h_pair_t pair;

static void fini(void)
{
    ls_h_pair_fini(&pair);
}

TestSuite(resync, .fini = fini, .timeout = 120);

/* The number after `label` in text (0 when absent). */
static uint64_t after(const char *text, const char *label)
{
    const char *p = strstr(text, label);
    return p ? strtoull(p + strlen(label), NULL, 10) : 0;
}

Test(resync, diverged_old_active_resyncs_incrementally)
{
    ls_h_pair_start_peers(&pair, "resync-diverged", NULL, NULL);
    char ack1[700], acka[700], ackb[700], args[1000];
    snprintf(ack1, sizeof(ack1), "%s/ack1.log", pair.dir);
    snprintf(acka, sizeof(acka), "%s/acka.log", pair.dir);
    snprintf(ackb, sizeof(ackb), "%s/ackb.log", pair.dir);
    /* about 6 MB of values over 6000 keys */
    snprintf(args, sizeof(args),
             "--transactions 1500 --records-per-txn 4 --value-size 1000 --threads 2 "
             "--target-size 262144 --ack-log %s",
             ack1);
    ls_h_load_ok(&pair, LS_H_A, args);
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy did not catch up");

    /* node-a's daemon dies; its application goes on writing: generations node-b never gets. */
    ls_h_node_kill(&pair, LS_H_A);
    snprintf(args, sizeof(args),
             "--transactions 40 --records-per-txn 2 --value-size 1000 --seed 5 --threads 1 "
             "--target-size 65536 --ack-log %s",
             acka);
    ls_h_load_ok(&pair, LS_H_A, args);
    ls_h_activate(&pair, LS_H_B, 2);
    snprintf(args, sizeof(args),
             "--transactions 40 --records-per-txn 2 --value-size 1000 --seed 8 --threads 1 "
             "--target-size 65536 --ack-log %s",
             ackb);
    ls_h_load_ok(&pair, LS_H_B, args);

    /* node-a returns: fenced, Diverged, naming node-b. */
    ls_h_node_start(&pair, LS_H_A, NULL);
    cr_assert(ls_h_wait_role(&pair, LS_H_A, "diverged", "Diverged"),
              "node-a did not find its divergence");
    cJSON *st = ls_h_status(&pair, LS_H_A);
    cr_assert_str_eq(ls_h_jstr(ls_h_db1_of(st), "follows"), "node-b");
    cJSON_Delete(st);

    char *out, *err;
    int rc = ls_h_logship(&pair, "resync", LS_H_A, "", &out, &err);
    cr_assert_eq(rc, 0, "resync failed (%d): %s%s", rc, out, err);
    fprintf(stderr, "logship resync printed:\n%s", out);
    cr_assert(ls_h_contains(out, "is now a copy of node-b (epoch 2): incremental resync"), "%s",
              out);
    /* The report: the diverged generations, their keys, where they went. */
    char dest[800];
    snprintf(dest, sizeof(dest), "moved aside into %s/diverged/2", pair.db[LS_H_A]);
    cr_assert(ls_h_contains(out, dest), "%s (want: %s)", out, dest);
    uint64_t gens = after(out, "diverged: "), keys = after(out, " records, ");
    cr_assert_geq(gens, 1, "%s", out);
    /* every transaction acknowledged on node-a after the split left a txn/<id> marker there */
    cr_assert_eq(access(acka, R_OK), 0, "%s: no ack log", acka);
    uint64_t acked = ls_h_file_lines(acka);
    cr_assert_geq(acked, 40);
    cr_assert_geq(keys, acked, "%" PRIu64 " keys diverged, %" PRIu64 " acknowledged: %s", keys,
                  acked, out);
    cr_assert(ls_h_contains(out, "diverged keys:"), "%s", out);
    /* Far fewer bytes than the store. */
    uint64_t moved = after(out, "moved: "), store = after(out, " of a ");
    fprintf(stderr, "incremental resync: %" PRIu64 " bytes moved, store %" PRIu64 " bytes\n", moved,
            store);
    cr_assert_gt(store, 4u << 20, "the store is %" PRIu64 " bytes: %s", store, out);
    cr_assert_gt(moved, 0, "%s", out);
    cr_assert_lt(moved, store / 10, "%" PRIu64 " bytes moved of %" PRIu64, moved, store);
    free(out);
    free(err);

    /* The diverged generations are on disk, never deleted: epoch-1 files in diverged/2. */
    char cmd[1500];
    snprintf(cmd, sizeof(cmd), "ls %s/diverged/2 | grep -c '^E00-00000001-'", pair.db[LS_H_A]);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 5000), 0, "no epoch-1 file in diverged/2");
    cr_assert_geq(strtoull(out, NULL, 10), gens, "%s", out);
    free(out);

    /* A copy of node-b, shipped to, equal to it. */
    cr_assert(ls_h_wait_b_caught_up(&pair, 30000), "node-b did not ship to node-a");
    st = ls_h_status(&pair, LS_H_A);
    const cJSON *d = ls_h_db1_of(st);
    cr_assert_str_eq(ls_h_jstr(d, "role"), "copy");
    cr_assert_str_eq(ls_h_jstr(d, "follows"), "node-b");
    cJSON_Delete(st);
    cr_assert(ls_h_stores_equal(&pair), "the stores differ after the resync");
    ls_h_ack_check(&pair, LS_H_A, ack1);
    ls_h_ack_check(&pair, LS_H_A, ackb);
}

/* node-a's daemon dies with the copy caught up; while it is down (and while_down runs, when not
 * NULL) its application writes a generation node-b never gets; node-b is activated and written
 * to. */
static void diverge_while_a_is_down(void (*while_down)(void))
{
    ls_h_load_ok(&pair, LS_H_A, "--transactions 300 --target-size 65536");
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy did not catch up");
    ls_h_node_kill(&pair, LS_H_A);
    if (while_down) while_down();
    ls_h_load_ok(&pair, LS_H_A, "--transactions 30 --seed 5 --threads 1 --target-size 65536");
    ls_h_activate(&pair, LS_H_B, 2);
    ls_h_load_ok(&pair, LS_H_B, "--transactions 30 --seed 8 --threads 1 --target-size 65536");
}

/* With `auto_resync = true` node-a resyncs by itself once it finds itself diverged. */
Test(resync, auto_resync_rebuilds_a_diverged_old_active_by_itself)
{
    ls_h_pair_start_peers(&pair, "resync-auto", "auto_resync = true\n", NULL);
    diverge_while_a_is_down(NULL);
    ls_h_node_start(&pair, LS_H_A, NULL);
    cr_assert(ls_h_wait_role(&pair, LS_H_A, "copy", "Healthy"), "node-a did not resync by itself");
    cr_assert(ls_h_wait_b_caught_up(&pair, 30000), "node-b did not ship to node-a");
    cr_assert(ls_h_stores_equal(&pair), "the stores differ after the automatic resync");
    char cmd[1500], *out;
    snprintf(cmd, sizeof(cmd), "ls %s/diverged/2 | grep -c '^E00-00000001-'", pair.db[LS_H_A]);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 5000), 0, "no epoch-1 file in diverged/2");
    free(out);
    /* node-a's log says why it started */
    snprintf(cmd, sizeof(cmd),
             "grep -q 'db1 is diverged (auto_resync = true): resyncing from node-b' %s",
             pair.log[LS_H_A]);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 5000), 0, "node-a's log does not say it resynced");
}

/* A first network where nothing listens, before node-a's network to node-b. */
static void add_dead_network(void)
{
    char cmd[1500];
    snprintf(cmd, sizeof(cmd),
             "sed -i 's/^network = loop /network = dead 127.0.0.1:%d\\nnetwork = loop /' %s && "
             "grep -q '^network = dead ' %s",
             ls_h_free_port(), pair.conf[LS_H_A], pair.conf[LS_H_A]);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 5000), 0, "cannot add a network to node-a's target");
}

/* node-a's [target node-b] lists first a network where nothing listens: the resync takes the
 * networks in order with fallback, as the shipper does, and rebuilds node-a over the second. */
Test(resync, takes_the_next_network_when_the_first_fails)
{
    ls_h_pair_start_peers(&pair, "resync-nets", NULL, NULL);
    diverge_while_a_is_down(add_dead_network);
    ls_h_node_start(&pair, LS_H_A, NULL);
    cr_assert(ls_h_wait_db_role(&pair, LS_H_A, "diverged"), "node-a is not diverged");
    char *out, *err, cmd[1500];
    int rc = ls_h_logship(&pair, "resync", LS_H_A, "", &out, &err);
    cr_assert_eq(rc, 0, "resync with the first network dead failed (%d): %s%s", rc, out, err);
    free(out);
    free(err);
    snprintf(cmd, sizeof(cmd),
             "grep -q '\\[resync\\] db1: connected to node-b over network loop' %s",
             pair.log[LS_H_A]);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 5000), 0, "node-a's log does not name network loop");
    cr_assert(ls_h_wait_b_caught_up(&pair, 30000), "node-b did not ship to node-a");
    cr_assert(ls_h_stores_equal(&pair), "the stores differ");
}

/* node-b's oldest generation in logs/ is past *ctx. */
typedef struct {
    int node;
    uint64_t gen;
} oldest_cond_t;

/* The node's oldest generation in logs/ is past c->gen (none: 0). */
static bool oldest_past(void *ctx)
{
    const oldest_cond_t *c = ctx;
    char cmd[1500], *out = NULL;
    snprintf(cmd, sizeof(cmd),
             "ls %s/logs | sed -n 's/^E00-[0-9a-f]*-\\([0-9a-f]*\\)\\.log$/\\1/p' "
             "| while read g; do echo $((0x$g)); done | sort -n | head -1",
             pair.db[c->node]);
    if (ls_h_sh(cmd, &out, NULL, 5000) != 0) return false;
    uint64_t oldest = strtoull(out ? out : "0", NULL, 10);
    free(out);
    return oldest > c->gen;
}

static bool first_removed(void *ctx)
{
    oldest_cond_t c = {LS_H_B, *(uint64_t *) ctx};
    return oldest_past(&c);
}

/* The new active no longer holds any generation node-a holds (its log cap, max_log_bytes, removed
 * those it held only for node-a): no split can be found, so every local generation is set aside
 * into <db>/diverged/2 and a full seed replaces the store; the command says so and why, and the
 * generations set aside are still there after the seed replaced the directory. */
/* node-a diverged from node-b, and node-b no longer holds any generation node-a holds: node-a's
 * daemon is started (with env) and found Diverged. */
static void diverge_beyond_b_logs(const char *tag, char *const a_env[])
{
    ls_h_pair_start_peers(&pair, tag, NULL, "copies = node-a, node-b\nmax_log_bytes = 65536\n");
    ls_h_load_ok(&pair, LS_H_A, "--transactions 300 --target-size 65536");
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy did not catch up");
    ls_h_node_kill(&pair, LS_H_A);
    ls_h_load_ok(&pair, LS_H_A, "--transactions 30 --seed 5 --threads 1 --target-size 65536");
    uint64_t first = ls_h_activate(&pair, LS_H_B, 2);
    ls_h_load_ok(&pair, LS_H_B, "--transactions 600 --seed 8 --target-size 65536");
    /* node-b's cap removes the generations it held only for node-a, the first of epoch 2 too */
    cr_assert(ls_h_wait_for(first_removed, &first, 15000), "node-b still holds generation %" PRIu64,
              first);
    ls_h_node_start(&pair, LS_H_A, a_env);
    cr_assert(ls_h_wait_db_role(&pair, LS_H_A, "diverged"), "node-a did not find its divergence");
}

/* `test -e PATH` on node-a's db1 + suffix. */
static bool a_has(const char *suffix)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "test -e %s%s", pair.db[LS_H_A], suffix);
    return ls_h_sh(cmd, NULL, NULL, 5000) == 0;
}

/* node-a's daemon dies at a fault point during `logship resync` (the command fails). */
static void resync_dies_at_fault(void)
{
    char *out, *err;
    int rc = ls_h_logship(&pair, "resync", LS_H_A, "", &out, &err);
    cr_assert_neq(rc, 0, "resync succeeded through the fault point: %s", out);
    free(out);
    free(err);
    int st = ls_h_wait(pair.pid[LS_H_A], 20000);
    cr_assert_eq(st, LS_FAULT_EXIT_CODE, "node-a's daemon: status %d", st);
    pair.pid[LS_H_A] = 0;
}

/* node-a restarted is a copy of node-b with its diverged generations in diverged/2, shipped to
 * until equal. */
static void a_is_an_equal_copy_keeping_diverged(void)
{
    cr_assert(ls_h_wait_role(&pair, LS_H_A, "copy", "Healthy"), "node-a is no copy of node-b");
    cr_assert(!a_has(".diverged"), "db1.diverged was not put back");
    char cmd[1500], *out = NULL;
    snprintf(cmd, sizeof(cmd), "ls %s/diverged/2 | grep -c '^E00-00000001-'", pair.db[LS_H_A]);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 5000), 0, "the diverged generations are gone");
    free(out);
    cJSON *st = ls_h_status(&pair, LS_H_A);
    cr_assert_str_eq(ls_h_jstr(ls_h_db1_of(st), "follows"), "node-b");
    cJSON_Delete(st);
    cr_assert(ls_h_wait_b_caught_up(&pair, 30000), "node-b did not ship to node-a");
    cr_assert(ls_h_stores_equal(&pair), "the stores differ");
}

/* A crash of node-a's daemon right after the full seed's swap, before diverged/ is back from
 * <db>.diverged: the role file came with the new store (copy, following node-b), and the next
 * start puts diverged/ back. */
Test(resync, full_seed_fallback_survives_a_crash_after_the_swap)
{
    char *env[] = {"LS_FAULTS=resync.after_swap=exit", NULL};
    diverge_beyond_b_logs("resync-crash-after", env);
    resync_dies_at_fault();
    cr_assert(a_has(".diverged/2"), "the crash did not leave diverged/ beside the directory");
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "grep -qx 'role copy' %s/role && grep -qx 'follows node-b' %s/role",
             pair.db[LS_H_A], pair.db[LS_H_A]);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 5000), 0, "the swapped-in directory's role is not copy");
    ls_h_node_start(&pair, LS_H_A, NULL);
    a_is_an_equal_copy_keeping_diverged();
}

/* A crash before the swap, diverged/ set aside: the next start puts it back, node-a is Diverged
 * as before, and `logship resync` then finishes. */
Test(resync, full_seed_fallback_survives_a_crash_before_the_swap)
{
    char *env[] = {"LS_FAULTS=resync.before_swap=exit", NULL};
    diverge_beyond_b_logs("resync-crash-before", env);
    resync_dies_at_fault();
    cr_assert(a_has(".diverged/2"), "the crash did not leave diverged/ beside the directory");
    ls_h_node_start(&pair, LS_H_A, NULL);
    cr_assert(ls_h_wait_db_role(&pair, LS_H_A, "diverged"), "node-a is not diverged");
    cr_assert(a_has("/diverged/2") && !a_has(".diverged"), "diverged/ was not put back");
    char *out, *err;
    int rc = ls_h_logship(&pair, "resync", LS_H_A, "", &out, &err);
    cr_assert_eq(rc, 0, "resync failed (%d): %s%s", rc, out, err);
    free(out);
    free(err);
    a_is_an_equal_copy_keeping_diverged();
}

/* The incremental resync: a crash of node-a's daemon after the stream is applied, before the
 * role file says copy: node-a restarts Diverged over a store already resynced, and a second
 * `logship resync` (the same split, the same keys) finishes it. */
Test(resync, incremental_resync_finishes_after_a_crash_before_the_role_file)
{
    ls_h_pair_start_peers(&pair, "resync-crash-inc", NULL, NULL);
    diverge_while_a_is_down(NULL);
    char *env[] = {"LS_FAULTS=resync.after_swap=exit", NULL};
    ls_h_node_start(&pair, LS_H_A, env);
    cr_assert(ls_h_wait_db_role(&pair, LS_H_A, "diverged"), "node-a is not diverged");
    resync_dies_at_fault();
    ls_h_node_start(&pair, LS_H_A, NULL);
    cr_assert(ls_h_wait_db_role(&pair, LS_H_A, "diverged"), "node-a is not diverged");
    char *out, *err;
    int rc = ls_h_logship(&pair, "resync", LS_H_A, "", &out, &err);
    cr_assert_eq(rc, 0, "the second resync failed (%d): %s%s", rc, out, err);
    cr_assert(ls_h_contains(out, "incremental resync"), "%s", out);
    free(out);
    free(err);
    a_is_an_equal_copy_keeping_diverged();
}

/* A resync that fails (node-b unreachable) leaves node-a as it was, Diverged, saying why in
 * status; `logship resync` once node-b is back succeeds. */
Test(resync, a_failed_resync_falls_back_and_runs_again)
{
    diverge_beyond_b_logs("resync-failed", NULL);
    ls_h_node_kill(&pair, LS_H_B);
    char *out, *err;
    int rc = ls_h_logship(&pair, "resync", LS_H_A, "", &out, &err);
    cr_assert_eq(rc, 1, "resync with node-b down (%d): %s%s", rc, out, err);
    cr_assert(ls_h_contains(err, "connection to node-b lost") &&
                  ls_h_contains(err, "connection refused"),
              "%s", err);
    free(out);
    free(err);
    cJSON *st = ls_h_status(&pair, LS_H_A);
    cr_assert_not_null(st);
    const cJSON *d = ls_h_db1_of(st);
    cr_assert_str_eq(ls_h_jstr(d, "role"), "diverged");
    cr_assert(ls_h_contains(ls_h_jstr(d, "reason"), "the last resync from node-b failed"), "%s",
              ls_h_jstr(d, "reason"));
    cr_assert_str_eq(ls_h_str(st, "state"), "Diverged", "the ship machine shows it");
    cr_assert(ls_h_contains(ls_h_str(st, "reason"), "connection refused"), "%s",
              ls_h_str(st, "reason"));
    cJSON_Delete(st);
    ls_h_node_start(&pair, LS_H_B, NULL);
    rc = ls_h_logship(&pair, "resync", LS_H_A, "", &out, &err);
    cr_assert_eq(rc, 0, "the second resync failed (%d): %s%s", rc, out, err);
    free(out);
    free(err);
    a_is_an_equal_copy_keeping_diverged();
}

/* Out of descriptors for the copy's wake-up once the new store is in place (fault point
 * node.copy_wake, its first hit): the resync fails before the role file says copy, as when that
 * file cannot be saved: node-a stays diverged, its daemon answers, and `logship resync` then
 * runs to the end. */
Test(resync, out_of_descriptors_at_the_copys_open_fails_and_runs_again)
{
    ls_h_pair_start_peers(&pair, "resync-emfile", NULL, NULL);
    diverge_while_a_is_down(NULL);
    char *env[] = {"LS_FAULTS=node.copy_wake=fail@1", NULL};
    ls_h_node_start(&pair, LS_H_A, env);
    cr_assert(ls_h_wait_role(&pair, LS_H_A, "diverged", "Diverged"), "node-a is not diverged");
    char *out, *err;
    int rc = ls_h_logship(&pair, "resync", LS_H_A, "", &out, &err);
    cr_assert_eq(rc, 1, "resync out of descriptors (%d): %s%s", rc, out, err);
    cr_assert(ls_h_contains(err, "cannot open the copy db1: cannot make its receiver's wake-up: "
                                 "Too many open files"),
              "%s", err);
    free(out);
    free(err);
    cJSON *st = ls_h_status(&pair, LS_H_A);
    cr_assert_not_null(st, "node-a's daemon stopped");
    cr_assert_str_eq(ls_h_jstr(ls_h_db1_of(st), "role"), "diverged");
    cJSON_Delete(st);
    rc = ls_h_logship(&pair, "resync", LS_H_A, "", &out, &err);
    cr_assert_eq(rc, 0, "the second resync failed (%d): %s%s", rc, out, err);
    free(out);
    free(err);
    a_is_an_equal_copy_keeping_diverged();
}

Test(resync, falls_back_to_a_full_seed_and_keeps_the_diverged_generations)
{
    diverge_beyond_b_logs("resync-fallback", NULL);
    char *out, *err;
    int rc = ls_h_logship(&pair, "resync", LS_H_A, "", &out, &err);
    cr_assert_eq(rc, 0, "resync failed (%d): %s%s", rc, out, err);
    fprintf(stderr, "logship resync printed:\n%s", out);
    cr_assert(ls_h_contains(out, "fell back to a full seed"), "%s", out);
    cr_assert(ls_h_contains(out, "moved: "), "%s", out);
    free(out);
    free(err);
    a_is_an_equal_copy_keeping_diverged();
}

Test(resync, falls_back_to_a_full_seed_when_no_common_generation_is_left)
{
    ls_h_pair_start_peers(&pair, "resync-removed", NULL, NULL);
    ls_h_load_ok(&pair, LS_H_A, "--transactions 300 --target-size 65536");
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy did not catch up");
    cJSON *st = ls_h_status(&pair, LS_H_B);
    oldest_cond_t shipped = {LS_H_A, (uint64_t) ls_h_num(st, "last_replayed")};
    cJSON_Delete(st);
    /* node-a removes only what node-a knows node-b replayed and synced */
    cr_assert(ls_h_wait_num(&pair, LS_H_A, "last_replayed_synced", (double) shipped.gen, 30000),
              "node-b did not sync generation %" PRIu64, shipped.gen);
    /* node-b goes down; node-a writes on, and its log removal takes what node-b replayed */
    ls_h_node_kill(&pair, LS_H_B);
    ls_h_load_ok(&pair, LS_H_A, "--transactions 300 --seed 5 --target-size 65536");
    cr_assert(ls_h_wait_for(oldest_past, &shipped, 20000), "node-a still holds generation %" PRIu64,
              shipped.gen);
    ls_h_node_kill(&pair, LS_H_A);
    ls_h_node_start(&pair, LS_H_B, NULL);
    ls_h_activate(&pair, LS_H_B, 2);
    ls_h_load_ok(&pair, LS_H_B, "--transactions 30 --seed 8 --threads 1 --target-size 65536");
    ls_h_node_start(&pair, LS_H_A, NULL);
    cr_assert(ls_h_wait_db_role(&pair, LS_H_A, "diverged"), "node-a did not find its divergence");
    char *out, *err;
    int rc = ls_h_logship(&pair, "resync", LS_H_A, "", &out, &err);
    cr_assert_eq(rc, 0, "resync failed (%d): %s%s", rc, out, err);
    cr_assert(ls_h_contains(out, "fell back to a full seed (every generation db1 still holds "
                                 "diverged from node-b's chain"),
              "%s", out);
    free(out);
    free(err);
    a_is_an_equal_copy_keeping_diverged();
}
