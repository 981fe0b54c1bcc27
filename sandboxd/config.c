/* config.c - the option table: every setting with its default, bounds and unit in one place. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "opttable.h"
#include "proto.h"

/* One row per setting, one line per row where it fits. */
// clang-format off
#define S(...) OPT_S(struct config, __VA_ARGS__)
#define U(...) OPT_U(struct config, __VA_ARGS__)
#define B(...) OPT_B(struct config, __VA_ARGS__)
// clang-format on

static const struct opt_def cfg_opts[] = {
    S("socket", socket_path, "/run/pyexec/sandboxd.sock", "Unix socket to listen on"),
    S("gateway-user", gateway_user, "pyexec", "account allowed to connect besides root"),
    S("python", python, PYEXEC_PYTHON, "CPython run in the jail"),
    S("runner", runner, "", "runner.py (default: found next to the binary)"),
    S("zygote", zygote, "", "pyexec-zygote (default: found next to the binary)"),
    S("jail-dir", jail_dir, "/run/pyexec/jail", "mount point for each job's root"),
    S("cgroup", cgroup_mode, "auto", "cgroup hierarchy: auto, v1 or v2"),
    S("audit-root", audit_root, "/", "where the audit reads /proc, /sys (tests: a fake tree)"),
    U("max-running", max_running, 0, 0, 1024, "jobs", "jobs at once (0: one per CPU)"),
    U("max-queued", max_queued, 256, 0, 65536, "jobs", "waiting jobs before BUSY"),
    U("timeout-ms", timeout_ms, 30000, 100, 600000, "ms", "wall-clock limit per job"),
    U("memory-mb", memory_mb, 512, 32, 65536, "MiB", "memory limit per job, swap 0"),
    U("pids-max", pids_max, 128, 8, 4096, "tasks", "tasks per job"),
    U("cpu-percent", cpu_percent, 100, 10, 6400, "% of a CPU", "CPU bandwidth per job"),
    U("stdout-max", stdout_max, 1 << 20, 1024, PROTO_STDOUT_MAX, "bytes", "stdout kept"),
    U("stderr-max", stderr_max, 64 << 10, 1024, PROTO_STDERR_MAX, "bytes", "stderr kept"),
    U("result-max", result_max, PROTO_RESULT_MAX, 1024, PROTO_RESULT_MAX, "bytes",
      "largest result frame"),
    U("tmp-size-mb", tmp_size_mb, 64, 1, 4096, "MiB", "size of /tmp and /dev/shm, each"),
    U("tmp-inodes", tmp_inodes, 4096, 64, 1 << 20, "inodes", "inodes of /tmp and /dev/shm"),
    U("uid-base", uid_base, 4000000, 1000, 4000000000u, "uid", "host uid of job slot 0"),
    U("warm-spares", warm_spares, 4, 0, 256, "jobs",
      "warm path: job processes forked ahead from a zygote (0: every job cold)"),
    B("check", check, "print the effective configuration and exit"),
    B("verbose", verbose, "debug logging"),
};

static const struct opt_table cfg_table = {
    .prog = "sandboxd",
    .about = "Runs Python jobs, each in a fresh jail.",
    .opts = cfg_opts,
    .n = ARRAY_SIZE(cfg_opts),
};

int cfg_parse(struct config *c, int argc, char **argv)
{
	int r;

	memset(c, 0, sizeof(*c));
	r = opt_parse(&cfg_table, c, argc, argv, NULL);
	if (r != 0)
		return r;
	if (strcmp(c->cgroup_mode, "auto") && strcmp(c->cgroup_mode, "v1") &&
	    strcmp(c->cgroup_mode, "v2")) {
		fprintf(stderr, "sandboxd: --cgroup must be auto, v1 or v2\n");
		return -EINVAL;
	}
	if (c->max_running == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		c->max_running = n > 0 ? (uint64_t)n : 1;
	}
	return 0;
}

void cfg_print(const struct config *c, FILE *out)
{
	opt_print(&cfg_table, c, out);
}
