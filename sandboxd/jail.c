/* jail.c - see jail.h and ../shared/SECURITY.md. The order of jail_enter() is the design:
 *
 *   cgroup -> fds -> cgroup ns -> session -> filesystem -> network -> hostname -> rlimits ->
 *   groups -> user ns (maps by the parent) -> uid/gid -> capabilities + no_new_privs ->
 *   pdeathsig -> stdin -> seccomp -> execve (cold) or the zygote's interpreter (warm)
 *
 * The filesystem, network and hostname are set up while the child is still root of the
 * initial user namespace, and the user namespace comes last. So the mount, network, PID,
 * IPC and UTS namespaces are owned by the initial user namespace, and whatever the job might
 * gain inside its own user namespace gives it no power over any of them; the root is built
 * without user-namespace mount locks or unmapped-owner surprises.
 */
#include "jail.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <poll.h>

#include "caps.h"
#include "cleanup.h"
#include "ids.h"
#include "ns.h"
#include "rlimits.h"

static const char *const stage_names[ST__MAX] = {
	[ST_NONE] = "none",
	[ST_CGROUP] = "join cgroup",
	[ST_CGROUP_NS] = "cgroup namespace",
	[ST_SETSID] = "setsid",
	[ST_MOUNTS] = "mounts",
	[ST_NET] = "network",
	[ST_UTS] = "hostname",
	[ST_RLIMITS] = "rlimits",
	[ST_GROUPS] = "setgroups",
	[ST_USER_NS] = "user namespace",
	[ST_ID_MAP] = "uid/gid map",
	[ST_IDS] = "setresuid",
	[ST_CAPS] = "drop capabilities",
	[ST_PDEATHSIG] = "parent death signal",
	[ST_FDS] = "file descriptors",
	[ST_SECCOMP] = "seccomp",
	[ST_EXEC] = "execve",
};

const char *spawn_stage_name(int stage)
{
	return stage > 0 && stage < ST__MAX ? stage_names[stage] : "unknown";
}

/* The fixed child fds are documented in proto/PROTOCOL.md (jail-side result channel). */
enum { FD_SCRIPT = JAIL_FD_SCRIPT, FD_RESULT = JAIL_FD_RESULT, FD_SYNC = JAIL_FD_SYNC };

static _Noreturn void child_fail(int sync, int stage, int err, const char *detail)
{
	struct spawn_msg m = { .kind = SPAWN_MSG_FAILED, .stage = stage, .err = err < 0 ? -err : err };

	if (detail)
		strncpy(m.detail, detail, sizeof(m.detail) - 1);
	(void)!send(sync, &m, sizeof(m), MSG_NOSIGNAL);
	_exit(126);
}

void jail_env(char **envp, size_t max, char *blas_core, size_t core_len, char *blas_l2,
	      size_t l2_len)
{
	static char *const fixed[] = {
		"PATH=/usr/bin:/bin",
		"HOME=/tmp",
		"TMPDIR=/tmp",
		"USER=sandbox",
		"LOGNAME=sandbox",
		"LANG=C.UTF-8",
		"LC_ALL=C.UTF-8",
		"TZ=UTC",
		"PYTHONDONTWRITEBYTECODE=1",
		"PYTHONUNBUFFERED=1",
		/* One BLAS/OpenMP thread: fits the pids limit and the one-CPU bandwidth. */
		"OPENBLAS_NUM_THREADS=1",
		"OMP_NUM_THREADS=1",
		"MKL_NUM_THREADS=1",
		"NUMEXPR_NUM_THREADS=1",
		"NUMEXPR_MAX_THREADS=1",
		"MPLCONFIGDIR=/tmp",
	};
	const char *e;
	size_t n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(fixed) && n + 1 < max; i++)
		envp[n++] = fixed[i];
	/* Hardware workarounds for old OpenBLAS builds on some CPUs (see the host's setting),
	 * passed through because without them BLAS can compute wrong results or crash. */
	if ((e = getenv("OPENBLAS_CORETYPE")) && strlen(e) < 40 && n + 1 < max) {
		snprintf(blas_core, core_len, "OPENBLAS_CORETYPE=%s", e);
		envp[n++] = blas_core;
	}
	if ((e = getenv("OPENBLAS_L2_SIZE")) && strlen(e) < 40 && n + 1 < max) {
		snprintf(blas_l2, l2_len, "OPENBLAS_L2_SIZE=%s", e);
		envp[n++] = blas_l2;
	}
	envp[n] = NULL;
}

