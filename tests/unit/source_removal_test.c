/* source: the removal rule (targets' checkpoints, seeds, lag, the cap, rescans during removal)
 * and the queue figures (helpers in source_test_util.h). */
#include "source_test_util.h"

/* ---- removal ------------------------------------------------------------------------------- */

static int removable(ls_source_t *s, ls_removal_input_t *in, ls_removal_t *out)
{
    char err[LS_SOURCE_ERRLEN] = "";
    int rc = ls_source_removable(s, in, out, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    return rc;
}

Test(source, removal_needs_every_target_checkpoint_seed_and_lag)
{
    chain_t *c = chain_new();
    add_gens(c, 10, 1);
    ls_source_t *s = open_src(c);
    uint64_t synced[2] = {6, 4};
    ls_removal_input_t in = {
        .target_synced = synced,
        .ntargets = 2,
        .checkpoint_lsn = c->last_lsn[8],
        .truncation_lag_ns = 3 * SEC,
        .now_ns = BASE_NS + 10 * SEC, /* generations closed at <= 7 s are old enough */
    };
    ls_removal_t out;
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 4, "the slower target");
    cr_assert_eq(out.others_upto, 7, "the truncation lag");
    cr_assert_not(out.warning);
    cr_assert_not(out.capped);
    synced[0] = synced[1] = 9;
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 7);
    in.truncation_lag_ns = 0;
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 8, "the checkpoint");
    in.checkpoint_lsn = c->last_lsn[8] - 1;
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 7, "a checkpoint inside generation 8");
    in.checkpoint_lsn = UINT64_MAX;
    synced[0] = synced[1] = 10;
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 9, "the newest is always kept");
    in.seed_needs = 3;
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 2, "a seed needs 3 and later");
    in.seed_needs = 0;
    in.ntargets = 0;
    in.checkpoint_lsn = 0;
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 0, "nothing checkpointed");

    char err[LS_SOURCE_ERRLEN] = "";
    cr_assert_eq(ls_source_remove_upto(s, 4, err, sizeof(err)), 4, "%s", err);
    for (uint64_t g = 1; g <= 10; g++) {
        char path[PATH_MAX];
        gen_path(c, g, path, sizeof(path));
        cr_assert_eq(access(path, F_OK) == 0, g > 4, "generation %llu", (unsigned long long) g);
    }
    ls_source_view_t v;
    ls_source_view(s, &v);
    cr_assert_eq(v.oldest, 5);
    cr_assert_eq(ls_source_remove_upto(s, 10, err, sizeof(err)), LS_EINVAL);
    cr_assert(ls_h_contains(err, "newest"), "%s", err);
    cr_assert_eq(ls_source_remove_upto(s, 4, err, sizeof(err)), 0, "nothing left to remove");
    ls_source_free(s);
    chain_free(c);
}

Test(source, removal_cap_warns_and_cuts_the_lagging_target)
{
    chain_t *c = chain_new();
    add_gens(c, 10, 1); /* equal sizes */
    ls_source_t *s = open_src(c);
    uint64_t size = c->size[1];
    uint64_t synced[2] = {9, 1}; /* the second target is gone since generation 1 */
    ls_removal_input_t in = {
        .target_synced = synced,
        .ntargets = 2,
        .checkpoint_lsn = UINT64_MAX,
        .now_ns = BASE_NS + 100 * SEC,
        .max_log_bytes = 10 * size,
    };
    ls_removal_t out;
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 1);
    cr_assert_eq(out.others_upto, 9);
    cr_assert_eq(out.held_bytes, 8 * size, "generations 2..9 are held only for the target");
    cr_assert(out.warning, "8 of 10 is past three quarters of the cap");
    cr_assert_not(out.capped);
    cr_assert(ls_h_contains(out.msg, "lagging"), "%s", out.msg);

    in.max_log_bytes = 4 * size;
    removable(s, &in, &out);
    cr_assert(out.capped);
    cr_assert(out.warning);
    cr_assert_eq(out.upto, 5, "2..5 go so that 6..9 fit the cap");
    cr_assert_eq(out.cut_targets, 1);
    cr_assert_eq(out.cut_target_lowest, 1);
    cr_assert(ls_h_contains(out.msg, "need a seed"), "%s", out.msg);

    in.max_log_bytes = LS_SOURCE_NO_CAP;
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 1, "no cap: held for the target forever");
    cr_assert_not(out.warning, "far below the default cap");

    in.max_log_bytes = 100 * size;
    removable(s, &in, &out);
    cr_assert_not(out.warning);
    cr_assert_eq(out.msg[0], '\0');
    ls_source_free(s);
    chain_free(c);
}

/* Defect 3 of issue 13: what the configuration says reaches the rule unchanged. "none" (or 0) in
 * the file is LS_SOURCE_NO_CAP here: a target gone since generation 1 keeps everything however
 * much is held; the default cap is the engine's; a configured cap cuts. */
