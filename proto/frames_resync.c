/*
 * proto/frames_resync.c: the frames of the incremental resync (version 4): CHAIN_REQ, CHAIN,
 * RESYNC, RESYNC_BEGIN. Layouts: proto/PROTOCOL.md; the field order here is the wire order.
 */
#include "core/core.h"
#include "proto/wire.h"

#define LINK_SIZE (4 + 8 + LS_PROTO_DIGEST_LEN) /* one CHAIN entry, bytes */

void ls__visit_chain_req(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_chain_req_t *m = &f->chain_req;
    ls__io_fixed(io, "dbid", m->dbid, LS_PROTO_DBID_LEN);
    ls__io_u64(io, "from_generation", &m->from_generation);
    ls__io_require_gen(io, m->from_generation);
}

void ls_proto_chain_link(const ls_proto_chain_t *c, size_t i, ls_proto_link_t *out)
{
    if (!c->raw) {
        *out = c->links[i];
        return;
    }
    const uint8_t *p = c->raw + i * LINK_SIZE;
    out->epoch = ls_get32(p);
    out->generation = ls_get64(p + 4);
    memcpy(out->digest, p + 12, LS_PROTO_DIGEST_LEN);
}

void ls__visit_chain(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_chain_t *m = &f->chain;
    ls__io_fixed(io, "dbid", m->dbid, LS_PROTO_DBID_LEN);
    ls__io_u32(io, "epoch", &m->epoch);
    ls__io_require_epoch(io, m->epoch);
    ls__io_str(io, "active", &m->active, 0, LS_PROTO_NODE_MAX);
    ls__io_u16(io, "count", &m->count);
    ls__io_require(io, m->count <= LS_PROTO_CHAIN_MAX, "%u entries, at most %u",
                   (unsigned) m->count, (unsigned) LS_PROTO_CHAIN_MAX);
    ls__io_require(io, io->enc ? (m->count == 0 || m->links || m->raw) : true, "NULL links");
    const uint8_t *raw = io->enc ? m->raw : NULL; /* a decoded frame re-encodes from its bytes */
    if (!io->enc && !io->code) m->raw = io->in + io->off;
    uint64_t prev = 0;
    for (size_t i = 0; i < m->count && !io->code; i++) {
        ls_proto_link_t l = {0};
        if (io->enc && m->links)
            l = m->links[i];
        else if (io->enc)
            ls_proto_chain_link(&(ls_proto_chain_t){.raw = raw}, i, &l);
        ls__io_u32(io, "link.epoch", &l.epoch);
        ls__io_require(io, l.epoch >= 1, "entry %zu: epoch 0 does not exist", i);
        ls__io_u64(io, "link.generation", &l.generation);
        ls__io_require(io, l.generation > prev,
                       "entry %zu: generation %llu after %llu (must be "
                       "increasing, from 1)",
                       i, (unsigned long long) l.generation, (unsigned long long) prev);
        ls__io_fixed(io, "link.digest", l.digest, LS_PROTO_DIGEST_LEN);
        prev = l.generation;
    }
    if (!io->enc && io->code) m->raw = NULL;
}

bool ls_proto_resync_key(const uint8_t *keys, size_t keys_len, size_t *off, const uint8_t **key,
                         size_t *len)
{
    if (*off + 2 > keys_len) return false;
    size_t n = ls_get16(keys + *off);
    if (n == 0 || n > LS_PROTO_KEY_MAX || *off + 2 + n > keys_len) return false;
    *key = keys + *off + 2;
    *len = n;
    *off += 2 + n;
    return true;
}

void ls__visit_resync(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_resync_t *m = &f->resync;
    ls__io_fixed(io, "dbid", m->dbid, LS_PROTO_DBID_LEN);
    ls__io_u32(io, "flags", &m->flags);
    ls__io_require(io, (m->flags & ~LS_RESYNC_FLAGS_KNOWN) == 0, "unknown flags 0x%x",
                   (unsigned) m->flags);
    ls__io_u64(io, "split_generation", &m->split_generation);
    ls__io_require_gen(io, m->split_generation);
    ls__io_u32(io, "split_epoch", &m->split_epoch);
    ls__io_require_epoch(io, m->split_epoch);
    ls__io_fixed(io, "split_digest", m->split_digest, LS_PROTO_DIGEST_LEN);
    ls__io_u32(io, "keys_len", &m->keys_len);
    ls__io_require(io, m->keys_len <= LS_FRAME_CHUNK_MAX, "%u bytes of keys, at most %u",
                   (unsigned) m->keys_len, (unsigned) LS_FRAME_CHUNK_MAX);
    bool head_only = io->head_only; /* the keys are not a data chunk: always written */
    io->head_only = false;
    ls__io_chunk(io, "keys", &m->keys, m->keys_len);
    io->head_only = head_only;
    if (io->code || m->keys_len == 0) return;
    size_t off = 0, n = 0, count = 0;
    const uint8_t *k;
    while (ls_proto_resync_key(m->keys, m->keys_len, &off, &k, &n))
        count++;
    ls__io_require(io, off == m->keys_len,
                   "key %zu at offset %zu is not a u16 length of 1..%d and its bytes", count, off,
                   LS_PROTO_KEY_MAX);
}

void ls__visit_resync_begin(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_resync_begin_t *m = &f->resync_begin;
    ls__visit_begin_head(io, m->dbid, &m->total_bytes, &m->last_lsn, &m->generation, m->prev_digest,
                         &m->epoch);
    ls__io_u64(io, "txid", &m->txid);
    ls__io_u64(io, "split_generation", &m->split_generation);
    ls__io_require_gen(io, m->split_generation);
    ls__io_u64(io, "keys", &m->keys);
    ls__io_u64(io, "store_bytes", &m->store_bytes);
}
