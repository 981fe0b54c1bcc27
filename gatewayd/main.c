/* main.c - gatewayd: the unprivileged HTTP gateway in front of sandboxd.
 *
 * It is the only pyexec process that faces the network: it parses HTTP and JSON, validates, and
 * forwards each job over sandboxd's Unix socket. So it runs as an ordinary account with no
 * capabilities and no_new_privs, and it never touches namespaces. Order of start-up: read what
 * needs root (the API key file, the listening socket for a low port), then drop privileges
 * for good, then serve. */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "auth.h"
#include "cleanup.h"
#include "config.h"
#include "gw.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "privdrop.h"
#include "server.h"
#include "upstream.h"

#define DRAIN_TICK_MS 50

struct main_ctx {
	struct gw *gw;
	struct event *drain_tick;
	struct event *grace;
};

static void on_up_event(void *arg, const struct up_event *ev)
{
	struct gw *gw = arg;
	const char *path = gw->cfg->socket_path;
	const char *hint = "";

	switch (ev->kind) {
	case UP_EV_CONNECTED:
		if (ev->attempts)
			log_info("connected to sandboxd at %s after %u failed attempts", path,
				 ev->attempts);
		else
			log_info("connected to sandboxd at %s", path);
		break;
	case UP_EV_CONNECT_FAILED:
		if (ev->err == -EACCES || ev->err == -EPERM)
			hint = " (the gateway's account needs sandboxd's socket group)";
		log_warn("cannot connect to sandboxd at %s: %s%s; retrying, /execute answers 503 "
			 "meanwhile",
			 path, strerror(-ev->err), hint);
		break;
	case UP_EV_LOST:
		/* A peer that closes before its first PONG usually refused our uid (sandboxd
		 * serves root and its --gateway-user only). */
		if (!ev->greeted && (ev->err == -ECONNRESET || ev->err == -EPIPE))
			hint =
			    " before answering (does sandboxd's --gateway-user name our account?)";
		log_warn("lost sandboxd: %s%s (%s); %u requests answered 503; reconnecting",
			 ev->detail ? ev->detail : "connection closed", hint, strerror(-ev->err),
			 ev->jobs);
		break;
	case UP_EV_DROPPED:
		/* A job whose client left (its line was logged then); it still counts as run. */
		metrics_execution(&gw->metrics, ev->verdict, ev->seconds);
		log_debug("job %llu of a departed client ended: %s", (unsigned long long)ev->job_id,
			  proto_verdict_name(ev->verdict));
		break;
	case UP_EV_NO_RETRY:
		log_error_errno(ev->err,
				"cannot schedule a reconnection to sandboxd; retrying when "
				"the next request comes");
		break;
	case UP_EV_ABANDONED:
		log_warn("sandboxd never answered job %llu, not even its cancellation; forgotten",
			 (unsigned long long)ev->job_id);
		break;
	case UP_EV_STRAY:
		log_warn("sandboxd sent a %s for job %llu, which is not in flight; ignored",
			 ev->detail ? ev->detail : "frame", (unsigned long long)ev->job_id);
		break;
	}
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
	struct main_ctx *m = arg;

	if (m->gw->n_reqs == 0 && m->gw->n_sending == 0)
		event_base_loopbreak(m->gw->base);
}

static void on_grace_over(evutil_socket_t fd, short what, void *arg)
{
	struct main_ctx *m = arg;

	log_warn("grace period over with %u requests unanswered; exiting", m->gw->n_reqs);
	event_base_loopbreak(m->gw->base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct main_ctx *m = arg;
	struct gw *gw = m->gw;
	struct timeval tick = {0, DRAIN_TICK_MS * 1000};
	struct timeval grace = {.tv_sec = (time_t)(gw->cfg->grace_ms / 1000),
				.tv_usec = (suseconds_t)(gw->cfg->grace_ms % 1000) * 1000};

	if (gw->draining) {
		log_info("signal %d again: exiting now", (int)sig);
		event_base_loopbreak(gw->base);
		return;
	}
	/* Stop taking connections and jobs; answer the jobs in flight (each has its own
	 * deadline in sandboxd), within a bounded grace. */
	log_info("signal %d: stopping; %u requests in flight, grace %llu ms", (int)sig, gw->n_reqs,
		 (unsigned long long)gw->cfg->grace_ms);
	gw->draining = true;
	srv_stop_accepting(gw);
	m->drain_tick = event_new(gw->base, -1, EV_PERSIST, on_drain_tick, m);
	m->grace = evtimer_new(gw->base, on_grace_over, m);
	if (!m->drain_tick || !m->grace || event_add(m->drain_tick, &tick) < 0 ||
	    event_add(m->grace, &grace) < 0)
		event_base_loopbreak(gw->base);
}

/* Every connection is a descriptor. Past the open-files limit accept() fails with EMFILE and
 * libevent's listener retries it in a tight loop, so the limit must leave room for
 * --max-connections plus our own descriptors. Raises the limit as far as allowed (root may
 * raise the hard limit too) and returns how many connections fit under it. */
#define FD_RESERVE 64
static uint64_t fit_nofile(uint64_t max_connections, bool is_root)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)max_connections + FD_RESERVE;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return max_connections;
	if (rl.rlim_cur >= want)
		return max_connections;
	if (rl.rlim_max < want && is_root) {
		struct rlimit up = {want, want};
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			return max_connections;
	}
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return max_connections;
	return rl.rlim_cur > 2 * FD_RESERVE ? rl.rlim_cur - FD_RESERVE : rl.rlim_cur / 2;
}

