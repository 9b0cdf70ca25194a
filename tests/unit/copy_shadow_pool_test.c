/* copy: block mode's shadow over a file of the copy's pool (docs/BLOCKMODE.md, "The shadow over
 * prepared blocks"): a new shadow takes a ready pool file and its BLOCKs overwrite it in place,
 * the file keeping its size; the shadow's bytes are what it was given, never the file's size.
 * After a crash the take-up finds the valid end by the records (zeros, a torn batch followed by
 * zeros, a recycled log's old records past the bytes are none of them data); GEN_TAIL's .part is
 * the closed generation exactly, from a pool file longer or shorter than it; the activation closes
 * such a shadow after its last COMMIT without counting the zeros as dropped, and deletes one whose
 * header was never written. */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "shadow_test_util.h"

static void setup(void)
{
    shadow_fixture_init("copyshpool");
}

TestSuite(copy_shadow_pool, .init = setup, .fini = shadow_fixture_fini);

static int block(ls_copy_t *c, uint64_t off, size_t len, ls_copy_shadow_t *out)
{
    char err[512] = "";
    ls_copy_shadow_t sh;
    int rc = ls_copy_shadow_write(c, 1, 3, off, ch.buf[3] + off, len, LSN + off + len,
                                  out ? out : &sh, err, sizeof(err));
    if (rc) cr_log_info("BLOCK %llu+%zu: %s", (unsigned long long) off, len, err);
    return rc;
}

static void shadow_path(char *out, size_t len)
{
    char name[LS_GEN_NAME_MAX];
    cr_assert_eq(ls_gen_name(name, sizeof(name), "E00", 1, 3), 0);
    snprintf(out, len, "%s/shadow/%s", dir, name);
}

static size_t shadow_len(void)
{
    char path[4200];
    shadow_path(path, sizeof(path));
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    return (size_t) st.st_size;
}

/* The shadow's file begins with bytes [0, n) of the open log. */
static void shadow_begins_with(size_t n)
{
    char path[4200];
    shadow_path(path, sizeof(path));
    size_t len = 0;
    uint8_t *b = ls_h_read_file(path, &len);
    cr_assert(b && len >= n, "no shadow %s of %zu bytes", path, n);
    cr_assert_arr_eq(b, ch.buf[3], n);
    free(b);
}

/* Generations 1 and 2 held by a copy opened and closed again. */
static void held_two(void)
{
    ls_copy_t *c = copy_open(dir, NULL);
    send_range(c, &ch, 1, 2);
    ls_copy_close(c);
}

/* Generations 1 and 2 held, the copy closed, and its pool emptied but for one ready file holding
 * buf[0, len) (zeros when buf is NULL): the next shadow takes it. */
static void prepare(const uint8_t *buf, size_t len)
{
    held_two();
    char p[4200];
    snprintf(p, sizeof(p), "%s/pool", dir);
    ls_h_rmtree(p);
    cr_assert_eq(ls_mkdir_p(p), 0);
    uint8_t *zeros = buf ? NULL : calloc(1, len);
    snprintf(p, sizeof(p), "%s/pool/ready-1", dir);
    cr_assert_eq(ls_h_write_file(p, buf ? buf : zeros, len), 0);
    free(zeros);
}

static ls_copy_t *open_pool(void)
{
    ls_copy_options_t o = {.dir = dir, .prealloc_files = 1};
    return copy_open_opts(&o);
}

static bool pool_file_taken(void)
{
    char p[4200];
    snprintf(p, sizeof(p), "%s/pool/ready-1", dir);
    return access(p, F_OK) != 0;
}

/* GEN_TAIL of generation 3 from byte start (the .part a link of the shadow), the rest received. */
static void send_tail(ls_copy_t *c, uint64_t start)
{
    char err[512] = "";
    cr_assert_eq(ls_copy_recv_begin_tail(c, 1, 3, ch.len[3], 0, start, err, sizeof(err)), 0, "%s",
                 err);
    for (size_t off = start; off < ch.len[3];) {
        size_t n = LS_MIN((size_t) 4096, ch.len[3] - off);
        cr_assert_eq(ls_copy_recv_data(c, 3, off, ch.buf[3] + off, n, err, sizeof(err)), 0, "%s",
                     err);
        off += n;
    }
    cr_assert_eq(ls_copy_recv_end(c, 3, ch.digest[3], err, sizeof(err)), 0, "%s", err);
    ls_copy_shadow_drop(c, 3);
    cr_assert_eq(count_files(dir, "shadow"), 0);
    cr_assert_eq(count_files(dir, "inspect"), 0, "no .part left");
    logs_hold_gen3();
}

/* A pool file longer than the generation: overwritten in place, its size kept; GEN_TAIL cuts it
 * to the closed size, and logs/ holds the closed generation exactly. */
