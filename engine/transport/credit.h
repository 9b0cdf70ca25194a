/*
 * credit: per-database byte credit, the flow control that lets one connection carry many
 * databases without one database's backlog starving another (DESIGN.md, "Wire protocol").
 *
 * Two ledgers, one per side of a connection:
 *   - ls_credit_tx_t (sender, the copier): per database the credit granted by the receiver and
 *     the backlog waiting to be sent; ls_credit_tx_next() picks the next database to send a chunk
 *     for, round-robin among the databases that have both backlog and credit, so a database with a
 *     huge backlog gets one chunk per turn like every other.
 *   - ls_credit_rx_t (receiver): per database the bytes received but not yet consumed (must stay
 *     within the window, else the peer broke the protocol) and the consumed bytes not yet granted
 *     back; ls_credit_rx_consumed() says when to send a CREDIT frame and for how many bytes.
 *
 * Credit is counted in data bytes (the chunk bytes of the data frames, not envelopes). Both sides
 * start every database with the per-database window (LS_PROTO_DB_WINDOW_DEFAULT, 4 MiB, unless
 * configured) and the connection with the connection-wide window (LS_PROTO_CONN_WINDOW_DEFAULT,
 * 16 MiB): a chunk needs both. A CREDIT frame carries an increment, for one database or (all-zero
 * database id) for the connection. Databases are identified by an index returned when they are
 * added (the caller maps its 128-bit database ids to indexes; at most LS_CREDIT_MAX_DBS per
 * connection).
 *
 * Lifecycle: _new, _db_add per database, then the accounting calls, then _free (NULL is a no-op).
 * Threading: none; a ledger belongs to the thread of its connection (the loop thread).
 * Pure bookkeeping: no I/O, no clock.
 */
#ifndef LS_TRANSPORT_CREDIT_H
#define LS_TRANSPORT_CREDIT_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

#define LS_CREDIT_MAX_DBS LS_PROTO_DB_MAX /* databases per connection */

/* ---- sender side ------------------------------------------------------------------------ */
typedef struct ls_credit_tx ls_credit_tx_t;

/* New sender ledger; db_window 0 means LS_PROTO_DB_WINDOW_DEFAULT, conn_window 0 means
 * LS_PROTO_CONN_WINDOW_DEFAULT. NULL on allocation failure. */
ls_credit_tx_t *ls_credit_tx_new(uint64_t db_window, uint64_t conn_window);
void ls_credit_tx_free(ls_credit_tx_t *c);
/* Adds a database with the initial credit of one window; returns its index (>= 0) or LS_ETOOBIG
 * beyond LS_CREDIT_MAX_DBS, LS_ENOMEM. */
int ls_credit_tx_db_add(ls_credit_tx_t *c);
/* Adds bytes to a database's backlog (bytes it wants to send). */
void ls_credit_tx_backlog_add(ls_credit_tx_t *c, int db, uint64_t bytes);
/* Forgets a database's backlog: what it wanted to send will not be sent (a generation abandoned
 * half-way, when shipping of that database stops or restarts). Its credit is unchanged. */
void ls_credit_tx_backlog_drop(ls_credit_tx_t *c, int db);
/* Picks the next database to send for, round-robin after the last one picked, among those with
 * backlog and credit; *len = min(max_chunk, credit, connection credit, backlog). Returns 0, or
 * LS_EBUSY when no database can send now (all empty or waiting for credit). Does not consume: call
 * _sent. */
int ls_credit_tx_next(ls_credit_tx_t *c, uint64_t max_chunk, int *db, uint64_t *len);
/* Records len bytes sent for db: takes them off its credit, the connection's and its backlog.
 * LS_EINVAL (nothing changed) when len exceeds one of them. */
int ls_credit_tx_sent(ls_credit_tx_t *c, int db, uint64_t len);
/* A CREDIT frame for db granted bytes more. LS_EPROTO (nothing changed) when the credit would
 * then exceed the window: the receiver granted bytes it never received. */
int ls_credit_tx_grant(ls_credit_tx_t *c, int db, uint64_t bytes);
/* A CREDIT frame for the whole connection (all-zero database id); LS_EPROTO as above. */
int ls_credit_tx_grant_conn(ls_credit_tx_t *c, uint64_t bytes);
uint64_t ls_credit_tx_credit(const ls_credit_tx_t *c, int db);  /* bytes it may send now */
uint64_t ls_credit_tx_conn_credit(const ls_credit_tx_t *c);     /* connection-wide, bytes */
uint64_t ls_credit_tx_backlog(const ls_credit_tx_t *c, int db); /* bytes waiting */

/* ---- receiver side ---------------------------------------------------------------------- */
typedef struct ls_credit_rx ls_credit_rx_t;

/* New receiver ledger; windows as for ls_credit_tx_new (both sides must agree). A CREDIT frame
 * is due once a quarter of a window has been consumed (batching grants). NULL if out of memory. */
ls_credit_rx_t *ls_credit_rx_new(uint64_t db_window, uint64_t conn_window);
void ls_credit_rx_free(ls_credit_rx_t *c);
int ls_credit_rx_db_add(ls_credit_rx_t *c); /* index (>= 0) or LS_ETOOBIG, LS_ENOMEM */
/* len data bytes arrived for db. LS_EPROTO when they exceed the window (the sender ignored
 * credit); the bytes are then not counted and the connection should be closed. */
int ls_credit_rx_received(ls_credit_rx_t *c, int db, uint64_t len);
/* len received bytes of db were consumed (made durable, handed on). Returns the increment to
 * grant db now in a CREDIT frame (0: not yet worth a frame) and sets *conn_grant to the
 * connection-wide increment due now (0: none); both already counted as granted. */
uint64_t ls_credit_rx_consumed(ls_credit_rx_t *c, int db, uint64_t len, uint64_t *conn_grant);
uint64_t ls_credit_rx_outstanding(const ls_credit_rx_t *c, int db); /* bytes the peer may send */

#endif
