/* node: the link's send queue bound (engine/node/link.c, NODE_LINK_SEND_HWM; docs/SHIP.md "The
 * active's memory"). A link to node-b connects through ls__node_link_connect, the function that
 * chooses the bound, to a plain socket of this test that does not read; GEN_DATA chunks of
 * NODE_CHUNK bytes are offered through ls__node_link_send, as a shipper's machine does, the loop
 * running between offers. Without compression the link stops queueing at 1 MiB (+ one frame),
 * and takes chunks again once the peer reads; with compression configured the connection keeps
 * the transport's 8 MiB default. The HELLO offers a stand-in shipper's database (an unattached
 * machine); the peer never answers it, so the WELCOME's effect is set by hand: the test is the
 * sender, the machine sends nothing. Out of descriptors, a new link is not made and says why. */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "node/netpath.h"

#define MiB        (1024ull * 1024)
#define FRAME_WIRE (NODE_CHUNK + LS_FRAME_HEADER_SIZE + 1024) /* a chunk's frame on the wire */

/* heartbeat_timeout 60s: the peer neither reads nor sends while the link fills */
#define CONF                                                                                       \
    "[node]\nname = node-a\ndata_dir = %s\n[tls]\ninsecure_plaintext = true\n"                     \
    "[target node-b]\nnetwork = repl 127.0.0.1:%d\nheartbeat_timeout = 60s\n%s"                    \
    "[database db1]\nrole = active\ntargets = node-b\n"

static struct {
    char *dir;
    ls_config_t *cfg;
    uv_loop_t loop;
    ls_node_t *n;
    link_t *l;
    active_t db; /* the stand-in shipper's database (offered in the HELLO) */
    shipper_t s;
    int lfd;  /* the test's listening socket */
    int peer; /* the accepted connection: not read until drain() */
    pthread_t drainer;
    bool draining;
    atomic_ullong drained; /* bytes the peer read */
    uint8_t chunk[NODE_CHUNK];
} W;

static int ship_send(void *ctx, const ls_frame_t *f)
{
    (void) ctx;
    (void) f;
    return LS_EBUSY; /* the stand-in machine is never connected: nothing goes this way */
}

static int ship_action(void *ctx, const ls_ship_action_t *a)
{
    (void) ctx;
    (void) a;
    return 0;
}

static int listen_local(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    int small = 64 * 1024; /* the accepted socket's receive buffer: the kernel absorbs little */
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, 4), 0);
    return fd;
}

static int port_of(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    cr_assert_eq(getsockname(fd, (struct sockaddr *) &a, &len), 0);
    return ntohs(a.sin_port);
}

static void load_config(const char *target_extra)
{
    char text[1024], path[512], err[512];
    snprintf(text, sizeof(text), CONF, W.dir, port_of(W.lfd), target_extra);
    snprintf(path, sizeof(path), "%s/node.conf", W.dir);
    cr_assert_eq(ls_h_write_file(path, text, strlen(text)), 0);
    cr_assert_eq(ls_config_load(path, &W.cfg, err, sizeof(err)), 0, "%s", err);
}

/* The link's connection is made and ready, the peer accepted, the stand-in on the connection. */
static void connect_link(void)
{
    cr_assert_eq(ls__node_link_connect(W.l, 0, &W.l->conn), 0);
    uint64_t end = ls_mono_ns() + 10 * 1000000000ull;
    W.peer = -1;
    while (W.l->conn && (W.peer < 0 || !ls_conn_is_ready(W.l->conn)) && ls_mono_ns() < end) {
        uv_run(&W.loop, UV_RUN_NOWAIT);
        if (W.peer < 0) W.peer = accept4(W.lfd, NULL, NULL, SOCK_CLOEXEC);
        usleep(1000);
    }
    cr_assert(W.peer >= 0 && W.l->conn && ls_conn_is_ready(W.l->conn), "not connected");
    /* The HELLO went (on_ready) with the stand-in at index 0. The WELCOME's effect, by hand:
     * ready, no connection credit (the pump sends no chunk of its own). */
    cr_assert_eq(W.l->nidx, 1);
    cr_assert_eq(W.l->by_idx[0], &W.s);
    W.l->ready = true;
}

