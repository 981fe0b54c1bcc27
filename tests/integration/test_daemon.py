"""sandboxd as a server: the wire protocol, many jobs per connection, the queue, cancel, peers,
the socket's permissions, fail-closed start-up and a graceful stop."""
import errno
import grp
import json
import os
import pwd
import secrets
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

import pxclient
from pxclient import (ERROR, PING, PONG, RESULT, SUBMIT, E_BUSY, E_INVALID, E_PROTOCOL,
                      E_SHUTDOWN, frame, submit_frame)
from conftest import GATEWAY_USER, script, wait_for
from hostview import slot_fd_count

SLEEP = "import time\ndef main():\n    time.sleep(%s)\n    return %r\n"


def sleeper(seconds, tag="done"):
    return SLEEP % (seconds, tag)


# ---- protocol errors --------------------------------------------------------------------------

SUBMIT_CAP = 16 + (1 << 20)
BAD_FRAMES = {
    "bad magic": frame(PING, 0, magic=0x50584544),
    "bad version": frame(PING, 0, version=2),
    "version 0": frame(PING, 0, version=0),
    "unknown type": frame(99, 0),
    "type 0": frame(0, 0),
    "nonzero flags": frame(PING, 0, flags=1),
    "oversized SUBMIT": frame(SUBMIT, 1, length=SUBMIT_CAP + 1),
    "PING with a payload": frame(PING, 0, b"x"),
    "RESULT from a client": frame(RESULT, 1, b"\0" * 40),
    "ERROR from a client": frame(ERROR, 1, b"\0\1\0\0\0\0\0\0"),
    "PONG from a client": frame(PONG, 1, b"\0" * 24),
    "short SUBMIT payload": frame(SUBMIT, 1, b"\0" * 8),
    "SUBMIT length past its payload": frame(SUBMIT, 1, b"\0" * 12 + b"\0\0\0\x10" + b"x"),
    "SUBMIT nonzero flags": frame(SUBMIT, 1, b"\0" * 8 + b"\0\0\0\1" + b"\0\0\0\0"),
    "SUBMIT with job id 0": submit_frame(0, "def main():\n    return 1\n"),
}
# A well-formed SUBMIT payload with one byte more than its script length says.
BAD_FRAMES["SUBMIT trailing bytes"] = frame(
    SUBMIT, 1, submit_frame(1, "def main(): pass")[24:] + b"!")


@pytest.mark.parametrize("name", list(BAD_FRAMES))
def test_malformed_frame_gets_one_protocol_error_then_eof(daemon, name):
    with daemon.client(timeout=30) as c:
        c.send(BAD_FRAMES[name])
        ftype, jid, body = c.read_frame()
        assert (ftype, jid, body["code"]) == (ERROR, 0, E_PROTOCOL), (ftype, jid, body)
        assert body["message"]
        c.expect_eof()
    # The daemon serves the next connection as if nothing happened.
    assert daemon.ping()["ready"] == 1


def test_protocol_error_ends_jobs_in_flight_without_a_result(daemon):
    with daemon.client(timeout=30) as c:
        c.submit(1, sleeper(30))
        wait_for(lambda: daemon.job_procs(), timeout=20, what="the job to start")
        c.send(frame(PING, 0, magic=0))
        ftype, jid, body = c.read_frame()
        assert (ftype, jid, body["code"]) == (ERROR, 0, E_PROTOCOL)
        c.expect_eof()  # no RESULT for job 1: nothing else on this connection
    wait_for(lambda: daemon.job_procs() == [], timeout=10, what="the job to be killed")


def test_ping_pong(daemon):
    with daemon.client() as c:
        c.send(frame(PING, 77))
        ftype, jid, pong = c.read_frame()
    assert (ftype, jid) == (PONG, 77)
    expected_v = 1 if "cgroup v1 fallback" in daemon.log() else 2
    assert pong == {"ready": 1, "cgroup_version": expected_v, "running": 0, "queued": 0,
                    "max_running": daemon.max_running, "max_queued": 256, "reason": ""}
    # A v2 mount without controllers (this CI machine) must mean the v1 fallback.
    try:
        with open("/sys/fs/cgroup/unified/cgroup.controllers") as f:
            if not f.read().split():
                assert pong["cgroup_version"] == 1
    except FileNotFoundError:
        pass


# ---- several jobs per connection ------------------------------------------------------------

