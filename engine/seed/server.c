/*
 * The seed server session (session.h): the active's side of a seed connection after WELCOME.
 * Worker events in (INFO, CHUNK, END, FAIL), the client's CREDIT and ERROR in; SEED_BEGIN, then
 * SEED_DATA within the credit the client's HELLO announced (PROTOCOL.md §7), then SEED_END once
 * the whole stream went out, or ERROR(dbid, code) when the snapshot failed.
 */
#include <stdio.h>
#include <stdlib.h>

#include "seed/seed_int.h"
#include "seed/session.h"
#include "transport/credit.h"

#define SERVER_CHUNK (256u * 1024u)

typedef struct chunk {
    struct chunk *next;
    uint64_t offset; /* stream offset of data[0] */
    uint8_t *data;   /* owned until released */
    size_t len;      /* bytes in data */
    size_t sent;     /* bytes of it sent */
} chunk_t;

struct ls_seed_server {
    ls_seed_server_options_t o;
    uint8_t dbid[LS_DBID_LEN];
    ls_seed_server_state_t state;
    ls_credit_tx_t *credit; /* the client's windows */
    bool have_info;
    ls_seed_info_t info;
    chunk_t *head, *tail; /* received from the worker, not yet sent whole */
    unsigned nchunks;
    bool end_ready; /* every byte was read: digest valid */
    uint8_t digest[LS_DIGEST_SIZE];
    bool begin_sent;
    uint64_t sent; /* SEED_DATA bytes sent */
    int code;      /* failure */
    char msg[LS_SEED_MSG_MAX];
    bool error_pending; /* an ERROR is due */
    /* what next() gave: committed by sent() */
    uint8_t pending; /* frame type, 0: none */
    uint64_t pending_len;
    int pending_db;
    /* resync (o.resync): the client's requests */
    bool chain_asked;    /* a CHAIN_REQ came: request pending until taken */
    bool chain_taken;    /* the node took it: waiting for ls_seed_server_chain */
    uint64_t chain_from; /* its first generation */
    bool chain_ready;    /* a CHAIN is due */
    ls_proto_link_t *links;
    size_t nlinks;
    uint32_t chain_epoch;
    char chain_active[LS_PROTO_NODE_MAX + 1];
    bool resync_begun; /* a RESYNC frame came: split fixed */
    bool resync_done;  /* the last one (no MORE): request pending until taken */
    bool resync_taken;
    ls_seed_resync_req_t rq;
    uint8_t *keys; /* the keys received (rq.keys points here) */
    size_t keys_cap;
};

static void release(ls_seed_server_t *s, void *data)
{
    if (s->o.release)
        s->o.release(s->o.release_ctx, data);
    else
        free(data);
}

int ls_seed_server_new(const ls_seed_server_options_t *o, const uint8_t dbid[LS_DBID_LEN],
                       ls_seed_server_t **out)
{
    ls_seed_server_t *s = calloc(1, sizeof(*s));
    if (!s) return LS_ENOMEM;
    if (o) s->o = *o;
    if (!s->o.chunk_max || s->o.chunk_max > LS_FRAME_CHUNK_MAX) s->o.chunk_max = SERVER_CHUNK;
    memcpy(s->dbid, dbid, LS_DBID_LEN);
    s->state = s->o.resync ? LS_SEED_SRV_REQUEST : LS_SEED_SRV_SNAPSHOT;
    if (!s->o.max_keys_bytes) s->o.max_keys_bytes = 64u << 20;
    s->credit = ls_credit_tx_new(s->o.db_window, s->o.conn_window);
    if (!s->credit || ls_credit_tx_db_add(s->credit) != 0) {
        ls_credit_tx_free(s->credit);
        free(s);
        return LS_ENOMEM;
    }
    *out = s;
    return 0;
}

static void fail(ls_seed_server_t *s, int code, const char *msg, bool tell)
{
    if (s->state == LS_SEED_SRV_FAILED || s->state == LS_SEED_SRV_ENDED) return;
    s->state = LS_SEED_SRV_FAILED;
    s->chain_ready = false;
    s->code = code;
    snprintf(s->msg, sizeof(s->msg), "%s", msg);
    s->error_pending = tell;
}

