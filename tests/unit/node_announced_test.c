/* node: the text of <copy>.announced (engine/node/announced.c), what a copy's source last
 * announced, kept for an activation after a restart: made and read back without a file, a
 * missing key, comments, and a damaged line making the whole of it unknown; and the file as the
 * copy keeps it (written in place through a kept descriptor). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "node/announced.h"
#include "node/node_int.h"

Test(node_announced, reads_back_what_it_writes)
{
    ls_role_announced_t a = {.last_generation = 41,
                             .last_close_ns = 1764900000123456789ull,
                             .missing_bytes = 65536,
                             .open_generation = 42,
                             .open_lsn = 18446744073709551615ull};
    char text[512];
    int len = ls_node_announced_format(&a, "node-a", "db1", text, sizeof(text));
    cr_assert(len > 0 && (size_t) len < sizeof(text));
    cr_assert_eq(text[0], '#');
    cr_assert(strstr(text, "what node-a last announced about db1"));
    ls_role_announced_t b;
    memset(&b, 0xee, sizeof(b));
    cr_assert_eq(ls_node_announced_parse(text, &b), 0);
    cr_assert_eq(b.last_generation, 41);
    cr_assert_eq(b.last_close_ns, 1764900000123456789ull);
    cr_assert_eq(b.missing_bytes, 65536);
    cr_assert_eq(b.open_generation, 42);
    cr_assert_eq(b.open_lsn, 18446744073709551615ull);
}

/* The numbers have a fixed width: the file is overwritten in place, its length never changes. */
Test(node_announced, the_length_does_not_depend_on_the_numbers)
{
    ls_role_announced_t zero = {0}, big = {.last_generation = 18446744073709551615ull,
                                           .last_close_ns = 1764900000123456789ull,
                                           .missing_bytes = 7,
                                           .open_generation = 123456,
                                           .open_lsn = 18446744073709551615ull};
    char a[512], b[512];
    int la = ls_node_announced_format(&zero, "node-a", "db1", a, sizeof(a));
    int lb = ls_node_announced_format(&big, "node-a", "db1", b, sizeof(b));
    cr_assert_eq(la, lb, "%s\n%s", a, b);
    ls_role_announced_t back;
    cr_assert_eq(ls_node_announced_parse(b, &back), 0);
    cr_assert_eq(memcmp(&back, &big, sizeof(back)), 0, "zero-padded numbers read back");
}

Test(node_announced, missing_keys_stay_zero_and_comments_are_skipped)
{
    char text[] =
        "# an older daemon's file\n\nlast_generation 7\n# no block mode\nmissing_bytes 9\n";
    ls_role_announced_t b;
    memset(&b, 0xee, sizeof(b));
    cr_assert_eq(ls_node_announced_parse(text, &b), 0);
    cr_assert_eq(b.last_generation, 7);
    cr_assert_eq(b.missing_bytes, 9);
    cr_assert_eq(b.last_close_ns, 0);
    cr_assert_eq(b.open_generation, 0);
    cr_assert_eq(b.open_lsn, 0);
}

Test(node_announced, a_damaged_line_makes_all_of_it_unknown)
{
    /* the third non-empty line has no number; the second an unknown key in another file */
    char bad_value[] = "# c\nlast_generation 7\nopen_lsn many\nmissing_bytes 9\n";
    ls_role_announced_t b;
    cr_assert_eq(ls_node_announced_parse(bad_value, &b), 3);
    ls_role_announced_t zero = {0};
    cr_assert_eq(memcmp(&b, &zero, sizeof(b)), 0);
    char bad_key[] = "last_generation 7\n\nlast_lsn 12\n";
    cr_assert_eq(ls_node_announced_parse(bad_key, &b), 2);
    cr_assert_eq(memcmp(&b, &zero, sizeof(b)), 0);
    char empty[] = "";
    cr_assert_eq(ls_node_announced_parse(empty, &b), 0);
    cr_assert_eq(memcmp(&b, &zero, sizeof(b)), 0);
}

Test(node_announced, a_short_buffer_is_cut_not_overrun)
{
    ls_role_announced_t a = {.last_generation = 1};
    char text[16];
    memset(text, 'x', sizeof(text));
    int len = ls_node_announced_format(&a, "node-a", "db1", text, 8);
    cr_assert(len >= 8);
    cr_assert_eq(text[7], '\0');
    cr_assert_eq(text[8], 'x');
}

