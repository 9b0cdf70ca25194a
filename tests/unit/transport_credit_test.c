/* transport/credit: per-database byte credit, window enforcement and fairness. */
#include <criterion/criterion.h>

#include "core/core.h"
#include "transport/credit.h"

#define MiB (1024ull * 1024ull)

Test(transport_credit, sender_stops_at_window_and_resumes_on_grant, .timeout = 10)
{
    ls_credit_tx_t *tx = ls_credit_tx_new(0, 0);
    int a = ls_credit_tx_db_add(tx);
    cr_assert_eq(a, 0);
    cr_assert_eq(ls_credit_tx_credit(tx, a), LS_PROTO_DB_WINDOW_DEFAULT, "4 MiB by default");
    ls_credit_tx_backlog_add(tx, a, 10 * MiB);
    int db;
    uint64_t len, sent = 0;
    while (ls_credit_tx_next(tx, MiB, &db, &len) == 0) {
        cr_assert_eq(db, a);
        cr_assert_leq(len, MiB);
        cr_assert_eq(ls_credit_tx_sent(tx, db, len), 0);
        sent += len;
    }
    cr_assert_eq(sent, 4 * MiB, "exactly one window goes out without credit");
    cr_assert_eq(ls_credit_tx_next(tx, MiB, &db, &len), LS_EBUSY);
    cr_assert_eq(ls_credit_tx_sent(tx, a, 1), LS_EINVAL, "cannot send without credit");
    cr_assert_eq(ls_credit_tx_grant(tx, a, MiB), 0);
    cr_assert_eq(ls_credit_tx_next(tx, 4 * MiB, &db, &len), 0);
    cr_assert_eq(len, MiB);
    cr_assert_eq(ls_credit_tx_grant(tx, a, 4 * MiB), LS_EPROTO, "grant beyond the window");
    cr_assert_eq(ls_credit_tx_credit(tx, a), MiB, "a refused grant changes nothing");
    ls_credit_tx_free(tx);
    ls_credit_tx_free(NULL);
}

Test(transport_credit, receiver_refuses_bytes_beyond_window_and_batches_grants, .timeout = 10)
{
    ls_credit_rx_t *rx = ls_credit_rx_new(4 * MiB, 16 * MiB);
    int a = ls_credit_rx_db_add(rx);
    cr_assert_eq(ls_credit_rx_received(rx, a, 4 * MiB), 0);
    cr_assert_eq(ls_credit_rx_received(rx, a, 1), LS_EPROTO, "sender ignored its credit");
    uint64_t conn_grant;
    cr_assert_eq(ls_credit_rx_consumed(rx, a, 512 * 1024, &conn_grant), 0, "too small to grant");
    cr_assert_eq(conn_grant, 0);
    cr_assert_eq(ls_credit_rx_consumed(rx, a, 512 * 1024, &conn_grant), MiB, "quarter window");
    cr_assert_eq(ls_credit_rx_outstanding(rx, a), MiB);
    cr_assert_eq(ls_credit_rx_received(rx, a, MiB), 0);
    ls_credit_rx_free(rx);
}

Test(transport_credit, connection_window_bounds_all_databases, .timeout = 10)
{
    ls_credit_tx_t *tx = ls_credit_tx_new(4 * MiB, 6 * MiB);
    int a = ls_credit_tx_db_add(tx), b = ls_credit_tx_db_add(tx);
    ls_credit_tx_backlog_add(tx, a, 100 * MiB);
    ls_credit_tx_backlog_add(tx, b, 100 * MiB);
    int db;
    uint64_t len, sent = 0;
    while (ls_credit_tx_next(tx, MiB, &db, &len) == 0) {
        cr_assert_eq(ls_credit_tx_sent(tx, db, len), 0);
        sent += len;
    }
    cr_assert_eq(sent, 6 * MiB, "two databases together stop at the connection window");
    cr_assert_eq(ls_credit_tx_conn_credit(tx), 0);
    cr_assert_eq(ls_credit_tx_grant_conn(tx, 2 * MiB), 0);
    cr_assert_eq(ls_credit_tx_next(tx, MiB, &db, &len), 0);
    ls_credit_tx_free(tx);
}

