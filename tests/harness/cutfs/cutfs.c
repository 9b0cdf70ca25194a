/*
 * cutfs: a FUSE filesystem that forgets what was not made durable, as a power cut would.
 *
 *   cutfs MOUNTPOINT STATE_FILE [SEED]
 *
 * The whole image lives in this process's memory. Every inode has a current state (what
 * processes see) and a durable state (what a power cut leaves):
 *   - a regular file's data and size become durable on fsync or fdatasync of that file (through
 *     any descriptor); its mode and times are kept as they are (not modelled);
 *   - a directory's entries (create, mkdir, link, rename in or out, unlink, rmdir) become durable
 *     on fsync of that directory, all of its entries at once; a rename across directories is
 *     durable in the source on the source's fsync and in the destination on the destination's;
 *   - nothing else makes anything durable (no timer, no close, no "journal" that orders things).
 * SIGUSR1 is the cut: the current state of every inode is replaced by its durable state, except
 * that some of each file's unsynced writes (the last MAX_PENDING since its last fsync) may reach
 * its durable data, as a disk with a volatile cache would persist them: per file, one of three
 * at random: none; a prefix in write order; any subset (reordered). The last write persisted is
 * torn with probability 1/2 (a random number of whole 512-byte sectors from its start). A write
 * past the durable size extends it (zeros in between). Inodes no durable entry reaches are
 * dropped. The durable image is saved to STATE_FILE and the process
 * unmounts and exits 0; the next start on the same STATE_FILE mounts what the cut left, with a
 * cold kernel page cache. SIGTERM (or SIGINT, or an external unmount) is a clean shutdown:
 * everything current is saved as durable, as `sync; umount` would.
 *
 * Writes reach this process synchronously (no writeback cache), so after the processes on the
 * mount are killed nothing of theirs is in flight in the kernel. Reads go through the kernel page
 * cache and mmap works (no direct_io): LMDB maps its data file read-only and writes with pwrite.
 * Locks (flock, fcntl) are left to the kernel. One thread serves every request: no locking.
 * CUTFS_IGNORE=fsync or fsyncdir in the environment makes that call a no-op (it answers success
 * and makes nothing durable): a check that the tests built on cutfs notice a missing sync.
 * docs/POWERCUT.md describes the model and the tests built on it.
 */
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SECTOR      512
#define PAGE        4096 /* unit of the dirty map: an fsync copies only the pages written since */
#define MAX_PENDING 256  /* unsynced writes remembered per file; older ones are never persisted */

typedef struct {
    char *name;     /* entry name (malloc'd) */
    fuse_ino_t ino; /* inode it names */
    off_t seq;      /* readdir offset: increasing along the array, never reused, so a listing
                       running while entries come and go returns every other entry once */
} dent_t;

typedef struct {
    dent_t *v;  /* entries */
    size_t n;   /* count */
    size_t cap; /* allocated */
} dents_t;

typedef struct {
    unsigned char *d; /* bytes */
    size_t len;       /* file size */
    size_t cap;       /* allocated */
} blob_t;

typedef struct {
    off_t off;        /* offset written */
    size_t len;       /* bytes */
    unsigned char *d; /* the bytes (malloc'd) */
} pending_t;

typedef struct {
    int used;             /* slot in use */
    mode_t mode;          /* type and permissions */
    blob_t cur, dur;      /* regular files: current and durable data */
    dents_t ecur, edur;   /* directories: current and durable entries */
    pending_t *pend;      /* writes since the last fsync, oldest first (at most MAX_PENDING) */
    size_t npend;         /* their count */
    struct timespec mtim; /* modification time (current only) */
    int opens;            /* open file handles (an unlinked open file keeps its data) */
    unsigned char *dirty; /* one byte per PAGE of cur: written since the last fsync */
    size_t ndirty;        /* entries in dirty */
} inode_t;

static inode_t *inodes; /* indexed by inode number; 1 is the root */
static size_t ninodes;
static struct fuse_session *session;
static volatile sig_atomic_t cut_requested;
static off_t next_seq = 3; /* 1 and 2 are "." and ".." */
static unsigned long long rng = 88172645463325252ull;
static int ignore_fsync, ignore_fsyncdir; /* CUTFS_IGNORE: make that call a no-op */

