/*
 * credit: per-database byte credit ledgers (see credit.h).
 *
 * Invariants, per database and likewise for the connection-wide window:
 *   sender:   credit <= window
 *   receiver: outstanding + held + ungranted == window
 * where outstanding is what the sender may still send, held what arrived and is not consumed yet,
 * ungranted what was consumed and not yet granted back.
 */
#include <stdlib.h>

#include "core/core.h"
#include "transport/credit.h"

struct tx_db {
    uint64_t credit;  /* bytes the receiver still accepts from us */
    uint64_t backlog; /* bytes waiting to be sent */
};

struct ls_credit_tx {
    uint64_t window;      /* bytes, per database */
    uint64_t conn_window; /* bytes, whole connection */
    struct tx_db conn;    /* connection-wide credit (backlog unused) */
    struct tx_db *db;     /* databases, by index */
    int n;                /* databases added */
    int cap;              /* entries allocated in db */
    int last;             /* index picked last by _next (-1: none yet) */
};

struct rx_db {
    uint64_t outstanding; /* bytes the sender may still send (its credit as we see it) */
    uint64_t held;        /* bytes received and not consumed yet */
    uint64_t ungranted;   /* bytes consumed and not granted back yet */
};

struct ls_credit_rx {
    uint64_t window;      /* bytes, per database */
    uint64_t conn_window; /* bytes, whole connection */
    struct rx_db conn;    /* connection-wide counters */
    struct rx_db *db;     /* databases, by index */
    int n;                /* databases added */
    int cap;              /* entries allocated in db */
};

/* Grows *arr (elements of size sz) so that index n fits; returns 0 or an error. */
static int grow(void **arr, int *cap, int n, size_t sz)
{
    if (n >= LS_CREDIT_MAX_DBS) return LS_ETOOBIG;
    if (n < *cap) return 0;
    int ncap = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, (size_t) ncap * sz);
    if (!p) return LS_ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

ls_credit_tx_t *ls_credit_tx_new(uint64_t db_window, uint64_t conn_window)
{
    ls_credit_tx_t *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->window = db_window ? db_window : LS_PROTO_DB_WINDOW_DEFAULT;
    c->conn_window = conn_window ? conn_window : LS_PROTO_CONN_WINDOW_DEFAULT;
    c->conn.credit = c->conn_window;
    c->last = -1;
    return c;
}

void ls_credit_tx_free(ls_credit_tx_t *c)
{
    if (!c) return;
    free(c->db);
    free(c);
}

int ls_credit_tx_db_add(ls_credit_tx_t *c)
{
    int rc = grow((void **) &c->db, &c->cap, c->n, sizeof(*c->db));
    if (rc) return rc;
    c->db[c->n] = (struct tx_db){.credit = c->window, .backlog = 0};
    return c->n++;
}

void ls_credit_tx_backlog_add(ls_credit_tx_t *c, int db, uint64_t bytes)
{
    LS_ASSERT(db >= 0 && db < c->n);
    c->db[db].backlog += bytes;
}

int ls_credit_tx_next(ls_credit_tx_t *c, uint64_t max_chunk, int *db, uint64_t *len)
{
    LS_ASSERT(max_chunk > 0);
    if (!c->conn.credit) return LS_EBUSY;
    for (int k = 1; k <= c->n; k++) {
        int i = (c->last + k) % c->n;
        const struct tx_db *d = &c->db[i];
        if (!d->backlog || !d->credit) continue;
        c->last = i;
        *db = i;
        *len = LS_MIN(LS_MIN(max_chunk, c->conn.credit), LS_MIN(d->credit, d->backlog));
        return 0;
    }
    return LS_EBUSY;
}

int ls_credit_tx_sent(ls_credit_tx_t *c, int db, uint64_t len)
{
    LS_ASSERT(db >= 0 && db < c->n);
    struct tx_db *d = &c->db[db];
    if (len > d->credit || len > d->backlog || len > c->conn.credit) return LS_EINVAL;
    c->conn.credit -= len;
    d->credit -= len;
    d->backlog -= len;
    return 0;
}

int ls_credit_tx_grant(ls_credit_tx_t *c, int db, uint64_t bytes)
{
    LS_ASSERT(db >= 0 && db < c->n);
    struct tx_db *d = &c->db[db];
    if (bytes > c->window - d->credit) return LS_EPROTO;
    d->credit += bytes;
    return 0;
}

int ls_credit_tx_grant_conn(ls_credit_tx_t *c, uint64_t bytes)
{
    if (bytes > c->conn_window - c->conn.credit) return LS_EPROTO;
    c->conn.credit += bytes;
    return 0;
}

uint64_t ls_credit_tx_conn_credit(const ls_credit_tx_t *c)
{
    return c->conn.credit;
}

uint64_t ls_credit_tx_credit(const ls_credit_tx_t *c, int db)
{
    LS_ASSERT(db >= 0 && db < c->n);
    return c->db[db].credit;
}

void ls_credit_tx_backlog_drop(ls_credit_tx_t *c, int db)
{
    LS_ASSERT(db >= 0 && db < c->n);
    c->db[db].backlog = 0;
}

uint64_t ls_credit_tx_backlog(const ls_credit_tx_t *c, int db)
{
    LS_ASSERT(db >= 0 && db < c->n);
    return c->db[db].backlog;
}

ls_credit_rx_t *ls_credit_rx_new(uint64_t db_window, uint64_t conn_window)
{
    ls_credit_rx_t *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->window = db_window ? db_window : LS_PROTO_DB_WINDOW_DEFAULT;
    c->conn_window = conn_window ? conn_window : LS_PROTO_CONN_WINDOW_DEFAULT;
    c->conn.outstanding = c->conn_window;
    return c;
}

void ls_credit_rx_free(ls_credit_rx_t *c)
{
    if (!c) return;
    free(c->db);
    free(c);
}

int ls_credit_rx_db_add(ls_credit_rx_t *c)
{
    int rc = grow((void **) &c->db, &c->cap, c->n, sizeof(*c->db));
    if (rc) return rc;
    c->db[c->n] = (struct rx_db){.outstanding = c->window};
    return c->n++;
}

int ls_credit_rx_received(ls_credit_rx_t *c, int db, uint64_t len)
{
    LS_ASSERT(db >= 0 && db < c->n);
    struct rx_db *d = &c->db[db];
    if (len > d->outstanding || len > c->conn.outstanding) return LS_EPROTO;
    d->outstanding -= len;
    d->held += len;
    c->conn.outstanding -= len;
    c->conn.held += len;
    return 0;
}

/* Moves len from held to ungranted; returns the grant due now (a quarter of window or more). */
static uint64_t consume(struct rx_db *d, uint64_t window, uint64_t len)
{
    LS_ASSERT(len <= d->held);
    d->held -= len;
    d->ungranted += len;
    if (d->ungranted < window / 4) return 0;
    uint64_t grant = d->ungranted;
    d->ungranted = 0;
    d->outstanding += grant;
    return grant;
}

uint64_t ls_credit_rx_consumed(ls_credit_rx_t *c, int db, uint64_t len, uint64_t *conn_grant)
{
    LS_ASSERT(db >= 0 && db < c->n);
    *conn_grant = consume(&c->conn, c->conn_window, len);
    return consume(&c->db[db], c->window, len);
}

uint64_t ls_credit_rx_outstanding(const ls_credit_rx_t *c, int db)
{
    LS_ASSERT(db >= 0 && db < c->n);
    return c->db[db].outstanding;
}
