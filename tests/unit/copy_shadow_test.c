/*
 * Block mode on the copy (engine/copy/shadow_apply.c, shadow_close.c; docs/BLOCKMODE.md "Shadow
 * replay and activation"): shadows are prefixes of a real writer's current log (up to the
 * durable offset it published on the control page, or torn past it). The replayer applies their
 * complete transactions early; the closed generation then replays over them and the store equals
 * the active's; other bytes than those applied fail the copy; a lag or a pause applies nothing;
 * crashes at the fault points leave a store that finishes the same; activation closes the shadow
 * as the last generation of the old epoch.
 */
#include <fcntl.h>

#include "role_test_util.h"

typedef struct {
    char *act, *cp;    /* the active's and the copy's directories */
    char cur[PATHLEN]; /* the active's current log */
} fx_t;

static void fx_init(fx_t *f)
{
    f->act = ls_h_tmpdir("act");
    f->cp = ls_h_tmpdir("copy");
    snprintf(f->cur, sizeof(f->cur), "%s/logs/E00.log", f->act);
}

static void fx_free(fx_t *f)
{
    ls_h_rmtree(f->act);
    ls_h_rmtree(f->cp);
    free(f->act);
    free(f->cp);
}

/* Transactions from..from+n-1: two puts each, and a delete of an earlier key now and then. */
static void commit_n(ls_db_t *db, int from, int n)
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

static ls_ctl_durable_t durable_of(const char *act)
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

static void shadow_file(const char *cp, uint32_t epoch, uint64_t gen, char *out, size_t len)
{
    char dir[PATHLEN], name[LS_GEN_NAME_MAX];
    snprintf(dir, sizeof(dir), "%s/shadow", cp);
    mkdir(dir, 0700);
    ls_gen_name(name, sizeof(name), LS_GEN_PREFIX_DEFAULT, epoch, gen);
    snprintf(out, len, "%s/%s", dir, name);
}

/* Writes bytes [0, len) of the active's current log as the copy's shadow of (epoch, gen). */
static void shadow_write(const fx_t *f, uint32_t epoch, uint64_t gen, size_t len)
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

static void on_applied(void *ctx, const ls_copy_event_t *ev)
{
    applied_ev_t *a = ctx;
    if (ev->kind != LS_COPY_EV_APPLIED) return;
    pthread_mutex_lock(&a->mu);
    a->applied++;
    a->gen = ev->generation;
    a->lsn = ev->lsn;
    pthread_mutex_unlock(&a->mu);
}

static ls_copy_t *copy_ev(const fx_t *f, uint64_t lag_ms, applied_ev_t *ev)
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

static ls_copy_t *copy_with(const fx_t *f, uint64_t lag_ms)
{
    return copy_ev(f, lag_ms, NULL);
}

typedef struct {
    ls_copy_t *c;
    uint64_t lsn;
} wait_t;

static bool applied_reached(void *ctx)
{
    wait_t *w = ctx;
    ls_copy_stats_t s;
    ls_copy_stats(w->c, &s);
    return s.applied_lsn >= w->lsn || s.state == LS_COPY_FAILED;
}

/* Waits until reached(lsn) holds, then asserts the copy is healthy; its figures in *s. */
static void wait_healthy(ls_copy_t *c, bool (*reached)(void *), uint64_t lsn, ls_copy_stats_t *s)
{
    wait_t w = {c, lsn};
    cr_assert(ls_h_wait_for(reached, &w, 20000), "applied up to lsn %llu",
              (unsigned long long) lsn);
    ls_copy_stats(c, s);
    cr_assert_eq(s->state, LS_COPY_HEALTHY, "%s", s->reason);
}

static void wait_applied(ls_copy_t *c, uint64_t lsn)
{
    ls_copy_stats_t s;
    wait_healthy(c, applied_reached, lsn, &s);
}

static bool replayed_reached(void *ctx)
{
    wait_t *w = ctx;
    ls_copy_stats_t s;
    ls_copy_stats(w->c, &s);
    return s.last_replayed >= w->lsn || s.state == LS_COPY_FAILED;
}

/* Receives closed generation gen of the active (epoch 1) into the copy. */
static void send_closed(const fx_t *f, ls_copy_t *c, uint64_t gen)
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

/* Every key and value of a store, "key=value\n" in key order. */
typedef struct {
    char *text;
    size_t len, cap;
} dump_t;

