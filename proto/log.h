/* log.h - one line per event on stderr (journald and `docker logs` collect it).
 * Modules stay quiet and return -errno; the caller logs once, with the function name. */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <string.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Set once by main(); a plain int so every binary can share this header. */
void log_set_level(enum log_level lvl);
void log_set_ident(const char *ident);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

/* Logs "msg: strerror(-r)" and evaluates to r, so `return log_error_errno(r, ...)` works. */
#define log_error_errno(r, fmt, ...)                                                               \
	({                                                                                         \
		int _r = (r);                                                                      \
		log_msg(LOG_LVL_ERROR, fmt ": %s", ##__VA_ARGS__, strerror(_r < 0 ? -_r : _r));    \
		_r;                                                                                \
	})
#define log_warn_errno(r, fmt, ...)                                                                \
	({                                                                                         \
		int _r = (r);                                                                      \
		log_msg(LOG_LVL_WARN, fmt ": %s", ##__VA_ARGS__, strerror(_r < 0 ? -_r : _r));     \
		_r;                                                                                \
	})
