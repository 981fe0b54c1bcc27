/* opttable.h - command-line options as a table: key, type, default, bounds, unit, help.
 * Both daemons describe their settings with one table each; this parses, defaults, prints
 * --help and --check output from it, so every setting is documented in exactly one place. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum opt_type { OPT_STR, OPT_U64, OPT_BOOL };

struct opt_def {
	const char *key;
	enum opt_type type;
	size_t off; /* of the field in the caller's settings struct */
	const char *def_str;
	uint64_t def, min, max;
	const char *unit;
	const char *help;
};

/* One row per line reads better than the formatter's layout. */
// clang-format off
#define OPT_S(T, k, f, d, h) { k, OPT_STR, offsetof(T, f), d, 0, 0, 0, "", h }
#define OPT_U(T, k, f, d, lo, hi, u, h) { k, OPT_U64, offsetof(T, f), NULL, d, lo, hi, u, h }
#define OPT_B(T, k, f, h) { k, OPT_BOOL, offsetof(T, f), NULL, 0, 0, 1, "", h }
// clang-format on

struct opt_table {
	const char *prog;  /* "sandboxd" */
	const char *about; /* one line under Usage: */
	const struct opt_def *opts;
	size_t n;
	/* Optional: a remark opt_print() adds after a value, e.g. where it came from. */
	const char *(*note)(const struct opt_def *o, const void *base);
};

/* Fills `base` with the defaults, then parses argv over it. Returns 0, 1 when --help was
 * printed, or -EINVAL with a message on stderr. `ret_given`, when not NULL, gets one flag per
 * option (n entries): whether the command line set it. */
int opt_parse(const struct opt_table *t, void *base, int argc, char **argv, bool *ret_given);
/* "key = value unit" per line: the effective configuration, for --check. */
void opt_print(const struct opt_table *t, const void *base, FILE *out);
