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

/* When a copy has a member (0: always). */
enum { ALWAYS = 0, ACTIVE = 1, PASSIVE = 2, NETS = 4 /* have_networks */ };

/* One member of a JSON object: its key and the figure at off in the struct rendered. */
typedef struct {
    const char *key;
    kind_t kind;
    size_t off;
    int when; /* what a copy must have for it (ACTIVE, PASSIVE, NETS), or ALWAYS */
} field_t;

static void add_field(cJSON *o, const char *base, const field_t *f)
{
    const void *p = base + f->off;
    char key[64];
    switch (f->kind) {
    case STR:
        cJSON_AddStringToObject(o, f->key, p);
        break;
    case STATE: {
        const char *s = *(const char *const *) p;
        cJSON_AddStringToObject(o, f->key, s ? s : "");
        break;
    }
    case U64:
        ls_status_json_add_u64(o, f->key, *(const uint64_t *) p);
        break;
    case I64:
        add_i64(o, f->key, *(const int64_t *) p);
        break;
    case BOOL:
        cJSON_AddBoolToObject(o, f->key, *(const bool *) p);
        break;
    case DBL:
        cJSON_AddNumberToObject(o, f->key, *(const double *) p);
        break;
    case SECS:
        cJSON_AddNumberToObject(o, f->key, (double) *(const uint64_t *) p / 1e9);
        break;
    case MS:
        cJSON_AddNumberToObject(o, f->key, (double) *(const int64_t *) p / 1e6);
        break;
    case POS:
        ls_status_json_add_u64(o, f->key, ((const ls_status_pos_t *) p)->gen);
        snprintf(key, sizeof(key), "%s_time_ns", f->key);
        ls_status_json_add_u64(o, key, ((const ls_status_pos_t *) p)->time_ns);
        break;
    case ROLE:
        cJSON_AddStringToObject(
            o, f->key, *(const ls_status_role_t *) p == LS_STATUS_ACTIVE ? "active" : "passive");
        break;
    }
}

/* Adds the members of table (n entries) of the struct at base to o, in order: those whose when
 * has no bit outside have. */
static void add_fields(cJSON *o, const void *base, const field_t *table, size_t n, int have)
{
    for (size_t i = 0; i < n; i++)
        if ((table[i].when & ~have) == 0) add_field(o, base, &table[i]);
}

#define ADD_FIELDS(o, base, table, have) add_fields(o, base, table, LS_ARRAY_SIZE(table), have)

#define SEED(f) offsetof(ls_status_seed_t, f)
static const field_t seed_fields[] = {
    {"id", U64, SEED(id), ALWAYS},
    {"state", STATE, SEED(state), ALWAYS},
    {"from", STR, SEED(from), ALWAYS},
    {"network", STR, SEED(network), ALWAYS},
    {"bytes_done", U64, SEED(bytes_done), ALWAYS},
    {"bytes_total", U64, SEED(bytes_total), ALWAYS},
    {"percent", DBL, SEED(percent), ALWAYS},
    {"rate_bps", DBL, SEED(rate_bps), ALWAYS},
    {"eta_s", DBL, SEED(eta_s), ALWAYS},
    {"generation", U64, SEED(generation), ALWAYS},
    {"lsn", U64, SEED(lsn), ALWAYS},
    {"manual_resume", BOOL, SEED(manual_resume), ALWAYS},
    {"start_time_ns", U64, SEED(start_time_ns), ALWAYS},
    {"end_time_ns", U64, SEED(end_time_ns), ALWAYS},
    {"error", STR, SEED(error), ALWAYS},
};

void ls_status_seed_to_json(const ls_status_seed_t *s, cJSON *o)
{
    ADD_FIELDS(o, s, seed_fields, 0);
}

#define NET(f) offsetof(ls_status_net_t, f)
static const field_t net_fields[] = {
    {"name", STR, NET(name), ALWAYS},
    {"remote", STR, NET(remote), ALWAYS},
    {"bind", STR, NET(bind), ALWAYS},
    {"state", STATE, NET(state), ALWAYS},
    {"last_error", STR, NET(last_error), ALWAYS},
    {"last_error_time_ns", U64, NET(last_error_time_ns), ALWAYS},
    {"left_reason", STR, NET(left_reason), ALWAYS},
    {"left_time_ns", U64, NET(left_time_ns), ALWAYS},
    {"failures", U64, NET(failures), ALWAYS},
    {"settle_s", SECS, NET(settle_ns), ALWAYS},
    {"up_s", SECS, NET(up_ns), ALWAYS},
};

