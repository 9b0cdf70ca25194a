/*
 * logfmt: the log generation format (pure: bytes in, bytes out; no files, no threads).
 *
 * A generation is one file: a 128-byte header, records, and, once closed, a 96-byte trailer.
 * docs/FORMAT.md documents every byte and the measured cost of the two checksums:
 *  - each record carries a 32-bit checksum: XXH3-64 seeded with ls_gen_seed(database id, epoch,
 *    generation), folded to 32 bits, so a stale record left from another generation never
 * validates;
 *  - the trailer carries the SHA-256 digest of header + records; the next generation's header
 *    carries it as prev_digest, which chains the log (divergence and tamper detection).
 * All integers little-endian, fixed width.
 *
 * Lifecycle: encoders write into caller buffers. ls_gen_scan() walks a generation held in memory,
 * calls a callback per record, and fills a verdict naming the first bad offset; it never logs,
 * never exits and never trusts a length from the bytes (like PostgreSQL's xlogreader), so the
 * inspector, the writer's recovery and `logship dump` share it. ls_gen_stream_*() is the same
 * walk over bytes that arrive in pieces (the passive checks a generation while receiving it);
 * ls_gen_scan is one feed of it, so both give the same verdicts.
 *
 * Threading: all functions are reentrant; one stream belongs to one thread at a time.
 */
#ifndef LOGSHIP_LOGFMT_H
#define LOGSHIP_LOGFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LS_GEN_MAGIC          "LSHPGEN\x1a" /* 8 bytes at offset 0 */
#define LS_GEN_VERSION        1
#define LS_GEN_HEADER_SIZE    128
#define LS_REC_HEADER_SIZE    32
#define LS_GEN_TRAILER_SIZE   96
#define LS_TRAILER_MAGIC      "LSHPEND\x1a" /* 8 bytes at trailer offset 80 */
#define LS_DBID_LEN           16
#define LS_DIGEST_SIZE        32
#define LS_KEY_MAX            511                    /* LMDB's default maximum key size */
#define LS_GEN_HARD_CAP       (256u * 1024u * 1024u) /* no generation file may exceed this */
#define LS_GEN_DEFAULT_SIZE   (1024u * 1024u)        /* target size: 1 MiB as in Exchange 2007 */
#define LS_GEN_PREFIX_DEFAULT "E00"
#define LS_GEN_PREFIX_MAX     16
/* "<prefix>-<epoch 8 hex>-<generation 16 hex>.log" */
#define LS_GEN_NAME_MAX (LS_GEN_PREFIX_MAX + 1 + 8 + 1 + 16 + 4 + 1)

typedef enum {
    LS_REC_PUT = 1,       /* key, value */
    LS_REC_DEL = 2,       /* key, no value */
    LS_REC_COMMIT = 3,    /* no key, no value: ends the transaction txid */
    LS_REC_TRAILER = 0x7f /* the trailer's type byte; never a record */
} ls_rec_type_t;

typedef struct {
    uint8_t dbid[LS_DBID_LEN];           /* database id */
    uint32_t epoch;                      /* lineage number, 1 at creation */
    uint64_t generation;                 /* 1, 2, 3 ... */
    uint64_t first_lsn;                  /* LSN of the first record in this generation */
    uint64_t create_ns;                  /* creation time, UTC ns */
    uint8_t prev_digest[LS_DIGEST_SIZE]; /* digest of generation-1; zeros for generation 1 */
} ls_gen_header_t;

typedef struct {
    uint8_t type;         /* ls_rec_type_t */
    uint64_t lsn;         /* record number, dense: each record is previous + 1 */
    uint64_t txid;        /* transaction number, increasing */
    const uint8_t *key;   /* borrowed; valid while the scanned buffer is */
    uint32_t key_len;     /* bytes, <= LS_KEY_MAX */
    const uint8_t *value; /* borrowed */
    uint32_t value_len;   /* bytes */
} ls_record_t;

typedef struct {
    uint64_t record_count;          /* records between header and trailer */
    uint64_t last_lsn;              /* LSN of the last record; first_lsn-1 when empty */
    uint64_t payload_len;           /* bytes of records between header and trailer */
    uint64_t close_ns;              /* close time, UTC ns */
    uint8_t digest[LS_DIGEST_SIZE]; /* SHA-256 of bytes [0, 128 + payload_len) */
} ls_gen_trailer_t;

