/*
 * Helpers shared by passive_test.c and passive_flow_test.c: a passive machine (engine/passive)
 * over a real copy in a temp dir, with its real receiver (engine/copy/receiver.h), a scripted
 * source that records every frame the machine sends (taken in order by the test), an action
 * recorder, a fake clock, and a connection's rx credit ledger with small windows.
 * Static functions: each test program includes this once.
 */
#ifndef LS_PASSIVE_TEST_UTIL_H
#define LS_PASSIVE_TEST_UTIL_H

#include "copy/receiver.h"
#include "copy_test_util.h"
#include "passive/passive.h"

#define PT_FRAMES 512
#define PT_ACTS   256
#define PT_DBW    4096 /* per-database credit window of the tests, bytes */
#define PT_CONNW  16384
#define PT_T0     1800000000000000000ull /* the fake clock's start, UTC ns */
#define PT_SEC    1000000000ull

/* A frame the machine sent, as the source would read it. */
typedef struct {
    uint8_t type;
    uint64_t generation; /* RESUME: next_generation; acks, ASK_AGAIN: generation */
    uint64_t lsn;        /* REPLAYED*, RESUME: last LSN */
    int code;            /* ERROR, ASK_AGAIN */
    uint32_t flags;      /* COPY_STATE */
    uint64_t bytes;      /* CREDIT; BLOCK_ACK: offset */
    bool conn_wide;      /* CREDIT: the connection's (all-zero id) */
    char text[256];      /* ERROR, ASK_AGAIN message; COPY_STATE comment */
} pt_frame_t;

typedef struct {
    char *dir;
    ls_copy_t *copy;
    ls_copy_rx_t *rx;
    ls_passive_t *m;
    ls_credit_rx_t *credit;
    int idx;
    uint8_t dbid[LS_DBID_LEN];
    uint64_t now; /* the fake clock */
    /* the scripted source */
    pt_frame_t frames[PT_FRAMES];
    int nframes, taken;
    /* actions */
    ls_passive_state_t states[PT_ACTS]; /* every STATE action's new state, in order */
    int nstates;
    int saves_op, saves_counters, logs;
    ls_status_op_t saved_op;
    ls_status_counters_t saved_counters;
    int save_rc; /* what SAVE_OP answers */
    bool held;   /* what held_cb answers */
} pt_t;

UTIL int pt_send(void *ctx, const ls_frame_t *f)
{
    pt_t *t = ctx;
    cr_assert_lt(t->nframes, PT_FRAMES);
    pt_frame_t *r = &t->frames[t->nframes++];
    memset(r, 0, sizeof(*r));
    r->type = f->type;
    switch (f->type) {
    case LS_FRAME_RESUME:
        r->generation = f->resume.next_generation;
        r->lsn = f->resume.last_lsn;
        break;
    case LS_FRAME_DURABLE:
    case LS_FRAME_INSPECTED:
        r->generation = f->durable.generation;
        break;
    case LS_FRAME_REPLAYED:
    case LS_FRAME_REPLAYED_SYNCED:
        r->generation = f->replayed.generation;
        r->lsn = f->replayed.lsn;
        break;
    case LS_FRAME_ASK_AGAIN:
        r->generation = f->ask_again.generation;
        r->code = f->ask_again.code;
        snprintf(r->text, sizeof(r->text), "%.*s", (int) f->ask_again.message.len,
                 f->ask_again.message.ptr);
        break;
    case LS_FRAME_ERROR:
        r->code = f->error.code;
        snprintf(r->text, sizeof(r->text), "%.*s", (int) f->error.message.len,
                 f->error.message.ptr);
        break;
    case LS_FRAME_COPY_STATE:
        r->flags = f->copy_state.flags;
        snprintf(r->text, sizeof(r->text), "%.*s", (int) f->copy_state.comment.len,
                 f->copy_state.comment.ptr);
        break;
    case LS_FRAME_BLOCK_ACK:
        r->generation = f->block_ack.generation;
        r->lsn = f->block_ack.durable_lsn;
        r->bytes = f->block_ack.offset;
        break;
    case LS_FRAME_CREDIT: {
        static const uint8_t zero[LS_DBID_LEN];
        r->bytes = f->credit.bytes;
        r->conn_wide = !memcmp(f->credit.dbid, zero, LS_DBID_LEN);
        break;
    }
    }
    return 0;
}

