/* The Prometheus endpoint: libmicrohttpd serves GET /metrics from a thread of its own. Each
 * request asks the loop (uv_async) to build the same status document `logship status` shows
 * and renders it in the text exposition format, so the figures are the same numbers. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"

#define WAIT_MS 3000 /* a request waits this long for the loop */

struct ld_metrics {
    node_t *node;
    struct MHD_Daemon *mhd;
    uv_async_t async;   /* request -> loop */
    pthread_mutex_t mu; /* guards what follows */
    pthread_cond_t cv;
    uint64_t asked, done; /* requests asked of the loop / rendered by it */
    char *text;           /* the last rendering (malloc'd) */
    bool stopping;
};

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf_t;

static void put(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t) n < b->cap - b->len) {
            b->len += (size_t) n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t) (n > 0 ? n : 0);
        char *nb = realloc(b->buf, cap);
        if (!nb) return;
        b->buf = nb;
        b->cap = cap;
    }
}

static const struct {
    const char *field, *metric, *type, *help;
} gauges[] = {
    {"last_generated", "logship_last_generated", "gauge", "newest closed generation on the source"},
    {"last_copied", "logship_last_copied", "gauge", "last generation durable on the target"},
    {"last_inspected", "logship_last_inspected", "gauge", "last generation inspected"},
    {"last_replayed", "logship_last_replayed", "gauge", "last generation replayed"},
    {"copy_queue", "logship_copy_queue", "gauge", "generations not yet durable on the target"},
    {"copy_queue_bytes", "logship_copy_queue_bytes", "gauge",
     "bytes not yet durable on the target"},
    {"replay_queue", "logship_replay_queue", "gauge", "generations durable, not yet replayed"},
    {"replay_queue_bytes", "logship_replay_queue_bytes", "gauge", "bytes durable, not replayed"},
    {"copy_lag_s", "logship_copy_lag_seconds", "gauge", "age of the oldest generation not durable"},
    {"replay_lag_s", "logship_replay_lag_seconds", "gauge",
     "age of the oldest generation not replayed"},
    {"throughput_bps", "logship_throughput_bytes_per_second", "gauge", "over the last minute"},
    {"ask_agains", "logship_ask_agains_total", "counter", "generations asked for again"},
    {"inspection_failures", "logship_inspection_failures_total", "counter", "failed inspections"},
    {"rtt_ms", "logship_rtt_milliseconds", "gauge", "smoothed heartbeat round trip"},
};

/* The copy's label set; extra ("" or ",name=\"value\"") is added inside it. */
static void labels(sbuf_t *b, const cJSON *c, const char *extra)
{
    put(b, "{database=\"%s\",role=\"%s\",source=\"%s\",target=\"%s\"%s}",
        cJSON_GetObjectItem(c, "database")->valuestring,
        cJSON_GetObjectItem(c, "role")->valuestring, cJSON_GetObjectItem(c, "source")->valuestring,
        cJSON_GetObjectItem(c, "target")->valuestring, extra);
}

static char *render(const cJSON *doc)
{
    sbuf_t b = {malloc(4096), 0, 4096};
    if (!b.buf) return NULL;
    const cJSON *copies = cJSON_GetObjectItem(doc, "copies"), *c;
    put(&b, "# HELP logship_copy_state the copy's state (1 for the current one)\n"
            "# TYPE logship_copy_state gauge\n");
    cJSON_ArrayForEach(c, copies)
    {
        char state[96];
        snprintf(state, sizeof(state), ",state=\"%s\"",
                 cJSON_GetObjectItem(c, "state")->valuestring);
        put(&b, "logship_copy_state");
        labels(&b, c, state);
        put(&b, " 1\n");
    }
    for (size_t i = 0; i < LS_ARRAY_SIZE(gauges); i++) {
        put(&b, "# HELP %s %s\n# TYPE %s %s\n", gauges[i].metric, gauges[i].help, gauges[i].metric,
            gauges[i].type);
        cJSON_ArrayForEach(c, copies)
        {
            const cJSON *v = cJSON_GetObjectItem(c, gauges[i].field);
            if (!cJSON_IsNumber(v)) continue;
            put(&b, "%s", gauges[i].metric);
            labels(&b, c, "");
            put(&b, " %.17g\n", v->valuedouble);
        }
    }
    return b.buf;
}

static void on_async(uv_async_t *a)
{
    ld_metrics_t *m = a->data;
    cJSON *doc = cJSON_CreateObject();
    ld_status_build(m->node, doc);
    char *text = render(doc);
    cJSON_Delete(doc);
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

int ld_metrics_start(node_t *n, const char *addr, ld_metrics_t **out, char *err, size_t errlen)
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
    m->node = n;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    uv_async_init(n->loop, &m->async, on_async);
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
