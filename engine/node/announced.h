/* What a copy's source last announced (COPY_STATE, BLOCK), kept beside the copy in
 * <copy>.announced so that an activation after a restart of this daemon still knows it
 * (docs/ACTIVATION.md). The file's text is made and read by two pure functions, tested on their
 * own (tests/unit/node_announced_test.c); announced.c's pcopy adapters (node_int.h:
 * ls__node_announced_load/set/block/save) do the file I/O on the loop. */
#ifndef LS_NODE_ANNOUNCED_H
#define LS_NODE_ANNOUNCED_H

#include <stddef.h>

#include "role/role.h"

/* Writes a's file text into buf (len bytes), a comment naming source and copy first. Returns
 * what snprintf returns: the text's length (truncated when >= len). */
int ls_node_announced_format(const ls_role_announced_t *a, const char *source, const char *copy,
                             char *buf, size_t len);

/* Reads the file text (modified in place: its lines are cut) into *out: "# ..." lines are
 * comments, each other line "KEY N" with KEY one of last_generation, last_close_ns,
 * missing_bytes, open_generation, open_lsn; a missing key stays 0. Returns 0, or the number of
 * the first line that is none of these (counting the non-empty lines from 1), with *out all
 * zero: what was announced is then unknown. */
int ls_node_announced_parse(char *text, ls_role_announced_t *out);

#endif
