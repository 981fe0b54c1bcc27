"""Fixtures of the hostile suite: one real sandboxd (short wall-clock limit, a secret in its
environment) and one real gatewayd in front of it per test file (see hostile.py).

When the host cannot run the suite (not root, no namespaces, no pyexec account), the session
exits with status 77, which ctest reports as skipped, after printing why.
"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import hostile  # noqa: E402
from hostile import harness  # noqa: E402

_all = []  # the daemons of this session, for the failure report


def pytest_sessionstart(session):
    harness.exit_unless_runnable("the hostile suite cannot run here: ")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    harness.mark_logs(item, _all)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed attack shows what each daemon logged meanwhile."""
    outcome = yield
    harness.attach_logs(item, outcome.get_result(), _all)


@pytest.fixture(scope="session")
def svc():
    """sandboxd (4 jobs at once, JOB_TIMEOUT_MS) and gatewayd with the same cap, both with
    SECRET_NAME in their environment."""
    sb = harness.Sandbox("--timeout-ms", str(hostile.JOB_TIMEOUT_MS), max_running=4)
    sb.env[hostile.SECRET_NAME] = hostile.SECRET_VALUE
    _all.append(sb)
    gw = None
    try:
        sb.start()
        gw = harness.Gateway(sb.socket, "--timeout-ms", str(hostile.JOB_TIMEOUT_MS),
                             env={hostile.SECRET_NAME: hostile.SECRET_VALUE})
        _all.append(gw)
        gw.start()
        gw.wait_connected()
        yield hostile.Service(sb, gw)
    finally:
        if gw is not None:
            gw.cleanup()
        sb.cleanup()
