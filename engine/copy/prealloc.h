/*
 * prealloc: a small pool of files whose blocks are already allocated, written and synced, kept in
 * one directory and handed out to be overwritten in place (docs/COPY.md, "Preallocated .part
 * files"). Overwriting allocated blocks needs no block allocation at writeback and, when the size
 * does not change, no journal commit at fdatasync: 0.6 ms instead of ~2 ms for a new 1 MiB file
 * on this project's machines (shared/reference/machine-limits.md).
 *
 * A pool file's bytes mean nothing: whoever takes one overwrites what it needs and sets the size
 * (ftruncate); durability rests on the taker's own fdatasync, exactly as for a new file (it syncs
 * whatever metadata the written range needs: a size change, blocks added past the pool size). The
 * pool's own fsync only makes that fdatasync cheap. A crash can leave a pool file half made
 * (`*.tmp`, deleted at open) or a taken file under the taker's name (the taker's recovery applies).
 *
 * Files come from two places, on the pool's own thread (never on the taker's path): files given
 * back (ls_prealloc_give: a copy's pruned log, renamed in at once, padded to the pool size and
 * fsynced later), and, only after the pool saw no take for idle_ms, new files written with zeros
 * (so that a stream of takes is never slowed by extra writes of the pool's).
 *
 * Besides the ready files the pool keeps bare ones: empty files, handed out when no ready file is
 * left (size 0: the taker writes it as a new file). Up to 4 are created at once, even while
 * takes come back to back (nothing is written or synced: an inode and a name; kept open, so the
 * taker only renames it), up to 64 once the pool is idle (a stock for the next backlog), and
 * given files the ready ones do not want are emptied into bare ones while fewer than 64 are
 * kept (a copy's pruned logs: the inode is kept instead of freed). They take the inode's allocation
 * off the taker's path, and recycled ones avoid it: on ext4 without a journal, as here, each
 * allocation checks every free inode of the group deleted in the last seconds to minutes
 * (`recently_deleted`), 0.1-0.9 ms per file after a few hundred deletions (docs/COPY.md). A bare
 * file also seeds the next ready file when the pool is idle (it is zero-filled in place of a new
 * one).
 *
 * Threading: every call may come from any thread (one mutex); the pool's thread does the I/O.
 */
#ifndef LS_COPY_PREALLOC_H
#define LS_COPY_PREALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ls_prealloc ls_prealloc_t;

typedef struct {
    const char *dir;   /* where ready files are kept (created); same filesystem as the takers */
    unsigned count;    /* ready files kept, at most 64 (0: 2) */
    uint64_t size;     /* bytes of each until ls_prealloc_size says otherwise (0: 896 KiB) */
    unsigned idle_ms;  /* new files are written only after this long without a take (0: 100) */
    const char *label; /* for log lines (the owner's directory) */
} ls_prealloc_options_t;

/* Opens the pool: creates dir, deletes half-made files, counts the ready ones, starts the thread
 * (which fills the pool in the background). 0, or an error with err filled. */
int ls_prealloc_open(const ls_prealloc_options_t *o, ls_prealloc_t **out, char *err, size_t errlen);

/* Moves a ready file, or when none is ready a bare one, to path (a rename: the caller syncs
 * path's directory if the name must be durable) and opens it for writing (O_WRONLY, nothing
 * truncated): *fd and its size in *size (0: a bare file; a ready one is never empty).
 * LS_ENOENT when none is left (the caller makes its own file), or another error (errno's). */
int ls_prealloc_take(ls_prealloc_t *p, const char *path, int *fd, uint64_t *size);

/* A file its owner no longer needs (on the same filesystem): renamed into the pool at once when
 * the pool wants one (true), to be padded and synced by the pool's thread, or, when the ready
 * files are all there, emptied into a bare one while fewer than 64 are kept; false: the pool is
 * full, the file was left where it is (the caller deletes it). */
bool ls_prealloc_give(ls_prealloc_t *p, const char *path);

/* A size a file was wanted for: files made from now on have the smallest of the last 8 such
 * sizes, rounded down to 64 KiB, so that a taken file is seldom longer than wanted (a cut, which
 * frees blocks, costs 0.2-12 ms on a busy ext4 here) and grows by little. */
void ls_prealloc_size(ls_prealloc_t *p, uint64_t size);

/* A taken file (open as fd, `from` bytes long) wanted `to` bytes long: zeros are written over
 * [from, to) and synced on the pool's thread while the caller writes below `from` (its blocks
 * and size committed before the caller's own fdatasync, which then finds only data to flush).
 * The caller calls ls_prealloc_grown before it writes at or past `from`, and
 * ls_prealloc_grow_synced before its own fdatasync of the file. One at a time. */
void ls_prealloc_grow_ahead(ls_prealloc_t *p, int fd, uint64_t from, uint64_t to);

/* Waits until the zeros of that growth are written (its sync may still run on the pool's
 * thread: the caller may write there now), or writes them on the caller's thread when the pool
 * has not started (the caller's fdatasync then commits them); cancel: the file is being
 * dropped: waits for all of it, or does nothing when not started, and releases it. 0, or the
 * error of its writes (cancel: or of its sync). Nothing to wait for: 0. */
int ls_prealloc_grown(ls_prealloc_t *p, bool cancel);

/* Waits for the growth, if one is left, to be written and synced on the pool's thread (after
 * ls_prealloc_grown: only its sync), and releases it: 0, or the error of its writes or sync,
 * which the caller must treat as its own fdatasync's (the pool syncs a duplicate of the
 * caller's descriptor: an error reported there is not reported again to the caller's
 * fdatasync). Nothing to wait for: 0. Fault point (test builds): copy.prealloc.grow_sync_eio
 * (that sync fails with LS_EIO). */
int ls_prealloc_grow_synced(ls_prealloc_t *p);

/* fdatasync of a duplicate of fd on the pool's thread, now, while the caller goes on writing:
 * a size just set with ftruncate is committed while the data arrives, so that the caller's own
 * fdatasync at the end has only the data to flush. Optional and never relied on. */
void ls_prealloc_sync_ahead(ls_prealloc_t *p, int fd);

/* Ready files now (tests, status). */
unsigned ls_prealloc_ready(ls_prealloc_t *p);
/* Bare files now (tests). */
unsigned ls_prealloc_bare(ls_prealloc_t *p);

/* Stops the thread and frees the pool; ready files stay for the next open. NULL is fine. */
void ls_prealloc_close(ls_prealloc_t *p);

#endif
