/* server.c - see server.h.
 *
 * libevent 2.1's evhttp has no hook for a new connection (2.2 adds evhttp_set_newreqcb and
 * evhttp_set_max_connections), and it reads nothing while a request is being answered, so it
 * would notice a client that left only when the answer fails to be written. Both are built here
 * from public API: evhttp asks us for each connection's bufferevent (evhttp_set_bevcb), and
 * right after it wires that bufferevent to its evhttp_connection (the callback argument, see
 * libevent's evhttp_connection_base_bufferevent_new) we pick the connection up, count it and
 * watch it while its answer is prepared. A FIN shows as EV_CLOSED (EPOLLRDHUP), but libevent's
 * epoll backend reports a reset (EPOLLERR/EPOLLHUP) as EV_READ|EV_WRITE, never EV_CLOSED, so the
 * watch listens for EV_READ too and tells a reset from a pipelined request with a peek.
 *
 * evhttp also answers some requests itself, with HTML (see wire.h). Every byte of an answer
 * goes through the connection's output buffer, and ours are written only inside srv_send(); an
 * evbuffer callback on that buffer takes out whatever else is added (evhttp's interim
 * "100 Continue" goes back in as it is) and writes the JSON answer instead, in the same call,
 * before the loop can write anything. Why not a bufferevent_filter, which would see the bytes
 * too: with 2.1 a filter stalls evhttp's answers (they are queued while EV_WRITE is disabled,
 * and enabling a filter does not process what waits), and once kicked it loses the end of every
 * "Connection: close" answer, since evhttp shuts the socket down as soon as the filter's buffer
 * is empty while the bytes still sit in the underlying bufferevent.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "wire.h"

struct gw_conn {
	LIST_ENTRY(gw_conn) link;
	struct gw *gw;
	struct bufferevent *bev;
	struct evhttp_connection *evcon; /* NULL until evhttp finished setting the connection up */
	evutil_socket_t fd;
	struct event *closed_ev;  /* EV_CLOSED|EV_READ on the socket, while an answer is prepared */
	struct event *recheck_ev; /* the same check later, while the socket stays readable */
	struct event *deadline_ev; /* the next request must be complete before this fires */
	void (*on_gone)(void *);
	void *gone_arg;
	bool sending; /* an answer is queued and not written yet */

	/* Rewriting evhttp's own answers (see the top of this file). */
	struct evbuffer_cb_entry *out_cb;
	struct evbuffer *held; /* bytes evhttp added, taken out of the output buffer */
	size_t drop;	       /* bytes of evhttp's answer body still to come and be dropped */
	bool ours;	       /* srv_send() is writing our own answer */
	bool rewriting;	       /* the callback itself changes the output buffer */
};

/* How often a connection whose socket holds a pipelined request is checked for its peer's
 * departure: the unread bytes keep the socket readable, so it cannot be watched meanwhile. */
#define PEER_RECHECK_MS 500

static struct timeval ms_tv(uint64_t ms)
{
	return (struct timeval){.tv_sec = (time_t)(ms / 1000),
				.tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

int srv_listen_open(const char *hostport, char *desc, size_t desc_len)
{
	struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
				 .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char host[256], addr[INET6_ADDRSTRLEN];
	const char *port, *colon;
	_cleanup_close_ int fd = -1;
	int one = 1, r;
	size_t hl;

	/* HOST:PORT or [V6ADDR]:PORT; an empty host or "*" means every address. */
	if (hostport[0] == '[') {
		const char *end = strchr(hostport, ']');
		if (!end || end[1] != ':')
			return -EINVAL;
		hl = (size_t)(end - hostport - 1);
		if (hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, hostport + 1, hl);
		port = end + 2;
	} else {
		colon = strrchr(hostport, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - hostport);
		if (hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, hostport, hl);
		port = colon + 1;
	}
	host[hl] = '\0';
	if (!*port || strspn(port, "0123456789") != strlen(port) || atoi(port) > 65535)
		return -EINVAL;
	r = getaddrinfo(*host && strcmp(host, "*") ? host : NULL, port, &hints, &ai);
	if (r != 0)
		return r == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
		freeaddrinfo(ai);
		return r;
	}
	/* A restarted gateway must not wait for the old connections' TIME_WAIT. */
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	r = bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ? -errno : 0;
	freeaddrinfo(ai);
	if (r < 0)
		return r;
	if (listen(fd, 511) < 0)
		return -errno;
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0)
		return -errno;
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
		snprintf(desc, desc_len, "[%s]:%u", addr, ntohs(s6->sin6_port));
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
		snprintf(desc, desc_len, "%s:%u", addr, ntohs(s4->sin_port));
	}
	return steal_fd(&fd);
}

