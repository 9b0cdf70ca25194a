/*
 * copy internals shared by the module's files: copy.c (open/close/state/events), position.c
 * (restart recovery from the directories and the store), recv.c (receive path), inspect.c
 * (inspection and the move into logs/), replay.c (the replayer thread; replay_read.c and
 * replay_apply.c read and apply its batches, replay_int.h). Not public.
 *
 * Locking: `mu` guards every field marked (mu). The receiver thread owns `rx` alone. The store is
 * written only by the replayer thread (and by open/close when no replayer runs). File I/O is done
 * without mu except the short moves that must be atomic with the position (the rename into logs/
 * and the replayer's roll back after a damaged file).
 */
#ifndef LS_COPY_INT_H
#define LS_COPY_INT_H

#include <pthread.h>

#include "copy/copy.h"
#include "copy/prealloc.h"
#include "core/core.h"

#define LS__COPY_PATH_MAX   4096
#define LS__COPY_TRL_DIGEST 48 /* offset of the digest in the trailer (docs/FORMAT.md) */
#define LS__COPY_PEND_MAX   8  /* generations moved into logs/ at most, awaiting one fsync */

/* One inspected generation in logs/ waiting for replay (or the last one held). */
typedef struct {
    uint32_t epoch;                      /* its epoch (part of the file name) */
    uint64_t generation;                 /* its number */
    uint64_t size;                       /* file size, bytes */
    uint64_t first_lsn;                  /* header's first LSN */
    uint64_t last_lsn;                   /* trailer's last LSN */
    uint64_t close_ns;                   /* trailer's close time, UTC ns (replay lag) */
    uint64_t last_txid;                  /* txid of its last COMMIT (0: none) */
    uint8_t prev_digest[LS_DIGEST_SIZE]; /* header's digest of generation-1 */
    uint8_t digest[LS_DIGEST_SIZE];      /* trailer's digest, as inspected */
    uint8_t seal[LS_SEAL_LEN];           /* XXH3-128 of the whole file, computed over the bytes
                                            the inspection checked (replay compares its read) */
    uint64_t queued_ns;                  /* monotonic ns when it was queued for replay */
} ls__copy_entry_t;

/* What a generation must be, for ls__copy_check_buf (built from the held chain or the queue). */
typedef struct {
    bool check_dbid;                  /* compare the header's database id with dbid */
    uint8_t dbid[LS_DBID_LEN];        /* the copy's database id */
    uint32_t epoch;                   /* expected epoch */
    uint64_t generation;              /* expected generation */
    uint64_t first_lsn;               /* expected first LSN, 0: not checked */
    uint8_t prev[LS_DIGEST_SIZE];     /* expected prev_digest (zeros for generation 1) */
    bool has_known;                   /* known holds the digest computed while receiving */
    uint8_t known[LS_DIGEST_SIZE];    /* SHA-256 of header + records, when has_known */
    uint64_t seed_lsn;                /* a seeded store holds LSNs up to this one inside this
                                         generation: its first LSN must be <= seed_lsn + 1 (0: no
                                         such check) */
    uint8_t header_dbid[LS_DBID_LEN]; /* out: the database id the header names */
} ls__copy_expect_t;

