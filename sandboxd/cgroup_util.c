/* cgroup_util.c - small cgroupfs readers and writers, always relative to a directory fd. */
#include "cgroup_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"

int cgu_write(int dirfd, const char *file, const char *val)
{
	_cleanup_close_ int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	size_t len = strlen(val);

	if (fd < 0)
		return -errno;
	if (write(fd, val, len) != (ssize_t)len)
		return errno ? -errno : -EIO;
	return 0;
}

int cgu_write_u64(int dirfd, const char *file, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return cgu_write(dirfd, file, buf);
}

int cgu_read(int dirfd, const char *file, char *buf, size_t len)
{
	_cleanup_close_ int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return (int)n;
}

int cgu_read_u64(int dirfd, const char *file, uint64_t *ret)
{
	char buf[64];
	char *end;
	int r = cgu_read(dirfd, file, buf, sizeof(buf));

	if (r < 0)
		return r;
	errno = 0;
	*ret = strtoull(buf, &end, 10);
	if (errno || end == buf)
		return -EBADMSG;
	return 0;
}

int cgu_read_key(int dirfd, const char *file, const char *key, uint64_t *ret)
{
	char buf[4096];
	size_t klen = strlen(key);
	int r = cgu_read(dirfd, file, buf, sizeof(buf));

	if (r < 0)
		return r;
	for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		if (!strncmp(line, key, klen) && (line[klen] == ' ' || line[klen] == '\t')) {
			*ret = strtoull(line + klen + 1, NULL, 10);
			return 0;
		}
	}
	return -ENOENT;
}

int cgu_self_path(const char *ctrl, char *buf, size_t len)
{
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	FILE *f = fopen("/proc/self/cgroup", "re");
	int r = -ENOENT;

	if (!f)
		return -errno;
	/* Lines are "id:controllers:path"; v2 is "0::path". */
	while (getline(&line, &cap, f) > 0) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		/* Split the line into its three fields in place. */
		*c1 = 0;
		*c2 = 0;
		c2[1 + strcspn(c2 + 1, "\n")] = 0;
		bool match = false;
		if (!*ctrl) {
			match = !strcmp(line, "0") && c2 == c1 + 1;
		} else {
			/* The controller list may be combined, e.g. "cpu,cpuacct". */
			char *save = NULL;
			for (char *t = strtok_r(c1 + 1, ",", &save); t; t = strtok_r(NULL, ",", &save))
				if (!strcmp(t, ctrl))
					match = true;
		}
		if (match) {
			r = snprintf(buf, len, "%s", c2 + 1) < (int)len ? 0 : -ENAMETOOLONG;
			break;
		}
	}
	fclose(f);
	return r;
}

/* Whether one line of /proc/PID/cgroup ends in "/name": job-1-1 is not job-1-12. */
static bool cg_line_ends_with(const char *text, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = strstr(text, name); p; p = strstr(p + 1, name))
		if (p > text && p[-1] == '/' && (p[n] == '\n' || p[n] == 0))
			return true;
	return false;
}

/* Kills what a dead daemon's job left in its cgroup: a job that outlived its daemon (a crash
 * the death signal did not cover). Each task is signalled through a pidfd after checking,
 * through that pid's /proc entry, that it is still in this cgroup: a recycled pid is never
 * hit. v2's cgroup.kill does all of it where it exists. */
static void kill_members(int base_fd, const char *name)
{
	char path[300], buf[8192], cg[512];
	_cleanup_close_ int dfd = openat(base_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int n;

	if (dfd < 0)
		return;
	if (cgu_write(dfd, "cgroup.kill", "1") == 0)
		return;
	n = cgu_read(dfd, "cgroup.procs", buf, sizeof(buf));
	for (char *p = buf, *end; n > 0 && *p; p = end) {
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		int pfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
		if (pfd < 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/cgroup", pid);
		_cleanup_close_ int cfd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t m = cfd >= 0 ? read(cfd, cg, sizeof(cg) - 1) : -1;
		if (m > 0) {
			cg[m] = 0;
			if (cg_line_ends_with(cg, name))
				(void)syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
		}
		close(pfd);
	}
}

bool cgu_base_shared(const struct cg_ctx *ctx, int i)
{
	for (int k = 0; k < i; k++)
		if (ctx->base_fd[k] >= 0 && !strcmp(ctx->base_path[k], ctx->base_path[i]))
			return true;
	return false;
}

int cgu_remove_stale(int base_fd, bool at_start, uint64_t *own_below)
{
	_cleanup_close_ int fd = openat(base_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	int left = 0;

	if (!d)
		return 0;
	fd = -1; /* owned by d now */
	while ((de = readdir(d))) {
		/* A job's cgroup, or a job slot's (v1, struct cg_slot: slot-<pid>-<k>-<n>). */
		bool slot = !strncmp(de->d_name, "slot-", 5);
		if (!slot && strncmp(de->d_name, "job-", 4))
			continue;
		/* job-<pid>-<seq> of a daemon that is still running is not stale: another
		 * sandboxd may have just made it and not yet moved its job in. Ours are stale
		 * only at start-up, before we make any (our pid may be a dead daemon's, recycled);
		 * later they are our live jobs. */
		char *end;
		long pid = strtol(de->d_name + (slot ? 5 : 4), &end, 10);
		unsigned long long seq = *end == '-' ? strtoull(end + 1, NULL, 10) : 0;
		bool ours = *end == '-' && pid == getpid();
		if (ours && !at_start && (slot || seq >= *own_below))
			continue; /* a job or a slot of ours */
		if (!ours && *end == '-' && pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM))
			continue;
		kill_members(base_fd, de->d_name);
		/* The killed tasks take a moment to leave. Start-up can afford to wait for it;
		 * the periodic sweep just comes back later. */
		for (int i = 0; i < (at_start ? 100 : 1); i++) {
			if (unlinkat(base_fd, de->d_name, AT_REMOVEDIR) == 0 || errno != EBUSY)
				break;
			if (at_start)
				usleep(10000);
		}
		if (faccessat(base_fd, de->d_name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
			left++;
			/* A dead daemon that had our pid left it busy: our own names start above
			 * it, and the sweep keeps trying it. */
			if (ours && at_start && !slot && seq >= *own_below)
				*own_below = seq + 1;
		}
	}
	closedir(d);
	return left;
}
