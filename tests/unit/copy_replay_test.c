/* copy: the replay side: a file damaged in logs/ caught before replay, queued generations in
 * few transactions, replay lag, pause and resume, log removal (keep_logs), a seeded store's
 * records skipped, a batch's last write per key, replay held while a generation is received.
 * Split from copy_test.c; shared helpers in copy_test_util.h. */

#include <dirent.h>
#include <errno.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "copy_test_util.h"

static bool asked(void *ctx)
{
    return events_count(ctx, LS_COPY_EV_ASK_AGAIN, 3) == 1;
}

Test(copy, file_damaged_in_logs_is_caught_before_replay_and_asked_again)
{
    copy_fix_t f;
    fix_init(&f, "copy", 4, 3, 30);
    fix_start(&f, true, true);
    send_range(f.c, &f.ch, 1, 4);
    char p[4200];
    gen_path(p, sizeof(p), f.dir, "logs", 3, "");
    cr_assert(ls_h_flip_byte(p, f.ch.len[3] / 2, 0x10), "%s", p);
    ls_copy_pause_replay(f.c, false);
    wait_replayed(f.c, 2, true);
    cr_assert(ls_h_wait_for(asked, &f.ev, 5000), "ASK_AGAIN(3) reported");
    ls_copy_stats_t st;
    ls_copy_stats(f.c, &st);
    cr_assert_eq(st.last_replayed, 2, "nothing of generation 3 or later applied");
    cr_assert_eq(st.applied_generations, 2);
    cr_assert(!file_exists(f.dir, "logs", 3) && !file_exists(f.dir, "logs", 4));
    ls_copy_resume_t r;
    ls_copy_resume_point(f.c, &r);
    cr_assert_eq(r.next_generation, 3);
    cr_assert_arr_eq(r.digest, f.ch.digest[2], 32);
    fix_catch_up(&f, 3, 4);
    ls_copy_stats(f.c, &st);
    cr_assert_eq(st.applied_generations, 4);
    ls_copy_close(f.c);
    fix_fini(&f);
}

Test(copy, queued_generations_are_applied_in_few_transactions)
{
    copy_fix_t f;
    fix_init(&f, "copy", 10, 4, 30);
    fix_open(&f, false);
    send_range(f.c, &f.ch, 1, 10);
    ls_copy_stats_t st;
    ls_copy_stats(f.c, &st);
    cr_assert_eq(st.replay_queue, 10);
    cr_assert_gt(st.replay_queue_bytes, 0);
    cr_assert_eq(ls_copy_start(f.c), 0);
    wait_replayed(f.c, 10, true);
    ls_copy_stats(f.c, &st);
    cr_assert_lt(st.replay_txns, 10, "%llu transactions", (unsigned long long) st.replay_txns);
    cr_assert_eq(st.replay_txns, 1, "10 generations fit one transaction");
    cr_assert_eq(st.applied_generations, 10);
    store_matches(f.c, &f.ch);
    ls_copy_close(f.c);
    fix_fini(&f);
}

Test(copy, replay_lag_holds_a_generation_back_until_its_time)
{
    copy_fix_t f;
    fix_init(&f, "copy", 2, 2, 10);
    /* the builder closes generations at a fixed past time: lag = its age + 1.5 s */
    uint64_t age_ms = (ls_now_ns() - LS_H_GEN_CLOSE_NS) / 1000000ull;
    ls_copy_options_t o = {.dir = f.dir, .replay_lag_ms = age_ms + 1500};
    f.c = copy_open_opts(&o);
    cr_assert_eq(ls_copy_start(f.c), 0);
    uint64_t t0 = ls_mono_ns();
    send_range(f.c, &f.ch, 1, 2);
    usleep(400 * 1000);
    ls_copy_stats_t st;
    ls_copy_stats(f.c, &st);
    cr_assert_eq(st.last_replayed, 0, "held back by the lag");
    cr_assert_eq(st.replay_queue, 2);
    wait_replayed(f.c, 2, false);
    cr_assert_geq(ls_mono_ns() - t0, 1000000000ull, "not before its time");
    ls_copy_close(f.c);
    fix_fini(&f);
}

