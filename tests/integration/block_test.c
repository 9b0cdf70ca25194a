/* Block mode end to end with real daemons (docs/BLOCKMODE.md): a writer committing slowly, its
 * log never rolling while it runs; the copy's shadow follows the active's current log, byte for
 * byte; a kill -9 of the passive daemon mid-stream; then the closed generation on the copy is the
 * active's, byte for byte, and replay gives the same store. Conditions are polled with
 * deadlines, never timed. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <logship/logfmt.h>

#include "daemons.h"
#include "harness.h"

/* 600 transactions at 50 per second: 12 s of commits 20 ms apart (no idle roll), about 150 KiB
 * of log (no size roll). */
#define SLOW "--transactions 600 --rate 50 --records-per-txn 2 --value-size 100 --seed 11"

static ls_h_pair_t pair;

static void fini(void)
{
    ls_h_pair_fini(&pair);
}

TestSuite(block, .fini = fini, .timeout = 240);

typedef struct {
    double mode_block; /* node-a shows the copy in block mode */
    double gen;        /* the shadow's generation, as node-a heard it */
    double offset;     /* its bytes durable on the copy */
    double lsn;        /* the copy's durable LSN */
} block_pos_t;

static block_pos_t block_pos(void)
{
    block_pos_t b = {0};
    cJSON *st = ls_h_status(&pair, LS_H_A);
    if (!st) return b;
    b.mode_block = !strcmp(ls_h_str(st, "mode"), "block");
    b.gen = ls_h_num(st, "block_generation");
    b.offset = ls_h_num(st, "block_offset");
    b.lsn = ls_h_num(st, "block_durable_lsn");
    cJSON_Delete(st);
    return b;
}

/* The shadow holds more than `after` bytes, acknowledged in block mode. */
static bool shadow_grew(void *ctx)
{
    block_pos_t b = block_pos();
    return b.mode_block && b.gen > 0 && b.offset > *(double *) ctx;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* The shadow of generation gen on node-b begins with the bytes the copy acknowledged, the first
 * bytes of node-a's current log (its file may be longer: a file of the copy's pool overwritten in
 * place, docs/BLOCKMODE.md). */
static void shadow_is_prefix(uint64_t gen)
{
    char name[LS_GEN_NAME_MAX], shadow[1024], current[1024], cmd[3072];
    cr_assert_eq(ls_gen_name(name, sizeof(name), LS_GEN_PREFIX_DEFAULT, 1, gen), 0);
    snprintf(shadow, sizeof(shadow), "%s/shadow/%s", pair.db[LS_H_B], name);
    snprintf(current, sizeof(current), "%s/logs/E00.log", pair.db[LS_H_A]);
    block_pos_t b = block_pos();
    cr_assert_eq((uint64_t) b.gen, gen, "the stream moved to another generation");
    off_t n = (off_t) b.offset;
    cr_assert_gt(n, 0, "nothing acknowledged of %s", shadow);
    cr_assert_geq(file_size(shadow), n, "the shadow holds less than the copy acknowledged");
    cr_assert_geq(file_size(current), n, "the copy acknowledged more than the active's log");
    snprintf(cmd, sizeof(cmd), "cmp -s -n %lld '%s' '%s'", (long long) n, shadow, current);
    cr_assert_eq(system(cmd), 0, "the shadow differs from the active's current log");
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Every closed generation of node-a is in node-b's logs/, byte for byte; *bytes their sizes. */
static int closed_generations_equal(double *bytes)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/logs", pair.db[LS_H_A]);
    DIR *d = opendir(dir);
    cr_assert(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        uint32_t ep;
        uint64_t g;
        if (ls_gen_name_parse(e->d_name, LS_GEN_PREFIX_DEFAULT, &ep, &g) != 0) continue;
        char cmd[3072];
        snprintf(cmd, sizeof(cmd), "cmp -s '%s/%s' '%s/logs/%s'", dir, e->d_name, pair.db[LS_H_B],
                 e->d_name);
        cr_assert_eq(system(cmd), 0, "generation %s differs on the copy", e->d_name);
        snprintf(cmd, sizeof(cmd), "%s/%s", dir, e->d_name);
        *bytes += (double) file_size(cmd);
        n++;
    }
    closedir(d);
    return n;
}

Test(block, the_shadow_follows_the_current_log_and_survives_a_kill)
{
    ls_h_pair_init(&pair, "block", NULL);
    ls_h_node_start(&pair, LS_H_B, NULL);
    ls_h_node_start(&pair, LS_H_A, NULL);
    ls_h_load_start(&pair, SLOW);
    double zero = 0;
    if (!ls_h_wait_for(shadow_grew, &zero, 30000)) ls_h_pair_logs(&pair);
    cr_assert(ls_h_wait_for(shadow_grew, &zero, 1), "the copy never entered block mode");
    block_pos_t b = block_pos();
    /* Acknowledged commits reach the shadow while the writer goes on: it keeps growing. */
    cr_assert(ls_h_wait_for(shadow_grew, &b.offset, 10000), "the shadow stopped at %.0f", b.offset);
    shadow_is_prefix((uint64_t) b.gen);

    /* kill -9 of the passive daemon mid-stream; the restarted one is streamed to again. */
    ls_h_node_kill(&pair, LS_H_B);
    b = block_pos();
    ls_h_node_start(&pair, LS_H_B, NULL);
    cr_assert(ls_h_wait_for(shadow_grew, &b.offset, 30000), "no block mode after the restart");
    block_pos_t after = block_pos();
    cr_assert_geq(after.lsn, b.lsn, "the durable LSN went back");
    shadow_is_prefix((uint64_t) after.gen);

    /* The writer closes: its generation rolls and is finished from the shadow (GEN_TAIL: only
     * the bytes it lacks travel, the whole file is checked); the shadow goes. */
    ls_h_load_wait(&pair);
    cr_assert(ls_h_wait_caught_up(&pair, 60000), "the copy did not catch up");
    char shadows[1024];
    snprintf(shadows, sizeof(shadows), "%s/shadow", pair.db[LS_H_B]);
    cr_assert_eq(count_entries(shadows), 0, "a shadow was left once its generation was held");
    cJSON *a = ls_h_status(&pair, LS_H_A);
    cr_assert_geq(ls_h_num(a, "mode_switches"), 1);
    cr_assert_gt(ls_h_num(a, "block_bytes"), 0);
    cr_assert_gt(ls_h_num(a, "block_lag_samples"), 0);
    double gen_data = ls_h_num(a, "sent_bytes"), streamed = ls_h_num(a, "block_bytes");
    cJSON_Delete(a);
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_stop(&pair, LS_H_B);
    double closed = 0;
    cr_assert_geq(closed_generations_equal(&closed), 1);
    /* The streamed generation's closed file did not travel again (whole, GEN_DATA would carry
     * every closed byte at least once). */
    cr_log_info("closed %.0f bytes, GEN_DATA %.0f, BLOCK %.0f", closed, gen_data, streamed);
    cr_assert_lt(gen_data, closed / 2, "GEN_DATA %.0f of %.0f closed bytes (BLOCK %.0f)", gen_data,
                 closed, streamed);
    cr_assert(ls_h_stores_equal(&pair), "replay differs from the active's store");
}
