/*
 * seed sessions (engine/seed/session.h) driven with no socket: the server's frames go through
 * the codec (encode, decode: the wire) into the client session, whose actions this test carries
 * out as the daemon's receiver thread would (ls_seed_install_*, ls_seed_copy_swap), and whose
 * CREDIT frames go back to the server. Real snapshot worker and real stores; the whole exchange
 * with the hand-off inside an open generation, abort at each phase, a corrupt stream that
 * installs nothing, refusal without delete_existing, credit, out-of-turn frames.
 */
#include <criterion/criterion.h>

#include "copy/copy.h"
#include "seed/session.h"
#include "seed_test_util.h"

#define WIN (64u * 1024u) /* the client's window: two 32 KiB chunks */

/* ---- a scripted wire and the passive's receiver, in one thread ----------------------------- */

typedef struct {
    const env_t *e;
    ls_seed_server_t *srv;
    ls_seed_client_t *cli;
    ls_seed_worker_t *w;
    ls_seed_install_t *in;
    ls_copy_t *copy;   /* the copy's open ls_copy_t (the receiver thread's) */
    bool replace;      /* delete_existing */
    long long corrupt; /* flip this stream byte in transit (-1: none) */
    bool closed;       /* the client closed the connection */
    bool swapped;
    bool fail_open; /* the copy cannot be opened after the swap */
    int frames;     /* frames the server sent */
    uint64_t done;  /* bytes installed */
    char err[1024];
} wire_t;

static void notify(void *ctx)
{
    (void) ctx;
}

static void release(void *ctx, void *data)
{
    wire_t *t = ctx;
    ls_seed_worker_release(t->w, data);
}

static int open_copy(void *ctx, ls_copy_t **out, char *err, size_t errlen)
{
    const wire_t *t = ctx;
    if (t->fail_open) {
        snprintf(err, errlen, "%s: map size too small (test)", t->e->copy);
        return LS_ESTORE;
    }
    ls_copy_options_t o = {.dir = t->e->copy};
    int rc = ls_copy_open(&o, out, err, errlen);
    if (rc) *out = NULL;
    return rc;
}

/* Through the codec, as the transport would carry it; srv: the server's frame, marked sent once
 * it is on the wire (before the client sees it, as with a socket). */
static void carry_from(const ls_frame_t *f, void (*deliver)(wire_t *, const ls_frame_t *),
                       wire_t *t, ls_seed_server_t *srv)
{
    static uint8_t buf[LS_FRAME_HEADER_SIZE + 2 * 1024 * 1024];
    static ls_frame_t g;
    char err[256];
    ssize_t n = ls_frame_encode(f, buf, sizeof(buf));
    cr_assert_gt(n, 0, "%s encodes", ls_frame_type_name(f->type));
    if (srv) ls_seed_server_sent(srv);
    cr_assert_eq(ls_frame_decode(buf, (size_t) n, &g, err, sizeof(err)), 0, "%s", err);
    if (g.type == LS_FRAME_SEED_DATA && t->corrupt >= 0 &&
        (uint64_t) t->corrupt >= g.seed_data.offset &&
        (uint64_t) t->corrupt < g.seed_data.offset + g.seed_data.len)
        ((uint8_t *) g.seed_data.data)[t->corrupt - (long long) g.seed_data.offset] ^= 0x01;
    deliver(t, &g);
}

static void carry(const ls_frame_t *f, void (*deliver)(wire_t *, const ls_frame_t *), wire_t *t)
{
    carry_from(f, deliver, t, NULL);
}