/* The block-mode shadow of the open generation as the replayer sees it (shadow_apply.c). */
typedef struct {
    /* reported by the receiver through ls_copy_shadow_durable (mu) */
    uint32_t epoch;       /* the shadow's epoch */
    uint64_t generation;  /* its generation (0: nothing reported since open) */
    uint64_t size;        /* durable bytes of it */
    uint64_t durable_lsn; /* the LSN they end at */
    uint64_t reports;     /* reports since open (the replayer notices a new one) */
    uint64_t report_ns;   /* monotonic ns of the last report (the idle checkpoint waits) */
    bool lazy; /* no commit waits for the applied position (the source said so, LS_COPY_APPLY
                  clear): apply early only once reports were quiet SHADOW_QUIET_NS */
    /* reported by the receiver through ls_copy_shadow_written, before its fdatasync (mu): an
     * eager replayer may apply them, its store transaction carrying the bytes past size */
    uint32_t w_epoch;      /* the shadow written */
    uint64_t w_generation; /* its generation (0: none) */
    uint64_t w_size;       /* bytes written, durable or not */
    bool carried;          /* the store may hold a carry record (replayer only) */
    /* A step whose carried bytes are not yet reported durable is not acknowledged as applied
     * until they are (ls_copy_shadow_durable) or the store commits again: with MDB_NOMETASYNC
     * its own commit leaves its meta page unsynced, so a power cut may undo it, carry and all,
     * while the shadow's fdatasync has not ended (mu). */
    uint64_t pend_lsn;   /* that step's LSN (0: none) */
    uint64_t pend_gen;   /* its generation */
    uint32_t pend_epoch; /* its shadow's epoch */
    uint64_t pend_end;   /* its shadow_end: durable once the shadow is synced to here */
    uint64_t ack_lsn;    /* applied_lsn to acknowledge meanwhile (the store's commit before) */
    /* what the replayer did (mu) */
    uint64_t applied_lsn;        /* last LSN applied early from it (0: none) */
    uint64_t applies;            /* store transactions applying a shadow */
    uint64_t seen;               /* reports when the replayer last looked */
    struct ls__copy_sh_run *run; /* the replayer's walk of the shadow (replayer only) */
} ls__copy_shadow_t;

/* The store's carry record (shadow_carry.c, docs/BLOCKMODE.md "The store carries the shadow's
 * unsynced bytes"): bytes [from, end) of the shadow of (epoch, generation), written in the early
 * apply's store transaction when they were not yet reported durable. */
#define LS__COPY_CARRY_KEY  "shadow_carry"
#define LS__COPY_CARRY_HEAD 32u        /* magic u32, epoch u32, generation, from, end (u64 each) */
#define LS__COPY_CARRY_MAX  (1u << 20) /* bytes carried at most: beyond, wait for the sync */
/* Encodes the record's head into out (LS__COPY_CARRY_HEAD bytes). */
void ls__copy_carry_head(uint8_t *out, uint32_t epoch, uint64_t gen, uint64_t from, uint64_t end);
/* At open, after the position is recovered: a carry record of the generation the store applied
 * early (not yet held) is written into the shadow where the file is shorter or differs, and the
 * shadow fdatasynced, before anything reads it. LS_ECORRUPT (malformed record, err says so),
 * LS_EIO. */
int ls__copy_shadow_restore(ls_copy_t *c, char *err, size_t errlen);
/* shadow_report.c: after an early-apply transaction moved the store from was to nm (carried: it
 * wrote the carry record): c->meta, the applied position and its acknowledgement (held while the
 * carried bytes are not reported durable), the APPLIED event. Replayer's thread, mu not held. */
void ls__copy_shadow_committed(ls_copy_t *c, uint32_t epoch, const ls_store_meta_t *was,
                               const ls_store_meta_t *nm, bool carried);

/* The generation being received (receiver thread only). */
typedef struct {
    bool active;             /* a .part is open */
    uint32_t epoch;          /* announced epoch */
    uint64_t generation;     /* announced generation */
    uint64_t size;           /* announced size, bytes */
    uint64_t got;            /* bytes written so far (contiguous from 0) */
    uint64_t head;           /* bytes [0, head) came from the shadow (GEN_TAIL; 0: none) */
    bool linked;             /* the .part is a hard link of the shadow (GEN_TAIL): its head is
                                the shadow's bytes, read and checked, not written again */
    int fd;                  /* the .part, -1 when none */
    bool growing;            /* a pool file shorter than size: the pool grows it from grow_from
                                (ls_prealloc_grown before writing there) */
    uint64_t grow_from;      /* its length when taken */
    bool grow_sync;          /* the growth's sync may still run on the pool's thread
                                (ls_prealloc_grow_synced before the fdatasync) */
    ls_sha256_t *sha;        /* running SHA-256 of bytes [0, size - LS_GEN_TRAILER_SIZE) */
    uint64_t by_caller;      /* bytes [0, by_caller) came hashed by the caller, not into sha
                                (ls_copy_recv_data_hashed; 0: sha has them all) */
    ls_seal_t *seal;         /* running XXH3-128 of bytes [0, size): the file's seal (kept) */
    ls_gen_stream_t *stream; /* the inspection, record by record as bytes arrive (kept) */
    ls__copy_expect_t x;     /* what the generation must be, fixed at begin */
    ls_gen_expect_t ex;      /* x for the stream; known_digest points at digest */
    uint8_t digest[LS_DIGEST_SIZE]; /* the SHA-256 of the bytes received, filled at end */
    char part[LS__COPY_PATH_MAX];   /* inspect/<name>.part */
    char name[LS_GEN_NAME_MAX];     /* <name> */
} ls__copy_rx_t;

