/* The world of the ship tests (ship_test.c, ship_flow_test.c): the shipping state machine driven
 * by a scripted target and a fake clock, no sockets. The database is a real log directory built
 * with genbuild in a temporary directory, read through engine/source (its plan and pipelined
 * reader); the target is a script of expected frames and replies: every frame the machine sends
 * is queued, and the test takes them in order (expect) and answers (reply, resume_at, ack ...).
 * One world per test process (Criterion runs each test in its own). */
#ifndef LS_TEST_SHIP_UTIL_H
#define LS_TEST_SHIP_UTIL_H

#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "genbuild.h"
#include "harness.h"
#include "ship/ship.h"

#define MAXG  16
#define MAXF  256
#define T0    1796000000000000000ull /* the fake clock's start, UTC ns */
#define SEC   1000000000ull
#define CHUNK 1000 /* chunk size the tests ask for: generations take several */

/* helpers a test program may leave unused */
#define UTIL static __attribute__((unused))

/* A frame the machine sent, copied. */
typedef struct {
    uint8_t type;
    uint64_t gen, off, len, size;
    uint32_t epoch; /* BLOCK */
    uint64_t lsn;   /* BLOCK: durable_lsn */
    int32_t code;
    uint32_t flags;
    uint64_t last_generated, queue_count;
    char text[LS_PROTO_MSG_MAX + 1]; /* ERROR message, COPY_STATE comment */
    uint8_t *data;                   /* GEN_DATA bytes */
} sent_t;

typedef struct {
    char *dir;  /* database directory */
    uint64_t n; /* generations 1..n on disk */
    uint8_t digest[MAXG + 1][LS_DIGEST_SIZE];
    uint8_t *bytes[MAXG + 1]; /* each generation's file */
    size_t size[MAXG + 1];
    uint64_t next_lsn;
    ls_source_t *src;
    ls_ship_t *m;
    uint64_t now;   /* the fake clock */
    sent_t q[MAXF]; /* frames sent, in order */
    int head, tail;
    int busy;    /* the next `busy` sends answer LS_EBUSY */
    int save_rc; /* what SAVE_OP answers */
    int saves, counter_saves, reader_starts, reader_stops, released;
    ls_ship_op_t saved;            /* the last operator state saved */
    ls_status_counters_t counters; /* the last counters saved */
    ls_ship_state_t states[64];    /* every state entered */
    int nstates;
    int fences;            /* STATE actions with fence set */
    uint32_t fence_epoch;  /* ... the last one's epoch */
    char fence_active[80]; /* ... and new active */
    char fence_reason[LS_SHIP_REASON_MAX];
    volatile int notified; /* the reader's notify_cb ran */
    int modes;             /* MODE actions */
    ls_ship_mode_t mode;   /* ... the last one's mode */
    char mode_reason[256]; /* ... and reason */
    uint8_t *open_log;     /* block mode: the open generation's bytes (block_read) */
    size_t open_len;       /* ... its size */
    uint32_t open_epoch;   /* ... its header's epoch */
    uint64_t open_gen;     /* ... and generation */
    int reads;             /* block_read calls */
} world_t;

static world_t W; /* the test process's world */

