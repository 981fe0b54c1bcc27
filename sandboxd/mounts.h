/* mounts.h - the job's filesystem: a fresh tmpfs root with read-only binds of exactly what
 * CPython, numpy and pandas need, fresh /proc, minimal /dev and /etc, capped /tmp and /dev/shm. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MNT_MAX_BINDS 48
#define MNT_MAX_LINKS 64

struct mnt_bind {
	char src[256]; /* host path */
	char dst[256]; /* path inside the jail */
	bool is_dir;
};

struct mnt_link {
	char path[256];   /* inside the jail */
	char target[256]; /* symlink target */
};

/* Resolved once at start-up, so a job's child only mounts (it never searches the host). */
struct mnt_plan {
	struct mnt_bind binds[MNT_MAX_BINDS];
	size_t n_binds;
	struct mnt_link links[MNT_MAX_LINKS];
	size_t n_links;
	char root[256]; /* empty host directory each job mounts its own root tmpfs on */
	uint64_t tmp_bytes;
	uint64_t tmp_inodes;
	char *runner; /* runner.py's bytes, written into each job's root */
	size_t runner_len;
};

/* Builds the plan: python binary, runner directory, stdlib, the libraries, numpy, pandas and
 * their dependencies. Returns 0 or -errno with *what naming the missing piece. */
int mnt_plan_build(struct mnt_plan *p, const char *python, const char *runner, const char *root,
		   uint64_t tmp_bytes, uint64_t tmp_inodes, const char **what);

void mnt_plan_free(struct mnt_plan *p);

/* In the job's child, inside its new mount and PID namespaces, as root of the initial user
 * namespace: builds the root and pivots into it. Returns 0 or -errno; *stage names the step. */
int mnt_enter_jail(const struct mnt_plan *p, const char **stage);

/* The runner's path inside the jail. */
#define MNT_RUNNER_DIR "/opt/pyexec"
