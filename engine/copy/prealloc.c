/* The pool of preallocated files (prealloc.h). Names in the pool's directory: ready-<n> (made:
 * padded to the pool size and fsynced), bare-<n> (empty, nothing written or synced; kept open
 * when made or emptied here, so that the taker only renames it),
 * <n>.tmp (being made or given; deleted at open). */
#include "copy/prealloc_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"

typedef enum { NAME_TMP, NAME_READY, NAME_BARE } name_t;

static void file_path(const ls_prealloc_t *p, char *out, size_t len, uint64_t n, name_t kind)
{
    if (kind == NAME_READY)
        snprintf(out, len, "%s/ready-%llu", p->dir, (unsigned long long) n);
    else if (kind == NAME_BARE)
        snprintf(out, len, "%s/bare-%llu", p->dir, (unsigned long long) n);
    else
        snprintf(out, len, "%s/%llu.tmp", p->dir, (unsigned long long) n);
}

/* Writes zeros over [from, to) of fd. */
int ls__prealloc_zeros(ls_prealloc_t *p, int fd, uint64_t from, uint64_t to)
{
    int rc = 0;
    for (uint64_t off = from; rc == 0 && off < to;) {
        size_t len = (size_t) LS_MIN((uint64_t) ZERO_STEP, to - off);
        rc = LS_FAULT("copy.prealloc.write_enospc")
                 ? LS_ENOSPC
                 : ls_pwrite_full(fd, p->zeros, len, (off_t) off);
        off += len;
    }
    return rc;
}

/* Brings the file <n>.tmp (created when absent) to size bytes (zeros written past its end, or
 * cut: here, off anyone's path, where a cut's cost does not matter), fsyncs it (its size and
 * blocks durable) and renames it ready-<n>. 0 or an error; the .tmp is deleted on error. */
static int finish(ls_prealloc_t *p, uint64_t n, uint64_t size)
{
    char tmp[PATH_MAX_PA + 32], ready[PATH_MAX_PA + 32];
    file_path(p, tmp, sizeof(tmp), n, NAME_TMP);
    file_path(p, ready, sizeof(ready), n, NAME_READY);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return ls_err_from_errno(errno);
    struct stat st;
    int rc = fstat(fd, &st) != 0 ? ls_err_from_errno(errno) : 0;
    if (rc == 0 && (uint64_t) st.st_size > size && ftruncate(fd, (off_t) size) != 0)
        rc = ls_err_from_errno(errno);
    if (rc == 0) rc = ls__prealloc_zeros(p, fd, (uint64_t) st.st_size, size);
    if (rc == 0) rc = ls_fsync(fd);
    close(fd);
    if (rc == 0 && rename(tmp, ready) != 0) rc = ls_err_from_errno(errno);
    if (rc) unlink(tmp);
    return rc;
}

/* Creates the empty file bare-<n>, open for writing in *fd (a crash leaves it empty: nothing is
 * half made). Nothing is written or synced: it only spares the taker the inode's allocation and
 * the open. 0 or an error. */