Test(copy, paused_replay_holds_and_resume_drains)
{
    copy_fix_t f;
    fix_init(&f, "copy", 3, 2, 10);
    fix_start(&f, false, true);
    send_range(f.c, &f.ch, 1, 3);
    usleep(300 * 1000);
    ls_copy_stats_t st;
    ls_copy_stats(f.c, &st);
    cr_assert(st.replay_paused);
    cr_assert_eq(st.last_replayed, 0);
    cr_assert_eq(st.last_inspected, 3, "receiving goes on while replay is paused");
    ls_copy_pause_replay(f.c, false);
    wait_replayed(f.c, 3, true);
    store_matches(f.c, &f.ch);
    ls_copy_close(f.c);
    fix_fini(&f);
}

static bool logs_are(void *ctx)
{
    return count_files(ctx, "logs") == 3;
}

Test(copy, log_removal_keeps_exactly_keep_logs_synced_generations)
{
    copy_fix_t f;
    fix_init(&f, "copy", 10, 2, 10);
    ls_copy_options_t o = {.dir = f.dir, .keep_logs = 3};
    f.c = copy_open_opts(&o);
    send_range(f.c, &f.ch, 1, 10);
    cr_assert_eq(count_files(f.dir, "logs"), 10, "nothing removed before replay");
    cr_assert_eq(ls_copy_start(f.c), 0);
    wait_replayed(f.c, 10, true);
    cr_assert(ls_h_wait_for(logs_are, f.dir, 5000), "logs/ holds %d", count_files(f.dir, "logs"));
    for (int g = 1; g <= 10; g++)
        cr_assert_eq(file_exists(f.dir, "logs", g), g >= 8, "generation %d", g);
    ls_copy_close(f.c);
    fix_fini(&f);
}

static int nothing(void *ctx, ls_store_txn_t *txn)
{
    (void) ctx;
    (void) txn;
    return 0;
}

