"""Runs pyrunner/runner.py the way sandboxd does, minus the jail.

The child gets: argv [PYEXEC_PYTHON, -I, -S, -B, -u, PYEXEC_RUNNER], cwd a fresh tmp dir,
stdin /dev/null, stdout and stderr on pipes, fd 3 = the script on a pipe (closed after the
source is written), fd 4 = the result pipe, a minimal environment, and no other inherited fd
(sandboxd calls close_range; here every other fd is marked close-on-exec).
"""

import fcntl
import json
import os
import sys
import selectors
import subprocess
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/seed.py, the SEED examples
PYTHON = os.environ.get("PYEXEC_PYTHON", "/usr/bin/python3.11")
RUNNER = os.environ.get("PYEXEC_RUNNER",
                        os.path.join(HERE, "..", "..", "pyrunner", "runner.py"))
MAGIC = b"PXR1"
MAX_PAYLOAD = 16 * 1024 * 1024
ENV = {
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}
STATUS_KEYS = {
    "ok": {"status", "result"},
    "no_main": {"status"},
    "error": {"status", "message"},
    "bad_result": {"status", "message"},
    "exit": {"status", "code"},
}


class FrameError(Exception):
    pass


def _no_constants(name):
    raise FrameError("non-standard JSON constant %s" % name)


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise FrameError("duplicate keys %r" % keys)
    return dict(pairs)


def parse_frame(raw):
    """Everything on the result channel must be exactly one well-formed frame."""
    if len(raw) < 8:
        raise FrameError("short frame: %r" % raw[:16])
    if raw[:4] != MAGIC:
        raise FrameError("bad magic %r" % raw[:4])
    length = int.from_bytes(raw[4:8], "big")
    if length > MAX_PAYLOAD:
        raise FrameError("payload of %d bytes is over the cap" % length)
    if len(raw) != 8 + length:
        raise FrameError("length %d but %d payload bytes" % (length, len(raw) - 8))
    payload = raw[8:]
    try:
        text = payload.decode("utf-8")  # strict: no surrogates, no invalid bytes
        reply = json.loads(text, parse_constant=_no_constants,
                           object_pairs_hook=_no_duplicates)
    except ValueError as e:
        raise FrameError("bad payload: %s" % e)
    if type(reply) is not dict or reply.get("status") not in STATUS_KEYS:
        raise FrameError("bad reply %r" % text[:200])
    if set(reply) != STATUS_KEYS[reply["status"]]:
        raise FrameError("bad keys for %s: %r" % (reply["status"], sorted(reply)))
    if "message" in reply and (type(reply["message"]) is not str or not reply["message"]):
        raise FrameError("bad message %r" % reply["message"])
    if "code" in reply and type(reply["code"]) is not int:
        raise FrameError("bad code %r" % reply["code"])
    # The runner writes compact json.dumps(..., ensure_ascii=False) text: nothing else.
    canonical = json.dumps(reply, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    if canonical.encode("utf-8") != payload:
        raise FrameError("payload is not in canonical form: %r" % text[:200])
    return reply


class Run:
    def __init__(self, returncode, stdout, stderr, raw, elapsed):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.raw = raw
        self.elapsed = elapsed

    @property
    def frame(self):
        """The parsed reply; None if the channel stayed empty; FrameError if malformed."""
        return parse_frame(self.raw) if self.raw else None

    @property
    def out(self):
        return self.stdout.decode("utf-8")

    @property
    def err(self):
        return self.stderr.decode("utf-8")

    def __repr__(self):
        return "Run(rc=%r, raw=%r, stdout=%r, stderr=%r)" % (
            self.returncode, self.raw[:300], self.stdout[:300], self.stderr[-2000:])


def _high_dup(fd):
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


def run_runner(script, cwd, timeout=60.0, omit=()):
    """Run one job; omit=(3,) or (4,) starts the runner without that fd (a daemon bug)."""
    if isinstance(script, str):
        script = script.encode("utf-8")
    # Above 10 and close-on-exec, so the dup2 onto 3 and 4 in the child cannot clobber them.
    script_r, script_w = (_high_dup(fd) for fd in os.pipe())
    result_r, result_w = (_high_dup(fd) for fd in os.pipe())

    def child_setup():
        for fd, source in ((3, script_r), (4, result_w)):
            if fd in omit:
                try:
                    os.close(fd)
                except OSError:
                    pass
            else:
                os.dup2(source, fd)
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd > 4:
                try:
                    os.set_inheritable(fd, False)
                except OSError:
                    pass  # the listdir fd itself, already closed

    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            [PYTHON, "-I", "-S", "-B", "-u", RUNNER], cwd=str(cwd), env=ENV,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            close_fds=False, preexec_fn=child_setup)
    finally:
        os.close(script_r)
        os.close(result_w)

    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    outputs = {out_fd: [], err_fd: [], result_r: []}
    os.set_blocking(script_w, False)
    sel = selectors.DefaultSelector()
    for fd in outputs:
        sel.register(fd, selectors.EVENT_READ)
    sel.register(script_w, selectors.EVENT_WRITE)
    pending = memoryview(script)
    deadline = start + timeout
    try:
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                raise TimeoutError("runner did not finish in %.0f s" % timeout)
            for key, _ in sel.select(left):
                fd = key.fd
                if fd == script_w:
                    try:
                        pending = pending[os.write(fd, pending[:65536]):]
                    except BrokenPipeError:
                        pending = pending[:0]
                    if not pending:
                        sel.unregister(fd)
                        os.close(script_w)
                        script_w = -1
                    continue
                chunk = os.read(fd, 1 << 20)
                if chunk:
                    outputs[fd].append(chunk)
                else:
                    sel.unregister(fd)
        returncode = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        sel.close()
        if script_w >= 0:
            os.close(script_w)
        os.close(result_r)
        proc.stdout.close()
        proc.stderr.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Run(returncode, b"".join(outputs[out_fd]), b"".join(outputs[err_fd]),
               b"".join(outputs[result_r]), time.monotonic() - start)


@pytest.fixture
def run(tmp_path):
    """run(script) -> Run, with a fresh cwd per test."""
    jobdir = tmp_path / "job"
    jobdir.mkdir()

    def _run(script, timeout=60.0, omit=()):
        return run_runner(script, jobdir, timeout, omit)

    _run.cwd = str(jobdir)
    return _run


@pytest.fixture
def reply(run):
    """reply(script) -> the parsed frame of a run that must exit 0 with a valid frame."""

    def _reply(script):
        r = run(script)
        assert r.returncode == 0, r
        frame = r.frame
        assert frame is not None, r
        return frame

    return _reply
