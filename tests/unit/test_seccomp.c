/* test_seccomp.c - the job filter, tried from inside (SECURITY.md item 10).
 *
 * As Firecracker tests its filters: build the compiled program once with the daemon's own
 * sc_filter_build(), then for every check fork a child that sets NO_NEW_PRIVS, installs it with
 * sc_filter_install() and makes exactly one call; the parent reads the verdict from waitpid.
 * Denied calls must die by SIGSYS, unlisted ones must fail with EPERM, allowed ones must reach
 * the kernel. Arguments are harmless even if the filter let a call through to a root kernel
 * (invalid fds, lengths or magic numbers), so a broken filter fails the test, not the host.
 * Last, the real thing: python3.11 (argv[1]) with numpy, pandas, a subprocess and a thread,
 * under the filter. Needs no root.
 *
 * The sanitizer build (-DPYEXEC_SANITIZE=ON) runs every check as well: ASan's runtime makes no
 * call the filter refuses in these children (strace shows only the checks' own EPERMs), and
 * LeakSanitizer runs at the parent's exit, outside the filter; the children leave by _exit.
 *
 * Usage: test_seccomp [/usr/bin/python3.11]
 */
#include "scfilter.h"
#include "cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef __NR_open_tree_attr
#define __NR_open_tree_attr 467
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

/* Child exit codes beside errno values (which are all below 134). */
#define EXIT_SETUP 200	/* NO_NEW_PRIVS or sc_filter_install failed */
#define EXIT_WRONG 201	/* the call worked but returned the wrong thing */
#define EXIT_ALONE 202	/* the calling thread died, the process lived: KILL_THREAD */
#define EXIT_THREAD 203 /* pthread_create failed under the filter */
#define WRONG (-EXIT_WRONG)

enum want { W_KILLED, W_ERRNO, W_WORKS };

struct check {
	const char *name;
	enum want want;
	int err; /* W_ERRNO: the errno the filter (or the kernel behind it) must answer */
	long (*fn)(const struct check *c);
	long nr;
	long a[6];
};

static unsigned passed, failed, skipped;

