"""The runner's contract: main() checks, errors, exits, output, the result channel and every
conversion. Each test runs the real runner in a fresh interpreter (see conftest.py)."""

import json
import os
import textwrap

import pytest
import seed

from conftest import MAX_PAYLOAD, FrameError, parse_frame


def src(text):
    return textwrap.dedent(text).lstrip("\n")


def ok(value):
    return {"status": "ok", "result": value}


def error(message):
    return {"status": "error", "message": message}


def bad(message):
    return {"status": "bad_result", "message": message}


NO_MAIN = {"status": "no_main"}


# --- the seed's examples -----------------------------------------------------------------------


def test_seed_simple_return_exact_frame(run):
    r = run('def main():\n    return {"result": "success", "value": 42}')
    payload = b'{"status":"ok","result":{"result":"success","value":42}}'
    assert r.raw == b"PXR1" + len(payload).to_bytes(4, "big") + payload
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")


def test_seed_hello(reply):
    assert reply("def main():\n    return {'message': 'Hello, World!'}") == ok(
        {"message": "Hello, World!"})


def test_seed_numpy_pandas(run):
    r = run(seed.PANDAS)
    assert r.frame == ok(seed.PANDAS_RESULT)
    assert r.raw[8:] == (b'{"status":"ok","result":'
                         b'{"mean":3.0,"data_shape":[5,2],"total_records":5}}')
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")


def test_seed_print_statements(run):
    r = run(seed.PRINTS)
    assert r.frame == ok({"processed": True, "items": 10})
    assert r.out == "This will appear in stdout\nProcessing data...\nProcessed 10 items\n"
    assert r.stderr == b""


def test_seed_data_processing_curl(reply):
    script = ("import pandas as pd\nimport numpy as np\n\ndef main():\n"
              "    data = pd.DataFrame({\"values\": [1, 2, 3, 4, 5]})\n"
              "    return {\"mean\": float(np.mean(data[\"values\"])), "
              "\"sum\": int(data[\"values\"].sum())}")
    assert reply(script) == ok({"mean": 3.0, "sum": 15})


def test_seed_random_data_curl(reply):
    script = ("import numpy as np\nimport pandas as pd\n\ndef main():\n"
              "    # Create sample data\n    data = np.random.rand(100)\n"
              "    df = pd.DataFrame({\"values\": data})\n    \n    return {\n"
              "        \"mean\": float(df[\"values\"].mean()),\n"
              "        \"std\": float(df[\"values\"].std()),\n        \"count\": len(df)\n    }")
    result = reply(script)["result"]
    assert sorted(result) == ["count", "mean", "std"]
    assert result["count"] == 100
    assert 0.0 < result["mean"] < 1.0 and 0.0 < result["std"] < 1.0


def test_seed_modules_listing(reply):
    script = ("def main():\n    import os\n    return {\"python_version\": \"3.11\", "
              "\"available_modules\": [\"numpy\", \"pandas\", \"os\"]}")
    assert reply(script) == ok(
        {"python_version": "3.11", "available_modules": ["numpy", "pandas", "os"]})


def test_seed_value_error(run):
    r = run('def main():\n    raise ValueError("This is a test error")')
    assert r.frame == error("This is a test error")
    assert r.err == ('Traceback (most recent call last):\n'
                     '  File "<script>", line 2, in main\n'
                     '    raise ValueError("This is a test error")\n'
                     'ValueError: This is a test error\n')
    assert (r.returncode, r.stdout) == (0, b"")


def test_seed_division_by_zero(run):
    r = run("def main(): return 1/0")
    assert r.frame == error("division by zero")
    assert r.err == ('Traceback (most recent call last):\n'
                     '  File "<script>", line 1, in main\n'
                     '    def main(): return 1/0\n'
                     '                       ~^~\n'
                     'ZeroDivisionError: division by zero\n')


def test_seed_missing_main(run):
    r = run('def helper():\n    return 1\nprint("module body ran")\n')
    assert r.frame == NO_MAIN
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")


# --- finding main ------------------------------------------------------------------------------

# Scripts that never bind `main` at module level: no_main, and the body never runs (its print
# would show on stdout).
NEVER_BINDS = {
    "empty": "",
    "only_comments": "# def main():\n#     return 1\n",
    "string_mentions_main": 'print("x")\ns = "def main(): return 1"\n',
    "calls_main": "print('x')\nmain()\n",
    "reads_main": "print(main)\n",
    "main_inside_function": src("""
        print("x")
        def outer():
            def main():
                return 1
            return main
    """),
    "main_inside_class": src("""
        print("x")
        class C:
            def main(self):
                return 1
            main2 = main
    """),
    "global_main_set_in_function": src("""
        print("x")
        def setup():
            global main
            main = lambda: 1
        setup()
    """),
    "module_level_global": "print('x')\nglobal main\n",
    "annotation_only": "print('x')\nmain: object\n",
    "walrus_in_lambda_body": "print('x')\nf = lambda: (main := 1)\nf()\n",
    "similar_names": ("print('x')\nimport mainframe_missing\n"
                      "from os import path as main_path\nmain_ = 1\n"),
    "attribute_and_subscript": ("print('x')\nimport types\nns = types.SimpleNamespace()\n"
                                "ns.main = 1\nd = {}\nd['main'] = 1\n"),
    "del_main": "print('x')\ndel main\n",
}


@pytest.mark.parametrize("script", NEVER_BINDS.values(), ids=NEVER_BINDS.keys())
def test_no_main_without_running(run, script):
    r = run(script)
    assert r.frame == NO_MAIN
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")


