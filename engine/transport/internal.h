/*
 * transport internals shared by conn.c (receive, close), send.c (queues), tcp.c (sockets, listener,
 * the plain driver), tls.c (the TLS driver), zstd.c (per-frame compression) and heartbeat.c
 * (timers).
 *
 * Receive path, pulled by ls__conn_pump() on the loop thread:
 *   read_cb -> drv->on_read (TLS: the bytes stay in rd_buf, the handshake advances, OpenSSL
 *   reads rd_buf through our BIO; plain TCP: the socket read straight into rx, see tcp.c's
 *   alloc_cb) -> drv->pull (plaintext; plain TCP: none) -> rx -> one frame at a time: checksum,
 *   decompress, heartbeat or on_frame.
 * Send path (send.c): ls_conn_send* -> frame queue (a copy, in order; skipped while it is empty
 * and the socket keeps up; a queued frame is encoded in place, header room before its body) or
 * the frame into tx scratch -> compress -> checksum -> drv->write (plain: ls__conn_write_raw:
 * uv_try_write, the rest copied into one uv_write request; TLS: SSL_write, its records into the
 * stage through our BIO, then ls__stage_flush: one uv_try_write, the rest queued from the stage's
 * own buffer), counted in sock_queued.
 *   Heartbeats skip the frame queue (ls__conn_send_now).
 *
 * With offload_compression, the compressing and decompressing steps are the zstd worker's
 * (offload.c): frames wait for it in order, in the frame queue and in rxhold.
 *
 * Threading: the loop thread only, except offload.c's worker, which touches only the frames it
 * was given (LS__Z_BUSY) and its own codec.
 */
#ifndef LS_TRANSPORT_INTERNAL_H
#define LS_TRANSPORT_INTERNAL_H

#include <openssl/ssl.h>
#include <zstd.h>

#include "core/core.h"
#include "proto/proto.h"
#include "transport/transport.h"

#define LS__READ_CHUNK (64u * 1024u) /* bytes asked of the socket per read */
#define LS__FRAME_WIRE_MAX                                                                         \
    (LS_FRAME_HEADER_SIZE + LS_FRAME_MAX_BODY + LS_FRAME_CKSUM_SIZE) /* largest frame, bytes */
#define LS__RX_CAP        (LS__FRAME_WIRE_MAX + LS__READ_CHUNK)      /* receive buffer, bytes */
#define LS__SOCK_LOW      (64u * 1024u) /* frames are encoded while the socket queue is below, bytes */
#define LS__NOTSENT_LOWAT (128 * 1024) /* TCP_NOTSENT_LOWAT: unsent bytes the kernel keeps */

#define LS__OFF_DEPTH 8 /* bodies each way with a connection's zstd worker at a time */
#define LS__OFF_RX_MAX                                                                             \
    (8u * 1024 * 1024) /* received bytes held for the worker before reading                        \
                          pauses (resumes at half) */

/* Where a frame's body stands with the zstd worker (offload_compression). */
typedef enum {
    LS__Z_NONE = 0, /* nothing to do: sent or delivered as it is */
    LS__Z_WAIT,     /* to be given to the worker */
    LS__Z_BUSY,     /* with the worker: only the worker touches its buffers */
    LS__Z_DONE      /* the worker's result is in (zrc, out) */
} ls__zstate_t;

/* Bytes on their way to the socket (send.c): filled at data + len, written from data + off. Once
 * handed to libuv they go as one write request, or two (the bulk, then a 32 KiB tail) so that the
 * socket queue shrinks (and the next frame is encoded) while the tail is written; the buffer is
 * freed with its last piece. */
struct ls__wpiece;
struct ls__wbuf {
    size_t off;                /* first byte not written yet */
    size_t len;                /* bytes in data */
    size_t cap;                /* room in data */
    struct ls__wpiece *pieces; /* with libuv: the write requests (NULL before) */
    unsigned refs;             /* with libuv: pieces not through their callback yet */
    uint8_t data[];            /* the bytes */
};

/* A frame waiting in the frame queue (send.c). With offload, a compressible body waits for the
 * worker (zstate) and the frames behind it wait for it. */
