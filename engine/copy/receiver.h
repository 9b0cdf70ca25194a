/*
 * copy/receiver: the receiver thread of one copy, its work queue and its event queue.
 *
 * The loop thread (the daemon's) pushes work items: a generation's GEN_BEGIN / GEN_DATA / GEN_END
 * bytes, an abort (the connection serving the copy ended), or a function to run on the thread
 * with the thread's own copy pointer (a seed's install steps and its swap, which closes and
 * reopens the copy: ls_seed_copy_swap). The thread does the disk work through ls_copy_recv_*.
 * What comes back for the loop, in order, is queued as ls_copy_rx_event_t: the copy's own events
 * (DURABLE, INSPECTED, ASK_AGAIN, REPLAYED, REPLAYED_SYNCED, STATE: pass ls_copy_rx_event_cb and
 * the receiver as the copy's event_cb / event_ctx), the bytes of each GEN_DATA consumed (credit
 * to give back, with the item's tag), BEHIND (a GEN_BEGIN past the generation wanted) and BLOCK
 * (block mode: the shadow of the open generation made durable up to an offset). The
 * notify callback says "there is something to poll"; it runs on any thread, must not block, and
 * is what the daemon turns into one wake-up of its loop (ls_node_wake_t): this module knows no
 * event loop.
 *
 * Lifecycle: ls_copy_rx_new() -> open the copy with ls_copy_rx_event_cb -> ls_copy_rx_start(copy)
 * (the thread owns that pointer from then on) -> ls_copy_rx_push() / ls_copy_rx_poll() ->
 * ls_copy_rx_stop() (joins the thread, drops the items not done, returns the copy the thread
 * held: the caller closes it) -> ls_copy_rx_free(). Events still queued at stop can be polled.
 *
 * Threading: push, poll, run_held, idle, start, stop and free on one thread (the loop); the items
 * run on the receiver thread in the order pushed, held BLOCK items (inline_sync_ns) on the loop in
 * ls_copy_rx_run_held, while the receiver thread is idle; the notify callback from the receiver,
 * the replayer or the loop thread, never with the receiver's lock held.
 * Hashing: push hashes each GEN_DATA item's bytes on the pushing thread (the loop, while they
 * are in its cache after the copy out of the socket's buffer) when they continue a generation
 * begun at offset 0, and gives its END the digest: the receiver thread then writes and inspects
 * (ls_copy_recv_data_hashed, ls_copy_recv_end_hashed), so the two threads pipeline piece by
 * piece; the digest is checked on the receiver thread before anything is durable, as always.
 * GEN_TAIL (the head from the shadow) is hashed on the receiver thread.
 * Fault point (test builds): receiver.flip_bit (flips a bit of every GEN_DATA in push, before it
 * is hashed: wire damage).
 */
#ifndef LS_COPY_RECEIVER_H
#define LS_COPY_RECEIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "copy/copy.h"

typedef struct ls_copy_rx ls_copy_rx_t;
typedef struct ls_copy_item ls_copy_item_t;

typedef enum {
    LS_COPY_ITEM_ABORT = 0, /* drop a half-received generation */
    LS_COPY_ITEM_BEGIN,     /* ls_copy_recv_begin(epoch, generation, size, close_ns) */
    LS_COPY_ITEM_DATA,      /* ls_copy_recv_data(generation, offset, data, len) */
    LS_COPY_ITEM_END,       /* ls_copy_recv_end(generation, digest) */
    LS_COPY_ITEM_RUN,       /* run(run_ctx, &copy, item) on the receiver thread */
    LS_COPY_ITEM_BLOCK      /* ls_copy_shadow_write(epoch, generation, offset, data, len, lsn) */
} ls_copy_item_kind_t;

/* Runs on the receiver thread. *copy is the thread's copy pointer (NULL when a swap could not
 * reopen it); the function may close it and store another (a seed's swap). it is borrowed. */
typedef void (*ls_copy_run_fn)(void *ctx, ls_copy_t **copy, ls_copy_item_t *it);

struct ls_copy_item {
    ls_copy_item_kind_t kind;       /* what to do */
    uint32_t epoch;                 /* BEGIN */
    uint64_t generation;            /* BEGIN, DATA, END */
    uint64_t size;                  /* BEGIN: bytes in all */
    uint64_t close_ns;              /* BEGIN: close time, UTC ns */
    uint64_t offset;                /* DATA, BLOCK (and RUN items that carry bytes): offset */
    uint64_t lsn;                   /* BLOCK: the durable LSN its bytes end at */
    uint8_t digest[LS_DIGEST_SIZE]; /* END (and RUN items that carry one) */
    uint64_t tag;                   /* the caller's (a connection id): in the CONSUMED event */
    int sub;                        /* RUN: the caller's kind of step */
    ls_copy_run_fn run;             /* RUN */
    void *run_ctx;                  /* RUN: passed to run */
    struct ls_copy_item *link;      /* the receiver's: BLOCK items held for the loop */
    bool hashed;                    /* the receiver's (set by push): DATA: the bytes are in the
                                       pushing thread's SHA-256 of the generation; END: hash is
                                       that SHA-256 */
    uint8_t hash[LS_DIGEST_SIZE];   /* the receiver's: END, when hashed */
    uint32_t len;                   /* bytes in data */
    uint32_t cap;                   /* room for data bytes (len, or LS_COPY_RX_SPARE_LEN) */
    uint8_t data[];                 /* DATA (and RUN items that carry bytes) */
};

