/* Planned switchover with real daemons (issue 12, docs/ACTIVATION.md "Planned switchover"):
 * node-a active for db1, node-b its copy, both configured for both roles ([peer node-a] and
 * `copies` on node-b, node-a listening too).
 *   - ten switchovers back and forth under load: `logship load --ack-log` runs on the active
 *     while `logship switchover db1 --to <other>` hands it over; the load there then fails with
 *     LS_EFENCED naming the new active, and a new load starts on the new active. At the end every
 *     acknowledged id has its marker in the final active's store (tools/ack-check.sh), both
 *     stores are equal by mdb_dump, and no generation was applied twice: each generation is
 *     written by one node's writer and replayed by the other, so the two stores' meta counters
 *     of replayed generations (applied_generations, read with mdb_dump) add up to exactly the
 *     number of generations closed;
 *   - refusals: db1 not active here, a node outside the copy set, the copy not connected (its
 *     daemon stopped): refused naming the reason, nothing held (commits go on); a copy that does
 *     not replay (replay suspended): the switchover times out, the hold is undone and commits
 *     are accepted again;
 *   - no writer open: the daemon closes the current log itself and the hand-over is the same. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <logship/error.h>

#include "daemons.h"
#include "harness.h"
#include "scripted.h"
#include "status/status.h"
#include "writer/ctlpage.h"

static ls_h_pair_t pair;
static pid_t load_pid;

static void fini(void)
{
    if (load_pid > 0) {
        ls_h_kill(load_pid, SIGKILL);
        ls_h_wait(load_pid, 5000);
    }
    load_pid = 0;
    ls_h_pair_fini(&pair);
}

TestSuite(switchover, .fini = fini, .timeout = 150);

static const char *name_of(int node)
{
    return node == LS_H_A ? "node-a" : "node-b";
}

static void start_pair(const char *tag)
{
    ls_h_pair_opts_t o = {
        .plaintext = true, .seedable = true, .b_db_extra = "copies = node-a, node-b\n"};
    ls_h_pair_init(&pair, tag, &o);
    char cmd[1200];
    snprintf(
        cmd, sizeof(cmd),
        "sed -i 's/^\\[source node-a\\]$/[peer node-a]/' %s && grep -q '^\\[peer node-a\\]$' %s",
        pair.conf[LS_H_B], pair.conf[LS_H_B]);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 5000), 0, "no [source node-a] in node-b's configuration");
    ls_h_node_start(&pair, LS_H_A, NULL);
    ls_h_node_start(&pair, LS_H_B, NULL);
}

/* `logship CMD db1 ARGS -c <node's config>`: exit status, output captured. */
static int logship(const char *cmd, int node, const char *args, char **out, char **err)
{
    char line[2048];
    snprintf(line, sizeof(line), "%s %s db1 %s -c %s", ls_h_bin("logship"), cmd, args,
             pair.conf[node]);
    *out = *err = NULL;
    return ls_h_sh(line, out, err, 90000);
}

static void load_ok(int node, const char *args)
{
    char cmd[2048], *err = NULL;
    snprintf(cmd, sizeof(cmd), "%s load %s %s", ls_h_bin("logship"), pair.db[node], args);
    int rc = ls_h_sh(cmd, NULL, &err, 60000);
    cr_assert_eq(rc, 0, "logship load on %s: %s", name_of(node), err);
    free(err);
}

/* A load that runs until its commits fail: paced, generations of 64 KiB, ids in acklog. */
static void load_start(int node, const char *acklog, const char *errlog, int seed)
{
    load_pid = ls_h_load_until_fenced(&pair, node, acklog, errlog, seed);
}

/* The load ended on its own, refused with LS_EFENCED naming the new active. */
static void load_fenced(const char *errlog, const char *new_active)
{
    ls_h_load_fenced(load_pid, errlog, new_active);
    load_pid = 0;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static const cJSON *db1_of(const cJSON *st)
{
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(st, "databases"))
    {
        if (!strcmp(jstr(d, "database"), "db1")) return d;
    }
    return NULL;
}

typedef struct {
    int node;
    const char *role;  /* db1's role in "databases" */
    const char *state; /* db1's copy state in "copies" */
} role_cond_t;

static bool role_is(void *ctx)
{
    role_cond_t *c = ctx;
    cJSON *st = ls_h_status(&pair, c->node);
    const cJSON *d = st ? db1_of(st) : NULL;
    bool ok = d && !strcmp(jstr(d, "role"), c->role) && !strcmp(ls_h_str(st, "state"), c->state);
    cJSON_Delete(st);
    return ok;
}

