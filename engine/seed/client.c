/*
 * The seed client session (session.h): the passive's side of a seed connection. Frames from the
 * source and reports from the receiver thread in; install steps, CREDIT frames, close and swap
 * out, through a small queue of actions the caller drains after each call.
 *
 * States: CONNECTING -(WELCOME accepted)-> SNAPSHOT -(SEED_BEGIN)-> RECEIVING -(verified)->
 * INSTALLING -(swapped)-> DONE; any failure before INSTALLING -> FAILED (the install is aborted:
 * nothing of it stays, the old copy is untouched); a failed swap -> FAILED.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "seed/seed_int.h"
#include "seed/session.h"
#include "transport/credit.h"

#define ACT_MAX 8 /* actions one call can queue */

struct ls_seed_client {
    ls_seed_client_options_t o;
    char source[LS_PROTO_NODE_MAX + 1];
    ls_seed_client_state_t state;
    bool welcomed;
    bool xxh; /* the WELCOME accepted LS_FEAT_SEEDXXH: the stream's check is XXH3-128 */
    ls_credit_rx_t *credit; /* what the source may still send */
    ls_seed_info_t info;    /* from SEED_BEGIN */
    bool begun;
    uint64_t done; /* bytes written by the receiver thread */
    ls_seed_progress_t prog;
    int code;
    char msg[LS_SEED_MSG_MAX];
    ls_seed_act_t acts[ACT_MAX]; /* queued actions */
    int nacts, next_act;
    /* resync */
    ls_proto_link_t *links; /* the source's chain */
    size_t nlinks, cap;
    uint32_t chain_epoch;
    char chain_active[LS_PROTO_NODE_MAX + 1];
    const ls_proto_link_t *split; /* in links */
    uint8_t *keys;                /* the RESYNC key sequence */
    size_t keys_len, keys_sent;
    bool resync_sending; /* RESYNC frames still to go */
};

static const char *const state_names[] = {"",          "connecting", "chain", "split", "snapshot",
                                          "receiving", "installing", "done",  "failed"};

const char *ls_seed_client_state_name(ls_seed_client_state_t st)
{
    return st >= LS_SEED_CLI_CONNECTING && st <= LS_SEED_CLI_FAILED ? state_names[st] : "";
}

int ls_seed_client_new(const ls_seed_client_options_t *o, ls_seed_client_t **out)
{
    ls_seed_client_t *c = calloc(1, sizeof(*c));
    if (!c) return LS_ENOMEM;
    c->o = *o;
    snprintf(c->source, sizeof(c->source), "%s", o->source ? o->source : "the source");
    c->o.source = c->source;
    if (c->o.resync) c->o.features |= LS_FEAT_RESYNC;
    if (!c->o.sha256 && !LS_FAULT("seed.sha256")) c->o.features |= LS_FEAT_SEEDXXH;
    c->state = LS_SEED_CLI_CONNECTING;
    c->credit = ls_credit_rx_new(o->window, o->window);
    if (!c->credit || ls_credit_rx_db_add(c->credit) != 0) {
        ls_credit_rx_free(c->credit);
        free(c);
        return LS_ENOMEM;
    }
    *out = c;
    return 0;
}

void ls_seed_client_free(ls_seed_client_t *c)
{
    if (!c) return;
    ls_credit_rx_free(c->credit);
    free(c->links);
    free(c->keys);
    free(c);
}

static ls_seed_act_t *push(ls_seed_client_t *c, ls_seed_act_kind_t kind)
{
    if (c->next_act == c->nacts) c->next_act = c->nacts = 0; /* drained: start again */
    LS_CHECK(c->nacts < ACT_MAX);
    ls_seed_act_t *a = &c->acts[c->nacts++];
    memset(a, 0, sizeof(*a));
    a->kind = kind;
    return a;
}

#define RESYNC_FRAME_KEYS (256u * 1024u) /* key bytes per RESYNC frame, at most */

