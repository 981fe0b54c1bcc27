"""Operations: the gateway's privileges, API keys, metrics, logs, SIGTERM, configuration, and
how it behaves when sandboxd is full, killed and restarted."""
import concurrent.futures
import os
import pwd
import re
import signal
import socket
import time

import pytest
import requests
import seed

import harness
from harness import wait_for

TIMEOUT = 120
HELLO = seed.HELLO
SLEEP = "import time\ndef main():\n    time.sleep(%s)\n    return 'slept'\n"


def post(url, script, timeout=TIMEOUT, **extra):
    return requests.post(url + "/execute", json={"script": script, **extra}, timeout=timeout)


# ---- privileges -------------------------------------------------------------------------------

def test_runs_unprivileged(gateway):
    pw = pwd.getpwnam(harness.GATEWAY_USER)
    st = gateway.status()
    assert st["Uid"].split() == [str(pw.pw_uid)] * 4, st["Uid"]
    assert st["Gid"].split() == [str(pw.pw_gid)] * 4, st["Gid"]
    assert st["Groups"] in ("", str(pw.pw_gid)), st["Groups"]
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(st[cap], 16) == 0, (cap, st[cap])
    assert st["NoNewPrivs"] == "1"
    # Only what it needs is open: stdio, the listener, the epoll and libevent's pipes, the
    # sandboxd socket; nothing inherited.
    fds = gateway.fds()
    assert len(fds) < 16, fds


def test_refuses_to_serve_as_root(sandbox):
    p = harness.run_gatewayd("--socket", sandbox.socket, "--listen", "127.0.0.1:0",
                             "--user", "root")
    assert p.returncode != 0
    assert "refusing to serve as root" in p.stderr, p.stderr


def test_unknown_user(sandbox):
    p = harness.run_gatewayd("--socket", sandbox.socket, "--listen", "127.0.0.1:0",
                             "--user", "no-such-user-xyz")
    assert p.returncode != 0
    assert "no-such-user-xyz" in p.stderr


def test_check_prints_config():
    p = harness.run_gatewayd("--check", "--max-body", "2048", env={"PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    assert "listen = 127.0.0.1:8080\n" in p.stdout
    assert "max-body = 2048 bytes\n" in p.stdout
    assert "socket = /run/pyexec/sandboxd.sock\n" in p.stdout
    assert "runs as = pyexec" in p.stdout


def test_bad_option_values():
    for args in (["--max-body", "-1"], ["--timeout-ms", "50"], ["--max-connections", "x"],
                 ["--nope"], ["extra"]):
        p = harness.run_gatewayd("--check", *args)
        assert p.returncode == 2, (args, p.stdout, p.stderr)


def test_port_from_environment(sandbox):
    port = harness.free_port()
    gw = harness.Gateway(sandbox.socket, env={"PORT": str(port)}, listen=None)
    try:
        gw.start()
        assert gw.address == f"0.0.0.0:{port}"
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=TIMEOUT).status_code == 200
        # --check shows where it comes from.
        p = harness.run_gatewayd("--check", env={"PORT": str(port)})
        assert f"listen = 0.0.0.0:{port} (from $PORT)" in p.stdout
        # An explicit --listen wins.
        p = harness.run_gatewayd("--check", "--listen", "127.0.0.1:9", env={"PORT": str(port)})
        assert "listen = 127.0.0.1:9\n" in p.stdout
    finally:
        gw.cleanup()


# ---- API keys ---------------------------------------------------------------------------------

def test_api_keys(sandbox, start_gateway, tmp_path):
    keys = tmp_path / "keys"
    key1, key2 = "k1-" + os.urandom(16).hex(), "k2-" + os.urandom(16).hex()
    keys.write_text(f"# the gateway's clients\n{key1}\n\n  {key2}  \r\n")
    os.chmod(keys, 0o600)  # root only: read before the privilege drop
    gw = start_gateway(sandbox.socket, "--api-keys", str(keys))
    gw.wait_connected()
    u = gw.url + "/execute"
    body = {"script": HELLO}

    def check_401(r):
        assert r.status_code == 401, r.text
        assert r.json() == {"error": "Missing or invalid API key"}
        assert r.headers["WWW-Authenticate"].startswith("Bearer")

    check_401(requests.post(u, json=body, timeout=TIMEOUT))
    check_401(requests.post(u, json=body, headers={"Authorization": "Bearer nope"},
                            timeout=TIMEOUT))
    check_401(requests.post(u, json=body, headers={"Authorization": f"Basic {key1}"},
                            timeout=TIMEOUT))
    check_401(requests.post(u, json=body, headers={"Authorization": f"Bearer {key1}x"},
                            timeout=TIMEOUT))
    check_401(requests.post(u, json=body, headers={"Authorization": f"Bearer {key1[:-1]}"},
                            timeout=TIMEOUT))
    check_401(requests.get(gw.url + "/metrics", timeout=TIMEOUT))
    for k in (key1, key2):
        r = requests.post(u, json=body, headers={"Authorization": f"Bearer {k}"}, timeout=TIMEOUT)
        assert r.status_code == 200 and r.json()["result"] == {"message": "Hello, World!"}
    r = requests.post(u, json=body, headers={"Authorization": f"bearer  {key2}"}, timeout=TIMEOUT)
    assert r.status_code == 200
    assert requests.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {key1}"},
                        timeout=TIMEOUT).status_code == 200
    # /health stays open for probes.
    assert requests.get(gw.url + "/health", timeout=TIMEOUT).status_code == 200
    # Unknown paths are 404 either way; the key is never logged.
    assert requests.get(gw.url + "/x", timeout=TIMEOUT).status_code == 404
    assert key1 not in gw.log() and key2 not in gw.log()
    assert "API keys required" in gw.log()


