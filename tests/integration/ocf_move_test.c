/* The OCF resource agent tools/ocf/logship with real daemons on loopback (ocf_test.c says how):
 * the promotion score follows the copy's position, and a planned move (demote of the live active
 * with a promotion pending, as Pacemaker's notifications announce it, crm_* stubbed) hands the
 * database over with logship switchover. Split from ocf_test.c; helpers in ocf_test_util.h. */

#include <criterion/criterion.h>

#include "ocf_test_util.h"

TestSuite(ocf, .fini = fini, .timeout = 180);

/* Pacemaker's tools as the agent uses them, recorded: crm_node -n names node-b, attrd_updater
 * keeps node-b's published position in <stub>/mine and answers -Q -A with <stub>/others plus
 * node-b's, crm_attribute appends its arguments to <stub>/scores. (Pacemaker itself is not
 * installed here; the stubs answer as its 2.1 tools do.) */
static void write_stubs(const char *stub)
{
    static const char *const files[][2] = {
        {"crm_node", "#!/bin/sh\n[ \"$1\" = -n ] && echo node-b\n"},
        {"attrd_updater", "#!/bin/sh\nd=$(dirname \"$0\")\nwhile [ $# -gt 0 ]; do case $1 in\n"
                          "-U) echo \"$2\" > \"$d/mine\"; exit 0;;\n"
                          "-Q) cat \"$d/others\"; [ -s \"$d/mine\" ] && echo \"name=\\\"x\\\" "
                          "host=\\\"node-b\\\" value=\\\"$(cat \"$d/mine\")\\\"\"; exit 0;;\n"
                          "esac; shift; done\nexit 1\n"},
        {"crm_attribute", "#!/bin/sh\necho \"$*\" >> \"$(dirname \"$0\")/scores\"\n"},
    };
    char path[800];
    cr_assert_eq(mkdir(stub, 0755), 0);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", stub, files[i][0]);
        cr_assert_eq(ls_h_write_file(path, files[i][1], strlen(files[i][1])), 0);
        cr_assert_eq(chmod(path, 0755), 0);
    }
}

/* The last line of <stub>/name (malloc'd, "" when none). */
static char *last_line(const char *stub, const char *name)
{
    char path[800];
    snprintf(path, sizeof(path), "%s/%s", stub, name);
    size_t len = 0;
    char *text = (char *) ls_h_read_file(path, &len);
    if (!text) return strdup("");
    while (len && text[len - 1] == '\n')
        text[--len] = 0;
    char *nl = strrchr(text, '\n');
    char *line = strdup(nl ? nl + 1 : text);
    free(text);
    return line;
}

static void set_others(const char *stub, const char *lines)
{
    char path[800];
    snprintf(path, sizeof(path), "%s/others", stub);
    cr_assert_eq(ls_h_write_file(path, lines, strlen(lines)), 0);
}

static void expect_line(const char *stub, const char *name, const char *want)
{
    char *got = last_line(stub, name);
    cr_assert_str_eq(got, want, "%s/%s", stub, name);
    free(got);
}

/* monitor on a copy publishes its replayed generation and sets its promotion score: 1000 when no
 * other copy published a more advanced one, 10 less per copy that did; pre-promote notify
 * publishes the position afresh. */