struct ls__pframe {
    struct ls__pframe *next; /* next in the queue */
    uint8_t type;            /* ls_frame_type_t */
    uint8_t flags;           /* LS_FRAME_FLAG_ZSTD for a body compressed by the caller */
    ls__zstate_t zstate;     /* offload: see ls__zstate_t */
    int zrc;                 /* worker: 0 or LS_ECOMPRESS / LS_ENOMEM */
    uint8_t *zbody;          /* worker: the compressed body (owned), NULL when it did not shrink */
    size_t zlen;             /* bytes in zbody */
    size_t len;              /* body bytes */
    size_t cap;              /* room for body bytes (>= len; a reused frame may have more) */
    uv_write_t wreq[2];      /* plain TCP: what the socket did not take, written from here */
    size_t wlen[2];          /* bytes of each write request */
    unsigned wrefs;          /* write requests not through their callback yet */
    uint8_t hdr[LS_FRAME_HEADER_SIZE]; /* room for the header: the frame is encoded in place */
    uint8_t body[]; /* the body, then LS_FRAME_CKSUM_SIZE bytes of room for the checksum */
};

struct ls__off;   /* a connection's zstd worker (offload.c) */
struct ls__rxent; /* a received frame held for the worker, in order (offload.c) */

typedef enum {
    LS__CONN_CONNECTING = 0, /* TCP connect under way (client) */
    LS__CONN_HANDSHAKE,      /* socket up, TLS handshake under way (or about to be ready) */
    LS__CONN_READY,          /* on_ready has run; frames flow */
    LS__CONN_CLOSING         /* handles closing; on_close pending */
} ls__conn_state_t;

/* The stream layer: plain TCP or TLS (Redis's ConnectionType). All return 0 or LS_E* and leave
 * a message in the connection through ls__conn_fail when they fail. */
typedef struct {
    const char *name;           /* "tcp" or "tls", for messages */
    int (*start)(ls_conn_t *c); /* socket connected/accepted: begin (handshake) */
    int (*on_read)(ls_conn_t *c, const uint8_t *buf, size_t len); /* bytes from the socket */
    /* Up to cap plaintext bytes into out; *got 0 when nothing more until the socket reads. */
    int (*pull)(ls_conn_t *c, uint8_t *out, size_t cap, size_t *got);
    int (*write)(ls_conn_t *c, const uint8_t *buf, size_t len); /* plaintext to send */
    void (*bye)(ls_conn_t *c);  /* best effort last words (alert, close_notify), no queuing */
    void (*free)(ls_conn_t *c); /* release driver state */
} ls__driver_t;

extern const ls__driver_t ls__driver_tcp;
extern const ls__driver_t ls__driver_tls;

struct ls_tls_ctx {
    SSL_CTX *ssl_ctx; /* TLS 1.3 only, verify peer, CA + our cert/key loaded */
};

struct ls_conn {
    uv_loop_t *loop;          /* owning loop (borrowed) */
    uv_tcp_t tcp;             /* the socket */
    uv_connect_t connect_req; /* client connect request */
    uv_timer_t hb_timer;      /* sends a heartbeat every heartbeat_ms */
    uv_timer_t dead_timer;    /* fires at the receive deadline (dead_ms after the last bytes) */
    uv_timer_t pump_timer;    /* 0 ms: delivers buffered frames after ls_conn_resume */
    int open_handles;         /* handles above not yet through their close callback */
    ls_conn_opts_t opts;      /* copy of the options; opts.peer_name points at peer_name */
    char *peer_name;          /* expected peer DNS name (owned copy), NULL without TLS */
    const ls__driver_t *drv;  /* stream layer */
    ls__conn_state_t state;   /* see ls__conn_state_t */
    bool is_client;           /* we connected (TLS client role) */
    bool handed_out;          /* the user holds the pointer: on_close is owed */
    bool reading;             /* uv_read_start is in effect */
    bool paused;              /* the application paused reading */
    bool want_drain;          /* ls_conn_send returned LS_EBUSY: on_drain owed */
    int close_status;         /* 0 or LS_E* given to on_close */
    char close_msg[LS_CONN_MSG_MAX]; /* message given to on_close */
    char peer[64];                   /* "ip:port" of the peer */

    /* TLS driver state (unused by plain TCP) */
    SSL_CTX *ssl_ctx;  /* our reference to the context (NULL for plain TCP) */
    SSL *ssl;          /* owns bio */
    BIO *bio;          /* OpenSSL's side of the stream (tls.c): reads rd_buf, writes wst */
    bool tls_done;     /* handshake finished on our side, peer verified */
    bool tls_accepted; /* client: the server proved it accepted us (ticket or data) */

