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
 * a message (lowercase, real values) into msg when msg is not NULL. */
int ls__logfmt_header_check(const uint8_t *buf, size_t len, ls_gen_header_t *out, char *msg,
                            size_t msglen);

/* Validates the 96 trailer bytes at p (checksum with seed, length, type, reserved fields, magic)
 * and decodes them into out (may be NULL); off is only used in msg. 0 or LS_EBADTRAILER. */
int ls__logfmt_trailer_check(const uint8_t *p, uint64_t off, uint64_t seed, ls_gen_trailer_t *out,
                             char *msg, size_t msglen);

#endif
