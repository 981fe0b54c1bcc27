#!/usr/bin/python3
"""Soak: thousands of mixed jobs through a real gatewayd and sandboxd, then count what is left.

Starts its own sandboxd and gatewayd (tests/gateway/harness.py; SANDBOXD, GATEWAYD,
PYEXEC_RUNNER from the environment) and sends --jobs requests (default $SOAK_JOBS, else 10000)
from --concurrency client threads (default 16), each on its own keep-alive HTTP connection
over loopback, as real clients would. The jobs are a fixed shuffle of:

  hello    the seed's "Simple Return" example          200, exact body
  print    the seed's "With Print Statements" example  200, exact body with its stdout
  pandas   the seed's numpy + pandas example           200, exact body
  error    1 / 0 in main()                             400, "Script execution error: division by
                                                       zero"
  timeout  sleeps past its timeout_ms of 1000        400, "Script execution timed out"
  oom      allocates without end, memory_mb 64         400, "Script exceeded the memory limit
                                                       (64 MiB)"

Timeouts sleep rather than spin, and ask for a short limit (timeout_ms 1000, $SOAK_JOB_TIMEOUT_MS),
so each costs a slot for a second and no CPU. Both daemons run with a lower --timeout-ms than
the default 30 s (10 s, $SOAK_TIMEOUT_MS), so a job that hangs costs little too; it stays well
above what the other jobs need, since on a shared host a starved numpy + pandas import can take
seconds (a 2 s limit for every job timed some of them out under a load average of 26). Asserted:
  - no request is lost: every one gets an HTTP answer (no reset, no client timeout);
  - every answer is the exact status, body and X-Pyexec-Verdict of its kind;
  - a 503 comes only when the service is saturated (more clients than sandboxd's running
    slots plus its queue) and then says "busy" with a Retry-After; the client retries it
    (counted, reported). With the defaults nothing is saturated, so no 503 at all;
  - the three counts agree: the client's answers, gatewayd's /metrics, sandboxd's job log;
  - afterwards nothing leaked, in either daemon (tests/soak/census.py): fds, job cgroups,
    mounts, job processes, children, the jail mount point;
  - both daemons are still healthy and stop cleanly on SIGTERM.
Prints jobs, jobs/s, p50/p99 round trip per kind, the 503 count and the before/after census.
Exits 0, 1 on any failure, 77 when the host cannot run the daemons.
"""
import argparse
import http.client
import json
import os
import random
import re
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "gateway"))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))  # tests/seed.py

import census  # noqa: E402
import harness  # noqa: E402
import seed  # noqa: E402

HELLO = seed.HELLO
PRINT = seed.PRINTS
PANDAS = seed.PANDAS
ERROR = "def main():\n    return 1 / 0\n"
TIMEOUT = "import time\n\ndef main():\n    time.sleep(3600)\n"
OOM = "def main():\n    hoard = []\n    while True:\n        hoard.append(bytearray(1 << 20))\n"


def body(obj):
    return json.dumps(obj) + "\n"


# kind: (weight, request, status, exact body, X-Pyexec-Verdict)
KINDS = {
    "hello": (70, {"script": HELLO}, 200,
              body({"result": {"message": "Hello, World!"}, "stdout": ""}), "ok"),
    "print": (5, {"script": PRINT}, 200,
              body({"result": {"processed": True, "items": 10},
                    "stdout": "This will appear in stdout\nProcessing data...\n"
                              "Processed 10 items\n"}), "ok"),
    "pandas": (5, {"script": PANDAS}, 200,
               body({"result": {"mean": 3.0, "data_shape": [5, 2], "total_records": 5},
                     "stdout": ""}), "ok"),
    "error": (14, {"script": ERROR}, 400,
              body({"error": "Script execution error: division by zero", "stdout": ""}), "error"),
    "timeout": (1, {"script": TIMEOUT, "timeout_ms": 1000}, 400,
                body({"error": "Script execution timed out", "stdout": ""}), "timeout"),
    "oom": (5, {"script": OOM, "memory_mb": 64}, 400,
            body({"error": "Script exceeded the memory limit (64 MiB)", "stdout": ""}), "oom"),
}
BUSY_BODIES = {
    body({"error": "Server busy: the execution queue is full, retry later"}),
    body({"error": "Server busy: too many answers wait to be read, retry later"}),
}
MAX_RETRIES = 100  # 503s in a row for one job before it counts as lost


