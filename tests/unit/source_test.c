/* source: directory view, history and the resume plan (helpers in source_test_util.h; the
 * pipelined reader in source_reader_test.c, the removal rule and the queue figures in
 * source_removal_test.c). */
#include "source_test_util.h"

/* ---- directory view and history --------------------------------------------------------- */

Test(source, view_lists_closed_generations_only)
{
    chain_t *c = chain_new();
    add_gens(c, 3, 1);
    write_text(c, "E00.log", "the current log: never read, not even its header");
    write_text(c, "E00-zz.log", "foreign");
    write_text(c, "E01-00000001-0000000000000009.log", "another prefix");
    write_text(c, "E00-00000001-0000000000000009.log.part", "not a closed name");
    write_text(c, "notes.txt", "foreign");
    ls_source_t *s = open_src(c);
    ls_source_view_t v;
    ls_source_view(s, &v);
    cr_assert_eq(v.count, 3);
    cr_assert_eq(v.oldest, 1);
    cr_assert_eq(v.newest, 3);
    cr_assert_eq(v.epoch, 1);
    cr_assert_eq(v.history_len, 0);

    add_gens(c, 2, 1);
    ls_source_view(s, &v);
    cr_assert_eq(v.newest, 3, "nothing changes before a rescan");
    rescan(s);
    ls_source_view(s, &v);
    cr_assert_eq(v.count, 5);
    cr_assert_eq(v.newest, 5);
    cr_assert(ls_source_has(s, 4, NULL));
    cr_assert_not(ls_source_has(s, 9, NULL));
    ls_source_free(s);
    chain_free(c);
}

Test(source, bad_prefix_and_missing_dir)
{
    ls_source_options_t o = {.db_dir = "/nonexistent/logship", .prefix = "E-0"};
    ls_source_t *s = NULL;
    char err[LS_SOURCE_ERRLEN] = "";
    cr_assert_eq(ls_source_open(&o, &s, err, sizeof(err)), LS_EINVAL);
    cr_assert(ls_h_contains(err, "E-0"), "%s", err);
    o.prefix = NULL;
    cr_assert_eq(ls_source_open(&o, &s, err, sizeof(err)), LS_ENOENT, "%s", err);
    cr_assert(ls_h_contains(err, "/nonexistent/logship/logs"), "%s", err);
}

Test(source, history_gives_epochs)
{
    chain_t *c = chain_new();
    add_gens(c, 3, 1);
    add_gens(c, 2, 2);
    write_text(c, "history", "# epoch first_generation\n1 1\n\n2\t4\n");
    ls_source_t *s = open_src(c);
    ls_source_view_t v;
    ls_source_view(s, &v);
    cr_assert_eq(v.epoch, 2);
    cr_assert_eq(v.history_len, 2);
    cr_assert_eq(ls_source_epoch_of(s, 3), 1);
    cr_assert_eq(ls_source_epoch_of(s, 4), 2);
    char err[LS_SOURCE_ERRLEN] = "";
    cr_assert_eq(ls_source_remove_upto(s, 3, err, sizeof(err)), 3, "%s", err);
    cr_assert_eq(ls_source_epoch_of(s, 2), 1, "a removed generation's epoch comes from history");
    cr_assert_eq(ls_source_epoch_of(s, 9), 2);
    ls_source_free(s);
    chain_free(c);
}

Test(source, malformed_history_names_file_and_line)
{
    chain_t *c = chain_new();
    add_gens(c, 2, 1);
    write_text(c, "history", "1 1\n2 x\n");
    ls_source_options_t o = {.db_dir = c->dir};
    ls_source_t *s = NULL;
    char err[LS_SOURCE_ERRLEN] = "";
    cr_assert_eq(ls_source_open(&o, &s, err, sizeof(err)), LS_ECONFIG);
    char want[1200];
    snprintf(want, sizeof(want), "%s/history:2:", c->logs);
    cr_assert(ls_h_contains(err, want), "%s", err);

    write_text(c, "history", "1 1\n");
    s = open_src(c);
    write_text(c, "history", "1 1\n3 5\n2 6\n"); /* epochs must increase */
    cr_assert_eq(ls_source_rescan(s, err, sizeof(err)), LS_ECONFIG);
    snprintf(want, sizeof(want), "%s/history:3: epoch does not increase", c->logs);
    cr_assert(ls_h_contains(err, want), "%s", err);
    ls_source_view_t v;
    ls_source_view(s, &v);
    cr_assert_eq(v.newest, 2, "a failed rescan keeps the previous view");
    ls_source_free(s);
    chain_free(c);
}

