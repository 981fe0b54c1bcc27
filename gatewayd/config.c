/* config.c - the option table: every setting with its default, bounds and unit in one place. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "opttable.h"
#include "proto.h"

/* One row per setting, one line per row where it fits. */
// clang-format off
#define S(...) OPT_S(struct gw_config, __VA_ARGS__)
#define U(...) OPT_U(struct gw_config, __VA_ARGS__)
#define B(...) OPT_B(struct gw_config, __VA_ARGS__)
// clang-format on

static const struct opt_def cfg_opts[] = {
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
    U("status-interval-ms", status_ms, 5000, 100, 60000, "ms",
      "how often sandboxd is asked for its status; two unanswered: it counts as lost"),
    U("answer-grace-ms", answer_grace_ms, 10000, 100, 600000, "ms",
      "a job not answered this long after its time limit is answered 504 and cancelled"),
    U("upstream-buffer", upstream_buffer, 64 << 20, 2 << 20, 1 << 30, "bytes",
      "jobs waiting to be written to sandboxd; over it /execute answers 503"),
    U("answer-budget", answer_budget, 256 << 20, 1 << 20, 1ULL << 36, "bytes",
      "answer bytes waiting to be read by all clients; over it /execute answers 503"),
    U("answer-timeout-ms", answer_timeout_ms, 120000, 100, 3600000, "ms",
      "time a client gets to read a whole answer"),
    U("grace-ms", grace_ms, 35000, 0, 3600000, "ms", "SIGTERM: time jobs get to finish"),
    U("retry-after", retry_after, 1, 1, 3600, "s", "Retry-After of every 503"),
    B("check", check, "print the effective configuration and exit"),
    B("verbose", verbose, "debug logging"),
};

static const char *cfg_note(const struct opt_def *o, const void *base)
{
	const struct gw_config *c = base;

	return o->off == offsetof(struct gw_config, listen) && c->listen_from_env ? "(from $PORT)"
										  : NULL;
}

static const struct opt_table cfg_table = {
    .prog = "gatewayd",
    .about = "Serves the pyexec HTTP API; runs every job through sandboxd.",
    .opts = cfg_opts,
    .n = ARRAY_SIZE(cfg_opts),
    .note = cfg_note,
};

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
	bool given[ARRAY_SIZE(cfg_opts)];
	int r;

	memset(c, 0, sizeof(*c));
	r = opt_parse(&cfg_table, c, argc, argv, given);
	if (r != 0)
		return r;
	/* An explicit --listen wins over the environment. */
	for (size_t i = 0; i < ARRAY_SIZE(cfg_opts); i++)
		if (cfg_opts[i].off == offsetof(struct gw_config, listen) && !given[i] &&
		    cfg_apply_port_env(c) < 0)
			return -EINVAL;
	if (!*c->socket_path || !*c->user) {
		fprintf(stderr, "gatewayd: --socket and --user must not be empty\n");
		return -EINVAL;
	}
	return 0;
}

void cfg_print(const struct gw_config *c, FILE *out)
{
	opt_print(&cfg_table, c, out);
}