UTIL int on_send(void *ctx, const ls_frame_t *f)
{
    world_t *w = ctx;
    if (w->busy > 0) {
        w->busy--;
        return LS_EBUSY;
    }
    cr_assert_lt(w->tail, MAXF);
    sent_t *s = &w->q[w->tail++];
    memset(s, 0, sizeof(*s));
    s->type = f->type;
    switch (f->type) {
    case LS_FRAME_GEN_BEGIN:
    case LS_FRAME_GEN_TAIL:
        s->gen = f->gen_begin.generation;
        s->size = f->gen_begin.size;
        s->off = f->gen_begin.start;
        break;
    case LS_FRAME_GEN_DATA:
        s->gen = f->gen_data.generation;
        s->off = f->gen_data.offset;
        s->len = f->gen_data.len;
        s->data = malloc(s->len);
        memcpy(s->data, f->gen_data.data, s->len);
        break;
    case LS_FRAME_BLOCK:
        s->epoch = f->block.epoch;
        s->gen = f->block.generation;
        s->off = f->block.offset;
        s->len = f->block.len;
        s->lsn = f->block.durable_lsn;
        s->data = malloc(s->len);
        memcpy(s->data, f->block.data, s->len);
        break;
    case LS_FRAME_GEN_END:
        s->gen = f->gen_end.generation;
        cr_assert_eq(memcmp(f->gen_end.digest, w->digest[s->gen], LS_DIGEST_SIZE), 0);
        break;
    case LS_FRAME_ERROR:
        s->code = f->error.code;
        snprintf(s->text, sizeof(s->text), "%.*s", (int) f->error.message.len,
                 f->error.message.ptr);
        break;
    case LS_FRAME_COPY_STATE:
        s->flags = f->copy_state.flags;
        s->last_generated = f->copy_state.last_generated;
        s->queue_count = f->copy_state.queue_count;
        snprintf(s->text, sizeof(s->text), "%.*s", (int) f->copy_state.comment.len,
                 f->copy_state.comment.ptr);
        break;
    default:
        cr_assert_fail("the machine sent %s", ls_frame_type_name(f->type));
    }
    return 0;
}

UTIL int on_action(void *ctx, const ls_ship_action_t *a)
{
    world_t *w = ctx;
    switch (a->kind) {
    case LS_SHIP_ACT_STATE:
        cr_assert_neq(a->state, a->prev);
        cr_assert_lt(w->nstates, 64);
        w->states[w->nstates++] = a->state;
        cr_assert(!a->fence || a->state == LS_SHIP_DEMOTED, "fence only into DEMOTED");
        if (a->fence) {
            w->fences++;
            w->fence_epoch = a->epoch;
            snprintf(w->fence_active, sizeof(w->fence_active), "%s", a->active);
            snprintf(w->fence_reason, sizeof(w->fence_reason), "%s", a->reason);
        }
        break;
    case LS_SHIP_ACT_SAVE_OP:
        w->saves++;
        if (w->save_rc) return w->save_rc;
        w->saved = *a->op;
        break;
    case LS_SHIP_ACT_SAVE_COUNTERS:
        w->counter_saves++;
        w->counters = *a->counters;
        cr_assert(a->reason && strstr(a->reason, "asks again"));
        break;
    case LS_SHIP_ACT_READER_START:
        w->reader_starts++;
        break;
    case LS_SHIP_ACT_READER_STOP:
        w->reader_stops++;
        break;
    case LS_SHIP_ACT_SEED_RELEASED:
        w->released++;
        break;
    case LS_SHIP_ACT_MODE:
        w->modes++;
        w->mode = a->mode;
        snprintf(w->mode_reason, sizeof(w->mode_reason), "%s", a->reason);
        break;
    }
    return 0;
}

UTIL void on_notify(void *ctx)
{
    ((world_t *) ctx)->notified = 1;
}

/* Writes generation n+1 (puts records of vsize bytes) into logs/. */
UTIL void add_gen(world_t *w, int puts, size_t vsize)
{
    uint64_t g = ++w->n;
    cr_assert_leq(g, MAXG);
    ls_h_gen_spec_t spec;
    ls_h_gen_spec_default(&spec, g, w->next_lsn);
    spec.prev_digest = g > 1 ? w->digest[g - 1] : NULL;
    ls_h_gen_t *b = ls_h_gen_new(&spec);
    char val[4096];
    cr_assert_leq(vsize, sizeof(val));
    for (int i = 0; i < puts; i++) {
        char key[32];
        memset(val, 'a' + (int) ((g + (uint64_t) i) % 26), vsize);
        int kl = snprintf(key, sizeof(key), "g%llu/%d", (unsigned long long) g, i);
        ls_h_gen_put(b, key, (size_t) kl, val, vsize);
    }
    ls_h_gen_commit(b);
    ls_h_gen_close(b);
    w->bytes[g] = ls_h_gen_copy(b, &w->size[g]);
    memcpy(w->digest[g], ls_h_gen_digest(b), LS_DIGEST_SIZE);
    w->next_lsn += (uint64_t) puts + 1;
    ls_h_gen_free(b);
    char name[LS_GEN_NAME_MAX], path[PATH_MAX];
    cr_assert_eq(ls_gen_name(name, sizeof(name), "E00", 1, g), 0);
    snprintf(path, sizeof(path), "%s/logs/%s", w->dir, name);
    cr_assert_eq(ls_h_write_file(path, w->bytes[g], w->size[g]), 0);
}

