/* http.c - see http.h. The contract is ../shared/SEED.md and issue 3; reply.c holds the mapping
 * from sandboxd's answers to statuses and bodies, request.c the validation of a body. */
#include "http.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "cleanup.h"
#include "gw.h"
#include "jsonout.h"
#include "log.h"
#include "metrics.h"
#include "reply.h"
#include "request.h"
#include "server.h"
#include "upstream.h"

#define JSON_TYPE "application/json"
#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"
/* An answer for a client that left: nginx's "client closed request", for logs and metrics. */
#define STATUS_CLIENT_GONE 499

/* One request from its arrival to its answer (or its client's departure). */
struct gw_req {
	struct gw *gw;
	struct gw_conn *conn;
	struct evhttp_request *req;
	char id[24]; /* X-Request-Id: 16 hex digits */
	enum gw_route route;
	const char *method;
	bool head;     /* HEAD: the answer's headers without its body */
	char path[96]; /* for the log line: printable, cut */
	struct timespec start;
	struct up_job *job;  /* the SUBMIT or PING in flight */
	struct event *timer; /* /health: how long we wait for the PONG */
	bool want_stderr;
	/* For the log line. */
	const char *verdict;
	const char *problem;
	double job_seconds;
	const struct proto_result *res;
};

static const struct {
	const char *path;
	enum gw_route route;
	enum evhttp_cmd_type method;
	const char *allow;
	bool open; /* served without an API key */
} routes[] = {
    {"/execute", GW_ROUTE_EXECUTE, EVHTTP_REQ_POST, "POST", false},
    /* Load balancers and orchestrators probe it without credentials. */
    /* GET routes answer HEAD too (RFC 9110 9.3.2). */
    {"/health", GW_ROUTE_HEALTH, EVHTTP_REQ_GET, "GET, HEAD", true},
    {"/metrics", GW_ROUTE_METRICS, EVHTTP_REQ_GET, "GET, HEAD", false},
};

static const char *method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	case EVHTTP_REQ_TRACE:
		return "TRACE";
	case EVHTTP_REQ_CONNECT:
		return "CONNECT";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	}
	return "?";
}

static double ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) * 1e3 + (double)(now.tv_nsec - t->tv_nsec) / 1e6;
}

/* The path as the log shows it: control characters and non-ASCII become '?', so a client
 * cannot forge log lines. */
static void copy_printable(char *dst, size_t len, const char *src)
{
	size_t i;

	for (i = 0; src && src[i] && i + 1 < len; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[i] = '\0';
	if (src && src[i] && len > 4)
		memcpy(dst + len - 4, "...", 4);
}

static void req_free(struct gw_req *r)
{
	if (r->timer)
		event_free(r->timer);
	r->gw->n_reqs--;
	free(r);
}

/* One line per request; never the script, its output or its result. */
static void req_log(struct gw_req *r, int status)
{
	char stats[160] = "";

	if (r->res)
		snprintf(stats, sizeof(stats),
			 " job_ms=%.0f wall_ms=%" PRIu32 " cpu_ms=%" PRIu32 " peak_kib=%" PRIu64,
			 r->job_seconds * 1e3, r->res->wall_ms, r->res->cpu_ms,
			 r->res->peak_memory >> 10);
	log_info("req %s %s %s %d verdict=%s total_ms=%.0f%s%s%s", r->id, r->method, r->path,
		 status, r->verdict ? r->verdict : "-", ms_since(&r->start), stats,
		 r->problem ? ": " : "", r->problem ? r->problem : "");
}

static void add_header(struct gw_req *r, const char *key, const char *value)
{
	evhttp_add_header(evhttp_request_get_output_headers(r->req), key, value);
}

/* Sends the answer, logs it, counts it and frees the request. */
static void req_finish_raw(struct gw_req *r, int status, const char *ctype, const char *text,
			   size_t len)
{
	struct evbuffer *buf = evbuffer_new();
	char num[32];

	add_header(r, "Content-Type", ctype);
	add_header(r, "X-Request-Id", r->id);
	add_header(r, "Cache-Control", "no-store");
	if (status == 503) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)r->gw->cfg->retry_after);
		add_header(r, "Retry-After", num);
	}
	if (r->head) {
		/* evhttp 2.1 writes the body of an answer to HEAD too: give it none, and the
		 * length the body would have had. */
		snprintf(num, sizeof(num), "%zu", len);
		add_header(r, "Content-Length", num);
		if (buf)
			evbuffer_free(buf);
		buf = NULL;
	} else if (buf) {
		evbuffer_add(buf, text, len);
	}
	srv_send(r->gw, r->conn, r->req, status, buf);
	if (buf)
		evbuffer_free(buf);
	metrics_request(&r->gw->metrics, r->route, status);
	req_log(r, status);
	req_free(r);
}

