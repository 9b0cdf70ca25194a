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
/* ---- a planned switchover's hold (docs/ACTIVATION.md, "logship switchover") ----
 * A hold is a fence with the flag LS_CTL_HOLD: the writer refuses commits with LS_EFENCED
 * naming the node that is to become active, but not stickily (the hold may be cleared: the
 * switchover failed, commits are accepted again); it closes its current log when it holds
 * records and acknowledges the hold in the page (the last generation closed and the last LSN),
 * under its log lock, so no batch is written after the acknowledgement. */
#define LS_CTL_HOLD 0x1u

/* Sets a hold (a fence with LS_CTL_HOLD, the acknowledgement cleared) durably, as set_fence. */
int ls_ctlpage_set_hold(ls_ctlpage_t *page, uint32_t epoch, const char *name, char *err,
                        size_t errlen);
/* Fenced, and the fence is a hold. */
bool ls_ctlpage_held(const ls_ctlpage_t *page);
/* The writer: the current log is closed (or holds nothing); last_generation closed, last_lsn
 * written. Once per hold (a second call is a no-op). Not synced: read by the running daemon. */
void ls_ctlpage_ack_hold(ls_ctlpage_t *page, uint64_t last_generation, uint64_t last_lsn);
/* The daemon: the writer acknowledged the current hold; its figures in *last_generation and
 * *last_lsn. */
bool ls_ctlpage_hold_acked(const ls_ctlpage_t *page, uint64_t *last_generation, uint64_t *last_lsn);

/* The active asked the new one to activate (LS_CTL_ASKED, durably): from then on the hold must
 * outlive a restart of the daemon; before it, a restart releases it (nothing was handed over). */
#define LS_CTL_ASKED 0x2u
int ls_ctlpage_set_asked(ls_ctlpage_t *page, char *err, size_t errlen);
/* The fence flags (LS_CTL_HOLD, LS_CTL_ASKED); 0 when not fenced. */
uint32_t ls_ctlpage_flags(const ls_ctlpage_t *page);

/* Clears the fence durably (the directory is to be written again: an activation). */
int ls_ctlpage_clear_fence(ls_ctlpage_t *page, char *err, size_t errlen);

/* ---- block mode and synchronous commit: the channel (bytes 512..2047) ---------------------- */

#define LS_CTL_COPIES_MAX  8   /* copies whose positions the daemon publishes */
#define LS_CTL_REASON_MAX  199 /* bytes of the degraded reason, without the NUL */
#define LS_CTL_COPY_LINKED 1u  /* ls_ctl_copy_t.flags: the copy is connected */
#define LS_CTL_COPY_BLOCK  2u  /* ls_ctl_copy_t.flags: the copy is in block mode */

/* The writer's durable position: bytes [0, offset) of the current log (logs/<prefix>.log,
 * whose header names generation) are fdatasynced, and lsn is the last record in them (the
 * position after the last batch: always a COMMIT). offset 0: nothing of generation is durable
 * yet (just rolled or opened). pid 0: no writer has the database open. */
typedef struct {
    uint64_t generation; /* generation of the current log */
    uint64_t offset;     /* durable bytes of it, header included; 0: none yet */
    uint64_t lsn;        /* last durable LSN (all generations) */
    uint64_t time_ns;    /* when it was published, ns since 1970 UTC */
    uint32_t epoch;      /* epoch of the current log */
    uint32_t pid;        /* the writer's process; 0 when closed */
} ls_ctl_durable_t;

/* One copy's position as its daemon last heard it. */
typedef struct {
    uint64_t durable_lsn; /* the copy holds every record up to it durably (shadow or logs/) */
    uint64_t applied_lsn; /* the copy's store holds every record up to it */
    uint64_t time_ns;     /* when the daemon heard it, ns since 1970 UTC */
    uint32_t flags;       /* LS_CTL_COPY_* */
    uint32_t id;          /* the daemon's number for the copy (stable while it runs) */
} ls_ctl_copy_t;

/* Synchronous commit as the writer runs it (the daemon shows it in status, logs and metrics). */
typedef enum {
    LS_CTL_SYNC_OFF = 0,      /* commit level local: nothing to wait for */
    LS_CTL_SYNC_SYNC = 1,     /* commits wait for their copies */
    LS_CTL_SYNC_DEGRADED = 2, /* no copy answered in time: commits go on asynchronously */
} ls_ctl_sync_state_t;

typedef struct {
    uint32_t state;    /* ls_ctl_sync_state_t */
    uint32_t level;    /* the commit level (ls_db_commit_level_t of db.h), 0 local */
    uint32_t copies;   /* copies a commit waits for */
    uint32_t switches; /* times the state changed since the writer opened */
    uint64_t since_ns; /* when the state last changed, ns since 1970 UTC */
    char reason[LS_CTL_REASON_MAX + 1]; /* why degraded ("" otherwise) */
} ls_ctl_sync_t;

