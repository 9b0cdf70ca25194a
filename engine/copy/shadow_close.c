/*
 * Activation in block mode: the shadow of the open generation becomes the closed last generation
 * of the old epoch (docs/BLOCKMODE.md "Shadow replay and activation", docs/ACTIVATION.md).
 *
 * Every complete transaction in the shadow may have been acknowledged to a committer (remote
 * durable), so activation keeps them: the shadow is walked with the logfmt scanner (record
 * checksums verified, a torn tail tolerated, the header chained to the last generation held),
 * cut after its last COMMIT, closed with a trailer made by logfmt's encoder (the digest is the
 * SHA-256 of the bytes kept, as docs/FORMAT.md says), fdatasynced, renamed into logs/ and held:
 * ls_copy_start then replays it like any other generation.
 *
 * Crash safety, step by step (fault points copy.shadow_close.after_trailer and
 * copy.shadow_close.after_rename): the shadow is changed in place, and each rerun reads it
 * again: cut but without its trailer, or with a torn one, it is walked to the same last COMMIT
 * and closed again; with a valid trailer it is only renamed; once renamed, logs/ holds it and
 * the copy's restart recovery takes it like any received generation.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "copy/copy_int.h"

/* Counts the records up to each COMMIT. */
typedef struct {
    uint64_t records;   /* records walked */
    uint64_t committed; /* records up to the last COMMIT */
} count_t;

static int count_record(void *ctx, const ls_record_t *r)
{
    count_t *n = ctx;
    n->records++;
    if (r->type == LS_REC_COMMIT) n->committed = n->records;
    return 0;
}

/* The shadow of the generation wanted next in shadow/ (*found false when none); deletes the
 * ones that can never be used (generations held already, or past the next). */
static int find_shadow(ls_copy_t *c, bool dry_run, uint32_t *epoch, uint64_t *gen, bool *found,
                       char *err, size_t errlen)
{
    *found = false;
    DIR *d = opendir(c->shadow_dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        return ls_errf(err, errlen, LS_EIO, "copy %s: cannot list %s: %s", c->dir, c->shadow_dir,
                       strerror(errno));
    }
    bool removed = false;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        uint32_t e;
        uint64_t g;
        if (ls_gen_name_parse(de->d_name, c->prefix, &e, &g) != 0) continue;
        if (g == c->held_gen + 1 && e >= c->held_epoch && !*found) {
            *epoch = e;
            *gen = g;
            *found = true;
            continue;
        }
        if (dry_run) continue;
        char path[LS__COPY_PATH_MAX];
        ls__copy_path(c, path, c->shadow_dir, e, g);
        LS_LOGW("copy", "%s: deleting the shadow %s: the copy holds generations up to %llu", c->dir,
                path, (unsigned long long) c->held_gen);
        unlink(path);
        removed = true;
    }
    closedir(d);
    return removed ? ls_fsync_dir(c->shadow_dir) : 0;
}

/* shadow/closed: what the last close made, so that a rerun of an activation interrupted after
 * it still reports it: "epoch generation first_lsn last_lsn dropped". */
static int marker_write(ls_copy_t *c, const ls_copy_shadow_closed_t *o, char *err, size_t errlen)
{
    char path[LS__COPY_PATH_MAX + 16], text[160];
    ls_msgf(path, sizeof(path), "%s/closed", c->shadow_dir);
    int n = snprintf(text, sizeof(text), "%u %llu %llu %llu %llu\n", o->epoch,
                     (unsigned long long) o->generation, (unsigned long long) o->first_lsn,
                     (unsigned long long) o->last_lsn, (unsigned long long) o->dropped);
    int rc = ls_write_file_durable(path, text, (size_t) n);
    if (rc) return ls_errf(err, errlen, rc, "cannot write %s: %s", path, ls_strerror(rc));
    return 0;
}

/* No shadow to close: the marker of an earlier close of the last generation held, if any (a
 * stale one is deleted). */
static void marker_read(ls_copy_t *c, bool dry_run, ls_copy_shadow_closed_t *o)
{
    char path[LS__COPY_PATH_MAX + 16];
    ls_msgf(path, sizeof(path), "%s/closed", c->shadow_dir);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (ls_read_file(path, 160, &buf, &len) != 0) return;
    char text[161];
    memcpy(text, buf, len);
    text[len] = '\0';
    free(buf);
    unsigned e;
    unsigned long long g, f, l, d;
    if (sscanf(text, "%u %llu %llu %llu %llu", &e, &g, &f, &l, &d) == 5 && g == c->held_gen &&
        e == c->held_epoch) {
        *o = (ls_copy_shadow_closed_t){
            .epoch = e, .generation = g, .first_lsn = f, .last_lsn = l, .dropped = d};
        return;
    }
    if (!dry_run) unlink(path);
}

