/*
 * Block mode on the copy: the open generation's shadow applied early (docs/BLOCKMODE.md, "Shadow
 * replay and activation").
 *
 * The receiver (engine/copy/shadow.c) appends the active's durable bytes of its current log to
 * <dir>/shadow/<name> and reports each fdatasync through ls_copy_shadow_durable (and, eager,
 * each batch written before it through ls_copy_shadow_written), which only record the position
 * and wake the replayer (shadow_report.c, with the acknowledgement of what a step committed).
 *
 * The replayer (replay.c calls in here when no closed generation is ready) walks the shadow of
 * the generation it wants next with ls_gen_stream, as the bytes become durable: every record's
 * checksum is verified (the shadow is never inspected as a whole), the header must chain to the
 * store's last generation, and a torn or bad record ends the walk (what follows waits for the
 * closed generation). The complete transactions walked are applied in one store transaction with
 * the meta record: generation N and the LSN of the last COMMIT, digest_generation left at N-1, and
 * the proof of what was applied: shadow_end (the bytes [0, shadow_end) up to that COMMIT) and
 * shadow_seal (their XXH3-128). When the closed generation N is replayed, replay.c skips records
 * up to meta.lsn as it always does, and first compares the closed file's bytes [0, shadow_end)
 * with the seal (ls__copy_shadow_check): different bytes mean the store holds data the closed
 * generation does not, and the copy goes FAILED rather than keep it.
 *
 * Nothing of this runs while the copy has a replay lag, is paused or FAILED. A crash anywhere
 * leaves the store at a transaction boundary; after a restart the walk starts again at byte 0,
 * skips records the store holds, and checks the seal again when it passes shadow_end.
 * Fault points (test builds): copy.shadow.before_commit (inside the store transaction),
 * copy.shadow.after_commit.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "copy/copy_int.h"

#define READ_PIECE      (1024u * 1024u)         /* bytes read from the shadow per pread */
#define STEP_BYTES      (16ull * 1024u * 1024u) /* bytes walked per store transaction at most */
#define OP_HEAD         24u          /* encoded op: type u8, pad, key_len u16, value_len u32, lsn */
#define SHADOW_QUIET_NS 100000000ull /* lazy: apply once the reports were quiet this long */

/* The replayer's walk of one shadow. */
struct ls__copy_sh_run {
    uint32_t epoch;               /* the shadow walked */
    uint64_t generation;          /* its generation */
    int fd;                       /* open shadow, -1 when none */
    ls_gen_stream_t *st;          /* the walk (allow_open, checksums verified) */
    ls_gen_expect_t ex;           /* what its header must be */
    uint8_t dbid[LS_DBID_LEN];    /* ex.dbid points here */
    uint8_t prev[LS_DIGEST_SIZE]; /* ex.prev_digest points here */
    bool stopped;                 /* the walk ended (bad record, mismatch): nothing more */
    bool unlike;                  /* the shadow is not what the store applied: never apply */
    bool reopen;                  /* the file was shorter than reported (replaced by the
                                     receiver): the next report starts a new walk */
    uint64_t fed;                 /* bytes fed to the stream */
    uint64_t pos;                 /* end of the last record walked */
    uint64_t base_lsn;            /* records up to this LSN are in the store already */
    uint64_t proof_end;           /* the store's shadow_end to check when passed (0: none) */
    uint8_t proof[LS_SEAL_LEN];   /* the store's shadow_seal */
    uint64_t commit_end;          /* end of the last COMMIT walked */
    uint64_t commit_lsn;          /* its LSN */
    uint64_t commit_txid;         /* its txid */
    ls_seal_t *seal;              /* XXH3-128 of [0, sealed) */
    uint64_t sealed;              /* bytes sealed */
    uint8_t *tail;                /* bytes [sealed, fed): not yet sealed */
    size_t tail_len, tail_cap;    /* bytes, capacity */
    uint8_t *ops;                 /* records walked past base_lsn not yet applied, encoded */
    size_t ops_len, ops_cap;      /* bytes, capacity */
    size_t ops_committed;         /* bytes of ops up to the last COMMIT walked */
    uint8_t applied[LS_SEAL_LEN]; /* seal at commit_end (what the next apply records) */
    uint64_t applied_end;         /* offset it covers */
    uint8_t *carry;               /* bytes [carry_from, fed) walked past the durable end */
    size_t carry_len, carry_cap;  /* bytes, capacity */
    uint64_t carry_from;          /* offset of carry[0] */
    uint8_t *rec;                 /* the step's carry record (shadow_carry.c), or none */
    size_t rec_len, rec_cap;      /* bytes (0: none), capacity */
    bool rec_del;                 /* the step removes the store's carry record */
};
typedef struct ls__copy_sh_run run_t;

