/* netpolicy: the replication networks' state machine, driven with a fake clock and no sockets.
 * The first tests step through single transitions and check the actions; the last ones run a
 * small simulated link (networks that go down and up, connections and probes that follow them)
 * over the policy, to count switches across flaps as tests/integration/netns_test.c does. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "netpolicy/netpolicy.h"

#define MS     1000000ull
#define BASE   (1000000ull * MS)               /* monotonic ns at t = 0 */
#define WALL0  (1700000000ull * 1000000000ull) /* wall ns at t = 0 */
#define SETTLE 2000                            /* ms */

static ls_netpolicy_t *p;
static ls_netpolicy_out_t out;
static uint64_t t_ms; /* the fake clock, ms since the start */

static ls_netpolicy_now_t now(void)
{
    return (ls_netpolicy_now_t){.mono = BASE + t_ms * MS, .wall = WALL0 + t_ms * MS};
}

static void make(int nnets, const char *pin)
{
    static const char *names[] = {"repl", "public", "backup", "d", "e", "f", "g", "h"};
    ls_netpolicy_opts_t o = {.nnets = nnets, .names = names, .settle_ms = SETTLE, .pin = pin};
    cr_assert_eq(ls_netpolicy_new(&o, &p), 0);
    t_ms = 0;
}

static void fini(void)
{
    ls_netpolicy_free(p);
    p = NULL;
}

TestSuite(netpolicy, .fini = fini, .timeout = 10);

/* Index of the first action of kind (on net, unless net is -2) in out, -1 if none. */
static int find(ls_netpolicy_kind_t kind, int net)
{
    for (int i = 0; i < out.n; i++)
        if (out.act[i].kind == kind && (net == -2 || out.act[i].net == net)) return i;
    return -1;
}

static int count(ls_netpolicy_kind_t kind)
{
    int c = 0;
    for (int i = 0; i < out.n; i++)
        c += out.act[i].kind == kind;
    return c;
}

static const ls_netpolicy_net_t *net(int j)
{
    return ls_netpolicy_net(p, j);
}

static const char *state(int j)
{
    return ls_netpolicy_state_name(net(j)->state);
}

static const char *logged(void)
{
    int i = find(LS_NETPOLICY_LOG, -2);
    return i < 0 ? "" : out.act[i].text;
}

/* kick, which must connect over j (not adopt), then WELCOME. */
static void connect_over(int j)
{
    ls_netpolicy_kick(p, now(), &out);
    cr_assert_geq(find(LS_NETPOLICY_CONNECT, j), 0, "connects over %d", j);
    cr_assert_eq(out.act[out.n - 1].kind, LS_NETPOLICY_CONNECT, "the connect comes last");
    cr_assert_str_eq(state(j), "connecting");
    cr_assert_eq(ls_netpolicy_current(p), j);
    ls_netpolicy_welcome(p, now(), &out);
    cr_assert_str_eq(state(j), "in_use");
}

/* Ships over repl, repl fails, ships over public: the probe of repl is due at once. */
static void on_public_after_repl_failed(void)
{
    connect_over(0);
    ls_netpolicy_failed(p, now(), "nothing received for 1001 ms", &out);
    connect_over(1);
}

Test(netpolicy, new_checks_its_options_and_applies_defaults)
{
    const char *names[] = {"a", "b", NULL};
    ls_netpolicy_opts_t o = {.nnets = 0, .names = names};
    cr_assert_eq(ls_netpolicy_new(&o, &p), LS_EINVAL, "no network");
    o.nnets = LS_NETPOLICY_MAX_NETS + 1;
    cr_assert_eq(ls_netpolicy_new(&o, &p), LS_EINVAL, "too many");
    o.nnets = 3;
    cr_assert_eq(ls_netpolicy_new(&o, &p), LS_EINVAL, "a name missing");
    char longname[LS_NETPOLICY_NAME_MAX + 1];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    names[1] = longname;
    o.nnets = 2;
    cr_assert_eq(ls_netpolicy_new(&o, &p), LS_EINVAL, "a name too long");
    o.names = NULL;
    cr_assert_eq(ls_netpolicy_new(&o, &p), LS_EINVAL, "no names");
    cr_assert_null(p);
    ls_netpolicy_free(NULL);

    names[1] = "b";
    o.names = names;
    cr_assert_eq(ls_netpolicy_new(&o, &p), 0);
    cr_assert_eq(ls_netpolicy_nnets(p), 2);
    cr_assert_eq(ls_netpolicy_settle_ms(p, 0, BASE), 10000, "settle_time 10 s by default");
    cr_assert_eq(ls_netpolicy_pinned(p), -1);
    cr_assert_eq(ls_netpolicy_current(p), -1);
    cr_assert_eq(ls_netpolicy_deadline(p), 0);
    cr_assert_str_eq(state(0), "unused");
    cr_assert_str_eq(ls_netpolicy_last_switch(p, NULL), "");
    /* The default probe interval: settle / 2 = 5 s, within [0.5 s, 5 s]. */
    t_ms = 0;
    connect_over(0);
    ls_netpolicy_failed(p, now(), "reset", &out);
    cr_assert_eq(net(0)->next_probe, BASE + 5000 * MS);
}

