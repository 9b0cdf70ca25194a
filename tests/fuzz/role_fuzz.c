/*
 * libFuzzer target for the role file (<db>/role, engine/role/state.c): any input is parsed through
 * ls_role_parse, the in-memory twin of ls_role_load. It must never crash, leak or read out of
 * bounds (a NUL byte, a negative number and an unknown key are refused); a refusal leaves a
 * NUL-terminated message naming the file; an accepted file has a known role, an epoch from 1 and
 * NUL-terminated names.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "role/role.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ls_role_state_t st;
    char err[512];
    memset(err, 'x', sizeof(err));
    int rc = ls_role_parse("fuzz/role", (const char *) data, size, &st, err, sizeof(err));
    if (rc) {
        if (!memchr(err, '\0', sizeof(err)) || strncmp(err, "fuzz/role", 9) != 0) abort();
        return 0;
    }
    if (st.role < LS_ROLE_ACTIVE || st.role > LS_ROLE_DIVERGED || st.epoch == 0) abort();
    if (!memchr(st.follows, '\0', sizeof(st.follows)) ||
        !memchr(st.reason, '\0', sizeof(st.reason)))
        abort();
    return 0;
}
