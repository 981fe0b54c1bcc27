/* server.c - the Unix socket: checked peers, framed requests from a permit table, many jobs in
 * flight per connection. sandboxd parses nothing but these frames. */
#include "server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "job.h"
#include "log.h"
#include "proto.h"

/* Unread results a client may leave with us: a few maximal results. */
#define CONN_OUTPUT_MAX (128u << 20)

struct conn_job {
	TAILQ_ENTRY(conn_job) link;
	struct conn *c;
	uint64_t id;
	struct job *job;
};

struct conn {
	LIST_ENTRY(conn) link;
	struct sbx *s;
	struct bufferevent *bev;
	TAILQ_HEAD(, conn_job) jobs;
	unsigned n_jobs;
	uid_t uid;
	pid_t pid;
	bool closing; /* a protocol error was answered; close once it is flushed */
};

static void conn_free(struct conn *c)
{
	struct conn_job *cj;

	/* The peer is gone: its jobs are killed, and nobody is told. */
	while ((cj = TAILQ_FIRST(&c->jobs))) {
		TAILQ_REMOVE(&c->jobs, cj, link);
		job_detach(cj->job);
		free(cj);
	}
	LIST_REMOVE(c, link);
	bufferevent_free(c->bev);
	free(c);
}

static void on_conn_drop(evutil_socket_t fd, short what, void *arg)
{
	conn_free(arg);
}

static void conn_send(struct conn *c, struct proto_buf *b)
{
	if (c->closing) {
		proto_buf_free(b);
		return;
	}
	if (b->len && bufferevent_write(c->bev, b->data, b->len) < 0)
		log_warn("client pid %d: cannot queue a reply", (int)c->pid);
	proto_buf_free(b);
	/* A client that does not read its results is cut off rather than buffered without
	 * end. The drop runs from the loop, not from inside a job's callback. */
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > CONN_OUTPUT_MAX) {
		log_warn("client pid %d: over %u MiB of unread results; closing", (int)c->pid,
			 CONN_OUTPUT_MAX >> 20);
		c->closing = true;
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		if (event_base_once(c->s->base, -1, EV_TIMEOUT, on_conn_drop, c, NULL) < 0)
			log_error("client pid %d: cannot schedule its close", (int)c->pid);
	}
}

static void conn_error(struct conn *c, uint64_t id, uint16_t code, const char *msg)
{
	struct proto_buf b = {0};

	if (proto_encode_error(&b, id, code, msg) == 0)
		conn_send(c, &b);
	else
		proto_buf_free(&b);
}

static struct conn_job *conn_find(struct conn *c, uint64_t id)
{
	struct conn_job *cj;

	TAILQ_FOREACH(cj, &c->jobs, link)
	if (cj->id == id)
		return cj;
	return NULL;
}

static void on_job_done(struct job *j, const struct proto_result *r, void *arg)
{
	struct conn_job *cj = arg;
	struct conn *c = cj->c;
	struct proto_buf b = {0};

	/* One line per job; never the script, its output or its result. */
	log_info("job %llu from pid %d: %s in %u ms (%s, cpu %u ms, peak %llu KiB)",
		 (unsigned long long)cj->id, (int)c->pid, proto_verdict_name(r->verdict),
		 r->wall_ms, job_is_warm(j) ? "warm" : "cold", r->cpu_ms,
		 (unsigned long long)(r->peak_memory >> 10));
	if (proto_encode_result(&b, cj->id, r) == 0)
		conn_send(c, &b);
	else {
		proto_buf_free(&b);
		conn_error(c, cj->id, PROTO_E_INTERNAL, "result could not be encoded");
	}
	TAILQ_REMOVE(&c->jobs, cj, link);
	c->n_jobs--;
	free(cj);
}

/* ---- the permit table: what a client may send ---- */

