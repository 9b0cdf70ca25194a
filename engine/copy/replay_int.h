/*
 * The replayer's batch, shared by its three files (not public): replay.c (the thread: what is
 * ready, checkpoints, the queue), replay_read.c (reading a batch's files and checking them
 * against what the inspection saw) and replay_apply.c (the batch's records sorted by key and
 * applied in one store transaction with the meta record).
 */
#ifndef LS_COPY_REPLAY_INT_H
#define LS_COPY_REPLAY_INT_H

#include "copy/copy_int.h"

#define LS__COPY_REPLAY_MAX 64 /* generations per store transaction, at most */
#define CHUNK_GENS          16 /* generations read, checked and sorted at once (a chunk) */
#define CHUNK_BYTES                                                                                \
    (8ull * 1024 * 1024)           /* bytes of log per chunk, about (one                           \
                                      generation is always allowed) */
#define RX_QUIET_NS  5000000ull    /* the receiver counts as busy this long after its last call */
#define YIELD_MAX_NS 1000000000ull /* a batch queued longer ago than this does not yield */
#define YIELD_NICE   19            /* the replayer's nice value while it yields */

/* One PUT or DEL of a batch, pointing into the batch's buffer; ops[i] is the batch's i-th. */
typedef struct {
    const uint8_t *key;   /* the record's key */
    const uint8_t *value; /* PUT: its value */
    uint32_t key_len;     /* bytes */
    uint32_t value_len;   /* bytes */
    uint8_t type;         /* LS_REC_PUT or LS_REC_DEL */
} op_t;

/* What the sort moves: 24 bytes per operation, ordered without touching the keys in most
 * comparisons (the keys of a batch usually differ within 16 bytes of their common prefix). */
typedef struct {
    uint64_t k0;  /* key bytes [lcp, lcp + 8) big-endian, zero padded (lcp: the batch's common
                     prefix) */
    uint64_t k1;  /* key bytes [lcp + 8, lcp + 16), the same */
    uint32_t seq; /* index in ops: the batch's order, the later of two writes of a key wins */
    uint32_t len; /* key_len << 1 | 1 when the key has bytes past lcp + 16 */
} skey_t;

/* One store transaction of the replayer: a sequence of chunks, each read into memory, checked,
 * sorted and applied before the next is read into the same buffer. */
typedef struct {
    ls__copy_entry_t e[CHUNK_GENS]; /* the chunk's generations, oldest first */
    const uint8_t *buf[CHUNK_GENS]; /* their bytes, in arena */
    size_t len[CHUNK_GENS];         /* their lengths */
    size_t n;                       /* generations in the chunk */
    size_t ok;                      /* leading generations of the chunk verified */
    size_t done;                    /* generations applied in this transaction by its chunks, the
                                       queue's first (the current chunk's once applied) */
    uint64_t done_bytes;            /* their bytes */
    uint64_t first_gen;             /* the transaction's first generation */
    uint64_t txn_ops;               /* operations applied in this transaction */
    uint64_t tree_pages;            /* the store's data pages when it began */
    ls_store_meta_t base;           /* the store's meta before the transaction */
    ls_store_meta_t *nm;            /* the meta the transaction writes: base + the chunks applied */
    unsigned attempts;              /* times the store ran the transaction (MDB_MAP_FULL reruns) */
    int dmg_rc;                     /* a generation failed its check: its code (0: none) */
    uint64_t dmg_gen;               /* that generation */
    char dmg_msg[512];              /* and why */
    uint64_t base_lsn;              /* records with LSN <= base_lsn are already in the store */
    ls_copy_t *c;                   /* the copy (counters) */
    ls_seal_t *seal;                /* for the seal checks (kept) */
    ls_gen_stream_t *st;            /* the apply pass's parser (kept) */
    uint8_t *arena;   /* the batch's files, one after another (kept between batches, freed
                         when the replayer goes idle) */
    size_t arena_cap; /* its capacity, bytes */
    op_t *ops;        /* the batch's operations in batch order */
    skey_t *keys;     /* their sort keys, sorted before the transaction */
    size_t nops;      /* operations collected */
    size_t ops_cap;   /* capacity of ops and keys (kept between batches) */
    size_t lcp;       /* bytes every key of the batch starts with */
    int nice;         /* the thread's own nice value (when not yielding) */
    bool may_yield;   /* the thread can return to nice (RLIMIT_NICE, CAP_SYS_NICE) */
    bool yielding;    /* the replayer thread runs at YIELD_NICE now */
    bool ops_failed;  /* no memory for ops: applied in LSN order instead */
} batch_t;

/* Reads the chunk's b->n files in order, each checked against its seal and the chain from the
 * store's position m; b->ok counts the good prefix. On the first bad one returns its code with msg
 * set (replay_read.c). */
int ls__copy_replay_verify(ls_copy_t *c, batch_t *b, const ls_store_meta_t *m, char *msg,
                           size_t msglen);

/* Frees the batch's file buffer (replay_read.c). */
void ls__copy_replay_arena_free(batch_t *b);

/* Applies the chunk read (its verified prefix b->ok) in one store transaction with its meta
 * record *nm (the store's position before, updated to after), and while more generations are
 * ready in the queue, within batch_generations, batch_bytes and batch_pages, further chunks in
 * the same transaction: b->done generations in all. A generation that fails its check ends the
 * transaction before it (b->dmg_*). A store error sets the copy's state and is returned
 * (replay_apply.c). */
int ls__copy_replay_apply(ls_copy_t *c, batch_t *b, ls_store_meta_t *nm);

/* The next chunk of the transaction: the generations of the queue after its first b->done that
 * are ready (durable in logs/, past their replay lag, the copy neither paused, failed nor
 * stopping), within the chunk's and the transaction's bounds, copied into b->e (b->n); 0 when
 * none. Takes mu (replay.c). */
size_t ls__copy_replay_next(ls_copy_t *c, batch_t *b);

/* The replayer yields the CPU to the receiver: while the receiver is busy (a .part open, or its
 * last call less than RX_QUIET_NS ago) and the batch's first generation was queued less than
 * YIELD_MAX_NS ago, the thread runs at nice YIELD_NICE (the scheduler gives it ~1.5 % of a CPU
 * against a thread at nice 0: it runs when the receiver waits for the disk or a core is free),
 * otherwise at its own nice value; allowed false: back to it (before mu is taken, so the receiver
 * never waits for a lock held by a low-priority thread). Called around the batch's reading and
 * checking (replay.c), around its sort and store transaction and every YIELD_OPS operations of
 * the transaction (replay_apply.c). */
void ls__copy_replay_yield(batch_t *b, bool allowed);

#endif
