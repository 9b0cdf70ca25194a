/* Helpers shared by the seed session tests (seed_session_test.c, seed_session_credit_test.c):
 * a scripted wire carrying the server's frames through the codec to the client session, whose
 * actions are carried out as the daemon's receiver thread would, in one thread; an active with
 * closed generations. Static: each test program includes this once. */
#ifndef LS_SEED_SESSION_TEST_UTIL_H
#define LS_SEED_SESSION_TEST_UTIL_H

#include <criterion/criterion.h>

#include "copy/copy.h"
#include "seed/session.h"
#include "seed_test_util.h"

#define WIN (64u * 1024u) /* the client's window: two 32 KiB chunks */

/* helpers a test program may leave unused */
#ifndef UTIL
#define UTIL static __attribute__((unused))
#endif

/* ---- a scripted wire and the passive's receiver, in one thread ----------------------------- */

typedef struct {
    const env_t *e;
    ls_seed_server_t *srv;
    ls_seed_client_t *cli;
    ls_seed_worker_t *w;
    ls_seed_install_t *in;
    ls_copy_t *copy;   /* the copy's open ls_copy_t (the receiver thread's) */
    bool replace;      /* delete_existing */
    long long corrupt; /* flip this stream byte in transit (-1: none) */
    bool closed;       /* the client closed the connection */
    bool swapped;
    bool fail_open; /* the copy cannot be opened after the swap */
    int frames;     /* frames the server sent */
    uint64_t done;  /* bytes installed */
    char err[1024];
} wire_t;

UTIL void notify(void *ctx)
{
    (void) ctx;
}

UTIL void release(void *ctx, void *data)
{
    wire_t *t = ctx;
    ls_seed_worker_release(t->w, data);
}

UTIL int open_copy(void *ctx, ls_copy_t **out, char *err, size_t errlen)
{
    const wire_t *t = ctx;
    if (t->fail_open) {
        snprintf(err, errlen, "%s: map size too small (test)", t->e->copy);
        return LS_ESTORE;
    }
    ls_copy_options_t o = {.dir = t->e->copy};
    int rc = ls_copy_open(&o, out, err, errlen);
    if (rc) *out = NULL;
    return rc;
}

/* Through the codec, as the transport would carry it; srv: the server's frame, marked sent once
 * it is on the wire (before the client sees it, as with a socket). */
UTIL void carry_from(const ls_frame_t *f, void (*deliver)(wire_t *, const ls_frame_t *), wire_t *t,
                     ls_seed_server_t *srv)
{
    static uint8_t buf[LS_FRAME_HEADER_SIZE + 2 * 1024 * 1024];
    static ls_frame_t g;
    char err[256];
    ssize_t n = ls_frame_encode(f, buf, sizeof(buf));
    cr_assert_gt(n, 0, "%s encodes", ls_frame_type_name(f->type));
    if (srv) ls_seed_server_sent(srv);
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), 0, "%s", err);
    if (g.type == LS_FRAME_SEED_DATA && t->corrupt >= 0 &&
        (uint64_t) t->corrupt >= g.seed_data.offset &&
        (uint64_t) t->corrupt < g.seed_data.offset + g.seed_data.len)
        ((uint8_t *) g.seed_data.data)[t->corrupt - (long long) g.seed_data.offset] ^= 0x01;
    deliver(t, &g);
}

UTIL void carry(const ls_frame_t *f, void (*deliver)(wire_t *, const ls_frame_t *), wire_t *t)
{
    carry_from(f, deliver, t, NULL);
}

/* The receiver thread's part of an action. */
UTIL void receive(wire_t *t, const ls_seed_act_t *a)
{
    int rc = 0;
    if (a->kind == LS_SEED_ACT_INSTALL_BEGIN) {
        ls_seed_install_options_t o = {.copy_dir = t->e->copy, .delete_existing = t->replace};
        rc = ls_seed_install_begin(&o, a->info, &t->in, t->err, sizeof(t->err));
    } else if (a->kind == LS_SEED_ACT_INSTALL_DATA && t->in) {
        rc = ls_seed_install_data(t->in, a->offset, a->data, a->len, t->err, sizeof(t->err));
        if (rc == 0) t->done = ls_seed_install_done(t->in);
    } else if (a->kind == LS_SEED_ACT_INSTALL_END && t->in) {
        rc = ls_seed_install_end(t->in, a->digest, t->err, sizeof(t->err));
        if (rc == 0) ls_seed_client_verified(t->cli);
    } else if (a->kind == LS_SEED_ACT_SWAP) {
        rc = ls_seed_copy_swap(&t->copy, &t->in, t->e->copy, open_copy, t, &t->swapped, t->err,
                               sizeof(t->err));
        ls_seed_client_swapped(t->cli, t->swapped && t->copy, t->err); /* in place and open */
        return;
    } else if (a->kind == LS_SEED_ACT_ABORT) {
        ls_seed_install_free(t->in);
        t->in = NULL;
        return;
    }
    if (rc) {
        ls_seed_install_free(t->in);
        t->in = NULL;
        ls_seed_client_failed(t->cli, rc, t->err);
    } else if (a->kind == LS_SEED_ACT_INSTALL_DATA) {
        ls_seed_client_consumed(t->cli, a->len, t->done, ls_mono_ns());
    }
}

