/* The `logship` commands' side of the control socket (see ctl.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "control/control.h"
#include "ctl.h"

int ls_ctl_socket(const char *who, const char *sock, const char *conf, char *out, size_t outlen)
{
    if (sock) {
        snprintf(out, outlen, "%s", sock);
        return 0;
    }
    if (conf) {
        ls_config_t *cfg;
        char err[512];
        if (ls_config_load(conf, &cfg, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s: %s\n", who, err);
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
    fprintf(stderr, "%s: say which daemon: -c CONFIG, --socket PATH or LOGSHIP_SOCKET\n", who);
    return 2;
}

cJSON *ls_ctl_request(const char *path, const cJSON *req, char *err, size_t errlen)
{
    char *text = cJSON_PrintUnformatted(req), *resp = NULL;
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int rc = ls_control_call(path, text, LS_CTL_TIMEOUT_MS, &resp, err, errlen);
    free(text);
    if (rc) return NULL;
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

bool ls_ctl_opt(int ch, const char *optarg_, const char **conf, const char **sock)
{
    if (ch == 'c')
        *conf = optarg_;
    else if (ch == LS_CTL_OPT_SOCKET)
        *sock = optarg_;
    else
        return false;
    return true;
}

int ls_ctl_bad_option(const char *who, char **argv, void (*usage)(void))
{
    fprintf(stderr, "%s: bad option '%s'\n", who, argv[optind - 1]);
    usage();
    return 2;
}

const char *ls_ctl_operand(int argc, char **argv, void (*usage)(void))
{
    if (argc - optind == 1) return argv[optind];
    usage();
    return NULL;
}

cJSON *ls_ctl_db_req(const char *cmd, const char *db)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "cmd", cmd);
    cJSON_AddStringToObject(req, "database", db);
    return req;
}

cJSON *ls_ctl_ask(const char *who, const char *context, const char *path, cJSON *req)
{
    char err[1024];
    cJSON *j = ls_ctl_request(path, req, err, sizeof(err));
    cJSON_Delete(req);
    if (!j) fprintf(stderr, "%s: %s%s\n", who, context, err);
    return j;
}

const char *ls_ctl_jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

int ls_ctl_follow(const char *who, const char *path, const char *status_cmd, const char *db,
                  unsigned poll_us)
{
    for (;;) {
        cJSON *j =
            ls_ctl_ask(who, "lost contact with the daemon: ", path, ls_ctl_db_req(status_cmd, db));
        if (!j) return 1;
        const char *state = ls_ctl_jstr(j, "state");
        int rc = !strcmp(state, "done")                                  ? 0
                 : !strcmp(state, "refused") || !strcmp(state, "failed") ? 1
                                                                         : -1;
        if (rc == 0) printf("%s\n", ls_ctl_jstr(j, "message"));
        if (rc == 1) fprintf(stderr, "%s: %s\n", who, ls_ctl_jstr(j, "message"));
        cJSON_Delete(j);
        if (rc >= 0) return rc;
        usleep(poll_us);
    }
}
