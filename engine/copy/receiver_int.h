/* What receiver.c (the thread) and rx_push.c (the loop's pushes) share of a copy's receiver. */
#ifndef LS_COPY_RECEIVER_INT_H
#define LS_COPY_RECEIVER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "copy/receiver.h"
#include "core/core.h"
#include "core/workq.h"

struct ls_copy_rx {
    char name[128];            /* the copy's, for log lines */
    void (*notify_cb)(void *); /* see ls_copy_rx_options_t */
    void *notify_ctx;
    pthread_t thread;
    bool started;            /* the thread runs (until stop) */
    ls_workq_t *work;        /* items for the thread, from start to stop (the loop's pointer) */
    ls_workq_t *events;      /* events for the loop, from any thread of the copy */
    ls_copy_t *copy;         /* the thread's copy once started (the thread alone) */
    uint64_t skip_gen;       /* the thread's: drop the frames of this generation */
    uint64_t tail_gen;       /* the thread's: the generation begun from the shadow (GEN_TAIL) */
    uint64_t ends;           /* END items pushed and not yet taken by the thread (atomic): a whole
                                generation is queued behind the one ending */
    uint64_t inline_sync_ns; /* see ls_copy_rx_options_t */
    uint64_t pushed;         /* items pushed into work since start (the loop's) */
    uint64_t done;           /* of those, finished by the thread (atomic, release): pushed == done
                                means it is idle and touches the copy no more until the next push */
    ls_copy_item_t *held, *held_last; /* BLOCK items held for ls_copy_rx_run_held (the loop's) */
    uint64_t held_bytes;              /* their bytes */
    bool held_report; /* the last run_held made bytes durable: ls_copy_rx_held_done reports them */
    /* The pushing thread's hash of the generation pushed (push: prehash) */
    ls_sha256_t *sha; /* SHA-256 of its bytes [0, next) below the trailer; NULL: none yet */
    bool hashing;     /* a generation begun at offset 0 whose DATA so far were contiguous */
    uint64_t gen;     /* its generation */
    uint64_t size;    /* its announced size */
    uint64_t next;    /* the offset its next DATA must have */
    /* DATA items run by the thread, kept for ls_copy_rx_item_new (any thread: under spare_mu) */
    pthread_mutex_t spare_mu;
    ls_copy_item_t *spare[LS_COPY_RX_SPARES];
    unsigned spares; /* how many */
};

/* Wakes the loop for the events queued (not while the loop itself runs held items). */
void ls__copy_rx_notify(void *arg);

#endif
