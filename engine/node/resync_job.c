/* The incremental resync's disk work (resync_inc.c says the whole), on libuv's pool, one job at
 * a time with only the job's own fields of struct node_rsi: the demotion with the new active's
 * chain, the install's steps, the swap; and at start, the diverged generations an interrupted
 * resync set aside put back. Its results are read on the loop (resync_inc.c, after_job). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/resync_int.h"
#include "node/resync_switchover_int.h"
#include "seed/seed.h"

static int open_none(void *ctx, ls_copy_t **out, char *err, size_t errlen)
{
    (void) ctx, (void) err, (void) errlen;
    *out = NULL; /* the loop opens the copy (ls__node_resync_open_copy) */
    return 0;
}

/* Renames from to to durably when from exists (true); err set on failure. */
static bool keep_aside(const char *from, const char *to, char *err, size_t errlen)
{
    if (access(from, F_OK) != 0) return false;
    if (rename(from, to) != 0) {
        snprintf(err, errlen, "cannot rename %.250s to %.250s: %s", from, to, strerror(errno));
        return false;
    }
    char parent[LS_CFG_PATH_MAX + 16];
    snprintf(parent, sizeof(parent), "%s", to);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) *slash = '\0';
    ls_fsync_dir(parent);
    return true;
}

void ls__rsi_recover_diverged(const char *db_dir, const char *name)
{
    char kept[LS_CFG_PATH_MAX + 16], in[LS_CFG_PATH_MAX + 16], err[600] = "";
    snprintf(kept, sizeof(kept), "%s.diverged", db_dir);
    snprintf(in, sizeof(in), "%s/diverged", db_dir);
    if (access(in, F_OK) == 0) {
        if (access(kept, F_OK) == 0)
            LS_LOGW("resync",
                    "%s: both %s and %s exist: the generations set aside by an interrupted "
                    "resync stay in %s (never deleted); move them into %s by hand",
                    name, in, kept, kept, in);
        return;
    }
    if (keep_aside(kept, in, err, sizeof(err)))
        LS_LOGI("resync",
                "%s: the diverged generations set aside by an interrupted resync are "
                "back in %s",
                name, in);
    else if (err[0])
        LS_LOGE("resync", "%s: %s (the diverged generations stay in %s)", name, err, kept);
}

/* J_DEMOTE: the demotion against the new active's chain, then the keys to ask for; or, where
 * the split cannot be found or confirmed, every local generation set aside for a full seed
 * (r->full, r->full_why). */
static void job_demote(struct node_rsi *r, const char *dir)
{
    r->jrc = ls_role_demote(dir, LS_GEN_PREFIX_DEFAULT, r->theirs, r->ntheirs, r->new_epoch,
                            r->new_active, &r->rep, r->jerr, sizeof(r->jerr));
    if (r->jrc == LS_EDIVERGED) {
        /* Nothing tells where the histories split (the new active no longer holds any
         * generation number this node holds): every local generation is set aside, and a
         * full seed replaces the store. */
        snprintf(r->full_why, sizeof(r->full_why), "%s", r->jerr);
        r->jerr[0] = 0;
        r->jrc = ls_role_move_aside(dir, LS_GEN_PREFIX_DEFAULT, 0, r->new_epoch, &r->rep.moved,
                                    r->jerr, sizeof(r->jerr));
        r->full = r->jrc == 0;
        return;
    }
    if (r->jrc == 0 && !r->rep.split.found) {
        /* Every generation this node still holds diverged (moved aside): the split lies
         * before its oldest one (log removal took the generations in common), where the
         * new active's chain cannot confirm it: a full seed, as above. */
        snprintf(r->full_why, sizeof(r->full_why),
                 "every generation %s still holds diverged from %s's chain (those in "
                 "common were removed here): the split cannot be confirmed",
                 r->db->cfg->name, r->follows);
        r->full = true;
        return;
    }
    if (r->jrc == 0)
        r->jrc = ls_seed_resync_keys(dir, LS_GEN_PREFIX_DEFAULT, r->new_epoch, &r->keys,
                                     &r->keys_len, &r->nkeys, r->jerr, sizeof(r->jerr));
}

/* J_SWAP: the installed store swapped in for the copy's (r->swapped), with the role file and
 * the diverged generations carried across. */
static void job_swap(struct node_rsi *r, const char *dir)
{
    ls_copy_t *none = NULL;
    r->swapped = false;
    /* A full seed replaces the directory: the role file (copy, following the new active)
     * goes into the new one first, so the rename that swaps the store in swaps the role in
     * too; and the diverged generations wait beside it (a crash leaves them there: the next
     * start puts them back, ls__rsi_recover_diverged). */
    const char *nd = r->install ? ls_seed_install_new_dir(r->install) : NULL;
    if (nd && (r->jrc = ls_role_save(nd, &r->new_role, r->jerr, sizeof(r->jerr))) != 0) return;
    char kept[LS_CFG_PATH_MAX + 16], in[LS_CFG_PATH_MAX + 16];
    snprintf(kept, sizeof(kept), "%s.diverged", dir);
    snprintf(in, sizeof(in), "%s/diverged", dir);
    bool aside = !r->info.resync && keep_aside(in, kept, r->jerr, sizeof(r->jerr));
    if (r->jerr[0]) {
        r->jrc = LS_EIO;
        return;
    }
    LS_FAULT("resync.before_swap"); /* tests: a crash (full seed: diverged/ set aside) */
    r->jrc = ls_seed_copy_swap(&none, &r->install, dir, open_none, NULL, &r->swapped, r->jerr,
                               sizeof(r->jerr));
    LS_FAULT("resync.after_swap"); /* tests: a crash before the role file (and diverged/) */
    if (aside) {
        char e2[600] = "";
        keep_aside(kept, in, e2, sizeof(e2));
        if (e2[0]) LS_LOGE("resync", "%s (the diverged generations are in %s)", e2, kept);
    }
}

void ls__rsi_run_job(uv_work_t *w)
{
    struct node_rsi *r = w->data;
    rjob_t *j = r->cur;
    const char *dir = r->db->cfg->path;
    r->jrc = 0;
    r->jerr[0] = 0;
    switch (j->kind) {
    case J_DEMOTE:
        job_demote(r, dir);
        break;
    case J_BEGIN: {
        ls_seed_install_options_t o = {
            .copy_dir = dir, .prefix = LS_GEN_PREFIX_DEFAULT, .copy_failed = true};
        r->jrc = ls_seed_install_begin(&o, &r->info, &r->install, r->jerr, sizeof(r->jerr));
        break;
    }
    case J_DATA:
        if (!r->install) break;
        r->jrc =
            ls_seed_install_data(r->install, j->offset, j->data, j->len, r->jerr, sizeof(r->jerr));
        if (r->jrc == 0) r->done = ls_seed_install_done(r->install);
        break;
    case J_END:
        if (r->install)
            r->jrc = ls_seed_install_end(r->install, j->digest, r->jerr, sizeof(r->jerr));
        break;
    case J_SWAP:
        job_swap(r, dir);
        break;
    case J_ABORT:
        break;
    }
    if (r->jrc || j->kind == J_ABORT) {
        ls_seed_install_free(r->install); /* removes what was written beside the copy */
        r->install = NULL;
    }
}