def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v else default


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=env_int("SOAK_JOBS", 10000))
    p.add_argument("--concurrency", type=int, default=env_int("SOAK_CONCURRENCY", 16))
    p.add_argument("--max-running", type=int, default=env_int("SOAK_MAX_RUNNING", 4),
                   help="sandboxd --max-running")
    p.add_argument("--max-queued", type=int, default=env_int("SOAK_MAX_QUEUED", 256),
                   help="sandboxd --max-queued (below concurrency - max-running: saturated)")
    p.add_argument("--timeout-ms", type=int, default=env_int("SOAK_TIMEOUT_MS", 10000),
                   help="both daemons' --timeout-ms: the limit of every job")
    p.add_argument("--job-timeout-ms", type=int, default=env_int("SOAK_JOB_TIMEOUT_MS", 1000),
                   help="the timeout jobs' timeout_ms: what each of them costs")
    p.add_argument("--seed", type=int, default=env_int("SOAK_SEED", 6))
    return p.parse_args(argv)


def pct(xs, q):
    """The q-th percentile (nearest rank) of xs."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * len(s) + 0.5)) - 1))]


class Load:
    """The shared job list and everything the client threads record."""

    def __init__(self, jobs):
        self.jobs = jobs
        self.next = 0
        self.lock = threading.Lock()
        self.rtt = {k: [] for k in KINDS}   # ms, per kind
        self.wall = {k: [] for k in KINDS}  # sandboxd's X-Pyexec-Wall-Ms
        self.answered = 0                   # final answers, one per job
        self.http_answers = 0               # every HTTP answer to /execute, 503s included
        self.busy = []                      # (kind, body) of every 503
        self.wrong = []                     # (kind, status, verdict, body) not as expected
        self.lost = []                      # (kind, what) of jobs with no answer

    def take(self):
        with self.lock:
            if self.next >= len(self.jobs):
                return None
            self.next += 1
            return self.jobs[self.next - 1]


def worker(load, host, port, stop):
    conn = None
    try:
        while not stop.is_set():
            kind = load.take()
            if kind is None:
                return
            _, req, want_status, want_body, want_verdict = KINDS[kind]
            payload = json.dumps(req)
            for attempt in range(MAX_RETRIES + 1):
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=harness.DEFAULT_TIMEOUT)
                t0 = time.perf_counter()
                try:
                    conn.request("POST", "/execute", payload,
                                 {"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    text = resp.read().decode("utf-8", "replace")
                except (OSError, http.client.HTTPException) as e:
                    with load.lock:
                        load.lost.append((kind, repr(e)))
                    conn.close()
                    conn = None
                    break
                ms = (time.perf_counter() - t0) * 1000
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
                with load.lock:
                    load.http_answers += 1
                if resp.status == 503:
                    with load.lock:
                        load.busy.append((kind, text, resp.getheader("Retry-After")))
                    time.sleep(0.2 + random.random() * 0.3)
                    continue
                verdict = resp.getheader("X-Pyexec-Verdict")
                with load.lock:
                    load.answered += 1
                    if (resp.status, text, verdict) != (want_status, want_body, want_verdict):
                        load.wrong.append((kind, resp.status, verdict, text[:300]))
                    else:
                        load.rtt[kind].append(ms)
                        load.wall[kind].append(int(resp.getheader("X-Pyexec-Wall-Ms", "0")))
                break
            else:
                with load.lock:
                    load.lost.append((kind, f"{MAX_RETRIES + 1} answers 503 in a row"))
    except Exception as e:  # reported as a failure, with what the thread was doing
        with load.lock:
            load.lost.append(("worker", repr(e)))
    finally:
        if conn is not None:
            conn.close()


def metrics(gw):
    """gatewayd's /metrics: ({code: /execute answers}, {verdict: executions})."""
    c = http.client.HTTPConnection(gw.host, gw.port, timeout=60)
    try:
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
    finally:
        c.close()
    codes = {int(m.group(1)): int(m.group(2)) for m in re.finditer(
        r'^pyexec_http_requests_total\{route="/execute",code="(\d+)"\} (\d+)$', text, re.M)}
    verdicts = {m.group(1): int(m.group(2)) for m in re.finditer(
        r'^pyexec_executions_total\{verdict="(\w+)"\} (\d+)$', text, re.M)}
    return codes, verdicts


