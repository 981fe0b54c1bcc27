/* mounts.c - see mounts.h. Every mount here happens in the job's private mount namespace, on a
 * tmpfs the job cannot write (it is remounted read-only before pivot_root). */
#include "mounts.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "proto.h"

#ifndef MS_NOSYMFOLLOW
#define MS_NOSYMFOLLOW 256
#endif

#if defined(__x86_64__)
#define MULTIARCH "x86_64-linux-gnu"
#elif defined(__aarch64__)
#define MULTIARCH "aarch64-linux-gnu"
#else
#error "unsupported architecture"
#endif

#define DIST "/usr/lib/python3/dist-packages"

/* What the interpreter needs besides itself. Optional entries are bound when present. */
static const struct {
	const char *path;
	bool optional;
} mnt_sources[] = {
	{ "/usr/lib/python3.11", false },        /* the standard library and lib-dynload */
	{ "/usr/lib/" MULTIARCH, false },        /* libc, libpython, BLAS/LAPACK, libgfortran */
	{ "/usr/lib64", true },                  /* the dynamic loader's canonical path */
	{ "/usr/bin/uname", false },             /* Debian's pandas runs `uname -p` at import */
	{ "/usr/share/zoneinfo", true },         /* time zones for pandas and zoneinfo */
	{ DIST "/numpy", false },
	{ DIST "/pandas", false },
	{ DIST "/dateutil", false }, /* pandas dependencies */
	{ DIST "/pytz", false },
	{ DIST "/six.py", false },
	{ DIST "/numexpr", true }, /* optional accelerators pandas uses when present */
	{ DIST "/bottleneck", true },
	{ DIST "/tzdata", true },
};

static int plan_bind(struct mnt_plan *p, const char *src, const char *dst, bool optional)
{
	struct stat st;

	if (stat(src, &st) < 0)
		return optional ? 0 : -errno;
	if (p->n_binds >= MNT_MAX_BINDS)
		return -E2BIG;
	struct mnt_bind *b = &p->binds[p->n_binds++];
	snprintf(b->src, sizeof(b->src), "%s", src);
	snprintf(b->dst, sizeof(b->dst), "%s", dst);
	b->is_dir = S_ISDIR(st.st_mode);
	return 0;
}

static int plan_link(struct mnt_plan *p, const char *path, const char *target)
{
	if (p->n_links >= MNT_MAX_LINKS)
		return -E2BIG;
	snprintf(p->links[p->n_links].path, sizeof(p->links[0].path), "%s", path);
	snprintf(p->links[p->n_links].target, sizeof(p->links[0].target), "%s", target);
	p->n_links++;
	return 0;
}

/* Merged-/usr hosts have /lib -> usr/lib etc.: the jail gets the same links. */
static int plan_toplevel(struct mnt_plan *p, const char *path)
{
	char target[256];
	ssize_t n = readlink(path, target, sizeof(target) - 1);

	if (n > 0) {
		target[n] = 0;
		return plan_link(p, path, target);
	}
	if (!strcmp(path, "/lib") || !strcmp(path, "/lib64"))
		return plan_bind(p, path, path, true); /* a split-/usr host: bind them read-only */
	return 0;
}

/* libblas.so.3 and friends point into /etc/alternatives; recreate just those links. */
static int plan_alternatives(struct mnt_plan *p)
{
	DIR *d = opendir("/etc/alternatives");
	struct dirent *de;
	int r = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)) && r == 0) {
		char src[512], target[256];
		ssize_t n;
		if (strncmp(de->d_name, "lib", 3))
			continue;
		snprintf(src, sizeof(src), "/etc/alternatives/%s", de->d_name);
		n = readlink(src, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = 0;
		r = plan_link(p, src, target);
	}
	closedir(d);
	return r;
}

static int read_small_file(const char *path, char **ret, size_t *ret_len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	return proto_read_capped(fd, 1 << 20, ret, ret_len);
}

void mnt_plan_free(struct mnt_plan *p)
{
	free(p->runner);
	p->runner = NULL;
	free(p->zygote);
	p->zygote = NULL;
}