Test(netpolicy, probe_interval_is_half_the_settle_time_within_bounds)
{
    static const char *names[] = {"repl", "public"};
    uint64_t settles[] = {400, 4000, 60000}, want[] = {500, 2000, 5000};
    for (int i = 0; i < 3; i++) {
        ls_netpolicy_opts_t o = {.nnets = 2, .names = names, .settle_ms = settles[i]};
        cr_assert_eq(ls_netpolicy_new(&o, &p), 0);
        t_ms = 0;
        connect_over(0);
        ls_netpolicy_failed(p, now(), "reset", &out);
        cr_assert_eq(net(0)->next_probe - BASE, want[i] * MS, "settle %llu",
                     (unsigned long long) settles[i]);
        ls_netpolicy_free(p);
        p = NULL;
    }
}

Test(netpolicy, first_network_carries_the_copies_and_nothing_is_probed)
{
    make(2, NULL);
    connect_over(0);
    cr_assert_eq(out.n, 0, "no switch, no probe");
    cr_assert_eq(ls_netpolicy_switches(p), 0);
    cr_assert_eq(ls_netpolicy_deadline(p), 0, "nothing to wait for");
    cr_assert_str_eq(state(1), "unused");
    t_ms = 60000;
    ls_netpolicy_tick(p, now(), &out);
    cr_assert_eq(out.n, 0);
}

Test(netpolicy, failover_goes_through_the_list_at_once_and_counts_one_switch)
{
    make(3, NULL);
    connect_over(0);
    t_ms = 1000;
    ls_netpolicy_failed(p, now(), "nothing received from 10.1.0.2:7401 for 1001 ms", &out);
    cr_assert_str_eq(state(0), "down");
    cr_assert_str_eq(net(0)->last_error, "nothing received from 10.1.0.2:7401 for 1001 ms");
    cr_assert_eq(net(0)->last_error_ns, WALL0 + 1000 * MS);
    cr_assert_str_eq(net(0)->left_reason,
                     "failed: nothing received from 10.1.0.2:7401 for 1001 ms");
    cr_assert_eq(net(0)->left_ns, WALL0 + 1000 * MS);
    cr_assert_eq(net(0)->failures, 1);
    cr_assert_eq(net(0)->penalty, 1);
    cr_assert_eq(ls_netpolicy_current(p), -1);
    /* public refuses at once: the next one, still in the same round. */
    ls_netpolicy_kick(p, now(), &out);
    cr_assert_geq(find(LS_NETPOLICY_CONNECT, 1), 0);
    ls_netpolicy_failed(p, now(), "cannot connect to 192.0.2.2:7401: connection refused", &out);
    cr_assert_str_eq(state(1), "down");
    cr_assert_str_eq(net(1)->left_reason, "", "it never carried the copies");
    cr_assert_eq(net(1)->penalty, 0, "a failed attempt is no penalty");
    connect_over(2);
    cr_assert_eq(ls_netpolicy_switches(p), 1);
    const char *sw = ls_netpolicy_last_switch(p, NULL);
    cr_assert_str_eq(sw, "from repl to backup: network repl failed: nothing received from "
                         "10.1.0.2:7401 for 1001 ms");
    uint64_t when;
    ls_netpolicy_last_switch(p, &when);
    cr_assert_eq(when, WALL0 + 1000 * MS);
    int i = find(LS_NETPOLICY_LOG, -2);
    cr_assert_geq(i, 0);
    cr_assert_eq(out.act[i].level, LS_LOG_WARN, "moving to a less preferred network: WARN");
    cr_assert(strstr(out.act[i].text, "switched network from repl to backup") != NULL, "%s",
              out.act[i].text);
    cr_assert(strstr(out.act[i].text, "(switch 1)") != NULL, "%s", out.act[i].text);
}

