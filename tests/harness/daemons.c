/* A pair of real daemons for integration tests (see daemons.h): the pair's directories and
 * configurations, its daemons started and stopped, logship load, status and the waits on it, the
 * stores compared. The seed, activation and resync commands: daemons_cmds.c. */
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

static void write_conf(ls_h_pair_t *p, int node, const ls_h_pair_opts_t *o)
{
    const char *me = node == LS_H_A ? "node-a" : "node-b";
    char tls[1600];
    if (o->plaintext)
        snprintf(tls, sizeof(tls), "insecure_plaintext = true\n");
    else
        snprintf(tls, sizeof(tls),
                 "ca = %s/certs/ca.pem\ncert = %s/certs/%s.pem\nkey = %s/certs/%s.key\n", p->dir,
                 p->dir, me, p->dir, me);
    FILE *f = fopen(p->conf[node], "w");
    cr_assert_not_null(f);
    fprintf(f, "[node]\nname = %s\ndata_dir = %s/%s\ncontrol_socket = %s\n%s[tls]\n%s", me, p->dir,
            me, p->sock[node],
            node == LS_H_A ? (o->a_node_extra ? o->a_node_extra : "")
                           : (o->b_node_extra ? o->b_node_extra : ""),
            tls);
    if (o->seedable && node == LS_H_A) fprintf(f, "[listen]\naddress = 127.0.0.1:%d\n", p->aport);
    if (o->seedable && node == LS_H_B)
        fprintf(f,
                "[source node-a]\nnetwork = loop 127.0.0.1:%d\nheartbeat_interval = 200ms\n"
                "heartbeat_timeout = 2s\n",
                p->aport);
    if (node == LS_H_A)
        fprintf(f,
                "[target node-b]\nnetwork = loop 127.0.0.1:%d\nheartbeat_interval = 200ms\n"
                "heartbeat_timeout = 2s\n%s[database db1]\nrole = active\ntargets = node-b\n%s",
                p->port, o->a_target_extra ? o->a_target_extra : "",
                o->a_db_extra ? o->a_db_extra : "");
    else
        fprintf(f,
                "[listen]\naddress = 127.0.0.1:%d\n[database db1]\nrole = passive\n"
                "source = node-a\n%s",
                p->port, o->b_db_extra ? o->b_db_extra : "");
    fclose(f);
}

void ls_h_pair_init(ls_h_pair_t *p, const char *tag, const ls_h_pair_opts_t *o)
{
    static const ls_h_pair_opts_t none;
    if (!o) o = &none;
    memset(p, 0, sizeof(*p));
    p->dir = ls_h_tmpdir(tag);
    cr_assert_not_null(p->dir);
    p->port = ls_h_free_port();
    if (o->seedable) do
            p->aport = ls_h_free_port();
        while (p->aport == p->port);
    for (int n = 0; n < 2; n++) {
        const char *me = n == LS_H_A ? "node-a" : "node-b";
        snprintf(p->conf[n], sizeof(p->conf[n]), "%s/%s.conf", p->dir, me);
        snprintf(p->sock[n], sizeof(p->sock[n]), "%s/%s.sock", p->dir, me);
        snprintf(p->log[n], sizeof(p->log[n]), "%s/%s.log", p->dir, me);
        snprintf(p->db[n], sizeof(p->db[n]), "%s/%s/db1", p->dir, me);
    }
    if (!o->plaintext) {
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "%s certs %s/certs --ca --node node-a --node node-b",
                 ls_h_bin("logship"), p->dir);
        cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 30000), 0, "logship certs failed");
    }
    write_conf(p, LS_H_A, o);
    write_conf(p, LS_H_B, o);
}

void ls_h_pair_logs(ls_h_pair_t *p)
{
    for (int n = 0; n < 2; n++) {
        char cmd[700];
        snprintf(cmd, sizeof(cmd), "tail -n 40 %s", p->log[n]);
        char *out = NULL;
        ls_h_sh(cmd, &out, NULL, 5000);
        fprintf(stderr, "---- %s ----\n%s", p->log[n], out ? out : "");
        free(out);
    }
}

void ls_h_pair_fini(ls_h_pair_t *p)
{
    for (int n = 0; n < 2; n++)
        if (p->pid[n] > 0) ls_h_node_kill(p, n);
    if (p->load > 0) {
        kill(p->load, SIGKILL);
        ls_h_wait(p->load, 10000);
        p->load = 0;
    }
    if (!getenv("LS_KEEP"))
        ls_h_rmtree(p->dir);
    else
        fprintf(stderr, "kept %s\n", p->dir);
    free(p->dir);
}

