/* upstream.c - see upstream.h. */
#include "upstream.h"

#include <errno.h>
#include <limits.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
/* Status PINGs (every lim.status_ms) refresh the queue gauges and prove sandboxd alive: this many
 * without a PONG in between lose the connection. */
#define STATUS_PINGS_UNANSWERED_MAX 2

struct up_job {
	TAILQ_ENTRY(up_job) link;
	struct up *u;
	uint64_t id;
	bool is_ping;
	up_answer_fn fn; /* NULL once forgotten (or answered UP_TIMEOUT) */
	void *arg;
	struct timespec sent;
	uint64_t timeout_ms;	/* the job's own limit */
	struct event *deadline; /* SUBMITs: armed once the job may have started (up_arm_started) */
	bool armed;
};

struct up {
	struct event_base *base;
	struct sockaddr_un sa;
	struct bufferevent *bev; /* NULL while not connected */
	struct event *retry_ev;
	struct event *status_ev;
	struct up_limits lim;
	unsigned pings_out; /* status PINGs sent since the last PONG */
	unsigned backoff_ms;
	unsigned failures; /* failed connects or silent connections since the last PONG */
	bool greeted;	   /* a PONG came on this connection: the peer is a working sandboxd */
	TAILQ_HEAD(, up_job) jobs;
	uint64_t next_id;
	struct proto_buf out; /* scratch for the encoders */
	struct up_status st;
	up_event_fn on_event;
	void *event_arg;
	char detail[PROTO_MESSAGE_MAX + 64];
};

static void up_emit(struct up *u, enum up_event_kind kind, int err, const char *detail,
		    unsigned jobs, uint64_t job_id)
{
	struct up_event ev = {.kind = kind,
			      .err = err,
			      .detail = detail,
			      .jobs = jobs,
			      .attempts = u->failures,
			      .job_id = job_id};

	if (u->on_event)
		u->on_event(u->event_arg, &ev);
}

static double since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static struct up_job *up_find(struct up *u, uint64_t id)
{
	struct up_job *j;

	TAILQ_FOREACH(j, &u->jobs, link)
	if (j->id == id)
		return j;
	return NULL;
}

static void up_unlink(struct up *u, struct up_job *j)
{
	TAILQ_REMOVE(&u->jobs, j, link);
	if (!j->is_ping)
		u->st.jobs--;
}

static void up_job_free(struct up_job *j)
{
	if (j->deadline)
		event_free(j->deadline);
	free(j);
}

