"""The examples of ../shared/SEED.md, run through a real sandboxd: the contract's exact answers."""
import json

import seed
from conftest import script

HELLO = script("""
    def main():
        return {"message": "Hello, World!"}
""")


def ok_result(r):
    assert r["verdict"] == "ok", r
    assert r["message"] == "", r
    return json.loads(r["result"])


def test_hello_dict(run):
    r = run(HELLO)
    assert ok_result(r) == {"message": "Hello, World!"}
    assert r["stdout"] == b""
    assert r["flags"] == 0
    assert r["exit_code"] == 0


def test_simple_return(run):
    r = run('def main():\n    return {"result": "success", "value": 42}\n')
    assert ok_result(r) == {"result": "success", "value": 42}
    assert r["stdout"] == b""


def test_numpy_pandas_mean_shape_len(run):
    r = run(seed.PANDAS)
    value = ok_result(r)
    assert value == seed.PANDAS_RESULT
    assert type(value["mean"]) is float  # a numpy float64 becomes a JSON number with a fraction
    assert r["stdout"] == b""


def test_prints_then_return(run):
    r = run(seed.PRINTS)
    assert ok_result(r) == {"processed": True, "items": 10}
    assert r["stdout"] == b"This will appear in stdout\nProcessing data...\nProcessed 10 items\n"


def test_raise_value_error(run):
    r = run('def main():\n    raise ValueError("This is a test error")')
    assert r["verdict"] == "error"
    assert r["message"] == "Script execution error: This is a test error"
    assert r["result"] == ""
    assert r["stdout"] == b""
    # The traceback goes to stderr, never into the API's error text.
    assert b"ValueError: This is a test error" in r["stderr"]


def test_division_by_zero(run):
    r = run("def main(): return 1/0")
    assert r["verdict"] == "error"
    assert r["message"] == "Script execution error: division by zero"


def test_missing_main(run):
    r = run("def helper():\n    return 1\n\nx = helper()\n")
    assert r["verdict"] == "no_main"
    assert r["message"] == "Script must contain a main() function"
    assert r["result"] == ""


def test_main_not_callable(run):
    r = run("main = 5\n")
    assert r["verdict"] == "no_main"
    assert r["message"] == "Script must contain a main() function"


def test_basic_curl_example(run):
    r = run("def main():\n    return {\"result\": \"Hello, World!\", \"timestamp\": \"2024-01-01\"}")
    assert ok_result(r) == {"result": "Hello, World!", "timestamp": "2024-01-01"}


def test_local_docker_example(run):
    r = run("def main():\n    return {\"message\": \"Hello from local Docker!\"}")
    assert ok_result(r) == {"message": "Hello from local Docker!"}
    assert r["stdout"] == b""


def test_data_processing_example(run):
    r = run("import pandas as pd\nimport numpy as np\n\ndef main():\n    data = pd.DataFrame("
            "{\"values\": [1, 2, 3, 4, 5]})\n    return {\"mean\": float(np.mean(data[\"values\"])),"
            " \"sum\": int(data[\"values\"].sum())}")
    assert ok_result(r) == {"mean": 3.0, "sum": 15}


def test_cloud_run_modules_example(run):
    r = run("def main():\n    import os\n    return {\"python_version\": \"3.11\", "
            "\"available_modules\": [\"numpy\", \"pandas\", \"os\"]}")
    assert ok_result(r) == {"python_version": "3.11", "available_modules": ["numpy", "pandas", "os"]}


def test_cloud_run_data_processing_example(run):
    r = run("import numpy as np\nimport pandas as pd\n\ndef main():\n    # Create sample data\n"
            "    data = np.random.rand(100)\n    df = pd.DataFrame({\"values\": data})\n    \n"
            "    return {\n        \"mean\": float(df[\"values\"].mean()),\n"
            "        \"std\": float(df[\"values\"].std()),\n        \"count\": len(df)\n    }")
    value = ok_result(r)
    assert set(value) == {"mean", "std", "count"}
    assert value["count"] == 100
    assert 0.0 < value["mean"] < 1.0
    assert 0.0 < value["std"] < 1.0


def test_timeout(run):
    r = run("def main():\n    while True:\n        pass\n", timeout_ms=2000)
    assert r["verdict"] == "timeout"
    assert r["message"] == "Script execution timed out"
    assert r["result"] == ""
    # Killed from outside at the deadline, not long after it.
    assert 2000 <= r["wall_ms"] < 6000, r["wall_ms"]


def test_syntax_error(run):
    r = run("def main(:\n    return 1\n")
    assert r["verdict"] == "error"
    assert r["message"].startswith("Script execution error: ")
    assert "SyntaxError" in r["stderr"].decode()