/* The receiver thread's part of an action. */
static void receive(wire_t *t, const ls_seed_act_t *a)
{
    int rc = 0;
    if (a->kind == LS_SEED_ACT_INSTALL_BEGIN) {
        ls_seed_install_options_t o = {.copy_dir = t->e->copy, .delete_existing = t->replace};
        rc = ls_seed_install_begin(&o, a->info, &t->in, t->err, sizeof(t->err));
    } else if (a->kind == LS_SEED_ACT_INSTALL_DATA && t->in) {
        rc = ls_seed_install_data(t->in, a->offset, a->data, a->len, t->err, sizeof(t->err));
        if (rc == 0) t->done = ls_seed_install_done(t->in);
    } else if (a->kind == LS_SEED_ACT_INSTALL_END && t->in) {
        rc = ls_seed_install_end(t->in, a->digest, t->err, sizeof(t->err));
        if (rc == 0) ls_seed_client_verified(t->cli);
    } else if (a->kind == LS_SEED_ACT_SWAP) {
        rc = ls_seed_copy_swap(&t->copy, &t->in, t->e->copy, open_copy, t, &t->swapped, t->err,
                               sizeof(t->err));
        ls_seed_client_swapped(t->cli, t->swapped && t->copy, t->err); /* in place and open */
        return;
    } else if (a->kind == LS_SEED_ACT_ABORT) {
        ls_seed_install_free(t->in);
        t->in = NULL;
        return;
    }
    if (rc) {
        ls_seed_install_free(t->in);
        t->in = NULL;
        ls_seed_client_failed(t->cli, rc, t->err);
    } else if (a->kind == LS_SEED_ACT_INSTALL_DATA) {
        ls_seed_client_consumed(t->cli, a->len, t->done, ls_mono_ns());
    }
}

static void to_server(wire_t *t, const ls_frame_t *f)
{
    char err[256];
    ls_seed_server_frame(t->srv, f, err, sizeof(err));
}

/* Carries out every action the client queued (and those they queue in turn). */
static void drain(wire_t *t)
{
    ls_seed_act_t a;
    while (ls_seed_client_action(t->cli, &a)) {
        if (a.kind == LS_SEED_ACT_SEND)
            carry(&a.frame, to_server, t);
        else if (a.kind == LS_SEED_ACT_CLOSE)
            t->closed = true;
        else
            receive(t, &a);
    }
}

static void to_client(wire_t *t, const ls_frame_t *f)
{
    ls_seed_client_frame(t->cli, f, ls_mono_ns());
    drain(t);
}

/* Moves worker events into the server and the server's frames to the client, until nothing
 * moves (or the client closed). */
static void pump(wire_t *t)
{
    for (int idle = 0; idle < 2000 && !t->closed;) {
        ls_seed_wev_t ev;
        bool moved = false;
        while (t->w && ls_seed_worker_poll(t->w, &ev)) {
            ls_seed_server_feed(t->srv, &ev);
            moved = true;
        }
        ls_frame_t f;
        while (!t->closed && ls_seed_server_next(t->srv, &f)) {
            carry_from(&f, to_client, t, t->srv);
            t->frames++;
            moved = true;
        }
        ls_seed_server_state_t st = ls_seed_server_state(t->srv);
        if (st == LS_SEED_SRV_FAILED && !moved) break;
        idle = moved ? 0 : idle + 1;
        if (!moved) usleep(2000);
    }
}

/* wire_init's client plays a node without LS_FEAT_SEEDXXH (its option sha256): the stream's
 * check is SHA-256 on both sides; else XXH3-128, the default. */
static bool wire_sha256;

static void welcome(wire_t *t, bool accept)
{
    static ls_frame_t h, w;
    uint8_t zero[LS_DBID_LEN] = {0};
    ls_seed_client_hello(t->cli, "node-b", "db1", zero, &h);
    cr_assert_eq(h.hello.purpose, LS_PURPOSE_SEED);
    cr_assert_eq((h.hello.features & LS_FEAT_SEEDXXH) != 0, !wire_sha256,
                 "XXH3-128 offered unless playing an older node");
    cr_assert_eq(h.hello.db_window, WIN);
    memset(&w, 0, sizeof(w));
    w.type = LS_FRAME_WELCOME;
    w.welcome.version = LS_PROTO_VERSION_MAX;
    w.welcome.features = h.hello.features;
    w.welcome.node = ls_proto_str("node-a");
    w.welcome.db_count = 1;
    w.welcome.dbs[0].status = accept ? LS_DB_ACCEPTED : LS_DB_REFUSED;
    w.welcome.dbs[0].code = accept ? 0 : LS_EBUSY;
    w.welcome.dbs[0].reason = ls_proto_str(accept ? "" : "a seed of db1 is already under way");
    carry(&w, to_client, t);
}

