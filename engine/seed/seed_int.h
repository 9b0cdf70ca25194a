/*
 * seed internals shared by the module's files: snapshot.c (the active's local copy and its
 * reader), handoff.c (L, N and the digest of N-1 from the store's meta and logs/), install.c
 * (receiving beside the copy and verifying), swap.c (the swap and ls_seed_recover), util.c
 * (messages, paths, removing trees). Not public.
 *
 * Threading: nothing here is shared between objects; each object belongs to one thread at a time.
 */
#ifndef LS_SEED_INT_H
#define LS_SEED_INT_H

#include "core/core.h"
#include "seed/seed.h"
#include "store/store.h"

#define LS__SEED_PATH_MAX 4096
#define LS__SEED_MARKER   "SEED-READY"    /* in a new copy: verified, the swap was decided */
#define LS__SEED_NEW      ".seed-new"     /* suffix of the new copy beside <copy> */
#define LS__SEED_OLD      ".seed-old"     /* suffix of the old copy (fallback swap only) */
#define LS__SEED_TMP      "seed-tmp"      /* under <db>: local snapshot copies */
#define LS__SEED_CHUNK    (1024u * 1024u) /* default and largest chunk (SEED_DATA's maximum) */

/* The paths of one copy's install: <copy> and its siblings. */
typedef struct {
    char copy[LS__SEED_PATH_MAX];        /* <copy>, without trailing slashes */
    char parent[LS__SEED_PATH_MAX];      /* its directory */
    char new_dir[LS__SEED_PATH_MAX];     /* <copy>.seed-new */
    char old_dir[LS__SEED_PATH_MAX];     /* <copy>.seed-old */
    char new_marker[LS__SEED_PATH_MAX];  /* <copy>.seed-new/SEED-READY */
    char copy_marker[LS__SEED_PATH_MAX]; /* <copy>/SEED-READY */
} ls__seed_paths_t;

/* util.c */
/* Fills p from copy_dir; LS_EINVAL when empty or too long. */
int ls__seed_paths(const char *copy_dir, ls__seed_paths_t *p);
bool ls__seed_exists(const char *path);
/* Removes path and everything under it (no error when absent). 0 or LS_EIO. */
int ls__seed_rmtree(const char *path);
/* True when dir has an entry other than . and .. (false when absent). */
bool ls__seed_dir_nonempty(const char *dir);

/* handoff.c */
/* Works out info's generation, epoch, prev_digest and dbid from the snapshot's meta m and the
 * generation files in logs (see handoff.c). 0 or LS_EGAP, LS_ELINEAGE, LS_EDBID, LS_ECORRUPT,
 * LS_EIO with err set. */
int ls__seed_handoff(const char *logs, const char *prefix, const ls_store_meta_t *m,
                     ls_seed_info_t *info, char *err, size_t errlen);

/* swap.c */
/* Removes whatever a finished swap leaves (the old copy, the marker in <copy>). */
int ls__seed_finish(const ls__seed_paths_t *p, char *err, size_t errlen);
/* Swaps the new copy (with its marker durable) into place, by exchange or two renames. */
int ls__seed_swap(const ls__seed_paths_t *p, char *err, size_t errlen);

#endif
