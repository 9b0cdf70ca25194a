/* Durable file-system helpers: full reads and writes, fsync of files and directories, rename. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

/* The loop of ls_write_full and ls_pwrite_full: off < 0 writes at the file position. */
static int write_loop(int fd, const void *buf, size_t len, off_t off)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = off < 0 ? write(fd, p, len) : pwrite(fd, p, len, off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return ls_err_from_errno(errno);
        }
        p += n;
        if (off >= 0) off += n;
        len -= (size_t) n;
    }
    return 0;
}

int ls_write_full(int fd, const void *buf, size_t len)
{
    return write_loop(fd, buf, len, -1);
}

int ls_pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
    LS_ASSERT(off >= 0);
    return write_loop(fd, buf, len, off);
}

/* The loop of ls_read_full and ls_pread_full: off < 0 reads at the file position. */
static ssize_t read_loop(int fd, void *buf, size_t len, off_t off)
{
    uint8_t *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = off < 0 ? read(fd, p + done, len - done)
                            : pread(fd, p + done, len - done, off + (off_t) done);
        if (n < 0) {
            if (errno == EINTR) continue;
            return ls_err_from_errno(errno);
        }
        if (n == 0) break;
        done += (size_t) n;
    }
    return (ssize_t) done;
}

ssize_t ls_read_full(int fd, void *buf, size_t len)
{
    return read_loop(fd, buf, len, -1);
}

ssize_t ls_pread_full(int fd, void *buf, size_t len, off_t off)
{
    LS_ASSERT(off >= 0);
    return read_loop(fd, buf, len, off);
}

int ls_fsync(int fd)
{
    return fsync(fd) == 0 ? 0 : ls_err_from_errno(errno);
}

int ls_fdatasync(int fd)
{
    return fdatasync(fd) == 0 ? 0 : ls_err_from_errno(errno);
}

int ls_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ls_err_from_errno(errno);
    int rc = ls_fsync(fd);
    close(fd);
    return rc;
}

void ls_path_dirname(const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(out, outlen, ".");
    } else if (slash == path) {
        snprintf(out, outlen, "/");
    } else {
        snprintf(out, outlen, "%.*s", (int) (slash - path), path);
    }
}

int ls_rename_durable(const char *from, const char *to)
{
    if (rename(from, to) != 0) return ls_err_from_errno(errno);
    char dir[4096];
    ls_path_dirname(to, dir, sizeof(dir));
    return ls_fsync_dir(dir);
}

int ls_mkdir_p(const char *path)
{
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(buf)) return LS_EINVAL;
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) == 0) {
            char parent[4096];
            ls_path_dirname(buf, parent, sizeof(parent));
            int rc = ls_fsync_dir(parent);
            if (rc) return rc;
        } else if (errno != EEXIST) {
            return ls_err_from_errno(errno);
        }
        buf[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0) return ls_err_from_errno(errno);
    return S_ISDIR(st.st_mode) ? 0 : LS_EEXIST;
}

int ls_read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ls_err_from_errno(errno);
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = ls_err_from_errno(errno);
        goto fail;
    }
    if ((uint64_t) st.st_size > max) {
        rc = LS_ETOOBIG;
        goto fail;
    }
    uint8_t *buf = malloc((size_t) st.st_size + 1);
    if (!buf) {
        rc = LS_ENOMEM;
        goto fail;
    }
    ssize_t n = ls_read_full(fd, buf, (size_t) st.st_size);
    if (n < 0) {
        free(buf);
        rc = (int) n;
        goto fail;
    }
    buf[n] = 0;
    *out = buf;
    *len = (size_t) n;
fail:
    close(fd);
    return rc;
}

int ls_write_file_durable(const char *path, const void *buf, size_t len)
{
    char tmp[4096];
    if ((size_t) snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) return LS_EINVAL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return ls_err_from_errno(errno);
    int rc = ls_write_full(fd, buf, len);
    if (rc == 0) rc = ls_fsync(fd);
    close(fd);
    if (rc == 0) rc = ls_rename_durable(tmp, path);
    if (rc) unlink(tmp);
    return rc;
}
