/*
 * A scripted plaintext peer for integration tests (pgBackRest's scripted server): it speaks
 * logship frames through proto/'s codec, one at a time, so that a test can say exactly what a
 * misbehaving or hand-driven node would say and check what a real daemon answers.
 *
 * Lifecycle: ls_h_sp_connect() (a client, towards a daemon's listen port) or ls_h_sp_listen()
 * then ls_h_sp_accept() (a server, which a daemon connects to); then ls_h_sp_send() and
 * ls_h_sp_expect() in the order of the script; ls_h_sp_close() closes the socket and frees it.
 *
 * Framing is that of a connection without TLS (proto/PROTOCOL.md §11): every frame is followed
 * by its checksum, seeded with the frame's sequence number in its direction; a received frame
 * whose checksum does not match fails the test. Once the handshake frame went by (WELCOME
 * received by a client, sent by a server) the peer sends a HEARTBEAT every 500 ms while it
 * waits in ls_h_sp_expect() / ls_h_sp_idle(), so that the daemon does not time it out.
 *
 * Threading: one peer belongs to one thread. Only 127.0.0.1 is used.
 */
#ifndef LS_TEST_SCRIPTED_H
#define LS_TEST_SCRIPTED_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/proto.h"

typedef struct ls_h_sp ls_h_sp_t;

/* Connects to 127.0.0.1:port (asserts success). */
ls_h_sp_t *ls_h_sp_connect(int port);
/* Listens on 127.0.0.1:port (0: any; the port is read back into *port). */
ls_h_sp_t *ls_h_sp_listen(int *port);
/* Accepts one connection within timeout_ms; false on timeout. */
bool ls_h_sp_accept(ls_h_sp_t *sp, int timeout_ms);
/* Closes the connection (and the listening socket) and frees sp; NULL is a no-op. */
void ls_h_sp_close(ls_h_sp_t *sp);

/* Encodes and sends f (asserts success). */
void ls_h_sp_send(ls_h_sp_t *sp, const ls_frame_t *f);
/* Waits up to timeout_ms for a frame of the given type, skipping others (HEARTBEAT, CREDIT,
 * COPY_STATE ...). The frame's byte and string fields point into sp's buffer: valid until the
 * next call on sp. NULL when the time ran out or the connection was closed (see
 * ls_h_sp_is_closed). */
const ls_frame_t *ls_h_sp_expect(ls_h_sp_t *sp, uint8_t type, int timeout_ms);
/* Reads (and drops) what arrives for ms, keeping the connection alive with heartbeats. */
void ls_h_sp_idle(ls_h_sp_t *sp, int ms);
/* Waits up to timeout_ms for the daemon to close the connection; true when it did. */
bool ls_h_sp_wait_closed(ls_h_sp_t *sp, int timeout_ms);
bool ls_h_sp_is_closed(const ls_h_sp_t *sp);

/* A HELLO (ship purpose, version 1, plaintext checksums) from node for db_count databases:
 * names[i] with dbids[i]. The strings must outlive the frame. */
void ls_h_sp_hello(ls_frame_t *f, const char *node, int db_count, const char *const names[],
                   const uint8_t (*dbids)[LS_PROTO_DBID_LEN]);

/* The database id in the header of a generation or current log file (asserts success). */
void ls_h_file_dbid(const char *path, uint8_t dbid[LS_PROTO_DBID_LEN]);
/* The same, of the first file of db_dir/logs/ matching the shell pattern glob ("E00-*.log"). */
void ls_h_logs_dbid(const char *db_dir, const char *glob, uint8_t dbid[LS_PROTO_DBID_LEN]);

#endif
