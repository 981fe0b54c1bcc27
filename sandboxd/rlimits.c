/* rlimits.c - see rlimits.h. RLIMIT_AS is deliberately absent: it breaks numpy's large virtual
 * reservations and does not bound a job of several processes; the memory cgroup does. */
#include "rlimits.h"

#include <errno.h>
#include <sys/resource.h>

#include "cleanup.h"

int rl_apply(uint64_t timeout_ms, uint64_t nproc, uint64_t fsize_bytes)
{
	/* CPU seconds a little above the wall-clock deadline: the daemon's SIGKILL comes first,
	 * this only catches a job the daemon somehow lost track of. */
	rlim_t cpu = (rlim_t)(timeout_ms / 1000 + 2);
	const struct {
		int res;
		rlim_t soft, hard;
	} lim[] = {
		{ RLIMIT_NPROC, nproc, nproc }, /* per host uid, and every slot has its own */
		{ RLIMIT_FSIZE, fsize_bytes, fsize_bytes },
		{ RLIMIT_NOFILE, 256, 256 },
		{ RLIMIT_CORE, 0, 0 }, /* no core dumps of job memory on the host */
		{ RLIMIT_CPU, cpu, cpu + 1 },
		{ RLIMIT_MEMLOCK, 0, 0 },
		{ RLIMIT_MSGQUEUE, 0, 0 },
		{ RLIMIT_RTPRIO, 0, 0 },
		{ RLIMIT_NICE, 0, 0 },
		{ RLIMIT_STACK, 8 << 20, 8 << 20 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(lim); i++) {
		struct rlimit rl = { lim[i].soft, lim[i].hard };
		if (setrlimit(lim[i].res, &rl) < 0)
			return -errno;
	}
	return 0;
}
