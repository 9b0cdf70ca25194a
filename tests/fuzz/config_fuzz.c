/*
 * libFuzzer target for the configuration file (engine/config): any input is parsed as the daemon's
 * INI file through ls_config_parse, the in-memory twin of ls_config_load. It must never crash,
 * leak or read out of bounds; a refusal must leave *out NULL and a NUL-terminated message naming
 * the file ("fuzz.conf:LINE: reason" or "fuzz.conf: reason"); an accepted configuration must
 * hold what validation promises (names set, counts within their arrays).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_target(const ls_cfg_target_t *t)
{
    if (!t->name[0] || t->nnets < 1 || t->nnets > LS_CFG_MAX_NETS) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ls_config_t *cfg = (ls_config_t *) 1;
    char err[512];
    memset(err, 'x', sizeof(err));
    int rc = ls_config_parse("fuzz.conf", (const char *) data, size, &cfg, err, sizeof(err));
    if (rc) {
        if (cfg || !memchr(err, '\0', sizeof(err)) || strncmp(err, "fuzz.conf", 9) != 0) abort();
        return 0;
    }
    if (!cfg || !cfg->node_name[0] || cfg->nlisten > LS_CFG_MAX_LISTEN) abort();
    for (int i = 0; i < cfg->ntargets; i++)
        check_target(&cfg->targets[i]);
    for (int i = 0; i < cfg->nsources; i++)
        check_target(&cfg->sources[i]);
    for (int i = 0; i < cfg->ndatabases; i++) {
        const ls_cfg_database_t *d = &cfg->databases[i];
        if (!d->name[0] || d->ntargets > LS_CFG_MAX_NETS || d->ncopies > LS_CFG_MAX_COPIES) abort();
        char set[LS_CFG_MAX_COPIES][LS_CFG_NAME_MAX];
        int n = ls_config_copy_set(cfg, d, set);
        if (n < 0 || n > LS_CFG_MAX_COPIES) abort();
        if (ls_config_database(cfg, d->name) == NULL) abort();
    }
    ls_config_free(cfg);
    return 0;
}
