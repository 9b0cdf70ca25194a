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

#define SHIP_POINTS  256  /* durable positions waiting for the target's acknowledgement */
#define SHIP_SAMPLES 1024 /* block-mode lag samples kept for the percentiles */

/* A durable position the writer published, streamed, not yet acknowledged. */
typedef struct {
    uint64_t gen, offset, lsn; /* the position */
    uint64_t time_ns;          /* its publish time, UTC ns */
} ship_point_t;

/* Block mode's state (block.c). */
typedef struct {
    bool allowed;                  /* the connection negotiated it */
    ls_ship_mode_t mode;           /* as shown in status */
    uint64_t switches;             /* mode switches since start */
    char reason[256];              /* why the last switch */
    uint64_t since_ns;             /* when, UTC ns (0: never switched) */
    bool have_dur;                 /* dur is valid */
    ls_ship_durable_t dur;         /* the writer's newest durable position */
    uint32_t epoch;                /* the generation streamed: its epoch ... */
    uint64_t gen;                  /* ... and number (0: none) */
    uint64_t off;                  /* bytes of it sent */
    uint64_t pub;                  /* bytes of it published as durable (the stream's end) */
    uint64_t lsn;                  /* durable_lsn of the last BLOCK sent */
    uint64_t stalled_gen;          /* its read said it is no longer the open one */
    uint64_t held;                 /* the target's RESUME: it holds generations < held + 1 */
    ship_point_t pts[SHIP_POINTS]; /* published, not yet acknowledged (ring) */
    unsigned pts_head, pts_n;
    uint64_t samples[SHIP_SAMPLES];       /* lags, ns (ring) */
    uint64_t nsamples;                    /* samples ever taken */
    uint64_t hist[LS_STATUS_LAG_BUCKETS]; /* all of them (status.h's lag histogram) */
    uint64_t sum_ns;                      /* ... and their sum */
    uint8_t *buf;                         /* the read buffer (LS_FRAME_CHUNK_MAX bytes, lazily) */
    uint64_t bytes;                       /* BLOCK bytes sent since start */
    ls_proto_block_ack_t ack;             /* the target's last BLOCK_ACK */
    uint64_t ack_ns;                      /* when it arrived (0: none) */
    bool ack_conn;                        /* ... on the current connection */
    bool tail;                            /* the connection negotiated GEN_TAIL (LS_FEAT_TAIL) */
    bool next;                            /* ... LS_FEAT_NEXT: stream the next after GEN_END */
    bool apply;                           /* ... LS_FEAT_APPLY: COPY_STATE says LS_COPY_APPLY */
    bool apply_wanted;                    /* a commit waits for the applied position (the writer) */
    uint64_t no_tail_gen;                 /* asked again: this generation goes whole (GEN_BEGIN) */
    uint64_t now;                         /* the last input's time, UTC ns */
} ship_block_t;

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
    uint64_t restart_full;           /* ... verifying this generation FULL (asked again after
                                        damage; 0: none) */
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
    bool cs_sent_apply;        /* ... and its LS_COPY_APPLY */
    int err_due;               /* an ERROR (this code, with reason) must go out (0: no) */
    uint64_t seed_needs;       /* a seed of this target needs gens >= this (0: none) */
    bool seed_sent;            /* its stream went out: held until synced past it */
    bool fenced;               /* an old active: never ships again (DEMOTED or DIVERGED) */
    uint32_t fence_epoch;      /* the newer epoch that fenced it (0: not known) */
    char fence_active[LS_PROTO_NODE_MAX + 1]; /* the new active ("": not known) */
    ship_block_t blk;                         /* block mode (block.c) */
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
/* full_gen: that generation is verified FULL (0: none; ls_reader_options_t) */
int ls__ship_reader_start(ls_ship_t *m, uint64_t first, const uint8_t *prev_digest,
                          uint64_t full_gen);
void ls__ship_reader_stop(ls_ship_t *m);            /* forgets the generation in flight too */
void ls__ship_fail(ls_ship_t *m, int code);         /* ERROR with the reason, due */
void ls__ship_send_state(ls_ship_t *m, bool force); /* COPY_STATE, now or due */

/* block.c */
void ls__ship_block_check(ls_ship_t *m, uint64_t now); /* switches mode when it should */
/* Sends one BLOCK chunk of at most max_len bytes: bytes sent, 0, or LS_EBUSY. */
int64_t ls__ship_block_chunk(ls_ship_t *m, uint64_t max_len, uint64_t now);
void ls__ship_block_ack(ls_ship_t *m, const ls_proto_block_ack_t *a, uint64_t now);
void ls__ship_block_durable_gen(ls_ship_t *m, uint64_t gen, uint64_t now); /* DURABLE(gen) */
void ls__ship_block_forget(ls_ship_t *m); /* the connection ended: nothing streamed */
/* GEN_TAIL: the bytes [0, start) of generation g the target's shadow holds (0: send it whole);
 * true from ls__ship_block_finishing while the stream still sends what was published of g. */
uint64_t ls__ship_block_start(const ls_ship_t *m, const ls_gen_buf_t *g);
bool ls__ship_block_finishing(const ls_ship_t *m, const ls_gen_buf_t *g);
void ls__ship_block_status(ls_ship_t *m, ls_status_copy_t *c);

/* figures.c */
void ls__ship_advance(ship_pos_t *p, uint64_t gen, uint64_t lsn, uint64_t now);

#endif
