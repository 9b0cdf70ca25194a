/* copy: receive, inspect, replay; refusals, ask-again, Failed, the database id. Batching, lag,
 * pause, removal, a seeded store and a generation being received: copy_replay_test.c. */

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
