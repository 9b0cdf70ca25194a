/*
 * libFuzzer target for ls_gen_scan: any input, scanned as a closed generation and as an open log.
 * The scan must never read out of bounds, and the two modes must agree on what they share: a
 * closed generation is valid in both, and an open scan never reports more than the input holds.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <logship/logfmt.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_cb(void *ctx, const ls_record_t *r)
{
    uint64_t *sum = ctx;
    /* Touch every byte the scan hands out, so that an out-of-bounds key or value is caught. */
    for (uint32_t i = 0; i < r->key_len; i++)
        *sum += r->key[i];
    for (uint32_t i = 0; i < r->value_len; i++)
        *sum += r->value[i];
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t sum = 0;
    ls_gen_info_t closed, open;
    ls_gen_verdict_t vc, vo;
    ls_gen_expect_t ex_open = {.allow_open = true};
    int rc = ls_gen_scan(data, size, NULL, count_cb, &sum, &closed, &vc);
    int ro = ls_gen_scan(data, size, &ex_open, count_cb, &sum, &open, &vo);
    if (rc != vc.code) abort();
    if (rc == 0 && (ro != 0 || !open.closed)) abort();
    if (ro == 0 && (open.valid_end > size || open.commit_end > open.valid_end)) abort();
    if (rc == 0 && closed.valid_end + LS_GEN_TRAILER_SIZE != size) abort();
    return 0;
}
