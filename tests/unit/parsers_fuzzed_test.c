/* The inputs the parsers' fuzz targets (tests/fuzz) found or were written against, each a fixture
 * in tests/fuzz/corpus/<target>/found-* (so every fuzz run starts from them too): a control
 * request whose "cmd" comes twice in two cases, numbers a double or a uint64_t cannot hold in the
 * op-state and counters files, negative numbers in the role file and <copy>.announced; and the
 * from-buffer entry points agree with the loaders that read files. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <logship/log.h>
#include <uv.h>

#include "config/config.h"
#include "control/control.h"
#include "harness.h"
#include "node/announced.h"
#include "node/node.h"
#include "node/node_int.h"
#include "role/role.h"
#include "status/status.h"

/* The fixture tests/fuzz/corpus/<rel>, NUL-terminated (the length in *len). */
static char *fixture(const char *rel, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/%s", LS_SOURCE_DIR, rel);
    uint8_t *b = ls_h_read_file(path, len);
    cr_assert_not_null(b, "cannot read %s", path);
    char *t = malloc(*len + 1);
    memcpy(t, b, *len);
    t[*len] = '\0';
    free(b);
    return t;
}

static const char conf[] = "[node]\nname = node-a\ndata_dir = /nonexistent/ls-test\n"
                           "[tls]\ninsecure_plaintext = true\n[listen]\naddress = 127.0.0.1:0\n"
                           "[peer node-b]\nnetwork = repl 127.0.0.1:7402\n"
                           "[database db1]\nrole = active\ntargets = node-b\n";

/* {"CMD":1,"cmd":"status"}: the server checked the case-sensitive "cmd", the node took the first
 * member of any case (a number, no string) and called strcmp(NULL): a crash of the daemon. */
Test(parsers_fuzzed, a_cmd_member_in_another_case_is_not_the_command)
{
    uv_loop_t loop;
    ls_config_t *cfg;
    char err[512] = "";
    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(ls_config_parse("t.conf", conf, strlen(conf), &cfg, err, sizeof(err)), 0, "%s",
                 err);
    ls_node_options_t o = {.loop = &loop, .cfg = cfg};
    ls_node_t *n = ls_node_new(&o);
    size_t len;
    char *req = fixture("control/found-cmd-in-another-case", &len);
    cJSON *resp = ls_control_answer(req, len, ls_node_control, n);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "ok")));
    cr_assert_not_null(cJSON_GetObjectItemCaseSensitive(resp, "databases"));
    cJSON_Delete(resp);
    resp = ls_control_answer("{\"CMD\":\"status\"}", 16, ls_node_control, n);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(resp, "ok")));
    cr_assert(ls_h_contains(cJSON_GetObjectItemCaseSensitive(resp, "error")->valuestring,
                            "missing string field \"cmd\""));
    cJSON_Delete(resp);
    free(req);
    ls_node_free(n);
    ls_config_free(cfg);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

static char last_warning[1024];

static void capture(void *ctx, ls_log_level_t level, const char *component, const char *msg)
{
    (void) ctx;
    (void) component;
    if (level <= LS_LOG_WARN) snprintf(last_warning, sizeof(last_warning), "%s", msg);
}

/* since_ns -1 and 1e400 (inf) were converted to uint64_t: undefined behaviour (UBSan); now the
 * suspension holds, the time is 0 and a warning names the file and the field. */
Test(parsers_fuzzed, an_op_state_time_out_of_range_is_zero_and_named)
{
    const char *files[] = {"opstate/found-since-negative", "opstate/found-since-inf"};
    ls_log_set_handler(capture, NULL);
    for (int i = 0; i < 2; i++) {
        size_t len;
        char *text = fixture(files[i], &len);
        ls_status_op_t op;
        last_warning[0] = '\0';
        cr_assert_eq(ls__node_opstate_parse("x/copy.state", text, len, &op), 0);
        cr_assert(op.suspended);
        cr_assert_eq(op.since_ns, 0);
        cr_assert(ls_h_contains(last_warning, "x/copy.state: field since_ns"), "%s", last_warning);
        free(text);
    }
    ls_status_op_t op;
    cr_assert_eq(ls__node_opstate_parse("x/copy.state", "[true]", 6, &op), LS_ECORRUPT);
    cr_assert(ls_h_contains(last_warning, "x/copy.state: not a JSON object"), "%s", last_warning);
    ls_log_set_handler(NULL, NULL);
}

/* 1e400 (inf) and 1e300 were converted to uint64_t (undefined behaviour); now 0, as for any
 * member that is not an unsigned integer. The exact integers above 2^53 stay exact. */
