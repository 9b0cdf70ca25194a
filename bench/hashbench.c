/*
 * hashbench: what the generation format's two checks cost on this machine.
 *
 * Measures ls_cksum32 (XXH3-64 seeded, folded) over ~200-byte records and over 1 MiB, SHA-256
 * (ls_sha256, OpenSSL EVP) over 1 MiB, and a full ls_gen_scan of a 1 MiB generation of ~200-byte
 * records (checksums + digest + checks). Each sample times one pass over 1 MiB; a figure is the
 * median (and minimum) of RUNS samples, so that a burst of work on the other vCPU (this guest's
 * two vCPUs share execution units) moves few samples instead of every average. Buffers are
 * faulted in before timing (first touch costs ~1 GB/s in this guest). Run from a Release build:
 *   cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release -DLS_TESTS=OFF && build-rel/bin/hashbench
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <logship/logfmt.h>

#include "core/core.h"

#define RUNS 51 /* samples per figure; each sample times one pass over 1 MiB */
#define MIB  (1024u * 1024u)
/* bytes: a typical record (32-byte header + ~16-byte key + ~150-byte value) */
#define REC_LEN 200

static volatile uint64_t sink; /* keeps results alive */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

/* Sorts v; returns the median (v[0] is then the minimum). */
static uint64_t median(uint64_t *v, int n)
{
    qsort(v, (size_t) n, sizeof(*v), cmp_u64);
    return v[n / 2];
}

static void report(const char *what, uint64_t *v, double unit_ns, const char *unit, double bytes)
{
    double med = (double) median(v, RUNS) / unit_ns, min = (double) v[0] / unit_ns;
    double div = strcmp(unit, "ns/record") ? 1e6 : 1.0;
    printf("%-34s %9.3f %-9s (min %8.3f) %7.0f MB/s (best %6.0f)\n", what, med / div, unit,
           min / div, bytes * 1e3 / med, bytes * 1e3 / min);
}

/* ns per record: checksums of every 200-byte record of a 1 MiB buffer, one pass. */
static uint64_t run_cksum_records(const uint8_t *buf, size_t nrec)
{
    uint64_t t0 = ls_mono_ns();
    uint32_t acc = 0;
    for (size_t i = 0; i < nrec; i++)
        acc ^= ls_cksum32(buf + i * REC_LEN + 4, REC_LEN - 4, 0x1234 + i);
    sink += acc;
    return ls_mono_ns() - t0;
}

static uint64_t run_cksum_mib(const uint8_t *buf)
{
    uint64_t t0 = ls_mono_ns();
    sink += ls_cksum32(buf, MIB, t0);
    return ls_mono_ns() - t0;
}

static uint64_t run_sha_mib(const uint8_t *buf)
{
    uint8_t d[LS_DIGEST_LEN];
    uint64_t t0 = ls_mono_ns();
    ls_sha256(buf, MIB, d);
    sink += d[0];
    return ls_mono_ns() - t0;
}

/* Builds a closed generation of ~200-byte records filling about 1 MiB; returns its length. */
static size_t build_gen(uint8_t *out, size_t cap, size_t *nrec)
{
    ls_gen_header_t h = {.epoch = 1, .generation = 7, .first_lsn = 1};
    ls_gen_header_encode(&h, out);
    uint64_t seed = ls_gen_seed(h.dbid, h.epoch, h.generation);
    uint8_t val[REC_LEN - LS_REC_HEADER_SIZE - 16];
    char key[17];
    size_t off = LS_GEN_HEADER_SIZE, n = 0;
    uint64_t lsn = 1;
    while (off + 2 * REC_LEN + LS_GEN_TRAILER_SIZE < cap) {
        memset(val, (int) n, sizeof(val));
        snprintf(key, sizeof(key), "k%015zu", n);
        ls_record_t r = {.type = LS_REC_PUT,
                         .lsn = lsn++,
                         .txid = n + 1,
                         .key = (const uint8_t *) key,
                         .key_len = 16,
                         .value = val,
                         .value_len = sizeof(val)};
        off += ls_record_encode(&r, seed, out + off);
        ls_record_t c = {.type = LS_REC_COMMIT, .lsn = lsn++, .txid = n + 1};
        off += ls_record_encode(&c, seed, out + off);
        n++;
    }
    ls_gen_trailer_t t = {
        .record_count = 2 * n, .last_lsn = lsn - 1, .payload_len = off - LS_GEN_HEADER_SIZE};
    ls_sha256(out, off, t.digest);
    ls_gen_trailer_encode(&t, seed, out + off);
    *nrec = 2 * n;
    return off + LS_GEN_TRAILER_SIZE;
}

static uint64_t run_scan(const uint8_t *gen, size_t len)
{
    ls_gen_verdict_t v;
    uint64_t t0 = ls_mono_ns();
    if (ls_gen_scan(gen, len, NULL, NULL, NULL, NULL, &v) != 0) {
        fprintf(stderr, "hashbench: generated generation does not scan: %s\n", v.msg);
        exit(1);
    }
    return ls_mono_ns() - t0;
}

int main(void)
{
    uint8_t *buf = malloc(MIB), *gen = malloc(MIB);
    if (!buf || !gen) return 1;
    for (size_t i = 0; i < MIB; i++)
        buf[i] = (uint8_t) (i * 131u + (i >> 9));
    size_t nrec = MIB / REC_LEN, gen_recs;
    size_t gen_len = build_gen(gen, MIB, &gen_recs);
    uint64_t rec[RUNS], ck[RUNS], sha[RUNS], scan[RUNS];
    /* Warm up: fault in, fill caches, let the CPU clock up. */
    run_cksum_records(buf, nrec);
    run_sha_mib(buf);
    run_scan(gen, gen_len);
    for (int r = 0; r < RUNS; r++) {
        rec[r] = run_cksum_records(buf, nrec);
        ck[r] = run_cksum_mib(buf);
        sha[r] = run_sha_mib(buf);
        scan[r] = run_scan(gen, gen_len);
    }
    printf("hashbench: median and minimum of %d samples, MB = 10^6 bytes\n", RUNS);
    report("ls_cksum32, 200-byte records", rec, (double) nrec, "ns/record", REC_LEN - 4);
    report("ls_cksum32, 1 MiB", ck, 1.0, "ms/MiB", MIB);
    report("ls_sha256, 1 MiB", sha, 1.0, "ms/MiB", MIB);
    report("ls_gen_scan, 1 MiB generation", scan, 1.0, "ms/gen", (double) gen_len);
    printf("(the generation holds %zu records in %zu bytes)\n", gen_recs, gen_len);
    free(buf);
    free(gen);
    return 0;
}
