/* The control socket server (see control.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control/control.h"
#include "core/core.h"

struct ls_control {
    uv_pipe_t pipe; /* listening socket */
    char path[108]; /* socket path (sun_path bound) */
    ls_control_handler handler;
    void *ctx;
};

typedef struct {
    uv_pipe_t pipe;       /* accepted client */
    ls_control_t *server; /* owner */
    char *buf;            /* request bytes so far */
    size_t len;           /* bytes in buf */
    bool answered;        /* a reply was queued: ignore further input */
    bool draining;        /* refused an over-long request: discard input until EOF */
} client_t;

static void client_closed(uv_handle_t *h)
{
    client_t *cl = h->data;
    free(cl->buf);
    free(cl);
}

static void after_shutdown(uv_shutdown_t *req, int status)
{
    (void) status;
    free(req);
}

static void after_write(uv_write_t *w, int status)
{
    client_t *cl = w->data;
    free(w);
    uv_shutdown_t *sd = cl->draining && status == 0 ? malloc(sizeof(*sd)) : NULL;
    /* Closing with unread input would reset the connection and lose the answer on the client's
     * side (Linux discards it), so a draining client is shut down for writing and closed at EOF. */
    if (!sd || uv_shutdown(sd, (uv_stream_t *) &cl->pipe, after_shutdown) != 0) {
        free(sd);
        uv_close((uv_handle_t *) &cl->pipe, client_closed);
    }
}

static void reply(client_t *cl, cJSON *resp)
{
    cl->answered = true;
    if (!cl->draining) uv_read_stop((uv_stream_t *) &cl->pipe);
    char *text = cJSON_PrintUnformatted(resp);
    size_t n = text ? strlen(text) : 0;
    uv_write_t *w = malloc(sizeof(*w) + n + 1);
    if (!text || !w) {
        free(text);
        free(w);
        uv_close((uv_handle_t *) &cl->pipe, client_closed);
        return;
    }
    char *data = (char *) (w + 1);
    memcpy(data, text, n);
    data[n] = '\n';
    free(text);
    w->data = cl;
    uv_buf_t b = uv_buf_init(data, (unsigned) n + 1);
    if (uv_write(w, (uv_stream_t *) &cl->pipe, &b, 1, after_write) != 0) {
        free(w);
        uv_close((uv_handle_t *) &cl->pipe, client_closed);
    }
}

static cJSON *error_answer(const char *msg)
{
    cJSON *resp = cJSON_CreateObject();
    cJSON_AddBoolToObject(resp, "ok", 0);
    cJSON_AddStringToObject(resp, "error", msg);
    return resp;
}

static void reply_error(client_t *cl, const char *msg)
{
    cJSON *resp = error_answer(msg);
    reply(cl, resp);
    cJSON_Delete(resp);
}

cJSON *ls_control_answer(const char *line, size_t len, ls_control_handler handler, void *ctx)
{
    const char *end = NULL;
    cJSON *req = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    if (!req || !cJSON_IsObject(req)) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "malformed request: expected one JSON object, error near byte %zu",
                 end ? (size_t) (end - line) : (size_t) 0);
        cJSON_Delete(req);
        return error_answer(msg);
    }
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
    if (!cJSON_IsString(cmd)) {
        cJSON_Delete(req);
        return error_answer("malformed request: missing string field \"cmd\"");
    }
    cJSON *resp = cJSON_CreateObject();
    char err[512] = "";
    int rc = handler(ctx, req, resp, err, sizeof(err));
    cJSON_Delete(req);
    if (rc) {
        cJSON_Delete(resp);
        return error_answer(err[0] ? err : ls_strerror(rc));
    }
    cJSON_AddBoolToObject(resp, "ok", 1);
    return resp;
}

static void handle_line(client_t *cl)
{
    cJSON *resp = ls_control_answer(cl->buf, cl->len, cl->server->handler, cl->server->ctx);
    reply(cl, resp);
    cJSON_Delete(resp);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void) suggested;
    client_t *cl = h->data;
    if (cl->draining) { /* discard into the start of the buffer */
        buf->base = cl->buf;
        buf->len = LS_CONTROL_REQ_MAX;
        return;
    }
    size_t room = LS_CONTROL_REQ_MAX + 1 - cl->len; /* one byte more than allowed: detect excess */
    buf->base = cl->buf + cl->len;
    buf->len = room;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void) buf;
    client_t *cl = s->data;
    if (cl->draining) {
        if (n < 0 && !uv_is_closing((uv_handle_t *) s)) uv_close((uv_handle_t *) s, client_closed);
        return;
    }
    if (cl->answered) return;
    if (n < 0) { /* EOF before a newline: treat what came as the request, if anything */
        if (n == UV_EOF && cl->len > 0)
            handle_line(cl);
        else
            uv_close((uv_handle_t *) s, client_closed);
        return;
    }
    cl->len += (size_t) n;
    char *nl = memchr(cl->buf, '\n', cl->len);
    if (nl) {
        cl->len = (size_t) (nl - cl->buf);
        handle_line(cl);
    } else if (cl->len > LS_CONTROL_REQ_MAX) {
        cl->draining = true;
        reply_error(cl, "request too long (more than 65536 bytes without a newline)");
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    ls_control_t *c = server->data;
    if (status < 0) return;
    client_t *cl = calloc(1, sizeof(*cl));
    char *buf = malloc(LS_CONTROL_REQ_MAX + 1);
    if (!cl || !buf) {
        free(cl);
        free(buf);
        return;
    }
    cl->buf = buf;
    cl->server = c;
    uv_pipe_init(server->loop, &cl->pipe, 0);
    cl->pipe.data = cl;
    if (uv_accept(server, (uv_stream_t *) &cl->pipe) != 0 ||
        uv_read_start((uv_stream_t *) &cl->pipe, on_alloc, on_read) != 0)
        uv_close((uv_handle_t *) &cl->pipe, client_closed);
}

static void server_closed(uv_handle_t *h)
{
    free(h->data);
}

int ls_control_start(uv_loop_t *loop, const char *path, ls_control_handler handler, void *ctx,
                     ls_control_t **out, char *err, size_t errlen)
{
    *out = NULL;
    ls_control_t *c = calloc(1, sizeof(*c));
    if (!c) return LS_ENOMEM;
    if (strlen(path) >= sizeof(c->path)) {
        snprintf(err, errlen, "control socket path too long (%zu bytes, at most %zu): %s",
                 strlen(path), sizeof(c->path) - 1, path);
        free(c);
        return LS_EINVAL;
    }
    snprintf(c->path, sizeof(c->path), "%s", path);
    c->handler = handler;
    c->ctx = ctx;
    uv_pipe_init(loop, &c->pipe, 0);
    c->pipe.data = c;
    unlink(path);
    mode_t old = umask(0077); /* the socket is created owner-only, never briefly open */
    int rc = uv_pipe_bind(&c->pipe, path);
    umask(old);
    if (rc == 0) rc = uv_listen((uv_stream_t *) &c->pipe, 16, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on control socket %s: %s", path, uv_strerror(rc));
        uv_close((uv_handle_t *) &c->pipe, server_closed);
        return LS_EIO;
    }
    chmod(path, 0600);
    *out = c;
    return 0;
}

void ls_control_close(ls_control_t *c)
{
    if (!c) return;
    unlink(c->path);
    uv_close((uv_handle_t *) &c->pipe, server_closed);
}