static struct timeval ms_tv(uint64_t ms)
{
	return (struct timeval){.tv_sec = (time_t)(ms / 1000),
				.tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

static void up_arm(struct up_job *j, uint64_t ms)
{
	struct timeval tv = ms_tv(ms);

	/* On failure the job keeps no deadline; the next up_arm_started() tries again. */
	j->armed = event_add(j->deadline, &tv) == 0;
}

/* sandboxd runs a connection's jobs in the order they came, max_running at a time, so a job
 * whose deadline counted from its SUBMIT would expire while it merely waits in the queue. A job
 * gets its deadline once fewer than max_running jobs sent before it are still unanswered: from
 * then on it may run. (Other clients of sandboxd share the slots; the grace covers a little of
 * that.) Call after every change of the list or of max_running. */
static void up_arm_started(struct up *u)
{
	unsigned slots = u->st.have_pong && u->st.max_running ? u->st.max_running : UINT_MAX;
	unsigned ahead = 0;
	struct up_job *j;

	TAILQ_FOREACH(j, &u->jobs, link)
	{
		if (j->is_ping)
			continue;
		if (ahead++ >= slots)
			break;
		if (!j->armed)
			up_arm(j, j->timeout_ms + u->lim.grace_ms);
	}
}

/* Removes the job, then calls its owner: the callback may submit or forget other jobs. */
static void up_deliver(struct up *u, struct up_job *j, struct up_answer *a)
{
	up_answer_fn fn = j->fn;
	void *arg = j->arg;
	uint64_t id = j->id;

	a->seconds = since(&j->sent);
	up_unlink(u, j);
	up_job_free(j);
	if (fn) {
		fn(arg, a);
	} else if (a->kind == UP_RESULT && u->on_event) {
		/* Nobody waits for it, but it still ran: the owner counts it. */
		struct up_event ev = {.kind = UP_EV_DROPPED,
				      .job_id = id,
				      .verdict = a->result->verdict,
				      .seconds = a->seconds};
		u->on_event(u->event_arg, &ev);
	}
}

static void up_schedule_retry(struct up *u)
{
	struct timeval tv;

	u->backoff_ms = u->backoff_ms ? u->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (u->backoff_ms > BACKOFF_MAX_MS)
		u->backoff_ms = BACKOFF_MAX_MS;
	tv.tv_sec = u->backoff_ms / 1000;
	tv.tv_usec = (u->backoff_ms % 1000) * 1000;
	if (event_add(u->retry_ev, &tv) < 0)
		up_emit(u, UP_EV_NO_RETRY, -ENOMEM, NULL, 0, 0);
}

/* The connection is gone: every job in flight is answered now, not when a timeout fires. */
static void up_lose(struct up *u, int err, const char *detail)
{
	struct up_answer a = {.kind = UP_LOST};
	unsigned answered = 0;
	struct up_job *j;

	bufferevent_free(u->bev);
	u->bev = NULL;
	u->pings_out = 0;
	event_del(u->status_ev);
	u->st.connected = false;
	u->st.have_pong = false;
	u->st.last_error = err;
	while ((j = TAILQ_FIRST(&u->jobs))) {
		if (j->fn && !j->is_ping)
			answered++;
		up_deliver(u, j, &a);
	}
	/* A peer that accepts and closes at once (sandboxd refusing our uid) would otherwise
	 * make a line every retry: report the first loss of such a series only. */
	if (u->greeted || answered || u->failures == 0) {
		struct up_event ev = {.kind = UP_EV_LOST,
				      .err = err,
				      .detail = detail,
				      .jobs = answered,
				      .attempts = u->failures,
				      .greeted = u->greeted};

		if (u->on_event)
			u->on_event(u->event_arg, &ev);
	}
	if (!u->greeted)
		u->failures++;
	u->greeted = false;
	up_schedule_retry(u);
}

static int up_send(struct up *u)
{
	int r = 0;

	if (bufferevent_write(u->bev, u->out.data, u->out.len) < 0)
		r = -ENOMEM;
	proto_buf_reset(&u->out);
	return r;
}

static void up_send_status_ping(struct up *u)
{
	/* An id no job holds: its PONG only refreshes the status. */
	if (proto_encode_ping(&u->out, u->next_id++) == 0 && up_send(u) == 0)
		u->pings_out++;
	proto_buf_reset(&u->out);
}

static int up_handle_frame(struct up *u, const struct proto_hdr *h, const uint8_t *p)
{
	struct up_answer a = {0};
	struct proto_result res;
	struct proto_error err;
	struct proto_pong pong;
	struct up_job *j;

	switch (h->type) {
	case PROTO_RESULT:
		if (proto_decode_result(p, h->length, &res) < 0)
			return -EBADMSG;
		j = up_find(u, h->job_id);
		if (!j || j->is_ping) {
			up_emit(u, UP_EV_STRAY, 0, "RESULT", 0, h->job_id);
			return 0;
		}
		a.kind = UP_RESULT;
		a.result = &res;
		up_deliver(u, j, &a);
		up_arm_started(u); /* a slot is free */
		return 0;
	case PROTO_ERROR:
		if (proto_decode_error(p, h->length, &err) < 0)
			return -EBADMSG;
		if (h->job_id == 0) {
			/* About the connection (we sent something it could not parse); sandboxd
			 * closes it after this frame. */
			snprintf(u->detail, sizeof(u->detail),
				 "sandboxd closed the connection: %.*s", (int)err.message_len,
				 err.message);
			return -EPROTO;
		}
		j = up_find(u, h->job_id);
		if (!j) {
			up_emit(u, UP_EV_STRAY, 0, "ERROR", 0, h->job_id);
			return 0;
		}
		a.kind = UP_ERROR;
		a.error = &err;
		up_deliver(u, j, &a);
		up_arm_started(u);
		return 0;
	case PROTO_PONG:
		if (proto_decode_pong(p, h->length, &pong) < 0)
			return -EBADMSG;
		u->pings_out = 0; /* any PONG shows sandboxd alive */
		u->st.have_pong = true;
		u->st.ready = pong.ready == 1;
		u->st.running = pong.running;
		u->st.queued = pong.queued;
		u->st.max_running = pong.max_running;
		u->st.max_queued = pong.max_queued;
		/* A frame came back: the connection works, so the next outage starts the
		 * backoff from the beginning again. */
		if (!u->greeted) {
			u->greeted = true;
			up_emit(u, UP_EV_CONNECTED, 0, NULL, 0, 0);
			u->backoff_ms = 0;
			u->failures = 0;
		}
		up_arm_started(u); /* max_running is known (or changed) */
		j = up_find(u, h->job_id);
		if (j && j->is_ping) {
			a.kind = UP_PONG;
			a.pong = &pong;
			up_deliver(u, j, &a);
		}
		return 0;
	default:
		/* A client-to-daemon type coming back: the peer is not a sandboxd we understand. */
		return -EPROTO;
	}
}

static void up_on_read(struct bufferevent *bev, void *arg)
{
	struct up *u = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (u->bev) {
		size_t avail = evbuffer_get_length(in);
		struct proto_hdr h = {0};
		uint8_t *buf;
		long n;
		int r;

		if (avail < PROTO_HDR_SIZE) {
			bufferevent_setwatermark(bev, EV_READ, 0, 0);
			return;
		}
		buf = evbuffer_pullup(in, PROTO_HDR_SIZE);
		if (!buf) {
			up_lose(u, -ENOMEM, "out of memory reading from sandboxd");
			return;
		}
		/* The header is checked (magic, version, type, size cap) before we wait for or
		 * gather its payload: a bad frame closes the connection (PROTOCOL.md rule 10). */
		n = proto_frame_check(buf, avail, &h);
		if (n < 0) {
			snprintf(u->detail, sizeof(u->detail),
				 "malformed frame header from sandboxd");
			up_lose(u, (int)n, u->detail);
			return;
		}
		if (n == 0) {
			/* Wake up again when the whole frame is there, not for every chunk of a
			 * large RESULT. */
			bufferevent_setwatermark(bev, EV_READ, PROTO_HDR_SIZE + (size_t)h.length,
						 0);
			return;
		}
		buf = evbuffer_pullup(in, n);
		if (!buf) {
			up_lose(u, -ENOMEM, "out of memory reading from sandboxd");
			return;
		}
		u->detail[0] = '\0';
		r = up_handle_frame(u, &h, buf + PROTO_HDR_SIZE);
		if (r < 0) {
			if (!u->detail[0])
				snprintf(u->detail, sizeof(u->detail),
					 "malformed %s frame from sandboxd",
					 proto_type_name(h.type));
			up_lose(u, r, u->detail);
			return;
		}
		evbuffer_drain(in, (size_t)n);
	}
}

static void up_on_bev_event(struct bufferevent *bev, short what, void *arg)
{
	struct up *u = arg;
	int err = EVUTIL_SOCKET_ERROR();

	if (what & BEV_EVENT_EOF)
		up_lose(u, -ECONNRESET, "sandboxd closed the connection");
	else if (what & BEV_EVENT_ERROR)
		up_lose(u, err ? -err : -EIO, "error on the connection to sandboxd");
}

static void up_on_status_timer(evutil_socket_t fd, short what, void *arg)
{
	struct up *u = arg;

	if (!u->bev)
		return;
	/* Connected but silent (stopped, or stuck): as good as gone. Its jobs are answered 503
	 * now rather than when their deadlines pass, and a new connection is tried. */
	if (u->pings_out >= STATUS_PINGS_UNANSWERED_MAX) {
		snprintf(u->detail, sizeof(u->detail),
			 "sandboxd answered none of %u status requests %llu ms apart", u->pings_out,
			 (unsigned long long)u->lim.status_ms);
		up_lose(u, -ETIMEDOUT, u->detail);
		return;
	}
	up_send_status_ping(u);
}

static void up_connect(struct up *u)
{
	struct timeval status_every = ms_tv(u->lim.status_ms);
	_cleanup_close_ int fd = -1;
	int r;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	/* A Unix stream connect completes or fails at once (EAGAIN: the backlog is full, which
	 * counts as a failure and is retried like one). */
	while (connect(fd, (struct sockaddr *)&u->sa, sizeof(u->sa)) < 0) {
		if (errno != EINTR) {
			r = -errno;
			goto fail;
		}
	}
	u->bev = bufferevent_socket_new(u->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!u->bev) {
		r = -ENOMEM;
		goto fail;
	}
	fd = -1; /* owned by the bufferevent */
	bufferevent_setcb(u->bev, up_on_read, NULL, up_on_bev_event, u);
	bufferevent_enable(u->bev, EV_READ | EV_WRITE);
	u->st.connected = true;
	u->st.have_pong = false;
	u->st.connects++;
	if (u->st.connects > 1)
		u->st.reconnects++;
	/* sandboxd creates its socket only after its self-test passed, so a connection means it
	 * takes jobs; the first PONG fills in the status (and proves the peer speaks v1). */
	u->greeted = false;
	u->pings_out = 0;
	up_send_status_ping(u);
	if (event_add(u->status_ev, &status_every) < 0) {
		r = -ENOMEM;
		bufferevent_free(u->bev);
		u->bev = NULL;
		u->st.connected = false;
		goto fail;
	}
	return;
fail:
	u->st.last_error = r;
	if (u->failures++ == 0) /* once per outage, not once per retry */
		up_emit(u, UP_EV_CONNECT_FAILED, r, NULL, 0, 0);
	up_schedule_retry(u);
}

static void up_on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct up *u = arg;

	if (!u->bev)
		up_connect(u);
}

int up_new(struct event_base *base, const char *path, const struct up_limits *lim,
	   up_event_fn on_event, void *event_arg, struct up **ret)
{
	struct up *u;

	if (strlen(path) >= sizeof(u->sa.sun_path))
		return -ENAMETOOLONG;
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->base = base;
	u->lim = *lim;
	u->sa.sun_family = AF_UNIX;
	strcpy(u->sa.sun_path, path);
	u->on_event = on_event;
	u->event_arg = event_arg;
	u->next_id = 1; /* 0 names the connection in ERROR frames */
	TAILQ_INIT(&u->jobs);
	u->retry_ev = evtimer_new(base, up_on_retry, u);
	u->status_ev = event_new(base, -1, EV_PERSIST, up_on_status_timer, u);
	if (!u->retry_ev || !u->status_ev) {
		up_free(u);
		return -ENOMEM;
	}
	*ret = u;
	return 0;
}

void up_free(struct up *u)
{
	struct up_job *j;

	if (!u)
		return;
	while ((j = TAILQ_FIRST(&u->jobs))) {
		TAILQ_REMOVE(&u->jobs, j, link);
		up_job_free(j);
	}
	if (u->bev)
		bufferevent_free(u->bev);
	if (u->retry_ev)
		event_free(u->retry_ev);
	if (u->status_ev)
		event_free(u->status_ev);
	proto_buf_free(&u->out);
	free(u);
}

void up_start(struct up *u)
{
	if (!u->bev && !event_pending(u->retry_ev, EV_TIMEOUT, NULL))
		up_connect(u);
}

const struct up_status *up_status(const struct up *u)
{
	return &u->st;
}

/* Sandboxd never answered the job in time: its asker gets UP_TIMEOUT and the job is cancelled.
 * It stays listed for one more grace, so a late RESULT is still recognised and dropped; if not
 * even the CANCEL is answered by then, it is dropped for good. */
static void up_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct up_job *j = arg;
	struct up *u = j->u;
	struct up_answer a = {.kind = UP_TIMEOUT};
	up_answer_fn fn = j->fn;
	void *fn_arg = j->arg;
	uint64_t id = j->id;

