"""Real daemons for the gateway tests and the HTTP benchmark: a sandboxd and a gatewayd.

Binaries come from the environment (ctest sets them, see CMakeLists.txt):
  SANDBOXD       the privileged daemon  (default: <repo>/build/sandboxd)
  GATEWAYD       the HTTP gateway       (default: <repo>/build/gatewayd)
  PYEXEC_RUNNER  pyrunner's script      (default: <repo>/build/pyrunner/runner.py)
  GATEWAYD_WRAPPER  a command every gatewayd runs under, split as a shell would (default:
                 none); `make test-valgrind` sets tests/gateway/valgrind-gatewayd. The harness
                 names a report file in $PYEXEC_WRAPPER_LOG, and a gatewayd that exits with
                 WRAPPER_ERROR_EXIT (or whose report counts errors) fails the test that stops it.

Everything runs as root, as in production: sandboxd needs it, and gatewayd is started as root so
that it really drops to the `pyexec` account (the tests check it did). Each sandboxd gets its own
directory under /run (socket, jail mount point, log) and its own range of host uids, away from
the ranges the sandboxd integration tests and a hand-started sandboxd use, so "no job process
left" can be checked on a shared host. Each gatewayd listens on a free 127.0.0.1 port that it
picks itself (--listen 127.0.0.1:0) and reports in its "ready" log line.
"""
import itertools
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import pxclient  # noqa: E402  (the independent Python client of the wire protocol)
from hostview import host_procs, read_status, wait_for  # noqa: E402,F401


def _first_existing(*paths):
    for p in paths:
        if p and os.path.exists(p):
            return p
    return paths[0]


SANDBOXD = os.environ.get("SANDBOXD") or os.path.join(REPO, "build", "sandboxd")
GATEWAYD = os.environ.get("GATEWAYD") or os.path.join(REPO, "build", "gatewayd")
RUNNER = os.environ.get("PYEXEC_RUNNER") or _first_existing(
    os.path.join(REPO, "build", "pyrunner", "runner.py"), os.path.join(REPO, "pyrunner", "runner.py"))
GATEWAY_USER = "pyexec"
WRAPPER = shlex.split(os.environ.get("GATEWAYD_WRAPPER", ""))
WRAPPER_ERROR_EXIT = 99  # valgrind-gatewayd's --error-exitcode
# How many times slower a wrapped gatewayd is, for the bounds tests put on its own speed
# (memcheck runs gatewayd's code some 10 to 50 times slower; most of a request's time is
# sandboxd's and the job's, which memcheck does not slow).
SLOW = 5 if WRAPPER else 1

# 32 host uids per sandboxd, 8 sandboxds per test process: [9.0M, 10.1M), clear of the
# sandboxd integration tests (4.6M..8.7M) and of the default 4000000.
_UID_BASE0 = 9_000_000 + (os.getpid() % 4000) * 256
_uid_slots = itertools.count()

DEFAULT_TIMEOUT = 120.0  # seconds any one HTTP answer may take; 2 small cores, busy


def exit_unless_runnable(what=""):
    """For a conftest's pytest_sessionstart: exit 77 (ctest's skip; pytest has no exit status
    for "all skipped") saying why when the host cannot run the suite, 1 when not built."""
    reason = skip_reason()
    if reason:
        sys.stdout.write(f"SKIPPED: {what}{reason}\n")
        sys.stdout.flush()
        os._exit(77)
    missing = missing_binaries()
    if missing:
        sys.stdout.write(f"ERROR: not built: {', '.join(missing)} (build first, or set "
                         "SANDBOXD and GATEWAYD)\n")
        sys.stdout.flush()
        os._exit(1)


def mark_logs(item, daemons):
    """For pytest_runtest_setup: where each daemon's log stands when the test starts."""
    item._marks = {id(d): len(d.log()) for d in daemons}


def attach_logs(item, rep, daemons):
    """For pytest_runtest_makereport: a failed test shows what every daemon logged meanwhile."""
    if rep.failed:
        for d in daemons:
            start = getattr(item, "_marks", {}).get(id(d), 0)
            tail = d.log()[start:][-15000:]
            if tail:
                rep.sections.append((f"{type(d).__name__} log ({d.log_path})", tail))


