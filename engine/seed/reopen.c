/*
 * The copy closes and reopens itself around the swap (session.h, ls_seed_copy_swap), on the one
 * thread that owns its ls_copy_t (the daemon's receiver thread): nobody else holds the pointer
 * while it is closed and replaced, so no lock is needed and none is forgotten. The daemon opens
 * the new copy before the replaced one is removed (ls_seed_copy_swap_open, then
 * ls_seed_copy_finish once the loop has the copy): removing a copy (its store, its logs, the
 * pool's preallocated files) is not on the way to the installed copy.
 */
#include <stdio.h>

#include "seed/seed_int.h"
#include "seed/session.h"

int ls_seed_copy_swap_open(ls_copy_t **copy, ls_seed_install_t **in, const char *copy_dir,
                           ls_seed_open_fn open, void *ctx, bool *swapped, char *err, size_t errlen)
{
    char err2[LS_SEED_MSG_MAX] = "";
    LS_FAULT("seed.client.swap"); /* tests: "sleep:MS" holds the swap between its two halves */
    ls_copy_close(*copy);         /* stops its replayer and checkpoints */
    *copy = NULL;
    int rc = *in ? ls_seed_install_swap(*in, err, errlen) : LS_ESTATE;
    if (!*in) ls_msgf(err, errlen, "%s: no verified seed to install", copy_dir);
    *swapped = rc == 0;
    if (rc) { /* the marker may be durable: recovery finishes the swap, or undoes it */
        ls_seed_install_free(*in);
        *in = NULL;
        ls_seed_recover_t what = LS_SEED_RECOVER_NOTHING;
        if (ls_seed_recover(copy_dir, &what, err2, sizeof(err2)) == 0)
            *swapped = what == LS_SEED_RECOVER_FINISHED;
    }
    int orc = open(ctx, copy, err2, sizeof(err2));
    if (orc) {
        *copy = NULL;
        if (rc == 0)
            ls_msgf(err, errlen, "cannot open the copy after the seed: %.400s",
                    err2[0] ? err2 : ls_strerror(orc));
    }
    return rc ? rc : orc;
}

void ls_seed_copy_finish(ls_seed_install_t **in, const char *copy_dir)
{
    char err[LS_SEED_MSG_MAX] = "", err2[LS_SEED_MSG_MAX] = "";
    if (!*in) return;
    int rc = ls_seed_install_finish(*in, err, sizeof(err));
    ls_seed_install_free(*in);
    *in = NULL;
    if (rc == 0) return;
    ls_seed_recover_t what = LS_SEED_RECOVER_NOTHING; /* rules 3 and 4: what finish does */
    if (ls_seed_recover(copy_dir, &what, err2, sizeof(err2)) != 0)
        LS_LOGW("seed",
                "%s: the copy is installed, but the replaced one is not removed (%.300s; %.300s): "
                "the daemon's next start removes it, and a seed is refused until then",
                copy_dir, err, err2);
}

int ls_seed_copy_swap(ls_copy_t **copy, ls_seed_install_t **in, const char *copy_dir,
                      ls_seed_open_fn open, void *ctx, bool *swapped, char *err, size_t errlen)
{
    int rc = ls_seed_copy_swap_open(copy, in, copy_dir, open, ctx, swapped, err, errlen);
    if (*in) { /* swapped: the replaced copy goes before the caller hears of it */
        char err2[LS_SEED_MSG_MAX] = "";
        int frc = ls_seed_install_finish(*in, err2, sizeof(err2));
        ls_seed_install_free(*in);
        *in = NULL;
        if (frc) { /* as a failed commit: recovery finishes it, the error is told */
            char err3[LS_SEED_MSG_MAX] = "";
            ls_seed_recover_t what = LS_SEED_RECOVER_NOTHING;
            ls_seed_recover(copy_dir, &what, err3, sizeof(err3));
            if (rc == 0) ls_msgf(err, errlen, "%.400s", err2);
            rc = rc ? rc : frc;
        }
    }
    return rc;
}
