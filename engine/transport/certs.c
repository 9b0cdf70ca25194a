/*
 * certs: test/demo CA and node certificates through the OpenSSL C API (see certs.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/core.h"
#include "transport/certs.h"

#define CA_DAYS   3650 /* validity of the CA certificate, days */
#define NODE_DAYS 825  /* validity of a node certificate, days */

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    unsigned long e = ERR_get_error();
    if (e && n >= 0 && (size_t) n < errlen) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        snprintf(err + n, errlen - (size_t) n, ": %s", buf);
    }
    ERR_clear_error();
    return rc;
}

static bool valid_dns_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 253 || name[0] == '.' || name[0] == '-' || name[n - 1] == '.') return false;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char) *p) && *p != '-' && *p != '.') return false;
    return strstr(name, "..") == NULL;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Writes what the PEM writer put into a memory BIO to path, durably, with mode. */
static int write_bio(BIO *mem, const char *path, mode_t mode, char *err, size_t errlen)
{
    char *data;
    long len = BIO_get_mem_data(mem, &data);
    int rc = ls_write_file_durable(path, data, (size_t) len);
    if (rc) return fail(err, errlen, rc, "cannot write %s: %s", path, ls_strerror(rc));
    if (chmod(path, mode) != 0)
        return fail(err, errlen, ls_err_from_errno(errno), "cannot chmod %s", path);
    return 0;
}

static int write_key(EVP_PKEY *key, const char *path, char *err, size_t errlen)
{
    BIO *mem = BIO_new(BIO_s_mem());
    if (!mem || !PEM_write_bio_PrivateKey(mem, key, NULL, NULL, 0, NULL, NULL)) {
        BIO_free(mem);
        return fail(err, errlen, LS_ETLS, "cannot encode key for %s", path);
    }
    int rc = write_bio(mem, path, 0600, err, errlen);
    BIO_free(mem);
    return rc;
}

static int write_cert(X509 *crt, const char *path, char *err, size_t errlen)
{
    BIO *mem = BIO_new(BIO_s_mem());
    if (!mem || !PEM_write_bio_X509(mem, crt)) {
        BIO_free(mem);
        return fail(err, errlen, LS_ETLS, "cannot encode certificate for %s", path);
    }
    int rc = write_bio(mem, path, 0644, err, errlen);
    BIO_free(mem);
    return rc;
}

/* Adds one v3 extension given in openssl.cnf syntax; issuer may equal subject. */
static bool add_ext(X509 *crt, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, crt, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext) return false;
    int ok = X509_add_ext(crt, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1;
}

/* A certificate for key with subject CN=cn, valid for days, not signed yet. */
static X509 *new_cert(EVP_PKEY *key, const char *cn, long days)
{
    X509 *crt = X509_new();
    if (!crt) return NULL;
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    if (RAND_bytes(serial, sizeof(serial)) != 1) goto fail;
    serial[0] &= 0x7f; /* positive */
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    X509_NAME *name = X509_get_subject_name(crt);
    if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(crt)) || !X509_set_version(crt, 2) ||
        !X509_gmtime_adj(X509_getm_notBefore(crt), -3600) ||
        !X509_gmtime_adj(X509_getm_notAfter(crt), days * 86400L) || !X509_set_pubkey(crt, key) ||
        !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *) "logship", -1,
                                    -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) cn, -1, -1,
                                    0))
        goto fail;
    BN_free(bn);
    return crt;
fail:
    BN_free(bn);
    X509_free(crt);
    return NULL;
}

int ls_certs_make_ca(const char *dir, char *err, size_t errlen)
{
    char crt_path[4096], key_path[4096];
    snprintf(crt_path, sizeof(crt_path), "%s/ca.pem", dir);
    snprintf(key_path, sizeof(key_path), "%s/ca.key", dir);
    int rc = ls_mkdir_p(dir);
    if (rc) return fail(err, errlen, rc, "cannot create %s: %s", dir, ls_strerror(rc));
    if (exists(crt_path) || exists(key_path))
        return fail(err, errlen, LS_EEXIST, "%s already holds a CA; remove it first", dir);
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *crt = key ? new_cert(key, "logship test CA", CA_DAYS) : NULL;
    rc = LS_ETLS;
    if (!crt || !X509_set_issuer_name(crt, X509_get_subject_name(crt)) ||
        !add_ext(crt, crt, NID_basic_constraints, "critical,CA:TRUE") ||
        !add_ext(crt, crt, NID_key_usage, "critical,keyCertSign,cRLSign") ||
        !add_ext(crt, crt, NID_subject_key_identifier, "hash") ||
        !X509_sign(crt, key, EVP_sha256())) {
        fail(err, errlen, rc, "cannot create the CA certificate");
        goto out;
    }
    rc = write_key(key, key_path, err, errlen);
    if (rc == 0) rc = write_cert(crt, crt_path, err, errlen);
out:
    X509_free(crt);
    EVP_PKEY_free(key);
    return rc;
}

/* Loads dir/ca.pem and dir/ca.key. */
static int load_ca(const char *dir, X509 **crt, EVP_PKEY **key, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/ca.pem", dir);
    FILE *f = fopen(path, "r");
    if (!f) return fail(err, errlen, LS_ENOENT, "no CA certificate %s (run with --ca first)", path);
    *crt = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    snprintf(path, sizeof(path), "%s/ca.key", dir);
    f = fopen(path, "r");
    if (!f) return fail(err, errlen, LS_ENOENT, "no CA key %s (run with --ca first)", path);
    *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!*crt || !*key) return fail(err, errlen, LS_ETLS, "cannot read the CA in %s", dir);
    return 0;
}

int ls_certs_make_node(const char *dir, const char *name, char *err, size_t errlen)
{
    if (!valid_dns_name(name))
        return fail(err, errlen, LS_EINVAL, "node name '%s' is not a DNS name", name);
    char crt_path[4096], key_path[4096], san[300];
    snprintf(crt_path, sizeof(crt_path), "%s/%s.pem", dir, name);
    snprintf(key_path, sizeof(key_path), "%s/%s.key", dir, name);
    snprintf(san, sizeof(san), "DNS:%s", name);
    if (exists(crt_path) || exists(key_path))
        return fail(err, errlen, LS_EEXIST, "%s already exists; remove it first", crt_path);
    X509 *ca = NULL, *crt = NULL;
    EVP_PKEY *ca_key = NULL, *key = NULL;
    int rc = load_ca(dir, &ca, &ca_key, err, errlen);
    if (rc) goto out;
    rc = LS_ETLS;
    key = EVP_EC_gen("P-256");
    crt = key ? new_cert(key, name, NODE_DAYS) : NULL;
    if (!crt || !X509_set_issuer_name(crt, X509_get_subject_name(ca)) ||
        !add_ext(crt, ca, NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(crt, ca, NID_key_usage, "critical,digitalSignature") ||
        !add_ext(crt, ca, NID_ext_key_usage, "serverAuth,clientAuth") ||
        !add_ext(crt, ca, NID_subject_alt_name, san) ||
        !add_ext(crt, ca, NID_authority_key_identifier, "keyid:always") ||
        !X509_sign(crt, ca_key, EVP_sha256())) {
        fail(err, errlen, rc, "cannot create the certificate of %s", name);
        goto out;
    }
    rc = write_key(key, key_path, err, errlen);
    if (rc == 0) rc = write_cert(crt, crt_path, err, errlen);
out:
    X509_free(crt);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    return rc;
}
