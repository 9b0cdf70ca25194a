/*
 * seed sessions: the protocol of a seed connection (proto/PROTOCOL.md §10, docs/SEED.md) as
 * state machines that do no socket I/O. Frames and events go in, frames and actions come out;
 * the daemon carries the bytes, and tests drive both sides with scripted frames and no sockets.
 *
 * Server (the active, worker.c + server.c): ls_seed_worker_start() runs the snapshot and reads it
 * in chunks on a thread the engine owns; ls_seed_server_t turns what the worker produced
 * (ls_seed_server_feed) and what the client sent (ls_seed_server_frame: CREDIT, ERROR) into
 * SEED_BEGIN, SEED_DATA within the client's credit, SEED_END, or ERROR (ls_seed_server_next).
 *
 * Client (the passive, client.c): ls_seed_client_t takes the seed connection's frames (WELCOME,
 * SEED_BEGIN, SEED_DATA, SEED_END, ERROR) and what the receiver thread reports (bytes written,
 * verified, failed, swapped), and gives actions: install steps for the receiver thread, CREDIT
 * frames, close the connection, swap; with the progress figures for status.
 *
 * The swap (reopen.c): ls_seed_copy_swap(), on the thread that owns the copy's ls_copy_t (the
 * daemon's receiver thread), closes it, commits the verified install, and reopens it.
 *
 * Lifecycle: server: ls_seed_server_new -> (feed | frame | next/sent)... -> ls_seed_server_free;
 * worker: ls_seed_worker_start -> poll/release... -> ls_seed_worker_stop -> (exited) ->
 * ls_seed_worker_free. Client: ls_seed_client_new -> ls_seed_client_hello -> (frame | consumed |
 * verified | failed | swapped | closed, each followed by ls_seed_client_action until it returns
 * false)... -> ls_seed_client_free.
 *
 * Threading: a session belongs to one thread (the daemon's loop); it takes no lock and starts no
 * thread. The worker's functions are called from that thread too; its thread touches only its
 * own queue (under its mutex) and calls notify, which must be safe from any thread (the
 * daemon's: a wake-up of its loop, ls_node_wake_t in engine/node/wake.c).
 */
#ifndef LS_SEED_SESSION_H
#define LS_SEED_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "copy/copy.h"
#include "proto/proto.h"
#include "seed/seed.h"

#define LS_SEED_MSG_MAX 512 /* messages kept by a session or the worker, bytes */

/* ---- the snapshot worker (active side) ---------------------------------------------------- */

typedef struct ls_seed_worker ls_seed_worker_t;

typedef enum {
    LS_SEED_WEV_INFO = 1, /* the snapshot was taken: info */
    LS_SEED_WEV_CHUNK,    /* a chunk: offset, data (owned by the receiver of the event), len */
    LS_SEED_WEV_END,      /* every byte was read: digest */
    LS_SEED_WEV_FAIL      /* the snapshot or a read failed: code, msg; nothing follows */
} ls_seed_wev_kind_t;

/* What the worker produced, in order. */
typedef struct {
    ls_seed_wev_kind_t kind;
    ls_seed_info_t info;            /* INFO */
    bool store_open;                /* INFO: the stream is read from the compaction: the store
                                       stays open until END or FAIL */
    uint64_t offset;                /* CHUNK: stream offset of data[0] */
    uint8_t *data;                  /* CHUNK: the bytes; hand back with ls_seed_worker_release */
    size_t len;                     /* CHUNK: bytes in data */
    uint8_t digest[LS_DIGEST_SIZE]; /* END: the stream's check (ls_seed_snapshot_digest) */
    int code;                       /* FAIL: LS_E* */
    char msg[LS_SEED_MSG_MAX];      /* FAIL: why */
} ls_seed_wev_t;

