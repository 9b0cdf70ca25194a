/* copy: restart at every stage, crashes at fault points (forked children), full disk. */
#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "copy_test_util.h"

/* What a child does before it is expected to die at a fault point. */
typedef struct {
    const char *dir;   /* the copy */
    const chain_t *ch; /* generations to send */
    int send_to;       /* send 1..send_to */
    bool replay;       /* then start the replayer and wait for the whole chain */
    uint32_t batch;    /* batch_generations */
} child_t;

static bool replayed_all(void *ctx)
{
    void **a = ctx;
    ls_copy_stats_t st;
    ls_copy_stats(a[0], &st);
    return st.last_replayed >= (uint64_t) ((const chain_t *) a[1])->n;
}

/* The child's work (ls_h_in_child): opens the copy, receives 1..send_to, replays when asked. */
static void child_run(void *ctx)
{
    const child_t *k = ctx;
    ls_copy_options_t o = {.dir = k->dir, .batch_generations = k->batch};
    ls_copy_t *c = NULL;
    LS_H_CHILD_CHECK(ls_copy_open(&o, &c, NULL, 0) == 0);
    for (int g = 1; g <= k->send_to; g++) {
        char err[1024] = "";
        int rc = send_bytes(c, (uint64_t) g, k->ch->buf[g], k->ch->len[g], k->ch->digest[g], err,
                            sizeof(err));
        LS_H_CHILD_CHECK(rc == 0);
    }
    if (k->replay) {
        LS_H_CHILD_CHECK(ls_copy_start(c) == 0);
        void *a[2] = {c, (void *) k->ch};
        ls_h_wait_for(replayed_all, a, 10000);
    }
    ls_copy_close(c);
}

static void crash_case(const char *faults, int send_to, bool replay, uint64_t want_replayed)
{
    char *dir = ls_h_tmpdir("copycrash");
    chain_t ch;
    chain_build(&ch, 5, 4, 30);
    child_t k = {.dir = dir, .ch = &ch, .send_to = send_to, .replay = replay, .batch = 2};
    int st = ls_h_in_child(child_run, &k, faults);
    cr_assert_eq(st, LS_FAULT_EXIT_CODE, "the child died at %s (status %d)", faults, st);
    ls_copy_t *c = copy_open(dir, NULL);
    ls_copy_stats_t s;
    ls_copy_stats(c, &s);
    cr_assert_eq(s.last_replayed, want_replayed, "store at %llu after %s",
                 (unsigned long long) s.last_replayed, faults);
    cr_assert_eq(s.applied_generations, want_replayed);
    ls_copy_close(c);
    converge_after_crash(dir, &ch);
    chain_free(&ch);
    ls_h_rmtree_free(dir);
}

Test(copy_crash, crash_before_the_second_replay_commit_loses_only_that_batch)
{
    crash_case("copy.replay.before_commit=exit@2", 5, true, 2);
}

Test(copy_crash, crash_after_the_second_replay_commit_keeps_it)
{
    crash_case("copy.replay.after_commit=exit@2", 5, true, 4);
}

Test(copy_crash, crash_before_the_rename_out_of_part_drops_the_part)
{
    crash_case("copy.recv.before_rename=exit@3", 5, false, 0);
}

static void write_at(const char *dir, const char *sub, int g, const char *suffix,
                     const uint8_t *buf, size_t len)
{
    char p[4200];
    gen_path(p, sizeof(p), dir, sub, g, suffix);
    cr_assert_eq(ls_h_write_file(p, buf, len), 0);
}

