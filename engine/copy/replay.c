/*
 * The replayer thread: applies queued generations from logs/ to the copy store in order.
 *
 * A batch is up to batch_generations whole generations (about batch_bytes of log, at least one)
 * whose close time + replay lag has passed. Each file is read and, in the same pass, its XXH3-128
 * seal computed and compared with the seal taken over the bytes the inspection checked (size
 * too), and its chain facts (prev_digest, first LSN) compared with the previous generation's: a
 * file damaged on disk after inspection is caught here, before anything of it is applied,
 * deleted with every later one, and asked again. No record checksum and no SHA-256 is computed
 * here: the inspection computed them once, and the seal proves the bytes are the ones it checked
 * (docs/COPY.md, "Which check runs where"). The verified prefix is then applied in ONE
 * ls_store_apply with the meta record (epoch, generation, LSN, txid, digest,
 * applied_generations + n) in the same transaction, parsed by ls_gen_stream in trusted mode
 * (structure only) before the transaction into a list of operations sorted by key (stable), of
 * which only the last of each key is applied: the same final state, LMDB's B-tree walked in
 * order. Records with LSN <= meta.lsn are skipped (idempotent; the seed hand-off; the records
 * the block-mode shadow applied early, whose bytes ls__copy_shadow_check compares first).
 * When nothing closed is ready, the shadow of the open generation is applied early
 * (shadow_apply.c).
 * The store is checkpointed at most every checkpoint_ms, and when idle (nothing to apply and the
 * receiver quiet for IDLE_CKPT_NS); replayed-synced(N)
 * follows, then log removal.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "copy/copy_int.h"

#define IDLE_WAIT_NS  1000000000ull   /* re-evaluate at least this often */
#define ERROR_WAIT_NS 1000000000ull   /* after a transient store error (ENOSPC) */
#define READ_PIECE    (1024u * 1024u) /* bytes read (and sealed) per pread */
#define RELEASE_OPS   4096u           /* store pages released every this many operations */
#define RX_QUIET_NS   5000000ull   /* the receiver counts as busy this long after its last call */
#define HOLD_MAX_NS   250000000ull /* a batch waits at most this long for more generations */
#define IDLE_CKPT_NS  100000000ull /* idle: checkpoint once the receiver was quiet this long */

/* One PUT or DEL of a batch, pointing into the batch's buffers. */
typedef struct {
    uint64_t pre;         /* the 8 key bytes after the batch's common prefix, big-endian, zero
                             padded: orders most pairs without a memcmp */
    const uint8_t *key;   /* the record's key */
    const uint8_t *value; /* PUT: its value */
    uint32_t key_len;     /* bytes */
    uint32_t value_len;   /* bytes */
    uint32_t seq;         /* position in the batch: the later of two writes of a key wins */
    uint8_t type;         /* LS_REC_PUT or LS_REC_DEL */
    bool tail;            /* the key has bytes past the common prefix and pre */
} op_t;

/* One batch read into memory. */
typedef struct {
    ls__copy_entry_t e[64]; /* the generations, oldest first */
    uint8_t *buf[64];       /* their bytes */
    size_t len[64];         /* their lengths */
    size_t n;               /* generations in the batch */
    size_t ok;              /* leading generations verified */
    uint64_t base_lsn;      /* records with LSN <= base_lsn are already in the store */
    ls_copy_t *c;           /* the copy (counters) */
    ls_seal_t *seal;        /* for the seal checks (kept) */
    ls_gen_stream_t *st;    /* the apply pass's parser (kept) */
    op_t *ops;              /* the batch's operations, sorted by key before they are applied */
    size_t nops;            /* operations collected */
    size_t ops_cap;         /* capacity of ops (kept between batches) */
    bool ops_failed;        /* no memory for ops: applied in LSN order instead */
} batch_t;

/* Entries at the head of the queue ready to replay (mu held); *wait_ns when the head waits for
 * its replay lag, or when the batch is held for more: while the receiver is busy (a generation
 * arriving, or one ended less than RX_QUIET_NS ago) a batch that is not full waits, for at most
 * HOLD_MAX_NS after its first generation was queued. A backlog is then applied in full batches
 * (each commit rewrites the pages it touched: with keys all over the tree, one generation per
 * commit writes nearly as much as sixteen), and the commits and checkpoints keep off the disk
 * while receives sync. *holding says the batch is held (not idle: no checkpoint now). */
