/* audit.c - see audit.h. Every path is read relative to the audit's root directory. */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"

/* ---- sysctls ---- */

enum sysctl_rule {
	AT_LEAST,   /* weak below `bound` */
	AT_MOST,    /* weak above `bound` */
	NOT_A_PIPE, /* a "|program" value is the finding */
};

static const struct {
	const char *path;
	const char *what;
	enum sysctl_rule rule;
	long bound;
	enum audit_level level; /* of a value outside the rule */
	const char *why;
	const char *note;
} sysctls[] = {
    /* The seccomp filter kills the system calls behind these in every job: they are a second
     * line, so a weak value is reported and served. */
    {"proc/sys/kernel/unprivileged_bpf_disabled", "kernel.unprivileged_bpf_disabled", AT_LEAST, 1,
     AUDIT_WEAK, "unprivileged BPF is allowed on the host", "seccomp kills bpf() in jobs"},
    {"proc/sys/vm/unprivileged_userfaultfd", "vm.unprivileged_userfaultfd", AT_MOST, 0, AUDIT_WEAK,
     "userfaultfd is open to unprivileged processes", "seccomp kills userfaultfd() in jobs"},
    {"proc/sys/kernel/io_uring_disabled", "kernel.io_uring_disabled", AT_LEAST, 2, AUDIT_WEAK,
     "io_uring is enabled for unprivileged processes", "seccomp kills io_uring_setup() in jobs"},
    {"proc/sys/kernel/perf_event_paranoid", "kernel.perf_event_paranoid", AT_LEAST, 2, AUDIT_WEAK,
     "perf events are open to unprivileged processes", "seccomp kills perf_event_open() in jobs"},
    {"proc/sys/kernel/unprivileged_userns_clone", "kernel.unprivileged_userns_clone", AT_MOST, 0,
     AUDIT_WEAK, "unprivileged processes may create user namespaces",
     "seccomp kills unshare(), setns() and clone() with namespace flags in jobs"},
    {"proc/sys/kernel/kptr_restrict", "kernel.kptr_restrict", AT_LEAST, 1, AUDIT_WEAK,
     "kernel pointers are shown to unprivileged processes", "jobs see /proc/kallsyms masked"},
    {"proc/sys/kernel/dmesg_restrict", "kernel.dmesg_restrict", AT_LEAST, 1, AUDIT_WEAK,
     "the kernel log is readable by unprivileged processes", "seccomp kills syslog() in jobs"},
    {"proc/sys/fs/protected_symlinks", "fs.protected_symlinks", AT_LEAST, 1, AUDIT_WEAK,
     "symlinks in sticky directories are followed across owners",
     "each job's /tmp is its own, mounted nosymfollow"},
    {"proc/sys/fs/protected_hardlinks", "fs.protected_hardlinks", AT_LEAST, 1, AUDIT_WEAK,
     "hard links to others' files are allowed",
     "jobs have no writable mount shared with host files"},
    {"proc/sys/fs/protected_fifos", "fs.protected_fifos", AT_LEAST, 1, AUDIT_WEAK,
     "FIFOs in sticky directories are opened across owners",
     "jobs share no writable directory with the host or with each other"},
    {"proc/sys/fs/protected_regular", "fs.protected_regular", AT_LEAST, 1, AUDIT_WEAK,
     "files in sticky directories are opened across owners",
     "jobs share no writable directory with the host or with each other"},
    {"proc/sys/kernel/yama/ptrace_scope", "kernel.yama.ptrace_scope", AT_LEAST, 1, AUDIT_WEAK,
     "ptrace of same-uid processes is allowed", "seccomp kills ptrace() in jobs"},
    /* Fatal: the kernel runs the handler as root, in the host's namespaces and cgroup, and
     * streams it the whole memory of a crashed job process (a script crashes one at will, with
     * ctypes); the usual handlers (systemd-coredump, apport) keep it on the host's disk. The
     * jail's RLIMIT_CORE=0 stops a core file, not a pipe. */
    {"proc/sys/kernel/core_pattern", "kernel.core_pattern", NOT_A_PIPE, 0, AUDIT_FATAL,
     "core dumps go to a host program, which would receive a crashed job's memory as root, "
     "outside the job's namespaces and limits (RLIMIT_CORE=0 does not stop a pipe handler)",
     "set kernel.core_pattern to a file name such as 'core'; a job's read-only root takes none"},
};

/* ---- the namespaces every job is cloned with (jail.c) ---- */

