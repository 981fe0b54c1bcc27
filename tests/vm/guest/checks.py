#!/usr/bin/python3
"""Checks of the installed pyexec service, run inside the VM (systemd is PID 1, cgroup v2).

Nothing here starts the units: they were enabled by the payload and started at boot, and
harness.service is only ordered after them. Every check asserts; a failing check prints why
and the run continues, so one boot reports everything. Exit status: 0 when all passed.

Times here are generous: code in the guest runs 15-40x slower than on the host (TCG).
"""
import errno
import grp
import json
import os
import pwd
import re
import stat
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostview import host_procs, read_status, wait_for, warm_pids  # noqa: E402  (copied in from tests/integration)
import seed  # noqa: E402  (copied in from tests/)

URL = "http://127.0.0.1:8080"
UNIT_SBX = "pyexec-sandboxd.service"
UNIT_GW = "pyexec-gatewayd.service"
UNIT_CG = "/sys/fs/cgroup/pyexec.slice/pyexec-sandboxd.service"
RUNDIR = "/run/pyexec"
SOCKET = RUNDIR + "/sandboxd.sock"
UID_BASE = 4000000
MiB = 1 << 20
HTTP_TIMEOUT = 300

PASSED, FAILED = [], []


def check(fn):
    """Runs one check now; records and prints its outcome."""
    t0 = time.monotonic()
    try:
        fn()
    except Exception:  # noqa: BLE001 - every failure is reported the same way
        FAILED.append(fn.__name__)
        print(f"FAIL {fn.__name__} ({time.monotonic() - t0:.1f} s)")
        traceback.print_exc(file=sys.stdout)
    else:
        PASSED.append(fn.__name__)
        print(f"PASS {fn.__name__} ({time.monotonic() - t0:.1f} s)")
    sys.stdout.flush()
    return fn


def sh(*argv, check_rc=True):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if check_rc:
        assert p.returncode == 0, (argv, p.returncode, p.stdout, p.stderr)
    return p.stdout


def unit(name, *props):
    out = sh("systemctl", "show", name, "-p", ",".join(props))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def journal(name):
    return sh("journalctl", "-b", "-u", name, "-o", "cat", "--no-pager")


def sandboxd_pid():
    return unit(UNIT_SBX, "MainPID")["MainPID"]


def job_procs():
    """Live processes with any uid of a job slot: [(pid, uid, name)]. The warm path's waiting
    spares are left out, and processes being killed get a moment (tests/integration/hostview)."""
    return [p[:3] for p in host_procs(UID_BASE, UID_BASE + 100000, daemon_pid=sandboxd_pid())]


def job_cgroups():
    """Job cgroups, but those of the warm path (the zygote's, each waiting spare's): each of
    those holds exactly its one process."""
    warm = warm_pids(sandboxd_pid(), UID_BASE, UID_BASE + 100000)
    found = []
    for d in os.listdir(UNIT_CG):
        if not d.startswith("job-"):
            continue
        try:
            procs = {int(x) for x in read(f"{UNIT_CG}/{d}/cgroup.procs").split()}
        except OSError:
            continue
        if not (len(procs) == 1 and procs <= warm):
            found.append(d)
    return sorted(found)


def read(path):
    with open(path) as f:
        return f.read()


