/*
 * proto: the fuzz seed corpus (tests/fuzz/corpus/frame_decode/) is exactly the current encoding
 * of each sample (LS_PROTO_WRITE_CORPUS=1 rewrites it); negotiation and WELCOME checks; and the
 * later frames' own checks: RE_OFFER, COPY_STATE, EPOCH, CHAIN and RESYNC, BLOCK, GEN_TAIL and
 * the switchover frames. Samples and comparisons in proto_test_util.h.
 */
#include "proto_test_util.h"

/* The checked-in fuzz seeds are the current encodings (rewritten with LS_PROTO_WRITE_CORPUS=1). */
Test(proto, fuzz_seed_corpus_is_current)
{
    static ls_frame_t f;
    bool write = getenv("LS_PROTO_WRITE_CORPUS") != NULL;
    for (size_t i = 0; i < sizeof(all_types); i++) {
        char path[1024], lower[32];
        const char *name = ls_frame_type_name(all_types[i]);
        size_t k = 0;
        for (; name[k] && k < sizeof(lower) - 1; k++)
            lower[k] = (char) tolower((unsigned char) name[k]);
        lower[k] = 0;
        snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/frame_decode/%s.bin", LS_SOURCE_DIR,
                 lower);
        size_t len, have;
        uint8_t *buf = encode_sample(all_types[i], &f, &len);
        if (write) cr_assert_eq(ls_h_write_file(path, buf, len), 0, "%s", path);
        uint8_t *disk = ls_h_read_file(path, &have);
        cr_assert(disk, "%s missing: run with LS_PROTO_WRITE_CORPUS=1", path);
        cr_assert(have == len && memcmp(disk, buf, len) == 0,
                  "%s is stale: run with LS_PROTO_WRITE_CORPUS=1", path);
        free(disk);
        free(buf);
    }
}

/* RE_OFFER (version 2): unknown flags and an over-long reason are refused. */
Test(proto, re_offer_refuses_unknown_flags_and_long_reasons)
{
    static ls_frame_t f, g;
    static char reason[LS_PROTO_REASON_MAX + 2];
    char err[256];
    uint8_t buf[2048];
    sample(LS_FRAME_RE_OFFER, &f);
    f.re_offer.flags = 0x4;
    ssize_t n = ls_frame_encode(&f, buf, sizeof(buf));
    cr_assert_eq(n, LS_EINVAL, "the encoder refuses an unknown flag");
    f.re_offer.flags = LS_REOFFER_HOLD;
    n = ls_frame_encode(&f, buf, sizeof(buf));
    cr_assert_gt(n, 0);
    buf[LS_FRAME_HEADER_SIZE + LS_PROTO_DBID_LEN] |= 0x80; /* flags, little-endian low byte */
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), LS_EPROTO);
    cr_assert(strstr(err, "RE_OFFER") && strstr(err, "flags"), "%s", err);
    memset(reason, 'r', LS_PROTO_REASON_MAX + 1);
    f.re_offer.reason = ls_proto_str(reason);
    cr_assert_eq(ls_frame_encode(&f, buf, sizeof(buf)), LS_EINVAL);
    cr_assert_str_eq(ls_frame_type_name(LS_FRAME_RE_OFFER), "RE_OFFER");
}

/* COPY_STATE's LS_COPY_APPLY (with LS_FEAT_APPLY) round-trips; the next bit is refused both ways.
 */
Test(proto, copy_state_carries_apply_and_refuses_unknown_flags)
{
    static ls_frame_t f, g;
    char err[256];
    uint8_t buf[2048];
    sample(LS_FRAME_COPY_STATE, &f);
    f.copy_state.flags = LS_COPY_APPLY | LS_COPY_SUSPENDED;
    ssize_t n = ls_frame_encode(&f, buf, sizeof(buf));
    cr_assert_gt(n, 0);
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(g.copy_state.flags, LS_COPY_APPLY | LS_COPY_SUSPENDED);
    f.copy_state.flags = 0x8;
    cr_assert_eq(ls_frame_encode(&f, buf, sizeof(buf)), LS_EINVAL, "the encoder refuses it");
    buf[LS_FRAME_HEADER_SIZE + LS_PROTO_DBID_LEN] |= 0x8; /* flags, little-endian low byte */
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), LS_EPROTO);
    cr_assert(strstr(err, "COPY_STATE") && strstr(err, "flags"), "%s", err);
}