/* Where the walk may go: the durable end, or (eager) the bytes written past it, at most
 * LS__COPY_CARRY_MAX of them (the store transaction carries them). */
static uint64_t walk_end(const ls__copy_shadow_t *s)
{
    if (!s->lazy && s->w_generation == s->generation && s->w_epoch == s->epoch &&
        s->w_size > s->size)
        return LS_MIN(s->w_size, s->size + LS__COPY_CARRY_MAX);
    return s->size;
}

int ls_copy_shadow_path(ls_copy_t *c, uint32_t epoch, uint64_t generation, char *out, size_t outlen)
{
    char path[LS__COPY_PATH_MAX];
    ls__copy_path(c, path, c->shadow_dir, epoch, generation);
    if (strlen(path) >= outlen) return LS_EINVAL;
    memcpy(out, path, strlen(path) + 1);
    return 0;
}

static void run_free(run_t *r)
{
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    ls_gen_stream_free(r->st);
    ls_seal_free(r->seal);
    free(r->tail);
    free(r->ops);
    free(r->carry);
    free(r->rec);
    free(r);
}

void ls__copy_shadow_free(ls_copy_t *c)
{
    run_free(c->sh.run);
    c->sh.run = NULL;
}

void ls_copy_shadow_apply_eager(ls_copy_t *c, bool eager)
{
    pthread_mutex_lock(&c->mu);
    if (c->sh.lazy == eager) {
        LS_LOGD("copy", "%s: the shadow is applied early %s", c->dir,
                eager ? "at each report (a commit waits for the applied position)"
                      : "only when the stream is quiet");
        c->sh.lazy = !eager;
        pthread_cond_broadcast(&c->cv); /* what the lazy replayer left is due now */
    }
    pthread_mutex_unlock(&c->mu);
}

bool ls__copy_shadow_due(ls_copy_t *c, uint64_t *wait_ns)
{
    const ls__copy_shadow_t *s = &c->sh;
    const run_t *r = s->run;
    if (!s->generation || c->paused || c->state == LS_COPY_FAILED || !c->store ||
        c->o.replay_lag_ms || c->qlen)
        return false;
    /* the generation wanted next, everything before it applied */
    if (s->generation != c->held_gen + 1 || s->epoch < c->held_epoch ||
        c->meta.digest_generation != c->held_gen)
        return false;
    bool pending;
    if (!r || r->epoch != s->epoch || r->generation != s->generation || r->reopen)
        pending = walk_end(s) > LS_GEN_HEADER_SIZE && s->seen != s->reports; /* a new report */
    else
        pending = !r->stopped && walk_end(s) > r->fed;
    if (!pending || !s->lazy) return pending;
    /* Lazy: no commit waits for the store, so the store's commits and syncs keep off the disk
     * while the shadow streams; what a steady stream leaves comes with the closed generation. */
    uint64_t quiet = ls_mono_ns() - s->report_ns;
    if (quiet >= SHADOW_QUIET_NS) return true;
    *wait_ns = LS_MIN(*wait_ns, SHADOW_QUIET_NS - quiet);
    return false;
}

