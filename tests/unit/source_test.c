/* source: directory view, history, resume plan, pipelined reader, removal rule, queue figures.
 * Log directories are built with genbuild (a chain of valid generations under their real names),
 * each generation's trailer patched to a distinct close time (BASE_NS + generation seconds). */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "core/core.h"
#include "genbuild.h"
#include "harness.h"
#include "source/source.h"
#include "source/source_int.h"

#define MAXG    128
#define BASE_NS 1795000000000000000ull
#define SEC     1000000000ull

typedef struct {
    char *dir;                                /* database directory */
    char logs[1024];                          /* its logs/ */
    uint64_t n;                               /* generations written: 1..n */
    uint64_t next_lsn;                        /* first LSN of the next generation */
    uint32_t epoch[MAXG + 1];                 /* epoch of each */
    uint8_t digest[MAXG + 1][LS_DIGEST_SIZE]; /* digest of each */
    uint64_t size[MAXG + 1];                  /* file size of each */
    uint64_t last_lsn[MAXG + 1];              /* last LSN of each */
} chain_t;

static chain_t *chain_new(void)
{
    chain_t *c = calloc(1, sizeof(*c));
    cr_assert(c);
    c->dir = ls_h_tmpdir("source");
    cr_assert(c->dir);
    snprintf(c->logs, sizeof(c->logs), "%s/logs", c->dir);
    cr_assert_eq(mkdir(c->logs, 0700), 0);
    c->next_lsn = 1;
    return c;
}

static void chain_free(chain_t *c)
{
    ls_h_rmtree(c->dir);
    free(c->dir);
    free(c);
}

static void gen_path(const chain_t *c, uint64_t g, char *out, size_t outlen)
{
    char name[LS_GEN_NAME_MAX];
    cr_assert_eq(ls_gen_name(name, sizeof(name), "E00", c->epoch[g], g), 0);
    snprintf(out, outlen, "%s/%s", c->logs, name);
}

/* Rewrites the trailer of a closed generation with close_ns (the digest does not cover it). */
static void patch_close(uint8_t *b, size_t len, uint64_t seed, uint64_t close_ns)
{
    ls_gen_info_t info;
    ls_gen_verdict_t v;
    cr_assert_eq(ls_gen_scan(b, len, NULL, NULL, NULL, &info, &v), 0, "%s", v.msg);
    info.trailer.close_ns = close_ns;
    ls_gen_trailer_encode(&info.trailer, seed, b + len - LS_GEN_TRAILER_SIZE);
}

/* Appends generation n+1 of epoch e with `puts` records of vsize-byte values. */
static void add_gen(chain_t *c, uint32_t e, int puts, size_t vsize)
{
    uint64_t g = ++c->n;
    cr_assert_leq(g, MAXG);
    ls_h_gen_spec_t spec;
    ls_h_gen_spec_default(&spec, g, c->next_lsn);
    spec.epoch = e;
    spec.prev_digest = g > 1 ? c->digest[g - 1] : NULL;
    spec.first_txid = g * 100;
    ls_h_gen_t *b = ls_h_gen_new(&spec);
    char *val = malloc(vsize + 1);
    memset(val, 'a' + (int) (g % 26), vsize);
    for (int i = 0; i < puts; i++) {
        char key[32];
        int kl = snprintf(key, sizeof(key), "k%llu-%d", (unsigned long long) g, i);
        ls_h_gen_put(b, key, (size_t) kl, val, vsize);
    }
    free(val);
    ls_h_gen_commit(b);
    ls_h_gen_close(b);
    size_t len;
    uint8_t *bytes = ls_h_gen_copy(b, &len);
    patch_close(bytes, len, ls_h_gen_seed(b), BASE_NS + g * SEC);
    memcpy(c->digest[g], ls_h_gen_digest(b), LS_DIGEST_SIZE);
    c->epoch[g] = e;
    c->size[g] = len;
    c->last_lsn[g] = c->next_lsn + (uint64_t) puts; /* puts + one COMMIT */
    c->next_lsn = c->last_lsn[g] + 1;
    ls_h_gen_free(b);
    char path[PATH_MAX];
    gen_path(c, g, path, sizeof(path));
    cr_assert_eq(ls_h_write_file(path, bytes, len), 0);
    free(bytes);
}

static void add_gens(chain_t *c, int count, uint32_t e)
{
    for (int i = 0; i < count; i++)
        add_gen(c, e, 2, 64);
}

static void write_text(const chain_t *c, const char *name, const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", c->logs, name);
    cr_assert_eq(ls_h_write_file(path, text, strlen(text)), 0);
}

/* XORs byte `at` of generation g's file with mask: from the start, or from the end when
 * negative (-1: the last byte). */
static void damage(const chain_t *c, uint64_t g, long at, uint8_t mask)
{
    char path[PATH_MAX];
    gen_path(c, g, path, sizeof(path));
    size_t len;
    uint8_t *b = ls_h_read_file(path, &len);
    cr_assert_not_null(b, "%s", path);
    b[at < 0 ? (long) len + at : at] ^= mask;
    cr_assert_eq(ls_h_write_file(path, b, len), 0);
    free(b);
}

static ls_source_t *open_src(const chain_t *c)
{
    ls_source_options_t o = {.db_dir = c->dir};
    ls_source_t *s = NULL;
    char err[LS_SOURCE_ERRLEN] = "";
    cr_assert_eq(ls_source_open(&o, &s, err, sizeof(err)), 0, "%s", err);
    return s;
}

static void rescan(ls_source_t *s)
{
    char err[LS_SOURCE_ERRLEN] = "";
    cr_assert_eq(ls_source_rescan(s, err, sizeof(err)), 0, "%s", err);
}

static void hex8(const uint8_t *d, char out[17])
{
    ls_hex(d, 8, out);
}

/* ---- directory view and history --------------------------------------------------------- */

Test(source, view_lists_closed_generations_only)
{
    chain_t *c = chain_new();
    add_gens(c, 3, 1);
    write_text(c, "E00.log", "the current log: never read, not even its header");
    write_text(c, "E00-zz.log", "foreign");
    write_text(c, "E01-00000001-0000000000000009.log", "another prefix");
    write_text(c, "E00-00000001-0000000000000009.log.part", "not a closed name");
    write_text(c, "notes.txt", "foreign");
    ls_source_t *s = open_src(c);
    ls_source_view_t v;
    ls_source_view(s, &v);
    cr_assert_eq(v.count, 3);
    cr_assert_eq(v.oldest, 1);
    cr_assert_eq(v.newest, 3);
    cr_assert_eq(v.epoch, 1);
    cr_assert_eq(v.history_len, 0);

    add_gens(c, 2, 1);
    ls_source_view(s, &v);
    cr_assert_eq(v.newest, 3, "nothing changes before a rescan");
    rescan(s);
    ls_source_view(s, &v);
    cr_assert_eq(v.count, 5);
    cr_assert_eq(v.newest, 5);
    cr_assert(ls_source_has(s, 4, NULL));
    cr_assert_not(ls_source_has(s, 9, NULL));
    ls_source_free(s);
    chain_free(c);
}

