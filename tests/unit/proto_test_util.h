/*
 * Helpers shared by the proto tests (proto_test.c: round trips, truncations, oversized lengths,
 * trailing bytes, unknown types and flags, bad values, version negotiation; proto_frames_test.c:
 * the fuzz seed corpus and each later frame's own checks): a sample of every frame type, their
 * field-by-field comparison and a sample's encoding. Static functions and data: each test program
 * includes this once.
 */
#ifndef LS_PROTO_TEST_UTIL_H
#define LS_PROTO_TEST_UTIL_H

#include <criterion/criterion.h>
#include <ctype.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/core.h"
#include "harness.h"
#include "proto/proto.h"

/* helpers a test program may leave unused */
#define UTIL static __attribute__((unused))

UTIL const uint8_t all_types[] = {
    LS_FRAME_HELLO,           LS_FRAME_WELCOME,    LS_FRAME_ERROR,      LS_FRAME_HEARTBEAT,
    LS_FRAME_RESUME,          LS_FRAME_CREDIT,     LS_FRAME_GEN_BEGIN,  LS_FRAME_GEN_DATA,
    LS_FRAME_GEN_END,         LS_FRAME_DURABLE,    LS_FRAME_INSPECTED,  LS_FRAME_REPLAYED,
    LS_FRAME_REPLAYED_SYNCED, LS_FRAME_ASK_AGAIN,  LS_FRAME_SEED_BEGIN, LS_FRAME_SEED_DATA,
    LS_FRAME_SEED_END,        LS_FRAME_COPY_STATE, LS_FRAME_RE_OFFER,   LS_FRAME_EPOCH,
    LS_FRAME_CHAIN_REQ,       LS_FRAME_CHAIN,      LS_FRAME_RESYNC,     LS_FRAME_RESYNC_BEGIN,
    LS_FRAME_BLOCK,           LS_FRAME_BLOCK_ACK,  LS_FRAME_SWITCHOVER, LS_FRAME_SWITCHOVER_DONE,
    LS_FRAME_GEN_TAIL,
};

UTIL ls_proto_link_t links[3];                          /* the CHAIN sample's entries */
UTIL uint8_t keyseq[] = {1, 0, 'a', 3, 0, 'k', '-', 1}; /* the RESYNC sample's keys */

UTIL uint8_t chunk[3000]; /* payload of the data samples */

UTIL void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t) (seed + i * 7);
}

UTIL void sample_conn(uint8_t type, ls_frame_t *f)
{
    static const char *names[] = {"orders", "", "inventory"};
    if (type == LS_FRAME_HELLO) {
        ls_proto_hello_t *m = &f->hello;
        *m = (ls_proto_hello_t){.version_min = 1, .version_max = 3, .purpose = LS_PURPOSE_SHIP};
        m->features = LS_FEAT_ZSTD | LS_FEAT_CKSUM | 0x80000000u;
        m->zstd_level = -3;
        m->db_window = 8u << 20;
        m->node = ls_proto_str("node-a");
        m->db_count = 3;
        for (int i = 0; i < 3; i++) {
            fill(m->dbs[i].dbid, LS_PROTO_DBID_LEN, (uint8_t) (0x10 * i + 1));
            m->dbs[i].name = ls_proto_str(names[i]);
        }
    } else if (type == LS_FRAME_WELCOME) {
        ls_proto_welcome_t *m = &f->welcome;
        *m = (ls_proto_welcome_t){.version = 1, .features = LS_FEAT_CKSUM, .conn_window = 1u << 30};
        m->node = ls_proto_str("node-b");
        m->db_count = 2;
        fill(m->dbs[0].dbid, LS_PROTO_DBID_LEN, 1);
        m->dbs[0].status = LS_DB_ACCEPTED;
        fill(m->dbs[1].dbid, LS_PROTO_DBID_LEN, 0x11);
        m->dbs[1].status = LS_DB_REFUSED;
        m->dbs[1].code = LS_EDBID;
        m->dbs[1].reason = ls_proto_str("copy store belongs to another database");
    } else if (type == LS_FRAME_ERROR) {
        fill(f->error.dbid, LS_PROTO_DBID_LEN, 5);
        f->error.code = LS_EDIVERGED;
        f->error.message = ls_proto_str("digest of generation 41 differs");
    } else {
        f->heartbeat =
            (ls_proto_heartbeat_t){7, 1700000000123456789ull, 1700000000000000001ull, 250000};
    }
}