/* A new item with room for len data bytes (the fields zeroed, len set; the data bytes are not:
 * the caller fills them). Aborts when out of memory, as the daemon did: a receiver cannot go on
 * without its queue. Freed by the receiver once run. */
ls_copy_item_t *ls_copy_item_new(ls_copy_item_kind_t kind, uint32_t len);

/* Room of a DATA item that rx's thread keeps for the next one once it has run (the active's
 * GEN_DATA frames are at most this), and how many it keeps. */
#define LS_COPY_RX_SPARE_LEN (256u * 1024u)
#define LS_COPY_RX_SPARES    4

/* As ls_copy_item_new, for an item pushed to rx: a DATA item of up to LS_COPY_RX_SPARE_LEN
 * bytes is one of the thread's spares when it has one (an item it has run, its bytes already
 * in memory), else a new one of that room. So a pick-up's pieces reuse the memory of the last
 * one's instead of taking fresh pages from the heap (which the receiver's frees had given back
 * to the kernel) on the loop, in series with the bytes. Any thread. */
ls_copy_item_t *ls_copy_rx_item_new(ls_copy_rx_t *rx, ls_copy_item_kind_t kind, uint32_t len);

#define LS_COPY_RX_EV_CONSUMED 100 /* a GEN_DATA item's bytes were written (credit to return) */
#define LS_COPY_RX_EV_BEHIND   101 /* GEN_BEGIN past the generation the copy wants: ask again */
#define LS_COPY_RX_EV_BLOCK    102 /* the shadow is durable: epoch, generation, offset, lsn */

typedef struct {
    int kind;            /* an ls_copy_event_kind_t, or LS_COPY_RX_EV_* */
    uint64_t generation; /* as in ls_copy_event_t; BEHIND: the generation offered */
    uint64_t lsn;        /* as in ls_copy_event_t */
    int code;            /* as in ls_copy_event_t */
    uint64_t consumed;   /* CONSUMED: bytes */
    uint64_t tag;        /* CONSUMED: the item's tag */
    uint32_t epoch;      /* BLOCK: the shadow's epoch */
    uint64_t offset;     /* BLOCK: its bytes durable */
    char message[512];   /* ASK_AGAIN, STATE, BEHIND: why ("" otherwise) */
} ls_copy_rx_event_t;

typedef struct {
    const char *name;          /* for log lines (the copy's name); copied */
    void (*notify_cb)(void *); /* events are queued: poll them (any thread); NULL: none */
    void *notify_ctx;          /* passed to notify_cb */
    uint64_t inline_sync_ns;   /* 0: never; else small BLOCK batches run on the pushing thread
                                  when the receiver thread is idle and the shadow's last fdatasync
                                  took less than this (LS_COPY_SHADOW_QUICK_NS): run_held */
} ls_copy_rx_options_t;

/* A receiver, not running yet. NULL when out of memory. */
ls_copy_rx_t *ls_copy_rx_new(const ls_copy_rx_options_t *opts);
/* The copy's event callback: ctx is the receiver. Queues the event and notifies. */
void ls_copy_rx_event_cb(void *ctx, const ls_copy_event_t *ev);
/* Starts the thread, which owns copy (may be NULL: items then do nothing but RUN) until stop.
 * 0, LS_ESTATE (already started) or LS_ENOMEM. */
int ls_copy_rx_start(ls_copy_rx_t *rx, ls_copy_t *copy);
/* Queues it (takes ownership) for the thread; before start or after stop it is freed. GEN_DATA
 * and GEN_END items are hashed here (see Hashing above). With
 * inline_sync_ns, a BLOCK item is held instead when the thread is idle (ls_copy_rx_idle) and
 * ls_copy_shadow_quick says the shadow takes it, with those held before it, by a write and one
 * fdatasync (at most LS_COPY_SHADOW_QUICK_MAX bytes): notify_cb is called and the loop runs them
 * with ls_copy_rx_run_held. Any other push first queues the held items, in order. */
void ls_copy_rx_push(ls_copy_rx_t *rx, ls_copy_item_t *it);
/* Runs the held BLOCK items on the calling thread (the one that pushes): written, one
 * fdatasync, the BLOCK event and the credit posted (without notify_cb: the caller polls them
 * next), as the thread does for a batch; no thread hand-off either way (docs/BLOCKMODE.md "The
 * round trip of a batch"). The thread stays idle meanwhile (nothing was pushed since), so the
 * copy is the caller's. True when there were some: poll their events, send the acknowledgement,
 * then call ls_copy_rx_held_done, which tells the replayer and runs the shadow's checks of the
 * new bytes (ls_copy_shadow_report), after the acknowledgement as the thread does. */
bool ls_copy_rx_run_held(ls_copy_rx_t *rx);
void ls_copy_rx_held_done(ls_copy_rx_t *rx);
/* Running, and every item pushed is finished (the thread touches the copy no more until the
 * next push). */
bool ls_copy_rx_idle(ls_copy_rx_t *rx);
/* Takes the oldest queued event into *out: true, or false when none. */
bool ls_copy_rx_poll(ls_copy_rx_t *rx, ls_copy_rx_event_t *out);
/* Stops and joins the thread (items not taken yet are freed unrun) and returns the copy the
 * thread held at the end, which the caller now owns (NULL when none). Idempotent: then NULL. */
ls_copy_t *ls_copy_rx_stop(ls_copy_rx_t *rx);
/* Stops if running (closing the copy it held) and frees. NULL: no-op. */
void ls_copy_rx_free(ls_copy_rx_t *rx);

#endif
