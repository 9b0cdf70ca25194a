/* Helpers shared by the shadow writing tests (copy_shadow_write_test.c,
 * copy_shadow_tail_test.c): the copy opened without a pool, a BLOCK of a generation, the
 * shadow's path and length, a forked child that dies at a fault point. Static: each test program
 * includes this once. */
#ifndef LS_COPY_SHADOW_WRITE_TEST_UTIL_H
#define LS_COPY_SHADOW_WRITE_TEST_UTIL_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "shadow_test_util.h"

/* helpers a test program may leave unused */
#ifndef UTIL
#define UTIL static __attribute__((unused))
#endif

UTIL void setup(void)
{
    shadow_fixture_init("copyshadow");
}

/* The copy without a pool: each shadow is a new file, so its length is what it was given (a file
 * taken from the pool, filled in the background, would be the pool's size: that path is
 * copy_shadow_pool_test.c's, and with the pool here the lengths below depended on whether a
 * pool file happened to be ready). */
UTIL ls_copy_t *wopen(const char *d, events_t *ev)
{
    ls_copy_options_t o = {.dir = d, .prealloc_files = -1};
    if (ev) {
        o.event_cb = on_event;
        o.event_ctx = ev;
    }
    return copy_open_opts(&o);
}

/* A BLOCK of generation gen's bytes (the closed file's: the open log's are the same). */
UTIL int block(ls_copy_t *c, uint64_t gen, uint64_t off, size_t len, ls_copy_shadow_t *out)
{
    char err[512] = "";
    ls_copy_shadow_t sh;
    int rc = ls_copy_shadow_write(c, 1, gen, off, ch.buf[gen] + off, len, LSN + off + len,
                                  out ? out : &sh, err, sizeof(err));
    if (rc) cr_log_info("BLOCK %llu+%zu: %s", (unsigned long long) off, len, err);
    return rc;
}

UTIL void shadow_path(char *out, size_t len, uint32_t epoch, uint64_t gen)
{
    char name[LS_GEN_NAME_MAX];
    cr_assert_eq(ls_gen_name(name, sizeof(name), "E00", epoch, gen), 0);
    snprintf(out, len, "%s/shadow/%s", dir, name);
}

UTIL size_t file_len(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    return (size_t) st.st_size;
}

/* The shadow of generation 3 holds exactly bytes [0, n) of the open log. */
UTIL void shadow_is(size_t n)
{
    char path[4200];
    shadow_path(path, sizeof(path), 1, 3);
    size_t len = 0;
    uint8_t *b = ls_h_read_file(path, &len);
    cr_assert(b, "no shadow %s", path);
    cr_assert_eq(len, n);
    cr_assert_arr_eq(b, ch.buf[3], n);
    free(b);
}

/* In a forked child: the copy opened with faults armed and generations 1 and 2 received (exit 3
 * if that fails). */
UTIL ls_copy_t *child_open(const char *faults)
{
    setenv("LS_FAULTS", faults, 1);
    ls_copy_options_t o = {.dir = dir, .prealloc_files = -1};
    ls_copy_t *c = NULL;
    if (ls_copy_open(&o, &c, NULL, 0) != 0) _exit(3);
    for (int g = 1; g <= 2; g++)
        if (send_bytes(c, (uint64_t) g, ch.buf[g], ch.len[g], ch.digest[g], NULL, 0)) _exit(3);
    return c;
}

/* Runs body(faults) in a forked child and asserts that it died at the fault point. */
UTIL void child_dies_at(const char *point, void (*body)(const char *faults), const char *faults)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) body(faults);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == LS_FAULT_EXIT_CODE,
              "the child died at %s (status %d)", point, status);
}

#endif
