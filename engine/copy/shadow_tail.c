/* copy: the closed generation's receive begun from the shadow of its open generation (GEN_TAIL,
 * docs/BLOCKMODE.md): the .part a hard link of the shadow's file with the head's checks handed
 * over from the shadow (shadow.c keeps them current as its bytes are acknowledged), or the head
 * read back and checked, or copied where no link can be made. The shadow keeps every
 * acknowledged byte under its own name until the closed file is held in logs/. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy/copy_int.h"

/* Bytes read from the shadow per step (through ls_copy_recv_data, as received chunks). */
#define HEAD_STEP (256u * 1024u)

/* The receive of GEN_TAIL cannot be finished from the shadow: dropped, the generation asked
 * again whole. */
static int ask_whole(ls_copy_t *c, uint64_t start, const char *why, char *err, size_t errlen)
{
    char msg[512];
    ls_msgf(msg, sizeof(msg),
            "generation %llu: GEN_TAIL from byte %llu but the shadow %s: send it whole",
            (unsigned long long) c->rx.generation, (unsigned long long) start, why);
    ls_msgf(err, errlen, "copy %s: %s", c->dir, msg);
    uint64_t gen = c->rx.generation;
    ls_copy_recv_abort(c);
    ls__copy_emit(c, LS_COPY_EV_ASK_AGAIN, gen, 0, LS_EGAP, msg);
    return LS_EGAP;
}

/* The head is copied, never moved: the shadow must hold what BLOCK_ACK promised until the
 * generation's name is durable in logs/ (a dropped connection or a restart deletes the .part). */
int ls_copy_recv_from_shadow(ls_copy_t *c, uint64_t start, char *err, size_t errlen)
{
    ls__copy_rx_t *rx = &c->rx;
    if (!rx->active || rx->got != 0 || start > rx->size - LS_GEN_TRAILER_SIZE) {
        ls_msgf(err, errlen, "copy %s: generation %llu cannot start at byte %llu from its shadow",
                c->dir, (unsigned long long) rx->generation, (unsigned long long) start);
        if (rx->active) ls_copy_recv_abort(c);
        return LS_ESTATE;
    }
    char why[512] = "";
    if (ls__copy_shadow_open(c, rx->epoch, rx->generation, why, sizeof(why)) != 0)
        return ask_whole(c, start, "cannot be opened", err, errlen);
    if (c->shf.size < start) {
        ls_msgf(why, sizeof(why), "holds %llu bytes", (unsigned long long) c->shf.size);
        return ask_whole(c, start, why, err, errlen);
    }
    uint8_t *buf = malloc(HEAD_STEP);
    if (!buf) return LS_ENOMEM;
    int rc = 0;
    for (uint64_t off = 0; off < start && rc == 0;) {
        size_t n = (size_t) LS_MIN((uint64_t) HEAD_STEP, start - off);
        ssize_t got = pread(c->shf.fd, buf, n, (off_t) off);
        if (got != (ssize_t) n) {
            free(buf);
            ls_msgf(why, sizeof(why), "cannot be read at byte %llu: %s", (unsigned long long) off,
                    got < 0 ? strerror(errno) : "short read");
            return ask_whole(c, start, why, err, errlen);
        }
        rc = ls_copy_recv_data(c, rx->generation, off, buf, n, err, errlen);
        off += n;
    }
    free(buf);
    if (rc) return rc;
    rx->head = start;
    LS_FAULT("copy.tail.after_head");
    return 0;
}

/* Whether the stream's expectations of a and b are the same (seed_lsn is not the stream's: the
 * early apply moves it, and recv_end checks it from the receive's own). */
static bool same_expect(const ls__copy_expect_t *a, const ls__copy_expect_t *b)
{
    return a->check_dbid == b->check_dbid && !memcmp(a->dbid, b->dbid, LS_DBID_LEN) &&
           a->epoch == b->epoch && a->generation == b->generation && a->first_lsn == b->first_lsn &&
           !memcmp(a->prev, b->prev, LS_DIGEST_SIZE);
}

/* The shadow's running checks become the receive's, when they cover exactly [0, start) and
 * were begun against the expectations recv_begin just fixed: the head is then neither read nor
 * hashed again. False: read it back. */
static bool hand_over(ls_copy_t *c, uint64_t start, int *rc, char *err, size_t errlen)
{
    ls__copy_shfile_t *f = &c->shf;
    ls__copy_rx_t *rx = &c->rx;
    ls__copy_shadow_hash_more(c);
    if (!f->hashing || f->hashed != start || f->size != start || !same_expect(&f->x, &rx->x))
        return false;
    ls_sha256_t *sha = rx->sha;
    ls_seal_t *seal = rx->seal;
    ls_gen_stream_t *stream = rx->stream;
    rx->sha = f->sha;
    rx->seal = f->seal;
    rx->stream = f->stream;
    f->sha = sha;
    f->seal = seal;
    f->stream = stream;
    f->hashing = false;
    f->ex_lent = true; /* rx's stream reads f->ex until the receive ends */
    rx->got = start;
    if (start >= LS_GEN_HEADER_SIZE) *rc = ls__copy_rx_check_header(c, err, errlen);
    return true;
}

