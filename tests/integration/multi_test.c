/* One daemon serves many databases, active for some and passive for others, and ships an active
 * database to more than one target: three real daemons on loopback.
 *   node-a: db1 active -> node-b, node-c;  db2 passive <- node-b
 *   node-b: db1 passive <- node-a;         db2 active -> node-a
 *   node-c: db1 passive <- node-a                                          */
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
#include "harness.h"

static char *dir;
static pid_t pids[3], loads[2];
static int ports[3];
static const char *names[3] = {"node-a", "node-b", "node-c"};

static void fini(void)
{
    for (int i = 0; i < 3; i++)
        if (pids[i] > 0) kill(pids[i], SIGKILL), ls_h_wait(pids[i], 10000);
    for (int i = 0; i < 2; i++)
        if (loads[i] > 0) kill(loads[i], SIGKILL), ls_h_wait(loads[i], 10000);
    if (!getenv("LS_KEEP")) ls_h_rmtree(dir);
    free(dir);
}

TestSuite(multi, .fini = fini, .timeout = 180);

static void write_conf(int n, const char *body)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s.conf", dir, names[n]);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "[node]\nname = %s\ndata_dir = %s/%s\ncontrol_socket = %s/%s.sock\n"
            "[tls]\ninsecure_plaintext = true\n[listen]\naddress = 127.0.0.1:%d\n%s",
            names[n], dir, names[n], dir, names[n], ports[n], body);
    fclose(f);
}

static cJSON *status(int n)
{
    char sock[600], *resp = NULL, err[256];
    snprintf(sock, sizeof(sock), "%s/%s.sock", dir, names[n]);
    if (ls_control_call(sock, "{\"cmd\":\"status\"}", 5000, &resp, err, sizeof(err))) return NULL;
    cJSON *j = cJSON_Parse(resp);
    free(resp);
    return j;
}

/* The copy of db on node n whose peer (target on the active, source on a passive) is peer. */
static double field(const cJSON *st, const char *db, const char *peer, const char *name)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(st, "copies"))
    {
        const char *role = cJSON_GetObjectItem(c, "role")->valuestring;
        const char *p =
            cJSON_GetObjectItem(c, !strcmp(role, "active") ? "target" : "source")->valuestring;
        if (!strcmp(cJSON_GetObjectItem(c, "database")->valuestring, db) && !strcmp(p, peer))
            return cJSON_GetObjectItem(c, name)->valuedouble;
    }
    return -1;
}

typedef struct {
    int active, passive;
    const char *db;
} copy_t;

static bool copies_caught_up(void *ctx)
{
    const copy_t *cs = ctx;
    bool ok = true;
    for (int i = 0; cs[i].db && ok; i++) {
        cJSON *a = status(cs[i].active), *p = status(cs[i].passive);
        double gen = a ? field(a, cs[i].db, names[cs[i].passive], "last_generated") : -1;
        ok = a && p && gen > 0 &&
             field(a, cs[i].db, names[cs[i].passive], "last_replayed") == gen &&
             field(p, cs[i].db, names[cs[i].active], "last_replayed") == gen;
        cJSON_Delete(a);
        cJSON_Delete(p);
    }
    return ok;
}

static void same_data(int a, int b, const char *db)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "mdb_dump -s data %s/%s/%s/store > %s/x.dump && mdb_dump -s data %s/%s/%s/store > "
             "%s/y.dump && cmp %s/x.dump %s/y.dump",
             dir, names[a], db, dir, dir, names[b], db, dir, dir, dir);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 60000), 0, "%s differs between %s and %s", db, names[a],
                 names[b]);
}

Test(multi, one_daemon_active_for_some_passive_for_others_and_two_targets)
{
    dir = ls_h_tmpdir("multi");
    for (int i = 0; i < 3; i++)
        ports[i] = ls_h_free_port();
    char body[2048];
    snprintf(body, sizeof(body),
             "[target node-b]\nnetwork = loop 127.0.0.1:%d\n[target node-c]\n"
             "network = loop 127.0.0.1:%d\n[database db1]\nrole = active\n"
             "targets = node-b, node-c\n[database db2]\nrole = passive\nsource = node-b\n",
             ports[1], ports[2]);
    write_conf(0, body);
    snprintf(body, sizeof(body),
             "[target node-a]\nnetwork = loop 127.0.0.1:%d\n[database db1]\nrole = passive\n"
             "source = node-a\n[database db2]\nrole = active\ntargets = node-a\n",
             ports[0]);
    write_conf(1, body);
    write_conf(2, "[database db1]\nrole = passive\nsource = node-a\n");
    for (int i = 0; i < 3; i++) {
        char conf[600], log[600];
        snprintf(conf, sizeof(conf), "%s/%s.conf", dir, names[i]);
        snprintf(log, sizeof(log), "%s/%s.log", dir, names[i]);
        char *argv[] = {(char *) ls_h_bin("logshipd"), "-c", conf, NULL};
        pids[i] = ls_h_spawn(argv, log, NULL);
    }
    for (int i = 0; i < 2; i++) {
        char db[600];
        snprintf(db, sizeof(db), "%s/%s/db%d", dir, names[i], i + 1);
        char *argv[] = {(char *) ls_h_bin("logship"),
                        "load",
                        db,
                        "--transactions",
                        "400",
                        "--records-per-txn",
                        "50",
                        "--value-size",
                        "400",
                        "--seed",
                        i ? "2" : "1",
                        NULL};
        loads[i] = ls_h_spawn(argv, NULL, NULL);
    }
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(ls_h_wait(loads[i], 120000), 0, "logship load %d failed", i);
        loads[i] = 0;
    }
    copy_t copies[] = {{0, 1, "db1"}, {0, 2, "db1"}, {1, 0, "db2"}, {0, 0, NULL}};
    cr_assert(ls_h_wait_for(copies_caught_up, copies, 60000), "not every copy caught up");
    cJSON *a = status(0);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(a, "copies")), 3,
                 "node-a shows db1 to two targets and its copy of db2");
    cJSON_Delete(a);
    for (int i = 0; i < 3; i++) {
        kill(pids[i], SIGTERM);
        cr_assert_eq(ls_h_wait(pids[i], 20000), 0, "%s did not stop cleanly", names[i]);
        pids[i] = 0;
    }
    same_data(0, 1, "db1");
    same_data(0, 2, "db1");
    same_data(1, 0, "db2");
}
