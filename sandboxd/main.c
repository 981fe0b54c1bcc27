/* main.c - sandboxd: the privileged daemon that runs each Python job in a fresh jail.
 *
 * It is root because building a jail needs it (namespaces, mounts, cgroups, uid maps). It
 * parses nothing from the network: only framed requests from peers it checked on its Unix
 * socket (root and the gateway account). */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "canary.h"
#include "caps.h"
#include "cgroup.h"
#include "cleanup.h"
#include "config.h"
#include "job.h"
#include "log.h"
#include "mounts.h"
#include "sbx.h"
#include "scfilter.h"
#include "sdnotify.h"
#include "server.h"
#include "warm.h"

static int exit_code; /* set by the canary or the signal handlers before the loop ends */

/* build/sandboxd finds build/pyrunner/runner.py and build/pyexec-zygote; <prefix>/sbin/sandboxd
 * finds <prefix>/lib/pyexec/runner.py and <prefix>/lib/pyexec/pyexec-zygote. */
static int find_beside(char *buf, size_t len, const char *in_build, const char *installed)
{
	char exe[400], dir[400];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (len < sizeof(dir) + 32)
		return -ENOBUFS;
	const char *const rel[] = { in_build, installed };

	if (n < 0)
		return -errno;
	exe[n] = 0;
	snprintf(dir, sizeof(dir), "%s", dirname(exe));
	for (size_t i = 0; i < ARRAY_SIZE(rel); i++) {
		snprintf(buf, len, "%s/%s", dir, rel[i]);
		if (access(buf, R_OK) == 0)
			return 0;
	}
	return -ENOENT;
}

/* One line with every setting, then one warning per weak one and one error per fatal one; a
 * fatal one becomes s->refusal. cg_ok: cg_init() succeeded. */
static void log_host_audit(struct sbx *s, bool cg_ok)
{
	const struct audit_cgroup cg = {.version = cg_ok ? s->cg.version : 0,
					.swap_limited = cg_ok && s->cg.swap_limited};
	struct audit_report rep;
	char line[2048];
	size_t off = 0;
	int r;

	if (strcmp(s->cfg->audit_root, "/"))
		log_warn("host: auditing %s instead of this host (a test setting)",
			 s->cfg->audit_root);
	r = audit_host(s->cfg->audit_root, &cg, &rep);
	if (r < 0) {
		log_error_errno(r, "host: cannot audit %s", s->cfg->audit_root);
		snprintf(s->refusal, sizeof(s->refusal), "host audit: cannot read %s: %s",
			 s->cfg->audit_root, strerror(-r));
		return;
	}
	for (size_t i = 0; i < rep.n && off < sizeof(line); i++)
		off += (size_t)snprintf(line + off, sizeof(line) - off, "%s%s=%s", i ? " " : "",
					rep.items[i].what, rep.items[i].value);
	log_info("host: %s", line);
	for (size_t i = 0; i < rep.n; i++) {
		const struct audit_item *it = &rep.items[i];
		if (it->level == AUDIT_WEAK)
			log_warn("host: %s = %s: %s (%s; harden the host all the same)", it->what,
				 it->value, it->why, it->note);
		else if (it->level == AUDIT_FATAL)
			log_error("host: %s = %s: %s; no job will run (fix: %s)", it->what,
				  it->value, it->why, it->note);
	}
	audit_refusal(&rep, s->refusal, sizeof(s->refusal));
}

/* Every few seconds: stale cgroups, then the host audit.
 * The host can change under a running daemon (apport or systemd-coredump installing a
 * core_pattern handler after sandboxd started, a sysctl reset): the audit runs again every few
 * seconds, and a fatal finding stops new jobs from then on, as at start-up. Jobs in flight end
 * as they would; a restart after the host is fixed serves again. */
#define REAUDIT_S 5

