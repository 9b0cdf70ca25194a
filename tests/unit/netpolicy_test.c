/* netpolicy: the replication networks' state machine, driven with a fake clock and no sockets:
 * options, the first network, failover through the list, errors, resend and names, step by step
 * through single transitions with their actions checked. Probes, failback, hysteresis and pins:
 * netpolicy_failback_test.c; a simulated link counting switches across flaps:
 * netpolicy_sim_test.c; the fake clock and the policy's helpers: netpolicy_test_util.h. */
#include <criterion/criterion.h>

#include "netpolicy_test_util.h"

TestSuite(netpolicy, .fini = fini, .timeout = 10);

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
