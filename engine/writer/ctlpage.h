/*
 * ctlpage: the database directory's control page, <db>/control, shared between the processes
 * that touch one database: the application's writer (engine/writer) and the daemon or the
 * command line (engine/role: activation, fencing). Layout and rules: docs/ACTIVATION.md.
 *
 * One 4096-byte file, mapped MAP_SHARED by every process that opens it. Today it carries the
 * fence: a node that learned that another node became active (a newer epoch) sets it, and the
 * writer reads one 64-bit word per commit batch (an acquire load, no system call) and, once it
 * is set, fails every commit with LS_EFENCED naming the new active. The rest of the page is
 * reserved; block mode (a later issue) will publish the writer's durable LSN there.
 *
 * Fence protocol: the setter writes the name and the time first, then the fence word (a
 * release store), then msync + fsync so the fence survives a restart. A reader that sees the
 * word non-zero (acquire load) sees the name written before it.
 *
 * Lifecycle: ls_ctlpage_open() (creating the file when absent, never replacing one: link(2) of
 * a complete temporary file) -> reads / ls_ctlpage_set_fence() -> ls_ctlpage_close().
 * Threading: a handle may be read from any thread; set/clear from one thread at a time.
 */
#ifndef LS_CTLPAGE_H
#define LS_CTLPAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LS_CTL_SIZE     4096 /* bytes of <db>/control */
#define LS_CTL_NAME_MAX 255  /* bytes of the new active's name, without the NUL */

typedef struct ls_ctlpage ls_ctlpage_t;

/* The fence as read from the page. */
typedef struct {
    uint32_t epoch;                 /* epoch of the node that took over; 0: not fenced */
    uint64_t since_ns;              /* when the fence was set, ns since 1970 UTC */
    char name[LS_CTL_NAME_MAX + 1]; /* the new active's node name ("" when unknown) */
} ls_ctl_fence_t;

/* Opens (create: creating when absent) <dbdir>/control and maps it. *out owned by the caller
 * until ls_ctlpage_close(). Errors: LS_ENOENT (absent and !create), LS_ECORRUPT (wrong size,
 * magic or version: err names the file and the field), LS_EIO, LS_ENOMEM. */
int ls_ctlpage_open(const char *dbdir, bool create, ls_ctlpage_t **out, char *err, size_t errlen);
/* Unmaps and closes. NULL is a no-op. */
void ls_ctlpage_close(ls_ctlpage_t *page);

/* The fence word: 0 when not fenced, else the new active's epoch. One acquire load of shared
 * memory: cheap enough for every commit batch. */
uint32_t ls_ctlpage_fenced(const ls_ctlpage_t *page);
/* The whole fence (epoch, time, name). */
void ls_ctlpage_fence(const ls_ctlpage_t *page, ls_ctl_fence_t *out);

/* Sets the fence (epoch >= 1, name borrowed, truncated to LS_CTL_NAME_MAX) durably: name and
 * time, then the word, then msync and fsync. Every writer of the database refuses commits from
 * its next batch on. Errors: LS_EINVAL (epoch 0), LS_EIO. */
int ls_ctlpage_set_fence(ls_ctlpage_t *page, uint32_t epoch, const char *name, char *err,
                         size_t errlen);
/* Clears the fence durably (the directory is to be written again: an activation). */
int ls_ctlpage_clear_fence(ls_ctlpage_t *page, char *err, size_t errlen);

#endif
