/* jail.h - the jail, built by hand for each job. spawn_start() clones the child; the child
 * runs jail_child(), one flat, commented sequence of steps; the parent answers its one
 * request (write the uid/gid maps) through spawn_on_sync(). */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"
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

struct spawn_req {
	const struct mnt_plan *plan;
	const struct sc_filter *filter;
	const struct cg_job *cg;
	const char *python;
	uint64_t timeout_ms;
	uint64_t pids_max;
	uint64_t fsize_bytes;
	/* the child's ends; the parent closes them after spawn_start */
	int script_r, result_w, out_w, err_w, sync_child;
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
