/*
 * node's private parts, shared by its files (node.h is the API). One process serves many
 * databases, as active for some (it ships their closed generations to targets) and passive for
 * others (it keeps copies).
 *
 *  node      (node.c)      start and stop (each database run as its role file says), the timers,
 *                          frame sending, who may ship and seed
 *  active    (active.c)    per active database: the source view (engine/source), the watcher,
 *                          the log removal
 *  link      (link.c)      per target: one connection carrying every database shipped to it;
 *            (netpath.c)   its replication networks (engine/netpolicy)
 *  shipper   (shipper.c)   per (active database, target): the adapter of its shipping state
 *                          machine (engine/ship: resume plan, reader, GEN frames, acks, suspension)
 *  peer      (peer.c)      per accepted connection: HELLO/WELCOME, each database's frames to
 *                          its copy's machine
 *  pcopy     (pcopy.c)     per passive copy: the adapter of its protocol machine
 *                          (engine/passive), engine/copy and its receiver thread
 *                          (copy/receiver.h), whose events the loop polls into the machine
 *  status    (status.c)    the control socket's commands and the status document;
 *            (suspend.c)   suspend and resume; (opstate.c) the operator's decision on disk
 *  activate  (activate.c)  `logship activate`: the refusal while the old active answers, the
 *                          copy stopped, ls_role_activate on the libuv pool, the database switched
 *                          to active; (announced.c) what the source announced, kept with the
 *                          copy
 *  epoch     (epoch.c)     EPOCH after each version-3 handshake and where a peer's goes; an
 *                          old active fenced (ls_role_fence, its machines Demoted or Diverged)
 *  resync    (resync.c)    `logship resync`: a demoted old active switched to a copy of the new
 *                          active without a restart; (resync_inc.c, resync_job.c,
 *                          resync_conn.c, resync_cmd.c) a diverged one rebuilt by the
 *                          incremental resync from the split, auto_resync
 *  seed      (seed_server.c) per accepted seed connection: adapter of engine/seed's worker and
 *            server session; (seed_client.c, seed_cmd.c) per passive copy: `logship seed`,
 *            adapter of its client session, the install and swap on the copy's receiver thread
 *
 * Threading: everything here runs on the loop thread except the threads inside engine/copy
 * (each copy's receiver: disk writes, fsync, inspection, a seed's install; and its replayer)
 * and engine/source (readers), each active database's block watcher (blockwatch.c), each seed
 * server's snapshot worker, and each connection's zstd worker (engine/transport,
 * offload_compression: every connection asks for it). Those threads talk to the loop only
 * through mutex-protected queues and a wake-up of the loop: the node's own (readers, receivers,
 * the block watcher, the seed server's worker, a seed's install on the receiver thread) through
 * ls_node_wake_t (wake.c: libuv's uv_async_t has the woken loop spin on the sender's busy mark);
 * the zstd workers through the transport's own uv_async_t. The loop
 * only moves bytes, runs timers and lists directories; the exceptions are rare and small: a
 * fence (ls_role_fence: two durable writes, once per fenced database) and a resync (the role
 * file, the copy's open) run on it.
 */
#ifndef LS_NODE_INT_H
#define LS_NODE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "config/config.h"
#include "copy/copy.h"
#include "copy/receiver.h"
#include "node/node.h"
#include "passive/passive.h"
#include "core/core.h"
#include "proto/proto.h"
#include "role/role.h"
#include "ship/ship.h"
#include "source/source.h"
#include "status/status.h"
#include "store/store.h"
#include "transport/credit.h"
#include "transport/transport.h"
#include "writer/ctlpage.h"

#define NODE_CHUNK (256u * 1024u) /* GEN_DATA chunk, bytes */
/* The link's send queue bound (the transport's send_hwm) without compression: GEN_DATA chunks are
 * copies of the reader's buffers, so a deeper queue only holds a second copy of bytes the reader
 * already holds; the kernel keeps the socket fed (docs/SHIP.md, "The active's memory"). With
 * compression the transport's default, the zstd worker's bodies wait in the same queue. */