static void report(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void report(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s ", ok ? "ok  " : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (ok)
		passed++;
	else
		failed++;
}

static void skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void skip(const char *fmt, ...)
{
	va_list ap;

	printf("skip ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	skipped++;
}

/* ---- the calls, each made once in a filtered child; >= 0 worked, < 0 is -errno ---- */

static long ret_errno(long r)
{
	return r < 0 ? -errno : r;
}

static long call_raw(const struct check *c)
{
	long r = syscall(c->nr, c->a[0], c->a[1], c->a[2], c->a[3], c->a[4], c->a[5]);

	/* A clone the filter wrongly let through returns twice; the new process leaves here. */
	if (r == 0 && c->nr == __NR_clone)
		_exit(0);
	return ret_errno(r);
}

/* i386 getpid (20) through the 32-bit entry: arch AUDIT_ARCH_I386. The kernel clobbers r8-r11
 * on this path. */
static long call_int80_getpid(const struct check *c)
{
	long r;

	__asm__ volatile("int $0x80"
			 : "=a"(r)
			 : "a"(20L)
			 : "memory", "cc", "r8", "r9", "r10", "r11");
	return r < 0 ? r : 0;
}

static long call_clock_gettime(const struct check *c)
{
	struct timespec ts;

	/* Through syscall(), not the vDSO, so the filter sees it. */
	return ret_errno(syscall(__NR_clock_gettime, CLOCK_MONOTONIC, &ts));
}

static long call_mmap(const struct check *c)
{
	size_t len = 1 << 20;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *q;

	if (p == MAP_FAILED)
		return -errno;
	p[0] = 1;
	q = mremap(p, len, 4 * len, MREMAP_MAYMOVE);
	if (q == MAP_FAILED)
		return -errno;
	if (q[0] != 1)
		return WRONG;
	if (madvise(q, 4 * len, MADV_DONTNEED) < 0 || mprotect(q, len, PROT_READ) < 0)
		return -errno;
	return ret_errno(munmap(q, 4 * len));
}

static long call_fork_wait(const struct check *c)
{
	int status;
	pid_t pid = fork(); /* glibc: clone(CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD) */

	if (pid < 0)
		return -errno;
	if (pid == 0)
		_exit(7);
	if (waitpid(pid, &status, 0) != pid)
		return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 7 ? 0 : WRONG;
}

static int exec_true(void *arg)
{
	char *const argv[] = {"true", NULL};
	char *const envp[] = {NULL};

	execve("/bin/true", argv, envp);
	_exit(127);
}

/* What posix_spawn and subprocess do (glibc's posix_spawn cannot be used here: sandboxd/spawn.h
 * shadows <spawn.h>): clone(CLONE_VM | CLONE_VFORK) on a stack of its own, then execve. */
static long call_vfork_exec(const struct check *c)
{
	size_t size = 64 << 10;
	char *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int status;
	pid_t pid;

	if (stack == MAP_FAILED)
		return -errno;
	pid = clone(exec_true, stack + size, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
	if (pid < 0)
		return -errno;
	if (waitpid(pid, &status, 0) != pid)
		return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : WRONG;
}

static void *thread_fn(void *arg)
{
	*(int *)arg = 42;
	return arg;
}

static long call_thread(const struct check *c)
{
	pthread_t t;
	int x = 0, r;
	void *ret;

	/* glibc: clone3 (ENOSYS here), then clone with the thread flags. */
	r = pthread_create(&t, NULL, thread_fn, &x);
	if (r != 0)
		return -r;
	r = pthread_join(t, &ret);
	if (r != 0)
		return -r;
	return x == 42 && ret == &x ? 0 : WRONG;
}

static long call_socket(const struct check *c)
{
	int fd = socket((int)c->a[0], (int)c->a[1], 0);

	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

static long call_inet6(const struct check *c)
{
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

	/* A kernel or namespace without IPv6 answers EAFNOSUPPORT: the filter let it through. */
	if (fd < 0)
		return errno == EAFNOSUPPORT ? 0 : -errno;
	close(fd);
	return 0;
}

static long call_socketpair(const struct check *c)
{
	int sv[2];
	char b = 0;

	if (socketpair((int)c->a[0], (int)c->a[1], 0, sv) < 0)
		return -errno;
	if (write(sv[0], "x", 1) != 1 || read(sv[1], &b, 1) != 1)
		return -errno;
	return b == 'x' ? 0 : WRONG;
}

static long call_inet_loopback(const struct check *c)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), cl, acc;
	int one = 1;
	char b = 0;

	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 1) < 0 ||
	    getsockname(s, (struct sockaddr *)&a, &alen) < 0)
		return -errno;
	cl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cl < 0 || connect(cl, (struct sockaddr *)&a, sizeof(a)) < 0)
		return -errno;
	acc = accept4(s, NULL, NULL, SOCK_CLOEXEC);
	if (acc < 0 || send(cl, "y", 1, 0) != 1 || recv(acc, &b, 1, 0) != 1)
		return -errno;
	return b == 'y' ? 0 : WRONG;
}

static long call_pipe_poll(const struct check *c)
{
	int p[2];
	struct pollfd pfd;

	if (pipe2(p, O_CLOEXEC) < 0 || write(p[1], "z", 1) != 1)
		return -errno;
	pfd = (struct pollfd){.fd = p[0], .events = POLLIN};
	if (poll(&pfd, 1, 0) != 1)
		return WRONG;
	return 0;
}

/* Returns 0 if /proc/self/status contains `line`. */
static long status_has(const char *line)
{
	char buf[8192];
	ssize_t n, len = 0;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf + len, sizeof(buf) - 1 - (size_t)len)) > 0)
		len += n;
	if (n < 0)
		return -errno;
	close(fd);
	buf[len] = '\0';
	return strstr(buf, line) ? 0 : WRONG;
}

static long call_status_seccomp(const struct check *c)
{
	return status_has("\nSeccomp:\t2\n");
}

static long call_status_nnp(const struct check *c)
{
	return status_has("\nNoNewPrivs:\t1\n");
}

static long call_fionbio(const struct check *c)
{
	int on = 1, fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || ioctl(fd, FIONBIO, &on) < 0)
		return -errno;
	return fcntl(fd, F_GETFL) & O_NONBLOCK ? 0 : WRONG;
}

static long call_tcgets_pipe(const struct check *c)
{
	struct termios t;
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	/* Passes the filter; the kernel answers ENOTTY, which is what isatty() expects. */
	return ret_errno(ioctl(p[0], TCGETS, &t));
}