/* Starts the walk of the shadow of (epoch, gen) against the store's position m. */
static int run_start(ls_copy_t *c, uint32_t epoch, uint64_t gen, const ls_store_meta_t *m,
                     run_t **out)
{
    run_t *r = calloc(1, sizeof(*r));
    if (!r) return LS_ENOMEM;
    r->fd = -1;
    r->epoch = epoch;
    r->generation = gen;
    r->st = ls_gen_stream_new();
    r->seal = ls_seal_new();
    if (!r->st || !r->seal) {
        run_free(r);
        return LS_ENOMEM;
    }
    char path[LS__COPY_PATH_MAX];
    ls__copy_path(c, path, c->shadow_dir, epoch, gen);
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        int rc = ls_err_from_errno(errno);
        run_free(r);
        return rc;
    }
    memcpy(r->dbid, c->dbid, LS_DBID_LEN);
    memcpy(r->prev, m->digest, LS_DIGEST_SIZE);
    r->ex = (ls_gen_expect_t){.dbid = r->dbid,
                              .epoch = epoch,
                              .generation = gen,
                              .prev_digest = r->prev,
                              .allow_open = true};
    if (m->generation == m->digest_generation && m->lsn) r->ex.first_lsn = m->lsn + 1;
    ls_gen_stream_begin(r->st, &r->ex, 0);
    ls_seal_reset(r->seal);
    r->pos = LS_GEN_HEADER_SIZE;
    r->base_lsn = m->generation == gen ? m->lsn : 0;
    if (m->generation == gen && m->shadow_end) { /* the seal covers the header's epoch */
        r->proof_end = m->shadow_end;
        memcpy(r->proof, m->shadow_seal, LS_SEAL_LEN);
    }
    *out = r;
    return 0;
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    uint8_t *b = realloc(*buf, n);
    if (!b) return LS_ENOMEM;
    *buf = b;
    *cap = n;
    return 0;
}

/* The stream's callback: keeps the records past base_lsn (copied: a record may point into the
 * stream's own buffer) and notes each COMMIT. */
static int walk_record(void *ctx, const ls_record_t *rec)
{
    run_t *r = ctx;
    r->pos += ls_record_size(rec->key_len, rec->value_len);
    if (rec->type == LS_REC_COMMIT) {
        r->commit_end = r->pos;
        r->commit_lsn = rec->lsn;
        r->commit_txid = rec->txid;
        r->ops_committed = r->ops_len;
        return 0;
    }
    if (rec->lsn <= r->base_lsn) return 0;
    size_t n = OP_HEAD + rec->key_len + rec->value_len;
    if (grow(&r->ops, &r->ops_cap, r->ops_len + n)) return LS_ENOMEM;
    uint8_t *p = r->ops + r->ops_len;
    memset(p, 0, OP_HEAD);
    p[0] = rec->type;
    ls_put16(p + 2, (uint16_t) rec->key_len);
    ls_put32(p + 4, rec->value_len);
    ls_put64(p + 8, rec->lsn);
    memcpy(p + OP_HEAD, rec->key, rec->key_len);
    if (rec->value_len) memcpy(p + OP_HEAD + rec->key_len, rec->value, rec->value_len);
    r->ops_len += n;
    return 0;
}

/* Seals tail bytes up to offset end (end <= fed). */
static void seal_to(run_t *r, uint64_t end)
{
    size_t n = (size_t) (end - r->sealed);
    ls_seal_update(r->seal, r->tail, n);
    memmove(r->tail, r->tail + n, r->tail_len - n);
    r->tail_len -= n;
    r->sealed = end;
}

/* Drops the kept bytes that d, the durable end reported, has passed: durable in the shadow,
 * no store transaction needs to carry them. */
static void carry_drop(run_t *r, uint64_t d)
{
    if (r->carry_from < d && r->carry_len) {
        size_t drop = (size_t) LS_MIN(d - r->carry_from, (uint64_t) r->carry_len);
        memmove(r->carry, r->carry + drop, r->carry_len - drop);
        r->carry_len -= drop;
        r->carry_from += drop;
    }
}