Test(netpolicy, every_network_down_ends_the_round_then_starts_over_from_the_first)
{
    make(2, NULL);
    connect_over(0);
    ls_netpolicy_failed(p, now(), "network is unreachable", &out);
    ls_netpolicy_kick(p, now(), &out);
    ls_netpolicy_failed(p, now(), "connection refused", &out);
    ls_netpolicy_kick(p, now(), &out);
    cr_assert_eq(out.n, 1);
    cr_assert_eq(out.act[0].kind, LS_NETPOLICY_ALL_DOWN);
    cr_assert_str_eq(out.act[0].text, "repl: network is unreachable; public: connection refused");
    cr_assert_str_eq(state(0), "down");
    cr_assert_str_eq(state(1), "down");
    cr_assert_eq(ls_netpolicy_current(p), -1);
    /* After the caller's backoff, a new round from the preferred network. */
    t_ms = 100;
    ls_netpolicy_kick(p, now(), &out);
    cr_assert_geq(find(LS_NETPOLICY_CONNECT, 0), 0);
    ls_netpolicy_failed(p, now(), "network is unreachable", &out);
    /* public is back: the copies ship over it, a switch from repl. */
    connect_over(1);
    cr_assert_eq(ls_netpolicy_switches(p), 1);
    cr_assert(strstr(ls_netpolicy_last_switch(p, NULL), "from repl to public") != NULL);
}

Test(netpolicy, errors_name_every_network_or_say_not_tried)
{
    make(3, NULL);
    char buf[LS_NETPOLICY_TEXT_MAX];
    ls_netpolicy_errors(p, buf, sizeof(buf));
    cr_assert_str_eq(buf, "repl: not tried; public: not tried; backup: not tried");
    ls_netpolicy_kick(p, now(), &out);
    ls_netpolicy_failed(p, now(), "refused", &out);
    char small[12];
    ls_netpolicy_errors(p, small, sizeof(small));
    cr_assert_str_eq(small, "repl: refus", "cut at the buffer's end");
}

Test(netpolicy, a_connection_we_closed_is_no_network_failure)
{
    make(2, NULL);
    connect_over(0);
    ls_netpolicy_closed(p, now(), &out);
    cr_assert_eq(out.n, 0);
    cr_assert_str_eq(state(0), "unused");
    cr_assert_eq(net(0)->failures, 0);
    cr_assert_eq(ls_netpolicy_current(p), -1);
    connect_over(0); /* the same network again */
    cr_assert_eq(ls_netpolicy_switches(p), 0);
    /* While connecting over public in a round where repl failed: public again, not repl. */
    ls_netpolicy_failed(p, now(), "reset", &out);
    ls_netpolicy_kick(p, now(), &out);
    cr_assert_geq(find(LS_NETPOLICY_CONNECT, 1), 0);
    ls_netpolicy_closed(p, now(), &out);
    ls_netpolicy_kick(p, now(), &out);
    cr_assert_geq(find(LS_NETPOLICY_CONNECT, 1), 0);
}

