/*
 * Reading a replay batch: each file of the batch is read into one buffer kept between batches
 * and, in the same pass, its XXH3-128 seal computed and compared with the seal taken over the
 * bytes the inspection checked (size too), and its chain facts (prev_digest, first LSN) compared
 * with the previous generation's. A file damaged on disk after inspection is caught here, before
 * anything of it is applied (docs/COPY.md, "Which check runs where").
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy/replay_int.h"

#define READ_PIECE (1024u * 1024u) /* bytes read (and sealed) per pread */

/* Reads path, which should be size bytes, into buf (size bytes of room) and computes its seal in
 * the same pass. *len is the file's size; a file of another size is not read (its seal is then
 * left zero: the caller reports the size). */
static int read_sealed(ls_seal_t *seal, const char *path, uint8_t *buf, size_t size, size_t *len,
                       uint8_t out[LS_SEAL_LEN])
{
    *len = 0;
    memset(out, 0, LS_SEAL_LEN);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ls_err_from_errno(errno);
    struct stat st;
    int rc = fstat(fd, &st) != 0 ? ls_err_from_errno(errno) : 0;
    if (rc == 0 && (uint64_t) st.st_size != size) {
        *len = (size_t) st.st_size;
        close(fd);
        return 0;
    }
    ls_seal_reset(seal);
    for (size_t off = 0; rc == 0 && off < size;) {
        ssize_t n = pread(fd, buf + off, LS_MIN((size_t) READ_PIECE, size - off), (off_t) off);
        if (n <= 0) {
            rc = n < 0 ? ls_err_from_errno(errno) : LS_EIO; /* shrank under us */
            break;
        }
        ls_seal_update(seal, buf + off, (size_t) n);
        off += (size_t) n;
    }
    close(fd);
    if (rc == 0) {
        ls_seal_final(seal, out);
        *len = size;
    }
    return rc;
}

void ls__copy_replay_arena_free(batch_t *b)
{
    if (b->arena) munmap(b->arena, b->arena_cap);
    b->arena = NULL;
    b->arena_cap = 0;
}

/* Room in b->arena for n bytes (kept: a backlog's batches reuse the pages already touched). Its
 * own mapping, not malloc's: a smaller arena given back to a thread's malloc arena stays resident
 * beside the larger one (measured: the daemon's heap 6-7 MiB larger at a 60-generation backlog). */
static int arena_reserve(batch_t *b, size_t n)
{
    if (n <= b->arena_cap) return 0;
    ls__copy_replay_arena_free(b);
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return LS_ENOMEM;
    b->arena = p;
    b->arena_cap = n;
    return 0;
}

int ls__copy_replay_verify(ls_copy_t *c, batch_t *b, const ls_store_meta_t *m, char *msg,
                           size_t msglen)
{
    const uint8_t *prev = m->digest;
    uint64_t next_lsn = m->generation == m->digest_generation && m->lsn ? m->lsn + 1 : 0;
    size_t total = 0, off = 0;
    for (size_t i = 0; i < b->n; i++)
        total += b->e[i].size;
    b->ok = 0;
    int arc = arena_reserve(b, total ? total : 1);
    if (arc) {
        ls_msgf(msg, msglen, "no memory for a batch of %zu bytes", total);
        return arc;
    }
    for (; b->ok < b->n; b->ok++) {
        const ls__copy_entry_t *e = &b->e[b->ok];
        char path[LS__COPY_PATH_MAX], a[2 * LS_SEAL_LEN + 1], x[2 * LS_SEAL_LEN + 1];
        ls__copy_path(c, path, c->logs_dir, e->epoch, e->generation);
        uint8_t seal[LS_SEAL_LEN];
        b->buf[b->ok] = b->arena + off;
        int rc = read_sealed(b->seal, path, b->arena + off, e->size, &b->len[b->ok], seal);
        off += e->size;
        if (rc) {
            ls_msgf(msg, msglen, "cannot read %s: %s", path, ls_strerror(rc));
            return rc;
        }
        LS__COPY_COUNT(c, seal_checks, 1);
        LS__COPY_COUNT(c, seal_bytes, b->len[b->ok]);
        if (b->len[b->ok] != e->size || memcmp(seal, e->seal, LS_SEAL_LEN) != 0) {
            ls_hex(seal, LS_SEAL_LEN, a);
            ls_hex(e->seal, LS_SEAL_LEN, x);
            ls_msgf(msg, msglen,
                    "generation %llu: %s is not the file inspected (%zu bytes, seal %s; "
                    "inspected %llu bytes, seal %s): damaged on disk",
                    (unsigned long long) e->generation, path, b->len[b->ok], a,
                    (unsigned long long) e->size, x);
            return LS_ECORRUPT;
        }
        /* facts the inspection established: the chain as the queue holds it */
        if (memcmp(e->prev_digest, prev, LS_DIGEST_SIZE) != 0 ||
            (next_lsn && e->first_lsn != next_lsn)) {
            ls_msgf(msg, msglen,
                    "generation %llu does not follow the store's position (first lsn %llu, "
                    "expected %llu, or another prev_digest)",
                    (unsigned long long) e->generation, (unsigned long long) e->first_lsn,
                    (unsigned long long) next_lsn);
            return LS_ELINEAGE;
        }
        prev = e->digest;
        next_lsn = e->last_lsn + 1;
    }
    return 0;
}
