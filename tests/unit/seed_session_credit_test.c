/* seed sessions driven with no socket (seed_session_test.c says how): an abort at each phase
 * leaves no new copy, the server obeys credit and the client refuses an overrun, a swap that
 * fails or cannot reopen says why, and the worker spills a slow stream from the compaction with
 * the same bytes. Split from seed_session_test.c; the wire in seed_session_test_util.h. */

#include <criterion/criterion.h>

#include "seed_session_test_util.h"

Test(seed_session, abort_at_each_phase_leaves_no_new_copy, .timeout = 60)
{
    env_t e;
    env_init(&e, "seed-session");
    ls_db_t *db = active(&e, 10);
    ls_db_close(db);
    for (int phase = 0; phase < 4; phase++) {
        wire_t t;
        wire_init(&t, &e, true);
        if (phase == 0) { /* connecting: the connection drops before WELCOME */
            ls_seed_client_closed(t.cli, LS_ECONNREFUSED, "connection refused");
        } else {
            welcome(&t, true);
            ls_seed_wev_t ev;
            while (phase >= 2 && !ls_seed_server_info(t.srv)) /* phase 2+: the snapshot is in */
                if (ls_seed_worker_poll(t.w, &ev)) ls_seed_server_feed(t.srv, &ev);
            ls_frame_t f;
            if (phase == 3 && ls_seed_server_next(t.srv, &f)) { /* receiving: BEGIN went out */
                carry_from(&f, to_client, &t, t.srv);
                cr_assert_eq(ls_seed_client_state(t.cli), LS_SEED_CLI_RECEIVING);
                cr_assert(t.in, "the install began beside the copy");
            }
            /* the client gives up: its ERROR reaches the server, then the connection ends */
            ls_frame_t err = {.type = LS_FRAME_ERROR};
            err.error.code = LS_ECLOSED;
            err.error.message = ls_proto_str("operator stopped the daemon");
            char msg[256];
            cr_assert_eq(ls_seed_server_frame(t.srv, &err, msg, sizeof(msg)), LS_ECLOSED);
            cr_assert_eq(ls_seed_server_state(t.srv), LS_SEED_SRV_FAILED);
            cr_assert(!ls_seed_server_next(t.srv, &f), "nothing more goes out");
            ls_seed_client_closed(t.cli, 0, NULL);
        }
        drain(&t);
        int code;
        cr_assert_eq(ls_seed_client_state(t.cli), LS_SEED_CLI_FAILED, "phase %d", phase);
        const char *why = ls_seed_client_error(t.cli, &code);
        cr_assert(strstr(why, "connection to node-a lost"), "%s", why);
        cr_assert(!t.in, "phase %d: the install was dropped", phase);
        assert_no_leftovers(e.copy);
        ls_seed_worker_stop(t.w);
        for (int i = 0; i < 5000 && !ls_seed_worker_exited(t.w); i++)
            usleep(1000);
        cr_assert(ls_seed_worker_exited(t.w));
        wire_free(&t);
    }
    char tmp[PATHSZ];
    snprintf(tmp, sizeof(tmp), "%s/seed-tmp", e.db);
    cr_assert_leq(ls_h_dir_entries(tmp), 0, "every snapshot copy was removed from %s", tmp);
    env_free(&e);
}

/* Synthetic worker events: credit bounds what goes out; a failed snapshot becomes ERROR; credit
 * never received and unexpected frames are protocol errors. */
