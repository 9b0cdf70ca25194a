/* logfmt encoders and the header decoder: the byte layouts of docs/FORMAT.md. */
#include <stdio.h>

#include "core/core.h"
#include "logfmt/internal.h"

uint64_t ls_gen_seed(const uint8_t dbid[LS_DBID_LEN], uint32_t epoch, uint64_t generation)
{
    uint8_t b[LS_DBID_LEN + 4 + 8];
    memcpy(b, dbid, LS_DBID_LEN);
    ls_put32(b + LS_DBID_LEN, epoch);
    ls_put64(b + LS_DBID_LEN + 4, generation);
    return ls_hash64(b, sizeof(b), 0);
}

void ls_gen_header_encode(const ls_gen_header_t *h, uint8_t out[LS_GEN_HEADER_SIZE])
{
    memset(out, 0, LS_GEN_HEADER_SIZE);
    memcpy(out, LS_GEN_MAGIC, 8);
    ls_put16(out + LS__HDR_VERSION, LS_GEN_VERSION);
    ls_put16(out + LS__HDR_SIZE, LS_GEN_HEADER_SIZE);
    memcpy(out + LS__HDR_DBID, h->dbid, LS_DBID_LEN);
    ls_put32(out + LS__HDR_EPOCH, h->epoch);
    ls_put64(out + LS__HDR_GENERATION, h->generation);
    ls_put64(out + LS__HDR_FIRST_LSN, h->first_lsn);
    ls_put64(out + LS__HDR_CREATE_NS, h->create_ns);
    memcpy(out + LS__HDR_PREV_DIGEST, h->prev_digest, LS_DIGEST_SIZE);
    ls_put32(out + LS__HDR_CKSUM, ls_cksum32(out, LS__HDR_CKSUM, 0));
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

#define HFAIL(code, ...)                                                                           \
    do {                                                                                           \
        if (msg) snprintf(msg, msglen, __VA_ARGS__);                                               \
        return code;                                                                               \
    } while (0)

int ls__logfmt_header_check(const uint8_t *buf, size_t len, bool cksum, ls_gen_header_t *out,
                            char *msg, size_t msglen)
{
    if (len < LS_GEN_HEADER_SIZE)
        HFAIL(LS_ETRUNCATED, "header at offset 0: truncated (%zu of %d bytes)", len,
              LS_GEN_HEADER_SIZE);
    if (memcmp(buf, LS_GEN_MAGIC, 8) != 0)
        HFAIL(LS_EBADMAGIC, "header at offset 0: bad magic (not a logship generation)");
    uint16_t version = ls_get16(buf + LS__HDR_VERSION);
    if (version != LS_GEN_VERSION)
        HFAIL(LS_EBADVERSION, "header at offset 0: format version %u (this build reads %d)",
              version, LS_GEN_VERSION);
    uint32_t stored = ls_get32(buf + LS__HDR_CKSUM);
    uint32_t computed = cksum ? ls_cksum32(buf, LS__HDR_CKSUM, 0) : stored;
    if (stored != computed)
        HFAIL(LS_EHDRCKSUM,
              "header at offset 0: checksum mismatch (stored 0x%08x, computed 0x%08x)", stored,
              computed);
    uint16_t hsize = ls_get16(buf + LS__HDR_SIZE);
    uint32_t flags = ls_get32(buf + LS__HDR_FLAGS);
    if (hsize != LS_GEN_HEADER_SIZE || flags != 0)
        HFAIL(LS_EBADVERSION, "header at offset 0: header size %u, flags 0x%x (expected %d, 0)",
              hsize, flags, LS_GEN_HEADER_SIZE);
    if (ls_get32(buf + LS__HDR_RESERVED36) != 0 ||
        !all_zero(buf + LS__HDR_RESERVED96, LS__HDR_CKSUM - LS__HDR_RESERVED96))
        HFAIL(LS_ECORRUPT, "header at offset 0: reserved bytes are not zero");
    ls_gen_header_t h;
    memcpy(h.dbid, buf + LS__HDR_DBID, LS_DBID_LEN);
    h.epoch = ls_get32(buf + LS__HDR_EPOCH);
    h.generation = ls_get64(buf + LS__HDR_GENERATION);
    h.first_lsn = ls_get64(buf + LS__HDR_FIRST_LSN);
    h.create_ns = ls_get64(buf + LS__HDR_CREATE_NS);
    memcpy(h.prev_digest, buf + LS__HDR_PREV_DIGEST, LS_DIGEST_SIZE);
    if (h.epoch == 0 || h.generation == 0)
        HFAIL(LS_ECORRUPT, "header at offset 0: epoch %u, generation %llu (both must be >= 1)",
              h.epoch, (unsigned long long) h.generation);
    if (out) *out = h;
    return 0;
}

int ls_gen_header_decode(const uint8_t *buf, size_t len, ls_gen_header_t *out)
{
    return ls__logfmt_header_check(buf, len, true, out, NULL, 0);
}

size_t ls_record_size(uint32_t key_len, uint32_t value_len)
{
    return (size_t) LS_REC_HEADER_SIZE + key_len + value_len;
}

size_t ls_record_encode(const ls_record_t *r, uint64_t seed, uint8_t *out)
{
    LS_ASSERT(r->key_len <= UINT16_MAX);
    size_t n = ls_record_size(r->key_len, r->value_len);
    LS_ASSERT(n <= LS_GEN_HARD_CAP);
    memset(out, 0, LS_REC_HEADER_SIZE);
    ls_put32(out + LS__REC_LEN, (uint32_t) n);
    out[LS__REC_TYPE] = r->type;
    ls_put16(out + LS__REC_KEY_LEN, (uint16_t) r->key_len);
    ls_put32(out + LS__REC_VALUE_LEN, r->value_len);
    ls_put64(out + LS__REC_LSN, r->lsn);
    ls_put64(out + LS__REC_TXID, r->txid);
    if (r->key_len) memcpy(out + LS_REC_HEADER_SIZE, r->key, r->key_len);
    if (r->value_len) memcpy(out + LS_REC_HEADER_SIZE + r->key_len, r->value, r->value_len);
    ls_put32(out + LS__REC_CKSUM, ls_cksum32(out + 4, n - 4, seed));
    return n;
}

void ls_gen_trailer_encode(const ls_gen_trailer_t *t, uint64_t seed,
                           uint8_t out[LS_GEN_TRAILER_SIZE])
{
    memset(out, 0, LS_GEN_TRAILER_SIZE);
    ls_put32(out + LS__REC_LEN, LS_GEN_TRAILER_SIZE);
    out[LS__REC_TYPE] = LS_REC_TRAILER;
    ls_put64(out + LS__TRL_COUNT, t->record_count);
    ls_put64(out + LS__TRL_LAST_LSN, t->last_lsn);
    ls_put64(out + LS__TRL_PAYLOAD, t->payload_len);
    ls_put64(out + LS__TRL_CLOSE_NS, t->close_ns);
    memcpy(out + LS__TRL_DIGEST, t->digest, LS_DIGEST_SIZE);
    memcpy(out + LS__TRL_MAGIC, LS_TRAILER_MAGIC, 8);
    ls_put32(out + LS__REC_CKSUM, ls_cksum32(out + 4, LS_GEN_TRAILER_SIZE - 4, seed));
}

int ls__logfmt_trailer_check(const uint8_t *p, uint64_t off, uint64_t seed, bool cksum,
                             ls_gen_trailer_t *out, char *msg, size_t msglen)
{
    uint32_t stored = ls_get32(p + LS__REC_CKSUM);
    uint32_t computed = cksum ? ls_cksum32(p + 4, LS_GEN_TRAILER_SIZE - 4, seed) : stored;
    if (stored != computed)
        HFAIL(LS_EBADTRAILER,
              "trailer at offset %llu: checksum mismatch (stored 0x%08x, computed 0x%08x)",
              (unsigned long long) off, stored, computed);
    if (ls_get32(p + LS__REC_LEN) != LS_GEN_TRAILER_SIZE || p[LS__REC_TYPE] != LS_REC_TRAILER ||
        p[LS__REC_FLAGS] != 0 || ls_get16(p + LS__REC_KEY_LEN) != 0 ||
        ls_get32(p + LS__REC_VALUE_LEN) != 0 || ls_get64(p + LS__TRL_RESERVED) != 0 ||
        memcmp(p + LS__TRL_MAGIC, LS_TRAILER_MAGIC, 8) != 0)
        HFAIL(LS_EBADTRAILER,
              "trailer at offset %llu: malformed (length %u, type 0x%02x, bad magic or non-zero "
              "reserved fields)",
              (unsigned long long) off, ls_get32(p + LS__REC_LEN), p[LS__REC_TYPE]);
    if (out) {
        out->record_count = ls_get64(p + LS__TRL_COUNT);
        out->last_lsn = ls_get64(p + LS__TRL_LAST_LSN);
        out->payload_len = ls_get64(p + LS__TRL_PAYLOAD);
        out->close_ns = ls_get64(p + LS__TRL_CLOSE_NS);
        memcpy(out->digest, p + LS__TRL_DIGEST, LS_DIGEST_SIZE);
    }
    return 0;
}

int ls_gen_trailer_decode(const uint8_t *buf, size_t len, uint64_t seed, ls_gen_trailer_t *out)
{
    if (len < LS_GEN_TRAILER_SIZE) return LS_ETRUNCATED;
    return ls__logfmt_trailer_check(buf, 0, seed, true, out, NULL, 0);
}
