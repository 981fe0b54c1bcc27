/* cgroup.h - one cgroup per job: limits, kill, stats. cgroup v2 first, v1 as the fallback.
 *
 * The daemon creates and owns every job cgroup; it is never delegated to the job, and the job
 * never sees cgroupfs (no mount of it in the jail). All files are written relative to dirfds.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

enum cg_v1_ctrl { CG_MEMORY, CG_PIDS, CG_CPU, CG_CPUACCT, CG_V1_N };

/* v1: a job slot's pids and cpuacct cgroups (cgroup_v1.c, cg_v1_slot_keeps() says why those),
 * made for its first job and kept for the next ones: a mkdir and an rmdir each per job, and
 * their files, cost more than anything else sandboxd does for a job. A slot holds one job at
 * a time, and its next job starts only once the last one's memory cgroup is gone, that is
 * once no task of it is left in any hierarchy. */
struct cg_slot {
	char name[48];
	int dir_fd[CG_V1_N]; /* the kept controllers' only */
	int procs_fd[CG_V1_N];
	uint64_t pids_max; /* what pids.max was set to */
	bool made;
};

struct cg_ctx {
	int version;         /* 1 or 2 */
	int base_fd[CG_V1_N]; /* v1: our "pyexec" dir per controller; v2: [0] only */
	char base_path[CG_V1_N][1280];
	bool v2_kill;         /* cgroup.kill exists (5.14+) */
	bool swap_limited;    /* memsw / memory.swap.max can hold swap at 0 */
	uint64_t seq;
	uint64_t own_below; /* job-<our pid>-<n> with n below this are a dead daemon's (pid reuse) */
	int stale_at_start; /* cg_init(): dead daemons' job cgroups it found still busy */
	char why[256]; /* cg_init()'s reason when both hierarchies failed */
	struct cg_slot *slots; /* v1: n_slots of them (cg_slots_init()); v2: none */
	unsigned n_slots;
	unsigned slot_keeps; /* v1: bit i set: controller i is kept per slot */
};

struct cg_limits {
	uint64_t memory_bytes;
	uint64_t pids_max;
	uint64_t cpu_percent; /* of one CPU */
};

struct cg_job {
	int version;
	int dir_fd[CG_V1_N];   /* v1: per controller; v2: [0] */
	int procs_fd[CG_V1_N]; /* cgroup.procs opened for the child to write "0" into (v1) */
	int oom_efd;           /* v1: eventfd signalled on OOM, or -1 */
	unsigned kept;         /* v1: bit i set: dir_fd[i] and procs_fd[i] are its slot's */
	uint64_t cpu_ns_base;  /* v1: the slot's cpuacct.usage when the job's cgroups were made */
	char name[48]; /* job-<daemon pid>-<seq> */
};

struct cg_stats {
	uint64_t cpu_ns;
	uint64_t peak_bytes;
	uint64_t oom_kills;
};

/* Detects the hierarchy (mode "auto", "v1" or "v2"), prepares our subtree, removes stale job
 * cgroups of a previous run (those still busy: stale_at_start). Returns 0 or -errno; *why
 * says what was missing. */
int cg_init(struct cg_ctx *ctx, const char *mode, const char **why);
void cg_fini(struct cg_ctx *ctx);
/* Again, while running: job cgroups of dead daemons whose tasks had not left when cg_init()
 * gave up on them (a slow exit), or that a daemon killed meanwhile left. Returns how many
 * remain. */
int cg_sweep_stale(struct cg_ctx *ctx);
/* Describes the hierarchy in use, for the start-up log line. */
const char *cg_describe(const struct cg_ctx *ctx, char *buf, unsigned len);

/* v1: room for n job slots' cgroups (struct cg_slot); a no-op on v2. 0 or -ENOMEM. */
int cg_slots_init(struct cg_ctx *ctx, unsigned n);
/* v1: forgets a slot's cgroups (closes them, removes them if it can), so that its next job
 * gets new ones: for a slot whose last job's cgroup could not be removed (a task is stuck in
 * it). */
void cg_slot_retire(struct cg_ctx *ctx, int slot);

/* The job's cgroup, in job slot `slot` (v1 keeps some per slot: struct cg_slot), or -1 for
 * one of its own in every hierarchy. */
int cg_job_create(struct cg_ctx *ctx, const struct cg_limits *lim, int slot, struct cg_job *ret);
/* v2: the directory fd for CLONE_INTO_CGROUP; v1: -1 (the child attaches itself). */
int cg_job_clone_fd(const struct cg_job *j);
/* In the child, before anything else: join the job's v1 cgroups. No-op on v2. */
int cg_job_attach_self(const struct cg_job *j);
/* Kills every task of the job where the hierarchy can (v2 cgroup.kill). */
int cg_job_kill(const struct cg_job *j);
int cg_job_stats(const struct cg_job *j, struct cg_stats *ret);
/* Closes the fds the child needed; call once the child has exec'ed or died. */
void cg_job_close_child_fds(struct cg_job *j);
/* Removes the cgroup. -EBUSY while tasks are still leaving: call again later. */
int cg_job_destroy(struct cg_ctx *ctx, struct cg_job *j);
/* Closes what cg_job_destroy() kept for a retry (a cgroup it could not remove), removing
 * nothing: for a job given up on. A no-op after a destroy that succeeded. */
void cg_job_abandon(struct cg_job *j);
/* Kills what is left and removes the cgroup, waiting up to 0.5 s for it to empty: for paths
 * that cannot come back later (stopping, a dead zygote), so what it could not remove is
 * abandoned (cg_job_abandon()). Returns cg_job_destroy()'s result. */
int cg_job_remove_now(struct cg_ctx *ctx, struct cg_job *j);
