/* Replication networks between two hosts made of network namespaces (docs/NETWORKS.md): node-a
 * (active) in one, node-b (passive) in the other, joined by two veth links, `repl` (preferred)
 * and `public`. The tests take links down under a running workload and check failover,
 * failback after the settle time, the bound on what a switch resends, that flapping causes a
 * bounded number of switches, and that losing every network shows Disconnected with the reason
 * and a growing copy queue, then catches up. Needs root and iproute2 (netns.h). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemons.h"
#include "harness.h"
#include "netns.h"

enum { REPL = 0, PUBLIC = 1 };

#define HB_TIMEOUT_MS 1000
#define SETTLE_MS     2000
#define SLACK_MS      50           /* clock differences between this test and the daemon (below) */
#define TARGET_SIZE   (512 * 1024) /* generations written by the tests' loads */
#define TARGET_SIZE_S "524288"
#define WINDOW        (256 * 1024)

static ls_h_pair_t pair;
static ls_h_netns_t nn;

static void fini(void)
{
    if (pair.dir) ls_h_pair_fini(&pair);
    ls_h_netns_fini(&nn);
}

TestSuite(netns, .fini = fini, .timeout = 90);

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* Both configurations: node-a ships db1 to node-b over repl, then public (each bound to its own
 * address); node-b listens on both. Heartbeats every 200 ms, a path silent for 1 s is dead. */
static void setup(const char *tag)
{
    static const char *const links[] = {"repl", "public"};
    ls_h_netns_init(&nn, 2, links);
    ls_h_pair_init(&pair, tag, NULL);
    FILE *f = fopen(pair.conf[LS_H_A], "w");
    cr_assert_not_null(f);
    fprintf(f,
            "[node]\nname = node-a\ndata_dir = %s/node-a\ncontrol_socket = %s\n"
            "[tls]\nca = %s/certs/ca.pem\ncert = %s/certs/node-a.pem\nkey = %s/certs/node-a.key\n"
            "[target node-b]\nnetwork = repl %s:7401 bind=%s\nnetwork = public %s:7401 bind=%s\n"
            "heartbeat_interval = 200ms\nheartbeat_timeout = %dms\nsettle_time = %dms\n"
            "[database db1]\nrole = active\ntargets = node-b\n",
            pair.dir, pair.sock[LS_H_A], pair.dir, pair.dir, pair.dir, nn.addr[REPL][LS_H_B],
            nn.addr[REPL][LS_H_A], nn.addr[PUBLIC][LS_H_B], nn.addr[PUBLIC][LS_H_A], HB_TIMEOUT_MS,
            SETTLE_MS);
    fclose(f);
    f = fopen(pair.conf[LS_H_B], "w");
    cr_assert_not_null(f);
    fprintf(f,
            "[node]\nname = node-b\ndata_dir = %s/node-b\ncontrol_socket = %s\n"
            "receive_window = %d\nheartbeat_interval = 200ms\n"
            "[tls]\nca = %s/certs/ca.pem\ncert = %s/certs/node-b.pem\nkey = %s/certs/node-b.key\n"
            "[listen]\naddress = %s:7401\naddress = %s:7401\n"
            "[database db1]\nrole = passive\nsource = node-a\n",
            pair.dir, pair.sock[LS_H_B], WINDOW, pair.dir, pair.dir, pair.dir,
            nn.addr[REPL][LS_H_B], nn.addr[PUBLIC][LS_H_B]);
    fclose(f);
    ls_h_netns_node_start(&nn, &pair, LS_H_B);
    ls_h_netns_node_start(&nn, &pair, LS_H_A);
}

/* db1's copy on node-a, and one of its networks by name. */
static const cJSON *copy_a(const cJSON *st)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(st, "copies"))
    {
        if (!strcmp(cJSON_GetObjectItem(c, "database")->valuestring, "db1")) return c;
    }
    return NULL;
}

static const char *net_field(const cJSON *st, const char *net, const char *field)
{
    const cJSON *n;
    cJSON_ArrayForEach(n, cJSON_GetObjectItem(copy_a(st), "networks"))
    {
        if (strcmp(cJSON_GetObjectItem(n, "name")->valuestring, net)) continue;
        const cJSON *v = cJSON_GetObjectItem(n, field);
        return cJSON_IsString(v) ? v->valuestring : "";
    }
    return "";
}

static double net_num(const cJSON *st, const char *net, const char *field)
{
    const cJSON *n;
    cJSON_ArrayForEach(n, cJSON_GetObjectItem(copy_a(st), "networks"))
    {
        if (strcmp(cJSON_GetObjectItem(n, "name")->valuestring, net)) continue;
        const cJSON *v = cJSON_GetObjectItem(n, field);
        return cJSON_IsNumber(v) ? v->valuedouble : -1;
    }
    return -1;
}

