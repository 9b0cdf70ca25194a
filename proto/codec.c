/*
 * proto/codec.c: the envelope header and the public encode/decode entry points. Each frame type
 * maps to the visitor of its body (wire.h); this file adds the 8-byte header, the size and
 * capacity checks, and the whole-frame checks (declared length, trailing bytes, flags).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "proto/wire.h"

typedef struct {
    uint8_t type;       /* ls_frame_type_t */
    const char *name;   /* for messages and logs */
    ls__visit_fn visit; /* the body's visitor */
} frame_kind_t;

static const frame_kind_t kinds[] = {
    {LS_FRAME_HELLO, "HELLO", ls__visit_hello},
    {LS_FRAME_WELCOME, "WELCOME", ls__visit_welcome},
    {LS_FRAME_ERROR, "ERROR", ls__visit_error},
    {LS_FRAME_HEARTBEAT, "HEARTBEAT", ls__visit_heartbeat},
    {LS_FRAME_RESUME, "RESUME", ls__visit_resume},
    {LS_FRAME_CREDIT, "CREDIT", ls__visit_credit},
    {LS_FRAME_COPY_STATE, "COPY_STATE", ls__visit_copy_state},
    {LS_FRAME_RE_OFFER, "RE_OFFER", ls__visit_re_offer},
    {LS_FRAME_EPOCH, "EPOCH", ls__visit_epoch},
    {LS_FRAME_GEN_BEGIN, "GEN_BEGIN", ls__visit_gen_begin},
    {LS_FRAME_GEN_DATA, "GEN_DATA", ls__visit_gen_data},
    {LS_FRAME_GEN_END, "GEN_END", ls__visit_gen_end},
    {LS_FRAME_BLOCK, "BLOCK", ls__visit_block},
    {LS_FRAME_GEN_TAIL, "GEN_TAIL", ls__visit_gen_tail},
    {LS_FRAME_DURABLE, "DURABLE", ls__visit_gen_ack},
    {LS_FRAME_INSPECTED, "INSPECTED", ls__visit_gen_ack},
    {LS_FRAME_REPLAYED, "REPLAYED", ls__visit_replayed},
    {LS_FRAME_REPLAYED_SYNCED, "REPLAYED_SYNCED", ls__visit_replayed},
    {LS_FRAME_ASK_AGAIN, "ASK_AGAIN", ls__visit_ask_again},
    {LS_FRAME_BLOCK_ACK, "BLOCK_ACK", ls__visit_block_ack},
    {LS_FRAME_SEED_BEGIN, "SEED_BEGIN", ls__visit_seed_begin},
    {LS_FRAME_SEED_DATA, "SEED_DATA", ls__visit_seed_data},
    {LS_FRAME_SEED_END, "SEED_END", ls__visit_seed_end},
    {LS_FRAME_CHAIN_REQ, "CHAIN_REQ", ls__visit_chain_req},
    {LS_FRAME_CHAIN, "CHAIN", ls__visit_chain},
    {LS_FRAME_RESYNC, "RESYNC", ls__visit_resync},
    {LS_FRAME_RESYNC_BEGIN, "RESYNC_BEGIN", ls__visit_resync_begin},
    /* switchover block */
    {LS_FRAME_SWITCHOVER, "SWITCHOVER", ls__visit_switchover},
    {LS_FRAME_SWITCHOVER_DONE, "SWITCHOVER_DONE", ls__visit_switchover_done},
};

static const frame_kind_t *kind_of(uint8_t type)
{
    for (size_t i = 0; i < LS_ARRAY_SIZE(kinds); i++)
        if (kinds[i].type == type) return &kinds[i];
    return NULL;
}

const char *ls_frame_type_name(uint8_t type)
{
    const frame_kind_t *k = kind_of(type);
    return k ? k->name : "UNKNOWN";
}

void ls_frame_header_encode(const ls_frame_header_t *h, uint8_t out[LS_FRAME_HEADER_SIZE])
{
    ls_put32(out, h->body_len);
    out[4] = h->type;
    out[5] = h->flags;
    ls_put16(out + 6, 0);
}

int ls_frame_header_decode(const uint8_t *buf, size_t len, ls_frame_header_t *out)
{
    if (len < LS_FRAME_HEADER_SIZE) return LS_EFRAMETRUNC;
    uint32_t body_len = ls_get32(buf);
    if (body_len > LS_FRAME_MAX_BODY) return LS_EFRAMETOOBIG;
    if (!kind_of(buf[4]) || (buf[5] & ~LS_FRAME_FLAGS_KNOWN) || ls_get16(buf + 6) != 0)
        return LS_EPROTO;
    out->body_len = body_len;
    out->type = buf[4];
    out->flags = buf[5];
    return 0;
}

/* Runs f's visitor in encode mode: counts (out NULL) or writes the body at out. Returns the
 * body bytes visited, or a negative error. */
static ssize_t visit_enc(const ls_frame_t *f, uint8_t *out, bool head_only)
{
    const frame_kind_t *k = kind_of(f->type);
    if (!k) return LS_EINVAL;
    ls__io_t io;
    ls__io_init_enc(&io, k->name, out, head_only);
    /* Encode mode only reads the frame: the cast lets one visitor serve both directions. */
    k->visit(&io, (ls_frame_t *) f);
    if (io.code) return io.code;
    return (ssize_t) io.off;
}

