/*
 * proto: every frame round-trips; every truncation, oversized length, trailing byte, unknown
 * type, flag and bad value is refused with a message naming the frame, field and offset; the
 * decoder reads nothing past its input and allocates nothing; version negotiation; and the fuzz
 * seed corpus (tests/fuzz/corpus/frame_decode/) is exactly the current encoding of each sample
 * (LS_PROTO_WRITE_CORPUS=1 rewrites it).
 */
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

static const uint8_t all_types[] = {
    LS_FRAME_HELLO,           LS_FRAME_WELCOME,    LS_FRAME_ERROR,      LS_FRAME_HEARTBEAT,
    LS_FRAME_RESUME,          LS_FRAME_CREDIT,     LS_FRAME_GEN_BEGIN,  LS_FRAME_GEN_DATA,
    LS_FRAME_GEN_END,         LS_FRAME_DURABLE,    LS_FRAME_INSPECTED,  LS_FRAME_REPLAYED,
    LS_FRAME_REPLAYED_SYNCED, LS_FRAME_ASK_AGAIN,  LS_FRAME_SEED_BEGIN, LS_FRAME_SEED_DATA,
    LS_FRAME_SEED_END,        LS_FRAME_COPY_STATE, LS_FRAME_RE_OFFER,   LS_FRAME_EPOCH,
    LS_FRAME_CHAIN_REQ,       LS_FRAME_CHAIN,      LS_FRAME_RESYNC,     LS_FRAME_RESYNC_BEGIN,
    LS_FRAME_BLOCK,           LS_FRAME_BLOCK_ACK,  LS_FRAME_SWITCHOVER, LS_FRAME_SWITCHOVER_DONE,
    LS_FRAME_GEN_TAIL,
};

static ls_proto_link_t links[3];                          /* the CHAIN sample's entries */
static uint8_t keyseq[] = {1, 0, 'a', 3, 0, 'k', '-', 1}; /* the RESYNC sample's keys */

static uint8_t chunk[3000]; /* payload of the data samples */

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t) (seed + i * 7);
}

static void sample_conn(uint8_t type, ls_frame_t *f)
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

static void sample_ship(uint8_t type, ls_frame_t *f)
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
static void sample(uint8_t type, ls_frame_t *f)
{
    memset(f, 0, sizeof(*f));
    f->type = type;
    if (type <= LS_FRAME_HEARTBEAT)
        sample_conn(type, f);
    else
        sample_ship(type, f);
}

