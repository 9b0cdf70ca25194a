/* copy: the roll with two shadows (copy.h, ls_copy_recv_end_checked, ls_copy_shadow_keep): the
 * closed generation finished from its shadow is inspected, then its finish (fdatasync of the
 * .part, the move into logs/) is left for later while the next generation's BLOCKs go into a
 * second shadow. Its shadow's file stays until the finish ended; the next generation is taken
 * meanwhile, nothing else; a failed finish drops the next shadow (nothing of it was
 * acknowledged) and keeps or deletes the closed one's as recv_end does; a crash while both
 * shadows exist is taken up (the closed generation arrives again, the next shadow chains to it)
 * and activated (the closed generation's shadow becomes it, the next one goes: nothing of it was
 * acknowledged). */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "shadow_test_util.h"

static void setup(void)
{
    shadow_fixture_init("copyshadow2");
}

TestSuite(copy_shadow_two, .init = setup, .fini = shadow_fixture_fini);

/* The end of the last complete transaction in the first n bytes of generation gen. */
static size_t commit_end(uint64_t gen, size_t n)
{
    ls_gen_expect_t x = {.allow_open = true};
    ls_gen_info_t info;
    ls_gen_verdict_t v;
    cr_assert_eq(ls_gen_scan(ch.buf[gen], n, &x, NULL, NULL, &info, &v), 0, "%s", v.msg);
    return (size_t) info.commit_end;
}

/* Bytes of generation 4 its shadow holds when the process dies: past its first transaction. */
static size_t four_part(void)
{
    return (ch.len[4] - LS_GEN_TRAILER_SIZE) * 2 / 3;
}

static bool exists(const char *sub, uint64_t gen)
{
    char path[4200];
    gen_path(path, sizeof(path), dir, sub, gen, "");
    struct stat st;
    return stat(path, &st) == 0;
}

/* BLOCK bytes [off, off + len) of generation gen appended and synced, not reported (the receiver
 * acknowledges them only once the finish ended). */
static int block(ls_copy_t *c, uint64_t gen, uint64_t off, size_t len, ls_copy_shadow_t *sh)
{
    char err[512] = "";
    int rc = ls_copy_shadow_append(c, 1, gen, off, ch.buf[gen] + off, len, LSN + off + len, err,
                                   sizeof(err));
    bool due = false;
    if (rc == 0) rc = ls_copy_shadow_sync_deferred(c, sh, &due, err, sizeof(err));
    if (rc)
        cr_log_info("BLOCK %llu of %llu+%zu: %s", (unsigned long long) gen,
                    (unsigned long long) off, len, err);
    return rc;
}

/* Generations 1 and 2 held, 3 streamed whole into its shadow, then GEN_TAIL (only the trailer)
 * and its end inspected, the finish left: 3's shadow kept. In a child (exit 3 on a failure) or
 * in the test. */
static bool roll_to_kept(ls_copy_t *c)
{
    char err[512] = "";
    ls_copy_shadow_t sh;
    bool later = false;
    size_t open = open_len();
    if (block(c, 3, 0, open, &sh) ||
        ls_copy_recv_begin_tail(c, 1, 3, ch.len[3], 0, open, err, sizeof(err)) ||
        ls_copy_recv_data(c, 3, open, ch.buf[3] + open, ch.len[3] - open, err, sizeof(err)) ||
        ls_copy_recv_end_checked(c, 3, ch.digest[3], NULL, &later, err, sizeof(err)) || !later) {
        cr_log_info("roll: %s", err);
        return false;
    }
    ls_copy_shadow_keep(c, 3);
    return true;
}