#define NODE_LINK_SEND_HWM (1024u * 1024u)
#define NODE_RESCAN_MS     1000 /* periodic rescan of an active log directory */
#define NODE_HOUSEKEEP_MS  1000 /* log removal, disk-full retries, status upkeep */
#define NODE_BACKOFF_MIN   100  /* reconnect backoff, ms */
#define NODE_BACKOFF_MAX   3000
#define NODE_REASON_MAX    512
#define NODE_ACTIVATIONS   16 /* activations of one database a daemon run holds (switchovers) */

typedef struct link link_t;
typedef struct shipper shipper_t;
typedef struct active active_t;
typedef struct peer peer_t;
typedef struct pcopy pcopy_t;
typedef struct node_db node_db_t;

/* Copy states (DESIGN.md "Copy states and lag accounting"): engine/passive's, whose values the
 * active side's names share. */
typedef ls_passive_state_t copy_state_t;
#define CS_INITIALIZING LS_PASSIVE_INITIALIZING
#define CS_HEALTHY      LS_PASSIVE_HEALTHY
#define CS_DISCONNECTED LS_PASSIVE_DISCONNECTED
#define CS_SUSPENDED    LS_PASSIVE_SUSPENDED
#define CS_SEEDING      LS_PASSIVE_SEEDING
#define CS_FAILED       LS_PASSIVE_FAILED
#define CS_DIVERGED     LS_PASSIVE_DIVERGED
#define CS_DISK_FULL    LS_PASSIVE_DISK_FULL
const char *ls__node_state_name(copy_state_t s);

/* ---- active side ---------------------------------------------------------------------------- */
struct shipper {
    active_t *db;                         /* the database shipped */
    link_t *link;                         /* the target it is shipped to */
    ls_ship_t *m;                         /* its state machine (engine/ship) */
    char kept_path[LS_CFG_PATH_MAX + 80]; /* <db>/copy-<target>.counters: m's kept counters */
    char op_path[LS_CFG_PATH_MAX + 80];   /* <db>/copy-<target>.state: m's operator state */
};

struct active {
    ls_node_t *node;
    const ls_cfg_database_t *cfg;
    char logs[LS_CFG_PATH_MAX + 8]; /* <path>/logs */
    ls_source_t *src;               /* NULL until the database exists */
    uint8_t dbid[LS_DBID_LEN];      /* from a generation header once known */
    bool have_dbid;
    uv_fs_event_t watch; /* fs events on logs/ (when started) */
    bool watching;
    shipper_t *shippers; /* one per other member of the copy set */
    int nshippers;
    uv_work_t removal;                        /* log removal in progress (off the loop) */
    bool removing;                            /* removal is queued or running */
    uint64_t removal_synced[LS_CFG_MAX_NETS]; /* targets' synced positions for that removal */
    uint64_t removed;                         /* generations removed since start */
    bool removal_warned;                      /* the removal warning was logged */
    char removal_msg[256];                    /* last warning of the removal rule ("" when none) */
    uint64_t removal_seed_needs; /* lowest generation a seed needs, for that removal (0: none) */
    int seed_snapshots;   /* seed snapshots of its store under way (seed_server.c): the removal's
                             ls_store_peek_meta waits, LMDB's locks being per process */
    bool fenced;          /* an old active (epoch.c): nothing offered, nothing removed */
    uint64_t newer_first; /* first generation of the newer epoch a peer announced (EPOCH; 0:
                             not known): later local generations are after the split */
    bool retired;         /* rebuilt as a copy (resync.c): no longer polled or shown */
    struct node_bw *bw;   /* block mode: the watcher of the writer's durable position and the
                             current log's reads (blockwatch.c); NULL until the control page
                             exists */
    ls_ctlpage_t *ctl;    /* <path>/control, mapped once it exists (ls__node_active_ctl):
                             the block watcher's and the sync state's one mapping */
    ls_ctl_sync_t sync;   /* synchronous commit as last read from it (state off: no writer) */
    bool sync_warned;     /* the control page could not be read: said once */
    bool bw_warned;       /* the block watcher could not start: said once */
    bool switching;       /* a switchover holds it (switchover.c): no log removal */
};

/* A wake-up of the loop from another thread (wake.c): like uv_async_t, but the loop never waits
 * for a sender that it preempted (libuv's busy mark and sched_yield). */
