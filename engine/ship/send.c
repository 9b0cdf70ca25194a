/* ship: frames out (GEN_BEGIN / GEN_DATA / GEN_END, COPY_STATE, ERROR) and the reader whose
 * buffers they carry (see ship.h). A frame the send callback refuses with LS_EBUSY is tried
 * again at the next pump: nothing is lost, nothing goes out of order. */
#include <stdio.h>
#include <string.h>

#include "proto/frame.h"
#include "ship/ship_int.h"

/* ---- the reader: the one given, or engine/source's ----------------------------------------- */
static int reader_start(ls_ship_t *m, uint64_t first, const uint8_t *prev, uint64_t full_gen,
                        void **out)
{
    ls_reader_options_t o = {.prev_digest = prev, .verify = m->o.verify, .full_gen = full_gen};
    if (m->o.reader) return m->o.reader->start(m->o.reader_ctx, m->src, first, &o, out);
    return ls_reader_start(m->src, first, &o, m->o.notify_cb, m->o.notify_ctx,
                           (ls_reader_t **) out);
}

static int reader_next(ls_ship_t *m, const ls_gen_buf_t **g)
{
    return m->o.reader ? m->o.reader->next(m->reader, g) : ls_reader_next(m->reader, g);
}

static void reader_release(ls_ship_t *m, const ls_gen_buf_t *g)
{
    if (m->o.reader)
        m->o.reader->release(m->reader, g);
    else
        ls_reader_release(m->reader, g);
}

static const char *reader_error(ls_ship_t *m)
{
    return m->o.reader ? m->o.reader->error(m->reader) : ls_reader_error(m->reader);
}

int ls__ship_reader_start(ls_ship_t *m, uint64_t first, const uint8_t *prev_digest,
                          uint64_t full_gen)
{
    int rc = reader_start(m, first, prev_digest, full_gen, &m->reader);
    if (rc) {
        m->reader = NULL;
        ls__ship_set_state(m, LS_SHIP_FAILED, "cannot start the log reader at %llu: %s",
                           (unsigned long long) first, ls_strerror(rc));
        return rc;
    }
    m->next = first;
    m->o.action_cb(m->o.ctx, &(ls_ship_action_t){.kind = LS_SHIP_ACT_READER_START, .gen = first});
    return 0;
}

void ls__ship_reader_stop(ls_ship_t *m)
{
    if (!m->reader) return;
    uint64_t at = m->cur ? m->cur->generation : m->next;
    if (m->cur) reader_release(m, m->cur);
    m->cur = NULL;
    m->cur_off = 0;
    m->begun = false;
    if (m->o.reader)
        m->o.reader->stop(m->reader);
    else
        ls_reader_stop(m->reader);
    m->reader = NULL;
    m->o.action_cb(m->o.ctx, &(ls_ship_action_t){.kind = LS_SHIP_ACT_READER_STOP, .gen = at});
}

/* ---- single frames ----------------------------------------------------------------------------
 */
static int send(ls_ship_t *m, const ls_frame_t *f)
{
    return m->o.send_cb(m->o.ctx, f);
}

/* Tells the target why this copy stopped (it shows the same state). */
static int send_error(ls_ship_t *m)
{
    ls_frame_t f = {.type = LS_FRAME_ERROR};
    memcpy(f.error.dbid, m->dbid, LS_DBID_LEN);
    f.error.code = m->err_due;
    f.error.message = ls_proto_str(m->reason);
    int rc = send(m, &f);
    if (rc != LS_EBUSY) m->err_due = 0; /* sent, or the connection is closing */
    return rc;
}

void ls__ship_fail(ls_ship_t *m, int code)
{
    if (!m->connected) return;
    m->err_due = code ? code : LS_EIO;
    send_error(m);
}

