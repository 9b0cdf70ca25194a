/* `logship activate DB [--max-loss N] [--force]`: asks the daemon holding a copy of DB (over its
 * control socket) to make it the active of a new epoch (docs/ACTIVATION.md), then follows the
 * activation until it is over and prints what it reported: lossless, or exactly what may have
 * been lost. Exits 0 once the database is active on that node, 1 with the daemon's words when the
 * activation is refused (the old active still answers; more generations would be lost than
 * --max-loss allows) or fails, 2 on bad usage. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cmds.h"
#include "config/config.h"
#include "ctl.h"
#include "status/status.h"

#define POLL_US 100000 /* between two activate_status requests */

enum { OPT_SOCKET = LS_CTL_OPT_SOCKET, OPT_MAX_LOSS, OPT_FORCE };

static const struct option opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"socket", required_argument, NULL, OPT_SOCKET},
    {"max-loss", required_argument, NULL, OPT_MAX_LOSS},
    {"force", no_argument, NULL, OPT_FORCE},
    {NULL, 0, NULL, 0},
};

static void usage(void)
{
    fprintf(stderr, "usage: logship activate DB [--max-loss N] [--force] "
                    "[-c CONFIG | --socket PATH]\n");
}

int ls_cmd_activate(int argc, char **argv)
{
    const char *conf = NULL, *sock = NULL;
    uint64_t max_loss = 0;
    bool force = false;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        if (ls_ctl_opt(ch, optarg, &conf, &sock)) continue;
        if (ch == OPT_FORCE) {
            force = true;
        } else if (ch == OPT_MAX_LOSS) {
            char *end = NULL;
            max_loss = strtoull(optarg, &end, 10);
            if (optarg[0] < '0' || optarg[0] > '9' || *end) {
                fprintf(stderr, "logship activate: bad --max-loss '%s' (a number of generations)\n",
                        optarg);
                return 2;
            }
        } else {
            return ls_ctl_bad_option("logship activate", argv, usage);
        }
    }
    const char *db = ls_ctl_operand(argc, argv, usage);
    char path[1024];
    if (!db || ls_ctl_socket("logship activate", sock, conf, path, sizeof(path))) return 2;
    cJSON *req = ls_ctl_db_req("activate", db);
    ls_status_json_add_u64(req, "max_loss", max_loss);
    cJSON_AddBoolToObject(req, "force", force);
    cJSON *j = ls_ctl_ask("logship activate", "", path, req);
    if (!j) return 1;
    printf("%s\n", ls_ctl_jstr(j, "message"));
    fflush(stdout);
    cJSON_Delete(j);
    return ls_ctl_follow("logship activate", path, "activate_status", db, POLL_US);
}
