/* Helpers shared by the incremental resync tests (seed_resync_test.c, seed_resync_crash_test.c,
 * seed_resync_session_test.c): the two sides A and B built with the real writer, the wire that
 * carries both seed sessions' frames in one thread, and the comparison of their stores. Static:
 * each test program includes this once. */
#ifndef LS_SEED_RESYNC_TEST_UTIL_H
#define LS_SEED_RESYNC_TEST_UTIL_H

#include <criterion/criterion.h>

#include "role_test_util.h"
#include "seed/session.h"
#include "store/store.h"

#define WIN (64u * 1024u)

/* helpers a test program may leave unused */
#ifndef UTIL
#define UTIL static __attribute__((unused))
#endif

/* A (old active, "node-a") and B (new active, "node-b") under one scratch directory. */
typedef struct {
    char *base;
    char a[PATHLEN], b[PATHLEN];
} sides_t;

UTIL ls_db_t *open_quiet(const char *dir)
{
    return open_db(dir);
}

UTIL int del1(ls_db_t *db, const char *key)
{
    ls_txn_t *t;
    cr_assert_eq(ls_txn_begin(db, &t), 0);
    cr_assert_eq(ls_txn_del(t, key, strlen(key)), 0);
    return ls_txn_commit(t);
}

/* Generations 1..3 on A shipped to B, B activated (epoch 2 at generation 4); then B writes its
 * epoch (generations 4 and 5, closed by the close) and A, cut off, writes generations 4 and 5 of
 * epoch 1. The keys each side touched after the split (generation 3):
 *   B: k1-0 (put), k2-0 (deleted), b-only (put), k3-1 (put, in the open generation)
 *   A: k1-1 (put), a-only (put), k3-2 (deleted), a-open (put, in its open log) */
/* big: each generation also holds 3000 keys "big-<g>-<i>" of 1 KiB, in one transaction. */
UTIL void build_sized(sides_t *s, const char *tag, bool big)
{
    s->base = ls_h_tmpdir(tag);
    snprintf(s->a, sizeof(s->a), "%s/a", s->base);
    snprintf(s->b, sizeof(s->b), "%s/b", s->base);
    build_active(s->a, 3, 4);
    if (big) { /* 3 more generations of bulk, still before the split */
        ls_db_t *db = open_quiet(s->a);
        static char val[1024];
        memset(val, 'v', sizeof(val));
        for (int g = 0; g < 3; g++) {
            ls_txn_t *t;
            cr_assert_eq(ls_txn_begin(db, &t), 0);
            for (int i = 0; i < 3000; i++) {
                char k[32];
                snprintf(k, sizeof(k), "big-%d-%04d", g, i);
                cr_assert_eq(ls_txn_put(t, k, strlen(k), val, sizeof(val)), 0);
            }
            cr_assert_eq(ls_txn_commit(t), 0);
            cr_assert_eq(ls_db_roll(db), 0);
        }
        cr_assert_eq(ls_db_close(db), 0);
    }
    int last = big ? 6 : 3;
    ship(s->a, s->b, 1, last);
    ls_role_activate_options_t ao = {.prefix = "E00"};
    ls_role_activate_report_t ar;
    char err[1024] = "";
    cr_assert_eq(ls_role_activate(s->b, &ao, &ar, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ar.new_epoch, 2);
    ls_db_t *db = open_quiet(s->b);
    cr_assert_eq(put1(db, "k1-0", "b-new"), 0);
    cr_assert_eq(del1(db, "k2-0"), 0);
    cr_assert_eq(put1(db, "b-only", "b"), 0);
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(put1(db, "k3-1", "b-open"), 0);
    cr_assert_eq(ls_db_close(db), 0);
    db = open_quiet(s->a);
    cr_assert_eq(put1(db, "k1-1", "a-diverged"), 0);
    cr_assert_eq(put1(db, "a-only", "a"), 0);
    cr_assert_eq(del1(db, "k3-2"), 0);
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(put1(db, "a-open", "x"), 0);
    cr_assert_eq(ls_db_close(db), 0);
}

UTIL void build(sides_t *s, const char *tag)
{
    build_sized(s, tag, false);
}

UTIL void sides_free(sides_t *s)
{
    ls_h_rmtree_free(s->base);
}

/* ---- the wire: both sessions in one thread --------------------------------------------------- */

typedef struct {
    const sides_t *s;
    ls_seed_server_t *srv;
    ls_seed_client_t *cli;
    ls_seed_worker_t *w;
    ls_seed_install_t *in;
    ls_copy_t *copy;
    bool closed, swapped;
    bool hold_end;               /* keep INSTALL_END for later (the crash test) */
    bool have_end;               /* ... and it came */
    uint8_t end[LS_DIGEST_SIZE]; /* its digest */
    ls_role_demote_report_t demote;
    int demote_rc;
    uint64_t client_keys; /* keys A asked for */
    uint64_t chain_links; /* entries of the chain A received */
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
    ls_copy_options_t o = {.dir = t->s->a};
    int rc = ls_copy_open(&o, out, err, errlen);
    if (rc) *out = NULL;
    return rc;
}

UTIL void carry(const ls_frame_t *f, void (*deliver)(wire_t *, const ls_frame_t *), wire_t *t,
                ls_seed_server_t *srv)
{
    static uint8_t buf[LS_FRAME_HEADER_SIZE + 2 * 1024 * 1024];
    static ls_frame_t g;
    char err[256];
    ssize_t n = ls_frame_encode(f, buf, sizeof(buf));
    cr_assert_gt(n, 0, "%s encodes", ls_frame_type_name(f->type));
    if (srv) ls_seed_server_sent(srv);
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), 0, "%s", err);
    deliver(t, &g);
}

