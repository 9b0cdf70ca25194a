/* Lag accounting, status and operator control with real daemons: exact queues on both sides,
 * suspend/resume (also replay only, also across a restart), the JSON document (times as exact
 * integers), the Prometheus endpoint (checked by promtool), counters kept across restarts, and
 * the command line against no daemon. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <logship/db.h>

#include "control/control.h"

#include "daemons.h"
#include "harness.h"

static ls_h_pair_t pair;

static void fini(void)
{
    ls_h_pair_fini(&pair);
}

TestSuite(status, .fini = fini, .timeout = 120);

/* Writes exactly n new generations into node-a's db1 through the public API and returns the sum
 * of their file sizes; *last gets the last generation's number. */
static uint64_t write_generations(int n, uint64_t *last)
{
    ls_db_t *db;
    ls_db_options_t o = {.no_idle_roll = true};
    cr_assert_eq(ls_db_open(pair.db[LS_H_A], &o, &db), 0, "%s", ls_db_open_error());
    char key[32], val[600];
    memset(val, 'v', sizeof(val));
    for (int g = 0; g < n; g++) {
        for (int t = 0; t < 20; t++) {
            ls_txn_t *txn;
            cr_assert_eq(ls_txn_begin(db, &txn), 0);
            snprintf(key, sizeof(key), "g%d-t%d-%d", g, t, rand());
            cr_assert_eq(ls_txn_put(txn, key, strlen(key), val, sizeof(val)), 0);
            cr_assert_eq(ls_txn_commit(txn), 0);
        }
        cr_assert_eq(ls_db_roll(db), 0);
    }
    ls_db_stats_t st;
    ls_db_stats(db, &st);
    *last = st.last_closed;
    cr_assert_eq(ls_db_close(db), 0);
    uint64_t bytes = 0;
    for (uint64_t g = *last - (uint64_t) n + 1; g <= *last; g++) {
        char path[700];
        struct stat sb;
        snprintf(path, sizeof(path), "%s/logs/E00-00000001-%016llx.log", pair.db[LS_H_A],
                 (unsigned long long) g);
        cr_assert_eq(stat(path, &sb), 0, "%s", path);
        bytes += (uint64_t) sb.st_size;
    }
    return bytes;
}

static void cli(const char *conf, const char *args, int want)
{
    char cmd[2048], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof(cmd), "%s %s -c %s", ls_h_bin("logship"), args, conf);
    int rc = ls_h_sh(cmd, &out, &err, 20000);
    cr_assert_eq(rc, want, "%s: exit %d: %s%s", cmd, rc, out, err);
    free(out);
    free(err);
}

static void start_pair(const ls_h_pair_opts_t *o)
{
    ls_h_pair_init(&pair, "status", o);
    ls_h_node_start(&pair, LS_H_B, NULL);
    ls_h_node_start(&pair, LS_H_A, NULL);
    uint64_t last;
    write_generations(2, &last);
    cr_assert(ls_h_wait_caught_up(&pair, 30000));
}