static void wire_init(wire_t *t, const env_t *e, bool worker)
{
    memset(t, 0, sizeof(*t));
    t->e = e;
    t->corrupt = -1;
    t->replace = true;
    ls_seed_server_options_t so = {.db_window = WIN,
                                   .conn_window = WIN,
                                   .chunk_max = 32 * 1024,
                                   .release = worker ? release : NULL,
                                   .release_ctx = t};
    uint8_t id[LS_DBID_LEN] = {1};
    cr_assert_eq(ls_seed_server_new(&so, id, &t->srv), 0);
    ls_seed_client_options_t co = {
        .source = "node-a", .features = LS_FEAT_CKSUM, .window = WIN, .sha256 = wire_sha256};
    cr_assert_eq(ls_seed_client_new(&co, &t->cli), 0);
    if (!worker) return;
    /* the server's side of the negotiation: welcome() accepts what the client offered */
    ls_seed_worker_options_t wo = {
        .db_dir = e->db, .chunk = 48 * 1024, .notify = notify, .xxh = !wire_sha256};
    cr_assert_eq(ls_seed_worker_start(&wo, &t->w), 0);
}

static void wire_free(wire_t *t)
{
    ls_seed_server_free(t->srv);
    ls_seed_worker_free(t->w);
    ls_seed_client_free(t->cli);
    ls_seed_install_free(t->in);
    ls_copy_close(t->copy);
}

/* An active with closed generations and an open one holding records before the snapshot. */
static ls_db_t *active(const env_t *e, int n)
{
    ls_db_options_t o = db_opts(32 * 1024);
    ls_db_t *db = NULL;
    cr_assert_eq(ls_db_open(e->db, &o, &db), 0, "%s", ls_db_open_error());
    cr_assert_eq(commit_range(db, 0, n, 3, 600), 0);
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(commit_range(db, n, n + 3, 2, 100), 0, "the open generation's first part");
    cr_assert_eq(ls_db_checkpoint(db), 0);
    return db;
}

/* A shipped copy to replace: the first seed of e's copy. */
static void first_copy(const env_t *e)
{
    seed_ok(e, 64 * 1024, NULL);
}

/* First and last LSN of closed generation g of db. */
static void gen_lsns(const char *db, uint64_t g, uint64_t *first, uint64_t *last)
{
    char name[LS_GEN_NAME_MAX], path[PATHSZ];
    ls_gen_name(name, sizeof(name), "E00", 1, g);
    snprintf(path, sizeof(path), "%s/logs/%s", db, name);
    size_t len = 0;
    uint8_t *buf = ls_h_read_file(path, &len);
    cr_assert(buf && len > LS_GEN_HEADER_SIZE + LS_GEN_TRAILER_SIZE, "%s", path);
    ls_gen_header_t h;
    ls_gen_trailer_t tr;
    cr_assert_eq(ls_gen_header_decode(buf, len, &h), 0);
    uint64_t seed = ls_gen_seed(h.dbid, h.epoch, h.generation);
    cr_assert_eq(
        ls_gen_trailer_decode(buf + len - LS_GEN_TRAILER_SIZE, LS_GEN_TRAILER_SIZE, seed, &tr), 0);
    *first = h.first_lsn;
    *last = tr.last_lsn;
    free(buf);
}

/* ---- the whole exchange --------------------------------------------------------------------- */

