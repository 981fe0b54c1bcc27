#!/usr/bin/python3
"""The HTTP API end to end, warm path against cold path, in one run: figures to read, not a
timed test (nothing about speed is asserted).

Starts two services (tests/gateway/harness.py: SANDBOXD, GATEWAYD, PYEXEC_RUNNER from the
environment), each a real sandboxd and gatewayd on loopback: "warm" (the default: a zygote
with numpy and pandas loaded, one pre-forked, fresh jail per job) and "cold" (--warm-spares 0:
a fresh interpreter exec'ed per job). For the seed's hello-world and numpy+pandas scripts, and
each service, it prints:

  p50, p99     round trip at low load: one request at a time on a keep-alive connection,
               PACE_S apart (sent -> read)
  jobs/s @N    completed requests per second with N clients at once (N = 1, 2, 8)
  CPU ms/job   CPU time of the whole machine (all cores, kernel included) per job at N = 8,
               minus this client's own
  MB/job       extra memory (PSS, all of the service's job-side processes) per concurrent job,
               8 jobs held alive at once, against the idle service

then the warm/cold ratios, and the time from starting the warm service to its first numpy+pandas
answer. The client is a few lines of raw HTTP/1.1 (keep-alive), so that on a small machine the
load generator costs little next to what it measures. Exits 1 if any answer is not the
documented body, 77 if the host cannot run the daemons.
"""
import json
import os
import re
import socket
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "gateway"))
sys.path.insert(0, os.path.join(HERE, ".."))  # tests/seed.py

import harness  # noqa: E402
import seed  # noqa: E402
from hostview import warm_pids, host_procs  # noqa: E402

HELLO = seed.HELLO
HELLO_BODY = (seed.HELLO_REPLY + "\n").encode()
PANDAS = seed.PANDAS
PANDAS_BODY = (seed.PANDAS_REPLY + "\n").encode()

PANDAS_HOLD = PANDAS.replace('    return {', '    import time\n    time.sleep(HOLD)\n    return {')