# Scripts that bind main at module level in some way: the body runs and main() is called.
BINDS = {
    "def": ("def main():\n    return 1\n", 1),
    "async_def": ("async def main():\n    return 2\n", 2),
    "lambda": ("main = lambda: 3\n", 3),
    "tuple_unpacking": ("main, other = (lambda: 4), 0\n", 4),
    "nested_unpacking": ("(a, (b, main)) = (1, (2, lambda: 5))\n", 5),
    "list_unpacking": ("[main] = [lambda: 55]\n", 55),
    "annotated": ("main: object = lambda: 6\n", 6),
    "walrus": ("(main := lambda: 7)\n", 7),
    "walrus_in_comprehension": ("[(main := lambda: 8) for _ in range(1)]\n", 8),
    "under_if": ("if True:\n    def main():\n        return 9\n", 9),
    "under_else": ("if False:\n    pass\nelse:\n    def main():\n        return 10\n", 10),
    "under_elif": ("if False:\n    pass\nelif 1:\n    main = lambda: 11\n", 11),
    "under_try": ("try:\n    import no_such_module\nexcept ImportError:\n"
                  "    def main():\n        return 12\n", 12),
    "under_finally": ("try:\n    pass\nfinally:\n    main = lambda: 13\n", 13),
    "under_with": ("import contextlib\nwith contextlib.nullcontext():\n"
                   "    def main():\n        return 14\n", 14),
    "with_as": ("import contextlib\n"
                "with contextlib.nullcontext(lambda: 15) as main:\n    pass\n", 15),
    "for_target": ("for main in [lambda: 16]:\n    pass\n", 16),
    "under_for": ("for _ in range(2):\n    main = lambda: 17\n", 17),
    "under_while": ("while True:\n    def main():\n        return 18\n    break\n", 18),
    "match_capture": ("match (lambda: 19):\n    case main:\n        pass\n", 19),
    "class_decorator_walrus": ("def deco(c):\n    return c\n"
                               "@(main := lambda: 20).__class__ and deco\n"
                               "class C:\n    pass\n", 20),
    "from_import": ("import sys, types\n"
                    "sys.modules['fake'] = types.SimpleNamespace(main=lambda: 21)\n"
                    "from fake import main\n", 21),
    "from_import_as": ("import sys, types\n"
                       "sys.modules['fake'] = types.SimpleNamespace(f=lambda: 22)\n"
                       "from fake import f as main\n", 22),
}


@pytest.mark.parametrize("script,expected", BINDS.values(), ids=BINDS.keys())
def test_main_bindings(reply, script, expected):
    assert reply(script) == ok(expected)


def test_main_from_import_as(run):
    r = run("from os import getcwd as main\n")
    assert r.frame == ok(os.path.realpath(run.cwd))


def test_main_from_import_as_among_others(run):
    r = run("from os import sep as main_sep\nfrom posixpath import *\n"
            "from os import getcwd as main\n")
    assert r.frame == ok(os.path.realpath(run.cwd))


def test_main_is_module_import_as(run):
    r = run("print('ran')\nimport json as main\n")
    assert r.frame == NO_MAIN  # bound, but a module is not callable
    assert r.out == "ran\n"


def test_main_is_a_class(reply):
    assert reply("class main:\n    pass\n") == bad(
        "Result is not JSON-serializable: main at result")


def test_main_not_callable(run):
    r = run("print('ran')\nmain = 5\n")
    assert r.frame == NO_MAIN
    assert r.out == "ran\n"


# The static check errs on the side of running: these bind nothing callable in the end.
RUN_THEN_NO_MAIN = {
    "deleted_after_def": "print('ran')\ndef main():\n    return 1\ndel main\n",
    "star_import": "print('ran')\nfrom os.path import *\n",
    "except_as": "print('ran')\ntry:\n    raise ValueError\nexcept ValueError as main:\n    pass\n",
    "comprehension_target": "print('ran')\nx = [main for main in range(3)]\n",
    "set_to_none": "print('ran')\nmain = None\n",
}


@pytest.mark.parametrize("script", RUN_THEN_NO_MAIN.values(), ids=RUN_THEN_NO_MAIN.keys())
def test_runs_then_no_main(run, script):
    r = run(script)
    assert r.frame == NO_MAIN
    assert (r.returncode, r.out, r.stderr) == (0, "ran\n", b"")


def test_main_called_with_no_arguments(reply):
    assert reply("def main(*args, **kwargs):\n    return [list(args), kwargs]\n") == ok([[], {}])


def test_main_needing_an_argument_is_an_error(run):
    r = run("def main(x):\n    return x\n")
    assert r.frame == error("main() missing 1 required positional argument: 'x'")
    assert r.err == "TypeError: main() missing 1 required positional argument: 'x'\n"


def test_module_namespace(reply):
    script = src("""
        import sys
        def main():
            g = globals()
            return {
                "name": __name__,
                "main_module": sys.modules["__script__"].__dict__ is g,
                "builtins": g["__builtins__"] is __builtins__ and hasattr(__builtins__, "len"),
                "keys": sorted(k for k in g if k.startswith("__")),
                "argv": sys.argv,
            }
    """)
    assert reply(script) == ok({
        "name": "__script__", "main_module": True, "builtins": True,
        "keys": ["__builtins__", "__doc__", "__loader__", "__name__", "__package__", "__spec__"],
        "argv": ["<script>"]})


def test_script_classes_pickle_and_dataclasses(reply):
    script = src("""
        import dataclasses, pickle
        @dataclasses.dataclass
        class Point:
            x: int
            y: "int" = 0
        def main():
            p = pickle.loads(pickle.dumps(Point(1, 2)))
            return [p.x, p.y, Point.__module__]
    """)
    assert reply(script) == ok([1, 2, "__script__"])


# --- errors ------------------------------------------------------------------------------------


def test_syntax_error(run):
    r = run("def main():\n    return 1\n\nx = = 2\n")
    assert r.frame == error("invalid syntax (<script>, line 4)")
    assert r.err == ('  File "<script>", line 4\n'
                     '    x = = 2\n'
                     '        ^\n'
                     'SyntaxError: invalid syntax\n')
    assert r.stdout == b""


def test_syntax_error_wins_over_no_main(run):
    r = run("print('x')\nx = (\n")
    assert r.frame == error("'(' was never closed (<script>, line 2)")
    assert r.stdout == b""


def test_compile_stage_error(run):
    r = run("def main():\n    return 1\nreturn 2\n")
    assert r.frame == error("'return' outside function (<script>, line 3)")
    assert r.err.endswith("SyntaxError: 'return' outside function\n")


