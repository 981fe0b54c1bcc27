/* cgroup_v1.c - the fallback for hosts whose cgroup v2 has no controllers (this CI machine):
 * memory, pids, cpu and cpuacct each live in their own v1 hierarchy. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup_util.h"
#include "cleanup.h"

static const char *const v1_names[CG_V1_N] = { "memory", "pids", "cpu", "cpuacct" };

/* Finds the mount point and mount root of the v1 hierarchy carrying `ctrl`. */
static int v1_mount(const char *ctrl, char *mnt, size_t mlen, char *root, size_t rlen)
{
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	int r = -ENOENT;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		char froot[512], fmnt[512], fstype[64], opts[512];
		char *dash = strstr(line, " - ");
		if (!dash || sscanf(line, "%*s %*s %*s %511s %511s", froot, fmnt) != 2 ||
		    sscanf(dash + 3, "%63s %*s %511s", fstype, opts) != 2 || strcmp(fstype, "cgroup"))
			continue;
		char *save = NULL;
		for (char *t = strtok_r(opts, ",", &save); t; t = strtok_r(NULL, ",", &save))
			if (!strcmp(t, ctrl)) {
				snprintf(mnt, mlen, "%s", fmnt);
				snprintf(root, rlen, "%s", froot);
				r = 0;
			}
		if (r == 0)
			break;
	}
	fclose(f);
	return r;
}

int cg_v1_init(struct cg_ctx *ctx, const char **why)
{
	ctx->version = 1;
	for (int i = 0; i < CG_V1_N; i++) {
		char mnt[512], root[512], self[512], dir[1200];
		const char *rel;
		int r = v1_mount(v1_names[i], mnt, sizeof(mnt), root, sizeof(root));
		if (r < 0) {
			*why = "a v1 hierarchy for memory, pids, cpu or cpuacct is not mounted";
			return r;
		}
		/* Nest under our own cgroup (a delegated subtree under systemd or a container
		 * runtime); the mount may show only part of the hierarchy, so strip its root. */
		if (cgu_self_path(v1_names[i], self, sizeof(self)) < 0)
			snprintf(self, sizeof(self), "/");
		rel = self;
		if (strcmp(root, "/") && !strncmp(self, root, strlen(root)))
			rel = self + strlen(root);
		snprintf(dir, sizeof(dir), "%s%s/pyexec", mnt, strcmp(rel, "/") ? rel : "");
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			/* Our own cgroup is not visible at that path (no cgroup namespace): use the
			 * hierarchy's root as the parent. */
			snprintf(dir, sizeof(dir), "%s/pyexec", mnt);
			if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
				*why = "cannot create the pyexec cgroup in a v1 hierarchy";
				return -errno;
			}
		}
		ctx->base_fd[i] = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (ctx->base_fd[i] < 0) {
			*why = "cannot open the pyexec v1 cgroup";
			return -errno;
		}
		snprintf(ctx->base_path[i], sizeof(ctx->base_path[i]), "%s", dir);
	}
	ctx->swap_limited = faccessat(ctx->base_fd[CG_MEMORY], "memory.memsw.limit_in_bytes", F_OK,
				      0) == 0;
	return 0;
}

