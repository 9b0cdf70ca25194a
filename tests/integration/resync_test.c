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
#include <string.h>

#include "daemons.h"
#include "harness.h"
#include "status/status.h"

static ls_h_pair_t pair;

static void fini(void)
{
    ls_h_pair_fini(&pair);
}

TestSuite(resync, .fini = fini, .timeout = 120);

/* node-b configured for activation: one [peer node-a] section used both ways, the copy set
 * spelled out. node-a's configuration is the pair's (active for db1, [target node-b]). */
static void start_pair_with_peers(const char *tag, const char *a_db_extra, const char *b_db_extra)
{
    ls_h_pair_opts_t o = {.plaintext = true,
                          .seedable = true,
                          .b_db_extra = b_db_extra ? b_db_extra : "copies = node-a, node-b\n",
                          .a_db_extra = a_db_extra};
    ls_h_pair_init(&pair, tag, &o);
    char cmd[1200];
    snprintf(
        cmd, sizeof(cmd),
        "sed -i 's/^\\[source node-a\\]$/[peer node-a]/' %s && grep -q '^\\[peer node-a\\]$' %s",
        pair.conf[LS_H_B], pair.conf[LS_H_B]);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 5000), 0, "no [source node-a] in node-b's configuration");
    ls_h_node_start(&pair, LS_H_A, NULL);
    ls_h_node_start(&pair, LS_H_B, NULL);
}

/* `logship CMD db1 ARGS -c <node's config>`: exit status, output captured. */
static int logship(const char *cmd, int node, const char *args, char **out, char **err)
{
    char line[2048];
    snprintf(line, sizeof(line), "%s %s db1 %s -c %s", ls_h_bin("logship"), cmd, args,
             pair.conf[node]);
    *out = *err = NULL;
    return ls_h_sh(line, out, err, 60000);
}

/* `logship load <node's db1> ARGS`: exit status, stderr in *err. */
static int load_on(int node, const char *args, char **err)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s load %s %s", ls_h_bin("logship"), pair.db[node], args);
    *err = NULL;
    return ls_h_sh(cmd, NULL, err, 120000);
}

static void load_ok(int node, const char *args)
{
    char *err;
    int rc = load_on(node, args, &err);
    cr_assert_eq(rc, 0, "logship load on node %d: %s", node, err);
    free(err);
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* db1's entry in the "databases" array of a status document. */
static const cJSON *db1_of(const cJSON *st)
{
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(st, "databases"))
    {
        if (!strcmp(jstr(d, "database"), "db1")) return d;
    }
    return NULL;
}

typedef struct {
    int node;
    const char *role;  /* db1's role in "databases" */
    const char *state; /* db1's copy state in "copies" */
} role_cond_t;

static bool role_is(void *ctx)
{
    role_cond_t *c = ctx;
    cJSON *st = ls_h_status(&pair, c->node);
    const cJSON *d = st ? db1_of(st) : NULL;
    bool ok = d && !strcmp(jstr(d, "role"), c->role) && !strcmp(ls_h_str(st, "state"), c->state);
    cJSON_Delete(st);
    return ok;
}

static bool wait_role(int node, const char *role, const char *state)
{
    role_cond_t c = {node, role, state};
    bool ok = ls_h_wait_for(role_is, &c, 20000);
    if (!ok) ls_h_pair_logs(&pair);
    return ok;
}

/* node-b, the new active, has shipped and node-a replayed everything node-b closed. */
static bool b_caught_up(void *ctx)
{
    (void) ctx;
    cJSON *a = ls_h_status(&pair, LS_H_A), *b = ls_h_status(&pair, LS_H_B);
    bool ok = false;
    if (a && b) {
        double gen = ls_h_num(b, "last_generated");
        ok = gen > 0 && ls_h_num(b, "last_replayed") == gen && ls_h_num(a, "last_replayed") == gen;
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    return ok;
}

static void ack_check(int node, const char *acklog)
{
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof(cmd), "sh %s/tools/ack-check.sh %s/store %s", LS_SOURCE_DIR, pair.db[node],
             acklog);
    int rc = ls_h_sh(cmd, &out, NULL, 60000);
    cr_assert_eq(rc, 0, "ack-check of node %d against %s: %s", node, acklog, out);
    free(out);
}

