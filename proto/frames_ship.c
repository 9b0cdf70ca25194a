/*
 * proto/frames_ship.c: the flow (RESUME, CREDIT, COPY_STATE, RE_OFFER, EPOCH), shipping (GEN_*),
 * acknowledgement (DURABLE, INSPECTED, REPLAYED*, ASK_AGAIN) and seeding (SEED_*) families.
 * Layouts: proto/PROTOCOL.md; the field order here is the wire order.
 */
#include "core/core.h"
#include "proto/wire.h"

void ls__visit_resume(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_resume_t *m = &f->resume;
    ls__io_fixed(io, "dbid", m->dbid, LS_PROTO_DBID_LEN);
    ls__io_u32(io, "epoch", &m->epoch);
    ls__io_u64(io, "next_generation", &m->next_generation);
    ls__io_require_gen(io, m->next_generation);
    ls__io_fixed(io, "last_digest", m->last_digest, LS_PROTO_DIGEST_LEN);
    ls__io_u64(io, "last_lsn", &m->last_lsn);
}

/* The dbid and flags that start a copy-state and a re-offer, refusing flags not in known. */
static void dbid_flags(ls__io_t *io, uint8_t *dbid, uint32_t *flags, uint32_t known)
{
    ls__io_fixed(io, "dbid", dbid, LS_PROTO_DBID_LEN);
    ls__io_u32(io, "flags", flags);
    ls__io_require(io, (*flags & ~known) == 0, "unknown flags 0x%x", (unsigned) *flags);
}

/* The dbid and generation that start the frames about one generation. */
static void dbid_epoch(ls__io_t *io, uint8_t *dbid, uint32_t *epoch)
{
    ls__io_fixed(io, "dbid", dbid, LS_PROTO_DBID_LEN);
    ls__io_u32(io, "epoch", epoch);
    ls__io_require_epoch(io, *epoch);
}

/* The generation after an epoch (BLOCK, BLOCK_ACK). */
static void dbid_gen_tail(ls__io_t *io, uint64_t *generation)
{
    ls__io_u64(io, "generation", generation);
    ls__io_require_gen(io, *generation);
}

static void dbid_gen(ls__io_t *io, uint8_t *dbid, uint64_t *generation)
{
    ls__io_fixed(io, "dbid", dbid, LS_PROTO_DBID_LEN);
    ls__io_u64(io, "generation", generation);
    ls__io_require_gen(io, *generation);
}

void ls__visit_credit(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_credit_t *m = &f->credit;
    ls__io_fixed(io, "dbid", m->dbid, LS_PROTO_DBID_LEN);
    ls__io_u32(io, "bytes", &m->bytes);
    ls__io_require(io, m->bytes >= 1 && m->bytes <= LS_PROTO_WINDOW_MAX,
                   "credit of %u bytes outside 1..%u", (unsigned) m->bytes,
                   (unsigned) LS_PROTO_WINDOW_MAX);
}

void ls__visit_copy_state(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_copy_state_t *m = &f->copy_state;
    dbid_flags(io, m->dbid, &m->flags, LS_COPY_FLAGS_KNOWN);
    ls__io_u64(io, "since_ns", &m->since_ns);
    ls__io_u64(io, "last_generated", &m->last_generated);
    ls__io_u64(io, "last_generated_ns", &m->last_generated_ns);
    ls__io_u64(io, "queue_count", &m->queue_count);
    ls__io_u64(io, "queue_bytes", &m->queue_bytes);
    ls__io_u64(io, "queue_oldest_ns", &m->queue_oldest_ns);
    ls__io_require(io, m->queue_count <= m->last_generated,
                   "queue of %llu generations past the last generated %llu",
                   (unsigned long long) m->queue_count, (unsigned long long) m->last_generated);
    ls__io_str(io, "comment", &m->comment, 0, LS_PROTO_REASON_MAX);
}

void ls__visit_re_offer(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_re_offer_t *m = &f->re_offer;
    dbid_flags(io, m->dbid, &m->flags, LS_REOFFER_FLAGS_KNOWN);
    ls__io_str(io, "reason", &m->reason, 0, LS_PROTO_REASON_MAX);
}

void ls__visit_epoch(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_epoch_t *m = &f->epoch;
    dbid_epoch(io, m->dbid, &m->epoch);
    ls__io_u64(io, "first_generation", &m->first_generation); /* 0: not known */
    ls__io_str(io, "active", &m->active, 0, LS_PROTO_NODE_MAX);
}

