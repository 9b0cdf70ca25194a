/* netpolicy's internals, shared by its files (netpolicy.h for the rules). */
#ifndef LS_NETPOLICY_INT_H
#define LS_NETPOLICY_INT_H

#include "netpolicy.h"

#define NP_MS 1000000ull /* ns per ms */

/* Where one stream has been: GEN_DATA below that point is sent again. */
typedef struct {
    uint64_t hi_gen, hi_off; /* furthest (generation, end offset) ever sent */
    uint64_t resent;         /* bytes sent again below that point */
} np_resend_t;

struct ls_netpolicy {
    ls_netpolicy_net_t nets[LS_NETPOLICY_MAX_NETS]; /* in order of preference */
    int nnets;
    uint64_t settle_ms; /* the options, defaults applied */
    uint64_t probe_min_ms, probe_max_ms;
    unsigned penalty_max, forget;
    int pinned;                      /* the operator's pin, -1: none */
    int pin_asked;                   /* the pin being saved (-1: a release) ... */
    bool pin_saving;                 /* ... while true */
    uint32_t tried;                  /* networks failed in this round (bits) */
    int cur;                         /* network of the data connection, -1: none */
    bool ready;                      /* that connection got its WELCOME */
    int shipped_on;                  /* network of the last WELCOME, -1: none yet */
    uint64_t switches;               /* times the copies moved */
    char why[LS_NETPOLICY_TEXT_MAX]; /* why the copies left their network (for the switch) */
    char last_switch[LS_NETPOLICY_TEXT_MAX]; /* "from A to B: why" ("" none) */
    uint64_t last_switch_ns;                 /* when, wall ns */
    uint64_t deadline;                       /* next tick that may change something (0: none) */
    np_resend_t *res;                        /* per stream */
    int nres;
};

/* How long a probe of n must stay up at now (ms), with the hysteresis. */
uint64_t ls__netpolicy_settle_ms(const ls_netpolicy_t *p, const ls_netpolicy_net_t *n,
                                 uint64_t now);
/* n's recent failures at now: none once it carried the copies for `forget` settle times. */
unsigned ls__netpolicy_penalty(const ls_netpolicy_t *p, const ls_netpolicy_net_t *n, uint64_t now);

#endif
