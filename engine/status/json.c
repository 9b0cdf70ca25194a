/* The JSON renderer of the status model (docs/STATUS.md has the schema) and exact 64-bit
 * integers in cJSON: cJSON keeps every number as a double, which holds integers exactly only up
 * to 2^53, while a nanosecond time is near 2^61. Integers therefore go out as raw items with
 * their digits, and come back in through ls_status_json_parse(). */
#include <inttypes.h>
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

/* "name" and "name_time_ns". */
static void add_pos(cJSON *o, const char *name, const ls_status_pos_t *p)
{
    char key[64];
    ls_status_json_add_u64(o, name, p->gen);
    snprintf(key, sizeof(key), "%s_time_ns", name);
    ls_status_json_add_u64(o, key, p->time_ns);
}

static double secs(uint64_t ns)
{
    return (double) ns / 1e9;
}

static double ms(int64_t ns)
{
    return (double) ns / 1e6;
}

void ls_status_seed_to_json(const ls_status_seed_t *s, cJSON *o)
{
    ls_status_json_add_u64(o, "id", s->id);
    cJSON_AddStringToObject(o, "state", s->state ? s->state : "");
    cJSON_AddStringToObject(o, "from", s->from);
    cJSON_AddStringToObject(o, "network", s->network);
    ls_status_json_add_u64(o, "bytes_done", s->bytes_done);
    ls_status_json_add_u64(o, "bytes_total", s->bytes_total);
    cJSON_AddNumberToObject(o, "percent", s->percent);
    cJSON_AddNumberToObject(o, "rate_bps", s->rate_bps);
    cJSON_AddNumberToObject(o, "eta_s", s->eta_s);
    ls_status_json_add_u64(o, "generation", s->generation);
    ls_status_json_add_u64(o, "lsn", s->lsn);
    cJSON_AddBoolToObject(o, "manual_resume", s->manual_resume);
    ls_status_json_add_u64(o, "start_time_ns", s->start_time_ns);
    ls_status_json_add_u64(o, "end_time_ns", s->end_time_ns);
    cJSON_AddStringToObject(o, "error", s->error);
}

