/* A shipper: the node's adapter around one (active database, target) state machine
 * (engine/ship). It gives the machine its callbacks: frames go to the link (ls__node_link_send),
 * actions become log lines and the two state files kept with the copy (<db>/copy-<target>.state
 * for the operator's decision, <db>/copy-<target>.counters for the ask-again counters), and a
 * reader's notification wakes the link's loop. The shipping logic itself is engine/ship's. */
#include <stdio.h>
#include <string.h>

#include "node/node_int.h"

static int on_send(void *ctx, const ls_frame_t *f)
{
    shipper_t *s = ctx;
    return ls__node_link_send(s->link, s, f);
}

static int on_action(void *ctx, const ls_ship_action_t *a)
{
    shipper_t *s = ctx;
    const char *db = s->db->cfg->name, *tg = s->link->cfg->name;
    int rc = 0;
    switch (a->kind) {
    case LS_SHIP_ACT_STATE: /* transitions are logged with their cause */
        ls_log(a->state == LS_SHIP_FAILED || a->state == LS_SHIP_DIVERGED ? LS_LOG_ERROR
                                                                          : LS_LOG_INFO,
               "copy", "%s -> %s: %s -> %s (%s)", db, tg, ls_ship_state_name(a->prev),
               ls_ship_state_name(a->state), a->reason);
        if (a->fence) ls__node_epoch_fence(s->db, s, a->epoch, a->active ? a->active : "");
        ls__node_bw_publish_copies(s->db); /* linked or not */
        break;
    case LS_SHIP_ACT_SAVE_OP:
        rc = ls__node_opstate_save(s->op_path, a->op);
        break;
    case LS_SHIP_ACT_SAVE_COUNTERS:
        LS_LOGW("copy", "%s -> %s: %s", db, tg, a->reason);
        rc = ls__node_counters_save(s->kept_path, a->counters);
        break;
    case LS_SHIP_ACT_READER_START:
        LS_LOGD("copy", "%s -> %s: reading from generation %llu", db, tg,
                (unsigned long long) a->gen);
        break;
    case LS_SHIP_ACT_READER_STOP:
        LS_LOGD("copy", "%s -> %s: reader stopped at generation %llu", db, tg,
                (unsigned long long) a->gen);
        break;
    case LS_SHIP_ACT_SEED_RELEASED:
        LS_LOGI("seed", "%s -> %s: %s", db, tg, a->reason);
        break;
    case LS_SHIP_ACT_MODE: /* block mode's switches (docs/BLOCKMODE.md) */
        LS_LOGI("copy", "%s -> %s: %s mode: %s", db, tg, ls_ship_mode_name(a->mode), a->reason);
        ls__node_bw_publish_copies(s->db);
        break;
    }
    return rc;
}

static int64_t on_block_read(void *ctx, uint32_t epoch, uint64_t generation, uint64_t off,
                             uint8_t *buf, size_t len)
{
    shipper_t *s = ctx;
    return ls__node_bw_read(s->db, epoch, generation, off, buf, len);
}

static void on_notify(void *ctx)
{
    link_t *l = ctx;
    ls__node_wake_send(&l->wake);
}

void ls__node_shipper_init(shipper_t *s, active_t *a, link_t *l)
{
    s->db = a;
    s->link = l;
    snprintf(s->op_path, sizeof(s->op_path), "%s/copy-%s.state", a->cfg->path, l->cfg->name);
    snprintf(s->kept_path, sizeof(s->kept_path), "%s/copy-%s.counters", a->cfg->path, l->cfg->name);
    ls_ship_options_t o = {.database = a->cfg->name,
                           .target = l->cfg->name,
                           .send_cb = on_send,
                           .action_cb = on_action,
                           .ctx = s,
                           .notify_cb = on_notify,
                           .notify_ctx = l,
                           .block_read = on_block_read,
                           .verify = a->cfg->source_verify_full ? LS_READER_VERIFY_FULL
                                                                : LS_READER_VERIFY_RECORDS};
    ls__node_opstate_load(s->op_path, &o.op);
    ls__node_counters_load(s->kept_path, &o.counters);
    s->m = ls_ship_new(&o, ls_now_ns());
    LS_CHECK(s->m != NULL);
}
