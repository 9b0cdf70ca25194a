/*
 * tcp: sockets through libuv: connect (with an optional local bind), listen/accept, socket
 * options (TCP_NODELAY, keepalive, TCP_USER_TIMEOUT), the read callbacks, and the plain driver
 * (bytes as they are; integrity by the per-frame checksum in conn.c).
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "transport/internal.h"

#define COMPONENT      "transport"
#define LISTEN_BACKLOG 128 /* pending connections the kernel keeps */

int ls__parse_addr(const char *addr, int port, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (!addr || port < 0 || port > 65535) return LS_EINVAL;
    if (uv_ip4_addr(addr, port, (struct sockaddr_in *) out) == 0) return 0;
    if (uv_ip6_addr(addr, port, (struct sockaddr_in6 *) out) == 0) return 0;
    return LS_EINVAL;
}

static void addr_name(const struct sockaddr_storage *sa, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *) sa;
        uv_ip4_name(s, ip, sizeof(ip));
        port = ntohs(s->sin_port);
        snprintf(out, len, "%s:%d", ip, port);
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *) sa;
        uv_ip6_name(s, ip, sizeof(ip));
        port = ntohs(s->sin6_port);
        snprintf(out, len, "[%s]:%d", ip, port);
    }
}

int ls__tcp_setup(ls_conn_t *c)
{
    struct sockaddr_storage sa;
    int n = sizeof(sa);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *) &sa, &n) == 0)
        addr_name(&sa, c->peer, sizeof(c->peer));
    uv_tcp_nodelay(&c->tcp, 1);
    /* Keepalive and TCP_USER_TIMEOUT are the belt under the heartbeats: the kernel probes an idle
     * connection after dead_ms and gives up on data (or a zero window) unacknowledged for
     * tcp_user_timeout_ms. */
    unsigned idle = LS_MAX(1u, c->opts.dead_ms / 1000);
    uv_tcp_keepalive(&c->tcp, 1, idle);
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *) &c->tcp, &fd) == 0) {
        int intvl = 1, cnt = (int) LS_MAX(1u, idle), uto = (int) c->opts.tcp_user_timeout_ms;
        int lowat = LS__NOTSENT_LOWAT; /* keeps heartbeats from waiting behind megabytes */
        if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) != 0 ||
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) != 0 ||
            setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto)) != 0 ||
            setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat)) != 0)
            ls_log(LS_LOG_WARN, COMPONENT, "%s: cannot set keepalive/user timeout/lowat options",
                   c->peer);
    }
    return 0;
}

/* Plain TCP reads straight into rx, as much as it has room for (at least LS__READ_CHUNK after
 * the partial frame is moved to its start): the bytes are framed where the socket put them, no
 * copy out of rd_buf, and a backlog takes one read per frame or more instead of one per 64 KiB.
 * TLS reads ciphertext into rd_buf for OpenSSL. */
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void) suggested;
    ls_conn_t *c = h->data;
    if (c->drv != &ls__driver_tcp) {
        *buf = uv_buf_init((char *) c->rd_buf, LS__READ_CHUNK);
        return;
    }
    ls__conn_rx_room(c);
    *buf = uv_buf_init((char *) c->rx + c->rx_end, (unsigned) (LS__RX_CAP - c->rx_end));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    ls_conn_t *c = s->data;
    if (nread == 0 || c->state == LS__CONN_CLOSING) return;
    if (nread < 0) {
        if (nread == UV_EOF) /* a cut in the middle of a record or a frame is said so */
            ls__conn_fail(c, LS_ECONNRESET, "%s closed the connection%s", c->peer,
                          c->ssl && SSL_has_pending(c->ssl) ? " in the middle of a TLS record"
                          : ls__conn_rx_partial(c)          ? " in the middle of a frame"
                                                            : "");
        else
            ls__conn_fail(c, ls__uv_err((int) nread), "read from %s failed: %s", c->peer,
                          uv_strerror((int) nread));
        return;
    }
    c->stats.wire_bytes_received += (uint64_t) nread;
    c->stats.last_rx_mono_ns = ls_mono_ns();
    if (c->drv->on_read(c, (const uint8_t *) buf->base, (size_t) nread) < 0) return;
    ls__conn_pump(c);
}

