/*
 * transport over real loopback sockets: mutual TLS and its refusals, the cipher suites, plaintext
 * only when asked for, and address errors (helpers in transport_test_util.h; compression and flow
 * control in transport_flow_test.c, damage and heartbeat death in transport_damage_test.c).
 */
#include "transport_test_util.h"

/* ---- TLS ----------------------------------------------------------------------------------- */
static bool rtt_known(fx_t *fx)
{
    ls_conn_stats_t a, b;
    ls_conn_stats(fx->cli.c, &a);
    ls_conn_stats(fx->srv.c, &b);
    return a.rtt_last_ns > 0 && b.rtt_last_ns > 0;
}

Test(transport, mutual_tls_frames_flow_both_ways, .timeout = 30)
{
    fx_t fx;
    fx_init(&fx);
    make_certs(&fx);
    tls_pair_ready(&fx);
    cr_assert(ls_conn_is_tls(fx.cli.c) && ls_conn_is_tls(fx.srv.c));
    cr_assert_str_eq(ls_conn_peer_name(fx.cli.c), "target");
    cr_assert_str_eq(ls_conn_peer_name(fx.srv.c), "source");
    cr_assert(ls_h_contains(ls_conn_peer(fx.srv.c), "127.0.0.1:"));
    /* our preference, AES-128-GCM (docs/TLS.md, "Suite"), on both ends */
    cr_assert_str_eq(SSL_CIPHER_standard_name(SSL_get_current_cipher(fx.cli.c->ssl)),
                     "TLS_AES_128_GCM_SHA256");
    cr_assert_str_eq(SSL_CIPHER_standard_name(SSL_get_current_cipher(fx.srv.c->ssl)),
                     "TLS_AES_128_GCM_SHA256");
    fx.cli.frame = fx.srv.frame = 70000;
    fx.cli.to_send = fx.srv.to_send = 3 * MiB;
    cr_assert(run_until(&fx, exchanged, 20000), "exchange: %llu/%llu %llu/%llu",
              (unsigned long long) fx.srv.bytes, (unsigned long long) fx.cli.sent,
              (unsigned long long) fx.cli.bytes, (unsigned long long) fx.srv.sent);
    cr_assert_eq(fx.srv.hash, fx.cli.sent_hash, "client -> server bytes identical");
    cr_assert_eq(fx.cli.hash, fx.srv.sent_hash, "server -> client bytes identical");
    cr_assert(run_until(&fx, rtt_known, 5000), "heartbeats measure the round trip");
    ls_conn_stats_t st;
    ls_conn_stats(fx.cli.c, &st);
    cr_assert_lt(st.rtt_smoothed_ns, 1000 * MS, "loopback RTT is small");
    cr_assert_lt(llabs(st.clock_offset_ns), (long long) (100 * MS), "same clock: offset %lld ns",
                 (long long) st.clock_offset_ns);
    ls_conn_close(fx.cli.c);
    cr_assert(run_until(&fx, both_closed, 5000));
    cr_assert_eq(fx.cli.status, 0);
    cr_assert_eq(fx.srv.status, LS_ECONNRESET, "the server sees the client leave: %s", fx.srv.msg);
    fx_fini(&fx);
}

/* Frames handed over in pieces of uneven sizes, around and across TLS record boundaries, arrive
 * whole and in order (sent at once, gathered into tx; or queued, copied into the frame queue). */
Test(transport, tls_frames_from_pieces, .timeout = 30)
{
    fx_t fx;
    fx_init(&fx);
    make_certs(&fx);
    tls_pair_ready(&fx);
    fx.cli.pieces = fx.srv.pieces = true;
    fx.cli.frame = 200001; /* the last frame is shorter: every rotation of the sizes is seen */
    fx.srv.frame = 16384;
    fx.cli.to_send = 6 * MiB;
    fx.srv.to_send = 1 * MiB;
    cr_assert(run_until(&fx, exchanged, 20000), "exchange: %llu/%llu %llu/%llu",
              (unsigned long long) fx.srv.bytes, (unsigned long long) fx.cli.sent,
              (unsigned long long) fx.cli.bytes, (unsigned long long) fx.srv.sent);
    cr_assert_eq(fx.srv.hash, fx.cli.sent_hash, "client -> server bytes identical");
    cr_assert_eq(fx.cli.hash, fx.srv.sent_hash, "server -> client bytes identical");
    cr_assert_eq(fx.srv.frames, (6 * MiB + 200000) / 200001, "one frame per send");
    ls_conn_close(fx.cli.c);
    cr_assert(run_until(&fx, both_closed, 5000));
    fx_fini(&fx);
}

/* A peer that offers only AES-256-GCM (OpenSSL's default first choice) or only ChaCha20-Poly1305
 * still connects: the other suites stay allowed. */
