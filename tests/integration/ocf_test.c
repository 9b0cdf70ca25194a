/*
 * The OCF resource agent tools/ocf/logship (docs/ACTIVATION.md) with real daemons on loopback:
 * ocf-tester (Debian resource-agents) against a copy, and the agent's answers checked one by one:
 * monitor tells a stopped daemon, a copy, the active and a daemon that does not answer apart;
 * validate-all names what is wrong. The promotion score and a planned move: ocf_move_test.c;
 * the pair, the agent's calls and the suite's fini: ocf_test_util.h. The daemons are started and
 * stopped by the agent itself (pid files in the scratch directory); the suite's fini kills what a
 * failed test left, by pid.
 *
 * A logship without the activate and resync commands makes promote and demote answer
 * OCF_ERR_UNIMPLEMENTED naming the missing commands, which the tests assert when so (ocf-tester
 * then reports the agent as not promotable).
 */

#include <criterion/criterion.h>

#include "ocf_test_util.h"

TestSuite(ocf, .fini = fini, .timeout = 180);

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