/* The next RESYNC frame: whole keys, up to RESYNC_FRAME_KEYS bytes. */
static void resync_frame(ls_seed_client_t *c, ls_seed_act_t *a)
{
    memset(a, 0, sizeof(*a));
    a->kind = LS_SEED_ACT_SEND;
    ls_proto_resync_t *r = &a->frame.resync;
    a->frame.type = LS_FRAME_RESYNC;
    memcpy(r->dbid, c->info.dbid, LS_DBID_LEN);
    r->split_generation = c->split->generation;
    r->split_epoch = c->split->epoch;
    memcpy(r->split_digest, c->split->digest, LS_DIGEST_SIZE);
    size_t off = c->keys_sent, n;
    const uint8_t *k;
    for (size_t next = off; ls_proto_resync_key(c->keys, c->keys_len, &next, &k, &n);) {
        if (next - c->keys_sent > RESYNC_FRAME_KEYS) break;
        off = next;
    }
    r->keys = c->keys_len ? c->keys + c->keys_sent : NULL;
    r->keys_len = (uint32_t) (off - c->keys_sent);
    c->keys_sent = off;
    if (off < c->keys_len)
        r->flags = LS_RESYNC_MORE;
    else
        c->resync_sending = false;
}

bool ls_seed_client_action(ls_seed_client_t *c, ls_seed_act_t *a)
{
    if (c->next_act >= c->nacts) {
        c->next_act = c->nacts = 0;
        if (c->resync_sending && c->state == LS_SEED_CLI_SNAPSHOT) {
            resync_frame(c, a);
            return true;
        }
        return false;
    }
    *a = c->acts[c->next_act++];
    return true;
}

__attribute__((format(printf, 3, 0))) static void vfail(ls_seed_client_t *c, int code,
                                                        const char *fmt, va_list ap)
{
    if (c->state >= LS_SEED_CLI_INSTALLING) return; /* the swap decides from here */
    vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
    c->code = code ? code : LS_EIO;
    c->state = LS_SEED_CLI_FAILED;
    push(c, LS_SEED_ACT_CLOSE);
    push(c, LS_SEED_ACT_ABORT);
}

void ls_seed_client_fail(ls_seed_client_t *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(c, code, fmt, ap);
    va_end(ap);
}

void ls_seed_client_hello(ls_seed_client_t *c, const char *node, const char *name,
                          const uint8_t dbid[LS_DBID_LEN], ls_frame_t *out)
{
    memset(out, 0, sizeof(*out));
    out->type = LS_FRAME_HELLO;
    ls_proto_hello_t *h = &out->hello;
    h->version_min = LS_PROTO_VERSION_MIN;
    h->version_max = LS_PROTO_VERSION_MAX;
    h->purpose = LS_PURPOSE_SEED;
    h->features = c->o.features;
    if (h->features & LS_FEAT_ZSTD) h->zstd_level = c->o.zstd_level;
    h->db_window = c->o.window;
    h->conn_window = c->o.window;
    h->node = ls_proto_str(node);
    h->db_count = 1;
    if (dbid) memcpy(h->dbs[0].dbid, dbid, LS_DBID_LEN);
    h->dbs[0].name = ls_proto_str(name);
}

static void on_welcome(ls_seed_client_t *c, const ls_proto_welcome_t *w)
{
    ls_proto_hello_t h = {.version_min = LS_PROTO_VERSION_MIN,
                          .version_max = LS_PROTO_VERSION_MAX,
                          .features = c->o.features,
                          .db_count = 1};
    char msg[LS_SEED_MSG_MAX - 64];
    if (ls_proto_welcome_check(&h, w, false, msg, sizeof(msg)) != 0) {
        ls_seed_client_fail(c, LS_EPROTO, "%s broke the protocol: %s", c->source, msg);
    } else if (w->dbs[0].status != LS_DB_ACCEPTED) {
        ls_seed_client_fail(c, w->dbs[0].code, "refused by %s: %.*s", c->source,
                            (int) w->dbs[0].reason.len, w->dbs[0].reason.ptr);
    } else if (c->o.resync &&
               (w->version < LS_PROTO_VERSION_RESYNC || !(w->features & LS_FEAT_RESYNC))) {
        ls_seed_client_fail(c, LS_EUNSUPPORTED,
                            "%s cannot resync (protocol version %u, resync %s): seed this "
                            "copy instead",
                            c->source, (unsigned) w->version,
                            w->features & LS_FEAT_RESYNC ? "offered" : "not offered");
    } else {
        c->welcomed = true;
        memcpy(c->info.dbid, w->dbs[0].dbid, LS_DBID_LEN);
        c->xxh = (w->features & LS_FEAT_SEEDXXH) != 0;
        c->state = c->o.resync ? LS_SEED_CLI_CHAIN : LS_SEED_CLI_SNAPSHOT;
        if (w->features & LS_FEAT_ZSTD)
            push(c, LS_SEED_ACT_ZSTD)->zstd_level = ls_proto_zstd_level(w->zstd_level);
        if (c->o.resync) {
            ls_seed_act_t *a = push(c, LS_SEED_ACT_SEND);
            a->frame.type = LS_FRAME_CHAIN_REQ;
            memcpy(a->frame.chain_req.dbid, c->info.dbid, LS_DBID_LEN);
            a->frame.chain_req.from_generation = c->o.chain_from ? c->o.chain_from : 1;
        }
    }
}

