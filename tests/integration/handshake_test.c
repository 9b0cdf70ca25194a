/* The handshake against a scripted peer (issue 13, defect 2): a HELLO that names a database twice
 * is answered with LS_EEXIST for the second entry and the passive keeps serving; a WELCOME that
 * lists a database or a feature the source did not offer is refused and the connection closed;
 * zstd level 0 means zstd's default level. Each test runs one real daemon of a plaintext pair
 * and plays the other node with tests/harness/scripted.h. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "daemons.h"
#include "harness.h"
#include "scripted.h"

static ls_h_pair_t pair;
static ls_h_sp_t *sp;

static void fini(void)
{
    ls_h_sp_close(sp);
    sp = NULL;
    ls_h_pair_fini(&pair);
}

TestSuite(handshake, .fini = fini, .timeout = 120);

static bool running(int node)
{
    return ls_h_wait(pair.pid[node], 0) < 0; /* not exited */
}

Test(handshake, duplicate_database_in_hello_is_refused_and_the_passive_keeps_serving)
{
    ls_h_pair_init(&pair, "hs-dupdb", &(ls_h_pair_opts_t){.plaintext = true});
    ls_h_node_start(&pair, LS_H_B, NULL);
    /* What repro/rogue.c's "dupdb" does: db1 twice, then data for the first entry. */
    const char *names[] = {"db1", "db1"};
    uint8_t ids[2][LS_PROTO_DBID_LEN];
    memset(ids[0], 0x11, LS_PROTO_DBID_LEN);
    memset(ids[1], 0x22, LS_PROTO_DBID_LEN);
    static ls_frame_t f;
    ls_h_sp_hello(&f, "node-a", 2, names, ids);
    sp = ls_h_sp_connect(pair.port);
    ls_h_sp_send(sp, &f);
    const ls_frame_t *w = ls_h_sp_expect(sp, LS_FRAME_WELCOME, 10000);
    cr_assert_not_null(w, "no WELCOME");
    cr_assert_eq(w->welcome.db_count, 2);
    cr_assert_eq(w->welcome.dbs[0].status, LS_DB_ACCEPTED);
    cr_assert_eq(w->welcome.dbs[1].status, LS_DB_REFUSED, "the second db1 is refused");
    cr_assert_eq(w->welcome.dbs[1].code, LS_EEXIST, "code %d", w->welcome.dbs[1].code);
    char reason[300];
    snprintf(reason, sizeof(reason), "%.*s", (int) w->welcome.dbs[1].reason.len,
             w->welcome.dbs[1].reason.ptr);
    cr_assert(ls_h_contains(reason, "db1") && ls_h_contains(reason, "twice"), "%s", reason);
    cr_assert_not_null(ls_h_sp_expect(sp, LS_FRAME_RESUME, 5000), "RESUME for the first entry");
    memset(&f, 0, sizeof(f));
    f.type = LS_FRAME_GEN_BEGIN;
    memcpy(f.gen_begin.dbid, ids[0], LS_PROTO_DBID_LEN);
    f.gen_begin.epoch = 1;
    f.gen_begin.generation = 1;
    f.gen_begin.size = 4096;
    ls_h_sp_send(sp, &f);
    static uint8_t data[4096];
    memset(&f, 0, sizeof(f));
    f.type = LS_FRAME_GEN_DATA;
    memcpy(f.gen_data.dbid, ids[0], LS_PROTO_DBID_LEN);
    f.gen_data.generation = 1;
    f.gen_data.len = 1000;
    f.gen_data.data = data;
    ls_h_sp_send(sp, &f);
    ls_h_sp_idle(sp, 1500); /* the receiver writes the chunk and returns its credit */
    cr_assert(running(LS_H_B), "the passive died on the duplicate entry");
    ls_h_sp_close(sp);
    sp = NULL;
    /* It goes on serving: the real source connects and the copy catches up. */
    ls_h_node_start(&pair, LS_H_A, NULL);
    ls_h_load(&pair, "--transactions 100 --records-per-txn 10 --value-size 400 --seed 21");
    cr_assert(ls_h_wait_caught_up(&pair, 60000));
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_stop(&pair, LS_H_B);
    cr_assert(ls_h_stores_equal(&pair));
}

/* node-a connects to the scripted node-b; the HELLO it sends is returned for the answer. */
static const ls_frame_t *accept_hello(void)
{
    cr_assert(ls_h_sp_accept(sp, 20000), "node-a did not connect");
    const ls_frame_t *h = ls_h_sp_expect(sp, LS_FRAME_HELLO, 10000);
    cr_assert_not_null(h, "no HELLO from node-a");
    return h;
}

/* A WELCOME accepting every database of HELLO h, as a correct node-b would. */
static void welcome_for(const ls_proto_hello_t *h, ls_frame_t *w)
{
    memset(w, 0, sizeof(*w));
    w->type = LS_FRAME_WELCOME;
    w->welcome.version = 1;
    w->welcome.features = LS_FEAT_CKSUM;
    w->welcome.node = ls_proto_str("node-b");
    w->welcome.db_count = h->db_count;
    for (int i = 0; i < h->db_count; i++) {
        memcpy(w->welcome.dbs[i].dbid, h->dbs[i].dbid, LS_PROTO_DBID_LEN);
        w->welcome.dbs[i].status = LS_DB_ACCEPTED;
    }
}

