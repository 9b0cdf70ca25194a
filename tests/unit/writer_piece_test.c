/*
 * The applier's pieces (applier.c, docs/WRITER.md "The store's writeback in pieces"): a sorted
 * chain is applied in several store transactions, only the last one writing the new position.
 * Pieces only while the applier is mostly idle, so each test lets it idle before the big chain.
 * A kill between two pieces leaves later writes in the store under the old position; reopening
 * replays from that position and ends with the log's state (last write wins, deletes included).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <logship/db.h>

#include "core/core.h"
#include "harness.h"
#include "store/store.h"
#include "writer_util.h"

#define OLD_KEYS   200  /* round 1: one piece (under PIECE_MIN), applied whole */
#define NEW_KEYS   1800 /* round 2 adds these... */
#define DELETED    50   /* ...and deletes the first of the old ones */
#define PIECE_KEYS 256  /* applier.c's PIECE_MIN */
/* Pieces only while the applier is mostly idle (its last apply under a quarter of the time since
 * it began): the tests let it idle this long before the big chain. */
#define IDLE_US 1000000

static int put_round(ls_txn_t *t, int k, int round)
{
    char key[32], val[32];
    int n = snprintf(key, sizeof(key), "p%05d", k);
    int vn = snprintf(val, sizeof(val), "r%d-%05d", round, k);
    return ls_txn_put(t, key, (size_t) n, val, (size_t) vn + 1);
}

/* 0: absent; otherwise the round whose value key k holds (-1: another value). */
static int round_of(void *v, size_t len, int k)
{
    int r, kk;
    if (!v) return 0;
    return len > 0 && sscanf(v, "r%d-%d", &r, &kk) == 2 && kk == k ? r : -1;
}

static int db_round(ls_db_t *db, int k)
{
    char key[32];
    int n = snprintf(key, sizeof(key), "p%05d", k);
    void *v = NULL;
    size_t len = 0;
    int rc = ls_db_get(db, key, (size_t) n, &v, &len);
    cr_assert(rc == 0 || rc == LS_ENOENT, "get p%05d: %s", k, ls_strerror(rc));
    int r = round_of(rc == 0 ? v : NULL, len, k);
    free(v);
    return r;
}

/* Child: round 1 (OLD_KEYS puts, applied), then round 2 in one transaction (every old key
 * overwritten, DELETED of them deleted, NEW_KEYS new ones): one chain of 2000 operations, applied
 * in pieces until the fault point ends the process between two of them. */
static void child_round2(const char *dir, int unused)
{
    (void) unused;
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = NULL;
    ls_txn_t *t;
    if (ls_db_open(dir, &o, &db) || ls_txn_begin(db, &t)) _exit(3);
    for (int k = 0; k < OLD_KEYS; k++)
        if (put_round(t, k, 1)) _exit(3);
    if (ls_txn_commit(t) || !wait_applied(db, 10000)) _exit(4);
    usleep(IDLE_US); /* the applier idle: round 2 goes in pieces */
    if (ls_txn_begin(db, &t)) _exit(4);
    for (int k = 0; k < OLD_KEYS + NEW_KEYS; k++)
        if (put_round(t, k, 2)) _exit(4);
    for (int k = 0; k < DELETED; k++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "p%05d", k);
        if (ls_txn_del(t, key, (size_t) n)) _exit(4);
    }
    if (ls_txn_commit(t)) _exit(4);
    wait_applied(db, 20000);
    _exit(6); /* applied without the fault point: not in pieces */
}