/* The passive tolerates probes and switches without logging anything at ERROR level. */
static void no_errors_logged(int node)
{
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "! grep ' ERROR ' %s", pair.log[node]);
    char *out = NULL;
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 5000), 0, "errors logged:\n%s", out ? out : "");
    free(out);
}

/* `logship network ARGS` against node-a's daemon; returns its exit status. */
static int network_cmd(const char *args)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "%s network %s --socket %s", ls_h_bin("logship"), args,
             pair.sock[LS_H_A]);
    char *out = NULL, *err = NULL;
    int rc = ls_h_sh(cmd, &out, &err, 10000);
    fprintf(stderr, "$ logship network %s\n%s%s", args, out ? out : "", err ? err : "");
    free(out);
    free(err);
    return rc;
}

typedef struct {
    const char *field, *value;
} str_cond_t;

static bool str_is(void *ctx)
{
    str_cond_t *c = ctx;
    cJSON *st = ls_h_status(&pair, LS_H_A);
    bool ok = st && !strcmp(ls_h_str(st, c->field), c->value);
    cJSON_Delete(st);
    return ok;
}

/* Waits until node-a's copy ships over net (and is Healthy); returns the ms it took. */
static int wait_network(const char *net, int timeout_ms)
{
    uint64_t t0 = now_ms();
    str_cond_t c = {"network", net};
    str_cond_t h = {"state", "Healthy"};
    bool ok = ls_h_wait_for(str_is, &c, timeout_ms) && ls_h_wait_for(str_is, &h, timeout_ms);
    if (!ok) {
        cJSON *st = ls_h_status(&pair, LS_H_A);
        char *text = st ? cJSON_Print(copy_a(st)) : NULL;
        fprintf(stderr, "node-a's copy: %s\n", text ? text : "(no status)");
        free(text);
        cJSON_Delete(st);
        ls_h_pair_logs(&pair);
    }
    cr_assert(ok, "the copy does not ship over %s within %d ms", net, timeout_ms);
    return (int) (now_ms() - t0);
}

static double num_a(const char *field)
{
    cJSON *st = ls_h_status(&pair, LS_H_A);
    double v = st ? ls_h_num(st, field) : -1;
    cJSON_Delete(st);
    return v;
}

/* Waits until node-a's copy has copied more than gen generations. */
static void wait_copied_past(double gen, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t) timeout_ms;
    while (num_a("last_copied") <= gen) {
        cr_assert(now_ms() < end, "nothing copied past generation %.0f in %d ms", gen, timeout_ms);
        usleep(20000);
    }
}

/* A switch resends at most the generation in flight and one receive window. */
static void check_resent(double before, const char *when)
{
    double resent = num_a("resent_bytes") - before;
    fprintf(stderr, "netns: %s resent %.0f bytes (bound %d)\n", when, resent, TARGET_SIZE + WINDOW);
    cr_assert_leq(resent, TARGET_SIZE + WINDOW, "%s resent %.0f bytes, more than %d", when, resent,
                  TARGET_SIZE + WINDOW);
}

