/*
 * transport: frames over TCP, optionally inside TLS 1.3 with mutual certificate authentication,
 * with per-frame zstd compression, per-frame checksums when TLS is off, bounded buffers, and
 * heartbeats that measure the round trip and declare a silent peer dead.
 *
 * Layers, top to bottom (docs/TRANSPORT.md has the picture):
 *   frames     ls_conn_send() / on_frame: the envelope of proto/frame.h, header + body
 *   compress   LS_FRAME_FLAG_ZSTD: a body becomes one zstd frame (proto/proto.h), when enabled
 *   integrity  without TLS, a u32 checksum after each frame (ls_cksum32 over header and body,
 *              seeded with the frame's sequence number in that direction); with TLS, its AEAD
 *   stream     a driver: plain TCP, or TLS over OpenSSL through a BIO of ours (tls.c) (like
 *              Redis's ConnectionType)
 *   socket     a libuv TCP handle
 *
 * Lifecycle.
 *   - ls_tls_ctx_new() loads the CA, certificate and key files once (file I/O: call it before the
 *     loop runs, never on it). A context is shared by any number of connections and listeners;
 *     each connection keeps its own reference, so the context may be freed while they live.
 *   - Client: ls_conn_connect() -> [TCP connect, TLS handshake, peer verified] -> on_ready ->
 *     frames flow (on_frame, ls_conn_send) -> on_close. On the client, on_ready waits for the
 *     server's first post-handshake message, so a server that refuses our certificate is reported
 *     through on_close with its alert, never after an on_ready.
 *   - Server: ls_listener_start() -> on_accept(listener, conn) for each accepted connection (set
 *     the connection's data there) -> on_ready -> ... -> on_close. ls_listener_close() stops
 *     listening; connections already accepted live on.
 *   - on_close(conn, status, msg) runs exactly once for every connection that was handed out
 *     (a failed ls_conn_connect() call hands none out and runs no callback): status 0 after
 *     ls_conn_close(), else a negative LS_E* code and a message naming the peer and the reason
 *     (refused certificate, checksum mismatch, heartbeat timeout, reset ...), also logged. The
 *     close callback rule is libuv's: the connection's memory is released right after on_close
 *     returns, never before; until then the pointer stays valid (sends return LS_ECLOSED). The
 *     same holds for a listener and its close callback.
 *
 * Flow control.
 *   - Send: ls_conn_send*() copies the frame into an ordered frame queue (skipped while the
 *     socket keeps up); frames are encoded (compressed, checksummed, encrypted) only while fewer
 *     than 64 KiB of encoded bytes wait for the socket, and the kernel keeps at most 128 KiB unsent
 *     (TCP_NOTSENT_LOWAT). Frame queue + encoded bytes waiting are counted (stats.send_queued);
 *     once they reach send_hwm, ls_conn_send*() refuses with LS_EBUSY without queuing, and
 *     on_drain runs once they fall to half of it. They never exceed send_hwm + one frame (plus
 *     TLS record overhead and heartbeats, a few hundred bytes).
 *   - Receive: ls_conn_pause() stops reading (uv_read_stop) and stops delivering frames after the
 *     current one; ls_conn_resume() delivers what is buffered, then reads again. While paused at
 *     most one read (64 KiB) and one frame are buffered, so a peer sending faster than we consume
 *     fills the kernel buffers and then its own send_hwm. Per-database credit (CREDIT frames) is
 *     the layer above's, with the helper in transport/credit.h; it keeps pauses rare and short.
 *
 * Heartbeats. Each side sends HEARTBEAT (proto.h) every heartbeat_ms with its send time and the
 * echo of the peer's last one (with how long it held it), so each side measures the round trip
 * (last and smoothed, ls_conn_stats). Heartbeats skip the frame queue: they wait behind at most
 * 64 KiB + the frame being written + the kernel's 128 KiB, never behind the backlog. Any bytes
 * received count as life; nothing for dead_ms closes the connection with LS_ETIMEDOUT. The same
 * deadline covers connect + handshake. While the application has paused reading the deadline is
 * suspended (we are the ones not reading). TCP keepalive (idle dead_ms, then 1 s probes) and
 * TCP_USER_TIMEOUT (tcp_user_timeout_ms, default 30 s) remain as a belt. HEARTBEAT frames are
 * consumed here, never passed to on_frame.
 *
 * Signals: libuv writes with write(2), so a peer that closes while we write raises SIGPIPE; the
 * process must ignore it (logshipd does). The transport does not change signal dispositions.
 *
 * Threading: one event loop thread owns a connection, its listener and every callback; no
 * function here may be called from another thread. The loop thread moves bytes and runs timers;
 * TLS record crypto runs on it (~0.6 ms per MiB per side). zstd of frame bodies (at level 1 ~3.3
 * ms per 1 MiB chunk to compress, ~1.4 ms to decompress, docs/TRANSPORT.md) runs:
 *   - with offload_compression, on the connection's own zstd worker thread (offload.c), started
 *     by ls_conn_set_compression() and joined at close. ls_conn_send*() queues a compressible body
 *     for it and the frames behind wait in the frame queue (counted in send_queued, so send_hwm
 *     still bounds them); compressed bodies received are held, with every frame behind them, until
 *     the worker has them, and on_frame gets them in order, decompressed. ls_conn_pause() stops
 *     that delivery too; reading stops while 8 MiB are held and restarts at half. Closing drops
 *     what the worker holds. This is what logshipd uses;
 *   - without it, on the loop, which delays heartbeats by that much; or in the layer above's own
 *     threads, with ls_zbody_* around ls_conn_send_raw() and deliver_compressed.
 * stats.zstd_loop_calls counts the bodies a connection (de)compressed on its loop,
 * stats.zstd_offload_calls those its worker did. No disk I/O happens in this
 * module once the contexts exist.
 */