static unsigned long long next_rand(void) /* xorshift64 */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int blob_reserve(blob_t *b, size_t len)
{
    if (len <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < len)
        cap *= 2;
    unsigned char *d = realloc(b->d, cap);
    if (!d) return -ENOMEM;
    b->d = d;
    b->cap = cap;
    return 0;
}

/* Sets b's size to len, zero-filling what grows. */
static int blob_resize(blob_t *b, size_t len)
{
    if (blob_reserve(b, len)) return -ENOMEM;
    if (len > b->len) memset(b->d + b->len, 0, len - b->len);
    b->len = len;
    return 0;
}

static int blob_write(blob_t *b, off_t off, const void *buf, size_t len)
{
    size_t end = (size_t) off + len;
    if (end > b->len && blob_resize(b, end)) return -ENOMEM;
    memcpy(b->d + off, buf, len);
    return 0;
}

static int blob_copy(blob_t *dst, const blob_t *src)
{
    if (blob_reserve(dst, src->len)) return -ENOMEM;
    if (src->len) memcpy(dst->d, src->d, src->len);
    dst->len = src->len;
    return 0;
}

static void blob_free(blob_t *b)
{
    free(b->d);
    *b = (blob_t){0};
}

/* Notes that [off, off + len) of in's current data changed. */
static int mark_dirty(unsigned char **dirty, size_t *ndirty, size_t off, size_t len)
{
    if (len == 0) return 0;
    size_t first = off / PAGE, last = (off + len - 1) / PAGE;
    if (last >= *ndirty) {
        size_t n = *ndirty ? *ndirty : 16;
        while (n <= last)
            n *= 2;
        unsigned char *d = realloc(*dirty, n);
        if (!d) return -ENOMEM;
        memset(d + *ndirty, 0, n - *ndirty);
        *dirty = d;
        *ndirty = n;
    }
    memset(*dirty + first, 1, last - first + 1);
    return 0;
}

static void dents_free(dents_t *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i].name);
    free(e->v);
    *e = (dents_t){0};
}

static int dents_copy(dents_t *dst, const dents_t *src)
{
    dents_free(dst);
    dst->v = calloc(src->n ? src->n : 1, sizeof(dent_t));
    if (!dst->v) return -ENOMEM;
    dst->cap = src->n ? src->n : 1;
    for (size_t i = 0; i < src->n; i++) {
        dst->v[i].name = strdup(src->v[i].name);
        dst->v[i].ino = src->v[i].ino;
        dst->v[i].seq = src->v[i].seq;
    }
    dst->n = src->n;
    return 0;
}

static dent_t *dents_find(dents_t *e, const char *name)
{
    for (size_t i = 0; i < e->n; i++)
        if (!strcmp(e->v[i].name, name)) return &e->v[i];
    return NULL;
}

static int dents_add(dents_t *e, const char *name, fuse_ino_t ino)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 8;
        dent_t *v = realloc(e->v, cap * sizeof(*v));
        if (!v) return -ENOMEM;
        e->v = v;
        e->cap = cap;
    }
    e->v[e->n].name = strdup(name);
    e->v[e->n].seq = next_seq++;
    e->v[e->n++].ino = ino;
    return 0;
}

static void dents_del(dents_t *e, const char *name)
{
    dent_t *d = dents_find(e, name);
    if (!d) return;
    free(d->name);
    memmove(d, d + 1, (size_t) (e->v + e->n - (d + 1)) * sizeof(*d)); /* keeps seq order */
    e->n--;
}

static inode_t *get(fuse_ino_t ino)
{
    return ino < ninodes && inodes[ino].used ? &inodes[ino] : NULL;
}

static fuse_ino_t new_inode(mode_t mode)
{
    if (ninodes == 0 || inodes[ninodes - 1].used) {
        size_t n = ninodes ? ninodes * 2 : 64;
        inode_t *v = realloc(inodes, n * sizeof(*v));
        if (!v) return 0;
        memset(v + ninodes, 0, (n - ninodes) * sizeof(*v));
        inodes = v;
        ninodes = n;
    }
    fuse_ino_t ino = 2;
    while (inodes[ino].used)
        ino++;
    inode_t *in = &inodes[ino];
    *in = (inode_t){.used = 1, .mode = mode};
    clock_gettime(CLOCK_REALTIME, &in->mtim);
    return ino;
}

