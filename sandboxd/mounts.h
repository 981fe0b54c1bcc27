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
	char *zygote; /* pyexec-zygote's bytes, written into the zygote's root only; or NULL */
	size_t zygote_len;
};

/* Builds the plan: python binary, runner directory, stdlib, the libraries, numpy, pandas and
 * their dependencies. Returns 0 or -errno with *what naming the missing piece. */
int mnt_plan_build(struct mnt_plan *p, const char *python, const char *runner, const char *root,
		   uint64_t tmp_bytes, uint64_t tmp_inodes, const char **what);

void mnt_plan_free(struct mnt_plan *p);

/* Adds the zygote binary (the warm path) to the plan. Returns 0 or -errno. */
int mnt_plan_add_zygote(struct mnt_plan *p, const char *zygote);

/* In the job's child, inside its new mount and PID namespaces, as root of the initial user
 * namespace: builds the root and pivots into it. Returns 0 or -errno; *stage names the step.
 * with_zygote: the zygote's root, which also holds MNT_ZYGOTE (executable, read-only). */
int mnt_enter_jail(const struct mnt_plan *p, bool with_zygote, const char **stage);

/* In the zygote once it is warm: unmounts its /proc, /tmp and /dev/shm, which it needed only
 * to start CPython and import. Its spares mount their own there; nothing of the zygote's is
 * left for them to see, and each spare mounts without unmounting. */
int mnt_zygote_settle(void);

/* In a warm job's child, in a new mount namespace copied from the zygote's (already a jail
 * root built by mnt_enter_jail, settled by mnt_zygote_settle): mounts a /proc of the job's PID
 * namespace and fresh tmpfs on /tmp and /dev/shm, so nothing writable or PID-bound is shared. */
int mnt_renew_jail(const struct mnt_plan *p, const char **stage);

/* The runner's path inside the jail. */
#define MNT_RUNNER_DIR "/opt/pyexec"
#define MNT_ZYGOTE MNT_RUNNER_DIR "/pyexec-zygote"
