/*
 * Recovery, part 2: the closed generations. Lists logs/ (engine/layout), finds the generations the
 * store still needs (those holding LSNs above the store's meta LSN), verifies them (numbering
 * without gaps, each header's prev_digest equal to the digest of the generation before it, every
 * record and the trailer's digest) and replays their records into the store, whole generations (a
 * closed generation never ends inside a transaction) grouped up to 64 MiB per store transaction.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "layout/layout.h"
#include "writer/writer_int.h"

int ls__list_gens(ls_db_t *db, ls__recovery_t *rs, char *msg, size_t msglen)
{
    ls_layout_options_t lo = {.prefix = db->prefix}; /* sorted by (epoch, generation) */
    ls_layout_list_t l;
    int rc = ls_layout_list(db->logs, &lo, &l, msg, msglen);
    if (rc) return rc;
    rs->has_cur = l.has_current;
    if (l.ngens) {
        ls__genfile_t *p = realloc(rs->gens, (rs->ngens + l.ngens) * sizeof(*p));
        if (!p) {
            ls_layout_list_free(&l);
            return LS_ENOMEM;
        }
        rs->gens = p;
        for (size_t i = 0; i < l.ngens; i++)
            rs->gens[rs->ngens++] = (ls__genfile_t){l.gens[i].epoch, l.gens[i].generation};
    }
    ls_layout_list_free(&l);
    return 0;
}

void ls__gen_path(ls_db_t *db, const ls__genfile_t *g, char *out, size_t outlen)
{
    LS_CHECK(ls_layout_path(out, outlen, db->logs, db->prefix, g->epoch, g->gen, NULL) == 0);
}

/* Scans closed generation g with expectations; it must be intact and closed. */
static int scan_closed(ls_db_t *db, const ls__genfile_t *g, ls_gen_expect_t *ex, ls__replay_t *rp,
                       ls_gen_info_t *info, uint8_t **buf, char *msg, size_t msglen)
{
    char path[LS__PATH_MAX + 16 + LS_GEN_NAME_MAX];
    ls__gen_path(db, g, path, sizeof(path));
    size_t len = 0;
    int rc = ls_read_file(path, LS_GEN_HARD_CAP, buf, &len);
    if (rc) {
        snprintf(msg, msglen, "cannot read %s: %s", path, ls_strerror(rc));
        return rc;
    }
    ex->dbid = db->dbid;
    ex->epoch = g->epoch;
    ex->generation = g->gen;
    ls_gen_verdict_t v;
    rc = ls_gen_scan(*buf, len, ex, rp ? ls__replay_collect : NULL, rp, info, &v);
    if (rc == 0 && !info->closed) rc = LS_ENOTRAILER;
    if (rc) snprintf(msg, msglen, "closed generation %s is damaged: %s", path, v.msg);
    return rc;
}

int ls__scan_last_closed(ls_db_t *db, ls__recovery_t *rs, char *msg, size_t msglen)
{
    if (rs->ngens == 0) return 0;
    ls_gen_expect_t ex = {0};
    uint8_t *buf = NULL;
    int rc = scan_closed(db, &rs->gens[rs->ngens - 1], &ex, NULL, &rs->last, &buf, msg, msglen);
    free(buf);
    if (rc == 0) rs->have_last = true;
    rs->max_txid = LS_MAX(rs->max_txid, rs->last.last_txid);
    return rc;
}

int ls__replay_collect(void *ctx, const ls_record_t *r)
{
    ls__replay_t *rp = ctx;
    if (r->lsn <= rp->skip_lsn) return 0;
    if (rp->n == rp->cap) {
        size_t cap = rp->cap ? rp->cap * 2 : 1024;
        ls_record_t *p = realloc(rp->recs, cap * sizeof(*p));
        if (!p) return LS_ENOMEM;
        rp->recs = p;
        rp->cap = cap;
    }
    rp->recs[rp->n++] = *r;
    return 0;
}

