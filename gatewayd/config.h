/* config.h - gatewayd's settings: one table of key, type, default, bounds and unit. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct gw_config {
	const char *listen;	     /* HOST:PORT; PORT from the environment when not given */
	const char *socket_path;     /* sandboxd's Unix socket */
	const char *user;	     /* account to drop to when started as root */
	const char *api_keys;	     /* file of bearer keys; empty: the API is open */
	uint64_t max_body;	     /* bytes of request body; over it: 413 */
	uint64_t max_headers;	     /* bytes of request line and headers together */
	uint64_t max_uri;	     /* bytes of request target; over it: 414 */
	uint64_t max_connections;    /* open client connections; over it new ones are closed */
	uint64_t timeout_ms;	     /* cap of a request's "timeout_ms" */
	uint64_t memory_mb;	     /* cap of a request's "memory_mb" */
	uint64_t io_timeout_ms;	     /* a read or write that makes no progress this long fails */
	uint64_t request_timeout_ms; /* a whole request must arrive within this (slowloris) */
	uint64_t health_timeout_ms;  /* /health waits this long for sandboxd's PONG */
	uint64_t status_ms;	     /* status PING interval; two unanswered lose sandboxd */
	uint64_t answer_grace_ms;    /* a job's answer may come this long after its time limit */
	uint64_t upstream_buffer;    /* bytes waiting to be written to sandboxd; over it: 503 */
	uint64_t answer_budget;	     /* answer bytes waiting for all clients; over it: 503 */
	uint64_t answer_timeout_ms;  /* a client must read a whole answer within this */
	uint64_t grace_ms;	     /* SIGTERM: time the jobs in flight get to finish */
	uint64_t retry_after;	     /* seconds, the Retry-After of every 503 */
	bool check;		     /* --check: print the effective config and exit */
	bool verbose;
	bool listen_from_env; /* listen came from $PORT */
	char listen_env[32];  /* "0.0.0.0:$PORT" */
};

/* Fills defaults, applies $PORT, then parses argv. Returns 0, 1 when --help was printed, or
 * -EINVAL with a message on stderr. */
int cfg_parse(struct gw_config *c, int argc, char **argv);
void cfg_print(const struct gw_config *c, FILE *out);
