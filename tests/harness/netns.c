/* Two network namespaces joined by veth pairs (see netns.h). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "netns.h"

static const char *ip_path(void)
{
    static const char *paths[] = {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        if (access(paths[i], X_OK) == 0) return paths[i];
    return NULL;
}

bool ls_h_netns_usable(const char *what)
{
    const char *why = NULL;
    char *err = NULL;
    if (geteuid() != 0)
        why = "needs root to create network namespaces";
    else if (!ip_path())
        why = "needs iproute2's ip";
    else if (ls_h_sh("ip netns list", NULL, &err, 10000) != 0)
        why = "ip netns does not work here";
    free(err);
    if (!why) return true;
    if (getenv("CI")) cr_assert_fail("%s %s, and CI must run it", what, why);
    fprintf(stderr, "skipped: %s %s\n", what, why);
    cr_skip_test("skipped: %s %s", what, why);
    return false;
}

static void sh(const char *cmd)
{
    char *err = NULL;
    int rc = ls_h_sh(cmd, NULL, &err, 20000);
    cr_assert_eq(rc, 0, "'%s' failed (%d): %s", cmd, rc, err ? err : "");
    free(err);
}

void ls_h_netns_init(ls_h_netns_t *n, int nlinks, const char *const names[])
{
    cr_assert(nlinks > 0 && nlinks <= LS_H_NETNS_LINKS);
    memset(n, 0, sizeof(*n));
    int pid = (int) getpid();
    n->x = pid % 250 + 1;
    n->nlinks = nlinks;
    snprintf(n->ns[LS_H_A], sizeof(n->ns[0]), "lsA-%d", pid);
    snprintf(n->ns[LS_H_B], sizeof(n->ns[0]), "lsB-%d", pid);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "ip netns add %s && ip netns add %s && ip -n %s link set lo up && "
             "ip -n %s link set lo up",
             n->ns[0], n->ns[1], n->ns[0], n->ns[1]);
    n->created = true; /* fini deletes whatever part exists */
    sh(cmd);
    for (int i = 0; i < nlinks; i++) {
        snprintf(n->link[i], sizeof(n->link[i]), "%s", names[i]);
        for (int s = 0; s < 2; s++)
            snprintf(n->addr[i][s], sizeof(n->addr[i][s]), "10.%d.%d.%d", 201 + i, n->x, s + 1);
        snprintf(cmd, sizeof(cmd),
                 "ip -n %s link add %s type veth peer name %s netns %s && "
                 "ip -n %s addr add %s/24 dev %s && ip -n %s addr add %s/24 dev %s && "
                 "ip -n %s link set %s up && ip -n %s link set %s up",
                 n->ns[0], names[i], names[i], n->ns[1], n->ns[0], n->addr[i][0], names[i],
                 n->ns[1], n->addr[i][1], names[i], n->ns[0], names[i], n->ns[1], names[i]);
        sh(cmd);
    }
}

void ls_h_netns_fini(ls_h_netns_t *n)
{
    if (!n->created) return;
    for (int s = 0; s < 2; s++) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", n->ns[s]);
        ls_h_sh(cmd, NULL, NULL, 20000);
    }
    n->created = false;
}

void ls_h_netns_set(ls_h_netns_t *n, int i, int side, bool up)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "ip -n %s link set %s %s", n->ns[side], n->link[i],
             up ? "up" : "down");
    sh(cmd);
}

void ls_h_netns_node_start(ls_h_netns_t *n, ls_h_pair_t *p, int node)
{
    char *argv[] = {
        (char *) ip_path(), "netns", "exec", n->ns[node], (char *) ls_h_bin("logshipd"), "-c",
        p->conf[node],      NULL};
    char where[64];
    snprintf(where, sizeof(where), " in %s", n->ns[node]);
    ls_h_node_start_argv(p, node, argv, NULL, where);
}