static void on_chain(ls_seed_client_t *c, const ls_proto_chain_t *ch)
{
    if (c->state != LS_SEED_CLI_CHAIN) {
        ls_seed_client_fail(c, LS_EPROTO, "%s sent CHAIN out of turn", c->source);
        return;
    }
    if (c->nlinks + ch->count > c->cap) {
        size_t cap = LS_MAX(c->cap * 2, c->nlinks + ch->count);
        ls_proto_link_t *l = realloc(c->links, cap * sizeof(*l));
        if (!l) {
            ls_seed_client_fail(c, LS_ENOMEM, "out of memory for %s's chain", c->source);
            return;
        }
        c->links = l;
        c->cap = cap;
    }
    for (size_t i = 0; i < ch->count; i++) {
        ls_proto_link_t l;
        ls_proto_chain_link(ch, i, &l);
        if (c->nlinks && l.generation <= c->links[c->nlinks - 1].generation) {
            ls_seed_client_fail(c, LS_EPROTO, "%s sent a chain out of order", c->source);
            return;
        }
        c->links[c->nlinks++] = l;
    }
    c->chain_epoch = ch->epoch;
    snprintf(c->chain_active, sizeof(c->chain_active), "%.*s", (int) ch->active.len,
             ch->active.ptr ? ch->active.ptr : "");
    if (ch->count == LS_PROTO_CHAIN_MAX) { /* a full frame: there may be more */
        ls_seed_act_t *a = push(c, LS_SEED_ACT_SEND);
        a->frame.type = LS_FRAME_CHAIN_REQ;
        memcpy(a->frame.chain_req.dbid, c->info.dbid, LS_DBID_LEN);
        a->frame.chain_req.from_generation = c->links[c->nlinks - 1].generation + 1;
        return;
    }
    c->state = LS_SEED_CLI_SPLIT; /* the node demotes, then ls_seed_client_resync */
}

void ls_seed_client_chain(const ls_seed_client_t *c, const ls_proto_link_t **links, size_t *n,
                          uint32_t *epoch, const char **active)
{
    *links = c->links;
    *n = c->nlinks;
    if (epoch) *epoch = c->chain_epoch;
    if (active) *active = c->chain_active;
}

int ls_seed_client_resync(ls_seed_client_t *c, uint64_t split, const uint8_t *keys, size_t len)
{
    if (c->state != LS_SEED_CLI_SPLIT) return LS_ESTATE;
    c->split = NULL;
    for (size_t i = 0; i < c->nlinks; i++)
        if (c->links[i].generation == split) c->split = &c->links[i];
    if (!c->split) {
        ls_seed_client_fail(c, LS_EDIVERGED,
                            "%s does not hold the split generation %llu: nothing to resync "
                            "from; seed this copy instead",
                            c->source, (unsigned long long) split);
        return LS_EDIVERGED;
    }
    uint8_t *k = len ? malloc(len) : NULL;
    if (len && !k) return LS_ENOMEM;
    if (len) memcpy(k, keys, len);
    free(c->keys);
    c->keys = k;
    c->keys_len = len;
    c->keys_sent = 0;
    c->resync_sending = true;
    c->state = LS_SEED_CLI_SNAPSHOT;
    return 0;
}

