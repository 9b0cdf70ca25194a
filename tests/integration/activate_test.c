/* Activation with real daemons (issue 12, docs/ACTIVATION.md): node-a active for db1, node-b its
 * copy; node-a's daemon killed with SIGKILL (or stopped with SIGSTOP, or alive), then
 * `logship activate db1` on node-b.
 *   - lossless failover ([peer node-a] and copies on node-b): every commit `logship load`
 * acknowledged (its --ack-log markers) is in the activated store (mdb_dump), the application then
 * writes on node-b, the role survives a restart of node-b's daemon;
 *   - refusal while node-a answers (its connection alive; a connect to it succeeding), --force;
 *   - lossy: K generations closed on node-a while the copy was suspended, node-a killed, node-b's
 *     daemon killed and restarted (what node-a announced is kept with the copy): refused without
 *     --max-loss K, with it exactly those K generations reported, and shown by status;
 *   - a malformed role file stops the daemon, naming the file and line. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemons.h"
#include "harness.h"
#include "status/status.h"

static ls_h_pair_t pair;

static void fini(void)
{
    ls_h_pair_fini(&pair);
}

TestSuite(activate, .fini = fini, .timeout = 120);

static void start_pair(const char *tag)
{
    ls_h_pair_opts_t o = {.plaintext = true, .seedable = true};
    ls_h_pair_init(&pair, tag, &o);
    ls_h_node_start(&pair, LS_H_A, NULL);
    ls_h_node_start(&pair, LS_H_B, NULL);
}

/* `logship activate db1 ARGS -c <node-b's config>`: exit status, output captured. */
static int activate(const char *args, char **out, char **err)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s activate db1 %s -c %s", ls_h_bin("logship"), args,
             pair.conf[LS_H_B]);
    *out = *err = NULL;
    return ls_h_sh(cmd, out, err, 60000);
}

/* db1's entry in the "databases" array of node's status (cJSON_Delete *st after use). */
static const cJSON *db1_role(int node, cJSON **st)
{
    *st = ls_h_status(&pair, node);
    cr_assert_not_null(*st, "node %d does not answer", node);
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(*st, "databases"))
    {
        const cJSON *name = cJSON_GetObjectItem(d, "database");
        if (cJSON_IsString(name) && !strcmp(name->valuestring, "db1")) return d;
    }
    cr_assert_fail("no db1 in the databases of node %d", node);
    return NULL;
}

/* How many marker keys of the ack log are missing from the store of node's db1, by mdb_dump;
 * *acked: how many distinct ones the log names. A line's first field is its marker key
 * ("a<seed>-<thread>-<n> <hash>", what --ack-log writes on this branch), or a transaction id
 * whose marker key is "txn/<id>" (the format issue 12 asks of --ack-log). */
static int missing_acks(int node, const char *acklog, int *acked)
{
    char cmd[3000], *out = NULL;
    snprintf(cmd, sizeof(cmd),
             "awk '{k = $1; if (k !~ /^a[0-9]+-/) k = \"txn/\" k; print \" \" k}' %s | "
             "sort -u > %s/want && "
             "mdb_dump -p -s data %s/store | sort -u > %s/have && "
             "echo $(wc -l < %s/want) $(comm -23 %s/want %s/have | wc -l)",
             acklog, pair.dir, pair.db[node], pair.dir, pair.dir, pair.dir, pair.dir);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 60000), 0, "mdb_dump of node %d failed", node);
    int missing = -1;
    cr_assert_eq(sscanf(out, "%d %d", acked, &missing), 2, "%s", out);
    free(out);
    return missing;
}

/* `logship activate db1 ARGS` on node-b succeeds lossless: db1 is active there in epoch 2. */
static void activate_ok(const char *args)
{
    char *out, *err;
    int rc = activate(args, &out, &err);
    cr_assert_eq(rc, 0, "activation failed (%d): %s%s", rc, out, err);
    cr_assert(ls_h_contains(out, "lossless"), "%s", out);
    free(out);
    free(err);
    cJSON *st;
    const cJSON *d = db1_role(LS_H_B, &st);
    cr_assert_str_eq(ls_h_jstr(d, "role"), "active");
    cr_assert_eq(ls_status_json_u64(d, "epoch"), 2);
    cJSON_Delete(st);
}

