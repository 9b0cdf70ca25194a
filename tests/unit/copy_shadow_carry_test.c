/*
 * Block mode on the copy: bytes written to the shadow but not yet durable are carried by the
 * store, written back at open when the shadow lost them or differs, a shadow never synced made
 * again from the carry, and an activation after a kill closes the carried bytes. Helpers in
 * copy_shadow_test_util.h.
 */
#include "copy_shadow_test_util.h"

/* ---- bytes written but not yet durable: the store carries them ------------------------------- */

/* The store's carry record: *from, *end and the bytes (false: none). */
static bool carry_of(ls_copy_t *c, uint64_t *from, uint64_t *end, uint8_t **bytes)
{
    void *v = NULL;
    size_t len = 0;
    int rc = ls_store_aux_get(ls_copy_store(c), "shadow_carry", &v, &len);
    if (rc == LS_ENOENT) return false;
    cr_assert_eq(rc, 0);
    cr_assert_geq(len, 32);
    const uint8_t *p = v;
    *from = ls_get64(p + 16);
    *end = ls_get64(p + 24);
    cr_assert_eq(*end - *from, len - 32);
    *bytes = malloc(len - 32 + 1);
    memcpy(*bytes, p + 32, len - 32);
    free(v);
    return true;
}

/* The carry record holds exactly bytes [from, end) of the active's log in f->cur. */
static void expect_carry(const fx_t *f, ls_copy_t *c, uint64_t from, uint64_t end)
{
    uint64_t a = 0, b = 0;
    uint8_t *bytes = NULL;
    cr_assert(carry_of(c, &a, &b, &bytes), "the store carries the unsynced bytes");
    cr_assert(a == from && b == end, "carried [%llu, %llu), expected [%llu, %llu)",
              (unsigned long long) a, (unsigned long long) b, (unsigned long long) from,
              (unsigned long long) end);
    size_t n = 0;
    uint8_t *log = ls_h_read_file(f->cur, &n);
    cr_assert(log && n >= end);
    cr_assert_arr_eq(bytes, log + from, (size_t) (end - from));
    free(log);
    free(bytes);
}

/* The shadow of generation 1 holds bytes [0, end) of the active's log in f->cur. */
static void expect_shadow_holds(const fx_t *f, uint64_t end)
{
    char path[PATHLEN];
    shadow_file(f->cp, 1, 1, path, sizeof(path));
    size_t n = 0, m = 0;
    uint8_t *sh = ls_h_read_file(path, &n), *log = ls_h_read_file(f->cur, &m);
    cr_assert(sh && log && m >= end);
    cr_assert_geq(n, end, "the shadow holds %zu bytes, the store applied %llu", n,
                  (unsigned long long) end);
    cr_assert_arr_eq(sh, log, (size_t) end);
    free(sh);
    free(log);
}

static bool shadow_applied_reached(void *ctx)
{
    wait_t *w = ctx;
    ls_copy_stats_t s;
    ls_copy_stats(w->c, &s);
    return s.shadow_applied_lsn >= w->lsn || s.state == LS_COPY_FAILED;
}

/* The store applied the shadow up to lsn; acknowledged as applied only up to acked (the bytes
 * it carries are not reported durable and its commit's meta page is not synced). */
static void wait_carried(ls_copy_t *c, uint64_t lsn, uint64_t acked)
{
    ls_copy_stats_t s;
    wait_healthy(c, shadow_applied_reached, lsn, &s);
    cr_assert_eq(s.applied_lsn, acked, "acknowledged up to %llu, not %llu",
                 (unsigned long long) acked, (unsigned long long) s.applied_lsn);
}

/* On a fresh fixture f, three early-apply steps on written reports: [0, d1) and [0, d2) carried
 * whole (nothing reported durable), then d2 reported durable and [d2, d3) carried alone. The copy
 * is closed; *d2, *d3 and *lsn (d3's) for the caller, the active closed (generation 1 in f->cur).
 */
static void carry_three_steps(fx_t *f, uint64_t *d2o, uint64_t *d3o, uint64_t *lsn)
{
    ls_db_t *db;
    ls_ctl_durable_t d1;
    ls_copy_t *c = six_in_shadow(f, &db, &d1);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_written(c, d1.epoch, 1, d1.offset);
    wait_carried(c, d1.lsn, 0);
    expect_carry(f, c, 0, d1.offset);
    commit_n(db, 6, 4);
    ls_ctl_durable_t d2 = durable_of(f->act);
    shadow_write(f, d2.epoch, 1, d2.offset);
    ls_copy_shadow_written(c, d2.epoch, 1, d2.offset);
    wait_carried(c, d2.lsn, d1.lsn);  /* the first step's meta synced by the second commit */
    expect_carry(f, c, 0, d2.offset); /* the carry is dropped only once the bytes are synced */
    ls_copy_shadow_durable(c, d2.epoch, 1, d2.offset, d2.lsn);
    ls_copy_stats_t s;
    ls_copy_stats(c, &s);
    cr_assert_eq(s.applied_lsn, d2.lsn, "acknowledged once the carried bytes are durable");
    commit_n(db, 10, 5);
    ls_ctl_durable_t d3 = durable_of(f->act);
    shadow_write(f, d3.epoch, 1, d3.offset);
    ls_copy_shadow_written(c, d3.epoch, 1, d3.offset);
    wait_carried(c, d3.lsn, d2.lsn);
    expect_carry(f, c, d2.offset, d3.offset);
    ls_copy_stats(c, &s);
    cr_assert_eq(s.shadow_applies, 3);
    ls_copy_close(c);
    commit_n(db, 15, 2); /* never in the shadow */
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(ls_db_close(db), 0);
    gen_path(f->cur, sizeof(f->cur), f->act, 1, 1);
    *d2o = d2.offset;
    *d3o = d3.offset;
    *lsn = d3.lsn;
}

