/* config: the daemon's INI file, its defaults, and a clear FILE:LINE error for every bad input. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "harness.h"

static char *dir;

static void setup(void)
{
    dir = ls_h_tmpdir("config");
}

static void teardown(void)
{
    ls_h_rmtree_free(dir);
}

/* Writes text to a file and loads it; returns the code, err filled. */
static int load(const char *text, ls_config_t **cfg, char *err, size_t errlen)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/node.conf", dir);
    cr_assert_eq(ls_h_write_file(path, text, strlen(text)), 0);
    return ls_config_load(path, cfg, err, errlen);
}

#define GOOD                                                                                       \
    "[node]\nname = node-a\ndata_dir = /var/lib/ls\n"                                              \
    "[tls]\nca = /c/ca.pem\ncert = /c/a.pem\nkey = /c/a.key\n"                                     \
    "[listen]\naddress = 127.0.0.1:7401\naddress = [::1]:7401\n"                                   \
    "[target node-b]\nnetwork = repl 10.1.0.2:7401 bind=10.1.0.1\n"                                \
    "network = public 192.0.2.2:7401\ncompression = zstd:3\nheartbeat_timeout = 3s\n"              \
    "[database db1]\nrole = active\ntargets = node-b\ntarget_size = 512KiB\n"                      \
    "[database db2]\nrole = passive\nsource = node-b\nreplay_lag = 2m\n"

TestSuite(config, .init = setup, .fini = teardown);

