/*
 * seed internals shared by the module's files: snapshot.c and snapshot_direct.c (the active's
 * local copy or the compaction streamed, and its reader; their object: snapshot_int.h), handoff.c
 * (L, N and the digest of N-1 from the store's meta and logs/), install.c (receiving beside the
 * copy and verifying), swap.c (the swap and ls_seed_recover), util.c (messages, paths, removing
 * trees). Not public.
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

/* util.c: the stream's end-to-end check (SEED_END's digest field, docs/SEED.md "The stream's
 * check"): XXH3-128 in the field's first 16 bytes, the rest zero, when both sides negotiated
 * LS_FEAT_SEEDXXH (info.xxh); else SHA-256 of the whole field. */
typedef struct {
    ls_sha256_t *sha; /* SHA-256: an older peer */
    ls_seal_t *xxh;   /* XXH3-128 */
} ls__seed_sum_t;
/* 0 or LS_ENOMEM (then nothing to free). */
int ls__seed_sum_init(ls__seed_sum_t *c, bool xxh);
void ls__seed_sum_update(ls__seed_sum_t *c, const void *buf, size_t len);
/* The check of everything updated so far, as SEED_END carries it. */
void ls__seed_sum_peek(const ls__seed_sum_t *c, uint8_t out[LS_DIGEST_SIZE]);
/* "XXH3-128" or "SHA-256"; the hex of a field (out: 2 * LS_DIGEST_SIZE + 1 bytes) as long as
 * the algorithm's value. */
const char *ls__seed_sum_name(const ls__seed_sum_t *c);
void ls__seed_sum_hex(const ls__seed_sum_t *c, const uint8_t v[LS_DIGEST_SIZE], char *out);
void ls__seed_sum_free(ls__seed_sum_t *c);

/* handoff.c */
/* Works out info's generation, epoch, prev_digest and dbid from the snapshot's meta m and the
 * generation files in logs (see handoff.c). 0 or LS_EGAP, LS_ELINEAGE, LS_EDBID, LS_ECORRUPT,
 * LS_EIO with err set. */
int ls__seed_handoff(const char *logs, const char *prefix, const ls_store_meta_t *m,
                     ls_seed_info_t *info, char *err, size_t errlen);

/* keys.c: a set of keys (each malloc'd: u16 length + bytes) */
typedef struct {
    uint8_t **k;    /* the keys */
    size_t n, cap;  /* used, allocated */
    uint64_t after; /* scan: only records with a greater LSN */
    int rc;         /* LS_ENOMEM once an allocation failed */
} ls__keyset_t;
int ls__keyset_add(ls__keyset_t *ks, const void *key, size_t len);
/* Adds the keys of a RESYNC key sequence; LS_EPROTO when it is not whole. */
int ls__keyset_add_seq(ls__keyset_t *ks, const uint8_t *seq, size_t len);
/* Adds the keys the PUT and DEL records of a generation file touched (LSN > ks->after). A
 * damaged file counts up to the damage; LS_ENOMEM only. */
int ls__keyset_scan(ls__keyset_t *ks, const char *path, bool open_log);
/* Sorts and removes duplicates. */
void ls__keyset_finish(ls__keyset_t *ks);
void ls__keyset_free(ls__keyset_t *ks);
#define LS__KEY_LEN(k) ((size_t) (k)[0] | (size_t) (k)[1] << 8)

/* resync.c */
/* Writes the resync stream of request rq into out_path (see seed.h) and fills info. *fallback
 * (with info->fallback's reason) when a full seed must be taken instead. */
int ls__seed_resync_write(const char *db_dir, const char *prefix, const ls_seed_resync_req_t *rq,
                          const char *out_path, ls_seed_info_t *info, bool *fallback, char *err,
                          size_t errlen);
/* Applies the marked, verified stream in <copy>/resync/ to <copy>/store (one transaction) and
 * removes the directory. */
int ls__seed_resync_apply(const char *copy, const char *prefix, char *err, size_t errlen);
/* The READY marker's text for info (snprintf's result). */
int ls__seed_resync_ready_text(const ls_seed_info_t *i, char *out, size_t outlen);
/* Reads every entry of the stream at path (*keys: how many), applying each through txn when
 * not NULL. LS_ECORRUPT naming the entry and offset when one is malformed. */
int ls__seed_resync_walk(const char *path, ls_store_txn_t *txn, uint64_t *keys, char *err,
                         size_t errlen);
#define LS__RESYNC_DIR    "resync" /* under <copy>: the stream and its READY marker */
#define LS__RESYNC_READY  "READY"
#define LS__RESYNC_STREAM "stream"

/* swap.c */
/* Removes whatever a finished swap leaves (the old copy, the marker in <copy>). */
int ls__seed_finish(const ls__seed_paths_t *p, char *err, size_t errlen);
/* Swaps the new copy (with its marker durable) into place, by exchange or two renames. */
int ls__seed_swap(const ls__seed_paths_t *p, char *err, size_t errlen);

#endif