Test(source, bad_prefix_and_missing_dir)
{
    ls_source_options_t o = {.db_dir = "/nonexistent/logship", .prefix = "E-0"};
    ls_source_t *s = NULL;
    char err[LS_SOURCE_ERRLEN] = "";
    cr_assert_eq(ls_source_open(&o, &s, err, sizeof(err)), LS_EINVAL);
    cr_assert(ls_h_contains(err, "E-0"), "%s", err);
    o.prefix = NULL;
    cr_assert_eq(ls_source_open(&o, &s, err, sizeof(err)), LS_ENOENT, "%s", err);
    cr_assert(ls_h_contains(err, "/nonexistent/logship/logs"), "%s", err);
}

Test(source, history_gives_epochs)
{
    chain_t *c = chain_new();
    add_gens(c, 3, 1);
    add_gens(c, 2, 2);
    write_text(c, "history", "# epoch first_generation\n1 1\n\n2\t4\n");
    ls_source_t *s = open_src(c);
    ls_source_view_t v;
    ls_source_view(s, &v);
    cr_assert_eq(v.epoch, 2);
    cr_assert_eq(v.history_len, 2);
    cr_assert_eq(ls_source_epoch_of(s, 3), 1);
    cr_assert_eq(ls_source_epoch_of(s, 4), 2);
    char err[LS_SOURCE_ERRLEN] = "";
    cr_assert_eq(ls_source_remove_upto(s, 3, err, sizeof(err)), 3, "%s", err);
    cr_assert_eq(ls_source_epoch_of(s, 2), 1, "a removed generation's epoch comes from history");
    cr_assert_eq(ls_source_epoch_of(s, 9), 2);
    ls_source_free(s);
    chain_free(c);
}

Test(source, malformed_history_names_file_and_line)
{
    chain_t *c = chain_new();
    add_gens(c, 2, 1);
    write_text(c, "history", "1 1\n2 x\n");
    ls_source_options_t o = {.db_dir = c->dir};
    ls_source_t *s = NULL;
    char err[LS_SOURCE_ERRLEN] = "";
    cr_assert_eq(ls_source_open(&o, &s, err, sizeof(err)), LS_ECONFIG);
    char want[1200];
    snprintf(want, sizeof(want), "%s/history:2:", c->logs);
    cr_assert(ls_h_contains(err, want), "%s", err);

    write_text(c, "history", "1 1\n");
    s = open_src(c);
    write_text(c, "history", "1 1\n3 5\n2 6\n"); /* epochs must increase */
    cr_assert_eq(ls_source_rescan(s, err, sizeof(err)), LS_ECONFIG);
    snprintf(want, sizeof(want), "%s/history:3: epoch does not increase", c->logs);
    cr_assert(ls_h_contains(err, want), "%s", err);
    ls_source_view_t v;
    ls_source_view(s, &v);
    cr_assert_eq(v.newest, 2, "a failed rescan keeps the previous view");
    ls_source_free(s);
    chain_free(c);
}

Test(source, file_epoch_must_match_history)
{
    chain_t *c = chain_new();
    add_gens(c, 2, 1);
    add_gens(c, 1, 2); /* epoch 2 but no history line for it */
    ls_source_options_t o = {.db_dir = c->dir};
    ls_source_t *s = NULL;
    char err[LS_SOURCE_ERRLEN] = "";
    cr_assert_eq(ls_source_open(&o, &s, err, sizeof(err)), LS_ELINEAGE, "%s", err);
    cr_assert(ls_h_contains(err, "E00-00000002-0000000000000003.log: epoch 2"), "%s", err);
    chain_free(c);
}

/* ---- resume plan --------------------------------------------------------------------------- */

static int plan(ls_source_t *s, uint32_t epoch, uint64_t next, const uint8_t *digest,
                ls_ship_plan_t *p, char *err)
{
    ls_resume_t r = {.epoch = epoch, .next = next};
    if (digest) memcpy(r.digest, digest, LS_DIGEST_SIZE);
    return ls_source_plan(s, &r, p, err, LS_SOURCE_ERRLEN);
}

Test(source, plan_fresh_and_matching)
{
    chain_t *c = chain_new();
    ls_source_t *s = open_src(c);
    ls_ship_plan_t p;
    char err[LS_SOURCE_ERRLEN];
    cr_assert_eq(plan(s, 0, 1, NULL, &p, err), 0, "%s", err);
    cr_assert_eq(p.ready, 0, "nothing closed yet");
    add_gens(c, 5, 1);
    rescan(s);
    cr_assert_eq(plan(s, 0, 1, NULL, &p, err), 0, "%s", err);
    cr_assert_eq(p.first, 1);
    cr_assert_eq(p.ready, 5);
    cr_assert_eq(plan(s, 1, 4, c->digest[3], &p, err), 0, "%s", err);
    cr_assert_eq(p.first, 4);
    cr_assert_eq(p.ready, 2);
    cr_assert_eq(p.epoch, 1);
    cr_assert_eq(plan(s, 1, 6, c->digest[5], &p, err), 0, "%s", err);
    cr_assert_eq(p.ready, 0, "up to date: waits for generation 6");
    cr_assert_eq(plan(s, 0, 0, NULL, &p, err), LS_EPROTO);
    cr_assert_eq(plan(s, 1, 1, c->digest[1], &p, err), LS_EPROTO, "a digest with nothing held");
    ls_source_free(s);
    chain_free(c);
}

Test(source, plan_mismatching_digest_diverges)
{
    chain_t *c = chain_new();
    add_gens(c, 5, 1);
    ls_source_t *s = open_src(c);
    uint8_t other[LS_DIGEST_SIZE];
    memcpy(other, c->digest[3], LS_DIGEST_SIZE);
    other[0] ^= 0x5a;
    ls_ship_plan_t p;
    char err[LS_SOURCE_ERRLEN];
    cr_assert_eq(plan(s, 1, 4, other, &p, err), LS_EDIVERGED);
    char a[17], b[17];
    hex8(other, a);
    hex8(c->digest[3], b);
    cr_assert(ls_h_contains(err, "generation 3 diverged"), "%s", err);
    cr_assert(ls_h_contains(err, a) && ls_h_contains(err, b), "%s", err);
    cr_assert_not(p.newer_epoch);

    cr_assert_eq(plan(s, 1, 7, c->digest[5], &p, err), LS_EDIVERGED, "beyond our newest + 1");
    cr_assert(ls_h_contains(err, "never wrote"), "%s", err);
    ls_source_free(s);
    chain_free(c);
}

