/*
 * The replayer thread: applies queued generations from logs/ to the copy store in order.
 *
 * A store transaction applies up to batch_generations whole generations (about batch_bytes of
 * log, at least one) whose close time + replay lag has passed, a chunk at a time: up to
 * CHUNK_GENS generations are read and checked against what the inspection saw (replay_read.c:
 * the seal and the chain; no record checksum and no SHA-256 is computed again, docs/COPY.md
 * "Which check runs where"), sorted by key and applied, then, while more are ready, the next
 * chunk into the same buffer and the same transaction (replay_apply.c), which commits with the
 * meta record (epoch, generation, LSN, txid, digest, applied_generations + n). A file damaged on
 * disk after inspection is deleted with every later one, and asked again; what was verified
 * before it is committed. When nothing closed is ready, the shadow of the open generation is
 * applied early (shadow_apply.c).
 * A lazy copy replays nothing while a backlog arrives (arrival_hold: ship first, replay after).
 * The store is checkpointed at most every checkpoint_ms, and when idle (nothing to apply and the
 * receiver quiet for IDLE_CKPT_NS); replayed-synced(N) follows, then log removal.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "copy/replay_int.h"

#define IDLE_WAIT_NS       1000000000ull /* re-evaluate at least this often */
#define ERROR_WAIT_NS      1000000000ull /* after a transient store error (ENOSPC) */
#define HOLD_MAX_NS        250000000ull  /* a batch waits at most this long for more generations */
#define IDLE_CKPT_NS       100000000ull /* idle: checkpoint once the receiver was quiet this long */
#define STREAM_QUIET_NS    100000000ull /* block mode: the shadow streams while it reports */
#define STREAM_HOLD_NS     1000000000ull  /* ... a lazy copy's batch waits this long meanwhile */
#define CAP_SYS_NICE_BIT   23             /* linux/capability.h's CAP_SYS_NICE */
#define ARRIVAL_HOLD_NS    1000000000ull  /* a backlog's arrival holds replay at most this long */
#define ARRIVAL_HOLD_BYTES (256ull << 20) /* ... and while less than this is queued */

/* Whether this thread may return to its nice value after raising it: an unprivileged thread may
 * lower its nice value only as far as RLIMIT_NICE allows (can_nice in the kernel), otherwise it
 * needs CAP_SYS_NICE. Without either the replayer never yields (it would stay at nice 19 for
 * good, behind any other work on the machine). */
static bool may_yield(int nice)
{
    struct rlimit rl;
    if (nice >= YIELD_NICE) return false; /* already as low: nothing to yield */
    if (getrlimit(RLIMIT_NICE, &rl) == 0 &&
        (rl.rlim_cur == RLIM_INFINITY || (long long) rl.rlim_cur >= 20 - nice))
        return true;
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long eff = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "CapEff: %llx", &eff) == 1) break;
    if (f) fclose(f);
    return (eff >> CAP_SYS_NICE_BIT) & 1;
}

void ls__copy_replay_yield(batch_t *b, bool allowed)
{
    ls_copy_t *c = b->c;
    bool want = false;
    if (allowed && b->may_yield) {
        uint64_t mono = ls_mono_ns();
        uint64_t quiet = mono - __atomic_load_n(&c->rx_activity_ns, __ATOMIC_RELAXED);
        bool busy = __atomic_load_n(&c->rx_open, __ATOMIC_RELAXED) || quiet < RX_QUIET_NS;
        want = busy && mono - b->e[0].queued_ns < YIELD_MAX_NS;
    }
    if (want == b->yielding) return;
    int rc = setpriority(PRIO_PROCESS, (id_t) syscall(SYS_gettid), want ? YIELD_NICE : b->nice) == 0
                 ? 0
                 : errno;
    if (rc == 0) {
        b->yielding = want;
        LS__COPY_COUNT(c, replay_yields, want);
    } else if (!want) {
        b->may_yield = false; /* refused on the way back (may_yield said it would not be) */
        LS_LOGW("copy", "%s: the replayer cannot return to nice %d: %s", c->dir, b->nice,
                strerror(rc));
    } else {
        b->may_yield = false;
    }
}