static bool running_as_root(void)
{
	uid_t r, e, s;

	/* Any uid 0 counts: a saved uid 0 could be switched back to. */
	if (getresuid(&r, &e, &s) < 0)
		return geteuid() == 0;
	return r == 0 || e == 0 || s == 0;
}

int main(int argc, char **argv)
{
	struct gw_config cfg;
	struct gw gw = {0};
	struct main_ctx m = {.gw = &gw};
	struct event *sig_term = NULL, *sig_int = NULL;
	_cleanup_close_ int fd = -1;
	bool is_root = running_as_root();
	uid_t uid = 0;
	gid_t gid = 0;
	char listen_desc[96];
	const char *why;
	unsigned line;
	uint64_t n;
	int r, exit_code = 1;

	log_set_ident("gatewayd");
	/* Descriptors inherited from whoever started us (perhaps as root) must not survive the
	 * privilege drop: a root-opened file would still be usable through them. */
	if (close_range(3, ~0U, 0) < 0)
		for (int i = 3; i < 1024; i++)
			close(i);
	r = cfg_parse(&cfg, argc, argv);
	if (r != 0)
		return r > 0 ? 0 : 2;
	if (cfg.verbose)
		log_set_level(LOG_LVL_DEBUG);
	gw.cfg = &cfg;
	LIST_INIT(&gw.conns);

	if (is_root) {
		r = priv_resolve_user(cfg.user, &uid, &gid);
		if (r == -EPERM) {
			log_error("refusing to serve as root: --user %s is uid 0", cfg.user);
			return 1;
		}
		if (r < 0) {
			log_error_errno(r, "cannot use account '%s' (create it, or pass --user)",
					cfg.user);
			return 1;
		}
	}
	/* Read while we may still be root, so the file can be readable by root only. */
	if (*cfg.api_keys) {
		r = auth_load(cfg.api_keys, &gw.auth, &why, &line);
		if (r < 0) {
			if (line)
				log_error("%s: line %u: %s", cfg.api_keys, line, why);
			else
				log_error_errno(r, "%s: %s", cfg.api_keys, why);
			return 1;
		}
	}
	if (cfg.check) {
		cfg_print(&cfg, stdout);
		printf("api-keys loaded = %zu\n", auth_count(gw.auth));
		if (is_root)
			printf("runs as = %s (uid %d, gid %d)\n", cfg.user, (int)uid, (int)gid);
		else
			printf("runs as = uid %d (not started as root: --user does not apply)\n",
			       (int)getuid());
		auth_free(gw.auth);
		return 0;
	}
	n = fit_nofile(cfg.max_connections, is_root);
	if (n < cfg.max_connections) {
		log_warn("the open-files limit leaves room for %llu connections, not %llu: serving "
			 "at most %llu (raise the limit, or lower --max-connections)",
			 (unsigned long long)n, (unsigned long long)cfg.max_connections,
			 (unsigned long long)n);
		cfg.max_connections = n;
	}
	/* The socket first: a port below 1024 needs root, and it stays open across the drop. */
	fd = srv_listen_open(cfg.listen, listen_desc, sizeof(listen_desc));
	if (fd < 0) {
		log_error_errno(fd, "cannot listen on %s", cfg.listen);
		goto out;
	}
	r = priv_drop(is_root, uid, gid, &why);
	if (r < 0) {
		log_error_errno(r, "cannot drop privileges: %s", why);
		goto out;
	}
	r = priv_verify(&why);
	if (r < 0) {
		log_error("refusing to serve: %s after dropping privileges", why);
		goto out;
	}

	/* A client that goes away mid-answer must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	gw.base = event_base_new();
	if (!gw.base) {
		log_error("cannot create the event loop");
		goto out;
	}
	r = up_new(gw.base, cfg.socket_path,
		   &(struct up_limits){.status_ms = cfg.status_ms,
				       .out_max = cfg.upstream_buffer,
				       .default_timeout_ms = cfg.timeout_ms,
				       .grace_ms = cfg.answer_grace_ms},
		   on_up_event, &gw, &gw.up);
	if (r < 0) {
		log_error_errno(r, "cannot use sandboxd's socket path %s", cfg.socket_path);
		goto out;
	}
	r = srv_start(&gw, fd, http_handle);
	if (r < 0) {
		log_error_errno(r, "cannot start the HTTP server");
		goto out;
	}
	fd = -1; /* owned by evhttp */
	if (!gw.early_close)
		log_warn("the event backend cannot report a client's close early: a client that "
			 "leaves does not cancel its job");
	sig_term = evsignal_new(gw.base, SIGTERM, on_signal, &m);
	sig_int = evsignal_new(gw.base, SIGINT, on_signal, &m);
	if (!sig_term || !sig_int || evsignal_add(sig_term, NULL) < 0 ||
	    evsignal_add(sig_int, NULL) < 0) {
		log_error("cannot install signal handlers");
		goto out;
	}
	log_info("ready: listening on http://%s as uid %d, no capabilities; sandboxd at %s; %s",
		 listen_desc, (int)getuid(), cfg.socket_path,
		 gw.auth ? "API keys required" : "no API keys (open)");
	up_start(gw.up);
	event_base_dispatch(gw.base);
	log_info("stopped after %llu requests", (unsigned long long)gw.n_requests);
	exit_code = 0;
out:
	srv_free(&gw);
	up_free(gw.up);
	auth_free(gw.auth);
	if (sig_term)
		event_free(sig_term);
	if (sig_int)
		event_free(sig_int);
	if (m.drain_tick)
		event_free(m.drain_tick);
	if (m.grace)
		event_free(m.grace);
	if (gw.base)
		event_base_free(gw.base);
	return exit_code;
}
