/* Helpers shared by the seed error-path tests (seed_paths_test.c: the snapshot;
 * seed_paths_handoff_test.c: the hand-off and the install; seed_paths_swap_test.c: the swap,
 * recovery and the worker): an active database with closed generations and a current log, and a
 * closed generation's ends. Static functions: each test program includes this once. */
#ifndef LS_SEED_PATHS_TEST_UTIL_H
#define LS_SEED_PATHS_TEST_UTIL_H

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mount.h>

#include "layout/layout.h"
#include "seed/seed_int.h"
#include "seed/session.h"
#include "seed_test_util.h"

/* helpers a test program may leave unused */
#define UTIL static __attribute__((unused))

#define CHUNK (16u * 1024u)

/* An active database with closed generations (16 KiB each) and a current log, closed again. */
UTIL void active_db_sized(env_t *e, int ntx, size_t vlen)
{
    ls_db_options_t o = db_opts(16 * 1024);
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(e->db, &o, &db), 0, "%s", ls_db_open_error());
    cr_assert_eq(commit_range(db, 0, ntx, 3, vlen), 0);
    cr_assert_eq(ls_db_close(db), 0);
}

UTIL void active_db(env_t *e, int ntx)
{
    active_db_sized(e, ntx, 500);
}

UTIL void gen_ends(const char *logs, uint64_t gen, ls_layout_ends_t *x)
{
    char p[PATHSZ];
    ls_h_gen_path(p, sizeof(p), logs, 1, gen);
    char err[512] = "";
    cr_assert_eq(ls_layout_read_ends(p, x, err, sizeof(err)), 0, "%s", err);
}

#endif
