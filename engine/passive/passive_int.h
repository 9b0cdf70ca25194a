/* passive internals shared by passive.c (lifecycle, states, connection, frames in), events.c
 * (the copy's events: acknowledgements, ask-again, credit) and op.c (the operator, COPY_STATE,
 * figures). Not public. Everything runs on the caller's one thread. */
#ifndef LS_PASSIVE_INT_H
#define LS_PASSIVE_INT_H

#include "core/core.h"
#include "passive/passive.h"

/* A position acknowledged, with when it was reached. */
typedef struct {
    uint64_t gen;     /* generation */
    uint64_t when_ns; /* UTC ns (0: not in this run) */
} ls__passive_pos_t;

/* What the source last said in COPY_STATE. */
typedef struct {
    ls_status_op_t op;          /* the source's operator */
    uint64_t last_generated;    /* newest closed generation on the source */
    uint64_t last_generated_ns; /* its close time (source clock) */
    uint64_t queue_bytes;       /* copy queue, bytes */
    uint64_t queue_oldest_ns;   /* close time of the oldest queued (source clock; 0: none) */
} ls__passive_src_t;

/* The shadow's position as last acknowledged (block mode). */
typedef struct {
    uint32_t epoch;      /* its epoch */
    uint64_t generation; /* its generation (0: none) */
    uint64_t offset;     /* bytes durable */
    uint64_t lsn;        /* durable LSN */
    uint64_t when_ns;    /* when, UTC ns */
} ls__passive_block_t;

struct ls_passive {
    char database[128], source[128]; /* names, for reasons */
    ls_passive_options_t o;          /* callbacks, receiver */
    ls_copy_t *copy;                 /* the copy in use (NULL: not open, or a seed swaps it) */
    ls_passive_state_t state;
    char reason[LS_PASSIVE_REASON_MAX];
    ls_status_op_t op;             /* this operator's decision (persisted by the caller) */
    ls_status_counters_t counters; /* kept counters (persisted by the caller) */
    /* the connection serving the copy */
    bool connected;
    ls_credit_rx_t *credit;    /* its rx ledger (borrowed) */
    int idx;                   /* the database's index in it */
    uint8_t dbid[LS_DBID_LEN]; /* the database's id */
    uint64_t tag;              /* the connection's tag */
    /* ask-again and back-off */
    bool diskfull;      /* the last write hit ENOSPC; cleared by the next DURABLE */
    uint64_t asked_gen; /* last ASK_AGAIN sent for this generation ... */
    uint64_t asked_ns;  /* ... at this time (rate limit) */
    uint64_t again_ns;  /* after a transient ERROR: RESUME again at this time (0: not waiting) */
    uint32_t again_ms;  /* the back-off that set it, ms */
    /* the source's view */
    ls__passive_src_t src;
    bool src_suspended_seen; /* the source's SUSPENDED flag as last received */
    bool apply_asked;        /* the connection negotiated LS_FEAT_APPLY: the source says ... */
    bool apply_wanted; /* ... whether a commit waits for the applied position (LS_COPY_APPLY) */
    int64_t clock_offset_ns; /* source clock minus ours */
    /* epochs (epoch.c) */
    ls_layout_hist_t epochs[LS_PASSIVE_EPOCHS_MAX]; /* what the copy knows, sorted by epoch */
    size_t nepochs;                                 /* lines used */
    char epoch_active[LS_PROTO_NODE_MAX + 1];       /* who activated the newest ("": unknown) */
    uint64_t refused_gen; /* its GEN_BEGIN was refused: GEN_DATA / GEN_END dropped (0: none) */
    /* figures */
    ls__passive_pos_t durable, inspected, replayed;
    ls__passive_block_t block; /* the shadow (block mode) */
    ls_status_rate_t rate;     /* bytes made durable over the last minute */
};

/* passive.c */
void ls__passive_send(ls_passive_t *m, ls_frame_t *f);
void ls__passive_act(ls_passive_t *m, ls_passive_act_kind_t kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
ls_passive_state_t ls__passive_running(const ls_passive_t *m); /* HEALTHY or DISCONNECTED */
bool ls__passive_held(ls_passive_t *m);
void ls__passive_send_error(ls_passive_t *m, int code);
/* events.c */
void ls__passive_grant(ls_passive_t *m, uint64_t bytes);
/* epoch.c */
void ls__passive_on_epoch(ls_passive_t *m, const ls_proto_epoch_t *e, uint64_t now);
/* True (and the source refused) when g's epoch is older than the one its generation belongs to
 * by what the copy knows; false when it may go on (a newer epoch is learned). */
bool ls__passive_gen_refused(ls_passive_t *m, const ls_proto_gen_begin_t *g, uint64_t now);
/* op.c */
void ls__passive_send_state(ls_passive_t *m); /* COPY_STATE to the source */
void ls__passive_on_copy_state(ls_passive_t *m, const ls_proto_copy_state_t *cs, uint64_t now);
/* Tells the copy how eagerly to apply its shadow (apply_asked, apply_wanted). */
void ls__passive_apply_early(ls_passive_t *m);

#endif
