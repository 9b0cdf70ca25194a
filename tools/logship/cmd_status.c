/* `logship status`, `suspend`, `resume`: operator commands sent to the local daemon over its
 * control socket (engine/control). The answer's schema is documented in docs/STATUS.md. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cmds.h"
#include "control/control.h"
#include "core/core.h"
#include "ctl.h"
#include "status/status.h"

/* Sends req (and frees it) to the daemon; prints errors; returns the parsed answer or NULL with
 * *rc set to the exit code. The answer's 64-bit integers (nanosecond times) are kept exactly
 * (ls_status_json_parse), so --json prints them digit for digit. */
static cJSON *call(const char *path, cJSON *req, int *rc)
{
    char err[1024] = "", *text = cJSON_PrintUnformatted(req), *resp = NULL;
    cJSON_Delete(req);
    cJSON *j = NULL;
    if (!text)
        snprintf(err, sizeof(err), "out of memory");
    else if (ls_control_call(path, text, LS_CTL_TIMEOUT_MS, &resp, err, sizeof(err)) == 0 &&
             !(j = ls_status_json_parse(resp)))
        snprintf(err, sizeof(err), "the daemon's answer is not JSON");
    free(text);
    free(resp);
    if (j && !cJSON_IsTrue(cJSON_GetObjectItem(j, "ok"))) {
        const cJSON *e = cJSON_GetObjectItem(j, "error");
        snprintf(err, sizeof(err), "%s", cJSON_IsString(e) ? e->valuestring : "request failed");
        cJSON_Delete(j);
        j = NULL;
    }
    *rc = j ? 0 : 1;
    if (!j) fprintf(stderr, "logship: %s\n", err);
    return j;
}

/* The answer for programs: the daemon's document without its "ok". */
static void print_json(cJSON *j)
{
    cJSON_DeleteItemFromObject(j, "ok");
    char *text = cJSON_Print(j);
    printf("%s\n", text);
    free(text);
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : "-";
}

static double num(const cJSON *o, const char *k)
{
    return ls_status_json_num(o, k);
}

/* An active database's synchronous commit: "sync: degraded since T: reason (level, copies)". */
static void print_sync(const cJSON *s)
{
    if (!s) return;
    char when[64] = "";
    uint64_t since = ls_status_json_u64(s, "since_ns");
    if (since) {
        time_t t = (time_t) (since / 1000000000u);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), " since %Y-%m-%dT%H:%M:%SZ", &tm);
    }
    const char *state = str(s, "state"), *reason = str(s, "reason");
    printf("    sync: %s%s%s%s (%s, %" PRIu64 " cop%s, %" PRIu64 " switches)\n", state,
           strcmp(state, "off") ? when : "", strcmp(reason, "-") ? ": " : "",
           strcmp(reason, "-") ? reason : "", str(s, "level"), ls_status_json_u64(s, "copies"),
           ls_status_json_u64(s, "copies") == 1 ? "y" : "ies", ls_status_json_u64(s, "switches"));
}

/* Each database's role and epoch, and what the activation that made the epoch may have lost. */
static void print_databases(const cJSON *dbs)
{
    if (!cJSON_GetArraySize(dbs)) return;
    printf("\n%-12s %-9s %6s %-10s %-11s %s\n", "DATABASE", "ROLE", "EPOCH", "FOLLOWS",
           "ACTIVATION", "SWITCHOVER");
    const cJSON *d;
    cJSON_ArrayForEach(d, dbs)
    {
        const cJSON *l = cJSON_GetObjectItem(d, "loss");
        uint64_t gens = ls_status_json_u64(l, "generations"),
                 open = ls_status_json_u64(l, "open_generation");
        printf("%-12s %-9s %6" PRIu64 " %-10s %-11s %s\n", str(d, "database"), str(d, "role"),
               ls_status_json_u64(d, "epoch"), str(d, "follows"), str(d, "activation"),
               str(d, "switchover"));
        if (gens)
            printf("    loss: generations %" PRIu64 "..%" PRIu64 " (%" PRIu64
                   " generations, %" PRIu64 " bytes, commits made between %" PRIu64 " and %" PRIu64
                   " ns since 1970 UTC)\n",
                   ls_status_json_u64(l, "first_generation"),
                   ls_status_json_u64(l, "last_generation"), gens, ls_status_json_u64(l, "bytes"),
                   ls_status_json_u64(l, "from_ns"), ls_status_json_u64(l, "to_ns"));
        else if (!strcmp(str(d, "role"), "active") && ls_status_json_u64(d, "since_ns"))
            printf("    loss: none (lossless activation)\n");
        if (open)
            printf("    open generation %" PRIu64 " of the old active: never shipped\n", open);
        const char *reason = str(d, "reason");
        if (strcmp(reason, "-")) printf("    reason: %s\n", reason);
        print_sync(cJSON_GetObjectItem(d, "sync"));
    }
}