/* PROTOCOL.md: a HELLO's zstd_level 0 is zstd's default; WELCOME names the level both use. */
Test(proto, negotiation_turns_zstd_level_zero_into_the_default)
{
    static ls_frame_t f;
    ls_proto_choice_t c;
    sample(LS_FRAME_HELLO, &f);
    f.hello.zstd_level = 0;
    ls_proto_offer_t ours = {.features = LS_FEAT_ZSTD};
    cr_assert_eq(ls_proto_negotiate(&f.hello, &ours, &c, NULL, NULL, 0), 0);
    cr_assert_eq(c.zstd_level, LS_PROTO_ZSTD_LEVEL_DEFAULT);
    cr_assert_eq(ls_proto_zstd_level(0), LS_PROTO_ZSTD_LEVEL_DEFAULT);
    cr_assert_eq(ls_proto_zstd_level(-5), -5);
}

/* The client's checks of a WELCOME: version in range, features offered, the same databases. */
Test(proto, welcome_check_refuses_what_was_not_offered)
{
    static ls_frame_t h, w;
    char msg[256];
    sample(LS_FRAME_HELLO, &h);
    memset(&w, 0, sizeof(w));
    w.type = LS_FRAME_WELCOME;
    w.welcome.version = h.hello.version_min;
    w.welcome.features = h.hello.features & LS_FEAT_CKSUM;
    w.welcome.db_count = h.hello.db_count;
    for (int i = 0; i < h.hello.db_count; i++)
        memcpy(w.welcome.dbs[i].dbid, h.hello.dbs[i].dbid, LS_PROTO_DBID_LEN);
    cr_assert_eq(ls_proto_welcome_check(&h.hello, &w.welcome, true, msg, sizeof(msg)), 0);
    w.welcome.version = h.hello.version_max + 1;
    cr_assert_eq(ls_proto_welcome_check(&h.hello, &w.welcome, true, msg, sizeof(msg)), LS_EPROTO);
    cr_assert(strstr(msg, "version"), "%s", msg);
    w.welcome.version = h.hello.version_min;
    w.welcome.features = h.hello.features | 0x80;
    cr_assert_eq(ls_proto_welcome_check(&h.hello, &w.welcome, true, msg, sizeof(msg)), LS_EPROTO);
    cr_assert(strstr(msg, "features"), "%s", msg);
    w.welcome.features = 0;
    w.welcome.dbs[0].dbid[0] ^= 1;
    cr_assert_eq(ls_proto_welcome_check(&h.hello, &w.welcome, true, msg, sizeof(msg)), LS_EPROTO);
    cr_assert(strstr(msg, "not offered"), "%s", msg);
    cr_assert_eq(ls_proto_welcome_check(&h.hello, &w.welcome, false, msg, sizeof(msg)), 0,
                 "a seed's WELCOME may name the id the HELLO left out");
    w.welcome.db_count = (uint16_t) (h.hello.db_count + 1);
    cr_assert_eq(ls_proto_welcome_check(&h.hello, &w.welcome, false, msg, sizeof(msg)), LS_EPROTO);
}

/* EPOCH (version 3): epoch 0 does not exist; first generation 0 means "not known"; the
 * active's name is bounded. */
Test(proto, epoch_refuses_zero_epoch_and_long_names)
{
    static ls_frame_t f, g;
    static char name[LS_PROTO_NODE_MAX + 2];
    char err[256];
    uint8_t buf[512];
    cr_assert_gt(LS_PROTO_VERSION_MAX, LS_PROTO_VERSION_EPOCH);
    sample(LS_FRAME_EPOCH, &f);
    ssize_t n = ls_frame_encode(&f, buf, sizeof(buf));
    cr_assert_eq(n, LS_FRAME_HEADER_SIZE + 30 + 6, "16 + 4 + 8 + 2 + name");
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), 0, "%s", err);
    frame_eq(&f, &g);
    memset(buf + LS_FRAME_HEADER_SIZE + LS_PROTO_DBID_LEN, 0, 4); /* epoch 0 */
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), LS_EPROTO);
    cr_assert(strstr(err, "EPOCH: field 'epoch' at offset 16: epoch 0 does not exist"), "%s", err);
    f.epoch.first_generation = 0;
    f.epoch.active = ls_proto_str("");
    n = ls_frame_encode(&f, buf, sizeof(buf));
    cr_assert_gt(n, 0, "an unknown start and an unknown active are allowed");
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), 0, "%s", err);
    cr_assert(g.epoch.first_generation == 0 && g.epoch.active.len == 0);
    memset(name, 'n', LS_PROTO_NODE_MAX + 1);
    f.epoch.active = ls_proto_str(name);
    cr_assert_eq(ls_frame_encode(&f, buf, sizeof(buf)), LS_EINVAL);
    cr_assert_str_eq(ls_frame_type_name(LS_FRAME_EPOCH), "EPOCH");
}

