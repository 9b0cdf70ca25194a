/* Host failure mid-write with real daemons (issue 12, docs/ACTIVATION.md "A host failure
 * mid-write"): node-a active for db1 ships to node-b while `logship load --ack-log` commits on
 * node-a; the load process and node-a's daemon are killed with SIGKILL together while commits
 * flow. In file mode the generation still open on node-a exists only there, so `logship activate`
 * on node-b must count it as possibly lost; then every acknowledged id missing from node-b's store
 * (mdb_dump) must lie in what activation reported: each is mapped to the generation on node-a's
 * disk holding its `txn/<id>` marker (found with perl over the raw files, not with logship's
 * reader): none lies before the reported range, and the number missing is at most the number of
 * markers those generations hold. The range ends at the open generation node-a last announced
 * implies; ids in a generation node-a closed after its last announcement (its daemon had not
 * seen the roll when both died: file mode's gap, which block mode closes) lie past it, as
 * activation's message says: they are counted and printed. A copy that caught up is in block
 * mode at the kill (nothing keeps file mode): then activation closes node-a's open generation
 * from its shadow and the range starts at that generation. Three moments: early, mid-stream,
 * right after a generation closed on node-a. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemons.h"
#include "harness.h"
#include "status/status.h"

static ls_h_pair_t pair;

static void fini(void)
{
    ls_h_pair_fini(&pair);
}

TestSuite(hostfail, .fini = fini, .timeout = 60);

enum moment { EARLY, MID_STREAM, AFTER_ROLL };

/* Closed generations in node-a's logs/ (names E00-<epoch>-<generation>.log). */
static int closed_on_a(void)
{
    char logs[700];
    snprintf(logs, sizeof(logs), "%s/logs", pair.db[LS_H_A]);
    DIR *d = opendir(logs);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (!strncmp(e->d_name, "E00-", 4)) n++;
    closedir(d);
    return n;
}

typedef struct {
    const char *acklog;
    uint64_t acked;   /* at least this many ids acknowledged */
    double replayed;  /* node-b has replayed at least this generation (0: no condition) */
    int closed_below; /* AFTER_ROLL: node-a holds more closed generations than this */
} moment_cond_t;

static bool moment_reached(void *ctx)
{
    moment_cond_t *c = ctx;
    if (c->closed_below > 0) return closed_on_a() > c->closed_below;
    if (ls_h_file_lines(c->acklog) < c->acked) return false;
    if (c->replayed <= 0) return true;
    cJSON *st = ls_h_status(&pair, LS_H_B);
    bool ok = st && ls_h_num(st, "last_replayed") >= c->replayed;
    cJSON_Delete(st);
    return ok;
}

/* Waits for the moment, then kills the load and node-a's daemon together. */
static void kill_at(enum moment m, const char *acklog)
{
    moment_cond_t c = {.acklog = acklog, .acked = 100, .replayed = 1};
    if (m == MID_STREAM) c.acked = 400, c.replayed = 4;
    if (m == AFTER_ROLL) {
        c.replayed = 2; /* shipping under way first */
        cr_assert(ls_h_wait_for(moment_reached, &c, 30000), "node-b replays nothing");
        c.closed_below = closed_on_a();
    }
    cr_assert(ls_h_wait_for(moment_reached, &c, 30000), "the moment %d never came", (int) m);
    pid_t load = pair.load, a = pair.pid[LS_H_A];
    kill(load, SIGKILL);
    kill(a, SIGKILL);
    ls_h_wait(load, 10000);
    ls_h_wait(a, 10000);
    pair.load = 0;
    pair.pid[LS_H_A] = 0;
}

/* Writes <dir>/missing.gen: one line "ID GENERATION" per acknowledged id whose marker node-b's
 * store lacks, GENERATION being node-a's file holding its marker ("none": no file holds it), and
 * <dir>/markers: "ID GENERATION" for every marker in node-a's files. A marker is the key
 * txn/<id>, its 16 hex digits of value, then the COMMIT record (a checksum, total_len 32, type
 * 3, FORMAT.md), which tells txn/1-5 from txn/1-50. */
