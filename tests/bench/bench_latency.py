#!/usr/bin/python3
"""Per-job latency of sandboxd, measured by a client: figures to read, not a timed test.

Starts its own sandboxd (like the integration tests: SANDBOXD, PYEXEC_RUNNER from the
environment), then on one connection, one job at a time, as the gateway would:
  - 100 hello-world jobs: median, p90 and p99 of the round trip (SUBMIT sent to RESULT read),
    and the median of the daemon's own wall_ms;
  - 20 jobs importing numpy and pandas: the same.
Exits 1 if any job did not return ok, 77 if the host cannot run jobs, else 0; nothing about
speed is asserted.
"""
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import conftest  # noqa: E402  (the integration tests' daemon helper)

HELLO = "def main():\n    return {'message': 'Hello, World!'}\n"
PANDAS = """import numpy as np
import pandas as pd

def main():
    data = pd.DataFrame({'numbers': [1, 2, 3, 4, 5], 'squares': [1, 4, 9, 16, 25]})
    return {'mean': np.mean(data['numbers']), 'data_shape': data.shape,
            'total_records': len(data)}
"""


def measure(client, source, n, first_id):
    rtt, wall, bad = [], [], []
    for i in range(n):
        t0 = time.perf_counter()
        r = client.run(source, job_id=first_id + i)
        rtt.append((time.perf_counter() - t0) * 1000)
        wall.append(r["wall_ms"])
        if r["verdict"] != "ok":
            bad.append((r["verdict"], r["message"]))
    return rtt, wall, bad


def report(name, rtt, wall):
    q = statistics.quantiles(rtt, n=100, method="inclusive")
    print(f"{name}: {len(rtt)} jobs, round trip median {statistics.median(rtt):.1f} ms, "
          f"p90 {q[89]:.1f} ms, p99 {q[98]:.1f} ms, min {min(rtt):.1f} ms, "
          f"max {max(rtt):.1f} ms; daemon wall_ms median {statistics.median(wall):.0f} ms")


def main():
    reason = conftest._skip_reason()
    if reason:
        print(f"SKIPPED: {reason}")
        return 77
    d = conftest.Daemon(max_running=2)
    try:
        d.start()
        with d.client() as c:
            measure(c, HELLO, 3, 1)  # warm the page cache; not counted
            rtt, wall, bad_hello = measure(c, HELLO, 100, 100)
            report("hello world", rtt, wall)
            measure(c, PANDAS, 2, 300)
            rtt, wall, bad_pandas = measure(c, PANDAS, 20, 400)
            report("numpy + pandas", rtt, wall)
    finally:
        d.cleanup()
    bad = bad_hello + bad_pandas
    if bad:
        print(f"FAILED: {len(bad)} jobs did not return ok: {bad[:5]}")
        print(d.log()[-5000:])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
