/*
 * source: the directory view. A rescan lists <db>/logs once through engine/layout (readdir, no
 * stat), keeps the names that are closed generations with our prefix, sorted, and merges the new
 * array with the old one so cached headers and trailers survive. The current log, the history and
 * foreign files are ignored. Each file's epoch is checked against the history; two files for one
 * generation are an error, as the active never writes that. Generations a removal is unlinking
 * (removing_upto, see removal.c) are left out, so a rescan never re-adds a file about to vanish.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"
#include "layout/layout.h"
#include "source/source_int.h"

void ls__src_path(const ls_source_t *src, uint32_t epoch, uint64_t g, char *out, size_t outlen)
{
    char name[LS_GEN_NAME_MAX];
    LS_CHECK(ls_gen_name(name, sizeof(name), src->prefix, epoch, g) == 0);
    snprintf(out, outlen, "%s/%s", src->logs, name);
}

size_t ls__src_upper(const ls_source_t *src, uint64_t g)
{
    size_t lo = 0, hi = src->ngens;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (src->gens[mid].generation <= g)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

ssize_t ls__src_find(const ls_source_t *src, uint64_t g)
{
    size_t i = ls__src_upper(src, g);
    if (i > 0 && src->gens[i - 1].generation == g) return (ssize_t) (i - 1);
    return -1;
}

/* Lists the directory (engine/layout) into a sorted array of bare entries. */
static int list_dir(ls_source_t *src, ls__src_gen_t **out, size_t *n, char *err, size_t errlen)
{
    ls_layout_options_t lo = {.prefix = src->prefix};
    ls_layout_list_t l;
    int rc = ls_layout_list(src->logs, &lo, &l, err, errlen);
    if (rc) return rc;
    ls__src_gen_t *arr = l.ngens ? calloc(l.ngens, sizeof(*arr)) : NULL;
    if (l.ngens && !arr) {
        ls_layout_list_free(&l);
        return ls_errf(err, errlen, LS_ENOMEM, "%s: out of memory", src->logs);
    }
    size_t cnt = 0;
    for (size_t i = 0; i < l.ngens; i++) {
        if (l.gens[i].generation <= src->removing_upto) continue; /* being unlinked */
        arr[cnt].epoch = l.gens[i].epoch;
        arr[cnt++].generation = l.gens[i].generation;
    }
    ls_layout_list_free(&l);
    *out = arr;
    *n = cnt;
    return 0;
}

/* Checks the new array: unique generations, epochs as the history says. */
static int check_view(const ls_source_t *src, const ls__src_gen_t *a, size_t n, char *err,
                      size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        /* Sorted by (epoch, generation): generations rise strictly unless two epochs overlap. */
        if (i > 0 && a[i].generation <= a[i - 1].generation) {
            ssize_t j = (ssize_t) i - 1;
            while (j > 0 && a[j].generation != a[i].generation)
                j--;
            if (a[j].generation == a[i].generation)
                return ls_errf(err, errlen, LS_ECORRUPT,
                               "%s: generation %llu exists for epochs %u and %u; the active "
                               "never writes that: move the wrong one away",
                               src->logs, (unsigned long long) a[i].generation, a[j].epoch,
                               a[i].epoch);
            return ls_errf(err, errlen, LS_ELINEAGE,
                           "%s: generation %llu of epoch %u follows generation %llu of epoch "
                           "%u: the epochs overlap; the active never writes that",
                           src->logs, (unsigned long long) a[i].generation, a[i].epoch,
                           (unsigned long long) a[i - 1].generation, a[i - 1].epoch);
        }
        uint32_t want = ls__src_hist_epoch(src, a[i].generation);
        if (a[i].epoch != want) {
            char path[PATH_MAX];
            ls__src_path(src, a[i].epoch, a[i].generation, path, sizeof(path));
            return ls_errf(err, errlen, LS_ELINEAGE,
                           "%s: epoch %u, but %s says generation %llu belongs to epoch %u", path,
                           a[i].epoch, src->hist_path, (unsigned long long) a[i].generation, want);
        }
    }
    return 0;
}

/* Carries the cached fields of old entries still present into a. */
static void merge_cache(const ls_source_t *src, ls__src_gen_t *a, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        while (j < src->ngens && src->gens[j].generation < a[i].generation)
            j++;
        if (j < src->ngens && src->gens[j].generation == a[i].generation &&
            src->gens[j].epoch == a[i].epoch)
            a[i] = src->gens[j];
    }
}

static void wake_readers(ls_source_t *src)
{
    for (ls__src_waiter_t *w = src->waiters; w; w = w->next) {
        pthread_mutex_lock(w->mu);
        *w->dirty = true;
        pthread_cond_broadcast(w->cond);
        pthread_mutex_unlock(w->mu);
    }
}

static int rescan_locked(ls_source_t *src, char *err, size_t errlen)
{
    int rc = ls__src_hist_refresh(src, err, errlen);
    if (rc) return rc;
    ls__src_gen_t *a = NULL;
    size_t n = 0;
    rc = list_dir(src, &a, &n, err, errlen);
    if (rc) return rc;
    rc = check_view(src, a, n, err, errlen);
    if (rc) {
        free(a);
        return rc;
    }
    merge_cache(src, a, n);
    bool grew = n && (!src->ngens || a[n - 1].generation > src->gens[src->ngens - 1].generation);
    free(src->gens);
    src->gens = a;
    src->ngens = n;
    if (grew) wake_readers(src);
    return 0;
}

int ls_source_rescan(ls_source_t *src, char *err, size_t errlen)
{
    pthread_mutex_lock(&src->mu);
    int rc = rescan_locked(src, err, errlen);
    pthread_mutex_unlock(&src->mu);
    return rc;
}