static const struct {
	const char *ns;	    /* under /proc/self/ns: present when the kernel has the type */
	const char *sysctl; /* its count limit; 0 forbids new ones */
	const char *what;
	const char *why;
} namespaces[] = {
    {"proc/self/ns/user", "proc/sys/user/max_user_namespaces", "user.max_user_namespaces",
     "no user namespace can be made, and each job runs as uid 1000 of its own one, mapped to an "
     "unprivileged host uid"},
    {"proc/self/ns/pid", "proc/sys/user/max_pid_namespaces", "user.max_pid_namespaces",
     "no PID namespace can be made, and each job's processes live in one of their own"},
    {"proc/self/ns/net", "proc/sys/user/max_net_namespaces", "user.max_net_namespaces",
     "no network namespace can be made, and each job has an empty one instead of the host's "
     "network"},
    {"proc/self/ns/mnt", "proc/sys/user/max_mnt_namespaces", "user.max_mnt_namespaces",
     "no mount namespace can be made, and each job's read-only root is built in one"},
    {"proc/self/ns/ipc", "proc/sys/user/max_ipc_namespaces", "user.max_ipc_namespaces",
     "no IPC namespace can be made, and each job's SysV IPC is its own"},
    {"proc/self/ns/uts", "proc/sys/user/max_uts_namespaces", "user.max_uts_namespaces",
     "no UTS namespace can be made, and each job has a hostname of its own"},
    {"proc/self/ns/cgroup", "proc/sys/user/max_cgroup_namespaces", "user.max_cgroup_namespaces",
     "no cgroup namespace can be made, and each job sees only its own cgroup"},
};

/* ---- the cgroup controllers every job cgroup gets (cgroup_v1.c, cgroup_v2.c) ---- */

static const struct {
	const char *name;
	const char *what;
	const char *why;
} controllers[] = {
    {"memory", "cgroup.memory",
     "no memory controller on cgroup v2 or v1: nothing would bound a job's memory but the "
     "host's own"},
    {"pids", "cgroup.pids",
     "no pids controller on cgroup v2 or v1: nothing would bound a job's tasks (a fork bomb) but "
     "the host's pid limit"},
    {"cpu", "cgroup.cpu",
     "no cpu controller on cgroup v2 or v1: a job's threads could take every CPU of the host "
     "until its deadline"},
};

/* The first line of root/path, without its newline. */
static int read_line_at(int rootfd, const char *path, char *buf, size_t len)
{
	_cleanup_close_ int fd = openat(rootfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
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

static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || p[n] == 0))
			return true;
	return false;
}

static struct audit_item *add(struct audit_report *r, const char *what)
{
	struct audit_item *it;

	if (r->n == AUDIT_MAX)
		return NULL; /* never: see the assertion in audit_host() */
	it = &r->items[r->n++];
	*it = (struct audit_item){.what = what};
	return it;
}

static void judge(struct audit_report *r, struct audit_item *it, enum audit_level level,
		  const char *why, const char *note)
{
	it->level = level;
	it->why = why;
	it->note = note;
	if (level == AUDIT_WEAK)
		r->n_weak++;
	else if (level == AUDIT_FATAL)
		r->n_fatal++;
}

/* A /proc mounted with subset=pid (systemd's ProcSubset=pid) hides every sysctl: "absent" would
 * then read as "a kernel without the knob", and a core_pattern pipe would pass unseen. What
 * cannot be checked is a finding of its own. Returns whether /proc/sys can be read. */
static bool audit_proc_sys(int rootfd, struct audit_report *r)
{
	struct audit_item *it;
	struct stat st;

	if (fstatat(rootfd, "proc/sys/kernel", &st, 0) == 0)
		return true;
	it = add(r, "proc.sys");
	if (!it)
		return false;
	snprintf(it->value, sizeof(it->value), "hidden");
	judge(r, it, AUDIT_FATAL,
	      "sandboxd cannot read /proc/sys, so the settings isolation depends on (core_pattern, "
	      "seccomp, namespace limits) go unchecked",
	      "let it read /proc/sys: no ProcSubset=pid (ProtectKernelTunables=yes keeps it "
	      "read-only)");
	return false;
}

