/*
 * tls: the TLS 1.3 driver. OpenSSL runs over one BIO of ours (no memory BIOs, no copies of
 * theirs): it reads the bytes of the last socket read where libuv put them (rd_buf, consumed as
 * the plain driver consumes them), and it writes its records into the connection's stage
 * (send.c), which goes to the socket in one write after each SSL_write; what the socket does not
 * take at once is queued in the stage's own buffer. Both sides present a certificate and verify the
 * peer's chain against the configured CA and its subjectAltName DNS name against the expected peer
 * name.
 *
 * On the client, the connection becomes ready only when the server has shown it accepted our
 * certificate: in TLS 1.3 the client's certificate travels in its last flight, after which the
 * client's handshake is complete; the server's first message after verifying it (a session
 * ticket, caught by the new-session callback, or application data) is that proof.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "transport/internal.h"

/* Our order of preference; the server takes the client's first that it allows. */
#define LS__TLS_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

/* The client's proof of acceptance; the session itself is not kept. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    (void) sess;
    ls_conn_t *c = SSL_get_app_data(ssl);
    if (c) c->tls_accepted = true;
    return 0;
}

/* ---- the BIO between OpenSSL and the connection ------------------------------------------ */
static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

/* Records out: into the stage; never blocks (the stage grows; send.c bounds what is written). */
static int bio_write(BIO *b, const char *buf, int len)
{
    ls_conn_t *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0) return 0;
    return ls__stage_add(c, buf, (size_t) len) ? -1 : len;
}

/* Bytes in: from what the last socket read left in rd_buf; none is "wait", not end of stream. */
static int bio_read(BIO *b, char *out, int len)
{
    ls_conn_t *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0) return 0;
    if (c->rd_len == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = LS_MIN((size_t) len, c->rd_len);
    memcpy(out, c->rd_buf + c->rd_off, n);
    c->rd_off += n;
    c->rd_len -= n;
    return (int) n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void) num;
    (void) ptr;
    ls_conn_t *c = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH: /* records go out after each SSL call (ls__stage_flush) */
        return 1;
    case BIO_CTRL_PENDING:
        return c ? (long) c->rd_len : 0;
    default: /* no EOF, no kTLS, no duplication */
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void bio_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "logship conn");
    if (m && (!BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) ||
              !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create))) {
        BIO_meth_free(m);
        m = NULL;
    }
    bio_method = m; /* kept for the process's life */
}

static int ctx_fail(SSL_CTX *ctx, char *err, size_t errlen, const char *what, const char *file)
{
    char buf[256] = "";
    unsigned long e = ERR_get_error();
    if (e) ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, errlen, "%s %s: %s", what, file ? file : "", buf);
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return LS_ETLS;
}

int ls_tls_ctx_new(const ls_tls_opts_t *o, ls_tls_ctx_t **out, char *err, size_t errlen)
{
    if (!o->ca_file || (o->cert_file && !o->key_file)) {
        snprintf(err, errlen, "TLS needs a CA file, and a key file with a certificate");
        return LS_EINVAL;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (!ctx) return ctx_fail(NULL, err, errlen, "cannot create a TLS context", NULL);
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    /* AES-128-GCM first (docs/TLS.md, "Suite"): cheaper per byte than OpenSSL's default
     * AES-256-GCM on this hardware; the other two stay allowed for peers that prefer them. */
    if (SSL_CTX_set_ciphersuites(ctx, LS__TLS_SUITES) != 1)
        return ctx_fail(ctx, err, errlen, "cannot set the TLS 1.3 suites", LS__TLS_SUITES);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
    if (SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1)
        return ctx_fail(ctx, err, errlen, "cannot load CA file", o->ca_file);
    if (o->cert_file) {
        if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1)
            return ctx_fail(ctx, err, errlen, "cannot load certificate", o->cert_file);
        if (SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1)
            return ctx_fail(ctx, err, errlen, "cannot load key", o->key_file);
        if (SSL_CTX_check_private_key(ctx) != 1)
            return ctx_fail(ctx, err, errlen, "key does not match certificate", o->key_file);
    } else {
        ls_log(LS_LOG_WARN, "transport", "TLS context without a certificate: peers will refuse it");
    }
    ls_tls_ctx_t *t = calloc(1, sizeof(*t));
    if (!t) {
        SSL_CTX_free(ctx);
        return LS_ENOMEM;
    }
    t->ssl_ctx = ctx;
    *out = t;
    return 0;
}

void ls_tls_ctx_free(ls_tls_ctx_t *t)
{
    if (!t) return;
    SSL_CTX_free(t->ssl_ctx);
    free(t);
}

/* Moves the records OpenSSL produced to the socket. */
static int flush(ls_conn_t *c)
{
    return ls__stage_flush(c);
}

