/*
 * The hand-off: from the snapshot's meta record (last LSN L, the generation G the writer was
 * writing when it applied L) and the active's logs/, the generation N the copy asks for next,
 * its epoch and the digest of N-1.
 *
 * The writer applies a transaction to the store after the log fsync, so L is a COMMIT record
 * already in generation G (closed, or still the current log); records after L in G are in the
 * log and not in the snapshot. Hence N = G, and the digest of N-1 is N's header prev_digest.
 * One exception: when G is closed, L is its last record and G was already removed from logs/
 * (every target replayed-synced it), N = G + 1, which must start at L + 1.
 *
 * The writer may roll the current log while we look (rename to the closed name, then create
 * the next <prefix>.log): a miss that can be that race is retried for up to RETRY_MS.
 */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "layout/layout.h"
#include "seed/seed_int.h"

#define RETRY_MS 2000 /* how long a roll in progress may hide generation G */

/* What one generation file says. */
typedef struct {
    bool found;                   /* the file exists and its header decoded */
    bool closed;                  /* a closed generation (trailer decoded) */
    ls_gen_header_t h;            /* its header */
    uint64_t last_lsn;            /* the trailer's last LSN (closed only) */
    char path[LS__SEED_PATH_MAX]; /* the file */
} look_t;

/* Reads the header (and, for a closed file, the trailer) of path through engine/layout. A
 * current log that is absent or shorter than a header is "not found" (being created); a closed
 * file must be whole. */
static int read_gen(const char *path, bool closed, look_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->path, sizeof(out->path), "%s", path);
    ls_layout_ends_t x;
    int rc = ls_layout_read_ends(path, &x, NULL, 0);
    if (rc == LS_ENOENT || (rc == LS_ECORRUPT && !closed)) return 0;
    if (rc == 0 && closed && !x.closed) rc = LS_ECORRUPT;
    if (rc) {
        ls_msgf(err, errlen, "%s: cannot read its header and trailer: %s", path, ls_strerror(rc));
        return rc;
    }
    out->found = true;
    out->h = x.h;
    out->closed = x.closed && closed;
    out->last_lsn = x.t.last_lsn;
    return 0;
}

/* The closed file of generation gen in logs (any epoch: the highest), or found = false. */
static int look_closed(const char *logs, const char *prefix, uint64_t gen, look_t *out, char *err,
                       size_t errlen)
{
    memset(out, 0, sizeof(*out));
    ls_layout_options_t lo = {.prefix = prefix};
    ls_layout_list_t l;
    int rc = ls_layout_list(logs, &lo, &l, err, errlen);
    if (rc) return rc;
    ssize_t i = ls_layout_find(&l, gen);
    char path[LS__SEED_PATH_MAX];
    if (i >= 0) rc = ls_layout_path(path, sizeof(path), logs, prefix, l.gens[i].epoch, gen, NULL);
    ls_layout_list_free(&l);
    if (i < 0) return 0;
    if (rc) {
        ls_msgf(err, errlen, "%s: path too long", logs);
        return rc;
    }
    return read_gen(path, true, out, err, errlen);
}

/* Checks that generation f can be N for meta m (holds L, or starts at L + 1 when next). */
static int check(const look_t *f, const ls_store_meta_t *m, bool next, char *err, size_t errlen)
{
    static const uint8_t zero[LS_DBID_LEN];
    uint64_t L = m->lsn, last = f->closed ? f->last_lsn : UINT64_MAX;
    if (memcmp(m->dbid, zero, LS_DBID_LEN) != 0 && memcmp(m->dbid, f->h.dbid, LS_DBID_LEN) != 0) {
        ls_msgf(err, errlen, "%s belongs to another database than the store", f->path);
        return LS_EDBID;
    }
    bool holds = next ? f->h.first_lsn == L + 1 : (L == 0 || (f->h.first_lsn <= L && L <= last));
    if (!holds) {
        ls_msgf(err, errlen,
                "%s (generation %llu, lsn %llu..%s) does not %s the snapshot's last lsn %llu",
                f->path, (unsigned long long) f->h.generation, (unsigned long long) f->h.first_lsn,
                f->closed ? "closed" : "open", next ? "follow" : "hold", (unsigned long long) L);
        return LS_ECORRUPT;
    }
    uint64_t dg = next ? m->generation : m->generation - 1;
    if (m->lsn && dg && m->digest_generation == dg &&
        memcmp(m->digest, f->h.prev_digest, LS_DIGEST_SIZE) != 0) {
        ls_msgf(err, errlen, "%s: prev_digest differs from the store's digest of generation %llu",
                f->path, (unsigned long long) dg);
        return LS_ELINEAGE;
    }
    return 0;
}

/* One look at logs/: *f is N when found (*next: it is G + 1). */
static int look_once(const char *logs, const char *prefix, const ls_store_meta_t *m, look_t *f,
                     bool *next, char *err, size_t errlen)
{
    uint64_t G = m->generation ? m->generation : 1;
    *next = false;
    int rc = look_closed(logs, prefix, G, f, err, errlen);
    if (rc || f->found) return rc;
    char path[LS__SEED_PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s.log", logs, prefix);
    look_t cur;
    if ((rc = read_gen(path, false, &cur, err, errlen))) return rc;
    if (cur.found && cur.h.generation == G) {
        *f = cur;
        return 0;
    }
    if (m->lsn == 0 || !cur.found || cur.h.generation < G + 1) return 0;
    /* G already closed and removed? Then G + 1 (current or closed) must start at L + 1. */
    if (cur.h.generation == G + 1 && cur.h.first_lsn == m->lsn + 1) {
        *f = cur;
    } else {
        if ((rc = look_closed(logs, prefix, G + 1, f, err, errlen))) return rc;
        if (f->found && f->h.first_lsn != m->lsn + 1) f->found = false;
    }
    *next = f->found;
    return 0;
}

int ls__seed_handoff(const char *logs, const char *prefix, const ls_store_meta_t *m,
                     ls_seed_info_t *info, char *err, size_t errlen)
{
    look_t f;
    bool next = false;
    uint64_t deadline = ls_mono_ns() + RETRY_MS * 1000000ull;
    int rc;
    for (;;) {
        rc = look_once(logs, prefix, m, &f, &next, err, errlen);
        if (rc || f.found || ls_mono_ns() >= deadline) break;
        usleep(5000); /* a roll in progress: look again */
    }
    if (rc == 0 && !f.found) {
        ls_msgf(err, errlen,
                "%s: generation %llu holding the snapshot's last lsn %llu is neither closed "
                "here nor the current log (removed?): the copy could not resume after it",
                logs, (unsigned long long) (m->generation ? m->generation : 1),
                (unsigned long long) m->lsn);
        return LS_EGAP;
    }
    if (rc == 0) rc = check(&f, m, next, err, errlen);
    if (rc) return rc;
    memcpy(info->dbid, f.h.dbid, LS_DBID_LEN);
    info->generation = f.h.generation;
    info->epoch = f.h.epoch;
    memcpy(info->prev_digest, f.h.prev_digest, LS_DIGEST_SIZE);
    info->last_lsn = m->lsn;
    info->txid = m->txid;
    return 0;
}
