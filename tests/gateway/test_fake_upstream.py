"""The gateway against a scripted sandboxd (fakesandbox.py): the answers a healthy sandboxd
rarely or never gives, matched by job id, mapped to statuses, and a misbehaving peer dropped."""
import concurrent.futures
import json
import threading
import time

import pytest
import requests

import harness
import pxclient
from fakesandbox import FakeSandbox, error_frame, pong_frame, result_frame
from harness import wait_for

TIMEOUT = 60


@pytest.fixture
def fake(start_gateway):
    """fake(on_submit, on_ping=None, *gateway_flags) -> (FakeSandbox, Gateway)."""
    made = []

    def _make(on_submit, on_ping=None, *flags):
        f = FakeSandbox(on_submit, on_ping)
        made.append(f)
        gw = start_gateway(f.socket, *flags)
        wait_for(lambda: f.accepted >= 1, 20, what="the gateway to connect")
        return f, gw

    yield _make
    for f in made:
        f.cleanup()


def post(gw, script="def main():\n    return 1\n", **extra):
    return requests.post(gw.url + "/execute", json={"script": script, **extra}, timeout=TIMEOUT)


def answer(frame_for):
    """on_submit that answers every job at once with frame_for(job_id, script)."""
    def on_submit(conn, job_id, script, timeout_ms, memory_mb):
        conn.send(frame_for(job_id, script))
    return on_submit


def test_sandbox_error_is_500(fake):
    _, gw = fake(answer(lambda j, s: result_frame(
        j, "sandbox_error", message="Sandbox error: pivot_root: Operation not permitted")))
    r = post(gw)
    assert r.status_code == 500
    assert r.json() == {"error": "Sandbox error: pivot_root: Operation not permitted",
                        "stdout": ""}
    assert r.headers["X-Pyexec-Verdict"] == "sandbox_error"


def test_oom_and_bad_result_texts_passed_on(fake):
    texts = {b"oom": ("oom", "Script exceeded the memory limit (64 MiB)"),
             b"big": ("bad_result", "Result is too large (over 16777216 bytes)")}
    _, gw = fake(answer(lambda j, s: result_frame(j, texts[s][0], message=texts[s][1],
                                                  stdout=b"partial")))
    for key, (verdict, text) in texts.items():
        r = post(gw, key.decode())
        assert r.status_code == 400
        assert r.json() == {"error": text, "stdout": "partial"}
        assert r.headers["X-Pyexec-Verdict"] == verdict


def test_result_is_reencoded_not_spliced(fake):
    _, gw = fake(answer(lambda j, s: result_frame(
        j, "ok", result='  {"b" : [ 1 ,2.50, 1e2 ],"a":"\\u00e9\\u0000" }  ',
        stdout=b"bad \xff utf8\n", stderr=b"warn\xfe\n")))
    r = post(gw)
    assert r.status_code == 200
    assert r.text == ('{"result": {"b": [1, 2.5, 100.0], "a": "é\\u0000"}, '
                      '"stdout": "bad \ufffd utf8\\n"}\n')
    r = post(gw, stderr=True)
    assert r.json()["stderr"] == "warn\ufffd\n"


@pytest.mark.parametrize("result", ['{"a": ', "nan", "[1] [2]", "[" * 200 + "]" * 200,
                                    "\xff"])
def test_result_that_is_not_json_is_500(fake, result):
    _, gw = fake(answer(lambda j, s: result_frame(j, "ok", result=result.encode("latin-1"))))
    r = post(gw)
    assert r.status_code == 500
    assert r.json() == {"error": "Internal server error"}
    assert "sandboxd sent a result that is not JSON" in gw.log()


