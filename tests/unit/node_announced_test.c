/* node: the text of <copy>.announced (engine/node/announced.c), what a copy's source last
 * announced, kept for an activation after a restart: made and read back without a file, a
 * missing key, comments, and a damaged line making the whole of it unknown. */
#include <criterion/criterion.h>
#include <string.h>

#include "node/announced.h"

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