UTIL void receive(wire_t *t, const ls_seed_act_t *a)
{
    int rc = 0;
    if (a->kind == LS_SEED_ACT_INSTALL_BEGIN) {
        /* a full seed replaces a Diverged copy: copy_failed */
        ls_seed_install_options_t o = {.copy_dir = t->s->a, .copy_failed = true};
        rc = ls_seed_install_begin(&o, a->info, &t->in, t->err, sizeof(t->err));
    } else if (a->kind == LS_SEED_ACT_INSTALL_DATA && t->in) {
        rc = ls_seed_install_data(t->in, a->offset, a->data, a->len, t->err, sizeof(t->err));
        if (rc == 0)
            ls_seed_client_consumed(t->cli, a->len, ls_seed_install_done(t->in), ls_mono_ns());
    } else if (a->kind == LS_SEED_ACT_INSTALL_END && t->in) {
        if (t->hold_end) {
            t->have_end = true;
            memcpy(t->end, a->digest, LS_DIGEST_SIZE);
            return;
        }
        rc = ls_seed_install_end(t->in, a->digest, t->err, sizeof(t->err));
        if (rc == 0) ls_seed_client_verified(t->cli);
    } else if (a->kind == LS_SEED_ACT_SWAP) {
        ls_seed_copy_swap(&t->copy, &t->in, t->s->a, open_copy, t, &t->swapped, t->err,
                          sizeof(t->err));
        ls_seed_client_swapped(t->cli, t->swapped && t->copy, t->err);
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
    }
}

UTIL void to_server(wire_t *t, const ls_frame_t *f)
{
    char err[256];
    ls_seed_server_frame(t->srv, f, err, sizeof(err));
}