static void str_eq(ls_proto_str_t a, ls_proto_str_t b)
{
    cr_assert_eq(a.len, b.len);
    cr_assert(a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void hello_eq(const ls_proto_hello_t *a, const ls_proto_hello_t *b)
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

static void welcome_eq(const ls_proto_welcome_t *a, const ls_proto_welcome_t *b)
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
static void ship_eq(const ls_frame_t *a, const ls_frame_t *b)
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
static void frame_eq(const ls_frame_t *a, const ls_frame_t *b)
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
static uint8_t *encode_sample(uint8_t type, ls_frame_t *f, size_t *len)
{
    sample(type, f);
    ssize_t size = ls_frame_size(f);
    cr_assert_gt(size, LS_FRAME_HEADER_SIZE, "%s: size %zd", ls_frame_type_name(type), size);
    uint8_t *buf = malloc((size_t) size);
    cr_assert_eq(ls_frame_encode(f, buf, (size_t) size), size);
    *len = (size_t) size;
    return buf;
}

Test(proto, every_type_round_trips)
{
    static ls_frame_t f, g;
    char err[256];
    for (size_t i = 0; i < sizeof(all_types); i++) {
        size_t len;
        uint8_t *buf = encode_sample(all_types[i], &f, &len);
        int rc = ls_frame_decode(buf, len, &g, err, sizeof(err));
        cr_assert_eq(rc, 0, "%s: %s", ls_frame_type_name(all_types[i]), err);
        frame_eq(&f, &g);
        cr_assert_str_neq(ls_frame_type_name(all_types[i]), "UNKNOWN");
        free(buf);
    }
}

Test(proto, every_truncation_is_refused)
{
    static ls_frame_t f, g;
    char err[256];
    for (size_t i = 0; i < sizeof(all_types); i++) {
        size_t len;
        uint8_t *buf = encode_sample(all_types[i], &f, &len);
        const char *name = ls_frame_type_name(all_types[i]);
        for (size_t n = 0; n < len; n++) { /* the whole frame cut short */
            err[0] = 0;
            cr_assert_eq(ls_frame_decode(buf, n, &g, err, sizeof(err)), LS_EFRAMETRUNC,
                         "%s cut at %zu", name, n);
            cr_assert(strlen(err) > 0);
        }
        ls_frame_header_t h;
        cr_assert_eq(ls_frame_header_decode(buf, len, &h), 0);
        for (uint32_t n = 0; n < h.body_len; n++) { /* a body whose header agrees, cut short */
            ls_frame_header_t cut = {n, h.type, 0};
            err[0] = 0;
            int rc =
                ls_frame_decode_body(&cut, buf + LS_FRAME_HEADER_SIZE, n, &g, err, sizeof(err));
            cr_assert_eq(rc, LS_EFRAMETRUNC, "%s body cut at %u: %d %s", name, n, rc, err);
            cr_assert(ls_h_contains(err, name) && ls_h_contains(err, "offset"), "%s", err);
        }
        free(buf);
    }
}

/* 8 bytes at the very end of a readable page, followed by an inaccessible one: any read past
 * them faults. */
static uint8_t *guarded8(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    uint8_t *p =
        mmap(NULL, (size_t) pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(p != MAP_FAILED);
    cr_assert_eq(mprotect(p + pg, (size_t) pg, PROT_NONE), 0);
    return p + pg - 8;
}

Test(proto, huge_body_len_refused_without_reading_or_allocating)
{
    static ls_frame_t g;
    char err[256];
    uint8_t *h = guarded8();
    ls_frame_header_t hdr = {0xffffffffu, LS_FRAME_GEN_DATA, 0};
    ls_frame_header_encode(&hdr, h);
    struct mallinfo2 before = mallinfo2();
    int rc = ls_frame_decode(h, 8, &g, err, sizeof(err));
    struct mallinfo2 after = mallinfo2();
    cr_assert_eq(rc, LS_EFRAMETOOBIG);
    cr_assert_eq(before.uordblks, after.uordblks, "the decoder allocated");
    cr_assert(ls_h_contains(err, "GEN_DATA") && ls_h_contains(err, "4294967295"), "%s", err);
    ls_put32(h, LS_FRAME_MAX_BODY + 1);
    cr_assert_eq(ls_frame_header_decode(h, 8, &hdr), LS_EFRAMETOOBIG);
    ls_put32(h, LS_FRAME_MAX_BODY); /* allowed size, but only the header is here */
    cr_assert_eq(ls_frame_decode(h, 8, &g, err, sizeof(err)), LS_EFRAMETRUNC);
    cr_assert(ls_h_contains(err, "truncated GEN_DATA"), "%s", err);
}

/* Decodes a body given as bytes; returns the code and leaves the message in err. */
static int decode_raw(uint8_t type, const uint8_t *body, size_t len, char *err, size_t errlen)
{
    static ls_frame_t g;
    uint8_t *buf = malloc(len + LS_FRAME_HEADER_SIZE);
    ls_frame_header_t h = {(uint32_t) len, type, 0};
    ls_frame_header_encode(&h, buf);
    memcpy(buf + LS_FRAME_HEADER_SIZE, body, len);
    err[0] = 0;
    int rc = ls_frame_decode(buf, len + LS_FRAME_HEADER_SIZE, &g, err, errlen);
    free(buf);
    return rc;
}

Test(proto, oversized_strings_lists_and_chunks_refused)
{
    char err[256];
    uint8_t *body = calloc(1, LS_FRAME_MAX_BODY);
    /* ERROR: dbid 16, code -31030, message of 1025 bytes all present */
    ls_put32(body + 16, (uint32_t) LS_EPROTO);
    ls_put16(body + 20, LS_PROTO_MSG_MAX + 1);
    memset(body + 22, 'x', LS_PROTO_MSG_MAX + 1);
    cr_assert_eq(decode_raw(LS_FRAME_ERROR, body, 22 + LS_PROTO_MSG_MAX + 1, err, 256), LS_EPROTO);
    cr_assert(ls_h_contains(err, "ERROR: field 'message' at offset 20: length 1025"), "%s", err);
    /* a string length of 60000 in a 30-byte body: the bound is checked before the bytes */
    ls_put16(body + 20, 60000);
    cr_assert_eq(decode_raw(LS_FRAME_ERROR, body, 30, err, 256), LS_EPROTO);
    /* GEN_DATA: a chunk one byte over the maximum, all present */
    memset(body, 0, 64);
    ls_put64(body + 16, 1);
    ls_put32(body + 32, LS_FRAME_CHUNK_MAX + 1);
    cr_assert_eq(decode_raw(LS_FRAME_GEN_DATA, body, 36 + LS_FRAME_CHUNK_MAX + 1, err, 256),
                 LS_EPROTO);
    cr_assert(ls_h_contains(err, "GEN_DATA: field 'len' at offset 32"), "%s", err);
    ls_put32(body + 32, 1000); /* claims 1000, carries 100 */
    cr_assert_eq(decode_raw(LS_FRAME_GEN_DATA, body, 136, err, 256), LS_EFRAMETRUNC);
    /* HELLO: 257 databases */
    static ls_frame_t f;
    size_t len;
    uint8_t *buf = encode_sample(LS_FRAME_HELLO, &f, &len);
    size_t count_off = 22 + 2 + f.hello.node.len; /* magic..conn_window, node */
    ls_put16(buf + LS_FRAME_HEADER_SIZE + count_off, LS_PROTO_DB_MAX + 1);
    cr_assert_eq(decode_raw(LS_FRAME_HELLO, buf + 8, len - 8, err, 256), LS_EPROTO);
    cr_assert(ls_h_contains(err, "'db_count' at offset 30: 257 databases"), "%s", err);
    free(buf);
    free(body);
}

Test(proto, encoder_refuses_out_of_bounds_structs)
{
    static ls_frame_t f;
    static char big[LS_PROTO_MSG_MAX + 2];
    memset(big, 'n', sizeof(big) - 1);
    sample(LS_FRAME_HELLO, &f);
    f.hello.node = (ls_proto_str_t){big, LS_PROTO_NODE_MAX + 1};
    cr_assert_eq(ls_frame_size(&f), LS_EINVAL);
    sample(LS_FRAME_HELLO, &f);
    f.hello.dbs[2].name = (ls_proto_str_t){big, LS_PROTO_DBNAME_MAX + 1};
    cr_assert_eq(ls_frame_size(&f), LS_EINVAL);
    f.hello.dbs[2].name = (ls_proto_str_t){"a\0b", 3};
    cr_assert_eq(ls_frame_size(&f), LS_EINVAL);
    sample(LS_FRAME_HELLO, &f);
    f.hello.db_count = LS_PROTO_DB_MAX + 1;
    cr_assert_eq(ls_frame_size(&f), LS_EINVAL);
    sample(LS_FRAME_WELCOME, &f);
    f.welcome.db_window = LS_PROTO_WINDOW_MAX + 1;
    cr_assert_eq(ls_frame_size(&f), LS_EINVAL);
    sample(LS_FRAME_ERROR, &f);
    f.error.message = (ls_proto_str_t){big, LS_PROTO_MSG_MAX + 1};
    cr_assert_eq(ls_frame_size(&f), LS_EINVAL);
    f.error.message = (ls_proto_str_t){big, LS_PROTO_MSG_MAX};
    cr_assert_gt(ls_frame_size(&f), 0);
    sample(LS_FRAME_GEN_DATA, &f);
    f.gen_data.len = LS_FRAME_CHUNK_MAX + 1;
    cr_assert_eq(ls_frame_size(&f), LS_EINVAL);
    f.gen_data.len = 0;
    cr_assert_eq(ls_frame_size(&f), LS_EINVAL);
    f.type = 0x2f;
    cr_assert_eq(ls_frame_size(&f), LS_EINVAL);
}

Test(proto, trailing_bytes_refused)
{
    static ls_frame_t f, g;
    char err[256];
    for (size_t i = 0; i < sizeof(all_types); i++) {
        size_t len;
        uint8_t *buf = encode_sample(all_types[i], &f, &len);
        buf = realloc(buf, len + 1);
        buf[len] = 0;
        /* bytes after the frame the header describes */
        cr_assert_eq(ls_frame_decode(buf, len + 1, &g, err, sizeof(err)), LS_EPROTO);
        cr_assert(ls_h_contains(err, "trailing"), "%s", err);
        /* a body longer than its fields, with a header that agrees */
        ls_put32(buf, ls_get32(buf) + 1);
        cr_assert_eq(ls_frame_decode(buf, len + 1, &g, err, sizeof(err)), LS_EPROTO, "%s",
                     ls_frame_type_name(all_types[i]));
        cr_assert(ls_h_contains(err, "trailing") && ls_h_contains(err, "offset"), "%s", err);
        free(buf);
    }
}

Test(proto, unknown_types_flags_and_reserved_refused)
{
    static ls_frame_t g;
    char err[256];
    uint8_t buf[8];
    ls_frame_header_t h;
    const uint8_t unknown[] = {0x00, 0x05, 0x0f, 0x19, 0x25, 0x36, 0x45, 0x50, 0xff};
    for (size_t i = 0; i < sizeof(unknown); i++) {
        ls_frame_header_t u = {0, unknown[i], 0};
        ls_frame_header_encode(&u, buf);
        cr_assert_eq(ls_frame_header_decode(buf, 8, &h), LS_EPROTO);
        cr_assert_eq(ls_frame_decode(buf, 8, &g, err, sizeof(err)), LS_EPROTO);
        cr_assert(ls_h_contains(err, "unknown frame type"), "%s", err);
        cr_assert_str_eq(ls_frame_type_name(unknown[i]), "UNKNOWN");
    }
    ls_frame_header_t hb = {32, LS_FRAME_HEARTBEAT, 0x80};
    ls_frame_header_encode(&hb, buf);
    cr_assert_eq(ls_frame_header_decode(buf, 8, &h), LS_EPROTO);
    hb.flags = LS_FRAME_FLAG_ZSTD; /* known to the header, refused by the body decoder */
    ls_frame_header_encode(&hb, buf);
    cr_assert_eq(ls_frame_header_decode(buf, 8, &h), 0);
    uint8_t body[32] = {0};
    cr_assert_eq(ls_frame_decode_body(&h, body, 32, &g, err, sizeof(err)), LS_EPROTO);
    cr_assert(ls_h_contains(err, "decompress"), "%s", err);
    hb.flags = 0x80;
    ls_frame_header_encode(&hb, buf);
    cr_assert_eq(ls_frame_decode(buf, 8, &g, err, sizeof(err)), LS_EPROTO);
    cr_assert(ls_h_contains(err, "unknown flags 0x80 at offset 5"), "%s", err);
    hb.flags = 0;
    ls_frame_header_encode(&hb, buf);
    buf[7] = 1;
    cr_assert_eq(ls_frame_decode(buf, 8, &g, err, sizeof(err)), LS_EPROTO);
    cr_assert(ls_h_contains(err, "reserved 0x0100 at offset 6"), "%s", err);
    /* the body decoder checks what the header decoder would have */
    ls_frame_header_t bad = {0, 0x99, 0}, h32 = {32, LS_FRAME_HEARTBEAT, 0};
    cr_assert_eq(ls_frame_decode_body(&bad, body, 0, &g, err, sizeof(err)), LS_EPROTO);
    cr_assert(ls_h_contains(err, "unknown frame type 0x99"), "%s", err);
    cr_assert_eq(ls_frame_decode_body(&h32, body, 31, &g, err, sizeof(err)), LS_EFRAMETRUNC);
    cr_assert(ls_h_contains(err, "HEARTBEAT: body of 31 bytes but header says 32"), "%s", err);
}

/* Decodes sample(type) after patching one body byte range. */
static int decode_patched(uint8_t type, size_t off, const void *bytes, size_t n, char *err)
{
    static ls_frame_t f, g;
    size_t len;
    uint8_t *buf = encode_sample(type, &f, &len);
    memcpy(buf + LS_FRAME_HEADER_SIZE + off, bytes, n);
    err[0] = 0;
    int rc = ls_frame_decode(buf, len, &g, err, 256);
    free(buf);
    return rc;
}

Test(proto, bad_values_refused_with_field_and_offset)
{
    char err[256];
    const uint8_t zero8[8] = {0}, three = 3, pos[4] = {1, 0, 0, 0}, nul = 0;
    cr_assert_eq(decode_patched(LS_FRAME_HELLO, 0, "LSHQ", 4, err), LS_EBADMAGIC);
    cr_assert(ls_h_contains(err, "HELLO: field 'magic' at offset 0"), "%s", err);
    cr_assert_eq(decode_patched(LS_FRAME_HELLO, 4, zero8, 2, err), LS_EPROTO);
    const uint8_t big_window[4] = {1, 0, 0, 0x40}; /* 2^30 + 1 */
    cr_assert_eq(decode_patched(LS_FRAME_HELLO, 18, big_window, 4, err), LS_EPROTO);
    cr_assert(ls_h_contains(err, "'conn_window' at offset 18"), "%s", err);
    cr_assert_eq(decode_patched(LS_FRAME_HELLO, 8, &three, 1, err), LS_EPROTO);
    cr_assert(ls_h_contains(err, "'purpose' at offset 8"), "%s", err);
    cr_assert_eq(decode_patched(LS_FRAME_HELLO, 24, &nul, 1, err), LS_EPROTO); /* NUL in node */
    cr_assert(ls_h_contains(err, "'node' at offset 22"), "%s", err);
    cr_assert_eq(decode_patched(LS_FRAME_ERROR, 16, pos, 4, err), LS_EPROTO);
    cr_assert(ls_h_contains(err, "ERROR: field 'code' at offset 16"), "%s", err);
    cr_assert_eq(decode_patched(LS_FRAME_GEN_BEGIN, 20, zero8, 8, err), LS_EPROTO);
    cr_assert(ls_h_contains(err, "'generation' at offset 20"), "%s", err);
    cr_assert_eq(decode_patched(LS_FRAME_CREDIT, 16, zero8, 4, err), LS_EPROTO);
    cr_assert_eq(decode_patched(LS_FRAME_RESUME, 20, zero8, 8, err), LS_EPROTO);
    cr_assert_eq(decode_patched(LS_FRAME_SEED_BEGIN, 72, zero8, 4, err), LS_EPROTO);
    cr_assert(ls_h_contains(err, "'epoch' at offset 72"), "%s", err);
    cr_assert_eq(decode_patched(LS_FRAME_WELCOME, 25 + 16, &three, 1, err), LS_EPROTO);
    cr_assert(ls_h_contains(err, "'dbs[].status' at offset 41"), "%s", err);
}

Test(proto, seed_hello_must_name_one_database)
{
    static ls_frame_t f;
    sample(LS_FRAME_HELLO, &f);
    f.hello.purpose = LS_PURPOSE_SEED;
    cr_assert_eq(ls_frame_size(&f), LS_EINVAL);
    f.hello.db_count = 1;
    cr_assert_gt(ls_frame_size(&f), 0);
}

Test(proto, encode_head_leaves_the_chunk_to_the_caller)
{
    static ls_frame_t f;
    size_t len;
    uint8_t *full = encode_sample(LS_FRAME_GEN_DATA, &f, &len);
    uint8_t head[64];
    ssize_t n = ls_frame_encode_head(&f, head, sizeof(head));
    cr_assert_eq(n, (ssize_t) (len - f.gen_data.len));
    cr_assert_arr_eq(head, full, (size_t) n);
    cr_assert_arr_eq(full + n, f.gen_data.data, f.gen_data.len);
    for (size_t cap = 0; cap < len; cap++) /* every too-small buffer is refused */
        cr_assert_eq(ls_frame_encode(&f, full, cap), LS_ETOOBIG);
    sample(LS_FRAME_SEED_DATA, &f);
    cr_assert_eq(ls_frame_encode_head(&f, head, sizeof(head)), ls_frame_size(&f) - f.seed_data.len);
    sample(LS_FRAME_CREDIT, &f);
    cr_assert_eq(ls_frame_encode_head(&f, head, sizeof(head)), ls_frame_size(&f));
    free(full);
}

Test(proto, unsupported_version_gets_a_clear_error_frame)
{
    static ls_frame_t f, err_frame, g;
    char msg[LS_PROTO_MSG_MAX], err[256];
    ls_proto_choice_t choice;
    ls_proto_offer_t ours = {0};
    sample(LS_FRAME_HELLO, &f);
    f.hello.version_min = 6;
    f.hello.version_max = 7;
    int rc = ls_proto_negotiate(&f.hello, &ours, &choice, &err_frame, msg, sizeof(msg));
    cr_assert_eq(rc, LS_EUNSUPPORTED);
    cr_assert_eq(err_frame.type, LS_FRAME_ERROR);
    cr_assert_eq(err_frame.error.code, LS_EUNSUPPORTED);
    cr_assert_str_eq(msg, "unsupported protocol version 6..7 (this node speaks 1..5)");
    uint8_t buf[2048];
    ssize_t n = ls_frame_encode(&err_frame, buf, sizeof(buf));
    cr_assert_gt(n, 0);
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), 0, "%s", err);
    frame_eq(&err_frame, &g);
}

Test(proto, negotiation_picks_highest_common_version_and_feature_subset)
{
    static ls_frame_t f;
    ls_proto_choice_t c;
    sample(LS_FRAME_HELLO, &f); /* 1..3, zstd level -3, cksum, an unknown bit */
    ls_proto_offer_t ours = {.version_min = 1, .version_max = 2, .features = LS_FEAT_ZSTD};
    cr_assert_eq(ls_proto_negotiate(&f.hello, &ours, &c, NULL, NULL, 0), 0);
    cr_assert_eq(c.version, 2);
    cr_assert_eq(c.features, LS_FEAT_ZSTD);
    cr_assert_eq(c.zstd_level, -3);
    f.hello.zstd_level = 19;
    ours.zstd_level_max = 3;
    cr_assert_eq(ls_proto_negotiate(&f.hello, &ours, &c, NULL, NULL, 0), 0);
    cr_assert_eq(c.zstd_level, 3);
    ours.features = LS_FEAT_CKSUM;
    cr_assert_eq(ls_proto_negotiate(&f.hello, &ours, &c, NULL, NULL, 0), 0);
    cr_assert(c.features == LS_FEAT_CKSUM && c.zstd_level == 0);
}

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
