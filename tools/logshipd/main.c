/* logshipd: the logship daemon. `logshipd -c FILE` runs in the foreground, logs to stderr and
 * stops cleanly on SIGTERM or SIGINT. `logshipd -c FILE --check` validates the file and exits. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <logship/log.h>

#include "daemon.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: logshipd -c FILE [--check]   (logshipd --help for the manual)\n"
               "  -c, --config FILE  configuration file (docs/CONFIG.md)\n"
               "      --check        validate the configuration and exit\n");
}

/* The --help text, laid out as a manual page (tools/CMakeLists.txt turns it into logshipd.1). */
static void manual(FILE *f)
{
    fprintf(
        f, "NAME\n"
           "    logshipd - the logship daemon: ships closed log generations to passive copies,\n"
           "    receives, inspects and replays them\n"
           "\n"
           "SYNOPSIS\n"
           "    logshipd -c FILE [--check]\n"
           "    logshipd --help\n"
           "\n"
           "DESCRIPTION\n"
           "    logshipd runs one node. For each active database it watches the log directory\n"
           "    and ships every closed generation, with its checksums, to each target from the\n"
           "    position the target announces. For each passive copy it receives generations,\n"
           "    makes them durable, inspects them and replays them into the copy's store. It\n"
           "    serves the control socket of logship(1) (status, suspend, resume, network,\n"
           "    seed) and, when configured, Prometheus metrics.\n"
           "\n"
           "    It runs in the foreground, logs to stderr, and stops cleanly on SIGTERM or\n"
           "    SIGINT.\n"
           "\n"
           "OPTIONS\n"
           "    -c, --config FILE\n"
           "        the configuration file (INI; docs/CONFIG.md lists every key)\n"
           "    --check\n"
           "        validate the configuration file, print 'FILE: ok' and exit\n"
           "    -h, --help\n"
           "        print this manual and exit\n"
           "\n"
           "ENVIRONMENT\n"
           "    LS_LOG_LEVEL\n"
           "        error, warn, info or debug; overrides the configuration's log_level\n"
           "\n"
           "EXIT STATUS\n"
           "    0   stopped cleanly on a signal, or --check found the configuration valid\n"
           "    1   the node could not start (the reason is logged)\n"
           "    2   bad usage, or the configuration file is invalid (FILE:LINE: reason)\n"
           "\n"
           "SEE ALSO\n"
           "    logship(1); docs/CONFIG.md, docs/STATUS.md, docs/NETWORKS.md in the source tree\n");
}

static void set_level(const char *s)
{
    ls_log_set_level(!strcmp(s, "error")   ? LS_LOG_ERROR
                     : !strcmp(s, "warn")  ? LS_LOG_WARN
                     : !strcmp(s, "debug") ? LS_LOG_DEBUG
                                           : LS_LOG_INFO);
}

/* The command line: the configuration file's path in *conf and --check in *check. Returns -1 to
 * go on, or the exit status (0 after --help, 2 after a usage message). */
static int parse_args(int argc, char **argv, const char **conf, bool *check)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check", no_argument, NULL, 'k'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (ch == 'c')
            *conf = optarg;
        else if (ch == 'k')
            *check = true;
        else if (ch == 'h') {
            manual(stdout);
            return 0;
        } else {
            fprintf(stderr, "logshipd: unknown option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (!*conf || optind != argc) {
        if (optind != argc)
            fprintf(stderr, "logshipd: unexpected argument '%s'\n", argv[optind]);
        else
            fprintf(stderr, "logshipd: a configuration file is required (-c FILE)\n");
        usage(stderr);
        return 2;
    }
    return -1;
}

int main(int argc, char **argv)
{
    ls_log_set_handler(ls_log_stderr, NULL); /* the library prints nothing by itself */
    const char *conf = NULL;
    bool check = false;
    int status = parse_args(argc, argv, &conf, &check);
    if (status >= 0) return status;
    char err[1024];
    ls_config_t *cfg;
    if (ls_config_load(conf, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "logshipd: %s\n", err);
        return 2;
    }
    if (check) {
        printf("%s: ok\n", conf);
        ls_config_free(cfg);
        return 0;
    }
    if (!getenv("LS_LOG_LEVEL")) set_level(cfg->log_level);
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t loop;
    uv_loop_init(&loop);
    static ld_daemon_t daemon;
    int rc = ld_daemon_start(&daemon, &loop, cfg, err, sizeof(err));
    if (rc) {
        LS_LOGE("node", "cannot start: %s", err);
        ld_daemon_stop(&daemon);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    int closed = uv_loop_close(&loop);
    if (closed) LS_LOGW("node", "event loop closed with handles still open");
    ld_daemon_free(&daemon);
    ls_config_free(cfg);
    if (!rc) LS_LOGI("node", "stopped");
    return rc ? 1 : 0;
}
