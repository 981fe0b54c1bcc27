/* metrics.c - see metrics.h. Plain counters in the one context: the gateway has one thread. */
#include "metrics.h"

#include <errno.h>
#include <event2/buffer.h>

#include "cleanup.h"

static const double latency_le[GW_LATENCY_BUCKETS] = {0.025, 0.05, 0.1, 0.25, 0.5, 1,
						      2.5,   5,	   10,	30,   60,  120};

static const char *const route_names[GW_ROUTE__MAX] = {"/execute", "/health", "/metrics", "other",
						       "-"};

const char *metrics_route_name(enum gw_route r)
{
	return r < GW_ROUTE__MAX ? route_names[r] : "other";
}

void metrics_request(struct gw_metrics *m, enum gw_route route, int status)
{
	if (route >= GW_ROUTE__MAX)
		route = GW_ROUTE_OTHER;
	if (status >= 100 && status <= 599)
		m->requests[route][status - 100]++;
}

void metrics_execution(struct gw_metrics *m, uint16_t verdict, double seconds)
{
	size_t i;

	if (verdict < PROTO_V__MAX)
		m->executions[verdict]++;
	for (i = 0; i < GW_LATENCY_BUCKETS && seconds > latency_le[i]; i++)
		;
	m->latency_bucket[i]++;
	m->latency_count++;
	m->latency_sum += seconds;
}

#define OUT(...)                                                                                   \
	do {                                                                                       \
		if (evbuffer_add_printf(out, __VA_ARGS__) < 0)                                     \
			return -ENOMEM;                                                            \
	} while (0)

int metrics_render(const struct gw_metrics *m, const struct gw_gauges *g, struct evbuffer *out)
{
	uint64_t cum = 0;

	OUT("# HELP pyexec_http_requests_total HTTP requests answered, by route and status.\n"
	    "# TYPE pyexec_http_requests_total counter\n");
	for (int r = 0; r < GW_ROUTE__MAX; r++)
		for (int s = 0; s < 500; s++)
			if (m->requests[r][s])
				OUT("pyexec_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
				    route_names[r], s + 100, (unsigned long long)m->requests[r][s]);

	OUT("# HELP pyexec_executions_total Jobs sandboxd finished, by verdict.\n"
	    "# TYPE pyexec_executions_total counter\n");
	for (uint16_t v = 0; v < PROTO_V__MAX; v++)
		OUT("pyexec_executions_total{verdict=\"%s\"} %llu\n", proto_verdict_name(v),
		    (unsigned long long)m->executions[v]);

	OUT("# HELP pyexec_execution_duration_seconds Time from sending a job to its result, "
	    "queueing included.\n"
	    "# TYPE pyexec_execution_duration_seconds histogram\n");
	for (size_t i = 0; i < GW_LATENCY_BUCKETS; i++) {
		cum += m->latency_bucket[i];
		OUT("pyexec_execution_duration_seconds_bucket{le=\"%g\"} %llu\n", latency_le[i],
		    (unsigned long long)cum);
	}
	cum += m->latency_bucket[GW_LATENCY_BUCKETS];
	OUT("pyexec_execution_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
	    "pyexec_execution_duration_seconds_sum %.6f\n"
	    "pyexec_execution_duration_seconds_count %llu\n",
	    (unsigned long long)cum, m->latency_sum, (unsigned long long)m->latency_count);

	OUT("# HELP pyexec_jobs_in_flight Jobs sent to sandboxd and not answered yet.\n"
	    "# TYPE pyexec_jobs_in_flight gauge\n"
	    "pyexec_jobs_in_flight %u\n",
	    g->jobs_in_flight);
	OUT("# HELP pyexec_sandbox_up Whether the connection to sandboxd is open.\n"
	    "# TYPE pyexec_sandbox_up gauge\n"
	    "pyexec_sandbox_up %d\n",
	    g->sandbox_connected ? 1 : 0);
	if (g->sandbox_connected && g->have_status) {
		OUT("# HELP pyexec_sandbox_ready Whether sandboxd accepts jobs (its last PONG).\n"
		    "# TYPE pyexec_sandbox_ready gauge\n"
		    "pyexec_sandbox_ready %d\n",
		    g->sandbox_ready ? 1 : 0);
		OUT("# HELP pyexec_sandbox_queue_depth Jobs waiting in sandboxd's queue (last "
		    "PONG).\n"
		    "# TYPE pyexec_sandbox_queue_depth gauge\n"
		    "pyexec_sandbox_queue_depth %u\n",
		    g->queued);
		OUT("# HELP pyexec_sandbox_queue_capacity Length of sandboxd's queue.\n"
		    "# TYPE pyexec_sandbox_queue_capacity gauge\n"
		    "pyexec_sandbox_queue_capacity %u\n",
		    g->max_queued);
		OUT("# HELP pyexec_sandbox_running Jobs running in sandboxd (last PONG).\n"
		    "# TYPE pyexec_sandbox_running gauge\n"
		    "pyexec_sandbox_running %u\n",
		    g->running);
		OUT("# HELP pyexec_sandbox_slots Jobs sandboxd runs at once.\n"
		    "# TYPE pyexec_sandbox_slots gauge\n"
		    "pyexec_sandbox_slots %u\n",
		    g->max_running);
	}
	OUT("# HELP pyexec_sandbox_reconnects_total Connections to sandboxd after the first.\n"
	    "# TYPE pyexec_sandbox_reconnects_total counter\n"
	    "pyexec_sandbox_reconnects_total %llu\n",
	    (unsigned long long)g->reconnects);
	OUT("# HELP pyexec_http_connections Open client connections.\n"
	    "# TYPE pyexec_http_connections gauge\n"
	    "pyexec_http_connections %u\n",
	    g->connections);
	OUT("# HELP pyexec_http_answer_bytes_queued Answer bytes waiting to be read by clients.\n"
	    "# TYPE pyexec_http_answer_bytes_queued gauge\n"
	    "pyexec_http_answer_bytes_queued %llu\n",
	    (unsigned long long)g->answer_bytes);
	OUT("# HELP pyexec_http_connections_rejected_total Connections closed at once because "
	    "--max-connections were open.\n"
	    "# TYPE pyexec_http_connections_rejected_total counter\n"
	    "pyexec_http_connections_rejected_total %llu\n",
	    (unsigned long long)m->connections_rejected);
	return 0;
}
