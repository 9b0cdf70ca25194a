/*
 * The incremental resync (docs/SEED.md "Incremental resync", PROTOCOL.md §10 "Resync"), driven
 * with no socket: an old active A and a new active B built with the real writer (B a copy of A
 * activated in epoch 2, both then writing: B its new epoch, A its diverged generations), the
 * seed sessions of both sides exchanging frames through the codec, A's side demoting with the
 * chain it received (engine/role), the real snapshot worker on B. Checked: the split found and
 * the chain exchanged; the stream carries exactly the union of the keys both sides touched after
 * the split; A's store equals B's key for key afterwards and hands off at B's L; the fall-back
 * to a full seed when B no longer holds a generation after the split; a split B does not hold.
 * A crash in the middle of the one-transaction apply and the large store: seed_resync_crash_test.c;
 * the sessions' requests alone: seed_resync_session_test.c; the sides, the wire and the store
 * comparison: seed_resync_test_util.h.
 */

#include <criterion/criterion.h>

#include "seed_resync_test_util.h"

/* Shipping resumes at N: the copy A became asks for generation `from`; B's generations from..to
 * (epoch 2) are received and replayed through engine/copy. */
static void ship_and_replay(const sides_t *s, uint64_t from, uint64_t to)
{
    ls_copy_options_t o = {.dir = s->a};
    ls_copy_t *c = NULL;
    char err[1024] = "";
    cr_assert_eq(ls_copy_open(&o, &c, err, sizeof(err)), 0, "%s", err);
    ls_copy_resume_t r;
    ls_copy_resume_point(c, &r);
    cr_assert_eq(r.next_generation, from, "the copy asks for the generation holding L");
    for (uint64_t g = from; g <= to; g++) {
        char path[PATHLEN + 64];
        gen_path(path, sizeof(path), s->b, 2, g);
        size_t len = 0;
        uint8_t *buf = ls_h_read_file(path, &len);
        cr_assert_not_null(buf, "%s", path);
        int rc = ls_copy_recv_begin(c, 2, g, len, 0, err, sizeof(err));
        if (rc == 0) rc = ls_copy_recv_data(c, g, 0, buf, len, err, sizeof(err));
        if (rc == 0) rc = ls_copy_recv_end(c, g, NULL, err, sizeof(err));
        cr_assert_eq(rc, 0, "generation %llu: %s", (unsigned long long) g, err);
        free(buf);
    }
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_stats_t st;
    for (int i = 0; i < 3000; i++) {
        ls_copy_stats(c, &st);
        cr_assert_neq(st.state, LS_COPY_FAILED, "%s", st.reason);
        if (st.last_replayed == to && st.replay_queue == 0) break;
        usleep(10000);
    }
    ls_copy_stop(c);
    ls_copy_stats(c, &st);
    cr_assert_eq(st.last_replayed, to, "%s", st.reason);
    cr_assert_eq(st.applied_generations, to - from + 1, "each generation replayed once");
    ls_copy_close(c);
}

/* ---- tests ----------------------------------------------------------------------------------- */