void ls__ship_send_state(ls_ship_t *m, bool force)
{
    if (!m->connected || !m->accepted || !m->src || m->fenced) return;
    ls_frame_t f = {.type = LS_FRAME_COPY_STATE};
    ls_proto_copy_state_t *cs = &f.copy_state;
    char err[LS_SOURCE_ERRLEN];
    ls_source_queue_t q = {0};
    ls_source_last_closed(m->src, &cs->last_generated, &cs->last_generated_ns, err, sizeof(err));
    ls_source_queue(m->src, m->durable.gen, &q, err, sizeof(err));
    bool apply = m->blk.apply && m->blk.apply_wanted;
    if (!force && !m->cs_due && cs->last_generated == m->cs_sent_gen &&
        m->durable.gen == m->cs_sent_durable && apply == m->cs_sent_apply)
        return;
    memcpy(cs->dbid, m->dbid, LS_DBID_LEN);
    cs->flags = (m->o.op.suspended ? LS_COPY_SUSPENDED : 0) | (apply ? LS_COPY_APPLY : 0);
    cs->since_ns = m->o.op.since_ns;
    cs->queue_count = LS_MIN(q.count, cs->last_generated);
    cs->queue_bytes = q.bytes;
    cs->queue_oldest_ns = q.oldest_close_ns;
    cs->comment = ls_proto_str(m->o.op.comment);
    m->cs_due = true;
    int rc = send(m, &f);
    if (rc == LS_EBUSY) return; /* the next pump tries again */
    m->cs_due = false;
    m->cs_sent_gen = cs->last_generated;
    m->cs_sent_durable = m->durable.gen;
    m->cs_sent_apply = apply;
}

_Static_assert(LS_PROTO_GEN_TRAILER_LEN == LS_GEN_TRAILER_SIZE, "the trailer's size");

/* GEN_BEGIN, or GEN_TAIL when the target's shadow holds the generation's head (block.c): its
 * GEN_DATA then start there. */
static int send_begin(ls_ship_t *m)
{
    uint64_t start = ls__ship_block_start(m, m->cur);
    ls_frame_t f = {.type = start ? LS_FRAME_GEN_TAIL : LS_FRAME_GEN_BEGIN};
    memcpy(f.gen_begin.dbid, m->dbid, LS_DBID_LEN);
    f.gen_begin.epoch = m->cur->epoch;
    f.gen_begin.generation = m->cur->generation;
    f.gen_begin.size = m->cur->size;
    f.gen_begin.close_ns = m->cur->close_ns;
    f.gen_begin.start = start;
    int rc = send(m, &f);
    if (rc) return rc;
    m->begun = true;
    m->cur_off = start;
    return 0;
}

static int send_end(ls_ship_t *m)
{
    ls_frame_t f = {.type = LS_FRAME_GEN_END};
    memcpy(f.gen_end.dbid, m->dbid, LS_DBID_LEN);
    f.gen_end.generation = m->cur->generation;
    memcpy(f.gen_end.digest, m->cur->digest, LS_DIGEST_SIZE);
    int rc = send(m, &f);
    if (rc) return rc;
    m->next = m->cur->generation + 1;
    m->sent_gens++;
    reader_release(m, m->cur);
    m->cur = NULL;
    m->begun = false;
    return 0;
}

/* ---- the generation stream --------------------------------------------------------------------
 */
/* Takes the next generation from the reader (restarting it first when asked again). Returns 0
 * with m->cur set, LS_EBUSY when none is ready, another code when shipping stopped. */
static int take(ls_ship_t *m)
{
    if (m->restart_from) {
        uint64_t from = m->restart_from, full = m->restart_full;
        ls__ship_reader_stop(m);
        m->restart_from = m->restart_full = 0;
        /* Damage: the generation is verified FULL before it goes again, so one damaged on this
         * disk (a record changed and its checksum redone: only the digest tells) fails the copy
         * as a damaged generation does, and one damaged in transit is sent again. */
        int rc = ls__ship_reader_start(m, from, NULL, full >= from ? full : 0);
        if (rc) return rc;
    }
    int rc = reader_next(m, &m->cur);
    if (rc == 0) {
        m->cur_off = 0;
        m->begun = false;
        return 0;
    }
    m->cur = NULL;
    if (rc == LS_EBUSY) return rc;
    ls__ship_set_state(m, LS_SHIP_FAILED, "%s", reader_error(m));
    ls__ship_reader_stop(m);
    ls__ship_fail(m, rc);
    return rc;
}

