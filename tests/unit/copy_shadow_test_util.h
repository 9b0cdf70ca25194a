/*
 * Helpers shared by the block-mode copy tests (copy_shadow_test.c: the early apply;
 * copy_shadow_activate_test.c: crashes and activation; copy_shadow_carry_test.c: bytes written
 * but not yet durable, carried by the store): the fixture (a real writer's active and the copy's
 * directory), shadows as prefixes of the writer's current log, the copy opened with its applied
 * events, waits on its positions, the store compared with the active's, forked children, and the
 * activation of the copy. Static functions: each test program includes this once.
 */
#ifndef LS_COPY_SHADOW_TEST_UTIL_H
#define LS_COPY_SHADOW_TEST_UTIL_H

#include <fcntl.h>

#include "role_test_util.h"

/* helpers a test program may leave unused */
#define UTIL static __attribute__((unused))

typedef struct {
    char *act, *cp;    /* the active's and the copy's directories */
    char cur[PATHLEN]; /* the active's current log */
} fx_t;

UTIL void fx_init(fx_t *f)
{
    f->act = ls_h_tmpdir("act");
    f->cp = ls_h_tmpdir("copy");
    snprintf(f->cur, sizeof(f->cur), "%s/logs/E00.log", f->act);
}

UTIL void fx_free(fx_t *f)
{
    ls_h_rmtree(f->act);
    ls_h_rmtree(f->cp);
    free(f->act);
    free(f->cp);
}

/* Transactions from..from+n-1: two puts each, and a delete of an earlier key now and then. */
UTIL void commit_n(ls_db_t *db, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        ls_txn_t *t;
        cr_assert_eq(ls_txn_begin(db, &t), 0);
        for (int j = 0; j < 2; j++) {
            char k[32], v[48];
            snprintf(k, sizeof(k), "k%d-%d", i, j);
            snprintf(v, sizeof(v), "v%d-%d-value", i, j);
            cr_assert_eq(ls_txn_put(t, k, strlen(k), v, strlen(v)), 0);
        }
        if (i % 4 == 3) {
            char k[32];
            snprintf(k, sizeof(k), "k%d-0", i - 3);
            cr_assert_eq(ls_txn_del(t, k, strlen(k)), 0);
        }
        cr_assert_eq(ls_txn_commit(t), 0);
    }
}

UTIL ls_ctl_durable_t durable_of(const char *act)
{
    ls_ctlpage_t *p = NULL;
    char err[512] = "";
    cr_assert_eq(ls_ctlpage_open(act, false, &p, err, sizeof(err)), 0, "%s", err);
    ls_ctl_durable_t d;
    ls_ctlpage_read_durable(p, &d);
    ls_ctlpage_close(p);
    cr_assert_gt(d.offset, LS_GEN_HEADER_SIZE, "the writer published a durable offset");
    return d;
}

UTIL void shadow_file(const char *cp, uint32_t epoch, uint64_t gen, char *out, size_t len)
{
    char dir[PATHLEN], name[LS_GEN_NAME_MAX];
    snprintf(dir, sizeof(dir), "%s/shadow", cp);
    mkdir(dir, 0700);
    ls_gen_name(name, sizeof(name), LS_GEN_PREFIX_DEFAULT, epoch, gen);
    snprintf(out, len, "%s/%s", dir, name);
}

/* Writes bytes [0, len) of the active's current log as the copy's shadow of (epoch, gen). */
UTIL void shadow_write(const fx_t *f, uint32_t epoch, uint64_t gen, size_t len)
{
    size_t have = 0;
    uint8_t *buf = ls_h_read_file(f->cur, &have);
    cr_assert_not_null(buf, "%s", f->cur);
    cr_assert_leq(len, have, "the current log holds the %zu bytes", len);
    char path[PATHLEN];
    shadow_file(f->cp, epoch, gen, path, sizeof(path));
    cr_assert_eq(ls_h_write_file(path, buf, len), 0);
    free(buf);
}