/* node-b has shipped and node-a replayed everything node-b closed (the daemons' logs when not). */
static bool wait_b_caught_up(void)
{
    bool ok = ls_h_wait_for(b_caught_up, NULL, 30000);
    if (!ok) ls_h_pair_logs(&pair);
    return ok;
}

/* The number after `label` in text (0 when absent). */
static uint64_t after(const char *text, const char *label)
{
    const char *p = strstr(text, label);
    return p ? strtoull(p + strlen(label), NULL, 10) : 0;
}

static uint64_t lines_of(const char *path)
{
    char cmd[1200], *out = NULL;
    snprintf(cmd, sizeof(cmd), "wc -l < %s", path);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 5000), 0);
    uint64_t n = strtoull(out, NULL, 10);
    free(out);
    return n;
}

Test(resync, diverged_old_active_resyncs_incrementally)
{
    start_pair_with_peers("resync-diverged", NULL, NULL);
    char ack1[700], acka[700], ackb[700], args[1000];
    snprintf(ack1, sizeof(ack1), "%s/ack1.log", pair.dir);
    snprintf(acka, sizeof(acka), "%s/acka.log", pair.dir);
    snprintf(ackb, sizeof(ackb), "%s/ackb.log", pair.dir);
    /* about 6 MB of values over 6000 keys */
    snprintf(args, sizeof(args),
             "--transactions 1500 --records-per-txn 4 --value-size 1000 --threads 2 "
             "--target-size 262144 --ack-log %s",
             ack1);
    load_ok(LS_H_A, args);
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy did not catch up");

    /* node-a's daemon dies; its application goes on writing: generations node-b never gets. */
    ls_h_node_kill(&pair, LS_H_A);
    snprintf(args, sizeof(args),
             "--transactions 40 --records-per-txn 2 --value-size 1000 --seed 5 --threads 1 "
             "--target-size 65536 --ack-log %s",
             acka);
    load_ok(LS_H_A, args);
    char *out, *err;
    int rc = logship("activate", LS_H_B, "", &out, &err);
    cr_assert_eq(rc, 0, "activate failed (%d): %s%s", rc, out, err);
    free(out);
    free(err);
    snprintf(args, sizeof(args),
             "--transactions 40 --records-per-txn 2 --value-size 1000 --seed 8 --threads 1 "
             "--target-size 65536 --ack-log %s",
             ackb);
    load_ok(LS_H_B, args);

    /* node-a returns: fenced, Diverged, naming node-b. */
    ls_h_node_start(&pair, LS_H_A, NULL);
    cr_assert(wait_role(LS_H_A, "diverged", "Diverged"), "node-a did not find its divergence");
    cJSON *st = ls_h_status(&pair, LS_H_A);
    cr_assert_str_eq(jstr(db1_of(st), "follows"), "node-b");
    cJSON_Delete(st);

    rc = logship("resync", LS_H_A, "", &out, &err);
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
    uint64_t acked = lines_of(acka);
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
    cr_assert(wait_b_caught_up(), "node-b did not ship to node-a");
    st = ls_h_status(&pair, LS_H_A);
    const cJSON *d = db1_of(st);
    cr_assert_str_eq(jstr(d, "role"), "copy");
    cr_assert_str_eq(jstr(d, "follows"), "node-b");
    cJSON_Delete(st);
    cr_assert(ls_h_stores_equal(&pair), "the stores differ after the resync");
    ack_check(LS_H_A, ack1);
    ack_check(LS_H_A, ackb);
}

