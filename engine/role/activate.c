/*
 * Activation of a copy directory (role.h, docs/ACTIVATION.md "What activation does"):
 *
 *  1. the role file must say copy (or be absent: a copy by configuration);
 *  2. everything durable is replayed through engine/copy: the copy is opened (which inspects a
 *     durable file left in inspect/), its replayer started, and we wait until nothing is queued
 *     for inspection or replay, then it is stopped (a checkpoint) and closed; what the block-mode
 *     shadow of the open generation would give is read (ls_copy_shadow_close, dry run);
 *  3. the store must hold the newest generation of logs/ completely; the shadow, when it
 *     follows, counts as the last generation;
 *  4. the loss against what the old active announced, refused beyond max_loss (the shadow left
 *     as it is); accepted, the shadow is closed into logs/ as the last generation of the old
 *     epoch and replayed (the copy opened again);
 *  5. "E+1 last+1" appended to logs/history durably: the commit point of the activation;
 *  6. inspect/ emptied and pool/ removed, a stale fence cleared, the role file written: active,
 * epoch E+1. A crash before 5 leaves a copy (rerun); after 5, rerunning finds the line and
 * finishes 6. Fault point (test builds): role.activate.after_history.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "copy/copy.h"
#include "core/core.h"
#include "layout/layout.h"
#include "role/logs.h"
#include "role/role.h"
#include "writer/ctlpage.h"

#define DEFAULT_REPLAY_TIMEOUT_MS 600000ull
#define POLL_NS                   (10 * 1000000L)
#define DIRLEN                    4200

/* Step 2: replays what is durable; *st receives the copy's figures at the end, *sh what the
 * shadow gives (close: closed into logs/ and replayed too; else only what it would give). */
static int replay_durable(const char *dir, const char *prefix, uint64_t timeout_ms, bool close,
                          ls_copy_stats_t *st, ls_copy_shadow_closed_t *sh, char *err,
                          size_t errlen)
{
    ls_copy_options_t o = {.dir = dir, .prefix = prefix};
    ls_copy_t *c = NULL;
    memset(sh, 0, sizeof(*sh));
    int rc = ls_copy_open(&o, &c, err, errlen);
    if (rc == 0) rc = ls_copy_shadow_close(c, !close, sh, err, errlen);
    if (rc == 0) rc = ls_copy_start(c);
    uint64_t deadline = ls_mono_ns() + timeout_ms * 1000000ull;
    while (rc == 0) {
        ls_copy_stats(c, st);
        if (st->state == LS_COPY_FAILED)
            rc = ls_errf(err, errlen, LS_ESTATE, "the copy in %s is failed: %s", dir, st->reason);
        else if (st->inspect_queue == 0 && st->replay_queue == 0 &&
                 st->last_replayed == st->last_inspected)
            break;
        else if (ls_mono_ns() > deadline)
            rc = ls_errf(err, errlen, LS_ETIMEDOUT,
                         "%s: replay did not finish in %" PRIu64 " ms (%" PRIu64
                         " generations queued)",
                         dir, timeout_ms, st->replay_queue);
        else
            nanosleep(&(struct timespec){0, POLL_NS}, NULL);
    }
    if (c) ls_copy_stop(c);
    if (rc == 0) ls_copy_stats(c, st);
    ls_copy_close(c);
    return rc;
}

/* A store that applied generation g early from a shadow (block mode) that is no longer there:
 * its records past the last generation held are in no log, and a new epoch starting at g would
 * leave a gap in the LSNs. */
static int early_applied_orphan(const char *dir, uint64_t closed, uint64_t shadow, char *err,
                                size_t errlen)
{
    char store[DIRLEN + 16];
    snprintf(store, sizeof(store), "%.4000s/store", dir);
    ls_store_meta_t m;
    if (ls_store_peek_meta(store, &m, NULL, 0) != 0) return 0;
    if (!m.shadow_end || m.generation <= closed || m.generation == shadow) return 0;
    return ls_errf(err, errlen, LS_ESTATE,
                   "the store of %s applied generation %" PRIu64 " up to LSN %" PRIu64
                   " early from its block-mode shadow, which is gone: no log holds those "
                   "transactions; reseed this copy or restore %s/shadow",
                   dir, m.generation, m.lsn, dir);
}