/* Whether a batch that is not full waits while the open generation streams (mu held): a lazy
 * copy in block mode (no commit waits for its applied position, the shadow's reports came less
 * than STREAM_QUIET_NS ago) holds its closed generations for up to STREAM_HOLD_NS after the
 * first was queued, so that one store commit applies them all. Each commit rewrites the pages its
 * transaction dirtied, and with keys all over a tree of a few thousand leaves one generation
 * dirties nearly as many as several: held, the store writes a fraction of the pages and syncs
 * once a hold instead of once a generation, and its long `fdatasync` (5-19 ms at 8 committers)
 * lands beside the shadow's syncs that `remote_durable` commits wait for once a hold, not at
 * every roll. The generations are durable in logs/ meanwhile; only the store is later. */
static bool stream_hold(const ls_copy_t *c, uint64_t mono, uint64_t held, uint64_t *wait_ns)
{
    if (!c->sh.lazy || !c->sh.generation || c->o.replay_lag_ms) return false;
    uint64_t quiet = mono - c->sh.report_ns;
    if (quiet >= STREAM_QUIET_NS || held >= STREAM_HOLD_NS) return false;
    *wait_ns = LS_MIN(STREAM_QUIET_NS - quiet, STREAM_HOLD_NS - held);
    return true;
}

/* Ship first, replay after (mu held): whether a lazy copy's replayer waits while a backlog
 * arrives, as a copy queue is served before the replay queue. A backlog arrives while a .part is
 * open, or generations are queued (or received, not yet durable in logs/) behind the head and the
 * receiver's last call was less than RX_QUIET_NS ago; a lone generation of a steady stream, with
 * no .part open behind it, is replayed at once. Nothing of the replay runs meanwhile (no reading,
 * checking, sorting, applying, commit or checkpoint): the receiver, the daemon's loop and the
 * active have the CPUs and the disk, as with replay held back. Bounded: once the head has been
 * queued ARRIVAL_HOLD_NS, or ARRIVAL_HOLD_BYTES are queued, the replayer runs as before (yielding
 * to the receiver), so under a continuous stream the replay lags by about a second at most more
 * than without the hold. Never while a commit waits for the applied position (the copy is eager,
 * or the source did not say: sh.lazy clear) nor with a replay lag. The generations are durable in
 * logs/ meanwhile; only the store is later. */
static bool arrival_hold(const ls_copy_t *c, uint64_t mono, uint64_t held, uint64_t *wait_ns)
{
    if (!c->sh.lazy || c->o.replay_lag_ms || held >= ARRIVAL_HOLD_NS ||
        c->q_bytes >= ARRIVAL_HOLD_BYTES)
        return false;
    bool open = __atomic_load_n(&c->rx_open, __ATOMIC_RELAXED);
    uint64_t act = __atomic_load_n(&c->rx_activity_ns, __ATOMIC_RELAXED);
    uint64_t quiet = mono > act ? mono - act : 0;
    if (!open && (quiet >= RX_QUIET_NS || (c->qlen < 2 && !c->unsynced_gen))) return false;
    *wait_ns = LS_MIN(open ? RX_QUIET_NS : RX_QUIET_NS - quiet, ARRIVAL_HOLD_NS - held);
    return true;
}

/* Entries at the head of the queue ready to replay (mu held); *wait_ns when the head waits for
 * its replay lag, or when the batch is held for more. A batch is whatever is ready, up to
 * batch_generations: the queue chooses its size, so a backlog is applied in growing batches
 * (each commit rewrites the pages it touched: with keys all over the tree, one generation per
 * commit writes nearly as much as sixteen) and a short queue is applied at once, leaving little
 * to apply after the last generation arrives. The replayer yields to the receiver while that is
 * busy (ls__copy_replay_yield). Where it cannot yield (no RLIMIT_NICE or CAP_SYS_NICE), a batch
 * that is not full is instead held while the receiver is busy (a generation arriving, or one
 * ended less than RX_QUIET_NS ago), for at most HOLD_MAX_NS after its first generation was
 * queued, so that its commits and checkpoints keep off the disk and the CPU while receives run.
 * In block mode a lazy copy holds a batch that is not full while the shadow streams (stream_hold),
 * and any lazy copy holds all of its queue while a backlog arrives (arrival_hold).
 * *holding says the batch is held (not idle: no checkpoint now). */
