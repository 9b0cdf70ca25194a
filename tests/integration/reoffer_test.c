/* The seed hand-off on a ship connection (PROTOCOL.md, RE_OFFER and "Versions"): a real passive
 * (node-b) and a scripted source playing node-a. With a version-2 HELLO the passive answers a
 * seed of db1 with RE_OFFER(db1, HOLD) and, when the seed is over (here it fails: node-a's seed
 * listener is not running), RE_OFFER(db1, 0) then RESUME(db1), on the same connection. With a
 * version-1 HELLO it falls back to a connection-wide ERROR (LS_EBUSY) that makes a source
 * reconnect. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "daemons.h"
#include "harness.h"
#include "scripted.h"

static ls_h_pair_t pair;
static ls_h_sp_t *sp;

static void fini(void)
{
    ls_h_sp_close(sp);
    sp = NULL;
    ls_h_pair_fini(&pair);
}

TestSuite(reoffer, .fini = fini, .timeout = 120);

/* Connects as node-a with db1 at protocol versions 1..vmax; returns db1's id. */
static void connect_source(uint16_t vmax, uint8_t id[LS_PROTO_DBID_LEN])
{
    const char *names[] = {"db1"};
    memset(id, 0x5a, LS_PROTO_DBID_LEN);
    static ls_frame_t f;
    ls_h_sp_hello(&f, "node-a", 1, names, (const uint8_t(*)[LS_PROTO_DBID_LEN]) id);
    f.hello.version_max = vmax;
    sp = ls_h_sp_connect(pair.port);
    ls_h_sp_send(sp, &f);
    const ls_frame_t *w = ls_h_sp_expect(sp, LS_FRAME_WELCOME, 10000);
    cr_assert_not_null(w, "no WELCOME");
    cr_assert_eq(w->welcome.version, vmax, "the passive picks the highest common version");
    cr_assert_eq(w->welcome.dbs[0].status, LS_DB_ACCEPTED);
    cr_assert_not_null(ls_h_sp_expect(sp, LS_FRAME_RESUME, 5000), "RESUME for db1");
}

/* A seed of db1 that fails: node-a's seed listener is not running. */
static void failing_seed(void)
{
    char *out = NULL, *err = NULL;
    int rc = ls_h_seed(&pair, NULL, &out, &err, 30000);
    cr_assert_eq(rc, 1, "the seed fails: %s %s", out, err);
    free(out);
    free(err);
}

Test(reoffer, version_2_source_gets_re_offer_for_the_one_database)
{
    ls_h_pair_init(&pair, "reoffer-v2", &(ls_h_pair_opts_t){.plaintext = true, .seedable = true});
    ls_h_node_start(&pair, LS_H_B, NULL);
    uint8_t id[LS_PROTO_DBID_LEN];
    connect_source(2, id);
    failing_seed();
    const ls_frame_t *f = ls_h_sp_expect(sp, LS_FRAME_RE_OFFER, 10000);
    cr_assert_not_null(f, "RE_OFFER HOLD when the seed starts");
    cr_assert_arr_eq(f->re_offer.dbid, id, LS_PROTO_DBID_LEN);
    cr_assert_eq(f->re_offer.flags, LS_REOFFER_HOLD);
    f = ls_h_sp_expect(sp, LS_FRAME_RE_OFFER, 10000);
    cr_assert_not_null(f, "RE_OFFER when the seed is over");
    cr_assert_eq(f->re_offer.flags, 0, "not replaced: the seed failed");
    char reason[300];
    snprintf(reason, sizeof(reason), "%.*s", (int) f->re_offer.reason.len, f->re_offer.reason.ptr);
    cr_assert(ls_h_contains(reason, "db1") && ls_h_contains(reason, "not seeded"), "%s", reason);
    f = ls_h_sp_expect(sp, LS_FRAME_RESUME, 10000);
    cr_assert_not_null(f, "RESUME after the RE_OFFER, on the same connection");
    cr_assert_arr_eq(f->resume.dbid, id, LS_PROTO_DBID_LEN);
    cr_assert(!ls_h_sp_is_closed(sp), "the connection was never reset");
}

Test(reoffer, version_1_source_is_asked_to_reconnect)
{
    ls_h_pair_init(&pair, "reoffer-v1", &(ls_h_pair_opts_t){.plaintext = true, .seedable = true});
    ls_h_node_start(&pair, LS_H_B, NULL);
    uint8_t id[LS_PROTO_DBID_LEN];
    connect_source(1, id);
    failing_seed();
    const ls_frame_t *f = ls_h_sp_expect(sp, LS_FRAME_ERROR, 10000);
    cr_assert_not_null(f, "a connection-wide ERROR for a version-1 source");
    static const uint8_t zero[LS_PROTO_DBID_LEN];
    cr_assert_arr_eq(f->error.dbid, zero, LS_PROTO_DBID_LEN, "connection-wide");
    cr_assert_eq(f->error.code, LS_EBUSY);
    cr_assert_null(ls_h_sp_expect(sp, LS_FRAME_RE_OFFER, 1500), "no RE_OFFER at version 1");
}
