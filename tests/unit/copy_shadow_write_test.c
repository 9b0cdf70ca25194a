/* copy: block mode's shadow of the open generation as the receiver writes it (copy.h, "block
 * mode"): it grows in order, holds only what it was given, refuses gaps and other generations;
 * the first BLOCK after a restart takes the file up again cut to its last complete transaction
 * and deletes shadows of another generation or epoch; a crash at each fault point leaves a
 * shadow that is finished by the closed generation, which arrives whole and equals the
 * active's. GEN_TAIL: copy_shadow_tail_test.c. */

#include <criterion/criterion.h>

#include "copy_shadow_write_test_util.h"

TestSuite(copy_shadow_write, .init = setup, .fini = shadow_fixture_fini);

/* The closed generation arrives whole (as the receiver does it): held, shadow gone, logs/ has the
 * active's file byte for byte. */
static void finish(ls_copy_t *c)
{
    cr_assert_eq(send_gen(c, &ch, 3), 0);
    ls_copy_shadow_drop(c, 3);
    ls_copy_shadow_t sh;
    ls_copy_shadow_info(c, &sh);
    cr_assert_eq(sh.generation, 0);
    cr_assert_eq(count_files(dir, "shadow"), 0);
    logs_hold_gen3();
}

Test(copy_shadow_write, grows_in_order_and_refuses_gaps_and_other_generations)
{
    ls_copy_t *c = wopen(dir, NULL);
    send_range(c, &ch, 1, 2);
    size_t a = 1000, b = open_len();
    ls_copy_shadow_t sh;
    cr_assert_eq(block(c, 3, 0, a, &sh), 0);
    cr_assert(sh.generation == 3 && sh.epoch == 1 && sh.size == a && sh.durable_lsn == LSN + a);
    cr_assert_eq(block(c, 3, a, b - a, &sh), 0);
    cr_assert_eq(sh.size, b);
    cr_assert_eq(block(c, 3, 0, a, &sh), 0, "bytes held already: acknowledged, not rewritten");
    cr_assert_eq(sh.size, b);
    shadow_is(b);
    char err[512] = "";
    cr_assert_eq(ls_copy_shadow_write(c, 1, 3, b + 10, ch.buf[3], 5, LSN, &sh, err, sizeof(err)),
                 LS_ESTATE);
    cr_assert(strstr(err, "gap") && strstr(err, "generation 3"), "%s", err);
    cr_assert_eq(ls_copy_shadow_write(c, 1, 4, 0, ch.buf[3], 5, LSN, &sh, err, sizeof(err)),
                 LS_ESTATE);
    cr_assert(strstr(err, "wants generation 3"), "%s", err);
    cr_assert_eq(block(c, 2, 0, 10, NULL), LS_ESTATE, "generation 2 is held");
    shadow_is(b);
    finish(c);
    ls_copy_close(c);
}

Test(copy_shadow_write, a_torn_tail_is_cut_to_the_last_transaction_when_taken_up)
{
    ls_copy_t *c = wopen(dir, NULL);
    send_range(c, &ch, 1, 2);
    size_t mid = open_len() * 2 / 3; /* inside a record */
    cr_assert_eq(block(c, 3, 0, mid, NULL), 0);
    ls_copy_close(c);
    char path[4200];
    shadow_path(path, sizeof(path), 1, 3);
    int fd = open(path, O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0);
    static const uint8_t zeros[300];
    cr_assert_eq(write(fd, zeros, sizeof(zeros)), (ssize_t) sizeof(zeros)); /* a torn tail */
    close(fd);
    c = wopen(dir, NULL);
    ls_copy_shadow_t sh;
    ls_copy_shadow_info(c, &sh);
    cr_assert_eq(sh.generation, 0, "open touches no shadow");
    cr_assert_eq(file_len(path), mid + sizeof(zeros));
    size_t keep = commit_end_within(mid);
    cr_assert_gt(keep, LS_GEN_HEADER_SIZE);
    cr_assert_eq(block(c, 3, 0, 100, &sh), 0, "a resent start: held already");
    cr_assert_eq(sh.size, keep, "kept %llu, the last COMMIT ends at %zu",
                 (unsigned long long) sh.size, keep);
    cr_assert_eq(file_len(path), keep);
    shadow_is(keep);
    cr_assert_eq(block(c, 3, 0, open_len(), &sh), 0, "the stream from 0 finishes it");
    shadow_is(open_len());
    finish(c);
    ls_copy_close(c);
}

/* A shadow that ends on a COMMIT (nothing to cut) is still synced before it is taken up: its
 * bytes may be in the page cache only (a daemon killed between a write and its fdatasync). With
 * the sync failing (copy.shadow.adopt_sync) it is not taken up but replaced. */
static size_t taken_up_after_restart(const char *faults)
{
    if (faults) setenv("LS_FAULTS", faults, 1); /* read once, before the first fault point */
    ls_copy_t *c = wopen(dir, NULL);
    send_range(c, &ch, 1, 2);
    size_t keep = commit_end_within(open_len() * 2 / 3);
    cr_assert_eq(block(c, 3, 0, keep, NULL), 0);
    ls_copy_close(c);
    c = wopen(dir, NULL);
    ls_copy_shadow_t sh;
    cr_assert_eq(block(c, 3, 0, 100, &sh), 0, "a resent start");
    ls_copy_close(c);
    return (size_t) sh.size;
}

