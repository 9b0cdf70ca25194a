/*
 * Block mode on the copy (engine/copy/shadow_apply.c, shadow_close.c; docs/BLOCKMODE.md "Shadow
 * replay and activation"): shadows are prefixes of a real writer's current log (up to the
 * durable offset it published on the control page, or torn past it). The replayer applies their
 * complete transactions early; the closed generation then replays over them and the store equals
 * the active's; other bytes than those applied fail the copy; a lag or a pause applies nothing.
 * Helpers in copy_shadow_test_util.h; crashes at the fault points and activation in
 * copy_shadow_activate_test.c, the store's carry in copy_shadow_carry_test.c.
 */
#include "copy_shadow_test_util.h"

Test(copy_shadow, early_apply_then_the_closed_generation_gives_the_actives_store, .timeout = 60)
{
    fx_t f;
    fx_init(&f);
    ls_db_t *db = open_db(f.act);
    commit_n(db, 0, 10);
    ls_ctl_durable_t d1 = durable_of(f.act);
    cr_assert_eq(d1.generation, 1);
    shadow_write(&f, d1.epoch, 1, d1.offset);
    applied_ev_t ev = {.mu = PTHREAD_MUTEX_INITIALIZER};
    ls_copy_t *c = copy_ev(&f, 0, &ev);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, d1.epoch, 1, d1.offset, d1.lsn);
    wait_applied(c, d1.lsn);
    pthread_mutex_lock(&ev.mu);
    cr_assert(ev.applied == 1 && ev.gen == 1 && ev.lsn == d1.lsn, "APPLIED(1, %llu) reported",
              (unsigned long long) d1.lsn);
    pthread_mutex_unlock(&ev.mu);
    ls_copy_stats_t s;
    ls_copy_stats(c, &s);
    cr_assert_eq(s.applied_lsn, d1.lsn, "exactly the durable transactions");
    cr_assert_eq(s.shadow_applied_lsn, d1.lsn);
    cr_assert_eq(s.last_replayed, 0, "generation 1 is not replayed completely yet");
    cr_assert(has_key(c, "k9-1") && has_key(c, "k1-0") && !has_key(c, "k0-0"));
    ls_store_meta_t m;
    ls_store_meta(ls_copy_store(c), &m);
    cr_assert(m.generation == 1 && m.digest_generation == 0 && m.shadow_end == d1.offset,
              "meta inside generation 1: %llu/%llu end %llu", (unsigned long long) m.generation,
              (unsigned long long) m.digest_generation, (unsigned long long) m.shadow_end);

    commit_n(db, 10, 7); /* the shadow grows */
    ls_ctl_durable_t d2 = durable_of(f.act);
    shadow_write(&f, d2.epoch, 1, d2.offset);
    ls_copy_shadow_durable(c, d2.epoch, 1, d2.offset, d2.lsn);
    wait_applied(c, d2.lsn);
    ls_copy_stats(c, &s);
    cr_assert_geq(s.shadow_applies, 2);
    cr_assert(has_key(c, "k16-1"));

    commit_n(db, 17, 3); /* never in the shadow */
    cr_assert_eq(ls_db_roll(db), 0);
    commit_n(db, 20, 2); /* generation 2 */
    cr_assert_eq(ls_db_close(db), 0);
    send_closed(&f, c, 1);
    replay_closed(&f, c, 2);
    ls_copy_stats(c, &s);
    cr_assert_eq(s.state, LS_COPY_HEALTHY, "%s", s.reason);
    ls_store_meta(ls_copy_store(c), &m);
    cr_assert(m.digest_generation == 2 && m.shadow_end == 0, "replayed, the proof dropped");
    expect_same_store(&f, c);
    ls_copy_close(c);
    fx_free(&f);
}

Test(copy_shadow, torn_or_unfinished_tail_applies_complete_transactions_only, .timeout = 60)
{
    fx_t f;
    fx_init(&f);
    ls_db_t *db = open_db(f.act);
    commit_n(db, 0, 5);
    ls_ctl_durable_t d1 = durable_of(f.act);
    commit_n(db, 5, 1);
    ls_ctl_durable_t d2 = durable_of(f.act);
    /* the sixth transaction cut inside its second record, reported durable all the same */
    uint64_t cut = d1.offset + (d2.offset - d1.offset) / 2;
    shadow_write(&f, 1, 1, cut);
    ls_copy_t *c = copy_with(&f, 0);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, 1, 1, cut, d2.lsn);
    wait_applied(c, d1.lsn);
    /* the rest arrives: the torn record's bytes are complete now */
    shadow_write(&f, 1, 1, d2.offset);
    ls_copy_shadow_durable(c, 1, 1, d2.offset, d2.lsn);
    wait_applied(c, d2.lsn);
    ls_copy_stats_t s;
    ls_copy_stats(c, &s);
    cr_assert_eq(s.applied_lsn, d2.lsn);
    cr_assert_eq(s.shadow_applies, 2, "d1's transactions, then the sixth: never a half one");
    cr_assert(has_key(c, "k5-1"));
    ls_copy_close(c);
    ls_db_close(db);
    fx_free(&f);
}