def test_jobs_in_flight_answer_in_any_order(daemon):
    sleeps = {11: 2.5, 12: 2.0, 13: 1.5, 14: 0.3, 25: 0.6, 36: 0.1}
    with daemon.client() as c:
        for jid, s in sleeps.items():
            c.submit(jid, sleeper(s, "job %d" % jid))
        got, order = c.collect(list(sleeps))
    for jid in sleeps:
        ftype, r = got[jid]
        assert ftype == RESULT and r["verdict"] == "ok", (jid, r)
        assert json.loads(r["result"]) == "job %d" % jid
    # Answers come as jobs finish, not as they were sent.
    assert order != list(sleeps), order
    assert order[-1] == 11 and order[0] != 11, order


def test_duplicate_job_id_in_flight_is_invalid(daemon):
    with daemon.client() as c:
        c.submit(5, sleeper(1.5, "original"))
        c.submit(5, "def main():\n    return 'duplicate'\n")
        ftype, jid, body = c.read_frame()
        assert (ftype, jid, body["code"]) == (ERROR, 5, E_INVALID), body
        assert body["message"] == "job id already in flight on this connection"
        ftype, jid, r = c.read_frame()
        assert (ftype, jid, r["verdict"], r["result"]) == (RESULT, 5, "ok", '"original"')
        # Once answered, the id is free again.
        assert c.run("def main():\n    return 'reused'\n", job_id=5)["result"] == '"reused"'


@pytest.mark.parametrize("limits,message", [
    ({"timeout_ms": 30001}, "timeout_ms must be between 100 and 30000"),
    ({"timeout_ms": 99}, "timeout_ms must be between 100 and 30000"),
    ({"timeout_ms": 0xFFFFFFFF}, "timeout_ms must be between 100 and 30000"),
    ({"memory_mb": 513}, "memory_mb must be between 32 and 512"),
    ({"memory_mb": 31}, "memory_mb must be between 32 and 512"),
    ({"memory_mb": 0xFFFFFFFF}, "memory_mb must be between 32 and 512"),
])
def test_limits_over_the_daemons_caps_are_invalid(daemon, limits, message):
    with daemon.client() as c:
        c.submit(9, "def main():\n    return 1\n", **limits)
        ftype, jid, body = c.read_frame()
        assert (ftype, jid, body["code"], body["message"]) == (ERROR, 9, E_INVALID, message)
        # The connection stays usable.
        assert c.ping()["ready"] == 1
    assert daemon.job_procs() == []


def test_full_queue_answers_busy_at_once(start_daemon):
    d = start_daemon("--max-queued", "1", max_running=1)
    with d.client() as c:
        c.submit(1, sleeper(3, "first"))
        c.submit(2, sleeper(1, "second"))
        t0 = time.monotonic()
        c.submit(3, "def main():\n    return 'third'\n")
        ftype, jid, body = c.read_frame()
        busy_after = time.monotonic() - t0
        # The first frame back is the refusal, long before the first job could finish.
        assert (ftype, jid, body["code"]) == (ERROR, 3, E_BUSY), (ftype, jid, body)
        assert body["message"] == "sandboxd queue is full"
        assert busy_after < 1.5, busy_after
        pong = c.ping()
        assert (pong["running"], pong["queued"], pong["max_running"], pong["max_queued"]) == (1, 1, 1, 1)
        got, order = c.collect([1, 2])
    assert order == [1, 2]
    assert [got[i][1]["result"] for i in (1, 2)] == ['"first"', '"second"']


def test_burst_of_short_jobs_never_stalls_the_event_loop(daemon):
    """Regression: a job's pipes were closed before their events were removed; a job child
    still being set up (holding copies of every daemon fd) kept them in the epoll set, the next
    pidfd with the same number fired at once, and job_finish() blocked in waitid() on a live
    child: every connection hung. 4 connections x 120 short jobs hit it every time."""
    errors, verdicts = [], []

    def worker(w):
        try:
            with daemon.client(timeout=60) as c:
                for i in range(1, 61):
                    c.submit(i, "def main():\n    print('x')\n    return 1\n")
                    c.submit(1000 + i, "import os\ndef main():\n    if os.fork() == 0:\n"
                                       "        os._exit(0)\n    return 2\n")
                    got, _ = c.collect([i, 1000 + i])
                    verdicts.extend(b["verdict"] for _, b in got.values())
        except Exception as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert errors == []
    assert verdicts == ["ok"] * 480
    assert daemon.healthy()