/* node-a closes the connection and db1's copy on node-a says why. */
static void assert_refused(const char *what, const char *words)
{
    cr_assert(ls_h_sp_wait_closed(sp, 10000), "node-a kept a connection whose WELCOME %s", what);
    bool said = false;
    for (int i = 0; i < 200 && !said; i++) {
        cJSON *a = ls_h_status(&pair, LS_H_A);
        said = a && ls_h_contains(ls_h_str(a, "reason"), words);
        if (!said && i == 199) fprintf(stderr, "reason: %s\n", a ? ls_h_str(a, "reason") : "");
        cJSON_Delete(a);
        if (!said) usleep(20000);
    }
    cr_assert(said, "node-a's status does not say the WELCOME %s (\"%s\")", what, words);
    ls_h_sp_close(sp);
}

Test(handshake, welcome_with_a_database_or_feature_not_offered_is_refused)
{
    ls_h_pair_init(&pair, "hs-welcome", &(ls_h_pair_opts_t){.plaintext = true});
    ls_h_load(&pair, "--transactions 20 --seed 22");
    int port = pair.port; /* node-b's address in node-a's configuration: the scripted node-b */
    sp = ls_h_sp_listen(&port);
    ls_h_node_start(&pair, LS_H_A, NULL);
    static ls_frame_t w;
    uint8_t dbid[LS_PROTO_DBID_LEN];
    /* 1: a database that was not offered (the count is right). */
    const ls_frame_t *h = accept_hello();
    cr_assert_eq(h->hello.db_count, 1);
    memcpy(dbid, h->hello.dbs[0].dbid, LS_PROTO_DBID_LEN);
    welcome_for(&h->hello, &w);
    memset(w.welcome.dbs[0].dbid, 0x5a, LS_PROTO_DBID_LEN);
    ls_h_sp_send(sp, &w);
    assert_refused("names a database not offered", "not offered");
    /* 2: compression, which node-a did not offer. */
    sp = ls_h_sp_listen(&port);
    h = accept_hello();
    cr_assert_eq(h->hello.features & LS_FEAT_ZSTD, 0u);
    welcome_for(&h->hello, &w);
    w.welcome.features |= LS_FEAT_ZSTD;
    w.welcome.zstd_level = 3;
    ls_h_sp_send(sp, &w);
    assert_refused("accepts a feature not offered", "features");
    /* 3: a correct WELCOME: node-a ships. */
    sp = ls_h_sp_listen(&port);
    h = accept_hello();
    welcome_for(&h->hello, &w);
    ls_h_sp_send(sp, &w);
    static ls_frame_t r;
    r.type = LS_FRAME_RESUME;
    memcpy(r.resume.dbid, dbid, LS_PROTO_DBID_LEN);
    r.resume.next_generation = 1;
    ls_h_sp_send(sp, &r);
    const ls_frame_t *b = ls_h_sp_expect(sp, LS_FRAME_GEN_BEGIN, 10000);
    cr_assert_not_null(b, "node-a ships after a correct WELCOME");
    cr_assert_eq(b->gen_begin.generation, 1);
    cr_assert(running(LS_H_A));
}

Test(handshake, zstd_level_zero_means_the_default_level)
{
    ls_h_pair_init(&pair, "hs-zstd0", &(ls_h_pair_opts_t){.plaintext = true});
    ls_h_node_start(&pair, LS_H_B, NULL);
    const char *names[] = {"db1"};
    uint8_t ids[1][LS_PROTO_DBID_LEN];
    memset(ids[0], 0x33, LS_PROTO_DBID_LEN);
    static ls_frame_t f;
    ls_h_sp_hello(&f, "node-a", 1, names, ids);
    f.hello.features |= LS_FEAT_ZSTD;
    f.hello.zstd_level = 0; /* PROTOCOL.md: zstd's default */
    sp = ls_h_sp_connect(pair.port);
    ls_h_sp_send(sp, &f);
    const ls_frame_t *w = ls_h_sp_expect(sp, LS_FRAME_WELCOME, 10000);
    cr_assert_not_null(w);
    cr_assert(w->welcome.features & LS_FEAT_ZSTD, "zstd accepted");
    cr_assert_eq(w->welcome.zstd_level, LS_PROTO_ZSTD_LEVEL_DEFAULT,
                 "WELCOME names the level both use: %d", w->welcome.zstd_level);
    cr_assert_eq(w->welcome.dbs[0].status, LS_DB_ACCEPTED);
    cr_assert_not_null(ls_h_sp_expect(sp, LS_FRAME_RESUME, 5000), "the connection goes on");
    ls_h_sp_idle(sp, 1000);
    cr_assert(!ls_h_sp_is_closed(sp), "the passive closed a connection that asked for level 0");
    cr_assert(running(LS_H_B));
}
