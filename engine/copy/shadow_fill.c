/* The shadow's blocks allocated and written ahead of its bytes (docs/BLOCKMODE.md, "The shadow
 * written over blocks filled ahead"). An appended shadow's every fdatasync also allocates the
 * new blocks and changes the file's size: on ext4 without a journal that is the bitmap, group
 * descriptor and inode written and waited for besides the data (about 5 bios per sync against
 * 2-3 for an overwrite). Once a shadow holds LS__COPY_FILL_FROM bytes (a generation long enough
 * for it to pay), a thread of its own keeps LS__COPY_FILL_AHEAD bytes past them allocated
 * (fallocate) and written with zeros by O_DIRECT (so that no page of them is ever in writeback
 * when a batch's fdatasync waits for the file's pages) and fdatasynced, a chunk at a time; the
 * batches then overwrite those blocks in place.
 *
 * What it changes for the file: past the shadow's bytes it holds zeros (or a hole), as a torn
 * tail does: the take-up after a restart and the activation cut it after the last COMMIT anyway,
 * and GEN_TAIL's hard link cuts it to the closed generation's size (ls__copy_fill_stop first).
 * Nothing is acknowledged on the filler's account: every batch still makes its own bytes durable
 * by its own fdatasync, and a write never goes where a chunk is being filled (it waits, under
 * the mutex the filler takes only between chunks). A failure of the filler (no space, no
 * O_DIRECT) only ends the filling: the shadow is appended as before. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copy/copy_int.h"

#define FILL_CHUNK (4u << 20) /* bytes filled at a time */
#define FILL_GAP   (2u << 20) /* a chunk starts at least this far past the bytes written */
/* The zeros go in pieces this long: each O_DIRECT write holds the inode's lock for its I/O, and
 * a batch's write waits for it (one piece at most, ~0.1 ms on an idle disk here). */
#define FILL_ZEROS (64u << 10)
#define FILL_ALIGN 4096u

struct ls__copy_fill {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int fd;            /* the shadow opened O_DIRECT for the zeros */
    uint64_t data_end; /* the shadow's bytes end here (mu) */
    uint64_t end;      /* chunks filled up to here (mu) */
    uint64_t busy_a;   /* the chunk being filled: [busy_a, busy_b); busy_b 0: none (mu) */
    uint64_t busy_b;
    bool stop;   /* (mu) */
    bool failed; /* the filler gave up (mu) */
    void *zeros; /* FILL_ZEROS bytes, aligned */
};

static int fill_chunk(ls__copy_fill_t *f, uint64_t a)
{
    if (fallocate(f->fd, 0, (off_t) a, (off_t) FILL_CHUNK) != 0) return ls_err_from_errno(errno);
    for (uint64_t off = 0; off < FILL_CHUNK; off += FILL_ZEROS)
        if (pwrite(f->fd, f->zeros, FILL_ZEROS, (off_t) (a + off)) != (ssize_t) FILL_ZEROS)
            return LS_EIO;
    return ls_fdatasync(f->fd);
}

static void *fill_main(void *arg)
{
    ls__copy_fill_t *f = arg;
    pthread_mutex_lock(&f->mu);
    while (!f->stop && !f->failed) {
        if (f->data_end + LS__COPY_FILL_AHEAD <= f->end) {
            pthread_cond_wait(&f->cv, &f->mu);
            continue;
        }
        uint64_t a = (f->data_end + FILL_GAP + FILL_ALIGN - 1) / FILL_ALIGN * FILL_ALIGN;
        a = LS_MAX(a, f->end);
        f->busy_a = a;
        f->busy_b = a + FILL_CHUNK;
        pthread_mutex_unlock(&f->mu);
        int rc = fill_chunk(f, a);
        pthread_mutex_lock(&f->mu);
        f->busy_a = f->busy_b = 0;
        if (rc == 0)
            f->end = a + FILL_CHUNK;
        else
            f->failed = true; /* appended as before from here on */
        pthread_cond_broadcast(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* Starts filling the open shadow (its bytes end at data_end): NULL when it cannot (the shadow is
 * appended as before). */
static ls__copy_fill_t *fill_start(ls_copy_t *c, uint64_t data_end)
{
    ls__copy_fill_t *f = calloc(1, sizeof(*f));
    if (!f) return NULL;
    f->fd = open(c->shf.path, O_WRONLY | O_DIRECT | O_CLOEXEC);
    if (f->fd < 0 || posix_memalign(&f->zeros, FILL_ALIGN, FILL_ZEROS) != 0) {
        if (f->fd >= 0) close(f->fd);
        free(f);
        return NULL;
    }
    memset(f->zeros, 0, FILL_ZEROS);
    f->data_end = f->end = data_end;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    if (pthread_create(&f->thread, NULL, fill_main, f) != 0) {
        pthread_cond_destroy(&f->cv);
        pthread_mutex_destroy(&f->mu);
        close(f->fd);
        free(f->zeros);
        free(f);
        return NULL;
    }
    return f;
}

int ls__copy_fill_write(ls_copy_t *c, const void *data, size_t len, uint64_t offset)
{
    ls__copy_fill_t *f = c->shf.fill;
    if (!f) {
        int rc = ls_pwrite_full(c->shf.fd, data, len, (off_t) offset);
        if (rc == 0 && offset + len >= LS__COPY_FILL_FROM && !c->shf.fill_off)
            c->shf.fill_off = !(c->shf.fill = fill_start(c, offset + len));
        return rc;
    }
    pthread_mutex_lock(&f->mu);
    while (f->busy_b && offset < f->busy_b && offset + len > f->busy_a)
        pthread_cond_wait(&f->cv, &f->mu); /* never into a chunk being filled */
    int rc = ls_pwrite_full(c->shf.fd, data, len, (off_t) offset);
    if (rc == 0 && offset + len > f->data_end) {
        f->data_end = offset + len;
        if (f->data_end + LS__COPY_FILL_AHEAD > f->end) pthread_cond_signal(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

void ls__copy_fill_stop(ls_copy_t *c)
{
    ls__copy_fill_t *f = c->shf.fill;
    c->shf.fill = NULL;
    c->shf.fill_off = false;
    if (!f) return;
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL); /* a chunk in progress ends first */
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    close(f->fd);
    free(f->zeros);
    free(f);
}
