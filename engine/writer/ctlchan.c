/*
 * The control page's channel (docs/BLOCKMODE.md, "The channel"): the three seqlocked areas of
 * <db>/control, the writer's durable position (512), the copies' positions (1024) and the
 * writer's synchronous-commit state (1536). The page's layout, its mapping and the fence are in
 * ctlpage.c; the struct both share is in writer_int.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "writer/writer_int.h"

/* The channel (docs/BLOCKMODE.md, "The channel"). Each area starts with its sequence word (the
 * futex) and a count of the threads sleeping on it; 64-bit fields are 8-aligned. */
#define OFF_D_SEQ     512 /* u32 sequence, u32 sleepers */
#define OFF_D_GEN     520
#define OFF_D_OFF     528
#define OFF_D_LSN     536
#define OFF_D_TIME    544
#define OFF_D_EPOCH   552 /* u32 */
#define OFF_D_PID     556 /* u32 */
#define OFF_D_ARMED   560 /* u32: the daemon armed the doorbell (1), the writer takes it (0) */
#define OFF_D_BELL    564 /* u32: the pid of the writer that rings the doorbell, 0 none */
#define OFF_C_SEQ     1024
#define OFF_C_N       1032 /* u32 */
#define OFF_C_SLOTS   1040 /* LS_CTL_COPIES_MAX slots of 32 bytes */
#define C_SLOT        32
#define OFF_S_SEQ     1536
#define OFF_S_STATE   1544 /* u32 state, level, copies, switches */
#define OFF_S_SINCE   1560
#define OFF_S_RLEN    1568 /* u32 */
#define OFF_S_REASON  1576 /* LS_CTL_REASON_MAX + 1 bytes, as 8-byte words */
#define S_REASON_SIZE 200
_Static_assert(OFF_C_SLOTS + LS_CTL_COPIES_MAX * C_SLOT <= OFF_S_SEQ, "copies overlap sync");
_Static_assert(S_REASON_SIZE == LS_CTL_REASON_MAX + 1 && S_REASON_SIZE % 8 == 0, "reason size");

/* ---- the channel ----------------------------------------------------------------------------
 * Seqlock: the publisher makes the sequence odd (fetch_add), writes the fields (relaxed atomic
 * stores), makes it even again (fetch_add, seq_cst), then wakes sleepers when the count says
 * there are any. A reader takes the sequence (acquire), retries while odd, loads the fields,
 * and retries when the sequence moved meanwhile. A sleeper counts itself in (seq_cst), checks
 * the sequence once more, and sleeps in FUTEX_WAIT only while it is the value it saw: with both
 * sides seq_cst, either the publisher sees the sleeper or the sleeper sees the new value.
 * Fields are accessed as aligned atomics because another process writes them concurrently. */

static uint32_t *u32_at(const ls_ctlpage_t *p, size_t off)
{
    return (uint32_t *) (void *) (p->map + off);
}

static uint64_t *u64_at(const ls_ctlpage_t *p, size_t off)
{
    return (uint64_t *) (void *) (p->map + off);
}

static void st32(const ls_ctlpage_t *p, size_t off, uint32_t v)
{
    __atomic_store_n(u32_at(p, off), v, __ATOMIC_RELAXED);
}

static void st64(const ls_ctlpage_t *p, size_t off, uint64_t v)
{
    __atomic_store_n(u64_at(p, off), v, __ATOMIC_RELAXED);
}

static uint32_t ld32(const ls_ctlpage_t *p, size_t off)
{
    return __atomic_load_n(u32_at(p, off), __ATOMIC_RELAXED);
}

static uint64_t ld64(const ls_ctlpage_t *p, size_t off)
{
    return __atomic_load_n(u64_at(p, off), __ATOMIC_RELAXED);
}

