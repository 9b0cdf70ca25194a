/* ship: block mode (see ship.h, "block mode", and docs/BLOCKMODE.md). The machine decides which
 * mode the copy is in and which bytes of the open generation go next; the caller reads them
 * (block_read) and the link sends the frames. Nothing here does I/O. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"
#include "ship/ship_int.h"

const char *ls_ship_mode_name(ls_ship_mode_t mode)
{
    return mode == LS_SHIP_MODE_BLOCK ? "block" : "file";
}

ls_ship_mode_t ls_ship_mode(const ls_ship_t *m)
{
    return m->blk.mode;
}

/* ---- the published positions and the lag ---------------------------------------------------- */
static void points_clear(ship_block_t *b)
{
    b->pts_head = b->pts_n = 0;
}

static void point_push(ship_block_t *b, const ls_ship_durable_t *d)
{
    if (b->pts_n == SHIP_POINTS) { /* the oldest goes unmeasured */
        b->pts_head = (b->pts_head + 1) % SHIP_POINTS;
        b->pts_n--;
    }
    ship_point_t *p = &b->pts[(b->pts_head + b->pts_n) % SHIP_POINTS];
    *p = (ship_point_t){d->generation, d->offset, d->lsn, d->time_ns};
    b->pts_n++;
}

/* The points the target now holds (generation gen up to offset, or all of it: UINT64_MAX) are
 * measured and dropped: lag = arrival of the acknowledgement - the writer's publish time. */
static void points_acked(ship_block_t *b, uint64_t gen, uint64_t offset, uint64_t now)
{
    while (b->pts_n) {
        ship_point_t *p = &b->pts[b->pts_head];
        if (p->gen > gen || (p->gen == gen && p->offset > offset)) break;
        if (p->time_ns && now >= p->time_ns) {
            b->samples[b->nsamples++ % SHIP_SAMPLES] = now - p->time_ns;
            b->hist[ls_status_lag_bucket(now - p->time_ns)]++;
            b->sum_ns += now - p->time_ns;
        }
        b->pts_head = (b->pts_head + 1) % SHIP_POINTS;
        b->pts_n--;
    }
}

/* The durable LSN of the stream at byte end: the last published position within it. */
static uint64_t lsn_at(const ship_block_t *b, uint64_t end)
{
    uint64_t lsn = b->lsn;
    for (unsigned i = 0; i < b->pts_n; i++) {
        const ship_point_t *p = &b->pts[(b->pts_head + i) % SHIP_POINTS];
        if (p->gen == b->gen && p->offset <= end && p->lsn > lsn) lsn = p->lsn;
    }
    return lsn;
}

/* ---- the mode ------------------------------------------------------------------------------ */
static void set_mode(ls_ship_t *m, ls_ship_mode_t mode, uint64_t now, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_mode(ls_ship_t *m, ls_ship_mode_t mode, uint64_t now, const char *fmt, ...)
{
    ship_block_t *b = &m->blk;
    if (b->mode == mode) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->reason, sizeof(b->reason), fmt, ap);
    va_end(ap);
    b->mode = mode;
    b->switches++;
    b->since_ns = now;
    points_clear(b); /* lags are measured in block mode only */
    if (mode == LS_SHIP_MODE_FILE) b->gen = b->off = 0;
    m->o.action_cb(
        m->o.ctx, &(ls_ship_action_t){.kind = LS_SHIP_ACT_MODE, .mode = mode, .reason = b->reason});
}

/* Closed generations not durable on the target (what the target's RESUME or DURABLE says). */
static uint64_t queue(ls_ship_t *m, uint64_t *last_closed)
{
    uint64_t gen = 0, close_ns = 0;
    char err[LS_SOURCE_ERRLEN];
    if (ls_source_last_closed(m->src, &gen, &close_ns, err, sizeof(err)) != 0) gen = 0;
    *last_closed = gen;
    uint64_t held = LS_MAX(m->durable.gen, m->blk.held);
    return gen > held ? gen - held : 0;
}

void ls__ship_block_check(ls_ship_t *m, uint64_t now)
{
    ship_block_t *b = &m->blk;
    if (!m->o.block_read) return; /* file mode only, for good */
    if (now)
        b->now = now;
    else
        now = b->now; /* a state change: the time of the last input */
    if (!m->connected || !b->allowed || m->state != LS_SHIP_HEALTHY || !m->src || !m->reader) {
        set_mode(m, LS_SHIP_MODE_FILE, now, "%s",
                 !m->connected ? "not connected"
                 : !b->allowed ? "the connection has no block mode"
                               : m->reason);
        return;
    }
    uint64_t last = 0, q = queue(m, &last);
    /* The older of two closed generations has had its GEN_END sent and the newer is the one
     * streamed after it (ls__ship_block_chunk): the target is finishing the first in order, not
     * behind; the second's tail follows. */
    if (q == 2 && b->next && b->mode == LS_SHIP_MODE_BLOCK && !m->restart_from && m->next == last &&
        b->gen == last)
        q = 1;
    if (b->mode == LS_SHIP_MODE_FILE && q == 0)
        set_mode(m, LS_SHIP_MODE_BLOCK, now, "caught up: %s holds every closed generation (%llu)",
                 m->o.target, (unsigned long long) last);
    else if (b->mode == LS_SHIP_MODE_BLOCK && q >= 2)
        set_mode(m, LS_SHIP_MODE_FILE, now,
                 "fell behind: %llu closed generations not durable on %s (up to %llu)",
                 (unsigned long long) q, m->o.target, (unsigned long long) last);
}

