/* cgroup_v2.c - the unified hierarchy: one directory per job under our delegated subtree. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>

#include "cgroup_util.h"
#include "cleanup.h"

static bool v2_has_controllers(int dirfd)
{
	char buf[512];
	bool mem = false, pids = false, cpu = false;
	char *save = NULL;

	if (cgu_read(dirfd, "cgroup.controllers", buf, sizeof(buf)) < 0)
		return false;
	for (char *t = strtok_r(buf, " \n", &save); t; t = strtok_r(NULL, " \n", &save)) {
		mem |= !strcmp(t, "memory");
		pids |= !strcmp(t, "pids");
		cpu |= !strcmp(t, "cpu");
	}
	return mem && pids && cpu;
}

int cg_v2_init(struct cg_ctx *ctx, const char **why)
{
	static const char *const mounts[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/unified" };
	char self[512], dir[1100];
	struct statfs sfs;
	const char *mnt = NULL;
	_cleanup_close_ int fd = -1;
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(mounts) && !mnt; i++)
		if (statfs(mounts[i], &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC)
			mnt = mounts[i];
	if (!mnt) {
		*why = "no cgroup2 mount";
		return -ENOENT;
	}
	/* Never guess "/": a daemon that took the root for its own would move itself there and
	 * put its jobs beside every other cgroup of the host. */
	r = cgu_self_path("", self, sizeof(self));
	if (r < 0) {
		*why = "no cgroup v2 path in /proc/self/cgroup";
		return r;
	}
	snprintf(dir, sizeof(dir), "%s%s", mnt, strcmp(self, "/") ? self : "");
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		*why = "our cgroup v2 directory is not visible";
		return -errno;
	}
	if (!v2_has_controllers(fd)) {
		*why = "cgroup v2 offers no memory, pids and cpu controllers to our cgroup";
		return -EOPNOTSUPP;
	}
	/* No-internal-process rule: a cgroup that hands controllers to children may hold no
	 * tasks. Move the daemon into a leaf of its own, then enable the controllers; job
	 * cgroups become siblings of that leaf. Under systemd this is our Delegate=yes unit. */
	if (mkdirat(fd, "supervisor", 0755) < 0 && errno != EEXIST) {
		*why = "cannot create the supervisor cgroup (is the subtree delegated?)";
		return -errno;
	}
	{
		_cleanup_close_ int sfd = openat(fd, "supervisor", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (sfd < 0 || cgu_write(sfd, "cgroup.procs", "0") < 0) {
			*why = "cannot move sandboxd into its supervisor cgroup";
			return -EPERM;
		}
	}
	r = cgu_write(fd, "cgroup.subtree_control", "+memory +pids +cpu");
	if (r < 0) {
		*why = "cannot enable memory, pids and cpu for job cgroups";
		return r;
	}
	ctx->version = 2;
	ctx->base_fd[0] = steal_fd(&fd);
	snprintf(ctx->base_path[0], sizeof(ctx->base_path[0]), "%s", dir);
	ctx->v2_kill = faccessat(ctx->base_fd[0], "supervisor/cgroup.kill", F_OK, 0) == 0;
	ctx->swap_limited =
		faccessat(ctx->base_fd[0], "supervisor/memory.swap.max", F_OK, 0) == 0;
	return 0;
}

int cg_v2_job_create(struct cg_ctx *ctx, const struct cg_limits *lim, struct cg_job *j)
{
	char cpu[64];
	int r;

	if (mkdirat(ctx->base_fd[0], j->name, 0755) < 0)
		return -errno;
	j->dir_fd[0] = openat(ctx->base_fd[0], j->name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j->dir_fd[0] < 0)
		return -errno;
	r = cgu_write_u64(j->dir_fd[0], "memory.max", lim->memory_bytes);
	if (r < 0)
		return r;
	if (ctx->swap_limited) {
		r = cgu_write(j->dir_fd[0], "memory.swap.max", "0");
		if (r < 0)
			return r;
	}
	/* An OOM kills the whole job, not one task of it. */
	r = cgu_write(j->dir_fd[0], "memory.oom.group", "1");
	if (r < 0)
		return r;
	r = cgu_write_u64(j->dir_fd[0], "pids.max", lim->pids_max);
	if (r < 0)
		return r;
	snprintf(cpu, sizeof(cpu), "%llu 100000", (unsigned long long)lim->cpu_percent * 1000);
	return cgu_write(j->dir_fd[0], "cpu.max", cpu);
}

int cg_v2_job_stats(const struct cg_job *j, struct cg_stats *ret)
{
	uint64_t usec = 0;
	int r = cgu_read_key(j->dir_fd[0], "cpu.stat", "usage_usec", &usec);

	if (r < 0)
		return r;
	ret->cpu_ns = usec * 1000;
	/* memory.peak appeared in 5.19; older kernels report no peak. */
	(void)cgu_read_u64(j->dir_fd[0], "memory.peak", &ret->peak_bytes);
	r = cgu_read_key(j->dir_fd[0], "memory.events", "oom_kill", &ret->oom_kills);
	return r == -ENOENT ? 0 : r;
}