Test(activate, lossless_failover_keeps_every_acknowledged_commit)
{
    ls_h_pair_start_peers(&pair, "activate-lossless", NULL, NULL);
    char ack1[700], ack2[700], hist[700];
    snprintf(ack1, sizeof(ack1), "%s/ack1.log", pair.dir);
    snprintf(ack2, sizeof(ack2), "%s/ack2.log", pair.dir);
    char args[1000];
    snprintf(args, sizeof(args), "--transactions 2000 --threads 2 --target-size 65536 --ack-log %s",
             ack1);
    ls_h_load_ok(&pair, LS_H_A, args); /* it ends with a roll: its last generation is closed */
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy did not catch up");
    ls_h_node_kill(&pair, LS_H_A);

    char *out, *err;
    int rc = activate("", &out, &err);
    cr_assert_eq(rc, 0, "activate failed (%d): %s%s", rc, out, err);
    cr_assert(ls_h_contains(out, "activated db1 on node-b: epoch 2 starts at generation"), "%s",
              out);
    cr_assert(ls_h_contains(out, "lossless: every generation node-a announced"), "%s", out);
    free(out);
    free(err);

    int acked = 0;
    cr_assert_eq(missing_acks(LS_H_B, ack1, &acked), 0, "acknowledged commits missing on node-b");
    cr_assert_eq(acked, 2000, "one marker per acknowledged transaction");

    cJSON *st;
    const cJSON *d = db1_role(LS_H_B, &st);
    cr_assert_str_eq(ls_h_jstr(d, "role"), "active");
    cr_assert_eq(ls_status_json_u64(d, "epoch"), 2);
    cr_assert_str_eq(ls_h_jstr(d, "activation"), "done");
    cr_assert_eq(ls_status_json_u64(cJSON_GetObjectItem(d, "loss"), "generations"), 0);
    cr_assert_str_eq(ls_h_str(st, "role"), "active", "db1 now ships from node-b");
    cr_assert_str_eq(ls_h_str(st, "target"), "node-a", "to the rest of its copy set");
    cJSON_Delete(st);

    /* The application writes on the new active: generations of epoch 2 after the history line. */
    snprintf(args, sizeof(args), "--transactions 300 --seed 77 --ack-log %s", ack2);
    ls_h_load_ok(&pair, LS_H_B, args);
    cr_assert_eq(missing_acks(LS_H_B, ack2, &acked), 0, "the new active's commits are stored");
    cr_assert_eq(acked, 300);
    cr_assert_eq(missing_acks(LS_H_B, ack1, &acked), 0, "and the old ones are still there");
    snprintf(hist, sizeof(hist), "ls %s/logs | grep -c '^E00-00000002-'", pair.db[LS_H_B]);
    char *gens = NULL;
    cr_assert_eq(ls_h_sh(hist, &gens, NULL, 5000), 0, "no generation of epoch 2 in logs/");
    free(gens);

    /* The role is the engine's state: a restart keeps db1 active in epoch 2. */
    ls_h_node_stop(&pair, LS_H_B);
    ls_h_node_start(&pair, LS_H_B, NULL);
    d = db1_role(LS_H_B, &st);
    cr_assert_str_eq(ls_h_jstr(d, "role"), "active");
    cr_assert_eq(ls_status_json_u64(d, "epoch"), 2);
    cr_assert_str_eq(ls_h_str(st, "role"), "active");
    cJSON_Delete(st);
    rc = activate("", &out, &err);
    cr_assert_eq(rc, 1);
    cr_assert(ls_h_contains(err, "db1 is already the active on node-b (epoch 2)"), "%s", err);
    free(out);
    free(err);
}