UTIL void sample_ship(uint8_t type, ls_frame_t *f)
{
    uint8_t id[LS_PROTO_DBID_LEN];
    fill(id, sizeof(id), 0x21);
    fill(chunk, sizeof(chunk), 3);
    switch (type) {
    case LS_FRAME_RESUME:
        f->resume = (ls_proto_resume_t){.epoch = 2, .next_generation = 42, .last_lsn = 99999};
        fill(f->resume.last_digest, LS_PROTO_DIGEST_LEN, 0x40);
        break;
    case LS_FRAME_COPY_STATE:
        f->copy_state = (ls_proto_copy_state_t){.flags = LS_COPY_SUSPENDED,
                                                .since_ns = 1795000000000000000ull,
                                                .last_generated = 57,
                                                .last_generated_ns = 1795000001000000000ull,
                                                .queue_count = 10,
                                                .queue_bytes = 10485760,
                                                .queue_oldest_ns = 1795000000500000000ull};
        f->copy_state.comment = ls_proto_str("maintenance of node-b");
        break;
    case LS_FRAME_CREDIT:
        f->credit.bytes = LS_PROTO_DB_WINDOW_DEFAULT;
        break;
    case LS_FRAME_RE_OFFER:
        f->re_offer.flags = LS_REOFFER_HOLD | LS_REOFFER_REPLACED;
        f->re_offer.reason = ls_proto_str("copy db1 is being seeded");
        break;
    case LS_FRAME_EPOCH:
        f->epoch.epoch = 2;
        f->epoch.first_generation = 4;
        f->epoch.active = ls_proto_str("node-b");
        break;
    case LS_FRAME_GEN_BEGIN:
        f->gen_begin = (ls_proto_gen_begin_t){
            .epoch = 2, .generation = 42, .size = 1048672, .close_ns = 1700000000999ull};
        break;
    case LS_FRAME_GEN_TAIL:
        f->gen_begin = (ls_proto_gen_begin_t){.epoch = 2,
                                              .generation = 42,
                                              .size = 1048672,
                                              .close_ns = 1700000000999ull,
                                              .start = 1040000};
        break;
    case LS_FRAME_GEN_DATA:
        f->gen_data = (ls_proto_gen_data_t){
            .generation = 42, .offset = 65536, .data = chunk, .len = sizeof(chunk)};
        break;
    case LS_FRAME_BLOCK:
        f->block = (ls_proto_block_t){.epoch = 2,
                                      .generation = 43,
                                      .offset = 4096,
                                      .durable_lsn = 777,
                                      .data = chunk,
                                      .len = sizeof(chunk)};
        break;
    case LS_FRAME_BLOCK_ACK:
        f->block_ack = (ls_proto_block_ack_t){
            .epoch = 2, .generation = 43, .offset = 7096, .durable_lsn = 777, .applied_lsn = 700};
        break;
    case LS_FRAME_GEN_END:
        f->gen_end.generation = 42;
        fill(f->gen_end.digest, LS_PROTO_DIGEST_LEN, 0x99);
        break;
    case LS_FRAME_DURABLE:
    case LS_FRAME_INSPECTED:
        f->durable.generation = 42;
        break;
    case LS_FRAME_REPLAYED:
    case LS_FRAME_REPLAYED_SYNCED:
        f->replayed = (ls_proto_replayed_t){.generation = 41, .lsn = 123456};
        break;
    case LS_FRAME_ASK_AGAIN:
        f->ask_again = (ls_proto_ask_again_t){.generation = 40, .code = LS_ERECCKSUM};
        f->ask_again.message = ls_proto_str("record checksum mismatch at offset 4096");
        break;
    case LS_FRAME_SEED_BEGIN:
        f->seed_begin = (ls_proto_seed_begin_t){
            .total_bytes = 1u << 30, .last_lsn = 777, .generation = 9, .epoch = 1};
        fill(f->seed_begin.prev_digest, LS_PROTO_DIGEST_LEN, 0x55);
        break;
    case LS_FRAME_SEED_DATA:
        f->seed_data = (ls_proto_seed_data_t){.offset = 1u << 20, .data = chunk, .len = 100};
        return;
    case LS_FRAME_CHAIN_REQ:
        f->chain_req.from_generation = 7;
        break;
    case LS_FRAME_CHAIN:
        for (int i = 0; i < 3; i++) {
            links[i] = (ls_proto_link_t){.epoch = i < 2 ? 1 : 2, .generation = 7u + (unsigned) i};
            fill(links[i].digest, LS_PROTO_DIGEST_LEN, (uint8_t) (0x60 + i));
        }
        f->chain = (ls_proto_chain_t){.epoch = 2, .count = 3, .links = links};
        f->chain.active = ls_proto_str("node-b");
        break;
    case LS_FRAME_RESYNC:
        f->resync = (ls_proto_resync_t){.flags = LS_RESYNC_MORE,
                                        .split_generation = 8,
                                        .split_epoch = 1,
                                        .keys = keyseq,
                                        .keys_len = sizeof(keyseq)};
        fill(f->resync.split_digest, LS_PROTO_DIGEST_LEN, 0x61);
        break;
    case LS_FRAME_RESYNC_BEGIN:
        f->resync_begin = (ls_proto_resync_begin_t){.total_bytes = 4242,
                                                    .last_lsn = 900,
                                                    .generation = 10,
                                                    .epoch = 2,
                                                    .txid = 300,
                                                    .split_generation = 8,
                                                    .keys = 77,
                                                    .store_bytes = 1u << 26};
        fill(f->resync_begin.prev_digest, LS_PROTO_DIGEST_LEN, 0x62);
        break;
    case LS_FRAME_SEED_END:
        fill(f->seed_end.digest, LS_PROTO_DIGEST_LEN, 0x77);
        return;
    case LS_FRAME_SWITCHOVER:
        f->switchover = (ls_proto_switchover_t){
            .epoch = 3, .last_generation = 41, .last_lsn = 9001, .last_close_ns = 1234567890123};
        break;
    case LS_FRAME_SWITCHOVER_DONE:
        f->switchover_done = (ls_proto_switchover_done_t){
            .epoch = 3, .first_generation = 42, .message = ls_proto_str("activated db1")};
        break;
    }
    memcpy(f->resume.dbid, id, sizeof(id)); /* dbid comes first in every body handled above */
}