static int replay_cb(void *ctx, ls_store_txn_t *st)
{
    const ls__replay_t *rp = ctx;
    for (size_t i = 0; i < rp->n; i++) {
        const ls_record_t *r = &rp->recs[i];
        int rc = 0;
        if (r->type == LS_REC_PUT)
            rc = ls_store_put(st, r->key, r->key_len, r->value, r->value_len);
        else if (r->type == LS_REC_DEL)
            rc = ls_store_del(st, r->key, r->key_len);
        if (rc) return rc;
    }
    return 0;
}

int ls__replay_apply(ls_db_t *db, ls__replay_t *rp, const ls_store_meta_t *meta)
{
    int rc = ls_store_apply(db->store, replay_cb, rp, meta);
    if (rc == 0) db->stats.recovered_records += rp->n;
    return rc;
}

/* Reads the header of closed generation g. */
static int read_header(ls_db_t *db, const ls__genfile_t *g, ls_gen_header_t *h, char *msg,
                       size_t msglen)
{
    char path[LS__PATH_MAX + 16 + LS_GEN_NAME_MAX];
    ls__gen_path(db, g, path, sizeof(path));
    uint8_t b[LS_GEN_HEADER_SIZE];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? ls_err_from_errno(errno) : ls_pread_full(fd, b, sizeof(b), 0);
    if (fd >= 0) close(fd);
    int rc = n < 0 ? (int) n : ls_gen_header_decode(b, (size_t) n, h);
    if (rc) snprintf(msg, msglen, "closed generation %s: bad header: %s", path, ls_strerror(rc));
    return rc;
}

/* Index of the first closed generation the store needs (ngens when none). */
static int find_start(ls_db_t *db, ls__recovery_t *rs, uint64_t first_lsn_after, size_t *start,
                      char *msg, size_t msglen)
{
    size_t s = rs->ngens;
    uint64_t next_first = first_lsn_after;
    while (s > 0 && next_first - 1 > rs->meta.lsn) {
        ls_gen_header_t h;
        int rc = read_header(db, &rs->gens[s - 1], &h, msg, msglen);
        if (rc) return rc;
        next_first = h.first_lsn;
        s--;
    }
    if (next_first > rs->meta.lsn + 1) {
        snprintf(msg, msglen,
                 "the store holds lsn %llu but the oldest log present starts at lsn %llu "
                 "(generation %llu): generations are missing",
                 (unsigned long long) rs->meta.lsn, (unsigned long long) next_first,
                 (unsigned long long) (s < rs->ngens ? rs->gens[s].gen : db->gen));
        return LS_EGAP;
    }
    *start = s;
    return 0;
}

/* Closed generations replayed together in one store transaction (the replayer's batching: one
 * LMDB sync per group instead of one per generation, ~3x faster here, machine-limits.md). */
typedef struct {
    ls__replay_t rp;      /* records of the group above the store's LSN */
    uint8_t **bufs;       /* the files' contents the records point into */
    size_t nbufs;         /* entries in bufs */
    uint64_t bytes;       /* file bytes held */
    ls_store_meta_t meta; /* the position after the group's last generation */
} group_t;

#define GROUP_BYTES (64ull * 1024 * 1024) /* apply once this much log is held */

static void group_free(group_t *g)
{
    for (size_t i = 0; i < g->nbufs; i++)
        free(g->bufs[i]);
    free(g->bufs);
    free(g->rp.recs);
    *g = (group_t){0};
}

