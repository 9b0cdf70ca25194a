/* Seeding end to end with real daemons (issue 7): a 100 MiB store under a workload while another
 * database keeps shipping, the hand-off inside an open generation, either daemon killed half-way,
 * the passive killed inside the swap, a refusal that says why, a corrupted stream, and
 * --manual-resume. Fault points: seed.server.chunk (sleep: paces the stream), seed.snapshot.before
 * (sleep), seed.snapshot.corrupt, seed.install.before_swap / after_swap (exit), seed.client.abort
 * (sleep: the partial copy removed slowly). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemons.h"
#include "harness.h"

static ls_h_pair_t pair;

static void fini(void)
{
    ls_h_pair_fini(&pair);
}

TestSuite(seed, .fini = fini, .timeout = 150);

/* Removes every closed generation of db1 on node-a but the newest keep: a new copy then needs a
 * seed (as after truncation on a long-lived active). */
static void truncate_logs(int keep)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "cd %s/logs && ls E00-*.log | sort | head -n -%d | xargs -r rm --",
             pair.db[LS_H_A], keep);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 10000), 0);
}

/* Whether <dir><suffix> exists. */
static bool exists(const char *dir, const char *suffix)
{
    char path[1200];
    struct stat st;
    snprintf(path, sizeof(path), "%s%s", dir, suffix);
    return stat(path, &st) == 0;
}

/* A field of another database's copy in a status document. */
static double db_num(const cJSON *st, const char *db, const char *field)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(st, "copies"))
    {
        const cJSON *d = cJSON_GetObjectItem(c, "database");
        const cJSON *v = cJSON_GetObjectItem(c, field);
        if (cJSON_IsString(d) && !strcmp(d->valuestring, db))
            return cJSON_IsNumber(v) ? v->valuedouble : -1;
    }
    return -1;
}

static double seed_num(const char *field)
{
    cJSON *j = ls_h_seed_status(&pair);
    const cJSON *v = j ? cJSON_GetObjectItem(j, field) : NULL;
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
    cJSON_Delete(j);
    return d;
}

/* Every generation from the seed's N on was applied exactly once. */
static void assert_applied_once(void)
{
    cJSON *b = ls_h_status(&pair, LS_H_B);
    double n = seed_num("generation"), last = ls_h_num(b, "last_replayed");
    cr_assert_eq(ls_h_num(b, "applied_generations"), last - n + 1,
                 "applied %.0f generations, replayed %.0f..%.0f",
                 ls_h_num(b, "applied_generations"), n, last);
    cJSON_Delete(b);
}

#define BIG_STORE "--transactions 1700 --records-per-txn 4 --value-size 16000 --seed 1"

