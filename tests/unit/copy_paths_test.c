/* copy: the receiving calls out of turn, a rename that fails before a generation is durable, a
 * store without identity, a copy whose store is gone but logs/ kept its generations (with an
 * inspect/ leftover), and a seeded store handed a generation that starts past the seed's lsn
 * (issue 11), and a seeded hand-off at the first generation of an epoch (issue 12). Each asserts
 * the error code, that the message names the copy and the generation, and that nothing durable is
 * lost. */
#include <sys/stat.h>

#include "copy_test_util.h"
#include "store/store.h"

static int no_change(void *ctx, ls_store_txn_t *txn)
{
    (void) ctx;
    (void) txn;
    return 0;
}

/* Creates the store at path (the harness's database id) holding only the meta record m, as a
 * seed's install leaves it. */
static void seed_store(const char *path, ls_store_meta_t *m)
{
    char err[1024] = "";
    ls_h_gen_spec_t spec;
    ls_h_gen_spec_default(&spec, 1, 1);
    ls_store_options_t so = {.map_size = 8u << 20, .create = true, .dbid = spec.dbid};
    ls_store_t *s = NULL;
    cr_assert_eq(ls_store_open(path, &so, &s, err, sizeof(err)), 0, "%s", err);
    memcpy(m->dbid, spec.dbid, LS_DBID_LEN);
    cr_assert_eq(ls_store_apply(s, no_change, NULL, m), 0);
    cr_assert_eq(ls_store_sync(s), 0);
    ls_store_close(s);
}

/* Writes generation g of ch into dir/sub (created) under its closed name. */
static void place_gen(const char *dir, const char *sub, const chain_t *ch, int g)
{
    char p[4200];
    snprintf(p, sizeof(p), "%s/%s", dir, sub);
    cr_assert_eq(ls_mkdir_p(p), 0);
    gen_path(p, sizeof(p), dir, sub, g, "");
    cr_assert_eq(ls_h_write_file(p, ch->buf[g], ch->len[g]), 0);
}

