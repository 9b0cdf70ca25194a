/* `logship resync DB`: asks the daemon (over its control socket) to rebuild its database DB, an
 * old active fenced by a newer epoch (`Demoted` in status), as a copy of the new active without a
 * restart (docs/ACTIVATION.md). Prints where the copy resumes. Exits 0 once DB is a copy, 1 with
 * the daemon's words when refused (not demoted; diverged: incremental resync is not built) or
 * failed, 2 on bad usage. */
#include <getopt.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "cmds.h"
#include "ctl.h"

enum { OPT_SOCKET = 256 };

static const struct option opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"socket", required_argument, NULL, OPT_SOCKET},
    {NULL, 0, NULL, 0},
};

static void usage(void)
{
    fprintf(stderr, "usage: logship resync DB [-c CONFIG | --socket PATH]\n");
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
    const cJSON *m = cJSON_GetObjectItem(j, "message");
    printf("%s\n", cJSON_IsString(m) ? m->valuestring : "done");
    cJSON_Delete(j);
    return 0;
}
