#!/usr/bin/python3 -I
"""The floor under the warm path's throughput on this machine: what the kernel alone charges
for one fresh process per job, with no jail, no sandboxd, no HTTP.

Like the zygote, it imports numpy and pandas and freezes the collector; then one worker per CPU
forks a child per job, and the child runs the SEED pandas example (compile, exec, main(), the
result to JSON) and exits. Fork (copying the page tables of a ~65 MB interpreter), the
copy-on-write faults the job's reference counts cause, and exit (unmapping it all) are paid
as a plain fork pays them; namespaces, cgroups, seccomp, mounts, the runner's framing and
both daemons are not. The zygote does better than a plain fork on that part (its heap in huge
pages, its free blocks taken: sandboxd/zygote/huge.c, seal.c), so the floor is a yardstick
from the same run, not a bound. Prints one JSON line: jobs/s, CPU ms per job of the whole machine
(as bench_http.py counts a warm job's) and of this floor's own processes; "ok" is false when
any job failed.

Usage: fork_floor.py SECONDS SCRIPT_FILE
"""
import gc
import json
import os
import sys
import time

import numpy  # noqa: F401 (what the zygote holds)
import pandas  # noqa: F401


def busy_ticks():
    """The whole machine's busy time from /proc/stat: all but idle and iowait."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]


def job(src):
    g = {"__name__": "__pyexec_job__"}
    exec(compile(src, "<script>", "exec"), g)
    json.dumps(g["main"](), default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))


def worker(src, until):
    n = 0
    while time.monotonic() < until:
        pid = os.fork()
        if pid == 0:
            try:
                job(src)
            except BaseException:
                os._exit(1)  # a job that fails is not a job done
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            os._exit(1)
        n += 1
    os.write(OUT, f"{n}\n".encode())  # one short line: atomic on a pipe
    os._exit(0)


def main():
    global OUT
    seconds, path = float(sys.argv[1]), sys.argv[2]
    with open(path) as f:
        src = f.read()
    job(src)  # imports anything the example needs beyond numpy and pandas, once
    gc.collect()
    gc.freeze()
    r, w = os.pipe()
    OUT = w
    t0, c0, busy0 = time.monotonic(), os.times(), busy_ticks()
    kids = []
    for _ in range(os.cpu_count()):
        pid = os.fork()
        if pid == 0:
            os.close(r)
            worker(src, t0 + seconds)
        kids.append(pid)
    os.close(w)
    ok = all(os.waitpid(k, 0)[1] == 0 for k in kids)
    with os.fdopen(r) as f:
        jobs = sum(int(x) for x in f.read().split())
    elapsed, c1, busy1 = time.monotonic() - t0, os.times(), busy_ticks()
    own = c1.children_user - c0.children_user + c1.children_system - c0.children_system
    machine = (busy1 - busy0) / os.sysconf("SC_CLK_TCK")
    # cpu_ms as bench_http.py counts a warm job's: the whole machine's busy time (kernel
    # threads included); own_cpu_ms: this floor's processes only.
    print(json.dumps({"ok": ok, "jobs": jobs, "jobs_s": jobs / elapsed,
                      "cpu_ms": machine * 1000 / max(jobs, 1),
                      "own_cpu_ms": own * 1000 / max(jobs, 1)}))
    return 0 if ok else 1


OUT = -1

if __name__ == "__main__":
    sys.exit(main())
