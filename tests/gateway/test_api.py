"""The API beyond the seed's examples: every status and error text, the options, the response
headers, the body's encoding. Real gatewayd, real sandboxd, python3-requests."""
import json
import socket

import pytest
import requests

TIMEOUT = 120


def post(url, script, **extra):
    return requests.post(url + "/execute", json={"script": script, **extra}, timeout=TIMEOUT)


def post_raw(url, data, ctype="application/json", path="/execute"):
    headers = {"Content-Type": ctype} if ctype is not None else {}
    return requests.post(url + path, data=data, headers=headers, timeout=TIMEOUT)


def error_of(r, status):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert isinstance(body, dict) and "error" in body, body
    return body


# ---- 400: the request itself ------------------------------------------------------------------

@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded",
                                   "application/jsonx", "json", "application/json garbage"])
def test_content_type_must_be_json(url, ctype):
    r = post_raw(url, '{"script": "def main():\\n    return 1"}', ctype)
    assert error_of(r, 400) == {"error": "Request must be JSON"}


@pytest.mark.parametrize("ctype", ["application/json", "application/json; charset=utf-8",
                                   "Application/JSON;charset=UTF-8", "application/json ;charset=utf-8",
                                   "application/vnd.api+json"])
def test_content_type_variants_accepted(url, ctype):
    r = post_raw(url, '{"script": "def main():\\n    return 1"}', ctype)
    assert r.status_code == 200, r.text
    assert r.json() == {"result": 1, "stdout": ""}


@pytest.mark.parametrize("body", ["", "{", "[1, 2]", '"script"', "null", "42", "{'script': 1}",
                                  '{"script": "\xff"}', '{"script": "x"} trailing'])
def test_body_must_be_a_json_object(url, body):
    r = post_raw(url, body.encode("latin-1"))
    assert error_of(r, 400) == {"error": "Request must be JSON"}


def test_missing_script(url):
    assert error_of(post_raw(url, '{"code": "x"}'), 400) == {"error": "Missing 'script' field"}


@pytest.mark.parametrize("value", [1, None, True, ["def main(): pass"], {"a": 1}])
def test_script_not_a_string(url, value):
    r = post_raw(url, json.dumps({"script": value}))
    assert error_of(r, 400) == {"error": "'script' must be a string"}


def test_json_nested_too_deep(url):
    body = '{"script": "def main():\\n    return 1", "x": ' + "[" * 100 + "]" * 100 + "}"
    r = post_raw(url, body)
    assert error_of(r, 400) == {"error": "Request JSON is nested too deeply (over 64 levels)"}


def test_json_nesting_within_limit(url):
    body = '{"script": "def main():\\n    return 1", "x": ' + "[" * 60 + "]" * 60 + "}"
    assert post_raw(url, body).json() == {"result": 1, "stdout": ""}


def test_nul_in_script_is_a_script_error(url):
    """Decided: passed on, and CPython's own refusal comes back as a script error."""
    r = post(url, "def main():\n    return 1\n\x00\n")
    assert error_of(r, 400) == {
        "error": "Script execution error: source code string cannot contain null bytes",
        "stdout": ""}


# ---- per-request limits -----------------------------------------------------------------------

@pytest.mark.parametrize("key,value,lo,hi", [
    ("timeout_ms", 50, 100, 30000), ("timeout_ms", 30001, 100, 30000),
    ("timeout_ms", -1, 100, 30000), ("timeout_ms", 1000.0, 100, 30000),
    ("timeout_ms", "1000", 100, 30000), ("timeout_ms", True, 100, 30000),
    ("memory_mb", 16, 32, 512), ("memory_mb", 513, 32, 512), ("memory_mb", [64], 32, 512),
])
def test_limits_out_of_range_or_wrong_type(url, key, value, lo, hi):
    body = '{"script": "def main():\\n    return 1", "%s": %s}' % (key, json.dumps(value))
    r = post_raw(url, body)
    assert error_of(r, 400) == {"error": f"'{key}' must be an integer between {lo} and {hi}"}


def test_number_out_of_range(url):
    """Valid JSON that no value of the API accepts: jansson cannot hold it, so say that."""
    for big in ("1180591620717411303424", "1e400"):
        body = '{"script": "def main():\\n    return 1", "timeout_ms": %s}' % big
        assert error_of(post_raw(url, body), 400) == {
            "error": "Request JSON has a number out of range"}


def test_limits_within_caps(url):
    r = post(url, "def main():\n    return 1\n", timeout_ms=30000, memory_mb=512)
    assert r.json() == {"result": 1, "stdout": ""}
    r = post(url, "def main():\n    return 1\n", timeout_ms=None, memory_mb=None)
    assert r.json() == {"result": 1, "stdout": ""}


def test_timeout_ms_is_applied(url):
    r = post(url, "import time\ndef main():\n    time.sleep(5)\n    return 1\n", timeout_ms=500)
    assert error_of(r, 400) == {"error": "Script execution timed out", "stdout": ""}
    assert int(r.headers["X-Pyexec-Wall-Ms"]) < 4000