/* Inode numbers are reused only after a restart (no lookup can refer to a dropped one then);
 * within a run a removed file keeps its slot, and its data is freed when no entry, current or
 * durable, names it any more. */
static int named(fuse_ino_t ino)
{
    for (size_t i = 1; i < ninodes; i++) {
        if (!inodes[i].used || !S_ISDIR(inodes[i].mode)) continue;
        for (size_t k = 0; k < inodes[i].ecur.n; k++)
            if (inodes[i].ecur.v[k].ino == ino) return 1;
        for (size_t k = 0; k < inodes[i].edur.n; k++)
            if (inodes[i].edur.v[k].ino == ino) return 1;
    }
    return 0;
}

static void drop_pending(inode_t *in)
{
    for (size_t i = 0; i < in->npend; i++)
        free(in->pend[i].d);
    free(in->pend);
    in->pend = NULL;
    in->npend = 0;
}

/* Remembers an unsynced write, for the cut to persist or not. */
static int add_pending(inode_t *in, off_t off, const void *buf, size_t len)
{
    if (in->npend == MAX_PENDING) {
        free(in->pend[0].d);
        memmove(in->pend, in->pend + 1, (MAX_PENDING - 1) * sizeof(*in->pend));
        in->npend--;
    } else if (in->npend == 0 || !(in->npend & (in->npend - 1))) {
        pending_t *v = realloc(in->pend, (in->npend ? in->npend * 2 : 1) * sizeof(*v));
        if (!v) return -ENOMEM;
        in->pend = v;
    }
    unsigned char *d = malloc(len ? len : 1);
    if (!d) return -ENOMEM;
    memcpy(d, buf, len);
    in->pend[in->npend++] = (pending_t){off, len, d};
    return 0;
}

static void maybe_release_data(fuse_ino_t ino)
{
    inode_t *in = get(ino);
    if (!in || S_ISDIR(in->mode) || in->opens || named(ino)) return;
    blob_free(&in->cur);
    blob_free(&in->dur);
    drop_pending(in);
    free(in->dirty);
    in->dirty = NULL;
    in->ndirty = 0;
}

static void fill_attr(fuse_ino_t ino, struct stat *st)
{
    inode_t *in = get(ino);
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_mode = in->mode;
    st->st_nlink = S_ISDIR(in->mode) ? 2 : 1;
    st->st_size = S_ISDIR(in->mode) ? 4096 : (off_t) in->cur.len;
    st->st_blksize = 4096;
    st->st_blocks = (st->st_size + 511) / 512;
    st->st_mtim = st->st_ctim = st->st_atim = in->mtim;
}

static void reply_entry(fuse_req_t req, fuse_ino_t ino)
{
    struct fuse_entry_param e = {.ino = ino, .attr_timeout = 1.0, .entry_timeout = 1.0};
    fill_attr(ino, &e.attr);
    fuse_reply_entry(req, &e);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    inode_t *p = get(parent);
    dent_t *d = p && S_ISDIR(p->mode) ? dents_find(&p->ecur, name) : NULL;
    if (!d) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    reply_entry(req, d->ino);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void) fi;
    struct stat st;
    if (!get(ino)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    fill_attr(ino, &st);
    fuse_reply_attr(req, &st, 1.0);
}

static void touch(inode_t *in)
{
    clock_gettime(CLOCK_REALTIME, &in->mtim);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    (void) fi;
    inode_t *in = get(ino);
    if (!in) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (to_set & FUSE_SET_ATTR_MODE) in->mode = (in->mode & S_IFMT) | (attr->st_mode & 07777);
    if (to_set & FUSE_SET_ATTR_SIZE) {
        if (S_ISDIR(in->mode)) {
            fuse_reply_err(req, EISDIR);
            return;
        }
        size_t old = in->cur.len, len = (size_t) attr->st_size;
        if (blob_resize(&in->cur, len) ||
            (len > old && mark_dirty(&in->dirty, &in->ndirty, old, len - old))) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        touch(in);
    }
    if (to_set & FUSE_SET_ATTR_MTIME) in->mtim = attr->st_mtim;
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) touch(in);
    op_getattr(req, ino, NULL);
}

