/* main.c - pyexec-zygote: the warm path's template. sandboxd starts it in a jail of its own
 * (mount, network, IPC and UTS namespaces, the read-only root every job gets, a cgroup, five
 * capabilities: zygote_start in ../zygote.c) and talks to it on fd 3 (../zyproto.h).
 *
 * It starts CPython, imports numpy and pandas, and then only ever clones "spares": each is
 * one future job's init, in new PID, mount, network, IPC and UTS namespaces, with sandboxd as
 * its parent (CLONE_PARENT), so sandboxd reaps it, kills it and writes its uid map exactly as
 * for a cold job. The spare runs the same jail_enter() as a cold job's child, then waits in
 * the already warm interpreter for its script. The zygote itself never sees a script, a
 * result or a job's output, and never runs code a client sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cgroup_util.h"
#include "cleanup.h"
#include "jail.h"
#include "mounts.h"
#include "scfilter.h"
#include "zygote.h"
#include "zyproto.h"

#define MAX_FDS (ZY_SPAWN_FDS + ZY_MAX_CG_FDS)

struct zy_state {
	struct zy_init init;
	struct mnt_plan plan; /* only tmp_bytes and tmp_inodes: a spare renews, never builds */
	struct sc_filter filter;
	struct zy_arenas arenas;
	bool threaded; /* another thread than ours was running when we got ready */
};

/* One packet and up to `max` fds; returns the byte count, 0 at EOF, or -errno. */
static ssize_t recv_msg(void *buf, size_t len, int *fds, size_t max, size_t *n_fds)
{
	char ctl[CMSG_SPACE(sizeof(int) * MAX_FDS)];
	struct iovec iov = { buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			     .msg_controllen = sizeof(ctl) };
	ssize_t n;

	*n_fds = 0;
	do
		n = recvmsg(ZY_FD_CTL, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *p = (int *)CMSG_DATA(c);
		for (size_t i = 0; i < k; i++) {
			if (*n_fds < max)
				fds[(*n_fds)++] = p[i];
			else
				close(p[i]);
		}
	}
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		return -EMSGSIZE;
	return n;
}

static int send_msg(const void *buf, size_t len, int fd)
{
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		mh.msg_control = ctl;
		mh.msg_controllen = sizeof(ctl);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(ZY_FD_CTL, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -errno;
}

static _Noreturn void spare_main(const struct zy_state *z, const int *fds, size_t n_fds,
				 bool cg_v2)
{
	struct jail_req q = {
		.renew = &z->plan,
		.filter = &z->filter,
		/* v2: CLONE_INTO_CGROUP put us in the job's cgroup already. */
		.cg_procs = cg_v2 ? NULL : fds + ZY_SPAWN_FDS,
		.n_cg_procs = cg_v2 ? 0 : (unsigned)(n_fds - ZY_SPAWN_FDS),
		.timeout_ms = z->init.timeout_ms,
		.pids_max = z->init.pids_max,
		.fsize_bytes = z->init.fsize_bytes,
		.script_r = fds[0],
		.result_w = fds[1],
		.out_w = fds[2],
		.err_w = fds[3],
		.sync_child = fds[4],
	};

	zy_py_after_fork_child();
	jail_enter(&q, fds[4]);
	/* The jail is complete. The runner rehearses a job, closes the sync socket (fd 5), which
	 * tells sandboxd the spare is ready (on the cold path execve closes it), and waits for
	 * the script on fd 3. */
	zy_py_serve();
}

/* Clones one spare; returns its pid with *pidfd, or -errno. */
static long spawn_spare(const struct zy_state *z, const struct zy_spawn *req, const int *fds,
			size_t n_fds, int *pidfd)
{
	bool v2 = req->cg_v2 && n_fds == ZY_SPAWN_FDS + 1;
	struct clone_args args = {
		/* CLONE_PARENT: the spare is sandboxd's child, like a cold job's init. No
		 * CLONE_NEWUSER: it creates its user namespace last, in jail_enter(). */
		.flags = CLONE_PARENT | CLONE_PIDFD | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET |
			 CLONE_NEWIPC | CLONE_NEWUTS | (v2 ? CLONE_INTO_CGROUP : 0),
		.pidfd = (uint64_t)(uintptr_t)pidfd,
		/* With CLONE_PARENT the kernel takes the exit signal from us (SIGCHLD, as sandboxd
		 * cloned us with it) and refuses any other. */
		.exit_signal = 0,
		.cgroup = v2 ? (uint64_t)fds[ZY_SPAWN_FDS] : 0,
	};
	long pid;

	/* os.fork() takes the import lock and runs the parent's at-fork hooks around the fork
	 * (logging's and concurrent.futures' take and release their locks): that keeps another
	 * thread from holding one of those across it. We have no other thread (a start that left
	 * one still does it all), and the spare resets them all (PyOS_AfterFork_Child). Run, they
	 * wrote to about 20 of our pages per spare, each shared with the last spare and so a
	 * copy-on-write fault here, and split our huge pages (huge.c) one by one. */
	if (z->threaded)
		zy_py_before_fork();
	pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid == 0)
		spare_main(z, fds, n_fds, v2);
	if (z->threaded)
		zy_py_after_fork_parent();
	return pid < 0 ? -errno : pid;
}