Test(netpolicy, preferred_networks_are_probed_while_a_later_one_carries_the_copies)
{
    make(3, NULL);
    connect_over(0);
    ls_netpolicy_failed(p, now(), "reset", &out);
    ls_netpolicy_kick(p, now(), &out);
    ls_netpolicy_failed(p, now(), "refused", &out);
    connect_over(2);
    /* Both repl and public failed just now: their probes wait for the probe interval (1 s). */
    cr_assert_eq(count(LS_NETPOLICY_PROBE), 0);
    cr_assert_eq(ls_netpolicy_deadline(p), BASE + 1000 * MS);
    t_ms = 999;
    ls_netpolicy_tick(p, now(), &out);
    cr_assert_eq(out.n, 0, "not due yet");
    t_ms = 1000;
    ls_netpolicy_tick(p, now(), &out);
    cr_assert_eq(count(LS_NETPOLICY_PROBE), 2);
    cr_assert_geq(find(LS_NETPOLICY_PROBE, 0), 0);
    cr_assert_geq(find(LS_NETPOLICY_PROBE, 1), 0);
    cr_assert_str_eq(state(0), "probing");
    cr_assert(net(0)->probe && !net(0)->probe_ready);
    cr_assert_eq(ls_netpolicy_deadline(p), 0, "waiting for the probes to answer");
    ls_netpolicy_tick(p, now(), &out);
    cr_assert_eq(out.n, 0, "a probe under way is not started twice");

    /* repl's probe fails: down with its error, tried again one interval later. */
    t_ms = 1200;
    ls_netpolicy_probe_down(p, now(), 0, "probe cannot connect: network is unreachable", &out);
    cr_assert_str_eq(state(0), "down");
    cr_assert_str_eq(net(0)->last_error, "probe cannot connect: network is unreachable");
    cr_assert_eq(net(0)->failures, 2);
    cr_assert_eq(ls_netpolicy_deadline(p), BASE + 2200 * MS);
    ls_netpolicy_probe_down(p, now(), 0, "again", &out);
    cr_assert_eq(out.n, 0, "no probe over repl any more: ignored");
    cr_assert_eq(net(0)->failures, 2);
    /* public's probe closes without an error. */
    ls_netpolicy_probe_up(p, now(), 1, &out);
    ls_netpolicy_probe_down(p, now(), 1, NULL, &out);
    cr_assert_str_eq(net(1)->last_error, "probe closed");
    cr_assert_eq(ls_netpolicy_up_ns(p, 1, BASE + t_ms * MS), 0);
    t_ms = 2200;
    ls_netpolicy_tick(p, now(), &out);
    cr_assert_eq(count(LS_NETPOLICY_PROBE), 2, "both retried");
}

Test(netpolicy, failback_adopts_the_probe_only_after_the_settle_time)
{
    make(2, NULL);
    t_ms = 0;
    on_public_after_repl_failed();
    t_ms = 1000; /* the probe interval */
    ls_netpolicy_tick(p, now(), &out);
    cr_assert_geq(find(LS_NETPOLICY_PROBE, 0), 0);
    t_ms = 1100;
    ls_netpolicy_probe_up(p, now(), 0, &out);
    cr_assert_str_eq(state(0), "settling");
    cr_assert_str_eq(logged(), "network repl answers: failback after 2.0 s if it stays up");
    cr_assert_eq(ls_netpolicy_deadline(p), BASE + 3100 * MS);
    ls_netpolicy_probe_up(p, now(), 0, &out);
    cr_assert_eq(out.n, 0, "answered once");
    ls_netpolicy_probe_up(p, now(), 1, &out);
    cr_assert_eq(out.n, 0, "no probe over public: ignored");

    t_ms = 3099;
    ls_netpolicy_tick(p, now(), &out);
    cr_assert_eq(out.n, 0, "not before the settle time");
    cr_assert_eq(ls_netpolicy_up_ns(p, 0, BASE + t_ms * MS), 1999 * MS);
    t_ms = 3100;
    ls_netpolicy_tick(p, now(), &out);
    cr_assert_eq(out.n, 1);
    cr_assert_eq(out.act[0].kind, LS_NETPOLICY_SWITCH);
    cr_assert_eq(out.act[0].net, 0);
    cr_assert(out.act[0].adopt, "the probe becomes the data connection");
    cr_assert_str_eq(out.act[0].text, "failback to network repl: up for 2.0 s");
    cr_assert_str_eq(state(0), "connecting");
    cr_assert_str_eq(state(1), "unused");
    cr_assert_str_eq(net(1)->left_reason, "failback to network repl: up for 2.0 s");
    cr_assert(!net(0)->probe);
    cr_assert_eq(ls_netpolicy_current(p), 0);
    ls_netpolicy_welcome(p, now(), &out);
    cr_assert_eq(ls_netpolicy_switches(p), 2);
    cr_assert_str_eq(ls_netpolicy_last_switch(p, NULL),
                     "from public to repl: failback to network repl: up for 2.0 s");
    cr_assert_eq(out.act[find(LS_NETPOLICY_LOG, -2)].level, LS_LOG_INFO, "failback: INFO");
    cr_assert_eq(ls_netpolicy_deadline(p), 0);
}

