"""Integration tests of sandboxd: a real daemon, real namespaces, real cgroups (root only).

Binaries come from the environment (ctest sets them, see CMakeLists.txt):
  SANDBOXD       the daemon        (default: <repo>/build/sandboxd)
  PYEXEC_RUNNER  pyrunner's script (default: <repo>/build/pyrunner/runner.py, else the source)
  PYEXEC_CLI     the CLI           (default: <repo>/build/pyexec)

Each daemon gets its own directory /run/pyexec-test-XXXX (socket, jail mount point, log), its
own range of host uids (--uid-base), and a marker variable in its environment that no job may
ever see. Nothing here logs a script: failing tests show the daemon's log, which must not
contain scripts either (test_daemon checks that).

When the host cannot run the suite (not root, no user/pid/net/mount namespaces), the whole
session exits with status 77, which ctest reports as skipped, after printing why.
"""
import itertools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # tests/seed.py, the SEED examples

import pxclient  # noqa: E402
from hostview import children_of, host_procs, read_status, wait_for, warm_pids, zygote_pids  # noqa: E402,F401 (tests import them from here)


def _first_existing(*paths):
    for p in paths:
        if p and os.path.exists(p):
            return p
    return paths[0]


SANDBOXD = os.environ.get("SANDBOXD") or os.path.join(REPO, "build", "sandboxd")
RUNNER = os.environ.get("PYEXEC_RUNNER") or _first_existing(
    os.path.join(REPO, "build", "pyrunner", "runner.py"), os.path.join(REPO, "pyrunner", "runner.py"))
CLI = os.environ.get("PYEXEC_CLI") or os.path.join(REPO, "build", "pyexec")
GATEWAY_USER = "pyexec"

# A value that exists only in the daemons' environment: no job may ever read it anywhere.
SECRET_NAME = "PYEXEC_TEST_SECRET"
SECRET_VALUE = "pxsecret-" + secrets.token_hex(12)

# Each daemon of this session gets 64 host uids of its own, away from the default 4000000 that a
# manually started sandboxd on the same machine uses.
_UID_BASE0 = 4_600_000 + (os.getpid() % 4000) * 1024
_uid_slots = itertools.count()

DEFAULT_TIMEOUT = 120.0  # seconds a test waits for any one answer; the machine is small and busy


def script(text):
    """Dedents a script written inline in a test."""
    return textwrap.dedent(text).lstrip("\n")


# ---- the host's view --------------------------------------------------------------------------


# ---- daemons ----------------------------------------------------------------------------------

_all_daemons = []


