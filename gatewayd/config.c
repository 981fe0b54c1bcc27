/* config.c - the option table: every setting with its default, bounds and unit in one place. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

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

/* One row per line reads better than the formatter's layout. */
// clang-format off
#define OFF(f) offsetof(struct gw_config, f)
#define S(k, f, d, h) { k, CFG_STR, OFF(f), d, 0, 0, 0, "", h }
#define U(k, f, d, lo, hi, u, h) { k, CFG_U64, OFF(f), NULL, d, lo, hi, u, h }
#define B(k, f, h) { k, CFG_BOOL, OFF(f), NULL, 0, 0, 1, "", h }
// clang-format on

static const struct cfg_opt cfg_table[] = {
    S("listen", listen, "127.0.0.1:8080", "HOST:PORT to serve HTTP on ($PORT: 0.0.0.0:$PORT)"),
    S("socket", socket_path, "/run/pyexec/sandboxd.sock", "sandboxd's Unix socket"),
    S("user", user, "pyexec", "account to run as when started as root"),
    S("api-keys", api_keys, "", "file of API keys, one per line; without it the API is open"),
    /* A 1 MiB script needs a little more than 1 MiB of JSON; the default keeps the seed's
     * 1 MiB request limit, the bound leaves room for scripts at the protocol's cap. */
    U("max-body", max_body, 1 << 20, 1024, 4 * PROTO_SCRIPT_MAX, "bytes", "request body"),
    U("max-headers", max_headers, 16 << 10, 1024, 1 << 20, "bytes", "request line and headers"),
    U("max-uri", max_uri, 2048, 64, 65536, "bytes", "request target"),
    U("max-connections", max_connections, 1024, 1, 65536, "connections", "open client connections"),
    U("timeout-ms", timeout_ms, 30000, 100, 600000, "ms",
      "largest \"timeout_ms\" a request may ask for"),
    U("memory-mb", memory_mb, 512, 32, 65536, "MiB", "largest \"memory_mb\" a request may ask for"),
    U("io-timeout-ms", io_timeout_ms, 15000, 100, 3600000, "ms",
      "a read or write without progress"),
    U("request-timeout-ms", request_timeout_ms, 20000, 100, 3600000, "ms",
      "time to send a whole request, idle time included"),
    U("health-timeout-ms", health_timeout_ms, 5000, 100, 60000, "ms",
      "how long /health waits for sandboxd"),
    U("grace-ms", grace_ms, 35000, 0, 3600000, "ms", "SIGTERM: time jobs get to finish"),
    U("retry-after", retry_after, 1, 1, 3600, "s", "Retry-After of every 503"),
    B("check", check, "print the effective configuration and exit"),
    B("verbose", verbose, "debug logging"),
};

static void cfg_usage(FILE *out)
{
	fprintf(out, "Usage: gatewayd [OPTION]...\nServes the pyexec HTTP API; runs every job "
		     "through sandboxd.\n\n");
	for (size_t i = 0; i < ARRAY_SIZE(cfg_table); i++) {
		const struct cfg_opt *o = &cfg_table[i];
		if (o->type == CFG_STR)
			fprintf(out, "  --%-19s %s (default %s)\n", o->key, o->help,
				*o->def_str ? o->def_str : "-");
		else if (o->type == CFG_U64)
			fprintf(out, "  --%-19s %s, %s (default %llu, %llu..%llu)\n", o->key,
				o->help, o->unit, (unsigned long long)o->def,
				(unsigned long long)o->min, (unsigned long long)o->max);
		else
			fprintf(out, "  --%-19s %s\n", o->key, o->help);
	}
	fprintf(out, "  --%-19s this text\n", "help");
}

static int cfg_set(struct gw_config *c, const struct cfg_opt *o, const char *val)
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
		if (errno || end == val || *end || val[0] < '0' || val[0] > '9' || v < o->min ||
		    v > o->max) {
			fprintf(stderr, "gatewayd: --%s: '%s' is not a number in %llu..%llu (%s)\n",
				o->key, val, (unsigned long long)o->min, (unsigned long long)o->max,
				o->unit);
			return -EINVAL;
		}
		*(uint64_t *)p = v;
		return 0;
	}
	return -EINVAL;
}

/* The container convention (Cloud Run and others): $PORT names the port, on every address. */
static int cfg_apply_port_env(struct gw_config *c)
{
	const char *port = getenv("PORT");
	unsigned long v;
	char *end;

	if (!port || !*port)
		return 0;
	errno = 0;
	v = strtoul(port, &end, 10);
	if (errno || *end || port[0] < '0' || port[0] > '9' || v > 65535) {
		fprintf(stderr, "gatewayd: PORT='%s' is not a port number\n", port);
		return -EINVAL;
	}
	snprintf(c->listen_env, sizeof(c->listen_env), "0.0.0.0:%lu", v);
	c->listen = c->listen_env;
	c->listen_from_env = true;
	return 0;
}

int cfg_parse(struct gw_config *c, int argc, char **argv)
{
	struct option longopts[ARRAY_SIZE(cfg_table) + 2];
	bool listen_given = false;
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
		longopts[i] = (struct option){
		    o->key, o->type == CFG_BOOL ? no_argument : required_argument, NULL, (int)i};
	}
	longopts[i++] = (struct option){"help", no_argument, NULL, 'h'};
	longopts[i] = (struct option){0};

	optind = 1;
	while ((r = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
		if (r == 'h') {
			cfg_usage(stdout);
			return 1;
		}
		if (r == '?' || r < 0 || (size_t)r >= ARRAY_SIZE(cfg_table)) {
			fprintf(stderr, "Try 'gatewayd --help'.\n");
			return -EINVAL;
		}
		if (cfg_set(c, &cfg_table[r], optarg) < 0)
			return -EINVAL;
		if (cfg_table[r].off == offsetof(struct gw_config, listen))
			listen_given = true;
	}
	if (optind < argc) {
		fprintf(stderr, "gatewayd: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	/* An explicit --listen wins over the environment. */
	if (!listen_given && cfg_apply_port_env(c) < 0)
		return -EINVAL;
	if (!*c->socket_path || !*c->user) {
		fprintf(stderr, "gatewayd: --socket and --user must not be empty\n");
		return -EINVAL;
	}
	return 0;
}

void cfg_print(const struct gw_config *c, FILE *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(cfg_table); i++) {
		const struct cfg_opt *o = &cfg_table[i];
		const char *p = (const char *)c + o->off;
		if (o->type == CFG_STR)
			fprintf(out, "%s = %s%s\n", o->key,
				**(const char *const *)p ? *(const char *const *)p : "-",
				o->off == offsetof(struct gw_config, listen) && c->listen_from_env
				    ? " (from $PORT)"
				    : "");
		else if (o->type == CFG_U64)
			fprintf(out, "%s = %llu %s\n", o->key,
				(unsigned long long)*(const uint64_t *)p, o->unit);
	}
}
