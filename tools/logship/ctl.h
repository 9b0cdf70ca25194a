/* The `logship` commands' side of the control socket: finding the daemon and asking it. */
#ifndef LS_TOOLS_CTL_H
#define LS_TOOLS_CTL_H

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

#endif
