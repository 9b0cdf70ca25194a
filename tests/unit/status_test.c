/* The status model's renderers (engine/status), driven with filled structs: the exact JSON
 * document, exact integers (a nanosecond time above 2^53 survives to the text digit for digit,
 * and back), the exact Prometheus samples, promtool's verdict on them, and the counters kept
 * with a copy. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "harness.h"
#include "status/status.h"

TestSuite(status, .timeout = 30);

#define T0 1796403238892755201ull /* UTC ns, above 2^53: a double cannot hold it */

static void passive(ls_status_copy_t *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->database, sizeof(c->database), "db1");
    c->role = LS_STATUS_PASSIVE;
    snprintf(c->source, sizeof(c->source), "node-a");
    snprintf(c->target, sizeof(c->target), "node-b");
    c->state = "Suspended";
    snprintf(c->reason, sizeof(c->reason), "suspended by the operator");
    snprintf(c->comment, sizeof(c->comment), "disk swap");
    c->suspended_since_ns = T0 - 7;
    snprintf(c->network, sizeof(c->network), "10.0.0.1:5433");
    c->tls = true;
    c->last_generated = (ls_status_pos_t){12, T0};
    c->last_copied = (ls_status_pos_t){10, T0 + 1};
    c->last_inspected = (ls_status_pos_t){9, T0 + 2};
    c->last_replayed = (ls_status_pos_t){8, T0 + 3};
    c->last_replayed_synced = (ls_status_pos_t){7, 0};
    c->last_replayed_lsn = 9007199254740993ull; /* 2^53 + 1 */
    c->copy_queue = 2;
    c->copy_queue_bytes = 2097152;
    c->replay_queue = 2;
    c->replay_queue_bytes = 1048577;
    c->copy_lag_ns = 1500000000;
    c->replay_lag_ns = 2000000001;
    c->throughput_bps = 1024.5;
    c->kept = (ls_status_counters_t){5, 3};
    c->applied_generations = 8;
    c->replay_transactions = 40;
    c->rtt_ns = 2500000;
    c->wire_bytes_received = 123456;
    c->zstd_loop_calls = 1;
    c->clock_offset_ns = -3000000;
}

static void active(ls_status_copy_t *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->database, sizeof(c->database), "db\"2\\");
    c->role = LS_STATUS_ACTIVE;
    snprintf(c->source, sizeof(c->source), "node-a");
    snprintf(c->target, sizeof(c->target), "node-b");
    c->state = "Healthy";
    snprintf(c->network, sizeof(c->network), "repl");
    c->last_generated = (ls_status_pos_t){12, T0};
    c->rtt_ns = 1000;
    c->rtt_last_ns = 2000;
    c->kept = (ls_status_counters_t){1, 0};
    c->sent_generations = 12;
    c->sent_bytes = 12582912;
    c->have_networks = true;
    c->network_switches = 2;
    c->last_switch_time_ns = T0 + 9;
    c->nnets = 2;
    snprintf(c->nets[0].name, sizeof(c->nets[0].name), "repl");
    c->nets[0].state = "in-use";
    c->nets[0].settle_ns = 2000000000;
    snprintf(c->nets[1].name, sizeof(c->nets[1].name), "public");
    c->nets[1].state = "down";
    c->nets[1].failures = 4;
    c->nets[1].last_error_time_ns = T0 + 11;
    snprintf(c->nets[1].last_error, sizeof(c->nets[1].last_error), "connection refused");
}

static char *json_text(const ls_status_node_t *n)
{
    cJSON *doc = cJSON_CreateObject();
    cr_assert_eq(ls_status_to_json(n, doc), 0);
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    return text;
}