	if (!fn) {
		up_unlink(u, j);
		up_job_free(j);
		up_emit(u, UP_EV_ABANDONED, 0, NULL, 0, id);
		up_arm_started(u);
		return;
	}
	a.seconds = since(&j->sent);
	up_forget(u, j);
	up_arm(j, u->lim.grace_ms);
	fn(fn_arg, &a);
}

static int up_enqueue(struct up *u, bool is_ping, uint64_t timeout_ms, up_answer_fn fn, void *arg,
		      struct up_job **ret)
{
	struct up_job *j;
	int r;

	j = calloc(1, sizeof(*j));
	if (j && !is_ping)
		j->deadline = evtimer_new(u->base, up_on_deadline, j);
	if (!j || (!is_ping && !j->deadline)) {
		if (j)
			up_job_free(j);
		proto_buf_reset(&u->out);
		return -ENOMEM;
	}
	r = up_send(u);
	if (r < 0) {
		up_job_free(j);
		return r;
	}
	j->u = u;
	j->id = u->next_id - 1;
	j->is_ping = is_ping;
	j->fn = fn;
	j->arg = arg;
	j->timeout_ms = timeout_ms;
	clock_gettime(CLOCK_MONOTONIC, &j->sent);
	TAILQ_INSERT_TAIL(&u->jobs, j, link);
	if (!is_ping) {
		u->st.jobs++;
		up_arm_started(u);
	}
	*ret = j;
	return 0;
}