typedef struct {
    const char *db_dir;        /* the active database directory; required (copied) */
    size_t chunk;              /* bytes per chunk; 0: 256 KiB */
    unsigned ahead;            /* chunks read and not yet released, at most; 0: 8 */
    void (*notify)(void *ctx); /* an event is ready (called on the worker's thread) */
    void *ctx;
    const ls_seed_resync_req_t *resync; /* NULL: a seed; else the resync (copied, keys too):
                                           ls_seed_snapshot_options_t.resync */
    bool direct;     /* stream from the compacting copy (ls_seed_snapshot_options_t.direct) */
    unsigned pin_ms; /* direct: the longest the store's read transaction should live; once the
                        rate the chunks are taken at says the stream will not end by then, the
                        rest is spilled to the local copy. 0: 2000 ms */
    bool xxh;        /* the stream's check is XXH3-128: the connection negotiated LS_FEAT_SEEDXXH
                        (ls_seed_snapshot_options_t.xxh); false: SHA-256 */
} ls_seed_worker_options_t;

/* Starts the thread: ls_seed_snapshot_new, then reads ahead. 0, LS_EINVAL, LS_ENOMEM (no
 * thread). Fault points: seed.snapshot.before, seed.server.chunk (tests: "sleep:MS"). */
int ls_seed_worker_start(const ls_seed_worker_options_t *o, ls_seed_worker_t **out);
/* The next event, if any (true). A CHUNK's data is the caller's until ls_seed_worker_release. */
bool ls_seed_worker_poll(ls_seed_worker_t *w, ls_seed_wev_t *ev);
/* Gives a chunk's buffer back (kept for the next read, or freed; the worker may read one more).
 * NULL: no-op. */
void ls_seed_worker_release(ls_seed_worker_t *w, void *data);
/* Asks the thread to end (it ends after the snapshot or read in progress); does not wait. */
void ls_seed_worker_stop(ls_seed_worker_t *w);
/* The thread returned (its snapshot copy is removed): ls_seed_worker_free will not block. */
bool ls_seed_worker_exited(ls_seed_worker_t *w);
/* Stops, joins and frees, with every chunk not yet polled. NULL: no-op. */
void ls_seed_worker_free(ls_seed_worker_t *w);

/* ---- the server session (active side) ----------------------------------------------------- */

typedef struct ls_seed_server ls_seed_server_t;

typedef enum {
    LS_SEED_SRV_SNAPSHOT = 1, /* waiting for the worker's INFO */
    LS_SEED_SRV_STREAMING,    /* SEED_BEGIN out; SEED_DATA as credit allows */
    LS_SEED_SRV_ENDED,        /* SEED_END out: the client installs and closes */
    LS_SEED_SRV_FAILED,       /* an ERROR out, or the client gave up: close */
    LS_SEED_SRV_REQUEST       /* resync: waiting for the client's CHAIN_REQ / RESYNC frames */
} ls_seed_server_state_t;

typedef struct {
    uint32_t db_window;   /* the client's HELLO db_window (0: LS_PROTO_DB_WINDOW_DEFAULT) */
    uint32_t conn_window; /* its conn_window (0: LS_PROTO_CONN_WINDOW_DEFAULT) */
    uint32_t chunk_max;   /* largest SEED_DATA, bytes; 0: 256 KiB */
    void (*release)(void *ctx, void *data); /* a chunk was sent or dropped (NULL: free()) */
    void *release_ctx;
    bool resync;             /* the WELCOME accepted LS_FEAT_RESYNC: start in REQUEST and wait
                                for the client's requests (ls_seed_server_request) before
                                starting the worker */
    uint64_t max_keys_bytes; /* resync: keys taken from the client, bytes; more: a full seed
                                (too_many); 0: 64 MiB */
} ls_seed_server_options_t;

/* What a resync client asks of the server's node (ls_seed_server_request). */
typedef enum {
    LS_SEED_REQ_CHAIN = 1, /* compute the chain from `from` (ls_seed_chain), then
                              ls_seed_server_chain */
    LS_SEED_REQ_RESYNC     /* start the worker with .resync = &req.resync */
} ls_seed_req_kind_t;

