/* copy: receive, inspect, replay; refusals, ask-again, Failed, batching, lag, pause, removal. */
#include <dirent.h>
#include <errno.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "copy_test_util.h"

static const uint8_t OTHER_ID[LS_DBID_LEN] = {0xee, 1, 2,  3,  4,  5,  6,  7,
                                              8,    9, 10, 11, 12, 13, 14, 15};

Test(copy, receives_in_chunks_inspects_replays_and_store_matches_the_log)
{
    copy_fix_t f;
    fix_init(&f, "copy", 6, 5, 40);
    fix_start(&f, true, false);
    send_range(f.c, &f.ch, 1, 6);
    cr_assert_eq(events_count(&f.ev, LS_COPY_EV_DURABLE, 0), 6);
    cr_assert_eq(events_count(&f.ev, LS_COPY_EV_INSPECTED, 0), 6);
    wait_replayed(f.c, 6, true);
    cr_assert_geq(events_count(&f.ev, LS_COPY_EV_REPLAYED, 6), 1);
    cr_assert_geq(events_count(&f.ev, LS_COPY_EV_REPLAYED_SYNCED, 6), 1);
    store_matches(f.c, &f.ch);

    ls_store_meta_t m;
    ls_store_meta(ls_copy_store(f.c), &m);
    cr_assert_eq(m.digest_generation, 6);
    cr_assert_eq(m.generation, 6);
    cr_assert_eq(m.lsn, f.ch.last_lsn[6]);
    cr_assert_eq(m.txid, 30, "6 generations of 5 transactions");
    cr_assert_arr_eq(m.digest, f.ch.digest[6], 32);
    cr_assert_eq(m.applied_generations, 6);
    cr_assert_geq(m.checkpoint_lsn, f.ch.last_lsn[6]);

    ls_copy_resume_t r;
    ls_copy_resume_point(f.c, &r);
    cr_assert_eq(r.next_generation, 7);
    cr_assert_eq(r.epoch, 1);
    cr_assert_arr_eq(r.digest, f.ch.digest[6], 32);
    cr_assert_eq(r.last_lsn, f.ch.last_lsn[6]);
    ls_copy_stats_t st;
    ls_copy_stats(f.c, &st);
    cr_assert_eq(st.last_durable, 6);
    cr_assert_eq(st.last_inspected, 6);
    cr_assert_eq(st.replay_queue, 0);
    cr_assert_eq(count_files(f.dir, "inspect"), 0);
    cr_assert_eq(count_files(f.dir, "logs"), 6, "8 kept by default");
    ls_copy_close(f.c);
    fix_fini(&f);
}

Test(copy, refuses_out_of_order_generations_and_offsets)
{
    copy_fix_t f;
    fix_init(&f, "copy", 2, 2, 10);
    fix_open(&f, false);
    char err[1024] = "";
    cr_assert_eq(ls_copy_recv_begin(f.c, 1, 2, f.ch.len[2], 0, err, sizeof(err)), LS_ESTATE);
    cr_assert(ls_h_contains(err, "wants generation 1"), "%s", err);
    cr_assert_eq(ls_copy_recv_begin(f.c, 1, 1, LS_GEN_HARD_CAP + 1ull, 0, err, sizeof(err)),
                 LS_ETOOBIG);
    cr_assert_eq(ls_copy_recv_begin(f.c, 1, 1, f.ch.len[1], 0, err, sizeof(err)), 0);
    cr_assert_eq(ls_copy_recv_data(f.c, 1, 0, f.ch.buf[1], 10, err, sizeof(err)), 0);
    cr_assert_eq(ls_copy_recv_data(f.c, 1, 20, f.ch.buf[1] + 20, 10, err, sizeof(err)), LS_ESTATE,
                 "a gap in the offsets");
    cr_assert(ls_h_contains(err, "expected offset 10"), "%s", err);
    cr_assert_eq(count_files(f.dir, "inspect"), 0, "the .part was dropped");
    cr_assert_eq(ls_copy_recv_begin(f.c, 1, 1, f.ch.len[1], 0, err, sizeof(err)), 0);
    cr_assert_eq(ls_copy_recv_data(f.c, 1, 0, f.ch.buf[1], 50, err, sizeof(err)), 0);
    cr_assert_eq(count_files(f.dir, "inspect"), 1, "a .part while receiving");
    ls_copy_recv_abort(f.c); /* connection lost */
    cr_assert_eq(count_files(f.dir, "inspect"), 0, "abort drops the .part");
    cr_assert_eq(send_gen(f.c, &f.ch, 1), 0);
    cr_assert_eq(ls_copy_recv_begin(f.c, 1, 1, f.ch.len[1], 0, err, sizeof(err)), LS_ESTATE,
                 "already held");
    cr_assert_eq(send_gen(f.c, &f.ch, 2), 0);
    ls_copy_close(f.c);
    fix_fini(&f);
}