/* A version-2 peer (RE_OFFER, no EPOCH) still negotiates with this build: version 2 is chosen,
 * and the side that speaks 3 sends no EPOCH on that connection (PROTOCOL.md, "Versions"). */
Test(proto, a_version_2_peer_negotiates_version_2)
{
    static ls_frame_t f;
    ls_proto_choice_t c;
    sample(LS_FRAME_HELLO, &f);
    f.hello.version_min = 1;
    f.hello.version_max = 2;
    ls_proto_offer_t ours = {0};
    cr_assert_eq(ls_proto_negotiate(&f.hello, &ours, &c, NULL, NULL, 0), 0);
    cr_assert_eq(c.version, 2);
    cr_assert_lt(c.version, LS_PROTO_VERSION_EPOCH);
    f.hello.version_max = 3;
    cr_assert_eq(ls_proto_negotiate(&f.hello, &ours, &c, NULL, NULL, 0), 0);
    cr_assert_eq(c.version, LS_PROTO_VERSION_EPOCH);
}

/* CHAIN and RESYNC (version 4): entries must be increasing with epochs and generations from 1;
 * a RESYNC's keys must be whole (u16 length 1..511 and the bytes). */
Test(proto, chain_and_resync_refuse_malformed_entries)
{
    static ls_frame_t f, g;
    char err[256];
    uint8_t buf[4096];
    cr_assert_geq(LS_PROTO_VERSION_MAX, LS_PROTO_VERSION_RESYNC);
    sample(LS_FRAME_CHAIN, &f);
    ssize_t n = ls_frame_encode(&f, buf, sizeof(buf));
    cr_assert_eq(n, LS_FRAME_HEADER_SIZE + 16 + 4 + 2 + 6 + 2 + 3 * 44);
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), 0, "%s", err);
    frame_eq(&f, &g);
    uint8_t again[4096]; /* a decoded CHAIN (entries in raw, no links) re-encodes the same */
    cr_assert(g.chain.raw && !g.chain.links);
    cr_assert_eq(ls_frame_encode(&g, again, sizeof(again)), n);
    cr_assert_arr_eq(again, buf, (size_t) n);
    size_t second = LS_FRAME_HEADER_SIZE + 16 + 4 + 2 + 6 + 2 + 44; /* entry 1's epoch */
    memcpy(buf + second + 4, buf + second - 44 + 4, 8); /* entry 1's generation = entry 0's */
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), LS_EPROTO);
    cr_assert(strstr(err, "CHAIN") && strstr(err, "increasing"), "%s", err);
    links[1].generation = 7;
    cr_assert_eq(ls_frame_encode(&f, buf, sizeof(buf)), LS_EINVAL, "the encoder checks too");
    f.chain.count = LS_PROTO_CHAIN_MAX + 1;
    cr_assert_eq(ls_frame_encode(&f, buf, sizeof(buf)), LS_EINVAL);

    sample(LS_FRAME_RESYNC, &f);
    n = ls_frame_encode(&f, buf, sizeof(buf));
    cr_assert_gt(n, 0);
    cr_assert_eq(ls_frame_encode_head(&f, buf, sizeof(buf)), n, "keys are not a data chunk");
    size_t off = 0, len;
    const uint8_t *k;
    cr_assert(ls_proto_resync_key(keyseq, sizeof(keyseq), &off, &k, &len));
    cr_assert(len == 1 && k[0] == 'a');
    cr_assert(ls_proto_resync_key(keyseq, sizeof(keyseq), &off, &k, &len));
    cr_assert(len == 3 && memcmp(k, "k-\x01", 3) == 0);
    cr_assert(!ls_proto_resync_key(keyseq, sizeof(keyseq), &off, &k, &len));
    buf[n - 4] = 9; /* the second key's length runs past the frame */
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), LS_EPROTO);
    cr_assert(strstr(err, "RESYNC: field 'keys'") && strstr(err, "key 1 at offset 3"), "%s", err);
    sample(LS_FRAME_RESYNC, &f);
    f.resync.flags = 0x2;
    cr_assert_eq(ls_frame_encode(&f, buf, sizeof(buf)), LS_EINVAL, "unknown flag");
    cr_assert_str_eq(ls_frame_type_name(LS_FRAME_RESYNC_BEGIN), "RESYNC_BEGIN");
}

/* BLOCK and BLOCK_ACK (version 5, LS_FEAT_BLOCK): fixed layouts; a malformed field is refused
 * with its name and offset; the chunk's head can be encoded apart (scatter/gather). */