Test(copy_shadow_pool, a_longer_pool_file_is_overwritten_and_cut_to_the_closed_size)
{
    size_t pool_len = 2 * ch.len[3];
    prepare(NULL, pool_len);
    ls_copy_t *c = open_pool();
    ls_copy_shadow_t sh;
    size_t part = open_len() - 700;
    cr_assert_eq(block(c, 0, part / 2, &sh), 0);
    cr_assert(pool_file_taken(), "the shadow is the pool's file");
    cr_assert_eq(block(c, part / 2, part - part / 2, &sh), 0);
    cr_assert_eq(sh.size, part, "the shadow's bytes, not the file's size");
    cr_assert_eq(shadow_len(), pool_len, "overwritten in place: the size is the pool file's");
    shadow_begins_with(part);
    send_tail(c, part);
    ls_copy_close(c);
}

/* A pool file shorter than the generation: the BLOCKs past it extend it. */
Test(copy_shadow_pool, a_shorter_pool_file_is_extended_by_the_blocks)
{
    prepare(NULL, open_len() / 2);
    ls_copy_t *c = open_pool();
    ls_copy_shadow_t sh;
    cr_assert_eq(block(c, 0, 100, &sh), 0);
    cr_assert(pool_file_taken());
    cr_assert_eq(shadow_len(), open_len() / 2);
    cr_assert_eq(block(c, 0, open_len(), &sh), 0);
    cr_assert_eq(sh.size, open_len());
    cr_assert_eq(shadow_len(), open_len());
    shadow_begins_with(open_len());
    send_tail(c, open_len());
    ls_copy_close(c);
}

/* In a forked child: the shadow of generation 3 over the pool file, in two BLOCKs, the second one
 * dying at the fault point. */
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

/* The child dies at point with zeros after the bytes it wrote: the take-up keeps everything up to
 * the last COMMIT of what reached the file, nothing of the zeros, and cuts the file there. */
static void crash_at(const char *point)
{
    size_t pool_len = 2 * ch.len[3];
    /* prepared in a child of its own: the fault points are read once a process, at the first */
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prepare(NULL, pool_len);
        _exit(0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "prepared (status %d)", status);
    char faults[128];
    snprintf(faults, sizeof(faults), "%s=exit@2", point);
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) child(faults);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == LS_FAULT_EXIT_CODE,
              "the child died at %s (status %d)", point, status);
    cr_assert(pool_file_taken());
    cr_assert_eq(shadow_len(), pool_len, "zeros after the bytes");
    ls_copy_t *c = open_pool();
    ls_copy_shadow_t sh;
    cr_assert_eq(block(c, 0, 10, &sh), 0, "the stream restarts at 0");
    cr_assert_eq(sh.generation, 3, "the shadow was taken up");
    size_t want = commit_end_within(open_len() / 2 + open_len() / 4);
    cr_assert_eq(sh.size, want);
    cr_assert_eq(shadow_len(), want, "cut after its last COMMIT");
    shadow_begins_with(want);
    cr_assert_eq(block(c, 0, open_len(), &sh), 0);
    send_tail(c, open_len());
    ls_copy_close(c);
}

Test(copy_shadow_pool, a_crash_before_the_fsync_leaves_zeros_that_are_not_taken_up)
{
    crash_at("copy.shadow.before_fsync");
}

Test(copy_shadow_pool, a_crash_after_the_fsync_leaves_zeros_that_are_not_taken_up)
{
    crash_at("copy.shadow.after_fsync");
}

/* The shadow's first `part` bytes (a COMMIT's end) written over the pool file, the copy closed,
 * then the bytes [part, part + torn) written into the file as a batch the crash tore. */
static size_t torn_batch(size_t *torn)
{
    ls_copy_t *c = open_pool();
    size_t part = commit_end_within(open_len() / 2);
    cr_assert_eq(block(c, 0, part, NULL), 0);
    cr_assert(pool_file_taken());
    ls_copy_close(c);
    /* a cut inside the next transaction's records, on a byte that is not zero */
    size_t k = commit_end_within(open_len()) - part - 10;
    while (ch.buf[3][part + k - 1] == 0)
        k--;
    char path[4200];
    shadow_path(path, sizeof(path));
    int fd = open(path, O_WRONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, ch.buf[3] + part, k, (off_t) part), (ssize_t) k);
    close(fd);
    *torn = k;
    return part;
}