def http(method, path, body=None, headers=None, timeout=HTTP_TIMEOUT):
    """(status, headers, body text) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(URL + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def execute(script, **extra):
    body = json.dumps({"script": script, **extra}).encode()
    return http("POST", "/execute", body, {"Content-Type": "application/json"})


def execute_json(script, status, **extra):
    code, hdrs, text = execute(script, **extra)
    assert code == status, (code, text)
    assert hdrs["Content-Type"] == "application/json", hdrs["Content-Type"]
    return hdrs, json.loads(text)


# ---- the booted system -------------------------------------------------------------------------

@check
def systemd_is_pid1_on_cgroup_v2():
    assert read("/proc/1/comm").strip() == "systemd"
    assert sh("stat", "-fc", "%T", "/sys/fs/cgroup").strip() == "cgroup2fs"
    ctrls = read("/sys/fs/cgroup/cgroup.controllers").split()
    assert {"memory", "pids", "cpu"} <= set(ctrls), ctrls


@check
def units_enabled_and_started_at_boot():
    # harness.service is only ordered After= them (no Wants=): they are up because the boot
    # started them, through the [Install] symlinks the payload made with systemctl enable.
    for name in (UNIT_SBX, UNIT_GW):
        assert sh("systemctl", "is-enabled", name).strip() == "enabled", name
        u = unit(name, "ActiveState", "SubState", "NRestarts", "Result")
        assert u == {"ActiveState": "active", "SubState": "running", "NRestarts": "0",
                     "Result": "success"}, (name, u)
    me = unit("harness.service", "Wants", "Requires", "After")
    assert UNIT_GW not in me["Wants"] + me["Requires"], me
    assert UNIT_GW in me["After"], me


@check
def sandboxd_uses_cgroup_v2_delegated():
    log = journal(UNIT_SBX)
    assert f"cgroup v2 at {UNIT_CG} (swap limit on, cgroup.kill yes)" in log, log
    # SANDBOXD_OPTS from /etc/default/pyexec reached it.
    assert "ready: listening on /run/pyexec/sandboxd.sock, 3 jobs at once" in log, log
    pid = unit(UNIT_SBX, "MainPID")["MainPID"]
    assert read(f"/proc/{pid}/cgroup").strip() == \
        "0::/pyexec.slice/pyexec-sandboxd.service/supervisor"
    assert set(read(UNIT_CG + "/cgroup.subtree_control").split()) >= {"memory", "pids", "cpu"}
    assert unit(UNIT_SBX, "Delegate")["Delegate"] == "yes"


@check
def runtime_dir_and_socket_modes():
    gid = grp.getgrnam("pyexec").gr_gid
    st = os.lstat(RUNDIR)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o750, oct(st.st_mode)
    assert (st.st_uid, st.st_gid) == (0, gid), (st.st_uid, st.st_gid)
    st = os.lstat(SOCKET)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    assert (st.st_uid, st.st_gid) == (0, gid), (st.st_uid, st.st_gid)


@check
def sandboxd_runs_as_root_with_its_bounding_set():
    pid = unit(UNIT_SBX, "MainPID")["MainPID"]
    st = read_status(pid)
    assert st["Uid"].split() == ["0"] * 4, st["Uid"]
    assert st["Gid"].split() == [str(grp.getgrnam("pyexec").gr_gid)] * 4, st["Gid"]
    print("  sandboxd:", {k: st[k].strip() for k in ("CapBnd", "CapEff", "NoNewPrivs",
                                                      "Seccomp", "Groups")})
    # CAP_CHOWN 0, CAP_SETGID 6, CAP_SETUID 7, CAP_NET_ADMIN 12, CAP_SYS_ADMIN 21
    # CHOWN, SETGID, SETUID, SETPCAP, NET_ADMIN, SYS_ADMIN, SYS_RESOURCE
    want = (1 << 0) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 12) | (1 << 21) | (1 << 24)
    assert int(st["CapBnd"], 16) == want, st["CapBnd"]


@check
def gateway_runs_unprivileged():
    pid = unit(UNIT_GW, "MainPID")["MainPID"]
    pw = pwd.getpwnam("pyexec")
    st = read_status(pid)
    print("  gatewayd:", {k: st[k].strip() for k in ("Uid", "Gid", "Groups", "CapEff",
                                                      "CapBnd", "NoNewPrivs", "Seccomp")})
    assert st["Uid"].split() == [str(pw.pw_uid)] * 4 and pw.pw_uid != 0, st["Uid"]
    assert st["Gid"].split() == [str(pw.pw_gid)] * 4, st["Gid"]
    for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(st[k], 16) == 0, (k, st[k])
    assert st["NoNewPrivs"].strip() == "1"
    assert st["Seccomp"].strip() == "2"
    assert read(f"/proc/{pid}/cgroup").strip() == "0::/pyexec.slice/pyexec-gatewayd.service"
    log = journal(UNIT_GW)
    # GATEWAYD_OPTS from /etc/default/pyexec reached it; not started as root, it never was.
    assert f"listening on http://0.0.0.0:8080 as uid {pw.pw_uid}, no capabilities" in log, log


@check
def health():
    code, hdrs, text = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(
        http("GET", "/health")), 120, 1, "GET /health to answer 200")
    assert text == '{"status": "healthy"}\n', text


@check
def cli_status_on_the_socket():
    v = json.loads(sh("/usr/local/bin/pyexec", "status"))
    assert v["ready"] == 1 and v["cgroup_version"] == 2, v


# ---- the seed's examples over HTTP -------------------------------------------------------------

PANDAS, PRINTS = seed.PANDAS, seed.PRINTS


@check
def warm_path_on_cgroup_v2():
    """The zygote was verified by its canary and jobs run in its spares; each spare was cloned
    straight into its own job cgroup (CLONE_INTO_CGROUP) with the job's limits."""
    wait_for(lambda: "warm path: verified" in journal(UNIT_SBX), 60, 0.2, "the warm path")
    log = journal(UNIT_SBX)
    assert "canary (warm): uid 1000" in log, log[-2000:]
    pid = sandboxd_pid()
    wait_for(lambda: len(warm_pids(pid, UID_BASE, UID_BASE + 100000)) == 5, 60, 0.2,
             "4 spares and the zygote")
    hdrs, body = execute_json("import os\ndef main():\n    return os.readlink('/proc/self/exe')\n",
                              200)
    assert body == {"result": "/opt/pyexec/pyexec-zygote", "stdout": ""}, body
    for p in warm_pids(pid, UID_BASE, UID_BASE + 100000):
        cg = read(f"/proc/{p}/cgroup").strip().split("::")[-1]
        assert re.fullmatch(r"/pyexec\.slice/pyexec-sandboxd\.service/job-\d+-\d+", cg), cg
        limits = {f: read(f"/sys/fs/cgroup{cg}/{f}").strip() for f in
                  ("memory.max", "memory.swap.max", "pids.max", "cpu.max")}
        print(f"  {p}: {cg} {limits}")
        assert limits == {"memory.max": str(512 * MiB), "memory.swap.max": "0",
                          "pids.max": "128", "cpu.max": "100000 100000"}, limits