Test(source, plan_checks_epoch_of_previous)
{
    chain_t *c = chain_new();
    add_gens(c, 3, 1);
    add_gens(c, 2, 2);
    write_text(c, "history", "1 1\n2 4\n");
    ls_source_t *s = open_src(c);
    ls_ship_plan_t p;
    char err[LS_SOURCE_ERRLEN];
    cr_assert_eq(plan(s, 1, 4, c->digest[3], &p, err), 0, "%s", err); /* chain across epochs */
    cr_assert_eq(plan(s, 2, 5, c->digest[4], &p, err), 0, "%s", err);
    cr_assert_eq(plan(s, 2, 4, c->digest[3], &p, err), LS_EDIVERGED);
    cr_assert(ls_h_contains(err, "generation 3 of epoch 2"), "%s", err);
    cr_assert_not(p.newer_epoch);
    /* A seeded copy that does not know generation 3's epoch (its hand-off named 4's): epoch 0,
     * the digest decides. */
    cr_assert_eq(plan(s, 0, 4, c->digest[3], &p, err), 0, "%s", err);
    cr_assert_eq(p.first, 4);
    uint8_t other[LS_DIGEST_SIZE];
    memcpy(other, c->digest[3], LS_DIGEST_SIZE);
    other[0] ^= 0x5a;
    cr_assert_eq(plan(s, 0, 4, other, &p, err), LS_EDIVERGED);
    cr_assert(ls_h_contains(err, "generation 3 diverged"), "%s", err);
    cr_assert_eq(plan(s, 3, 6, c->digest[5], &p, err), LS_EDIVERGED);
    cr_assert(p.newer_epoch, "%s", err);
    /* A target ahead of this node in a newer epoch (the new active wrote on): newer_epoch too,
     * not "generations this active never wrote". */
    cr_assert_eq(plan(s, 3, 9, c->digest[5], &p, err), LS_EDIVERGED);
    cr_assert(p.newer_epoch, "%s", err);
    cr_assert(ls_h_contains(err, "generation 8 of epoch 3, newer than this active's epoch 2"), "%s",
              err);
    ls_source_free(s);
    chain_free(c);
}

Test(source, plan_removed_generation_needs_seed)
{
    chain_t *c = chain_new();
    add_gens(c, 6, 1);
    ls_source_t *s = open_src(c);
    char err[LS_SOURCE_ERRLEN] = "";
    cr_assert_eq(ls_source_remove_upto(s, 3, err, sizeof(err)), 3, "%s", err);
    ls_ship_plan_t p;
    cr_assert_eq(plan(s, 1, 2, c->digest[1], &p, err), LS_EGAP);
    cr_assert(p.need_seed);
    cr_assert(ls_h_contains(err, "generation 2 was removed on the active"), "%s", err);
    cr_assert(ls_h_contains(err, "needs a seed"), "%s", err);
    cr_assert_eq(plan(s, 0, 1, NULL, &p, err), LS_EGAP);
    cr_assert(p.need_seed);
    /* 3 was removed, but 4's header carries its digest. */
    cr_assert_eq(plan(s, 1, 4, c->digest[3], &p, err), 0, "%s", err);
    cr_assert_eq(p.ready, 3);
    cr_assert_eq(plan(s, 1, 4, c->digest[2], &p, err), LS_EDIVERGED);
    cr_assert(ls_h_contains(err, "generation 3 diverged"), "%s", err);
    cr_assert(ls_h_contains(err, "header of the next generation"), "%s", err);
    ls_source_free(s);
    chain_free(c);
}

Test(source, plan_gap_names_missing_generation)
{
    chain_t *c = chain_new();
    add_gens(c, 6, 1);
    ls_source_t *s = open_src(c);
    char path[PATH_MAX];
    gen_path(c, 4, path, sizeof(path));
    cr_assert_eq(unlink(path), 0);
    rescan(s);
    ls_ship_plan_t p;
    char err[LS_SOURCE_ERRLEN];
    cr_assert_eq(plan(s, 1, 2, c->digest[1], &p, err), LS_EGAP);
    cr_assert_not(p.need_seed);
    cr_assert(ls_h_contains(err, "generation 4 is missing"), "%s", err);
    cr_assert_eq(plan(s, 1, 5, c->digest[4], &p, err), 0, "%s", err); /* past the hole */
    cr_assert_eq(plan(s, 1, 4, c->digest[3], &p, err), LS_EGAP);
    cr_assert(ls_h_contains(err, "generation 4 is missing"), "%s", err);
    ls_source_free(s);
    chain_free(c);
}

/* ---- pipelined reader ---------------------------------------------------------------------- */

static void notify(void *ctx)
{
    __atomic_add_fetch((int *) ctx, 1, __ATOMIC_SEQ_CST);
}

typedef struct {
    ls_reader_t *r;
    bool (*pred)(const ls_reader_stats_t *st, uint64_t arg);
    uint64_t arg;
} waitst_t;

static bool st_cond(void *ctx)
{
    waitst_t *w = ctx;
    ls_reader_stats_t st;
    ls_reader_stats(w->r, &st);
    return w->pred(&st, w->arg);
}

static bool waiting_space(const ls_reader_stats_t *st, uint64_t arg)
{
    (void) arg;
    return st->waiting_space;
}

static bool waiting_gen(const ls_reader_stats_t *st, uint64_t arg)
{
    return st->waiting_gen && st->next == arg;
}

static bool failed(const ls_reader_stats_t *st, uint64_t arg)
{
    (void) arg;
    return st->error != 0;
}

static void wait_reader(ls_reader_t *r, bool (*pred)(const ls_reader_stats_t *, uint64_t),
                        uint64_t arg)
{
    waitst_t w = {r, pred, arg};
    cr_assert(ls_h_wait_for(st_cond, &w, 10000), "reader condition not reached");
}

typedef struct {
    ls_reader_t *r;
    const ls_gen_buf_t *g;
    int rc;
} nextw_t;

static bool next_cond(void *ctx)
{
    nextw_t *w = ctx;
    w->rc = ls_reader_next(w->r, &w->g);
    return w->rc != LS_EBUSY;
}

/* Waits for the next generation (or the reader's error): returns its code. */
static int next_gen(ls_reader_t *r, const ls_gen_buf_t **g)
{
    nextw_t w = {r, NULL, 0};
    cr_assert(ls_h_wait_for(next_cond, &w, 10000), "no generation within 10 s");
    *g = w.g;
    return w.rc;
}