void ls__tcp_read_start(ls_conn_t *c)
{
    if (c->reading || c->state == LS__CONN_CLOSING) return;
    int rc = uv_read_start((uv_stream_t *) &c->tcp, alloc_cb, read_cb);
    if (rc < 0) {
        ls__conn_fail(c, ls__uv_err(rc), "cannot read from %s: %s", c->peer, uv_strerror(rc));
        return;
    }
    c->reading = true;
}

void ls__tcp_read_stop(ls_conn_t *c)
{
    if (!c->reading) return;
    uv_read_stop((uv_stream_t *) &c->tcp);
    c->reading = false;
}

/* ---- client ---------------------------------------------------------------------------- */
static void connect_cb(uv_connect_t *req, int status)
{
    ls_conn_t *c = req->data;
    if (c->state == LS__CONN_CLOSING) return;
    if (status < 0) {
        ls__conn_fail(c, ls__uv_err(status), "connect to %s failed: %s", c->peer,
                      uv_strerror(status));
        return;
    }
    ls__tcp_setup(c);
    c->state = LS__CONN_HANDSHAKE;
    ls__tcp_read_start(c);
    if (c->state != LS__CONN_CLOSING) c->drv->start(c);
}

/* Callbacks present, heartbeats more frequent than the deadline, TLS or an explicit opt-out; a
 * client must name the peer it expects, a listener may defer the name to the HELLO. */
static int check_opts(const ls_conn_opts_t *o, bool client)
{
    if (!o->on_frame || !o->on_close) return LS_EINVAL;
    uint32_t hb = o->heartbeat_ms ? o->heartbeat_ms : LS_CONN_HEARTBEAT_MS_DEFAULT;
    uint32_t dead = o->dead_ms ? o->dead_ms : LS_CONN_DEAD_MS_DEFAULT;
    if (hb >= dead) return LS_EINVAL; /* the peer would be declared dead between heartbeats */
    if (o->insecure_plaintext) return o->tls ? LS_EINVAL : 0; /* contradictory: refuse */
    if (!o->tls) return LS_EINVAL;
    if (o->peer_name) return *o->peer_name ? 0 : LS_EINVAL;
    return client ? LS_EINVAL : 0;
}

int ls_conn_connect(uv_loop_t *loop, const char *addr, int port, const ls_conn_opts_t *opts,
                    ls_conn_t **out)
{
    struct sockaddr_storage sa, local;
    int rc = check_opts(opts, true);
    if (rc == 0) rc = ls__parse_addr(addr, port, &sa);
    if (rc == 0 && opts->bind_addr) rc = ls__parse_addr(opts->bind_addr, 0, &local);
    if (rc) return rc;
    ls_conn_t *c =
        ls__conn_new(loop, opts, opts->insecure_plaintext ? NULL : opts->tls->ssl_ctx, true);
    if (!c) return LS_ENOMEM;
    addr_name(&sa, c->peer, sizeof(c->peer));
    if (opts->bind_addr) {
        rc = uv_tcp_bind(&c->tcp, (const struct sockaddr *) &local, 0);
        if (rc < 0) {
            ls__conn_fail(c, ls__uv_err(rc), "cannot bind to %s: %s", opts->bind_addr,
                          uv_strerror(rc));
            return ls__uv_err(rc);
        }
    }
    c->connect_req.data = c;
    rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *) &sa, connect_cb);
    if (rc < 0) {
        ls__conn_fail(c, ls__uv_err(rc), "cannot connect to %s: %s", c->peer, uv_strerror(rc));
        return ls__uv_err(rc);
    }
    ls__dead_arm(c);
    c->handed_out = true;
    *out = c;
    return 0;
}

/* ---- server ---------------------------------------------------------------------------- */
static void on_connection(uv_stream_t *server, int status)
{
    ls_listener_t *l = server->data;
    if (status < 0 || l->closing) {
        if (status < 0) ls_log(LS_LOG_WARN, COMPONENT, "accept failed: %s", uv_strerror(status));
        return;
    }
    ls_conn_t *c = ls__conn_new(l->loop, &l->conn_opts, l->ssl_ctx, false);
    if (!c) {
        ls_log(LS_LOG_ERROR, COMPONENT, "out of memory accepting a connection");
        return;
    }
    int rc = uv_accept(server, (uv_stream_t *) &c->tcp);
    if (rc < 0) {
        ls__conn_fail(c, ls__uv_err(rc), "accept failed: %s", uv_strerror(rc));
        return;
    }
    ls__tcp_setup(c);
    c->state = LS__CONN_HANDSHAKE;
    ls__dead_arm(c);
    c->handed_out = true;
    if (l->on_accept) l->on_accept(l, c);
    ls__tcp_read_start(c);
    if (c->state != LS__CONN_CLOSING) c->drv->start(c);
}

