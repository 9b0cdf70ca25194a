/*
 * proto: the wire protocol's frame codec. Frames in and out of byte buffers; no sockets, no
 * event loop, no allocation.
 *
 * Every frame is the envelope of proto/frame.h (8-byte header, body, optional checksum added by
 * the transport) around one of the bodies below. proto/PROTOCOL.md documents every byte, who
 * sends each frame, when, and what the receiver does with it.
 *
 * Lifecycle: none. The caller fills an ls_frame_t (type + the matching member) and encodes it
 * into a buffer of its own; or it hands a received buffer to ls_frame_decode(), which fills an
 * ls_frame_t whose byte and string fields POINT INTO THAT BUFFER (zero-copy): they are valid
 * while the buffer is, and are not NUL-terminated. The decoder never allocates and never trusts
 * a length from the input: each length is checked against the bytes left and its bound first.
 *
 * Threading: every function is reentrant; an ls_frame_t belongs to one thread at a time.
 */
#ifndef LS_PROTO_PROTO_H
#define LS_PROTO_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "proto/frame.h"

/* ---- versions, bounds, defaults ------------------------------------------------------------ */
#define LS_PROTO_MAGIC           "LSHP" /* 4 bytes at HELLO offset 0 */
#define LS_PROTO_VERSION_MIN     1      /* oldest protocol version this build speaks */
#define LS_PROTO_VERSION_MAX     5      /* newest protocol version this build speaks */
#define LS_PROTO_VERSION_REOFFER 2      /* first version with RE_OFFER (PROTOCOL.md, versions) */
#define LS_PROTO_VERSION_EPOCH   3      /* first version with EPOCH (PROTOCOL.md, versions) */
#define LS_PROTO_VERSION_RESYNC  4 /* first version with CHAIN_REQ, CHAIN, RESYNC, RESYNC_BEGIN */
#define LS_PROTO_VERSION_BLOCK   5 /* first version with BLOCK, BLOCK_ACK (with LS_FEAT_BLOCK) */
#define LS_PROTO_CHAIN_MAX       1024 /* generations in one CHAIN frame */
/* ---- planned switchover (PROTOCOL.md, "Switchover"): its own block, kept apart for merges ---- */
#define LS_PROTO_VERSION_SWITCHOVER 5 /* first version with SWITCHOVER, SWITCHOVER_DONE */
/* ---- end of the switchover block ---- */
#define LS_PROTO_KEY_MAX 511 /* a key in RESYNC, bytes (logfmt.h LS_KEY_MAX) */

#define LS_PROTO_DBID_LEN   16 /* database id, bytes */
#define LS_PROTO_DIGEST_LEN 32 /* SHA-256 digest, bytes */
#define LS_PROTO_GEN_TRAILER_LEN                                                                   \
    96 /* a generation file's trailer, bytes (logfmt's LS_GEN_TRAILER_SIZE) */
#define LS_PROTO_NODE_MAX   64   /* node name, bytes (1..64) */
#define LS_PROTO_DBNAME_MAX 64   /* database name, bytes (0..64) */
#define LS_PROTO_REASON_MAX 256  /* per-database refusal reason in WELCOME, bytes */
#define LS_PROTO_MSG_MAX    1024 /* ERROR and ASK_AGAIN message, bytes */
#define LS_PROTO_DB_MAX     256  /* databases in one HELLO or WELCOME */

#define LS_PROTO_DB_WINDOW_DEFAULT    (4u * 1024u * 1024u)  /* per-database credit window, bytes */
#define LS_PROTO_CONN_WINDOW_DEFAULT  (16u * 1024u * 1024u) /* connection-wide window, bytes */
#define LS_PROTO_WINDOW_MAX           (1u << 30) /* no window may exceed 1 GiB outstanding */
#define LS_PROTO_HEARTBEAT_MS         1000       /* heartbeat interval, ms */
#define LS_PROTO_HEARTBEAT_TIMEOUT_MS 5000       /* no frame for this long: the path is dead, ms */
#define LS_PROTO_HANDSHAKE_TIMEOUT_MS 10000      /* HELLO and WELCOME must each arrive within, ms */
#define LS_PROTO_ASK_AGAIN_MAX        3          /* asks for one generation before the copy Fails */
#define LS_PROTO_ZSTD_LEVEL_DEFAULT   3 /* what zstd_level 0 means: zstd's own default level */