static void expect_gen(const chain_t *c, const ls_gen_buf_t *g, uint64_t want)
{
    cr_assert_eq(g->generation, want);
    cr_assert_eq(g->epoch, c->epoch[want]);
    cr_assert_eq(g->size, c->size[want]);
    cr_assert_eq(g->last_lsn, c->last_lsn[want]);
    cr_assert_eq(g->close_ns, BASE_NS + want * SEC);
    cr_assert_eq(memcmp(g->digest, c->digest[want], LS_DIGEST_SIZE), 0, "digest of %llu",
                 (unsigned long long) want);
    char path[PATH_MAX];
    gen_path(c, want, path, sizeof(path));
    size_t len;
    uint8_t *disk = ls_h_read_file(path, &len);
    cr_assert(disk && len == g->size && memcmp(disk, g->bytes, len) == 0);
    free(disk);
}

/* Waits for the next generation, checks it is want, whole (expect_gen), and releases it. */
static void take(const chain_t *c, ls_reader_t *r, uint64_t want)
{
    const ls_gen_buf_t *g;
    cr_assert_eq(next_gen(r, &g), 0, "%s", ls_reader_error(r));
    expect_gen(c, g, want);
    ls_reader_release(r, g);
}

Test(source, reader_delivers_in_order_and_waits_for_new_generations)
{
    chain_t *c = chain_new();
    add_gens(c, 10, 1);
    ls_source_t *s = open_src(c);
    int notes = 0;
    ls_reader_t *r = NULL;
    cr_assert_eq(ls_reader_start(s, 3, NULL, notify, &notes, &r), 0);
    const ls_gen_buf_t *g;
    for (uint64_t want = 3; want <= 10; want++)
        take(c, r, want);
    wait_reader(r, waiting_gen, 11);
    cr_assert_eq(ls_reader_next(r, &g), LS_EBUSY);
    add_gens(c, 2, 1);
    rescan(s); /* wakes the thread */
    for (uint64_t want = 11; want <= 12; want++)
        take(c, r, want);
    cr_assert_geq(__atomic_load_n(&notes, __ATOMIC_SEQ_CST), 10);
    ls_reader_stats_t st;
    ls_reader_stats(r, &st);
    cr_assert_eq(st.delivered, 10);
    cr_assert_eq(st.buffered_gens, 0);
    cr_assert_eq(st.buffered_bytes, 0);
    cr_assert_leq(st.peak_gens, 2, "default bound of 2 generations");
    ls_reader_stop(r);
    ls_source_free(s);
    chain_free(c);
}

/* A consumer that takes and releases each generation the moment it is told (here inside the
 * notify callback, on the reader's own thread: the tightest race there is). A generation read
 * whole in one piece is handed out complete; the reader must not touch it after handing it out
 * (it did: ASan found a write to a released one in the demote test). */
typedef struct {
    pthread_mutex_t mu; /* the callback and the test's own first call */
    ls_reader_t *r;
    int taken;
    uint64_t last;
} eager_t;

static void eager(void *ctx)
{
    eager_t *e = ctx;
    const ls_gen_buf_t *g;
    pthread_mutex_lock(&e->mu);
    while (e->r && ls_reader_next(e->r, &g) == 0) {
        if (g->generation == e->last + 1 && ls_gen_buf_avail(g) == g->size) e->last++;
        ls_reader_release(e->r, g);
        __atomic_add_fetch(&e->taken, 1, __ATOMIC_SEQ_CST);
    }
    pthread_mutex_unlock(&e->mu);
}

static bool eager_done(void *ctx)
{
    return __atomic_load_n(&((eager_t *) ctx)->taken, __ATOMIC_SEQ_CST) >= 20;
}

Test(source, a_generation_released_as_soon_as_it_is_handed_out)
{
    chain_t *c = chain_new();
    add_gens(c, 20, 1);
    ls_source_t *s = open_src(c);
    static eager_t e; /* read by the reader's thread from the first callback on */
    e = (eager_t){.mu = PTHREAD_MUTEX_INITIALIZER};
    ls_reader_t *r = NULL;
    pthread_mutex_lock(&e.mu);
    cr_assert_eq(ls_reader_start(s, 1, NULL, eager, &e, &r), 0);
    e.r = r;
    pthread_mutex_unlock(&e.mu);
    eager(&e); /* what was handed out before e.r was set */
    cr_assert(ls_h_wait_for(eager_done, &e, 10000), "took %d of 20", e.taken);
    cr_assert_eq(e.last, 20, "in order and whole");
    ls_reader_stop(r);
    ls_source_free(s);
    chain_free(c);
}

Test(source, reader_memory_stays_bounded_with_a_backlog)
{
    chain_t *c = chain_new();
    for (int i = 0; i < 100; i++)
        add_gen(c, 1, 4, 4096); /* ~16.6 KiB each */
    ls_source_t *s = open_src(c);
    int notes = 0;
    /* Bound by count: 3 generations. */
    ls_reader_options_t o = {.max_gens = 3, .max_bytes = 1u << 20};
    ls_reader_t *r = NULL;
    cr_assert_eq(ls_reader_start(s, 1, &o, notify, &notes, &r), 0);
    wait_reader(r, waiting_space, 0);
    ls_reader_stats_t st;
    ls_reader_stats(r, &st);
    cr_assert_eq(st.buffered_gens, 3);
    cr_assert_eq(st.read, 3);
    cr_assert_eq(st.buffered_bytes, c->size[1] + c->size[2] + c->size[3]);
    ls_reader_stop(r); /* frees what was never consumed */

    /* Bound by bytes: room for two and a half generations, consumer holds what it takes. */
    o = (ls_reader_options_t){.max_gens = 100, .max_bytes = c->size[1] * 5 / 2};
    cr_assert_eq(ls_reader_start(s, 1, &o, notify, &notes, &r), 0);
    wait_reader(r, waiting_space, 0);
    ls_reader_stats(r, &st);
    cr_assert_eq(st.buffered_gens, 2);
    cr_assert_leq(st.buffered_bytes, o.max_bytes);
    const ls_gen_buf_t *held[2];
    cr_assert_eq(next_gen(r, &held[0]), 0);
    cr_assert_eq(next_gen(r, &held[1]), 0);
    ls_reader_stats(r, &st);
    cr_assert_eq(st.buffered_gens, 2, "handed out but not released still counts");
    cr_assert_eq(st.read, 2);
    ls_reader_release(r, held[1]); /* any order */
    ls_reader_release(r, held[0]);
    for (uint64_t want = 3; want <= 100; want++) {
        const ls_gen_buf_t *g;
        cr_assert_eq(next_gen(r, &g), 0, "%s", ls_reader_error(r));
        cr_assert_eq(g->generation, want);
        cr_assert_eq(memcmp(g->digest, c->digest[want], LS_DIGEST_SIZE), 0);
        ls_reader_release(r, g);
    }
    ls_reader_stats(r, &st);
    cr_assert_leq(st.peak_bytes, o.max_bytes);
    cr_assert_leq(st.peak_gens, 2);
    cr_assert_eq(st.read, 100);
    ls_reader_stop(r);
    ls_source_free(s);
    chain_free(c);
}