/* The shadow's file as the receiver writes it (shadow.c): receiver thread only, and open/close. */
typedef struct {
    int fd;                       /* shadow/<name> while open, -1 when none */
    uint32_t epoch;               /* its epoch */
    uint64_t generation;          /* its generation (0: no shadow) */
    uint64_t size;                /* bytes [0, size) written contiguously (the valid bytes:
                                     a file taken from the pool is longer, zeros or a pool
                                     file's old bytes past them) */
    uint64_t prepared;            /* the file's size when made (a pool file's, 0: a new one):
                                     bytes below it are overwritten, not appended */
    uint64_t lsn;                 /* last LSN complete in them, as the source said (0: none) */
    uint64_t synced;              /* bytes [0, synced) fdatasynced (<= size) */
    uint64_t synced_lsn;          /* lsn when they were */
    char path[LS__COPY_PATH_MAX]; /* shadow/<name> */
    bool dir_unsynced;            /* made here, shadow/ not synced since: the first sync of its
                                     bytes syncs shadow/ too, before they are acknowledged */
    uint64_t sync_ns;             /* how long its last fdatasync took (ls_copy_shadow_quick) */
    uint64_t sync_end_ns;         /* when it ended (ls_mono_ns) */
    /* The closed generation's checks, run over the shadow's bytes as they are acknowledged
     * (ls_copy_shadow_report) and handed to GEN_TAIL's receive, whose head then needs no reading
     * back: the receive path's SHA-256, seal and stream inspection, begun from byte 0. */
    bool hashing;            /* sha, seal and stream cover [0, hashed) (a shadow made here, not
                                one taken up; false once handed over) */
    uint64_t hashed;         /* bytes fed to them */
    ls_sha256_t *sha;        /* SHA-256 of [0, hashed) (all below the trailer) */
    ls_seal_t *seal;         /* XXH3-128 of [0, hashed) */
    ls_gen_stream_t *stream; /* the inspection of [0, hashed) against ex */
    ls__copy_expect_t x;     /* what the generation must be, fixed when the shadow was made */
    ls_gen_expect_t ex;      /* x for the stream; known_digest is rx.digest (filled at the end) */
    bool ex_lent;            /* the stream reading ex went to the receive: ex stays unchanged
                                until that receive ends (drop_part clears it) */
} ls__copy_shfile_t;

struct ls_copy {
    /* options, copied at open */
    char dir[LS__COPY_PATH_MAX];         /* the copy's directory */
    char inspect_dir[LS__COPY_PATH_MAX]; /* <dir>/inspect */
    char logs_dir[LS__COPY_PATH_MAX];    /* <dir>/logs */
    char store_dir[LS__COPY_PATH_MAX];   /* <dir>/store */
    char shadow_dir[LS__COPY_PATH_MAX];  /* <dir>/shadow (block mode) */
    char pool_dir[LS__COPY_PATH_MAX];    /* <dir>/pool: preallocated .part files (prealloc.h) */
    char prefix[LS_GEN_PREFIX_MAX + 1];  /* generation name prefix */
    ls_copy_options_t o;                 /* options with defaults filled (dir/prefix/dbid unused) */

    pthread_mutex_t mu; /* guards the (mu) fields */
    pthread_cond_t cv;  /* wakes the replayer (CLOCK_MONOTONIC) */

    ls_store_t *store;         /* the copy store; NULL until the database id is known (mu) */
    bool have_dbid;            /* dbid is known (mu) */
    uint8_t dbid[LS_DBID_LEN]; /* the copy's database id (mu) */

    /* the held chain: the last generation durable and inspected (in logs/ or in the store) (mu) */
    uint64_t held_gen;                   /* 0 when nothing held */
    uint32_t held_epoch;                 /* its epoch (0 when none) */
    uint8_t held_digest[LS_DIGEST_SIZE]; /* its digest (zeros when none) */
    uint64_t held_lsn;                   /* its last LSN; 0 when unknown (seeded store) */
    uint64_t durable_gen;                /* last generation reported durable */