static void other_suite(const char *suite)
{
    fx_t fx;
    fx_init(&fx);
    make_certs(&fx);
    ls_tls_ctx_t *cli = ctx(&fx, "ca1", "ca1", "source");
    cr_assert_eq(SSL_CTX_set_ciphersuites(cli->ssl_ctx, suite), 1);
    tls_pair(&fx, cli, "source");
    cr_assert(run_until(&fx, both_ready, 10000), "handshake: srv '%s' cli '%s'", fx.srv.msg,
              fx.cli.msg);
    cr_assert_str_eq(SSL_CIPHER_standard_name(SSL_get_current_cipher(fx.srv.c->ssl)), suite);
    fx.cli.frame = fx.srv.frame = 70000;
    fx.cli.to_send = fx.srv.to_send = 1 * MiB;
    cr_assert(run_until(&fx, exchanged, 20000), "exchange with %s", suite);
    cr_assert_eq(fx.srv.hash, fx.cli.sent_hash, "client -> server bytes identical");
    cr_assert_eq(fx.cli.hash, fx.srv.sent_hash, "server -> client bytes identical");
    ls_conn_close(fx.cli.c);
    cr_assert(run_until(&fx, both_closed, 5000));
    fx_fini(&fx);
}

Test(transport, tls_other_suites_allowed, .timeout = 30)
{
    other_suite("TLS_AES_256_GCM_SHA384");
    other_suite("TLS_CHACHA20_POLY1305_SHA256");
}

/* Runs a pair whose client presents cli_ctx; expects the server (and the client) to refuse. */
static void expect_refusal(fx_t *fx, ls_tls_ctx_t *cli_ctx, const char *srv_expects,
                           const char *srv_reason)
{
    cap_t cap;
    cap_start(&cap);
    tls_pair(fx, cli_ctx, srv_expects);
    bool done = run_until(fx, both_closed, 10000);
    char *log = cap_stop(&cap);
    cr_assert(done, "both sides close: srv '%s' cli '%s'", fx->srv.msg, fx->cli.msg);
    cr_assert(!fx->cli.ready, "the refused client never became ready");
    cr_assert(!fx->srv.ready, "the server never accepted it");
    cr_assert_eq(fx->srv.status, LS_EAUTH, "server: %s (%s)", fx->srv.msg,
                 ls_err_name(fx->srv.status));
    cr_assert(ls_h_contains(fx->srv.msg, srv_reason), "server reason: %s", fx->srv.msg);
    cr_assert(ls_h_contains(fx->srv.msg, "127.0.0.1:"), "names the peer: %s", fx->srv.msg);
    cr_assert(fx->cli.status == LS_EAUTH || fx->cli.status == LS_ECONNRESET, "client: %s",
              fx->cli.msg);
    cr_assert(ls_h_contains(log, srv_reason), "logged: %s", log);
    free(log);
}

Test(transport, refuses_certificate_from_another_ca, .timeout = 30)
{
    fx_t fx;
    fx_init(&fx);
    make_certs(&fx);
    /* trusts ca1 (so it would accept the server) but presents a ca2 certificate */
    expect_refusal(&fx, ctx(&fx, "ca1", "ca2", "source"), "source", "unable to get local issuer");
    cr_assert(ls_h_contains(fx.cli.msg, "refused us"), "client learns why: %s", fx.cli.msg);
    fx_fini(&fx);
}

Test(transport, refuses_peer_without_certificate, .timeout = 30)
{
    fx_t fx;
    fx_init(&fx);
    make_certs(&fx);
    expect_refusal(&fx, ctx(&fx, "ca1", "ca1", NULL), "source", "presented no certificate");
    fx_fini(&fx);
}

Test(transport, refuses_certificate_with_wrong_name, .timeout = 30)
{
    fx_t fx;
    fx_init(&fx);
    make_certs(&fx);
    expect_refusal(&fx, ctx(&fx, "ca1", "ca1", "mallory"), "source", "ostname mismatch");
    fx_fini(&fx);
}

/* A listener that serves many sources defers the name to the HELLO: it takes any certificate
 * of its CA (the layer above then checks the announced name), and still refuses other CAs. */
Test(transport, listener_without_expected_name_still_requires_its_ca, .timeout = 30)
{
    fx_t fx;
    fx_init(&fx);
    make_certs(&fx);
    tls_pair(&fx, ctx(&fx, "ca1", "ca1", "mallory"), NULL);
    cr_assert(run_until(&fx, both_ready, 10000), "srv '%s' cli '%s'", fx.srv.msg, fx.cli.msg);
    cr_assert_null(ls_conn_peer_name(fx.srv.c), "no name was checked yet");
    cr_assert(ls_conn_peer_matches(fx.srv.c, "mallory"), "the name HELLO would announce");
    cr_assert(!ls_conn_peer_matches(fx.srv.c, "source"), "a name the certificate lacks");
    cr_assert(!ls_conn_peer_matches(fx.srv.c, "mallor"));
    cr_assert(ls_conn_is_tls(fx.srv.c));
    fx_fini(&fx);

    fx_init(&fx);
    make_certs(&fx);
    expect_refusal(&fx, ctx(&fx, "ca1", "ca2", "source"), NULL, "unable to get local issuer");
    fx_fini(&fx);
}