def test_indentation_error(reply):
    assert reply("def main():\nreturn 1\n") == error(
        "expected an indented block after function definition on line 1 (<script>, line 2)")


def test_invalid_utf8_script(run):
    r = run(b"def main():\n    return '\xff'\n")
    assert r.frame == error(
        "script is not valid UTF-8: invalid start byte at byte 24 (<script>, line 2)")
    assert r.err == ("SyntaxError: script is not valid UTF-8: invalid start byte at byte 24 "
                     "(<script>, line 2)\n")
    assert r.stdout == b""


def test_nul_byte_in_script(run):
    r = run(b"def main():\n    return 1\x00\n")
    assert r.frame == error("source code string cannot contain null bytes")
    assert r.err == "ValueError: source code string cannot contain null bytes\n"


def test_utf8_bom_is_accepted(reply):
    assert reply(b"\xef\xbb\xbfdef main():\n    return 'bom'\n") == ok("bom")


def test_coding_cookie_is_ignored_source_is_utf8(reply):
    assert reply("# -*- coding: latin-1 -*-\ndef main():\n    return 'é'\n") == ok("é")


def test_exception_in_module_body(run):
    r = run('print("before")\nraise RuntimeError("boom in body")\ndef main():\n    return 1\n')
    assert r.frame == error("boom in body")
    assert r.out == "before\n"
    assert r.err == ('Traceback (most recent call last):\n'
                     '  File "<script>", line 2, in <module>\n'
                     '    raise RuntimeError("boom in body")\n'
                     'RuntimeError: boom in body\n')


def test_exception_in_main_traceback_is_trimmed_to_the_script(run):
    r = run(src("""
        import json

        def helper(text):
            return json.loads(text)

        def main():
            return helper("{")
    """))
    assert r.frame == error("Expecting property name enclosed in double quotes: "
                            "line 1 column 2 (char 1)")
    lines = r.err.splitlines()
    assert lines[:5] == ['Traceback (most recent call last):',
                         '  File "<script>", line 7, in main',
                         '    return helper("{")',
                         '           ^^^^^^^^^^^',
                         '  File "<script>", line 4, in helper']
    assert lines[-1] == ("json.decoder.JSONDecodeError: Expecting property name enclosed in "
                         "double quotes: line 1 column 2 (char 1)")
    assert "runner.py" not in r.err


def test_chained_exception(run):
    r = run(src("""
        def main():
            try:
                {}["k"]
            except KeyError as e:
                raise ValueError("wrapped") from e
    """))
    assert r.frame == error("wrapped")
    assert "KeyError: 'k'\n\nThe above exception was the direct cause" in r.err
    assert r.err.endswith("ValueError: wrapped\n")
    assert "runner.py" not in r.err


def test_empty_message_uses_type_name(reply):
    assert reply("def main():\n    raise KeyError\n") == error("KeyError")
    assert reply("def main():\n    raise RuntimeError('')\n") == error("RuntimeError")


def test_key_error_message_is_str(reply):
    assert reply("def main():\n    return {}['missing']\n") == error("'missing'")


def test_failing_str_uses_type_name(reply):
    script = src("""
        class Weird(Exception):
            def __str__(self):
                raise RuntimeError("no str for you")
        def main():
            raise Weird()
    """)
    assert reply(script) == error("Weird")


def test_long_message_is_clipped(reply):
    message = reply("def main():\n    raise ValueError('é' * 5000)\n")["message"]
    assert len(message.encode("utf-8")) <= 4000
    assert message == "é" * 1998 + "\u2026"


def test_keyboard_interrupt_is_an_error(reply):
    assert reply("def main():\n    raise KeyboardInterrupt\n") == error("KeyboardInterrupt")


def test_base_exception_is_an_error(reply):
    assert reply("def main():\n    raise GeneratorExit('gen')\n") == error("gen")


def test_recursion_error(reply):
    assert reply("def main():\n    return main()\n") == error(
        "maximum recursion depth exceeded")


def test_stdin_is_empty(reply):
    assert reply("def main():\n    return input()\n") == error("EOF when reading a line")


def test_traceback_module_sees_script_source(reply):
    script = src("""
        import traceback
        def main():
            try:
                1 / 0
            except ZeroDivisionError:
                return traceback.format_exc().splitlines()[1:3]
    """)
    assert reply(script) == ok(['  File "<script>", line 4, in main', "    1 / 0"])


def test_linecache_has_the_script_even_after_clearcache(run):
    script = src("""
        import linecache
        def main():
            line = linecache.getline("<script>", 2)
            linecache.clearcache()
            assert linecache.getline("<script>", 2) == "", "cleared"
            raise ValueError(line)
    """)
    r = run(script)
    assert r.frame == error("def main():\n")
    assert '  File "<script>", line 6, in main\n    raise ValueError(line)\n' in r.err


def test_main_guard_idiom_runs_main_once(run):
    # __name__ is "__script__", so the usual guard does not call main() a second time.
    r = run("def main():\n    print('main ran')\n    return 1\n\n"
            "if __name__ == '__main__':\n    main()\n")
    assert r.frame == ok(1)
    assert r.out == "main ran\n"


def test_warnings_show_script_source(run):
    r = run("import warnings\ndef main():\n    warnings.warn('careful')\n    return 1\n")
    assert r.frame == ok(1)
    assert r.err == "<script>:3: UserWarning: careful\n  warnings.warn('careful')\n"


# --- exits -------------------------------------------------------------------------------------


EXITS = {
    "exit_3_in_main": ("import sys\ndef main():\n    sys.exit(3)\n", 3, ""),
    "exit_in_body": ("import sys\nsys.exit()\ndef main():\n    return 1\n", 0, ""),
    "exit_none": ("import sys\ndef main():\n    sys.exit(None)\n", 0, ""),
    "exit_zero": ("def main():\n    raise SystemExit(0)\n", 0, ""),
    "exit_negative": ("import sys\ndef main():\n    sys.exit(-2)\n", -2, ""),
    "exit_256": ("import sys\ndef main():\n    sys.exit(256)\n", 256, ""),
    "exit_true": ("import sys\ndef main():\n    sys.exit(True)\n", 1, ""),
    "exit_string": ("import sys\ndef main():\n    sys.exit('fatal: bad input')\n", 1,
                    "fatal: bad input\n"),
    "exit_object": ("import sys\ndef main():\n    sys.exit([1, 2])\n", 1, "[1, 2]\n"),
    "exit_huge_int": ("import sys\ndef main():\n    sys.exit(2 ** 40)\n", 1, "1099511627776\n"),
    "builtin_exit": ("def main():\n    exit(5)\n", None, None),
    "async_exit": ("import sys\nasync def main():\n    sys.exit(4)\n", 4, ""),
}