Test(copy_shadow_write, a_shadow_ending_on_a_commit_is_synced_before_it_is_taken_up)
{
    size_t keep = commit_end_within(open_len() * 2 / 3);
    cr_assert_eq(taken_up_after_restart(NULL), keep, "taken up whole");
}

Test(copy_shadow_write, a_shadow_whose_sync_fails_at_take_up_is_replaced)
{
    cr_assert_eq(taken_up_after_restart("copy.shadow.adopt_sync=fail"), 100,
                 "not taken up: the resent start begins a new shadow");
}

Test(copy_shadow_write, shadows_of_another_generation_or_epoch_are_deleted_by_the_stream)
{
    ls_copy_t *c = wopen(dir, NULL);
    send_range(c, &ch, 1, 2);
    ls_copy_close(c);
    char path[4200];
    snprintf(path, sizeof(path), "%s/shadow", dir);
    cr_assert_eq(access(path, F_OK), 0, "made at open");
    uint64_t gens[] = {2, 7, 3};
    uint32_t epochs[] = {1, 1, 2};
    for (int i = 0; i < 3; i++) { /* held already; too far; an epoch its header does not say */
        shadow_path(path, sizeof(path), epochs[i], gens[i]);
        cr_assert_eq(ls_h_write_file(path, ch.buf[3], 1000), 0);
    }
    snprintf(path, sizeof(path), "%s/shadow/closed", dir); /* not a shadow: stays */
    cr_assert_eq(ls_h_write_file(path, "x", 1), 0);
    c = wopen(dir, NULL);
    cr_assert_eq(count_files(dir, "shadow"), 4, "open touches no shadow");
    ls_copy_shadow_t sh;
    cr_assert_eq(block(c, 3, 0, 1000, &sh), 0);
    cr_assert_eq(sh.size, 1000, "the one of epoch 2 was replaced, not taken up");
    cr_assert_eq(count_files(dir, "shadow"), 2, "generation 3's and the marker");
    shadow_is(1000);
    ls_copy_close(c);
}

/* In a forked child: the shadow of generation 3 written in two BLOCKs, the second one dying at
 * the fault point. */
static void child(const char *faults)
{
    ls_copy_t *c = child_open(faults);
    char err[256];
    ls_copy_shadow_t sh;
    size_t half = open_len() / 2;
    if (ls_copy_shadow_write(c, 1, 3, 0, ch.buf[3], half, LSN, &sh, err, sizeof(err))) _exit(3);
    ls_copy_shadow_write(c, 1, 3, half, ch.buf[3] + half, open_len() - half, LSN, &sh, err,
                         sizeof(err));
    _exit(0);
}

static void crash_at(const char *point)
{
    char faults[128];
    snprintf(faults, sizeof(faults), "%s=exit@2", point); /* at the second BLOCK */
    child_dies_at(point, child, faults);
    ls_copy_t *c = wopen(dir, NULL);
    ls_copy_shadow_t sh;
    cr_assert_eq(block(c, 3, 0, 10, &sh), 0, "the stream restarts at 0");
    cr_assert_eq(sh.generation, 3, "the shadow was taken up");
    /* The written bytes reached the file (the process died, not the machine): what is kept is
     * everything up to the last COMMIT, nothing past it. */
    cr_assert_eq(sh.size, commit_end_within(open_len()));
    shadow_is((size_t) sh.size);
    cr_assert_eq(block(c, 3, 0, open_len(), &sh), 0);
    shadow_is(open_len());
    finish(c);
    ls_copy_close(c);
}

Test(copy_shadow_write, a_crash_before_the_fsync_is_finished_from_the_closed_file)
{
    crash_at("copy.shadow.before_fsync");
}

Test(copy_shadow_write, a_crash_after_the_fsync_is_finished_from_the_closed_file)
{
    crash_at("copy.shadow.after_fsync");
}

/* A crash after the closed generation went into logs/ but before the shadow was dropped: the
 * shadow of a held generation goes with the next stream or the next drop. */
Test(copy_shadow_write, a_shadow_of_a_held_generation_goes_with_the_next_stream)
{
    ls_copy_t *c = wopen(dir, NULL);
    send_range(c, &ch, 1, 2);
    cr_assert_eq(block(c, 3, 0, open_len(), NULL), 0);
    cr_assert_eq(send_gen(c, &ch, 3), 0); /* no drop: the crash */
    ls_copy_close(c);
    cr_assert_eq(count_files(dir, "shadow"), 1);
    c = wopen(dir, NULL);
    cr_assert_eq(block(c, 4, 0, 500, NULL), 0);
    cr_assert_eq(count_files(dir, "shadow"), 1, "generation 4's only");
    cr_assert_eq(send_gen(c, &ch, 4), 0);
    ls_copy_shadow_drop(c, 4);
    cr_assert_eq(count_files(dir, "shadow"), 0);
    ls_copy_close(c);
}