Test(source, reader_reads_an_oversized_generation_alone)
{
    chain_t *c = chain_new();
    add_gens(c, 4, 1);
    ls_source_t *s = open_src(c);
    int notes = 0;
    ls_reader_options_t o = {.max_gens = 10, .max_bytes = 100}; /* smaller than any generation */
    ls_reader_t *r = NULL;
    cr_assert_eq(ls_reader_start(s, 1, &o, notify, &notes, &r), 0);
    for (uint64_t want = 1; want <= 4; want++) {
        const ls_gen_buf_t *g;
        cr_assert_eq(next_gen(r, &g), 0, "%s", ls_reader_error(r));
        cr_assert_eq(g->generation, want);
        if (want < 4) wait_reader(r, waiting_space, 0);
        ls_reader_stats_t st;
        ls_reader_stats(r, &st);
        cr_assert_eq(st.buffered_gens, 1, "one at a time");
        ls_reader_release(r, g);
    }
    ls_reader_stats_t st;
    ls_reader_stats(r, &st);
    cr_assert_eq(st.peak_gens, 1);
    cr_assert_eq(st.peak_bytes, c->size[1]);
    cr_assert_geq(__atomic_load_n(&notes, __ATOMIC_SEQ_CST), 4);
    ls_reader_stop(r);
    ls_source_free(s);
    chain_free(c);
}

Test(source, reader_stops_on_a_damaged_generation)
{
    chain_t *c = chain_new();
    add_gens(c, 5, 1);
    damage(c, 3, LS_GEN_HEADER_SIZE + 40, 0x01); /* inside the first record */
    ls_source_t *s = open_src(c);
    int notes = 0;
    ls_reader_t *r = NULL;
    ls_reader_options_t o = {.max_gens = 8};
    cr_assert_eq(ls_reader_start(s, 1, &o, notify, &notes, &r), 0);
    wait_reader(r, failed, 0);
    const ls_gen_buf_t *g;
    for (uint64_t want = 1; want <= 2; want++) {
        cr_assert_eq(ls_reader_next(r, &g), 0, "the good ones before it are delivered");
        expect_gen(c, g, want);
        ls_reader_release(r, g);
    }
    int rc = ls_reader_next(r, &g);
    cr_assert_eq(rc, LS_ERECCKSUM, "%s", ls_err_name(rc));
    cr_assert(ls_h_contains(ls_reader_error(r), "generation 3"), "%s", ls_reader_error(r));
    cr_assert(ls_h_contains(ls_reader_error(r), "not shipped"), "%s", ls_reader_error(r));
    cr_assert_eq(ls_reader_next(r, &g), LS_ERECCKSUM, "sticky");
    ls_reader_stats_t st;
    ls_reader_stats(r, &st);
    cr_assert_eq(st.delivered, 2);
    cr_assert_eq(st.read, 2);
    cr_assert_eq(st.buffered_bytes, 0);
    ls_reader_stop(r);
    ls_source_free(s);
    chain_free(c);
}

static bool verified_cond(void *ctx)
{
    const ls_gen_buf_t *g = ctx;
    return ls_gen_buf_avail(g) == g->size;
}

/* A record changed and its checksum redone: damage only the digest sees (docs/SOURCE.md, "What
 * the active verifies"). By default the reader ships it, with its trailer's digest and nothing
 * hashed (the target computes the digest and asks again); verifying FULL, or that one generation
 * (full_gen: what ship asks after a target asked again for damage), finds it and stops there as
 * for any damaged generation. */
Test(source, reader_checks_the_digest_only_when_verifying_full)
{
    chain_t *c = chain_new();
    add_gens(c, 5, 1);
    char path[PATH_MAX];
    gen_path(c, 3, path, sizeof(path));
    size_t len;
    uint8_t *b = ls_h_read_file(path, &len);
    cr_assert_not_null(b);
    ls_h_gen_change_resealed(b, len, 0, 0x01);
    cr_assert_eq(ls_h_write_file(path, b, len), 0);
    ls_source_t *s = open_src(c);
    int notes = 0;
    ls_reader_t *r = NULL;
    const ls_gen_buf_t *g;
    ls_reader_stats_t st;

    cr_assert_eq(ls_reader_start(s, 1, NULL, notify, &notes, &r), 0);
    for (uint64_t want = 1; want <= 5; want++) {
        cr_assert_eq(next_gen(r, &g), 0, "%s", ls_reader_error(r));
        cr_assert(ls_h_wait_for(verified_cond, (void *) g, 10000));
        cr_assert_eq(g->generation, want);
        cr_assert_eq(memcmp(g->digest, c->digest[want], LS_DIGEST_SIZE), 0, "the trailer's");
        if (want == 3) cr_assert_eq(memcmp(g->bytes, b, len), 0, "the changed bytes go");
        ls_reader_release(r, g);
    }
    ls_reader_stats(r, &st);
    cr_assert_eq(st.read, 5);
    cr_assert_eq(st.hashed, 0, "no SHA-256 by default");
    ls_reader_stop(r);

    ls_reader_options_t o = {.verify = LS_READER_VERIFY_FULL, .max_gens = 8};
    cr_assert_eq(ls_reader_start(s, 1, &o, notify, &notes, &r), 0);
    wait_reader(r, failed, 0);
    for (uint64_t want = 1; want <= 2; want++)
        take(c, r, want);
    int rc = ls_reader_next(r, &g);
    cr_assert_eq(rc, LS_EDIGEST, "%s", ls_err_name(rc));
    const char *why = ls_reader_error(r);
    cr_assert(ls_h_contains(why, "generation 3") && ls_h_contains(why, "not shipped") &&
                  ls_h_contains(why, "digest mismatch"),
              "%s", why);
    ls_reader_stats(r, &st);
    cr_assert_eq(st.hashed, 2);
    ls_reader_stop(r);

    o = (ls_reader_options_t){.full_gen = 3}; /* asked again for 3 after damage */
    cr_assert_eq(ls_reader_start(s, 3, &o, notify, &notes, &r), 0);
    cr_assert_eq(next_gen(r, &g), LS_EDIGEST, "%s", ls_reader_error(r));
    cr_assert(ls_h_contains(ls_reader_error(r), "generation 3"), "%s", ls_reader_error(r));
    ls_reader_stop(r);

    o = (ls_reader_options_t){.full_gen = 4}; /* an intact one: hashed, and only that one */
    cr_assert_eq(ls_reader_start(s, 4, &o, notify, &notes, &r), 0);
    take(c, r, 4);
    take(c, r, 5);
    ls_reader_stats(r, &st);
    cr_assert_eq(st.hashed, 1);
    ls_reader_stop(r);
    free(b);
    ls_source_free(s);
    chain_free(c);
}

