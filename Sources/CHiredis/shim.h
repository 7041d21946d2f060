#ifndef FRESHET_CHIREDIS_SHIM_H
#define FRESHET_CHIREDIS_SHIM_H
// hiredict 1.3 (Debian bookworm-backports: libhiredict-dev), the maintained fork of hiredis with TLS.
// See docs/redis-topologies.md for why.
#include <hiredict/hiredict.h>
#include <hiredict/hiredict_ssl.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

/// Creates a client TLS context: TLS 1.2 or later, the peer's certificate verified (unless `verify` is 0) against
/// `ca` (a PEM file) or the system's trust store, and an optional client certificate and key (PEM).
/// Returns NULL with a message in `error` when a file cannot be used.
static inline SSL_CTX *freshet_tls_context(const char *ca, const char *cert, const char *key, int verify,
                                           char *error, size_t error_size) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(error, error_size, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (ca != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
            snprintf(error, error_size, "cannot read the CA certificates in %s: %s", ca,
                     ERR_reason_error_string(ERR_peek_last_error()));
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(error, error_size, "cannot read the system's trust store");
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (cert != NULL) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
            snprintf(error, error_size, "cannot read the client certificate %s: %s", cert,
                     ERR_reason_error_string(ERR_peek_last_error()));
            SSL_CTX_free(ctx);
            return NULL;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key != NULL ? key : cert, SSL_FILETYPE_PEM) != 1
            || SSL_CTX_check_private_key(ctx) != 1) {
            snprintf(error, error_size, "cannot use the client key %s: %s", key != NULL ? key : cert,
                     ERR_reason_error_string(ERR_peek_last_error()));
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    return ctx;
}

static inline void freshet_tls_context_free(SSL_CTX *ctx) { SSL_CTX_free(ctx); }

/// Starts TLS on a connected context. `name` is the name to verify (a host name or an IP address; SNI is sent for
/// host names). Returns 0 on success, or -1 with a message in `error` (the certificate's verification error when
/// that was the cause). On success the connection owns the SSL object (freed by redictFree).
static inline int freshet_tls_start(redictContext *c, SSL_CTX *ctx, const char *name, int verify,
                                    char *error, size_t error_size) {
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL) {
        snprintf(error, error_size, "cannot create a TLS session");
        return -1;
    }
    if (name != NULL && name[0] != '\0') {
        unsigned char addr[16];
        int is_ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
        if (!is_ip) SSL_set_tlsext_host_name(ssl, name);
        if (verify) {
            X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
            int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name) : X509_VERIFY_PARAM_set1_host(param, name, 0);
            if (ok != 1) {
                snprintf(error, error_size, "cannot verify the name %s", name);
                SSL_free(ssl);
                return -1;
            }
        }
    }
    if (redictInitiateSSL(c, ssl) != REDICT_OK) {
        long result = SSL_get_verify_result(ssl);
        if (verify && result != X509_V_OK) {
            snprintf(error, error_size, "TLS handshake failed: certificate verify failed: %s",
                     X509_verify_cert_error_string(result));
        } else {
            snprintf(error, error_size, "TLS handshake failed: %s", c->errstr);
        }
        SSL_free(ssl);
        return -1;
    }
    return 0;
}
#endif
