/*
 * The WAN case: two network namespaces joined by a veth pair, each end shaped by tc netem
 * (rate, and half the round trip as delay, so the round trip is rtt_ms). Needs root (or
 * CAP_NET_ADMIN) and iproute2; every step is checked and the reason of a failure returned.
 */
#include <stdio.h>
#include <unistd.h>

#include "lb.h"

#define Q " >/dev/null 2>&1"

int lb_wan_up(const char *a, const char *b, int mbit, int rtt_ms, char *why, size_t whylen)
{
    if (geteuid() != 0) {
        snprintf(why, whylen, "not root: network namespaces cannot be made");
        return -1;
    }
    if (lb_sh("command -v ip >/dev/null && command -v tc >/dev/null") != 0) {
        snprintf(why, whylen, "ip or tc (iproute2) not installed");
        return -1;
    }
    if (lb_sh("ip netns add %s" Q, a) != 0 || lb_sh("ip netns add %s" Q, b) != 0) {
        snprintf(why, whylen, "'ip netns add' failed (no CAP_SYS_ADMIN or no netns support)");
        lb_wan_down(a, b);
        return -1;
    }
    int rc = lb_sh("ip link add lbv-%d-a netns %s type veth peer name lbv-%d-b netns %s" Q,
                   (int) getpid(), a, (int) getpid(), b);
    if (rc == 0 && lb_sh("ip netns exec %s tc qdisc add dev lbv-%d-a root netem delay 1ms" Q, a,
                         (int) getpid()) != 0) {
        snprintf(why, whylen,
                 "namespaces and veth made, but tc netem is unavailable (no "
                 "sch_netem in this kernel: 'Specified qdisc kind is unknown')");
        lb_wan_down(a, b);
        return -1;
    }
    lb_sh("ip netns exec %s tc qdisc del dev lbv-%d-a root" Q, a, (int) getpid());
    for (int i = 0; rc == 0 && i < 2; i++) {
        const char *ns = i ? b : a;
        char side = i ? 'b' : 'a';
        rc = lb_sh("ip -n %s addr add 10.77.0.%d/24 dev lbv-%d-%c" Q, ns, i + 1, (int) getpid(),
                   side) ||
             lb_sh("ip -n %s link set lbv-%d-%c up" Q, ns, (int) getpid(), side) ||
             lb_sh("ip -n %s link set lo up" Q, ns) ||
             lb_sh("ip netns exec %s tc qdisc add dev lbv-%d-%c root netem delay %dms rate "
                   "%dmbit limit 100000" Q,
                   ns, (int) getpid(), side, rtt_ms / 2, mbit);
    }
    if (rc == 0 && lb_sh("ip netns exec %s ping -c 1 -W 2 10.77.0.2" Q, a) != 0 &&
        lb_sh("command -v ping >/dev/null") == 0)
        rc = -1;
    if (rc != 0) {
        snprintf(why, whylen, "veth or tc netem setup failed (kernel without veth/sch_netem?)");
        lb_wan_down(a, b);
        return -1;
    }
    return 0;
}

void lb_wan_down(const char *a, const char *b)
{
    lb_sh("ip netns del %s" Q, a); /* deleting a namespace deletes its veth end, and the pair */
    lb_sh("ip netns del %s" Q, b);
}