static size_t ready(ls_copy_t *c, bool may_yield, uint64_t *wait_ns, bool *holding)
{
    *wait_ns = IDLE_WAIT_NS;
    *holding = false;
    if (c->paused || c->state == LS_COPY_FAILED || !c->store) return 0;
    uint64_t now = ls_now_ns(), lag = c->o.replay_lag_ms * 1000000ull, bytes = 0;
    uint64_t max_bytes = LS_MIN(c->o.batch_bytes, CHUNK_BYTES);
    size_t n = 0, max = LS_MIN((size_t) c->o.batch_generations, (size_t) CHUNK_GENS);
    bool full = false, bound = false; /* bound: the batch's bytes are reached */
    while (n < c->qlen && n < max) {
        const ls__copy_entry_t *e = &c->q[n];
        if (c->unsynced_gen && e->generation >= c->unsynced_gen) {
            full = true; /* not durable in logs/ yet: the receiver's flush wakes us */
            break;
        }
        if (e->close_ns + lag > now) {
            if (n == 0) *wait_ns = LS_MIN(e->close_ns + lag - now, IDLE_WAIT_NS);
            full = true; /* the rest waits for its lag: nothing to wait for here */
            break;
        }
        if (n > 0 && bytes + e->size > max_bytes) {
            full = bound = true;
            break;
        }
        bytes += e->size;
        n++;
    }
    if (n == 0) return 0;
    uint64_t mono = ls_mono_ns(), held = mono - c->q[0].queued_ns;
    if ((!bound && n < max && stream_hold(c, mono, held, wait_ns)) ||
        arrival_hold(c, mono, held, wait_ns)) {
        *holding = true;
        return 0;
    }
    if (full || n == max || may_yield) return n;
    uint64_t quiet = mono - __atomic_load_n(&c->rx_activity_ns, __ATOMIC_RELAXED);
    bool busy = __atomic_load_n(&c->rx_open, __ATOMIC_RELAXED) || quiet < RX_QUIET_NS;
    if (!busy || held >= HOLD_MAX_NS) return n;
    *holding = true;
    *wait_ns = LS_MIN(RX_QUIET_NS, HOLD_MAX_NS - held);
    return 0;
}

size_t ls__copy_replay_next(ls_copy_t *c, batch_t *b)
{
    size_t txn_max = LS_MIN((size_t) c->o.batch_generations, (size_t) LS__COPY_REPLAY_MAX);
    uint64_t now = ls_now_ns(), lag = c->o.replay_lag_ms * 1000000ull, bytes = 0;
    uint64_t max_bytes =
        LS_MIN(c->o.batch_bytes - LS_MIN(c->o.batch_bytes, b->done_bytes), CHUNK_BYTES);
    size_t n = 0;
    pthread_mutex_lock(&c->mu);
    uint64_t mono = ls_mono_ns(), wait;
    /* a transaction begun before the backlog was seen arriving commits what it has and waits */
    bool arriving = b->done && c->qlen && arrival_hold(c, mono, mono - c->q[0].queued_ns, &wait);
    if (!c->stop && !c->paused && c->state != LS_COPY_FAILED && c->store && !arriving) {
        while (b->done + n < c->qlen && b->done + n < txn_max && n < CHUNK_GENS) {
            const ls__copy_entry_t *e = &c->q[b->done + n];
            if ((c->unsynced_gen && e->generation >= c->unsynced_gen) || e->close_ns + lag > now ||
                bytes + e->size > max_bytes)
                break; /* not durable yet, waiting for its lag, or beyond the bounds */
            bytes += e->size;
            b->e[n++] = *e;
        }
    }
    pthread_mutex_unlock(&c->mu);
    b->n = n;
    return n;
}

/* A file of the batch failed verification: roll the held chain back to it and ask again. */
static void damaged(ls_copy_t *c, uint64_t gen, int rc, const char *msg)
{
    char why[700];
    ls_msgf(why, sizeof(why),
            "generation %llu in logs/ is damaged before replay (deleted with "
            "every later one): %s",
            (unsigned long long) gen, msg);
    pthread_mutex_lock(&c->mu);
    bool queued = c->qlen && c->q[0].generation <= gen && gen <= c->held_gen;
    if (queued) ls__copy_rollback(c, gen);
    bool failed = queued && ls__copy_count_failure(c, gen, why);
    char reason[512];
    ls_msgf(reason, sizeof(reason), "%s", c->reason);
    pthread_mutex_unlock(&c->mu);
    if (!queued) return;
    LS_LOGW("copy", "%s: %s", c->dir, why);
    ls__copy_emit(c, LS_COPY_EV_ASK_AGAIN, gen, 0, rc, why);
    if (failed) ls__copy_emit(c, LS_COPY_EV_STATE, 0, 0, LS_COPY_FAILED, reason);
}