# ---- cancel and disconnect --------------------------------------------------------------------

def test_cancel_a_running_job(daemon):
    with daemon.client() as c:
        c.submit(4, sleeper(60))
        wait_for(lambda: daemon.job_procs(), timeout=20, what="the job to start")
        t0 = time.monotonic()
        c.cancel(4)
        ftype, jid, r = c.read_frame()
        took = time.monotonic() - t0
        assert (ftype, jid, r["verdict"], r["message"]) == (RESULT, 4, "cancelled", "Job cancelled")
        assert r["result"] == ""
        assert took < 5, took
        assert daemon.job_procs() == []
        # A CANCEL of an id that is not in flight is ignored: the next frame is the PONG.
        c.cancel(4)
        c.cancel(12345)
        assert c.ping(job_id=8)["ready"] == 1


def test_cancel_a_queued_job(start_daemon):
    d = start_daemon(max_running=1)
    with d.client() as c:
        c.submit(1, sleeper(2, "first"))
        c.submit(2, sleeper(60, "never"))
        c.cancel(2)
        ftype, jid, r = c.read_frame()
        assert (ftype, jid, r["verdict"], r["message"]) == (RESULT, 2, "cancelled", "Job cancelled")
        ftype, jid, r = c.read_frame()
        assert (ftype, jid, r["verdict"], r["result"]) == (RESULT, 1, "ok", '"first"')


def test_client_disconnect_kills_its_jobs(daemon):
    c = daemon.client()
    c.submit(1, sleeper(60))
    c.submit(2, "import os, time\ndef main():\n    os.fork()\n    time.sleep(60)\n")
    wait_for(lambda: len(daemon.job_procs()) >= 3, timeout=20, what="both jobs to start")
    c.close()
    wait_for(lambda: daemon.job_procs() == [], timeout=3, interval=0.02,
             what="the disconnected client's jobs to be gone")
    assert daemon.healthy()


# ---- who may connect --------------------------------------------------------------------------

PEER = r"""
import json, socket, struct, sys
out = {}
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
try:
    s.connect(sys.argv[1])
    if sys.argv[2] == "ping":
        s.sendall(struct.pack(">IHHIIQ", 0x50584543, 1, 3, 0, 0, 42))
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) >= 24 + struct.unpack(">I", data[8:12])[0]:
            break
    out["reply"] = data.hex()
except OSError as e:
    out["errno"] = e.errno
print(json.dumps(out))
"""


def as_user(sock, user, group, extra_groups=(), ping=True):
    """Connects as another user; with ping, sends a PING. Returns the reply bytes or errno."""
    r = subprocess.run([sys.executable, "-I", "-c", PEER, sock, "ping" if ping else "listen"], user=user, group=group,
                       extra_groups=list(extra_groups), capture_output=True, timeout=60,
                       cwd="/")
    assert r.returncode == 0, r
    return json.loads(r.stdout)


def test_other_users_cannot_connect(daemon):
    # The socket's directory keeps them out...
    assert as_user(daemon.socket, "nobody", "nogroup") == {"errno": errno.EACCES}


def test_peer_credentials_are_checked(daemon):
    # ...and a user who got past the file system (here: in the gateway's group) is refused by
    # SO_PEERCRED: closed without a frame.
    daemon.mark_log()
    out = as_user(daemon.socket, "nobody", "nogroup", extra_groups=[GATEWAY_USER], ping=False)
    assert out == {"reply": ""}, out
    uid = pwd.getpwnam("nobody").pw_uid
    wait_for(lambda: f"refused a client: uid {uid} is neither root nor the gateway user"
             in daemon.log_since_mark(), timeout=10, what="the refusal in the log")


def test_gateway_user_can_connect(daemon):
    out = as_user(daemon.socket, GATEWAY_USER, GATEWAY_USER)
    reply = bytes.fromhex(out["reply"])
    magic, version, ftype, n, flags, jid = pxclient.HDR.unpack(reply[:24])
    assert (magic, version, ftype, flags, jid) == (pxclient.MAGIC, 1, PONG, 0, 42)
    assert pxclient.parse_pong(reply[24:24 + n])["ready"] == 1


def test_socket_and_directory_permissions(daemon):
    gid = grp.getgrnam(GATEWAY_USER).gr_gid
    st = os.lstat(daemon.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o660, 0, gid)
    st = os.lstat(os.path.dirname(daemon.socket))
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 0, gid)


