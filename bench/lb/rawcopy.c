/*
 * Baseline (a): the raw copy, the practical limit of this disk and this socket for shipping
 * files with the same durability as logship's receiver.
 *
 * One loopback TCP connection. The sender reads each file (page cache) and sends
 * [u32 name length][u64 size][name][bytes]; the receiver (a thread) writes <name>.part with
 * 1 MiB writes, fsyncs it, renames it to <name>, fsyncs the directory, and acks with the UTC ns
 * of the rename (the same point the benchmark's inotify sees for logship). Back to back
 * (throughput) the sender does not wait for acks; at a rate (latency) it waits for each ack.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core.h"
#include "lb.h"

#define CHUNK (1u << 20)

typedef struct {
    int lfd;         /* listening socket */
    const char *dst; /* directory written */
    int rc;          /* 0 or -1 */
} recv_t;

static int read_all(int fd, void *buf, size_t len)
{
    return ls_read_full(fd, buf, len) == (ssize_t) len ? 0 : -1;
}

static int recv_file(int fd, const char *dst, int dfd, uint8_t *buf, uint32_t nlen, uint64_t size)
{
    char name[256], part[LB_PATH + 300], final[LB_PATH + 300];
    if (nlen == 0 || nlen >= sizeof(name) || read_all(fd, name, nlen)) return -1;
    name[nlen] = 0;
    snprintf(part, sizeof(part), "%s/%s.part", dst, name);
    snprintf(final, sizeof(final), "%s/%s", dst, name);
    int out = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) return -1;
    for (uint64_t left = size; left > 0;) {
        size_t n = left < CHUNK ? (size_t) left : CHUNK;
        if (read_all(fd, buf, n) || ls_write_full(out, buf, n)) goto fail;
        left -= n;
    }
    if (fsync(out) < 0) goto fail;
    close(out);
    if (rename(part, final) < 0) return -1;
    uint64_t now = lb_now_ns();
    if (fsync(dfd) < 0) return -1;
    return ls_write_full(fd, &now, sizeof(now)) == 0 ? 0 : -1;
fail:
    close(out);
    return -1;
}

static void *receiver_main(void *arg)
{
    recv_t *r = arg;
    uint8_t *buf = malloc(CHUNK);
    int fd = accept(r->lfd, NULL, NULL);
    int dfd = open(r->dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    r->rc = -1;
    while (fd >= 0 && dfd >= 0 && buf) {
        uint8_t hdr[12];
        if (read_all(fd, hdr, sizeof(hdr))) break;
        uint32_t nlen = ls_get32(hdr);
        uint64_t size = ls_get64(hdr + 4);
        if (nlen == 0) {
            r->rc = 0;
            break;
        }
        if (recv_file(fd, r->dst, dfd, buf, nlen, size)) break;
    }
    if (fd >= 0) close(fd);
    if (dfd >= 0) close(dfd);
    free(buf);
    return NULL;
}

static int send_file(int fd, const char *src, const char *name, uint8_t *buf, uint64_t *bytes)
{
    char path[LB_PATH + 300];
    snprintf(path, sizeof(path), "%s/%s", src, name);
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0) return -1;
    uint64_t size = lb_file_size(path);
    uint8_t hdr[12];
    ls_put32(hdr, (uint32_t) strlen(name));
    ls_put64(hdr + 4, size);
    int rc = ls_write_full(fd, hdr, sizeof(hdr)) || ls_write_full(fd, name, strlen(name)) ? -1 : 0;
    for (uint64_t off = 0; rc == 0 && off < size;) {
        ssize_t n = ls_pread_full(in, buf, CHUNK, (off_t) off);
        if (n <= 0 || ls_write_full(fd, buf, (size_t) n)) rc = -1;
        off += n > 0 ? (uint64_t) n : 0;
    }
    close(in);
    *bytes += size;
    return rc;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t) port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0) return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *) &a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *) &a, sizeof(a)) < 0 || listen(fd, 1) < 0 ||
        getsockname(fd, (struct sockaddr *) &a, &len) < 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

int lb_rawcopy(const char *src, char **files, size_t n, const char *dst, double rate, lb_raw_t *r)
{
    int port = 0, fd = -1, rc = -1;
    memset(r, 0, sizeof(*r));
    r->lat_ms = calloc(n ? n : 1, sizeof(double));
    recv_t rv = {.dst = dst, .lfd = listen_any(&port)};
    uint8_t *buf = malloc(CHUNK);
    uint64_t *starts = calloc(n ? n : 1, sizeof(uint64_t)); /* UTC ns each send began */
    if (rv.lfd < 0 || !buf || !starts || ls_mkdir_p(dst)) goto out;
    pthread_t th;
    pthread_create(&th, NULL, receiver_main, &rv);
    fd = connect_to(port);
    uint64_t t0 = lb_mono_ns();
    int ok = fd >= 0 ? 0 : -1;
    for (size_t i = 0; i < n && ok == 0; i++) {
        if (rate > 0) lb_sleep_until_mono(t0 + (uint64_t) ((double) i / rate * 1e9));
        uint64_t start = lb_now_ns(), acked;
        ok = send_file(fd, src, files[i], buf, &r->bytes);
        if (ok == 0 && rate > 0) {
            ok = read_all(fd, &acked, sizeof(acked));
            r->lat_ms[r->n++] = ok ? 0 : (double) (acked - start) / 1e6;
        } else if (ok == 0) {
            starts[r->n++] = start; /* latency once its ack arrives, below */
        }
    }
    for (size_t i = 0; rate <= 0 && ok == 0 && i < r->n; i++) {
        uint64_t acked;
        ok = read_all(fd, &acked, sizeof(acked));
        r->lat_ms[i] = ok ? 0 : (double) (acked - starts[i]) / 1e6;
    }
    r->seconds = (double) (lb_mono_ns() - t0) / 1e9;
    uint8_t end[12] = {0};
    if (fd >= 0) ls_write_full(fd, end, sizeof(end));
    if (fd < 0) shutdown(rv.lfd, SHUT_RDWR);
    pthread_join(th, NULL);
    rc = ok == 0 && rv.rc == 0 ? 0 : -1;
out:
    if (fd >= 0) close(fd);
    if (rv.lfd >= 0) close(rv.lfd);
    free(buf);
    free(starts);
    return rc;
}