    ls_store_meta_t meta; /* cached copy of the store's meta record (mu) */
    uint64_t synced_gen;  /* last generation applied before the last store sync (mu) */

    ls__copy_entry_t *q;    /* generations in logs/ past the store's position, oldest first (mu) */
    size_t qlen;            /* entries in q */
    size_t qcap;            /* capacity of q */
    uint64_t q_bytes;       /* bytes of the queued files */
    uint64_t rx_bytes_done; /* bytes of the file in inspect/ being inspected now (mu) */
    bool rx_inspecting;     /* a file sits in inspect/ being inspected (mu) */

    ls__copy_rx_t rx;      /* the receive in progress (receiver thread only) */
    ls_prealloc_t *pool;   /* ready .part files, NULL when none (set at open; own locking) */
    ls__copy_shfile_t shf; /* the open generation's shadow file, as written (block mode) */
    /* Generations moved into logs/ whose fsync of logs/ is pending: one fsync covers them all
     * (ls__copy_flush_durable), then DURABLE and INSPECTED are reported (receiver thread only). */
    struct {
        uint64_t generation; /* moved into logs/, held, queued */
        uint64_t lsn;        /* its last LSN (the INSPECTED event) */
    } pend[LS__COPY_PEND_MAX];
    size_t npend;          /* entries in pend */
    bool rx_defer;         /* recv_end may leave its fsync pending (ls_copy_recv_defer) */
    uint64_t unsynced_gen; /* first generation in logs/ not yet fsynced into it; 0: none (mu):
                              the replayer applies nothing from it on */
    /* what the replayer knows of the receiver (atomic, relaxed: set by the receiver) */
    bool rx_open;            /* a .part is being received */
    uint64_t rx_activity_ns; /* monotonic ns of the receiver's last begin, data or end */

    ls_copy_state_t state;     /* (mu) */
    char reason[512];          /* why DISK_FULL/FAILED (mu) */
    uint64_t fail_gen;         /* generation of the consecutive failures (mu) */
    uint32_t fail_count;       /* consecutive failed inspections of fail_gen (mu) */
    uint64_t inspect_failures; /* failed inspections since open (mu) */
    uint64_t ask_agains;       /* ASK_AGAIN events since open (mu) */

    pthread_t thread;     /* the replayer */
    bool running;         /* the replayer thread exists */
    bool stop;            /* asks the replayer to finish (mu) */
    bool paused;          /* replay suspended by the operator (mu) */
    bool dirty;           /* applied since the last checkpoint (replayer) */
    uint64_t last_ckpt;   /* monotonic ns of the last checkpoint (replayer) */
    uint64_t replay_txns; /* store transactions committed (mu) */
    uint64_t checkpoints; /* store syncs (mu) */
    bool quiet;           /* during open: no events */
    ls__copy_shadow_t sh; /* block mode: the open generation's shadow (shadow_apply.c) */

    /* Checks computed since open (atomic, relaxed: counted by the receiver and the replayer,
     * read by ls_copy_stats). docs/COPY.md says which runs where. */
    struct {
        uint64_t record_checksums; /* record checksums computed */
        uint64_t digests;          /* generation digests (SHA-256) computed */
        uint64_t digest_bytes;     /* bytes fed to SHA-256 */
        uint64_t seals;            /* whole-file seals computed (receive, restart) */
        uint64_t seal_checks;      /* seals verified by the replayer */
        uint64_t seal_bytes;       /* bytes fed to XXH3-128 for seals and their checks */
        uint64_t logs_syncs;       /* fsyncs of logs/ that made received generations durable */
        uint64_t replay_yields;    /* times the replayer went to nice 19 (receiver busy) */
    } ck;
};

#define LS__COPY_COUNT(c, field, n) __atomic_fetch_add(&(c)->ck.field, (n), __ATOMIC_RELAXED)

/* copy.c */
void ls__copy_emit(ls_copy_t *c, ls_copy_event_kind_t kind, uint64_t gen, uint64_t lsn, int code,
                   const char *msg);