UTIL int pt_act(void *ctx, const ls_passive_action_t *a)
{
    pt_t *t = ctx;
    switch (a->kind) {
    case LS_PASSIVE_ACT_STATE:
        cr_assert_neq(a->state, a->prev, "a STATE action is a change");
        cr_assert_lt(t->nstates, PT_ACTS);
        t->states[t->nstates++] = a->state;
        break;
    case LS_PASSIVE_ACT_SAVE_OP:
        t->saves_op++;
        if (!t->save_rc) t->saved_op = *a->op;
        return t->save_rc;
    case LS_PASSIVE_ACT_SAVE_COUNTERS:
        t->saves_counters++;
        t->saved_counters = *a->counters;
        break;
    case LS_PASSIVE_ACT_LOG:
        t->logs++;
        break;
    }
    return 0;
}

UTIL bool pt_held(void *ctx)
{
    return ((pt_t *) ctx)->held;
}

/* The receiver's inline_sync_ns for the next pt_setup (0: every item on its thread). */
static uint64_t pt_inline_sync_ns;

/* A machine over a fresh copy (its replayer started when replay), its receiver running. */
UTIL void pt_setup_op(pt_t *t, bool replay, const ls_status_op_t *op)
{
    memset(t, 0, sizeof(*t));
    t->now = PT_T0;
    t->dir = ls_h_tmpdir("passive");
    ls_copy_rx_options_t ro = {.name = "db1", .inline_sync_ns = pt_inline_sync_ns};
    t->rx = ls_copy_rx_new(&ro);
    ls_copy_options_t o = {.dir = t->dir, .event_cb = ls_copy_rx_event_cb, .event_ctx = t->rx};
    t->copy = copy_open_opts(&o);
    if (replay) cr_assert_eq(ls_copy_start(t->copy), 0);
    cr_assert_eq(ls_copy_rx_start(t->rx, t->copy), 0);
    ls_passive_options_t mo = {.database = "db1",
                               .source = "node-a",
                               .send_cb = pt_send,
                               .action_cb = pt_act,
                               .held_cb = pt_held,
                               .ctx = t,
                               .rx = t->rx};
    if (op) mo.op = *op;
    t->m = ls_passive_new(&mo, t->now);
    cr_assert_not_null(t->m);
    cr_assert_eq(ls_passive_state(t->m), LS_PASSIVE_INITIALIZING);
    t->credit = ls_credit_rx_new(PT_DBW, PT_CONNW);
    t->idx = ls_credit_rx_db_add(t->credit);
    memset(t->dbid, 0x11, sizeof(t->dbid));
}

UTIL void pt_setup(pt_t *t)
{
    pt_setup_op(t, false, NULL);
    ls_passive_start(t->m, t->copy, NULL, t->now);
    cr_assert_eq(ls_passive_state(t->m), LS_PASSIVE_DISCONNECTED);
}

UTIL void pt_teardown(pt_t *t)
{
    ls_passive_free(t->m);
    ls_copy_rx_free(t->rx); /* closes the copy its thread held */
    ls_credit_rx_free(t->credit);
    ls_h_rmtree_free(t->dir);
}

UTIL void pt_connect_tag(pt_t *t, uint64_t tag)
{
    ls_passive_connected(t->m, t->credit, t->idx, t->dbid, tag, t->now);
}

UTIL void pt_connect(pt_t *t)
{
    pt_connect_tag(t, 1);
}

/* The next frame the machine sent, of type (asserting it is that one). */
UTIL pt_frame_t *pt_take(pt_t *t, uint8_t type)
{
    cr_assert_lt(t->taken, t->nframes, "a %s frame was sent (only %d frames)",
                 ls_frame_type_name(type), t->nframes);
    pt_frame_t *r = &t->frames[t->taken++];
    cr_assert_eq(r->type, type, "frame %d: %s, want %s", t->taken, ls_frame_type_name(r->type),
                 ls_frame_type_name(type));
    return r;
}

/* The next frame of type, skipping CREDIT frames; NULL when none. */
UTIL pt_frame_t *pt_next(pt_t *t, uint8_t type)
{
    while (t->taken < t->nframes) {
        pt_frame_t *r = &t->frames[t->taken++];
        if (r->type == type) return r;
        if (r->type != LS_FRAME_CREDIT) return NULL;
    }
    return NULL;
}

