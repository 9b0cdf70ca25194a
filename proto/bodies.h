/*
 * proto: one struct per frame body (the layouts proto/PROTOCOL.md gives byte by byte) and
 * ls_frame_t, the frame the codec (proto/proto.h) encodes and decodes. Decoded byte and string
 * fields point into the received buffer (proto.h says how long they are valid).
 */
#ifndef LS_PROTO_BODIES_H
#define LS_PROTO_BODIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/defs.h"

/* ---- bodies -----------------------------------------------------------------------------------
 */
/* A string on the wire: u16 length + bytes, no NUL inside. Decoded: points into the input. */
typedef struct {
    const char *ptr; /* bytes (not NUL-terminated); may be NULL when len is 0 */
    size_t len;      /* bytes; each field has its bound (LS_PROTO_*_MAX) */
} ls_proto_str_t;

/* A C string as an ls_proto_str_t (borrows s). */
static inline ls_proto_str_t ls_proto_str(const char *s)
{
    ls_proto_str_t r = {s, s ? strlen(s) : 0};
    return r;
}

typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN]; /* database id */
    ls_proto_str_t name;             /* database name for messages, <= LS_PROTO_DBNAME_MAX */
} ls_proto_db_t;

typedef struct {
    uint16_t version_min; /* oldest protocol version the client speaks, >= 1 */
    uint16_t version_max; /* newest, >= version_min */
    uint8_t purpose;      /* ls_proto_purpose_t */
    uint32_t features;    /* LS_FEAT_* bits the client offers */
    int8_t zstd_level;    /* zstd level wanted when LS_FEAT_ZSTD is offered */
    uint32_t db_window;   /* initial credit per database the client grants as a data receiver
                             (seed connections), bytes, <= LS_PROTO_WINDOW_MAX; 0: default */
    uint32_t conn_window; /* same for the whole connection; 0: LS_PROTO_CONN_WINDOW_DEFAULT */
    ls_proto_str_t node;  /* client node name, 1..LS_PROTO_NODE_MAX */
    uint16_t db_count;    /* entries used in dbs, <= LS_PROTO_DB_MAX (1 to seed) */
    ls_proto_db_t dbs[LS_PROTO_DB_MAX]; /* databases the client wants to replicate or seed */
} ls_proto_hello_t;

typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN]; /* database id, as in HELLO */
    uint8_t status;                  /* ls_proto_db_status_t */
    int32_t code;                    /* 0 when accepted, else a negative LS_E* code */
    ls_proto_str_t reason;           /* why refused, <= LS_PROTO_REASON_MAX; empty if accepted */
} ls_proto_db_result_t;

typedef struct {
    uint16_t version;     /* chosen protocol version */
    uint32_t features;    /* accepted LS_FEAT_* bits (subset offered) */
    int8_t zstd_level;    /* zstd level to use when LS_FEAT_ZSTD accepted */
    uint32_t db_window;   /* initial credit per database the server grants as a data receiver
                             (ship connections), bytes, <= LS_PROTO_WINDOW_MAX; 0: default */
    uint32_t conn_window; /* same for the whole connection; 0: LS_PROTO_CONN_WINDOW_DEFAULT */
    ls_proto_str_t node;  /* server node name, 1..LS_PROTO_NODE_MAX */
    uint16_t db_count;    /* entries used in dbs, <= LS_PROTO_DB_MAX */
    ls_proto_db_result_t dbs[LS_PROTO_DB_MAX]; /* one answer per database of the HELLO */
} ls_proto_welcome_t;

typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN]; /* database concerned; all zeros: the whole connection */
    int32_t code;                    /* negative LS_E* code */
    ls_proto_str_t message;          /* what and where, <= LS_PROTO_MSG_MAX */
} ls_proto_error_t;

typedef struct {
    uint64_t seq;           /* sender's heartbeat counter, 1, 2, 3 ... */
    uint64_t send_ns;       /* sender's wall clock when sending, UTC ns */
    uint64_t echo_ns;       /* send_ns of the last heartbeat received from the peer, 0 if none */
    uint64_t echo_delay_ns; /* ns between receiving that heartbeat and sending this one */
} ls_proto_heartbeat_t;

typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN];          /* database id */
    uint32_t epoch;                           /* epoch of the last generation held, 0: none */
    uint64_t next_generation;                 /* first generation the target wants, >= 1 */
    uint8_t last_digest[LS_PROTO_DIGEST_LEN]; /* digest of next_generation-1, zeros if none */
    uint64_t last_lsn;                        /* last LSN held, 0 if none */
} ls_proto_resume_t;

/* RE_OFFER flags. */
#define LS_REOFFER_HOLD        0x1u /* ship nothing for the database until the next RE_OFFER */
#define LS_REOFFER_REPLACED    0x2u /* the copy was replaced (seeded): forget its acknowledgements */
#define LS_REOFFER_FLAGS_KNOWN 0x3u

typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN]; /* database id, one of this connection's HELLO entries */
    uint32_t flags;                  /* LS_REOFFER_* bits */
    ls_proto_str_t reason;           /* why, for logs and status, <= LS_PROTO_REASON_MAX */
} ls_proto_re_offer_t;

/* EPOCH: what the sender knows of a database's history (PROTOCOL.md, EPOCH). */
typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN]; /* database id, one of this connection's HELLO entries */
    uint32_t epoch;                  /* the newest epoch the sender knows of, >= 1 */
    uint64_t first_generation;       /* the first generation of that epoch (0: not known) */
    ls_proto_str_t active;           /* the node that activated it, 0..LS_PROTO_NODE_MAX ("":
                                        unknown) */
} ls_proto_epoch_t;

/* ---- planned switchover (PROTOCOL.md, "Switchover"): its own block, kept apart for merges ---- */
/* SWITCHOVER: the active, holding the database (no commit since), asks the copy on this
 * connection to activate: it must hold and have replayed exactly up to last_generation. */
typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN]; /* database id, one of this connection's HELLO entries */
    uint32_t epoch;                  /* the epoch the copy is to start (the sender's + 1), >= 2 */
    uint64_t last_generation;        /* the last generation of the sender's epoch, >= 1 */
    uint64_t last_lsn;               /* the last LSN in it (0: none written yet) */
    uint64_t last_close_ns;          /* its close time, ns since 1970 UTC */
} ls_proto_switchover_t;

/* SWITCHOVER_DONE: the copy's answer. code 0: active in epoch from first_generation on; else a
 * negative LS_E* code (LS_ESTATE refused: nothing changed there) and the message says why. */
typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN]; /* as in SWITCHOVER */
    int32_t code;                    /* 0 activated, else a negative LS_E* code */
    uint32_t epoch;                  /* code 0: the epoch started (>= 2); else 0 */
    uint64_t first_generation;       /* code 0: its first generation (>= 1); else 0 */
    ls_proto_str_t message;          /* the report or the refusal, <= LS_PROTO_MSG_MAX */
} ls_proto_switchover_done_t;
/* ---- end of the switchover block ---- */

typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN]; /* database id; all zeros: the connection-wide window */
    uint32_t bytes;                  /* window increment, bytes of data payload, >= 1 */
} ls_proto_credit_t;

/* COPY_STATE flags. */
#define LS_COPY_SUSPENDED        0x1u /* the sender's operator suspended the copy (shipping) */
#define LS_COPY_REPLAY_SUSPENDED 0x2u /* the sender's operator suspended replay (passive only) */
#define LS_COPY_APPLY                                                                              \
    0x4u /* source only, on a connection with LS_FEAT_APPLY: a commit waits for the copy's         \
            applied position (remote_applied): apply the shadow early */
#define LS_COPY_FLAGS_KNOWN 0x7u

typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN]; /* database id */
    uint32_t flags;                  /* LS_COPY_* bits set by the sender's operator */
    uint64_t since_ns;               /* when the sender's suspension began, UTC ns (0: none) */
    uint64_t last_generated;         /* source only: newest closed generation (0 otherwise) */
    uint64_t last_generated_ns;      /* source only: its close time, UTC ns (source's clock) */
    uint64_t queue_count;            /* source only: generations after the target's durable */
    uint64_t queue_bytes;            /* source only: their bytes */
    uint64_t queue_oldest_ns;        /* source only: close time of the first of them (0: none) */
    ls_proto_str_t comment;          /* the operator's comment, <= LS_PROTO_REASON_MAX */
} ls_proto_copy_state_t;

typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN]; /* database id */
    uint32_t epoch;                  /* epoch of the generation */
    uint64_t generation;             /* generation number, >= 1 */
    uint64_t size;                   /* total file size, bytes */
    uint64_t close_ns;               /* close time of the generation, UTC ns (from its trailer) */
    uint64_t start; /* GEN_TAIL only (0 in GEN_BEGIN): bytes [0, start) come from the target's
                       shadow, GEN_DATA from start; 1 <= start <= size - trailer */
} ls_proto_gen_begin_t;

typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN]; /* database id */
    uint64_t generation;             /* generation number */
    uint64_t offset;                 /* file offset of data[0], bytes */
    const uint8_t *data;             /* chunk bytes; decoded: points into the input buffer */
    uint32_t len;                    /* bytes in data, 1..LS_FRAME_CHUNK_MAX */
} ls_proto_gen_data_t;

typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN];     /* database id */
    uint64_t generation;                 /* generation number */
    uint8_t digest[LS_PROTO_DIGEST_LEN]; /* the generation's digest (its trailer's SHA-256) */
} ls_proto_gen_end_t;

/* BLOCK: bytes [offset, offset + len) of the active's open generation, every one of them durable
 * on the active (block mode, docs/BLOCKMODE.md). */
typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN]; /* database id */
    uint32_t epoch;                  /* epoch of the open generation, >= 1 */
    uint64_t generation;             /* the open generation, >= 1 */
    uint64_t offset;                 /* file offset of data[0], bytes (the header is at 0) */
    uint64_t durable_lsn;            /* last LSN complete in [0, offset + len) (0: none known) */
    const uint8_t *data;             /* chunk bytes; decoded: points into the input buffer */
    uint32_t len;                    /* bytes in data, 1..LS_FRAME_CHUNK_MAX */
} ls_proto_block_t;

/* BLOCK_ACK: what the copy holds durably of the open generation, and what its store holds. */
typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN]; /* database id */
    uint32_t epoch;                  /* epoch of the shadow's generation, >= 1 */
    uint64_t generation;             /* the shadow's generation, >= 1 */
    uint64_t offset;                 /* bytes [0, offset) of it fdatasynced in the shadow */
    uint64_t durable_lsn;            /* the copy holds every record up to it durably */
    uint64_t applied_lsn;            /* the copy's store holds every record up to it */
} ls_proto_block_ack_t;

/* DURABLE and INSPECTED. */
typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN]; /* database id */
    uint64_t generation;             /* generation now durable / inspected on the target */
} ls_proto_gen_ack_t;

/* REPLAYED and REPLAYED_SYNCED. */
typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN]; /* database id */
    uint64_t generation;             /* last generation replayed (synced) into the copy store */
    uint64_t lsn;                    /* last LSN replayed (synced) */
} ls_proto_replayed_t;

typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN]; /* database id */
    uint64_t generation;             /* resend from this generation on */
    int32_t code;                    /* why: negative LS_E* code of the failed inspection */
    ls_proto_str_t message;          /* inspector's verdict, <= LS_PROTO_MSG_MAX */
} ls_proto_ask_again_t;

typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN];          /* database id */
    uint64_t total_bytes;                     /* snapshot size, bytes */
    uint64_t last_lsn;                        /* last LSN L the snapshot holds */
    uint64_t generation;                      /* generation N containing L; ask for N next */
    uint8_t prev_digest[LS_PROTO_DIGEST_LEN]; /* digest of N-1, zeros when N is 1 */
    uint32_t epoch;                           /* epoch of generation N */
} ls_proto_seed_begin_t;

typedef struct {
    uint64_t offset;     /* offset of data[0] in the snapshot stream, bytes */
    const uint8_t *data; /* chunk bytes; decoded: points into the input buffer */
    uint32_t len;        /* bytes in data, 1..LS_FRAME_CHUNK_MAX */
} ls_proto_seed_data_t;

typedef struct {
    uint8_t digest[LS_PROTO_DIGEST_LEN]; /* SHA-256 of the whole snapshot stream */
} ls_proto_seed_end_t;

/* CHAIN_REQ: the seed client asks for the server's chain of closed generations. */
typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN]; /* database id, the seed connection's */
    uint64_t from_generation;        /* the first generation wanted, >= 1 */
} ls_proto_chain_req_t;