Test(netpolicy, a_probe_break_restarts_the_settle_time)
{
    make(2, NULL);
    on_public_after_repl_failed();
    t_ms = 1000;
    ls_netpolicy_tick(p, now(), &out);
    ls_netpolicy_probe_up(p, now(), 0, &out);
    t_ms = 2900; /* 1.9 s up, then the probe breaks */
    ls_netpolicy_probe_down(p, now(), 0, "nothing received for 1000 ms", &out);
    t_ms = 3900;
    ls_netpolicy_tick(p, now(), &out);
    cr_assert_geq(find(LS_NETPOLICY_PROBE, 0), 0);
    ls_netpolicy_probe_up(p, now(), 0, &out);
    t_ms = 5899;
    ls_netpolicy_tick(p, now(), &out);
    cr_assert_eq(out.n, 0, "the settle time counts from the new probe");
    t_ms = 5900;
    ls_netpolicy_tick(p, now(), &out);
    cr_assert_geq(find(LS_NETPOLICY_SWITCH, 0), 0);
}

Test(netpolicy, the_best_settled_network_wins_and_others_close_after_the_switch)
{
    make(3, NULL);
    connect_over(0);
    ls_netpolicy_failed(p, now(), "reset", &out);
    ls_netpolicy_kick(p, now(), &out);
    ls_netpolicy_failed(p, now(), "reset", &out);
    connect_over(2);
    t_ms = 1000;
    ls_netpolicy_tick(p, now(), &out);
    ls_netpolicy_probe_up(p, now(), 1, &out); /* public first */
    t_ms = 1500;
    ls_netpolicy_probe_up(p, now(), 0, &out);
    cr_assert_eq(ls_netpolicy_deadline(p), BASE + 3000 * MS, "public's settle time ends first");
    t_ms = 3000;
    ls_netpolicy_tick(p, now(), &out);
    cr_assert_geq(find(LS_NETPOLICY_SWITCH, 1), 0, "to public: settled first");
    cr_assert_eq(find(LS_NETPOLICY_CLOSE_PROBE, 0), -1, "repl's ready probe is kept meanwhile");
    ls_netpolicy_welcome(p, now(), &out);
    cr_assert_eq(find(LS_NETPOLICY_CLOSE_PROBE, 0), -1, "repl is still wanted from public");
    t_ms = 3500;
    ls_netpolicy_tick(p, now(), &out);
    cr_assert_geq(find(LS_NETPOLICY_SWITCH, 0), 0, "then to repl");
}

Test(netpolicy, reconnecting_adopts_a_ready_probe_and_closes_the_others)
{
    make(3, NULL);
    connect_over(0);
    ls_netpolicy_failed(p, now(), "reset", &out);
    ls_netpolicy_kick(p, now(), &out);
    ls_netpolicy_failed(p, now(), "reset", &out);
    connect_over(2);
    t_ms = 1000;
    ls_netpolicy_tick(p, now(), &out);
    ls_netpolicy_probe_up(p, now(), 1, &out);
    /* backup fails too: repl's probe has not answered, public's has. */
    ls_netpolicy_failed(p, now(), "reset", &out);
    cr_assert_geq(find(LS_NETPOLICY_CLOSE_PROBE, 0), 0, "an unanswered probe is closed");
    cr_assert_eq(find(LS_NETPOLICY_CLOSE_PROBE, 1), -1, "a ready one is kept for the kick");
    cr_assert_str_eq(state(0), "unused");
    ls_netpolicy_kick(p, now(), &out);
    cr_assert_eq(out.n, 1);
    cr_assert_eq(out.act[0].kind, LS_NETPOLICY_ADOPT);
    cr_assert_eq(out.act[0].net, 1);
    cr_assert_str_eq(state(1), "connecting");
    ls_netpolicy_welcome(p, now(), &out);
    cr_assert_eq(ls_netpolicy_switches(p), 2, "repl to backup, backup to public");
    cr_assert_eq(ls_netpolicy_deadline(p), BASE + 2000 * MS, "repl probed one interval later");
}

Test(netpolicy, a_closed_connection_closes_unanswered_probes_and_starts_a_new_round)
{
    make(2, NULL);
    on_public_after_repl_failed();
    t_ms = 1000;
    ls_netpolicy_tick(p, now(), &out);
    cr_assert(net(0)->probe);
    ls_netpolicy_closed(p, now(), &out); /* a protocol error on public */
    cr_assert_geq(find(LS_NETPOLICY_CLOSE_PROBE, 0), 0);
    cr_assert_str_eq(state(0), "unused");
    ls_netpolicy_kick(p, now(), &out);
    cr_assert_geq(find(LS_NETPOLICY_CONNECT, 0), 0, "a new round: repl first");
}