Test(transport, client_refuses_server_with_wrong_name, .timeout = 30)
{
    fx_t fx;
    fx_init(&fx);
    make_certs(&fx);
    ls_tls_ctx_t *srv_ctx = ctx(&fx, "ca1", "ca1", "mallory");
    ls_tls_ctx_t *cli_ctx = ctx(&fx, "ca1", "ca1", "source");
    ls_conn_opts_t so = base_opts(), co = base_opts();
    so.tls = srv_ctx;
    so.peer_name = "source";
    co.tls = cli_ctx;
    co.peer_name = "target";
    start_pair(&fx, so, co);
    ls_tls_ctx_free(srv_ctx);
    ls_tls_ctx_free(cli_ctx);
    cr_assert(run_until(&fx, both_closed, 10000));
    cr_assert(!fx.cli.ready);
    cr_assert_eq(fx.cli.status, LS_EAUTH, "client: %s", fx.cli.msg);
    cr_assert(ls_h_contains(fx.cli.msg, "ostname mismatch"), "%s", fx.cli.msg);
    cr_assert(ls_h_contains(fx.cli.msg, "expected target"), "%s", fx.cli.msg);
    fx_fini(&fx);
}

/* A misconfiguration: a TLS client against a plaintext listener. Both sides fail with a reason
 * instead of hanging or misreading bytes. */
Test(transport, tls_client_against_plaintext_server_fails_cleanly, .timeout = 30)
{
    fx_t fx;
    fx_init(&fx);
    make_certs(&fx);
    ls_conn_opts_t so = base_opts(), co = base_opts();
    so.insecure_plaintext = true;
    co.tls = ctx(&fx, "ca1", "ca1", "source");
    co.peer_name = "target";
    start_pair(&fx, so, co);
    ls_tls_ctx_free(co.tls);
    cr_assert(run_until(&fx, both_closed, 10000), "srv '%s' cli '%s'", fx.srv.msg, fx.cli.msg);
    cr_assert(!fx.cli.ready);
    cr_assert(fx.srv.status == LS_EPROTO || fx.srv.status == LS_EFRAMETOOBIG ||
                  fx.srv.status == LS_ECONNRESET,
              "server: %s (%s)", fx.srv.msg, ls_err_name(fx.srv.status));
    cr_assert(fx.cli.status == LS_ETLS || fx.cli.status == LS_ECONNRESET, "client: %s (%s)",
              fx.cli.msg, ls_err_name(fx.cli.status));
    fx_fini(&fx);
}

Test(transport, plaintext_only_when_asked_for, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx);
    ls_conn_opts_t o = base_opts();
    ls_conn_t *c = NULL;
    cr_assert_eq(ls_conn_connect(&fx.loop, "127.0.0.1", 9, &o, &c), LS_EINVAL,
                 "neither TLS nor insecure_plaintext");
    o.insecure_plaintext = true;
    cr_assert_eq(ls_conn_connect(&fx.loop, "not-an-ip", 9, &o, &c), LS_EINVAL);
    cr_assert_null(c, "a failed call hands nothing out");
    fx_fini(&fx);
}

Test(transport, address_errors_are_logship_codes_with_their_own_words, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx);
    ls_conn_opts_t o = base_opts();
    o.insecure_plaintext = true;
    ls_listener_t *a = NULL, *b = NULL;
    cr_assert_eq(ls_listener_start(&fx.loop, "127.0.0.1", 0, &o, NULL, NULL, &a), 0);
    int rc = ls_listener_start(&fx.loop, "127.0.0.1", ls_listener_port(a), &o, NULL, NULL, &b);
    cr_assert_eq(rc, LS_EADDRINUSE, "a second listener on the port: %s", ls_err_name(rc));
    cr_assert_str_eq(ls_strerror(rc), "address already in use");
    cr_assert(ls_err_is_transient(rc), "the port may be freed: retrying can succeed");
    /* 192.0.2.1 (TEST-NET-1) is on no interface of this host: binding to it is refused at once,
     * no packet is sent. */
    o.bind_addr = "192.0.2.1";
    ls_conn_t *c = NULL;
    rc = ls_conn_connect(&fx.loop, "127.0.0.1", ls_listener_port(a), &o, &c);
    cr_assert_eq(rc, LS_EADDRNOTAVAIL, "bind to a foreign address: %s", ls_err_name(rc));
    cr_assert_null(c, "a failed call hands nothing out");
    ls_listener_close(a, NULL);
    fx_fini(&fx);
}