/* ---- evhttp's own answers, rewritten (see the top of this file and wire.h) ---- */

/* splitmix64's finaliser: a bijection, so distinct counters give distinct ids. */
static uint64_t mix64(uint64_t x)
{
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

void srv_request_id(struct gw *gw, char *buf, size_t len)
{
	uint64_t v;

	/* Random, not a counter: a client must not learn from its ids how many requests others
	 * make. getrandom() only fails before the kernel's pool is ready (early boot): then
	 * the counter, mixed with the time, still gives distinct, unordered ids. */
	gw->n_requests++;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
		v = mix64(gw->n_requests ^ ((uint64_t)time(NULL) << 32));
	snprintf(buf, len, "%016llx", (unsigned long long)v);
}

/* Moves the last n bytes of `out` to the end of `dst`. Returns 0, or -ENOMEM (nothing moved)
 * or -EIO (a move failed half-way) when the bytes could not be taken out. */
static int take_tail(struct evbuffer *out, struct evbuffer *dst, size_t n)
{
	size_t keep = evbuffer_get_length(out) - n;
	struct evbuffer *tail;
	int r = 0;

	if (keep == 0)
		return evbuffer_add_buffer(dst, out) < 0 ? -ENOMEM : 0;
	/* Only an interim "100 Continue" not written yet comes before evhttp's answer. */
	tail = evbuffer_new();
	if (!tail)
		return -ENOMEM;
	if (evbuffer_add_buffer(tail, out) < 0 ||
	    evbuffer_remove_buffer(tail, out, keep) != (int)keep ||
	    evbuffer_add_buffer(dst, tail) < 0)
		r = -EIO;
	evbuffer_free(tail);
	return r;
}

/* evhttp answered by itself with `h` (its head is at the start of c->held): write ours. Returns 0,
 * or -ENOMEM when nothing was written. */
static int conn_answer_json(struct gw_conn *c, struct evbuffer *out, const struct wire_head *h)
{
	struct gw *gw = c->gw;
	char id[32], buf[96];
	const char *text = wire_error_text(h->status, gw->cfg->max_body, buf, sizeof(buf));

	srv_request_id(gw, id, sizeof(id));
	if (wire_write_answer(out, h, id, text, h->status == 503 ? gw->cfg->retry_after : 0) < 0)
		return -ENOMEM;
	metrics_request(&gw->metrics, GW_ROUTE_NONE, h->status);
	/* The request was not understood, so there is no method or path to show. */
	log_info("req %s - - %d verdict=- total_ms=0: refused by the HTTP parser: %s", id,
		 h->status, text);
	return 0;
}

/* Goes through what evhttp added, now in c->held: interim answers go back out unchanged, a final
 * answer is replaced by ours and its body dropped as it comes. */
static void conn_rewrite(struct gw_conn *c, struct evbuffer *out)
{
	struct wire_head h;
	size_t avail, n;
	char *p;
	int r;

	while ((avail = evbuffer_get_length(c->held)) > 0) {
		if (c->drop) {
			n = avail < c->drop ? avail : c->drop;
			evbuffer_drain(c->held, n);
			c->drop -= n;
			continue;
		}
		n = avail < WIRE_HEAD_MAX ? avail : WIRE_HEAD_MAX;
		p = (char *)evbuffer_pullup(c->held, (ev_ssize_t)n);
		r = p ? wire_parse_head(p, n, &h) : -ENOMEM;
		if (r == 0)
			return; /* the rest of the head comes with the next additions */
		if (r < 0 || h.status < 200 || conn_answer_json(c, out, &h) < 0) {
			/* An interim answer passes as it is; so does what we cannot parse or
			 * replace (out of memory), rather than be lost. */
			n = r < 0 ? avail : h.len;
			if (evbuffer_remove_buffer(c->held, out, n) != (int)n)
				evbuffer_drain(c->held, avail);
			continue;
		}
		evbuffer_drain(c->held, h.len);
		/* evhttp always writes its page after the head (for HEAD requests too, a 2.1 bug);
		 * without a length, everything it adds from now on is dropped. It closes the
		 * connection after such an answer. */
		c->drop = h.has_length ? (size_t)h.content_length : SIZE_MAX;
	}
}

static void conn_on_output(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg)
{
	struct gw_conn *c = arg;

	/* Every answer byte waiting in any client's output buffer counts against --answer-budget
	 * (each call reports the changes since the previous one, nested calls included). */
	c->gw->answer_bytes += info->n_added;
	c->gw->answer_bytes -= info->n_deleted;
	if (!info->n_added || c->ours || c->rewriting)
		return;
	/* Our own changes to the buffer call us again: ignore them. */
	c->rewriting = true;
	/* A socket bufferevent keeps the front of its output frozen between writes; it unfreezes
	 * it itself before it writes. */
	evbuffer_unfreeze(out, 1);
	/* Additions land at the end; the bytes evhttp just added are the last n_added. */
	if (take_tail(out, c->held, info->n_added) == 0)
		conn_rewrite(c, out);
	evbuffer_freeze(out, 1);
	c->rewriting = false;
}

static void conn_free_events(struct gw_conn *c)
{
	if (c->closed_ev)
		event_free(c->closed_ev);
	if (c->recheck_ev)
		event_free(c->recheck_ev);
	if (c->deadline_ev)
		event_free(c->deadline_ev);
	c->closed_ev = c->recheck_ev = c->deadline_ev = NULL;
}

/* Frees our record of a connection; its bufferevent must still be valid. */
static void conn_free(struct gw_conn *c)
{
	if (c->out_cb) {
		struct evbuffer *out = bufferevent_get_output(c->bev);

		/* What was not written goes with the bufferevent. */
		c->gw->answer_bytes -= evbuffer_get_length(out);
		evbuffer_remove_cb_entry(out, c->out_cb);
	}
	if (c->held)
		evbuffer_free(c->held);
	conn_free_events(c);
	LIST_REMOVE(c, link);
	free(c);
}

/* Our record of a new connection, from the moment its bufferevent exists: evhttp may answer by
 * itself from its very first read. NULL when out of memory. */
static struct gw_conn *conn_new(struct gw *gw, struct bufferevent *bev)
{
	struct gw_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->gw = gw;
	c->bev = bev;
	c->fd = -1;
	LIST_INSERT_HEAD(&gw->conns, c, link);
	c->held = evbuffer_new();
	if (c->held)
		c->out_cb = evbuffer_add_cb(bufferevent_get_output(bev), conn_on_output, c);
	if (!c->out_cb) {
		conn_free(c);
		return NULL;
	}
	return c;
}

static int conn_arm_deadline(struct gw_conn *c)
{
	struct timeval tv = ms_tv(c->gw->cfg->request_timeout_ms);

	return event_add(c->deadline_ev, &tv) < 0 ? -ENOMEM : 0;
}

/* evhttp frees the connection: after a "Connection: close" answer, a timeout, an error, the
 * client's EOF between requests, or evhttp_free(). */
static void conn_on_close(struct evhttp_connection *evcon, void *arg)
{
	struct gw_conn *c = arg;
	struct gw *gw = c->gw;
	void (*on_gone)(void *) = c->on_gone;

	if (on_gone) {
		/* A request was still being answered (evhttp_free() at shutdown). */
		c->on_gone = NULL;
		on_gone(c->gone_arg);
	}
	if (c->sending)
		gw->n_sending--;
	evhttp_connection_set_closecb(evcon, NULL, NULL);
	gw->n_conns--;
	conn_free(c);
}

enum peer_state {
	PEER_HERE, /* nothing to read, no error: still connected */
	PEER_DATA, /* bytes wait in the socket (a pipelined request) and it is still open */
	PEER_GONE, /* reset, closed, or it shut down its sending side */
};

/* Looks at the socket without taking anything from it (evhttp reads the bytes later). */
static enum peer_state peer_probe(evutil_socket_t fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	ssize_t n;
	char b;

	n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0)
		return PEER_GONE;
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? PEER_HERE
										 : PEER_GONE;
	/* Data comes first, before a FIN or a reset that followed it: ask TCP for the state.
	 * CLOSE_WAIT (a FIN came) counts as gone, as EV_CLOSED does. */
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
	    (ti.tcpi_state == TCP_CLOSE || ti.tcpi_state == TCP_CLOSE_WAIT))
		return PEER_GONE;
	return PEER_DATA;
}