/* RESYNC_BEGIN: the incremental stream; as SEED_BEGIN's, with the resync's figures. */
/* Into the info: the fields SEED_BEGIN and RESYNC_BEGIN share. */
static void take_head(ls_seed_info_t *i, const uint8_t *dbid, uint64_t total_bytes,
                      uint64_t last_lsn, uint64_t generation, const uint8_t *prev_digest,
                      uint32_t epoch)
{
    memcpy(i->dbid, dbid, LS_DBID_LEN);
    i->total_bytes = total_bytes;
    i->last_lsn = last_lsn;
    i->generation = generation;
    memcpy(i->prev_digest, prev_digest, LS_DIGEST_SIZE);
    i->epoch = epoch;
}

static void on_resync_begin(ls_seed_client_t *c, const ls_proto_resync_begin_t *b, uint64_t now_ns)
{
    if (c->state != LS_SEED_CLI_SNAPSHOT || c->resync_sending || !c->o.resync) {
        ls_seed_client_fail(c, LS_EPROTO, "%s sent RESYNC_BEGIN out of turn", c->source);
        return;
    }
    c->begun = true;
    memset(&c->info, 0, sizeof(c->info));
    take_head(&c->info, b->dbid, b->total_bytes, b->last_lsn, b->generation, b->prev_digest,
              b->epoch);
    c->info.txid = b->txid;
    c->info.resync = true;
    c->info.split_generation = b->split_generation;
    c->info.keys = b->keys;
    c->info.store_bytes = b->store_bytes;
    c->info.xxh = c->xxh;
    ls_seed_progress_init(&c->prog, b->total_bytes, now_ns);
    c->state = LS_SEED_CLI_RECEIVING;
    push(c, LS_SEED_ACT_INSTALL_BEGIN)->info = &c->info;
}

static void on_begin(ls_seed_client_t *c, const ls_proto_seed_begin_t *b, uint64_t now_ns)
{
    if (c->state != LS_SEED_CLI_SNAPSHOT || c->resync_sending) {
        ls_seed_client_fail(c, LS_EPROTO, "%s sent SEED_BEGIN out of turn", c->source);
        return;
    }
    c->begun = true;
    if (c->o.resync) /* the source fell back to a full seed */
        snprintf(c->info.fallback, sizeof(c->info.fallback),
                 "%s sent a full seed instead of the resync", c->source);
    take_head(&c->info, b->dbid, b->total_bytes, b->last_lsn, b->generation, b->prev_digest,
              b->epoch);
    c->info.xxh = c->xxh;
    ls_seed_progress_init(&c->prog, b->total_bytes, now_ns);
    c->state = LS_SEED_CLI_RECEIVING;
    push(c, LS_SEED_ACT_INSTALL_BEGIN)->info = &c->info;
}

static void on_data(ls_seed_client_t *c, const ls_proto_seed_data_t *d)
{
    if (c->state != LS_SEED_CLI_RECEIVING) {
        ls_seed_client_fail(c, LS_EPROTO, "%s sent SEED_DATA out of turn", c->source);
        return;
    }
    if (ls_credit_rx_received(c->credit, 0, d->len) != 0) {
        ls_seed_client_fail(c, LS_EPROTO, "%s ignored the credit window", c->source);
        return;
    }
    ls_seed_act_t *a = push(c, LS_SEED_ACT_INSTALL_DATA);
    a->offset = d->offset;
    a->data = d->data;
    a->len = d->len;
}