Test(seed_session, server_obeys_credit_and_reports_failures)
{
    env_t e = {0};
    wire_t t;
    wire_init(&t, &e, false);
    ls_seed_wev_t info = {.kind = LS_SEED_WEV_INFO, .info = {.total_bytes = 3 * 32768}};
    ls_frame_t f;
    cr_assert(!ls_seed_server_next(t.srv, &f), "nothing before the snapshot");
    cr_assert_eq(ls_seed_server_state(t.srv), LS_SEED_SRV_SNAPSHOT);
    ls_seed_server_feed(t.srv, &info);
    for (uint64_t i = 0; i < 3; i++) {
        ls_seed_wev_t c = {.kind = LS_SEED_WEV_CHUNK, .offset = i * 32768, .len = 32768};
        c.data = calloc(1, c.len);
        ls_seed_server_feed(t.srv, &c);
    }
    cr_assert_eq(ls_seed_server_queued(t.srv), 3);
    cr_assert(ls_seed_server_next(t.srv, &f) && f.type == LS_FRAME_SEED_BEGIN);
    cr_assert(ls_seed_server_next(t.srv, &f) && f.type == LS_FRAME_SEED_BEGIN, "not sent: again");
    ls_seed_server_sent(t.srv);
    for (int i = 0; i < 2; i++) {
        cr_assert(ls_seed_server_next(t.srv, &f) && f.type == LS_FRAME_SEED_DATA);
        ls_seed_server_sent(t.srv);
    }
    cr_assert(!ls_seed_server_next(t.srv, &f), "the window is spent");
    char err[256];
    ls_frame_t cr = {.type = LS_FRAME_CREDIT};
    cr.credit.bytes = 32768;
    cr.credit.dbid[0] = 1;
    cr_assert_eq(ls_seed_server_frame(t.srv, &cr, err, sizeof(err)), 0);
    memset(cr.credit.dbid, 0, LS_DBID_LEN);
    cr_assert_eq(ls_seed_server_frame(t.srv, &cr, err, sizeof(err)), 0);
    cr_assert(ls_seed_server_next(t.srv, &f) && f.seed_data.offset == 65536);
    ls_seed_server_sent(t.srv);
    cr_assert(!ls_seed_server_next(t.srv, &f), "SEED_END waits for the digest");
    ls_seed_wev_t end = {.kind = LS_SEED_WEV_END, .digest = {7}};
    ls_seed_server_feed(t.srv, &end);
    cr_assert(ls_seed_server_next(t.srv, &f) && f.type == LS_FRAME_SEED_END);
    cr_assert_eq(f.seed_end.digest[0], 7);
    ls_seed_server_sent(t.srv);
    cr_assert_eq(ls_seed_server_state(t.srv), LS_SEED_SRV_ENDED);
    ls_seed_wev_t late = {.kind = LS_SEED_WEV_CHUNK, .len = 1, .data = malloc(1)};
    ls_seed_server_feed(t.srv, &late); /* released, not queued */
    cr_assert_eq(ls_seed_server_queued(t.srv), 0);
    wire_free(&t);

    wire_init(&t, &e, false); /* a failed snapshot */
    ls_seed_wev_t fail = {.kind = LS_SEED_WEV_FAIL, .code = LS_ENOSPC};
    snprintf(fail.msg, sizeof(fail.msg), "not enough room for the local copy");
    ls_seed_server_feed(t.srv, &fail);
    cr_assert(ls_seed_server_next(t.srv, &f) && f.type == LS_FRAME_ERROR);
    cr_assert_eq(f.error.code, LS_ENOSPC);
    cr_assert_eq(f.error.dbid[0], 1, "the ERROR names the database");
    welcome(&t, true);
    carry_from(&f, to_client, &t, t.srv);
    cr_assert(!ls_seed_server_next(t.srv, &f));
    int code;
    cr_assert(strstr(ls_seed_client_error(t.cli, &code), "not enough room"));
    cr_assert_eq(code, LS_ENOSPC);
    cr_assert(strstr(ls_seed_server_error(t.srv, &code), "not enough room"));
    wire_free(&t);

    wire_init(&t, &e, false); /* credit never received; a frame that has no place here */
    cr.credit.bytes = 1;
    cr_assert_eq(ls_seed_server_frame(t.srv, &cr, err, sizeof(err)), LS_EPROTO);
    cr_assert(strstr(err, "never received"), "%s", err);
    wire_free(&t);
    wire_init(&t, &e, false);
    ls_frame_t odd = {.type = LS_FRAME_GEN_END};
    cr_assert_eq(ls_seed_server_frame(t.srv, &odd, err, sizeof(err)), LS_EPROTO);
    cr_assert(strstr(err, "GEN_END"), "%s", err);
    wire_free(&t);
}

/* The client: credit overrun, a connection lost during the install (expected), a swap that
 * finds nothing to install reopens the old copy and fails. */