typedef struct {
    ls_seed_req_kind_t kind;
    uint64_t from;               /* CHAIN: the first generation asked */
    ls_seed_resync_req_t resync; /* RESYNC: keys borrowed from the session (valid until free) */
} ls_seed_server_req_t;

/* dbid: the database seeded (ERROR frames name it). 0 or LS_ENOMEM. */
int ls_seed_server_new(const ls_seed_server_options_t *o, const uint8_t dbid[LS_DBID_LEN],
                       ls_seed_server_t **out);
/* A worker event (takes a CHUNK's data). */
void ls_seed_server_feed(ls_seed_server_t *s, const ls_seed_wev_t *ev);
/* A frame from the client: CREDIT gives credit, ERROR is the client giving up (LS_ECLOSED).
 * LS_EPROTO (credit never received, another frame) with err set: close the connection. */
int ls_seed_server_frame(ls_seed_server_t *s, const ls_frame_t *f, char *err, size_t errlen);
/* The next frame to send (true), or nothing until more credit or worker events. Its data is
 * borrowed until ls_seed_server_sent or ls_seed_server_free. Calling it again without _sent
 * returns the same frame (the socket was full). */
bool ls_seed_server_next(ls_seed_server_t *s, ls_frame_t *out);
/* A request the client completed (true; once each), for the node to carry out. */
bool ls_seed_server_request(ls_seed_server_t *s, ls_seed_server_req_t *out);
/* The answer to a CHAIN request: the server's newest epoch, who activated it (borrowed: copied)
 * and its closed generations from the asked one on (at most LS_PROTO_CHAIN_MAX, copied). A
 * CHAIN frame follows from ls_seed_server_next. LS_ESTATE when no CHAIN was asked, LS_ENOMEM. */
int ls_seed_server_chain(ls_seed_server_t *s, uint32_t epoch, const char *active,
                         const ls_proto_link_t *links, size_t n);
/* The frame ls_seed_server_next gave went out. */
void ls_seed_server_sent(ls_seed_server_t *s);
ls_seed_server_state_t ls_seed_server_state(const ls_seed_server_t *s);
/* The snapshot's figures once INFO came (NULL before). */
const ls_seed_info_t *ls_seed_server_info(const ls_seed_server_t *s);
uint64_t ls_seed_server_bytes_sent(const ls_seed_server_t *s); /* SEED_DATA bytes sent */
unsigned ls_seed_server_queued(const ls_seed_server_t *s);     /* chunks held, not yet sent */
/* Why it failed ("" when it did not). */
const char *ls_seed_server_error(const ls_seed_server_t *s, int *code);
void ls_seed_server_free(ls_seed_server_t *s); /* releases held chunks; NULL: no-op */

/* The closed generations of <db_dir>/logs from generation `from` on (epoch, generation, trailer
 * digest), sorted, at most max: a CHAIN's entries. *links malloc'd (NULL when *n is 0). Errors:
 * LS_ECORRUPT (a closed file without a valid trailer, named), LS_EIO, LS_ENOMEM. */
int ls_seed_chain(const char *db_dir, const char *prefix, uint64_t from, size_t max,
                  ls_proto_link_t **links, size_t *n, char *err, size_t errlen);

/* ---- the client session (passive side) ---------------------------------------------------- */

typedef struct ls_seed_client ls_seed_client_t;

typedef enum {
    LS_SEED_CLI_CONNECTING = 1, /* connecting / handshake */
    LS_SEED_CLI_CHAIN,          /* resync: asking the source's chain (CHAIN_REQ) */
    LS_SEED_CLI_SPLIT,          /* resync: the chain is here (ls_seed_client_chain): the node
                                   runs ls_role_demote with it, ls_seed_resync_keys, then
                                   ls_seed_client_resync */
    LS_SEED_CLI_SNAPSHOT,       /* accepted: the source takes its snapshot */
    LS_SEED_CLI_RECEIVING,      /* SEED_DATA arriving */
    LS_SEED_CLI_INSTALLING,     /* verified: swapping the new copy in */
    LS_SEED_CLI_DONE,           /* installed */
    LS_SEED_CLI_FAILED          /* see ls_seed_client_error */
} ls_seed_client_state_t;