Test(netpolicy, hysteresis_doubles_the_settle_time_per_failure_up_to_16x)
{
    make(2, NULL);
    uint64_t want[] = {1, 2, 4, 8, 16, 16};
    connect_over(0);
    for (int round = 0; round < 6; round++) {
        ls_netpolicy_failed(p, now(), "nothing received", &out);
        cr_assert_eq(ls_netpolicy_settle_ms(p, 0, BASE + t_ms * MS), want[round] * SETTLE,
                     "after failure %d", round + 1);
        connect_over(1);
        /* the failback: repl's probe up for its settle time */
        t_ms += 1000;
        ls_netpolicy_tick(p, now(), &out);
        cr_assert_geq(find(LS_NETPOLICY_PROBE, 0), 0);
        ls_netpolicy_probe_up(p, now(), 0, &out);
        char msg[80];
        snprintf(msg, sizeof(msg), "failback after %.1f s", (double) want[round] * SETTLE / 1e3);
        cr_assert(strstr(logged(), msg) != NULL, "%s", logged());
        t_ms += want[round] * SETTLE - 1;
        ls_netpolicy_tick(p, now(), &out);
        cr_assert_eq(find(LS_NETPOLICY_SWITCH, -2), -1, "round %d: too early", round + 1);
        t_ms += 1;
        ls_netpolicy_tick(p, now(), &out);
        cr_assert_geq(find(LS_NETPOLICY_SWITCH, 0), 0, "round %d", round + 1);
        ls_netpolicy_welcome(p, now(), &out);
        t_ms += 500; /* then repl fails again, soon */
    }
    cr_assert_eq(net(0)->penalty, 5);
    cr_assert_eq(net(0)->failures, 6);
}

Test(netpolicy, failures_are_forgotten_once_the_network_carried_the_copies_long_enough)
{
    make(2, NULL);
    connect_over(0);
    for (int i = 0; i < 3; i++) { /* three failures of repl: 4x the settle time */
        ls_netpolicy_failed(p, now(), "reset", &out);
        connect_over(1);
        ls_netpolicy_closed(p, now(), &out); /* back to repl for the next round */
        connect_over(0);
    }
    ls_netpolicy_failed(p, now(), "reset", &out);
    connect_over(1);
    cr_assert_eq(net(0)->penalty, 4);
    /* Away from the copies, a network lives nothing down: still 8x an hour later. */
    t_ms += 3600 * 1000;
    cr_assert_eq(ls_netpolicy_settle_ms(p, 0, BASE + t_ms * MS), 8 * SETTLE);
    ls_netpolicy_tick(p, now(), &out);
    ls_netpolicy_probe_up(p, now(), 0, &out);
    cr_assert_eq(ls_netpolicy_deadline(p), BASE + (t_ms + 8 * SETTLE) * MS);
    t_ms += 8 * SETTLE;
    ls_netpolicy_tick(p, now(), &out);
    cr_assert_geq(find(LS_NETPOLICY_SWITCH, 0), 0);
    ls_netpolicy_welcome(p, now(), &out);
    /* Carrying the copies 8 settle times without failing: the failures are forgotten. */
    uint64_t since = BASE + t_ms * MS;
    cr_assert_eq(ls_netpolicy_settle_ms(p, 0, since + 8 * SETTLE * MS - 1), 8 * SETTLE);
    cr_assert_eq(ls_netpolicy_settle_ms(p, 0, since + 8 * SETTLE * MS), SETTLE);
    t_ms += 8 * SETTLE;
    ls_netpolicy_failed(p, now(), "reset", &out);
    cr_assert_eq(net(0)->penalty, 1, "counted from 1 again");
    cr_assert_eq(ls_netpolicy_settle_ms(p, 0, BASE + t_ms * MS), SETTLE);
    /* Forgotten for good: leaving on purpose later does not bring them back. */
    connect_over(1);
    ls_netpolicy_closed(p, now(), &out);
    connect_over(0);
    t_ms += 8 * SETTLE;
    ls_netpolicy_pin(p, 1, &out);
    ls_netpolicy_pin_saved(p, now(), true, &out);
    cr_assert_eq(net(0)->penalty, 0);
}

