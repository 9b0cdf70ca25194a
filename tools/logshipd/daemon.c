/* The daemon's wiring: the TLS context, the node, the listeners, the control socket, the
 * metrics endpoint and the signals, started and stopped in order. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"

static void on_signal(uv_signal_t *s, int signum)
{
    ld_daemon_t *d = s->data;
    LS_LOGI("node", "%s received: stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    ld_daemon_stop(d);
}

static int start_listeners(ld_daemon_t *d, char *err, size_t errlen)
{
    const ls_config_t *c = d->cfg;
    for (int i = 0; i < c->nlisten; i++) {
        ls_conn_opts_t o;
        ls_node_listen_opts(d->node, &o);
        int rc = ls_listener_start(d->loop, c->listen[i].host, c->listen[i].port, &o,
                                   ls_node_accept, d->node, &d->listeners[d->nlisteners]);
        if (rc) {
            snprintf(err, errlen, "cannot listen on %s:%u: %s", c->listen[i].host,
                     c->listen[i].port, ls_strerror(rc));
            return rc;
        }
        LS_LOGI("node", "listening on %s:%d%s", c->listen[i].host,
                ls_listener_port(d->listeners[d->nlisteners]),
                c->plaintext ? " (insecure plaintext)" : " (TLS 1.3, mutual authentication)");
        d->nlisteners++;
    }
    return 0;
}

static int start(ld_daemon_t *d, char *err, size_t errlen)
{
    const ls_config_t *cfg = d->cfg;
    if (!cfg->plaintext) {
        ls_tls_opts_t t = {
            .ca_file = cfg->tls_ca, .cert_file = cfg->tls_cert, .key_file = cfg->tls_key};
        int rc = ls_tls_ctx_new(&t, &d->tls, err, errlen);
        if (rc) return rc;
    } else {
        LS_LOGW("node", "insecure_plaintext = true: replication traffic is neither encrypted nor "
                        "authenticated");
    }
    ls_node_options_t o = {.loop = d->loop, .cfg = cfg, .tls = d->tls};
    d->node = ls_node_new(&o);
    if (!d->node) {
        snprintf(err, errlen, "out of memory");
        return LS_ENOMEM;
    }
    int rc = ls_node_start(d->node, err, errlen);
    if (!rc) rc = start_listeners(d, err, errlen);
    if (!rc && cfg->metrics_listen[0])
        rc = ld_metrics_start(d->loop, d->node, cfg->metrics_listen, &d->metrics, err, errlen);
    if (!rc)
        rc = ls_control_start(d->loop, cfg->control_socket, ls_node_control, d->node, &d->control,
                              err, errlen);
    return rc;
}

int ld_daemon_start(ld_daemon_t *d, uv_loop_t *loop, const ls_config_t *cfg, char *err,
                    size_t errlen)
{
    memset(d, 0, sizeof(*d));
    d->loop = loop;
    d->cfg = cfg;
    int rc = start(d, err, errlen);
    if (rc) return rc;
    static const int signums[] = {SIGTERM, SIGINT};
    for (; d->nsignals < (int) LS_ARRAY_SIZE(signums); d->nsignals++) {
        uv_signal_t *s = &d->signals[d->nsignals];
        uv_signal_init(loop, s);
        s->data = d;
        uv_signal_start(s, on_signal, signums[d->nsignals]);
    }
    return 0;
}

void ld_daemon_stop(ld_daemon_t *d)
{
    if (d->stopping) return;
    d->stopping = true;
    for (int i = 0; i < d->nsignals; i++)
        uv_close((uv_handle_t *) &d->signals[i], NULL);
    for (int i = 0; i < d->nlisteners; i++)
        ls_listener_close(d->listeners[i], NULL);
    ld_metrics_stop(d->metrics);
    d->metrics = NULL;
    ls_control_close(d->control);
    d->control = NULL;
    if (d->node) ls_node_stop(d->node);
}

void ld_daemon_free(ld_daemon_t *d)
{
    ls_node_free(d->node);
    d->node = NULL;
    ls_tls_ctx_free(d->tls);
    d->tls = NULL;
}
