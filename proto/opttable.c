/* opttable.c - see opttable.h. */
#include "opttable.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"

static void opt_usage(const struct opt_table *t, FILE *out)
{
	fprintf(out, "Usage: %s [OPTION]...\n%s\n\n", t->prog, t->about);
	for (size_t i = 0; i < t->n; i++) {
		const struct opt_def *o = &t->opts[i];
		if (o->type == OPT_STR)
			fprintf(out, "  --%-19s %s (default %s)\n", o->key, o->help,
				*o->def_str ? o->def_str : "-");
		else if (o->type == OPT_U64)
			fprintf(out, "  --%-19s %s, %s (default %llu, %llu..%llu)\n", o->key,
				o->help, o->unit, (unsigned long long)o->def,
				(unsigned long long)o->min, (unsigned long long)o->max);
		else
			fprintf(out, "  --%-19s %s\n", o->key, o->help);
	}
	fprintf(out, "  --%-19s this text\n", "help");
}

static int opt_set(const struct opt_table *t, const struct opt_def *o, void *base, const char *val)
{
	char *p = (char *)base + o->off;
	unsigned long long v;
	char *end;

	switch (o->type) {
	case OPT_STR:
		*(const char **)p = val;
		return 0;
	case OPT_BOOL:
		*(bool *)p = true;
		return 0;
	case OPT_U64:
		errno = 0;
		v = strtoull(val, &end, 10);
		/* Digits only: strtoull would take " 5", "+5" and wrap "-5" around. */
		if (errno || end == val || *end || val[0] < '0' || val[0] > '9' || v < o->min ||
		    v > o->max) {
			fprintf(stderr, "%s: --%s: '%s' is not a number in %llu..%llu (%s)\n",
				t->prog, o->key, val, (unsigned long long)o->min,
				(unsigned long long)o->max, o->unit);
			return -EINVAL;
		}
		*(uint64_t *)p = v;
		return 0;
	}
	return -EINVAL;
}

int opt_parse(const struct opt_table *t, void *base, int argc, char **argv, bool *ret_given)
{
	_cleanup_free_ struct option *longopts = calloc(t->n + 2, sizeof(*longopts));
	size_t i;
	int r, idx;

	if (!longopts)
		return -ENOMEM;
	for (i = 0; i < t->n; i++) {
		const struct opt_def *o = &t->opts[i];
		char *p = (char *)base + o->off;
		if (o->type == OPT_STR)
			*(const char **)p = o->def_str;
		else if (o->type == OPT_U64)
			*(uint64_t *)p = o->def;
		else
			*(bool *)p = false;
		if (ret_given)
			ret_given[i] = false;
		longopts[i] = (struct option){
		    o->key, o->type == OPT_BOOL ? no_argument : required_argument, NULL, (int)i};
	}
	longopts[i] = (struct option){"help", no_argument, NULL, 'h'};

	optind = 1;
	while ((r = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
		if (r == 'h') {
			opt_usage(t, stdout);
			return 1;
		}
		if (r < 0 || (size_t)r >= t->n) {
			fprintf(stderr, "Try '%s --help'.\n", t->prog);
			return -EINVAL;
		}
		if (opt_set(t, &t->opts[r], base, optarg) < 0)
			return -EINVAL;
		if (ret_given)
			ret_given[r] = true;
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", t->prog, argv[optind]);
		return -EINVAL;
	}
	return 0;
}

void opt_print(const struct opt_table *t, const void *base, FILE *out)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct opt_def *o = &t->opts[i];
		const char *p = (const char *)base + o->off;
		const char *note = t->note ? t->note(o, base) : NULL;
		if (o->type == OPT_STR)
			fprintf(out, "%s = %s%s%s\n", o->key,
				**(const char *const *)p ? *(const char *const *)p : "-",
				note ? " " : "", note ? note : "");
		else if (o->type == OPT_U64)
			fprintf(out, "%s = %llu %s\n", o->key,
				(unsigned long long)*(const uint64_t *)p, o->unit);
	}
}