static void print_table(const cJSON *j)
{
    printf("node %s\n", str(j, "node"));
    printf("%-12s %-6s %-10s %-12s %-8s %9s %9s %9s %9s %6s %6s %10s %10s %8s %8s\n", "DATABASE",
           "ROLE", "PEER", "STATE", "NETWORK", "GENERATED", "COPIED", "INSPECTED", "REPLAYED",
           "COPYQ", "REPLQ", "COPYQ_B", "REPLQ_B", "COPYLAG", "REPLLAG");
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "copies"))
    {
        bool active = !strcmp(str(c, "role"), "active");
        printf("%-12s %-6s %-10s %-12s %-8s %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64
               " %6" PRIu64 " %6" PRIu64 " %10" PRIu64 " %10" PRIu64 " %7.1fs %7.1fs\n",
               str(c, "database"), str(c, "role"), active ? str(c, "target") : str(c, "source"),
               str(c, "state"), str(c, "network"), ls_status_json_u64(c, "last_generated"),
               ls_status_json_u64(c, "last_copied"), ls_status_json_u64(c, "last_inspected"),
               ls_status_json_u64(c, "last_replayed"), ls_status_json_u64(c, "copy_queue"),
               ls_status_json_u64(c, "replay_queue"), ls_status_json_u64(c, "copy_queue_bytes"),
               ls_status_json_u64(c, "replay_queue_bytes"), num(c, "copy_lag_s"),
               num(c, "replay_lag_s"));
        const char *mode = str(c, "mode");
        if (active && strcmp(mode, "-"))
            printf("    mode: %s, %" PRIu64 " switches%s%s; shadow %" PRIu64 " bytes of %" PRIu64
                   ", lag p99 %.3f ms\n",
                   mode, ls_status_json_u64(c, "mode_switches"),
                   strcmp(str(c, "mode_reason"), "-") ? ", last: " : "",
                   strcmp(str(c, "mode_reason"), "-") ? str(c, "mode_reason") : "",
                   ls_status_json_u64(c, "block_offset"), ls_status_json_u64(c, "block_generation"),
                   num(c, "block_lag_p99_ms"));
        const char *comment = str(c, "comment");
        if (strcmp(comment, "-")) printf("    comment: %s\n", comment);
        const char *reason = str(c, "reason");
        if (strcmp(reason, "-")) printf("    reason: %s\n", reason);
    }
    print_databases(cJSON_GetObjectItem(j, "databases"));
}

enum { OPT_SOCKET = 256, OPT_JSON, OPT_COMMENT, OPT_REPLAY_ONLY };

static const struct option opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"socket", required_argument, NULL, OPT_SOCKET},
    {"json", no_argument, NULL, OPT_JSON},
    {"comment", required_argument, NULL, OPT_COMMENT},
    {"replay-only", no_argument, NULL, OPT_REPLAY_ONLY},
    {NULL, 0, NULL, 0},
};

typedef struct {
    const char *conf, *sock, *comment;
    bool json, replay_only;
} args_t;

static int parse(int argc, char **argv, args_t *a, const char *allowed)
{
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        const char *name = ch == 'c'               ? "config"
                           : ch == OPT_JSON        ? "json"
                           : ch == OPT_COMMENT     ? "comment"
                           : ch == OPT_REPLAY_ONLY ? "replay-only"
                           : ch == OPT_SOCKET      ? "socket"
                                                   : NULL;
        if (!name || (strstr(allowed, name) == NULL && ch != 'c' && ch != OPT_SOCKET)) {
            fprintf(stderr, "logship %s: unknown option '%s'\n", argv[0], argv[optind - 1]);
            return 2;
        }
        if (ch == 'c')
            a->conf = optarg;
        else if (ch == OPT_SOCKET)
            a->sock = optarg;
        else if (ch == OPT_JSON)
            a->json = true;
        else if (ch == OPT_COMMENT)
            a->comment = optarg;
        else
            a->replay_only = true;
    }
    return 0;
}

