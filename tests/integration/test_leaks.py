"""sandboxd survives every job outcome and leaks nothing: 200 mixed jobs, then count what is left.

Counted on the host after the run, against the same daemon before it: processes with the
daemon's job uids, the daemon's job cgroups, host mounts, the daemon's open fds, entries in the
jail directory, and children (zombies included) of the daemon.
"""
import os
import random
import threading
import time

from conftest import children_of, script, wait_for
import hostview
from hostview import slot_fd_count, warm_pids

KINDS = {
    # kind: (how many, script, limits, expected verdict)
    "hello": (60, "def main():\n    return {'message': 'Hello, World!'}\n", {}, "ok"),
    "pandas": (20, script("""
        import numpy as np
        import pandas as pd
        def main():
            df = pd.DataFrame({'a': np.arange(100)})
            return {'sum': int(df['a'].sum()), 'shape': df.shape}
    """), {}, "ok"),
    "error": (25, "def main():\n    raise ValueError('This is a test error')\n", {}, "error"),
    "no_main": (20, "x = 1\n", {}, "no_main"),
    "timeout": (15, "def main():\n    while True:\n        pass\n", {"timeout_ms": 300}, "timeout"),
    "oom": (15, "def main():\n    x = b'\\x01' * (100 << 20)\n    return len(x)\n",
            {"memory_mb": 64}, "oom"),
    "children": (15, script("""
        import os, time
        def main():
            for i in range(5):
                if os.fork() == 0:
                    try:
                        time.sleep(60)
                    finally:
                        os._exit(0)
            return 'forked'
    """), {}, "ok"),
    "cancelled": (15, "import time\ndef main():\n    time.sleep(30)\n", {}, "cancelled"),
    "disconnect": (15, "import os, time\ndef main():\n    os.fork()\n    time.sleep(30)\n", {}, None),
}
CONCURRENCY = 4


def job_cgroups(daemon):
    """Job cgroup directories the daemon left under any of its cgroup parents (the v1 'pyexec'
    directories, or its own cgroup on v2, as its start-up line names them): hostview's count,
    with the warm path's processes of this daemon's uid range."""
    return hostview.job_cgroups(daemon.pid, daemon.cgroup_dirs(),
                                warm_pids(daemon.pid, *daemon.uid_range))


def mounts():
    with open("/proc/self/mountinfo") as f:
        return sorted(" ".join(l.split()[3:5]) for l in f)


def test_200_mixed_jobs_leak_nothing(start_daemon):
    d = start_daemon(max_running=CONCURRENCY)
    # Spares ready, the canaries' cleanup done: at rest. Job slots made later add their fds.
    idle_fds = d.idle_fd_count() - slot_fd_count(d.pid)
    mounts_before = mounts()
    assert d.job_procs() == []
    assert d.cgroup_dirs(), "the daemon did not name its cgroup parents"  # else vacuous
    assert job_cgroups(d) == []

    jobs = [k for k, (n, *_rest) in KINDS.items() for _ in range(n)]
    assert len(jobs) == 200
    random.Random(2).shuffle(jobs)
    lock = threading.Lock()
    outcomes, failures = {}, []
    seen_cgroups = [0]
    done = threading.Event()

    def worker(wid):
        c = d.client()
        try:
            job_id = wid * 1000
            while True:
                with lock:
                    if not jobs:
                        return
                    kind = jobs.pop()
                _, src, limits, want = KINDS[kind]
                job_id += 1
                if kind == "disconnect":
                    other = d.client()
                    other.submit(1, src)
                    time.sleep(0.3)
                    other.close()
                    got = None
                elif kind == "cancelled":
                    c.submit(job_id, src)
                    time.sleep(0.3)
                    c.cancel(job_id)
                    got = c.collect([job_id])[0][job_id][1]["verdict"]
                else:
                    got = c.run(src, job_id=job_id, **limits)["verdict"]
                with lock:
                    outcomes.setdefault(kind, []).append(got)
                    if got != want:
                        failures.append((kind, got))
        except Exception as e:  # reported below, with the daemon's log
            with lock:
                failures.append(("worker %d" % wid, repr(e)))
        finally:
            c.close()

    def sampler():
        while not done.is_set():
            seen_cgroups[0] = max(seen_cgroups[0], len(job_cgroups(d)))
            time.sleep(0.2)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONCURRENCY)]
    sample = threading.Thread(target=sampler)
    t0 = time.monotonic()
    sample.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(900)
    done.set()
    sample.join()
    elapsed = time.monotonic() - t0
    assert not any(t.is_alive() for t in threads), "workers hung"
    assert failures == [], failures
    assert sum(len(v) for v in outcomes.values()) == 200
    print(f"200 jobs in {elapsed:.1f} s")

    # The scan would find the job cgroups: it saw them while jobs ran.
    assert seen_cgroups[0] >= 1
    assert d.alive()
    # Cleanup after the last RESULT takes a moment (a v1 cgroup may stay busy briefly).
    wait_for(lambda: d.job_procs() == [], timeout=10, what="no job processes")
    wait_for(lambda: job_cgroups(d) == [], timeout=15, what="no job cgroups")
    d.wait_warm()
    wait_for(lambda: d.fd_count() - slot_fd_count(d.pid) == idle_fds, timeout=15,
             what=f"the daemon's fds but its job slots' back to {idle_fds}")
    # Two per kept controller (pids, cpuacct) of each slot: never more than the slots.
    assert slot_fd_count(d.pid) <= 4 * (CONCURRENCY + 2 * 4 + 1), slot_fd_count(d.pid)
    # No zombies, no stray children: only the zygote and its waiting spares.
    warm = warm_pids(d.pid, *d.uid_range)
    assert [c for c in children_of(d.pid) if c[0] not in warm] == []
    assert mounts() == mounts_before
    assert os.listdir(d.jail) == [] and not os.path.ismount(d.jail)
    assert d.healthy()
    assert [l for l in d.log().splitlines() if ": error:" in l] == []
    d.cleanup()
    assert d.returncode == 0
