/*
 * certs: a throw-away certificate authority and node certificates for tests and demos
 * (`logship certs`, docs/TLS.md). Production deployments bring their own PKI; the transport only
 * needs PEM files: a CA bundle, a node certificate whose subjectAltName carries the node's DNS
 * name, and its key.
 *
 * Files, in one directory:
 *   ca.pem, ca.key       the CA: EC P-256 key, self-signed cert (CA:TRUE, keyCertSign), 10 years
 *   NAME.pem, NAME.key   a node: EC P-256 key, cert signed by the CA with subjectAltName DNS:NAME,
 *                        CN=NAME, extendedKeyUsage serverAuth + clientAuth (a node is both), 825
 * days Keys are written with mode 0600, certificates 0644; each file is written durably (temporary
 * file, fsync, rename). Existing files are never overwritten (LS_EEXIST): replacing a CA would
 * orphan the node certificates it signed.
 *
 * Everything goes through the OpenSSL C API (no openssl command line). These functions do file I/O
 * and are meant for tools and test set-up, never for the event loop. Thread-safe (no shared state).
 */
#ifndef LS_TRANSPORT_CERTS_H
#define LS_TRANSPORT_CERTS_H

#include <stddef.h>

/* Creates dir/ca.pem and dir/ca.key (dir is created if missing). Returns 0 or an LS_E* code with
 * a message in err (errlen bytes): LS_EEXIST, LS_ETLS (OpenSSL failed), I/O errors. */
int ls_certs_make_ca(const char *dir, char *err, size_t errlen);
/* Creates dir/NAME.pem and dir/NAME.key signed by dir/ca.pem + dir/ca.key. name must be a DNS
 * name (letters, digits, '-', '.'; 1..253 chars). Returns 0 or LS_EINVAL (bad name), LS_ENOENT
 * (no CA in dir), LS_EEXIST, LS_ETLS, I/O errors, with a message in err. */
int ls_certs_make_node(const char *dir, const char *name, char *err, size_t errlen);

#endif