static size_t ready(ls_copy_t *c, uint64_t *wait_ns, bool *holding)
{
    *wait_ns = IDLE_WAIT_NS;
    *holding = false;
    if (c->paused || c->state == LS_COPY_FAILED || !c->store) return 0;
    uint64_t now = ls_now_ns(), lag = c->o.replay_lag_ms * 1000000ull, bytes = 0;
    size_t n = 0, max = LS_MIN((size_t) c->o.batch_generations, LS_ARRAY_SIZE(((batch_t *) 0)->e));
    bool full = false;
    while (n < c->qlen && n < max) {
        const ls__copy_entry_t *e = &c->q[n];
        if (e->close_ns + lag > now) {
            if (n == 0) *wait_ns = LS_MIN(e->close_ns + lag - now, IDLE_WAIT_NS);
            full = true; /* the rest waits for its lag: nothing to wait for here */
            break;
        }
        if (n > 0 && bytes + e->size > c->o.batch_bytes) {
            full = true;
            break;
        }
        bytes += e->size;
        n++;
    }
    if (n == 0 || full || n == max) return n;
    uint64_t mono = ls_mono_ns(), held = mono - c->q[0].queued_ns;
    uint64_t quiet = mono - __atomic_load_n(&c->rx_activity_ns, __ATOMIC_RELAXED);
    bool busy = __atomic_load_n(&c->rx_open, __ATOMIC_RELAXED) || quiet < RX_QUIET_NS;
    if (!busy || held >= HOLD_MAX_NS) return n;
    *holding = true;
    *wait_ns = LS_MIN(RX_QUIET_NS, HOLD_MAX_NS - held);
    return 0;
}

/* Reads path whole into *buf (malloc'd) and computes its seal in the same pass. */
static int read_sealed(ls_seal_t *seal, const char *path, uint8_t **buf, size_t *len,
                       uint8_t out[LS_SEAL_LEN])
{
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ls_err_from_errno(errno);
    struct stat st;
    int rc = fstat(fd, &st) != 0 ? ls_err_from_errno(errno) : 0;
    if (rc == 0 && st.st_size > (off_t) LS_GEN_HARD_CAP) rc = LS_ETOOBIG;
    size_t size = rc == 0 ? (size_t) st.st_size : 0;
    if (rc == 0 && !(*buf = malloc(size ? size : 1))) rc = LS_ENOMEM;
    ls_seal_reset(seal);
    for (size_t off = 0; rc == 0 && off < size;) {
        ssize_t n = pread(fd, *buf + off, LS_MIN((size_t) READ_PIECE, size - off), (off_t) off);
        if (n <= 0) {
            rc = n < 0 ? ls_err_from_errno(errno) : LS_EIO; /* shrank under us */
            break;
        }
        ls_seal_update(seal, *buf + off, (size_t) n);
        off += (size_t) n;
    }
    close(fd);
    if (rc == 0) {
        ls_seal_final(seal, out);
        *len = size;
    }
    return rc;
}

/* Reads the batch's files in order, each checked against its seal and the chain; b->ok counts
 * the good prefix. On the first bad one returns its code with msg set. */
static int verify(ls_copy_t *c, batch_t *b, const ls_store_meta_t *m, char *msg, size_t msglen)
{
    const uint8_t *prev = m->digest;
    uint64_t next_lsn = m->generation == m->digest_generation && m->lsn ? m->lsn + 1 : 0;
    for (b->ok = 0; b->ok < b->n; b->ok++) {
        const ls__copy_entry_t *e = &b->e[b->ok];
        char path[LS__COPY_PATH_MAX], a[2 * LS_SEAL_LEN + 1], x[2 * LS_SEAL_LEN + 1];
        ls__copy_path(c, path, c->logs_dir, e->epoch, e->generation);
        uint8_t seal[LS_SEAL_LEN];
        int rc = read_sealed(b->seal, path, &b->buf[b->ok], &b->len[b->ok], seal);
        if (rc) {
            ls_msgf(msg, msglen, "cannot read %s: %s", path, ls_strerror(rc));
            return rc;
        }
        LS__COPY_COUNT(c, seal_checks, 1);
        LS__COPY_COUNT(c, seal_bytes, b->len[b->ok]);
        if (b->len[b->ok] != e->size || memcmp(seal, e->seal, LS_SEAL_LEN) != 0) {
            ls_hex(seal, LS_SEAL_LEN, a);
            ls_hex(e->seal, LS_SEAL_LEN, x);
            ls_msgf(msg, msglen,
                    "generation %llu: %s is not the file inspected (%zu bytes, seal %s; "
                    "inspected %llu bytes, seal %s): damaged on disk",
                    (unsigned long long) e->generation, path, b->len[b->ok], a,
                    (unsigned long long) e->size, x);
            return LS_ECORRUPT;
        }
        /* facts the inspection established: the chain as the queue holds it */
        if (memcmp(e->prev_digest, prev, LS_DIGEST_SIZE) != 0 ||
            (next_lsn && e->first_lsn != next_lsn)) {
            ls_msgf(msg, msglen,
                    "generation %llu does not follow the store's position (first lsn %llu, "
                    "expected %llu, or another prev_digest)",
                    (unsigned long long) e->generation, (unsigned long long) e->first_lsn,
                    (unsigned long long) next_lsn);
            return LS_ELINEAGE;
        }
        prev = e->digest;
        next_lsn = e->last_lsn + 1;
    }
    return 0;
}