static void wait_role(int node, const char *role, const char *state)
{
    role_cond_t c = {node, role, state};
    bool ok = ls_h_wait_for(role_is, &c, 30000);
    if (!ok) ls_h_pair_logs(&pair);
    cr_assert(ok, "db1 on %s is not %s with its copy %s", name_of(node), role, state);
}

static void ack_check(int node, const char *acklog)
{
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof(cmd), "sh %s/tools/ack-check.sh %s/store %s", LS_SOURCE_DIR, pair.db[node],
             acklog);
    int rc = ls_h_sh(cmd, &out, NULL, 60000);
    cr_assert_eq(rc, 0, "ack-check of %s against %s: %s", name_of(node), acklog, out);
    free(out);
}

/* The store meta's applied_generations (u64 at offset 96 of the meta record), by mdb_dump. */
static uint64_t applied_generations(int node)
{
    char cmd[1200], *out = NULL;
    snprintf(cmd, sizeof(cmd),
             "mdb_dump -s meta %s/store | sed -n '/^HEADER=END/,/^DATA=END/p' | sed -n 3p",
             pair.db[node]);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 10000), 0);
    const char *hex = out;
    while (*hex == ' ')
        hex++;
    cr_assert_geq(strlen(hex), 208, "meta record of %s too short: %s", name_of(node), out);
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        unsigned byte;
        cr_assert_eq(sscanf(hex + 192 + 2 * i, "%2x", &byte), 1);
        v = v << 8 | byte;
    }
    free(out);
    return v;
}

/* The highest generation number in node's logs/ (any epoch). */
static uint64_t newest_generation(int node)
{
    char cmd[1500], *out = NULL;
    snprintf(cmd, sizeof(cmd),
             "ls %s/logs | sed -n 's/^E00-[0-9a-f]*-\\([0-9a-f]*\\)\\.log$/\\1/p' "
             "| while read g; do echo $((0x$g)); done | sort -n | tail -1",
             pair.db[node]);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 5000), 0);
    uint64_t g = strtoull(out ? out : "0", NULL, 10);
    free(out);
    return g;
}

/* Every generation 1..newest once in node's logs/: no number with two epochs. */
static void generations_once(int node, uint64_t newest)
{
    char cmd[1500], *out = NULL;
    snprintf(cmd, sizeof(cmd),
             "ls %s/logs | sed -n 's/^E00-[0-9a-f]*-\\([0-9a-f]*\\)\\.log$/\\1/p' | sort | uniq -d "
             "| wc -l",
             pair.db[node]);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 5000), 0);
    cr_assert_eq(strtoull(out, NULL, 10), 0, "a generation number appears twice in %s's logs",
                 name_of(node));
    free(out);
    (void) newest;
}

Test(switchover, ten_switchovers_under_load_lose_nothing)
{
    start_pair("switchover-ten");
    enum { ROUNDS = 10 };
    char ack[ROUNDS][700], errlog[ROUNDS][700];
    int cur = LS_H_A;
    for (int i = 0; i < ROUNDS; i++) {
        int other = cur == LS_H_A ? LS_H_B : LS_H_A;
        snprintf(ack[i], sizeof(ack[i]), "%s/ack%d.log", pair.dir, i);
        snprintf(errlog[i], sizeof(errlog[i]), "%s/load%d.log", pair.dir, i);
        load_start(cur, ack[i], errlog[i], 100 + i);
        cr_assert(ls_h_wait_file_lines(ack[i], 150, 20000),
                  "round %d: the load acknowledged nothing", i);
        wait_role(cur, "active", "Healthy");
        char args[200], *out, *err;
        snprintf(args, sizeof(args), "--to %s", name_of(other));
        int rc = logship("switchover", cur, args, &out, &err);
        if (rc) ls_h_pair_logs(&pair);
        cr_assert_eq(rc, 0, "round %d: switchover %s -> %s failed (%d): %s%s", i, name_of(cur),
                     name_of(other), rc, out, err);
        char want[200];
        snprintf(want, sizeof(want), "switched db1 over to %s: handed over generations up to",
                 name_of(other));
        cr_assert(ls_h_contains(out, want), "%s", out);
        cr_assert(ls_h_contains(out, "nothing lost") && ls_h_contains(out, "commits held for"),
                  "%s", out);
        free(out);
        free(err);
        load_fenced(errlog[i], name_of(other));
        wait_role(other, "active", "Healthy");
        wait_role(cur, "copy", "Healthy");
        cur = other;
    }
    /* Everything of the last epoch's predecessor replayed on the final copy. */
    int copy = cur == LS_H_A ? LS_H_B : LS_H_A;
    load_ok(cur, "--transactions 200 --seed 7 --target-size 65536");
    cr_assert(ls_h_wait_copy_caught_up(&pair, cur, copy, 30000), "the final copy did not catch up");
    for (int i = 0; i < ROUNDS; i++)
        ack_check(cur, ack[i]);
    cr_assert(ls_h_stores_equal(&pair), "the stores differ after ten switchovers");
    /* No generation applied twice: each is replayed on exactly one side (the node that did not
     * write it), so the replay counters add up to the number of generations. */
    uint64_t newest = newest_generation(cur);
    cr_assert_eq(newest, newest_generation(copy), "the nodes hold different last generations");
    generations_once(LS_H_A, newest);
    generations_once(LS_H_B, newest);
    uint64_t ga = applied_generations(LS_H_A), gb = applied_generations(LS_H_B);
    cr_assert_eq(ga + gb, newest,
                 "replayed generations: node-a %" PRIu64 " + node-b %" PRIu64 " != %" PRIu64
                 " generations written",
                 ga, gb, newest);
    cJSON *st = ls_h_status(&pair, copy);
    cr_assert_eq((uint64_t) ls_h_num(st, "applied_generations"), copy == LS_H_A ? ga : gb,
                 "status and the store meta disagree");
    cJSON_Delete(st);
    ls_h_node_stop(&pair, LS_H_A); /* clean exits (no leak under the sanitizers) */
    ls_h_node_stop(&pair, LS_H_B);
}