/* Keeps the bytes [off, off + n) just read that lie at or past d (what a store transaction must
 * carry), after dropping what d passed. */
static int keep(run_t *r, uint64_t d, uint64_t off, const uint8_t *p, size_t n)
{
    carry_drop(r, d);
    if (n == 0) return 0;
    if (r->carry_len == 0) r->carry_from = LS_MAX(off, d);
    if (off + n <= r->carry_from) return 0;
    size_t skip = (size_t) (r->carry_from + r->carry_len - off);
    if (grow(&r->carry, &r->carry_cap, r->carry_len + n - skip)) return LS_ENOMEM;
    memcpy(r->carry + r->carry_len, p + skip, n - skip);
    r->carry_len += n - skip;
    return 0;
}

/* Feeds the durable bytes [fed, size) to the walk; seals up to the last COMMIT, checking the
 * store's proof on the way. A bad record or a proof mismatch stops the walk (logged). */
static int walk(ls_copy_t *c, run_t *r, uint64_t size, uint64_t d)
{
    while (!r->stopped && r->fed < size) {
        size_t n = (size_t) LS_MIN((uint64_t) READ_PIECE, size - r->fed);
        if (grow(&r->tail, &r->tail_cap, r->tail_len + n)) return LS_ENOMEM;
        ssize_t got = ls_pread_full(r->fd, r->tail + r->tail_len, n, (off_t) r->fed);
        if (got < 0) return (int) got;
        if ((size_t) got < n) { /* shorter than reported: the receiver's report is ahead */
            LS_LOGI("copy", "%s: shadow of generation %llu has %llu bytes, %llu reported durable",
                    c->dir, (unsigned long long) r->generation,
                    (unsigned long long) (r->fed + (uint64_t) got), (unsigned long long) size);
            r->stopped = r->reopen = true;
            n = (size_t) got;
        }
        const uint8_t *p = r->tail + r->tail_len;
        if (keep(r, d, r->fed, p, n)) return LS_ENOMEM;
        r->tail_len += n;
        r->fed += n;
        int rc = ls_gen_stream_feed(r->st, p, n, walk_record, r);
        if (rc == LS_ENOMEM) return rc;
        if (rc) {
            ls_gen_info_t info;
            ls_gen_verdict_t v;
            ls_gen_stream_end(r->st, &info, &v);
            LS_LOGW("copy",
                    "%s: the shadow of generation %llu stops being applied early at offset %llu "
                    "(%s): the rest waits for the closed generation",
                    c->dir, (unsigned long long) r->generation, (unsigned long long) r->commit_end,
                    v.msg[0] ? v.msg : ls_strerror(rc));
            r->stopped = true;
        }
        if (r->proof_end && r->sealed < r->proof_end && r->proof_end <= r->commit_end) {
            uint8_t s[LS_SEAL_LEN];
            seal_to(r, r->proof_end);
            ls_seal_final(r->seal, s);
            if (memcmp(s, r->proof, LS_SEAL_LEN) != 0) {
                LS_LOGW("copy",
                        "%s: the shadow of generation %llu differs in its first %llu bytes from "
                        "what the store applied early: not applied further",
                        c->dir, (unsigned long long) r->generation,
                        (unsigned long long) r->proof_end);
                r->stopped = r->unlike = true;
                r->ops_len = r->ops_committed = 0;
                return 0;
            }
        }
        if (r->commit_end > r->sealed) seal_to(r, r->commit_end);
    }
    if (r->commit_end == r->sealed) {
        ls_seal_final(r->seal, r->applied);
        r->applied_end = r->commit_end;
    }
    return 0;
}