# ---- logs -------------------------------------------------------------------------------------

def test_scripts_and_outputs_are_never_logged(daemon):
    marker = "pxmarker" + secrets.token_hex(8)
    daemon.mark_log()
    r = daemon.run(script("""
        import sys
        # %s in a comment
        def main():
            print('%s on stdout')
            print('%s on stderr', file=sys.stderr)
            return '%s as the result'
    """ % ((marker,) * 4)))
    assert r["verdict"] == "ok" and marker in r["result"]
    r = daemon.run("def main():\n    raise ValueError('%s')\n" % marker)
    assert r["verdict"] == "error" and marker in r["message"]
    wait_for(lambda: daemon.log_since_mark().count(" from pid ") >= 2, timeout=10,
             what="two job lines in the log")
    assert marker not in daemon.log()


# ---- start-up fails closed --------------------------------------------------------------------

GOOD_CANARY = {"uid": 1000, "euid": 1000, "gid": 1000, "pid": 1, "hostname": "sandbox",
               "caps": ["0000000000000000"] * 5, "seccomp": "2", "nnp": "1", "ifaces": ["lo"],
               "root_writable": False, "usr_writable": False}
LIES = {
    "honest": ({}, None),
    "uid 0": ({"uid": 0, "euid": 0}, "the job runs as uid 0"),
    "a capability": ({"caps": ["0000000000000000", "0000000000000000", "0000000000200000",
                               "0000000000000000", "0000000000000000"]},
                     "the job holds a capability"),
    "no seccomp": ({"seccomp": "0"}, "the job runs without a seccomp filter"),
    "no no_new_privs": ({"nnp": "0"}, "the job runs without no_new_privs"),
    "eth0": ({"ifaces": ["lo", "eth0"]}, "the job sees a network interface other than lo"),
    "writable root": ({"root_writable": True}, "the job's root is writable"),
    "writable usr": ({"usr_writable": True}, "the job's root is writable"),
    "not pid 1": ({"pid": 2}, "the runner is not pid 1 of its own PID namespace"),
}
FAKE_RUNNER = """
import json, os
v = json.loads(%r)
payload = json.dumps({"status": "ok", "result": v}).encode()
os.write(4, b"PXR1" + len(payload).to_bytes(4, "big") + payload)
os._exit(0)
"""


def _assert_refused(d, why):
    rc = d.proc.wait(60)
    log = d.log()
    assert rc != 0, log
    assert "refusing to serve" in log and why in log, log
    assert "ready: listening" not in log
    assert not os.path.exists(d.socket)


@pytest.mark.parametrize("lie", list(LIES))
def test_canary_that_sees_a_weak_jail_refuses_to_serve(start_daemon, tmp_path, lie):
    """A runner that reports what a broken jail would look like: the daemon must not serve."""
    change, why = LIES[lie]
    fake = tmp_path / "fake"
    fake.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(fake, 0o755)
    (fake / "runner.py").write_text(FAKE_RUNNER % json.dumps(dict(GOOD_CANARY, **change)))
    os.chmod(fake / "runner.py", 0o644)
    d = start_daemon(runner=str(fake / "runner.py"), wait=False)
    if why is None:
        d.wait_ready()  # the control: the same fake runner telling the truth is accepted
        return
    _assert_refused(d, "refusing to serve: " + why)


def test_a_python_that_cannot_run_the_runner_refuses_to_serve(start_daemon):
    d = start_daemon(python="/usr/bin/false", wait=False)
    _assert_refused(d, "refusing to serve: canary job failed: Script execution error: "
                       "the script exited with status 1 before main() returned")


# ---- stopping ---------------------------------------------------------------------------------

def test_sigterm_lets_jobs_in_flight_finish(start_daemon):
    d = start_daemon()
    with d.client() as c:
        c.submit(1, sleeper(2, "finished"))
        wait_for(lambda: d.job_procs(), timeout=20, what="the job to start")
        d.proc.send_signal(signal.SIGTERM)
        # It stops listening at once...
        wait_for(lambda: not os.path.exists(d.socket), timeout=10, what="the socket to go")
        with pytest.raises(OSError):
            pxclient.Client(d.socket, timeout=5)
        # ...refuses new jobs on open connections, and says why it is not ready...
        c.submit(2, "def main():\n    return 1\n")
        ftype, jid, body = c.read_frame()
        assert (ftype, jid, body["code"]) == (ERROR, 2, E_SHUTDOWN), body
        pong = c.ping()
        assert (pong["ready"], pong["reason"], pong["running"]) == (0, "shutting down", 1)
        # ...and the job in flight still gets its answer.
        ftype, jid, r = c.read_frame()
        assert (ftype, jid, r["verdict"], r["result"]) == (RESULT, 1, "ok", '"finished"')
        assert d.proc.wait(30) == 0
        c.expect_eof()
    assert d.job_procs() == []
    assert "stopped after" in d.log()


