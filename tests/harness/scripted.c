/* A scripted plaintext peer (see scripted.h). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <logship/logfmt.h>

#include "core/core.h"
#include "harness.h"
#include "scripted.h"

#define SP_BUF   (LS_FRAME_HEADER_SIZE + LS_FRAME_MAX_BODY + 4)
#define SP_HB_MS 500

struct ls_h_sp {
    int lfd;             /* listening socket (server), else -1 */
    int fd;              /* the connection, -1 before accept or after close */
    bool closed;         /* the daemon closed the connection */
    bool alive;          /* handshake over: heartbeats are sent while waiting */
    uint64_t tx_seq;     /* frames sent (checksum seed) */
    uint64_t rx_seq;     /* frames received */
    uint64_t hb_seq;     /* heartbeats sent */
    uint64_t last_hb_ms; /* when the last one went, monotonic ms */
    size_t have;         /* bytes in in[] */
    size_t consumed;     /* bytes of the frame handed out by the last expect */
    ls_frame_t frame;    /* the frame handed out */
    uint8_t in[2 * SP_BUF];
    uint8_t out[SP_BUF];
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static ls_h_sp_t *sp_new(void)
{
    ls_h_sp_t *sp = calloc(1, sizeof(*sp));
    cr_assert_not_null(sp);
    sp->lfd = sp->fd = -1;
    return sp;
}

ls_h_sp_t *ls_h_sp_connect(int port)
{
    ls_h_sp_t *sp = sp_new();
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    sp->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(sp->fd, 0);
    for (int i = 0; i < 200; i++) { /* the daemon may still be binding */
        if (connect(sp->fd, (struct sockaddr *) &sa, sizeof(sa)) == 0) return sp;
        usleep(10000);
    }
    cr_assert_fail("scripted peer: cannot connect to 127.0.0.1:%d: %s", port, strerror(errno));
    return NULL;
}

