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
enum { BOTH = 3, ACTIVE = 1, PASSIVE = 2 };

#define F(field) offsetof(ls_status_copy_t, field)

/* One metric family per copy figure. */
static const struct {
    const char *name, *type, *help;
    kind_t kind;
    size_t off; /* of the figure in ls_status_copy_t */
    int sides;  /* the roles that have it */
} families[] = {
    {"logship_last_generated", "gauge", "newest closed generation on the active", U64,
     F(last_generated.gen), BOTH},
    {"logship_last_generated_timestamp_seconds", "gauge",
     "close time of the newest closed generation, UTC", NS, F(last_generated.time_ns), BOTH},
    {"logship_last_copied", "gauge", "last generation durable on the passive", U64,
     F(last_copied.gen), BOTH},
    {"logship_last_copied_timestamp_seconds", "gauge",
     "when the last generation became durable on the passive, UTC", NS, F(last_copied.time_ns),
     BOTH},
    {"logship_last_inspected", "gauge", "last generation inspected on the passive", U64,
     F(last_inspected.gen), BOTH},
    {"logship_last_inspected_timestamp_seconds", "gauge", "when it was inspected, UTC", NS,
     F(last_inspected.time_ns), BOTH},
    {"logship_last_replayed", "gauge", "last generation replayed into the copy store", U64,
     F(last_replayed.gen), BOTH},
    {"logship_last_replayed_timestamp_seconds", "gauge", "when it was replayed, UTC", NS,
     F(last_replayed.time_ns), BOTH},
    {"logship_last_replayed_synced", "gauge",
     "last generation replayed before the copy store's last sync", U64, F(last_replayed_synced.gen),
     BOTH},
    {"logship_copy_queue", "gauge", "generations closed on the active, not yet durable", U64,
     F(copy_queue), BOTH},
    {"logship_copy_queue_bytes", "gauge", "bytes of the generations in the copy queue", U64,
     F(copy_queue_bytes), BOTH},
    {"logship_replay_queue", "gauge", "generations durable on the passive, not yet replayed", U64,
     F(replay_queue), BOTH},
    {"logship_replay_queue_bytes", "gauge", "bytes of the generations in the replay queue", U64,
     F(replay_queue_bytes), BOTH},
    {"logship_copy_lag_seconds", "gauge", "age of the oldest generation not yet durable", NS,
     F(copy_lag_ns), BOTH},
    {"logship_replay_lag_seconds", "gauge", "age of the oldest generation not yet replayed", NS,
     F(replay_lag_ns), BOTH},
    {"logship_throughput_bytes_per_second", "gauge",
     "bytes made durable on the passive per second over the last minute", DBL, F(throughput_bps),
     BOTH},
    {"logship_rtt_seconds", "gauge", "smoothed heartbeat round trip", NS, F(rtt_ns), BOTH},
    {"logship_ask_agains_total", "counter",
     "generations asked for again (kept with the copy across restarts)", U64, F(kept.ask_agains),
     BOTH},
    {"logship_inspection_failures_total", "counter",
     "ask-agains caused by a failed inspection (kept with the copy across restarts)", U64,
     F(kept.inspection_failures), BOTH},
    {"logship_sent_generations_total", "counter", "generations sent in full since the start", U64,
     F(sent_generations), ACTIVE},
    {"logship_sent_bytes_total", "counter", "generation bytes sent since the start", U64,
     F(sent_bytes), ACTIVE},
    {"logship_resent_bytes_total", "counter", "generation bytes sent again since the start", U64,
     F(resent_bytes), ACTIVE},
    {"logship_network_switches_total", "counter",
     "times the copy changed replication network since the start", U64, F(network_switches),
     ACTIVE},
    {"logship_removed_generations_total", "counter",
     "generations removed from the active's logs since the start", U64, F(removed_generations),
     ACTIVE},
    {"logship_applied_generations_total", "counter",
     "generations ever applied to the copy store (kept in its meta record)", U64,
     F(applied_generations), PASSIVE},
    {"logship_replay_transactions_total", "counter",
     "copy store transactions committed by replay since the start", U64, F(replay_transactions),
     PASSIVE},
    {"logship_clock_offset_seconds", "gauge", "the source's clock minus ours, from heartbeats",
     I64_NS, F(clock_offset_ns), PASSIVE},
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

static int side(const ls_status_copy_t *c)
{
    return c->role == LS_STATUS_ACTIVE ? ACTIVE : PASSIVE;
}

/* The families with a label of their own: state, networks, seed. */
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
    header(b, "logship_seed_received_bytes", "gauge", "snapshot bytes the last seed received");
    for (size_t i = 0; i < n->ncopies; i++)
        if (n->copies[i].seed.present) {
            put(b, "logship_seed_received_bytes");
            put_labels(b, &n->copies[i], NULL);
            put(b, " %" PRIu64 "\n", n->copies[i].seed.bytes_done);
        }
    header(b, "logship_seed_size_bytes", "gauge", "snapshot bytes of the last seed in all");
    for (size_t i = 0; i < n->ncopies; i++)
        if (n->copies[i].seed.present) {
            put(b, "logship_seed_size_bytes");
            put_labels(b, &n->copies[i], NULL);
            put(b, " %" PRIu64 "\n", n->copies[i].seed.bytes_total);
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
    char *dbs = ls__status_databases_prom(n);
    if (dbs) put(&b, "%s", dbs);
    b.oom = b.oom || !dbs;
    free(dbs);
    for (size_t f = 0; f < LS_ARRAY_SIZE(families); f++) {
        header(&b, families[f].name, families[f].type, families[f].help);
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
