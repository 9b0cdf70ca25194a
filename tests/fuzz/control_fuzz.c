/*
 * libFuzzer target for the control socket's requests (engine/control/server.c and the node's
 * dispatch, ls_node_control): any input is one request line, answered by ls_control_answer (what
 * the server does with each line it reads) with ls_node_control as the handler, on a node made
 * from a small configuration but not started (no database open: every command reaches its
 * argument checks and its lookups, none acts). It must never crash, leak or read out of bounds,
 * and the answer is always an object with a boolean "ok" (and a string "error" when false).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "config/config.h"
#include "control/control.h"
#include "node/node.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char conf[] = "[node]\nname = node-a\ndata_dir = /nonexistent/ls-fuzz\n"
                           "[tls]\ninsecure_plaintext = yes\n"
                           "[listen]\naddress = 127.0.0.1:7401\n"
                           "[peer node-b]\nnetwork = repl 127.0.0.1:7402\n"
                           "[database db1]\nrole = active\ntargets = node-b\n";

static ls_node_t *node(void)
{
    static uv_loop_t loop;
    static ls_config_t *cfg;
    static ls_node_t *n;
    if (n) return n;
    char err[512];
    if (uv_loop_init(&loop) ||
        ls_config_parse("fuzz.conf", conf, sizeof(conf) - 1, &cfg, err, sizeof(err)))
        abort();
    ls_node_options_t o = {.loop = &loop, .cfg = cfg, .tls = NULL};
    n = ls_node_new(&o);
    if (!n) abort();
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ls_node_t *n = node();
    cJSON *resp = ls_control_answer((const char *) data, size, ls_node_control, n);
    if (!cJSON_IsObject(resp)) abort();
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(resp, "ok");
    if (!cJSON_IsBool(ok)) abort();
    if (cJSON_IsFalse(ok) && !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(resp, "error")))
        abort();
    cJSON_Delete(resp);
    return 0;
}
