/* Configuration keys per section, defaults and validation (see docs/CONFIG.md). */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_int.h"
#include "core/core.h"

void ls__cfg_fail(struct parser *p, int line, const char *fmt, ...)
{
    if (p->failed) return;
    p->failed = true;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(p->err, p->errlen, "%s:%d: %s", p->cfg->path, line, msg);
    else
        snprintf(p->err, p->errlen, "%s: %s", p->cfg->path, msg);
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= LS_CFG_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char) s[i]) && !strchr("._-", s[i])) return false;
    return true;
}

/* Copies a non-empty value that fits, else records "bad value" and returns false. */
static bool set_str(struct parser *p, char *dst, size_t cap, const char *key, const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n >= cap) {
        ls__cfg_fail(p, p->lineno, "bad value for '%s': %s", key, n ? "too long" : "empty value");
        return false;
    }
    memcpy(dst, v, n + 1);
    return true;
}

static void set_size(struct parser *p, uint64_t *dst, const char *key, const char *v)
{
    if (ls_parse_size(v, dst))
        ls__cfg_fail(p, p->lineno, "bad size for '%s': '%s' (expected e.g. 1048576, 1MiB, 64KiB)",
                     key, v);
}

/* A cap: a size, or "none" (also 0, which the documentation long promised as "no cap") for
 * LS_CFG_NO_CAP. Absent, validate_database gives the default. */
static void set_cap(struct parser *p, uint64_t *dst, const char *key, const char *v)
{
    if (!strcasecmp(v, "none")) {
        *dst = LS_CFG_NO_CAP;
        return;
    }
    if (ls_parse_size(v, dst)) {
        ls__cfg_fail(p, p->lineno, "bad size for '%s': '%s' (expected e.g. 8GiB, 512MiB, or none)",
                     key, v);
        return;
    }
    if (*dst == 0) *dst = LS_CFG_NO_CAP;
}

static void set_duration(struct parser *p, uint64_t *dst, const char *key, const char *v)
{
    if (ls_parse_duration_ms(v, dst))
        ls__cfg_fail(p, p->lineno, "bad duration for '%s': '%s' (expected e.g. 500ms, 5s, 2m)", key,
                     v);
}

static void set_count(struct parser *p, uint64_t *dst, const char *key, const char *v)
{
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (!isdigit((unsigned char) *v) || *end) {
        ls__cfg_fail(p, p->lineno, "bad number for '%s': '%s'", key, v);
        return;
    }
    *dst = n;
}

static void unknown(struct parser *p, const char *section, const char *key)
{
    ls__cfg_fail(p, p->lineno, "unknown key '%s' in [%s] (see docs/CONFIG.md)", key, section);
}

int ls__cfg_node_key(struct parser *p, const char *name, const char *v)
{
    ls_config_t *c = p->cfg;
    if (!strcmp(name, "name")) {
        if (!valid_name(v))
            ls__cfg_fail(p, p->lineno, "bad node name '%s' (1-63 of A-Z a-z 0-9 . _ -)", v);
        else
            set_str(p, c->node_name, sizeof(c->node_name), name, v);
    } else if (!strcmp(name, "data_dir")) {
        set_str(p, c->data_dir, sizeof(c->data_dir), name, v);
    } else if (!strcmp(name, "control_socket")) {
        set_str(p, c->control_socket, sizeof(c->control_socket), name, v);
    } else if (!strcmp(name, "metrics_listen")) {
        ls_cfg_addr_t a;
        if (ls_parse_addr(v, &a))
            ls__cfg_fail(p, p->lineno, "bad address '%s' (HOST:PORT)", v);
        else
            set_str(p, c->metrics_listen, sizeof(c->metrics_listen), name, v);
    } else if (!strcmp(name, "heartbeat_interval")) {
        set_duration(p, &c->heartbeat_interval_ms, name, v);
        if (!p->failed && (c->heartbeat_interval_ms < 50 || c->heartbeat_interval_ms > 4000))
            ls__cfg_fail(p, p->lineno, "[node] heartbeat_interval must be between 50ms and 4s");
    } else if (!strcmp(name, "receive_window")) {
        set_size(p, &c->receive_window, name, v);
        if (!p->failed && (c->receive_window < 64 * 1024 || c->receive_window > (1ull << 30)))
            ls__cfg_fail(p, p->lineno, "receive_window must be between 64KiB and 1GiB");
    } else if (!strcmp(name, "log_level")) {
        if (strcmp(v, "error") && strcmp(v, "warn") && strcmp(v, "info") && strcmp(v, "debug"))
            ls__cfg_fail(p, p->lineno, "bad log_level '%s' (error, warn, info or debug)", v);
        else
            set_str(p, c->log_level, sizeof(c->log_level), name, v);
    } else {
        unknown(p, "node", name);
    }
    return 1;
}