/* Frame types, grouped by family in blocks of 16 so each family has room to grow. A receiver
 * rejects a type it does not know (LS_EPROTO): new types come with a new protocol version. */
typedef enum {
    /* 0x01..0x0f connection */
    LS_FRAME_HELLO = 0x01,     /* client -> server: first frame on every connection */
    LS_FRAME_WELCOME = 0x02,   /* server -> client: answer to HELLO */
    LS_FRAME_ERROR = 0x03,     /* either way: an error for a database or the whole connection */
    LS_FRAME_HEARTBEAT = 0x04, /* either way: liveness, RTT and clock offset */
    /* 0x10..0x1f flow */
    LS_FRAME_RESUME = 0x10,     /* target -> source: where the target stands, "ship from here" */
    LS_FRAME_CREDIT = 0x11,     /* data receiver -> data sender: more bytes may be in flight */
    LS_FRAME_COPY_STATE = 0x12, /* either way: a copy's operator state and the source's figures */
    LS_FRAME_RE_OFFER = 0x13,   /* target -> source (version >= 2): plan this one database anew */
    LS_FRAME_EPOCH = 0x14,      /* either way (version >= 3): the newest epoch the sender knows */
    LS_FRAME_CHAIN_REQ = 0x15,  /* seed client -> server (version >= 4): send your chain */
    LS_FRAME_CHAIN = 0x16,      /* seed server -> client (version >= 4): (epoch, gen, digest)s */
    /* planned switchover (version >= 5, PROTOCOL.md, "Switchover") */
    LS_FRAME_SWITCHOVER = 0x17,      /* active -> copy: activate now, you hold everything */
    LS_FRAME_SWITCHOVER_DONE = 0x18, /* copy -> active: activated (epoch, first generation) or
                                        refused (code, message) */
    /* 0x20..0x2f shipping */
    LS_FRAME_GEN_BEGIN = 0x20, /* source -> target: a generation starts */
    LS_FRAME_GEN_DATA = 0x21,  /* source -> target: a chunk of it */
    LS_FRAME_GEN_END = 0x22,   /* source -> target: it is complete, with its digest */
    LS_FRAME_BLOCK = 0x23,     /* source -> target (version >= 5, LS_FEAT_BLOCK): durable bytes
                                  of the active's open generation (block mode) */
    LS_FRAME_GEN_TAIL = 0x24,  /* source -> target (version >= 5, LS_FEAT_TAIL): a generation
                                  starts whose first bytes the target's shadow holds */
    /* 0x30..0x3f acknowledgements */
    LS_FRAME_DURABLE = 0x30,         /* target -> source: generation fsynced on the target */
    LS_FRAME_INSPECTED = 0x31,       /* target -> source: generation passed inspection */
    LS_FRAME_REPLAYED = 0x32,        /* target -> source: copy store holds the generation */
    LS_FRAME_REPLAYED_SYNCED = 0x33, /* target -> source: copy store synced past it */
    LS_FRAME_ASK_AGAIN = 0x34,       /* target -> source: resend from this generation on */
    LS_FRAME_BLOCK_ACK = 0x35,       /* target -> source (version >= 5): the shadow's position */
    /* 0x40..0x4f seeding */
    LS_FRAME_SEED_BEGIN = 0x40,   /* seed source -> seeded node: a snapshot starts */
    LS_FRAME_SEED_DATA = 0x41,    /* seed source -> seeded node: a chunk of it */
    LS_FRAME_SEED_END = 0x42,     /* seed source -> seeded node: it is complete */
    LS_FRAME_RESYNC = 0x43,       /* seeded node -> seed source (version >= 4): resync from split */
    LS_FRAME_RESYNC_BEGIN = 0x44, /* seed source -> seeded node (version >= 4): the key stream */
} ls_frame_type_t;

/* Header flag bits (frame.h: receivers reject unknown bits). */
#define LS_FRAME_FLAG_ZSTD                                                                         \
    0x01u /* body is one zstd frame; only after WELCOME accepted LS_FEAT_ZSTD.                     \
             The transport decompresses (to at most LS_FRAME_MAX_BODY bytes),                      \
             clears the bit, then calls ls_frame_decode_body() */