/* What the old active's node does once the chain is here: demote with it, then ask. */
UTIL void demote_and_ask(wire_t *t)
{
    const ls_proto_link_t *pl;
    size_t n;
    uint32_t epoch;
    const char *active;
    ls_seed_client_chain(t->cli, &pl, &n, &epoch, &active);
    t->chain_links = n;
    ls_role_link_t *theirs = calloc(n ? n : 1, sizeof(*theirs));
    for (size_t i = 0; i < n; i++) {
        theirs[i] = (ls_role_link_t){.epoch = pl[i].epoch, .generation = pl[i].generation};
        memcpy(theirs[i].digest, pl[i].digest, LS_DIGEST_SIZE);
    }
    t->demote_rc = ls_role_demote(t->s->a, "E00", theirs, n, epoch, active, &t->demote, t->err,
                                  sizeof(t->err));
    free(theirs);
    cr_assert_eq(t->demote_rc, 0, "%s", t->err);
    uint8_t *keys;
    size_t len;
    cr_assert_eq(ls_seed_resync_keys(t->s->a, "E00", epoch, &keys, &len, &t->client_keys, t->err,
                                     sizeof(t->err)),
                 0, "%s", t->err);
    cr_assert_eq(ls_seed_client_resync(t->cli, t->demote.split.split, keys, len), 0);
    free(keys);
}

UTIL void drain(wire_t *t)
{
    ls_seed_act_t a;
    for (;;) {
        while (ls_seed_client_action(t->cli, &a)) {
            if (a.kind == LS_SEED_ACT_SEND)
                carry(&a.frame, to_server, t, NULL);
            else if (a.kind == LS_SEED_ACT_CLOSE)
                t->closed = true;
            else
                receive(t, &a);
        }
        if (ls_seed_client_state(t->cli) != LS_SEED_CLI_SPLIT) break;
        demote_and_ask(t);
    }
}

UTIL void to_client(wire_t *t, const ls_frame_t *f)
{
    ls_seed_client_frame(t->cli, f, ls_mono_ns());
    drain(t);
}

/* The new active's node: its session's requests carried out (chain, worker). */
UTIL void serve_requests(wire_t *t)
{
    ls_seed_server_req_t rq;
    while (ls_seed_server_request(t->srv, &rq)) {
        if (rq.kind == LS_SEED_REQ_CHAIN) {
            ls_proto_link_t *links;
            size_t n;
            char err[512];
            cr_assert_eq(ls_seed_chain(t->s->b, "E00", rq.from, LS_PROTO_CHAIN_MAX, &links, &n, err,
                                       sizeof(err)),
                         0, "%s", err);
            cr_assert_eq(ls_seed_server_chain(t->srv, 2, "node-b", links, n), 0);
            free(links);
        } else {
            /* the WELCOME accepted what the client offered, LS_FEAT_SEEDXXH included */
            ls_seed_worker_options_t wo = {.db_dir = t->s->b,
                                           .chunk = 1024,
                                           .notify = notify,
                                           .resync = &rq.resync,
                                           .xxh = true};
            cr_assert_eq(ls_seed_worker_start(&wo, &t->w), 0);
        }
    }
}

UTIL void pump(wire_t *t)
{
    for (int idle = 0; idle < 2000 && !t->closed;) {
        bool moved = false;
        serve_requests(t);
        ls_seed_wev_t ev;
        while (t->w && ls_seed_worker_poll(t->w, &ev)) {
            ls_seed_server_feed(t->srv, &ev);
            moved = true;
        }
        ls_frame_t f;
        while (!t->closed && ls_seed_server_next(t->srv, &f)) {
            carry(&f, to_client, t, t->srv);
            moved = true;
        }
        if (ls_seed_client_finished(t->cli) || t->have_end) break;
        if (ls_seed_server_state(t->srv) == LS_SEED_SRV_FAILED && !moved) break;
        idle = moved ? 0 : idle + 1;
        if (!moved) usleep(2000);
    }
}