#ifndef LS_TRANSPORT_H
#define LS_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <uv.h>

#include "proto/frame.h"

#define LS_CONN_HEARTBEAT_MS_DEFAULT    1000               /* heartbeat interval, ms */
#define LS_CONN_DEAD_MS_DEFAULT         5000               /* silence that kills a connection, ms */
#define LS_CONN_SEND_HWM_DEFAULT        (8u * 1024 * 1024) /* send queue high-water mark, bytes */
#define LS_CONN_USER_TIMEOUT_MS_DEFAULT 30000 /* TCP_USER_TIMEOUT, ms (at least 2 x dead_ms) */
#define LS_CONN_ZSTD_MIN_BODY           512 /* bodies shorter than this are never compressed, bytes */
#define LS_CONN_MSG_MAX                 512 /* close message, bytes incl. NUL */

typedef struct ls_tls_ctx ls_tls_ctx_t;
typedef struct ls_conn ls_conn_t;
typedef struct ls_listener ls_listener_t;

/* ---- TLS context -------------------------------------------------------------------------- */
typedef struct {
    const char *ca_file;   /* PEM file of the CA(s) a peer's chain must lead to; required */
    const char *cert_file; /* our certificate chain (PEM); NULL presents none (peers refuse) */
    const char *key_file;  /* our private key (PEM); required with cert_file */
} ls_tls_opts_t;

/* Loads the files into a TLS 1.3-only context that requires and verifies a peer certificate.
 * Does file I/O: call before the loop runs. Returns 0 and *out, or LS_ETLS / LS_EINVAL with a
 * message naming the file in err. */
int ls_tls_ctx_new(const ls_tls_opts_t *opts, ls_tls_ctx_t **out, char *err, size_t errlen);
void ls_tls_ctx_free(ls_tls_ctx_t *ctx); /* NULL is a no-op; live connections keep a reference */

/* ---- connections -------------------------------------------------------------------------- */
/* One received frame, valid only during the on_frame call. */
typedef struct {
    uint8_t type;         /* ls_frame_type_t */
    uint8_t flags;        /* header flags as delivered: LS_FRAME_FLAG_ZSTD only with
                             deliver_compressed (body still compressed), else removed */
    const uint8_t *bytes; /* header + body, LS_FRAME_HEADER_SIZE + body_len bytes, decompressed
                             unless flags says otherwise (header rewritten to match) */
    const uint8_t *body;  /* bytes + LS_FRAME_HEADER_SIZE */
    uint32_t body_len;    /* bytes of body */
    uint64_t seq;         /* frame's sequence number received on this connection, from 0 */
    uint32_t wire_len;    /* bytes it took on the wire before TLS (compressed, with checksum) */
} ls_conn_frame_t;

typedef void (*ls_conn_ready_cb)(ls_conn_t *conn);
typedef void (*ls_conn_frame_cb)(ls_conn_t *conn, const ls_conn_frame_t *frame);
typedef void (*ls_conn_drain_cb)(ls_conn_t *conn);
typedef void (*ls_conn_close_cb)(ls_conn_t *conn, int status, const char *msg);

