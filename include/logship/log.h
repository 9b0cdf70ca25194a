/*
 * log: where logship's messages go. The library never prints: every message it has for a person
 * (a copy that failed, a network that went down, a recovery that truncated a torn tail) is handed
 * to the handler the application installs, with its level and the component that speaks. Without
 * a handler, messages are dropped. The programs (logshipd, logship, the benchmark) install
 * ls_log_stderr(); an application embedding the writer installs its own (syslog, its logger).
 *
 * Lifecycle: ls_log_set_handler() and ls_log_set_level() once at start, before the first
 * ls_db_open() or any thread of the library runs; both may be called again later, but a message
 * being delivered on another thread may still reach the previous handler.
 *
 * Threading: the handler is called from any of the library's threads (the writer's flusher, a
 * copy's receiver and replayer, the event loop ...), possibly at the same time: it must be
 * thread-safe and must not call back into logship. Messages are one line, without a final
 * newline, at most 1023 bytes (longer ones are cut).
 */
#ifndef LOGSHIP_LOG_H
#define LOGSHIP_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LS_LOG_ERROR = 0, LS_LOG_WARN, LS_LOG_INFO, LS_LOG_DEBUG } ls_log_level_t;

/* Receives one message. ctx is the pointer given to ls_log_set_handler (borrowed); component
 * names the part of logship that speaks ("writer", "copy", "link" ...); msg is valid only during
 * the call. */
typedef void (*ls_log_cb)(void *ctx, ls_log_level_t level, const char *component, const char *msg);

/* Installs the handler (NULL: drop every message, the default). */
void ls_log_set_handler(ls_log_cb cb, void *ctx);

/* Messages above level are not formatted at all. Default LS_LOG_INFO, or the LS_LOG_LEVEL
 * environment variable (error|warn|info|debug) when it is set. */
void ls_log_set_level(ls_log_level_t level);
ls_log_level_t ls_log_get_level(void);

/* A ready handler: "2026-12-04T18:43:18.123Z INFO  [component] message" on stderr, one write
 * per line so that lines of concurrent threads never interleave. ctx is unused. */
void ls_log_stderr(void *ctx, ls_log_level_t level, const char *component, const char *msg);

/* The level's name: "ERROR", "WARN", "INFO", "DEBUG". */
const char *ls_log_level_name(ls_log_level_t level);

#ifdef __cplusplus
}
#endif
#endif