UTIL void to_server(wire_t *t, const ls_frame_t *f)
{
    char err[256];
    ls_seed_server_frame(t->srv, f, err, sizeof(err));
}

/* Carries out every action the client queued (and those they queue in turn). */
UTIL void drain(wire_t *t)
{
    ls_seed_act_t a;
    while (ls_seed_client_action(t->cli, &a)) {
        if (a.kind == LS_SEED_ACT_SEND)
            carry(&a.frame, to_server, t);
        else if (a.kind == LS_SEED_ACT_CLOSE)
            t->closed = true;
        else
            receive(t, &a);
    }
}

UTIL void to_client(wire_t *t, const ls_frame_t *f)
{
    ls_seed_client_frame(t->cli, f, ls_mono_ns());
    drain(t);
}

/* Moves worker events into the server and the server's frames to the client, until nothing
 * moves (or the client closed). */
UTIL void pump(wire_t *t)
{
    for (int idle = 0; idle < 2000 && !t->closed;) {
        ls_seed_wev_t ev;
        bool moved = false;
        while (t->w && ls_seed_worker_poll(t->w, &ev)) {
            ls_seed_server_feed(t->srv, &ev);
            moved = true;
        }
        ls_frame_t f;
        while (!t->closed && ls_seed_server_next(t->srv, &f)) {
            carry_from(&f, to_client, t, t->srv);
            t->frames++;
            moved = true;
        }
        ls_seed_server_state_t st = ls_seed_server_state(t->srv);
        if (st == LS_SEED_SRV_FAILED && !moved) break;
        idle = moved ? 0 : idle + 1;
        if (!moved) usleep(2000);
    }
}

/* wire_init's client plays a node without LS_FEAT_SEEDXXH (its option sha256): the stream's
 * check is SHA-256 on both sides; else XXH3-128, the default. */
UTIL bool wire_sha256;

UTIL void welcome(wire_t *t, bool accept)
{
    static ls_frame_t h, w;
    uint8_t zero[LS_DBID_LEN] = {0};
    ls_seed_client_hello(t->cli, "node-b", "db1", zero, &h);
    cr_assert_eq(h.hello.purpose, LS_PURPOSE_SEED);
    cr_assert_eq((h.hello.features & LS_FEAT_SEEDXXH) != 0, !wire_sha256,
                 "XXH3-128 offered unless playing an older node");
    cr_assert_eq(h.hello.db_window, WIN);
    memset(&w, 0, sizeof(w));
    w.type = LS_FRAME_WELCOME;
    w.welcome.version = LS_PROTO_VERSION_MAX;
    w.welcome.features = h.hello.features;
    w.welcome.node = ls_proto_str("node-a");
    w.welcome.db_count = 1;
    w.welcome.dbs[0].status = accept ? LS_DB_ACCEPTED : LS_DB_REFUSED;
    w.welcome.dbs[0].code = accept ? 0 : LS_EBUSY;
    w.welcome.dbs[0].reason = ls_proto_str(accept ? "" : "a seed of db1 is already under way");
    carry(&w, to_client, t);
}

UTIL void wire_init(wire_t *t, const env_t *e, bool worker)
{
    memset(t, 0, sizeof(*t));
    t->e = e;
    t->corrupt = -1;
    t->replace = true;
    ls_seed_server_options_t so = {.db_window = WIN,
                                   .conn_window = WIN,
                                   .chunk_max = 32 * 1024,
                                   .release = worker ? release : NULL,
                                   .release_ctx = t};
    uint8_t id[LS_DBID_LEN] = {1};
    cr_assert_eq(ls_seed_server_new(&so, id, &t->srv), 0);
    ls_seed_client_options_t co = {
        .source = "node-a", .features = LS_FEAT_CKSUM, .window = WIN, .sha256 = wire_sha256};
    cr_assert_eq(ls_seed_client_new(&co, &t->cli), 0);
    if (!worker) return;
    /* the server's side of the negotiation: welcome() accepts what the client offered */
    ls_seed_worker_options_t wo = {
        .db_dir = e->db, .chunk = 48 * 1024, .notify = notify, .xxh = !wire_sha256};
    cr_assert_eq(ls_seed_worker_start(&wo, &t->w), 0);
}

UTIL void wire_free(wire_t *t)
{
    ls_seed_server_free(t->srv);
    ls_seed_worker_free(t->w);
    ls_seed_client_free(t->cli);
    ls_seed_install_free(t->in);
    ls_copy_close(t->copy);
}

/* An active with closed generations and an open one holding records before the snapshot. */
UTIL ls_db_t *active(const env_t *e, int n)
{
    ls_db_options_t o = db_opts(32 * 1024);
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(e->db, &o, &db), 0, "%s", ls_db_open_error());
    cr_assert_eq(commit_range(db, 0, n, 3, 600), 0);
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(commit_range(db, n, n + 3, 2, 100), 0, "the open generation's first part");
    cr_assert_eq(ls_db_checkpoint(db), 0);
    return db;
}

#endif