static int handle_submit(struct conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	const struct config *cfg = c->s->cfg;
	struct proto_submit sub;
	struct conn_job *cj;
	char msg[160];
	int r;

	/* Id 0 names the connection in ERROR frames; no job may carry it. */
	if (h->job_id == 0 || proto_decode_submit(p, h->length, &sub) < 0)
		return -EBADMSG;
	if (c->s->stopping) {
		conn_error(c, h->job_id, PROTO_E_SHUTDOWN, "sandboxd is shutting down");
		return 0;
	}
	/* Listening before the canary passed means the host audit found that the jail cannot
	 * hold here: every job is refused, with the finding (logged once, at start-up). */
	if (!c->s->ready) {
		conn_error(c, h->job_id, PROTO_E_NOT_READY,
			   *c->s->refusal ? c->s->refusal : "sandboxd is not ready");
		return 0;
	}
	/* Per-job limits may only lower the daemon's caps, never raise them. */
	if (sub.timeout_ms && (sub.timeout_ms < 100 || sub.timeout_ms > cfg->timeout_ms)) {
		snprintf(msg, sizeof(msg), "timeout_ms must be between 100 and %llu",
			 (unsigned long long)cfg->timeout_ms);
		conn_error(c, h->job_id, PROTO_E_INVALID, msg);
		return 0;
	}
	if (sub.memory_mb && (sub.memory_mb < 32 || sub.memory_mb > cfg->memory_mb)) {
		snprintf(msg, sizeof(msg), "memory_mb must be between 32 and %llu",
			 (unsigned long long)cfg->memory_mb);
		conn_error(c, h->job_id, PROTO_E_INVALID, msg);
		return 0;
	}
	if (conn_find(c, h->job_id)) {
		conn_error(c, h->job_id, PROTO_E_INVALID,
			   "job id already in flight on this connection");
		return 0;
	}
	cj = calloc(1, sizeof(*cj));
	if (!cj)
		return -ENOMEM;
	cj->c = c;
	cj->id = h->job_id;
	cj->job = job_new(c->s, h->job_id, &sub, on_job_done, cj);
	if (!cj->job) {
		free(cj);
		return -ENOMEM;
	}
	TAILQ_INSERT_TAIL(&c->jobs, cj, link);
	c->n_jobs++;
	r = job_submit(cj->job);
	if (r == -EBUSY) {
		/* The queue is full: say so at once; the job was never queued. */
		TAILQ_REMOVE(&c->jobs, cj, link);
		c->n_jobs--;
		free(cj);
		conn_error(c, h->job_id, PROTO_E_BUSY, "sandboxd queue is full");
	}
	return 0;
}

static int handle_cancel(struct conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	struct conn_job *cj = conn_find(c, h->job_id);

	if (cj)
		job_cancel(cj->job); /* its RESULT (cancelled) follows */
	return 0;
}

static int handle_ping(struct conn *c, const struct proto_hdr *h, const uint8_t *p)
{
	struct sbx *s = c->s;
	const char *why = s->stopping ? "shutting down" : s->refusal;
	struct proto_pong pong = {.ready = s->ready && !s->stopping,
				  .cgroup_version = (uint16_t)s->cg.version,
				  .running = s->running,
				  .queued = s->queued,
				  .max_running = (uint32_t)s->cfg->max_running,
				  .max_queued = (uint32_t)s->cfg->max_queued,
				  .reason = why,
				  .reason_len = (uint32_t)strlen(why)};
	struct proto_buf b = {0};

	if (proto_encode_pong(&b, h->job_id, &pong) == 0)
		conn_send(c, &b);
	else
		proto_buf_free(&b);
	return 0;
}

static const struct {
	uint16_t type;
	int (*handler)(struct conn *c, const struct proto_hdr *h, const uint8_t *p);
} permits[] = {
    {PROTO_SUBMIT, handle_submit},
    {PROTO_CANCEL, handle_cancel},
    {PROTO_PING, handle_ping},
};

static bool permitted(uint16_t type)
{
	for (size_t i = 0; i < ARRAY_SIZE(permits); i++)
		if (permits[i].type == type)
			return true;
	return false;
}

