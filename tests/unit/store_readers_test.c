/* store/env: the reader slot of a process killed inside a read transaction is cleared, so that
 * the pages freed since its snapshot are reused (a daemon killed during a seed snapshot beside an
 * application that keeps writing). */
#include <criterion/criterion.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "harness.h"
#include "store/env.h"
#include "store/store.h"

static const uint8_t ID[LS_DBID_LEN] = {0xcc, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* Rewrites the same 2,000 keys: each commit frees as many pages as it writes. */
static int rewrite(void *ctx, ls_store_txn_t *txn)
{
    unsigned round = *(unsigned *) ctx;
    char val[100];
    memset(val, 'a' + (int) (round % 26), sizeof(val));
    int rc = 0;
    for (int i = 0; i < 2000 && rc == 0; i++) {
        char key[16];
        int n = snprintf(key, sizeof(key), "k%06d", i);
        rc = ls_store_put(txn, key, (size_t) n, val, sizeof(val));
    }
    return rc;
}

static void rewrite_rounds(ls_store_t *s, unsigned *round, int n)
{
    for (int i = 0; i < n; i++) {
        ls_store_meta_t m;
        ls_store_meta(s, &m);
        m.lsn = ++*round;
        cr_assert_eq(ls_store_apply(s, rewrite, round, &m), 0, "round %u", *round);
    }
}

static size_t last_page(MDB_env *env)
{
    MDB_envinfo info;
    cr_assert_eq(mdb_env_info(env, &info), 0);
    return info.me_last_pgno;
}

/* Another process opens the environment itself, begins a read transaction and is killed. */
static void killed_reader(const char *dir)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        MDB_env *env;
        MDB_txn *txn;
        if (mdb_env_create(&env) || mdb_env_open(env, dir, MDB_NOTLS | MDB_RDONLY, 0600) ||
            mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))
            _exit(3);
        raise(SIGKILL);
        _exit(4);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the reader died by SIGKILL (%d)", st);
}

Test(store_readers, a_killed_readers_slot_is_cleared_and_its_pages_reused)
{
    char *dir = ls_h_tmpdir("readers");
    ls_store_options_t o = {.create = true, .dbid = ID, .map_size = 256u << 20};
    ls_store_t *s = NULL;
    char err[256] = "";
    cr_assert_eq(ls_store_open(dir, &o, &s, err, sizeof(err)), 0, "%s", err);
    ls_store_env_t *e = NULL;
    cr_assert_eq(ls_store_env_acquire(dir, NULL, &e, err, sizeof(err)), 0, "%s", err);
    MDB_env *env = ls_store_env_mdb(e);
    unsigned round = 0;
    rewrite_rounds(s, &round, 20);
    size_t steady = last_page(env);
    rewrite_rounds(s, &round, 50);
    cr_assert_leq(last_page(env), steady + 64, "steady state: freed pages are reused (%zu, %zu)",
                  steady, last_page(env));

    killed_reader(dir);
    cr_assert_eq(ls_h_reader_slots(env), 1, "the dead process's slot is still in the table");
    struct timespec wait = {.tv_sec = 1, .tv_nsec = 100 * 1000 * 1000}; /* the check's period */
    nanosleep(&wait, NULL);
    size_t before = last_page(env);
    rewrite_rounds(s, &round, 50);
    cr_assert_eq(ls_h_reader_slots(env), 0, "a write transaction cleared the dead reader's slot");
    /* Pinned by the dead snapshot, each round would take ~60 new pages (3,000 in all). */
    cr_assert_leq(last_page(env), before + 128,
                  "the pages freed since its snapshot are reused "
                  "(last page %zu before, %zu after 50 rounds)",
                  before, last_page(env));
    ls_store_env_release(e);
    ls_store_close(s);
    ls_h_rmtree_free(dir);
}