/* The file itself (announced.c's pcopy adapters, without a loop): made whole at the copy's open,
 * then each changed COPY_STATE written in place through the descriptor kept open (same inode),
 * a file removed behind the daemon's back written whole again by the next sync, the descriptor
 * closed with the copy, and a later open reading back the last announcement. */
static void read_back(const char *path, ls_role_announced_t *out)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(ls_read_file(path, 4096, &buf, &len), 0, "%s unreadable", path);
    char *text = calloc(1, len + 1);
    cr_assert(text != NULL);
    memcpy(text, buf, len);
    free(buf);
    cr_assert_eq(ls_node_announced_parse(text, out), 0, "%s: %s", path, text);
    free(text);
}

Test(node_announced, file_kept_open_and_written_in_place)
{
    char *dir = ls_h_tmpdir("announced");
    ls_cfg_database_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.name, sizeof(cfg.name), "db1");
    snprintf(cfg.path, sizeof(cfg.path), "%s/db1", dir);
    pcopy_t p;
    memset(&p, 0, sizeof(p));
    p.cfg = &cfg;
    snprintf(p.source, sizeof(p.source), "node-a");
    char path[LS_CFG_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s.announced", cfg.path);

    ls__node_announced_load(&p); /* absent: nothing announced, no descriptor */
    cr_assert_eq(p.announced.last_generation, 0);
    cr_assert_eq(p.ann_fd, -1);
    ls__node_announced_made(&p); /* written whole and synced, then kept open */
    cr_assert(p.ann_fd >= 0);
    cr_assert(p.ann_len > 0);
    struct stat made;
    cr_assert_eq(stat(path, &made), 0);
    cr_assert_eq((size_t) made.st_size, p.ann_len);

    ls_proto_copy_state_t cs = {.last_generated = 7, .last_generated_ns = 123, .queue_bytes = 9};
    ls__node_announced_set(&p, &cs);
    int fd = p.ann_fd;
    ls_role_announced_t a;
    read_back(path, &a);
    cr_assert_eq(a.last_generation, 7);
    cr_assert_eq(a.missing_bytes, 9);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_ino, made.st_ino, "written in place, not replaced");
    cr_assert_eq((size_t) st.st_size, p.ann_len);
    cs.queue_bytes = 0; /* after the DURABLE: another COPY_STATE, same descriptor */
    ls__node_announced_set(&p, &cs);
    cr_assert_eq(p.ann_fd, fd);
    read_back(path, &a);
    cr_assert_eq(a.missing_bytes, 0);
    ls__node_announced_save(&p, true); /* the housekeeping's sync: in place still */
    cr_assert_eq(p.ann_fd, fd);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_ino, made.st_ino);

    /* Removed behind the daemon's back: the write in place goes to the orphaned inode, the next
     * sync sees no link left and writes the file whole again, with a new kept descriptor. */
    cr_assert_eq(unlink(path), 0);
    cs.last_generated = 8;
    ls__node_announced_set(&p, &cs);
    ls__node_announced_save(&p, true);
    cr_assert(p.ann_fd >= 0);
    read_back(path, &a);
    cr_assert_eq(a.last_generation, 8);
    cs.last_generated = 9; /* and in place again from then on */
    ls__node_announced_set(&p, &cs);
    cr_assert_eq(stat(path, &made), 0);
    read_back(path, &a);
    cr_assert_eq(a.last_generation, 9);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_ino, made.st_ino);

    fd = p.ann_fd;
    ls__node_announced_save(&p, true);
    ls__node_announced_close(&p);
    cr_assert_eq(p.ann_fd, -1);
    cr_assert_eq(fcntl(fd, F_GETFD), -1, "the kept descriptor is closed with the copy");

    pcopy_t q; /* the copy opened again (a restart): the last announcement read back */
    memset(&q, 0, sizeof(q));
    q.cfg = &cfg;
    snprintf(q.source, sizeof(q.source), "node-a");
    ls__node_announced_load(&q);
    cr_assert_eq(q.announced.last_generation, 9);
    cr_assert_eq(q.announced.last_close_ns, 123);
    ls__node_announced_close(&q);
    ls_h_rmtree_free(dir);
}
