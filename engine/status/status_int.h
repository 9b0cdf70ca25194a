/* status internals shared by its renderers (json.c, prom.c) and databases.c. */
#ifndef LS_STATUS_INT_H
#define LS_STATUS_INT_H

#include "status/status.h"

/* The "databases" array of the status document (each database's role, epoch and loss). */
int ls__status_databases_json(const ls_status_node_t *n, cJSON *obj);
/* Their Prometheus families (HELP, TYPE, samples): a malloc'd string, NULL when out of memory. */
char *ls__status_databases_prom(const ls_status_node_t *n);

#endif
