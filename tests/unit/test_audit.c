/* test_audit.c - sandboxd's host audit (sandboxd/audit.c) on fake host trees: which findings are
 * fatal, which are weak, how each value is read and what the refusal says. No root needed. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "check.h"

static char root[64];

/* root/path := text (NULL removes it), making the directories on the way. */
static void put(const char *path, const char *text)
{
	char full[512];
	FILE *f;

	snprintf(full, sizeof(full), "%s/%s", root, path);
	if (!text) {
		unlink(full);
		return;
	}
	for (char *p = full + strlen(root) + 1; (p = strchr(p, '/')); p++) {
		*p = 0;
		mkdir(full, 0755);
		*p = '/';
	}
	f = fopen(full, "we");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		perror(full);
		exit(2);
	}
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void fresh_hardened_host(void)
{
	static const char *const ns[] = {"user", "pid", "net", "mnt", "ipc", "uts", "cgroup"};
	char path[128];

	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	mkdir(root, 0755);
	put("proc/sys/kernel/unprivileged_bpf_disabled", "2\n");
	put("proc/sys/vm/unprivileged_userfaultfd", "0\n");
	put("proc/sys/kernel/io_uring_disabled", "2\n");
	put("proc/sys/kernel/perf_event_paranoid", "3\n");
	put("proc/sys/kernel/kptr_restrict", "1\n");
	put("proc/sys/kernel/dmesg_restrict", "1\n");
	put("proc/sys/fs/protected_symlinks", "1\n");
	put("proc/sys/fs/protected_hardlinks", "1\n");
	put("proc/sys/fs/protected_fifos", "1\n");
	put("proc/sys/fs/protected_regular", "2\n");
	put("proc/sys/kernel/yama/ptrace_scope", "1\n");
	put("proc/sys/kernel/core_pattern", "core\n");
	put("proc/sys/kernel/seccomp/actions_avail",
	    "kill_process kill_thread trap errno user_notif trace log allow\n");
	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		snprintf(path, sizeof(path), "proc/self/ns/%s", ns[i]);
		put(path, "");
		snprintf(path, sizeof(path), "proc/sys/user/max_%s_namespaces", ns[i]);
		put(path, "63000\n");
	}
	put("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
	put("proc/cgroups", "#subsys_name\thierarchy\tnum_cgroups\tenabled\n");
	put("proc/swaps", "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
}

static const struct audit_cgroup cg_ok = {.version = 2, .swap_limited = true};

static struct audit_report rep;

static void audit(const struct audit_cgroup *cg)
{
	int r = audit_host(root, cg, &rep);

	if (r < 0) {
		fprintf(stderr, "audit_host(%s): %s\n", root, strerror(-r));
		exit(2);
	}
}

static const struct audit_item *item(const char *what)
{
	for (size_t i = 0; i < rep.n; i++)
		if (!strcmp(rep.items[i].what, what))
			return &rep.items[i];
	return NULL;
}

/* The finding `what` has `value` and `level`, and it is the only finding that is not ok. */
static void expect_only(const char *what, const char *value, enum audit_level level)
{
	const struct audit_item *it = item(what);

	CHECK(it && !strcmp(it->value, value), "%s reads as '%s' (got '%s')", what, value,
	      it ? it->value : "no such item");
	CHECK(it && it->level == level, "%s = %s is %s", what, value,
	      level == AUDIT_FATAL  ? "fatal"
	      : level == AUDIT_WEAK ? "weak"
				    : "ok");
	CHECK(rep.n_weak + rep.n_fatal == (level != AUDIT_OK),
	      "%s = %s: nothing else is found (%zu weak, %zu fatal)", what, value, rep.n_weak,
	      rep.n_fatal);
	CHECK(level == AUDIT_OK || (it && it->why && *it->why && it->note && *it->note),
	      "%s = %s says why and what helps", what, value);
}

static void one(const char *path, const char *text, const char *what, const char *value,
		enum audit_level level)
{
	fresh_hardened_host();
	put(path, text);
	audit(&cg_ok);
	expect_only(what, value, level);
}

int main(void)
{
	char buf[1024];

	snprintf(root, sizeof(root), "/tmp/pyexec-audit-XXXXXX");
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 2;
	}

	/* A hardened host: every item read, nothing found, no refusal. */
	fresh_hardened_host();
	audit(&cg_ok);
	CHECK(rep.n >= 25 && rep.n_weak == 0 && rep.n_fatal == 0,
	      "hardened host: %zu items, none weak or fatal", rep.n);
	CHECK(!strcmp(audit_refusal(&rep, buf, sizeof(buf)), ""), "hardened host: no refusal");
	CHECK(item("cgroup.memory") && !strcmp(item("cgroup.memory")->value, "v2"),
	      "memory is found on v2");
	CHECK(item("cgroup.swap") && !strcmp(item("cgroup.swap")->value, "limited"),
	      "swap is limited where the hierarchy can hold it at 0");

	/* Weak: interfaces the jobs' seccomp filter kills anyway. */
	one("proc/sys/kernel/unprivileged_bpf_disabled", "0\n", "kernel.unprivileged_bpf_disabled",
	    "0", AUDIT_WEAK);
	one("proc/sys/vm/unprivileged_userfaultfd", "1\n", "vm.unprivileged_userfaultfd", "1",
	    AUDIT_WEAK);
	one("proc/sys/kernel/io_uring_disabled", "1\n", "kernel.io_uring_disabled", "1",
	    AUDIT_WEAK);
	one("proc/sys/kernel/perf_event_paranoid", "-1\n", "kernel.perf_event_paranoid", "-1",
	    AUDIT_WEAK);
	one("proc/sys/kernel/unprivileged_userns_clone", "1\n", "kernel.unprivileged_userns_clone",
	    "1", AUDIT_WEAK);
	one("proc/sys/kernel/yama/ptrace_scope", "0\n", "kernel.yama.ptrace_scope", "0",
	    AUDIT_WEAK);
	one("proc/sys/fs/protected_regular", "0\n", "fs.protected_regular", "0", AUDIT_WEAK);
	/* A kernel without a knob lacks what it guards. */
	one("proc/sys/kernel/io_uring_disabled", NULL, "kernel.io_uring_disabled", "absent",
	    AUDIT_OK);
	one("proc/sys/kernel/unprivileged_userns_clone", "0\n", "kernel.unprivileged_userns_clone",
	    "0", AUDIT_OK);

	/* Fatal: core dumps piped to a host program. */
	one("proc/sys/kernel/core_pattern", "|/usr/share/apport/apport -p%p -s%s -c%c\n",
	    "kernel.core_pattern", "|/usr/share/apport/apport -p%p -s%s -c%c", AUDIT_FATAL);
	/* Linux 6.16's coredump sockets ("@path", "@@path") ignore RLIMIT_CORE as pipes do. */
	one("proc/sys/kernel/core_pattern", "@/run/systemd/coredump\n", "kernel.core_pattern",
	    "@/run/systemd/coredump", AUDIT_FATAL);
	one("proc/sys/kernel/core_pattern", "@@/run/coredump.socket\n", "kernel.core_pattern",
	    "@@/run/coredump.socket", AUDIT_FATAL);
	/* What cannot be read cannot be vouched for (here a read of a directory: EISDIR). */
	{
		char p[600];
		fresh_hardened_host();
		snprintf(p, sizeof(p), "%s/proc/sys/kernel/core_pattern", root);
		CHECK(unlink(p) == 0 && mkdir(p, 0755) == 0, "core_pattern made a directory");
		audit(&cg_ok);
		expect_only("kernel.core_pattern", "unreadable (Is a directory)", AUDIT_FATAL);
	}
	one("proc/sys/kernel/core_pattern", "/var/crash/core.%e.%p\n", "kernel.core_pattern",
	    "/var/crash/core.%e.%p", AUDIT_OK);

	/* Fatal: no seccomp filters, or not the actions the allow-list uses. */
	one("proc/sys/kernel/seccomp/actions_avail", NULL, "kernel.seccomp.actions_avail", "absent",
	    AUDIT_FATAL);
	one("proc/sys/kernel/seccomp/actions_avail", "kill_thread trap errno trace allow\n",
	    "kernel.seccomp.actions_avail", "kill_thread trap errno trace allow", AUDIT_FATAL);

	/* Fatal: a namespace type the jail clones every job with. */
	one("proc/sys/user/max_user_namespaces", "0\n", "user.max_user_namespaces", "0",
	    AUDIT_FATAL);
	one("proc/self/ns/net", NULL, "user.max_net_namespaces", "unsupported by the kernel",
	    AUDIT_FATAL);
	one("proc/sys/user/max_pid_namespaces", NULL, "user.max_pid_namespaces", "absent",
	    AUDIT_OK);

	/* Controllers: on v2, on a mounted v1 hierarchy, or nowhere (fatal). */
	one("sys/fs/cgroup/cgroup.controllers", "cpu pids\n", "cgroup.memory", "absent",
	    AUDIT_FATAL);
	fresh_hardened_host();
	put("sys/fs/cgroup/cgroup.controllers", "");
	put("proc/cgroups", "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t3\t1\t1\n"
			    "cpu\t1\t1\t1\ncpuacct\t2\t1\t1\nmemory\t4\t9\t1\npids\t8\t1\t1\n");
	audit(&cg_ok);
	CHECK(rep.n_fatal == 0 && !strcmp(item("cgroup.memory")->value, "v1") &&
		  !strcmp(item("cgroup.pids")->value, "v1") &&
		  !strcmp(item("cgroup.cpu")->value, "v1"),
	      "v1 hierarchies count (this CI machine's layout)");
	put("proc/cgroups", "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t3\t1\t1\n"
			    "memory\t4\t9\t1\npids\t8\t1\t0\n");
	audit(&cg_ok);
	CHECK(!strcmp(item("cgroup.cpu")->value, "absent") &&
		  item("cgroup.cpu")->level == AUDIT_FATAL,
	      "cpuset is not cpu");
	CHECK(!strcmp(item("cgroup.pids")->value, "disabled") &&
		  item("cgroup.pids")->level == AUDIT_FATAL,
	      "a disabled controller is fatal");
	CHECK(rep.n_fatal == 2, "two fatal findings (%zu)", rep.n_fatal);
	audit_refusal(&rep, buf, sizeof(buf));
	CHECK(!strcmp(buf, "host audit: cgroup.pids = disabled: no pids controller on cgroup v2 or "
			   "v1: nothing would bound a job's tasks (a fork bomb) but the host's pid "
			   "limit (and 1 more in sandboxd's log)"),
	      "the refusal names the first and counts the rest: %s", buf);
	/* A hybrid host: the v2 hierarchy mounted at /sys/fs/cgroup/unified. */
	fresh_hardened_host();
	put("sys/fs/cgroup/cgroup.controllers", NULL);
	put("sys/fs/cgroup/unified/cgroup.controllers", "cpu memory pids\n");
	audit(&cg_ok);
	CHECK(rep.n_fatal == 0 && !strcmp(item("cgroup.pids")->value, "v2"),
	      "a hybrid host's v2 controllers count");

	/* Swap: weak only where the hierarchy cannot hold it at 0 and the host has some. */
	fresh_hardened_host();
	audit(&(struct audit_cgroup){.version = 1, .swap_limited = false});
	expect_only("cgroup.swap", "not accounted, no swap", AUDIT_OK);
	put("proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/dev/vda3\tpartition\t1048572\t0"
			  "\t-2\n");
	audit(&(struct audit_cgroup){.version = 1, .swap_limited = false});
	expect_only("cgroup.swap", "not accounted, swap on", AUDIT_WEAK);
	audit(&(struct audit_cgroup){.version = 0});
	CHECK(!item("cgroup.swap"), "no swap finding without a usable hierarchy");

	/* /proc mounted with subset=pid (ProcSubset=pid) hides every sysctl: not "absent" (a
	 * kernel without the knobs, harmless), but a fatal finding of its own. */
	fresh_hardened_host();
	{
		char dir[128];

		snprintf(dir, sizeof(dir), "%s/proc/sys", root);
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	}
	audit(&cg_ok);
	CHECK(item("proc.sys") && item("proc.sys")->level == AUDIT_FATAL && rep.n_fatal == 1 &&
	      !item("kernel.core_pattern") && !item("kernel.seccomp.actions_avail"),
	      "a hidden /proc/sys is one fatal finding, and no sysctl reads as absent");

	/* A root that cannot be read: an error, not a clean bill of health. */
	CHECK(audit_host("/nonexistent/pyexec-audit", &cg_ok, &rep) == -ENOENT,
	      "a missing root is -ENOENT");

	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return check_summary();
}
