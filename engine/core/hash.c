/* The two checksums of the generation format: XXH3 (records) and SHA-256 (generation digest). */
#include <stdlib.h>

#include <openssl/evp.h>
#include <xxhash.h>

#include "core/core.h"

uint64_t ls_hash64(const void *buf, size_t len, uint64_t seed)
{
    return XXH3_64bits_withSeed(buf, len, seed);
}

uint32_t ls_cksum32(const void *buf, size_t len, uint64_t seed)
{
    uint64_t h = XXH3_64bits_withSeed(buf, len, seed);
    return (uint32_t) (h ^ (h >> 32));
}

struct ls_sha256 {
    EVP_MD_CTX *ctx;
};

ls_sha256_t *ls_sha256_new(void)
{
    ls_sha256_t *h = calloc(1, sizeof(*h));
    if (!h) return NULL;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
        return NULL;
    }
    return h;
}

void ls_sha256_reset(ls_sha256_t *h)
{
    LS_CHECK(EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) == 1);
}

void ls_sha256_update(ls_sha256_t *h, const void *buf, size_t len)
{
    LS_CHECK(EVP_DigestUpdate(h->ctx, buf, len) == 1);
}

void ls_sha256_peek(const ls_sha256_t *h, uint8_t out[LS_DIGEST_LEN])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    LS_CHECK(c != NULL);
    LS_CHECK(EVP_MD_CTX_copy_ex(c, h->ctx) == 1);
    unsigned int n = 0;
    LS_CHECK(EVP_DigestFinal_ex(c, out, &n) == 1 && n == LS_DIGEST_LEN);
    EVP_MD_CTX_free(c);
}

void ls_sha256_final(ls_sha256_t *h, uint8_t out[LS_DIGEST_LEN])
{
    unsigned int n = 0;
    LS_CHECK(EVP_DigestFinal_ex(h->ctx, out, &n) == 1 && n == LS_DIGEST_LEN);
    ls_sha256_reset(h);
}

void ls_sha256_free(ls_sha256_t *h)
{
    if (!h) return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

void ls_sha256(const void *buf, size_t len, uint8_t out[LS_DIGEST_LEN])
{
    unsigned int n = 0;
    LS_CHECK(EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL) == 1 && n == LS_DIGEST_LEN);
}

struct ls_seal {
    XXH3_state_t *st;
};

ls_seal_t *ls_seal_new(void)
{
    ls_seal_t *h = calloc(1, sizeof(*h));
    if (!h) return NULL;
    if (!(h->st = XXH3_createState())) {
        free(h);
        return NULL;
    }
    ls_seal_reset(h);
    return h;
}

void ls_seal_reset(ls_seal_t *h)
{
    LS_CHECK(XXH3_128bits_reset(h->st) == XXH_OK);
}

void ls_seal_update(ls_seal_t *h, const void *buf, size_t len)
{
    LS_CHECK(XXH3_128bits_update(h->st, buf, len) == XXH_OK);
}

void ls_seal_final(const ls_seal_t *h, uint8_t out[LS_SEAL_LEN])
{
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits_digest(h->st));
    memcpy(out, c.digest, LS_SEAL_LEN);
}

void ls_seal_free(ls_seal_t *h)
{
    if (!h) return;
    XXH3_freeState(h->st);
    free(h);
}

void ls_seal(const void *buf, size_t len, uint8_t out[LS_SEAL_LEN])
{
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits(buf, len));
    memcpy(out, c.digest, LS_SEAL_LEN);
}

void ls_hex(const uint8_t *buf, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[buf[i] >> 4];
        out[2 * i + 1] = digits[buf[i] & 15];
    }
    out[2 * n] = '\0';
}