/* A valid frame of the given type with distinctive values in every field. */
UTIL void sample(uint8_t type, ls_frame_t *f)
{
    memset(f, 0, sizeof(*f));
    f->type = type;
    if (type <= LS_FRAME_HEARTBEAT)
        sample_conn(type, f);
    else
        sample_ship(type, f);
}

UTIL void str_eq(ls_proto_str_t a, ls_proto_str_t b)
{
    cr_assert_eq(a.len, b.len);
    cr_assert(a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

UTIL void hello_eq(const ls_proto_hello_t *a, const ls_proto_hello_t *b)
{
    cr_assert(a->version_min == b->version_min && a->version_max == b->version_max);
    cr_assert(a->purpose == b->purpose && a->features == b->features);
    cr_assert(a->zstd_level == b->zstd_level && a->db_count == b->db_count);
    cr_assert(a->db_window == b->db_window && a->conn_window == b->conn_window);
    str_eq(a->node, b->node);
    for (int i = 0; i < a->db_count; i++) {
        cr_assert_arr_eq(a->dbs[i].dbid, b->dbs[i].dbid, LS_PROTO_DBID_LEN);
        str_eq(a->dbs[i].name, b->dbs[i].name);
    }
}

UTIL void welcome_eq(const ls_proto_welcome_t *a, const ls_proto_welcome_t *b)
{
    cr_assert(a->version == b->version && a->features == b->features);
    cr_assert(a->zstd_level == b->zstd_level && a->db_count == b->db_count);
    cr_assert(a->db_window == b->db_window && a->conn_window == b->conn_window);
    str_eq(a->node, b->node);
    for (int i = 0; i < a->db_count; i++) {
        cr_assert_arr_eq(a->dbs[i].dbid, b->dbs[i].dbid, LS_PROTO_DBID_LEN);
        cr_assert(a->dbs[i].status == b->dbs[i].status && a->dbs[i].code == b->dbs[i].code);
        str_eq(a->dbs[i].reason, b->dbs[i].reason);
    }
}

/* The bodies that start with a database id. */
UTIL void ship_eq(const ls_frame_t *a, const ls_frame_t *b)
{
    cr_assert_arr_eq(a->resume.dbid, b->resume.dbid, LS_PROTO_DBID_LEN);
    switch (a->type) {
    case LS_FRAME_ERROR:
        cr_assert_eq(a->error.code, b->error.code);
        str_eq(a->error.message, b->error.message);
        break;
    case LS_FRAME_COPY_STATE: {
        const ls_proto_copy_state_t *x = &a->copy_state, *y = &b->copy_state;
        cr_assert(x->flags == y->flags && x->since_ns == y->since_ns);
        cr_assert(x->last_generated == y->last_generated);
        cr_assert(x->last_generated_ns == y->last_generated_ns);
        cr_assert(x->queue_count == y->queue_count && x->queue_bytes == y->queue_bytes);
        cr_assert(x->queue_oldest_ns == y->queue_oldest_ns);
        str_eq(x->comment, y->comment);
        break;
    }
    case LS_FRAME_RESUME:
        cr_assert(a->resume.epoch == b->resume.epoch && a->resume.last_lsn == b->resume.last_lsn);
        cr_assert(a->resume.next_generation == b->resume.next_generation);
        cr_assert_arr_eq(a->resume.last_digest, b->resume.last_digest, LS_PROTO_DIGEST_LEN);
        break;
    case LS_FRAME_CREDIT:
        cr_assert_eq(a->credit.bytes, b->credit.bytes);
        break;
    case LS_FRAME_RE_OFFER:
        cr_assert_eq(a->re_offer.flags, b->re_offer.flags);
        str_eq(a->re_offer.reason, b->re_offer.reason);
        break;
    case LS_FRAME_EPOCH:
        cr_assert_eq(a->epoch.epoch, b->epoch.epoch);
        cr_assert_eq(a->epoch.first_generation, b->epoch.first_generation);
        str_eq(a->epoch.active, b->epoch.active);
        break;
    case LS_FRAME_GEN_BEGIN:
    case LS_FRAME_GEN_TAIL:
        cr_assert(a->gen_begin.start == b->gen_begin.start);
        cr_assert(a->gen_begin.epoch == b->gen_begin.epoch);
        cr_assert(a->gen_begin.generation == b->gen_begin.generation);
        cr_assert(a->gen_begin.size == b->gen_begin.size);
        cr_assert(a->gen_begin.close_ns == b->gen_begin.close_ns);
        break;
    case LS_FRAME_GEN_DATA:
        cr_assert(a->gen_data.generation == b->gen_data.generation);
        cr_assert(a->gen_data.offset == b->gen_data.offset && a->gen_data.len == b->gen_data.len);
        cr_assert_arr_eq(a->gen_data.data, b->gen_data.data, a->gen_data.len);
        break;
    case LS_FRAME_BLOCK:
        cr_assert(a->block.epoch == b->block.epoch && a->block.generation == b->block.generation);
        cr_assert(a->block.offset == b->block.offset && a->block.len == b->block.len);
        cr_assert(a->block.durable_lsn == b->block.durable_lsn);
        cr_assert_arr_eq(a->block.data, b->block.data, a->block.len);
        break;
    case LS_FRAME_BLOCK_ACK:
        cr_assert(a->block_ack.epoch == b->block_ack.epoch);
        cr_assert(a->block_ack.generation == b->block_ack.generation);
        cr_assert(a->block_ack.offset == b->block_ack.offset);
        cr_assert(a->block_ack.durable_lsn == b->block_ack.durable_lsn);
        cr_assert(a->block_ack.applied_lsn == b->block_ack.applied_lsn);
        break;
    case LS_FRAME_GEN_END:
        cr_assert(a->gen_end.generation == b->gen_end.generation);
        cr_assert_arr_eq(a->gen_end.digest, b->gen_end.digest, LS_PROTO_DIGEST_LEN);
        break;
    case LS_FRAME_DURABLE:
    case LS_FRAME_INSPECTED:
        cr_assert(a->durable.generation == b->durable.generation);
        break;
    case LS_FRAME_REPLAYED:
    case LS_FRAME_REPLAYED_SYNCED:
        cr_assert(a->replayed.generation == b->replayed.generation);
        cr_assert(a->replayed.lsn == b->replayed.lsn);
        break;
    case LS_FRAME_ASK_AGAIN:
        cr_assert(a->ask_again.generation == b->ask_again.generation);
        cr_assert_eq(a->ask_again.code, b->ask_again.code);
        str_eq(a->ask_again.message, b->ask_again.message);
        break;
    case LS_FRAME_SEED_BEGIN:
        cr_assert(a->seed_begin.total_bytes == b->seed_begin.total_bytes);
        cr_assert(a->seed_begin.last_lsn == b->seed_begin.last_lsn);
        cr_assert(a->seed_begin.generation == b->seed_begin.generation);
        cr_assert(a->seed_begin.epoch == b->seed_begin.epoch);
        cr_assert_arr_eq(a->seed_begin.prev_digest, b->seed_begin.prev_digest, LS_PROTO_DIGEST_LEN);
        break;
    case LS_FRAME_CHAIN_REQ:
        cr_assert_eq(a->chain_req.from_generation, b->chain_req.from_generation);
        break;
    case LS_FRAME_CHAIN:
        cr_assert(a->chain.epoch == b->chain.epoch && a->chain.count == b->chain.count);
        str_eq(a->chain.active, b->chain.active);
        for (size_t i = 0; i < a->chain.count; i++) {
            ls_proto_link_t x, y;
            ls_proto_chain_link(&a->chain, i, &x);
            ls_proto_chain_link(&b->chain, i, &y);
            cr_assert(x.epoch == y.epoch && x.generation == y.generation);
            cr_assert_arr_eq(x.digest, y.digest, LS_PROTO_DIGEST_LEN);
        }
        break;
    case LS_FRAME_RESYNC:
        cr_assert(a->resync.flags == b->resync.flags);
        cr_assert(a->resync.split_generation == b->resync.split_generation);
        cr_assert(a->resync.split_epoch == b->resync.split_epoch);
        cr_assert_arr_eq(a->resync.split_digest, b->resync.split_digest, LS_PROTO_DIGEST_LEN);
        cr_assert_eq(a->resync.keys_len, b->resync.keys_len);
        cr_assert_arr_eq(a->resync.keys, b->resync.keys, a->resync.keys_len);
        break;
    case LS_FRAME_RESYNC_BEGIN: {
        const ls_proto_resync_begin_t *x = &a->resync_begin, *y = &b->resync_begin;
        cr_assert(x->total_bytes == y->total_bytes && x->last_lsn == y->last_lsn);
        cr_assert(x->generation == y->generation && x->epoch == y->epoch);
        cr_assert(x->txid == y->txid && x->split_generation == y->split_generation);
        cr_assert(x->keys == y->keys && x->store_bytes == y->store_bytes);
        cr_assert_arr_eq(x->prev_digest, y->prev_digest, LS_PROTO_DIGEST_LEN);
        break;
    }
    case LS_FRAME_SWITCHOVER: {
        const ls_proto_switchover_t *x = &a->switchover, *y = &b->switchover;
        cr_assert(x->epoch == y->epoch && x->last_generation == y->last_generation);
        cr_assert(x->last_lsn == y->last_lsn && x->last_close_ns == y->last_close_ns);
        break;
    }
    case LS_FRAME_SWITCHOVER_DONE: {
        const ls_proto_switchover_done_t *x = &a->switchover_done, *y = &b->switchover_done;
        cr_assert(x->code == y->code && x->epoch == y->epoch);
        cr_assert(x->first_generation == y->first_generation);
        str_eq(x->message, y->message);
        break;
    }
    default:
        cr_assert_fail("type 0x%02x not compared", a->type);
    }
}

/* Field by field (the structs have padding, so no memcmp of whole structs). */
UTIL void frame_eq(const ls_frame_t *a, const ls_frame_t *b)
{
    cr_assert_eq(a->type, b->type);
    switch (a->type) {
    case LS_FRAME_HELLO:
        hello_eq(&a->hello, &b->hello);
        return;
    case LS_FRAME_WELCOME:
        welcome_eq(&a->welcome, &b->welcome);
        return;
    case LS_FRAME_HEARTBEAT:
        cr_assert(a->heartbeat.seq == b->heartbeat.seq);
        cr_assert(a->heartbeat.send_ns == b->heartbeat.send_ns);
        cr_assert(a->heartbeat.echo_ns == b->heartbeat.echo_ns);
        cr_assert(a->heartbeat.echo_delay_ns == b->heartbeat.echo_delay_ns);
        return;
    case LS_FRAME_SEED_DATA:
        cr_assert(a->seed_data.offset == b->seed_data.offset &&
                  a->seed_data.len == b->seed_data.len);
        cr_assert_arr_eq(a->seed_data.data, b->seed_data.data, a->seed_data.len);
        return;
    case LS_FRAME_SEED_END:
        cr_assert_arr_eq(a->seed_end.digest, b->seed_end.digest, LS_PROTO_DIGEST_LEN);
        return;
    }
    ship_eq(a, b);
}

/* Encodes sample(type) into a malloc'd buffer. */
UTIL uint8_t *encode_sample(uint8_t type, ls_frame_t *f, size_t *len)
{
    sample(type, f);
    ssize_t size = ls_frame_size(f);
    cr_assert_gt(size, LS_FRAME_HEADER_SIZE, "%s: size %zd", ls_frame_type_name(type), size);
    uint8_t *buf = malloc((size_t) size);
    cr_assert_eq(ls_frame_encode(f, buf, (size_t) size), size);
    *len = (size_t) size;
    return buf;
}

#endif