static void make_node(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    inode_t *p = get(parent);
    if (!p || !S_ISDIR(p->mode)) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    if (dents_find(&p->ecur, name)) {
        fuse_reply_err(req, EEXIST);
        return;
    }
    fuse_ino_t ino = new_inode(mode);
    p = get(parent); /* the table may have moved */
    if (!ino || dents_add(&p->ecur, name, ino)) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    touch(p);
    if (fi) get(ino)->opens++;
    struct fuse_entry_param e = {.ino = ino, .attr_timeout = 1.0, .entry_timeout = 1.0};
    fill_attr(ino, &e.attr);
    if (fi)
        fuse_reply_create(req, &e, fi);
    else
        fuse_reply_entry(req, &e);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    make_node(req, parent, name, S_IFDIR | (mode & 07777), NULL);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    (void) rdev;
    if (!S_ISREG(mode)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    make_node(req, parent, name, mode, NULL);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    make_node(req, parent, name, S_IFREG | (mode & 07777), fi);
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, int dir)
{
    inode_t *p = get(parent);
    dent_t *d = p ? dents_find(&p->ecur, name) : NULL;
    if (!d) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    inode_t *in = get(d->ino);
    if (dir && !S_ISDIR(in->mode)) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    if (!dir && S_ISDIR(in->mode)) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    if (dir && in->ecur.n) {
        fuse_reply_err(req, ENOTEMPTY);
        return;
    }
    fuse_ino_t ino = d->ino;
    dents_del(&p->ecur, name);
    touch(p);
    maybe_release_data(ino);
    fuse_reply_err(req, 0);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_entry(req, parent, name, 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_entry(req, parent, name, 1);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    inode_t *p = get(parent), *np = get(newparent);
    dent_t *d = p ? dents_find(&p->ecur, name) : NULL;
    if (!d || !np) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (flags & ~RENAME_NOREPLACE) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    fuse_ino_t ino = d->ino, old = 0;
    dent_t *t = dents_find(&np->ecur, newname);
    if (t) {
        if (t->ino == ino) {
            fuse_reply_err(req, 0);
            return;
        }
        inode_t *tin = get(t->ino);
        if (flags & RENAME_NOREPLACE) {
            fuse_reply_err(req, EEXIST);
            return;
        }
        if (S_ISDIR(tin->mode) != S_ISDIR(get(ino)->mode)) {
            fuse_reply_err(req, S_ISDIR(tin->mode) ? EISDIR : ENOTDIR);
            return;
        }
        if (S_ISDIR(tin->mode) && tin->ecur.n) {
            fuse_reply_err(req, ENOTEMPTY);
            return;
        }
        old = t->ino;
        t->ino = ino;
    } else if (dents_add(&np->ecur, newname, ino)) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    dents_del(&get(parent)->ecur, name);
    touch(get(parent));
    touch(get(newparent));
    if (old) maybe_release_data(old);
    fuse_reply_err(req, 0);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    inode_t *np = get(newparent), *in = get(ino);
    if (!np || !in || S_ISDIR(in->mode)) {
        fuse_reply_err(req, in && S_ISDIR(in->mode) ? EPERM : ENOENT);
        return;
    }
    if (dents_find(&np->ecur, newname)) {
        fuse_reply_err(req, EEXIST);
        return;
    }
    if (dents_add(&np->ecur, newname, ino)) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    reply_entry(req, ino);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    inode_t *in = get(ino);
    if (!in) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (fi->flags & O_TRUNC) {
        blob_resize(&in->cur, 0);
        touch(in);
    }
    fi->keep_cache = 1; /* every change goes through this mount: the kernel's copy is right */
    in->opens++;
    fuse_reply_open(req, fi);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void) fi;
    inode_t *in = get(ino);
    if (in && in->opens > 0) in->opens--;
    maybe_release_data(ino);
    fuse_reply_err(req, 0);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void) fi;
    inode_t *in = get(ino);
    if (!in) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if ((size_t) off >= in->cur.len) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    if (size > in->cur.len - (size_t) off) size = in->cur.len - (size_t) off;
    fuse_reply_buf(req, (const char *) in->cur.d + off, size);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    (void) fi;
    inode_t *in = get(ino);
    if (!in) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    size_t old = in->cur.len;
    if (blob_write(&in->cur, off, buf, size) || add_pending(in, off, buf, size) ||
        mark_dirty(&in->dirty, &in->ndirty, (size_t) off < old ? (size_t) off : old,
                   (size_t) off + size - ((size_t) off < old ? (size_t) off : old))) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    touch(in);
    fuse_reply_write(req, size);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                         struct fuse_file_info *fi)
{
    (void) fi;
    inode_t *in = get(ino);
    if (!in || mode != 0) {
        fuse_reply_err(req, in ? EOPNOTSUPP : ENOENT);
        return;
    }
    size_t end = (size_t) (off + len);
    size_t old = in->cur.len;
    if (end > old &&
        (blob_resize(&in->cur, end) || mark_dirty(&in->dirty, &in->ndirty, old, end - old))) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void) datasync;
    (void) fi;
    inode_t *in = get(ino);
    if (!in || ignore_fsync) {
        fuse_reply_err(req, in ? 0 : ENOENT);
        return;
    }
    int rc = blob_reserve(&in->dur, in->cur.len);
    for (size_t pg = 0; rc == 0 && pg < in->ndirty; pg++) {
        if (!in->dirty[pg]) continue;
        in->dirty[pg] = 0;
        size_t off = pg * PAGE;
        if (off < in->cur.len)
            memcpy(in->dur.d + off, in->cur.d + off,
                   in->cur.len - off < PAGE ? in->cur.len - off : PAGE);
    }
    if (rc == 0) in->dur.len = in->cur.len;
    drop_pending(in);
    fuse_reply_err(req, rc ? ENOMEM : 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void) datasync;
    (void) fi;
    inode_t *in = get(ino);
    if (!in || !S_ISDIR(in->mode) || ignore_fsyncdir) {
        fuse_reply_err(req, in && S_ISDIR(in->mode) ? 0 : ENOTDIR);
        return;
    }
    dents_t old = in->edur;
    in->edur = (dents_t){0};
    int rc = dents_copy(&in->edur, &in->ecur);
    for (size_t i = 0; i < old.n; i++)
        if (!dents_find(&in->ecur, old.v[i].name) ||
            dents_find(&in->ecur, old.v[i].name)->ino != old.v[i].ino) {
            fuse_ino_t gone = old.v[i].ino;
            old.v[i].ino = 0;
            maybe_release_data(gone);
        }
    dents_free(&old);
    fuse_reply_err(req, rc ? ENOMEM : 0);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    (void) fi;
    inode_t *in = get(ino);
    if (!in || !S_ISDIR(in->mode)) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    char *buf = malloc(size);
    size_t used = 0;
    for (size_t i = 0; buf && i < in->ecur.n + 2; i++) {
        struct stat st = {0};
        const dent_t *d = i < 2 ? NULL : &in->ecur.v[i - 2];
        off_t seq = d ? d->seq : (off_t) i + 1;
        if (seq <= off) continue;
        st.st_ino = d ? d->ino : ino;
        st.st_mode = d ? get(d->ino)->mode : S_IFDIR;
        size_t n = fuse_add_direntry(req, buf + used, size - used,
                                     d   ? d->name
                                     : i ? ".."
                                         : ".",
                                     &st, seq);
        if (n > size - used) break;
        used += n;
    }
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    (void) ino;
    struct statvfs sv = {.f_bsize = 4096,
                         .f_frsize = 4096,
                         .f_blocks = 1u << 22,
                         .f_bfree = 1u << 21,
                         .f_bavail = 1u << 21,
                         .f_files = 1u << 20,
                         .f_ffree = 1u << 19,
                         .f_namemax = 255};
    fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops ops = {
    .lookup = op_lookup,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .mkdir = op_mkdir,
    .mknod = op_mknod,
    .create = op_create,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .release = op_release,
    .read = op_read,
    .write = op_write,
    .fallocate = op_fallocate,
    .fsync = op_fsync,
    .fsyncdir = op_fsyncdir,
    .readdir = op_readdir,
    .statfs = op_statfs,
};

