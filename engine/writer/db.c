/*
 * db: the public API of include/logship/db.h: open/close, transactions, reads, stats.
 * The commit itself is the pipeline's work (flusher.c, then applier.c); txn.c queues and waits.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "writer/writer_int.h"

static __thread char open_err[768];

const char *ls_db_open_error(void)
{
    return open_err;
}

void ls__db_fail(ls_db_t *db, int err, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&db->mu);
    if (!db->failed) {
        db->failed = err;
        snprintf(db->errmsg, sizeof(db->errmsg), "%s", msg);
    }
    pthread_cond_broadcast(&db->space); /* a flusher waiting for the applier goes on, to fail */
    pthread_mutex_unlock(&db->mu);
    LS_LOGE("writer", "%s: database failed: %s (%s)", db->dir, msg, ls_strerror(err));
}

/* Fills defaults and checks the options. */
static int resolve_options(ls_db_t *db, const ls_db_options_t *in)
{
    ls_db_options_t o = in ? *in : (ls_db_options_t){0};
    if (!o.max_generation) o.max_generation = 64ull * 1024 * 1024;
    if (!o.target_size) o.target_size = LS_GEN_DEFAULT_SIZE;
    if (!o.idle_roll_ms) o.idle_roll_ms = 5000;
    if (!o.map_size) o.map_size = 64ull * 1024 * 1024;
    if (!o.checkpoint_ms) o.checkpoint_ms = 10000;
    if (!o.prefix) o.prefix = LS_GEN_PREFIX_DEFAULT;
    if (!o.overlay_max) o.overlay_max = 64ull * 1024 * 1024;
    uint64_t min = LS_GEN_HEADER_SIZE + LS_GEN_TRAILER_SIZE + 2 * LS_REC_HEADER_SIZE;
    char name[LS_GEN_NAME_MAX];
    if (o.max_generation > LS_GEN_HARD_CAP || o.target_size < min ||
        o.target_size > o.max_generation) {
        snprintf(open_err, sizeof(open_err),
                 "invalid sizes: target_size %llu, max_generation %llu (need %llu <= target <= "
                 "max <= %u)",
                 (unsigned long long) o.target_size, (unsigned long long) o.max_generation,
                 (unsigned long long) min, LS_GEN_HARD_CAP);
        return LS_EINVAL;
    }
    if ((unsigned) o.commit_level > LS_COMMIT_REMOTE_APPLIED) {
        snprintf(open_err, sizeof(open_err),
                 "invalid commit_level %u (0 local, 1 remote_durable, 2 remote_applied)",
                 (unsigned) o.commit_level);
        return LS_EINVAL;
    }
    if (!o.sync_copies) o.sync_copies = 1;
    if (o.sync_copies > LS_CTL_COPIES_MAX) {
        snprintf(open_err, sizeof(open_err),
                 "invalid sync_copies %u: at most %d (the copies whose positions the control page "
                 "holds)",
                 o.sync_copies, LS_CTL_COPIES_MAX);
        return LS_EINVAL;
    }
    if (o.sync_timeout_ms > 3600000) {
        snprintf(open_err, sizeof(open_err),
                 "invalid sync_timeout_ms %llu: at most 3600000 (an hour; 0 waits forever)",
                 (unsigned long long) o.sync_timeout_ms);
        return LS_EINVAL;
    }
    if (ls_gen_name(name, sizeof(name), o.prefix, 1, 1) != 0) {
        snprintf(open_err, sizeof(open_err), "invalid log prefix '%s'", o.prefix);
        return LS_EINVAL;
    }
    snprintf(db->prefix, sizeof(db->prefix), "%s", o.prefix);
    o.prefix = db->prefix;
    db->opts = o;
    return 0;
}

