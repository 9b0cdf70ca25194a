/* A planned switchover's wait on the active, decided with no I/O (switchover_wait.h). */
#include "node/switchover_wait.h"

#include "proto/proto.h"

bool ls_node_switchover_copy_usable(ls_ship_state_t ship)
{
    return ship == LS_SHIP_HEALTHY || ship == LS_SHIP_DISCONNECTED || ship == LS_SHIP_INITIALIZING;
}

ls_node_sw_next_t ls_node_switchover_wait(const ls_node_sw_seen_t *s)
{
    if (s->acked && !s->last_gen) return LS_NODE_SW_NOTHING;
    if (!ls_node_switchover_copy_usable(s->ship)) return LS_NODE_SW_COPY_LOST;
    if (s->acked && s->replayed >= s->last_gen && s->ready)
        return s->version < LS_PROTO_VERSION_SWITCHOVER ? LS_NODE_SW_OLD_PROTOCOL : LS_NODE_SW_ASK;
    if (s->expired) return s->acked ? LS_NODE_SW_NOT_REPLAYED : LS_NODE_SW_NO_CLOSE;
    return LS_NODE_SW_WAIT;
}