int mnt_plan_add_zygote(struct mnt_plan *p, const char *zygote)
{
	_cleanup_close_ int fd = open(zygote, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	/* Copied like the runner (no host path in the jail's mountinfo); 32 MiB is far above
	 * any build of it, debug info included. */
	return proto_read_capped(fd, 32 << 20, &p->zygote, &p->zygote_len);
}

int mnt_plan_build(struct mnt_plan *p, const char *python, const char *runner, const char *root,
		   uint64_t tmp_bytes, uint64_t tmp_inodes, const char **what)
{
	int r;

	memset(p, 0, sizeof(*p));
	snprintf(p->root, sizeof(p->root), "%s", root);
	p->tmp_bytes = tmp_bytes;
	p->tmp_inodes = tmp_inodes;

	*what = python;
	r = plan_bind(p, python, python, false);
	if (r < 0)
		return r;
	/* The runner is copied into each job's root rather than bound: a bind would show its
	 * host path in the job's /proc/self/mountinfo. */
	*what = runner;
	r = read_small_file(runner, &p->runner, &p->runner_len);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(mnt_sources); i++) {
		*what = mnt_sources[i].path;
		r = plan_bind(p, mnt_sources[i].path, mnt_sources[i].path, mnt_sources[i].optional);
		if (r < 0)
			return r;
	}
	*what = "/bin, /lib, /lib64";
	if ((r = plan_toplevel(p, "/bin")) < 0 || (r = plan_toplevel(p, "/lib")) < 0 ||
	    (r = plan_toplevel(p, "/lib64")) < 0 || (r = plan_toplevel(p, "/sbin")) < 0)
		return r;
	*what = "/etc/alternatives";
	r = plan_alternatives(p);
	if (r < 0)
		return r;
	*what = "";
	return 0;
}

/* ---- in the child ---- */

static int mkdir_p(char *path, mode_t mode)
{
	for (char *s = path + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		int r = mkdir(path, mode);
		*s = '/';
		if (r < 0 && errno != EEXIST)
			return -errno;
	}
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0444);

	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

/* Creates the mount point (a directory or an empty file) and its parents under the root. */
static int make_point(const char *root, const char *path, bool dir)
{
	char full[600];
	char *slash;
	int r;

	snprintf(full, sizeof(full), "%s%s", root, path);
	if (dir)
		return mkdir_p(full, 0755);
	slash = strrchr(full, '/');
	*slash = 0;
	r = mkdir_p(full, 0755);
	*slash = '/';
	return r < 0 ? r : touch(full);
}

/* A non-recursive bind: nothing mounted below the source appears in the jail, so everything
 * that does appear is covered by the read-only remount (which never applies to submounts). */
static int bind_ro(const char *src, const char *dst, unsigned long extra)
{
	if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
		return -errno;
	if (mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | extra,
		  NULL) < 0)
		return -errno;
	return 0;
}

static int write_bytes(const char *root, const char *path, const char *content, size_t len,
		       mode_t mode)
{
	char full[600];
	_cleanup_close_ int fd = -1;

	snprintf(full, sizeof(full), "%s%s", root, path);
	fd = open(full, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -errno;
	return write(fd, content, len) == (ssize_t)len ? 0 : -EIO;
}

static int write_file(const char *root, const char *path, const char *content)
{
	return write_bytes(root, path, content, strlen(content), 0644);
}

static int mount_scratch(const char *root, const char *path, const struct mnt_plan *p,
			 unsigned long extra)
{
	char full[600], opts[128];

	snprintf(full, sizeof(full), "%s%s", root, path);
	int r = mkdir_p(full, 0755);
	if (r < 0)
		return r;
	/* Capped in bytes and inodes; the pages are charged to the job's memory cgroup. */
	snprintf(opts, sizeof(opts), "size=%llu,nr_inodes=%llu,mode=1777",
		 (unsigned long long)p->tmp_bytes, (unsigned long long)p->tmp_inodes);
	if (mount("tmpfs", full, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOSYMFOLLOW | extra, opts) < 0)
		return -errno;
	return 0;
}

static int make_dev(const char *root)
{
	static const char *const nodes[] = { "null", "zero", "full", "random", "urandom" };
	static const char *const links[][2] = { { "fd", "/proc/self/fd" },
						{ "stdin", "/proc/self/fd/0" },
						{ "stdout", "/proc/self/fd/1" },
						{ "stderr", "/proc/self/fd/2" } };
	char src[64], dst[600];
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(nodes); i++) {
		snprintf(src, sizeof(src), "/dev/%s", nodes[i]);
		snprintf(dst, sizeof(dst), "%s/dev/%s", root, nodes[i]);
		if ((r = touch(dst)) < 0)
			return r;
		/* Device binds keep device access (no MS_NODEV) but nothing else: no kmsg, mem,
		 * tty or ptmx exists here at all. */
		if (mount(src, dst, NULL, MS_BIND, NULL) < 0 ||
		    mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NOEXEC, NULL) < 0)
			return -errno;
	}
	for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
		snprintf(dst, sizeof(dst), "%s/dev/%s", root, links[i][0]);
		if (symlink(links[i][1], dst) < 0)
			return -errno;
	}
	return 0;
}

