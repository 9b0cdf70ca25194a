/*
 * Recovery at open, part 1: the database's identity, the history file and the current log.
 *
 *  1. No logs/history: a new database (unless no_create): random 128-bit id (getrandom), store
 *     created with it and synced, <prefix>.log for epoch 1 generation 1 created and fsynced, then
 *     history ("1 1") written durably. History is written last, so a crash before it leaves a
 *     directory that the next open creates again (reusing the store's id when it has no data).
 *  2. The id comes from the logs (current log's header, else the newest closed generation), and
 *     the store is opened expecting it: a store of another database is refused (LS_EDBID).
 *  3. The current log is settled: a valid trailer means it was closed but not renamed: the rename
 *     is finished. A torn or invalid header means it was being created: nothing in it can have
 *     been acknowledged (creation is fsynced before any commit), so it is created again from the
 *     newest closed generation. Otherwise its header must chain to the newest closed generation.
 *  4. replay.c verifies and replays the closed generations the store still needs.
 *  5. The current log is cut at its last complete COMMIT (ftruncate + fsync; the torn tail is
 *     counted in truncated_bytes), its complete transactions above the store's LSN are replayed,
 *     and the running digest is rebuilt from its bytes. A tail of zeros only in a file of the
 *     prepared size is a preallocated log's (prep.c): kept, not torn. A leftover <prefix>.next is
 * ignored (prep.c redoes it).
 *  6. When history's last epoch is newer than the current log's, the current log is closed and
 *     the next one starts in that epoch.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layout/layout.h"
#include "writer/writer_int.h"

static const uint8_t zero_digest[LS_DIGEST_SIZE];

/* The epoch of history's last line, through engine/layout's reader. The history is the writer's
 * own record: a malformed one is a damaged database (LS_ECORRUPT), not a configuration error,
 * and the message keeps the reader's "<path>:<line>: what is wrong". */
static int read_history(ls_db_t *db, const char *path, char *msg, size_t msglen)
{
    ls_layout_hist_t *h = NULL;
    size_t n = 0;
    int rc = ls_layout_history_read(path, &h, &n, msg, msglen);
    if (rc) return rc == LS_ECONFIG ? LS_ECORRUPT : rc;
    db->epoch = n ? h[n - 1].epoch : 0;
    free(h);
    if (db->epoch == 0) {
        snprintf(msg, msglen, "%s holds no epoch", path);
        return LS_ECORRUPT;
    }
    return 0;
}