/* Collects a record of the batch (past base_lsn) as an operation to sort. */
static int collect_record(void *ctx, const ls_record_t *r)
{
    batch_t *b = ctx;
    if (r->lsn <= b->base_lsn || (r->type != LS_REC_PUT && r->type != LS_REC_DEL))
        return 0; /* COMMIT: the transaction's end; the batch commits as one */
    if (b->nops == b->ops_cap) {
        size_t cap = b->ops_cap ? b->ops_cap * 2 : 4096;
        op_t *ops = realloc(b->ops, cap * sizeof(*ops));
        if (!ops) return LS_ENOMEM;
        b->ops = ops;
        b->ops_cap = cap;
    }
    b->ops[b->nops] = (op_t){.key = r->key,
                             .value = r->value,
                             .key_len = r->key_len,
                             .value_len = r->value_len,
                             .seq = (uint32_t) b->nops,
                             .type = r->type};
    b->nops++;
    return 0;
}

/* Applies a record directly, in LSN order (when there was no memory to sort). */
static int apply_record(void *ctx, const ls_record_t *r)
{
    void **a = ctx;
    batch_t *b = a[0];
    ls_store_txn_t *txn = a[1];
    if (r->lsn <= b->base_lsn) return 0;
    if (r->type == LS_REC_PUT) return ls_store_put(txn, r->key, r->key_len, r->value, r->value_len);
    if (r->type == LS_REC_DEL) return ls_store_del(txn, r->key, r->key_len);
    return 0;
}

/* LMDB's key order (bytes, then length), then the batch's order. Every key of the batch starts
 * with the same bytes, then pre: comparing pre first is comparing those bytes. */
