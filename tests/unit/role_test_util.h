/*
 * Helpers shared by role_test.c and role_diverge_test.c: opening a quiet database, committing
 * one key, building an active with closed generations, shipping them into a copy through
 * engine/copy, reading a generation's close time, checking a value. Static functions: each test
 * program includes this once.
 */
#ifndef LS_ROLE_TEST_UTIL_H
#define LS_ROLE_TEST_UTIL_H

#include <criterion/criterion.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <logship/db.h>

#include "copy/copy.h"
#include "core/core.h"
#include "harness.h"
#include "layout/layout.h"
#include "role/role.h"
#include "writer/ctlpage.h"

#define PATHLEN 1400
#define UTIL    static __attribute__((unused))

UTIL ls_db_options_t quiet(void)
{
    return (ls_db_options_t){.no_idle_roll = true, .checkpoint_ms = 3600000};
}

UTIL ls_db_t *open_db(const char *dir)
{
    ls_db_options_t o = quiet();
    ls_db_t *db = NULL;
    int rc = ls_db_open(dir, &o, &db);
    cr_assert_eq(rc, 0, "open %s: %s (%s)", dir, ls_db_open_error(), ls_strerror(rc));
    return db;
}

/* Commits one transaction putting key = val. */
UTIL int put1(ls_db_t *db, const char *key, const char *val)
{
    ls_txn_t *t;
    cr_assert_eq(ls_txn_begin(db, &t), 0);
    cr_assert_eq(ls_txn_put(t, key, strlen(key), val, strlen(val)), 0);
    return ls_txn_commit(t);
}

UTIL void write_text(const char *dir, const char *name, const char *text)
{
    char path[PATHLEN];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    cr_assert_eq(ls_h_write_file(path, text, strlen(text)), 0);
}

/* An active with `gens` closed generations of `per` transactions each ("k<g>-<t>" = "v<g>-<t>"),
 * its current log empty after close. */
UTIL void build_active(const char *dir, int gens, int per)
{
    ls_db_t *db = open_db(dir);
    for (int g = 1; g <= gens; g++) {
        for (int t = 0; t < per; t++) {
            char k[32], v[32];
            snprintf(k, sizeof(k), "k%d-%d", g, t);
            snprintf(v, sizeof(v), "v%d-%d", g, t);
            cr_assert_eq(put1(db, k, v), 0);
        }
        cr_assert_eq(ls_db_roll(db), 0);
    }
    cr_assert_eq(ls_db_close(db), 0);
}

UTIL void gen_path(char *out, size_t len, const char *dir, uint32_t e, uint64_t g)
{
    char logs[PATHLEN];
    int n = snprintf(logs, sizeof(logs), "%s/logs", dir);
    cr_assert(n > 0 && (size_t) n < sizeof(logs), "%s: path too long", dir);
    cr_assert_eq(ls_layout_path(out, len, logs, NULL, e, g, NULL), 0);
}

/* Ships closed generations from..to of the active into the copy through engine/copy (received
 * and inspected, not replayed: activation replays them). Returns their bytes. */
UTIL uint64_t ship(const char *active, const char *copy, int from, int to)
{
    ls_copy_options_t o = {.dir = copy};
    ls_copy_t *c = NULL;
    char err[1024] = "";
    cr_assert_eq(ls_copy_open(&o, &c, err, sizeof(err)), 0, "%s", err);
    uint64_t bytes = 0;
    for (int g = from; g <= to; g++) {
        char path[PATHLEN];
        gen_path(path, sizeof(path), active, 1, (uint64_t) g);
        size_t len = 0;
        uint8_t *buf = ls_h_read_file(path, &len);
        cr_assert_not_null(buf, "%s", path);
        int rc = ls_copy_recv_begin(c, 1, (uint64_t) g, len, 0, err, sizeof(err));
        if (rc == 0) rc = ls_copy_recv_data(c, (uint64_t) g, 0, buf, len, err, sizeof(err));
        if (rc == 0) rc = ls_copy_recv_end(c, (uint64_t) g, NULL, err, sizeof(err));
        cr_assert_eq(rc, 0, "generation %d: %s", g, err);
        bytes += len;
        free(buf);
    }
    ls_copy_close(c);
    return bytes;
}

UTIL uint64_t close_time(const char *dir, uint32_t e, uint64_t g)
{
    char path[PATHLEN];
    gen_path(path, sizeof(path), dir, e, g);
    ls_layout_ends_t x;
    cr_assert_eq(ls_layout_read_ends(path, &x, NULL, 0), 0, "%s", path);
    cr_assert(x.closed);
    return x.t.close_ns;
}

UTIL void expect_value(ls_db_t *db, const char *key, const char *want)
{
    void *v = NULL;
    size_t vl = 0;
    int rc = ls_db_get(db, key, strlen(key), &v, &vl);
    cr_assert_eq(rc, 0, "%s: %s", key, ls_strerror(rc));
    cr_assert(vl == strlen(want) && memcmp(v, want, vl) == 0, "%s = %.*s", key, (int) vl,
              (char *) v);
    free(v);
}

#endif