Test(copy_shadow_two, the_next_generation_is_taken_while_the_closed_one_is_finished)
{
    events_t ev;
    events_init(&ev);
    ls_copy_t *c = copy_open(dir, &ev);
    send_range(c, &ch, 1, 2);
    cr_assert(roll_to_kept(c));
    cr_assert_eq(events_count(&ev, LS_COPY_EV_DURABLE, 3), 0, "not finished yet");
    cr_assert(!exists("logs", 3));
    ls_copy_shadow_t sh;
    ls_copy_shadow_info(c, &sh);
    cr_assert_eq(sh.generation, 0, "the closed generation's shadow is only kept");
    cr_assert_eq(block(c, 4, 0, 700, &sh), 0);
    cr_assert(sh.generation == 4 && sh.size == 700);
    cr_assert_eq(block(c, 3, 0, 10, &sh), LS_ESTATE, "3 is finished, not streamed");
    cr_assert_eq(block(c, 5, 0, 10, &sh), LS_ESTATE, "5 does not follow");
    cr_assert(exists("shadow", 3) && exists("shadow", 4), "two shadows");
    char err[512] = "";
    cr_assert_eq(ls_copy_recv_finish(c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(events_count(&ev, LS_COPY_EV_DURABLE, 3), 1);
    cr_assert_eq(events_count(&ev, LS_COPY_EV_INSPECTED, 3), 1);
    cr_assert(exists("shadow", 3), "kept until the receiver concludes the finish");
    ls_copy_shadow_unkeep(c, 0);
    cr_assert(!exists("shadow", 3) && exists("shadow", 4));
    logs_hold_gen3();
    cr_assert_eq(count_files(dir, "inspect"), 0, "no .part left");
    /* 4 goes on, and its closed file is finished from its shadow as any (its checks began at
     * unkeep, over the bytes written before) */
    size_t open4 = ch.len[4] - LS_GEN_TRAILER_SIZE;
    cr_assert_eq(block(c, 4, 700, open4 - 700, &sh), 0);
    ls_copy_shadow_report(c);
    bool later = false;
    cr_assert_eq(ls_copy_recv_begin_tail(c, 1, 4, ch.len[4], 0, open4, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(
        ls_copy_recv_data(c, 4, open4, ch.buf[4] + open4, LS_GEN_TRAILER_SIZE, err, sizeof(err)), 0,
        "%s", err);
    cr_assert_eq(ls_copy_recv_end_checked(c, 4, ch.digest[4], NULL, &later, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert(later);
    ls_copy_shadow_keep(c, 4);
    cr_assert_eq(ls_copy_recv_finish(c, err, sizeof(err)), 0, "%s", err);
    ls_copy_shadow_unkeep(c, 0);
    cr_assert_eq(events_count(&ev, LS_COPY_EV_INSPECTED, 4), 1);
    cr_assert_eq(events_count(&ev, LS_COPY_EV_ASK_AGAIN, 0), 0);
    cr_assert_eq(count_files(dir, "shadow"), 0);
    ls_copy_close(c);
}

/* In a forked child: the roll to the kept state, 4's shadow written and synced, the finish failing
 * on the disk (the fault point before the rename: LS_EIO). */
static void failing_child(void)
{
    setenv("LS_FAULTS", "copy.recv.before_rename=fail@3", 1);
    ls_copy_options_t o = {.dir = dir};
    ls_copy_t *c = NULL;
    if (ls_copy_open(&o, &c, NULL, 0) != 0) _exit(3);
    for (int g = 1; g <= 2; g++)
        if (send_bytes(c, (uint64_t) g, ch.buf[g], ch.len[g], ch.digest[g], NULL, 0)) _exit(3);
    ls_copy_shadow_t sh;
    if (!roll_to_kept(c) || block(c, 4, 0, 700, &sh)) _exit(3);
    char err[512];
    int rc = ls_copy_recv_finish(c, err, sizeof(err));
    if (rc != LS_EIO) _exit(4);
    ls_copy_shadow_unkeep(c, rc);
    ls_copy_shadow_info(c, &sh);
    if (sh.generation != 0) _exit(5); /* the next shadow went */
    ls_copy_close(c);
    _exit(0);
}

Test(copy_shadow_two, a_finish_that_fails_drops_the_next_shadow_and_keeps_the_closed_ones)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) failing_child();
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    cr_assert(exists("shadow", 3) && !exists("shadow", 4), "3's kept (an I/O error), 4's gone");
    cr_assert(!exists("logs", 3));
    /* 3 comes again by GEN_TAIL from its shadow, taken up */
    ls_copy_t *c = copy_open(dir, NULL);
    ls_copy_shadow_t sh;
    cr_assert_eq(block(c, 3, 0, 10, &sh), 0);
    cr_assert_eq(sh.size, commit_end_within(open_len()), "taken up cut to its last COMMIT");
    cr_assert_eq(block(c, 3, 0, open_len(), &sh), 0);
    char err[512] = "";
    cr_assert_eq(ls_copy_recv_begin_tail(c, 1, 3, ch.len[3], 0, open_len(), err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(ls_copy_recv_data(c, 3, open_len(), ch.buf[3] + open_len(), LS_GEN_TRAILER_SIZE,
                                   err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(ls_copy_recv_end(c, 3, ch.digest[3], err, sizeof(err)), 0, "%s", err);
    ls_copy_shadow_drop(c, 3);
    logs_hold_gen3();
    ls_copy_close(c);
}

/* In a forked child: the roll to the kept state and 4's shadow synced, then the process dies (the
 * finish never ran: the .part's name goes at restart). */
static void dying_child(void)
{
    ls_copy_options_t o = {.dir = dir};
    ls_copy_t *c = NULL;
    if (ls_copy_open(&o, &c, NULL, 0) != 0) _exit(3);
    for (int g = 1; g <= 2; g++)
        if (send_bytes(c, (uint64_t) g, ch.buf[g], ch.len[g], ch.digest[g], NULL, 0)) _exit(3);
    ls_copy_shadow_t sh;
    if (!roll_to_kept(c) || block(c, 4, 0, four_part(), &sh)) _exit(3);
    _exit(0);
}

static void die_between(void)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) dying_child();
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    cr_assert(exists("shadow", 3) && exists("shadow", 4) && !exists("logs", 3));
}

Test(copy_shadow_two, a_crash_with_two_shadows_is_taken_up_once_the_closed_one_comes_again)
{
    die_between();
    ls_copy_t *c = copy_open(dir, NULL);
    /* the source sends 3 whole (it is not held), then streams 4 from byte 0 */
    cr_assert_eq(send_gen(c, &ch, 3), 0);
    ls_copy_shadow_drop(c, 3);
    cr_assert(!exists("shadow", 3) && exists("shadow", 4), "4's is not 3's to delete");
    logs_hold_gen3();
    ls_copy_shadow_t sh;
    cr_assert_eq(block(c, 4, 0, 10, &sh), 0);
    cr_assert_eq(sh.generation, 4);
    cr_assert_gt(commit_end(4, four_part()), LS_GEN_HEADER_SIZE);
    cr_assert_eq(sh.size, commit_end(4, four_part()), "taken up, chained to 3 held");
    ls_copy_close(c);
}

Test(copy_shadow_two, a_crash_with_two_shadows_activates_the_closed_one)
{
    die_between();
    ls_copy_t *c = copy_open(dir, NULL);
    ls_copy_shadow_closed_t out;
    char err[512] = "";
    cr_assert_eq(ls_copy_shadow_close(c, false, &out, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(out.generation, 3, "the generation after the last held");
    cr_assert_eq(out.dropped, 0, "it has its trailer: only renamed");
    logs_hold_gen3();
    cr_assert(!exists("shadow", 4), "4's went: none of it was acknowledged before 3 was durable");
    ls_copy_close(c);
}
