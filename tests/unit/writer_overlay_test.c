/*
 * The writer acknowledges a commit once it is durable in the log; reads of commits the store does
 * not hold yet come from the overlay. These tests hold the applier with a fault point
 * (writer.apply.before=sleep:MS) so that the store is provably behind while they read.
 */
#include "writer_util.h"

static bool store_caught_up(void *ctx)
{
    ls_db_stats_t s;
    ls_db_stats(ctx, &s);
    return s.applied_lsn == s.last_lsn && s.overlay_keys == 0;
}

static int put1(ls_db_t *db, const char *key, const char *val)
{
    ls_txn_t *t;
    cr_assert_eq(ls_txn_begin(db, &t), 0);
    cr_assert_eq(ls_txn_put(t, key, strlen(key), val, strlen(val)), 0);
    return ls_txn_commit(t);
}

static int del1(ls_db_t *db, const char *key)
{
    ls_txn_t *t;
    cr_assert_eq(ls_txn_begin(db, &t), 0);
    cr_assert_eq(ls_txn_del(t, key, strlen(key)), 0);
    return ls_txn_commit(t);
}

/* The value of key as a string ("" with rc when absent). */
static int get_str(ls_db_t *db, const char *key, char *out, size_t outlen)
{
    void *v = NULL;
    size_t len = 0;
    int rc = ls_db_get(db, key, strlen(key), &v, &len);
    snprintf(out, outlen, "%s", rc == 0 ? (char *) v : "");
    free(v);
    return rc;
}