static void warn_unwatched(void)
{
	log_warn("cannot watch a client connection: a client that leaves now does not cancel its "
		 "job");
}

static void conn_recheck_later(struct gw_conn *c)
{
	struct timeval tv = ms_tv(PEER_RECHECK_MS);

	if (event_add(c->recheck_ev, &tv) < 0)
		warn_unwatched();
}

/* The client's socket woke up while we prepared its answer (closed_ev), or it is time to look
 * again (recheck_ev). When the client is gone, nobody will read the answer, so the job is
 * cancelled (by on_gone) and the connection closed now, not when the job ends. */
static void conn_on_peer_event(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conn *c = arg;
	void (*on_gone)(void *) = c->on_gone;

	if (!(what & EV_CLOSED)) {
		switch (peer_probe(c->fd)) {
		case PEER_HERE:
			/* A spurious wake-up, or the socket is empty again: watch it again, from
			 * the timer, so that a wake-up that repeats cannot spin. */
			if (!(what & EV_TIMEOUT)) {
				conn_recheck_later(c);
			} else if (event_add(c->closed_ev, NULL) < 0) {
				warn_unwatched();
			}
			return;
		case PEER_DATA:
			/* A pipelined request: the watch is off (it is not persistent), or the
			 * level-triggered socket would wake us up again at once. */
			conn_recheck_later(c);
			return;
		case PEER_GONE:
			break;
		}
	}
	c->on_gone = NULL;
	if (on_gone)
		on_gone(c->gone_arg);
	evhttp_connection_free(c->evcon); /* runs conn_on_close, which frees c */
}

