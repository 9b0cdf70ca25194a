/* The counters kept with a copy: a small JSON file beside its other state files, written durably
 * whenever a counter moves (ASK_AGAIN is rare), so the figures survive a restart. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "status/status.h"

int ls_status_counters_parse(const char *text, size_t len, ls_status_counters_t *out)
{
    memset(out, 0, sizeof(*out));
    if (memchr(text, '\0', len)) return LS_ECORRUPT;
    char *t = malloc(len + 1);
    if (!t) return LS_ENOMEM;
    memcpy(t, text, len);
    t[len] = '\0';
    cJSON *j = ls_status_json_parse(t);
    free(t);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return LS_ECORRUPT;
    }
    out->ask_agains = ls_status_json_u64(j, "ask_agains");
    out->inspection_failures = ls_status_json_u64(j, "inspection_failures");
    cJSON_Delete(j);
    return 0;
}

int ls_status_counters_load(const char *path, ls_status_counters_t *out)
{
    memset(out, 0, sizeof(*out));
    uint8_t *buf;
    size_t len;
    int rc = ls_read_file(path, 4096, &buf, &len);
    if (rc == LS_ENOENT) return 0;
    if (rc) return rc;
    rc = ls_status_counters_parse((const char *) buf, len, out);
    free(buf);
    return rc;
}

int ls_status_counters_save(const char *path, const ls_status_counters_t *c)
{
    char text[128];
    int n = snprintf(text, sizeof(text),
                     "{\"ask_agains\":%" PRIu64 ",\"inspection_failures\":%" PRIu64 "}\n",
                     c->ask_agains, c->inspection_failures);
    return ls_write_file_durable(path, text, (size_t) n);
}

bool ls_status_ask_is_damage(int code)
{
    return code != LS_ENOSPC && code != LS_EGAP;
}

void ls_status_counters_ask(ls_status_counters_t *c, int code)
{
    c->ask_agains++;
    if (ls_status_ask_is_damage(code)) c->inspection_failures++;
}

/* ---- throughput over the last minute -------------------------------------------------------- */
static void rate_advance(ls_status_rate_t *r, uint64_t now_s)
{
    if (now_s < r->second || now_s - r->second >= 60) {
        memset(r->bucket, 0, sizeof(r->bucket));
    } else {
        for (uint64_t s = r->second + 1; s <= now_s; s++)
            r->bucket[s % 60] = 0;
    }
    r->second = now_s;
}

void ls_status_rate_add(ls_status_rate_t *r, uint64_t bytes, uint64_t now)
{
    uint64_t now_s = now / 1000000000ull;
    if (now_s != r->second) rate_advance(r, now_s);
    r->bucket[now_s % 60] += bytes;
}

double ls_status_rate_per_s(ls_status_rate_t *r, uint64_t now)
{
    uint64_t now_s = now / 1000000000ull;
    if (now_s != r->second) rate_advance(r, now_s);
    uint64_t sum = 0;
    for (int i = 0; i < 60; i++)
        sum += r->bucket[i];
    return (double) sum / 60.0;
}
