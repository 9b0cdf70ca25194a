/* copy: block mode's shadow taken in place from the pool (docs/BLOCKMODE.md, "The shadow in
 * place"): a ready pool file whose name is durable keeps it (pool/ready-<n>), and shadow/<name> is
 * a link for the readers that is never synced, so no fsync of a directory lies before the first
 * BLOCK_ACK. A crash may lose that link: the open finds the shadow by its header and names it in
 * shadow/ again (ls__copy_shadow_claim) before the pool could hand it out. Here a crash is a
 * forked child dying at a fault point, and what it did not make durable is undone by hand: the
 * unsynced link removed, a header that no fdatasync covered zeroed. */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "shadow_test_util.h"

static void setup(void)
{
    shadow_fixture_init("copyshinplace");
}

TestSuite(copy_shadow_inplace, .init = setup, .fini = shadow_fixture_fini);

static void shadow_path(char *out, size_t len)
{
    char name[LS_GEN_NAME_MAX];
    cr_assert_eq(ls_gen_name(name, sizeof(name), "E00", 1, 3), 0);
    snprintf(out, len, "%s/shadow/%s", dir, name);
}

static void pool_path(char *out, size_t len, int n)
{
    snprintf(out, len, "%s/pool/ready-%d", dir, n);
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* Both names, one file. */
static bool in_place(void)
{
    char p[4200], sp[4200];
    pool_path(p, sizeof(p), 1);
    shadow_path(sp, sizeof(sp));
    struct stat a, b;
    return stat(p, &a) == 0 && stat(sp, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

static int block(ls_copy_t *c, uint64_t off, size_t len, ls_copy_shadow_t *out)
{
    char err[512] = "";
    ls_copy_shadow_t sh;
    int rc = ls_copy_shadow_write(c, 1, 3, off, ch.buf[3] + off, len, LSN + off + len,
                                  out ? out : &sh, err, sizeof(err));
    if (rc) cr_log_info("BLOCK %llu+%zu: %s", (unsigned long long) off, len, err);
    return rc;
}

/* Generations 1 and 2 held, the pool emptied but for pool/ready-<n> holding buf[0, len) (zeros
 * when buf is NULL) for each n in 1..files. Run in a child when faults are used later (the fault
 * points are read once a process). */
static void prepare(const uint8_t *buf, size_t len, int files)
{
    ls_copy_t *c = copy_open(dir, NULL);
    send_range(c, &ch, 1, 2);
    ls_copy_close(c);
    char p[4200];
    snprintf(p, sizeof(p), "%s/pool", dir);
    ls_h_rmtree(p);
    cr_assert_eq(ls_mkdir_p(p), 0);
    uint8_t *zeros = buf ? NULL : calloc(1, len);
    for (int n = 1; n <= files; n++) {
        pool_path(p, sizeof(p), n);
        cr_assert_eq(ls_h_write_file(p, buf ? buf : zeros, len), 0);
    }
    free(zeros);
}

static ls_copy_t *open_pool(void)
{
    ls_copy_options_t o = {.dir = dir, .prealloc_files = 1};
    return copy_open_opts(&o);
}

/* GEN_TAIL of generation 3 from byte start, the rest received: logs/ holds it exactly. */
static void send_tail(ls_copy_t *c, uint64_t start)
{
    char err[512] = "";
    cr_assert_eq(ls_copy_recv_begin_tail(c, 1, 3, ch.len[3], 0, start, err, sizeof(err)), 0, "%s",
                 err);
    if (start < ch.len[3])
        cr_assert_eq(
            ls_copy_recv_data(c, 3, start, ch.buf[3] + start, ch.len[3] - start, err, sizeof(err)),
            0, "%s", err);
    cr_assert_eq(ls_copy_recv_end(c, 3, ch.digest[3], err, sizeof(err)), 0, "%s", err);
    ls_copy_shadow_drop(c, 3);
    cr_assert_eq(count_files(dir, "shadow"), 0);
    logs_hold_gen3();
}

/* The first BLOCK after an open takes the shadow up: its size, cut after the last COMMIT. */
static void taken_up(ls_copy_t *c, size_t want)
{
    ls_copy_shadow_t sh;
    cr_assert_eq(block(c, 0, 10, &sh), 0, "the stream restarts at 0");
    cr_assert_eq(sh.generation, 3);
    cr_assert_eq(sh.size, want, "taken up with %llu bytes, %zu wanted",
                 (unsigned long long) sh.size, want);
}

/* The shadow keeps the pool file's name; shadow/ has a link to it. A clean close and open: the
 * open names it in shadow/ only (the pool forgets it) and the next BLOCK takes it up. */
Test(copy_shadow_inplace, the_shadow_keeps_its_pool_name_and_the_open_claims_it)
{
    prepare(NULL, 2 * ch.len[3], 1);
    ls_copy_t *c = open_pool();
    size_t part = commit_end_within(open_len() / 2);
    cr_assert_eq(block(c, 0, part, NULL), 0);
    cr_assert(in_place(), "pool/ready-1 and the shadow are one file");
    ls_copy_close(c);
    c = open_pool();
    char p[4200];
    pool_path(p, sizeof(p), 1);
    cr_assert_not(exists(p), "claimed: no longer the pool's");
    taken_up(c, part);
    cr_assert_eq(block(c, 0, open_len(), NULL), 0);
    send_tail(c, open_len());
    ls_copy_close(c);
}

/* In a forked child: the shadow of generation 3 over pool/ready-1, a first BLOCK of half the log
 * and a second of a quarter, dying at the fault point. */
static void child(const char *faults)
{
    setenv("LS_FAULTS", faults, 1);
    ls_copy_options_t o = {.dir = dir, .prealloc_files = 1};
    ls_copy_t *c = NULL;
    if (ls_copy_open(&o, &c, NULL, 0) != 0) _exit(3);
    char err[256];
    ls_copy_shadow_t sh;
    size_t half = open_len() / 2;
    if (ls_copy_shadow_write(c, 1, 3, 0, ch.buf[3], half, LSN, &sh, err, sizeof(err))) _exit(3);
    ls_copy_shadow_write(c, 1, 3, half, ch.buf[3] + half, open_len() / 4, LSN, &sh, err,
                         sizeof(err));
    _exit(0);
}

/* Prepared (pool files of pool_len zeros), then the child dying at faults; what a crash would
 * undo is undone: the shadow's link in shadow/ (never synced) removed. */
static void crash(const char *faults, size_t pool_len, int files)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prepare(NULL, pool_len, files);
        _exit(0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "prepared (status %d)", status);
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) child(faults);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == LS_FAULT_EXIT_CODE,
              "the child died at %s (status %d)", faults, status);
    cr_assert(in_place());
    char sp[4200];
    shadow_path(sp, sizeof(sp));
    cr_assert_eq(unlink(sp), 0);
}