void ls__visit_gen_begin(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_gen_begin_t *m = &f->gen_begin;
    dbid_epoch(io, m->dbid, &m->epoch);
    ls__io_u64(io, "generation", &m->generation);
    ls__io_require_gen(io, m->generation);
    ls__io_u64(io, "size", &m->size);
    ls__io_u64(io, "close_ns", &m->close_ns);
}

/* The chunk of GEN_DATA and SEED_DATA: u32 length, bounded, then the bytes. */
static void visit_chunk(ls__io_t *io, uint64_t offset, const uint8_t **data, uint32_t *len)
{
    ls__io_u32(io, "len", len);
    ls__io_require(io, *len >= 1 && *len <= LS_FRAME_CHUNK_MAX, "chunk of %u bytes outside 1..%u",
                   (unsigned) *len, (unsigned) LS_FRAME_CHUNK_MAX);
    ls__io_require(io, offset <= UINT64_MAX - *len, "offset %llu + %u bytes overflows",
                   (unsigned long long) offset, (unsigned) *len);
    ls__io_chunk(io, "data", data, *len);
}

void ls__visit_gen_data(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_gen_data_t *m = &f->gen_data;
    dbid_gen(io, m->dbid, &m->generation);
    ls__io_u64(io, "offset", &m->offset);
    visit_chunk(io, m->offset, &m->data, &m->len);
}

void ls__visit_gen_end(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_gen_end_t *m = &f->gen_end;
    dbid_gen(io, m->dbid, &m->generation);
    ls__io_fixed(io, "digest", m->digest, LS_PROTO_DIGEST_LEN);
}

void ls__visit_block(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_block_t *m = &f->block;
    dbid_epoch(io, m->dbid, &m->epoch);
    dbid_gen_tail(io, &m->generation);
    ls__io_u64(io, "offset", &m->offset);
    ls__io_u64(io, "durable_lsn", &m->durable_lsn);
    visit_chunk(io, m->offset, &m->data, &m->len);
}

void ls__visit_block_ack(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_block_ack_t *m = &f->block_ack;
    dbid_epoch(io, m->dbid, &m->epoch);
    dbid_gen_tail(io, &m->generation);
    ls__io_u64(io, "offset", &m->offset);
    ls__io_u64(io, "durable_lsn", &m->durable_lsn);
    ls__io_u64(io, "applied_lsn", &m->applied_lsn);
}

void ls__visit_gen_ack(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_gen_ack_t *m = &f->durable; /* same member type as f->inspected */
    dbid_gen(io, m->dbid, &m->generation);
}

void ls__visit_replayed(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_replayed_t *m = &f->replayed; /* same member type as f->replayed_synced */
    dbid_gen(io, m->dbid, &m->generation);
    ls__io_u64(io, "lsn", &m->lsn);
}

void ls__visit_ask_again(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_ask_again_t *m = &f->ask_again;
    dbid_gen(io, m->dbid, &m->generation);
    ls__io_i32(io, "code", &m->code);
    ls__io_require_code(io, m->code);
    ls__io_str(io, "message", &m->message, 0, LS_PROTO_MSG_MAX);
}

void ls__visit_seed_begin(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_seed_begin_t *m = &f->seed_begin;
    ls__visit_begin_head(io, m->dbid, &m->total_bytes, &m->last_lsn, &m->generation, m->prev_digest,
                         &m->epoch);
}

void ls__visit_begin_head(ls__io_t *io, uint8_t *dbid, uint64_t *total_bytes, uint64_t *last_lsn,
                          uint64_t *generation, uint8_t *prev_digest, uint32_t *epoch)
{
    ls__io_fixed(io, "dbid", dbid, LS_PROTO_DBID_LEN);
    ls__io_u64(io, "total_bytes", total_bytes);
    ls__io_u64(io, "last_lsn", last_lsn);
    ls__io_u64(io, "generation", generation);
    ls__io_require_gen(io, *generation);
    ls__io_fixed(io, "prev_digest", prev_digest, LS_PROTO_DIGEST_LEN);
    ls__io_u32(io, "epoch", epoch);
    ls__io_require_epoch(io, *epoch);
}

void ls__visit_seed_data(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_seed_data_t *m = &f->seed_data;
    ls__io_u64(io, "offset", &m->offset);
    visit_chunk(io, m->offset, &m->data, &m->len);
}

void ls__visit_seed_end(ls__io_t *io, ls_frame_t *f)
{
    ls__io_fixed(io, "digest", f->seed_end.digest, LS_PROTO_DIGEST_LEN);
}