# ---- daemons side by side ---------------------------------------------------------------------

def _memory_cgroup(pid):
    """The cgroup that limits the task's memory: the v1 memory line, else the v2 "0::" one."""
    unified = None
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            hid, ctrls, path = line.rstrip("\n").split(":", 2)
            if "memory" in ctrls.split(","):
                return path
            if hid == "0" and ctrls == "":
                unified = path
    return unified


def test_two_daemons_never_share_a_job_cgroup(start_daemon):
    """Two daemons on one host (a test run next to the production one) must keep their jobs'
    cgroups apart: a shared cgroup would share and overwrite memory and pids limits."""
    a = start_daemon(max_running=1)
    b = start_daemon(max_running=1)
    ca, cb = a.client(), b.client()
    try:
        # Both daemons ran one canary; their next job is their second.
        ca.submit(1, sleeper(3, "a"))
        cb.submit(1, sleeper(3, "b"))
        pa = wait_for(lambda: a.job_procs(), timeout=20, what="a's job")[0][0]
        pb = wait_for(lambda: b.job_procs(), timeout=20, what="b's job")[0][0]
        ga, gb = _memory_cgroup(pa), _memory_cgroup(pb)
        assert ga and gb and ga != gb, (ga, gb)
        assert ca.collect([1])[0][1][1]["result"] == '"a"'
        assert cb.collect([1])[0][1][1]["result"] == '"b"'
    finally:
        ca.close()
        cb.close()


def _cgroups(pid):
    """{controller: path} of a task, from /proc/PID/cgroup (v1 lines only)."""
    out = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(","):
                if c:
                    out[c] = path
    return out


def test_a_job_slots_kept_cgroups_hold_one_job_at_a_time(start_daemon):
    """cgroup v1: a job slot keeps its pids and cpuacct cgroups from one job to the next
    (sandboxd/cgroup.h, struct cg_slot); memory and cpu are new for every job. Each job's CPU
    time is still its own, and the kept cgroups are empty between jobs."""
    # Cold jobs one at a time: each takes the lowest free slot, so all of them slot 0.
    d = start_daemon("--warm-spares", "0", max_running=1)
    if "cgroup v1 fallback" not in d.log():
        pytest.skip("cgroup v2 here: a job has one cgroup, made for it alone")
    burn = script("""
        import time
        def main():
            t = time.process_time()
            while time.process_time() - t < 0.5:
                pass
            return 1
    """)
    seen = []
    for src in (sleeper(1, "a"), burn, sleeper(1, "b")):
        c = d.client()
        try:
            c.submit(1, src)
            pid = wait_for(lambda: d.job_procs(), timeout=20, what="the job")[0][0]
            seen.append(_cgroups(pid))
            seen[-1]["cpu_ms"] = c.collect([1])[0][1][1]["cpu_ms"]
        finally:
            c.close()
    a, b = seen[0], seen[2]
    assert seen[1]["cpu_ms"] >= 450, seen[1]
    # The burner's half second is not counted again in the next job of its slot.
    assert b["cpu_ms"] < 300, (seen[1], b)
    for kept in ("pids", "cpuacct"):
        assert a[kept] == b[kept] and f"/slot-{d.pid}-" in a[kept], (a, b)
    for fresh in ("memory", "cpu"):
        assert a[fresh] != b[fresh] and f"/job-{d.pid}-" in a[fresh], (a, b)
    wait_for(lambda: d.job_procs() == [], timeout=20, what="the last job to be gone")
    for parent in d.cgroup_dirs():
        for name in os.listdir(parent):
            if name.startswith(f"slot-{d.pid}-"):
                with open(os.path.join(parent, name, "cgroup.procs")) as f:
                    assert f.read() == "", (parent, name)
    d.stop()
    for parent in d.cgroup_dirs():
        assert not any(n.startswith(f"slot-{d.pid}-") for n in os.listdir(parent)), parent


