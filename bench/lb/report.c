/*
 * Results: kept in order of measurement, printed as one table (median, min–max, runs, the
 * baseline, the ratio to it, the target and by how much it is missed), written to results.json
 * (an array, one object per measurement) and drawn by gnuplot into chart.png (latency per
 * generation over time in the steady run; throughput per configuration).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "lb.h"

#define MAXRES  512
#define MAXSKIP 16

static lb_result_t res[MAXRES];
static int nres;
static char skips[MAXSKIP][256];
static int nskips;
static char notes[MAXSKIP][256];
static int nnotes;

lb_result_t *lb_result_add(const char *name, const char *unit, const double *v, int runs)
{
    lb_result_t *r = lb_result_find(name);
    if (r) { /* a later round of the same measurement: its runs join the earlier ones */
        for (int i = 0; i < runs && r->runs < LB_MAXRUNS; i++)
            r->v[r->runs++] = v[i];
        return r;
    }
    if (nres == MAXRES) { /* said, never silent: 128 once dropped block mode's rows */
        fprintf(stderr, "logship-bench: more than %d figures: '%s' is not reported\n", MAXRES,
                name);
        return NULL;
    }
    r = &res[nres++];
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    snprintf(r->unit, sizeof(r->unit), "%s", unit);
    r->runs = runs < LB_MAXRUNS ? runs : LB_MAXRUNS;
    memcpy(r->v, v, (size_t) r->runs * sizeof(double));
    return r;
}

int lb_result_count(void)
{
    return nres;
}

const lb_result_t *lb_result_at(int i)
{
    return &res[i];
}

lb_result_t *lb_result_find(const char *name)
{
    for (int i = 0; i < nres; i++)
        if (!strcmp(res[i].name, name)) return &res[i];
    return NULL;
}

void lb_result_cmp(lb_result_t *r, const char *baseline, lb_target_kind_t kind, double target,
                   const char *note)
{
    if (!r) return;
    snprintf(r->baseline, sizeof(r->baseline), "%s", baseline ? baseline : "");
    r->kind = kind;
    r->target = target;
    snprintf(r->note, sizeof(r->note), "%s", note ? note : "");
}

void lb_skip(const char *what, const char *why)
{
    char line[256];
    snprintf(line, sizeof(line), "%s: %s", what, why);
    for (int i = 0; i < nskips; i++)
        if (!strcmp(skips[i], line)) return;
    printf("skipped: %s: %s\n", what, why);
    fflush(stdout);
    if (nskips < MAXSKIP) snprintf(skips[nskips++], sizeof(skips[0]), "%s: %s", what, why);
}

void lb_note(const char *fmt, ...)
{
    char line[256];
    LB_FORMAT(line, fmt);
    for (int i = 0; i < nnotes; i++)
        if (!strcmp(notes[i], line)) return;
    if (nnotes < MAXSKIP) snprintf(notes[nnotes++], sizeof(notes[0]), "%s", line);
}

static double med(const lb_result_t *r)
{
    return lb_median(r->v, (size_t) r->runs);
}

/* The ratio to the baseline (NAN without one), and the verdict text; returns 1 met, 0 missed,
 * -1 no target. */
static int verdict(const lb_result_t *r, double *ratio, char *out, size_t outlen)
{
    const lb_result_t *b = r->baseline[0] ? lb_result_find(r->baseline) : NULL;
    double v = med(r);
    *ratio = b && med(b) > 0 ? v / med(b) : NAN;
    out[0] = 0;
    if (r->kind == LB_T_NONE) return -1;
    double x = r->kind == LB_T_ABS_MAX ? v : *ratio;
    if (isnan(x)) {
        snprintf(out, outlen, "%s: not measured", r->note);
        return -1;
    }
    bool met = r->kind == LB_T_MIN ? x >= r->target : x <= r->target;
    double by = r->kind == LB_T_MIN ? (1 - x / r->target) * 100 : (x / r->target - 1) * 100;
    if (met)
        snprintf(out, outlen, "met (%s)", r->note);
    else
        snprintf(out, outlen, "MISSED by %.0f%% (%s)", by, r->note);
    return met;
}

static void print_table(void)
{
    char v[256];
    double ratio;
    printf("\n%-52s %10s %21s %-6s %3s  %-30s %7s  %s\n", "measurement", "median", "min - max",
           "unit", "n", "baseline", "ratio", "target");
    for (int i = 0; i < 170; i++)
        putchar('-');
    putchar('\n');
    for (int i = 0; i < nres; i++) {
        const lb_result_t *r = &res[i];
        verdict(r, &ratio, v, sizeof(v));
        char rs[32] = "";
        if (!isnan(ratio)) snprintf(rs, sizeof(rs), "%.3gx", ratio);
        char mm[48];
        snprintf(mm, sizeof(mm), "%.4g - %.4g", lb_min(r->v, (size_t) r->runs),
                 lb_max(r->v, (size_t) r->runs));
        printf("%-52.52s %10.4g %21s %-6s %3d  %-30.30s %7s  %s\n", r->name, med(r), mm, r->unit,
               r->runs, r->baseline, rs, v);
    }
    for (int i = 0; i < nskips; i++)
        printf("skipped: %s\n", skips[i]);
    for (int i = 0; i < nnotes; i++)
        printf("note: %s\n", notes[i]);
}

