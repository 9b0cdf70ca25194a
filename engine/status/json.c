/* The JSON renderer of the status model (docs/STATUS.md has the schema) and exact 64-bit
 * integers in cJSON: cJSON keeps every number as a double, which holds integers exactly only up
 * to 2^53, while a nanosecond time is near 2^61. Integers therefore go out as raw items with
 * their digits, and come back in through ls_status_json_parse(). */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "status/status.h"
#include "status/status_int.h"

#define EXACT_MAX (1ull << 53) /* integers up to this are exact in a double */

cJSON *ls_status_json_add_u64(cJSON *obj, const char *key, uint64_t v)
{
    char digits[24];
    snprintf(digits, sizeof(digits), "%" PRIu64, v);
    return cJSON_AddRawToObject(obj, key, digits);
}

static void add_i64(cJSON *obj, const char *key, int64_t v)
{
    char digits[24];
    snprintf(digits, sizeof(digits), "%" PRId64, v);
    cJSON_AddRawToObject(obj, key, digits);
}

/* How a member is written: each figure in its struct and the JSON type and unit it goes out in. */
typedef enum {
    STR,   /* char array */
    STATE, /* const char * to a static string (NULL: "") */
    U64,   /* uint64_t, an exact integer */
    I64,   /* int64_t, an exact integer */
    BOOL,  /* bool */
    DBL,   /* double */
    SECS,  /* uint64_t nanoseconds, as seconds */
    MS,    /* int64_t nanoseconds (uint64_t below 2^63 alike), as milliseconds */
    POS,   /* ls_status_pos_t: "key" (the generation) and "key_time_ns" */
    ROLE,  /* ls_status_role_t, as "active" or "passive" */
} kind_t;

/* Where a member is: the object (IN_SEED, IN_NET, IN_COPY, the OBJECT bits), and for a copy's
 * member what the copy must have for it (ACTIVE, PASSIVE, NETS: have_networks). */
enum {
    IN_SEED = 1,
    IN_NET = 2,
    IN_COPY = 3,
    OBJECT = 3,
    ACTIVE = 4,
    PASSIVE = 8,
    NETS = 16,
    ACTIVE_ONLY = IN_COPY | ACTIVE,
    ACTIVE_NETS = IN_COPY | ACTIVE | NETS,
    PASSIVE_ONLY = IN_COPY | PASSIVE,
};

/* One member of a JSON object: its key and the figure at off in the struct rendered. */
typedef struct {
    const char *key;
    kind_t kind;
    size_t off;
    int where; /* the object and conditions, above */
} field_t;

/* "key" (the generation) and "key_time_ns". */
static void add_pos(cJSON *o, const char *key, const ls_status_pos_t *pos)
{
    char time_key[64];
    ls_status_json_add_u64(o, key, pos->gen);
    snprintf(time_key, sizeof(time_key), "%s_time_ns", key);
    ls_status_json_add_u64(o, time_key, pos->time_ns);
}

/* The string of a STR, STATE or ROLE member. */
static const char *string_of(kind_t kind, const void *p)
{
    if (kind == STR) return p;
    if (kind == ROLE)
        return *(const ls_status_role_t *) p == LS_STATUS_ACTIVE ? "active" : "passive";
    const char *s = *(const char *const *) p;
    return s ? s : "";
}

/* The number of a DBL, SECS or MS member. */
static double number_of(kind_t kind, const void *p)
{
    if (kind == SECS) return (double) *(const uint64_t *) p / 1e9;
    if (kind == MS) return (double) *(const int64_t *) p / 1e6;
    return *(const double *) p;
}

/* An exact integer: a U64 or I64 member. */
static void add_exact(cJSON *o, const char *key, kind_t kind, const void *p)
{
    if (kind == I64)
        add_i64(o, key, *(const int64_t *) p);
    else
        ls_status_json_add_u64(o, key, *(const uint64_t *) p);
}

static void add_field(cJSON *o, const char *base, const field_t *f)
{
    const void *p = base + f->off;
    switch (f->kind) {
    case STR:
    case STATE:
    case ROLE:
        cJSON_AddStringToObject(o, f->key, string_of(f->kind, p));
        break;
    case U64:
    case I64:
        add_exact(o, f->key, f->kind, p);
        break;
    case POS:
        add_pos(o, f->key, p);
        break;
    case BOOL:
        cJSON_AddBoolToObject(o, f->key, *(const bool *) p);
        break;
    case DBL:
    case SECS:
    case MS:
        cJSON_AddNumberToObject(o, f->key, number_of(f->kind, p));
        break;
    }
}