/* The copy reopened after damage to the shadow: the carried bytes are back, the closed
 * generation replays over what was applied (each transaction once) and the store equals the
 * active's. */
static void reopen_and_finish(fx_t *f, uint64_t d3, uint64_t lsn)
{
    ls_copy_t *c = copy_with(f, 0);
    expect_shadow_holds(f, d3);
    ls_copy_stats_t s;
    ls_copy_stats(c, &s);
    cr_assert_eq(s.applied_lsn, lsn);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, 1, 1, d3, lsn); /* walked again: the proof holds, nothing new */
    replay_closed(f, c, 1);
    ls_copy_stats(c, &s);
    cr_assert_eq(s.state, LS_COPY_HEALTHY, "%s", s.reason);
    cr_assert_eq(s.shadow_applies, 0, "nothing applied twice from the shadow");
    expect_same_store(f, c);
    ls_copy_close(c);
}

/* carry_three_steps (a fresh fixture f); path (PATHLEN): the shadow's file, for the damage. */
static void carried(fx_t *f, uint64_t *d2, uint64_t *d3, uint64_t *lsn, char *path)
{
    carry_three_steps(f, d2, d3, lsn);
    shadow_file(f->cp, 1, 1, path, PATHLEN);
}

Test(copy_shadow, carried_bytes_lost_from_the_shadow_are_written_back_at_open, .timeout = 60)
{
    fx_t f;
    uint64_t d2, d3, lsn;
    char path[PATHLEN];
    carried(&f, &d2, &d3, &lsn, path);
    cr_assert_eq(truncate(path, (off_t) (d2 + (d3 - d2) / 2)), 0); /* a power cut's loss */
    reopen_and_finish(&f, d3, lsn);
    fx_free(&f);
}

Test(copy_shadow, carried_bytes_that_differ_in_the_shadow_are_written_back, .timeout = 60)
{
    fx_t f;
    uint64_t d2, d3, lsn;
    char path[PATHLEN];
    carried(&f, &d2, &d3, &lsn, path);
    int fd = open(path, O_WRONLY);
    cr_assert_geq(fd, 0);
    uint8_t junk[64];
    memset(junk, 0xa5, sizeof(junk)); /* old bytes of a recycled pool file, say */
    cr_assert_eq(pwrite(fd, junk, sizeof(junk), (off_t) (d3 - sizeof(junk))),
                 (ssize_t) sizeof(junk));
    close(fd);
    reopen_and_finish(&f, d3, lsn);
    fx_free(&f);
}

Test(copy_shadow, a_shadow_never_synced_is_made_again_from_the_carry, .timeout = 60)
{
    fx_t f;
    ls_db_t *db;
    ls_ctl_durable_t d;
    ls_copy_t *c = six_in_shadow(&f, &db, &d);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_written(c, d.epoch, 1, d.offset);
    wait_carried(c, d.lsn, 0);
    ls_copy_close(c);
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(ls_db_close(db), 0);
    gen_path(f.cur, sizeof(f.cur), f.act, 1, 1);
    char path[PATHLEN];
    shadow_file(f.cp, 1, 1, path, sizeof(path));
    cr_assert_eq(unlink(path), 0); /* its name was never made durable */
    reopen_and_finish(&f, d.offset, d.lsn);
    fx_free(&f);
}

/* Opens the copy of the activation's setup and reports bytes [0, size) of generation 3 written,
 * not durable: the fault point after the store's commit ends the process. */
static void written_body(void *arg)
{
    fx_t *f = arg;
    uint64_t size, lsn;
    read_pos(f, &size, &lsn);
    gen_path(f->cur, sizeof(f->cur), f->act, 1, 1);
    ls_copy_t *c = copy_with(f, 0);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_written(c, 1, 3, size);
    wait_t w = {c, lsn};
    ls_h_wait_for(shadow_applied_reached, &w, 20000); /* the fault point ends it before */
    ls_copy_close(c);
}

Test(copy_shadow, killed_after_the_carrying_commit_activation_closes_the_carried_bytes,
     .timeout = 120)
{
    fx_t f;
    fx_init(&f);
    cr_assert_eq(run_child(prepare_activation, &f, NULL), 0);
    cr_assert_eq(run_child(written_body, &f, "copy.shadow.after_commit=exit"), LS_FAULT_EXIT_CODE);
    uint64_t size, lsn;
    read_pos(&f, &size, &lsn);
    char path[PATHLEN];
    shadow_file(f.cp, 1, 3, path, sizeof(path));
    cr_assert_eq(truncate(path, (off_t) (size / 2)), 0); /* the shadow's bytes never synced */
    ls_role_activate_report_t r;
    activate_gen3(&f, lsn, &r);
    cr_assert(r.lossless);
    expect_activated(&f, &r, lsn);
    fx_free(&f);
}
