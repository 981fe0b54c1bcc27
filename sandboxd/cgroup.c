/* cgroup.c - picks the hierarchy and does what v1 and v2 jobs have in common. */
#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup_util.h"
#include "cleanup.h"

static void cg_ctx_reset(struct cg_ctx *ctx)
{
	memset(ctx, 0, sizeof(*ctx));
	for (int i = 0; i < CG_V1_N; i++)
		ctx->base_fd[i] = -1;
}

static int hierarchy_init(struct cg_ctx *ctx, const char *mode, const char **why)
{
	int r;

	const char *why_v2 = "";

	cg_ctx_reset(ctx);
	*why = "";
	if (strcmp(mode, "v1")) {
		r = cg_v2_init(ctx, why);
		if (r == 0 || !strcmp(mode, "v2"))
			return r;
		why_v2 = *why;
		cg_fini(ctx);
		cg_ctx_reset(ctx);
	}
	/* v2 lacks our controllers here (or v1 was asked for): every job still gets memory,
	 * pids and CPU limits, from the v1 hierarchies. */
	r = cg_v1_init(ctx, why);
	if (r < 0 && *why_v2) {
		/* Both failed: the v2 reason is usually the one that matters. */
		snprintf(ctx->why, sizeof(ctx->why), "%s; and v1: %s", why_v2, *why);
		*why = ctx->why;
	}
	return r;
}

static int remove_stale(struct cg_ctx *ctx, bool at_start);

int cg_init(struct cg_ctx *ctx, const char *mode, const char **why)
{
	int r = hierarchy_init(ctx, mode, why);

	if (r == 0)
		ctx->stale_at_start = remove_stale(ctx, true);
	return r;
}

void cg_fini(struct cg_ctx *ctx)
{
	for (unsigned k = 0; k < ctx->n_slots; k++)
		cg_v1_slot_close(ctx, &ctx->slots[k], true);
	free(ctx->slots);
	for (int i = 0; i < CG_V1_N; i++)
		if (ctx->base_fd[i] >= 0)
			close(ctx->base_fd[i]);
	cg_ctx_reset(ctx);
}

int cg_slots_init(struct cg_ctx *ctx, unsigned n)
{
	if (ctx->version != 1)
		return 0;
	ctx->slots = calloc(n, sizeof(*ctx->slots));
	if (!ctx->slots)
		return -ENOMEM;
	ctx->n_slots = n;
	ctx->slot_keeps = cg_v1_slot_keeps(ctx);
	for (unsigned k = 0; k < n; k++)
		for (int i = 0; i < CG_V1_N; i++)
			ctx->slots[k].dir_fd[i] = ctx->slots[k].procs_fd[i] = -1;
	return 0;
}

void cg_slot_retire(struct cg_ctx *ctx, int slot)
{
	if (slot >= 0 && (unsigned)slot < ctx->n_slots)
		cg_v1_slot_close(ctx, &ctx->slots[slot], true);
}

/* Each base directory once: the start-up pass (at_start) or a later sweep. */
static int remove_stale(struct cg_ctx *ctx, bool at_start)
{
	int left = 0;

	for (int i = 0; i < CG_V1_N; i++)
		if (ctx->base_fd[i] >= 0 && !cgu_base_shared(ctx, i))
			left += cgu_remove_stale(ctx->base_fd[i], at_start, &ctx->own_below);
	return left;
}

int cg_sweep_stale(struct cg_ctx *ctx)
{
	return remove_stale(ctx, false);
}

const char *cg_describe(const struct cg_ctx *ctx, char *buf, unsigned len)
{
	if (ctx->version == 2)
		snprintf(buf, len, "cgroup v2 at %s (swap limit %s, cgroup.kill %s)",
			 ctx->base_path[0], ctx->swap_limited ? "on" : "off",
			 ctx->v2_kill ? "yes" : "no");
	else
		snprintf(buf, len, "cgroup v1 fallback: memory at %s, pids at %s, cpu at %s (swap limit %s)",
			 ctx->base_path[CG_MEMORY], ctx->base_path[CG_PIDS], ctx->base_path[CG_CPU],
			 ctx->swap_limited ? "on" : "off");
	return buf;
}

