/*
 * The receiver's hashing thread (copy_int.h, "rxhash.c"): the SHA-256 of a received chunk runs
 * here while the receiver thread writes the same chunk and feeds it to the seal and the
 * inspection, so that the chunk's two halves of CPU work overlap where a core is free. One job
 * at a time: the receiver offers a chunk (ls__copy_hasher_start), does its own part, then
 * finishes the job (ls__copy_hasher_finish): when this thread has not taken it yet (no core was
 * free for it) the receiver takes it back and hashes inline, so a busy machine pays a lock and
 * a wake-up per chunk, never a wait for a thread that cannot run; when it has, the receiver
 * waits for the hash. Not a queue: a single slot whose job either side may run (core/workq has
 * one consumer, and the hand-back needs the second).
 */
#include <pthread.h>
#include <stdlib.h>

#include "copy/copy_int.h"

typedef enum { JOB_NONE, JOB_OFFERED, JOB_TAKEN, JOB_DONE } job_state_t;

struct ls__copy_hasher {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv_job;  /* an offer, or stop */
    pthread_cond_t cv_done; /* the job taken is done */
    job_state_t state;      /* mu */
    bool stop;              /* mu: free was called */
    ls_sha256_t *sha;       /* the job: the running hash, the bytes */
    const void *data;
    size_t len;
};

static void *hasher_main(void *arg)
{
    ls__copy_hasher_t *h = arg;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->stop && h->state != JOB_OFFERED)
            pthread_cond_wait(&h->cv_job, &h->mu);
        if (h->stop) break;
        h->state = JOB_TAKEN;
        pthread_mutex_unlock(&h->mu);
        ls_sha256_update(h->sha, h->data, h->len);
        pthread_mutex_lock(&h->mu);
        h->state = JOB_DONE;
        pthread_cond_signal(&h->cv_done);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

ls__copy_hasher_t *ls__copy_hasher_new(void)
{
    ls__copy_hasher_t *h = calloc(1, sizeof(*h));
    if (!h) return NULL;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv_job, NULL);
    pthread_cond_init(&h->cv_done, NULL);
    if (pthread_create(&h->thread, NULL, hasher_main, h) != 0) {
        pthread_cond_destroy(&h->cv_done);
        pthread_cond_destroy(&h->cv_job);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return NULL;
    }
    return h;
}

void ls__copy_hasher_start(ls__copy_hasher_t *h, ls_sha256_t *sha, const void *data, size_t len)
{
    pthread_mutex_lock(&h->mu);
    LS_CHECK(h->state == JOB_NONE); /* the previous job was finished */
    h->sha = sha;
    h->data = data;
    h->len = len;
    h->state = JOB_OFFERED;
    pthread_cond_signal(&h->cv_job);
    pthread_mutex_unlock(&h->mu);
}

bool ls__copy_hasher_finish(ls__copy_hasher_t *h)
{
    pthread_mutex_lock(&h->mu);
    bool mine = h->state == JOB_OFFERED; /* not taken: the caller hashes */
    while (h->state == JOB_TAKEN)
        pthread_cond_wait(&h->cv_done, &h->mu);
    h->state = JOB_NONE;
    pthread_mutex_unlock(&h->mu);
    if (mine) ls_sha256_update(h->sha, h->data, h->len);
    return !mine;
}

void ls__copy_hasher_free(ls__copy_hasher_t *h)
{
    if (!h) return;
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_cond_signal(&h->cv_job);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
    pthread_cond_destroy(&h->cv_done);
    pthread_cond_destroy(&h->cv_job);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
