/*
 * source internals shared by the module's files (dir.c, history.c, meta.c, plan.c, removal.c,
 * reader.c); not for other modules.
 *
 * Threading: src->mu guards everything in ls_source below (the array, the caches, the history,
 * the reader list). Lock order: src->mu before a reader's mutex; a reader's thread never holds
 * its own mutex while taking src->mu.
 */
#ifndef LS_SOURCE_INT_H
#define LS_SOURCE_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/types.h>

#include "layout/layout.h"
#include "source/source.h"

/* One closed generation held in logs/. Header and trailer fields are loaded lazily. */
typedef struct {
    uint64_t generation;                 /* from the file name */
    uint32_t epoch;                      /* from the file name */
    bool loaded;                         /* the fields below are valid */
    uint64_t size;                       /* file size, bytes */
    uint64_t first_lsn;                  /* header: first LSN */
    uint64_t last_lsn;                   /* trailer: last LSN */
    uint64_t close_ns;                   /* trailer: close time, UTC ns */
    uint8_t prev_digest[LS_DIGEST_SIZE]; /* header: digest of generation - 1 */
    uint8_t digest[LS_DIGEST_SIZE];      /* trailer: digest of this generation (as stored) */
} ls__src_gen_t;

/* One line of logs/history (engine/layout reads the file). */
typedef ls_layout_hist_t ls__src_hist_t;

/* A reader as the source sees it: to wake it when the directory changes. */
typedef struct ls__src_waiter {
    pthread_mutex_t *mu;         /* the reader's mutex */
    pthread_cond_t *cond;        /* the reader's condition */
    bool *dirty;                 /* set under *mu when the directory changed */
    struct ls__src_waiter *next; /* next registered reader */
} ls__src_waiter_t;

/* Test hook of ls_source_remove_upto(): called without src->mu after the entries left the view
 * (done = 0, no file unlinked yet) and after each unlink (done = files unlinked so far), so a
 * test can interleave rescans with a removal deterministically. */
typedef void (*ls__src_remove_hook_fn)(void *ctx, size_t done);

struct ls_source {
    pthread_mutex_t mu;                 /* guards every field below */
    char prefix[LS_GEN_PREFIX_MAX + 1]; /* log file prefix */
    char logs[PATH_MAX];                /* <db>/logs */
    char hist_path[PATH_MAX];           /* <db>/logs/history */
    ls__src_gen_t *gens;                /* closed generations, sorted by generation, unique */
    size_t ngens;                       /* entries in gens */
    ls__src_hist_t *hist;               /* history lines in order */
    size_t nhist;                       /* entries in hist */
    bool hist_seen;                     /* the history file existed at the last read */
    uint64_t hist_size;                 /* its size then, bytes */
    int64_t hist_mtime_ns;              /* its mtime then, ns */
    uint64_t hist_ino;                  /* its inode then */
    bool have_dbid;                     /* dbid was learnt from a header */
    uint8_t dbid[LS_DBID_LEN];          /* database id of every generation loaded */
    ls__src_waiter_t *waiters;          /* readers to wake when the directory changes */
    uint64_t removing_upto;             /* a removal is unlinking generations <= this: a rescan
                                           keeps them out of the view (0: no removal running) */
    pthread_mutex_t remove_mu;          /* serialises removals (taken before mu, never under) */
    ls__src_remove_hook_fn remove_hook; /* tests: called during a removal (NULL: none) */
    void *remove_hook_ctx;              /* its context */
};

/* All of the following expect src->mu held. */
/* Index of generation g in src->gens, or -1. */
ssize_t ls__src_find(const ls_source_t *src, uint64_t g);
/* Index of the first entry with generation > g (src->ngens when none). */
size_t ls__src_upper(const ls_source_t *src, uint64_t g);
/* Loads the header and trailer of src->gens[i] if not cached. */
int ls__src_load(ls_source_t *src, size_t i, char *err, size_t errlen);
/* Epoch of generation g according to the history (1 when there is none), 0 when unknown. */
uint32_t ls__src_hist_epoch(const ls_source_t *src, uint64_t g);
/* Re-reads logs/history when it changed; validates it. */
int ls__src_hist_refresh(ls_source_t *src, char *err, size_t errlen);
/* Path of a generation file into out. */
void ls__src_path(const ls_source_t *src, uint32_t epoch, uint64_t g, char *out, size_t outlen);
/* Installs the removal hook (tests only; takes src->mu itself). */
void ls__src_set_remove_hook(ls_source_t *src, ls__src_remove_hook_fn fn, void *ctx);
/* Registers / unregisters a reader's wake-up (takes src->mu itself). */
void ls__src_watch(ls_source_t *src, ls__src_waiter_t *w);
void ls__src_unwatch(ls_source_t *src, ls__src_waiter_t *w);

