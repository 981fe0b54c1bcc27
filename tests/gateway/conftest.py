"""Fixtures of the gateway tests: a real sandboxd and a real gatewayd (see harness.py), and
real clients (python3-requests, curl).

When the host cannot run the suite (not root, no namespaces, no pyexec account), the session
exits with status 77, which ctest reports as skipped, after printing why.
"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # tests/seed.py, the SEED examples

import harness  # noqa: E402

_all = []  # every daemon started in this session, for the failure report


def pytest_sessionstart(session):
    harness.exit_unless_runnable()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    harness.mark_logs(item, _all)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test shows what every daemon logged meanwhile."""
    outcome = yield
    harness.attach_logs(item, outcome.get_result(), _all)


def _track(d):
    _all.append(d)
    return d


@pytest.fixture(scope="session")
def sandbox():
    """The session's sandboxd: 4 jobs at once, default limits."""
    d = _track(harness.Sandbox(max_running=4))
    try:
        d.start()
        yield d
    finally:
        d.cleanup()


@pytest.fixture(scope="session")
def gateway(sandbox):
    """The session's gatewayd in front of `sandbox`, default settings."""
    g = _track(harness.Gateway(sandbox.socket))
    try:
        g.start()
        g.wait_connected()
        yield g
    finally:
        rc = g.stop()
        g.cleanup()  # raises first when GATEWAYD_WRAPPER found errors
    assert rc == 0, f"gatewayd exited with {rc} on SIGTERM"


@pytest.fixture
def url(gateway):
    return gateway.url


@pytest.fixture
def start_sandbox():
    """Starts extra sandboxds; each is stopped at the end of the test."""
    started = []

    def _start(*flags, wait=True, **kw):
        d = _track(harness.Sandbox(*flags, **kw))
        started.append(d)
        return d.start(wait=wait)

    yield _start
    for d in started:
        d.cleanup()


@pytest.fixture
def start_gateway():
    """Starts extra gatewayds: start_gateway(socket_path, *flags, env=..., wait=True)."""
    started = []

    def _start(socket_path, *flags, wait=True, **kw):
        g = _track(harness.Gateway(socket_path, *flags, **kw))
        started.append(g)
        return g.start(wait=wait)

    yield _start
    _cleanup_all(started)


def _cleanup_all(gateways):
    """Stops every gateway, then fails with every wrapper report (GATEWAYD_WRAPPER) at once."""
    problems = []
    for g in gateways:
        try:
            g.cleanup()
        except AssertionError as e:
            problems.append(str(e))
    assert not problems, "\n".join(problems)
