/* copy: preallocated .part files (copy/prealloc.h): the pool itself, and that the bytes a pool
 * file held before (zeros, an old generation, even the very generation being received) never
 * become a held generation: only the bytes received, checked and synced do. */
#include <fcntl.h>
#include <sys/stat.h>

#include "copy/prealloc.h"
#include "copy_test_util.h"

static off_t size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Files in dir/pool whose names begin with prefix. */
static int count_pool(const char *dir, const char *prefix)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/pool", dir);
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) n++;
    closedir(d);
    return n;
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

static bool bare_reached(void *ctx)
{
    ready_t *r = ctx;
    return ls_prealloc_bare(r->p) >= r->want;
}

static void wait_bare(ls_prealloc_t *p, unsigned want)
{
    ready_t r = {p, want};
    cr_assert(ls_h_wait_for(bare_reached, &r, 10000), "%u bare files (have %u)", want,
              ls_prealloc_bare(p));
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
    int gives = 0; /* the ready files all there: emptied into bare ones, up to 64 kept */
    for (; gives < 100; gives++) {
        cr_assert_eq(ls_h_write_file(extra, "y", 1), 0);
        if (!ls_prealloc_give(p, extra)) break;
    }
    cr_assert_lt(gives, 100, "a pool full of bare files takes nothing (after %d gives)", gives);
    cr_assert_leq(ls_prealloc_bare(p), 64, "at most 64 bare files");
    cr_assert_eq(access(extra, F_OK), 0, "left where it was");
    ls_prealloc_close(p);

    /* reopened with one file wanted: the oldest kept, the others deleted; sizes as made */
    o.count = 1;
    cr_assert_eq(ls_prealloc_open(&o, &p, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ls_prealloc_ready(p), 1);
    cr_assert_eq(count_pool(dir, "ready-"), 1);
    cr_assert_eq(ls_prealloc_take(p, path, &fd, &size), 0);
    close(fd);
    cr_assert_eq(size, 100000, "the oldest (the given one, padded to 196608, was deleted)");
    ls_prealloc_close(p);
    ls_h_rmtree_free(dir);
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

/* f's dir/pool/ready-1 holding buf and f's copy opened on f->dir with a pool of one file. */
static void open_with_pool_file(copy_fix_t *f, const uint8_t *buf, size_t len)
{
    put_ready(f->dir, 1, buf, len);
    ls_copy_options_t o = {.dir = f->dir, .prealloc_files = 1};
    f->c = copy_open_opts(&o);
}

/* dir/logs/ holds generation g exactly: its bytes received, nothing of the pool file behind. */
static void logs_hold_exactly(const char *dir, const chain_t *ch, int g)
{
    char p[4200];
    gen_path(p, sizeof(p), dir, "logs", g, "");
    uint8_t *got = NULL;
    size_t len = 0;
    cr_assert_eq(ls_read_file(p, LS_GEN_HARD_CAP, &got, &len), 0);
    cr_assert_eq(len, ch->len[g]);
    cr_assert_arr_eq(got, ch->buf[g], len);
    free(got);
}

/* A pool file that holds the very generation being received, valid, byte for byte: cut short,
 * the receive is refused and nothing is held; received whole, it is held once. */
Test(copy_prealloc, a_pool_file_holding_the_generation_itself_is_not_taken_for_it)
{
    copy_fix_t f;
    fix_init(&f, "prealloc", 3, 4, 30);
    open_with_pool_file(&f, f.ch.buf[1], f.ch.len[1]);
    char err[1024] = "";
    cr_assert_eq(ls_copy_recv_begin(f.c, 1, 1, f.ch.len[1], LS_H_GEN_CLOSE_NS, err, sizeof(err)), 0,
                 "%s", err);
    char taken[4300];
    snprintf(taken, sizeof(taken), "%s/pool/ready-1", f.dir);
    cr_assert_eq(access(taken, F_OK), -1, "the pool's file became the .part");
    gen_path(taken, sizeof(taken), f.dir, "inspect", 1, ".part");
    cr_assert_eq(size_of(taken), (off_t) f.ch.len[1]);
    cr_assert_eq(ls_copy_recv_data(f.c, 1, 0, f.ch.buf[1], 100, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ls_copy_recv_end(f.c, 1, f.ch.digest[1], err, sizeof(err)), LS_ESTATE,
                 "100 bytes received of %zu: refused", f.ch.len[1]);
    cr_assert(ls_h_contains(err, "100 of"), "%s", err);
    cr_assert_eq(count_files(f.dir, "inspect"), 0, "the .part was dropped");
    cr_assert_not(file_exists(f.dir, "logs", 1));
    ls_copy_resume_t r;
    ls_copy_resume_point(f.c, &r);
    cr_assert_eq(r.next_generation, 1, "nothing held");
    send_range(f.c, &f.ch, 1, 3);
    fix_start_replay(&f, 3);
    ls_copy_close(f.c);
    fix_fini(&f);
}

/* A pool file longer than the generation (an older, bigger generation's bytes behind): cut to the
 * announced size, the file in logs/ is exactly the bytes received. */
Test(copy_prealloc, a_longer_pool_file_is_cut_to_the_generation)
{
    copy_fix_t f;
    fix_init(&f, "prealloc", 2, 4, 30);
    size_t big = f.ch.len[1] + f.ch.len[2];
    uint8_t *junk = malloc(big);
    cr_assert_not_null(junk);
    memcpy(junk, f.ch.buf[2], f.ch.len[2]);
    memcpy(junk + f.ch.len[2], f.ch.buf[1], f.ch.len[1]);
    open_with_pool_file(&f, junk, big);
    free(junk);
    send_range(f.c, &f.ch, 1, 1);
    logs_hold_exactly(f.dir, &f.ch, 1);
    ls_copy_close(f.c);
    fix_fini(&f);
}

/* A pool file shorter than the generation (half of it, holding the generation's second half):
 * grown by the pool while the first bytes arrive, the file in logs/ is exactly the bytes
 * received. */
Test(copy_prealloc, a_shorter_pool_file_is_grown_to_the_generation)
{
    copy_fix_t f;
    fix_init(&f, "prealloc", 2, 40, 100);
    size_t half = f.ch.len[1] / 2;
    open_with_pool_file(&f, f.ch.buf[1] + half, half);
    send_range(f.c, &f.ch, 1, 2);
    logs_hold_exactly(f.dir, &f.ch, 1);
    fix_start_replay(&f, 2);
    ls_copy_close(f.c);
    fix_fini(&f);
}

/* Forked children (ls_h_in_child): a crash right after a pool file (holding generation 1's valid
 * bytes) became generation 1's .part; a pool that cannot make files (full disk). */
typedef struct {
    const copy_fix_t *f;
    int send_to;
} child_t;

static void child_send(void *ctx)
{
    const child_t *k = ctx;
    ls_copy_options_t o = {.dir = k->f->dir};
    ls_copy_t *c = NULL;
    if (ls_copy_open(&o, &c, NULL, 0) != 0) _exit(3);
    char err[1024];
    const chain_t *ch = &k->f->ch;
    for (int g = 1; g <= k->send_to; g++) /* no Criterion call in a child (send_gen logs) */
        if (send_bytes(c, (uint64_t) g, ch->buf[g], ch->len[g], ch->digest[g], err, sizeof(err)) !=
            0)
            _exit(4);
    ls_copy_close(c);
}

static int child(const copy_fix_t *f, const char *faults, int send_to)
{
    child_t k = {f, send_to};
    return ls_h_in_child(child_send, &k, faults);
}

Test(copy_prealloc, crash_after_taking_a_pool_file_holding_the_generation_drops_it)
{
    copy_fix_t f;
    fix_init(&f, "prealloc", 4, 4, 30);
    put_ready(f.dir, 1, f.ch.buf[1], f.ch.len[1]);
    cr_assert_eq(child(&f, "copy.recv.after_take=exit@1", 4), LS_FAULT_EXIT_CODE);
    cr_assert_eq(count_files(f.dir, "inspect"), 1, "the .part with generation 1's bytes");
    cr_assert_eq(converge_after_crash(f.dir, &f.ch), 1);
    fix_fini(&f);
}

Test(copy_prealloc, a_growth_that_fails_fails_the_receive_and_nothing_is_held)
{
    copy_fix_t f;
    fix_init(&f, "prealloc", 3, 4, 30);
    put_ready(f.dir, 1, f.ch.buf[1], 10); /* shorter than generation 1: grown, and that fails */
    cr_assert_eq(child(&f, "copy.prealloc.write_enospc=fail", 3), 4, "the send failed");
    cr_assert_eq(converge_after_crash(f.dir, &f.ch), 1);
    fix_fini(&f);
}

/* A taken file grown by the pool's thread whose sync fails: the error reaches the taker through
 * ls_prealloc_grow_synced, which it calls before its own fdatasync (that one would not see it:
 * the pool syncs a duplicate of the taker's descriptor). Exit codes say which step failed. */
static void child_grow(void *ctx)
{
    const char *dir = ctx;
    char pool[4200], path[4300];
    snprintf(pool, sizeof(pool), "%s/pool", dir);
    snprintf(path, sizeof(path), "%s/taken", dir);
    ls_prealloc_options_t o = {.dir = pool, .count = 1, .size = 65536, .idle_ms = 60000};
    ls_prealloc_t *p = NULL;
    if (ls_prealloc_open(&o, &p, NULL, 0) != 0) _exit(3);
    for (int i = 0; i < 10000 && ls_prealloc_ready(p) < 1; i++)
        usleep(1000);
    int fd = -1;
    uint64_t have = 0;
    if (ls_prealloc_take(p, path, &fd, &have) != 0 || have != 65536) _exit(4);
    ls_prealloc_grow_ahead(p, fd, have, 3 * 65536);
    int rc = ls_prealloc_grow_synced(p);
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size != 3 * 65536) _exit(5); /* the zeros were written */
    if (ls_prealloc_grown(p, false) != 0) _exit(6);               /* released: nothing left */
    close(fd);
    ls_prealloc_close(p);
    _exit(rc == LS_EIO ? 0 : rc == 0 ? 7 : 8);
}

Test(copy_prealloc, a_failed_sync_of_a_growth_is_reported_to_the_taker)
{
    char *dir = ls_h_tmpdir("prealloc");
    cr_assert_eq(ls_h_in_child(child_grow, dir, "copy.prealloc.grow_sync_eio=fail"), 0);
    cr_assert_eq(ls_h_in_child(child_grow, dir, NULL), 7, "without the fault: synced, 0");
    ls_h_rmtree_free(dir);
}

Test(copy_prealloc, a_pool_that_cannot_make_files_leaves_receives_to_new_files)
{
    copy_fix_t f;
    fix_init(&f, "prealloc", 4, 4, 30);
    cr_assert_eq(child(&f, "copy.prealloc.write_enospc=fail", 4), 0);
    cr_assert_eq(count_pool(f.dir, "ready-"), 0, "no file made with zeros");
    cr_assert_eq(count_files(f.dir, "pool"), count_pool(f.dir, "bare-"),
                 "nothing half made left (bare files need no write)");
    cr_assert_eq(converge_after_crash(f.dir, &f.ch), 5);
    fix_fini(&f);
}

/* Bare files: created at once even while takes come back to back (no write, no sync), handed out
 * empty when no ready file is left, given files emptied into them when the ready ones are all
 * there, at most 64 kept (extras found at open deleted), and a receive through them holds
 * exactly the bytes received. */
Test(copy_prealloc, bare_files_are_handed_out_empty_when_no_ready_file_is_left)
{
    char *dir = ls_h_tmpdir("prealloc");
    char pool[4200], path[4300];
    snprintf(pool, sizeof(pool), "%s/pool", dir);
    cr_assert_eq(ls_mkdir_p(pool), 0);
    for (int i = 100; i < 170; i++) { /* 70 bare files left by an earlier process */
        snprintf(path, sizeof(path), "%s/bare-%d", pool, i);
        cr_assert_eq(ls_h_write_file(path, "", 0), 0);
    }
    ls_prealloc_options_t o = {.dir = pool, .count = 1, .size = 65536, .idle_ms = 60000};
    ls_prealloc_t *p = NULL;
    char err[512] = "";
    cr_assert_eq(ls_prealloc_open(&o, &p, err, sizeof(err)), 0, "%s", err);
    /* 64 kept; 63 once the pool's thread has taken one for the ready file (it may run first) */
    unsigned kept = ls_prealloc_bare(p);
    cr_assert(kept == 64 || kept == 63, "64 kept, %u bare", kept);
    wait_ready(p, 1);
    cr_assert_leq(count_pool(dir, "bare-"), 64, "the extras deleted (one may be zero-filled now)");
    for (int i = 0; i < 62; i++) { /* back to 2 bare files */
        snprintf(path, sizeof(path), "%s/taken", dir);
        int tfd = -1;
        uint64_t tsize = 1;
        cr_assert_eq(ls_prealloc_take(p, path, &tfd, &tsize), 0);
        close(tfd);
        unlink(path);
        if (i == 0) cr_assert_eq(tsize, 65536, "a ready file first");
        if (i == 0) continue;
        cr_assert_eq(tsize, 0, "then bare ones");
    }
    wait_ready(p, 0);
    int fd = -1;
    uint64_t size = 1;
    /* a file given back while no ready file is wanted: emptied into a bare one */
    cr_assert_eq(ls_prealloc_ready(p), 0, "no new ready file for idle_ms after a take");
    snprintf(path, sizeof(path), "%s/old-log", dir);
    cr_assert_eq(ls_h_write_file(path, "an old log's bytes", 18), 0);
    cr_assert(ls_prealloc_give(p, path), "the pool wanted it as a ready file");
    wait_ready(p, 1);
    cr_assert_eq(ls_h_write_file(path, "another old log", 15), 0);
    cr_assert(ls_prealloc_give(p, path), "taken as a bare file");
    cr_assert_eq(access(path, F_OK), -1, "moved into the pool");
    wait_bare(p, 4);
    cr_assert_eq(ls_prealloc_take(p, path, &fd, &size), 0);
    cr_assert_eq(size, 65536, "the ready one (padded) first");
    close(fd);
    unlink(path);
    snprintf(path, sizeof(path), "%s/taken", dir);
    /* takes back to back: no new ready file for idle_ms, but bare ones, empty */
    for (int i = 0; i < 10; i++) {
        wait_bare(p, 1);
        cr_assert_eq(ls_prealloc_take(p, path, &fd, &size), 0);
        cr_assert_eq(size, 0, "take %d: a bare file", i);
        cr_assert_eq(size_of(path), 0);
        cr_assert_eq(pwrite(fd, "abc", 3, 0), 3, "open for writing");
        close(fd);
        cr_assert_eq(size_of(path), 3);
        unlink(path);
    }
    cr_assert_eq(ls_prealloc_ready(p), 0, "none made while takes come");
    wait_bare(p, 4);
    ls_prealloc_close(p);
    cr_assert_eq(count_pool(dir, "bare-"), 4, "kept for the next open");
    ls_h_rmtree_free(dir);

    /* a copy receiving through them: the files in logs/ are exactly the bytes received */
    copy_fix_t f;
    fix_init(&f, "prealloc", 6, 4, 30);
    ls_copy_options_t co = {.dir = f.dir, .prealloc_files = 1};
    f.c = copy_open_opts(&co);
    for (int g = 1; g <= 6; g++) {
        send_range(f.c, &f.ch, g, g);
        logs_hold_exactly(f.dir, &f.ch, g);
    }
    fix_start_replay(&f, 6);
    ls_copy_close(f.c);
    fix_fini(&f);
}

/* An idle pool lays in a stock of 64 bare files for the next backlog (4 at most while takes come
 * back to back). */
Test(copy_prealloc, an_idle_pool_lays_in_64_bare_files)
{
    char *dir = ls_h_tmpdir("prealloc");
    char pool[4200];
    snprintf(pool, sizeof(pool), "%s/pool", dir);
    ls_prealloc_options_t o = {.dir = pool, .count = 1, .size = 65536, .idle_ms = 10};
    ls_prealloc_t *p = NULL;
    char err[512] = "";
    cr_assert_eq(ls_prealloc_open(&o, &p, err, sizeof(err)), 0, "%s", err);
    wait_ready(p, 1);
    wait_bare(p, 64);
    ls_prealloc_close(p);
    cr_assert_eq(count_pool(dir, "bare-"), 64);
    ls_h_rmtree_free(dir);
}