static long call_prctl_nnp(const struct check *c)
{
	return prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 ? 0 : WRONG;
}

static long call_prctl_name(const struct check *c)
{
	char name[16] = "";

	if (prctl(PR_SET_NAME, "sc-test", 0, 0, 0) < 0 || prctl(PR_GET_NAME, name, 0, 0, 0) < 0)
		return -errno;
	return strcmp(name, "sc-test") == 0 ? 0 : WRONG;
}

static long call_getrlimit(const struct check *c)
{
	struct rlimit rl;

	/* glibc's getrlimit is prlimit64(0, res, NULL, &old). */
	return ret_errno(getrlimit(RLIMIT_NOFILE, &rl));
}

static long call_misc(const struct check *c)
{
	char buf[16];
	cpu_set_t set;

	if (getrandom(buf, sizeof(buf), 0) != (ssize_t)sizeof(buf) ||
	    sched_getaffinity(0, sizeof(set), &set) < 0 || sched_yield() < 0 ||
	    kill(getpid(), 0) < 0 || getppid() < 0)
		return -errno;
	return 0;
}

static long call_memfd(const struct check *c)
{
	int fd = memfd_create("sc-test", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, 4096) < 0 || pwrite(fd, "m", 1, 100) != 1)
		return -errno;
	close(fd);
	return 0;
}

static long call_files(const struct check *c)
{
	char dir[] = "/tmp/test_seccomp.XXXXXX", path[64], back[8] = "";
	struct stat st;
	int fd;

	if (!mkdtemp(dir))
		return -errno;
	snprintf(path, sizeof(path), "%s/f", dir);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, "hello", 5) != 5 || fsync(fd) < 0 || lseek(fd, 0, SEEK_SET) < 0 ||
	    read(fd, back, 5) != 5 || fstat(fd, &st) < 0 || close(fd) < 0 ||
	    rename(path, path) < 0 || stat(path, &st) < 0 || unlink(path) < 0 || rmdir(dir) < 0)
		return -errno;
	return strcmp(back, "hello") == 0 && st.st_size == 5 ? 0 : WRONG;
}

/* ---- running one check ---- */

static const char *want_text(const struct check *c, char *buf, size_t size)
{
	if (c->want == W_KILLED)
		return "killed by SIGSYS";
	if (c->want == W_WORKS)
		return "works";
	snprintf(buf, size, "fails with %s", strerrorname_np(c->err));
	return buf;
}

static const char *got_text(int status, char *buf, size_t size)
{
	if (WIFSIGNALED(status))
		snprintf(buf, size, "killed by SIG%s", sigabbrev_np(WTERMSIG(status)) ?: "?");
	else if (!WIFEXITED(status))
		snprintf(buf, size, "status 0x%x", (unsigned)status);
	else if (WEXITSTATUS(status) == 0)
		snprintf(buf, size, "works");
	else if (WEXITSTATUS(status) == EXIT_SETUP)
		snprintf(buf, size, "could not install the filter");
	else if (WEXITSTATUS(status) == EXIT_WRONG)
		snprintf(buf, size, "returned a wrong result");
	else if (WEXITSTATUS(status) == EXIT_ALONE)
		snprintf(buf, size, "killed its thread only");
	else if (WEXITSTATUS(status) == EXIT_THREAD)
		snprintf(buf, size, "could not start a thread");
	else
		snprintf(buf, size, "fails with %s",
			 strerrorname_np(WEXITSTATUS(status)) ?: "an unknown errno");
	return buf;
}

static bool as_wanted(const struct check *c, int status)
{
	switch (c->want) {
	case W_KILLED:
		return WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS;
	case W_ERRNO:
		return WIFEXITED(status) && WEXITSTATUS(status) == c->err;
	case W_WORKS:
		return WIFEXITED(status) && WEXITSTATUS(status) == 0;
	}
	return false;
}

/* The child's side: no core files for the SIGSYS deaths, a watchdog, then the jail's order
 * (NO_NEW_PRIVS, filter) and exactly one call. */
static void child_enter_filter(const struct sc_filter *f, unsigned timeout_s)
{
	struct rlimit no_core = {0, 0};

	alarm(timeout_s);
	if (setrlimit(RLIMIT_CORE, &no_core) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || sc_filter_install(f) < 0)
		_exit(EXIT_SETUP);
}