void ls_seed_server_feed(ls_seed_server_t *s, const ls_seed_wev_t *ev)
{
    if (ev->kind == LS_SEED_WEV_CHUNK &&
        (s->state == LS_SEED_SRV_FAILED || s->state == LS_SEED_SRV_ENDED || !ev->len)) {
        release(s, ev->data); /* nothing will send it */
        return;
    }
    switch (ev->kind) {
    case LS_SEED_WEV_INFO:
        s->info = ev->info;
        s->have_info = true;
        if (s->state == LS_SEED_SRV_SNAPSHOT) s->state = LS_SEED_SRV_STREAMING;
        break;
    case LS_SEED_WEV_CHUNK: {
        chunk_t *c = calloc(1, sizeof(*c));
        if (!c) {
            release(s, ev->data);
            fail(s, LS_ENOMEM, "out of memory", true);
            return;
        }
        c->offset = ev->offset;
        c->data = ev->data;
        c->len = ev->len;
        if (s->tail)
            s->tail->next = c;
        else
            s->head = c;
        s->tail = c;
        s->nchunks++;
        ls_credit_tx_backlog_add(s->credit, 0, c->len);
        break;
    }
    case LS_SEED_WEV_END:
        memcpy(s->digest, ev->digest, LS_DIGEST_SIZE);
        s->end_ready = true;
        break;
    case LS_SEED_WEV_FAIL:
        fail(s, ev->code ? ev->code : LS_EIO, ev->msg, true);
        break;
    }
}

/* The client's RESYNC frames: the split fixed by the first, the keys appended (beyond the
 * limit: too_many, a full seed), complete with the first without MORE. */
static int on_resync(ls_seed_server_t *s, const ls_proto_resync_t *r, char *err, size_t errlen)
{
    ls_seed_resync_req_t *q = &s->rq;
    if (s->resync_begun &&
        (q->split_generation != r->split_generation || q->split_epoch != r->split_epoch ||
         memcmp(q->split_digest, r->split_digest, LS_DIGEST_SIZE) != 0))
        return ls_errf(err, errlen, LS_EPROTO, "RESYNC frames name different splits");
    s->resync_begun = true;
    q->split_generation = r->split_generation;
    q->split_epoch = r->split_epoch;
    memcpy(q->split_digest, r->split_digest, LS_DIGEST_SIZE);
    if (!q->too_many && q->keys_len + r->keys_len > s->o.max_keys_bytes) {
        q->too_many = true; /* the worker takes a full seed */
        free(s->keys);
        s->keys = NULL;
        q->keys = NULL;
        q->keys_len = s->keys_cap = 0;
    }
    if (!q->too_many && r->keys_len) {
        if (q->keys_len + r->keys_len > s->keys_cap) {
            size_t cap = LS_MAX(s->keys_cap * 2, q->keys_len + r->keys_len);
            uint8_t *k = realloc(s->keys, cap);
            if (!k) return ls_errf(err, errlen, LS_ENOMEM, "out of memory for the resync's keys");
            s->keys = k;
            s->keys_cap = cap;
        }
        memcpy(s->keys + q->keys_len, r->keys, r->keys_len);
        q->keys_len += r->keys_len;
        q->keys = s->keys;
    }
    if (!(r->flags & LS_RESYNC_MORE)) s->resync_done = true;
    return 0;
}

