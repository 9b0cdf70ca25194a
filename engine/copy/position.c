/*
 * Where a copy stands after a restart, from the directories and the store's meta record only:
 *  - the store's meta names the last generation applied completely (digest_generation) and its
 *    digest; that is the start of the held chain;
 *  - logs/ holds inspected generations; those past the store's position that follow on (next
 *    number, not an older epoch) and chain (prev_digest = digest of the one before) are held and
 *    queued for replay; the first that does not, and every later one, is deleted (asked again);
 *  - inspect/ holds received, durable, uninspected files: *.part are deleted, the next one is
 *    inspected now (hashing it: its receive-time digest died with the process), others deleted.
 * Files in logs/ at or below the store's position are replayed ones kept for log retention.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy/copy_int.h"
#include "layout/layout.h"

/* A generation file found in a directory (engine/layout). */
typedef ls_layout_gen_t gen_file_t;

/* Lists the closed generation files of dir sorted by generation (*out malloc'd); deletes the
 * .part files (received partly before a restart) when asked. */
static int list_gens(ls_copy_t *c, const char *dir, bool drop_parts, gen_file_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    ls_layout_options_t lo = {.prefix = c->prefix, .order = LS_LAYOUT_BY_GENERATION};
    ls_layout_list_t l;
    int rc = ls_layout_list(dir, &lo, &l, NULL, 0);
    if (rc) return rc;
    for (size_t i = 0; drop_parts && i < l.nparts; i++) {
        char path[LS__COPY_PATH_MAX];
        if (ls_layout_path(path, sizeof(path), dir, c->prefix, l.parts[i].epoch,
                           l.parts[i].generation, ".part") != 0)
            continue;
        LS_LOGI("copy", "%s: deleting the partial file %s left by a restart", c->dir, path);
        unlink(path);
    }
    if (drop_parts) rc = ls_fsync_dir(dir);
    *out = l.gens; /* ownership moves to the caller */
    *n = l.ngens;
    l.gens = NULL;
    ls_layout_list_free(&l);
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

/* Deletes files[from..n) of dir and fsyncs it. */
static void delete_from(ls_copy_t *c, const char *dir, const gen_file_t *files, size_t from,
                        size_t n)
{
    char path[LS__COPY_PATH_MAX];
    for (size_t i = from; i < n; i++) {
        ls__copy_path(c, path, dir, files[i].epoch, files[i].generation);
        LS_LOGW("copy", "%s: deleting %s (does not follow the held chain; asked again)", c->dir,
                path);
        unlink(path);
    }
    if (from < n) ls_fsync_dir(dir);
}

/* The epoch of N-1 under a seed's hand-off meta (generation N, digest_generation N-1): the meta's
 * epoch is N's, and N may be the first generation of its epoch (the active wrote less than a
 * generation since its activation). The copy's history (logs/history, engine/layout) tells when
 * it says where N's epoch began: at N, N-1 is of the epoch before; earlier, of N's. Otherwise
 * N-1's epoch is not known: 0, and the source's check rests on N-1's digest, which covers its
 * header, epoch included (engine/source/plan.c). */
static uint32_t handoff_prev_epoch(const ls_copy_t *c, const ls_store_meta_t *m)
{
    char path[LS__COPY_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/history", c->logs_dir);
    ls_layout_hist_t *h = NULL;
    size_t n = 0;
    if (ls_layout_history_read(path, &h, &n, NULL, 0) != 0) return 0;
    uint32_t e = 0;
    for (size_t i = 0; i < n; i++) {
        if (h[i].epoch != m->epoch) continue;
        if (h[i].first_gen < m->generation) e = m->epoch;
        if (h[i].first_gen == m->generation)
            e = ls_layout_history_epoch_at(h, n, m->generation - 1);
    }
    free(h);
    return e;
}

/* The held chain starts at the store's position: meta.epoch is the epoch of meta.generation,
 * which is the last generation held unless a seed's hand-off stopped inside the next one. */
static void held_from_store(ls_copy_t *c)
{
    const ls_store_meta_t *m = &c->meta;
    c->held_gen = m->digest_generation;
    /* meta.epoch is digest_generation's, except after a seed stopped inside the next
     * generation (it is that one's then); an early apply from a shadow keeps the held epoch */
    c->held_epoch = !m->digest_generation ? 0
                    : m->generation == m->digest_generation || m->shadow_end
                        ? m->epoch
                        : handoff_prev_epoch(c, m);
    memcpy(c->held_digest, m->digest, LS_DIGEST_SIZE);
    /* meta.lsn is the last LSN of digest_generation unless a seed stopped inside the next one */
    c->held_lsn = m->generation == m->digest_generation ? m->lsn : 0;
}

/* Opens the store when the database id is known, or reads the identity of an existing one. */
static int recover_store(ls_copy_t *c, char *err, size_t errlen)
{
    if (c->have_dbid) return ls__copy_open_store(c, err, errlen);
    char file[LS__COPY_PATH_MAX + 16];
    struct stat st;
    ls_msgf(file, sizeof(file), "%s/data.mdb", c->store_dir);
    if (stat(file, &st) != 0) return 0; /* opened when the first generation names the id */
    ls_store_options_t so = {.map_size = ls__copy_map_size(c)};
    ls_store_t *s = NULL;
    int rc = ls_store_open(c->store_dir, &so, &s, err, errlen);
    if (rc) return rc;
    ls_store_meta(s, &c->meta);
    static const uint8_t zero[LS_DBID_LEN];
    if (memcmp(c->meta.dbid, zero, LS_DBID_LEN) == 0) {
        ls_store_close(s); /* no identity yet: adopt the first generation's */
        memset(&c->meta, 0, sizeof(c->meta));
        return 0;
    }
    memcpy(c->dbid, c->meta.dbid, LS_DBID_LEN);
    c->have_dbid = true;
    c->store = s;
    return 0;
}

/* Checks logs/ file f structurally against the held chain and queues it. */
static int hold_log(ls_copy_t *c, const gen_file_t *f, char *msg, size_t msglen)
{
    char path[LS__COPY_PATH_MAX];
    ls__copy_path(c, path, c->logs_dir, f->epoch, f->generation);
    ls__copy_expect_t x;
    ls__copy_expect(c, f->epoch, f->generation, &x);
    ls__copy_entry_t e;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = ls_read_file(path, LS_GEN_HARD_CAP, &buf, &len);
    if (rc) ls_msgf(msg, msglen, "%s: cannot read: %s", path, ls_strerror(rc));
    if (rc == 0) rc = ls__copy_check_buf(c, &x, buf, len, true, &e, msg, msglen);
    free(buf);
    if (rc) return rc;
    if (!c->have_dbid) {
        memcpy(c->dbid, x.header_dbid, LS_DBID_LEN);
        c->have_dbid = true;
        char err[512];
        if ((rc = ls__copy_open_store(c, err, sizeof(err)))) {
            ls_msgf(msg, msglen, "%s", err);
            return rc;
        }
    }
    if ((rc = ls__copy_queue_push(c, &e))) return rc;
    ls__copy_hold(c, &e);
    return 0;
}

static int recover_logs(ls_copy_t *c, char *err, size_t errlen)
{
    gen_file_t *files;
    size_t n, i = 0;
    int rc = list_gens(c, c->logs_dir, false, &files, &n);
    if (rc) {
        ls_msgf(err, errlen, "copy %s: cannot list logs/: %s", c->dir, ls_strerror(rc));
        return rc;
    }
    while (i < n && files[i].generation <= c->held_gen)
        i++; /* replayed, kept for retention */
    for (; i < n; i++) {
        char msg[512] = "";
        if (files[i].generation != c->held_gen + 1 || files[i].epoch < c->held_epoch) break;
        rc = hold_log(c, &files[i], msg, sizeof(msg));
        if (rc == LS_ENOMEM || rc == LS_EDBID) { /* another database's log here: refuse */
            ls_msgf(err, errlen, "copy %s: logs/ holds a generation it cannot take: %s", c->dir,
                    msg);
            break;
        }
        if (rc) {
            LS_LOGW("copy", "%s: generation %llu in logs/ fails its check at open: %s", c->dir,
                    (unsigned long long) files[i].generation, msg);
            rc = 0;
            break;
        }
    }
    if (rc == 0) delete_from(c, c->logs_dir, files, i, n);
    free(files);
    return rc;
}

static int recover_inspect(ls_copy_t *c)
{
    gen_file_t *files;
    size_t n, i = 0;
    int rc = list_gens(c, c->inspect_dir, true, &files, &n);
    if (rc) return rc;
    while (i < n && files[i].generation <= c->held_gen)
        i++;
    delete_from(c, c->inspect_dir, files, 0, i); /* older than what logs/ holds: leftovers */
    /* normally at most one; inspected in order while they follow on (hashing each) */
    for (; i < n && files[i].generation == c->held_gen + 1 && files[i].epoch >= c->held_epoch;
         i++) {
        char msg[512];
        rc = ls__copy_inspect(c, files[i].epoch, files[i].generation, NULL, msg, sizeof(msg));
        if (rc) {
            LS_LOGW("copy", "%s: %s", c->dir, msg);
            rc = rc == LS_ENOMEM ? rc : 0;
            i++; /* deleted by the failed inspection */
            break;
        }
    }
    size_t next = i;
    delete_from(c, c->inspect_dir, files, next, n);
    free(files);
    return rc;
}

int ls__copy_recover(ls_copy_t *c, char *err, size_t errlen)
{
    int rc = recover_store(c, err, errlen);
    if (rc) return rc;
    held_from_store(c);
    c->quiet = true;
    rc = recover_logs(c, err, errlen);
    if (rc) return rc;
    rc = recover_inspect(c);
    c->quiet = false;
    c->durable_gen = c->held_gen;
    if (rc)
        ls_msgf(err, errlen, "copy %s: cannot recover its position: %s", c->dir, ls_strerror(rc));
    if (rc == 0)
        LS_LOGI("copy", "%s: store at generation %llu, holding through %llu (%zu to replay)",
                c->dir, (unsigned long long) c->meta.digest_generation,
                (unsigned long long) c->held_gen, c->qlen);
    return rc;
}

void ls__copy_rollback(ls_copy_t *c, uint64_t from)
{
    char path[LS__COPY_PATH_MAX];
    size_t keep = 0;
    while (keep < c->qlen && c->q[keep].generation < from)
        keep++;
    for (size_t i = keep; i < c->qlen; i++) {
        ls__copy_path(c, path, c->logs_dir, c->q[i].epoch, c->q[i].generation);
        unlink(path);
        c->q_bytes -= c->q[i].size;
    }
    if (keep < c->qlen) ls_fsync_dir(c->logs_dir);
    c->qlen = keep;
    if (keep == 0)
        held_from_store(c);
    else
        ls__copy_hold(c, &c->q[keep - 1]);
    c->durable_gen = c->held_gen;
}

void ls__copy_remove_logs(ls_copy_t *c, uint64_t synced)
{
    gen_file_t *files;
    size_t n, done = 0;
    if (list_gens(c, c->logs_dir, false, &files, &n) != 0) return;
    while (done < n && files[done].generation <= synced)
        done++;
    char path[LS__COPY_PATH_MAX];
    size_t drop = done > c->o.keep_logs ? done - c->o.keep_logs : 0;
    for (size_t i = 0; i < drop; i++) { /* recycled as preallocated .part files while wanted */
        ls__copy_path(c, path, c->logs_dir, files[i].epoch, files[i].generation);
        if (!ls_prealloc_give(c->pool, path) && unlink(path) != 0)
            LS_LOGW("copy", "%s: cannot remove %s: %s", c->dir, path, strerror(errno));
    }
    if (drop) ls_fsync_dir(c->logs_dir);
    free(files);
}
