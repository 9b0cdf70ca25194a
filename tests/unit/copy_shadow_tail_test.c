/* copy: GEN_TAIL with block mode's shadow: the closed generation takes its head from the shadow
 * and only the tail is received; the whole file is checked as one received whole (a shadow that
 * differs is caught and the generation asked again whole), a shadow that lacks the head asks
 * again at once, and a crash after the head was taken is finished by the next GEN_TAIL. The
 * .part is a hard link of the shadow (the copy is the fallback, tested too): a dropped tail cuts
 * the shadow back, and a shadow that grew the tail and trailer before a crash is taken up cut to
 * its last COMMIT. Split from copy_shadow_write_test.c; helpers in
 * copy_shadow_write_test_util.h. */

#include <criterion/criterion.h>

#include "copy_shadow_write_test_util.h"

TestSuite(copy_shadow_write, .init = setup, .fini = shadow_fixture_fini);

/* GEN_TAIL of generation 3 from byte start, as the receiver begins it (the .part a link of the
 * shadow) or, copied, by recv_begin and recv_from_shadow (the fallback). */
static int begin_tail(ls_copy_t *c, uint64_t start, bool copied, char *err, size_t errlen)
{
    if (!copied) return ls_copy_recv_begin_tail(c, 1, 3, ch.len[3], 0, start, err, errlen);
    int rc = ls_copy_recv_begin(c, 1, 3, ch.len[3], LS_H_GEN_CLOSE_NS, err, errlen);
    return rc ? rc : ls_copy_recv_from_shadow(c, start, err, errlen);
}

/* GEN_TAIL of generation 3 from byte start: the head from the shadow, then the rest received.
 * Returns the first failing step's code (recv_end's for the whole). */
static int tail_rest(ls_copy_t *c, uint64_t start, char *err, size_t errlen)
{
    int rc = 0;
    for (size_t off = start; rc == 0 && off < ch.len[3];) {
        size_t n = LS_MIN((size_t) 4096, ch.len[3] - off);
        rc = ls_copy_recv_data(c, 3, off, ch.buf[3] + off, n, err, errlen);
        off += n;
    }
    return rc ? rc : ls_copy_recv_end(c, 3, ch.digest[3], err, errlen);
}

static int send_tail(ls_copy_t *c, uint64_t start, char *err, size_t errlen)
{
    int rc = begin_tail(c, start, false, err, errlen);
    return rc ? rc : tail_rest(c, start, err, errlen);
}

/* Links of the shadow of generation 3's file (2 while it is also the .part). */
static nlink_t shadow_links(void)
{
    char path[4200];
    shadow_path(path, sizeof(path), 1, 3);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    return st.st_nlink;
}

/* Generation 3 is held, equal to the active's file, and its shadow gone (as the receiver does
 * it: dropped once held). */
static void held_from_tail(ls_copy_t *c)
{
    ls_copy_shadow_drop(c, 3);
    cr_assert_eq(count_files(dir, "shadow"), 0);
    cr_assert_eq(count_files(dir, "inspect"), 0, "no .part left");
    logs_hold_gen3();
}