/* One closed generation of a chain. */
typedef struct {
    uint32_t epoch;                      /* its epoch (from its name), >= 1 */
    uint64_t generation;                 /* its number, >= 1 */
    uint8_t digest[LS_PROTO_DIGEST_LEN]; /* its trailer's digest */
} ls_proto_link_t;

/* CHAIN: the server's closed generations from the asked one on, sorted, at most
 * LS_PROTO_CHAIN_MAX (a full frame: ask again from the last one + 1). */
typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN]; /* database id */
    uint32_t epoch;                  /* the newest epoch the server knows, >= 1 */
    ls_proto_str_t active;           /* who activated it, 0..LS_PROTO_NODE_MAX */
    uint16_t count;                  /* entries, <= LS_PROTO_CHAIN_MAX */
    const ls_proto_link_t *links;    /* encode: the caller's array (count entries), or NULL to
                                        encode from raw (a decoded frame re-encodes) */
    const uint8_t *raw;              /* decode: the entries' bytes in the input (44 each, checked:
                                        read them with ls_proto_chain_link) */
} ls_proto_chain_t;

/* RESYNC flags. */
#define LS_RESYNC_MORE        0x1u /* more RESYNC frames (keys) follow */
#define LS_RESYNC_FLAGS_KNOWN 0x1u

/* RESYNC: the seed client's request for an incremental resync from the split point, with (a
 * part of) the keys its diverged generations touched: a sequence of u16 length
 * (1..LS_PROTO_KEY_MAX)
 * + key bytes, whole keys in each frame. */
typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN];           /* database id */
    uint32_t flags;                            /* LS_RESYNC_* */
    uint64_t split_generation;                 /* the last generation both hold, >= 1 */
    uint32_t split_epoch;                      /* its epoch, >= 1 */
    uint8_t split_digest[LS_PROTO_DIGEST_LEN]; /* its digest */
    const uint8_t *keys; /* the key sequence; decoded: points into the input */
    uint32_t keys_len;   /* bytes, 0..LS_FRAME_CHUNK_MAX */
} ls_proto_resync_t;

/* RESYNC_BEGIN: the key stream starts (SEED_DATA and SEED_END carry it). The hand-off fields
 * are SEED_BEGIN's. */
typedef struct {
    uint8_t dbid[LS_PROTO_DBID_LEN];          /* database id */
    uint64_t total_bytes;                     /* stream size, bytes */
    uint64_t last_lsn;                        /* L: the snapshot's last LSN */
    uint64_t generation;                      /* N, the generation holding L: ask for N next */
    uint8_t prev_digest[LS_PROTO_DIGEST_LEN]; /* digest of N-1 */
    uint32_t epoch;                           /* epoch of N */
    uint64_t txid;                            /* txid of L's transaction */
    uint64_t split_generation;                /* the split the stream starts from */
    uint64_t keys;                            /* entries in the stream */
    uint64_t store_bytes;                     /* the server's store size, bytes (the report) */
} ls_proto_resync_begin_t;

/* One frame: type selects the member. */
typedef struct {
    uint8_t type; /* ls_frame_type_t */
    union {
        ls_proto_hello_t hello;
        ls_proto_welcome_t welcome;
        ls_proto_error_t error;
        ls_proto_heartbeat_t heartbeat;
        ls_proto_resume_t resume;
        ls_proto_credit_t credit;
        ls_proto_copy_state_t copy_state;
        ls_proto_re_offer_t re_offer;
        ls_proto_epoch_t epoch;
        ls_proto_gen_begin_t gen_begin;
        ls_proto_gen_data_t gen_data;
        ls_proto_gen_end_t gen_end;
        ls_proto_block_t block;
        ls_proto_block_ack_t block_ack;
        ls_proto_gen_ack_t durable;
        ls_proto_gen_ack_t inspected;
        ls_proto_replayed_t replayed;
        ls_proto_replayed_t replayed_synced;
        ls_proto_ask_again_t ask_again;
        ls_proto_seed_begin_t seed_begin;
        ls_proto_seed_data_t seed_data;
        ls_proto_seed_end_t seed_end;
        ls_proto_chain_req_t chain_req;
        ls_proto_chain_t chain;
        ls_proto_resync_t resync;
        ls_proto_resync_begin_t resync_begin;
        ls_proto_switchover_t switchover;           /* switchover block */
        ls_proto_switchover_done_t switchover_done; /* switchover block */
    };
} ls_frame_t;

#endif