UTIL void gen_file(world_t *w, uint64_t g, char *path, size_t len)
{
    char name[LS_GEN_NAME_MAX];
    cr_assert_eq(ls_gen_name(name, sizeof(name), "E00", 1, g), 0);
    snprintf(path, len, "%s/logs/%s", w->dir, name);
}

UTIL void rescan(world_t *w)
{
    char err[LS_SOURCE_ERRLEN] = "";
    cr_assert_eq(ls_source_rescan(w->src, err, sizeof(err)), 0, "%s", err);
}

UTIL ls_ship_options_t options(void)
{
    return (ls_ship_options_t){.database = "db1",
                               .target = "tgt",
                               .send_cb = on_send,
                               .action_cb = on_action,
                               .ctx = &W,
                               .notify_cb = on_notify,
                               .notify_ctx = &W};
}

/* A database of `gens` generations and a machine attached to it, not connected. */
UTIL void setup_world(int gens, const ls_ship_options_t *o)
{
    memset(&W, 0, sizeof(W));
    W.dir = ls_h_tmpdir("ship");
    cr_assert(W.dir);
    char logs[PATH_MAX];
    snprintf(logs, sizeof(logs), "%s/logs", W.dir);
    cr_assert_eq(mkdir(logs, 0700), 0);
    W.next_lsn = 1;
    for (int i = 0; i < gens; i++)
        add_gen(&W, 3 + i, 700); /* 2.1 KiB and more: several chunks each */
    ls_source_options_t so = {.db_dir = W.dir};
    char err[LS_SOURCE_ERRLEN] = "";
    cr_assert_eq(ls_source_open(&so, &W.src, err, sizeof(err)), 0, "%s", err);
    W.now = T0;
    ls_ship_options_t def = options();
    W.m = ls_ship_new(o ? o : &def, W.now);
    cr_assert(W.m);
}

UTIL void attach(void)
{
    uint8_t dbid[LS_DBID_LEN];
    for (int i = 0; i < LS_DBID_LEN; i++)
        dbid[i] = (uint8_t) i; /* genbuild's default */
    ls_ship_attach(W.m, W.src, dbid, W.now);
}

UTIL void teardown_world(void)
{
    ls_ship_free(W.m);
    ls_source_free(W.src);
    for (int i = 0; i < W.tail; i++)
        free(W.q[i].data);
    for (uint64_t g = 1; g <= W.n; g++)
        free(W.bytes[g]);
    ls_h_rmtree_free(W.dir);
}

UTIL void setup_attached(void)
{
    setup_world(3, NULL);
    attach();
}

/* ---- the scripted target ------------------------------------------------------------------ */
UTIL bool pending(void)
{
    return W.head < W.tail;
}

UTIL sent_t *expect(uint8_t type)
{
    cr_assert(pending(), "expected %s, nothing was sent", ls_frame_type_name(type));
    sent_t *s = &W.q[W.head++];
    cr_assert_eq(s->type, type, "expected %s, got %s", ls_frame_type_name(type),
                 ls_frame_type_name(s->type));
    return s;
}

UTIL void expect_nothing(void)
{
    cr_assert(!pending(), "unexpected %s", ls_frame_type_name(W.q[W.head].type));
}