def test_api_key_file_errors(sandbox, tmp_path):
    cases = {"empty": ("\n# nothing\n", "no key"), "space": ("a b\n", "line 1")}
    for name, (text, msg) in cases.items():
        f = tmp_path / name
        f.write_text(text)
        p = harness.run_gatewayd("--socket", sandbox.socket, "--listen", "127.0.0.1:0",
                                 "--api-keys", str(f))
        assert p.returncode == 1 and msg in p.stderr, (name, p.stderr)
        assert "a b" not in p.stderr
    p = harness.run_gatewayd("--check", "--api-keys", str(tmp_path / "missing"))
    assert p.returncode == 1 and "No such file" in p.stderr


# ---- metrics and logs -------------------------------------------------------------------------

def metric(text, name, **labels):
    sel = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pat = "^" + re.escape(name + ("{" + sel + "}" if sel else "")) + r" (\S+)$"
    m = re.search(pat, text, re.M)
    return float(m.group(1)) if m else None


def test_metrics(sandbox, start_gateway):
    gw = start_gateway(sandbox.socket)
    gw.wait_connected()
    post(gw.url, HELLO)
    post(gw.url, HELLO)
    post(gw.url, "def main():\n    return 1/0\n")
    post(gw.url, "def helper():\n    pass\n")
    requests.get(gw.url + "/nowhere", timeout=TIMEOUT)
    requests.post(gw.url + "/execute", data="x", timeout=TIMEOUT)
    r = requests.get(gw.url + "/metrics", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    m = r.text
    assert metric(m, "pyexec_http_requests_total", route="/execute", code="200") == 2
    assert metric(m, "pyexec_http_requests_total", route="/execute", code="400") == 3
    assert metric(m, "pyexec_http_requests_total", route="/health", code="200") == 1
    assert metric(m, "pyexec_http_requests_total", route="other", code="404") == 1
    assert metric(m, "pyexec_executions_total", verdict="ok") == 2
    assert metric(m, "pyexec_executions_total", verdict="error") == 1
    assert metric(m, "pyexec_executions_total", verdict="no_main") == 1
    assert metric(m, "pyexec_executions_total", verdict="timeout") == 0
    assert metric(m, "pyexec_execution_duration_seconds_count") == 4
    assert metric(m, "pyexec_execution_duration_seconds_bucket", le="+Inf") == 4
    assert metric(m, "pyexec_execution_duration_seconds_sum") > 0
    assert metric(m, "pyexec_jobs_in_flight") == 0
    assert metric(m, "pyexec_sandbox_up") == 1
    assert metric(m, "pyexec_sandbox_queue_depth") == 0
    assert metric(m, "pyexec_sandbox_reconnects_total") == 0
    assert metric(m, "pyexec_http_connections") >= 1
    # Every sample line is "name{labels} value" and every family has HELP and TYPE.
    families = set()
    for line in m.splitlines():
        if line.startswith("# TYPE "):
            families.add(line.split()[2])
        elif not line.startswith("#"):
            assert re.match(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? \S+$', line), line
    assert {"pyexec_http_requests_total", "pyexec_executions_total",
            "pyexec_execution_duration_seconds", "pyexec_jobs_in_flight",
            "pyexec_sandbox_queue_depth", "pyexec_sandbox_reconnects_total"} <= families


def test_one_log_line_per_request_without_secrets(sandbox, start_gateway):
    gw = start_gateway(sandbox.socket)
    gw.wait_connected()
    marker = "m" + os.urandom(8).hex()
    src = f"def main():\n    # script-{marker}\n    print('out-{marker}')\n    return 'res-{marker}'\n"
    r = post(gw.url, src)
    assert r.status_code == 200
    rid = r.headers["X-Request-Id"]
    post(gw.url, f"def main():\n    raise ValueError('err-{marker}')\n")
    log = gw.log()
    assert marker not in log
    lines = [l for l in log.splitlines() if f" req {rid} " in l]
    assert len(lines) == 1, lines
    line = lines[0]
    assert "POST /execute 200 verdict=ok" in line and "total_ms=" in line and "wall_ms=" in line
    assert re.search(r"req [0-9a-f]{16} POST /execute 400 verdict=error ", log)


def test_log_shows_the_path_only(gateway):
    """Query strings and absolute-form targets can carry credentials: never logged."""
    secrets = ["s" + os.urandom(6).hex() for _ in range(4)]
    for target in (f"/health?api_key={secrets[0]}", f"?token={secrets[1]}",
                   f"http://user:{secrets[2]}@x/health?k={secrets[3]}"):
        with socket.create_connection((gateway.host, gateway.port), timeout=30) as s:
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                      .encode())
            assert s.recv(4096).startswith(b"HTTP/1.1 ")
    log = gateway.log()
    for secret in secrets:
        assert secret not in log
    assert re.search(r"req \S+ GET - 404 ", log), log[-2000:]


# ---- SIGTERM ----------------------------------------------------------------------------------

def test_sigterm_drains_in_flight_jobs(sandbox, start_gateway):
    gw = start_gateway(sandbox.socket)
    gw.wait_connected()
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        fut = ex.submit(post, gw.url, SLEEP % 2)
        wait_for(sandbox.job_procs, 60, interval=0.05, what="the job to start")
        gw.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        # No new connections ...
        with pytest.raises(requests.ConnectionError):
            requests.get(gw.url + "/health", timeout=5)
        # ... but the job in flight is answered.
        r = fut.result(timeout=TIMEOUT)
    assert r.status_code == 200 and r.json() == {"result": "slept", "stdout": ""}
    assert gw.proc.wait(30) == 0
    assert "signal 15: stopping" in gw.log()


def test_sigterm_grace_is_bounded(sandbox, start_gateway):
    gw = start_gateway(sandbox.socket, "--grace-ms", "1000")
    gw.wait_connected()
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        fut = ex.submit(post, gw.url, SLEEP % 20)
        wait_for(sandbox.job_procs, 60, interval=0.05, what="the job to start")
        t0 = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        assert gw.proc.wait(30) == 0
        assert time.monotonic() - t0 < 10
        with pytest.raises(requests.ConnectionError):
            fut.result(timeout=TIMEOUT)
    assert "grace period over" in gw.log()
    # sandboxd killed the job when the gateway's connection closed.
    wait_for(lambda: not sandbox.job_procs(), 30, what="the orphaned job to be killed")


# ---- sandboxd full, gone, back ----------------------------------------------------------------

def test_queue_full_gives_503_and_recovers(start_sandbox, start_gateway):
    sbx = start_sandbox("--max-queued", "1", max_running=1)
    gw = start_gateway(sbx.socket)
    gw.wait_connected()
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        running = ex.submit(post, gw.url, SLEEP % 3)
        wait_for(lambda: sbx.ping()["running"] == 1, 60, what="one job running")
        queued = ex.submit(post, gw.url, SLEEP % 0)
        wait_for(lambda: sbx.ping()["queued"] == 1, 60, what="one job queued")
        r = post(gw.url, HELLO)
        assert r.status_code == 503, r.text
        assert r.json() == {"error": "Server busy: the execution queue is full, retry later"}
        assert r.headers["Retry-After"] == "1"
        assert running.result(TIMEOUT).json() == {"result": "slept", "stdout": ""}
        assert queued.result(TIMEOUT).json() == {"result": "slept", "stdout": ""}
    r = post(gw.url, HELLO)
    assert r.status_code == 200 and r.json()["result"] == {"message": "Hello, World!"}


def test_sandboxd_killed_and_restarted(start_sandbox, start_gateway):
    sbx = start_sandbox(max_running=2)
    gw = start_gateway(sbx.socket)
    gw.wait_connected()
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        inflight = ex.submit(post, gw.url, SLEEP % 30)
        wait_for(sbx.job_procs, 60, interval=0.05, what="the job to start")
        t0 = time.monotonic()
        sbx.kill()
        r = inflight.result(TIMEOUT)
        # The request in flight is answered as soon as the connection drops.
        assert time.monotonic() - t0 < 5
    assert r.status_code == 503 and r.json() == {"error": "The sandbox went away, retry later"}
    assert r.headers["Retry-After"] == "1"
    # While sandboxd is down: 503 at once.
    t0 = time.monotonic()
    r = post(gw.url, HELLO)
    assert time.monotonic() - t0 < 2
    assert r.status_code == 503
    assert r.json() == {"error": "The sandbox is unavailable, retry later"}
    assert r.headers["Retry-After"] == "1"
    h = requests.get(gw.url + "/health", timeout=TIMEOUT)
    assert h.status_code == 503
    assert h.json()["status"] == "unhealthy" and "unreachable" in h.json()["reason"]
    assert list(h.json()) == ["status", "reason"]
    # Back: the gateway reconnects by itself.
    sbx.start()
    wait_for(lambda: requests.get(gw.url + "/health", timeout=30).status_code == 200, 30,
             interval=0.1, what="the gateway to reconnect")
    r = post(gw.url, HELLO)
    assert r.status_code == 200 and r.json()["result"] == {"message": "Hello, World!"}
    m = requests.get(gw.url + "/metrics", timeout=TIMEOUT).text
    assert metric(m, "pyexec_sandbox_reconnects_total") >= 1
    assert "lost sandboxd" in gw.log() and "connected to sandboxd" in gw.log()


def test_sandboxd_stopped_counts_as_lost(start_sandbox, start_gateway):
    """kill -STOP: sandboxd stays connected but answers nothing. After two status intervals
    without a PONG the jobs in flight get 503 and /health says unhealthy; after -CONT the
    gateway is back by itself."""
    sbx = start_sandbox(max_running=1)
    gw = start_gateway(sbx.socket, "--status-interval-ms", "500", "--health-timeout-ms", "500")
    gw.wait_connected()
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            inflight = ex.submit(post, gw.url, SLEEP % 30)
            wait_for(sbx.job_procs, 60, interval=0.05, what="the job to start")
            t0 = time.monotonic()
            os.kill(sbx.pid, signal.SIGSTOP)
            r = inflight.result(TIMEOUT)
            assert time.monotonic() - t0 < 5
        assert r.status_code == 503
        assert r.json() == {"error": "The sandbox went away, retry later"}
        assert "answered none of 2 status requests" in gw.log()
        h = requests.get(gw.url + "/health", timeout=TIMEOUT)
        assert h.status_code == 503 and h.json()["status"] == "unhealthy"
    finally:
        os.kill(sbx.pid, signal.SIGCONT)
    wait_for(lambda: requests.get(gw.url + "/health", timeout=30).status_code == 200, 30,
             interval=0.1, what="the gateway to be healthy again")
    r = post(gw.url, HELLO)
    assert r.status_code == 200 and r.json()["result"] == {"message": "Hello, World!"}
    # The job of the lost connection was killed by sandboxd when it saw the connection gone.
    wait_for(lambda: not sbx.job_procs(), 30, what="the orphaned job to be killed")


def test_sandboxd_not_there_at_start(start_gateway):
    sbx = harness.Sandbox(max_running=1)
    try:
        gw = start_gateway(sbx.socket)
        r = post(gw.url, HELLO)
        assert r.status_code == 503
        assert "cannot connect to sandboxd" in gw.log()
        sbx.start()
        gw.wait_connected(60)
        assert post(gw.url, HELLO).status_code == 200
    finally:
        sbx.cleanup()


def test_sandboxd_sigterm_while_connected(start_sandbox, start_gateway):
    """sandboxd stopping: PONG says not ready, so /health is 503 with the reason, then the
    connection closes and the gateway waits for the next sandboxd."""
    sbx = start_sandbox(max_running=1)
    gw = start_gateway(sbx.socket)
    gw.wait_connected()
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        job = ex.submit(post, gw.url, SLEEP % 2)
        wait_for(sbx.job_procs, 60, interval=0.05, what="the job to start")
        sbx.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        h = requests.get(gw.url + "/health", timeout=TIMEOUT)
        assert h.status_code == 503
        assert h.json()["status"] == "unhealthy"
        r = post(gw.url, HELLO)
        assert r.status_code == 503
        assert job.result(TIMEOUT).status_code in (200, 503)
    sbx.proc.wait(60)
