/*
 * The copy closes and reopens itself around the swap (session.h, ls_seed_copy_swap), on the one
 * thread that owns its ls_copy_t (the daemon's receiver thread): nobody else holds the pointer
 * while it is closed and replaced, so no lock is needed and none is forgotten.
 */
#include <stdio.h>

#include "seed/seed_int.h"
#include "seed/session.h"

int ls_seed_copy_swap(ls_copy_t **copy, ls_seed_install_t **in, const char *copy_dir,
                      ls_seed_open_fn open, void *ctx, bool *swapped, char *err, size_t errlen)
{
    char err2[LS_SEED_MSG_MAX] = "";
    LS_FAULT("seed.client.swap"); /* tests: "sleep:MS" holds the swap between its two halves */
    ls_copy_close(*copy);         /* stops its replayer and checkpoints */
    *copy = NULL;
    int rc = *in ? ls_seed_install_commit(*in, err, errlen) : LS_ESTATE;
    if (!*in) ls_msgf(err, errlen, "%s: no verified seed to install", copy_dir);
    ls_seed_install_free(*in);
    *in = NULL;
    *swapped = rc == 0;
    if (rc) { /* the marker may be durable: recovery finishes the swap, or undoes it */
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