int ls__cfg_tls_key(struct parser *p, const char *name, const char *v)
{
    ls_config_t *c = p->cfg;
    if (!strcmp(name, "ca"))
        set_str(p, c->tls_ca, sizeof(c->tls_ca), name, v);
    else if (!strcmp(name, "cert"))
        set_str(p, c->tls_cert, sizeof(c->tls_cert), name, v);
    else if (!strcmp(name, "key"))
        set_str(p, c->tls_key, sizeof(c->tls_key), name, v);
    else if (!strcmp(name, "insecure_plaintext")) {
        if (!strcasecmp(v, "true") || !strcasecmp(v, "yes"))
            c->plaintext = true;
        else if (!strcasecmp(v, "false") || !strcasecmp(v, "no"))
            c->plaintext = false;
        else
            ls__cfg_fail(p, p->lineno, "bad value for 'insecure_plaintext': '%s' (true or false)",
                         v);
    } else
        unknown(p, "tls", name);
    return 1;
}

int ls__cfg_listen_key(struct parser *p, const char *name, const char *v)
{
    ls_config_t *c = p->cfg;
    if (strcmp(name, "address")) {
        unknown(p, "listen", name);
    } else if (c->nlisten == LS_CFG_MAX_LISTEN) {
        ls__cfg_fail(p, p->lineno, "too many listen addresses (at most %d)", LS_CFG_MAX_LISTEN);
    } else if (ls_parse_addr(v, &c->listen[c->nlisten])) {
        ls__cfg_fail(p, p->lineno, "bad address '%s' (HOST:PORT or [V6]:PORT)", v);
    } else {
        c->nlisten++;
    }
    return 1;
}

/* Finds or appends a section entry by name; records its first line. */
static void *section_entry(struct parser *p, void **arr, int *n, int **lines, size_t size,
                           const char *name)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp((char *) *arr + (size_t) i * size, name))
            return (char *) *arr + (size_t) i * size;
    void *na = realloc(*arr, (size_t) (*n + 1) * size);
    int *nl = realloc(*lines, (size_t) (*n + 1) * sizeof(int));
    if (na) *arr = na;
    if (nl) *lines = nl;
    if (!na || !nl) {
        ls__cfg_fail(p, p->lineno, "out of memory");
        return NULL;
    }
    char *e = (char *) *arr + (size_t) *n * size;
    memset(e, 0, size);
    snprintf(e, LS_CFG_NAME_MAX, "%s", name); /* the name is the first member of both */
    (*lines)[(*n)++] = p->lineno;
    return e;
}

static void add_network(struct parser *p, ls_cfg_target_t *t, const char *v)
{
    char name[LS_CFG_NAME_MAX], addr[LS_CFG_ADDR_MAX], bind[LS_CFG_ADDR_MAX + 8] = "";
    int n = sscanf(v, "%63s %127s %135s", name, addr, bind);
    if (n < 2 || (n == 3 && strncmp(bind, "bind=", 5))) {
        ls__cfg_fail(p, p->lineno, "bad network '%s' (expected: NAME HOST:PORT [bind=ADDRESS])", v);
        return;
    }
    if (t->nnets == LS_CFG_MAX_NETS) {
        ls__cfg_fail(p, p->lineno, "too many networks for target '%s' (at most %d)", t->name,
                     LS_CFG_MAX_NETS);
        return;
    }
    ls_cfg_network_t *net = &t->nets[t->nnets];
    if (!valid_name(name)) {
        ls__cfg_fail(p, p->lineno, "bad network name '%s'", name);
        return;
    }
    if (ls_parse_addr(addr, &net->remote)) {
        ls__cfg_fail(p, p->lineno, "bad network address '%s' (HOST:PORT or [V6]:PORT)", addr);
        return;
    }
    for (int i = 0; i < t->nnets; i++)
        if (!strcmp(t->nets[i].name, name)) {
            ls__cfg_fail(p, p->lineno, "network '%s' listed twice for target '%s'", name, t->name);
            return;
        }
    snprintf(net->name, sizeof(net->name), "%s", name);
    if (n == 3 && !set_str(p, net->bind, sizeof(net->bind), "bind", bind + 5)) return;
    t->nnets++;
}

