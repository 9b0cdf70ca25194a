/* The Prometheus renderer of the status model: the text exposition format 0.0.4, in base units
 * (seconds, bytes), every family with HELP and TYPE, counters ending in _total, so that
 * `promtool check metrics` accepts it. Integers and nanosecond times are written exactly. */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "status/status.h"
#include "status/status_int.h"

typedef struct {
    char *buf;
    size_t len, cap;
    bool oom;
} sbuf_t;

static void put(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf_t *b, const char *fmt, ...)
{
    while (!b->oom) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
        } else if ((size_t) n < b->cap - b->len) {
            b->len += (size_t) n;
            return;
        } else {
            size_t cap = b->cap * 2 + (size_t) n;
            char *nb = realloc(b->buf, cap);
            if (!nb) b->oom = true;
            b->buf = nb ? nb : b->buf;
            b->cap = cap;
        }
    }
}

/* A label value: backslash, double quote and newline escaped. */
static void put_value(sbuf_t *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            put(b, "\\%c", *v);
        else if (*v == '\n')
            put(b, "\\n");
        else
            put(b, "%c", *v);
    }
}

/* {database="...",role="...",source="...",target="..."[,name="value"]...}: extra holds up to two
 * more (name, value) pairs, NULL-terminated. */
static void put_labels(sbuf_t *b, const ls_status_copy_t *c, const char *const *extra)
{
    put(b, "{database=\"");
    put_value(b, c->database);
    put(b, "\",role=\"%s\",source=\"", c->role == LS_STATUS_ACTIVE ? "active" : "passive");
    put_value(b, c->source);
    put(b, "\",target=\"");
    put_value(b, c->target);
    for (; extra && extra[0]; extra += 2) {
        put(b, "\",%s=\"", extra[0]);
        put_value(b, extra[1]);
    }
    put(b, "\"}");
}

/* Nanoseconds as seconds, exactly: 1796403238.892755200. */
static void put_ns_as_s(sbuf_t *b, int64_t ns)
{
    uint64_t mag = ns < 0 ? (uint64_t) 0 - (uint64_t) ns : (uint64_t) ns;
    put(b, "%s%" PRIu64 ".%09" PRIu64, ns < 0 ? "-" : "", mag / 1000000000u, mag % 1000000000u);
}

typedef enum { U64, NS, I64_NS, DBL } kind_t;
enum { ACTIVE = 1, PASSIVE = 2, BOTH = 3, SEED = 4 /* a copy a seed ran on */ };

/* Where a figure is in ls_status_copy_t: a member, a position's generation or time, a kept
 * counter, a seed's figure. */
#define F(field)      offsetof(ls_status_copy_t, field)
#define GEN(pos)      (F(pos) + offsetof(ls_status_pos_t, gen))
#define TIME(pos)     (F(pos) + offsetof(ls_status_pos_t, time_ns))
#define KEPT(counter) (F(kept) + offsetof(ls_status_counters_t, counter))
#define SEED_F(field) (F(seed) + offsetof(ls_status_seed_t, field))

