/* jail.h - the jail, built by hand for each job. spawn_start() clones the child; the child
 * runs jail_enter(), one flat, commented sequence of steps, then execs the runner. A warm
 * job's child (sandboxd/zygote) runs the same jail_enter() and stays in the interpreter it
 * was forked with. The parent answers the child's one request (write the uid/gid maps) on
 * the sync socket (job.c, on_sync). */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mounts.h"
#include "scfilter.h"

/* The steps, in order; a child that fails reports {stage, errno} and exits 126. */
enum spawn_stage {
	ST_NONE,
	ST_CGROUP,
	ST_CGROUP_NS,
	ST_SETSID,
	ST_MOUNTS,
	ST_NET,
	ST_UTS,
	ST_RLIMITS,
	ST_GROUPS,
	ST_USER_NS,
	ST_ID_MAP,
	ST_IDS,
	ST_CAPS,
	ST_PDEATHSIG,
	ST_FDS,
	ST_SECCOMP,
	ST_EXEC,
	ST__MAX
};

/* What one job's child needs to jail itself. Only fds and plain values: the warm path sends
 * the same things to the zygote over its control socket. */
struct jail_req {
	const struct mnt_plan *plan; /* cold: build the root from the host's files */
	const struct mnt_plan *renew; /* warm: keep the zygote's root, renew /proc, /tmp, /dev/shm */
	const struct sc_filter *filter;
	const int *cg_procs; /* v1: cgroup.procs fds to write "0" into; -1 entries are skipped */
	unsigned n_cg_procs;
	uint64_t timeout_ms;
	uint64_t pids_max;
	uint64_t fsize_bytes;
	/* the child's ends; the parent closes them after the clone */
	int script_r, result_w, out_w, err_w, sync_child;
};

struct spawn_req {
	struct jail_req jail;
	int cg_clone_fd; /* v2: the job's cgroup directory, for CLONE_INTO_CGROUP; v1: -1 */
	const char *python;
};

struct spawn_msg {
	uint32_t kind; /* SPAWN_MSG_* */
	int32_t stage;
	int32_t err; /* positive errno */
	char detail[52];
};

#define SPAWN_MSG_NEED_MAPS 1 /* child -> parent: I unshared my user namespace */
#define SPAWN_MSG_FAILED 2    /* child -> parent: stage and errno, then exit 126 */
#define SPAWN_MSG_MAPS_DONE 3 /* parent -> child */

/* Clones the job's init into new PID, mount, network, IPC and UTS namespaces (and straight
 * into its cgroup on v2). Returns 0 with *ret_pid and *ret_pidfd, or -errno. */
int spawn_start(const struct spawn_req *q, pid_t *ret_pid, int *ret_pidfd);

const char *spawn_stage_name(int stage);

/* In a freshly cloned child, still root of the initial user namespace, in new PID, mount,
 * network, IPC and UTS namespaces: every step of the jail but the final execve. On return
 * the job's fds are 0-4, the sync socket is fd 5 (JAIL_FD_SYNC), the process is the job's
 * unprivileged uid without capabilities under the seccomp filter. Any failure is reported on
 * the sync socket and the child exits 126; it never returns half-jailed. */
void jail_enter(const struct jail_req *q, int sync);

/* The environment of every job (and of the zygote, whose environment its jobs inherit):
 * fixed values only, never the daemon's own, plus the host's OpenBLAS CPU workarounds. */
void jail_env(char **envp, size_t max, char *blas_core, size_t core_len, char *blas_l2,
	      size_t l2_len);

#define JAIL_FD_SCRIPT 3
#define JAIL_FD_RESULT 4
#define JAIL_FD_SYNC 5
