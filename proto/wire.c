/*
 * proto/wire.c: the field primitives every frame visitor uses (see wire.h).
 *
 * Decoding checks, before touching a byte, that the field fits in what is left of the body, and
 * checks a length against its bound before checking that the bytes it announces are there. No
 * length from the input ever sizes an allocation or a copy into a fixed buffer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "proto/wire.h"

void ls__io_init_enc(ls__io_t *io, const char *frame, uint8_t *out, bool head_only)
{
    memset(io, 0, sizeof(*io));
    io->enc = true;
    io->out = out;
    io->head_only = head_only;
    io->frame = frame;
    io->field = "";
}

void ls__io_init_dec(ls__io_t *io, const char *frame, const uint8_t *in, size_t len, char *err,
                     size_t errlen)
{
    memset(io, 0, sizeof(*io));
    io->in = in;
    io->len = len;
    io->frame = frame;
    io->field = "";
    io->err = err;
    io->errlen = errlen;
}

/* Records the error and its message (first error only). */
static void vfail(ls__io_t *io, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void vfail(ls__io_t *io, int code, const char *fmt, va_list ap)
{
    if (io->code) return;
    io->code = code;
    if (!io->err || io->errlen == 0) return;
    int n = snprintf(io->err, io->errlen,
                     "%s%s: field '%s' at offset %zu: ", io->enc ? "encoding " : "", io->frame,
                     io->field, io->field_off);
    if (n >= 0 && (size_t) n < io->errlen) vsnprintf(io->err + n, io->errlen - (size_t) n, fmt, ap);
}

void ls__io_fail(ls__io_t *io, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(io, code, fmt, ap);
    va_end(ap);
}

void ls__io_require(ls__io_t *io, bool cond, const char *fmt, ...)
{
    if (cond || io->code) return;
    va_list ap;
    va_start(ap, fmt);
    vfail(io, io->enc ? LS_EINVAL : LS_EPROTO, fmt, ap);
    va_end(ap);
}

void ls__io_require_code(ls__io_t *io, int32_t code)
{
    ls__io_require(io, code < 0, "%d is not an error code (must be negative)", (int) code);
}

void ls__io_require_gen(ls__io_t *io, uint64_t generation)
{
    ls__io_require(io, generation >= 1, "generation 0 does not exist (generations start at 1)");
}

void ls__io_require_epoch(ls__io_t *io, uint32_t epoch)
{
    ls__io_require(io, epoch >= 1, "epoch 0 does not exist (epochs start at 1)");
}

/* Starts a field of n bytes. Returns where its bytes are (decode: in the input; encode: in the
 * output, or NULL when counting) or NULL with io->code set when the field cannot be visited. */
static const uint8_t *field(ls__io_t *io, const char *name, size_t n, uint8_t **wp)
{
    *wp = NULL;
    if (io->code) return NULL;
    io->field = name;
    io->field_off = io->off;
    if (io->enc) {
        if (io->out) *wp = io->out + io->off;
        io->off += n;
        return NULL;
    }
    if (io->len - io->off < n) {
        ls__io_fail(io, LS_EFRAMETRUNC, "needs %zu bytes, %zu left (truncated body)", n,
                    io->len - io->off);
        return NULL;
    }
    const uint8_t *p = io->in + io->off;
    io->off += n;
    return p;
}

/* An unsigned little-endian field of width bytes (1, 2, 4 or 8). Encoding writes v; returns the
 * decoded value, or v itself when encoding or when the field cannot be read. */
static uint64_t uint_field(ls__io_t *io, const char *name, size_t width, uint64_t v)
{
    uint8_t *w;
    const uint8_t *r = field(io, name, width, &w);
    for (size_t i = 0; w && i < width; i++)
        w[i] = (uint8_t) (v >> (8 * i));
    if (r) {
        v = 0;
        for (size_t i = 0; i < width; i++)
            v |= (uint64_t) r[i] << (8 * i);
    }
    return v;
}

void ls__io_u8(ls__io_t *io, const char *name, uint8_t *v)
{
    *v = (uint8_t) uint_field(io, name, 1, *v);
}

void ls__io_i8(ls__io_t *io, const char *name, int8_t *v)
{
    *v = (int8_t) (uint8_t) uint_field(io, name, 1, (uint8_t) *v);
}

void ls__io_u16(ls__io_t *io, const char *name, uint16_t *v)
{
    *v = (uint16_t) uint_field(io, name, 2, *v);
}

void ls__io_u32(ls__io_t *io, const char *name, uint32_t *v)
{
    *v = (uint32_t) uint_field(io, name, 4, *v);
}

void ls__io_i32(ls__io_t *io, const char *name, int32_t *v)
{
    *v = (int32_t) (uint32_t) uint_field(io, name, 4, (uint32_t) *v);
}

void ls__io_u64(ls__io_t *io, const char *name, uint64_t *v)
{
    *v = uint_field(io, name, 8, *v);
}

void ls__io_fixed(ls__io_t *io, const char *name, uint8_t *buf, size_t n)
{
    uint8_t *w;
    const uint8_t *r = field(io, name, n, &w);
    if (w) memcpy(w, buf, n);
    if (r) memcpy(buf, r, n);
}

/* Encode side of a string: the struct must hold min..max bytes without NUL. */
static void str_enc(ls__io_t *io, const char *name, const ls_proto_str_t *s, size_t min, size_t max)
{
    uint8_t *w;
    field(io, name, 2, &w);
    ls__io_require(io, s->len >= min && s->len <= max, "length %zu outside %zu..%zu", s->len, min,
                   max);
    ls__io_require(io, s->len == 0 || s->ptr, "NULL string of length %zu", s->len);
    ls__io_require(io, s->len == 0 || !s->ptr || !memchr(s->ptr, 0, s->len),
                   "string contains a NUL byte");
    if (io->code) return;
    if (w) {
        ls_put16(w, (uint16_t) s->len);
        if (s->len) memcpy(w + 2, s->ptr, s->len);
    }
    io->off += s->len;
}

void ls__io_str(ls__io_t *io, const char *name, ls_proto_str_t *s, size_t min, size_t max)
{
    if (io->enc) {
        str_enc(io, name, s, min, max);
        return;
    }
    uint8_t *unused;
    const uint8_t *r = field(io, name, 2, &unused);
    if (!r) return;
    size_t n = ls_get16(r);
    ls__io_require(io, n >= min && n <= max, "length %zu outside %zu..%zu", n, min, max);
    if (io->code) return;
    if (io->len - io->off < n) {
        ls__io_fail(io, LS_EFRAMETRUNC, "string of %zu bytes, %zu left (truncated body)", n,
                    io->len - io->off);
        return;
    }
    const char *p = (const char *) io->in + io->off;
    ls__io_require(io, !memchr(p, 0, n), "string contains a NUL byte");
    if (io->code) return;
    s->ptr = n ? p : NULL;
    s->len = n;
    io->off += n;
}

void ls__io_chunk(ls__io_t *io, const char *name, const uint8_t **data, uint32_t len)
{
    if (io->code) return;
    io->field = name;
    io->field_off = io->off;
    if (io->enc) {
        ls__io_require(io, len == 0 || *data, "NULL data of length %u", (unsigned) len);
        if (io->code || io->head_only) /* head only: the caller sends the chunk itself */
            return;
        if (io->out && len) memcpy(io->out + io->off, *data, len);
        io->off += len;
        return;
    }
    if (io->len - io->off < len) {
        ls__io_fail(io, LS_EFRAMETRUNC, "chunk of %u bytes, %zu left (truncated body)",
                    (unsigned) len, io->len - io->off);
        return;
    }
    *data = io->in + io->off;
    io->off += len;
}
