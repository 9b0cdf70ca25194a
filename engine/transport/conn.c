/*
 * conn: the connection object: creation, closing, the receive pump (framing, checksums,
 * decompression, delivery, pause/resume) and the public accessors (see transport.h and
 * internal.h). The send path is in send.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "transport/internal.h"

#define COMPONENT "transport"

int ls__uv_err(int uverr)
{
    switch (uverr) {
    case UV_ECONNREFUSED:
        return LS_ECONNREFUSED;
    case UV_ECONNRESET:
    case UV_EPIPE:
    case UV_EOF:
    case UV_ECONNABORTED:
        return LS_ECONNRESET;
    case UV_ETIMEDOUT:
        return LS_ETIMEDOUT;
    case UV_EADDRINUSE:
        return LS_EADDRINUSE;
    case UV_EADDRNOTAVAIL:
        return LS_EADDRNOTAVAIL;
    case UV_ENETUNREACH:
    case UV_EHOSTUNREACH:
    case UV_ENETDOWN:
        return LS_EUNREACH;
    case UV_EACCES:
    case UV_EPERM:
        return LS_EACCES;
    case UV_ENOMEM:
        return LS_ENOMEM;
    case UV_EINVAL:
        return LS_EINVAL;
    default:
        return LS_EIO;
    }
}

ls_conn_t *ls__conn_new(uv_loop_t *loop, const ls_conn_opts_t *opts, SSL_CTX *ssl_ctx,
                        bool is_client)
{
    ls_conn_t *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->loop = loop;
    c->opts = *opts;
    c->is_client = is_client;
    if (!c->opts.heartbeat_ms) c->opts.heartbeat_ms = LS_CONN_HEARTBEAT_MS_DEFAULT;
    if (!c->opts.dead_ms) c->opts.dead_ms = LS_CONN_DEAD_MS_DEFAULT;
    if (!c->opts.send_hwm) c->opts.send_hwm = LS_CONN_SEND_HWM_DEFAULT;
    if (!c->opts.tcp_user_timeout_ms) c->opts.tcp_user_timeout_ms = LS_CONN_USER_TIMEOUT_MS_DEFAULT;
    c->opts.tcp_user_timeout_ms = LS_MAX(c->opts.tcp_user_timeout_ms, 2 * c->opts.dead_ms);
    c->opts.bind_addr = NULL; /* used by connect only, not kept */
    c->drv = ssl_ctx ? &ls__driver_tls : &ls__driver_tcp;
    c->opts.tls = NULL; /* only ssl_ctx, our own reference, is used */
    c->peer_name = opts->peer_name ? strdup(opts->peer_name) : NULL;
    c->opts.peer_name = c->peer_name;
    c->rd_buf = malloc(LS__READ_CHUNK);
    c->rx = malloc(LS__RX_CAP);
    c->tx = malloc(LS__FRAME_WIRE_MAX);
    snprintf(c->peer, sizeof(c->peer), "(not connected)");
    if (!c->rd_buf || !c->rx || !c->tx || (opts->peer_name && !c->peer_name)) goto fail;
    if (ssl_ctx) {
        SSL_CTX_up_ref(ssl_ctx);
        c->ssl_ctx = ssl_ctx;
    }
    uv_tcp_init(loop, &c->tcp);
    uv_timer_init(loop, &c->hb_timer);
    uv_timer_init(loop, &c->dead_timer);
    uv_timer_init(loop, &c->pump_timer);
    c->open_handles = 4;
    c->tcp.data = c->hb_timer.data = c->dead_timer.data = c->pump_timer.data = c;
    c->start_mono = c->stats.last_rx_mono_ns = ls_mono_ns();
    return c;
fail:
    free(c->rd_buf);
    free(c->rx);
    free(c->tx);
    free(c->peer_name);
    free(c);
    return NULL;
}

static void conn_free(ls_conn_t *c)
{
    if (c->drv->free) c->drv->free(c);
    ls__off_free(c);
    ls__send_free(c); /* after ls__off_free joined the worker: it may hold frames of the queue */
    ls__zstd_free(c);
    free(c->rd_buf);
    free(c->rx);
    free(c->tx);
    free(c->ztx);
    free(c->dbuf);
    free(c->peer_name);
    free(c);
}

static void handle_closed(uv_handle_t *h)
{
    ls_conn_t *c = h->data;
    if (--c->open_handles > 0) return;
    if (c->handed_out) c->opts.on_close(c, c->close_status, c->close_msg);
    conn_free(c);
}

