/*
 * genbuild: builds log generations in memory for tests (valid ones, and damaged ones on purpose).
 *
 * Lifecycle: ls_h_gen_new() with the header fields, then transactions: ls_h_gen_put() /
 * ls_h_gen_del() add records to the open transaction (started implicitly, txid = last + 1) and
 * ls_h_gen_commit() ends it with a COMMIT. ls_h_gen_close() appends the trailer (digest over
 * header + records); ls_h_gen_bytes() exposes the buffer at any point (an open log when not
 * closed). ls_h_gen_free() releases it. ls_h_gen_build() does all of it in one call from a list.
 * Raw appends (ls_h_gen_raw) write any record, valid or not, to build damaged generations.
 * Records' LSNs are dense from first_lsn. The builder aborts the test on allocation failure.
 *
 * Threading: a builder belongs to one thread.
 */
#ifndef LS_TEST_GENBUILD_H
#define LS_TEST_GENBUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <logship/logfmt.h>

/* out = "<dir>/<the closed name of generation gen of epoch>" with the default prefix (E00), as
 * a database's logs/ holds it; the test fails when the name cannot be made. */
void ls_h_gen_path(char *out, size_t len, const char *dir, uint32_t epoch, uint64_t gen);

/* Fixed times written by the builder, so that builds are byte-for-byte reproducible. */
#define LS_H_GEN_CREATE_NS 1795000000000000000ull /* 2026-11-18T11:06:40Z */
#define LS_H_GEN_CLOSE_NS  1795000001000000000ull /* one second later */

typedef struct ls_h_gen ls_h_gen_t;

/* Header fields of the generation to build; prev_digest NULL means zeros. first_txid is the txid
 * of the first transaction (0 means 1). */
typedef struct {
    uint8_t dbid[LS_DBID_LEN];
    uint32_t epoch;
    uint64_t generation;
    uint64_t first_lsn;
    const uint8_t *prev_digest;
    uint64_t first_txid;
} ls_h_gen_spec_t;

/* Fills spec with dbid 00 01 02 .. 0f, epoch 1, the given generation and first LSN. */
void ls_h_gen_spec_default(ls_h_gen_spec_t *spec, uint64_t generation, uint64_t first_lsn);

ls_h_gen_t *ls_h_gen_new(const ls_h_gen_spec_t *spec);
/* ls_h_gen_new of ls_h_gen_spec_default's spec: the generation, its first LSN. */
ls_h_gen_t *ls_h_gen_default(uint64_t generation, uint64_t first_lsn);
void ls_h_gen_free(ls_h_gen_t *g); /* NULL is a no-op */

/* Records of the open transaction (begun implicitly). key_len 1..LS_KEY_MAX. */
void ls_h_gen_put(ls_h_gen_t *g, const void *key, size_t key_len, const void *val, size_t val_len);
void ls_h_gen_del(ls_h_gen_t *g, const void *key, size_t key_len);
/* Ends the open transaction with a COMMIT record (an empty transaction if none is open). */
void ls_h_gen_commit(ls_h_gen_t *g);
/* Appends r as is (its lsn/txid/type too), checksummed with seed (0: this generation's seed);
 * the builder's LSN and txid counters follow r. For damaged generations. */
void ls_h_gen_raw(ls_h_gen_t *g, const ls_record_t *r, uint64_t seed);
/* Appends the trailer (no more records after it). */
void ls_h_gen_close(ls_h_gen_t *g);

/* The bytes built so far (borrowed, valid until the next call on g) and their length. */
const uint8_t *ls_h_gen_bytes(const ls_h_gen_t *g, size_t *len);
/* A malloc'd copy of the bytes built so far. */
uint8_t *ls_h_gen_copy(const ls_h_gen_t *g, size_t *len);
/* Number of records appended, and the offset of record i (0-based) in the buffer. */
size_t ls_h_gen_count(const ls_h_gen_t *g);
size_t ls_h_gen_offset(const ls_h_gen_t *g, size_t i);
/* Offset just past the last COMMIT (or the header): where an open log's last whole
 * transaction ends. */
size_t ls_h_gen_commit_end(const ls_h_gen_t *g);
/* SHA-256 of header + records (valid after ls_h_gen_close) and the record seed. */
const uint8_t *ls_h_gen_digest(const ls_h_gen_t *g);
uint64_t ls_h_gen_seed(const ls_h_gen_t *g);

/* Damage that only the digest sees: XORs the first value byte of record `rec` (0-based; it
 * must have a value) of the closed generation in bytes[0, len) with mask and reseals that
 * record's checksum with the generation's seed (from its header), as someone editing the file
 * with the format at hand would. The trailer, its digest included, is left as it was. Returns
 * the offset of the byte changed; the test fails when the bytes do not hold such a record. */
size_t ls_h_gen_change_resealed(uint8_t *bytes, size_t len, size_t rec, uint8_t mask);

/* One operation of a transaction for ls_h_gen_build: type LS_REC_PUT or LS_REC_DEL,
 * NUL-terminated key and value (value ignored for DEL). */
typedef struct {
    uint8_t type;
    const char *key;
    const char *value;
} ls_h_op_t;

typedef struct {
    const ls_h_op_t *ops;
    size_t n;
} ls_h_txn_t;

/* Builds a closed generation from txns (each ends with a COMMIT); returns a malloc'd buffer,
 * its length in *len and its digest in digest (may be NULL). */
uint8_t *ls_h_gen_build(const ls_h_gen_spec_t *spec, const ls_h_txn_t *txns, size_t ntxns,
                        size_t *len, uint8_t digest[LS_DIGEST_SIZE]);

#endif