/* The same for a JSON body, which is consumed (NULL: out of memory, answered 500). */
static void req_finish(struct gw_req *r, int status, json_t *body)
{
	static const char fallback[] = "{\"error\": \"Internal server error\"}\n";
	_cleanup_free_ char *text = NULL;
	size_t len = 0;

	text = body ? jo_dumps(body, &len) : NULL;
	json_decref(body);
	if (!text) {
		r->problem = "out of memory building the answer";
		req_finish_raw(r, 500, JSON_TYPE, fallback, sizeof(fallback) - 1);
		return;
	}
	/* A final newline, as Flask's jsonify ends its bodies, so curl output ends its line. */
	text[len] = '\n';
	req_finish_raw(r, status, JSON_TYPE, text, len + 1);
}

static void req_error(struct gw_req *r, int status, const char *msg)
{
	req_finish(r, status, reply_error_body(msg));
}

static void req_unhealthy(struct gw_req *r, const char *reason)
{
	json_t *o = json_object();

	if (o && (json_object_set_new(o, "status", json_string("unhealthy")) < 0 ||
		  json_object_set_new(o, "reason", jo_string_lossy(reason, strlen(reason))) < 0)) {
		json_decref(o);
		o = NULL;
	}
	req_finish(r, 503, o);
}

/* The client left before its answer: cancel what runs for it; evhttp frees the request with the
 * connection right after this. */
static void req_on_client_gone(void *arg)
{
	struct gw_req *r = arg;

	if (r->job)
		up_forget(r->gw->up, r->job);
	r->job = NULL;
	r->verdict = "cancelled";
	r->problem = "the client closed the connection";
	metrics_request(&r->gw->metrics, r->route, STATUS_CLIENT_GONE);
	req_log(r, STATUS_CLIENT_GONE);
	req_free(r);
}

/* ---- POST /execute ---- */

static void add_stats_headers(struct gw_req *r, const struct proto_result *res)
{
	char num[32];
	const char *cut = reply_truncated(res->flags);

	snprintf(num, sizeof(num), "%" PRIu32, res->wall_ms);
	add_header(r, "X-Pyexec-Wall-Ms", num);
	snprintf(num, sizeof(num), "%" PRIu32, res->cpu_ms);
	add_header(r, "X-Pyexec-Cpu-Ms", num);
	snprintf(num, sizeof(num), "%" PRIu64, res->peak_memory);
	add_header(r, "X-Pyexec-Peak-Memory", num);
	add_header(r, "X-Pyexec-Verdict", proto_verdict_name(res->verdict));
	if (*cut)
		add_header(r, "X-Pyexec-Truncated", cut);
}

static void on_job_answer(void *arg, const struct up_answer *a)
{
	struct gw_req *r = arg;
	struct gw_reply rep;
	int ret;

	r->job = NULL;
	r->job_seconds = a->seconds;
	switch (a->kind) {
	case UP_RESULT:
		metrics_execution(&r->gw->metrics, a->result->verdict, a->seconds);
		ret = reply_from_result(a->result, r->want_stderr, &rep);
		r->res = a->result;
		if (ret < 0) {
			r->problem = "out of memory building the answer";
			req_error(r, 500, "Internal server error");
			return;
		}
		r->verdict = rep.verdict;
		r->problem = rep.problem;
		add_stats_headers(r, a->result);
		req_finish(r, rep.status, rep.body);
		return;
	case UP_ERROR:
		ret = reply_from_refusal(a->error, &rep);
		if (ret < 0) {
			r->problem = "out of memory building the answer";
			req_error(r, 500, "Internal server error");
			return;
		}
		r->verdict = rep.verdict;
		r->problem = rep.problem;
		req_finish(r, rep.status, rep.body);
		return;
	case UP_LOST:
		r->verdict = "lost";
		r->problem = "the connection to sandboxd closed";
		req_error(r, 503, "The sandbox went away, retry later");
		return;
	case UP_TIMEOUT:
		r->verdict = "no_answer";
		r->problem = "sandboxd did not answer in time; the job was cancelled";
		req_error(r, 504, "sandboxd did not answer in time");
		return;
	case UP_PONG:
		break;
	}
	req_error(r, 500, "Internal server error");
}