/* Re-encodes the records of buf[0, len) (a shadow) with every PUT value's first byte changed:
 * valid records (checksums of this generation) that are not the active's. */
typedef struct {
    uint8_t *out;
    size_t off;
    uint64_t seed;
} forge_t;

static int forge_record(void *ctx, const ls_record_t *r)
{
    forge_t *fg = ctx;
    ls_record_t x = *r;
    uint8_t val[256];
    if (r->type == LS_REC_PUT && r->value_len && r->value_len <= sizeof(val)) {
        memcpy(val, r->value, r->value_len);
        val[0] = 'X';
        x.value = val;
    }
    fg->off += ls_record_encode(&x, fg->seed, fg->out + fg->off);
    return 0;
}

Test(copy_shadow, closed_generation_unlike_the_applied_shadow_fails_the_copy, .timeout = 60)
{
    fx_t f;
    fx_init(&f);
    ls_db_t *db = open_db(f.act);
    commit_n(db, 0, 6);
    ls_ctl_durable_t d = durable_of(f.act);
    size_t n = 0;
    uint8_t *buf = ls_h_read_file(f.cur, &n);
    ls_gen_header_t h;
    cr_assert_eq(ls_gen_header_decode(buf, n, &h), 0);
    uint8_t *forged = malloc(d.offset);
    memcpy(forged, buf, LS_GEN_HEADER_SIZE);
    forge_t fg = {forged, LS_GEN_HEADER_SIZE, ls_gen_seed(h.dbid, h.epoch, h.generation)};
    ls_gen_expect_t ex = {.allow_open = true};
    ls_gen_verdict_t v;
    cr_assert_eq(ls_gen_scan(buf, d.offset, &ex, forge_record, &fg, NULL, &v), 0, "%s", v.msg);
    cr_assert_eq(fg.off, d.offset);
    char path[PATHLEN];
    shadow_file(f.cp, 1, 1, path, sizeof(path));
    cr_assert_eq(ls_h_write_file(path, forged, d.offset), 0);
    free(forged);
    free(buf);

    ls_copy_t *c = copy_with(&f, 0);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, 1, 1, d.offset, d.lsn);
    wait_applied(c, d.lsn);
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(ls_db_close(db), 0);
    replay_closed(&f, c, 1);
    ls_copy_stats_t s;
    ls_copy_stats(c, &s);
    cr_assert_eq(s.state, LS_COPY_FAILED);
    cr_assert_eq(s.last_replayed, 0, "nothing of the closed generation applied");
    cr_assert(ls_h_contains(s.reason, "is not what the store applied early from its shadow") &&
                  ls_h_contains(s.reason, "reseed this copy"),
              "%s", s.reason);
    ls_copy_close(c);
    fx_free(&f);
}

Test(copy_shadow, nothing_applied_early_while_lagged_or_paused, .timeout = 60)
{
    fx_t f;
    fx_init(&f);
    ls_db_t *db = open_db(f.act);
    commit_n(db, 0, 4);
    ls_ctl_durable_t d = durable_of(f.act);
    shadow_write(&f, 1, 1, d.offset);
    for (int lagged = 1; lagged >= 0; lagged--) {
        ls_copy_t *c = copy_with(&f, lagged ? 60000 : 0);
        if (!lagged) ls_copy_pause_replay(c, true);
        cr_assert_eq(ls_copy_start(c), 0);
        ls_copy_shadow_durable(c, 1, 1, d.offset, d.lsn);
        usleep(300 * 1000); /* the replayer had its chance: a wrong apply would be done by now */
        ls_copy_stats_t s;
        ls_copy_stats(c, &s);
        cr_assert_eq(s.shadow_applies, 0, "%s: nothing applied", lagged ? "lagged" : "paused");
        cr_assert_eq(s.applied_lsn, 0);
        cr_assert_eq(s.shadow_durable_lsn, d.lsn, "the report is kept");
        if (!lagged) {
            ls_copy_pause_replay(c, false);
            wait_applied(c, d.lsn);
        }
        ls_copy_close(c);
    }
    ls_db_close(db);
    fx_free(&f);
}

