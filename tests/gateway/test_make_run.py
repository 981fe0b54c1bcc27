"""`make run`, the README's first command: it serves the API, and Ctrl-C stops both daemons.

Runs the real Makefile target against this build (only the socket and the address differ from
the defaults, so a service already running on the host is not disturbed), talks to it with curl
and sends SIGINT to its process group, as Ctrl-C in a terminal does.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile

import pytest
import requests

import harness

SRC = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def daemons_on(sock):
    """pids of the processes started with this socket (sandboxd and gatewayd)."""
    out = subprocess.run(["pgrep", "-f", f"socket {sock}"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@pytest.mark.skipif(bool(harness.WRAPPER), reason=(
    "GATEWAYD_WRAPPER cannot reach this gatewayd: make run starts it through "
    "systemd/pyexec-run, not the harness; the other gateway files start, probe and stop "
    "gatewayd under the wrapper"))
def test_make_run_serves_and_ctrl_c_stops_both():
    build = os.path.dirname(os.path.abspath(harness.SANDBOXD))
    # The gateway (uid pyexec) must be able to walk to the socket: a 0755 directory in /run.
    top = tempfile.mkdtemp(prefix="pyexec-makerun-", dir="/run")
    os.chmod(top, 0o755)
    sock = os.path.join(top, "sd", "sandboxd.sock")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = os.path.join(top, "make-run.log")
    with open(log_path, "w") as log:
        p = subprocess.Popen(["make", "-C", SRC, "run", f"BUILD={build}", f"SOCKET={sock}",
                              f"LISTEN=127.0.0.1:{port}"], stdin=subprocess.DEVNULL,
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        harness.wait_for(lambda: p.poll() is not None or listening(port), timeout=300,
                         what="make run listening")
        assert p.poll() is None, open(log_path).read()
        assert requests.get(url + "/health", timeout=30).text == '{"status": "healthy"}\n'
        r = subprocess.run(["curl", "-sS", "-X", "POST", url + "/execute", "-H",
                            "Content-Type: application/json", "-d",
                            '{"script": "def main():\\n    return {\\"x\\": 1}"}'],
                           capture_output=True, text=True, timeout=60)
        assert r.stdout == '{"result": {"x": 1}, "stdout": ""}\n', r
        assert len(daemons_on(sock)) >= 2
        os.killpg(p.pid, signal.SIGINT)  # Ctrl-C in the terminal
        p.wait(timeout=90)
        harness.wait_for(lambda: daemons_on(sock) == [], timeout=30, what="both daemons gone")
        assert not listening(port)
        text = open(log_path).read()
        # Both daemons stopped on the signal, and cleanly.
        assert "sandboxd exited with status 0" in text, text
        assert "stopped after" in text, text
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        for pid in daemons_on(sock):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(top, ignore_errors=True)