Test(source, file_epoch_must_match_history)
{
    chain_t *c = chain_new();
    add_gens(c, 2, 1);
    add_gens(c, 1, 2); /* epoch 2 but no history line for it */
    ls_source_options_t o = {.db_dir = c->dir};
    ls_source_t *s = NULL;
    char err[LS_SOURCE_ERRLEN] = "";
    cr_assert_eq(ls_source_open(&o, &s, err, sizeof(err)), LS_ELINEAGE, "%s", err);
    cr_assert(ls_h_contains(err, "E00-00000002-0000000000000003.log: epoch 2"), "%s", err);
    chain_free(c);
}

/* ---- resume plan --------------------------------------------------------------------------- */

Test(source, plan_fresh_and_matching)
{
    chain_t *c = chain_new();
    ls_source_t *s = open_src(c);
    ls_ship_plan_t p;
    char err[LS_SOURCE_ERRLEN];
    cr_assert_eq(plan(s, 0, 1, NULL, &p, err), 0, "%s", err);
    cr_assert_eq(p.ready, 0, "nothing closed yet");
    add_gens(c, 5, 1);
    rescan(s);
    cr_assert_eq(plan(s, 0, 1, NULL, &p, err), 0, "%s", err);
    cr_assert_eq(p.first, 1);
    cr_assert_eq(p.ready, 5);
    cr_assert_eq(plan(s, 1, 4, c->digest[3], &p, err), 0, "%s", err);
    cr_assert_eq(p.first, 4);
    cr_assert_eq(p.ready, 2);
    cr_assert_eq(p.epoch, 1);
    cr_assert_eq(plan(s, 1, 6, c->digest[5], &p, err), 0, "%s", err);
    cr_assert_eq(p.ready, 0, "up to date: waits for generation 6");
    cr_assert_eq(plan(s, 0, 0, NULL, &p, err), LS_EPROTO);
    cr_assert_eq(plan(s, 1, 1, c->digest[1], &p, err), LS_EPROTO, "a digest with nothing held");
    ls_source_free(s);
    chain_free(c);
}

Test(source, plan_mismatching_digest_diverges)
{
    chain_t *c = chain_new();
    add_gens(c, 5, 1);
    ls_source_t *s = open_src(c);
    uint8_t other[LS_DIGEST_SIZE];
    memcpy(other, c->digest[3], LS_DIGEST_SIZE);
    other[0] ^= 0x5a;
    ls_ship_plan_t p;
    char err[LS_SOURCE_ERRLEN];
    cr_assert_eq(plan(s, 1, 4, other, &p, err), LS_EDIVERGED);
    char a[17], b[17];
    hex8(other, a);
    hex8(c->digest[3], b);
    cr_assert(ls_h_contains(err, "generation 3 diverged"), "%s", err);
    cr_assert(ls_h_contains(err, a) && ls_h_contains(err, b), "%s", err);
    cr_assert_not(p.newer_epoch);

    cr_assert_eq(plan(s, 1, 7, c->digest[5], &p, err), LS_EDIVERGED, "beyond our newest + 1");
    cr_assert(ls_h_contains(err, "never wrote"), "%s", err);
    ls_source_free(s);
    chain_free(c);
}