typedef struct {
    uv_poll_t poll;             /* the eventfd, polled by the loop */
    int fd;                     /* eventfd */
    atomic_int pending;         /* written and not yet run: later sends do not write */
    void (*cb)(void *data);     /* on the loop */
    void (*closed)(void *data); /* after the close, or NULL */
    void *data;
} ls_node_wake_t;
/* 0, or the errno of a failed eventfd or poll (out of descriptors): nothing is left open then.
 * Never the daemon's end: at start it does not start, saying which; a request (a seed, a block
 * watcher's start, an activation's links, a resync's or a switchover's copy) fails or waits,
 * made before anything durable (ls__node_pcopy_reserve), and works again once one is free. */
int ls__node_wake_init(uv_loop_t *loop, ls_node_wake_t *w, void (*cb)(void *), void *data);
void ls__node_wake_send(ls_node_wake_t *w); /* any thread */
void ls__node_wake_close(ls_node_wake_t *w, void (*closed)(void *data));

struct link {
    ls_node_t *node;
    const ls_cfg_target_t *cfg;
    ls_conn_t *conn;      /* NULL when not connected */
    bool ready;           /* WELCOME received */
    int net;              /* network in use (index into cfg->nets) */
    uv_timer_t retry;     /* reconnect timer */
    ls_node_wake_t wake;  /* readers' notifications */
    uint64_t backoff_ms;  /* next reconnect delay */
    uint64_t conn_window; /* connection-wide credit window (WELCOME), bytes */
    uint64_t conn_credit; /* bytes of GEN_DATA the connection accepts now */
    shipper_t **shippers; /* every (database, this target) pair */
    int nshippers;
    shipper_t **by_idx; /* HELLO index -> shipper, for this connection */
    int nidx;
    int rr;                           /* HELLO index the round-robin of chunks starts at next */
    char last_error[NODE_REASON_MAX]; /* why the last connection ended */
    uint64_t connects;                /* successful connections since start */
    uint16_t version;                 /* protocol version of this connection (WELCOME) */
    struct node_netsel *sel;          /* networks: states, probes, pin, counters (netpath.c) */
};

/* ---- passive side --------------------------------------------------------------------------- */
struct pcopy {
    ls_node_t *node;
    const ls_cfg_database_t *cfg;
    ls_passive_t *m;       /* its protocol: state, RESUME, acks, ask-again, suspension, figures */
    ls_copy_t *copy;       /* engine/copy as the loop uses it (NULL if it failed to open: see the
                              reason; NULL during a seed's swap, from start_swap to end_swap); the
                              machine is given the same pointer */
    peer_t *peer;          /* connection serving it, or NULL */
    ls_copy_rx_t *rx;      /* the receiver thread (engine/copy/receiver.h): owns its own pointer to
                              the copy, which a seed's swap replaces there (seed_client.c) */
    bool rx_started;       /* rx runs */
    ls_node_wake_t *async; /* rx's notify: its events are polled on the loop (NULL: none made,
                              or closed; made ahead by ls__node_pcopy_reserve) */
    char op_path[LS_CFG_PATH_MAX + 16];   /* the operator's decision: <copy>.state */
    char kept_path[LS_CFG_PATH_MAX + 16]; /* ask-again counters: <copy>.counters */
    struct node_seedc *seed;      /* this copy's seed, running or the last one (seed_client.c) */
    char source[LS_CFG_NAME_MAX]; /* the active it follows: the role file's, else the config's */
    bool retired;                 /* closed for an activation (activate.c): no longer served */
    bool async_closed;            /* async's close callback ran (it may be made again) */
    /* What the source last announced in COPY_STATE, kept in <copy>.announced (announced.c) so
     * that an activation after a restart of this daemon still knows it. */
    ls_role_announced_t announced;
    char ann_path[LS_CFG_PATH_MAX + 16];
    bool ann_dirty;    /* changed since the file was last written */
    bool ann_unsynced; /* written since the file was last fsynced */
    size_t ann_len;    /* the file's length when known durable (overwritten in place), else 0 */
    int ann_fd;        /* kept open for the writes in place while ann_len is set, else -1 */
};

