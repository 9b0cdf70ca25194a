/* copy: block mode's shadow of the open generation as the receiver writes it (copy.h, "block
 * mode"): it grows in order, holds only what it was given, refuses gaps and other generations;
 * the first BLOCK after a restart takes the file up again cut to its last complete transaction
 * and deletes shadows of another generation or epoch; a crash at each fault point leaves a
 * shadow that is finished by the closed generation, which arrives whole and equals the
 * active's. GEN_TAIL: the closed generation takes its head from the shadow and only the tail is
 * received; the whole file is checked as one received whole (a shadow that differs is caught and
 * the generation asked again whole), a shadow that lacks the head asks again at once, and a crash
 * after the head was taken is finished by the next GEN_TAIL. The .part is a hard link of the
 * shadow (the copy is the fallback, tested too): a dropped tail cuts the shadow back, and a shadow
 * that grew the tail and trailer before a crash is taken up cut to its last COMMIT. */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "shadow_test_util.h"

static void setup(void)
{
    shadow_fixture_init("copyshadow");
}

TestSuite(copy_shadow_write, .init = setup, .fini = shadow_fixture_fini);

/* The copy without a pool: each shadow is a new file, so its length is what it was given (a file
 * taken from the pool, filled in the background, would be the pool's size: that path is
 * copy_shadow_pool_test.c's, and with the pool here the lengths below depended on whether a
 * pool file happened to be ready). */
static ls_copy_t *wopen(const char *d, events_t *ev)
{
    ls_copy_options_t o = {.dir = d, .prealloc_files = -1};
    if (ev) {
        o.event_cb = on_event;
        o.event_ctx = ev;
    }
    return copy_open_opts(&o);
}

/* A BLOCK of generation gen's bytes (the closed file's: the open log's are the same). */
static int block(ls_copy_t *c, uint64_t gen, uint64_t off, size_t len, ls_copy_shadow_t *out)
{
    char err[512] = "";
    ls_copy_shadow_t sh;
    int rc = ls_copy_shadow_write(c, 1, gen, off, ch.buf[gen] + off, len, LSN + off + len,
                                  out ? out : &sh, err, sizeof(err));
    if (rc) cr_log_info("BLOCK %llu+%zu: %s", (unsigned long long) off, len, err);
    return rc;
}

static void shadow_path(char *out, size_t len, uint32_t epoch, uint64_t gen)
{
    char name[LS_GEN_NAME_MAX];
    cr_assert_eq(ls_gen_name(name, sizeof(name), "E00", epoch, gen), 0);
    snprintf(out, len, "%s/shadow/%s", dir, name);
}

static size_t file_len(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    return (size_t) st.st_size;
}

/* The shadow of generation 3 holds exactly bytes [0, n) of the open log. */
static void shadow_is(size_t n)
{
    char path[4200];
    shadow_path(path, sizeof(path), 1, 3);
    size_t len = 0;
    uint8_t *b = ls_h_read_file(path, &len);
    cr_assert(b, "no shadow %s", path);
    cr_assert_eq(len, n);
    cr_assert_arr_eq(b, ch.buf[3], n);
    free(b);
}

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

/* In a forked child: the copy opened with faults armed and generations 1 and 2 received (exit 3
 * if that fails). */
static ls_copy_t *child_open(const char *faults)
{
    setenv("LS_FAULTS", faults, 1);
    ls_copy_options_t o = {.dir = dir, .prealloc_files = -1};
    ls_copy_t *c = NULL;
    if (ls_copy_open(&o, &c, NULL, 0) != 0) _exit(3);
    for (int g = 1; g <= 2; g++)
        if (send_bytes(c, (uint64_t) g, ch.buf[g], ch.len[g], ch.digest[g], NULL, 0)) _exit(3);
    return c;
}

/* Runs body(faults) in a forked child and asserts that it died at the fault point. */
static void child_dies_at(const char *point, void (*body)(const char *faults), const char *faults)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) body(faults);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == LS_FAULT_EXIT_CODE,
              "the child died at %s (status %d)", point, status);
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