Test(status, suspended_copy_queues_exactly_ten_generations_then_drains)
{
    start_pair(&(ls_h_pair_opts_t){.plaintext = true});
    cli(pair.conf[LS_H_A], "suspend db1 node-b --comment 'disk swap on node-b'", 0);
    cr_assert(ls_h_wait_state(&pair, LS_H_B, "Suspended", 10000));
    uint64_t last, bytes = write_generations(10, &last);
    for (int node = 0; node < 2; node++) {
        cr_assert(ls_h_wait_num(&pair, node, "copy_queue", 10, 15000), "node %d", node);
        cr_assert(ls_h_wait_num(&pair, node, "copy_queue_bytes", (double) bytes, 5000),
                  "node %d: copy_queue_bytes is not %llu", node, (unsigned long long) bytes);
        cJSON *st = ls_h_status(&pair, node);
        cr_assert_str_eq(ls_h_str(st, "state"), "Suspended");
        cr_assert_str_eq(ls_h_str(st, "comment"), "disk swap on node-b");
        cr_assert_eq(ls_h_num(st, "last_generated"), (double) last);
        cr_assert_gt(ls_h_num(st, "copy_lag_s"), 0);
        cJSON_Delete(st);
    }
    cli(pair.conf[LS_H_A], "resume db1 node-b", 0);
    cr_assert(ls_h_wait_caught_up(&pair, 30000));
    for (int node = 0; node < 2; node++) {
        cr_assert(ls_h_wait_num(&pair, node, "copy_queue", 0, 10000));
        cJSON *st = ls_h_status(&pair, node);
        cr_assert_eq(ls_h_num(st, "last_replayed"), (double) last);
        cr_assert_eq(ls_h_num(st, "copy_queue_bytes"), 0);
        cr_assert_str_eq(ls_h_str(st, "state"), "Healthy");
        cJSON_Delete(st);
    }
}

Test(status, replay_only_suspension_queues_exactly_what_arrives)
{
    start_pair(&(ls_h_pair_opts_t){.plaintext = true});
    cJSON *st = ls_h_status(&pair, LS_H_B);
    double replayed = ls_h_num(st, "last_replayed");
    cJSON_Delete(st);
    cli(pair.conf[LS_H_B], "suspend db1 node-a --replay-only --comment 'inspect the store'", 0);
    uint64_t last, bytes = write_generations(5, &last);
    cr_assert(ls_h_wait_num(&pair, LS_H_B, "last_copied", (double) last, 15000));
    cr_assert(ls_h_wait_num(&pair, LS_H_B, "last_inspected", (double) last, 5000));
    st = ls_h_status(&pair, LS_H_B);
    cr_assert_eq(ls_h_num(st, "last_replayed"), replayed, "replay is paused");
    cr_assert_eq(ls_h_num(st, "replay_queue"), 5);
    cr_assert_eq(ls_h_num(st, "replay_queue_bytes"), (double) bytes);
    cr_assert_eq(ls_h_num(st, "copy_queue"), 0, "copying goes on");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(
        cJSON_GetArrayItem(cJSON_GetObjectItem(st, "copies"), 0), "replay_suspended")));
    cJSON_Delete(st);
    cli(pair.conf[LS_H_B], "resume db1 node-a --replay-only", 0);
    cr_assert(ls_h_wait_caught_up(&pair, 30000));
    cr_assert(ls_h_wait_num(&pair, LS_H_B, "replay_queue", 0, 5000));
}

Test(status, suspension_survives_restarts_of_either_daemon)
{
    start_pair(&(ls_h_pair_opts_t){.plaintext = true});
    cli(pair.conf[LS_H_A], "suspend db1 node-b --comment 'quarterly maintenance'", 0);
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_start(&pair, LS_H_A, NULL);
    cr_assert(ls_h_wait_state(&pair, LS_H_A, "Suspended", 5000));
    cr_assert(ls_h_wait_state(&pair, LS_H_B, "Suspended", 10000), "the target is told again");
    cJSON *st = ls_h_status(&pair, LS_H_A);
    cr_assert_str_eq(ls_h_str(st, "comment"), "quarterly maintenance");
    cJSON_Delete(st);
    uint64_t last;
    write_generations(2, &last);
    cr_assert(ls_h_wait_num(&pair, LS_H_A, "copy_queue", 2, 10000),
              "nothing ships while suspended");
    cli(pair.conf[LS_H_A], "resume db1 node-b", 0);
    cr_assert(ls_h_wait_caught_up(&pair, 30000));
    /* The passive's own suspension, across its restart. */
    cli(pair.conf[LS_H_B], "suspend db1 node-a --comment 'copy under test'", 0);
    ls_h_node_stop(&pair, LS_H_B);
    ls_h_node_start(&pair, LS_H_B, NULL);
    cr_assert(ls_h_wait_state(&pair, LS_H_B, "Suspended", 5000));
    cr_assert(ls_h_wait_state(&pair, LS_H_A, "Suspended", 10000), "the source stops shipping");
    st = ls_h_status(&pair, LS_H_A);
    cr_assert_str_eq(ls_h_str(st, "comment"), "copy under test");
    cJSON_Delete(st);
    write_generations(1, &last);
    cr_assert(ls_h_wait_num(&pair, LS_H_B, "copy_queue", 1, 10000));
    cli(pair.conf[LS_H_B], "resume db1 node-a", 0);
    cr_assert(ls_h_wait_caught_up(&pair, 30000));
}