/* A configured database on this node: its role (the role file, engine/role, with the
 * configuration's role as the initial one) and what runs it. */
struct node_db {
    const ls_cfg_database_t *cfg;
    ls_role_state_t role; /* as loaded at start, or as the last activation left it */
    active_t *active;     /* it runs as active (NULL otherwise) */
    pcopy_t *copy;        /* it runs as a copy (NULL otherwise) */
    struct node_act *act; /* its activation, running or the last one (activate.c) */
    struct node_rsi *rsi; /* its incremental resync, running or the last one (resync_inc.c) */
    struct node_sw *sw;   /* its switchover, running or the last one (switchover.c) */
};

struct peer {
    ls_node_t *node;
    peer_t *next;
    ls_conn_t *conn;
    uint64_t id; /* connection id (credit returns go to the right connection) */
    char name[LS_PROTO_NODE_MAX + 1]; /* the source node's name from HELLO */
    bool welcomed;
    ls_credit_rx_t *credit;
    pcopy_t **by_idx;              /* HELLO index -> copy (NULL: refused) */
    uint8_t (*dbids)[LS_DBID_LEN]; /* HELLO index -> database id */
    int nidx;
    uint16_t version;        /* protocol version chosen for this connection */
    bool block;              /* block mode negotiated (LS_FEAT_BLOCK, version >= 5) */
    bool tail;               /* GEN_TAIL negotiated (LS_FEAT_TAIL with LS_FEAT_BLOCK) */
    bool apply;              /* LS_FEAT_APPLY negotiated: the source says when to apply early */
    pcopy_t **seeding;       /* HELLO index -> copy refused because it was being seeded
                                (a RE_OFFER takes it back), or NULL */
    struct node_seeds *seed; /* a seed connection (seed_server.c), or NULL */
};

struct ls_node {
    uv_loop_t *loop;        /* the caller's loop (borrowed) */
    const ls_config_t *cfg; /* the configuration (borrowed) */
    ls_tls_ctx_t *tls;      /* the caller's TLS context (borrowed; NULL: plaintext) */
    uv_timer_t rescan;      /* NODE_RESCAN_MS: rescan active dirs, open new ones */
    uv_timer_t housekeep;   /* NODE_HOUSEKEEP_MS */
    bool timers;            /* rescan and housekeep were initialised */
    active_t *actives;      /* the active databases, nactives of them (a retired one stays) */
    int nactives;
    int actives_cap; /* room in actives: each activation in this run takes a slot */
    link_t *links;   /* one per [target], then per peer reached otherwise (activation), nlinks */
    int nlinks;
    int links_cap;   /* links has room for this many (links are never moved) */
    pcopy_t *copies; /* the passive copies, ncopies (a retired one stays in its slot) */
    int ncopies;
    node_db_t *dbs; /* one per [database] section, in the file's order */
    int ndbs;
    peer_t *peers;         /* accepted connections (a list) */
    uint64_t next_conn_id; /* id of the next accepted connection */
    uint64_t start_ns;     /* when the node was made (UTC ns): counters since start begin here */
    bool stopping;         /* ls_node_stop was called */
};

/* node.c */
int ls__node_send(ls_conn_t *conn, const ls_frame_t *f); /* encodes and sends; 0, LS_EBUSY, ... */
/* The database a frame names, among those a source receives (to_source: RESUME, CREDIT,
 * RE_OFFER, the acknowledgements) or a target receives (GEN_BEGIN, GEN_DATA, GEN_END), and
 * ERROR, COPY_STATE and EPOCH either way; NULL for any other frame. */
const uint8_t *ls__node_frame_dbid(const ls_frame_t *f, bool to_source);
/* Connects to network net of t, a [target] section when target, else a [source] one: its
 * address, bind address and heartbeats, the certificate name its node must show
 * (ls_node_cert_name), cb's callbacks and data, and cb's send_hwm when not 0. 0 and *out, or an
 * error (*out NULL, no callback runs). */
int ls__node_connect(ls_node_t *n, const ls_cfg_target_t *t, int net, bool target,
                     const ls_conn_opts_t *cb, ls_conn_t **out);
/* The head of the WELCOME that answers a HELLO admitted with choice, for count databases (their
 * entries are the caller's). */
