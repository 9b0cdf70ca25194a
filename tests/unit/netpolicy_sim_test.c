/* netpolicy: a small simulated link over the policy (networks that go down and up, connections
 * and probes that follow them), counting switches across flaps as
 * tests/integration/netns_test.c does. Split from netpolicy_test.c; helpers in
 * netpolicy_test_util.h. */

#include <criterion/criterion.h>

#include "netpolicy_test_util.h"

TestSuite(netpolicy, .fini = fini, .timeout = 10);

/* ---- a simulated link ----------------------------------------------------------------------- */
/* Networks go down and up; the simulation carries out the policy's actions the way the daemon
 * does: a connection or probe over a network that is down fails at once, one over a network
 * that goes down dies after HB ms of silence (a shorter outage costs nothing, as TCP
 * retransmits), an ALL_DOWN is retried after 100 ms. */
#define HB 1000

typedef struct {
    bool up[LS_NETPOLICY_MAX_NETS];             /* the network works */
    uint64_t down_since[LS_NETPOLICY_MAX_NETS]; /* ms */
    int data;                                   /* network of the data connection, -1: none */
    bool data_pending;                          /* connecting: WELCOME or failure next step */
    bool probe[LS_NETPOLICY_MAX_NETS];          /* probe open */
    bool probe_pending[LS_NETPOLICY_MAX_NETS];
    uint64_t retry_at; /* ms, after an ALL_DOWN (0: none) */
    int all_downs;
} sim_t;

static sim_t sim;

static void sim_run(ls_netpolicy_out_t *o);

static void sim_kick(void)
{
    ls_netpolicy_out_t o;
    ls_netpolicy_kick(p, now(), &o);
    sim_run(&o);
}

static void sim_run(ls_netpolicy_out_t *o)
{
    for (int i = 0; i < o->n; i++) {
        ls_netpolicy_action_t *a = &o->act[i];
        switch (a->kind) {
        case LS_NETPOLICY_CONNECT:
            cr_assert_eq(sim.data, -1, "one data connection");
            sim.data = a->net;
            sim.data_pending = true;
            break;
        case LS_NETPOLICY_ADOPT:
            cr_assert(sim.probe[a->net] && !sim.probe_pending[a->net], "adopts a ready probe");
            sim.probe[a->net] = false;
            sim.data = a->net;
            sim.data_pending = true; /* HELLO, then WELCOME */
            break;
        case LS_NETPOLICY_SWITCH:
            sim.data = -1;
            if (a->adopt) {
                cr_assert(sim.probe[a->net] && !sim.probe_pending[a->net]);
                sim.probe[a->net] = false;
                sim.data = a->net;
                sim.data_pending = true;
            } else {
                sim_kick();
            }
            break;
        case LS_NETPOLICY_PROBE:
            cr_assert(!sim.probe[a->net], "one probe per network");
            sim.probe[a->net] = sim.probe_pending[a->net] = true;
            break;
        case LS_NETPOLICY_CLOSE_PROBE:
            cr_assert(sim.probe[a->net], "closes a probe that exists");
            sim.probe[a->net] = false;
            break;
        case LS_NETPOLICY_ALL_DOWN:
            sim.all_downs++;
            sim.retry_at = t_ms + 100;
            break;
        case LS_NETPOLICY_SAVE_PIN:
        case LS_NETPOLICY_LOG:
            break;
        }
    }
}

static void sim_set(int j, bool up)
{
    if (sim.up[j] && !up) sim.down_since[j] = t_ms;
    sim.up[j] = up;
}

/* Dead: down for HB ms (heartbeats stopped), or down at all while connecting. */
static bool dead(int j, bool connecting)
{
    return !sim.up[j] && (connecting || t_ms - sim.down_since[j] >= HB);
}