Test(copy, seeded_store_skips_records_it_already_holds)
{
    copy_fix_t f;
    fix_init(&f, "copy", 1, 2, 10);
    /* generation 2: transaction A (held by the seed) then transaction B */
    ls_h_gen_spec_t spec;
    ls_h_gen_spec_default(&spec, 2, f.ch.last_lsn[1] + 1);
    spec.prev_digest = f.ch.digest[1];
    ls_h_gen_t *b = ls_h_gen_new(&spec);
    ls_h_gen_put(b, "seedA", 5, "a", 1);
    ls_h_gen_commit(b);
    uint64_t seed_lsn = f.ch.last_lsn[1] + ls_h_gen_count(b);
    ls_h_gen_put(b, "seedB", 5, "b", 1);
    ls_h_gen_commit(b);
    ls_h_gen_close(b);
    /* the seed: a store whose meta names generation 2 up to transaction A's COMMIT */
    char sdir[4200];
    snprintf(sdir, sizeof(sdir), "%s/store", f.dir);
    ls_store_options_t so = {.create = true, .dbid = spec.dbid};
    ls_store_t *s;
    cr_assert_eq(ls_store_open(sdir, &so, &s, NULL, 0), 0);
    ls_store_meta_t m;
    ls_store_meta(s, &m);
    m.epoch = 1;
    m.generation = 2;
    m.lsn = seed_lsn;
    m.digest_generation = 1;
    memcpy(m.digest, f.ch.digest[1], 32);
    cr_assert_eq(ls_store_apply(s, nothing, NULL, &m), 0);
    ls_store_close(s);

    fix_open(&f, false);
    ls_copy_resume_t r;
    ls_copy_resume_point(f.c, &r);
    cr_assert_eq(r.next_generation, 2);
    cr_assert_arr_eq(r.digest, f.ch.digest[1], 32);
    cr_assert_eq(r.last_lsn, seed_lsn);
    size_t len;
    const uint8_t *bytes = ls_h_gen_bytes(b, &len);
    char err[1024] = "";
    cr_assert_eq(send_bytes(f.c, 2, bytes, len, ls_h_gen_digest(b), err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(ls_copy_start(f.c), 0);
    wait_replayed(f.c, 2, true);
    void *v;
    size_t vl;
    cr_assert_eq(ls_store_get(ls_copy_store(f.c), "seedA", 5, &v, &vl), LS_ENOENT,
                 "a record at or below the seed's LSN is not applied again");
    cr_assert_eq(ls_store_get(ls_copy_store(f.c), "seedB", 5, &v, &vl), 0);
    free(v);
    ls_copy_close(f.c);
    ls_h_gen_free(b);
    fix_fini(&f);
}

/* Keys of unusual shapes for the replayer's sort (its order compares the 16 bytes past the
 * batch's common prefix first, as two words): prefixes of one another, zero bytes, 0xff, the
 * longest key, and keys that share more than 8 and more than 16 bytes past the prefix. */
#define SK_N 24
typedef struct {
    uint8_t key[SK_N][LS_KEY_MAX];
    size_t len[SK_N];
    char val[SK_N][48]; /* the last value put, "" when deleted or never written */
    bool seen[SK_N];    /* found in the store */
} sortkeys_t;

static void sortkeys_init(sortkeys_t *m)
{
    static const char *const fixed[] = {"k",
                                        "kk",
                                        "k\xff",
                                        "\xff",
                                        "tenant/",
                                        "tenant/a",
                                        "tenant/aaaaaaaa",
                                        "tenant/aaaaaaaab",
                                        "tenant/aaaaaaaa\x01",
                                        "tenant/b",
                                        "tenant/10",
                                        "tenant/100",
                                        "tenant/1000000000",
                                        "tenant/aaaaaaaaaaaaaaaa-tail-x",
                                        "tenant/aaaaaaaaaaaaaaaa-tail-y"};
    memset(m, 0, sizeof(*m));
    size_t i = 0;
    for (; i < LS_ARRAY_SIZE(fixed); i++) {
        m->len[i] = strlen(fixed[i]);
        memcpy(m->key[i], fixed[i], m->len[i]);
    }
    for (size_t z = 1; z <= 4; z++, i++) { /* "k\0", "k\0\0", ... : equal to "k" zero-padded */
        m->key[i][0] = 'k';
        m->len[i] = 1 + z * z; /* within and past the 8 bytes compared first */
    }
    m->key[i][0] = 0; /* a lone zero byte */
    m->len[i++] = 1;
    for (size_t l = LS_KEY_MAX - 2; l <= LS_KEY_MAX; l++, i++) {
        memset(m->key[i], 'z', l);
        m->len[i] = l;
    }
    for (; i < SK_N; i++) /* long shared prefix, short distinct tails */
        m->len[i] = (size_t) snprintf((char *) m->key[i], LS_KEY_MAX,
                                      "a-long-shared-prefix-of-keys/%zu", i);
}

static int sortkeys_cmp(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    sortkeys_t *m = ctx;
    for (int i = 0; i < SK_N; i++) {
        if (m->len[i] != kl || memcmp(m->key[i], k, kl) != 0) continue;
        cr_assert(m->val[i][0], "key %d present in the store but deleted by the log", i);
        cr_assert(vl == strlen(m->val[i]) && !memcmp(v, m->val[i], vl),
                  "key %d: store has %.*s, log says %s", i, (int) vl, (const char *) v, m->val[i]);
        m->seen[i] = true;
        return 0;
    }
    cr_assert_fail("the store holds a key the log never wrote (%zu bytes)", kl);
    return 1;
}

Test(copy, a_batch_applies_the_last_write_of_each_key_whatever_its_bytes)
{
    char *dir = ls_h_tmpdir("copy");
    static sortkeys_t m;
    sortkeys_init(&m);
    uint8_t *buf[13] = {0};
    size_t len[13];
    uint8_t digest[13][32];
    uint64_t lsn = 1, txid = 1, rnd = 7;
    for (int g = 1; g <= 12; g++) {
        ls_h_gen_spec_t spec;
        ls_h_gen_spec_default(&spec, (uint64_t) g, lsn);
        spec.prev_digest = g > 1 ? digest[g - 1] : NULL;
        spec.first_txid = txid;
        ls_h_gen_t *b = ls_h_gen_new(&spec);
        for (int t = 0; t < 6; t++, txid++) {
            for (int k = 0; k < 9; k++) {
                rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
                /* generations 5..8 write only the "tenant/" keys: a batch with a common prefix */
                int i =
                    g >= 5 && g <= 8 ? 4 + (int) ((rnd >> 33) % 11) : (int) ((rnd >> 33) % SK_N);
                if ((rnd >> 20) % 4 == 0) {
                    ls_h_gen_del(b, m.key[i], m.len[i]);
                    m.val[i][0] = 0;
                } else {
                    snprintf(m.val[i], sizeof(m.val[i]), "g%d-t%d-k%d", g, t, k);
                    ls_h_gen_put(b, m.key[i], m.len[i], m.val[i], strlen(m.val[i]));
                }
            }
            ls_h_gen_commit(b);
        }
        ls_h_gen_close(b);
        buf[g] = ls_h_gen_copy(b, &len[g]);
        memcpy(digest[g], ls_h_gen_digest(b), 32);
        lsn += ls_h_gen_count(b);
        ls_h_gen_free(b);
    }
    /* batches of 4: 1..4 mixed keys, 5..8 the common prefix "tenant/", 9..12 mixed again */
    ls_copy_options_t o = {.dir = dir, .batch_generations = 4};
    ls_copy_t *c = copy_open_opts(&o);
    char err[1024] = "";
    for (int g = 1; g <= 12; g++)
        cr_assert_eq(send_bytes(c, (uint64_t) g, buf[g], len[g], digest[g], err, sizeof(err)), 0,
                     "generation %d: %s", g, err);
    cr_assert_eq(ls_copy_start(c), 0);
    wait_replayed(c, 12, false);
    ls_copy_stats_t st;
    ls_copy_stats(c, &st);
    cr_assert_eq(st.replay_txns, 3, "three batches of 4");
    cr_assert_eq(ls_store_iterate(ls_copy_store(c), sortkeys_cmp, &m), 0);
    for (int i = 0; i < SK_N; i++)
        cr_assert(!m.val[i][0] || m.seen[i], "key %d (%s) missing from the store", i, m.val[i]);
    ls_copy_close(c);
    for (int g = 1; g <= 12; g++)
        free(buf[g]);
    ls_h_rmtree_free(dir);
}

/* The nice value of every thread of this process but the caller's, in *n; false when one
 * differs from want (its value in *bad) or /proc cannot be read. */
static bool threads_at_nice(int want, int *n, int *bad)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    bool ok = d != NULL;
    *n = 0;
    while (ok && (e = readdir(d))) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == (int) syscall(SYS_gettid)) continue;
        char path[300], line[1024] = "";
        snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue; /* the thread ended meanwhile */
        bool got = fgets(line, sizeof(line), f) != NULL;
        fclose(f);
        const char *p = strrchr(line, ')');
        int nice = 0;
        /* after the command: state (field 3) ... nice (field 19) */
        ok = got && p &&
             sscanf(p + 2,
                    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
                    "%*d %d",
                    &nice) == 1;
        if (ok && nice != want) {
            *bad = nice;
            ok = false;
        }
        (*n)++;
    }
    if (d) closedir(d);
    return ok;
}