typedef enum {
    LS_SEED_ACT_SEND = 1,      /* send frame (CREDIT) on the seed connection */
    LS_SEED_ACT_INSTALL_BEGIN, /* receiver thread: ls_seed_install_begin(info) */
    LS_SEED_ACT_INSTALL_DATA,  /* receiver thread: ls_seed_install_data(offset, data, len) */
    LS_SEED_ACT_INSTALL_END,   /* receiver thread: ls_seed_install_end(digest) */
    LS_SEED_ACT_SWAP,  /* receiver thread: ls_seed_copy_swap (the loop lets go of the copy) */
    LS_SEED_ACT_ABORT, /* receiver thread: free the install (removes the partial copy) */
    LS_SEED_ACT_CLOSE, /* close the seed connection */
    LS_SEED_ACT_ZSTD   /* compression agreed at level: decompress what follows */
} ls_seed_act_kind_t;

/* One action. Pointers are borrowed: valid until the next call into the session. */
typedef struct {
    ls_seed_act_kind_t kind;
    ls_frame_t frame;               /* SEND */
    const ls_seed_info_t *info;     /* INSTALL_BEGIN */
    uint64_t offset;                /* INSTALL_DATA */
    const uint8_t *data;            /* INSTALL_DATA: copy it before handing it on */
    uint32_t len;                   /* INSTALL_DATA */
    uint8_t digest[LS_DIGEST_SIZE]; /* INSTALL_END */
    int zstd_level;                 /* ZSTD */
} ls_seed_act_t;

typedef struct {
    const char *source;  /* the source node's name, for messages; required (copied) */
    uint32_t features;   /* LS_FEAT_* offered (LS_FEAT_CKSUM without TLS, LS_FEAT_ZSTD) */
    int8_t zstd_level;   /* wanted with LS_FEAT_ZSTD */
    uint32_t window;     /* receive window announced for the database and the connection */
    bool resync;         /* an incremental resync of an old active (offers LS_FEAT_RESYNC; a
                            source that does not accept it fails the session: seed instead) */
    uint64_t chain_from; /* resync: the first generation of the source's chain asked (this
                            node's oldest closed generation; 0: 1) */
    bool sha256;         /* do not offer LS_FEAT_SEEDXXH (offered by default, unless the fault
                            point seed.sha256 is armed): the stream's check is SHA-256, as with a
                            peer older than it (tests) */
} ls_seed_client_options_t;

/* Progress and outcome, for status (seed_status). */
typedef struct {
    ls_seed_client_state_t state;
    ls_seed_info_t info;     /* from SEED_BEGIN (zeros before) */
    bool begun;              /* SEED_BEGIN received */
    uint64_t done;           /* bytes written by the receiver thread */
    ls_seed_progress_t prog; /* rate, percent, eta (valid once begun) */
} ls_seed_client_figures_t;

int ls_seed_client_new(const ls_seed_client_options_t *o, ls_seed_client_t **out);
/* The HELLO (purpose seed) for database name (dbid: the copy's, zeros for a new copy), from
 * node. Strings are borrowed by the frame. */
void ls_seed_client_hello(ls_seed_client_t *c, const char *node, const char *name,
                          const uint8_t dbid[LS_DBID_LEN], ls_frame_t *out);
/* A frame from the source (decoded), at now_ns (monotonic: the progress clock; tests pass their
 * own). Actions follow. */