/* The kernel interfaces a container runtime masks: unreadable or read-only even though the
 * job has no capabilities, as a second line. */
static int mask_proc(const char *root)
{
	/* cmdline and config.gz describe the host's boot and kernel build; interrupts, softirqs,
	 * modules and vmallocinfo are its hardware and kernel layout. */
	static const char *const hide[] = { "kcore",	"keys",	      "timer_list", "sched_debug",
					    "kallsyms", "sysrq-trigger", "cmdline",    "config.gz",
					    "interrupts", "softirqs",  "modules",    "vmallocinfo" };
	/* Writable PSI files would let a job register triggers on the host's pressure. */
	static const char *const ro[] = { "sys", "irq", "bus", "fs", "pressure" };
	char dst[600];

	for (size_t i = 0; i < ARRAY_SIZE(hide); i++) {
		snprintf(dst, sizeof(dst), "%s/proc/%s", root, hide[i]);
		if (access(dst, F_OK) == 0 && mount("/dev/null", dst, NULL, MS_BIND, NULL) < 0)
			return -errno;
	}
	for (size_t i = 0; i < ARRAY_SIZE(ro); i++) {
		snprintf(dst, sizeof(dst), "%s/proc/%s", root, ro[i]);
		if (access(dst, F_OK) == 0 && bind_ro(dst, dst, MS_NOEXEC) < 0)
			return -errno;
	}
	return 0;
}

static const char etc_passwd[] = "root:x:0:0::/:/usr/sbin/nologin\n"
				 "sandbox:x:1000:1000:sandbox:/tmp:/usr/sbin/nologin\n"
				 "nobody:x:65534:65534::/:/usr/sbin/nologin\n";
static const char etc_group[] = "root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n";
static const char etc_hosts[] = "127.0.0.1 localhost sandbox\n::1 localhost sandbox\n";
static const char etc_nss[] = "passwd: files\ngroup: files\nhosts: files\n";

static int make_etc(const struct mnt_plan *p)
{
	int r;

	if ((r = write_file(p->root, "/etc/passwd", etc_passwd)) < 0 ||
	    (r = write_file(p->root, "/etc/group", etc_group)) < 0 ||
	    (r = write_file(p->root, "/etc/hostname", "sandbox\n")) < 0 ||
	    (r = write_file(p->root, "/etc/hosts", etc_hosts)) < 0 ||
	    (r = write_file(p->root, "/etc/resolv.conf", "")) < 0 ||
	    (r = write_file(p->root, "/etc/nsswitch.conf", etc_nss)) < 0)
		return r;
	return 0;
}