UTIL void wire_start(wire_t *t, const sides_t *s)
{
    memset(t, 0, sizeof(*t));
    t->s = s;
    static const uint8_t zero[LS_DBID_LEN];
    ls_store_meta_t m;
    char path[PATHLEN + 16], err[512];
    snprintf(path, sizeof(path), "%s/store", s->b);
    cr_assert_eq(ls_store_peek_meta(path, &m, err, sizeof(err)), 0, "%s", err);
    ls_seed_server_options_t so = {.db_window = WIN,
                                   .conn_window = WIN,
                                   .chunk_max = 1024,
                                   .release = release,
                                   .release_ctx = t,
                                   .resync = true};
    cr_assert_eq(ls_seed_server_new(&so, m.dbid, &t->srv), 0);
    ls_seed_client_options_t co = {.source = "node-b",
                                   .features = LS_FEAT_CKSUM,
                                   .window = WIN,
                                   .resync = true,
                                   .chain_from = 1};
    cr_assert_eq(ls_seed_client_new(&co, &t->cli), 0);
    static ls_frame_t h, w;
    ls_seed_client_hello(t->cli, "node-a", "db1", zero, &h);
    cr_assert(h.hello.features & LS_FEAT_RESYNC, "a resync client offers LS_FEAT_RESYNC");
    cr_assert(h.hello.features & LS_FEAT_SEEDXXH, "and XXH3-128 as the stream's check");
    memset(&w, 0, sizeof(w));
    w.type = LS_FRAME_WELCOME;
    w.welcome.version = LS_PROTO_VERSION_RESYNC;
    w.welcome.features = h.hello.features;
    w.welcome.node = ls_proto_str("node-b");
    w.welcome.db_count = 1;
    memcpy(w.welcome.dbs[0].dbid, m.dbid, LS_DBID_LEN);
    w.welcome.dbs[0].status = LS_DB_ACCEPTED;
    carry(&w, to_client, t, NULL);
    cr_assert_eq(ls_seed_client_state(t->cli), LS_SEED_CLI_CHAIN);
}

UTIL void wire_free(wire_t *t)
{
    ls_seed_server_free(t->srv);
    ls_seed_worker_free(t->w);
    ls_seed_client_free(t->cli);
    ls_seed_install_free(t->in);
    ls_copy_close(t->copy);
}

/* ---- comparing stores ------------------------------------------------------------------------ */

typedef struct {
    char **kv; /* "key=value" */
    size_t n, cap;
} dump_t;

UTIL int dump_cb(void *ctx, const void *key, size_t kl, const void *val, size_t vl)
{
    dump_t *d = ctx;
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 64;
        d->kv = realloc(d->kv, d->cap * sizeof(*d->kv));
    }
    char *s = malloc(kl + vl + 2);
    memcpy(s, key, kl);
    s[kl] = '=';
    memcpy(s + kl + 1, val, vl);
    s[kl + vl + 1] = 0;
    d->kv[d->n++] = s;
    return 0;
}

UTIL void dump_store(const char *dir, dump_t *d, ls_store_meta_t *m)
{
    char path[PATHLEN + 16], err[512];
    snprintf(path, sizeof(path), "%s/store", dir);
    ls_store_t *st = NULL;
    cr_assert_eq(ls_store_open(path, NULL, &st, err, sizeof(err)), 0, "%s", err);
    memset(d, 0, sizeof(*d));
    cr_assert_eq(ls_store_iterate(st, dump_cb, d), 0);
    if (m) ls_store_meta(st, m);
    ls_store_close(st);
}

UTIL void dump_free(dump_t *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->kv[i]);
    free(d->kv);
}

/* Every key of A's store equals B's, and the other way round. */
UTIL void expect_equal_stores(const sides_t *s)
{
    dump_t da, db;
    dump_store(s->a, &da, NULL);
    dump_store(s->b, &db, NULL);
    for (size_t i = 0; i < LS_MIN(da.n, db.n); i++)
        cr_assert_str_eq(da.kv[i], db.kv[i], "entry %zu: A %s, B %s", i, da.kv[i], db.kv[i]);
    cr_assert_eq(da.n, db.n, "A holds %zu keys, B %zu", da.n, db.n);
    dump_free(&da);
    dump_free(&db);
}

UTIL bool store_has(const char *dir, const char *kv)
{
    dump_t d;
    dump_store(dir, &d, NULL);
    bool found = false;
    for (size_t i = 0; i < d.n; i++)
        found |= strcmp(d.kv[i], kv) == 0;
    dump_free(&d);
    return found;
}

#endif
