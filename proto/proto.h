/*
 * proto: the wire protocol's frame codec. Frames in and out of byte buffers; no sockets, no
 * event loop, no allocation.
 *
 * Every frame is the envelope of proto/frame.h (8-byte header, body, optional checksum added by
 * the transport) around one of the bodies of proto/bodies.h (its numbers: proto/defs.h; both are
 * included here, so callers include proto.h alone). proto/PROTOCOL.md documents every byte, who
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

#include "proto/bodies.h"
#include "proto/defs.h"
#include "proto/frame.h"

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
