/* Shipping with zstd compression on (`compression = zstd:1` on the active's target), over TLS
 * and over plaintext: the copy equals the active, fewer bytes cross the wire than were shipped,
 * and no chunk body is compressed or decompressed on either daemon's loop thread (the link's and
 * the peer's zstd workers do it), so heartbeats stay prompt during the shipment. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
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

    double sent = ls_h_num(a, "sent_bytes"), wire = ls_h_num(a, "wire_bytes_sent");
    fprintf(stderr,
            "%s: %.0f generations, %.0f data bytes shipped, %.0f bytes on the wire (%.1f%%), "
            "heartbeat rtt max %.2f ms over %d samples\n",
            tag, gens, sent, wire, 100.0 * wire / sent, rtt_max, samples);
    cr_assert_gt(sent, 20.0 * 1024 * 1024, "only %.0f bytes shipped", sent);
    cr_assert_gt(wire, 0);
    cr_assert_lt(wire, sent * 0.8, "compression saved too little: %.0f wire for %.0f data", wire,
                 sent);
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