int cg_job_create(struct cg_ctx *ctx, const struct cg_limits *lim, int slot, struct cg_job *ret)
{
	struct cg_job j = { .version = ctx->version, .oom_efd = -1 };
	int r;

	for (int i = 0; i < CG_V1_N; i++)
		j.dir_fd[i] = j.procs_fd[i] = -1;
	/* The daemon's pid in the name: every sandboxd on a host (a test run next to the
	 * production one) shares the "pyexec" parent, and a mkdir that found another daemon's
	 * job-N would put two jobs in one cgroup, sharing and overwriting their limits. */
	if (ctx->seq < ctx->own_below)
		ctx->seq = ctx->own_below; /* past a dead daemon's with our pid (see own_below) */
	snprintf(j.name, sizeof(j.name), "job-%d-%llu", (int)getpid(),
		 (unsigned long long)++ctx->seq);
	r = ctx->version == 2 ? cg_v2_job_create(ctx, lim, &j)
			      : cg_v1_job_create(ctx, lim, slot, &j);
	if (r < 0) {
		(void)cg_job_destroy(ctx, &j);
		cg_job_abandon(&j);
		return r;
	}
	*ret = j;
	return 0;
}

int cg_job_clone_fd(const struct cg_job *j)
{
	return j->version == 2 ? j->dir_fd[0] : -1;
}

int cg_job_attach_self(const struct cg_job *j)
{
	/* v1 has no CLONE_INTO_CGROUP: the child writes "0" (itself) into each cgroup.procs
	 * through fds the daemon opened, before it runs anything else. */
	for (int i = 0; i < CG_V1_N; i++)
		if (j->procs_fd[i] >= 0 && write(j->procs_fd[i], "0", 1) != 1)
			return -errno;
	return 0;
}

int cg_job_kill(const struct cg_job *j)
{
	/* v1 has no cgroup.kill; the caller kills the job's PID namespace init, which takes
	 * every task of the job with it (no task can leave the namespace: setns is denied). */
	if (j->version == 2 && j->dir_fd[0] >= 0)
		return cgu_write(j->dir_fd[0], "cgroup.kill", "1");
	return 0;
}

int cg_job_stats(const struct cg_job *j, struct cg_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	return j->version == 2 ? cg_v2_job_stats(j, ret) : cg_v1_job_stats(j, ret);
}

void cg_job_close_child_fds(struct cg_job *j)
{
	for (int i = 0; i < CG_V1_N; i++)
		if (j->procs_fd[i] >= 0) {
			if (!(j->kept & (1u << i)))
				close(j->procs_fd[i]);
			j->procs_fd[i] = -1;
		}
}

int cg_job_destroy(struct cg_ctx *ctx, struct cg_job *j)
{
	int r = 0;

	cg_job_close_child_fds(j);
	for (int i = 0; i < CG_V1_N; i++) {
		if (j->dir_fd[i] < 0)
			continue;
		if (j->kept & (1u << i)) {
			j->dir_fd[i] = -1; /* the slot's, for its next job */
			continue;
		}
		if (unlinkat(ctx->base_fd[i], j->name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
			r = -errno;
			continue; /* keep the fd: the caller retries */
		}
		close(j->dir_fd[i]);
		j->dir_fd[i] = -1;
	}
	if (r == 0 && j->oom_efd >= 0) {
		close(j->oom_efd);
		j->oom_efd = -1;
	}
	return r;
}

void cg_job_abandon(struct cg_job *j)
{
	cg_job_close_child_fds(j);
	for (int i = 0; i < CG_V1_N; i++) {
		if (j->dir_fd[i] >= 0 && !(j->kept & (1u << i)))
			close(j->dir_fd[i]);
		j->dir_fd[i] = -1;
	}
	if (j->oom_efd >= 0)
		close(j->oom_efd);
	j->oom_efd = -1;
}

int cg_job_remove_now(struct cg_ctx *ctx, struct cg_job *j)
{
	int r;

	(void)cg_job_kill(j);
	/* Killed tasks take a moment to leave (their memory is being freed): up to 0.5 s. */
	for (int i = 0; (r = cg_job_destroy(ctx, j)) == -EBUSY && i < 50; i++)
		usleep(10000);
	cg_job_abandon(j); /* nothing comes back for what is left */
	return r;
}