/* Lazy (the source said no commit waits for the applied position): the replayer applies the
 * shadow by itself once the reports were quiet, with no further report to wake it; eager again,
 * the next report is applied as before. */
Test(copy_shadow, lazy_early_apply_waits_for_quiet_reports_then_applies, .timeout = 60)
{
    fx_t f;
    ls_db_t *db;
    ls_ctl_durable_t d1;
    ls_copy_t *c = six_in_shadow(&f, &db, &d1);
    ls_copy_shadow_apply_eager(c, false);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, d1.epoch, 1, d1.offset, d1.lsn);
    wait_applied(c, d1.lsn);
    ls_copy_stats_t s;
    ls_copy_stats(c, &s);
    cr_assert_eq(s.shadow_applied_lsn, d1.lsn);
    cr_assert(has_key(c, "k5-1"));
    commit_n(db, 6, 5);
    ls_ctl_durable_t d2 = durable_of(f.act);
    shadow_write(&f, d2.epoch, 1, d2.offset);
    ls_copy_shadow_apply_eager(c, true);
    ls_copy_shadow_durable(c, d2.epoch, 1, d2.offset, d2.lsn);
    wait_applied(c, d2.lsn);
    cr_assert(has_key(c, "k10-1"));
    commit_n(db, 11, 2);
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(ls_db_close(db), 0);
    replay_closed(&f, c, 1);
    expect_same_store(&f, c);
    ls_copy_close(c);
    fx_free(&f);
}

static int poke(void *ctx, ls_store_txn_t *txn)
{
    (void) ctx;
    return ls_store_put(txn, "k1-1", 4, "poked", 5);
}

Test(copy_shadow, closed_generation_replay_skips_what_was_applied_early, .timeout = 60)
{
    fx_t f;
    fx_init(&f);
    ls_db_t *db = open_db(f.act);
    commit_n(db, 0, 4);
    ls_ctl_durable_t d = durable_of(f.act);
    shadow_write(&f, 1, 1, d.offset);
    ls_copy_t *c = copy_with(&f, 0);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, 1, 1, d.offset, d.lsn);
    wait_applied(c, d.lsn);
    /* a value the closed generation's replay overwrites only if it applies k1-1's record again */
    ls_copy_stop(c);
    ls_store_meta_t m;
    ls_store_meta(ls_copy_store(c), &m);
    cr_assert_eq(ls_store_apply(ls_copy_store(c), poke, NULL, &m), 0);
    cr_assert_eq(ls_copy_start(c), 0);
    commit_n(db, 4, 2);
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(ls_db_close(db), 0);
    replay_closed(&f, c, 1);
    void *v = NULL;
    size_t vl = 0;
    cr_assert_eq(ls_store_get(ls_copy_store(c), "k1-1", 4, &v, &vl), 0);
    cr_assert(vl == 5 && memcmp(v, "poked", 5) == 0, "records up to meta.lsn skipped: %.*s",
              (int) vl, (char *) v);
    free(v);
    cr_assert(has_key(c, "k5-1"), "the records after it applied");
    ls_copy_close(c);
    fx_free(&f);
}

Test(copy_shadow, damaged_record_stops_the_early_apply_before_its_transaction, .timeout = 60)
{
    fx_t f;
    fx_init(&f);
    ls_db_t *db = open_db(f.act);
    commit_n(db, 0, 3);
    ls_ctl_durable_t d3 = durable_of(f.act);
    commit_n(db, 3, 3);
    ls_ctl_durable_t d6 = durable_of(f.act);
    size_t n = 0;
    uint8_t *buf = ls_h_read_file(f.cur, &n);
    cr_assert_geq(n, d6.offset);
    buf[d3.offset + LS_REC_HEADER_SIZE + 1] ^= 0x20; /* a key byte of the fourth transaction */
    char path[PATHLEN];
    shadow_file(f.cp, 1, 1, path, sizeof(path));
    cr_assert_eq(ls_h_write_file(path, buf, d6.offset), 0);
    free(buf);
    ls_copy_t *c = copy_with(&f, 0);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, 1, 1, d6.offset, d6.lsn);
    wait_applied(c, d3.lsn);
    ls_copy_stats_t s;
    ls_copy_stats(c, &s);
    cr_assert_eq(s.applied_lsn, d3.lsn, "up to the last COMMIT before the bad record only");
    cr_assert(!has_key(c, "k3-0"));
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(ls_db_close(db), 0);
    replay_closed(&f, c, 1); /* the closed generation brings the rest */
    ls_copy_stats(c, &s);
    cr_assert_eq(s.state, LS_COPY_HEALTHY, "%s", s.reason);
    expect_same_store(&f, c);
    ls_copy_close(c);
    fx_free(&f);
}