void ls_ship_block_allow(ls_ship_t *m, bool allowed, uint64_t now)
{
    m->blk.allowed = allowed && m->o.block_read;
    ls__ship_block_check(m, now);
}

void ls_ship_block_tail_allow(ls_ship_t *m, bool allowed)
{
    m->blk.tail = allowed && m->blk.allowed;
}

void ls_ship_block_next_allow(ls_ship_t *m, bool allowed)
{
    m->blk.next = allowed && m->blk.allowed;
}

void ls_ship_block_apply_allow(ls_ship_t *m, bool allowed)
{
    m->blk.apply = allowed && m->blk.allowed;
    if (m->blk.apply && m->blk.apply_wanted != m->cs_sent_apply) ls__ship_send_state(m, true);
}

void ls_ship_block_apply_wanted(ls_ship_t *m, bool wanted)
{
    m->blk.apply_wanted = wanted;
    if (m->blk.apply && wanted != m->cs_sent_apply) ls__ship_send_state(m, true);
}

void ls_ship_block_durable(ls_ship_t *m, const ls_ship_durable_t *d, uint64_t now)
{
    ship_block_t *b = &m->blk;
    if (b->have_dur && d->generation == b->dur.generation && d->epoch == b->dur.epoch &&
        d->offset <= b->dur.offset)
        return; /* nothing new (a wake-up, or the same position read twice) */
    b->dur = *d;
    b->have_dur = true;
    if (d->generation == b->gen && d->epoch == b->epoch) b->pub = LS_MAX(b->pub, d->offset);
    ls__ship_block_check(m, now);
    if (b->mode == LS_SHIP_MODE_BLOCK && d->offset > 0) point_push(b, d);
}

void ls__ship_block_forget(ls_ship_t *m)
{
    ship_block_t *b = &m->blk;
    b->allowed = b->tail = b->apply = b->ack_conn = false;
    b->no_tail_gen = 0;
    b->gen = b->off = 0; /* a new connection streams the open generation from its start */
    b->held = 0;
    b->stalled_gen = 0;
}

/* ---- the stream ---------------------------------------------------------------------------- */
int64_t ls__ship_block_chunk(ls_ship_t *m, uint64_t max_len, uint64_t now)
{
    ship_block_t *b = &m->blk;
    (void) now;
    if (b->mode != LS_SHIP_MODE_BLOCK || !b->have_dur) return 0;
    const ls_ship_durable_t *d = &b->dur;
    /* The target's shadow is the generation after the last it holds: nothing else is streamed.
     * What was published of it goes out first, also once it rolled and its closed file is on
     * its way (the commits in that last stretch would wait for the whole file otherwise); a new
     * open generation only when no closed one is being sent. The target takes its frames in
     * order, so once GEN_END of the generation before the open one went out on this connection,
     * the open one streams without waiting for its DURABLE: the target holds that generation
     * when it takes these BLOCKs (or refuses them, harmlessly, when it failed it). The roll's
     * hand-off is then the target's work on the closed file alone, not also a round trip. */
    uint64_t want = LS_MAX(m->durable.gen, b->held) + 1;
    bool early = b->next && !m->restart_from && m->next == want + 1; /* GEN_END of want went out */
    bool finishing = (b->gen == want || (early && b->gen == want + 1)) && b->off < b->pub &&
                     (!m->cur || m->cur->generation == b->gen);
    if (!finishing) {
        if (m->cur || d->generation != (early ? want + 1 : want)) return 0;
        if (d->generation != b->gen || d->epoch != b->epoch) {
            b->gen = d->generation;
            b->epoch = d->epoch;
            b->off = 0;
            b->lsn = 0;
            b->pub = d->offset;
        }
    }
    if (b->stalled_gen == b->gen || b->pub <= b->off) return 0;
    uint64_t len = LS_MIN(LS_MIN(max_len, m->credit), b->pub - b->off);
    len = LS_MIN(len, LS_FRAME_CHUNK_MAX);
    if (len == 0) return 0;
    if (!b->buf && !(b->buf = malloc(LS_FRAME_CHUNK_MAX))) return 0;
    int64_t n = m->o.block_read(m->o.ctx, b->epoch, b->gen, b->off, b->buf, (size_t) len);
    if (n <= 0) {
        b->stalled_gen = b->gen; /* rolled (or unreadable): the closed file goes as a file */
        return 0;
    }
    len = LS_MIN((uint64_t) n, len);
    ls_frame_t f = {.type = LS_FRAME_BLOCK};
    memcpy(f.block.dbid, m->dbid, LS_DBID_LEN);
    f.block.epoch = b->epoch;
    f.block.generation = b->gen;
    f.block.offset = b->off;
    f.block.durable_lsn = lsn_at(b, b->off + len);
    f.block.data = b->buf;
    f.block.len = (uint32_t) len;
    int rc = m->o.send_cb(m->o.ctx, &f);
    if (rc) return rc;
    m->credit -= len;
    b->off += len;
    b->lsn = f.block.durable_lsn;
    b->bytes += len;
    return (int64_t) len;
}

