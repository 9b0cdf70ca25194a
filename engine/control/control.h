/*
 * control: the daemon's control socket (a UNIX domain stream socket, mode 0600), through which
 * `logship status`, `suspend`, `resume` and `seed` talk to the local daemon.
 *
 * Protocol: the client sends one JSON object on one line ({"cmd": "status", ...}, at most
 * LS_CONTROL_REQ_MAX bytes); the daemon answers one JSON object on one line ({"ok": true, ...} or
 * {"ok": false, "error": "..."}) and closes. A malformed request gets an error naming what is
 * wrong; an over-long one is refused without being buffered further.
 *
 * Lifecycle: ls_control_start() -> handler calls on the loop -> ls_control_close().
 * Threading: loop thread only; the handler runs on the loop and must not block.
 */
#ifndef LS_TOOLS_CONTROL_H
#define LS_TOOLS_CONTROL_H

#include <stddef.h>

#include <cjson/cJSON.h>
#include <uv.h>

#define LS_CONTROL_REQ_MAX (64 * 1024) /* bytes of one request line */

/* Fills resp (an object; "ok" is added by the caller) for req. Returns 0, or a negative LS_E*
 * code with a message in err that becomes {"ok": false, "error": err}. */
typedef int (*ls_control_handler)(void *ctx, const cJSON *req, cJSON *resp, char *err,
                                  size_t errlen);

typedef struct ls_control ls_control_t;

/* Listens on path (an existing socket file there is replaced: the daemon checks beforehand that
 * no other daemon answers on it). Returns 0, or an error with a message in err. */
int ls_control_start(uv_loop_t *loop, const char *path, ls_control_handler handler, void *ctx,
                     ls_control_t **out, char *err, size_t errlen);
/* Stops listening and removes the socket file; clients already accepted get their answer.
 * Frees c from the loop (after the listening handle's close callback). */
void ls_control_close(ls_control_t *c);
/* The answer to one request line[0..len) (no newline): parsed, checked ("cmd" a string) and
 * handed to handler, then {"ok": true, ...} or {"ok": false, "error": ...}. Owned by the caller.
 * What the server does with each line it reads; no I/O of its own (the fuzz target's entry). */
cJSON *ls_control_answer(const char *line, size_t len, ls_control_handler handler, void *ctx);

/* Client side (blocking; for the `logship` command): connects to path, sends request (one JSON
 * object, no newline inside), reads the one-line answer into a malloc'd string (*response, owned
 * by the caller) within timeout_ms. Returns 0, LS_ENOENT/LS_ECONNREFUSED when no daemon listens
 * there, LS_ETIMEDOUT, LS_EPROTO (answer too long or cut), with a message in err. */
int ls_control_call(const char *path, const char *request, int timeout_ms, char **response,
                    char *err, size_t errlen);

#endif
