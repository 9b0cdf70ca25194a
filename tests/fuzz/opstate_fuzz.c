/*
 * libFuzzer target for the op-state file (<copy>.state, <db>/copy-<target>.state;
 * engine/node/opstate.c), the operator's suspension kept across restarts: any input is parsed by
 * ls__node_opstate_parse, the in-memory twin of ls__node_opstate_load. It must never crash, leak,
 * read out of bounds or convert a number it cannot hold (UBSan); the comment stays terminated.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "node/node_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ls_status_op_t op;
    int rc = ls__node_opstate_parse("fuzz.state", (const char *) data, size, &op);
    if (rc != 0 && rc != LS_ECORRUPT) abort();
    if (!memchr(op.comment, '\0', sizeof(op.comment))) abort();
    if (rc && (op.suspended || op.replay_suspended || op.since_ns)) abort();
    return 0;
}