static void map_missing(const char *acklog)
{
    char cmd[6000];
    snprintf(
        cmd, sizeof(cmd),
        "set -e; d=%s; cd %s/logs; : > $d/markers; "
        "for f in *.log; do "
        "  if [ \"$f\" = E00.log ]; then g=$(od -An -t u8 -j 40 -N 8 \"$f\" | tr -d ' '); "
        "  else h=${f%%.log}; h=${h##*-}; g=$(printf '%%d' 0x$h); fi; "
        "  perl -0777 -ne 'while (/txn\\/(\\d+-\\d+)[0-9a-f]{16}[\\s\\S]{4}\\x20\\x00\\x00\\x00"
        "\\x03/g) { print \"$1 '$g'\\n\" }' \"$f\" >> $d/markers; "
        "done; "
        "sort -u %s > $d/want; "
        "mdb_dump -p -s data %s/store | awk '"
        "  body && $0 == \"DATA=END\" { body = 0; next } "
        "  body { if (iskey && substr($0, 1, 5) == \" txn/\") print substr($0, 6); iskey = !iskey;"
        "         next } "
        "  $0 == \"HEADER=END\" { body = 1; iskey = 1 }' | sort -u > $d/have; "
        "comm -23 $d/want $d/have > $d/missing; "
        "sort -k1,1 $d/markers > $d/markers.s; "
        "join -a 1 -e none -o 0,2.2 $d/missing $d/markers.s > $d/missing.gen",
        pair.dir, pair.db[LS_H_A], acklog, pair.db[LS_H_B]);
    char *err = NULL;
    int rc = ls_h_sh(cmd, NULL, &err, 60000);
    cr_assert_eq(rc, 0, "mapping the missing ids failed: %s", err);
    free(err);
}