void ls__node_welcome(const ls_node_t *n, ls_frame_t *w, const ls_proto_choice_t *choice,
                      uint16_t count);
/* active.c */
/* a ships to the count nodes of to (the copy set minus this node). */
void ls__node_active_init(ls_node_t *n, active_t *a, const ls_cfg_database_t *cfg,
                          char to[][LS_CFG_NAME_MAX], int count);
void ls__node_active_poll(active_t *a); /* open when it appears, rescan */
void ls__node_active_close(active_t *a);
void ls__node_active_free(active_t *a);      /* after the loop ended: machines, source, shippers */
void ls__node_active_housekeep(active_t *a); /* log removal */
/* syncstate.c: synchronous commit's state read from the control page (loop, housekeeping tick),
 * switches logged; the status fields. */
/* The active database's control page, mapped at the first call that finds it (a writer made it):
 * 0, or ls_ctlpage_open's error (LS_ENOENT: none yet) with err set. Closed by active_free. */
int ls__node_active_ctl(active_t *a, char *err, size_t errlen);
void ls__node_sync_poll(active_t *a);
void ls__node_sync_status(const active_t *a, ls_status_db_t *o);
/* Block mode (blockwatch.c): the watcher thread on the writer's durable position, started once
 * the control page exists (idempotent), stopped at close (idempotent); the current log's reads
 * for the machines; the copies' positions published into the control page. */
void ls__node_bw_start(active_t *a);
void ls__node_bw_stop(active_t *a);
void ls__node_bw_free(active_t *a); /* after the loop ended */
int64_t ls__node_bw_read(active_t *a, uint32_t epoch, uint64_t generation, uint64_t off,
                         uint8_t *buf, size_t len);
void ls__node_bw_publish_copies(active_t *a);

/* link.c */
/* 0, or the errno when its wake-up cannot be made (out of descriptors): nothing made then. */
int ls__node_link_init(ls_node_t *n, link_t *l, const ls_cfg_target_t *cfg);
/* The link to node name, made from its [target]/[peer] (else [source]) section when there is none
 * yet; NULL when no section says how to reach it (*werr 0) or its wake-up cannot be made (*werr:
 * the errno, out of descriptors). */
link_t *ls__node_link_for(ls_node_t *n, const char *name, int *werr);
void ls__node_link_add(link_t *l, shipper_t *s); /* s ships over l (at start) */
void ls__node_link_kick(link_t *l); /* connect if idle and something is ready to ship */
void ls__node_link_pump(link_t *l); /* send what credit and the socket allow */
/* A frame of shipper s (its machine's send callback). 0, LS_EBUSY (socket full), ... */
int ls__node_link_send(link_t *l, shipper_t *s, const ls_frame_t *f);
void ls__node_link_close(link_t *l);

/* netpath.c: the link's replication networks (docs/NETWORKS.md) */
void ls__node_link_status(shipper_t *s, ls_status_copy_t *c); /* fills a copy's network figures */
/* The control command "network": pin a target's copies to one network, release, show. */
int ls__node_link_command(ls_node_t *n, const cJSON *req, cJSON *resp, char *err, size_t errlen);

/* shipper.c */
/* Creates the machine of (a, l) with the operator state and counters kept with the copy. */
void ls__node_shipper_init(shipper_t *s, active_t *a, link_t *l);

/* peer.c */
void ls__node_peer_on_frame(ls_conn_t *conn, const ls_conn_frame_t *fr);
void ls__node_peer_on_close(ls_conn_t *conn, int status, const char *msg);
void ls__node_peer_close_all(ls_node_t *n);
/* Admits a HELLO on p's connection (ls_node_hello_admit); on refusal answers with the ERROR,
 * closes the connection and returns false. Fills p->name and *choice. component names the log
 * lines ("peer", "seed"). */
bool ls__node_hello_admit(peer_t *p, const ls_proto_hello_t *h, ls_proto_choice_t *choice,
                          const char *component);

/* pcopy.c */
/* Opens the copy of cfg following source (the active it copies from) in slot p (a new one, or
 * a retired one opened again in place: its last seed kept). 0, or out of descriptors for its
 * wake-up: the error, naming the copy, in err and p left as it was (nothing opened, nothing on
 * disk touched). A copy that cannot open its store is not an error: it shows Failed. */