static int write_oom_score_adj(void)
{
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, "1000", 4) != 4)
		r = -errno;
	close(fd);
	return r;
}

void jail_enter(const struct jail_req *q, int sync)
{
	struct spawn_msg m;
	const char *stage = NULL;
	int r, fds[5];

	/* Die with the daemon: a job nobody watches must not run on. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		child_fail(sync, ST_PDEATHSIG, errno, NULL);

	/* 1. Into the job's cgroup before anything else, so every page and task is charged
	 *    and limited (v1; on v2 CLONE_INTO_CGROUP already put us there). */
	for (unsigned i = 0; i < q->n_cg_procs; i++)
		if (q->cg_procs[i] >= 0 && write(q->cg_procs[i], "0", 1) != 1)
			child_fail(sync, ST_CGROUP, errno, NULL);
	/* 1b. Keep only the job's own fds: the clone copied every fd of its parent (the daemon's
	 *     clients and other jobs' pipes, or the zygote's control socket). Each goes to its
	 *     final number now (stdout 1, stderr 2, script 3, result 4, sync 5), everything else
	 *     is closed, so no later step can run out of fds under RLIMIT_NOFILE or hold another
	 *     job's pipe open. */
	fds[0] = fcntl(q->out_w, F_DUPFD_CLOEXEC, 10);
	fds[1] = fcntl(q->err_w, F_DUPFD_CLOEXEC, 10);
	fds[2] = fcntl(q->script_r, F_DUPFD_CLOEXEC, 10);
	fds[3] = fcntl(q->result_w, F_DUPFD_CLOEXEC, 10);
	fds[4] = fcntl(sync, F_DUPFD_CLOEXEC, 10);
	if (fds[0] < 0 || fds[1] < 0 || fds[2] < 0 || fds[3] < 0 || fds[4] < 0)
		child_fail(sync, ST_FDS, errno, NULL);
	if (dup3(fds[4], FD_SYNC, O_CLOEXEC) < 0)
		child_fail(sync, ST_FDS, errno, NULL);
	sync = FD_SYNC;
	if (dup2(fds[0], 1) < 0 || dup2(fds[1], 2) < 0 || dup2(fds[2], FD_SCRIPT) < 0 ||
	    dup2(fds[3], FD_RESULT) < 0 || (close(0) < 0 && errno != EBADF) ||
	    syscall(SYS_close_range, FD_SYNC + 1, ~0U, 0) < 0)
		child_fail(sync, ST_FDS, errno, NULL);
	/* 1c. Under host memory pressure, the kernel kills a job before anything else (a warm
	 *     spare has no /proc until step 4: it does this right after). */
	if (q->plan && (r = write_oom_score_adj()) < 0)
		child_fail(sync, ST_CGROUP, r, NULL);
	/* 2. A cgroup namespace rooted at the job's cgroup: /proc/self/cgroup shows only "/". */
	if (unshare(CLONE_NEWCGROUP) < 0)
		child_fail(sync, ST_CGROUP_NS, errno, NULL);
	/* 3. A session of its own: no controlling terminal, no TIOCSTI into ours. */
	if (setsid() < 0)
		child_fail(sync, ST_SETSID, errno, NULL);
	/* 4. The filesystem: read-only root on tmpfs, fresh /proc, minimal /dev and /etc,
	 *    capped /tmp and /dev/shm, pivot_root and detach the host root. A warm job keeps the
	 *    zygote's root (built the same way, read-only) and gets its own /proc, /tmp and
	 *    /dev/shm: nothing writable or PID-bound is shared with the zygote or another job. */
	r = q->plan ? mnt_enter_jail(q->plan, false, &stage) : mnt_renew_jail(q->renew, &stage);
	if (r < 0)
		child_fail(sync, ST_MOUNTS, r, stage);
	if (q->renew && (r = write_oom_score_adj()) < 0)
		child_fail(sync, ST_CGROUP, r, NULL);
	/* 5. The network namespace is empty; lo is its one interface. */
	if ((r = ns_loopback_up()) < 0)
		child_fail(sync, ST_NET, r, NULL);
	/* 6. A fixed hostname: the host's never shows. */
	if ((r = ns_set_names()) < 0)
		child_fail(sync, ST_UTS, r, NULL);
	/* 7. rlimits as a second line, set while we may still set any value. */
	if ((r = rl_apply(q->timeout_ms, q->pids_max, q->fsize_bytes)) < 0)
		child_fail(sync, ST_RLIMITS, r, NULL);
	/* 8. No supplementary groups (root's would otherwise stay with us). */
	if (setgroups(0, NULL) < 0)
		child_fail(sync, ST_GROUPS, errno, NULL);
	/* 9. The user namespace, innermost; the daemon writes a one-line map of IDS_INNER to
	 *    this slot's unprivileged host id. Nothing else is mapped: no uid 0 inside. */
	if (unshare(CLONE_NEWUSER) < 0)
		child_fail(sync, ST_USER_NS, errno, NULL);
	m = (struct spawn_msg){ .kind = SPAWN_MSG_NEED_MAPS };
	if (send(sync, &m, sizeof(m), MSG_NOSIGNAL) != sizeof(m) ||
	    recv(sync, &m, sizeof(m), 0) != sizeof(m) || m.kind != SPAWN_MSG_MAPS_DONE)
		child_fail(sync, ST_ID_MAP, EPROTO, NULL);
	/* 10. Become the job's uid and gid. */
	if ((r = ids_become_inner()) < 0)
		child_fail(sync, ST_IDS, r, NULL);
	/* 11. No capabilities in any set, securebits locked, no_new_privs. */
	if ((r = caps_drop_all()) < 0)
		child_fail(sync, ST_CAPS, r, NULL);
	/* 12. The credential changes cleared the death signal; arm it again, then make sure
	 *     the daemon did not die before that (our end of the sync socket would hang up). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		child_fail(sync, ST_PDEATHSIG, errno, NULL);
	{
		struct pollfd p = { .fd = sync, .events = POLLRDHUP };
		if (poll(&p, 1, 0) != 0)
			_exit(126);
	}
	/* 12b. Warm: the uid change made the process non-dumpable, so its /proc files (fd,
	 *      environ, maps) would be root's and the job could not read its own. A cold job's
	 *      execve sets this back; a warm one has no execve. Nothing of the daemon is in
	 *      this address space, only the zygote's interpreter. */
	if (q->renew && prctl(PR_SET_DUMPABLE, 1) < 0)
		child_fail(sync, ST_CAPS, errno, NULL);
	/* 13. Exactly the job's fds, placed in step 1b: stdin is /dev/null (of the jail now),
	 *     1-4 are the job's, and the sync socket (5) closes on execve or, warm, right
	 *     after the filter is in. */
	r = open("/dev/null", O_RDONLY); /* fd 0, the lowest free one */
	if (r != 0)
		child_fail(sync, ST_FDS, r < 0 ? errno : EBADF, NULL);
	/* 14. seccomp last: from here on only the allow-list, through execve and beyond. */
	if ((r = sc_filter_install(q->filter)) < 0)
		child_fail(sync, ST_SECCOMP, r, NULL);
}