int up_submit(struct up *u, const struct proto_submit *s, up_answer_fn fn, void *arg,
	      struct up_job **ret)
{
	size_t waiting;
	int r;

	if (!u->bev)
		return -ENOTCONN;
	/* A sandboxd that does not read (stopped, stuck) must not make us buffer without end;
	 * one job always fits into an empty buffer. */
	waiting = evbuffer_get_length(bufferevent_get_output(u->bev));
	if (waiting && waiting + PROTO_HDR_SIZE + 16 + s->script_len > u->lim.out_max)
		return -ENOBUFS;
	/* Ids are never reused, so a late answer can never be taken for another job's. */
	r = proto_encode_submit(&u->out, u->next_id++, s);
	if (r < 0) {
		proto_buf_reset(&u->out);
		return r;
	}
	/* sandboxd's default limit is taken to be at most the gateway's cap (both 30 s). */
	return up_enqueue(u, false, s->timeout_ms ? s->timeout_ms : u->lim.default_timeout_ms, fn,
			  arg, ret);
}

int up_ping(struct up *u, up_answer_fn fn, void *arg, struct up_job **ret)
{
	int r;

	if (!u->bev)
		return -ENOTCONN;
	r = proto_encode_ping(&u->out, u->next_id++);
	if (r < 0) {
		proto_buf_reset(&u->out);
		return r;
	}
	return up_enqueue(u, true, 0, fn, arg, ret);
}

void up_forget(struct up *u, struct up_job *j)
{
	if (j->is_ping) {
		/* Nothing runs for a PING; its PONG is taken as a status refresh. */
		up_unlink(u, j);
		up_job_free(j);
		return;
	}
	j->fn = NULL;
	j->arg = NULL;
	/* Kill the job in sandboxd; it stays listed until its RESULT (cancelled) arrives, so
	 * that answer is recognised and dropped. */
	if (u->bev && proto_encode_cancel(&u->out, j->id) == 0)
		(void)up_send(u);
	proto_buf_reset(&u->out);
}