static void run(const char *tag, enum moment m)
{
    ls_h_pair_start_peers(&pair, tag, NULL, NULL);
    char ack[700], args[1000];
    snprintf(ack, sizeof(ack), "%s/ack.log", pair.dir);
    snprintf(args, sizeof(args),
             "--transactions 100000000 --records-per-txn 2 --value-size 200 --threads 2 "
             "--target-size 32768 --ack-log %s",
             ack);
    ls_h_load_start(&pair, args);
    kill_at(m, ack);
    uint64_t acked = ls_h_file_lines(ack);

    /* The kill closed node-a's sockets, but node-b may not have read the end of its connection
     * yet: activation then refuses because node-a "still answers" (its safety check, right), and
     * is asked again once node-b's loop has had its turn. Any other answer is the one checked. */
    char *out, *err;
    int rc = ls_h_logship(&pair, "activate", LS_H_B, "--max-loss 1000", &out, &err);
    for (int i = 0; i < 100 && rc == 1 && ls_h_contains(err, "still answers"); i++) {
        free(out), free(err);
        usleep(50000);
        rc = ls_h_logship(&pair, "activate", LS_H_B, "--max-loss 1000", &out, &err);
    }
    cr_assert_eq(rc, 0, "activate failed (%d): %s%s", rc, out, err);
    fprintf(stderr, "hostfail %s: %" PRIu64 " acknowledged; activate printed:\n%s", tag, acked,
            out);
    /* The copy may have caught up and gone to block mode before the kill (it does when node-b
     * keeps pace with the load, more often under load: there is no switch to keep file mode).
     * Then node-a's open generation is held here, closed from its block-mode shadow, and only
     * its commits after the shadow's last LSN (or in a later generation node-a closed without
     * announcing it) may be missing: the range starts at the shadow's generation. The
     * announcement carries no LSN past it when node-a's last BLOCK was the last it announced:
     * activation says lossless (docs/ACTIVATION.md), and what node-a acknowledged after it is
     * still checked below to lie in that generation or a later one. */
    unsigned long long sg = 0;
    const char *sh = strstr(out, "; generation ");
    if (sh && sscanf(sh, "; generation %llu closed from its block-mode shadow", &sg) != 1) sg = 0;
    if (!sg) {
        /* File mode: the open generation is named as possibly lost, in the output and in
         * status. */
        cr_assert(ls_h_contains(out, "node-a's open generation"), "%s", out);
        cr_assert(ls_h_contains(out, "and in any later generation"), "%s", out);
    }
    free(out);
    free(err);
    cJSON *st = ls_h_status(&pair, LS_H_B);
    cr_assert_not_null(st);
    const cJSON *d = ls_h_db1_of(st), *loss = cJSON_GetObjectItem(d, "loss");
    cr_assert_str_eq(ls_h_jstr(d, "role"), "active");
    uint64_t open = ls_status_json_u64(loss, "open_generation");
    uint64_t lost = ls_status_json_u64(loss, "generations");
    /* In block mode the open generation is the shadow's (0 in status when node-a announced no
     * LSN past what the shadow holds). */
    if (sg && !open) open = sg;
    uint64_t lo = lost ? ls_status_json_u64(loss, "first_generation") : open;
    uint64_t hi = lost ? ls_status_json_u64(loss, "last_generation") : 0;
    cJSON_Delete(st);
    cr_assert_gt(open, 0, "activation names no open generation of node-a");
    if (lost) cr_assert_eq(hi + 1, open, "the open generation follows the last lost");
    if (sg) cr_assert_leq(lo, sg, "the shadow's generation %llu is before the range", sg);

    map_missing(ack);
    char path[800];
    snprintf(path, sizeof(path), "%s/missing.gen", pair.dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char id[64], gen[32];
    uint64_t missing = 0, beyond = 0, newest = open;
    while (fscanf(f, "%63s %31s", id, gen) == 2) {
        missing++;
        cr_assert_neq(strcmp(gen, "none"), 0,
                      "acknowledged id %s is on neither node-b's store nor node-a's logs", id);
        uint64_t g = strtoull(gen, NULL, 10);
        cr_assert(g >= lo,
                  "acknowledged id %s missing on node-b is in node-a's generation %" PRIu64
                  ", before what activation reported (generations %" PRIu64 " on)",
                  id, g, lo);
        /* In file mode the report ends at the open generation node-a's last announcement
         * implies; a generation it closed after that announcement (its daemon had not seen the
         * roll when both died) lies past it, which activation's message names too ("and in any
         * later generation"): counted and shown. */
        if (g > open) beyond++;
        if (g > newest) newest = g;
    }
    fclose(f);
    /* No more than those generations can hold: the markers node-a's files of them carry. */
    char cmd[1200], *cnt = NULL;
    snprintf(cmd, sizeof(cmd), "awk '$2 >= %" PRIu64 " && $2 <= %" PRIu64 "' %s/markers | wc -l",
             lo, newest, pair.dir);
    cr_assert_eq(ls_h_sh(cmd, &cnt, NULL, 10000), 0);
    uint64_t held = strtoull(cnt, NULL, 10);
    free(cnt);
    fprintf(stderr,
            "hostfail %s: %" PRIu64 " of %" PRIu64 " acknowledged ids missing on node-b, all in "
            "generations %" PRIu64 "..%" PRIu64 " (which hold %" PRIu64
            " markers on node-a); %" PRIu64 " past the reported open generation %" PRIu64 "\n",
            tag, missing, acked, lo, newest, held, beyond, open);
    cr_assert_leq(missing, held);
    cr_assert_gt(acked, missing, "node-b holds some of what node-a acknowledged");
}

Test(hostfail, killed_early_loses_only_what_activation_reports)
{
    run("hostfail-early", EARLY);
}

Test(hostfail, killed_mid_stream_loses_only_what_activation_reports)
{
    run("hostfail-mid", MID_STREAM);
}

Test(hostfail, killed_right_after_a_roll_loses_only_what_activation_reports)
{
    run("hostfail-roll", AFTER_ROLL);
}
