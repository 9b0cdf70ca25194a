/*
 * sockq: the socket queue (see internal.h and send.c): encoded bytes handed to libuv, written at
 * once when the socket takes them (uv_try_write) and else queued as write requests from a buffer
 * of their own, counted in sock_queued; the TLS stage (records written by our BIO, flushed
 * together) and the spare buffer that keeps their memory mapped between writes.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "transport/internal.h"

#define STAGE_MIN (64u * 1024u) /* smallest stage allocated, bytes */

void ls__sock_account(ls_conn_t *c)
{
    c->stats.send_queued = c->pending_bytes + c->sock_queued;
    if (c->stats.send_queued > c->stats.send_queued_max)
        c->stats.send_queued_max = c->stats.send_queued;
}

/* One libuv write request: len bytes of w. */
struct ls__wpiece {
    uv_write_t req;     /* req.data is the connection */
    struct ls__wbuf *w; /* the buffer the bytes are in */
    size_t len;         /* bytes */
};

/* A written buffer is kept as the connection's spare (the larger of the two is kept), so that the
 * next stage or queued write reuses memory that is mapped and warm instead of a fresh malloc of up
 * to a frame's size, which glibc takes from and gives back to the kernel (page faults, zeroing). */
static void spare_put(ls_conn_t *c, struct ls__wbuf *w)
{
    if (c->wspare && c->wspare->cap >= w->cap) {
        free(w);
        return;
    }
    free(c->wspare);
    w->off = w->len = 0;
    w->pieces = NULL;
    w->refs = 0;
    c->wspare = w;
}

/* A buffer with room for cap bytes: the spare when it is large enough, else a new one. */
static struct ls__wbuf *spare_get(ls_conn_t *c, size_t cap)
{
    struct ls__wbuf *w = c->wspare;
    if (w && w->cap >= cap) {
        c->wspare = NULL;
        return w;
    }
    w = malloc(sizeof(*w) + cap);
    if (!w) return NULL;
    w->off = w->len = 0;
    w->pieces = NULL;
    w->refs = 0;
    w->cap = cap;
    return w;
}

static void write_cb(uv_write_t *req, int status)
{
    struct ls__wpiece *p = (struct ls__wpiece *) req;
    ls_conn_t *c = req->data;
    c->sock_queued -= p->len;
    if (status == 0) c->stats.wire_bytes_sent += p->len;
    struct ls__wbuf *w = p->w;
    if (--w->refs == 0) { /* p is one of w->pieces */
        free(w->pieces);
        spare_put(c, w);
    }
    ls__sock_written(c, status);
}

/* After a write request's callback: the socket queue shrank (or the connection failed). */
void ls__sock_written(ls_conn_t *c, int status)
{
    ls__sock_account(c);
    if (status < 0) {
        ls__conn_fail(c, ls__uv_err(status), "write to %s failed: %s", c->peer,
                      uv_strerror(status));
        return;
    }
    ls__send_flush(c);
    if (c->want_drain && c->stats.send_queued <= c->opts.send_hwm / 2 &&
        c->state == LS__CONN_READY) {
        c->want_drain = false;
        if (c->opts.on_drain) c->opts.on_drain(c);
    }
}

/* Writes what the socket takes at once, when nothing is queued before: the bytes written, or
 * < 0 when the connection failed (closed). */
ssize_t ls__sock_write_now(ls_conn_t *c, const uint8_t *buf, size_t len)
{
    if (c->sock_queued) return 0;
    uv_buf_t b = uv_buf_init((char *) buf, (unsigned) len);
    int n = uv_try_write((uv_stream_t *) &c->tcp, &b, 1);
    if (n == UV_EAGAIN) return 0;
    if (n < 0)
        return ls__conn_fail(c, ls__uv_err(n), "write to %s failed: %s", c->peer, uv_strerror(n));
    c->stats.wire_bytes_sent += (uint64_t) n;
    return n;
}

/* Queues w's bytes from w->off as one write request, or two when they are more than LS__SOCK_TAIL:
 * the bulk, then the last LS__SOCK_TAIL bytes, so that the socket queue falls below LS__SOCK_LOW
 * (and the next frame is encoded) while the tail is still being written. Takes w (freed by the last
 * piece's write_cb, or here). */