/* A sender and a receiver exchanging chunks and CREDIT frames in lock step, the receiver
 * consuming everything at once: a database with a 1 GiB backlog and one with 8 MiB. The small
 * one must finish in about as many turns as it has chunks, not after the big one. */
Test(transport_credit, huge_backlog_does_not_starve_another_database, .timeout = 10)
{
    ls_credit_tx_t *tx = ls_credit_tx_new(0, 0);
    ls_credit_rx_t *rx = ls_credit_rx_new(0, 0);
    int big = ls_credit_tx_db_add(tx), small = ls_credit_tx_db_add(tx);
    cr_assert_eq(ls_credit_rx_db_add(rx), big);
    cr_assert_eq(ls_credit_rx_db_add(rx), small);
    ls_credit_tx_backlog_add(tx, big, 1024 * MiB);
    int chunks = 0, big_chunks_before_small_done = 0;
    bool first = true;
    for (;;) {
        int db;
        uint64_t len, cg;
        if (first) {
            /* the big database is already shipping when the small one gets work */
            first = false;
            cr_assert_eq(ls_credit_tx_next(tx, MiB, &db, &len), 0);
            cr_assert_eq(db, big);
            cr_assert_eq(ls_credit_tx_sent(tx, db, len), 0);
            cr_assert_eq(ls_credit_rx_received(rx, db, len), 0);
            ls_credit_rx_consumed(rx, db, len, &cg);
            ls_credit_tx_backlog_add(tx, small, 8 * MiB);
            continue;
        }
        cr_assert_eq(ls_credit_tx_next(tx, MiB, &db, &len), 0);
        cr_assert_eq(ls_credit_tx_sent(tx, db, len), 0);
        cr_assert_eq(ls_credit_rx_received(rx, db, len), 0, "never beyond the window");
        uint64_t g = ls_credit_rx_consumed(rx, db, len, &cg);
        if (g) cr_assert_eq(ls_credit_tx_grant(tx, db, g), 0);
        if (cg) cr_assert_eq(ls_credit_tx_grant_conn(tx, cg), 0);
        chunks++;
        if (db == big) big_chunks_before_small_done++;
        if (ls_credit_tx_backlog(tx, small) == 0) break;
        cr_assert_lt(chunks, 1000, "the small database never finished");
    }
    cr_assert_leq(big_chunks_before_small_done, 9,
                  "round robin: one big chunk per small chunk, "
                  "got %d",
                  big_chunks_before_small_done);
    cr_assert_gt(ls_credit_tx_backlog(tx, big), 1000 * MiB);
    ls_credit_tx_free(tx);
    ls_credit_rx_free(rx);
}

Test(transport_credit, dropped_backlog_is_never_picked_again, .timeout = 10)
{
    ls_credit_tx_t *c = ls_credit_tx_new(1u << 20, 4u << 20);
    int a = ls_credit_tx_db_add(c), b = ls_credit_tx_db_add(c);
    ls_credit_tx_backlog_add(c, a, 3u << 20); /* a generation begun, then abandoned */
    ls_credit_tx_backlog_add(c, b, 1000);
    ls_credit_tx_backlog_drop(c, a);
    cr_assert_eq(ls_credit_tx_backlog(c, a), 0);
    cr_assert_eq(ls_credit_tx_credit(c, a), 1u << 20, "credit is kept");
    int db;
    uint64_t len;
    cr_assert_eq(ls_credit_tx_next(c, 65536, &db, &len), 0);
    cr_assert_eq(db, b, "only the database with data left is picked");
    cr_assert_eq(len, 1000);
    cr_assert_eq(ls_credit_tx_sent(c, b, len), 0);
    cr_assert_eq(ls_credit_tx_next(c, 65536, &db, &len), LS_EBUSY);
    ls_credit_tx_free(c);
}