/* The store callback: the committed ops in order (re-runnable). */
static int apply_ops(void *ctx, ls_store_txn_t *txn)
{
    const run_t *r = ctx;
    for (size_t off = 0; off < r->ops_committed;) {
        const uint8_t *p = r->ops + off;
        uint32_t klen = ls_get16(p + 2), vlen = ls_get32(p + 4);
        const uint8_t *key = p + OP_HEAD;
        int rc = p[0] == LS_REC_PUT ? ls_store_put(txn, key, klen, key + klen, vlen)
                                    : ls_store_del(txn, key, klen);
        if (rc) return rc;
        off += OP_HEAD + klen + vlen;
    }
    int rc = r->rec_len   ? ls_store_aux_put(txn, LS__COPY_CARRY_KEY, r->rec, r->rec_len)
             : r->rec_del ? ls_store_aux_del(txn, LS__COPY_CARRY_KEY)
                          : 0;
    if (rc) return rc;
    if (LS_FAULT("copy.shadow.before_commit")) return LS_EIO;
    return 0;
}

/* A store error while applying the shadow: DISK_FULL (retried) or FAILED. */
static void store_failed(ls_copy_t *c, const run_t *r, int rc)
{
    char reason[512];
    ls_msgf(reason, sizeof(reason),
            "copy %s: applying the shadow of generation %llu to the store failed: %s", c->dir,
            (unsigned long long) r->generation, ls_strerror(rc));
    ls__copy_store_failed(c, rc, reason);
}

/* Brings the walk of shadow (epoch, gen) up to size, at most STEP_BYTES further, after starting
 * it anew for another or a replaced file (*rp, the replayer's alone). Returns 0 with *rp NULL
 * when the walk stopped (no memory, unreadable: the closed generation will do), or an error. */
static int advance(ls_copy_t *c, uint32_t epoch, uint64_t gen, uint64_t size, uint64_t d,
                   const ls_store_meta_t *m, run_t **rp)
{
    run_t *r = *rp;
    /* A file shorter than reported was replaced by the receiver: walk the new one at once. */
    for (int attempt = 0; attempt < 2 && (!r || r->reopen || attempt == 0); attempt++) {
        if (r && (r->epoch != epoch || r->generation != gen || r->reopen)) {
            ls__copy_shadow_free(c);
            r = *rp = NULL;
        }
        if (!r) {
            int rc = run_start(c, epoch, gen, m, &r);
            if (rc) {
                LS_LOGW("copy", "%s: cannot read the shadow of generation %llu: %s", c->dir,
                        (unsigned long long) gen, ls_strerror(rc));
                return rc;
            }
            *rp = c->sh.run = r;
        }
        int rc = walk(c, r, LS_MIN(size, r->fed + STEP_BYTES), d);
        if (rc) {
            r->stopped = true;
            LS_LOGW("copy", "%s: reading the shadow of generation %llu: %s", c->dir,
                    (unsigned long long) gen, ls_strerror(rc));
            *rp = NULL;
            return 0;
        }
    }
    return 0;
}

/* Bytes past the durable end d: the transaction carries them (shadow_carry.c), so its one
 * fdatasync makes them durable with what they applied; a record carried before and not needed
 * now is deleted. 1 when the bytes were not kept (applied once they are durable). */
static int carry_record(ls_copy_t *c, run_t *r, uint32_t epoch, uint64_t gen, uint64_t d)
{
    carry_drop(r, d);
    r->rec_len = 0;
    r->rec_del = false;
    if (r->commit_end <= d) {
        r->rec_del = c->sh.carried;
        return 0;
    }
    if (r->carry_from != d || r->carry_from + r->carry_len < r->commit_end) {
        LS_LOGW("copy",
                "%s: shadow bytes [%llu, %llu) of generation %llu not kept: applied once they "
                "are durable",
                c->dir, (unsigned long long) d, (unsigned long long) r->commit_end,
                (unsigned long long) gen);
        return 1;
    }
    size_t n = (size_t) (r->commit_end - d);
    if (grow(&r->rec, &r->rec_cap, LS__COPY_CARRY_HEAD + n)) return LS_ENOMEM;
    ls__copy_carry_head(r->rec, epoch, gen, d, r->commit_end);
    memcpy(r->rec + LS__COPY_CARRY_HEAD, r->carry, n);
    r->rec_len = LS__COPY_CARRY_HEAD + n;
    return 0;
}