@pytest.mark.parametrize("script,code,stderr", EXITS.values(), ids=EXITS.keys())
def test_system_exit(run, script, code, stderr):
    r = run(script)
    if code is None:  # -S: no site, so no exit() builtin
        assert r.frame == error("name 'exit' is not defined")
        return
    assert r.frame == {"status": "exit", "code": code}
    assert (r.returncode, r.stdout, r.err) == (0, b"", stderr)


def test_os_exit_leaves_no_frame(run):
    r = run("import os\ndef main():\n    print('bye')\n    os._exit(0)\n")
    assert (r.returncode, r.raw, r.out, r.stderr) == (0, b"", "bye\n", b"")
    assert r.frame is None


def test_exit_without_handlers_or_threads(run):
    script = src("""
        import atexit, threading, time
        atexit.register(print, "atexit ran")
        def main():
            threading.Thread(target=time.sleep, args=(60,)).start()
            return "done"
    """)
    r = run(script, timeout=20)
    assert r.frame == ok("done")
    assert (r.returncode, r.stdout) == (0, b"")
    assert r.elapsed < 15


# --- stdout ------------------------------------------------------------------------------------


def test_print_and_os_write_interleave_in_order(run):
    script = src("""
        import os, sys
        def main():
            print("a")
            os.write(1, b"b\\n")
            print("c")
            sys.stdout.write("d")
            os.write(1, b"e")
            sys.stdout.write("f\\n")
            print("x", file=sys.stderr)
            os.write(2, b"y\\n")
            sys.stderr.write("z\\n")
            return 1
    """)
    r = run(script)
    assert r.frame == ok(1)
    assert r.out == "a\nb\nc\ndef\n"
    assert r.err == "x\ny\nz\n"


def test_stdout_streams_are_write_through(reply):
    script = src("""
        import io, sys
        def main():
            return [type(sys.stdout.buffer).__name__, sys.stdout.write_through,
                    sys.stdout.encoding, sys.stderr.write_through]
    """)
    assert reply(script) == ok(["FileIO", True, "utf-8", True])


def test_print_forgery_does_not_change_the_result(run):
    forged_json = '{"status":"ok","result":"forged"}'
    script = src("""
        import os, sys
        FORGED = %r
        def main():
            print(FORGED)
            frame = b"PXR1" + len(FORGED).to_bytes(4, "big") + FORGED.encode()
            os.write(1, frame)
            sys.stdout.buffer.write(frame)
            os.write(2, frame)
            return {"real": True}
    """ % forged_json)
    r = run(script)
    assert r.frame == ok({"real": True})
    frame = b"PXR1" + len(forged_json).to_bytes(4, "big") + forged_json.encode()
    assert r.stdout == forged_json.encode() + b"\n" + frame + frame
    assert r.stderr == frame


def test_closed_stdout_does_not_stop_the_frame(run):
    r = run("import os, sys\ndef main():\n    print('a')\n    sys.stdout.close()\n"
            "    os.close(1)\n    return 'closed'\n")
    assert r.frame == ok("closed")
    assert r.out == "a\n"


def test_replaced_stderr_still_gets_the_traceback(run):
    r = run("import io, sys\ndef main():\n    sys.stderr = io.StringIO()\n"
            "    raise ValueError('to fd 2')\n")
    assert r.frame == error("to fd 2")
    assert r.err.endswith("    raise ValueError('to fd 2')\nValueError: to fd 2\n")


def test_huge_stdout_is_not_capped_by_the_runner(run):
    r = run("def main():\n    print('x' * (5 * 1024 * 1024))\n    return 'ok'\n")
    assert r.frame == ok("ok")
    assert r.stdout == b"x" * (5 * 1024 * 1024) + b"\n"


def test_runner_prints_nothing_on_stdout(run):
    for script in ("", "x = (", "def main():\n    raise ValueError('e')\n",
                   "def main():\n    return {1, 2}\n", "import sys\nsys.exit('s')\n"):
        r = run(script)
        assert r.stdout == b"", (script, r)


# --- the result channel ------------------------------------------------------------------------


def test_fd_table_seen_by_the_script(reply):
    script = src("""
        import fcntl, os
        def main():
            fds = sorted(int(n) for n in os.listdir("/proc/self/fd"))
            private = [fd for fd in fds if fd > 3]
            return {
                "fds": fds,
                "private_cloexec": [bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)
                                    for fd in private],
                "private_is_pipe": [os.readlink("/proc/self/fd/%d" % fd).startswith("pipe:")
                                    for fd in private],
            }
    """)
    # 3 is the listdir fd itself; fd 3 (script) and fd 4 (result) are closed; the channel
    # lives on at 63, close-on-exec.
    assert reply(script) == ok({"fds": [0, 1, 2, 3, 63], "private_cloexec": [True],
                                "private_is_pipe": [True]})


def test_writing_to_fd4_hits_nothing(run):
    script = src("""
        import os
        def main():
            try:
                os.write(4, b"garbage")
            except OSError as e:
                return e.errno
            return "written"
    """)
    r = run(script)
    assert r.frame == ok(9)  # EBADF: the runner closed fd 4 before the script ran


def test_closing_or_replacing_fd4_does_not_matter(reply):
    script = src("""
        import os
        def main():
            os.dup2(os.open("/dev/null", os.O_WRONLY), 4)
            os.write(4, b"into /dev/null")
            os.close(4)
            return "still delivered"
    """)
    assert reply(script) == ok("still delivered")