/* Sets state and reason (mu held); returns true when it changed (the caller emits STATE). */
bool ls__copy_set_state(ls_copy_t *c, ls_copy_state_t st, const char *reason);
/* A store error rc while applying (mu not held): DISK_FULL for LS_ENOSPC (the apply is retried),
 * FAILED otherwise, with reason; emits STATE when it changed. */
void ls__copy_store_failed(ls_copy_t *c, int rc, const char *reason);
/* Counts a failed inspection of gen (mu held); true when the copy just went FAILED. */
bool ls__copy_count_failure(ls_copy_t *c, uint64_t gen, const char *why);
int ls__copy_queue_push(ls_copy_t *c, const ls__copy_entry_t *e); /* mu held */
/* The store's initial map: the configured size (64 MiB by default), raised to twice the existing
 * data.mdb so that a store that has grown does not double its map again and again after a restart
 * (each MDB_MAP_FULL aborts and reruns a whole batch). */
uint64_t ls__copy_map_size(const ls_copy_t *c);
/* Opens the store with the known dbid (mu held or single-threaded). */
int ls__copy_open_store(ls_copy_t *c, char *err, size_t errlen);
void ls__copy_path(const ls_copy_t *c, char *out, const char *dir, uint32_t epoch, uint64_t gen);

/* recv.c */
void ls__copy_rx_free(ls_copy_t *c); /* what the receiver keeps between generations */
/* ls_copy_recv_begin without the .part: checks, expectations, hashes reset (rx not active yet).
 * The caller opens rx.fd, then calls ls__copy_rx_opened. */
int ls__copy_rx_begin(ls_copy_t *c, uint32_t epoch, uint64_t gen, uint64_t size, char *err,
                      size_t errlen);
void ls__copy_rx_opened(ls_copy_t *c);
/* The header check of ls_copy_recv_data (another database: FAILED, the receive dropped) once
 * bytes up to the header were taken in another way (a hand-over of the shadow's checks). */
int ls__copy_rx_check_header(ls_copy_t *c, char *err, size_t errlen);
/* Bytes [offset, offset + len) of the generation being received, already in the .part: hashed,
 * sealed, inspected, counted (ls_copy_recv_data after its write). */
int ls__copy_rx_absorb(ls_copy_t *c, uint64_t offset, const void *data, size_t len, char *err,
                       size_t errlen);
/* Closes and deletes the .part; the receive is over. */
void ls__copy_rx_drop(ls_copy_t *c);
/* An I/O error of the receive path (what: the step): drops the .part; ENOSPC makes the copy
 * DISK_FULL. Returns rc with err set. */
int ls__copy_rx_io_failed(ls_copy_t *c, int rc, const char *what, char *err, size_t errlen);
/* Whether gen may be received now (mu held); why is set when not. */
bool ls__copy_rx_wanted(ls_copy_t *c, uint32_t epoch, uint64_t gen, char *why, size_t len);

/* recv_end.c */
/* gen is durable: records it, leaves DISK_FULL, emits DURABLE (mu not held). */
void ls__copy_durable(ls_copy_t *c, uint64_t gen);
/* The pending generations (pend): one fsync of logs/, then DURABLE and INSPECTED for each still
 * held. A failed fsync rolls them back (deleted, asked again; DISK_FULL on ENOSPC). Receiver
 * thread, or close. 0 or the fsync's error with err set (err may be NULL). */
int ls__copy_flush_durable(ls_copy_t *c, char *err, size_t errlen);

/* position.c */
int ls__copy_recover(ls_copy_t *c, char *err, size_t errlen);
/* Deletes logs/ files of generations from..held (mu held) and rolls held back to from-1. */
void ls__copy_rollback(ls_copy_t *c, uint64_t from);
/* Removes replayed-synced logs beyond the newest keep_logs (replayer thread). */
void ls__copy_remove_logs(ls_copy_t *c, uint64_t synced);

/* shadow.c */
void ls__copy_shadow_close(ls_copy_t *c); /* closes its descriptor (the file stays) */
/* A receive whose .part was a link of the shadow ended without the move into logs/: the shadow's
 * file is cut back to the bytes it holds (no sync: a crash leaving the longer file is taken up
 * cut to its last COMMIT). */