static ls_db_t *db_new(const char *dir)
{
    ls_db_t *db = calloc(1, sizeof(*db));
    if (!db) return NULL;
    if (ls__ov_init(&db->ov) != 0) {
        free(db);
        return NULL;
    }
    db->fd = db->lock_fd = db->next_fd = db->bell = -1;
    snprintf(db->dir, sizeof(db->dir), "%s", dir);
    pthread_mutex_init(&db->mu, NULL);
    pthread_mutex_init(&db->log_mu, NULL);
    pthread_mutex_init(&db->store_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&db->wake, &ca);
    pthread_cond_init(&db->applyq, &ca);
    pthread_cond_init(&db->syncq, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&db->done, NULL);
    pthread_cond_init(&db->space, NULL);
    pthread_cond_init(&db->prepq, NULL);
    return db;
}

static void db_free(ls_db_t *db)
{
    if (db->fd >= 0) close(db->fd);
    if (db->next_fd >= 0) close(db->next_fd); /* prepared, unused: the next open redoes it */
    ls_ctlpage_close(db->ctl);
    if (db->bell >= 0) close(db->bell);
    ls_store_close(db->store);
    if (db->lock_fd >= 0) close(db->lock_fd); /* releases the flock, last */
    ls_sha256_free(db->sha);
    free(db->buf);
    ls__keysort_free(&db->ks);
    for (ls_txn_t *t = db->dead, *next; t; t = next) {
        next = t->next;
        ls_txn_abort(t);
    }
    ls__ov_destroy(&db->ov);
    pthread_mutex_destroy(&db->mu);
    pthread_mutex_destroy(&db->log_mu);
    pthread_mutex_destroy(&db->store_mu);
    pthread_cond_destroy(&db->wake);
    pthread_cond_destroy(&db->applyq);
    pthread_cond_destroy(&db->syncq);
    pthread_cond_destroy(&db->done);
    pthread_cond_destroy(&db->space);
    pthread_cond_destroy(&db->prepq);
    free(db);
}

/* Takes <dir>/lock exclusively (flock), so one process and one handle write a database.
 * Messages name the path only (bounded: open_err is fixed-size). */