def test_garbage_on_the_private_channel_is_detected(run):
    # A script that goes looking for the channel can corrupt it: its bytes come first, the
    # runner's frame follows, and a strict parser (the daemon's) rejects the channel.
    script = src("""
        import fcntl, os
        def main():
            for name in os.listdir("/proc/self/fd"):
                fd = int(name)
                try:
                    pipe = os.readlink("/proc/self/fd/" + name).startswith("pipe:")
                    writable = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY
                except OSError:
                    continue
                if fd > 2 and pipe and writable:
                    os.write(fd, b"garbage")
            return "real"
    """)
    r = run(script)
    assert r.returncode == 0
    assert r.raw.startswith(b"garbage")
    with pytest.raises(FrameError, match="bad magic"):
        r.frame
    assert parse_frame(r.raw[len(b"garbage"):]) == ok("real")


def test_forged_frame_on_the_private_channel_is_detected(run):
    # Even a well-formed forged frame leaves two frames on the channel: not exactly one.
    script = src("""
        import os
        def main():
            payload = b'{"status":"ok","result":"forged"}'
            os.write(63, b"PXR1" + len(payload).to_bytes(4, "big") + payload)
            return "real"
    """)
    r = run(script)
    with pytest.raises(FrameError, match="length"):
        r.frame


def test_closed_channel_exits_70(run):
    r = run("import os\ndef main():\n    os.close(63)\n    return 1\n")
    assert (r.returncode, r.raw) == (70, b"")


def test_missing_script_fd_is_reported_on_the_channel(run):
    r = run("def main():\n    return 1\n", omit=(3,))
    assert r.frame == error("runner failure: OSError: [Errno 9] Bad file descriptor")
    assert (r.returncode, r.stdout) == (0, b"")


def test_missing_result_fd_exits_70(run):
    r = run("def main():\n    print('never')\n    return 1\n", omit=(4,))
    assert (r.returncode, r.raw, r.stdout) == (70, b"", b"")


def test_exec_child_does_not_inherit_the_channel(reply):
    script = src("""
        import subprocess
        def main():
            out = subprocess.run(["/bin/ls", "/proc/self/fd"], capture_output=True,
                                 close_fds=False, text=True).stdout
            return sorted(int(n) for n in out.split())
    """)
    assert reply(script) == ok([0, 1, 2, 3])


# --- isolation and cost ------------------------------------------------------------------------


def test_sys_path_is_isolated(reply):
    assert reply("import sys\ndef main():\n    return sys.path\n") == ok([
        "/usr/lib/python311.zip", "/usr/lib/python3.11", "/usr/lib/python3.11/lib-dynload",
        "/usr/lib/python3/dist-packages"])


def test_cwd_modules_are_not_importable(run):
    with open(os.path.join(run.cwd, "shadow_mod.py"), "w") as f:
        f.write("VALUE = 1\n")
    r = run("import os\ndef main():\n    import shadow_mod\n")
    assert r.frame == error("No module named 'shadow_mod'")
    assert os.listdir(run.cwd) == ["shadow_mod.py"]  # -B: no __pycache__ either


def test_runner_dir_is_not_importable(reply):
    assert reply("def main():\n    import runner\n") == error("No module named 'runner'")


def test_hello_world_stays_cheap(reply):
    script = src("""
        import sys
        def main():
            heavy = ["numpy", "pandas", "json", "re", "linecache", "asyncio", "ast",
                     "traceback", "datetime"]
            return [m for m in heavy if m in sys.modules]
    """)
    assert reply(script) == ok([])


# --- async main --------------------------------------------------------------------------------


def test_async_main(reply):
    script = src("""
        import asyncio
        async def main():
            await asyncio.sleep(0)
            return {"async": True}
    """)
    assert reply(script) == ok({"async": True})


def test_main_returning_a_coroutine(reply):
    assert reply("async def work():\n    return 'w'\nmain = lambda: work()\n") == ok("w")


def test_async_main_error_trimmed(run):
    r = run("import asyncio\nasync def main():\n    await asyncio.sleep(0)\n"
            "    raise ValueError('async boom')\n")
    assert r.frame == error("async boom")
    assert r.err.startswith('Traceback (most recent call last):\n'
                            '  File "<script>", line 4, in main\n')


# --- conversions: plain Python -------------------------------------------------------------------


def test_plain_values(run):
    script = src("""
        def main():
            return [None, True, False, 0, -7, 2 ** 70, 1.5, -0.0, 1e300, "s", "",
                    [], {}, (), [[]], {"a": {"b": [1, (2, 3)]}}]
    """)
    r = run(script)
    assert r.frame == ok([None, True, False, 0, -7, float(2 ** 70), 1.5, -0.0, 1e300, "s", "",
                          [], {}, [], [[]], {"a": {"b": [1, [2, 3]]}}])
    assert r.raw[8:] == (b'{"status":"ok","result":[null,true,false,0,-7,1.1805916207174113e+21,'
                         b'1.5,-0.0,1e+300,"s","",[],{},[],[[]],{"a":{"b":[1,[2,3]]}}]}')


def test_bool_stays_bool(run):
    r = run("def main():\n    return True\n")
    assert r.raw[8:] == b'{"status":"ok","result":true}'
    assert r.frame["result"] is True


def test_nan_and_infinity_become_null(run):
    script = ("def main():\n    n, i = float('nan'), float('inf')\n"
              "    return {'nan': n, 'inf': i, 'ninf': -i, 'list': [n, 1.0, -i], 'tuple': (i,)}\n")
    r = run(script)
    assert r.frame == ok({"nan": None, "inf": None, "ninf": None, "list": [None, 1.0, None],
                          "tuple": [None]})


def test_subclasses_give_plain_values(reply):
    script = src("""
        import collections, enum
        class Color(enum.IntEnum):
            RED = 1
        class Name(str):
            def __str__(self):
                return "not this"
        class Num(float):
            pass
        Pair = collections.namedtuple("Pair", "a b")
        def main():
            return {
                "enum": Color.RED,
                "str": Name("plain"),
                "float": Num(2.5),
                "namedtuple": Pair(1, 2),
                "ordered": collections.OrderedDict([("z", 1), ("a", 2)]),
                "counter": collections.Counter("aab"),
                "default": collections.defaultdict(list, {"k": [1]}),
                Name("key"): 1,
                Color.RED: "enum key",
            }
    """)
    result = reply(script)["result"]
    assert result == {"enum": 1, "str": "plain", "float": 2.5, "namedtuple": [1, 2],
                      "ordered": {"z": 1, "a": 2}, "counter": {"a": 2, "b": 1},
                      "default": {"k": [1]}, "key": 1, "1": "enum key"}
    assert list(result["ordered"]) == ["z", "a"]


