/*
 * source: the resume / divergence check (DESIGN.md, "Wire protocol").
 *
 * The target says: epoch and digest of generation N-1 it holds, next wanted N, last LSN held.
 * In order:
 *  1. N = 0, or a digest with nothing held (N = 1): LS_EPROTO.
 *  2. N > 1 with the target's epoch newer than ours: newer_epoch (checked before the rest, so a
 *     target that is also ahead of us is told apart from one that diverged). Then N > newest + 1:
 *     the target holds generations never written here: LS_EDIVERGED.
 *  3. N-1 >= 1: the target's epoch must be ours for N-1, or 0 (a seeded target that does not
 *     know it; the digest decides) (a newer one means this node should be fenced: newer_epoch); N <
 * oldest means N was removed here: LS_EGAP, need_seed. Then the digest must equal the trailer
 * digest of our N-1, or the prev_digest in our N's header when N-1 itself was removed: else
 * LS_EDIVERGED naming N-1 and both digests.
 *  4. N = 1 with generation 1 removed here: LS_EGAP, need_seed.
 *  5. Every generation from N to the newest must be here: a hole is LS_EGAP naming it.
 *  6. The target's last LSN must not be past the end of our N when N is closed here.
 */
#include <stdio.h>

#include "core/core.h"
#include "source/source_int.h"

static const uint8_t zero_digest[LS_DIGEST_SIZE];

typedef struct {
    ls_source_t *src;
    const ls_resume_t *r;
    ls_ship_plan_t *out;
    char *err;
    size_t errlen;
    uint64_t oldest; /* lowest generation held (0: none) */
    uint64_t newest; /* highest generation held (0: none) */
} plan_t;

static uint32_t current_epoch(const ls_source_t *src)
{
    uint32_t e = src->nhist ? src->hist[src->nhist - 1].epoch : 1;
    if (src->ngens) e = LS_MAX(e, src->gens[src->ngens - 1].epoch);
    return e;
}

static int check_epoch(plan_t *p, uint64_t prev)
{
    uint32_t ours = ls__src_hist_epoch(p->src, prev);
    ssize_t i = ls__src_find(p->src, prev);
    if (i >= 0) ours = p->src->gens[i].epoch;
    p->out->epoch = ours;
    /* 0: a seeded copy that does not know N-1's epoch (its hand-off named N's): the digest
     * decides, and it covers N-1's header, epoch included (engine/copy/position.c). */
    if (p->r->epoch == ours || p->r->epoch == 0) return 0;
    uint32_t cur = current_epoch(p->src);
    if (p->r->epoch > cur) {
        p->out->newer_epoch = true;
        return ls_errf(p->err, p->errlen, LS_EDIVERGED,
                       "target holds generation %llu of epoch %u, newer than this active's "
                       "epoch %u: another copy was activated; this node must stop writing",
                       (unsigned long long) prev, p->r->epoch, cur);
    }
    return ls_errf(p->err, p->errlen, LS_EDIVERGED,
                   "target holds generation %llu of epoch %u, here it belongs to epoch %u: "
                   "the histories diverged; the copy needs a reseed",
                   (unsigned long long) prev, p->r->epoch, ours);
}

static int diverged_digest(plan_t *p, uint64_t prev, const uint8_t *ours, const char *where)
{
    char a[17], b[17];
    ls_hex(p->r->digest, 8, a);
    ls_hex(ours, 8, b);
    return ls_errf(p->err, p->errlen, LS_EDIVERGED,
                   "generation %llu diverged: the target's digest is %s..., ours is %s... "
                   "(%s); the copy must not be overwritten: reseed it explicitly",
                   (unsigned long long) prev, a, b, where);
}

/* Step 3: the target holds N-1 >= 1. */
static int check_prev(plan_t *p, uint64_t n)
{
    uint64_t prev = n - 1;
    int rc = check_epoch(p, prev);
    if (rc) return rc;
    if (!p->newest || n < p->oldest) {
        p->out->need_seed = true;
        return ls_errf(p->err, p->errlen, LS_EGAP,
                       "generation %llu was removed on the active (oldest held: %llu): the "
                       "copy needs a seed",
                       (unsigned long long) n, (unsigned long long) p->oldest);
    }
    ssize_t i = ls__src_find(p->src, prev);
    if (i >= 0) {
        if ((rc = ls__src_load(p->src, (size_t) i, p->err, p->errlen))) return rc;
        if (memcmp(p->src->gens[i].digest, p->r->digest, LS_DIGEST_SIZE) != 0)
            return diverged_digest(p, prev, p->src->gens[i].digest, "from its trailer here");
        return 0;
    }
    /* N-1 was removed here (or is a hole): N's header carries its digest. */
    ssize_t j = ls__src_find(p->src, n);
    if (j < 0)
        return ls_errf(p->err, p->errlen, LS_EGAP,
                       "generation %llu is missing on the active (held: %llu..%llu with a "
                       "hole): cannot ship past it",
                       (unsigned long long) n, (unsigned long long) p->oldest,
                       (unsigned long long) p->newest);
    if ((rc = ls__src_load(p->src, (size_t) j, p->err, p->errlen))) return rc;
    if (memcmp(p->src->gens[j].prev_digest, p->r->digest, LS_DIGEST_SIZE) != 0)
        return diverged_digest(p, prev, p->src->gens[j].prev_digest,
                               "from the header of the next generation here");
    return 0;
}

