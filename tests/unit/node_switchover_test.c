/* node: a planned switchover's wait on the active (engine/node/switchover_wait.c), without a
 * loop or a socket: scripted ticks of what the active sees (the writer's acknowledgement of the
 * hold, NODE's copy, what it replayed, the connection, the deadline) and the verdict of each. */
#include <criterion/criterion.h>

#include "node/switchover_wait.h"
#include "proto/proto.h"

/* One tick of a script: what is seen, and what must follow. */
typedef struct {
    ls_node_sw_seen_t seen;
    ls_node_sw_next_t want;
    const char *why;
} tick_t;

static void play(const tick_t *ticks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ls_node_sw_next_t got = ls_node_switchover_wait(&ticks[i].seen);
        cr_assert_eq(got, ticks[i].want, "tick %zu (%s): verdict %d, want %d", i, ticks[i].why,
                     (int) got, (int) ticks[i].want);
    }
}

#define V5 LS_PROTO_VERSION_SWITCHOVER

Test(node_switchover, waits_for_the_hold_then_the_replay_then_asks)
{
    const tick_t script[] = {
        {{.ship = LS_SHIP_HEALTHY, .ready = true, .version = V5}, LS_NODE_SW_WAIT, "not held yet"},
        {{.acked = true,
          .last_gen = 42,
          .ship = LS_SHIP_HEALTHY,
          .replayed = 40,
          .ready = true,
          .version = V5},
         LS_NODE_SW_WAIT,
         "held at 42, NODE replayed 40"},
        {{.acked = true, .last_gen = 42, .ship = LS_SHIP_DISCONNECTED, .replayed = 42},
         LS_NODE_SW_WAIT,
         "replayed 42, but reconnecting"},
        {{.acked = true,
          .last_gen = 42,
          .ship = LS_SHIP_INITIALIZING,
          .replayed = 42,
          .ready = false,
          .version = V5},
         LS_NODE_SW_WAIT,
         "connected, before the WELCOME"},
        {{.acked = true,
          .last_gen = 42,
          .ship = LS_SHIP_HEALTHY,
          .replayed = 42,
          .ready = true,
          .version = V5},
         LS_NODE_SW_ASK,
         "replayed 42 on a ready connection"},
    };
    play(script, sizeof(script) / sizeof(script[0]));
}

Test(node_switchover, a_writer_that_closed_nothing_is_refused_at_once)
{
    const tick_t script[] = {
        {{.acked = true, .last_gen = 0, .ship = LS_SHIP_HEALTHY, .ready = true, .version = V5},
         LS_NODE_SW_NOTHING,
         "held with no closed generation"},
        {{.acked = true, .last_gen = 0, .ship = LS_SHIP_FAILED, .expired = true},
         LS_NODE_SW_NOTHING,
         "nothing closed comes first"},
    };
    play(script, sizeof(script) / sizeof(script[0]));
}

Test(node_switchover, a_copy_that_leaves_healthy_fails_it_whatever_it_replayed)
{
    const ls_ship_state_t lost[] = {LS_SHIP_SUSPENDED, LS_SHIP_FAILED, LS_SHIP_DEMOTED,
                                    LS_SHIP_SEEDING, LS_SHIP_DIVERGED};
    for (size_t i = 0; i < sizeof(lost) / sizeof(lost[0]); i++) {
        cr_assert_not(ls_node_switchover_copy_usable(lost[i]), "%s", ls_ship_state_name(lost[i]));
        const tick_t script[] = {
            {{.ship = lost[i]}, LS_NODE_SW_COPY_LOST, "before the hold is acknowledged"},
            {{.acked = true,
              .last_gen = 7,
              .ship = lost[i],
              .replayed = 7,
              .ready = true,
              .version = V5},
             LS_NODE_SW_COPY_LOST,
             "even with the last generation replayed"},
            {{.acked = true, .last_gen = 7, .ship = lost[i], .expired = true},
             LS_NODE_SW_COPY_LOST,
             "before the deadline's verdict"},
        };
        play(script, sizeof(script) / sizeof(script[0]));
    }
    cr_assert(ls_node_switchover_copy_usable(LS_SHIP_HEALTHY));
    cr_assert(ls_node_switchover_copy_usable(LS_SHIP_DISCONNECTED));
    cr_assert(ls_node_switchover_copy_usable(LS_SHIP_INITIALIZING));
}

Test(node_switchover, an_old_protocol_is_refused_once_the_copy_caught_up)
{
    const tick_t script[] = {
        {{.acked = true,
          .last_gen = 9,
          .ship = LS_SHIP_HEALTHY,
          .replayed = 8,
          .ready = true,
          .version = V5 - 1},
         LS_NODE_SW_WAIT,
         "not caught up: the version is not looked at yet"},
        {{.acked = true,
          .last_gen = 9,
          .ship = LS_SHIP_HEALTHY,
          .replayed = 9,
          .ready = true,
          .version = V5 - 1},
         LS_NODE_SW_OLD_PROTOCOL,
         "caught up on a version-4 connection"},
        {{.acked = true,
          .last_gen = 9,
          .ship = LS_SHIP_HEALTHY,
          .replayed = 10,
          .ready = true,
          .version = V5 + 1},
         LS_NODE_SW_ASK,
         "a later version, replayed past the last generation"},
    };
    play(script, sizeof(script) / sizeof(script[0]));
}

Test(node_switchover, the_deadline_says_which_step_did_not_come)
{
    const tick_t script[] = {
        {{.ship = LS_SHIP_HEALTHY, .ready = true, .version = V5, .expired = true},
         LS_NODE_SW_NO_CLOSE,
         "the writer never acknowledged"},
        {{.acked = true,
          .last_gen = 5,
          .ship = LS_SHIP_DISCONNECTED,
          .replayed = 3,
          .expired = true},
         LS_NODE_SW_NOT_REPLAYED,
         "NODE did not replay the last generation"},
        {{.acked = true,
          .last_gen = 5,
          .ship = LS_SHIP_INITIALIZING,
          .replayed = 5,
          .ready = false,
          .expired = true},
         LS_NODE_SW_NOT_REPLAYED,
         "replayed, but no ready connection to ask on"},
        {{.acked = true,
          .last_gen = 5,
          .ship = LS_SHIP_HEALTHY,
          .replayed = 5,
          .ready = true,
          .version = V5,
          .expired = true},
         LS_NODE_SW_ASK,
         "caught up at the deadline: asked, not timed out"},
    };
    play(script, sizeof(script) / sizeof(script[0]));
}