Test(config, parses_every_section_with_defaults)
{
    ls_config_t *c;
    char err[512] = "";
    cr_assert_eq(load(GOOD, &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(c->node_name, "node-a");
    cr_assert_str_eq(c->control_socket, "/var/lib/ls/logshipd.sock");
    cr_assert_str_eq(c->log_level, "info");
    cr_assert_eq(c->nlisten, 2);
    cr_assert_str_eq(c->listen[1].host, "::1");
    cr_assert_eq(c->listen[1].port, 7401);
    const ls_cfg_target_t *t = ls_config_target(c, "node-b");
    cr_assert_not_null(t);
    cr_assert_eq(t->nnets, 2);
    cr_assert_str_eq(t->nets[0].name, "repl");
    cr_assert_str_eq(t->nets[0].bind, "10.1.0.1");
    cr_assert_str_eq(t->nets[1].remote.host, "192.0.2.2");
    cr_assert_eq(t->compression_level, 3);
    cr_assert_eq(t->heartbeat_interval_ms, 1000);
    cr_assert_eq(t->heartbeat_timeout_ms, 3000);
    cr_assert_eq(c->receive_window, 4u << 20);
    cr_assert_str_eq(t->peer_name, "node-b");
    const ls_cfg_database_t *d1 = ls_config_database(c, "db1");
    cr_assert_eq(d1->role, LS_CFG_ACTIVE);
    cr_assert_eq(d1->target_size, 512 * 1024);
    cr_assert_str_eq(d1->path, "/var/lib/ls/db1");
    const ls_cfg_database_t *d2 = ls_config_database(c, "db2");
    cr_assert_eq(d2->role, LS_CFG_PASSIVE);
    cr_assert_eq(d2->replay_lag_ms, 120000);
    ls_config_free(c);
}

/* Each case: a config text and the exact "FILE:LINE: reason" suffix expected. */
static void expect_error(const char *text, const char *suffix)
{
    ls_config_t *c = NULL;
    char err[512] = "";
    cr_assert_eq(load(text, &c, err, sizeof(err)), LS_ECONFIG, "accepted: %s", text);
    cr_assert_null(c);
    cr_assert(ls_h_contains(err, "node.conf"), "error names the file: %s", err);
    cr_assert(ls_h_contains(err, suffix), "expected '%s' in '%s'", suffix, err);
}

Test(config, unknown_key_names_file_line_and_key)
{
    expect_error("[node]\nname = a\ndata_dir = /x\nfrobnicate = 1\n",
                 ":4: unknown key 'frobnicate' in [node]");
}

Test(config, unknown_section_is_rejected)
{
    expect_error("[node]\nname = a\n[nodes]\nx = 1\n", ":4: unknown section [nodes]");
}

Test(config, bad_values_name_the_line)
{
    expect_error("[node]\nname = a b\n", ":2: bad node name 'a b'");
    expect_error("[node]\nname=a\ndata_dir=/x\n[tls]\ninsecure_plaintext = true\n[database d]\n"
                 "role = primary\n",
                 ":7: bad role 'primary'");
    expect_error("[node]\nname=a\ndata_dir=/x\n[tls]\ninsecure_plaintext = true\n[target b]\n"
                 "network = repl nowhere\n",
                 ":7: bad network address 'nowhere'");
    expect_error("[node]\nname=a\ndata_dir=/x\n[tls]\ninsecure_plaintext = true\n[target b]\n"
                 "network = repl h:1\nheartbeat_timeout = soon\n",
                 ":8: bad duration for 'heartbeat_timeout'");
    expect_error("[node]\nname=a\ndata_dir=/x\n[tls]\ninsecure_plaintext = maybe\n",
                 ":5: bad value for 'insecure_plaintext'");
    expect_error("[listen]\naddress = 127.0.0.1:99999\n", ":2: bad address '127.0.0.1:99999'");
    expect_error("[node]\nname=a\ndata_dir=/x\n[tls]\ninsecure_plaintext = true\n[target b]\n"
                 "network = r h:1\ncompression = lz4\n",
                 ":8: bad compression 'lz4'");
}

/* A passive names how to reach its source for a seed: [source NAME], the keys of [target]. */
Test(config, source_sections_name_the_networks_to_seed_from)
{
    ls_config_t *c;
    char err[512] = "";
    cr_assert_eq(load("[node]\nname = node-b\ndata_dir = /x\n[tls]\ninsecure_plaintext = true\n"
                      "[listen]\naddress = 127.0.0.1:7402\n"
                      "[source node-a]\nnetwork = repl 10.1.0.1:7401 bind=10.1.0.2\n"
                      "network = public 192.0.2.1:7401\ncompression = zstd\n"
                      "[database db1]\nrole = passive\nsource = node-a\n",
                      &c, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(c->nsources, 1);
    const ls_cfg_target_t *s = ls_config_source(c, "node-a");
    cr_assert_not_null(s);
    cr_assert_null(ls_config_source(c, "node-c"));
    cr_assert_null(ls_config_target(c, "node-a"), "a source is not a target");
    cr_assert_eq(s->nnets, 2);
    cr_assert_str_eq(s->nets[0].name, "repl");
    cr_assert_str_eq(s->nets[0].remote.host, "10.1.0.1");
    cr_assert_eq(s->nets[0].remote.port, 7401);
    cr_assert_str_eq(s->nets[0].bind, "10.1.0.2");
    cr_assert_str_eq(s->peer_name, "node-a");
    cr_assert_eq(s->compression_level, 1);
    cr_assert_eq(s->heartbeat_timeout_ms, 5000);
    ls_config_free(c);
    expect_error("[node]\nname=a\ndata_dir=/x\n[tls]\ninsecure_plaintext = true\n[source b]\n"
                 "peer_name = b\n",
                 "[source b] needs at least one 'network = NAME HOST:PORT'");
    expect_error("[node]\nname=a\ndata_dir=/x\n[tls]\ninsecure_plaintext = true\n[source b]\n"
                 "network = r h:1\nretries = 3\n",
                 ":8: unknown key 'retries' in [source]");
    expect_error("[node]\nname=a\ndata_dir=/x\n[tls]\ninsecure_plaintext = true\n[source b c]\n"
                 "network = r h:1\n",
                 ":7: bad source name 'b c'");
}

Test(config, missing_required_keys_are_named)
{
    expect_error("[node]\nname = a\n", "missing required key 'data_dir' in [node]");
    expect_error("[node]\nname = a\ndata_dir = /x\n", "[tls] needs 'ca', 'cert' and 'key'");
    expect_error("[node]\nname=a\ndata_dir=/x\n[tls]\ninsecure_plaintext=true\n[database d]\n"
                 "targets = b\n",
                 ":7: [database d] is missing required key 'role'");
    expect_error("[node]\nname=a\ndata_dir=/x\n[tls]\ninsecure_plaintext=true\n[database d]\n"
                 "role = active\ntargets = b\n",
                 "ships to target 'b' but there is no [target b]");
    expect_error("[node]\nname=a\ndata_dir=/x\n[tls]\ninsecure_plaintext=true\n[database d]\n"
                 "role = passive\n",
                 "is passive but names no 'source'");
}

Test(config, syntax_errors_and_long_lines)
{
    expect_error("[node]\nname = a\nthis line has no equals sign\n", ":3: syntax error");
    char text[1024];
    snprintf(text, sizeof(text), "[node]\nname = a\ndata_dir = /%0300d\n", 7);
    expect_error(text, ":3: line longer than 199 characters");
    expect_error("name = a\n", ":1: key 'name' outside any section");
}

Test(config, missing_file_is_a_clear_error)
{
    ls_config_t *c;
    char err[512];
    cr_assert_eq(ls_config_load("/nonexistent/logship.conf", &c, err, sizeof(err)), LS_ENOENT);
    cr_assert(ls_h_contains(err, "/nonexistent/logship.conf: cannot open"), "%s", err);
}

Test(config, value_parsers)
{
    uint64_t v;
    cr_assert_eq(ls_parse_size("4MiB", &v), 0);
    cr_assert_eq(v, 4u << 20);
    cr_assert_eq(ls_parse_size("10", &v), 0);
    cr_assert_eq(v, 10);
    cr_assert_eq(ls_parse_size("-1", &v), LS_EINVAL);
    cr_assert_eq(ls_parse_size("99999999999999999999GiB", &v), LS_EINVAL);
    cr_assert_eq(ls_parse_size("1TiB", &v), LS_EINVAL);
    cr_assert_eq(ls_parse_duration_ms("250ms", &v), 0);
    cr_assert_eq(v, 250);
    cr_assert_eq(ls_parse_duration_ms("3", &v), 0);
    cr_assert_eq(v, 3000);
    ls_cfg_addr_t a;
    cr_assert_eq(ls_parse_addr("host.example:80", &a), 0);
    cr_assert_str_eq(a.host, "host.example");
    cr_assert_eq(ls_parse_addr(":80", &a), LS_EINVAL);
    cr_assert_eq(ls_parse_addr("[::1]80", &a), LS_EINVAL);
}

Test(config, node_heartbeat_interval_for_accepted_connections)
{
    ls_config_t *c;
    char err[512] = "";
    cr_assert_eq(load(GOOD, &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c->heartbeat_interval_ms, 1000, "default 1 s");
    ls_config_free(c);
    cr_assert_eq(load("[node]\nname = b\ndata_dir = /d\nheartbeat_interval = 200ms\n"
                      "[tls]\ninsecure_plaintext = true\n",
                      &c, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(c->heartbeat_interval_ms, 200);
    ls_config_free(c);
    cr_assert_eq(load("[node]\nname = b\ndata_dir = /d\nheartbeat_interval = 10ms\n"
                      "[tls]\ninsecure_plaintext = true\n",
                      &c, err, sizeof(err)),
                 LS_ECONFIG);
    cr_assert(ls_h_contains(err, ":4: [node] heartbeat_interval must be between 50ms and 4s"), "%s",
              err);
}

/* Defect 3 of issue 13: 0 was documented as "no cap" but meant the 8 GiB default. Absent is the
 * default cap; "none" and 0 are no cap; a size is that cap. */
static uint64_t cap_of(const char *line)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "[node]\nname=a\ndata_dir=/x\n[tls]\ninsecure_plaintext = true\n[target b]\n"
             "network = r h:1\n[database d]\nrole = active\ntargets = b\n%s\n",
             line);
    ls_config_t *c = NULL;
    char err[512] = "";
    cr_assert_eq(load(text, &c, err, sizeof(err)), 0, "%s: %s", line, err);
    uint64_t cap = ls_config_database(c, "d")->max_log_bytes;
    ls_config_free(c);
    return cap;
}

Test(config, max_log_bytes_default_none_and_zero)
{
    cr_assert_eq(cap_of(""), LS_CFG_DEFAULT_MAX_LOG_BYTES, "absent: the default cap");
    cr_assert_eq(LS_CFG_DEFAULT_MAX_LOG_BYTES, 8ull << 30);
    cr_assert_eq(cap_of("max_log_bytes = none"), LS_CFG_NO_CAP);
    cr_assert_eq(cap_of("max_log_bytes = NONE"), LS_CFG_NO_CAP);
    cr_assert_eq(cap_of("max_log_bytes = 0"), LS_CFG_NO_CAP, "0 is no cap, as documented");
    cr_assert_eq(cap_of("max_log_bytes = 0GiB"), LS_CFG_NO_CAP);
    cr_assert_eq(cap_of("max_log_bytes = 2GiB"), 2ull << 30);
    cr_assert_eq(cap_of("max_log_bytes = 1048576"), 1ull << 20);
    expect_error("[node]\nname=a\ndata_dir=/x\n[tls]\ninsecure_plaintext = true\n[target b]\n"
                 "network = r h:1\n[database d]\nrole = active\ntargets = b\n"
                 "max_log_bytes = unlimited\n",
                 ":11: bad size for 'max_log_bytes': 'unlimited' (expected e.g. 8GiB, 512MiB, or "
                 "none)");
}

/* An active database d shipping to b, with LINE as the last line of its section (line 11). */
#define ACTIVE_DB_TEXT                                                                             \
    "[node]\nname=a\ndata_dir=/x\n[tls]\ninsecure_plaintext = true\n[target b]\n"                  \
    "network = r h:1\n[database d]\nrole = active\ntargets = b\n"

/* A copy of the section: read its flags and numbers only (its strings go with the config). */
static ls_cfg_database_t active_db_with(const char *line)
{
    char text[1024];
    snprintf(text, sizeof(text), ACTIVE_DB_TEXT "%s\n", line);
    ls_config_t *c = NULL;
    char err[512] = "";
    cr_assert_eq(load(text, &c, err, sizeof(err)), 0, "%s: %s", line, err);
    ls_cfg_database_t d = *ls_config_database(c, "d");
    ls_config_free(c);
    return d;
}

/* Issue 12: [database] auto_resync, off unless true; anything but true or false is refused with
 * its line. */
static bool auto_resync_of(const char *line)
{
    return active_db_with(line).auto_resync;
}

Test(config, auto_resync_default_off)
{
    cr_assert_not(auto_resync_of(""), "absent: off");
    cr_assert_not(auto_resync_of("auto_resync = false"));
    cr_assert(auto_resync_of("auto_resync = true"));
    expect_error(ACTIVE_DB_TEXT "auto_resync = yes\n",
                 ":11: bad value for 'auto_resync': 'yes' (true or false)");
}

/* Issue 14: [database] source_verify, records unless full (docs/SOURCE.md, "What the active
 * verifies"); anything else is refused with its line. */
static bool verify_full_of(const char *line)
{
    return active_db_with(line).source_verify_full;
}

Test(config, source_verify_default_records)
{
    cr_assert_not(verify_full_of(""), "absent: records");
    cr_assert_not(verify_full_of("source_verify = records"));
    cr_assert(verify_full_of("source_verify = full"));
    expect_error(ACTIVE_DB_TEXT "source_verify = sha\n",
                 ":11: bad value for 'source_verify': 'sha' (records or full)");
}

/* Issue 12: one [peer NAME] section per peer, used both ways, and the copy set. */
Test(config, peer_sections_and_copy_sets)
{
    ls_config_t *c;
    char err[512] = "";
    const char *both = "[node]\nname = node-b\ndata_dir = /d\n[tls]\ninsecure_plaintext = true\n"
                       "[peer node-a]\nnetwork = repl 10.1.0.1:7401\n"
                       "[peer node-c]\nnetwork = repl 10.1.0.3:7401\n"
                       "[database db1]\nrole = passive\nsource = node-a\n"
                       "[database db2]\nrole = passive\nsource = node-a\n"
                       "copies = node-a, node-b, node-c\n"
                       "[database db3]\nrole = active\ncopies = node-b node-c\n";
    cr_assert_eq(load(both, &c, err, sizeof(err)), 0, "%s", err);
    const ls_cfg_target_t *t = ls_config_target(c, "node-a"), *s = ls_config_source(c, "node-a");
    cr_assert(t && s, "a [peer] is both a target and a source");
    cr_assert_str_eq(s->nets[0].remote.host, "10.1.0.1");
    cr_assert_eq(ls_config_peer(c, "node-c"), ls_config_target(c, "node-c"));
    cr_assert_null(ls_config_peer(c, "node-z"));
    char set[LS_CFG_MAX_COPIES][LS_CFG_NAME_MAX];
    cr_assert_eq(ls_config_copy_set(c, ls_config_database(c, "db1"), set), 2);
    cr_assert_str_eq(set[0], "node-b");
    cr_assert_str_eq(set[1], "node-a");
    cr_assert_eq(ls_config_copy_set(c, ls_config_database(c, "db2"), set), 3);
    cr_assert_str_eq(set[2], "node-c");
    cr_assert_eq(ls_config_copy_set(c, ls_config_database(c, "db3"), set), 2);
    ls_config_free(c);

    /* today's [target]/[source] files keep working: {this node, source} and the targets */
    cr_assert_eq(load(GOOD, &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ls_config_copy_set(c, ls_config_database(c, "db1"), set), 2);
    cr_assert_str_eq(set[1], "node-b");
    ls_config_free(c);

    const char *no_me = "[node]\nname = node-b\ndata_dir = /d\n[tls]\ninsecure_plaintext = true\n"
                        "[peer node-a]\nnetwork = repl 10.1.0.1:7401\n"
                        "[database db1]\nrole = passive\nsource = node-a\ncopies = node-a\n";
    cr_assert_eq(load(no_me, &c, err, sizeof(err)), LS_ECONFIG);
    cr_assert(ls_h_contains(err, "copies must name this node (node-b)"), "%s", err);
    const char *unknown = "[node]\nname = node-b\ndata_dir = /d\n[tls]\ninsecure_plaintext = true\n"
                          "[peer node-a]\nnetwork = repl 10.1.0.1:7401\n"
                          "[database db1]\nrole = passive\nsource = node-a\n"
                          "copies = node-a, node-b, node-q\n";
    cr_assert_eq(load(unknown, &c, err, sizeof(err)), LS_ECONFIG);
    cr_assert(ls_h_contains(err, "no [peer node-q]"), "%s", err);
    const char *twice = "[node]\nname = node-b\ndata_dir = /d\n[tls]\ninsecure_plaintext = true\n"
                        "[database db1]\nrole = passive\nsource = node-a\n"
                        "copies = node-a, node-b, node-a\n";
    cr_assert_eq(load(twice, &c, err, sizeof(err)), LS_ECONFIG);
    cr_assert(ls_h_contains(err, "node.conf:9: node 'node-a' listed twice in 'copies'"), "%s", err);
}