/* Verifies and applies the n ready entries at the head of the queue, and the generations that
 * are ready after them in the same transaction (mu not held). Returns a store error (the
 * replayer then waits before trying again) or 0. */
static int replay_batch(ls_copy_t *c, batch_t *b, ls_store_meta_t *m)
{
    b->dmg_rc = 0;
    b->done = 0;
    ls__copy_replay_yield(b, true);
    int vrc = ls__copy_replay_verify(c, b, m, b->dmg_msg, sizeof(b->dmg_msg));
    ls__copy_replay_yield(b, false); /* ls__copy_shadow_check may take mu */
    if (vrc) {
        b->dmg_rc = vrc;
        b->dmg_gen = b->e[b->ok].generation;
    }
    int rc = 0;
    if (b->ok && ls__copy_shadow_check(c, &b->e[0], b->buf[0], b->len[0], m) != 0)
        b->ok = b->dmg_rc = 0; /* the store applied other bytes early: FAILED, nothing applied */
    if (b->ok) {
        ls_store_meta_t nm = *m;
        rc = ls__copy_replay_apply(c, b, &nm); /* back at its own nice value */
        if (rc == 0 && b->done) {
            pthread_mutex_lock(&c->mu);
            c->meta = nm;
            for (size_t i = 0; i < b->done; i++)
                c->q_bytes -= c->q[i].size;
            memmove(c->q, c->q + b->done, (c->qlen - b->done) * sizeof(*c->q));
            c->qlen -= b->done;
            c->replay_txns++;
            bool healthy =
                c->state == LS_COPY_DISK_FULL && ls__copy_set_state(c, LS_COPY_HEALTHY, "");
            pthread_mutex_unlock(&c->mu);
            c->dirty = true;
            if (healthy) ls__copy_emit(c, LS_COPY_EV_STATE, 0, 0, LS_COPY_HEALTHY, "");
            ls__copy_emit(c, LS_COPY_EV_REPLAYED, nm.digest_generation, nm.lsn, 0, "");
        }
    }
    if (b->dmg_rc && rc == 0) damaged(c, b->dmg_gen, b->dmg_rc, b->dmg_msg);
    return rc;
}

int ls__copy_checkpoint(ls_copy_t *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t gen = c->meta.digest_generation;
    pthread_mutex_unlock(&c->mu);
    uint64_t lsn = 0;
    int rc = ls_store_checkpoint(c->store, &lsn);
    c->last_ckpt = ls_mono_ns();
    if (rc) {
        LS_LOGE("copy", "%s: store checkpoint failed: %s", c->dir, ls_strerror(rc));
        return rc;
    }
    c->dirty = false;
    pthread_mutex_lock(&c->mu);
    c->synced_gen = gen;
    c->checkpoints++;
    pthread_mutex_unlock(&c->mu);
    ls__copy_emit(c, LS_COPY_EV_REPLAYED_SYNCED, gen, lsn, 0, "");
    ls__copy_remove_logs(c, gen);
    return 0;
}

/* Frees the batch's buffers (idle: a backlog that was caught up leaves no heap behind). */
static void release_batch(batch_t *b)
{
    ls__copy_replay_arena_free(b);
    free(b->ops);
    free(b->keys);
    b->ops = NULL;
    b->keys = NULL;
    b->ops_cap = 0;
}

static void wait_ns(ls_copy_t *c, uint64_t ns)
{
    ls_cond_wait_until(&c->cv, &c->mu, ls_mono_ns() + ns);
}

/* Grows this thread's malloc arena to HEAP_RESERVE bytes in HEAP_STEP steps and gives the pages
 * back. LMDB mallocs each page a write transaction dirties (4 KiB, kept for reuse after it), and
 * glibc extends a thread's arena for each with its own mprotect() (no top_pad outside the main
 * arena): ~8,000 calls during a fresh daemon's first large transaction (strace -c of copybench
 * --serial, 164 generations). The heap's range, once made writable, stays so after the pages are
 * returned (madvise at the trim), so those mallocs then only fault their pages in: one mprotect
 * per HEAP_STEP instead of one per page. Only address space remains; RSS is unchanged. */