Test(seed, empty_passive_under_workload_converges_while_others_ship)
{
    ls_h_pair_init(
        &pair, "seed-big",
        &(ls_h_pair_opts_t){.seedable = true,
                            .a_db_extra = "[database db2]\nrole = active\ntargets = node-b\n",
                            .b_db_extra = "[database db2]\nrole = passive\nsource = node-a\n"});
    ls_h_load(&pair, BIG_STORE);
    char path[1200];
    struct stat st;
    snprintf(path, sizeof(path), "%s/store/data.mdb", pair.db[LS_H_A]);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_geq(st.st_size, 100ll << 20, "the active store holds %lld bytes",
                  (long long) st.st_size);
    truncate_logs(2);
    char db2[700], log2[700], cmd[1600];
    snprintf(db2, sizeof(db2), "%s/node-a/db2", pair.dir);
    snprintf(log2, sizeof(log2), "%s/load2.log", pair.dir);
    snprintf(cmd, sizeof(cmd), "%s load %s --transactions 10 --seed 3", ls_h_bin("logship"), db2);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 30000), 0, "db2 exists before the daemons start");
    char *env[] = {"LS_FAULTS=seed.server.chunk=sleep:4", NULL}; /* ~2 s of streaming */
    ls_h_node_start(&pair, LS_H_B, NULL);
    ls_h_node_start(&pair, LS_H_A, env);
    cr_assert(ls_h_wait_state(&pair, LS_H_B, "Failed", 20000), "the copy needs a seed");
    /* Workloads on both databases during the seed. */
    ls_h_load_start(&pair, "--transactions 1500 --records-per-txn 4 --value-size 400 --seed 2 "
                           "--rate 300");
    /* ~1 MiB a second on db2: a generation closes about every second. */
    char *argv2[] = {(char *) ls_h_bin("logship"),
                     "load",
                     db2,
                     "--transactions",
                     "1500",
                     "--records-per-txn",
                     "10",
                     "--value-size",
                     "400",
                     "--rate",
                     "250",
                     "--seed",
                     "4",
                     NULL};
    pid_t load2 = ls_h_spawn(argv2, log2, NULL);
    cr_assert_gt(load2, 0);
    usleep(300000);
    cJSON *a0 = ls_h_status(&pair, LS_H_A);
    double conns_before = db_num(a0, "db2", "connections");
    cJSON_Delete(a0);
    cr_assert_geq(conns_before, 1, "node-a ships db2 over a connection before the seed");
    pid_t seed = ls_h_seed_start(&pair, NULL);
    bool saw_seeding = false;
    double db2_first = -1, db2_last = -1;
    for (int i = 0; i < 3000; i++) {
        cJSON *b = ls_h_status(&pair, LS_H_B);
        if (b && !strcmp(ls_h_str(b, "state"), "Seeding")) {
            double pct = ls_h_num(b, "seed_percent");
            if (pct > 0 && pct < 100) {
                saw_seeding = true;
                if (db2_first < 0) db2_first = db_num(b, "db2", "last_replayed");
                db2_last = db_num(b, "db2", "last_replayed");
            }
        }
        cJSON_Delete(b);
        int rc = ls_h_wait(seed, 20);
        if (rc >= 0) {
            seed = 0;
            cr_assert_eq(rc, 0, "logship seed failed (see %s/seed.log)", pair.dir);
            break;
        }
    }
    cr_assert_eq(seed, 0, "logship seed did not finish");
    cr_assert(saw_seeding, "status never showed Seeding with a percent");
    cr_assert_gt(db2_last, db2_first, "db2 kept shipping during the seed (%.0f -> %.0f)", db2_first,
                 db2_last);
    /* The hand-off was RE_OFFER for db1 alone: db2's connection was never reset. */
    cJSON *a1 = ls_h_status(&pair, LS_H_A);
    cr_assert_eq(db_num(a1, "db2", "connections"), conns_before,
                 "node-a reconnected during the seed (%.0f -> %.0f connections)", conns_before,
                 db_num(a1, "db2", "connections"));
    cJSON_Delete(a1);
    ls_h_load_wait(&pair);
    cr_assert_eq(ls_h_wait(load2, 60000), 0);
    cr_assert(ls_h_wait_caught_up(&pair, 60000), "the seeded copy did not converge");
    assert_applied_once();
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_stop(&pair, LS_H_B);
    cr_assert(ls_h_stores_equal(&pair));
}

/* The snapshot lands inside the open generation N: the records after L in N arrive by shipping,
 * none before L is applied twice. */
