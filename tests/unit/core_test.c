/* core: error table, little-endian helpers, durable files, checksums, fault points. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "harness.h"

Test(core, error_table_names_messages_and_classes)
{
    cr_assert_str_eq(ls_err_name(LS_EDIGEST), "LS_EDIGEST");
    cr_assert_str_eq(ls_strerror(LS_EDIGEST), "digest mismatch");
    cr_assert(ls_err_is_transient(LS_ENOSPC));
    cr_assert(!ls_err_is_transient(LS_ERECCKSUM));
    cr_assert_eq(ls_err_from_errno(ENOSPC), LS_ENOSPC);
    cr_assert_str_eq(ls_strerror(-30798), "MDB_NOTFOUND: No matching key/data pair found");
    cr_assert_str_eq(ls_strerror(-ENOENT), "No such file or directory");
}

Test(core, little_endian_round_trip)
{
    uint8_t b[8];
    ls_put64(b, 0x0102030405060708ull);
    cr_assert_eq(b[0], 0x08);
    cr_assert_eq(b[7], 0x01);
    cr_assert_eq(ls_get64(b), 0x0102030405060708ull);
    ls_put32(b, 0xdeadbeef);
    cr_assert_eq(ls_get32(b), 0xdeadbeef);
    ls_put16(b, 0xbeef);
    cr_assert_eq(ls_get16(b), 0xbeef);
}

Test(core, durable_file_and_mkdir)
{
    char *dir = ls_h_tmpdir("core");
    char path[1024], sub[512];
    snprintf(sub, sizeof(sub), "%s/a/b/c", dir);
    cr_assert_eq(ls_mkdir_p(sub), 0);
    cr_assert_eq(ls_mkdir_p(sub), 0, "mkdir -p of an existing directory succeeds");
    snprintf(path, sizeof(path), "%s/f", sub);
    cr_assert_eq(ls_write_file_durable(path, "hello", 5), 0);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(ls_read_file(path, 100, &buf, &len), 0);
    cr_assert_eq(len, 5);
    cr_assert_arr_eq(buf, "hello", 5);
    free(buf);
    cr_assert_eq(ls_read_file(path, 4, &buf, &len), LS_ETOOBIG, "size bound is enforced");
    ls_h_rmtree_free(dir);
}

Test(core, checksums_are_seeded_and_sha256_matches_known_vector)
{
    cr_assert_neq(ls_cksum32("abc", 3, 1), ls_cksum32("abc", 3, 2));
    uint8_t d[32];
    char hex[65];
    ls_sha256("abc", 3, d);
    ls_hex(d, 32, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ls_sha256_t *h = ls_sha256_new();
    ls_sha256_update(h, "a", 1);
    ls_sha256_update(h, "bc", 2);
    uint8_t peek[32], fin[32];
    ls_sha256_peek(h, peek);
    ls_sha256_final(h, fin);
    cr_assert_arr_eq(peek, d, 32);
    cr_assert_arr_eq(fin, d, 32);
    ls_sha256_free(h);
}

Test(core, fault_point_fires_at_the_nth_hit)
{
    setenv("LS_FAULTS", "t.point=fail@2", 1);
    cr_assert(!LS_FAULT("t.point"));
    cr_assert(LS_FAULT("t.point"));
    cr_assert(!LS_FAULT("t.point"));
    cr_assert(!LS_FAULT("t.other"));
}

typedef struct {
    int calls;
    ls_log_level_t level;
    char component[32];
    char msg[1100];
} log_seen_t;

static void log_capture(void *ctx, ls_log_level_t level, const char *component, const char *msg)
{
    log_seen_t *s = ctx;
    s->calls++;
    s->level = level;
    snprintf(s->component, sizeof(s->component), "%s", component);
    snprintf(s->msg, sizeof(s->msg), "%s", msg);
}

Test(core, library_is_silent_until_a_handler_is_installed)
{
    /* Without a handler nothing reaches stderr: point stderr at a file and look. */
    char path[] = "/tmp/ls-core-log-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    ls_log_set_handler(NULL, NULL);
    LS_LOGE("core", "nobody hears this %d", 1);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    cr_assert_eq(lseek(fd, 0, SEEK_END), 0, "the library printed without a handler");
    close(fd);
    unlink(path);

    log_seen_t seen = {0};
    ls_log_set_handler(log_capture, &seen);
    ls_log_set_level(LS_LOG_WARN);
    LS_LOGI("core", "below the level");
    cr_assert_eq(seen.calls, 0, "an INFO message passed a WARN level");
    LS_LOGW("writer", "generation %d at offset %d", 7, 128);
    cr_assert_eq(seen.calls, 1);
    cr_assert_eq(seen.level, LS_LOG_WARN);
    cr_assert_str_eq(seen.component, "writer");
    cr_assert_str_eq(seen.msg, "generation 7 at offset 128");
    cr_assert_str_eq(ls_log_level_name(LS_LOG_DEBUG), "DEBUG");

    /* A long message is cut, never overflowed. */
    char big[2000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    LS_LOGE("core", "%s", big);
    cr_assert_eq(strlen(seen.msg), 1023);
    ls_log_set_handler(NULL, NULL);
}
