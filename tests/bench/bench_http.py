#!/usr/bin/python3
"""Latency of the HTTP API end to end: figures to read, not a timed test.

Starts its own sandboxd and gatewayd (tests/gateway/harness.py: SANDBOXD, GATEWAYD,
PYEXEC_RUNNER from the environment) and sends, one request at a time on one keep-alive
connection (python3-requests), as a client would:
  - 100 requests with the seed's hello-world script;
  - 30 requests with the seed's numpy + pandas script.
Prints mean, median, p99 and max of the round trip (request sent to body read), and the median
of sandboxd's own wall time (X-Pyexec-Wall-Ms). Exits 1 if any answer is not the documented
body, 77 if the host cannot run the daemons, else 0; nothing about speed is asserted.
"""
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "gateway"))

import harness  # noqa: E402

HELLO = "def main():\n    return {'message': 'Hello, World!'}"
HELLO_BODY = '{"result": {"message": "Hello, World!"}, "stdout": ""}\n'
PANDAS = """import numpy as np
import pandas as pd

def main():
    # Create a simple dataset
    data = pd.DataFrame({
        'numbers': [1, 2, 3, 4, 5],
        'squares': [1, 4, 9, 16, 25]
    })

    # Calculate mean using numpy
    mean_value = np.mean(data['numbers'])

    return {
        "mean": mean_value,
        "data_shape": data.shape,
        "total_records": len(data)
    }
"""
PANDAS_BODY = '{"result": {"mean": 3.0, "data_shape": [5, 2], "total_records": 5}, "stdout": ""}\n'


def measure(session, url, script, want, n):
    rtt, wall, bad = [], [], []
    for _ in range(n):
        t0 = time.perf_counter()
        r = session.post(url + "/execute", json={"script": script}, timeout=120)
        body = r.text
        rtt.append((time.perf_counter() - t0) * 1000)
        wall.append(int(r.headers.get("X-Pyexec-Wall-Ms", "0")))
        if r.status_code != 200 or body != want:
            bad.append((r.status_code, body[:200]))
    return rtt, wall, bad


def p99(xs):
    return statistics.quantiles(xs, n=100, method="inclusive")[98]


def report(name, rtt, wall):
    print(f"{name} over HTTP: {len(rtt)} requests, mean {statistics.mean(rtt):.1f} ms, "
          f"median {statistics.median(rtt):.1f} ms, p99 {p99(rtt):.1f} ms, "
          f"max {max(rtt):.1f} ms; sandboxd wall_ms median {statistics.median(wall):.0f} ms")


def main():
    reason = harness.skip_reason()
    if reason:
        print(f"SKIPPED: {reason}")
        return 77
    missing = harness.missing_binaries()
    if missing:
        print(f"ERROR: not built: {', '.join(missing)}")
        return 1
    import requests

    sbx = harness.Sandbox(max_running=2)
    gw = None
    bad = []
    try:
        sbx.start()
        gw = harness.Gateway(sbx.socket).start()
        gw.wait_connected()
        with requests.Session() as s:
            measure(s, gw.url, HELLO, HELLO_BODY, 3)  # warm the page cache; not counted
            rtt, wall, b = measure(s, gw.url, HELLO, HELLO_BODY, 100)
            bad += b
            report("hello world", rtt, wall)
            measure(s, gw.url, PANDAS, PANDAS_BODY, 2)
            rtt, wall, b = measure(s, gw.url, PANDAS, PANDAS_BODY, 30)
            bad += b
            report("numpy + pandas", rtt, wall)
    finally:
        if gw:
            gw.cleanup()
        sbx.cleanup()
    if bad:
        print(f"FAILED: {len(bad)} answers were not the documented body: {bad[:5]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
