/*
 * The frame envelope shared by the codec (proto/) and the transport (engine/transport/).
 *
 *   offset 0  u32  body_len   bytes of body that follow the 8-byte header, <= LS_FRAME_MAX_BODY
 *   offset 4  u8   type       ls_frame_type_t (proto/proto.h)
 *   offset 5  u8   flags      0 (reserved for per-frame options; receivers reject unknown bits)
 *   offset 6  u16  reserved   0
 *   offset 8  body
 *   [u32 checksum]           only on connections without TLS: ls_cksum32 over header and body,
 *                            seeded with the frame's sequence number on that connection (first
 *                            frame 0), so a dropped, repeated or reordered frame is caught too
 *
 * See proto/PROTOCOL.md for each type's body.
 */
#ifndef LS_PROTO_FRAME_H
#define LS_PROTO_FRAME_H

#include <stdint.h>

#define LS_FRAME_HEADER_SIZE 8
#define LS_FRAME_CKSUM_SIZE  4
#define LS_FRAME_MAX_BODY    (1024u * 1024u + 4096u) /* a data chunk of 1 MiB plus its fields */
#define LS_FRAME_CHUNK_MAX   (1024u * 1024u)         /* largest data chunk carried in one frame */

#endif
