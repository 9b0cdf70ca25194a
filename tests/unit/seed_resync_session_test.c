/* The incremental resync's sessions alone, frame by frame (PROTOCOL.md §10): the server
 * assembles CHAIN_REQ and RESYNC requests and refuses out-of-turn ones; the client needs a
 * resync source, pages the chain and splits the keys. Split from seed_resync_test.c; helpers in
 * seed_resync_test_util.h. */

#include <criterion/criterion.h>

#include "seed_resync_test_util.h"

/* The server session's requests: CHAIN_REQ then RESYNC frames (split fixed by the first, keys
 * appended, complete without MORE; too many keys: too_many); RESYNC frames naming another split,
 * or a second CHAIN_REQ before the CHAIN, are protocol errors. */
Test(seed_resync, server_session_assembles_the_requests)
{
    uint8_t id[LS_DBID_LEN] = {7};
    ls_seed_server_options_t so = {.resync = true, .max_keys_bytes = 10};
    ls_seed_server_t *srv;
    cr_assert_eq(ls_seed_server_new(&so, id, &srv), 0);
    cr_assert_eq(ls_seed_server_state(srv), LS_SEED_SRV_REQUEST);
    ls_frame_t f = {.type = LS_FRAME_CHAIN_REQ}, out;
    memcpy(f.chain_req.dbid, id, LS_DBID_LEN);
    f.chain_req.from_generation = 3;
    char err[256];
    cr_assert_eq(ls_seed_server_frame(srv, &f, err, sizeof(err)), 0, "%s", err);
    ls_seed_server_req_t rq;
    cr_assert(ls_seed_server_request(srv, &rq));
    cr_assert(rq.kind == LS_SEED_REQ_CHAIN && rq.from == 3);
    cr_assert(!ls_seed_server_request(srv, &rq), "once");
    cr_assert(!ls_seed_server_next(srv, &out), "nothing before the node answers");
    ls_proto_link_t l[2] = {{.epoch = 1, .generation = 3}, {.epoch = 2, .generation = 4}};
    cr_assert_eq(ls_seed_server_chain(srv, 2, "node-b", l, 2), 0);
    cr_assert(ls_seed_server_next(srv, &out));
    cr_assert(out.type == LS_FRAME_CHAIN && out.chain.count == 2 && out.chain.epoch == 2);
    ls_seed_server_sent(srv);
    cr_assert(!ls_seed_server_next(srv, &out));

    static const uint8_t k1[] = {2, 0, 'a', 'b'}, k2[] = {3, 0, 'c', 'd', 'e', 1, 0, 'z'};
    ls_frame_t r = {.type = LS_FRAME_RESYNC};
    memcpy(r.resync.dbid, id, LS_DBID_LEN);
    r.resync = (ls_proto_resync_t){.flags = LS_RESYNC_MORE,
                                   .split_generation = 3,
                                   .split_epoch = 1,
                                   .keys = k1,
                                   .keys_len = sizeof(k1)};
    memcpy(r.resync.dbid, id, LS_DBID_LEN);
    cr_assert_eq(ls_seed_server_frame(srv, &r, err, sizeof(err)), 0, "%s", err);
    cr_assert(!ls_seed_server_request(srv, &rq), "not complete yet");
    r.resync.flags = 0;
    r.resync.keys = k2;
    r.resync.keys_len = sizeof(k2);
    cr_assert_eq(ls_seed_server_frame(srv, &r, err, sizeof(err)), 0, "%s", err);
    cr_assert(ls_seed_server_request(srv, &rq));
    cr_assert(rq.kind == LS_SEED_REQ_RESYNC && rq.resync.split_generation == 3);
    cr_assert(rq.resync.too_many, "12 bytes of keys, 10 allowed: a full seed");
    cr_assert_eq(ls_seed_server_state(srv), LS_SEED_SRV_SNAPSHOT, "the node starts the worker");
    ls_seed_server_free(srv);

    /* different splits; a CHAIN_REQ before the CHAIN */
    so.max_keys_bytes = 0;
    cr_assert_eq(ls_seed_server_new(&so, id, &srv), 0);
    r.resync.flags = LS_RESYNC_MORE;
    cr_assert_eq(ls_seed_server_frame(srv, &r, err, sizeof(err)), 0, "%s", err);
    r.resync.split_generation = 4;
    cr_assert_eq(ls_seed_server_frame(srv, &r, err, sizeof(err)), LS_EPROTO);
    cr_assert(strstr(err, "different splits"), "%s", err);
    cr_assert_eq(ls_seed_server_state(srv), LS_SEED_SRV_FAILED);
    ls_seed_server_free(srv);
    cr_assert_eq(ls_seed_server_new(&so, id, &srv), 0);
    cr_assert_eq(ls_seed_server_frame(srv, &f, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ls_seed_server_frame(srv, &f, err, sizeof(err)), LS_EPROTO);
    cr_assert(strstr(err, "CHAIN_REQ before the last CHAIN"), "%s", err);
    ls_seed_server_free(srv);

    /* a seed server (no resync) refuses the resync frames */
    so.resync = false;
    cr_assert_eq(ls_seed_server_new(&so, id, &srv), 0);
    cr_assert_eq(ls_seed_server_frame(srv, &f, err, sizeof(err)), LS_EPROTO);
    cr_assert(strstr(err, "unexpected CHAIN_REQ"), "%s", err);
    ls_seed_server_free(srv);
}

/* A resync client facing a source that did not accept LS_FEAT_RESYNC (an older node) fails with
 * a message that says to seed instead; a chain without the split fails too. */
Test(seed_resync, client_session_needs_a_resync_source)
{
    ls_seed_client_options_t co = {.source = "node-b", .window = WIN, .resync = true};
    ls_seed_client_t *cli;
    cr_assert_eq(ls_seed_client_new(&co, &cli), 0);
    static ls_frame_t h, w;
    static const uint8_t zero[LS_DBID_LEN];
    ls_seed_client_hello(cli, "node-a", "db1", zero, &h);
    memset(&w, 0, sizeof(w));
    w.type = LS_FRAME_WELCOME;
    w.welcome.version = LS_PROTO_VERSION_EPOCH;
    w.welcome.node = ls_proto_str("node-b");
    w.welcome.db_count = 1;
    w.welcome.dbs[0].dbid[0] = 7;
    w.welcome.dbs[0].status = LS_DB_ACCEPTED;
    ls_seed_client_frame(cli, &w, 1);
    int code;
    cr_assert_eq(ls_seed_client_state(cli), LS_SEED_CLI_FAILED);
    const char *msg = ls_seed_client_error(cli, &code);
    cr_assert_eq(code, LS_EUNSUPPORTED);
    cr_assert(strstr(msg, "cannot resync (protocol version 3") && strstr(msg, "seed this copy"),
              "%s", msg);
    ls_seed_client_free(cli);

    cr_assert_eq(ls_seed_client_new(&co, &cli), 0);
    ls_seed_client_hello(cli, "node-a", "db1", zero, &h);
    w.welcome.version = LS_PROTO_VERSION_RESYNC;
    w.welcome.features = LS_FEAT_RESYNC;
    ls_seed_client_frame(cli, &w, 1);
    cr_assert_eq(ls_seed_client_state(cli), LS_SEED_CLI_CHAIN);
    ls_seed_act_t a;
    cr_assert(ls_seed_client_action(cli, &a));
    cr_assert(a.kind == LS_SEED_ACT_SEND && a.frame.type == LS_FRAME_CHAIN_REQ);
    cr_assert_eq(a.frame.chain_req.from_generation, 1);
    ls_proto_link_t l[1] = {{.epoch = 2, .generation = 9}};
    ls_frame_t c = {.type = LS_FRAME_CHAIN};
    c.chain = (ls_proto_chain_t){.epoch = 2, .count = 1, .links = l};
    ls_seed_client_frame(cli, &c, 2);
    cr_assert_eq(ls_seed_client_state(cli), LS_SEED_CLI_SPLIT);
    cr_assert_eq(ls_seed_client_resync(cli, 3, NULL, 0), LS_EDIVERGED);
    cr_assert_eq(ls_seed_client_state(cli), LS_SEED_CLI_FAILED);
    cr_assert(strstr(ls_seed_client_error(cli, NULL), "split generation 3"));
    ls_seed_client_free(cli);
}

/* A full CHAIN (1024 entries) makes the client ask again after its last entry; keys beyond one
 * frame go in several RESYNC frames, whole keys each, MORE on all but the last. */
Test(seed_resync, client_pages_the_chain_and_splits_the_keys)
{
    ls_seed_client_options_t co = {
        .source = "node-b", .window = WIN, .resync = true, .chain_from = 1};
    ls_seed_client_t *cli;
    cr_assert_eq(ls_seed_client_new(&co, &cli), 0);
    static ls_frame_t h, w, c;
    static const uint8_t zero[LS_DBID_LEN];
    ls_seed_client_hello(cli, "node-a", "db1", zero, &h);
    w.type = LS_FRAME_WELCOME;
    w.welcome.version = LS_PROTO_VERSION_RESYNC;
    w.welcome.features = LS_FEAT_RESYNC;
    w.welcome.node = ls_proto_str("node-b");
    w.welcome.db_count = 1;
    w.welcome.dbs[0].status = LS_DB_ACCEPTED;
    ls_seed_client_frame(cli, &w, 1);
    ls_seed_act_t a;
    cr_assert(ls_seed_client_action(cli, &a) && a.frame.type == LS_FRAME_CHAIN_REQ);
    static ls_proto_link_t l[LS_PROTO_CHAIN_MAX];
    for (size_t i = 0; i < LS_PROTO_CHAIN_MAX; i++)
        l[i] = (ls_proto_link_t){.epoch = 1, .generation = i + 1};
    c.type = LS_FRAME_CHAIN;
    c.chain = (ls_proto_chain_t){.epoch = 2, .count = LS_PROTO_CHAIN_MAX, .links = l};
    ls_seed_client_frame(cli, &c, 2);
    cr_assert_eq(ls_seed_client_state(cli), LS_SEED_CLI_CHAIN, "a full frame: maybe more");
    cr_assert(ls_seed_client_action(cli, &a) && a.frame.type == LS_FRAME_CHAIN_REQ);
    cr_assert_eq(a.frame.chain_req.from_generation, LS_PROTO_CHAIN_MAX + 1);
    l[0] = (ls_proto_link_t){.epoch = 2, .generation = LS_PROTO_CHAIN_MAX + 1};
    c.chain.count = 1;
    ls_seed_client_frame(cli, &c, 3);
    cr_assert_eq(ls_seed_client_state(cli), LS_SEED_CLI_SPLIT);
    const ls_proto_link_t *got;
    size_t n;
    uint32_t epoch;
    const char *active;
    ls_seed_client_chain(cli, &got, &n, &epoch, &active);
    cr_assert(n == LS_PROTO_CHAIN_MAX + 1 && epoch == 2 && got[n - 1].epoch == 2);

    /* 1200 keys of 500 bytes: 602400 bytes, three frames of at most 256 KiB */
    size_t nkeys = 1200, len = nkeys * 502;
    uint8_t *keys = malloc(len);
    for (size_t i = 0; i < nkeys; i++) {
        keys[i * 502] = 500 & 0xff;
        keys[i * 502 + 1] = 500 >> 8;
        memset(keys + i * 502 + 2, 'a' + (int) (i % 26), 500);
    }
    cr_assert_eq(ls_seed_client_resync(cli, 1000, keys, len), 0);
    free(keys);
    size_t frames = 0, bytes = 0;
    while (ls_seed_client_action(cli, &a)) {
        cr_assert(a.kind == LS_SEED_ACT_SEND && a.frame.type == LS_FRAME_RESYNC);
        cr_assert_eq(a.frame.resync.split_generation, 1000);
        cr_assert_eq(a.frame.resync.keys_len % 502, 0, "whole keys");
        cr_assert_leq(a.frame.resync.keys_len, 256 * 1024);
        static uint8_t buf[LS_FRAME_HEADER_SIZE + 300 * 1024];
        cr_assert_gt(ls_frame_encode(&a.frame, buf, sizeof(buf)), 0);
        bytes += a.frame.resync.keys_len;
        frames++;
        cr_assert_eq((a.frame.resync.flags & LS_RESYNC_MORE) != 0, bytes < len);
    }
    cr_assert_eq(frames, 3);
    cr_assert_eq(bytes, len);
    cr_assert_eq(ls_seed_client_state(cli), LS_SEED_CLI_SNAPSHOT);
    ls_seed_client_free(cli);
}
