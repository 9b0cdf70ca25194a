/*
 * `logship load`'s options (cmd_load.c describes them): parsing the command line and the report
 * printed at the end. The workload generator, the ack log and the threads are in cmd_load.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <logship/db.h>

#include "core/core.h"
#include "load.h"

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "logship load: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: logship load DIR [--transactions N] [--records-per-txn K] "
                    "[--key-space K] [--value-size B] [--seed S] [--rate TPS] [--threads T] "
                    "[--compressibility R] [--target-size B] [--ack-log FILE] [--pregenerate] "
                    "[--sync local|remote_durable|remote_applied] [--sync-copies N] "
                    "[--sync-timeout MS]\n");
    return 2;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-') return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    if (!s || !*s) return -1;
    double v = strtod(s, &end);
    if (errno || *end || !(v >= 0)) return -1;
    *out = v;
    return 0;
}

static const char *LEVELS[] = {"local", "remote_durable", "remote_applied"};

static int level_parse(const char *s, ls_db_commit_level_t *out)
{
    for (size_t i = 0; i < LS_ARRAY_SIZE(LEVELS); i++)
        if (!strcmp(s, LEVELS[i])) {
            *out = (ls_db_commit_level_t) i;
            return 0;
        }
    return -1;
}

/* The ranges of the parsed options. */
static int check_opts(const load_opts_t *o)
{
    if (o->threads == 0 || o->threads > 1024) {
        return usage_error("--threads must be 1..1024 (got %" PRIu64 ")", o->threads);
    }
    if (o->records == 0) return usage_error("--records-per-txn must be at least 1");
    if (o->key_space == 0) return usage_error("--key-space must be at least 1");
    if (o->value_size > 16u * 1024 * 1024) return usage_error("--value-size is above 16 MiB");
    if (o->compressibility < 1.0) return usage_error("--compressibility must be >= 1");
    if (o->sync_copies > 8) return usage_error("--sync-copies must be 1..8");
    if (o->sync_timeout_ms > 3600000)
        return usage_error("--sync-timeout must be 0..3600000 ms (0: wait forever)");
    if (o->level == LS_COMMIT_LOCAL && (o->sync_copies || o->sync_timeout_ms))
        return usage_error("--sync-copies and --sync-timeout need --sync remote_durable or "
                           "remote_applied");
    if (o->target_size && (o->target_size < 4096 || o->target_size > (64u << 20)))
        return usage_error("--target-size must be 4096..67108864 bytes (got %" PRIu64 ")",
                           o->target_size);
    return 0;
}

/* Parses argv into o and *dir; returns 0 or the exit code 2 after a message. */
int ls_load_parse_args(int argc, char **argv, load_opts_t *o, const char **dir)
{
    *o = (load_opts_t){.transactions = 10000,
                       .records = 4,
                       .key_space = 100000,
                       .value_size = 200,
                       .seed = 1,
                       .threads = 4,
                       .compressibility = 3.0,
                       .ack_fd = -1};
    *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t *u = !strcmp(a, "--transactions")      ? &o->transactions
                      : !strcmp(a, "--records-per-txn") ? &o->records
                      : !strcmp(a, "--key-space")       ? &o->key_space
                      : !strcmp(a, "--value-size")      ? &o->value_size
                      : !strcmp(a, "--seed")            ? &o->seed
                      : !strcmp(a, "--threads")         ? &o->threads
                      : !strcmp(a, "--target-size")     ? &o->target_size
                      : !strcmp(a, "--sync-copies")     ? &o->sync_copies
                      : !strcmp(a, "--sync-timeout")    ? &o->sync_timeout_ms
                                                        : NULL;
        double *d = !strcmp(a, "--rate")              ? &o->rate
                    : !strcmp(a, "--compressibility") ? &o->compressibility
                                                      : NULL;
        if (!strcmp(a, "--pregenerate")) {
            o->pregenerate = true;
        } else if (!strcmp(a, "--ack-log")) {
            if (!v) return usage_error("%s needs a value", a);
            o->ack_log = v;
            i++;
        } else if (!strcmp(a, "--sync")) {
            if (!v) return usage_error("%s needs a value", a);
            if (level_parse(v, &o->level))
                return usage_error("--sync: '%s' is not a commit level (local, remote_durable, "
                                   "remote_applied)",
                                   v);
            i++;
        } else if (u || d) {
            if (!v) return usage_error("%s needs a value", a);
            if (u ? parse_u64(v, u) : parse_double(v, d)) {
                return usage_error("%s: '%s' is not a valid number", a, v);
            }
            i++;
        } else if (a[0] == '-') {
            return usage_error("unknown option '%s'", a);
        } else if (*dir) {
            return usage_error("unexpected argument '%s' (DIR given already)", a);
        } else {
            *dir = a;
        }
    }
    if (!*dir) return usage_error("missing DIR");
    return check_opts(o);
}

void ls_load_report(const load_opts_t *o, const ls_db_stats_t *s, uint64_t records, uint64_t bytes,
                    double secs, double closed_secs)
{
    printf("transactions:       %" PRIu64 "\n", s->commits);
    printf("records:            %" PRIu64 " (%" PRIu64 " per transaction)\n", records, o->records);
    printf("key+value bytes:    %" PRIu64 "\n", bytes);
    printf("log bytes:          %" PRIu64 " (records incl. COMMIT, without headers/trailers)\n",
           records * LS_REC_HEADER_SIZE + s->commits * LS_REC_HEADER_SIZE + bytes);
    printf("generations closed: %" PRIu64 " (last closed %" PRIu64 "; %" PRIu64
           " rolls into a prepared log)\n",
           s->generations_closed, s->last_closed, s->prepared_rolls);
    printf("elapsed:            %.3f s\n", secs);
    printf("until closed:       %.3f s (first commit to the close's return%s)\n", closed_secs,
           o->pregenerate ? "; records drawn before" : "; records drawn meanwhile");
    printf("commits/s:          %.0f\n", secs > 0 ? (double) s->commits / secs : 0.0);
    printf("fsync batches:      %" PRIu64 " (%.2f commits per batch; %" PRIu64
           " written by a lone committer itself)\n",
           s->batches, s->batches ? (double) s->commits / (double) s->batches : 0.0,
           s->led_batches);
    if (o->level == LS_COMMIT_LOCAL) return;
    static const char *states[] = {"off", "sync", "degraded"};
    printf("sync:               %s, %" PRIu64 " cop%s, timeout %" PRIu64 " ms%s: %" PRIu64
           " batches waited, %" PRIu64 " timed out, %u switches, %s at the end\n",
           LEVELS[o->level], o->sync_copies ? o->sync_copies : 1, o->sync_copies > 1 ? "ies" : "y",
           o->sync_timeout_ms, o->sync_timeout_ms ? "" : " (forever)", s->sync_waits,
           s->sync_timeouts, s->sync_switches, s->sync_state < 3 ? states[s->sync_state] : "?");
}