static void on_reaudit(evutil_socket_t fd, short what, void *arg)
{
	struct sbx *s = arg;
	const struct audit_cgroup cg = {.version = s->cg.version, .swap_limited = s->cg.swap_limited};
	struct audit_report rep;
	char why[sizeof(s->refusal)];

	if (s->stopping)
		return;
	/* A dead daemon's job cgroups that were still busy at start-up or at the last tick, or
	 * of another sandboxd on this host that died meanwhile. */
	unsigned was = s->stale_cgroups;
	s->stale_cgroups = (unsigned)cg_sweep_stale(&s->cg);
	if (was && !s->stale_cgroups)
		log_info("the dead daemon's last job cgroup is removed");
	if (!s->ready || *s->refusal)
		return;
	if (audit_host(s->cfg->audit_root, &cg, &rep) < 0)
		snprintf(why, sizeof(why), "host audit: cannot read %s any more", s->cfg->audit_root);
	else if (!*audit_refusal(&rep, why, sizeof(why)))
		return;
	snprintf(s->refusal, sizeof(s->refusal), "%s", why);
	s->ready = false;
	log_error("%s; the host changed since start-up: refusing jobs from now on", s->refusal);
}

static void on_canary(struct sbx *s, int r, const char *why)
{
	if (r < 0) {
		log_error("refusing to serve: %s", why);
		exit_code = 1;
		event_base_loopbreak(s->base);
		return;
	}
	r = srv_listen(s);
	if (r < 0) {
		log_error_errno(r, "cannot listen on %s", s->cfg->socket_path);
		exit_code = 1;
		event_base_loopbreak(s->base);
		return;
	}
	s->ready = true;
	log_info("ready: listening on %s, %llu jobs at once, queue %llu", s->cfg->socket_path,
		 (unsigned long long)s->cfg->max_running, (unsigned long long)s->cfg->max_queued);
	/* systemd Type=notify readiness, without linking libsystemd. */
	const char *ns = getenv("NOTIFY_SOCKET");
	if (ns && (ns[0] == '/' || ns[0] == '@')) {
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "READY=1\nSTATUS=serving %s", s->cfg->socket_path);
		(void)sd_notify_simple(ns, cmd);
	}
}

static void on_warm_canary(struct sbx *s, int r, const char *why)
{
	warm_verified(s, r, why);
}

/* Each zygote, the first and every restarted one, serves jobs only after a canary job has
 * run in one of its spares and seen the jail hold. */
static void on_zygote_ready(struct sbx *s)
{
	int r = canary_start(s, on_warm_canary, true);

	if (r < 0)
		warm_verified(s, r, "cannot start the warm canary job");
}

/* systemd: started (so the unit is active, not restarted in a loop), and why no job runs. */
static void notify_refusing(struct sbx *s)
{
	const char *ns = getenv("NOTIFY_SOCKET");
	char cmd[700];

	if (ns && (ns[0] == '/' || ns[0] == '@')) {
		snprintf(cmd, sizeof(cmd), "READY=1\nSTATUS=refusing jobs: %s", s->refusal);
		(void)sd_notify_simple(ns, cmd);
	}
}