def test_dict_keys_like_json_dumps(run):
    script = src("""
        def main():
            return {3: "int", 2.5: "float", True: "bool", None: "none", "s": "str",
                    float("nan"): "nan", float("inf"): "inf", -float("inf"): "-inf",
                    10 ** 20: "big"}
    """)
    r = run(script)
    expected = {"3": "int", "2.5": "float", "true": "bool", "null": "none", "s": "str",
                "NaN": "nan", "Infinity": "inf", "-Infinity": "-inf",
                "100000000000000000000": "big"}
    assert r.frame == ok(expected)
    # The same text json.dumps writes for the same dict (it writes NaN keys the same way).
    plain = {3: "int", 2.5: "float", True: "bool", None: "none", "s": "str",
             float("nan"): "nan", float("inf"): "inf", -float("inf"): "-inf",
             10 ** 20: "big"}
    assert r.raw[8:] == ('{"status":"ok","result":%s}' % json.dumps(
        plain, ensure_ascii=False, separators=(",", ":"))).encode()


def test_colliding_keys_last_wins(reply):
    assert reply("def main():\n    return {1: 'int', '1': 'str'}\n") == ok({"1": "str"})


def test_unicode(run):
    value = {"ключ": "значение 😀", "ctrl": "\x00\x1f\n\t\"\\", "bidi": "\u2028\u202e",
             "zh": "中文"}
    r = run("def main():\n    return %r\n" % (value,))
    assert r.frame == ok(value)
    assert "значение 😀".encode() in r.raw  # UTF-8 text, not \\u escapes
    assert b'"ctrl":"\\u0000\\u001f\\n\\t\\"\\\\"' in r.raw


def test_lone_surrogates_become_replacement_characters(run):
    script = src("""
        def main():
            return {"lone_high": "a\\ud800b", "lone_low": "\\udcff", "pair": "\\ud83d\\ude00",
                    "reversed": "\\ude00\\ud83d", "key\\udc80": 1,
                    "escaped": b"\\xff".decode("utf-8", "surrogateescape")}
    """)
    r = run(script)
    assert r.frame == ok({"lone_high": "a\ufffdb", "lone_low": "\ufffd", "pair": "😀",
                          "reversed": "\ufffd\ufffd", "key\ufffd": 1, "escaped": "\ufffd"})


def test_big_ints(reply):
    # Beyond signed 64 bits an int becomes a float; past the float range it is refused.
    assert reply("def main():\n    return [2 ** 63 - 1, -2 ** 63]\n") == ok([2 ** 63 - 1, -2 ** 63])
    assert reply("def main():\n    return [2 ** 63, 10 ** 20, -2 ** 100]\n") == ok(
        [float(2 ** 63), 1e20, -float(2 ** 100)])
    assert reply("def main():\n    return 10 ** 400\n") == bad(
        "Result is not JSON-serializable: int (too large for a JSON number) at result")
    assert reply("def main():\n    return [10 ** 5000]\n") == bad(
        "Result is not JSON-serializable: int (too large for a JSON number) at result[0]")
    assert reply("import sys\nsys.set_int_max_str_digits(0)\n"
                 "def main():\n    return {10 ** 5000: 1}\n") == bad(
        "Result is not JSON-serializable: int (dict key over 4300 digits) at result")


def test_datetime_values(reply):
    script = src("""
        import datetime as dt
        def main():
            utc = dt.timezone.utc
            return [dt.datetime(2024, 1, 2, 3, 4, 5, 6), dt.date(2024, 1, 2), dt.time(12, 30),
                    dt.datetime(2024, 1, 2, tzinfo=utc), dt.time(1, 2, 3, 4)]
    """)
    assert reply(script) == ok(["2024-01-02T03:04:05.000006", "2024-01-02", "12:30:00",
                                "2024-01-02T00:00:00+00:00", "01:02:03.000004"])


# --- conversions: numpy -----------------------------------------------------------------------


def test_numpy_scalars(run):
    script = src("""
        import numpy as np
        def main():
            return {
                "int64": np.int64(7), "int8": np.int8(-3), "uint64": np.uint64(2 ** 64 - 1),
                "float64": np.float64(1.25), "float32": np.float32(0.5),
                "float16": np.float16(1.5), "longdouble": np.longdouble(0.25),
                "true": np.bool_(True), "false": np.bool_(False),
                "nan": np.float64("nan"), "inf": np.float32("inf"), "str": np.str_("s"),
            }
    """)
    r = run(script)
    assert r.frame == ok({"int64": 7, "int8": -3, "uint64": float(2 ** 64 - 1), "float64": 1.25,
                          "float32": 0.5, "float16": 1.5, "longdouble": 0.25, "true": True,
                          "false": False, "nan": None, "inf": None, "str": "s"})
    assert b'"true":true,"false":false' in r.raw


def test_numpy_arrays(reply):
    script = src("""
        import numpy as np
        def main():
            return {
                "int2d": np.array([[1, 2], [3, 4]]),
                "float2d": np.array([[1.5, np.nan], [np.inf, -2.0]]),
                "bool": np.array([True, False]),
                "zero_d": np.array(5),
                "empty": np.zeros((0,)),
                "empty2d": np.zeros((2, 0)),
                "str": np.array(["a", "b"]),
                "object": np.array([1, "x", None, {"k": np.int32(2)}], dtype=object),
                "float32": np.arange(3, dtype=np.float32) / 2,
                "masked": np.ma.masked_array([1, 2, 3], mask=[0, 1, 0]),
                "matrix": np.matrix([[1, 2]]),
            }
    """)
    assert reply(script) == ok({
        "int2d": [[1, 2], [3, 4]], "float2d": [[1.5, None], [None, -2.0]],
        "bool": [True, False], "zero_d": 5, "empty": [], "empty2d": [[], []],
        "str": ["a", "b"], "object": [1, "x", None, {"k": 2}], "float32": [0.0, 0.5, 1.0],
        "masked": [1, None, 3], "matrix": [[1, 2]]})