Test(proto, block_frames_round_trip_and_refuse_malformed_fields)
{
    static ls_frame_t f, g;
    char err[256];
    static uint8_t buf[8192];
    cr_assert_eq(LS_PROTO_VERSION_MAX, LS_PROTO_VERSION_BLOCK);
    cr_assert_str_eq(ls_frame_type_name(LS_FRAME_BLOCK), "BLOCK");
    cr_assert_str_eq(ls_frame_type_name(LS_FRAME_BLOCK_ACK), "BLOCK_ACK");
    sample(LS_FRAME_BLOCK, &f);
    ssize_t n = ls_frame_encode(&f, buf, sizeof(buf));
    cr_assert_eq(n, LS_FRAME_HEADER_SIZE + 16 + 4 + 8 + 8 + 8 + 4 + (ssize_t) sizeof(chunk));
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), 0, "%s", err);
    frame_eq(&f, &g);
    uint8_t head[128];
    ssize_t hn = ls_frame_encode_head(&f, head, sizeof(head));
    cr_assert_eq(hn, n - (ssize_t) sizeof(chunk), "the head stops before the bytes");
    cr_assert_arr_eq(head, buf, (size_t) hn);
    /* epoch 0, generation 0, an empty chunk, an offset that overflows */
    uint8_t *body = buf + LS_FRAME_HEADER_SIZE;
    ls_put32(body + 16, 0);
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), LS_EPROTO);
    cr_assert(strstr(err, "BLOCK: field 'epoch' at offset 16"), "%s", err);
    ls_put32(body + 16, 2);
    ls_put64(body + 20, 0);
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), LS_EPROTO);
    cr_assert(strstr(err, "BLOCK: field 'generation' at offset 20"), "%s", err);
    ls_put64(body + 20, 43);
    ls_put64(body + 28, UINT64_MAX - 10);
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), LS_EPROTO);
    cr_assert(strstr(err, "BLOCK: field 'len' at offset 44") && strstr(err, "overflows"), "%s",
              err);
    ls_put64(body + 28, 4096);
    ls_put32(body + 44, 0);
    cr_assert_eq(ls_frame_decode_body(&(ls_frame_header_t){48, LS_FRAME_BLOCK, 0}, body, 48, &g,
                                      err, sizeof(err)),
                 LS_EPROTO);
    cr_assert(strstr(err, "BLOCK: field 'len' at offset 44: chunk of 0 bytes"), "%s", err);
    ls_put32(body + 44, 5000); /* claims more than the body holds */
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), LS_EFRAMETRUNC);
    cr_assert(strstr(err, "BLOCK") && strstr(err, "'data'"), "%s", err);
    f.block.len = 0;
    cr_assert_eq(ls_frame_size(&f), LS_EINVAL);

    sample(LS_FRAME_BLOCK_ACK, &f);
    n = ls_frame_encode(&f, buf, sizeof(buf));
    cr_assert_eq(n, LS_FRAME_HEADER_SIZE + 16 + 4 + 8 * 4);
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), 0, "%s", err);
    frame_eq(&f, &g);
    ls_put64(body + 20, 0);
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), LS_EPROTO);
    cr_assert(strstr(err, "BLOCK_ACK: field 'generation' at offset 20"), "%s", err);
    cr_assert_eq(ls_frame_decode(buf, (size_t) n - 3, &g, err, sizeof(err)), LS_EFRAMETRUNC);
}

/* GEN_TAIL (LS_FEAT_TAIL): GEN_BEGIN's body and the start, which must leave the trailer to the
 * GEN_DATA that follow. */
Test(proto, gen_tail_round_trips_and_refuses_a_start_outside_the_file)
{
    static ls_frame_t f, g;
    char err[256];
    static uint8_t buf[256];
    cr_assert_str_eq(ls_frame_type_name(LS_FRAME_GEN_TAIL), "GEN_TAIL");
    sample(LS_FRAME_GEN_TAIL, &f);
    ssize_t n = ls_frame_encode(&f, buf, sizeof(buf));
    cr_assert_eq(n, LS_FRAME_HEADER_SIZE + 16 + 4 + 8 * 4);
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), 0, "%s", err);
    frame_eq(&f, &g);
    uint8_t *body = buf + LS_FRAME_HEADER_SIZE;
    uint64_t bad[] = {0, 1048672 - LS_PROTO_GEN_TRAILER_LEN + 1, UINT64_MAX};
    for (size_t i = 0; i < LS_ARRAY_SIZE(bad); i++) {
        ls_put64(body + 44, bad[i]);
        cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), LS_EPROTO);
        cr_assert(strstr(err, "GEN_TAIL: field 'start' at offset 44") && strstr(err, "trailer"),
                  "%s", err);
    }
    ls_put64(body + 44, 1048672 - LS_PROTO_GEN_TRAILER_LEN);
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(g.gen_begin.start, 1048672 - LS_PROTO_GEN_TRAILER_LEN);
    cr_assert_eq(ls_frame_decode(buf, (size_t) n - 8, &g, err, sizeof(err)), LS_EFRAMETRUNC);
}

