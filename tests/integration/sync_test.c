/* Synchronous commit with real daemons (issue 15, docs/BLOCKMODE.md "Synchronous commit"): node-a
 * active for db1, node-b its copy, `logship load --sync remote_durable --sync-timeout 1000
 * --ack-log` on node-a. While node-b acknowledges in block mode the commits wait for it and the
 * state stays sync (no switch); kill -9 of node-b's daemon: the commits degrade after the timeout
 * (status shows degraded with the reason, node-a's daemon logs a WARN, the load keeps
 * committing); node-b restarted: back to sync by itself (INFO); at the end every acknowledged
 * commit is in node-b's store (tools/ack-check.sh). The doorbell (docs/BLOCKMODE.md): a daemon
 * and a writer that have it, a writer without it and a daemon without it all commit in sync. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "daemons.h"
#include "harness.h"

static ls_h_pair_t pair;

static void fini(void)
{
    ls_h_pair_fini(&pair);
}

TestSuite(sync, .fini = fini, .timeout = 240);

/* db1's "sync" object in node's status (a copy of its members into out). */
typedef struct {
    char state[32];
    char reason[512];
    uint64_t switches;
} sync_view_t;

static bool sync_of(int node, sync_view_t *out)
{
    cJSON *st = ls_h_status(&pair, node);
    if (!st) return false;
    bool found = false;
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(st, "databases"))
    {
        const cJSON *s = cJSON_GetObjectItem(d, "sync");
        if (!s || strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(d, "database")), "db1")) continue;
        snprintf(out->state, sizeof(out->state), "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(s, "state")));
        snprintf(out->reason, sizeof(out->reason), "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(s, "reason")));
        out->switches = (uint64_t) cJSON_GetNumberValue(cJSON_GetObjectItem(s, "switches"));
        found = true;
    }
    cJSON_Delete(st);
    return found;
}

static bool wait_sync_state(const char *state, sync_view_t *out, int timeout_ms)
{
    for (uint64_t end = ls_mono_ns() + (uint64_t) timeout_ms * 1000000u; ls_mono_ns() < end;) {
        if (sync_of(LS_H_A, out) && !strcmp(out->state, state)) return true;
        usleep(20000);
    }
    return false;
}

static bool log_has(int node, const char *needle)
{
    size_t len = 0;
    char *b = (char *) ls_h_read_file(pair.log[node], &len);
    bool found = b && memmem(b, len, needle, strlen(needle)) != NULL;
    free(b);
    return found;
}

Test(sync, remote_durable_degrades_when_the_copy_dies_and_comes_back_with_it)
{
    ls_h_pair_opts_t o = {.plaintext = true};
    ls_h_pair_init(&pair, "sync", &o);
    ls_h_node_start(&pair, LS_H_A, NULL);
    ls_h_node_start(&pair, LS_H_B, NULL);
    ls_h_load(&pair, "--transactions 50"); /* the database exists: the copy follows it */
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy never caught up");

    char ack[600], cmd[1600];
    snprintf(ack, sizeof(ack), "%s/ack.log", pair.dir);
    snprintf(cmd, sizeof(cmd),
             "--sync remote_durable --sync-timeout 1000 --rate 150 --transactions 6000 "
             "--threads 4 --records-per-txn 2 --ack-log %s",
             ack);
    ls_h_load_start(&pair, cmd);
    sync_view_t s;
    cr_assert(ls_h_wait_file_lines(ack, 300, 60000), "the load acknowledged nothing");
    cr_assert(sync_of(LS_H_A, &s), "node-a shows no sync state for db1");
    if (strcmp(s.state, "sync") || s.switches != 0) ls_h_pair_logs(&pair);
    cr_assert_str_eq(s.state, "sync", "commits confirmed by the copy: %s (%s)", s.state, s.reason);
    cr_assert_eq(s.switches, 0, "no wait timed out while the copy acknowledged: %s", s.reason);

    ls_h_node_kill(&pair, LS_H_B);
    if (!wait_sync_state("degraded", &s, 20000)) ls_h_pair_logs(&pair);
    cr_assert_str_eq(s.state, "degraded");
    cr_assert(strstr(s.reason, "not durable on 1 copy within 1000 ms"), "%s", s.reason);
    cr_assert(strstr(s.reason, "#1 "), "the reason names the copy's position: %s", s.reason);
    size_t at_degrade = ls_h_file_lines(ack);
    cr_assert(ls_h_wait_file_lines(ack, at_degrade + 150, 30000),
              "the load keeps committing while degraded (%zu acknowledged)", ls_h_file_lines(ack));
    for (uint64_t end = ls_mono_ns() + 5000000000ull;
         !log_has(LS_H_A, "synchronous commit (remote_durable, 1 copy) degraded") &&
         ls_mono_ns() < end;)
        usleep(20000);
    cr_assert(log_has(LS_H_A, "synchronous commit (remote_durable, 1 copy) degraded"),
              "node-a's daemon logs the switch");

    ls_h_node_start(&pair, LS_H_B, NULL);
    if (!wait_sync_state("sync", &s, 60000)) ls_h_pair_logs(&pair);
    cr_assert_str_eq(s.state, "sync", "back to sync once the copy caught up: %s", s.reason);
    cr_assert_geq(s.switches, 2);
    cr_assert_str_empty(s.reason);
    for (uint64_t end = ls_mono_ns() + 5000000000ull;
         !log_has(LS_H_A, "synchronous commit back to sync") && ls_mono_ns() < end;)
        usleep(20000);
    cr_assert(log_has(LS_H_A, "synchronous commit back to sync"));

    ls_h_load_wait(&pair);
    char path[700];
    snprintf(path, sizeof(path), "%s/load.log", pair.dir);
    size_t outlen = 0;
    char *out = (char *) ls_h_read_file(path, &outlen);
    /* 6000 and the run counter's commit (--ack-log) */
    cr_assert(out && strstr(out, "transactions:       6001"), "%s", out ? out : "");
    cr_assert(strstr(out, "remote_durable, 1 copy, timeout 1000 ms:"), "%s", out);
    cr_assert(strstr(out, "synchronous commit degraded: lsn"), "the writer's WARN: %s", out);
    cr_assert(strstr(out, "synchronous commit back to sync"), "the writer's INFO: %s", out);
    free(out);
    cr_assert(ls_h_wait_caught_up(&pair, 60000), "the copy never caught up at the end");
    snprintf(cmd, sizeof(cmd), "sh %s/tools/ack-check.sh %s/store %s", LS_SOURCE_DIR,
             pair.db[LS_H_B], ack);
    char *chk = NULL;
    int rc = ls_h_sh(cmd, &chk, NULL, 60000);
    cr_assert_eq(rc, 0, "every acknowledged commit in node-b's store: %s", chk);
    free(chk);
}

