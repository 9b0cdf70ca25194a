/*
 * A user-space link shaper: the WAN case where the kernel has no sch_netem (tc qdisc netem
 * "unknown"). It listens on 127.0.0.1, and relays each accepted connection to a target port
 * through two emulated half-links (one per direction), each a serial line of `mbit` with a
 * one-way delay of rtt_ms/2: a chunk read at t starts transmitting at max(t, line free),
 * takes len/rate, and is delivered delay later. A half-link holds at most its bandwidth-delay
 * product plus 256 KiB (the "queue"); beyond that it stops reading, so TCP's flow control
 * pushes back on the sender as a full bottleneck queue would. Threads: an acceptor, and a
 * reader + a deliverer per direction per connection.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lb.h"

#define CHUNK 16384

typedef struct chunk {
    struct chunk *next; /* FIFO */
    uint64_t due;       /* mono ns when it leaves the far end */
    size_t len;         /* bytes */
    uint8_t data[];     /* payload */
} chunk_t;

typedef struct {
    int from, to;         /* sockets */
    double bps;           /* bytes per second */
    uint64_t delay_ns;    /* one way */
    size_t limit;         /* bytes queued at most */
    pthread_mutex_t mu;   /* guards the fields below */
    pthread_cond_t cv;    /* queue changed */
    chunk_t *head, *tail; /* in flight */
    size_t queued;        /* bytes in flight */
    uint64_t line_free;   /* mono ns the line is free again */
    bool eof;             /* reader finished */
    bool stop;            /* tear down */
    pthread_t rd, wr;     /* the two threads */
} half_t;

struct lb_shaper {
    int lfd, port, target; /* listening socket, its port, the port relayed to */
    double mbit;           /* rate */
    int rtt_ms;            /* round trip */
    pthread_t acc;         /* acceptor */
    half_t *halves[16];    /* two per connection */
    int nhalves;           /* used */
    int socks[16];         /* sockets to close */
    int nsocks;            /* used */
};

static void *reader(void *arg)
{
    half_t *h = arg;
    for (;;) {
        chunk_t *c = malloc(sizeof(*c) + CHUNK);
        ssize_t n = c ? read(h->from, c->data, CHUNK) : -1;
        if (n < 0 && errno == EINTR) {
            free(c);
            continue;
        }
        pthread_mutex_lock(&h->mu);
        if (n <= 0 || h->stop) {
            free(c);
            h->eof = true;
            pthread_cond_broadcast(&h->cv);
            pthread_mutex_unlock(&h->mu);
            return NULL;
        }
        while (h->queued > h->limit && !h->stop)
            pthread_cond_wait(&h->cv, &h->mu);
        uint64_t now = lb_mono_ns(), start = now > h->line_free ? now : h->line_free;
        h->line_free = start + (uint64_t) ((double) n / h->bps * 1e9);
        c->due = h->line_free + h->delay_ns;
        c->len = (size_t) n;
        c->next = NULL;
        if (h->tail)
            h->tail->next = c;
        else
            h->head = c;
        h->tail = c;
        h->queued += (size_t) n;
        pthread_cond_broadcast(&h->cv);
        pthread_mutex_unlock(&h->mu);
    }
}

static void *deliverer(void *arg)
{
    half_t *h = arg;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->head && !h->eof && !h->stop)
            pthread_cond_wait(&h->cv, &h->mu);
        if (h->stop || !h->head) break;
        chunk_t *c = h->head;
        pthread_mutex_unlock(&h->mu);
        lb_sleep_until_mono(c->due);
        bool ok = true;
        for (size_t off = 0; off < c->len && ok;) {
            ssize_t w = write(h->to, c->data + off, c->len - off);
            if (w < 0 && errno == EINTR) continue;
            ok = w > 0;
            off += w > 0 ? (size_t) w : 0;
        }
        pthread_mutex_lock(&h->mu);
        h->head = c->next;
        if (!h->head) h->tail = NULL;
        h->queued -= c->len;
        free(c);
        pthread_cond_broadcast(&h->cv);
        if (!ok) break;
    }
    pthread_mutex_unlock(&h->mu);
    shutdown(h->to, SHUT_WR);
    shutdown(h->from, SHUT_RD);
    return NULL;
}

static void start_half(lb_shaper_t *s, int from, int to)
{
    if (s->nhalves == 16) return;
    half_t *h = calloc(1, sizeof(*h));
    h->from = from;
    h->to = to;
    h->bps = s->mbit * 1e6 / 8;
    h->delay_ns = (uint64_t) s->rtt_ms * 500000ull;
    h->limit = (size_t) (h->bps * (double) s->rtt_ms / 2e3) + 256 * 1024;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    s->halves[s->nhalves++] = h;
    pthread_create(&h->rd, NULL, reader, h);
    pthread_create(&h->wr, NULL, deliverer, h);
}

static void *acceptor(void *arg)
{
    lb_shaper_t *s = arg;
    for (;;) {
        int a = accept(s->lfd, NULL, NULL);
        if (a < 0) return NULL;
        int b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t) s->target),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (b < 0 || connect(b, (struct sockaddr *) &sa, sizeof(sa)) < 0 || s->nsocks > 14) {
            close(a);
            if (b >= 0) close(b);
            continue;
        }
        setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        s->socks[s->nsocks++] = a;
        s->socks[s->nsocks++] = b;
        start_half(s, a, b);
        start_half(s, b, a);
    }
}

lb_shaper_t *lb_shaper_start(int target_port, double mbit, int rtt_ms)
{
    lb_shaper_t *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->target = target_port;
    s->mbit = mbit;
    s->rtt_ms = rtt_ms;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *) &a, sizeof(a)) < 0 ||
        listen(s->lfd, 4) < 0 || getsockname(s->lfd, (struct sockaddr *) &a, &len) < 0) {
        if (s->lfd >= 0) close(s->lfd);
        free(s);
        return NULL;
    }
    s->port = ntohs(a.sin_port);
    pthread_create(&s->acc, NULL, acceptor, s);
    return s;
}

int lb_shaper_port(const lb_shaper_t *s)
{
    return s->port;
}

void lb_shaper_stop(lb_shaper_t *s)
{
    if (!s) return;
    shutdown(s->lfd, SHUT_RDWR);
    pthread_join(s->acc, NULL);
    close(s->lfd);
    for (int i = 0; i < s->nsocks; i++)
        shutdown(s->socks[i], SHUT_RDWR);
    for (int i = 0; i < s->nhalves; i++) {
        half_t *h = s->halves[i];
        pthread_mutex_lock(&h->mu);
        h->stop = true;
        pthread_cond_broadcast(&h->cv);
        pthread_mutex_unlock(&h->mu);
    }
    for (int i = 0; i < s->nhalves; i++) {
        half_t *h = s->halves[i];
        pthread_join(h->rd, NULL);
        pthread_join(h->wr, NULL);
        for (chunk_t *c = h->head, *n; c; c = n) {
            n = c->next;
            free(c);
        }
        free(h);
    }
    for (int i = 0; i < s->nsocks; i++)
        close(s->socks[i]);
    free(s);
}