static int dump_kv(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
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

static dump_t dump(ls_store_t *s)
{
    dump_t d = {0};
    cr_assert_eq(ls_store_iterate(s, dump_kv, &d), 0);
    return d;
}

/* The copy store holds exactly what the active's store holds (the active closed). */
static void expect_same_store(const fx_t *f, ls_copy_t *c)
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

static bool has_key(ls_copy_t *c, const char *key)
{
    void *v = NULL;
    size_t vl = 0;
    int rc = ls_store_get(ls_copy_store(c), key, strlen(key), &v, &vl);
    free(v);
    return rc == 0;
}

Test(copy_shadow, early_apply_then_the_closed_generation_gives_the_actives_store, .timeout = 60)
{
    fx_t f;
    fx_init(&f);
    ls_db_t *db = open_db(f.act);
    commit_n(db, 0, 10);
    ls_ctl_durable_t d1 = durable_of(f.act);
    cr_assert_eq(d1.generation, 1);
    shadow_write(&f, d1.epoch, 1, d1.offset);
    applied_ev_t ev = {.mu = PTHREAD_MUTEX_INITIALIZER};
    ls_copy_t *c = copy_ev(&f, 0, &ev);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, d1.epoch, 1, d1.offset, d1.lsn);
    wait_applied(c, d1.lsn);
    pthread_mutex_lock(&ev.mu);
    cr_assert(ev.applied == 1 && ev.gen == 1 && ev.lsn == d1.lsn, "APPLIED(1, %llu) reported",
              (unsigned long long) d1.lsn);
    pthread_mutex_unlock(&ev.mu);
    ls_copy_stats_t s;
    ls_copy_stats(c, &s);
    cr_assert_eq(s.applied_lsn, d1.lsn, "exactly the durable transactions");
    cr_assert_eq(s.shadow_applied_lsn, d1.lsn);
    cr_assert_eq(s.last_replayed, 0, "generation 1 is not replayed completely yet");
    cr_assert(has_key(c, "k9-1") && has_key(c, "k1-0") && !has_key(c, "k0-0"));
    ls_store_meta_t m;
    ls_store_meta(ls_copy_store(c), &m);
    cr_assert(m.generation == 1 && m.digest_generation == 0 && m.shadow_end == d1.offset,
              "meta inside generation 1: %llu/%llu end %llu", (unsigned long long) m.generation,
              (unsigned long long) m.digest_generation, (unsigned long long) m.shadow_end);

    commit_n(db, 10, 7); /* the shadow grows */
    ls_ctl_durable_t d2 = durable_of(f.act);
    shadow_write(&f, d2.epoch, 1, d2.offset);
    ls_copy_shadow_durable(c, d2.epoch, 1, d2.offset, d2.lsn);
    wait_applied(c, d2.lsn);
    ls_copy_stats(c, &s);
    cr_assert_geq(s.shadow_applies, 2);
    cr_assert(has_key(c, "k16-1"));

    commit_n(db, 17, 3); /* never in the shadow */
    cr_assert_eq(ls_db_roll(db), 0);
    commit_n(db, 20, 2); /* generation 2 */
    cr_assert_eq(ls_db_close(db), 0);
    send_closed(&f, c, 1);
    send_closed(&f, c, 2);
    wait_t w = {c, 2};
    cr_assert(ls_h_wait_for(replayed_reached, &w, 20000));
    ls_copy_stats(c, &s);
    cr_assert_eq(s.state, LS_COPY_HEALTHY, "%s", s.reason);
    ls_store_meta(ls_copy_store(c), &m);
    cr_assert(m.digest_generation == 2 && m.shadow_end == 0, "replayed, the proof dropped");
    expect_same_store(&f, c);
    ls_copy_close(c);
    fx_free(&f);
}

Test(copy_shadow, torn_or_unfinished_tail_applies_complete_transactions_only, .timeout = 60)
{
    fx_t f;
    fx_init(&f);
    ls_db_t *db = open_db(f.act);
    commit_n(db, 0, 5);
    ls_ctl_durable_t d1 = durable_of(f.act);
    commit_n(db, 5, 1);
    ls_ctl_durable_t d2 = durable_of(f.act);
    /* the sixth transaction cut inside its second record, reported durable all the same */
    uint64_t cut = d1.offset + (d2.offset - d1.offset) / 2;
    shadow_write(&f, 1, 1, cut);
    ls_copy_t *c = copy_with(&f, 0);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, 1, 1, cut, d2.lsn);
    wait_applied(c, d1.lsn);
    /* the rest arrives: the torn record's bytes are complete now */
    shadow_write(&f, 1, 1, d2.offset);
    ls_copy_shadow_durable(c, 1, 1, d2.offset, d2.lsn);
    wait_applied(c, d2.lsn);
    ls_copy_stats_t s;
    ls_copy_stats(c, &s);
    cr_assert_eq(s.applied_lsn, d2.lsn);
    cr_assert_eq(s.shadow_applies, 2, "d1's transactions, then the sixth: never a half one");
    cr_assert(has_key(c, "k5-1"));
    ls_copy_close(c);
    ls_db_close(db);
    fx_free(&f);
}

/* Re-encodes the records of buf[0, len) (a shadow) with every PUT value's first byte changed:
 * valid records (checksums of this generation) that are not the active's. */
typedef struct {
    uint8_t *out;
    size_t off;
    uint64_t seed;
} forge_t;

static int forge_record(void *ctx, const ls_record_t *r)
{
    forge_t *fg = ctx;
    ls_record_t x = *r;
    uint8_t val[256];
    if (r->type == LS_REC_PUT && r->value_len && r->value_len <= sizeof(val)) {
        memcpy(val, r->value, r->value_len);
        val[0] = 'X';
        x.value = val;
    }
    fg->off += ls_record_encode(&x, fg->seed, fg->out + fg->off);
    return 0;
}