/* Step 3: the newest generation held (by generation), its epoch and close time; the shadow's
 * generation (sh) when it follows the newest closed one (closed as the last by step 2). */
static int newest_held(const char *dir, const char *prefix, const ls_copy_stats_t *st,
                       const ls_copy_shadow_closed_t *sh, ls_layout_gen_t *last, uint64_t *close_ns,
                       char *err, size_t errlen)
{
    char logs[DIRLEN], path[DIRLEN + 64];
    ls_layout_list_t l;
    int rc = ls__role_list_logs(dir, prefix, logs, sizeof(logs), &l, err, errlen);
    if (rc) return rc;
    if (l.ngens == 0 && !sh->generation) {
        ls_layout_list_free(&l);
        return ls_errf(err, errlen, LS_ENOENT, "%s holds no generation: nothing to activate", logs);
    }
    *last = l.ngens ? l.gens[l.ngens - 1] : (ls_layout_gen_t){0};
    ls_layout_list_free(&l);
    if (st->last_replayed != last->generation)
        return ls_errf(err, errlen, LS_ESTATE,
                       "the store of %s holds generation %" PRIu64 " but logs/ holds up to %" PRIu64
                       ": replay did not finish",
                       dir, st->last_replayed, last->generation);
    *close_ns = 0;
    if (last->generation) {
        ls_layout_ends_t ends;
        rc = ls__role_read_closed(logs, prefix, last, path, sizeof(path), &ends, err, errlen);
        if (rc) return rc;
        *close_ns = ends.t.close_ns;
    }
    bool pending = sh->generation == last->generation + 1;
    if ((rc = early_applied_orphan(dir, last->generation, pending ? sh->generation : 0, err,
                                   errlen)))
        return rc;
    if (pending) *last = (ls_layout_gen_t){.epoch = sh->epoch, .generation = sh->generation};
    return 0;
}

/* Step 4: what may be lost. last_lsn is the store's. In block mode the old active's open
 * generation may be held here (its shadow closed as `last`): only its commits after last_lsn may
 * be lost, none when it announced nothing beyond. A shadow of a generation the old active
 * announced closed is counted lost (only its first part is here). */
static void compute_loss(const ls_role_announced_t *a, uint64_t last, uint64_t last_lsn,
                         uint64_t last_close_ns, uint64_t shadow_gen, ls_role_loss_t *loss)
{
    memset(loss, 0, sizeof(*loss));
    if (a->last_generation == 0 && a->open_generation == 0)
        return; /* nothing announced: nothing known to be lost */
    /* The old active's COPY_STATE can lag the generations it shipped (a kill -9 between a
     * GEN_END and the next announcement): its open generation is past both. A generation closed
     * here from a shadow was the open one: the last closed generation held is the one before. */
    uint64_t held_closed = shadow_gen && shadow_gen == last ? last - 1 : last;
    loss->open_generation = LS_MAX(LS_MAX(a->last_generation, held_closed) + 1, a->open_generation);
    loss->from_ns = last_close_ns;
    loss->to_ns = LS_MAX(a->last_close_ns, last_close_ns);
    if (last >= loss->open_generation) {
        loss->open_held_lsn = last_lsn;
        loss->open_lsn = a->open_generation == loss->open_generation ? a->open_lsn : 0;
        if (loss->open_lsn && loss->open_lsn <= last_lsn) loss->open_generation = 0;
    }
    /* a generation closed from a shadow that the old active closed too: only a part is here */
    bool partial = shadow_gen && shadow_gen == last && last <= a->last_generation;
    if (a->last_generation <= last && !partial) return;
    loss->first_generation = partial ? last : last + 1;
    loss->last_generation = a->last_generation;
    loss->generations = a->last_generation - loss->first_generation + 1;
    loss->bytes = a->missing_bytes;
}

/* Step 5: appends "epoch first" to logs/history durably (the whole file rewritten). The lines
 * kept are the epochs the directory knows (ls_role_known_epochs: the history merged with the
 * epochs of the generations held), so a copy that has no history, or one whose history stops
 * at an epoch it was active in (a switchover back and forth), gets one line per epoch held, at
 * its first generation held (epoch 1 always at 1), then its own line. */