Test(copy_crash, restart_at_every_stage_resumes_at_the_first_generation_not_held)
{
    copy_fix_t f;
    fix_init(&f, "copycrash", 6, 3, 20);
    fix_open(&f, false);
    send_range(f.c, &f.ch, 1, 2);
    ls_copy_close(f.c);

    /* killed while receiving 3: a .part is left */
    write_at(f.dir, "inspect", 3, ".part", f.ch.buf[3], f.ch.len[3] / 2);
    f.c = copy_open(f.dir, NULL);
    ls_copy_resume_t r;
    ls_copy_resume_point(f.c, &r);
    cr_assert_eq(r.next_generation, 3);
    cr_assert_arr_eq(r.digest, f.ch.digest[2], 32);
    cr_assert_eq(r.last_lsn, f.ch.last_lsn[2]);
    cr_assert_eq(count_files(f.dir, "inspect"), 0, ".part deleted");
    ls_copy_close(f.c);

    /* killed after 3 became durable, before inspection; 4 arrived damaged */
    write_at(f.dir, "inspect", 3, "", f.ch.buf[3], f.ch.len[3]);
    uint8_t *bad = malloc(f.ch.len[4]);
    memcpy(bad, f.ch.buf[4], f.ch.len[4]);
    bad[200] ^= 1;
    write_at(f.dir, "inspect", 4, "", bad, f.ch.len[4]);
    free(bad);
    f.c = copy_open(f.dir, NULL);
    ls_copy_resume_point(f.c, &r);
    cr_assert_eq(r.next_generation, 4, "3 inspected at open, the damaged 4 dropped");
    cr_assert(file_exists(f.dir, "logs", 3) && !file_exists(f.dir, "inspect", 4));
    ls_copy_stats_t st;
    ls_copy_stats(f.c, &st);
    cr_assert_eq(st.replay_queue, 3, "1..3 in logs/ not replayed");
    cr_assert_eq(st.inspect_failures, 1, "4 inspected at open and refused");
    cr_assert_eq(st.last_replayed, 0);
    ls_copy_close(f.c);

    /* killed with 1..3 in logs/ not replayed: replayed after the restart, once */
    f.c = copy_open(f.dir, NULL);
    cr_assert_eq(ls_copy_start(f.c), 0);
    wait_replayed(f.c, 3, true);
    ls_copy_close(f.c);
    f.c = copy_open(f.dir, NULL);
    cr_assert_eq(ls_copy_start(f.c), 0);
    ls_copy_stats(f.c, &st);
    cr_assert_eq(st.replay_queue, 0);
    cr_assert_eq(st.applied_generations, 3);
    ls_copy_resume_point(f.c, &r);
    cr_assert_eq(r.next_generation, 4);
    ls_copy_close(f.c);
    ls_copy_stats(f.c = copy_open(f.dir, NULL), &st);
    cr_assert_eq(st.replay_txns, 0, "nothing applied again after a clean restart");
    ls_copy_close(f.c);
    converge_after_crash(f.dir, &f.ch);
    fix_fini(&f);
}

Test(copy_crash, a_log_that_no_longer_chains_is_dropped_at_open)
{
    char *dir = ls_h_tmpdir("copycrash");
    chain_t ch, other;
    chain_build(&ch, 4, 2, 10);
    chain_build(&other, 4, 3, 12); /* same numbers, another history */
    ls_copy_t *c = copy_open(dir, NULL);
    send_range(c, &ch, 1, 3);
    ls_copy_close(c);
    write_at(dir, "logs", 3, "", other.buf[3], other.len[3]); /* replaced behind our back */
    write_at(dir, "logs", 4, "", other.buf[4], other.len[4]);
    c = copy_open(dir, NULL);
    ls_copy_resume_t r;
    ls_copy_resume_point(c, &r);
    cr_assert_eq(r.next_generation, 3);
    cr_assert(!file_exists(dir, "logs", 3) && !file_exists(dir, "logs", 4));
    ls_copy_close(c);
    converge_after_crash(dir, &ch);
    chain_free(&ch);
    chain_free(&other);
    ls_h_rmtree_free(dir);
}

/* Fills the file system holding dir; returns the filler's path (malloc'd). */
static char *fill(const char *dir)
{
    char *path = malloc(strlen(dir) + 8);
    strcpy(path, dir);
    strcat(path, "/filler");
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    static char block[16384];
    memset(block, 'f', sizeof(block));
    for (;;) {
        ssize_t n = write(fd, block, sizeof(block));
        if (n < 0 && errno == ENOSPC) break;
        cr_assert_geq(n, 0, "filling: %s", strerror(errno));
        if (n == 0) break;
    }
    close(fd);
    return path;
}

static bool state_is_full(void *ctx)
{
    return ls_copy_state(ctx, NULL, 0) == LS_COPY_DISK_FULL;
}

