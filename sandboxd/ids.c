/* ids.c - see ids.h. */
#include "ids.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cgroup_util.h"
#include "cleanup.h"

int ids_write_maps(pid_t pid, int pidfd, uid_t host_id)
{
	char dir[64], map[64];
	_cleanup_close_ int dfd = -1;
	int r;

	snprintf(dir, sizeof(dir), "/proc/%d", (int)pid);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	/* The directory was opened while the pidfd's process is alive, so it is our child's
	 * and not a recycled pid's. */
	if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0)
		return -errno;
	/* setgroups must be denied before an unprivileged gid_map, and it keeps the job from
	 * ever dropping a group to escape a group-based deny. */
	if ((r = cgu_write(dfd, "setgroups", "deny")) < 0)
		return r;
	snprintf(map, sizeof(map), "%u %u 1\n", IDS_INNER, (unsigned)host_id);
	if ((r = cgu_write(dfd, "uid_map", map)) < 0)
		return r;
	return cgu_write(dfd, "gid_map", map);
}

int ids_become_inner(void)
{
	/* gid first: after the uid changes we could not change it any more. */
	if (setresgid(IDS_INNER, IDS_INNER, IDS_INNER) < 0)
		return -errno;
	if (setresuid(IDS_INNER, IDS_INNER, IDS_INNER) < 0)
		return -errno;
	return 0;
}

int ids_pin_oom_score(pid_t pid, int pidfd)
{
	char dir[64];
	_cleanup_close_ int dfd = -1;

	snprintf(dir, sizeof(dir), "/proc/%d", (int)pid);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0)
		return -errno;
	return cgu_write(dfd, "oom_score_adj", "1000");
}