Test(seed, snapshot_inside_an_open_generation_hands_off_exactly)
{
    ls_h_pair_init(&pair, "seed-handoff", &(ls_h_pair_opts_t){.plaintext = true, .seedable = true});
    ls_h_load(&pair, "--transactions 200 --records-per-txn 50 --value-size 400 --seed 4");
    truncate_logs(1);
    char *env[] = {"LS_FAULTS=seed.snapshot.before=sleep:1500", NULL};
    /* The passive's 3rd chunk goes in a receiver item of its own, as when all of its reused
     * chunk buffers are queued (a receive window over 64 chunks); the others in those buffers. */
    char *b_env[] = {"LS_FAULTS=seed.client.buf=fail@3", NULL};
    ls_h_node_start(&pair, LS_H_B, b_env);
    ls_h_node_start(&pair, LS_H_A, env);
    cr_assert(ls_h_wait_state(&pair, LS_H_B, "Failed", 20000));
    /* ~600 KB in 3 s: the snapshot, 1.5 s in, falls inside the generation being written. */
    ls_h_load_start(&pair, "--transactions 300 --records-per-txn 5 --value-size 400 --rate 100 "
                           "--seed 5");
    char *out = NULL, *err = NULL;
    int rc = ls_h_seed(&pair, NULL, &out, &err, 60000);
    cr_assert_eq(rc, 0, "logship seed: %s %s", out, err);
    free(out);
    free(err);
    double n = seed_num("generation"), l = seed_num("lsn");
    cr_assert_gt(l, 0);
    ls_h_load_wait(&pair);
    cr_assert(ls_h_wait_caught_up(&pair, 60000));
    /* N, now closed, holds records before and after L. */
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "%s dump %s/logs/E00-00000001-%016llx.log", ls_h_bin("logship"),
             pair.db[LS_H_A], (unsigned long long) n);
    out = NULL;
    cr_assert_eq(ls_h_sh(cmd, &out, NULL, 10000), 0, "no generation %.0f on node-a", n);
    const char *f = strstr(out, "first lsn:"), *t = strstr(out, "last lsn:");
    cr_assert(f && t, "%s", out);
    double first = strtod(f + 10, NULL), last = strtod(strstr(t, ":") + 1, NULL);
    cr_assert(first < l && l < last, "generation %.0f holds %.0f..%.0f, the snapshot L = %.0f", n,
              first, last, l);
    free(out);
    assert_applied_once();
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_stop(&pair, LS_H_B);
    cr_assert(ls_h_stores_equal(&pair));
    size_t n_log = 0;
    char *log = (char *) ls_h_read_file(pair.log[LS_H_B], &n_log);
    cr_assert(log && ls_h_contains(log, "fault point seed.client.buf fired"), "see %s",
              pair.log[LS_H_B]);
    free(log);
}

#define MID_STORE "--transactions 600 --records-per-txn 10 --value-size 4000 --seed 6"

/* A shipped, healthy copy and a paced seed stream (~100 chunks of 256 KiB, 25 ms apart). */
static void healthy_pair(const char *tag, char *const b_env[])
{
    ls_h_pair_init(&pair, tag, &(ls_h_pair_opts_t){.plaintext = true, .seedable = true});
    char *a_env[] = {"LS_FAULTS=seed.server.chunk=sleep:25", NULL};
    ls_h_node_start(&pair, LS_H_B, b_env);
    ls_h_node_start(&pair, LS_H_A, a_env);
    ls_h_load(&pair, MID_STORE);
    cr_assert(ls_h_wait_caught_up(&pair, 60000));
}

Test(seed, passive_killed_half_way_keeps_its_copy_then_reseeds_with_manual_resume)
{
    healthy_pair("seed-kill-b", NULL);
    char old[700];
    snprintf(old, sizeof(old), "%s/old.dump", pair.dir);
    ls_h_dump_store(&pair, LS_H_B, old);
    pid_t seed = ls_h_seed_start(&pair, "--delete-existing");
    cr_assert(ls_h_wait_seed_percent(&pair, 25, 20000));
    ls_h_node_kill(&pair, LS_H_B);
    cr_assert_neq(ls_h_wait(seed, 20000), 0, "logship seed reports the lost daemon");
    cr_assert(exists(pair.db[LS_H_B], ".seed-new"), "the half-received copy was beside the old");
    ls_h_node_start(&pair, LS_H_B, NULL);
    cr_assert(!exists(pair.db[LS_H_B], ".seed-new"), "start-up recovery removed it");
    cr_assert(ls_h_store_matches_dump(&pair, LS_H_B, old), "the old copy is intact");
    cr_assert(ls_h_wait_caught_up(&pair, 30000));
    /* A new seed succeeds; --manual-resume leaves the copy Suspended. */
    char *out = NULL, *err = NULL;
    int rc = ls_h_seed(&pair, "--delete-existing --manual-resume", &out, &err, 60000);
    cr_assert_eq(rc, 0, "logship seed: %s %s", out, err);
    cr_assert(ls_h_contains(out, "Suspended"), "%s", out);
    free(out);
    free(err);
    cr_assert(ls_h_wait_state(&pair, LS_H_B, "Suspended", 10000));
    ls_h_load(&pair, "--transactions 50 --records-per-txn 10 --value-size 400 --seed 7");
    usleep(1500000);
    cJSON *b = ls_h_status(&pair, LS_H_B);
    cr_assert_str_eq(ls_h_str(b, "state"), "Suspended", "still suspended after new writes");
    cJSON_Delete(b);
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "%s resume db1 node-a -c %s", ls_h_bin("logship"),
             pair.conf[LS_H_B]);
    cr_assert_eq(ls_h_sh(cmd, NULL, NULL, 10000), 0);
    cr_assert(ls_h_wait_caught_up(&pair, 30000));
    assert_applied_once();
    ls_h_node_stop(&pair, LS_H_A);
    ls_h_node_stop(&pair, LS_H_B);
    cr_assert(ls_h_stores_equal(&pair));
}