Test(netns, repl_down_fails_over_to_public_then_back_and_flaps_are_damped)
{
    if (!ls_h_netns_usable("the replication-network test")) return;
    setup("netns-failover");
    /* ~2.5 MB/s of log (about 5 generations a second) for ~25 s. */
    ls_h_load_start(&pair, "--target-size " TARGET_SIZE_S
                           " --transactions 3000 --records-per-txn 50 --value-size 400 "
                           "--threads 2 --seed 21 --rate 120");
    wait_network("repl", 20000);
    wait_copied_past(2, 20000);

    /* repl's far end goes down: heartbeats stop, the copy moves to public. */
    double resent0 = num_a("resent_bytes"), copied = num_a("last_copied");
    ls_h_netns_set(&nn, REPL, LS_H_B, false);
    int took = wait_network("public", HB_TIMEOUT_MS + 4000);
    fprintf(stderr, "netns: failover to public took %d ms (heartbeat timeout %d ms)\n", took,
            HB_TIMEOUT_MS);
    cr_assert_leq(took, HB_TIMEOUT_MS + 2000, "failover took %d ms", took);
    wait_copied_past(copied + 1, 10000); /* shipping goes on over public */
    cJSON *st = ls_h_status(&pair, LS_H_A);
    cr_assert_eq(ls_h_num(st, "network_switches"), 1);
    cr_assert(ls_h_contains(ls_h_str(st, "last_switch"), "repl failed"), "%s",
              ls_h_str(st, "last_switch"));
    cr_assert_neq(strlen(net_field(st, "repl", "last_error")), 0, "repl's last error is shown");
    cr_assert(ls_h_contains(net_field(st, "repl", "left_reason"), "failed"), "%s",
              net_field(st, "repl", "left_reason"));
    cr_assert_str_eq(net_field(st, "public", "state"), "in_use");
    cJSON_Delete(st);
    check_resent(resent0, "failover");

    /* repl returns: the copy fails back once repl stayed up for the settle time. */
    resent0 = num_a("resent_bytes");
    copied = num_a("last_copied");
    ls_h_netns_set(&nn, REPL, LS_H_B, true);
    took = wait_network("repl", SETTLE_MS + 8000);
    fprintf(stderr, "netns: failback to repl took %d ms (settle %d ms)\n", took, SETTLE_MS);
    /* The daemon's settle timer counts from libuv's loop time, cached at the start of the loop
     * iteration that saw repl healthy, and this test's clock starts once `ip` has returned:
     * a few ms either way (1997 ms was seen), hence the SLACK_MS */
    cr_assert_geq(took, SETTLE_MS - SLACK_MS, "failback after %d ms, before the settle time", took);
    wait_copied_past(copied + 1, 10000);
    cr_assert_eq(num_a("network_switches"), 2);
    check_resent(resent0, "failback");

    /* 10 flaps of repl, down/up every 100 ms: a bounded number of switches, not one per flap. */
    double switches = num_a("network_switches");
    for (int i = 0; i < 10; i++) {
        ls_h_netns_set(&nn, REPL, LS_H_B, false);
        usleep(100000);
        ls_h_netns_set(&nn, REPL, LS_H_B, true);
        usleep(100000);
    }
    wait_network("repl", 30000);
    usleep(3 * SETTLE_MS * 1000); /* nothing more should move: let any late switch show */
    wait_network("repl", 30000);
    double flap_switches = num_a("network_switches") - switches;
    fprintf(stderr, "netns: 10 flaps caused %.0f switches\n", flap_switches);
    cr_assert_leq(flap_switches, 3, "10 flaps caused %.0f switches", flap_switches);

    ls_h_load_wait(&pair);
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy did not catch up");
    cJSON *b = ls_h_status(&pair, LS_H_B);
    cr_assert_eq(ls_h_num(b, "applied_generations"), ls_h_num(b, "last_replayed"),
                 "each generation applied once");
    cJSON_Delete(b);
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_stop(&pair, LS_H_B);
    cr_assert(ls_h_stores_equal(&pair));
    no_errors_logged(LS_H_B);
}

static bool disconnected(void *ctx)
{
    (void) ctx;
    cJSON *st = ls_h_status(&pair, LS_H_A);
    bool ok = st && !strcmp(ls_h_str(st, "state"), "Disconnected") &&
              ls_h_contains(ls_h_str(st, "reason"), "repl: ") &&
              ls_h_contains(ls_h_str(st, "reason"), "public: ");
    cJSON_Delete(st);
    return ok;
}

Test(netns, every_network_down_shows_disconnected_then_catches_up)
{
    if (!ls_h_netns_usable("the replication-network test")) return;
    setup("netns-alldown");
    ls_h_load(&pair, "--target-size " TARGET_SIZE_S
                     " --transactions 100 --records-per-txn 50 --value-size 400 --seed 22");
    cr_assert(ls_h_wait_caught_up(&pair, 20000));

    /* Both links down on node-a's side: the copy is Disconnected, each network says why. */
    ls_h_netns_set(&nn, REPL, LS_H_A, false);
    ls_h_netns_set(&nn, PUBLIC, LS_H_A, false);
    bool ok = ls_h_wait_for(disconnected, NULL, HB_TIMEOUT_MS + 5000);
    cJSON *st = ls_h_status(&pair, LS_H_A);
    cr_assert(ok, "not Disconnected with both networks' errors: %s / %s", ls_h_str(st, "state"),
              ls_h_str(st, "reason"));
    cr_assert_str_eq(net_field(st, "repl", "state"), "down");
    cr_assert_str_eq(net_field(st, "public", "state"), "down");
    cr_assert_str_eq(ls_h_str(st, "network"), "");
    double queue0 = ls_h_num(st, "copy_queue");
    cJSON_Delete(st);

    /* The copy queue grows while nothing can be shipped. */
    ls_h_load(&pair, "--target-size " TARGET_SIZE_S
                     " --transactions 150 --records-per-txn 50 --value-size 400 --seed 23");
    uint64_t end = now_ms() + 10000;
    while (num_a("copy_queue") < queue0 + 3 && now_ms() < end)
        usleep(50000);
    double queue = num_a("copy_queue");
    cr_assert_geq(queue, queue0 + 3, "copy queue %.0f -> %.0f", queue0, queue);
    st = ls_h_status(&pair, LS_H_A);
    cr_assert_str_eq(ls_h_str(st, "state"), "Disconnected");
    cJSON_Delete(st);

    /* public returns: the copy catches up over it. */
    ls_h_netns_set(&nn, PUBLIC, LS_H_A, true);
    wait_network("public", 15000);
    cr_assert(ls_h_wait_caught_up(&pair, 20000), "the copy did not catch up over public");
    cr_assert_eq(num_a("copy_queue"), 0);

    /* repl returns too: its probe connects and settles; a clean stop meanwhile closes it. */
    ls_h_netns_set(&nn, REPL, LS_H_A, true);
    uint64_t until = now_ms() + 10000;
    for (;;) {
        st = ls_h_status(&pair, LS_H_A);
        bool settling = st && !strcmp(net_field(st, "repl", "state"), "settling");
        cJSON_Delete(st);
        if (settling) break;
        cr_assert_lt(now_ms(), until, "repl's probe never connected");
        usleep(20000);
    }
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_stop(&pair, LS_H_B);
    cr_assert(ls_h_stores_equal(&pair));
}

