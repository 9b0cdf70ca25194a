/* What a copy's source last announced (COPY_STATE, BLOCK), kept beside the copy in
 * <copy>.announced for an activation after a restart (activate.c reads p->announced): the
 * file's text (pure, announced.h) and the copy's adapters that load it at open, update it from
 * the frames and write it (at once, fsynced at the next housekeeping). On the loop.
 *
 * A COPY_STATE comes right before the GEN_BEGIN of every newly closed generation, so its write
 * is on the critical path of every pick-up (and another follows its DURABLE). The numbers have a
 * fixed width (the file's length never changes once made) and the write is one pwrite in place
 * over the file that a durable write made when the copy opened (ls__node_announced_made), through
 * a descriptor kept open for the copy's life (p->ann_fd, closed by ls__node_announced_close when
 * the copy closes): no open/fstat/close per write, no new inode, no rename (a rename over the old
 * file cost 0.2-2.2 ms here in strace, the loop not reading the GEN_BEGIN meanwhile), no size
 * change. One pwrite of at most 512 bytes within one page is whole or not at all for a kill -9;
 * the next housekeeping makes it durable with an fdatasync, enough because the size and the
 * blocks are those the durable write synced; it also checks that the kept inode is still the
 * file's (st_nlink), so a file removed or replaced behind our back is made again. Whenever the
 * length differs (a file of an older release, another source name) or the file is not known
 * durable, it is replaced whole (temporary file and rename), and synced whole at the next
 * housekeeping. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/announced.h"
#include "node/node_int.h"

int ls_node_announced_format(const ls_role_announced_t *a, const char *source, const char *copy,
                             char *buf, size_t len)
{
    return snprintf(buf, len,
                    "# what %s last announced about %s (COPY_STATE, BLOCK), for logship activate\n"
                    "last_generation %020" PRIu64 "\nlast_close_ns %020" PRIu64
                    "\nmissing_bytes %020" PRIu64 "\nopen_generation %020" PRIu64
                    "\nopen_lsn %020" PRIu64 "\n",
                    source, copy, a->last_generation, a->last_close_ns, a->missing_bytes,
                    a->open_generation, a->open_lsn);
}

int ls_node_announced_parse(char *text, ls_role_announced_t *out)
{
    memset(out, 0, sizeof(*out));
    int line = 0;
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        line++;
        char key[32];
        uint64_t v;
        if (l[0] == '#') continue;
        if (strchr(l, '-')) { /* SCNu64 takes "-1" as 2^64 - 1: a damaged line, not a number */
            memset(out, 0, sizeof(*out));
            return line;
        }
        if (sscanf(l, "%31s %" SCNu64, key, &v) == 2 && !strcmp(key, "last_generation"))
            out->last_generation = v;
        else if (sscanf(l, "%31s %" SCNu64, key, &v) == 2 && !strcmp(key, "last_close_ns"))
            out->last_close_ns = v;
        else if (sscanf(l, "%31s %" SCNu64, key, &v) == 2 && !strcmp(key, "missing_bytes"))
            out->missing_bytes = v;
        else if (sscanf(l, "%31s %" SCNu64, key, &v) == 2 && !strcmp(key, "open_generation"))
            out->open_generation = v;
        else if (sscanf(l, "%31s %" SCNu64, key, &v) == 2 && !strcmp(key, "open_lsn"))
            out->open_lsn = v;
        else {
            memset(out, 0, sizeof(*out));
            return line;
        }
    }
    return 0;
}

void ls__node_announced_load(pcopy_t *p)
{
    snprintf(p->ann_path, sizeof(p->ann_path), "%s.announced", p->cfg->path);
    memset(&p->announced, 0, sizeof(p->announced));
    p->ann_len = 0; /* not known durable: the first write replaces it whole */
    p->ann_fd = -1; /* opened once the file is known durable (p was zeroed by the copy's open) */
    uint8_t *buf = NULL;
    size_t len = 0;
    if (ls_read_file(p->ann_path, 4096, &buf, &len) != 0) return; /* absent: nothing announced */
    char *text = realloc(buf, len + 1);
    if (!text) {
        free(buf);
        return;
    }
    text[len] = '\0';
    int line = ls_node_announced_parse(text, &p->announced);
    if (line)
        LS_LOGW("copy",
                "%s:%d: not 'last_generation', 'last_close_ns', 'missing_bytes', "
                "'open_generation' or 'open_lsn' N: what the source announced is taken as "
                "unknown",
                p->ann_path, line);
    free(text);
}