static int lock_dir(ls_db_t *db)
{
    char path[LS__PATH_MAX + 16];
    struct stat st;
    snprintf(path, sizeof(path), "%s/history", db->logs);
    if (db->opts.no_create && stat(path, &st) != 0) {
        snprintf(open_err, sizeof(open_err), "no database at %.600s (history missing)", db->dir);
        return LS_ENOENT;
    }
    int rc = ls_mkdir_p(db->dir);
    snprintf(path, sizeof(path), "%s/lock", db->dir);
    if (rc == 0 && (db->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
        rc = ls_err_from_errno(errno);
    if (rc) {
        snprintf(open_err, sizeof(open_err), "cannot create %.600s: %s", path, ls_strerror(rc));
        return rc;
    }
    if (flock(db->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? LS_EBUSY : ls_err_from_errno(errno);
        snprintf(open_err, sizeof(open_err),
                 "database %.600s is open already (lock held by another handle or process)",
                 db->dir);
        return rc;
    }
    return 0;
}

/* The fence's message: names the new active and its epoch (docs/ACTIVATION.md). */
static void fence_msg(ls_db_t *db, char *out, size_t len)
{
    ls_ctl_fence_t f;
    ls_ctlpage_fence(db->ctl, &f);
    if (ls_ctlpage_held(db->ctl))
        ls_msgf(out, len,
                "database %.600s is fenced: %s becomes the active in epoch %u (a planned "
                "switchover holds it); this node refuses commits",
                db->dir, f.name[0] ? f.name : "another node", f.epoch);
    else
        ls_msgf(out, len,
                "database %.600s is fenced: %s became active in epoch %u; this node must not "
                "write it any more (demoted or diverged, see logship status)",
                db->dir, f.name[0] ? f.name : "another node", f.epoch);
}

/* A switchover's hold (log_mu held): the current log is closed when it holds records, so the
 * last generation of the epoch can be shipped, and the hold acknowledged in the control page
 * with the last generation closed and the last LSN. Under log_mu no batch is half written: a
 * batch that passed the check before the hold was set is in the generation closed here. The
 * refusal is not sticky: once the hold is cleared, commits are accepted again. */
static void hold(ls_db_t *db, const char *msg)
{
    int rc = 0;
    if (db->log_size > LS_GEN_HEADER_SIZE && (rc = ls__roll(db)) != 0)
        ls__db_fail(db, rc, "cannot close generation %llu for a switchover's hold",
                    (unsigned long long) db->gen);
    if (rc == 0) ls_ctlpage_ack_hold(db->ctl, db->last_closed, db->last_lsn);
    pthread_mutex_lock(&db->mu);
    if (!db->failed) snprintf(db->errmsg, sizeof(db->errmsg), "%.500s", msg);
    pthread_mutex_unlock(&db->mu);
}

int ls__db_check_fence(ls_db_t *db)
{
    if (!db->ctl || !ls_ctlpage_fenced(db->ctl)) return 0;
    char msg[1024];
    fence_msg(db, msg, sizeof(msg));
    if (ls_ctlpage_held(db->ctl))
        hold(db, msg);
    else
        ls__db_fail(db, LS_EFENCED, "%s", msg);
    return LS_EFENCED;
}

void ls__db_publish(ls_db_t *db, uint64_t offset, bool open)
{
    if (!db->ctl) return;
    ls_ctl_durable_t d = {.generation = db->gen,
                          .offset = offset,
                          .lsn = db->last_lsn,
                          .time_ns = ls_now_ns(),
                          .epoch = db->epoch,
                          .pid = open ? (uint32_t) getpid() : 0};
    if (!open) ls_ctlpage_set_bell(db->ctl, 0); /* the daemon goes back to the futex */
    ls_ctlpage_publish_durable(db->ctl, &d);
    if (db->bell >= 0 && ls_ctlpage_take_bell(db->ctl)) ls_ctlpage_bell_ring(db->bell);
}

/* Maps <dir>/control and refuses a fenced directory before recovery writes anything. */
static int open_control(ls_db_t *db)
{
    char msg[512] = "";
    int rc = ls_ctlpage_open(db->dir, true, &db->ctl, msg, sizeof(msg));
    if (rc) {
        snprintf(open_err, sizeof(open_err), "cannot open database %.200s: %s", db->dir, msg);
        return rc;
    }
    if (ls_ctlpage_fenced(db->ctl)) {
        fence_msg(db, open_err, sizeof(open_err));
        return LS_EFENCED;
    }
    /* -1: the daemon sleeps on the futex as before ("writer.doorbell": a writer without it) */
    db->bell = LS_FAULT("writer.doorbell") ? -1 : ls_ctlpage_bell_open(db->dir);
    return 0;
}

/* Stops the flusher once it drained the commit queue, then the syncer (the commits waiting for
 * copies get LS_ECLOSED), then the applier once it applied (or failed) every batch the flusher
 * handed it: no committer is left waiting. */
static void stop_threads(ls_db_t *db)
{
    pthread_mutex_lock(&db->mu);
    db->stopping = true;
    pthread_cond_signal(&db->wake);
    pthread_mutex_unlock(&db->mu);
    if (db->running) pthread_join(db->thread, NULL);
    db->running = false;
    ls__sync_stop(db);
    pthread_mutex_lock(&db->mu);
    db->apply_stopping = true;
    pthread_cond_signal(&db->applyq);
    pthread_mutex_unlock(&db->mu);
    if (db->applier_running) pthread_join(db->applier, NULL);
    db->applier_running = false;
    pthread_mutex_lock(&db->mu);
    db->prep_stopping = true;
    pthread_cond_signal(&db->prepq);
    pthread_mutex_unlock(&db->mu);
    if (db->prep_running) pthread_join(db->prep, NULL);
    db->prep_running = false;
}

int ls_db_open(const char *dir, const ls_db_options_t *opts, ls_db_t **out)
{
    *out = NULL;
    open_err[0] = 0;
    if (!dir || strlen(dir) > LS__PATH_MAX - 64) {
        snprintf(open_err, sizeof(open_err), "database directory path missing or too long");
        return LS_EINVAL;
    }
    ls_db_t *db = db_new(dir);
    if (!db) return LS_ENOMEM;
    int rc = resolve_options(db, opts);
    if (rc) goto fail;
    snprintf(db->logs, sizeof(db->logs), "%s/logs", dir);
    snprintf(db->cur_path, sizeof(db->cur_path), "%s/%s.log", db->logs, db->prefix);
    snprintf(db->next_path, sizeof(db->next_path), "%s/%s.next", db->logs, db->prefix);
    if ((rc = lock_dir(db)) != 0) goto fail;
    if ((rc = open_control(db)) != 0) goto fail;
    char msg[512] = "";
    rc = ls__writer_recover(db, msg, sizeof(msg));
    if (rc) {
        snprintf(open_err, sizeof(open_err), "cannot open database %s: %s", dir, msg);
        goto fail;
    }
    db->last_append_ns = db->last_ckpt_ns = ls_mono_ns();
    if ((rc = ls__sync_start(db)) != 0) {
        snprintf(open_err, sizeof(open_err), "cannot start the synchronous commit thread");
        goto fail;
    }
    if ((rc = pthread_create(&db->applier, NULL, ls__applier_main, db)) != 0) {
        rc = ls_err_from_errno(rc);
        snprintf(open_err, sizeof(open_err), "cannot start the applier thread");
        goto fail;
    }
    db->applier_running = true;
    if ((rc = pthread_create(&db->thread, NULL, ls__flusher_main, db)) != 0) {
        rc = ls_err_from_errno(rc);
        snprintf(open_err, sizeof(open_err), "cannot start the flusher thread");
        goto fail;
    }
    db->running = true;
    db->prep_want = true;
    if ((rc = pthread_create(&db->prep, NULL, ls__prep_main, db)) != 0) {
        rc = ls_err_from_errno(rc);
        snprintf(open_err, sizeof(open_err), "cannot start the log prep thread");
        goto fail;
    }
    db->prep_running = true;
    pthread_mutex_lock(&db->log_mu);
    if (db->bell >= 0) ls_ctlpage_set_bell(db->ctl, (uint32_t) getpid());
    ls__db_publish(db, 0, true); /* recovered bytes go with the first batch's position */
    pthread_mutex_unlock(&db->log_mu);
    *out = db;
    return 0;
fail:
    stop_threads(db);
    db_free(db);
    return rc;
}

static int no_records(void *ctx, ls_store_txn_t *txn)
{
    (void) ctx;
    (void) txn;
    return 0;
}

/* Closing under a switchover's hold (store_mu held, the applier stopped): every record applied
 * and the current log empty, so the store's position names the last closed generation as
 * applied completely (with its digest). A copy then opened on this directory (the old active
 * becoming the new active's copy) starts after it instead of replaying it a second time. */
static int mark_complete(ls_db_t *db)
{
    if (!db->last_closed || db->gen != db->last_closed + 1 || db->log_size > LS_GEN_HEADER_SIZE)
        return 0;
    ls_store_meta_t m;
    ls_store_meta(db->store, &m);
    if (m.lsn != db->last_lsn || m.digest_generation >= db->last_closed) return 0;
    m.generation = m.digest_generation = db->last_closed;
    memcpy(m.digest, db->prev_digest, LS_DIGEST_SIZE);
    return ls_store_apply(db->store, no_records, NULL, &m);
}

int ls_db_close(ls_db_t *db)
{
    if (!db) return 0;
    stop_threads(db);
    pthread_mutex_lock(&db->mu); /* every committer told: let them leave before db is freed */
    while (db->committers)
        pthread_cond_wait(&db->done, &db->mu);
    pthread_mutex_unlock(&db->mu);
    pthread_mutex_lock(&db->log_mu);
    int rc = db->failed;
    if (!rc) rc = ls__db_check_fence(db); /* a fenced database writes nothing more */
    bool held = db->ctl && ls_ctlpage_held(db->ctl);
    if (rc == LS_EFENCED && held) { /* held: closed its log, acknowledged */
        pthread_mutex_lock(&db->mu);
        rc = db->failed;
        pthread_mutex_unlock(&db->mu);
    }
    if (!rc && (rc = ls__roll(db)) != 0)
        ls__db_fail(db, rc, "cannot close generation %llu at close", (unsigned long long) db->gen);
    ls__db_publish(db, 0, false);
    pthread_mutex_unlock(&db->log_mu);
    pthread_mutex_lock(&db->store_mu);
    if (!rc && held && (rc = mark_complete(db)) != 0)
        ls__db_fail(db, rc, "cannot record generation %llu as applied at close",
                    (unsigned long long) db->last_closed);
    if (!rc && (rc = ls__checkpoint(db)) != 0)
        ls__db_fail(db, rc, "store checkpoint failed at close");
    pthread_mutex_unlock(&db->store_mu);
    db_free(db);
    return rc;
}

const char *ls_db_errmsg(ls_db_t *db)
{
    pthread_mutex_lock(&db->mu);
    const char *m = db->errmsg; /* written once (sticky), so the pointer stays meaningful */
    pthread_mutex_unlock(&db->mu);
    return m;
}

int ls_db_stats(ls_db_t *db, ls_db_stats_t *out)
{
    ls_store_meta_t m;
    pthread_mutex_lock(&db->log_mu);
    ls_store_meta(db->store, &m);
    *out = db->stats;
    memcpy(out->dbid, db->dbid, LS_DBID_LEN);
    out->epoch = db->epoch;
    out->current_generation = db->gen;
    out->last_closed = db->last_closed;
    out->last_lsn = db->last_lsn;
    out->last_txid = db->last_txid;
    out->checkpoint_lsn = m.checkpoint_lsn;
    out->applied_lsn = m.lsn;
    pthread_mutex_unlock(&db->log_mu);
    pthread_mutex_lock(&db->mu);
    out->commits = db->commits;
    out->applies = db->applies;
    out->unapplied_bytes = db->unapplied;
    out->overlay_waits = db->space_waits;
    out->led_batches = db->led;
    out->next_prepared = db->next_fd >= 0;
    out->sync_waits = db->sync_waits;
    out->sync_timeouts = db->sync_timeouts;
    out->sync_state = db->sync.state;
    out->sync_switches = db->sync.switches;
    pthread_mutex_unlock(&db->mu);
    out->overlay_keys = ls__ov_count(&db->ov);
    return 0;
}

/* The overlay first: it holds the acknowledged writes the store does not yet. A key it does not
 * know is in the store as of the lookup (entries leave only once the store holds them), and the
 * store only moves forward, so the read sees every commit acknowledged before it began. */
int ls_db_get(ls_db_t *db, const void *key, size_t key_len, void **val, size_t *val_len)
{
    int rc = ls__ov_get(&db->ov, key, key_len, val, val_len);
    return rc == 1 ? ls_store_get(db->store, key, key_len, val, val_len) : rc;
}

/* Runs op with lock held unless the database has failed; a failure of op fails it. */
static int locked_op(ls_db_t *db, pthread_mutex_t *lock, int (*op)(ls_db_t *), const char *what)
{
    pthread_mutex_lock(lock);
    pthread_mutex_lock(&db->mu);
    int rc = db->failed;
    pthread_mutex_unlock(&db->mu);
    if (!rc && (rc = op(db)) != 0) ls__db_fail(db, rc, "%s failed", what);
    pthread_mutex_unlock(lock);
    return rc;
}

static int roll_unless_fenced(ls_db_t *db)
{
    int rc = ls__db_check_fence(db);
    return rc ? rc : ls__roll(db);
}

int ls_db_roll(ls_db_t *db)
{
    return locked_op(db, &db->log_mu, roll_unless_fenced, "roll");
}

/* Needs only the store: the log goes on meanwhile. The applier first applies every batch durable
 * at the call (instead of gathering more); batches acknowledged meanwhile go to a later
 * checkpoint (the log holds them). */
int ls_db_checkpoint(ls_db_t *db)
{
    ls__applier_flush(db); /* the applier may be gathering batches: they go in first */
    return locked_op(db, &db->store_mu, ls__checkpoint, "checkpoint");
}
