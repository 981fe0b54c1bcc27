"""Fault: sandboxd is killed with SIGKILL while jobs run and wait.

The gateway must answer the requests in flight at once (503, not when their deadline passes),
answer new ones 503 while sandboxd is gone, run nothing meanwhile, and serve again by itself once
sandboxd is restarted on the same socket. Every job process dies with the daemon
(PR_SET_PDEATHSIG), no job ever ran outside its jail, and the dead daemon's job cgroups are
removed by the next one.
"""
import os
import signal
import time

import requests

from conftest import (HEALTHY_BODY, HELLO, HELLO_BODY, SLEEPER, InFlight, JobWatch,
                      assert_no_leaks, census, health, idle_census, job_inits, post, wait_for)


def test_sigkill_sandboxd_mid_job(start_sandbox, start_gateway):
    sbx = start_sandbox(max_running=2)
    gw = start_gateway(sbx.socket)
    gw.wait_connected()
    assert post(gw, HELLO).text == HELLO_BODY
    before = idle_census(sbx, gw)
    watch = JobWatch(sbx.uid_range, daemon_pid=sbx.pid)

    # Two jobs run (max_running 2), a third waits in sandboxd's queue.
    flights = [InFlight(gw, SLEEPER) for _ in range(3)]
    wait_for(lambda: len(job_inits(sbx)) == 2, 60, what="two jobs running")
    old_pid = sbx.pid
    assert len(census.job_cgroups(old_pid, before.parents)) >= 2

    t_kill = time.monotonic()
    sbx.kill()
    assert sbx.proc.returncode == -signal.SIGKILL

    # Every request in flight is answered 503 now; the jobs would have run for 25 s.
    for f in flights:
        r = f.answer()
        assert f.error is None, f.error
        assert r.status_code == 503, r.text
        assert r.json() == {"error": "The sandbox went away, retry later"}
        assert r.headers["Retry-After"] == "1"
        assert f.t1 - t_kill < 15, f"answered {f.t1 - t_kill:.1f} s after the kill"
    # The jobs died with their daemon (PR_SET_PDEATHSIG), children and zombies included.
    wait_for(lambda: census.host_procs(*sbx.uid_range, daemon_pid=sbx.pid) == [], 15,
             what="the killed daemon's job processes to disappear")
    seen_at_outage = watch.seen_when_idle()

    # Meanwhile: 503 at once, unhealthy, and nothing runs.
    for _ in range(3):
        r = post(gw, HELLO)
        assert r.status_code == 503, r.text
        assert r.json() == {"error": "The sandbox is unavailable, retry later"}
        assert r.headers["Retry-After"] == "1"
    r = health(gw)
    assert r.status_code == 503
    assert r.json()["status"] == "unhealthy"
    assert r.json()["reason"].startswith("sandboxd is unreachable: "), r.json()
    time.sleep(0.5)
    assert watch.seen == seen_at_outage, "a job process appeared while sandboxd was dead"
    # Nobody removed the dead daemon's job cgroups yet: that is the next daemon's start-up.
    stale = census.job_cgroups(old_pid, before.parents)
    print(f"job cgroups the killed daemon left: {len(stale)}")

    # Restarted on the same socket (its stale socket file is replaced): the gateway reconnects
    # by itself (backoff up to 2 s) and serves again.
    sbx.start()
    gw.wait_connected(60)
    assert post(gw, HELLO).text == HELLO_BODY
    assert health(gw).text == HEALTHY_BODY
    wait_for(lambda: census.job_cgroups(old_pid, before.parents) == [], 15,
             what="the new daemon to remove the dead one's job cgroups")
    m = requests.get(gw.url + "/metrics", timeout=30).text
    assert "pyexec_sandbox_reconnects_total 1\n" in m

    watch.stop()
    assert watch.unjailed == [], f"job processes seen outside a jail: {watch.unjailed}"
    assert len(watch.jailed) >= 3, "the watch did not see the jobs"  # else it proves nothing
    # Nothing left: no job process, no cgroup of either daemon, the gateway's fds as before.
    assert_no_leaks(before, sbx, gw)
    assert os.listdir(sbx.jail) == []
    assert sbx.stop() == 0
    assert gw.stop() == 0
