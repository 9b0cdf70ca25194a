/*
 * The next log, prepared ahead of the roll by its own thread.
 *
 * A roll used to create the next current log on the commit path (a new inode, then a directory
 * fsync), and every batch appended to it grew the file, so each batch's fdatasync also wrote the
 * inode's new size. This thread makes <prefix>.next in logs/ while the current log fills:
 * created (O_TRUNC: a leftover of an earlier run is reused), target_size bytes of zeros written,
 * fdatasync, fsync of logs/. The roll (roll.c) then renames it over <prefix>.log and writes the
 * header into it; batches overwrite the zeros in place, so their fdatasync writes no size change.
 * A roll that finds no file ready (the thread still writing it, or it failed) creates the next
 * log as before; a failure here is logged and stops the preparing (rolls create their files) but
 * never fails the database.
 *
 * The prepared file never holds data under its own name: the roll renames it and fsyncs logs/
 * before the header is written, and the thread makes the following one only after that rename.
 * So a crash leaves at most a file of zeros (whole or partly written) named <prefix>.next, which
 * recovery ignores and the next open overwrites; a current log with zeros after its last COMMIT
 * is a preallocated one (recover.c keeps the zeros and does not count them as torn).
 *
 * Handshake (mu): prep_want says a file is wanted (after open, after a roll took the previous
 * one); next_fd is the ready file (-1: none); prep_stopping ends the thread (close), also in the
 * middle of the zeros.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "writer/writer_int.h"

#define ZERO_CHUNK (64u * 1024)

static const uint8_t zeros[ZERO_CHUNK];

static bool stopping(ls_db_t *db)
{
    pthread_mutex_lock(&db->mu);
    bool s = db->prep_stopping;
    pthread_mutex_unlock(&db->mu);
    return s;
}

/* Creates and fills <prefix>.next; *fd receives it (0), or it is closed (error or stopping). */
static int prepare(ls_db_t *db, int *fd)
{
    *fd = -1;
    if (LS_FAULT("writer.prep.before")) return LS_EIO; /* "fail": rolls create their logs */
    *fd = open(db->next_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (*fd < 0) return ls_err_from_errno(errno);
    uint64_t size = ls__prep_size(db);
    int rc = 0;
    for (uint64_t off = 0; rc == 0 && off < size; off += ZERO_CHUNK) {
        if (stopping(db)) rc = LS_ECLOSED;
        if (rc == 0) rc = ls_pwrite_full(*fd, zeros, LS_MIN(ZERO_CHUNK, size - off), (off_t) off);
    }
    if (rc == 0) LS_FAULT("writer.prep.after_fill"); /* zeros written, not synced */
    if (rc == 0) rc = ls_fdatasync(*fd);
    if (rc == 0) rc = ls_fsync_dir(db->logs);
    if (rc) {
        close(*fd);
        *fd = -1;
    }
    return rc;
}

uint64_t ls__prep_size(const ls_db_t *db)
{
    /* LS_GEN_HARD_CAP is a multiple of 4 KiB: a file recovery can still read whole. */
    return LS_MIN((db->opts.target_size + 4095) / 4096 * 4096, LS_GEN_HARD_CAP);
}

void *ls__prep_main(void *arg)
{
    ls_db_t *db = arg;
    pthread_mutex_lock(&db->mu);
    for (;;) {
        while (!db->prep_stopping && !(db->prep_want && db->next_fd < 0))
            pthread_cond_wait(&db->prepq, &db->mu);
        if (db->prep_stopping) break;
        db->prep_want = false;
        pthread_mutex_unlock(&db->mu);
        int fd = -1;
        int rc = prepare(db, &fd);
        pthread_mutex_lock(&db->mu);
        if (rc == 0) {
            db->next_fd = fd;
        } else if (rc != LS_ECLOSED) {
            LS_LOGW("writer", "cannot prepare %s: %s; rolls create the next log instead",
                    db->next_path, ls_strerror(rc));
            break;
        }
    }
    pthread_mutex_unlock(&db->mu);
    return NULL;
}

int ls__prep_take(ls_db_t *db)
{
    pthread_mutex_lock(&db->mu);
    int fd = db->next_fd;
    db->next_fd = -1;
    pthread_mutex_unlock(&db->mu);
    return fd;
}

void ls__prep_again(ls_db_t *db)
{
    pthread_mutex_lock(&db->mu);
    db->prep_want = true;
    pthread_cond_signal(&db->prepq);
    pthread_mutex_unlock(&db->mu);
}