Test(copy, a_generation_being_received_holds_replay_only_for_a_while)
{
    copy_fix_t f;
    fix_init(&f, "copy", 3, 4, 30);
    fix_start(&f, false, false);
    send_range(f.c, &f.ch, 1, 2);
    /* generation 3 is left half received: 1 and 2 are applied meanwhile (the replayer yielding to
     * the receiver where it may, otherwise holding the batch for a while, not forever) */
    char err[1024] = "";
    cr_assert_eq(ls_copy_recv_begin(f.c, 1, 3, f.ch.len[3], LS_H_GEN_CLOSE_NS, err, sizeof(err)),
                 0);
    cr_assert_eq(ls_copy_recv_data(f.c, 3, 0, f.ch.buf[3], f.ch.len[3] / 2, err, sizeof(err)), 0,
                 "%s", err);
    wait_replayed(f.c, 2, false);
    ls_copy_stats_t st;
    ls_copy_stats(f.c, &st);
    cr_assert_eq(st.last_replayed, 2);
    /* the replayer may have yielded to the busy receiver (nice 19, where allowed: replay_yields
     * counts it), and it is back at the process's nice value before it reports a batch */
    errno = 0;
    int own = getpriority(PRIO_PROCESS, 0), threads = 0, bad = 0;
    cr_assert_eq(errno, 0);
    cr_assert(threads_at_nice(own, &threads, &bad),
              "a thread at nice %d after the batch was reported (the process's %d; %llu yields)",
              bad, own, (unsigned long long) st.replay_yields);
    cr_assert_gt(threads, 0, "the replayer thread is listed in /proc/self/task");
    cr_assert_eq(ls_copy_recv_data(f.c, 3, f.ch.len[3] / 2, f.ch.buf[3] + f.ch.len[3] / 2,
                                   f.ch.len[3] - f.ch.len[3] / 2, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(ls_copy_recv_end(f.c, 3, f.ch.digest[3], err, sizeof(err)), 0, "%s", err);
    wait_replayed(f.c, 3, true);
    store_matches(f.c, &f.ch);
    ls_copy_close(f.c);
    fix_fini(&f);
}