/* The answer of suspend and resume: its message. */
static void print_message(const cJSON *j)
{
    printf("%s\n", str(j, "message"));
}

/* The answer of network: its message, then a line a network. */
static void print_networks(const cJSON *j)
{
    printf("%s\n%-10s %-11s %-22s %8s  %s\n", str(j, "message"), "NETWORK", "STATE", "REMOTE",
           "FAILURES", "LAST ERROR / WHY LEFT");
    const cJSON *net;
    cJSON_ArrayForEach(net, cJSON_GetObjectItem(j, "networks"))
    {
        printf("%-10s %-11s %-22s %8.0f  %s\n", str(net, "name"), str(net, "state"),
               str(net, "remote"), num(net, "failures"), str(net, "last_error"));
        if (strcmp(str(net, "left_reason"), "-"))
            printf("%56s left: %s\n", "", str(net, "left_reason"));
    }
}

/* Sends req (and frees it) to the daemon a names; prints the answer with print_json under
 * --json, else with print. Returns the exit code. */
static int send_print(const args_t *a, cJSON *req, void (*print)(const cJSON *j))
{
    char path[1024];
    if (ls_ctl_socket("logship", a->sock, a->conf, path, sizeof(path))) {
        cJSON_Delete(req);
        return 2;
    }
    int rc;
    cJSON *j = call(path, req, &rc);
    if (!j) return rc;
    if (a->json)
        print_json(j);
    else
        print(j);
    cJSON_Delete(j);
    return 0;
}

/* cJSON request {"cmd": cmd}. */
static cJSON *request(const char *cmd)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "cmd", cmd);
    return req;
}

int ls_cmd_status(int argc, char **argv)
{
    args_t a = {0};
    if (parse(argc, argv, &a, "json") || optind != argc) {
        if (optind != argc)
            fprintf(stderr, "logship status: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return send_print(&a, request("status"), print_table);
}

/* suspend and resume: DB PEER, where PEER is the target (active side) or the source (passive). */
static int suspend_resume(int argc, char **argv, bool suspend)
{
    args_t a = {0};
    if (parse(argc, argv, &a, suspend ? "comment replay-only" : "replay-only")) return 2;
    if (argc - optind != 2) {
        fprintf(stderr, "usage: logship %s DB PEER%s [-c CONFIG | --socket PATH]\n", argv[0],
                suspend ? " [--comment TEXT] [--replay-only]" : " [--replay-only]");
        return 2;
    }
    cJSON *req = request(argv[0]);
    cJSON_AddStringToObject(req, "database", argv[optind]);
    cJSON_AddStringToObject(req, "peer", argv[optind + 1]);
    if (a.comment) cJSON_AddStringToObject(req, "comment", a.comment);
    cJSON_AddBoolToObject(req, "replay_only", a.replay_only);
    return send_print(&a, req, print_message);
}

int ls_cmd_suspend(int argc, char **argv)
{
    return suspend_resume(argc, argv, true);
}

int ls_cmd_resume(int argc, char **argv)
{
    return suspend_resume(argc, argv, false);
}

/* network TARGET [pin NET | release]: shows, pins or releases the network a target's copies use
 * (docs/NETWORKS.md). */
int ls_cmd_network(int argc, char **argv)
{
    args_t a = {0};
    if (parse(argc, argv, &a, "json")) return 2;
    int n = argc - optind;
    const char *action = n >= 2 ? argv[optind + 1] : "show";
    bool pin = !strcmp(action, "pin");
    if (n < 1 || (pin && n != 3) || (!pin && n > 2) ||
        (strcmp(action, "show") && strcmp(action, "release") && !pin)) {
        fprintf(stderr, "usage: logship network TARGET [pin NET | release] [--json] "
                        "[-c CONFIG | --socket PATH]\n");
        return 2;
    }
    cJSON *req = request("network");
    cJSON_AddStringToObject(req, "target", argv[optind]);
    cJSON_AddStringToObject(req, "action", action);
    if (pin) cJSON_AddStringToObject(req, "network", argv[optind + 2]);
    return send_print(&a, req, print_networks);
}