    /* receive */
    uint8_t *rd_buf;      /* LS__READ_CHUNK bytes given to libuv for TLS reads (plain TCP reads
                             into rx) */
    size_t rd_off;        /* first unconsumed byte in rd_buf (TLS BIO) */
    size_t rd_len;        /* bytes in rd_buf from rd_off not consumed yet; reading stops while
                             there are any (the next read would overwrite them) */
    uint8_t *rx;          /* LS__RX_CAP bytes: plaintext, not yet framed */
    size_t rx_start;      /* first byte of the next frame in rx */
    size_t rx_end;        /* end of the bytes in rx */
    uint8_t *dbuf;        /* header + decompressed body of the current frame, LS__FRAME_WIRE_MAX */
    uint64_t rx_seq;      /* sequence number of the next frame received */
    bool zstd_rx_ok;      /* compressed frames from the peer are allowed */
    ls_zbody_t *z;        /* zstd contexts, both ways (created with compression) */
    struct ls__off *off;  /* offload_compression: the zstd worker, once compression is on */
    uv_async_t off_async; /* the worker's wake-up of the loop (initialised with off) */
    struct ls__rxent *rxhold;      /* offload: received frames not delivered yet, oldest first */
    struct ls__rxent *rxhold_tail; /* its last one */
    size_t rxhold_bytes;           /* their bytes as received */

    /* send (send.c) */
    struct ls__pframe *pending;      /* frame queue: accepted, not encoded yet, oldest first */
    struct ls__pframe *pending_tail; /* its last frame */
    size_t pending_bytes;            /* header + body bytes in the frame queue */
    size_t sock_queued;              /* encoded bytes handed to libuv, not yet written */
    struct ls__wbuf *wst;            /* TLS records staged for the socket (NULL: none yet) */
    struct ls__wbuf *wspare;         /* the largest buffer written so far, for reuse (send.c) */
    struct ls__pframe *pspare[2];    /* the largest frames sent from the queue, for reuse */
    uint8_t *tx;                     /* scratch: header + body + checksum of the frame being sent */
    uint8_t *ztx;                    /* scratch: same, compressed */
    uint64_t tx_seq;                 /* sequence number of the next frame sent */
    int zstd_level;                  /* 0: off, else the zstd level for bodies sent */

    /* heartbeats */
    uint64_t hb_seq;          /* our last heartbeat's counter */
    uint64_t peer_hb_send_ns; /* send_ns of the peer's last heartbeat, its wall clock */
    uint64_t peer_hb_rx_mono; /* ls_mono_ns() when it arrived */
    uint64_t start_mono;      /* ls_mono_ns() at connect/accept */

    ls_conn_stats_t stats; /* counters for ls_conn_stats */
};

struct ls_listener {
    uv_tcp_t tcp;                    /* listening socket */
    uv_loop_t *loop;                 /* owning loop (borrowed) */
    ls_conn_opts_t conn_opts;        /* template for accepted connections (peer_name copied,
                                        tls cleared: ssl_ctx below is used instead) */
    SSL_CTX *ssl_ctx;                /* our reference to the TLS context, NULL for plain TCP */
    char *peer_name;                 /* owned copy of conn_opts.peer_name */
    ls_listener_accept_cb on_accept; /* new connection */
    ls_listener_close_cb on_close;   /* after ls_listener_close */
    void *data;                      /* user pointer */
    int port;                        /* bound port */
    bool closing;                    /* ls_listener_close was called */
};

/* conn.c */
/* Allocates a connection with its handles initialised on loop, taking a reference on ssl_ctx
 * (NULL for plain TCP); NULL if out of memory. */
ls_conn_t *ls__conn_new(uv_loop_t *loop, const ls_conn_opts_t *opts, SSL_CTX *ssl_ctx,
                        bool is_client);
/* Closes with status (0 or LS_E*) and a printf message; logs failures with the peer. Idempotent:
 * the first call wins. Returns status, for `return ls__conn_fail(...)`. */
