/*
 * Helpers shared by writer_test.c and writer_crash_test.c: opening databases, committing and
 * checking numbered transactions, listing closed generations, running a body in a forked child
 * (with LS_FAULTS armed before its first fault point: the parent never hits one before forking).
 */
#ifndef LS_TEST_WRITER_UTIL_H
#define LS_TEST_WRITER_UTIL_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <logship/db.h>

#include "core/core.h"
#include "db_wait.h"
#include "harness.h"

#define PATHLEN 1400

static inline ls_db_options_t quiet_opts(void)
{
    return (ls_db_options_t){.no_idle_roll = true, .checkpoint_ms = 3600000};
}

static inline ls_db_t *open_db(const char *dir, const ls_db_options_t *o)
{
    ls_db_t *db = NULL;
    int rc = ls_db_open(dir, o, &db);
    cr_assert_eq(rc, 0, "open %s: %s (%s)", dir, ls_db_open_error(), ls_strerror(rc));
    return db;
}

/* A database in dir with quiet_opts() and target_size (0: the default). */
static inline ls_db_t *open_sized(const char *dir, uint64_t target_size)
{
    ls_db_options_t o = quiet_opts();
    o.target_size = target_size;
    return open_db(dir, &o);
}

/* Commits transaction i: nrec puts of "k<i>-<j>" = value of vlen bytes. */
static inline int commit_tx(ls_db_t *db, int i, int nrec, size_t vlen)
{
    ls_txn_t *t;
    cr_assert_eq(ls_txn_begin(db, &t), 0);
    char *val = malloc(vlen + 1);
    for (int j = 0; j < nrec; j++) {
        char key[48];
        int n = snprintf(key, sizeof(key), "k%d-%d", i, j);
        char tag[48]; /* the value starts with "v<i>-<j>\0", then filler */
        int tn = snprintf(tag, sizeof(tag), "v%d-%d", i, j);
        memset(val, 'a' + (i + j) % 26, vlen);
        memcpy(val, tag, LS_MIN((size_t) tn + 1, vlen));
        cr_assert_eq(ls_txn_put(t, key, (size_t) n, val, vlen), 0);
    }
    free(val);
    return ls_txn_commit(t);
}

static inline bool has_tx(ls_db_t *db, int i, int j)
{
    char key[48], want[48];
    int n = snprintf(key, sizeof(key), "k%d-%d", i, j);
    snprintf(want, sizeof(want), "v%d-%d", i, j);
    void *v = NULL;
    size_t len = 0;
    int rc = ls_db_get(db, key, (size_t) n, &v, &len);
    bool ok = rc == 0 && !strcmp(v, want);
    free(v);
    return ok;
}

typedef struct {
    char name[PATHLEN]; /* path */
    uint64_t gen;       /* generation number */
} genfile_t;

/* Closed generations of dir, sorted; returns the count. */
static inline int list_gens(const char *dir, genfile_t *out, int max)
{
    char logs[PATHLEN - 300];
    snprintf(logs, sizeof(logs), "%s/logs", dir);
    DIR *d = opendir(logs);
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < max;) {
        uint32_t ep;
        uint64_t g;
        if (ls_gen_name_parse(e->d_name, "E00", &ep, &g) != 0) continue;
        snprintf(out[n].name, PATHLEN, "%s/%s", logs, e->d_name);
        out[n++].gen = g;
    }
    closedir(d);
    for (int i = 0; i < n; i++) /* insertion sort by generation */
        for (int j = i; j > 0 && out[j].gen < out[j - 1].gen; j--) {
            genfile_t tmp = out[j];
            out[j] = out[j - 1];
            out[j - 1] = tmp;
        }
    return n;
}

static inline off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static inline void cur_path(const char *dir, char *out)
{
    snprintf(out, PATHLEN, "%s/logs/E00.log", dir);
}

