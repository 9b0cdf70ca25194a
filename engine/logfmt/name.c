/* logfmt file names: "<prefix>-<epoch 8 hex>-<generation 16 hex>.log". */
#include <stdio.h>

#include "core/core.h"
#include "logfmt/internal.h"

static bool prefix_ok(const char *prefix)
{
    size_t n = strlen(prefix);
    return n >= 1 && n <= LS_GEN_PREFIX_MAX && !strchr(prefix, '-') && !strchr(prefix, '/');
}

int ls_gen_name(char *out, size_t outlen, const char *prefix, uint32_t epoch, uint64_t generation)
{
    if (!prefix_ok(prefix)) return LS_EINVAL;
    int n = snprintf(out, outlen, "%s-%08x-%016llx.log", prefix, epoch,
                     (unsigned long long) generation);
    if (n < 0 || (size_t) n >= outlen) return LS_EINVAL;
    return 0;
}

/* Parses exactly n lowercase hex digits at s. */
static bool hex_exact(const char *s, int n, uint64_t *v)
{
    uint64_t x = 0;
    for (int i = 0; i < n; i++) {
        char c = s[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else
            return false;
        x = (x << 4) | (uint64_t) d;
    }
    *v = x;
    return true;
}

int ls_gen_name_parse(const char *name, const char *prefix, uint32_t *epoch, uint64_t *generation)
{
    if (!prefix_ok(prefix)) return LS_EINVAL;
    size_t p = strlen(prefix);
    if (strlen(name) != p + 1 + 8 + 1 + 16 + 4) return LS_EINVAL;
    if (memcmp(name, prefix, p) != 0 || name[p] != '-' || name[p + 9] != '-') return LS_EINVAL;
    if (strcmp(name + p + 26, ".log") != 0) return LS_EINVAL;
    uint64_t e, g;
    if (!hex_exact(name + p + 1, 8, &e) || !hex_exact(name + p + 10, 16, &g)) return LS_EINVAL;
    if (epoch) *epoch = (uint32_t) e;
    if (generation) *generation = g;
    return 0;
}