/* The client did not send a whole request in time (slowloris: one byte at a time never trips
 * the per-read timeout) or sat idle, or did not read its whole answer in time (the same trick
 * the other way, which would keep the answer's memory for as long as it likes): close, as for
 * a read or write timeout. */
static void conn_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conn *c = arg;

	if (c->sending) {
		struct linger reset = {.l_onoff = 1, .l_linger = 0};

		log_info("closing a connection whose client did not read its answer in %llu ms "
			 "(--answer-timeout-ms)",
			 (unsigned long long)c->gw->cfg->answer_timeout_ms);
		/* A reset: what the kernel still holds of the answer goes too, and the client
		 * cannot take the cut for a complete answer. */
		(void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
	} else
		log_debug("closing a connection that did not send a whole request in %llu ms",
			  (unsigned long long)c->gw->cfg->request_timeout_ms);
	evhttp_connection_free(c->evcon);
}

/* Every connection is counted and watched from here on. Returns 0 or -ENOMEM. */
static int conn_attach(struct gw_conn *c, struct evhttp_connection *evcon)
{
	struct gw *gw = c->gw;
	evutil_socket_t fd = bufferevent_getfd(c->bev);

	c->fd = fd;
	/* EV_READ too: see the top of this file. */
	c->closed_ev = event_new(gw->base, fd, EV_CLOSED | EV_READ, conn_on_peer_event, c);
	c->recheck_ev = evtimer_new(gw->base, conn_on_peer_event, c);
	c->deadline_ev = evtimer_new(gw->base, conn_on_deadline, c);
	/* Without its deadline a connection could be held open for ever (slowloris). */
	if (fd < 0 || !c->closed_ev || !c->recheck_ev || !c->deadline_ev ||
	    conn_arm_deadline(c) < 0) {
		conn_free_events(c);
		return -ENOMEM;
	}
	c->evcon = evcon;
	evhttp_connection_set_closecb(evcon, conn_on_close, c);
	gw->n_conns++;
	return 0;
}

