/* logshipd refuses a bad configuration at start with FILE:LINE and the reason, checks a good one
 * with --check, and says how to call it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static char *dir;

static void fini(void)
{
    ls_h_rmtree_free(dir);
}

TestSuite(daemon_cli, .fini = fini, .timeout = 60);

/* Runs logshipd with args on a config holding text; returns the exit code, stderr in *err. */
static int run(const char *text, const char *args, char **out, char **err)
{
    if (!dir) dir = ls_h_tmpdir("dcli");
    char conf[600], cmd[1400];
    snprintf(conf, sizeof(conf), "%s/node.conf", dir);
    cr_assert_eq(ls_h_write_file(conf, text, strlen(text)), 0);
    snprintf(cmd, sizeof(cmd), "%s -c %s %s", ls_h_bin("logshipd"), conf, args);
    return ls_h_sh(cmd, out, err, 20000);
}

Test(daemon_cli, bad_configuration_is_refused_at_start_with_file_and_line)
{
    char *err = NULL;
    int rc = run("[node]\nname = a\ndata_dir = /tmp/x\n[tls]\ninsecure_plaintext = true\n"
                 "[database d]\nrole = active\ntargets = b\ncolour = blue\n",
                 "", NULL, &err);
    cr_assert_eq(rc, 2, "exit %d: %s", rc, err);
    cr_assert(ls_h_contains(err, "node.conf:9: unknown key 'colour' in [database]"), "%s", err);
    free(err);
    rc = run("[node]\nname = a\n", "", NULL, &err);
    cr_assert_eq(rc, 2);
    cr_assert(ls_h_contains(err, "missing required key 'data_dir' in [node]"), "%s", err);
    free(err);
    rc = run("[node]\nname = a\ndata_dir = /tmp/x\n[tls]\ninsecure_plaintext = true\n"
             "[target b]\nnetwork = r 127.0.0.1:99999\n",
             "", NULL, &err);
    cr_assert_eq(rc, 2);
    cr_assert(ls_h_contains(err, "node.conf:7: bad network address"), "%s", err);
    free(err);
}

Test(daemon_cli, check_validates_and_usage_is_explained)
{
    char *out = NULL, *err = NULL;
    int rc = run("[node]\nname = a\ndata_dir = /tmp/x\n[tls]\ninsecure_plaintext = true\n",
                 "--check", &out, &err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert(ls_h_contains(out, "node.conf: ok"), "%s", out);
    free(out);
    free(err);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "%s", ls_h_bin("logshipd"));
    cr_assert_eq(ls_h_sh(cmd, NULL, &err, 10000), 2);
    cr_assert(ls_h_contains(err, "a configuration file is required (-c FILE)"), "%s", err);
    free(err);
    snprintf(cmd, sizeof(cmd), "%s -c /nonexistent.conf", ls_h_bin("logshipd"));
    cr_assert_eq(ls_h_sh(cmd, NULL, &err, 10000), 2);
    cr_assert(ls_h_contains(err, "/nonexistent.conf: cannot open configuration file"), "%s", err);
    free(err);
    snprintf(cmd, sizeof(cmd), "%s --frobnicate", ls_h_bin("logshipd"));
    cr_assert_eq(ls_h_sh(cmd, NULL, &err, 10000), 2);
    cr_assert(ls_h_contains(err, "unknown option '--frobnicate'"), "%s", err);
    free(err);
}