static int append_history(const char *dir, const char *prefix, uint32_t epoch, uint64_t first,
                          char *err, size_t errlen)
{
    char path[DIRLEN];
    snprintf(path, sizeof(path), "%.4000s/logs/history", dir);
    ls_layout_hist_t *h = NULL;
    size_t n = 0;
    int rc = ls_role_known_epochs(dir, prefix, &h, &n, err, errlen);
    if (rc) return rc;
    char *t = malloc((n + 1) * 48 + 1);
    if (!t) {
        free(h);
        return LS_ENOMEM;
    }
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (h[i].epoch >= epoch) continue;
        uint64_t f = h[i].epoch == 1 ? 1 : h[i].first_gen;
        len += (size_t) sprintf(t + len, "%" PRIu32 " %" PRIu64 "\n", h[i].epoch, f);
    }
    free(h);
    len += (size_t) sprintf(t + len, "%" PRIu32 " %" PRIu64 "\n", epoch, first);
    rc = ls_write_file_durable(path, t, len);
    free(t);
    if (rc) return ls_errf(err, errlen, rc, "cannot write %s: %s", path, ls_strerror(rc));
    return 0;
}

/* Step 6a: inspect/ emptied (a copy's leftovers; the writer never reads it), and the copy's pool
 * of preallocated .part files removed with its directory (an active has no use for it; a copy
 * made of this directory again makes a new one). */
static int clear_dir(const char *dir, const char *sub, bool remove_dir, char *err, size_t errlen)
{
    char in[DIRLEN], path[DIRLEN + 300];
    snprintf(in, sizeof(in), "%.4000s/%s", dir, sub);
    DIR *d = opendir(in);
    if (!d) return errno == ENOENT ? 0 : ls_errf(err, errlen, LS_EIO, "cannot list %s", in);
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        snprintf(path, sizeof(path), "%s/%.255s", in, e->d_name);
        if (unlink(path) != 0) rc = ls_errf(err, errlen, LS_EIO, "cannot remove %s", path);
    }
    closedir(d);
    if (rc || !remove_dir) return rc ? rc : ls_fsync_dir(in);
    if (rmdir(in) != 0) return ls_errf(err, errlen, LS_EIO, "cannot remove %s", in);
    return ls_fsync_dir(dir);
}

/* Step 6b: a fence left from an earlier life of this directory no longer applies. */
static int clear_fence(const char *dir, char *err, size_t errlen)
{
    ls_ctlpage_t *ctl = NULL;
    int rc = ls_ctlpage_open(dir, false, &ctl, err, errlen);
    if (rc == LS_ENOENT) return 0;
    if (rc == 0 && ls_ctlpage_fenced(ctl)) rc = ls_ctlpage_clear_fence(ctl, err, errlen);
    ls_ctlpage_close(ctl);
    return rc;
}

static void loss_text(const ls_role_loss_t *l, char *out, size_t len)
{
    snprintf(out, len,
             "generations %" PRIu64 "..%" PRIu64 " (%" PRIu64 " generations, %" PRIu64
             " bytes, commits made between %" PRIu64 " and %" PRIu64
             " ns since 1970 UTC), and whatever the old active's open generation %" PRIu64 " held",
             l->first_generation, l->last_generation, l->generations, l->bytes, l->from_ns,
             l->to_ns, l->open_generation);
}

