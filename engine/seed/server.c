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
    s->state = LS_SEED_SRV_SNAPSHOT;
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

int ls_seed_server_frame(ls_seed_server_t *s, const ls_frame_t *f, char *err, size_t errlen)
{
    static const uint8_t zero[LS_DBID_LEN];
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

static void begin_frame(const ls_seed_server_t *s, ls_frame_t *out)
{
    memset(out, 0, sizeof(*out));
    out->type = LS_FRAME_SEED_BEGIN;
    ls_proto_seed_begin_t *b = &out->seed_begin;
    memcpy(b->dbid, s->info.dbid, LS_DBID_LEN);
    b->total_bytes = s->info.total_bytes;
    b->last_lsn = s->info.last_lsn;
    b->generation = s->info.generation;
    memcpy(b->prev_digest, s->info.prev_digest, LS_DIGEST_SIZE);
    b->epoch = s->info.epoch;
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
    } else if (t == LS_FRAME_SEED_BEGIN) {
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
    free(s);
}