def test_memory_mb_is_applied(url):
    r = post(url, "def main():\n    b = bytearray(200 * 1024 * 1024)\n    return len(b)\n",
             memory_mb=64)
    body = error_of(r, 400)
    assert body["error"] in ("Script exceeded the memory limit (64 MiB)",
                             "Script execution error: MemoryError"), body
    assert r.headers["X-Pyexec-Verdict"] in ("oom", "error")


def test_stderr_only_when_asked(url):
    src = "import sys\ndef main():\n    print('out')\n    print('err', file=sys.stderr)\n    return 1\n"
    r = post(url, src)
    assert r.text == '{"result": 1, "stdout": "out\\n"}\n'
    r = post(url, src, stderr=True)
    assert r.text == '{"result": 1, "stdout": "out\\n", "stderr": "err\\n"}\n'
    r = post(url, src, stderr=False)
    assert r.json() == {"result": 1, "stdout": "out\n"}
    assert error_of(post(url, src, stderr="yes"), 400) == {
        "error": "'stderr' must be true or false"}


# ---- the script's outcomes --------------------------------------------------------------------

def test_error_reply_carries_partial_stdout(url):
    r = post(url, "def main():\n    print('started')\n    raise KeyError('k')\n")
    assert error_of(r, 400) == {"error": "Script execution error: 'k'", "stdout": "started\n"}


def test_syntax_error(url):
    body = error_of(post(url, "def main(:\n    return 1\n"), 400)
    assert body["error"].startswith("Script execution error: "), body


def test_bad_result_not_serializable(url):
    body = error_of(post(url, "def main():\n    return {'a': [1, 2, {3}]}\n"), 400)
    assert body == {"error": "Result is not JSON-serializable: set at result['a'][2]",
                    "stdout": ""}


def test_killed_by_signal(url):
    # A fault: the script is pid 1 of its namespace, so a signal it sends itself is ignored.
    r = post(url, "import ctypes\ndef main():\n    ctypes.string_at(0)\n")
    body = error_of(r, 400)
    assert body == {"error": "Script execution error: killed by signal 11 (SIGSEGV: a "
                             "segmentation fault)", "stdout": ""}
    assert r.headers["X-Pyexec-Verdict"] == "killed"


def test_sys_exit(url):
    body = error_of(post(url, "import sys\ndef main():\n    sys.exit(3)\n"), 400)
    assert body["error"] == "Script execution error: sys.exit(3) was called before main() returned"


# ---- encoding of the body ---------------------------------------------------------------------

def test_floats_print_as_python_does(url):
    r = post(url, "def main():\n    return [0.1, 3.0, 1e16, 1e-05, 0.30000000000000004, -0.0, 2.5]\n")
    assert r.text == ('{"result": [0.1, 3.0, 1e+16, 1e-05, 0.30000000000000004, -0.0, 2.5], '
                      '"stdout": ""}\n')


def test_key_order_and_unicode_kept(url):
    r = post(url, "def main():\n    print('héllo ✓')\n    return {'z': 1, 'a': 'é€😀', 'm': None}\n")
    assert r.text == '{"result": {"z": 1, "a": "é€😀", "m": null}, "stdout": "héllo ✓\\n"}\n'
    assert r.headers["Content-Type"] == "application/json"


def test_control_characters_and_nul_escaped(url):
    r = post(url, "def main():\n    return 'a\\x00b\\x01\\t\"\\\\'\n")
    assert r.text == '{"result": "a\\u0000b\\u0001\\t\\"\\\\", "stdout": ""}\n'
    assert r.json()["result"] == 'a\x00b\x01\t"\\'


def test_invalid_utf8_output_replaced(url):
    r = post(url, "import sys\ndef main():\n    sys.stdout.buffer.write(b'ok \\xff\\xfe end\\n')\n"
                  "    sys.stdout.flush()\n    return 1\n")
    assert r.json() == {"result": 1, "stdout": "ok \ufffd\ufffd end\n"}


# ---- statistics headers -----------------------------------------------------------------------

def test_stats_headers(url):
    # 16 MiB written: a warm job that only adds numbers may peak under 1 MiB (the pages it
    # copies from the zygote), which says nothing about whether the figure is the job's.
    r = post(url, "def main():\n    b = b'x' * (16 << 20)\n    return sum(range(100000))\n")
    assert r.status_code == 200
    for h in ("X-Pyexec-Wall-Ms", "X-Pyexec-Cpu-Ms", "X-Pyexec-Peak-Memory"):
        assert r.headers[h].isdigit(), (h, r.headers.get(h))
    assert 16 << 20 < int(r.headers["X-Pyexec-Peak-Memory"]) < 512 << 20
    assert r.headers["X-Pyexec-Verdict"] == "ok"
    assert "X-Pyexec-Truncated" not in r.headers


