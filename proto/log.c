/* log.c - see log.h. The level and ident are process-wide by nature (stderr is too). */
#include "log.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

static enum log_level log_level = LOG_LVL_INFO;
static const char *log_ident = "pyexec";

void log_set_level(enum log_level lvl)
{
	log_level = lvl;
}

void log_set_ident(const char *ident)
{
	log_ident = ident;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	char line[2048];
	int saved = errno;
	va_list ap;
	int n;

	if (lvl > log_level)
		return;
	n = snprintf(line, sizeof(line), "%s[%d]: %s: ", log_ident, (int)getpid(), names[lvl]);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line so concurrent writers never interleave inside a line. */
	fprintf(stderr, "%s\n", line);
	errno = saved;
}
