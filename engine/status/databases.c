/* Each database's role on the node in both renderings of the status model: the "databases"
 * array of the JSON document and the logship_database_* and logship_activation_* Prometheus
 * families (base units: seconds for times, written exactly from the nanoseconds). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "status/status_int.h"

/* The "sync" object of an active database: synchronous commit's state (docs/BLOCKMODE.md). */
static int sync_json(cJSON *o, const ls_status_db_t *d)
{
    cJSON *s = cJSON_AddObjectToObject(o, "sync");
    if (!s) return LS_ENOMEM;
    cJSON_AddStringToObject(s, "state", d->sync_state);
    cJSON_AddStringToObject(s, "level", d->sync_level ? d->sync_level : "");
    ls_status_json_add_u64(s, "copies", d->sync_copies);
    ls_status_json_add_u64(s, "since_ns", d->sync_since_ns);
    cJSON_AddStringToObject(s, "reason", d->sync_reason);
    ls_status_json_add_u64(s, "switches", d->sync_switches);
    return 0;
}

int ls__status_databases_json(const ls_status_node_t *n, cJSON *obj)
{
    cJSON *arr = cJSON_AddArrayToObject(obj, "databases");
    if (!arr) return LS_ENOMEM;
    for (size_t i = 0; i < n->ndatabases; i++) {
        const ls_status_db_t *d = &n->databases[i];
        cJSON *o = cJSON_CreateObject(), *l = cJSON_CreateObject();
        if (!o || !l) {
            cJSON_Delete(o);
            cJSON_Delete(l);
            return LS_ENOMEM;
        }
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "database", d->database);
        cJSON_AddStringToObject(o, "role", d->role ? d->role : "");
        ls_status_json_add_u64(o, "epoch", d->epoch);
        cJSON_AddStringToObject(o, "follows", d->follows);
        ls_status_json_add_u64(o, "since_ns", d->since_ns);
        cJSON_AddStringToObject(o, "reason", d->reason);
        cJSON_AddStringToObject(o, "activation", d->activation ? d->activation : "");
        cJSON_AddStringToObject(o, "switchover", d->switchover ? d->switchover : "");
        cJSON_AddItemToObject(o, "loss", l);
        ls_status_json_add_loss(l, d->loss_generations, d->loss_first_generation,
                                d->loss_last_generation, d->loss_bytes, d->loss_from_ns,
                                d->loss_to_ns, d->open_generation);
        if (d->sync_state && sync_json(o, d) != 0) return LS_ENOMEM;
    }
    return 0;
}

/* A label value with backslash, double quote and newline escaped, into out. */
static void label(char *out, size_t len, const char *v)
{
    size_t o = 0;
    for (; *v && o + 3 < len; v++) {
        if (*v == '\\' || *v == '"' || *v == '\n') out[o++] = '\\';
        out[o++] = *v == '\n' ? 'n' : *v;
    }
    out[o] = '\0';
}

enum { F_EPOCH, F_GENS, F_BYTES, F_FROM, F_TO, F_OPEN };

static const struct {
    const char *name, *help;
    int field;
} families[] = {
    {"logship_database_epoch", "the epoch this node knows as current for the database", F_EPOCH},
    {"logship_activation_lost_generations",
     "closed generations the activation that made this epoch may have lost", F_GENS},
    {"logship_activation_lost_bytes", "their bytes, as the old active announced them", F_BYTES},
    {"logship_activation_lost_from_timestamp_seconds",
     "commits possibly lost were made after this time, UTC (0: none lost)", F_FROM},
    {"logship_activation_lost_to_timestamp_seconds", "... and up to this time, UTC (0: none lost)",
     F_TO},
    {"logship_activation_open_generation",
     "the old active's open generation at the activation, whose commits were never shipped",
     F_OPEN},
};

void ls_status_json_add_loss(cJSON *obj, uint64_t generations, uint64_t first_generation,
                             uint64_t last_generation, uint64_t bytes, uint64_t from_ns,
                             uint64_t to_ns, uint64_t open_generation)
{
    ls_status_json_add_u64(obj, "generations", generations);
    ls_status_json_add_u64(obj, "first_generation", first_generation);
    ls_status_json_add_u64(obj, "last_generation", last_generation);
    ls_status_json_add_u64(obj, "bytes", bytes);
    ls_status_json_add_u64(obj, "from_ns", from_ns);
    ls_status_json_add_u64(obj, "to_ns", to_ns);
    ls_status_json_add_u64(obj, "open_generation", open_generation);
}