static void audit_sysctls(int rootfd, struct audit_report *r)
{
	for (size_t i = 0; i < ARRAY_SIZE(sysctls); i++) {
		struct audit_item *it = add(r, sysctls[i].what);
		bool bad;
		long v;

		if (!it)
			return;
		int rr = read_line_at(rootfd, sysctls[i].path, it->value, sizeof(it->value));
		if (rr == -ENOENT) {
			/* A kernel without the knob lacks what it guards. */
			snprintf(it->value, sizeof(it->value), "absent");
			continue;
		}
		if (rr < 0) {
			/* What cannot be read cannot be vouched for: judged as if it were bad. */
			snprintf(it->value, sizeof(it->value), "unreadable (%s)", strerror(-rr));
			judge(r, it, sysctls[i].level, sysctls[i].why, sysctls[i].note);
			continue;
		}
		v = strtol(it->value, NULL, 10);
		switch (sysctls[i].rule) {
		case AT_LEAST:
			bad = v < sysctls[i].bound;
			break;
		case AT_MOST:
			bad = v > sysctls[i].bound;
			break;
		case NOT_A_PIPE:
		default:
			/* "|prog" pipes the core to a program, "@sock" and "@@sock" (Linux 6.16)
			 * stream it to a host socket; both ignore the job's RLIMIT_CORE of 0. */
			bad = it->value[0] == '|' || it->value[0] == '@';
			break;
		}
		if (bad)
			judge(r, it, sysctls[i].level, sysctls[i].why, sysctls[i].note);
	}
}

/* The filter is an allow-list whose default and whose dangerous calls are KILL_PROCESS, and
 * whose friendlier refusals are ERRNO. */
static void audit_seccomp(int rootfd, struct audit_report *r)
{
	struct audit_item *it = add(r, "kernel.seccomp.actions_avail");

	if (!it)
		return;
	if (read_line_at(rootfd, "proc/sys/kernel/seccomp/actions_avail", it->value,
			 sizeof(it->value)) < 0) {
		snprintf(it->value, sizeof(it->value), "absent");
		judge(r, it, AUDIT_FATAL,
		      "the kernel has no seccomp filters, and every job runs under a system-call "
		      "allow-list",
		      "a kernel built with CONFIG_SECCOMP_FILTER");
		return;
	}
	if (!has_word(it->value, "kill_process") || !has_word(it->value, "errno"))
		judge(
		    r, it, AUDIT_FATAL,
		    "the kernel lacks the seccomp actions the jobs' allow-list uses (kill_process, "
		    "errno)",
		    "a kernel of 4.14 or later built with CONFIG_SECCOMP_FILTER");
}

static void audit_namespaces(int rootfd, struct audit_report *r)
{
	for (size_t i = 0; i < ARRAY_SIZE(namespaces); i++) {
		struct audit_item *it = add(r, namespaces[i].what);
		struct stat st;

		if (!it)
			return;
		if (fstatat(rootfd, namespaces[i].ns, &st, 0) < 0) {
			snprintf(it->value, sizeof(it->value), "unsupported by the kernel");
			judge(r, it, AUDIT_FATAL, namespaces[i].why,
			      "a kernel built with every namespace type (CONFIG_NAMESPACES)");
			continue;
		}
		int rr = read_line_at(rootfd, namespaces[i].sysctl, it->value, sizeof(it->value));
		if (rr == -ENOENT) {
			snprintf(it->value, sizeof(it->value), "absent"); /* no limit to set */
			continue;
		}
		if (rr < 0) {
			snprintf(it->value, sizeof(it->value), "unreadable (%s)", strerror(-rr));
			judge(r, it, AUDIT_FATAL, namespaces[i].why,
			      "make the limit readable to sandboxd, and above 0");
			continue;
		}
		if (strtol(it->value, NULL, 10) <= 0)
			judge(r, it, AUDIT_FATAL, namespaces[i].why,
			      "raise the limit above 0 (sysctl), for at least --max-running jobs");
	}
}

/* Where a controller can be had: listed in the v2 root's cgroup.controllers (unified or hybrid
 * mount), or bound to a mounted v1 hierarchy (/proc/cgroups: a hierarchy id and enabled). */
static const char *controller_home(const char *name, const char *v2_list, const char *v1_table)
{
	char fmt[64], line[256];
	const char *p = v1_table;

	if (has_word(v2_list, name))
		return "v2";
	snprintf(fmt, sizeof(fmt), "%s\t", name);
	while (p && *p) {
		size_t n = strcspn(p, "\n");
		unsigned hier = 0, ncg = 0, enabled = 0;

		snprintf(line, sizeof(line), "%.*s", (int)n, p);
		p += n + (p[n] == '\n');
		if (strncmp(line, fmt, strlen(fmt)))
			continue;
		if (sscanf(line + strlen(fmt), "%u %u %u", &hier, &ncg, &enabled) != 3)
			return "unreadable";
		if (!enabled)
			return "disabled";
		return hier ? "v1" : "not mounted";
	}
	return "absent";
}