/* The passive dies inside the swap (before and after the exchange): the restart finishes the
 * install (the marker was durable), the new copy converges, and another seed succeeds. */
Test(seed, passive_killed_during_the_swap_recovers_then_reseeds)
{
    const char *points[] = {"seed.install.before_swap", "seed.install.after_swap"};
    for (int i = 0; i < 2; i++) {
        char fault[128], tag[64];
        snprintf(fault, sizeof(fault), "LS_FAULTS=%s=exit", points[i]);
        snprintf(tag, sizeof(tag), "seed-swap-%d", i);
        char *b_env[] = {fault, NULL};
        healthy_pair(tag, b_env);
        int rc = ls_h_seed(&pair, "--delete-existing", NULL, NULL, 60000);
        cr_assert_neq(rc, 0, "the daemon died under logship seed");
        cr_assert_eq(ls_h_wait(pair.pid[LS_H_B], 20000), 86, "%s fired", points[i]);
        pair.pid[LS_H_B] = 0;
        ls_h_node_start(&pair, LS_H_B, NULL);
        cr_assert(!exists(pair.db[LS_H_B], ".seed-new"));
        cr_assert(!exists(pair.db[LS_H_B], "/SEED-READY"));
        ls_h_load(&pair, "--transactions 50 --records-per-txn 10 --value-size 400 --seed 8");
        cr_assert(ls_h_wait_caught_up(&pair, 30000), "the installed copy converges (%s)",
                  points[i]);
        cr_assert(ls_h_stores_equal(&pair));
        char *out = NULL, *err = NULL;
        rc = ls_h_seed(&pair, "--delete-existing", &out, &err, 60000);
        cr_assert_eq(rc, 0, "logship seed after recovery: %s %s", out, err);
        free(out);
        free(err);
        cr_assert(ls_h_wait_caught_up(&pair, 30000));
        ls_h_node_stop(&pair, LS_H_A);
        ls_h_node_stop(&pair, LS_H_B);
        cr_assert(ls_h_stores_equal(&pair));
        if (i == 0) { /* the suite's fini puts the last pair away */
            ls_h_pair_fini(&pair);
            memset(&pair, 0, sizeof(pair));
        }
    }
}

/* node-b removes the partial copy slowly (seed.client.abort): logship seed still exits only once
 * it is gone (the seed shows "aborting" until then). */
Test(seed, active_killed_half_way_fails_the_seed_and_keeps_the_copy)
{
    char *b_env[] = {"LS_FAULTS=seed.client.abort=sleep:1500", NULL};
    healthy_pair("seed-kill-a", b_env);
    char old[700];
    snprintf(old, sizeof(old), "%s/old.dump", pair.dir);
    ls_h_dump_store(&pair, LS_H_B, old);
    pid_t seed = ls_h_seed_start(&pair, "--delete-existing");
    cr_assert(ls_h_wait_seed_percent(&pair, 25, 20000));
    ls_h_node_kill(&pair, LS_H_A);
    cr_assert_eq(ls_h_wait(seed, 20000), 1, "logship seed exits 1 with the reason");
    char logpath[700];
    snprintf(logpath, sizeof(logpath), "%s/seed.log", pair.dir);
    size_t loglen = 0;
    char *log = (char *) ls_h_read_file(logpath, &loglen);
    cr_assert(log && ls_h_contains(log, "failed") && ls_h_contains(log, "node-a"), "%s", log);
    free(log);
    cJSON *b = ls_h_status(&pair, LS_H_B);
    cr_assert_str_neq(ls_h_str(b, "state"), "Seeding");
    cr_assert(ls_h_contains(ls_h_str(b, "reason"), "seed from node-a failed"), "%s",
              ls_h_str(b, "reason"));
    cJSON_Delete(b);
    cr_assert(!exists(pair.db[LS_H_B], ".seed-new"), "nothing left beside the copy");
    cr_assert(ls_h_store_matches_dump(&pair, LS_H_B, old), "the old copy is intact");
}