Test(copy_paths, receiving_calls_out_of_turn_are_refused)
{
    copy_fix_t f;
    fix_init(&f, "copypaths", 2, 4, 30);
    fix_start(&f, false, false);
    char err[1024] = "";
    cr_assert_eq(ls_copy_recv_begin(f.c, 1, 1, f.ch.len[1], LS_H_GEN_CLOSE_NS, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(ls_copy_recv_begin(f.c, 1, 1, f.ch.len[1], LS_H_GEN_CLOSE_NS, err, sizeof(err)),
                 LS_ESTATE);
    LS_H_ASSERT_HAS(err, f.dir);
    LS_H_ASSERT_HAS(err, "generation 1 is still being received");
    cr_assert_eq(ls_copy_recv_data(f.c, 2, 0, f.ch.buf[2], 10, err, sizeof(err)), LS_ESTATE);
    LS_H_ASSERT_HAS(err, "generation 2 is not being received");
    cr_assert_eq(ls_copy_recv_data(f.c, 1, 0, f.ch.buf[1], 100, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ls_copy_recv_end(f.c, 1, f.ch.digest[1], err, sizeof(err)), LS_ESTATE);
    char want[128];
    snprintf(want, sizeof(want), "generation 1 cannot end: 100 of %zu bytes received", f.ch.len[1]);
    LS_H_ASSERT_HAS(err, want);
    cr_assert_eq(count_files(f.dir, "inspect"), 0, "the partial file is dropped");
    cr_assert_eq(ls_copy_recv_end(f.c, 1, f.ch.digest[1], err, sizeof(err)), LS_ESTATE,
                 "nothing is being received any more");
    /* the generation is then received whole */
    fix_catch_up(&f, 1, 2);
    ls_copy_close(f.c);
    fix_fini(&f);
}

/* The rename out of .part fails (fault point copy.recv.before_rename, first hit, armed in this
 * test's process): LS_EIO, the partial file dropped, nothing reported durable; sent again, it
 * goes through. */
Test(copy_paths, failed_rename_drops_the_part_and_the_resend_succeeds)
{
#ifndef LS_FAULTS_ENABLED
    cr_fail("fault points are not compiled in (LS_FAULTS=OFF)");
#endif
    setenv("LS_FAULTS", "copy.recv.before_rename=fail@1", 1);
    copy_fix_t f;
    fix_init(&f, "copypaths", 2, 4, 30);
    fix_start(&f, true, false);
    char err[1024] = "";
    int rc = send_bytes(f.c, 1, f.ch.buf[1], f.ch.len[1], f.ch.digest[1], err, sizeof(err));
    cr_assert_eq(rc, LS_EIO, "%s (%s)", ls_err_name(rc), err);
    LS_H_ASSERT_HAS(err, f.dir);
    LS_H_ASSERT_HAS(err, "renaming");
    LS_H_ASSERT_HAS(err, "generation 1 will be received again");
    cr_assert_eq(events_count(&f.ev, LS_COPY_EV_DURABLE, 1), 0, "never reported durable");
    cr_assert_eq(count_files(f.dir, "inspect"), 0);
    cr_assert_not(file_exists(f.dir, "logs", 1));
    fix_catch_up(&f, 1, 2);
    ls_copy_close(f.c);
    unsetenv("LS_FAULTS");
    fix_fini(&f);
}

/* A store created without identity (no meta record): the copy adopts the first generation's. */
Test(copy_paths, store_without_identity_adopts_the_first_generation)
{
    copy_fix_t f;
    fix_init(&f, "copypaths", 3, 4, 30);
    char store[4200], err[1024] = "";
    snprintf(store, sizeof(store), "%s/store", f.dir);
    ls_store_options_t so = {.map_size = 8u << 20, .create = true};
    ls_store_t *s = NULL;
    cr_assert_eq(ls_store_open(store, &so, &s, err, sizeof(err)), 0, "%s", err);
    ls_store_close(s);
    fix_start(&f, false, false);
    fix_catch_up(&f, 1, 3);
    ls_store_meta_t m;
    ls_store_meta(ls_copy_store(f.c), &m);
    ls_h_gen_spec_t spec;
    ls_h_gen_spec_default(&spec, 1, 1);
    cr_assert_arr_eq(m.dbid, spec.dbid, LS_DBID_LEN, "the generations' database id");
    cr_assert_eq(m.digest_generation, 3);
    ls_copy_close(f.c);
    fix_fini(&f);
}

/* The store is gone but logs/ kept generations 1 and 2 (and inspect/ a leftover copy of 1): the
 * copy takes the database id from logs/, opens a new store, drops the leftover and replays. */
Test(copy_paths, logs_without_store_are_held_and_replayed)
{
    copy_fix_t f;
    fix_init(&f, "copypaths", 3, 4, 30);
    place_gen(f.dir, "logs", &f.ch, 1);
    place_gen(f.dir, "logs", &f.ch, 2);
    place_gen(f.dir, "inspect", &f.ch, 1);
    fix_open(&f, false);
    cr_assert_not(file_exists(f.dir, "inspect", 1), "the leftover below the held chain is deleted");
    cr_assert(file_exists(f.dir, "logs", 1));
    ls_copy_resume_t r;
    ls_copy_resume_point(f.c, &r);
    cr_assert_eq(r.next_generation, 3, "generations 1 and 2 are held");
    cr_assert_arr_eq(r.digest, f.ch.digest[2], LS_DIGEST_SIZE);
    cr_assert_eq(ls_copy_start(f.c), 0);
    fix_catch_up(&f, 3, 3);
    ls_store_meta_t m;
    ls_store_meta(ls_copy_store(f.c), &m);
    cr_assert_eq(m.lsn, f.ch.last_lsn[3]);
    ls_copy_close(f.c);
    fix_fini(&f);
}

/* A seeded store (meta: generation 2, digest_generation 1, lsn L inside generation 1's range)
 * is handed generation 2, which starts after L + 1: the records between are in no file the copy
 * will see: LS_EGAP, asked again, nothing replayed, the store untouched. */
Test(copy_paths, seeded_store_refuses_a_generation_starting_past_its_lsn)
{
    copy_fix_t f;
    fix_init(&f, "copypaths", 2, 4, 30);
    char store[4200], err[1024] = "";
    snprintf(store, sizeof(store), "%s/store", f.dir);
    ls_store_meta_t seeded = {.epoch = 1,
                              .generation = 2,
                              .digest_generation = 1,
                              .lsn = f.ch.last_lsn[1] - 2,
                              .checkpoint_lsn = f.ch.last_lsn[1] - 2};
    memcpy(seeded.digest, f.ch.digest[1], LS_DIGEST_SIZE);
    seed_store(store, &seeded);

    fix_open(&f, true);
    ls_copy_resume_t r;
    ls_copy_resume_point(f.c, &r);
    cr_assert_eq(r.next_generation, 2, "the seed's hand-off: generation 2 next");
    cr_assert_eq(ls_copy_start(f.c), 0);
    int rc = send_bytes(f.c, 2, f.ch.buf[2], f.ch.len[2], f.ch.digest[2], err, sizeof(err));
    cr_assert_eq(rc, LS_EGAP, "%s (%s)", ls_err_name(rc), err);
    LS_H_ASSERT_HAS(err, f.dir);
    char want[160];
    snprintf(want, sizeof(want),
             "generation 2 starts at lsn %llu but the seeded store holds only through lsn %llu",
             (unsigned long long) f.ch.last_lsn[1] + 1, (unsigned long long) seeded.lsn);
    LS_H_ASSERT_HAS(err, want);
    cr_assert_eq(events_count(&f.ev, LS_COPY_EV_ASK_AGAIN, 2), 1);
    cr_assert_not(file_exists(f.dir, "logs", 2));
    cr_assert_not(file_exists(f.dir, "inspect", 2));
    ls_store_meta_t m;
    ls_store_meta(ls_copy_store(f.c), &m);
    cr_assert_eq(m.lsn, seeded.lsn, "nothing replayed");
    cr_assert_eq(m.generation, 2);
    ls_copy_close(f.c);
    fix_fini(&f);
}

/* The store of a copy without identity is damaged before the first generation arrives: the
 * inspection cannot open it (the message names the copy and generation), the generation is not
 * moved into logs/ and is asked again; with the store repaired, it goes through. */
Test(copy_paths, first_generation_with_an_unopenable_store_is_asked_again)
{
    copy_fix_t f;
    fix_init(&f, "copypaths", 2, 4, 30);
    fix_start(&f, true, false);
    char p[4200], err[1024] = "";
    snprintf(p, sizeof(p), "%s/store", f.dir);
    cr_assert_eq(ls_mkdir_p(p), 0);
    snprintf(p, sizeof(p), "%s/store/data.mdb", f.dir);
    uint8_t junk[8192];
    memset(junk, 0x5a, sizeof(junk));
    cr_assert_eq(ls_h_write_file(p, junk, sizeof(junk)), 0);
    int rc = send_bytes(f.c, 1, f.ch.buf[1], f.ch.len[1], f.ch.digest[1], err, sizeof(err));
    cr_assert_neq(rc, 0);
    LS_H_ASSERT_HAS(err, f.dir);
    LS_H_ASSERT_HAS(err, "inspection of generation 1 failed");
    cr_assert_eq(events_count(&f.ev, LS_COPY_EV_ASK_AGAIN, 1), 1);
    cr_assert_not(file_exists(f.dir, "logs", 1), "not moved into logs/");
    cr_assert_not(file_exists(f.dir, "inspect", 1), "the failed inspection deleted it");
    cr_assert_eq(unlink(p), 0);
    fix_catch_up(&f, 1, 2);
    ls_copy_close(f.c);
    fix_fini(&f);
}

/* logs/ already has a directory where generation 1 goes: the move fails, the message names the
 * file, and the generation is asked again; nothing under logs/ is touched. */
Test(copy_paths, move_into_logs_that_fails_is_asked_again)
{
    copy_fix_t f;
    fix_init(&f, "copypaths", 2, 4, 30);
    fix_start(&f, true, false);
    char p[4200], in[4200], err[1024] = "";
    gen_path(p, sizeof(p), f.dir, "logs", 1, "/occupied");
    cr_assert_eq(ls_mkdir_p(p), 0);
    int rc = send_bytes(f.c, 1, f.ch.buf[1], f.ch.len[1], f.ch.digest[1], err, sizeof(err));
    cr_assert_neq(rc, 0);
    gen_path(in, sizeof(in), f.dir, "inspect", 1, "");
    LS_H_ASSERT_HAS(err, "inspection of generation 1 failed");
    LS_H_ASSERT_HAS(err, "cannot move");
    LS_H_ASSERT_HAS(err, in);
    cr_assert_eq(events_count(&f.ev, LS_COPY_EV_ASK_AGAIN, 1), 1);
    cr_assert_eq(events_count(&f.ev, LS_COPY_EV_INSPECTED, 1), 0);
    cr_assert(access(p, F_OK) == 0, "what was in logs/ stays");
    cr_assert_not(file_exists(f.dir, "inspect", 1));
    cr_assert_eq(rmdir(p), 0);
    gen_path(p, sizeof(p), f.dir, "logs", 1, "");
    cr_assert_eq(rmdir(p), 0);
    fix_catch_up(&f, 1, 2);
    ls_copy_close(f.c);
    fix_fini(&f);
}

/* A store seeded with a hand-off at generation 3 of epoch 2 (meta: generation 3, digest of 2,
 * epoch 2, N's): the copy holds generation 2, whose epoch the meta does not give. The copy's
 * history says it when it knows where epoch 2 began; otherwise it is not known (0: the source
 * checks the digest) rather than taken as 2. */
static uint32_t handoff_resume_epoch(const char *history)
{
    char *dir = ls_h_tmpdir("copyhandoff");
    char path[4200];
    snprintf(path, sizeof(path), "%s/store", dir);
    ls_store_meta_t seeded = {
        .epoch = 2, .generation = 3, .digest_generation = 2, .lsn = 20, .checkpoint_lsn = 20};
    memset(seeded.digest, 0x5a, LS_DIGEST_SIZE);
    seed_store(path, &seeded);
    if (history) {
        snprintf(path, sizeof(path), "%s/logs", dir);
        mkdir(path, 0700);
        snprintf(path, sizeof(path), "%s/logs/history", dir);
        cr_assert_eq(ls_h_write_file(path, history, strlen(history)), 0);
    }
    ls_copy_t *c = copy_open(dir, NULL);
    ls_copy_resume_t r;
    ls_copy_resume_point(c, &r);
    cr_assert_eq(r.next_generation, 3);
    cr_assert_eq(memcmp(r.digest, seeded.digest, LS_DIGEST_SIZE), 0);
    ls_copy_close(c);
    ls_h_rmtree_free(dir);
    return r.epoch;
}

Test(copy_paths, seeded_hand_off_at_the_first_generation_of_an_epoch_names_the_right_epoch)
{
    cr_assert_eq(handoff_resume_epoch(NULL), 0, "no history: generation 2's epoch is not known");
    cr_assert_eq(handoff_resume_epoch("1 1\n2 3\n"), 1, "epoch 2 began at 3: 2 is of epoch 1");
    cr_assert_eq(handoff_resume_epoch("1 1\n2 2\n"), 2, "epoch 2 began at 2: 2 is of epoch 2");
    cr_assert_eq(handoff_resume_epoch("1 1\n"), 0, "a history that does not know epoch 2");
}
