/*
 * Block mode on the copy: the open generation's shadow applied early (docs/BLOCKMODE.md, "Shadow
 * replay and activation").
 *
 * The receiver (engine/copy/shadow.c) appends the active's durable bytes of its current log to
 * <dir>/shadow/<name> and reports each fdatasync through ls_copy_shadow_durable, which only
 * records the position and wakes the replayer.
 */
#include <stdio.h>
#include <stdlib.h>

#include "copy/copy_int.h"

void ls_copy_shadow_durable(ls_copy_t *c, uint32_t epoch, uint64_t generation, uint64_t size,
                            uint64_t durable_lsn)
{
    pthread_mutex_lock(&c->mu);
    c->sh.epoch = epoch;
    c->sh.generation = generation;
    c->sh.size = size;
    c->sh.durable_lsn = durable_lsn;
    c->sh.reports++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

int ls_copy_shadow_path(ls_copy_t *c, uint32_t epoch, uint64_t generation, char *out, size_t outlen)
{
    char path[LS__COPY_PATH_MAX];
    ls__copy_path(c, path, c->shadow_dir, epoch, generation);
    if (strlen(path) >= outlen) return LS_EINVAL;
    memcpy(out, path, strlen(path) + 1);
    return 0;
}

void ls__copy_shadow_free(ls_copy_t *c)
{
    (void) c;
}