Test(status, json_renders_a_passive_copy_exactly)
{
    ls_status_copy_t c;
    passive(&c);
    ls_status_node_t n = {"node-b", false, T0 + 100, T0 - 1000, &c, 1, NULL, 0};
    char *text = json_text(&n);
    const char *want =
        "{\"node\":\"node-b\",\"plaintext\":false,\"time_ns\":1796403238892755301,"
        "\"start_time_ns\":1796403238892754201,\"copies\":[{\"database\":\"db1\","
        "\"role\":\"passive\",\"source\":\"node-a\",\"target\":\"node-b\",\"state\":\"Suspended\","
        "\"reason\":\"suspended by the operator\",\"comment\":\"disk swap\","
        "\"suspended_since_ns\":1796403238892755194,\"replay_suspended\":false,"
        "\"network\":\"10.0.0.1:5433\",\"tls\":true,"
        "\"last_generated\":12,\"last_generated_time_ns\":1796403238892755201,"
        "\"last_copied\":10,\"last_copied_time_ns\":1796403238892755202,"
        "\"last_inspected\":9,\"last_inspected_time_ns\":1796403238892755203,"
        "\"last_replayed\":8,\"last_replayed_time_ns\":1796403238892755204,"
        "\"last_replayed_synced\":7,\"last_replayed_synced_time_ns\":0,"
        "\"last_replayed_lsn\":9007199254740993,"
        "\"copy_queue\":2,\"copy_queue_bytes\":2097152,\"replay_queue\":2,"
        "\"replay_queue_bytes\":1048577,\"copy_lag_s\":1.5,\"replay_lag_s\":2.000000001,"
        "\"throughput_bps\":1024.5,\"block_generation\":0,\"block_offset\":0,"
        "\"block_durable_lsn\":0,\"block_applied_lsn\":0,\"block_apply_eager\":false,"
        "\"ask_agains\":5,\"inspection_failures\":3,\"rtt_ms\":2.5,"
        "\"zstd_loop_calls\":1,\"applied_generations\":8,\"replay_transactions\":40,"
        "\"wire_bytes_received\":123456,\"clock_offset_ms\":-3,\"clock_offset_ns\":-3000000}],"
        "\"databases\":[]}";
    cr_assert_str_eq(text, want);
    free(text);
}

Test(status, json_renders_an_active_copy_with_networks_and_a_passive_seed)
{
    ls_status_copy_t c[2];
    active(&c[0]);
    passive(&c[1]);
    c[1].seed.present = true;
    c[1].seed.state = "receiving";
    c[1].seed.percent = 50;
    c[1].seed.bytes_done = 1024;
    c[1].seed.bytes_total = 2048;
    c[1].seed.start_time_ns = T0 + 5;
    ls_status_node_t n = {"node-a", true, T0, T0, c, 2, NULL, 0};
    char *text = json_text(&n);
    static const char *parts[] = {
        "\"database\":\"db\\\"2\\\\\",\"role\":\"active\"",
        "\"ask_agains\":1,\"inspection_failures\":0,\"rtt_ms\":0.001,\"zstd_loop_calls\":0,"
        "\"sent_generations\":12,\"sent_bytes\":12582912,\"rtt_last_ms\":0.002,",
        "\"network_pinned\":\"\",\"network_switches\":2,\"last_switch\":\"\","
        "\"last_switch_time_ns\":1796403238892755210,\"resent_bytes\":0,\"networks\":[",
        "{\"name\":\"repl\",\"remote\":\"\",\"bind\":\"\",\"state\":\"in-use\",\"last_error\":\"\","
        "\"last_error_time_ns\":0,\"left_reason\":\"\",\"left_time_ns\":0,\"failures\":0,"
        "\"settle_s\":2,\"up_s\":0}",
        "\"state\":\"down\",\"last_error\":\"connection refused\","
        "\"last_error_time_ns\":1796403238892755212,",
        "\"seed_percent\":50,\"seed\":{\"id\":0,\"state\":\"receiving\",\"from\":\"\","
        "\"network\":\"\",\"bytes_done\":1024,\"bytes_total\":2048,\"percent\":50,",
        "\"start_time_ns\":1796403238892755206,\"end_time_ns\":0,\"error\":\"\","
        "\"wire_bytes_received\":0,\"zstd_loop_calls\":0}}],\"databases\":[]}",
    };
    for (size_t i = 0; i < LS_ARRAY_SIZE(parts); i++)
        cr_assert(strstr(text, parts[i]), "%s\nnot in\n%s", parts[i], text);
    cr_assert_null(strstr(text, "\"seed\":{\"id\":0,\"state\":\"\""), "the active has no seed");
    free(text);
}

