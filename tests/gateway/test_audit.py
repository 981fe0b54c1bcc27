"""sandboxd's host audit seen through the API: on a host where isolation cannot hold (a fatal
finding), sandboxd stays up but runs no job, /health is 503 with the finding as its reason and
/execute is refused with it; a weak setting that the jail holds all the same is a warning in the
log and the service is healthy.

The host here is a fake tree (tests/integration/fakehost.py, sandboxd --audit-root): a hardened
host with one thing changed per test, so every finding shows on any machine without touching
its settings. The jail, the cgroups and the canary stay the real ones."""
import os
import shutil

import requests
import seed

import fakehost
from harness import wait_for

TIMEOUT = 120
HELLO = seed.HELLO

CORE_PIPE = "|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h"
CORE_WHY = ("core dumps go to a host program, which would receive a crashed job's memory as "
            "root, outside the job's namespaces and limits (RLIMIT_CORE=0 does not stop a pipe "
            "handler)")


def start_refusing(start_sandbox, start_gateway, root):
    """sandboxd on the fake host (it listens, but never says 'ready'), and a gateway before it."""
    sbx = start_sandbox("--audit-root", root, wait=False)
    wait_for(lambda: "refusing jobs" in sbx.log() and os.path.exists(sbx.socket), 60,
             what=f"sandboxd to refuse jobs:\n{sbx.log()}")
    assert sbx.alive()
    gw = start_gateway(sbx.socket)
    wait_for(lambda: "connected to sandboxd" in gw.log(), 60, what="the gateway to connect")
    return sbx, gw


def health(gw):
    r = requests.get(gw.url + "/health", timeout=TIMEOUT)
    return r.status_code, r.json()


def execute(gw, script=HELLO):
    return requests.post(gw.url + "/execute", json={"script": script}, timeout=TIMEOUT)


def assert_refuses(sbx, gw, reason):
    """/health and /execute both say `reason`, again and again; sandboxd logged it once and ran
    nothing, not even its canary."""
    for _ in range(3):
        assert health(gw) == (503, {"status": "unhealthy",
                                    "reason": "sandboxd is not ready: " + reason})
        r = execute(gw)
        assert r.status_code == 503, r.text
        assert r.json() == {"error": "The sandbox is not ready: " + reason}
        assert r.headers["Retry-After"] == "1"
    log = sbx.log()
    assert log.count("refusing jobs") == 1, log
    assert "canary" not in log and "job 1 " not in log, log
    assert sbx.alive() and not sbx.job_procs()
    assert "sandboxd refuses jobs on this host" in gw.log()


def test_core_pattern_pipe_is_fatal(tmp_path, start_sandbox, start_gateway):
    root = fakehost.make(str(tmp_path), {"proc/sys/kernel/core_pattern": CORE_PIPE})
    sbx, gw = start_refusing(start_sandbox, start_gateway, root)
    assert_refuses(sbx, gw, f"host audit: kernel.core_pattern = {CORE_PIPE}: {CORE_WHY}")
    assert f"error: host: kernel.core_pattern = {CORE_PIPE}: " in sbx.log()


def test_no_memory_controller_is_fatal(tmp_path, start_sandbox, start_gateway):
    """Neither hierarchy offers memory: v2 lacks it, v1 has it compiled in but not mounted."""
    root = fakehost.make(str(tmp_path), {
        "sys/fs/cgroup/cgroup.controllers": "cpu pids",
        "proc/cgroups": "#subsys_name\thierarchy\tnum_cgroups\tenabled\nmemory\t0\t1\t1\n"})
    sbx, gw = start_refusing(start_sandbox, start_gateway, root)
    assert_refuses(sbx, gw, "host audit: cgroup.memory = not mounted: no memory controller on "
                            "cgroup v2 or v1: nothing would bound a job's memory but the host's "
                            "own")


def test_no_pids_controller_is_fatal(tmp_path, start_sandbox, start_gateway):
    """pids disabled on the kernel command line (cgroup_disable=pids)."""
    root = fakehost.make(str(tmp_path), {
        "sys/fs/cgroup/cgroup.controllers": "cpu memory",
        "proc/cgroups": "#subsys_name\thierarchy\tnum_cgroups\tenabled\npids\t0\t1\t0\n"})
    sbx, gw = start_refusing(start_sandbox, start_gateway, root)
    assert_refuses(sbx, gw, "host audit: cgroup.pids = disabled: no pids controller on cgroup v2 "
                            "or v1: nothing would bound a job's tasks (a fork bomb) but the host's "
                            "pid limit")


def test_no_seccomp_is_fatal(tmp_path, start_sandbox, start_gateway):
    root = fakehost.make(str(tmp_path), {"proc/sys/kernel/seccomp/actions_avail": None})
    sbx, gw = start_refusing(start_sandbox, start_gateway, root)
    assert_refuses(sbx, gw, "host audit: kernel.seccomp.actions_avail = absent: the kernel has no "
                            "seccomp filters, and every job runs under a system-call allow-list")


