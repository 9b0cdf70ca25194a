/* A directory of generation files: listing, paths, and the two ends of a file (layout.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "layout/layout.h"

#define PART_SUFFIX ".part"

static const char *prefix_of(const char *prefix)
{
    return prefix && *prefix ? prefix : LS_GEN_PREFIX_DEFAULT;
}

static int cmp_name(const void *a, const void *b)
{
    const ls_layout_gen_t *x = a, *y = b;
    if (x->epoch != y->epoch) return x->epoch < y->epoch ? -1 : 1;
    return x->generation < y->generation ? -1 : x->generation > y->generation;
}

static int cmp_generation(const void *a, const void *b)
{
    const ls_layout_gen_t *x = a, *y = b;
    if (x->generation != y->generation) return x->generation < y->generation ? -1 : 1;
    return x->epoch < y->epoch ? -1 : x->epoch > y->epoch;
}

/* Appends e to *arr (count *n, capacity *cap). */
static int push(ls_layout_gen_t **arr, size_t *n, size_t *cap, ls_layout_gen_t e)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        ls_layout_gen_t *a = realloc(*arr, c * sizeof(*a));
        if (!a) return LS_ENOMEM;
        *arr = a;
        *cap = c;
    }
    (*arr)[(*n)++] = e;
    return 0;
}

/* Sorts one name into out: a closed generation, a .part of one, the current log, or nothing. */
static int classify(const char *name, const char *prefix, const char *current,
                    ls_layout_list_t *out, size_t caps[2])
{
    ls_layout_gen_t e;
    if (ls_gen_name_parse(name, prefix, &e.epoch, &e.generation) == 0)
        return e.generation ? push(&out->gens, &out->ngens, &caps[0], e) : 0;
    if (!strcmp(name, current)) {
        out->has_current = true;
        return 0;
    }
    size_t n = strlen(name), m = strlen(PART_SUFFIX);
    if (n <= m || n - m >= LS_GEN_NAME_MAX || strcmp(name + n - m, PART_SUFFIX) != 0) return 0;
    char stem[LS_GEN_NAME_MAX];
    memcpy(stem, name, n - m);
    stem[n - m] = '\0';
    if (ls_gen_name_parse(stem, prefix, &e.epoch, &e.generation) != 0 || !e.generation) return 0;
    return push(&out->parts, &out->nparts, &caps[1], e);
}

int ls_layout_list(const char *dir, const ls_layout_options_t *opts, ls_layout_list_t *out,
                   char *err, size_t errlen)
{
    static const ls_layout_options_t defaults;
    const ls_layout_options_t *o = opts ? opts : &defaults;
    memset(out, 0, sizeof(*out));
    const char *prefix = prefix_of(o->prefix);
    char current[LS_GEN_PREFIX_MAX + 8], probe[LS_GEN_NAME_MAX];
    if (ls_gen_name(probe, sizeof(probe), prefix, 1, 1) != 0)
        return ls_errf(err, errlen, LS_EINVAL,
                       "log prefix \"%s\" is not valid (1 to %d characters, no '-' or '/')", prefix,
                       LS_GEN_PREFIX_MAX);
    snprintf(current, sizeof(current), "%s.log", prefix);
    DIR *d = opendir(dir);
    if (!d)
        return ls_errf(err, errlen, ls_err_from_errno(errno), "cannot open %s: %s", dir,
                       strerror(errno));
    size_t caps[2] = {0, 0};
    int rc = 0;
    struct dirent *de;
    errno = 0;
    while (rc == 0 && (de = readdir(d)) != NULL)
        rc = classify(de->d_name, prefix, current, out, caps);
    if (rc == 0 && errno)
        rc = ls_errf(err, errlen, ls_err_from_errno(errno), "cannot list %s: %s", dir,
                     strerror(errno));
    else if (rc)
        rc = ls_errf(err, errlen, rc, "%s: out of memory listing it", dir);
    closedir(d);
    if (rc) {
        ls_layout_list_free(out);
        return rc;
    }
    int (*cmp)(const void *, const void *) =
        o->order == LS_LAYOUT_BY_GENERATION ? cmp_generation : cmp_name;
    if (out->ngens) qsort(out->gens, out->ngens, sizeof(*out->gens), cmp);
    if (out->nparts) qsort(out->parts, out->nparts, sizeof(*out->parts), cmp);
    return 0;
}