Test(activate, refused_while_the_active_answers_unless_forced)
{
    start_pair("activate-refuse");
    ls_h_load(&pair, "--transactions 200");
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy did not catch up");

    /* node-a alive: its connection serving the copy answers. */
    char *out, *err;
    int rc = activate("", &out, &err);
    cr_assert_eq(rc, 1, "%s%s", out, err);
    cr_assert(ls_h_contains(err, "activation of db1 refused: the active node-a still answers"),
              "%s", err);
    cr_assert(ls_h_contains(err, "--force"), "%s", err);
    free(out);
    free(err);
    cr_assert(ls_h_wait_state(&pair, LS_H_B, "Healthy", 10000), "the copy goes on");

    /* node-a hung (SIGSTOP): its connection times out, but a connect to it still succeeds (the
     * kernel accepts for it). */
    kill(pair.pid[LS_H_A], SIGSTOP);
    cr_assert(ls_h_wait_state(&pair, LS_H_B, "Disconnected", 20000), "the copy did not notice");
    rc = activate("", &out, &err);
    cr_assert_eq(rc, 1, "%s%s", out, err);
    cr_assert(ls_h_contains(err, "the active node-a still answers (a connect to 127.0.0.1:"), "%s",
              err);
    free(out);
    free(err);
    cJSON *st;
    const cJSON *d = db1_role(LS_H_B, &st);
    cr_assert_str_eq(ls_h_jstr(d, "role"), "copy", "a refusal changes nothing");
    cr_assert_str_eq(ls_h_jstr(d, "activation"), "refused");
    cJSON_Delete(st);

    activate_ok("--force");
    d = db1_role(LS_H_B, &st);
    cr_assert(ls_h_contains(ls_h_jstr(d, "reason"), "--force"), "%s", ls_h_jstr(d, "reason"));
    cJSON_Delete(st);
    ls_h_node_kill(&pair, LS_H_A); /* a stopped process dies of SIGKILL too */
}

/* node-b's daemon at RLIMIT_NOFILE when activated: the link to node-a (the copy set it will
 * ship to) cannot get its wake-up, and the activation is refused before the copy stops or
 * anything is written, naming the database, the link and the reason; the daemon runs on, the
 * copy with it, and once descriptors are free the same command activates. */
Test(activate, out_of_descriptors_refused_then_activates)
{
    start_pair("activate-emfile");
    ls_h_load(&pair, "--transactions 200");
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy did not catch up");
    ls_h_node_kill(&pair, LS_H_A);
    cr_assert(ls_h_wait_state(&pair, LS_H_B, "Disconnected", 20000), "the copy did not notice");
    uint64_t old; /* one spare: the control connection takes it */
    cr_assert(ls_h_fd_limit(pair.pid[LS_H_B], 1, &old));
    char *out, *err;
    int rc = activate("", &out, &err);
    cr_assert(ls_h_fd_unlimit(pair.pid[LS_H_B], old));
    cr_assert_eq(rc, 1, "%s%s", out, err);
    cr_assert(ls_h_contains(err, "activation of db1 refused: cannot make the link to node-a: "
                                 "cannot make its wake-up: Too many open files"),
              "%s", err);
    free(out);
    free(err);
    cJSON *st;
    const cJSON *d = db1_role(LS_H_B, &st);
    cr_assert_str_eq(ls_h_jstr(d, "role"), "copy", "a refusal changes nothing");
    cJSON_Delete(st);
    activate_ok("");
}