/* Over --max-connections: the client learns why in one small JSON answer, written straight to
 * the new socket (its send buffer is empty, so it takes it at once) before evhttp closes it. */
static void conn_refuse(struct gw_conn *c)
{
	static const char line[] = "HTTP/1.1 503 Service Unavailable";
	const struct wire_head h = {
	    .status = 503, .line = line, .line_len = sizeof(line) - 1, .close = true};
	struct evbuffer *buf = evbuffer_new();
	char id[32];

	srv_request_id(c->gw, id, sizeof(id));
	if (buf &&
	    wire_write_answer(buf, &h, id, "Too many connections", c->gw->cfg->retry_after) == 0)
		(void)evbuffer_write(buf, bufferevent_getfd(c->bev));
	if (buf)
		evbuffer_free(buf);
}

/* Runs right after evhttp set the connection up (same loop iteration, before any read). */
static void srv_on_new_conn(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conn *c = arg;
	struct gw *gw = c->gw;
	struct bufferevent *bev = c->bev;
	bufferevent_event_cb eventcb = NULL;
	struct evhttp_connection *evcon;
	void *cbarg = NULL;
	time_t now;

	if (c->evcon) {
		/* srv_request_received() came first and attached it. */
		bufferevent_decref(bev);
		return;
	}
	bufferevent_getcb(bev, NULL, NULL, &eventcb, &cbarg);
	/* evhttp's callbacks are gone when it already gave the connection up (bufferevent_free()
	 * clears them); our reference kept the memory valid to look. */
	evcon = eventcb ? cbarg : NULL;
	if (!evcon || evhttp_connection_get_server(evcon) != gw->http) {
		conn_free(c);
		bufferevent_decref(bev);
		return;
	}
	bufferevent_decref(bev); /* evhttp holds it */
	if (gw->n_conns >= gw->cfg->max_connections) {
		gw->metrics.connections_rejected++;
		now = time(NULL);
		if (now != gw->last_reject_log) { /* at most one line a second under a flood */
			gw->last_reject_log = now;
			log_warn("%u connections open (--max-connections): closing new ones",
				 gw->n_conns);
		}
		conn_refuse(c);
		conn_free(c);
		evhttp_connection_free(evcon);
		return;
	}
	if (conn_attach(c, evcon) < 0) {
		log_error("out of memory: closing a new connection");
		conn_free(c);
		evhttp_connection_free(evcon);
	}
}

static struct bufferevent *srv_on_new_bev(struct event_base *base, void *arg)
{
	struct gw *gw = arg;
	struct bufferevent *bev;
	struct gw_conn *c;

	/* Without BEV_OPT_CLOSE_ON_FREE evhttp closes the socket itself when it frees the
	 * connection, so the reference we hold below never keeps a socket open. */
	bev = bufferevent_socket_new(base, -1, 0);
	if (!bev)
		return NULL;
	c = conn_new(gw, bev);
	if (!c) {
		/* Served without our rewrite of evhttp's answers, and picked up for the rest by
		 * srv_request_received(). */
		log_error("out of memory: a new connection goes untracked");
		return bev;
	}
	bufferevent_incref(bev);
	/* No timeout: event_base_once() activates it at once, so it runs in this loop
	 * iteration, after evhttp returned from accepting and before any byte is read. */
	if (event_base_once(base, -1, EV_TIMEOUT, srv_on_new_conn, c, NULL) < 0) {
		conn_free(c);
		bufferevent_decref(bev);
	}
	return bev;
}

static struct gw_conn *conn_find(struct gw *gw, struct evhttp_connection *evcon)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
	struct gw_conn *c;

	/* At most --max-connections entries (and the ones being set up), one lookup per request. */
	LIST_FOREACH(c, &gw->conns, link)
	if (c->bev == bev)
		return c;
	return NULL;
}