/* Stream while verifying: a generation larger than one read piece is handed out after its first
 * piece passed, grows as a prefix of the file, and is complete (digest and all) at its size. */
Test(source, reader_hands_out_a_large_generation_while_verifying_it)
{
    chain_t *c = chain_new();
    add_gen(c, 1, 900, 1000); /* ~0.9 MB: several pieces */
    add_gens(c, 1, 1);
    cr_assert_gt(c->size[1], 3 * 256 * 1024);
    ls_source_t *s = open_src(c);
    int notes = 0;
    ls_reader_t *r = NULL;
    cr_assert_eq(ls_reader_start(s, 1, NULL, notify, &notes, &r), 0);
    const ls_gen_buf_t *g;
    cr_assert_eq(next_gen(r, &g), 0, "%s", ls_reader_error(r));
    cr_assert_eq(g->generation, 1);
    cr_assert_eq(g->size, c->size[1]);
    cr_assert_eq(g->close_ns, BASE_NS + SEC, "known before the bytes: GEN_BEGIN carries it");
    uint64_t seen = ls_gen_buf_avail(g);
    cr_assert_gt(seen, 0);
    char path[PATH_MAX];
    gen_path(c, 1, path, sizeof(path));
    size_t len;
    uint8_t *disk = ls_h_read_file(path, &len);
    cr_assert_eq(memcmp(disk, g->bytes, seen), 0, "what is available is the file's prefix");
    free(disk);
    cr_assert(ls_h_wait_for(verified_cond, (void *) g, 10000), "never verified whole");
    expect_gen(c, g, 1);
    ls_reader_release(r, g);
    take(c, r, 2);
    ls_reader_stop(r);
    ls_source_free(s);
    chain_free(c);
}

/* Ship releases the generation it is sending when it stops the reader, possibly while the
 * reader's thread still reads into it: the thread frees it once done (under ASan a free too
 * early is a use after free), and the reader stops promptly. */
Test(source, releasing_a_generation_still_being_verified_then_stopping_is_safe)
{
    chain_t *c = chain_new();
    add_gen(c, 1, 6000, 1000); /* ~6 MB: many pieces */
    ls_source_t *s = open_src(c);
    for (int round = 0; round < 3; round++) {
        int notes = 0;
        ls_reader_t *r = NULL;
        cr_assert_eq(ls_reader_start(s, 1, NULL, notify, &notes, &r), 0);
        const ls_gen_buf_t *g;
        cr_assert_eq(next_gen(r, &g), 0, "%s", ls_reader_error(r));
        cr_assert_eq(g->generation, 1);
        uint64_t seen = ls_gen_buf_avail(g);
        cr_assert(seen > 0 && seen <= g->size);
        ls_reader_release(r, g);
        ls_reader_stop(r);
    }
    ls_source_free(s);
    chain_free(c);
}

/* Damage past the first piece: the reader fails there; a generation it had queued but not
 * handed out is withdrawn (never delivered); the good one before it is. */
Test(source, reader_withdraws_a_generation_damaged_past_its_first_piece)
{
    chain_t *c = chain_new();
    add_gens(c, 1, 1);
    add_gen(c, 1, 900, 1000);
    damage(c, 2, -(long) (LS_GEN_TRAILER_SIZE + 500), 0x01); /* inside the last record */
    ls_source_t *s = open_src(c);
    int notes = 0;
    ls_reader_t *r = NULL;
    ls_reader_options_t o = {.max_gens = 8};
    cr_assert_eq(ls_reader_start(s, 1, &o, notify, &notes, &r), 0);
    wait_reader(r, failed, 0);
    const ls_gen_buf_t *g;
    cr_assert_eq(ls_reader_next(r, &g), 0);
    expect_gen(c, g, 1);
    ls_reader_release(r, g);
    int rc = ls_reader_next(r, &g);
    cr_assert_eq(rc, LS_ERECCKSUM, "%s", ls_err_name(rc));
    cr_assert(ls_h_contains(ls_reader_error(r), "generation 2"), "%s", ls_reader_error(r));
    ls_reader_stats_t st;
    ls_reader_stats(r, &st);
    cr_assert_eq(st.delivered, 1);
    cr_assert_eq(st.buffered_bytes, 0, "the damaged one's bytes are given back");
    ls_reader_stop(r);
    ls_source_free(s);
    chain_free(c);
}

Test(source, reader_stops_at_a_gap_and_on_a_broken_chain)
{
    chain_t *c = chain_new();
    add_gens(c, 5, 1);
    char path[PATH_MAX];
    gen_path(c, 3, path, sizeof(path));
    cr_assert_eq(unlink(path), 0);
    ls_source_t *s = open_src(c);
    int notes = 0;
    ls_reader_t *r = NULL;
    cr_assert_eq(ls_reader_start(s, 1, NULL, notify, &notes, &r), 0);
    const ls_gen_buf_t *g;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(next_gen(r, &g), 0, "%s", ls_reader_error(r));
        ls_reader_release(r, g);
    }
    cr_assert_eq(next_gen(r, &g), LS_EGAP);
    cr_assert(ls_h_contains(ls_reader_error(r), "generation 3 is missing"), "%s",
              ls_reader_error(r));
    ls_reader_stop(r);

    /* The target's digest (from the plan) must be what generation 4 chains to. */
    uint8_t wrong[LS_DIGEST_SIZE] = {1};
    ls_reader_options_t o = {.prev_digest = wrong};
    cr_assert_eq(ls_reader_start(s, 4, &o, notify, &notes, &r), 0);
    cr_assert_eq(next_gen(r, &g), LS_ELINEAGE);
    cr_assert(ls_h_contains(ls_reader_error(r), "generation 4"), "%s", ls_reader_error(r));
    ls_reader_stop(r);
    ls_source_free(s);
    chain_free(c);
}

/* ---- removal ------------------------------------------------------------------------------- */