/* ---- the cut, and the image on disk ---- */

/* Marks every inode reachable from the root through durable entries. */
static void mark(fuse_ino_t ino, unsigned char *seen)
{
    if (seen[ino]) return;
    seen[ino] = 1;
    inode_t *in = &inodes[ino];
    if (S_ISDIR(in->mode))
        for (size_t i = 0; i < in->edur.n; i++)
            mark(in->edur.v[i].ino, seen);
}

/* What a cut did with the unsynced writes of the files. */
typedef struct {
    int kept; /* writes persisted whole */
    int torn; /* writes persisted in part (whole sectors from their start) */
} cut_stats_t;

/* Persists (some of) in's unsynced writes over its durable data. Per file one of three disks:
 * none of them reached the platter; a prefix of them in order, the last one maybe torn; or any
 * subset of them (a disk that reorders its cache), the last one persisted maybe torn. */
static void persist_some(inode_t *in, cut_stats_t *st)
{
    int model = (int) (next_rand() % 3);
    size_t prefix = (size_t) (next_rand() % (in->npend + 1)), last = in->npend;
    unsigned char *keep = calloc(in->npend ? in->npend : 1, 1);
    for (size_t j = 0; keep && j < in->npend; j++) {
        keep[j] = model == 1 ? j < prefix : model == 2 ? (int) (next_rand() % 2) : 0;
        if (keep[j]) last = j;
    }
    for (size_t j = 0; keep && j < in->npend; j++) {
        if (!keep[j]) continue;
        pending_t *w = &in->pend[j];
        size_t len = w->len;
        if (j == last && next_rand() % 2) {
            size_t sectors = (w->len + SECTOR - 1) / SECTOR;
            len = (size_t) (next_rand() % (sectors + 1)) * SECTOR;
            if (len > w->len) len = w->len;
            st->torn += len < w->len;
        }
        st->kept += len == w->len;
        if (len) blob_write(&in->dur, w->off, w->d, len);
    }
    free(keep);
}