Test(netns, operator_pin_survives_restart_and_repeated_failures_lengthen_the_settle_time)
{
    if (!ls_h_netns_usable("the replication-network test")) return;
    setup("netns-pin");
    ls_h_load_start(&pair, "--target-size " TARGET_SIZE_S
                           " --transactions 2400 --records-per-txn 50 --value-size 400 "
                           "--threads 2 --seed 24 --rate 80");
    wait_network("repl", 20000);
    cr_assert_eq(network_cmd("node-b"), 0);
    cr_assert_eq(network_cmd("node-b release"), 0, "releasing without a pin is harmless");
    cr_assert_neq(network_cmd("nosuchtarget pin repl"), 0, "an unknown target is refused");

    /* Pinned to public: the copy moves at once, and stays there across a restart of node-a
     * although repl is healthy. */
    cr_assert_eq(network_cmd("node-b pin public"), 0);
    int took = wait_network("public", 5000);
    cr_assert_lt(took, SETTLE_MS, "a pin moves the copy at once (%d ms)", took);
    cJSON *st = ls_h_status(&pair, LS_H_A);
    cr_assert_str_eq(ls_h_str(st, "network_pinned"), "public");
    cr_assert(ls_h_contains(ls_h_str(st, "last_switch"), "pinned"), "%s",
              ls_h_str(st, "last_switch"));
    cJSON_Delete(st);
    cr_assert_neq(network_cmd("node-b pin nosuchnet"), 0, "an unknown network is refused");
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_netns_node_start(&nn, &pair, LS_H_A);
    wait_network("public", 10000);
    usleep((SETTLE_MS + 1500) * 1000); /* long enough for a failback, were it not pinned */
    st = ls_h_status(&pair, LS_H_A);
    cr_assert_str_eq(ls_h_str(st, "network_pinned"), "public", "the pin survived the restart");
    cr_assert_str_eq(ls_h_str(st, "network"), "public");
    cJSON_Delete(st);

    /* Released: back to repl after the settle time. */
    cr_assert_eq(network_cmd("node-b release"), 0);
    took = wait_network("repl", SETTLE_MS + 8000);
    cr_assert_geq(took, SETTLE_MS - SLACK_MS, "failback after %d ms", took);

    /* repl fails twice while carrying the copy: the second time its settle time doubles. */
    for (int round = 1; round <= 2; round++) {
        ls_h_netns_set(&nn, REPL, LS_H_B, false);
        wait_network("public", HB_TIMEOUT_MS + 4000);
        st = ls_h_status(&pair, LS_H_A);
        double settle = net_num(st, "repl", "settle_s");
        cJSON_Delete(st);
        double want = round == 1 ? SETTLE_MS / 1000.0 : 2 * SETTLE_MS / 1000.0;
        cr_assert_eq(settle, want, "after failure %d repl must stay up %.1f s, not %.1f s", round,
                     want, settle);
        ls_h_netns_set(&nn, REPL, LS_H_B, true);
        took = wait_network("repl", (int) (want * 1000) + 8000);
        fprintf(stderr, "netns: failback %d took %d ms (settle %.1f s)\n", round, took, want);
        cr_assert_geq(took, (int) (want * 1000), "failback %d after %d ms", round, took);
    }
    ls_h_load_wait(&pair);
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy did not catch up");
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_stop(&pair, LS_H_B);
    cr_assert(ls_h_stores_equal(&pair));
    no_errors_logged(LS_H_B);
}
