/* warm.c - see warm.h. The zygote's own jail (zygote_child) is the cold job's without the
 * PID namespace, the user namespace and the seccomp filter: it must clone namespaces and mount
 * for its spares, so it keeps five capabilities (below) as root of the initial user namespace.
 * It runs only our code: the runner's warm_up() and the imports of numpy and pandas; the
 * scripts, results and outputs never pass through it. Its root is the read-only jail root,
 * its network namespace is empty, its cgroup is limited like a job's. */
#include "warm.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "caps.h"
#include "cleanup.h"
#include "jail.h"
#include "job.h"
#include "log.h"
#include "ns.h"
#include "zyproto.h"

/* What a spare needs before it drops everything: clone namespaces, mount /proc and tmpfs,
 * set the hostname (SYS_ADMIN), bring lo up (NET_ADMIN), set its ids (SETUID, SETGID), drop
 * its bounding set and lock its securebits (SETPCAP). Nothing else: no DAC override, no
 * ptrace, no module loading, no raw I/O. */
static const int zygote_caps[] = { CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SETUID, CAP_SETGID,
				   CAP_SETPCAP };

#define MAX_PENDING 64
#define SPAWN_WATCHDOG_S 10 /* a spawn request unanswered this long: the zygote is stuck */
#define READY_WATCHDOG_S 120
#define SPARE_FAILURES_MAX 3 /* spares lost in a row before the zygote is restarted */

enum warm_state { W_DOWN, W_STARTING, W_VERIFYING, W_UP, W_DISABLED };

struct warm {
	struct sbx *s;
	enum warm_state state;
	pid_t pid;
	int pidfd, ctl;
	struct cg_job cg;
	bool cg_made;
	struct event *ev_ctl, *ev_pid, *ev_restart, *ev_watchdog, *ev_reap, *ev_refill;
	unsigned reap_rounds;
	struct job *pending[MAX_PENDING]; /* spawn requests in order; the zygote answers in order */
	unsigned n_pending;
	uint64_t seq;
	unsigned failures;
	unsigned backoff_s;
	bool refilling; /* warm_refill() is on the stack: discarding a spare calls it again */
	struct timespec started;
	void (*on_ready)(struct sbx *s);
};

static void zygote_restart_later(struct warm *w);

/* The zygote cannot be asked for spares any more (its socket failed): down until its exit
 * event cleans up and restarts it. */
static void zygote_lost(struct warm *w)
{
	if (w->state != W_DISABLED)
		w->state = W_DOWN;
	if (w->pidfd >= 0)
		(void)syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
}

static uint64_t ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - t0->tv_sec) * 1000 +
	       (uint64_t)((now.tv_nsec - t0->tv_nsec) / 1000000);
}

/* ---- the zygote's process ---- */

static _Noreturn void zygote_fail(const char *what, int err)
{
	/* Our stderr is the daemon's log; the zygote's exit status tells the daemon too. */
	log_error_errno(err, "zygote: %s", what);
	_exit(127);
}