/* ---- the doorbell (docs/BLOCKMODE.md "The doorbell") with writers and daemons built before it:
 * the fault points "writer.doorbell" (the writer neither opens nor claims it) and
 * "node.doorbell" (the daemon neither opens nor arms it) stand for the older builds. */

/* A u32 of node-a's control page, read through the file (the page cache the mappings share). */
static uint32_t page_u32(size_t off)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/control", pair.db[LS_H_A]);
    size_t len = 0;
    uint8_t *b = ls_h_read_file(path, &len);
    cr_assert(b && len == 4096, "cannot read %s", path);
    uint32_t v = ls_get32(b + off);
    free(b);
    return v;
}

#define PG_SLEEPERS 516 /* threads in FUTEX_WAIT on the durable position */
#define PG_ARMED    560 /* the daemon armed the doorbell */
#define PG_BELL     564 /* the pid of the writer that rings it */

/* Within 10 s, the daemon's watcher is seen asleep on the futex. */
static bool watcher_on_futex(void)
{
    for (uint64_t end = ls_mono_ns() + 10000000000ull; ls_mono_ns() < end; usleep(5000))
        if (page_u32(PG_SLEEPERS) > 0) return true;
    return false;
}

/* One load of 600 remote_durable commits at 150/s (writer_env: LS_FAULTS for the writer, or
 * NULL); check(pid) runs while it commits; then every acknowledged commit is in node-b's store
 * and no commit waited out its timeout. */
static void load_at(const char *tag, const char *level, const char *writer_env,
                    void (*check)(pid_t))
{
    char ack[600], cmd[1600];
    snprintf(ack, sizeof(ack), "%s/ack-%s.log", pair.dir, tag);
    snprintf(cmd, sizeof(cmd),
             "--sync %s --sync-timeout 5000 --rate 150 --transactions 600 "
             "--threads 2 --records-per-txn 2 --ack-log %s",
             level, ack);
    if (writer_env) setenv("LS_FAULTS", writer_env, 1);
    ls_h_load_start(&pair, cmd);
    unsetenv("LS_FAULTS");
    cr_assert(ls_h_wait_file_lines(ack, 100, 60000), "%s: the load acknowledged nothing", tag);
    check(pair.load);
    ls_h_load_wait(&pair);
    char path[700];
    snprintf(path, sizeof(path), "%s/load.log", pair.dir);
    size_t outlen = 0;
    char *out = (char *) ls_h_read_file(path, &outlen);
    cr_assert(out && strstr(out, "transactions:       601"), "%s: %s", tag, out ? out : "");
    cr_assert(strstr(out, " 0 timed out, 0 switches"), "%s: no commit waited out its timeout: %s",
              tag, out);
    free(out);
    cr_assert(ls_h_wait_caught_up(&pair, 60000), "%s: the copy never caught up", tag);
    snprintf(cmd, sizeof(cmd), "sh %s/tools/ack-check.sh %s/store %s", LS_SOURCE_DIR,
             pair.db[LS_H_B], ack);
    char *chk = NULL;
    int rc = ls_h_sh(cmd, &chk, NULL, 60000);
    cr_assert_eq(rc, 0, "%s: every acknowledged commit in node-b's store: %s", tag, chk);
    free(chk);
}