Test(seed_session, client_credit_overrun_and_failed_swap, .timeout = 60)
{
    env_t e;
    env_init(&e, "seed-session");
    wire_t t;
    wire_init(&t, &e, false);
    welcome(&t, true);
    ls_frame_t b = {.type = LS_FRAME_SEED_BEGIN};
    b.seed_begin.total_bytes = 1 << 20;
    b.seed_begin.generation = 1;
    const uint64_t T0 = 5000000000ull; /* a fake monotonic clock, ns */
    ls_seed_client_frame(t.cli, &b, T0);
    ls_seed_act_t a;
    cr_assert(ls_seed_client_action(t.cli, &a) && a.kind == LS_SEED_ACT_INSTALL_BEGIN);
    cr_assert_eq(a.info->total_bytes, 1u << 20);
    static uint8_t chunk[40000];
    ls_frame_t d = {.type = LS_FRAME_SEED_DATA};
    d.seed_data.data = chunk;
    d.seed_data.len = sizeof(chunk);
    ls_seed_client_frame(t.cli, &d, ls_mono_ns());
    cr_assert(ls_seed_client_action(t.cli, &a) && a.kind == LS_SEED_ACT_INSTALL_DATA);
    cr_assert(a.data == chunk && a.len == sizeof(chunk));
    ls_seed_client_consumed(t.cli, sizeof(chunk), sizeof(chunk), T0 + 1000000000ull);
    ls_seed_client_figures_t fig;
    ls_seed_client_figures(t.cli, &fig);
    cr_assert_eq(fig.done, sizeof(chunk));
    cr_assert_float_eq(fig.prog.rate, 40000.0, 1e-6,
                       "40000 bytes in the first second of the fake clock");
    cr_assert_eq(ls_seed_progress_percent(&fig.prog), 3);
    int credits = 0;
    while (ls_seed_client_action(t.cli, &a))
        credits += a.kind == LS_SEED_ACT_SEND && a.frame.type == LS_FRAME_CREDIT;
    cr_assert_geq(credits, 1, "consumed bytes go back as CREDIT");
    d.seed_data.offset = sizeof(chunk);
    ls_seed_client_frame(t.cli, &d, ls_mono_ns());
    ls_seed_client_frame(t.cli, &d, ls_mono_ns()); /* 80000 > 64 KiB outstanding */
    drain(&t);
    int code;
    cr_assert_eq(ls_seed_client_state(t.cli), LS_SEED_CLI_FAILED);
    cr_assert(strstr(ls_seed_client_error(t.cli, &code), "credit window"));
    cr_assert_eq(code, LS_EPROTO);
    wire_free(&t);

    wire_init(&t, &e, false);
    welcome(&t, true);
    ls_seed_client_frame(t.cli, &b, ls_mono_ns());
    while (ls_seed_client_action(t.cli, &a))
        ;
    ls_seed_client_verified(t.cli); /* as if the install had verified */
    cr_assert_eq(ls_seed_client_state(t.cli), LS_SEED_CLI_INSTALLING);
    ls_seed_client_closed(t.cli, 0, NULL); /* expected now */
    ls_seed_client_fail(t.cli, LS_EIO, "late");
    cr_assert_eq(ls_seed_client_state(t.cli), LS_SEED_CLI_INSTALLING);
    cr_assert(ls_seed_client_action(t.cli, &a) && a.kind == LS_SEED_ACT_CLOSE);
    cr_assert(ls_seed_client_action(t.cli, &a) && a.kind == LS_SEED_ACT_SWAP);
    char err[512];
    cr_assert_eq(open_copy(&t, &t.copy, err, sizeof(err)), 0, "%s", err);
    receive(&t, &a); /* no verified install: nothing swapped, the copy reopened */
    cr_assert(!t.swapped && t.copy);
    cr_assert_eq(ls_seed_client_state(t.cli), LS_SEED_CLI_FAILED);
    cr_assert(strstr(ls_seed_client_error(t.cli, &code), "no verified seed"), "%s",
              ls_seed_client_error(t.cli, NULL));
    cr_assert_str_eq(ls_seed_client_state_name(LS_SEED_CLI_FAILED), "failed");
    cr_assert_str_eq(ls_seed_client_state_name(0), "");
    wire_free(&t);
    env_free(&e);
}

/* The new copy is in place but cannot be opened: the seed fails and says why. */
Test(seed_session, swap_that_cannot_reopen_fails_with_the_reason, .timeout = 60)
{
    env_t e;
    env_init(&e, "seed-session");
    ls_db_t *db = active(&e, 10);
    ls_db_close(db);
    wire_t t;
    wire_init(&t, &e, true);
    t.fail_open = true;
    welcome(&t, true);
    pump(&t);
    int code;
    cr_assert(t.swapped && !t.copy, "in place, not open");
    cr_assert_eq(ls_seed_client_state(t.cli), LS_SEED_CLI_FAILED);
    const char *why = ls_seed_client_error(t.cli, &code);
    cr_assert(strstr(why, "cannot open the copy after the seed") && strstr(why, "map size"), "%s",
              why);
    assert_no_leftovers(e.copy);
    wire_free(&t);
    env_free(&e);
}

/* ---- the worker streaming from the compaction ---------------------------------------------- */

/* The whole stream of a worker: its bytes in order, END's digest, INFO's size. */
typedef struct {
    uint8_t *buf;
    size_t len;
    uint8_t digest[LS_DIGEST_SIZE];
    uint64_t total;
} stream_t;

/* The spilled local copy of db is complete (total bytes written at their offsets). */
static bool spilled(void *ctx)
{
    void **a = ctx;
    const char *db = a[0];
    uint64_t total = *(uint64_t *) a[1];
    char cmd[PATHSZ + 96], *out = NULL;
    snprintf(cmd, sizeof(cmd), "find '%s/seed-tmp' -name data.mdb -size %lluc | wc -l", db,
             (unsigned long long) total);
    bool done = ls_h_sh(cmd, &out, NULL, 10000) == 0 && atoi(out) == 1;
    free(out);
    return done;
}