/* Replaces current by durable everywhere (persisting some unsynced writes when tear is set),
 * then drops what no durable entry reaches. */
static cut_stats_t cut(int tear)
{
    cut_stats_t st = {0, 0};
    for (size_t i = 1; i < ninodes; i++) {
        inode_t *in = &inodes[i];
        if (!in->used) continue;
        if (S_ISDIR(in->mode)) {
            dents_copy(&in->ecur, &in->edur);
            continue;
        }
        if (tear && in->npend) persist_some(in, &st);
        drop_pending(in);
        blob_copy(&in->cur, &in->dur);
        if (in->dirty) memset(in->dirty, 0, in->ndirty);
    }
    unsigned char *seen = calloc(ninodes, 1);
    mark(1, seen);
    for (size_t i = 2; i < ninodes; i++)
        if (inodes[i].used && !seen[i]) {
            blob_free(&inodes[i].cur);
            blob_free(&inodes[i].dur);
            free(inodes[i].dirty);
            dents_free(&inodes[i].ecur);
            dents_free(&inodes[i].edur);
            inodes[i].used = 0;
        }
    free(seen);
    return st;
}

/* Clean shutdown: everything current becomes durable. */
static void sync_all(void)
{
    for (size_t i = 1; i < ninodes; i++) {
        inode_t *in = &inodes[i];
        if (!in->used) continue;
        if (S_ISDIR(in->mode))
            dents_copy(&in->edur, &in->ecur);
        else
            blob_copy(&in->dur, &in->cur);
        drop_pending(in);
    }
    cut(0); /* drops what is no longer named */
}

/* Image: "cutfs1\n", then per inode: ino, mode, size, bytes (files) or entry count and
 * (name length, name, ino) entries (directories); ino 0 ends it. Durable state only. */
static int save(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return -1;
    fputs("cutfs1\n", f);
    for (size_t i = 1; i < ninodes; i++) {
        inode_t *in = &inodes[i];
        if (!in->used) continue;
        unsigned long long h[3] = {i, in->mode, S_ISDIR(in->mode) ? in->edur.n : in->dur.len};
        fwrite(h, sizeof(h), 1, f);
        if (!S_ISDIR(in->mode)) {
            if (in->dur.len) fwrite(in->dur.d, 1, in->dur.len, f); /* an empty file: no buffer */
            continue;
        }
        for (size_t k = 0; k < in->edur.n; k++) {
            unsigned long long e[2] = {strlen(in->edur.v[k].name), in->edur.v[k].ino};
            fwrite(e, sizeof(e), 1, f);
            fwrite(in->edur.v[k].name, 1, e[0], f);
        }
    }
    unsigned long long end[3] = {0, 0, 0};
    fwrite(end, sizeof(end), 1, f);
    int bad = ferror(f);
    if (fclose(f) || bad) return -1;
    return rename(tmp, path);
}

