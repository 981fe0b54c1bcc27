/* job.c - see job.h. A job's fds: the script pipe (we write), the result, stdout and stderr
 * pipes (we read, into bounded buffers), the sync socket (the child's one request and its
 * failure report), the pidfd (exit), the deadline timer and, on cgroup v1, the OOM eventfd. */
#include "job.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "ids.h"
#include "jsonout.h"
#include "log.h"
#include "runframe.h"
#include "jail.h"
#include "warm.h"

struct obuf {
	char *data;
	size_t len, max;
	bool truncated;
};

/* A spare is a warm job's process made ahead of time (warm.c): jailed, in its cgroup, with its
 * slot, waiting for a script. job_start() moves it into a submitted job ("adoption"). */
enum job_state { J_QUEUED, J_WAITING, J_RUNNING, J_CLEANUP, J_SPARE };

struct job {
	TAILQ_ENTRY(job) link; /* in sbx.queue, .waiting, .active or .spares */
	struct sbx *s;
	enum job_state state;
	uint64_t client_id;
	job_done_fn done;
	void *arg;

	char *script;
	size_t script_len, script_off;
	uint32_t timeout_ms, memory_mb;

	int slot;
	pid_t pid;
	int pidfd, fd_script, fd_result, fd_out, fd_err, fd_sync;
	struct cg_job cg;
	bool cg_made;
	struct event *ev_pid, *ev_script, *ev_result, *ev_out, *ev_err, *ev_sync, *ev_timer,
		*ev_oom, *ev_retry;
	struct obuf out, err, result;
	struct timespec t0;
	unsigned cleanup_tries;

	bool timed_out, cancelled, oom_seen, exec_ok, reported;
	bool warm;       /* it runs (or ran) in an adopted spare */
	bool doomed;     /* a spare spare_dying() found killed: never adopted, soon reaped */
	bool warm_only;  /* the warm canary: a spare while the zygote is verified, else cold */
	bool internal;   /* a canary: not counted in running or queued, never refused */
	int fail_stage, fail_err;
	char fail_detail[52];
};

static void job_start(struct job *j);
static struct job *ready_spare(struct sbx *s, bool to_adopt);
static bool job_wait_for_spare(struct job *j, bool first);
static void on_script(evutil_socket_t fd, short what, void *arg);
static void job_finish(struct job *j);
static void job_result_arrived(struct job *j);

static uint64_t ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - t0->tv_sec) * 1000 +
	       (uint64_t)((now.tv_nsec - t0->tv_nsec) / 1000000);
}

static void obuf_add(struct obuf *b, const char *p, size_t n)
{
	size_t room = b->max - b->len;

	/* Past the cap the job keeps running; the excess is dropped and flagged. */
	if (n > room) {
		b->truncated = true;
		n = room;
	}
	if (n == 0)
		return;
	if (!b->data) {
		b->data = malloc(b->max ? b->max : 1);
		if (!b->data) {
			b->truncated = true;
			return;
		}
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static void free_event(struct event **ev)
{
	if (*ev) {
		event_free(*ev);
		*ev = NULL;
	}
}

struct job *job_new(struct sbx *s, uint64_t client_id, const struct proto_submit *sub,
		    job_done_fn done, void *arg)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->script = malloc(sub->script_len ? sub->script_len : 1);
	if (!j->script) {
		free(j);
		return NULL;
	}
	memcpy(j->script, sub->script, sub->script_len);
	j->script_len = sub->script_len;
	j->s = s;
	j->client_id = client_id;
	j->done = done;
	j->arg = arg;
	j->timeout_ms = sub->timeout_ms ? sub->timeout_ms : (uint32_t)s->cfg->timeout_ms;
	j->memory_mb = sub->memory_mb ? sub->memory_mb : (uint32_t)s->cfg->memory_mb;
	j->slot = -1;
	j->pidfd = j->fd_script = j->fd_result = j->fd_out = j->fd_err = j->fd_sync = -1;
	j->out.max = s->cfg->stdout_max;
	j->err.max = s->cfg->stderr_max;
	j->result.max = s->cfg->result_max + 8;
	return j;
}

uint64_t job_client_id(const struct job *j)
{
	return j->client_id;
}

void job_set_warm_only(struct job *j)
{
	j->warm_only = true;
}

void job_set_internal(struct job *j)
{
	j->internal = true;
}

bool job_is_warm(const struct job *j)
{
	return j->warm;
}

bool job_pid_is_tracked(const struct sbx *s, pid_t pid)
{
	const struct job *j;

	TAILQ_FOREACH (j, &s->active, link)
		if (j->pidfd >= 0 && j->pid == pid)
			return true;
	TAILQ_FOREACH (j, &s->spares, link)
		if (j->pidfd >= 0 && j->pid == pid)
			return true;
	return false;
}

bool job_spare_has_process(const struct sbx *s)
{
	return ready_spare((struct sbx *)s, false) != NULL;
}

static void job_free(struct job *j)
{
	free_event(&j->ev_pid);
	free_event(&j->ev_script);
	free_event(&j->ev_result);
	free_event(&j->ev_out);
	free_event(&j->ev_err);
	free_event(&j->ev_sync);
	free_event(&j->ev_timer);
	free_event(&j->ev_oom);
	free_event(&j->ev_retry);
	close_fd(&j->pidfd);
	close_fd(&j->fd_script);
	close_fd(&j->fd_result);
	close_fd(&j->fd_out);
	close_fd(&j->fd_err);
	close_fd(&j->fd_sync);
	/* A cgroup given up on (still busy after the retries) leaves its fds here. */
	if (j->cg_made)
		cg_job_abandon(&j->cg);
	free(j->out.data);
	free(j->err.data);
	free(j->result.data);
	free(j->script);
	free(j);
}

static void report(struct job *j, const struct proto_result *r)
{
	job_done_fn done = j->done;

	j->done = NULL;
	if (done)
		done(j, r, j->arg);
}

static void report_simple(struct job *j, uint16_t verdict, const char *msg)
{
	struct proto_result r = { .verdict = verdict, .message = msg,
				  .message_len = (uint32_t)strlen(msg) };
	report(j, &r);
}

/* A job with the daemon's default limits runs warm when the warm path is up: spares are made
 * with those limits. Others, and every job while the zygote is down, run cold. */
static bool job_wants_warm(const struct job *j)
{
	if (j->warm_only)
		return warm_verifying(j->s);
	return j->timeout_ms == j->s->cfg->timeout_ms && j->memory_mb == j->s->cfg->memory_mb &&
	       warm_up(j->s);
}

static void job_launch(struct job *j);

static ssize_t read_proc_file(const char *path, char *buf, size_t len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n >= 0)
		buf[n] = 0;
	return n;
}