static _Noreturn void zygote_child(const struct sbx *s, const struct cg_job *cg, int ctl)
{
	const char *stage = "";
	char *envp[24], core[64], l2[64];
	int r, fd;

	jail_env(envp, ARRAY_SIZE(envp), core, sizeof(core), l2, sizeof(l2));
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		zygote_fail("parent death signal", -errno);
	for (int i = 0; i < CG_V1_N; i++)
		if (cg->procs_fd[i] >= 0 && write(cg->procs_fd[i], "0", 1) != 1)
			zygote_fail("join cgroup", -errno);
	/* fd 0 /dev/null, 1 and 2 the daemon's stderr (its log), 3 the control socket. */
	fd = fcntl(ctl, F_DUPFD_CLOEXEC, 10);
	if (fd < 0 || dup2(fd, ZY_FD_CTL) < 0 || dup2(2, 1) < 0)
		zygote_fail("file descriptors", -errno);
	close(0);
	if (open("/dev/null", O_RDONLY | O_CLOEXEC) != 0 || fcntl(0, F_SETFD, 0) < 0 ||
	    syscall(SYS_close_range, ZY_FD_CTL + 1, ~0U, 0) < 0)
		zygote_fail("file descriptors", -errno);
	if (setsid() < 0)
		zygote_fail("setsid", -errno);
	if ((r = mnt_enter_jail(&s->plan, true, &stage)) < 0) {
		char what[96];
		snprintf(what, sizeof(what), "mounts: %s", stage);
		zygote_fail(what, r);
	}
	if ((r = ns_set_names()) < 0)
		zygote_fail("hostname", r);
	if (setgroups(0, NULL) < 0)
		zygote_fail("setgroups", -errno);
	if ((r = caps_keep_only(zygote_caps, ARRAY_SIZE(zygote_caps))) < 0)
		zygote_fail("capabilities", r);
	char *const argv[] = { MNT_ZYGOTE, (char *)s->cfg->python, NULL };
	execve(MNT_ZYGOTE, argv, envp);
	zygote_fail("execve " MNT_ZYGOTE, -errno);
}

static int send_init(struct warm *w)
{
	const struct sbx *s = w->s;
	_cleanup_free_ struct zy_init *m = calloc(1, sizeof(*m));
	size_t len;

	if (!m)
		return -ENOMEM;
	if (s->filter.len > ZY_MAX_FILTER)
		return -E2BIG;
	*m = (struct zy_init){ .kind = ZY_INIT,
			       .version = ZY_VERSION,
			       .timeout_ms = s->cfg->timeout_ms,
			       .pids_max = s->cfg->pids_max,
			       .fsize_bytes = s->cfg->tmp_size_mb << 20,
			       .tmp_bytes = s->plan.tmp_bytes,
			       .tmp_inodes = s->plan.tmp_inodes,
			       .filter_len = s->filter.len };
	memcpy(m->filter, s->filter.insns, s->filter.len * sizeof(struct sock_filter));
	len = offsetof(struct zy_init, filter) + s->filter.len * sizeof(struct sock_filter);
	return send(w->ctl, m, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -errno;
}

static void on_ctl(evutil_socket_t fd, short what, void *arg);
static void on_zygote_exit(evutil_socket_t fd, short what, void *arg);

/* Our children that nothing tracks: only spares a dying zygote cloned and never reported. They
 * exit by themselves (their sync socket is closed); they are killed to be sure, and reaped. */
static void reap_strays(struct warm *w)
{
	char path[64], buf[4096];
	_cleanup_close_ int fd = -1;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return;
	buf[n] = 0;
	for (char *p = buf, *end; *p; p = end) {
		long pid = strtol(p, &end, 10);
		siginfo_t si = { 0 };
		if (end == p)
			break;
		if (pid <= 0 || pid == w->pid || job_pid_is_tracked(w->s, (pid_t)pid))
			continue;
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG) == 0 && si.si_pid == 0)
			(void)kill((pid_t)pid, SIGKILL); /* next round reaps it */
	}
}

static void on_reap_strays(evutil_socket_t fd, short what, void *arg)
{
	struct warm *w = arg;

	reap_strays(w);
	if (++w->reap_rounds < 3) {
		struct timeval tv = { 1, 0 };
		evtimer_add(w->ev_reap, &tv);
	}
}

static void reap_strays_later(struct warm *w)
{
	struct timeval tv = { 0, 200000 };

	w->reap_rounds = 0;
	evtimer_add(w->ev_reap, &tv);
}
static void on_watchdog(evutil_socket_t fd, short what, void *arg);

static void arm_watchdog(struct warm *w, int seconds)
{
	struct timeval tv = { seconds, 0 };

	if (seconds > 0)
		evtimer_add(w->ev_watchdog, &tv);
	else
		evtimer_del(w->ev_watchdog);
}