static void on_drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct sbx *s = arg;

	if (s->running == 0 && s->queued == 0)
		event_base_loopbreak(s->base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct sbx *s = arg;
	static struct event *drain;
	struct timeval tick = { 0, 100000 };

	if (s->stopping) {
		/* A second signal: stop now; the jobs die with us (PR_SET_PDEATHSIG). */
		event_base_loopbreak(s->base);
		return;
	}
	/* Stop taking jobs, let the ones in flight finish (each has its own deadline). */
	log_info("signal %d: stopping; %u running, %u queued", (int)sig, s->running, s->queued);
	s->stopping = true;
	srv_stop_listening(s);
	job_pump_queue(s); /* jobs waiting for a warm spare go cold: no more are made */
	drain = event_new(s->base, -1, EV_PERSIST, on_drain_check, s);
	if (!drain || event_add(drain, &tick) < 0)
		event_base_loopbreak(s->base);
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct sbx s = { 0 };
	struct passwd *pw;
	const char *why, *what;
	struct event *sig_term = NULL, *sig_int = NULL, *reaudit = NULL;
	char desc[1024];
	int r;

	log_set_ident("sandboxd");
	r = cfg_parse(&cfg, argc, argv);
	if (r != 0)
		return r > 0 ? 0 : 2;
	if (cfg.verbose)
		log_set_level(LOG_LVL_DEBUG);
	s.cfg = &cfg;
	TAILQ_INIT(&s.queue);
	TAILQ_INIT(&s.active);
	TAILQ_INIT(&s.spares);
	TAILQ_INIT(&s.spares_gone);
	TAILQ_INIT(&s.waiting);
	LIST_INIT(&s.conns);

	if (!*cfg.runner) {
		if (find_beside(s.runner, sizeof(s.runner), "pyrunner/runner.py",
				"../lib/pyexec/runner.py") < 0) {
			log_error("cannot find runner.py next to the binary; pass --runner");
			return 1;
		}
		cfg.runner = s.runner;
	}
	if (!*cfg.zygote && cfg.warm_spares > 0) {
		if (find_beside(s.zygote, sizeof(s.zygote), "pyexec-zygote",
				"../lib/pyexec/pyexec-zygote") < 0) {
			log_error("cannot find pyexec-zygote next to the binary; pass --zygote, or "
				  "--warm-spares 0 for the cold path only");
			return 1;
		}
		cfg.zygote = s.zygote;
	}
	pw = getpwnam(cfg.gateway_user);
	if (!pw) {
		log_error("gateway user '%s' does not exist (create it, or pass --gateway-user)",
			  cfg.gateway_user);
		return 1;
	}
	s.gateway_uid = pw->pw_uid;
	s.gateway_gid = pw->pw_gid;

	r = mnt_plan_build(&s.plan, cfg.python, cfg.runner, cfg.jail_dir, cfg.tmp_size_mb << 20,
			   cfg.tmp_inodes, &what);
	if (r < 0) {
		log_error_errno(r, "the jail needs %s", what);
		return 1;
	}
	if (cfg.warm_spares > 0 && (r = mnt_plan_add_zygote(&s.plan, cfg.zygote)) < 0) {
		log_error_errno(r, "the warm path needs %s", cfg.zygote);
		return 1;
	}
	if (cfg.check) {
		cfg_print(&cfg, stdout);
		printf("runner = %s\n", cfg.runner);
		for (size_t i = 0; i < s.plan.n_binds; i++)
			printf("bind-ro = %s -> %s\n", s.plan.binds[i].src, s.plan.binds[i].dst);
	}
	if (geteuid() != 0) {
		log_error("sandboxd must run as root: it builds namespaces, mounts and cgroups");
		return 1;
	}
	r = cg_init(&s.cg, cfg.cgroup_mode, &why);
	if (r == 0)
		log_info("%s", cg_describe(&s.cg, desc, sizeof(desc)));
	s.stale_cgroups = r == 0 ? (unsigned)s.cg.stale_at_start : 0;
	if (s.stale_cgroups)
		log_warn("%u job cgroups of a dead daemon still have tasks leaving; they are "
			 "removed as they empty", s.stale_cgroups);
	log_host_audit(&s, r == 0);
	/* Controllers that exist but are not ours to use are a deployment error; a host where
	 * isolation cannot hold (no controller at all, say) keeps sandboxd up to say why. */
	if (r < 0 && !*s.refusal) {
		log_error_errno(r, "no usable cgroup hierarchy: %s", why);
		return 1;
	}
	if (r < 0) {
		log_error_errno(r, "no usable cgroup hierarchy either: %s", why);
		cg_fini(&s.cg);
		snprintf(desc, sizeof(desc), "none");
	}
	if (!caps_have(CAP_SYS_RESOURCE))
		log_warn("no CAP_SYS_RESOURCE: jobs start with oom_score_adj 1000 but can lower it "
			 "again (to 0 at most), so under host memory pressure they are not always "
			 "killed first; the job's cgroup still bounds its memory");
	if (cfg.check) {
		printf("cgroup = %s\n", desc);
		printf("jobs = %s\n", *s.refusal ? s.refusal : "served");
		cg_fini(&s.cg);
		mnt_plan_free(&s.plan);
		return 0;
	}
	r = sc_filter_build(&s.filter);
	if (r < 0) {
		log_error_errno(r, "cannot build the seccomp filter");
		return 1;
	}
	/* The empty mount point every job mounts its root on, in its own namespace. */
	{
		char dir[256];
		snprintf(dir, sizeof(dir), "%s", cfg.socket_path);
		r = srv_prepare_dir(&s, dirname(dir));
		if (r < 0) {
			log_error_errno(r, "cannot prepare %s", dir);
			return 1;
		}
		snprintf(dir, sizeof(dir), "%s", cfg.jail_dir);
		if (mkdir(dirname(dir), 0755) < 0 && errno != EEXIST) {
			log_error_errno(-errno, "cannot create %s", dir);
			return 1;
		}
		if (mkdir(cfg.jail_dir, 0700) < 0 && errno != EEXIST) {
			log_error_errno(-errno, "cannot create %s", cfg.jail_dir);
			return 1;
		}
	}
	/* Spares hold a slot (and so a host uid) of their own from the moment they are made. */
	/* + a canary, + room for spares whose cgroups are still being removed */
	s.n_slots = (unsigned)(cfg.max_running + 2 * cfg.warm_spares + 1);
	s.slot_used = calloc(s.n_slots, sizeof(bool));
	s.base = event_base_new();
	if (!s.slot_used || !s.base || cg_slots_init(&s.cg, s.n_slots) < 0) {
		log_error("out of memory");
		return 1;
	}
	/* A client that goes away mid-reply must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	sig_term = evsignal_new(s.base, SIGTERM, on_signal, &s);
	sig_int = evsignal_new(s.base, SIGINT, on_signal, &s);
	if (!sig_term || !sig_int || evsignal_add(sig_term, NULL) < 0 ||
	    evsignal_add(sig_int, NULL) < 0) {
		log_error("cannot install signal handlers");
		return 1;
	}
	/* Where the jail cannot hold, no canary and no job: sandboxd listens only so that PING (the
	 * gateway's /health) says why, and SUBMIT is refused with it. */
	if (*s.refusal) {
		r = srv_listen(&s);
		if (r < 0) {
			log_error_errno(r, "cannot listen on %s", cfg.socket_path);
			return 1;
		}
		log_error("refusing jobs over the host findings above; listening on %s to say why",
			  cfg.socket_path);
		notify_refusing(&s);
	} else if ((r = canary_start(&s, on_canary, false)) < 0) {
		log_error_errno(r, "cannot start the canary job");
		return 1;
	}
	/* The zygote boots while the cold canary runs; jobs run cold until its own canary
	 * has passed (on_zygote_ready). */
	r = *s.refusal ? 0 : warm_init(&s);
	if (r < 0)
		log_error_errno(r, "warm path: cannot start; every job runs cold");
	warm_set_on_ready(&s, on_zygote_ready);
	reaudit = event_new(s.base, -1, EV_PERSIST, on_reaudit, &s);
	{
		struct timeval every = { REAUDIT_S, 0 };
		if (!reaudit || event_add(reaudit, &every) < 0) {
			log_error("cannot schedule the host audit");
			return 1;
		}
	}
	event_base_dispatch(s.base);
	job_stop_all(&s);
	warm_stop(&s);

	srv_stop_listening(&s);
	srv_close_all(&s);
	log_info("stopped after %llu jobs", (unsigned long long)s.jobs_done);
	event_free(sig_term);
	event_free(sig_int);
	event_free(reaudit);
	/* Jobs still running die with us (PR_SET_PDEATHSIG); their cgroups are removed as
	 * stale at the next start. */
	event_base_free(s.base);
	sc_filter_free(&s.filter);
	mnt_plan_free(&s.plan);
	cg_fini(&s.cg);
	free(s.slot_used);
	return exit_code;
}