Test(parsers_fuzzed, counters_out_of_range_read_as_zero)
{
    size_t len;
    char *text = fixture("counters/found-too-big", &len);
    ls_status_counters_t c;
    cr_assert_eq(ls_status_counters_parse(text, len, &c), 0);
    cr_assert_eq(c.ask_agains, 0);
    cr_assert_eq(c.inspection_failures, 0);
    free(text);
    text = fixture("counters/exact", &len);
    cr_assert_eq(ls_status_counters_parse(text, len, &c), 0);
    cr_assert_eq(c.ask_agains, 18446744073709551615ull);
    cr_assert_eq(c.inspection_failures, 9007199254740993ull);
    free(text);
    cr_assert_eq(ls_status_counters_parse("{}\0", 3, &c), LS_ECORRUPT);
}

/* "since -1" was read as 2^64 - 1 (sscanf's %llu wraps a sign); now refused by line and field. */
Test(parsers_fuzzed, a_negative_number_in_the_role_file_is_refused)
{
    size_t len;
    char *text = fixture("role/found-since-negative", &len);
    ls_role_state_t st;
    char err[512] = "";
    cr_assert_eq(ls_role_parse("d/role", text, len, &st, err, sizeof(err)), LS_ECONFIG);
    cr_assert_str_eq(err, "d/role:3: numbers cannot be negative (\"since\")");
    free(text);
    cr_assert_eq(ls_role_parse("d/role", "role copy\nepoch 1\0", 18, &st, err, sizeof(err)),
                 LS_ECONFIG);
    cr_assert_str_eq(err, "d/role: contains a NUL byte (not a text file)");
    cr_assert_eq(ls_role_parse("d/role", "role copy\nepoch 9\n", 18, &st, err, sizeof(err)), 0);
    cr_assert_eq(st.role, LS_ROLE_COPY);
    cr_assert_eq(st.epoch, 9);
}

/* "open_lsn -1" was read as 2^64 - 1; now a damaged line (its number), everything unknown. */
Test(parsers_fuzzed, a_negative_number_in_announced_is_a_damaged_line)
{
    size_t len;
    char *text = fixture("announced/found-negative", &len);
    ls_role_announced_t a;
    cr_assert_eq(ls_node_announced_parse(text, &a), 2);
    cr_assert_eq(a.last_generation, 0);
    free(text);
}

/* ls_config_parse (the fuzz target's entry) and ls_config_load read the same text the same way,
 * messages included, the name standing for the file; an empty text is refused like an empty file.
 */
Test(parsers_fuzzed, config_from_a_buffer_is_config_from_a_file)
{
    char *dir = ls_h_tmpdir("cfgbuf"), path[512], err[512] = "", err2[512] = "";
    snprintf(path, sizeof(path), "%s/node.conf", dir);
    size_t len;
    char *text = fixture("config/good.conf", &len);
    cr_assert_eq(ls_h_write_file(path, text, len), 0);
    ls_config_t *a, *b;
    cr_assert_eq(ls_config_load(path, &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ls_config_parse(path, text, len, &b, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(a->node_name, b->node_name);
    cr_assert_eq(a->ndatabases, b->ndatabases);
    cr_assert_eq(a->ntargets, b->ntargets);
    ls_config_free(a);
    ls_config_free(b);
    cr_assert_eq(ls_h_write_file(path, "[node]\nname = a\nbogus = 1\n", 26), 0);
    cr_assert_eq(ls_config_load(path, &a, err, sizeof(err)), LS_ECONFIG);
    cr_assert_eq(ls_config_parse(path, "[node]\nname = a\nbogus = 1\n", 26, &b, err2, sizeof(err2)),
                 LS_ECONFIG);
    cr_assert_str_eq(err, err2);
    cr_assert_eq(ls_h_write_file(path, "", 0), 0);
    cr_assert_eq(ls_config_load(path, &a, err, sizeof(err)), LS_ECONFIG);
    cr_assert_eq(ls_config_parse(path, "", 0, &b, err2, sizeof(err2)), LS_ECONFIG);
    cr_assert_str_eq(err, err2);
    cr_assert_null(b);
    free(text);
    ls_h_rmtree_free(dir);
}

/* The seeds of config_fuzz are valid configurations (the fuzzer starts from accepted files). */
Test(parsers_fuzzed, the_config_seeds_are_accepted)
{
    const char *seeds[] = {"config/good.conf", "config/peers.conf"};
    for (int i = 0; i < 2; i++) {
        size_t len;
        char *text = fixture(seeds[i], &len);
        ls_config_t *c;
        char err[512] = "";
        cr_assert_eq(ls_config_parse(seeds[i], text, len, &c, err, sizeof(err)), 0, "%s", err);
        ls_config_free(c);
        free(text);
    }
}