static int zygote_start(struct warm *w)
{
	struct sbx *s = w->s;
	struct cg_limits lim = { .memory_bytes = s->cfg->memory_mb << 20,
				 .pids_max = s->cfg->pids_max,
				 .cpu_percent = s->cfg->cpu_percent };
	int sp[2] = { -1, -1 }, pidfd = -1, r;
	long pid;

	r = cg_job_create(&s->cg, &lim, -1, &w->cg); /* the zygote's own, in every hierarchy */
	if (r < 0)
		return r;
	w->cg_made = true;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		r = -errno;
		goto fail;
	}
	int cgfd = cg_job_clone_fd(&w->cg);
	struct clone_args args = {
		/* Its own mount (the jail root), network (empty), IPC and UTS namespaces. Not a
		 * PID namespace: its spares must be the daemon's children (CLONE_PARENT), with
		 * pids the daemon can use. */
		.flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_PIDFD |
			 (cgfd >= 0 ? CLONE_INTO_CGROUP : 0),
		.pidfd = (uint64_t)(uintptr_t)&pidfd,
		.exit_signal = SIGCHLD,
		.cgroup = cgfd >= 0 ? (uint64_t)cgfd : 0,
	};
	pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0) {
		r = -errno;
		goto fail;
	}
	if (pid == 0)
		zygote_child(s, &w->cg, sp[1]);
	close(sp[1]);
	cg_job_close_child_fds(&w->cg);
	w->pid = (pid_t)pid;
	w->pidfd = pidfd;
	w->ctl = sp[0];
	(void)fcntl(w->ctl, F_SETFL, O_NONBLOCK);
	w->ev_ctl = event_new(s->base, w->ctl, EV_READ | EV_PERSIST, on_ctl, w);
	w->ev_pid = event_new(s->base, w->pidfd, EV_READ, on_zygote_exit, w);
	if (!w->ev_ctl || !w->ev_pid) {
		(void)syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
		return -ENOMEM; /* its exit event is missing: reaped in warm_stop */
	}
	event_add(w->ev_ctl, NULL);
	event_add(w->ev_pid, NULL);
	w->state = W_STARTING;
	clock_gettime(CLOCK_MONOTONIC, &w->started);
	arm_watchdog(w, READY_WATCHDOG_S);
	r = send_init(w);
	if (r < 0) {
		log_error_errno(r, "zygote: cannot send its settings");
		(void)syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
	}
	return 0;
fail:
	cleanup_closep(&sp[0]);
	cleanup_closep(&sp[1]);
	(void)cg_job_destroy(&s->cg, &w->cg);
	cg_job_abandon(&w->cg); /* what a failed destroy kept */
	w->cg_made = false;
	return r;
}

/* Everything of a dead zygote goes, its spares too. `at_exit`: the loop ends, so the spares'
 * cgroups are removed now; otherwise from the loop, which must not wait for them. */
static void zygote_gone(struct warm *w, bool at_exit)
{
	struct job *pending[MAX_PENDING];
	unsigned n_pending = w->n_pending;
	siginfo_t si = { 0 };

	/* First: discarding a spare asks for a new one, and there is nobody to ask now. */
	if (w->state != W_DISABLED)
		w->state = W_DOWN;
	if (w->pidfd >= 0)
		(void)waitid((idtype_t)P_PIDFD, (id_t)w->pidfd, &si, WEXITED);
	if (w->ev_ctl)
		event_free(w->ev_ctl);
	if (w->ev_pid)
		event_free(w->ev_pid);
	w->ev_ctl = w->ev_pid = NULL;
	cleanup_closep(&w->ctl);
	cleanup_closep(&w->pidfd);
	arm_watchdog(w, 0);
	/* Requests it never answered: those spares never got a process. */
	memcpy(pending, w->pending, n_pending * sizeof(pending[0]));
	w->n_pending = 0;
	for (unsigned i = 0; i < n_pending; i++)
		job_spare_discard(pending[i]);
	/* And the spares it made: a new zygote serves only after its own canary ran in one of
	 * its own spares, so none of the old ones may be left for that canary to take. */
	if (at_exit)
		job_spares_stop(w->s);
	else
		job_spares_discard_all(w->s);
	/* A spare the zygote cloned but never reported is our child (CLONE_PARENT) without a
	 * pidfd here: reap it once it has given up (it fails at its first request to us). */
	reap_strays_later(w);
	if (w->cg_made) {
		(void)cg_job_remove_now(&w->s->cg, &w->cg);
		w->cg_made = false;
	}
}

