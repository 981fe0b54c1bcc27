"""Fault: gatewayd is killed with SIGKILL while its requests' jobs run and wait in sandboxd.

sandboxd sees its client's connection close and cancels every job of it: the running ones are
killed (their processes disappear, children too, and their cgroups are removed), the queued one
never starts. Nothing leaks in sandboxd, and a new gatewayd on the same socket is served.
"""
import copy
import os
import signal
import time

from conftest import (HELLO, HELLO_BODY, InFlight, JobWatch, assert_no_leaks, census,
                      idle_census, job_inits, post, wait_for)

# A job with children: they must go too, and they are not the job's init.
FORKER = """import os, time

def main():
    for _ in range(3):
        if os.fork() == 0:
            time.sleep(25)
            os._exit(0)
    print('started', flush=True)
    time.sleep(25)
"""


def test_sigkill_gatewayd_mid_request(start_sandbox, start_gateway):
    sbx = start_sandbox(max_running=2)
    gw = start_gateway(sbx.socket)
    gw.wait_connected()
    assert post(gw, HELLO).text == HELLO_BODY
    before = idle_census(sbx)
    watch = JobWatch(sbx.uid_range, daemon_pid=sbx.pid)
    sbx_mark = len(sbx.log())

    # Two jobs of four processes each run (max_running 2), a third waits in sandboxd's queue.
    flights = [InFlight(gw, FORKER) for _ in range(3)]
    wait_for(lambda: len(job_inits(sbx)) == 2 and
             len(census.host_procs(*sbx.uid_range, daemon_pid=sbx.pid)) == 8, 60,
             what="two jobs running, with three children each")
    assert len(census.job_cgroups(sbx.pid, before.parents)) == 2 * len(before.parents)
    # The watch (a thread scanning /proc) has seen them all before the gateway dies.
    running = {p for p, _ in census.host_procs(*sbx.uid_range, daemon_pid=sbx.pid)}
    wait_for(lambda: running <= watch.seen, 30, what="the watch to see the running jobs")

    t_kill = time.monotonic()
    gw.kill()
    assert gw.proc.returncode == -signal.SIGKILL
    seen_at_kill = set(watch.seen)
    # The clients lose their connections: no answer comes from a dead gateway.
    for f in flights:
        f.join(60)
        assert f.response is None and f.error is not None, (f.response, f.error)

    # sandboxd cancels the jobs: every process of them goes, and soon.
    wait_for(lambda: census.host_procs(*sbx.uid_range, daemon_pid=sbx.pid) == [], 15,
             what="the jobs' processes to disappear")
    gone_after = time.monotonic() - t_kill
    wait_for(lambda: census.job_cgroups(sbx.pid, before.parents) == [], 15,
             what="the jobs' cgroups to be removed")
    print(f"job processes gone {gone_after:.2f} s after the gateway's death")
    # The queued job never started.
    assert watch.seen == seen_at_kill, "a job started after its client was gone"
    watch.stop()
    assert watch.unjailed == [], f"job processes seen outside a jail: {watch.unjailed}"
    assert len(watch.jailed) == 8

    # As before, less the dead gateway's connection.
    without_gw = copy.copy(before)
    without_gw.sbx_fds -= 1
    assert_no_leaks(without_gw, sbx)
    assert sbx.alive()
    log = sbx.log()[sbx_mark:]
    assert ": error:" not in log, log
    # Cancelled jobs of a departed client are not reported to anyone: no "job N" line for them.
    assert " from pid " not in log, log

    # The same socket serves a new gateway.
    gw2 = start_gateway(sbx.socket)
    gw2.wait_connected()
    assert post(gw2, HELLO).text == HELLO_BODY
    assert_no_leaks(before, sbx)
    assert os.listdir(sbx.jail) == []
    assert gw2.stop() == 0
    assert sbx.stop() == 0
