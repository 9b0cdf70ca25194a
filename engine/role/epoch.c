/*
 * What a database directory knows of its epochs (docs/ACTIVATION.md, "Epochs on the wire"): the
 * lines of logs/history merged with the epochs the generation names in logs/ and inspect/ carry
 * (a copy receives no history, but every generation it holds is named with its epoch), and the
 * newest epoch with the node that activated it, as this node announces it in EPOCH frames.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "layout/layout.h"
#include "role/role.h"

/* Adds the epochs of the generation names in dir (absent: nothing) to *h. */
static int learn_names(const char *dir, const char *prefix, ls_layout_hist_t *h, size_t *n,
                       size_t cap, char *err, size_t errlen)
{
    ls_layout_list_t l;
    ls_layout_options_t o = {.prefix = prefix};
    int rc = ls_layout_list(dir, &o, &l, err, errlen);
    if (rc == LS_ENOENT) return 0;
    if (rc) return rc;
    for (size_t i = 0; i < l.ngens && rc == 0; i++)
        rc = ls_layout_history_learn(h, n, cap, l.gens[i].epoch, l.gens[i].generation);
    for (size_t i = 0; i < l.nparts && rc == 0; i++)
        rc = ls_layout_history_learn(h, n, cap, l.parts[i].epoch, l.parts[i].generation);
    ls_layout_list_free(&l);
    return rc;
}

int ls_role_known_epochs(const char *dir, const char *prefix, ls_layout_hist_t **out, size_t *n,
                         char *err, size_t errlen)
{
    char path[4200];
    ls_layout_hist_t *file = NULL, *h = NULL;
    size_t nfile = 0, cap = LS_ROLE_EPOCHS_MAX;
    *out = NULL;
    *n = 0;
    snprintf(path, sizeof(path), "%.4000s/logs/history", dir);
    int rc = ls_layout_history_read(path, &file, &nfile, err, errlen);
    if (rc && rc != LS_ENOENT) return rc;
    if (!(h = calloc(cap, sizeof(*h)))) {
        free(file);
        return ls_errf(err, errlen, LS_ENOMEM, "out of memory reading the epochs of %s", dir);
    }
    rc = 0;
    for (size_t i = 0; i < nfile && rc == 0; i++)
        rc = ls_layout_history_learn(h, n, cap, file[i].epoch, file[i].first_gen);
    free(file);
    snprintf(path, sizeof(path), "%.4000s/logs", dir);
    if (rc == 0) rc = learn_names(path, prefix, h, n, cap, err, errlen);
    snprintf(path, sizeof(path), "%.4000s/inspect", dir);
    if (rc == 0) rc = learn_names(path, prefix, h, n, cap, err, errlen);
    if (rc || *n == 0) {
        free(h);
        *n = 0;
        return rc;
    }
    *out = h;
    return 0;
}

int ls_role_epoch_info(const char *dir, const char *prefix, ls_role_kind_t initial,
                       const char *self, ls_role_epoch_info_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    ls_role_state_t st;
    int rc = ls_role_load(dir, initial, &st, err, errlen);
    if (rc) return rc;
    ls_layout_hist_t *h;
    size_t n;
    if ((rc = ls_role_known_epochs(dir, prefix, &h, &n, err, errlen))) return rc;
    out->role = st.role;
    out->epoch = st.epoch ? st.epoch : 1;
    if (n && h[n - 1].epoch >= out->epoch) {
        out->epoch = h[n - 1].epoch;
        out->first_generation = h[n - 1].first_gen;
    }
    free(h);
    /* Who activated the newest epoch: this node when it is the active; else the node the role
     * file follows (the active a demoted node was fenced by, or a copy's active); else unknown. */
    const char *who = st.role == LS_ROLE_ACTIVE ? self : st.follows;
    snprintf(out->active, sizeof(out->active), "%s", who ? who : "");
    return 0;
}