@pytest.mark.parametrize("code,status,text", [
    (pxclient.E_BUSY, 503, "Server busy: the execution queue is full, retry later"),
    (pxclient.E_SHUTDOWN, 503, "The sandbox is shutting down, retry later"),
    # sandboxd's reason (a fatal host audit finding) is passed on, as /health does.
    (pxclient.E_NOT_READY, 503, "The sandbox is not ready: why"),
    (pxclient.E_INVALID, 400, "timeout_ms must be between 100 and 1000"),
    (pxclient.E_INTERNAL, 500, "Internal server error"),
    (99, 500, "Internal server error"),
])
def test_refusals(fake, code, status, text):
    _, gw = fake(answer(lambda j, s: error_frame(j, code, "timeout_ms must be between 100 and 1000"
                                                 if code == pxclient.E_INVALID else "why")))
    r = post(gw)
    assert r.status_code == status
    assert r.json() == {"error": text}
    if status == 503:
        assert r.headers["Retry-After"] == "1"


def test_cancelled_by_sandboxd_is_503(fake):
    _, gw = fake(answer(lambda j, s: result_frame(j, "cancelled", message="Job cancelled")))
    r = post(gw)
    assert r.status_code == 503
    assert r.json() == {"error": "Job cancelled", "stdout": ""}


def test_answers_matched_by_job_id(fake):
    """Two jobs in flight; the second finishes first."""
    held = []

    def on_submit(conn, job_id, script, timeout_ms, memory_mb):
        held.append((job_id, script))
        if len(held) == 2:
            for jid, src in reversed(held):
                conn.send(result_frame(jid, "ok", result=json.dumps(src.decode())))

    _, gw = fake(on_submit)
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        a = ex.submit(post, gw, "first")
        wait_for(lambda: len(held) == 1, 20, what="the first job")
        b = ex.submit(post, gw, "second")
        assert a.result(TIMEOUT).json() == {"result": "first", "stdout": ""}
        assert b.result(TIMEOUT).json() == {"result": "second", "stdout": ""}
    assert held[0][0] != held[1][0]


def test_limits_forwarded(fake):
    seen = []

    def on_submit(conn, job_id, script, timeout_ms, memory_mb):
        seen.append((timeout_ms, memory_mb))
        conn.send(result_frame(job_id, "ok", result="1"))

    _, gw = fake(on_submit)
    post(gw)
    post(gw, timeout_ms=1500, memory_mb=64)
    assert seen == [(0, 0), (1500, 64)]