int ls__conn_fail(ls_conn_t *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Frames out of what the driver has, as far as the pause and the bytes allow; manages reading. */
void ls__conn_pump(ls_conn_t *c);
/* Whether the plaintext received ends in an incomplete frame. */
bool ls__conn_rx_partial(const ls_conn_t *c);
/* Room in rx for a read of at least LS__READ_CHUNK bytes at rx_end: an empty rx starts over,
 * a partial frame near the end is moved to the start. */
void ls__conn_rx_room(ls_conn_t *c);
/* The stream is ready: on_ready, heartbeats start. */
void ls__conn_ready(ls_conn_t *c);
/* Encodes and sends one frame (no flow-control check). flags may carry LS_FRAME_FLAG_ZSTD for a
 * body compressed by the caller. */
int ls__conn_send_frame(ls_conn_t *c, uint8_t type, uint8_t flags, const struct iovec *iov,
                        int iovcnt);
/* Encodes and sends one frame at once, ahead of the frame queue (heartbeats). LS_ESTATE before
 * ready. */
int ls__conn_send_now(ls_conn_t *c, uint8_t type, const void *body, size_t len);
void ls__send_free(ls_conn_t *c); /* drops the frame queue */
/* sockq.c. Hands bytes to the socket: written now or queued (counted in sock_queued). */
int ls__conn_write_raw(ls_conn_t *c, const uint8_t *buf, size_t len);
/* Writes what the socket takes at once when nothing is queued before it: the bytes written (0:
 * none), or < 0 after closing the connection. */
ssize_t ls__sock_write_now(ls_conn_t *c, const uint8_t *buf, size_t len);
/* After a write request's callback: the socket queue shrank (or the connection failed). */
void ls__sock_written(ls_conn_t *c, int status);
/* Updates the send queue's figures (frame queue + socket queue) in c->stats. */
void ls__sock_account(ls_conn_t *c);
/* Bytes queued from one buffer go as two write requests when more than this: the bulk, then this
 * tail, so that the socket queue falls below LS__SOCK_LOW while the tail is still written. */
#define LS__SOCK_TAIL (LS__SOCK_LOW / 2)
/* Makes room for at least n more bytes in the stage (c->wst); LS_ENOMEM. */
int ls__stage_reserve(ls_conn_t *c, size_t n);
/* Appends len bytes to the stage (growing it); LS_ENOMEM. */
int ls__stage_add(ls_conn_t *c, const void *buf, size_t len);
/* Hands the staged bytes to the socket: written now, the rest queued in the stage's own buffer
 * (no copy; counted in sock_queued). Returns 0 or the failure it closed the connection with. */
int ls__stage_flush(ls_conn_t *c);
/* Best effort: writes what the stage holds if the socket takes it at once, drops it (closing). */
void ls__stage_bye(ls_conn_t *c);
/* A libuv error as an LS_E* code. */
int ls__uv_err(int uverr);

/* tcp.c */
int ls__tcp_setup(ls_conn_t *c); /* nodelay, keepalive, user timeout, peer address */
void ls__tcp_read_start(ls_conn_t *c);
void ls__tcp_read_stop(ls_conn_t *c);
int ls__parse_addr(const char *addr, int port, struct sockaddr_storage *out);

/* zstd.c */
int ls__zstd_enable(ls_conn_t *c, int level); /* contexts, scratch buffers, level */
void ls__zstd_free(ls_conn_t *c);

/* send.c */
void ls__send_flush(ls_conn_t *c); /* encodes queued frames while the socket queue is short */

/* offload.c: the zstd worker of offload_compression (its own thread; see transport.h) */
int ls__off_start(ls_conn_t *c); /* at set_compression; idempotent */
void ls__off_stop(ls_conn_t *c); /* at close: drops its jobs, joins the thread */
void ls__off_free(ls_conn_t *c); /* at free: held frames and queues */
void ls__off_tx_add(ls_conn_t *c, struct ls__pframe *p); /* p (queued, LS__Z_WAIT) to the worker */
/* Holds a received frame (copied) behind those already held; compressed: for the worker. */
int ls__off_rx_add(ls_conn_t *c, const ls_conn_frame_t *f, bool compressed);
void ls__off_deliver(ls_conn_t *c); /* delivers held frames the worker is done with, in order */
bool ls__off_rx_full(ls_conn_t *c); /* reading waits for the worker */

/* heartbeat.c */
void ls__hb_start(ls_conn_t *c); /* at ready: first heartbeat now, then every interval */
void ls__dead_arm(ls_conn_t *c); /* at connect/accept: the deadline runs */
void ls__hb_stop(ls_conn_t *c);  /* at close */
int ls__hb_receive(ls_conn_t *c, const ls_frame_header_t *h, const uint8_t *body, size_t len);

#endif
