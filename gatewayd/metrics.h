/* metrics.h - counters for GET /metrics, in the Prometheus text format (version 0.0.4). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

struct evbuffer;

enum gw_route {
	GW_ROUTE_EXECUTE,
	GW_ROUTE_HEALTH,
	GW_ROUTE_METRICS,
	GW_ROUTE_OTHER,
	GW_ROUTE_NONE, /* refused by evhttp before any route was known */
	GW_ROUTE__MAX
};

/* Upper bounds of the execution latency buckets, in seconds (+Inf is implied). */
#define GW_LATENCY_BUCKETS 12

struct gw_metrics {
	uint64_t requests[GW_ROUTE__MAX][500]; /* by status 100..599 */
	uint64_t executions[PROTO_V__MAX];     /* by the verdict sandboxd sent */
	uint64_t latency_bucket[GW_LATENCY_BUCKETS + 1];
	uint64_t latency_count;
	double latency_sum;
	uint64_t connections_rejected; /* closed at once: over --max-connections */
};

/* The values that are read from the daemon's state when /metrics is asked. */
struct gw_gauges {
	unsigned jobs_in_flight; /* jobs sent to sandboxd and not answered yet */
	unsigned connections;	 /* open client connections */
	uint64_t answer_bytes;	 /* answer bytes waiting to be read by clients */
	bool sandbox_connected;
	bool have_status; /* a PONG arrived on the current connection */
	bool sandbox_ready;
	uint32_t queued, running, max_running, max_queued; /* from the last PONG */
	uint64_t reconnects;
};

/* The label for a route; never the raw path, so clients cannot create label values. */
const char *metrics_route_name(enum gw_route r);
void metrics_request(struct gw_metrics *m, enum gw_route route, int status);
void metrics_execution(struct gw_metrics *m, uint16_t verdict, double seconds);
/* Appends the exposition text. Returns 0 or -ENOMEM. */
int metrics_render(const struct gw_metrics *m, const struct gw_gauges *g, struct evbuffer *out);
