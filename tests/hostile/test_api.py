"""API edge cases: malformed, mistyped, oversized and odd requests, and scripts whose main()
is missing, wrong or returns what JSON cannot hold, each answered with its exact error."""
import json

import pytest

from hostile import JOB_TIMEOUT_MS, NO_MAIN, NOT_JSON, Attacks, expect, result_of, script

attack = Attacks()
ONE = "def main():\n    return 1\n"
TIMEOUT_RANGE = f"'timeout_ms' must be an integer between 100 and {JOB_TIMEOUT_MS}"


def refused(a, status, error):
    """Refused by the gateway before any job: exactly {"error": ...}, no verdict."""
    expect(a, status, {"error": error})
    assert a.verdict is None, a


@attack
def body_not_json(svc):
    refused(svc.post("this is not json"), 400, NOT_JSON)


@attack
def empty_body(svc):
    refused(svc.post(b""), 400, NOT_JSON)


@attack
def body_not_utf8(svc):
    refused(svc.post(b'{"script": "\xff\xfe def main(): return 1"}'), 400, NOT_JSON)


@attack
def body_json_but_not_an_object(svc):
    for body in ('["def main(): return 1"]', '"def main(): return 1"', "null", "42"):
        refused(svc.post(body), 400, NOT_JSON)


@attack
def json_sent_as_text_plain(svc):
    refused(svc.post(json.dumps({"script": ONE}), content_type="text/plain"), 400, NOT_JSON)


@attack
def nan_and_huge_numbers_in_the_request(svc):
    refused(svc.post(b'{"script": NaN}'), 400, NOT_JSON)
    refused(svc.post(b'{"script": "def main():\\n    return 1", "timeout_ms": 1e400}'), 400,
            "Request JSON has a number out of range")
    refused(svc.post(b'{"script": "def main():\\n    return 1", "n": 1' + b"0" * 40 + b"}"), 400,
            "Request JSON has a number out of range")


@attack
def request_nested_too_deeply(svc):
    refused(svc.post(b'{"a":' * 100 + b"1" + b"}" * 100), 400,
            "Request JSON is nested too deeply (over 64 levels)")
    refused(svc.post(b'{"script": "def main():\\n    return 1", "x": ' + b"[" * 5000 +
                     b"]" * 5000 + b"}"), 400,
            "Request JSON is nested too deeply (over 64 levels)")


@attack
def script_missing_or_of_the_wrong_type(svc):
    refused(svc.post(json.dumps({"code": ONE})), 400, "Missing 'script' field")
    for value in (None, 42, ["def main(): return 1"], {"main": 1}, True):
        refused(svc.post(json.dumps({"script": value})), 400, "'script' must be a string")
    # A duplicate key: the last one counts, and it is no string.
    refused(svc.post(b'{"script": "def main():\\n    return 1", "script": 5}'), 400,
            "'script' must be a string")


@attack
def limits_of_the_wrong_type_or_out_of_range(svc):
    for value in ("1000", True, 1.5, -1, 99, JOB_TIMEOUT_MS + 1, 1 << 40):
        refused(svc.execute(ONE, timeout_ms=value), 400, TIMEOUT_RANGE)
    for value in ("64", 31, 513, 1 << 20):
        refused(svc.execute(ONE, memory_mb=value), 400,
                "'memory_mb' must be an integer between 32 and 512")
    refused(svc.execute(ONE, stderr="yes"), 400, "'stderr' must be true or false")


@attack
def huge_body(svc):
    refused(svc.execute(ONE + "#" + "x" * (2 << 20)), 413,
            "Request body is too large (over 1048576 bytes)")


@attack
def missing_main(svc):
    """No main: refused before the module runs (its print never happens)."""
    a = svc.execute("print('module level ran')\ndef helper():\n    return 1\n")
    expect(a, 400, {"error": NO_MAIN, "stdout": ""}, verdict="no_main")