static int read_all_at(int rootfd, const char *path, char *buf, size_t len)
{
	_cleanup_close_ int fd = openat(rootfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	size_t off = 0;
	ssize_t n;

	buf[0] = 0;
	if (fd < 0)
		return -errno;
	while (off + 1 < len && (n = read(fd, buf + off, len - 1 - off)) > 0)
		off += (size_t)n;
	buf[off] = 0;
	return n < 0 ? -errno : 0;
}

static void audit_cgroups(int rootfd, const struct audit_cgroup *cg, struct audit_report *r)
{
	char v2[512] = "", v1[4096] = "", swaps[1024];
	struct audit_item *it;

	if (read_line_at(rootfd, "sys/fs/cgroup/cgroup.controllers", v2, sizeof(v2)) < 0)
		(void)read_line_at(rootfd, "sys/fs/cgroup/unified/cgroup.controllers", v2,
				   sizeof(v2));
	(void)read_all_at(rootfd, "proc/cgroups", v1, sizeof(v1));
	for (size_t i = 0; i < ARRAY_SIZE(controllers); i++) {
		const char *home = controller_home(controllers[i].name, v2, v1);

		it = add(r, controllers[i].what);
		if (!it)
			return;
		snprintf(it->value, sizeof(it->value), "%s", home);
		if (strcmp(home, "v1") && strcmp(home, "v2"))
			judge(
			    r, it, AUDIT_FATAL, controllers[i].why,
			    "enable the controller (no cgroup_disable= on the kernel command line) "
			    "on cgroup v2, or mount its v1 hierarchy");
	}
	/* Swap: the hierarchy in use says whether it can hold a job at 0; without swap on the
	 * host there is nothing to hold. */
	if (!cg || !cg->version)
		return;
	it = add(r, "cgroup.swap");
	if (!it)
		return;
	if (cg->swap_limited) {
		snprintf(it->value, sizeof(it->value), "limited");
		return;
	}
	/* /proc/swaps: a header line, then one line per active swap area. */
	if (read_all_at(rootfd, "proc/swaps", swaps, sizeof(swaps)) < 0 || !strchr(swaps, '\n') ||
	    !strchr(swaps, '\n')[1]) {
		snprintf(it->value, sizeof(it->value), "not accounted, no swap");
		return;
	}
	snprintf(it->value, sizeof(it->value), "not accounted, swap on");
	judge(r, it, AUDIT_WEAK,
	      "job cgroups cannot hold swap at 0: a job may use the host's swap beyond its memory "
	      "limit",
	      "its RAM stays within the limit and the host's swap bounds the rest; boot with swap "
	      "accounting or turn swap off");
}

int audit_host(const char *root, const struct audit_cgroup *cg, struct audit_report *ret)
{
	_cleanup_close_ int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	_Static_assert(ARRAY_SIZE(sysctls) + 2 + ARRAY_SIZE(namespaces) + ARRAY_SIZE(controllers) +
			       1 <=
			   AUDIT_MAX,
		       "AUDIT_MAX holds every finding");
	*ret = (struct audit_report){0};
	if (rootfd < 0)
		return -errno;
	if (audit_proc_sys(rootfd, ret)) {
		audit_sysctls(rootfd, ret);
		audit_seccomp(rootfd, ret);
	}
	audit_namespaces(rootfd, ret);
	audit_cgroups(rootfd, cg, ret);
	return 0;
}

const char *audit_refusal(const struct audit_report *r, char *buf, size_t len)
{
	size_t i;

	buf[0] = 0;
	for (i = 0; i < r->n && r->items[i].level != AUDIT_FATAL; i++)
		;
	if (i == r->n)
		return buf;
	if (r->n_fatal > 1)
		snprintf(buf, len, "host audit: %s = %s: %s (and %zu more in sandboxd's log)",
			 r->items[i].what, r->items[i].value, r->items[i].why, r->n_fatal - 1);
	else
		snprintf(buf, len, "host audit: %s = %s: %s", r->items[i].what, r->items[i].value,
			 r->items[i].why);
	return buf;
}