struct gw_conn *srv_request_received(struct gw *gw, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct gw_conn *c = conn_find(gw, evcon);

	if (!c) {
		c = conn_new(gw, evhttp_connection_get_bufferevent(evcon));
		if (c && conn_attach(c, evcon) < 0) {
			conn_free(c);
			c = NULL;
		}
	} else if (!c->evcon && conn_attach(c, evcon) < 0) {
		/* srv_on_new_conn() has not run yet (it frees c). */
		return NULL;
	}
	if (c)
		event_del(c->deadline_ev);
	return c;
}

void srv_watch_peer(struct gw_conn *c, void (*on_gone)(void *), void *arg)
{
	if (!c)
		return;
	c->on_gone = on_gone;
	c->gone_arg = arg;
	if (c->gw->early_close && event_add(c->closed_ev, NULL) < 0)
		warn_unwatched();
}

static void srv_unwatch_peer(struct gw_conn *c)
{
	c->on_gone = NULL;
	c->gone_arg = NULL;
	event_del(c->closed_ev);
	event_del(c->recheck_ev);
}

/* The answer is written: the connection waits for its next request, under a new deadline. */
static void srv_on_sent(struct evhttp_request *req, void *arg)
{
	struct gw_conn *c = arg;

	c->sending = false;
	c->gw->n_sending--;
	/* evhttp is in the middle of finishing the request: the connection cannot be closed
	 * from here. The io timeout still closes it once it is idle. */
	if (conn_arm_deadline(c) < 0)
		log_warn("cannot arm the request deadline of a connection");
}

void srv_send(struct gw *gw, struct gw_conn *c, struct evhttp_request *req, int status,
	      struct evbuffer *body)
{
	if (gw->draining)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
	if (c) {
		struct timeval tv = ms_tv(gw->cfg->answer_timeout_ms);

		srv_unwatch_peer(c);
		c->sending = true;
		gw->n_sending++;
		/* The whole answer must be read in time; srv_on_sent() arms the next request's
		 * deadline instead. */
		if (event_add(c->deadline_ev, &tv) < 0)
			log_warn("cannot arm the answer deadline of a connection");
		evhttp_request_set_on_complete_cb(req, srv_on_sent, c);
		/* evhttp writes the whole answer into the output buffer before it returns. */
		c->ours = true;
	}
	evhttp_send_reply(req, status, NULL, body);
	if (c)
		c->ours = false;
}

int srv_start(struct gw *gw, int fd, void (*handler)(struct evhttp_request *, void *))
{
	const struct gw_config *cfg = gw->cfg;
	struct timeval io = ms_tv(cfg->io_timeout_ms);

	gw->http = evhttp_new(gw->base);
	if (!gw->http)
		return -ENOMEM;
	/* Over the cap, evhttp answers 413 from the Content-Length alone, before reading the
	 * body (and stops a chunked body at the cap); conn_on_output() makes that answer JSON. */
	evhttp_set_max_body_size(gw->http, (ev_ssize_t)cfg->max_body);
	evhttp_set_max_headers_size(gw->http, (ev_ssize_t)cfg->max_headers);
	/* Reads and writes that make no progress (an idle keep-alive connection too). */
	evhttp_set_timeout_tv(gw->http, &io);
	/* Every method reaches our handler, so a wrong one gets our 405 with Allow rather
	 * than evhttp's 501. */
	evhttp_set_allowed_methods(gw->http, 0xffff);
	evhttp_set_default_content_type(gw->http, "application/json");
	evhttp_set_gencb(gw->http, handler, gw);
	evhttp_set_bevcb(gw->http, srv_on_new_bev, gw);
	gw->early_close = (event_base_get_features(gw->base) & EV_FEATURE_EARLY_CLOSE) != 0;
	gw->bound = evhttp_accept_socket_with_handle(gw->http, fd);
	if (!gw->bound)
		return -errno ? -errno : -ENOMEM;
	return 0;
}

void srv_stop_accepting(struct gw *gw)
{
	if (gw->bound) {
		/* Closes the listening socket: new clients are refused by the kernel. */
		evhttp_del_accept_socket(gw->http, gw->bound);
		gw->bound = NULL;
	}
}

void srv_free(struct gw *gw)
{
	if (gw->http) {
		evhttp_free(gw->http); /* closes every connection; conn_on_close frees ours */
		gw->http = NULL;
		gw->bound = NULL;
	}
}
