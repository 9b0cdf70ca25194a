/* control: the daemon's control socket answers one JSON request per connection, refuses bad ones
 * with a clear error, is owner-only, and the client says clearly when no daemon listens. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control/control.h"
#include "core/core.h"
#include "harness.h"

static char *dir;
static char sock[256];
static uv_loop_t loop;
static uv_async_t stop_async;
static ls_control_t *ctl;
static pthread_t thread;
static int calls;

static int handler(void *ctx, const cJSON *req, cJSON *resp, char *err, size_t errlen)
{
    (void) ctx;
    calls++;
    const char *cmd = cJSON_GetObjectItem(req, "cmd")->valuestring;
    if (!strcmp(cmd, "status")) {
        cJSON_AddNumberToObject(resp, "copies", 2);
        return 0;
    }
    snprintf(err, errlen, "unknown command '%s'", cmd);
    return LS_EINVAL;
}

static void on_stop(uv_async_t *a)
{
    ls_control_close(ctl);
    uv_close((uv_handle_t *) a, NULL);
}

static void *run(void *arg)
{
    (void) arg;
    uv_run(&loop, UV_RUN_DEFAULT);
    return NULL;
}

static void setup(void)
{
    dir = ls_h_tmpdir("control");
    snprintf(sock, sizeof(sock), "%s/ctl.sock", dir);
    uv_loop_init(&loop);
    uv_async_init(&loop, &stop_async, on_stop);
    char err[256];
    cr_assert_eq(ls_control_start(&loop, sock, handler, NULL, &ctl, err, sizeof(err)), 0, "%s",
                 err);
    pthread_create(&thread, NULL, run, NULL);
}

static void teardown(void)
{
    uv_async_send(&stop_async);
    pthread_join(thread, NULL);
    uv_loop_close(&loop);
    ls_h_rmtree_free(dir);
}

TestSuite(control, .init = setup, .fini = teardown, .timeout = 20);

Test(control, answers_a_request_and_is_owner_only)
{
    struct stat st;
    cr_assert_eq(stat(sock, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
    char *resp = NULL, err[256] = "";
    cr_assert_eq(ls_control_call(sock, "{\"cmd\":\"status\"}", 5000, &resp, err, sizeof(err)), 0,
                 "%s", err);
    cJSON *j = cJSON_Parse(resp);
    cr_assert_not_null(j, "answer is JSON: %s", resp);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
    cr_assert_eq(cJSON_GetObjectItem(j, "copies")->valueint, 2);
    cJSON_Delete(j);
    free(resp);
}

static void expect_refusal(const char *request, const char *needle)
{
    char *resp = NULL, err[256] = "";
    cr_assert_eq(ls_control_call(sock, request, 5000, &resp, err, sizeof(err)), 0, "%s", err);
    cJSON *j = cJSON_Parse(resp);
    cr_assert_not_null(j, "answer is JSON: %s", resp);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "ok")), "%s", resp);
    const char *msg = cJSON_GetObjectItem(j, "error")->valuestring;
    cr_assert(ls_h_contains(msg, needle), "expected '%s' in '%s'", needle, msg);
    cJSON_Delete(j);
    free(resp);
}

Test(control, malformed_requests_get_clear_errors)
{
    expect_refusal("{\"cmd\": ", "malformed request: expected one JSON object");
    expect_refusal("[1,2]", "malformed request: expected one JSON object");
    expect_refusal("{\"command\":\"status\"}", "missing string field \"cmd\"");
    expect_refusal("{\"cmd\":\"frobnicate\"}", "unknown command 'frobnicate'");
}

Test(control, over_long_request_is_refused_without_buffering_it)
{
    size_t n = LS_CONTROL_REQ_MAX * 4;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = '\0';
    char *resp = NULL, err[256] = "";
    int rc = ls_control_call(sock, big, 5000, &resp, err, sizeof(err));
    /* The daemon answers after the first 64 KiB and closes; the client's send is cut, but it
     * still reads the refusal. The daemon then answers the next request. */
    cr_assert_eq(rc, 0, "the refusal is read even though the send was cut: %s", err);
    cr_assert(ls_h_contains(resp, "request too long"), "%s", resp);
    free(resp);
    free(big);
    cr_assert_eq(ls_control_call(sock, "{\"cmd\":\"status\"}", 5000, &resp, err, sizeof(err)), 0,
                 "%s", err);
    free(resp);
}

Test(control, no_daemon_is_a_clear_error)
{
    char *resp = NULL, err[256] = "", path[300];
    snprintf(path, sizeof(path), "%s/absent.sock", dir);
    int rc = ls_control_call(path, "{\"cmd\":\"status\"}", 1000, &resp, err, sizeof(err));
    cr_assert_eq(rc, LS_ENOENT);
    cr_assert(ls_h_contains(err, "no logshipd is running on control socket"), "%s", err);
    cr_assert(ls_h_contains(err, path), "%s", err);
}