/* Seed of the per-record checksum for one generation. */
uint64_t ls_gen_seed(const uint8_t dbid[LS_DBID_LEN], uint32_t epoch, uint64_t generation);

/* Encoders (pure). ls_record_size() is the encoded size of a record with these lengths. */
void ls_gen_header_encode(const ls_gen_header_t *h, uint8_t out[LS_GEN_HEADER_SIZE]);
size_t ls_record_size(uint32_t key_len, uint32_t value_len);
/* Encodes r into out (ls_record_size() bytes) and returns that size. */
size_t ls_record_encode(const ls_record_t *r, uint64_t seed, uint8_t *out);
void ls_gen_trailer_encode(const ls_gen_trailer_t *t, uint64_t seed,
                           uint8_t out[LS_GEN_TRAILER_SIZE]);

/* Decodes and validates a header (magic, version, size, checksum). 0 or LS_EBADMAGIC,
 * LS_EBADVERSION, LS_EHDRCKSUM, LS_ETRUNCATED.
 * Checked in that order, then (with a valid checksum): header_size != 128 or non-zero flags
 * -> LS_EBADVERSION; non-zero reserved bytes, epoch 0 or generation 0 -> LS_ECORRUPT. */
int ls_gen_header_decode(const uint8_t *buf, size_t len, ls_gen_header_t *out);

/* Decodes and validates a trailer (the LS_GEN_TRAILER_SIZE bytes at buf) of the generation whose
 * record seed is seed (ls_gen_seed): checksum, length, type, reserved fields and magic. It cannot
 * compare the counts and the digest with the records: ls_gen_scan does. 0, LS_ETRUNCATED
 * (len < LS_GEN_TRAILER_SIZE) or LS_EBADTRAILER. */
int ls_gen_trailer_decode(const uint8_t *buf, size_t len, uint64_t seed, ls_gen_trailer_t *out);

/* File names. ls_gen_name returns 0 or LS_EINVAL (prefix too long or with '-' or '/').
 * ls_gen_name_parse returns 0 when name is exactly a closed name with this prefix. */
int ls_gen_name(char *out, size_t outlen, const char *prefix, uint32_t epoch, uint64_t generation);
int ls_gen_name_parse(const char *name, const char *prefix, uint32_t *epoch, uint64_t *generation);

/* What a scan expects; zero fields are not checked. */
typedef struct {
    const uint8_t *dbid;        /* expected database id, or NULL */
    uint32_t epoch;             /* expected epoch, or 0 */
    uint64_t generation;        /* expected generation, or 0 */
    uint64_t first_lsn;         /* expected first LSN, or 0 */
    const uint8_t *prev_digest; /* expected prev_digest (the chain), or NULL */
    /* Digest of bytes [0, len - LS_GEN_TRAILER_SIZE) already computed by the caller (the receiver
     * hashes while receiving); the scan then compares it instead of hashing again. NULL: hash. */
    const uint8_t *known_digest;
    bool allow_open; /* the buffer is a current (open) log: no trailer expected */
} ls_gen_expect_t;

/* What a scan found (filled as far as the scan got, also on error). */
typedef struct {
    bool header_ok;                 /* header decoded and validated */
    ls_gen_header_t header;         /* valid when header_ok */
    bool closed;                    /* a valid trailer ends the buffer */
    ls_gen_trailer_t trailer;       /* valid when closed */
    uint64_t record_count;          /* valid records walked */
    uint64_t last_lsn;              /* LSN of the last valid record (first_lsn-1 when none) */
    uint64_t valid_end;             /* offset just past the last valid record (or header) */
    uint64_t commit_end;            /* offset just past the last valid COMMIT record (or header) */
    uint64_t commit_lsn;            /* LSN of that COMMIT (first_lsn-1 when none) */
    uint64_t commit_count;          /* COMMIT records walked */
    uint64_t last_txid;             /* txid of the last COMMIT, 0 when none */
    uint8_t digest[LS_DIGEST_SIZE]; /* digest of [0, valid_end) when closed (computed or known) */
    uint64_t record_checksums;      /* record checksums this scan computed (0 when trusted) */
    uint64_t hashed;                /* bytes this scan fed to SHA-256 (0 with a known digest) */
} ls_gen_info_t;

/* The first problem found: code 0 means valid. msg names the offset and what is wrong. */
typedef struct {
    int code;        /* 0 or LS_E* */
    uint64_t offset; /* first bad offset */
    char msg[256];   /* lowercase, real values, no final period */
} ls_gen_verdict_t;