Test(writer_piece, kill_between_pieces_leaves_later_writes_under_the_old_position_and_replays)
{
    char *dir = ls_h_tmpdir("writer-piece");
    cr_assert_eq(in_child("writer.apply.piece=exit@2", child_round2, dir, 0), LS_FAULT_EXIT_CODE);

    /* The store alone: the first piece (the lowest keys) holds round 2 while the position is
     * still round 1's. */
    char sp[PATHLEN];
    snprintf(sp, sizeof(sp), "%s/store", dir);
    ls_store_t *st = NULL;
    cr_assert_eq(ls_store_open(sp, &(ls_store_options_t){0}, &st, NULL, 0), 0);
    ls_store_meta_t m;
    ls_store_meta(st, &m);
    int deleted = 0, round2 = 0;
    for (int k = 0; k < OLD_KEYS + NEW_KEYS; k++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "p%05d", k);
        void *v = NULL;
        size_t len = 0;
        int rc = ls_store_get(st, key, (size_t) n, &v, &len);
        int r = round_of(rc == 0 ? v : NULL, len, k);
        free(v);
        deleted += k < DELETED && r == 0;
        round2 += r == 2;
    }
    ls_store_close(st);
    cr_assert_eq(deleted, DELETED, "the first piece's deletes are in the store");
    cr_assert_geq(round2, PIECE_KEYS - DELETED, "a piece of round 2 is in the store (%d)", round2);
    cr_assert_lt(round2, OLD_KEYS + NEW_KEYS - DELETED, "not all of it (%d)", round2);

    /* Reopened: replayed from round 1's position, the log's state. */
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = open_db(dir, &o);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_gt(s.recovered_records, 0, "round 2 replayed");
    cr_assert_eq(s.last_lsn, m.lsn + OLD_KEYS + NEW_KEYS + DELETED + 1,
                 "round 2's records and COMMIT follow the store's position");
    for (int k = 0; k < OLD_KEYS + NEW_KEYS; k++)
        cr_assert_eq(db_round(db, k), k < DELETED ? 0 : 2, "p%05d", k);
    cr_assert_eq(ls_db_close(db), 0);

    /* And once more from the store alone after the close's checkpoint. */
    cr_assert_eq(ls_store_open(sp, &(ls_store_options_t){0}, &st, NULL, 0), 0);
    ls_store_meta(st, &m);
    cr_assert_eq(m.lsn, s.last_lsn, "the store caught up");
    ls_store_close(st);
    ls_h_rmtree(dir);
    free(dir);
}

/* Without a fault: the same chain in pieces ends with the log's state and position; nothing to
 * replay at the next open. */
Test(writer_piece, a_chain_in_pieces_ends_whole)
{
    char *dir = ls_h_tmpdir("writer-piece");
    ls_db_options_t o = quiet_opts();
    ls_db_t *db = open_db(dir, &o);
    ls_txn_t *t;
    cr_assert_eq(ls_txn_begin(db, &t), 0);
    for (int k = 0; k < OLD_KEYS; k++)
        cr_assert_eq(put_round(t, k, 1), 0);
    cr_assert_eq(ls_txn_commit(t), 0);
    cr_assert(wait_applied(db, 10000));
    usleep(IDLE_US);
    cr_assert_eq(ls_txn_begin(db, &t), 0);
    for (int k = 0; k < OLD_KEYS + NEW_KEYS; k++)
        cr_assert_eq(put_round(t, k, 2), 0);
    for (int k = 0; k < DELETED; k++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "p%05d", k);
        cr_assert_eq(ls_txn_del(t, key, (size_t) n), 0);
    }
    cr_assert_eq(ls_txn_commit(t), 0);
    cr_assert(wait_applied(db, 10000));
    for (int k = 0; k < OLD_KEYS + NEW_KEYS; k++)
        cr_assert_eq(db_round(db, k), k < DELETED ? 0 : 2, "p%05d", k);
    cr_assert_eq(ls_db_close(db), 0);
    db = open_db(dir, &o);
    ls_db_stats_t s;
    ls_db_stats(db, &s);
    cr_assert_eq(s.recovered_records, 0, "the store held all of it");
    for (int k = 0; k < OLD_KEYS + NEW_KEYS; k++)
        cr_assert_eq(db_round(db, k), k < DELETED ? 0 : 2, "p%05d", k);
    cr_assert_eq(ls_db_close(db), 0);
    ls_h_rmtree(dir);
    free(dir);
}