Test(copy_crash, full_disk_is_a_state_and_the_copy_resumes_when_space_returns)
{
    char *dir = ls_h_tmpdir("copycrash");
    char mnt[4200];
    snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
    cr_assert_eq(mkdir(mnt, 0700), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=4m") != 0) {
        int e = errno;
        ls_h_rmtree(dir);
        if (getenv("CI")) cr_assert_fail("cannot mount a tmpfs in CI: %s", strerror(e));
        if (geteuid() != 0) cr_skip_test("skipped: mounting a tmpfs needs root (%s)", strerror(e));
        cr_assert_fail("cannot mount a tmpfs as root: %s", strerror(e));
    }
    char cdir[4300];
    snprintf(cdir, sizeof(cdir), "%s/copy", mnt);
    chain_t ch;
    chain_build(&ch, 5, 12, 1000); /* ~40 KiB per generation */
    events_t ev;
    events_init(&ev);
    /* No preallocated .part files: a file received into one of them needs no new space (the
     * pool's room was taken before the disk filled), and this is about a new file's ENOSPC */
    ls_copy_options_t o = {
        .dir = cdir, .event_cb = on_event, .event_ctx = &ev, .prealloc_files = -1};
    ls_copy_t *c = copy_open_opts(&o);
    cr_assert_eq(ls_copy_start(c), 0);
    send_range(c, &ch, 1, 2);
    wait_replayed(c, 2, true);
    char *filler = fill(mnt);
    char err[1024] = "";
    int rc = send_bytes(c, 3, ch.buf[3], ch.len[3], ch.digest[3], err, sizeof(err));
    cr_assert_eq(rc, LS_ENOSPC, "%s: %s", ls_err_name(rc), err);
    char reason[512];
    cr_assert(ls_h_wait_for(state_is_full, c, 1000));
    ls_copy_state(c, reason, sizeof(reason));
    cr_assert(ls_h_contains(reason, "no space left"), "%s", reason);
    cr_assert(ls_h_contains(reason, "generation 3"), "%s", reason);
    cr_assert_geq(events_count(&ev, LS_COPY_EV_STATE, 0), 1);
    cr_assert_eq(count_files(cdir, "inspect"), 0, "the .part was dropped");
    ls_copy_resume_t r;
    ls_copy_resume_point(c, &r);
    cr_assert_eq(r.next_generation, 3, "nothing durable harmed, 3 still wanted");
    cr_assert_eq(send_bytes(c, 3, ch.buf[3], ch.len[3], NULL, err, sizeof(err)), LS_ENOSPC,
                 "still full");
    cr_assert_eq(unlink(filler), 0);
    send_range(c, &ch, 3, 5);
    cr_assert_eq(ls_copy_state(c, NULL, 0), LS_COPY_HEALTHY);
    wait_replayed(c, 5, true);
    store_matches(c, &ch);
    ls_copy_stats_t st;
    ls_copy_stats(c, &st);
    cr_assert_eq(st.applied_generations, 5);
    ls_copy_close(c);
    free(filler);
    chain_free(&ch);
    umount2(mnt, MNT_DETACH);
    ls_h_rmtree_free(dir);
}

Test(copy_crash, a_log_of_another_database_in_logs_refuses_the_open)
{
    copy_fix_t f;
    fix_init(&f, "copycrash", 2, 2, 10);
    fix_open(&f, false);
    send_range(f.c, &f.ch, 1, 1);
    ls_copy_close(f.c);
    ls_h_gen_spec_t spec;
    ls_h_gen_spec_default(&spec, 2, f.ch.last_lsn[1] + 1);
    spec.dbid[0] = 0x77;
    spec.prev_digest = f.ch.digest[1];
    ls_h_gen_t *b = ls_h_gen_new(&spec);
    ls_h_gen_put(b, "key01", 5, "x", 1);
    ls_h_gen_commit(b);
    ls_h_gen_close(b);
    size_t len;
    const uint8_t *bytes = ls_h_gen_bytes(b, &len);
    write_at(f.dir, "logs", 2, "", bytes, len);
    ls_copy_options_t o = {.dir = f.dir};
    char err[1024] = "";
    f.c = NULL;
    cr_assert_eq(ls_copy_open(&o, &f.c, err, sizeof(err)), LS_EDBID, "%s", err);
    cr_assert_null(f.c);
    cr_assert(ls_h_contains(err, "logs/ holds a generation"), "%s", err);
    cr_assert(file_exists(f.dir, "logs", 2), "left for the operator, not deleted");
    ls_h_gen_free(b);
    fix_fini(&f);
}