cJSON *ls_status_networks_to_json(const ls_status_net_t *nets, int count)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr && i < count; i++) {
        const ls_status_net_t *n = &nets[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", n->name);
        cJSON_AddStringToObject(o, "remote", n->remote);
        cJSON_AddStringToObject(o, "bind", n->bind);
        cJSON_AddStringToObject(o, "state", n->state ? n->state : "");
        cJSON_AddStringToObject(o, "last_error", n->last_error);
        ls_status_json_add_u64(o, "last_error_time_ns", n->last_error_time_ns);
        cJSON_AddStringToObject(o, "left_reason", n->left_reason);
        ls_status_json_add_u64(o, "left_time_ns", n->left_time_ns);
        ls_status_json_add_u64(o, "failures", n->failures);
        cJSON_AddNumberToObject(o, "settle_s", secs(n->settle_ns));
        cJSON_AddNumberToObject(o, "up_s", secs(n->up_ns));
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* What only the active side has. */
static void active_json(const ls_status_copy_t *c, cJSON *o)
{
    ls_status_json_add_u64(o, "sent_generations", c->sent_generations);
    ls_status_json_add_u64(o, "sent_bytes", c->sent_bytes);
    ls_status_json_add_u64(o, "ask_agains", c->kept.ask_agains);
    ls_status_json_add_u64(o, "inspection_failures", c->kept.inspection_failures);
    cJSON_AddNumberToObject(o, "rtt_ms", ms((int64_t) c->rtt_ns));
    cJSON_AddNumberToObject(o, "rtt_last_ms", ms((int64_t) c->rtt_last_ns));
    ls_status_json_add_u64(o, "wire_bytes_sent", c->wire_bytes_sent);
    ls_status_json_add_u64(o, "frame_bytes_sent", c->frame_bytes_sent);
    ls_status_json_add_u64(o, "zstd_loop_calls", c->zstd_loop_calls);
    ls_status_json_add_u64(o, "connections", c->connections);
    ls_status_json_add_u64(o, "removed_generations", c->removed_generations);
    cJSON_AddStringToObject(o, "last_error", c->last_error);
    if (!c->have_networks) return;
    cJSON_AddStringToObject(o, "network_pinned", c->network_pinned);
    ls_status_json_add_u64(o, "network_switches", c->network_switches);
    cJSON_AddStringToObject(o, "last_switch", c->last_switch);
    ls_status_json_add_u64(o, "last_switch_time_ns", c->last_switch_time_ns);
    ls_status_json_add_u64(o, "resent_bytes", c->resent_bytes);
    cJSON_AddItemToObject(o, "networks", ls_status_networks_to_json(c->nets, c->nnets));
}

/* What only the passive side has. */
static void passive_json(const ls_status_copy_t *c, cJSON *o)
{
    ls_status_json_add_u64(o, "inspection_failures", c->kept.inspection_failures);
    ls_status_json_add_u64(o, "ask_agains", c->kept.ask_agains);
    ls_status_json_add_u64(o, "applied_generations", c->applied_generations);
    ls_status_json_add_u64(o, "replay_transactions", c->replay_transactions);
    cJSON_AddNumberToObject(o, "rtt_ms", ms((int64_t) c->rtt_ns));
    ls_status_json_add_u64(o, "wire_bytes_received", c->wire_bytes_received);
    ls_status_json_add_u64(o, "zstd_loop_calls", c->zstd_loop_calls);
    cJSON_AddNumberToObject(o, "clock_offset_ms", ms(c->clock_offset_ns));
    add_i64(o, "clock_offset_ns", c->clock_offset_ns);
    if (!c->seed.present) return;
    cJSON_AddNumberToObject(o, "seed_percent", c->seed.percent);
    cJSON *so = cJSON_AddObjectToObject(o, "seed");
    if (!so) return;
    ls_status_seed_to_json(&c->seed, so);
    ls_status_json_add_u64(so, "wire_bytes_received", c->seed.wire_bytes_received);
    ls_status_json_add_u64(so, "zstd_loop_calls", c->seed.zstd_loop_calls);
}

static cJSON *copy_json(const ls_status_copy_t *c)
{
    bool active = c->role == LS_STATUS_ACTIVE;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "database", c->database);
    cJSON_AddStringToObject(o, "role", active ? "active" : "passive");
    cJSON_AddStringToObject(o, "source", c->source);
    cJSON_AddStringToObject(o, "target", c->target);
    cJSON_AddStringToObject(o, "state", c->state ? c->state : "");
    cJSON_AddStringToObject(o, "reason", c->reason);
    cJSON_AddStringToObject(o, "comment", c->comment);
    ls_status_json_add_u64(o, "suspended_since_ns", c->suspended_since_ns);
    cJSON_AddBoolToObject(o, "replay_suspended", c->replay_suspended);
    cJSON_AddStringToObject(o, "network", c->network);
    cJSON_AddBoolToObject(o, "tls", c->tls);
    add_pos(o, "last_generated", &c->last_generated);
    add_pos(o, "last_copied", &c->last_copied);
    add_pos(o, "last_inspected", &c->last_inspected);
    add_pos(o, "last_replayed", &c->last_replayed);
    add_pos(o, "last_replayed_synced", &c->last_replayed_synced);
    if (!active) ls_status_json_add_u64(o, "last_replayed_lsn", c->last_replayed_lsn);
    ls_status_json_add_u64(o, "copy_queue", c->copy_queue);
    ls_status_json_add_u64(o, "copy_queue_bytes", c->copy_queue_bytes);
    ls_status_json_add_u64(o, "replay_queue", c->replay_queue);
    ls_status_json_add_u64(o, "replay_queue_bytes", c->replay_queue_bytes);
    cJSON_AddNumberToObject(o, "copy_lag_s", secs(c->copy_lag_ns));
    cJSON_AddNumberToObject(o, "replay_lag_s", secs(c->replay_lag_ns));
    cJSON_AddNumberToObject(o, "throughput_bps", c->throughput_bps);
    if (active)
        active_json(c, o);
    else
        passive_json(c, o);
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
    if (cJSON_IsNumber(v) && v->valuedouble > 0) return (uint64_t) v->valuedouble;
    return 0;
}

double ls_status_json_num(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsRaw(v) && v->valuestring) return strtod(v->valuestring, NULL);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}
