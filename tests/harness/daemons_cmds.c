/* A pair of real daemons for integration tests (see daemons.h): the commands run against it
 * (seed, activate, resync, logship load on either node) and the waits on a database's role.
 * The pair itself, its daemons, status and stores: daemons.c. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "control/control.h"
#include "daemons.h"
#include "harness.h"

static char **seed_argv(ls_h_pair_t *p, const char *args, char *buf, size_t buflen)
{
    static __thread char *argv[32];
    int n = 0;
    argv[n++] = (char *) ls_h_bin("logship");
    argv[n++] = "seed";
    argv[n++] = "db1";
    argv[n++] = "-c";
    argv[n++] = p->conf[LS_H_B];
    snprintf(buf, buflen, "%s", args ? args : "");
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t && n < 30;
         t = strtok_r(NULL, " ", &save))
        argv[n++] = t;
    argv[n] = NULL;
    return argv;
}

int ls_h_seed(ls_h_pair_t *p, const char *args, char **out, char **err, int timeout_ms)
{
    char buf[512];
    return ls_h_run(seed_argv(p, args, buf, sizeof(buf)), out, err, timeout_ms);
}

pid_t ls_h_seed_start(ls_h_pair_t *p, const char *args)
{
    char buf[512], path[600];
    snprintf(path, sizeof(path), "%s/seed.log", p->dir);
    pid_t pid = ls_h_spawn(seed_argv(p, args, buf, sizeof(buf)), path, NULL);
    cr_assert_gt(pid, 0);
    return pid;
}

cJSON *ls_h_seed_status(ls_h_pair_t *p)
{
    char *resp = NULL, err[512];
    if (ls_control_call(p->sock[LS_H_B], "{\"cmd\":\"seed_status\",\"database\":\"db1\"}", 5000,
                        &resp, err, sizeof(err)))
        return NULL;
    cJSON *j = cJSON_Parse(resp);
    free(resp);
    return j;
}

typedef struct {
    ls_h_pair_t *p;
    double percent;
} seed_cond_t;

static bool seed_reached(void *ctx)
{
    seed_cond_t *c = ctx;
    cJSON *j = ls_h_seed_status(c->p);
    const cJSON *v = j ? cJSON_GetObjectItem(j, "percent") : NULL;
    bool ok = cJSON_IsNumber(v) && v->valuedouble >= c->percent;
    cJSON_Delete(j);
    return ok;
}

bool ls_h_wait_seed_percent(ls_h_pair_t *p, double percent, int timeout_ms)
{
    seed_cond_t c = {p, percent};
    return ls_h_wait_for(seed_reached, &c, timeout_ms);
}

/* ---- activation and resync helpers ---- */

void ls_h_pair_start_peers(ls_h_pair_t *p, const char *tag, const char *a_db_extra,
                           const char *b_db_extra)
{
    ls_h_pair_opts_t o = {.plaintext = true,
                          .seedable = true,
                          .b_db_extra = b_db_extra ? b_db_extra : "copies = node-a, node-b\n",
                          .a_db_extra = a_db_extra};
    ls_h_pair_init(p, tag, &o);
    char cmd[1200];
    snprintf(
        cmd, sizeof(cmd),
        "sed -i 's/^\\[source node-a\\]$/[peer node-a]/' %s && grep -q '^\\[peer node-a\\]$' %s",
        p->conf[LS_H_B], p->conf[LS_H_B]);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 5000), 0, "no [source node-a] in node-b's configuration");
    ls_h_node_start(p, LS_H_A, NULL);
    ls_h_node_start(p, LS_H_B, NULL);
}

int ls_h_logship(ls_h_pair_t *p, const char *cmd, int node, const char *args, char **out,
                 char **err)
{
    char line[2048];
    snprintf(line, sizeof(line), "%s %s db1 %s -c %s", ls_h_bin("logship"), cmd, args,
             p->conf[node]);
    *out = *err = NULL;
    return ls_h_sh(line, out, err, 60000);
}