void ls_h_node_start_argv(ls_h_pair_t *p, int node, char *const argv[], char *const env[],
                          const char *where)
{
    cr_assert_eq(p->pid[node], 0, "node %d already running", node);
    p->pid[node] = ls_h_spawn(argv, p->log[node], env);
    cr_assert_gt(p->pid[node], 0);
    for (int i = 0; i < 2000; i++) {
        cJSON *st = ls_h_status(p, node);
        if (st) {
            cJSON_Delete(st);
            return;
        }
        if (ls_h_wait(p->pid[node], 5) >= 0) {
            p->pid[node] = 0;
            ls_h_pair_logs(p);
            cr_assert_fail("logshipd %s exited at start%s", p->conf[node], where);
        }
    }
    ls_h_pair_logs(p);
    cr_assert_fail("logshipd %s does not answer on its control socket%s", p->conf[node], where);
}

void ls_h_node_start(ls_h_pair_t *p, int node, char *const env[])
{
    char *argv[] = {(char *) ls_h_bin("logshipd"), "-c", p->conf[node], NULL};
    ls_h_node_start_argv(p, node, argv, env, "");
}

void ls_h_node_stop(ls_h_pair_t *p, int node)
{
    cr_assert_gt(p->pid[node], 0);
    kill(p->pid[node], SIGTERM);
    int rc = ls_h_wait(p->pid[node], 20000);
    if (rc < 0) kill(p->pid[node], SIGKILL), ls_h_wait(p->pid[node], 5000);
    p->pid[node] = 0;
    if (rc != 0) ls_h_pair_logs(p);
    cr_assert_eq(rc, 0, "logshipd did not stop cleanly on SIGTERM (status %d)", rc);
}

void ls_h_node_kill(ls_h_pair_t *p, int node)
{
    if (p->pid[node] <= 0) return;
    kill(p->pid[node], SIGKILL);
    ls_h_wait(p->pid[node], 10000);
    p->pid[node] = 0;
}

static char **load_argv(ls_h_pair_t *p, const char *args, char *buf, size_t buflen)
{
    static __thread char *argv[64];
    int n = 0;
    argv[n++] = (char *) ls_h_bin("logship");
    argv[n++] = "load";
    argv[n++] = p->db[LS_H_A];
    snprintf(buf, buflen, "%s", args);
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t && n < 62;
         t = strtok_r(NULL, " ", &save))
        argv[n++] = t;
    argv[n] = NULL;
    return argv;
}

void ls_h_load(ls_h_pair_t *p, const char *args)
{
    char buf[1024], *err = NULL;
    int rc = ls_h_run(load_argv(p, args, buf, sizeof(buf)), NULL, &err, 300000);
    cr_assert_eq(rc, 0, "logship load %s failed (%d): %s", args, rc, err);
    free(err);
}

void ls_h_load_start(ls_h_pair_t *p, const char *args)
{
    char buf[1024], path[600];
    snprintf(path, sizeof(path), "%s/load.log", p->dir);
    p->load = ls_h_spawn(load_argv(p, args, buf, sizeof(buf)), path, NULL);
    cr_assert_gt(p->load, 0);
}

void ls_h_load_wait(ls_h_pair_t *p)
{
    int rc = ls_h_wait(p->load, 300000);
    p->load = 0;
    cr_assert_eq(rc, 0, "logship load failed (%d)", rc);
}

pid_t ls_h_load_until_fenced(ls_h_pair_t *p, int node, const char *acklog, const char *errlog,
                             int seed)
{
    char seeds[32];
    snprintf(seeds, sizeof(seeds), "%d", seed);
    char *argv[] = {(char *) ls_h_bin("logship"),
                    "load",
                    p->db[node],
                    "--transactions",
                    "100000000",
                    "--rate",
                    "1500",
                    "--threads",
                    "2",
                    "--target-size",
                    "65536",
                    "--seed",
                    seeds,
                    "--ack-log",
                    (char *) acklog,
                    NULL};
    pid_t pid = ls_h_spawn(argv, errlog, NULL);
    cr_assert_gt(pid, 0, "cannot start logship load");
    return pid;
}

cJSON *ls_h_status(ls_h_pair_t *p, int node)
{
    char *resp = NULL, err[512];
    if (ls_control_call(p->sock[node], "{\"cmd\":\"status\"}", 5000, &resp, err, sizeof(err)))
        return NULL;
    cJSON *j = cJSON_Parse(resp);
    free(resp);
    return j;
}

