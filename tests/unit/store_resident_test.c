/* store: the map pages a write transaction read leave the resident set (ls_store_apply's
 * release every 256 writes), and what is read back is the same. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "harness.h"
#include "store/store.h"
#include "store_test_util.h"

/* KiB of this process's resident pages of dir's data.mdb (the Rss lines of its mappings). */
static long store_rss_kib(const char *dir)
{
    char want[4200], line[4400];
    snprintf(want, sizeof(want), "%s/data.mdb", dir);
    FILE *f = fopen("/proc/self/smaps", "r");
    cr_assert_not_null(f);
    long kib = 0;
    bool in = false;
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) { /* a mapping's first line */
            line[strcspn(line, "\n")] = 0;
            size_t n = strlen(line), w = strlen(want);
            in = n >= w && strcmp(line + n - w, want) == 0;
        } else if (in && strncmp(line, "Rss:", 4) == 0) {
            kib += strtol(line + 4, NULL, 10);
        }
    }
    fclose(f);
    return kib;
}

struct walk {
    const char *dir;
    bool release;       /* release the pages half way (else only measure at the end) */
    long before, after; /* resident KiB of the map around the release inside the transaction, or
                           at the end of the transaction without one */
};

/* Puts 3000 keys in the middle of the tree; with w->release, releases the pages half way. */
static int put_keys(void *ctx, ls_store_txn_t *txn)
{
    struct walk *w = ctx;
    char val[200];
    memset(val, 'w', sizeof(val));
    for (int i = 0; i < 3000; i++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "k%08d", i * 3 + 1);
        int rc = ls_store_put(txn, key, (size_t) n, val, sizeof(val));
        if (rc) return rc;
        if (w->release && i == 1500) {
            w->before = store_rss_kib(w->dir);
            ls_store_txn_release_pages(txn);
            w->after = store_rss_kib(w->dir);
        }
    }
    if (!w->release) w->after = store_rss_kib(w->dir);
    return 0;
}

struct check {
    int n;          /* keys seen */
    bool rewritten; /* put_keys has run */
};

static int check_value(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    struct check *c = ctx;
    char key[16] = "";
    memcpy(key, k, LS_MIN(kl, sizeof(key) - 1));
    int i = atoi(key + 1);
    if (c->rewritten && i % 3 == 1 && i < 9000) {
        cr_assert_eq(vl, 200, "key %s", key);
        cr_assert_eq(((const char *) v)[0], 'w', "key %s", key);
        cr_assert_eq(((const char *) v)[199], 'w', "key %s", key);
    } else {
        cr_assert_eq(vl, 1024, "key %s", key);
        char want[32];
        int n = snprintf(want, sizeof(want), "value-%d-", i);
        cr_assert(memcmp(v, want, (size_t) n) == 0, "key %s", key);
    }
    c->n++;
    return 0;
}

/* A store of 10000 values of 1 KiB (~12 MB of pages) walked whole once, so that its pages are
 * mapped; returns the map's resident KiB after the walk. */
static long filled_and_walked(const char *dir, ls_store_t **s, ls_store_meta_t *m)
{
    *s = open_store(dir, ID_A, 64u * 1024 * 1024);
    ls_store_meta(*s, m);
    struct puts p = {.first = 0, .count = 10000, .value_size = 1024, .fail_at = -1};
    cr_assert_eq(ls_store_apply(*s, put_range, &p, m), 0);
    struct check c = {0};
    cr_assert_eq(ls_store_iterate(*s, check_value, &c), 0);
    cr_assert_eq(c.n, 10000);
    long walked = store_rss_kib(dir);
    cr_assert_gt(walked, 4096, "the walk mapped the store's pages (%ld KiB)", walked);
    return walked;
}

/* The 10000 values rewritten, in the store s and, after closing and opening it again, on disk
 * (what was committed is there as written); returns the store opened again. */
static ls_store_t *rewritten_everywhere(ls_store_t *s, const char *dir)
{
    struct check c = {.rewritten = true};
    cr_assert_eq(ls_store_iterate(s, check_value, &c), 0);
    cr_assert_eq(c.n, 10000);
    ls_store_close(s);
    s = open_store(dir, ID_A, 0);
    c = (struct check){.rewritten = true};
    cr_assert_eq(ls_store_iterate(s, check_value, &c), 0);
    cr_assert_eq(c.n, 10000);
    return s;
}

Test(store, released_pages_leave_the_resident_set_and_read_back_the_same)
{
    char *dir = ls_h_tmpdir("store");
    ls_store_t *s;
    ls_store_meta_t m;
    long walked = filled_and_walked(dir, &s, &m);
    ls_store_release_pages(s);
    long released = store_rss_kib(dir);
    cr_assert_lt(released, walked / 4, "%ld KiB resident after the release, %ld before", released,
                 walked);
    /* inside a transaction: the pages read so far are released, the transaction goes on */
    struct walk w = {.dir = dir, .release = true};
    m.lsn = 2;
    cr_assert_eq(ls_store_apply(s, put_keys, &w, &m), 0);
    cr_assert_lt(w.after, w.before, "%ld KiB resident after, %ld before", w.after, w.before);
    s = rewritten_everywhere(s, dir);
    ls_store_meta(s, &m);
    cr_assert_eq(m.lsn, 2);
    ls_store_close(s);
    ls_h_rmtree_free(dir);
}

Test(store, a_long_transaction_keeps_few_of_the_map_pages_it_read_resident)
{
    char *dir = ls_h_tmpdir("store");
    ls_store_t *s;
    ls_store_meta_t m;
    long walked = filled_and_walked(dir, &s, &m);
    ls_store_release_pages(s);
    /* 3000 puts, one in every leaf or so: each reads its leaf from the map before LMDB copies it;
     * the store releases what was read every few hundred writes */
    struct walk w = {.dir = dir};
    m.lsn = 2;
    cr_assert_eq(ls_store_apply(s, put_keys, &w, &m), 0);
    cr_assert_lt(w.after, walked / 4,
                 "%ld KiB of the map resident at the end of the transaction, "
                 "%ld after walking the whole store",
                 w.after, walked);
    s = rewritten_everywhere(s, dir);
    ls_store_close(s);
    ls_h_rmtree_free(dir);
}