/* SWITCHOVER and SWITCHOVER_DONE (version 5): round trip of an answer that refuses, and the
 * malformed ones refused with the field named: epoch below 2, generation 0, a positive code, a
 * refusal carrying an epoch, an activation without one, a message over its bound, a short body. */
Test(proto, switchover_frames_round_trip_and_refuse_malformed_ones)
{
    static ls_frame_t f, g;
    char err[256];
    uint8_t buf[4096];
    cr_assert_eq(LS_PROTO_VERSION_SWITCHOVER, 5);
    cr_assert_geq(LS_PROTO_VERSION_MAX, LS_PROTO_VERSION_SWITCHOVER);
    sample(LS_FRAME_SWITCHOVER, &f);
    ssize_t n = ls_frame_encode(&f, buf, sizeof(buf));
    cr_assert_eq(n, LS_FRAME_HEADER_SIZE + 16 + 4 + 8 + 8 + 8);
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), 0, "%s", err);
    frame_eq(&f, &g);
    cr_assert_eq(ls_frame_decode(buf, (size_t) n - 1, &g, err, sizeof(err)), LS_EFRAMETRUNC);
    ls_put32(buf + LS_FRAME_HEADER_SIZE + 16, 1); /* epoch 1: a switchover starts epoch 2 */
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), LS_EPROTO);
    cr_assert(strstr(err, "SWITCHOVER: field 'epoch'") && strstr(err, "epoch 2 or later"), "%s",
              err);
    f.switchover.last_generation = 0;
    cr_assert_eq(ls_frame_encode(&f, buf, sizeof(buf)), LS_EINVAL, "generation 0");
    n = ls_frame_encode(&(ls_frame_t){.type = LS_FRAME_SWITCHOVER,
                                      .switchover = {.epoch = 2, .last_generation = 1}},
                        buf, sizeof(buf));
    cr_assert_gt(n, 0);
    ls_put64(buf + LS_FRAME_HEADER_SIZE + 20, 0);
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), LS_EPROTO);
    cr_assert(strstr(err, "'last_generation'") && strstr(err, "generation 0"), "%s", err);

    /* A refusal: a negative code, no epoch, no generation, the reason. */
    sample(LS_FRAME_SWITCHOVER_DONE, &f);
    f.switchover_done = (ls_proto_switchover_done_t){
        .code = LS_ESTATE, .message = ls_proto_str("not exactly generation 41")};
    n = ls_frame_encode(&f, buf, sizeof(buf));
    cr_assert_gt(n, 0);
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), 0, "%s", err);
    frame_eq(&f, &g);
    ls_put32(buf + LS_FRAME_HEADER_SIZE + 20, 3); /* an epoch in a refusal */
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), LS_EPROTO);
    cr_assert(strstr(err, "SWITCHOVER_DONE: field 'epoch'") && strstr(err, "in a refusal"), "%s",
              err);
    f.switchover_done.code = 7;
    cr_assert_eq(ls_frame_encode(&f, buf, sizeof(buf)), LS_EINVAL, "a positive code");
    sample(LS_FRAME_SWITCHOVER_DONE, &f);
    f.switchover_done.first_generation = 0;
    cr_assert_eq(ls_frame_encode(&f, buf, sizeof(buf)), LS_EINVAL, "activated at generation 0");
    sample(LS_FRAME_SWITCHOVER_DONE, &f);
    f.switchover_done.epoch = 0;
    cr_assert_eq(ls_frame_encode(&f, buf, sizeof(buf)), LS_EINVAL, "activated in epoch 0");
    static char longmsg[LS_PROTO_MSG_MAX + 2];
    memset(longmsg, 'x', sizeof(longmsg) - 1);
    sample(LS_FRAME_SWITCHOVER_DONE, &f);
    f.switchover_done.message = ls_proto_str(longmsg);
    cr_assert_eq(ls_frame_encode(&f, buf, sizeof(buf)), LS_EINVAL, "message over its bound");
    cr_assert_str_eq(ls_frame_type_name(LS_FRAME_SWITCHOVER), "SWITCHOVER");
    cr_assert_str_eq(ls_frame_type_name(LS_FRAME_SWITCHOVER_DONE), "SWITCHOVER_DONE");
}