Test(copy_shadow, closed_generation_unlike_the_applied_shadow_fails_the_copy, .timeout = 60)
{
    fx_t f;
    fx_init(&f);
    ls_db_t *db = open_db(f.act);
    commit_n(db, 0, 6);
    ls_ctl_durable_t d = durable_of(f.act);
    size_t n = 0;
    uint8_t *buf = ls_h_read_file(f.cur, &n);
    ls_gen_header_t h;
    cr_assert_eq(ls_gen_header_decode(buf, n, &h), 0);
    uint8_t *forged = malloc(d.offset);
    memcpy(forged, buf, LS_GEN_HEADER_SIZE);
    forge_t fg = {forged, LS_GEN_HEADER_SIZE, ls_gen_seed(h.dbid, h.epoch, h.generation)};
    ls_gen_expect_t ex = {.allow_open = true};
    ls_gen_verdict_t v;
    cr_assert_eq(ls_gen_scan(buf, d.offset, &ex, forge_record, &fg, NULL, &v), 0, "%s", v.msg);
    cr_assert_eq(fg.off, d.offset);
    char path[PATHLEN];
    shadow_file(f.cp, 1, 1, path, sizeof(path));
    cr_assert_eq(ls_h_write_file(path, forged, d.offset), 0);
    free(forged);
    free(buf);

    ls_copy_t *c = copy_with(&f, 0);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, 1, 1, d.offset, d.lsn);
    wait_applied(c, d.lsn);
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(ls_db_close(db), 0);
    send_closed(&f, c, 1);
    wait_t w = {c, 1};
    cr_assert(ls_h_wait_for(replayed_reached, &w, 20000));
    ls_copy_stats_t s;
    ls_copy_stats(c, &s);
    cr_assert_eq(s.state, LS_COPY_FAILED);
    cr_assert_eq(s.last_replayed, 0, "nothing of the closed generation applied");
    cr_assert(ls_h_contains(s.reason, "is not what the store applied early from its shadow") &&
                  ls_h_contains(s.reason, "reseed this copy"),
              "%s", s.reason);
    ls_copy_close(c);
    fx_free(&f);
}

Test(copy_shadow, nothing_applied_early_while_lagged_or_paused, .timeout = 60)
{
    fx_t f;
    fx_init(&f);
    ls_db_t *db = open_db(f.act);
    commit_n(db, 0, 4);
    ls_ctl_durable_t d = durable_of(f.act);
    shadow_write(&f, 1, 1, d.offset);
    for (int lagged = 1; lagged >= 0; lagged--) {
        ls_copy_t *c = copy_with(&f, lagged ? 60000 : 0);
        if (!lagged) ls_copy_pause_replay(c, true);
        cr_assert_eq(ls_copy_start(c), 0);
        ls_copy_shadow_durable(c, 1, 1, d.offset, d.lsn);
        usleep(300 * 1000); /* the replayer had its chance: a wrong apply would be done by now */
        ls_copy_stats_t s;
        ls_copy_stats(c, &s);
        cr_assert_eq(s.shadow_applies, 0, "%s: nothing applied", lagged ? "lagged" : "paused");
        cr_assert_eq(s.applied_lsn, 0);
        cr_assert_eq(s.shadow_durable_lsn, d.lsn, "the report is kept");
        if (!lagged) {
            ls_copy_pause_replay(c, false);
            wait_applied(c, d.lsn);
        }
        ls_copy_close(c);
    }
    ls_db_close(db);
    fx_free(&f);
}

/* A fresh fixture f: six commits in the active's open generation 1, written into the copy's
 * shadow, and the copy opened (not started); *db stays open, *d is their durable position. */
static ls_copy_t *six_in_shadow(fx_t *f, ls_db_t **db, ls_ctl_durable_t *d)
{
    fx_init(f);
    *db = open_db(f->act);
    commit_n(*db, 0, 6);
    *d = durable_of(f->act);
    shadow_write(f, d->epoch, 1, d->offset);
    return copy_with(f, 0);
}

/* Lazy (the source said no commit waits for the applied position): the replayer applies the
 * shadow by itself once the reports were quiet, with no further report to wake it; eager again,
 * the next report is applied as before. */
Test(copy_shadow, lazy_early_apply_waits_for_quiet_reports_then_applies, .timeout = 60)
{
    fx_t f;
    ls_db_t *db;
    ls_ctl_durable_t d1;
    ls_copy_t *c = six_in_shadow(&f, &db, &d1);
    ls_copy_shadow_apply_eager(c, false);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, d1.epoch, 1, d1.offset, d1.lsn);
    wait_applied(c, d1.lsn);
    ls_copy_stats_t s;
    ls_copy_stats(c, &s);
    cr_assert_eq(s.shadow_applied_lsn, d1.lsn);
    cr_assert(has_key(c, "k5-1"));
    commit_n(db, 6, 5);
    ls_ctl_durable_t d2 = durable_of(f.act);
    shadow_write(&f, d2.epoch, 1, d2.offset);
    ls_copy_shadow_apply_eager(c, true);
    ls_copy_shadow_durable(c, d2.epoch, 1, d2.offset, d2.lsn);
    wait_applied(c, d2.lsn);
    cr_assert(has_key(c, "k10-1"));
    commit_n(db, 11, 2);
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(ls_db_close(db), 0);
    send_closed(&f, c, 1);
    wait_t w = {c, 1};
    cr_assert(ls_h_wait_for(replayed_reached, &w, 20000));
    expect_same_store(&f, c);
    ls_copy_close(c);
    fx_free(&f);
}

/* ---- crashes (forked children; the parent hits no fault point before forking) ------------ */

static int run_child(void (*body)(void *), void *arg, const char *faults)
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

/* The active: generation 1 with 8 transactions durable when the shadow is taken, 3 more, closed;
 * <cp>.pos holds "size lsn" of the shadow. */