void ls__copy_shadow_cut(ls_copy_t *c);
/* Opens the shadow of (epoch, gen) (shadow.c says which file and when shadow/ is synced). */
int ls__copy_shadow_open(ls_copy_t *c, uint32_t epoch, uint64_t gen, char *err, size_t errlen);
/* Feeds the shadow's bytes not yet checked to its running checks (read back, after their
 * acknowledgement). */
void ls__copy_shadow_hash_more(ls_copy_t *c);

/* inspect.c */
/* Inspects the durable file inspect/<name> of (epoch, gen) against the held chain; known_digest
 * (may be NULL: hash it) is the digest computed while receiving. On success moves it into logs/
 * and queues it (INSPECTED emitted); on failure deletes it, counts the failure and emits
 * ASK_AGAIN (and STATE when it went FAILED). Returns 0 or the failure's code, with err set. */
int ls__copy_inspect(ls_copy_t *c, uint32_t epoch, uint64_t gen, const uint8_t *known_digest,
                     char *err, size_t errlen);
/* Expectations of generation gen of epoch against the held chain (mu held). */
void ls__copy_expect(ls_copy_t *c, uint32_t epoch, uint64_t gen, ls__copy_expect_t *x);
/* Checks buf[0, len) against x and fills e, its seal included. Hashes unless x->has_known;
 * trust_trailer takes the trailer's own digest as known (structure, checksums and chain checked,
 * no hash: for files in logs/, whose digest was checked at inspection). Counts what it computes
 * in c->ck. 0 or the LS_E* code with msg set. */
int ls__copy_check_buf(ls_copy_t *c, ls__copy_expect_t *x, const uint8_t *buf, size_t len,
                       bool trust_trailer, ls__copy_entry_t *e, char *msg, size_t msglen);
/* Fills e from a scan's findings and the file's seal; checks a seeded store's first LSN. */
int ls__copy_entry_from(const ls__copy_expect_t *x, const ls_gen_info_t *info, size_t len,
                        const uint8_t seal[LS_SEAL_LEN], ls__copy_entry_t *e, char *msg,
                        size_t msglen);
/* Concludes the inspection of the durable inspect/<name> of (epoch, gen), or of the fdatasynced
 * file from (the receive's .part; NULL: inspect/<name>): rc 0 moves it into logs/ (rename, fsync
 * of logs/) and queues e (with from: the fsync, DURABLE and INSPECTED are left pending in pend
 * while the receiver defers and pend has room, else done for every pending one); otherwise, or when
 * the move fails, deletes it and asks again (ASK_AGAIN; STATE when it went FAILED). msg says why
 * rc. Returns 0 or the failure's code. */
int ls__copy_conclude(ls_copy_t *c, uint32_t epoch, uint64_t gen, int rc, const ls__copy_entry_t *e,
                      const uint8_t *header_dbid, const char *msg, const char *from, char *err,
                      size_t errlen);
/* Makes e the last held generation (mu held). */
void ls__copy_hold(ls_copy_t *c, const ls__copy_entry_t *e);

/* shadow_apply.c */
/* Frees the replayer's walk of the shadow (close). */
void ls__copy_shadow_free(ls_copy_t *c);
/* True when the shadow has complete transactions to apply early now (mu held). When it has some
 * but waits for the reports to be quiet (lazy), *wait_ns is lowered to when it will be due. */
bool ls__copy_shadow_due(ls_copy_t *c, uint64_t *wait_ns);
/* Applies what the shadow durably holds past the store's position (replayer thread, mu not
 * held). 0, or an error after which the replayer waits before trying again. */
int ls__copy_shadow_apply(ls_copy_t *c);
/* Before the closed generation e (read into buf) is applied over a store that applied its shadow
 * early (m): the bytes [0, m->shadow_end) must have the seal the store recorded. 0 when they do
 * or nothing was applied early; LS_EDIVERGED after making the copy FAILED with the reason. */
int ls__copy_shadow_check(ls_copy_t *c, const ls__copy_entry_t *e, const uint8_t *buf, size_t len,
                          const ls_store_meta_t *m);

/* replay.c */
void *ls__copy_replayer(void *arg);
int ls__copy_checkpoint(ls_copy_t *c);

#endif