/* APPLIED events seen (any thread). */
typedef struct {
    pthread_mutex_t mu;
    int applied;       /* APPLIED events */
    uint64_t gen, lsn; /* the last one's */
} applied_ev_t;

UTIL void on_applied(void *ctx, const ls_copy_event_t *ev)
{
    applied_ev_t *a = ctx;
    if (ev->kind != LS_COPY_EV_APPLIED) return;
    pthread_mutex_lock(&a->mu);
    a->applied++;
    a->gen = ev->generation;
    a->lsn = ev->lsn;
    pthread_mutex_unlock(&a->mu);
}

UTIL ls_copy_t *copy_ev(const fx_t *f, uint64_t lag_ms, applied_ev_t *ev)
{
    size_t n = 0;
    uint8_t *buf = ls_h_read_file(f->cur, &n);
    cr_assert_not_null(buf);
    ls_gen_header_t h;
    cr_assert_eq(ls_gen_header_decode(buf, n, &h), 0);
    free(buf);
    ls_copy_options_t o = {.dir = f->cp,
                           .dbid = h.dbid,
                           .replay_lag_ms = lag_ms,
                           .event_cb = ev ? on_applied : NULL,
                           .event_ctx = ev};
    ls_copy_t *c = NULL;
    char err[1024] = "";
    cr_assert_eq(ls_copy_open(&o, &c, err, sizeof(err)), 0, "%s", err);
    return c;
}

UTIL ls_copy_t *copy_with(const fx_t *f, uint64_t lag_ms)
{
    return copy_ev(f, lag_ms, NULL);
}

typedef struct {
    ls_copy_t *c;
    uint64_t lsn;
} wait_t;

UTIL bool applied_reached(void *ctx)
{
    wait_t *w = ctx;
    ls_copy_stats_t s;
    ls_copy_stats(w->c, &s);
    return s.applied_lsn >= w->lsn || s.state == LS_COPY_FAILED;
}

/* Waits until reached(lsn) holds, then asserts the copy is healthy; its figures in *s. */
UTIL void wait_healthy(ls_copy_t *c, bool (*reached)(void *), uint64_t lsn, ls_copy_stats_t *s)
{
    wait_t w = {c, lsn};
    cr_assert(ls_h_wait_for(reached, &w, 20000), "applied up to lsn %llu",
              (unsigned long long) lsn);
    ls_copy_stats(c, s);
    cr_assert_eq(s->state, LS_COPY_HEALTHY, "%s", s->reason);
}

UTIL void wait_applied(ls_copy_t *c, uint64_t lsn)
{
    ls_copy_stats_t s;
    wait_healthy(c, applied_reached, lsn, &s);
}

UTIL bool replayed_reached(void *ctx)
{
    wait_t *w = ctx;
    ls_copy_stats_t s;
    ls_copy_stats(w->c, &s);
    return s.last_replayed >= w->lsn || s.state == LS_COPY_FAILED;
}

/* Receives closed generation gen of the active (epoch 1) into the copy. */
UTIL void send_closed(const fx_t *f, ls_copy_t *c, uint64_t gen)
{
    char path[PATHLEN], err[1024] = "";
    gen_path(path, sizeof(path), f->act, 1, gen);
    size_t len = 0;
    uint8_t *buf = ls_h_read_file(path, &len);
    cr_assert_not_null(buf, "%s", path);
    int rc = ls_copy_recv_begin(c, 1, gen, len, 0, err, sizeof(err));
    if (rc == 0) rc = ls_copy_recv_data(c, gen, 0, buf, len, err, sizeof(err));
    if (rc == 0) rc = ls_copy_recv_end(c, gen, NULL, err, sizeof(err));
    cr_assert_eq(rc, 0, "generation %llu: %s", (unsigned long long) gen, err);
    free(buf);
}

/* send_closed, then waits (20 s at most) until the copy has replayed gen. */
UTIL void replay_closed(const fx_t *f, ls_copy_t *c, uint64_t gen)
{
    send_closed(f, c, gen);
    wait_t w = {c, gen};
    cr_assert(ls_h_wait_for(replayed_reached, &w, 20000), "generation %llu not replayed",
              (unsigned long long) gen);
}