static void prepare_shadow(void *arg)
{
    fx_t *f = arg;
    ls_db_t *db = open_db(f->act);
    commit_n(db, 0, 8);
    ls_ctl_durable_t d = durable_of(f->act);
    shadow_write(f, 1, 1, d.offset);
    commit_n(db, 8, 3);
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(ls_db_close(db), 0);
    char pos[PATHLEN], text[64];
    snprintf(pos, sizeof(pos), "%s.pos", f->cp);
    int n = snprintf(text, sizeof(text), "%llu %llu", (unsigned long long) d.offset,
                     (unsigned long long) d.lsn);
    cr_assert_eq(ls_h_write_file(pos, text, (size_t) n), 0);
}

static void read_pos(const fx_t *f, uint64_t *size, uint64_t *lsn)
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

/* Opens the copy (the closed generation 1 names the database), reports the shadow and waits:
 * a fault point ends the process. */
static void apply_body(void *arg)
{
    fx_t *f = arg;
    uint64_t size, lsn;
    read_pos(f, &size, &lsn);
    char closed[PATHLEN];
    gen_path(closed, sizeof(closed), f->act, 1, 1);
    snprintf(f->cur, sizeof(f->cur), "%s", closed); /* copy_with reads its header */
    ls_copy_t *c = copy_with(f, 0);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, 1, 1, size, lsn);
    wait_applied(c, lsn);
    ls_copy_close(c);
}

Test(copy_shadow, crash_before_or_after_the_early_commit_finishes_the_same, .timeout = 120)
{
    fx_t f;
    fx_init(&f);
    cr_assert_eq(run_child(prepare_shadow, &f, NULL), 0);
    cr_assert_eq(run_child(apply_body, &f, "copy.shadow.before_commit=exit"), LS_FAULT_EXIT_CODE);
    cr_assert_eq(run_child(apply_body, &f, "copy.shadow.after_commit=exit"), LS_FAULT_EXIT_CODE);
    uint64_t size, lsn;
    read_pos(&f, &size, &lsn);
    gen_path(f.cur, sizeof(f.cur), f.act, 1, 1);
    ls_copy_t *c = copy_with(&f, 0);
    ls_copy_stats_t s;
    ls_copy_stats(c, &s);
    cr_assert_eq(s.applied_lsn, lsn, "the second child's commit is in the store");
    cr_assert_eq(s.last_replayed, 0);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, 1, 1, size, lsn); /* again: walked, proof checked, nothing new */
    send_closed(&f, c, 1);
    wait_t w = {c, 1};
    cr_assert(ls_h_wait_for(replayed_reached, &w, 20000));
    ls_copy_stats(c, &s);
    cr_assert_eq(s.state, LS_COPY_HEALTHY, "%s", s.reason);
    expect_same_store(&f, c);
    ls_copy_close(c);
    fx_free(&f);
}

/* ---- activation ------------------------------------------------------------------------------ */

/* Generations 1..2 closed and shipped; generation 3 open with 4 transactions durable, then a
 * fifth cut in its middle: the shadow. <cp>.pos holds "size lsn" of the durable part. */
static void prepare_activation(void *arg)
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
    char pos[PATHLEN], text[64];
    snprintf(pos, sizeof(pos), "%s.pos", f->cp);
    int n = snprintf(text, sizeof(text), "%llu %llu", (unsigned long long) d.offset,
                     (unsigned long long) d.lsn);
    cr_assert_eq(ls_h_write_file(pos, text, (size_t) n), 0);
}

static void activate_body(void *arg)
{
    fx_t *f = arg;
    ls_role_activate_report_t r;
    char err[1024];
    _exit(ls_role_activate(f->cp, NULL, &r, err, sizeof(err)) == 0 ? 0 : 1);
}

/* After the activation: generation 3 closed in logs/, history, the database opens in epoch 2 at
 * generation 4 chained to it, the shadow's transactions are there, the torn one is not. */
static void expect_activated(const fx_t *f, const ls_role_activate_report_t *r, uint64_t lsn)
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
static void activate_gen3(fx_t *f, uint64_t open_lsn, ls_role_activate_report_t *r)
{
    ls_role_activate_options_t o = {.announced = {.last_generation = 2,
                                                  .last_close_ns = close_time(f->act, 1, 2),
                                                  .open_generation = 3,
                                                  .open_lsn = open_lsn}};
    char err[1024] = "";
    cr_assert_eq(ls_role_activate(f->cp, &o, r, err, sizeof(err)), 0, "%s", err);
}

Test(copy_shadow, activation_closes_the_shadow_as_the_last_generation, .timeout = 120)
{
    fx_t f;
    fx_init(&f);
    cr_assert_eq(run_child(prepare_activation, &f, NULL), 0);
    uint64_t size, lsn;
    read_pos(&f, &size, &lsn);
    ls_role_activate_report_t r;
    activate_gen3(&f, lsn, &r);
    cr_assert(r.shadow_dropped > 0, "the torn fifth transaction was cut");
    cr_assert(r.lossless);
    cr_assert_eq(r.loss.open_generation, 0, "everything announced of generation 3 is here");
    cr_assert_eq(r.loss.open_held_lsn, lsn);
    expect_activated(&f, &r, lsn);
    fx_free(&f);
}