void ls_seed_client_frame(ls_seed_client_t *c, const ls_frame_t *f, uint64_t now_ns);
/* From the receiver thread, on the loop: bytes written (credit to give back), bytes done. */
void ls_seed_client_consumed(ls_seed_client_t *c, uint64_t bytes, uint64_t done, uint64_t now_ns);
/* The stream verified (ls_seed_install_end succeeded): close, then SWAP. */
void ls_seed_client_verified(ls_seed_client_t *c);
/* A receiver-thread step failed (nothing installed): FAILED, CLOSE, ABORT. */
void ls_seed_client_failed(ls_seed_client_t *c, int code, const char *msg);
/* The swap ran: swapped (the new copy is in place) or not, msg why not. DONE or FAILED. */
void ls_seed_client_swapped(ls_seed_client_t *c, bool swapped, const char *msg);
/* The connection ended (status 0: closed by the peer). Before the install: FAILED, ABORT. */
void ls_seed_client_closed(ls_seed_client_t *c, int status, const char *msg);
/* The source's chain (in state LS_SEED_CLI_SPLIT): links sorted by generation (borrowed until
 * free), its newest epoch and who activated it (borrowed). */
void ls_seed_client_chain(const ls_seed_client_t *c, const ls_proto_link_t **links, size_t *n,
                          uint32_t *epoch, const char **active);
/* The node demoted (split found: the last generation both chains hold the same) and computed
 * the keys (ls_seed_resync_keys, copied here): RESYNC frames follow as SEND actions, then the
 * stream (RESYNC_BEGIN, or SEED_BEGIN: the source fell back to a full seed, which the node
 * installs with copy_failed). LS_ESTATE out of turn, LS_EDIVERGED (split not in the source's
 * chain: the session fails), LS_ENOMEM. */
int ls_seed_client_resync(ls_seed_client_t *c, uint64_t split, const uint8_t *keys, size_t len);
/* The next action (true) or none. */
bool ls_seed_client_action(ls_seed_client_t *c, ls_seed_act_t *a);
/* Fails the seed from outside (a connect error, compression failure ...): as failed. */
void ls_seed_client_fail(ls_seed_client_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
ls_seed_client_state_t ls_seed_client_state(const ls_seed_client_t *c);
bool ls_seed_client_welcomed(const ls_seed_client_t *c);
bool ls_seed_client_finished(const ls_seed_client_t *c); /* DONE or FAILED */
void ls_seed_client_figures(const ls_seed_client_t *c, ls_seed_client_figures_t *out);
const char *ls_seed_client_error(const ls_seed_client_t *c, int *code); /* "" none */
const char *ls_seed_client_state_name(ls_seed_client_state_t st);       /* "connecting" ... */
void ls_seed_client_free(ls_seed_client_t *c);                          /* NULL: no-op */

/* ---- the swap on the copy's own thread ---------------------------------------------------- */

/* Opens and starts the copy again (the caller's options and event callback). */
typedef int (*ls_seed_open_fn)(void *ctx, ls_copy_t **out, char *err, size_t errlen);

/* On the thread that owns *copy (the daemon's receiver thread): closes *copy (may be NULL),
 * commits the verified install *in (freed, *in = NULL), finishes or undoes a commit that failed
 * half-way (ls_seed_recover), and reopens the copy through open into *copy (NULL when it cannot).
 * *swapped: the new copy is in place. 0, or the commit's error (else the open's) with err set.
 * Fault point: seed.client.swap (tests: "sleep:MS" between closing and committing). */
int ls_seed_copy_swap(ls_copy_t **copy, ls_seed_install_t **in, const char *copy_dir,
                      ls_seed_open_fn open, void *ctx, bool *swapped, char *err, size_t errlen);
/* ls_seed_copy_swap without the removal of the replaced copy: when swapped, *in is kept (else
 * freed, NULL) for ls_seed_copy_finish, to be called later on the same thread (the copy may be in
 * use meanwhile: the removal touches only <copy>.seed-new or .seed-old and the marker). */
int ls_seed_copy_swap_open(ls_copy_t **copy, ls_seed_install_t **in, const char *copy_dir,
                           ls_seed_open_fn open, void *ctx, bool *swapped, char *err,
                           size_t errlen);
/* Removes the replaced copy and the marker (ls_seed_install_finish), frees *in (NULL: no-op) and
 * sets it NULL. A failure is logged (the daemon's next start finishes it: ls_seed_recover). */
void ls_seed_copy_finish(ls_seed_install_t **in, const char *copy_dir);

#endif
