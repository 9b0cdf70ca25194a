/* copy: which check runs where. Each record checksum and each generation digest is computed once
 * on the passive path (while receiving), replay computes neither and still catches a file damaged
 * in logs/ by its seal; a restart re-checks each held file once. docs/COPY.md. */
#include "copy_test_util.h"

/* What the chain's generations from..to weigh. */
typedef struct {
    uint64_t records; /* records (the chain's LSNs are dense from 1) */
    uint64_t hashed;  /* bytes before the trailers: what SHA-256 covers */
    uint64_t bytes;   /* whole files */
} weight_t;

static weight_t weigh(const chain_t *ch, int from, int to)
{
    weight_t w = {0};
    for (int g = from; g <= to; g++) {
        w.records += ch->last_lsn[g] - (g > 1 ? ch->last_lsn[g - 1] : 0);
        w.hashed += ch->len[g] - LS_GEN_TRAILER_SIZE;
        w.bytes += ch->len[g];
    }
    return w;
}

static void assert_checks(ls_copy_t *c, uint64_t records, uint64_t digests, uint64_t digest_bytes,
                          uint64_t seals, uint64_t seal_checks, uint64_t seal_bytes,
                          const char *when)
{
    ls_copy_stats_t st;
    ls_copy_stats(c, &st);
    cr_assert_eq(st.record_checksums, records, "%s: %llu record checksums computed, want %llu",
                 when, (unsigned long long) st.record_checksums, (unsigned long long) records);
    cr_assert_eq(st.digests, digests, "%s: %llu digests computed, want %llu", when,
                 (unsigned long long) st.digests, (unsigned long long) digests);
    cr_assert_eq(st.digest_bytes, digest_bytes, "%s: bytes hashed", when);
    cr_assert_eq(st.seals, seals, "%s: %llu seals, want %llu", when, (unsigned long long) st.seals,
                 (unsigned long long) seals);
    cr_assert_eq(st.seal_checks, seal_checks, "%s: %llu seal checks, want %llu", when,
                 (unsigned long long) st.seal_checks, (unsigned long long) seal_checks);
    cr_assert_eq(st.seal_bytes, seal_bytes, "%s: bytes sealed", when);
}

Test(copy_checks, each_record_checksum_and_each_digest_is_computed_once_receive_to_replay)
{
    char *dir = ls_h_tmpdir("copychk");
    chain_t ch;
    chain_build(&ch, 12, 6, 120); /* chunks of 1..65536 bytes: records straddle them */
    ls_copy_t *c = copy_open(dir, NULL);
    cr_assert_eq(ls_copy_start(c), 0);
    send_range(c, &ch, 1, 12);
    wait_replayed(c, 12, true);
    store_matches(c, &ch);
    weight_t w = weigh(&ch, 1, 12);
    assert_checks(c, w.records, 12, w.hashed, 12, 12, 2 * w.bytes, "received and replayed");
    ls_copy_close(c);
    chain_free(&ch);
    ls_h_rmtree_free(dir);
}

Test(copy_checks, file_damaged_in_logs_is_caught_by_its_seal_not_applied_and_asked_again)
{
    copy_fix_t f;
    fix_init(&f, "copychk", 6, 5, 60);
    fix_start(&f, true, true);
    send_range(f.c, &f.ch, 1, 6);
    weight_t all = weigh(&f.ch, 1, 6), tail = weigh(&f.ch, 4, 6), head = weigh(&f.ch, 1, 3);
    assert_checks(f.c, all.records, 6, all.hashed, 6, 0, all.bytes, "received, replay paused");

    /* One bit of a value inside generation 4, on disk after its inspection. */
    ls_copy_stats_t st;
    damaged_stops_replay(&f, 4, &st);
    cr_assert(!file_exists(f.dir, "logs", 4) && !file_exists(f.dir, "logs", 6));
    /* Replay read 1..4 and compared seals; it computed no record checksum and no digest. */
    assert_checks(f.c, all.records, 6, all.hashed, 6, 4, all.bytes + head.bytes + f.ch.len[4],
                  "damage caught at replay");

    ls_copy_resume_t r;
    ls_copy_resume_point(f.c, &r);
    cr_assert_eq(r.next_generation, 4);
    send_range(f.c, &f.ch, 4, 6); /* asked again: received (and checked) once more */
    wait_replayed(f.c, 6, true);
    store_matches(f.c, &f.ch);
    assert_checks(f.c, all.records + tail.records, 9, all.hashed + tail.hashed, 9, 7,
                  all.bytes + head.bytes + f.ch.len[4] + 2 * tail.bytes, "after the resend");
    ls_copy_close(f.c);
    fix_fini(&f);
}

Test(copy_checks, restart_rechecks_each_held_file_once_and_replay_still_computes_none)
{
    copy_fix_t f;
    fix_init(&f, "copychk", 6, 4, 50);
    fix_open(&f, false);
    send_range(f.c, &f.ch, 1, 5); /* no replayer: all five wait in logs/ */
    ls_copy_close(f.c);
    /* generation 6 durable in inspect/ but not inspected when the process died */
    char p[4200];
    gen_path(p, sizeof(p), f.dir, "inspect", 6, "");
    cr_assert_eq(ls_h_write_file(p, f.ch.buf[6], f.ch.len[6]), 0);

    f.c = copy_open(f.dir, NULL);
    weight_t all = weigh(&f.ch, 1, 6);
    /* logs/ files: every record checksum once, the trailer's digest taken as inspected (no
     * SHA-256), a seal each; the inspect/ file: inspected in full, digest included. */
    assert_checks(f.c, all.records, 1, f.ch.len[6] - LS_GEN_TRAILER_SIZE, 6, 0, all.bytes,
                  "after the restart");
    ls_copy_resume_t r;
    ls_copy_resume_point(f.c, &r);
    cr_assert_eq(r.next_generation, 7);
    fix_start_replay(&f, 6);
    assert_checks(f.c, all.records, 1, f.ch.len[6] - LS_GEN_TRAILER_SIZE, 6, 6, 2 * all.bytes,
                  "replayed after the restart");
    /* A restart with everything replayed reads nothing again. */
    ls_copy_close(f.c);
    f.c = copy_open(f.dir, NULL);
    assert_checks(f.c, 0, 0, 0, 0, 0, 0, "restart with nothing to replay");
    ls_copy_close(f.c);
    fix_fini(&f);
}
