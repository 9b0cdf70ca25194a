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
#include "config/config.h"
#include "control/control.h"
#include "core/core.h"
#include "seed/seed.h"

#define CALL_TIMEOUT_MS 10000
#define POLL_US         200000 /* between two seed_status requests */

enum { OPT_SOCKET = 256, OPT_FROM, OPT_NETWORK, OPT_DELETE, OPT_MANUAL, OPT_INTERVAL };

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

/* The control socket: --socket, else the config file's, else $LOGSHIP_SOCKET. */
static int socket_path(const char *sock, const char *conf, char *out, size_t outlen)
{
    if (sock) {
        snprintf(out, outlen, "%s", sock);
        return 0;
    }
    if (conf) {
        ls_config_t *cfg;
        char err[512];
        if (ls_config_load(conf, &cfg, err, sizeof(err)) != 0) {
            fprintf(stderr, "logship seed: %s\n", err);
            return 2;
        }
        snprintf(out, outlen, "%s", cfg->control_socket);
        ls_config_free(cfg);
        return 0;
    }
    const char *env = getenv("LOGSHIP_SOCKET");
    if (env && *env) {
        snprintf(out, outlen, "%s", env);
        return 0;
    }
    fprintf(stderr, "logship seed: say which daemon: -c CONFIG, --socket PATH or LOGSHIP_SOCKET\n");
    return 2;
}

/* One request; the answer when it says ok, else NULL with the daemon's error in err. */
static cJSON *call(const char *path, cJSON *req, char *err, size_t errlen)
{
    char *text = cJSON_PrintUnformatted(req), *resp = NULL;
    int c = ls_control_call(path, text, CALL_TIMEOUT_MS, &resp, err, errlen);
    free(text);
    if (c) return NULL;
    cJSON *j = cJSON_Parse(resp);
    free(resp);
    if (!j) {
        snprintf(err, errlen, "the daemon's answer is not JSON");
        return NULL;
    }
    if (!cJSON_IsTrue(cJSON_GetObjectItem(j, "ok"))) {
        const cJSON *e = cJSON_GetObjectItem(j, "error");
        snprintf(err, errlen, "%s", cJSON_IsString(e) ? e->valuestring : "request failed");
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
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
    char err[1024];
    for (;;) {
        cJSON *req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "cmd", "seed_status");
        cJSON_AddStringToObject(req, "database", db);
        cJSON *j = call(path, req, err, sizeof(err));
        cJSON_Delete(req);
        if (!j) {
            if (started && tty) printf("\n");
            fprintf(stderr, "logship seed: lost contact with the daemon: %s\n", err);
            return 1;
        }
        const char *state = jstr(j, "state");
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
            fprintf(stderr, "logship seed: seed of %s from %s failed: %s\n", db, jstr(j, "from"),
                    jstr(j, "error"));
            cJSON_Delete(j);
            return 1;
        }
        if (!strcmp(state, "done")) {
            double secs = (jnum(j, "end_time_ns") - jnum(j, "start_time_ns")) / 1e9;
            printf("seeded %s from %s: %.0f bytes in %.1f s (generation %.0f, lsn %.0f)", db,
                   jstr(j, "from"), jnum(j, "bytes_total"), secs, jnum(j, "generation"),
                   jnum(j, "lsn"));
            if (!strcmp(jstr(j, "copy_state"), "Suspended"))
                printf("; the copy is Suspended: `logship resume %s %s` starts shipping\n", db,
                       jstr(j, "from"));
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
        if (ch == 'c')
            conf = optarg;
        else if (ch == OPT_SOCKET)
            sock = optarg;
        else if (ch == OPT_FROM)
            from = optarg;
        else if (ch == OPT_NETWORK)
            network = optarg;
        else if (ch == OPT_DELETE)
            del = true;
        else if (ch == OPT_MANUAL)
            manual = true;
        else if (ch == OPT_INTERVAL && atoi(optarg) > 0)
            interval = (unsigned) atoi(optarg);
        else {
            fprintf(stderr, "logship seed: bad option '%s'\n", argv[optind - 1]);
            usage();
            return 2;
        }
    }
    if (argc - optind != 1) {
        usage();
        return 2;
    }
    const char *db = argv[optind];
    char path[1024], err[1024];
    if (socket_path(sock, conf, path, sizeof(path))) return 2;
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "cmd", "seed");
    cJSON_AddStringToObject(req, "database", db);
    if (from) cJSON_AddStringToObject(req, "from", from);
    if (network) cJSON_AddStringToObject(req, "network", network);
    cJSON_AddBoolToObject(req, "delete_existing", del);
    cJSON_AddBoolToObject(req, "manual_resume", manual);
    cJSON *j = call(path, req, err, sizeof(err));
    cJSON_Delete(req);
    if (!j) {
        fprintf(stderr, "logship seed: %s\n", err);
        return 1;
    }
    printf("%s\n", jstr(j, "message"));
    fflush(stdout);
    cJSON_Delete(j);
    return follow(path, db, interval);
}