static void set_compression(struct parser *p, ls_cfg_target_t *t, const char *v)
{
    if (!strcmp(v, "off")) {
        t->compression_level = 0;
        return;
    }
    int level = 1;
    char extra;
    if (!strcmp(v, "zstd") ||
        (sscanf(v, "zstd:%d%c", &level, &extra) == 1 && level >= 1 && level <= 19)) {
        t->compression_level = level;
        return;
    }
    ls__cfg_fail(p, p->lineno, "bad compression '%s' (off, zstd or zstd:LEVEL with LEVEL 1-19)", v);
}

/* [target NAME] and [source NAME] share their keys: a peer reached over replication networks. */
static int peer_key(struct parser *p, const char *kind, ls_cfg_target_t **arr, int *n, int **lines,
                    const char *tname, const char *name, const char *v)
{
    if (!valid_name(tname)) {
        ls__cfg_fail(p, p->lineno, "bad %s name '%s' in section header", kind, tname);
        return 1;
    }
    ls_cfg_target_t *t = section_entry(p, (void **) arr, n, lines, sizeof(*t), tname);
    if (!t) return 1;
    if (!strcmp(name, "peer_name"))
        set_str(p, t->peer_name, sizeof(t->peer_name), name, v);
    else if (!strcmp(name, "network"))
        add_network(p, t, v);
    else if (!strcmp(name, "compression"))
        set_compression(p, t, v);
    else if (!strcmp(name, "heartbeat_interval"))
        set_duration(p, &t->heartbeat_interval_ms, name, v);
    else if (!strcmp(name, "heartbeat_timeout"))
        set_duration(p, &t->heartbeat_timeout_ms, name, v);
    else if (!strcmp(name, "settle_time"))
        set_duration(p, &t->settle_ms, name, v);
    else
        unknown(p, kind, name);
    return 1;
}

int ls__cfg_target_key(struct parser *p, const char *tname, const char *name, const char *v)
{
    return peer_key(p, "target", &p->cfg->targets, &p->cfg->ntargets, &p->target_line, tname, name,
                    v);
}

int ls__cfg_source_key(struct parser *p, const char *sname, const char *name, const char *v)
{
    return peer_key(p, "source", &p->cfg->sources, &p->cfg->nsources, &p->source_line, sname, name,
                    v);
}

int ls__cfg_peer_key(struct parser *p, const char *pname, const char *name, const char *v)
{
    peer_key(p, "peer", &p->cfg->targets, &p->cfg->ntargets, &p->target_line, pname, name, v);
    return peer_key(p, "peer", &p->cfg->sources, &p->cfg->nsources, &p->source_line, pname, name,
                    v);
}

static void add_copies(struct parser *p, ls_cfg_database_t *d, const char *v)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", v);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        if (!valid_name(tok)) {
            ls__cfg_fail(p, p->lineno, "bad node name '%s' in 'copies'", tok);
            return;
        }
        for (int i = 0; i < d->ncopies; i++)
            if (!strcmp(d->copies[i], tok)) {
                ls__cfg_fail(p, p->lineno, "node '%s' listed twice in 'copies'", tok);
                return;
            }
        if (d->ncopies == LS_CFG_MAX_COPIES) {
            ls__cfg_fail(p, p->lineno, "too many copies (at most %d nodes)", LS_CFG_MAX_COPIES);
            return;
        }
        snprintf(d->copies[d->ncopies++], LS_CFG_NAME_MAX, "%s", tok);
    }
}

