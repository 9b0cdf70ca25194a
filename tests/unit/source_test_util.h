/* Helpers shared by the source tests (source_test.c: directory view, history, resume plan;
 * source_reader_test.c: the pipelined reader; source_removal_test.c: the removal rule and the
 * queue figures): log directories built with genbuild (a chain of valid generations under their
 * real names), each generation's trailer patched to a distinct close time (BASE_NS + generation
 * seconds), damaged or extended on demand; the plan of a resume; the reader's waits and checks of
 * what it hands out. Static functions: each test program includes this once. */
#ifndef LS_SOURCE_TEST_UTIL_H
#define LS_SOURCE_TEST_UTIL_H

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

/* helpers a test program may leave unused */
#define UTIL static __attribute__((unused))

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

UTIL chain_t *chain_new(void)
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

UTIL void chain_free(chain_t *c)
{
    ls_h_rmtree_free(c->dir);
    free(c);
}

UTIL void gen_path(const chain_t *c, uint64_t g, char *out, size_t outlen)
{
    char name[LS_GEN_NAME_MAX];
    cr_assert_eq(ls_gen_name(name, sizeof(name), "E00", c->epoch[g], g), 0);
    snprintf(out, outlen, "%s/%s", c->logs, name);
}

/* Rewrites the trailer of a closed generation with close_ns (the digest does not cover it). */
UTIL void patch_close(uint8_t *b, size_t len, uint64_t seed, uint64_t close_ns)
{
    ls_gen_info_t info;
    ls_gen_verdict_t v;
    cr_assert_eq(ls_gen_scan(b, len, NULL, NULL, NULL, &info, &v), 0, "%s", v.msg);
    info.trailer.close_ns = close_ns;
    ls_gen_trailer_encode(&info.trailer, seed, b + len - LS_GEN_TRAILER_SIZE);
}

/* Appends generation n+1 of epoch e with `puts` records of vsize-byte values. */
UTIL void add_gen(chain_t *c, uint32_t e, int puts, size_t vsize)
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

UTIL void add_gens(chain_t *c, int count, uint32_t e)
{
    for (int i = 0; i < count; i++)
        add_gen(c, e, 2, 64);
}

UTIL void write_text(const chain_t *c, const char *name, const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", c->logs, name);
    cr_assert_eq(ls_h_write_file(path, text, strlen(text)), 0);
}

/* XORs byte `at` of generation g's file with mask: from the start, or from the end when
 * negative (-1: the last byte). */
UTIL void damage(const chain_t *c, uint64_t g, long at, uint8_t mask)
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

UTIL ls_source_t *open_src(const chain_t *c)
{
    ls_source_options_t o = {.db_dir = c->dir};
    ls_source_t *s = NULL;
    char err[LS_SOURCE_ERRLEN] = "";
    cr_assert_eq(ls_source_open(&o, &s, err, sizeof(err)), 0, "%s", err);
    return s;
}

UTIL void rescan(ls_source_t *s)
{
    char err[LS_SOURCE_ERRLEN] = "";
    cr_assert_eq(ls_source_rescan(s, err, sizeof(err)), 0, "%s", err);
}

UTIL void hex8(const uint8_t *d, char out[17])
{
    ls_hex(d, 8, out);
}

UTIL int plan(ls_source_t *s, uint32_t epoch, uint64_t next, const uint8_t *digest,
              ls_ship_plan_t *p, char *err)
{
    ls_resume_t r = {.epoch = epoch, .next = next};
    if (digest) memcpy(r.digest, digest, LS_DIGEST_SIZE);
    return ls_source_plan(s, &r, p, err, LS_SOURCE_ERRLEN);
}
UTIL void notify(void *ctx)
{
    __atomic_add_fetch((int *) ctx, 1, __ATOMIC_SEQ_CST);
}

typedef struct {
    ls_reader_t *r;
    bool (*pred)(const ls_reader_stats_t *st, uint64_t arg);
    uint64_t arg;
} waitst_t;

UTIL bool st_cond(void *ctx)
{
    waitst_t *w = ctx;
    ls_reader_stats_t st;
    ls_reader_stats(w->r, &st);
    return w->pred(&st, w->arg);
}

UTIL bool waiting_space(const ls_reader_stats_t *st, uint64_t arg)
{
    (void) arg;
    return st->waiting_space;
}

UTIL bool waiting_gen(const ls_reader_stats_t *st, uint64_t arg)
{
    return st->waiting_gen && st->next == arg;
}

UTIL bool failed(const ls_reader_stats_t *st, uint64_t arg)
{
    (void) arg;
    return st->error != 0;
}

UTIL void wait_reader(ls_reader_t *r, bool (*pred)(const ls_reader_stats_t *, uint64_t),
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

UTIL bool next_cond(void *ctx)
{
    nextw_t *w = ctx;
    w->rc = ls_reader_next(w->r, &w->g);
    return w->rc != LS_EBUSY;
}

/* Waits for the next generation (or the reader's error): returns its code. */
UTIL int next_gen(ls_reader_t *r, const ls_gen_buf_t **g)
{
    nextw_t w = {r, NULL, 0};
    cr_assert(ls_h_wait_for(next_cond, &w, 10000), "no generation within 10 s");
    *g = w.g;
    return w.rc;
}

UTIL void expect_gen(const chain_t *c, const ls_gen_buf_t *g, uint64_t want)
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
UTIL void take(const chain_t *c, ls_reader_t *r, uint64_t want)
{
    const ls_gen_buf_t *g;
    cr_assert_eq(next_gen(r, &g), 0, "%s", ls_reader_error(r));
    expect_gen(c, g, want);
    ls_reader_release(r, g);
}

#endif