static int op_cmp(const void *pa, const void *pb)
{
    const op_t *a = pa, *b = pb;
    if (a->pre != b->pre) return a->pre < b->pre ? -1 : 1;
    int c = a->tail && b->tail ? memcmp(a->key, b->key, LS_MIN(a->key_len, b->key_len)) : 0;
    if (c) return c;
    if (a->key_len != b->key_len) return a->key_len < b->key_len ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Parses every verified generation of the batch (trusted: structure only) and collects its
 * operations (cb collect_record) or applies them (cb apply_record). */
static int parse_batch(batch_t *b, ls_record_cb cb, void *ctx)
{
    for (size_t i = 0; i < b->ok; i++) {
        /* The bytes are the ones inspected (their seal matched): structure only, no checksum; the
         * trailer must still carry the inspected digest and the header the inspected chain. The
         * whole file is fed at once, so every record points into b->buf[i]. */
        const ls__copy_entry_t *e = &b->e[i];
        ls_gen_expect_t ex = {.epoch = e->epoch,
                              .generation = e->generation,
                              .prev_digest = e->prev_digest,
                              .known_digest = e->digest};
        ls_gen_info_t info;
        ls_gen_verdict_t v;
        ls_gen_stream_begin(b->st, &ex, LS_GEN_STREAM_TRUSTED);
        int rc = ls_gen_stream_feed(b->st, b->buf[i], b->len[i], cb, ctx);
        if (rc == 0) rc = ls_gen_stream_end(b->st, &info, &v);
        if (rc) return rc;
        LS__COPY_COUNT(b->c, record_checksums, info.record_checksums); /* 0: trusted */
    }
    return 0;
}

/* Parses the batch into b->ops, sorted by key (stable), before the transaction begins. False
 * when there was no memory (the batch is then applied in LSN order); a parse error is kept in
 * *rc. */
static bool sort_batch(batch_t *b, int *rc)
{
    b->nops = 0;
    *rc = parse_batch(b, collect_record, b);
    b->ops_failed = *rc == LS_ENOMEM;
    if (b->ops_failed) *rc = 0;
    if (*rc || b->ops_failed) return false;
    size_t lcp = b->nops ? b->ops[0].key_len : 0;
    for (size_t i = 1; i < b->nops && lcp; i++) {
        const op_t *o = &b->ops[i];
        size_t n = LS_MIN(lcp, (size_t) o->key_len), j = 0;
        while (j < n && o->key[j] == b->ops[0].key[j])
            j++;
        lcp = j;
    }
    for (size_t i = 0; i < b->nops; i++) {
        op_t *o = &b->ops[i];
        uint64_t pre = 0;
        for (size_t j = lcp; j < lcp + 8; j++)
            pre = pre << 8 | (j < o->key_len ? o->key[j] : 0);
        o->pre = pre;
        o->tail = o->key_len > lcp + 8;
    }
    if (b->nops > 1) qsort(b->ops, b->nops, sizeof(*b->ops), op_cmp); /* none: no array (NULL) */
    return true;
}

/* The store callback: the batch's operations in key order, only the last one of each key (the
 * same final state as every record in LSN order, since the batch commits as one), or, without
 * the sorted list, every record past base_lsn in order. Re-runnable (after MDB_MAP_FULL the
 * store calls it again from the start). */
static int apply_fn(void *ctx, ls_store_txn_t *txn)
{
    batch_t *b = ctx;
    if (b->ops_failed) {
        void *a[2] = {b, txn};
        int rc = parse_batch(b, apply_record, a);
        if (rc) return rc;
    } else {
        for (size_t i = 0; i < b->nops; i++) {
            const op_t *o = &b->ops[i];
            if (i + 1 < b->nops && o->pre == o[1].pre && o->key_len == o[1].key_len &&
                (!o->tail || memcmp(o->key, o[1].key, o->key_len) == 0))
                continue; /* a later write of the same key follows */
            int rc = o->type == LS_REC_PUT
                         ? ls_store_put(txn, o->key, o->key_len, o->value, o->value_len)
                         : ls_store_del(txn, o->key, o->key_len);
            if (rc) return rc;
            if (i % RELEASE_OPS == RELEASE_OPS - 1) ls_store_txn_release_pages(txn);
        }
    }
    if (LS_FAULT("copy.replay.before_commit")) return LS_EIO;
    return 0;
}

/* A store error: DISK_FULL (retried) or FAILED (mu not held). */
static void store_failed(ls_copy_t *c, const batch_t *b, int rc)
{
    char reason[512];
    ls_msgf(reason, sizeof(reason),
            "copy %s: applying generations %llu..%llu to the store failed: %s", c->dir,
            (unsigned long long) b->e[0].generation,
            (unsigned long long) b->e[b->ok - 1].generation, ls_strerror(rc));
    ls_copy_state_t st = rc == LS_ENOSPC ? LS_COPY_DISK_FULL : LS_COPY_FAILED;
    pthread_mutex_lock(&c->mu);
    bool changed = ls__copy_set_state(c, st, reason);
    pthread_mutex_unlock(&c->mu);
    if (changed) ls__copy_emit(c, LS_COPY_EV_STATE, 0, 0, (int) st, reason);
}

/* Applies the verified prefix in one transaction with its meta record. */
static int apply(ls_copy_t *c, batch_t *b, ls_store_meta_t *nm)
{
    const ls__copy_entry_t *last = &b->e[b->ok - 1];
    b->base_lsn = nm->lsn;
    nm->epoch = last->epoch;
    nm->generation = last->generation;
    nm->digest_generation = last->generation;
    memcpy(nm->digest, last->digest, LS_DIGEST_SIZE);
    nm->shadow_end = 0; /* generation applied completely: no early-apply proof left */
    memset(nm->shadow_seal, 0, sizeof(nm->shadow_seal));
    nm->lsn = LS_MAX(nm->lsn, last->last_lsn);
    for (size_t i = 0; i < b->ok; i++)
        nm->txid = LS_MAX(nm->txid, b->e[i].last_txid);
    nm->applied_generations += b->ok;
    int rc = 0;
    sort_batch(b, &rc);
    if (rc == 0) rc = ls_store_apply(c->store, apply_fn, b, nm);
    if (rc) {
        store_failed(c, b, rc);
        return rc;
    }
    LS_FAULT("copy.replay.after_commit");
    ls_store_release_pages(c->store);
    return 0;
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

/* Verifies and applies the n ready entries at the head of the queue (mu not held). Returns
 * a store error (the replayer then waits before trying again) or 0. */
static int replay_batch(ls_copy_t *c, batch_t *b, ls_store_meta_t *m)
{
    char msg[512] = "";
    int vrc = verify(c, b, m, msg, sizeof(msg));
    int rc = 0;
    if (b->ok && ls__copy_shadow_check(c, &b->e[0], b->buf[0], b->len[0], m) != 0)
        b->ok = vrc = 0; /* the store applied other bytes early: FAILED, nothing applied */
    if (b->ok) {
        ls_store_meta_t nm = *m;
        rc = apply(c, b, &nm);
        if (rc == 0) {
            pthread_mutex_lock(&c->mu);
            c->meta = nm;
            for (size_t i = 0; i < b->ok; i++)
                c->q_bytes -= c->q[i].size;
            memmove(c->q, c->q + b->ok, (c->qlen - b->ok) * sizeof(*c->q));
            c->qlen -= b->ok;
            c->replay_txns++;
            bool healthy =
                c->state == LS_COPY_DISK_FULL && ls__copy_set_state(c, LS_COPY_HEALTHY, "");
            pthread_mutex_unlock(&c->mu);
            c->dirty = true;
            if (healthy) ls__copy_emit(c, LS_COPY_EV_STATE, 0, 0, LS_COPY_HEALTHY, "");
            ls__copy_emit(c, LS_COPY_EV_REPLAYED, nm.digest_generation, nm.lsn, 0, "");
        }
    }
    if (vrc && rc == 0) damaged(c, b->e[b->ok].generation, vrc, msg);
    for (size_t i = 0; i < b->n; i++)
        free(b->buf[i]);
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

static void wait_ns(ls_copy_t *c, uint64_t ns)
{
    ls_cond_wait_until(&c->cv, &c->mu, ls_mono_ns() + ns);
}

void *ls__copy_replayer(void *arg)
{
    ls_copy_t *c = arg;
    batch_t *b = calloc(1, sizeof(*b));
    LS_CHECK(b != NULL);
    b->c = c;
    b->seal = ls_seal_new();
    b->st = ls_gen_stream_new();
    LS_CHECK(b->seal != NULL && b->st != NULL);
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        uint64_t wait;
        bool holding;
        size_t n = ready(c, &wait, &holding);
        if (n == 0 && ls__copy_shadow_due(c)) { /* block mode: the open generation, early */
            pthread_mutex_unlock(&c->mu);
            int rc = ls__copy_shadow_apply(c);
            if (c->dirty && ls_mono_ns() - c->last_ckpt >= c->o.checkpoint_ms * 1000000ull)
                ls__copy_checkpoint(c); /* reports that never pause still get checkpoints */
            pthread_mutex_lock(&c->mu);
            if (rc && !c->stop) wait_ns(c, ERROR_WAIT_NS);
            continue;
        }
        if (n == 0) {
            /* Idle: checkpoint now if the receiver has been quiet IDLE_CKPT_NS (or the interval
             * is over), not between the generations of a steady stream, whose receives would
             * wait for the store's syncs. */
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
                pthread_mutex_lock(&c->mu);
                if (c->stop || ready(c, &wait, &holding) != 0) continue;
            }
            if (!c->stop) wait_ns(c, wait);
            continue;
        }
        b->n = n;
        memcpy(b->e, c->q, n * sizeof(*b->e));
        memset(b->buf, 0, sizeof(b->buf));
        ls_store_meta_t m = c->meta;
        pthread_mutex_unlock(&c->mu);
        int rc = replay_batch(c, b, &m);
        if (c->dirty && ls_mono_ns() - c->last_ckpt >= c->o.checkpoint_ms * 1000000ull)
            ls__copy_checkpoint(c);
        pthread_mutex_lock(&c->mu);
        if (rc && !c->stop) wait_ns(c, ERROR_WAIT_NS);
    }
    pthread_mutex_unlock(&c->mu);
    if (c->dirty) ls__copy_checkpoint(c);
    ls_seal_free(b->seal);
    ls_gen_stream_free(b->st);
    free(b->ops);
    free(b);
    return NULL;
}