typedef struct {
    ls_tls_ctx_t *tls;            /* TLS context (borrowed); NULL is allowed only with plaintext */
    bool insecure_plaintext;      /* explicit opt-in to plain TCP (checksummed frames, no auth) */
    const char *peer_name;        /* DNS name the peer certificate's subjectAltName must carry
                                     (copied); required with TLS for ls_conn_connect; a listener
                                     may leave it NULL to accept any certificate of its CA, and
                                     must then check the name announced in HELLO with
                                     ls_conn_peer_matches() before trusting the peer */
    const char *bind_addr;        /* client: local IP literal to bind (the NIC); NULL: any */
    uint32_t heartbeat_ms;        /* heartbeat interval, ms; 0: LS_CONN_HEARTBEAT_MS_DEFAULT */
    uint32_t dead_ms;             /* silence before declaring the peer dead, ms; 0: default
                                     5000; must exceed heartbeat_ms (else LS_EINVAL) */
    size_t send_hwm;              /* send queue high-water mark, bytes; 0: default 8 MiB */
    uint32_t tcp_user_timeout_ms; /* TCP_USER_TIMEOUT: the kernel gives up on data left
                                     unacknowledged this long, ms; 0: default 30 s; raised to at
                                     least 2 x dead_ms */
    ls_conn_ready_cb on_ready;    /* connected, handshake done, peer verified; may be NULL */
    ls_conn_frame_cb on_frame;    /* a frame arrived (required) */
    ls_conn_drain_cb on_drain;    /* after LS_EBUSY, the queue fell to send_hwm / 2; may be NULL */
    ls_conn_close_cb on_close;    /* exactly once, last callback (required) */
    bool deliver_compressed;      /* hand compressed chunk bodies to on_frame as they came (flag
                                     set) so the layer above decompresses them off the loop with
                                     ls_zbody_decompress(); heartbeats are always decoded here */
    bool offload_compression;     /* a zstd worker thread of the connection, started by
                                     ls_conn_set_compression(), (de)compresses chunk bodies:
                                     the loop never does (see "Threading" above) */
    void *data;                   /* user pointer, see ls_conn_data() */
} ls_conn_opts_t;

/* Counters and figures for status. */
typedef struct {
    uint64_t frames_sent;         /* frames handed to the stream, heartbeats included */
    uint64_t frames_received;     /* frames decoded, heartbeats included */
    uint64_t bytes_sent;          /* frame bytes before compression (header + body) */
    uint64_t bytes_received;      /* frame bytes after decompression (header + body) */
    uint64_t wire_bytes_sent;     /* bytes written to the socket (after compression and TLS) */
    uint64_t wire_bytes_received; /* bytes read from the socket */
    size_t send_queued;           /* bytes accepted and not yet taken by the kernel: frame
                                     queue (header + body) + encoded bytes waiting, now */
    size_t send_queued_max;       /* highest send_queued seen, bytes */
    uint64_t rtt_last_ns;         /* last measured round trip, ns (0: none yet) */
    uint64_t rtt_smoothed_ns;     /* smoothed round trip (7/8 old + 1/8 new), ns */
    int64_t clock_offset_ns;      /* peer's wall clock minus ours, estimated, ns */
    uint64_t last_rx_mono_ns;     /* ls_mono_ns() when bytes last arrived */
    uint64_t zstd_loop_calls;     /* GEN_DATA/SEED_DATA bodies this connection compressed or
                                     decompressed itself, i.e. on its loop thread (0 when the
                                     layer above does it off the loop: send_raw and
                                     deliver_compressed, or offload_compression) */
    uint64_t zstd_offload_calls;  /* bodies the connection's zstd worker (de)compressed */
} ls_conn_stats_t;

/* Connects to addr:port (IP literals, v4 or v6). Takes a copy of what it needs from opts.
 * Returns 0 and *out (valid until on_close returns), after which exactly one on_close follows;
 * or LS_EINVAL (bad address, TLS without a context or peer name, plaintext not asked for),
 * LS_ENOMEM, LS_EADDRNOTAVAIL or LS_EADDRINUSE (bind) - and then no callback runs. libuv's codes
 * never leave the transport: they are mapped to LS_E* codes here. */
int ls_conn_connect(uv_loop_t *loop, const char *addr, int port, const ls_conn_opts_t *opts,
                    ls_conn_t **out);

/* Sends one frame of type with body (len bytes, <= LS_FRAME_MAX_BODY): copies it, so body is
 * free on return. Compresses it when compression is on and it is worth it. Returns 0, LS_EBUSY
 * (over the high-water mark: nothing queued, wait for on_drain), LS_ESTATE (before on_ready),
 * LS_ECLOSED, LS_EFRAMETOOBIG. */
int ls_conn_send(ls_conn_t *conn, uint8_t type, const void *body, size_t len);
/* Same with the body in pieces (scatter/gather: encoded fields + a chunk where it lies). */
int ls_conn_sendv(ls_conn_t *conn, uint8_t type, const struct iovec *iov, int iovcnt);
/* Sends a body already compressed by the caller (one zstd frame of the body: the off-loop path)
 * with LS_FRAME_FLAG_ZSTD set, as is. Same returns; LS_ESTATE also when compression is off. */