static int64_t ms_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int read_init(struct zy_state *z)
{
	int fds[MAX_FDS];
	size_t n_fds;
	ssize_t n = recv_msg(&z->init, sizeof(z->init), fds, MAX_FDS, &n_fds);

	for (size_t i = 0; i < n_fds; i++)
		close(fds[i]);
	if (n < 0)
		return (int)n;
	if ((size_t)n < offsetof(struct zy_init, filter) || z->init.kind != ZY_INIT ||
	    z->init.version != ZY_VERSION || z->init.filter_len == 0 ||
	    z->init.filter_len > ZY_MAX_FILTER ||
	    (size_t)n != offsetof(struct zy_init, filter) +
				 z->init.filter_len * sizeof(struct sock_filter))
		return -EPROTO;
	z->plan.tmp_bytes = z->init.tmp_bytes;
	z->plan.tmp_inodes = z->init.tmp_inodes;
	z->filter.insns = z->init.filter;
	z->filter.len = (unsigned short)z->init.filter_len;
	return 0;
}

/* True unless /proc/self/status says "Threads: 1" (a status we cannot read says nothing). */
static bool threaded(void)
{
	uint64_t n;

	return cgu_read_key(AT_FDCWD, "/proc/self/status", "Threads:", &n) < 0 || n != 1;
}

/* The heap as every spare will share it, once CPython is warm, while /proc is still mounted.
 * Best effort (how it went is in the ready message): a free block left costs a job a page
 * copy, small pages cost its fork and exit more. In this order: pymalloc's blocks while its
 * arenas are still carved (the last ones it takes may need a new pool); what reads /proc
 * through stdio, whose buffers come and go, before glibc's blocks are taken; the huge pages
 * before glibc's blocks too, which only fill the heap's gaps and grow its top. */
static void prepare_heap(struct zy_state *z, struct zy_ready *ready)
{
	long left = -1;

	ready->py_taken = zy_seal_pymalloc(&left);
	ready->py_left = left;
	zy_arenas_close(&z->arenas);
	z->threaded = threaded();
	ready->huge_kib = zy_collapse_heap();
	left = -1;
	ready->libc_taken = zy_seal_glibc(&left);
	ready->libc_left = left;
}

int main(int argc, char **argv)
{
	static struct zy_state z; /* 32 KiB of filter: not on the stack */
	struct zy_ready ready = { .kind = ZY_READY };
	int64_t t0 = ms_now();
	int r;

	if (argc != 2) {
		fprintf(stderr, "usage: pyexec-zygote PYTHON (started by sandboxd only)\n");
		return 2;
	}
	r = read_init(&z);
	if (r == 0)
		r = zy_py_init(argv[1], &z.arenas);
	if (r == 0)
		prepare_heap(&z, &ready);
	if (r == 0)
		r = mnt_zygote_settle();
	ready.err = r < 0 ? -r : 0;
	ready.init_ms = (uint64_t)(ms_now() - t0);
	if (send_msg(&ready, sizeof(ready), -1) < 0 || r < 0)
		return 1;

	for (;;) {
		struct zy_spawn req;
		struct zy_spawned rep = { .kind = ZY_SPAWNED };
		int fds[MAX_FDS], pidfd = -1;
		size_t n_fds;
		ssize_t n = recv_msg(&req, sizeof(req), fds, MAX_FDS, &n_fds);
		long pid;

		if (n == 0)
			return 0; /* sandboxd closed the socket: it stops, or it gave up on us */
		if (n < 0 && n != -EMSGSIZE)
			return 1;
		rep.seq = n == sizeof(req) ? req.seq : 0;
		if (n != sizeof(req) || req.kind != ZY_SPAWN || n_fds < ZY_SPAWN_FDS ||
		    n_fds != ZY_SPAWN_FDS + req.n_cg)
			rep.err = EPROTO;
		else if ((pid = spawn_spare(&z, &req, fds, n_fds, &pidfd)) < 0)
			rep.err = (int)-pid;
		else
			rep.pid = (int32_t)pid;
		/* The spare has its copies; ours would keep its pipes open. */
		for (size_t i = 0; i < n_fds; i++)
			close(fds[i]);
		r = send_msg(&rep, sizeof(rep), pidfd);
		if (pidfd >= 0)
			close(pidfd);
		if (r < 0)
			return 1;
	}
}
