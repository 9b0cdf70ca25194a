/*
 * The OCF resource agent tools/ocf/logship (docs/ACTIVATION.md) with real daemons on loopback:
 * ocf-tester (Debian resource-agents) against a copy, and the agent's answers checked one by one:
 * monitor tells a stopped daemon, a copy, the active and a daemon that does not answer apart;
 * validate-all names what is wrong; a planned move (demote of the active with a promotion
 * pending, as Pacemaker's notifications announce it) hands the database over with logship
 * switchover. The daemons are started and stopped by the agent itself (pid files in the scratch
 * directory); the suite's fini kills what a failed test left, by pid.
 *
 * A logship without the activate and resync commands makes promote and demote answer
 * OCF_ERR_UNIMPLEMENTED naming the missing commands, which the tests assert when so (ocf-tester
 * then reports the agent as not promotable).
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemons.h"
#include "harness.h"

#define AGENT      LS_SOURCE_DIR "/tools/ocf/logship"
#define OCF_TESTER "/usr/sbin/ocf-tester"

enum { OCF_SUCCESS = 0, OCF_ERR_GENERIC = 1, OCF_ERR_UNIMPLEMENTED = 3, OCF_ERR_INSTALLED = 5 };
enum { OCF_ERR_CONFIGURED = 6, OCF_NOT_RUNNING = 7, OCF_RUNNING_MASTER = 8 };

static ls_h_pair_t pair;
static char pidfile[2][600];
static pid_t load_pid; /* a background logship load, 0: none */

/* The daemon an agent's pid file names, or 0. */
static pid_t agent_pid(int node)
{
    size_t len = 0;
    char *text = (char *) ls_h_read_file(pidfile[node], &len);
    pid_t pid = text ? (pid_t) atoi(text) : 0;
    free(text);
    return pid > 0 && kill(pid, 0) == 0 ? pid : 0;
}

static void fini(void)
{
    if (load_pid > 0) {
        ls_h_kill(load_pid, SIGKILL);
        ls_h_wait(load_pid, 5000);
        load_pid = 0;
    }
    for (int n = 0; n < 2; n++) {
        pid_t pid = pair.dir ? agent_pid(n) : 0;
        if (pid) {
            kill(pid, SIGCONT);
            kill(pid, SIGKILL);
            for (int i = 0; i < 1000 && kill(pid, 0) == 0; i++)
                usleep(10000);
        }
        /* A daemon whose pid file a failed stop removed still names its configuration. */
        if (pair.dir) ls_h_kill_by_arg(pair.conf[n]);
    }
    if (pair.dir) ls_h_pair_fini(&pair);
}

TestSuite(ocf, .fini = fini, .timeout = 180);

static void setup_with(const ls_h_pair_opts_t *opts)
{
    if (access(OCF_TESTER, X_OK) != 0)
        cr_assert_fail("%s is missing: install resource-agents (tools/deps.sh test)", OCF_TESTER);
    ls_h_pair_init(&pair, "ocf", opts);
    for (int n = 0; n < 2; n++)
        snprintf(pidfile[n], sizeof(pidfile[n]), "%s/agent-%d.pid", pair.dir, n);
}

static void setup(void)
{
    setup_with(&(ls_h_pair_opts_t){.plaintext = true});
}

/* The agent's parameters for node as environment assignments (OCF_RESKEY_*); extra overrides. */
static void params(int node, const char *extra, char *out, size_t cap)
{
    snprintf(out, cap,
             "OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=logship-db1 OCF_RESKEY_config=%s "
             "OCF_RESKEY_database=db1 OCF_RESKEY_logshipd=%s OCF_RESKEY_logship=%s "
             "OCF_RESKEY_pidfile=%s OCF_RESKEY_logfile=%s OCF_RESKEY_CRM_meta_timeout=30000 "
             "OCF_RESKEY_CRM_meta_interval=10000 %s",
             pair.conf[node], ls_h_bin("logshipd"), ls_h_bin("logship"), pidfile[node],
             pair.log[node], extra ? extra : "");
}

/* Runs the agent's action on node; returns its exit status, stderr in *err when asked. */
static int agent(int node, const char *action, const char *extra, char **err)
{
    char env[4000], cmd[4400];
    params(node, extra, env, sizeof(env));
    snprintf(cmd, sizeof(cmd), "env %s %s %s", env, AGENT, action);
    return ls_h_sh(cmd, NULL, err, 120000);
}

static void expect(int node, const char *action, int rc, const char *extra, const char *needle)
{
    char *err = NULL;
    int got = agent(node, action, extra, &err);
    cr_assert_eq(got, rc, "%s on node %d: exit %d, expected %d; stderr: %s", action, node, got, rc,
                 err ? err : "");
    if (needle)
        cr_assert(ls_h_contains(err, needle), "%s: stderr names '%s': %s", action, needle, err);
    free(err);
}

