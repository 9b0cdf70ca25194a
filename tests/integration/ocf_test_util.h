/* Helpers shared by the OCF agent tests (ocf_test.c, ocf_move_test.c): the pair of daemons the
 * agent starts and stops itself (pid files in the scratch directory), the suite's fini that
 * kills what a failed test left by pid, the agent's parameters and its calls with their
 * expected answers. Static: each test program includes this once. */
#ifndef LS_OCF_TEST_UTIL_H
#define LS_OCF_TEST_UTIL_H

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

/* the agent's exit codes */
enum { OCF_SUCCESS = 0, OCF_ERR_GENERIC = 1, OCF_ERR_UNIMPLEMENTED = 3, OCF_ERR_INSTALLED = 5 };
enum { OCF_ERR_CONFIGURED = 6, OCF_NOT_RUNNING = 7, OCF_RUNNING_MASTER = 8 };

/* helpers a test program may leave unused */
#ifndef UTIL
#define UTIL static __attribute__((unused))
#endif

UTIL ls_h_pair_t pair;
UTIL char pidfile[2][600];
UTIL pid_t load_pid; /* a background logship load, 0: none */

/* The daemon an agent's pid file names, or 0. */
UTIL pid_t agent_pid(int node)
{
    size_t len = 0;
    char *text = (char *) ls_h_read_file(pidfile[node], &len);
    pid_t pid = text ? (pid_t) atoi(text) : 0;
    free(text);
    return pid > 0 && kill(pid, 0) == 0 ? pid : 0;
}

UTIL void fini(void)
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

UTIL void setup_with(const ls_h_pair_opts_t *opts)
{
    if (access(OCF_TESTER, X_OK) != 0)
        cr_assert_fail("%s is missing: install resource-agents (tools/deps.sh test)", OCF_TESTER);
    ls_h_pair_init(&pair, "ocf", opts);
    for (int n = 0; n < 2; n++)
        snprintf(pidfile[n], sizeof(pidfile[n]), "%s/agent-%d.pid", pair.dir, n);
}

UTIL void setup(void)
{
    setup_with(&(ls_h_pair_opts_t){.plaintext = true});
}

/* The agent's parameters for node as environment assignments (OCF_RESKEY_*); extra overrides. */
UTIL void params(int node, const char *extra, char *out, size_t cap)
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
UTIL int agent(int node, const char *action, const char *extra, char **err)
{
    char env[4000], cmd[4400];
    params(node, extra, env, sizeof(env));
    snprintf(cmd, sizeof(cmd), "env %s %s %s", env, AGENT, action);
    return ls_h_sh(cmd, NULL, err, 120000);
}

UTIL void expect(int node, const char *action, int rc, const char *extra, const char *needle)
{
    char *err = NULL;
    int got = agent(node, action, extra, &err);
    cr_assert_eq(got, rc, "%s on node %d: exit %d, expected %d; stderr: %s", action, node, got, rc,
                 err ? err : "");
    if (needle)
        cr_assert(ls_h_contains(err, needle), "%s: stderr names '%s': %s", action, needle, err);
    free(err);
}

#endif