#define PUT(...) len += (size_t) snprintf(buf + len, len < cap ? cap - len : 0, __VA_ARGS__)

/* The logship_sync_* families: each active database's synchronous commit. */
static void sync_prom(const ls_status_node_t *n, char *buf, size_t cap, size_t *lenp)
{
    size_t len = *lenp;
    static const char *states[] = {"off", "sync", "degraded"};
    char db[2 * LS_STATUS_NAME_MAX + 1];
    PUT("# HELP logship_sync_state synchronous commit of an active database (1 for the current "
        "state: off, sync or degraded)\n# TYPE logship_sync_state gauge\n");
    for (size_t i = 0; i < n->ndatabases; i++) {
        const ls_status_db_t *d = &n->databases[i];
        if (!d->sync_state) continue;
        label(db, sizeof(db), d->database);
        for (size_t s = 0; s < LS_ARRAY_SIZE(states); s++)
            PUT("logship_sync_state{database=\"%s\",state=\"%s\",level=\"%s\"} %d\n", db, states[s],
                d->sync_level ? d->sync_level : "", !strcmp(states[s], d->sync_state));
    }
    PUT("# HELP logship_sync_since_timestamp_seconds when synchronous commit last changed state, "
        "UTC (0: never)\n# TYPE logship_sync_since_timestamp_seconds gauge\n");
    for (size_t i = 0; i < n->ndatabases; i++) {
        const ls_status_db_t *d = &n->databases[i];
        if (!d->sync_state) continue;
        label(db, sizeof(db), d->database);
        PUT("logship_sync_since_timestamp_seconds{database=\"%s\"} %" PRIu64 ".%09" PRIu64 "\n", db,
            d->sync_since_ns / 1000000000u, d->sync_since_ns % 1000000000u);
    }
    PUT("# HELP logship_sync_switches_total changes between sync and degraded since the writer "
        "opened the database\n# TYPE logship_sync_switches_total counter\n");
    for (size_t i = 0; i < n->ndatabases; i++) {
        const ls_status_db_t *d = &n->databases[i];
        if (!d->sync_state) continue;
        label(db, sizeof(db), d->database);
        PUT("logship_sync_switches_total{database=\"%s\"} %u\n", db, d->sync_switches);
    }
    *lenp = len;
}

char *ls__status_databases_prom(const ls_status_node_t *n)
{
    size_t cap = 4096 + n->ndatabases * 3072, len = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    PUT("# HELP logship_database_role the database's role on this node (1 for the current "
        "one)\n# TYPE logship_database_role gauge\n");
    char db[2 * LS_STATUS_NAME_MAX + 1];
    for (size_t i = 0; i < n->ndatabases; i++) {
        label(db, sizeof(db), n->databases[i].database);
        PUT("logship_database_role{database=\"%s\",role=\"%s\"} 1\n", db,
            n->databases[i].role ? n->databases[i].role : "");
    }
    for (size_t f = 0; f < LS_ARRAY_SIZE(families); f++) {
        PUT("# HELP %s %s\n# TYPE %s gauge\n", families[f].name, families[f].help,
            families[f].name);
        for (size_t i = 0; i < n->ndatabases; i++) {
            const ls_status_db_t *d = &n->databases[i];
            label(db, sizeof(db), d->database);
            PUT("%s{database=\"%s\"} ", families[f].name, db);
            int field = families[f].field;
            uint64_t ns = field == F_FROM ? d->loss_from_ns : d->loss_to_ns;
            uint64_t v = field == F_EPOCH   ? d->epoch
                         : field == F_GENS  ? d->loss_generations
                         : field == F_BYTES ? d->loss_bytes
                                            : d->open_generation;
            if (field == F_FROM || field == F_TO)
                PUT("%" PRIu64 ".%09" PRIu64 "\n", ns / 1000000000u, ns % 1000000000u);
            else
                PUT("%" PRIu64 "\n", v);
        }
    }
    sync_prom(n, buf, cap, &len);
    if (len >= cap) { /* cannot happen: at most ~1.7 KiB a database */
        free(buf);
        return NULL;
    }
    return buf;
}
#undef PUT
