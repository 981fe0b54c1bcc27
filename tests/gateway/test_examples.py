"""Every example of ../shared/SEED.md through a real gatewayd and sandboxd: the contract's
exact bodies, byte for byte where the seed documents them.

The body's look is Python's json.dumps (", " and ": ", key order kept) plus a final newline,
as Flask's jsonify ends its bodies. Script outcomes always carry "stdout" (the API's rule: an
error reply carries the partial output too), so the documented error bodies appear here with
"stdout": "" added; "Request must be JSON" is not a script outcome and has no "stdout".
"""
import json
import subprocess

import requests
import seed

TIMEOUT = 120


def post(url, script, **extra):
    return requests.post(url + "/execute", json={"script": script, **extra}, timeout=TIMEOUT)


def check_json_reply(r, status):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/json"
    assert r.text.endswith("\n")
    return r.json()


# ---- the request bodies of the seed, as a client sends them ----------------------------------

def test_hello_world_request_body(url):
    """The request body shown under POST /execute, and its documented response."""
    r = requests.post(url + "/execute",
                      data='{\n  "script": "def main():\\n    return {\'message\': \'Hello, World!\'}"\n}',
                      headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    check_json_reply(r, 200)
    assert r.text == '{"result": {"message": "Hello, World!"}, "stdout": ""}\n'


def test_simple_return(url):
    r = post(url, 'def main():\n    return {"result": "success", "value": 42}\n')
    check_json_reply(r, 200)
    assert r.text == '{"result": {"result": "success", "value": 42}, "stdout": ""}\n'


def test_using_libraries(url):
    r = post(url, seed.PANDAS)
    check_json_reply(r, 200)
    # numpy's float64 is a JSON float (3.0, not 3), the shape tuple a list.
    assert r.text == seed.PANDAS_REPLY + "\n"


def test_with_print_statements(url):
    r = post(url, seed.PRINTS)
    check_json_reply(r, 200)
    assert r.text == seed.PRINTS_REPLY + "\n"


def test_error_missing_main(url):
    r = post(url, "def helper():\n    return 1\n")
    assert check_json_reply(r, 400) == {"error": "Script must contain a main() function",
                                        "stdout": ""}


def test_error_invalid_json(url):
    r = requests.post(url + "/execute", data='{"script": "def main(): return 1"',
                      headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    check_json_reply(r, 400)
    assert r.text == '{"error": "Request must be JSON"}\n'


def test_error_timeout(url):
    r = post(url, "def main():\n    while True:\n        pass\n", timeout_ms=1000)
    assert check_json_reply(r, 400) == {"error": "Script execution timed out", "stdout": ""}


def test_error_runtime(url):
    r = post(url, "def main():\n    return 1 / 0\n")
    assert check_json_reply(r, 400) == {"error": "Script execution error: division by zero",
                                        "stdout": ""}


def test_health(url):
    r = requests.get(url + "/health", timeout=TIMEOUT)
    check_json_reply(r, 200)
    assert r.text == '{"status": "healthy"}\n'


# ---- the README's curl commands, run verbatim but for the address -----------------------------

README_CURLS = {
    "local": ("""curl -X POST http://localhost:8080/execute \\
  -H "Content-Type: application/json" \\
  -d '{
    "script": "def main():\\n    return {\\"message\\": \\"Hello from local Docker!\\"}"
  }'""", 200, '{"result": {"message": "Hello from local Docker!"}, "stdout": ""}\n'),
    "basic": ("""curl -X POST http://localhost:8080/execute \\
  -H "Content-Type: application/json" \\
  -d '{
    "script": "def main():\\n    return {\\"result\\": \\"Hello, World!\\", \\"timestamp\\": \\"2024-01-01\\"}"
  }'""", 200, '{"result": {"result": "Hello, World!", "timestamp": "2024-01-01"}, "stdout": ""}\n'),
    "data_processing": ("""curl -X POST http://localhost:8080/execute \\
  -H "Content-Type: application/json" \\
  -d '{
    "script": "import pandas as pd\\nimport numpy as np\\n\\ndef main():\\n    data = pd.DataFrame({\\"values\\": [1, 2, 3, 4, 5]})\\n    return {\\"mean\\": float(np.mean(data[\\"values\\"])), \\"sum\\": int(data[\\"values\\"].sum())}"
  }'""", 200, '{"result": {"mean": 3.0, "sum": 15}, "stdout": ""}\n'),
    "error_handling": ("""curl -X POST http://localhost:8080/execute \\
  -H "Content-Type: application/json" \\
  -d '{
    "script": "def main():\\n    raise ValueError(\\"This is a test error\\")"
  }'""", 400, '{"error": "Script execution error: This is a test error", "stdout": ""}\n'),
    "cloud_run_simple": ("""curl -X POST http://localhost:8080/execute \\
  -H "Content-Type: application/json" \\
  -d '{
    "script": "def main():\\n    import os\\n    return {\\"python_version\\": \\"3.11\\", \\"available_modules\\": [\\"numpy\\", \\"pandas\\", \\"os\\"]}"
  }'""", 200, ('{"result": {"python_version": "3.11", "available_modules": ["numpy", "pandas", '
                '"os"]}, "stdout": ""}\n')),
}

CLOUD_RUN_RANDOM = """curl -X POST http://localhost:8080/execute \\
  -H "Content-Type: application/json" \\
  -d '{
    "script": "import numpy as np\\nimport pandas as pd\\n\\ndef main():\\n    # Create sample data\\n    data = np.random.rand(100)\\n    df = pd.DataFrame({\\"values\\": data})\\n    \\n    return {\\n        \\"mean\\": float(df[\\"values\\"].mean()),\\n        \\"std\\": float(df[\\"values\\"].std()),\\n        \\"count\\": len(df)\\n    }"
  }'"""


def run_curl(command, gateway):
    """Runs a README command through the shell, pointed at this gateway, with the status."""
    command = command.replace("http://localhost:8080", f"http://localhost:{gateway.port}")
    command = command.replace("curl -X POST", "curl -sS -w '\\n%{http_code}' -X POST", 1)
    p = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    body, _, status = p.stdout.rpartition("\n")
    return int(status), body + "\n" if not body.endswith("\n") else body


def test_readme_curl_examples(gateway):
    for name, (command, status, body) in README_CURLS.items():
        got_status, got_body = run_curl(command, gateway)
        assert (name, got_status, got_body) == (name, status, body)


def test_readme_curl_random_data(gateway):
    status, body = run_curl(CLOUD_RUN_RANDOM, gateway)
    assert status == 200, body
    v = json.loads(body)
    assert list(v) == ["result", "stdout"] and v["stdout"] == ""
    res = v["result"]
    assert list(res) == ["mean", "std", "count"]
    assert type(res["mean"]) is float and 0.0 < res["mean"] < 1.0
    assert type(res["std"]) is float and 0.0 < res["std"] < 1.0
    assert res["count"] == 100
