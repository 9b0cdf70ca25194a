/*
 * The control page (<db>/control), see ctlpage.h and docs/ACTIVATION.md for the layout:
 *
 *   0    8  magic "LSHPCTL\x1a"
 *   8    4  version (1)
 *   12   4  size (4096)
 *   16   8  fence word: 0, or the epoch of the node that took over (atomic, 8-aligned)
 *   24   8  fence time, ns since 1970 UTC
 *   32   4  name length
 *   36   4  fence flags: bit 0 LS_CTL_HOLD, a planned switchover's hold (may be cleared);
 *           bit 1 LS_CTL_ASKED, the new active was asked to activate
 *   40 256  new active's name, NUL-terminated
 *   296  8  hold acknowledged: the hold's epoch, written last by the writer (atomic)
 *   304  8  last closed generation when the writer acknowledged the hold
 *   312  8  last LSN written (in that generation or before)
 *   320  8  when, ns since 1970 UTC
 *   328..511   reserved for the fence
 *   512        the writer's durable position (seqlock, ctlchan.c)
 *   1024       the copies' positions, published by the daemon (seqlock)
 *   1536       the writer's synchronous-commit state (seqlock)
 *   1792..4095 reserved
 *
 * Integers are little-endian; the mapped words are read natively, so the build refuses a
 * big-endian target rather than swap on every commit.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "writer/writer_int.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the control page is little-endian");

#define CTL_MAGIC    "LSHPCTL\x1a"
#define CTL_VERSION  1
#define OFF_VERSION  8
#define OFF_SIZE     12
#define OFF_FENCE    16
#define OFF_FENCE_NS 24
#define OFF_NAME_LEN 32
#define OFF_FLAGS    36
#define OFF_NAME     40
#define OFF_HOLD_ACK 296
#define OFF_HOLD_GEN 304
#define OFF_HOLD_LSN 312
#define OFF_HOLD_NS  320

static void msg(char *err, size_t errlen, const char *path, const char *what)
{
    if (err && errlen) snprintf(err, errlen, "%s: %s", path, what);
}

/* Creates path from a complete temporary file with link(2): never replaces an existing page
 * (another process may have set a fence in it meanwhile). The file's data is synced before it is
 * linked: a later fsync of the directory (the database's creation does one) may make the name
 * durable, and a power cut must then find a whole page, not an empty file that open refuses (the
 * power-cut test found that). The directory is not synced here: a page whose name is lost is
 * created again at the next open; setting a fence syncs the file and the directory. */
static int create_page(const char *path, char *err, size_t errlen)
{
    uint8_t page[LS_CTL_SIZE] = {0};
    memcpy(page, CTL_MAGIC, 8);
    ls_put32(page + OFF_VERSION, CTL_VERSION);
    ls_put32(page + OFF_SIZE, LS_CTL_SIZE);
    char tmp[LS__CTL_PATH_MAX + 64];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d.%llu", path, (int) getpid(),
             (unsigned long long) ls_mono_ns()); /* unique per process and thread */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc = fd < 0 ? ls_err_from_errno(errno) : 0;
    if (rc == 0) rc = ls_write_full(fd, page, sizeof(page));
    if (rc == 0) rc = ls_fsync(fd);
    if (fd >= 0) close(fd);
    if (rc == 0 && link(tmp, path) != 0 && errno != EEXIST) rc = ls_err_from_errno(errno);
    unlink(tmp);
    if (rc) msg(err, errlen, path, ls_strerror(rc));
    return rc;
}

static int check_page(const ls_ctlpage_t *p, char *err, size_t errlen)
{
    if (memcmp(p->map, CTL_MAGIC, 8) != 0) {
        msg(err, errlen, p->path, "bad magic at offset 0 (not a logship control page)");
        return LS_ECORRUPT;
    }
    if (ls_get32(p->map + OFF_VERSION) != CTL_VERSION) {
        msg(err, errlen, p->path, "unsupported version at offset 8 (expected 1)");
        return LS_ECORRUPT;
    }
    if (ls_get32(p->map + OFF_SIZE) != LS_CTL_SIZE) {
        msg(err, errlen, p->path, "size field at offset 12 is not 4096");
        return LS_ECORRUPT;
    }
    return 0;
}