/* Killed from outside (or by the host's OOM killer) and not yet reaped: exiting, or with
 * SIGKILL pending (spare_exited() sees the rest). Such a spare must never get a job: the job
 * would be reported killed. */
static bool spare_dying(const struct job *sp)
{
	static const char *const pending[] = { "\nSigPnd:\t", "\nShdPnd:\t" };
	char path[64], buf[2048];
	const char *p;
	unsigned long flags = 0;
	char state = 0;

	/* stat: "pid (comm) state ppid pgrp session tty tpgid flags ..."; PF_EXITING is 0x4. */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)sp->pid);
	if (read_proc_file(path, buf, sizeof(buf)) <= 0 || !(p = strrchr(buf, ')')) ||
	    sscanf(p + 1, " %c %*d %*d %*d %*d %*d %lu", &state, &flags) != 2)
		return true;
	if (state == 'Z' || state == 'X' || (flags & 0x4))
		return true;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)sp->pid);
	if (read_proc_file(path, buf, sizeof(buf)) <= 0)
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(pending); i++) {
		p = strstr(buf, pending[i]);
		if (p && strtoull(p + strlen(pending[i]), NULL, 16) & (1ULL << (SIGKILL - 1)))
			return true;
	}
	return false;
}

static bool spare_exited(const struct job *sp)
{
	siginfo_t si = { 0 };

	return waitid((idtype_t)P_PIDFD, (id_t)sp->pidfd, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
	       si.si_pid != 0;
}

/* A spare for a job: a ready one (jailed and rehearsed, its sync socket closed), else the
 * one that started first, which is the nearest to ready. Unstarted ones have no process.
 * Only the spare about to be adopted (to_adopt) is checked for a pending kill in /proc:
 * the other callers only ask whether there is one, several times per job, and two /proc
 * reads per spare each time cost more than anything else sandboxd does for a job. If the
 * spare they saw turns out doomed at adoption, the next is taken, or the job waits for one
 * (job_launch). */
static struct job *ready_spare(struct sbx *s, bool to_adopt)
{
	struct job *sp, *best;

	for (;;) {
		best = NULL;
		TAILQ_FOREACH (sp, &s->spares, link) {
			if (sp->pidfd < 0 || sp->doomed || spare_exited(sp))
				continue;
			if (sp->exec_ok) {
				best = sp;
				break;
			}
			if (!best || sp->t0.tv_sec < best->t0.tv_sec ||
			    (sp->t0.tv_sec == best->t0.tv_sec && sp->t0.tv_nsec < best->t0.tv_nsec))
				best = sp;
		}
		if (!best || !to_adopt || !spare_dying(best))
			return best;
		/* Killed now, whether it was already (its exit, seen on the pidfd, removes it and
		 * makes the next, as for any dead spare) or spare_dying() could not read /proc:
		 * a spare skipped for good but left alive would hold its place in n_spares, and
		 * jobs would wait for spares that are never made. */
		best->doomed = true;
		(void)syscall(SYS_pidfd_send_signal, best->pidfd, SIGKILL, NULL, 0);
	}
}

/* Admitted jobs (they hold a place in `running`) waiting for a spare, oldest first; then the
 * queue while places are free. A warm job waits for the next spare (milliseconds away) rather
 * than pay for a cold start; when the warm path is down, waiting jobs run cold. */
void job_pump_queue(struct sbx *s)
{
	struct job *j;

	while ((j = TAILQ_FIRST(&s->waiting)) &&
	       (!job_wants_warm(j) || ready_spare(s, false) || s->n_spares == 0)) {
		TAILQ_REMOVE(&s->waiting, j, link);
		job_launch(j);
	}
	while (s->running < s->cfg->max_running && (j = TAILQ_FIRST(&s->queue))) {
		TAILQ_REMOVE(&s->queue, j, link);
		s->queued--;
		job_start(j);
	}
}

int job_submit(struct job *j)
{
	struct sbx *s = j->s;

	/* The warm canary runs beside the jobs, in a spare (whose slot is its own): it is not
	 * counted in running or queued, and no job waits for it. */
	if (j->internal || (s->running < s->cfg->max_running && TAILQ_EMPTY(&s->queue))) {
		job_start(j);
		return 0;
	}
	if (s->queued >= s->cfg->max_queued) {
		job_free(j);
		return -EBUSY;
	}
	j->state = J_QUEUED;
	TAILQ_INSERT_TAIL(&s->queue, j, link);
	s->queued++;
	return 0;
}

static void job_kill(struct job *j)
{
	/* SIGKILL to the job's init: the kernel then kills every task in its PID namespace,
	 * which holds the whole job (setns is denied). The pidfd cannot hit a recycled pid. */
	if (j->pidfd >= 0)
		(void)syscall(SYS_pidfd_send_signal, j->pidfd, SIGKILL, NULL, 0);
	if (j->cg_made)
		(void)cg_job_kill(&j->cg);
}

void job_cancel(struct job *j)
{
	struct sbx *s = j->s;

	if (j->state == J_QUEUED || j->state == J_WAITING) {
		if (j->state == J_QUEUED) {
			TAILQ_REMOVE(&s->queue, j, link);
			s->queued--;
		} else {
			TAILQ_REMOVE(&s->waiting, j, link);
			s->running -= !j->internal;
		}
		report_simple(j, PROTO_V_CANCELLED, "Job cancelled");
		job_free(j);
		job_pump_queue(s);
		return;
	}
	if (j->state == J_RUNNING && !j->cancelled) {
		j->cancelled = true;
		job_kill(j);
	}
}

void job_detach(struct job *j)
{
	j->done = NULL;
	job_cancel(j);
}

/* ---- events ---- */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;

	/* The deadline is enforced from outside with SIGKILL; the job cannot catch it. */
	j->timed_out = true;
	job_kill(j);
}