Test(seed_session, whole_exchange_hands_off_inside_an_open_generation, .timeout = 60)
{
    env_t e;
    env_init(&e, "seed-session");
    ls_db_t *db = active(&e, 40);
    ls_db_stats_t s1;
    ls_db_stats(db, &s1);
    first_copy(&e);
    wire_t t;
    wire_init(&t, &e, true);
    char err[512];
    cr_assert_eq(open_copy(&t, &t.copy, err, sizeof(err)), 0, "%s", err);
    welcome(&t, true);
    cr_assert_eq(ls_seed_client_state(t.cli), LS_SEED_CLI_SNAPSHOT);
    cr_assert(ls_seed_client_welcomed(t.cli));
    pump(&t);
    cr_assert_eq(ls_seed_server_state(t.srv), LS_SEED_SRV_ENDED, "%s",
                 ls_seed_server_error(t.srv, NULL));
    cr_assert_eq(ls_seed_client_state(t.cli), LS_SEED_CLI_DONE, "%s",
                 ls_seed_client_error(t.cli, NULL));
    cr_assert(t.closed && t.swapped && t.copy, "closed, swapped, reopened: %s", t.err);
    const ls_seed_info_t *info = ls_seed_server_info(t.srv);
    cr_assert_eq(ls_seed_server_bytes_sent(t.srv), info->total_bytes);
    cr_assert_gt(t.frames, 4, "the window made the stream go in several chunks");
    ls_seed_client_figures_t fig;
    ls_seed_client_figures(t.cli, &fig);
    cr_assert(fig.begun && fig.done == info->total_bytes);
    cr_assert_eq(ls_seed_progress_percent(&fig.prog), 100);
    cr_assert_str_eq(ls_seed_client_state_name(fig.state), "done");
    /* The hand-off: N is the generation that was open, L inside it. */
    cr_assert_eq(info->generation, s1.current_generation);
    cr_assert_eq(info->last_lsn, s1.last_lsn);
    ls_copy_resume_t r;
    ls_copy_resume_point(t.copy, &r);
    cr_assert_eq(r.next_generation, info->generation, "the reopened copy asks for N");
    cr_assert_arr_eq(r.digest, info->prev_digest, LS_DIGEST_SIZE);
    cr_assert_eq(commit_range(db, 43, 47, 2, 100), 0, "after L, same generation");
    cr_assert_eq(ls_db_close(db), 0); /* closes N */
    uint64_t first, last;
    gen_lsns(e.db, info->generation, &first, &last);
    cr_assert(first < info->last_lsn && info->last_lsn < last, "N holds %llu..%llu, L = %llu",
              (unsigned long long) first, (unsigned long long) last,
              (unsigned long long) info->last_lsn);
    assert_no_leftovers(e.copy);
    wire_free(&t);
    env_free(&e);
}

/* ---- refusals, corruption, aborts ----------------------------------------------------------- */

Test(seed_session, refused_without_delete_existing_creates_nothing, .timeout = 60)
{
    env_t e;
    env_init(&e, "seed-session");
    ls_db_t *db = active(&e, 10);
    first_copy(&e);
    char before[2 * LS_DIGEST_SIZE + 1], after[2 * LS_DIGEST_SIZE + 1], what[128] = "";
    tree_hash(e.copy, before);
    cr_assert(ls_seed_copy_holds_data(e.copy, what, sizeof(what)));
    cr_assert(strstr(what, "a store of"), "%s", what);
    wire_t t;
    wire_init(&t, &e, true);
    t.replace = false;
    welcome(&t, true);
    pump(&t);
    int code = 0;
    cr_assert_eq(ls_seed_client_state(t.cli), LS_SEED_CLI_FAILED);
    const char *why = ls_seed_client_error(t.cli, &code);
    cr_assert_eq(code, LS_EEXIST);
    cr_assert(strstr(why, "delete_existing"), "%s", why);
    cr_assert(t.closed && !t.in);
    assert_no_leftovers(e.copy);
    tree_hash(e.copy, after);
    cr_assert_str_eq(before, after, "the old copy is untouched");
    ls_db_close(db);
    wire_free(&t);
    env_free(&e);
}

/* A byte flipped in transit: the negotiated check (XXH3-128, or SHA-256 with a client playing a
 * node without LS_FEAT_SEEDXXH) catches it; the error names the algorithm. */