Test(seed_resync, split_found_and_only_the_union_of_keys_moved, .timeout = 120)
{
    sides_t s;
    build(&s, "resync-whole");
    cr_assert(store_has(s.a, "a-only=a") && !store_has(s.a, "k3-2=v3-2"), "A before: its own");
    wire_t t;
    wire_start(&t, &s);
    pump(&t);
    cr_assert_eq(ls_seed_client_state(t.cli), LS_SEED_CLI_DONE, "%s",
                 ls_seed_client_error(t.cli, NULL));
    cr_assert(t.closed && t.swapped && t.copy, "%s", t.err);

    /* the chain: B's closed generations 1..5 (closing the database closed 5); the split is 3;
     * A's generations 4 and 5 were moved aside */
    cr_assert_eq(t.chain_links, 5, "%llu links", (unsigned long long) t.chain_links);
    cr_assert(t.demote.split.found);
    cr_assert_eq(t.demote.split.split, 3);
    cr_assert_eq(t.demote.role, LS_ROLE_DIVERGED);
    cr_assert_eq(t.demote.moved.generations, 2, "generations 4 and 5");
    cr_assert_eq(t.demote.moved.first_generation, 4);
    cr_assert_eq(t.demote.moved.last_generation, 5);

    /* exactly the union: A's 4 keys and B's 4 */
    cr_assert_eq(t.client_keys, 4, "k1-1, a-only, k3-2, a-open");
    ls_seed_info_t server_info = *ls_seed_server_info(t.srv);
    const ls_seed_info_t *info = &server_info;
    cr_assert(info->resync, "%s", info->fallback);
    cr_assert_eq(info->keys, 8);
    cr_assert_eq(info->split_generation, 3);
    cr_assert_eq(ls_seed_server_bytes_sent(t.srv), info->total_bytes);
    cr_assert_lt(info->total_bytes, 200, "8 short entries");
    cr_assert_gt(info->store_bytes, 10 * info->total_bytes, "far less than the store");
    fprintf(stderr, "resync: %llu keys, %llu bytes moved, the store is %llu bytes\n",
            (unsigned long long) info->keys, (unsigned long long) info->total_bytes,
            (unsigned long long) info->store_bytes);
    ls_seed_client_figures_t fig;
    ls_seed_client_figures(t.cli, &fig);
    cr_assert(fig.info.resync && fig.info.store_bytes == info->store_bytes);
    wire_free(&t);

    /* A equals B key for key: a key deleted on B is gone on A, A's own writes are undone */
    expect_equal_stores(&s);
    cr_assert(!store_has(s.a, "k2-0=v2-0"), "deleted on the new active");
    cr_assert(!store_has(s.a, "a-only=a") && !store_has(s.a, "a-open=x"), "A-only keys gone");
    cr_assert(store_has(s.a, "k1-1=v1-1"), "restored to the new active's value");
    cr_assert(store_has(s.a, "k3-2=v3-2"), "A's delete undone");

    /* the hand-off: A's meta is B's L in the generation holding it (5) */
    dump_t d;
    ls_store_meta_t ma, mb;
    dump_store(s.a, &d, &ma);
    dump_free(&d);
    dump_store(s.b, &d, &mb);
    dump_free(&d);
    cr_assert_eq(ma.lsn, mb.lsn);
    cr_assert_eq(ma.lsn, info->last_lsn);
    cr_assert_eq(ma.generation, 5);
    cr_assert_eq(ma.epoch, 2);
    cr_assert_eq(ma.digest_generation, 4);
    cr_assert_eq(info->generation, 5);
    char path[PATHLEN + 64];
    snprintf(path, sizeof(path), "%s/resync", s.a);
    cr_assert(access(path, F_OK) != 0, "the resync directory is gone");
    snprintf(path, sizeof(path), "%s/logs/E00.log", s.a);
    cr_assert(access(path, F_OK) != 0, "no open log left on the copy");

    /* shipping resumes at generation 5 (records <= L skipped), then goes on with what B wrote
     * since: equal again */
    ls_db_t *bdb = open_quiet(s.b);
    cr_assert_eq(put1(bdb, "after", "1"), 0);
    cr_assert_eq(put1(bdb, "k1-1", "b-later"), 0);
    cr_assert_eq(del1(bdb, "b-only"), 0);
    cr_assert_eq(ls_db_close(bdb), 0);
    ship_and_replay(&s, 5, 6);
    expect_equal_stores(&s);
    cr_assert(store_has(s.a, "k1-1=b-later") && !store_has(s.a, "b-only=b"));
    sides_free(&s);
}

Test(seed_resync, falls_back_to_a_full_seed_without_the_logs_since_the_split, .timeout = 120)
{
    sides_t s;
    build(&s, "resync-fallback");
    char path[PATHLEN + 64];
    gen_path(path, sizeof(path), s.b, 2, 4);
    cr_assert_eq(unlink(path), 0, "%s: retention removed generation 4 on the new active", path);
    wire_t t;
    wire_start(&t, &s);
    pump(&t);
    cr_assert_eq(ls_seed_client_state(t.cli), LS_SEED_CLI_DONE, "%s",
                 ls_seed_client_error(t.cli, NULL));
    ls_seed_info_t server_info = *ls_seed_server_info(t.srv);
    const ls_seed_info_t *info = &server_info;
    cr_assert(!info->resync);
    cr_assert(strstr(info->fallback, "generation 4"), "%s", info->fallback);
    ls_seed_client_figures_t fig;
    ls_seed_client_figures(t.cli, &fig);
    cr_assert(!fig.info.resync && strstr(fig.info.fallback, "full seed"), "%s", fig.info.fallback);
    wire_free(&t);
    expect_equal_stores(&s);
    sides_free(&s);
}

/* The new active no longer holding the split named: LS_ELINEAGE, nothing applied. */
Test(seed_resync, a_split_the_server_does_not_hold_is_refused, .timeout = 120)
{
    sides_t s;
    build(&s, "resync-lineage");
    ls_seed_resync_req_t rq = {.split_generation = 3, .split_epoch = 1};
    memset(rq.split_digest, 0xee, LS_DIGEST_SIZE);
    ls_seed_snapshot_options_t so = {.db_dir = s.b, .resync = &rq};
    ls_seed_snapshot_t *snap = NULL;
    char err[1024] = "";
    cr_assert_eq(ls_seed_snapshot_new(&so, &snap, err, sizeof(err)), LS_ELINEAGE);
    cr_assert(strstr(err, "split generation 3") && strstr(err, "not ours"), "%s", err);
    sides_free(&s);
}