static void write_begin(const ls_ctlpage_t *p, size_t seq_off)
{
    __atomic_fetch_add(u32_at(p, seq_off), 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static void futex_wake(uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Ends a write (the sequence even again); wakes sleepers if any. */
static void write_end(const ls_ctlpage_t *p, size_t seq_off, uint32_t add)
{
    __atomic_fetch_add(u32_at(p, seq_off), add, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(u32_at(p, seq_off + 4), __ATOMIC_SEQ_CST)) futex_wake(u32_at(p, seq_off));
}

/* The even sequence a read starts from (spins past a write in progress: a few stores). */
static uint32_t read_begin(const ls_ctlpage_t *p, size_t seq_off)
{
    for (;;) {
        uint32_t s = __atomic_load_n(u32_at(p, seq_off), __ATOMIC_ACQUIRE);
        if ((s & 1u) == 0) return s;
        sched_yield();
    }
}

static bool read_again(const ls_ctlpage_t *p, size_t seq_off, uint32_t s)
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return __atomic_load_n(u32_at(p, seq_off), __ATOMIC_RELAXED) != s;
}

static int wait_seq(const ls_ctlpage_t *p, size_t seq_off, uint32_t seen, uint64_t timeout_ns)
{
    uint32_t *word = u32_at(p, seq_off), *sleepers = u32_at(p, seq_off + 4);
    __atomic_fetch_add(sleepers, 1, __ATOMIC_SEQ_CST);
    int rc = 0;
    if (__atomic_load_n(word, __ATOMIC_SEQ_CST) == seen) {
        struct timespec ts = {.tv_sec = (time_t) (timeout_ns / 1000000000u),
                              .tv_nsec = (long) (timeout_ns % 1000000000u)};
        if (syscall(SYS_futex, word, FUTEX_WAIT, seen, &ts, NULL, 0) != 0 && errno == ETIMEDOUT)
            rc = LS_ETIMEDOUT;
    }
    __atomic_fetch_sub(sleepers, 1, __ATOMIC_SEQ_CST);
    return rc;
}

/* Moves the sequence on by two (its parity kept, the fields untouched) and wakes the sleepers:
 * one about to sleep sees the new value and does not. */
static void wake_seq(const ls_ctlpage_t *p, size_t seq_off)
{
    __atomic_fetch_add(u32_at(p, seq_off), 2, __ATOMIC_SEQ_CST);
    futex_wake(u32_at(p, seq_off));
}

void ls_ctlpage_publish_durable(ls_ctlpage_t *p, const ls_ctl_durable_t *d)
{
    write_begin(p, OFF_D_SEQ);
    st64(p, OFF_D_GEN, d->generation);
    st64(p, OFF_D_OFF, d->offset);
    st64(p, OFF_D_LSN, d->lsn);
    st64(p, OFF_D_TIME, d->time_ns);
    st32(p, OFF_D_EPOCH, d->epoch);
    st32(p, OFF_D_PID, d->pid);
    write_end(p, OFF_D_SEQ, 1);
}

uint32_t ls_ctlpage_read_durable(const ls_ctlpage_t *p, ls_ctl_durable_t *out)
{
    uint32_t s;
    do {
        s = read_begin(p, OFF_D_SEQ);
        out->generation = ld64(p, OFF_D_GEN);
        out->offset = ld64(p, OFF_D_OFF);
        out->lsn = ld64(p, OFF_D_LSN);
        out->time_ns = ld64(p, OFF_D_TIME);
        out->epoch = ld32(p, OFF_D_EPOCH);
        out->pid = ld32(p, OFF_D_PID);
    } while (read_again(p, OFF_D_SEQ, s));
    return s;
}

int ls_ctlpage_wait_durable(const ls_ctlpage_t *p, uint32_t seen, uint64_t timeout_ns)
{
    return wait_seq(p, OFF_D_SEQ, seen, timeout_ns);
}

void ls_ctlpage_wake_durable(const ls_ctlpage_t *p)
{
    wake_seq(p, OFF_D_SEQ);
}

/* ---- the doorbell (ctlpage.h) ---------------------------------------------------------------- */

int ls_ctlpage_bell_open(const char *dbdir)
{
    char path[LS__CTL_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%.4000s/doorbell", dbdir);
    if (mkfifo(path, 0600) != 0 && errno != EEXIST) return -1;
    int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC); /* read-write: never blocks, no EPIPE */
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode))) {
        close(fd); /* something else took the name: no doorbell */
        fd = -1;
    }
    return fd;
}

void ls_ctlpage_set_bell(ls_ctlpage_t *p, uint32_t pid)
{
    __atomic_store_n(u32_at(p, OFF_D_BELL), pid, __ATOMIC_SEQ_CST);
}

uint32_t ls_ctlpage_bell(const ls_ctlpage_t *p)
{
    return __atomic_load_n(u32_at(p, OFF_D_BELL), __ATOMIC_SEQ_CST);
}

void ls_ctlpage_arm_bell(ls_ctlpage_t *p, bool armed)
{
    __atomic_store_n(u32_at(p, OFF_D_ARMED), armed ? 1u : 0u, __ATOMIC_SEQ_CST);
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* before the caller's read of the position */
}

bool ls_ctlpage_take_bell(ls_ctlpage_t *p)
{
    uint32_t *w = u32_at(p, OFF_D_ARMED);
    return __atomic_load_n(w, __ATOMIC_SEQ_CST) != 0 && __atomic_exchange_n(w, 0, __ATOMIC_SEQ_CST);
}

void ls_ctlpage_bell_ring(int fd)
{
    static const char one = 1;
    ssize_t n = write(fd, &one, 1); /* EAGAIN: the pipe is full, the daemon has plenty to read */
    (void) n;
}