/* Runs a worker to its END into st; hold: keep the first `hold` chunks (the queue full) until
 * the rest of the stream is found spilled to the local copy. */
static void run_worker(const ls_seed_worker_options_t *wo, unsigned hold, stream_t *st)
{
    ls_seed_worker_t *w = NULL;
    cr_assert_eq(ls_seed_worker_start(wo, &w), 0);
    memset(st, 0, sizeof(*st));
    void *held[16];
    unsigned nheld = 0;
    bool end = false;
    uint64_t deadline = ls_mono_ns() + 30 * 1000000000ull;
    while (!end) {
        cr_assert_lt(ls_mono_ns(), deadline, "the stream ends");
        ls_seed_wev_t ev;
        if (!ls_seed_worker_poll(w, &ev)) {
            usleep(1000);
            continue;
        }
        cr_assert_neq(ev.kind, LS_SEED_WEV_FAIL, "%s", ev.msg);
        if (ev.kind == LS_SEED_WEV_INFO) {
            st->total = ev.info.total_bytes;
            cr_assert_eq(ev.store_open, wo->direct, "the store stays open while streaming");
        } else if (ev.kind == LS_SEED_WEV_CHUNK) {
            cr_assert_eq(ev.offset, st->len, "contiguous");
            st->buf = realloc(st->buf, st->len + ev.len);
            memcpy(st->buf + st->len, ev.data, ev.len);
            st->len += ev.len;
            if (nheld < hold) {
                held[nheld++] = ev.data;
                if (nheld == hold) { /* the queue is full: the worker spills, then waits */
                    void *a[2] = {(void *) wo->db_dir, &st->total};
                    cr_assert(ls_h_wait_for(spilled, a, 20000),
                              "the rest of the stream went to the local copy");
                    for (unsigned i = 0; i < nheld; i++)
                        ls_seed_worker_release(w, held[i]);
                }
            } else {
                ls_seed_worker_release(w, ev.data);
            }
        } else if (ev.kind == LS_SEED_WEV_END) {
            memcpy(st->digest, ev.digest, LS_DIGEST_SIZE);
            end = true;
        }
    }
    cr_assert(ls_h_wait_for((bool (*)(void *)) ls_seed_worker_exited, w, 10000));
    ls_seed_worker_free(w);
    cr_assert_eq(st->len, st->total);
    uint8_t want[LS_DIGEST_SIZE] = {0};
    if (wo->xxh) /* XXH3-128 in the first 16 bytes, the rest zero */
        ls_seal(st->buf, st->len, want);
    else
        ls_sha256(st->buf, st->len, want);
    cr_assert_arr_eq(st->digest, want, LS_DIGEST_SIZE, "END carries the %s of the stream",
                     wo->xxh ? "XXH3-128" : "SHA-256");
}

/* A direct stream the connection takes too slowly (pin_ms 1, the queue full) spills the rest to
 * the local copy and goes on from there: the same bytes and digest as the local copy's stream. */
Test(seed_session, worker_spills_a_slow_direct_stream_with_the_same_bytes, .timeout = 60)
{
    env_t e;
    env_init(&e, "seed-session");
    ls_db_t *db = active(&e, 200);
    cr_assert_eq(ls_db_close(db), 0);
    stream_t a, b, c, d;
    ls_seed_worker_options_t wo = {.db_dir = e.db, .chunk = 16 * 1024, .notify = notify};
    run_worker(&wo, 0, &a);
    wo.direct = true;
    run_worker(&wo, 0, &b); /* taken at once: no spill */
    wo.pin_ms = 1;
    wo.ahead = 2;
    run_worker(&wo, 2, &c);
    wo.xxh = true; /* the spill hashes what it writes with the negotiated check too */
    run_worker(&wo, 2, &d);
    cr_assert_gt(a.len, 256 * 1024);
    cr_assert_eq(b.len, a.len);
    cr_assert_eq(c.len, a.len);
    cr_assert_eq(d.len, a.len);
    cr_assert_eq(memcmp(a.buf, b.buf, a.len), 0);
    cr_assert_eq(memcmp(a.buf, c.buf, a.len), 0);
    cr_assert_eq(memcmp(a.buf, d.buf, a.len), 0);
    char tmp[PATHSZ];
    snprintf(tmp, sizeof(tmp), "%s/seed-tmp", e.db);
    cr_assert_eq(ls_h_dir_entries(tmp), 0, "every local copy removed with its worker");
    free(a.buf);
    free(b.buf);
    free(c.buf);
    free(d.buf);
    env_free(&e);
}
