/* The pool of preallocated files, shared by prealloc.c (the pool, its thread, take and give)
 * and prealloc_grow.c (the growth of a taken file and the syncs ahead, asked by the receiver). */
#ifndef LS_COPY_PREALLOC_INT_H
#define LS_COPY_PREALLOC_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "copy/prealloc.h"

#define MAX_FILES  64
#define MAX_SYNCS  8
#define ZERO_STEP  (256u * 1024u)
#define SIZE_ROUND (64ull * 1024)
#define DEFAULT_SZ (896ull * 1024) /* under the ~0.93-1 MiB generations of the default */
#define RECENT     8               /* sizes the pool size follows (their smallest) */
#define BARE_FILES 4               /* empty files created at once, even during takes (prealloc.h) */

/* The growth of a taken file (ls_prealloc_grow_ahead): one at a time. RUNNING: its zeros are
 * being written; SYNCING: written, the pool's fdatasync runs (the receiver may write there). */
typedef enum { GROW_NONE, GROW_QUEUED, GROW_RUNNING, GROW_SYNCING, GROW_DONE } grow_state_t;
#define PATH_MAX_PA 4096

struct ls_prealloc {
    char dir[PATH_MAX_PA];
    char label[256];
    unsigned count;
    uint64_t idle_ns;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    pthread_t thread;
    bool started, stop;
    uint64_t size;           /* of the files made from now on (mu) */
    uint64_t recent[RECENT]; /* sizes announced lately, 0: none (mu) */
    unsigned nrecent;        /* sizes announced so far (mu) */
    struct {
        grow_state_t state;
        int fd; /* a duplicate, closed by ls_prealloc_grown */
        uint64_t from, to;
        int rc;
    } grow;                            /* (mu) */
    uint64_t ready[MAX_FILES];         /* numbers of the ready files, oldest first (mu) */
    unsigned nready;                   /* (mu) */
    uint64_t bare[MAX_FILES];          /* numbers of the bare files, oldest first (mu) */
    int bare_fd[MAX_FILES];            /* each one's descriptor (O_WRONLY), -1: not open (mu) */
    unsigned nbare, making_bare;       /* (mu): making_bare: being created */
    uint64_t emptying[MAX_FILES];      /* given files to empty into bare ones (mu) */
    unsigned nemptying, bare_reserved; /* (mu): bare_reserved: such gives between their halves */
    bool bare_failed;            /* the last bare file failed: none until the next take (mu) */
    uint64_t pending[MAX_FILES]; /* given files to finish (mu) */
    unsigned npending, reserved; /* (mu): reserved: gives between their two halves */
    int syncs[MAX_SYNCS];        /* fds to fdatasync (mu) */
    unsigned nsyncs;             /* (mu) */
    uint64_t next;               /* next file number (mu) */
    uint64_t last_take_ns;       /* monotonic (mu) */
    bool make_failed;            /* the last new file failed: none until the next take (mu) */
    uint8_t *zeros;              /* ZERO_STEP zero bytes */
};

/* Writes zeros over [from, to) of fd, ZERO_STEP at a time (no sync). */
int ls__prealloc_zeros(ls_prealloc_t *p, int fd, uint64_t from, uint64_t to);

#endif
