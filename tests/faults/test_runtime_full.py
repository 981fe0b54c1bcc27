"""Fault: sandboxd's runtime directory (its socket's directory and the jail mount point) is on a
file system that is full: here a small tmpfs of the test's own, filled with a data file (no
blocks left) and empty files (no inodes left).

What sandboxd puts there: at start, the socket's directory, the jail mount point and the socket
(one inode each, no data); per job, nothing (each job mounts its root on the mount point inside
its own mount namespace, and its /tmp is a tmpfs of its own). So:
  - full while serving: it keeps serving, every job as usual; a clean stop removes its socket,
    so it starts again on the same full file system, and after SIGKILL too (it replaces its
    stale socket, which frees that inode first);
  - no inode left before its first start: it refuses to start, saying which directory and why,
    leaves nothing behind, and starts once there is room;
  - no inode left for the socket (directories already there): it refuses to start after its
    canary, saying so, and leaves nothing behind; a gateway in front answers 503 meanwhile.
"""
import errno
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

from conftest import (HEALTHY_BODY, HELLO, HELLO_BODY, assert_no_leaks, census, harness,
                      health, idle_census, post, wait_for)

ERROR = "def main():\n    return 1 / 0\n"
OOM = "def main():\n    hoard = []\n    while True:\n        hoard.append(bytearray(1 << 20))\n"
# The job's own /tmp is not the runtime directory: it has room.
WRITES_TMP = ("def main():\n    with open('/tmp/big', 'wb') as f:\n"
              "        f.write(b'x' * (8 << 20))\n    return 'wrote'\n")


class RuntimeSandbox(harness.Sandbox):
    """A sandboxd whose socket and jail mount point are under `runtime`."""

    def __init__(self, *flags, runtime, **kw):
        super().__init__(*flags, **kw)
        self.socket = os.path.join(runtime, "sock", "sandboxd.sock")
        self.jail = os.path.join(runtime, "jail")
        self.argv[self.argv.index("--socket") + 1] = self.socket
        self.argv[self.argv.index("--jail-dir") + 1] = self.jail


@pytest.fixture
def small_tmpfs():
    """A 1 MiB tmpfs with 64 inodes, unmounted at the end (after the daemons' teardown, as it
    is requested first)."""
    d = tempfile.mkdtemp(prefix="pyexec-rt-", dir="/run")
    os.chmod(d, 0o755)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=64,mode=0755",
                    "pyexec-fault-rt", d], check=True)
    yield d
    if subprocess.run(["umount", d]).returncode != 0:
        subprocess.run(["umount", "-l", d])
    shutil.rmtree(d, ignore_errors=True)


def fill(d):
    """Fills the file system of d: one file takes every block, then empty files every inode.
    Returns the files made."""
    made = []
    path = os.path.join(d, "fill-data")
    made.append(path)
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    for i in range(100000):
        path = os.path.join(d, f"fill-{i}")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
            break
        made.append(path)
    # Full indeed: no data, no file, no directory fits.
    for make in (lambda p: os.mkdir(p), lambda p: os.close(os.open(p, os.O_CREAT | os.O_WRONLY))):
        with pytest.raises(OSError) as e:
            make(os.path.join(d, "one-more"))
        assert e.value.errno == errno.ENOSPC
    return made


def unfill(files):
    for p in files:
        os.unlink(p)


