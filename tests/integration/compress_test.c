/* Shipping with zstd compression on (`compression = zstd:1` on the active's target), over TLS
 * and over plaintext: the copy equals the active, fewer bytes cross the wire than were shipped,
 * and no chunk body is compressed or decompressed on either daemon's loop thread (the link's and
 * the peer's zstd workers do it), so heartbeats stay prompt during the shipment. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemons.h"
#include "harness.h"

/* About 26 generations of 1 MiB, log-like values (they compress), 4 writer threads. */
#define WORKLOAD "--transactions 1200 --records-per-txn 50 --value-size 400 --threads 4 --seed 7"

/* Heartbeats every 50 ms on both sides, so the round trip is sampled often during the load. */
#define HB "heartbeat_interval = 50ms\n"

static ls_h_pair_t pair;

static void fini(void)
{
    ls_h_pair_fini(&pair);
}

TestSuite(compress, .fini = fini, .timeout = 240);

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void ship_compressed(bool plaintext, const char *tag)
{
    ls_h_pair_opts_t o = {.plaintext = plaintext,
                          .a_target_extra = "compression = zstd:1\n",
                          .a_node_extra = HB,
                          .b_node_extra = HB};
    ls_h_pair_init(&pair, tag, &o);
    ls_h_node_start(&pair, LS_H_B, NULL);
    ls_h_node_start(&pair, LS_H_A, NULL);

    /* The loop's responsiveness while the workload ships: the worst heartbeat round trip seen
     * by the active, sampled while the copy catches up. */
    ls_h_load_start(&pair, WORKLOAD);
    double rtt_max = 0;
    int samples = 0;
    uint64_t deadline = mono_ms() + 60000;
    bool loading = true;
    while (mono_ms() < deadline) {
        cJSON *a = ls_h_status(&pair, LS_H_A);
        if (a) {
            double rtt = ls_h_num(a, "rtt_last_ms");
            if (rtt > 0) {
                samples++;
                if (rtt > rtt_max) rtt_max = rtt;
            }
            cJSON_Delete(a);
        }
        int st;
        if (loading && waitpid(pair.load, &st, WNOHANG) == pair.load) {
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "logship load failed (%d)", st);
            pair.load = 0;
            loading = false;
        }
        if (!loading && ls_h_wait_caught_up(&pair, 1)) break;
        usleep(20 * 1000);
    }
    cr_assert(ls_h_wait_caught_up(&pair, 60000), "the copy did not catch up");

    cJSON *a = ls_h_status(&pair, LS_H_A), *b = ls_h_status(&pair, LS_H_B);
    double gens = ls_h_num(a, "last_generated");
    cr_assert_geq(gens, 20, "workload made %.0f generations", gens);
    cr_assert_str_eq(ls_h_str(a, "state"), "Healthy");
    cr_assert_str_eq(ls_h_str(b, "state"), "Healthy");
    cr_assert_eq(ls_h_num(b, "last_copied"), gens);

    /* What was shipped: whole generations (GEN_DATA) and, once the copy caught up during the
     * load and went to block mode, the open generation's bytes (BLOCK); how the two split depends
     * on how fast the passive keeps up. */
    double block = ls_h_num(a, "block_bytes");
    double sent = ls_h_num(a, "sent_bytes") + block, wire = ls_h_num(a, "wire_bytes_sent");
    fprintf(stderr,
            "%s: %.0f generations, %.0f data bytes shipped (%.0f as BLOCK), %.0f bytes on the wire "
            "(%.1f%%), heartbeat rtt max %.2f ms over %d samples\n",
            tag, gens, sent, block, wire, 100.0 * wire / sent, rtt_max, samples);
    cr_assert_gt(sent, 20.0 * 1024 * 1024, "only %.0f bytes shipped", sent);
    cr_assert_gt(wire, 0);
    /* Whole generations go in 256 KiB frames and compress ~3x; BLOCK bodies are each commit
     * batch's new bytes, small frames that compress little (under 512 bytes not at all), and how
     * many bytes go as BLOCK depends on how soon the copy catches up (a faster passive: more).
     * So the GEN_DATA part must save a fifth, the BLOCK part is allowed its frames' overhead. */
    cr_assert_lt(wire, (sent - block) * 0.8 + block * 1.05,
                 "compression saved too little: %.0f wire for %.0f data (%.0f as BLOCK)", wire,
                 sent, block);
    /* The point: no chunk body was (de)compressed on a loop thread, on either side. */
    cr_assert_eq(ls_h_num(a, "zstd_loop_calls"), 0, "the active compressed on its loop");
    cr_assert_eq(ls_h_num(b, "zstd_loop_calls"), 0, "the passive decompressed on its loop");
    /* And the loop stayed responsive: one chunk compressed on the loop costs ~1 ms and a
     * backlog of them many more; a heartbeat round trip on loopback is well under this bound
     * (loose for sanitizer builds and busy machines). */
    cr_assert_gt(samples, 0, "no heartbeat round trip was measured");
    cr_assert_lt(rtt_max, 250.0, "a heartbeat round trip took %.2f ms during the shipment",
                 rtt_max);
    cJSON_Delete(a);
    cJSON_Delete(b);

    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_stop(&pair, LS_H_B);
    cr_assert(ls_h_stores_equal(&pair), "the copy differs from the active");
}