static void handle_execute(struct gw_req *r)
{
	struct gw *gw = r->gw;
	struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
	const char *ctype =
	    evhttp_find_header(evhttp_request_get_input_headers(r->req), "Content-Type");
	const struct exec_limits lim = {.timeout_ms_max = gw->cfg->timeout_ms,
					.memory_mb_max = gw->cfg->memory_mb};
	size_t len = evbuffer_get_length(in);
	struct exec_params p;
	struct proto_submit s;
	const char *why, *body;
	char msg[160];
	int status, ret;

	/* Slow readers hold their answers in our memory: past the budget, no new work until
	 * they read (or --answer-timeout-ms closes them). */
	if (gw->answer_bytes > gw->cfg->answer_budget) {
		r->verdict = "busy";
		r->problem = "--answer-budget bytes of answers wait to be read";
		req_error(r, 503, "Server busy: too many answers wait to be read, retry later");
		return;
	}
	/* evhttp enforces the cap before reading; this only guards a misconfiguration. */
	if (len > gw->cfg->max_body) {
		req_error(r, 413, "Request body is too large");
		return;
	}
	/* The body in one piece; making it so allocates when it came in several chunks. */
	body = len ? (const char *)evbuffer_pullup(in, -1) : "";
	if (!body) {
		r->problem = "out of memory reading the body";
		req_error(r, 500, "Internal server error");
		return;
	}
	status = req_parse_execute(ctype, body, len, &lim, &p, &why, msg, sizeof(msg));
	if (status != 0) {
		req_error(r, status, why);
		return;
	}
	r->want_stderr = p.want_stderr;
	s = (struct proto_submit){.timeout_ms = p.timeout_ms,
				  .memory_mb = p.memory_mb,
				  .script = p.script,
				  .script_len = (uint32_t)p.script_len};
	/* Answers at once while sandboxd is down: nothing is queued here. */
	ret = up_submit(gw->up, &s, on_job_answer, r, &r->job);
	exec_params_free(&p);
	if (ret == -ENOTCONN) {
		up_start(gw->up); /* in case no retry could be scheduled (UP_EV_NO_RETRY) */
		r->verdict = "unavailable";
		r->problem = "sandboxd is not connected";
		req_error(r, 503, "The sandbox is unavailable, retry later");
		return;
	}
	if (ret == -ENOBUFS) {
		r->verdict = "busy";
		r->problem = "--upstream-buffer bytes wait to be written to sandboxd";
		req_error(r, 503, "Server busy: the execution queue is full, retry later");
		return;
	}
	if (ret < 0) {
		r->problem = "cannot send the job to sandboxd";
		req_error(r, 500, "Internal server error");
		return;
	}
	srv_watch_peer(r->conn, req_on_client_gone, r);
}

/* ---- GET /health ---- */

static void on_health_answer(void *arg, const struct up_answer *a)
{
	struct gw_req *r = arg;
	char reason[PROTO_MESSAGE_MAX + 32];
	json_t *o;

	r->job = NULL;
	if (a->kind != UP_PONG) {
		req_unhealthy(r, "the connection to sandboxd closed");
		return;
	}
	if (!a->pong->ready) {
		snprintf(reason, sizeof(reason), "sandboxd is not ready: %.*s",
			 (int)a->pong->reason_len, a->pong->reason);
		req_unhealthy(r, a->pong->reason_len ? reason : "sandboxd is not ready");
		return;
	}
	o = json_object();
	if (o && json_object_set_new(o, "status", json_string("healthy")) < 0) {
		json_decref(o);
		o = NULL;
	}
	req_finish(r, 200, o);
}

static void on_health_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct gw_req *r = arg;
	char reason[96];

	if (r->job)
		up_forget(r->gw->up, r->job);
	r->job = NULL;
	snprintf(reason, sizeof(reason), "sandboxd did not answer within %llu ms",
		 (unsigned long long)r->gw->cfg->health_timeout_ms);
	req_unhealthy(r, reason);
}

static void handle_health(struct gw_req *r)
{
	struct gw *gw = r->gw;
	const struct up_status *st = up_status(gw->up);
	uint64_t ms = gw->cfg->health_timeout_ms;
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
			     .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	char reason[128];

	if (gw->draining) {
		req_unhealthy(r, "the gateway is shutting down");
		return;
	}
	if (!st->connected) {
		snprintf(reason, sizeof(reason), "sandboxd is unreachable: %s",
			 strerror(st->last_error < 0 ? -st->last_error : EIO));
		req_unhealthy(r, reason);
		return;
	}
	/* Ask now rather than trust the last status: healthy means sandboxd answers now. The
	 * timer first: a PING without it could wait for ever. */
	r->timer = evtimer_new(gw->base, on_health_timeout, r);
	if (!r->timer || event_add(r->timer, &tv) < 0 ||
	    up_ping(gw->up, on_health_answer, r, &r->job) < 0) {
		req_unhealthy(r, "cannot ask sandboxd");
		return;
	}
	srv_watch_peer(r->conn, req_on_client_gone, r);
}