static void on_oom(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;
	uint64_t v;

	/* cgroup v1 killed one task; finish the job as a whole, as memory.oom.group would. */
	if (read(fd, &v, sizeof(v)) == sizeof(v)) {
		j->oom_seen = true;
		job_kill(j);
	}
}

/* Reads what is there; true at EOF or on an error (every writer is gone). */
static bool drain(int fd, struct obuf *b)
{
	char buf[65536];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			obuf_add(b, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return !(n < 0 && errno == EAGAIN);
	}
}

/* Drains a pipe for the last time: its event goes first, then the fd. The other order would
 * leave the pipe in the epoll set whenever a job child still being set up holds a copy of it
 * (clone3 copies all our fds, close_range comes late): epoll_ctl(DEL) on the closed number
 * fails, the stale entry keeps reporting EOF under that number, and the next fd to get it (a
 * pidfd) fires at once, so job_finish() waited on a live child and the loop hung. */
static void drain_and_close(int *fd, struct event **ev, struct obuf *b)
{
	if (*fd >= 0)
		(void)drain(*fd, b);
	free_event(ev);
	close_fd(fd);
}

static void on_pipe(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;

	if (fd == j->fd_out && drain(j->fd_out, &j->out))
		drain_and_close(&j->fd_out, &j->ev_out, &j->out);
	else if (fd == j->fd_err && drain(j->fd_err, &j->err))
		drain_and_close(&j->fd_err, &j->ev_err, &j->err);
	else if (fd == j->fd_result) {
		if (drain(j->fd_result, &j->result))
			drain_and_close(&j->fd_result, &j->ev_result, &j->result);
		if (j->state == J_RUNNING && rf_complete((uint8_t *)j->result.data, j->result.len))
			job_result_arrived(j);
	}
}

static void on_script(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;

	while (j->script_off < j->script_len) {
		ssize_t n = write(j->fd_script, j->script + j->script_off,
				  j->script_len - j->script_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return; /* the event fires again when the pipe has room */
		if (n <= 0)
			break; /* EPIPE: the child is gone; its exit tells the rest */
		j->script_off += (size_t)n;
	}
	/* EOF tells the runner the script is complete. */
	free_event(&j->ev_script);
	close_fd(&j->fd_script);
}

static void on_sync(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;
	struct spawn_msg m;
	ssize_t n = recv(fd, &m, sizeof(m), MSG_DONTWAIT);
	int r;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == sizeof(m) && m.kind == SPAWN_MSG_NEED_MAPS) {
		if (j->state != J_RUNNING && j->state != J_SPARE)
			return; /* the child is dead already; nothing to map */
		r = ids_write_maps(j->pid, j->pidfd, (uid_t)(j->s->cfg->uid_base + (uint64_t)j->slot));
		if (r == 0)
			r = ids_pin_oom_score(j->pid, j->pidfd);
		if (r < 0) {
			j->fail_stage = ST_ID_MAP;
			j->fail_err = -r;
			job_kill(j);
			return;
		}
		m = (struct spawn_msg){ .kind = SPAWN_MSG_MAPS_DONE };
		if (send(fd, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT) != sizeof(m))
			job_kill(j);
		return;
	}
	if (n == sizeof(m) && m.kind == SPAWN_MSG_FAILED) {
		j->fail_stage = m.stage;
		j->fail_err = m.err;
		memcpy(j->fail_detail, m.detail, sizeof(m.detail));
		j->fail_detail[sizeof(j->fail_detail) - 1] = 0;
		return;
	}
	/* EOF: execve closed the child's end (close-on-exec), or a warm spare closed it after
	 * its last step, so the jail is complete. */
	if (n == 0 && !j->fail_stage) {
		j->exec_ok = true;
		if (j->state == J_SPARE)
			log_debug("warm spare: ready %llu ms after it was asked for",
				  (unsigned long long)ms_since(&j->t0));
	}
	free_event(&j->ev_sync);
	close_fd(&j->fd_sync);
}