Test(compress, tls_copy_equals_active_off_loop)
{
    ship_compressed(false, "compress-tls");
}

Test(compress, plaintext_copy_equals_active_off_loop)
{
    ship_compressed(true, "compress-plain");
}

/* Inserts line after the first occurrence of after in a configuration file. */
static void conf_insert(const char *path, const char *after, const char *line)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *at = strstr(buf, after);
    cr_assert_not_null(at, "%s holds no %s", path, after);
    at += strlen(after);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fwrite(buf, 1, (size_t) (at - buf), f);
    fputs(line, f);
    fputs(at, f);
    fclose(f);
}

/* A seed with compression asked for on both sides ([source] on the passive, [target] on the
 * active): the stream goes out compressed from the seed server's zstd worker and is
 * decompressed on the seed client's, never on a loop; the seeded copy then ships on and equals
 * the active. */
Test(compress, seed_stream_compressed_off_loop)
{
    ls_h_pair_opts_t o = {
        .plaintext = true, .seedable = true, .a_target_extra = "compression = zstd:1\n"};
    ls_h_pair_init(&pair, "compress-seed", &o);
    conf_insert(pair.conf[LS_H_B], "[source node-a]\n", "compression = zstd:1\n");
    ls_h_load(&pair, WORKLOAD);
    ls_h_node_start(&pair, LS_H_A, NULL);
    ls_h_node_start(&pair, LS_H_B, NULL);
    char *out = NULL, *err = NULL;
    int rc = ls_h_seed(&pair, "--delete-existing", &out, &err, 120000);
    cr_assert_eq(rc, 0, "logship seed: %s %s", out, err);
    free(out);
    free(err);
    cr_assert(ls_h_wait_caught_up(&pair, 60000), "the seeded copy did not catch up");
    cJSON *a = ls_h_status(&pair, LS_H_A), *b = ls_h_status(&pair, LS_H_B);
    cr_assert_eq(ls_h_num(a, "zstd_loop_calls"), 0, "the active compressed on its loop");
    cr_assert_eq(ls_h_num(b, "zstd_loop_calls"), 0, "the passive decompressed on its loop");
    /* The seed connection's own figures: the client's in its seed status, the server's in the
     * line it logs when the client closes (after the client's seed status says Done). */
    const cJSON *seed =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(b, "copies"), 0), "seed");
    cr_assert_not_null(seed, "no seed in the passive's status");
    double zc = cJSON_GetNumberValue(cJSON_GetObjectItem(seed, "zstd_loop_calls"));
    double wire = cJSON_GetNumberValue(cJSON_GetObjectItem(seed, "wire_bytes_received"));
    fprintf(stderr, "compress-seed: %.0f bytes on the wire for the seed stream\n", wire);
    cr_assert_eq(zc, 0, "the seed client decompressed on its loop");
    cr_assert_gt(wire, 0);
    cJSON_Delete(a);
    cJSON_Delete(b);
    bool logged = false;
    for (int i = 0; i < 100 && !logged; i++) {
        char *log = NULL;
        char cmd[700];
        snprintf(cmd, sizeof(cmd), "grep -c 'chunk bodies compressed on the loop' %s",
                 pair.log[LS_H_A]);
        logged = ls_h_sh(cmd, &log, NULL, 5000) == 0;
        free(log);
        if (!logged) usleep(50 * 1000);
    }
    cr_assert(logged, "the seed server did not log the end of the seed connection");
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "grep -q ', 0 chunk bodies compressed on the loop' %s",
             pair.log[LS_H_A]);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 5000), 0, "the seed server compressed on its loop");
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_stop(&pair, LS_H_B);
    cr_assert(ls_h_stores_equal(&pair), "the seeded copy differs from the active");
}