/* ---- GET /metrics ---- */

static void handle_metrics(struct gw_req *r)
{
	struct gw *gw = r->gw;
	const struct up_status *st = up_status(gw->up);
	struct gw_gauges g = {.jobs_in_flight = st->jobs,
			      .connections = gw->n_conns,
			      .answer_bytes = gw->answer_bytes,
			      .sandbox_connected = st->connected,
			      .have_status = st->have_pong,
			      .sandbox_ready = st->ready,
			      .queued = st->queued,
			      .running = st->running,
			      .max_running = st->max_running,
			      .max_queued = st->max_queued,
			      .reconnects = st->reconnects};
	struct evbuffer *out = evbuffer_new();
	const char *text;
	size_t len;

	if (!out || metrics_render(&gw->metrics, &g, out) < 0) {
		if (out)
			evbuffer_free(out);
		r->problem = "out of memory";
		req_error(r, 500, "Internal server error");
		return;
	}
	len = evbuffer_get_length(out);
	text = (const char *)evbuffer_pullup(out, -1);
	if (!text) {
		evbuffer_free(out);
		r->problem = "out of memory";
		req_error(r, 500, "Internal server error");
		return;
	}
	req_finish_raw(r, 200, METRICS_TYPE, text, len);
	evbuffer_free(out);
}

/* ---- routing ---- */

void http_handle(struct evhttp_request *req, void *arg)
{
	struct gw *gw = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *target = evhttp_request_get_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	struct gw_conn *c = srv_request_received(gw, req);
	struct gw_req *r;
	const char *why;
	size_t i;

	r = calloc(1, sizeof(*r));
	if (!r) {
		log_error("out of memory: dropping a request");
		evhttp_send_error(req, 500, NULL);
		return;
	}
	gw->n_reqs++;
	r->gw = gw;
	r->conn = c;
	r->req = req;
	srv_request_id(gw, r->id, sizeof(r->id));
	r->method = method_name(method);
	r->head = method == EVHTTP_REQ_HEAD;
	r->route = GW_ROUTE_OTHER;
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	/* The path only: a query string or a target in absolute form ("http://user:pw@host/")
	 * may carry credentials, and the log is read by more people than the API. */
	copy_printable(r->path, sizeof(r->path), path && *path ? path : "-");

	/* Before anything else: a request framed ambiguously may hide another one in its body. */
	why = req_framing_error(evhttp_request_get_input_headers(req));
	if (why) {
		add_header(r, "Connection", "close");
		r->problem = "ambiguous framing (request smuggling?)";
		req_error(r, 400, why);
		return;
	}
	if (target && strlen(target) > gw->cfg->max_uri) {
		req_error(r, 414, "Request URI is too long");
		return;
	}
	for (i = 0; i < ARRAY_SIZE(routes); i++)
		if (path && strcmp(path, routes[i].path) == 0)
			break;
	if (i == ARRAY_SIZE(routes)) {
		req_error(r, 404, "Not found");
		return;
	}
	r->route = routes[i].route;
	if (method != routes[i].method &&
	    !(method == EVHTTP_REQ_HEAD && routes[i].method == EVHTTP_REQ_GET)) {
		add_header(r, "Allow", routes[i].allow);
		req_error(r, 405, "Method not allowed");
		return;
	}
	if (gw->auth && !routes[i].open &&
	    !auth_check(gw->auth, evhttp_find_header(evhttp_request_get_input_headers(req),
						     "Authorization"))) {
		add_header(r, "WWW-Authenticate", "Bearer realm=\"pyexec\"");
		req_error(r, 401, "Missing or invalid API key");
		return;
	}
	if (gw->draining && r->route == GW_ROUTE_EXECUTE) {
		req_error(r, 503, "The service is shutting down, retry later");
		return;
	}
	switch (r->route) {
	case GW_ROUTE_EXECUTE:
		handle_execute(r);
		return;
	case GW_ROUTE_HEALTH:
		handle_health(r);
		return;
	case GW_ROUTE_METRICS:
		handle_metrics(r);
		return;
	default:
		req_error(r, 404, "Not found");
	}
}