ssize_t ls_frame_size(const ls_frame_t *f)
{
    ssize_t body = visit_enc(f, NULL, false);
    if (body < 0) return body;
    if ((size_t) body > LS_FRAME_MAX_BODY) return LS_EINVAL;
    return LS_FRAME_HEADER_SIZE + body;
}

static ssize_t encode(const ls_frame_t *f, uint8_t *out, size_t cap, bool head_only)
{
    ssize_t size = ls_frame_size(f);
    if (size < 0) return size;
    ssize_t head = size;
    if (head_only && f->type == LS_FRAME_GEN_DATA)
        head -= f->gen_data.len;
    else if (head_only && f->type == LS_FRAME_BLOCK)
        head -= f->block.len;
    else if (head_only && f->type == LS_FRAME_SEED_DATA)
        head -= f->seed_data.len;
    if ((size_t) head > cap) return LS_ETOOBIG;
    ls_frame_header_t h = {(uint32_t) (size - LS_FRAME_HEADER_SIZE), f->type, 0};
    ls_frame_header_encode(&h, out);
    ssize_t body = visit_enc(f, out + LS_FRAME_HEADER_SIZE, head_only);
    LS_CHECK(body == head - LS_FRAME_HEADER_SIZE); /* the counting pass sized this buffer */
    return head;
}

ssize_t ls_frame_encode(const ls_frame_t *f, uint8_t *out, size_t cap)
{
    return encode(f, out, cap, false);
}

ssize_t ls_frame_encode_head(const ls_frame_t *f, uint8_t *out, size_t cap)
{
    return encode(f, out, cap, true);
}

int ls_frame_decode_body(const ls_frame_header_t *h, const uint8_t *body, size_t len,
                         ls_frame_t *out, char *err, size_t errlen)
{
    const frame_kind_t *k = kind_of(h->type);
    if (!k) {
        ls_msgf(err, errlen, "unknown frame type 0x%02x", (unsigned) h->type);
        return LS_EPROTO;
    }
    if (h->flags) {
        ls_msgf(err, errlen, "%s: flags 0x%02x still set (decompress first)", k->name,
                (unsigned) h->flags);
        return LS_EPROTO;
    }
    if (len != h->body_len) {
        ls_msgf(err, errlen, "%s: body of %zu bytes but header says %u", k->name, len,
                (unsigned) h->body_len);
        return len < h->body_len ? LS_EFRAMETRUNC : LS_EPROTO;
    }
    memset(out, 0, sizeof(*out));
    out->type = h->type;
    ls__io_t io;
    ls__io_init_dec(&io, k->name, body, len, err, errlen);
    k->visit(&io, out);
    if (io.code) return io.code;
    if (io.off != len) {
        ls_msgf(err, errlen, "%s: %zu trailing bytes after offset %zu", k->name, len - io.off,
                io.off);
        return LS_EPROTO;
    }
    return 0;
}

/* The message for a header ls_frame_header_decode refused. */
static void header_err(const uint8_t *buf, size_t len, int rc, char *err, size_t errlen)
{
    if (rc == LS_EFRAMETRUNC)
        ls_msgf(err, errlen, "truncated frame header: %zu of %d bytes", len, LS_FRAME_HEADER_SIZE);
    else if (rc == LS_EFRAMETOOBIG)
        ls_msgf(err, errlen, "%s frame: body_len %u at offset 0 exceeds %u",
                ls_frame_type_name(buf[4]), (unsigned) ls_get32(buf), LS_FRAME_MAX_BODY);
    else if (!kind_of(buf[4]))
        ls_msgf(err, errlen, "unknown frame type 0x%02x at offset 4", (unsigned) buf[4]);
    else if (buf[5] & ~LS_FRAME_FLAGS_KNOWN)
        ls_msgf(err, errlen, "%s frame: unknown flags 0x%02x at offset 5",
                ls_frame_type_name(buf[4]), (unsigned) buf[5]);
    else
        ls_msgf(err, errlen, "%s frame: reserved 0x%04x at offset 6 is not zero",
                ls_frame_type_name(buf[4]), (unsigned) ls_get16(buf + 6));
}

int ls_frame_decode(const uint8_t *buf, size_t len, ls_frame_t *out, char *err, size_t errlen)
{
    ls_frame_header_t h;
    int rc = ls_frame_header_decode(buf, len, &h);
    if (rc) {
        header_err(buf, len, rc, err, errlen);
        return rc;
    }
    size_t have = len - LS_FRAME_HEADER_SIZE;
    if (have < h.body_len) {
        ls_msgf(err, errlen, "truncated %s frame: header says %u body bytes, %zu present",
                ls_frame_type_name(h.type), (unsigned) h.body_len, have);
        return LS_EFRAMETRUNC;
    }
    if (have > h.body_len) {
        ls_msgf(err, errlen, "%s frame: %zu trailing bytes after the %u-byte body",
                ls_frame_type_name(h.type), have - h.body_len, (unsigned) h.body_len);
        return LS_EPROTO;
    }
    return ls_frame_decode_body(&h, buf + LS_FRAME_HEADER_SIZE, h.body_len, out, err, errlen);
}