Test(status, time_ns_above_2_pow_53_survives_print_parse_and_reprint)
{
    ls_status_copy_t c;
    passive(&c);
    ls_status_node_t n = {"node-b", false, T0, T0, &c, 1, NULL, 0};
    char *text = json_text(&n);
    cr_assert(strstr(text, "\"last_generated_time_ns\":1796403238892755201,"), "%s", text);
    /* What `logship status --json` does: parse the daemon's answer, print it again. */
    cJSON *j = ls_status_json_parse(text);
    cr_assert_not_null(j);
    const cJSON *copy = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "copies"), 0);
    cr_assert_eq(ls_status_json_u64(copy, "last_generated_time_ns"), T0);
    cr_assert_eq(ls_status_json_u64(copy, "last_replayed_time_ns"), T0 + 3);
    cr_assert_eq(ls_status_json_u64(copy, "last_replayed_lsn"), 9007199254740993ull);
    cr_assert_eq(ls_status_json_u64(copy, "copy_queue"), 2);
    cr_assert_eq(ls_status_json_num(copy, "copy_lag_s"), 1.5);
    cr_assert_eq(ls_status_json_u64(j, "time_ns"), T0);
    char *again = cJSON_Print(j);
    cr_assert(strstr(again, "\"last_generated_time_ns\":\t1796403238892755201,"), "%s", again);
    cr_assert(strstr(again, "\"last_replayed_lsn\":\t9007199254740993,"), "%s", again);
    cr_assert_null(strstr(again, "e+18"), "no time printed as a double: %s", again);
    char *compact = cJSON_PrintUnformatted(j);
    cr_assert_str_eq(compact, text, "parse and print give back the same document");
    free(compact);
    free(again);
    cJSON_Delete(j);
    free(text);
}

Test(status, json_parse_keeps_strings_and_small_numbers_as_they_were)
{
    const char *text = "{\"a\":\"12345678901234567890\",\"b\":[-1,2.5e3,18446744073709551615],"
                       "\"c\":{\"d\":\"x\\\"9\",\"e\":-9007199254740993}}";
    cJSON *j = ls_status_json_parse(text);
    cr_assert_not_null(j);
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(j, "a")));
    const cJSON *b = cJSON_GetObjectItem(j, "b");
    cr_assert(cJSON_IsNumber(cJSON_GetArrayItem(b, 0)));
    cr_assert_eq(cJSON_GetArrayItem(b, 1)->valuedouble, 2500);
    cr_assert(cJSON_IsRaw(cJSON_GetArrayItem(b, 2)));
    char *out = cJSON_PrintUnformatted(j);
    cr_assert_str_eq(out, "{\"a\":\"12345678901234567890\",\"b\":[-1,2500,18446744073709551615],"
                          "\"c\":{\"d\":\"x\\\"9\",\"e\":-9007199254740993}}");
    free(out);
    cJSON_Delete(j);
    cr_assert_null(ls_status_json_parse("{\"a\":"));
}

/* The sample line, whole, is in text. */
static void has_line(const char *text, const char *line)
{
    char want[1024];
    snprintf(want, sizeof(want), "\n%s\n", line);
    bool first = !strncmp(text, want + 1, strlen(want + 1));
    cr_assert(first || strstr(text, want), "line\n%s\nnot in\n%s", line, text);
}

Test(status, prometheus_samples_are_exact_and_in_base_units)
{
    ls_status_copy_t c[2];
    active(&c[0]);
    passive(&c[1]);
    ls_status_node_t n = {"node-b", false, T0, T0 - 1000, c, 2, NULL, 0};
    char *text = ls_status_to_prometheus(&n);
    cr_assert_not_null(text);
    const char *p = "{database=\"db1\",role=\"passive\",source=\"node-a\",target=\"node-b\"}";
    const char *a =
        "{database=\"db\\\"2\\\\\",role=\"active\",source=\"node-a\",target=\"node-b\"}";
    char line[512];
    has_line(text, "# HELP logship_start_time_seconds when the daemon started, UTC (counters not "
                   "kept with a copy restart from 0 then)");
    has_line(text, "logship_start_time_seconds{node=\"node-b\"} 1796403238.892754201");
    struct {
        const char *metric, *labels, *value;
    } want[] = {
        {"logship_last_generated", p, "12"},
        {"logship_last_generated_timestamp_seconds", p, "1796403238.892755201"},
        {"logship_last_copied_timestamp_seconds", p, "1796403238.892755202"},
        {"logship_last_replayed", p, "8"},
        {"logship_copy_queue", p, "2"},
        {"logship_copy_queue_bytes", p, "2097152"},
        {"logship_replay_queue_bytes", p, "1048577"},
        {"logship_copy_lag_seconds", p, "1.500000000"},
        {"logship_replay_lag_seconds", p, "2.000000001"},
        {"logship_throughput_bytes_per_second", p, "1024.5"},
        {"logship_rtt_seconds", p, "0.002500000"},
        {"logship_rtt_seconds", a, "0.000001000"},
        {"logship_ask_agains_total", p, "5"},
        {"logship_inspection_failures_total", p, "3"},
        {"logship_applied_generations_total", p, "8"},
        {"logship_clock_offset_seconds", p, "-0.003000000"},
        {"logship_sent_bytes_total", a, "12582912"},
        {"logship_network_switches_total", a, "2"},
    };
    for (size_t i = 0; i < LS_ARRAY_SIZE(want); i++) {
        snprintf(line, sizeof(line), "%s%s %s", want[i].metric, want[i].labels, want[i].value);
        has_line(text, line);
    }
    has_line(text, "# TYPE logship_ask_agains_total counter");
    has_line(text, "# TYPE logship_copy_lag_seconds gauge");
    has_line(text, "logship_copy_state{database=\"db1\",role=\"passive\",source=\"node-a\","
                   "target=\"node-b\",state=\"Suspended\"} 1");
    has_line(text, "logship_network_state{database=\"db\\\"2\\\\\",role=\"active\","
                   "source=\"node-a\",target=\"node-b\",network=\"public\",state=\"down\"} 1");
    has_line(text, "logship_network_failures_total{database=\"db\\\"2\\\\\",role=\"active\","
                   "source=\"node-a\",target=\"node-b\",network=\"public\"} 4");
    /* One side's figures only on that side. */
    snprintf(line, sizeof(line), "logship_sent_bytes_total%s", p);
    cr_assert_null(strstr(text, line));
    snprintf(line, sizeof(line), "logship_clock_offset_seconds%s", a);
    cr_assert_null(strstr(text, line));
    cr_assert_null(strstr(text, "milliseconds"));
    free(text);
}

