/* The node: start and stop, listeners, the control socket, signals, timers, frame sending. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"

const char *ld_state_name(copy_state_t s)
{
    static const char *names[] = {"Initializing", "Healthy", "Disconnected", "Suspended",
                                  "Seeding",      "Failed",  "Diverged",     "DiskFull"};
    return (unsigned) s < LS_ARRAY_SIZE(names) ? names[s] : "Unknown";
}

int ld_send(ls_conn_t *conn, const ls_frame_t *f)
{
    ssize_t size = ls_frame_size(f);
    if (size < 0) return (int) size;
    uint8_t stackbuf[4096];
    uint8_t *buf = (size_t) size <= sizeof(stackbuf) ? stackbuf : malloc((size_t) size);
    if (!buf) return LS_ENOMEM;
    ssize_t n = ls_frame_encode(f, buf, (size_t) size);
    int rc = n < 0 ? (int) n
                   : ls_conn_send(conn, f->type, buf + LS_FRAME_HEADER_SIZE,
                                  (size_t) n - LS_FRAME_HEADER_SIZE);
    if (buf != stackbuf) free(buf);
    return rc;
}

void ld_conn_opts(node_t *n, ls_conn_opts_t *o, const char *peer_name, uint64_t heartbeat_ms,
                  uint64_t dead_ms)
{
    memset(o, 0, sizeof(*o));
    o->tls = n->tls;
    o->insecure_plaintext = n->cfg->plaintext;
    o->peer_name = n->cfg->plaintext ? NULL : peer_name;
    o->heartbeat_ms = (uint32_t) heartbeat_ms;
    o->dead_ms = (uint32_t) dead_ms;
    o->offload_compression = true; /* zstd on the connection's worker, never on the loop */
}

const char *ld_node_cert_name(const node_t *n, const char *name, bool target)
{
    const ls_cfg_target_t *t =
        target ? ls_config_target(n->cfg, name) : ls_config_source(n->cfg, name);
    return t ? t->peer_name : name;
}

bool ld_node_authorized(const node_t *n, const ls_conn_t *conn, const char *name, bool target,
                        char *why, size_t whylen)
{
    if (n->cfg->plaintext) return true; /* no certificates: the operator trusts the network */
    const char *want = ld_node_cert_name(n, name, target);
    if (ls_conn_peer_matches(conn, want)) return true;
    if (strcmp(want, name))
        snprintf(why, whylen,
                 "%s says it is node %s, whose certificate must carry %s ([%s %s] peer_name): "
                 "its certificate does not",
                 ls_conn_peer(conn), name, want, target ? "target" : "source", name);
    else
        snprintf(why, whylen, "%s says it is node %s: its certificate does not carry that name",
                 ls_conn_peer(conn), name);
    return false;
}