/* The current generation's data went out as far as the reader verified it. 0 while it is still
 * being read (the reader notifies as it grows); when the reader failed on it (a late mismatch:
 * "stream while verifying"), the generation is aborted: no GEN_END, so the target never makes it
 * durable; the copy fails with the reader's reason, as for a generation that failed before its
 * first byte went out. */
static int stalled(ls_ship_t *m)
{
    if (m->cur_off < ls_gen_buf_avail(m->cur)) return 0;
    if (!reader_error(m)[0]) return 0;
    /* Failed on the current generation: nothing is queued behind it, next gives the code. */
    const ls_gen_buf_t *g = NULL;
    int rc = reader_next(m, &g);
    LS_CHECK(rc != 0); /* a reader stops at its first failure: nothing can follow it */
    if (rc == LS_EBUSY) rc = LS_ECORRUPT;
    ls__ship_set_state(m, LS_SHIP_FAILED, "%s", reader_error(m));
    ls__ship_reader_stop(m);
    ls__ship_fail(m, rc);
    return 0;
}

int ls_ship_pump(ls_ship_t *m, uint64_t now)
{
    ls__ship_block_check(m, now);
    if (!m->connected) return 0;
    if (m->err_due && send_error(m) == LS_EBUSY) return LS_EBUSY;
    if (m->cs_due) ls__ship_send_state(m, true);
    if (m->cs_due) return LS_EBUSY;
    while (m->reader) {
        if (!m->cur) {
            int rc = take(m);
            if (rc) return 0; /* nothing ready (the reader notifies), or stopped */
        }
        if (!m->begun) {
            /* the stream first sends what was published of it: then only the rest goes */
            if (ls__ship_block_finishing(m, m->cur)) return 0;
            int rc = send_begin(m);
            if (rc) return rc;
        }
        if (m->cur_off < m->cur->size) return stalled(m); /* ls_ship_send_chunk sends data */
        int rc = send_end(m);
        if (rc) return rc;
    }
    return 0;
}

int64_t ls_ship_send_chunk(ls_ship_t *m, uint64_t max_len, uint64_t now)
{
    if (!m->connected) return 0;
    int64_t n = ls__ship_block_chunk(m, max_len, now);      /* block mode first, if it is on */
    if (n > 0 && m->cur && !m->begun) ls_ship_pump(m, now); /* the stream's end: GEN_TAIL */
    if (n != 0 || !m->cur) return n;
    if (!m->begun) return 0;
    uint64_t avail = ls_gen_buf_avail(m->cur); /* what the reader verified so far */
    if (m->cur_off >= avail) return 0;
    uint64_t len = LS_MIN(LS_MIN(max_len, m->credit), avail - m->cur_off);
    len = LS_MIN(len, LS_FRAME_CHUNK_MAX);
    if (len == 0) return 0;
    ls_frame_t f = {.type = LS_FRAME_GEN_DATA};
    memcpy(f.gen_data.dbid, m->dbid, LS_DBID_LEN);
    f.gen_data.generation = m->cur->generation;
    f.gen_data.offset = m->cur_off;
    f.gen_data.data = m->cur->bytes + m->cur_off;
    f.gen_data.len = (uint32_t) len;
    int rc = send(m, &f);
    if (rc) return rc;
    m->credit -= len;
    m->cur_off += len;
    m->sent_bytes += len;
    ls_ship_pump(m, now); /* GEN_END and the next GEN_BEGIN */
    return (int64_t) len;
}

void ls_ship_tick(ls_ship_t *m, uint64_t now)
{
    ls__ship_send_state(m, false);
    ls_ship_pump(m, now);
}
