/* The copy object: open/close, state, events, figures (see copy.h for lifecycle and threads). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy/copy_int.h"

#define DEFAULT_KEEP_LOGS     8
#define DEFAULT_MAX_FAILURES  3
#define DEFAULT_CHECKPOINT_MS 1000
#define DEFAULT_BATCH_GENS    64
#define DEFAULT_BATCH_BYTES   (64ull * 1024 * 1024)
#define DEFAULT_BATCH_PAGES   65536u
#define DEFAULT_MAP_SIZE      (64ull * 1024 * 1024) /* engine/store's default */
#define MAP_ROUND             (1024ull * 1024)

void ls__copy_emit(ls_copy_t *c, ls_copy_event_kind_t kind, uint64_t gen, uint64_t lsn, int code,
                   const char *msg)
{
    if (!c->o.event_cb) return;
    ls_copy_event_t ev = {
        .kind = kind, .generation = gen, .lsn = lsn, .code = code, .message = msg ? msg : ""};
    c->o.event_cb(c->o.event_ctx, &ev);
}

bool ls__copy_set_state(ls_copy_t *c, ls_copy_state_t st, const char *reason)
{
    bool changed = c->state != st || strcmp(c->reason, reason ? reason : "") != 0;
    c->state = st;
    ls_msgf(c->reason, sizeof(c->reason), "%s", reason ? reason : "");
    if (changed && st != LS_COPY_HEALTHY) LS_LOGW("copy", "%s: %s", c->dir, c->reason);
    return changed;
}

void ls__copy_store_failed(ls_copy_t *c, int rc, const char *reason)
{
    ls_copy_state_t st = rc == LS_ENOSPC ? LS_COPY_DISK_FULL : LS_COPY_FAILED;
    pthread_mutex_lock(&c->mu);
    bool changed = ls__copy_set_state(c, st, reason);
    pthread_mutex_unlock(&c->mu);
    if (changed) ls__copy_emit(c, LS_COPY_EV_STATE, 0, 0, (int) st, reason);
}

bool ls__copy_count_failure(ls_copy_t *c, uint64_t gen, const char *why)
{
    c->inspect_failures++;
    c->ask_agains++;
    if (c->fail_gen == gen) {
        c->fail_count++;
    } else {
        c->fail_gen = gen;
        c->fail_count = 1;
    }
    if (c->fail_count < c->o.max_inspect_failures || c->state == LS_COPY_FAILED) return false;
    char reason[sizeof(c->reason)];
    ls_msgf(reason, sizeof(reason), "generation %llu failed inspection %u times in a row: %.400s",
            (unsigned long long) gen, c->fail_count, why);
    return ls__copy_set_state(c, LS_COPY_FAILED, reason);
}

int ls__copy_queue_push(ls_copy_t *c, const ls__copy_entry_t *e)
{
    if (c->qlen == c->qcap) {
        size_t cap = c->qcap ? c->qcap * 2 : 64;
        ls__copy_entry_t *q = realloc(c->q, cap * sizeof(*q));
        if (!q) return LS_ENOMEM;
        c->q = q;
        c->qcap = cap;
    }
    c->q[c->qlen] = *e;
    c->q[c->qlen++].queued_ns = ls_mono_ns();
    c->q_bytes += e->size;
    return 0;
}

void ls__copy_path(const ls_copy_t *c, char *out, const char *dir, uint32_t epoch, uint64_t gen)
{
    char name[LS_GEN_NAME_MAX];
    ls_gen_name(name, sizeof(name), c->prefix, epoch, gen); /* prefix validated at open */
    ls_msgf(out, LS__COPY_PATH_MAX, "%s/%s", dir, name);
}

uint64_t ls__copy_map_size(const ls_copy_t *c)
{
    uint64_t size = c->o.map_size ? c->o.map_size : DEFAULT_MAP_SIZE;
    char file[LS__COPY_PATH_MAX + 16];
    struct stat st;
    ls_msgf(file, sizeof(file), "%s/data.mdb", c->store_dir);
    if (stat(file, &st) == 0 && st.st_size > 0) {
        uint64_t twice = ((uint64_t) st.st_size * 2 + MAP_ROUND - 1) / MAP_ROUND * MAP_ROUND;
        size = LS_MAX(size, twice);
    }
    return size;
}

int ls__copy_open_store(ls_copy_t *c, char *err, size_t errlen)
{
    ls_store_options_t so = {.map_size = ls__copy_map_size(c), .create = true, .dbid = c->dbid};
    ls_store_t *s = NULL;
    int rc = ls_store_open(c->store_dir, &so, &s, err, errlen);
    if (rc) return rc;
    c->store = s;
    ls_store_meta(s, &c->meta);
    return 0;
}