static _Noreturn void jail_child(const struct spawn_req *q, int sync)
{
	char *envp[24];
	char blas_core[64], blas_l2[64];

	/* Read before the jail: the daemon's environment is not ours to pass on, only these. */
	jail_env(envp, ARRAY_SIZE(envp), blas_core, sizeof(blas_core), blas_l2, sizeof(blas_l2));
	jail_enter(&q->jail, sync);
	/* 15. The runner: isolated (-I), no site (-S), no bytecode (-B), unbuffered (-u). */
	char *const argv[] = { (char *)q->python, "-I", "-S", "-B", "-u",
			       MNT_RUNNER_DIR "/runner.py", NULL };
	execve(q->python, argv, envp);
	child_fail(FD_SYNC, ST_EXEC, errno, NULL);
}

int spawn_start(const struct spawn_req *q, pid_t *ret_pid, int *ret_pidfd)
{
	int cgfd = q->cg_clone_fd;
	int pidfd = -1;
	struct clone_args args = {
		/* No CLONE_NEWUSER here: the child creates its user namespace last (see top). */
		.flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS |
			 CLONE_PIDFD | (cgfd >= 0 ? CLONE_INTO_CGROUP : 0),
		.pidfd = (uint64_t)(uintptr_t)&pidfd,
		.exit_signal = SIGCHLD,
		.cgroup = cgfd >= 0 ? (uint64_t)cgfd : 0,
	};
	long pid = syscall(SYS_clone3, &args, sizeof(args));

	if (pid < 0)
		return -errno;
	if (pid == 0)
		jail_child(q, q->jail.sync_child);
	*ret_pid = (pid_t)pid;
	*ret_pidfd = pidfd;
	return 0;
}