#define HEAP_RESERVE (32u << 20)
#define HEAP_STEP    (64u << 10) /* below glibc's mmap threshold: served from the arena */
static void heap_reserve(void)
{
    enum { N = HEAP_RESERVE / HEAP_STEP };
    void *p[N]; /* 4 KiB of the stack */
    int n = 0;
    while (n < N && (p[n] = malloc(HEAP_STEP - 64)))
        n++;
    for (int i = 0; i < n; i++) /* in address order: one free chunk merging into the top */
        free(p[i]);
}

/* The replayer's batch: its nice value and whether it may yield, the seal and the walk. */
static batch_t *batch_new(ls_copy_t *c)
{
    batch_t *b = calloc(1, sizeof(*b));
    LS_CHECK(b != NULL);
    b->c = c;
    errno = 0;
    b->nice = getpriority(PRIO_PROCESS, (id_t) syscall(SYS_gettid));
    b->may_yield = errno == 0 && may_yield(b->nice);
    if (!b->may_yield)
        LS_LOGI("copy",
                "%s: the replayer does not yield to the receiver (no RLIMIT_NICE or "
                "CAP_SYS_NICE to return from nice 19): batches wait instead",
                c->dir);
    b->seal = ls_seal_new();
    b->st = ls_gen_stream_new();
    LS_CHECK(b->seal != NULL && b->st != NULL);
    return b;
}

/* Nothing ready (mu held): checkpoint now if the receiver has been quiet IDLE_CKPT_NS (or the
 * interval is over), not between the generations of a steady stream, whose receives would wait
 * for the store's syncs; otherwise wait up to wait ns. */
static void idle(ls_copy_t *c, batch_t *b, uint64_t wait, bool holding)
{
    uint64_t mono = ls_mono_ns(), ckpt_ns = c->o.checkpoint_ms * 1000000ull;
    uint64_t quiet = mono - LS_MAX(__atomic_load_n(&c->rx_activity_ns, __ATOMIC_RELAXED),
                                   c->sh.report_ns); /* block mode: shadow reports */
    uint64_t since = mono - c->last_ckpt;
    bool ckpt = c->dirty && !holding && (quiet >= IDLE_CKPT_NS || since >= ckpt_ns);
    if (c->dirty && !holding && !ckpt)
        wait = LS_MIN(wait, LS_MIN(IDLE_CKPT_NS - quiet, ckpt_ns - since));
    if (ckpt) {
        pthread_mutex_unlock(&c->mu);
        ls__copy_checkpoint(c); /* idle: sync now */
        release_batch(b);       /* and give the batch's memory back */
        pthread_mutex_lock(&c->mu);
        return; /* look again: a shadow report or a generation came meanwhile, its wake-up lost
                   while mu was released (remote_applied waited ~1 s) */
    }
    if (!c->stop) wait_ns(c, wait);
}

/* A checkpoint once checkpoint_ms passed since the last (mu not held). */
static void checkpoint_due(ls_copy_t *c)
{
    if (c->dirty && ls_mono_ns() - c->last_ckpt >= c->o.checkpoint_ms * 1000000ull)
        ls__copy_checkpoint(c);
}

void *ls__copy_replayer(void *arg)
{
    ls_copy_t *c = arg;
    heap_reserve();
    batch_t *b = batch_new(c);
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        uint64_t wait;
        bool holding;
        size_t n = ready(c, b->may_yield, &wait, &holding);
        if (n == 0 && ls__copy_shadow_due(c, &wait)) { /* block mode: the open generation, early */
            pthread_mutex_unlock(&c->mu);
            int rc = ls__copy_shadow_apply(c);
            checkpoint_due(c); /* reports that never pause still get checkpoints */
            pthread_mutex_lock(&c->mu);
            if (rc && !c->stop) wait_ns(c, ERROR_WAIT_NS);
            continue;
        }
        if (n == 0) {
            idle(c, b, wait, holding);
            continue;
        }
        b->n = n;
        memcpy(b->e, c->q, n * sizeof(*b->e));
        ls_store_meta_t m = c->meta;
        pthread_mutex_unlock(&c->mu);
        int rc = replay_batch(c, b, &m);
        checkpoint_due(c);
        pthread_mutex_lock(&c->mu);
        if (rc && !c->stop) wait_ns(c, ERROR_WAIT_NS);
    }
    pthread_mutex_unlock(&c->mu);
    if (c->dirty) ls__copy_checkpoint(c);
    ls_seal_free(b->seal);
    ls_gen_stream_free(b->st);
    release_batch(b);
    free(b);
    return NULL;
}