/* Fills the defaults and the directory names. */
static int init_options(ls_copy_t *c, const ls_copy_options_t *o, char *err, size_t errlen)
{
    const char *prefix = o->prefix ? o->prefix : LS_GEN_PREFIX_DEFAULT;
    char probe[LS_GEN_NAME_MAX];
    if (!o->dir || !*o->dir || strlen(o->dir) > LS__COPY_PATH_MAX - 64 ||
        ls_gen_name(probe, sizeof(probe), prefix, 1, 1) != 0) {
        ls_msgf(err, errlen, "copy: a directory (at most %d bytes) and a valid prefix are needed",
                LS__COPY_PATH_MAX - 64);
        return LS_EINVAL;
    }
    c->o = *o;
    if (!c->o.keep_logs) c->o.keep_logs = DEFAULT_KEEP_LOGS;
    if (!c->o.max_inspect_failures) c->o.max_inspect_failures = DEFAULT_MAX_FAILURES;
    if (!c->o.checkpoint_ms) c->o.checkpoint_ms = DEFAULT_CHECKPOINT_MS;
    if (!c->o.batch_generations) c->o.batch_generations = DEFAULT_BATCH_GENS;
    if (!c->o.batch_bytes) c->o.batch_bytes = DEFAULT_BATCH_BYTES;
    if (!c->o.batch_pages) c->o.batch_pages = DEFAULT_BATCH_PAGES;
    c->o.dir = c->dir;
    c->o.prefix = c->prefix;
    c->o.dbid = NULL;
    ls_msgf(c->prefix, sizeof(c->prefix), "%s", prefix);
    ls_msgf(c->dir, sizeof(c->dir), "%s", o->dir);
    ls_msgf(c->inspect_dir, sizeof(c->inspect_dir), "%s/inspect", o->dir);
    ls_msgf(c->logs_dir, sizeof(c->logs_dir), "%s/logs", o->dir);
    ls_msgf(c->store_dir, sizeof(c->store_dir), "%s/store", o->dir);
    ls_msgf(c->shadow_dir, sizeof(c->shadow_dir), "%s/shadow", o->dir);
    ls_msgf(c->pool_dir, sizeof(c->pool_dir), "%s/pool", o->dir);
    if (o->dbid) {
        memcpy(c->dbid, o->dbid, LS_DBID_LEN);
        c->have_dbid = true;
    }
    return 0;
}

int ls_copy_open(const ls_copy_options_t *opts, ls_copy_t **out, char *err, size_t errlen)
{
    *out = NULL;
    ls_copy_t *c = calloc(1, sizeof(*c));
    if (!c) return LS_ENOMEM;
    c->rx.fd = -1;
    c->shf.fd = -1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = init_options(c, opts, err, errlen);
    if (rc == 0 && ((rc = ls_mkdir_p(c->inspect_dir)) || (rc = ls_mkdir_p(c->logs_dir)) ||
                    (rc = ls_mkdir_p(c->shadow_dir))))
        ls_msgf(err, errlen, "copy %s: cannot create its directories: %s", c->dir, ls_strerror(rc));
    if (rc == 0) rc = ls__copy_recover(c, err, errlen);
    if (rc == 0) rc = ls__copy_shadow_restore(c, err, errlen); /* before anything reads it */
    if (rc) {
        ls_copy_close(c);
        return rc;
    }
    if (c->o.prealloc_files >= 0) { /* without it, each receive makes a new file */
        char why[512] = "";
        ls_prealloc_options_t po = {.dir = c->pool_dir,
                                    .count =
                                        c->o.prealloc_files ? (unsigned) c->o.prealloc_files : 8,
                                    .label = c->dir};
        if (ls_prealloc_open(&po, &c->pool, why, sizeof(why)) != 0) LS_LOGW("copy", "%s", why);
    }
    c->last_ckpt = ls_mono_ns();
    *out = c;
    return 0;
}

