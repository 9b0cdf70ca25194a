/* node: HELLO admission without sockets (engine/node/admit.c): the version negotiated, and who
 * may ship and seed (docs/CONFIG.md, "Who may ship and seed"), a seed's client as one of our
 * targets, a ship connection's as a source, by the name its certificate carries. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "harness.h"
#include "node/node.h"

/* node-a ships db1 to node-b (whose certificate carries b.example) and copies db2 from node-c
 * (c.example); node-d has no section. */
#define CONF(tls)                                                                                  \
    "[node]\nname = node-a\ndata_dir = /var/lib/ls\n" tls "[listen]\naddress = 127.0.0.1:7401\n"   \
    "[target node-b]\nnetwork = repl 10.1.0.2:7401\npeer_name = b.example\n"                       \
    "[source node-c]\nnetwork = repl 10.1.0.3:7401\npeer_name = c.example\n"                       \
    "[database db1]\nrole = active\ntargets = node-b\n"                                            \
    "[database db2]\nrole = passive\nsource = node-c\n"
#define TLS       "[tls]\nca = /c/ca.pem\ncert = /c/a.pem\nkey = /c/a.key\n"
#define PLAINTEXT "[tls]\ninsecure_plaintext = true\n"

/* The configuration text, loaded through a file of a scratch directory removed at once. */
static ls_config_t *load(const char *text)
{
    char *dir = ls_h_tmpdir("node_admit"), path[512], err[512];
    snprintf(path, sizeof(path), "%s/node.conf", dir);
    cr_assert_eq(ls_h_write_file(path, text, strlen(text)), 0);
    ls_config_t *cfg = NULL;
    int rc = ls_config_load(path, &cfg, err, sizeof(err));
    ls_h_rmtree_free(dir);
    cr_assert_eq(rc, 0, "%s", err);
    return cfg;
}

/* A certificate carrying exactly one name; counts how often it is asked. */
typedef struct {
    const char *name;
    int asked;
} cert_t;

static bool carries(const void *ctx, const char *name)
{
    cert_t *c = (cert_t *) ctx;
    c->asked++;
    return c->name && !strcmp(c->name, name);
}

static ls_proto_hello_t hello(const char *node, ls_proto_purpose_t purpose)
{
    ls_proto_hello_t h = {.version_min = LS_PROTO_VERSION_MIN,
                          .version_max = LS_PROTO_VERSION_MAX,
                          .purpose = purpose,
                          .node = ls_proto_str(node)};
    return h;
}

static int admit(const ls_config_t *cfg, cert_t *cert, const ls_proto_hello_t *h,
                 ls_proto_choice_t *choice, ls_frame_t *refusal, char *msg, size_t msglen)
{
    ls_node_peer_cert_t pc = {.addr = "10.9.9.9:5555", .carries = carries, .ctx = cert};
    return ls_node_hello_admit(cfg, &pc, h, choice, refusal, msg, msglen);
}

Test(node_admit, cert_name_is_the_sections_peer_name_or_the_node_name)
{
    ls_config_t *cfg = load(CONF(TLS));
    cr_assert_str_eq(ls_node_cert_name(cfg, "node-b", true), "b.example");
    cr_assert_str_eq(ls_node_cert_name(cfg, "node-c", false), "c.example");
    cr_assert_str_eq(ls_node_cert_name(cfg, "node-b", false), "node-b"); /* no [source node-b] */
    cr_assert_str_eq(ls_node_cert_name(cfg, "node-d", true), "node-d");
    ls_config_free(cfg);
}

Test(node_admit, seed_client_is_admitted_as_a_target_by_its_peer_name)
{
    ls_config_t *cfg = load(CONF(TLS));
    ls_proto_hello_t h = hello("node-b", LS_PURPOSE_SEED);
    cert_t cert = {.name = "b.example"};
    ls_proto_choice_t choice;
    ls_frame_t refusal;
    char msg[256] = "";
    cr_assert_eq(admit(cfg, &cert, &h, &choice, &refusal, msg, sizeof(msg)), 0, "%s", msg);
    cr_assert_eq(choice.version, LS_PROTO_VERSION_MAX);
    cr_assert_eq(cert.asked, 1);
    ls_config_free(cfg);
}

Test(node_admit, certificate_named_like_the_section_is_not_enough)
{
    ls_config_t *cfg = load(CONF(TLS));
    ls_proto_hello_t h = hello("node-b", LS_PURPOSE_SEED);
    cert_t cert = {.name = "node-b"}; /* [target node-b] says b.example */
    ls_proto_choice_t choice;
    ls_frame_t refusal;
    char msg[256] = "";
    cr_assert_eq(admit(cfg, &cert, &h, &choice, &refusal, msg, sizeof(msg)), LS_EAUTH);
    cr_assert_str_eq(msg, "10.9.9.9:5555 says it is node node-b, whose certificate must carry "
                          "b.example ([target node-b] peer_name): its certificate does not");
    cr_assert_eq(refusal.type, LS_FRAME_ERROR);
    cr_assert_eq(refusal.error.code, LS_EAUTH);
    cr_assert_eq(refusal.error.message.ptr, (const void *) msg);
    cr_assert_eq(refusal.error.message.len, strlen(msg));
    ls_config_free(cfg);
}

