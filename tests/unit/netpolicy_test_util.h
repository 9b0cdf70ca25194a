/* Helpers shared by the netpolicy tests (netpolicy_test.c, netpolicy_failback_test.c,
 * netpolicy_sim_test.c): the policy under test with its fake clock (ms since the start) and last
 * actions, and steps every test takes (make one, find an action, connect over a network).
 * Static: each test program includes this once. */
#ifndef LS_NETPOLICY_TEST_UTIL_H
#define LS_NETPOLICY_TEST_UTIL_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "netpolicy/netpolicy.h"

#define MS     1000000ull
#define BASE   (1000000ull * MS)               /* monotonic ns at t = 0 */
#define WALL0  (1700000000ull * 1000000000ull) /* wall ns at t = 0 */
#define SETTLE 2000                            /* ms */

/* helpers a test program may leave unused */
#ifndef UTIL
#define UTIL static __attribute__((unused))
#endif

UTIL ls_netpolicy_t *p;
UTIL ls_netpolicy_out_t out;
UTIL uint64_t t_ms; /* the fake clock, ms since the start */

UTIL ls_netpolicy_now_t now(void)
{
    return (ls_netpolicy_now_t){.mono = BASE + t_ms * MS, .wall = WALL0 + t_ms * MS};
}

UTIL void make(int nnets, const char *pin)
{
    static const char *names[] = {"repl", "public", "backup", "d", "e", "f", "g", "h"};
    ls_netpolicy_opts_t o = {.nnets = nnets, .names = names, .settle_ms = SETTLE, .pin = pin};
    cr_assert_eq(ls_netpolicy_new(&o, &p), 0);
    t_ms = 0;
}

UTIL void fini(void)
{
    ls_netpolicy_free(p);
    p = NULL;
}

/* Index of the first action of kind (on net, unless net is -2) in out, -1 if none. */
UTIL int find(ls_netpolicy_kind_t kind, int net)
{
    for (int i = 0; i < out.n; i++)
        if (out.act[i].kind == kind && (net == -2 || out.act[i].net == net)) return i;
    return -1;
}

UTIL const ls_netpolicy_net_t *net(int j)
{
    return ls_netpolicy_net(p, j);
}

UTIL const char *state(int j)
{
    return ls_netpolicy_state_name(net(j)->state);
}

/* kick, which must connect over j (not adopt), then WELCOME. */
UTIL void connect_over(int j)
{
    ls_netpolicy_kick(p, now(), &out);
    cr_assert_geq(find(LS_NETPOLICY_CONNECT, j), 0, "connects over %d", j);
    cr_assert_eq(out.act[out.n - 1].kind, LS_NETPOLICY_CONNECT, "the connect comes last");
    cr_assert_str_eq(state(j), "connecting");
    cr_assert_eq(ls_netpolicy_current(p), j);
    ls_netpolicy_welcome(p, now(), &out);
    cr_assert_str_eq(state(j), "in_use");
}

/* Three networks, repl (reset) and then public (why) failed in turn: backup (2) carries the
 * copies. */
UTIL void on_backup(const char *why)
{
    make(3, NULL);
    connect_over(0);
    ls_netpolicy_failed(p, now(), "reset", &out);
    ls_netpolicy_kick(p, now(), &out);
    ls_netpolicy_failed(p, now(), why, &out);
    connect_over(2);
}

#endif
