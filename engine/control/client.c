/* The control socket client (blocking), used by the `logship` command (see control.h). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "control/control.h"
#include "core/core.h"

#define RESP_MAX (16u * 1024u * 1024u) /* bytes of one answer: status of many copies */

static int wait_fd(int fd, short events, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    int n;
    do
        n = poll(&p, 1, timeout_ms);
    while (n < 0 && errno == EINTR);
    return n > 0 ? 0 : LS_ETIMEDOUT;
}

/* send() with MSG_NOSIGNAL: a daemon that closes early must not kill the client with SIGPIPE. */
static int send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ls_err_from_errno(errno);
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

static int connect_to(const char *path, char *err, size_t errlen, int *out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "control socket path too long: %s", path);
        return LS_EINVAL;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return ls_err_from_errno(errno);
    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
        int e = errno;
        close(fd);
        snprintf(err, errlen,
                 "no logshipd is running on control socket %s (%s): start it with "
                 "'logshipd -c FILE'",
                 path, strerror(e));
        return e == ECONNREFUSED ? LS_ECONNREFUSED : LS_ENOENT;
    }
    *out = fd;
    return 0;
}

static int read_answer(int fd, int timeout_ms, char **response, char *err, size_t errlen)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    if (!buf) return LS_ENOMEM;
    for (;;) {
        if (wait_fd(fd, POLLIN, timeout_ms)) {
            free(buf);
            snprintf(err, errlen, "the daemon did not answer within %d ms", timeout_ms);
            return LS_ETIMEDOUT;
        }
        if (len + 1 == cap) {
            char *nb = cap >= RESP_MAX ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                snprintf(err, errlen, "answer from the daemon too long");
                return LS_EPROTO;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t) n;
    }
    buf[len] = '\0';
    if (len == 0 || buf[len - 1] != '\n') {
        free(buf);
        snprintf(err, errlen, "the daemon closed the control connection without a full answer");
        return LS_EPROTO;
    }
    buf[len - 1] = '\0';
    *response = buf;
    return 0;
}

int ls_control_call(const char *path, const char *request, int timeout_ms, char **response,
                    char *err, size_t errlen)
{
    *response = NULL;
    int fd = -1;
    int rc = connect_to(path, err, errlen, &fd);
    if (rc) return rc;
    size_t n = strlen(request);
    char *line = malloc(n + 1);
    if (!line) {
        close(fd);
        return LS_ENOMEM;
    }
    memcpy(line, request, n);
    line[n] = '\n';
    rc = send_all(fd, line, n + 1);
    free(line);
    if (rc)
        snprintf(err, errlen, "cannot send the request to %s: %s", path, ls_strerror(rc));
    else
        rc = read_answer(fd, timeout_ms, response, err, errlen);
    close(fd);
    return rc;
}