def test_request_ids_are_random(url):
    """16 hex digits, none repeated, and no counter: ids tell nothing about other clients."""
    import re
    ids = [requests.get(url + "/health", timeout=TIMEOUT).headers["X-Request-Id"]
           for _ in range(20)]
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    values = [int(i, 16) for i in ids]
    assert not all(b - a == 1 for a, b in zip(values, values[1:])), ids


def test_truncated_header(sandbox, start_sandbox, start_gateway):
    sbx = start_sandbox("--stdout-max", "1024", "--stderr-max", "1024", max_running=1)
    gw = start_gateway(sbx.socket)
    gw.wait_connected()
    src = "import sys\ndef main():\n    print('x' * 5000)\n    return 1\n"
    r = post(gw.url, src)
    assert r.status_code == 200
    assert r.headers["X-Pyexec-Truncated"] == "stdout"
    assert r.json()["stdout"] == "x" * 1024
    src = "import sys\ndef main():\n    print('x' * 5000)\n    print('y' * 5000, file=sys.stderr)\n" \
          "    return 1\n"
    r = post(gw.url, src, stderr=True)
    assert r.headers["X-Pyexec-Truncated"] == "stdout,stderr"
    assert r.json()["stderr"] == "y" * 1024


# ---- routing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("method,path,allow", [
    ("GET", "/execute", "POST"), ("PUT", "/execute", "POST"), ("DELETE", "/execute", "POST"),
    ("POST", "/health", "GET, HEAD"), ("PATCH", "/health", "GET, HEAD"),
    ("POST", "/metrics", "GET, HEAD"),
    ("OPTIONS", "/execute", "POST"),
])
def test_wrong_method(url, method, path, allow):
    r = requests.request(method, url + path, timeout=TIMEOUT)
    assert error_of(r, 405) == {"error": "Method not allowed"}
    assert r.headers["Allow"] == allow


def read_answer(s, buf, head_only):
    """One answer from socket s (buf: bytes read before): (status, headers, body, rest)."""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, buf
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    n = 0 if head_only else int(headers["content-length"])
    while len(buf) < n:
        chunk = s.recv(65536)
        assert chunk, buf
        buf += chunk
    return int(lines[0].split()[1]), headers, buf[:n], buf[n:]


@pytest.mark.parametrize("path,status,allow", [
    ("/health", 200, None), ("/metrics", 200, None), ("/execute", 405, "POST"),
    ("/nope", 404, None)])
def test_head_has_no_body(gateway, path, status, allow):
    """HEAD gets GET's status and headers, Content-Length included, and no body (evhttp 2.1
    would send one): the pipelined GET's answer follows right after the head."""
    with socket.create_connection((gateway.host, gateway.port), timeout=30) as s:
        s.sendall(f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n"
                  f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        got, headers, _, rest = read_answer(s, b"", head_only=True)
        assert rest == b"" or rest.startswith(b"HTTP/1.1 "), rest[:100]
        get_status, get_headers, get_body, _ = read_answer(s, rest, head_only=False)
    assert got == status
    assert headers["content-type"] == get_headers["content-type"]
    if path != "/metrics":  # the metrics text changes between the two requests
        assert int(headers["content-length"]) == len(get_body) > 0
    if allow:
        assert headers["allow"] == allow
    if status == 200:
        assert get_status == 200


@pytest.mark.parametrize("path", ["/", "/execute/", "/Execute", "/health/x", "/index.html",
                                  "/%00", "/execute%20"])
def test_unknown_path(url, path):
    r = requests.get(url + path, timeout=TIMEOUT)
    assert error_of(r, 404) == {"error": "Not found"}


def test_query_string_ignored(url):
    r = requests.post(url + "/execute?x=1", json={"script": "def main():\n    return 2"},
                      timeout=TIMEOUT)
    assert r.json() == {"result": 2, "stdout": ""}
    assert requests.get(url + "/health?probe=1", timeout=TIMEOUT).status_code == 200


def test_uri_too_long(url):
    r = requests.get(url + "/health?" + "a" * 3000, timeout=TIMEOUT)
    assert error_of(r, 414) == {"error": "Request URI is too long"}


def test_keep_alive(url):
    with requests.Session() as s:
        for i in range(5):
            r = s.post(url + "/execute", json={"script": f"def main():\n    return {i}"},
                       timeout=TIMEOUT)
            assert r.json() == {"result": i, "stdout": ""}
        assert s.get(url + "/health", timeout=TIMEOUT).status_code == 200


def test_pipelined_requests(gateway):
    """Two requests in one write: answered in order, on one connection."""
    body = b'{"script": "def main():\\n    return 7"}'
    one = (b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % len(body)) + body
    with socket.create_connection((gateway.host, gateway.port), timeout=60) as s:
        s.sendall(one + one.replace(b"return 7", b"return 8"))
        data = b""
        while data.count(b'"stdout": ""}') < 2:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
    assert data.index(b'"result": 7') < data.index(b'"result": 8')