Test(source, removal_honours_the_configured_cap_or_none)
{
    cr_assert_eq(LS_CFG_NO_CAP, LS_SOURCE_NO_CAP);
    cr_assert_eq(LS_CFG_DEFAULT_MAX_LOG_BYTES, LS_SOURCE_DEFAULT_MAX_LOG_BYTES);
    chain_t *c = chain_new();
    for (int i = 0; i < 40; i++)
        add_gen(c, 1, 4, 4096);
    ls_source_t *s = open_src(c);
    uint64_t synced[2] = {39, 1};
    ls_removal_input_t in = {
        .target_synced = synced,
        .ntargets = 2,
        .checkpoint_lsn = UINT64_MAX,
        .now_ns = BASE_NS + 1000 * SEC,
        .max_log_bytes = LS_CFG_NO_CAP,
    };
    ls_removal_t out;
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 1, "no cap: nothing the gone target needs is removed");
    cr_assert_not(out.capped);
    cr_assert_eq(out.cut_targets, 0);
    uint64_t held = 0;
    for (uint64_t g = 2; g <= 39; g++)
        held += c->size[g];
    cr_assert_eq(out.held_bytes, held);
    in.max_log_bytes = 0; /* the struct's zero: the default cap, far above these bytes */
    removable(s, &in, &out);
    cr_assert_eq(out.upto, 1);
    cr_assert_not(out.capped);
    in.max_log_bytes = held / 2; /* a configured cap */
    removable(s, &in, &out);
    cr_assert(out.capped);
    cr_assert_gt(out.upto, 1);
    cr_assert_eq(out.cut_targets, 1);
    ls_source_free(s);
    chain_free(c);
}

/* A rescan at chosen points of a removal (defect 4 of issue 13): between the detach and the
 * first unlink, and after some but not all unlinks. */
typedef struct {
    ls_source_t *src;
    size_t at[2];       /* rescan when this many files are unlinked */
    uint64_t oldest[2]; /* the view's oldest generation after each of those rescans */
    uint64_t count[2];  /* and its size */
    int rescans;        /* rescans done */
} interleave_t;

static void rescan_during_removal(void *ctx, size_t done)
{
    interleave_t *x = ctx;
    for (int i = 0; i < 2; i++) {
        if (x->at[i] != done) continue;
        rescan(x->src);
        ls_source_view_t v;
        ls_source_view(x->src, &v);
        x->oldest[i] = v.oldest;
        x->count[i] = v.count;
        x->rescans++;
    }
}

Test(source, removal_and_rescan_never_disagree)
{
    chain_t *c = chain_new();
    add_gens(c, 10, 1);
    ls_source_t *s = open_src(c);
    interleave_t x = {.src = s, .at = {0, 2}};
    ls__src_set_remove_hook(s, rescan_during_removal, &x);
    char err[LS_SOURCE_ERRLEN] = "";
    cr_assert_eq(ls_source_remove_upto(s, 4, err, sizeof(err)), 4, "%s", err);
    cr_assert_eq(x.rescans, 2);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(x.oldest[i], 5, "rescan %d re-added a generation being removed", i);
        cr_assert_eq(x.count[i], 6);
    }
    ls_source_view_t v;
    ls_source_view(s, &v);
    cr_assert_eq(v.oldest, 5, "the view holds files that no longer exist");
    cr_assert_eq(v.count, 6);
    cr_assert_not(ls_source_has(s, 4, NULL));
    /* A target holding 4 reconnects: 4's digest is checked against 5's header, nothing is
     * reported missing. One holding 3 needs a seed. */
    ls_ship_plan_t p;
    cr_assert_eq(plan(s, 1, 5, c->digest[4], &p, err), 0, "%s", err);
    cr_assert_eq(p.first, 5);
    cr_assert_eq(p.ready, 6);
    cr_assert_eq(plan(s, 1, 4, c->digest[3], &p, err), LS_EGAP);
    cr_assert(p.need_seed);
    /* After the removal a rescan sees the directory as it is. */
    ls__src_set_remove_hook(s, NULL, NULL);
    rescan(s);
    ls_source_view(s, &v);
    cr_assert_eq(v.oldest, 5);
    cr_assert_eq(v.count, 6);
    ls_source_free(s);
    chain_free(c);
}

/* ---- figures ------------------------------------------------------------------------------- */