@check
def seed_hello_world():
    code, hdrs, text = http("POST", "/execute",
                            b'{\n  "script": "def main():\\n    return {\'message\': \'Hello, World!\'}"\n}',
                            {"Content-Type": "application/json"})
    assert (code, text) == (200, '{"result": {"message": "Hello, World!"}, "stdout": ""}\n'), \
        (code, text)


@check
def seed_simple_return():
    code, _, text = execute('def main():\n    return {"result": "success", "value": 42}\n')
    assert (code, text) == (200, '{"result": {"result": "success", "value": 42}, '
                                 '"stdout": ""}\n'), (code, text)


@check
def seed_pandas():
    code, hdrs, text = execute(PANDAS)
    print("  pandas job: wall_ms", hdrs.get("X-Pyexec-Wall-Ms"), "cpu_ms",
          hdrs.get("X-Pyexec-Cpu-Ms"), "peak", hdrs.get("X-Pyexec-Peak-Memory"))
    assert (code, text) == (200, seed.PANDAS_REPLY + "\n"), (code, text)


@check
def seed_prints():
    code, _, text = execute(PRINTS)
    assert (code, text) == (200, seed.PRINTS_REPLY + "\n"), (code, text)


@check
def seed_errors():
    _, v = execute_json("def main():\n    return 1 / 0\n", 400)
    assert v == {"error": "Script execution error: division by zero", "stdout": ""}, v
    _, v = execute_json('def main():\n    raise ValueError("This is a test error")', 400)
    assert v == {"error": "Script execution error: This is a test error", "stdout": ""}, v
    code, _, text = http("POST", "/execute", b'{"script": "def main(): return 1"',
                         {"Content-Type": "application/json"})
    assert (code, text) == (400, '{"error": "Request must be JSON"}\n'), (code, text)


