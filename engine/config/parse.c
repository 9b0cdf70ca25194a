/* Value parsers for configuration and command lines: sizes, durations, addresses, names. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "core/core.h"

/* Parses a non-negative integer prefix; *end points past it. */
static int parse_u64(const char *s, uint64_t *out, const char **end)
{
    if (!isdigit((unsigned char) *s)) return LS_EINVAL;
    errno = 0;
    char *e;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno) return LS_EINVAL;
    *out = v;
    *end = e;
    return 0;
}

static int scale(uint64_t v, uint64_t mul, uint64_t *out)
{
    if (mul && v > UINT64_MAX / mul) return LS_EINVAL;
    *out = v * mul;
    return 0;
}

typedef struct {
    const char *suffix; /* after the number, spaces allowed between */
    uint64_t mul;       /* what one unit is worth */
} unit_t;

/* A non-negative integer followed by one of units (exactly), scaled without overflow. */
static int parse_with_units(const char *s, const unit_t *units, size_t n, uint64_t *out)
{
    uint64_t v;
    const char *end;
    if (parse_u64(s, &v, &end)) return LS_EINVAL;
    while (*end == ' ')
        end++;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(end, units[i].suffix)) return scale(v, units[i].mul, out);
    return LS_EINVAL;
}

int ls_parse_size(const char *s, uint64_t *out)
{
    static const unit_t units[] = {{"", 1},         {"B", 1},          {"K", 1024},
                                   {"KiB", 1024},   {"M", 1u << 20},   {"MiB", 1u << 20},
                                   {"G", 1u << 30}, {"GiB", 1u << 30}, {"KB", 1000},
                                   {"MB", 1000000}, {"GB", 1000000000}};
    return parse_with_units(s, units, LS_ARRAY_SIZE(units), out);
}

int ls_parse_duration_ms(const char *s, uint64_t *out)
{
    static const unit_t units[] = {{"", 1000},   {"ms", 1},      {"s", 1000},
                                   {"m", 60000}, {"min", 60000}, {"h", 3600000}};
    return parse_with_units(s, units, LS_ARRAY_SIZE(units), out);
}

int ls_parse_addr(const char *s, ls_cfg_addr_t *out)
{
    const char *colon;
    const char *host = s;
    size_t hlen;
    if (*s == '[') { /* [v6]:port */
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') return LS_EINVAL;
        host = s + 1;
        hlen = (size_t) (close - host);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return LS_EINVAL;
        hlen = (size_t) (colon - s);
    }
    if (hlen == 0 || hlen >= sizeof(out->host)) return LS_EINVAL;
    uint64_t port;
    const char *end;
    if (parse_u64(colon + 1, &port, &end) || *end || port > 65535) return LS_EINVAL;
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    for (size_t i = 0; i < hlen; i++)
        if (isspace((unsigned char) out->host[i])) return LS_EINVAL;
    out->port = (uint16_t) port;
    return 0;
}