/* Every key and value of a store, "key=value\n" in key order. */
typedef struct {
    char *text;
    size_t len, cap;
} dump_t;

UTIL int dump_kv(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    dump_t *d = ctx;
    if (d->len + kl + vl + 2 > d->cap) {
        d->cap = (d->cap + kl + vl + 2) * 2;
        d->text = realloc(d->text, d->cap);
    }
    memcpy(d->text + d->len, k, kl);
    d->text[d->len + kl] = '=';
    memcpy(d->text + d->len + kl + 1, v, vl);
    d->text[d->len + kl + 1 + vl] = '\n';
    d->len += kl + vl + 2;
    return 0;
}

UTIL dump_t dump(ls_store_t *s)
{
    dump_t d = {0};
    cr_assert_eq(ls_store_iterate(s, dump_kv, &d), 0);
    return d;
}

/* The copy store holds exactly what the active's store holds (the active closed). */
UTIL void expect_same_store(const fx_t *f, ls_copy_t *c)
{
    char path[PATHLEN], err[512] = "";
    snprintf(path, sizeof(path), "%s/store", f->act);
    ls_store_options_t so = {0};
    ls_store_t *a = NULL;
    cr_assert_eq(ls_store_open(path, &so, &a, err, sizeof(err)), 0, "%s", err);
    dump_t x = dump(a), y = dump(ls_copy_store(c));
    cr_assert_gt(x.len, 0);
    cr_assert(x.len == y.len && memcmp(x.text, y.text, x.len) == 0,
              "copy store differs from the active's:\n%.*s\n---\n%.*s", (int) y.len, y.text,
              (int) x.len, x.text);
    free(x.text);
    free(y.text);
    ls_store_close(a);
}

UTIL bool has_key(ls_copy_t *c, const char *key)
{
    void *v = NULL;
    size_t vl = 0;
    int rc = ls_store_get(ls_copy_store(c), key, strlen(key), &v, &vl);
    free(v);
    return rc == 0;
}

/* A fresh fixture f: six commits in the active's open generation 1, written into the copy's
 * shadow, and the copy opened (not started); *db stays open, *d is their durable position. */
UTIL ls_copy_t *six_in_shadow(fx_t *f, ls_db_t **db, ls_ctl_durable_t *d)
{
    fx_init(f);
    *db = open_db(f->act);
    commit_n(*db, 0, 6);
    *d = durable_of(f->act);
    shadow_write(f, d->epoch, 1, d->offset);
    return copy_with(f, 0);
}

UTIL int run_child(void (*body)(void *), void *arg, const char *faults)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (faults) setenv("LS_FAULTS", faults, 1);
        body(arg);
        _exit(0);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* <copy>.pos: the durable position a forked writer hands to the test ("SIZE LSN"). */
UTIL void write_pos(const fx_t *f, const ls_ctl_durable_t *d)
{
    char pos[PATHLEN], text[64];
    snprintf(pos, sizeof(pos), "%s.pos", f->cp);
    int n = snprintf(text, sizeof(text), "%llu %llu", (unsigned long long) d->offset,
                     (unsigned long long) d->lsn);
    cr_assert_eq(ls_h_write_file(pos, text, (size_t) n), 0);
}

UTIL void read_pos(const fx_t *f, uint64_t *size, uint64_t *lsn)
{
    char pos[PATHLEN];
    snprintf(pos, sizeof(pos), "%s.pos", f->cp);
    size_t n = 0;
    char *t = (char *) ls_h_read_file(pos, &n);
    cr_assert_not_null(t);
    unsigned long long a, b;
    cr_assert_eq(sscanf(t, "%llu %llu", &a, &b), 2);
    *size = a;
    *lsn = b;
    free(t);
}

/* ---- activation ------------------------------------------------------------------------------ */

/* Generations 1..2 closed and shipped; generation 3 open with 4 transactions durable, then a
 * fifth cut in its middle: the shadow. <cp>.pos holds "size lsn" of the durable part. */
