/*
 * logshipd: the daemon is wiring around one engine/node (node/node.h), which hosts every engine
 * machine of the node. The daemon owns what is the process's: the configuration (loaded by
 * main.c), the TLS context, the listeners, the control socket, the signals, the Prometheus
 * endpoint (metrics.c) and the one event loop they all run on.
 *
 * Lifecycle: ld_daemon_start, uv_run until every handle closed (a signal, or a failed start,
 * calls ld_daemon_stop), ld_daemon_free. Threading: the loop thread, but for metrics.c's
 * libmicrohttpd thread, which asks the loop for the status (uv_async).
 */
#ifndef LS_LOGSHIPD_DAEMON_H
#define LS_LOGSHIPD_DAEMON_H

#include <uv.h>

#include "config/config.h"
#include "control/control.h"
#include "core/core.h"
#include "node/node.h"
#include "transport/transport.h"

typedef struct ld_metrics ld_metrics_t;

typedef struct {
    uv_loop_t *loop;
    const ls_config_t *cfg;
    ls_tls_ctx_t *tls;      /* NULL: insecure_plaintext */
    ls_node_t *node;        /* the replication node (engine/node) */
    uv_signal_t signals[2]; /* SIGTERM, SIGINT */
    int nsignals;           /* of them initialised */
    ls_listener_t *listeners[LS_CFG_MAX_LISTEN];
    int nlisteners;
    ls_control_t *control;
    ld_metrics_t *metrics; /* Prometheus endpoint (NULL: off) */
    bool stopping;
} ld_daemon_t;

/* daemon.c */
/* Starts the node of cfg on loop with its listeners, control socket and signals. 0, or an error
 * with err: the caller then calls ld_daemon_stop and runs the loop to its end all the same. */
int ld_daemon_start(ld_daemon_t *d, uv_loop_t *loop, const ls_config_t *cfg, char *err,
                    size_t errlen);
void ld_daemon_stop(ld_daemon_t *d); /* begins a clean stop; the loop ends when all closed */
void ld_daemon_free(ld_daemon_t *d); /* after the loop ended */

/* metrics.c: the Prometheus endpoint (libmicrohttpd, its own thread) */
int ld_metrics_start(uv_loop_t *loop, ls_node_t *node, const char *addr, ld_metrics_t **out,
                     char *err, size_t errlen);
void ld_metrics_stop(ld_metrics_t *m);

#endif