Test(source, queue_figures_are_exact)
{
    chain_t *c = chain_new();
    for (int i = 1; i <= 8; i++)
        add_gen(c, 1, i, (size_t) (100 * i)); /* distinct sizes */
    write_text(c, "E00.log", "garbage: the current log is never read");
    ls_source_t *s = open_src(c);
    char err[LS_SOURCE_ERRLEN] = "";
    uint64_t last = 0, close_ns = 0;
    cr_assert_eq(ls_source_last_closed(s, &last, &close_ns, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(last, 8);
    cr_assert_eq(close_ns, BASE_NS + 8 * SEC);
    ls_source_queue_t q;
    cr_assert_eq(ls_source_queue(s, 3, &q, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(q.count, 5);
    uint64_t bytes = 0;
    for (uint64_t g = 4; g <= 8; g++) {
        char path[PATH_MAX];
        struct stat st;
        gen_path(c, g, path, sizeof(path));
        cr_assert_eq(stat(path, &st), 0);
        bytes += (uint64_t) st.st_size;
    }
    cr_assert_eq(q.bytes, bytes);
    cr_assert_eq(q.oldest_close_ns, BASE_NS + 4 * SEC);
    cr_assert_eq(ls_source_queue(s, 0, &q, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(q.count, 8);
    cr_assert_eq(q.oldest_close_ns, BASE_NS + 1 * SEC);
    cr_assert_eq(ls_source_queue(s, 8, &q, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(q.count, 0);
    cr_assert_eq(q.bytes, 0);
    cr_assert_eq(q.oldest_close_ns, 0);

    /* A damaged trailer is an error naming the file, not a wrong figure. */
    damage(c, 8, -10, 0xff);
    ls_source_free(s);
    s = open_src(c);
    cr_assert_eq(ls_source_queue(s, 3, &q, err, sizeof(err)), LS_ECORRUPT);
    cr_assert(ls_h_contains(err, "E00-00000001-0000000000000008.log"), "%s", err);
    cr_assert(ls_h_contains(err, "no valid trailer"), "%s", err);
    ls_source_free(s);
    chain_free(c);
}

/* The fs event fast path: a closed generation's name is appended without a rescan only when it is
 * exactly the next one and exists; names the view never holds change nothing; anything else (the
 * history, a gap, a file not there, an epoch the history does not give) is left to the rescan, so a
 * lost event can never make the view skip a generation. The reader waiting for the next one is
 * woken by it. */
Test(source, add_appends_only_the_next_generation_and_wakes_the_reader)
{
    chain_t *c = chain_new();
    add_gens(c, 3, 1);
    ls_source_t *s = open_src(c);
    ls_reader_t *r = NULL;
    int notes = 0;
    cr_assert_eq(ls_reader_start(s, 4, NULL, notify, &notes, &r), 0);
    wait_reader(r, waiting_gen, 4);
    add_gens(c, 2, 1); /* 4 and 5 on disk, the view still ends at 3 */
    char err[LS_SOURCE_ERRLEN] = "", name[LS_GEN_NAME_MAX];
    ls_source_view_t v;
    cr_assert_eq(ls_gen_name(name, sizeof(name), "E00", 1, 5), 0);
    cr_assert_eq(ls_source_add(s, name, err, sizeof(err)), 1, "5 after 3: a gap, not added");
    cr_assert_eq(ls_source_add(s, "history", err, sizeof(err)), 1, "the history: a rescan");
    /* names the view never holds: nothing to do */
    cr_assert_eq(ls_source_add(s, "E00.log", err, sizeof(err)), 0);
    cr_assert_eq(ls_source_add(s, "E00.next", err, sizeof(err)), 0);
    cr_assert_eq(ls_source_add(s, "E00-00000001-0000000000000004.log.part", err, sizeof(err)), 0);
    cr_assert_eq(ls_source_add(s, "F00-00000001-0000000000000004.log", err, sizeof(err)), 0);
    cr_assert_eq(ls_gen_name(name, sizeof(name), "E00", 2, 4), 0);
    cr_assert_eq(ls_source_add(s, name, err, sizeof(err)), 1, "no such file");
    ls_source_view(s, &v);
    cr_assert_eq(v.newest, 3);
    cr_assert_eq(ls_gen_name(name, sizeof(name), "E00", 1, 4), 0);
    cr_assert_eq(ls_source_add(s, name, err, sizeof(err)), 0, "%s", err);
    take(c, r, 4); /* woken by the add */
    cr_assert_eq(ls_source_add(s, name, err, sizeof(err)), 0, "already there");
    cr_assert_eq(ls_gen_name(name, sizeof(name), "E00", 1, 5), 0);
    cr_assert_eq(ls_source_add(s, name, err, sizeof(err)), 0, "%s", err);
    take(c, r, 5);
    ls_source_view(s, &v);
    cr_assert_eq(v.count, 5);
    cr_assert_eq(v.newest, 5);
    uint64_t last = 0, close_ns = 0; /* its trailer, read without the lock, then cached */
    cr_assert_eq(ls_source_last_closed(s, &last, &close_ns, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(last, 5);
    cr_assert_eq(close_ns, BASE_NS + 5 * SEC);

    /* Generation 6 under an epoch the history does not give it: not added; the rescan says why. */
    c->epoch[6] = 2;
    add_gen(c, 2, 2, 64);
    cr_assert_eq(ls_gen_name(name, sizeof(name), "E00", 2, 6), 0);
    cr_assert_eq(ls_source_add(s, name, err, sizeof(err)), 1);
    cr_assert_eq(ls_source_rescan(s, err, sizeof(err)), LS_ELINEAGE);
    ls_source_view(s, &v);
    cr_assert_eq(v.newest, 5, "the view kept");
    ls_reader_stop(r);
    ls_source_free(s);
    chain_free(c);
}
