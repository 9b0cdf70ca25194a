/*
 * The lag histogram (status.h, LS_STATUS_LAG_*): log-linear buckets, LS_STATUS_LAG_SUB to each
 * power of two from 2^LS_STATUS_LAG_MIN_LOG2 ns (1 µs) to 2^LS_STATUS_LAG_MAX_LOG2 ns (about 69
 * s), one below and one above. A bucket's upper bound is at most 1/16 (6.25 %) above any value in
 * it, so a percentile read as the upper bound of its bucket is at most that much high, never low.
 * The counts run from the start: a reader that takes two snapshots and subtracts them has the
 * exact distribution of the samples between them, whatever their number (the ring of the last
 * 1024 beside it only says what is recent).
 */
#include "status/status.h"

size_t ls_status_lag_bucket(uint64_t ns)
{
    if (ns < (1ull << LS_STATUS_LAG_MIN_LOG2)) return 0;
    unsigned e = 63u - (unsigned) __builtin_clzll(ns);
    if (e >= LS_STATUS_LAG_MAX_LOG2) return LS_STATUS_LAG_BUCKETS - 1;
    unsigned s = (unsigned) (ns >> (e - 4)) & (LS_STATUS_LAG_SUB - 1);
    return 1 + (size_t) (e - LS_STATUS_LAG_MIN_LOG2) * LS_STATUS_LAG_SUB + s;
}

uint64_t ls_status_lag_lower(size_t i)
{
    if (i == 0) return 0;
    if (i >= LS_STATUS_LAG_BUCKETS - 1) return 1ull << LS_STATUS_LAG_MAX_LOG2;
    size_t k = i - 1;
    unsigned e = LS_STATUS_LAG_MIN_LOG2 + (unsigned) (k / LS_STATUS_LAG_SUB);
    return (uint64_t) (LS_STATUS_LAG_SUB + k % LS_STATUS_LAG_SUB) << (e - 4);
}

uint64_t ls_status_lag_upper(size_t i)
{
    return i >= LS_STATUS_LAG_BUCKETS - 1 ? UINT64_MAX : ls_status_lag_lower(i + 1);
}

uint64_t ls_status_lag_percentile(const uint64_t *counts, double p)
{
    uint64_t total = 0, seen = 0;
    for (size_t i = 0; i < LS_STATUS_LAG_BUCKETS; i++)
        total += counts[i];
    if (total == 0) return 0;
    uint64_t rank = (uint64_t) ((double) total * p / 100.0 + 0.999999); /* at least 1 */
    if (rank == 0) rank = 1;
    for (size_t i = 0; i < LS_STATUS_LAG_BUCKETS; i++) {
        seen += counts[i];
        if (seen >= rank) return ls_status_lag_upper(i);
    }
    return UINT64_MAX;
}