Test(writer_overlay, a_read_right_after_commit_sees_it_while_the_applier_is_held, .timeout = 60)
{
    /* Every apply waits 1.5 s before its store transaction. */
    setenv("LS_FAULTS", "writer.apply.before=sleep:1500", 1);
    char *dir = ls_h_tmpdir("overlay");
    ls_db_t *db = open_sized(dir, 0);
    char v[64];
    cr_assert_eq(put1(db, "a", "one"), 0);
    cr_assert_eq(get_str(db, "a", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "one");
    cr_assert_eq(put1(db, "a", "two"), 0);
    cr_assert_eq(put1(db, "b", ""), 0);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.commits, 3, "acknowledged once durable");
    cr_assert_eq(s.applied_lsn, 0, "the store holds none of them yet");
    cr_assert_eq(s.overlay_keys, 2);
    cr_assert_gt(s.unapplied_bytes, 0);
    cr_assert_eq(get_str(db, "a", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "two", "the latest LSN wins");
    cr_assert_eq(get_str(db, "b", v, sizeof(v)), 0, "an empty value is a value");
    cr_assert_str_eq(v, "");
    cr_assert_eq(get_str(db, "c", v, sizeof(v)), LS_ENOENT);
    cr_assert(ls_h_wait_for(store_caught_up, db, 20000), "the applier catches up and trims");
    ls_db_stats(db, &s);
    cr_assert_eq(s.unapplied_bytes, 0);
    cr_assert_eq(get_str(db, "a", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "two", "from the store now");
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree_free(dir);
}

Test(writer_overlay, a_delete_in_the_overlay_hides_the_store_value, .timeout = 60)
{
    /* The first apply (of "k") runs at once; later ones wait 2 s each. */
    setenv("LS_FAULTS", "writer.apply.before=sleep:2000@2", 1);
    char *dir = ls_h_tmpdir("overlay");
    ls_db_t *db = open_sized(dir, 0);
    char v[64];
    cr_assert_eq(put1(db, "k", "stored"), 0);
    cr_assert(ls_h_wait_for(store_caught_up, db, 10000), "k is in the store");
    cr_assert_eq(put1(db, "other", "x"), 0); /* taken by the held apply */
    cr_assert_eq(del1(db, "k"), 0);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_lt(s.applied_lsn, s.last_lsn, "the delete is not in the store yet");
    cr_assert_eq(get_str(db, "k", v, sizeof(v)), LS_ENOENT, "the overlay's delete wins");
    cr_assert_eq(put1(db, "k", "again"), 0);
    cr_assert_eq(get_str(db, "k", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "again");
    cr_assert_eq(del1(db, "k"), 0);
    cr_assert(ls_h_wait_for(store_caught_up, db, 20000));
    cr_assert_eq(get_str(db, "k", v, sizeof(v)), LS_ENOENT, "deleted in the store too");
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree_free(dir);
}

typedef struct {
    ls_db_t *db;          /* the database */
    uint64_t applied_lsn; /* wait until the store holds at least this LSN */
    uint64_t applies;     /* and the applier finished (trimmed) at least this many applies */
} until_t;

static bool reached(void *ctx)
{
    until_t *u = ctx;
    ls_db_stats_t s;
    ls_db_stats(u->db, &s);
    return s.applied_lsn >= u->applied_lsn && s.applies >= u->applies;
}

/* Holds: apply 1 for 1.5 s after its store transaction (before its trim), apply 2 for 1.5 s
 * before its store transaction. */
#define HOLD_BETWEEN "writer.apply.after=sleep:1500@1,writer.apply.before=sleep:1500@2"

Test(writer_overlay, trimming_keeps_a_later_write_of_an_applied_key, .timeout = 60)
{
    /* Apply 1 writes "k"=v1 (lsn 1-2); while it is held before its trim, "k"=v2 (lsn 3-4) is
     * committed. The trim of apply 1 must keep "k": its entry is v2's, newer than what apply 1
     * wrote; the store still has v1 until apply 2. */
    setenv("LS_FAULTS", HOLD_BETWEEN, 1);
    char *dir = ls_h_tmpdir("overlay");
    ls_db_t *db = open_sized(dir, 0);
    char v[64];
    cr_assert_eq(put1(db, "k", "v1"), 0);
    until_t u = {.db = db, .applied_lsn = 2};
    cr_assert(ls_h_wait_for(reached, &u, 10000), "apply 1 committed");
    cr_assert_eq(put1(db, "k", "v2"), 0);
    u.applies = 1;
    cr_assert(ls_h_wait_for(reached, &u, 10000), "apply 1 trimmed");
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.applied_lsn, 2, "apply 2 is held: the store has v1");
    cr_assert_eq(s.overlay_keys, 1, "k stays: its entry is v2's");
    cr_assert_eq(get_str(db, "k", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "v2", "not the store's v1");
    cr_assert(ls_h_wait_for(store_caught_up, db, 20000));
    cr_assert_eq(get_str(db, "k", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "v2");
    ls_db_stats(db, &s);
    cr_assert_eq(s.overlay_keys, 0);
    cr_assert_eq(s.commits, 2);
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree_free(dir);
}

Test(writer_overlay, the_table_grows_and_shrinks_keeping_what_is_not_applied, .timeout = 60)
{
    /* Transaction 0 (5000 keys: the table grows to 16384 slots) is apply 1; transaction 1 (10
     * keys) is committed while apply 1 is held before its trim, and waits for apply 2 (held).
     * Trimming transaction 0 leaves 10 keys in a table 1/8 full or less: it shrinks, and they
     * must still be found. */
    setenv("LS_FAULTS", HOLD_BETWEEN, 1);
    char *dir = ls_h_tmpdir("overlay");
    ls_db_t *db = open_sized(dir, 0);
    cr_assert_eq(commit_tx(db, 0, 5000, 8), 0);
    for (int j = 0; j < 5000; j += 499)
        cr_assert(has_tx(db, 0, j), "k0-%d", j);
    until_t u = {.db = db, .applied_lsn = 5001};
    cr_assert(ls_h_wait_for(reached, &u, 10000), "apply 1 committed");
    cr_assert_eq(commit_tx(db, 1, 10, 8), 0);
    u.applies = 1;
    cr_assert(ls_h_wait_for(reached, &u, 10000), "apply 1 trimmed");
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.applied_lsn, 5001, "apply 2 is held");
    cr_assert_eq(s.overlay_keys, 10, "transaction 1 only");
    for (int j = 0; j < 10; j++)
        cr_assert(has_tx(db, 1, j), "k1-%d after the shrink", j);
    for (int j = 0; j < 5000; j += 499)
        cr_assert(has_tx(db, 0, j), "k0-%d from the store", j);
    cr_assert(ls_h_wait_for(store_caught_up, db, 20000));
    for (int j = 0; j < 10; j++)
        cr_assert(has_tx(db, 1, j));
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree_free(dir);
}

typedef struct {
    ls_db_t *db; /* shared */
    int i;       /* transaction number */
    int rc;      /* commit result */
    bool done;   /* set after the commit returned */
    pthread_t th;
} bg_commit_t;

static void *bg_commit(void *arg)
{
    bg_commit_t *b = arg;
    b->rc = commit_tx(b->db, b->i, 4, 1000);
    __atomic_store_n(&b->done, true, __ATOMIC_RELEASE);
    return NULL;
}

Test(writer_overlay, commits_wait_for_the_applier_beyond_overlay_max, .timeout = 60)
{
    /* overlay_max 8 KiB; each transaction is ~4 KiB of log. The first apply is held 2 s. */
    setenv("LS_FAULTS", "writer.apply.before=sleep:2000@1", 1);
    char *dir = ls_h_tmpdir("overlay");
    ls_db_options_t o = quiet_opts();
    o.overlay_max = 8192;
    ls_db_t *db = open_db(dir, &o);
    cr_assert_eq(commit_tx(db, 0, 4, 1000), 0); /* taken by the held apply */
    cr_assert_eq(commit_tx(db, 1, 4, 1000), 0);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_geq(s.unapplied_bytes, 8192, "two transactions fill the overlay");
    bg_commit_t b = {.db = db, .i = 2};
    pthread_create(&b.th, NULL, bg_commit, &b);
    usleep(500 * 1000);
    cr_assert(!__atomic_load_n(&b.done, __ATOMIC_ACQUIRE), "the third commit waits for space");
    ls_db_stats(db, &s);
    cr_assert_eq(s.last_lsn, 10, "nothing of it was written yet");
    cr_assert_eq(s.overlay_waits, 1);
    pthread_join(b.th, NULL);
    cr_assert_eq(b.rc, 0, "acknowledged once the applier made room");
    ls_db_stats(db, &s);
    cr_assert_eq(s.last_lsn, 15);
    cr_assert_geq(s.applied_lsn, 5, "the held apply committed first");
    for (int i = 0; i < 3; i++)
        cr_assert(has_tx(db, i, 0) && has_tx(db, i, 3), "tx %d", i);
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree_free(dir);
}

/* ---- readers and committers at once ------------------------------------------------------- */

#define WRITERS 3
#define ROUNDS  300
#define KEYS    16

typedef struct {
    ls_db_t *db; /* shared */
    int id;      /* writer number */
    int *acked;  /* writer id's last acknowledged round per key (-1: none), written by it */
    bool *stop;  /* readers stop once set */
    int errors;  /* reads that went back in time or failed */
} rw_t;

/* Writer id puts "w<id>-k<j>" = "<round>" for round 0..ROUNDS-1, j = round % KEYS, and deletes
 * the key of every 7th round (it comes back the round after next time). */
static void *writer_main(void *arg)
{
    rw_t *w = arg;
    for (int r = 0; r < ROUNDS; r++) {
        char key[32], val[32];
        int j = r % KEYS;
        snprintf(key, sizeof(key), "w%d-k%d", w->id, j);
        snprintf(val, sizeof(val), "%d", r);
        int rc = r % 7 == 6 ? del1(w->db, key) : put1(w->db, key, val);
        if (rc) w->errors++;
        __atomic_store_n(&w->acked[j], r % 7 == 6 ? -2 - r : r, __ATOMIC_RELEASE);
    }
    return NULL;
}

/* Reads every key of every writer: what it sees must be at least as new as what the writer had
 * acknowledged before the read began (read committed: no acknowledged commit is missed). */
static void *reader_main(void *arg)
{
    rw_t *w = arg; /* w[0..WRITERS-1] */
    int errors = 0;
    while (!__atomic_load_n(w[0].stop, __ATOMIC_ACQUIRE)) {
        for (int id = 0; id < WRITERS; id++) {
            for (int j = 0; j < KEYS; j++) {
                int before = __atomic_load_n(&w[id].acked[j], __ATOMIC_ACQUIRE);
                int round_before = before >= -1 ? before : -2 - before;
                char key[32], v[32];
                snprintf(key, sizeof(key), "w%d-k%d", id, j);
                int rc = get_str(w[id].db, key, v, sizeof(v));
                int after = __atomic_load_n(&w[id].acked[j], __ATOMIC_ACQUIRE);
                int round_after = after >= -1 ? after : -2 - after;
                if (rc == LS_ENOENT) {
                    /* absent: never written, deleted last, or deleted by a round of this key
                     * acknowledged during the read or in flight (visible once durable) */
                    bool ok = before < 0;
                    for (int r = round_before + KEYS; !ok && r <= round_after + KEYS; r += KEYS)
                        ok = r % 7 == 6;
                    if (!ok) errors++;
                } else if (rc != 0 || atoi(v) < round_before) {
                    errors++;
                }
            }
        }
    }
    return (void *) (intptr_t) errors;
}

Test(writer_overlay, concurrent_readers_and_committers_see_every_acknowledged_commit,
     .timeout = 120)
{
    char *dir = ls_h_tmpdir("overlay");
    ls_db_options_t o = quiet_opts();
    o.overlay_max = 4096; /* small: the backpressure path runs too */
    ls_db_t *db = open_db(dir, &o);
    int acked[WRITERS][KEYS];
    bool stop = false;
    rw_t w[WRITERS];
    pthread_t wt[WRITERS], rt[2];
    for (int i = 0; i < WRITERS; i++) {
        for (int j = 0; j < KEYS; j++)
            acked[i][j] = -1;
        w[i] = (rw_t){.db = db, .id = i, .acked = acked[i], .stop = &stop};
    }
    for (int i = 0; i < 2; i++)
        pthread_create(&rt[i], NULL, reader_main, w);
    for (int i = 0; i < WRITERS; i++)
        pthread_create(&wt[i], NULL, writer_main, &w[i]);
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(wt[i], NULL);
        cr_assert_eq(w[i].errors, 0, "writer %d: failed commits", i);
    }
    __atomic_store_n(&stop, true, __ATOMIC_RELEASE);
    for (int i = 0; i < 2; i++) {
        void *errors;
        pthread_join(rt[i], &errors);
        cr_assert_eq((intptr_t) errors, 0, "reader %d: reads older than acknowledged", i);
    }
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.commits, WRITERS * ROUNDS);
    cr_assert(ls_h_wait_for(store_caught_up, db, 20000));
    cr_assert_eq(ls_db_close(db), 0);
    /* Reopened: the store alone holds the same final state. */
    db = open_db(dir, &o);
    for (int i = 0; i < WRITERS; i++) {
        for (int j = 0; j < KEYS; j++) {
            int last = j + KEYS * ((ROUNDS - 1 - j) / KEYS); /* the last round of key j */
            char key[32], v[32];
            snprintf(key, sizeof(key), "w%d-k%d", i, j);
            int rc = get_str(db, key, v, sizeof(v));
            if (last % 7 == 6) {
                cr_assert_eq(rc, LS_ENOENT, "%s deleted last", key);
            } else {
                cr_assert_eq(rc, 0, "%s", key);
                cr_assert_eq(atoi(v), last, "%s", key);
            }
        }
    }
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree_free(dir);
}

/* Keys that sort close together in LMDB's order: a shared prefix, embedded zero bytes, lengths
 * either side of the applier's 16-byte sort prefix (keysort.c). */
#define NKEYS 12
static const struct {
    const char *k;
    size_t len;
} SORT_KEYS[NKEYS] = {
    {"a", 1},
    {"a\0", 2},
    {"a\0\0", 3},
    {"b", 1},
    {"0123456789abcdef", 16},
    {"0123456789abcdef\0", 17},
    {"0123456789abcdefX", 17},
    {"0123456789abcdeX", 16},
    {"0123456789abcdef-0123456789-0123456789-x", 40},
    {"0123456789abcdef-0123456789-0123456789-y", 40},
    {"0123456789abcdef-0123456789-0123456789", 38},
    {"z0123456789abcdef-0123456789", 28},
};

static size_t sort_key(size_t k, char *out)
{
    memcpy(out, SORT_KEYS[k].k, SORT_KEYS[k].len);
    return SORT_KEYS[k].len;
}

/* Apply 1 is held 1.5 s before its store transaction while 300 transactions of ops puts and
 * deletes each (keys 0..nkeys-1 by key(k, out[48]) returning the length, picked from seed) are
 * committed: the next applies merge them, apply them sorted by key with only the last write of
 * each key, and must leave what applying them one by one in LSN order would. Checked through the
 * store (after close: a fresh open reads it). Returns how many applies there were. */
static uint64_t merged_last_writes(size_t nkeys, int ops, uint64_t seed,
                                   size_t (*key)(size_t k, char *out))
{
    setenv("LS_FAULTS", "writer.apply.before=sleep:1500@1", 1);
    char *dir = ls_h_tmpdir("overlay");
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = open_db(dir, &o);
    char(*model)[32] = calloc(nkeys, sizeof(*model));
    bool *present = calloc(nkeys, sizeof(*present));
    cr_assert(model && present);
    uint64_t rng = seed;
    for (int i = 0; i < 300; i++) {
        ls_txn_t *t;
        cr_assert_eq(ls_txn_begin(db, &t), 0);
        for (int j = 0; j < ops; j++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            size_t k = (size_t) (rng >> 33) % nkeys;
            char kb[48];
            size_t klen = key(k, kb);
            if ((rng >> 20) % 5 == 0) {
                cr_assert_eq(ls_txn_del(t, kb, klen), 0);
                present[k] = false;
            } else {
                snprintf(model[k], sizeof(model[k]), "v%d.%d", i, j);
                cr_assert_eq(ls_txn_put(t, kb, klen, model[k], strlen(model[k])), 0);
                present[k] = true;
            }
        }
        cr_assert_eq(ls_txn_commit(t), 0);
    }
    cr_assert(ls_h_wait_for(store_caught_up, db, 20000));
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(ls_db_close(db), 0);
    unsetenv("LS_FAULTS");
    db = open_db(dir, &o);
    for (size_t k = 0; k < nkeys; k++) {
        char kb[48];
        size_t klen = key(k, kb);
        void *v = NULL;
        size_t len = 0;
        int rc = ls_db_get(db, kb, klen, &v, &len);
        if (present[k]) {
            cr_assert_eq(rc, 0, "key %zu present", k);
            cr_assert_eq(len, strlen(model[k]));
            cr_assert_eq(memcmp(v, model[k], len), 0, "key %zu: %.*s, want %s", k, (int) len,
                         (char *) v, model[k]);
        } else {
            cr_assert_eq(rc, LS_ENOENT, "key %zu deleted last", k);
        }
        free(v);
    }
    cr_assert_eq(ls_db_close(db), 0);
    free(model);
    free(present);
    ls_h_rmtree_free(dir);
    return s.applies;
}

Test(writer_overlay, a_merged_apply_in_key_order_leaves_the_last_write_of_each_key, .timeout = 60)
{
    uint64_t applies = merged_last_writes(NKEYS, 4, 12345, sort_key);
    cr_assert_lt(applies, 300, "applies merged batches (%llu applies)",
                 (unsigned long long) applies);
}

/* Keys that share a prefix and vary in few of their first 16 bytes (2), so that a merged apply
 * of enough operations takes keysort.c's radix path; four keys share each 16-byte prefix
 * "key-00NN-a-very-": that one, the same with a zero byte after it, and two longer ones. */
#define NBASE  24
#define NRKEYS (4 * NBASE)

static size_t radix_key(size_t k, char *out)
{
    static const char *const tails[4] = {"", "", "x-long", "y-long"};
    int n = snprintf(out, 48, "key-00%02zu-a-very-%s", k % NBASE, tails[k / NBASE]);
    return (size_t) n + (k / NBASE == 1); /* 1: its terminating zero too */
}

Test(writer_overlay, a_merged_apply_of_keys_sharing_a_prefix_leaves_the_last_write_of_each,
     .timeout = 60)
{
    /* As above, with 2,400 operations merged (the radix sort's threshold is 512). */
    merged_last_writes(NRKEYS, 8, 777, radix_key);
}

Test(writer_overlay, a_checkpoint_covers_every_commit_durable_before_it, .timeout = 60)
{
    /* The applier is held 1 s before its first store transaction: ls_db_checkpoint must wait for
     * it to apply what was acknowledged before the call, not checkpoint the empty store. */
    setenv("LS_FAULTS", "writer.apply.before=sleep:1000@1", 1);
    char *dir = ls_h_tmpdir("overlay");
    ls_db_t *db = open_sized(dir, 0);
    cr_assert_eq(put1(db, "a", "1"), 0);
    cr_assert_eq(put1(db, "b", "2"), 0);
    cr_assert_eq(ls_db_checkpoint(db), 0);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.last_lsn, 4);
    cr_assert_eq(s.applied_lsn, 4, "the store holds both commits");
    cr_assert_eq(s.checkpoint_lsn, 4, "and the checkpoint covers them");
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree_free(dir);
}
