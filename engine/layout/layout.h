/*
 * layout: a directory of generation files, as every module reads it (issue 11). One place lists
 * a directory's generations, names them, and reads a file's header and trailer; the source's
 * view, a copy's restart position, the writer's recovery and the seed's hand-off use it.
 *
 * Names (DESIGN.md, "On disk"): a closed generation is <prefix>-<epoch 8 hex>-<generation 16
 * hex>.log, the current log <prefix>.log, a file being received <name>.part. Formatting and
 * parsing are engine/logfmt's (ls_gen_name, ls_gen_name_parse); this module adds the directory:
 * listing sorted by (epoch, generation) (the order of the names) or by (generation, epoch),
 * paths, and reading the two ends of a file with logfmt's decoders (ls_gen_header_decode,
 * ls_gen_trailer_decode: nothing of the format is repeated here). A whole-file verification is
 * ls_gen_scan's job, not this module's.
 *
 * Sits just above logfmt: no store, no network, no loop; it never logs (errors go to err).
 * Lifecycle: ls_layout_list() -> use the list -> ls_layout_list_free(). ls_layout_read_ends() is
 * one call. Threading: no shared state; every call may run on any thread.
 */
#ifndef LS_LAYOUT_H
#define LS_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <logship/logfmt.h>

/* Sort order of a listing. */
typedef enum {
    LS_LAYOUT_BY_NAME = 0,   /* (epoch, generation): the order of the file names (default) */
    LS_LAYOUT_BY_GENERATION, /* (generation, epoch) */
} ls_layout_order_t;

/* One generation file found in a directory (from its name only). */
typedef struct {
    uint32_t epoch;      /* epoch from the name */
    uint64_t generation; /* generation from the name, >= 1 */
} ls_layout_gen_t;

/* Zero means the default for every field. */
typedef struct {
    const char *prefix;      /* file name prefix; NULL or "" means "E00" */
    ls_layout_order_t order; /* LS_LAYOUT_BY_NAME */
} ls_layout_options_t;

/* What a directory holds. Owned by the caller until ls_layout_list_free(). */
typedef struct {
    ls_layout_gen_t *gens;  /* closed generation names (<prefix>-E-G.log), sorted, malloc'd */
    size_t ngens;           /* entries in gens */
    ls_layout_gen_t *parts; /* <closed name>.part files (being received), sorted, malloc'd */
    size_t nparts;          /* entries in parts */
    bool has_current;       /* <prefix>.log exists (the active's open log) */
} ls_layout_list_t;

/* Lists dir once (readdir, no stat): closed generation names, .part names and the current log
 * of the prefix; everything else (history, foreign files, generation 0) is ignored.
 * Errors: LS_EINVAL (bad prefix), LS_ENOENT (no directory), LS_ENOMEM, LS_EIO; err (may be NULL)
 * names the directory. On error *out is empty. */
int ls_layout_list(const char *dir, const ls_layout_options_t *opts, ls_layout_list_t *out,
                   char *err, size_t errlen);
/* Frees the arrays and empties the list. NULL is a no-op. */
void ls_layout_list_free(ls_layout_list_t *list);

/* Index in list->gens of generation g (the highest epoch when several carry it), or -1. */
ssize_t ls_layout_find(const ls_layout_list_t *list, uint64_t g);

/* <dir>/<prefix>-<epoch>-<generation>.log (suffix, may be NULL or "", appended: ".part").
 * prefix NULL or "" means "E00". 0, or LS_EINVAL (bad prefix, or out too small). */
int ls_layout_path(char *out, size_t outlen, const char *dir, const char *prefix, uint32_t epoch,
                   uint64_t g, const char *suffix);

/* The two ends of a generation file. */
typedef struct {
    uint64_t size;      /* file size, bytes */
    ls_gen_header_t h;  /* the header (always valid when the call returns 0) */
    bool closed;        /* a valid trailer ends the file: t is valid */
    ls_gen_trailer_t t; /* the trailer when closed */
} ls_layout_ends_t;

/* Reads the header and, when the file is large enough, the trailer of the generation file at
 * path (two preads), decoding them with logfmt. The trailer counts (closed) only when it
 * decodes with the header's seed, its payload length is the file's, and its last LSN does not
 * precede the header's first; the digest is not recomputed (ls_gen_scan does that).
 * Errors: LS_ENOENT (no file), LS_ECORRUPT (shorter than a header, or the header does not
 * decode), LS_EIO; err (may be NULL) names the file. */
int ls_layout_read_ends(const char *path, ls_layout_ends_t *out, char *err, size_t errlen);
/* The same from an open descriptor (path only names it in messages). */
int ls_layout_read_ends_fd(int fd, const char *path, ls_layout_ends_t *out, char *err,
                           size_t errlen);

/* ---- logs/history (history.c) ------------------------------------------------------------ */
#define LS_LAYOUT_HISTORY_MAX                                                                      \
    (1u << 20) /* bytes: a history of a million bytes is not a history                             \
                */

/* One line of logs/history: an epoch and the first generation written in it. */
typedef struct {
    uint32_t epoch;     /* epoch number, >= 1 */
    uint64_t first_gen; /* first generation of that epoch, >= 1 */
} ls_layout_hist_t;

/* Parses buf (NUL-terminated; modified) into a new array (*out, *n entries; the caller frees it).
 * path names the file in messages. LS_ECONFIG naming "<path>:<line>" for a malformed line,
 * LS_ENOMEM. */
int ls_layout_history_parse(const char *path, char *buf, ls_layout_hist_t **out, size_t *n,
                            char *err, size_t errlen);
/* Reads and parses the history file at path. LS_ENOENT when it does not exist (the caller decides
 * what that means), LS_ECONFIG for a malformed file or one with a NUL byte, LS_EIO. */
int ls_layout_history_read(const char *path, ls_layout_hist_t **out, size_t *n, char *err,
                           size_t errlen);

/* Pure: the epoch generation g belongs to by the n lines of h: the highest epoch whose first
 * generation is <= g; 0 when no line covers g. Works on any set of lines (one per epoch). */
uint32_t ls_layout_history_epoch_at(const ls_layout_hist_t *h, size_t n, uint64_t g);
/* Pure: records that epoch `epoch` holds generation g in h (*n lines of cap, kept sorted by
 * epoch): a known epoch's first generation is lowered to g, an unknown one inserted at g (when
 * h is full the oldest line is forgotten; an epoch older than every line kept is then ignored).
 * 0, or LS_EINVAL for epoch or generation 0. */
int ls_layout_history_learn(ls_layout_hist_t *h, size_t *n, size_t cap, uint32_t epoch, uint64_t g);

#endif