/* Step 5: no hole between N and the newest. */
static int check_holes(plan_t *p, uint64_t n)
{
    if (n > p->newest) return 0;
    size_t i = ls__src_upper(p->src, n - 1);
    size_t held = p->src->ngens - i;
    if (held == p->newest - n + 1) return 0;
    uint64_t want = n;
    for (; i < p->src->ngens; i++, want++)
        if (p->src->gens[i].generation != want) break;
    return ls_errf(p->err, p->errlen, LS_EGAP,
                   "generation %llu is missing on the active while %llu exists: never "
                   "skipped; restore the file or reseed the copy",
                   (unsigned long long) want, (unsigned long long) p->newest);
}

/* Step 6: the target's last LSN against the end of N. */
static int check_lsn(plan_t *p, uint64_t n)
{
    ssize_t i = ls__src_find(p->src, n);
    if (i < 0 || !p->r->last_lsn) return 0;
    int rc = ls__src_load(p->src, (size_t) i, p->err, p->errlen);
    if (rc) return rc;
    if (p->r->last_lsn > p->src->gens[i].last_lsn)
        return ls_errf(p->err, p->errlen, LS_EDIVERGED,
                       "target holds lsn %llu but wants generation %llu, which ends at lsn "
                       "%llu here: the histories diverged",
                       (unsigned long long) p->r->last_lsn, (unsigned long long) n,
                       (unsigned long long) p->src->gens[i].last_lsn);
    return 0;
}

static int plan_locked(plan_t *p)
{
    const ls_resume_t *r = p->r;
    uint64_t n = r->next;
    if (n == 0) return ls_errf(p->err, p->errlen, LS_EPROTO, "target wants generation 0");
    if (n == 1 && memcmp(r->digest, zero_digest, LS_DIGEST_SIZE) != 0)
        return ls_errf(p->err, p->errlen, LS_EPROTO,
                       "target wants generation 1 but sends a digest of a generation 0");
    if (n > 1 && r->epoch > current_epoch(p->src)) {
        /* Before anything else: a target further on than this node (the new active wrote on)
         * is first of all in a newer epoch, and that means this node must stop writing. */
        p->out->newer_epoch = true;
        return ls_errf(p->err, p->errlen, LS_EDIVERGED,
                       "target holds generation %llu of epoch %u, newer than this active's "
                       "epoch %u: another copy was activated; this node must stop writing",
                       (unsigned long long) (n - 1), r->epoch, current_epoch(p->src));
    }
    if (n > p->newest + 1)
        return ls_errf(p->err, p->errlen, LS_EDIVERGED,
                       "target wants generation %llu but the newest generation written "
                       "here is %llu: it holds generations this active never wrote",
                       (unsigned long long) n, (unsigned long long) p->newest);
    int rc;
    if (n > 1) {
        if ((rc = check_prev(p, n))) return rc;
    } else if (p->oldest > 1) {
        p->out->need_seed = true;
        return ls_errf(p->err, p->errlen, LS_EGAP,
                       "generation 1 was removed on the active (oldest held: %llu): the "
                       "copy needs a seed",
                       (unsigned long long) p->oldest);
    }
    if ((rc = check_holes(p, n)) || (rc = check_lsn(p, n))) return rc;
    p->out->ready = n <= p->newest ? p->newest - n + 1 : 0;
    return 0;
}

int ls_source_plan(ls_source_t *src, const ls_resume_t *r, ls_ship_plan_t *out, char *err,
                   size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (err && errlen) err[0] = '\0';
    pthread_mutex_lock(&src->mu);
    plan_t p = {.src = src, .r = r, .out = out, .err = err, .errlen = errlen};
    if (src->ngens) {
        p.oldest = src->gens[0].generation;
        p.newest = src->gens[src->ngens - 1].generation;
    }
    out->first = r->next;
    out->newest = p.newest;
    int rc = plan_locked(&p);
    pthread_mutex_unlock(&src->mu);
    return rc;
}