Test(ocf, promotion_score_follows_the_copy_position)
{
    setup();
    char stub[700], extra[1400];
    snprintf(stub, sizeof(stub), "%s/stub", pair.dir);
    write_stubs(stub);
    snprintf(extra, sizeof(extra), "PATH=%s:$PATH", stub);
    set_others(stub, "");

    expect(LS_H_B, "start", OCF_SUCCESS, extra, NULL);
    expect(LS_H_A, "start", OCF_SUCCESS, NULL, NULL);
    ls_h_load(&pair, "--transactions 200 --threads 2 --target-size 65536");
    cr_assert(ls_h_wait_caught_up(&pair, 60000), "the copy catches up");
    cJSON *st = ls_h_status(&pair, LS_H_B);
    cr_assert_not_null(st);
    long long g = (long long) ls_h_num(st, "last_replayed");
    cJSON_Delete(st);
    cr_assert_gt(g, 1);

    char others[600], want[64], mine[32];
    snprintf(mine, sizeof(mine), "%lld", g);
    expect(LS_H_B, "monitor", OCF_SUCCESS, extra, NULL);
    expect_line(stub, "mine", mine);
    expect_line(stub, "scores", "--promotion=logship-db1 -l reboot -v 1000");

    snprintf(others, sizeof(others),
             "name=\"logship-db1-replayed\" host=\"node-c\" value=\"%lld\"\n"
             "name=\"logship-db1-replayed\" host=\"node-d\" value=\"%lld\"\n",
             g + 1, g - 1);
    set_others(stub, others);
    expect(LS_H_B, "monitor", OCF_SUCCESS, extra, NULL);
    expect_line(stub, "scores", "--promotion=logship-db1 -l reboot -v 990");

    snprintf(others, sizeof(others),
             "name=\"logship-db1-replayed\" host=\"node-c\" value=\"%lld\"\n"
             "name=\"logship-db1-replayed\" host=\"node-d\" value=\"%lld\"\n",
             g + 1, g + 3);
    set_others(stub, others);
    expect(LS_H_B, "monitor", OCF_SUCCESS, extra, NULL);
    snprintf(want, sizeof(want), "--promotion=logship-db1 -l reboot -v 980");
    expect_line(stub, "scores", want);

    /* A probe sets nothing. The active scores 2000, above any copy, so that Pacemaker promotes
     * the instance already active; a monitor of its unpromoted role (every instance starts
     * unpromoted) answers 0 instead of an unexpected "promoted", and promote is then a no-op. */
    snprintf(extra, sizeof(extra), "PATH=%s:$PATH OCF_RESKEY_CRM_meta_interval=0", stub);
    set_others(stub, "");
    expect(LS_H_B, "monitor", OCF_SUCCESS, extra, NULL);
    expect_line(stub, "scores", want);
    snprintf(extra, sizeof(extra), "PATH=%s:$PATH", stub);
    expect(LS_H_A, "monitor", OCF_RUNNING_MASTER, extra, NULL);
    expect_line(stub, "scores", "--promotion=logship-db1 -l reboot -v 2000");
    snprintf(extra, sizeof(extra), "PATH=%s:$PATH OCF_RESKEY_CRM_meta_role=Unpromoted", stub);
    expect(LS_H_A, "monitor", OCF_SUCCESS, extra, NULL);

    /* pre-promote notify publishes the position again. */
    char path[800];
    snprintf(path, sizeof(path), "%s/mine", stub);
    cr_assert_eq(unlink(path), 0);
    snprintf(extra, sizeof(extra),
             "PATH=%s:$PATH OCF_RESKEY_CRM_meta_notify_type=pre "
             "OCF_RESKEY_CRM_meta_notify_operation=promote",
             stub);
    expect(LS_H_B, "notify", OCF_SUCCESS, extra, NULL);
    expect_line(stub, "mine", mine);

    expect(LS_H_A, "stop", OCF_SUCCESS, NULL, NULL);
    expect(LS_H_B, "stop", OCF_SUCCESS, NULL, NULL);
}

/* ---- demote of the live active with a promotion pending: a planned switchover ---- */

/* node-b's copy of db1 connected and Healthy (switchover's precondition). */
static bool copy_healthy(void *ctx)
{
    (void) ctx;
    cJSON *st = ls_h_status(&pair, LS_H_B);
    bool ok = st && !strcmp(ls_h_str(st, "state"), "Healthy");
    cJSON_Delete(st);
    return ok;
}

/* db1's entry in node's "databases" has role (and follows, unless empty). */
static void db1_is(int node, const char *role, const char *follows)
{
    cJSON *st = ls_h_status(&pair, node), *d;
    cr_assert_not_null(st);
    bool found = false;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(st, "databases"))
    {
        const cJSON *name = cJSON_GetObjectItem(d, "database");
        if (!cJSON_IsString(name) || strcmp(name->valuestring, "db1")) continue;
        found = true;
        const cJSON *r = cJSON_GetObjectItem(d, "role"), *f = cJSON_GetObjectItem(d, "follows");
        cr_assert(cJSON_IsString(r) && !strcmp(r->valuestring, role), "db1 on node %d is not %s",
                  node, role);
        if (*follows)
            cr_assert(cJSON_IsString(f) && !strcmp(f->valuestring, follows),
                      "db1 on node %d does not follow %s", node, follows);
    }
    cJSON_Delete(st);
    cr_assert(found, "node %d's status has no db1 in databases", node);
}

static bool file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* Pacemaker's pre-demote notification of a transition that demotes node-a's instance and
 * promotes promote_uname (may be empty), as the agent on `on_node` sees it; plus extra. */
static void notify_pre_demote(int node, const char *on_node, const char *promote_uname,
                              const char *extra)
{
    char env[1200];
    snprintf(env, sizeof(env),
             "OCF_RESKEY_CRM_meta_notify_type=pre OCF_RESKEY_CRM_meta_notify_operation=demote "
             "OCF_RESKEY_CRM_meta_on_node=%s OCF_RESKEY_CRM_meta_notify_demote_uname='host-a ' "
             "OCF_RESKEY_CRM_meta_notify_promote_uname='%s' %s",
             on_node, promote_uname, extra ? extra : "");
    expect(node, "notify", OCF_SUCCESS, env, NULL);
}

/* A planned move as Pacemaker runs it (crm_resource --move of the promoted instance, or node-a
 * put in standby), with Pacemaker's node names host-a and host-b mapped to logship's node-a and
 * node-b by the parameter node_names: pre-demote notify on both nodes (node-a remembers the
 * promotion of host-b, node-b nothing), demote of node-a under a running `logship load
 * --ack-log` (logship switchover: node-b active, node-a its copy), promote of node-b (active
 * already: 0). Every acknowledged id is in node-b's store (tools/ack-check.sh). Before that: a
 * pending promotion of a node outside the copy set fails with switchover's refusal and leaves
 * db1 active; a pre-demote without a promotion (a plain stop of the active) clears what an
 * earlier notification remembered, and demote then runs resync as before (refused: db1 is the
 * active here). */