Test(switchover, refusals_leave_the_database_active)
{
    start_pair("switchover-refused");
    load_ok(LS_H_A, "--transactions 300 --target-size 65536");
    wait_role(LS_H_A, "active", "Healthy");
    char *out, *err;
    /* Not active here. */
    int rc = logship("switchover", LS_H_B, "--to node-a", &out, &err);
    cr_assert_eq(rc, 1, "%s%s", out, err);
    cr_assert(ls_h_contains(err, "db1 is not active on node-b"), "%s", err);
    free(out);
    free(err);
    /* Not in the copy set. */
    rc = logship("switchover", LS_H_A, "--to node-z", &out, &err);
    cr_assert_eq(rc, 1, "%s%s", out, err);
    cr_assert(ls_h_contains(err, "node-z is not in its copy set (node-a, node-b)"), "%s", err);
    free(out);
    free(err);
    /* Bad usage. */
    rc = logship("switchover", LS_H_A, "", &out, &err);
    cr_assert_eq(rc, 2, "%s%s", out, err);
    cr_assert(ls_h_contains(err, "--to NODE is required"), "%s", err);
    free(out);
    free(err);

    /* The copy not replaying: held, timed out, undone; commits go on afterwards. */
    rc = logship("suspend", LS_H_B, "node-a --replay-only", &out, &err);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    free(out);
    free(err);
    char ack[700], errlog[700];
    snprintf(ack, sizeof(ack), "%s/ack-timeout.log", pair.dir);
    snprintf(errlog, sizeof(errlog), "%s/load-timeout.log", pair.dir);
    load_start(LS_H_A, ack, errlog, 5);
    cr_assert(ls_h_wait_file_lines(ack, 100, 20000), "the load acknowledged nothing");
    rc = logship("switchover", LS_H_A, "--to node-b --timeout 2", &out, &err);
    cr_assert_eq(rc, 1, "%s%s", out, err);
    cr_assert(ls_h_contains(err, "timed out after 2000 ms: node-b replayed up to generation"), "%s",
              err);
    cr_assert(ls_h_contains(err, "the hold is undone: db1 is active on node-a again"), "%s", err);
    free(out);
    free(err);
    load_fenced(errlog, "node-b"); /* commits in the hold were refused, naming node-b */
    load_ok(LS_H_A, "--transactions 100 --seed 11 --target-size 65536"); /* accepted again */
    rc = logship("resume", LS_H_B, "node-a --replay-only", &out, &err);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    free(out);
    free(err);
    wait_role(LS_H_B, "copy", "Healthy");

    /* The copy not connected (its daemon stopped): refused at once; nothing held. */
    ls_h_node_stop(&pair, LS_H_B);
    rc = logship("switchover", LS_H_A, "--to node-b", &out, &err);
    cr_assert_eq(rc, 1, "%s%s", out, err);
    cr_assert(ls_h_contains(err, "switchover of db1 refused: node-b's copy is") &&
                  ls_h_contains(err, "it must be connected and Healthy"),
              "%s", err);
    free(out);
    free(err);
    load_ok(LS_H_A, "--transactions 100 --seed 12 --target-size 65536");
    cJSON *st = ls_h_status(&pair, LS_H_A);
    cr_assert_str_eq(jstr(db1_of(st), "role"), "active");
    cJSON_Delete(st);
    ack_check(LS_H_A, ack);
}