static void corrupt_stream(bool sha256)
{
    wire_sha256 = sha256;
    env_t e;
    env_init(&e, "seed-session");
    ls_db_t *db = active(&e, 10);
    first_copy(&e);
    char before[2 * LS_DIGEST_SIZE + 1], after[2 * LS_DIGEST_SIZE + 1];
    tree_hash(e.copy, before);
    wire_t t;
    wire_init(&t, &e, true);
    t.corrupt = 40000;
    welcome(&t, true);
    pump(&t);
    int code = 0;
    cr_assert_eq(ls_seed_client_state(t.cli), LS_SEED_CLI_FAILED);
    const char *why = ls_seed_client_error(t.cli, &code);
    cr_assert_eq(code, LS_EDIGEST, "%s", why);
    cr_assert(ls_h_contains(why, sha256 ? "seed stream SHA-256 mismatch"
                                        : "seed stream XXH3-128 mismatch"),
              "%s", why);
    cr_assert(!t.swapped && !t.in);
    assert_no_leftovers(e.copy);
    tree_hash(e.copy, after);
    cr_assert_str_eq(before, after, "the old copy is untouched");
    ls_db_close(db);
    wire_free(&t);
    env_free(&e);
}

Test(seed_session, corrupt_stream_installs_nothing, .timeout = 60)
{
    corrupt_stream(false);
}

Test(seed_session, corrupt_stream_with_an_older_peer_fails_its_sha256, .timeout = 60)
{
    corrupt_stream(true);
}

/* Playing an older node, the whole seed goes through with SHA-256 on both sides. */
Test(seed_session, seed_with_an_older_peer_checks_sha256, .timeout = 60)
{
    wire_sha256 = true;
    env_t e;
    env_init(&e, "seed-session");
    ls_db_t *db = active(&e, 10);
    wire_t t;
    wire_init(&t, &e, true);
    welcome(&t, true);
    pump(&t);
    cr_assert_eq(ls_seed_client_state(t.cli), LS_SEED_CLI_DONE, "%s", t.err);
    ls_db_close(db);
    wire_free(&t);
    env_free(&e);
}

Test(seed_session, refused_welcome_and_frames_out_of_turn_fail_the_seed)
{
    env_t e = {0};
    wire_t t;
    wire_init(&t, &e, false);
    welcome(&t, false);
    int code = 0;
    cr_assert_eq(ls_seed_client_state(t.cli), LS_SEED_CLI_FAILED);
    cr_assert(strstr(ls_seed_client_error(t.cli, &code), "already under way"));
    cr_assert_eq(code, LS_EBUSY);
    cr_assert(t.closed);
    ls_frame_t f = {.type = LS_FRAME_SEED_END};
    ls_seed_client_frame(t.cli, &f, ls_mono_ns()); /* after the end: ignored */
    cr_assert(ls_seed_client_finished(t.cli));
    wire_free(&t);

    const uint8_t bad[] = {LS_FRAME_SEED_DATA, LS_FRAME_SEED_BEGIN, LS_FRAME_SEED_END};
    for (size_t i = 0; i < sizeof(bad); i++) { /* after WELCOME, before SEED_BEGIN */
        wire_init(&t, &e, false);
        welcome(&t, true);
        ls_frame_t g = {.type = bad[i]};
        if (bad[i] == LS_FRAME_SEED_BEGIN) {
            g.seed_begin.generation = 1;
            ls_seed_client_frame(t.cli, &g, ls_mono_ns()); /* the first one is fine */
            ls_seed_act_t a;
            while (ls_seed_client_action(t.cli, &a))
                ;
            cr_assert_eq(ls_seed_client_state(t.cli), LS_SEED_CLI_RECEIVING);
        }
        if (bad[i] == LS_FRAME_SEED_DATA) g.seed_data.len = 1;
        ls_seed_client_frame(t.cli, &g, ls_mono_ns());
        drain(&t);
        bool end_ok = bad[i] == LS_FRAME_SEED_END;
        cr_assert_eq(ls_seed_client_state(t.cli), LS_SEED_CLI_FAILED, "%s",
                     ls_frame_type_name(bad[i]));
        ls_seed_client_error(t.cli, &code);
        cr_assert_eq(code, LS_EPROTO, "%s out of turn", ls_frame_type_name(bad[i]));
        (void) end_ok;
        wire_free(&t);
    }
    wire_init(&t, &e, false); /* a frame before WELCOME */
    ls_seed_client_frame(t.cli, &f, ls_mono_ns());
    drain(&t);
    cr_assert(strstr(ls_seed_client_error(t.cli, &code), "before WELCOME"));
    wire_free(&t);
}

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
