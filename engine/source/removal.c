/*
 * source: the log removal rule on the active (DESIGN.md, "Seeding, activation, divergence").
 *
 * Generation g may be deleted when all of these hold:
 *  - it is not the newest closed generation (kept as the anchor of the digest chain, so that a
 *    target at newest + 1 can always be checked);
 *  - the store's checkpoint covers it: last_lsn(g) <= checkpoint_lsn;
 *  - no seed in progress needs it: g < seed_needs;
 *  - the truncation lag has passed: close_ns(g) + lag <= now;
 *  - every target has replayed-synced it: g <= target_synced[t] for each t (a target that is
 *    gone keeps its last position, so its logs are held).
 * The first four give others_upto (walking from the oldest, stopping at the first generation that
 * fails one); the targets lower that to upto. The bytes of the generations held only for targets
 * (upto < g <= others_upto) are held_bytes. At the cap (max_log_bytes, 8 GiB by default) the
 * oldest of them become removable until held_bytes <= cap: upto moves past the lagging targets,
 * which lose their position (cut_targets) and get LS_EGAP "needs a seed" at their next plan, as
 * PostgreSQL invalidates a slot past max_slot_wal_keep_size. The cap never overrides the
 * checkpoint, a seed, the truncation lag or the newest generation. warning is raised from 3/4 of
 * the cap; with LS_SOURCE_NO_CAP nothing is ever removed for a target, and warning is raised from
 * 3/4 of the default cap, so the disk never fills silently.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/core.h"
#include "source/source_int.h"

/* The highest index (+1) removable by the rules other than targets; 0 when none. */
static int others_end(ls_source_t *src, const ls_removal_input_t *in, uint64_t now, size_t *end,
                      char *err, size_t errlen)
{
    size_t i = 0;
    for (; i + 1 < src->ngens; i++) {
        const ls__src_gen_t *e = &src->gens[i];
        if (in->seed_needs && e->generation >= in->seed_needs) break;
        int rc = ls__src_load(src, i, err, errlen);
        if (rc) return rc;
        if (e->last_lsn > in->checkpoint_lsn) break;
        if (e->close_ns > now || now - e->close_ns < in->truncation_lag_ns) break;
    }
    *end = i;
    return 0;
}

static uint64_t targets_min(const ls_removal_input_t *in)
{
    uint64_t m = UINT64_MAX;
    for (size_t t = 0; t < in->ntargets; t++)
        m = LS_MIN(m, in->target_synced[t]);
    return m;
}

/* Applies the cap to the generations held only for targets, [from, end). */
static void apply_cap(ls_source_t *src, const ls_removal_input_t *in, size_t from, size_t end,
                      ls_removal_t *out)
{
    uint64_t cap = in->max_log_bytes ? in->max_log_bytes : LS_SOURCE_DEFAULT_MAX_LOG_BYTES;
    uint64_t warn_at = (cap == LS_SOURCE_NO_CAP ? LS_SOURCE_DEFAULT_MAX_LOG_BYTES : cap) / 4 * 3;
    uint64_t held = 0;
    for (size_t i = from; i < end; i++)
        held += src->gens[i].size;
    out->held_bytes = held;
    out->warning = held >= warn_at;
    if (cap == LS_SOURCE_NO_CAP || held <= cap) {
        if (out->warning)
            snprintf(out->msg, sizeof(out->msg),
                     "%llu bytes of logs held only for lagging targets (from generation %llu); "
                     "%s",
                     (unsigned long long) held, (unsigned long long) src->gens[from].generation,
                     cap == LS_SOURCE_NO_CAP ? "no cap is set: the disk may fill"
                                             : "at the cap the oldest are removed");
        return;
    }
    size_t i = from;
    for (; i < end && held > cap; i++)
        held -= src->gens[i].size;
    out->upto = src->gens[i - 1].generation;
    out->capped = true;
    out->cut_target_lowest = UINT64_MAX;
    for (size_t t = 0; t < in->ntargets; t++) {
        if (in->target_synced[t] < out->upto) {
            out->cut_targets++;
            out->cut_target_lowest = LS_MIN(out->cut_target_lowest, in->target_synced[t]);
        }
    }
    snprintf(out->msg, sizeof(out->msg),
             "%llu bytes of logs held only for lagging targets exceed the cap of %llu: removing "
             "up to generation %llu; %zu target(s) (lowest at generation %llu) will need a seed",
             (unsigned long long) out->held_bytes, (unsigned long long) cap,
             (unsigned long long) out->upto, out->cut_targets,
             (unsigned long long) out->cut_target_lowest);
}