def test_full_while_serving_keeps_serving(small_tmpfs, start_sandbox, start_gateway):
    sbx = start_sandbox(cls=RuntimeSandbox, runtime=small_tmpfs)
    gw = start_gateway(sbx.socket)
    gw.wait_connected()
    assert post(gw, HELLO).text == HELLO_BODY
    before = idle_census(sbx, gw)

    fill(small_tmpfs)
    for script, fields, status, body in (
            (HELLO, {}, 200, HELLO_BODY),
            (ERROR, {}, 400, '{"error": "Script execution error: division by zero", '
                             '"stdout": ""}\n'),
            (OOM, {"memory_mb": 64}, 400, '{"error": "Script exceeded the memory limit '
                                          '(64 MiB)", "stdout": ""}\n'),
            (WRITES_TMP, {}, 200, '{"result": "wrote", "stdout": ""}\n')):
        for _ in range(3):
            r = post(gw, script, **fields)
            assert (r.status_code, r.text) == (status, body)
    assert health(gw).text == HEALTHY_BODY
    assert_no_leaks(before, sbx, gw)

    # A clean stop removes the socket, which frees its inode: it starts again on the full
    # file system, and the gateway reconnects by itself.
    assert sbx.stop() == 0
    assert not os.path.exists(sbx.socket)
    sbx.start()
    gw.wait_connected(60)
    assert post(gw, HELLO).text == HELLO_BODY
    # After SIGKILL the stale socket still holds that inode; the new daemon unlinks it before
    # it binds, so it starts all the same.
    sbx.kill()
    assert os.path.exists(sbx.socket)
    sbx.start()
    gw.wait_connected(60)
    assert post(gw, HELLO).text == HELLO_BODY
    assert gw.stop() == 0
    assert sbx.stop() == 0


def test_no_inode_for_its_directories(small_tmpfs, start_sandbox):
    files = fill(small_tmpfs)
    parents = census.cgroup_parents(os.getpid())  # the daemon starts in our cgroups
    sbx = start_sandbox(cls=RuntimeSandbox, runtime=small_tmpfs, wait=False)
    sbx.proc.wait(90)
    rc = sbx.stop()
    log = sbx.log()
    sock_dir = os.path.dirname(sbx.socket)
    assert rc == 1, log
    assert f"error: cannot prepare {sock_dir}: No space left on device" in log, log
    assert "ready: listening" not in log
    assert sorted(os.listdir(small_tmpfs)) == sorted(os.path.basename(p) for p in files)
    assert census.job_cgroups(sbx.pid, parents) == []
    assert census.host_procs(*sbx.uid_range, daemon_pid=sbx.pid) == []

    # Room again: it starts and serves.
    unfill(files)
    sbx.start()
    assert sbx.ping()["ready"] == 1
    assert sbx.stop() == 0


def test_no_inode_for_its_socket(small_tmpfs, start_sandbox, start_gateway):
    # The directories exist, as sandboxd makes them (or systemd's RuntimeDirectory=): the
    # socket's 0750 root:pyexec, so the gateway may enter it.
    for sub in ("sock", "jail"):
        os.mkdir(os.path.join(small_tmpfs, sub), 0o750)
    os.chown(os.path.join(small_tmpfs, "sock"), 0, pwd.getpwnam(harness.GATEWAY_USER).pw_gid)
    files = fill(small_tmpfs)
    parents = census.cgroup_parents(os.getpid())
    sbx = start_sandbox(cls=RuntimeSandbox, runtime=small_tmpfs, wait=False)
    gw = start_gateway(sbx.socket)
    sbx.proc.wait(90)
    rc = sbx.stop()
    log = sbx.log()
    assert rc == 1, log
    # Its canary job ran (the jail needs no room there), then the socket found none.
    assert "canary (cold): uid 1000" in log, log
    assert f"error: cannot listen on {sbx.socket}: No space left on device" in log, log
    assert not os.path.exists(sbx.socket)
    wait_for(lambda: census.job_cgroups(sbx.pid, parents) == [], 15,
             what="the canary's cgroups to be gone")
    assert census.host_procs(*sbx.uid_range, daemon_pid=sbx.pid) == []
    # The gateway in front: 503 with Retry-After, and unhealthy, saying why.
    r = post(gw, HELLO)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1", r.text
    assert r.json() == {"error": "The sandbox is unavailable, retry later"}
    r = health(gw)
    assert r.status_code == 503
    assert r.json() == {"status": "unhealthy",
                        "reason": "sandboxd is unreachable: No such file or directory"}

    # Room again: it starts, and the gateway reconnects by itself.
    unfill(files[:1] + files[-1:])
    sbx.start()
    gw.wait_connected(60)
    assert post(gw, HELLO).text == HELLO_BODY
    assert gw.stop() == 0
    assert sbx.stop() == 0