static void gen_tail_finishes(bool copied)
{
    events_t ev;
    events_init(&ev);
    ls_copy_t *c = wopen(dir, &ev);
    send_range(c, &ch, 1, 2);
    size_t part = open_len() - 700; /* the stream ended 700 bytes before the log did */
    cr_assert_eq(block(c, 3, 0, part, NULL), 0);
    ls_copy_stats_t before, after;
    ls_copy_stats(c, &before);
    char err[512] = "";
    cr_assert_eq(begin_tail(c, part, copied, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(shadow_links(), copied ? 1 : 2, "the .part is the shadow's file unless copied");
    cr_assert_eq(tail_rest(c, part, err, sizeof(err)), 0, "%s", err);
    ls_copy_stats(c, &after);
    cr_assert_eq(events_count(&ev, LS_COPY_EV_INSPECTED, 3), 1);
    cr_assert_eq(events_count(&ev, LS_COPY_EV_ASK_AGAIN, 0), 0);
    /* the whole file was hashed and sealed, not only the tail */
    cr_assert_eq(after.digest_bytes - before.digest_bytes, ch.len[3] - LS_GEN_TRAILER_SIZE);
    cr_assert_eq(after.seal_bytes - before.seal_bytes, ch.len[3]);
    held_from_tail(c);
    ls_copy_close(c);
}

Test(copy_shadow_write, gen_tail_finishes_the_closed_generation_from_the_shadow)
{
    gen_tail_finishes(false);
}

Test(copy_shadow_write, gen_tail_finishes_it_from_a_copy_of_the_shadow_too)
{
    gen_tail_finishes(true);
}

/* The tail went into the shadow's file (the .part is its link) and the receive was dropped: the
 * shadow is cut back to what it held, and a crash before that cut is taken up to its last COMMIT
 * although the file grew a trailer. */
Test(copy_shadow_write, a_dropped_tail_leaves_the_shadow_as_it_was)
{
    ls_copy_t *c = wopen(dir, NULL);
    send_range(c, &ch, 1, 2);
    size_t part = open_len() - 700;
    cr_assert_eq(block(c, 3, 0, part, NULL), 0);
    char err[512] = "";
    cr_assert_eq(begin_tail(c, part, false, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(
        ls_copy_recv_data(c, 3, part, ch.buf[3] + part, ch.len[3] - part, err, sizeof(err)), 0,
        "%s", err);
    ls_copy_recv_abort(c);
    cr_assert_eq(count_files(dir, "inspect"), 0);
    shadow_is(part);
    cr_assert_eq(shadow_links(), 1);
    /* the next connection's GEN_TAIL: the shadow's running checks went with the dropped receive,
     * so its head is read back */
    cr_assert_eq(send_tail(c, part, err, sizeof(err)), 0, "%s", err);
    held_from_tail(c);
    ls_copy_close(c);
}

static void tail_written_child(const char *faults)
{
    ls_copy_t *c = child_open(faults);
    char err[256];
    ls_copy_shadow_t sh;
    size_t part = open_len() - 700;
    if (ls_copy_shadow_write(c, 1, 3, 0, ch.buf[3], part, LSN, &sh, err, sizeof(err)) ||
        ls_copy_recv_begin_tail(c, 1, 3, ch.len[3], 0, part, err, sizeof(err)) ||
        ls_copy_recv_data(c, 3, part, ch.buf[3] + part, ch.len[3] - part, err, sizeof(err)))
        _exit(3);
    _exit(LS_FAULT_EXIT_CODE); /* dies before GEN_END: the shadow's file holds it all */
}

Test(copy_shadow_write, a_shadow_that_grew_a_trailer_before_a_crash_is_taken_up_cut)
{
    child_dies_at("the tail's GEN_END", tail_written_child, "");
    char path[4200];
    shadow_path(path, sizeof(path), 1, 3);
    cr_assert_eq(file_len(path), ch.len[3], "the tail and the trailer reached the shadow's file");
    ls_copy_t *c = wopen(dir, NULL);
    ls_copy_shadow_t sh;
    cr_assert_eq(block(c, 3, 0, 10, &sh), 0, "the stream restarts at 0");
    cr_assert_eq(sh.generation, 3, "the shadow was taken up, not replaced");
    cr_assert_eq(sh.size, commit_end_within(open_len()));
    shadow_is((size_t) sh.size);
    char err[512] = "";
    cr_assert_eq(send_tail(c, sh.size, err, sizeof(err)), 0, "%s", err);
    held_from_tail(c);
    ls_copy_close(c);
}

/* The shadow's bytes are not the active's (one bit): the whole-file checks catch it, the
 * generation is asked again and the shadow dropped; received whole it equals the active's. */
static void differing_shadow(bool with_digest)
{
    events_t ev;
    events_init(&ev);
    ls_copy_t *c = wopen(dir, &ev);
    send_range(c, &ch, 1, 2);
    uint8_t *bad = malloc(open_len());
    memcpy(bad, ch.buf[3], open_len());
    bad[open_len() / 2] ^= 0x10;
    char err[512] = "";
    ls_copy_shadow_t sh;
    cr_assert_eq(ls_copy_shadow_write(c, 1, 3, 0, bad, open_len(), LSN, &sh, err, sizeof(err)), 0);
    free(bad);
    cr_assert_eq(begin_tail(c, open_len(), !with_digest, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ls_copy_recv_data(c, 3, open_len(), ch.buf[3] + open_len(), LS_GEN_TRAILER_SIZE,
                                   err, sizeof(err)),
                 0, "%s", err);
    int rc = ls_copy_recv_end(c, 3, with_digest ? ch.digest[3] : NULL, err, sizeof(err));
    cr_assert_neq(rc, 0, "a shadow that differs from the active's log was taken");
    cr_assert_eq(events_count(&ev, LS_COPY_EV_ASK_AGAIN, 3), 1);
    cr_assert_eq(events_count(&ev, LS_COPY_EV_INSPECTED, 3), 0);
    cr_log_info("%s: %s", ls_err_name(rc), ev.last_msg);
    if (with_digest) cr_assert(strstr(ev.last_msg, "from the shadow"), "%s", ev.last_msg);
    ls_copy_shadow_drop(c, 3); /* what the receiver does after a failed GEN_TAIL */
    cr_assert_eq(send_gen(c, &ch, 3), 0, "the whole generation, asked again");
    held_from_tail(c);
    ls_copy_close(c);
}

Test(copy_shadow_write, a_shadow_that_differs_is_caught_by_the_digest_and_asked_again_whole)
{
    differing_shadow(true);
}

Test(copy_shadow_write, a_shadow_that_differs_is_caught_by_the_inspection_without_a_digest)
{
    differing_shadow(false);
}

Test(copy_shadow_write, a_shadow_that_lacks_the_head_asks_for_the_whole_generation)
{
    events_t ev;
    events_init(&ev);
    ls_copy_t *c = wopen(dir, &ev);
    send_range(c, &ch, 1, 2);
    cr_assert_eq(block(c, 3, 0, 1000, NULL), 0);
    char err[512] = "";
    cr_assert_eq(begin_tail(c, 2000, false, err, sizeof(err)), LS_EGAP);
    cr_assert(strstr(err, "holds 1000 bytes") && strstr(err, "whole"), "%s", err);
    cr_assert_eq(events_count(&ev, LS_COPY_EV_ASK_AGAIN, 3), 1);
    cr_assert_eq(count_files(dir, "inspect"), 0, "the receive was dropped");
    cr_assert_eq(ls_copy_recv_data(c, 3, 2000, ch.buf[3] + 2000, 10, err, sizeof(err)), LS_ESTATE,
                 "its GEN_DATA are refused");
    cr_assert_eq(send_gen(c, &ch, 3), 0);
    held_from_tail(c);
    ls_copy_close(c);
}

/* In a forked child: generation 3 streamed whole into the shadow, then GEN_TAIL dying once the
 * head is copied into the .part. */
static void tail_child(const char *faults)
{
    ls_copy_t *c = child_open(faults);
    char err[256];
    ls_copy_shadow_t sh;
    if (ls_copy_shadow_write(c, 1, 3, 0, ch.buf[3], open_len(), LSN, &sh, err, sizeof(err)))
        _exit(3);
    send_tail(c, open_len(), err, sizeof(err));
    _exit(0);
}

Test(copy_shadow_write, a_crash_after_the_head_was_copied_is_finished_by_the_next_gen_tail)
{
    child_dies_at("copy.tail.after_head", tail_child, "copy.tail.after_head=exit");
    ls_copy_t *c = wopen(dir, NULL);
    ls_copy_resume_t r;
    ls_copy_resume_point(c, &r);
    cr_assert_eq(r.next_generation, 3, "generation 3 is not held");
    char err[512] = "";
    /* the new connection's GEN_TAIL: the shadow is taken up (no BLOCK came yet) */
    cr_assert_eq(send_tail(c, open_len(), err, sizeof(err)), 0, "%s", err);
    held_from_tail(c);
    ls_copy_close(c);
}