cJSON *ls_status_networks_to_json(const ls_status_net_t *nets, int count)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr && i < count; i++) {
        cJSON *o = cJSON_CreateObject();
        ADD_FIELDS(o, &nets[i], net_fields, 0);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

#define COPY(f) offsetof(ls_status_copy_t, f)
/* A copy's members, in document order; its networks and seed follow them. */
static const field_t copy_fields[] = {
    {"database", STR, COPY(database), ALWAYS},
    {"role", ROLE, COPY(role), ALWAYS},
    {"source", STR, COPY(source), ALWAYS},
    {"target", STR, COPY(target), ALWAYS},
    {"state", STATE, COPY(state), ALWAYS},
    {"reason", STR, COPY(reason), ALWAYS},
    {"comment", STR, COPY(comment), ALWAYS},
    {"suspended_since_ns", U64, COPY(suspended_since_ns), ALWAYS},
    {"replay_suspended", BOOL, COPY(replay_suspended), ALWAYS},
    {"network", STR, COPY(network), ALWAYS},
    {"tls", BOOL, COPY(tls), ALWAYS},
    {"last_generated", POS, COPY(last_generated), ALWAYS},
    {"last_copied", POS, COPY(last_copied), ALWAYS},
    {"last_inspected", POS, COPY(last_inspected), ALWAYS},
    {"last_replayed", POS, COPY(last_replayed), ALWAYS},
    {"last_replayed_synced", POS, COPY(last_replayed_synced), ALWAYS},
    {"last_replayed_lsn", U64, COPY(last_replayed_lsn), PASSIVE},
    {"copy_queue", U64, COPY(copy_queue), ALWAYS},
    {"copy_queue_bytes", U64, COPY(copy_queue_bytes), ALWAYS},
    {"replay_queue", U64, COPY(replay_queue), ALWAYS},
    {"replay_queue_bytes", U64, COPY(replay_queue_bytes), ALWAYS},
    {"copy_lag_s", SECS, COPY(copy_lag_ns), ALWAYS},
    {"replay_lag_s", SECS, COPY(replay_lag_ns), ALWAYS},
    {"throughput_bps", DBL, COPY(throughput_bps), ALWAYS},
    {"sent_generations", U64, COPY(sent_generations), ACTIVE},
    {"sent_bytes", U64, COPY(sent_bytes), ACTIVE},
    {"ask_agains", U64, COPY(kept.ask_agains), ACTIVE},
    {"inspection_failures", U64, COPY(kept.inspection_failures), ACTIVE},
    {"rtt_ms", MS, COPY(rtt_ns), ACTIVE},
    {"rtt_last_ms", MS, COPY(rtt_last_ns), ACTIVE},
    {"wire_bytes_sent", U64, COPY(wire_bytes_sent), ACTIVE},
    {"frame_bytes_sent", U64, COPY(frame_bytes_sent), ACTIVE},
    {"zstd_loop_calls", U64, COPY(zstd_loop_calls), ACTIVE},
    {"connections", U64, COPY(connections), ACTIVE},
    {"removed_generations", U64, COPY(removed_generations), ACTIVE},
    {"last_error", STR, COPY(last_error), ACTIVE},
    {"network_pinned", STR, COPY(network_pinned), ACTIVE | NETS},
    {"network_switches", U64, COPY(network_switches), ACTIVE | NETS},
    {"last_switch", STR, COPY(last_switch), ACTIVE | NETS},
    {"last_switch_time_ns", U64, COPY(last_switch_time_ns), ACTIVE | NETS},
    {"resent_bytes", U64, COPY(resent_bytes), ACTIVE | NETS},
    {"inspection_failures", U64, COPY(kept.inspection_failures), PASSIVE},
    {"ask_agains", U64, COPY(kept.ask_agains), PASSIVE},
    {"applied_generations", U64, COPY(applied_generations), PASSIVE},
    {"replay_transactions", U64, COPY(replay_transactions), PASSIVE},
    {"rtt_ms", MS, COPY(rtt_ns), PASSIVE},
    {"wire_bytes_received", U64, COPY(wire_bytes_received), PASSIVE},
    {"zstd_loop_calls", U64, COPY(zstd_loop_calls), PASSIVE},
    {"clock_offset_ms", MS, COPY(clock_offset_ns), PASSIVE},
    {"clock_offset_ns", I64, COPY(clock_offset_ns), PASSIVE},
};

static cJSON *copy_json(const ls_status_copy_t *c)
{
    bool active = c->role == LS_STATUS_ACTIVE;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    ADD_FIELDS(o, c, copy_fields, (active ? ACTIVE : PASSIVE) | (c->have_networks ? NETS : 0));
    if (active && c->have_networks)
        cJSON_AddItemToObject(o, "networks", ls_status_networks_to_json(c->nets, c->nnets));
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
    return 0;
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
    if (cJSON_IsNumber(v) && v->valuedouble > 0) return (uint64_t) v->valuedouble;
    return 0;
}

double ls_status_json_num(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsRaw(v) && v->valuestring) return strtod(v->valuestring, NULL);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}
