/* config.h - sandboxd's settings: one table of key, type, default, bounds and unit. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum cfg_cgroup_mode { CFG_CGROUP_AUTO, CFG_CGROUP_V1, CFG_CGROUP_V2 };

struct config {
	const char *socket_path;   /* the Unix socket; its directory is created 0750 */
	const char *gateway_user;  /* the one account besides root allowed to connect */
	const char *python;        /* interpreter exec'ed in the jail (a host path, bound ro) */
	const char *runner;        /* pyrunner/runner.py on the host; copied into each jail */
	const char *zygote;        /* pyexec-zygote on the host; copied into the zygote's jail */
	const char *jail_dir;      /* empty mount point each job mounts its root tmpfs on */
	const char *cgroup_mode;   /* auto, v1, v2 */
	const char *audit_root;    /* "/"; tests give a fake tree for the host audit to read */
	uint64_t max_running;      /* jobs at once; 0 = number of CPUs */
	uint64_t max_queued;       /* jobs waiting; over it the answer is BUSY */
	uint64_t timeout_ms;       /* default and cap of a job's wall-clock time */
	uint64_t memory_mb;        /* default and cap of a job's memory (cgroup, swap 0) */
	uint64_t pids_max;         /* tasks per job */
	uint64_t cpu_percent;      /* CPU bandwidth per job, percent of one CPU */
	uint64_t stdout_max;       /* bytes kept; the rest is dropped and flagged */
	uint64_t stderr_max;       /* bytes kept; the rest is dropped and flagged */
	uint64_t result_max;       /* bytes of result frame accepted */
	uint64_t tmp_size_mb;      /* size of the job's /tmp and /dev/shm, each */
	uint64_t tmp_inodes;       /* inodes of the job's /tmp and /dev/shm, each */
	uint64_t uid_base;         /* host uid/gid of slot 0; slot i runs as uid_base + i */
	uint64_t warm_spares;      /* warm path: job processes made ahead; 0 = cold path only */
	bool check;                /* --check: print the effective config and exit */
	bool verbose;
};

/* Fills defaults, then parses argv. Returns 0, 1 when --help was printed, or -EINVAL with a
 * message on stderr. */
int cfg_parse(struct config *c, int argc, char **argv);
void cfg_print(const struct config *c, FILE *out);
