/*
 * The incremental resync (docs/SEED.md "Incremental resync", PROTOCOL.md §10 "Resync"), driven
 * with no socket: an old active A and a new active B built with the real writer (B a copy of A
 * activated in epoch 2, both then writing: B its new epoch, A its diverged generations), the
 * seed sessions of both sides exchanging frames through the codec, A's side demoting with the
 * chain it received (engine/role), the real snapshot worker on B. Checked: the split found and
 * the chain exchanged; the stream carries exactly the union of the keys both sides touched after
 * the split; A's store equals B's key for key afterwards and hands off at B's L; the fall-back
 * to a full seed when B no longer holds a generation after the split; a crash in the middle of
 * the one-transaction apply leaves A's store untouched and ls_seed_recover finishes it.
 */
#include <criterion/criterion.h>

#include "role_test_util.h"
#include "seed/session.h"
#include "store/store.h"

#define WIN (64u * 1024u)

/* A (old active, "node-a") and B (new active, "node-b") under one scratch directory. */
typedef struct {
    char *base;
    char a[PATHLEN], b[PATHLEN];
} sides_t;

static ls_db_t *open_quiet(const char *dir)
{
    return open_db(dir);
}

static int del1(ls_db_t *db, const char *key)
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
static void build_sized(sides_t *s, const char *tag, bool big)
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

static void build(sides_t *s, const char *tag)
{
    build_sized(s, tag, false);
}