static long thread_result;

static void *call_in_thread(void *arg)
{
	const struct check *c = arg;

	thread_result = c->fn(c);
	return NULL;
}

/* A call that must kill is made from a second thread: KILL_PROCESS takes the whole process
 * down, while KILL_THREAD (libseccomp's default bad-arch action) would let the main thread
 * report that it survived. */
static long call_from_second_thread(const struct check *c)
{
	pthread_t t;

	thread_result = -EXIT_ALONE;
	if (pthread_create(&t, NULL, call_in_thread, (void *)c) != 0 || pthread_join(t, NULL) != 0)
		_exit(EXIT_THREAD);
	return thread_result;
}

static void run_check(const struct sc_filter *f, const struct check *c)
{
	char want[64], got[64];
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		report(false, "%-46s fork: %s", c->name, strerror(errno));
		return;
	}
	if (pid == 0) {
		long r;

		child_enter_filter(f, 10);
		r = c->want == W_KILLED ? call_from_second_thread(c) : c->fn(c);
		_exit(r >= 0 ? 0 : r < -255 ? EXIT_WRONG : (int)-r);
	}
	if (waitpid(pid, &status, 0) != pid) {
		report(false, "%-46s waitpid: %s", c->name, strerror(errno));
		return;
	}
	got_text(status, got, sizeof(got));
	if (c->fn == call_int80_getpid && WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) {
		skip("%-46s no i386 emulation in this kernel (SIGSEGV before seccomp)", c->name);
		return;
	}
	if (as_wanted(c, status))
		report(true, "%-46s %s", c->name, got);
	else
		report(false, "%-46s %s, want %s", c->name, got, want_text(c, want, sizeof(want)));
}

/* ---- end to end: the interpreter and the libraries the jail exists for ---- */

static const char e2e_script[] =
    "import sys\n"
    "sys.path.append('/usr/lib/python3/dist-packages')\n"
    "import subprocess, threading\n"
    "import numpy as np, pandas as pd\n"
    "df = pd.DataFrame({'k': ['a', 'b', 'a'], 'v': [1, 2, 3]})\n"
    "assert df.groupby('k')['v'].sum().to_dict() == {'a': 4, 'b': 2}\n"
    "m = np.random.default_rng(1).random((200, 200)) + 200 * np.eye(200)\n"
    "assert np.allclose(np.linalg.inv(m).dot(m), np.eye(200))\n"
    "out = subprocess.run(['/usr/bin/uname'], capture_output=True, text=True, check=True)\n"
    "assert out.stdout.strip() == 'Linux', out\n"
    "box = []\n"
    "t = threading.Thread(target=box.append, args=(1,))\n"
    "t.start()\n"
    "t.join()\n"
    "assert box == [1]\n"
    "assert '\\nSeccomp:\\t2\\n' in open('/proc/self/status').read()\n"
    "try:\n"
    "    import os; os.setuid(os.getuid())\n"
    "except PermissionError:\n"
    "    pass\n"
    "else:\n"
    "    raise AssertionError('setuid is not refused')\n"
    "print('OK')\n";

static void run_python(const struct sc_filter *f, const char *python)
{
	const char *name = "python3.11: numpy, pandas, subprocess, thread";
	char out[4096], sink[4096], got[64];
	size_t len = 0;
	int p[2], status;
	ssize_t n;
	pid_t pid;

	if (!python || access(python, X_OK) < 0) {
		skip("%-46s %s", name,
		     python ? "argv[1] is not executable" : "no interpreter given (argv[1])");
		return;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		report(false, "%-46s pipe: %s", name, strerror(errno));
		return;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		report(false, "%-46s fork: %s", name, strerror(errno));
		return;
	}
	if (pid == 0) {
		char *const argv[] = {(char *)python,	  "-I", "-S", "-B", "-c",
				      (char *)e2e_script, NULL};
		/* As sandboxd passes it (SECURITY.md item 8). */
		char *const envp[] = {"PATH=/usr/bin:/bin", "HOME=/tmp",
				      "LANG=C.UTF-8",	    "PYTHONDONTWRITEBYTECODE=1",
				      "PYTHONUNBUFFERED=1", "OPENBLAS_NUM_THREADS=2",
				      "OMP_NUM_THREADS=2",  NULL};

		if (dup2(p[1], STDOUT_FILENO) < 0)
			_exit(EXIT_SETUP);
		child_enter_filter(f, 120);
		execve(python, argv, envp);
		_exit(errno);
	}
	close(p[1]);
	/* Read to EOF, keeping what fits, so a chatty failure cannot block the child. */
	for (;;) {
		bool room = len < sizeof(out) - 1;

		n = room ? read(p[0], out + len, sizeof(out) - 1 - len)
			 : read(p[0], sink, sizeof(sink));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (room)
			len += (size_t)n;
	}
	out[len] = '\0';
	close(p[0]);
	if (waitpid(pid, &status, 0) != pid) {
		report(false, "%-46s waitpid: %s", name, strerror(errno));
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && strcmp(out, "OK\n") == 0) {
		report(true, "%-46s prints OK, exit 0", name);
		return;
	}
	report(false, "%-46s %s, exit status 0x%x, stdout: \"%s\"", name,
	       got_text(status, got, sizeof(got)), (unsigned)status, out);
}