def test_missing_namespaces_are_fatal(tmp_path, start_sandbox, start_gateway):
    """Two findings: the first is the reason, the log has both."""
    root = fakehost.make(str(tmp_path), {"proc/sys/user/max_user_namespaces": "0",
                                         "proc/self/ns/net": None})
    sbx, gw = start_refusing(start_sandbox, start_gateway, root)
    assert_refuses(sbx, gw, "host audit: user.max_user_namespaces = 0: no user namespace can be "
                            "made, and each job runs as uid 1000 of its own one, mapped to an "
                            "unprivileged host uid (and 1 more in sandboxd's log)")
    assert "error: host: user.max_net_namespaces = unsupported by the kernel: " in sbx.log()


def test_hidden_proc_sys_is_fatal(tmp_path, start_sandbox, start_gateway):
    """/proc mounted with subset=pid (systemd's ProcSubset=pid): nothing can be checked."""
    root = fakehost.make(str(tmp_path))
    shutil.rmtree(os.path.join(root, "proc", "sys"))
    sbx, gw = start_refusing(start_sandbox, start_gateway, root)
    assert_refuses(sbx, gw, "host audit: proc.sys = hidden: sandboxd cannot read /proc/sys, so "
                            "the settings isolation depends on (core_pattern, seccomp, namespace "
                            "limits) go unchecked")


def test_weak_settings_are_warnings_and_served(tmp_path, start_sandbox, start_gateway):
    """Each of these opens a kernel interface to unprivileged processes that the jobs' seccomp
    filter kills anyway: warned about, healthy, jobs run."""
    weak = {"kernel.unprivileged_bpf_disabled": "0", "vm.unprivileged_userfaultfd": "1",
            "kernel.io_uring_disabled": "0", "kernel.perf_event_paranoid": "1",
            "kernel.yama.ptrace_scope": "0", "kernel.unprivileged_userns_clone": "1"}
    root = fakehost.make(str(tmp_path), {
        "proc/sys/" + k.replace(".", "/"): v for k, v in weak.items()})
    sbx = start_sandbox("--audit-root", root)  # waits for "ready": the canary passed
    gw = start_gateway(sbx.socket)
    gw.wait_connected()
    assert health(gw) == (200, {"status": "healthy"})
    r = execute(gw)
    assert r.status_code == 200 and r.json() == {"result": {"message": "Hello, World!"},
                                                  "stdout": ""}
    log = sbx.log()
    for key, value in weak.items():
        assert f"warn: host: {key} = {value}: " in log, (key, log)
    assert "error: host:" not in log and "refusing jobs" not in log, log
    assert f"warn: host: auditing {root} instead of this host" in log


def test_protocol_says_why(tmp_path, start_sandbox, start_gateway):
    """The same on the wire protocol, for clients other than the gateway (`pyexec status`)."""
    import pxclient
    root = fakehost.make(str(tmp_path), {"proc/sys/kernel/core_pattern": "|/bin/false"})
    sbx, _ = start_refusing(start_sandbox, start_gateway, root)
    reason = f"host audit: kernel.core_pattern = |/bin/false: {CORE_WHY}"
    pong = sbx.ping()
    assert pong["ready"] == 0 and pong["reason"] == reason, pong
    with pxclient.Client(sbx.socket, timeout=30) as c:
        c.submit(7, HELLO)
        assert c.read_frame() == (pxclient.ERROR, 7,
                                  {"code": pxclient.E_NOT_READY, "message": reason})


def test_a_host_that_changes_after_start_is_refused_from_then_on(tmp_path, start_sandbox,
                                                                 start_gateway):
    """A core_pattern handler installed after sandboxd started (apport, systemd-coredump): the
    audit runs again every few seconds, and jobs are refused from then on, with the reason."""
    root = fakehost.make(str(tmp_path))
    sbx = start_sandbox("--audit-root", root)
    gw = start_gateway(sbx.socket)
    gw.wait_connected()
    assert health(gw) == (200, {"status": "healthy"})
    assert execute(gw).status_code == 200
    with open(os.path.join(root, "proc/sys/kernel/core_pattern"), "w") as f:
        f.write(CORE_PIPE + "\n")
    reason = f"host audit: kernel.core_pattern = {CORE_PIPE}: {CORE_WHY}"
    wait_for(lambda: health(gw)[0] == 503, 30, what="the change to be seen")
    assert health(gw) == (503, {"status": "unhealthy",
                                "reason": "sandboxd is not ready: " + reason})
    r = execute(gw)
    assert (r.status_code, r.json()) == (503, {"error": "The sandbox is not ready: " + reason})
    assert sbx.log().count("the host changed since start-up: refusing jobs") == 1
    assert sbx.alive()