/* A database activated with a loss, as the node fills it from the role file. */
static void lossy_db(ls_status_db_t *d)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->database, sizeof(d->database), "db1");
    d->role = "active";
    d->epoch = 2;
    snprintf(d->follows, sizeof(d->follows), "node-a");
    d->since_ns = T0 + 10;
    d->activation = "done";
    d->switchover = "refused";
    d->loss_generations = 3;
    d->loss_first_generation = 3;
    d->loss_last_generation = 5;
    d->loss_bytes = 3145728;
    d->loss_from_ns = T0 + 8;
    d->loss_to_ns = T0 + 9;
    d->open_generation = 6;
}

Test(status, json_renders_each_database_role_and_loss_exactly)
{
    ls_status_db_t d;
    lossy_db(&d);
    ls_status_node_t n = {"node-b", false, T0, T0, NULL, 0, &d, 1};
    char *text = json_text(&n);
    cr_assert(strstr(text,
                     "\"databases\":[{\"database\":\"db1\",\"role\":\"active\",\"epoch\":2,"
                     "\"follows\":\"node-a\",\"since_ns\":1796403238892755211,\"reason\":\"\","
                     "\"activation\":\"done\",\"switchover\":\"refused\","
                     "\"loss\":{\"generations\":3,"
                     "\"first_generation\":3,\"last_generation\":5,\"bytes\":3145728,"
                     "\"from_ns\":1796403238892755209,\"to_ns\":1796403238892755210,"
                     "\"open_generation\":6}}]"),
              "%s", text);
    free(text);
}

/* An active database whose synchronous commit degraded (docs/BLOCKMODE.md). */
static void degraded_db(ls_status_db_t *d)
{
    lossy_db(d);
    d->sync_state = "degraded";
    d->sync_level = "remote_durable";
    d->sync_copies = 1;
    d->sync_switches = 3;
    d->sync_since_ns = T0 + 5;
    snprintf(d->sync_reason, sizeof(d->sync_reason),
             "lsn 120 not durable on 1 copy within 1000 ms; copies (durable/applied lsn): #1 "
             "100/90 unlinked");
}

Test(status, json_renders_an_active_databases_sync_state_exactly)
{
    ls_status_db_t d;
    degraded_db(&d);
    ls_status_node_t n = {"node-b", false, T0, T0, NULL, 0, &d, 1};
    char *text = json_text(&n);
    cr_assert(strstr(text, "\"open_generation\":6},\"sync\":{\"state\":\"degraded\","
                           "\"level\":\"remote_durable\",\"copies\":1,"
                           "\"since_ns\":1796403238892755206,\"reason\":\"lsn 120 not durable on "
                           "1 copy within 1000 ms; copies (durable/applied lsn): #1 100/90 "
                           "unlinked\",\"switches\":3}}]"),
              "%s", text);
    free(text);
    lossy_db(&d); /* not an active database here: no sync object */
    text = json_text(&n);
    cr_assert_null(strstr(text, "\"sync\""), "%s", text);
    free(text);
}