void ls__node_announced_set(pcopy_t *p, const ls_proto_copy_state_t *cs)
{
    if (!cs->last_generated) return; /* a target's COPY_STATE, or nothing closed yet */
    ls_role_announced_t a = {.last_generation = cs->last_generated,
                             .last_close_ns = cs->last_generated_ns,
                             .missing_bytes = cs->queue_bytes};
    if (p->announced.open_generation > a.last_generation) { /* block mode's position stays */
        a.open_generation = p->announced.open_generation;
        a.open_lsn = p->announced.open_lsn;
    }
    if (!memcmp(&a, &p->announced, sizeof(a))) return;
    p->announced = a;
    p->ann_dirty = true;
    ls__node_announced_save(p, false);
}

void ls__node_announced_block(pcopy_t *p, uint64_t generation, uint64_t durable_lsn)
{
    if (generation < p->announced.open_generation ||
        (generation == p->announced.open_generation && durable_lsn <= p->announced.open_lsn))
        return;
    p->announced.open_generation = generation;
    p->announced.open_lsn = durable_lsn;
    p->ann_dirty = true; /* written by the next housekeeping: not once per frame */
}

void ls__node_announced_made(pcopy_t *p)
{
    p->ann_dirty = true; /* written whole and synced now, so that later writes are in place */
    ls__node_announced_save(p, true);
}

/* The kept descriptor closed (the file is then replaced whole, or the copy closes). */
static void drop_fd(pcopy_t *p)
{
    if (p->ann_fd >= 0) close(p->ann_fd);
    p->ann_fd = -1;
    p->ann_len = 0;
}

/* The file replaced whole: a temporary file and a rename, synced (file and directory) or not. */
static int replace(pcopy_t *p, const char *buf, size_t len, bool sync)
{
    drop_fd(p);
    if (sync) return ls_write_file_durable(p->ann_path, buf, len);
    char tmp[sizeof(p->ann_path) + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", p->ann_path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = fd < 0 ? ls_err_from_errno(errno) : 0;
    if (fd >= 0 && write(fd, buf, len) != (ssize_t) len) rc = LS_EIO;
    if (fd >= 0) close(fd);
    if (rc == 0 && rename(tmp, p->ann_path) != 0) rc = ls_err_from_errno(errno);
    return rc;
}

/* The file overwritten in place through the kept descriptor (its length is len and durable):
 * one pwrite when write; when sync, a check that the inode is still the file's and an
 * fdatasync. */
static int overwrite(pcopy_t *p, const char *buf, size_t len, bool write, bool sync)
{
    if (p->ann_fd < 0) return LS_ESTATE;
    if (sync) {
        struct stat st;
        if (fstat(p->ann_fd, &st) != 0) return ls_err_from_errno(errno);
        if (st.st_nlink == 0 || (uint64_t) st.st_size != len)
            return LS_ESTATE; /* behind our back */
    }
    if (write && pwrite(p->ann_fd, buf, len, 0) != (ssize_t) len) return LS_EIO;
    return sync ? ls_fdatasync(p->ann_fd) : 0;
}

/* After a durable whole write: the descriptor kept for the writes in place. */
static int keep_fd(pcopy_t *p)
{
    p->ann_fd = open(p->ann_path, O_WRONLY | O_CLOEXEC);
    return p->ann_fd < 0 ? ls_err_from_errno(errno) : 0;
}

/* Written at once (a restart of this daemon finds it), synced on the next housekeeping (at most
 * one sync a second). */
void ls__node_announced_save(pcopy_t *p, bool sync)
{
    if (!p->ann_dirty && !(sync && p->ann_unsynced)) return;
    char buf[512];
    int n = ls_node_announced_format(&p->announced, p->source, p->cfg->name, buf, sizeof(buf));
    size_t len = n < 0 ? 0 : LS_MIN((size_t) n, sizeof(buf) - 1);
    int rc = p->ann_len == len ? overwrite(p, buf, len, p->ann_dirty, sync) : LS_ESTATE;
    if (rc) /* not known durable with this length, or gone meanwhile: replaced whole */
        rc = replace(p, buf, len, sync);
    if (rc == 0 && sync && p->ann_fd < 0) rc = keep_fd(p);
    if (rc) {
        drop_fd(p);
        LS_LOGW("copy", "%s: cannot keep what %s announced in %s: %s", p->cfg->name, p->source,
                p->ann_path, ls_strerror(rc));
        return;
    }
    if (sync) p->ann_len = len; /* durable whole: from now on overwritten in place */
    p->ann_dirty = false;
    p->ann_unsynced = !sync;
}

void ls__node_announced_close(pcopy_t *p)
{
    drop_fd(p);
}