static void listener_free(uv_handle_t *h)
{
    ls_listener_t *l = h->data;
    if (l->on_close) l->on_close(l);
    SSL_CTX_free(l->ssl_ctx);
    free(l->peer_name);
    free(l);
}

static int listener_fail(ls_listener_t *l, int uverr)
{
    uv_close((uv_handle_t *) &l->tcp, listener_free);
    return ls__uv_err(uverr);
}

int ls_listener_start(uv_loop_t *loop, const char *addr, int port, const ls_conn_opts_t *conn_opts,
                      ls_listener_accept_cb on_accept, void *data, ls_listener_t **out)
{
    struct sockaddr_storage sa;
    int rc = check_opts(conn_opts, false);
    if (rc == 0) rc = ls__parse_addr(addr, port, &sa);
    if (rc) return rc;
    ls_listener_t *l = calloc(1, sizeof(*l));
    if (!l) return LS_ENOMEM;
    l->loop = loop;
    l->conn_opts = *conn_opts;
    l->peer_name = conn_opts->peer_name ? strdup(conn_opts->peer_name) : NULL;
    l->conn_opts.peer_name = l->peer_name;
    l->conn_opts.tls = NULL;
    if (!conn_opts->insecure_plaintext) {
        l->ssl_ctx = conn_opts->tls->ssl_ctx;
        SSL_CTX_up_ref(l->ssl_ctx);
    }
    l->on_accept = on_accept;
    l->data = data;
    uv_tcp_init(loop, &l->tcp);
    l->tcp.data = l;
    if ((rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *) &sa, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *) &l->tcp, LISTEN_BACKLOG, on_connection)) < 0) {
        ls_log(LS_LOG_ERROR, COMPONENT, "cannot listen on %s:%d: %s", addr, port, uv_strerror(rc));
        return listener_fail(l, rc);
    }
    struct sockaddr_storage bound;
    int n = sizeof(bound);
    uv_tcp_getsockname(&l->tcp, (struct sockaddr *) &bound, &n);
    l->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &bound)->sin6_port
                                                : ((struct sockaddr_in *) &bound)->sin_port);
    *out = l;
    return 0;
}

int ls_listener_port(const ls_listener_t *l)
{
    return l->port;
}

void *ls_listener_data(const ls_listener_t *l)
{
    return l->data;
}

void ls_listener_close(ls_listener_t *l, ls_listener_close_cb on_close)
{
    if (l->closing) return;
    l->closing = true;
    l->on_close = on_close;
    uv_close((uv_handle_t *) &l->tcp, listener_free);
}

/* ---- the plain driver ------------------------------------------------------------------ */
static int plain_start(ls_conn_t *c)
{
    ls__conn_ready(c);
    return 0;
}

/* The socket read into rx itself (alloc_cb): the bytes are in place. */
static int plain_on_read(ls_conn_t *c, const uint8_t *buf, size_t len)
{
    LS_ASSERT(buf == c->rx + c->rx_end && len <= LS__RX_CAP - c->rx_end);
    (void) buf;
    c->rx_end += len;
    return 0;
}

static int plain_pull(ls_conn_t *c, uint8_t *out, size_t cap, size_t *got)
{
    (void) c;
    (void) out;
    (void) cap;
    *got = 0; /* nothing staged: the reads land in rx */
    return 0;
}

static int plain_write(ls_conn_t *c, const uint8_t *buf, size_t len)
{
    return ls__conn_write_raw(c, buf, len);
}

const ls__driver_t ls__driver_tcp = {
    .name = "tcp",
    .start = plain_start,
    .on_read = plain_on_read,
    .pull = plain_pull,
    .write = plain_write,
    .bye = NULL,
    .free = NULL,
};