int ls_source_removable(ls_source_t *src, const ls_removal_input_t *in, ls_removal_t *out,
                        char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    uint64_t now = in->now_ns ? in->now_ns : ls_now_ns();
    pthread_mutex_lock(&src->mu);
    size_t end = 0;
    int rc = others_end(src, in, now, &end, err, errlen);
    if (rc || end == 0) goto done;
    out->others_upto = src->gens[end - 1].generation;
    uint64_t tmin = targets_min(in);
    size_t from = ls__src_upper(src, tmin); /* first index held for targets */
    if (from >= end) {
        out->upto = out->others_upto;
        goto done;
    }
    out->upto = from ? src->gens[from - 1].generation : 0;
    apply_cap(src, in, from, end, out);
done:
    pthread_mutex_unlock(&src->mu);
    return rc;
}

/* Takes the entries <= gen out of the view; their paths go to a malloc'd array. */
static int detach(ls_source_t *src, uint64_t gen, char (**paths)[PATH_MAX], size_t *n, char *err,
                  size_t errlen)
{
    *paths = NULL;
    *n = 0;
    if (!src->ngens) return 0;
    if (gen >= src->gens[src->ngens - 1].generation)
        return ls_errf(err, errlen, LS_EINVAL,
                       "refusing to remove generation %llu: the newest closed generation is "
                       "kept as the anchor of the chain",
                       (unsigned long long) src->gens[src->ngens - 1].generation);
    size_t cnt = ls__src_upper(src, gen);
    if (!cnt) return 0;
    if (!(*paths = malloc(cnt * sizeof(**paths))))
        return ls_errf(err, errlen, LS_ENOMEM, "out of memory");
    for (size_t i = 0; i < cnt; i++)
        ls__src_path(src, src->gens[i].epoch, src->gens[i].generation, (*paths)[i], PATH_MAX);
    memmove(src->gens, src->gens + cnt, (src->ngens - cnt) * sizeof(*src->gens));
    src->ngens -= cnt;
    *n = cnt;
    return 0;
}

/* The entries leave the view first, under the lock, and removing_upto tells every rescan until
 * the unlinks are done to keep them out (without it a rescan between the detach and an unlink
 * re-adds a file about to vanish, and a target reconnecting then is told that its generation
 * N-1 is missing). The unlinks and the directory fsync run without src->mu, so plans and readers
 * are not held up by the disk; remove_mu keeps removals one at a time. A file whose unlink failed
 * comes back at the first rescan after the removal. */
int ls_source_remove_upto(ls_source_t *src, uint64_t gen, char *err, size_t errlen)
{
    char(*paths)[PATH_MAX];
    size_t n;
    pthread_mutex_lock(&src->remove_mu);
    pthread_mutex_lock(&src->mu);
    int rc = detach(src, gen, &paths, &n, err, errlen);
    if (rc == 0 && n) src->removing_upto = gen;
    ls__src_remove_hook_fn hook = src->remove_hook;
    void *hook_ctx = src->remove_hook_ctx;
    pthread_mutex_unlock(&src->mu);
    if (rc || !n) {
        pthread_mutex_unlock(&src->remove_mu);
        return rc;
    }
    if (hook) hook(hook_ctx, 0);
    int removed = 0;
    for (size_t i = 0; i < n; i++) {
        if (unlink(paths[i]) == 0) {
            removed++;
        } else if (errno != ENOENT) {
            rc = ls_errf(err, errlen, ls_err_from_errno(errno), "cannot remove %s: %s", paths[i],
                         strerror(errno));
            break;
        }
        if (hook) hook(hook_ctx, i + 1);
    }
    free(paths);
    int frc = ls_fsync_dir(src->logs);
    if (frc && !rc)
        rc = ls_errf(err, errlen, frc, "cannot fsync %s: %s", src->logs, ls_strerror(frc));
    pthread_mutex_lock(&src->mu);
    src->removing_upto = 0;
    pthread_mutex_unlock(&src->mu);
    pthread_mutex_unlock(&src->remove_mu);
    return rc ? rc : removed;
}

void ls__src_set_remove_hook(ls_source_t *src, ls__src_remove_hook_fn fn, void *ctx)
{
    pthread_mutex_lock(&src->mu);
    src->remove_hook = fn;
    src->remove_hook_ctx = ctx;
    pthread_mutex_unlock(&src->mu);
}