/* One metric family per copy figure. */
static const struct {
    const char *name; /* a counter when it ends in _total (docs/STATUS.md), else a gauge */
    kind_t kind;
    size_t off; /* of the figure in ls_status_copy_t */
    int sides;  /* the copies that have it: roles, or SEED */
    const char *help;
} families[] = {
    {"logship_seed_received_bytes", U64, SEED_F(bytes_done), SEED,
     "snapshot bytes the last seed received"},
    {"logship_seed_size_bytes", U64, SEED_F(bytes_total), SEED,
     "snapshot bytes of the last seed in all"},
    {"logship_last_generated", U64, GEN(last_generated), BOTH,
     "newest closed generation on the active"},
    {"logship_last_generated_timestamp_seconds", NS, TIME(last_generated), BOTH,
     "close time of the newest closed generation, UTC"},
    {"logship_last_copied", U64, GEN(last_copied), BOTH, "last generation durable on the passive"},
    {"logship_last_copied_timestamp_seconds", NS, TIME(last_copied), BOTH,
     "when the last generation became durable on the passive, UTC"},
    {"logship_last_inspected", U64, GEN(last_inspected), BOTH,
     "last generation inspected on the passive"},
    {"logship_last_inspected_timestamp_seconds", NS, TIME(last_inspected), BOTH,
     "when it was inspected, UTC"},
    {"logship_last_replayed", U64, GEN(last_replayed), BOTH,
     "last generation replayed into the copy store"},
    {"logship_last_replayed_timestamp_seconds", NS, TIME(last_replayed), BOTH,
     "when it was replayed, UTC"},
    {"logship_last_replayed_synced", U64, GEN(last_replayed_synced), BOTH,
     "last generation replayed before the copy store's last sync"},
    {"logship_copy_queue", U64, F(copy_queue), BOTH,
     "generations closed on the active, not yet durable"},
    {"logship_copy_queue_bytes", U64, F(copy_queue_bytes), BOTH,
     "bytes of the generations in the copy queue"},
    {"logship_replay_queue", U64, F(replay_queue), BOTH,
     "generations durable on the passive, not yet replayed"},
    {"logship_replay_queue_bytes", U64, F(replay_queue_bytes), BOTH,
     "bytes of the generations in the replay queue"},
    {"logship_copy_lag_seconds", NS, F(copy_lag_ns), BOTH,
     "age of the oldest generation not yet durable"},
    {"logship_replay_lag_seconds", NS, F(replay_lag_ns), BOTH,
     "age of the oldest generation not yet replayed"},
    {"logship_throughput_bytes_per_second", DBL, F(throughput_bps), BOTH,
     "bytes made durable on the passive per second over the last minute"},
    {"logship_rtt_seconds", NS, F(rtt_ns), BOTH,
     "smoothed heartbeat round trip between the two nodes"},
    {"logship_ask_agains_total", U64, KEPT(ask_agains), BOTH,
     "generations asked for again (kept with the copy across restarts)"},
    {"logship_inspection_failures_total", U64, KEPT(inspection_failures), BOTH,
     "ask-agains caused by a failed inspection (kept with the copy across restarts)"},
    {"logship_block_mode", U64, F(mode_block), ACTIVE,
     "1 while the copy is in block mode (the open generation streamed), 0 in file mode"},
    {"logship_mode_switches_total", U64, F(mode_switches), ACTIVE,
     "switches between file and block mode since the start"},
    {"logship_block_bytes_total", U64, F(block_bytes), ACTIVE,
     "bytes of the open generation sent in block mode since the start"},
    {"logship_block_offset_bytes", U64, F(block_offset), BOTH,
     "bytes of the open generation durable in the copy's shadow"},
    {"logship_block_durable_lsn", U64, F(block_durable_lsn), BOTH,
     "the copy holds every record up to this LSN durably"},
    {"logship_block_lag_p99_seconds", NS, F(block_lag_p99_ns), ACTIVE,
     "commit durable on the active to durable on the copy, 99th percentile of the last 1024 "
     "(every batch: logship_block_lag_seconds)"},
    {"logship_sent_generations_total", U64, F(sent_generations), ACTIVE,
     "generations sent in full since the start"},
    {"logship_sent_bytes_total", U64, F(sent_bytes), ACTIVE,
     "generation bytes sent since the start"},
    {"logship_resent_bytes_total", U64, F(resent_bytes), ACTIVE,
     "generation bytes sent again since the start"},
    {"logship_network_switches_total", U64, F(network_switches), ACTIVE,
     "times the copy changed replication network since the start"},
    {"logship_removed_generations_total", U64, F(removed_generations), ACTIVE,
     "generations removed from the active's logs since the start"},
    {"logship_applied_generations_total", U64, F(applied_generations), PASSIVE,
     "generations ever applied to the copy store (kept in its meta record)"},
    {"logship_replay_transactions_total", U64, F(replay_transactions), PASSIVE,
     "copy store transactions committed by replay since the start"},
    {"logship_clock_offset_seconds", I64_NS, F(clock_offset_ns), PASSIVE,
     "the source's clock minus ours, from heartbeats"},
};

static void put_sample(sbuf_t *b, const ls_status_copy_t *c, kind_t kind, size_t off)
{
    const char *p = (const char *) c + off;
    uint64_t u;
    int64_t i;
    double d;
    switch (kind) {
    case U64:
        memcpy(&u, p, sizeof(u));
        put(b, " %" PRIu64 "\n", u);
        break;
    case NS:
        memcpy(&u, p, sizeof(u));
        put(b, " ");
        put_ns_as_s(b, u > INT64_MAX ? INT64_MAX : (int64_t) u);
        put(b, "\n");
        break;
    case I64_NS:
        memcpy(&i, p, sizeof(i));
        put(b, " ");
        put_ns_as_s(b, i);
        put(b, "\n");
        break;
    case DBL:
        memcpy(&d, p, sizeof(d));
        put(b, " %.15g\n", d);
        break;
    }
}