static void add_targets(struct parser *p, ls_cfg_database_t *d, const char *v)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", v);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        if (!valid_name(tok)) {
            ls__cfg_fail(p, p->lineno, "bad target name '%s'", tok);
            return;
        }
        if (d->ntargets == LS_CFG_MAX_NETS) {
            ls__cfg_fail(p, p->lineno, "too many targets (at most %d)", LS_CFG_MAX_NETS);
            return;
        }
        snprintf(d->targets[d->ntargets++], LS_CFG_NAME_MAX, "%s", tok);
    }
}

int ls__cfg_database_key(struct parser *p, const char *dname, const char *name, const char *v)
{
    ls_config_t *c = p->cfg;
    if (!valid_name(dname)) {
        ls__cfg_fail(p, p->lineno, "bad database name '%s' in section header", dname);
        return 1;
    }
    ls_cfg_database_t *d =
        section_entry(p, (void **) &c->databases, &c->ndatabases, &p->db_line, sizeof(*d), dname);
    if (!d) return 1;
    if (!strcmp(name, "role")) {
        if (!strcmp(v, "active"))
            d->role = LS_CFG_ACTIVE;
        else if (!strcmp(v, "passive"))
            d->role = LS_CFG_PASSIVE;
        else
            ls__cfg_fail(p, p->lineno, "bad role '%s' (active or passive)", v);
    } else if (!strcmp(name, "path"))
        set_str(p, d->path, sizeof(d->path), name, v);
    else if (!strcmp(name, "targets"))
        add_targets(p, d, v);
    else if (!strcmp(name, "copies"))
        add_copies(p, d, v);
    else if (!strcmp(name, "source")) {
        if (!valid_name(v))
            ls__cfg_fail(p, p->lineno, "bad source node name '%s'", v);
        else
            set_str(p, d->source, sizeof(d->source), name, v);
    } else if (!strcmp(name, "target_size"))
        set_size(p, &d->target_size, name, v);
    else if (!strcmp(name, "replay_lag"))
        set_duration(p, &d->replay_lag_ms, name, v);
    else if (!strcmp(name, "keep_logs"))
        set_count(p, &d->keep_logs, name, v);
    else if (!strcmp(name, "truncation_lag"))
        set_duration(p, &d->truncation_lag_ms, name, v);
    else if (!strcmp(name, "max_log_bytes"))
        set_cap(p, &d->max_log_bytes, name, v);
    else if (!strcmp(name, "auto_resync")) {
        if (!strcmp(v, "true") || !strcmp(v, "false"))
            d->auto_resync = !strcmp(v, "true");
        else
            ls__cfg_fail(p, p->lineno, "bad value for 'auto_resync': '%s' (true or false)", v);
    } else if (!strcmp(name, "source_verify")) {
        if (!strcmp(v, "records") || !strcmp(v, "full"))
            d->source_verify_full = !strcmp(v, "full");
        else
            ls__cfg_fail(p, p->lineno, "bad value for 'source_verify': '%s' (records or full)", v);
    } else
        unknown(p, "database", name);
    return 1;
}

static void validate_target(struct parser *p, const char *kind, ls_cfg_target_t *t, int line)
{
    if (!t->peer_name[0]) snprintf(t->peer_name, sizeof(t->peer_name), "%s", t->name);
    if (!t->heartbeat_interval_ms) t->heartbeat_interval_ms = 1000;
    if (!t->heartbeat_timeout_ms) t->heartbeat_timeout_ms = 5000;
    if (!t->settle_ms) t->settle_ms = 10000;
    if (t->nnets == 0)
        ls__cfg_fail(p, line, "[%s %s] needs at least one 'network = NAME HOST:PORT'", kind,
                     t->name);
    else if (t->heartbeat_timeout_ms <= t->heartbeat_interval_ms)
        ls__cfg_fail(p, line, "[%s %s] heartbeat_timeout must exceed heartbeat_interval", kind,
                     t->name);
}