int ls__node_pcopy_open(ls_node_t *n, pcopy_t *p, const ls_cfg_database_t *cfg, const char *source,
                        char *err, size_t errlen);
/* p's wake-up made ahead of the open, before a command's durable step (a resync's or a
 * switchover's role file), so that running out of descriptors fails the command before it:
 * 0 (made now or already), or the error naming the copy name. ls__node_pcopy_open uses it;
 * ls__node_pcopy_unreserve closes it unused. */
int ls__node_pcopy_reserve(ls_node_t *n, pcopy_t *p, const char *name, char *err, size_t errlen);
void ls__node_pcopy_unreserve(pcopy_t *p);
/* Closes the copy; keep_wake: its wake-up stays (the slot reserved: an activation's copy,
 * opened again in place if the activation fails). */
void ls__node_pcopy_close(pcopy_t *p, bool keep_wake);
void ls__node_pcopy_attach(pcopy_t *p, peer_t *peer, int idx); /* a connection now serves it */
void ls__node_pcopy_detach(pcopy_t *p);                        /* that connection ended */
void ls__node_pcopy_housekeep(pcopy_t *p);
copy_state_t ls__node_pcopy_state(const pcopy_t *p);
const char *ls__node_pcopy_reason(const pcopy_t *p);
/* Sets the copy's state with a printf-style reason, through its machine (engine/passive). */
#define NODE_SET_STATE(p, st, ...) ls_passive_set_state((p)->m, (st), ls_now_ns(), __VA_ARGS__)

/* announced.c: what the source announced, kept beside the copy (its text: announced.h) */
void ls__node_announced_load(pcopy_t *p); /* at open */
void ls__node_announced_made(pcopy_t *p); /* once the copy's directory is made: synced whole */
void ls__node_announced_set(pcopy_t *p, const ls_proto_copy_state_t *cs); /* a COPY_STATE */
void ls__node_announced_save(pcopy_t *p, bool sync); /* when changed; sync: fsync too */
void ls__node_announced_close(pcopy_t *p);           /* the kept descriptor closed, with the copy */
/* Block mode: the source streamed its open generation up to durable_lsn (a BLOCK frame); kept
 * for the loss accounting of an activation, written at the next housekeeping. */
void ls__node_announced_block(pcopy_t *p, uint64_t generation, uint64_t durable_lsn);
/* activate.c: the control commands "activate" and "activate_status" */
int ls__node_activate_cmd(ls_node_t *n, const cJSON *req, bool status_only, cJSON *resp, char *err,
                          size_t errlen);
void ls__node_activate_free(node_db_t *d); /* after the loop ended */
/* A planned activation (switchover.c): the copy of db stops (its serving connection stays
 * open), ls_role_activate runs with announced and max_loss 0, reason recorded; end(db, ctx, rc,
 * report, message) is called once it is over (rc 0: active; else the copy runs again). The
 * refusals of "activate" apply, except the old active answering. 0 or an error (end not
 * called). */
typedef void (*ls__node_act_end_cb)(node_db_t *db, void *ctx, int rc,
                                    const ls_role_activate_report_t *report, const char *message);
int ls__node_activate_planned(ls_node_t *n, node_db_t *db, const ls_role_announced_t *announced,
                              const char *reason, ls__node_act_end_cb end, void *ctx, char *err,
                              size_t errlen);
const char *ls__node_activation_state(const node_db_t *d); /* the last one's; NULL: none */
node_db_t *ls__node_db(ls_node_t *n, const char *name);    /* NULL when not configured */
/* The database a control request names in its "database" field; NULL with *rc and err set
 * (LS_EINVAL: no such string field, naming cmd; LS_ENOENT: no such database here). */
node_db_t *ls__node_db_of(ls_node_t *n, const cJSON *req, const char *cmd, int *rc, char *err,
                          size_t errlen);

/* epoch.c: epochs on the wire (docs/ACTIVATION.md, "Epochs on the wire") */
/* Sends EPOCH(dbid, ...) for the database named name on conn, from ls_role_epoch_info() of its
 * directory; nothing when name is not configured here. */
