/* A per-database ERROR from the source (issue 13, defect 4; PROTOCOL.md, ERROR): a transient code
 * leaves the passive copy Disconnected and it recovers by itself (it asks the source again after
 * a back-off, and a new connection serves it at once);
 * a fatal one makes it Failed, which only `logship resume DB PEER` clears. A scripted node-a
 * (tests/harness/scripted.h) sends the ERROR; the real node-a then takes over. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

TestSuite(source_error, .fini = fini, .timeout = 150);

/* node-b runs, db1 exists on node-a (not running); the scripted node-a is connected, its db1
 * accepted; the copy is Healthy. The database id is returned in dbid. */
static void scripted_source(const char *tag, uint8_t dbid[LS_PROTO_DBID_LEN])
{
    ls_h_pair_init(&pair, tag, &(ls_h_pair_opts_t){.plaintext = true});
    ls_h_load(&pair, "--transactions 100 --records-per-txn 10 --value-size 400 --seed 31");
    ls_h_logs_dbid(pair.db[LS_H_A], "E00-*.log", dbid);
    ls_h_node_start(&pair, LS_H_B, NULL);
    const char *names[] = {"db1"};
    uint8_t ids[1][LS_PROTO_DBID_LEN];
    memcpy(ids[0], dbid, LS_PROTO_DBID_LEN);
    static ls_frame_t f;
    ls_h_sp_hello(&f, "node-a", 1, names, (const uint8_t(*)[LS_PROTO_DBID_LEN]) ids);
    sp = ls_h_sp_connect(pair.port);
    ls_h_sp_send(sp, &f);
    const ls_frame_t *w = ls_h_sp_expect(sp, LS_FRAME_WELCOME, 10000);
    cr_assert(w && w->welcome.dbs[0].status == LS_DB_ACCEPTED, "db1 accepted");
    cr_assert_not_null(ls_h_sp_expect(sp, LS_FRAME_RESUME, 5000));
    cr_assert(ls_h_wait_state(&pair, LS_H_B, "Healthy", 10000));
}

static void send_error(const uint8_t dbid[LS_PROTO_DBID_LEN], int code, const char *msg)
{
    static ls_frame_t f;
    memset(&f, 0, sizeof(f));
    f.type = LS_FRAME_ERROR;
    memcpy(f.error.dbid, dbid, LS_PROTO_DBID_LEN);
    f.error.code = code;
    f.error.message = ls_proto_str(msg);
    ls_h_sp_send(sp, &f);
}

/* Waits for a state while keeping the scripted connection alive. */
static bool wait_state(const char *state, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        cJSON *b = ls_h_status(&pair, LS_H_B);
        bool ok = b && !strcmp(ls_h_str(b, "state"), state);
        cJSON_Delete(b);
        if (ok) return true;
        if (sp)
            ls_h_sp_idle(sp, 100);
        else
            usleep(100000);
    }
    return false;
}

static const char *reason(void)
{
    static char r[600];
    cJSON *b = ls_h_status(&pair, LS_H_B);
    snprintf(r, sizeof(r), "%s", b ? ls_h_str(b, "reason") : "");
    cJSON_Delete(b);
    return r;
}

Test(source_error, transient_error_means_disconnected_and_recovers_by_itself)
{
    uint8_t dbid[LS_PROTO_DBID_LEN];
    scripted_source("srcerr-transient", dbid);
    send_error(dbid, LS_EBUSY, "scripted source: busy for a moment");
    cr_assert(wait_state("Disconnected", 10000), "a transient ERROR gives Disconnected, not %s",
              reason());
    cr_assert(ls_h_contains(reason(), "busy for a moment"), "%s", reason());
    /* The copy asks the source again by itself, on the same connection, after a back-off. */
    cr_assert_not_null(ls_h_sp_expect(sp, LS_FRAME_RESUME, 6000), "no RESUME after the back-off");
    cr_assert(wait_state("Healthy", 2000), "the copy is %s", reason());
    send_error(dbid, LS_EBUSY, "scripted source: still busy");
    cr_assert(wait_state("Disconnected", 10000), "the copy is %s", reason());
    cr_assert(ls_h_contains(reason(), "asking again in 4 s"), "the back-off doubles: %s", reason());
    ls_h_sp_close(sp);
    sp = NULL;
    /* The source connects again: nothing but that is needed. */
    ls_h_node_start(&pair, LS_H_A, NULL);
    cr_assert(ls_h_wait_caught_up(&pair, 60000));
    cr_assert(wait_state("Healthy", 10000), "the copy is %s", reason());
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_stop(&pair, LS_H_B);
    cr_assert(ls_h_stores_equal(&pair));
}

Test(source_error, fatal_error_means_failed_until_logship_resume)
{
    uint8_t dbid[LS_PROTO_DBID_LEN];
    scripted_source("srcerr-fatal", dbid);
    send_error(dbid, LS_EGAP, "scripted source: generation 1 is gone");
    cr_assert(wait_state("Failed", 10000), "a fatal ERROR gives Failed, not %s", reason());
    cr_assert(ls_h_contains(reason(), "generation 1 is gone"), "%s", reason());
    ls_h_sp_close(sp);
    sp = NULL;
    /* A new connection does not clear Failed ... */
    ls_h_node_start(&pair, LS_H_A, NULL);
    cr_assert(ls_h_wait_state(&pair, LS_H_A, "Failed", 10000), "node-a is told the copy failed");
    cr_assert(wait_state("Failed", 1000));
    usleep(1500000);
    cr_assert(wait_state("Failed", 100), "still Failed without the operator: %s", reason());
    /* ... the operator's resume does. */
    char cmd[1200], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof(cmd), "%s resume db1 node-a -c %s", ls_h_bin("logship"),
             pair.conf[LS_H_B]);
    cr_assert_eq(ls_h_sh(cmd, &out, &err, 10000), 0, "logship resume: %s %s", out, err);
    cr_assert(ls_h_contains(out, "Failed cleared"), "%s", out);
    free(out);
    free(err);
    cr_assert(ls_h_wait_caught_up(&pair, 60000));
    cr_assert(wait_state("Healthy", 10000), "the copy is %s", reason());
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_stop(&pair, LS_H_B);
    cr_assert(ls_h_stores_equal(&pair));
}