def test_numpy_datetime64(reply):
    script = src("""
        import numpy as np
        def main():
            return [np.datetime64("2024-01-02T03:04:05"), np.datetime64("2024-01-02"),
                    np.datetime64("2024-01-02T03:04:05.000000001"), np.datetime64("2024-03", "M"),
                    np.datetime64("NaT"),
                    np.array(["2024-01-01", "NaT"], dtype="datetime64[ns]"),
                    np.array([["2024-01-01"]], dtype="datetime64[D]")]
    """)
    assert reply(script) == ok(["2024-01-02T03:04:05", "2024-01-02",
                                "2024-01-02T03:04:05.000000001", "2024-03", None,
                                ["2024-01-01T00:00:00.000000000", None], [["2024-01-01"]]])


def test_numpy_dict_keys(reply):
    script = ("import numpy as np\ndef main():\n"
              "    return {np.int64(3): 'i', np.float64(0.5): 'f', np.bool_(False): 'b', "
              "np.str_('s'): 'str', np.float32('nan'): 'nan'}\n")
    assert reply(script) == ok({"3": "i", "0.5": "f", "false": "b", "s": "str", "NaN": "nan"})


# --- conversions: pandas ----------------------------------------------------------------------


def test_pandas_series(reply):
    script = src("""
        import pandas as pd
        def main():
            return {
                "labels": pd.Series([1, 2.5, None], index=["a", "b", "c"]),
                "ints": pd.Series([10, 20]),
                "objects": pd.Series(["x", None, [1, 2]], index=[1.5, ("t", 1), None]),
                "times": pd.Series([1], index=pd.to_datetime(["2024-01-01"])),
                "datetimes": pd.Series(pd.to_datetime(["2024-01-01 12:00", None])),
                "nullable": pd.Series([1, None], dtype="Int64"),
                "bools": pd.Series([True, False]),
                "empty": pd.Series([], dtype=float),
            }
    """)
    assert reply(script) == ok({
        "labels": {"a": 1.0, "b": 2.5, "c": None},
        "ints": {"0": 10, "1": 20},
        "objects": {"1.5": "x", "('t', 1)": None, "None": [1, 2]},
        "times": {"2024-01-01 00:00:00": 1},
        "datetimes": {"0": "2024-01-01T12:00:00", "1": None},
        "nullable": {"0": 1, "1": None},
        "bools": {"0": True, "1": False},
        "empty": {}})


def test_pandas_dataframe(reply):
    script = src("""
        import pandas as pd
        def main():
            df = pd.DataFrame({
                "a": [1, 2],
                "b": ["x", None],
                "t": pd.to_datetime(["2024-01-01", None]),
                "n": pd.array([1, None], dtype="Int64"),
                "f": [0.5, float("nan")],
            }, index=["r1", "r2"])
            return {"df": df, "numbered": pd.DataFrame([[1, 2]]), "empty": pd.DataFrame()}
    """)
    assert reply(script) == ok({
        "df": [{"a": 1, "b": "x", "t": "2024-01-01T00:00:00", "n": 1, "f": 0.5},
               {"a": 2, "b": None, "t": None, "n": None, "f": None}],
        "numbered": [{"0": 1, "1": 2}],
        "empty": []})


def test_pandas_scalars(reply):
    script = src("""
        import pandas as pd
        def main():
            return [pd.Timestamp("2024-01-02 03:04:05"),
                    pd.Timestamp("2024-01-02 03:04:05.000000001"),
                    pd.Timestamp("2024-01-02", tz="UTC"), pd.NaT, pd.NA, None]
    """)
    assert reply(script) == ok(["2024-01-02T03:04:05", "2024-01-02T03:04:05.000000001",
                                "2024-01-02T00:00:00+00:00", None, None, None])


def test_conversion_runs_script_code_errors_are_errors(reply):
    script = src("""
        import pandas as pd
        class Label:
            def __str__(self):
                raise ValueError("bad label")
        def main():
            return pd.Series([1], index=[Label()])
    """)
    assert reply(script) == error("bad label")


# --- conversions: refused -------------------------------------------------------------------------


REFUSED = {
    "set": ("{'items': [1, 2, {3}]}", "set at result['items'][2]"),
    "frozenset_top": ("frozenset()", "frozenset at result"),
    "bytes": ("[b'x']", "bytes at result[0]"),
    "bytearray": ("{'b': bytearray()}", "bytearray at result['b']"),
    "decimal": ("{'d': __import__('decimal').Decimal('1.5')}", "Decimal at result['d']"),
    "complex": ("{'c': [1j]}", "complex at result['c'][0]"),
    "object": ("[object()]", "object at result[0]"),
    "custom": ("{'x': {'y': Custom()}}", "Custom at result['x']['y']"),
    "function": ("{'f': main}", "function at result['f']"),
    "builtin": ("[len]", "builtin_function_or_method at result[0]"),
    "class": ("[Custom]", "type at result[0]"),
    "generator": ("(i for i in [])", "generator at result"),
    "range": ("range(3)", "range at result"),
    "timedelta": ("__import__('datetime').timedelta(1)", "timedelta at result"),
    "int_path_key": ("{1: {2.5: [None, {3}]}}", "set at result[1][2.5][1]"),
    "tuple_key": ("{'outer': {(1, 2): 'v'}}", "tuple (dict key) at result['outer']"),
    "object_key": ("{Custom(): 1}", "Custom (dict key) at result"),
    "frozenset_key": ("[{frozenset(): 1}]", "frozenset (dict key) at result[0]"),
    "np_complex": ("[__import__('numpy').complex128(1j)]", "complex128 at result[0]"),
    "np_timedelta": ("{'t': __import__('numpy').timedelta64(1, 's')}",
                     "timedelta64 at result['t']"),
    "np_timedelta_array": ("__import__('numpy').array([1], dtype='timedelta64[s]')",
                           "timedelta64 at result"),
    "np_complex_array": ("__import__('numpy').array([[1, 2j]])", "complex at result[0][0]"),
    "np_bytes": ("[__import__('numpy').bytes_(b'x')]", "bytes_ at result[0]"),
    "np_timedelta_key": ("{__import__('numpy').timedelta64(1, 's'): 1}",
                         "timedelta64 (dict key) at result"),
    "np_datetime_key": ("{__import__('numpy').datetime64('2024-01-01'): 1}",
                        "datetime64 (dict key) at result"),
    "pd_timedelta": ("[__import__('pandas').Timedelta('1s')]", "Timedelta at result[0]"),
    "pd_index": ("__import__('pandas').Index(['a'])", "Index at result"),
    "series_value": ("{'s': __import__('pandas').Series([{1}], index=['k'])}",
                     "set at result['s']['k']"),
    "dataframe_cell": ("__import__('pandas').DataFrame({'c': [1, {2}]})",
                       "set at result[1]['c']"),
}