static int make_bare(ls_prealloc_t *p, uint64_t n, int *fd)
{
    char bare[PATH_MAX_PA + 32];
    file_path(p, bare, sizeof(bare), n, NAME_BARE);
    *fd = open(bare, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    return *fd < 0 ? ls_err_from_errno(errno) : 0;
}

/* Adds a bare file (mu held); only the first BARE_FILES stay open (a descriptor each). */
static void bare_push(ls_prealloc_t *p, uint64_t n, int fd)
{
    if (fd >= 0 && p->nbare >= BARE_FILES) {
        close(fd);
        fd = -1;
    }
    p->bare[p->nbare] = n;
    p->bare_fd[p->nbare++] = fd;
}

/* Takes the oldest bare file (mu held, one there): its number, its descriptor or -1. */
static uint64_t bare_pop(ls_prealloc_t *p, int *fd)
{
    uint64_t n = p->bare[0];
    *fd = p->bare_fd[0];
    p->nbare--;
    memmove(p->bare, p->bare + 1, p->nbare * sizeof(p->bare[0]));
    memmove(p->bare_fd, p->bare_fd + 1, p->nbare * sizeof(p->bare_fd[0]));
    return n;
}

/* A given file <n>.tmp emptied (its blocks freed: the taker writes it as a new file) and renamed
 * bare-<n>, open for writing in *fd. 0 or an error; the .tmp is deleted on error. */
static int empty_given(ls_prealloc_t *p, uint64_t n, int *fd)
{
    char tmp[PATH_MAX_PA + 32], bare[PATH_MAX_PA + 32];
    file_path(p, tmp, sizeof(tmp), n, NAME_TMP);
    file_path(p, bare, sizeof(bare), n, NAME_BARE);
    *fd = open(tmp, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (*fd >= 0 && rename(tmp, bare) == 0) return 0;
    int rc = ls_err_from_errno(errno);
    if (*fd >= 0) close(*fd);
    *fd = -1;
    unlink(tmp);
    return rc;
}

/* Makes one bare file (mu held; released while the file is created). */
static void add_bare(ls_prealloc_t *p)
{
    uint64_t n = p->next++;
    int fd = -1;
    p->making_bare++;
    pthread_mutex_unlock(&p->mu);
    int rc = make_bare(p, n, &fd);
    pthread_mutex_lock(&p->mu);
    p->making_bare--;
    if (rc == 0)
        bare_push(p, n, fd);
    else
        p->bare_failed = true; /* the taker creates its own file, as without a pool */
}

static uint64_t deadline_ns(const ls_prealloc_t *p)
{
    return p->last_take_ns + p->idle_ns;
}

/* The steps of the pool's thread. Each is called with p->mu held, returns with it held and says
 * whether it did something (the loop then looks again from the first step). */

/* A growth a receive has queued: it will wait on it, so it goes first. */
static bool step_grow(ls_prealloc_t *p)
{
    if (p->grow.state != GROW_QUEUED) return false;
    p->grow.state = GROW_RUNNING;
    int fd = p->grow.fd;
    uint64_t from = p->grow.from, to = p->grow.to;
    pthread_mutex_unlock(&p->mu);
    int rc = ls__prealloc_zeros(p, fd, from, to);
    if (rc == 0) { /* written: the receiver may write there while they are synced */
        pthread_mutex_lock(&p->mu);
        p->grow.state = GROW_SYNCING;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        rc = LS_FAULT("copy.prealloc.grow_sync_eio") /* tests: the sync fails */
                 ? LS_EIO
                 : ls_fdatasync(fd); /* the blocks and the size committed */
    }
    pthread_mutex_lock(&p->mu);
    p->grow.rc = rc;
    p->grow.state = GROW_DONE;
    pthread_cond_broadcast(&p->cv);
    return true;
}

/* A file synced ahead of a receive that will sync it. */
static bool step_sync(ls_prealloc_t *p)
{
    if (!p->nsyncs) return false;
    int fd = p->syncs[--p->nsyncs];
    pthread_mutex_unlock(&p->mu);
    (void) ls_fdatasync(fd);
    close(fd);
    pthread_mutex_lock(&p->mu);
    return true;
}

/* A pruned log: emptied, it spares an inode's allocation. */
static bool step_empty(ls_prealloc_t *p)
{
    if (!p->nemptying) return false;
    uint64_t n = p->emptying[--p->nemptying];
    int fd = -1;
    pthread_mutex_unlock(&p->mu);
    int rc = empty_given(p, n, &fd);
    pthread_mutex_lock(&p->mu);
    if (rc == 0 && p->nbare < MAX_FILES)
        bare_push(p, n, fd);
    else if (fd >= 0)
        close(fd);
    return true;
}

/* Makes ready file n (a given one, else the next), from a bare file when there is one. */
static void make_ready(ls_prealloc_t *p, bool given)
{
    uint64_t n = given ? p->pending[--p->npending] : p->next++, size = p->size;
    uint64_t from = 0; /* a bare file becomes this ready one: no inode allocated */
    bool reuse = !given && p->nbare > 0;
    int bare_fd = -1;
    if (reuse) from = bare_pop(p, &bare_fd);
    if (!given) p->reserved++;
    pthread_mutex_unlock(&p->mu);
    if (reuse) {
        if (bare_fd >= 0) close(bare_fd);
        char b[PATH_MAX_PA + 32], t[PATH_MAX_PA + 32];
        file_path(p, b, sizeof(b), from, NAME_BARE);
        file_path(p, t, sizeof(t), n, NAME_TMP);
        (void) rename(b, t); /* failed: finish creates the .tmp */
    }
    int rc = finish(p, n, size);
    pthread_mutex_lock(&p->mu);
    if (!given) p->reserved--;
    if (rc == 0 && p->nready < MAX_FILES) {
        p->ready[p->nready++] = n;
    } else if (rc) {
        if (!given) p->make_failed = true;
        LS_LOGW("copy",
                "%s: cannot preallocate %s/%llu: %s (the next receive makes a new "
                "file)",
                p->label, p->dir, (unsigned long long) n, ls_strerror(rc));
    }
}

static void *pool_main(void *arg)
{
    ls_prealloc_t *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        if (step_grow(p) || step_sync(p) || step_empty(p)) continue;
        if (p->nbare + p->making_bare < BARE_FILES && !p->bare_failed) { /* cheap: at once */
            add_bare(p);
            continue;
        }
        bool given = p->npending > 0, idle = ls_mono_ns() >= deadline_ns(p);
        bool want = p->nready + p->npending + p->reserved < p->count && !p->make_failed;
        bool more_bare = p->nbare + p->making_bare < MAX_FILES && !p->bare_failed;
        if (!given && !want && more_bare && idle) { /* a stock for the next backlog */
            add_bare(p);
            continue;
        }
        if (!given && (want || more_bare) && !idle) { /* takes lately: not now */
            uint64_t at = deadline_ns(p);
            struct timespec ts = {.tv_sec = (time_t) (at / 1000000000ull),
                                  .tv_nsec = (long) (at % 1000000000ull)};
            pthread_cond_timedwait(&p->cv, &p->mu, &ts);
            continue;
        }
        if (!given && !want) {
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        make_ready(p, given);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

/* At open: the oldest ready files counted (extras and half-made ones deleted), the next number
 * found. */
static int scan(ls_prealloc_t *p)
{
    DIR *d = opendir(p->dir);
    if (!d) return ls_err_from_errno(errno);
    uint64_t found[MAX_FILES * 2];
    unsigned nfound = 0;
    char path[PATH_MAX_PA + 300];
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        unsigned long long n;
        char extra;
        snprintf(path, sizeof(path), "%s/%.255s", p->dir, e->d_name);
        if (sscanf(e->d_name, "ready-%llu%c", &n, &extra) == 1) {
            if (nfound < LS_ARRAY_SIZE(found))
                found[nfound++] = n;
            else
                unlink(path);
            if (n >= p->next) p->next = n + 1;
        } else if (sscanf(e->d_name, "bare-%llu%c", &n, &extra) == 1) {
            if (p->nbare < MAX_FILES)
                bare_push(p, n, -1); /* empty whatever their order: any one will do */
            else
                unlink(path);
            if (n >= p->next) p->next = n + 1;
        } else if (sscanf(e->d_name, "%llu.tm%c", &n, &extra) == 2 && extra == 'p') {
            unlink(path); /* half made or half given when the process ended */
        }
    }
    closedir(d);
    qsort(found, nfound, sizeof(found[0]), cmp_u64); /* the oldest are taken first */
    for (unsigned i = 0; i < nfound; i++) {
        if (p->nready < p->count) {
            p->ready[p->nready++] = found[i];
            continue;
        }
        file_path(p, path, sizeof(path), found[i], NAME_READY);
        unlink(path);
    }
    return 0;
}

int ls_prealloc_open(const ls_prealloc_options_t *o, ls_prealloc_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!o->dir || strlen(o->dir) >= PATH_MAX_PA - 64 || o->count > MAX_FILES) {
        ls_msgf(err, errlen, "prealloc: a directory (under %d bytes) and at most %d files needed",
                PATH_MAX_PA - 64, MAX_FILES);
        return LS_EINVAL;
    }
    ls_prealloc_t *p = calloc(1, sizeof(*p));
    if (!p || !(p->zeros = calloc(1, ZERO_STEP))) {
        free(p);
        return LS_ENOMEM;
    }
    snprintf(p->dir, sizeof(p->dir), "%s", o->dir);
    snprintf(p->label, sizeof(p->label), "%s", o->label ? o->label : o->dir);
    p->count = o->count ? o->count : 2;
    p->size = o->size ? o->size : DEFAULT_SZ;
    p->idle_ns = (uint64_t) (o->idle_ms ? o->idle_ms : 100) * 1000000ull;
    p->last_take_ns = 0; /* the first files are made at once */
    p->grow.fd = -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = ls_mkdir_p(p->dir);
    if (rc == 0) rc = scan(p);
    if (rc == 0 && pthread_create(&p->thread, NULL, pool_main, p) != 0) rc = LS_ENOMEM;
    if (rc) {
        ls_msgf(err, errlen, "%s: cannot open the pool of preallocated files in %s: %s", p->label,
                p->dir, ls_strerror(rc));
        p->started = false;
        ls_prealloc_close(p);
        return rc;
    }
    p->started = true;
    *out = p;
    return 0;
}

int ls_prealloc_take(ls_prealloc_t *p, const char *path, int *fd, uint64_t *size)
{
    *fd = -1;
    *size = 0;
    if (!p) return LS_ENOENT;
    pthread_mutex_lock(&p->mu);
    p->last_take_ns = ls_mono_ns();
    p->make_failed = p->bare_failed = false;
    name_t kind = p->nready ? NAME_READY : p->nbare ? NAME_BARE : NAME_TMP;
    uint64_t n = 0;
    int open_fd = -1; /* a bare file the pool kept open */
    if (kind == NAME_READY) {
        n = p->ready[0];
        memmove(p->ready, p->ready + 1, --p->nready * sizeof(p->ready[0]));
    } else if (kind == NAME_BARE) {
        n = bare_pop(p, &open_fd);
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (kind == NAME_TMP) return LS_ENOENT;
    char from[PATH_MAX_PA + 32];
    file_path(p, from, sizeof(from), n, kind);
    if (open_fd >= 0) { /* empty and open: the rename is all */
        if (rename(from, path) == 0) {
            *fd = open_fd;
            return 0;
        }
        int rc = ls_err_from_errno(errno);
        close(open_fd);
        unlink(from);
        return rc;
    }
    if (rename(from, path) != 0) return ls_err_from_errno(errno);
    *fd = open(path, O_WRONLY | O_CLOEXEC);
    struct stat st;
    if (*fd < 0 || fstat(*fd, &st) != 0) {
        int rc = ls_err_from_errno(errno);
        if (*fd >= 0) close(*fd);
        *fd = -1;
        unlink(path);
        return rc;
    }
    *size = (uint64_t) st.st_size;
    return 0;
}

bool ls_prealloc_give(ls_prealloc_t *p, const char *path)
{
    if (!p) return false;
    pthread_mutex_lock(&p->mu);
    bool want = !p->stop && p->nready + p->npending + p->reserved < p->count;
    bool bare = !want && !p->stop &&
                p->nbare + p->making_bare + p->nemptying + p->bare_reserved < MAX_FILES;
    uint64_t n = want || bare ? p->next++ : 0;
    if (want) p->reserved++;
    if (bare) p->bare_reserved++;
    pthread_mutex_unlock(&p->mu);
    if (!want && !bare) return false;
    char to[PATH_MAX_PA + 32];
    file_path(p, to, sizeof(to), n, NAME_TMP);
    bool moved = rename(path, to) == 0;
    pthread_mutex_lock(&p->mu);
    if (want) p->reserved--;
    if (bare) p->bare_reserved--;
    if (moved && want) p->pending[p->npending++] = n;
    if (moved && bare) p->emptying[p->nemptying++] = n;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return moved;
}

void ls_prealloc_size(ls_prealloc_t *p, uint64_t size)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->recent[p->nrecent++ % RECENT] = LS_MIN(size, 256ull * 1024 * 1024);
    uint64_t least = UINT64_MAX;
    for (unsigned i = 0; i < LS_MIN(p->nrecent, (unsigned) RECENT); i++)
        least = LS_MIN(least, p->recent[i]);
    p->size = LS_MAX(least / SIZE_ROUND * SIZE_ROUND, SIZE_ROUND);
    pthread_mutex_unlock(&p->mu);
}

unsigned ls_prealloc_ready(ls_prealloc_t *p)
{
    if (!p) return 0;
    pthread_mutex_lock(&p->mu);
    unsigned n = p->nready;
    pthread_mutex_unlock(&p->mu);
    return n;
}

unsigned ls_prealloc_bare(ls_prealloc_t *p)
{
    if (!p) return 0;
    pthread_mutex_lock(&p->mu);
    unsigned n = p->nbare;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void ls_prealloc_close(ls_prealloc_t *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->started) pthread_join(p->thread, NULL);
    for (unsigned i = 0; i < p->nsyncs; i++)
        close(p->syncs[i]);
    for (unsigned i = 0; i < p->nbare; i++)
        if (p->bare_fd[i] >= 0) close(p->bare_fd[i]);
    if (p->grow.fd >= 0) close(p->grow.fd);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->zeros);
    free(p);
}