/* Whether this build's logship has COMMAND (its --help's COMMANDS section). */
static bool logship_has(const char *command)
{
    char cmd[800], *out = NULL;
    snprintf(cmd, sizeof(cmd), "%s --help", ls_h_bin("logship"));
    ls_h_sh(cmd, &out, NULL, 10000);
    char line[64];
    snprintf(line, sizeof(line), "\n    %s ", command);
    bool has = ls_h_contains(out, line);
    free(out);
    return has;
}

/* ocf-tester's whole sequence on node-b's copy (meta-data against ra-api-1.dtd, validate-all,
 * probes, start, monitor, notify, stop, restart, double start and stop). */
Test(ocf, ocf_tester_passes_on_a_copy)
{
    setup();
    /* ocf-tester runs meta-data as the user nobody: the agent it is given must be readable there
     * (a clone under /root, mode 700, is not), so it gets a copy in a directory of its own */
    char agent_dir[] = "/tmp/ls-ocf-agent-XXXXXX", agent_copy[sizeof(agent_dir) + 16];
    cr_assert_not_null(mkdtemp(agent_dir));
    cr_assert_eq(chmod(agent_dir, 0755), 0);
    snprintf(agent_copy, sizeof(agent_copy), "%s/logship", agent_dir);
    char cmd[4400], *out = NULL;
    snprintf(cmd, sizeof(cmd), "install -m 0755 %s %s", AGENT, agent_copy);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 10000), 0, "%s", cmd);
    snprintf(cmd, sizeof(cmd),
             "%s -v -n logship-db1 -o config=%s -o database=db1 -o logshipd=%s -o logship=%s "
             "-o pidfile=%s -o logfile=%s %s 2>&1",
             OCF_TESTER, pair.conf[LS_H_B], ls_h_bin("logshipd"), ls_h_bin("logship"),
             pidfile[LS_H_B], pair.log[LS_H_B], agent_copy);
    int rc = ls_h_sh(cmd, &out, NULL, 150000);
    unlink(agent_copy);
    rmdir(agent_dir);
    if (logship_has("activate") && logship_has("resync")) {
        /* Both commands exist: ocf-tester promotes this lone copy, which holds no generation
         * (no active ever shipped to it), so logship activate refuses and the agent passes the
         * daemon's reason on. Its one-node promote/demote cycle cannot pass anyway: a demote with
         * no other node's promotion pending is resync, which refuses on a live active (a planned
         * move names the new active: demote_with_a_pending_promotion_switches_over). */
        cr_assert_neq(rc, 0, "ocf-tester promoted a copy holding nothing:\n%s", out);
        cr_assert(ls_h_contains(out, "Testing: promote") &&
                      ls_h_contains(out, "logship activate db1 failed") &&
                      ls_h_contains(out, "holds no generation: nothing to activate"),
                  "the agent ran logship activate and gave its refusal:\n%s", out);
        free(out);
        expect(LS_H_B, "stop", OCF_SUCCESS, NULL, NULL); /* ocf-tester aborted with it started */
        cr_assert_eq(agent_pid(LS_H_B), 0, "the agent's stop left no daemon");
        return;
    }
    cr_assert_eq(rc, 0, "ocf-tester failed (%d):\n%s", rc, out);
    cr_assert(ls_h_contains(out, "passed all tests"), "%s", out);
    cr_assert(!ls_h_contains(out, "* rc="), "no failed step:\n%s", out);
    cr_assert(ls_h_contains(out, "command: this logship cannot promote db1") &&
                  ls_h_contains(out, "command: this logship cannot demote db1") &&
                  ls_h_contains(out, "does not support promotable clones"),
              "promote and demote wait for logship activate and resync:\n%s", out);
    free(out);
    cr_assert_eq(agent_pid(LS_H_B), 0, "ocf-tester's last stop left no daemon");
}

/* monitor: not running, a copy (which replays what the active ships; its store holds every
 * acknowledged id, checked with mdb_dump), the active, and a daemon that does not answer. */