N_LATENCY = int(os.environ.get("BENCH_LATENCY_N", "200"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
LEVELS = (1, 2, 8)
HOLD_S = 2.0
PACE_S = float(os.environ.get("BENCH_PACE_S", "0.05"))  # 20 requests/s: low load


class Client:
    """One keep-alive HTTP/1.1 connection; post() returns (status, body)."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    @staticmethod
    def request(script):
        body = json.dumps({"script": script}).encode()
        return (b"POST /execute HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)) + body

    def post(self, req):
        self.sock.sendall(req)
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        n = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
        self.buf = rest
        while len(self.buf) < n:
            self._more()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, body

    def _more(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the gateway closed the connection")
        self.buf += chunk

    def close(self):
        self.sock.close()


def cpu_busy_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]  # all but idle and iowait


def pct(xs, q):
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1] if len(xs) > 1 else xs[0]


class Service:
    def __init__(self, name, *flags):
        self.name = name
        self.sbx = harness.Sandbox(*flags, max_running=8)
        self.gw = None

    def start(self):
        t0 = time.monotonic()
        self.sbx.start(wait=False)
        self.gw = harness.Gateway(self.sbx.socket).start()
        # The first numpy+pandas answer after start: while the zygote boots, jobs run cold.
        first = None
        while first is None:
            try:
                c = Client(self.gw.host, self.gw.port)
                if c.post(Client.request(PANDAS)) == (200, PANDAS_BODY):
                    first = (time.monotonic() - t0) * 1000
                c.close()
            except (ConnectionError, OSError):
                pass
            if first is None:
                time.sleep(0.01)
        self.first_ms = first
        self.sbx.wait_ready()
        if self.name == "warm":
            wait_for_spares(self.sbx)
        return self

    def stop(self):
        if self.gw:
            self.gw.cleanup()
        self.sbx.cleanup()


def wait_for_spares(sbx, n=4, timeout=60):
    harness.wait_for(lambda: len(warm_pids(sbx.pid, *sbx.uid_range)) >= n + 1, timeout,
                     what="the warm service's spares")


def latency(svc, req, want, bad, n):
    c = Client(svc.gw.host, svc.gw.port)
    rtt = []
    for i in range(n + 5):
        time.sleep(PACE_S)
        t0 = time.perf_counter()
        got = c.post(req)
        if i >= 5:  # the first few warm the caches
            rtt.append((time.perf_counter() - t0) * 1000)
        if got != (200, want):
            bad.append(got)
    c.close()
    return pct(rtt, 50), pct(rtt, 99)


def throughput(svc, req, want, n, bad):
    clients = [Client(svc.gw.host, svc.gw.port) for _ in range(n)]
    done = [0] * n
    stop = threading.Event()

    def work(i):
        while not stop.is_set():
            got = clients[i].post(req)
            if got != (200, want):
                bad.append(got)
            done[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    ru0, busy0, t0 = os.times(), cpu_busy_ticks(), time.monotonic()
    for t in threads:
        t.start()
    time.sleep(SECONDS)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    ru1, busy1 = os.times(), cpu_busy_ticks()
    for c in clients:
        c.close()
    jobs = sum(done)
    hz = os.sysconf("SC_CLK_TCK")
    own = (ru1.user - ru0.user + ru1.system - ru0.system) * 1000
    cpu_ms = ((busy1 - busy0) * 1000 / hz - own) / max(jobs, 1)
    return jobs / elapsed, cpu_ms


def pss_kb(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def service_pids(svc):
    lo, hi = svc.sbx.uid_range
    return {p[0] for p in host_procs(lo, hi)} | warm_pids(svc.sbx.pid, lo, hi)


def memory_per_job(svc, n=8):
    if svc.name == "warm":
        wait_for_spares(svc.sbx)
    idle = pss_kb(service_pids(svc))
    req = Client.request(PANDAS_HOLD.replace("HOLD", str(HOLD_S)))
    clients = [Client(svc.gw.host, svc.gw.port) for _ in range(n)]
    threads = [threading.Thread(target=c.post, args=(req,)) for c in clients]
    for t in threads:
        t.start()
    lo, hi = svc.sbx.uid_range
    # Once all n jobs have run their script and sleep (each is then one process).
    harness.wait_for(lambda: len([p for p in host_procs(lo, hi, svc.sbx.pid, grace=0)
                                  if p[3].startswith("S")]) >= n, 60, interval=0.02,
                     what=f"{n} jobs at once")
    time.sleep(0.3)
    busy = pss_kb(service_pids(svc))
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    return (busy - idle) / n / 1024


def fork_floor():
    """The figures of fork_floor.py (same machine, same script, same seconds), or None."""
    import subprocess
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".py") as f:
        f.write(PANDAS)
        f.flush()
        p = subprocess.run(["/usr/bin/python3", "-I", os.path.join(HERE, "fork_floor.py"),
                            str(SECONDS), f.name], capture_output=True, text=True, timeout=120)
    try:
        out = json.loads(p.stdout)
    except ValueError:
        out = None
    if p.returncode != 0 or not out or not out["ok"]:
        print(f"fork_floor.py failed ({p.returncode}): {p.stdout[-300:]} {p.stderr[-300:]}")
        return None
    return out


def main():
    reason = harness.skip_reason()
    if reason:
        print(f"SKIPPED: {reason}")
        return 77
    missing = harness.missing_binaries()
    if missing:
        print(f"ERROR: not built: {', '.join(missing)}")
        return 1
    print(f"machine: {os.cpu_count()} CPUs, {os.uname().release}; latency: {N_LATENCY} "
          f"requests {PACE_S * 1000:.0f} ms apart; throughput: {SECONDS:.0f} s per level")
    bad, rows, first = [], {}, {}
    for mode, flags in (("warm", ()), ("cold", ("--warm-spares", "0"))):
        svc = Service(mode, *flags)
        try:
            svc.start()
            first[mode] = svc.first_ms
            for name, script, want in (("hello", HELLO, HELLO_BODY),
                                       ("pandas", PANDAS, PANDAS_BODY)):
                req = Client.request(script)
                # A cold pandas job takes about 0.25 s: fewer of them tell as much.
                n = N_LATENCY if (mode, name) != ("cold", "pandas") else N_LATENCY // 5
                p50, p99 = latency(svc, req, want, bad, n)
                rates, cpu = [], None
                for n in LEVELS:
                    rate, cpu_ms = throughput(svc, req, want, n, bad)
                    rates.append(rate)
                    cpu = cpu_ms  # the last level's (N = 8): the machine is busy
                rows[(name, mode)] = (p50, p99, *rates, cpu)
            rows[("pandas", mode)] += (memory_per_job(svc),)
        finally:
            svc.stop()

    hdr = ("script", "path", "p50 ms", "p99 ms") + tuple(f"jobs/s @{n}" for n in LEVELS) + \
        ("CPU ms/job", "MB/job")
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for (name, mode), v in rows.items():
        mem = f"{v[6]:.1f}" if len(v) > 6 else ""
        print(f"| {name} | {mode} | {v[0]:.1f} | {v[1]:.1f} | "
              + " | ".join(f"{x:.0f}" for x in v[2:5]) + f" | {v[5]:.1f} | {mem} |")
    for name in ("hello", "pandas"):
        w, c = rows[(name, "warm")], rows[(name, "cold")]
        print(f"{name}: warm/cold p50 {w[0] / c[0]:.3f}, p99 {w[1] / c[1]:.3f}, jobs/s @8 "
              f"{w[4] / c[4]:.1f}x, CPU per job {w[5] / c[5]:.3f}")
    print(f"pandas: memory per concurrent job warm {rows[('pandas', 'warm')][6]:.1f} MB, "
          f"cold {rows[('pandas', 'cold')][6]:.1f} MB")
    print(f"first numpy+pandas answer after start: warm service {first['warm']:.0f} ms, "
          f"cold service {first['cold']:.0f} ms")
    floor = fork_floor()
    if floor:
        w = rows[("pandas", "warm")]
        print(f"pandas: the kernel's floor on this machine (fork_floor.py: a plain fork of a "
              f"numpy+pandas interpreter per job, no jail, no daemons): {floor['jobs_s']:.0f} jobs/s, "
              f"{floor['cpu_ms']:.1f} CPU ms/job; the warm path reaches {w[4] / floor['jobs_s']:.0%} "
              f"of it at {w[5]:.1f} CPU ms/job")
    else:
        bad.append("fork_floor.py failed")
    if bad:
        print(f"FAILED: {len(bad)} answers were not the documented body: {bad[:5]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