/* ---- the checks ---- */

#define RAW(nr_, ...) .fn = call_raw, .nr = __NR_##nr_, .a = {__VA_ARGS__}
#define KILLED(nr_, ...)                                                                           \
	{                                                                                          \
		.name = #nr_, .want = W_KILLED, RAW(nr_, __VA_ARGS__)                              \
	}
#define KILLED_AS(name_, nr_, ...)                                                                 \
	{                                                                                          \
		.name = name_, .want = W_KILLED, RAW(nr_, __VA_ARGS__)                             \
	}
#define FAILS_AS(name_, err_, nr_, ...)                                                            \
	{                                                                                          \
		.name = name_, .want = W_ERRNO, .err = err_, RAW(nr_, __VA_ARGS__)                 \
	}
#define WORKS_FN(name_, fn_, ...)                                                                  \
	{                                                                                          \
		.name = name_, .want = W_WORKS, .fn = fn_, __VA_ARGS__                             \
	}

static double ms_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* One child per round; with `install` it loads the filter. */
static double fork_rounds(const struct sc_filter *f, int n, bool install)
{
	double t0 = ms_now();
	int st;

	for (int i = 0; i < n; i++) {
		pid_t p = fork();

		if (p == 0) {
			if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
				_exit(1);
			_exit(install && sc_filter_install(f) < 0 ? 1 : 0);
		}
		if (p < 0 || waitpid(p, &st, 0) < 0 || st != 0)
			return -1;
	}
	return ms_now() - t0;
}

/* A figure, never asserted: what loading the filter costs a job (every job pays it once; the
 * kernel builds its action cache by emulating the filter for each syscall number). */
static double install_us(const struct sc_filter *f, int n)
{
	double with = fork_rounds(f, n, true), without = fork_rounds(f, n, false);

	return with < 0 || without < 0 ? -1 : (with - without) * 1e3 / n;
}