Test(copy_shadow, activation_counts_what_is_beyond_the_shadow_as_possibly_lost, .timeout = 120)
{
    fx_t f;
    fx_init(&f);
    cr_assert_eq(run_child(prepare_activation, &f, NULL), 0);
    uint64_t size, lsn;
    read_pos(&f, &size, &lsn);
    ls_role_activate_report_t r;
    activate_gen3(&f, lsn + 3, &r);
    cr_assert(r.lossless, "no closed generation lost");
    cr_assert_eq(r.loss.open_generation, 3);
    cr_assert_eq(r.loss.open_held_lsn, lsn);
    cr_assert_eq(r.loss.open_lsn, lsn + 3);
    ls_role_state_t st;
    char err[1024] = "";
    cr_assert_eq(ls_role_load(f.cp, LS_ROLE_COPY, &st, err, sizeof(err)), 0, "%s", err);
    cr_assert(st.loss.open_held_lsn == lsn && st.loss.open_lsn == lsn + 3, "kept in the role file");
    expect_activated(&f, &r, lsn);
    fx_free(&f);
}

Test(copy_shadow, activation_crashed_while_closing_the_shadow_is_finished_by_a_rerun,
     .timeout = 120)
{
    fx_t f;
    fx_init(&f);
    cr_assert_eq(run_child(prepare_activation, &f, NULL), 0);
    cr_assert_eq(run_child(activate_body, &f, "copy.shadow_close.after_trailer=exit"),
                 LS_FAULT_EXIT_CODE);
    cr_assert_eq(run_child(activate_body, &f, "copy.shadow_close.after_rename=exit"),
                 LS_FAULT_EXIT_CODE);
    uint64_t size, lsn;
    read_pos(&f, &size, &lsn);
    ls_role_activate_report_t r;
    char err[1024] = "";
    cr_assert_eq(ls_role_activate(f.cp, NULL, &r, err, sizeof(err)), 0, "%s", err);
    expect_activated(&f, &r, lsn);
    fx_free(&f);
}

static int poke(void *ctx, ls_store_txn_t *txn)
{
    (void) ctx;
    return ls_store_put(txn, "k1-1", 4, "poked", 5);
}

Test(copy_shadow, closed_generation_replay_skips_what_was_applied_early, .timeout = 60)
{
    fx_t f;
    fx_init(&f);
    ls_db_t *db = open_db(f.act);
    commit_n(db, 0, 4);
    ls_ctl_durable_t d = durable_of(f.act);
    shadow_write(&f, 1, 1, d.offset);
    ls_copy_t *c = copy_with(&f, 0);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, 1, 1, d.offset, d.lsn);
    wait_applied(c, d.lsn);
    /* a value the closed generation's replay overwrites only if it applies k1-1's record again */
    ls_copy_stop(c);
    ls_store_meta_t m;
    ls_store_meta(ls_copy_store(c), &m);
    cr_assert_eq(ls_store_apply(ls_copy_store(c), poke, NULL, &m), 0);
    cr_assert_eq(ls_copy_start(c), 0);
    commit_n(db, 4, 2);
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(ls_db_close(db), 0);
    send_closed(&f, c, 1);
    wait_t w = {c, 1};
    cr_assert(ls_h_wait_for(replayed_reached, &w, 20000));
    void *v = NULL;
    size_t vl = 0;
    cr_assert_eq(ls_store_get(ls_copy_store(c), "k1-1", 4, &v, &vl), 0);
    cr_assert(vl == 5 && memcmp(v, "poked", 5) == 0, "records up to meta.lsn skipped: %.*s",
              (int) vl, (char *) v);
    free(v);
    cr_assert(has_key(c, "k5-1"), "the records after it applied");
    ls_copy_close(c);
    fx_free(&f);
}

Test(copy_shadow, damaged_record_stops_the_early_apply_before_its_transaction, .timeout = 60)
{
    fx_t f;
    fx_init(&f);
    ls_db_t *db = open_db(f.act);
    commit_n(db, 0, 3);
    ls_ctl_durable_t d3 = durable_of(f.act);
    commit_n(db, 3, 3);
    ls_ctl_durable_t d6 = durable_of(f.act);
    size_t n = 0;
    uint8_t *buf = ls_h_read_file(f.cur, &n);
    cr_assert_geq(n, d6.offset);
    buf[d3.offset + LS_REC_HEADER_SIZE + 1] ^= 0x20; /* a key byte of the fourth transaction */
    char path[PATHLEN];
    shadow_file(f.cp, 1, 1, path, sizeof(path));
    cr_assert_eq(ls_h_write_file(path, buf, d6.offset), 0);
    free(buf);
    ls_copy_t *c = copy_with(&f, 0);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, 1, 1, d6.offset, d6.lsn);
    wait_applied(c, d3.lsn);
    ls_copy_stats_t s;
    ls_copy_stats(c, &s);
    cr_assert_eq(s.applied_lsn, d3.lsn, "up to the last COMMIT before the bad record only");
    cr_assert(!has_key(c, "k3-0"));
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(ls_db_close(db), 0);
    send_closed(&f, c, 1); /* the closed generation brings the rest */
    wait_t w = {c, 1};
    cr_assert(ls_h_wait_for(replayed_reached, &w, 20000));
    ls_copy_stats(c, &s);
    cr_assert_eq(s.state, LS_COPY_HEALTHY, "%s", s.reason);
    expect_same_store(&f, c);
    ls_copy_close(c);
    fx_free(&f);
}

