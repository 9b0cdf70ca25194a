/*
 * Installing the new copy and recovering an interrupted install (docs/SEED.md, crash table).
 *
 * The new copy <copy>.seed-new is complete and verified before anything is renamed; the marker
 * <copy>.seed-new/SEED-READY, written durably, is the decision to install it. Then:
 *   - no <copy> yet: rename(<copy>.seed-new, <copy>);
 *   - else ONE renameat2(RENAME_EXCHANGE): <copy> becomes the new copy and <copy>.seed-new the
 *     old one, atomically (ext4, xfs, btrfs, tmpfs ... since Linux 3.15);
 *   - where the file system refuses the exchange: rename(<copy>, <copy>.seed-old) then
 *     rename(<copy>.seed-new, <copy>), each followed by an fsync of the parent directory.
 * Finally the old copy (<copy>.seed-new after an exchange, or <copy>.seed-old) is removed, then
 * the marker inside <copy>.
 *
 * Recovery reads only the directories. The rules, applied in order:
 *   1. <copy> absent, <copy>.seed-old present (fallback interrupted between its renames): the
 *      new copy with its marker goes in; without one the old copy goes back;
 *   2. <copy>.seed-new with its marker: the swap was decided and not done: do it;
 *   3. <copy>.seed-new without a marker is either an unfinished new copy or the old copy after
 *      an exchange: removed; <copy>.seed-old beside a <copy> that holds the marker: removed;
 *   4. the marker inside <copy>: removed (the install is complete).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "seed/seed_int.h"

static int rename_durable(const ls__seed_paths_t *p, const char *from, const char *to, char *err,
                          size_t errlen)
{
    int rc = rename(from, to) == 0 ? 0 : ls_err_from_errno(errno);
    if (rc == 0) rc = ls_fsync_dir(p->parent);
    if (rc) ls_msgf(err, errlen, "rename %s -> %s: %s", from, to, ls_strerror(rc));
    return rc;
}

int ls__seed_swap(const ls__seed_paths_t *p, char *err, size_t errlen)
{
    if (!ls__seed_exists(p->copy)) return rename_durable(p, p->new_dir, p->copy, err, errlen);
    int rc = 0;
    if (LS_FAULT("seed.install.no_exchange"))
        errno = EINVAL;
    else if (renameat2(AT_FDCWD, p->new_dir, AT_FDCWD, p->copy, RENAME_EXCHANGE) == 0)
        rc = 1;
    if (rc == 1) {
        rc = ls_fsync_dir(p->parent);
        if (rc) ls_msgf(err, errlen, "%s: fsync after the swap: %s", p->parent, ls_strerror(rc));
        return rc;
    }
    if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) {
        rc = ls_err_from_errno(errno);
        ls_msgf(err, errlen, "exchange %s <-> %s: %s", p->new_dir, p->copy, strerror(errno));
        return rc;
    }
    /* no exchange here: two renames, rule 1 of the recovery covers the gap between them */
    if ((rc = rename_durable(p, p->copy, p->old_dir, err, errlen))) return rc;
    LS_FAULT("seed.install.between_renames");
    return rename_durable(p, p->new_dir, p->copy, err, errlen);
}

int ls__seed_finish(const ls__seed_paths_t *p, char *err, size_t errlen)
{
    const char *gone[] = {p->new_dir, p->old_dir};
    for (size_t i = 0; i < LS_ARRAY_SIZE(gone); i++) {
        if (!ls__seed_exists(gone[i])) continue;
        int rc = ls__seed_rmtree(gone[i]);
        if (rc == 0) rc = ls_fsync_dir(p->parent);
        if (rc) {
            ls_msgf(err, errlen, "%s: cannot remove the replaced copy: %s", gone[i],
                    ls_strerror(rc));
            return rc;
        }
    }
    if (unlink(p->copy_marker) != 0 && errno != ENOENT) {
        ls_msgf(err, errlen, "%s: cannot remove: %s", p->copy_marker, strerror(errno));
        return ls_err_from_errno(errno);
    }
    return ls__seed_exists(p->copy) ? ls_fsync_dir(p->copy) : 0;
}

/* Rules 1 and 2: completes or undoes the renames. */
static int settle(const ls__seed_paths_t *p, ls_seed_recover_t *what, char *err, size_t errlen)
{
    bool copy = ls__seed_exists(p->copy), ready = ls__seed_exists(p->new_marker);
    if (!copy && ls__seed_exists(p->old_dir)) {
        *what = ready ? LS_SEED_RECOVER_FINISHED : LS_SEED_RECOVER_UNDONE;
        return rename_durable(p, ready ? p->new_dir : p->old_dir, p->copy, err, errlen);
    }
    if (copy && ls__seed_exists(p->old_dir) && !ready && !ls__seed_exists(p->copy_marker)) {
        ls_msgf(err, errlen,
                "%s and %s both exist and no finished seed explains it: keep the right one "
                "by hand",
                p->copy, p->old_dir);
        return LS_ESTATE;
    }
    if (!ready) return 0;
    *what = LS_SEED_RECOVER_FINISHED;
    return ls__seed_swap(p, err, errlen);
}

int ls_seed_recover(const char *copy_dir, ls_seed_recover_t *what, char *err, size_t errlen)
{
    ls_seed_recover_t w = LS_SEED_RECOVER_NOTHING;
    ls__seed_paths_t p;
    int rc = ls__seed_paths(copy_dir, &p);
    if (rc) {
        ls_msgf(err, errlen, "seed recovery: no or too long copy directory");
        return rc;
    }
    /* an incremental resync: a marked stream is applied (again: idempotent), else removed */
    char rdir[LS__SEED_PATH_MAX + 16], rmarker[LS__SEED_PATH_MAX + 32];
    snprintf(rdir, sizeof(rdir), "%s/%s", p.copy, LS__RESYNC_DIR);
    snprintf(rmarker, sizeof(rmarker), "%s/%s", rdir, LS__RESYNC_READY);
    if (ls__seed_exists(rmarker)) {
        rc = ls__seed_resync_apply(p.copy, NULL, err, errlen);
        if (rc == 0) LS_LOGI("seed", "%s: interrupted resync: applied", p.copy);
        if (what) *what = LS_SEED_RECOVER_FINISHED;
        return rc;
    }
    if (ls__seed_exists(rdir)) {
        rc = ls__seed_rmtree(rdir);
        if (rc == 0) rc = ls_fsync_dir(p.copy);
        if (rc == 0)
            LS_LOGI("seed", "%s: interrupted resync: removed the unfinished stream", p.copy);
        if (what) *what = LS_SEED_RECOVER_REMOVED;
        return rc;
    }
    rc = settle(&p, &w, err, errlen);
    bool leftovers =
        ls__seed_exists(p.new_dir) || ls__seed_exists(p.old_dir) || ls__seed_exists(p.copy_marker);
    if (rc == 0 && leftovers) {
        if (w == LS_SEED_RECOVER_NOTHING)
            w = ls__seed_exists(p.copy_marker) ? LS_SEED_RECOVER_FINISHED : LS_SEED_RECOVER_REMOVED;
        rc = ls__seed_finish(&p, err, errlen);
    }
    static const char *const said[] = {"nothing to do", "removed an unfinished seed",
                                       "put the old copy back", "finished the install"};
    if (rc == 0 && w != LS_SEED_RECOVER_NOTHING)
        LS_LOGI("seed", "%s: interrupted seed: %s", p.copy, said[w]);
    if (what) *what = w;
    return rc;
}