static void conn_protocol_error(struct conn *c, const char *why)
{
	/* One ERROR, then the connection closes once that is flushed; nothing else. */
	log_warn("client pid %d: protocol error: %s", (int)c->pid, why);
	conn_error(c, 0, PROTO_E_PROTOCOL, why);
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (!c->closing) {
		size_t avail = evbuffer_get_length(in);
		struct proto_hdr h;
		uint8_t *buf;
		long n;
		size_t i;
		int r;

		if (avail < PROTO_HDR_SIZE)
			return;
		buf = evbuffer_pullup(in, PROTO_HDR_SIZE);
		/* The header's checks (magic, version, type, size cap) come before we wait
		 * for, or gather, any payload. */
		n = proto_frame_check(buf, avail, &h);
		if (n >= 0 && proto_hdr_decode(buf, &h) == 0 && !permitted(h.type)) {
			/* Refused on its header: never wait for a payload we would not read. */
			conn_protocol_error(c, "message type not accepted from clients");
			return;
		}
		if (n < 0) {
			conn_protocol_error(c, n == -EBADMSG ? "bad magic"
					       : n == -EPROTONOSUPPORT
						   ? "unsupported protocol version"
					       : n == -EMSGSIZE ? "frame too large for its type"
								: "unknown message type or flags");
			return;
		}
		if (n == 0)
			return;
		buf = evbuffer_pullup(in, n);
		if (!buf) {
			conn_protocol_error(c, "out of memory");
			return;
		}
		for (i = 0; permits[i].type != h.type; i++)
			; /* permitted(h.type) holds */
		r = permits[i].handler(c, &h, buf + PROTO_HDR_SIZE);
		evbuffer_drain(in, (size_t)n);
		if (r < 0) {
			conn_protocol_error(c,
					    r == -ENOMEM ? "out of memory" : "malformed message");
			return;
		}
	}
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->closing)
		conn_free(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		conn_free(arg);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
		      void *arg)
{
	struct sbx *s = arg;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct conn *c;

	/* The socket's mode already keeps others out; the kernel's word on the peer is the
	 * second check: root and the gateway account only. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 ||
	    (cred.uid != 0 && cred.uid != s->gateway_uid)) {
		log_warn("refused a client: uid %d is neither root nor the gateway user",
			 (int)cred.uid);
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->s = s;
	c->uid = cred.uid;
	c->pid = cred.pid;
	TAILQ_INIT(&c->jobs);
	c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		close(fd);
		free(c);
		return;
	}
	LIST_INSERT_HEAD(&s->conns, c, link);
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	log_debug("client pid %d uid %d connected", (int)cred.pid, (int)cred.uid);
}

int srv_prepare_dir(struct sbx *s, const char *dir)
{
	struct stat st;

	/* The socket's directory: only root and the gateway's group may enter it. A directory
	 * that already exists (/run, /tmp, one systemd made with RuntimeDirectoryMode=) is not
	 * ours to change: there the socket's own mode 0660 is the guard. */
	if (mkdir(dir, 0750) < 0) {
		if (errno != EEXIST)
			return -errno;
		if (lstat(dir, &st) < 0)
			return -errno;
		return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
	}
	if (chown(dir, 0, s->gateway_gid) < 0 || chmod(dir, 0750) < 0)
		return -errno;
	return 0;
}

int srv_listen(struct sbx *s)
{
	const char *path = s->cfg->socket_path;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[sizeof(sa.sun_path)];
	struct stat st;
	_cleanup_close_ int fd = -1;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	strcpy(dir, path);
	dirname(dir);
	int r = srv_prepare_dir(s, dir);
	if (r < 0)
		return r;
	/* A stale socket of an earlier run is replaced; anything else at the path is not ours. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	if (chown(path, 0, s->gateway_gid) < 0 || chmod(path, 0660) < 0)
		return -errno;
	if (listen(fd, 128) < 0)
		return -errno;
	s->listener = evconnlistener_new(s->base, on_accept, s, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (!s->listener)
		return -ENOMEM;
	fd = -1; /* owned by the listener */
	return 0;
}

void srv_stop_listening(struct sbx *s)
{
	if (s->listener) {
		evconnlistener_free(s->listener);
		s->listener = NULL;
		unlink(s->cfg->socket_path);
	}
}

void srv_close_all(struct sbx *s)
{
	struct conn *c;

	while ((c = LIST_FIRST(&s->conns)))
		conn_free(c);
}
