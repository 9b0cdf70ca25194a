/* The subcommands of the `logship` command-line tool; each lives in its own cmd_<name>.c. */
#ifndef LS_TOOLS_CMDS_H
#define LS_TOOLS_CMDS_H

/* Each returns the process exit code: 0 success, 1 failure of the operation, 2 bad usage. */
typedef int (*ls_cmd_fn)(int argc, char **argv);

struct ls_cmd {
    const char *name;  /* as typed after `logship` */
    ls_cmd_fn fn;      /* argv[0] is the subcommand name */
    const char *usage; /* one line of arguments */
    const char *help;  /* one line of what it does */
};

int ls_cmd_dump(int argc, char **argv);
int ls_cmd_load(int argc, char **argv);
int ls_cmd_certs(int argc, char **argv);
int ls_cmd_status(int argc, char **argv);
int ls_cmd_suspend(int argc, char **argv);
int ls_cmd_resume(int argc, char **argv);
int ls_cmd_network(int argc, char **argv);
int ls_cmd_seed(int argc, char **argv);
int ls_cmd_activate(int argc, char **argv);
int ls_cmd_switchover(int argc, char **argv);
int ls_cmd_resync(int argc, char **argv);

#endif