/* Cuts the shadow after its last COMMIT and writes the trailer; fdatasync. */
static int write_trailer(const char *path, const ls_gen_info_t *info, uint64_t records,
                         const uint8_t *buf, char *err, size_t errlen)
{
    ls_gen_trailer_t t = {.record_count = records,
                          .last_lsn = info->commit_lsn,
                          .payload_len = info->commit_end - LS_GEN_HEADER_SIZE,
                          .close_ns = ls_now_ns()};
    ls_sha256(buf, (size_t) info->commit_end, t.digest);
    uint8_t trl[LS_GEN_TRAILER_SIZE];
    const ls_gen_header_t *h = &info->header;
    ls_gen_trailer_encode(&t, ls_gen_seed(h->dbid, h->epoch, h->generation), trl);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    int rc = fd < 0 ? ls_err_from_errno(errno) : 0;
    if (rc == 0 && ftruncate(fd, (off_t) info->commit_end) != 0) rc = ls_err_from_errno(errno);
    if (rc == 0) rc = ls_pwrite_full(fd, trl, sizeof(trl), (off_t) info->commit_end);
    if (rc == 0) rc = ls_fdatasync(fd);
    if (fd >= 0) close(fd);
    if (rc)
        return ls_errf(err, errlen, rc, "cannot close the shadow %s: %s", path, ls_strerror(rc));
    return 0;
}

