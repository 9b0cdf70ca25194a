/*
 * writer internals shared by db.c and txn.c (the public API), flusher.c (stage 1 of the commit
 * pipeline: the sequencer), applier.c (stage 2: the store), roll.c (closing and creating log
 * files), recover.c and replay.c (crash recovery at open).
 *
 * Lifecycle: ls_db_open() runs ls__writer_recover() (which leaves the current log open, its
 * running digest rebuilt and the store caught up), then starts the applier and the flusher
 * threads. ls_db_close() stops the flusher once it drained the commit queue, then the applier once
 * it applied every durable batch, then rolls and checkpoints on the closing thread.
 *
 * Threading: three locks, taken in the order log_mu, store_mu, mu (never the reverse). A fourth
 * thread, prep.c's, prepares the next log file; it takes only mu (next_fd, prep_want).
 *  - `log_mu` guards the current log (the "log state" fields below): the flusher holds it while it
 *    encodes, appends and fdatasyncs a batch; ls_db_roll and ls_db_stats take it from the
 *    caller's thread.
 *  - `store_mu` guards writes to the store (apply, checkpoint) and last_ckpt_ns: the applier holds
 *    it while it applies; ls_db_checkpoint and close take it. It keeps a checkpoint from
 *    interleaving with the read-modify-write of the meta record an apply does.
 *  - `mu` guards the commit queue, the applier queue (durable batches and their position), the
 *    sticky error, the stop flags, the done flags of transactions and the commit counters.
 *  - the overlay (`ov.lock`, a leaf rwlock taken with or without the others, never holding
 *    another while it is held): the flusher inserts a durable batch, the applier trims what it
 *    applied, ls_db_get reads.
 * A transaction belongs to its committer until queued, then to the flusher until handed to the
 * applier (or failed: the flusher frees it), then to the applier, which frees it once applied
 * and trimmed from the overlay (after a store failure it is kept in `dead` until close). The
 * committer waits on an ls__commit_wait_t on its own stack, never on the transaction.
 */
#ifndef LS_WRITER_INT_H
#define LS_WRITER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <logship/db.h>

#include "core/core.h"
#include "store/store.h"
#include "writer/ctlpage.h"

#define LS__PATH_MAX 4096

/* The mapped control page (ctlpage.h): ctlpage.c maps it and keeps the fence, ctlchan.c the
 * seqlocked channel areas. */
#define LS__CTL_PATH_MAX 4200
struct ls_ctlpage {
    int fd;                      /* <db>/control, read-write */
    uint8_t *map;                /* LS_CTL_SIZE bytes, MAP_SHARED */
    char path[LS__CTL_PATH_MAX]; /* for messages */
};

/* A committer waiting in ls_txn_commit (on its stack): set under mu by the flusher, or when its
 * batch waits for copies (sync.c) by whichever committer sees the copies hold it, or the syncer
 * (timeout, fence, close). */
typedef struct ls__commit_wait {
    bool done;                    /* rc is final */
    int rc;                       /* commit result */
    uint64_t lsn;                 /* waiting for copies: the last LSN of its batch */
    uint64_t durable_ns;          /* waiting for copies: when its batch was durable (monotonic) */
    bool page;                    /* watches its copies (ls__sync_wait) from the start: queued
                                     while synchronous commit was in sync */
    pthread_cond_t cv;            /* ls__sync_wait: its own sleep when another committer
                                     watches the copies' futex (initialised by ls__sync_init) */
    struct ls__commit_wait *next; /* the sync queue's link */
} ls__commit_wait_t;

/* One buffered operation of a transaction. Key and value live in the txn's arena. */
typedef struct {
    uint8_t type;       /* LS_REC_PUT or LS_REC_DEL */
    uint32_t key_len;   /* bytes */
    uint32_t value_len; /* bytes (0 for DEL) */
    size_t off;         /* offset of the key in the arena; the value follows it */
} ls__op_t;