#define SEED(f) offsetof(ls_status_seed_t, f)
#define NET(f)  offsetof(ls_status_net_t, f)
#define COPY(f) offsetof(ls_status_copy_t, f)

/* Every member of the status document's seed, network and copy objects, in document order (a
 * copy's networks and seed follow its members). */
static const field_t members[] = {
    {"id", U64, SEED(id), IN_SEED},
    {"state", STATE, SEED(state), IN_SEED},
    {"from", STR, SEED(from), IN_SEED},
    {"network", STR, SEED(network), IN_SEED},
    {"bytes_done", U64, SEED(bytes_done), IN_SEED},
    {"bytes_total", U64, SEED(bytes_total), IN_SEED},
    {"percent", DBL, SEED(percent), IN_SEED},
    {"rate_bps", DBL, SEED(rate_bps), IN_SEED},
    {"eta_s", DBL, SEED(eta_s), IN_SEED},
    {"generation", U64, SEED(generation), IN_SEED},
    {"lsn", U64, SEED(lsn), IN_SEED},
    {"manual_resume", BOOL, SEED(manual_resume), IN_SEED},
    {"start_time_ns", U64, SEED(start_time_ns), IN_SEED},
    {"end_time_ns", U64, SEED(end_time_ns), IN_SEED},
    {"error", STR, SEED(error), IN_SEED},
    {"name", STR, NET(name), IN_NET},
    {"remote", STR, NET(remote), IN_NET},
    {"bind", STR, NET(bind), IN_NET},
    {"state", STATE, NET(state), IN_NET},
    {"last_error", STR, NET(last_error), IN_NET},
    {"last_error_time_ns", U64, NET(last_error_time_ns), IN_NET},
    {"left_reason", STR, NET(left_reason), IN_NET},
    {"left_time_ns", U64, NET(left_time_ns), IN_NET},
    {"failures", U64, NET(failures), IN_NET},
    {"settle_s", SECS, NET(settle_ns), IN_NET},
    {"up_s", SECS, NET(up_ns), IN_NET},
    {"database", STR, COPY(database), IN_COPY},
    {"role", ROLE, COPY(role), IN_COPY},
    {"source", STR, COPY(source), IN_COPY},
    {"target", STR, COPY(target), IN_COPY},
    {"state", STATE, COPY(state), IN_COPY},
    {"reason", STR, COPY(reason), IN_COPY},
    {"comment", STR, COPY(comment), IN_COPY},
    {"suspended_since_ns", U64, COPY(suspended_since_ns), IN_COPY},
    {"replay_suspended", BOOL, COPY(replay_suspended), IN_COPY},
    {"network", STR, COPY(network), IN_COPY},
    {"tls", BOOL, COPY(tls), IN_COPY},
    {"last_generated", POS, COPY(last_generated), IN_COPY},
    {"last_copied", POS, COPY(last_copied), IN_COPY},
    {"last_inspected", POS, COPY(last_inspected), IN_COPY},
    {"last_replayed", POS, COPY(last_replayed), IN_COPY},
    {"last_replayed_synced", POS, COPY(last_replayed_synced), IN_COPY},
    {"last_replayed_lsn", U64, COPY(last_replayed_lsn), PASSIVE_ONLY},
    {"copy_queue", U64, COPY(copy_queue), IN_COPY},
    {"copy_queue_bytes", U64, COPY(copy_queue_bytes), IN_COPY},
    {"replay_queue", U64, COPY(replay_queue), IN_COPY},
    {"replay_queue_bytes", U64, COPY(replay_queue_bytes), IN_COPY},
    {"copy_lag_s", SECS, COPY(copy_lag_ns), IN_COPY},
    {"replay_lag_s", SECS, COPY(replay_lag_ns), IN_COPY},
    {"throughput_bps", DBL, COPY(throughput_bps), IN_COPY},
    {"mode", STATE, COPY(mode), ACTIVE_ONLY},
    {"mode_switches", U64, COPY(mode_switches), ACTIVE_ONLY},
    {"mode_reason", STR, COPY(mode_reason), ACTIVE_ONLY},
    {"mode_switch_time_ns", U64, COPY(mode_switch_time_ns), ACTIVE_ONLY},
    {"block_bytes", U64, COPY(block_bytes), ACTIVE_ONLY},
    {"block_generation", U64, COPY(block_generation), IN_COPY},
    {"block_offset", U64, COPY(block_offset), IN_COPY},
    {"block_durable_lsn", U64, COPY(block_durable_lsn), IN_COPY},
    {"block_applied_lsn", U64, COPY(block_applied_lsn), IN_COPY},
    {"block_apply_eager", BOOL, COPY(block_apply_eager), PASSIVE_ONLY},
    {"block_lag_samples", U64, COPY(block_lag_samples), ACTIVE_ONLY},
    {"block_lag_p50_ms", MS, COPY(block_lag_p50_ns), ACTIVE_ONLY},
    {"block_lag_p99_ms", MS, COPY(block_lag_p99_ns), ACTIVE_ONLY},
    {"block_lag_max_ms", MS, COPY(block_lag_max_ns), ACTIVE_ONLY},
    {"ask_agains", U64, COPY(kept.ask_agains), IN_COPY},
    {"inspection_failures", U64, COPY(kept.inspection_failures), IN_COPY},
    {"rtt_ms", MS, COPY(rtt_ns), IN_COPY},
    {"zstd_loop_calls", U64, COPY(zstd_loop_calls), IN_COPY},
    {"sent_generations", U64, COPY(sent_generations), ACTIVE_ONLY},
    {"sent_bytes", U64, COPY(sent_bytes), ACTIVE_ONLY},
    {"rtt_last_ms", MS, COPY(rtt_last_ns), ACTIVE_ONLY},
    {"wire_bytes_sent", U64, COPY(wire_bytes_sent), ACTIVE_ONLY},
    {"frame_bytes_sent", U64, COPY(frame_bytes_sent), ACTIVE_ONLY},
    {"connections", U64, COPY(connections), ACTIVE_ONLY},
    {"removed_generations", U64, COPY(removed_generations), ACTIVE_ONLY},
    {"last_error", STR, COPY(last_error), ACTIVE_ONLY},
    {"network_pinned", STR, COPY(network_pinned), ACTIVE_NETS},
    {"network_switches", U64, COPY(network_switches), ACTIVE_NETS},
    {"last_switch", STR, COPY(last_switch), ACTIVE_NETS},
    {"last_switch_time_ns", U64, COPY(last_switch_time_ns), ACTIVE_NETS},
    {"resent_bytes", U64, COPY(resent_bytes), ACTIVE_NETS},
    {"applied_generations", U64, COPY(applied_generations), PASSIVE_ONLY},
    {"replay_transactions", U64, COPY(replay_transactions), PASSIVE_ONLY},
    {"wire_bytes_received", U64, COPY(wire_bytes_received), PASSIVE_ONLY},
    {"clock_offset_ms", MS, COPY(clock_offset_ns), PASSIVE_ONLY},
    {"clock_offset_ns", I64, COPY(clock_offset_ns), PASSIVE_ONLY},
};