Test(node_admit, ship_connection_is_admitted_as_a_source)
{
    ls_config_t *cfg = load(CONF(TLS));
    ls_proto_choice_t choice;
    ls_frame_t refusal;
    char msg[256] = "";
    /* node-c ships to us: [source node-c] peer_name */
    ls_proto_hello_t h = hello("node-c", LS_PURPOSE_SHIP);
    cert_t cc = {.name = "c.example"};
    cr_assert_eq(admit(cfg, &cc, &h, &choice, &refusal, msg, sizeof(msg)), 0, "%s", msg);
    /* node-b is a target, not a source: shipping here, it must show its own name */
    h = hello("node-b", LS_PURPOSE_SHIP);
    cert_t cb = {.name = "b.example"};
    cr_assert_eq(admit(cfg, &cb, &h, &choice, &refusal, msg, sizeof(msg)), LS_EAUTH);
    cr_assert_str_eq(msg, "10.9.9.9:5555 says it is node node-b: its certificate does not carry "
                          "that name");
    cb.name = "node-b";
    cr_assert_eq(admit(cfg, &cb, &h, &choice, &refusal, msg, sizeof(msg)), 0, "%s", msg);
    ls_config_free(cfg);
}

/* The features a plaintext server chooses for node's HELLO of purpose offering features, up to
 * protocol version_max (admitted: asserted). */
static uint32_t chosen(const char *node, ls_proto_purpose_t purpose, uint32_t features,
                       uint32_t version_max)
{
    ls_config_t *cfg = load(CONF(PLAINTEXT));
    ls_proto_choice_t choice;
    ls_frame_t refusal;
    char msg[256] = "";
    cert_t cert = {.name = NULL};
    ls_proto_hello_t h = hello(node, purpose);
    h.features = features;
    h.version_max = (uint16_t) version_max;
    cr_assert_eq(admit(cfg, &cert, &h, &choice, &refusal, msg, sizeof(msg)), 0, "%s", msg);
    ls_config_free(cfg);
    return choice.features;
}

/* LS_FEAT_APPLY goes with block mode on a ship connection: accepted with LS_FEAT_BLOCK, stripped
 * without it (a version 4 peer, or one that did not offer block mode), never on a seed one. */
Test(node_admit, apply_is_accepted_only_with_block_mode_on_a_ship_connection)
{
    const uint32_t both = LS_FEAT_BLOCK | LS_FEAT_APPLY, v = LS_PROTO_VERSION_MAX;
    cr_assert_eq(chosen("node-c", LS_PURPOSE_SHIP, LS_FEAT_CKSUM | both, v) & both, both);
    cr_assert_eq(chosen("node-c", LS_PURPOSE_SHIP, LS_FEAT_CKSUM | LS_FEAT_APPLY, v) & both, 0u,
                 "no block mode offered");
    cr_assert_eq(chosen("node-c", LS_PURPOSE_SHIP, LS_FEAT_CKSUM | both, 4) & both, 0u,
                 "no block mode before version 5");
    cr_assert_eq(chosen("node-c", LS_PURPOSE_SEED, LS_FEAT_CKSUM | both, v) & both, 0u);
}

/* XXH3-128 as the seed stream's check is accepted on a seed connection that offers it (any
 * version: it changes no layout), never on a ship connection. */
Test(node_admit, seed_xxh_is_accepted_only_on_a_seed_connection)
{
    const uint32_t xxh = LS_FEAT_SEEDXXH, v = LS_PROTO_VERSION_MAX;
    cr_assert_eq(chosen("node-b", LS_PURPOSE_SEED, LS_FEAT_CKSUM | xxh, v) & xxh, xxh);
    cr_assert_eq(chosen("node-b", LS_PURPOSE_SEED, LS_FEAT_CKSUM, v) & xxh, 0u,
                 "an older client: SHA-256");
    cr_assert_eq(chosen("node-c", LS_PURPOSE_SHIP, LS_FEAT_CKSUM | xxh, v) & xxh, 0u);
}

Test(node_admit, plaintext_admits_any_name_without_asking_a_certificate)
{
    ls_config_t *cfg = load(CONF(PLAINTEXT));
    ls_proto_hello_t h = hello("node-z", LS_PURPOSE_SEED);
    cert_t cert = {.name = NULL};
    ls_proto_choice_t choice;
    ls_frame_t refusal;
    char msg[256] = "";
    cr_assert_eq(admit(cfg, &cert, &h, &choice, &refusal, msg, sizeof(msg)), 0, "%s", msg);
    cr_assert_eq(cert.asked, 0);
    ls_config_free(cfg);
}

Test(node_admit, no_common_version_is_refused_before_the_certificate)
{
    ls_config_t *cfg = load(CONF(TLS));
    ls_proto_hello_t h = hello("node-b", LS_PURPOSE_SEED);
    h.version_min = h.version_max = LS_PROTO_VERSION_MAX + 1;
    cert_t cert = {.name = "b.example"};
    ls_proto_choice_t choice;
    ls_frame_t refusal;
    char msg[256] = "";
    cr_assert_eq(admit(cfg, &cert, &h, &choice, &refusal, msg, sizeof(msg)), LS_EUNSUPPORTED);
    cr_assert_eq(refusal.type, LS_FRAME_ERROR);
    cr_assert_eq(refusal.error.code, LS_EUNSUPPORTED);
    cr_assert(strstr(msg, "unsupported protocol version") != NULL, "%s", msg);
    cr_assert_eq(cert.asked, 0);
    ls_config_free(cfg);
}