Test(status, json_document_carries_every_field_on_both_sides)
{
    start_pair(NULL); /* TLS */
    static const char *fields[] = {"database",
                                   "target",
                                   "state",
                                   "comment",
                                   "network",
                                   "last_generated",
                                   "last_copied",
                                   "last_inspected",
                                   "last_replayed",
                                   "copy_queue",
                                   "replay_queue",
                                   "copy_queue_bytes",
                                   "replay_queue_bytes",
                                   "copy_lag_s",
                                   "replay_lag_s",
                                   "throughput_bps",
                                   "rtt_ms",
                                   "ask_agains",
                                   "inspection_failures",
                                   "last_copied_time_ns"};
    for (int node = 0; node < 2; node++) {
        char cmd[1024], *out = NULL;
        snprintf(cmd, sizeof(cmd), "%s status --json -c %s", ls_h_bin("logship"), pair.conf[node]);
        cr_assert_eq(ls_h_sh(cmd, &out, NULL, 10000), 0);
        cJSON *doc = cJSON_Parse(out);
        cr_assert_not_null(doc, "status --json is one JSON document: %s", out);
        const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "copies"), 0);
        cr_assert_not_null(c);
        for (size_t i = 0; i < sizeof(fields) / sizeof(*fields); i++)
            cr_assert_not_null(cJSON_GetObjectItem(c, fields[i]), "node %d lacks %s", node,
                               fields[i]);
        cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(c, "tls")));
        cJSON_Delete(doc);
        free(out);
    }
}

/* The digits of "key":DIGITS in text, copied into out ("" when absent). */
static void digits_of(const char *text, const char *key, char *out, size_t outlen)
{
    char pat[128];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(text, pat);
    out[0] = '\0';
    if (!p) return;
    p += strlen(pat);
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strcspn(p, ",}\n");
    snprintf(out, outlen, "%.*s", (int) (n < outlen ? n : outlen - 1), p);
}

/* Defect 8: nanosecond times (above 2^53) were printed as doubles, 1.7964032388927552e+18. */
Test(status, json_times_are_exact_integers_in_the_daemon_and_the_command)
{
    start_pair(&(ls_h_pair_opts_t){.plaintext = true});
    for (int node = 0; node < 2; node++) {
        char *raw = NULL, err[256], want[64], got[64], cmd[1024], *out = NULL;
        cr_assert_eq(
            ls_control_call(pair.sock[node], "{\"cmd\":\"status\"}", 5000, &raw, err, sizeof(err)),
            0, "%s", err);
        digits_of(raw, "last_copied_time_ns", want, sizeof(want));
        cr_assert_eq(strlen(want), 19, "node %d: a UTC ns time has 19 digits: '%s'", node, want);
        cr_assert_eq(strspn(want, "0123456789"), 19, "node %d: not an integer: '%s'", node, want);
        digits_of(raw, "time_ns", got, sizeof(got));
        cr_assert_eq(strspn(got, "0123456789"), 19, "node %d: time_ns '%s'", node, got);
        free(raw);
        /* The position does not move once caught up: the command prints the same digits. */
        snprintf(cmd, sizeof(cmd), "%s status --json -c %s", ls_h_bin("logship"), pair.conf[node]);
        cr_assert_eq(ls_h_sh(cmd, &out, NULL, 10000), 0);
        digits_of(out, "last_copied_time_ns", got, sizeof(got));
        cr_assert_str_eq(got, want, "node %d: logship status --json prints %s for %s", node, got,
                         want);
        cr_assert(!ls_h_contains(out, "e+18"), "no time printed as a double:\n%s", out);
        free(out);
    }
}

