"""The host's view of the daemons under test, shared by the integration and gateway suites:
polling for a condition, and reading a process's /proc status."""
import time


def wait_for(cond, timeout, interval=0.05, what="condition"):
    """Polls cond() until it returns a true value; returns it, or fails after timeout."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def read_status(pid):
    """Fields of /proc/PID/status as a dict, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return None
    st = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        st[k] = v.strip()
    return st