Test(netpolicy, a_pin_changes_nothing_until_saved_and_nothing_if_saving_failed)
{
    make(2, NULL);
    connect_over(0);
    cr_assert_eq(ls_netpolicy_pin(p, 2, &out), LS_EINVAL);
    cr_assert_eq(ls_netpolicy_pin(p, -2, &out), LS_EINVAL);
    cr_assert_eq(ls_netpolicy_pin(p, 1, &out), 0);
    cr_assert_eq(out.n, 1);
    cr_assert_eq(out.act[0].kind, LS_NETPOLICY_SAVE_PIN);
    cr_assert_eq(out.act[0].net, 1);
    cr_assert_eq(ls_netpolicy_pinned(p), -1, "not before it is saved");
    ls_netpolicy_pin_saved(p, now(), false, &out);
    cr_assert_eq(out.n, 0);
    cr_assert_eq(ls_netpolicy_pinned(p), -1);
    cr_assert_eq(ls_netpolicy_current(p), 0);
    ls_netpolicy_pin_saved(p, now(), true, &out);
    cr_assert_eq(out.n, 0, "no pin being saved: ignored");
    cr_assert_eq(ls_netpolicy_pinned(p), -1);
}

Test(netpolicy, a_pin_moves_at_once_stops_probes_and_failover_then_release_fails_back)
{
    make(3, NULL);
    connect_over(0);
    ls_netpolicy_failed(p, now(), "reset", &out);
    ls_netpolicy_kick(p, now(), &out);
    ls_netpolicy_failed(p, now(), "reset", &out);
    connect_over(2);
    t_ms = 1000;
    ls_netpolicy_tick(p, now(), &out);
    ls_netpolicy_probe_up(p, now(), 1, &out); /* public's probe is up */

    /* Pin public: the ready probe becomes the data connection at once, repl's probe closes. */
    t_ms = 1100;
    cr_assert_eq(ls_netpolicy_pin(p, 1, &out), 0);
    ls_netpolicy_pin_saved(p, now(), true, &out);
    cr_assert_eq(ls_netpolicy_pinned(p), 1);
    cr_assert_str_eq(logged(), "pinned to network public by the operator");
    cr_assert_geq(find(LS_NETPOLICY_CLOSE_PROBE, 0), 0);
    int i = find(LS_NETPOLICY_SWITCH, 1);
    cr_assert_geq(i, 0);
    cr_assert(out.act[i].adopt);
    cr_assert_str_eq(out.act[i].text, "pinned to network public by the operator");
    cr_assert_str_eq(net(2)->left_reason, "pinned to network public by the operator");
    ls_netpolicy_welcome(p, now(), &out);
    cr_assert_eq(count(LS_NETPOLICY_PROBE), 0, "no probes while pinned");
    cr_assert(strstr(ls_netpolicy_last_switch(p, NULL), "pinned") != NULL);

    /* The pinned network fails: no failover, it is retried after the backoff. */
    ls_netpolicy_failed(p, now(), "reset", &out);
    ls_netpolicy_kick(p, now(), &out);
    cr_assert_eq(out.n, 1);
    cr_assert_eq(out.act[0].kind, LS_NETPOLICY_ALL_DOWN);
    cr_assert_str_eq(out.act[0].text, "public: reset (pinned by the operator)");
    ls_netpolicy_kick(p, now(), &out);
    cr_assert_geq(find(LS_NETPOLICY_CONNECT, 1), 0);
    ls_netpolicy_welcome(p, now(), &out);
    t_ms = 60000;
    ls_netpolicy_tick(p, now(), &out);
    cr_assert_eq(out.n, 0);

    /* Pinning the network in use: no switch. */
    ls_netpolicy_pin(p, 1, &out);
    ls_netpolicy_pin_saved(p, now(), true, &out);
    cr_assert_eq(find(LS_NETPOLICY_SWITCH, -2), -1);

    /* Released: repl is probed and the copies fail back after the settle time. */
    cr_assert_eq(ls_netpolicy_pin(p, -1, &out), 0);
    cr_assert_eq(out.act[0].net, -1, "the pin is removed");
    ls_netpolicy_pin_saved(p, now(), true, &out);
    cr_assert_eq(ls_netpolicy_pinned(p), -1);
    cr_assert_str_eq(logged(), "network pin released by the operator");
    cr_assert_geq(find(LS_NETPOLICY_PROBE, 0), 0, "repl probed again");
    cr_assert_eq(find(LS_NETPOLICY_SWITCH, -2), -1, "the copies stay where they are");
    ls_netpolicy_probe_up(p, now(), 0, &out);
    t_ms += SETTLE;
    ls_netpolicy_tick(p, now(), &out);
    cr_assert_geq(find(LS_NETPOLICY_SWITCH, 0), 0);
}