#define LS_FRAME_FLAGS_KNOWN LS_FRAME_FLAG_ZSTD

/* HELLO feature bits. A server ignores bits it does not know and answers with the subset it
 * accepts, so new features need no new version. */
#define LS_FEAT_ZSTD                                                                               \
    0x00000001u /* per-frame zstd compression (LS_FRAME_FLAG_ZSTD), at zstd_level */
#define LS_FEAT_CKSUM 0x00000002u /* per-frame checksum (frame.h); required when TLS is off */
#define LS_FEAT_BLOCK                                                                              \
    0x00000004u /* ship connections, version >= 5: block mode, the open generation streamed as it  \
                   becomes durable (BLOCK, BLOCK_ACK; docs/BLOCKMODE.md) */
#define LS_FEAT_TAIL                                                                               \
    0x00000010u /* ship connections, version >= 5 with LS_FEAT_BLOCK: a closed generation whose    \
                   head the target's shadow holds starts with GEN_TAIL (docs/BLOCKMODE.md) */
#define LS_FEAT_RESYNC                                                                             \
    0x00000008u /* seed connections, version >= 4: the client asks for an incremental resync       \
                   (CHAIN_REQ, RESYNC) before the server takes anything (PROTOCOL.md §10) */

/* Connection purpose in HELLO. */
typedef enum {
    LS_PURPOSE_SHIP = 1, /* the client is a source shipping generations to the server */
    LS_PURPOSE_SEED = 2  /* the client is a node being seeded from the server (one database) */
} ls_proto_purpose_t;

/* WELCOME per-database answer. */
typedef enum {
    LS_DB_REFUSED = 0, /* see code and reason */
    LS_DB_ACCEPTED = 1
} ls_proto_db_status_t;

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
#define LS_COPY_FLAGS_KNOWN      0x3u

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

/* The envelope's header (frame.h), decoded. */
typedef struct {
    uint32_t body_len; /* bytes of body after the 8-byte header, <= LS_FRAME_MAX_BODY */
    uint8_t type;      /* ls_frame_type_t, known */
    uint8_t flags;     /* LS_FRAME_FLAG_* bits, only known ones */
} ls_frame_header_t;

/* ---- functions --------------------------------------------------------------------------------
 */
/* Entry i (< c->count) of a CHAIN, decoded (from raw) or as given (links). */
void ls_proto_chain_link(const ls_proto_chain_t *c, size_t i, ls_proto_link_t *out);

/* Walks the key sequence of a RESYNC (u16 length + bytes each): the key at *off (advanced past
 * it) in *key / *len; false at the end. The decoder checked the sequence is whole. */
bool ls_proto_resync_key(const uint8_t *keys, size_t keys_len, size_t *off, const uint8_t **key,
                         size_t *len);
/* "HELLO", "GEN_DATA", ...; "UNKNOWN" for a type this build does not know. Static storage. */
const char *ls_frame_type_name(uint8_t type);

/* Writes the 8-byte envelope header (reserved bytes zero). */
void ls_frame_header_encode(const ls_frame_header_t *h, uint8_t out[LS_FRAME_HEADER_SIZE]);

/* Decodes and validates the 8-byte header at buf. Reads nothing past buf[7] (the body need not
 * be there yet: a reader decodes the header, then waits for body_len more bytes).
 * Returns 0, LS_EFRAMETRUNC (len < 8), LS_EFRAMETOOBIG (body_len > LS_FRAME_MAX_BODY), or
 * LS_EPROTO (unknown type, unknown flag bits, reserved not zero). */
int ls_frame_header_decode(const uint8_t *buf, size_t len, ls_frame_header_t *out);

/* Size of f encoded (header + body, without the transport's checksum), or a negative LS_EINVAL
 * when a field is out of its bounds (string too long or with a NUL, too many databases, chunk
 * empty or over LS_FRAME_CHUNK_MAX, unknown type ...). */
ssize_t ls_frame_size(const ls_frame_t *f);

/* Encodes f (header + body) into out (cap bytes). Borrows f and every pointer in it.
 * Returns the bytes written, LS_EINVAL (as ls_frame_size), or LS_ETOOBIG (cap too small). */