static void sides_free(sides_t *s)
{
    ls_h_rmtree(s->base);
    free(s->base);
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

static void notify(void *ctx)
{
    (void) ctx;
}

static void release(void *ctx, void *data)
{
    wire_t *t = ctx;
    ls_seed_worker_release(t->w, data);
}

static int open_copy(void *ctx, ls_copy_t **out, char *err, size_t errlen)
{
    const wire_t *t = ctx;
    ls_copy_options_t o = {.dir = t->s->a};
    int rc = ls_copy_open(&o, out, err, errlen);
    if (rc) *out = NULL;
    return rc;
}

static void carry(const ls_frame_t *f, void (*deliver)(wire_t *, const ls_frame_t *), wire_t *t,
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

static void receive(wire_t *t, const ls_seed_act_t *a)
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

static void to_server(wire_t *t, const ls_frame_t *f)
{
    char err[256];
    ls_seed_server_frame(t->srv, f, err, sizeof(err));
}

/* What the old active's node does once the chain is here: demote with it, then ask. */
static void demote_and_ask(wire_t *t)
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

static void drain(wire_t *t)
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

static void to_client(wire_t *t, const ls_frame_t *f)
{
    ls_seed_client_frame(t->cli, f, ls_mono_ns());
    drain(t);
}

/* The new active's node: its session's requests carried out (chain, worker). */
static void serve_requests(wire_t *t)
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

static void pump(wire_t *t)
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

static void wire_start(wire_t *t, const sides_t *s)
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

static void wire_free(wire_t *t)
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

static int dump_cb(void *ctx, const void *key, size_t kl, const void *val, size_t vl)
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

static void dump_store(const char *dir, dump_t *d, ls_store_meta_t *m)
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

static void dump_free(dump_t *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->kv[i]);
    free(d->kv);
}

/* Every key of A's store equals B's, and the other way round. */
static void expect_equal_stores(const sides_t *s)
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

static bool store_has(const char *dir, const char *kv)
{
    dump_t d;
    dump_store(dir, &d, NULL);
    bool found = false;
    for (size_t i = 0; i < d.n; i++)
        found |= strcmp(d.kv[i], kv) == 0;
    dump_free(&d);
    return found;
}

/* Shipping resumes at N: the copy A became asks for generation `from`; B's generations from..to
 * (epoch 2) are received and replayed through engine/copy. */
static void ship_and_replay(const sides_t *s, uint64_t from, uint64_t to)
{
    ls_copy_options_t o = {.dir = s->a};
    ls_copy_t *c = NULL;
    char err[1024] = "";
    cr_assert_eq(ls_copy_open(&o, &c, err, sizeof(err)), 0, "%s", err);
    ls_copy_resume_t r;
    ls_copy_resume_point(c, &r);
    cr_assert_eq(r.next_generation, from, "the copy asks for the generation holding L");
    for (uint64_t g = from; g <= to; g++) {
        char path[PATHLEN + 64];
        gen_path(path, sizeof(path), s->b, 2, g);
        size_t len = 0;
        uint8_t *buf = ls_h_read_file(path, &len);
        cr_assert_not_null(buf, "%s", path);
        int rc = ls_copy_recv_begin(c, 2, g, len, 0, err, sizeof(err));
        if (rc == 0) rc = ls_copy_recv_data(c, g, 0, buf, len, err, sizeof(err));
        if (rc == 0) rc = ls_copy_recv_end(c, g, NULL, err, sizeof(err));
        cr_assert_eq(rc, 0, "generation %llu: %s", (unsigned long long) g, err);
        free(buf);
    }
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_stats_t st;
    for (int i = 0; i < 3000; i++) {
        ls_copy_stats(c, &st);
        cr_assert_neq(st.state, LS_COPY_FAILED, "%s", st.reason);
        if (st.last_replayed == to && st.replay_queue == 0) break;
        usleep(10000);
    }
    ls_copy_stop(c);
    ls_copy_stats(c, &st);
    cr_assert_eq(st.last_replayed, to, "%s", st.reason);
    cr_assert_eq(st.applied_generations, to - from + 1, "each generation replayed once");
    ls_copy_close(c);
}

/* ---- tests ----------------------------------------------------------------------------------- */

Test(seed_resync, split_found_and_only_the_union_of_keys_moved, .timeout = 120)
{
    sides_t s;
    build(&s, "resync-whole");
    cr_assert(store_has(s.a, "a-only=a") && !store_has(s.a, "k3-2=v3-2"), "A before: its own");
    wire_t t;
    wire_start(&t, &s);
    pump(&t);
    cr_assert_eq(ls_seed_client_state(t.cli), LS_SEED_CLI_DONE, "%s",
                 ls_seed_client_error(t.cli, NULL));
    cr_assert(t.closed && t.swapped && t.copy, "%s", t.err);

    /* the chain: B's closed generations 1..5 (closing the database closed 5); the split is 3;
     * A's generations 4 and 5 were moved aside */
    cr_assert_eq(t.chain_links, 5, "%llu links", (unsigned long long) t.chain_links);
    cr_assert(t.demote.split.found);
    cr_assert_eq(t.demote.split.split, 3);
    cr_assert_eq(t.demote.role, LS_ROLE_DIVERGED);
    cr_assert_eq(t.demote.moved.generations, 2, "generations 4 and 5");
    cr_assert_eq(t.demote.moved.first_generation, 4);
    cr_assert_eq(t.demote.moved.last_generation, 5);

    /* exactly the union: A's 4 keys and B's 4 */
    cr_assert_eq(t.client_keys, 4, "k1-1, a-only, k3-2, a-open");
    ls_seed_info_t server_info = *ls_seed_server_info(t.srv);
    const ls_seed_info_t *info = &server_info;
    cr_assert(info->resync, "%s", info->fallback);
    cr_assert_eq(info->keys, 8);
    cr_assert_eq(info->split_generation, 3);
    cr_assert_eq(ls_seed_server_bytes_sent(t.srv), info->total_bytes);
    cr_assert_lt(info->total_bytes, 200, "8 short entries");
    cr_assert_gt(info->store_bytes, 10 * info->total_bytes, "far less than the store");
    fprintf(stderr, "resync: %llu keys, %llu bytes moved, the store is %llu bytes\n",
            (unsigned long long) info->keys, (unsigned long long) info->total_bytes,
            (unsigned long long) info->store_bytes);
    ls_seed_client_figures_t fig;
    ls_seed_client_figures(t.cli, &fig);
    cr_assert(fig.info.resync && fig.info.store_bytes == info->store_bytes);
    wire_free(&t);

    /* A equals B key for key: a key deleted on B is gone on A, A's own writes are undone */
    expect_equal_stores(&s);
    cr_assert(!store_has(s.a, "k2-0=v2-0"), "deleted on the new active");
    cr_assert(!store_has(s.a, "a-only=a") && !store_has(s.a, "a-open=x"), "A-only keys gone");
    cr_assert(store_has(s.a, "k1-1=v1-1"), "restored to the new active's value");
    cr_assert(store_has(s.a, "k3-2=v3-2"), "A's delete undone");

    /* the hand-off: A's meta is B's L in the generation holding it (5) */
    dump_t d;
    ls_store_meta_t ma, mb;
    dump_store(s.a, &d, &ma);
    dump_free(&d);
    dump_store(s.b, &d, &mb);
    dump_free(&d);
    cr_assert_eq(ma.lsn, mb.lsn);
    cr_assert_eq(ma.lsn, info->last_lsn);
    cr_assert_eq(ma.generation, 5);
    cr_assert_eq(ma.epoch, 2);
    cr_assert_eq(ma.digest_generation, 4);
    cr_assert_eq(info->generation, 5);
    char path[PATHLEN + 64];
    snprintf(path, sizeof(path), "%s/resync", s.a);
    cr_assert(access(path, F_OK) != 0, "the resync directory is gone");
    snprintf(path, sizeof(path), "%s/logs/E00.log", s.a);
    cr_assert(access(path, F_OK) != 0, "no open log left on the copy");

    /* shipping resumes at generation 5 (records <= L skipped), then goes on with what B wrote
     * since: equal again */
    ls_db_t *bdb = open_quiet(s.b);
    cr_assert_eq(put1(bdb, "after", "1"), 0);
    cr_assert_eq(put1(bdb, "k1-1", "b-later"), 0);
    cr_assert_eq(del1(bdb, "b-only"), 0);
    cr_assert_eq(ls_db_close(bdb), 0);
    ship_and_replay(&s, 5, 6);
    expect_equal_stores(&s);
    cr_assert(store_has(s.a, "k1-1=b-later") && !store_has(s.a, "b-only=b"));
    sides_free(&s);
}

Test(seed_resync, falls_back_to_a_full_seed_without_the_logs_since_the_split, .timeout = 120)
{
    sides_t s;
    build(&s, "resync-fallback");
    char path[PATHLEN + 64];
    gen_path(path, sizeof(path), s.b, 2, 4);
    cr_assert_eq(unlink(path), 0, "%s: retention removed generation 4 on the new active", path);
    wire_t t;
    wire_start(&t, &s);
    pump(&t);
    cr_assert_eq(ls_seed_client_state(t.cli), LS_SEED_CLI_DONE, "%s",
                 ls_seed_client_error(t.cli, NULL));
    ls_seed_info_t server_info = *ls_seed_server_info(t.srv);
    const ls_seed_info_t *info = &server_info;
    cr_assert(!info->resync);
    cr_assert(strstr(info->fallback, "generation 4"), "%s", info->fallback);
    ls_seed_client_figures_t fig;
    ls_seed_client_figures(t.cli, &fig);
    cr_assert(!fig.info.resync && strstr(fig.info.fallback, "full seed"), "%s", fig.info.fallback);
    wire_free(&t);
    expect_equal_stores(&s);
    sides_free(&s);
}

/* The new active no longer holding the split named: LS_ELINEAGE, nothing applied. */
Test(seed_resync, a_split_the_server_does_not_hold_is_refused, .timeout = 120)
{
    sides_t s;
    build(&s, "resync-lineage");
    ls_seed_resync_req_t rq = {.split_generation = 3, .split_epoch = 1};
    memset(rq.split_digest, 0xee, LS_DIGEST_SIZE);
    ls_seed_snapshot_options_t so = {.db_dir = s.b, .resync = &rq};
    ls_seed_snapshot_t *snap = NULL;
    char err[1024] = "";
    cr_assert_eq(ls_seed_snapshot_new(&so, &snap, err, sizeof(err)), LS_ELINEAGE);
    cr_assert(strstr(err, "split generation 3") && strstr(err, "not ours"), "%s", err);
    sides_free(&s);
}

static void finish_in_child(void *ctx)
{
    wire_t *t = ctx;
    char err[1024];
    LS_H_CHILD_CHECK(ls_seed_install_end(t->in, t->end, err, sizeof(err)) == 0);
    int rc = ls_seed_install_commit(t->in, err, sizeof(err)); /* exits in the middle of it */
    fprintf(stderr, "child: the commit returned %d: %s\n", rc, err);
    _exit(0);
}

/* The resync stream's entries are 8; the verification reads them (hits 1..8), the apply then
 * crashes at its third entry, inside the uncommitted transaction. */
Test(seed_resync, a_crash_while_applying_leaves_a_store_the_recovery_finishes, .timeout = 120)
{
    setenv("LS_FAULTS", "seed.resync.entry=exit@11", 1); /* before any fault point is hit */
    sides_t s;
    build(&s, "resync-crash");
    wire_t t;
    wire_start(&t, &s);
    t.hold_end = true;
    pump(&t);
    cr_assert(t.have_end && t.in, "the stream arrived: %s", ls_seed_client_error(t.cli, NULL));
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) finish_in_child(&t);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == LS_FAULT_EXIT_CODE, "status %d", st);
    ls_seed_install_free(t.in); /* the parent's handle: the marked stream stays */
    t.in = NULL;
    wire_free(&t);
    char path[PATHLEN + 64];
    snprintf(path, sizeof(path), "%s/resync/READY", s.a);
    cr_assert(access(path, F_OK) == 0, "the marker is durable");
    cr_assert(store_has(s.a, "a-only=a"), "the store is as it was: nothing committed");
    ls_seed_recover_t what;
    char err[1024] = "";
    cr_assert_eq(ls_seed_recover(s.a, &what, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(what, LS_SEED_RECOVER_FINISHED);
    expect_equal_stores(&s);
    snprintf(path, sizeof(path), "%s/resync", s.a);
    cr_assert(access(path, F_OK) != 0);
    cr_assert_eq(ls_seed_recover(s.a, &what, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(what, LS_SEED_RECOVER_NOTHING, "a second run has nothing to do");
    sides_free(&s);
}

/* The server session's requests: CHAIN_REQ then RESYNC frames (split fixed by the first, keys
 * appended, complete without MORE; too many keys: too_many); RESYNC frames naming another split,
 * or a second CHAIN_REQ before the CHAIN, are protocol errors. */
Test(seed_resync, server_session_assembles_the_requests)
{
    uint8_t id[LS_DBID_LEN] = {7};
    ls_seed_server_options_t so = {.resync = true, .max_keys_bytes = 10};
    ls_seed_server_t *srv;
    cr_assert_eq(ls_seed_server_new(&so, id, &srv), 0);
    cr_assert_eq(ls_seed_server_state(srv), LS_SEED_SRV_REQUEST);
    ls_frame_t f = {.type = LS_FRAME_CHAIN_REQ}, out;
    memcpy(f.chain_req.dbid, id, LS_DBID_LEN);
    f.chain_req.from_generation = 3;
    char err[256];
    cr_assert_eq(ls_seed_server_frame(srv, &f, err, sizeof(err)), 0, "%s", err);
    ls_seed_server_req_t rq;
    cr_assert(ls_seed_server_request(srv, &rq));
    cr_assert(rq.kind == LS_SEED_REQ_CHAIN && rq.from == 3);
    cr_assert(!ls_seed_server_request(srv, &rq), "once");
    cr_assert(!ls_seed_server_next(srv, &out), "nothing before the node answers");
    ls_proto_link_t l[2] = {{.epoch = 1, .generation = 3}, {.epoch = 2, .generation = 4}};
    cr_assert_eq(ls_seed_server_chain(srv, 2, "node-b", l, 2), 0);
    cr_assert(ls_seed_server_next(srv, &out));
    cr_assert(out.type == LS_FRAME_CHAIN && out.chain.count == 2 && out.chain.epoch == 2);
    ls_seed_server_sent(srv);
    cr_assert(!ls_seed_server_next(srv, &out));

    static const uint8_t k1[] = {2, 0, 'a', 'b'}, k2[] = {3, 0, 'c', 'd', 'e', 1, 0, 'z'};
    ls_frame_t r = {.type = LS_FRAME_RESYNC};
    memcpy(r.resync.dbid, id, LS_DBID_LEN);
    r.resync = (ls_proto_resync_t){.flags = LS_RESYNC_MORE,
                                   .split_generation = 3,
                                   .split_epoch = 1,
                                   .keys = k1,
                                   .keys_len = sizeof(k1)};
    memcpy(r.resync.dbid, id, LS_DBID_LEN);
    cr_assert_eq(ls_seed_server_frame(srv, &r, err, sizeof(err)), 0, "%s", err);
    cr_assert(!ls_seed_server_request(srv, &rq), "not complete yet");
    r.resync.flags = 0;
    r.resync.keys = k2;
    r.resync.keys_len = sizeof(k2);
    cr_assert_eq(ls_seed_server_frame(srv, &r, err, sizeof(err)), 0, "%s", err);
    cr_assert(ls_seed_server_request(srv, &rq));
    cr_assert(rq.kind == LS_SEED_REQ_RESYNC && rq.resync.split_generation == 3);
    cr_assert(rq.resync.too_many, "12 bytes of keys, 10 allowed: a full seed");
    cr_assert_eq(ls_seed_server_state(srv), LS_SEED_SRV_SNAPSHOT, "the node starts the worker");
    ls_seed_server_free(srv);

    /* different splits; a CHAIN_REQ before the CHAIN */
    so.max_keys_bytes = 0;
    cr_assert_eq(ls_seed_server_new(&so, id, &srv), 0);
    r.resync.flags = LS_RESYNC_MORE;
    cr_assert_eq(ls_seed_server_frame(srv, &r, err, sizeof(err)), 0, "%s", err);
    r.resync.split_generation = 4;
    cr_assert_eq(ls_seed_server_frame(srv, &r, err, sizeof(err)), LS_EPROTO);
    cr_assert(strstr(err, "different splits"), "%s", err);
    cr_assert_eq(ls_seed_server_state(srv), LS_SEED_SRV_FAILED);
    ls_seed_server_free(srv);
    cr_assert_eq(ls_seed_server_new(&so, id, &srv), 0);
    cr_assert_eq(ls_seed_server_frame(srv, &f, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ls_seed_server_frame(srv, &f, err, sizeof(err)), LS_EPROTO);
    cr_assert(strstr(err, "CHAIN_REQ before the last CHAIN"), "%s", err);
    ls_seed_server_free(srv);

    /* a seed server (no resync) refuses the resync frames */
    so.resync = false;
    cr_assert_eq(ls_seed_server_new(&so, id, &srv), 0);
    cr_assert_eq(ls_seed_server_frame(srv, &f, err, sizeof(err)), LS_EPROTO);
    cr_assert(strstr(err, "unexpected CHAIN_REQ"), "%s", err);
    ls_seed_server_free(srv);
}

/* A resync client facing a source that did not accept LS_FEAT_RESYNC (an older node) fails with
 * a message that says to seed instead; a chain without the split fails too. */
Test(seed_resync, client_session_needs_a_resync_source)
{
    ls_seed_client_options_t co = {.source = "node-b", .window = WIN, .resync = true};
    ls_seed_client_t *cli;
    cr_assert_eq(ls_seed_client_new(&co, &cli), 0);
    static ls_frame_t h, w;
    static const uint8_t zero[LS_DBID_LEN];
    ls_seed_client_hello(cli, "node-a", "db1", zero, &h);
    memset(&w, 0, sizeof(w));
    w.type = LS_FRAME_WELCOME;
    w.welcome.version = LS_PROTO_VERSION_EPOCH;
    w.welcome.node = ls_proto_str("node-b");
    w.welcome.db_count = 1;
    w.welcome.dbs[0].dbid[0] = 7;
    w.welcome.dbs[0].status = LS_DB_ACCEPTED;
    ls_seed_client_frame(cli, &w, 1);
    int code;
    cr_assert_eq(ls_seed_client_state(cli), LS_SEED_CLI_FAILED);
    const char *msg = ls_seed_client_error(cli, &code);
    cr_assert_eq(code, LS_EUNSUPPORTED);
    cr_assert(strstr(msg, "cannot resync (protocol version 3") && strstr(msg, "seed this copy"),
              "%s", msg);
    ls_seed_client_free(cli);

    cr_assert_eq(ls_seed_client_new(&co, &cli), 0);
    ls_seed_client_hello(cli, "node-a", "db1", zero, &h);
    w.welcome.version = LS_PROTO_VERSION_RESYNC;
    w.welcome.features = LS_FEAT_RESYNC;
    ls_seed_client_frame(cli, &w, 1);
    cr_assert_eq(ls_seed_client_state(cli), LS_SEED_CLI_CHAIN);
    ls_seed_act_t a;
    cr_assert(ls_seed_client_action(cli, &a));
    cr_assert(a.kind == LS_SEED_ACT_SEND && a.frame.type == LS_FRAME_CHAIN_REQ);
    cr_assert_eq(a.frame.chain_req.from_generation, 1);
    ls_proto_link_t l[1] = {{.epoch = 2, .generation = 9}};
    ls_frame_t c = {.type = LS_FRAME_CHAIN};
    c.chain = (ls_proto_chain_t){.epoch = 2, .count = 1, .links = l};
    ls_seed_client_frame(cli, &c, 2);
    cr_assert_eq(ls_seed_client_state(cli), LS_SEED_CLI_SPLIT);
    cr_assert_eq(ls_seed_client_resync(cli, 3, NULL, 0), LS_EDIVERGED);
    cr_assert_eq(ls_seed_client_state(cli), LS_SEED_CLI_FAILED);
    cr_assert(strstr(ls_seed_client_error(cli, NULL), "split generation 3"));
    ls_seed_client_free(cli);
}

/* A full CHAIN (1024 entries) makes the client ask again after its last entry; keys beyond one
 * frame go in several RESYNC frames, whole keys each, MORE on all but the last. */
Test(seed_resync, client_pages_the_chain_and_splits_the_keys)
{
    ls_seed_client_options_t co = {
        .source = "node-b", .window = WIN, .resync = true, .chain_from = 1};
    ls_seed_client_t *cli;
    cr_assert_eq(ls_seed_client_new(&co, &cli), 0);
    static ls_frame_t h, w, c;
    static const uint8_t zero[LS_DBID_LEN];
    ls_seed_client_hello(cli, "node-a", "db1", zero, &h);
    w.type = LS_FRAME_WELCOME;
    w.welcome.version = LS_PROTO_VERSION_RESYNC;
    w.welcome.features = LS_FEAT_RESYNC;
    w.welcome.node = ls_proto_str("node-b");
    w.welcome.db_count = 1;
    w.welcome.dbs[0].status = LS_DB_ACCEPTED;
    ls_seed_client_frame(cli, &w, 1);
    ls_seed_act_t a;
    cr_assert(ls_seed_client_action(cli, &a) && a.frame.type == LS_FRAME_CHAIN_REQ);
    static ls_proto_link_t l[LS_PROTO_CHAIN_MAX];
    for (size_t i = 0; i < LS_PROTO_CHAIN_MAX; i++)
        l[i] = (ls_proto_link_t){.epoch = 1, .generation = i + 1};
    c.type = LS_FRAME_CHAIN;
    c.chain = (ls_proto_chain_t){.epoch = 2, .count = LS_PROTO_CHAIN_MAX, .links = l};
    ls_seed_client_frame(cli, &c, 2);
    cr_assert_eq(ls_seed_client_state(cli), LS_SEED_CLI_CHAIN, "a full frame: maybe more");
    cr_assert(ls_seed_client_action(cli, &a) && a.frame.type == LS_FRAME_CHAIN_REQ);
    cr_assert_eq(a.frame.chain_req.from_generation, LS_PROTO_CHAIN_MAX + 1);
    l[0] = (ls_proto_link_t){.epoch = 2, .generation = LS_PROTO_CHAIN_MAX + 1};
    c.chain.count = 1;
    ls_seed_client_frame(cli, &c, 3);
    cr_assert_eq(ls_seed_client_state(cli), LS_SEED_CLI_SPLIT);
    const ls_proto_link_t *got;
    size_t n;
    uint32_t epoch;
    const char *active;
    ls_seed_client_chain(cli, &got, &n, &epoch, &active);
    cr_assert(n == LS_PROTO_CHAIN_MAX + 1 && epoch == 2 && got[n - 1].epoch == 2);

    /* 1200 keys of 500 bytes: 602400 bytes, three frames of at most 256 KiB */
    size_t nkeys = 1200, len = nkeys * 502;
    uint8_t *keys = malloc(len);
    for (size_t i = 0; i < nkeys; i++) {
        keys[i * 502] = 500 & 0xff;
        keys[i * 502 + 1] = 500 >> 8;
        memset(keys + i * 502 + 2, 'a' + (int) (i % 26), 500);
    }
    cr_assert_eq(ls_seed_client_resync(cli, 1000, keys, len), 0);
    free(keys);
    size_t frames = 0, bytes = 0;
    while (ls_seed_client_action(cli, &a)) {
        cr_assert(a.kind == LS_SEED_ACT_SEND && a.frame.type == LS_FRAME_RESYNC);
        cr_assert_eq(a.frame.resync.split_generation, 1000);
        cr_assert_eq(a.frame.resync.keys_len % 502, 0, "whole keys");
        cr_assert_leq(a.frame.resync.keys_len, 256 * 1024);
        static uint8_t buf[LS_FRAME_HEADER_SIZE + 300 * 1024];
        cr_assert_gt(ls_frame_encode(&a.frame, buf, sizeof(buf)), 0);
        bytes += a.frame.resync.keys_len;
        frames++;
        cr_assert_eq((a.frame.resync.flags & LS_RESYNC_MORE) != 0, bytes < len);
    }
    cr_assert_eq(frames, 3);
    cr_assert_eq(bytes, len);
    cr_assert_eq(ls_seed_client_state(cli), LS_SEED_CLI_SNAPSHOT);
    ls_seed_client_free(cli);
}

/* The figure the issue asks for: a store of about 9 MiB with 8 keys touched since the split. */
Test(seed_resync, moves_a_small_fraction_of_a_large_store, .timeout = 300)
{
    sides_t s;
    build_sized(&s, "resync-large", true);
    wire_t t;
    wire_start(&t, &s);
    pump(&t);
    cr_assert_eq(ls_seed_client_state(t.cli), LS_SEED_CLI_DONE, "%s",
                 ls_seed_client_error(t.cli, NULL));
    ls_seed_info_t info = *ls_seed_server_info(t.srv);
    cr_assert(info.resync, "%s", info.fallback);
    cr_assert_eq(info.keys, 8);
    cr_assert_eq(t.demote.split.split, 6);
    cr_assert_gt(info.store_bytes, 9u << 20);
    cr_assert_lt(info.total_bytes * 10000, info.store_bytes, "under 0.01%% of the store");
    fprintf(stderr,
            "resync of a large store: %llu keys, %llu bytes moved, the store is %llu bytes\n",
            (unsigned long long) info.keys, (unsigned long long) info.total_bytes,
            (unsigned long long) info.store_bytes);
    wire_free(&t);
    expect_equal_stores(&s);
    sides_free(&s);
}