int main(int argc, char **argv)
{
	struct sc_filter f = {0}, again = {0}, empty = {0};
	struct rlimit nofile;
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 && errno == EINVAL) {
		printf("skip: this kernel has no seccomp (PR_GET_SECCOMP: EINVAL)\n");
		return 77;
	}
	if (getrlimit(RLIMIT_NOFILE, &nofile) < 0) {
		perror("getrlimit");
		return 1;
	}

	r = sc_filter_build(&f);
	report(r == 0, "sc_filter_build: %s", r == 0 ? "built" : strerror(-r));
	if (r < 0) {
		printf("%u passed, %u failed\n", passed, failed);
		return 1;
	}
	printf("     filter: %u BPF instructions (kernel limit %u), installed in %.0f us\n", f.len,
	       BPF_MAXINSNS, install_us(&f, 200));
	r = sc_filter_build(&again);
	report(r == 0 && again.len == f.len &&
		   memcmp(again.insns, f.insns, f.len * sizeof(*f.insns)) == 0,
	       "%-46s %s", "sc_filter_build twice", "same program");
	sc_filter_free(&again);
	sc_filter_free(&again);
	report(sc_filter_install(&empty) == -EINVAL, "%-46s %s", "sc_filter_install(empty)",
	       "EINVAL");

	const struct check checks[] = {
	    /* Namespaces and mounts. */
	    KILLED(unshare, 0),
	    KILLED(setns, -1, 0),
	    KILLED(mount, 0, 0, 0, 0, 0),
	    KILLED(umount2, 0, 0),
	    KILLED(pivot_root, 0, 0),
	    KILLED(chroot, 0),
	    KILLED(open_tree, -1, 0, 0),
	    KILLED(open_tree_attr, -1, 0, 0, 0, 0),
	    KILLED(move_mount, -1, 0, -1, 0, 0),
	    KILLED(fsopen, 0, 0),
	    KILLED(fsconfig, -1, 0, 0, 0, 0),
	    KILLED(fsmount, -1, 0, 0),
	    KILLED(fspick, -1, 0, 0),
	    KILLED(mount_setattr, -1, 0, 0, 0, 0),
	    /* clone with each namespace flag; clone3 must answer ENOSYS for glibc's fallback. */
	    KILLED_AS("clone(CLONE_NEWNS)", clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0),
	    KILLED_AS("clone(CLONE_NEWCGROUP)", clone, CLONE_NEWCGROUP | SIGCHLD, 0, 0, 0, 0),
	    KILLED_AS("clone(CLONE_NEWUTS)", clone, CLONE_NEWUTS | SIGCHLD, 0, 0, 0, 0),
	    KILLED_AS("clone(CLONE_NEWIPC)", clone, CLONE_NEWIPC | SIGCHLD, 0, 0, 0, 0),
	    KILLED_AS("clone(CLONE_NEWUSER)", clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0),
	    KILLED_AS("clone(CLONE_NEWPID)", clone, CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0),
	    KILLED_AS("clone(CLONE_NEWNET)", clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0),
	    KILLED_AS("clone(CLONE_NEWTIME bit)", clone, CLONE_NEWTIME | SIGCHLD, 0, 0, 0, 0),
	    KILLED_AS("clone(thread flags | CLONE_NEWUSER)", clone,
		      CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
			  CLONE_NEWUSER,
		      0, 0, 0, 0),
	    FAILS_AS("clone3", ENOSYS, clone3, 0, 0),
	    /* Keys, bpf, perf, userfaultfd, io_uring. */
	    KILLED(keyctl, -1, 0, 0, 0, 0),
	    KILLED(add_key, 0, 0, 0, 0, 0),
	    KILLED(request_key, 0, 0, 0, 0),
	    KILLED(bpf, -1, 0, 0),
	    KILLED(perf_event_open, 0, 0, -1, -1, 0),
	    KILLED(userfaultfd, -1),
	    KILLED(io_uring_setup, 0, 0),
	    KILLED(io_uring_enter, -1, 0, 0, 0, 0, 0),
	    KILLED(io_uring_register, -1, 0, 0, 0),
	    /* Other processes. */
	    KILLED(ptrace, -1, 0, 0, 0),
	    KILLED(process_vm_readv, 0, 0, 0, 0, 0, -1),
	    KILLED(process_vm_writev, 0, 0, 0, 0, 0, -1),
	    KILLED(process_madvise, -1, 0, 0, 0, -1),
	    KILLED(pidfd_getfd, -1, -1, 0),
	    KILLED(kcmp, 0, 0, -1, 0, 0),
	    KILLED(open_by_handle_at, -1, 0, 0),
	    KILLED(name_to_handle_at, -1, 0, 0, 0, -1),
	    /* The host kernel and machine. */
	    KILLED(init_module, 0, 0, 0),
	    KILLED(finit_module, -1, 0, -1),
	    KILLED(delete_module, 0, -1),
	    KILLED(kexec_load, 0, 0, 0, -1),
	    KILLED(kexec_file_load, -1, -1, 0, 0, -1),
	    KILLED(reboot, 0, 0, 0, 0),
	    KILLED(swapon, 0, 0),
	    KILLED(swapoff, 0),
	    KILLED(syslog, 100, 0, 0),
	    KILLED(acct, 1),
	    KILLED(quotactl, 0, 0, 0, 0),
	    KILLED(quotactl_fd, -1, 0, 0, 0),
	    KILLED(settimeofday, 0, 0),
	    KILLED(clock_settime, -1, 0),
	    KILLED(clock_adjtime, -1, 0),
	    KILLED(adjtimex, 0),
	    KILLED(sethostname, 0, -1),
	    KILLED(setdomainname, 0, -1),
	    KILLED(iopl, 4),
	    KILLED(ioperm, 0, 0, 0),
	    KILLED(modify_ldt, 99, 0, 0),
	    KILLED(uselib, 0),
	    KILLED_AS("personality(PER_LINUX32)", personality, PER_LINUX32),
	    KILLED_AS("personality(READ_IMPLIES_EXEC)", personality, READ_IMPLIES_EXEC),
	    KILLED(fanotify_init, -1, 0),
	    KILLED(memfd_secret, -1),
	    KILLED(migrate_pages, 0, 0, 0, 0),
	    KILLED(move_pages, 0, 0, 0, 0, 0, -1),
	    /* ioctl: the request is compared as the kernel reads it, 32 bits. */
	    KILLED_AS("ioctl(-1, TIOCSTI)", ioctl, -1, TIOCSTI, (long)"x"),
	    KILLED_AS("ioctl(-1, TIOCLINUX)", ioctl, -1, TIOCLINUX, 0),
	    KILLED_AS("ioctl(-1, 1 << 32 | TIOCSTI)", ioctl, -1, (long)(1UL << 32 | TIOCSTI),
		      (long)"x"),
	    /* socket families. */
	    KILLED_AS("socket(AF_NETLINK)", socket, AF_NETLINK, SOCK_RAW, 0),
	    KILLED_AS("socket(AF_PACKET)", socket, AF_PACKET, SOCK_DGRAM, 0),
	    KILLED_AS("socket(AF_UNSPEC)", socket, AF_UNSPEC, SOCK_STREAM, 0),
	    KILLED_AS("socket(AF_VSOCK)", socket, AF_VSOCK, SOCK_STREAM, 0),
	    KILLED_AS("socket(AF_BLUETOOTH)", socket, AF_BLUETOOTH, SOCK_RAW, 0),
	    KILLED_AS("socket(AF_APPLETALK)", socket, AF_APPLETALK, SOCK_DGRAM, 0),
	    KILLED_AS("socket(1 << 32 | AF_INET)", socket, (long)(1UL << 32 | AF_INET), SOCK_STREAM,
		      0),
	    KILLED_AS("socketpair(AF_NETLINK)", socketpair, AF_NETLINK, SOCK_RAW, 0, 0),
	    /* Limits. */
	    KILLED_AS("prlimit64(0, RLIMIT_NOFILE, &new, NULL)", prlimit64, 0, RLIMIT_NOFILE,
		      (long)&nofile, 0),
	    KILLED_AS("setrlimit(RLIMIT_NOFILE, &new)", setrlimit, RLIMIT_NOFILE, (long)&nofile),
	    /* Other architectures' entry points. */
	    {.name = "x32 getpid (0x40000000 | nr)",
	     .want = W_KILLED,
	     .fn = call_raw,
	     .nr = 0x40000000 | __NR_getpid},
	    {.name = "i386 getpid (int $0x80)", .want = W_KILLED, .fn = call_int80_getpid},

	    /* Not on the allow-list, not worth a kill: EPERM. */
	    FAILS_AS("syncfs(-1)", EPERM, syncfs, -1),
	    FAILS_AS("setresuid(-1, -1, -1)", EPERM, setresuid, -1, -1, -1),
	    FAILS_AS("vmsplice(-1)", EPERM, vmsplice, -1, 0, 0, 0),
	    FAILS_AS("splice(-1)", EPERM, splice, -1, 0, -1, 0, 0, 0),
	    FAILS_AS("execveat(-1, \"\")", EPERM, execveat, -1, (long)"", 0, 0, AT_EMPTY_PATH),
	    FAILS_AS("seccomp(GET_ACTION_AVAIL)", EPERM, seccomp, SECCOMP_GET_ACTION_AVAIL, 0,
		     (long)&(const uint32_t){SECCOMP_RET_ALLOW}),
	    FAILS_AS("prctl(PR_SET_SECCOMP)", EPERM, prctl, PR_SET_SECCOMP, SECCOMP_MODE_FILTER, 0),
	    FAILS_AS("prctl(PR_SET_MM)", EPERM, prctl, PR_SET_MM, PR_SET_MM_BRK, 0, 0, 0),
	    /* RWF_NOWAIT would probe the host's page cache. */
	    FAILS_AS("preadv2(RWF_NOWAIT)", EPERM, preadv2, -1, 0, 0, 0, 0, RWF_NOWAIT),
	    /* The job's init must keep the SIGKILL that ties it to sandboxd. */
	    FAILS_AS("prctl(PR_SET_PDEATHSIG, 0)", EPERM, prctl, PR_SET_PDEATHSIG, 0, 0, 0, 0),
	    FAILS_AS("mbind (OpenBLAS calls it, ignores EPERM)", EPERM, mbind, 0, 0,
		     0 /* MPOL_DEFAULT */, 0, 0, 0),
	    FAILS_AS("mknodat(S_IFIFO)", EPERM, mknodat, AT_FDCWD, (long)"/nonexistent/fifo",
		     S_IFIFO | 0600, 0),
	    FAILS_AS("chown(\"/nonexistent\")", EPERM, chown, (long)"/nonexistent", 0, 0),
	    FAILS_AS("ioctl(-1, TIOCSCTTY) (unlisted request)", EPERM, ioctl, -1, TIOCSCTTY, 0),
	    FAILS_AS("inotify_init1", EPERM, inotify_init1, 0),
	    /* Allowed: the filter lets these reach the kernel, which answers. */
	    FAILS_AS("close(-1) reaches the kernel", EBADF, close, -1),
	    FAILS_AS("ioctl(-1, FIONBIO) reaches the kernel", EBADF, ioctl, -1, FIONBIO, 0),
	    {.name = "ioctl(pipe, TCGETS)", .want = W_ERRNO, .err = ENOTTY, .fn = call_tcgets_pipe},
	    WORKS_FN("getpid", call_raw, .nr = __NR_getpid),
	    WORKS_FN("clock_gettime (syscall, not vDSO)", call_clock_gettime),
	    WORKS_FN("mmap, mremap, madvise, mprotect, munmap", call_mmap),
	    WORKS_FN("fork + waitpid (clone, no NEW flags)", call_fork_wait),
	    WORKS_FN("clone(CLONE_VM | CLONE_VFORK) + execve", call_vfork_exec),
	    WORKS_FN("pthread_create + join", call_thread),
	    WORKS_FN("socket(AF_UNIX)", call_socket, .a = {AF_UNIX, SOCK_STREAM}),
	    WORKS_FN("socket(AF_INET)", call_socket, .a = {AF_INET, SOCK_DGRAM}),
	    WORKS_FN("socket(AF_INET6)", call_inet6),
	    WORKS_FN("socketpair(AF_UNIX)", call_socketpair, .a = {AF_UNIX, SOCK_STREAM}),
	    WORKS_FN("TCP on 127.0.0.1", call_inet_loopback),
	    WORKS_FN("pipe2 + poll", call_pipe_poll),
	    WORKS_FN("/proc/self/status: Seccomp 2", call_status_seccomp),
	    WORKS_FN("/proc/self/status: NoNewPrivs 1", call_status_nnp),
	    WORKS_FN("ioctl(FIONBIO)", call_fionbio),
	    WORKS_FN("prctl(PR_GET_NO_NEW_PRIVS)", call_prctl_nnp),
	    WORKS_FN("prctl(PR_SET_NAME, PR_GET_NAME)", call_prctl_name),
	    WORKS_FN("getrlimit (prlimit64, NULL new)", call_getrlimit),
	    WORKS_FN("personality(0xffffffff) query", call_raw, .nr = __NR_personality,
		     .a = {0xffffffff}),
	    WORKS_FN("personality(PER_LINUX)", call_raw, .nr = __NR_personality, .a = {PER_LINUX}),
	    WORKS_FN("getrandom, sched_*, kill(self, 0)", call_misc),
	    WORKS_FN("memfd_create", call_memfd),
	    WORKS_FN("files in /tmp", call_files),
	};

	for (size_t i = 0; i < ARRAY_SIZE(checks); i++)
		run_check(&f, &checks[i]);
	run_python(&f, argc > 1 ? argv[1] : NULL);

	sc_filter_free(&f);
	if (skipped)
		printf("     %u skipped\n", skipped);
	printf("%u passed, %u failed\n", passed, failed);
	return failed ? 1 : 0;
}
