"""Session set-up of the container test: podman, the base image, and the image built from the
Dockerfile. Slow the first time (debootstrap and apt-get in the build: a few minutes); the base
and the image's layers stay in podman's store, so later runs rebuild only what changed.

Exits with status 77, which ctest reports as skipped, after printing why, when the host cannot
run it: not root, podman not installable, or podman unable to start any container.
"""
import os
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # tests/seed.py

import ctharness as ct  # noqa: E402

STATE = {}


def _skip(reason):
    # ctest's SKIP_RETURN_CODE is 77; pytest has no exit status for "all skipped".
    sys.stdout.write(f"SKIPPED: {reason}\n")
    sys.stdout.flush()
    os._exit(77)


def pytest_sessionstart(session):
    reason = ct.skip_reason() or ct.ensure_packages()
    if reason:
        _skip(reason)
    t = time.monotonic()
    made = ct.ensure_base()
    ct.log(f"base image {ct.BASE}: {'made' if made else 'cached'} "
           f"({time.monotonic() - t:.1f} s)")
    try:
        STATE["extra"] = ct.probe_runtime()
    except RuntimeError as e:
        _skip(str(e))
    STATE["build_s"] = time.monotonic()
    ct.build_image(STATE["extra"])
    STATE["build_s"] = time.monotonic() - STATE["build_s"]
    command, source = ct.readme_run_command()
    STATE["flags"], STATE["image"] = ct.parse_run(command)
    ct.log(f"run flags from {source}: {' '.join(STATE['flags'])}")


@pytest.fixture(scope="session")
def extra():
    """Flags this host needs for any container (see ctharness.probe_runtime)."""
    return STATE["extra"]


@pytest.fixture(scope="session")
def flags():
    """The README's `docker run` flags, without -d, --name and -p."""
    return STATE["flags"]


@pytest.fixture(scope="module")
def service(flags, extra):
    """The image running with the README's flags."""
    c = ct.Container(flags, extra)
    try:
        took = c.wait_healthy()
        assert took is not None, f"not healthy: {c.state()}\n{c.logs()}"
        ct.log(f"container healthy {took:.1f} s after podman run")
        yield c
    finally:
        c.remove()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test shows what the container logged."""
    outcome = yield
    rep = outcome.get_result()
    svc = item.funcargs.get("service") if hasattr(item, "funcargs") else None
    if rep.failed and svc is not None:
        rep.sections.append((f"podman logs {svc.name}", svc.logs()[-15000:]))