int ls_h_load_on(ls_h_pair_t *p, int node, const char *args, char **err)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s load %s %s", ls_h_bin("logship"), p->db[node], args);
    *err = NULL;
    return ls_h_sh(cmd, NULL, err, 120000);
}

void ls_h_load_ok(ls_h_pair_t *p, int node, const char *args)
{
    char *err;
    int rc = ls_h_load_on(p, node, args, &err);
    cr_assert_eq(rc, 0, "logship load on node %d: %s", node, err);
    free(err);
}

const char *ls_h_jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

const cJSON *ls_h_db1_of(const cJSON *st)
{
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(st, "databases"))
    {
        if (!strcmp(ls_h_jstr(d, "database"), "db1")) return d;
    }
    return NULL;
}

typedef struct {
    ls_h_pair_t *p;
    int node;
    const char *role;  /* db1's role in "databases" */
    const char *state; /* db1's copy state in "copies" (NULL: any) */
} role_cond_t;

static bool role_is(void *ctx)
{
    role_cond_t *c = ctx;
    cJSON *st = ls_h_status(c->p, c->node);
    const cJSON *d = st ? ls_h_db1_of(st) : NULL;
    bool ok = d && !strcmp(ls_h_jstr(d, "role"), c->role) &&
              (!c->state || !strcmp(ls_h_str(st, "state"), c->state));
    cJSON_Delete(st);
    return ok;
}

bool ls_h_wait_role(ls_h_pair_t *p, int node, const char *role, const char *state)
{
    role_cond_t c = {p, node, role, state};
    bool ok = ls_h_wait_for(role_is, &c, 20000);
    if (!ok) ls_h_pair_logs(p);
    return ok;
}

bool ls_h_wait_db_role(ls_h_pair_t *p, int node, const char *role)
{
    return ls_h_wait_role(p, node, role, NULL);
}

bool ls_h_wait_b_caught_up(ls_h_pair_t *p, int timeout_ms)
{
    return ls_h_wait_copy_caught_up(p, LS_H_B, LS_H_A, timeout_ms);
}

uint64_t ls_h_activate(ls_h_pair_t *p, int node, unsigned epoch)
{
    char *out, *err, want[64];
    int rc = ls_h_logship(p, "activate", node, "", &out, &err);
    cr_assert_eq(rc, 0, "activate failed (%d): %s%s", rc, out, err);
    snprintf(want, sizeof(want), "epoch %u starts at generation ", epoch);
    const char *at = strstr(out, want);
    cr_assert_not_null(at, "activate did not start epoch %u: %s", epoch, out);
    uint64_t first = strtoull(at + strlen(want), NULL, 10);
    free(out);
    free(err);
    return first;
}

void ls_h_ack_check(ls_h_pair_t *p, int node, const char *acklog)
{
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof(cmd), "sh %s/tools/ack-check.sh %s/store %s", LS_SOURCE_DIR, p->db[node],
             acklog);
    int rc = ls_h_sh(cmd, &out, NULL, 60000);
    cr_assert_eq(rc, 0, "ack-check of node %d against %s: %s", node, acklog, out);
    free(out);
}

void ls_h_load_fenced(pid_t pid, const char *errlog, const char *new_active)
{
    int st = ls_h_wait(pid, 30000);
    size_t len = 0;
    char *z = (char *) ls_h_read_file(errlog, &len); /* NUL-terminated */
    cr_assert_not_null(z, "no output of logship load in %s", errlog);
    cr_assert(st > 0 && st < 128, "the load on the old active did not fail (status %d): %s", st, z);
    char want[128];
    snprintf(want, sizeof(want), "is fenced: %s becomes the active", new_active);
    cr_assert(ls_h_contains(z, "LS_EFENCED") || ls_h_contains(z, "fenced"), "%s", z);
    cr_assert(ls_h_contains(z, want), "the load's error does not name %s: %s", new_active, z);
    free(z);
}
