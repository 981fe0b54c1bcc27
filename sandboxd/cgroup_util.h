/* cgroup_util.h - cgroupfs file helpers shared by the v1 and v2 backends (internal). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "cgroup.h"

int cgu_write(int dirfd, const char *file, const char *val);
int cgu_write_u64(int dirfd, const char *file, uint64_t v);
/* Reads a small cgroupfs file into buf (NUL-terminated). Returns bytes or -errno. */
int cgu_read(int dirfd, const char *file, char *buf, size_t len);
int cgu_read_u64(int dirfd, const char *file, uint64_t *ret);
/* Finds "key N" (a space or a tab between) in a flat-keyed file such as memory.events,
 * cpu.stat or /proc/self/status. */
int cgu_read_key(int dirfd, const char *file, const char *key, uint64_t *ret);
/* Our own path in a hierarchy from /proc/self/cgroup: "" for v2, a controller name for v1. */
int cgu_self_path(const char *ctrl, char *buf, size_t len);
/* Kills what is left in job-* (and v1 slot-*) directories of daemons no longer running and
 * removes them, but not those of another sandboxd that is still running (job-<its pid>-<seq>,
 * slot-<its pid>-<k>-<n>). at_start: those with our pid count as stale too (a dead daemon had it
 * before us), each gets up to 1 s to empty, and *own_below is raised above the sequence number
 * of any job-* still busy; later, ours below *own_below are the only ones of ours treated as
 * stale. Returns how many are still there (busy: their tasks are still leaving). */
int cgu_remove_stale(int base_fd, bool at_start, uint64_t *own_below);
/* v1: base directory i is one an earlier controller already has (cpu and cpuacct are often
 * one hierarchy). */
bool cgu_base_shared(const struct cg_ctx *ctx, int i);

int cg_v1_init(struct cg_ctx *ctx, const char **why);
int cg_v1_job_create(struct cg_ctx *ctx, const struct cg_limits *lim, int slot,
		     struct cg_job *j);
void cg_v1_slot_close(struct cg_ctx *ctx, struct cg_slot *sl, bool remove);
unsigned cg_v1_slot_keeps(const struct cg_ctx *ctx);
int cg_v1_job_stats(const struct cg_job *j, struct cg_stats *ret);
int cg_v2_init(struct cg_ctx *ctx, const char **why);
int cg_v2_job_create(struct cg_ctx *ctx, const struct cg_limits *lim, struct cg_job *j);
int cg_v2_job_stats(const struct cg_job *j, struct cg_stats *ret);
