/* HELLO admission (node.h): the version and features negotiated, and who may ship and seed
 * (docs/CONFIG.md, peer_name), without a socket: the connection's certificate is asked through
 * ls_node_peer_cert_t, so the rule is tested on its own (tests/unit/node_admit_test.c). */
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "node/node.h"

const char *ls_node_cert_name(const ls_config_t *cfg, const char *name, bool target)
{
    const ls_cfg_target_t *t = target ? ls_config_target(cfg, name) : ls_config_source(cfg, name);
    return t ? t->peer_name : name;
}

bool ls_node_authorized(const ls_config_t *cfg, const ls_node_peer_cert_t *cert, const char *name,
                        bool target, char *why, size_t whylen)
{
    if (cfg->plaintext) return true; /* no certificates: the operator trusts the network */
    const char *want = ls_node_cert_name(cfg, name, target);
    if (cert->carries(cert->ctx, want)) return true;
    if (strcmp(want, name))
        snprintf(why, whylen,
                 "%s says it is node %s, whose certificate must carry %s ([%s %s] peer_name): "
                 "its certificate does not",
                 cert->addr, name, want, target ? "target" : "source", name);
    else
        snprintf(why, whylen, "%s says it is node %s: its certificate does not carry that name",
                 cert->addr, name);
    return false;
}

int ls_node_hello_admit(const ls_config_t *cfg, const ls_node_peer_cert_t *cert,
                        const ls_proto_hello_t *h, ls_proto_choice_t *choice, ls_frame_t *refusal,
                        char *msg, size_t msglen)
{
    /* A seed connection may ask for an incremental resync (version >= 4, PROTOCOL.md §10) and
     * for XXH3-128 as its stream's check (the fault point seed.sha256 plays a node without it). */
    uint32_t seed_xxh = LS_FAULT("seed.sha256") ? 0 : LS_FEAT_SEEDXXH;
    ls_proto_offer_t offer = {.features =
                                  LS_FEAT_ZSTD | LS_FEAT_CKSUM |
                                  (h->purpose == LS_PURPOSE_SEED ? LS_FEAT_RESYNC | seed_xxh : 0) |
                                  (h->purpose == LS_PURPOSE_SHIP
                                       ? LS_FEAT_BLOCK | LS_FEAT_TAIL | LS_FEAT_NEXT | LS_FEAT_APPLY
                                       : 0)};
    int rc = ls_proto_negotiate(h, &offer, choice, refusal, msg, msglen);
    if (rc) return rc;
    if (choice->version < LS_PROTO_VERSION_RESYNC) choice->features &= ~LS_FEAT_RESYNC;
    if (choice->version < LS_PROTO_VERSION_BLOCK) choice->features &= ~LS_FEAT_BLOCK;
    if (!(choice->features & LS_FEAT_BLOCK))
        choice->features &= ~(LS_FEAT_TAIL | LS_FEAT_NEXT | LS_FEAT_APPLY);
    char name[LS_PROTO_NODE_MAX + 1];
    snprintf(name, sizeof(name), "%.*s", (int) h->node.len, h->node.ptr);
    if (ls_node_authorized(cfg, cert, name, h->purpose == LS_PURPOSE_SEED, msg, msglen)) return 0;
    memset(refusal, 0, sizeof(*refusal));
    refusal->type = LS_FRAME_ERROR;
    refusal->error.code = LS_EAUTH;
    refusal->error.message = ls_proto_str(msg);
    return LS_EAUTH;
}