Test(copy_shadow_pool, a_torn_batch_followed_by_zeros_is_cut_to_the_last_commit)
{
    prepare(NULL, 2 * ch.len[3]);
    size_t torn = 0;
    size_t part = torn_batch(&torn);
    ls_copy_t *c = open_pool();
    ls_copy_shadow_t sh;
    cr_assert_eq(block(c, 0, 10, &sh), 0);
    cr_assert_eq(sh.size, commit_end_within(part + torn));
    cr_assert_eq(shadow_len(), sh.size);
    cr_assert_eq(block(c, 0, open_len(), &sh), 0);
    send_tail(c, open_len());
    ls_copy_close(c);
}

/* A pool file recycled from an older generation of the same database: its records lie past the
 * shadow's bytes on the same record boundaries (the chain's generations have the same layout),
 * but their checksums are seeded with their own generation and their LSNs are below: none is
 * taken for the shadow's. */
Test(copy_shadow_pool, a_recycled_logs_records_past_the_bytes_are_not_taken_for_data)
{
    size_t pool_len = ch.len[2] + 4096;
    uint8_t *old = calloc(1, pool_len);
    memcpy(old, ch.buf[2], ch.len[2]);
    prepare(old, pool_len);
    free(old);
    ls_copy_t *c = open_pool();
    size_t part = commit_end_within(open_len() / 2);
    cr_assert_eq(block(c, 0, part, NULL), 0);
    cr_assert(pool_file_taken());
    ls_copy_close(c);
    c = open_pool();
    ls_copy_shadow_t sh;
    cr_assert_eq(block(c, 0, 10, &sh), 0);
    cr_assert_eq(sh.size, part, "nothing of generation 2's bytes behind");
    cr_assert_eq(block(c, 0, open_len(), &sh), 0);
    send_tail(c, open_len());
    ls_copy_close(c);
}

/* The activation closes a pool-file shadow with a torn batch and zeros after its bytes: cut
 * after the last COMMIT, closed with a trailer; only the torn batch's bytes count as dropped. */
Test(copy_shadow_pool, the_activation_closes_it_after_its_last_commit)
{
    prepare(NULL, 2 * ch.len[3]);
    size_t torn = 0;
    size_t part = torn_batch(&torn);
    size_t end = commit_end_within(part + torn);
    ls_copy_t *c = open_pool();
    ls_copy_shadow_closed_t out;
    char err[1024] = "";
    cr_assert_eq(ls_copy_shadow_close(c, true, &out, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(out.generation, 3);
    cr_assert_eq(out.dropped, part + torn - end, "the torn bytes, not the zeros");
    cr_assert_eq(out.bytes, end + LS_GEN_TRAILER_SIZE);
    cr_assert_eq(ls_copy_shadow_close(c, false, &out, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(out.generation, 3);
    cr_assert_eq(out.dropped, part + torn - end);
    char path[4200];
    gen_path(path, sizeof(path), dir, "logs", 3, "");
    size_t len = 0;
    uint8_t *b = ls_h_read_file(path, &len);
    cr_assert(b && len == end + LS_GEN_TRAILER_SIZE);
    cr_assert_arr_eq(b, ch.buf[3], end);
    ls_gen_expect_t x = {.epoch = 1, .generation = 3};
    ls_gen_info_t info;
    ls_gen_verdict_t v;
    cr_assert_eq(ls_gen_scan(b, len, &x, NULL, NULL, &info, &v), 0, "%s", v.msg);
    cr_assert(info.closed);
    free(b);
    ls_copy_close(c);
}

/* A pool file named as the shadow before its first BLOCK was synced (a crash right after the
 * take): no header of its generation, zeros or a recycled log's: nothing was acknowledged from
 * it, and the activation deletes it instead of refusing. */
static void header_never_written(const uint8_t *buf, size_t len)
{
    held_two();
    char path[4200];
    shadow_path(path, sizeof(path));
    char sdir[4200];
    snprintf(sdir, sizeof(sdir), "%s/shadow", dir);
    cr_assert_eq(ls_mkdir_p(sdir), 0);
    cr_assert_eq(ls_h_write_file(path, buf, len), 0);
    ls_copy_t *c = copy_open(dir, NULL);
    ls_copy_shadow_closed_t out;
    char err[1024] = "";
    cr_assert_eq(ls_copy_shadow_close(c, false, &out, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(out.generation, 0, "nothing closed");
    cr_assert_eq(count_files(dir, "shadow"), 0, "deleted");
    cr_assert_not(file_exists(dir, "logs", 3));
    ls_copy_close(c);
}

Test(copy_shadow_pool, the_activation_deletes_a_pool_file_whose_header_was_never_written)
{
    uint8_t *zeros = calloc(1, 65536);
    header_never_written(zeros, 65536);
    free(zeros);
}

Test(copy_shadow_pool, the_activation_deletes_a_pool_file_holding_an_old_generation)
{
    header_never_written(ch.buf[1], ch.len[1]);
}