void ls_layout_list_free(ls_layout_list_t *l)
{
    if (!l) return;
    free(l->gens);
    free(l->parts);
    memset(l, 0, sizeof(*l));
}

ssize_t ls_layout_find(const ls_layout_list_t *l, uint64_t g)
{
    ssize_t best = -1;
    for (size_t i = 0; i < l->ngens; i++)
        if (l->gens[i].generation == g && (best < 0 || l->gens[i].epoch > l->gens[best].epoch))
            best = (ssize_t) i;
    return best;
}

int ls_layout_path(char *out, size_t outlen, const char *dir, const char *prefix, uint32_t epoch,
                   uint64_t g, const char *suffix)
{
    char name[LS_GEN_NAME_MAX];
    if (ls_gen_name(name, sizeof(name), prefix_of(prefix), epoch, g) != 0) return LS_EINVAL;
    int n = snprintf(out, outlen, "%s/%s%s", dir, name, suffix ? suffix : "");
    return n < 0 || (size_t) n >= outlen ? LS_EINVAL : 0;
}

int ls_layout_read_ends_fd(int fd, const char *path, ls_layout_ends_t *out, char *err,
                           size_t errlen)
{
    memset(out, 0, sizeof(*out));
    struct stat st;
    if (fstat(fd, &st) != 0)
        return ls_errf(err, errlen, ls_err_from_errno(errno), "cannot stat %s: %s", path,
                       strerror(errno));
    out->size = (uint64_t) st.st_size;
    uint8_t hb[LS_GEN_HEADER_SIZE], tb[LS_GEN_TRAILER_SIZE];
    ssize_t n = ls_pread_full(fd, hb, sizeof(hb), 0);
    if (n < 0)
        return ls_errf(err, errlen, (int) n, "cannot read %s: %s", path, ls_strerror((int) n));
    if (n != (ssize_t) sizeof(hb))
        return ls_errf(err, errlen, LS_ECORRUPT, "%s: %llu bytes, shorter than a header", path,
                       (unsigned long long) out->size);
    int rc = ls_gen_header_decode(hb, sizeof(hb), &out->h);
    if (rc) return ls_errf(err, errlen, LS_ECORRUPT, "%s: bad header (%s)", path, ls_strerror(rc));
    if (out->size < LS_GEN_HEADER_SIZE + LS_GEN_TRAILER_SIZE) return 0; /* open, or torn */
    n = ls_pread_full(fd, tb, sizeof(tb), (off_t) (out->size - LS_GEN_TRAILER_SIZE));
    if (n < 0)
        return ls_errf(err, errlen, (int) n, "cannot read %s: %s", path, ls_strerror((int) n));
    if (n != (ssize_t) sizeof(tb)) return 0; /* shrank meanwhile: not closed */
    uint64_t seed = ls_gen_seed(out->h.dbid, out->h.epoch, out->h.generation);
    out->closed = ls_gen_trailer_decode(tb, sizeof(tb), seed, &out->t) == 0 &&
                  out->t.payload_len == out->size - LS_GEN_HEADER_SIZE - LS_GEN_TRAILER_SIZE &&
                  out->t.last_lsn + 1 >= out->h.first_lsn;
    if (!out->closed) memset(&out->t, 0, sizeof(out->t));
    return 0;
}

int ls_layout_read_ends(const char *path, ls_layout_ends_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ls_errf(err, errlen, ls_err_from_errno(errno), "cannot open %s: %s", path,
                       strerror(errno));
    int rc = ls_layout_read_ends_fd(fd, path, out, err, errlen);
    close(fd);
    return rc;
}