Test(copy_shadow, shadow_replaced_by_the_receiver_is_walked_again, .timeout = 60)
{
    fx_t f;
    fx_init(&f);
    ls_db_t *db = open_db(f.act);
    commit_n(db, 0, 3);
    ls_ctl_durable_t d1 = durable_of(f.act);
    commit_n(db, 3, 3);
    ls_ctl_durable_t d2 = durable_of(f.act);
    shadow_write(&f, 1, 1, d1.offset);
    ls_copy_t *c = copy_with(&f, 0);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, 1, 1, d1.offset, d1.lsn);
    wait_applied(c, d1.lsn);
    /* the receiver dropped its file and wrote a new one (another inode) */
    char path[PATHLEN];
    shadow_file(f.cp, 1, 1, path, sizeof(path));
    cr_assert_eq(unlink(path), 0);
    shadow_write(&f, 1, 1, d2.offset);
    ls_copy_shadow_durable(c, 1, 1, d2.offset, d2.lsn); /* the old file is too short */
    wait_applied(c, d2.lsn);
    cr_assert(has_key(c, "k5-1"));
    ls_copy_close(c);
    ls_db_close(db);
    fx_free(&f);
}

Test(copy_shadow, refused_activation_leaves_the_shadow_then_counts_its_generation_lost,
     .timeout = 120)
{
    fx_t f;
    fx_init(&f);
    cr_assert_eq(run_child(prepare_activation, &f, NULL), 0);
    uint64_t size, lsn;
    read_pos(&f, &size, &lsn);
    /* the old active closed generation 3 (at its close): the shadow holds only its beginning */
    ls_role_activate_options_t o = {
        .announced = {.last_generation = 3, .last_close_ns = close_time(f.act, 1, 3)}};
    ls_role_activate_report_t r;
    char err[1024] = "";
    cr_assert_eq(ls_role_activate(f.cp, &o, &r, err, sizeof(err)), LS_ESTATE);
    cr_assert(ls_h_contains(err, "would lose 1 generations") && ls_h_contains(err, "3..3"), "%s",
              err);
    char shadow[PATHLEN], p3[PATHLEN];
    shadow_file(f.cp, 1, 3, shadow, sizeof(shadow));
    gen_path(p3, sizeof(p3), f.cp, 1, 3);
    struct stat st;
    cr_assert(stat(shadow, &st) == 0 && stat(p3, &st) != 0, "refused: the shadow is untouched");
    o.max_loss = 1;
    cr_assert_eq(ls_role_activate(f.cp, &o, &r, err, sizeof(err)), 0, "%s", err);
    cr_assert(!r.lossless);
    cr_assert(r.loss.first_generation == 3 && r.loss.last_generation == 3 &&
                  r.loss.generations == 1,
              "generation 3 counted lost: only its first part is here");
    expect_activated(&f, &r, lsn);
    fx_free(&f);
}

/* Re-encodes a record with another generation's seed (the shadow of a new epoch). */
static int reepoch_record(void *ctx, const ls_record_t *r)
{
    forge_t *fg = ctx;
    fg->off += ls_record_encode(r, fg->seed, fg->out + fg->off);
    return 0;
}

Test(copy_shadow, early_apply_of_a_new_epochs_generation_keeps_the_held_epoch, .timeout = 60)
{
    fx_t f;
    fx_init(&f);
    build_active(f.act, 2, 3);
    ship(f.act, f.cp, 1, 2);
    ls_db_t *db = open_db(f.act);
    commit_n(db, 0, 3);
    ls_ctl_durable_t d = durable_of(f.act);
    cr_assert_eq(d.generation, 3);
    size_t n = 0;
    uint8_t *buf = ls_h_read_file(f.cur, &n);
    ls_gen_header_t h;
    cr_assert_eq(ls_gen_header_decode(buf, n, &h), 0);
    h.epoch = 2; /* generation 3 opens epoch 2 */
    uint8_t *out = malloc(d.offset);
    ls_gen_header_encode(&h, out);
    forge_t fg = {out, LS_GEN_HEADER_SIZE, ls_gen_seed(h.dbid, 2, 3)};
    ls_gen_expect_t ex = {.allow_open = true};
    ls_gen_verdict_t v;
    cr_assert_eq(ls_gen_scan(buf, d.offset, &ex, reepoch_record, &fg, NULL, &v), 0, "%s", v.msg);
    char path[PATHLEN];
    shadow_file(f.cp, 2, 3, path, sizeof(path));
    cr_assert_eq(ls_h_write_file(path, out, d.offset), 0);
    free(out);
    free(buf);
    ls_copy_t *c = copy_with(&f, 0);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, 2, 3, d.offset, d.lsn);
    wait_applied(c, d.lsn);
    ls_store_meta_t m;
    ls_store_meta(ls_copy_store(c), &m);
    cr_assert(m.generation == 3 && m.digest_generation == 2 && m.epoch == 1,
              "the meta keeps generation 2's epoch: %u", m.epoch);
    ls_copy_close(c);
    c = copy_with(&f, 0); /* a restart: the held chain from the store */
    ls_copy_resume_t r;
    ls_copy_resume_point(c, &r);
    cr_assert(r.epoch == 1 && r.next_generation == 3, "held: generation 2 of epoch 1 (%u, %llu)",
              r.epoch, (unsigned long long) r.next_generation);
    ls_copy_stats_t s;
    ls_copy_stats(c, &s);
    cr_assert_eq(s.applied_lsn, d.lsn);
    ls_copy_close(c);
    ls_db_close(db);
    fx_free(&f);
}