/* Verifies closed generation i (ex: the chain expectations) and adds it to the group. */
static int group_add(ls_db_t *db, ls__recovery_t *rs, size_t i, ls_gen_expect_t *ex,
                     ls_gen_info_t *info, group_t *g, char *msg, size_t msglen)
{
    uint8_t **bufs = realloc(g->bufs, (g->nbufs + 1) * sizeof(*bufs));
    if (!bufs) return LS_ENOMEM;
    g->bufs = bufs;
    g->bufs[g->nbufs] = NULL;
    g->rp.skip_lsn = rs->meta.lsn;
    int rc = scan_closed(db, &rs->gens[i], ex, &g->rp, info, &g->bufs[g->nbufs], msg, msglen);
    g->nbufs++;
    if (rc) return rc;
    g->bytes += LS_GEN_HEADER_SIZE + info->trailer.payload_len + LS_GEN_TRAILER_SIZE;
    g->meta = rs->meta;
    memcpy(g->meta.dbid, db->dbid, LS_DBID_LEN);
    g->meta.epoch = rs->gens[i].epoch;
    g->meta.generation = g->meta.digest_generation = rs->gens[i].gen;
    g->meta.lsn = info->last_lsn;
    g->meta.txid = info->last_txid;
    memcpy(g->meta.digest, info->digest, LS_DIGEST_SIZE);
    rs->max_txid = LS_MAX(rs->max_txid, info->last_txid);
    return 0;
}

/* Applies the group with its meta in one store transaction. */
static int group_apply(ls_db_t *db, ls__recovery_t *rs, group_t *g, char *msg, size_t msglen)
{
    int rc = 0;
    if (g->nbufs && g->meta.lsn > rs->meta.lsn) {
        rc = ls__replay_apply(db, &g->rp, &g->meta);
        if (rc)
            snprintf(msg, msglen, "replay up to generation %llu into the store failed: %s",
                     (unsigned long long) g->meta.generation, ls_strerror(rc));
        else
            rs->meta = g->meta;
    }
    group_free(g);
    return rc;
}

/* The expectations for the first needed generation s: the chain from generation s-1. */
static int anchor(ls_db_t *db, ls__recovery_t *rs, size_t s, ls_gen_expect_t *ex,
                  uint8_t prev[LS_DIGEST_SIZE], char *msg, size_t msglen)
{
    static const uint8_t zeros[LS_DIGEST_SIZE];
    *ex = (ls_gen_expect_t){0};
    if (s == 0) { /* older generations are gone: only generation 1 has a known predecessor */
        if (rs->gens[0].gen == 1) ex->prev_digest = zeros;
        return 0;
    }
    ls_gen_info_t info;
    uint8_t *buf = NULL;
    int rc = scan_closed(db, &rs->gens[s - 1], ex, NULL, &info, &buf, msg, msglen);
    free(buf);
    if (rc) return rc;
    memcpy(prev, info.digest, LS_DIGEST_SIZE);
    *ex = (ls_gen_expect_t){.prev_digest = prev, .first_lsn = info.last_lsn + 1};
    return 0;
}

int ls__replay_closed(ls_db_t *db, ls__recovery_t *rs, uint64_t first_lsn_after, char *msg,
                      size_t msglen)
{
    size_t s = 0;
    int rc = find_start(db, rs, first_lsn_after, &s, msg, msglen);
    if (rc || s == rs->ngens) return rc;
    uint8_t prev[LS_DIGEST_SIZE];
    ls_gen_expect_t ex;
    if ((rc = anchor(db, rs, s, &ex, prev, msg, msglen)) != 0) return rc;
    group_t g = {0};
    for (size_t i = s; i < rs->ngens && rc == 0; i++) {
        if (i > 0 && rs->gens[i].gen != rs->gens[i - 1].gen + 1) {
            snprintf(msg, msglen, "generation %llu is missing (found %llu after it)",
                     (unsigned long long) rs->gens[i - 1].gen + 1,
                     (unsigned long long) rs->gens[i].gen);
            rc = LS_EGAP;
            break;
        }
        ls_gen_info_t info;
        if ((rc = group_add(db, rs, i, &ex, &info, &g, msg, msglen)) != 0) break;
        memcpy(prev, info.digest, LS_DIGEST_SIZE);
        ex = (ls_gen_expect_t){.prev_digest = prev, .first_lsn = info.last_lsn + 1};
        if (g.bytes >= GROUP_BYTES || i + 1 == rs->ngens) rc = group_apply(db, rs, &g, msg, msglen);
    }
    group_free(&g);
    return rc;
}
