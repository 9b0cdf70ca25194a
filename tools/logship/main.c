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
    {NULL, NULL, NULL, NULL},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: logship COMMAND [ARGS]\n\ncommands:\n");
    for (const struct ls_cmd *c = cmds; c->name; c++)
        fprintf(f, "  %-8s %s\n           %s\n", c->name, c->usage, c->help);
}

int main(int argc, char **argv)
{
    ls_log_set_handler(ls_log_stderr, NULL); /* the library prints nothing by itself */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (const struct ls_cmd *c = cmds; c->name; c++)
        if (!strcmp(c->name, argv[1])) return c->fn(argc - 1, argv + 1);
    fprintf(stderr, "logship: unknown command '%s' (try 'logship --help')\n", argv[1]);
    return 2;
}