static int load(const char *path)
{
    FILE *f = fopen(path, "rb");
    ninodes = 64;
    inodes = calloc(ninodes, sizeof(*inodes));
    if (!f) { /* a new image: an empty root */
        inodes[1] = (inode_t){.used = 1, .mode = S_IFDIR | 0755};
        clock_gettime(CLOCK_REALTIME, &inodes[1].mtim);
        return errno == ENOENT ? 0 : -1;
    }
    char magic[8] = {0};
    if (!fgets(magic, sizeof(magic), f) || strcmp(magic, "cutfs1\n")) goto bad;
    for (;;) {
        unsigned long long h[3];
        if (fread(h, sizeof(h), 1, f) != 1) goto bad;
        if (h[0] == 0) break;
        while (h[0] >= ninodes) {
            inodes = realloc(inodes, 2 * ninodes * sizeof(*inodes));
            memset(inodes + ninodes, 0, ninodes * sizeof(*inodes));
            ninodes *= 2;
        }
        inode_t *in = &inodes[h[0]];
        *in = (inode_t){.used = 1, .mode = (mode_t) h[1]};
        clock_gettime(CLOCK_REALTIME, &in->mtim);
        if (!S_ISDIR(in->mode)) {
            if (blob_resize(&in->dur, h[2]) || (h[2] && fread(in->dur.d, 1, h[2], f) != h[2]))
                goto bad;
            blob_copy(&in->cur, &in->dur);
            continue;
        }
        for (unsigned long long k = 0; k < h[2]; k++) {
            unsigned long long e[2];
            char name[256];
            if (fread(e, sizeof(e), 1, f) != 1 || e[0] >= sizeof(name) ||
                fread(name, 1, e[0], f) != e[0])
                goto bad;
            name[e[0]] = 0;
            dents_add(&in->edur, name, e[1]);
        }
        dents_copy(&in->ecur, &in->edur);
    }
    fclose(f);
    return 0;
bad:
    fclose(f);
    fprintf(stderr, "cutfs: %s is not a cutfs image\n", path);
    return -1;
}

static void on_cut(int sig)
{
    (void) sig;
    cut_requested = 1;
    if (session) fuse_session_exit(session);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: cutfs MOUNTPOINT STATE_FILE [SEED]\n");
        return 2;
    }
    if (argc > 3) rng ^= strtoull(argv[3], NULL, 10) * 0x9e3779b97f4a7c15ull;
    if (!rng) rng = 1;
    const char *ign = getenv("CUTFS_IGNORE");
    ignore_fsync = ign && !strcmp(ign, "fsync");
    ignore_fsyncdir = ign && !strcmp(ign, "fsyncdir");
    if (load(argv[2])) return 1;
    char *fargv[] = {argv[0], "-o", "fsname=cutfs,subtype=cutfs", NULL};
    struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
    session = fuse_session_new(&args, &ops, sizeof(ops), NULL);
    if (!session || fuse_set_signal_handlers(session)) return 1;
    struct sigaction sa = {.sa_handler = on_cut}; /* no SA_RESTART: the read returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    if (fuse_session_mount(session, argv[1])) return 1;
    int rc = fuse_session_loop(session);
    fuse_session_unmount(session);
    fuse_remove_signal_handlers(session);
    fuse_session_destroy(session);
    session = NULL;
    fuse_opt_free_args(&args); /* libfuse copies the arguments it parsed */
    if (cut_requested) {
        cut_stats_t st = cut(1);
        fprintf(stderr, "cutfs: cut %s (%d unsynced writes kept whole, %d torn)\n", argv[1],
                st.kept, st.torn);
    } else {
        sync_all();
    }
    if (save(argv[2])) {
        fprintf(stderr, "cutfs: cannot save %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    return rc < 0 && !cut_requested ? 1 : 0;
}
