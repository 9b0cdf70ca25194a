/*
 * `--compare OLD.json` (`make bench COMPARE=OLD.json`): each figure of this run against the same
 * figure (by name) of an earlier results.json: old and new medians, the change in percent, and
 * whether it is better or worse (higher is better for rates, lower for times and sizes), with a
 * mark when the new median lies inside the old run's min-max (a change this VM's noise alone can
 * make: reference/machine-limits.md). Ratios to baselines are compared too, since they are what
 * the targets are about and the baselines were measured in the same run.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "lb.h"

/* +1 when a higher value is better (rates, and "x rate": a rate's ratio), -1 when lower is
 * (times, sizes). A ratio to a baseline reads like its figure. */
static int direction(const char *unit)
{
    return strstr(unit, "/s") || !strcmp(unit, "x rate") ? 1 : -1;
}

static double num(const cJSON *o, const char *field)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const cJSON *find_old(const cJSON *arr, const char *name)
{
    const cJSON *o;
    cJSON_ArrayForEach(o, arr)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name)) return o;
    }
    return NULL;
}

static void line(const char *name, const char *unit, int dir, double old, double nw, double omin,
                 double omax)
{
    char change[48] = "";
    if (old != 0 && !isnan(old)) {
        double pct = (nw - old) / fabs(old) * 100;
        const char *verdict = fabs(pct) < 0.5 ? "same" : pct * dir > 0 ? "better" : "worse";
        bool noise = !isnan(omin) && nw >= omin && nw <= omax;
        snprintf(change, sizeof(change), "%+7.1f%% %s%s", pct, verdict,
                 noise ? " (inside old min-max)" : "");
    }
    printf("%-52.52s %-6s %10.4g -> %-10.4g %s\n", name, unit, old, nw, change);
}

char *lb_compare_load(const char *old_path)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (ls_read_file(old_path, 64u << 20, &buf, &len) != 0) {
        fprintf(stderr, "logship-bench: cannot read %s\n", old_path);
        return NULL;
    }
    char *s = realloc(buf, len + 1);
    if (!s) {
        free(buf);
        return NULL;
    }
    s[len] = 0;
    cJSON *arr = cJSON_Parse(s);
    bool ok = cJSON_IsArray(arr);
    cJSON_Delete(arr);
    if (!ok) {
        fprintf(stderr, "logship-bench: %s is not a results.json (an array)\n", old_path);
        free(s);
        return NULL;
    }
    return s;
}

int lb_compare(const char *old_path, const char *old_json)
{
    cJSON *arr = cJSON_Parse(old_json);
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        return -1;
    }
    printf("\n== compared with %s (old median -> new median)\n", old_path);
    for (int i = 0; i < lb_result_count(); i++) {
        const lb_result_t *r = lb_result_at(i);
        double nw = lb_median(r->v, (size_t) r->runs);
        const cJSON *o = find_old(arr, r->name);
        if (!o || isnan(num(o, "value"))) {
            printf("%-52.52s %-6s %10s -> %-10.4g new figure\n", r->name, r->unit, "-", nw);
            continue;
        }
        line(r->name, r->unit, direction(r->unit), num(o, "value"), nw, num(o, "min"),
             num(o, "max"));
        const lb_result_t *b = r->baseline[0] ? lb_result_find(r->baseline) : NULL;
        double oratio = num(o, "ratio");
        if (b && !isnan(oratio)) {
            double bm = lb_median(b->v, (size_t) b->runs);
            char label[128];
            snprintf(label, sizeof(label), "  ratio to %s", r->baseline);
            if (bm != 0) line(label, "x", direction(r->unit), oratio, nw / bm, NAN, NAN);
        }
    }
    const cJSON *o;
    cJSON_ArrayForEach(o, arr)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "name");
        if (cJSON_IsString(n) && !isnan(num(o, "value")) && !lb_result_find(n->valuestring))
            printf("%-52.52s only in the old run (%.4g)\n", n->valuestring, num(o, "value"));
    }
    cJSON_Delete(arr);
    return 0;
}
