/*
 * Two network namespaces joined by veth pairs, for tests that take a network down under running
 * daemons (tests/integration/netns_test.c). Host A is namespace "lsA-<pid>", host B "lsB-<pid>";
 * link i is a veth pair named after it on both sides, 10.(201+i).X.1/24 on A and .2 on B, where
 * X is derived from the pid (the addresses live inside the namespaces only: two tests running at
 * once cannot collide). Loopback is up in both. The namespaces, and with them the veths, are
 * deleted by ls_h_netns_fini, which every suite calls from its .fini so that a failing test
 * leaves nothing behind.
 *
 * Needs root and iproute2's ip. ls_h_netns_usable() tells: where they are missing it prints
 * "skipped: <reason>" and skips the test, except under CI (CI set in the environment), where
 * the test must run and fails instead.
 */
#ifndef LS_TEST_NETNS_H
#define LS_TEST_NETNS_H

#include <stdbool.h>

#include "daemons.h"

#define LS_H_NETNS_LINKS 4

typedef struct {
    char ns[2][32];                     /* namespace of node-a (A) and node-b (B) */
    int x;                              /* third byte of every address */
    int nlinks;                         /* veth pairs */
    char link[LS_H_NETNS_LINKS][16];    /* their names ("repl", "public") */
    char addr[LS_H_NETNS_LINKS][2][20]; /* address on A and on B, without prefix */
    bool created;                       /* the namespaces exist */
} ls_h_netns_t;

/* True when namespaces can be made here; else skips the test (or fails it under CI). */
bool ls_h_netns_usable(const char *what);
/* Creates both namespaces and one veth pair per name (asserts success). */
void ls_h_netns_init(ls_h_netns_t *n, int nlinks, const char *const names[]);
/* Deletes the namespaces (and their veths); a no-op when none were made. */
void ls_h_netns_fini(ls_h_netns_t *n);
/* Brings link i up or down on one side (LS_H_A / LS_H_B); asserts success. */
void ls_h_netns_set(ls_h_netns_t *n, int i, int side, bool up);
/* Starts node's daemon of the pair inside its namespace (ip netns exec, which execs: the pid is
 * logshipd's) and waits until its control socket answers, like ls_h_node_start. */
void ls_h_netns_node_start(ls_h_netns_t *n, ls_h_pair_t *p, int node);

#endif
