/*
 * proto: the protocol's numbers (proto/proto.h is the codec; proto/bodies.h the frame bodies):
 * the versions this build speaks and the first version of each frame family, the bounds of every
 * field, the defaults, the frame types, the header's flag bits, HELLO's feature bits, and the
 * purpose and per-database answer codes. Constants only; proto/PROTOCOL.md documents each.
 */
#ifndef LS_PROTO_DEFS_H
#define LS_PROTO_DEFS_H

#include <stdint.h>

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
#define LS_FEAT_NEXT                                                                               \
    0x00000020u /* ship connections, version >= 5 with LS_FEAT_BLOCK: the target makes every       \
                   closed generation it took durable before it acknowledges a later BLOCK, so the  \
                   source streams the next generation right after the closed one's GEN_END         \
                   (docs/BLOCKMODE.md "The roll's hand-off") */
#define LS_FEAT_APPLY                                                                              \
    0x00000040u /* ship connections, version >= 5 with LS_FEAT_BLOCK: the source's COPY_STATE says \
                   (LS_COPY_APPLY) whether a commit waits for the copy's applied position; the     \
                   target applies its shadow early at each BLOCK only then (docs/BLOCKMODE.md)  */
#define LS_FEAT_SEEDXXH                                                                            \
    0x00000080u /* seed connections: the stream's check in SEED_END is XXH3-128 (its first 16      \
                   bytes, the rest zero) instead of SHA-256 (docs/SEED.md, "The stream's check")   \
                 */
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

#endif
