/* Helpers shared by the seed round-trip tests (seed_test.c: round trips, hand-off, refusals;
 * seed_stream_test.c: big stores, progress, a running writer, the compaction's stream;
 * seed_concurrent_test.c: two seeds of one store at once): a closed generation fed to a copy,
 * the seeded copy fed through the last generation and compared with the active. Static
 * functions: each test program includes this once. */
#ifndef LS_SEED_CONVERGE_UTIL_H
#define LS_SEED_CONVERGE_UTIL_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>

#include <signal.h>
#include <sys/prctl.h>

#include "copy/copy.h"
#include "store/env.h"

#include "seed_test_util.h"

#define CHUNK (64u * 1024u)

/* helpers a test program may leave unused */
#ifndef UTIL
#define UTIL static __attribute__((unused))
#endif

/* Sends closed generation g of the active's logs to the copy in chunks. */
UTIL void feed(ls_copy_t *c, const char *db, uint64_t g)
{
    char name[LS_GEN_NAME_MAX], path[PATHSZ], err[1024] = "";
    ls_gen_name(name, sizeof(name), "E00", 1, g);
    snprintf(path, sizeof(path), "%s/logs/%s", db, name);
    size_t len = 0;
    uint8_t *buf = ls_h_read_file(path, &len);
    cr_assert_not_null(buf, "%s", path);
    int rc = ls_copy_recv_begin(c, 1, g, len, 0, err, sizeof(err));
    for (size_t off = 0; rc == 0 && off < len; off += 4000)
        rc = ls_copy_recv_data(c, g, off, buf + off, LS_MIN(4000, len - off), err, sizeof(err));
    if (rc == 0) rc = ls_copy_recv_end(c, g, NULL, err, sizeof(err));
    cr_assert_eq(rc, 0, "generation %llu: %s (%s)", (unsigned long long) g, ls_err_name(rc), err);
    free(buf);
}

UTIL bool replayed_to(void *ctx)
{
    void **a = ctx;
    ls_copy_stats_t st;
    ls_copy_stats(a[0], &st);
    return st.last_replayed >= *(uint64_t *) a[1];
}

/* The database's figures as its next user finds them: opened again (options o) and closed. */
UTIL ls_db_stats_t reopened_stats(const char *dir, const ls_db_options_t *o)
{
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(dir, o, &db), 0, "%s", ls_db_open_error());
    ls_db_stats_t st;
    ls_db_stats(db, &st);
    cr_assert_eq(ls_db_close(db), 0);
    return st;
}

/* Opens the seeded copy, feeds N..last, replays, and checks the result against the active. */
UTIL void converge(const env_t *e, const ls_seed_info_t *info, uint64_t last, uint64_t lsn)
{
    ls_copy_options_t co = {.dir = e->copy, .dbid = info->dbid};
    ls_copy_t *c = NULL;
    char err[1024] = "";
    cr_assert_eq(ls_copy_open(&co, &c, err, sizeof(err)), 0, "%s", err);
    ls_copy_resume_t r;
    ls_copy_resume_point(c, &r);
    cr_assert_eq(r.next_generation, info->generation, "the copy asks for N");
    cr_assert_arr_eq(r.digest, info->prev_digest, LS_DIGEST_SIZE, "and holds N-1's digest");
    for (uint64_t g = info->generation; g <= last; g++)
        feed(c, e->db, g);
    cr_assert_eq(ls_copy_start(c), 0);
    void *a[2] = {c, &last};
    cr_assert(ls_h_wait_for(replayed_to, a, 10000), "replayed through %llu",
              (unsigned long long) last);
    ls_copy_stats_t st;
    ls_copy_stats(c, &st);
    cr_assert_eq(st.applied_generations, last - info->generation + 1, "each applied once");
    cr_assert_eq(st.last_replayed_lsn, lsn, "through the active's last LSN");
    cr_assert_eq(st.state, LS_COPY_HEALTHY);
    ls_copy_close(c);
    assert_copy_equals_active(e->db, e->copy);
}

#endif