static void load_in_sync(const char *tag, const char *writer_env, void (*check)(pid_t))
{
    load_at(tag, "remote_durable", writer_env, check);
}

static void old_writer(pid_t load)
{
    (void) load;
    cr_assert_eq(page_u32(PG_BELL), 0, "a writer without the doorbell claims none");
    cr_assert(watcher_on_futex(), "the daemon's watcher sleeps on the futex for an old writer");
}

static void both_new(pid_t load)
{
    cr_assert_eq(page_u32(PG_BELL), (uint32_t) load, "the writer says it rings");
    int busy = 0; /* the watcher keeps off the futex: the loop is rung */
    for (int i = 0; i < 50; i++, usleep(10000))
        busy += page_u32(PG_SLEEPERS) > 0;
    cr_assert_eq(busy, 0, "the watcher slept on the futex %d times in 50 looks", busy);
}

static void old_daemon(pid_t load)
{
    cr_assert_eq(page_u32(PG_BELL), (uint32_t) load, "the writer says it rings");
    cr_assert_eq(page_u32(PG_ARMED), 0, "a daemon without the doorbell never arms it");
    cr_assert(watcher_on_futex(), "the old daemon's watcher sleeps on the futex");
}

Test(sync, the_doorbell_mixes_with_writers_and_daemons_built_before_it)
{
    ls_h_pair_opts_t o = {.plaintext = true};
    ls_h_pair_init(&pair, "bell", &o);
    ls_h_node_start(&pair, LS_H_A, NULL);
    ls_h_node_start(&pair, LS_H_B, NULL);
    ls_h_load(&pair, "--transactions 50");
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy never caught up");
    load_in_sync("old-writer", "writer.doorbell=fail", old_writer);
    load_in_sync("both-new", NULL, both_new);
    ls_h_node_stop(&pair, LS_H_A);
    char *env[] = {"LS_FAULTS=node.doorbell=fail", NULL};
    ls_h_node_start(&pair, LS_H_A, env);
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy never caught up after the restart");
    load_in_sync("old-daemon", NULL, old_daemon);
}

/* ---- remote_applied: the copy applies its shadow early while a commit waits for it
 * (docs/BLOCKMODE.md "Early apply", LS_FEAT_APPLY): node-b's status shows block_apply_eager. */

/* node-b's block_apply_eager for db1: 1, 0, or -1 when not shown. */
static int apply_eager(void)
{
    cJSON *st = ls_h_status(&pair, LS_H_B);
    int v = -1;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(st, "copies"))
    {
        const cJSON *e = cJSON_GetObjectItem(c, "block_apply_eager");
        if (e && !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(c, "database")), "db1"))
            v = cJSON_IsTrue(e) ? 1 : 0;
    }
    cJSON_Delete(st);
    return v;
}

static bool wait_eager(int want)
{
    for (uint64_t end = ls_mono_ns() + 20000000000ull; ls_mono_ns() < end; usleep(20000))
        if (apply_eager() == want) return true;
    return false;
}

static void eager_while_applied(pid_t load)
{
    (void) load;
    cr_assert(wait_eager(1), "node-b applies early while commits wait at remote_applied (%d)",
              apply_eager());
}

static void lazy_while_durable(pid_t load)
{
    (void) load;
    cr_assert_eq(apply_eager(), 0, "no commit waits for the applied position");
}

Test(sync, remote_applied_turns_the_copys_early_apply_on_then_off)
{
    ls_h_pair_opts_t o = {.plaintext = true};
    ls_h_pair_init(&pair, "applied", &o);
    ls_h_node_start(&pair, LS_H_A, NULL);
    ls_h_node_start(&pair, LS_H_B, NULL);
    ls_h_load(&pair, "--transactions 50");
    cr_assert(ls_h_wait_caught_up(&pair, 30000), "the copy never caught up");
    cr_assert(wait_eager(0), "the source said no commit waits: lazy (%d)", apply_eager());
    load_at("applied", "remote_applied", NULL, eager_while_applied);
    cr_assert(wait_eager(0), "the writer closed: lazy again (%d)", apply_eager());
    load_at("durable", "remote_durable", NULL, lazy_while_durable);
}
