/* seed helpers: messages, the paths beside a copy, removing a directory tree. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "seed/seed_int.h"

static int set_path(char *out, const char *a, const char *b)
{
    int n = snprintf(out, LS__SEED_PATH_MAX, "%s%s", a, b);
    return n < 0 || n >= LS__SEED_PATH_MAX ? LS_EINVAL : 0;
}

int ls__seed_paths(const char *copy_dir, ls__seed_paths_t *p)
{
    memset(p, 0, sizeof(*p));
    if (!copy_dir || !*copy_dir) return LS_EINVAL;
    size_t n = strlen(copy_dir);
    while (n > 1 && copy_dir[n - 1] == '/')
        n--;
    if (n + 32 >= LS__SEED_PATH_MAX || (n == 1 && copy_dir[0] == '/')) return LS_EINVAL;
    memcpy(p->copy, copy_dir, n);
    p->copy[n] = '\0';
    ls_path_dirname(p->copy, p->parent, sizeof(p->parent));
    int rc = set_path(p->new_dir, p->copy, LS__SEED_NEW);
    if (rc == 0) rc = set_path(p->old_dir, p->copy, LS__SEED_OLD);
    if (rc == 0) rc = set_path(p->new_marker, p->new_dir, "/" LS__SEED_MARKER);
    if (rc == 0) rc = set_path(p->copy_marker, p->copy, "/" LS__SEED_MARKER);
    return rc;
}

bool ls__seed_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

bool ls__seed_dir_nonempty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return false;
    struct dirent *de;
    bool any = false;
    while (!any && (de = readdir(d)) != NULL)
        any = strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return any;
}

/* Removes the entries of the directory open as dfd (closed here), depth first. */
static int rm_entries(int dfd, int depth)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return LS_EIO;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0) continue;
        if (errno != EISDIR && errno != EPERM) {
            rc = ls_err_from_errno(errno);
            continue;
        }
        int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int r = sub < 0 || depth > 32 ? LS_EIO : rm_entries(sub, depth + 1);
        if (sub >= 0 && depth > 32) close(sub);
        if (r == 0 && unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) != 0)
            r = ls_err_from_errno(errno);
        if (r) rc = r;
    }
    closedir(d);
    return rc;
}

int ls__seed_rmtree(const char *path)
{
    if (unlink(path) == 0 || errno == ENOENT) return 0;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 0 : ls_err_from_errno(errno);
    int rc = rm_entries(fd, 0);
    if (rc == 0 && rmdir(path) != 0 && errno != ENOENT) rc = ls_err_from_errno(errno);
    return rc;
}

int ls__seed_sum_init(ls__seed_sum_t *c, bool xxh)
{
    memset(c, 0, sizeof(*c));
    if (xxh)
        c->xxh = ls_seal_new();
    else
        c->sha = ls_sha256_new();
    return c->xxh || c->sha ? 0 : LS_ENOMEM;
}

void ls__seed_sum_update(ls__seed_sum_t *c, const void *buf, size_t len)
{
    if (c->xxh)
        ls_seal_update(c->xxh, buf, len);
    else
        ls_sha256_update(c->sha, buf, len);
}

void ls__seed_sum_peek(const ls__seed_sum_t *c, uint8_t out[LS_DIGEST_SIZE])
{
    _Static_assert(LS_SEAL_LEN <= LS_DIGEST_SIZE, "XXH3-128 fits SEED_END's field");
    memset(out, 0, LS_DIGEST_SIZE);
    if (c->xxh)
        ls_seal_final(c->xxh, out);
    else
        ls_sha256_peek(c->sha, out);
}

const char *ls__seed_sum_name(const ls__seed_sum_t *c)
{
    return c->xxh ? "XXH3-128" : "SHA-256";
}

void ls__seed_sum_hex(const ls__seed_sum_t *c, const uint8_t v[LS_DIGEST_SIZE], char *out)
{
    size_t n = c->xxh ? LS_SEAL_LEN : LS_DIGEST_SIZE;
    for (size_t i = n; i < LS_DIGEST_SIZE; i++)
        if (v[i]) n = LS_DIGEST_SIZE; /* not an XXH3-128 field: all of it */
    ls_hex(v, n, out);
}

void ls__seed_sum_free(ls__seed_sum_t *c)
{
    ls_sha256_free(c->sha);
    ls_seal_free(c->xxh);
    c->sha = NULL;
    c->xxh = NULL;
}