/* With `auto_resync = true` node-a resyncs by itself once it finds itself diverged. */
Test(resync, auto_resync_rebuilds_a_diverged_old_active_by_itself)
{
    start_pair_with_peers("resync-auto", "auto_resync = true\n", NULL);
    load_ok(LS_H_A, "--transactions 300 --target-size 65536");
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy did not catch up");
    ls_h_node_kill(&pair, LS_H_A);
    load_ok(LS_H_A, "--transactions 30 --seed 5 --threads 1 --target-size 65536");
    char *out, *err;
    int rc = logship("activate", LS_H_B, "", &out, &err);
    cr_assert_eq(rc, 0, "activate failed (%d): %s%s", rc, out, err);
    free(out);
    free(err);
    load_ok(LS_H_B, "--transactions 30 --seed 8 --threads 1 --target-size 65536");

    ls_h_node_start(&pair, LS_H_A, NULL);
    cr_assert(wait_role(LS_H_A, "copy", "Healthy"), "node-a did not resync by itself");
    cr_assert(wait_b_caught_up(), "node-b did not ship to node-a");
    cr_assert(ls_h_stores_equal(&pair), "the stores differ after the automatic resync");
    char cmd[1500];
    snprintf(cmd, sizeof(cmd), "ls %s/diverged/2 | grep -c '^E00-00000001-'", pair.db[LS_H_A]);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 5000), 0, "no epoch-1 file in diverged/2");
    free(out);
    /* node-a's log says why it started */
    snprintf(cmd, sizeof(cmd),
             "grep -q 'db1 is diverged (auto_resync = true): resyncing from node-b' %s",
             pair.log[LS_H_A]);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 5000), 0, "node-a's log does not say it resynced");
}

/* node-b's oldest generation in logs/ is past *ctx. */
static bool first_removed(void *ctx)
{
    char cmd[1500], *out = NULL;
    snprintf(cmd, sizeof(cmd),
             "ls %s/logs | sed -n 's/^E00-[0-9a-f]*-\\([0-9a-f]*\\)\\.log$/\\1/p' "
             "| while read g; do echo $((0x$g)); done | sort -n | head -1",
             pair.db[LS_H_B]);
    if (ls_h_sh(cmd, &out, NULL, 5000) != 0) return false;
    uint64_t oldest = strtoull(out ? out : "0", NULL, 10);
    free(out);
    return oldest > *(uint64_t *) ctx;
}

/* The new active no longer holds any generation node-a holds (its log cap, max_log_bytes, removed
 * those it held only for node-a): no split can be found, so every local generation is set aside
 * into <db>/diverged/2 and a full seed replaces the store; the command says so and why, and the
 * generations set aside are still there after the seed replaced the directory. */
Test(resync, falls_back_to_a_full_seed_and_keeps_the_diverged_generations)
{
    start_pair_with_peers("resync-fallback", NULL,
                          "copies = node-a, node-b\nmax_log_bytes = 65536\n");
    load_ok(LS_H_A, "--transactions 300 --target-size 65536");
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy did not catch up");
    ls_h_node_kill(&pair, LS_H_A);
    load_ok(LS_H_A, "--transactions 30 --seed 5 --threads 1 --target-size 65536");
    char *out, *err;
    int rc = logship("activate", LS_H_B, "", &out, &err);
    cr_assert_eq(rc, 0, "activate failed (%d): %s%s", rc, out, err);
    const char *p = strstr(out, "epoch 2 starts at generation ");
    cr_assert_not_null(p, "%s", out);
    uint64_t first = strtoull(p + strlen("epoch 2 starts at generation "), NULL, 10);
    free(out);
    free(err);
    load_ok(LS_H_B, "--transactions 600 --seed 8 --target-size 65536");
    /* node-b's cap removes the generations it held only for node-a, the first of epoch 2 too */
    cr_assert(ls_h_wait_for(first_removed, &first, 15000), "node-b still holds generation %" PRIu64,
              first);
    ls_h_node_start(&pair, LS_H_A, NULL);
    cr_assert(wait_role(LS_H_A, "diverged", "Diverged"), "node-a did not find its divergence");

    rc = logship("resync", LS_H_A, "", &out, &err);
    cr_assert_eq(rc, 0, "resync failed (%d): %s%s", rc, out, err);
    fprintf(stderr, "logship resync printed:\n%s", out);
    cr_assert(ls_h_contains(out, "fell back to a full seed"), "%s", out);
    cr_assert(ls_h_contains(out, "moved: "), "%s", out);
    free(out);
    free(err);
    char cmd[1500];
    snprintf(cmd, sizeof(cmd), "ls %s/diverged/2 | grep -c '^E00-00000001-'", pair.db[LS_H_A]);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 5000), 0, "the diverged generations are gone");
    free(out);
    cr_assert(wait_b_caught_up(), "node-b did not ship to node-a");
    cr_assert(ls_h_stores_equal(&pair), "the stores differ after the fall-back");
}