def test_a_slot_whose_job_cgroup_stays_busy_gets_new_kept_cgroups(start_daemon):
    """cgroup v1: when a job's memory cgroup cannot be removed (here a child cgroup keeps it
    busy past the daemon's 10 s of retries), a task of the job might still be in it, and so
    in its slot's kept cgroups: the slot's next job gets new ones."""
    d = start_daemon("--warm-spares", "0", max_running=1)
    if "cgroup v1 fallback" not in d.log():
        pytest.skip("cgroup v2 here: a job has one cgroup, made for it alone")
    seen, pinned = [], None
    fds = d.idle_fd_count() - slot_fd_count(d.pid)
    try:
        for src in (sleeper(1, "a"), sleeper(1, "b")):
            c = d.client(timeout=60)  # the second waits for the first's 10 s of retries
            try:
                c.submit(1, src)
                pid = wait_for(lambda: d.job_procs(), timeout=30, what="the job")[0][0]
                seen.append(_cgroups(pid))
                if pinned is None:
                    mem = next(p for p in d.cgroup_dirs() if "/memory/" in p)
                    pinned = os.path.join(mem, os.path.basename(seen[0]["memory"]), "pin")
                    os.mkdir(pinned)
                assert c.collect([1])[0][1][1]["verdict"] == "ok"
            finally:
                c.close()
        a, b = seen
        assert "cannot remove cgroup" in d.log()
        for kept in ("pids", "cpuacct"):
            assert a[kept] != b[kept] and f"/slot-{d.pid}-" in b[kept], (a, b)
        # The fds of the cgroup given up on (and of the retired slot's) are closed.
        wait_for(lambda: d.fd_count() - slot_fd_count(d.pid) == fds, timeout=15,
                 what=f"the daemon's fds but its job slots' back to {fds}")
    finally:
        if pinned:
            os.rmdir(pinned)
            os.rmdir(os.path.dirname(pinned))


def test_host_audit_reports_what_the_host_has(daemon):
    """At start-up sandboxd reports the host settings the jail's strength depends on, each as
    the host really has it, and warns about each weak one (SECURITY.md item 15)."""
    log = daemon.log()
    line = next(l for l in log.splitlines() if "info: host: " in l)
    weak_if_below = {"kernel.unprivileged_bpf_disabled": ("/proc/sys/kernel/unprivileged_bpf_disabled", 1),
                     "kernel.io_uring_disabled": ("/proc/sys/kernel/io_uring_disabled", 2),
                     "kernel.kptr_restrict": ("/proc/sys/kernel/kptr_restrict", 1),
                     "fs.protected_symlinks": ("/proc/sys/fs/protected_symlinks", 1)}
    for key, (path, minimum) in weak_if_below.items():
        try:
            with open(path) as f:
                value = f.read().strip()
        except FileNotFoundError:
            value = "absent"
        assert f"{key}={value}" in line, (key, value, line)
        warned = f"warn: host: {key} = {value}:" in log
        assert warned == (value != "absent" and int(value) < minimum), (key, value)
    # A pipe is fatal (sandboxd would refuse every job, and this daemon never got ready).
    with open("/proc/sys/kernel/core_pattern") as f:
        pattern = f.read().strip()
    assert ("error: host: kernel.core_pattern" in log) == pattern.startswith("|")
    assert "refusing jobs" not in log


def test_check_says_whether_jobs_would_run(tmp_path):
    """--check prints the audit's verdict: jobs served, or the fatal finding that refuses them
    (here on fake host trees, see fakehost.py)."""
    import fakehost
    from conftest import SANDBOXD

    def check(root):
        p = subprocess.run([SANDBOXD, "--check", "--audit-root", root,
                            "--socket", str(tmp_path / "s" / "sock"),
                            "--jail-dir", str(tmp_path / "jail")],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout, p.stderr

    out, err = check(fakehost.make(str(tmp_path / "good")))
    assert "\njobs = served\n" in out, out
    out, err = check(fakehost.make(str(tmp_path / "pipe"),
                                   {"proc/sys/kernel/core_pattern": "|/bin/false"}))
    assert "\njobs = host audit: kernel.core_pattern = |/bin/false: core dumps go to a host " \
           "program" in out, out
    assert "error: host: kernel.core_pattern = |/bin/false: " in err, err
