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

enum { OPT_SOCKET = LS_CTL_OPT_SOCKET };

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

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* The incremental resync the daemon started (j: its first answer, freed): followed until it is
 * done or failed, then its report. */
static int follow(const char *path, const char *db, cJSON *j)
{
    char last[2048] = "";
    for (;;) {
        const char *state = ls_ctl_jstr(j, "state");
        if (strcmp(state, "running")) break;
        if (strcmp(last, ls_ctl_jstr(j, "message"))) {
            snprintf(last, sizeof(last), "%s", ls_ctl_jstr(j, "message"));
            fprintf(stderr, "logship resync: %s\n", last);
        }
        cJSON_Delete(j);
        usleep(POLL_US);
        j = ls_ctl_ask("logship resync", "", path, ls_ctl_db_req("resync_status", db));
        if (!j) return 1;
    }
    int rc = strcmp(ls_ctl_jstr(j, "state"), "done") ? 1 : 0;
    const cJSON *d = cJSON_GetObjectItem(j, "diverged");
    if (num(d, "generations") > 0) {
        char split[64] = "no split found: every local generation";
        if (num(j, "split_generation") > 0)
            snprintf(split, sizeof(split), "after the split at generation %.0f",
                     num(j, "split_generation"));
        printf("diverged: %.0f generation(s) %.0f..%.0f %s, %.0f records, %.0f keys, moved aside "
               "into %s\n",
               num(d, "generations"), num(d, "first_generation"), num(d, "last_generation"), split,
               num(d, "records"), num(d, "keys"), ls_ctl_jstr(d, "dest"));
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
        printf("moved: %.0f bytes: full seed (%s)\n", num(j, "bytes_moved"),
               ls_ctl_jstr(j, "fallback"));
    if (rc)
        fprintf(stderr, "logship resync: %s\n", ls_ctl_jstr(j, "message"));
    else
        printf("%s\n", ls_ctl_jstr(j, "message"));
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
        if (!ls_ctl_opt(ch, optarg, &conf, &sock))
            return ls_ctl_bad_option("logship resync", argv, usage);
    }
    const char *db = ls_ctl_operand(argc, argv, usage);
    char path[1024];
    if (!db || ls_ctl_socket("logship resync", sock, conf, path, sizeof(path))) return 2;
    cJSON *j = ls_ctl_ask("logship resync", "", path, ls_ctl_db_req("resync", db));
    if (!j) return 1;
    if (cJSON_IsTrue(cJSON_GetObjectItem(j, "follow"))) return follow(path, db, j);
    const cJSON *m = cJSON_GetObjectItem(j, "message");
    printf("%s\n", cJSON_IsString(m) ? m->valuestring : "done");
    cJSON_Delete(j);
    return 0;
}