int ls_seed_server_frame(ls_seed_server_t *s, const ls_frame_t *f, char *err, size_t errlen)
{
    static const uint8_t zero[LS_DBID_LEN];
    if ((f->type == LS_FRAME_CHAIN_REQ || f->type == LS_FRAME_RESYNC) && s->o.resync &&
        s->state == LS_SEED_SRV_REQUEST && !s->resync_done) {
        int rc = 0;
        if (memcmp(f->type == LS_FRAME_RESYNC ? f->resync.dbid : f->chain_req.dbid, s->dbid,
                   LS_DBID_LEN) != 0)
            rc = ls_errf(err, errlen, LS_EPROTO, "%s for another database than the seeded one",
                         ls_frame_type_name(f->type));
        else if (f->type == LS_FRAME_CHAIN_REQ && (s->chain_asked || s->chain_taken))
            rc = ls_errf(err, errlen, LS_EPROTO, "CHAIN_REQ before the last CHAIN");
        else if (f->type == LS_FRAME_CHAIN_REQ) {
            s->chain_asked = true;
            s->chain_from = f->chain_req.from_generation;
        } else
            rc = on_resync(s, &f->resync, err, errlen);
        if (rc) fail(s, rc, err, rc == LS_ENOMEM);
        return rc;
    }
    if (f->type == LS_FRAME_CREDIT) {
        int rc = !memcmp(f->credit.dbid, zero, LS_DBID_LEN)
                     ? ls_credit_tx_grant_conn(s->credit, f->credit.bytes)
                     : ls_credit_tx_grant(s->credit, 0, f->credit.bytes);
        if (rc == 0) return 0;
        ls_msgf(err, errlen, "the client granted %u bytes of credit it never received",
                (unsigned) f->credit.bytes);
        fail(s, LS_EPROTO, err, false);
        return LS_EPROTO;
    }
    if (f->type == LS_FRAME_ERROR) {
        ls_msgf(err, errlen, "the client gave up: %.*s", (int) f->error.message.len,
                f->error.message.ptr);
        fail(s, LS_ECLOSED, err, false);
        return LS_ECLOSED;
    }
    ls_msgf(err, errlen, "unexpected %s on a seed connection", ls_frame_type_name(f->type));
    fail(s, LS_EPROTO, err, false);
    return LS_EPROTO;
}

bool ls_seed_server_request(ls_seed_server_t *s, ls_seed_server_req_t *out)
{
    memset(out, 0, sizeof(*out));
    if (s->state != LS_SEED_SRV_REQUEST) return false;
    if (s->chain_asked) {
        s->chain_asked = false;
        s->chain_taken = true;
        out->kind = LS_SEED_REQ_CHAIN;
        out->from = s->chain_from;
        return true;
    }
    if (s->resync_done && !s->resync_taken) {
        s->resync_taken = true;
        s->state = LS_SEED_SRV_SNAPSHOT; /* the node starts the worker */
        out->kind = LS_SEED_REQ_RESYNC;
        out->resync = s->rq;
        return true;
    }
    return false;
}

int ls_seed_server_chain(ls_seed_server_t *s, uint32_t epoch, const char *active,
                         const ls_proto_link_t *links, size_t n)
{
    if (!s->chain_taken || s->state != LS_SEED_SRV_REQUEST) return LS_ESTATE;
    n = LS_MIN(n, (size_t) LS_PROTO_CHAIN_MAX);
    ls_proto_link_t *copy = n ? malloc(n * sizeof(*copy)) : NULL;
    if (n && !copy) return LS_ENOMEM;
    if (n) memcpy(copy, links, n * sizeof(*copy));
    free(s->links);
    s->links = copy;
    s->nlinks = n;
    s->chain_epoch = epoch ? epoch : 1;
    snprintf(s->chain_active, sizeof(s->chain_active), "%.*s", LS_PROTO_NODE_MAX,
             active ? active : "");
    s->chain_taken = false;
    s->chain_ready = true;
    return 0;
}

static void chain_frame(const ls_seed_server_t *s, ls_frame_t *out)
{
    memset(out, 0, sizeof(*out));
    out->type = LS_FRAME_CHAIN;
    memcpy(out->chain.dbid, s->dbid, LS_DBID_LEN);
    out->chain.epoch = s->chain_epoch;
    out->chain.active = ls_proto_str(s->chain_active);
    out->chain.count = (uint16_t) s->nlinks;
    out->chain.links = s->links;
}

/* The fields SEED_BEGIN and RESYNC_BEGIN share, from the snapshot's info. */
static void put_head(const ls_seed_info_t *i, uint8_t *dbid, uint64_t *total_bytes,
                     uint64_t *last_lsn, uint64_t *generation, uint8_t *prev_digest,
                     uint32_t *epoch)
{
    memcpy(dbid, i->dbid, LS_DBID_LEN);
    *total_bytes = i->total_bytes;
    *last_lsn = i->last_lsn;
    *generation = i->generation;
    memcpy(prev_digest, i->prev_digest, LS_DIGEST_SIZE);
    *epoch = i->epoch;
}

