/* netpolicy: probes of the preferred networks and failback after the settle time, hysteresis
 * (the settle time doubled per failure, forgotten after a long enough carry), and pins (saved,
 * moved to at once, kept across a restart), step by step with a fake clock. Split from
 * netpolicy_test.c; helpers in netpolicy_test_util.h. */

#include <criterion/criterion.h>

#include "netpolicy_test_util.h"

TestSuite(netpolicy, .fini = fini, .timeout = 10);

static int count(ls_netpolicy_kind_t kind)
{
    int c = 0;
    for (int i = 0; i < out.n; i++)
        c += out.act[i].kind == kind;
    return c;
}

static const char *logged(void)
{
    int i = find(LS_NETPOLICY_LOG, -2);
    return i < 0 ? "" : out.act[i].text;
}

/* Ships over repl, repl fails, ships over public: the probe of repl is due at once. */
static void on_public_after_repl_failed(void)
{
    connect_over(0);
    ls_netpolicy_failed(p, now(), "nothing received for 1001 ms", &out);
    connect_over(1);
}

Test(netpolicy, preferred_networks_are_probed_while_a_later_one_carries_the_copies)
{
    on_backup("refused");
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
    on_backup("reset");
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
    on_backup("reset");
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
    on_backup("reset");
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