@attack
def main_not_callable_or_deleted(svc):
    for src in ("main = 5\n", "def main():\n    return 1\ndel main\n",
                "def main():\n    return 1\nmain = None\n"):
        expect(svc.execute(src), 400, {"error": NO_MAIN, "stdout": ""}, verdict="no_main")


@attack
def main_with_arguments(svc):
    a = svc.execute("def main(x, y):\n    return x + y\n")
    expect(a, 400, {"error": "Script execution error: main() missing 2 required positional "
                             "arguments: 'x' and 'y'", "stdout": ""}, verdict="error")


@attack
def syntax_error_and_nul_bytes(svc):
    expect(svc.execute("def main(:\n    return 1\n"), 400,
           {"error": "Script execution error: invalid syntax (<script>, line 1)", "stdout": ""},
           verdict="error")
    expect(svc.execute("def main():\n    return 1\x00\n"), 400,
           {"error": "Script execution error: source code string cannot contain null bytes",
            "stdout": ""}, verdict="error")


@attack
def non_serialisable_results(svc):
    cases = {
        "def main():\n    return {'s': {1, 2}}\n":
            "Result is not JSON-serializable: set at result['s']",
        "def main():\n    return [1, object()]\n":
            "Result is not JSON-serializable: object at result[1]",
        "def main():\n    return main\n": "Result is not JSON-serializable: function at result",
        "def main():\n    return (i for i in range(3))\n":
            "Result is not JSON-serializable: generator at result",
        "def main():\n    return {(1, 2): 3}\n":
            "Result is not JSON-serializable: tuple (dict key) at result",
        "def main():\n    a = []\n    a.append(a)\n    return a\n":
            "Result contains a circular reference at result[0]",
        "def main():\n    return 10 ** 400\n":
            "Result is not JSON-serializable: int (too large for a JSON number) at result",
    }
    for src, error in cases.items():
        expect(svc.execute(src), 400, {"error": error, "stdout": ""}, verdict="bad_result")


@attack
def nan_and_infinity_results(svc):
    a = svc.execute("def main():\n    return {'nan': float('nan'), 'l': [float('inf'), "
                    "-float('inf')], 'big': 10 ** 30}\n")
    assert result_of(a) == {"nan": None, "l": [None, None], "big": 1e30}


@attack
def result_nested_too_deeply(svc):
    a = svc.execute(script("""
        def main():
            v = []
            for i in range(100000):
                v = [v]
            return v
    """))
    expect(a, 400, {"error": "Result is nested too deeply (over 64 levels) at result" +
                             "[0]" * 64, "stdout": ""}, verdict="bad_result")


@attack
def result_too_large(svc):
    expect(svc.execute("def main():\n    return 'x' * (17 << 20)\n"), 400,
           {"error": "Result is too large (over 16777216 bytes)", "stdout": ""},
           verdict="bad_result")
    expect(svc.execute("def main():\n    return [0] * 1100000\n"), 400,
           {"error": "Result has too many values (over 1000000)", "stdout": ""},
           verdict="bad_result")


@attack
def async_main_and_odd_main(svc):
    """A coroutine main is awaited; a class or a lambda bound to main is called."""
    assert result_of(svc.execute("async def main():\n    return 7\n")) == 7
    assert result_of(svc.execute("main = lambda: 'lambda'\n")) == "lambda"
    assert result_of(svc.execute("class main(dict):\n    pass\n")) == {}


@attack
def sys_exit_in_main(svc):
    for code, text in ((0, "sys.exit(0)"), (3, "sys.exit(3)")):
        expect(svc.execute(f"import sys\ndef main():\n    sys.exit({code})\n"), 400,
               {"error": f"Script execution error: {text} was called before main() returned",
                "stdout": ""}, verdict="error")


@pytest.mark.parametrize("case", attack, ids=Attacks.id)
def test_attack(svc, case):
    case(svc)
    svc.assert_intact()