Test(copy, flipped_bit_fails_inspection_is_deleted_and_asked_again)
{
    copy_fix_t f;
    fix_init(&f, "copy", 3, 3, 20);
    fix_open(&f, true);
    send_range(f.c, &f.ch, 1, 1);
    uint8_t *bad = malloc(f.ch.len[2]);
    memcpy(bad, f.ch.buf[2], f.ch.len[2]);
    bad[LS_GEN_HEADER_SIZE + 40] ^= 0x04;
    char err[1024] = "";
    /* without the sender's digest the inspection catches it (record checksum) */
    int rc = send_bytes(f.c, 2, bad, f.ch.len[2], NULL, err, sizeof(err));
    cr_assert_eq(rc, LS_ERECCKSUM, "%s: %s", ls_err_name(rc), err);
    cr_assert_eq(events_count(&f.ev, LS_COPY_EV_DURABLE, 2), 1);
    cr_assert_eq(events_count(&f.ev, LS_COPY_EV_INSPECTED, 2), 0);
    cr_assert_eq(events_count(&f.ev, LS_COPY_EV_ASK_AGAIN, 2), 1);
    cr_assert(!file_exists(f.dir, "inspect", 2) && !file_exists(f.dir, "logs", 2), "deleted");
    /* with the sender's digest it is caught before it is even made durable */
    rc = send_bytes(f.c, 2, bad, f.ch.len[2], f.ch.digest[2], err, sizeof(err));
    cr_assert_eq(rc, LS_EDIGEST, "%s", err);
    cr_assert_eq(events_count(&f.ev, LS_COPY_EV_DURABLE, 2), 1);
    cr_assert_eq(events_count(&f.ev, LS_COPY_EV_ASK_AGAIN, 2), 2);
    ls_copy_resume_t r;
    ls_copy_resume_point(f.c, &r);
    cr_assert_eq(r.next_generation, 2);
    cr_assert_arr_eq(r.digest, f.ch.digest[1], 32);
    cr_assert_eq(ls_copy_start(f.c), 0);
    wait_replayed(f.c, 1, true);
    ls_copy_stats_t st;
    ls_copy_stats(f.c, &st);
    cr_assert_eq(st.applied_generations, 1, "nothing of generation 2 applied");
    cr_assert_eq(st.inspect_failures, 2);
    cr_assert_eq(st.state, LS_COPY_HEALTHY, "two failures are below the limit");
    fix_catch_up(&f, 2, 3);
    ls_copy_close(f.c);
    free(bad);
    fix_fini(&f);
}

/* Generation g sent whole by ls_copy_recv_data_hashed in 3 pieces, the caller's digest being the
 * SHA-256 of hashed (the bytes it saw: buf unless the wire changed them after the hash). */
static int send_hashed(ls_copy_t *c, uint64_t g, const uint8_t *buf, const uint8_t *hashed,
                       size_t len, const uint8_t *sender_digest, char *err, size_t errlen)
{
    uint8_t mine[LS_DIGEST_SIZE];
    ls_sha256_t *h = ls_sha256_new();
    ls_sha256_update(h, hashed, len - LS_GEN_TRAILER_SIZE);
    ls_sha256_final(h, mine);
    ls_sha256_free(h);
    int rc = ls_copy_recv_begin(c, 1, g, len, LS_H_GEN_CLOSE_NS, err, errlen);
    size_t cut[] = {0, 100, len - 10, len};
    for (int i = 0; rc == 0 && i < 3; i++)
        rc = ls_copy_recv_data_hashed(c, g, cut[i], buf + cut[i], cut[i + 1] - cut[i], err, errlen);
    return rc ? rc : ls_copy_recv_end_hashed(c, g, sender_digest, mine, err, errlen);
}