struct ls_txn {
    ls_db_t *db;               /* owner */
    ls__op_t *ops;             /* operations in call order */
    size_t nops, cap_ops;      /* used and allocated entries of ops */
    uint8_t *arena;            /* keys and values */
    size_t arena_len;          /* bytes used in arena */
    size_t arena_cap;          /* bytes allocated in arena */
    uint64_t log_bytes;        /* encoded size of all records including the COMMIT */
    uint64_t first_lsn;        /* LSN of ops[0] (op i has first_lsn + i), set by the flusher */
    struct ls_txn *next;       /* commit queue, then applier queue link */
    ls__commit_wait_t *waiter; /* the committer waiting for the outcome; NULL once told */
};

/* Overlay (overlay.c): the durable writes the store does not hold yet, by key. */
typedef struct ls__ov_entry ls__ov_entry_t;
typedef struct {
    pthread_rwlock_t lock; /* leaf lock: nothing else is taken while it is held */
    ls__ov_entry_t *slots; /* open-addressing table, cap entries */
    size_t cap;            /* slots (a power of two, or 0) */
    size_t count;          /* keys held */
} ls__overlay_t;

int ls__ov_init(ls__overlay_t *ov);
void ls__ov_destroy(ls__overlay_t *ov);
/* Adds every operation of the chain batch (in LSN order; first_lsn set). Keys and values stay
 * borrowed from the transactions until ls__ov_trim removed them. LS_ENOMEM: nothing added. */
int ls__ov_insert(ls__overlay_t *ov, const ls_txn_t *batch);
/* Removes the keys of chain whose latest entry has LSN <= applied_lsn (the store holds them
 * now). Returns how many entries were removed. */
size_t ls__ov_trim(ls__overlay_t *ov, const ls_txn_t *chain, uint64_t applied_lsn);
/* 0 with a malloc'd copy of the value (NUL-terminated), LS_ENOENT when deleted, 1 when the
 * overlay does not know the key (read the store), LS_EINVAL, LS_ENOMEM. */
int ls__ov_get(ls__overlay_t *ov, const void *key, size_t key_len, void **val, size_t *val_len);
size_t ls__ov_count(ls__overlay_t *ov); /* keys held */

/* keysort.c: a merged chain's operations in key order, the last one of each key only. */
typedef struct {
    uint64_t k0, k1;   /* the key's first 16 bytes, big-endian, zero-padded */
    const ls_txn_t *t; /* the transaction holding the operation */
    uint32_t op;       /* its index in t->ops */
} ls__keyop_t;
typedef struct {
    ls__keyop_t *ops, *tmp; /* sorted entries (n of them); merge scratch; cap entries each */
    size_t n, cap;
} ls__keysort_t;
/* Fills ks with chain's operations sorted by key (stable: LSN order within a key), keeping only
 * the last one of each key. LS_ENOMEM: ks->n is 0 (the caller applies in LSN order instead). */
int ls__keysort_chain(ls__keysort_t *ks, const ls_txn_t *chain);
void ls__keysort_free(ls__keysort_t *ks);

struct ls_db {
    /* configuration (immutable after open) */
    char dir[LS__PATH_MAX];             /* database directory */
    char logs[LS__PATH_MAX + 8];        /* <dir>/logs */
    char cur_path[LS__PATH_MAX + 32];   /* <dir>/logs/<prefix>.log */
    char next_path[LS__PATH_MAX + 32];  /* <dir>/logs/<prefix>.next: the next log, prepared */
    char prefix[LS_GEN_PREFIX_MAX + 1]; /* log file prefix */
    ls_db_options_t opts;               /* options with defaults filled in */
    uint8_t dbid[LS_DBID_LEN];          /* database id */
    ls_store_t *store;                  /* the active store */
    int lock_fd;       /* <dir>/lock, flock'ed exclusively while open; -1 when none */
    ls_ctlpage_t *ctl; /* <dir>/control, mapped: the fence read once per batch (ctlpage.h) */
    int bell;          /* <dir>/doorbell (ctlpage.h), rung when the daemon armed it; -1: none */

