/*
 * Helpers the files of engine/role share (not part of its API): the listing of <db>/logs by
 * generation and the trailer of one closed generation in it. Synchronous, any thread.
 */
#ifndef LS_ROLE_LOGS_H
#define LS_ROLE_LOGS_H

#include <stddef.h>

#include "layout/layout.h"

/* Writes <dir>/logs into logs (logslen bytes) and lists its generations by generation into *l
 * (ls_layout_list_free() it after a 0 return). Returns 0 or ls_layout_list's error, err filled. */
int ls__role_list_logs(const char *dir, const char *prefix, char *logs, size_t logslen,
                       ls_layout_list_t *l, char *err, size_t errlen);

/* Reads the ends of generation g of logs into *x (its path into path, pathlen bytes). Returns 0,
 * ls_layout_read_ends' error, or LS_ECORRUPT when it has no valid trailer; err filled. */
int ls__role_read_closed(const char *logs, const char *prefix, const ls_layout_gen_t *g, char *path,
                         size_t pathlen, ls_layout_ends_t *x, char *err, size_t errlen);

#endif