/* Closes the connection with the reason OpenSSL gives for err (an SSL_get_error value). */
static int tls_error(ls_conn_t *c, int err, const char *during)
{
    flush(c); /* an alert for the peer, if OpenSSL wrote one */
    long vr = SSL_get_verify_result(c->ssl);
    if (vr != X509_V_OK)
        return ls__conn_fail(c, LS_EAUTH, "refused the certificate of %s (expected %s): %s",
                             c->peer, c->peer_name ? c->peer_name : "any name of our CA",
                             X509_verify_cert_error_string(vr));
    unsigned long e = ERR_get_error();
    char why[256] = "";
    if (e) ERR_error_string_n(e, why, sizeof(why));
    ERR_clear_error();
    if (e && ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
        return ls__conn_fail(c, LS_EAUTH, "refused %s: it presented no certificate (%s)", c->peer,
                             why);
    if (e && ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET)
        return ls__conn_fail(c, LS_EAUTH, "%s refused us during %s: %s", c->peer, during, why);
    if (err == SSL_ERROR_SYSCALL || !e)
        return ls__conn_fail(c, LS_ETLS, "%s with %s failed: unexpected end of stream", during,
                             c->peer);
    return ls__conn_fail(c, LS_ETLS, "%s with %s failed: %s", during, c->peer, why);
}

/* Client: ready once the server showed it accepted us. */
static void maybe_ready(ls_conn_t *c)
{
    if (c->tls_done && (!c->is_client || c->tls_accepted)) ls__conn_ready(c);
}

static int handshake(ls_conn_t *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
    if (r == 1 || err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        int rc = flush(c);
        if (rc) return rc;
    }
    if (r == 1) {
        c->tls_done = true;
        maybe_ready(c);
        return 0;
    }
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return 0;
    return tls_error(c, err, "TLS handshake");
}

static int tls_start(ls_conn_t *c)
{
    pthread_once(&bio_once, bio_method_init);
    c->ssl = SSL_new(c->ssl_ctx);
    c->bio = bio_method ? BIO_new(bio_method) : NULL;
    if (!c->ssl || !c->bio) {
        BIO_free(c->bio);
        c->bio = NULL;
        return ls__conn_fail(c, LS_ENOMEM, "cannot set up TLS with %s", c->peer);
    }
    BIO_set_data(c->bio, c);
    SSL_set_bio(c->ssl, c->bio, c->bio); /* one reference, for both directions */
    SSL_set_app_data(c->ssl, c);
    SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (c->peer_name && SSL_set1_host(c->ssl, c->peer_name) != 1)
        return ls__conn_fail(c, LS_EINVAL, "bad expected peer name '%s'", c->peer_name);
    if (c->is_client) { /* check_opts made sure a client has a peer name */
        SSL_set_tlsext_host_name(c->ssl, c->peer_name);
        SSL_set_connect_state(c->ssl);
    } else {
        SSL_set_accept_state(c->ssl);
    }
    return handshake(c);
}

/* The bytes stay in rd_buf for the BIO: reading stops whenever the pump leaves some there. */
static int tls_on_read(ls_conn_t *c, const uint8_t *buf, size_t len)
{
    LS_ASSERT(c->rd_len == 0 && buf == c->rd_buf);
    (void) buf;
    c->rd_off = 0;
    c->rd_len = len;
    return c->tls_done ? 0 : handshake(c);
}

static int tls_pull(ls_conn_t *c, uint8_t *out, size_t cap, size_t *got)
{
    *got = 0;
    if (!c->tls_done || cap == 0) return 0;
    int r;
    size_t left;
    do { /* a record that was no data (a ticket) may leave bytes in rd_buf: go on with them */
        left = c->rd_len;
        ERR_clear_error();
        r = SSL_read(c->ssl, out, (int) LS_MIN(cap, (size_t) INT_MAX));
    } while (r <= 0 && SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ && c->rd_len &&
             c->rd_len < left);
    if (r > 0) {
        c->tls_accepted = true; /* data from the server: it accepted us */
        maybe_ready(c);
        *got = (size_t) r;
        return 0;
    }
    int err = SSL_get_error(c->ssl, r);
    int rc = flush(c); /* post-handshake messages may need answers */
    if (rc) return rc;
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        maybe_ready(c);
        return 0;
    }
    if (err == SSL_ERROR_ZERO_RETURN)
        return ls__conn_fail(c, LS_ECONNRESET, "%s closed the TLS session", c->peer);
    return tls_error(c, err, "TLS read");
}

static int tls_write(ls_conn_t *c, const uint8_t *buf, size_t len)
{
    /* room for the records at once: 16 KiB of plaintext each, + 22 bytes (header, type, tag) */
    if (ls__stage_reserve(c, len + (len / 16384 + 1) * 32))
        return ls__conn_fail(c, LS_ENOMEM, "out of memory encrypting %zu bytes", len);
    ERR_clear_error();
    int r = SSL_write(c->ssl, buf, (int) len);
    if (r <= 0) return tls_error(c, SSL_get_error(c->ssl, r), "TLS write");
    return flush(c);
}

/* Last words: close_notify on a clean close; written only if the socket takes them at once. */
static void tls_bye(ls_conn_t *c)
{
    if (!c->ssl) return;
    if (c->close_status == 0 && c->tls_done) SSL_shutdown(c->ssl);
    ls__stage_bye(c);
    ERR_clear_error();
}

static void tls_free(ls_conn_t *c)
{
    SSL_free(c->ssl); /* frees the BIO */
    SSL_CTX_free(c->ssl_ctx);
}

const ls__driver_t ls__driver_tls = {
    .name = "tls",
    .start = tls_start,
    .on_read = tls_on_read,
    .pull = tls_pull,
    .write = tls_write,
    .bye = tls_bye,
    .free = tls_free,
};