/* ---- bytes written but not yet durable: the store carries them ------------------------------- */

/* The store's carry record: *from, *end and the bytes (false: none). */
static bool carry_of(ls_copy_t *c, uint64_t *from, uint64_t *end, uint8_t **bytes)
{
    void *v = NULL;
    size_t len = 0;
    int rc = ls_store_aux_get(ls_copy_store(c), "shadow_carry", &v, &len);
    if (rc == LS_ENOENT) return false;
    cr_assert_eq(rc, 0);
    cr_assert_geq(len, 32);
    const uint8_t *p = v;
    *from = ls_get64(p + 16);
    *end = ls_get64(p + 24);
    cr_assert_eq(*end - *from, len - 32);
    *bytes = malloc(len - 32 + 1);
    memcpy(*bytes, p + 32, len - 32);
    free(v);
    return true;
}

/* The carry record holds exactly bytes [from, end) of the active's log in f->cur. */
static void expect_carry(const fx_t *f, ls_copy_t *c, uint64_t from, uint64_t end)
{
    uint64_t a = 0, b = 0;
    uint8_t *bytes = NULL;
    cr_assert(carry_of(c, &a, &b, &bytes), "the store carries the unsynced bytes");
    cr_assert(a == from && b == end, "carried [%llu, %llu), expected [%llu, %llu)",
              (unsigned long long) a, (unsigned long long) b, (unsigned long long) from,
              (unsigned long long) end);
    size_t n = 0;
    uint8_t *log = ls_h_read_file(f->cur, &n);
    cr_assert(log && n >= end);
    cr_assert_arr_eq(bytes, log + from, (size_t) (end - from));
    free(log);
    free(bytes);
}

/* The shadow of generation 1 holds bytes [0, end) of the active's log in f->cur. */
static void expect_shadow_holds(const fx_t *f, uint64_t end)
{
    char path[PATHLEN];
    shadow_file(f->cp, 1, 1, path, sizeof(path));
    size_t n = 0, m = 0;
    uint8_t *sh = ls_h_read_file(path, &n), *log = ls_h_read_file(f->cur, &m);
    cr_assert(sh && log && m >= end);
    cr_assert_geq(n, end, "the shadow holds %zu bytes, the store applied %llu", n,
                  (unsigned long long) end);
    cr_assert_arr_eq(sh, log, (size_t) end);
    free(sh);
    free(log);
}

static bool shadow_applied_reached(void *ctx)
{
    wait_t *w = ctx;
    ls_copy_stats_t s;
    ls_copy_stats(w->c, &s);
    return s.shadow_applied_lsn >= w->lsn || s.state == LS_COPY_FAILED;
}

/* The store applied the shadow up to lsn; acknowledged as applied only up to acked (the bytes
 * it carries are not reported durable and its commit's meta page is not synced). */
static void wait_carried(ls_copy_t *c, uint64_t lsn, uint64_t acked)
{
    ls_copy_stats_t s;
    wait_healthy(c, shadow_applied_reached, lsn, &s);
    cr_assert_eq(s.applied_lsn, acked, "acknowledged up to %llu, not %llu",
                 (unsigned long long) acked, (unsigned long long) s.applied_lsn);
}

/* On a fresh fixture f, three early-apply steps on written reports: [0, d1) and [0, d2) carried
 * whole (nothing reported durable), then d2 reported durable and [d2, d3) carried alone. The copy
 * is closed; *d2, *d3 and *lsn (d3's) for the caller, the active closed (generation 1 in f->cur).
 */
static void carry_three_steps(fx_t *f, uint64_t *d2o, uint64_t *d3o, uint64_t *lsn)
{
    ls_db_t *db;
    ls_ctl_durable_t d1;
    ls_copy_t *c = six_in_shadow(f, &db, &d1);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_written(c, d1.epoch, 1, d1.offset);
    wait_carried(c, d1.lsn, 0);
    expect_carry(f, c, 0, d1.offset);
    commit_n(db, 6, 4);
    ls_ctl_durable_t d2 = durable_of(f->act);
    shadow_write(f, d2.epoch, 1, d2.offset);
    ls_copy_shadow_written(c, d2.epoch, 1, d2.offset);
    wait_carried(c, d2.lsn, d1.lsn);  /* the first step's meta synced by the second commit */
    expect_carry(f, c, 0, d2.offset); /* the carry is dropped only once the bytes are synced */
    ls_copy_shadow_durable(c, d2.epoch, 1, d2.offset, d2.lsn);
    ls_copy_stats_t s;
    ls_copy_stats(c, &s);
    cr_assert_eq(s.applied_lsn, d2.lsn, "acknowledged once the carried bytes are durable");
    commit_n(db, 10, 5);
    ls_ctl_durable_t d3 = durable_of(f->act);
    shadow_write(f, d3.epoch, 1, d3.offset);
    ls_copy_shadow_written(c, d3.epoch, 1, d3.offset);
    wait_carried(c, d3.lsn, d2.lsn);
    expect_carry(f, c, d2.offset, d3.offset);
    ls_copy_stats(c, &s);
    cr_assert_eq(s.shadow_applies, 3);
    ls_copy_close(c);
    commit_n(db, 15, 2); /* never in the shadow */
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(ls_db_close(db), 0);
    gen_path(f->cur, sizeof(f->cur), f->act, 1, 1);
    *d2o = d2.offset;
    *d3o = d3.offset;
    *lsn = d3.lsn;
}