ls_h_sp_t *ls_h_sp_listen(int *port)
{
    ls_h_sp_t *sp = sp_new();
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t) *port)};
    socklen_t sl = sizeof(sa);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    sp->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(sp->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    cr_assert_eq(bind(sp->lfd, (struct sockaddr *) &sa, sizeof(sa)), 0,
                 "scripted peer: bind 127.0.0.1:%d: %s", *port, strerror(errno));
    cr_assert_eq(listen(sp->lfd, 4), 0);
    cr_assert_eq(getsockname(sp->lfd, (struct sockaddr *) &sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return sp;
}

bool ls_h_sp_accept(ls_h_sp_t *sp, int timeout_ms)
{
    struct pollfd p = {sp->lfd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return false;
    sp->fd = accept4(sp->lfd, NULL, NULL, SOCK_CLOEXEC);
    return sp->fd >= 0;
}

void ls_h_sp_close(ls_h_sp_t *sp)
{
    if (!sp) return;
    if (sp->fd >= 0) close(sp->fd);
    if (sp->lfd >= 0) close(sp->lfd);
    free(sp);
}

static bool send_bytes(ls_h_sp_t *sp, const ls_frame_t *f)
{
    ssize_t n = ls_frame_encode(f, sp->out, sizeof(sp->out) - 4);
    cr_assert_gt(n, 0, "scripted peer: cannot encode %s (%zd)", ls_frame_type_name(f->type), n);
    ls_put32(sp->out + n, ls_cksum32(sp->out, (size_t) n, sp->tx_seq++));
    size_t len = (size_t) n + 4, off = 0;
    while (off < len) {
        ssize_t w = send(sp->fd, sp->out + off, len - off, MSG_NOSIGNAL);
        if (w <= 0) return false;
        off += (size_t) w;
    }
    if (f->type == LS_FRAME_WELCOME) sp->alive = true;
    return true;
}

void ls_h_sp_send(ls_h_sp_t *sp, const ls_frame_t *f)
{
    cr_assert(send_bytes(sp, f), "scripted peer: sending %s failed: %s",
              ls_frame_type_name(f->type), strerror(errno));
}

static void heartbeat(ls_h_sp_t *sp)
{
    if (!sp->alive || sp->closed || now_ms() - sp->last_hb_ms < SP_HB_MS) return;
    ls_frame_t f = {.type = LS_FRAME_HEARTBEAT};
    f.heartbeat.seq = ++sp->hb_seq;
    f.heartbeat.send_ns = ls_now_ns();
    sp->last_hb_ms = now_ms();
    if (!send_bytes(sp, &f)) sp->closed = true;
}

/* Reads what the socket has within ms; false when the connection ended. */
static bool fill(ls_h_sp_t *sp, int ms)
{
    struct pollfd p = {sp->fd, POLLIN, 0};
    int rc = poll(&p, 1, ms);
    if (rc <= 0) return true;
    cr_assert_lt(sp->have, sizeof(sp->in), "scripted peer: input buffer full");
    ssize_t n = recv(sp->fd, sp->in + sp->have, sizeof(sp->in) - sp->have, 0);
    if (n <= 0) {
        sp->closed = true;
        return false;
    }
    sp->have += (size_t) n;
    return true;
}

/* The next whole frame in the buffer, decoded into sp->frame; false when none is complete. */
static bool next_frame(ls_h_sp_t *sp)
{
    if (sp->consumed) {
        memmove(sp->in, sp->in + sp->consumed, sp->have - sp->consumed);
        sp->have -= sp->consumed;
        sp->consumed = 0;
    }
    if (sp->have < LS_FRAME_HEADER_SIZE) return false;
    uint32_t blen = ls_get32(sp->in);
    cr_assert_leq(blen, LS_FRAME_MAX_BODY, "scripted peer: body of %u bytes", blen);
    size_t len = LS_FRAME_HEADER_SIZE + blen;
    if (sp->have < len + 4) return false;
    cr_assert_eq(ls_get32(sp->in + len), ls_cksum32(sp->in, len, sp->rx_seq),
                 "scripted peer: checksum of frame %llu", (unsigned long long) sp->rx_seq);
    sp->rx_seq++;
    char err[256] = "";
    cr_assert_eq(ls_frame_decode(sp->in, len, &sp->frame, err, sizeof(err)), 0,
                 "scripted peer: undecodable frame: %s", err);
    sp->consumed = len + 4;
    if (sp->frame.type == LS_FRAME_WELCOME) sp->alive = true;
    return true;
}

const ls_frame_t *ls_h_sp_expect(ls_h_sp_t *sp, uint8_t type, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t) timeout_ms;
    for (;;) {
        while (next_frame(sp))
            if (sp->frame.type == type) return &sp->frame;
        if (sp->closed || now_ms() >= end) return NULL;
        heartbeat(sp);
        if (!fill(sp, 50)) return NULL;
    }
}

void ls_h_sp_idle(ls_h_sp_t *sp, int ms)
{
    uint64_t end = now_ms() + (uint64_t) ms;
    while (!sp->closed && now_ms() < end) {
        while (next_frame(sp))
            ;
        heartbeat(sp);
        fill(sp, 50);
    }
}

bool ls_h_sp_wait_closed(ls_h_sp_t *sp, int timeout_ms)
{
    ls_h_sp_idle(sp, timeout_ms);
    return sp->closed;
}

bool ls_h_sp_is_closed(const ls_h_sp_t *sp)
{
    return sp->closed;
}

void ls_h_sp_hello(ls_frame_t *f, const char *node, int db_count, const char *const names[],
                   const uint8_t (*dbids)[LS_PROTO_DBID_LEN])
{
    memset(f, 0, sizeof(*f));
    f->type = LS_FRAME_HELLO;
    f->hello.version_min = f->hello.version_max = 1;
    f->hello.purpose = LS_PURPOSE_SHIP;
    f->hello.features = LS_FEAT_CKSUM;
    f->hello.node = ls_proto_str(node);
    f->hello.db_count = (uint16_t) db_count;
    for (int i = 0; i < db_count; i++) {
        memcpy(f->hello.dbs[i].dbid, dbids[i], LS_PROTO_DBID_LEN);
        f->hello.dbs[i].name = ls_proto_str(names[i]);
    }
}

void ls_h_file_dbid(const char *path, uint8_t dbid[LS_PROTO_DBID_LEN])
{
    size_t len = 0;
    uint8_t *buf = ls_h_read_file(path, &len);
    cr_assert_not_null(buf, "cannot read %s", path);
    ls_gen_header_t h;
    cr_assert_eq(ls_gen_header_decode(buf, len, &h), 0, "%s: no valid generation header", path);
    memcpy(dbid, h.dbid, LS_PROTO_DBID_LEN);
    free(buf);
}

void ls_h_logs_dbid(const char *db_dir, const char *glob, uint8_t dbid[LS_PROTO_DBID_LEN])
{
    char cmd[1200], *out = NULL;
    snprintf(cmd, sizeof(cmd), "ls -1 %s/logs/%s | head -n 1", db_dir, glob);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 5000), 0, "no %s in %s/logs", glob, db_dir);
    out[strcspn(out, "\n")] = '\0';
    ls_h_file_dbid(out, dbid);
    free(out);
}
