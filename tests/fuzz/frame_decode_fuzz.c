/*
 * libFuzzer target for the frame codec (proto/). Any input is decoded two ways:
 *  - as a whole frame (8-byte header + body), as the transport's reader would see it;
 *  - as a body whose type is the first input byte, so the fuzzer reaches every body decoder
 *    without first having to discover a consistent header.
 * The decoder must never read out of bounds (every byte it hands out is touched), must always
 * leave a NUL-terminated message on error, and must be canonical: whatever it accepts encodes
 * back to exactly the same bytes (so no field is ignored and no two encodings mean one frame).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <logship/error.h>

#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ls_frame_t frame; /* ~10 KiB: static rather than on the stack */

static unsigned touch(const void *p, size_t n)
{
    const volatile uint8_t *b = p;
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += b[i];
    return sum;
}

/* Touches every borrowed byte of a decoded frame. */
static unsigned touch_frame(const ls_frame_t *f)
{
    unsigned sum = 0;
    switch (f->type) {
    case LS_FRAME_HELLO:
        sum += touch(f->hello.node.ptr, f->hello.node.len);
        for (unsigned i = 0; i < f->hello.db_count; i++)
            sum += touch(f->hello.dbs[i].name.ptr, f->hello.dbs[i].name.len);
        break;
    case LS_FRAME_WELCOME:
        sum += touch(f->welcome.node.ptr, f->welcome.node.len);
        for (unsigned i = 0; i < f->welcome.db_count; i++)
            sum += touch(f->welcome.dbs[i].reason.ptr, f->welcome.dbs[i].reason.len);
        break;
    case LS_FRAME_ERROR:
        sum += touch(f->error.message.ptr, f->error.message.len);
        break;
    case LS_FRAME_ASK_AGAIN:
        sum += touch(f->ask_again.message.ptr, f->ask_again.message.len);
        break;
    case LS_FRAME_RE_OFFER:
        sum += touch(f->re_offer.reason.ptr, f->re_offer.reason.len);
        break;
    case LS_FRAME_EPOCH:
        sum += touch(f->epoch.active.ptr, f->epoch.active.len);
        break;
    case LS_FRAME_GEN_DATA:
        sum += touch(f->gen_data.data, f->gen_data.len);
        break;
    case LS_FRAME_BLOCK:
        sum += touch(f->block.data, f->block.len);
        break;
    case LS_FRAME_SEED_DATA:
        sum += touch(f->seed_data.data, f->seed_data.len);
        break;
    case LS_FRAME_CHAIN:
        sum += touch(f->chain.active.ptr, f->chain.active.len);
        sum += touch(f->chain.raw, (size_t) f->chain.count * 44);
        break;
    case LS_FRAME_RESYNC:
        sum += touch(f->resync.keys, f->resync.keys_len);
        break;
    }
    return sum;
}

/* A decoded frame re-encodes to exactly the bytes it came from. */
static void check_canonical(const ls_frame_t *f, const uint8_t *data, size_t size)
{
    ssize_t n = ls_frame_size(f);
    if (n < 0 || (size_t) n != size) abort();
    uint8_t *out = malloc(size);
    if (!out) abort();
    if (ls_frame_encode(f, out, size) != n || memcmp(out, data, size) != 0) abort();
    free(out);
}

/* This build speaks 1..LS_PROTO_VERSION_MAX: a HELLO whose range meets it gets the highest common
 * version, any other a valid ERROR frame. */
static void check_negotiation(const ls_proto_hello_t *hello)
{
    static ls_frame_t error;
    ls_proto_offer_t ours = {.features = ~0u};
    ls_proto_choice_t choice;
    char msg[LS_PROTO_MSG_MAX];
    int rc = ls_proto_negotiate(hello, &ours, &choice, &error, msg, sizeof(msg));
    uint16_t top = LS_PROTO_VERSION_MAX;
    bool meets = hello->version_min <= top && hello->version_max >= LS_PROTO_VERSION_MIN;
    uint16_t want = hello->version_max < top ? hello->version_max : top;
    if (meets && (rc != 0 || choice.version != want)) abort();
    if (!meets && (rc != LS_EUNSUPPORTED || ls_frame_size(&error) <= 0)) abort();
}

static void check_err(int rc, const char *err, size_t errlen)
{
    if (rc >= 0 || memchr(err, 0, errlen) == NULL || err[0] == 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    ls_frame_header_t h;
    int hrc = ls_frame_header_decode(data, size, &h);
    int rc = ls_frame_decode(data, size, &frame, err, sizeof(err));
    if (hrc != 0 && rc != hrc) /* the whole-frame decoder agrees with the header decoder */
        abort();
    if (rc == 0) {
        touch_frame(&frame);
        check_canonical(&frame, data, size);
        if (frame.type == LS_FRAME_HELLO) check_negotiation(&frame.hello);
    } else {
        check_err(rc, err, sizeof(err));
    }
    if (size >= 1) { /* the body decoders, directly */
        ls_frame_header_t bh = {(uint32_t) (size - 1), data[0], 0};
        rc = ls_frame_decode_body(&bh, data + 1, size - 1, &frame, err, sizeof(err));
        if (rc == 0)
            touch_frame(&frame);
        else
            check_err(rc, err, sizeof(err));
    }
    return 0;
}