static const cJSON *copy_of(const cJSON *st)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(st, "copies"))
    {
        const cJSON *db = cJSON_GetObjectItem(c, "database");
        if (cJSON_IsString(db) && !strcmp(db->valuestring, "db1")) return c;
    }
    return NULL;
}

double ls_h_num(const cJSON *st, const char *field)
{
    const cJSON *v = cJSON_GetObjectItem(copy_of(st), field);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

const char *ls_h_str(const cJSON *st, const char *field)
{
    const cJSON *v = cJSON_GetObjectItem(copy_of(st), field);
    return cJSON_IsString(v) ? v->valuestring : "";
}

typedef struct {
    ls_h_pair_t *p;
    int node;
    const char *field;
    double value;
    const char *state;
} cond_t;

static bool num_is(void *ctx)
{
    cond_t *c = ctx;
    cJSON *st = ls_h_status(c->p, c->node);
    bool ok = st && ls_h_num(st, c->field) == c->value;
    cJSON_Delete(st);
    return ok;
}

bool ls_h_wait_num(ls_h_pair_t *p, int node, const char *field, double value, int timeout_ms)
{
    cond_t c = {p, node, field, value, NULL};
    return ls_h_wait_for(num_is, &c, timeout_ms);
}

static bool state_is(void *ctx)
{
    cond_t *c = ctx;
    cJSON *st = ls_h_status(c->p, c->node);
    bool ok = st && !strcmp(ls_h_str(st, "state"), c->state);
    cJSON_Delete(st);
    return ok;
}

bool ls_h_wait_state(ls_h_pair_t *p, int node, const char *state, int timeout_ms)
{
    cond_t c = {p, node, NULL, 0, state};
    return ls_h_wait_for(state_is, &c, timeout_ms);
}

typedef struct {
    ls_h_pair_t *p;
    int active, copy; /* the nodes */
} caught_cond_t;

static bool caught_up(void *ctx)
{
    caught_cond_t *c = ctx;
    cJSON *a = ls_h_status(c->p, c->active), *b = ls_h_status(c->p, c->copy);
    bool ok = false;
    if (a && b) {
        double gen = ls_h_num(a, "last_generated");
        ok = gen > 0 && ls_h_num(a, "last_replayed") == gen && ls_h_num(b, "last_replayed") == gen;
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    return ok;
}

bool ls_h_wait_copy_caught_up(ls_h_pair_t *p, int active, int copy, int timeout_ms)
{
    caught_cond_t c = {p, active, copy};
    bool ok = ls_h_wait_for(caught_up, &c, timeout_ms);
    if (!ok) ls_h_pair_logs(p);
    return ok;
}

bool ls_h_wait_caught_up(ls_h_pair_t *p, int timeout_ms)
{
    return ls_h_wait_copy_caught_up(p, LS_H_A, LS_H_B, timeout_ms);
}

bool ls_h_stores_equal(ls_h_pair_t *p)
{
    char cmd[2048];
    /* The map size in the dump's header is not data (a seeded copy opens with its own). */
    snprintf(cmd, sizeof(cmd),
             "mdb_dump -s data %s/store | grep -v '^mapsize=' > %s/a.dump && "
             "mdb_dump -s data %s/store | grep -v '^mapsize=' > %s/b.dump && "
             "cmp %s/a.dump %s/b.dump && test $(wc -l < %s/a.dump) -gt 4",
             p->db[LS_H_A], p->dir, p->db[LS_H_B], p->dir, p->dir, p->dir, p->dir);
    char *err = NULL;
    int rc = ls_h_sh(cmd, NULL, &err, 60000);
    if (rc != 0) fprintf(stderr, "stores differ: %s\n", err ? err : "");
    free(err);
    return rc == 0;
}

void ls_h_dump_store(ls_h_pair_t *p, int node, const char *path)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "mdb_dump -s data %s/store | grep -v '^mapsize=' > %s", p->db[node],
             path);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 60000), 0, "mdb_dump of %s failed", p->db[node]);
}

bool ls_h_store_matches_dump(ls_h_pair_t *p, int node, const char *dump)
{
    char now[700], cmd[2048];
    snprintf(now, sizeof(now), "%s/now.dump", p->dir);
    ls_h_dump_store(p, node, now);
    snprintf(cmd, sizeof(cmd), "cmp %s %s && test $(wc -l < %s) -gt 4", dump, now, now);
    return ls_h_sh(cmd, NULL, NULL, 60000) == 0;
}