/* GEN_TAIL by a hard link: inspect/<name>.part is a second name of the shadow's file, so the head
 * is neither written nor synced again, only read back (page cache) and checked as received bytes;
 * the tail goes into the same file and recv_end's fdatasync, rename into logs/ and fsync of logs/
 * make it the closed generation. Until that rename is durable the shadow's name still holds every
 * byte BLOCK_ACK promised (a restart deletes only the .part name, and takes the shadow up cut to
 * its last COMMIT even when it grew a trailer); the shadow's deletion afterwards only drops a name.
 * False when no link could be made (another file system, no support): the caller copies. */
static bool link_head(ls_copy_t *c, uint64_t start, int *rc, char *err, size_t errlen)
{
    ls__copy_rx_t *rx = &c->rx;
    *rc = 0;
    unlink(rx->part); /* a .part left by an earlier attempt of this generation */
    if (link(c->shf.path, rx->part) != 0) {
        LS_LOGI("copy", "%s: cannot link the shadow %s as %s (%s): its head is copied", c->dir,
                c->shf.path, rx->part, strerror(errno));
        return false;
    }
    rx->fd = open(rx->part, O_WRONLY | O_CLOEXEC);
    if (rx->fd < 0) {
        unlink(rx->part);
        return false;
    }
    /* A shadow taken from the pool may be longer than the closed generation: cut to its size
     * (past the shadow's bytes: nothing acknowledged is lost; recv_end's fdatasync commits the
     * size). The pool's files follow the closed sizes, a little shorter, so this is rare. */
    struct stat st;
    if (fstat(rx->fd, &st) != 0 ||
        ((uint64_t) st.st_size > rx->size && ftruncate(rx->fd, (off_t) rx->size) != 0)) {
        LS_LOGI("copy", "%s: cannot cut the shadow %s to %llu bytes (%s): its head is copied",
                c->dir, c->shf.path, (unsigned long long) rx->size, strerror(errno));
        close(rx->fd);
        rx->fd = -1;
        unlink(rx->part);
        return false;
    }
    rx->linked = true;
    ls__copy_rx_opened(c);
    if (hand_over(c, start, rc, err, errlen)) {
        LS_LOGD("copy", "%s: GEN_TAIL of generation %llu: its %llu-byte head checked as it came",
                c->dir, (unsigned long long) rx->generation, (unsigned long long) start);
        return true;
    }
    uint8_t *buf = malloc(HEAD_STEP);
    if (!buf) {
        *rc = LS_ENOMEM;
        ls_copy_recv_abort(c);
        return true;
    }
    for (uint64_t off = 0; off < start && *rc == 0;) {
        size_t n = (size_t) LS_MIN((uint64_t) HEAD_STEP, start - off);
        ssize_t got = pread(c->shf.fd, buf, n, (off_t) off);
        if (got != (ssize_t) n) {
            char why[512];
            ls_msgf(why, sizeof(why), "cannot be read at byte %llu: %s", (unsigned long long) off,
                    got < 0 ? strerror(errno) : "short read");
            free(buf);
            *rc = ask_whole(c, start, why, err, errlen);
            return true;
        }
        *rc = ls__copy_rx_absorb(c, off, buf, n, err, errlen);
        off += n;
    }
    free(buf);
    return true;
}

int ls_copy_recv_begin_tail(ls_copy_t *c, uint32_t epoch, uint64_t gen, uint64_t size,
                            uint64_t close_ns, uint64_t start, char *err, size_t errlen)
{
    ls__copy_rx_t *rx = &c->rx;
    if (rx->active) {
        ls_msgf(err, errlen, "copy %s: generation %llu is still being received", c->dir,
                (unsigned long long) rx->generation);
        return LS_ESTATE;
    }
    int rc = ls__copy_rx_begin(c, epoch, gen, size, err, errlen);
    if (rc) return rc;
    ls_prealloc_size(c->pool, size); /* the next shadows' pool files: a little shorter */
    if (start > size - LS_GEN_TRAILER_SIZE) {
        ls_msgf(err, errlen, "copy %s: generation %llu cannot start at byte %llu from its shadow",
                c->dir, (unsigned long long) gen, (unsigned long long) start);
        ls_copy_recv_abort(c);
        return LS_ESTATE;
    }
    char why[512] = "";
    if (ls__copy_shadow_open(c, epoch, gen, why, sizeof(why)) != 0)
        return ask_whole(c, start, "cannot be opened", err, errlen);
    if (c->shf.size < start || c->shf.size > size - LS_GEN_TRAILER_SIZE) {
        ls_msgf(why, sizeof(why), "holds %llu bytes", (unsigned long long) c->shf.size);
        return ask_whole(c, start, why, err, errlen);
    }
    if (link_head(c, start, &rc, err, errlen)) {
        if (rc) return rc;
        rx->head = start;
        LS_FAULT("copy.tail.after_head");
        return 0;
    }
    ls_copy_recv_abort(c); /* frees the hashes: recv_begin starts them again */
    rc = ls_copy_recv_begin(c, epoch, gen, size, close_ns, err, errlen);
    return rc ? rc : ls_copy_recv_from_shadow(c, start, err, errlen);
}
