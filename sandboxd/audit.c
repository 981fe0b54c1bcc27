/* audit.c - see audit.h. */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"

enum audit_rule { AT_LEAST, PIPE_IS_WEAK };

static const struct {
	const char *path;
	const char *what;
	enum audit_rule rule;
	long min;
	const char *weak;
	const char *held; /* what keeps jobs safe from it all the same */
} audit_table[] = {
    {"/proc/sys/kernel/unprivileged_bpf_disabled", "kernel.unprivileged_bpf_disabled", AT_LEAST, 1,
     "unprivileged BPF is allowed on the host", "seccomp kills bpf() in jobs"},
    {"/proc/sys/vm/unprivileged_userfaultfd", "vm.unprivileged_userfaultfd", AT_LEAST, 0, NULL,
     "seccomp kills userfaultfd() in jobs"},
    {"/proc/sys/kernel/io_uring_disabled", "kernel.io_uring_disabled", AT_LEAST, 2,
     "io_uring is enabled for unprivileged processes", "seccomp kills io_uring_setup() in jobs"},
    {"/proc/sys/kernel/perf_event_paranoid", "kernel.perf_event_paranoid", AT_LEAST, 2,
     "perf events are open to unprivileged processes", "seccomp kills perf_event_open() in jobs"},
    {"/proc/sys/kernel/kptr_restrict", "kernel.kptr_restrict", AT_LEAST, 1,
     "kernel pointers are shown to unprivileged processes", "jobs see /proc/kallsyms masked"},
    {"/proc/sys/kernel/dmesg_restrict", "kernel.dmesg_restrict", AT_LEAST, 1,
     "the kernel log is readable by unprivileged processes", "seccomp kills syslog() in jobs"},
    {"/proc/sys/fs/protected_symlinks", "fs.protected_symlinks", AT_LEAST, 1,
     "symlinks in sticky directories are followed across owners",
     "each job's /tmp is its own, mounted nosymfollow"},
    {"/proc/sys/fs/protected_hardlinks", "fs.protected_hardlinks", AT_LEAST, 1,
     "hard links to others' files are allowed",
     "jobs have no writable mount shared with host files"},
    {"/proc/sys/kernel/yama/ptrace_scope", "kernel.yama.ptrace_scope", AT_LEAST, 1,
     "ptrace of same-uid processes is allowed", "seccomp kills ptrace() in jobs"},
    {"/proc/sys/kernel/core_pattern", "kernel.core_pattern", PIPE_IS_WEAK, 0,
     "core dumps go to a host program, which would receive a crashed job's memory",
     "jobs' RLIMIT_CORE=0 does not stop a pipe handler"},
};

static int read_line(const char *path, char *buf, size_t len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

size_t audit_host(struct audit_item *items, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(audit_table) && n < max; i++) {
		struct audit_item *it = &items[n++];
		it->what = audit_table[i].what;
		it->weak = NULL;
		it->held = audit_table[i].held;
		if (read_line(audit_table[i].path, it->value, sizeof(it->value)) < 0) {
			snprintf(it->value, sizeof(it->value), "absent");
			continue; /* an older kernel without the knob: nothing to weaken */
		}
		if (audit_table[i].rule == PIPE_IS_WEAK) {
			if (it->value[0] == '|')
				it->weak = audit_table[i].weak;
		} else if (audit_table[i].weak &&
			   strtol(it->value, NULL, 10) < audit_table[i].min) {
			it->weak = audit_table[i].weak;
		}
	}
	return n;
}
