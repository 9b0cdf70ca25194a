/* seed: two seeds of one database at once (issue 13, defect 1): each snapshot is consistent
 * while an application rewrites the store. Split from seed_test.c; helpers in
 * seed_converge_util.h. */

#include <criterion/criterion.h>

#include "seed_converge_util.h"

/* ---- two seeds of one database at once (issue 13, defect 1) --------------------------------- */

/* A writer in another process (the application) rewrites the store without pause: its first
 * transaction writes RACE_KEYS keys, each later one rewrites one window of RACE_WINDOW keys and
 * the window's marker "w<n>" with a new counter. A consistent snapshot therefore holds every key,
 * each carrying its window marker's counter. */
#define RACE_KEYS   200000
#define RACE_WINDOW 5000
#define RACE_VLEN   400

typedef struct {
    uint64_t counter; /* this transaction's number */
} race_txn_t;

static int race_put(void *ctx, ls_store_txn_t *t)
{
    uint64_t c = ((race_txn_t *) ctx)->counter;
    uint8_t v[RACE_VLEN];
    memset(v, 0xab, sizeof(v));
    ls_put64(v, c);
    int nw = RACE_KEYS / RACE_WINDOW;
    int from = c == 1 ? 0 : (int) (c % (uint64_t) nw) * RACE_WINDOW;
    int to = c == 1 ? RACE_KEYS : from + RACE_WINDOW;
    for (int i = from; i < to; i++) {
        char k[16];
        int n = snprintf(k, sizeof(k), "k%06d", i), rc;
        if ((rc = ls_store_put(t, k, (size_t) n, v, sizeof(v)))) return rc;
        if (i % RACE_WINDOW == 0) {
            n = snprintf(k, sizeof(k), "w%03d", i / RACE_WINDOW);
            if ((rc = ls_store_put(t, k, (size_t) n, v, 8))) return rc;
        }
    }
    return 0;
}

/* The writer process: never returns; writes one byte to ready after its first transaction. */
static void race_writer(const char *store, int ready)
{
    ls_store_options_t o = {.map_size = 1ull << 30};
    ls_store_t *s = NULL;
    char err[512] = "";
    LS_H_CHILD_CHECK(ls_store_open(store, &o, &s, err, sizeof(err)) == 0);
    ls_store_meta_t m;
    ls_store_meta(s, &m); /* the position stays the writer's: only data changes */
    for (race_txn_t t = {.counter = 1};; t.counter++) {
        LS_H_CHILD_CHECK(ls_store_apply(s, race_put, &t, &m) == 0);
        if (t.counter == 1) LS_H_CHILD_CHECK(write(ready, "r", 1) == 1);
    }
}

typedef struct {
    const char *db;       /* the active database */
    char out[PATHSZ];     /* directory the stream is written into (data.mdb) */
    int delay_ms;         /* start this late */
    bool direct;          /* stream from the compacting copy */
    int rc;               /* first failure */
    char err[1024];       /* its message */
    uint64_t total_bytes; /* stream size */
} race_snap_t;

/* One seed's active side: the snapshot, streamed into out/data.mdb. */
static void *race_snapshot(void *arg)
{
    race_snap_t *r = arg;
    usleep((useconds_t) r->delay_ms * 1000u);
    ls_seed_snapshot_options_t so = {.db_dir = r->db, .direct = r->direct};
    ls_seed_snapshot_t *s = NULL;
    r->rc = ls_seed_snapshot_new(&so, &s, r->err, sizeof(r->err));
    if (r->rc) return NULL;
    r->total_bytes = ls_seed_snapshot_info(s)->total_bytes;
    char file[PATHSZ + 16];
    snprintf(file, sizeof(file), "%s/data.mdb", r->out);
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    static __thread uint8_t buf[CHUNK];
    for (;;) {
        uint64_t off;
        size_t n;
        if (fd < 0 || (r->rc = ls_seed_snapshot_read(s, buf, sizeof(buf), &off, &n)) || n == 0)
            break;
        if (pwrite(fd, buf, n, (off_t) off) != (ssize_t) n) r->rc = LS_EIO;
    }
    if (fd < 0) r->rc = LS_EIO;
    if (fd >= 0) close(fd);
    ls_seed_snapshot_free(s);
    return NULL;
}

typedef struct {
    uint64_t win[RACE_KEYS / RACE_WINDOW]; /* the markers' counters */
    uint64_t keys;                         /* "k" keys seen */
    uint64_t bad;                          /* keys whose counter is not their marker's */
} race_check_t;

static int race_marker(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    race_check_t *c = ctx;
    const char *key = k;
    if (kl == 4 && key[0] == 'w' && vl == 8)
        c->win[atoi((char[4]){key[1], key[2], key[3], 0})] = ls_get64(v);
    return 0;
}

static int race_value(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    race_check_t *c = ctx;
    const char *key = k;
    if (kl != 7 || key[0] != 'k') return 0;
    char num[8] = {0};
    memcpy(num, key + 1, 6);
    int i = atoi(num);
    c->keys++;
    if (vl != RACE_VLEN || i >= RACE_KEYS || ls_get64(v) != c->win[i / RACE_WINDOW]) c->bad++;
    return 0;
}