/* The copy reopened after damage to the shadow: the carried bytes are back, the closed
 * generation replays over what was applied (each transaction once) and the store equals the
 * active's. */
static void reopen_and_finish(fx_t *f, uint64_t d3, uint64_t lsn)
{
    ls_copy_t *c = copy_with(f, 0);
    expect_shadow_holds(f, d3);
    ls_copy_stats_t s;
    ls_copy_stats(c, &s);
    cr_assert_eq(s.applied_lsn, lsn);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, 1, 1, d3, lsn); /* walked again: the proof holds, nothing new */
    send_closed(f, c, 1);
    wait_t w = {c, 1};
    cr_assert(ls_h_wait_for(replayed_reached, &w, 20000));
    ls_copy_stats(c, &s);
    cr_assert_eq(s.state, LS_COPY_HEALTHY, "%s", s.reason);
    cr_assert_eq(s.shadow_applies, 0, "nothing applied twice from the shadow");
    expect_same_store(f, c);
    ls_copy_close(c);
}

/* carry_three_steps (a fresh fixture f); path (PATHLEN): the shadow's file, for the damage. */
static void carried(fx_t *f, uint64_t *d2, uint64_t *d3, uint64_t *lsn, char *path)
{
    carry_three_steps(f, d2, d3, lsn);
    shadow_file(f->cp, 1, 1, path, PATHLEN);
}

Test(copy_shadow, carried_bytes_lost_from_the_shadow_are_written_back_at_open, .timeout = 60)
{
    fx_t f;
    uint64_t d2, d3, lsn;
    char path[PATHLEN];
    carried(&f, &d2, &d3, &lsn, path);
    cr_assert_eq(truncate(path, (off_t) (d2 + (d3 - d2) / 2)), 0); /* a power cut's loss */
    reopen_and_finish(&f, d3, lsn);
    fx_free(&f);
}

Test(copy_shadow, carried_bytes_that_differ_in_the_shadow_are_written_back, .timeout = 60)
{
    fx_t f;
    uint64_t d2, d3, lsn;
    char path[PATHLEN];
    carried(&f, &d2, &d3, &lsn, path);
    int fd = open(path, O_WRONLY);
    cr_assert_geq(fd, 0);
    uint8_t junk[64];
    memset(junk, 0xa5, sizeof(junk)); /* old bytes of a recycled pool file, say */
    cr_assert_eq(pwrite(fd, junk, sizeof(junk), (off_t) (d3 - sizeof(junk))),
                 (ssize_t) sizeof(junk));
    close(fd);
    reopen_and_finish(&f, d3, lsn);
    fx_free(&f);
}

Test(copy_shadow, a_shadow_never_synced_is_made_again_from_the_carry, .timeout = 60)
{
    fx_t f;
    ls_db_t *db;
    ls_ctl_durable_t d;
    ls_copy_t *c = six_in_shadow(&f, &db, &d);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_written(c, d.epoch, 1, d.offset);
    wait_carried(c, d.lsn, 0);
    ls_copy_close(c);
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(ls_db_close(db), 0);
    gen_path(f.cur, sizeof(f.cur), f.act, 1, 1);
    char path[PATHLEN];
    shadow_file(f.cp, 1, 1, path, sizeof(path));
    cr_assert_eq(unlink(path), 0); /* its name was never made durable */
    reopen_and_finish(&f, d.offset, d.lsn);
    fx_free(&f);
}

/* Opens the copy of the activation's setup and reports bytes [0, size) of generation 3 written,
 * not durable: the fault point after the store's commit ends the process. */
static void written_body(void *arg)
{
    fx_t *f = arg;
    uint64_t size, lsn;
    read_pos(f, &size, &lsn);
    gen_path(f->cur, sizeof(f->cur), f->act, 1, 1);
    ls_copy_t *c = copy_with(f, 0);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_written(c, 1, 3, size);
    wait_t w = {c, lsn};
    ls_h_wait_for(shadow_applied_reached, &w, 20000); /* the fault point ends it before */
    ls_copy_close(c);
}

Test(copy_shadow, killed_after_the_carrying_commit_activation_closes_the_carried_bytes,
     .timeout = 120)
{
    fx_t f;
    fx_init(&f);
    cr_assert_eq(run_child(prepare_activation, &f, NULL), 0);
    cr_assert_eq(run_child(written_body, &f, "copy.shadow.after_commit=exit"), LS_FAULT_EXIT_CODE);
    uint64_t size, lsn;
    read_pos(&f, &size, &lsn);
    char path[PATHLEN];
    shadow_file(f.cp, 1, 3, path, sizeof(path));
    cr_assert_eq(truncate(path, (off_t) (size / 2)), 0); /* the shadow's bytes never synced */
    ls_role_activate_report_t r;
    activate_gen3(&f, lsn, &r);
    cr_assert(r.lossless);
    expect_activated(&f, &r, lsn);
    fx_free(&f);
}