Test(copy, bytes_hashed_by_the_caller_are_checked_by_its_digest_and_never_mixed)
{
    copy_fix_t f;
    fix_init(&f, "copy", 3, 3, 20);
    fix_open(&f, true);
    char err[1024] = "";
    size_t len = f.ch.len[1];
    const uint8_t *buf = f.ch.buf[1];
    int rc = send_hashed(f.c, 1, buf, buf, len, f.ch.digest[1], err, sizeof(err));
    cr_assert_eq(rc, 0, "%s: %s", ls_err_name(rc), err);
    cr_assert_eq(events_count(&f.ev, LS_COPY_EV_INSPECTED, 1), 1);
    /* the caller's digest is what is compared: bytes it hashed are not the bytes written */
    len = f.ch.len[2];
    buf = f.ch.buf[2];
    uint8_t *other = malloc(len);
    memcpy(other, buf, len);
    other[LS_GEN_HEADER_SIZE + 40] ^= 0x04;
    rc = send_hashed(f.c, 2, buf, other, len, f.ch.digest[2], err, sizeof(err));
    cr_assert_eq(rc, LS_EDIGEST, "%s: %s", ls_err_name(rc), err);
    cr_assert_eq(events_count(&f.ev, LS_COPY_EV_DURABLE, 2), 0, "never durable");
    cr_assert_eq(events_count(&f.ev, LS_COPY_EV_ASK_AGAIN, 2), 1);
    cr_assert_eq(count_files(f.dir, "inspect"), 0);
    /* a generation is hashed by the caller or here, never partly each */
    cr_assert_eq(ls_copy_recv_begin(f.c, 1, 2, len, 0, err, sizeof(err)), 0);
    cr_assert_eq(ls_copy_recv_data_hashed(f.c, 2, 0, buf, 10, err, sizeof(err)), 0);
    cr_assert_eq(ls_copy_recv_data(f.c, 2, 10, buf + 10, 10, err, sizeof(err)), LS_ESTATE);
    cr_assert(ls_h_contains(err, "hashed here, the 10 before them by the caller"), "%s", err);
    cr_assert_eq(count_files(f.dir, "inspect"), 0, "the .part was dropped");
    cr_assert_eq(ls_copy_recv_begin(f.c, 1, 2, len, 0, err, sizeof(err)), 0);
    cr_assert_eq(ls_copy_recv_data(f.c, 2, 0, buf, 10, err, sizeof(err)), 0);
    cr_assert_eq(ls_copy_recv_data_hashed(f.c, 2, 10, buf + 10, 10, err, sizeof(err)), LS_ESTATE);
    cr_assert(ls_h_contains(err, "hashed by the caller, the 10 before them here"), "%s", err);
    /* hashed by the caller, ended without its digest */
    cr_assert_eq(ls_copy_recv_begin(f.c, 1, 2, len, 0, err, sizeof(err)), 0);
    cr_assert_eq(ls_copy_recv_data_hashed(f.c, 2, 0, buf, len, err, sizeof(err)), 0);
    cr_assert_eq(ls_copy_recv_end(f.c, 2, f.ch.digest[2], err, sizeof(err)), LS_ESTATE);
    cr_assert(ls_h_contains(err, "whose digest did not come"), "%s", err);
    cr_assert_eq(count_files(f.dir, "inspect"), 0);
    cr_assert_eq(events_count(&f.ev, LS_COPY_EV_DURABLE, 2), 0);
    /* a clean one of each kind after that */
    rc = send_hashed(f.c, 2, buf, buf, len, f.ch.digest[2], err, sizeof(err));
    cr_assert_eq(rc, 0, "%s: %s", ls_err_name(rc), err);
    send_range(f.c, &f.ch, 3, 3);
    cr_assert_eq(ls_copy_start(f.c), 0);
    wait_replayed(f.c, 3, true);
    store_matches(f.c, &f.ch);
    ls_copy_close(f.c);
    free(other);
    fix_fini(&f);
}

Test(copy, three_failures_of_one_generation_make_the_copy_failed)
{
    copy_fix_t f;
    fix_init(&f, "copy", 1, 2, 10);
    fix_open(&f, true);
    uint8_t *bad = malloc(f.ch.len[1]);
    memcpy(bad, f.ch.buf[1], f.ch.len[1]);
    bad[f.ch.len[1] - 20] ^= 0x80; /* in the trailer */
    char err[1024] = "";
    for (int i = 0; i < 3; i++)
        cr_assert_neq(send_bytes(f.c, 1, bad, f.ch.len[1], NULL, err, sizeof(err)), 0);
    char reason[512];
    cr_assert_eq(ls_copy_state(f.c, reason, sizeof(reason)), LS_COPY_FAILED);
    cr_assert(ls_h_contains(reason, "generation 1 failed inspection 3 times"), "%s", reason);
    cr_assert_eq(events_count(&f.ev, LS_COPY_EV_STATE, 0), 1);
    cr_assert_eq(ls_copy_recv_begin(f.c, 1, 1, f.ch.len[1], 0, err, sizeof(err)), LS_ESTATE);
    cr_assert(ls_h_contains(err, "is failed"), "%s", err);
    ls_copy_clear_failed(f.c);
    cr_assert_eq(ls_copy_state(f.c, NULL, 0), LS_COPY_HEALTHY);
    cr_assert_eq(send_gen(f.c, &f.ch, 1), 0);
    ls_copy_close(f.c);
    free(bad);
    fix_fini(&f);
}

