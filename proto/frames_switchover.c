/*
 * proto/frames_switchover.c: the planned switchover's frames (version 5): SWITCHOVER and
 * SWITCHOVER_DONE. Layouts: proto/PROTOCOL.md, "Switchover"; the field order here is the wire
 * order.
 */
#include "core/core.h"
#include "proto/wire.h"

void ls__visit_switchover(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_switchover_t *m = &f->switchover;
    ls__io_fixed(io, "dbid", m->dbid, LS_PROTO_DBID_LEN);
    ls__io_u32(io, "epoch", &m->epoch);
    ls__io_require(io, m->epoch >= 2, "epoch %u: a switchover starts epoch 2 or later",
                   (unsigned) m->epoch);
    ls__io_u64(io, "last_generation", &m->last_generation);
    ls__io_require_gen(io, m->last_generation);
    ls__io_u64(io, "last_lsn", &m->last_lsn);
    ls__io_u64(io, "last_close_ns", &m->last_close_ns);
}

void ls__visit_switchover_done(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_switchover_done_t *m = &f->switchover_done;
    ls__io_fixed(io, "dbid", m->dbid, LS_PROTO_DBID_LEN);
    ls__io_i32(io, "code", &m->code);
    ls__io_require(io, m->code <= 0, "%d is neither 0 nor an error code (negative)", (int) m->code);
    ls__io_u32(io, "epoch", &m->epoch);
    ls__io_require(io, m->code ? m->epoch == 0 : m->epoch >= 2,
                   m->code ? "epoch %u in a refusal (must be 0)"
                           : "epoch %u: an activation by switchover starts epoch 2 or later",
                   (unsigned) m->epoch);
    ls__io_u64(io, "first_generation", &m->first_generation);
    ls__io_require(io, m->code ? m->first_generation == 0 : m->first_generation >= 1,
                   m->code ? "first generation %llu in a refusal (must be 0)"
                           : "first generation %llu: generations start at 1",
                   (unsigned long long) m->first_generation);
    ls__io_str(io, "message", &m->message, 0, LS_PROTO_MSG_MAX);
}