/* ---- the closed generation's tail ------------------------------------------------------------ */
/* What this connection put into the target's shadow of g: the BLOCK bytes it sent (they arrive
 * before GEN_TAIL, in order) and what the target acknowledged on it. A shadow that holds less
 * after all (a write failed, the target restarted) makes the target ask again. */
uint64_t ls__ship_block_start(const ls_ship_t *m, const ls_gen_buf_t *g)
{
    const ship_block_t *b = &m->blk;
    if (!b->tail || !b->allowed || g->generation == b->no_tail_gen || g->size < LS_GEN_TRAILER_SIZE)
        return 0;
    uint64_t n = 0;
    if (b->gen == g->generation && b->epoch == g->epoch) n = b->off;
    if (b->ack_conn && b->ack.generation == g->generation && b->ack.epoch == g->epoch)
        n = LS_MAX(n, b->ack.offset);
    return LS_MIN(n, g->size - LS_GEN_TRAILER_SIZE);
}

bool ls__ship_block_finishing(const ls_ship_t *m, const ls_gen_buf_t *g)
{
    const ship_block_t *b = &m->blk;
    return b->tail && b->mode == LS_SHIP_MODE_BLOCK && g->generation != b->no_tail_gen &&
           b->gen == g->generation && b->epoch == g->epoch && b->off < b->pub &&
           b->stalled_gen != b->gen;
}

void ls__ship_block_ack(ls_ship_t *m, const ls_proto_block_ack_t *a, uint64_t now)
{
    ship_block_t *b = &m->blk;
    if (b->ack_ns && (a->generation < b->ack.generation ||
                      (a->generation == b->ack.generation && a->offset < b->ack.offset)))
        return; /* late */
    b->ack = *a;
    b->ack_ns = now;
    b->ack_conn = true;
    points_acked(b, a->generation, a->offset, now);
}

void ls__ship_block_durable_gen(ls_ship_t *m, uint64_t gen, uint64_t now)
{
    points_acked(&m->blk, gen, UINT64_MAX, now); /* the closed file holds them all */
    if (m->blk.stalled_gen && m->blk.stalled_gen <= gen) m->blk.stalled_gen = 0;
}

void ls_ship_copy_lsns(const ls_ship_t *m, uint64_t *durable_lsn, uint64_t *applied_lsn)
{
    const ship_block_t *b = &m->blk;
    uint64_t d = m->replayed.lsn, a = m->replayed.lsn;
    if (b->ack_ns) {
        d = LS_MAX(d, b->ack.durable_lsn);
        a = LS_MAX(a, b->ack.applied_lsn);
    }
    *durable_lsn = d;
    *applied_lsn = a;
}

/* ---- figures ------------------------------------------------------------------------------- */
static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *) x, b = *(const uint64_t *) y;
    return a < b ? -1 : a > b;
}

void ls__ship_block_status(ls_ship_t *m, ls_status_copy_t *c)
{
    ship_block_t *b = &m->blk;
    c->mode = ls_ship_mode_name(b->mode);
    c->mode_block = b->mode == LS_SHIP_MODE_BLOCK;
    c->mode_switches = b->switches;
    snprintf(c->mode_reason, sizeof(c->mode_reason), "%s", b->reason);
    c->mode_switch_time_ns = b->since_ns;
    c->block_bytes = b->bytes;
    if (b->ack_ns) {
        c->block_generation = b->ack.generation;
        c->block_offset = b->ack.offset;
    }
    ls_ship_copy_lsns(m, &c->block_durable_lsn, &c->block_applied_lsn);
    c->block_lag_samples = b->nsamples;
    memcpy(c->block_lag_hist, b->hist, sizeof(c->block_lag_hist));
    c->block_lag_sum_ns = b->sum_ns;
    size_t n = (size_t) LS_MIN(b->nsamples, (uint64_t) SHIP_SAMPLES);
    if (n == 0) return;
    uint64_t sorted[SHIP_SAMPLES];
    memcpy(sorted, b->samples, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), cmp_u64);
    c->block_lag_p50_ns = sorted[(n - 1) / 2];
    c->block_lag_p99_ns = sorted[(n * 99 + 99) / 100 - 1];
    c->block_lag_max_ns = sorted[n - 1];
}
