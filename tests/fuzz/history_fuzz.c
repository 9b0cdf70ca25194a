/*
 * libFuzzer target for logs/history (engine/layout/history.c), read by the source and by the role
 * file's loader: any input, NUL-terminated, is parsed by ls_layout_history_parse (what
 * ls_layout_history_read calls on the file's text). It must never crash, leak or read out of
 * bounds; a refusal names the file; what it accepts keeps the format's order (epochs from 1
 * strictly increasing, first generations from 1 never decreasing) and maps every generation to an
 * epoch it lists.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "layout/layout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    ls_layout_hist_t *h = NULL;
    size_t n = 0;
    char err[512];
    memset(err, 'x', sizeof(err));
    int rc = ls_layout_history_parse("fuzz/history", text, &h, &n, err, sizeof(err));
    free(text);
    if (rc) {
        if (!memchr(err, '\0', sizeof(err)) || strncmp(err, "fuzz/history", 12) != 0) abort();
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (h[i].epoch == 0 || h[i].first_gen == 0) abort();
        if (i && (h[i].epoch <= h[i - 1].epoch || h[i].first_gen < h[i - 1].first_gen)) abort();
        /* The generation an epoch starts at belongs to it or to a later epoch starting there. */
        if (ls_layout_history_epoch_at(h, n, h[i].first_gen) < h[i].epoch) abort();
    }
    free(h);
    return 0;
}