static void begin_frame(const ls_seed_server_t *s, ls_frame_t *out)
{
    memset(out, 0, sizeof(*out));
    if (s->info.resync) {
        out->type = LS_FRAME_RESYNC_BEGIN;
        ls_proto_resync_begin_t *r = &out->resync_begin;
        put_head(&s->info, r->dbid, &r->total_bytes, &r->last_lsn, &r->generation, r->prev_digest,
                 &r->epoch);
        r->txid = s->info.txid;
        r->split_generation = s->info.split_generation;
        r->keys = s->info.keys;
        r->store_bytes = s->info.store_bytes;
        return;
    }
    out->type = LS_FRAME_SEED_BEGIN;
    ls_proto_seed_begin_t *b = &out->seed_begin;
    put_head(&s->info, b->dbid, &b->total_bytes, &b->last_lsn, &b->generation, b->prev_digest,
             &b->epoch);
}

/* A SEED_DATA from the head chunk, within credit; false when there is none to send. */
static bool data_frame(ls_seed_server_t *s, ls_frame_t *out)
{
    chunk_t *c = s->head;
    int db;
    uint64_t len;
    if (!c || ls_credit_tx_next(s->credit, s->o.chunk_max, &db, &len)) return false;
    len = LS_MIN(len, c->len - c->sent);
    memset(out, 0, sizeof(*out));
    out->type = LS_FRAME_SEED_DATA;
    out->seed_data.offset = c->offset + c->sent;
    out->seed_data.data = c->data + c->sent;
    out->seed_data.len = (uint32_t) len;
    s->pending_len = len;
    s->pending_db = db;
    return true;
}

bool ls_seed_server_next(ls_seed_server_t *s, ls_frame_t *out)
{
    s->pending = 0;
    if (s->error_pending) {
        memset(out, 0, sizeof(*out));
        out->type = LS_FRAME_ERROR;
        memcpy(out->error.dbid, s->dbid, LS_DBID_LEN);
        out->error.code = s->code;
        out->error.message = ls_proto_str(s->msg);
    } else if (s->chain_ready) {
        chain_frame(s, out);
    } else if (s->state != LS_SEED_SRV_STREAMING) {
        return false;
    } else if (!s->begin_sent) {
        begin_frame(s, out);
    } else if (data_frame(s, out)) {
        /* out is a SEED_DATA */
    } else if (!s->head && s->end_ready) {
        memset(out, 0, sizeof(*out));
        out->type = LS_FRAME_SEED_END;
        memcpy(out->seed_end.digest, s->digest, LS_DIGEST_SIZE);
    } else {
        return false;
    }
    s->pending = out->type;
    return true;
}

void ls_seed_server_sent(ls_seed_server_t *s)
{
    uint8_t t = s->pending;
    s->pending = 0;
    if (t == LS_FRAME_ERROR) {
        s->error_pending = false;
    } else if (t == LS_FRAME_CHAIN) {
        s->chain_ready = false;
    } else if (t == LS_FRAME_SEED_BEGIN || t == LS_FRAME_RESYNC_BEGIN) {
        s->begin_sent = true;
    } else if (t == LS_FRAME_SEED_END) {
        s->state = LS_SEED_SRV_ENDED;
    } else if (t == LS_FRAME_SEED_DATA) {
        chunk_t *c = s->head;
        LS_CHECK(ls_credit_tx_sent(s->credit, s->pending_db, s->pending_len) == 0);
        c->sent += s->pending_len;
        s->sent += s->pending_len;
        if (c->sent < c->len) return;
        s->head = c->next;
        if (!s->head) s->tail = NULL;
        s->nchunks--;
        release(s, c->data);
        free(c);
    }
}

ls_seed_server_state_t ls_seed_server_state(const ls_seed_server_t *s)
{
    return s->state;
}

const ls_seed_info_t *ls_seed_server_info(const ls_seed_server_t *s)
{
    return s->have_info ? &s->info : NULL;
}

uint64_t ls_seed_server_bytes_sent(const ls_seed_server_t *s)
{
    return s->sent;
}

unsigned ls_seed_server_queued(const ls_seed_server_t *s)
{
    return s->nchunks;
}

const char *ls_seed_server_error(const ls_seed_server_t *s, int *code)
{
    if (code) *code = s->code;
    return s->msg;
}

void ls_seed_server_free(ls_seed_server_t *s)
{
    if (!s) return;
    while (s->head) {
        chunk_t *c = s->head;
        s->head = c->next;
        release(s, c->data);
        free(c);
    }
    ls_credit_tx_free(s->credit);
    free(s->links);
    free(s->keys);
    free(s);
}