static int write_json(const char *out)
{
    char path[LB_PATH + 32], v[256];
    double ratio;
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < nres; i++) {
        const lb_result_t *r = &res[i];
        int met = verdict(r, &ratio, v, sizeof(v));
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", r->name);
        cJSON_AddNumberToObject(o, "value", med(r));
        cJSON_AddStringToObject(o, "unit", r->unit);
        const lb_result_t *b = r->baseline[0] ? lb_result_find(r->baseline) : NULL;
        if (r->baseline[0])
            cJSON_AddStringToObject(o, "baseline", r->baseline);
        else
            cJSON_AddNullToObject(o, "baseline");
        if (b) cJSON_AddNumberToObject(o, "baseline_value", med(b));
        if (isnan(ratio))
            cJSON_AddNullToObject(o, "ratio");
        else
            cJSON_AddNumberToObject(o, "ratio", ratio);
        cJSON_AddNumberToObject(o, "min", lb_min(r->v, (size_t) r->runs));
        cJSON_AddNumberToObject(o, "max", lb_max(r->v, (size_t) r->runs));
        cJSON_AddNumberToObject(o, "runs", r->runs);
        cJSON_AddItemToObject(o, "values", cJSON_CreateDoubleArray(r->v, r->runs));
        if (met >= 0) {
            cJSON_AddStringToObject(o, "target", r->note);
            cJSON_AddBoolToObject(o, "target_met", met == 1);
        }
        cJSON_AddItemToArray(arr, o);
    }
    for (int i = 0; i < nskips; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", skips[i]);
        cJSON_AddNullToObject(o, "value");
        cJSON_AddStringToObject(o, "skipped", skips[i]);
        cJSON_AddItemToArray(arr, o);
    }
    char *s = cJSON_Print(arr);
    cJSON_Delete(arr);
    snprintf(path, sizeof(path), "%s/results.json", out);
    FILE *f = fopen(path, "w");
    if (!f || !s) {
        if (f) fclose(f);
        free(s);
        return -1;
    }
    fprintf(f, "%s\n", s);
    free(s);
    return fclose(f);
}

static int write_chart(const char *out, const lb_times_t *t, const char *title)
{
    char path[LB_PATH + 32];
    snprintf(path, sizeof(path), "%s/latency.dat", out);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "# seconds_since_first_close closed_to_durable_ms closed_to_replayed_ms gen\n");
    uint64_t first = 0;
    for (uint64_t g = 1; t && g <= t->ngen; g++) {
        if (!t->closed_ns[g] || !t->durable_ns[g] || !t->replayed_ns[g]) continue;
        if (!first) first = t->closed_ns[g];
        fprintf(f, "%.4f %.3f %.3f %lu\n", (double) (t->closed_ns[g] - first) / 1e9,
                ((double) t->durable_ns[g] - (double) t->closed_ns[g]) / 1e6,
                ((double) t->replayed_ns[g] - (double) t->closed_ns[g]) / 1e6, (unsigned long) g);
    }
    if (!first) fprintf(f, "0 0 0 0\n"); /* no steady run: an empty panel, not a gnuplot error */
    fclose(f);
    snprintf(path, sizeof(path), "%s/throughput.dat", out);
    if (!(f = fopen(path, "w"))) return -1;
    fprintf(f, "# index \"label\" median min max (MB/s)\n");
    for (int i = 0, k = 0; i < nres; i++) {
        const lb_result_t *r = &res[i];
        if (strcmp(r->unit, "MB/s") != 0 || strstr(r->name, "(vs ")) continue;
        fprintf(f, "%d \"%s\" %.2f %.2f %.2f\n", k++, r->name, med(r),
                lb_min(r->v, (size_t) r->runs), lb_max(r->v, (size_t) r->runs));
    }
    fclose(f);
    if (lb_sh("command -v gnuplot >/dev/null 2>&1") != 0) {
        lb_skip("chart", "gnuplot not installed (tools/deps.sh bench installs gnuplot-nox)");
        return 0;
    }
    snprintf(path, sizeof(path), "%s/chart.gp", out);
    if (!(f = fopen(path, "w"))) return -1;
    fprintf(f,
            "set terminal pngcairo size 1600,820 noenhanced font ',9'\n"
            "set output '%s/chart.png'\nset multiplot layout 1,2 title '%s'\n"
            "set title 'latency per generation, steady rate'\nset xlabel 'seconds'\n"
            "set ylabel 'ms after close'\nset key top left\nset grid\n"
            "plot '%s/latency.dat' using 1:2 with linespoints pt 7 ps 0.5 title 'closed -> "
            "durable', '' using 1:3 with linespoints pt 7 ps 0.5 title 'closed -> replayed'\n"
            "set title 'throughput (median, bars: min-max)'\nset xlabel ''\nset ylabel 'MB/s'\n"
            "set style fill solid 0.5\nset boxwidth 0.7\nset xtics rotate by 35 right\n"
            "set bmargin 19\nset lmargin 18\nset key off\nset yrange [0:*]\n"
            "plot '%s/throughput.dat' using 1:3:xtic(2) with boxes, '' using 1:3:4:5 with "
            "yerrorbars pt 0 lc rgb 'black'\nunset multiplot\n",
            out, title, out, out);
    fclose(f);
    if (lb_sh("gnuplot '%s' >'%s/gnuplot.log' 2>&1", path, out) != 0) {
        lb_skip("chart", "gnuplot failed (see gnuplot.log beside results.json)");
        return 0;
    }
    printf("chart: %s/chart.png\n", out);
    return 0;
}

int lb_report(const char *out, const lb_times_t *steady, const char *title)
{
    int rc = write_chart(out, steady, title);
    print_table();
    if (write_json(out) == 0)
        printf("results: %s/results.json\n", out);
    else
        rc = -1;
    return rc;
}
