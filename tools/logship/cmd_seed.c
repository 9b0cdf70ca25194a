/* `logship seed DB`: asks the passive's daemon (over its control socket) to (re)build its copy of
 * DB from a snapshot of the source's store, then follows it: a progress bar with bytes, rate and
 * time left on a terminal, a plain line every 10 s (or 10 percent) otherwise. Exits 0 once the
 * new copy is installed, 1 with the reason when the seed is refused or fails (the old copy is
 * then as it was), 2 on bad usage. Interrupting the command does not stop the seed: the daemon
 * carries on, and `logship status` shows it (docs/SEED.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cmds.h"
#include "ctl.h"
#include "core/core.h"
#include "seed/seed.h"

#define POLL_US 200000 /* between two seed_status requests */

enum {
    OPT_SOCKET = LS_CTL_OPT_SOCKET,
    OPT_FROM,
    OPT_NETWORK,
    OPT_DELETE,
    OPT_MANUAL,
    OPT_INTERVAL
};

static const struct option opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"socket", required_argument, NULL, OPT_SOCKET},
    {"from", required_argument, NULL, OPT_FROM},
    {"network", required_argument, NULL, OPT_NETWORK},
    {"delete-existing", no_argument, NULL, OPT_DELETE},
    {"manual-resume", no_argument, NULL, OPT_MANUAL},
    {"interval", required_argument, NULL, OPT_INTERVAL},
    {NULL, 0, NULL, 0},
};

static void usage(void)
{
    fprintf(stderr, "usage: logship seed DB [--from NODE] [--network NAME] [--delete-existing] "
                    "[--manual-resume] [--interval SECONDS] [-c CONFIG | --socket PATH]\n");
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* Follows the seed until it is done or failed; returns the exit code. */
static int follow(const char *path, const char *db, unsigned interval)
{
    bool tty = isatty(STDOUT_FILENO);
    ls_seed_progress_t prog;
    bool started = false;
    for (;;) {
        cJSON *req = ls_ctl_db_req("seed_status", db);
        char err[1024];
        cJSON *j = ls_ctl_request(path, req, err, sizeof(err));
        cJSON_Delete(req);
        if (!j) {
            if (started && tty) printf("\n");
            fprintf(stderr, "logship seed: lost contact with the daemon: %s\n", err);
            return 1;
        }
        const char *state = ls_ctl_jstr(j, "state");
        uint64_t total = (uint64_t) jnum(j, "bytes_total"), done = (uint64_t) jnum(j, "bytes_done");
        if (total && !started) {
            ls_seed_progress_init(&prog, total, ls_mono_ns());
            started = true;
        }
        bool over = !strcmp(state, "done") || !strcmp(state, "failed");
        if (started) {
            ls_seed_progress_update(&prog, done, ls_mono_ns());
            if (!over || !strcmp(state, "done")) /* the last line once, when it is done */
                ls_seed_progress_print(&prog, stdout, tty, interval, over);
            fflush(stdout);
        }
        if (!strcmp(state, "failed")) {
            if (started && tty) printf("\n");
            fprintf(stderr, "logship seed: seed of %s from %s failed: %s\n", db,
                    ls_ctl_jstr(j, "from"), ls_ctl_jstr(j, "error"));
            cJSON_Delete(j);
            return 1;
        }
        if (!strcmp(state, "done")) {
            double secs = (jnum(j, "end_time_ns") - jnum(j, "start_time_ns")) / 1e9;
            printf("seeded %s from %s: %.0f bytes in %.1f s (generation %.0f, lsn %.0f)", db,
                   ls_ctl_jstr(j, "from"), jnum(j, "bytes_total"), secs, jnum(j, "generation"),
                   jnum(j, "lsn"));
            if (!strcmp(ls_ctl_jstr(j, "copy_state"), "Suspended"))
                printf("; the copy is Suspended: `logship resume %s %s` starts shipping\n", db,
                       ls_ctl_jstr(j, "from"));
            else
                printf("; shipping resumes from generation %.0f\n", jnum(j, "generation"));
            cJSON_Delete(j);
            return 0;
        }
        cJSON_Delete(j);
        usleep(POLL_US);
    }
}

int ls_cmd_seed(int argc, char **argv)
{
    const char *conf = NULL, *sock = NULL, *from = NULL, *network = NULL;
    bool del = false, manual = false;
    unsigned interval = 10;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        if (ls_ctl_opt(ch, optarg, &conf, &sock)) continue;
        if (ch == OPT_FROM)
            from = optarg;
        else if (ch == OPT_NETWORK)
            network = optarg;
        else if (ch == OPT_DELETE)
            del = true;
        else if (ch == OPT_MANUAL)
            manual = true;
        else if (ch == OPT_INTERVAL && atoi(optarg) > 0)
            interval = (unsigned) atoi(optarg);
        else
            return ls_ctl_bad_option("logship seed", argv, usage);
    }
    const char *db = ls_ctl_operand(argc, argv, usage);
    char path[1024];
    if (!db || ls_ctl_socket("logship seed", sock, conf, path, sizeof(path))) return 2;
    cJSON *req = ls_ctl_db_req("seed", db);
    if (from) cJSON_AddStringToObject(req, "from", from);
    if (network) cJSON_AddStringToObject(req, "network", network);
    cJSON_AddBoolToObject(req, "delete_existing", del);
    cJSON_AddBoolToObject(req, "manual_resume", manual);
    cJSON *j = ls_ctl_ask("logship seed", "", path, req);
    if (!j) return 1;
    printf("%s\n", ls_ctl_jstr(j, "message"));
    fflush(stdout);
    cJSON_Delete(j);
    return follow(path, db, interval);
}