static double copy_num(int node, const char *field)
{
    cJSON *st = ls_h_status(&pair, node);
    double v = st ? ls_h_num(st, field) : -1;
    cJSON_Delete(st);
    return v;
}

/* Defect 9: ask_agains and inspection_failures are kept with the copy, on both sides. */
Test(status, ask_again_counters_survive_a_restart_of_both_daemons)
{
    ls_h_pair_init(&pair, "counters", &(ls_h_pair_opts_t){.plaintext = true});
    char *env[] = {"LS_FAULTS=receiver.flip_bit=fail@3", NULL};
    ls_h_node_start(&pair, LS_H_B, env);
    ls_h_node_start(&pair, LS_H_A, NULL);
    uint64_t last;
    write_generations(6, &last);
    cr_assert(ls_h_wait_caught_up(&pair, 30000));
    double b_fail = copy_num(LS_H_B, "inspection_failures"), b_ask = copy_num(LS_H_B, "ask_agains");
    double a_fail = copy_num(LS_H_A, "inspection_failures"), a_ask = copy_num(LS_H_A, "ask_agains");
    cr_assert_geq(b_fail, 1, "the flipped bit failed an inspection");
    cr_assert_geq(b_ask, b_fail);
    cr_assert_geq(a_ask, 1, "the active was asked again");
    cr_assert_geq(a_fail, 1, "... because an inspection failed");
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_stop(&pair, LS_H_B);
    ls_h_node_start(&pair, LS_H_B, NULL);
    ls_h_node_start(&pair, LS_H_A, NULL);
    cr_assert_eq(copy_num(LS_H_B, "inspection_failures"), b_fail);
    cr_assert_eq(copy_num(LS_H_B, "ask_agains"), b_ask);
    cr_assert_eq(copy_num(LS_H_A, "inspection_failures"), a_fail);
    cr_assert_eq(copy_num(LS_H_A, "ask_agains"), a_ask);
    write_generations(1, &last);
    cr_assert(ls_h_wait_caught_up(&pair, 30000));
    cr_assert_eq(copy_num(LS_H_A, "ask_agains"), a_ask, "nothing new was asked");
}

