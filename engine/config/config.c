/* The daemon's INI configuration: parsing through libinih with line numbers, then validation. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "config/config.h"
#include "config/config_int.h"
#include "core/core.h"

/* inih's line reader: counts lines and notices lines longer than inih's buffer. */
static char *reader(char *str, int num, void *stream)
{
    struct parser *p = stream;
    if (!fgets(str, num, p->f)) return NULL;
    p->lineno++;
    size_t len = strlen(str);
    if (len == (size_t) num - 1 && str[len - 1] != '\n' && !feof(p->f)) {
        if (!p->long_line) p->long_line = true, p->long_lineno = p->lineno;
        int c; /* discard the rest of the line; report it once parsing ends */
        while ((c = fgetc(p->f)) != EOF && c != '\n') {}
        str[0] = '\0';
    }
    return str;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct parser *p = user;
    if (p->failed) return 1;
    if (!strcmp(section, "node")) return ls__cfg_node_key(p, name, value);
    if (!strcmp(section, "tls")) return ls__cfg_tls_key(p, name, value);
    if (!strcmp(section, "listen")) return ls__cfg_listen_key(p, name, value);
    if (!strncmp(section, "target ", 7)) return ls__cfg_target_key(p, section + 7, name, value);
    if (!strncmp(section, "database ", 9)) return ls__cfg_database_key(p, section + 9, name, value);
    if (!strncmp(section, "source ", 7)) return ls__cfg_source_key(p, section + 7, name, value);
    if (!strncmp(section, "peer ", 5)) return ls__cfg_peer_key(p, section + 5, name, value);
    if (!*section)
        ls__cfg_fail(p, p->lineno, "key '%s' outside any section", name);
    else
        ls__cfg_fail(p, p->lineno,
                     "unknown section [%s] (expected [node], [tls], [listen], [peer NAME], "
                     "[target NAME], [source NAME] or [database NAME])",
                     section);
    return 1;
}

/* Parses the already opened stream f as the file cfg->path, closes it and validates. */
static int load_stream(ls_config_t *cfg, FILE *f, ls_config_t **out, char *err, size_t errlen)
{
    struct parser p = {.cfg = cfg, .f = f, .err = err, .errlen = errlen};
    int line = ini_parse_stream(reader, &p, handler, &p);
    fclose(p.f);
    if (p.long_line) { /* an over-long line is the first thing to fix, whatever followed it */
        p.failed = false;
        ls__cfg_fail(&p, p.long_lineno, "line longer than %d characters", LINE_MAX_LEN - 1);
    }
    if (line > 0 && !p.failed)
        ls__cfg_fail(&p, line, "syntax error (expected '[section]', 'key = value' or a comment)");
    if (!p.failed) ls__cfg_validate(&p);
    free(p.target_line);
    free(p.db_line);
    free(p.source_line);
    if (p.failed) {
        ls_config_free(cfg);
        return LS_ECONFIG;
    }
    *out = cfg;
    return 0;
}

int ls_config_load(const char *path, ls_config_t **out, char *err, size_t errlen)
{
    *out = NULL;
    ls_config_t *cfg = calloc(1, sizeof(*cfg));
    if (!cfg) return LS_ENOMEM;
    snprintf(cfg->path, sizeof(cfg->path), "%s", path);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open configuration file: %m", path);
        ls_config_free(cfg);
        return LS_ENOENT;
    }
    return load_stream(cfg, f, out, err, errlen);
}

int ls_config_parse(const char *name, const char *text, size_t len, ls_config_t **out, char *err,
                    size_t errlen)
{
    *out = NULL;
    ls_config_t *cfg = calloc(1, sizeof(*cfg));
    if (!cfg) return LS_ENOMEM;
    snprintf(cfg->path, sizeof(cfg->path), "%s", name);
    /* An empty text is a stream of one empty line: the same configuration (none) and the same
     * error, and fmemopen needs at least one byte. */
    FILE *f = len ? fmemopen((void *) text, len, "r") : fmemopen((void *) "\n", 1, "r");
    if (!f) {
        ls_config_free(cfg);
        return LS_ENOMEM;
    }
    return load_stream(cfg, f, out, err, errlen);
}

void ls_config_free(ls_config_t *cfg)
{
    if (!cfg) return;
    free(cfg->targets);
    free(cfg->databases);
    free(cfg->sources);
    free(cfg);
}

const ls_cfg_target_t *ls_config_target(const ls_config_t *cfg, const char *name)
{
    for (int i = 0; i < cfg->ntargets; i++)
        if (!strcmp(cfg->targets[i].name, name)) return &cfg->targets[i];
    return NULL;
}

const ls_cfg_target_t *ls_config_source(const ls_config_t *cfg, const char *name)
{
    for (int i = 0; i < cfg->nsources; i++)
        if (!strcmp(cfg->sources[i].name, name)) return &cfg->sources[i];
    return NULL;
}

const ls_cfg_target_t *ls_config_peer(const ls_config_t *cfg, const char *name)
{
    const ls_cfg_target_t *t = ls_config_target(cfg, name);
    return t ? t : ls_config_source(cfg, name);
}

static void copy_set_add(char out[][LS_CFG_NAME_MAX], int *n, const char *name)
{
    if (!name[0] || *n == LS_CFG_MAX_COPIES) return;
    for (int i = 0; i < *n; i++)
        if (!strcmp(out[i], name)) return;
    snprintf(out[(*n)++], LS_CFG_NAME_MAX, "%s", name);
}

int ls_config_copy_set(const ls_config_t *cfg, const ls_cfg_database_t *d,
                       char out[][LS_CFG_NAME_MAX])
{
    int n = 0;
    if (d->ncopies) {
        for (int i = 0; i < d->ncopies; i++)
            copy_set_add(out, &n, d->copies[i]);
        return n;
    }
    copy_set_add(out, &n, cfg->node_name);
    copy_set_add(out, &n, d->source);
    for (int i = 0; i < d->ntargets; i++)
        copy_set_add(out, &n, d->targets[i]);
    return n;
}

const ls_cfg_database_t *ls_config_database(const ls_config_t *cfg, const char *name)
{
    for (int i = 0; i < cfg->ndatabases; i++)
        if (!strcmp(cfg->databases[i].name, name)) return &cfg->databases[i];
    return NULL;
}