/* Called for each valid record in order, before the trailer is checked. A non-zero return stops
 * the scan and is returned by ls_gen_scan (the verdict stays 0). */
typedef int (*ls_record_cb)(void *ctx, const ls_record_t *r);

/* Walks buf[0, len): header, records, trailer. Returns verdict->code (0 when valid), or the
 * callback's non-zero return. With expect->allow_open a missing trailer is not an error: the scan
 * stops at the first invalid record (a torn tail) and reports where (info->valid_end,
 * info->commit_end); verdict->code is 0 and info->closed false. cb and info may be NULL. */
/* Expectation codes (verdict offset 0): dbid -> LS_EDBID, epoch -> LS_ELINEAGE, generation ->
 * LS_EGAP, first_lsn -> LS_ELSNORDER, prev_digest -> LS_ELINEAGE. Records: LS_ETRUNCATED,
 * LS_EBADRECORD (lengths, type, flags, key length, txid), LS_ERECCKSUM, LS_ELSNORDER; trailer:
 * LS_EBADTRAILER, LS_EDIGEST; none at the end: LS_ENOTRAILER; len > LS_GEN_HARD_CAP: LS_ETOOBIG.
 * With allow_open the scan's stop reason stays in verdict->msg and verdict->offset although
 * verdict->code is 0 (empty when a valid trailer closed the buffer). */
int ls_gen_scan(const uint8_t *buf, size_t len, const ls_gen_expect_t *expect, ls_record_cb cb,
                void *ctx, ls_gen_info_t *info, ls_gen_verdict_t *verdict);

/* The incremental scanner: ls_gen_scan's checks, in the same order and with the same verdicts,
 * over bytes fed in pieces of any size (a record may straddle pieces; it is assembled in a buffer
 * of the stream's own). Lifecycle: ls_gen_stream_new() -> ls_gen_stream_begin() ->
 * ls_gen_stream_feed()... -> ls_gen_stream_end() -> begin again or ls_gen_stream_free(). */
typedef struct ls_gen_stream ls_gen_stream_t;

/* begin flag: the bytes are known intact (a whole-file check passed): no header, record or
 * trailer checksum is computed, every structural check still runs; the digest is compared only
 * when expect->known_digest is given (nothing is hashed). */
#define LS_GEN_STREAM_TRUSTED 1u

/* NULL on allocation failure. ls_gen_stream_free(NULL) is a no-op. */
ls_gen_stream_t *ls_gen_stream_new(void);
void ls_gen_stream_free(ls_gen_stream_t *s);
/* Starts a new generation. expect (may be NULL) and what it points to are borrowed until
 * ls_gen_stream_end; expect->known_digest is read only there, so a caller hashing the bytes
 * itself may fill it in at the end. Without a known digest (and not trusted) the stream hashes. */
void ls_gen_stream_begin(ls_gen_stream_t *s, const ls_gen_expect_t *expect, unsigned flags);
/* Feeds the next len bytes (borrowed for the call). cb (may be NULL) is called for each valid
 * record; the record points into data or into the stream's buffer and is valid for the call only.
 * Returns 0 while nothing is wrong, the verdict's code once something is (the stream then ignores
 * further bytes), or the callback's non-zero return (which stops the stream). */
int ls_gen_stream_feed(ls_gen_stream_t *s, const uint8_t *data, size_t len, ls_record_cb cb,
                       void *ctx);
/* True once the header has been fed and is valid (checksum and fields; *out filled), even when
 * an expectation failed, so a caller can tell whose generation is arriving. */
bool ls_gen_stream_header(const ls_gen_stream_t *s, ls_gen_header_t *out);
/* No more bytes: finishes the checks (truncation, bytes after the trailer, open transaction,
 * digest) and returns what ls_gen_scan would have returned for the concatenated bytes, filling
 * info and verdict (either may be NULL). */
int ls_gen_stream_end(ls_gen_stream_t *s, ls_gen_info_t *info, ls_gen_verdict_t *verdict);

/* Reads path (at most LS_GEN_HARD_CAP bytes) and scans it as above. A file that cannot be read
 * gets verdict code LS_EIO/LS_ENOENT/LS_ETOOBIG with the path in msg.
 * The records passed to cb point into a buffer freed before ls_gen_scan_file returns. */
int ls_gen_scan_file(const char *path, const ls_gen_expect_t *expect, ls_record_cb cb, void *ctx,
                     ls_gen_info_t *info, ls_gen_verdict_t *verdict);

#endif