/* Holds the closed file (buf, len) of (epoch, gen) in logs/ and queues it for replay. */
static int hold(ls_copy_t *c, uint32_t epoch, uint64_t gen, const uint8_t *buf, size_t len,
                char *err, size_t errlen)
{
    ls__copy_expect_t x;
    ls__copy_entry_t e;
    char msg[512] = "";
    pthread_mutex_lock(&c->mu);
    ls__copy_expect(c, epoch, gen, &x);
    pthread_mutex_unlock(&c->mu);
    int rc = ls__copy_check_buf(c, &x, buf, len, true, &e, msg, sizeof(msg));
    if (rc) return ls_errf(err, errlen, rc, "copy %s: the closed shadow: %s", c->dir, msg);
    pthread_mutex_lock(&c->mu);
    if (!c->have_dbid) {
        memcpy(c->dbid, x.header_dbid, LS_DBID_LEN);
        c->have_dbid = true;
        rc = ls__copy_open_store(c, err, errlen);
    }
    if (rc == 0) rc = ls__copy_queue_push(c, &e);
    if (rc == 0) ls__copy_hold(c, &e);
    if (rc == 0 && c->durable_gen < gen) c->durable_gen = gen;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* Scans the shadow of (epoch, gen) in buf as an open generation following the held ones; a
 * file whose first bytes are not a header of this generation (taken from the pool, never
 * written) scans as holding nothing. */
static int scan(ls_copy_t *c, uint32_t epoch, uint64_t gen, const uint8_t *buf, size_t len,
                count_t *n, ls_gen_info_t *info, ls_gen_verdict_t *v)
{
    uint8_t prev[LS_DIGEST_SIZE];
    pthread_mutex_lock(&c->mu);
    memcpy(prev, c->held_digest, LS_DIGEST_SIZE);
    ls_gen_expect_t ex = {.dbid = c->have_dbid ? c->dbid : NULL,
                          .epoch = epoch,
                          .generation = gen,
                          .first_lsn = c->held_gen && c->held_lsn ? c->held_lsn + 1 : 0,
                          .prev_digest = prev,
                          .allow_open = true};
    pthread_mutex_unlock(&c->mu);
    int rc = ls_gen_scan(buf, len, &ex, count_record, n, info, v);
    ls_gen_header_t h;
    if (rc && (ls_gen_header_decode(buf, len, &h) != 0 || h.epoch != epoch || h.generation != gen))
        rc = 0, info->closed = false, info->commit_count = 0; /* its header never written */
    return rc;
}

/* The closed shadow at path into logs/ as generation gen of epoch (the marker first, both
 * directories synced), then held; out->bytes is the held file's size. */
static int move_into_logs(ls_copy_t *c, uint32_t epoch, uint64_t gen, const char *path,
                          ls_copy_shadow_closed_t *out, char *err, size_t errlen)
{
    int rc = marker_write(c, out, err, errlen);
    if (rc) return rc;
    char dst[LS__COPY_PATH_MAX];
    ls__copy_path(c, dst, c->logs_dir, epoch, gen);
    if (rename(path, dst) != 0)
        return ls_errf(err, errlen, ls_err_from_errno(errno), "cannot rename %s to %s: %s", path,
                       dst, strerror(errno));
    if ((rc = ls_fsync_dir(c->logs_dir)) || (rc = ls_fsync_dir(c->shadow_dir)))
        return ls_errf(err, errlen, rc, "cannot sync %s: %s", c->logs_dir, ls_strerror(rc));
    if (LS_FAULT("copy.shadow_close.after_rename")) return LS_EIO;
    uint8_t *closed = NULL;
    size_t clen = 0;
    if ((rc = ls_read_file(dst, LS_GEN_HARD_CAP, &closed, &clen)))
        return ls_errf(err, errlen, rc, "cannot read %s: %s", dst, ls_strerror(rc));
    rc = hold(c, epoch, gen, closed, clen, err, errlen);
    free(closed);
    if (rc) return rc;
    out->bytes = clen;
    return 0;
}

/* The shadow at path, read into buf: closes it (unless a rerun finds it closed) and moves it
 * into logs/. */
static int close_into_logs(ls_copy_t *c, bool dry_run, uint32_t epoch, uint64_t gen,
                           const char *path, uint8_t *buf, size_t len, ls_copy_shadow_closed_t *out,
                           char *err, size_t errlen)
{
    count_t n = {0};
    ls_gen_info_t info;
    ls_gen_verdict_t v;
    int rc = scan(c, epoch, gen, buf, len, &n, &info, &v);
    if (rc)
        return ls_errf(err, errlen, rc,
                       "copy %s: the shadow %s cannot become generation %llu: %s (offset %llu); "
                       "remove it to activate without it",
                       c->dir, path, (unsigned long long) gen, v.msg,
                       (unsigned long long) v.offset);
    /* Nothing complete: nothing to keep. So also when its first bytes are not a header of this
     * generation (zeros or a recycled log's old header: a file taken from the copy's pool before
     * its first BLOCK's fdatasync): no BLOCK_ACK ever covered it, the header is in every batch's
     * sync from the first on. */
    if (!info.closed && info.commit_count == 0) {
        if (dry_run) return 0;
        LS_LOGI("copy", "%s: the shadow %s holds no complete transaction: deleted", c->dir, path);
        unlink(path);
        return ls_fsync_dir(c->shadow_dir);
    }
    out->epoch = epoch;
    out->generation = gen;
    out->first_lsn = info.header.first_lsn;
    out->last_lsn = info.closed ? info.trailer.last_lsn : info.commit_lsn;
    /* A shadow taken from the copy's pool is longer than its bytes: the walk stops at the zeros
     * (a record length of 0) or at a recycled log's old bytes (their checksums are seeded with
     * another generation, their LSNs are below this one's); trailing zeros are not counted. */
    size_t end = len;
    while (end > info.commit_end && buf[end - 1] == 0)
        end--;
    out->dropped = info.closed ? 0 : end - info.commit_end;
    out->bytes = info.closed ? len : info.commit_end + LS_GEN_TRAILER_SIZE;
    if (dry_run) return 0;
    if (!info.closed) {
        if ((rc = write_trailer(path, &info, n.committed, buf, err, errlen))) return rc;
        if (LS_FAULT("copy.shadow_close.after_trailer")) return LS_EIO;
    }
    if ((rc = move_into_logs(c, epoch, gen, path, out, err, errlen))) return rc;
    LS_LOGI("copy",
            "%s: the shadow of generation %llu closed as the last generation of epoch %u: "
            "lsn %llu..%llu, %llu bytes (%llu bytes after its last commit dropped)",
            c->dir, (unsigned long long) gen, epoch, (unsigned long long) out->first_lsn,
            (unsigned long long) out->last_lsn, (unsigned long long) out->bytes,
            (unsigned long long) out->dropped);
    return 0;
}

int ls_copy_shadow_close(ls_copy_t *c, bool dry_run, ls_copy_shadow_closed_t *out, char *err,
                         size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (c->running || c->rx.active)
        return ls_errf(err, errlen, LS_ESTATE,
                       "copy %s: the shadow is closed before replay starts, with nothing received",
                       c->dir);
    uint32_t epoch = 0;
    uint64_t gen = 0;
    bool found = false;
    int rc = find_shadow(c, dry_run, &epoch, &gen, &found, err, errlen);
    if (rc) return rc;
    if (!found) {
        marker_read(c, dry_run, out);
        return 0;
    }
    char path[LS__COPY_PATH_MAX];
    ls__copy_path(c, path, c->shadow_dir, epoch, gen);
    uint8_t *buf = NULL;
    size_t len = 0;
    if ((rc = ls_read_file(path, LS_GEN_HARD_CAP, &buf, &len)))
        return ls_errf(err, errlen, rc, "cannot read the shadow %s: %s", path, ls_strerror(rc));
    rc = close_into_logs(c, dry_run, epoch, gen, path, buf, len, out, err, errlen);
    free(buf);
    return rc;
}