Test(copy_shadow, shadow_replaced_by_the_receiver_is_walked_again, .timeout = 60)
{
    fx_t f;
    fx_init(&f);
    ls_db_t *db = open_db(f.act);
    commit_n(db, 0, 3);
    ls_ctl_durable_t d1 = durable_of(f.act);
    commit_n(db, 3, 3);
    ls_ctl_durable_t d2 = durable_of(f.act);
    shadow_write(&f, 1, 1, d1.offset);
    ls_copy_t *c = copy_with(&f, 0);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, 1, 1, d1.offset, d1.lsn);
    wait_applied(c, d1.lsn);
    /* the receiver dropped its file and wrote a new one (another inode) */
    char path[PATHLEN];
    shadow_file(f.cp, 1, 1, path, sizeof(path));
    cr_assert_eq(unlink(path), 0);
    shadow_write(&f, 1, 1, d2.offset);
    ls_copy_shadow_durable(c, 1, 1, d2.offset, d2.lsn); /* the old file is too short */
    wait_applied(c, d2.lsn);
    cr_assert(has_key(c, "k5-1"));
    ls_copy_close(c);
    ls_db_close(db);
    fx_free(&f);
}
static int reepoch_record(void *ctx, const ls_record_t *r)
{
    forge_t *fg = ctx;
    fg->off += ls_record_encode(r, fg->seed, fg->out + fg->off);
    return 0;
}

Test(copy_shadow, early_apply_of_a_new_epochs_generation_keeps_the_held_epoch, .timeout = 60)
{
    fx_t f;
    fx_init(&f);
    build_active(f.act, 2, 3);
    ship(f.act, f.cp, 1, 2);
    ls_db_t *db = open_db(f.act);
    commit_n(db, 0, 3);
    ls_ctl_durable_t d = durable_of(f.act);
    cr_assert_eq(d.generation, 3);
    size_t n = 0;
    uint8_t *buf = ls_h_read_file(f.cur, &n);
    ls_gen_header_t h;
    cr_assert_eq(ls_gen_header_decode(buf, n, &h), 0);
    h.epoch = 2; /* generation 3 opens epoch 2 */
    uint8_t *out = malloc(d.offset);
    ls_gen_header_encode(&h, out);
    forge_t fg = {out, LS_GEN_HEADER_SIZE, ls_gen_seed(h.dbid, 2, 3)};
    ls_gen_expect_t ex = {.allow_open = true};
    ls_gen_verdict_t v;
    cr_assert_eq(ls_gen_scan(buf, d.offset, &ex, reepoch_record, &fg, NULL, &v), 0, "%s", v.msg);
    char path[PATHLEN];
    shadow_file(f.cp, 2, 3, path, sizeof(path));
    cr_assert_eq(ls_h_write_file(path, out, d.offset), 0);
    free(out);
    free(buf);
    ls_copy_t *c = copy_with(&f, 0);
    cr_assert_eq(ls_copy_start(c), 0);
    ls_copy_shadow_durable(c, 2, 3, d.offset, d.lsn);
    wait_applied(c, d.lsn);
    ls_store_meta_t m;
    ls_store_meta(ls_copy_store(c), &m);
    cr_assert(m.generation == 3 && m.digest_generation == 2 && m.epoch == 1,
              "the meta keeps generation 2's epoch: %u", m.epoch);
    ls_copy_close(c);
    c = copy_with(&f, 0); /* a restart: the held chain from the store */
    ls_copy_resume_t r;
    ls_copy_resume_point(c, &r);
    cr_assert(r.epoch == 1 && r.next_generation == 3, "held: generation 2 of epoch 1 (%u, %llu)",
              r.epoch, (unsigned long long) r.next_generation);
    ls_copy_stats_t s;
    ls_copy_stats(c, &s);
    cr_assert_eq(s.applied_lsn, d.lsn);
    ls_copy_close(c);
    ls_db_close(db);
    fx_free(&f);
}
