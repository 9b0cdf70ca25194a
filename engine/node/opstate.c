/* What is kept of a copy across restarts, both sides, beside the copy (beside, not inside: a
 * seed replaces the copy directory): the operator's suspension, in a small JSON file written
 * durably (<db>/copy-<target>.state on the active, <copy>.state beside a passive copy), and the
 * ask-again counters (<db>/copy-<target>.counters, <copy>.counters; engine/status's format). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/node_int.h"

int ls__node_opstate_parse(const char *name, const char *text, size_t len, ls_status_op_t *out)
{
    memset(out, 0, sizeof(*out));
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        LS_LOGE("opstate", "%s: not a JSON object: ignoring it (the copy is not suspended)", name);
        return LS_ECORRUPT;
    }
    out->suspended = cJSON_IsTrue(cJSON_GetObjectItem(j, "suspended"));
    out->replay_suspended = cJSON_IsTrue(cJSON_GetObjectItem(j, "replay_suspended"));
    const cJSON *c = cJSON_GetObjectItem(j, "comment");
    if (cJSON_IsString(c)) snprintf(out->comment, sizeof(out->comment), "%s", c->valuestring);
    const cJSON *t = cJSON_GetObjectItem(j, "since_ns");
    /* A double outside [0, 2^64) (negative, 1e300, an overflow to inf) has no uint64_t. */
    if (cJSON_IsNumber(t) && t->valuedouble >= 0 && t->valuedouble < 18446744073709551616.0)
        out->since_ns = (uint64_t) t->valuedouble;
    else if (t)
        LS_LOGW("opstate", "%s: field since_ns is not a time in ns since 1970: taken as 0", name);
    cJSON_Delete(j);
    return 0;
}

int ls__node_opstate_load(const char *path, ls_status_op_t *out)
{
    memset(out, 0, sizeof(*out));
    uint8_t *buf;
    size_t len;
    int rc = ls_read_file(path, 64 * 1024, &buf, &len);
    if (rc == LS_ENOENT) return 0;
    if (rc) return rc;
    rc = ls__node_opstate_parse(path, (const char *) buf, len, out);
    free(buf);
    return rc;
}

int ls__node_opstate_save(const char *path, const ls_status_op_t *st)
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

void ls__node_counters_load(const char *path, ls_status_counters_t *out)
{
    int rc = ls_status_counters_load(path, out);
    if (rc) LS_LOGW("copy", "%s: counting from 0: %s", path, ls_strerror(rc));
}

int ls__node_counters_save(const char *path, const ls_status_counters_t *c)
{
    /* Rare (a damaged or missing generation), so written at once: it survives a crash. */
    int rc = ls_status_counters_save(path, c);
    if (rc) LS_LOGW("copy", "cannot keep the ask-again counters in %s: %s", path, ls_strerror(rc));
    return rc;
}
