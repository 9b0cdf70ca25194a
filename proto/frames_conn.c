/*
 * proto/frames_conn.c: the connection family (HELLO, WELCOME, ERROR, HEARTBEAT) and version
 * negotiation. Layouts: proto/PROTOCOL.md; the field order here is the wire order.
 */
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "proto/wire.h"

/* The initial credit windows a data receiver announces (0: the defaults). */
static void visit_windows(ls__io_t *io, uint32_t *db_window, uint32_t *conn_window)
{
    ls__io_u32(io, "db_window", db_window);
    ls__io_require(io, *db_window <= LS_PROTO_WINDOW_MAX, "window of %u bytes exceeds %u",
                   (unsigned) *db_window, (unsigned) LS_PROTO_WINDOW_MAX);
    ls__io_u32(io, "conn_window", conn_window);
    ls__io_require(io, *conn_window <= LS_PROTO_WINDOW_MAX, "window of %u bytes exceeds %u",
                   (unsigned) *conn_window, (unsigned) LS_PROTO_WINDOW_MAX);
}

static void visit_hello_db(ls__io_t *io, ls_proto_db_t *db)
{
    ls__io_fixed(io, "dbs[].dbid", db->dbid, LS_PROTO_DBID_LEN);
    ls__io_str(io, "dbs[].name", &db->name, 0, LS_PROTO_DBNAME_MAX);
}

void ls__visit_hello(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_hello_t *m = &f->hello;
    uint8_t magic[4];
    memcpy(magic, LS_PROTO_MAGIC, sizeof(magic));
    ls__io_fixed(io, "magic", magic, sizeof(magic));
    if (!io->enc && memcmp(magic, LS_PROTO_MAGIC, sizeof(magic)) != 0)
        ls__io_fail(io, LS_EBADMAGIC, "bad magic %02x%02x%02x%02x (expected \"LSHP\")", magic[0],
                    magic[1], magic[2], magic[3]);
    ls__io_u16(io, "version_min", &m->version_min);
    ls__io_require(io, m->version_min >= 1, "protocol version 0 does not exist");
    ls__io_u16(io, "version_max", &m->version_max);
    ls__io_require(io, m->version_max >= m->version_min, "version range %u..%u is empty",
                   (unsigned) m->version_min, (unsigned) m->version_max);
    ls__io_u8(io, "purpose", &m->purpose);
    ls__io_require(io, m->purpose == LS_PURPOSE_SHIP || m->purpose == LS_PURPOSE_SEED,
                   "unknown purpose %u (1 ship, 2 seed)", (unsigned) m->purpose);
    ls__io_i8(io, "zstd_level", &m->zstd_level);
    ls__io_u32(io, "features", &m->features);
    visit_windows(io, &m->db_window, &m->conn_window);
    ls__io_str(io, "node", &m->node, 1, LS_PROTO_NODE_MAX);
    ls__io_u16(io, "db_count", &m->db_count);
    ls__io_require(io, m->db_count >= 1 && m->db_count <= LS_PROTO_DB_MAX,
                   "%u databases outside 1..%u", (unsigned) m->db_count, LS_PROTO_DB_MAX);
    ls__io_require(io, m->purpose != LS_PURPOSE_SEED || m->db_count == 1,
                   "a seed connection carries exactly one database, not %u",
                   (unsigned) m->db_count);
    for (unsigned i = 0; i < m->db_count && !io->code; i++)
        visit_hello_db(io, &m->dbs[i]);
}

static void visit_welcome_db(ls__io_t *io, ls_proto_db_result_t *db)
{
    ls__io_fixed(io, "dbs[].dbid", db->dbid, LS_PROTO_DBID_LEN);
    ls__io_u8(io, "dbs[].status", &db->status);
    ls__io_require(io, db->status == LS_DB_REFUSED || db->status == LS_DB_ACCEPTED,
                   "unknown status %u (0 refused, 1 accepted)", (unsigned) db->status);
    ls__io_i32(io, "dbs[].code", &db->code);
    if (db->status == LS_DB_ACCEPTED)
        ls__io_require(io, db->code == 0, "accepted database with code %d", (int) db->code);
    else
        ls__io_require_code(io, db->code);
    ls__io_str(io, "dbs[].reason", &db->reason, 0, LS_PROTO_REASON_MAX);
}

void ls__visit_welcome(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_welcome_t *m = &f->welcome;
    ls__io_u16(io, "version", &m->version);
    ls__io_require(io, m->version >= 1, "protocol version 0 does not exist");
    ls__io_u32(io, "features", &m->features);
    ls__io_i8(io, "zstd_level", &m->zstd_level);
    visit_windows(io, &m->db_window, &m->conn_window);
    ls__io_str(io, "node", &m->node, 1, LS_PROTO_NODE_MAX);
    ls__io_u16(io, "db_count", &m->db_count);
    ls__io_require(io, m->db_count <= LS_PROTO_DB_MAX, "%u databases exceed %u",
                   (unsigned) m->db_count, LS_PROTO_DB_MAX);
    for (unsigned i = 0; i < m->db_count && !io->code; i++)
        visit_welcome_db(io, &m->dbs[i]);
}