int ls_ctlpage_open(const char *dbdir, bool create, ls_ctlpage_t **out, char *err, size_t errlen)
{
    *out = NULL;
    ls_ctlpage_t *p = calloc(1, sizeof(*p));
    if (!p) return LS_ENOMEM;
    p->fd = -1;
    p->map = MAP_FAILED;
    snprintf(p->path, sizeof(p->path), "%.4000s/control", dbdir);
    struct stat st;
    int rc = 0;
    if (stat(p->path, &st) != 0) {
        if (errno != ENOENT || !create) {
            rc = ls_err_from_errno(errno);
            msg(err, errlen, p->path, ls_strerror(rc));
            goto fail;
        }
        if ((rc = create_page(p->path, err, errlen)) != 0) goto fail;
    }
    if ((p->fd = open(p->path, O_RDWR | O_CLOEXEC)) < 0 || fstat(p->fd, &st) != 0) {
        rc = ls_err_from_errno(errno);
        msg(err, errlen, p->path, ls_strerror(rc));
        goto fail;
    }
    if (st.st_size != LS_CTL_SIZE) {
        msg(err, errlen, p->path, "is not 4096 bytes long (damaged control page)");
        rc = LS_ECORRUPT;
        goto fail;
    }
    p->map = mmap(NULL, LS_CTL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
    if (p->map == MAP_FAILED) {
        rc = ls_err_from_errno(errno);
        msg(err, errlen, p->path, ls_strerror(rc));
        goto fail;
    }
    if ((rc = check_page(p, err, errlen)) != 0) goto fail;
    *out = p;
    return 0;
fail:
    ls_ctlpage_close(p);
    return rc;
}

void ls_ctlpage_close(ls_ctlpage_t *p)
{
    if (!p) return;
    if (p->map != MAP_FAILED) munmap(p->map, LS_CTL_SIZE);
    if (p->fd >= 0) close(p->fd);
    free(p);
}

static uint64_t *fence_word(const ls_ctlpage_t *p)
{
    return (uint64_t *) (void *) (p->map + OFF_FENCE);
}

uint32_t ls_ctlpage_fenced(const ls_ctlpage_t *p)
{
    return (uint32_t) __atomic_load_n(fence_word(p), __ATOMIC_ACQUIRE);
}

void ls_ctlpage_fence(const ls_ctlpage_t *p, ls_ctl_fence_t *out)
{
    memset(out, 0, sizeof(*out));
    out->epoch = ls_ctlpage_fenced(p);
    if (!out->epoch) return;
    out->since_ns = ls_get64(p->map + OFF_FENCE_NS);
    uint32_t n = LS_MIN(ls_get32(p->map + OFF_NAME_LEN), (uint32_t) LS_CTL_NAME_MAX);
    memcpy(out->name, p->map + OFF_NAME, n); /* bytes from disk: bounded, never trusted */
    out->name[n] = '\0';
}

/* msync + fsync of the page and of its directory (the page may never have been synced since
 * its creation): the page survives a restart. */
static int sync_page(ls_ctlpage_t *p, char *err, size_t errlen)
{
    char dir[LS__CTL_PATH_MAX];
    ls_path_dirname(p->path, dir, sizeof(dir));
    int rc = msync(p->map, LS_CTL_SIZE, MS_SYNC) != 0 ? ls_err_from_errno(errno) : 0;
    if (rc == 0) rc = ls_fsync(p->fd);
    if (rc == 0) rc = ls_fsync_dir(dir);
    if (rc) msg(err, errlen, p->path, ls_strerror(rc));
    return rc;
}

static uint64_t *hold_ack_word(const ls_ctlpage_t *p)
{
    return (uint64_t *) (void *) (p->map + OFF_HOLD_ACK);
}

bool ls_ctlpage_held(const ls_ctlpage_t *p)
{
    return ls_ctlpage_fenced(p) && (ls_get32(p->map + OFF_FLAGS) & LS_CTL_HOLD);
}

/* The fence with flags: the flags and the acknowledgement are written before the word. */
static int set_fence(ls_ctlpage_t *p, uint32_t epoch, uint32_t flags, const char *name, char *err,
                     size_t errlen)
{
    if (epoch == 0) {
        msg(err, errlen, p->path, "a fence needs an epoch >= 1");
        return LS_EINVAL;
    }
    size_t n = name ? strnlen(name, LS_CTL_NAME_MAX) : 0;
    memset(p->map + OFF_NAME, 0, LS_CTL_NAME_MAX + 1);
    if (n) memcpy(p->map + OFF_NAME, name, n);
    ls_put32(p->map + OFF_NAME_LEN, (uint32_t) n);
    ls_put64(p->map + OFF_FENCE_NS, ls_now_ns());
    ls_put32(p->map + OFF_FLAGS, flags);
    __atomic_store_n(hold_ack_word(p), 0, __ATOMIC_RELEASE);
    __atomic_store_n(fence_word(p), (uint64_t) epoch, __ATOMIC_RELEASE);
    return sync_page(p, err, errlen);
}

int ls_ctlpage_set_fence(ls_ctlpage_t *p, uint32_t epoch, const char *name, char *err,
                         size_t errlen)
{
    return set_fence(p, epoch, 0, name, err, errlen);
}

int ls_ctlpage_set_hold(ls_ctlpage_t *p, uint32_t epoch, const char *name, char *err, size_t errlen)
{
    return set_fence(p, epoch, LS_CTL_HOLD, name, err, errlen);
}

int ls_ctlpage_set_asked(ls_ctlpage_t *p, char *err, size_t errlen)
{
    ls_put32(p->map + OFF_FLAGS, ls_get32(p->map + OFF_FLAGS) | LS_CTL_ASKED);
    return sync_page(p, err, errlen);
}

uint32_t ls_ctlpage_flags(const ls_ctlpage_t *p)
{
    return ls_ctlpage_fenced(p) ? ls_get32(p->map + OFF_FLAGS) : 0;
}

void ls_ctlpage_ack_hold(ls_ctlpage_t *p, uint64_t last_generation, uint64_t last_lsn)
{
    uint32_t epoch = ls_ctlpage_fenced(p);
    if (!epoch || __atomic_load_n(hold_ack_word(p), __ATOMIC_ACQUIRE) == epoch) return;
    ls_put64(p->map + OFF_HOLD_GEN, last_generation);
    ls_put64(p->map + OFF_HOLD_LSN, last_lsn);
    ls_put64(p->map + OFF_HOLD_NS, ls_now_ns());
    __atomic_store_n(hold_ack_word(p), (uint64_t) epoch, __ATOMIC_RELEASE);
}

bool ls_ctlpage_hold_acked(const ls_ctlpage_t *p, uint64_t *last_generation, uint64_t *last_lsn)
{
    uint32_t epoch = ls_ctlpage_fenced(p);
    if (!epoch || __atomic_load_n(hold_ack_word(p), __ATOMIC_ACQUIRE) != epoch) return false;
    *last_generation = ls_get64(p->map + OFF_HOLD_GEN);
    *last_lsn = ls_get64(p->map + OFF_HOLD_LSN);
    return true;
}

int ls_ctlpage_clear_fence(ls_ctlpage_t *p, char *err, size_t errlen)
{
    __atomic_store_n(fence_word(p), 0, __ATOMIC_RELEASE);
    memset(p->map + OFF_FENCE_NS, 0, OFF_HOLD_NS + 8 - OFF_FENCE_NS);
    return sync_page(p, err, errlen);
}