static int open_store(ls_db_t *db, const uint8_t *dbid, char *msg, size_t msglen)
{
    char path[LS__PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/store", db->dir);
    ls_store_options_t o = {.map_size = db->opts.map_size, .create = true, .dbid = dbid};
    ls_store_close(db->store);
    db->store = NULL;
    return ls_store_open(path, &o, &db->store, msg, msglen);
}

static int create_new(ls_db_t *db, ls__recovery_t *rs, const char *hist, char *msg, size_t msglen)
{
    int rc = ls_mkdir_p(db->logs);
    if (rc == 0) rc = ls__list_gens(db, rs, msg, msglen);
    if (rc) return rc;
    if (rs->ngens) {
        snprintf(msg, msglen, "%s holds closed generations but no history file", db->logs);
        return LS_ECORRUPT;
    }
    if ((rc = open_store(db, NULL, msg, msglen)) != 0) return rc;
    ls_store_meta_t m;
    ls_store_meta(db->store, &m);
    if (m.lsn > 0) {
        snprintf(msg, msglen, "the store holds data up to lsn %llu but %s is missing",
                 (unsigned long long) m.lsn, hist);
        return LS_ECORRUPT;
    }
    if (memcmp(m.dbid, zero_digest, LS_DBID_LEN) != 0) {
        memcpy(db->dbid, m.dbid, LS_DBID_LEN); /* a creation that crashed: keep its id */
    } else if (getrandom(db->dbid, LS_DBID_LEN, 0) != LS_DBID_LEN) {
        snprintf(msg, msglen, "getrandom failed: %s", strerror(errno));
        return LS_EIO;
    }
    if ((rc = open_store(db, db->dbid, msg, msglen)) != 0) return rc;
    if ((rc = ls_store_sync(db->store)) != 0) return rc;
    db->epoch = 1;
    if ((rc = ls__log_create(db, 1, 1, zero_digest)) != 0) {
        snprintf(msg, msglen, "cannot create %s: %s", db->cur_path, ls_strerror(rc));
        return rc;
    }
    if ((rc = ls_write_file_durable(hist, "1 1\n", 4)) != 0)
        snprintf(msg, msglen, "cannot write %s: %s", hist, ls_strerror(rc));
    return rc;
}

/* Reads a header at the start of path (engine/layout); 0 when valid. */
static int peek_header(const char *path, ls_gen_header_t *h)
{
    ls_layout_ends_t x;
    int rc = ls_layout_read_ends(path, &x, NULL, 0);
    if (rc == 0) *h = x.h;
    return rc;
}

/* Step 2: the id from the logs, and the store opened expecting it. */
static int identify(ls_db_t *db, ls__recovery_t *rs, char *msg, size_t msglen)
{
    ls_gen_header_t h;
    char path[LS__PATH_MAX + 16 + LS_GEN_NAME_MAX];
    bool found = rs->has_cur && peek_header(db->cur_path, &h) == 0;
    if (!found && rs->ngens) {
        ls__gen_path(db, &rs->gens[rs->ngens - 1], path, sizeof(path));
        found = peek_header(path, &h) == 0;
    }
    int rc = open_store(db, found ? h.dbid : NULL, msg, msglen);
    if (rc) return rc;
    ls_store_meta(db->store, &rs->meta);
    if (!found && memcmp(rs->meta.dbid, zero_digest, LS_DBID_LEN) == 0) {
        snprintf(msg, msglen,
                 "cannot tell the database id: no valid log header in %s and an "
                 "empty store",
                 db->logs);
        return LS_ECORRUPT;
    }
    memcpy(db->dbid, found ? h.dbid : rs->meta.dbid, LS_DBID_LEN);
    rs->max_txid = rs->meta.txid;
    return 0;
}

/* Creates the current log after the newest closed generation (or as generation 1). */
static int recreate_current(ls_db_t *db, ls__recovery_t *rs, char *msg, size_t msglen)
{
    int rc;
    if (rs->have_last) {
        rc = ls__log_create(db, rs->gens[rs->ngens - 1].gen + 1, rs->last.last_lsn + 1,
                            rs->last.digest);
    } else if (rs->meta.lsn == 0) {
        rc = ls__log_create(db, 1, 1, zero_digest);
    } else {
        snprintf(msg, msglen, "%s is damaged and no closed generation remains to rebuild it from",
                 db->cur_path);
        return LS_ECORRUPT;
    }
    if (rc)
        snprintf(msg, msglen, "cannot create %s: %s", db->cur_path, ls_strerror(rc));
    else
        LS_LOGW("writer", "recreated %s as generation %llu", db->cur_path,
                (unsigned long long) db->gen);
    return rc;
}

/* The current log held a valid trailer: finish its rename. */
static int finish_rename(ls_db_t *db, ls__recovery_t *rs, const ls_gen_info_t *info, char *msg,
                         size_t msglen)
{
    ls__genfile_t g = {.epoch = info->header.epoch, .gen = info->header.generation};
    char path[LS__PATH_MAX + 16 + LS_GEN_NAME_MAX];
    ls__gen_path(db, &g, path, sizeof(path));
    int rc = ls_rename_durable(db->cur_path, path);
    if (rc) {
        snprintf(msg, msglen, "cannot rename %s to %s: %s", db->cur_path, path, ls_strerror(rc));
        return rc;
    }
    ls__genfile_t *p = realloc(rs->gens, (rs->ngens + 1) * sizeof(*p));
    if (!p) return LS_ENOMEM;
    rs->gens = p;
    rs->gens[rs->ngens++] = g;
    rs->last = *info;
    rs->have_last = true;
    rs->has_cur = false;
    rs->max_txid = LS_MAX(rs->max_txid, info->last_txid);
    LS_LOGW("writer", "finished closing %s (renamed to %s)", db->cur_path, path);
    return 0;
}

/* Step 3: leaves rs->cur holding the current log with a valid, chained header. */
static int settle_current(ls_db_t *db, ls__recovery_t *rs, char *msg, size_t msglen)
{
    for (int round = 0; round < 4; round++) {
        int rc = rs->has_cur ? 0 : recreate_current(db, rs, msg, msglen);
        if (rc) return rc;
        rs->has_cur = true;
        uint8_t *buf = NULL;
        size_t len = 0;
        rc = ls_read_file(db->cur_path, LS_GEN_HARD_CAP, &buf, &len);
        if (rc) {
            snprintf(msg, msglen, "cannot read %s: %s", db->cur_path, ls_strerror(rc));
            return rc;
        }
        ls_gen_expect_t ex = {.dbid = db->dbid, .allow_open = true};
        if (rs->have_last) {
            ex.generation = rs->gens[rs->ngens - 1].gen + 1;
            ex.first_lsn = rs->last.last_lsn + 1;
            ex.prev_digest = rs->last.digest;
        }
        ls_gen_info_t info;
        ls_gen_verdict_t v;
        rc = ls_gen_scan(buf, len, &ex, NULL, NULL, &info, &v);
        if (!info.header_ok) {
            LS_LOGW("writer", "%s: %s: torn at creation, creating it again", db->cur_path, v.msg);
            db->stats.truncated_bytes += len;
            rs->has_cur = false;
            rc = 0; /* created again in the next round */
        } else if (rc) {
            snprintf(msg, msglen, "current log %s does not follow the closed generations: %s",
                     db->cur_path, v.msg);
        } else if (info.closed) {
            rc = finish_rename(db, rs, &info, msg, msglen);
        } else {
            rs->cur = buf;
            rs->cur_len = len;
            rs->cur_info = info;
            return 0;
        }
        free(buf);
        if (rc) return rc;
    }
    snprintf(msg, msglen, "%s: could not settle the current log", db->cur_path);
    return LS_ECORRUPT;
}

/* Step 5a: replays the current log's complete transactions above the store's LSN. */
static int replay_current(ls_db_t *db, ls__recovery_t *rs, char *msg, size_t msglen)
{
    const ls_gen_info_t *in = &rs->cur_info;
    if (rs->meta.lsn > in->commit_lsn) {
        snprintf(msg, msglen,
                 "the store is ahead of the log: store at lsn %llu, log ends at lsn "
                 "%llu (%s)",
                 (unsigned long long) rs->meta.lsn, (unsigned long long) in->commit_lsn,
                 db->cur_path);
        return LS_ECORRUPT;
    }
    if (rs->meta.lsn == in->commit_lsn) return 0;
    ls__replay_t rp = {.skip_lsn = rs->meta.lsn};
    ls_gen_expect_t ex = {.allow_open = true};
    int rc =
        ls_gen_scan(rs->cur, (size_t) in->commit_end, &ex, ls__replay_collect, &rp, NULL, NULL);
    ls_store_meta_t m = rs->meta;
    m.epoch = in->header.epoch;
    m.generation = in->header.generation;
    m.lsn = in->commit_lsn;
    m.txid = in->last_txid;
    m.digest_generation = in->header.generation - 1;
    memcpy(m.digest, in->header.prev_digest, LS_DIGEST_SIZE);
    if (rc == 0) rc = ls__replay_apply(db, &rp, &m);
    if (rc)
        snprintf(msg, msglen, "replay of %s failed: %s", db->cur_path, ls_strerror(rc));
    else
        rs->meta = m;
    free(rp.recs);
    return rc;
}

/* Step 5b: cuts the torn tail and makes the current log the db's, digest rebuilt. */
static int adopt_current(ls_db_t *db, ls__recovery_t *rs, char *msg, size_t msglen)
{
    const ls_gen_info_t *in = &rs->cur_info;
    if (db->fd >= 0) close(db->fd);
    db->fd = open(db->cur_path, O_RDWR | O_CLOEXEC);
    int rc = db->fd < 0 ? ls_err_from_errno(errno) : 0;
    /* Only zeros after the last COMMIT of a file of the prepared size: a preallocated log's
     * (prep.c), kept, not torn. Any other tail is torn: cut, zeros after it included. */
    size_t nz = rs->cur_len;
    while (nz > in->commit_end && rs->cur[nz - 1] == 0)
        nz--;
    bool prealloc = nz == in->commit_end && rs->cur_len == ls__prep_size(db);
    db->cur_alloc = prealloc ? rs->cur_len : 0;
    if (rc == 0 && rs->cur_len > in->commit_end && !prealloc) {
        if (ftruncate(db->fd, (off_t) in->commit_end) != 0) rc = ls_err_from_errno(errno);
        if (rc == 0) rc = ls_fsync(db->fd);
        db->stats.truncated_bytes += rs->cur_len - in->commit_end;
        LS_LOGW("writer", "%s: removed a torn tail of %llu bytes after lsn %llu", db->cur_path,
                (unsigned long long) (rs->cur_len - in->commit_end),
                (unsigned long long) in->commit_lsn);
    }
    if (rc == 0 && !db->sha && !(db->sha = ls_sha256_new())) rc = LS_ENOMEM;
    if (rc) {
        snprintf(msg, msglen, "cannot open or truncate %s: %s", db->cur_path, ls_strerror(rc));
        return rc;
    }
    ls_sha256_reset(db->sha);
    ls_sha256_update(db->sha, rs->cur, (size_t) in->commit_end);
    db->epoch = in->header.epoch;
    db->gen = in->header.generation;
    db->gen_first_lsn = in->header.first_lsn;
    db->gen_records = in->commit_lsn + 1 - in->header.first_lsn;
    db->log_size = in->commit_end;
    memcpy(db->prev_digest, in->header.prev_digest, LS_DIGEST_SIZE);
    db->last_lsn = in->commit_lsn;
    db->last_txid = LS_MAX(in->last_txid, rs->max_txid);
    db->last_closed = db->gen - 1;
    return 0;
}

/* Step 6: history names a newer epoch than the current log's (an activation recorded it): the
 * current log is closed in its own epoch and the next one starts in the new epoch. */
static int enter_epoch(ls_db_t *db, uint32_t epoch, char *msg, size_t msglen)
{
    if (epoch <= db->epoch) return 0;
    int rc = ls__roll(db); /* nothing when the current log is empty */
    if (rc == 0) {
        db->epoch = epoch;
        rc = ls__log_create(db, db->gen, db->gen_first_lsn, db->prev_digest);
    }
    if (rc)
        snprintf(msg, msglen, "cannot start epoch %u at generation %llu: %s", epoch,
                 (unsigned long long) db->gen, ls_strerror(rc));
    else
        LS_LOGI("writer", "%s: epoch %u starts at generation %llu", db->dir, epoch,
                (unsigned long long) db->gen);
    return rc;
}

int ls__writer_recover(ls_db_t *db, char *msg, size_t msglen)
{
    ls__recovery_t rs = {0};
    char hist[LS__PATH_MAX + 16];
    snprintf(hist, sizeof(hist), "%s/history", db->logs);
    struct stat st;
    int rc;
    if (stat(hist, &st) != 0) {
        if (db->opts.no_create) {
            snprintf(msg, msglen, "no database there (%s is missing)", hist);
            return LS_ENOENT;
        }
        rc = create_new(db, &rs, hist, msg, msglen);
        free(rs.gens);
        return rc;
    }
    if ((rc = read_history(db, hist, msg, msglen)) != 0) return rc;
    uint32_t hist_epoch = db->epoch;
    if ((rc = ls__list_gens(db, &rs, msg, msglen)) == 0 &&
        (rc = identify(db, &rs, msg, msglen)) == 0 &&
        (rc = ls__scan_last_closed(db, &rs, msg, msglen)) == 0 &&
        (rc = settle_current(db, &rs, msg, msglen)) == 0 &&
        (rc = ls__replay_closed(db, &rs, rs.cur_info.header.first_lsn, msg, msglen)) == 0 &&
        (rc = replay_current(db, &rs, msg, msglen)) == 0 &&
        (rc = adopt_current(db, &rs, msg, msglen)) == 0)
        rc = enter_epoch(db, hist_epoch, msg, msglen);
    if (rc == 0 && (db->stats.recovered_records || db->stats.truncated_bytes))
        LS_LOGI("writer",
                "%s: recovered: %llu records replayed into the store, %llu torn bytes "
                "removed; at generation %llu, lsn %llu",
                db->dir, (unsigned long long) db->stats.recovered_records,
                (unsigned long long) db->stats.truncated_bytes, (unsigned long long) db->gen,
                (unsigned long long) db->last_lsn);
    free(rs.gens);
    free(rs.cur);
    return rc;
}
