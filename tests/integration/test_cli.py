"""The pyexec CLI against a real sandboxd: the HTTP API's JSON body on stdout, exit statuses,
clear messages on stderr."""
import json
import os
import subprocess

import pytest

import seed
from conftest import CLI, GATEWAY_USER

pytestmark = pytest.mark.skipif(not os.access(CLI, os.X_OK), reason=f"no pyexec CLI at {CLI}")

HELLO = seed.HELLO
ERROR = 'def main():\n    raise ValueError("This is a test error")'


def cli(*args, stdin=None, user=None, group=None, env=None):
    return subprocess.run([CLI, *args], input=stdin.encode() if stdin is not None else None,
                          capture_output=True, timeout=120, user=user, group=group,
                          env=env if env is not None else {"PATH": "/usr/bin:/bin"})


def body(r):
    """The JSON on stdout: one object, one line, keys in the API's order."""
    text = r.stdout.decode()
    assert text.endswith("\n") and text.count("\n") == 1, text
    return json.loads(text, object_pairs_hook=lambda pairs: pairs)


@pytest.fixture
def hello_file(tmp_path):
    p = tmp_path / "hello.py"
    p.write_text(HELLO)
    return str(p)


def test_run_file_prints_result_and_stdout(daemon, hello_file):
    r = cli("--socket", daemon.socket, "run", hello_file)
    assert r.returncode == 0, r
    assert body(r) == [("result", [("message", "Hello, World!")]), ("stdout", "")]
    assert r.stderr == b""


def test_run_error_prints_error_and_fails(daemon, tmp_path):
    p = tmp_path / "error.py"
    p.write_text(ERROR)
    r = cli("--socket", daemon.socket, "run", str(p))
    assert r.returncode != 0
    assert body(r) == [("error", "Script execution error: This is a test error"), ("stdout", "")]


def test_run_stdin(daemon):
    src = 'def main():\n    print("Processing data...")\n    return [1, 2.5, None, "x"]\n'
    r = cli("--socket", daemon.socket, "run", "-", stdin=src)
    assert r.returncode == 0, r
    assert body(r) == [("result", [1, 2.5, None, "x"]), ("stdout", "Processing data...\n")]


def test_no_main_and_timeout(daemon):
    r = cli("--socket", daemon.socket, "run", "-", stdin="x = 1\n")
    assert r.returncode != 0
    assert body(r) == [("error", "Script must contain a main() function"), ("stdout", "")]
    r = cli("--socket", daemon.socket, "--timeout-ms", "1000", "run", "-",
            stdin="def main():\n    print('spinning')\n    while True:\n        pass\n")
    assert r.returncode != 0
    assert body(r) == [("error", "Script execution timed out"), ("stdout", "spinning\n")]


def test_socket_from_environment(daemon, hello_file):
    r = cli("run", hello_file, env={"PATH": "/usr/bin:/bin", "PYEXEC_SOCKET": daemon.socket})
    assert r.returncode == 0, r
    assert json.loads(r.stdout) == {"result": {"message": "Hello, World!"}, "stdout": ""}


def test_missing_socket(tmp_path, hello_file):
    missing = str(tmp_path / "no-such.sock")
    r = cli("--socket", missing, "run", hello_file)
    assert r.returncode not in (0, 1), r  # not a script outcome: the daemon was not reached
    assert r.stdout == b""
    err = r.stderr.decode()
    assert missing in err and "No such file or directory" in err, err


def test_access_denied(daemon):
    r = cli("--socket", daemon.socket, "run", "-", stdin=HELLO, user="nobody", group="nogroup")
    assert r.returncode not in (0, 1), r
    assert r.stdout == b""
    err = r.stderr.decode()
    assert f"cannot connect to {daemon.socket}: Permission denied" in err, err


def test_gateway_user_may_run(daemon):
    r = cli("--socket", daemon.socket, "run", "-", stdin=HELLO, user=GATEWAY_USER,
            group=GATEWAY_USER)
    assert r.returncode == 0, r
    assert json.loads(r.stdout) == {"result": {"message": "Hello, World!"}, "stdout": ""}


def test_missing_script_file(daemon, tmp_path):
    r = cli("--socket", daemon.socket, "run", str(tmp_path / "nope.py"))
    assert r.returncode not in (0, 1)
    assert r.stdout == b""
    assert "nope.py" in r.stderr.decode()


def test_help():
    r = cli("--help")
    assert r.returncode == 0
    out = r.stdout.decode()
    assert out.startswith("Usage: pyexec") and "run FILE|-" in out and "--socket" in out


def test_usage_errors():
    for args in ([], ["run"], ["run", "a", "b"], ["frobnicate"]):
        r = cli(*args)
        assert r.returncode not in (0, 1), (args, r)
        assert r.stdout == b"" and r.stderr, (args, r)