def skip_reason():
    """Why this host cannot run the suite, or None."""
    if os.geteuid() != 0:
        return "the gateway tests need root (a real sandboxd, and gatewayd's privilege drop)"
    try:
        import pwd
        pwd.getpwnam(GATEWAY_USER)
    except KeyError:
        return f"the account '{GATEWAY_USER}' does not exist (make user)"
    try:
        r = subprocess.run(["unshare", "--user", "--pid", "--net", "--mount", "--ipc", "--uts",
                            "--fork", "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot try namespaces with unshare(1): {e}"
    if r.returncode != 0:
        return ("user/pid/net/mount/ipc/uts namespaces are unavailable here: "
                + r.stderr.decode(errors="replace").strip())
    return None


def missing_binaries():
    return [p for p in (SANDBOXD, GATEWAYD) if not os.access(p, os.X_OK)]


class _Proc:
    """A daemon with a log file."""

    def __init__(self, log_path):
        self.log_path = log_path
        self.proc = None
        self._logf = None

    @property
    def pid(self):
        return self.proc.pid

    def _spawn(self, argv, env):
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=self._logf, close_fds=True)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Signals, then waits; SIGKILL only if it hangs. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._logf:
            self._logf.close()
            self._logf = None
        return self.proc.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)


class Sandbox(_Proc):
    """One sandboxd with its own socket, jail mount point, log and uids."""

    def __init__(self, *flags, max_running=4):
        self.dir = tempfile.mkdtemp(prefix="pyexec-gw-", dir="/run")
        # Everyone may traverse it; sandboxd makes the socket's own directory 0750 root:pyexec.
        os.chmod(self.dir, 0o755)
        super().__init__(os.path.join(self.dir, "sandboxd.log"))
        self.socket = os.path.join(self.dir, "sock", "sandboxd.sock")
        self.jail = os.path.join(self.dir, "jail")
        self.uid_base = _UID_BASE0 + 32 * next(_uid_slots)
        self.uid_range = (self.uid_base, self.uid_base + 32)
        self.argv = [SANDBOXD, "--socket", self.socket, "--jail-dir", self.jail,
                     "--runner", RUNNER, "--uid-base", str(self.uid_base),
                     "--max-running", str(max_running), *flags]
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}

    def start(self, wait=True, timeout=90):
        self._log_mark = len(self.log())
        self._spawn(self.argv, self.env)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=90):
        def ready():
            if "ready: listening on" in self.log()[self._log_mark:] and \
                    os.path.exists(self.socket):
                return True
            if self.proc.poll() is not None:
                raise RuntimeError(f"sandboxd exited with {self.proc.returncode}:\n{self.log()}")
            return False
        wait_for(ready, timeout, what="sandboxd to be ready")
        # On the warm path (the default) the suites test what clients get most: warm jobs.
        if not any(a == "--warm-spares" and b == "0" for a, b in zip(self.argv, self.argv[1:])):
            wait_for(lambda: "warm path: verified" in self.log()[self._log_mark:], timeout,
                     what="sandboxd's warm path")

    def ping(self):
        with pxclient.Client(self.socket, timeout=30) as c:
            return c.ping()

    def job_procs(self):
        return host_procs(*self.uid_range, daemon_pid=self.pid)

    def cleanup(self):
        self.stop()
        if os.path.ismount(self.jail):  # never expected; do not rmtree through a mount
            return
        shutil.rmtree(self.dir, ignore_errors=True)


