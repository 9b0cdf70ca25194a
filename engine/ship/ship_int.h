/*
 * ship's private parts, shared by its files: ship.c (lifecycle, states, the target's frames,
 * the operator), send.c (frames out: GEN_*, COPY_STATE, ERROR; the reader) and figures.c
 * (positions, throughput, status, the seed's hold). Same threading as ship.h: one thread.
 */
#ifndef LS_SHIP_INT_H
#define LS_SHIP_INT_H

#include "core/core.h"
#include "ship/ship.h"

/* A position reported by the target, with when it was learned. */
typedef struct {
    uint64_t gen;     /* generation */
    uint64_t lsn;     /* LSN (replayed positions only) */
    uint64_t when_ns; /* when the ack arrived, UTC ns (the injected clock) */
} ship_pos_t;

struct ls_ship {
    ls_ship_options_t o;             /* as given (names borrowed) */
    ls_ship_state_t state;           /* as shown in status */
    char reason[LS_SHIP_REASON_MAX]; /* why it is in that state */
    ls_source_t *src;                /* the database's source view (NULL until attached) */
    uint8_t dbid[LS_DBID_LEN];       /* its id (valid once attached) */
    bool connected;                  /* a WELCOME arrived on the current connection */
    bool accepted;                   /* ... and accepted this database */
    uint64_t window;                 /* per-database credit window, bytes */
    uint64_t credit;                 /* bytes the target accepts from us now */
    void *reader;                    /* pipelined reader while shipping (NULL: none) */
    const ls_gen_buf_t *cur;         /* generation being sent (borrowed from the reader) */
    uint64_t cur_off;                /* bytes of cur sent */
    bool begun;                      /* GEN_BEGIN of cur went out */
    uint64_t restart_from;           /* ASK_AGAIN: restart here once cur is done (0: no) */
    uint64_t next;                   /* next generation the reader was started for */
    ship_pos_t durable, inspected, replayed, synced; /* the target's positions */
    uint64_t sent_gens;                              /* generations sent in full since start */
    uint64_t sent_bytes;                             /* GEN_DATA bytes sent since start */
    ls_status_counters_t kept; /* ASK_AGAINs received (persisted by the caller) */
    ls_ship_op_t peer_op;      /* the target's operator (from its COPY_STATE) */
    ls_status_rate_t rate;     /* bytes made durable on the target */
    bool cs_due;               /* a COPY_STATE must go out (forced) */
    uint64_t cs_sent_gen;      /* last_generated in the last COPY_STATE sent ... */
    uint64_t cs_sent_durable;  /* ... and the durable position it was computed from */
    int err_due;               /* an ERROR (this code, with reason) must go out (0: no) */
    uint64_t seed_needs;       /* a seed of this target needs gens >= this (0: none) */
    bool seed_sent;            /* its stream went out: held until synced past it */
    bool fenced;               /* an old active: never ships again (DEMOTED or DIVERGED) */
    uint32_t fence_epoch;      /* the newer epoch that fenced it (0: not known) */
    char fence_active[LS_PROTO_NODE_MAX + 1]; /* the new active ("": not known) */
};

/* ship.c */
void ls__ship_set_state(ls_ship_t *m, ls_ship_state_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool ls__ship_suspended(const ls_ship_t *m); /* by either operator */

/* fence.c */
/* Fences the machine (see ls_ship_learn_epoch): why is formatted into the reason; tell: send the
 * target ERROR LS_EFENCED (not when the target is the one that said so). */
void ls__ship_fence_by(ls_ship_t *m, uint32_t epoch, const char *active, bool tell, uint64_t now,
                       const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* send.c */
int ls__ship_reader_start(ls_ship_t *m, uint64_t first, const uint8_t *prev_digest);
void ls__ship_reader_stop(ls_ship_t *m);            /* forgets the generation in flight too */
void ls__ship_fail(ls_ship_t *m, int code);         /* ERROR with the reason, due */
void ls__ship_send_state(ls_ship_t *m, bool force); /* COPY_STATE, now or due */

/* figures.c */
void ls__ship_advance(ship_pos_t *p, uint64_t gen, uint64_t lsn, uint64_t now);

#endif