void ls_copy_close(ls_copy_t *c)
{
    if (!c) return;
    ls__copy_flush_durable(c, NULL, 0); /* generations the receiver left pending */
    ls_copy_stop(c);
    ls_copy_recv_abort(c);
    ls_prealloc_close(c->pool); /* after the replayer, which gives it pruned logs */
    c->pool = NULL;
    ls__copy_rx_free(c);
    ls__copy_shadow_close(c);
    if (c->store) {
        if (c->dirty) ls__copy_checkpoint(c);
        ls_store_close(c->store);
    }
    ls__copy_shadow_free(c);
    free(c->q);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

int ls_copy_start(ls_copy_t *c)
{
    if (c->running) return LS_ESTATE;
    pthread_mutex_lock(&c->mu);
    c->stop = false;
    pthread_mutex_unlock(&c->mu);
    if (pthread_create(&c->thread, NULL, ls__copy_replayer, c) != 0) return LS_ENOMEM;
    c->running = true;
    return 0;
}

void ls_copy_stop(ls_copy_t *c)
{
    if (!c->running) return;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    c->running = false;
}

void ls_copy_pause_replay(ls_copy_t *c, bool paused)
{
    pthread_mutex_lock(&c->mu);
    c->paused = paused;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void ls_copy_clear_failed(ls_copy_t *c)
{
    pthread_mutex_lock(&c->mu);
    bool changed = c->state == LS_COPY_FAILED && ls__copy_set_state(c, LS_COPY_HEALTHY, "");
    c->fail_count = 0;
    c->fail_gen = 0;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (changed) ls__copy_emit(c, LS_COPY_EV_STATE, 0, 0, LS_COPY_HEALTHY, "");
}

void ls_copy_resume_point(ls_copy_t *c, ls_copy_resume_t *out)
{
    pthread_mutex_lock(&c->mu);
    out->epoch = c->held_epoch;
    out->next_generation = c->held_gen + 1;
    memcpy(out->digest, c->held_digest, LS_DIGEST_SIZE);
    /* unknown only right after a seed: the store then holds through meta.lsn */
    out->last_lsn = c->held_lsn ? c->held_lsn : c->meta.lsn;
    pthread_mutex_unlock(&c->mu);
}

ls_copy_state_t ls_copy_state(ls_copy_t *c, char *reason, size_t reason_len)
{
    pthread_mutex_lock(&c->mu);
    ls_copy_state_t st = c->state;
    if (reason && reason_len) ls_msgf(reason, reason_len, "%s", c->reason);
    pthread_mutex_unlock(&c->mu);
    return st;
}

void ls_copy_stats(ls_copy_t *c, ls_copy_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&c->mu);
    out->state = c->state;
    ls_msgf(out->reason, sizeof(out->reason), "%s", c->reason);
    out->replay_paused = c->paused;
    out->last_durable = c->durable_gen;
    out->last_inspected = c->held_gen;
    out->last_replayed = c->meta.digest_generation;
    out->last_replayed_lsn = c->meta.lsn;
    out->applied_lsn = c->meta.lsn;
    if (c->sh.pend_lsn && c->meta.lsn == c->sh.pend_lsn && c->meta.generation == c->sh.pend_gen)
        out->applied_lsn = c->sh.ack_lsn; /* that commit may not be durable yet */
    out->shadow_generation = c->sh.generation;
    out->shadow_size = c->sh.size;
    out->shadow_durable_lsn = c->sh.durable_lsn;
    out->shadow_applied_lsn = c->sh.applied_lsn;
    out->shadow_applies = c->sh.applies;
    out->shadow_lazy = c->sh.lazy;
    out->last_synced = c->synced_gen;
    out->inspect_queue = c->rx_inspecting ? 1 : 0;
    out->inspect_queue_bytes = c->rx_inspecting ? c->rx_bytes_done : 0;
    out->replay_queue = c->qlen;
    out->replay_queue_bytes = c->q_bytes;
    out->inspect_failures = c->inspect_failures;
    out->ask_agains = c->ask_agains;
    out->applied_generations = c->meta.applied_generations;
    out->replay_txns = c->replay_txns;
    out->checkpoints = c->checkpoints;
    pthread_mutex_unlock(&c->mu);
    out->record_checksums = __atomic_load_n(&c->ck.record_checksums, __ATOMIC_RELAXED);
    out->digests = __atomic_load_n(&c->ck.digests, __ATOMIC_RELAXED);
    out->digest_bytes = __atomic_load_n(&c->ck.digest_bytes, __ATOMIC_RELAXED);
    out->seals = __atomic_load_n(&c->ck.seals, __ATOMIC_RELAXED);
    out->seal_checks = __atomic_load_n(&c->ck.seal_checks, __ATOMIC_RELAXED);
    out->seal_bytes = __atomic_load_n(&c->ck.seal_bytes, __ATOMIC_RELAXED);
    out->logs_syncs = __atomic_load_n(&c->ck.logs_syncs, __ATOMIC_RELAXED);
    out->replay_yields = __atomic_load_n(&c->ck.replay_yields, __ATOMIC_RELAXED);
}

ls_store_t *ls_copy_store(ls_copy_t *c)
{
    pthread_mutex_lock(&c->mu);
    ls_store_t *s = c->store;
    pthread_mutex_unlock(&c->mu);
    return s;
}