/* One 10 ms step: connections and probes resolve, the dead ones end, timers fire. */
static void sim_step(void)
{
    ls_netpolicy_out_t o;
    t_ms += 10;
    for (int j = 0; j < ls_netpolicy_nnets(p); j++) {
        if (!sim.probe[j] || !dead(j, sim.probe_pending[j])) {
            if (sim.probe[j] && sim.probe_pending[j]) {
                sim.probe_pending[j] = false;
                ls_netpolicy_probe_up(p, now(), j, &o);
                sim_run(&o);
            }
            continue;
        }
        sim.probe[j] = sim.probe_pending[j] = false;
        ls_netpolicy_probe_down(p, now(), j, "probe failed", &o);
        sim_run(&o);
    }
    if (sim.data >= 0 && dead(sim.data, sim.data_pending)) {
        sim.data = -1;
        ls_netpolicy_failed(p, now(), "nothing received", &o);
        sim_run(&o);
        sim_kick();
    } else if (sim.data >= 0 && sim.data_pending) {
        sim.data_pending = false;
        ls_netpolicy_welcome(p, now(), &o);
        sim_run(&o);
    }
    if (sim.retry_at && t_ms >= sim.retry_at && sim.data < 0) {
        sim.retry_at = 0;
        sim_kick();
    }
    uint64_t d = ls_netpolicy_deadline(p);
    if (d && BASE + t_ms * MS >= d) {
        ls_netpolicy_tick(p, now(), &o);
        sim_run(&o);
    }
}

static void sim_for(uint64_t ms)
{
    uint64_t end = t_ms + ms;
    while (t_ms < end)
        sim_step();
}

static void sim_start(int nnets)
{
    make(nnets, NULL);
    memset(&sim, 0, sizeof(sim));
    sim.data = -1;
    for (int j = 0; j < nnets; j++)
        sim.up[j] = true;
    sim_kick();
    sim_for(100);
    cr_assert_eq(sim.data, 0);
    cr_assert_str_eq(state(0), "in_use");
}

Test(netpolicy, sim_short_flaps_cause_no_switch)
{
    sim_start(2);
    for (int i = 0; i < 10; i++) {
        sim_set(0, false);
        sim_for(100);
        sim_set(0, true);
        sim_for(100);
    }
    sim_for(5 * SETTLE);
    cr_assert_eq(ls_netpolicy_switches(p), 0);
    cr_assert_eq(sim.data, 0);
}

Test(netpolicy, sim_ten_long_flaps_cost_one_failover_and_one_failback)
{
    sim_start(2);
    for (int i = 0; i < 10; i++) { /* each outage outlasts the heartbeat timeout */
        sim_set(0, false);
        sim_for(HB + 300);
        sim_set(0, true);
        sim_for(500); /* the probe answers, then dies HB after the next outage began */
    }
    cr_assert_eq(sim.data, 1, "still on public: repl never stayed up for the settle time");
    sim_for(3 * SETTLE);
    cr_assert_eq(sim.data, 0, "back on repl");
    cr_assert_eq(ls_netpolicy_switches(p), 2, "one failover, one failback");
    cr_assert_eq(sim.all_downs, 0);
}

Test(netpolicy, sim_a_network_that_keeps_failing_waits_ever_longer)
{
    sim_start(2);
    uint64_t took[3];
    for (int round = 0; round < 3; round++) {
        sim_set(0, false);
        sim_for(HB + 100);
        cr_assert_eq(sim.data, 1, "round %d: failed over", round);
        sim_set(0, true);
        uint64_t t0 = t_ms;
        while (sim.data != 0 || sim.data_pending)
            sim_step();
        took[round] = t_ms - t0;
    }
    /* The probe interval plus 1x, 2x, 4x the settle time. */
    cr_assert(took[0] >= SETTLE && took[0] < 2 * SETTLE, "%llu", (unsigned long long) took[0]);
    cr_assert(took[1] >= 2 * SETTLE && took[1] < 3 * SETTLE, "%llu", (unsigned long long) took[1]);
    cr_assert(took[2] >= 4 * SETTLE && took[2] < 5 * SETTLE, "%llu", (unsigned long long) took[2]);
    cr_assert_eq(ls_netpolicy_switches(p), 6);
}

Test(netpolicy, sim_every_network_down_then_one_back)
{
    sim_start(2);
    sim_set(0, false);
    sim_set(1, false);
    sim_for(HB + 500);
    cr_assert_eq(sim.data, -1);
    cr_assert_geq(sim.all_downs, 2, "rounds keep failing");
    cr_assert_str_eq(state(0), "down");
    cr_assert_str_eq(state(1), "down");
    sim_set(1, true);
    sim_for(300);
    cr_assert_eq(sim.data, 1, "public carries the copies");
    sim_set(0, true);
    sim_for(3 * SETTLE);
    cr_assert_eq(sim.data, 0, "and repl again once settled");
    cr_assert_eq(ls_netpolicy_switches(p), 2);
}
