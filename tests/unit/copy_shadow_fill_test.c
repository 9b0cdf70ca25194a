/* copy: the shadow's blocks filled ahead of its bytes (engine/copy/shadow_fill.c). A shadow that
 * holds LS__COPY_FILL_FROM (4 MiB) bytes gets zeros written past them by its filler; the file
 * then holds the active's bytes and zeros after them, GEN_TAIL's hard link cuts the zeros off
 * (the closed generation equals the active's file byte for byte), and a restart takes the shadow
 * up cut to its last COMMIT, the zeros gone, and the stream goes on. */
#include <sys/stat.h>

#include "copy_test_util.h"

#define PIECE     17000      /* a BLOCK's bytes, about a batch of the bench's load */
#define FILL_FROM (4u << 20) /* LS__COPY_FILL_FROM (engine/copy/copy_int.h) */

static char *dir;
static chain_t ch;

static void setup(void)
{
    dir = ls_h_tmpdir("copyfill");
    chain_build(&ch, 3, 70, 40000); /* 3 generations of about 8.5 MB */
}

static void teardown(void)
{
    chain_free(&ch);
    ls_h_rmtree(dir);
    free(dir);
}

TestSuite(copy_shadow_fill, .init = setup, .fini = teardown, .timeout = 120);

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

/* Generation 3's bytes [from, to) as BLOCKs of PIECE bytes, each written and synced. */
static void stream(ls_copy_t *c, size_t from, size_t to)
{
    char err[512] = "";
    ls_copy_shadow_t sh;
    for (size_t off = from; off < to;) {
        size_t n = LS_MIN((size_t) PIECE, to - off);
        cr_assert_eq(ls_copy_shadow_write(c, 1, 3, off, ch.buf[3] + off, n, 1000 + off + n, &sh,
                                          err, sizeof(err)),
                     0, "BLOCK %zu+%zu: %s", off, n, err);
        off += n;
    }
    cr_assert_eq(sh.size, to, "the shadow holds every byte streamed, synced");
}

/* The filler has written zeros past the shadow's n bytes: the file is longer, [0, n) are the
 * active's bytes and the rest zeros. */
static void filled_past(size_t n)
{
    for (int i = 0; i < 1000 && shadow_len() <= n; i++)
        usleep(10000);
    char path[4200];
    shadow_path(path, sizeof(path));
    size_t len = 0;
    uint8_t *b = ls_h_read_file(path, &len);
    cr_assert(b && len > n, "no zeros were filled past the shadow's %zu bytes (%zu)", n, len);
    cr_assert_arr_eq(b, ch.buf[3], n);
    size_t nonzero = 0;
    for (size_t i = n; i < len; i++)
        nonzero += b[i] != 0;
    cr_assert_eq(nonzero, 0, "only zeros past the shadow's bytes");
    free(b);
}

/* GEN_TAIL of generation 3 from byte start, the .part a link of the shadow: held, equal to the
 * active's file byte for byte, the shadow gone. */
static void tail_finishes(ls_copy_t *c, size_t start)
{
    char err[512] = "";
    cr_assert_eq(ls_copy_recv_begin_tail(c, 1, 3, ch.len[3], 0, start, err, sizeof(err)), 0, "%s",
                 err);
    for (size_t off = start; off < ch.len[3];) {
        size_t n = LS_MIN((size_t) 65536, ch.len[3] - off);
        cr_assert_eq(ls_copy_recv_data(c, 3, off, ch.buf[3] + off, n, err, sizeof(err)), 0, "%s",
                     err);
        off += n;
    }
    cr_assert_eq(ls_copy_recv_end(c, 3, ch.digest[3], err, sizeof(err)), 0, "%s", err);
    ls_copy_shadow_drop(c, 3);
    cr_assert_eq(count_files(dir, "shadow"), 0);
    char path[4200];
    gen_path(path, sizeof(path), dir, "logs", 3, "");
    size_t len = 0;
    uint8_t *b = ls_h_read_file(path, &len);
    cr_assert(b && len == ch.len[3], "logs/ holds %zu bytes, the active's file %zu", len,
              ch.len[3]);
    cr_assert_arr_eq(b, ch.buf[3], len);
    free(b);
}

Test(copy_shadow_fill, zeros_are_filled_ahead_and_cut_off_by_gen_tail)
{
    cr_assert_gt(ch.len[3], FILL_FROM + (1u << 20), "a generation long enough");
    ls_copy_t *c = copy_open(dir, NULL);
    send_range(c, &ch, 1, 2);
    size_t part = ch.len[3] - LS_GEN_TRAILER_SIZE - 700; /* the stream ended before the log */
    stream(c, 0, part);
    filled_past(part);
    tail_finishes(c, part);
    ls_copy_close(c);
}

Test(copy_shadow_fill, a_restart_takes_the_shadow_up_without_its_zeros)
{
    ls_copy_t *c = copy_open(dir, NULL);
    send_range(c, &ch, 1, 2);
    size_t half = FILL_FROM + (1u << 20);
    stream(c, 0, half);
    filled_past(half);
    ls_copy_close(c); /* the daemon stops (or dies: the file is the same) */
    c = copy_open(dir, NULL);
    ls_copy_shadow_t sh;
    char err[512] = "";
    cr_assert_eq(ls_copy_shadow_write(c, 1, 3, 0, ch.buf[3], 10, 1000, &sh, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_lt(sh.size, half + 1, "taken up cut to its last COMMIT");
    cr_assert_eq(shadow_len(), sh.size, "the zeros are gone");
    size_t part = ch.len[3] - LS_GEN_TRAILER_SIZE - 700;
    stream(c, (size_t) sh.size, part);
    tail_finishes(c, part);
    ls_copy_close(c);
}

/* The copy's daemon stops with zeros filled past the shadow's bytes and the copy is activated:
 * the shadow closed as the last generation is its bytes up to the last COMMIT and a trailer,
 * the zeros are not in it. */
Test(copy_shadow_fill, an_activation_closes_the_shadow_without_its_zeros)
{
    ls_copy_t *c = copy_open(dir, NULL);
    send_range(c, &ch, 1, 2);
    size_t part = FILL_FROM + (2u << 20);
    stream(c, 0, part);
    filled_past(part);
    ls_copy_close(c);
    ls_copy_options_t o = {.dir = dir};
    char err[512] = "";
    cr_assert_eq(ls_copy_open(&o, &c, err, sizeof(err)), 0, "%s", err);
    ls_copy_shadow_closed_t out;
    cr_assert_eq(ls_copy_shadow_close(c, false, &out, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(out.generation, 3);
    ls_gen_expect_t x = {.allow_open = true};
    ls_gen_info_t info;
    ls_gen_verdict_t v;
    cr_assert_eq(ls_gen_scan(ch.buf[3], part, &x, NULL, NULL, &info, &v), 0, "%s", v.msg);
    cr_assert_eq(out.bytes, info.commit_end + LS_GEN_TRAILER_SIZE, "the bytes to the last COMMIT");
    cr_assert_eq(out.dropped, part - info.commit_end, "only the incomplete transaction is cut");
    char path[4200];
    gen_path(path, sizeof(path), dir, "logs", 3, "");
    size_t len = 0;
    uint8_t *b = ls_h_read_file(path, &len);
    cr_assert(b && len == out.bytes, "logs/ holds %zu bytes", len);
    cr_assert_arr_eq(b, ch.buf[3], (size_t) info.commit_end);
    free(b);
    ls_copy_close(c);
}
