/*
 * Demotion of an old active that learned of a newer epoch (role.h, docs/ACTIVATION.md
 * "Fencing and divergence"):
 *  1. the fence is set on the control page and the role file says demoted (ls_role_fence):
 *     the application's writer refuses commits from its next batch on;
 *  2. <dir>/lock is taken (flock, as ls_db_open does): while the application still has the
 *     database open, nothing is moved (LS_EBUSY: call again once it closed);
 *  3. the split point against the new active's chain, the later generations moved aside;
 *  4. the role file: diverged (something was moved) or demoted, following the new active.
 * A crash anywhere leaves the fence set (step 1 is durable first) and every file either in
 * logs/ or in diverged/<epoch>/; running it again finishes.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "role/role.h"

/* Step 2: the database lock, or LS_EBUSY while the application holds it. *fd to close. */
static int take_lock(const char *dir, int *fd, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof(path), "%.4000s/lock", dir);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0)
        return ls_errf(err, errlen, ls_err_from_errno(errno), "cannot open %s: %s", path,
                       strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB) == 0) return 0;
    return ls_errf(err, errlen, errno == EWOULDBLOCK ? LS_EBUSY : ls_err_from_errno(errno),
                   "%s is fenced, but the application still has it open: the diverged "
                   "generations are moved aside once it closes the database",
                   dir);
}

/* Step 4: the role file with what happened. */
static int record(const char *dir, uint32_t epoch, const char *new_active,
                  ls_role_demote_report_t *r, char *err, size_t errlen)
{
    ls_role_state_t st = {.epoch = epoch, .since_ns = ls_now_ns()};
    snprintf(st.follows, sizeof(st.follows), "%s", new_active ? new_active : "");
    const ls_role_diverged_t *m = &r->moved;
    char aside[4200];
    struct stat sb;
    snprintf(aside, sizeof(aside), "%.4000s/diverged/%" PRIu32, dir, epoch);
    bool earlier = m->generations == 0 && stat(aside, &sb) == 0; /* a run that crashed */
    bool unknown = !r->split.found && !r->split.overlap;
    st.role = r->role = m->generations || earlier || unknown ? LS_ROLE_DIVERGED : LS_ROLE_DEMOTED;
    if (earlier)
        snprintf(st.reason, sizeof(st.reason),
                 "diverged from %s (epoch %" PRIu32 "): generations after %" PRIu64
                 " were moved aside by an earlier run",
                 st.follows, epoch, r->split.split);
    else if (unknown)
        snprintf(st.reason, sizeof(st.reason),
                 "no generation in common with %s's chain (epoch %" PRIu32 "): reseed needed",
                 st.follows, epoch);
    else if (m->generations) {
        char big[5000];
        snprintf(big, sizeof(big),
                 "diverged from %s (epoch %" PRIu32 ") after generation %" PRIu64 ": %" PRIu64
                 " files, generations %" PRIu64 "..%" PRIu64 ", lsn %" PRIu64 "..%" PRIu64
                 ", %" PRIu64 " keys, moved to %s",
                 st.follows, epoch, r->split.split, m->generations, m->first_generation,
                 m->last_generation, m->first_lsn, m->last_lsn, m->keys, m->dest);
        memcpy(st.reason, big, LS_MIN(strlen(big) + 1, sizeof(st.reason) - 1));
    } else
        snprintf(st.reason, sizeof(st.reason),
                 "demoted: %s is active in epoch %" PRIu32 ", nothing diverged (split at "
                 "generation %" PRIu64 ")",
                 st.follows, epoch, r->split.split);
    return ls_role_save(dir, &st, err, errlen);
}

int ls_role_demote(const char *dir, const char *prefix, const ls_role_link_t *theirs,
                   size_t ntheirs, uint32_t new_epoch, const char *new_active,
                   ls_role_demote_report_t *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    r->role = LS_ROLE_DEMOTED;
    int rc = ls_role_fence(dir, new_epoch, new_active, err, errlen);
    if (rc) return rc;
    int fd = -1;
    ls_role_link_t *mine = NULL;
    size_t nmine = 0;
    if ((rc = take_lock(dir, &fd, err, errlen)) != 0) goto out;
    if ((rc = ls_role_chain(dir, prefix, &mine, &nmine, err, errlen)) != 0) goto out;
    ls_role_find_split(mine, nmine, theirs, ntheirs, &r->split);
    if (r->split.found || r->split.overlap)
        rc = ls_role_move_aside(dir, prefix, r->split.split, new_epoch, &r->moved, err, errlen);
    if (rc == 0) rc = record(dir, new_epoch, new_active, r, err, errlen);
    if (rc == 0 && !r->split.found && !r->split.overlap)
        rc = ls_errf(err, errlen, LS_EDIVERGED,
                     "%s shares no generation number with %s's chain: cannot tell where they "
                     "split; reseed this node",
                     dir, new_active ? new_active : "the new active");
out:
    free(mine);
    if (fd >= 0) close(fd);
    return rc;
}
