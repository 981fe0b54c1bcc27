/* config.c - the option table: every setting with its default, bounds and unit in one place. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "proto.h"

enum cfg_type { CFG_STR, CFG_U64, CFG_BOOL };

struct cfg_opt {
	const char *key;
	enum cfg_type type;
	size_t off;
	const char *def_str;
	uint64_t def, min, max;
	const char *unit;
	const char *help;
};

#define S(k, f, d, h) { k, CFG_STR, offsetof(struct config, f), d, 0, 0, 0, "", h }
#define U(k, f, d, lo, hi, u, h) { k, CFG_U64, offsetof(struct config, f), NULL, d, lo, hi, u, h }
#define B(k, f, h) { k, CFG_BOOL, offsetof(struct config, f), NULL, 0, 0, 1, "", h }

static const struct cfg_opt cfg_table[] = {
	S("socket", socket_path, "/run/pyexec/sandboxd.sock", "Unix socket to listen on"),
	S("gateway-user", gateway_user, "pyexec", "account allowed to connect besides root"),
	S("python", python, PYEXEC_PYTHON, "CPython run in the jail"),
	S("runner", runner, "", "runner.py (default: found next to the binary)"),
	S("jail-dir", jail_dir, "/run/pyexec/jail", "mount point for each job's root"),
	S("cgroup", cgroup_mode, "auto", "cgroup hierarchy: auto, v1 or v2"),
	U("max-running", max_running, 0, 0, 1024, "jobs", "jobs at once (0: one per CPU)"),
	U("max-queued", max_queued, 256, 0, 65536, "jobs", "waiting jobs before BUSY"),
	U("timeout-ms", timeout_ms, 30000, 100, 600000, "ms", "wall-clock limit per job"),
	U("memory-mb", memory_mb, 512, 32, 65536, "MiB", "memory limit per job, swap 0"),
	U("pids-max", pids_max, 128, 8, 4096, "tasks", "tasks per job"),
	U("cpu-percent", cpu_percent, 100, 10, 6400, "% of a CPU", "CPU bandwidth per job"),
	U("stdout-max", stdout_max, 1 << 20, 1024, PROTO_STDOUT_MAX, "bytes", "stdout kept"),
	U("stderr-max", stderr_max, 64 << 10, 1024, PROTO_STDERR_MAX, "bytes", "stderr kept"),
	U("result-max", result_max, PROTO_RESULT_MAX, 1024, PROTO_RESULT_MAX, "bytes",
	  "largest result frame"),
	U("tmp-size-mb", tmp_size_mb, 64, 1, 4096, "MiB", "size of /tmp and /dev/shm, each"),
	U("tmp-inodes", tmp_inodes, 4096, 64, 1 << 20, "inodes", "inodes of /tmp and /dev/shm"),
	U("uid-base", uid_base, 4000000, 1000, 4000000000u, "uid", "host uid of job slot 0"),
	B("check", check, "print the effective configuration and exit"),
	B("verbose", verbose, "debug logging"),
};

static void cfg_usage(FILE *out)
{
	fprintf(out, "Usage: sandboxd [OPTION]...\nRuns Python jobs, each in a fresh jail.\n\n");
	for (size_t i = 0; i < ARRAY_SIZE(cfg_table); i++) {
		const struct cfg_opt *o = &cfg_table[i];
		if (o->type == CFG_STR)
			fprintf(out, "  --%-14s %s (default %s)\n", o->key, o->help,
				*o->def_str ? o->def_str : "-");
		else if (o->type == CFG_U64)
			fprintf(out, "  --%-14s %s, %s (default %llu, %llu..%llu)\n", o->key, o->help,
				o->unit, (unsigned long long)o->def, (unsigned long long)o->min,
				(unsigned long long)o->max);
		else
			fprintf(out, "  --%-14s %s\n", o->key, o->help);
	}
	fprintf(out, "  --%-14s this text\n", "help");
}

static int cfg_set(struct config *c, const struct cfg_opt *o, const char *val)
{
	char *p = (char *)c + o->off;
	unsigned long long v;
	char *end;

	switch (o->type) {
	case CFG_STR:
		*(const char **)p = val;
		return 0;
	case CFG_BOOL:
		*(bool *)p = true;
		return 0;
	case CFG_U64:
		errno = 0;
		v = strtoull(val, &end, 10);
		if (errno || end == val || *end || val[0] == '-' || v < o->min || v > o->max) {
			fprintf(stderr, "sandboxd: --%s: '%s' is not a number in %llu..%llu (%s)\n",
				o->key, val, (unsigned long long)o->min, (unsigned long long)o->max,
				o->unit);
			return -EINVAL;
		}
		*(uint64_t *)p = v;
		return 0;
	}
	return -EINVAL;
}

int cfg_parse(struct config *c, int argc, char **argv)
{
	struct option longopts[ARRAY_SIZE(cfg_table) + 2];
	size_t i;
	int r, idx;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < ARRAY_SIZE(cfg_table); i++) {
		const struct cfg_opt *o = &cfg_table[i];
		char *p = (char *)c + o->off;
		if (o->type == CFG_STR)
			*(const char **)p = o->def_str;
		else if (o->type == CFG_U64)
			*(uint64_t *)p = o->def;
		longopts[i] = (struct option){ o->key,
					       o->type == CFG_BOOL ? no_argument : required_argument,
					       NULL, (int)i };
	}
	longopts[i++] = (struct option){ "help", no_argument, NULL, 'h' };
	longopts[i] = (struct option){ 0 };

	optind = 1;
	while ((r = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
		if (r == 'h') {
			cfg_usage(stdout);
			return 1;
		}
		if (r == '?' || r < 0 || (size_t)r >= ARRAY_SIZE(cfg_table)) {
			cfg_usage(stderr);
			return -EINVAL;
		}
		if (cfg_set(c, &cfg_table[r], optarg) < 0)
			return -EINVAL;
	}
	if (optind < argc) {
		fprintf(stderr, "sandboxd: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (strcmp(c->cgroup_mode, "auto") && strcmp(c->cgroup_mode, "v1") &&
	    strcmp(c->cgroup_mode, "v2")) {
		fprintf(stderr, "sandboxd: --cgroup must be auto, v1 or v2\n");
		return -EINVAL;
	}
	if (c->max_running == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		c->max_running = n > 0 ? (uint64_t)n : 1;
	}
	return 0;
}

void cfg_print(const struct config *c, FILE *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(cfg_table); i++) {
		const struct cfg_opt *o = &cfg_table[i];
		const char *p = (const char *)c + o->off;
		if (o->type == CFG_STR)
			fprintf(out, "%s = %s\n", o->key, *(const char *const *)p);
		else if (o->type == CFG_U64)
			fprintf(out, "%s = %llu %s\n", o->key,
				(unsigned long long)*(const uint64_t *)p, o->unit);
	}
}