/* Writer: publishes its durable position and wakes a daemon thread sleeping in
 * ls_ctlpage_wait_durable (a system call only when one sleeps). One publisher at a time. */
void ls_ctlpage_publish_durable(ls_ctlpage_t *page, const ls_ctl_durable_t *d);
/* A consistent copy of the durable position; returns its sequence (pass it to the wait). */
uint32_t ls_ctlpage_read_durable(const ls_ctlpage_t *page, ls_ctl_durable_t *out);
/* Sleeps until the durable position's sequence differs from seen, timeout_ns passes
 * (LS_ETIMEDOUT) or ls_ctlpage_wake_durable is called (0: re-read and check why). */
int ls_ctlpage_wait_durable(const ls_ctlpage_t *page, uint32_t seen, uint64_t timeout_ns);
/* Wakes every thread sleeping in ls_ctlpage_wait_durable (a daemon stopping its watcher). */
void ls_ctlpage_wake_durable(const ls_ctlpage_t *page);

/* ---- the doorbell (docs/BLOCKMODE.md, "The doorbell") ----
 * <db>/doorbell is a FIFO that the writer and the daemon both open read-write and non-blocking
 * (neither ever blocks on it nor gets SIGPIPE; a restart of either finds the same pipe). The
 * daemon's loop polls it; the writer writes one byte after a publication of its durable position
 * only when the daemon armed the bell (it was about to sleep), and disarms it in the same atomic
 * exchange: at most one write per arming, none while the daemon is busy. The daemon arms, then
 * reads the position once more (both sequentially consistent: either the writer sees the bell
 * armed or the daemon sees the new position). The writer says in the page that it rings (its
 * pid); a daemon uses the bell only when that pid is the one that published the position, and
 * otherwise sleeps on the futex as before (a writer built before the doorbell). */

/* Opens <dbdir>/doorbell (created as a FIFO, mode 0600, when absent) read-write, non-blocking,
 * close-on-exec. Returns the descriptor, or -1 (no doorbell: absent and cannot be made, not a
 * FIFO, or no descriptor); the caller then works without it. */
int ls_ctlpage_bell_open(const char *dbdir);
/* Writer: the process that rings the bell (its pid), 0 when none. */
void ls_ctlpage_set_bell(ls_ctlpage_t *page, uint32_t pid);
/* The pid the writer published with ls_ctlpage_set_bell (0: no writer rings). */
uint32_t ls_ctlpage_bell(const ls_ctlpage_t *page);
/* Daemon: arms the bell (then reads the durable position once more before it sleeps). */
void ls_ctlpage_arm_bell(ls_ctlpage_t *page, bool armed);
/* Writer, after ls_ctlpage_publish_durable: true once per arming (the bell is disarmed): the
 * caller then writes one byte to the doorbell (ls_ctlpage_bell_ring). No system call. */
bool ls_ctlpage_take_bell(ls_ctlpage_t *page);
/* Writes one byte to the doorbell descriptor (a full pipe already rings: ignored). */
void ls_ctlpage_bell_ring(int fd);
/* Daemon: reads what the doorbell holds (non-blocking); true when it held anything. */
bool ls_ctlpage_bell_drain(int fd);

/* Daemon: publishes the copies' positions (n <= LS_CTL_COPIES_MAX; more are cut) and wakes the
 * commits sleeping in ls_ctlpage_wait_copies. One publisher at a time. */
void ls_ctlpage_publish_copies(ls_ctlpage_t *page, const ls_ctl_copy_t *copies, uint32_t n);
/* The same without waking anyone (no system call): for a change no sleeper waits for (the
 * applied position when the writer's level is remote_durable, the durable one at
 * remote_applied). A sleeper sees it at its next wake-up. */
void ls_ctlpage_publish_copies_quiet(ls_ctlpage_t *page, const ls_ctl_copy_t *copies, uint32_t n);
/* A consistent copy of the copies' positions into out[LS_CTL_COPIES_MAX], *n of them; returns
 * the sequence. */
uint32_t ls_ctlpage_read_copies(const ls_ctlpage_t *page, ls_ctl_copy_t *out, uint32_t *n);
/* As ls_ctlpage_wait_durable, for the copies' positions. */
int ls_ctlpage_wait_copies(const ls_ctlpage_t *page, uint32_t seen, uint64_t timeout_ns);
void ls_ctlpage_wake_copies(const ls_ctlpage_t *page);

/* Writer: publishes the state of synchronous commit. Reader: a consistent copy of it. */
void ls_ctlpage_publish_sync(ls_ctlpage_t *page, const ls_ctl_sync_t *s);
void ls_ctlpage_read_sync(const ls_ctlpage_t *page, ls_ctl_sync_t *out);

#endif