Test(status, promtool_accepts_the_metrics)
{
    ls_status_copy_t c[2];
    active(&c[0]);
    passive(&c[1]);
    c[1].seed.present = true;
    c[1].seed.bytes_total = 10;
    ls_status_db_t d[2];
    degraded_db(&d[0]);
    memset(&d[1], 0, sizeof(d[1]));
    snprintf(d[1].database, sizeof(d[1].database), "db\"2");
    d[1].role = "copy";
    d[1].epoch = 1;
    c[0].block_lag_hist[ls_status_lag_bucket(3000000)] = 2;    /* 3 ms: below 2^22 ns */
    c[0].block_lag_hist[ls_status_lag_bucket(1ull << 22)] = 1; /* a bound: in the next */
    c[0].block_lag_sum_ns = 2 * 3000000 + (1ull << 22);
    ls_status_node_t n = {"node-b", false, T0, T0, c, 2, d, 2};
    char *text = ls_status_to_prometheus(&n);
    cr_assert(strstr(text, "logship_database_role{database=\"db1\",role=\"active\"} 1\n"), "%s",
              text);
    static const char *lag[] = {
        "le=\"0.002097152\"} 0\n",
        "le=\"0.004194304\"} 2\n",
        "le=\"0.008388608\"} 3\n",
        "le=\"+Inf\"} 3\n",
        "logship_block_lag_seconds_sum{database=\"db\\\"2\\\\\",role=\"active\",",
        "} 0.010194304\nlogship_block_lag_seconds_count{"};
    for (size_t i = 0; i < LS_ARRAY_SIZE(lag); i++)
        cr_assert(strstr(text, lag[i]), "%s not in\n%s", lag[i], text);
    cr_assert_null(
        strstr(text, "logship_block_lag_seconds_bucket{database=\"db1\",role=\"passive\""),
        "the active's only");
    cr_assert(strstr(text, "logship_database_epoch{database=\"db1\"} 2\n"), "%s", text);
    cr_assert(strstr(text, "logship_activation_lost_generations{database=\"db1\"} 3\n"), "%s",
              text);
    cr_assert(strstr(text, "logship_activation_lost_bytes{database=\"db1\"} 3145728\n"), "%s",
              text);
    cr_assert(strstr(text, "logship_activation_lost_to_timestamp_seconds{database=\"db1\"} "
                           "1796403238.892755210\n"),
              "%s", text);
    cr_assert(strstr(text, "logship_activation_open_generation{database=\"db1\"} 6\n"), "%s", text);
    cr_assert(strstr(text, "logship_database_role{database=\"db\\\"2\",role=\"copy\"} 1\n"), "%s",
              text);
    cr_assert(strstr(text, "logship_sync_state{database=\"db1\",state=\"degraded\","
                           "level=\"remote_durable\"} 1\n"),
              "%s", text);
    cr_assert(strstr(text, "logship_sync_state{database=\"db1\",state=\"sync\",level=\"remote_"
                           "durable\"} 0\n"),
              "%s", text);
    cr_assert(strstr(text, "logship_sync_switches_total{database=\"db1\"} 3\n"), "%s", text);
    cr_assert(strstr(text, "logship_sync_since_timestamp_seconds{database=\"db1\"} "
                           "1796403238.892755206\n"),
              "%s", text);
    cr_assert_null(strstr(text, "logship_sync_state{database=\"db\\\"2\""),
                   "a copy has no sync state: %s", text);
    char *dir = ls_h_tmpdir("status-prom"), path[512], cmd[1024], *out = NULL, *err = NULL;
    snprintf(path, sizeof(path), "%s/metrics.txt", dir);
    cr_assert_eq(ls_h_write_file(path, text, strlen(text)), 0);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
    int rc = ls_h_sh(cmd, &out, &err, 20000);
    cr_assert_eq(rc, 0, "promtool check metrics: exit %d\n%s%s\n%s", rc, out, err, text);
    free(out);
    free(err);
    free(text);
    ls_h_rmtree_free(dir);
}