int ls__copy_shadow_apply(ls_copy_t *c)
{
    pthread_mutex_lock(&c->mu);
    uint32_t epoch = c->sh.epoch;
    uint64_t gen = c->sh.generation, d = c->sh.size, size = walk_end(&c->sh);
    ls_store_meta_t m = c->meta;
    c->sh.seen = c->sh.reports;
    run_t *r = c->sh.run;
    pthread_mutex_unlock(&c->mu);
    int rc = advance(c, epoch, gen, size, d, &m, &r);
    if (rc || !r) return rc;
    if (r->unlike || (r->commit_lsn <= m.lsn && m.generation == gen)) return 0; /* nothing new */
    if (r->applied_end != r->commit_end || r->commit_end <= LS_GEN_HEADER_SIZE) return 0;
    rc = carry_record(c, r, epoch, gen, d);
    if (rc) return rc == 1 ? 0 : rc;
    ls_store_meta_t nm = m;
    /* The epoch stays digest_generation's: a restart takes it as the held chain's epoch (a
     * shadow opening a new epoch must not make generation N-1 look like the new epoch's). The
     * seal covers the shadow's header, its epoch included. */
    if (!m.digest_generation) nm.epoch = epoch;
    nm.generation = gen;
    nm.lsn = r->commit_lsn;
    nm.txid = LS_MAX(nm.txid, r->commit_txid);
    nm.shadow_end = r->commit_end;
    memcpy(nm.shadow_seal, r->applied, LS_SEAL_LEN);
    rc = ls_store_apply(c->store, apply_ops, r, &nm);
    if (rc) {
        store_failed(c, r, rc);
        return rc;
    }
    c->sh.carried = r->rec_len > 0;
    LS_FAULT("copy.shadow.after_commit");
    memmove(r->ops, r->ops + r->ops_committed, r->ops_len - r->ops_committed);
    r->ops_len -= r->ops_committed;
    r->ops_committed = 0;
    r->base_lsn = nm.lsn;
    ls__copy_shadow_committed(c, epoch, &m, &nm, r->rec_len > 0);
    return 0;
}

int ls__copy_shadow_check(ls_copy_t *c, const ls__copy_entry_t *e, const uint8_t *buf, size_t len,
                          const ls_store_meta_t *m)
{
    if (!m->shadow_end || m->generation != e->generation || m->digest_generation == m->generation)
        return 0;
    char reason[512];
    uint8_t seal[LS_SEAL_LEN];
    bool same = m->shadow_end + LS_GEN_TRAILER_SIZE <= len; /* the seal covers the epoch */
    if (same) {
        ls_seal(buf, (size_t) m->shadow_end, seal);
        LS__COPY_COUNT(c, seal_bytes, m->shadow_end);
        same = memcmp(seal, m->shadow_seal, LS_SEAL_LEN) == 0;
    }
    if (same) return 0;
    char a[2 * LS_SEAL_LEN + 1] = "", x[2 * LS_SEAL_LEN + 1];
    if (m->shadow_end + LS_GEN_TRAILER_SIZE <= len) ls_hex(seal, LS_SEAL_LEN, a);
    ls_hex(m->shadow_seal, LS_SEAL_LEN, x);
    ls_msgf(reason, sizeof(reason),
            "generation %llu (epoch %u, %zu bytes) is not what the store applied early from its "
            "shadow (bytes [0, %llu) up to lsn %llu, seal %s; the closed file's: %s): the store "
            "holds data the closed generation does not; reseed this copy",
            (unsigned long long) e->generation, e->epoch, len, (unsigned long long) m->shadow_end,
            (unsigned long long) m->lsn, x, a[0] ? a : "too short");
    pthread_mutex_lock(&c->mu);
    bool changed = ls__copy_set_state(c, LS_COPY_FAILED, reason);
    pthread_mutex_unlock(&c->mu);
    if (changed) ls__copy_emit(c, LS_COPY_EV_STATE, 0, 0, LS_COPY_FAILED, reason);
    return LS_EDIVERGED;
}