    /* log state (log_mu) */
    pthread_mutex_t log_mu;              /* guards the log state */
    uint32_t epoch;                      /* current epoch */
    int fd;                              /* current log, open for writing; -1 when none */
    uint64_t gen;                        /* generation number of the current log */
    uint64_t gen_first_lsn;              /* first LSN of the current log */
    uint64_t gen_records;                /* records in the current log */
    uint64_t log_size;                   /* bytes in the current log (header + records) */
    uint64_t cur_alloc;                  /* its file size when preallocated (zeros past
                                            log_size), else 0 */
    ls_sha256_t *sha;                    /* running digest of the current log's bytes */
    uint8_t prev_digest[LS_DIGEST_SIZE]; /* digest of generation gen-1 (the header's) */
    uint64_t last_closed;                /* last closed generation, 0 when none */
    uint64_t last_lsn;                   /* last LSN written and durable */
    uint64_t last_txid;                  /* last txid written and durable */
    uint64_t last_append_ns;             /* monotonic time of the last append (idle roll) */
    uint8_t *buf;                        /* encoding buffer for a batch */
    size_t buf_cap;                      /* bytes allocated in buf */
    ls_db_stats_t stats; /* counters: batches, generations, recovered_records... (not commits
                            and applies, kept under mu below) */

    /* store writes (store_mu) */
    pthread_mutex_t store_mu; /* guards store writes and the field below */
    uint64_t last_ckpt_ns;    /* monotonic time of the last checkpoint */
    ls__keysort_t ks;         /* the applier's sort buffers */
    size_t piece_ops;         /* operations per store transaction of a sorted apply (applier.c,
                                 adapted to the time of a piece) */
    uint64_t pieces;          /* store transactions before the last one of a sorted apply */

    ls__overlay_t ov; /* acknowledged writes the store does not hold yet (its own leaf lock) */

    /* queue and status (mu) */
    pthread_mutex_t mu;      /* guards the fields below */
    pthread_cond_t wake;     /* signals the flusher: queue non-empty or stopping */
    pthread_cond_t done;     /* signals committers: a batch finished */
    pthread_cond_t applyq;   /* signals the applier: durable batches queued or stopping */
    pthread_cond_t space;    /* signals the flusher: the applier trimmed the overlay, or failed */
    pthread_cond_t prepq;    /* signals the prep thread: a next log is wanted, or stopping */
    int next_fd;             /* the prepared next log (prep.c), open; -1 when none is ready */
    bool prep_want;          /* a next log is wanted (none prepared or being prepared) */
    bool prep_stopping;      /* ls_db_close() asked the prep thread to exit */
    bool prep_running;       /* the prep thread was started */
    ls_txn_t *qhead, *qtail; /* commit queue, FIFO */
    ls_txn_t *ahead, *atail; /* durable, not yet applied transactions in LSN order (the flusher's
                                batches chained); the applier takes them all at once */
    ls_store_meta_t apos;    /* position after atail: the meta the store gets once it holds them */
    uint64_t unapplied;      /* log bytes of the acknowledged transactions the store does not
                                hold yet (the overlay's; bounded by opts.overlay_max) */
    uint64_t space_waits;    /* times the flusher waited for the applier (backpressure) */
    unsigned flush_waiters;  /* ls_db_checkpoint callers waiting for the applier to apply what
                                is durable: no gathering meanwhile */
    ls_txn_t *dead;          /* chains kept after a store failure (the overlay still points into
                                them); freed at close */
    uint64_t taken;          /* batches the flusher took from the queue since open */
    uint64_t handed;         /* of those, handed to the applier or failed (taken - handed: 0 or
                                1, the batch being written) */
    bool flushing;           /* a batch is being written, by the flusher or by a lone committer
                                that leads it (ls__flush_lead): one at a time, in queue order */
    uint64_t led;            /* batches a lone committer wrote itself since open */
    bool stopping;           /* ls_db_close() asked the flusher to exit */
    bool apply_stopping;     /* ls_db_close() asked the applier to exit (the flusher is gone) */
    bool running;            /* the flusher thread was started */
    bool applier_running;    /* the applier thread was started */
    int failed;              /* sticky error (0: healthy) */
    int store_failed;        /* a store apply failed: the applier applies nothing more */
    uint64_t commits;        /* transactions acknowledged (durable) since open */
    uint64_t applies;        /* store transactions of the applier since open */
    char errmsg[512];        /* message of the sticky or last error */
    pthread_t thread;        /* the flusher */
    pthread_t applier;       /* the applier */
    pthread_t prep;          /* the prep thread (prep.c) */