Test(status, counters_kept_with_the_copy_round_trip)
{
    char *dir = ls_h_tmpdir("status-counters"), path[512];
    snprintf(path, sizeof(path), "%s/db1.counters", dir);
    ls_status_counters_t c = {0}, back;
    cr_assert_eq(ls_status_counters_load(path, &back), 0, "absent: zero");
    cr_assert_eq(back.ask_agains, 0);
    ls_status_counters_ask(&c, LS_EDIGEST);
    ls_status_counters_ask(&c, LS_ERECCKSUM);
    ls_status_counters_ask(&c, LS_ENOSPC);
    ls_status_counters_ask(&c, LS_EGAP);
    cr_assert_eq(c.ask_agains, 4);
    cr_assert_eq(c.inspection_failures, 2, "space and gaps are not inspection failures");
    c.ask_agains = 9007199254740993ull;
    cr_assert_eq(ls_status_counters_save(path, &c), 0);
    cr_assert_eq(ls_status_counters_load(path, &back), 0);
    cr_assert_eq(back.ask_agains, 9007199254740993ull);
    cr_assert_eq(back.inspection_failures, 2);
    cr_assert_eq(ls_h_write_file(path, "not json", 8), 0);
    cr_assert_eq(ls_status_counters_load(path, &back), LS_ECORRUPT);
    cr_assert_eq(back.ask_agains, 0);
    ls_h_rmtree_free(dir);
}

Test(status, the_rate_is_the_last_minute_of_bytes)
{
    const uint64_t s = 1000000000ull, t0 = 1796400000ull * s;
    ls_status_rate_t r = {0};
    cr_assert_float_eq(ls_status_rate_per_s(&r, t0), 0.0, 1e-9);
    ls_status_rate_add(&r, 600, t0);
    ls_status_rate_add(&r, 600, t0 + s / 2); /* the same second */
    ls_status_rate_add(&r, 1200, t0 + 30 * s);
    cr_assert_float_eq(ls_status_rate_per_s(&r, t0 + 30 * s), 2400.0 / 60, 1e-9);
    /* 60 s after the first second, it has left the window; the rest is still in it */
    cr_assert_float_eq(ls_status_rate_per_s(&r, t0 + 60 * s), 1200.0 / 60, 1e-9);
    cr_assert_float_eq(ls_status_rate_per_s(&r, t0 + 200 * s), 0.0, 1e-9, "a quiet minute");
    ls_status_rate_add(&r, 60, t0 + 300 * s);
    cr_assert_float_eq(ls_status_rate_per_s(&r, t0 + 10 * s), 0.0, 1e-9,
                       "a clock that went back starts over");
}

/* The lag histogram (lag.c): every value falls in a bucket whose bounds hold it and whose upper
 * bound is at most 1/16 above it; a percentile is its bucket's upper bound, never below the true
 * one; the JSON carries the non-empty buckets as [lower, upper, count]. */
Test(status, the_lag_histogram_bounds_each_value_within_a_sixteenth)
{
    for (uint64_t v = 1; v < (1ull << 40); v = v * 3 / 2 + 1) {
        size_t i = ls_status_lag_bucket(v);
        cr_assert(i < LS_STATUS_LAG_BUCKETS);
        cr_assert(ls_status_lag_lower(i) <= v && v < ls_status_lag_upper(i), "%llu in %zu",
                  (unsigned long long) v, i);
        if (v >= 1024 && i < LS_STATUS_LAG_BUCKETS - 1)
            cr_assert(ls_status_lag_upper(i) - v <= v / 16 + 1, "%llu", (unsigned long long) v);
    }
    cr_assert_eq(ls_status_lag_upper(LS_STATUS_LAG_BUCKETS - 1), UINT64_MAX);
    static uint64_t h[LS_STATUS_LAG_BUCKETS];
    cr_assert_eq(ls_status_lag_percentile(h, 99), 0, "empty");
    for (uint64_t k = 1; k <= 1000; k++)
        h[ls_status_lag_bucket(k * 1000)]++; /* 1 .. 1000 µs */
    uint64_t p99 = ls_status_lag_percentile(h, 99), p50 = ls_status_lag_percentile(h, 50);
    cr_assert(p99 > 990000 && p99 <= 990000 + 990000 / 16 + 1, "%llu", (unsigned long long) p99);
    cr_assert(p50 > 500000 && p50 <= 500000 + 500000 / 16 + 1, "%llu", (unsigned long long) p50);
    ls_status_copy_t c;
    active(&c);
    c.block_lag_samples = 2;
    c.block_lag_hist[ls_status_lag_bucket(3000000)] = 2;
    ls_status_node_t n = {"node-a", true, T0, T0, &c, 1, NULL, 0};
    char *text = json_text(&n);
    cr_assert(strstr(text, "\"block_lag_hist\":[[2883584,3014656,2]]"), "%s", text);
    free(text);
}