/* Pumps until the machine sent something (the reader is a thread): a deadline, not a sleep. */
UTIL void pump_until_sent(void)
{
    for (int i = 0; i < 5000 && !pending(); i++) {
        ls_ship_pump(W.m, W.now);
        if (!pending()) nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    cr_assert(pending(), "the machine sent nothing within 5 s");
}

UTIL void connect_accepted(uint32_t window)
{
    ls_proto_db_result_t r = {.status = LS_DB_ACCEPTED};
    ls_ship_connected(W.m, &r, window, W.now);
}

UTIL void reply(const ls_frame_t *f)
{
    /* dbids are left zero: routing by database is the link's business, not the machine's */
    ls_ship_on_frame(W.m, f, W.now);
}

UTIL void resume_at(uint64_t next, const uint8_t *digest)
{
    ls_frame_t f = {.type = LS_FRAME_RESUME};
    f.resume.epoch = next > 1 ? 1 : 0;
    f.resume.next_generation = next;
    if (digest) memcpy(f.resume.last_digest, digest, LS_DIGEST_SIZE);
    reply(&f);
}

UTIL void ack(uint8_t type, uint64_t gen)
{
    ls_frame_t f = {.type = type};
    f.durable.generation = gen; /* the same offset in every ack body */
    if (type == LS_FRAME_REPLAYED || type == LS_FRAME_REPLAYED_SYNCED) {
        f.replayed.generation = gen;
        f.replayed.lsn = gen * 10;
    }
    reply(&f);
}

UTIL void ask_again(uint64_t gen, int code)
{
    ls_frame_t f = {.type = LS_FRAME_ASK_AGAIN};
    f.ask_again.generation = gen;
    f.ask_again.code = code;
    f.ask_again.message = ls_proto_str("damaged");
    reply(&f);
}

UTIL void copy_state(bool suspended, const char *comment)
{
    ls_frame_t f = {.type = LS_FRAME_COPY_STATE};
    f.copy_state.flags = suspended ? LS_COPY_SUSPENDED : 0;
    f.copy_state.since_ns = suspended ? W.now : 0;
    f.copy_state.comment = ls_proto_str(comment);
    reply(&f);
}

/* Sends the data of generation g (its GEN_BEGIN already taken) up to `upto` bytes, checking
 * every chunk against the file. */
UTIL void take_data(uint64_t g, uint64_t from, uint64_t upto)
{
    uint64_t off = from;
    while (off < upto) {
        int64_t n = ls_ship_send_chunk(W.m, LS_MIN(CHUNK, upto - off), W.now);
        cr_assert_gt(n, 0, "no chunk at offset %llu of generation %llu", (unsigned long long) off,
                     (unsigned long long) g);
        sent_t *d = expect(LS_FRAME_GEN_DATA);
        cr_assert_eq(d->gen, g);
        cr_assert_eq(d->off, off);
        cr_assert_eq(d->len, (uint64_t) n);
        cr_assert_eq(memcmp(d->data, W.bytes[g] + off, d->len), 0);
        off += d->len;
    }
}

/* Takes generation g whole: GEN_BEGIN, its chunks, GEN_END. */
UTIL void take_gen(uint64_t g)
{
    pump_until_sent();
    sent_t *b = expect(LS_FRAME_GEN_BEGIN);
    cr_assert_eq(b->gen, g);
    cr_assert_eq(b->size, W.size[g]);
    take_data(g, 0, W.size[g]);
    pump_until_sent();
    cr_assert_eq(expect(LS_FRAME_GEN_END)->gen, g);
}

/* Connected, accepted, COPY_STATE taken, RESUME at next: Healthy. */
UTIL void ship_from(uint64_t next)
{
    connect_accepted(0);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_INITIALIZING);
    cr_assert_eq(expect(LS_FRAME_COPY_STATE)->last_generated, W.n);
    resume_at(next, next > 1 ? W.digest[next - 1] : NULL);
    cr_assert_eq(ls_ship_state(W.m), LS_SHIP_HEALTHY, "%s", ls_ship_reason(W.m));
}

UTIL ls_status_copy_t status(void)
{
    ls_status_copy_t c;
    memset(&c, 0, sizeof(c));
    ls_ship_status(W.m, W.now, &c);
    return c;
}

#endif