def sandboxd_verdicts(log_text):
    """Verdicts of the jobs sandboxd logged ("job N from pid P: VERDICT in ...")."""
    counts = {}
    for m in re.finditer(r": job \d+ from pid \d+: (\w+) in ", log_text):
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def quiesce(sbx, gw, idle, timeout=60):
    """Waits until the daemons are back to their idle counts, or the timeout: cleanup after the
    last answer (v1 cgroups stay busy briefly, the gateway sees closed connections) is not
    instant. Returns the last census."""
    end = time.monotonic() + timeout
    while True:
        c = census.Census(sbx, gw)
        if not c.leaks_since(idle) or time.monotonic() > end:
            return c
        time.sleep(0.25)


def get(gw, path, payload=None):
    c = http.client.HTTPConnection(gw.host, gw.port, timeout=harness.DEFAULT_TIMEOUT)
    try:
        if payload is None:
            c.request("GET", path)
        else:
            c.request("POST", path, json.dumps(payload), {"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def run(args):
    failures = []
    jobs = []
    weights = sum(w for w, *_ in KINDS.values())
    for kind, (w, *_) in KINDS.items():
        if kind != "hello":
            jobs += [kind] * max(1, round(args.jobs * w / weights))
    jobs += ["hello"] * max(1, args.jobs - len(jobs))  # hello makes up the rest
    random.Random(args.seed).shuffle(jobs)
    KINDS["timeout"][1]["timeout_ms"] = args.job_timeout_ms
    saturated = args.concurrency > args.max_running + args.max_queued

    sbx = harness.Sandbox("--timeout-ms", str(args.timeout_ms),
                          "--max-queued", str(args.max_queued), max_running=args.max_running)
    gw = None
    try:
        sbx.start()
        gw = harness.Gateway(sbx.socket, "--timeout-ms", str(args.timeout_ms)).start()
        gw.wait_connected()
        # One of each kind first: the daemons' first-use allocations are not leaks.
        for kind, (_, req, want_status, want_body, _v) in KINDS.items():
            st, text = get(gw, "/execute", req)
            if (st, text) != (want_status, want_body):
                failures.append(f"warm-up {kind}: {st} {text[:300]}")
        if failures:
            return failures
        before = quiesce(sbx, gw, census.Census(sbx, gw), timeout=5)
        if not before.parents:
            failures.append("cannot find sandboxd's cgroup parents: the cgroup count would be "
                            "vacuous")
        metrics0, verdicts0 = metrics(gw)
        log_mark = len(sbx.log())

        print(f"soak: {len(jobs)} jobs, {args.concurrency} clients, sandboxd --max-running "
              f"{args.max_running} --max-queued {args.max_queued} --timeout-ms {args.timeout_ms}"
              f", load average {os.getloadavg()[0]:.1f}"
              f" ({'saturated' if saturated else 'not saturated'}); mix: "
              + ", ".join(f"{k} {jobs.count(k)}" for k in KINDS), flush=True)
        load = Load(jobs)
        stop = threading.Event()
        threads = [threading.Thread(target=worker, args=(load, gw.host, gw.port, stop),
                                    daemon=True) for _ in range(args.concurrency)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        last = t0
        while any(t.is_alive() for t in threads):
            time.sleep(0.5)
            now = time.monotonic()
            if now - last >= 15:
                last = now
                print(f"  {load.answered} answered after {now - t0:.0f} s "
                      f"({load.answered / (now - t0):.1f} jobs/s), {len(load.busy)} 503s",
                      flush=True)
            if not sbx.alive() or not gw.alive():
                stop.set()
                failures.append("a daemon died during the soak")
                break
        for t in threads:
            t.join(harness.DEFAULT_TIMEOUT)
        elapsed = time.monotonic() - t0

        # ---- figures
        print(f"soak: {load.answered} of {len(jobs)} jobs answered in {elapsed:.1f} s: "
              f"{load.answered / elapsed:.1f} jobs/s; {len(load.busy)} answers 503 "
              f"(retried); {len(load.wrong)} wrong, {len(load.lost)} lost; load average "
              f"{os.getloadavg()[0]:.1f}")
        print(f"  {'kind':8} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
              f"{'wall p50':>9} {'wall max':>9}")
        for k in KINDS:
            xs = load.rtt[k]
            if xs:
                print(f"  {k:8} {len(xs):6d} {pct(xs, 50):8.0f} {pct(xs, 99):8.0f} "
                      f"{max(xs):8.0f} {pct(load.wall[k], 50):9.0f} {max(load.wall[k]):9.0f}")

        # ---- what the clients saw
        if load.lost:
            failures.append(f"{len(load.lost)} requests lost: {load.lost[:5]}")
        if load.wrong:
            failures.append(f"{len(load.wrong)} wrong answers: {load.wrong[:5]}")
        if load.answered != len(jobs) and not load.lost:
            failures.append(f"{load.answered} answers for {len(jobs)} jobs")
        bad_busy = [b for b in load.busy if b[1] not in BUSY_BODIES or not b[2]]
        if bad_busy:
            failures.append(f"503s that are not 'busy' with a Retry-After: {bad_busy[:5]}")
        if load.busy and not saturated:
            failures.append(f"{len(load.busy)} answers 503 although {args.concurrency} clients "
                            f"fit sandboxd's {args.max_running} slots and {args.max_queued} "
                            f"queue places: {load.busy[:3]}")

        # ---- the three counts agree
        metrics1, verdicts1 = metrics(gw)
        codes = {c: n - metrics0.get(c, 0) for c, n in metrics1.items() if n - metrics0.get(c, 0)}
        want_codes = {}
        for k in jobs:
            want_codes[KINDS[k][2]] = want_codes.get(KINDS[k][2], 0) + 1
        if load.busy:
            want_codes[503] = len(load.busy)
        if codes != want_codes:
            failures.append(f"gatewayd counted /execute answers {codes}, the clients {want_codes}")
        want_verdicts = {}
        for k in jobs:
            want_verdicts[KINDS[k][4]] = want_verdicts.get(KINDS[k][4], 0) + 1
        ran = {v: n - verdicts0.get(v, 0) for v, n in verdicts1.items() if n - verdicts0.get(v, 0)}
        if ran != want_verdicts:
            failures.append(f"gatewayd counted executions {ran}, expected {want_verdicts}")
        logged = sandboxd_verdicts(sbx.log()[log_mark:])
        if logged != want_verdicts:
            failures.append(f"sandboxd logged jobs {logged}, expected {want_verdicts}")
        print(f"  counted alike by the clients, gatewayd /metrics and sandboxd's log: "
              f"{'yes' if codes == want_codes and ran == want_verdicts == logged else 'NO'} "
              f"({', '.join(f'{v} {n}' for v, n in sorted(want_verdicts.items()))})")

        # ---- nothing left behind
        after = quiesce(sbx, gw, before)
        print("census (idle before the soak, idle after it):")
        census.print_census(before, after, out=lambda s: print("  " + s))
        failures += [f"leak: {b}" for b in after.leaks_since(before)]
        errors = [ln for ln in sbx.log()[log_mark:].splitlines() if ": error:" in ln]
        if errors:
            failures.append(f"sandboxd logged {len(errors)} errors: {errors[:5]}")
        st, text = get(gw, "/health")
        if (st, text) != (200, body({"status": "healthy"})):
            failures.append(f"/health after the soak: {st} {text}")
        st, text = get(gw, "/execute", {"script": HELLO})
        if (st, text) != (200, KINDS["hello"][3]):
            failures.append(f"a job after the soak: {st} {text}")
    finally:
        # The gateway first, as in production: it answers what is in flight, then sandboxd.
        rc = gw.stop() if gw else 0
        if rc != 0:
            failures.append(f"gatewayd exited with {rc} on SIGTERM")
        rc = sbx.stop()
        if rc != 0:
            failures.append(f"sandboxd exited with {rc} on SIGTERM")
        if failures:
            print("sandboxd log (tail):\n" + sbx.log()[-4000:])
            if gw:
                print("gatewayd log (tail):\n" + gw.log()[-4000:])
        if gw:
            gw.cleanup()
        sbx.cleanup()
    return failures


def main(argv=None):
    args = parse_args(argv)
    reason = harness.skip_reason()
    if reason:
        print(f"SKIPPED: {reason}")
        return 77
    missing = harness.missing_binaries()
    if missing:
        print(f"ERROR: not built: {', '.join(missing)}")
        return 1
    failures = run(args)
    for f in failures:
        print(f"FAILED: {f}")
    print("soak: " + ("FAILED" if failures else "passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
