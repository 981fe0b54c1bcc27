"""Fixtures of the fault-injection tests: real sandboxds and gatewayds (tests/gateway/harness.py),
real clients (python3-requests), real faults (SIGKILL, cgroupfs, a full tmpfs), and the census
of what the daemons hold (tests/soak/census.py).

When the host cannot run the suite (not root, no namespaces, no pyexec account), the session
exits with status 77, which ctest reports as skipped, after printing why.
"""
import os
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "gateway"))
sys.path.insert(0, os.path.join(HERE, "..", "soak"))
sys.path.insert(0, os.path.join(HERE, ".."))  # tests/seed.py

import census  # noqa: E402
import harness  # noqa: E402
import seed  # noqa: E402
from hostview import wait_for  # noqa: E402,F401 (tests import it from here)

HELLO = seed.HELLO
HELLO_BODY = seed.HELLO_REPLY + "\n"
HEALTHY_BODY = '{"status": "healthy"}\n'
# A job that announces itself, then runs long enough to be hit by whatever the test does.
SLEEPER = "import time\n\ndef main():\n    print('started', flush=True)\n    time.sleep(25)\n"

_all = []  # every daemon started in this session, for the failure report


def pytest_sessionstart(session):
    harness.exit_unless_runnable()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    harness.mark_logs(item, _all)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test shows what every daemon logged meanwhile."""
    outcome = yield
    harness.attach_logs(item, outcome.get_result(), _all)


@pytest.fixture
def start_sandbox():
    """start_sandbox(*flags, max_running=2, wait=True, cls=harness.Sandbox): a sandboxd, stopped
    and removed at the end of the test."""
    started = []

    def _start(*flags, wait=True, max_running=2, cls=harness.Sandbox, **kw):
        d = cls(*flags, max_running=max_running, **kw)
        _all.append(d)
        started.append(d)
        return d.start(wait=wait)

    yield _start
    for d in started:
        d.cleanup()


@pytest.fixture
def start_gateway():
    """start_gateway(socket_path, *flags): a gatewayd, stopped and removed at the end."""
    started = []

    def _start(socket_path, *flags, wait=True, **kw):
        g = harness.Gateway(socket_path, *flags, **kw)
        _all.append(g)
        started.append(g)
        return g.start(wait=wait)

    yield _start
    for g in started:
        g.cleanup()


# ---- clients -----------------------------------------------------------------------------------


def post(gw, script, timeout=harness.DEFAULT_TIMEOUT, **fields):
    """POST /execute: the requests.Response."""
    import requests
    return requests.post(gw.url + "/execute", json={"script": script, **fields}, timeout=timeout)


def health(gw):
    import requests
    return requests.get(gw.url + "/health", timeout=harness.DEFAULT_TIMEOUT)


class InFlight(threading.Thread):
    """One POST /execute in a thread of its own: .response or .error once done, and .seconds,
    the time from the request to its answer (or failure)."""

    def __init__(self, gw, script, **fields):
        super().__init__(daemon=True)
        self.gw, self.script, self.fields = gw, script, fields
        self.response = self.error = None
        self.t0 = self.t1 = None
        self.start()

    def run(self):
        self.t0 = time.monotonic()
        try:
            self.response = post(self.gw, self.script, **self.fields)
        except Exception as e:  # the test looks at it
            self.error = e
        self.t1 = time.monotonic()

    @property
    def seconds(self):
        return None if self.t1 is None else self.t1 - self.t0

    def answer(self, timeout=harness.DEFAULT_TIMEOUT):
        self.join(timeout)
        assert not self.is_alive(), "no answer"
        return self.response


# ---- the host's view of the jobs ---------------------------------------------------------------


def ns_pids(pid):
    """The pid in each PID namespace, outermost first (NSpid of /proc/PID/status)."""
    text = census.read_text(f"/proc/{pid}/status") or ""
    for line in text.splitlines():
        if line.startswith("NSpid:"):
            return [int(x) for x in line.split()[1:]]
    return []


def job_inits(sandbox):
    """Host pids of the jobs' inits: the processes in the daemon's job uid range that are PID 1
    of their own PID namespace."""
    return sorted(pid for pid, _ in census.host_procs(*sandbox.uid_range, daemon_pid=sandbox.pid)
                  if ns_pids(pid)[-1:] == [1])


PF_EXITING = 0x4  # include/linux/sched.h


def sandboxed(pid):
    """Whether a host process is jailed as a job is: in a job cgroup of every controller the
    daemon uses, and in a PID namespace other than the host's. None if it is gone or exiting: an
    exiting task is moved to the root cgroup by the kernel, so it cannot be judged then."""
    cg = census.read_text(f"/proc/{pid}/cgroup")
    try:
        pidns = os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None
    # Read after the two above: if the task was not exiting now, it was not then either.
    stat = census.read_text(f"/proc/{pid}/stat")
    if not stat or cg is None:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # state, ppid, pgrp, session, tty, tpgid, flags
    if fields[0] in "ZXx" or int(fields[6]) & PF_EXITING:
        return None
    host_pidns = os.readlink("/proc/self/ns/pid")  # the tests run in the host's
    in_job = {}
    for line in cg.splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(","):
            if c in census.CONTROLLERS:
                # A job's own cgroup, or its slot's (v1 keeps pids and cpuacct per slot).
                in_job[c] = "/pyexec/job-" in path or "/pyexec/slot-" in path
    return pidns != host_pidns and bool(in_job) and all(in_job.values())


class JobWatch(threading.Thread):
    """Looks at every process in a daemon's job uid range, every few ms, for as long as it runs:
    which pids it saw, which it found jailed (see sandboxed()), and any it found not jailed."""

    def __init__(self, uid_range, interval=0.01, daemon_pid=None):
        super().__init__(daemon=True)
        self.uid_range = uid_range
        # With the daemon's pid, its waiting warm-path spares are checked (jailed) but not
        # counted as seen: they hold job uids before any job is theirs.
        self.daemon_pid = daemon_pid
        self.interval = interval
        self.seen = set()
        self.scans = 0
        self.jailed = set()
        self.unjailed = []
        self.error = None
        self.stop_ev = threading.Event()
        self.start()

    def run(self):
        try:
            while not self.stop_ev.is_set():
                counted = {p for p, _ in census.host_procs(*self.uid_range,
                                                           daemon_pid=self.daemon_pid)}
                for pid, name in census.host_procs(*self.uid_range):
                    if pid in counted:
                        self.seen.add(pid)
                    jailed = sandboxed(pid)
                    if jailed and pid in counted:
                        self.jailed.add(pid)
                    elif jailed is False:
                        self.unjailed.append((pid, name))
                self.scans += 1
                time.sleep(self.interval)
        except Exception as e:  # stop() reports it: a blind watch proves nothing
            self.error = e

    def seen_when_idle(self, timeout=15):
        """What it saw, once no job process is left and two whole scans ran after that: a
        job that was answered just before (the answer precedes the teardown) is counted
        before, not after."""
        wait_for(lambda: census.host_procs(*self.uid_range, daemon_pid=self.daemon_pid) == [],
                 timeout, what="no job process")
        n = self.scans
        wait_for(lambda: self.scans >= n + 2, timeout, what="two scans of the job watch")
        return set(self.seen)

    def stop(self):
        self.stop_ev.set()
        self.join(30)
        assert self.error is None, f"the job watch failed: {self.error!r}"
        return self


# ---- before and after ----------------------------------------------------------------------------


def idle_census(sandbox, gateway=None, timeout=15):
    """A census (tests/soak/census.py) once no job process and no job cgroup is left."""
    def idle():
        # sandboxd answers a job as soon as its result is in and tears the jail down after:
        # idle is when it holds no job's pidfd any more (it closes it with the job's other
        # fds once the cgroup is gone), only those of the zygote and its waiting spares.
        if sandbox.proc.poll() is None and \
                census.pidfd_count(sandbox.pid) > len(census.warm_settled(sandbox)):
            return None  # a job's pidfd: it is still being torn down
        c = census.Census(sandbox, gateway)
        return c if not c.cgroups and not c.job_procs and not c.sbx_children else None
    return wait_for(idle, timeout, what="an idle sandboxd")


def assert_no_leaks(before, sandbox, gateway=None, timeout=15):
    """Waits (cleanup after the last answer takes a moment) until a census finds nothing that
    `before` did not hold; fails with what is left."""
    end = time.monotonic() + timeout
    while True:
        after = census.Census(sandbox, gateway)
        leaks = after.leaks_since(before)
        if not leaks:
            return after
        assert time.monotonic() < end, "left behind: " + "; ".join(leaks)
        time.sleep(0.2)


@pytest.fixture
def own_cgroups():
    """v1 cgroups of the test's own, one per hierarchy, for a sandboxd to run in (cgfault.py):
    removed, with whatever was made under them, at the end."""
    import cgfault
    dirs = cgfault.own_v1_dirs(f"pyexec-fault-{os.getpid()}")
    for d in dirs:
        os.makedirs(d, exist_ok=True)
    yield dirs
    for d in dirs:
        cgfault.rmdir_tree(d)