/* Adds the members of object obj (IN_SEED, IN_NET, IN_COPY) of the struct at base to o: those
 * whose conditions are all in have. */
static void add_members(cJSON *o, const void *base, int obj, int have)
{
    for (size_t i = 0; i < LS_ARRAY_SIZE(members); i++) {
        int where = members[i].where;
        if ((where & OBJECT) == obj && (where & ~OBJECT & ~have) == 0)
            add_field(o, base, &members[i]);
    }
}

void ls_status_seed_to_json(const ls_status_seed_t *s, cJSON *o)
{
    add_members(o, s, IN_SEED, 0);
}

cJSON *ls_status_networks_to_json(const ls_status_net_t *nets, int count)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr && i < count; i++) {
        cJSON *o = cJSON_CreateObject();
        add_members(o, &nets[i], IN_NET, 0);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* "block_lag_hist": [[lower_ns, upper_ns, count], ...] for the buckets that are not empty, upper
 * 0 for the last (unbounded); counts since the daemon's start (status.h, lag.c). */
static void lag_hist(cJSON *o, const uint64_t *counts)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < LS_STATUS_LAG_BUCKETS; i++) {
        if (!counts[i]) continue;
        uint64_t up = ls_status_lag_upper(i);
        double v[3] = {(double) ls_status_lag_lower(i), up == UINT64_MAX ? 0 : (double) up,
                       (double) counts[i]};
        cJSON_AddItemToArray(arr, cJSON_CreateDoubleArray(v, 3));
    }
    cJSON_AddItemToObject(o, "block_lag_hist", arr);
}