/* ---- the generation reader (reader.c: the thread, reader_read.c: one generation) ---------- */

#define LOCATE_WAIT 1 /* locate(): the generation is not closed yet */

typedef struct rgen {
    ls_gen_buf_t buf;       /* what ls_reader_next hands out; first, so &buf is the node */
    uint8_t *data;          /* the file's bytes (buf.bytes) */
    size_t cap;             /* bytes allocated at data (>= buf.size: it may be a spare) */
    _Atomic uint64_t avail; /* bytes read and verified so far (buf.avail points here) */
    bool filling;           /* under r->mu: published, the thread still reads into data */
    bool released;          /* under r->mu: released while filling: the thread frees it */
    struct rgen *next;      /* next in the ready queue or the handed-out list */
} rgen_t;

struct ls_reader {
    ls_source_t *src;                    /* the directory view (outlives the reader) */
    pthread_t thread;                    /* the reading thread */
    pthread_mutex_t mu;                  /* guards the fields below it */
    pthread_cond_t cond;                 /* space freed, directory changed, or stop */
    ls__src_waiter_t waiter;             /* registration with src for directory changes */
    ls_gen_stream_t *scan;               /* the incremental verifier (the thread's) */
    ls_reader_notify_cb cb;              /* called on the thread: ready or failed */
    void *ctx;                           /* cb's argument */
    uint32_t max_gens;                   /* bound on buffered generations */
    uint64_t max_bytes;                  /* bound on buffered bytes */
    ls_reader_verify_t verify;           /* what is checked of each generation */
    uint64_t full_gen;                   /* verified FULL whatever verify says (0: none) */
    bool have_prev;                      /* prev_digest below is the expected chain */
    uint8_t prev_digest[LS_DIGEST_SIZE]; /* digest the next generation's header must carry */
    bool have_trl;                       /* the generation being read has a trailer: */
    uint8_t trl_digest[LS_DIGEST_SIZE];  /* its digest as read first (RECORDS: the known digest
                                            the scanner compares the trailer with at the end) */
    uint64_t prev_last_lsn;              /* last LSN of the previous generation (0: unknown) */
    bool have_dbid;                      /* dbid below is known */
    uint8_t dbid[LS_DBID_LEN];           /* database id of the first generation read */
    bool stop;                           /* ls_reader_stop() was called */
    bool dirty;                          /* the directory changed since the thread last looked */
    rgen_t *head, *tail;                 /* ready queue, in generation order */
    rgen_t *out;                         /* handed out, not yet released */
    uint8_t *spare;                      /* a released generation's buffer, for the next one */
    size_t spare_cap;                    /* its bytes */
    ls_reader_stats_t st;                /* figures; st.error is the sticky failure */
    char errmsg[LS_SOURCE_ERRLEN];       /* why the reader stopped */
};

/* Reads generation g on the reader's thread (reader_read.c): 0 verified, LOCATE_WAIT,
 * 1 stopping, or an error (r->errmsg). */
int ls__reader_step(ls_reader_t *r, uint64_t g);
/* Frees n, its buffer kept as the reader's spare when that fits the bounds (reader.c). Called
 * with r->mu held; returns what the caller frees once it has let go of the lock (or NULL). */
uint8_t *ls__reader_drop_locked(ls_reader_t *r, rgen_t *n);
/* A buffer of at least size bytes for the next generation: the spare when large enough, else a
 * new one (the spare, too small, is freed). NULL when out of memory. *cap: its bytes. */
uint8_t *ls__reader_buffer(ls_reader_t *r, size_t size, size_t *cap);

#endif