void ls__node_epoch_send(ls_node_t *n, ls_conn_t *conn, const uint8_t *dbid, const char *name);
/* An EPOCH frame on a server connection for a database that connection does not ship here:
 * learned by every ship machine of this node's active with that database id. */
void ls__node_epoch_learn(ls_node_t *n, const ls_proto_epoch_t *e);
/* Keeps where a newer epoch than a's starts (its EPOCH), before its machine learns of it. */
void ls__node_epoch_note(active_t *a, const ls_proto_epoch_t *e);
/* A ship machine of a entered DEMOTED with `fence` (shipper.c): fence the directory
 * (ls_role_fence), tell the database's other machines, record Diverged when local generations
 * lie after the split the EPOCH announced. from: the machine that learned it. */
void ls__node_epoch_fence(active_t *a, shipper_t *from, uint32_t epoch, const char *who);
/* At start, the role file says demoted or diverged: every machine of a fenced for good. */
void ls__node_epoch_fenced_at_start(active_t *a, const ls_role_state_t *r);
/* Records in <dir>/logs/<prefix>.log, the open log (*gen: its generation); -1 when there is
 * none or its header cannot be read. Reads the file (small: one open generation). */
int64_t ls__node_open_log_records(const char *dir, uint64_t *gen);
/* The copy's known history to its machine (at open). */
void ls__node_pcopy_epochs(pcopy_t *p);
/* The refusal of a HELLO entry for a database this node does not copy from that peer, when the
 * database is active, demoted or diverged here (why filled, true), else false. */
bool ls__node_epoch_refusal(ls_node_t *n, const char *name, char *why, size_t whylen);

/* opstate.c */
int ls__node_opstate_load(const char *path, ls_status_op_t *out); /* absent: all clear, 0 */
/* The same from the file's text[0..len) in memory, named name in messages (the fuzz target's). */
int ls__node_opstate_parse(const char *name, const char *text, size_t len, ls_status_op_t *out);
int ls__node_opstate_save(const char *path, const ls_status_op_t *st);
/* The ask-again counters kept at path: loaded (from 0, with a warning, when unreadable), saved
 * at once (a warning when it fails). */
void ls__node_counters_load(const char *path, ls_status_counters_t *out);
int ls__node_counters_save(const char *path, const ls_status_counters_t *c);

/* suspend.c: operator commands and COPY_STATE, both sides */
int ls__node_cmd_suspend(ls_node_t *n, const cJSON *req, bool suspend, cJSON *resp, char *err,
                         size_t errlen);

/* seed_server.c: the active side of a seed (a SEED-purpose connection accepted by peer.c) */
void ls__node_seed_server_frame(peer_t *p, const ls_frame_t *f); /* HELLO (seed) and what follows */
void ls__node_seed_server_close(peer_t *p);                      /* its connection ended */
uint64_t ls__node_seed_needs(active_t *a); /* lowest generation a seed of a needs (0: none) */

/* seed_client.c: the passive side of a seed (`logship seed`) */
/* At start, before the copy or store opens; active: the database runs as active here. */
void ls__node_seed_recover(const ls_cfg_database_t *d, bool active);
bool ls__node_seed_client_busy(pcopy_t *p, char *why,
                               size_t whylen); /* refuse shipping while seeding */
/* The copy's last seed failed less than NODE_SEED_NOTE_NS ago: why (a copy that goes on being
 * shipped after a failed seed keeps saying so when its source then disconnects). */
#define NODE_SEED_NOTE_NS (60ull * 1000000000ull)
bool ls__node_seed_client_failed_lately(pcopy_t *p, char *why, size_t whylen);
int ls__node_seed_client_cmd(ls_node_t *n, const cJSON *req, bool status_only, cJSON *resp,
                             char *err, size_t errlen);            /* "seed" and "seed_status" */
void ls__node_seed_client_status(pcopy_t *p, ls_status_seed_t *o); /* seed figures in status */
void ls__node_seed_client_stop(ls_node_t *n); /* at stop, after the copies closed */
int ls__node_pcopy_copy_open(pcopy_t *p, ls_copy_t **out, char *err, size_t errlen); /* pcopy.c */

#endif
