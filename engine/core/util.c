/* Assertions, the clock and leveled logging. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include "core/core.h"

void ls__panic(const char *file, int line, const char *expr)
{
    fprintf(stderr, "logship: internal invariant failed at %s:%d: %s\n", file, line, expr);
    abort();
}

uint64_t ls_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

uint64_t ls_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

int ls_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, uint64_t deadline)
{
    struct timespec ts = {.tv_sec = (time_t) (deadline / 1000000000ull),
                          .tv_nsec = (long) (deadline % 1000000000ull)};
    return pthread_cond_timedwait(cond, mu, &ts);
}

void ls_msgf(char *out, size_t len, const char *fmt, ...)
{
    if (!out || len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, len, fmt, ap);
    va_end(ap);
}

void ls_vmsgf(char *out, size_t len, const char *fmt, va_list ap)
{
    if (!out || len == 0) return;
    char tmp[1024];
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    snprintf(out, len, "%s", tmp);
}

int ls_errf(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static int log_level = -1;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;
/* Set once at start (log.h); read by every thread. A relaxed atomic pair is enough: a message
 * racing a change may reach the previous handler, which log.h allows. */
static ls_log_cb _Atomic log_cb;
static void *_Atomic log_ctx;

static void log_init(void)
{
    const char *e = getenv("LS_LOG_LEVEL");
    log_level = LS_LOG_INFO;
    if (!e) return;
    if (!strcasecmp(e, "error"))
        log_level = LS_LOG_ERROR;
    else if (!strcasecmp(e, "warn"))
        log_level = LS_LOG_WARN;
    else if (!strcasecmp(e, "debug"))
        log_level = LS_LOG_DEBUG;
}

void ls_log_set_handler(ls_log_cb cb, void *ctx)
{
    atomic_store_explicit(&log_ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&log_cb, cb, memory_order_release);
}

void ls_log_set_level(ls_log_level_t level)
{
    pthread_once(&log_once, log_init);
    log_level = (int) level;
}

ls_log_level_t ls_log_get_level(void)
{
    pthread_once(&log_once, log_init);
    return (ls_log_level_t) log_level;
}

const char *ls_log_level_name(ls_log_level_t level)
{
    static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    return (unsigned) level < 4 ? names[level] : "?";
}

void ls_log(ls_log_level_t level, const char *component, const char *fmt, ...)
{
    pthread_once(&log_once, log_init);
    ls_log_cb cb = atomic_load_explicit(&log_cb, memory_order_acquire);
    if (!cb || (int) level > log_level) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cb(atomic_load_explicit(&log_ctx, memory_order_relaxed), level, component, msg);
}

void ls_log_stderr(void *ctx, ls_log_level_t level, const char *component, const char *msg)
{
    (void) ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    /* One fprintf per line so that concurrent threads do not interleave inside a line. */
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%s] %s\n", tm.tm_year + 1900,
            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
            ls_log_level_name(level), component, msg);
}
