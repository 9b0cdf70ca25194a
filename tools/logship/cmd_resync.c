/* `logship resync DB`: asks the daemon (over its control socket) to rebuild its database DB, an
 * old active fenced by a newer epoch (`Demoted` or `Diverged` in status), as a copy of the new
 * active without a restart (docs/ACTIVATION.md). A demoted one switches at once; a diverged one
 * runs the incremental resync from the split, which this command follows ("resync_status") and
 * reports: the generations moved aside, the bytes moved against the store's size, or why it fell
 * back to a full seed. Exits 0 once DB is a copy, 1 with the daemon's words when refused or
 * failed, 2 on bad usage. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cmds.h"
#include "ctl.h"

enum { OPT_SOCKET = 256 };

#define POLL_US 100000 /* between two resync_status requests */

static const struct option opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"socket", required_argument, NULL, OPT_SOCKET},
    {NULL, 0, NULL, 0},
};

static void usage(void)
{
    fprintf(stderr, "usage: logship resync DB [-c CONFIG | --socket PATH]\n");
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* The incremental resync the daemon started (j: its first answer, freed): followed until it is
 * done or failed, then its report. */
static int follow(const char *path, const char *db, cJSON *j)
{
    char err[1024], last[2048] = "";
    for (;;) {
        const char *state = str(j, "state");
        if (strcmp(state, "running")) break;
        if (strcmp(last, str(j, "message"))) {
            snprintf(last, sizeof(last), "%s", str(j, "message"));
            fprintf(stderr, "logship resync: %s\n", last);
        }
        cJSON_Delete(j);
        usleep(POLL_US);
        cJSON *req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "cmd", "resync_status");
        cJSON_AddStringToObject(req, "database", db);
        j = ls_ctl_request(path, req, err, sizeof(err));
        cJSON_Delete(req);
        if (!j) {
            fprintf(stderr, "logship resync: %s\n", err);
            return 1;
        }
    }
    int rc = strcmp(str(j, "state"), "done") ? 1 : 0;
    const cJSON *d = cJSON_GetObjectItem(j, "diverged");
    if (num(d, "generations") > 0) {
        char split[64] = "no split found: every local generation";
        if (num(j, "split_generation") > 0)
            snprintf(split, sizeof(split), "after the split at generation %.0f",
                     num(j, "split_generation"));
        printf("diverged: %.0f generation(s) %.0f..%.0f %s, %.0f records, %.0f keys, moved aside "
               "into %s\n",
               num(d, "generations"), num(d, "first_generation"), num(d, "last_generation"), split,
               num(d, "records"), num(d, "keys"), str(d, "dest"));
        const cJSON *k = cJSON_GetObjectItem(d, "key_list"), *e;
        if (cJSON_GetArraySize(k) > 0) {
            printf("diverged keys:");
            cJSON_ArrayForEach(e, k) printf(" %s", cJSON_IsString(e) ? e->valuestring : "?");
            printf("%s\n", num(d, "keys") > cJSON_GetArraySize(k) ? " ..." : "");
        }
    }
    if (rc == 0 && cJSON_IsTrue(cJSON_GetObjectItem(j, "incremental")))
        printf("moved: %.0f bytes (%.0f keys; %.0f bytes on the wire) of a %.0f-byte store\n",
               num(j, "bytes_moved"), num(j, "keys"), num(j, "wire_bytes_received"),
               num(j, "store_bytes"));
    else if (rc == 0)
        printf("moved: %.0f bytes: full seed (%s)\n", num(j, "bytes_moved"), str(j, "fallback"));
    if (rc)
        fprintf(stderr, "logship resync: %s\n", str(j, "message"));
    else
        printf("%s\n", str(j, "message"));
    cJSON_Delete(j);
    return rc;
}

int ls_cmd_resync(int argc, char **argv)
{
    const char *conf = NULL, *sock = NULL;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        if (ch == 'c') {
            conf = optarg;
        } else if (ch == OPT_SOCKET) {
            sock = optarg;
        } else {
            fprintf(stderr, "logship resync: bad option '%s'\n", argv[optind - 1]);
            usage();
            return 2;
        }
    }
    if (argc - optind != 1) {
        usage();
        return 2;
    }
    char path[1024], err[1024];
    if (ls_ctl_socket("logship resync", sock, conf, path, sizeof(path))) return 2;
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "cmd", "resync");
    cJSON_AddStringToObject(req, "database", argv[optind]);
    cJSON *j = ls_ctl_request(path, req, err, sizeof(err));
    cJSON_Delete(req);
    if (!j) {
        fprintf(stderr, "logship resync: %s\n", err);
        return 1;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItem(j, "follow"))) return follow(path, argv[optind], j);
    const cJSON *m = cJSON_GetObjectItem(j, "message");
    printf("%s\n", cJSON_IsString(m) ? m->valuestring : "done");
    cJSON_Delete(j);
    return 0;
}