int ls__conn_fail(ls_conn_t *c, int status, const char *fmt, ...)
{
    if (c->state == LS__CONN_CLOSING) return status;
    c->state = LS__CONN_CLOSING;
    c->close_status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->close_msg, sizeof(c->close_msg), fmt, ap);
    va_end(ap);
    if (status < 0) {
        ls_log(LS_LOG_WARN, COMPONENT, "%s connection with %s closed: %s (%s)", c->drv->name,
               c->peer, c->close_msg, ls_err_name(status));
    } else {
        ls_log(LS_LOG_DEBUG, COMPONENT, "connection with %s closed: %s", c->peer, c->close_msg);
    }
    if (c->drv->bye) c->drv->bye(c);
    ls__hb_stop(c);
    ls__tcp_read_stop(c);
    uv_close((uv_handle_t *) &c->tcp, handle_closed);
    uv_close((uv_handle_t *) &c->hb_timer, handle_closed);
    uv_close((uv_handle_t *) &c->dead_timer, handle_closed);
    uv_close((uv_handle_t *) &c->pump_timer, handle_closed);
    if (c->off) {
        ls__off_stop(c); /* joins the worker: no wake-up after this */
        uv_close((uv_handle_t *) &c->off_async, handle_closed);
    }
    return status;
}

void ls_conn_close(ls_conn_t *c)
{
    ls__conn_fail(c, 0, "closed by us");
}

void ls__conn_ready(ls_conn_t *c)
{
    if (c->state != LS__CONN_HANDSHAKE) return;
    c->state = LS__CONN_READY;
    ls_log(LS_LOG_INFO, COMPONENT, "%s connection with %s%s%s ready", c->drv->name, c->peer,
           c->peer_name ? " as " : "", c->peer_name ? c->peer_name : "");
    if (c->paused) ls__tcp_read_stop(c);
    ls__hb_start(c);
    if (c->state == LS__CONN_READY && c->opts.on_ready) c->opts.on_ready(c);
}

/* ---- receive ------------------------------------------------------------------------------- */
/* Replaces f's compressed body by its decompressed form in c->dbuf, header rewritten. */
static int inflate(ls_conn_t *c, ls_conn_frame_t *f)
{
    size_t dlen;
    int rc = ls_zbody_decompress(c->z, f->bytes + LS_FRAME_HEADER_SIZE, f->body_len,
                                 c->dbuf + LS_FRAME_HEADER_SIZE, LS_FRAME_MAX_BODY, &dlen);
    if (rc)
        return ls__conn_fail(c, rc, "frame %llu (%s) from %s: compressed body: %s",
                             (unsigned long long) f->seq, ls_frame_type_name(f->type), c->peer,
                             rc == LS_EFRAMETOOBIG ? "decompresses beyond the frame limit"
                                                   : "not a valid zstd frame");
    ls_frame_header_t dh = {.body_len = (uint32_t) dlen, .type = f->type, .flags = 0};
    ls_frame_header_encode(&dh, c->dbuf);
    f->bytes = c->dbuf;
    f->body_len = (uint32_t) dlen;
    f->flags = 0;
    return 0;
}

/* Checks, decompresses and hands on the frame at rx_start (need bytes, header h). */
static int deliver(ls_conn_t *c, const ls_frame_header_t *h, size_t need)
{
    uint8_t *p = c->rx + c->rx_start;
    size_t len = LS_FRAME_HEADER_SIZE + h->body_len;
    uint64_t seq = c->rx_seq++;
    if (c->drv == &ls__driver_tcp && ls_get32(p + len) != ls_cksum32(p, len, seq))
        return ls__conn_fail(c, LS_ECORRUPT, "frame %llu (%s, %u bytes) from %s: checksum mismatch",
                             (unsigned long long) seq, ls_frame_type_name(h->type), h->body_len,
                             c->peer);
    ls_conn_frame_t f = {.type = h->type,
                         .flags = h->flags,
                         .bytes = p,
                         .body_len = h->body_len,
                         .seq = seq,
                         .wire_len = (uint32_t) need};
    if (h->flags & LS_FRAME_FLAG_ZSTD) {
        if (!c->zstd_rx_ok)
            return ls__conn_fail(c, LS_EPROTO,
                                 "compressed frame %llu from %s before compression "
                                 "was negotiated",
                                 (unsigned long long) seq, c->peer);
        /* chunks: to the connection's zstd worker (offload), or left to the layer above
         * (deliver_compressed), or decompressed here */
        if (c->off && !c->opts.deliver_compressed && h->type != LS_FRAME_HEARTBEAT) {
            c->rx_start += need;
            c->stats.frames_received++;
            return ls__off_rx_add(c, &f, true); /* the worker's, in order */
        } else if (!c->opts.deliver_compressed || h->type == LS_FRAME_HEARTBEAT) {
            if (h->type != LS_FRAME_HEARTBEAT) c->stats.zstd_loop_calls++; /* on the loop */
            int rc = inflate(c, &f);
            if (rc) return rc;
        }
    }
    f.body = f.bytes + LS_FRAME_HEADER_SIZE;
    c->rx_start += need;
    c->stats.frames_received++;
    if (f.type != LS_FRAME_HEARTBEAT && c->rxhold) return ls__off_rx_add(c, &f, false); /* behind */
    c->stats.bytes_received += LS_FRAME_HEADER_SIZE + f.body_len;
    if (f.type == LS_FRAME_HEARTBEAT) {
        ls_frame_header_t hh = {.body_len = f.body_len, .type = f.type, .flags = 0};
        return ls__hb_receive(c, &hh, f.body, f.body_len);
    }
    c->opts.on_frame(c, &f);
    return 0;
}