/* Steps 1-4: where the copy stands and what activation would lose; fills r. */
static int prepare(const char *dir, const ls_role_activate_options_t *o, const char *prefix,
                   ls_role_activate_report_t *r, char *err, size_t errlen)
{
    ls_role_state_t st;
    int rc = ls_role_load(dir, LS_ROLE_COPY, &st, err, errlen);
    if (rc) return rc;
    if (st.role != LS_ROLE_COPY)
        return ls_errf(err, errlen, LS_ESTATE,
                       "%s is %s in epoch %" PRIu32 ", not a copy: only a copy can be activated",
                       dir, ls_role_kind_name(st.role), st.epoch);
    ls_copy_stats_t cs;
    ls_copy_shadow_closed_t sh;
    uint64_t timeout = o->replay_timeout_ms ? o->replay_timeout_ms : DEFAULT_REPLAY_TIMEOUT_MS;
    /* what the shadow would give, nothing changed yet: a refusal leaves it a shadow */
    if ((rc = replay_durable(dir, prefix, timeout, false, &cs, &sh, err, errlen)) != 0) return rc;
    r->shadow_generation = sh.generation;
    r->shadow_last_lsn = sh.last_lsn;
    r->shadow_dropped = sh.dropped;
    ls_layout_gen_t last = {0};
    uint64_t close_ns = 0;
    if ((rc = newest_held(dir, prefix, &cs, &sh, &last, &close_ns, err, errlen)) != 0) return rc;
    bool pending = sh.generation && sh.generation != cs.last_replayed;
    uint32_t he = 0;
    uint64_t hg = 0;
    if ((rc = ls_role_history_last(dir, &he, &hg, err, errlen)) != 0) return rc;
    r->last_generation = last.generation;
    r->last_lsn = pending ? sh.last_lsn : cs.last_replayed_lsn;
    r->first_generation = last.generation + 1;
    r->resumed = he > last.epoch && hg == last.generation + 1;
    r->old_epoch = last.epoch;
    r->new_epoch = r->resumed ? he : LS_MAX(LS_MAX(he, last.epoch), st.epoch) + 1;
    compute_loss(&o->announced, last.generation, r->last_lsn, close_ns, r->shadow_generation,
                 &r->loss);
    r->lossless = r->loss.generations == 0;
    if (!r->resumed && r->loss.generations > o->max_loss) {
        char what[512];
        loss_text(&r->loss, what, sizeof(what));
        return ls_errf(err, errlen, LS_ESTATE,
                       "activating %s would lose %" PRIu64 " generations (more than the %" PRIu64
                       " allowed): %s; refused: rerun with --max-loss %" PRIu64
                       " to accept the loss",
                       dir, r->loss.generations, o->max_loss, what, r->loss.generations);
    }
    if (!pending) return 0;
    /* accepted: the shadow becomes the old epoch's last generation, replayed */
    ls_copy_shadow_closed_t done;
    if ((rc = replay_durable(dir, prefix, timeout, true, &cs, &done, err, errlen)) != 0) return rc;
    if (done.generation != sh.generation || cs.last_replayed != sh.generation)
        return ls_errf(err, errlen, LS_ESTATE,
                       "%s: the shadow of generation %" PRIu64 " was not closed and replayed "
                       "(closed %" PRIu64 ", replayed up to %" PRIu64 ")",
                       dir, sh.generation, done.generation, cs.last_replayed);
    r->last_lsn = cs.last_replayed_lsn;
    r->shadow_dropped = done.dropped;
    return 0;
}

int ls_role_activate(const char *dir, const ls_role_activate_options_t *opts,
                     ls_role_activate_report_t *r, char *err, size_t errlen)
{
    ls_role_activate_options_t o = opts ? *opts : (ls_role_activate_options_t){0};
    const char *prefix = o.prefix && *o.prefix ? o.prefix : LS_GEN_PREFIX_DEFAULT;
    memset(r, 0, sizeof(*r));
    int rc = prepare(dir, &o, prefix, r, err, errlen);
    if (rc == 0 && !r->resumed)
        rc = append_history(dir, prefix, r->new_epoch, r->first_generation, err, errlen);
    LS_FAULT("role.activate.after_history");
    if (rc == 0) rc = clear_dir(dir, "inspect", false, err, errlen);
    if (rc == 0) rc = clear_dir(dir, "pool", true, err, errlen);
    if (rc == 0) rc = clear_fence(dir, err, errlen);
    if (rc) return rc;
    ls_role_state_t st = {.role = LS_ROLE_ACTIVE, .epoch = r->new_epoch, .since_ns = ls_now_ns()};
    st.loss = r->loss;
    if (o.reason)
        snprintf(st.reason, sizeof(st.reason), "%s", o.reason);
    else if (r->lossless)
        snprintf(st.reason, sizeof(st.reason), "activated at generation %" PRIu64 ", lossless",
                 r->first_generation);
    else
        snprintf(st.reason, sizeof(st.reason),
                 "activated at generation %" PRIu64 ", %" PRIu64 " generations lost (%" PRIu64
                 "..%" PRIu64 ")",
                 r->first_generation, r->loss.generations, r->loss.first_generation,
                 r->loss.last_generation);
    return ls_role_save(dir, &st, err, errlen);
}
