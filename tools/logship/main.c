/* `logship`: the command-line tool. Dispatches to one subcommand per cmd_<name>.c. */
#include <stdio.h>
#include <string.h>

#include <logship/log.h>

#include "cmds.h"

static const struct ls_cmd cmds[] = {
    {"dump", ls_cmd_dump, "FILE [--records]",
     "print a generation's header, trailer, record count and verdict"},
    {"load", ls_cmd_load, "DIR [--transactions N] ...",
     "write a deterministic workload through the public API"},
    {"certs", ls_cmd_certs, "DIR [--ca] [--node NAME]...",
     "create a test/demo CA and node certificates"},
    {"status", ls_cmd_status, "[-c CONFIG | --socket PATH] [--json]",
     "show every copy's state, positions, queues and lags (from the local daemon)"},
    {"suspend", ls_cmd_suspend, "DB PEER [--comment TEXT] [--replay-only] [-c CONFIG]",
     "suspend shipping (or, with --replay-only on a passive, replay) of a copy"},
    {"resume", ls_cmd_resume, "DB PEER [--replay-only] [-c CONFIG]",
     "resume a suspended copy where it stopped"},
    {"network", ls_cmd_network, "TARGET [pin NET | release] [--json] [-c CONFIG]",
     "show a target's replication networks, pin its copies to one, or release the pin"},
    {"seed", ls_cmd_seed,
     "DB [--from NODE] [--network NAME] [--delete-existing] [--manual-resume] [-c CONFIG]",
     "(re)build a passive copy from a snapshot of its source's store, with progress"},
    {"activate", ls_cmd_activate, "DB [--max-loss N] [--force] [-c CONFIG]",
     "make this node's copy the active of a new epoch; prints what may have been lost"},
    {"resync", ls_cmd_resync, "DB [-c CONFIG]",
     "rebuild this node's old active (Demoted or Diverged) as a copy of the new active"},
    {"switchover", ls_cmd_switchover, "DB --to NODE [--timeout SECONDS] [-c CONFIG]",
     "hand this node's active database over to NODE's copy, losslessly, under load"},
    {NULL, NULL, NULL, NULL},
};

/* The --help text, laid out as a manual page (tools/CMakeLists.txt turns it into logship.1). */
static void manual(FILE *f)
{
    fprintf(f, "NAME\n"
               "    logship - command-line tool of the logship log-shipping replication engine\n"
               "\n"
               "SYNOPSIS\n"
               "    logship COMMAND [ARGS]\n"
               "    logship --help\n"
               "\n"
               "DESCRIPTION\n"
               "    logship reads and checks log generations, writes test workloads through the\n"
               "    embedded API (logship/db.h), makes test certificates, and asks the local\n"
               "    logshipd(1) for status or to suspend, resume, switch networks, seed,\n"
               "    activate, resync or switch over a copy, through the daemon's control socket.\n"
               "\n"
               "COMMANDS\n");
    for (const struct ls_cmd *c = cmds; c->name; c++)
        fprintf(f, "    %s %s\n        %s\n", c->name, c->usage, c->help);
    fprintf(f, "\n"
               "OPTIONS\n"
               "    -h, --help\n"
               "        print this manual and exit\n"
               "    -c CONFIG\n"
               "        (daemon commands) the daemon's configuration file; its control_socket\n"
               "    --socket PATH\n"
               "        (daemon commands) the daemon's control socket\n"
               "\n"
               "ENVIRONMENT\n"
               "    LOGSHIP_SOCKET\n"
               "        control socket used when neither -c nor --socket is given\n"
               "    LS_LOG_LEVEL\n"
               "        error, warn, info or debug: messages of the library on stderr\n"
               "\n"
               "EXIT STATUS\n"
               "    0   success\n"
               "    1   the operation failed (the reason is printed)\n"
               "    2   bad usage: unknown command or option, missing argument\n"
               "\n"
               "SEE ALSO\n"
               "    logshipd(1); docs/ and proto/PROTOCOL.md in the source tree\n");
}

static void usage(FILE *f)
{
    fprintf(f, "usage: logship COMMAND [ARGS]   (logship --help for the manual)\n\ncommands:\n");
    for (const struct ls_cmd *c = cmds; c->name; c++)
        fprintf(f, "  %-8s %s\n", c->name, c->usage);
}

int main(int argc, char **argv)
{
    ls_log_set_handler(ls_log_stderr, NULL); /* the library prints nothing by itself */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        manual(stdout);
        return 0;
    }
    for (const struct ls_cmd *c = cmds; c->name; c++)
        if (!strcmp(c->name, argv[1])) return c->fn(argc - 1, argv + 1);
    fprintf(stderr, "logship: unknown command '%s' (try 'logship --help')\n", argv[1]);
    return 2;
}