/* Opens the streamed copy and checks it; returns a description of what is wrong, or NULL. */
static char *race_check(const char *dir)
{
    static __thread char why[PATHSZ + 1024];
    ls_store_t *s = NULL;
    char err[512] = "";
    ls_store_options_t o = {0};
    int rc = ls_store_open(dir, &o, &s, err, sizeof(err));
    race_check_t c = {0};
    if (rc == 0) rc = ls_store_iterate(s, race_marker, &c);
    if (rc == 0) rc = ls_store_iterate(s, race_value, &c);
    ls_store_close(s);
    if (rc) {
        snprintf(why, sizeof(why), "%s: %s %s", dir, ls_err_name(rc), err);
        return why;
    }
    if (c.keys == RACE_KEYS && c.bad == 0) return NULL;
    snprintf(why, sizeof(why), "%s: %llu keys of %d, %llu carry another transaction's counter", dir,
             (unsigned long long) c.keys, RACE_KEYS, (unsigned long long) c.bad);
    return why;
}

/* The daemon's status and removal read the active store's meta record meanwhile. */
typedef struct {
    const char *store; /* <db>/store */
    atomic_bool stop;  /* asks the thread to finish */
    int reads;         /* meta records read */
    int rc;            /* first failure */
} race_status_t;

static void *race_status(void *arg)
{
    race_status_t *st = arg;
    while (!atomic_load(&st->stop) && st->rc == 0) {
        ls_store_meta_t m;
        st->rc = ls_store_peek_meta(st->store, &m, NULL, 0);
        st->reads++;
        usleep(2000);
    }
    return NULL;
}

Test(seed, two_snapshots_of_one_store_at_once_are_consistent, .timeout = 240)
{
    env_t e;
    env_init(&e, "seed");
    ls_db_options_t o = db_opts(1 << 20);
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(e.db, &o, &db), 0, "%s", ls_db_open_error());
    cr_assert_eq(commit_range(db, 0, 4, 2, 100), 0);
    cr_assert_eq(ls_db_close(db), 0);
    char store[PATHSZ];
    snprintf(store, sizeof(store), "%s/store", e.db);
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    fflush(NULL);
    pid_t w = fork();
    cr_assert_geq(w, 0);
    if (w == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion must not leave it writing */
        if (getppid() == 1) _exit(3);
        close(ready[0]);
        race_writer(store, ready[1]);
    }
    close(ready[1]);
    char b;
    cr_assert_eq(read(ready[0], &b, 1), 1, "the writer's first transaction");
    close(ready[0]);

    /* A solo snapshot gives the copy time; the second snapshot then starts half of it late, so
     * the first one finishes (and closes what it opened) while the second is still copying. */
    race_snap_t solo = {.db = e.db};
    snprintf(solo.out, sizeof(solo.out), "%s/solo", e.base);
    cr_assert_eq(mkdir(solo.out, 0700), 0);
    uint64_t t0 = ls_mono_ns();
    race_snapshot(&solo);
    int copy_ms = (int) ((ls_mono_ns() - t0) / 1000000u);
    cr_assert_eq(solo.rc, 0, "%s", solo.err);
    char *why = race_check(solo.out);
    cr_assert_null(why, "a single snapshot: %s", why);

    race_status_t st = {.store = store};
    pthread_t status;
    cr_assert_eq(pthread_create(&status, NULL, race_status, &st), 0);
    uint64_t deadline = ls_mono_ns() + 30 * 1000000000ull;
    int rounds = 0;
    for (; rounds < 6 && (rounds < 2 || ls_mono_ns() < deadline); rounds++) {
        /* the second one streams from the compaction on odd rounds */
        race_snap_t r[2] = {
            {.db = e.db},
            {.db = e.db, .delay_ms = copy_ms * (rounds % 4) / 8, .direct = rounds % 2 == 1}};
        pthread_t t[2];
        for (int i = 0; i < 2; i++) {
            snprintf(r[i].out, sizeof(r[i].out), "%s/round%d-%c", e.base, rounds, 'a' + i);
            cr_assert_eq(mkdir(r[i].out, 0700), 0);
            cr_assert_eq(pthread_create(&t[i], NULL, race_snapshot, &r[i]), 0);
        }
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        for (int i = 0; i < 2; i++) {
            cr_assert_eq(r[i].rc, 0, "round %d, snapshot %d: %s (%s)", rounds, i,
                         ls_err_name(r[i].rc), r[i].err);
            why = race_check(r[i].out);
            cr_assert_null(why, "round %d, snapshot %d: %s", rounds, i, why);
            ls_h_rmtree(r[i].out);
        }
    }
    kill(w, SIGKILL);
    waitpid(w, NULL, 0);
    atomic_store(&st.stop, true); /* its peeks hold an environment while they run */
    pthread_join(status, NULL);
    cr_assert_eq(st.rc, 0, "the meta record read beside the snapshots (%d reads): %s", st.reads,
                 ls_err_name(st.rc));
    cr_assert_eq(ls_store_env_count(), 0, "every environment closed with its last user");
    env_free(&e);
}
