/* The Prometheus endpoint: libmicrohttpd serves GET /metrics from a thread of its own. Each
 * request asks the loop (uv_async) to fill the same status model `logship status` shows
 * (engine/node, status.c) and engine/status renders it in the text exposition format, so the
 * figures are the same numbers. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"

#define WAIT_MS 3000 /* a request waits this long for the loop */

struct ld_metrics {
    ls_node_t *node;
    struct MHD_Daemon *mhd;
    uv_async_t async;   /* request -> loop */
    pthread_mutex_t mu; /* guards what follows */
    pthread_cond_t cv;
    uint64_t asked, done; /* requests asked of the loop / rendered by it */
    char *text;           /* the last rendering (malloc'd) */
    bool stopping;
};

static void on_async(uv_async_t *a)
{
    ld_metrics_t *m = a->data;
    ls_status_node_t st;
    char *text = ls_node_status_fill(m->node, &st) == 0 ? ls_status_to_prometheus(&st) : NULL;
    free(st.copies);
    free(st.databases);
    pthread_mutex_lock(&m->mu);
    free(m->text);
    m->text = text;
    m->done = m->asked;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

/* On libmicrohttpd's thread: asks the loop for a fresh rendering and waits for it. */
static char *fetch(ld_metrics_t *m)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&m->mu);
    uint64_t want = ++m->asked;
    uv_async_send(&m->async);
    while (!m->stopping && m->done < want)
        if (pthread_cond_timedwait(&m->cv, &m->mu, &dl) != 0) break;
    char *text = m->done >= want && m->text ? strdup(m->text) : NULL;
    pthread_mutex_unlock(&m->mu);
    return text;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void) version;
    (void) upload;
    (void) upload_size;
    (void) con_cls;
    ld_metrics_t *m = cls;
    unsigned status = MHD_HTTP_OK;
    char *text = NULL;
    if (strcmp(method, "GET") != 0) {
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
        text = strdup("only GET is served\n");
    } else if (strcmp(url, "/metrics") != 0) {
        status = MHD_HTTP_NOT_FOUND;
        text = strdup("the metrics are at /metrics\n");
    } else if (!(text = fetch(m))) {
        status = MHD_HTTP_SERVICE_UNAVAILABLE;
        text = strdup("the daemon did not answer in time\n");
    }
    if (!text) return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

int ld_metrics_start(uv_loop_t *loop, ls_node_t *node, const char *addr, ld_metrics_t **out,
                     char *err, size_t errlen)
{
    ls_cfg_addr_t a;
    struct sockaddr_storage ss;
    if (ls_parse_addr(addr, &a) != 0 ||
        (uv_ip4_addr(a.host, a.port, (struct sockaddr_in *) &ss) != 0 &&
         uv_ip6_addr(a.host, a.port, (struct sockaddr_in6 *) &ss) != 0)) {
        snprintf(err, errlen, "metrics_listen '%s' is not IP:PORT", addr);
        return LS_EINVAL;
    }
    ld_metrics_t *m = calloc(1, sizeof(*m));
    if (!m) return LS_ENOMEM;
    m->node = node;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    uv_async_init(loop, &m->async, on_async);
    m->async.data = m;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
                     (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    m->mhd = MHD_start_daemon(flags, a.port, NULL, NULL, answer, m, MHD_OPTION_SOCK_ADDR, &ss,
                              MHD_OPTION_CONNECTION_LIMIT, 16u, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                              MHD_OPTION_END);
    if (!m->mhd) {
        snprintf(err, errlen, "cannot serve metrics on %s (address in use?)", addr);
        uv_close((uv_handle_t *) &m->async, NULL);
        *out = m; /* freed by ld_metrics_stop after the close */
        m->stopping = true;
        return LS_EIO;
    }
    LS_LOGI("metrics", "Prometheus metrics on http://%s/metrics", addr);
    *out = m;
    return 0;
}

static void free_metrics(uv_handle_t *h)
{
    ld_metrics_t *m = h->data;
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m->text);
    free(m);
}

void ld_metrics_stop(ld_metrics_t *m)
{
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    bool was = m->stopping;
    m->stopping = true; /* a request waiting for the loop gives up now */
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    if (m->mhd) MHD_stop_daemon(m->mhd);
    m->mhd = NULL;
    if (!was)
        uv_close((uv_handle_t *) &m->async, free_metrics);
    else if (!uv_is_closing((uv_handle_t *) &m->async))
        uv_close((uv_handle_t *) &m->async, free_metrics);
}