static void on_job_exit(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;
	siginfo_t si = { 0 };

	/* A pidfd is readable once its process exited; check without blocking anyway, so that
	 * a spurious wake-up can never stall the whole loop in waitid(). WNOWAIT leaves the
	 * zombie for job_finish() to reap. */
	if (waitid((idtype_t)P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
	    si.si_pid == 0) {
		event_add(j->ev_pid, NULL);
		return;
	}
	job_finish(j);
}

/* ---- start ---- */

static int make_pipe(int fds[2], bool parent_reads)
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	/* Only our end is non-blocking; the runner sees ordinary blocking pipes. */
	if (fcntl(fds[parent_reads ? 0 : 1], F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* The child's ends of a job's pipes and sync socket, and its cgroup fds. */
struct child_ends {
	int script_r, result_w, out_w, err_w, sync;
};

static void close_child_ends(struct child_ends *c)
{
	cleanup_closep(&c->script_r);
	cleanup_closep(&c->result_w);
	cleanup_closep(&c->out_w);
	cleanup_closep(&c->err_w);
	cleanup_closep(&c->sync);
}

/* The cgroup, the pipes and the sync socket: ours go into the job, the child's into *c (the
 * caller closes them once the child has its copies). Limits are the job's own. */
static int job_prepare(struct job *j, struct child_ends *c)
{
	struct sbx *s = j->s;
	const struct config *cfg = s->cfg;
	int p_script[2] = { -1, -1 }, p_res[2] = { -1, -1 }, p_out[2] = { -1, -1 },
	    p_err[2] = { -1, -1 }, sp[2] = { -1, -1 };
	struct cg_limits lim = { .memory_bytes = (uint64_t)j->memory_mb << 20,
				 .pids_max = cfg->pids_max,
				 .cpu_percent = cfg->cpu_percent };
	int r;

	*c = (struct child_ends){ -1, -1, -1, -1, -1 };
	r = cg_job_create(&s->cg, &lim, j->slot, &j->cg);
	if (r < 0) {
		j->fail_stage = ST_CGROUP;
		return r;
	}
	j->cg_made = true;
	if ((r = make_pipe(p_script, false)) < 0 || (r = make_pipe(p_res, true)) < 0 ||
	    (r = make_pipe(p_out, true)) < 0 || (r = make_pipe(p_err, true)) < 0)
		goto out;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		r = -errno;
		goto out;
	}
	/* A script up to the protocol cap fits the pipe at once in most cases (spares: 64 KiB,
	 * the default; a longer script is written as the runner reads). */
	if (j->script)
		(void)fcntl(p_script[1], F_SETPIPE_SZ,
			    (int)(j->script_len < 4096 ? 4096 : j->script_len));
	j->fd_script = steal_fd(&p_script[1]);
	j->fd_result = steal_fd(&p_res[0]);
	j->fd_out = steal_fd(&p_out[0]);
	j->fd_err = steal_fd(&p_err[0]);
	j->fd_sync = steal_fd(&sp[0]);
	(void)fcntl(j->fd_sync, F_SETFL, O_NONBLOCK);
	*c = (struct child_ends){ steal_fd(&p_script[0]), steal_fd(&p_res[1]), steal_fd(&p_out[1]),
				  steal_fd(&p_err[1]), steal_fd(&sp[1]) };
out:
	for (int i = 0; i < 2; i++) {
		cleanup_closep(&p_script[i]);
		cleanup_closep(&p_res[i]);
		cleanup_closep(&p_out[i]);
		cleanup_closep(&p_err[i]);
		cleanup_closep(&sp[i]);
	}
	return r;
}

/* Cold: clone the job's init from the daemon; it execs a fresh interpreter. */
static int job_spawn(struct job *j)
{
	struct sbx *s = j->s;
	const struct config *cfg = s->cfg;
	struct child_ends c;
	struct spawn_req q;
	int r;

	r = job_prepare(j, &c);
	if (r < 0)
		goto out;
	q = (struct spawn_req){ .jail = { .plan = &s->plan,
					  .filter = &s->filter,
					  .cg_procs = j->cg.procs_fd,
					  .n_cg_procs = CG_V1_N,
					  .timeout_ms = j->timeout_ms,
					  .pids_max = cfg->pids_max,
					  .fsize_bytes = cfg->tmp_size_mb << 20,
					  .script_r = c.script_r,
					  .result_w = c.result_w,
					  .out_w = c.out_w,
					  .err_w = c.err_w,
					  .sync_child = c.sync },
				.cg_clone_fd = cg_job_clone_fd(&j->cg),
				.python = cfg->python };
	clock_gettime(CLOCK_MONOTONIC, &j->t0);
	r = spawn_start(&q, &j->pid, &j->pidfd);
	if (r < 0)
		j->fail_stage = ST_NONE;
out:
	/* The child's ends are closed here; the child has its copies. */
	close_child_ends(&c);
	cg_job_close_child_fds(&j->cg);
	return r;
}

/* Takes a free slot: its host uid is this job's (or spare's) alone until it is gone. */
static int take_slot(struct sbx *s)
{
	for (unsigned i = 0; i < s->n_slots; i++)
		if (!s->slot_used[i]) {
			s->slot_used[i] = true;
			return (int)i;
		}
	return -1;
}

/* Gives the slot back once its job's cgroup is gone (cg_result 0). If it could not be
 * removed, a task may still be in it, and so in the cgroups the slot keeps for its next job
 * (cgroup.h, struct cg_slot): the next job gets new ones. */
static void free_slot(struct sbx *s, int slot, int cg_result)
{
	if (slot < 0)
		return;
	if (cg_result < 0)
		cg_slot_retire(&s->cg, slot);
	s->slot_used[slot] = false;
}

/* Moves everything of the spare into the job; the spare's shell is freed. */
static void job_adopt(struct job *j, struct job *sp)
{
	struct sbx *s = j->s;

	TAILQ_REMOVE(&s->spares, sp, link);
	s->n_spares--;
	free_event(&sp->ev_pid);
	free_event(&sp->ev_sync);
	free_event(&sp->ev_result);
	free_event(&sp->ev_out);
	free_event(&sp->ev_err);
	j->slot = sp->slot;
	j->pid = sp->pid;
	j->pidfd = steal_fd(&sp->pidfd);
	j->fd_script = steal_fd(&sp->fd_script);
	j->fd_result = steal_fd(&sp->fd_result);
	j->fd_out = steal_fd(&sp->fd_out);
	j->fd_err = steal_fd(&sp->fd_err);
	j->fd_sync = steal_fd(&sp->fd_sync);
	j->cg = sp->cg;
	j->cg_made = sp->cg_made;
	sp->cg_made = false;
	j->exec_ok = sp->exec_ok;
	j->fail_stage = sp->fail_stage;
	j->fail_err = sp->fail_err;
	memcpy(j->fail_detail, sp->fail_detail, sizeof(j->fail_detail));
	/* Whatever the spare wrote before (nothing, unless its set-up failed) is the job's. */
	j->out = sp->out;
	j->err = sp->err;
	j->result = sp->result;
	j->out.max = s->cfg->stdout_max;
	j->err.max = s->cfg->stderr_max;
	j->result.max = s->cfg->result_max + 8;
	sp->out.data = sp->err.data = sp->result.data = NULL;
	j->warm = true;
	job_free(sp);
	/* The deadline and wall time count from now, when the script goes in. */
	clock_gettime(CLOCK_MONOTONIC, &j->t0);
}

/* Admits the job: it holds its place in `running` from now on. */
static void job_start(struct job *j)
{
	struct sbx *s = j->s;

	s->running += !j->internal;
	if (job_wants_warm(j) && !ready_spare(s, false) && job_wait_for_spare(j, j->warm_only))
		return;
	job_launch(j);
}

/* Holds an admitted job (its place in `running` kept) until a spare is ready: true. Only for
 * a spare that is on its way; when none can be made (no cgroup, no memory), false, and the
 * job runs cold and says what failed, rather than wait forever. */
static bool job_wait_for_spare(struct job *j, bool first)
{
	struct sbx *s = j->s;

	warm_refill(s);
	if (s->n_spares == 0)
		return false;
	j->state = J_WAITING;
	if (first)
		TAILQ_INSERT_HEAD(&s->waiting, j, link);
	else
		TAILQ_INSERT_TAIL(&s->waiting, j, link);
	return true;
}

/* Into a spare, or cold. */
static void job_launch(struct job *j)
{
	struct sbx *s = j->s;
	struct event_base *b = s->base;
	struct timeval tv = { j->timeout_ms / 1000, (j->timeout_ms % 1000) * 1000 };
	bool warm = job_wants_warm(j);
	struct job *sp = warm ? ready_spare(s, true) : NULL;
	int r = 0;

	/* The spare it was admitted for was killed a moment ago (ready_spare): it waits for the
	 * next one at the head of the line, where it was. */
	if (!sp && warm && job_wait_for_spare(j, true))
		return;
	if (!sp)
		j->slot = take_slot(s);
	j->state = J_RUNNING;
	TAILQ_INSERT_TAIL(&s->active, j, link);

	if (sp)
		job_adopt(j, sp);
	else if (j->slot < 0)
		r = -EAGAIN; /* every host uid is held (spares still being removed): fail closed */
	else
		r = job_spawn(j);
	if (r < 0) {
		j->fail_err = -r;
		if (!j->fail_stage)
			j->fail_stage = ST_NONE;
		log_error_errno(r, "job %llu: cannot start", (unsigned long long)j->client_id);
		job_finish(j);
		return;
	}
	j->ev_pid = event_new(b, j->pidfd, EV_READ, on_job_exit, j);
	j->ev_timer = evtimer_new(b, on_timer, j);
	j->ev_sync = j->fd_sync >= 0 ? event_new(b, j->fd_sync, EV_READ | EV_PERSIST, on_sync, j)
				     : NULL;
	j->ev_script = event_new(b, j->fd_script, EV_WRITE | EV_PERSIST, on_script, j);
	j->ev_result = event_new(b, j->fd_result, EV_READ | EV_PERSIST, on_pipe, j);
	j->ev_out = event_new(b, j->fd_out, EV_READ | EV_PERSIST, on_pipe, j);
	j->ev_err = event_new(b, j->fd_err, EV_READ | EV_PERSIST, on_pipe, j);
	if (j->cg.oom_efd >= 0)
		j->ev_oom = event_new(b, j->cg.oom_efd, EV_READ | EV_PERSIST, on_oom, j);
	if (!j->ev_pid || !j->ev_timer || (j->fd_sync >= 0 && !j->ev_sync) || !j->ev_script ||
	    !j->ev_result || !j->ev_out || !j->ev_err || (j->cg.oom_efd >= 0 && !j->ev_oom)) {
		/* Out of memory: never leave a job unwatched. */
		j->fail_stage = ST_NONE;
		j->fail_err = ENOMEM;
		job_kill(j);
		siginfo_t si;
		(void)waitid((idtype_t)P_PIDFD, (id_t)j->pidfd, &si, WEXITED);
		job_finish(j);
		return;
	}
	event_add(j->ev_pid, NULL);
	/* The deadline counts from now, after the clone: libevent's cached loop time is from
	 * before the cgroup and clone3, and a timer armed on it fired a few ms early. */
	event_base_update_cache_time(b);
	event_add(j->ev_timer, &tv);
	if (j->ev_sync)
		event_add(j->ev_sync, NULL);
	event_add(j->ev_script, NULL);
	event_add(j->ev_result, NULL);
	event_add(j->ev_out, NULL);
	event_add(j->ev_err, NULL);
	if (j->ev_oom)
		event_add(j->ev_oom, NULL);
	/* A warm job's script goes in at once (the pipe has room for the common case), before
	 * anything else in the loop. */
	if (sp)
		on_script(j->fd_script, EV_WRITE, j);
	/* Making a spare costs a cgroup, a clone and a rehearsal: CPU the job would compete
	 * for on a small machine. While ready spares are left, the next one is made when this
	 * job has answered (job_report_result); when none are left, now. */
	if (!ready_spare(s, false) || !TAILQ_EMPTY(&s->waiting))
		warm_refill(s);
}

/* ---- spares (the warm path; warm.c decides when) ---- */

struct job *job_spare_new(struct sbx *s, int *fds, unsigned max_fds, unsigned *n_fds,
			  bool *cg_v2)
{
	struct job *sp = calloc(1, sizeof(*sp));
	struct child_ends c;
	unsigned n = 0;
	int r;

	if (!sp)
		return NULL;
	sp->s = s;
	sp->state = J_SPARE;
	sp->timeout_ms = (uint32_t)s->cfg->timeout_ms;
	sp->memory_mb = (uint32_t)s->cfg->memory_mb;
	sp->pidfd = sp->fd_script = sp->fd_result = sp->fd_out = sp->fd_err = sp->fd_sync = -1;
	sp->out.max = s->cfg->stdout_max;
	sp->err.max = s->cfg->stderr_max;
	sp->result.max = s->cfg->result_max + 8;
	clock_gettime(CLOCK_MONOTONIC, &sp->t0);
	sp->slot = take_slot(s);
	if (sp->slot < 0 || (r = job_prepare(sp, &c)) < 0) {
		free_slot(s, sp->slot, sp->cg_made ? cg_job_destroy(&s->cg, &sp->cg) : 0);
		job_free(sp);
		return NULL;
	}
	/* The order of zyproto.h: the five ends, then the cgroup fds. */
	fds[n++] = steal_fd(&c.script_r);
	fds[n++] = steal_fd(&c.result_w);
	fds[n++] = steal_fd(&c.out_w);
	fds[n++] = steal_fd(&c.err_w);
	fds[n++] = steal_fd(&c.sync);
	*cg_v2 = sp->cg.version == 2;
	if (*cg_v2)
		fds[n++] = sp->cg.dir_fd[0]; /* still ours: the caller must not close it */
	else
		for (int i = 0; i < CG_V1_N && n < max_fds; i++)
			if (sp->cg.procs_fd[i] >= 0)
				fds[n++] = sp->cg.procs_fd[i];
	*n_fds = n;
	TAILQ_INSERT_TAIL(&s->spares, sp, link);
	s->n_spares++;
	return sp;
}

void job_spare_sent(struct job *sp)
{
	/* The zygote (and through it the spare) has its copies of the cgroup.procs fds. */
	cg_job_close_child_fds(&sp->cg);
}

static void on_spare_exit(evutil_socket_t fd, short what, void *arg);

int job_spare_started(struct job *sp, pid_t pid, int pidfd)
{
	struct event_base *b = sp->s->base;

	sp->pid = pid;
	sp->pidfd = pidfd;
	/* The runner leaves fd 3 alone until a script arrives: nothing to write yet. */
	sp->ev_pid = event_new(b, sp->pidfd, EV_READ, on_spare_exit, sp);
	sp->ev_sync = event_new(b, sp->fd_sync, EV_READ | EV_PERSIST, on_sync, sp);
	sp->ev_result = event_new(b, sp->fd_result, EV_READ | EV_PERSIST, on_pipe, sp);
	sp->ev_out = event_new(b, sp->fd_out, EV_READ | EV_PERSIST, on_pipe, sp);
	sp->ev_err = event_new(b, sp->fd_err, EV_READ | EV_PERSIST, on_pipe, sp);
	if (!sp->ev_pid || !sp->ev_sync || !sp->ev_result || !sp->ev_out || !sp->ev_err) {
		job_spare_discard(sp);
		return -ENOMEM;
	}
	event_add(sp->ev_pid, NULL);
	event_add(sp->ev_sync, NULL);
	event_add(sp->ev_result, NULL);
	event_add(sp->ev_out, NULL);
	event_add(sp->ev_err, NULL);
	return 0;
}

static void spare_cleanup(struct job *sp);

/* SIGKILL and reap, at once: for paths that tear down without the event loop's help. */
static void kill_and_reap(int pidfd)
{
	siginfo_t si;

	if (pidfd < 0)
		return;
	(void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
	(void)waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED);
}

void job_spare_discard(struct job *sp)
{
	kill_and_reap(sp->pidfd);
	spare_cleanup(sp);
}

static void on_spare_exit(evutil_socket_t fd, short what, void *arg)
{
	struct job *sp = arg;
	siginfo_t si = { 0 };

	if (waitid((idtype_t)P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG) == 0 && si.si_pid == 0) {
		event_add(sp->ev_pid, NULL);
		return;
	}
	/* A spare only dies before its job if its jail could not be built (or it was killed):
	 * say why once here, and let warm.c decide whether to go on making spares. */
	for (int i = 0; i < 4 && sp->fd_sync >= 0; i++)
		on_sync(sp->fd_sync, EV_READ, sp);
	if (sp->fail_stage)
		log_error("warm spare: %s%s%s: %s", spawn_stage_name(sp->fail_stage),
			  sp->fail_detail[0] ? " " : "", sp->fail_detail,
			  sp->fail_err ? strerror(sp->fail_err) : "failed");
	else
		log_error("warm spare: exited before its job (%s %d)",
			  si.si_code == CLD_EXITED ? "status" : "signal", si.si_status);
	warm_spare_failed(sp->s);
	spare_cleanup(sp);
}

static void on_spare_cleanup_retry(evutil_socket_t fd, short what, void *arg);

/* Off the spare list, its events and pidfd gone: nothing can hand it to a job any more. */
static void spare_detach(struct job *sp)
{
	if (sp->state != J_SPARE)
		return;
	TAILQ_REMOVE(&sp->s->spares, sp, link);
	sp->s->n_spares--;
	sp->state = J_CLEANUP;
	free_event(&sp->ev_pid);
	free_event(&sp->ev_sync);
	free_event(&sp->ev_result);
	free_event(&sp->ev_out);
	free_event(&sp->ev_err);
	close_fd(&sp->pidfd);
}

/* Off the spare list at once; the slot is freed when the cgroup is gone, as for a job. */
static void spare_cleanup(struct job *sp)
{
	struct sbx *s = sp->s;
	struct timeval tv = { 0, 20000 };
	int r = 0;

	spare_detach(sp);
	if (sp->cg_made) {
		(void)cg_job_kill(&sp->cg);
		r = cg_job_destroy(&s->cg, &sp->cg);
	}
	if (r == -EBUSY && ++sp->cleanup_tries < 500) {
		if (!sp->ev_retry) {
			sp->ev_retry = evtimer_new(s->base, on_spare_cleanup_retry, sp);
			/* Listed while it waits, so that a daemon stopping meanwhile removes it. */
			if (sp->ev_retry)
				TAILQ_INSERT_TAIL(&s->spares_gone, sp, link);
		}
		if (sp->ev_retry) {
			evtimer_add(sp->ev_retry, &tv);
			return;
		}
	}
	if (sp->ev_retry)
		TAILQ_REMOVE(&s->spares_gone, sp, link);
	if (r < 0)
		log_error_errno(r, "warm spare: cannot remove cgroup %s", sp->cg.name);
	free_slot(s, sp->slot, r);
	job_free(sp);
	warm_refill_soon(s);
	job_pump_queue(s);
}

static void on_spare_cleanup_retry(evutil_socket_t fd, short what, void *arg)
{
	spare_cleanup(arg);
}

/* A job or spare already off its list: killed, reaped, its cgroup removed and its slot freed
 * now, not at the next start. */
static void job_remove_now(struct job *j)
{
	int r = 0;

	kill_and_reap(j->pidfd);
	if (j->cg_made)
		r = cg_job_remove_now(&j->s->cg, &j->cg);
	free_slot(j->s, j->slot, r);
	job_free(j);
}

void job_stop_all(struct sbx *s)
{
	struct job *j;

	/* Answered jobs (the answer goes out before the jail is torn down) and jobs still
	 * running when the loop ends: kill, reap, and remove their cgroups now, not at the next
	 * start. Their clients are gone with the loop. */
	while ((j = TAILQ_FIRST(&s->active))) {
		TAILQ_REMOVE(&s->active, j, link);
		j->done = NULL;
		job_remove_now(j);
	}
}

void job_spares_discard_all(struct sbx *s)
{
	struct job_list gone = TAILQ_HEAD_INITIALIZER(gone);
	struct job *sp;

	/* All off the list before the first is cleaned up: cleaning up pumps the queue, which
	 * must find none of them. Their cgroups then go as a lost spare's do, retried from the
	 * loop rather than waited for in it. */
	while ((sp = TAILQ_FIRST(&s->spares))) {
		kill_and_reap(sp->pidfd);
		spare_detach(sp);
		TAILQ_INSERT_TAIL(&gone, sp, link);
	}
	while ((sp = TAILQ_FIRST(&gone))) {
		TAILQ_REMOVE(&gone, sp, link);
		spare_cleanup(sp);
	}
}

void job_spares_stop(struct sbx *s)
{
	struct job *sp;

	while ((sp = TAILQ_FIRST(&s->spares))) {
		kill_and_reap(sp->pidfd);
		spare_detach(sp);
		job_remove_now(sp);
	}
	/* And those already killed whose cgroups were still busy: their retries end with the
	 * loop. */
	while ((sp = TAILQ_FIRST(&s->spares_gone))) {
		TAILQ_REMOVE(&s->spares_gone, sp, link);
		job_remove_now(sp);
	}
}

/* ---- finish ---- */

static const char *signal_text(int sig)
{
	switch (sig) {
	case SIGSYS:
		return "SIGSYS: a forbidden system call";
	case SIGKILL:
		return "SIGKILL";
	case SIGSEGV:
		return "SIGSEGV: a segmentation fault";
	case SIGABRT:
		return "SIGABRT";
	case SIGBUS:
		return "SIGBUS";
	case SIGFPE:
		return "SIGFPE";
	default:
		return sigabbrev_np(sig) ? sigabbrev_np(sig) : "unknown";
	}
}

/* Decides the verdict from what the daemon saw itself first, then from the runner's frame. */
static void build_result(struct job *j, const siginfo_t *si, const struct cg_stats *st,
			 struct proto_result *r, char *msg, size_t msglen, char **ret_json)
{
	struct rf_frame f;
	const char *why;
	size_t json_len = 0;
	int rc;

	*ret_json = NULL;
	msg[0] = 0;
	r->exit_code = si->si_code == CLD_EXITED ? (uint32_t)si->si_status
						 : 128 + (uint32_t)si->si_status;
	if (j->cancelled) {
		r->verdict = PROTO_V_CANCELLED;
		snprintf(msg, msglen, "Job cancelled");
	} else if (j->fail_stage || !j->exec_ok) {
		/* The jail was not complete: the script never ran (fail closed). */
		r->verdict = PROTO_V_SANDBOX_ERROR;
		snprintf(msg, msglen, "Sandbox error: %s%s%s: %s", spawn_stage_name(j->fail_stage),
			 j->fail_detail[0] ? " " : "", j->fail_detail,
			 j->fail_err ? strerror(j->fail_err) : "the jail did not start");
	} else if (j->timed_out) {
		r->verdict = PROTO_V_TIMEOUT;
		snprintf(msg, msglen, "Script execution timed out");
	} else if (j->oom_seen || st->oom_kills > 0) {
		r->verdict = PROTO_V_OOM;
		snprintf(msg, msglen, "Script exceeded the memory limit (%u MiB)", j->memory_mb);
	} else if (j->result.truncated) {
		r->verdict = PROTO_V_BAD_RESULT;
		snprintf(msg, msglen, "Result is too large (over %llu bytes)",
			 (unsigned long long)j->s->cfg->result_max);
	} else if ((rc = rf_parse((uint8_t *)j->result.data, j->result.len, &f, &why)) == -ENODATA) {
		if (si->si_code == CLD_EXITED) {
			r->verdict = PROTO_V_ERROR;
			snprintf(msg, msglen,
				 "Script execution error: the script exited with status %d before "
				 "main() returned",
				 si->si_status);
		} else if (si->si_status == SIGXCPU) {
			r->verdict = PROTO_V_TIMEOUT;
			snprintf(msg, msglen, "Script execution timed out");
		} else {
			r->verdict = PROTO_V_KILLED;
			snprintf(msg, msglen, "Script execution error: killed by signal %d (%s)",
				 si->si_status, signal_text(si->si_status));
		}
	} else if (rc < 0) {
		r->verdict = PROTO_V_ERROR;
		snprintf(msg, msglen, "Script execution error: the result channel was corrupted (%s)",
			 why);
	} else {
		switch (f.status) {
		case RF_OK:
			r->verdict = PROTO_V_OK;
			/* Re-encoded from the parsed value, never forwarded as the jail wrote it;
			 * floats keep their shortest form, so the size is close to the runner's. */
			*ret_json = jo_dumps_compact(f.result, &json_len);
			if (!*ret_json || json_len > PROTO_RESULT_MAX) {
				free(*ret_json);
				*ret_json = NULL;
				r->verdict = PROTO_V_BAD_RESULT;
				snprintf(msg, msglen, "Result is too large (over %u bytes)",
					 PROTO_RESULT_MAX);
			}
			break;
		case RF_NO_MAIN:
			r->verdict = PROTO_V_NO_MAIN;
			snprintf(msg, msglen, "Script must contain a main() function");
			break;
		case RF_ERROR:
			r->verdict = PROTO_V_ERROR;
			snprintf(msg, msglen, "Script execution error: %s", f.message);
			break;
		case RF_BAD_RESULT:
			r->verdict = PROTO_V_BAD_RESULT;
			snprintf(msg, msglen, "%s", f.message);
			break;
		case RF_EXIT:
			r->verdict = PROTO_V_ERROR;
			snprintf(msg, msglen,
				 "Script execution error: sys.exit(%lld) was called before main() "
				 "returned",
				 f.code);
			break;
		}
		rf_frame_clear(&f);
	}
	r->message = msg;
	r->message_len = (uint32_t)strlen(msg);
	if (*ret_json) {
		r->result = *ret_json;
		r->result_len = (uint32_t)strlen(*ret_json);
	}
}

static void on_cleanup_retry(evutil_socket_t fd, short what, void *arg);

/* Removes the cgroup; v1 may need a moment after the last task is reaped. */
static void job_cleanup(struct job *j)
{
	struct sbx *s = j->s;
	struct timeval tv = { 0, 20000 };
	int r = 0;

	if (j->cg_made)
		r = cg_job_destroy(&s->cg, &j->cg);
	if (r == -EBUSY && ++j->cleanup_tries < 500) {
		if (!j->ev_retry)
			j->ev_retry = evtimer_new(s->base, on_cleanup_retry, j);
		if (j->ev_retry) {
			evtimer_add(j->ev_retry, &tv);
			return;
		}
	}
	if (r < 0)
		log_error_errno(r, "job %llu: cannot remove cgroup %s", (unsigned long long)j->client_id,
				j->cg.name);
	TAILQ_REMOVE(&s->active, j, link);
	free_slot(s, j->slot, r);
	s->running -= !j->internal;
	job_free(j);
	job_pump_queue(s);
}

static void on_cleanup_retry(evutil_socket_t fd, short what, void *arg)
{
	job_cleanup(arg);
}

/* Builds the result from what we saw and reports it; once per job. */
static void job_report_result(struct job *j, const siginfo_t *si)
{
	struct cg_stats st = { 0 };
	struct proto_result r = { 0 };
	char msg[PROTO_MESSAGE_MAX];
	_cleanup_free_ char *json = NULL;

	if (j->reported)
		return;
	if (j->cg_made)
		(void)cg_job_stats(&j->cg, &st);
	build_result(j, si, &st, &r, msg, sizeof(msg), &json);
	r.wall_ms = j->pidfd >= 0 ? (uint32_t)ms_since(&j->t0) : 0;
	r.cpu_ms = (uint32_t)(st.cpu_ns / 1000000);
	r.peak_memory = st.peak_bytes;
	r.flags = (j->out.truncated ? PROTO_F_STDOUT_TRUNCATED : 0) |
		  (j->err.truncated ? PROTO_F_STDERR_TRUNCATED : 0);
	r.out = j->out.data ? j->out.data : "";
	r.out_len = (uint32_t)j->out.len;
	r.err = j->err.data ? j->err.data : "";
	r.err_len = (uint32_t)j->err.len;
	if (r.verdict == PROTO_V_SANDBOX_ERROR)
		log_error("job %llu: %s", (unsigned long long)j->client_id, msg);
	j->s->jobs_done++;
	j->reported = true;
	report(j, &r);
	warm_refill_soon(j->s);
}

/* The whole result frame is in: the runner flushed stdout and stderr before writing it and
 * exits right after, so the answer is complete now. Reply at once and kill what is left
 * (SECURITY.md item 12); tearing the jail down (an address space, namespaces) is not the
 * client's wait. */
static void job_result_arrived(struct job *j)
{
	siginfo_t si = { .si_code = CLD_EXITED, .si_status = 0 };

	if (j->reported || j->state != J_RUNNING || j->cancelled || j->timed_out)
		return;
	/* The sync socket's EOF (the jail was complete) may be waiting behind the frame. */
	for (int i = 0; i < 4 && j->fd_sync >= 0; i++)
		on_sync(j->fd_sync, EV_READ, j);
	if (!j->exec_ok || j->fail_stage)
		return; /* the exit path says what went wrong */
	(void)drain(j->fd_out, &j->out);
	(void)drain(j->fd_err, &j->err);
	free_event(&j->ev_timer);
	job_kill(j);
	job_report_result(j, &si);
}

static void job_finish(struct job *j)
{
	siginfo_t si = { 0 };

	j->state = J_CLEANUP;
	free_event(&j->ev_timer);
	free_event(&j->ev_pid);
	free_event(&j->ev_oom);
	if (j->pidfd >= 0) {
		/* The init is reaped only after every other task of its PID namespace: the job is
		 * entirely gone now, so reading its pipes to EOF cannot hang. */
		(void)waitid((idtype_t)P_PIDFD, (id_t)j->pidfd, &si, WEXITED);
		(void)cg_job_kill(&j->cg);
		/* A failure report may still sit in the socket, before its EOF. */
		for (int i = 0; i < 4 && j->fd_sync >= 0; i++)
			on_sync(j->fd_sync, EV_READ, j);
		drain_and_close(&j->fd_result, &j->ev_result, &j->result);
		drain_and_close(&j->fd_out, &j->ev_out, &j->out);
		drain_and_close(&j->fd_err, &j->ev_err, &j->err);
	}
	job_report_result(j, &si);
	job_cleanup(j);
}
