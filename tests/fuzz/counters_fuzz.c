/*
 * libFuzzer target for the counters file kept with a copy (<copy>.counters,
 * <db>/copy-<target>.counters; engine/status/counters.c) and so for ls_status_json_parse, the
 * exact-integer JSON reader that `logship` also uses on the daemon's answers: any input is parsed
 * by ls_status_counters_parse, the in-memory twin of ls_status_counters_load. It must never crash,
 * leak, read out of bounds or convert a number it cannot hold (UBSan); a refusal leaves zeros.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/core.h"
#include "status/status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ls_status_counters_t c;
    int rc = ls_status_counters_parse((const char *) data, size, &c);
    if (rc != 0 && rc != LS_ECORRUPT) abort();
    if (rc && (c.ask_agains || c.inspection_failures)) abort();
    return 0;
}
