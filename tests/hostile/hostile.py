"""The hostile suite's service and helpers: attack scripts go through the real HTTP API (a real
gatewayd in front of a real sandboxd, both from tests/gateway/harness.py), and after every
attack the service must still be whole (Service.assert_intact).

Each test file holds one category of attacks. An attack is a function registered with
`@attack`; it sends its script, then asserts the one safe outcome it expects (an exact error
text and status, or a result showing the operation was denied). The file's single parametrised
test runs each attack as its own test id and checks the service after it.
"""
import json
import os
import secrets
import sys
import textwrap
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "gateway"))

import harness  # noqa: E402,F401  (puts tests/integration on the path; conftest uses it)
from harness import wait_for  # noqa: E402,F401  (re-exported for the tests)

# The daemons' wall-clock limit for this suite (the default and the cap): long enough for the
# two-job test to keep one job waiting while another runs on a busy 2-core host, far below the
# production 30 s. Attacks that never end by themselves ask for HANG_MS instead.
JOB_TIMEOUT_MS = 6000
HANG_MS = 1500
HTTP_TIMEOUT = 120  # seconds any one answer may take; the host is small and shared

HELLO = "def main():\n    return {'message': 'Hello, World!'}\n"
HELLO_BODY = {"result": {"message": "Hello, World!"}, "stdout": ""}

SIGSYS = "Script execution error: killed by signal 31 (SIGSYS: a forbidden system call)"
OOM = "Script exceeded the memory limit (512 MiB)"
TIMED_OUT = "Script execution timed out"
NO_MAIN = "Script must contain a main() function"
NOT_JSON = "Request must be JSON"

# A value only the daemons' environments hold: no job may ever show it.
SECRET_NAME = "PYEXEC_HOSTILE_SECRET"
SECRET_VALUE = "hostile-" + secrets.token_hex(12)


def script(text):
    """Dedents a script written inline in a test."""
    return textwrap.dedent(text).lstrip("\n")


class Attacks(list):
    """The attacks of one test file, in the order they are declared."""

    def __call__(self, fn):
        self.append(fn)
        return fn

    @staticmethod
    def id(fn):
        return fn.__name__.replace("_", "-")


class Answer:
    """One HTTP answer: status, headers, the raw text and the parsed JSON body (or None)."""

    def __init__(self, r):
        self.status = r.status_code
        self.headers = r.headers
        self.text = r.text
        try:
            self.body = r.json()
        except ValueError:
            self.body = None
        self.verdict = r.headers.get("X-Pyexec-Verdict")

    def __repr__(self):
        return (f"<HTTP {self.status} verdict={self.verdict} "
                f"{self.text[:1500]!r}{'...' if len(self.text) > 1500 else ''}>")


class Service:
    """The suite's sandboxd and gatewayd."""

    def __init__(self, sandbox, gateway):
        self.sandbox = sandbox
        self.gateway = gateway
        self.url = gateway.url
        self.http = requests.Session()

    def post(self, data, content_type="application/json", path="/execute"):
        """POSTs raw bytes (or a str) as they are."""
        if isinstance(data, str):
            data = data.encode()
        r = self.http.post(self.url + path, data=data, timeout=HTTP_TIMEOUT,
                           headers={"Content-Type": content_type} if content_type else {})
        return Answer(r)

    def execute(self, src, **fields):
        """Runs a script; extra request fields (timeout_ms, stderr, ...) as keywords."""
        return self.post(json.dumps({"script": src, **fields}))

    def job_procs(self):
        return self.sandbox.job_procs()

    def assert_intact(self):
        """After every attack: both daemons run, /health is healthy, nothing of any job is
        left on the host (processes with a job uid, mounts under the daemon's directory), and a
        fresh hello job gives exactly the right answer."""
        assert self.sandbox.alive(), f"sandboxd is gone:\n{self.sandbox.log()[-3000:]}"
        assert self.gateway.alive(), f"gatewayd is gone:\n{self.gateway.log()[-3000:]}"
        # The answer comes only after the whole job is gone (sandboxd waits for the cgroup to
        # empty), so nothing may be left even now; if something is, say how long it lingers.
        left = self.job_procs()
        if left:
            t0 = time.monotonic()
            while self.job_procs() and time.monotonic() - t0 < 10:
                time.sleep(0.1)
            raise AssertionError(f"job processes survived the answer: {left} "
                                 f"(still there 10 s later: {self.job_procs()})")
        mounts = [line.split()[4] for line in open("/proc/self/mountinfo")]
        stray = [m for m in mounts if m.startswith(self.sandbox.dir)]
        assert not stray, f"mounts left on the host: {stray}"
        r = self.http.get(self.url + "/health", timeout=HTTP_TIMEOUT)
        assert (r.status_code, r.text) == (200, '{"status": "healthy"}\n'), (r.status_code,
                                                                            r.text)
        a = self.execute(HELLO)
        assert (a.status, a.body) == (200, HELLO_BODY), a


def job_cpu_limit(pid):
    """The CPU bandwidth of the cgroup a job process is in, in CPUs (None: unlimited), read on
    the host from cgroup v1's cpu controller or v2's cpu.max."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    for _, controllers, path in lines:
        if "cpu" in controllers.split(","):
            d = f"/sys/fs/cgroup/{controllers}{path}"
            if not os.path.isdir(d):
                d = f"/sys/fs/cgroup/cpu{path}"
            with open(d + "/cpu.cfs_quota_us") as q, open(d + "/cpu.cfs_period_us") as p:
                quota, period = int(q.read()), int(p.read())
            return None if quota < 0 else quota / period
    for _, controllers, path in lines:
        if controllers == "":
            with open(f"/sys/fs/cgroup{path}/cpu.max") as f:
                quota, period = f.read().split()
            return None if quota == "max" else int(quota) / int(period)
    raise AssertionError(f"no cpu cgroup for pid {pid}: {lines}")


# ---- expectations -----------------------------------------------------------------------------

def expect(a, status, body, verdict=None):
    """The exact status and JSON body (and X-Pyexec-Verdict, when given)."""
    assert (a.status, a.body) == (status, body), a
    if verdict is not None:
        assert a.verdict == verdict, a


def result_of(a, stdout=""):
    """A 200 with exactly {"result", "stdout"}; returns the result. stdout=None: any."""
    assert a.status == 200 and isinstance(a.body, dict), a
    assert set(a.body) == {"result", "stdout"}, a
    if stdout is not None:
        assert a.body["stdout"] == stdout, a
    return a.body["result"]


def killed_by_seccomp(a, stdout="before\n"):
    """The filter killed the job in the very call: what it printed before is all there is."""
    expect(a, 400, {"error": SIGSYS, "stdout": stdout}, verdict="killed")


# A script prologue for raw system calls by number (x86_64), as an attacker would make them.
SYSCALL_PROLOGUE = script("""
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    def syscall(nr, *args):
        r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
        return [r, ctypes.get_errno() if r < 0 else 0]
    def in_child(fn):
        # Runs fn in a forked child; returns the signal that killed it, or "exit N".
        pid = os.fork()
        if pid == 0:
            try:
                fn()
            finally:
                os._exit(0)
        st = os.waitpid(pid, 0)[1]
        return os.WTERMSIG(st) if os.WIFSIGNALED(st) else "exit %d" % os.WEXITSTATUS(st)
""")


def syscall_script(nr, *args):
    """A job that prints "before", then makes one raw system call and returns what it got."""
    return SYSCALL_PROLOGUE + script(f"""
        def main():
            os.write(1, b"before\\n")
            return syscall({nr}, *{list(args)!r})
    """)