/* Makes cgroup `name` in hierarchy i and opens it and its cgroup.procs. */
static int v1_make(struct cg_ctx *ctx, int i, const char *name, int *dir_fd, int *procs_fd)
{
	/* cpu and cpuacct are often one hierarchy ("cpu,cpuacct"): the second mkdir then finds
	 * the directory the first one made, which is the same cgroup. */
	bool shared = cgu_base_shared(ctx, i), made = true;
	int r;

	if (mkdirat(ctx->base_fd[i], name, 0755) < 0) {
		if (errno != EEXIST || !shared)
			return -errno; /* an existing one could hold a stale job: never share it */
		made = false;
	}
	*dir_fd = openat(ctx->base_fd[i], name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*dir_fd < 0) {
		r = -errno;
		if (made) /* nothing else knows of it: cg_job_destroy() removes what has an fd */
			(void)unlinkat(ctx->base_fd[i], name, AT_REMOVEDIR);
		return r;
	}
	*procs_fd = openat(*dir_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
	return *procs_fd < 0 ? -errno : 0;
}

void cg_v1_slot_close(struct cg_ctx *ctx, struct cg_slot *sl, bool remove)
{
	for (int i = 0; i < CG_V1_N; i++) {
		if (sl->procs_fd[i] >= 0)
			close(sl->procs_fd[i]);
		if (sl->dir_fd[i] >= 0) {
			close(sl->dir_fd[i]);
			/* Busy (a stuck task): left to the sweep of a later start. */
			if (remove)
				(void)unlinkat(ctx->base_fd[i], sl->name, AT_REMOVEDIR);
		}
		sl->dir_fd[i] = sl->procs_fd[i] = -1;
	}
	sl->made = false;
}

/* Which controllers a slot keeps from one job to the next (struct cg_slot): pids (its limit
 * is the same for every job; the cgroup is empty between them) and cpuacct (a counter: each
 * job reads its own part). Not memory (page cache charged to a job would count against the
 * next) nor cpu (a fresh quota per job: no throttling carried over, and an operator can still
 * lower the parent's quota while the daemon is idle). A hierarchy one of those shares (a
 * "cpu,cpuacct" mount) is made per job too. */
unsigned cg_v1_slot_keeps(const struct cg_ctx *ctx)
{
	unsigned keep = 0;

	for (int i = 0; i < CG_V1_N; i++) {
		bool ok = i == CG_PIDS || i == CG_CPUACCT;
		for (int k = 0; k < CG_V1_N && ok; k++)
			if (k != i && k != CG_PIDS && k != CG_CPUACCT && ctx->base_fd[k] >= 0 &&
			    !strcmp(ctx->base_path[k], ctx->base_path[i]))
				ok = false;
		if (ok)
			keep |= 1u << i;
	}
	return keep;
}

/* Reuse is safe only because a job's child joins its own memory cgroup first (jail.c, step
 * 1): a child left over from a job whose memory cgroup is gone fails that write (ENODEV)
 * before it could join the slot's. And a kept cgroup is checked empty before each reuse. */
_Static_assert(CG_MEMORY == 0, "the memory cgroup is joined first");

static bool v1_slot_empty(const struct cg_slot *sl)
{
	uint64_t n = 1;

	return sl->dir_fd[CG_PIDS] < 0 ||
	       (cgu_read_u64(sl->dir_fd[CG_PIDS], "pids.current", &n) == 0 && n == 0);
}

/* The slot's kept cgroups, made on its first job: slot-<daemon pid>-<k>-<n> (n: a new name
 * for each set, as one retired may still be there), which the stale sweep removes once that
 * daemon is gone, as it does job-<pid>-<seq>. */
static int v1_slot_ready(struct cg_ctx *ctx, struct cg_slot *sl, unsigned k,
			 const struct cg_limits *lim)
{
	int r;

	if (sl->made && !v1_slot_empty(sl))
		cg_v1_slot_close(ctx, sl, true); /* never expected: a task left; new ones */
	if (sl->made && sl->pids_max == lim->pids_max)
		return 0;
	if (!sl->made) {
		snprintf(sl->name, sizeof(sl->name), "slot-%d-%u-%llu", (int)getpid(), k,
			 (unsigned long long)++ctx->seq);
		for (int i = 0; i < CG_V1_N; i++)
			if ((ctx->slot_keeps & (1u << i)) &&
			    (r = v1_make(ctx, i, sl->name, &sl->dir_fd[i], &sl->procs_fd[i])) < 0)
				goto fail;
		sl->made = true;
	}
	if ((ctx->slot_keeps & (1u << CG_PIDS)) &&
	    (r = cgu_write_u64(sl->dir_fd[CG_PIDS], "pids.max", lim->pids_max)) < 0)
		goto fail;
	sl->pids_max = lim->pids_max;
	return 0;
fail:
	cg_v1_slot_close(ctx, sl, true);
	return r;
}

int cg_v1_job_create(struct cg_ctx *ctx, const struct cg_limits *lim, int slot,
		     struct cg_job *j)
{
	struct cg_slot *sl = slot >= 0 && (unsigned)slot < ctx->n_slots ? &ctx->slots[slot] : NULL;
	int r, cfd;
	char ev[64];

	/* A slot's cgroups that cannot be made (a dead daemon with our pid left one busy, say)
	 * only cost the job the saving: it gets its own, as the zygote does. */
	if (sl && v1_slot_ready(ctx, sl, (unsigned)slot, lim) < 0)
		sl = NULL;
	for (int i = 0; i < CG_V1_N; i++) {
		if (sl && (ctx->slot_keeps & (1u << i))) {
			j->dir_fd[i] = sl->dir_fd[i];
			j->procs_fd[i] = sl->procs_fd[i];
			j->kept |= 1u << i;
			continue;
		}
		if ((r = v1_make(ctx, i, j->name, &j->dir_fd[i], &j->procs_fd[i])) < 0)
			return r;
	}
	/* The slot's earlier jobs used some CPU already. */
	if ((j->kept & (1u << CG_CPUACCT)) &&
	    (r = cgu_read_u64(j->dir_fd[CG_CPUACCT], "cpuacct.usage", &j->cpu_ns_base)) < 0)
		return r;
	if (!(j->kept & (1u << CG_PIDS)) &&
	    (r = cgu_write_u64(j->dir_fd[CG_PIDS], "pids.max", lim->pids_max)) < 0)
		return r;
	r = cgu_write(j->dir_fd[CG_CPU], "cpu.cfs_period_us", "100000");
	if (r < 0)
		return r;
	r = cgu_write_u64(j->dir_fd[CG_CPU], "cpu.cfs_quota_us", lim->cpu_percent * 1000);
	if (r < 0)
		return r;
	/* Memory: the limit, then memory+swap at the same value, so swap is 0. */
	r = cgu_write_u64(j->dir_fd[CG_MEMORY], "memory.limit_in_bytes", lim->memory_bytes);
	if (r < 0)
		return r;
	if (ctx->swap_limited) {
		r = cgu_write_u64(j->dir_fd[CG_MEMORY], "memory.memsw.limit_in_bytes",
				  lim->memory_bytes);
		if (r < 0)
			return r;
	}
	(void)cgu_write(j->dir_fd[CG_MEMORY], "memory.swappiness", "0");
	/* v1 OOM kills one task; an eventfd on memory.oom_control tells us, so the daemon
	 * can kill the whole job as v2's memory.oom.group=1 would. */
	cfd = openat(j->dir_fd[CG_MEMORY], "memory.oom_control", O_RDONLY | O_CLOEXEC);
	if (cfd < 0)
		return -errno;
	j->oom_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (j->oom_efd < 0) {
		r = -errno;
		close(cfd);
		return r;
	}
	snprintf(ev, sizeof(ev), "%d %d", j->oom_efd, cfd);
	r = cgu_write(j->dir_fd[CG_MEMORY], "cgroup.event_control", ev);
	close(cfd);
	return r;
}

int cg_v1_job_stats(const struct cg_job *j, struct cg_stats *ret)
{
	int r = cgu_read_u64(j->dir_fd[CG_CPUACCT], "cpuacct.usage", &ret->cpu_ns);

	if (r < 0)
		return r;
	ret->cpu_ns = ret->cpu_ns > j->cpu_ns_base ? ret->cpu_ns - j->cpu_ns_base : 0;
	r = cgu_read_u64(j->dir_fd[CG_MEMORY], "memory.max_usage_in_bytes", &ret->peak_bytes);
	if (r < 0)
		return r;
	r = cgu_read_key(j->dir_fd[CG_MEMORY], "memory.oom_control", "oom_kill", &ret->oom_kills);
	return r == -ENOENT ? 0 : r;
}