static void on_zygote_exit(evutil_socket_t fd, short what, void *arg)
{
	struct warm *w = arg;
	siginfo_t si = { 0 };

	if (waitid((idtype_t)P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
	    si.si_pid == 0) {
		event_add(w->ev_pid, NULL);
		return;
	}
	log_error("zygote: exited (%s %d) after %llu ms; jobs run cold until it is back",
		  si.si_code == CLD_EXITED ? "status" : "signal", si.si_status,
		  (unsigned long long)ms_since(&w->started));
	/* A zygote that ran for a while gets restarted at once, one that keeps dying less and
	 * less often. */
	if (ms_since(&w->started) > 60000)
		w->backoff_s = 0;
	zygote_gone(w, false);
	if (w->state != W_DISABLED)
		zygote_restart_later(w);
	job_pump_queue(w->s);
}

static void on_restart(evutil_socket_t fd, short what, void *arg)
{
	struct warm *w = arg;
	int r;

	if (w->s->stopping || w->state == W_DISABLED)
		return;
	r = zygote_start(w);
	if (r < 0) {
		log_error_errno(r, "zygote: cannot start");
		zygote_restart_later(w);
	}
}

static void zygote_restart_later(struct warm *w)
{
	struct timeval tv = { w->backoff_s, 0 };

	w->state = W_DOWN;
	w->failures = 0;
	w->backoff_s = w->backoff_s ? (w->backoff_s * 2 > 60 ? 60 : w->backoff_s * 2) : 1;
	evtimer_add(w->ev_restart, &tv);
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct warm *w = arg;

	if (w->pidfd < 0)
		return;
	log_error("zygote: %s for %d s; killing it",
		  w->state == W_STARTING ? "not ready" : "a spare request unanswered",
		  w->state == W_STARTING ? READY_WATCHDOG_S : SPAWN_WATCHDOG_S);
	(void)syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
}

/* ---- control messages ---- */

static ssize_t recv_ctl(int fd, void *buf, size_t len, int *ret_fd)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 4)];
	struct iovec iov = { buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	*ret_fd = -1;
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *p = (int *)CMSG_DATA(c);
		for (size_t i = 0; i < k; i++) {
			if (*ret_fd < 0)
				*ret_fd = p[i];
			else
				close(p[i]);
		}
	}
	return n;
}

static void on_ready(struct warm *w, const struct zy_ready *m)
{
	if (m->err) {
		log_error_errno(-m->err, "zygote: cannot start CPython with numpy and pandas");
		(void)syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
		return;
	}
	arm_watchdog(w, 0);
	log_info("zygote: ready in %llu ms (CPython, numpy, pandas warmed up in %llu ms; %lld MiB "
		 "of its heap in huge pages; free blocks taken: pymalloc %lld, %lld left, glibc "
		 "%lld, %lld bytes left)",
		 (unsigned long long)ms_since(&w->started), (unsigned long long)m->init_ms,
		 m->huge_kib > 0 ? (long long)m->huge_kib >> 10 : 0LL,
		 m->py_taken > 0 ? (long long)m->py_taken : 0LL, (long long)m->py_left,
		 m->libc_taken > 0 ? (long long)m->libc_taken : 0LL, (long long)m->libc_left);
	if (m->py_taken < 0 || m->libc_taken < 0)
		(void)log_warn_errno((int)(m->py_taken < 0 ? m->py_taken : m->libc_taken),
				     "zygote: its heaps keep free blocks, so every warm job copies "
				     "more pages");
	if (m->huge_kib < 0)
		(void)log_warn_errno((int)m->huge_kib, "zygote: its heap stays in small pages, so "
						 "every warm job forks and exits slower");
	w->state = W_VERIFYING;
	warm_refill(w->s);
	if (w->on_ready && !w->s->stopping)
		w->on_ready(w->s);
}