Test(switchover, without_a_writer_the_daemon_closes_the_log)
{
    start_pair("switchover-nowriter");
    char ack[700];
    snprintf(ack, sizeof(ack), "%s/ack.log", pair.dir);
    char args[900];
    snprintf(args, sizeof(args), "--transactions 500 --target-size 65536 --ack-log %s", ack);
    load_ok(LS_H_A, args);
    wait_role(LS_H_A, "active", "Healthy");
    char *out, *err;
    int rc = logship("switchover", LS_H_A, "--to node-b", &out, &err);
    if (rc) ls_h_pair_logs(&pair);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    cr_assert(ls_h_contains(out, "no writer had it open: the daemon closed its log"), "%s", out);
    free(out);
    free(err);
    wait_role(LS_H_B, "active", "Healthy");
    wait_role(LS_H_A, "copy", "Healthy");
    ack_check(LS_H_B, ack);
    cJSON *st = ls_h_status(&pair, LS_H_A);
    const cJSON *d = db1_of(st);
    cr_assert_str_eq(jstr(d, "follows"), "node-b");
    cr_assert_eq(ls_status_json_u64(d, "epoch"), 2);
    cr_assert_str_eq(jstr(d, "switchover"), "done");
    cJSON_Delete(st);
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "%s status -c %s", ls_h_bin("logship"), pair.conf[LS_H_A]);
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 10000), 0);
    cr_assert(ls_h_contains(out, "SWITCHOVER") && ls_h_contains(out, "copy") &&
                  ls_h_contains(out, "node-b") && ls_h_contains(out, "done"),
              "%s", out);
    free(out);
    /* The application writes on node-b; node-a gets it. */
    load_ok(LS_H_B, "--transactions 200 --seed 3 --target-size 65536");
    cr_assert(ls_h_wait_b_caught_up(&pair, 30000), "node-a did not catch up");
    cr_assert(ls_h_stores_equal(&pair));
}

/* A daemon that died holding a database: at its restart the hold is released when the new
 * active was never asked (nothing was handed over), kept when it was (it may have activated). */
