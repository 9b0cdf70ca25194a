/*
 * proto internals: one visitor per frame body, run in either direction.
 *
 * Each frame body is described once, as a function that visits its fields in wire order through
 * an ls__io_t. Encoding runs it over a struct (first counting, then writing); decoding runs it
 * over received bytes and fills the struct. So the encoder and the decoder cannot disagree about
 * a layout, and every bound is checked in both directions: an out-of-bounds struct is LS_EINVAL
 * when encoding, out-of-bounds bytes are LS_EPROTO / LS_EFRAMETRUNC when decoding.
 *
 * The io is sticky (as an LMDB txn): after the first error every call is a no-op, so visitors are
 * straight-line code and the first problem is the one reported.
 *
 * Lifecycle: ls__io_init_enc / ls__io_init_dec, the visitor, then io.code. Threading: an io
 * belongs to the calling thread; the functions are reentrant.
 */
#ifndef LS_PROTO_WIRE_H
#define LS_PROTO_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

typedef struct {
    bool enc;          /* true: struct -> bytes; false: bytes -> struct */
    uint8_t *out;      /* enc: where the body goes, or NULL to count its size only */
    bool head_only;    /* enc: do not write chunk bytes (ls_frame_encode_head) */
    const uint8_t *in; /* dec: the body */
    size_t len;        /* dec: bytes in the body */
    size_t off;        /* body offset of the next field, bytes */
    int code;          /* 0 or the first error (sticky) */
    const char *frame; /* frame type name, for messages */
    const char *field; /* name of the field being visited, for messages */
    size_t field_off;  /* its body offset, bytes */
    char *err;         /* message buffer, or NULL */
    size_t errlen;     /* its size, bytes */
} ls__io_t;

/* A frame body's visitor. In encode mode it only reads f. */
typedef void (*ls__visit_fn)(ls__io_t *io, ls_frame_t *f);

void ls__io_init_enc(ls__io_t *io, const char *frame, uint8_t *out, bool head_only);
void ls__io_init_dec(ls__io_t *io, const char *frame, const uint8_t *in, size_t len, char *err,
                     size_t errlen);

/* Fields, in wire order. Integers are little-endian, fixed width. */
void ls__io_u8(ls__io_t *io, const char *name, uint8_t *v);
void ls__io_i8(ls__io_t *io, const char *name, int8_t *v);
void ls__io_u16(ls__io_t *io, const char *name, uint16_t *v);
void ls__io_u32(ls__io_t *io, const char *name, uint32_t *v);
void ls__io_i32(ls__io_t *io, const char *name, int32_t *v);
void ls__io_u64(ls__io_t *io, const char *name, uint64_t *v);
/* n raw bytes copied to/from buf (ids, digests, magic). */
void ls__io_fixed(ls__io_t *io, const char *name, uint8_t *buf, size_t n);
/* u16 length + bytes, min..max bytes, no NUL inside. Decoded: s points into the input. */
void ls__io_str(ls__io_t *io, const char *name, ls_proto_str_t *s, size_t min, size_t max);
/* len bytes at *data (the frame's last field). Decoded: *data points into the input. */
void ls__io_chunk(ls__io_t *io, const char *name, const uint8_t **data, uint32_t len);

/* Fails the io unless cond, with a message about the last field visited ("<frame>: field 'x' at
 * offset N: <fmt>"): LS_EINVAL when encoding, LS_EPROTO when decoding. */
void ls__io_require(ls__io_t *io, bool cond, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Fails the io with code and a message about the last field visited. */
void ls__io_fail(ls__io_t *io, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The field is a negative LS_E* code. */
void ls__io_require_code(ls__io_t *io, int32_t code);
/* The field is a generation number (>= 1). */
void ls__io_require_gen(ls__io_t *io, uint64_t generation);
/* The field is an epoch number (>= 1). */
void ls__io_require_epoch(ls__io_t *io, uint32_t epoch);

/* Visitors of each body (frames_conn.c, frames_ship.c). */
void ls__visit_hello(ls__io_t *io, ls_frame_t *f);
void ls__visit_welcome(ls__io_t *io, ls_frame_t *f);
void ls__visit_error(ls__io_t *io, ls_frame_t *f);
void ls__visit_heartbeat(ls__io_t *io, ls_frame_t *f);
void ls__visit_resume(ls__io_t *io, ls_frame_t *f);
void ls__visit_credit(ls__io_t *io, ls_frame_t *f);
void ls__visit_copy_state(ls__io_t *io, ls_frame_t *f);
void ls__visit_re_offer(ls__io_t *io, ls_frame_t *f);
void ls__visit_epoch(ls__io_t *io, ls_frame_t *f);
void ls__visit_gen_begin(ls__io_t *io, ls_frame_t *f);
void ls__visit_gen_tail(ls__io_t *io, ls_frame_t *f);
void ls__visit_gen_data(ls__io_t *io, ls_frame_t *f);
void ls__visit_gen_end(ls__io_t *io, ls_frame_t *f);
void ls__visit_block(ls__io_t *io, ls_frame_t *f);
void ls__visit_block_ack(ls__io_t *io, ls_frame_t *f);
void ls__visit_gen_ack(ls__io_t *io, ls_frame_t *f);  /* DURABLE, INSPECTED */
void ls__visit_replayed(ls__io_t *io, ls_frame_t *f); /* REPLAYED, REPLAYED_SYNCED */
void ls__visit_ask_again(ls__io_t *io, ls_frame_t *f);
void ls__visit_seed_begin(ls__io_t *io, ls_frame_t *f);
void ls__visit_seed_data(ls__io_t *io, ls_frame_t *f);
void ls__visit_seed_end(ls__io_t *io, ls_frame_t *f);
void ls__visit_chain_req(ls__io_t *io, ls_frame_t *f);
void ls__visit_chain(ls__io_t *io, ls_frame_t *f);
void ls__visit_resync(ls__io_t *io, ls_frame_t *f);
void ls__visit_resync_begin(ls__io_t *io, ls_frame_t *f);
/* Switchover block (frames_switchover.c): SWITCHOVER, SWITCHOVER_DONE. */
void ls__visit_switchover(ls__io_t *io, ls_frame_t *f);
void ls__visit_switchover_done(ls__io_t *io, ls_frame_t *f);
/* The fields SEED_BEGIN and RESYNC_BEGIN both start with (frames_ship.c). */
void ls__visit_begin_head(ls__io_t *io, uint8_t *dbid, uint64_t *total_bytes, uint64_t *last_lsn,
                          uint64_t *generation, uint8_t *prev_digest, uint32_t *epoch);

#endif