Test(ocf, monitor_tells_copy_active_and_failed_apart)
{
    setup();
    expect(LS_H_A, "monitor", OCF_NOT_RUNNING, NULL, NULL);
    expect(LS_H_B, "start", OCF_SUCCESS, NULL, NULL);
    expect(LS_H_B, "monitor", OCF_SUCCESS, NULL, NULL);
    expect(LS_H_A, "start", OCF_SUCCESS, NULL, NULL);
    expect(LS_H_A, "monitor", OCF_RUNNING_MASTER, NULL, NULL);
    expect(LS_H_A, "start", OCF_SUCCESS, NULL, NULL); /* started already */

    char ack[600], args[800];
    snprintf(ack, sizeof(ack), "%s/acked", pair.dir);
    snprintf(args, sizeof(args), "--transactions 300 --threads 2 --target-size 65536 --ack-log %s",
             ack);
    ls_h_load(&pair, args);
    cr_assert(ls_h_wait_caught_up(&pair, 60000), "the copy catches up");
    char cmd[2000], *out = NULL;
    snprintf(cmd, sizeof(cmd), "sh %s/tools/ack-check.sh %s/store %s", LS_SOURCE_DIR,
             pair.db[LS_H_B], ack);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 60000), 0, "the copy holds every acknowledged id: %s",
                 out);
    cr_assert(ls_h_contains(out, "300 acknowledged ids, every marker present"), "%s", out);
    free(out);
    expect(LS_H_B, "monitor", OCF_SUCCESS, NULL, NULL);
    expect(LS_H_A, "monitor", OCF_RUNNING_MASTER, NULL, NULL);
    if (!logship_has("activate") && !logship_has("resync")) {
        expect(LS_H_A, "demote", OCF_ERR_UNIMPLEMENTED, NULL,
               "has no activate and resync command: this logship cannot demote db1");
        expect(LS_H_B, "promote", OCF_ERR_UNIMPLEMENTED, NULL,
               "has no activate and resync command: this logship cannot promote db1");
    }

    /* A daemon that does not answer its control socket (stopped by SIGSTOP) has failed. */
    pid_t b = agent_pid(LS_H_B);
    cr_assert_gt(b, 0);
    kill(b, SIGSTOP);
    char *err = NULL;
    int rc = agent(LS_H_B, "monitor", NULL, &err);
    kill(b, SIGCONT);
    cr_assert_eq(rc, OCF_ERR_GENERIC, "monitor of a stopped daemon: %d (%s)", rc, err);
    cr_assert(ls_h_contains(err, "does not answer on its control socket"), "%s", err);
    free(err);
    expect(LS_H_B, "monitor", OCF_SUCCESS, NULL, NULL);

    /* Another database than the daemon's. */
    expect(LS_H_B, "monitor", OCF_ERR_CONFIGURED, "OCF_RESKEY_database=db2", "no [database db2]");

    expect(LS_H_A, "stop", OCF_SUCCESS, NULL, NULL);
    expect(LS_H_B, "stop", OCF_SUCCESS, NULL, NULL);
    cr_assert_eq(agent_pid(LS_H_A), 0);
    cr_assert_eq(agent_pid(LS_H_B), 0);
    cr_assert_eq(kill(b, 0), -1, "node-b's daemon is gone");
    expect(LS_H_A, "monitor", OCF_NOT_RUNNING, NULL, NULL);
    expect(LS_H_B, "stop", OCF_SUCCESS, NULL, NULL); /* stopped already */
}

/* validate-all names what is wrong; a probe of a stopped resource answers "not running" even
 * where nothing is installed. */
Test(ocf, validate_all_names_what_is_wrong)
{
    setup();
    expect(LS_H_B, "validate-all", OCF_SUCCESS, NULL, NULL);
    expect(LS_H_B, "validate-all", OCF_ERR_CONFIGURED, "OCF_RESKEY_config=/nonexistent/b.conf",
           "the configuration file /nonexistent/b.conf cannot be read");
    expect(LS_H_B, "validate-all", OCF_ERR_CONFIGURED,
           "OCF_RESKEY_config=", "the parameter config is not set");
    expect(LS_H_B, "validate-all", OCF_ERR_CONFIGURED, "OCF_RESKEY_database=db9",
           "has no [database db9] section");
    expect(LS_H_B, "validate-all", OCF_ERR_CONFIGURED, "OCF_RESKEY_max_loss=six",
           "the parameter max_loss is 'six', not a number of generations");
    expect(LS_H_B, "validate-all", OCF_ERR_INSTALLED, "OCF_RESKEY_logshipd=/nonexistent/logshipd",
           "/nonexistent/logshipd is not installed");
    expect(LS_H_B, "start", OCF_ERR_INSTALLED, "OCF_RESKEY_logshipd=/nonexistent/logshipd", NULL);
    expect(LS_H_B, "monitor", OCF_NOT_RUNNING,
           "OCF_RESKEY_logshipd=/nonexistent/logshipd OCF_RESKEY_CRM_meta_interval=0", NULL);

    /* A configuration logshipd refuses: its own message, with the file and line. */
    char bad[700];
    snprintf(bad, sizeof(bad), "%s/bad.conf", pair.dir);
    const char *text = "[node]\nname = x\nfrobnicate = 1\n[database db1]\nrole = active\n";
    cr_assert_eq(ls_h_write_file(bad, text, strlen(text)), 0);
    char extra[800];
    snprintf(extra, sizeof(extra), "OCF_RESKEY_config=%s", bad);
    expect(LS_H_B, "validate-all", OCF_ERR_CONFIGURED, extra, "bad.conf:3");
}

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