Test(status, metrics_endpoint_serves_the_same_numbers)
{
    char extra[64];
    int port = 20000 + (int) (getpid() % 20000);
    snprintf(extra, sizeof(extra), "metrics_listen = 127.0.0.1:%d\n", port);
    ls_h_pair_init(&pair, "metrics", &(ls_h_pair_opts_t){.plaintext = true, .a_node_extra = extra});
    ls_h_node_start(&pair, LS_H_B, NULL);
    ls_h_node_start(&pair, LS_H_A, NULL);
    uint64_t last;
    write_generations(3, &last);
    cr_assert(ls_h_wait_caught_up(&pair, 30000));
    cli(pair.conf[LS_H_A], "suspend db1 node-b", 0);
    uint64_t bytes = write_generations(4, &last);
    cr_assert(ls_h_wait_num(&pair, LS_H_A, "copy_queue", 4, 10000));
    char cmd[256], *out = NULL;
    snprintf(cmd, sizeof(cmd), "curl -sS --max-time 10 http://127.0.0.1:%d/metrics", port);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 15000), 0, "curl failed: %s", out);
    const char *labels = "{database=\"db1\",role=\"active\",source=\"node-a\",target=\"node-b\"}";
    char want[512];
    snprintf(want, sizeof(want), "logship_copy_queue%s 4\n", labels);
    cr_assert(ls_h_contains(out, want), "%s not in:\n%s", want, out);
    snprintf(want, sizeof(want), "logship_copy_queue_bytes%s %llu\n", labels,
             (unsigned long long) bytes);
    cr_assert(ls_h_contains(out, want), "%s not in:\n%s", want, out);
    snprintf(want, sizeof(want), "logship_last_generated%s %llu\n", labels,
             (unsigned long long) last);
    cr_assert(ls_h_contains(out, want), "%s not in:\n%s", want, out);
    cr_assert(ls_h_contains(out, "state=\"Suspended\"} 1"), "%s", out);
    snprintf(want, sizeof(want), "logship_rtt_seconds%s ", labels);
    cr_assert(ls_h_contains(out, want), "the round trip in seconds: %s", out);
    cr_assert(!ls_h_contains(out, "milliseconds"), "base units only: %s", out);
    free(out);
    /* Prometheus's own linter accepts the endpoint (base units, HELP/TYPE, _total counters). */
    char *err = NULL, cmd2[2048];
    snprintf(cmd2, sizeof(cmd2),
             "curl -sS --max-time 10 -o %s/metrics.txt http://127.0.0.1:%d/metrics && "
             "promtool check metrics < %s/metrics.txt",
             pair.dir, port, pair.dir);
    int rc = ls_h_sh(cmd2, &out, &err, 30000);
    cr_assert_eq(rc, 0, "promtool check metrics: exit %d: %s%s", rc, out, err);
    free(out);
    free(err);
    snprintf(cmd, sizeof(cmd), "curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/x",
             port);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 15000), 0);
    cr_assert_str_eq(out, "404");
    free(out);
}

Test(status, command_line_without_a_daemon_says_so)
{
    char cmd[512], *err = NULL;
    snprintf(cmd, sizeof(cmd), "%s status --socket /nonexistent/logshipd.sock",
             ls_h_bin("logship"));
    cr_assert_eq(ls_h_sh(cmd, NULL, &err, 10000), 1);
    cr_assert(
        ls_h_contains(err, "no logshipd is running on control socket /nonexistent/logshipd.sock"),
        "%s", err);
    free(err);
    snprintf(cmd, sizeof(cmd), "%s suspend db1 --socket /x", ls_h_bin("logship"));
    cr_assert_eq(ls_h_sh(cmd, NULL, &err, 10000), 2, "a missing argument is a usage error");
    free(err);
}

/* Suspending in the middle of a generation abandons it half-sent: shipping must pick up cleanly
 * on resume (a generation abandoned mid-way once crashed the active). A 64 KiB receive window
 * keeps most generations half-sent at any moment. */
Test(status, suspend_and_resume_at_random_moments_under_load)
{
    start_pair(&(ls_h_pair_opts_t){.plaintext = true, .b_node_extra = "receive_window = 64KiB\n"});
    ls_h_load_start(&pair, "--transactions 1500 --records-per-txn 50 --value-size 400 --threads 2 "
                           "--seed 13 --rate 300");
    srand((unsigned) getpid());
    for (int i = 0; i < 20; i++) {
        cli(pair.conf[LS_H_A], "suspend db1 node-b --comment cycle", 0);
        usleep((useconds_t) (20000 + rand() % 80000));
        cli(pair.conf[LS_H_A], "resume db1 node-b", 0);
        usleep((useconds_t) (20000 + rand() % 150000));
    }
    ls_h_load_wait(&pair);
    cr_assert(ls_h_wait_caught_up(&pair, 60000), "the copy did not catch up after the cycles");
    cJSON *b = ls_h_status(&pair, LS_H_B);
    cr_assert_eq(ls_h_num(b, "applied_generations"), ls_h_num(b, "last_replayed"));
    cJSON_Delete(b);
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_stop(&pair, LS_H_B);
    cr_assert(ls_h_stores_equal(&pair));
}