/* Runs body(dir, arg) in a forked child with LS_FAULTS=faults; returns its exit status. */
static inline int in_child(const char *faults, void (*body)(const char *, int), const char *dir,
                           int arg)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (faults) setenv("LS_FAULTS", faults, 1);
        body(dir, arg);
        _exit(0); /* a crash: no ls_db_close */
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Child: commits n small transactions (3 records each), each once the store holds the one before
 * (so a crash leaves the store at the previous commit); before the last one writes the current
 * log's size to <dir>.pos. */
static inline void child_commit(const char *dir, int n)
{
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = NULL;
    if (ls_db_open(dir, &o, &db)) _exit(3);
    for (int i = 0; i < n; i++) {
        if (i == n - 1) {
            char p[PATHLEN], c[PATHLEN];
            snprintf(p, sizeof(p), "%s.pos", dir);
            cur_path(dir, c);
            FILE *f = fopen(p, "w");
            fprintf(f, "%lld\n", (long long) file_size(c));
            fclose(f);
        }
        if (!wait_applied(db, 10000)) _exit(5);
        if (commit_tx(db, i, 2, 8)) _exit(4);
    }
}

/* Child: commits n transactions then rolls. */
static inline void child_commit_roll(const char *dir, int n)
{
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = NULL;
    if (ls_db_open(dir, &o, &db)) _exit(3);
    for (int i = 0; i < n; i++)
        if (commit_tx(db, i, 2, 8)) _exit(4);
    ls_db_roll(db);
    _exit(5); /* the fault point should have ended us */
}

/* ---- staggered commits: one flusher batch each ------------------------------------------- */

typedef struct {
    ls_db_t *db;  /* shared database */
    int i;        /* transaction number (commit_tx) */
    int rc;       /* its commit's result */
    pthread_t th; /* the committing thread */
} stagger_t;

static inline void *stagger_commit(void *arg)
{
    stagger_t *s = arg;
    s->rc = commit_tx(s->db, s->i, 2, 300);
    return NULL;
}

static inline void *stagger_commit_noop(void *arg)
{
    return arg;
}

/* True once the log is durable up to lsn (ls_db_stats' last_lsn), false after timeout_ms. */
static inline bool wait_durable(ls_db_t *db, uint64_t lsn, int timeout_ms)
{
    for (uint64_t end = ls_mono_ns() + (uint64_t) timeout_ms * 1000000u; ls_mono_ns() < end;) {
        ls_db_stats_t st;
        ls_db_stats(db, &st);
        if (st.last_lsn >= lsn) return true;
        usleep(1000);
    }
    return false;
}

/* Commits transactions first..n-1 (2 records of 300 bytes: 3 LSNs each, transactions 0..first-1
 * committed before) from one thread each, starting each once the one before is durable in the
 * log, so every one is its own flusher batch. Returns false when one did not become durable
 * within timeout_ms. Join the threads with pthread_join(s[i].th), first <= i < n. */
static inline bool commit_staggered_from(ls_db_t *db, stagger_t *s, int first, int n,
                                         int timeout_ms)
{
    for (int i = first; i < n; i++) {
        s[i] = (stagger_t){.db = db, .i = i};
        pthread_create(&s[i].th, NULL, stagger_commit, &s[i]);
        if (!wait_durable(db, 3u * (uint64_t) (i + 1), timeout_ms)) return false;
    }
    return true;
}

/* Transaction 0 committed and applied alone (the store's first apply), then 1..n-1 staggered as
 * above while the applier is held after that apply (writer.apply.after=sleep:MS@1). */
static inline bool commit_staggered(ls_db_t *db, stagger_t *s, int n, int timeout_ms)
{
    s[0] = (stagger_t){.db = db, .i = 0};
    stagger_commit(&s[0]);
    pthread_create(&s[0].th, NULL, stagger_commit_noop, NULL);
    if (s[0].rc || !wait_applied(db, timeout_ms)) return false;
    return commit_staggered_from(db, s, 1, n, timeout_ms);
}

#endif