Test(activate, lossy_activation_reports_exactly_the_missing_generations)
{
    int mport = ls_h_free_port();
    char node_extra[128];
    snprintf(node_extra, sizeof(node_extra), "metrics_listen = 127.0.0.1:%d\n", mport);
    ls_h_pair_opts_t o = {.plaintext = true, .seedable = true, .b_node_extra = node_extra};
    ls_h_pair_init(&pair, "activate-lossy", &o);
    ls_h_node_start(&pair, LS_H_A, NULL);
    ls_h_node_start(&pair, LS_H_B, NULL);
    ls_h_load(&pair, "--transactions 100");
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy did not catch up");
    cJSON *st = ls_h_status(&pair, LS_H_B);
    uint64_t base = (uint64_t) ls_h_num(st, "last_replayed");
    cJSON_Delete(st);
    cr_assert_gt(base, 0);

    char cmd[1500], *out, *err;
    snprintf(cmd, sizeof(cmd), "%s suspend db1 node-a --comment 'test' -c %s", ls_h_bin("logship"),
             pair.conf[LS_H_B]);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 10000), 0);
    cr_assert(ls_h_wait_state(&pair, LS_H_B, "Suspended", 10000));
    enum { K = 3 };
    for (int i = 0; i < K; i++) /* each run closes one generation (its roll at the end) */
        ls_h_load(&pair, "--transactions 20");
    cr_assert(ls_h_wait_num(&pair, LS_H_B, "last_generated", (double) (base + K), 10000),
              "node-b did not hear of node-a's %d new generations", K);
    ls_h_node_kill(&pair, LS_H_A);
    /* What node-a announced is kept with the copy: a kill -9 of node-b's daemon loses none of it.
     */
    ls_h_node_kill(&pair, LS_H_B);
    ls_h_node_start(&pair, LS_H_B, NULL);

    int rc = activate("", &out, &err);
    cr_assert_eq(rc, 1, "%s%s", out, err);
    char want[300];
    snprintf(want, sizeof(want), "would lose %d generations (more than the 0 allowed)", K);
    cr_assert(ls_h_contains(err, want), "%s", err);
    snprintf(want, sizeof(want), "rerun with --max-loss %d to accept the loss", K);
    cr_assert(ls_h_contains(err, want), "%s", err);
    free(out);
    free(err);

    snprintf(want, sizeof(want), "--max-loss %d", K - 1);
    rc = activate(want, &out, &err);
    cr_assert_eq(rc, 1, "one generation fewer than the loss is refused too");
    free(out);
    free(err);

    snprintf(want, sizeof(want), "--max-loss %d", K);
    rc = activate(want, &out, &err);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    snprintf(want, sizeof(want), "may have lost generations %llu..%llu (%d generations,",
             (unsigned long long) base + 1, (unsigned long long) base + K, K);
    cr_assert(ls_h_contains(out, want), "%s", out);
    free(out);
    free(err);

    const cJSON *d = db1_role(LS_H_B, &st);
    const cJSON *loss = cJSON_GetObjectItem(d, "loss");
    cr_assert_str_eq(ls_h_jstr(d, "role"), "active");
    cr_assert_eq(ls_status_json_u64(loss, "generations"), K);
    cr_assert_eq(ls_status_json_u64(loss, "first_generation"), base + 1);
    cr_assert_eq(ls_status_json_u64(loss, "last_generation"), base + K);
    cr_assert_gt(ls_status_json_u64(loss, "bytes"), 0);
    cr_assert_gt(ls_status_json_u64(loss, "to_ns"), ls_status_json_u64(loss, "from_ns"));
    cr_assert_eq(ls_status_json_u64(loss, "open_generation"), base + K + 1);
    cJSON_Delete(st);

    snprintf(cmd, sizeof(cmd), "%s status -c %s", ls_h_bin("logship"), pair.conf[LS_H_B]);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 10000), 0);
    snprintf(want, sizeof(want), "loss: generations %llu..%llu (%d generations,",
             (unsigned long long) base + 1, (unsigned long long) base + K, K);
    cr_assert(ls_h_contains(out, want), "%s", out);
    free(out);

    /* Prometheus: the same figures in base units, and promtool accepts the endpoint. */
    snprintf(cmd, sizeof(cmd),
             "curl -sS --max-time 10 -o %s/metrics.txt http://127.0.0.1:%d/metrics && "
             "promtool check metrics < %s/metrics.txt >&2 && cat %s/metrics.txt",
             pair.dir, mport, pair.dir, pair.dir);
    cr_assert_eq(ls_h_sh(cmd, &out, &err, 30000), 0, "metrics: %s", err);
    snprintf(want, sizeof(want), "logship_activation_lost_generations{database=\"db1\"} %d\n", K);
    cr_assert(ls_h_contains(out, want), "%s", out);
    cr_assert(ls_h_contains(out, "logship_database_role{database=\"db1\",role=\"active\"} 1\n"),
              "%s", out);
    cr_assert(ls_h_contains(out, "logship_database_epoch{database=\"db1\"} 2\n"), "%s", out);
    free(out);
    free(err);
}

Test(activate, a_bad_role_file_stops_the_daemon_naming_file_and_line)
{
    ls_h_pair_opts_t o = {.plaintext = true, .seedable = true};
    ls_h_pair_init(&pair, "activate-badrole", &o);
    char path[1200], *out = NULL, *err = NULL;
    snprintf(path, sizeof(path),
             "mkdir -p %s && printf 'role copy\\nepoch 1\\nrole boss\\n' > %s/role",
             pair.db[LS_H_B], pair.db[LS_H_B]);
    cr_assert_eq(ls_h_sh(path, NULL, NULL, 5000), 0);
    char *argv[] = {(char *) ls_h_bin("logshipd"), "-c", pair.conf[LS_H_B], NULL};
    int rc = ls_h_run(argv, &out, &err, 20000);
    cr_assert_neq(rc, 0, "the daemon started with a bad role file");
    snprintf(path, sizeof(path), "%s/role:3", pair.db[LS_H_B]);
    cr_assert(ls_h_contains(err, path), "%s", err);
    cr_assert(ls_h_contains(err, "database db1"), "%s", err);
    free(out);
    free(err);
}