Test(ocf, demote_with_a_pending_promotion_switches_over)
{
    setup_with(&(ls_h_pair_opts_t){
        .plaintext = true, .seedable = true, .b_db_extra = "copies = node-a, node-b\n"});
    char cmd[1600];
    snprintf(
        cmd, sizeof(cmd),
        "sed -i 's/^\\[source node-a\\]$/[peer node-a]/' %s && grep -q '^\\[peer node-a\\]$' %s",
        pair.conf[LS_H_B], pair.conf[LS_H_B]);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 5000), 0, "no [source node-a] in node-b's configuration");
    const char *names = "OCF_RESKEY_node_names='host-a=node-a host-b=node-b'";
    expect(LS_H_B, "start", OCF_SUCCESS, names, NULL);
    expect(LS_H_A, "start", OCF_SUCCESS, names, NULL);
    expect(LS_H_A, "validate-all", OCF_ERR_CONFIGURED, "OCF_RESKEY_node_names='host-a=node-a x'",
           "the parameter node_names has 'x', not UNAME=NODE");

    char ack[600], errlog[600], promote_file[700];
    snprintf(ack, sizeof(ack), "%s/acked", pair.dir);
    snprintf(errlog, sizeof(errlog), "%s/load.log", pair.dir);
    snprintf(promote_file, sizeof(promote_file), "%s.promote", pidfile[LS_H_A]);
    load_pid = ls_h_load_until_fenced(&pair, LS_H_A, ack, errlog, 1);
    cr_assert(ls_h_wait_file_lines(ack, 150, 20000), "the load acknowledged nothing");
    cr_assert(ls_h_wait_for(copy_healthy, NULL, 30000), "node-b's copy is not Healthy");
    expect(LS_H_A, "monitor", OCF_RUNNING_MASTER, names, NULL);

    /* A promotion of a node outside the copy set: switchover refuses, db1 stays active here. */
    notify_pre_demote(LS_H_A, "host-a", "host-z", names);
    cr_assert(file_exists(promote_file), "pre-demote remembered the promotion of host-z");
    expect(LS_H_A, "demote", OCF_ERR_GENERIC, names,
           "logship switchover db1 --to host-z (Pacemaker node host-z) failed");
    cr_assert(!file_exists(promote_file), "demote consumed what notify remembered");
    expect(LS_H_A, "monitor", OCF_RUNNING_MASTER, names, NULL);

    /* No promotion pending: an earlier notification's target is forgotten, demote is resync. */
    notify_pre_demote(LS_H_A, "host-a", "host-b", names);
    notify_pre_demote(LS_H_A, "host-a", "", names);
    cr_assert(!file_exists(promote_file), "a pre-demote without a promotion cleared it");
    expect(LS_H_A, "demote", OCF_ERR_GENERIC, names, "logship resync db1 failed");
    expect(LS_H_A, "monitor", OCF_RUNNING_MASTER, names, NULL);

    /* The planned move. */
    notify_pre_demote(LS_H_B, "host-b", "host-b", names);
    notify_pre_demote(LS_H_A, "host-a", "host-b", names);
    cr_assert(file_exists(promote_file), "pre-demote remembered the promotion of host-b");
    expect(LS_H_A, "demote", OCF_SUCCESS, names, NULL);
    cr_assert(!file_exists(promote_file), "demote consumed what notify remembered");
    expect(LS_H_B, "promote", OCF_SUCCESS, names, NULL);
    expect(LS_H_B, "monitor", OCF_RUNNING_MASTER, names, NULL);
    expect(LS_H_A, "monitor", OCF_SUCCESS, names, NULL);
    db1_is(LS_H_A, "copy", "node-b");
    db1_is(LS_H_B, "active", "");
    expect(LS_H_A, "demote", OCF_SUCCESS, names, NULL);  /* a copy already */
    expect(LS_H_B, "promote", OCF_SUCCESS, names, NULL); /* active already */

    /* The load on node-a ended on its own: its commits refused, fenced for node-b. */
    ls_h_load_fenced(load_pid, errlog, "node-b");
    load_pid = 0;
    char *out = NULL;
    snprintf(cmd, sizeof(cmd), "sh %s/tools/ack-check.sh %s/store %s", LS_SOURCE_DIR,
             pair.db[LS_H_B], ack);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 60000), 0, "node-b holds every acknowledged id: %s", out);
    cr_assert(ls_h_contains(out, "every marker present"), "%s", out);
    free(out);

    expect(LS_H_A, "stop", OCF_SUCCESS, NULL, NULL);
    expect(LS_H_B, "stop", OCF_SUCCESS, NULL, NULL);
    cr_assert_eq(agent_pid(LS_H_A), 0);
    cr_assert_eq(agent_pid(LS_H_B), 0);
}
