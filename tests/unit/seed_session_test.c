/*
 * seed sessions (engine/seed/session.h) driven with no socket: the server's frames go through
 * the codec (encode, decode: the wire) into the client session, whose actions this test carries
 * out as the daemon's receiver thread would (ls_seed_install_*, ls_seed_copy_swap), and whose
 * CREDIT frames go back to the server. Real snapshot worker and real stores; the whole exchange
 * with the hand-off inside an open generation, a corrupt stream that installs nothing, refusal
 * without delete_existing, out-of-turn frames. Aborts, credit, the swap and the worker's spill:
 * seed_session_credit_test.c; the wire: seed_session_test_util.h.
 */

#include <criterion/criterion.h>

#include "seed_session_test_util.h"

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
