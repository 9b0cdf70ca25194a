/* A planned switchover's wait on the active (docs/ACTIVATION.md, "Planned switchover", step 3),
 * decided from what the loop saw, with no I/O: the writer's acknowledgement of the hold, the
 * state of NODE's copy, what NODE replayed, the connection to it and the deadline. switchover.c
 * gathers these at each tick (every 20 ms) and carries the verdict out; the rule is tested on
 * its own with scripted ticks (tests/unit/node_switchover_test.c). */
#ifndef LS_NODE_SWITCHOVER_WAIT_H
#define LS_NODE_SWITCHOVER_WAIT_H

#include <stdbool.h>
#include <stdint.h>

#include "ship/ship.h"

/* What the active saw at one tick of the wait. */
typedef struct {
    bool acked;           /* the writer acknowledged the hold (the control page says so) */
    uint64_t last_gen;    /* ... the last generation it closed (0: none; valid when acked) */
    ls_ship_state_t ship; /* the state of the machine shipping to NODE */
    uint64_t replayed;    /* NODE's last replayed generation, as last reported (when acked) */
    bool ready;           /* the connection to NODE is up and past its handshake */
    unsigned version;     /* ... its protocol version (when ready) */
    bool expired;         /* the wait's deadline (--timeout) passed */
} ls_node_sw_seen_t;

typedef enum {
    LS_NODE_SW_WAIT,         /* nothing to do yet: look again at the next tick */
    LS_NODE_SW_ASK,          /* NODE replayed the last generation: send it SWITCHOVER */
    LS_NODE_SW_NOTHING,      /* refused: the writer holds but closed no generation */
    LS_NODE_SW_COPY_LOST,    /* failed: NODE's copy left Healthy (not merely reconnecting) */
    LS_NODE_SW_OLD_PROTOCOL, /* refused: the connection speaks a version without SWITCHOVER */
    LS_NODE_SW_NO_CLOSE,     /* failed: the deadline passed before the writer acknowledged */
    LS_NODE_SW_NOT_REPLAYED  /* failed: the deadline passed before NODE replayed the last one */
} ls_node_sw_next_t;

/* True while NODE's copy may still take the hand-over: Healthy, or reconnecting
 * (Disconnected, Initializing). */
bool ls_node_switchover_copy_usable(ls_ship_state_t ship);

/* What to do after seeing s (the checks in this order: nothing closed, the copy lost, NODE
 * caught up on a ready connection, the deadline). */
ls_node_sw_next_t ls_node_switchover_wait(const ls_node_sw_seen_t *s);

#endif
