"""Fault: a job's init (the runner, PID 1 of the job's PID namespace) is killed with SIGKILL from
the host, as an administrator or the host's OOM killer might.

Inside its namespace the init cannot be sent SIGKILL (the kernel ignores it for an init), so this
signal can only come from outside. The client gets a clear error with what the script printed;
the job's other processes die with their init; a job running next to it is untouched; the
service stays healthy and nothing leaks.
"""
import os
import signal
import time

from conftest import (HEALTHY_BODY, HELLO, HELLO_BODY, InFlight, JobWatch, assert_no_leaks,
                      census, health, idle_census, job_inits, ns_pids, post, wait_for)

FORKER = """import os, time

def main():
    for _ in range(3):
        if os.fork() == 0:
            time.sleep(25)
            os._exit(0)
    print('started', flush=True)
    time.sleep(25)
"""
# The neighbour: runs across the kill (the victim starts within its 10 s on a busy host too),
# then returns.
NEIGHBOUR = "import time\n\ndef main():\n    time.sleep(10)\n    return 'survived'\n"


def test_sigkill_job_init_from_host(start_sandbox, start_gateway):
    sbx = start_sandbox(max_running=2)
    gw = start_gateway(sbx.socket)
    gw.wait_connected()
    assert post(gw, HELLO).text == HELLO_BODY
    before = idle_census(sbx, gw)
    watch = JobWatch(sbx.uid_range, daemon_pid=sbx.pid)

    neighbour = InFlight(gw, NEIGHBOUR)
    wait_for(lambda: len(job_inits(sbx)) == 1, 60, what="the neighbour job running")
    (neighbour_init,) = job_inits(sbx)
    victim = InFlight(gw, FORKER)
    wait_for(lambda: len(job_inits(sbx)) == 2 and len(census.host_procs(*sbx.uid_range, daemon_pid=sbx.pid)) == 5,
             60, what="the victim job running, with its three children")
    (init,) = [p for p in job_inits(sbx) if p != neighbour_init]
    assert ns_pids(init)[-1] == 1 and len(ns_pids(init)) == 2
    victim_procs = {p for p, _ in census.host_procs(*sbx.uid_range, daemon_pid=sbx.pid)} - {neighbour_init}
    assert len(victim_procs) == 4

    t_kill = time.monotonic()
    os.kill(init, signal.SIGKILL)
    r = victim.answer()
    assert victim.error is None, victim.error
    # Reported as the job's end, with what it printed; not as a jail failure (the jail was
    # complete) nor as a timeout.
    assert r.status_code == 400, r.text
    assert r.json() == {"error": "Script execution error: killed by signal 9 (SIGKILL)",
                        "stdout": "started\n"}
    assert r.headers["X-Pyexec-Verdict"] == "killed"
    assert time.monotonic() - t_kill < 15  # not the 25 s the job would run
    # Its children died with it (the PID namespace goes with its init).
    wait_for(lambda: not victim_procs & {p for p, _ in census.host_procs(*sbx.uid_range, daemon_pid=sbx.pid)}, 15,
             what="the victim's processes to disappear")

    # The job next to it finishes as if nothing happened.
    r = neighbour.answer()
    assert (r.status_code, r.json()) == (200, {"result": "survived", "stdout": ""})

    # The service is healthy, runs the next job, and holds nothing more than before.
    assert health(gw).text == HEALTHY_BODY
    assert post(gw, HELLO).text == HELLO_BODY
    watch.stop()
    assert watch.unjailed == [], f"job processes seen outside a jail: {watch.unjailed}"
    assert_no_leaks(before, sbx, gw)
    assert os.listdir(sbx.jail) == []
    log = sbx.log()
    assert ": killed in " in log and ": error:" not in log, log
    assert gw.stop() == 0
    assert sbx.stop() == 0