Test(source, plan_checks_epoch_of_previous)
{
    chain_t *c = chain_new();
    add_gens(c, 3, 1);
    add_gens(c, 2, 2);
    write_text(c, "history", "1 1\n2 4\n");
    ls_source_t *s = open_src(c);
    ls_ship_plan_t p;
    char err[LS_SOURCE_ERRLEN];
    cr_assert_eq(plan(s, 1, 4, c->digest[3], &p, err), 0, "%s", err); /* chain across epochs */
    cr_assert_eq(plan(s, 2, 5, c->digest[4], &p, err), 0, "%s", err);
    cr_assert_eq(plan(s, 2, 4, c->digest[3], &p, err), LS_EDIVERGED);
    cr_assert(ls_h_contains(err, "generation 3 of epoch 2"), "%s", err);
    cr_assert_not(p.newer_epoch);
    /* A seeded copy that does not know generation 3's epoch (its hand-off named 4's): epoch 0,
     * the digest decides. */
    cr_assert_eq(plan(s, 0, 4, c->digest[3], &p, err), 0, "%s", err);
    cr_assert_eq(p.first, 4);
    uint8_t other[LS_DIGEST_SIZE];
    memcpy(other, c->digest[3], LS_DIGEST_SIZE);
    other[0] ^= 0x5a;
    cr_assert_eq(plan(s, 0, 4, other, &p, err), LS_EDIVERGED);
    cr_assert(ls_h_contains(err, "generation 3 diverged"), "%s", err);
    cr_assert_eq(plan(s, 3, 6, c->digest[5], &p, err), LS_EDIVERGED);
    cr_assert(p.newer_epoch, "%s", err);
    /* A target ahead of this node in a newer epoch (the new active wrote on): newer_epoch too,
     * not "generations this active never wrote". */
    cr_assert_eq(plan(s, 3, 9, c->digest[5], &p, err), LS_EDIVERGED);
    cr_assert(p.newer_epoch, "%s", err);
    cr_assert(ls_h_contains(err, "generation 8 of epoch 3, newer than this active's epoch 2"), "%s",
              err);
    ls_source_free(s);
    chain_free(c);
}

Test(source, plan_removed_generation_needs_seed)
{
    chain_t *c = chain_new();
    add_gens(c, 6, 1);
    ls_source_t *s = open_src(c);
    char err[LS_SOURCE_ERRLEN] = "";
    cr_assert_eq(ls_source_remove_upto(s, 3, err, sizeof(err)), 3, "%s", err);
    ls_ship_plan_t p;
    cr_assert_eq(plan(s, 1, 2, c->digest[1], &p, err), LS_EGAP);
    cr_assert(p.need_seed);
    cr_assert(ls_h_contains(err, "generation 2 was removed on the active"), "%s", err);
    cr_assert(ls_h_contains(err, "needs a seed"), "%s", err);
    cr_assert_eq(plan(s, 0, 1, NULL, &p, err), LS_EGAP);
    cr_assert(p.need_seed);
    /* 3 was removed, but 4's header carries its digest. */
    cr_assert_eq(plan(s, 1, 4, c->digest[3], &p, err), 0, "%s", err);
    cr_assert_eq(p.ready, 3);
    cr_assert_eq(plan(s, 1, 4, c->digest[2], &p, err), LS_EDIVERGED);
    cr_assert(ls_h_contains(err, "generation 3 diverged"), "%s", err);
    cr_assert(ls_h_contains(err, "header of the next generation"), "%s", err);
    ls_source_free(s);
    chain_free(c);
}

Test(source, plan_gap_names_missing_generation)
{
    chain_t *c = chain_new();
    add_gens(c, 6, 1);
    ls_source_t *s = open_src(c);
    char path[PATH_MAX];
    gen_path(c, 4, path, sizeof(path));
    cr_assert_eq(unlink(path), 0);
    rescan(s);
    ls_ship_plan_t p;
    char err[LS_SOURCE_ERRLEN];
    cr_assert_eq(plan(s, 1, 2, c->digest[1], &p, err), LS_EGAP);
    cr_assert_not(p.need_seed);
    cr_assert(ls_h_contains(err, "generation 4 is missing"), "%s", err);
    cr_assert_eq(plan(s, 1, 5, c->digest[4], &p, err), 0, "%s", err); /* past the hole */
    cr_assert_eq(plan(s, 1, 4, c->digest[3], &p, err), LS_EGAP);
    cr_assert(ls_h_contains(err, "generation 4 is missing"), "%s", err);
    ls_source_free(s);
    chain_free(c);
}