void ls__visit_error(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_error_t *m = &f->error;
    ls__io_fixed(io, "dbid", m->dbid, LS_PROTO_DBID_LEN);
    ls__io_i32(io, "code", &m->code);
    ls__io_require_code(io, m->code);
    ls__io_str(io, "message", &m->message, 0, LS_PROTO_MSG_MAX);
}

void ls__visit_heartbeat(ls__io_t *io, ls_frame_t *f)
{
    ls_proto_heartbeat_t *m = &f->heartbeat;
    ls__io_u64(io, "seq", &m->seq);
    ls__io_u64(io, "send_ns", &m->send_ns);
    ls__io_u64(io, "echo_ns", &m->echo_ns);
    ls__io_u64(io, "echo_delay_ns", &m->echo_delay_ns);
}

int ls_proto_negotiate(const ls_proto_hello_t *hello, const ls_proto_offer_t *ours,
                       ls_proto_choice_t *choice, ls_frame_t *error, char *msg, size_t msglen)
{
    uint16_t our_min = ours->version_min ? ours->version_min : LS_PROTO_VERSION_MIN;
    uint16_t our_max = ours->version_max ? ours->version_max : LS_PROTO_VERSION_MAX;
    uint16_t lo = LS_MAX(hello->version_min, our_min);
    uint16_t hi = LS_MIN(hello->version_max, our_max);
    if (lo > hi) {
        if (error) {
            error->type = LS_FRAME_ERROR;
            memset(&error->error, 0, sizeof(error->error));
            error->error.code = LS_EUNSUPPORTED;
            if (msg && msglen) {
                snprintf(msg, msglen,
                         "unsupported protocol version %u..%u (this node speaks %u..%u)",
                         (unsigned) hello->version_min, (unsigned) hello->version_max,
                         (unsigned) our_min, (unsigned) our_max);
                error->error.message = ls_proto_str(msg);
            }
        }
        return LS_EUNSUPPORTED;
    }
    memset(choice, 0, sizeof(*choice));
    choice->version = hi;
    choice->features = hello->features & ours->features;
    if (choice->features & LS_FEAT_ZSTD) {
        choice->zstd_level = (int8_t) ls_proto_zstd_level(hello->zstd_level);
        if (ours->zstd_level_max && choice->zstd_level > ours->zstd_level_max)
            choice->zstd_level = ours->zstd_level_max;
    }
    return 0;
}

int ls_proto_welcome_check(const ls_proto_hello_t *hello, const ls_proto_welcome_t *welcome,
                           bool dbs_match, char *msg, size_t msglen)
{
    if (welcome->version < hello->version_min || welcome->version > hello->version_max) {
        snprintf(msg, msglen, "WELCOME chose protocol version %u, outside the %u..%u offered",
                 (unsigned) welcome->version, (unsigned) hello->version_min,
                 (unsigned) hello->version_max);
        return LS_EPROTO;
    }
    if (welcome->features & ~hello->features) {
        snprintf(msg, msglen, "WELCOME accepts features 0x%x, only 0x%x were offered",
                 (unsigned) welcome->features, (unsigned) hello->features);
        return LS_EPROTO;
    }
    if (welcome->db_count != hello->db_count) {
        snprintf(msg, msglen, "WELCOME answers for %u databases, HELLO offered %u",
                 (unsigned) welcome->db_count, (unsigned) hello->db_count);
        return LS_EPROTO;
    }
    for (int i = 0; dbs_match && i < hello->db_count; i++)
        if (memcmp(welcome->dbs[i].dbid, hello->dbs[i].dbid, LS_PROTO_DBID_LEN)) {
            char got[2 * LS_PROTO_DBID_LEN + 1], want[2 * LS_PROTO_DBID_LEN + 1];
            for (int k = 0; k < LS_PROTO_DBID_LEN; k++) {
                snprintf(got + 2 * k, 3, "%02x", welcome->dbs[i].dbid[k]);
                snprintf(want + 2 * k, 3, "%02x", hello->dbs[i].dbid[k]);
            }
            snprintf(msg, msglen,
                     "WELCOME entry %d names database %s, which was not offered there (HELLO "
                     "entry %d is %.*s, %s)",
                     i + 1, got, i + 1, (int) hello->dbs[i].name.len, hello->dbs[i].name.ptr, want);
            return LS_EPROTO;
        }
    return 0;
}