UTIL void prepare_activation(void *arg)
{
    fx_t *f = arg;
    build_active(f->act, 2, 3);
    ship(f->act, f->cp, 1, 2);
    ls_db_t *db = open_db(f->act);
    commit_n(db, 0, 4);
    ls_ctl_durable_t d = durable_of(f->act);
    cr_assert_eq(d.generation, 3);
    commit_n(db, 4, 1);
    ls_ctl_durable_t d2 = durable_of(f->act);
    shadow_write(f, 1, 3, d.offset + (d2.offset - d.offset) / 2);
    cr_assert_eq(ls_db_close(db), 0);
    write_pos(f, &d);
}

UTIL void activate_body(void *arg)
{
    fx_t *f = arg;
    ls_role_activate_report_t r;
    char err[1024];
    _exit(ls_role_activate(f->cp, NULL, &r, err, sizeof(err)) == 0 ? 0 : 1);
}

/* After the activation: generation 3 closed in logs/, history, the database opens in epoch 2 at
 * generation 4 chained to it, the shadow's transactions are there, the torn one is not. */
UTIL void expect_activated(const fx_t *f, const ls_role_activate_report_t *r, uint64_t lsn)
{
    cr_assert_eq(r->shadow_generation, 3);
    cr_assert_eq(r->shadow_last_lsn, lsn);
    cr_assert_eq(r->last_generation, 3);
    cr_assert_eq(r->first_generation, 4);
    cr_assert_eq(r->new_epoch, 2);
    cr_assert_eq(r->last_lsn, lsn);
    char hist[PATHLEN];
    snprintf(hist, sizeof(hist), "%s/logs/history", f->cp);
    size_t hl = 0;
    char *h = (char *) ls_h_read_file(hist, &hl);
    cr_assert(h && hl == 8 && memcmp(h, "1 1\n2 4\n", 8) == 0, "history: %.*s", (int) hl, h);
    free(h);
    char p3[PATHLEN];
    gen_path(p3, sizeof(p3), f->cp, 1, 3);
    ls_gen_info_t info;
    ls_gen_verdict_t v;
    ls_gen_expect_t ex = {.epoch = 1, .generation = 3};
    cr_assert_eq(ls_gen_scan_file(p3, &ex, NULL, NULL, &info, &v), 0, "%s", v.msg);
    cr_assert(info.closed && info.trailer.last_lsn == lsn, "generation 3 closed at lsn %llu",
              (unsigned long long) lsn);
    ls_db_t *db = open_db(f->cp);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.epoch, 2);
    cr_assert_eq(s.current_generation, 4);
    cr_assert_eq(s.last_lsn, lsn);
    expect_value(db, "k3-1", "v3-1-value");
    expect_value(db, "k2-2", "v2-2");
    void *val = NULL;
    size_t vl = 0;
    cr_assert_eq(ls_db_get(db, "k4-0", 4, &val, &vl), LS_ENOENT, "the torn transaction is not");
    cr_assert_eq(put1(db, "new", "after activation"), 0);
    cr_assert_eq(ls_db_close(db), 0);
    char p4[PATHLEN];
    gen_path(p4, sizeof(p4), f->cp, 2, 4);
    ls_gen_expect_t ex4 = {
        .epoch = 2, .generation = 4, .first_lsn = lsn + 1, .prev_digest = info.trailer.digest};
    cr_assert_eq(ls_gen_scan_file(p4, &ex4, NULL, NULL, NULL, &v), 0, "%s", v.msg);
}

/* Activates the copy of prepare_activation's setup: the active announced generations up to 2
 * closed and generation 3 open through open_lsn. */
UTIL void activate_gen3(fx_t *f, uint64_t open_lsn, ls_role_activate_report_t *r)
{
    ls_role_activate_options_t o = {.announced = {.last_generation = 2,
                                                  .last_close_ns = close_time(f->act, 1, 2),
                                                  .open_generation = 3,
                                                  .open_lsn = open_lsn}};
    char err[1024] = "";
    cr_assert_eq(ls_role_activate(f->cp, &o, r, err, sizeof(err)), 0, "%s", err);
}

#endif