static void cli(const char *args)
{
    char cmd[2048], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof(cmd), "%s %s -c %s", ls_h_bin("logship"), args, pair.conf[LS_H_A]);
    int rc = ls_h_sh(cmd, &out, &err, 20000);
    cr_assert_eq(rc, 0, "%s: exit %d: %s%s", cmd, rc, out, err);
    free(out);
    free(err);
}

/* Waits until the active reports at least gens generations durable on the target. */
static void wait_copied(double gens)
{
    for (int i = 0; i < 600; i++) {
        cJSON *a = ls_h_status(&pair, LS_H_A);
        double c = a ? ls_h_num(a, "last_copied") : -1;
        cJSON_Delete(a);
        if (c >= gens) return;
        usleep(50 * 1000);
    }
    cr_assert_fail("the copy did not reach generation %.0f", gens);
}

/* Chunks with the zstd workers when shipping stops (a suspension, a receiver killed) are sent or
 * dropped without breaking order or credit: after a resume and a restart the copy converges and
 * equals the active. */
Test(compress, suspend_and_receiver_crash_mid_shipment_converge)
{
    ls_h_pair_opts_t o = {.plaintext = true, .a_target_extra = "compression = zstd:1\n"};
    ls_h_pair_init(&pair, "compress-stop", &o);
    ls_h_node_start(&pair, LS_H_B, NULL);
    ls_h_node_start(&pair, LS_H_A, NULL);
    ls_h_load_start(&pair, "--transactions 1200 --records-per-txn 50 --value-size 400 --threads 2 "
                           "--seed 9 --rate 300");
    wait_copied(3);
    cli("suspend db1 node-b --comment 'compress test'");
    usleep(300 * 1000);
    cli("resume db1 node-b");
    cJSON *a = ls_h_status(&pair, LS_H_A);
    double now = ls_h_num(a, "last_copied");
    cJSON_Delete(a);
    wait_copied(now + 2);
    ls_h_node_kill(&pair, LS_H_B);
    ls_h_node_start(&pair, LS_H_B, NULL);
    ls_h_load_wait(&pair);
    cr_assert(ls_h_wait_caught_up(&pair, 60000), "the copy did not catch up");
    a = ls_h_status(&pair, LS_H_A);
    cr_assert_str_eq(ls_h_str(a, "state"), "Healthy");
    cr_assert_eq(ls_h_num(a, "zstd_loop_calls"), 0);
    cJSON_Delete(a);
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_stop(&pair, LS_H_B);
    cr_assert(ls_h_stores_equal(&pair), "the copy differs from the active");
}