static int write_later(ls_conn_t *c, struct ls__wbuf *w)
{
    size_t rest = w->len - w->off, n = rest > LS__SOCK_TAIL ? 2 : 1;
    w->pieces = malloc(n * sizeof(*w->pieces));
    if (!w->pieces) {
        free(w);
        return ls__conn_fail(c, LS_ENOMEM, "out of memory queuing %zu bytes", rest);
    }
    w->refs = (unsigned) n;
    for (size_t i = 0; i < n; i++) {
        struct ls__wpiece *p = &w->pieces[i];
        p->w = w;
        p->len = n == 2 && i == 0 ? rest - LS__SOCK_TAIL : w->len - w->off;
        p->req.data = c;
        uv_buf_t b = uv_buf_init((char *) w->data + w->off, (unsigned) p->len);
        int rc = uv_write(&p->req, (uv_stream_t *) &c->tcp, &b, 1, write_cb);
        if (rc < 0) { /* the pieces queued before still call back; the others never will */
            w->refs -= (unsigned) (n - i);
            if (w->refs == 0) {
                free(w->pieces);
                free(w);
            }
            return ls__conn_fail(c, ls__uv_err(rc), "write to %s failed: %s", c->peer,
                                 uv_strerror(rc));
        }
        w->off += p->len;
        c->sock_queued += p->len;
    }
    ls__sock_account(c);
    return 0;
}

int ls__conn_write_raw(ls_conn_t *c, const uint8_t *buf, size_t len)
{
    if (c->state == LS__CONN_CLOSING) return LS_ECLOSED;
    ssize_t done = ls__sock_write_now(c, buf, len);
    if (done < 0) return (int) done;
    if ((size_t) done == len) return 0;
    size_t rest = len - (size_t) done;
    struct ls__wbuf *w = spare_get(c, rest);
    if (!w) return ls__conn_fail(c, LS_ENOMEM, "out of memory queuing %zu bytes", rest);
    memcpy(w->data, buf + done, rest);
    w->len = rest;
    return write_later(c, w);
}

int ls__stage_reserve(ls_conn_t *c, size_t n)
{
    struct ls__wbuf *w = c->wst;
    size_t need = (w ? w->len : 0) + n;
    if (w && need <= w->cap) return 0;
    if (!w && c->wspare && c->wspare->cap >= need) { /* the buffer last written, warm */
        c->wst = c->wspare;
        c->wspare = NULL;
        return 0;
    }
    size_t cap = LS_MAX(need, w ? 2 * w->cap : STAGE_MIN);
    struct ls__wbuf *nw = realloc(w, sizeof(*nw) + cap);
    if (!nw) return LS_ENOMEM;
    if (!w) {
        nw->off = nw->len = 0;
        nw->pieces = NULL;
    }
    nw->cap = cap;
    c->wst = nw;
    return 0;
}

int ls__stage_add(ls_conn_t *c, const void *buf, size_t len)
{
    int rc = ls__stage_reserve(c, len);
    if (rc) return rc;
    memcpy(c->wst->data + c->wst->len, buf, len);
    c->wst->len += len;
    return 0;
}

int ls__stage_flush(ls_conn_t *c)
{
    struct ls__wbuf *w = c->wst;
    if (!w || w->off == w->len) return 0;
    if (c->state == LS__CONN_CLOSING) {
        w->off = w->len = 0;
        return LS_ECLOSED;
    }
    ssize_t n = ls__sock_write_now(c, w->data + w->off, w->len - w->off);
    if (n < 0) return (int) n;
    w->off += (size_t) n;
    if (w->off == w->len) { /* all taken: the buffer stays for the next records */
        w->off = w->len = 0;
        return 0;
    }
    c->wst = NULL; /* the rest goes from this buffer; the next records get a new one */
    return write_later(c, w);
}

void ls__stage_bye(ls_conn_t *c)
{
    struct ls__wbuf *w = c->wst;
    if (!w) return;
    if (!c->sock_queued && w->off < w->len) { /* else it would go out of order */
        uv_buf_t b = uv_buf_init((char *) w->data + w->off, (unsigned) (w->len - w->off));
        (void) uv_try_write((uv_stream_t *) &c->tcp, &b, 1);
    }
    w->off = w->len = 0;
}