@pytest.mark.parametrize("expr,where", REFUSED.values(), ids=REFUSED.keys())
def test_not_serializable(reply, expr, where):
    script = "class Custom:\n    pass\ndef main():\n    return %s\n" % expr
    assert reply(script) == bad("Result is not JSON-serializable: " + where)


def test_async_generator_is_not_run(reply):
    assert reply("async def main():\n    yield 1\n") == bad(
        "Result is not JSON-serializable: async_generator at result")


def test_circular_references(reply):
    assert reply("def main():\n    a = []\n    a.append(a)\n    return a\n") == bad(
        "Result contains a circular reference at result[0]")
    assert reply("def main():\n    d = {'x': [1]}\n    d['x'].append(d)\n    return d\n") == bad(
        "Result contains a circular reference at result['x'][1]")
    assert reply("import numpy as np\ndef main():\n    a = np.empty(1, dtype=object)\n"
                 "    a[0] = a\n    return {'a': a}\n") == bad(
        "Result contains a circular reference at result['a'][0]")


def test_shared_references_are_fine(reply):
    assert reply("def main():\n    x = [1]\n    return [x, x, {'a': x}]\n") == ok(
        [[1], [1], {"a": [1]}])


def nested_lists(levels):
    return "v = 1\n    for _ in range(%d):\n        v = [v]\n" % levels


def test_depth_64_is_fine(reply):
    script = "def main():\n    " + nested_lists(64) + "    return v\n"
    value = 1
    for _ in range(64):
        value = [value]
    assert reply(script) == ok(value)


def test_depth_65_is_refused(reply):
    script = "def main():\n    " + nested_lists(65) + "    return v\n"
    assert reply(script) == bad(
        "Result is nested too deeply (over 64 levels) at result" + "[0]" * 64)


def test_depth_counts_dicts_and_dataframes(reply):
    script = ("def main():\n    v = 1\n    for _ in range(65):\n        v = {'k': v}\n"
              "    return v\n")
    assert reply(script) == bad(
        "Result is nested too deeply (over 64 levels) at result" + "['k']" * 64)
    script = ("import pandas as pd\ndef main():\n    v = [pd.DataFrame({'c': [1]})]\n"
              "    for _ in range(62):\n        v = [v]\n    return v\n")
    assert reply(script) == bad(
        "Result is nested too deeply (over 64 levels) at result" + "[0]" * 64)


def test_result_size_limit_is_exact(run):
    # The payload {"status":"ok","result":"xxx..."} is the string's length + 27 bytes.
    r = run("def main():\n    return 'x' * (16 * 1024 * 1024 - 27)\n")
    assert r.frame == ok("x" * (MAX_PAYLOAD - 27))
    assert len(r.raw) == 8 + MAX_PAYLOAD
    r = run("def main():\n    return 'x' * (16 * 1024 * 1024 - 26)\n")
    assert r.frame == bad("Result is too large (over 16777216 bytes)")


def test_result_size_counts_utf8_bytes(reply):
    assert reply("def main():\n    return 'é' * (8 * 1024 * 1024)\n") == bad(
        "Result is too large (over 16777216 bytes)")


def test_shared_reference_explosion_stops_early(run):
    script = ("def main():\n    a = ['y' * 1000] * 1000\n    b = [a] * 1000\n"
              "    return [b] * 1000\n")
    r = run(script, timeout=30)
    assert r.frame == bad("Result is too large (over 16777216 bytes)")
    assert r.elapsed < 10


def test_huge_numpy_array_refused_before_tolist(run):
    r = run("import numpy as np\ndef main():\n    return np.zeros(50_000_000, dtype=np.int8)\n")
    assert r.frame == bad("Result is too large (over 16777216 bytes)")
    assert r.elapsed < 10


def test_too_many_values(reply):
    # sandboxd refuses frames of over a million values before it parses them; the runner
    # says so first, with the limit. Exactly at the limit is fine.
    assert reply("def main():\n    return [0] * 1000000\n") == ok([0] * 1000000)
    assert reply("def main():\n    return [0] * 1000001\n") == bad(
        "Result has too many values (over 1000000)")
    assert reply("def main():\n    return [{}] * 2000000\n") == bad(
        "Result has too many values (over 1000000)")
    assert reply("def main():\n    return {str(i): i for i in range(500001)}\n") == bad(
        "Result has too many values (over 1000000)")


def test_nul_in_dict_key_and_message(reply):
    # jansson, which parses the frame in sandboxd, refuses U+0000 in object keys: refused here
    # with a clear text rather than as a corrupted channel. In a message, NUL is shown as \x00
    # (the daemon handles messages as C strings).
    assert reply("def main():\n    return {'a\\x00b': 1}\n") == bad(
        "Result is not JSON-serializable: str (dict key with a NUL character) at result")
    assert reply("def main():\n    return {'k': 'a\\x00b'}\n") == ok({"k": "a\x00b"})
    assert reply("def main():\n    raise ValueError('a\\x00b')\n") == error("a\\x00b")