/* A plaintext seedable pair named name, node-a started with faults, loaded (load) and caught up. */
static void corrupting_pair(const char *name, const char *faults, const char *load)
{
    ls_h_pair_init(&pair, name, &(ls_h_pair_opts_t){.plaintext = true, .seedable = true});
    char env[200];
    snprintf(env, sizeof(env), "LS_FAULTS=%s", faults);
    char *a_env[] = {env, NULL};
    ls_h_node_start(&pair, LS_H_B, NULL);
    ls_h_node_start(&pair, LS_H_A, a_env);
    ls_h_load(&pair, load);
    cr_assert(ls_h_wait_caught_up(&pair, 60000));
}

/* The seed of a stream corrupted on the source (fault seed.snapshot.corrupt) fails with an error
 * that names the check (check: "XXH3-128" or "SHA-256"). */
static void corrupt_seed_fails(const char *check)
{
    char *out = NULL, *err = NULL, want[64];
    int rc = ls_h_seed(&pair, "--delete-existing", &out, &err, 60000);
    cr_assert_eq(rc, 1, "the corrupted stream fails: %s %s", out, err);
    snprintf(want, sizeof(want), "seed stream %s mismatch", check);
    cr_assert(ls_h_contains(err, want), "the check both nodes negotiated names it: %s", err);
    free(out);
    free(err);
}

Test(seed, refused_without_delete_existing_and_a_corrupt_stream_installs_nothing)
{
    corrupting_pair("seed-refuse", "seed.snapshot.corrupt=fail@2",
                    "--transactions 300 --records-per-txn 10 --value-size 2000 --seed 9");
    char old[700];
    snprintf(old, sizeof(old), "%s/old.dump", pair.dir);
    ls_h_dump_store(&pair, LS_H_B, old);
    char *out = NULL, *err = NULL;
    int rc = ls_h_seed(&pair, NULL, &out, &err, 30000);
    cr_assert_eq(rc, 1, "refused: %s %s", out, err);
    cr_assert(ls_h_contains(err, "already holds") && ls_h_contains(err, "--delete-existing"),
              "the refusal says why and what to do: %s", err);
    free(out);
    free(err);
    cr_assert(!exists(pair.db[LS_H_B], ".seed-new"));
    corrupt_seed_fails("XXH3-128");
    cr_assert(!exists(pair.db[LS_H_B], ".seed-new"), "nothing installed, nothing left");
    cr_assert(ls_h_store_matches_dump(&pair, LS_H_B, old), "the copy is as it was");
    cr_assert(ls_h_wait_state(&pair, LS_H_B, "Healthy", 10000), "shipping resumed");
    ls_h_load(&pair, "--transactions 20 --seed 10");
    cr_assert(ls_h_wait_caught_up(&pair, 30000));
}

/* A source playing a node without LS_FEAT_SEEDXXH (fault point seed.sha256): the stream's check
 * is SHA-256, which catches a corrupted byte too, and the next seed installs with it. */
Test(seed, with_an_older_source_the_check_is_sha256)
{
    corrupting_pair("seed-sha", "seed.snapshot.corrupt=fail@2,seed.sha256=fail",
                    "--transactions 200 --records-per-txn 10 --value-size 2000 --seed 11");
    corrupt_seed_fails("SHA-256");
    char *out = NULL, *err = NULL;
    int rc = ls_h_seed(&pair, "--delete-existing", &out, &err, 60000);
    cr_assert_eq(rc, 0, "seeded with SHA-256: %s %s", out, err);
    free(out);
    free(err);
    cr_assert(ls_h_wait_state(&pair, LS_H_B, "Healthy", 10000), "shipping resumed");
    ls_h_load(&pair, "--transactions 20 --seed 12");
    cr_assert(ls_h_wait_caught_up(&pair, 30000));
    cr_assert(ls_h_stores_equal(&pair), "the copy equals the active");
}