static void on_spawned(struct warm *w, const struct zy_spawned *m, int pidfd)
{
	struct job *sp;
	int r;

	if (w->n_pending == 0) {
		cleanup_closep(&pidfd);
		return;
	}
	sp = w->pending[0];
	memmove(w->pending, w->pending + 1, --w->n_pending * sizeof(w->pending[0]));
	arm_watchdog(w, w->n_pending ? SPAWN_WATCHDOG_S : 0);
	if (m->err || pidfd < 0 || m->pid <= 0) {
		log_error_errno(m->err ? -m->err : -EPROTO, "zygote: cannot clone a spare");
		cleanup_closep(&pidfd);
		job_spare_discard(sp);
		warm_spare_failed(w->s);
		return;
	}
	r = job_spare_started(sp, (pid_t)m->pid, pidfd);
	if (r < 0)
		log_error_errno(r, "warm spare: cannot watch it");
	job_pump_queue(w->s);
}

static void on_ctl(evutil_socket_t fd, short what, void *arg)
{
	struct warm *w = arg;
	union {
		uint32_t kind;
		struct zy_ready ready;
		struct zy_spawned spawned;
	} m;
	int pidfd;

	for (;;) {
		ssize_t n = recv_ctl(fd, &m, sizeof(m), &pidfd);
		if (n == -EAGAIN || n == -EINTR)
			return;
		if (n <= 0) {
			/* EOF or an error: the zygote is going; nothing is asked of it any more, and
			 * its exit event does the rest. */
			event_del(w->ev_ctl);
			zygote_lost(w);
			return;
		}
		if (n == sizeof(m.ready) && m.kind == ZY_READY && w->state == W_STARTING)
			on_ready(w, &m.ready);
		else if (n == sizeof(m.spawned) && m.kind == ZY_SPAWNED)
			on_spawned(w, &m.spawned, pidfd);
		else {
			cleanup_closep(&pidfd);
			log_error("zygote: unexpected control message; killing it");
			(void)syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
			return;
		}
	}
}