/* The fast path of an fs event (docs/SOURCE.md, "Directory view"): a closed generation is
 * appended without a readdir when it is exactly the next one, so no gap can be read into the
 * view; a name the view does not hold changes nothing; anything else is left to a full rescan. */
int ls_source_add(ls_source_t *src, const char *name, char *err, size_t errlen)
{
    uint32_t epoch;
    uint64_t g;
    if (!name) return 1;
    if (ls_gen_name_parse(name, src->prefix, &epoch, &g) != 0) /* the view holds no other name */
        return strcmp(name, "history") == 0 ? 1 : 0; /* (list_dir, ls__src_hist_refresh) */
    char path[PATH_MAX];
    ls__src_path(src, epoch, g, path, sizeof(path));
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 1; /* gone, or not a file */
    pthread_mutex_lock(&src->mu);
    int rc = ls__src_hist_refresh(src, err, errlen);
    ssize_t have = rc ? -1 : ls__src_find(src, g);
    if (rc || (have >= 0 && src->gens[have].epoch == epoch)) goto out; /* already in the view */
    rc = 1;
    if (have >= 0 || !src->ngens || g != src->gens[src->ngens - 1].generation + 1 ||
        g <= src->removing_upto || epoch < src->gens[src->ngens - 1].epoch ||
        epoch != ls__src_hist_epoch(src, g))
        goto out; /* not simply the next one: the full rescan decides (and reports) */
    ls__src_gen_t *a = realloc(src->gens, (src->ngens + 1) * sizeof(*a));
    if (!a) goto out;
    src->gens = a;
    src->gens[src->ngens++] = (ls__src_gen_t){.generation = g, .epoch = epoch};
    wake_readers(src);
    rc = 0;
out:
    pthread_mutex_unlock(&src->mu);
    return rc;
}

int ls_source_open(const ls_source_options_t *opts, ls_source_t **out, char *err, size_t errlen)
{
    LS_ASSERT(opts && opts->db_dir && out);
    const char *prefix = opts->prefix && *opts->prefix ? opts->prefix : LS_GEN_PREFIX_DEFAULT;
    char probe[LS_GEN_NAME_MAX];
    if (ls_gen_name(probe, sizeof(probe), prefix, 1, 1) != 0)
        return ls_errf(err, errlen, LS_EINVAL,
                       "log prefix \"%s\" is not valid (1 to %d characters, no '-' or '/')", prefix,
                       LS_GEN_PREFIX_MAX);
    ls_source_t *src = calloc(1, sizeof(*src));
    if (!src) return ls_errf(err, errlen, LS_ENOMEM, "out of memory");
    pthread_mutex_init(&src->mu, NULL);
    pthread_mutex_init(&src->remove_mu, NULL);
    snprintf(src->prefix, sizeof(src->prefix), "%s", prefix);
    int n1 = snprintf(src->logs, sizeof(src->logs), "%s/logs", opts->db_dir);
    int n2 = snprintf(src->hist_path, sizeof(src->hist_path), "%s/logs/history", opts->db_dir);
    if (n1 < 0 || n2 < 0 || (size_t) n2 >= sizeof(src->hist_path) - LS_GEN_NAME_MAX) {
        ls_source_free(src);
        return ls_errf(err, errlen, LS_EINVAL, "database directory path too long: %s",
                       opts->db_dir);
    }
    int rc = ls_source_rescan(src, err, errlen);
    if (rc) {
        ls_source_free(src);
        return rc;
    }
    *out = src;
    return 0;
}

void ls_source_free(ls_source_t *src)
{
    if (!src) return;
    LS_CHECK(src->waiters == NULL);
    pthread_mutex_destroy(&src->mu);
    pthread_mutex_destroy(&src->remove_mu);
    free(src->gens);
    free(src->hist);
    free(src);
}

void ls_source_view(ls_source_t *src, ls_source_view_t *out)
{
    pthread_mutex_lock(&src->mu);
    memset(out, 0, sizeof(*out));
    out->count = src->ngens;
    if (src->ngens) {
        out->oldest = src->gens[0].generation;
        out->newest = src->gens[src->ngens - 1].generation;
        out->epoch = src->gens[src->ngens - 1].epoch;
    }
    uint32_t he = src->nhist ? src->hist[src->nhist - 1].epoch : 1;
    out->epoch = LS_MAX(out->epoch, he);
    out->history_len = (uint32_t) src->nhist;
    pthread_mutex_unlock(&src->mu);
}

uint32_t ls_source_epoch_of(ls_source_t *src, uint64_t g)
{
    pthread_mutex_lock(&src->mu);
    ssize_t i = ls__src_find(src, g);
    uint32_t e = i >= 0 ? src->gens[i].epoch : ls__src_hist_epoch(src, g);
    pthread_mutex_unlock(&src->mu);
    return e;
}

bool ls_source_has(ls_source_t *src, uint64_t g, uint32_t *epoch)
{
    pthread_mutex_lock(&src->mu);
    ssize_t i = ls__src_find(src, g);
    if (i >= 0 && epoch) *epoch = src->gens[i].epoch;
    pthread_mutex_unlock(&src->mu);
    return i >= 0;
}

void ls__src_watch(ls_source_t *src, ls__src_waiter_t *w)
{
    pthread_mutex_lock(&src->mu);
    w->next = src->waiters;
    src->waiters = w;
    pthread_mutex_unlock(&src->mu);
}

void ls__src_unwatch(ls_source_t *src, ls__src_waiter_t *w)
{
    pthread_mutex_lock(&src->mu);
    for (ls__src_waiter_t **p = &src->waiters; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    pthread_mutex_unlock(&src->mu);
}
