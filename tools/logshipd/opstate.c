/* An operator's suspension of a copy, kept in a small JSON file written durably, so that it
 * survives a restart: <db>/copy-<target>.state on the active, <copy>.state beside a passive copy
 * (beside, not inside: a seed replaces the copy directory). Also the per-minute rate and the
 * acknowledged-position helpers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"

int ld_opstate_load(const char *path, ld_opstate_t *out)
{
    memset(out, 0, sizeof(*out));
    uint8_t *buf;
    size_t len;
    int rc = ls_read_file(path, 64 * 1024, &buf, &len);
    if (rc == LS_ENOENT) return 0;
    if (rc) return rc;
    cJSON *j = cJSON_ParseWithLength((const char *) buf, len);
    free(buf);
    if (!j) {
        LS_LOGE("opstate", "%s: not JSON: ignoring it (the copy is not suspended)", path);
        return LS_ECORRUPT;
    }
    out->suspended = cJSON_IsTrue(cJSON_GetObjectItem(j, "suspended"));
    out->replay_suspended = cJSON_IsTrue(cJSON_GetObjectItem(j, "replay_suspended"));
    const cJSON *c = cJSON_GetObjectItem(j, "comment");
    if (cJSON_IsString(c)) snprintf(out->comment, sizeof(out->comment), "%s", c->valuestring);
    const cJSON *t = cJSON_GetObjectItem(j, "since_ns");
    if (cJSON_IsNumber(t)) out->since_ns = (uint64_t) t->valuedouble;
    cJSON_Delete(j);
    return 0;
}

int ld_opstate_save(const char *path, const ld_opstate_t *st)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "suspended", st->suspended);
    cJSON_AddBoolToObject(j, "replay_suspended", st->replay_suspended);
    cJSON_AddStringToObject(j, "comment", st->comment);
    cJSON_AddNumberToObject(j, "since_ns", (double) st->since_ns);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!text) return LS_ENOMEM;
    int rc = ls_write_file_durable(path, text, strlen(text));
    free(text);
    if (rc) LS_LOGE("opstate", "cannot save %s: %s", path, ls_strerror(rc));
    return rc;
}

void ld_pos_advance(ld_pos_t *pos, uint64_t gen, uint64_t lsn)
{
    if (gen < pos->gen) return;
    pos->gen = gen;
    pos->lsn = lsn;
    pos->when_ns = ls_now_ns();
}

static void rate_advance(ld_rate_t *r, uint64_t now_s)
{
    if (now_s - r->second >= 60) {
        memset(r->bucket, 0, sizeof(r->bucket));
    } else {
        for (uint64_t s = r->second + 1; s <= now_s; s++)
            r->bucket[s % 60] = 0;
    }
    r->second = now_s;
}

void ld_rate_add(ld_rate_t *r, uint64_t bytes)
{
    uint64_t now_s = ls_mono_ns() / 1000000000ull;
    if (now_s != r->second) rate_advance(r, now_s);
    r->bucket[now_s % 60] += bytes;
}

double ld_rate_per_s(ld_rate_t *r)
{
    uint64_t now_s = ls_mono_ns() / 1000000000ull;
    if (now_s != r->second) rate_advance(r, now_s);
    uint64_t sum = 0;
    for (int i = 0; i < 60; i++)
        sum += r->bucket[i];
    return (double) sum / 60.0;
}
