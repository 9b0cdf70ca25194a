/* `logship switchover DB --to NODE [--timeout SECONDS]`: asks the daemon where DB is active (over
 * its control socket) to hand it over to NODE's copy (docs/ACTIVATION.md, "Planned switchover"):
 * commits held, everything shipped and replayed on NODE, NODE activated, this node its copy.
 * Follows it until it is over and prints what was handed over (last generation, LSN) and how
 * long commits were held. Exits 0 once NODE is active, 1 with the daemon's words when refused or
 * failed (the hold undone: the database is active here again), 2 on bad usage. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cmds.h"
#include "ctl.h"
#include "status/status.h"

#define POLL_US 50000 /* between two switchover_status requests */

enum { OPT_SOCKET = LS_CTL_OPT_SOCKET, OPT_TO, OPT_TIMEOUT };

static const struct option opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"socket", required_argument, NULL, OPT_SOCKET},
    {"to", required_argument, NULL, OPT_TO},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {NULL, 0, NULL, 0},
};

static void usage(void)
{
    fprintf(stderr, "usage: logship switchover DB --to NODE [--timeout SECONDS] "
                    "[-c CONFIG | --socket PATH]\n");
}

int ls_cmd_switchover(int argc, char **argv)
{
    const char *conf = NULL, *sock = NULL, *to = NULL;
    uint64_t timeout_s = 60;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        if (ls_ctl_opt(ch, optarg, &conf, &sock)) continue;
        if (ch == OPT_TO) {
            to = optarg;
        } else if (ch == OPT_TIMEOUT) {
            char *end = NULL;
            timeout_s = strtoull(optarg, &end, 10);
            if (optarg[0] < '0' || optarg[0] > '9' || *end || !timeout_s) {
                fprintf(stderr, "logship switchover: bad --timeout '%s' (seconds, at least 1)\n",
                        optarg);
                return 2;
            }
        } else {
            return ls_ctl_bad_option("logship switchover", argv, usage);
        }
    }
    const char *db = ls_ctl_operand(argc, argv, usage);
    if (db && (!to || !to[0])) {
        fprintf(stderr, "logship switchover: --to NODE is required (the copy to activate)\n");
        usage();
        return 2;
    }
    char path[1024];
    if (!db || ls_ctl_socket("logship switchover", sock, conf, path, sizeof(path))) return 2;
    cJSON *req = ls_ctl_db_req("switchover", db);
    cJSON_AddStringToObject(req, "to", to);
    ls_status_json_add_u64(req, "timeout_ms", timeout_s * 1000);
    cJSON *j = ls_ctl_ask("logship switchover", "", path, req);
    if (!j) return 1;
    printf("%s\n", ls_ctl_jstr(j, "message"));
    fflush(stdout);
    cJSON_Delete(j);
    return ls_ctl_follow("logship switchover", path, "switchover_status", db, POLL_US);
}