/* A node of W's configuration with room for one link, none made yet. */
static void new_node(const char *target_extra)
{
    memset(&W, 0, sizeof(W));
    W.dir = ls_h_tmpdir("node_link");
    W.lfd = listen_local();
    load_config(target_extra);
    cr_assert_eq(uv_loop_init(&W.loop), 0);
    ls_node_options_t o = {.loop = &W.loop, .cfg = W.cfg};
    W.n = ls_node_new(&o);
    cr_assert(W.n);
    W.n->links = calloc(1, sizeof(link_t));
    W.n->links_cap = 1;
}

static void setup(const char *target_extra)
{
    new_node(target_extra);
    int werr;
    W.l = ls__node_link_for(W.n, "node-b", &werr);
    cr_assert(W.l);
    ls_ship_options_t so = {
        .database = "db1", .target = "node-b", .send_cb = ship_send, .action_cb = ship_action};
    W.db.cfg = ls_config_database(W.cfg, "db1");
    W.db.have_dbid = true;
    memset(W.db.dbid, 0x5a, sizeof(W.db.dbid));
    W.s.db = &W.db;
    W.s.link = W.l;
    W.s.m = ls_ship_new(&so, ls_now_ns());
    cr_assert(W.s.m);
    ls__node_link_add(W.l, &W.s);
    for (size_t i = 0; i < sizeof(W.chunk); i++)
        W.chunk[i] = (uint8_t) (i * 2654435761u >> 13);
    connect_link();
}

static void *drain_main(void *arg)
{
    (void) arg;
    static uint8_t buf[256 * 1024];
    ssize_t r;
    while ((r = read(W.peer, buf, sizeof(buf))) > 0 || (r < 0 && errno == EINTR))
        if (r > 0) atomic_fetch_add(&W.drained, (unsigned long long) r);
    return NULL;
}

/* From now on the peer reads everything (a thread of its own) until the link closes. */
static void drain(void)
{
    cr_assert_eq(pthread_create(&W.drainer, NULL, drain_main, NULL), 0);
    W.draining = true;
}

static void teardown(void)
{
    ls_node_stop(W.n);
    if (!W.draining) drain(); /* the link's close reaches the peer: the thread ends */
    uv_run(&W.loop, UV_RUN_DEFAULT);
    pthread_join(W.drainer, NULL);
    close(W.peer);
    close(W.lfd);
    ls_ship_free(W.s.m);
    ls_node_free(W.n);
    cr_assert_eq(uv_loop_close(&W.loop), 0);
    ls_config_free(W.cfg);
    ls_h_rmtree_free(W.dir);
}

static void setup_plain(void)
{
    setup("");
}

static void setup_zstd(void)
{
    setup("compression = zstd\n");
}

static size_t queued_max(void)
{
    ls_conn_stats_t st;
    ls_conn_stats(W.l->conn, &st);
    return st.send_queued_max;
}

/* One GEN_DATA chunk offered as the stand-in's machine would: 0 or LS_EBUSY. */
static int offer(uint64_t n)
{
    ls_frame_t f = {.type = LS_FRAME_GEN_DATA};
    f.gen_data.generation = 1;
    f.gen_data.offset = n * NODE_CHUNK;
    f.gen_data.data = W.chunk;
    f.gen_data.len = NODE_CHUNK;
    int rc = ls__node_link_send(W.l, &W.s, &f);
    cr_assert(rc == 0 || rc == LS_EBUSY, "%s", ls_err_name(rc));
    return rc;
}

/* Offers chunks, the loop running between offers, until refused for quiet_ms in a row (the peer
 * not reading) or until `want` bytes were taken (0: no such goal). Returns the bytes taken. */
static uint64_t offer_until(uint64_t want, int quiet_ms)
{
    static uint64_t n; /* chunks taken so far in the test */
    uint64_t taken = 0, last = ls_mono_ns(), end = last + 30 * 1000000000ull;
    while (ls_mono_ns() - last < (uint64_t) quiet_ms * 1000000u && (!want || taken < want)) {
        cr_assert_lt(ls_mono_ns(), end, "the link took %llu bytes and goes on taking",
                     (unsigned long long) taken);
        if (offer(n) == 0) {
            n++;
            taken += NODE_CHUNK;
            last = ls_mono_ns();
        } else {
            usleep(500);
        }
        uv_run(&W.loop, UV_RUN_NOWAIT);
    }
    return taken;
}