static void validate_database(struct parser *p, ls_cfg_database_t *d, int line)
{
    ls_config_t *c = p->cfg;
    if (!d->path[0] && (size_t) snprintf(d->path, sizeof(d->path), "%s/%s", c->data_dir, d->name) >=
                           sizeof(d->path))
        ls__cfg_fail(p, line, "[database %s] path too long", d->name);
    if (!d->target_size) d->target_size = 1u << 20;
    if (!d->keep_logs) d->keep_logs = 8;
    if (!d->max_log_bytes) d->max_log_bytes = LS_CFG_DEFAULT_MAX_LOG_BYTES; /* absent */
    if (d->role == 0) {
        ls__cfg_fail(p, line, "[database %s] is missing required key 'role' (active or passive)",
                     d->name);
    } else if (d->role == LS_CFG_ACTIVE) {
        if (d->ntargets == 0 && d->ncopies < 2)
            ls__cfg_fail(p, line, "[database %s] is active but names no 'targets' (or 'copies')",
                         d->name);
        for (int i = 0; i < d->ntargets; i++)
            if (!ls_config_target(c, d->targets[i]))
                ls__cfg_fail(p, line,
                             "[database %s] ships to target '%s' but there is no [target %s] "
                             "or [peer %s]",
                             d->name, d->targets[i], d->targets[i], d->targets[i]);
    } else if (!d->source[0]) {
        ls__cfg_fail(p, line, "[database %s] is passive but names no 'source'", d->name);
    }
    if (d->ncopies) {
        bool me = false, src = !d->source[0];
        for (int i = 0; i < d->ncopies; i++) {
            me = me || !strcmp(d->copies[i], c->node_name);
            src = src || !strcmp(d->copies[i], d->source);
        }
        if (!me)
            ls__cfg_fail(p, line, "[database %s] copies must name this node (%s)", d->name,
                         c->node_name);
        else if (!src)
            ls__cfg_fail(p, line, "[database %s] copies must name its source '%s'", d->name,
                         d->source);
        for (int i = 0; i < d->ncopies && !p->failed; i++)
            if (strcmp(d->copies[i], c->node_name) && !ls_config_peer(c, d->copies[i]))
                ls__cfg_fail(p, line,
                             "[database %s] copies names '%s' but there is no [peer %s] (or "
                             "[target %s] or [source %s]) saying how to reach it",
                             d->name, d->copies[i], d->copies[i], d->copies[i], d->copies[i]);
    }
    if (d->target_size < 4096 || d->target_size > (64ull << 20))
        ls__cfg_fail(p, line, "[database %s] target_size must be between 4KiB and 64MiB", d->name);
}

void ls__cfg_validate(struct parser *p)
{
    ls_config_t *c = p->cfg;
    if (!c->node_name[0]) ls__cfg_fail(p, 0, "missing required key 'name' in [node]");
    if (!c->data_dir[0]) ls__cfg_fail(p, 0, "missing required key 'data_dir' in [node]");
    if (!c->control_socket[0] &&
        (size_t) snprintf(c->control_socket, sizeof(c->control_socket), "%s/logshipd.sock",
                          c->data_dir) >= sizeof(c->control_socket))
        ls__cfg_fail(p, 0, "[node] data_dir too long for the default control_socket");
    if (!c->log_level[0]) snprintf(c->log_level, sizeof(c->log_level), "info");
    if (!c->receive_window) c->receive_window = 4u << 20;
    if (!c->heartbeat_interval_ms) c->heartbeat_interval_ms = 1000;
    if (!c->plaintext && (!c->tls_ca[0] || !c->tls_cert[0] || !c->tls_key[0]))
        ls__cfg_fail(p, 0,
                     "[tls] needs 'ca', 'cert' and 'key' (or 'insecure_plaintext = true' to run "
                     "without TLS, which status will show)");
    for (int i = 0; i < c->ntargets; i++)
        validate_target(p, "target", &c->targets[i], p->target_line[i]);
    for (int i = 0; i < c->nsources; i++)
        validate_target(p, "source", &c->sources[i], p->source_line[i]);
    for (int i = 0; i < c->ndatabases; i++)
        validate_database(p, &c->databases[i], p->db_line[i]);
}
