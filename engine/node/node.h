/*
 * node: the replication node. It hosts every engine machine of one node on a libuv loop: the
 * active databases and their shippers (engine/source, engine/ship), the links to the targets with
 * their replication networks (engine/netpolicy), the accepted connections and the passive copies
 * they serve (engine/passive, engine/copy), the seed server and client sessions (engine/seed),
 * the control commands and the status fill (engine/status). It is the top engine layer: it may
 * use every module below; nothing below includes it.
 *
 * What it does not own: the configuration file (the caller loads it), the TLS context (the caller
 * creates it from the configuration and keeps it until after ls_node_free), the listeners (the
 * caller starts them with ls_node_listen_opts and ls_node_accept), the control socket (the
 * caller serves it with ls_node_control as its handler), signals and the metrics endpoint
 * (ls_node_status_fill). tools/logshipd is that caller.
 *
 * Lifecycle: ls_node_new, ls_node_start (opens the databases and copies, starts the node's
 * timers); ls_node_stop begins a clean stop (also after a failed start): every handle of the node
 * is closed, and the loop ends once the caller closed its own; ls_node_free after the loop ended.
 *
 * Threading: every call on the loop thread. The node's own threads (each copy's receiver and
 * replayer, each source reader, each active database's block watcher, each seed's snapshot
 * worker, each connection's zstd worker) talk to the loop only through queues and a wake-up of
 * the loop (the node's ls_node_wake_t, the transport's uv_async_t for the zstd workers).
 */
#ifndef LS_NODE_H
#define LS_NODE_H

#include <stddef.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "config/config.h"
#include "proto/proto.h"
#include "status/status.h"
#include "transport/transport.h"

typedef struct ls_node ls_node_t;

typedef struct {
    uv_loop_t *loop;        /* the loop everything runs on (borrowed) */
    const ls_config_t *cfg; /* the node's configuration (borrowed until ls_node_free) */
    ls_tls_ctx_t *tls;      /* TLS context of every connection (borrowed; NULL: plaintext) */
} ls_node_options_t;

/* A node with these options, not started. NULL when out of memory. */
ls_node_t *ls_node_new(const ls_node_options_t *o);
/* Opens every database and copy of the configuration and starts the timers. 0, or an error with
 * err (LS_ENOMEM); a copy that cannot open is not an error: it shows Failed. After a failure the
 * caller stops the node like a started one. */
int ls_node_start(ls_node_t *n, char *err, size_t errlen);
/* Begins a clean stop: closes every handle, connection and copy of the node. Idempotent. */
void ls_node_stop(ls_node_t *n);
/* After the loop ended: frees the machines, sources and the node. NULL is a no-op. */
void ls_node_free(ls_node_t *n);

/* Options for a listener's accepted connections (TLS, heartbeats and the node's frame and close
 * callbacks); the listener is started with ls_node_accept as its accept callback and the node as
 * its data. Each accepted connection's HELLO is then checked against its certificate. */
void ls_node_listen_opts(ls_node_t *n, ls_conn_opts_t *o);
void ls_node_accept(ls_listener_t *l, ls_conn_t *conn);

/* The control socket's handler (engine/control, ctx: the node): status, suspend, resume,
 * network, seed, seed_status, activate, activate_status. */
int ls_node_control(void *ctx, const cJSON *req, cJSON *resp, char *err, size_t errlen);
/* Fills out with every copy's figures and every database's role (out->copies and
 * out->databases are malloc'd: free() both, also after an error). 0 or LS_ENOMEM. */
int ls_node_status_fill(ls_node_t *n, ls_status_node_t *out);

/* ---- HELLO admission (admit.c): pure, no socket and no loop ---- */
/* What admission knows of an accepted connection: its address, for messages, and whether its
 * verified certificate carries a name (ls_conn_peer_matches on a live connection). */
typedef struct {
    const char *addr;                                   /* "ip:port" of the peer */
    bool (*carries)(const void *ctx, const char *name); /* not asked under insecure_plaintext */
    const void *ctx;
} ls_node_peer_cert_t;

/* Who may ship and seed (docs/CONFIG.md, peer_name): the one rule, both directions. A node named
 * NAME is the holder of a certificate carrying the peer_name of its section, [target NAME] when
 * target (we ship to it, and it may seed from us) or [source NAME] (we copy from it); NAME
 * itself when there is no such section. ls_node_cert_name gives that certificate name (borrowed
 * from cfg or name), for the connections the node opens; ls_node_authorized checks an accepted
 * connection whose HELLO says NAME (always true under insecure_plaintext), with why when not. */
const char *ls_node_cert_name(const ls_config_t *cfg, const char *name, bool target);
bool ls_node_authorized(const ls_config_t *cfg, const ls_node_peer_cert_t *cert, const char *name,
                        bool target, char *why, size_t whylen);
/* Admission of a HELLO on a connection the node (cfg) accepted: negotiates the version and
 * features against what the node offers (ls_proto_negotiate), then authenticates the node name
 * the HELLO says, a seed's client as one of our targets, a ship connection's as a source
 * (ls_node_authorized). Returns 0 and *choice; or LS_EUNSUPPORTED (no common version) or
 * LS_EAUTH with *refusal, the connection-wide ERROR to answer with, whose message is msg
 * (borrowed; msglen bytes). */
int ls_node_hello_admit(const ls_config_t *cfg, const ls_node_peer_cert_t *cert,
                        const ls_proto_hello_t *h, ls_proto_choice_t *choice, ls_frame_t *refusal,
                        char *msg, size_t msglen);

#endif