Test(switchover, a_hold_left_by_a_dead_daemon_is_released_unless_the_copy_was_asked)
{
    start_pair("switchover-restart");
    load_ok(LS_H_A, "--transactions 200 --target-size 65536");
    for (int asked = 0; asked < 2; asked++) {
        ls_h_node_kill(&pair, LS_H_A);
        ls_ctlpage_t *p = NULL;
        char err[600] = "";
        cr_assert_eq(ls_ctlpage_open(pair.db[LS_H_A], false, &p, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(ls_ctlpage_set_hold(p, 2, "node-b", err, sizeof(err)), 0, "%s", err);
        if (asked) cr_assert_eq(ls_ctlpage_set_asked(p, err, sizeof(err)), 0, "%s", err);
        ls_ctlpage_close(p);
        ls_h_node_start(&pair, LS_H_A, NULL);
        char cmd[2048], *lerr = NULL;
        snprintf(cmd, sizeof(cmd), "%s load %s --transactions 50 --seed %d", ls_h_bin("logship"),
                 pair.db[LS_H_A], 40 + asked);
        int rc = ls_h_sh(cmd, NULL, &lerr, 60000);
        if (!asked) {
            cr_assert_eq(rc, 0, "the hold was not released at the restart: %s", lerr);
        } else {
            cr_assert_neq(rc, 0, "the hold of a switchover whose copy was asked was released");
            cr_assert(ls_h_contains(lerr, "node-b becomes the active"), "%s", lerr);
        }
        free(lerr);
    }
    /* Not handed over after all (node-b is a copy): a new switchover takes the hold over. */
    wait_role(LS_H_A, "active", "Healthy");
    char *out, *err;
    int rc = logship("switchover", LS_H_A, "--to node-b", &out, &err);
    if (rc) ls_h_pair_logs(&pair);
    cr_assert_eq(rc, 0, "%s%s", out, err);
    free(out);
    free(err);
    wait_role(LS_H_B, "active", "Healthy");
}

/* node-b's side, driven by a scripted node-a (node-a's daemon killed): SWITCHOVER on a version-4
 * connection closes it; one announcing a generation node-b has not replayed is refused
 * (SWITCHOVER_DONE with LS_ESTATE, nothing changed); the exact one activates node-b. */
Test(switchover, the_copy_activates_only_on_exactly_what_it_replayed)
{
    start_pair("switchover-exact");
    load_ok(LS_H_A, "--transactions 300 --target-size 65536");
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy did not catch up");
    cJSON *st = ls_h_status(&pair, LS_H_B);
    uint64_t last = (uint64_t) ls_h_num(st, "last_replayed");
    uint64_t lsn = (uint64_t) ls_h_num(st, "last_replayed_lsn");
    cJSON_Delete(st);
    cr_assert(last > 0 && lsn > 0);
    ls_h_node_kill(&pair, LS_H_A);
    uint8_t id[LS_PROTO_DBID_LEN];
    ls_h_logs_dbid(pair.db[LS_H_B], "E00-00000001-*", id);
    const char *names[] = {"db1"};
    static ls_frame_t f;
    for (int version = 4; version <= 5; version++) {
        ls_h_sp_hello(&f, "node-a", 1, names, (const uint8_t(*)[LS_PROTO_DBID_LEN]) id);
        f.hello.version_max = (uint16_t) version;
        ls_h_sp_t *sp = ls_h_sp_connect(pair.port);
        ls_h_sp_send(sp, &f);
        const ls_frame_t *g = ls_h_sp_expect(sp, LS_FRAME_WELCOME, 10000);
        cr_assert_not_null(g, "no WELCOME");
        cr_assert_eq(g->welcome.version, version);
        cr_assert_eq(g->welcome.dbs[0].status, LS_DB_ACCEPTED);
        g = ls_h_sp_expect(sp, LS_FRAME_RESUME, 5000);
        cr_assert_not_null(g, "no RESUME");
        cr_assert_eq(g->resume.next_generation, last + 1);
        f = (ls_frame_t){.type = LS_FRAME_SWITCHOVER};
        f.switchover =
            (ls_proto_switchover_t){.epoch = 2, .last_generation = last + 2, .last_lsn = lsn + 100};
        memcpy(f.switchover.dbid, id, LS_PROTO_DBID_LEN);
        ls_h_sp_send(sp, &f);
        if (version == 4) {
            cr_assert(ls_h_sp_wait_closed(sp, 10000), "SWITCHOVER below version 5 was accepted");
            ls_h_sp_close(sp);
            continue;
        }
        g = ls_h_sp_expect(sp, LS_FRAME_SWITCHOVER_DONE, 10000);
        cr_assert_not_null(g, "no SWITCHOVER_DONE");
        cr_assert_eq(g->switchover_done.code, LS_ESTATE);
        char msg[1100];
        snprintf(msg, sizeof(msg), "%.*s", (int) g->switchover_done.message.len,
                 g->switchover_done.message.ptr);
        char want[300];
        snprintf(want, sizeof(want),
                 "refused by node-b: node-a announced generation %" PRIu64 " (LSN %" PRIu64
                 ") as its last, this copy holds up to %" PRIu64 " and replayed up to %" PRIu64,
                 last + 2, lsn + 100, last, last);
        cr_assert(ls_h_contains(msg, want), "%s", msg);
        st = ls_h_status(&pair, LS_H_B);
        cr_assert_str_eq(jstr(db1_of(st), "role"), "copy", "a refusal changes nothing");
        cJSON_Delete(st);
        /* Exactly what it replayed: node-b activates and answers with its epoch. */
        f.switchover.last_generation = last;
        f.switchover.last_lsn = lsn;
        ls_h_sp_send(sp, &f);
        g = ls_h_sp_expect(sp, LS_FRAME_SWITCHOVER_DONE, 30000);
        cr_assert_not_null(g, "no SWITCHOVER_DONE");
        snprintf(msg, sizeof(msg), "%.*s", (int) g->switchover_done.message.len,
                 g->switchover_done.message.ptr);
        cr_assert_eq(g->switchover_done.code, 0, "%s", msg);
        cr_assert_eq(g->switchover_done.epoch, 2);
        cr_assert_eq(g->switchover_done.first_generation, last + 1);
        cr_assert(ls_h_contains(msg, "lossless"), "%s", msg);
        ls_h_sp_close(sp);
    }
    st = ls_h_status(&pair, LS_H_B);
    const cJSON *d = db1_of(st);
    cr_assert_str_eq(jstr(d, "role"), "active");
    cr_assert_eq(ls_status_json_u64(d, "epoch"), 2);
    cJSON_Delete(st);
    load_ok(LS_H_B, "--transactions 50 --seed 9"); /* the application writes on node-b */
}