ssize_t ls_frame_encode(const ls_frame_t *f, uint8_t *out, size_t cap);

/* Like ls_frame_encode, but for GEN_DATA, BLOCK and SEED_DATA stops before the chunk bytes, so the
 * caller can send the chunk from where it lies (scatter/gather); the header's body_len counts
 * the chunk. For other types it is ls_frame_encode. Returns the bytes written or as above. */
ssize_t ls_frame_encode_head(const ls_frame_t *f, uint8_t *out, size_t cap);

/* Decodes one whole frame: buf holds exactly header + body (len bytes, no checksum). Fields of
 * out that are bytes or strings point into buf: valid while buf is. On error err (errlen bytes,
 * may be NULL) names the frame type, the field and its offset in the body.
 * Returns 0, LS_EFRAMETRUNC (buf shorter than the header says, or a field runs past the body),
 * LS_EFRAMETOOBIG, LS_EPROTO (bad type/flags, trailing bytes, a length over its bound, a bad
 * value), LS_EBADMAGIC (HELLO magic). A frame still flagged LS_FRAME_FLAG_ZSTD is LS_EPROTO:
 * decompress it first. */
int ls_frame_decode(const uint8_t *buf, size_t len, ls_frame_t *out, char *err, size_t errlen);

/* Decodes a body whose header h was already decoded by ls_frame_header_decode (and whose body
 * was decompressed if flagged, with h->flags cleared). len must equal h->body_len. Same
 * ownership, errors and messages as ls_frame_decode. */
int ls_frame_decode_body(const ls_frame_header_t *h, const uint8_t *body, size_t len,
                         ls_frame_t *out, char *err, size_t errlen);

/* What a server accepts, for ls_proto_negotiate. Zero fields mean the defaults. */
typedef struct {
    uint16_t version_min;  /* oldest version spoken; 0: LS_PROTO_VERSION_MIN */
    uint16_t version_max;  /* newest version spoken; 0: LS_PROTO_VERSION_MAX */
    uint32_t features;     /* LS_FEAT_* bits this server allows */
    int8_t zstd_level_max; /* highest zstd level allowed; 0: no cap */
} ls_proto_offer_t;

/* The outcome of a successful negotiation. */
typedef struct {
    uint16_t version;  /* highest version both sides speak */
    uint32_t features; /* hello->features & ours->features */
    int8_t zstd_level; /* hello's level (0 there: LS_PROTO_ZSTD_LEVEL_DEFAULT), capped by
                          ours->zstd_level_max; 0 without zstd */
} ls_proto_choice_t;

/* Picks the protocol version and features for a decoded HELLO. On success fills choice and
 * returns 0. When the version ranges do not overlap returns LS_EUNSUPPORTED and, when error is
 * not NULL, fills it as an ERROR frame (connection-wide, code LS_EUNSUPPORTED) whose message
 * "unsupported protocol version 2..3 (this node speaks 1..1)" is written into msg (msglen
 * bytes; error->message borrows msg). */
int ls_proto_negotiate(const ls_proto_hello_t *hello, const ls_proto_offer_t *ours,
                       ls_proto_choice_t *choice, ls_frame_t *error, char *msg, size_t msglen);

/* The zstd level a HELLO or WELCOME field means: 0 is zstd's default level. */
static inline int ls_proto_zstd_level(int8_t level)
{
    return level ? level : LS_PROTO_ZSTD_LEVEL_DEFAULT;
}

/* The client's checks of a WELCOME against its HELLO (PROTOCOL.md, WELCOME): `version` within
 * hello's range, `features` a subset of those offered, and, with dbs_match, one entry per HELLO
 * database with the same id in the same order (a seed HELLO may name the database by name only,
 * with a zero id: the server then answers with its id, and dbs_match is false). Returns 0, or
 * LS_EPROTO with what is wrong in msg (msglen bytes), e.g. "WELCOME accepts features 0x1, 0x0
 * were offered". */
int ls_proto_welcome_check(const ls_proto_hello_t *hello, const ls_proto_welcome_t *welcome,
                           bool dbs_match, char *msg, size_t msglen);

#endif