def test_client_gone_sends_cancel_and_drops_the_late_result(fake):
    pending = []

    def on_submit(conn, job_id, script, timeout_ms, memory_mb):
        pending.append((conn, job_id))

    f, gw = fake(on_submit)
    import socket
    body = b'{"script": "x"}'
    s = socket.create_connection((gw.host, gw.port))
    s.sendall(b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    wait_for(lambda: pending, 20, what="the job to arrive")
    s.close()
    conn, job_id = pending[0]
    wait_for(lambda: job_id in f.cancels, 20, what="the CANCEL")
    conn.send(result_frame(job_id, "cancelled", message="Job cancelled"))
    time.sleep(0.2)
    assert "not in flight" not in gw.log()
    m = requests.get(gw.url + "/metrics", timeout=TIMEOUT).text
    assert 'pyexec_executions_total{verdict="cancelled"} 1' in m
    assert "pyexec_jobs_in_flight 0" in m


def test_stray_answer_ignored(fake):
    def on_submit(conn, job_id, script, timeout_ms, memory_mb):
        conn.send(result_frame(job_id + 1000, "ok", result="2"))
        conn.send(result_frame(job_id, "ok", result="1"))

    _, gw = fake(on_submit)
    assert post(gw).json() == {"result": 1, "stdout": ""}
    wait_for(lambda: "not in flight" in gw.log(), 10, what="the stray to be logged")


@pytest.mark.parametrize("bad", ["magic", "type", "payload", "conn_error"])
def test_misbehaving_peer_dropped_and_reconnected(fake, bad):
    state = {"n": 0}

    def on_submit(conn, job_id, script, timeout_ms, memory_mb):
        state["n"] += 1
        if state["n"] > 1:
            conn.send(result_frame(job_id, "ok", result="1"))
        elif bad == "magic":
            conn.send(b"XXXX" + b"\0" * 20)
        elif bad == "type":
            conn.send(pxclient.frame(pxclient.SUBMIT, job_id, b"\0" * 16))
        elif bad == "payload":
            conn.send(pxclient.frame(pxclient.RESULT, job_id, b"\0" * 10))
        else:
            conn.send(error_frame(0, pxclient.E_PROTOCOL, "malformed message"))

    f, gw = fake(on_submit)
    r = post(gw)
    assert r.status_code == 503
    assert r.json() == {"error": "The sandbox went away, retry later"}
    wait_for(lambda: f.accepted >= 2, 20, what="the gateway to reconnect")
    wait_for(lambda: post(gw).status_code == 200, 20, interval=0.1, what="jobs to work again")
    assert "lost sandboxd" in gw.log()


def test_health_not_ready(fake):
    _, gw = fake(answer(lambda j, s: b""), lambda c, j: c.send(pong_frame(j, 0, "shutting down")))
    r = requests.get(gw.url + "/health", timeout=TIMEOUT)
    assert r.status_code == 503
    assert r.text == '{"status": "unhealthy", "reason": "sandboxd is not ready: shutting down"}\n'


def test_health_no_answer(fake):
    _, gw = fake(answer(lambda j, s: b""), lambda c, j: None, "--health-timeout-ms", "500")
    t0 = time.monotonic()
    r = requests.get(gw.url + "/health", timeout=TIMEOUT)
    assert time.monotonic() - t0 < 5
    assert r.status_code == 503
    assert r.json() == {"status": "unhealthy",
                        "reason": "sandboxd did not answer within 500 ms"}
    assert r.headers["Retry-After"] == "1"


def test_sandbox_drop_answers_all_in_flight(fake):
    pending = []

    def on_submit(conn, job_id, script, timeout_ms, memory_mb):
        pending.append(job_id)

    f, gw = fake(on_submit)
    with concurrent.futures.ThreadPoolExecutor(5) as ex:
        futs = [ex.submit(post, gw) for _ in range(5)]
        wait_for(lambda: len(pending) == 5, 20, what="5 jobs in flight")
        t0 = time.monotonic()
        f.drop_all()
        statuses = [fu.result(TIMEOUT).status_code for fu in futs]
    assert statuses == [503] * 5
    assert time.monotonic() - t0 < 3
    assert "5 requests answered 503" in gw.log()


def test_peer_that_closes_at_once_is_reported_once(start_gateway):
    """sandboxd closes connections from accounts it does not serve, without a word: the
    gateway keeps retrying with a backoff but says so once, not once per retry."""
    f = FakeSandbox(None, close_at_once=True)
    try:
        gw = start_gateway(f.socket)
        wait_for(lambda: f.accepted >= 4, 30, what="a few retries")
        assert gw.log().count("lost sandboxd") == 1
        assert "--gateway-user" in gw.log()
        r = post(gw)
        assert r.status_code == 503
        # Almost always between two attempts; rarely in the instant a connection is open.
        assert r.json()["error"] in ("The sandbox is unavailable, retry later",
                                     "The sandbox went away, retry later")
    finally:
        f.cleanup()


def test_frame_split_after_a_large_result(fake):
    """One read brings a whole ~2 MiB RESULT and the first 30 bytes of the next frame (a
    complete header, part of its payload); the rest comes later. The gateway must size its
    wait from that valid header and answer both jobs (review finding C1: the header of a
    partial frame was left unwritten and the read watermark came from stack garbage, so the
    gateway never read from sandboxd again)."""
    pending = []

    def on_submit(conn, job_id, script, timeout_ms, memory_mb):
        pending.append(job_id)
        if len(pending) == 2:
            big = result_frame(pending[0], "ok", result=json.dumps("x" * (2 << 20)))
            small = result_frame(pending[1], "ok", result="2")
            assert len(small) > 30 > pxclient.HDR.size
            conn.send(big + small[:30])
            time.sleep(0.3)
            conn.send(small[30:])

    _, gw = fake(on_submit)
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        a = ex.submit(requests.post, gw.url + "/execute", json={"script": "first"}, timeout=10)
        wait_for(lambda: len(pending) == 1, 20, what="the first job")
        b = ex.submit(requests.post, gw.url + "/execute", json={"script": "second"}, timeout=10)
        ra, rb = a.result(TIMEOUT), b.result(TIMEOUT)
    assert ra.status_code == 200
    assert len(ra.json()["result"]) == 2 << 20
    assert rb.status_code == 200
    assert rb.json() == {"result": 2, "stdout": ""}


# ---- a sandboxd that does not answer (review finding M1) -------------------------------------

def test_job_never_answered_is_504_and_cancelled(fake):
    """A job not answered within its limit plus --answer-grace-ms of its start: 504, and a
    CANCEL goes to sandboxd; a RESULT that still comes later is dropped quietly."""
    pending = []
    f, gw = fake(lambda conn, job_id, *a: pending.append((conn, job_id)), None,
                 "--answer-grace-ms", "700")
    t0 = time.monotonic()
    r = post(gw, timeout_ms=300)
    elapsed = time.monotonic() - t0
    assert r.status_code == 504, r.text
    assert r.json() == {"error": "sandboxd did not answer in time"}
    assert 0.9 < elapsed < 5, elapsed
    conn, job_id = pending[0]
    wait_for(lambda: job_id in f.cancels, 10, what="the CANCEL")
    conn.send(result_frame(job_id, "cancelled", message="Job cancelled"))
    time.sleep(0.2)
    assert "not in flight" not in gw.log()
    assert "504 verdict=no_answer" in gw.log()
    # The connection to sandboxd is fine: the next job is served.
    f.on_submit = answer(lambda j, s: result_frame(j, "ok", result="1"))
    assert post(gw).json() == {"result": 1, "stdout": ""}


def test_job_and_its_cancel_never_answered(fake):
    f, gw = fake(lambda *a: None, None, "--answer-grace-ms", "300")
    assert post(gw, timeout_ms=100).status_code == 504
    wait_for(lambda: "not even its cancellation; forgotten" in gw.log(), 10,
             what="the job to be given up")
    m = requests.get(gw.url + "/metrics", timeout=TIMEOUT).text
    assert "pyexec_jobs_in_flight 0" in m


def test_queued_job_gets_its_deadline_when_it_may_start(fake):
    """sandboxd runs one job at a time here: the second job waits behind the first for longer
    than its own limit plus the grace, and must not be given up for that."""
    held = []

    def on_submit(conn, job_id, script, timeout_ms, memory_mb):
        held.append(job_id)
        if len(held) == 2:
            threading.Thread(target=finish, args=(conn,), daemon=True).start()

    def finish(conn):
        time.sleep(1.5)
        conn.send(result_frame(held[0], "ok", result="1"))
        time.sleep(0.2)
        conn.send(result_frame(held[1], "ok", result="2"))

    _, gw = fake(on_submit, lambda c, j: c.send(pong_frame(j, max_running=1)),
                 "--answer-grace-ms", "500")
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        a = ex.submit(post, gw, "first", timeout_ms=1500)
        wait_for(lambda: len(held) == 1, 20, what="the first job")
        b = ex.submit(post, gw, "second", timeout_ms=200)
        assert a.result(TIMEOUT).json() == {"result": 1, "stdout": ""}
        assert b.result(TIMEOUT).json() == {"result": 2, "stdout": ""}


def test_silent_sandboxd_is_lost(fake):
    """Connected but answering no status PING: after two intervals the connection counts as
    lost, the jobs in flight get 503 at once, and the gateway connects again."""
    state = {"silent": False}

    def on_ping(conn, job_id):
        if not state["silent"]:
            conn.send(pong_frame(job_id))

    f, gw = fake(lambda *a: None, on_ping, "--status-interval-ms", "300")
    state["silent"] = True
    t0 = time.monotonic()
    r = post(gw)
    assert r.status_code == 503
    assert r.json() == {"error": "The sandbox went away, retry later"}
    assert time.monotonic() - t0 < 3
    assert "answered none of 2 status requests" in gw.log()
    state["silent"] = False
    wait_for(lambda: f.accepted >= 2, 10, what="the gateway to reconnect")
    wait_for(lambda: requests.get(gw.url + "/health", timeout=TIMEOUT).status_code == 200, 10,
             interval=0.1, what="the gateway to be healthy again")


def test_upstream_buffer_is_capped(fake):
    """A sandboxd that stops reading: once --upstream-buffer bytes wait to be written to it,
    /execute answers 503 at once instead of buffering without end."""
    stuck = threading.Event()

    def on_submit(conn, job_id, script, timeout_ms, memory_mb):
        stuck.wait(60)  # stops reading the connection

    f, gw = fake(on_submit, None, "--upstream-buffer", str(2 << 20))
    big = "def main():\n    return 1\n#" + "x" * (900 << 10)
    try:
        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            futs = [ex.submit(post, gw, big) for _ in range(6)]
            busy = wait_for(lambda: [fu.result() for fu in futs if fu.done()], 20,
                            what="a refusal")
        assert busy[0].status_code == 503
        assert busy[0].json() == {"error": "Server busy: the execution queue is full, retry later"}
        assert "--upstream-buffer" in gw.log()
    finally:
        stuck.set()


# ---- clients that do not read their answers (review finding M2) ------------------------------

def big_or_small(j, s):
    return result_frame(j, "ok", result=json.dumps("x" * (8 << 20)) if s == b"big" else "1")


def slow_reader(gw, script):
    """A client that sent its request and reads its answer hardly at all."""
    import socket
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((gw.host, gw.port))
    body = json.dumps({"script": script}).encode()
    s.sendall(b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    return s


def queued_answer_bytes(gw):
    m = requests.get(gw.url + "/metrics", timeout=TIMEOUT).text
    return int(m.split("\npyexec_http_answer_bytes_queued ")[1].split()[0])


def test_answer_not_read_in_time_is_cut_off(fake):
    """Reading a trickle keeps every single write making progress; the whole answer still has
    to be read within --answer-timeout-ms."""
    _, gw = fake(answer(big_or_small), None, "--answer-timeout-ms", "1500")
    s = slow_reader(gw, "big")
    # The clock starts with the answer's first bytes: building 8 MiB of JSON is not what is
    # timed (and takes seconds under valgrind, GATEWAYD_WRAPPER).
    s.settimeout(30 * harness.SLOW)
    got = len(s.recv(1024))
    t0 = time.monotonic()
    s.settimeout(1)
    try:
        while time.monotonic() - t0 < 20:
            chunk = s.recv(1024)
            if not chunk:
                break
            got += len(chunk)
            time.sleep(0.2)
    except ConnectionResetError:
        pass
    elapsed = time.monotonic() - t0
    s.close()
    assert elapsed < 10, f"still open after {elapsed:.1f} s"
    assert got < 8 << 20
    assert "did not read its answer in 1500 ms" in gw.log()
    wait_for(lambda: queued_answer_bytes(gw) == 0, 10, what="the answer's memory to be freed")


def test_answer_budget(fake):
    """Answers waiting for slow readers count against --answer-budget: past it, new jobs get
    503 at once; once the reader goes, jobs are served again."""
    _, gw = fake(answer(big_or_small), None, "--answer-budget", str(1 << 20))
    s = slow_reader(gw, "big")
    try:
        wait_for(lambda: queued_answer_bytes(gw) > 1 << 20, 20, what="the answer to be queued")
        r = post(gw)
        assert r.status_code == 503
        assert r.json() == {"error": "Server busy: too many answers wait to be read, retry later"}
        assert r.headers["Retry-After"] == "1"
    finally:
        s.close()
    wait_for(lambda: queued_answer_bytes(gw) == 0, 20, what="the budget to be freed")
    assert post(gw).json() == {"result": 1, "stdout": ""}
