/*
 * libFuzzer target for <copy>.announced (engine/node/announced.c), what a copy's source last
 * announced: any input, NUL-terminated, is parsed by ls_node_announced_parse (which the copy calls
 * on the file's text). It must never crash or read out of bounds; a refusal (the line it names,
 * from 1) leaves every field zero; an accepted text formats back to one that parses to the same.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/announced.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    ls_role_announced_t a, b;
    int line = ls_node_announced_parse(text, &a);
    free(text);
    static const ls_role_announced_t zero;
    if (line < 0 || (line > 0 && memcmp(&a, &zero, sizeof(a)) != 0)) abort();
    if (line > 0) return 0;
    char again[512];
    int n = ls_node_announced_format(&a, "src", "copy", again, sizeof(again));
    if (n <= 0 || (size_t) n >= sizeof(again)) abort();
    if (ls_node_announced_parse(again, &b) != 0 || memcmp(&a, &b, sizeof(a)) != 0) abort();
    return 0;
}