static int request_spare(struct warm *w)
{
	struct zy_spawn m = { .kind = ZY_SPAWN, .seq = ++w->seq };
	int fds[ZY_SPAWN_FDS + ZY_MAX_CG_FDS];
	unsigned n_fds = 0;
	bool v2 = false;
	char cbuf[CMSG_SPACE(sizeof(fds))] = { 0 };
	struct iovec iov = { &m, sizeof(m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf };
	struct job *sp = job_spare_new(w->s, fds, ARRAY_SIZE(fds), &n_fds, &v2);
	ssize_t n;

	if (!sp)
		return -ENOMEM;
	m.cg_v2 = v2;
	m.n_cg = n_fds - ZY_SPAWN_FDS;
	mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
	n = sendmsg(w->ctl, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	/* The five ends were ours to close; the cgroup fds belong to the spare's job. */
	for (unsigned i = 0; i < ZY_SPAWN_FDS; i++)
		close(fds[i]);
	job_spare_sent(sp);
	if (n != (ssize_t)sizeof(m)) {
		int r = n < 0 ? -errno : -EIO;
		/* The zygote is gone (EPIPE) or stuck: ask nothing more of it before the discard,
		 * which asks for a spare again. */
		zygote_lost(w);
		job_spare_discard(sp);
		return r;
	}
	w->pending[w->n_pending++] = sp;
	if (w->n_pending == 1)
		arm_watchdog(w, SPAWN_WATCHDOG_S);
	return 0;
}

/* ---- the interface ---- */

void warm_refill(struct sbx *s)
{
	struct warm *w = s->warm;
	int r;

	if (!w || w->refilling || s->stopping || w->ctl < 0 ||
	    (w->state != W_VERIFYING && w->state != W_UP))
		return;
	w->refilling = true;
	while (s->n_spares < s->cfg->warm_spares && w->n_pending < MAX_PENDING &&
	       (w->state == W_VERIFYING || w->state == W_UP)) {
		r = request_spare(w);
		if (r < 0) {
			/* No slot, cgroup or fd now: the next job's start or end tries again. */
			if (r != -EAGAIN)
				log_error_errno(r, "warm spare: cannot request one");
			break;
		}
	}
	w->refilling = false;
}

static void on_refill(evutil_socket_t fd, short what, void *arg)
{
	warm_refill(arg);
}

void warm_refill_soon(struct sbx *s)
{
	struct timeval now = { 0, 0 };

	/* A zero timer runs after the I/O of the next loop round: the answer that was just
	 * queued goes out before a new spare's cgroup and clone are paid for. */
	if (s->warm && !evtimer_pending(s->warm->ev_refill, NULL))
		evtimer_add(s->warm->ev_refill, &now);
}

void warm_spare_failed(struct sbx *s)
{
	struct warm *w = s->warm;

	if (!w || ++w->failures < SPARE_FAILURES_MAX || w->pidfd < 0)
		return;
	log_error("zygote: %u spares in a row failed; restarting it", w->failures);
	w->failures = 0;
	(void)syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
}

bool warm_up(const struct sbx *s)
{
	/* Stopping, no spare is made any more: jobs still waiting for one run cold. */
	return s->warm && s->warm->state == W_UP && !s->stopping;
}

bool warm_verifying(const struct sbx *s)
{
	return s->warm && s->warm->state == W_VERIFYING;
}

bool warm_has_spare(const struct sbx *s)
{
	return job_spare_has_process(s);
}

void warm_verified(struct sbx *s, int r, const char *why)
{
	struct warm *w = s->warm;

	if (!w)
		return;
	if (r == 0) {
		w->state = W_UP;
		log_info("warm path: verified; jobs with the default limits run warm");
		job_pump_queue(s);
		return;
	}
	/* Never serve from a jail that failed its canary: cold from now on. */
	log_error("warm path: disabled: %s", why);
	w->state = W_DISABLED;
	if (w->pidfd >= 0)
		(void)syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
	zygote_gone(w, false);
	job_pump_queue(s);
}

void warm_set_on_ready(struct sbx *s, void (*ready_cb)(struct sbx *s))
{
	if (s->warm)
		s->warm->on_ready = ready_cb;
}

int warm_init(struct sbx *s)
{
	struct warm *w;
	int r;

	if (s->cfg->warm_spares == 0)
		return 0;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->s = s;
	w->pidfd = w->ctl = -1;
	w->ev_restart = evtimer_new(s->base, on_restart, w);
	w->ev_watchdog = evtimer_new(s->base, on_watchdog, w);
	w->ev_reap = evtimer_new(s->base, on_reap_strays, w);
	w->ev_refill = evtimer_new(s->base, on_refill, s);
	if (!w->ev_restart || !w->ev_watchdog || !w->ev_reap || !w->ev_refill) {
		if (w->ev_restart)
			event_free(w->ev_restart);
		if (w->ev_watchdog)
			event_free(w->ev_watchdog);
		if (w->ev_reap)
			event_free(w->ev_reap);
		if (w->ev_refill)
			event_free(w->ev_refill);
		free(w);
		return -ENOMEM;
	}
	s->warm = w;
	r = zygote_start(w);
	if (r < 0) {
		log_error_errno(r, "zygote: cannot start");
		zygote_restart_later(w);
	}
	return 0;
}

void warm_stop(struct sbx *s)
{
	struct warm *w = s->warm;

	if (!w)
		return;
	w->state = W_DISABLED;
	if (w->pidfd >= 0)
		(void)syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
	zygote_gone(w, true);
	reap_strays(w);
	event_free(w->ev_restart);
	event_free(w->ev_watchdog);
	event_free(w->ev_reap);
	event_free(w->ev_refill);
	free(w);
	s->warm = NULL;
}