Test(node_link, a_peer_that_does_not_read_stops_the_queue_at_one_mib_then_drains,
     .init = setup_plain, .fini = teardown, .timeout = 60)
{
    uint64_t taken = offer_until(0, 500);
    size_t max = queued_max();
    fprintf(stderr, "link without compression: %llu KiB taken, queued max %zu (bound %u)\n",
            (unsigned long long) (taken / 1024), max, NODE_LINK_SEND_HWM);
    cr_assert_leq(max, NODE_LINK_SEND_HWM + FRAME_WIRE, "queued %zu > %u + one frame", max,
                  NODE_LINK_SEND_HWM);
    cr_assert_geq(max, NODE_LINK_SEND_HWM, "refused before the bound: queued max %zu", max);
    cr_assert_lt(taken, LS_CONN_SEND_HWM_DEFAULT, "the bound + what the kernel holds: %llu",
                 (unsigned long long) taken);
    cr_assert_eq(offer(1000000), LS_EBUSY, "still refused while the peer does not read");
    /* The peer reads: the link takes chunks again, and the bound holds while they flow. */
    drain();
    uint64_t more = offer_until(16 * MiB, 5000);
    cr_assert_geq(more, 16 * MiB, "only %llu bytes taken after the peer read",
                  (unsigned long long) more);
    cr_assert_gt(atomic_load(&W.drained), taken, "the peer read what was queued and more");
    max = queued_max();
    cr_assert_leq(max, NODE_LINK_SEND_HWM + FRAME_WIRE, "queued %zu while flowing", max);
}

Test(node_link, a_compressed_link_keeps_the_transports_default_bound, .init = setup_zstd,
     .fini = teardown, .timeout = 60)
{
    cr_assert_gt(W.cfg->targets[0].compression_level, 0);
    uint64_t taken = offer_until(0, 500);
    size_t max = queued_max();
    fprintf(stderr, "link with compression: %llu KiB taken, queued max %zu (bound %u)\n",
            (unsigned long long) (taken / 1024), max, LS_CONN_SEND_HWM_DEFAULT);
    cr_assert_gt(max, NODE_LINK_SEND_HWM + FRAME_WIRE, "queued max %zu: the 1 MiB bound applied",
                 max);
    cr_assert_geq(max, LS_CONN_SEND_HWM_DEFAULT, "refused before 8 MiB: queued max %zu", max);
    cr_assert_leq(max, LS_CONN_SEND_HWM_DEFAULT + FRAME_WIRE, "queued %zu > 8 MiB + one frame",
                  max);
}

/* Out of descriptors (RLIMIT_NOFILE at the next free one), a new link cannot make its wake-up:
 * ls__node_link_for returns NULL with EMFILE and counts nothing (an activation refuses on it,
 * activate.c), and makes the link once a descriptor is free. */
Test(node_link, out_of_descriptors_a_new_link_is_not_made, .timeout = 30)
{
    new_node("");
    uint64_t old;
    cr_assert(ls_h_fd_limit(0, 0, &old)); /* the next descriptor is refused */
    int werr = 0;
    cr_assert_null(ls__node_link_for(W.n, "node-b", &werr));
    cr_assert(ls_h_fd_unlimit(0, old));
    cr_assert_eq(werr, EMFILE);
    cr_assert_eq(W.n->nlinks, 0, "nothing counted");
    W.l = ls__node_link_for(W.n, "node-b", &werr);
    cr_assert_not_null(W.l);
    cr_assert_eq(werr, 0);
    cr_assert_eq(W.n->nlinks, 1);
    ls_node_stop(W.n);
    uv_run(&W.loop, UV_RUN_DEFAULT);
    close(W.lfd);
    ls_node_free(W.n);
    cr_assert_eq(uv_loop_close(&W.loop), 0);
    ls_config_free(W.cfg);
    ls_h_rmtree_free(W.dir);
}