UTIL void pt_none(pt_t *t)
{
    cr_assert_eq(t->taken, t->nframes, "no more frames (%d sent, next %s)", t->nframes,
                 t->taken < t->nframes ? ls_frame_type_name(t->frames[t->taken].type) : "-");
}

UTIL void pt_skip(pt_t *t)
{
    t->taken = t->nframes;
}

UTIL int pt_count(pt_t *t, uint8_t type)
{
    int n = 0;
    for (int i = 0; i < t->nframes; i++)
        n += t->frames[i].type == type;
    return n;
}

/* A copy event as the receiver would queue it. */
UTIL void pt_event(pt_t *t, int kind, uint64_t gen, int code, const char *msg)
{
    ls_copy_rx_event_t e = {.kind = kind, .generation = gen, .code = code};
    snprintf(e.message, sizeof(e.message), "%s", msg ? msg : "");
    ls_passive_on_event(t->m, &e, t->now);
}

/* The source's frames of generation g through the machine, in chunks of chunk bytes: GEN_BEGIN
 * (type LS_FRAME_GEN_BEGIN, start 0) or GEN_TAIL from start (LS_FRAME_GEN_TAIL), the GEN_DATA
 * from start on, and GEN_END with digest (NULL: the generation's own). */
UTIL void pt_ship_from(pt_t *t, const chain_t *ch, int g, ls_frame_type_t type, size_t start,
                       size_t chunk, const uint8_t *digest)
{
    ls_frame_t f = {.type = type};
    memcpy(f.gen_begin.dbid, t->dbid, LS_DBID_LEN);
    f.gen_begin.epoch = 1;
    f.gen_begin.generation = (uint64_t) g;
    f.gen_begin.size = ch->len[g];
    f.gen_begin.close_ns = LS_H_GEN_CLOSE_NS;
    f.gen_begin.start = start;
    cr_assert_eq(ls_passive_on_frame(t->m, &f, t->now), 0);
    for (size_t off = start; off < ch->len[g]; off += chunk) {
        memset(&f, 0, sizeof(f));
        f.type = LS_FRAME_GEN_DATA;
        memcpy(f.gen_data.dbid, t->dbid, LS_DBID_LEN);
        f.gen_data.generation = (uint64_t) g;
        f.gen_data.offset = off;
        f.gen_data.len = (uint32_t) LS_MIN(chunk, ch->len[g] - off);
        f.gen_data.data = ch->buf[g] + off;
        cr_assert_eq(ls_passive_on_frame(t->m, &f, t->now), 0);
    }
    memset(&f, 0, sizeof(f));
    f.type = LS_FRAME_GEN_END;
    memcpy(f.gen_end.dbid, t->dbid, LS_DBID_LEN);
    f.gen_end.generation = (uint64_t) g;
    memcpy(f.gen_end.digest, digest ? digest : ch->digest[g], LS_DIGEST_SIZE);
    cr_assert_eq(ls_passive_on_frame(t->m, &f, t->now), 0);
}

/* The source's frames of a whole generation, through the machine, in chunks of chunk bytes. */
UTIL void pt_ship(pt_t *t, const chain_t *ch, int g, size_t chunk, const uint8_t *digest)
{
    pt_ship_from(t, ch, g, LS_FRAME_GEN_BEGIN, 0, chunk, digest);
}

typedef struct {
    pt_t *t;
    uint8_t type;
    uint64_t gen;
} pt_want_t;

UTIL bool pt_sent(void *ctx)
{
    pt_want_t *w = ctx;
    ls_passive_poll(w->t->m, w->t->now);
    for (int i = w->t->taken; i < w->t->nframes; i++)
        if (w->t->frames[i].type == w->type && w->t->frames[i].generation >= w->gen) return true;
    return false;
}

/* Polls the receiver's events (the daemon's uv_async) until a frame of type for gen (or later)
 * was sent. */
UTIL void pt_wait(pt_t *t, uint8_t type, uint64_t gen)
{
    pt_want_t w = {t, type, gen};
    cr_assert(ls_h_wait_for(pt_sent, &w, 10000), "%s(%llu) sent", ls_frame_type_name(type),
              (unsigned long long) gen);
}

UTIL ls_passive_state_t pt_state(pt_t *t)
{
    return ls_passive_state(t->m);
}

#endif
