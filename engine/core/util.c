/* Assertions, the clock and leveled logging. */
#include <pthread.h>
#include <stdarg.h>
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

static int log_level = -1;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

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

void ls_log(ls_log_level_t level, const char *component, const char *fmt, ...)
{
    static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    pthread_once(&log_once, log_init);
    if ((int) level > log_level) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    /* One fprintf per line so that concurrent threads do not interleave inside a line. */
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%s] %s\n", tm.tm_year + 1900,
            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
            names[level], component, msg);
}