static cJSON *copy_json(const ls_status_copy_t *c)
{
    bool active = c->role == LS_STATUS_ACTIVE;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    add_members(o, c, IN_COPY, (active ? ACTIVE : PASSIVE) | (c->have_networks ? NETS : 0));
    if (active && c->have_networks)
        cJSON_AddItemToObject(o, "networks", ls_status_networks_to_json(c->nets, c->nnets));
    if (active && c->block_lag_samples) lag_hist(o, c->block_lag_hist);
    if (active || !c->seed.present) return o;
    cJSON_AddNumberToObject(o, "seed_percent", c->seed.percent);
    cJSON *so = cJSON_AddObjectToObject(o, "seed");
    if (!so) return o;
    ls_status_seed_to_json(&c->seed, so); /* and what the seed_status command has not: */
    ls_status_json_add_u64(so, "wire_bytes_received", c->seed.wire_bytes_received);
    ls_status_json_add_u64(so, "zstd_loop_calls", c->seed.zstd_loop_calls);
    return o;
}

int ls_status_to_json(const ls_status_node_t *n, cJSON *obj)
{
    cJSON_AddStringToObject(obj, "node", n->node);
    cJSON_AddBoolToObject(obj, "plaintext", n->plaintext);
    ls_status_json_add_u64(obj, "time_ns", n->time_ns);
    ls_status_json_add_u64(obj, "start_time_ns", n->start_time_ns);
    cJSON *arr = cJSON_AddArrayToObject(obj, "copies");
    if (!arr) return LS_ENOMEM;
    for (size_t i = 0; i < n->ncopies; i++) {
        cJSON *o = copy_json(&n->copies[i]);
        if (!o) return LS_ENOMEM;
        cJSON_AddItemToArray(arr, o);
    }
    return ls__status_databases_json(n, obj);
}

/* ---- reading integers back exactly ---------------------------------------------------------- */
typedef struct {
    const char *p; /* where the scan is in the text */
} scan_t;

/* The next number token in the text (outside strings): *len bytes at the returned pointer, or
 * NULL when there is none. */
static const char *next_number(scan_t *s, size_t *len)
{
    const char *p = s->p;
    while (*p) {
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p[1]) p++;
            if (*p) p++;
        } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
            const char *start = p;
            while (*p && strchr("-+.eE0123456789", *p))
                p++;
            *len = (size_t) (p - start);
            s->p = p;
            return start;
        } else {
            p++;
        }
    }
    s->p = p;
    return NULL;
}

/* True when the token is an integer a double cannot hold exactly. */
static bool needs_raw(const char *tok, size_t len)
{
    size_t i = tok[0] == '-' ? 1 : 0;
    if (len <= i || len - i > 20) return false;
    for (size_t k = i; k < len; k++)
        if (tok[k] < '0' || tok[k] > '9') return false;
    char digits[24];
    memcpy(digits, tok + i, len - i);
    digits[len - i] = '\0';
    return strtoull(digits, NULL, 10) > EXACT_MAX;
}

/* Visits the numbers of the tree in document order, pairing each with its token. */
static bool fix_numbers(cJSON *item, scan_t *s)
{
    for (; item; item = item->next) {
        if (cJSON_IsNumber(item)) {
            size_t len = 0;
            const char *tok = next_number(s, &len);
            if (!tok) return false;
            if (needs_raw(tok, len)) {
                char *raw = malloc(len + 1);
                if (!raw) return false;
                memcpy(raw, tok, len);
                raw[len] = '\0';
                item->type = cJSON_Raw; /* valuedouble stays: the nearest double */
                item->valuestring = raw;
            }
        }
        if (item->child && !fix_numbers(item->child, s)) return false;
    }
    return true;
}

cJSON *ls_status_json_parse(const char *text)
{
    cJSON *j = cJSON_Parse(text);
    scan_t s = {text};
    if (j && !fix_numbers(j, &s)) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

uint64_t ls_status_json_u64(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsRaw(v) && v->valuestring && v->valuestring[0] != '-')
        return strtoull(v->valuestring, NULL, 10);
    /* Below 2^64 only: a larger double (1e300, inf) has no uint64_t (undefined behaviour). */
    if (cJSON_IsNumber(v) && v->valuedouble > 0 && v->valuedouble < 18446744073709551616.0)
        return (uint64_t) v->valuedouble;
    return 0;
}

double ls_status_json_num(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsRaw(v) && v->valuestring) return strtod(v->valuestring, NULL);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}
