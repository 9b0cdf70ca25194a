/* writer: the store is a consequence of the log (a deleted store rebuilt from the logs, a
 * generation it needs missing: a gap, or damaged: refused), and kill -9 under concurrent commits
 * loses no acknowledged commit. Split from writer_crash_test.c; helpers in writer_util.h. */

#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <logship/db.h>

#include "core/core.h"
#include "harness.h"
#include "writer_util.h"

/* ---- the store is a consequence of the log ------------------------------------------------ */

/* Builds a closed database of 40 transactions over several generations; returns its dir. */
static char *build_closed(void)
{
    char *dir = ls_h_tmpdir("writer");
    ls_db_t *db = open_sized(dir, 1024);
    for (int i = 0; i < 40; i++)
        cr_assert_eq(commit_tx(db, i, 2, 30), 0);
    cr_assert_eq(ls_db_close(db), 0);
    return dir;
}

static void rm_store(const char *dir)
{
    char cmd[PATHLEN + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf %s/store", dir);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 10000), 0);
}

Test(writer, deleted_store_is_rebuilt_from_the_logs)
{
    char *dir = build_closed();
    genfile_t g[64];
    cr_assert_gt(list_gens(dir, g, 64), 3);
    rm_store(dir);
    ls_db_t *db = open_sized(dir, 0);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.recovered_records, 120, "every record replayed");
    for (int i = 0; i < 40; i++)
        cr_assert(has_tx(db, i, 0) && has_tx(db, i, 1), "tx %d", i);
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree_free(dir);
}

Test(writer, missing_generation_the_store_needs_is_a_gap)
{
    char *dir = build_closed();
    genfile_t g[64];
    cr_assert_gt(list_gens(dir, g, 64), 3);
    rm_store(dir);
    cr_assert_eq(unlink(g[1].name), 0);
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(dir, &o, &db), LS_EGAP, "%s", ls_db_open_error());
    cr_assert(ls_h_contains(ls_db_open_error(), "generation 2 is missing"), "%s",
              ls_db_open_error());
    ls_h_rmtree_free(dir);
}

Test(writer, damaged_generation_the_store_needs_is_refused)
{
    char *dir = build_closed();
    genfile_t g[64];
    cr_assert_gt(list_gens(dir, g, 64), 3);
    rm_store(dir);
    int fd = open(g[2].name, O_RDWR);
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, LS_GEN_HEADER_SIZE + 40), 1);
    b ^= 0x20;
    cr_assert_eq(pwrite(fd, &b, 1, LS_GEN_HEADER_SIZE + 40), 1);
    close(fd);
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = NULL;
    int rc = ls_db_open(dir, &o, &db);
    cr_assert_neq(rc, 0);
    cr_assert_null(db);
    cr_assert(ls_h_contains(ls_db_open_error(), g[2].name), "names the file: %s",
              ls_db_open_error());
    ls_h_rmtree_free(dir);
}

/* ---- kill -9 under concurrent commits ------------------------------------------------------ */

typedef struct {
    ls_db_t *db; /* shared database */
    int id;      /* thread number */
    int round;   /* kill round, part of the keys */
    int ack_fd;  /* acknowledged keys are appended here, one per line */
} acker_t;

static void *acker(void *arg)
{
    acker_t *a = arg;
    for (int n = 0;; n++) {
        char key[64], line[70];
        int kn = snprintf(key, sizeof(key), "r%d-t%d-n%d", a->round, a->id, n);
        ls_txn_t *t;
        if (ls_txn_begin(a->db, &t) || ls_txn_put(t, key, (size_t) kn, key, (size_t) kn) ||
            ls_txn_commit(t))
            _exit(7);
        int ln = snprintf(line, sizeof(line), "%s\n", key);
        if (write(a->ack_fd, line, (size_t) ln) != ln) _exit(8);
    }
    return NULL;
}

/* Child: 4 threads commit until killed; every acknowledged key goes to <dir>.acks. */
static void child_commit_until_killed(const char *dir, int round)
{
    ls_db_options_t o = quiet_opts();
    o.target_size = 16 * 1024;
    ls_db_t *db = NULL;
    if (ls_db_open(dir, &o, &db)) _exit(3);
    char path[PATHLEN];
    snprintf(path, sizeof(path), "%s.acks", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    acker_t a[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (acker_t){db, i, round, fd};
        pthread_create(&th[i], NULL, acker, &a[i]);
    }
    pthread_join(th[0], NULL); /* never returns: killed */
}

Test(writer, kill_9_during_concurrent_commits_loses_no_acknowledged_commit, .timeout = 60)
{
    char *dir = ls_h_tmpdir("writer");
    char acks[PATHLEN];
    snprintf(acks, sizeof(acks), "%s.acks", dir);
    srand(42);
    for (int round = 0; round < 6; round++) {
        unlink(acks); /* the child creates it; the last round's must not count as this one's */
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            child_commit_until_killed(dir, round);
            _exit(0);
        }
        /* Kill at a random moment once commits are being acknowledged (a fixed delay alone
         * could fall before the first acknowledgement on a loaded machine). */
        struct stat ast;
        for (int waited = 0; waited < 20000 && (stat(acks, &ast) != 0 || ast.st_size == 0);
             waited += 5)
            usleep(5000);
        usleep((useconds_t) (rand() % 70000));
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        cr_assert(WIFSIGNALED(st), "round %d: child ended by itself (status %d)", round, st);
        size_t len = 0;
        char *list = (char *) ls_h_read_file(acks, &len);
        cr_assert_not_null(list);
        ls_db_t *db = open_sized(dir, 0);
        int n = 0;
        for (char *save = NULL, *k = strtok_r(list, "\n", &save); k;
             k = strtok_r(NULL, "\n", &save), n++) {
            void *v;
            size_t vl;
            cr_assert_eq(ls_db_get(db, k, strlen(k), &v, &vl), 0, "round %d: acknowledged %s lost",
                         round, k);
            free(v);
        }
        cr_assert_gt(n, 0, "round %d: something was acknowledged", round);
        cr_assert_eq(ls_db_close(db), 0);
        free(list);
    }
    unlink(acks);
    ls_h_rmtree_free(dir);
}