int ls_conn_send_raw(ls_conn_t *conn, uint8_t type, const void *zbody, size_t len);

/* Turns per-frame compression on (level 1..19, negative: zstd fast levels) or off (level 0) for
 * frames sent from now on, and allows compressed frames from the peer (refused, LS_EPROTO,
 * before that). Call it when HELLO/WELCOME accepted LS_FEAT_ZSTD. Returns 0 or LS_EINVAL. */
int ls_conn_set_compression(ls_conn_t *conn, int level);

void ls_conn_pause(ls_conn_t *conn);  /* stop reading and delivering frames */
void ls_conn_resume(ls_conn_t *conn); /* deliver buffered frames (from the loop), read again */

/* Closes: pending sends are dropped, on_close(conn, 0, "closed by us") follows from the loop.
 * Idempotent; after an error close it changes nothing. */
void ls_conn_close(ls_conn_t *conn);

bool ls_conn_is_tls(const ls_conn_t *conn);      /* encrypted and authenticated (for status) */
bool ls_conn_is_ready(const ls_conn_t *conn);    /* on_ready has run and not closed yet */
const char *ls_conn_peer(const ls_conn_t *conn); /* "ip:port" of the peer, static per conn */
/* The expected peer name verified at the handshake; NULL without TLS, before the handshake, or
 * when the listener deferred the name (see ls_conn_opts_t.peer_name). */
const char *ls_conn_peer_name(const ls_conn_t *conn);
/* Whether the peer's verified certificate carries name (subjectAltName DNS, exact). A listener
 * may accept any certificate of its CA (peer_name NULL) and check the name the peer announces
 * in its HELLO with this. False without TLS. */
bool ls_conn_peer_matches(const ls_conn_t *conn, const char *name);
void ls_conn_stats(const ls_conn_t *conn, ls_conn_stats_t *out);
void *ls_conn_data(const ls_conn_t *conn);
void ls_conn_set_data(ls_conn_t *conn, void *data);

/* ---- off-loop compression ----------------------------------------------------------------- */
/* A body codec (zstd contexts for one thread at a time): what a connection uses on the loop, for
 * workers that compress chunk bodies before ls_conn_send_raw() or decompress what on_frame
 * delivered with deliver_compressed. Any thread; one object per thread. */
typedef struct ls_zbody ls_zbody_t;

/* level: 1..19, or negative for zstd's fast levels (not 0). NULL: bad level or out of memory. */
ls_zbody_t *ls_zbody_new(int level);
void ls_zbody_free(ls_zbody_t *z); /* NULL is a no-op */
/* Compresses len bytes of src into one zstd frame in dst (cap bytes). When it does not fit in cap
 * returns 0 with *out_len 0: pass cap = len - 1 to keep only bodies that shrink. Returns 0 or
 * LS_ECOMPRESS. */
int ls_zbody_compress(ls_zbody_t *z, const void *src, size_t len, void *dst, size_t cap,
                      size_t *out_len);
/* Decompresses one body (exactly one zstd frame, len bytes) into dst (at most cap bytes; a
 * frame's body is at most LS_FRAME_MAX_BODY). Returns 0, LS_EFRAMETOOBIG (holds more than cap),
 * LS_ECORRUPT (not one valid zstd frame). */
int ls_zbody_decompress(ls_zbody_t *z, const void *src, size_t len, void *dst, size_t cap,
                        size_t *out_len);

/* ---- listener ----------------------------------------------------------------------------- */
typedef void (*ls_listener_accept_cb)(ls_listener_t *l, ls_conn_t *conn);
typedef void (*ls_listener_close_cb)(ls_listener_t *l);

/* Listens on addr:port (IP literal; port 0 picks a free port, see ls_listener_port). Each
 * accepted connection gets a copy of conn_opts (their data pointer included) and is announced
 * through on_accept before its handshake starts. Returns 0 and *out, or LS_EINVAL,
 * LS_EADDRINUSE, LS_EADDRNOTAVAIL, LS_EACCES, LS_EIO, and then no callback runs. */
int ls_listener_start(uv_loop_t *loop, const char *addr, int port, const ls_conn_opts_t *conn_opts,
                      ls_listener_accept_cb on_accept, void *data, ls_listener_t **out);
int ls_listener_port(const ls_listener_t *l); /* the bound port */
void *ls_listener_data(const ls_listener_t *l);
/* Stops listening; on_close (may be NULL) runs from the loop, then the listener is freed. */
void ls_listener_close(ls_listener_t *l, ls_listener_close_cb on_close);

#endif