@check
def seed_missing_main():
    _, v = execute_json("def helper():\n    return 1\n", 400)
    assert v == {"error": "Script must contain a main() function", "stdout": ""}, v


@check
def seed_timeout():
    hdrs, v = execute_json("def main():\n    while True:\n        pass\n", 400, timeout_ms=3000)
    assert v == {"error": "Script execution timed out", "stdout": ""}, v
    # Killed at the deadline, not long after it, and never before it.
    wall = int(hdrs["X-Pyexec-Wall-Ms"])
    print("  wall_ms", wall)
    assert 3000 <= wall < 10000, wall


# ---- the limits, enforced by the cgroup v2 path ------------------------------------------------

def in_background(fn, *args, **kw):
    box = {}

    def run():
        try:
            box["value"] = fn(*args, **kw)
        except Exception as e:  # noqa: BLE001 - handed to the caller
            box["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()

    def join():
        t.join(HTTP_TIMEOUT + 10)
        assert not t.is_alive(), "the request did not finish"
        if "error" in box:
            raise box["error"]
        return box["value"]
    return join


@check
def job_cgroup_carries_the_limits():
    assert job_cgroups() == [], job_cgroups()
    join = in_background(execute, "import time\ndef main():\n    time.sleep(6)\n    return 1\n")
    try:
        name = wait_for(lambda: job_cgroups(), 120, 0.05, "the job's cgroup")[0]
        d = f"{UNIT_CG}/{name}"
        assert re.fullmatch(r"job-\d+-\d+", name), name
        got = {f: read(f"{d}/{f}").strip() for f in
               ("memory.max", "memory.swap.max", "memory.oom.group", "pids.max", "cpu.max")}
        assert got == {"memory.max": str(512 * MiB), "memory.swap.max": "0",
                       "memory.oom.group": "1", "pids.max": "128",
                       "cpu.max": "100000 100000"}, got

        def job_uids():
            # The jail is built as root; the script runs as the slot's host uid.
            uids = [read_status(p) for p in read(f"{d}/cgroup.procs").split()]
            uids = [int(u) for st in uids if st for u in st["Uid"].split()]
            return uids if uids and min(uids) >= UID_BASE else None
        print("  job uids:", sorted(set(wait_for(job_uids, 60, 0.05, "the script's uid"))))
    finally:
        code, _, text = join()
    assert (code, text) == (200, '{"result": 1, "stdout": ""}\n'), (code, text)
    wait_for(lambda: not os.path.exists(d), 30, 0.1, f"{d} to be removed")


@check
def memory_1gib_is_oom():
    pid = sandboxd_pid()
    hdrs, v = execute_json("def main():\n    x = b'\\x01' * (1 << 30)\n    return len(x)\n", 400)
    assert v == {"error": "Script exceeded the memory limit (512 MiB)", "stdout": ""}, v
    peak = int(hdrs["X-Pyexec-Peak-Memory"])
    assert 256 * MiB <= peak <= 520 * MiB, peak
    # The job's OOM is not the daemon's: OOMPolicy=continue keeps the unit running.
    u = unit(UNIT_SBX, "ActiveState", "NRestarts", "MainPID")
    assert u == {"ActiveState": "active", "NRestarts": "0", "MainPID": pid}, u
    assert job_procs() == []


@check
def memory_four_processes_are_one_oom():
    # memory.oom.group: one task over the limit ends every task of the job.
    _, v = execute_json("""\
import os, time
def main():
    kids = []
    for i in range(4):
        pid = os.fork()
        if pid == 0:
            try:
                buf = b'\\x01' * (200 << 20)
                time.sleep(60)
            finally:
                os._exit(0)
        kids.append(pid)
    for pid in kids:
        os.waitpid(pid, 0)
    return 'all four fitted'
""", 400)
    assert v == {"error": "Script exceeded the memory limit (512 MiB)", "stdout": ""}, v
    assert job_procs() == []


@check
def pids_fork_bomb_gets_eagain():
    _, v = execute_json("""\
import os, time
def main():
    n, err = 0, None
    for i in range(1000):
        try:
            pid = os.fork()
        except OSError as e:
            err = e.errno
            break
        if pid == 0:
            try:
                time.sleep(100)
            finally:
                os._exit(0)
        n += 1
    return {'forked': n, 'errno': err}
""", 200)
    r = v["result"]
    assert r["errno"] == errno.EAGAIN, r
    assert 64 <= r["forked"] < 128, r
    wait_for(lambda: job_procs() == [], 30, 0.2, "the fork bomb's tasks to go")


BUSY = """\
import os, time
def main():
    # Two processes spin for SECONDS each; each reports its own CPU time.
    r, w = os.pipe()
    t0 = time.monotonic()
    kids = []
    for i in range(2):
        pid = os.fork()
        if pid == 0:
            os.close(r)
            c0 = time.process_time()
            while time.monotonic() - t0 < SECONDS:
                pass
            os.write(w, b"%f\\n" % (time.process_time() - c0))
            os._exit(0)
        kids.append(pid)
    os.close(w)
    for pid in kids:
        os.waitpid(pid, 0)
    wall = time.monotonic() - t0
    cpu = sum(float(x) for x in os.read(r, 100).split())
    return {'cpu': cpu, 'wall': wall}
"""


def busy_here(seconds):
    """The same two spinning processes, outside any job: what the VM gives without a limit."""
    ns = {}
    exec(BUSY.replace("SECONDS", str(seconds)), ns)
    return ns["main"]()


@check
def cpu_is_one_cpu_at_most():
    free = busy_here(2.0)
    print(f"  without a limit: {free['cpu']:.2f} s CPU in {free['wall']:.2f} s")
    stats = []

    def watch():
        while not done.is_set():
            for name in job_cgroups():
                try:
                    stats.append(read(f"{UNIT_CG}/{name}/cpu.stat"))
                except OSError:
                    pass
            time.sleep(0.2)
    done = threading.Event()
    threading.Thread(target=watch, daemon=True).start()
    try:
        hdrs, v = execute_json(BUSY.replace("SECONDS", "3.0"), 200)
    finally:
        done.set()
    r = v["result"]
    cpu_ms, wall_ms = int(hdrs["X-Pyexec-Cpu-Ms"]), int(hdrs["X-Pyexec-Wall-Ms"])
    throttled = max([int(m.group(1)) for s in stats
                     for m in [re.search(r"nr_throttled (\d+)", s)] if m] or [0])
    print(f"  in a job: {r['cpu']:.2f} s CPU in {r['wall']:.2f} s busy; job cpu_ms {cpu_ms} "
          f"wall_ms {wall_ms}; nr_throttled {throttled}")
    # cpu.max "100000 100000": one CPU's worth per 100 ms period, whatever the threads.
    assert r["cpu"] <= 1.15 * r["wall"], r
    assert cpu_ms <= 1.1 * wall_ms + 200, (cpu_ms, wall_ms)
    assert r["cpu"] >= 0.5 * r["wall"], r   # it did run
    if free["cpu"] > 1.3 * free["wall"]:
        # The VM can run both at once: the limit, not the VM, held the job to one CPU.
        assert throttled > 0, stats[-1:] or "no cpu.stat seen"


CHILDREN = """\
import os, signal, time
def main():
    if os.fork() == 0:            # a plain sleeping child
        try:
            time.sleep(1000)
        finally:
            os._exit(0)
    pid = os.fork()
    if pid == 0:                  # a daemonised grandchild: setsid, fork, parent exits
        try:
            os.setsid()
            if os.fork() == 0:
                for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                    signal.signal(s, signal.SIG_IGN)
                time.sleep(1000)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    time.sleep(1000)
"""


@check
def deadline_kills_the_whole_job():
    assert job_procs() == []
    seen = []

    def watch():
        while not done.is_set():
            seen.append(len(job_procs()))
            time.sleep(0.1)
    done = threading.Event()
    threading.Thread(target=watch, daemon=True).start()
    try:
        _, v = execute_json(CHILDREN, 400, timeout_ms=8000)
    finally:
        done.set()
    assert v == {"error": "Script execution timed out", "stdout": ""}, v
    assert max(seen) >= 3, seen   # the runner, the child and the setsid'd grandchild ran
    # The answer comes after the whole job is gone: nothing with a job uid remains.
    assert job_procs() == [], job_procs()
    wait_for(lambda: job_cgroups() == [], 30, 0.1, "the job cgroup to be removed")


@check
def no_job_cgroups_left():
    wait_for(lambda: job_cgroups() == [], 30, 0.1, "no job cgroups")
    assert job_procs() == []


# ---- the service around the daemon -------------------------------------------------------------

@check
def crash_restarts_and_kills_the_running_job():
    before = unit(UNIT_SBX, "MainPID", "NRestarts")
    gw_before = unit(UNIT_GW, "MainPID")
    join = in_background(execute, "import time\ndef main():\n    time.sleep(25)\n")
    wait_for(lambda: job_procs(), 120, 0.1, "the long job to run")
    os.kill(int(before["MainPID"]), 9)
    code, _, text = join()
    assert code == 503, (code, text)
    # Restart=on-failure brings it back; its jobs died with it (KillMode=mixed, death signal).
    u = wait_for(lambda: (lambda u: u if u["ActiveState"] == "active" and
                          u["MainPID"] not in ("0", before["MainPID"]) else None)(
        unit(UNIT_SBX, "ActiveState", "MainPID", "NRestarts")), 180, 0.5, "sandboxd again")
    assert u["NRestarts"] == str(int(before["NRestarts"]) + 1), u
    assert job_procs() == [], job_procs()
    assert read(f"/proc/{u['MainPID']}/cgroup").strip() == \
        "0::/pyexec.slice/pyexec-sandboxd.service/supervisor"
    runtime_dir_and_socket_modes()
    # gatewayd kept running (Wants=, not Requires=) and reconnects by itself.
    assert unit(UNIT_GW, "MainPID", "NRestarts") == {**gw_before, "NRestarts": "0"}
    wait_for(lambda: http("GET", "/health")[0] == 200, 120, 1, "healthy again")
    code, _, text = execute("def main():\n    return 'back'\n")
    assert (code, text) == (200, '{"result": "back", "stdout": ""}\n'), (code, text)
    # The answer goes out before that job's cgroup is removed, and the dead daemon's cgroups
    # go as their tasks leave (at start-up, or the sweep every 5 s after it): none is left.
    try:
        wait_for(lambda: job_cgroups() == [], 30, 0.1, "no job cgroups")
    except AssertionError:
        raise AssertionError(f"job cgroups left (sandboxd is now {sandboxd_pid()}): "
                             f"{job_cgroups()}") from None


@check
def security_exposure():
    for name in (UNIT_SBX, UNIT_GW):
        out = sh("systemd-analyze", "security", "--no-pager", name, check_rc=False)
        print("  " + name + ": " + (out.strip().splitlines() or ["?"])[-1])


@check
def clean_stop():
    t0 = time.monotonic()
    sh("systemctl", "stop", UNIT_GW, UNIT_SBX)
    took = time.monotonic() - t0
    for name in (UNIT_SBX, UNIT_GW):
        u = unit(name, "ActiveState", "Result")
        assert u == {"ActiveState": "inactive", "Result": "success"}, (name, u)
    assert not os.path.exists(RUNDIR), "RuntimeDirectory= removes /run/pyexec"
    assert not os.path.exists(UNIT_CG)
    assert job_procs() == []
    assert "stopped after" in journal(UNIT_SBX)
    print(f"  stopped in {took:.1f} s")


print(f"\n{len(PASSED)} passed, {len(FAILED)} failed" + (f": {', '.join(FAILED)}" if FAILED else ""))
sys.exit(1 if FAILED else 0)