/* /proc of the caller's PID namespace, nosuid, nodev, noexec, with the masks. */
static int mount_proc(const char *root)
{
	char path[600];
	int r;

	snprintf(path, sizeof(path), "%s/proc", root);
	if ((r = mkdir_p(path, 0555)) < 0)
		return r;
	if (mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return -errno;
	return mask_proc(root);
}

int mnt_enter_jail(const struct mnt_plan *p, bool with_zygote, const char **stage)
{
	const char *root = p->root;
	char path[600], opts[64];
	int r;

	/* No mount event may propagate back to the host, nor host events into the jail. */
	*stage = "make / private";
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -errno;
	/* The new root: a small tmpfs that only this mount namespace ever sees. */
	*stage = "mount root tmpfs";
	snprintf(opts, sizeof(opts), "size=%zuk,nr_inodes=1024,mode=0755",
		 1024 + (with_zygote ? p->zygote_len / 1024 + 64 : 0));
	if (mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
		return -errno;

	*stage = "bind read-only";
	for (size_t i = 0; i < p->n_binds; i++) {
		const struct mnt_bind *b = &p->binds[i];
		snprintf(path, sizeof(path), "%s%s", root, b->dst);
		if ((r = make_point(root, b->dst, b->is_dir)) < 0 || (r = bind_ro(b->src, path, 0)) < 0)
			return r;
	}
	*stage = "make links";
	if ((r = make_point(root, "/etc/alternatives", true)) < 0 ||
	    (r = make_point(root, DIST, true)) < 0 || (r = make_point(root, "/dev", true)) < 0)
		return r;
	for (size_t i = 0; i < p->n_links; i++) {
		snprintf(path, sizeof(path), "%s%s", root, p->links[i].path);
		if (symlink(p->links[i].target, path) < 0)
			return -errno;
	}
	*stage = "write /etc";
	if ((r = make_etc(p)) < 0)
		return r;
	*stage = "write runner";
	if ((r = make_point(root, MNT_RUNNER_DIR, true)) < 0 ||
	    (r = write_bytes(root, MNT_RUNNER_DIR "/runner.py", p->runner, p->runner_len, 0644)) < 0)
		return r;
	*stage = "write zygote";
	if (with_zygote &&
	    (r = write_bytes(root, MNT_ZYGOTE, p->zygote, p->zygote_len, 0555)) < 0)
		return r;
	*stage = "make /dev";
	if ((r = make_dev(root)) < 0)
		return r;
	*stage = "mount /tmp";
	if ((r = mount_scratch(root, "/tmp", p, 0)) < 0)
		return r;
	*stage = "mount /dev/shm";
	if ((r = mount_scratch(root, "/dev/shm", p, MS_NOEXEC)) < 0)
		return r;
	/* A fresh /proc shows only this PID namespace. */
	*stage = "mount /proc";
	if ((r = mount_proc(root)) < 0)
		return r;
	/* Nothing of the root itself is writable from here on. */
	*stage = "remount root read-only";
	if (mount(NULL, root, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
		return -errno;
	/* pivot_root, then detach the old root: unlike chroot, no path leads back to the host. */
	*stage = "pivot_root";
	if (chdir(root) < 0)
		return -errno;
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return -errno;
	if (umount2(".", MNT_DETACH) < 0)
		return -errno;
	if (chdir("/tmp") < 0)
		return -errno;
	*stage = "";
	return 0;
}

int mnt_zygote_settle(void)
{
	static const char *const points[] = { "/proc", "/tmp", "/dev/shm" };

	/* Out of /tmp first (mnt_enter_jail left us there): a working directory would keep the
	 * detached tmpfs alive, and every spare would start in it. */
	if (chdir("/") < 0)
		return -errno;
	/* Detaching takes every mount below with it: the /proc masks go too. */
	for (size_t i = 0; i < ARRAY_SIZE(points); i++)
		if (umount2(points[i], MNT_DETACH) < 0)
			return -errno;
	return 0;
}

int mnt_renew_jail(const struct mnt_plan *p, const char **stage)
{
	int r;

	*stage = "make / private";
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -errno;
	/* The zygote left /proc, /tmp and /dev/shm empty (mnt_zygote_settle): mounting only, no
	 * unmount, spares no RCU grace period per mount point. */
	*stage = "mount /proc";
	if ((r = mount_proc("")) < 0)
		return r;
	*stage = "mount /tmp";
	if ((r = mount_scratch("", "/tmp", p, 0)) < 0)
		return r;
	*stage = "mount /dev/shm";
	if ((r = mount_scratch("", "/dev/shm", p, MS_NOEXEC)) < 0)
		return r;
	if (chdir("/tmp") < 0)
		return -errno;
	*stage = "";
	return 0;
}
