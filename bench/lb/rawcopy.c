/*
 * Baseline (a): the raw copy, the practical limit of this disk and this socket for shipping
 * files with the same durability as logship's receiver.
 *
 * One loopback TCP connection. The sender reads each file (page cache) and sends
 * [u32 name length][u64 size][name][bytes]; the receiver writes <name>.part, fdatasyncs it
 * (as logship's receiver does), renames it to <name>, fsyncs the directory, and acks with the
 * UTC ns of the rename (the same point the benchmark's inotify sees for logship). Back to back
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

#define CHUNK (1u << 20) /* sender's read size */

#define DEPTH 8 /* files received but not yet durable, at most */

typedef struct {
    char name[256]; /* file name */
    uint8_t *buf;   /* its bytes */
    uint64_t size;  /* bytes */
} item_t;

/* The receiver: a network thread reads whole files into memory and queues them; a disk thread
 * writes, fdatasyncs, renames and fsyncs the directory, then acks. So the network keeps
 * flowing while a file is being synced, as logship's receiver does (disk work off the loop). */
typedef struct {
    int lfd;            /* listening socket */
    int fd;             /* the accepted connection */
    const char *dst;    /* directory written */
    pthread_mutex_t mu; /* guards q, n, eof */
    pthread_cond_t cv;  /* q changed */
    item_t q[DEPTH];    /* ring */
    size_t head, n;     /* ring position and fill */
    bool eof;           /* no more files */
    int rc;             /* 0 or -1 */
} recv_t;

static int read_all(int fd, void *buf, size_t len)
{
    return ls_read_full(fd, buf, len) == (ssize_t) len ? 0 : -1;
}

static int store_file(recv_t *r, int dfd, const item_t *it)
{
    char part[LB_PATH + 300], final[LB_PATH + 300];
    snprintf(part, sizeof(part), "%s/%s.part", r->dst, it->name);
    snprintf(final, sizeof(final), "%s/%s", r->dst, it->name);
    int out = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) return -1;
    if (ls_write_full(out, it->buf, (size_t) it->size) || fdatasync(out) < 0) {
        close(out);
        return -1;
    }
    close(out);
    if (rename(part, final) < 0) return -1;
    uint64_t now = lb_now_ns();
    if (fsync(dfd) < 0) return -1;
    return ls_write_full(r->fd, &now, sizeof(now)) == 0 ? 0 : -1;
}

static void *disk_main(void *arg)
{
    recv_t *r = arg;
    int dfd = open(r->dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = dfd >= 0 ? 0 : -1;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (r->n == 0 && !r->eof)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->n == 0) break;
        item_t it = r->q[r->head];
        pthread_mutex_unlock(&r->mu);
        if (rc == 0) rc = store_file(r, dfd, &it);
        free(it.buf);
        pthread_mutex_lock(&r->mu);
        r->head = (r->head + 1) % DEPTH;
        r->n--;
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    if (dfd >= 0) close(dfd);
    if (rc) r->rc = -1;
    return NULL;
}

static void *receiver_main(void *arg)
{
    recv_t *r = arg;
    pthread_t disk;
    r->fd = accept(r->lfd, NULL, NULL);
    pthread_create(&disk, NULL, disk_main, r);
    int rc = -1;
    while (r->fd >= 0) {
        uint8_t hdr[12];
        item_t it = {0};
        if (read_all(r->fd, hdr, sizeof(hdr))) break;
        uint32_t nlen = ls_get32(hdr);
        it.size = ls_get64(hdr + 4);
        if (nlen == 0) {
            rc = 0;
            break;
        }
        if (nlen >= sizeof(it.name) || read_all(r->fd, it.name, nlen)) break;
        it.name[nlen] = 0;
        it.buf = malloc(it.size ? (size_t) it.size : 1);
        if (!it.buf || read_all(r->fd, it.buf, (size_t) it.size)) {
            free(it.buf);
            break;
        }
        pthread_mutex_lock(&r->mu);
        while (r->n == DEPTH)
            pthread_cond_wait(&r->cv, &r->mu);
        r->q[(r->head + r->n) % DEPTH] = it;
        r->n++;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
    }
    pthread_mutex_lock(&r->mu);
    r->eof = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(disk, NULL);
    if (rc) r->rc = -1;
    if (r->fd >= 0) close(r->fd);
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
    recv_t rv = {.dst = dst, .lfd = listen_any(&port), .fd = -1};
    pthread_mutex_init(&rv.mu, NULL);
    pthread_cond_init(&rv.cv, NULL);
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