static void on_signal(uv_signal_t *s, int signum)
{
    node_t *n = s->data;
    LS_LOGI("node", "%s received: stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    ld_node_stop(n);
}

static void on_rescan(uv_timer_t *t)
{
    node_t *n = t->data;
    for (int i = 0; i < n->nactives; i++)
        ld_active_poll(&n->actives[i]);
}

static void on_housekeep(uv_timer_t *t)
{
    node_t *n = t->data;
    for (int i = 0; i < n->ncopies; i++)
        ld_pcopy_housekeep(&n->copies[i]);
    for (int i = 0; i < n->nactives; i++)
        ld_active_housekeep(&n->actives[i]);
}

static int start_listeners(node_t *n, char *err, size_t errlen)
{
    const ls_config_t *c = n->cfg;
    for (int i = 0; i < c->nlisten; i++) {
        ls_conn_opts_t o;
        /* The listener accepts any certificate chaining to our CA; the HELLO's node name is then
         * checked against the certificate (peer.c). */
        ld_conn_opts(n, &o, NULL, c->heartbeat_interval_ms, LS_PROTO_HEARTBEAT_TIMEOUT_MS);
        o.on_frame = ld_peer_on_frame;
        o.on_close = ld_peer_on_close;
        int rc = ls_listener_start(n->loop, c->listen[i].host, c->listen[i].port, &o,
                                   ld_peer_accept, n, &n->listeners[n->nlisteners]);
        if (rc) {
            snprintf(err, errlen, "cannot listen on %s:%u: %s", c->listen[i].host,
                     c->listen[i].port, ls_strerror(rc));
            return rc;
        }
        LS_LOGI("node", "listening on %s:%d%s", c->listen[i].host,
                ls_listener_port(n->listeners[n->nlisteners]),
                c->plaintext ? " (insecure plaintext)" : " (TLS 1.3, mutual authentication)");
        n->nlisteners++;
    }
    return 0;
}

static int start_databases(node_t *n, char *err, size_t errlen)
{
    const ls_config_t *c = n->cfg;
    n->links = calloc((size_t) c->ntargets + 1, sizeof(link_t));
    n->actives = calloc((size_t) c->ndatabases + 1, sizeof(active_t));
    n->copies = calloc((size_t) c->ndatabases + 1, sizeof(pcopy_t));
    if (!n->links || !n->actives || !n->copies) return LS_ENOMEM;
    for (int i = 0; i < c->ntargets; i++)
        ld_link_init(n, &n->links[n->nlinks++], &c->targets[i]);
    for (int i = 0; i < c->ndatabases; i++) {
        const ls_cfg_database_t *d = &c->databases[i];
        ld_seed_recover(d); /* an interrupted seed, before the copy or the store is opened */
        if (d->role == LS_ROLE_ACTIVE) {
            ld_active_init(n, &n->actives[n->nactives++], d);
        } else {
            int rc = ld_pcopy_open(n, &n->copies[n->ncopies++], d);
            if (rc) {
                snprintf(err, errlen, "passive copy %s: %s", d->name,
                         ld_pcopy_reason(&n->copies[n->ncopies - 1]));
                return rc;
            }
        }
    }
    for (int i = 0; i < n->nactives; i++)
        ld_active_poll(&n->actives[i]);
    return 0;
}

int ld_node_start(node_t *n, uv_loop_t *loop, ls_config_t *cfg, char *err, size_t errlen)
{
    memset(n, 0, sizeof(*n));
    n->loop = loop;
    n->cfg = cfg;
    n->next_conn_id = 1;
    if (!cfg->plaintext) {
        ls_tls_opts_t t = {
            .ca_file = cfg->tls_ca, .cert_file = cfg->tls_cert, .key_file = cfg->tls_key};
        int rc = ls_tls_ctx_new(&t, &n->tls, err, errlen);
        if (rc) return rc;
    } else {
        LS_LOGW("node", "insecure_plaintext = true: replication traffic is neither encrypted nor "
                        "authenticated");
    }
    int rc = start_databases(n, err, errlen);
    if (!rc) rc = start_listeners(n, err, errlen);
    if (!rc && cfg->metrics_listen[0])
        rc = ld_metrics_start(n, cfg->metrics_listen, &n->metrics, err, errlen);
    if (!rc)
        rc = ls_control_start(loop, cfg->control_socket, ld_control_handler, n, &n->control, err,
                              errlen);
    if (rc) return rc;
    uv_signal_init(loop, &n->sigterm);
    uv_signal_init(loop, &n->sigint);
    n->sigterm.data = n->sigint.data = n;
    uv_signal_start(&n->sigterm, on_signal, SIGTERM);
    uv_signal_start(&n->sigint, on_signal, SIGINT);
    uv_timer_init(loop, &n->rescan);
    uv_timer_init(loop, &n->housekeep);
    n->rescan.data = n->housekeep.data = n;
    uv_timer_start(&n->rescan, on_rescan, LD_RESCAN_MS, LD_RESCAN_MS);
    uv_timer_start(&n->housekeep, on_housekeep, LD_HOUSEKEEP_MS, LD_HOUSEKEEP_MS);
    LS_LOGI("node", "node %s started: %d active, %d passive database(s), %d target(s)",
            cfg->node_name, n->nactives, n->ncopies, n->nlinks);
    return 0;
}

void ld_node_stop(node_t *n)
{
    if (n->stopping) return;
    n->stopping = true;
    uv_close((uv_handle_t *) &n->sigterm, NULL);
    uv_close((uv_handle_t *) &n->sigint, NULL);
    uv_close((uv_handle_t *) &n->rescan, NULL);
    uv_close((uv_handle_t *) &n->housekeep, NULL);
    for (int i = 0; i < n->nlisteners; i++)
        ls_listener_close(n->listeners[i], NULL);
    ld_metrics_stop(n->metrics);
    n->metrics = NULL;
    ls_control_close(n->control);
    n->control = NULL;
    /* Readers first: their threads notify the links' async handles. */
    for (int i = 0; i < n->nactives; i++)
        ld_active_close(&n->actives[i]);
    for (int i = 0; i < n->nlinks; i++)
        ld_link_close(&n->links[i]);
    ld_peer_close_all(n);
    for (int i = 0; i < n->ncopies; i++)
        ld_pcopy_close(&n->copies[i]);
    ld_seed_client_stop(n); /* after the receiver threads ended */
}