/* Killed after a batch's fdatasync (its BLOCK_ACK may have gone) and the link lost: the open
 * finds the shadow in the pool by its header, the take-up keeps every complete transaction. */
Test(copy_shadow_inplace, a_crash_after_the_fsync_the_link_lost_the_pool_name_holds_it)
{
    crash("copy.shadow.after_fsync=exit@2", 2 * ch.len[3], 1);
    ls_copy_t *c = open_pool();
    char p[4200];
    pool_path(p, sizeof(p), 1);
    cr_assert_not(exists(p), "claimed");
    taken_up(c, commit_end_within(open_len() / 2 + open_len() / 4));
    cr_assert_eq(block(c, 0, open_len(), NULL), 0);
    send_tail(c, open_len());
    ls_copy_close(c);
}

/* The same, then the activation: the shadow found in the pool is closed as generation 3. */
Test(copy_shadow_inplace, the_activation_closes_a_shadow_found_in_the_pool)
{
    crash("copy.shadow.after_fsync=exit@2", 2 * ch.len[3], 1);
    ls_copy_t *c = copy_open(dir, NULL);
    ls_copy_shadow_closed_t out;
    char err[1024] = "";
    cr_assert_eq(ls_copy_shadow_close(c, false, &out, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(out.generation, 3);
    size_t written = open_len() / 2 + open_len() / 4, end = commit_end_within(written);
    cr_assert_eq(out.bytes, end + LS_GEN_TRAILER_SIZE);
    cr_assert_eq(out.dropped, written - end, "the torn bytes, not the zeros");
    char path[4200];
    gen_path(path, sizeof(path), dir, "logs", 3, "");
    size_t len = 0;
    uint8_t *b = ls_h_read_file(path, &len);
    cr_assert(b && len == end + LS_GEN_TRAILER_SIZE);
    cr_assert_arr_eq(b, ch.buf[3], end);
    free(b);
    pool_path(path, sizeof(path), 1);
    cr_assert_not(exists(path));
    ls_copy_close(c);
}

/* Killed before the first batch's fdatasync: nothing was acknowledged, and the header may never
 * have reached the disk (zeroed here, or the pool file's old bytes: generation 1's, a pruned
 * log's): the file stays the pool's, nothing is claimed, the activation finds no shadow, and the
 * next stream takes the file in place again. */
static void before_first_sync(const uint8_t *old_header)
{
    crash("copy.shadow.before_fsync=exit@1", 2 * ch.len[3], 1);
    char p[4200];
    pool_path(p, sizeof(p), 1);
    int fd = open(p, O_WRONLY);
    cr_assert_geq(fd, 0);
    uint8_t zeros[LS_GEN_HEADER_SIZE] = {0};
    const uint8_t *h = old_header ? old_header : zeros;
    cr_assert_eq(pwrite(fd, h, LS_GEN_HEADER_SIZE, 0), LS_GEN_HEADER_SIZE);
    close(fd);
    ls_copy_t *c = open_pool();
    cr_assert(exists(p), "still the pool's");
    cr_assert_eq(count_files(dir, "shadow"), 0, "nothing claimed");
    ls_copy_shadow_closed_t out;
    char err[1024] = "";
    cr_assert_eq(ls_copy_shadow_close(c, true, &out, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(out.generation, 0, "no shadow to close");
    cr_assert_eq(block(c, 0, open_len(), NULL), 0);
    cr_assert(in_place(), "taken again");
    send_tail(c, open_len());
    ls_copy_close(c);
}

Test(copy_shadow_inplace, a_crash_before_the_first_fsync_leaves_a_pool_file_zeros)
{
    before_first_sync(NULL);
}

Test(copy_shadow_inplace, a_crash_before_the_first_fsync_leaves_a_pool_file_old_header)
{
    before_first_sync(ch.buf[1]);
}

/* Writes generation 3's bytes [0, n) over path (created). */
static void write_prefix(const char *path, size_t n)
{
    cr_assert_eq(ls_h_write_file(path, ch.buf[3], n), 0);
}

/* Two files of generation 3 (one left by an earlier shadow whose deletion a crash undid): the
 * open keeps the one with more complete transactions, wherever it is, and deletes the other. */
static void two_candidates(size_t in_shadow, size_t in_pool, size_t want)
{
    prepare(NULL, 4096, 0);
    char sp[4200], p[4200];
    shadow_path(sp, sizeof(sp));
    if (in_shadow) {
        snprintf(p, sizeof(p), "%s/shadow", dir);
        cr_assert_eq(ls_mkdir_p(p), 0);
        write_prefix(sp, in_shadow);
    }
    pool_path(p, sizeof(p), 1);
    write_prefix(p, in_pool);
    if (!in_shadow) { /* a second pool file instead, shorter */
        pool_path(p, sizeof(p), 2);
        write_prefix(p, commit_end_within(open_len() / 4));
    }
    ls_copy_t *c = open_pool();
    pool_path(p, sizeof(p), 1);
    cr_assert_not(exists(p));
    pool_path(p, sizeof(p), 2);
    cr_assert_not(exists(p));
    cr_assert_eq(count_files(dir, "shadow"), 1);
    taken_up(c, want);
    cr_assert_eq(block(c, 0, open_len(), NULL), 0);
    send_tail(c, open_len());
    ls_copy_close(c);
}

Test(copy_shadow_inplace, two_candidates_the_pools_is_longer)
{
    size_t a = commit_end_within(open_len() / 3), b = commit_end_within(open_len() - 10);
    two_candidates(a, b, b);
}

Test(copy_shadow_inplace, two_candidates_the_shadows_is_longer)
{
    size_t a = commit_end_within(open_len() - 10), b = commit_end_within(open_len() / 3);
    two_candidates(a, b, a);
}

Test(copy_shadow_inplace, two_candidates_both_in_the_pool)
{
    size_t b = commit_end_within(open_len() / 2);
    two_candidates(0, b, b);
}

/* A pool file that is also a held log's name (the log's move into the pool undone by a crash, or
 * an in-place shadow whose pool name a crash kept after its generation went into logs/): it
 * leaves the pool, so no shadow or receive overwrites the log. */
Test(copy_shadow_inplace, a_pool_file_that_is_a_held_logs_name_leaves_the_pool)
{
    prepare(NULL, 4096, 0);
    char p[4200], log[4200];
    gen_path(log, sizeof(log), dir, "logs", 2, "");
    pool_path(p, sizeof(p), 1);
    cr_assert_eq(link(log, p), 0);
    ls_copy_t *c = open_pool();
    cr_assert_not(exists(p), "left the pool");
    size_t len = 0;
    uint8_t *b = ls_h_read_file(log, &len);
    cr_assert(b && len == ch.len[2]);
    cr_assert_arr_eq(b, ch.buf[2], len);
    free(b);
    cr_assert_eq(block(c, 0, open_len(), NULL), 0);
    send_tail(c, open_len());
    b = ls_h_read_file(log, &len);
    cr_assert(b && len == ch.len[2], "generation 2 untouched by the shadow of 3");
    cr_assert_arr_eq(b, ch.buf[2], len);
    free(b);
    ls_copy_close(c);
}
