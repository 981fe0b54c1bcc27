/* zyproto.h - sandboxd <-> zygote control messages (the warm path), on a SOCK_SEQPACKET pair
 * that exists only between the two (fd 3 of the zygote). One message per packet, fixed-size
 * structs in host byte order (both ends are built from this header, on one machine), fds as
 * SCM_RIGHTS. The zygote never reads a script or a result: those travel on the job's own pipes.
 *
 *   sandboxd -> zygote  ZY_INIT   once, first: the job limits and the compiled seccomp filter
 *   zygote -> sandboxd  ZY_READY  once: the interpreter is up, numpy and pandas imported
 *   sandboxd -> zygote  ZY_SPAWN  + fds: make one job process (a "spare") with these fds
 *   zygote -> sandboxd  ZY_SPAWNED + its pidfd: the spare exists (its parent is sandboxd)
 */
#pragma once

#include <linux/filter.h>
#include <stdint.h>

#define ZY_VERSION 4
#define ZY_FD_CTL 3 /* the zygote's control socket */
#define ZY_MAX_FILTER 4096 /* BPF instructions */

enum zy_kind { ZY_INIT = 1, ZY_READY, ZY_SPAWN, ZY_SPAWNED };

struct zy_init {
	uint32_t kind;
	uint32_t version;
	uint64_t timeout_ms; /* the job defaults, for the rlimits of every spare */
	uint64_t pids_max;
	uint64_t fsize_bytes;
	uint64_t tmp_bytes; /* /tmp and /dev/shm of every spare */
	uint64_t tmp_inodes;
	uint32_t filter_len;
	uint32_t pad;
	struct sock_filter filter[ZY_MAX_FILTER]; /* only filter_len are sent */
};

struct zy_ready {
	uint32_t kind;
	int32_t err; /* 0, or a positive errno: the zygote cannot serve and exits */
	uint64_t init_ms; /* interpreter start and imports */
	int64_t huge_kib; /* its heap in transparent huge pages (zygote/huge.c), or -errno */
	/* Free blocks it took from its heaps (zygote/seal.c), or -errno, and what stays free
	 * after (pymalloc's blocks, glibc's bytes; -1: not known). */
	int64_t py_taken, py_left, libc_taken, libc_left;
};

/* fds, in this order: script_r, result_w, out_w, err_w, sync, then n_cg cgroup fds (v1:
 * cgroup.procs files to write "0" into; v2: one directory fd for CLONE_INTO_CGROUP). */
#define ZY_SPAWN_FDS 5
#define ZY_MAX_CG_FDS 4

struct zy_spawn {
	uint32_t kind;
	uint32_t cg_v2; /* 1: the one cgroup fd is a v2 directory */
	uint32_t n_cg;
	uint32_t pad;
	uint64_t seq;
};

struct zy_spawned {
	uint32_t kind;
	int32_t err; /* 0 with a pidfd attached, or a positive errno */
	uint64_t seq;
	int32_t pid; /* in the zygote's PID namespace, which is sandboxd's */
	uint32_t pad;
};
