/* copy: preallocated .part files (copy/prealloc.h): the pool itself, and that the bytes a pool
 * file held before (zeros, an old generation, even the very generation being received) never
 * become a held generation: only the bytes received, checked and synced do. */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "copy/prealloc.h"
#include "copy_test_util.h"

static off_t size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

typedef struct {
    ls_prealloc_t *p;
    unsigned want;
} ready_t;

static bool ready_reached(void *ctx)
{
    ready_t *r = ctx;
    return ls_prealloc_ready(r->p) >= r->want;
}

static void wait_ready(ls_prealloc_t *p, unsigned want)
{
    ready_t r = {p, want};
    cr_assert(ls_h_wait_for(ready_reached, &r, 10000), "%u ready files (have %u)", want,
              ls_prealloc_ready(p));
}

/* dir/pool/ready-<n> holding buf (what a test puts in the pool before the copy opens). */
static void put_ready(const char *dir, int n, const uint8_t *buf, size_t len)
{
    char p[4200];
    snprintf(p, sizeof(p), "%s/pool", dir);
    cr_assert_eq(ls_mkdir_p(p), 0);
    snprintf(p, sizeof(p), "%s/pool/ready-%d", dir, n);
    cr_assert_eq(ls_h_write_file(p, buf, len), 0);
}