bool ls_ctlpage_bell_drain(int fd)
{
    char buf[256];
    bool any = false;
    ssize_t n;
    do { /* a short read emptied it: no second read to see EAGAIN */
        n = read(fd, buf, sizeof(buf));
        any |= n > 0;
    } while (n == (ssize_t) sizeof(buf));
    return any;
}

static void publish_copies(ls_ctlpage_t *p, const ls_ctl_copy_t *c, uint32_t n, bool wake)
{
    n = LS_MIN(n, (uint32_t) LS_CTL_COPIES_MAX);
    write_begin(p, OFF_C_SEQ);
    st32(p, OFF_C_N, n);
    for (uint32_t i = 0; i < n; i++) {
        size_t o = OFF_C_SLOTS + (size_t) i * C_SLOT;
        st64(p, o, c[i].durable_lsn);
        st64(p, o + 8, c[i].applied_lsn);
        st64(p, o + 16, c[i].time_ns);
        st32(p, o + 24, c[i].flags);
        st32(p, o + 28, c[i].id);
    }
    if (wake)
        write_end(p, OFF_C_SEQ, 1);
    else
        __atomic_fetch_add(u32_at(p, OFF_C_SEQ), 1, __ATOMIC_SEQ_CST);
}

void ls_ctlpage_publish_copies(ls_ctlpage_t *p, const ls_ctl_copy_t *c, uint32_t n)
{
    publish_copies(p, c, n, true);
}

void ls_ctlpage_publish_copies_quiet(ls_ctlpage_t *p, const ls_ctl_copy_t *c, uint32_t n)
{
    publish_copies(p, c, n, false);
}

uint32_t ls_ctlpage_read_copies(const ls_ctlpage_t *p, ls_ctl_copy_t *out, uint32_t *n)
{
    uint32_t s;
    do {
        s = read_begin(p, OFF_C_SEQ);
        *n = LS_MIN(ld32(p, OFF_C_N), (uint32_t) LS_CTL_COPIES_MAX); /* shared bytes: bounded */
        for (uint32_t i = 0; i < *n; i++) {
            size_t o = OFF_C_SLOTS + (size_t) i * C_SLOT;
            out[i].durable_lsn = ld64(p, o);
            out[i].applied_lsn = ld64(p, o + 8);
            out[i].time_ns = ld64(p, o + 16);
            out[i].flags = ld32(p, o + 24);
            out[i].id = ld32(p, o + 28);
        }
    } while (read_again(p, OFF_C_SEQ, s));
    return s;
}

int ls_ctlpage_wait_copies(const ls_ctlpage_t *p, uint32_t seen, uint64_t timeout_ns)
{
    return wait_seq(p, OFF_C_SEQ, seen, timeout_ns);
}

void ls_ctlpage_wake_copies(const ls_ctlpage_t *p)
{
    wake_seq(p, OFF_C_SEQ);
}

void ls_ctlpage_publish_sync(ls_ctlpage_t *p, const ls_ctl_sync_t *sy)
{
    uint64_t words[S_REASON_SIZE / 8] = {0};
    size_t n = strnlen(sy->reason, LS_CTL_REASON_MAX);
    memcpy(words, sy->reason, n);
    write_begin(p, OFF_S_SEQ);
    st32(p, OFF_S_STATE, sy->state);
    st32(p, OFF_S_STATE + 4, sy->level);
    st32(p, OFF_S_STATE + 8, sy->copies);
    st32(p, OFF_S_STATE + 12, sy->switches);
    st64(p, OFF_S_SINCE, sy->since_ns);
    st32(p, OFF_S_RLEN, (uint32_t) n);
    for (size_t i = 0; i < S_REASON_SIZE / 8; i++)
        st64(p, OFF_S_REASON + i * 8, words[i]);
    write_end(p, OFF_S_SEQ, 1);
}

void ls_ctlpage_read_sync(const ls_ctlpage_t *p, ls_ctl_sync_t *out)
{
    uint64_t words[S_REASON_SIZE / 8];
    uint32_t s, n;
    do {
        s = read_begin(p, OFF_S_SEQ);
        out->state = ld32(p, OFF_S_STATE);
        out->level = ld32(p, OFF_S_STATE + 4);
        out->copies = ld32(p, OFF_S_STATE + 8);
        out->switches = ld32(p, OFF_S_STATE + 12);
        out->since_ns = ld64(p, OFF_S_SINCE);
        n = LS_MIN(ld32(p, OFF_S_RLEN), (uint32_t) LS_CTL_REASON_MAX);
        for (size_t i = 0; i < S_REASON_SIZE / 8; i++)
            words[i] = ld64(p, OFF_S_REASON + i * 8);
    } while (read_again(p, OFF_S_SEQ, s));
    memcpy(out->reason, words, n);
    out->reason[n] = '\0';
}