    /* synchronous commit (sync.c; mu) */
    pthread_cond_t syncq;     /* signals the syncer: committers queued for copies, or stopping */
    ls__commit_wait_t *shead; /* committers of durable batches waiting for copies, LSN order */
    ls__commit_wait_t *stail;
    bool snew;              /* the queue was empty when the last batch was queued: its head
                               is told to take the watch (ls__sync_batch_queued) */
    uint64_t durable_lsn;   /* last LSN of the last durable batch handed over */
    ls_ctl_sync_t sync;     /* the state as published in the control page */
    unsigned committers;    /* threads inside ls_txn_commit's wait: close waits for them to
                               leave before it frees db (a commit waiting for copies ends at
                               close) */
    uint64_t sync_waits;    /* batches that waited for copies */
    uint64_t sync_timeouts; /* of those, timed out (degraded) */
    bool sync_stopping;     /* ls_db_close() asked the syncer to exit */
    bool syncer_running;    /* the syncer thread was started */
    pthread_t syncer;       /* the syncer (sync.c) */
};

/* Records err as the database's sticky error with a message (mu must NOT be held). */
void ls__db_fail(ls_db_t *db, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Fails the database with LS_EFENCED when the control page carries a fence (mu NOT held).
 * One shared-memory load when not fenced. */
int ls__db_check_fence(ls_db_t *db);

/* Publishes the durable position in the control page (log_mu held): bytes [0, offset) of the
 * current log are fdatasynced (0: none yet), last_lsn is durable; open false: the writer is
 * gone (pid 0). The daemon's block mode reads it (ctlpage.h, docs/BLOCKMODE.md). */
void ls__db_publish(ls_db_t *db, uint64_t offset, bool open);

/* The flusher thread body (flusher.c): stage 1, the sequencer. */
void *ls__flusher_main(void *arg);
/* A lone committer's own batch (called without locks, after it took the queue under mu and set
 * flushing): writes, syncs and hands it over as the flusher would, in the committer's thread. */
void ls__flush_lead(ls_db_t *db, ls_txn_t *batch);
/* The applier thread body (applier.c): stage 2, the store. */
void *ls__applier_main(void *arg);
/* Waits (mu, log_mu NOT held) until the store holds every batch durable at the call, or the
 * database failed: the applier applies at once meanwhile instead of gathering. */
void ls__applier_flush(ls_db_t *db);

/* ---- synchronous commit (sync.c) ---- */
/* Publishes the initial sync state (off for level local, else sync) and starts the syncer thread
 * for a remote level. 0 or an errno-based LS_E*. */
int ls__sync_start(ls_db_t *db);
/* Ends every wait (LS_ECLOSED unless the copies confirmed it meanwhile), joins the syncer and
 * publishes the state off. Called by close after the flusher stopped (mu NOT held). */
void ls__sync_stop(ls_db_t *db);
/* Whether the committers of the durable batch the flusher acknowledges now wait for copies
 * (mu held): a remote level and the state sync (not degraded, not closing). */
bool ls__sync_wanted(const ls_db_t *db);
/* Queues a committer of a durable batch ending at lsn, durable since now (monotonic ns), to
 * wait for its copies (mu held); then ls__sync_batch_queued once per batch: counts it, tells
 * the batch at once when the copies hold it already, wakes those of its committers that waited
 * on db->done (they wait on the copies' futex from then on). */
void ls__sync_enqueue(ls_db_t *db, ls__commit_wait_t *w, uint64_t lsn, uint64_t now);
void ls__sync_batch_queued(ls_db_t *db);
/* A committer that waits on the copies' futex (w->page, or w->lsn set: queued for its copies),
 * mu held: tells it (and every earlier batch) 0 when the copies hold its batch, else sleeps once
 * on the copies' futex (mu released meanwhile). Returns with mu held; the caller loops until
 * w->done. Whoever sets done of a w->page committer then calls ls_ctlpage_wake_copies. */
void ls__sync_wait(ls_db_t *db, ls__commit_wait_t *w);
/* A committer's wait (mu held): page set when it will watch its copies; its cv initialised.
 * ls__sync_fini destroys it once the committer leaves. */
void ls__sync_init(ls_db_t *db, ls__commit_wait_t *w);
void ls__sync_fini(ls__commit_wait_t *w);
/* The flusher told w (done set, mu held): wakes it when it watches its copies. Whether it
 * might sleep on the copies' futex (then ls_ctlpage_wake_copies once for the batch). */
bool ls__sync_told(ls__commit_wait_t *w);

/* The prep thread body (prep.c): prepares <prefix>.next while the current log fills. */
void *ls__prep_main(void *arg);
/* The prepared file's size: target_size rounded up to 4 KiB (at most LS_GEN_HARD_CAP). */
uint64_t ls__prep_size(const ls_db_t *db);
/* Takes the prepared next log (its fd, the caller owns it), or -1 when none is ready. */
int ls__prep_take(ls_db_t *db);
/* After the roll renamed the taken file away: the thread prepares the following one. */
void ls__prep_again(ls_db_t *db);

/* roll.c (log_mu held). ls__roll closes a non-empty current log and opens the next one. */
int ls__roll(ls_db_t *db);
/* Creates the current log for generation gen (header only), fsyncs it and the directory, and
 * makes it the db's current log (fd, sha, log_size...). */
int ls__log_create(ls_db_t *db, uint64_t gen, uint64_t first_lsn,
                   const uint8_t prev_digest[LS_DIGEST_SIZE]);
/* Syncs the store and records the checkpoint LSN (store_mu held). */
int ls__checkpoint(ls_db_t *db);

/* ---- recovery (recover.c, replay.c) ---- */

typedef struct {
    uint32_t epoch; /* from the file name */
    uint64_t gen;   /* from the file name */
} ls__genfile_t;

/* Records collected from one generation for replay (borrowed from the file's buffer). */
typedef struct {
    ls_record_t *recs; /* records with LSN above the store's, in order */
    size_t n, cap;     /* used and allocated entries */
    uint64_t skip_lsn; /* records at or below this LSN are already in the store */
} ls__replay_t;

/* State gathered by recovery. */
typedef struct {
    ls__genfile_t *gens;    /* closed generations in logs/, sorted by (epoch, generation) */
    size_t ngens;           /* entries in gens */
    bool has_cur;           /* logs/<prefix>.log exists */
    ls_store_meta_t meta;   /* store position, updated as replay applies */
    bool have_last;         /* last holds the newest closed generation's scan */
    ls_gen_info_t last;     /* scan of the newest closed generation */
    uint8_t *cur;           /* contents of the current log (valid header) */
    size_t cur_len;         /* bytes in cur */
    ls_gen_info_t cur_info; /* scan of the current log */
    uint64_t max_txid;      /* highest txid seen in the log or the store */
} ls__recovery_t;

int ls__list_gens(ls_db_t *db, ls__recovery_t *rs, char *msg, size_t msglen);
/* Full path of closed generation g into out. */
void ls__gen_path(ls_db_t *db, const ls__genfile_t *g, char *out, size_t outlen);
/* Scans the newest closed generation (it must be intact) into rs->last. */
int ls__scan_last_closed(ls_db_t *db, ls__recovery_t *rs, char *msg, size_t msglen);
/* Verifies the closed generations the store still needs (chain, numbering, digests) and
 * replays them; updates rs->meta. first_lsn_after is the first LSN of the current log. */
int ls__replay_closed(ls_db_t *db, ls__recovery_t *rs, uint64_t first_lsn_after, char *msg,
                      size_t msglen);
/* Scan callback collecting records into an ls__replay_t. */
int ls__replay_collect(void *ctx, const ls_record_t *r);
/* Applies the collected records with meta in one store transaction. */
int ls__replay_apply(ls_db_t *db, ls__replay_t *rp, const ls_store_meta_t *meta);

/* recover.c: runs at open on a db with paths and options set; leaves the current log open.
 * msg (msglen) receives the reason on failure. */
int ls__writer_recover(ls_db_t *db, char *msg, size_t msglen);

/* The position of the last record written to the current log (log_mu held): dbid, epoch,
 * generation holding last_lsn, last_lsn, last_txid, and generation-1 with the current log's
 * prev_digest. The other meta fields (checkpoint_lsn, applied_generations) are left zero: the
 * applier takes them from the store when it writes the record. */
void ls__db_position(ls_db_t *db, ls_store_meta_t *m);

#endif
