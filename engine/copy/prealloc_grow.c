/* The growth of a taken `.part` file and the syncs asked ahead (prealloc.h): the receiver asks,
 * the pool's thread (prealloc.c) writes the zeros and syncs, or the receiver does it itself when
 * the thread has not started it yet. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "copy/prealloc_int.h"
#include "core/core.h"

void ls_prealloc_grow_ahead(ls_prealloc_t *p, int fd, uint64_t from, uint64_t to)
{
    if (!p || from >= to) return;
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    pthread_mutex_lock(&p->mu);
    LS_CHECK(p->grow.state == GROW_NONE); /* one at a time: the last one was waited for */
    p->grow.fd = dup_fd;
    p->grow.from = from;
    p->grow.to = to;
    p->grow.rc = dup_fd < 0 ? ls_err_from_errno(errno) : 0;
    p->grow.state = dup_fd < 0 ? GROW_DONE : GROW_QUEUED; /* the error for ls_prealloc_grown */
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* The growth is over for the taker (mu held): the pool's duplicate of its descriptor closed, a
 * next growth may be asked for. */
static void grow_release(ls_prealloc_t *p)
{
    if (p->grow.fd >= 0) close(p->grow.fd);
    p->grow.fd = -1;
    p->grow.state = GROW_NONE;
}

int ls_prealloc_grown(ls_prealloc_t *p, bool cancel)
{
    if (!p) return 0;
    pthread_mutex_lock(&p->mu);
    if (p->grow.state == GROW_NONE) {
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    int rc;
    if (p->grow.state == GROW_QUEUED) { /* not started: done here (or not at all) */
        int fd = p->grow.fd;
        uint64_t from = p->grow.from, to = p->grow.to;
        p->grow.state = GROW_RUNNING;
        pthread_mutex_unlock(&p->mu);
        rc = cancel ? 0
                    : ls__prealloc_zeros(p, fd, from, to); /* the caller's fdatasync commits them */
        pthread_mutex_lock(&p->mu);
    } else {
        while (p->grow.state == GROW_RUNNING || (cancel && p->grow.state == GROW_SYNCING))
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->grow.state == GROW_SYNCING) { /* ls_prealloc_grow_synced waits for the rest */
            pthread_mutex_unlock(&p->mu);
            return 0;
        }
        rc = p->grow.rc;
    }
    grow_release(p);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int ls_prealloc_grow_synced(ls_prealloc_t *p)
{
    if (!p) return 0;
    pthread_mutex_lock(&p->mu);
    while (p->grow.state == GROW_QUEUED || p->grow.state == GROW_RUNNING ||
           p->grow.state == GROW_SYNCING)
        pthread_cond_wait(&p->cv, &p->mu);
    int rc = 0;
    if (p->grow.state == GROW_DONE) { /* the pool's thread grew and synced it */
        rc = p->grow.rc;
        grow_release(p);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void ls_prealloc_sync_ahead(ls_prealloc_t *p, int fd)
{
    if (!p) return;
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) return;
    pthread_mutex_lock(&p->mu);
    bool room = !p->stop && p->nsyncs < MAX_SYNCS;
    if (room) p->syncs[p->nsyncs++] = dup_fd;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (!room) close(dup_fd);
}