Test(netpolicy, a_pin_without_a_ready_probe_asks_for_a_new_connection)
{
    make(2, NULL);
    connect_over(0);
    ls_netpolicy_pin(p, 1, &out);
    ls_netpolicy_pin_saved(p, now(), true, &out);
    int i = find(LS_NETPOLICY_SWITCH, 1);
    cr_assert_geq(i, 0);
    cr_assert(!out.act[i].adopt);
    cr_assert_eq(ls_netpolicy_current(p), -1);
    cr_assert_str_eq(state(0), "unused");
    connect_over(1);
    cr_assert_eq(ls_netpolicy_switches(p), 1);
    /* While disconnected, a pin also asks for the connection. */
    ls_netpolicy_failed(p, now(), "reset", &out);
    ls_netpolicy_pin(p, 0, &out);
    ls_netpolicy_pin_saved(p, now(), true, &out);
    cr_assert_geq(find(LS_NETPOLICY_SWITCH, 0), 0);
    connect_over(0);
}

Test(netpolicy, a_pin_kept_across_a_restart_is_used_from_the_start)
{
    make(2, "public");
    cr_assert_eq(ls_netpolicy_pinned(p), 1);
    connect_over(1);
    cr_assert_eq(ls_netpolicy_deadline(p), 0, "no probe of repl");
    ls_netpolicy_free(p);
    make(2, "gone");
    cr_assert_eq(ls_netpolicy_pinned(p), -1, "a network no longer configured: ignored");
    ls_netpolicy_free(p);
    make(2, "");
    cr_assert_eq(ls_netpolicy_pinned(p), -1);
}

Test(netpolicy, resend_counts_what_lies_below_the_furthest_point_sent)
{
    make(1, NULL);
    ls_netpolicy_sent(p, 0, 1, 0, 100);
    ls_netpolicy_sent(p, 0, 1, 100, 100);
    ls_netpolicy_sent(p, 0, 2, 0, 50);
    cr_assert_eq(ls_netpolicy_resent(p, 0), 0, "first time out");
    /* A switch: generation 2 is resent from its start, beyond where it had come. */
    ls_netpolicy_sent(p, 0, 2, 0, 30);
    ls_netpolicy_sent(p, 0, 2, 30, 40);
    cr_assert_eq(ls_netpolicy_resent(p, 0), 50, "only the part below 50 counts");
    ls_netpolicy_sent(p, 0, 2, 70, 10);
    cr_assert_eq(ls_netpolicy_resent(p, 0), 50);
    /* An ASK_AGAIN of generation 1: resent in full. */
    ls_netpolicy_sent(p, 0, 1, 0, 200);
    cr_assert_eq(ls_netpolicy_resent(p, 0), 250);
    /* Another stream has its own counter; streams never seen count 0. */
    ls_netpolicy_sent(p, 5, 7, 0, 10);
    ls_netpolicy_sent(p, 5, 7, 0, 10);
    cr_assert_eq(ls_netpolicy_resent(p, 5), 10);
    cr_assert_eq(ls_netpolicy_resent(p, 0), 250);
    cr_assert_eq(ls_netpolicy_resent(p, 3), 0);
    cr_assert_eq(ls_netpolicy_resent(p, 99), 0);
    cr_assert_eq(ls_netpolicy_resent(p, -1), 0);
    ls_netpolicy_sent(p, 1, 1, 0, 1);
    cr_assert_eq(ls_netpolicy_resent(p, 1), 0);
}

Test(netpolicy, names_and_lookups)
{
    make(2, NULL);
    cr_assert_str_eq(ls_netpolicy_state_name(LS_NETPOLICY_UNUSED), "unused");
    cr_assert_str_eq(ls_netpolicy_state_name(LS_NETPOLICY_SETTLING), "settling");
    cr_assert_str_eq(ls_netpolicy_state_name((ls_netpolicy_state_t) 42), "unknown");
    cr_assert_eq(ls_netpolicy_find(p, "public"), 1);
    cr_assert_eq(ls_netpolicy_find(p, "nope"), -1);
    cr_assert_str_eq(net(0)->name, "repl");
}

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
