/* layout: listing a directory of generation files, their paths, and reading a file's two ends. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "genbuild.h"
#include "harness.h"
#include "layout/layout.h"

static char *dir;

static void setup(void)
{
    dir = ls_h_tmpdir("layout");
}

static void teardown(void)
{
    ls_h_rmtree_free(dir);
}

TestSuite(layout, .init = setup, .fini = teardown);

static void touch(const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    cr_assert_eq(ls_h_write_file(path, "x", 1), 0, "%s", path);
}

static void touch_gen(const char *prefix, uint32_t e, uint64_t g, const char *suffix)
{
    char path[PATH_MAX];
    cr_assert_eq(ls_layout_path(path, sizeof(path), dir, prefix, e, g, suffix), 0);
    cr_assert_eq(ls_h_write_file(path, "x", 1), 0, "%s", path);
}

Test(layout, lists_generations_in_name_order_and_ignores_the_rest)
{
    touch_gen(NULL, 2, 7, NULL);
    touch_gen(NULL, 1, 3, NULL);
    touch_gen(NULL, 1, 12, NULL); /* 12 > 7 numerically, 0x0c in the name */
    touch_gen(NULL, 2, 13, NULL);
    touch_gen(NULL, 1, 2, NULL);
    touch_gen(NULL, 2, 14, ".part");
    touch_gen("F01", 1, 4, NULL); /* another prefix */
    touch("E00.log");
    touch("history");
    touch("E00-00000001-0000000000000000.log"); /* generation 0 is never written */
    touch("E00-00000001-00000000000000zz.log");
    touch("notes.part");
    ls_layout_list_t l;
    char err[256] = "";
    cr_assert_eq(ls_layout_list(dir, NULL, &l, err, sizeof(err)), 0, "%s", err);
    const ls_layout_gen_t want[] = {{1, 2}, {1, 3}, {1, 12}, {2, 7}, {2, 13}};
    cr_assert_eq(l.ngens, LS_ARRAY_SIZE(want));
    for (size_t i = 0; i < l.ngens; i++) {
        cr_assert_eq(l.gens[i].epoch, want[i].epoch, "entry %zu", i);
        cr_assert_eq(l.gens[i].generation, want[i].generation, "entry %zu", i);
    }
    cr_assert(l.has_current);
    cr_assert_eq(l.nparts, 1);
    cr_assert_eq(l.parts[0].generation, 14);
    cr_assert_eq(l.parts[0].epoch, 2);
    ls_layout_list_free(&l);
    cr_assert_null(l.gens);
    cr_assert_eq(l.ngens, 0);

    ls_layout_options_t o = {.order = LS_LAYOUT_BY_GENERATION};
    cr_assert_eq(ls_layout_list(dir, &o, &l, err, sizeof(err)), 0, "%s", err);
    const uint64_t by_gen[] = {2, 3, 7, 12, 13};
    for (size_t i = 0; i < l.ngens; i++)
        cr_assert_eq(l.gens[i].generation, by_gen[i], "entry %zu", i);
    ls_layout_list_free(&l);

    o = (ls_layout_options_t){.prefix = "F01"};
    cr_assert_eq(ls_layout_list(dir, &o, &l, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(l.ngens, 1);
    cr_assert_eq(l.gens[0].generation, 4);
    cr_assert_not(l.has_current, "F01.log is absent");
    ls_layout_list_free(&l);
}

Test(layout, find_takes_the_highest_epoch)
{
    touch_gen(NULL, 1, 5, NULL);
    touch_gen(NULL, 3, 5, NULL);
    touch_gen(NULL, 2, 5, NULL);
    touch_gen(NULL, 1, 4, NULL);
    ls_layout_list_t l;
    cr_assert_eq(ls_layout_list(dir, NULL, &l, NULL, 0), 0);
    ssize_t i = ls_layout_find(&l, 5);
    cr_assert_geq(i, 0);
    cr_assert_eq(l.gens[i].epoch, 3);
    cr_assert_eq(ls_layout_find(&l, 4), 0);
    cr_assert_eq(ls_layout_find(&l, 6), -1);
    ls_layout_list_free(&l);
}

Test(layout, errors_name_the_directory_and_the_prefix)
{
    ls_layout_list_t l;
    char err[512] = "", missing[PATH_MAX];
    snprintf(missing, sizeof(missing), "%s/nope", dir);
    cr_assert_eq(ls_layout_list(missing, NULL, &l, err, sizeof(err)), LS_ENOENT);
    cr_assert(ls_h_contains(err, missing), "%s", err);
    cr_assert_eq(l.ngens, 0);
    ls_layout_options_t o = {.prefix = "a-b"};
    cr_assert_eq(ls_layout_list(dir, &o, &l, err, sizeof(err)), LS_EINVAL);
    cr_assert(ls_h_contains(err, "a-b"), "%s", err);
    char small[16];
    cr_assert_eq(ls_layout_path(small, sizeof(small), dir, NULL, 1, 1, NULL), LS_EINVAL);
    char path[PATH_MAX];
    cr_assert_eq(ls_layout_path(path, sizeof(path), "/d", "E00", 0x1a, 0x2b, ".part"), 0);
    cr_assert_str_eq(path, "/d/E00-0000001a-000000000000002b.log.part");
    ls_layout_list_free(NULL);
}

/* Writes generation g (epoch 1) with two records, closed or not; returns its path. */
static void write_gen(uint64_t g, bool closed, char *path, size_t len, uint8_t **bytes, size_t *n)
{
    ls_h_gen_t *b = ls_h_gen_default(g, 40);
    ls_h_gen_put(b, "key", 3, "value", 5);
    ls_h_gen_commit(b);
    if (closed) ls_h_gen_close(b);
    *bytes = ls_h_gen_copy(b, n);
    ls_h_gen_free(b);
    cr_assert_eq(ls_layout_path(path, len, dir, NULL, 1, g, NULL), 0);
    cr_assert_eq(ls_h_write_file(path, *bytes, *n), 0);
}

Test(layout, reads_header_and_trailer_of_a_closed_generation)
{
    char path[PATH_MAX];
    uint8_t *bytes;
    size_t n;
    write_gen(9, true, path, sizeof(path), &bytes, &n);
    ls_layout_ends_t x;
    char err[512] = "";
    cr_assert_eq(ls_layout_read_ends(path, &x, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(x.size, n);
    cr_assert_eq(x.h.generation, 9);
    cr_assert_eq(x.h.epoch, 1);
    cr_assert_eq(x.h.first_lsn, 40);
    cr_assert(x.closed);
    cr_assert_eq(x.t.last_lsn, 41, "a put and its commit");
    cr_assert_eq(x.t.payload_len, n - LS_GEN_HEADER_SIZE - LS_GEN_TRAILER_SIZE);

    /* One byte more: the trailer no longer ends the file. */
    uint8_t *longer = malloc(n + 1);
    memcpy(longer, bytes, n);
    longer[n] = 0;
    cr_assert_eq(ls_h_write_file(path, longer, n + 1), 0);
    cr_assert_eq(ls_layout_read_ends(path, &x, err, sizeof(err)), 0, "%s", err);
    cr_assert_not(x.closed);
    cr_assert_eq(x.h.generation, 9, "the header is still read");
    free(longer);

    /* A damaged trailer byte. */
    bytes[n - 10] ^= 0x40;
    cr_assert_eq(ls_h_write_file(path, bytes, n), 0);
    cr_assert_eq(ls_layout_read_ends(path, &x, err, sizeof(err)), 0, "%s", err);
    cr_assert_not(x.closed);
    free(bytes);
}

Test(layout, an_open_short_or_missing_file)
{
    char path[PATH_MAX];
    uint8_t *bytes;
    size_t n;
    write_gen(3, false, path, sizeof(path), &bytes, &n);
    ls_layout_ends_t x;
    char err[512] = "";
    cr_assert_eq(ls_layout_read_ends(path, &x, err, sizeof(err)), 0, "%s", err);
    cr_assert_not(x.closed, "no trailer written");
    cr_assert_eq(x.h.generation, 3);

    cr_assert_eq(ls_h_write_file(path, bytes, LS_GEN_HEADER_SIZE - 1), 0);
    cr_assert_eq(ls_layout_read_ends(path, &x, err, sizeof(err)), LS_ECORRUPT);
    cr_assert(ls_h_contains(err, "shorter than a header"), "%s", err);
    cr_assert(ls_h_contains(err, path), "%s", err);

    bytes[5] ^= 1; /* the header's checksum no longer matches */
    cr_assert_eq(ls_h_write_file(path, bytes, n), 0);
    cr_assert_eq(ls_layout_read_ends(path, &x, err, sizeof(err)), LS_ECORRUPT);
    cr_assert(ls_h_contains(err, "bad header"), "%s", err);

    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(ls_layout_read_ends(path, &x, err, sizeof(err)), LS_ENOENT);
    free(bytes);
}

/* Writes text as <dir>/history and reads it back through the one history reader. */
static int read_history_n(const char *text, size_t tlen, ls_layout_hist_t **h, size_t *n, char *err,
                          size_t len)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/history", dir);
    cr_assert_eq(ls_h_write_file(path, text, tlen), 0);
    return ls_layout_history_read(path, h, n, err, len);
}

static int read_history(const char *text, ls_layout_hist_t **h, size_t *n, char *err, size_t len)
{
    return read_history_n(text, strlen(text), h, n, err, len);
}

Test(layout, history_lines_comments_and_errors_with_their_line)
{
    char path[PATH_MAX], err[256] = "";
    ls_layout_hist_t *h = NULL;
    size_t n = 0;
    snprintf(path, sizeof(path), "%s/history", dir);
    cr_assert_eq(ls_layout_history_read(path, &h, &n, err, sizeof(err)), LS_ENOENT);
    cr_assert_eq(read_history("# epochs\n1 1\n\n  2 7\n3 7\n", &h, &n, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(n, 3);
    cr_assert(h[1].epoch == 2 && h[1].first_gen == 7 && h[2].epoch == 3 && h[2].first_gen == 7);
    free(h);
    h = NULL;
    cr_assert_eq(read_history("1 1\n\n2 9\n2 12\n", &h, &n, err, sizeof(err)), LS_ECONFIG);
    cr_assert(strstr(err, "history:4: epoch does not increase"), "names the line: %s", err);
    cr_assert_null(h);
    cr_assert_eq(read_history("1 5\n2 3\n", &h, &n, err, sizeof(err)), LS_ECONFIG);
    cr_assert(strstr(err, ":2: first generation decreases"), "%s", err);
    cr_assert_eq(read_history("1 1 x\n", &h, &n, err, sizeof(err)), LS_ECONFIG);
    cr_assert_eq(read_history_n("1 1\n\0002 2\n", 9, &h, &n, err, sizeof(err)), LS_ECONFIG);
    cr_assert(strstr(err, "NUL byte"), "%s", err);
}