Test(copy_prealloc, the_pool_fills_in_the_background_hands_out_and_takes_back)
{
    char *dir = ls_h_tmpdir("prealloc");
    char pool[4200], path[4300], tmp[4300], extra[4300];
    snprintf(pool, sizeof(pool), "%s/pool", dir);
    cr_assert_eq(ls_mkdir_p(pool), 0);
    snprintf(tmp, sizeof(tmp), "%s/7.tmp", pool); /* half made before a crash */
    cr_assert_eq(ls_h_write_file(tmp, "x", 1), 0);
    ls_prealloc_options_t o = {.dir = pool, .count = 2, .size = 100000, .idle_ms = 60000};
    ls_prealloc_t *p = NULL;
    char err[512] = "";
    cr_assert_eq(ls_prealloc_open(&o, &p, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(access(tmp, F_OK), -1, "the half-made file was deleted at open");
    wait_ready(p, 2); /* made at once; after a take, none for a minute (idle_ms) */

    /* taken: moved to the path, zeros of the size asked */
    snprintf(path, sizeof(path), "%s/taken", dir);
    int fd = -1;
    uint64_t size = 0;
    cr_assert_eq(ls_prealloc_take(p, path, &fd, &size), 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(size, 100000);
    cr_assert_eq(size_of(path), 100000);
    cr_assert_eq(pwrite(fd, "abc", 3, 0), 3, "open for writing");
    close(fd);
    uint8_t *got = NULL;
    size_t len = 0;
    cr_assert_eq(ls_read_file(path, 1 << 20, &got, &len), 0);
    cr_assert_eq(len, 100000);
    for (size_t i = 3; i < len; i++)
        cr_assert_eq(got[i], 0, "byte %zu", i);
    free(got);

    /* given back: a file the owner no longer needs joins the pool while it wants one */
    ls_prealloc_size(p, 200001); /* the smallest lately, rounded down to 64 KiB: 196608 */
    cr_assert(ls_prealloc_give(p, path), "the pool wanted one");
    cr_assert_eq(access(path, F_OK), -1, "moved into the pool");
    wait_ready(p, 2);
    snprintf(extra, sizeof(extra), "%s/extra", dir);
    cr_assert_eq(ls_h_write_file(extra, "y", 1), 0);
    cr_assert_not(ls_prealloc_give(p, extra), "a full pool takes nothing");
    cr_assert_eq(access(extra, F_OK), 0, "left where it was");
    ls_prealloc_close(p);

    /* reopened with one file wanted: the oldest kept, the others deleted; sizes as made */
    o.count = 1;
    cr_assert_eq(ls_prealloc_open(&o, &p, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ls_prealloc_ready(p), 1);
    cr_assert_eq(count_files(dir, "pool"), 1);
    cr_assert_eq(ls_prealloc_take(p, path, &fd, &size), 0);
    close(fd);
    cr_assert_eq(size, 100000, "the oldest (the given one, padded to 196608, was deleted)");
    ls_prealloc_close(p);
    ls_h_rmtree(dir);
    free(dir);
}

Test(copy_prealloc, a_missing_directory_is_a_clear_error)
{
    ls_prealloc_options_t o = {.dir = "/proc/no/such/pool", .count = 1};
    ls_prealloc_t *p = NULL;
    char err[512] = "";
    cr_assert_neq(ls_prealloc_open(&o, &p, err, sizeof(err)), 0);
    cr_assert_null(p);
    cr_assert(ls_h_contains(err, "/proc/no/such/pool"), "%s", err);
    uint64_t size;
    int fd;
    cr_assert_eq(ls_prealloc_take(NULL, "/tmp/x", &fd, &size), LS_ENOENT, "no pool: none ready");
}

/* A pool file that holds the very generation being received, valid, byte for byte: cut short,
 * the receive is refused and nothing is held; received whole, it is held once. */
Test(copy_prealloc, a_pool_file_holding_the_generation_itself_is_not_taken_for_it)
{
    char *dir = ls_h_tmpdir("prealloc");
    chain_t ch;
    chain_build(&ch, 3, 4, 30);
    put_ready(dir, 1, ch.buf[1], ch.len[1]);
    ls_copy_options_t o = {.dir = dir, .prealloc_files = 1};
    ls_copy_t *c = copy_open_opts(&o);
    char err[1024] = "";
    cr_assert_eq(ls_copy_recv_begin(c, 1, 1, ch.len[1], LS_H_GEN_CLOSE_NS, err, sizeof(err)), 0,
                 "%s", err);
    char taken[4300];
    snprintf(taken, sizeof(taken), "%s/pool/ready-1", dir);
    cr_assert_eq(access(taken, F_OK), -1, "the pool's file became the .part");
    gen_path(taken, sizeof(taken), dir, "inspect", 1, ".part");
    cr_assert_eq(size_of(taken), (off_t) ch.len[1]);
    cr_assert_eq(ls_copy_recv_data(c, 1, 0, ch.buf[1], 100, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ls_copy_recv_end(c, 1, ch.digest[1], err, sizeof(err)), LS_ESTATE,
                 "100 bytes received of %zu: refused", ch.len[1]);
    cr_assert(ls_h_contains(err, "100 of"), "%s", err);
    cr_assert_eq(count_files(dir, "inspect"), 0, "the .part was dropped");
    cr_assert_not(file_exists(dir, "logs", 1));
    ls_copy_resume_t r;
    ls_copy_resume_point(c, &r);
    cr_assert_eq(r.next_generation, 1, "nothing held");
    send_range(c, &ch, 1, 3);
    cr_assert_eq(ls_copy_start(c), 0);
    wait_replayed(c, 3, true);
    store_matches(c, &ch);
    ls_copy_close(c);
    chain_free(&ch);
    ls_h_rmtree(dir);
    free(dir);
}

/* A pool file longer than the generation (an older, bigger generation's bytes behind): cut to the
 * announced size, the file in logs/ is exactly the bytes received. */
Test(copy_prealloc, a_longer_pool_file_is_cut_to_the_generation)
{
    char *dir = ls_h_tmpdir("prealloc");
    chain_t ch;
    chain_build(&ch, 2, 4, 30);
    size_t big = ch.len[1] + ch.len[2];
    uint8_t *junk = malloc(big);
    cr_assert_not_null(junk);
    memcpy(junk, ch.buf[2], ch.len[2]);
    memcpy(junk + ch.len[2], ch.buf[1], ch.len[1]);
    put_ready(dir, 1, junk, big);
    ls_copy_options_t o = {.dir = dir, .prealloc_files = 1};
    ls_copy_t *c = copy_open_opts(&o);
    send_range(c, &ch, 1, 1);
    char p[4200];
    gen_path(p, sizeof(p), dir, "logs", 1, "");
    uint8_t *got = NULL;
    size_t len = 0;
    cr_assert_eq(ls_read_file(p, LS_GEN_HARD_CAP, &got, &len), 0);
    cr_assert_eq(len, ch.len[1]);
    cr_assert_arr_eq(got, ch.buf[1], len);
    free(got);
    ls_copy_close(c);
    free(junk);
    chain_free(&ch);
    ls_h_rmtree(dir);
    free(dir);
}

/* A pool file shorter than the generation (half of it, holding the generation's second half):
 * grown by the pool while the first bytes arrive, the file in logs/ is exactly the bytes
 * received. */
Test(copy_prealloc, a_shorter_pool_file_is_grown_to_the_generation)
{
    char *dir = ls_h_tmpdir("prealloc");
    chain_t ch;
    chain_build(&ch, 2, 40, 100);
    size_t half = ch.len[1] / 2;
    put_ready(dir, 1, ch.buf[1] + half, half);
    ls_copy_options_t o = {.dir = dir, .prealloc_files = 1};
    ls_copy_t *c = copy_open_opts(&o);
    send_range(c, &ch, 1, 2);
    char p[4200];
    gen_path(p, sizeof(p), dir, "logs", 1, "");
    uint8_t *got = NULL;
    size_t len = 0;
    cr_assert_eq(ls_read_file(p, LS_GEN_HARD_CAP, &got, &len), 0);
    cr_assert_eq(len, ch.len[1]);
    cr_assert_arr_eq(got, ch.buf[1], len);
    free(got);
    cr_assert_eq(ls_copy_start(c), 0);
    wait_replayed(c, 2, true);
    store_matches(c, &ch);
    ls_copy_close(c);
    chain_free(&ch);
    ls_h_rmtree(dir);
    free(dir);
}

/* Forked children: a crash right after a pool file (holding generation 1's valid bytes) became
 * generation 1's .part; a pool that cannot make files (full disk). */
static int child(const char *dir, const chain_t *ch, const char *faults, int send_to)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        setenv("LS_FAULTS", faults, 1);
        ls_copy_options_t o = {.dir = dir};
        ls_copy_t *c = NULL;
        if (ls_copy_open(&o, &c, NULL, 0) != 0) _exit(3);
        char err[1024];
        for (int g = 1; g <= send_to; g++) /* no Criterion call in a child (send_gen logs) */
            if (send_bytes(c, (uint64_t) g, ch->buf[g], ch->len[g], ch->digest[g], err,
                           sizeof(err)) != 0)
                _exit(4);
        ls_copy_close(c);
        _exit(0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void converge(const char *dir, const chain_t *ch, uint64_t want_next)
{
    ls_copy_t *c = copy_open(dir, NULL);
    cr_assert_eq(count_files(dir, "inspect"), 0, "no .part left");
    ls_copy_resume_t r;
    ls_copy_resume_point(c, &r);
    cr_assert_eq(r.next_generation, want_next);
    send_range(c, ch, (int) r.next_generation, ch->n);
    cr_assert_eq(ls_copy_start(c), 0);
    wait_replayed(c, (uint64_t) ch->n, true);
    store_matches(c, ch);
    ls_copy_stats_t st;
    ls_copy_stats(c, &st);
    cr_assert_eq(st.applied_generations, (uint64_t) ch->n, "each generation applied once");
    ls_copy_close(c);
}

Test(copy_prealloc, crash_after_taking_a_pool_file_holding_the_generation_drops_it)
{
    char *dir = ls_h_tmpdir("prealloc");
    chain_t ch;
    chain_build(&ch, 4, 4, 30);
    put_ready(dir, 1, ch.buf[1], ch.len[1]);
    cr_assert_eq(child(dir, &ch, "copy.recv.after_take=exit@1", 4), LS_FAULT_EXIT_CODE);
    cr_assert_eq(count_files(dir, "inspect"), 1, "the .part with generation 1's bytes");
    converge(dir, &ch, 1);
    chain_free(&ch);
    ls_h_rmtree(dir);
    free(dir);
}

Test(copy_prealloc, a_growth_that_fails_fails_the_receive_and_nothing_is_held)
{
    char *dir = ls_h_tmpdir("prealloc");
    chain_t ch;
    chain_build(&ch, 3, 4, 30);
    put_ready(dir, 1, ch.buf[1], 10); /* shorter than generation 1: grown, and that fails */
    cr_assert_eq(child(dir, &ch, "copy.prealloc.write_enospc=fail", 3), 4, "the send failed");
    converge(dir, &ch, 1);
    chain_free(&ch);
    ls_h_rmtree(dir);
    free(dir);
}

Test(copy_prealloc, a_pool_that_cannot_make_files_leaves_receives_to_new_files)
{
    char *dir = ls_h_tmpdir("prealloc");
    chain_t ch;
    chain_build(&ch, 4, 4, 30);
    cr_assert_eq(child(dir, &ch, "copy.prealloc.write_enospc=fail", 4), 0);
    cr_assert_eq(count_files(dir, "pool"), 0, "nothing made, nothing half made left");
    converge(dir, &ch, 5);
    chain_free(&ch);
    ls_h_rmtree(dir);
    free(dir);
}
