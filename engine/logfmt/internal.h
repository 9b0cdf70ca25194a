/*
 * logfmt internals shared by the module's own files (encode.c, name.c, scan.c); not public.
 *
 * Lifecycle: none (pure functions). Threading: reentrant.
 */
#ifndef LS_LOGFMT_INTERNAL_H
#define LS_LOGFMT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <logship/logfmt.h>

#include "core/core.h"

/* Header field offsets (docs/FORMAT.md). */
#define LS__HDR_VERSION     8
#define LS__HDR_SIZE        10
#define LS__HDR_FLAGS       12
#define LS__HDR_DBID        16
#define LS__HDR_EPOCH       32
#define LS__HDR_RESERVED36  36
#define LS__HDR_GENERATION  40
#define LS__HDR_FIRST_LSN   48
#define LS__HDR_CREATE_NS   56
#define LS__HDR_PREV_DIGEST 64
#define LS__HDR_RESERVED96  96
#define LS__HDR_CKSUM       124

/* Record header and trailer field offsets. */
#define LS__REC_CKSUM     0
#define LS__REC_LEN       4
#define LS__REC_TYPE      8
#define LS__REC_FLAGS     9
#define LS__REC_KEY_LEN   10
#define LS__REC_VALUE_LEN 12
#define LS__REC_LSN       16
#define LS__REC_TXID      24
#define LS__TRL_COUNT     16
#define LS__TRL_LAST_LSN  24
#define LS__TRL_PAYLOAD   32
#define LS__TRL_CLOSE_NS  40
#define LS__TRL_DIGEST    48
#define LS__TRL_MAGIC     80
#define LS__TRL_RESERVED  88

/* Decodes and validates the header in buf[0, len) like ls_gen_header_decode(); on error writes
 * a message (lowercase, real values) into msg when msg is not NULL. cksum false skips the
 * checksum (bytes already proven intact: LS_GEN_STREAM_TRUSTED); every other check runs. */
int ls__logfmt_header_check(const uint8_t *buf, size_t len, bool cksum, ls_gen_header_t *out,
                            char *msg, size_t msglen);

/* Validates the 96 trailer bytes at p (checksum with seed unless !cksum, length, type, reserved
 * fields, magic) and decodes them into out (may be NULL); off is only used in msg. 0 or
 * LS_EBADTRAILER. */
int ls__logfmt_trailer_check(const uint8_t *p, uint64_t off, uint64_t seed, bool cksum,
                             ls_gen_trailer_t *out, char *msg, size_t msglen);

/* The incremental scanner's state (stream.c). Public callers use it through ls_gen_stream_new();
 * ls_gen_scan keeps one on its stack (ls__gen_stream_init / ls__gen_stream_release). */
struct ls_gen_stream {
    const ls_gen_expect_t *ex; /* expectations, borrowed until end (never NULL) */
    unsigned flags;            /* LS_GEN_STREAM_* */
    ls_gen_info_t info;        /* what was walked so far */
    ls_gen_verdict_t v;        /* the first problem (sticky) */
    int phase;                 /* what the next unit is: header, record or trailer, done */
    bool fatal;                /* the failure is not a torn tail: allow_open does not mask it */
    int cbrc;                  /* a callback's non-zero return: the walk stopped */
    uint64_t seed;             /* per-record checksum seed, once the header is in */
    uint64_t off;              /* stream offset of the next unit */
    uint64_t fed;              /* bytes fed in all */
    uint64_t after;            /* bytes fed after the trailer */
    bool in_txn;               /* records seen since the last COMMIT */
    uint64_t txn;              /* txid of the open transaction when in_txn */
    ls_gen_trailer_t trl;      /* the trailer, once its fields and counts are checked */
    uint64_t trl_off;          /* its offset */
    bool hashing;              /* the stream computes the digest (sha is ready) */
    ls_sha256_t *sha;          /* digest state, kept across begins; NULL until first needed */
    const uint8_t *run;        /* validated bytes not yet fed to sha (contiguous) */
    size_t run_len;            /* their length */
    uint8_t *carry;            /* a unit straddling feeds, assembled */
    size_t carry_len;          /* bytes in carry */
    size_t carry_cap;          /* capacity of carry */
};

/* Sets up s for a scan (no allocation); release with ls__gen_stream_release. */
void ls__gen_stream_init(struct ls_gen_stream *s, const ls_gen_expect_t *expect, unsigned flags);
void ls__gen_stream_release(struct ls_gen_stream *s);

#endif