Test(copy, generation_that_does_not_chain_is_refused)
{
    copy_fix_t f;
    fix_init(&f, "copy", 1, 2, 10);
    fix_open(&f, false);
    send_range(f.c, &f.ch, 1, 1);
    uint8_t wrong[32];
    memset(wrong, 0x5a, sizeof(wrong));
    ls_h_gen_spec_t spec;
    ls_h_gen_spec_default(&spec, 2, f.ch.last_lsn[1] + 1);
    spec.prev_digest = wrong;
    ls_h_gen_t *b = ls_h_gen_new(&spec);
    ls_h_gen_put(b, "key01", 5, "x", 1);
    ls_h_gen_commit(b);
    ls_h_gen_close(b);
    size_t len;
    const uint8_t *bytes = ls_h_gen_bytes(b, &len);
    char err[1024] = "";
    int rc = send_bytes(f.c, 2, bytes, len, ls_h_gen_digest(b), err, sizeof(err));
    cr_assert_eq(rc, LS_ELINEAGE, "%s: %s", ls_err_name(rc), err);
    cr_assert(!file_exists(f.dir, "logs", 2));
    ls_copy_resume_t r;
    ls_copy_resume_point(f.c, &r);
    cr_assert_eq(r.next_generation, 2);
    ls_h_gen_free(b);
    ls_copy_close(f.c);
    fix_fini(&f);
}

Test(copy, generation_or_store_of_another_database_is_refused)
{
    copy_fix_t f;
    fix_init(&f, "copy", 1, 2, 10);
    ls_copy_options_t o = {.dir = f.dir, .dbid = OTHER_ID};
    f.c = copy_open_opts(&o);
    char err[1024] = "";
    int rc = send_bytes(f.c, 1, f.ch.buf[1], f.ch.len[1], NULL, err, sizeof(err));
    cr_assert_eq(rc, LS_EDBID, "%s", err);
    cr_assert(ls_h_contains(err, "ee0102030405060708090a0b0c0d0e0f"), "copy's id: %s", err);
    cr_assert(ls_h_contains(err, "000102030405060708090a0b0c0d0e0f"), "generation's id: %s", err);
    cr_assert_eq(ls_copy_state(f.c, NULL, 0), LS_COPY_FAILED);
    cr_assert_eq(count_files(f.dir, "inspect"), 0);
    ls_copy_close(f.c);

    /* the store now belongs to OTHER_ID: opening the copy for the builder's id is refused */
    uint8_t id[LS_DBID_LEN];
    for (int i = 0; i < LS_DBID_LEN; i++)
        id[i] = (uint8_t) i;
    o.dbid = id;
    f.c = NULL;
    cr_assert_eq(ls_copy_open(&o, &f.c, err, sizeof(err)), LS_EDBID);
    cr_assert_null(f.c);
    cr_assert(ls_h_contains(err, "ee0102030405060708090a0b0c0d0e0f") &&
                  ls_h_contains(err, "000102030405060708090a0b0c0d0e0f"),
              "names both: %s", err);
    fix_fini(&f);
}

Test(copy, adopts_the_database_id_of_the_first_generation)
{
    copy_fix_t f;
    fix_init(&f, "copy", 2, 2, 10);
    fix_open(&f, false);
    cr_assert_null(ls_copy_store(f.c), "no store before the id is known");
    send_range(f.c, &f.ch, 1, 1);
    cr_assert_not_null(ls_copy_store(f.c));
    ls_copy_close(f.c);
    f.c = copy_open(f.dir, NULL); /* the id now comes from the store */
    ls_copy_resume_t r;
    ls_copy_resume_point(f.c, &r);
    cr_assert_eq(r.next_generation, 2);
    send_range(f.c, &f.ch, 2, 2);
    fix_start_replay(&f, 2);
    ls_copy_close(f.c);
    fix_fini(&f);
}

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
    ls_h_rmtree(dir);
    free(dir);
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
