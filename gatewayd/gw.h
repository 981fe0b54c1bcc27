/* gw.h - the gateway's one context, passed explicitly (no mutable globals outside main.c). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include "config.h"
#include "metrics.h"

struct event_base;
struct evhttp;
struct evhttp_bound_socket;
struct gw_auth;
struct gw_conn;
struct up;

LIST_HEAD(gw_conn_list, gw_conn);

struct gw {
	struct event_base *base;
	const struct gw_config *cfg;
	struct gw_auth *auth; /* NULL: no --api-keys, the API is open */
	struct up *up;	      /* the connection to sandboxd */
	struct evhttp *http;
	struct evhttp_bound_socket *bound; /* NULL once we stopped accepting */

	struct gw_conn_list conns;
	unsigned n_conns;
	unsigned n_reqs;       /* requests received and not answered yet */
	unsigned n_sending;    /* answers queued on a connection and not written yet */
	uint64_t answer_bytes; /* bytes of those answers not written yet (--answer-budget) */
	uint64_t n_requests;   /* request ids handed out */
	struct gw_metrics metrics;

	bool draining;	  /* SIGTERM: answer what is in flight, take nothing new */
	bool early_close; /* the event backend reports a peer's close while we do not read */
	time_t last_reject_log;
};