static void header(sbuf_t *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* True when a family's name ends in _total. */
static bool counter(const char *name)
{
    size_t n = strlen(name);
    return n > 6 && !strcmp(name + n - 6, "_total");
}

static int side(const ls_status_copy_t *c)
{
    return (c->role == LS_STATUS_ACTIVE ? ACTIVE : PASSIVE) | (c->seed.present ? SEED : 0);
}

/* The families with a label of their own: state, networks. */
static void labelled(sbuf_t *b, const ls_status_node_t *n)
{
    header(b, "logship_copy_state", "gauge", "the copy's state (1 for the current one)");
    for (size_t i = 0; i < n->ncopies; i++) {
        const char *st = n->copies[i].state ? n->copies[i].state : "";
        put(b, "logship_copy_state");
        put_labels(b, &n->copies[i], (const char *const[]){"state", st, NULL});
        put(b, " 1\n");
    }
    header(b, "logship_network_state", "gauge",
           "each replication network's state (1 for the current one)");
    for (size_t i = 0; i < n->ncopies; i++)
        for (int j = 0; j < n->copies[i].nnets; j++) {
            const ls_status_net_t *net = &n->copies[i].nets[j];
            const char *st = net->state ? net->state : "";
            put(b, "logship_network_state");
            put_labels(b, &n->copies[i],
                       (const char *const[]){"network", net->name, "state", st, NULL});
            put(b, " 1\n");
        }
    header(b, "logship_network_failures_total", "counter",
           "failed connections and probes on each replication network since the start");
    for (size_t i = 0; i < n->ncopies; i++)
        for (int j = 0; j < n->copies[i].nnets; j++) {
            put(b, "logship_network_failures_total");
            put_labels(b, &n->copies[i],
                       (const char *const[]){"network", n->copies[i].nets[j].name, NULL});
            put(b, " %" PRIu64 "\n", n->copies[i].nets[j].failures);
        }
}

/* logship_block_lag_seconds, a histogram of every block-mode lag since the start (the JSON's
 * block_lag_hist, lag.c), cumulative at each power of two of nanoseconds from 2^LAG_LE_MIN
 * (16 µs) to 2^(LS_STATUS_LAG_MAX_LOG2 - 1) (34 s): those are bucket bounds of lag.c, so each
 * count is exact, for values below the bound (a value equal to one counts in the next). */
#define LAG_LE_MIN 14
static void lag_histogram(sbuf_t *b, const ls_status_node_t *n)
{
    header(b, "logship_block_lag_seconds", "histogram",
           "commit durable on the active to durable on the copy, every batch since the start");
    for (size_t i = 0; i < n->ncopies; i++) {
        const ls_status_copy_t *c = &n->copies[i];
        if (c->role != LS_STATUS_ACTIVE) continue;
        uint64_t cum = 0;
        size_t k = 0;
        char le[32];
        for (unsigned e = LAG_LE_MIN; e < LS_STATUS_LAG_MAX_LOG2; e++) {
            for (; k < LS_STATUS_LAG_BUCKETS && ls_status_lag_upper(k) <= (1ull << e); k++)
                cum += c->block_lag_hist[k];
            uint64_t ns = 1ull << e;
            snprintf(le, sizeof(le), "%" PRIu64 ".%09" PRIu64, ns / 1000000000u, ns % 1000000000u);
            put(b, "logship_block_lag_seconds_bucket");
            put_labels(b, c, (const char *const[]){"le", le, NULL});
            put(b, " %" PRIu64 "\n", cum);
        }
        for (; k < LS_STATUS_LAG_BUCKETS; k++)
            cum += c->block_lag_hist[k];
        put(b, "logship_block_lag_seconds_bucket");
        put_labels(b, c, (const char *const[]){"le", "+Inf", NULL});
        put(b, " %" PRIu64 "\n", cum);
        put(b, "logship_block_lag_seconds_sum");
        put_labels(b, c, NULL);
        put(b, " ");
        put_ns_as_s(b, c->block_lag_sum_ns > INT64_MAX ? INT64_MAX : (int64_t) c->block_lag_sum_ns);
        put(b, "\nlogship_block_lag_seconds_count");
        put_labels(b, c, NULL);
        put(b, " %" PRIu64 "\n", cum);
    }
}

char *ls_status_to_prometheus(const ls_status_node_t *n)
{
    sbuf_t b = {malloc(8192), 0, 8192, false};
    if (!b.buf) return NULL;
    header(&b, "logship_start_time_seconds", "gauge",
           "when the daemon started, UTC (counters not kept with a copy restart from 0 then)");
    put(&b, "logship_start_time_seconds{node=\"");
    put_value(&b, n->node);
    put(&b, "\"} ");
    put_ns_as_s(&b, (int64_t) n->start_time_ns);
    put(&b, "\n");
    labelled(&b, n);
    lag_histogram(&b, n);
    char *dbs = ls__status_databases_prom(n);
    if (dbs) put(&b, "%s", dbs);
    b.oom = b.oom || !dbs;
    free(dbs);
    for (size_t f = 0; f < LS_ARRAY_SIZE(families); f++) {
        header(&b, families[f].name, counter(families[f].name) ? "counter" : "gauge",
               families[f].help);
        for (size_t i = 0; i < n->ncopies; i++) {
            const ls_status_copy_t *c = &n->copies[i];
            if (!(families[f].sides & side(c))) continue;
            put(&b, "%s", families[f].name);
            put_labels(&b, c, NULL);
            put_sample(&b, c, families[f].kind, families[f].off);
        }
    }
    if (b.oom) {
        free(b.buf);
        return NULL;
    }
    return b.buf;
}
