/*
 * zwork: a zstd worker thread, so that chunk bodies are compressed and decompressed off the
 * loop (DESIGN.md: "hashing and compression off the loop too"). One per link and per seed
 * session (compresses the GEN_DATA / SEED_DATA bodies it is given, ls_conn_send_raw sends them)
 * and one per peer or seed client connection that negotiated compression (decompresses what the
 * transport delivered compressed, with deliver_compressed, before the frame is routed on).
 *
 * Jobs are done strictly in the order they were pushed and popped in that order, so frames keep
 * their order through the worker. Uncompressed frames may go through it too (kept as they are),
 * to keep their place among compressed ones.
 *
 * Lifecycle: ld_zwork_start() on the loop -> ld_zwork_push() ... done_cb(w) from the loop
 * (uv_async) -> ld_zwork_pop() until NULL -> ld_zwork_stop(): drops the jobs, joins the thread
 * (it finishes the job at hand first: one chunk, about a millisecond) and frees w after its async
 * handle closed.
 *
 * Threading: push, pop, queued and stop are for the loop thread; the worker thread only runs
 * ls_zbody_* on the jobs.
 */
#ifndef LD_ZWORK_H
#define LD_ZWORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef enum {
    LD_ZJOB_COMPRESS = 1, /* in: a frame body; out: one zstd frame of it */
    LD_ZJOB_INFLATE,      /* in: header + body as delivered; out: header + plain body */
    LD_ZJOB_PASS          /* nothing to do: keeps its place in the order */
} ld_zjob_kind_t;

typedef struct ld_zjob {
    struct ld_zjob *next; /* queue link */
    ld_zjob_kind_t kind;  /* what the worker does */
    void *owner;          /* the loop's (a shipper, or NULL) */
    uint64_t tag;         /* the loop's (connection generation) */
    uint8_t type;         /* frame type */
    int rc;               /* worker: 0, or LS_E* when the body could not be (de)compressed */
    uint8_t *in;          /* input bytes (owned) */
    size_t in_len;        /* bytes in in */
    uint8_t *out;         /* output bytes (owned; NULL for LD_ZJOB_PASS) */
    size_t out_len;       /* bytes in out */
} ld_zjob_t;

typedef struct ld_zwork ld_zwork_t;
typedef void (*ld_zwork_cb)(ld_zwork_t *w);

/* Starts a worker with a codec at level (1..19 or negative; for inflating any valid level).
 * NULL when out of memory or the thread could not start. */
ld_zwork_t *ld_zwork_start(uv_loop_t *loop, int level, ld_zwork_cb done_cb, void *data);
/* Queues job (takes ownership); done_cb follows once it is done. */
void ld_zwork_push(ld_zwork_t *w, ld_zjob_t *job);
/* The oldest job if it is done (still queued; borrowed until ld_zwork_pop), else NULL. */
ld_zjob_t *ld_zwork_peek(ld_zwork_t *w);
/* Takes the oldest job if it is done (caller owns it, free with ld_zjob_free), else NULL. */
ld_zjob_t *ld_zwork_pop(ld_zwork_t *w);
size_t ld_zwork_jobs(ld_zwork_t *w);  /* jobs pushed and not popped yet */
size_t ld_zwork_bytes(ld_zwork_t *w); /* their input bytes */
void *ld_zwork_data(ld_zwork_t *w);
/* Stops and frees (see the lifecycle above); NULL is a no-op. */
void ld_zwork_stop(ld_zwork_t *w);

ld_zjob_t *ld_zjob_new(ld_zjob_kind_t kind, uint8_t type, size_t in_len); /* in allocated */
void ld_zjob_free(ld_zjob_t *job);

#endif