static int removable(ls_source_t *s, ls_removal_input_t *in, ls_removal_t *out)
{
    char err[LS_SOURCE_ERRLEN] = "";
    int rc = ls_source_removable(s, in, out, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    return rc;
}

Test(source, removal_needs_every_target_checkpoint_seed_and_lag)
{
    chain_t *c = chain_new();
    add_gens(c, 10, 1);
    ls_source_t *s = open_src(c);
    uint64_t synced[2] = {6, 4};
    ls_removal_input_t in = {
        .target_synced = synced,
        .ntargets = 2,
        .checkpoint_lsn = c->last_lsn[8],
        .truncation_lag_ns = 3 * SEC,
        .now_ns = BASE_NS + 10 * SEC, /* generations closed at <= 7 s are old enough */
    };
    ls_removal_t out;
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 4, "the slower target");
    cr_assert_eq(out.others_upto, 7, "the truncation lag");
    cr_assert_not(out.warning);
    cr_assert_not(out.capped);
    synced[0] = synced[1] = 9;
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 7);
    in.truncation_lag_ns = 0;
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 8, "the checkpoint");
    in.checkpoint_lsn = c->last_lsn[8] - 1;
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 7, "a checkpoint inside generation 8");
    in.checkpoint_lsn = UINT64_MAX;
    synced[0] = synced[1] = 10;
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 9, "the newest is always kept");
    in.seed_needs = 3;
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 2, "a seed needs 3 and later");
    in.seed_needs = 0;
    in.ntargets = 0;
    in.checkpoint_lsn = 0;
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 0, "nothing checkpointed");

    char err[LS_SOURCE_ERRLEN] = "";
    cr_assert_eq(ls_source_remove_upto(s, 4, err, sizeof(err)), 4, "%s", err);
    for (uint64_t g = 1; g <= 10; g++) {
        char path[PATH_MAX];
        gen_path(c, g, path, sizeof(path));
        cr_assert_eq(access(path, F_OK) == 0, g > 4, "generation %llu", (unsigned long long) g);
    }
    ls_source_view_t v;
    ls_source_view(s, &v);
    cr_assert_eq(v.oldest, 5);
    cr_assert_eq(ls_source_remove_upto(s, 10, err, sizeof(err)), LS_EINVAL);
    cr_assert(ls_h_contains(err, "newest"), "%s", err);
    cr_assert_eq(ls_source_remove_upto(s, 4, err, sizeof(err)), 0, "nothing left to remove");
    ls_source_free(s);
    chain_free(c);
}

Test(source, removal_cap_warns_and_cuts_the_lagging_target)
{
    chain_t *c = chain_new();
    add_gens(c, 10, 1); /* equal sizes */
    ls_source_t *s = open_src(c);
    uint64_t size = c->size[1];
    uint64_t synced[2] = {9, 1}; /* the second target is gone since generation 1 */
    ls_removal_input_t in = {
        .target_synced = synced,
        .ntargets = 2,
        .checkpoint_lsn = UINT64_MAX,
        .now_ns = BASE_NS + 100 * SEC,
        .max_log_bytes = 10 * size,
    };
    ls_removal_t out;
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 1);
    cr_assert_eq(out.others_upto, 9);
    cr_assert_eq(out.held_bytes, 8 * size, "generations 2..9 are held only for the target");
    cr_assert(out.warning, "8 of 10 is past three quarters of the cap");
    cr_assert_not(out.capped);
    cr_assert(ls_h_contains(out.msg, "lagging"), "%s", out.msg);

    in.max_log_bytes = 4 * size;
    removable(s, &in, &out);
    cr_assert(out.capped);
    cr_assert(out.warning);
    cr_assert_eq(out.upto, 5, "2..5 go so that 6..9 fit the cap");
    cr_assert_eq(out.cut_targets, 1);
    cr_assert_eq(out.cut_target_lowest, 1);
    cr_assert(ls_h_contains(out.msg, "need a seed"), "%s", out.msg);

    in.max_log_bytes = LS_SOURCE_NO_CAP;
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 1, "no cap: held for the target forever");
    cr_assert_not(out.warning, "far below the default cap");

    in.max_log_bytes = 100 * size;
    removable(s, &in, &out);
    cr_assert_not(out.warning);
    cr_assert_eq(out.msg[0], '\0');
    ls_source_free(s);
    chain_free(c);
}

/* Defect 3 of issue 13: what the configuration says reaches the rule unchanged. "none" (or 0) in
 * the file is LS_SOURCE_NO_CAP here: a target gone since generation 1 keeps everything however
 * much is held; the default cap is the engine's; a configured cap cuts. */
Test(source, removal_honours_the_configured_cap_or_none)
{
    cr_assert_eq(LS_CFG_NO_CAP, LS_SOURCE_NO_CAP);
    cr_assert_eq(LS_CFG_DEFAULT_MAX_LOG_BYTES, LS_SOURCE_DEFAULT_MAX_LOG_BYTES);
    chain_t *c = chain_new();
    for (int i = 0; i < 40; i++)
        add_gen(c, 1, 4, 4096);
    ls_source_t *s = open_src(c);
    uint64_t synced[2] = {39, 1};
    ls_removal_input_t in = {
        .target_synced = synced,
        .ntargets = 2,
        .checkpoint_lsn = UINT64_MAX,
        .now_ns = BASE_NS + 1000 * SEC,
        .max_log_bytes = LS_CFG_NO_CAP,
    };
    ls_removal_t out;
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 1, "no cap: nothing the gone target needs is removed");
    cr_assert_not(out.capped);
    cr_assert_eq(out.cut_targets, 0);
    uint64_t held = 0;
    for (uint64_t g = 2; g <= 39; g++)
        held += c->size[g];
    cr_assert_eq(out.held_bytes, held);
    in.max_log_bytes = 0; /* the struct's zero: the default cap, far above these bytes */
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 1);
    cr_assert_not(out.capped);
    in.max_log_bytes = held / 2; /* a configured cap */
    removable(s, &in, &out);
    cr_assert(out.capped);
    cr_assert_gt(out.upto, 1);
    cr_assert_eq(out.cut_targets, 1);
    ls_source_free(s);
    chain_free(c);
}

/* A rescan at chosen points of a removal (defect 4 of issue 13): between the detach and the
 * first unlink, and after some but not all unlinks. */
typedef struct {
    ls_source_t *src;
    size_t at[2];       /* rescan when this many files are unlinked */
    uint64_t oldest[2]; /* the view's oldest generation after each of those rescans */
    uint64_t count[2];  /* and its size */
    int rescans;        /* rescans done */
} interleave_t;

static void rescan_during_removal(void *ctx, size_t done)
{
    interleave_t *x = ctx;
    for (int i = 0; i < 2; i++) {
        if (x->at[i] != done) continue;
        rescan(x->src);
        ls_source_view_t v;
        ls_source_view(x->src, &v);
        x->oldest[i] = v.oldest;
        x->count[i] = v.count;
        x->rescans++;
    }
}