class Daemon:
    """One sandboxd with its own socket, jail mount point, log and uid range."""

    def __init__(self, *flags, max_running=4, env=None, python=None, runner=None, uid_base=None,
                 socket_dir="sock"):
        self.dir = tempfile.mkdtemp(prefix="pyexec-test-", dir="/run")
        # Everyone may traverse the top directory: the socket's own directory (made by the
        # daemon, 0750 root:pyexec) is what keeps other users out, and that is under test.
        os.chmod(self.dir, 0o755)
        self.socket = os.path.join(self.dir, socket_dir, "sandboxd.sock")
        self.jail = os.path.join(self.dir, "jail")
        self.log_path = os.path.join(self.dir, "sandboxd.log")
        self.max_running = max_running
        self.uid_base = uid_base if uid_base is not None else _UID_BASE0 + 64 * next(_uid_slots)
        self.uid_range = (self.uid_base, self.uid_base + 64)
        self.argv = [SANDBOXD, "--socket", self.socket, "--jail-dir", self.jail,
                     "--runner", runner or RUNNER, "--uid-base", str(self.uid_base),
                     "--max-running", str(max_running)]
        if python:
            self.argv += ["--python", python]
        # SANDBOXD_EXTRA_ARGS: the same suite on another configuration (ctest's *.cold tests
        # run it with "--warm-spares 0", the cold path only).
        self.argv += os.environ.get("SANDBOXD_EXTRA_ARGS", "").split()
        self.argv += list(flags)
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                    SECRET_NAME: SECRET_VALUE}
        self.env.update(env or {})
        self.proc = None
        self.returncode = None
        self._log_mark = 0
        _all_daemons.append(self)

    def start(self, wait=True, timeout=90):
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self._logf, stderr=self._logf, close_fds=True)
        if wait:
            self.wait_ready(timeout)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_ready(self, timeout=90):
        end = time.monotonic() + timeout
        while True:
            if "ready: listening on" in self.log() and os.path.exists(self.socket):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"sandboxd exited with {self.proc.returncode} before it was "
                                   f"ready:\n{self.log()}")
            if time.monotonic() > end:
                raise RuntimeError(f"sandboxd not ready after {timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=60):
        """SIGTERM, then wait; SIGKILL only if it hangs. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        self._logf.close()
        return self.returncode

    def cleanup(self):
        self.stop()
        if os.path.ismount(self.jail):  # never expected; do not rmtree through a mount
            return
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- clients

    def client(self, timeout=DEFAULT_TIMEOUT):
        return pxclient.Client(self.socket, timeout=timeout)

    def run(self, source, **kw):
        with self.client() as c:
            return c.run(source, **kw)

    def ping(self):
        with self.client(timeout=30) as c:
            return c.ping()

    def healthy(self):
        """The daemon is up, ready, and still runs a job correctly."""
        assert self.alive(), f"sandboxd died:\n{self.log()}"
        pong = self.ping()
        assert pong["ready"] == 1, pong
        r = self.run("def main():\n    return 'still here'\n")
        assert (r["verdict"], r["result"]) == ("ok", '"still here"'), r
        return True

    @property
    def warm(self):
        """The warm path is configured (the default; --warm-spares 0 turns it off)."""
        args = self.argv
        return not any(a == "--warm-spares" and b == "0" for a, b in zip(args, args[1:]))

    @property
    def n_slots(self):
        """Host uids the daemon uses from uid_base on: one per running job, and on the warm
        path two per spare (4 by default: spares still being removed keep theirs) and one
        for the warm canary."""
        return self.max_running + (2 * 4 + 1 if self.warm else 0)

    def wait_warm(self, spares=4, timeout=60):
        """Until the warm path is verified and `spares` spares wait (the default count), each
        ready: past its rehearsal, its sync socket (fd 5) closed. (The daemon closes its end
        when its loop sees that: for its idle fd count, see idle_fd_count().)"""
        wait_for(lambda: "warm path: verified" in self.log(), timeout, what="the warm path")

        def settled():
            zygotes = zygote_pids(self.pid)
            pids = warm_pids(self.pid, *self.uid_range)
            if len(zygotes) != 1 or len(pids) != spares + 1:
                return False
            return all(p in zygotes or (os.path.isdir(f"/proc/{p}/fd") and
                                        not os.path.lexists(f"/proc/{p}/fd/5")) for p in pids)

        wait_for(settled, timeout, what=f"{spares} ready spares and the zygote")

    def job_procs(self):
        return host_procs(*self.uid_range, daemon_pid=self.pid)

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def idle_fd_count(self, settle=0.3, timeout=15):
        """The daemon's fd count at rest: spares ready (wait_warm) and the daemon's fds the
        same for `settle` seconds, so that it has also closed its end of each spare's sync
        socket and finished the last job's (or canary's) cleanup."""
        if self.warm:
            self.wait_warm()
        end = time.monotonic() + timeout
        seen, since = None, time.monotonic()
        while True:
            now = sorted(os.listdir(f"/proc/{self.pid}/fd"))
            if now != seen:
                seen, since = now, time.monotonic()
            elif time.monotonic() - since >= settle:
                return len(now)
            assert time.monotonic() < end, f"the daemon's fds did not settle in {timeout} s"
            time.sleep(0.02)

    def cgroup_dirs(self):
        """The daemon's per-controller 'pyexec' cgroup directories, from its start-up line."""
        dirs = []
        for line in self.log().splitlines():
            if "cgroup v1 fallback:" in line:
                for part in line.split("cgroup v1 fallback:")[1].split(","):
                    if " at " in part:
                        dirs.append(part.split(" at ")[1].split(" (")[0].strip())
            elif "cgroup v2 at " in line:
                dirs.append(line.split("cgroup v2 at ")[1].split(" (")[0].strip())
        return dirs

    def mark_log(self):
        self._log_mark = len(self.log())

    def log_since_mark(self):
        return self.log()[self._log_mark:]


def _skip_reason():
    if os.geteuid() != 0:
        return "the sandboxd integration tests need root (namespaces, mounts, cgroups)"
    try:
        r = subprocess.run(["unshare", "--user", "--pid", "--net", "--mount", "--ipc", "--uts",
                            "--fork", "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot try namespaces with unshare(1): {e}"
    if r.returncode != 0:
        return ("user/pid/net/mount/ipc/uts namespaces are unavailable here: "
                + r.stderr.decode(errors="replace").strip())
    return None


def pytest_sessionstart(session):
    reason = _skip_reason()
    if reason:
        # ctest's SKIP_RETURN_CODE is 77; pytest has no exit status for "all skipped".
        sys.stdout.write(f"SKIPPED: {reason}\n")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(77)
    if not os.access(SANDBOXD, os.X_OK):
        sys.stdout.write(f"ERROR: no sandboxd binary at {SANDBOXD} (build first, or set SANDBOXD)\n")
        sys.stdout.flush()
        os._exit(1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test shows what every daemon it may have used logged meanwhile."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for d in _all_daemons:
            text = d.log()
            start = getattr(item, "_pyexec_log_marks", {}).get(id(d), 0)
            tail = text[start:][-20000:]
            if tail:
                rep.sections.append((f"sandboxd log ({d.socket})", tail))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item._pyexec_log_marks = {id(d): len(d.log()) for d in _all_daemons}


@pytest.fixture(scope="session")
def daemon():
    """The session's sandboxd: 4 jobs at once, default limits. On the warm path (the default)
    the tests start once the zygote is verified, so every job with default limits runs warm."""
    d = Daemon(max_running=4)
    try:
        d.start()
        if d.warm:
            d.wait_warm()
        yield d
    finally:
        rc = d.stop()
        d.cleanup()
    assert rc == 0, f"sandboxd exited with {rc} on SIGTERM:\n{d.log()[-5000:]}"


@pytest.fixture
def start_daemon():
    """Starts extra daemons with custom flags; each is stopped at the end of the test."""
    started = []

    def _start(*flags, wait=True, **kw):
        d = Daemon(*flags, **kw)
        started.append(d)
        return d.start(wait=wait)

    yield _start
    for d in started:
        d.cleanup()


@pytest.fixture
def run(daemon):
    """run(source, **limits) -> RESULT dict, on the session daemon."""
    return daemon.run


def hello():
    return "def main():\n    return {'message': 'Hello, World!'}\n"


def free_tcp_listener():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s
