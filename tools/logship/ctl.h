/* The `logship` commands' side of the control socket: finding the daemon and asking it. */
#ifndef LS_TOOLS_CTL_H
#define LS_TOOLS_CTL_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#define LS_CTL_TIMEOUT_MS 10000 /* how long a command waits for the daemon's answer */

/* The control socket: --socket (sock), else the configuration file's control_socket (conf),
 * else $LOGSHIP_SOCKET. Returns 0, or 2 (bad usage) after printing why, prefixed by who
 * ("logship status"). */
int ls_ctl_socket(const char *who, const char *sock, const char *conf, char *out, size_t outlen);

/* Sends req and returns the answer when it says ok (owned by the caller), else NULL with the
 * reason in err: no daemon, no answer, not JSON, or the daemon's own error. */
cJSON *ls_ctl_request(const char *path, const cJSON *req, char *err, size_t errlen);

/* getopt_long's value for --socket in every command's option table (its own follow). */
#define LS_CTL_OPT_SOCKET 256

/* Handles the options every control command takes: -c CONFIG into *conf, --socket PATH into
 * *sock; returns false for any other ch. */
bool ls_ctl_opt(int ch, const char *optarg_, const char **conf, const char **sock);

/* An option no one handled: prints "<who>: bad option '...'" and the usage; returns 2. */
int ls_ctl_bad_option(const char *who, char **argv, void (*usage)(void));

/* After the options: the one operand (DB) left, else prints the usage and returns NULL. */
const char *ls_ctl_operand(int argc, char **argv, void (*usage)(void));

/* A new request {"cmd": cmd, "database": db} (owned by the caller). */
cJSON *ls_ctl_db_req(const char *cmd, const char *db);

/* Sends req (deleted) and returns the answer, else NULL after printing
 * "<who>: <context><reason>" on stderr. */
cJSON *ls_ctl_ask(const char *who, const char *context, const char *path, cJSON *req);

/* Polls `status_cmd` for db every poll_us until its "state" is done (prints its "message" on
 * stdout, returns 0), refused or failed (prints "<who>: <message>" on stderr, returns 1), or the
 * daemon stops answering (1). activate and switchover follow their operation with it. */
int ls_ctl_follow(const char *who, const char *path, const char *status_cmd, const char *db,
                  unsigned poll_us);

/* The string member k of o, "" when absent. */
const char *ls_ctl_jstr(const cJSON *o, const char *k);

#endif