Test(source, removal_and_rescan_never_disagree)
{
    chain_t *c = chain_new();
    add_gens(c, 10, 1);
    ls_source_t *s = open_src(c);
    interleave_t x = {.src = s, .at = {0, 2}};
    ls__src_set_remove_hook(s, rescan_during_removal, &x);
    char err[LS_SOURCE_ERRLEN] = "";
    cr_assert_eq(ls_source_remove_upto(s, 4, err, sizeof(err)), 4, "%s", err);
    cr_assert_eq(x.rescans, 2);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(x.oldest[i], 5, "rescan %d re-added a generation being removed", i);
        cr_assert_eq(x.count[i], 6);
    }
    ls_source_view_t v;
    ls_source_view(s, &v);
    cr_assert_eq(v.oldest, 5, "the view holds files that no longer exist");
    cr_assert_eq(v.count, 6);
    cr_assert_not(ls_source_has(s, 4, NULL));
    /* A target holding 4 reconnects: 4's digest is checked against 5's header, nothing is
     * reported missing. One holding 3 needs a seed. */
    ls_ship_plan_t p;
    cr_assert_eq(plan(s, 1, 5, c->digest[4], &p, err), 0, "%s", err);
    cr_assert_eq(p.first, 5);
    cr_assert_eq(p.ready, 6);
    cr_assert_eq(plan(s, 1, 4, c->digest[3], &p, err), LS_EGAP);
    cr_assert(p.need_seed);
    /* After the removal a rescan sees the directory as it is. */
    ls__src_set_remove_hook(s, NULL, NULL);
    rescan(s);
    ls_source_view(s, &v);
    cr_assert_eq(v.oldest, 5);
    cr_assert_eq(v.count, 6);
    ls_source_free(s);
    chain_free(c);
}

/* ---- figures ------------------------------------------------------------------------------- */

Test(source, queue_figures_are_exact)
{
    chain_t *c = chain_new();
    for (int i = 1; i <= 8; i++)
        add_gen(c, 1, i, (size_t) (100 * i)); /* distinct sizes */
    write_text(c, "E00.log", "garbage: the current log is never read");
    ls_source_t *s = open_src(c);
    char err[LS_SOURCE_ERRLEN] = "";
    uint64_t last = 0, close_ns = 0;
    cr_assert_eq(ls_source_last_closed(s, &last, &close_ns, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(last, 8);
    cr_assert_eq(close_ns, BASE_NS + 8 * SEC);
    ls_source_queue_t q;
    cr_assert_eq(ls_source_queue(s, 3, &q, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(q.count, 5);
    uint64_t bytes = 0;
    for (uint64_t g = 4; g <= 8; g++) {
        char path[PATH_MAX];
        struct stat st;
        gen_path(c, g, path, sizeof(path));
        cr_assert_eq(stat(path, &st), 0);
        bytes += (uint64_t) st.st_size;
    }
    cr_assert_eq(q.bytes, bytes);
    cr_assert_eq(q.oldest_close_ns, BASE_NS + 4 * SEC);
    cr_assert_eq(ls_source_queue(s, 0, &q, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(q.count, 8);
    cr_assert_eq(q.oldest_close_ns, BASE_NS + 1 * SEC);
    cr_assert_eq(ls_source_queue(s, 8, &q, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(q.count, 0);
    cr_assert_eq(q.bytes, 0);
    cr_assert_eq(q.oldest_close_ns, 0);

    /* A damaged trailer is an error naming the file, not a wrong figure. */
    damage(c, 8, -10, 0xff);
    ls_source_free(s);
    s = open_src(c);
    cr_assert_eq(ls_source_queue(s, 3, &q, err, sizeof(err)), LS_ECORRUPT);
    cr_assert(ls_h_contains(err, "E00-00000001-0000000000000008.log"), "%s", err);
    cr_assert(ls_h_contains(err, "no valid trailer"), "%s", err);
    ls_source_free(s);
    chain_free(c);
}

/* The fs event fast path: a closed generation's name is appended without a rescan only when it is
 * exactly the next one and exists; names the view never holds change nothing; anything else (the
 * history, a gap, a file not there, an epoch the history does not give) is left to the rescan, so a
 * lost event can never make the view skip a generation. The reader waiting for the next one is
 * woken by it. */
Test(source, add_appends_only_the_next_generation_and_wakes_the_reader)
{
    chain_t *c = chain_new();
    add_gens(c, 3, 1);
    ls_source_t *s = open_src(c);
    ls_reader_t *r = NULL;
    int notes = 0;
    cr_assert_eq(ls_reader_start(s, 4, NULL, notify, &notes, &r), 0);
    wait_reader(r, waiting_gen, 4);
    add_gens(c, 2, 1); /* 4 and 5 on disk, the view still ends at 3 */
    char err[LS_SOURCE_ERRLEN] = "", name[LS_GEN_NAME_MAX];
    ls_source_view_t v;
    cr_assert_eq(ls_gen_name(name, sizeof(name), "E00", 1, 5), 0);
    cr_assert_eq(ls_source_add(s, name, err, sizeof(err)), 1, "5 after 3: a gap, not added");
    cr_assert_eq(ls_source_add(s, "history", err, sizeof(err)), 1, "the history: a rescan");
    /* names the view never holds: nothing to do */
    cr_assert_eq(ls_source_add(s, "E00.log", err, sizeof(err)), 0);
    cr_assert_eq(ls_source_add(s, "E00.next", err, sizeof(err)), 0);
    cr_assert_eq(ls_source_add(s, "E00-00000001-0000000000000004.log.part", err, sizeof(err)), 0);
    cr_assert_eq(ls_source_add(s, "F00-00000001-0000000000000004.log", err, sizeof(err)), 0);
    cr_assert_eq(ls_gen_name(name, sizeof(name), "E00", 2, 4), 0);
    cr_assert_eq(ls_source_add(s, name, err, sizeof(err)), 1, "no such file");
    ls_source_view(s, &v);
    cr_assert_eq(v.newest, 3);
    cr_assert_eq(ls_gen_name(name, sizeof(name), "E00", 1, 4), 0);
    cr_assert_eq(ls_source_add(s, name, err, sizeof(err)), 0, "%s", err);
    take(c, r, 4); /* woken by the add */
    cr_assert_eq(ls_source_add(s, name, err, sizeof(err)), 0, "already there");
    cr_assert_eq(ls_gen_name(name, sizeof(name), "E00", 1, 5), 0);
    cr_assert_eq(ls_source_add(s, name, err, sizeof(err)), 0, "%s", err);
    take(c, r, 5);
    ls_source_view(s, &v);
    cr_assert_eq(v.count, 5);
    cr_assert_eq(v.newest, 5);
    uint64_t last = 0, close_ns = 0; /* its trailer, read without the lock, then cached */
    cr_assert_eq(ls_source_last_closed(s, &last, &close_ns, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(last, 5);
    cr_assert_eq(close_ns, BASE_NS + 5 * SEC);

    /* Generation 6 under an epoch the history does not give it: not added; the rescan says why. */
    c->epoch[6] = 2;
    add_gen(c, 2, 2, 64);
    cr_assert_eq(ls_gen_name(name, sizeof(name), "E00", 2, 6), 0);
    cr_assert_eq(ls_source_add(s, name, err, sizeof(err)), 1);
    cr_assert_eq(ls_source_rescan(s, err, sizeof(err)), LS_ELINEAGE);
    ls_source_view(s, &v);
    cr_assert_eq(v.newest, 5, "the view kept");
    ls_reader_stop(r);
    ls_source_free(s);
    chain_free(c);
}