class Gateway(_Proc):
    """One gatewayd, started as root so it drops to the pyexec account itself."""

    _ready = re.compile(r"ready: listening on http://(\S+) as uid (\d+)")

    def __init__(self, socket_path, *flags, env=None, listen="127.0.0.1:0"):
        """listen=None leaves --listen out (the default, or $PORT from env, applies)."""
        self.dir = tempfile.mkdtemp(prefix="pyexec-gwd-", dir="/run")
        super().__init__(os.path.join(self.dir, "gatewayd.log"))
        self.wrapper_log = os.path.join(self.dir, "wrapper.log")
        self.socket_path = socket_path
        self.flags = (["--listen", listen] if listen else []) + list(flags)
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        # A sanitizer build (-DPYEXEC_SANITIZE=ON) reports where the caller wants it.
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                self.env[k] = os.environ[k]
        self.env.update(env or {})
        if WRAPPER:
            self.env["PYEXEC_WRAPPER_LOG"] = self.wrapper_log
        self.url = None
        self.address = None

    def start(self, wait=True, timeout=30):
        self._log_mark = len(self.log())
        self._spawn([*WRAPPER, GATEWAYD, "--socket", self.socket_path, *self.flags], self.env)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=30):
        timeout *= SLOW
        def ready():
            m = self._ready.search(self.log()[self._log_mark:])
            if m:
                return m
            if self.proc.poll() is not None:
                raise RuntimeError(f"gatewayd exited with {self.proc.returncode}:\n{self.log()}")
            return None
        m = wait_for(ready, timeout, what="gatewayd to be ready")
        self.address = m.group(1)
        self.url = "http://" + self.address
        host, _, port = self.address.rpartition(":")
        self.host, self.port = host, int(port)

    def wait_connected(self, timeout=60):
        """Until gatewayd holds a connection to sandboxd (its first attempt may be early)."""
        import requests
        wait_for(lambda: requests.get(self.url + "/health", timeout=30).status_code == 200,
                 timeout, interval=0.1, what="gatewayd to reach sandboxd")

    def status(self):
        return read_status(self.pid)

    def fds(self):
        """gatewayd's open descriptors. valgrind keeps a dozen of its own (its report, the
        executable, a pipe) at the top of the table, above the limit it shows gatewayd: the
        kernel's soft limit minus valgrind's 12 reserved ones. Those are left out."""
        fds = [int(fd) for fd in os.listdir(f"/proc/{self.pid}/fd")]
        if WRAPPER:
            with open(f"/proc/{self.pid}/limits") as f:
                soft = int(next(l for l in f if l.startswith("Max open files")).split()[3])
            fds = [fd for fd in fds if fd < soft - 12]
        return fds

    def stop(self, sig=signal.SIGTERM, timeout=60):
        # valgrind checks for leaks on the way out, which takes a few seconds of its own.
        return super().stop(sig, timeout * SLOW)

    def wrapper_report(self):
        try:
            with open(self.wrapper_log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wrapper_problem(self):
        """Once gatewayd exited: the wrapper's report if it found a problem, else None. A
        gatewayd killed with SIGKILL has no exit summary; what was reported until then counts."""
        if not WRAPPER or self.proc is None or self.proc.returncode is None:
            return None
        report = self.wrapper_report()
        if self.proc.returncode == WRAPPER_ERROR_EXIT or \
                re.search(r"ERROR SUMMARY: [1-9]", report):
            return report
        return None

    def cleanup(self):
        """Stops gatewayd; raises AssertionError (after cleaning up) when its wrapper found an
        error, so the test that started it fails."""
        self.stop()
        problem = self.wrapper_problem()
        shutil.rmtree(self.dir, ignore_errors=True)
        if problem:
            raise AssertionError(f"{' '.join(WRAPPER)} found errors in gatewayd "
                                 f"(exit status {self.proc.returncode}):\n{problem}")


def run_gatewayd(*args, env=None, timeout=30):
    """gatewayd run to its end (--check, a refusal to start), under GATEWAYD_WRAPPER too:
    subprocess.run's CompletedProcess, text mode. Fails when the wrapper found errors."""
    if not WRAPPER:
        return subprocess.run([GATEWAYD, *args], capture_output=True, text=True,
                              timeout=timeout, env=env)
    env = dict(os.environ if env is None else env)
    with tempfile.NamedTemporaryFile(prefix="pyexec-gwd-wrapper-", dir="/run") as report:
        env["PYEXEC_WRAPPER_LOG"] = report.name
        p = subprocess.run([*WRAPPER, GATEWAYD, *args], capture_output=True, text=True,
                           timeout=timeout * SLOW, env=env)
        text = report.read().decode("utf-8", "replace")
    if p.returncode == WRAPPER_ERROR_EXIT or re.search(r"ERROR SUMMARY: [1-9]", text):
        raise AssertionError(f"{' '.join(WRAPPER)} found errors in gatewayd {' '.join(args)} "
                             f"(exit status {p.returncode}):\n{text}")
    return p


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
