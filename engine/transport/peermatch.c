/* Checking a verified peer certificate against a name learned after the handshake (a listener
 * accepts any certificate of its CA; the HELLO then names the node, which must match). */
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "transport/internal.h"

bool ls_conn_peer_matches(const ls_conn_t *c, const char *name)
{
    if (!c->ssl || !name || !*name) return false;
    X509 *cert = SSL_get1_peer_certificate(c->ssl);
    if (!cert) return false;
    bool ok =
        SSL_get_verify_result(c->ssl) == X509_V_OK &&
        X509_check_host(cert, name, strlen(name), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1;
    X509_free(cert);
    return ok;
}