void ls_seed_client_frame(ls_seed_client_t *c, const ls_frame_t *f, uint64_t now_ns)
{
    if (c->state == LS_SEED_CLI_FAILED || c->state == LS_SEED_CLI_DONE) return;
    if (f->type == LS_FRAME_ERROR) {
        ls_seed_client_fail(c, f->error.code, "%s: %.*s", c->source, (int) f->error.message.len,
                            f->error.message.ptr);
    } else if (!c->welcomed) {
        if (f->type == LS_FRAME_WELCOME)
            on_welcome(c, &f->welcome);
        else
            ls_seed_client_fail(c, LS_EPROTO, "%s sent %s before WELCOME", c->source,
                                ls_frame_type_name(f->type));
    } else if (f->type == LS_FRAME_SEED_BEGIN) {
        on_begin(c, &f->seed_begin, now_ns);
    } else if (f->type == LS_FRAME_RESYNC_BEGIN) {
        on_resync_begin(c, &f->resync_begin, now_ns);
    } else if (f->type == LS_FRAME_CHAIN) {
        on_chain(c, &f->chain);
    } else if (f->type == LS_FRAME_SEED_DATA) {
        on_data(c, &f->seed_data);
    } else if (f->type == LS_FRAME_SEED_END) {
        if (c->state != LS_SEED_CLI_RECEIVING)
            ls_seed_client_fail(c, LS_EPROTO, "%s sent SEED_END out of turn", c->source);
        else
            memcpy(push(c, LS_SEED_ACT_INSTALL_END)->digest, f->seed_end.digest, LS_DIGEST_SIZE);
    } /* HEARTBEAT and the like: nothing to do */
}

void ls_seed_client_consumed(ls_seed_client_t *c, uint64_t bytes, uint64_t done, uint64_t now_ns)
{
    c->done = done;
    if (c->begun) ls_seed_progress_update(&c->prog, done, now_ns);
    if (!bytes || ls_seed_client_finished(c) || c->state == LS_SEED_CLI_INSTALLING) return;
    uint64_t conn_grant = 0;
    uint64_t grant = ls_credit_rx_consumed(c->credit, 0, bytes, &conn_grant);
    if (grant) {
        ls_seed_act_t *a = push(c, LS_SEED_ACT_SEND);
        a->frame.type = LS_FRAME_CREDIT;
        memcpy(a->frame.credit.dbid, c->info.dbid, LS_DBID_LEN);
        a->frame.credit.bytes = (uint32_t) grant;
    }
    if (conn_grant) {
        ls_seed_act_t *a = push(c, LS_SEED_ACT_SEND);
        a->frame.type = LS_FRAME_CREDIT;
        a->frame.credit.bytes = (uint32_t) conn_grant;
    }
}

void ls_seed_client_verified(ls_seed_client_t *c)
{
    if (c->state != LS_SEED_CLI_RECEIVING) return;
    c->state = LS_SEED_CLI_INSTALLING;
    push(c, LS_SEED_ACT_CLOSE); /* the stream is complete: tells the source */
    push(c, LS_SEED_ACT_SWAP);
}

void ls_seed_client_failed(ls_seed_client_t *c, int code, const char *msg)
{
    ls_seed_client_fail(c, code, "%s", msg && msg[0] ? msg : ls_strerror(code));
}

void ls_seed_client_swapped(ls_seed_client_t *c, bool swapped, const char *msg)
{
    if (c->state != LS_SEED_CLI_INSTALLING) return;
    c->state = swapped ? LS_SEED_CLI_DONE : LS_SEED_CLI_FAILED;
    if (!swapped) {
        c->code = LS_EIO;
        snprintf(c->msg, sizeof(c->msg), "%s", msg && msg[0] ? msg : "the swap failed");
    }
}

void ls_seed_client_closed(ls_seed_client_t *c, int status, const char *msg)
{
    if (c->state >= LS_SEED_CLI_INSTALLING) return; /* closed after the stream: expected */
    ls_seed_client_fail(c, status ? status : LS_ECONNRESET, "connection to %s lost: %s", c->source,
                        status && msg ? msg : "closed");
}

ls_seed_client_state_t ls_seed_client_state(const ls_seed_client_t *c)
{
    return c->state;
}

bool ls_seed_client_welcomed(const ls_seed_client_t *c)
{
    return c->welcomed;
}

bool ls_seed_client_finished(const ls_seed_client_t *c)
{
    return c->state == LS_SEED_CLI_DONE || c->state == LS_SEED_CLI_FAILED;
}

void ls_seed_client_figures(const ls_seed_client_t *c, ls_seed_client_figures_t *out)
{
    out->state = c->state;
    out->info = c->info;
    out->begun = c->begun;
    out->done = c->done;
    out->prog = c->prog;
}

const char *ls_seed_client_error(const ls_seed_client_t *c, int *code)
{
    if (code) *code = c->code;
    return c->msg;
}
