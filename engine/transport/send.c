/*
 * send: the send path (see internal.h); the socket queue's writes are sockq.c's.
 *
 * Two queues bound what a connection holds:
 *   - the frame queue: frames accepted by ls_conn_send*, copied, not yet encoded, in order;
 *   - the socket queue: encoded bytes (compressed, checksummed, TLS records) handed to libuv and
 *     not yet taken by the kernel.
 * A frame leaves the frame queue only while the socket queue holds less than LS__SOCK_LOW bytes,
 * and the kernel keeps at most TCP_NOTSENT_LOWAT unsent bytes (tcp.c), so a HEARTBEAT, which is
 * encoded at once and skips the frame queue, waits behind at most LS__SOCK_LOW bytes plus the
 * frame being written and the kernel's low-water mark, never behind the whole backlog. Every
 * other frame keeps its order (GEN_BEGIN, GEN_DATA ..., GEN_END must not be reordered).
 *
 * ls_conn_send* refuses (LS_EBUSY) while frame queue + socket queue >= send_hwm, so together they
 * never exceed send_hwm + one frame (+ TLS record overhead and heartbeats, a few hundred bytes).
 */
#include <stddef.h>
#include <stdlib.h>

#include "transport/internal.h"

/* Copies the body pieces into c->tx after the header room; returns the body length. */
static size_t gather(ls_conn_t *c, const struct iovec *iov, int iovcnt)
{
    size_t off = LS_FRAME_HEADER_SIZE;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(c->tx + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    return off - LS_FRAME_HEADER_SIZE;
}

/* Only chunk frames are worth compressing (proto/PROTOCOL.md, §3). */
static bool compressible(uint8_t type)
{
    return type == LS_FRAME_GEN_DATA || type == LS_FRAME_SEED_DATA;
}

_Static_assert(offsetof(struct ls__pframe, body) ==
                   offsetof(struct ls__pframe, hdr) + LS_FRAME_HEADER_SIZE,
               "a queued frame's header room lies right before its body");

/* Encodes the frame whose body (body bytes) follows LS_FRAME_HEADER_SIZE bytes of room at frame,
 * with LS_FRAME_CKSUM_SIZE bytes of room after it: compressed (on the loop) into ztx, or in
 * place; then to the driver. */
static int write_pframe(ls_conn_t *c, struct ls__pframe *p, size_t len);

/* p: the queued frame whose memory frame is (or NULL); 1 when p is still being written from. */
static int encode(ls_conn_t *c, struct ls__pframe *p, uint8_t *frame, size_t body, uint8_t type,
                  uint8_t flags)
{
    c->stats.bytes_sent += LS_FRAME_HEADER_SIZE + body;
    if (c->zstd_level && !c->off && !(flags & LS_FRAME_FLAG_ZSTD) && compressible(type) &&
        body >= LS_CONN_ZSTD_MIN_BODY) { /* with the worker (c->off) the loop never compresses */
        size_t zlen = 0;
        c->stats.zstd_loop_calls++; /* the loop thread: ls_conn_* run on no other */
        int rc = ls_zbody_compress(c->z, frame + LS_FRAME_HEADER_SIZE, body,
                                   c->ztx + LS_FRAME_HEADER_SIZE, body - 1, &zlen);
        if (rc) return ls__conn_fail(c, rc, "compressing a %zu-byte frame failed", body);
        if (zlen) {
            frame = c->ztx;
            body = zlen;
            flags |= LS_FRAME_FLAG_ZSTD;
        }
    }
    ls_frame_header_t h = {.body_len = (uint32_t) body, .type = type, .flags = flags};
    ls_frame_header_encode(&h, frame);
    size_t len = LS_FRAME_HEADER_SIZE + body;
    if (c->drv == &ls__driver_tcp) {
        ls_put32(frame + len, ls_cksum32(frame, len, c->tx_seq));
        len += LS_FRAME_CKSUM_SIZE;
    }
    c->tx_seq++;
    c->stats.frames_sent++;
    if (p && frame == p->hdr && c->drv == &ls__driver_tcp) return write_pframe(c, p, len);
    return c->drv->write(c, frame, len);
}

int ls__conn_send_frame(ls_conn_t *c, uint8_t type, uint8_t flags, const struct iovec *iov,
                        int iovcnt)
{
    return encode(c, NULL, c->tx, gather(c, iov, iovcnt), type, flags);
}

/* Encodes the frame p taken off the queue: as it is, or as the worker compressed it. 1 when
 * the socket still writes from p (plain TCP), else 0 or < 0. */
static int send_pframe(ls_conn_t *c, struct ls__pframe *p)
{
    if (p->zstate == LS__Z_DONE && p->zrc)
        return ls__conn_fail(c, p->zrc, "compressing a %zu-byte frame failed", p->len);
    if (p->zstate == LS__Z_DONE && p->zlen) {
        struct iovec iov = {.iov_base = p->zbody, .iov_len = p->zlen};
        int rc = ls__conn_send_frame(c, p->type, LS_FRAME_FLAG_ZSTD, &iov, 1);
        c->stats.bytes_sent += p->len - p->zlen; /* counted before compression, like the loop */
        return rc;
    }
    return encode(c, p, p->hdr, p->len, p->type, p->flags); /* in place: no copy into tx */
}

/* A sent frame is kept as one of the connection's two spares (the largest), for the next frames
 * queued: as with the write buffers, memory that stays mapped instead of a fresh malloc per frame.
 * Two, because a frame the socket is still writing from holds its memory while the next is
 * queued. */
static void pframe_put(ls_conn_t *c, struct ls__pframe *p)
{
    struct ls__pframe **s = c->pspare;
    int small = !s[0] ? 0 : !s[1] ? 1 : s[0]->cap <= s[1]->cap ? 0 : 1;
    if (s[small] && s[small]->cap >= p->cap) {
        free(p);
        return;
    }
    free(s[small]);
    s[small] = p;
}

static void pframe_write_cb(uv_write_t *req, int status)
{
    struct ls__pframe *p = req->data;
    ls_conn_t *c = req->handle->data;
    size_t len = p->wlen[req == &p->wreq[0] ? 0 : 1];
    c->sock_queued -= len;
    if (status == 0) c->stats.wire_bytes_sent += len;
    if (--p->wrefs == 0) pframe_put(c, p);
    ls__sock_written(c, status);
}

/* The plain driver's write of the frame p encoded in place (len bytes from p->hdr): what the
 * socket does not take at once is written from p itself by libuv, as the bulk and a LS__SOCK_TAIL
 * (see write_later), instead of being copied into a write buffer; p goes back to the spares after
 * the last piece's callback. 1: p is being written (taken), 0: all of it went now, < 0: failed. */
static int write_pframe(ls_conn_t *c, struct ls__pframe *p, size_t len)
{
    if (c->state == LS__CONN_CLOSING) return LS_ECLOSED;
    ssize_t done = ls__sock_write_now(c, p->hdr, len);
    if (done < 0) return (int) done;
    if ((size_t) done == len) return 0;
    size_t off = (size_t) done, rest = len - off, n = rest > LS__SOCK_TAIL ? 2 : 1;
    p->wrefs = (unsigned) n;
    for (size_t i = 0; i < n; i++) {
        p->wlen[i] = n == 2 && i == 0 ? rest - LS__SOCK_TAIL : len - off;
        p->wreq[i].data = p;
        uv_buf_t b = uv_buf_init((char *) p->hdr + off, (unsigned) p->wlen[i]);
        int rc = uv_write(&p->wreq[i], (uv_stream_t *) &c->tcp, &b, 1, pframe_write_cb);
        if (rc < 0) { /* the pieces queued before still call back; the others never will */
            p->wrefs -= (unsigned) (n - i);
            ls__conn_fail(c, ls__uv_err(rc), "write to %s failed: %s", c->peer, uv_strerror(rc));
            return i ? 1 : rc;
        }
        off += p->wlen[i];
        c->sock_queued += p->wlen[i];
    }
    ls__sock_account(c);
    return 1;
}

void ls__send_flush(ls_conn_t *c)
{
    while (c->pending && c->sock_queued < LS__SOCK_LOW && c->state == LS__CONN_READY) {
        struct ls__pframe *p = c->pending;
        if (p->zstate == LS__Z_WAIT || p->zstate == LS__Z_BUSY) break; /* the worker's still */
        c->pending = p->next;
        if (!c->pending) c->pending_tail = NULL;
        c->pending_bytes -= LS_FRAME_HEADER_SIZE + p->len;
        int rc = send_pframe(c, p);
        free(p->zbody);
        p->zbody = NULL;
        if (rc != 1) pframe_put(c, p); /* 1: the socket still writes from it */
        if (rc < 0) return;
    }
    ls__sock_account(c);
}

/* Appends a copy to the frame queue: NULL when out of memory. */
static struct ls__pframe *queue(ls_conn_t *c, uint8_t type, uint8_t flags, const struct iovec *iov,
                                int iovcnt, size_t len)
{
    struct ls__pframe **s = c->pspare, *p = NULL;
    size_t cap = len;
    int k = s[0] && s[0]->cap >= len ? 0 : s[1] && s[1]->cap >= len ? 1 : -1;
    if (k >= 0) {
        p = s[k];
        s[k] = NULL;
        cap = p->cap;
    } else {
        p = malloc(sizeof(*p) + len + LS_FRAME_CKSUM_SIZE);
        if (!p) return NULL;
    }
    memset(p, 0, sizeof(*p));
    p->cap = cap;
    p->type = type;
    p->flags = flags;
    p->len = len;
    size_t off = 0;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(p->body + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    if (c->pending_tail)
        c->pending_tail->next = p;
    else
        c->pending = p;
    c->pending_tail = p;
    c->pending_bytes += LS_FRAME_HEADER_SIZE + len;
    ls__sock_account(c);
    return p;
}

/* Sends now when nothing waits and the socket keeps up, else appends a copy to the queue. With
 * the zstd worker, a compressible body always queues, for the worker (offload.c). */
static int send_or_queue(ls_conn_t *c, uint8_t type, uint8_t flags, const struct iovec *iov,
                         int iovcnt, size_t len)
{
    bool offload = c->off && c->zstd_level && !(flags & LS_FRAME_FLAG_ZSTD) && compressible(type) &&
                   len >= LS_CONN_ZSTD_MIN_BODY;
    if (!offload && !c->pending && c->sock_queued < LS__SOCK_LOW)
        return ls__conn_send_frame(c, type, flags, iov, iovcnt);
    struct ls__pframe *p = queue(c, type, flags, iov, iovcnt, len);
    if (!p) return LS_ENOMEM;
    if (offload) {
        p->zstate = LS__Z_WAIT;
        ls__off_tx_add(c, p);
    }
    return 0;
}

static int send_check(ls_conn_t *c, size_t len)
{
    if (c->state == LS__CONN_CLOSING) return LS_ECLOSED;
    if (c->state != LS__CONN_READY) return LS_ESTATE;
    if (len > LS_FRAME_MAX_BODY) return LS_EFRAMETOOBIG;
    if (c->pending_bytes + c->sock_queued >= c->opts.send_hwm) {
        c->want_drain = true;
        return LS_EBUSY;
    }
    return 0;
}

int ls_conn_sendv(ls_conn_t *c, uint8_t type, const struct iovec *iov, int iovcnt)
{
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    int rc = send_check(c, len);
    return rc ? rc : send_or_queue(c, type, 0, iov, iovcnt, len);
}

int ls_conn_send(ls_conn_t *c, uint8_t type, const void *body, size_t len)
{
    struct iovec iov = {.iov_base = (void *) body, .iov_len = len};
    return ls_conn_sendv(c, type, &iov, 1);
}

int ls_conn_send_raw(ls_conn_t *c, uint8_t type, const void *zbody, size_t len)
{
    int rc = send_check(c, len);
    if (rc) return rc;
    if (!c->zstd_level) return LS_ESTATE;
    struct iovec iov = {.iov_base = (void *) zbody, .iov_len = len};
    return send_or_queue(c, type, LS_FRAME_FLAG_ZSTD, &iov, 1, len);
}

int ls__conn_send_now(ls_conn_t *c, uint8_t type, const void *body, size_t len)
{
    if (c->state != LS__CONN_READY) return LS_ESTATE;
    struct iovec iov = {.iov_base = (void *) body, .iov_len = len};
    return ls__conn_send_frame(c, type, 0, &iov, 1);
}

int ls_conn_set_compression(ls_conn_t *c, int level)
{
    if (c->state == LS__CONN_CLOSING) return LS_ECLOSED;
    if (level == 0) {
        c->zstd_level = 0;
        return 0;
    }
    int rc = ls__zstd_enable(c, level);
    if (!rc && c->opts.offload_compression) rc = ls__off_start(c);
    return rc;
}

void ls__send_free(ls_conn_t *c)
{
    free(c->wst);
    c->wst = NULL;
    free(c->wspare);
    c->wspare = NULL;
    free(c->pspare[0]);
    free(c->pspare[1]);
    c->pspare[0] = c->pspare[1] = NULL;
    while (c->pending) {
        struct ls__pframe *p = c->pending;
        c->pending = p->next;
        free(p->zbody);
        free(p);
    }
    c->pending_tail = NULL;
    c->pending_bytes = 0;
}