/* One frame out of rx: 1 delivered, 0 more bytes needed, < 0 closed. */
static int next_frame(ls_conn_t *c)
{
    size_t avail = c->rx_end - c->rx_start;
    if (avail < LS_FRAME_HEADER_SIZE) return 0;
    ls_frame_header_t h;
    int rc = ls_frame_header_decode(c->rx + c->rx_start, avail, &h);
    if (rc) {
        const uint8_t *p = c->rx + c->rx_start;
        return ls__conn_fail(c, rc,
                             "bad frame header from %s after %llu frames: length %u, "
                             "type 0x%02x, flags 0x%02x",
                             c->peer, (unsigned long long) c->rx_seq, ls_get32(p), p[4], p[5]);
    }
    size_t need = LS_FRAME_HEADER_SIZE + h.body_len;
    if (c->drv == &ls__driver_tcp) need += LS_FRAME_CKSUM_SIZE;
    if (avail < need) return 0;
    rc = deliver(c, &h, need);
    return rc < 0 ? rc : 1;
}

bool ls__conn_rx_partial(const ls_conn_t *c)
{
    size_t avail = c->rx_end - c->rx_start;
    if (avail == 0) return false;
    ls_frame_header_t h;
    if (ls_frame_header_decode(c->rx + c->rx_start, avail, &h)) return true; /* short or bad */
    size_t need = LS_FRAME_HEADER_SIZE + h.body_len;
    if (c->drv == &ls__driver_tcp) need += LS_FRAME_CKSUM_SIZE;
    return avail < need;
}

void ls__conn_rx_room(ls_conn_t *c)
{
    if (c->rx_start == c->rx_end) {
        c->rx_start = c->rx_end = 0;
    } else if (LS__RX_CAP - c->rx_end < LS__READ_CHUNK) {
        memmove(c->rx, c->rx + c->rx_start, c->rx_end - c->rx_start);
        c->rx_end -= c->rx_start;
        c->rx_start = 0;
    }
}

/* More plaintext into rx; returns the bytes added or < 0 when closed. */
static ssize_t fill(ls_conn_t *c)
{
    ls__conn_rx_room(c);
    size_t got = 0;
    int rc = c->drv->pull(c, c->rx + c->rx_end, LS__RX_CAP - c->rx_end, &got);
    if (rc < 0) return rc;
    c->rx_end += got;
    return (ssize_t) got;
}

void ls__conn_pump(ls_conn_t *c)
{
    if (c->rxhold) ls__off_deliver(c); /* frames held for the worker go first */
    while (c->state != LS__CONN_CLOSING) {
        if (c->paused && c->state == LS__CONN_READY) break; /* buffered frames wait */
        if (ls__off_rx_full(c)) break;                      /* the worker catches up first */
        if (c->state == LS__CONN_READY) {
            int rc = next_frame(c);
            if (rc < 0) return;
            if (rc > 0) continue;
        }
        ssize_t got = fill(c);
        if (got < 0) return;
        if (got == 0) break;
    }
    if (c->state == LS__CONN_CLOSING) return;
    if ((c->paused && c->state == LS__CONN_READY) || ls__off_rx_full(c))
        ls__tcp_read_stop(c);
    else
        ls__tcp_read_start(c);
}

static void pump_cb(uv_timer_t *t)
{
    ls__conn_pump(t->data);
}

void ls_conn_pause(ls_conn_t *c)
{
    if (c->state == LS__CONN_CLOSING || c->paused) return;
    c->paused = true;
    if (c->state == LS__CONN_READY) ls__tcp_read_stop(c); /* else the handshake goes on */
}

void ls_conn_resume(ls_conn_t *c)
{
    if (c->state == LS__CONN_CLOSING || !c->paused) return;
    c->paused = false;
    c->stats.last_rx_mono_ns = ls_mono_ns(); /* the deadline restarts: we were not reading */
    uv_timer_start(&c->pump_timer, pump_cb, 0, 0);
}

/* ---- accessors ----------------------------------------------------------------------------- */
bool ls_conn_is_tls(const ls_conn_t *c)
{
    return c->drv == &ls__driver_tls;
}

bool ls_conn_is_ready(const ls_conn_t *c)
{
    return c->state == LS__CONN_READY;
}

const char *ls_conn_peer(const ls_conn_t *c)
{
    return c->peer;
}

const char *ls_conn_peer_name(const ls_conn_t *c)
{
    return c->drv == &ls__driver_tls && c->tls_done ? c->peer_name : NULL;
}

void ls_conn_stats(const ls_conn_t *c, ls_conn_stats_t *out)
{
    *out = c->stats;
}

void *ls_conn_data(const ls_conn_t *c)
{
    return c->opts.data;
}

void ls_conn_set_data(ls_conn_t *c, void *data)
{
    c->opts.data = data;
}
