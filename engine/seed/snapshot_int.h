/* The seed snapshot's object, shared by snapshot.c (the local compacted copy, the chunked reader
 * and the public API, seed.h) and snapshot_direct.c (direct mode: the stream read from the
 * compacting copy through a pipe, and the spill to the local copy). Internal to engine/seed.
 *
 * Threading: the object belongs to the thread that calls ls_seed_snapshot_* (the seed worker);
 * in direct mode the copy thread touches only pipe_wr and copy_rc, read once it is joined. */
#ifndef LS_SEED_SNAPSHOT_INT_H
#define LS_SEED_SNAPSHOT_INT_H

#include <pthread.h>

#include "seed/seed_int.h"
#include "store/env.h"

struct ls_seed_snapshot {
    char dir[LS__SEED_PATH_MAX]; /* <db>/seed-tmp/<unique>: the local copy's environment */
    ls_seed_info_t info;         /* what it holds */
    int fd;                      /* <dir>/data.mdb, read only; -1 when closed */
    bool xxh;                    /* the options' xxh: the check is XXH3-128 */
    ls__seed_sum_t sum;          /* running check of the bytes read so far (util.c) */
    uint64_t offset;             /* next stream offset */
    size_t chunk_max;            /* largest chunk returned, bytes */
    int failed;                  /* sticky error of the reader (0: none) */
    /* direct mode: the stream comes from the compacting copy through a pipe */
    bool direct;             /* reading the pipe (false once spilled or finished) */
    bool spilled;            /* the rest of the stream was written to <dir>/data.mdb: read there,
                                already hashed */
    ls_store_env_t *env;     /* held, shared lock taken, while the copy runs */
    int pipe_rd, pipe_wr;    /* the pipe (-1: closed); pipe_wr belongs to the copy thread */
    pthread_t thr;           /* runs mdb_env_copyfd2 */
    bool thr_live;           /* not joined yet */
    int copy_rc;             /* its LMDB code (valid once joined) */
    uint8_t head[2 * 65536]; /* the first two pages, read to learn the size */
    size_t head_len;         /* bytes in head */
};

/* snapshot_direct.c */
/* Starts the compacting copy of the environment in store into a pipe; *m: the snapshot's meta
 * record, s->info.total_bytes its size. *fallback: the two transactions could not be lined up,
 * or the copy's size read: the caller takes the local copy. 0 or an error with err set. */
int ls__snap_direct_start(ls_seed_snapshot_t *s, const char *store, ls_store_meta_t *m,
                          bool *fallback, char *err, size_t errlen);
/* Reads n stream bytes of the direct copy into buf (the head first); 0 or an error (the copy
 * then ended). */
int ls__snap_direct_read(ls_seed_snapshot_t *s, uint8_t *buf, size_t n);
/* At the stream's end: 0 when the copy finished well and wrote nothing more. */
int ls__snap_direct_finish(ls_seed_snapshot_t *s);
/* Ends the copy thread (closing the pipe first when abandoning it), then the shared lock and the
 * environment. Returns the copy's LMDB code. */
int ls__snap_direct_end(ls_seed_snapshot_t *s, bool abandon);
/* The size in bytes of a compacted LMDB copy from its meta page 1 (page: psize bytes), 0 when
 * the page is not a meta page of that page size as this LMDB lays it out. Pure. */
uint64_t ls__snap_meta_size(const uint8_t *page, uint32_t psize);

#endif
